/*
 * Internal to the inspector's capture, shared by its two files and
 * nothing else (include/warren/capture.h is the API):
 *
 *   capture.c       the ring of exchange records: ids, memory accounting,
 *                   eviction, lookups
 *   capture_conn.c  the parsers that fill it from a relayed connection's
 *                   bytes (HTTP/1.1 over llhttp, then WebSocket)
 */
#ifndef WR_INSPECT_CAPTURE_INT_H
#define WR_INSPECT_CAPTURE_INT_H

#include "warren/capture.h"
#include "warren/err.h"

typedef struct rec {
  wr_exchange e; /* first: views are &rec->e */
  size_t fields_cap[2], body_cap[2], target_cap;
} rec;

struct wr_capture {
  const wr_mem *mem;
  wr_capture_config cfg;
  wr_capture_callbacks cb;
  void *ud;
  rec **slots;
  uint64_t next_id;  /* id of the next record */
  uint64_t first_id; /* no record below this id exists */
  size_t count, mem_used;
  uint64_t evicted, next_conn;
  uint64_t gen; /* bumped whenever a record goes or is reused */
};

/* The record of |id|, or NULL (evicted, or never made).  Inline: the
 * parsers look their record up for most llhttp callbacks. */
static inline rec *capture_slot_get(const wr_capture *c, uint64_t id) {
  if (id == 0 || id < c->first_id || id >= c->next_id ||
      c->next_id - id > c->cfg.max_exchanges)
    return NULL;
  rec *r = c->slots[id % c->cfg.max_exchanges];
  return r && r->e.id == id ? r : NULL;
}

/* Frees |r| and its slot. */
void capture_drop(wr_capture *c, rec *r);
/* Evicts the oldest records (never |r|) until |n| more bytes fit in
 * max_bytes: 0 or WR_ERR_NOBUF. */
int capture_make_room(wr_capture *c, rec *r, size_t n);
/* A fresh record; with the ring full, the oldest one's, buffers kept. */
rec *capture_rec_new(wr_capture *c, uint64_t conn, uint64_t replay_of,
                     uint64_t now);
/* Passes event |ev| of |r| to the app's callback. */
void capture_emit(wr_capture *c, rec *r, wr_capture_event ev);
/* Grows |*pbuf| to hold |need| bytes, doubling up to |limit|, within
 * max_bytes: 0, WR_ERR_NOBUF or WR_ERR_NOMEM. */
int capture_grow_slow(wr_capture *c, rec *r, void **pbuf, size_t *pcap,
                      size_t need, size_t limit);

/* The check inline: it passes for nearly every header field of every
 * exchange (records are recycled with their buffers). */
static inline int capture_grow(wr_capture *c, rec *r, void **pbuf,
                               size_t *pcap, size_t need, size_t limit) {
  return need <= *pcap ? 0 : capture_grow_slow(c, r, pbuf, pcap, need, limit);
}

#endif /* WR_INSPECT_CAPTURE_INT_H */
