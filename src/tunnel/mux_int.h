/*
 * Internal to the stream multiplexer, shared by its four files and
 * nothing else (include/warren/mux.h is the API):
 *
 *   mux.c         the link: SETTINGS, frames in (recv), frames out (send),
 *                 keepalive, GOAWAY, CONTROL
 *   mux_stream.c  streams: the id table, a stream's end, the stream calls
 *   mux_credit.c  flow control and send scheduling: credit taken and
 *                 given back, the fair share of the link, who is woken
 *   mux_queue.c   memory: blocks, byte queues, the control queue, the
 *                 send output (copied or viewed), the app's read buffers
 */
#ifndef WR_TUNNEL_MUX_INT_H
#define WR_TUNNEL_MUX_INT_H

#include <stddef.h>
#include <string.h>

#include "frame.h"
#include "warren/err.h"
#include "warren/mux.h"

/* Credit is signed 32-bit on the wire's terms, as in HTTP/2. */
#define MAX_WINDOW 0x7fffffff
/* The credit step we announce in SETTINGS and use while the link is
 * short (mux_credit.c, "Fair link credit", says why 16 KiB). */
#define CREDIT_STEP 16384

#define container_of(p, T, member) ((T *)((char *)(p)-offsetof(T, member)))

typedef struct dl {
  struct dl *prev, *next;
} dl;

static inline void dl_init(dl *h) { h->prev = h->next = h; }
static inline int dl_empty(const dl *h) { return h->next == h; }
static inline int dl_linked(const dl *e) { return e->next != NULL; }
static inline void dl_push(dl *h, dl *e) {
  e->prev = h->prev;
  e->next = h;
  h->prev->next = e;
  h->prev = e;
}
static inline void dl_del(dl *e) {
  if (!e->next) return;
  e->prev->next = e->next;
  e->next->prev = e->prev;
  e->prev = e->next = NULL;
}

/* A queue block.  Its bytes are |base|[start, end): |data| for the mux's
 * own blocks; for an app buffer queued as it is (wr_mux_stream_write_ext)
 * that buffer, handed back with |release| once the bytes went out. */
typedef struct blk {
  struct blk *next;
  uint32_t cap, start, end;
  uint8_t *base;
  wr_mux_release release; /* NULL: one of ours */
  uint8_t data[];
} blk;

/* A byte queue: a chain of blocks. */
typedef struct bq {
  blk *head, *tail;
  size_t len;
} bq;

typedef struct stream {
  struct stream *hnext; /* hash chain */
  dl act;               /* in m->active: has bytes or a FIN to send */
  dl blocked;           /* in m->blocked: a write was cut short */
  uint32_t sid;
  uint8_t fin_queued, fin_sent, fin_recv;
  int64_t swin;        /* our send credit on the stream */
  int64_t rwin;        /* credit the peer still has toward us */
  uint64_t unconsumed; /* delivered to the app, not yet consumed */
  uint64_t pending;    /* consumed, not yet returned in a WINDOW */
  uint64_t held;       /* sent or queued, its stream credit not yet back */
  uint64_t taken;      /* all bytes ever accepted: the wake-up order */
  bq q;                /* bytes accepted, not yet framed */
  void *user_data;
} stream;

struct wr_mux {
  wr_mux_config cfg;
  wr_mux_callbacks cb;
  void *user_data;
  const wr_mem *mem;
  int fatal; /* sticky error: every later call returns it */

  /* The peer's SETTINGS (floors until they arrive). */
  int got_settings;
  uint32_t peer_stream_window, peer_max_streams, peer_max_meta,
      peer_max_control;
  uint32_t peer_link_window;
  uint32_t peer_credit_step; /* 0: the peer returns credit in half windows */
  uint32_t n_holding;        /* streams with held > 0 */

  int64_t swin_link;     /* our send credit on the link */
  int64_t rwin_link;     /* credit the peer still has toward us */
  uint64_t link_pending; /* consumed, not yet returned */

  uint64_t next_sid;      /* next id we open */
  uint32_t last_peer_sid; /* highest id the peer opened */
  uint32_t n_local, n_peer;

  stream **buckets;
  uint32_t nbuckets, nstreams;
  dl active, blocked;
  int recheck_writable; /* link credit came back outside wr_mux_recv */
  int buf_full;         /* a write or wake-up waited on send_buffer */

  bq ctrl;
  size_t queued_data; /* bytes in all stream queues */
  blk *free_blks;
  uint32_t n_free_blks;
  blk *free_bufs; /* WR_MUX_BUF_CAP blocks for wr_mux_buf_new */
  uint32_t n_free_bufs;
  blk *retired; /* emptied by wr_mux_send_v, still viewed by its caller */
  stream *free_streams;
  uint32_t n_free_streams;

  wr_frame_reader rd;

  wr_tstamp last_rx;
  int ping_out;
  uint64_t ping_seq;
  int goaway_sent, goaway_recv;
  uint32_t refused_unsent, pong_unsent;

  wr_mux_stats st;
};

/*
 * Where wr_mux_send / wr_mux_send_v put their output.  Copy mode (iov
 * NULL): every byte is copied to dst.  View mode: pieces of at least
 * VIEW_MIN bytes are handed out as views into the queue blocks, and
 * everything else (frame headers, small pieces) is copied into dst, the
 * caller's scratch, as runs that join the iov list in order.  |len| counts
 * the bytes produced either way; |used| is how much of dst is taken.
 */
typedef struct sendout {
  uint8_t *dst;
  size_t len, used;
  struct iovec *iov;
  size_t niov;
} sendout;

/* ---- mux.c ---- */

/* Makes |rv| the link's sticky error (counting peer faults) and returns it. */
int mux_set_fatal(wr_mux *m, int rv);

/* ---- the stream table (lookups inline: they run for every frame and
 * every stream call; the rest is mux_stream.c) ---- */

static inline int is_local(const wr_mux *m, uint32_t sid) {
  return (int)(sid & 1) == m->cfg.is_client;
}

/* Was |sid| ever opened on this link (by either side)? */
static inline int sid_seen(const wr_mux *m, uint32_t sid) {
  if (is_local(m, sid)) return sid < m->next_sid;
  return sid <= m->last_peer_sid;
}

/* Each side's ids step by two, so the low bit says only who opened the
 * stream: hashing on sid >> 1 spreads one side's ids over every bucket.
 * With the low bit kept, a tunnel's streams (all even, node-opened) used
 * half the buckets, chains averaged two at load 1, and find() was 1.0-1.4 %
 * of the node's and the client's samples at 1 KiB (docs/BENCHMARKS.md,
 * "Round 6"). */
static inline uint32_t bucket_of(uint32_t sid, uint32_t nbuckets) {
  return (sid >> 1) & (nbuckets - 1);
}

static inline stream *find(const wr_mux *m, uint32_t sid) {
  stream *s = m->buckets[bucket_of(sid, m->nbuckets)];
  while (s && s->sid != sid) s = s->hnext;
  return s;
}

int mux_table_insert(wr_mux *m, stream *s);
void mux_table_remove(wr_mux *m, stream *s);
stream *mux_stream_alloc(wr_mux *m, uint32_t sid);
void mux_stream_free(wr_mux *m, stream *s);
int mux_stream_end(wr_mux *m, stream *s, int64_t code, int by_peer);

/* ---- mux_credit.c ----
 *
 * mux_link_short, mux_take_credit and mux_out_room (below) run for every
 * write and every DATA frame, so they are inline here: out of line they
 * cost 7 % of the mux's own instructions (bench/mux_cost.c, memcpy left
 * out). */

/* Whether the peer has less than three quarters of our link window left
 * (mux_credit.c, "Fair link credit"). */
static inline int mux_link_short(const wr_mux *m) {
  return m->rwin_link < (int64_t)(m->cfg.link_window / 4 * 3);
}

/* Charges |n| accepted bytes to |s| and the link. */
static inline void mux_take_credit(wr_mux *m, stream *s, size_t n) {
  s->swin -= (int64_t)n;
  m->swin_link -= (int64_t)n;
  if (n && s->held == 0) m->n_holding++;
  s->held += n;
  s->taken += n;
}

int mux_link_credit_back(wr_mux *m, uint64_t n);
void mux_held_back(wr_mux *m, stream *s, uint64_t n);
int mux_stream_credit_back(wr_mux *m, stream *s);
int64_t mux_credit_of(const wr_mux *m, const stream *s);
int mux_buf_low(wr_mux *m);
int mux_fire_writable(wr_mux *m);
int mux_flush_steps(wr_mux *m);

/* ---- mux_queue.c ---- */

/* Room for |n| copied bytes at the end of the output. */
static inline uint8_t *mux_out_room(sendout *o, size_t n) {
  uint8_t *p = o->dst + o->used;
  if (o->iov) {
    struct iovec *last = o->niov ? &o->iov[o->niov - 1] : NULL;
    if (last && (uint8_t *)last->iov_base + last->iov_len == p)
      last->iov_len += n;
    else
      o->iov[o->niov++] = (struct iovec){.iov_base = p, .iov_len = n};
  }
  o->used += n;
  o->len += n;
  return p;
}

void mux_blk_put(wr_mux *m, blk *b);
void mux_bq_link(bq *q, blk *b);
size_t mux_bq_append(wr_mux *m, bq *q, const uint8_t *p, size_t len);
void mux_bq_clear(wr_mux *m, bq *q);
size_t mux_bq_out(wr_mux *m, bq *q, sendout *o, size_t n);
void mux_release_retired(wr_mux *m);
int mux_q_frame(wr_mux *m, const wr_frame *f);
int mux_q_u32(wr_mux *m, uint8_t type, uint32_t sid, uint32_t v);

#endif /* WR_TUNNEL_MUX_INT_H */
