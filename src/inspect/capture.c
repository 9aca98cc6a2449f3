/*
 * The inspector's capture ring (see capture.h): exchange records that the
 * parsers of capture_conn.c fill from each relayed connection.
 *
 * Records live in a ring indexed by id % max_exchanges, so a lookup by id
 * is one slot and a connection refers to its exchanges by id: an evicted
 * record is simply not found any more, with no pointer left dangling.
 * Memory is accounted by capacity (what the allocator really gave), and
 * growing a record first evicts the oldest ones to stay under max_bytes.
 */
#include <string.h>

#include "capture_int.h"

/* ---- the ring ------------------------------------------------------------ */

static void rec_free(wr_capture *c, rec *r) {
  wr_exchange *e = &r->e;
  wr_mem_free(c->mem, e->target);
  wr_mem_free(c->mem, e->req.fields);
  wr_mem_free(c->mem, e->resp.fields);
  wr_mem_free(c->mem, e->req.body);
  wr_mem_free(c->mem, e->resp.body);
  wr_mem_free(c->mem, e->ws);
  wr_mem_free(c->mem, r);
}

void capture_drop(wr_capture *c, rec *r) {
  c->gen++;
  c->slots[r->e.id % c->cfg.max_exchanges] = NULL;
  c->mem_used -= r->e.mem;
  c->count--;
  rec_free(c, r);
}

/* Evicts the oldest record unless it is |keep|.  Returns 1 if one went. */
static int evict_oldest(wr_capture *c, const rec *keep) {
  for (uint64_t id = c->first_id; id < c->next_id; id++) {
    rec *r = capture_slot_get(c, id);
    if (!r) {
      c->first_id = id + 1;
      continue;
    }
    if (r == keep) return 0;
    capture_drop(c, r);
    c->evicted++;
    c->first_id = id + 1;
    return 1;
  }
  return 0;
}

/* Makes room for |n| more bytes in |r| within max_bytes.  0 or
 * WR_ERR_NOBUF (only |r| itself is left to evict). */
int capture_make_room(wr_capture *c, rec *r, size_t n) {
  while (c->mem_used + n > c->cfg.max_bytes)
    if (!evict_oldest(c, r)) return WR_ERR_NOBUF;
  return 0;
}

/* Grows |*pbuf| (capacity |*pcap|) of record |r| to hold |need| bytes,
 * doubling up to |limit|.  0, WR_ERR_NOBUF (budget) or WR_ERR_NOMEM. */
int capture_grow_slow(wr_capture *c, rec *r, void **pbuf, size_t *pcap,
                      size_t need, size_t limit) {
  if (need > limit) return WR_ERR_NOBUF;
  size_t cap = *pcap ? *pcap : 256;
  while (cap < need) cap *= 2;
  if (cap > limit) cap = limit;
  int rv = capture_make_room(c, r, cap - *pcap);
  if (rv != 0) return rv;
  void *p = wr_mem_realloc(c->mem, *pbuf, cap);
  if (!p) return WR_ERR_NOMEM;
  c->mem_used += cap - *pcap;
  r->e.mem += cap - *pcap;
  *pbuf = p;
  *pcap = cap;
  return 0;
}

/* Makes |r| a fresh record but keeps its buffers (and their accounting):
 * in the steady state, with the ring full, each new exchange reuses the
 * oldest one's memory and capture allocates nothing.  Bodies bigger than
 * RECYCLE_MAX are freed instead: after a burst of big downloads the memory
 * goes back to the system rather than sitting in records of small ones. */
#define RECYCLE_MAX 65536
static void rec_recycle(wr_capture *c, rec *r) {
  wr_exchange *e = &r->e;
  for (int d = 0; d < 2; d++) {
    wr_capture_msg *m = d ? &e->resp : &e->req;
    if (r->body_cap[d] > RECYCLE_MAX) {
      wr_mem_free(c->mem, m->body);
      m->body = NULL;
      e->mem -= r->body_cap[d];
      c->mem_used -= r->body_cap[d];
      r->body_cap[d] = 0;
    }
  }
  char *target = e->target, *rf = e->req.fields, *sf = e->resp.fields;
  uint8_t *rb = e->req.body, *sb = e->resp.body;
  wr_capture_ws_msg *ws = e->ws;
  size_t ws_cap = e->ws_cap, mem = e->mem;
  memset(e, 0, sizeof *e);
  e->target = target;
  if (target) target[0] = '\0';
  e->req.fields = rf;
  e->resp.fields = sf;
  e->req.body = rb;
  e->resp.body = sb;
  e->ws = ws;
  e->ws_cap = ws_cap;
  e->mem = mem;
}

rec *capture_rec_new(wr_capture *c, uint64_t conn, uint64_t replay_of,
                     uint64_t now) {
  size_t n = c->cfg.max_exchanges;
  /* The slot of the new id holds the record max_exchanges older. */
  rec *r = capture_slot_get(c, c->next_id >= n ? c->next_id - n : 0);
  if (r) {
    c->gen++;
    c->slots[r->e.id % n] = NULL;
    c->count--;
    c->evicted++;
    rec_recycle(c, r);
  }
  if (c->next_id - c->first_id >= n) c->first_id = c->next_id - n + 1;
  if (!r) {
    if (capture_make_room(c, NULL, sizeof(rec)) != 0) return NULL;
    r = wr_mem_calloc(c->mem, 1, sizeof *r);
    if (!r) return NULL;
    r->e.mem = sizeof *r;
    c->mem_used += sizeof *r;
  }
  r->e.id = c->next_id++;
  r->e.conn = conn;
  r->e.replay_of = replay_of;
  r->e.t_start_us = now;
  c->slots[r->e.id % n] = r;
  c->count++;
  return r;
}

void capture_emit(wr_capture *c, rec *r, wr_capture_event ev) {
  if (r && c->cb.event) c->cb.event(&r->e, ev, c->ud);
}

int wr_capture_new(wr_capture **pc, const wr_capture_config *cfg,
                   const wr_capture_callbacks *cb, void *user_data,
                   const wr_mem *mem) {
  wr_capture_config k = {0};
  if (cfg) k = *cfg;
  if (!k.max_exchanges) k.max_exchanges = WR_CAPTURE_MAX_EXCHANGES;
  if (!k.body_cap) k.body_cap = WR_CAPTURE_BODY_CAP;
  if (!k.max_head) k.max_head = WR_CAPTURE_MAX_HEAD;
  if (!k.max_bytes) k.max_bytes = WR_CAPTURE_MAX_BYTES;
  if (!k.ws_max_msgs) k.ws_max_msgs = WR_CAPTURE_WS_MAX_MSGS;
  /* One record must fit with its heads, or nothing would ever be kept. */
  if (k.max_bytes < sizeof(rec) + 2 * k.max_head) return WR_ERR_INVAL;
  wr_capture *c = wr_mem_calloc(mem, 1, sizeof *c);
  if (!c) return WR_ERR_NOMEM;
  c->slots = wr_mem_calloc(mem, k.max_exchanges, sizeof *c->slots);
  if (!c->slots) {
    wr_mem_free(mem, c);
    return WR_ERR_NOMEM;
  }
  c->mem = mem;
  c->cfg = k;
  if (cb) c->cb = *cb;
  c->ud = user_data;
  c->next_id = c->first_id = 1;
  c->next_conn = 1;
  *pc = c;
  return 0;
}

void wr_capture_clear(wr_capture *c) {
  for (uint64_t id = c->first_id; id < c->next_id; id++) {
    rec *r = capture_slot_get(c, id);
    if (r) capture_drop(c, r);
  }
  c->first_id = c->next_id;
}

void wr_capture_del(wr_capture *c) {
  if (!c) return;
  wr_capture_clear(c);
  wr_mem_free(c->mem, c->slots);
  wr_mem_free(c->mem, c);
}

const wr_exchange *wr_capture_get(const wr_capture *c, uint64_t id) {
  rec *r = capture_slot_get(c, id);
  return r ? &r->e : NULL;
}

const wr_exchange *wr_capture_older(const wr_capture *c, uint64_t id) {
  uint64_t i = id == 0 || id > c->next_id ? c->next_id : id;
  while (i > c->first_id) {
    i--;
    rec *r = capture_slot_get(c, i);
    if (r) return &r->e;
    if (c->next_id - i >= c->cfg.max_exchanges) break;
  }
  return NULL;
}

size_t wr_capture_count(const wr_capture *c) { return c->count; }
size_t wr_capture_mem(const wr_capture *c) { return c->mem_used; }
uint64_t wr_capture_evicted(const wr_capture *c) { return c->evicted; }
const wr_capture_config *wr_capture_cfg(const wr_capture *c) { return &c->cfg; }

int wr_capture_field(const wr_capture_msg *m, size_t *pos, const char **name,
                     const char **value) {
  /* field_commit keeps the layout exact; bounded anyway. */
  if (!m->fields || *pos >= m->fields_len) return 0;
  const char *end = m->fields + m->fields_len;
  const char *n = m->fields + *pos;
  const char *nz = memchr(n, '\0', (size_t)(end - n));
  if (!nz || nz + 1 >= end) return 0;
  const char *vz = memchr(nz + 1, '\0', (size_t)(end - nz - 1));
  if (!vz) return 0;
  *name = n;
  *value = nz + 1;
  *pos = (size_t)(vz + 1 - m->fields);
  return 1;
}
