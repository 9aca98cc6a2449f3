/*
 * The stream multiplexer: a sans-IO core running many two-way byte streams
 * over one link (see include/warren/mux.h for the API, frame.c for the
 * frame layout, docs/MUX.md for the whole protocol).
 *
 * Link life:
 *   Each side's first frame is SETTINGS (its receive windows, how many
 *   streams the peer may open, its largest OPEN metadata and CONTROL
 *   payload).  Until a side has the peer's SETTINGS it assumes the protocol
 *   floors below (16 KiB windows, 4 KiB metadata and control messages) and
 *   adds the difference when they arrive, as HTTP/2 does with
 *   SETTINGS_INITIAL_WINDOW_SIZE.  A peer whose first frame is anything
 *   else is broken (WR_ERR_PROTO).
 *
 * Stream life (one direction each way):
 *   OPEN --DATA*--> FIN        our side: fin_queued (app closed) -> fin_sent
 *                              (the FIN left in wr_mux_send output)
 *   peer side: OPEN seen -> fin_recv.
 *   fin_sent && fin_recv -> stream_close(code -1); RST either way ->
 *   stream_close(code) at once.  A closed stream's id is never reused: ids
 *   grow by two, so "id <= highest seen" tells a closed stream (frames for
 *   it are late and ignored) from one never opened (WR_ERR_PROTO).
 *
 * Flow control (nghttp2's consume rule).  Every stream and the link have a
 * receive window.  The sender takes credit when wr_mux_stream_write
 * accepts bytes; the receiver charges a DATA frame's length against the
 * stream and the link when its header arrives (over credit: WR_ERR_FLOW)
 * and returns credit only when the app calls wr_mux_stream_consume, in a
 * WINDOW frame once half a window is pending (one WINDOW per 512 KiB with
 * the defaults: 0.002 % overhead).  So neither side buffers more than the
 * windows: the sender's stream queues hold at most its credit, the
 * receiver's app holds at most the window it granted.
 *   Bytes that can no longer reach the app go back to the link at once:
 *   a reset or closed stream's unconsumed bytes, and DATA arriving late
 *   for a stream already gone.  The sender likewise gets back the link
 *   credit of queued bytes it drops on a reset, since the peer never
 *   counted them.
 *
 * Send buffer.  Credit bounds what the peer must hold; send_buffer bounds
 * what we hold: wr_mux_stream_write accepts no more than send_buffer
 * bytes queued over all streams, and a stream cut short by it is woken
 * (stream_writable) once wr_mux_send has drained the queue to half.
 *
 * Sending.  wr_mux_send builds frames straight into the caller's record
 * buffer: first the control queue (pre-encoded OPEN, RST, WINDOW, PING,
 * PONG, GOAWAY, CONTROL and SETTINGS frames, in order, which may straddle
 * calls), then one DATA frame per stream with queued bytes, round robin,
 * so a bulk stream cannot starve a small one.  Stream bytes live in a
 * chain of 16 KiB blocks recycled through a free list: the steady state
 * does one copy in (wr_mux_stream_write) and one copy out (into the
 * record) and no malloc.
 *
 * Receiving.  The frame reader hands DATA out as views into the opened
 * record (no copy); other frames whole.  Stream lookup is a chained hash
 * on the id (ids are sequential, so the low bits spread perfectly).
 *
 * Keepalive.  Any received byte is liveness.  After ping_interval of
 * silence one PING goes out; after ping_timeout of silence wr_mux_tick
 * returns WR_ERR_TIMEOUT.  With ping_timeout = 2 * ping_interval a dead
 * link is noticed within two intervals, and a live one always has one
 * interval for its PONG to come back.
 *
 * Abuse limits.  A peer opening more than max_streams gets RST REFUSED per
 * stream; if more refusals pile up unsent than max(64, max_streams), or
 * more than 64 PONGs, the peer is flooding us faster than we can answer
 * and the link dies with WR_ERR_LIMIT, so the control queue stays bounded.
 */
#include <string.h>

#include "frame.h"
#include "warren/err.h"
#include "warren/mux.h"

/*
 * Protocol floors: what a side may assume of its peer before SETTINGS
 * arrive, and therefore the smallest values a config may use.  16 KiB of
 * window lets the first record of a fresh stream go out without waiting a
 * round trip for SETTINGS; 4 KiB covers a typical request head and the
 * hello/auth control messages.
 */
#define FLOOR_WINDOW 16384
#define FLOOR_META 4096
#define FLOOR_CONTROL 4096
/* Credit is signed 32-bit on the wire's terms, as in HTTP/2. */
#define MAX_WINDOW 0x7fffffff
#define MAX_STREAMS_CFG (1u << 20)
/* Send buffer blocks: one record's worth, so a full DATA frame is at most
 * two memcpy calls.  Up to 64 spare blocks (1 MiB) are kept for reuse. */
#define BLK_SIZE 16384
#define FREE_BLKS_MAX 64
/* Blocks the app reads into (wr_mux_buf_new): a socket read's worth.  A
 * few are kept for reuse, as their size would otherwise make glibc grow
 * and trim the heap for every read. */
#define FREE_BUFS_MAX 16
#define FREE_STREAMS_MAX 64
/* A DATA frame is not started in less room than this when more bytes are
 * waiting and the record already holds other frames: the next record can
 * carry a full frame instead. */
#define MIN_DATA_FRAME 256
#define MAX_PONG_UNSENT 64
#define MIN_REFUSED_UNSENT 64

#define container_of(p, T, member) ((T *)((char *)(p)-offsetof(T, member)))

typedef struct dl {
  struct dl *prev, *next;
} dl;

static void dl_init(dl *h) { h->prev = h->next = h; }
static int dl_empty(const dl *h) { return h->next == h; }
static int dl_linked(const dl *e) { return e->next != NULL; }
static void dl_push(dl *h, dl *e) {
  e->prev = h->prev;
  e->next = h;
  h->prev->next = e;
  h->prev = e;
}
static void dl_del(dl *e) {
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
 * Defaults.
 *
 * stream_window = 1 MiB.  A stream can move at most one window per round
 * trip of (data out, WINDOW back), and that loop on loopback includes the
 * records sitting in both kernels' socket buffers and in the adapters'
 * write queues, several hundred KiB at full speed, plus the half window
 * held back by batching.  At the 1.2 GiB/s target and a ~0.4 ms loop that
 * is ~500 KiB; 1 MiB leaves headroom.  Over the internet (50 ms RTT) it
 * still allows 20 MiB/s per stream.
 *
 * link_window = 16 MiB: sixteen streams at full window before the link
 * itself pushes back, which is the memory a peer can make us hold per link
 * (the windows bound it, not the stream count).
 *
 * send_buffer = 1 MiB: how far the app may write ahead of the link.
 * Credit alone let the client read its origins into the mux up to the
 * peer's 16 MiB link window while the link drained at its own pace: 50
 * streams of 1 MiB bodies held 14 MiB queued and the client's RSS was
 * 24-29 MiB.  The link writes up to 256 KiB per uv_write and keeps 4 MiB
 * in flight to the kernel, so 1 MiB queued still has a write ready every
 * loop turn; throughput did not move (bench, docs/BENCHMARKS.md) and the
 * client's RSS fell to 12 MiB.
 *
 * max_streams = 1024: HTTP/2 servers allow 100-250 per browser connection;
 * a tunnel carries every visitor of a name, and an idle stream costs about
 * 150 bytes, so 1024 is generous and still bounded.
 *
 * max_meta = 16 KiB: a request head within common server limits (nginx
 * allows 8 KiB per header line); max_control = the largest u16 payload.
 *
 * max_control_queue = 64 KiB: CONTROL messages are a handful per link
 * (Hello, Bind, Bound, an Error, GOAWAY), each at most 4 KiB
 * (WR_CONTROL_MAX_WIRE), so a healthy link never queues more than a few
 * KiB.  The queue grows only when the peer stops reading while the app
 * keeps answering it (a client pipelining Binds it never reads the
 * answers to); 64 KiB is 16 of the largest messages, and bounds that at
 * the size of one full-sized frame per link.  The cap is checked against
 * everything queued on the control queue (the mux's own WINDOW, PING and
 * RST frames too, which are small and bounded by the streams), but only
 * wr_mux_control is ever refused, and never on an empty queue, so one
 * frame of any legal size always gets through.
 *
 * ping_interval = 10 s, ping_timeout = 20 s: a dead link within two
 * intervals, below the 30-60 s idle timeouts of NATs and load balancers.
 */
void wr_mux_config_default(wr_mux_config *cfg, int is_client) {
  memset(cfg, 0, sizeof *cfg);
  cfg->is_client = is_client ? 1 : 0;
  cfg->max_streams = 1024;
  cfg->stream_window = 1u << 20;
  cfg->link_window = 16u << 20;
  cfg->send_buffer = 1u << 20;
  cfg->max_meta = 16384;
  cfg->max_control = WR_FRAME_MAX_PAYLOAD;
  cfg->max_control_queue = 65536;
  cfg->ping_interval = 10000;
  cfg->ping_timeout = 20000;
}

/* ---- blocks and byte queues ---- */

static blk *blk_get(wr_mux *m, size_t need) {
  blk *b;
  if (need <= BLK_SIZE && m->free_blks) {
    b = m->free_blks;
    m->free_blks = b->next;
    m->n_free_blks--;
  } else {
    size_t cap = need > BLK_SIZE ? need : BLK_SIZE;
    b = wr_mem_malloc(m->mem, sizeof *b + cap);
    if (!b) return NULL;
    b->cap = (uint32_t)cap;
  }
  b->next = NULL;
  b->start = b->end = 0;
  b->base = b->data;
  b->release = NULL;
  return b;
}

static void blk_put(wr_mux *m, blk *b) {
  if (b->release) {
    b->release(b->base);
    wr_mem_free(m->mem, b);
  } else if (b->cap == WR_MUX_BUF_CAP && m->n_free_bufs < FREE_BUFS_MAX) {
    b->next = m->free_bufs;
    m->free_bufs = b;
    m->n_free_bufs++;
  } else if (b->cap == BLK_SIZE && m->n_free_blks < FREE_BLKS_MAX) {
    b->next = m->free_blks;
    m->free_blks = b;
    m->n_free_blks++;
  } else {
    wr_mem_free(m->mem, b);
  }
}

static void bq_link(bq *q, blk *b) {
  if (q->tail)
    q->tail->next = b;
  else
    q->head = b;
  q->tail = b;
}

/* Appends up to |len| bytes; returns how many (fewer only on NOMEM). */
static size_t bq_append(wr_mux *m, bq *q, const uint8_t *p, size_t len) {
  size_t done = 0;
  while (done < len) {
    blk *b = q->tail;
    if (!b || b->end == b->cap) {
      if (!(b = blk_get(m, 0))) break;
      bq_link(q, b);
    }
    size_t n = WR_MIN(len - done, (size_t)(b->cap - b->end));
    memcpy(b->base + b->end, p + done, n);
    b->end += (uint32_t)n;
    done += n;
  }
  q->len += done;
  return done;
}

/* Room for |n| contiguous bytes at the tail, counted as queued. */
static uint8_t *bq_reserve(wr_mux *m, bq *q, size_t n) {
  blk *b = q->tail;
  if (!b || b->cap - b->end < n) {
    if (!(b = blk_get(m, n))) return NULL;
    bq_link(q, b);
  }
  uint8_t *p = b->base + b->end;
  b->end += (uint32_t)n;
  q->len += n;
  return p;
}

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

/* Views shorter than this are copied instead: a view costs the sealer one
 * EVP update call, about what copying 1 KiB costs, and the floor bounds
 * the iov count (mux.h: WR_MUX_SEND_IOV_MAX). */
#define VIEW_MIN 1024

/* Room for |n| copied bytes at the end of the output. */
static uint8_t *out_room(sendout *o, size_t n) {
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

static void out_bytes(sendout *o, const uint8_t *p, size_t n) {
  if (o->iov && n >= VIEW_MIN) {
    o->iov[o->niov++] = (struct iovec){.iov_base = (void *)p, .iov_len = n};
    o->len += n;
    return;
  }
  memcpy(out_room(o, n), p, n);
}

/* Moves up to |n| bytes from the head of |q| to the output.  A block the
 * output may still view is retired, not recycled, until the next send. */
static size_t bq_out(wr_mux *m, bq *q, sendout *o, size_t n) {
  size_t done = 0;
  while (done < n && q->head) {
    blk *b = q->head;
    size_t k = WR_MIN(n - done, (size_t)(b->end - b->start));
    out_bytes(o, b->base + b->start, k);
    b->start += (uint32_t)k;
    done += k;
    if (b->start == b->end) {
      q->head = b->next;
      if (!q->head) q->tail = NULL;
      if (o->iov) {
        b->next = m->retired;
        m->retired = b;
      } else {
        blk_put(m, b);
      }
    }
  }
  q->len -= done;
  return done;
}

static void release_retired(wr_mux *m) {
  while (m->retired) {
    blk *b = m->retired;
    m->retired = b->next;
    blk_put(m, b);
  }
}

static void bq_clear(wr_mux *m, bq *q) {
  while (q->head) {
    blk *b = q->head;
    q->head = b->next;
    blk_put(m, b);
  }
  q->tail = NULL;
  q->len = 0;
}

/* ---- stream table ---- */

static int is_local(const wr_mux *m, uint32_t sid) {
  return (int)(sid & 1) == m->cfg.is_client;
}

/* Was |sid| ever opened on this link (by either side)? */
static int sid_seen(const wr_mux *m, uint32_t sid) {
  if (is_local(m, sid)) return sid < m->next_sid;
  return sid <= m->last_peer_sid;
}

/* Each side's ids step by two, so the low bit says only who opened the
 * stream: hashing on sid >> 1 spreads one side's ids over every bucket.
 * With the low bit kept, a tunnel's streams (all even, node-opened) used
 * half the buckets, chains averaged two at load 1, and find() was 1.0-1.4 %
 * of the node's and the client's samples at 1 KiB (docs/BENCHMARKS.md,
 * "Round 6"). */
static uint32_t bucket_of(uint32_t sid, uint32_t nbuckets) {
  return (sid >> 1) & (nbuckets - 1);
}

static stream *find(const wr_mux *m, uint32_t sid) {
  stream *s = m->buckets[bucket_of(sid, m->nbuckets)];
  while (s && s->sid != sid) s = s->hnext;
  return s;
}

/* Load factor 1 before doubling: chains stay about one long. */
static int table_insert(wr_mux *m, stream *s) {
  if (m->nstreams >= m->nbuckets) {
    uint32_t nb = m->nbuckets * 2;
    stream **b = wr_mem_calloc(m->mem, nb, sizeof *b);
    if (!b) return WR_ERR_NOMEM;
    for (uint32_t i = 0; i < m->nbuckets; i++) {
      stream *e = m->buckets[i];
      while (e) {
        stream *next = e->hnext;
        e->hnext = b[bucket_of(e->sid, nb)];
        b[bucket_of(e->sid, nb)] = e;
        e = next;
      }
    }
    wr_mem_free(m->mem, m->buckets);
    m->buckets = b;
    m->nbuckets = nb;
  }
  stream **slot = &m->buckets[bucket_of(s->sid, m->nbuckets)];
  s->hnext = *slot;
  *slot = s;
  m->nstreams++;
  return 0;
}

static void table_remove(wr_mux *m, stream *s) {
  stream **pp = &m->buckets[bucket_of(s->sid, m->nbuckets)];
  while (*pp != s) pp = &(*pp)->hnext;
  *pp = s->hnext;
  m->nstreams--;
}

static stream *stream_alloc(wr_mux *m, uint32_t sid) {
  stream *s = m->free_streams;
  if (s) {
    m->free_streams = s->hnext;
    m->n_free_streams--;
  } else if (!(s = wr_mem_malloc(m->mem, sizeof *s))) {
    return NULL;
  }
  memset(s, 0, sizeof *s);
  s->sid = sid;
  s->rwin = m->cfg.stream_window;
  s->swin = m->peer_stream_window;
  return s;
}

static void stream_free(wr_mux *m, stream *s) {
  bq_clear(m, &s->q);
  if (m->n_free_streams < FREE_STREAMS_MAX) {
    s->hnext = m->free_streams;
    m->free_streams = s;
    m->n_free_streams++;
  } else {
    wr_mem_free(m->mem, s);
  }
}

/* ---- control queue ---- */

static int q_frame(wr_mux *m, const wr_frame *f) {
  size_t n = wr_frame_encoded_len(f);
  uint8_t *p = bq_reserve(m, &m->ctrl, n);
  if (!p) return WR_ERR_NOMEM;
  wr_wbuf b;
  wr_wbuf_init(&b, p, n);
  int rv = wr_frame_encode(&b, f);
  (void)rv; /* sized above: cannot fail */
  m->st.frames_out++;
  return 0;
}

static int q_u32(wr_mux *m, uint8_t type, uint32_t sid, uint32_t v) {
  wr_frame f = {.type = type, .sid = sid, .value = v};
  return q_frame(m, &f);
}

/* ---- credit ---- */

/*
 * Consumed bytes give their link credit back in batches of half a window
 * (one WINDOW frame per 8 MiB by default), or sooner when the peer has
 * less credit left than we are holding back.  Half a window alone
 * deadlocked a link whose other streams held more than half of it
 * unconsumed (visitors that never read, issue 11): the rest of the window
 * was all the peer could send, its consumption never reached the batch
 * size, and every other stream on the link waited for the stuck ones.
 */
static int link_credit_back(wr_mux *m, uint64_t n) {
  m->link_pending += n;
  if (m->link_pending > 0 &&
      (m->link_pending >= m->cfg.link_window / 2 ||
       (int64_t)m->link_pending >= m->rwin_link)) {
    int rv = q_u32(m, WR_FRAME_WINDOW, 0, (uint32_t)m->link_pending);
    if (rv != 0) return rv;
    m->rwin_link += (int64_t)m->link_pending;
    m->link_pending = 0;
  }
  return 0;
}

/*
 * Fair link credit (issue 11).  The link window used to go to whichever
 * stream wrote first.  Streams whose reader stopped hold their share
 * until the node sheds them (about a second later), so a flood of new
 * slow readers of large responses took the whole link and a normal
 * visitor of that name waited 1-5 s for credit.  Now, while the link is
 * short (less than half of the peer's link window left), a stream may
 * hold at most
 *
 *   share = max(FAIR_FLOOR, link_window / (4 * n * n))
 *
 * of it, n being the streams that hold credit (this one included), where
 * "hold" is what the stream sent whose stream credit has not come back.
 * Why n squared: stuck streams never give back what they took, so a
 * share of c/n per newcomer adds up like the harmonic series and fills
 * any link after a few dozen of them; with c/n^2 the shares of all
 * newcomers together stay under 0.41 of the window (pi^2/24), and each
 * later newcomer takes only the floor.  Few streams (up to 4 with the
 * defaults) still get a whole stream window each.  Why 32 KiB: a typical
 * page goes out in one piece, and half the window lasts 256 stuck
 * newcomers, about the node's shedding delay of such a flood (250
 * connections/s in slowhttptest).  A fast reader over its share goes on
 * in floor-sized steps per round trip until the link has room again.
 *
 * The hold is exact only if the peer returns stream credit in small
 * steps while the link is short; otherwise a stream capped below half a
 * stream window would wait for a WINDOW its peer batches until half a
 * window is consumed.  So the cap applies only to a peer that announced
 * WR_SET_CREDIT_STEP, and our receive side does what we announce:
 * CREDIT_STEP while the peer has less than three quarters of our link
 * window left (a margin over the sender's half, for bytes in flight), and
 * when it first gets that short it returns what its streams already hold
 * pending.  FAIR_FLOOR is twice the step, so a capped stream whose bytes
 * were all consumed always has a step pending: it is never stuck.
 */
#define CREDIT_STEP 16384
#define FAIR_FLOOR (2 * CREDIT_STEP)
/* The least credit fire_writable wakes a stream for (see there). */
#define WAKE_MIN 4096

static int link_short_for_peer(const wr_mux *m) {
  return m->rwin_link < (int64_t)(m->cfg.link_window / 4 * 3);
}

static int64_t fair_room(const wr_mux *m, const stream *s) {
  if (!m->peer_credit_step || m->swin_link >= (int64_t)m->peer_link_window / 2)
    return INT64_MAX;
  uint64_t n = (uint64_t)m->n_holding + (s->held == 0);
  uint64_t floor = WR_MAX((uint64_t)FAIR_FLOOR, 2ull * m->peer_credit_step);
  uint64_t share = WR_MAX(floor, m->peer_link_window / (4 * n * n));
  return share > s->held ? (int64_t)(share - s->held) : 0;
}

/* Charges |n| accepted bytes to |s| and the link. */
static void take_credit(wr_mux *m, stream *s, size_t n) {
  s->swin -= (int64_t)n;
  m->swin_link -= (int64_t)n;
  if (n && s->held == 0) m->n_holding++;
  s->held += n;
  s->taken += n;
}

/* The peer gave back |n| of |s|'s stream credit. */
static void held_back(wr_mux *m, stream *s, uint64_t n) {
  if (!s->held) return;
  s->held -= WR_MIN(s->held, n);
  if (!s->held) m->n_holding--;
}

/* Returns |s|'s consumed bytes in a stream WINDOW when enough are
 * pending: half a window, or CREDIT_STEP while the link is short. */
static int stream_credit_back(wr_mux *m, stream *s) {
  if (s->fin_recv || !s->pending) return 0;
  uint64_t step = link_short_for_peer(m) ? CREDIT_STEP : m->cfg.stream_window / 2;
  if (s->pending < WR_MIN(step, (uint64_t)m->cfg.stream_window / 2)) return 0;
  int rv = q_u32(m, WR_FRAME_WINDOW, s->sid, (uint32_t)s->pending);
  if (rv != 0) return rv;
  s->rwin += (int64_t)s->pending;
  s->pending = 0;
  return 0;
}

/* What wr_mux_stream_write accepts on |s|: its credit and the link's,
 * within the room left in the send buffer and its fair share. */
static int64_t credit_of(const wr_mux *m, const stream *s) {
  int64_t c = WR_MIN(s->swin, m->swin_link);
  c = WR_MIN(c, (int64_t)m->cfg.send_buffer - (int64_t)m->queued_data);
  c = WR_MIN(c, fair_room(m, s));
  return c > 0 ? c : 0;
}

/* Blocked streams are woken only once the send buffer is at most half
 * full, so a draining buffer does not wake them for every record; a
 * wake-up held back here is retried by wr_mux_send as the buffer drains. */
static int buf_low(wr_mux *m) {
  if (m->queued_data <= m->cfg.send_buffer / 2) return 1;
  m->buf_full = 1;
  return 0;
}

/*
 * Tells blocked streams that have credit again.  Callbacks may not touch
 * the mux, so walking the list while firing is safe.
 *
 * One stream is woken per call: one woken writer can refill the buffer on
 * its own.  The rest stay blocked with buf_full set, and wr_mux_send wakes
 * the next one when the buffer drains to half again or runs empty
 * (wr_mux_want_write asks for that call).  Waking all of them at once
 * made 50 client streams each restart reading, find the buffer full
 * after the first few reads, and stop again: ~70 epoll_ctl calls per MiB
 * instead of ~8.
 *
 * Which one: the stream that has sent the least in its life (least
 * attained service), oldest first among equals.  Oldest first let a burst
 * of 150 new streams with large answers (slowhttptest -X) each fill the
 * buffer once, ~75 MiB, before a fresh stream with a 5-byte answer that
 * arrived after them got its turn: 1-4 s.  A stream that has sent
 * nothing yet now goes first, and long transfers share what is left.
 * O(blocked streams) per wake-up, and wake-ups come once per half buffer
 * drained.
 */
static int fire_writable(wr_mux *m) {
  m->recheck_writable = 0;
  if (m->swin_link <= 0 || !buf_low(m)) return 0;
  stream *best = NULL;
  int more = 0;
  for (dl *e = m->blocked.next; e != &m->blocked; e = e->next) {
    stream *s = container_of(e, stream, blocked);
    /* Not for a sliver of credit: the client reads its origin only with
     * 4 KiB or more (client_origin.c, MIN_READ) and waits again, and the
     * least-served stream, woken for less, would be chosen again every
     * time while the others starved.  Its own stream WINDOW still wakes
     * it (on_window), and each of those brings at least CREDIT_STEP. */
    if (credit_of(m, s) < WAKE_MIN) continue;
    if (best) more = 1;
    if (!best || s->taken < best->taken) best = s;
  }
  if (!best) return 0;
  if (more) m->buf_full = 1;
  dl_del(&best->blocked);
  if (m->cb.stream_writable &&
      m->cb.stream_writable(m, best->sid, m->user_data) != 0)
    return WR_ERR_CALLBACK;
  return 0;
}

/*
 * Ends |s|: fires stream_close, returns its credit, frees it.  Queued
 * bytes the peer never saw give their link credit back to us; bytes the
 * app has not consumed give theirs back to the peer.
 */
static int stream_end(wr_mux *m, stream *s, int64_t code, int by_peer) {
  int rv = 0;
  if (m->cb.stream_close &&
      m->cb.stream_close(m, s->sid, code, by_peer, m->user_data) != 0)
    rv = WR_ERR_CALLBACK;
  table_remove(m, s);
  dl_del(&s->act);
  dl_del(&s->blocked);
  if (s->q.len) {
    m->swin_link += (int64_t)s->q.len;
    m->queued_data -= s->q.len;
    m->recheck_writable = 1;
  }
  if (s->held) m->n_holding--;
  if (is_local(m, s->sid))
    m->n_local--;
  else
    m->n_peer--;
  uint64_t back = s->unconsumed;
  stream_free(m, s);
  if (rv == 0 && back) rv = link_credit_back(m, back);
  return rv;
}

/* ---- lifecycle ---- */

static int config_ok(const wr_mux_config *c) {
  if (c->stream_window < FLOOR_WINDOW || c->stream_window > MAX_WINDOW)
    return 0;
  if (c->link_window < FLOOR_WINDOW || c->link_window > MAX_WINDOW) return 0;
  if (c->send_buffer < FLOOR_WINDOW || c->send_buffer > MAX_WINDOW) return 0;
  if (c->max_streams == 0 || c->max_streams > MAX_STREAMS_CFG) return 0;
  if (c->max_meta < FLOOR_META || c->max_meta > WR_FRAME_MAX_PAYLOAD) return 0;
  if (c->max_control < FLOOR_CONTROL || c->max_control > WR_FRAME_MAX_PAYLOAD)
    return 0;
  if (c->max_control_queue < FLOOR_CONTROL ||
      c->max_control_queue > MAX_WINDOW)
    return 0;
  if (c->ping_interval && c->ping_timeout < c->ping_interval) return 0;
  return 1;
}

int wr_mux_new(wr_mux **pm, const wr_mux_config *cfg,
               const wr_mux_callbacks *cb, void *user_data, const wr_mem *mem,
               wr_tstamp now) {
  wr_mux_config def;
  if (!pm) return WR_ERR_INVAL;
  *pm = NULL;
  if (!cfg) {
    wr_mux_config_default(&def, 0);
    cfg = &def;
  }
  if (!config_ok(cfg)) return WR_ERR_INVAL;
  if (!mem) mem = wr_mem_default();
  wr_mux *m = wr_mem_calloc(mem, 1, sizeof *m);
  if (!m) return WR_ERR_NOMEM;
  m->cfg = *cfg;
  m->cfg.is_client = cfg->is_client ? 1 : 0;
  if (cb) m->cb = *cb;
  m->user_data = user_data;
  m->mem = mem;
  m->peer_stream_window = FLOOR_WINDOW;
  m->peer_max_streams = cfg->max_streams;
  m->peer_max_meta = FLOOR_META;
  m->peer_max_control = FLOOR_CONTROL;
  m->peer_link_window = FLOOR_WINDOW;
  m->swin_link = FLOOR_WINDOW;
  m->rwin_link = cfg->link_window;
  m->next_sid = m->cfg.is_client ? 1 : 2;
  m->nbuckets = 64;
  dl_init(&m->active);
  dl_init(&m->blocked);
  m->last_rx = now;
  wr_frame_limits lim = {.max_meta = cfg->max_meta,
                         .max_control = cfg->max_control};
  wr_frame_reader_init(&m->rd, &lim, mem);
  m->buckets = wr_mem_calloc(mem, m->nbuckets, sizeof *m->buckets);
  if (!m->buckets) goto fail;

  wr_frame f = {.type = WR_FRAME_SETTINGS};
  f.set.present = (1u << WR_SET_STREAM_WINDOW) | (1u << WR_SET_LINK_WINDOW) |
                  (1u << WR_SET_MAX_STREAMS) | (1u << WR_SET_MAX_META) |
                  (1u << WR_SET_MAX_CONTROL) | (1u << WR_SET_CREDIT_STEP);
  f.set.val[WR_SET_CREDIT_STEP] = CREDIT_STEP;
  f.set.val[WR_SET_STREAM_WINDOW] = cfg->stream_window;
  f.set.val[WR_SET_LINK_WINDOW] = cfg->link_window;
  f.set.val[WR_SET_MAX_STREAMS] = cfg->max_streams;
  f.set.val[WR_SET_MAX_META] = cfg->max_meta;
  f.set.val[WR_SET_MAX_CONTROL] = cfg->max_control;
  if (q_frame(m, &f) != 0) goto fail;
  *pm = m;
  return 0;

fail:
  wr_mux_del(m);
  return WR_ERR_NOMEM;
}

void wr_mux_del(wr_mux *m) {
  if (!m) return;
  if (m->buckets) {
    for (uint32_t i = 0; i < m->nbuckets; i++) {
      stream *s = m->buckets[i];
      while (s) {
        stream *next = s->hnext;
        bq_clear(m, &s->q);
        wr_mem_free(m->mem, s);
        s = next;
      }
    }
    wr_mem_free(m->mem, m->buckets);
  }
  while (m->free_streams) {
    stream *s = m->free_streams;
    m->free_streams = s->hnext;
    wr_mem_free(m->mem, s);
  }
  bq_clear(m, &m->ctrl);
  release_retired(m);
  while (m->free_blks) {
    blk *b = m->free_blks;
    m->free_blks = b->next;
    wr_mem_free(m->mem, b);
  }
  while (m->free_bufs) {
    blk *b = m->free_bufs;
    m->free_bufs = b->next;
    wr_mem_free(m->mem, b);
  }
  wr_frame_reader_free(&m->rd);
  wr_mem_free(m->mem, m);
}

/* ---- receiving ---- */

static int on_settings(wr_mux *m, const wr_frame *f) {
  const wr_frame_settings *s = &f->set;
  uint32_t v[WR_SET_COUNT] = {
      [WR_SET_STREAM_WINDOW] = FLOOR_WINDOW,
      [WR_SET_LINK_WINDOW] = FLOOR_WINDOW,
      [WR_SET_MAX_STREAMS] = m->cfg.max_streams,
      [WR_SET_MAX_META] = FLOOR_META,
      [WR_SET_MAX_CONTROL] = FLOOR_CONTROL,
  };
  for (int id = 1; id < WR_SET_COUNT; id++)
    if (s->present & (1u << id)) v[id] = s->val[id];
  if (v[WR_SET_STREAM_WINDOW] < FLOOR_WINDOW ||
      v[WR_SET_STREAM_WINDOW] > MAX_WINDOW ||
      v[WR_SET_LINK_WINDOW] < FLOOR_WINDOW ||
      v[WR_SET_LINK_WINDOW] > MAX_WINDOW || v[WR_SET_MAX_STREAMS] == 0 ||
      v[WR_SET_MAX_META] < FLOOR_META ||
      v[WR_SET_MAX_META] > WR_FRAME_MAX_PAYLOAD ||
      v[WR_SET_MAX_CONTROL] < FLOOR_CONTROL ||
      v[WR_SET_MAX_CONTROL] > WR_FRAME_MAX_PAYLOAD)
    return WR_ERR_PROTO;
  m->got_settings = 1;
  /* Streams we opened so far assumed the floor window: top them up. */
  int64_t delta = (int64_t)v[WR_SET_STREAM_WINDOW] - FLOOR_WINDOW;
  if (delta) {
    for (uint32_t i = 0; i < m->nbuckets; i++)
      for (stream *st = m->buckets[i]; st; st = st->hnext) st->swin += delta;
  }
  m->swin_link += (int64_t)v[WR_SET_LINK_WINDOW] - FLOOR_WINDOW;
  m->peer_stream_window = v[WR_SET_STREAM_WINDOW];
  m->peer_max_streams = v[WR_SET_MAX_STREAMS];
  m->peer_max_meta = v[WR_SET_MAX_META];
  m->peer_max_control = v[WR_SET_MAX_CONTROL];
  m->peer_link_window = v[WR_SET_LINK_WINDOW];
  /* A step over half a stream window is no step at all. */
  if ((s->present & (1u << WR_SET_CREDIT_STEP)) &&
      s->val[WR_SET_CREDIT_STEP] <= m->peer_stream_window / 2)
    m->peer_credit_step = s->val[WR_SET_CREDIT_STEP];
  return fire_writable(m);
}

static int on_open(wr_mux *m, const wr_frame *f) {
  int rv;
  if (is_local(m, f->sid) || f->sid <= m->last_peer_sid) return WR_ERR_PROTO;
  m->last_peer_sid = f->sid;
  if (m->goaway_sent || m->n_peer >= m->cfg.max_streams) {
    /* Refused, not fatal: the peer may simply not have seen our GOAWAY or
     * a stream close yet.  Only a flood of them is abuse. */
    if (++m->refused_unsent > WR_MAX(MIN_REFUSED_UNSENT, m->cfg.max_streams))
      return WR_ERR_LIMIT;
    m->st.streams_reset++;
    return q_u32(m, WR_FRAME_RST, f->sid, WR_MUX_RST_REFUSED);
  }
  stream *s = stream_alloc(m, f->sid);
  if (!s) return WR_ERR_NOMEM;
  if ((rv = table_insert(m, s)) != 0) {
    stream_free(m, s);
    return rv;
  }
  m->n_peer++;
  m->st.streams_opened++;
  if (m->cb.stream_open &&
      m->cb.stream_open(m, f->sid, f->payload, f->len, m->user_data) != 0)
    return WR_ERR_CALLBACK;
  if (f->flags & WR_FRAME_FLAG_FIN) {
    s->fin_recv = 1;
    if (m->cb.stream_fin && m->cb.stream_fin(m, f->sid, m->user_data) != 0)
      return WR_ERR_CALLBACK;
  }
  return 0;
}

static int on_window(wr_mux *m, const wr_frame *f) {
  if (f->sid == 0) {
    if (m->swin_link + f->value > MAX_WINDOW) return WR_ERR_FLOW;
    m->swin_link += f->value;
    return fire_writable(m);
  }
  stream *s = find(m, f->sid);
  if (!s) return sid_seen(m, f->sid) ? 0 : WR_ERR_PROTO;
  if (s->swin + f->value > MAX_WINDOW) return WR_ERR_FLOW;
  s->swin += f->value;
  held_back(m, s, f->value);
  if (dl_linked(&s->blocked) && credit_of(m, s) > 0 && buf_low(m)) {
    dl_del(&s->blocked);
    if (m->cb.stream_writable &&
        m->cb.stream_writable(m, s->sid, m->user_data) != 0)
      return WR_ERR_CALLBACK;
  }
  return 0;
}

static int on_frame(wr_mux *m, const wr_frame *f) {
  stream *s;
  m->st.frames_in++;
  if (!m->got_settings && f->type != WR_FRAME_SETTINGS) return WR_ERR_PROTO;
  switch (f->type) {
  case WR_FRAME_SETTINGS:
    if (m->got_settings) return WR_ERR_PROTO;
    return on_settings(m, f);
  case WR_FRAME_OPEN:
    return on_open(m, f);
  case WR_FRAME_RST:
    if (!(s = find(m, f->sid))) return sid_seen(m, f->sid) ? 0 : WR_ERR_PROTO;
    m->st.streams_reset++;
    return stream_end(m, s, f->value, 1);
  case WR_FRAME_WINDOW:
    return on_window(m, f);
  case WR_FRAME_PING:
    if (++m->pong_unsent > MAX_PONG_UNSENT) return WR_ERR_LIMIT;
    {
      wr_frame pong = {.type = WR_FRAME_PONG};
      memcpy(pong.opaque, f->opaque, 8);
      return q_frame(m, &pong);
    }
  case WR_FRAME_PONG:
    return 0; /* liveness was noted when the bytes came in */
  case WR_FRAME_GOAWAY:
    if (m->goaway_recv) return 0;
    m->goaway_recv = 1;
    if (m->cb.goaway && m->cb.goaway(m, f->value, m->user_data) != 0)
      return WR_ERR_CALLBACK;
    return 0;
  case WR_FRAME_CONTROL:
    if (m->cb.control && m->cb.control(m, f->payload, f->len, m->user_data))
      return WR_ERR_CALLBACK;
    return 0;
  default:
    return WR_ERR_PROTO; /* the reader lets no other type through */
  }
}

/* The link just got short: streams' consumed bytes waiting for half a
 * window go back now in steps (fair link credit, above), or a peer that
 * capped a stream at its share would wait for them for ever.  Once per
 * crossing, and a crossing takes a quarter of the link window in DATA. */
static int flush_steps(wr_mux *m) {
  for (uint32_t i = 0; i < m->nbuckets; i++)
    for (stream *st = m->buckets[i]; st; st = st->hnext) {
      int rv = stream_credit_back(m, st);
      if (rv != 0) return rv;
    }
  return 0;
}

/*
 * A piece of a DATA frame.  The whole frame is charged against both
 * windows when its first piece arrives.  Each piece is then looked up
 * again, because the app may reset the stream between two records of one
 * frame; bytes with no stream to go to return their link credit at once.
 */
static int on_data(wr_mux *m, const wr_frame_event *ev) {
  const wr_frame *f = ev->f;
  stream *s = find(m, f->sid);
  int rv;
  if (ev->off == 0) {
    if (!m->got_settings) return WR_ERR_PROTO;
    if (f->len > m->rwin_link) return WR_ERR_FLOW;
    if (s) {
      if (s->fin_recv) return WR_ERR_PROTO;
      if (f->len > s->rwin) return WR_ERR_FLOW;
      s->rwin -= f->len;
    } else if (!sid_seen(m, f->sid)) {
      return WR_ERR_PROTO;
    }
    int was_short = link_short_for_peer(m);
    m->rwin_link -= f->len;
    if (!was_short && link_short_for_peer(m) && (rv = flush_steps(m)) != 0)
      return rv;
  }
  if (!s) {
    if (ev->last) m->st.frames_in++;
    return ev->len ? link_credit_back(m, ev->len) : 0;
  }
  if (ev->len) {
    s->unconsumed += ev->len;
    m->st.bytes_in += ev->len;
    if (m->cb.stream_data &&
        m->cb.stream_data(m, f->sid, ev->data, ev->len, m->user_data) != 0)
      return WR_ERR_CALLBACK;
  }
  if (!ev->last) return 0;
  m->st.frames_in++;
  if (!(f->flags & WR_FRAME_FLAG_FIN)) return 0;
  s->fin_recv = 1;
  if (m->cb.stream_fin && m->cb.stream_fin(m, f->sid, m->user_data) != 0)
    return WR_ERR_CALLBACK;
  if (s->fin_sent && (rv = stream_end(m, s, -1, 1)) != 0) return rv;
  return 0;
}

static int set_fatal(wr_mux *m, int rv) {
  if (rv == WR_ERR_PROTO || rv == WR_ERR_FLOW || rv == WR_ERR_TOOBIG ||
      rv == WR_ERR_LIMIT)
    m->st.rx_malformed++;
  m->fatal = rv;
  return rv;
}

int wr_mux_recv(wr_mux *m, const uint8_t *data, size_t len, wr_tstamp now) {
  int rv;
  if (m->fatal) return m->fatal;
  if (len == 0) return 0;
  m->last_rx = now;
  m->ping_out = 0;
  if (m->recheck_writable && (rv = fire_writable(m)) != 0)
    return set_fatal(m, rv);
  wr_frame_event ev;
  while ((rv = wr_frame_reader_next(&m->rd, &data, &len, &ev)) == 1) {
    if (ev.kind == WR_FRAME_EV_DATA)
      rv = on_data(m, &ev);
    else
      rv = on_frame(m, ev.f);
    if (rv != 0) return set_fatal(m, rv);
  }
  if (rv < 0) return set_fatal(m, rv);
  return 0;
}

/* ---- sending ---- */

int wr_mux_want_write(const wr_mux *m) {
  if (m->fatal) return 0;
  return m->ctrl.len > 0 || !dl_empty(&m->active) ||
         (m->buf_full && !dl_empty(&m->blocked));
}

/* wr_mux_send and wr_mux_send_v: the same frames, copied or viewed. */
static wr_ssize send_out(wr_mux *m, sendout *o, size_t cap) {
  int rv;
  if (m->fatal) return m->fatal;
  size_t queued_before = m->queued_data;
  release_retired(m);
  if (m->recheck_writable && (rv = fire_writable(m)) != 0)
    return set_fatal(m, rv);
  bq_out(m, &m->ctrl, o, cap);
  if (m->ctrl.len) return (wr_ssize)o->len; /* the output is full */
  m->refused_unsent = 0;
  m->pong_unsent = 0;

  while (!dl_empty(&m->active) && cap - o->len >= WR_FRAME_HDR_LEN) {
    stream *s = container_of(m->active.next, stream, act);
    size_t room = cap - o->len - WR_FRAME_HDR_LEN;
    size_t n = WR_MIN(WR_MIN(s->q.len, room), (size_t)WR_FRAME_MAX_DATA);
    /* A small tail piece only if nothing else went out: every call with
     * work queued makes progress, so want_write loops terminate. */
    if (n < s->q.len && n < MIN_DATA_FRAME && o->len > 0) break;
    int fin = s->fin_queued && n == s->q.len;
    wr_frame_hdr_put(out_room(o, WR_FRAME_HDR_LEN), WR_FRAME_DATA,
                     fin ? WR_FRAME_FLAG_FIN : 0, (uint16_t)n, s->sid);
    bq_out(m, &s->q, o, n);
    m->queued_data -= n;
    m->st.frames_out++;
    m->st.bytes_out += n;
    dl_del(&s->act);
    if (fin) {
      s->fin_sent = 1;
      if (s->fin_recv && (rv = stream_end(m, s, -1, 0)) != 0)
        return set_fatal(m, rv);
    } else if (s->q.len) {
      dl_push(&m->active, &s->act); /* round robin */
    }
  }
  /* Wake the next blocked stream when this call drained the buffer to
   * half, or when nothing is left to send (so a woken stream that wrote
   * nothing cannot leave the others waiting); not on every record sent
   * below half, which woke every stream once per flush. */
  if (m->buf_full && m->queued_data <= m->cfg.send_buffer / 2 &&
      (queued_before > m->cfg.send_buffer / 2 || dl_empty(&m->active))) {
    m->buf_full = 0;
    if ((rv = fire_writable(m)) != 0) return set_fatal(m, rv);
  }
  return (wr_ssize)o->len;
}

wr_ssize wr_mux_send(wr_mux *m, uint8_t *dst, size_t cap, wr_tstamp now) {
  (void)now;
  if (!m->fatal && cap < WR_MUX_MIN_SEND) return WR_ERR_INVAL;
  sendout o = {.dst = dst};
  return send_out(m, &o, cap);
}

wr_ssize wr_mux_send_v(wr_mux *m, uint8_t *scratch, size_t cap,
                       struct iovec *iov, size_t *piovcnt, wr_tstamp now) {
  (void)now;
  if (!m->fatal && (cap < WR_MUX_MIN_SEND || cap > WR_MUX_SEND_V_MAX ||
                    *piovcnt < WR_MUX_SEND_IOV_MAX))
    return WR_ERR_INVAL;
  sendout o = {.dst = scratch, .iov = iov};
  wr_ssize n = send_out(m, &o, cap);
  *piovcnt = n > 0 ? o.niov : 0;
  return n;
}

/* ---- time ---- */

wr_tstamp wr_mux_deadline(const wr_mux *m) {
  if (m->fatal || m->cfg.ping_interval == 0) return WR_TSTAMP_NONE;
  wr_tstamp d = m->last_rx + m->cfg.ping_timeout;
  if (!m->ping_out) d = WR_MIN(d, m->last_rx + m->cfg.ping_interval);
  return d;
}

int wr_mux_tick(wr_mux *m, wr_tstamp now) {
  int rv;
  if (m->fatal) return m->fatal;
  if (m->recheck_writable && (rv = fire_writable(m)) != 0)
    return set_fatal(m, rv);
  if (m->cfg.ping_interval == 0) return 0;
  if (now >= m->last_rx + m->cfg.ping_timeout) {
    m->fatal = WR_ERR_TIMEOUT;
    return WR_ERR_TIMEOUT;
  }
  if (!m->ping_out && now >= m->last_rx + m->cfg.ping_interval) {
    wr_frame f = {.type = WR_FRAME_PING};
    uint64_t v = ++m->ping_seq;
    wr_put_u32(f.opaque, (uint32_t)(v >> 32));
    wr_put_u32(f.opaque + 4, (uint32_t)v);
    if ((rv = q_frame(m, &f)) != 0) return set_fatal(m, rv);
    m->ping_out = 1;
  }
  return 0;
}

/* ---- streams ---- */

int wr_mux_stream_open(wr_mux *m, const uint8_t *meta, size_t len,
                       uint32_t *psid, void *stream_user_data) {
  int rv;
  if (m->fatal) return m->fatal;
  if (m->goaway_sent || m->goaway_recv) return WR_ERR_CLOSED;
  if (len > m->peer_max_meta) return WR_ERR_TOOBIG;
  if (m->n_local >= WR_MIN(m->cfg.max_streams, m->peer_max_streams) ||
      m->next_sid > UINT32_MAX)
    return WR_ERR_LIMIT;
  uint32_t sid = (uint32_t)m->next_sid;
  stream *s = stream_alloc(m, sid);
  if (!s) return WR_ERR_NOMEM;
  if ((rv = table_insert(m, s)) != 0) {
    stream_free(m, s);
    return rv;
  }
  wr_frame f = {.type = WR_FRAME_OPEN, .sid = sid, .payload = meta,
                .len = (uint32_t)len};
  if ((rv = q_frame(m, &f)) != 0) {
    table_remove(m, s);
    stream_free(m, s);
    return rv;
  }
  s->user_data = stream_user_data;
  m->next_sid += 2;
  m->n_local++;
  m->st.streams_opened++;
  if (psid) *psid = sid;
  return 0;
}

wr_ssize wr_mux_stream_write(wr_mux *m, uint32_t sid, const uint8_t *data,
                             size_t len) {
  if (m->fatal) return m->fatal;
  stream *s = find(m, sid);
  if (!s) return WR_ERR_NOTFOUND;
  if (s->fin_queued) return WR_ERR_CLOSED;
  size_t n = WR_MIN(len, (size_t)credit_of(m, s));
  if (n < len && !dl_linked(&s->blocked)) dl_push(&m->blocked, &s->blocked);
  if (n < len && m->queued_data + n >= m->cfg.send_buffer) m->buf_full = 1;
  if (n == 0) return 0;
  size_t done = bq_append(m, &s->q, data, n);
  if (done == 0) return WR_ERR_NOMEM;
  take_credit(m, s, done);
  m->queued_data += done;
  if (!dl_linked(&s->act)) dl_push(&m->active, &s->act);
  return (wr_ssize)done;
}

uint8_t *wr_mux_buf_new(wr_mux *m) {
  blk *b = m->free_bufs;
  if (b) {
    m->free_bufs = b->next;
    m->n_free_bufs--;
  } else if ((b = wr_mem_malloc(m->mem, sizeof *b + WR_MUX_BUF_CAP))) {
    b->cap = WR_MUX_BUF_CAP;
  } else {
    return NULL;
  }
  b->next = NULL;
  b->start = b->end = 0;
  b->base = b->data;
  b->release = NULL;
  return b->data;
}

void wr_mux_buf_free(wr_mux *m, uint8_t *buf) {
  if (buf) blk_put(m, container_of(buf, blk, data));
}

wr_ssize wr_mux_stream_write_buf(wr_mux *m, uint32_t sid, uint8_t *buf,
                                 size_t len) {
  blk *b = container_of(buf, blk, data);
  stream *s = m->fatal ? NULL : find(m, sid);
  wr_ssize rv = m->fatal           ? m->fatal
                : !s               ? WR_ERR_NOTFOUND
                : s->fin_queued    ? WR_ERR_CLOSED
                : len > WR_MUX_BUF_CAP || len > (size_t)credit_of(m, s)
                    ? WR_ERR_INVAL
                    : (wr_ssize)len;
  if (rv <= 0) {
    blk_put(m, b);
    return rv;
  }
  if (len < WR_MUX_BUF_CAP / 4) {
    /* A short read (a small response, the end of a body) is copied into
     * the queue and the block recycled: queued blocks then hold at least
     * a quarter of their size in data, so memory stays within 4x of the
     * bytes the send buffer and credit allow, and 50 streams of 1 KiB
     * responses do not each hold a 64 KiB block. */
    len = bq_append(m, &s->q, buf, len); /* fewer only on NOMEM */
    blk_put(m, b);
    if (len == 0) return WR_ERR_NOMEM;
    rv = (wr_ssize)len;
  } else {
    /* The block joins the queue as it is: no copy. */
    b->start = 0;
    b->end = (uint32_t)len;
    bq_link(&s->q, b);
    s->q.len += len;
  }
  take_credit(m, s, len);
  m->queued_data += len;
  if (!dl_linked(&s->act)) dl_push(&m->active, &s->act);
  return rv;
}

/*
 * Why EXT_MIN: a queued buffer costs a block header (a small malloc) and
 * the sealer one EVP update of its own (out_bytes views pieces of
 * VIEW_MIN bytes and more); a piece below 4 KiB is cheaper copied into
 * the tail block, where it joins its neighbours.  It also keeps what a
 * queued buffer pins (its owner's allocation) near the bytes it carries.
 */
#define EXT_MIN 4096

wr_ssize wr_mux_stream_write_ext(wr_mux *m, uint32_t sid, uint8_t *buf,
                                 size_t len, wr_mux_release release) {
  stream *s = m->fatal ? NULL : find(m, sid);
  wr_ssize rv = m->fatal           ? m->fatal
                : !s               ? WR_ERR_NOTFOUND
                : s->fin_queued    ? WR_ERR_CLOSED
                : len > UINT32_MAX || len > (size_t)credit_of(m, s)
                    ? WR_ERR_INVAL
                    : (wr_ssize)len;
  blk *b = NULL;
  if (rv > 0 && len >= EXT_MIN) {
    b = wr_mem_malloc(m->mem, sizeof *b);
    if (!b) rv = WR_ERR_NOMEM;
  }
  if (rv <= 0) {
    release(buf);
    return rv;
  }
  if (!b) {
    len = bq_append(m, &s->q, buf, len); /* fewer only on NOMEM */
    release(buf);
    if (len == 0) return WR_ERR_NOMEM;
    rv = (wr_ssize)len;
  } else {
    /* The buffer joins the queue as it is: no copy.  cap = end, so no
     * later append writes into it. */
    b->next = NULL;
    b->base = buf;
    b->release = release;
    b->cap = b->end = (uint32_t)len;
    b->start = 0;
    bq_link(&s->q, b);
    s->q.len += len;
  }
  s->swin -= (int64_t)len;
  m->swin_link -= (int64_t)len;
  m->queued_data += len;
  if (!dl_linked(&s->act)) dl_push(&m->active, &s->act);
  return rv;
}

size_t wr_mux_stream_wait(wr_mux *m, uint32_t sid) {
  stream *s = m->fatal ? NULL : find(m, sid);
  if (!s || s->fin_queued) return 0;
  size_t c = (size_t)credit_of(m, s);
  if (!dl_linked(&s->blocked)) dl_push(&m->blocked, &s->blocked);
  if (m->queued_data > m->cfg.send_buffer / 2) m->buf_full = 1;
  return c;
}

size_t wr_mux_stream_credit(const wr_mux *m, uint32_t sid) {
  if (m->fatal) return 0;
  const stream *s = find(m, sid);
  if (!s || s->fin_queued) return 0;
  return (size_t)credit_of(m, s);
}

int wr_mux_stream_close(wr_mux *m, uint32_t sid) {
  if (m->fatal) return m->fatal;
  stream *s = find(m, sid);
  if (!s) return WR_ERR_NOTFOUND;
  if (s->fin_queued) return 0;
  s->fin_queued = 1;
  dl_del(&s->blocked);
  if (!dl_linked(&s->act)) dl_push(&m->active, &s->act);
  return 0;
}

int wr_mux_stream_reset(wr_mux *m, uint32_t sid, uint32_t code) {
  int rv;
  if (m->fatal) return m->fatal;
  stream *s = find(m, sid);
  if (!s) return WR_ERR_NOTFOUND;
  if ((rv = q_u32(m, WR_FRAME_RST, sid, code)) != 0) return set_fatal(m, rv);
  m->st.streams_reset++;
  if ((rv = stream_end(m, s, code, 0)) != 0) return set_fatal(m, rv);
  return 0;
}

int wr_mux_stream_consume(wr_mux *m, uint32_t sid, size_t n) {
  int rv;
  if (m->fatal) return m->fatal;
  stream *s = find(m, sid);
  if (!s) return sid != 0 && sid_seen(m, sid) ? 0 : WR_ERR_NOTFOUND;
  if (n > s->unconsumed) return WR_ERR_INVAL;
  s->unconsumed -= n;
  /* No stream WINDOW once the peer has sent FIN: it will send no more. */
  if (!s->fin_recv) {
    s->pending += n;
    if ((rv = stream_credit_back(m, s)) != 0) return set_fatal(m, rv);
  }
  if ((rv = link_credit_back(m, n)) != 0) return set_fatal(m, rv);
  return 0;
}

int wr_mux_stream_set_user_data(wr_mux *m, uint32_t sid, void *ud) {
  stream *s = find(m, sid);
  if (!s) return WR_ERR_NOTFOUND;
  s->user_data = ud;
  return 0;
}

void *wr_mux_stream_get_user_data(const wr_mux *m, uint32_t sid) {
  const stream *s = find(m, sid);
  return s ? s->user_data : NULL;
}

/* ---- link ---- */

int wr_mux_control(wr_mux *m, const uint8_t *msg, size_t len) {
  int rv;
  if (m->fatal) return m->fatal;
  if (len > m->peer_max_control) return WR_ERR_TOOBIG;
  wr_frame f = {.type = WR_FRAME_CONTROL, .payload = msg,
                .len = (uint32_t)len};
  /* Bounded (max_control_queue), but an empty queue takes any frame. */
  if (m->ctrl.len > 0 &&
      m->ctrl.len + wr_frame_encoded_len(&f) > m->cfg.max_control_queue)
    return WR_ERR_NOBUF;
  if ((rv = q_frame(m, &f)) != 0) return set_fatal(m, rv);
  return 0;
}

int wr_mux_goaway(wr_mux *m, uint32_t code) {
  int rv;
  if (m->fatal) return m->fatal;
  if (m->goaway_sent) return 0;
  if ((rv = q_u32(m, WR_FRAME_GOAWAY, 0, code)) != 0) return set_fatal(m, rv);
  m->goaway_sent = 1;
  return 0;
}

void wr_mux_get_stats(const wr_mux *m, wr_mux_stats *st) {
  *st = m->st;
  st->streams_active = m->nstreams;
  st->queued_bytes = m->ctrl.len + m->queued_data;
}
