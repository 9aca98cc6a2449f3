/*
 * Internal to the libuv tunnel link, shared by its two files and nothing
 * else (include/warren/link.h is the API):
 *
 *   tunnel_uv.c  the link's life: start, handshake to READY, the timer,
 *                mux events queued and dispatched to the app, end, close
 *   link_io.c    record I/O: reads opened into the mux, mux output sealed
 *                into records and written, the process-wide buffer pools,
 *                the fault tap's delays
 */
#ifndef WR_TUNNEL_LINK_INT_H
#define WR_TUNNEL_LINK_INT_H

#include "warren/link.h"

/* Enough input for a few records per read without a second pass. */
#define IN_CAP (64 * 1024 + WR_RECORD_MAX_WIRE)

enum ev_type { EV_OPEN, EV_DATA, EV_FIN, EV_CLOSE, EV_WRITABLE, EV_CONTROL,
               EV_GOAWAY };

typedef struct link_event {
  struct link_event *next;
  enum ev_type type;
  uint32_t sid;
  void *sud;
  int64_t code;
  int by_peer;
  uint8_t *data; /* malloc'd copy for OPEN/DATA/CONTROL */
  size_t len;
} link_event;

typedef struct link_write {
  uv_write_t req;
  wr_link *link;
  size_t len;
  size_t cap;
  struct link_write *next; /* in the pool */
  uint8_t data[];
} link_write;

struct wr_link {
  uv_loop_t *loop;
  uv_tcp_t *tcp;
  uv_prepare_t prep;
  uv_timer_t timer;
  int handles_open;
  wr_link_callbacks cb;
  void *ud;
  int initiator, ready, closing, close_err, dispatching;
  int ending;            /* wr_link_end: FIN after the queued output */
  int nodelink;          /* a node-to-node link (PSK), for the fault tap */
  /* Fault delays (link.h): input held in |in| until fault_rt fires (reading
   * stopped meanwhile), one write held until fault_wt fires. */
  uv_timer_t fault_rt, fault_wt;
  link_write *held_w;
  uv_shutdown_t shut;
  wr_noise *noise;
  wr_record *tx, *rx;
  wr_mux *mux;
  wr_mux_config muxcfg;
  wr_aead aead;
  uint8_t *in;
  size_t inlen;
  uint8_t *claim;   /* the record body being fed to the mux (see open_rec) */
  size_t claim_len;
  size_t write_queued;
  link_event *ev_head, *ev_tail;
  uint8_t hh[32]; /* the handshake hash, once ready (channel binding) */
  char peer[64];
};

/* ---- tunnel_uv.c ---- */

/* Runs the queued mux events through the app's callbacks, then flushes. */
void link_dispatch(wr_link *l);
/* Arms the link timer at the mux's deadline (READY only). */
void link_arm_timer(wr_link *l);
/* The handshake finished: records, mux, `ready`. */
int link_become_ready(wr_link *l);
/* Closes every handle once; `closed` fires when all have closed. */
void link_fail(wr_link *l, int err);

/* ---- link_io.c ---- */

void link_write_put(link_write *w);
/* Writes |data| unsealed (the handshake messages). */
int link_write_raw(wr_link *l, const uint8_t *data, size_t len);
/* Writes the write a fault delay held, now. */
void link_release_held_write(wr_link *l);
/* Seals what the mux has queued into records and writes them. */
void link_do_flush(wr_link *l);
/* Handshake messages, then records, from |in|. */
int link_process_input(wr_link *l);
/* The process's spare input buffer (IN_CAP bytes), or a new one. */
uint8_t *link_in_get(void);
void link_in_put(uint8_t *b);
/* libuv read callbacks of the link's socket. */
void link_on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf);
void link_on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf);

#endif /* WR_TUNNEL_LINK_INT_H */
