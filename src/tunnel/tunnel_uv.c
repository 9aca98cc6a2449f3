/*
 * The libuv tunnel link: socket <-> Noise handshake <-> sealed records <->
 * mux.  No protocol decisions live here; this file moves bytes between a
 * uv_tcp_t and the sans-IO cores and turns their deadlines into a timer.
 *
 * States: HANDSHAKE (noise messages, 10 s limit) -> READY (records + mux)
 *         -> CLOSING (handles closing; `closed` fires once all have).
 *
 * Input: one buffer per link, allocated while bytes are pending and freed
 * when it drains, so an idle link holds no read buffer (1,000 idle tunnels
 * must stay cheap).  Records are opened in place and their plaintext fed
 * to wr_mux_recv.
 *
 * Output: wr_link_flush() arms a uv_prepare handle; once per loop turn
 * the queued mux frames are cut into records of up to 16 KiB and sealed
 * into one buffer sized to what is queued, written with one uv_write.
 * The sealer reads stream bytes where the mux queued them
 * (wr_mux_send_v), so they are copied once: from the queue, encrypted,
 * into the write buffer.  At
 * most WRITE_QUEUE_MAX bytes may wait in the kernel-bound queue; beyond
 * that the mux keeps its frames (and its credit bounds them).
 *
 * Mux events are queued and dispatched after the mux call returns (see
 * link.h): the mux forbids re-entry from its callbacks, and the app wants
 * to answer events with mux calls.
 */
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include <sodium.h>

#include "warren/err.h"
#include "warren/link.h"
#include "warren/log.h"

#include "frame.h"

/* The handshake is two small messages; a peer that has not finished it in
 * 10 s is broken or hostile, and holds a socket we want back. */
#define HANDSHAKE_TIMEOUT_MS 10000
/* Enough input for a few records per read without a second pass. */
#define IN_CAP (64 * 1024 + WR_RECORD_MAX_WIRE)
/* 4 MiB in flight to the kernel keeps a 1 MiB/stream window busy on
 * loopback while bounding what a stalled peer can make us hold. */
#define WRITE_QUEUE_MAX (4u * 1024 * 1024)
/* One uv_write carries at most 16 records (~256 KiB): big enough to
 * amortise the syscall, small enough to interleave streams. */
#define WRITE_RECORDS_MAX 16

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

/*
 * Full-size write buffers (16 records) are recycled through a small pool,
 * one per process: allocating and freeing ~257 KiB per flush made glibc
 * grow and trim the heap top (a brk and fresh zeroed pages every few
 * flushes: 11 page faults per MiB on the client).  WRITE_POOL_MAX
 * buffers (~1 MiB) are kept at most, and only once a link has been busy.
 */
#define WRITE_BUF_CAP \
  (WRITE_RECORDS_MAX * (WR_RECORD_MAX_PLAINTEXT + WR_RECORD_OVERHEAD + 64))
#define WRITE_POOL_MAX 4
static link_write *write_pool;
static unsigned write_pool_n;

static link_write *write_get(size_t cap) {
  link_write *w;
  if (cap > WRITE_BUF_CAP / 2 && cap <= WRITE_BUF_CAP) {
    if ((w = write_pool)) {
      write_pool = w->next;
      write_pool_n--;
      return w;
    }
    cap = WRITE_BUF_CAP;
  }
  w = malloc(sizeof *w + cap);
  if (w) w->cap = cap;
  return w;
}

static void write_put(link_write *w) {
  if (w->cap == WRITE_BUF_CAP && write_pool_n < WRITE_POOL_MAX) {
    w->next = write_pool;
    write_pool = w;
    write_pool_n++;
    return;
  }
  free(w);
}

/*
 * Stream bytes handed to the app (stream_data) come from here, and the
 * app gives them back with wr_link_buf_free once written.  A full record
 * is decrypted straight into one such buffer (open_rec), so a 1 MiB
 * response takes 64 of 16 KiB.  malloc and free of a 16 KiB chunk go past
 * glibc's tcache, through its bins, and when glibc trimmed the heap top
 * the next record was decrypted into freshly faulted pages: 3.5 % of the
 * node's samples at best, a third (faults, brk, _int_malloc) in most runs
 * (docs/BENCHMARKS.md, Round 4).  Buffers come in four classes,
 * 2, 4, 8 and 16 KiB, each a LIFO free list, so a returned buffer is
 * usually reused while still in cache.  A piece gets the smallest class
 * that holds it, so a held buffer pins less than twice the bytes (and
 * window credit) it carries; pieces of 1 KiB or less use malloc, whose
 * tcache is already as fast for them.
 *
 * Why DATA_POOL_BYTES = 1 MiB: in steady state a buffer lives from one
 * link read to the visitor's write, usually the same loop turn, so the
 * buffers in use at once are about one read's records per busy link
 * (64 KiB: 4-5) plus those queued behind slow visitors.  1 MiB (64 full
 * buffers) covers the first with room to spare, and is what an idle node
 * may keep after a burst; everything beyond is freed at once.  One pool
 * per process, like the write pool: a loop runs on one thread, and a
 * buffer may outlive its link.
 */
#define DATA_CLASSES 4
#define DATA_CLASS_MIN 2048 /* class k holds DATA_CLASS_MIN << k bytes */
#define DATA_SMALL 1024     /* up to this, plain malloc */
#define DATA_POOL_BYTES (1024u * 1024)
typedef union data_hdr {
  struct {
    union data_hdr *next; /* in the pool */
    size_t cap;           /* bytes after the header */
    int cls;              /* class, or -1: malloc'd to size */
  } h;
  max_align_t align;
} data_hdr;
static data_hdr *data_pool[DATA_CLASSES];
static size_t data_pool_bytes;

/* Under AddressSanitizer a pooled buffer is poisoned, so a use after
 * wr_link_buf_free is still caught although the memory is not freed. */
#if defined(__SANITIZE_ADDRESS__)
#define DATA_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define DATA_ASAN 1
#endif
#endif
#ifdef DATA_ASAN
#include <sanitizer/asan_interface.h>
#define DATA_POISON(p, n) ASAN_POISON_MEMORY_REGION(p, n)
#define DATA_UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION(p, n)
#else
#define DATA_POISON(p, n) ((void)(p), (void)(n))
#define DATA_UNPOISON(p, n) ((void)(p), (void)(n))
#endif

uint8_t *wr_link_buf_new(size_t len) {
  int cls = -1;
  size_t cap = len;
  if (len > DATA_SMALL && len <= (size_t)DATA_CLASS_MIN << (DATA_CLASSES - 1))
    for (cls = 0; ((size_t)DATA_CLASS_MIN << cls) < len; cls++) {
    }
  data_hdr *b;
  if (cls >= 0) {
    cap = (size_t)DATA_CLASS_MIN << cls;
    if ((b = data_pool[cls])) {
      data_pool[cls] = b->h.next;
      data_pool_bytes -= cap;
      DATA_UNPOISON(b + 1, cap);
      return (uint8_t *)(b + 1);
    }
  }
  if (cap > SIZE_MAX - sizeof *b || !(b = malloc(sizeof *b + cap)))
    return NULL;
  b->h.cap = cap;
  b->h.cls = cls;
  return (uint8_t *)(b + 1);
}

/* The capacity of a buffer from wr_link_buf_new (at least what was asked). */
static size_t data_cap(const uint8_t *buf) {
  return ((const data_hdr *)buf - 1)->h.cap;
}

void wr_link_buf_free(uint8_t *buf) {
  if (!buf) return;
  data_hdr *b = (data_hdr *)buf - 1;
  if (b->h.cls >= 0) {
    size_t cap = (size_t)DATA_CLASS_MIN << b->h.cls;
    if (data_pool_bytes + cap <= DATA_POOL_BYTES) {
      DATA_POISON(b + 1, cap);
      b->h.next = data_pool[b->h.cls];
      data_pool[b->h.cls] = b;
      data_pool_bytes += cap;
      return;
    }
  }
  free(b);
}

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

/* Scratch for the frame headers and small pieces of one record (see
 * wr_mux_send_v): one per process, not per link, because the loop is
 * single-threaded and do_flush never re-enters; 1,000 idle tunnels should
 * not hold 16 MiB of it. */
static uint8_t seal_scratch[WR_RECORD_MAX_PLAINTEXT];

/* The fault tap (link.h): one per process, like the pools above. */
static wr_link_tap fault_tap;
static void *fault_tap_ud;

void wr_link_set_tap(wr_link_tap tap, void *ud) {
  fault_tap = tap;
  fault_tap_ud = ud;
}
_Static_assert(WR_MUX_SEND_V_MAX >= WR_RECORD_MAX_PLAINTEXT,
               "a record's worth fits one wr_mux_send_v call");

uint64_t wr_wall_ms(void) {
  struct timeval tv;
  gettimeofday(&tv, NULL);
  return (uint64_t)tv.tv_sec * 1000 + (uint64_t)tv.tv_usec / 1000;
}

void wr_sodium_rand(uint8_t *dst, size_t len, void *ud) {
  (void)ud;
  randombytes_buf(dst, len);
}

void wr_tcp_tune(uv_tcp_t *tcp) {
  /* Nagle would hold small responses for the peer's delayed ACK: that is
   * why `ssh -N -R` manages only ~5k req/s (DESIGN.md). */
  uv_tcp_nodelay(tcp, 1);
  uv_tcp_keepalive(tcp, 1, 60);
}

int wr_uv_write_now(uv_write_t *req, uv_stream_t *s, uv_buf_t *bufs,
                    unsigned n, uv_write_cb cb) {
  /* UV_EAGAIN when writes are queued: order is kept.  Any other error is
   * left to uv_write, so it is reported the usual way. */
  int w = uv_try_write(s, bufs, n);
  if (w > 0) {
    size_t left = (size_t)w;
    while (n > 0 && left >= bufs[0].len) {
      left -= bufs[0].len;
      bufs++;
      n--;
    }
    if (n == 0) return 1;
    bufs[0].base += left;
    bufs[0].len -= left;
  }
  int rv = uv_write(req, s, bufs, n, cb);
  return rv < 0 ? rv : 0;
}

int wr_parse_hostport(const char *s, struct sockaddr_storage *ss) {
  char host[256];
  const char *colon;
  memset(ss, 0, sizeof *ss);
  if (!s || !*s) return WR_ERR_INVAL;
  if (s[0] == '[') {
    const char *end = strchr(s, ']');
    if (!end || end[1] != ':') return WR_ERR_INVAL;
    size_t n = (size_t)(end - s - 1);
    if (n >= sizeof host) return WR_ERR_INVAL;
    memcpy(host, s + 1, n);
    host[n] = 0;
    colon = end + 1;
  } else {
    colon = strrchr(s, ':');
    if (!colon) return WR_ERR_INVAL;
    size_t n = (size_t)(colon - s);
    if (n == 0 || n >= sizeof host) return WR_ERR_INVAL;
    memcpy(host, s, n);
    host[n] = 0;
  }
  char *endp;
  long port = strtol(colon + 1, &endp, 10);
  if (*endp || port < 0 || port > 65535 || colon[1] == 0) return WR_ERR_INVAL;
  if (strcmp(host, "localhost") == 0) strcpy(host, "127.0.0.1");
  if (uv_ip4_addr(host, (int)port, (struct sockaddr_in *)ss) == 0) return 0;
  if (uv_ip6_addr(host, (int)port, (struct sockaddr_in6 *)ss) == 0) return 0;
  return WR_ERR_INVAL;
}

static void link_fail(wr_link *l, int err);
static void link_dispatch(wr_link *l);
static void arm_timer(wr_link *l);

/* ---- event queue (mux callbacks -> app, after the mux call returns) ---- */

static int push_event(wr_link *l, enum ev_type type, uint32_t sid,
                      const uint8_t *data, size_t len) {
  link_event *e = calloc(1, sizeof *e);
  if (!e) return WR_ERR_CALLBACK;
  e->type = type;
  e->sid = sid;
  e->sud = sid ? wr_mux_stream_get_user_data(l->mux, sid) : NULL;
  if (type == EV_DATA && l->claim && data == l->claim &&
      len >= l->claim_len / 2) {
    /* The piece is the record body open_rec decrypted into its own
     * buffer: hand that buffer over instead of copying it. */
    e->data = l->claim;
    e->len = len;
    l->claim = NULL;
  } else if (len) {
    e->data = wr_link_buf_new(len);
    if (!e->data) {
      free(e);
      return WR_ERR_CALLBACK;
    }
    memcpy(e->data, data, len);
    e->len = len;
  }
  if (l->ev_tail) l->ev_tail->next = e;
  else l->ev_head = e;
  l->ev_tail = e;
  return 0;
}

static int mux_on_open(wr_mux *m, uint32_t sid, const uint8_t *meta,
                       size_t len, void *ud) {
  (void)m;
  return push_event(ud, EV_OPEN, sid, meta, len);
}
static int mux_on_data(wr_mux *m, uint32_t sid, const uint8_t *data,
                       size_t len, void *ud) {
  (void)m;
  return len ? push_event(ud, EV_DATA, sid, data, len) : 0;
}
static int mux_on_fin(wr_mux *m, uint32_t sid, void *ud) {
  (void)m;
  return push_event(ud, EV_FIN, sid, NULL, 0);
}
static int mux_on_close(wr_mux *m, uint32_t sid, int64_t code, int by_peer,
                        void *ud) {
  (void)m;
  wr_link *l = ud;
  int rv = push_event(l, EV_CLOSE, sid, NULL, 0);
  if (rv == 0) {
    l->ev_tail->code = code;
    l->ev_tail->by_peer = by_peer;
  }
  return rv;
}
static int mux_on_writable(wr_mux *m, uint32_t sid, void *ud) {
  (void)m;
  return push_event(ud, EV_WRITABLE, sid, NULL, 0);
}
static int mux_on_control(wr_mux *m, const uint8_t *msg, size_t len,
                          void *ud) {
  (void)m;
  return push_event(ud, EV_CONTROL, 0, msg, len);
}
static int mux_on_goaway(wr_mux *m, uint32_t code, void *ud) {
  (void)m;
  int rv = push_event(ud, EV_GOAWAY, 0, NULL, 0);
  if (rv == 0) ((wr_link *)ud)->ev_tail->code = code;
  return rv;
}

static void free_events(wr_link *l) {
  link_event *e = l->ev_head;
  while (e) {
    link_event *n = e->next;
    wr_link_buf_free(e->data);
    free(e);
    e = n;
  }
  l->ev_head = l->ev_tail = NULL;
}

static void link_dispatch(wr_link *l) {
  /* Handlers may produce more events (a reset fires stream_close); the
   * outer call drains them all, the inner ones return at once. */
  if (l->dispatching) return;
  l->dispatching = 1;
  while (l->ev_head && !l->closing) {
    link_event *e = l->ev_head;
    l->ev_head = e->next;
    if (!l->ev_head) l->ev_tail = NULL;
    int rv = 0;
    /* The stream's user data as it is now: the app may have set it (an
     * OPEN earlier in this batch) or cleared it since the event was
     * queued.  A closed stream is gone from the mux, so CLOSE events keep
     * the value captured when they were queued (patched after OPEN). */
    if (e->type != EV_CLOSE && e->sid)
      e->sud = wr_mux_stream_get_user_data(l->mux, e->sid);
    switch (e->type) {
    case EV_OPEN:
      if (l->cb.stream_open)
        rv = l->cb.stream_open(l, e->sid, e->data, e->len, l->ud);
      for (link_event *x = l->ev_head; x; x = x->next)
        if (x->sid == e->sid && x->type == EV_CLOSE && !x->sud)
          x->sud = wr_mux_stream_get_user_data(l->mux, e->sid);
      break;
    case EV_DATA:
      if (l->cb.stream_data) {
        rv = l->cb.stream_data(l, e->sid, e->sud, e->data, e->len, l->ud);
        e->data = NULL; /* ownership passed to the app */
      }
      break;
    case EV_FIN:
      if (l->cb.stream_fin) rv = l->cb.stream_fin(l, e->sid, e->sud, l->ud);
      break;
    case EV_CLOSE:
      if (l->cb.stream_close)
        rv = l->cb.stream_close(l, e->sid, e->sud, e->code, e->by_peer, l->ud);
      break;
    case EV_WRITABLE:
      if (l->cb.stream_writable)
        rv = l->cb.stream_writable(l, e->sid, e->sud, l->ud);
      break;
    case EV_CONTROL:
      if (l->cb.control) rv = l->cb.control(l, e->data, e->len, l->ud);
      break;
    case EV_GOAWAY:
      if (l->cb.goaway) rv = l->cb.goaway(l, (uint32_t)e->code, l->ud);
      break;
    }
    wr_link_buf_free(e->data);
    free(e);
    if (rv != 0) link_fail(l, rv < 0 ? rv : WR_ERR_CALLBACK);
  }
  l->dispatching = 0;
  if (!l->closing) wr_link_flush(l);
}

/* ---- output ---- */

static void on_write(uv_write_t *req, int status) {
  link_write *w = (link_write *)req;
  wr_link *l = w->link;
  l->write_queued -= w->len;
  write_put(w);
  if (l->closing) return;
  if (status < 0) {
    link_fail(l, status);
    return;
  }
  /* Room in the queue again: let the mux produce more (handshake writes
   * complete before there is a mux). */
  if (l->mux && wr_mux_want_write(l->mux)) wr_link_flush(l);
}

static int write_raw(wr_link *l, const uint8_t *data, size_t len) {
  link_write *w = write_get(len);
  if (!w) return WR_ERR_NOMEM;
  w->link = l;
  w->len = len;
  memcpy(w->data, data, len);
  uv_buf_t b = uv_buf_init((char *)w->data, (unsigned)len);
  int rv = uv_write(&w->req, (uv_stream_t *)l->tcp, &b, 1, on_write);
  if (rv < 0) {
    write_put(w);
    return rv;
  }
  l->write_queued += len;
  return 0;
}

/* Writes the write a fault delay held (now: its time came, or the link
 * is ending and its FIN must not overtake it). */
static void release_held_write(wr_link *l) {
  link_write *w = l->held_w;
  l->held_w = NULL;
  uv_timer_stop(&l->fault_wt);
  if (!w) return;
  if (l->closing) {
    write_put(w);
    return;
  }
  uv_buf_t b = uv_buf_init((char *)w->data, (unsigned)w->len);
  int rv = wr_uv_write_now(&w->req, (uv_stream_t *)l->tcp, &b, 1, on_write);
  if (rv != 0) {
    write_put(w); /* written whole (1) or not at all (< 0) */
    if (rv < 0) link_fail(l, rv);
    return;
  }
  w->len = b.len;
  l->write_queued += b.len;
}

static void on_fault_write(uv_timer_t *t) {
  wr_link *l = t->data;
  release_held_write(l);
  wr_link_flush(l); /* produce what waited behind it */
}

static void do_flush(wr_link *l) {
  wr_tstamp now = uv_now(l->loop);
  while (!l->closing && l->ready && !l->held_w &&
         wr_mux_want_write(l->mux) && l->write_queued < WRITE_QUEUE_MAX) {
    wr_mux_stats st;
    wr_mux_get_stats(l->mux, &st);
    /* Size the buffer to what is queued (+ room for control frames and
     * record overheads), so a ping costs a few bytes, not 256 KiB. */
    size_t want = st.queued_bytes + 1024;
    size_t nrec = want / WR_RECORD_MAX_PLAINTEXT + 1;
    if (nrec > WRITE_RECORDS_MAX) nrec = WRITE_RECORDS_MAX;
    size_t cap = WR_MIN(want, nrec * WR_RECORD_MAX_PLAINTEXT) +
                 nrec * (WR_RECORD_OVERHEAD + 64);
    link_write *w = write_get(cap);
    if (!w) {
      link_fail(l, WR_ERR_NOMEM);
      return;
    }
    size_t len = 0;
    while (cap - len >= WR_RECORD_OVERHEAD + WR_MUX_MIN_SEND) {
      size_t room = WR_MIN(cap - len - WR_RECORD_OVERHEAD,
                           (size_t)WR_RECORD_MAX_PLAINTEXT);
      struct iovec iov[WR_MUX_SEND_IOV_MAX];
      size_t niov = WR_MUX_SEND_IOV_MAX;
      /* Stream bytes are sealed straight from the mux's queue into the
       * write buffer; only frame headers pass through the scratch. */
      wr_ssize n = wr_mux_send_v(l->mux, seal_scratch, room, iov, &niov, now);
      if (n < 0) {
        write_put(w);
        link_fail(l, (int)n);
        return;
      }
      if (n == 0) break;
      wr_ssize r =
          wr_record_seal_v(l->tx, w->data + len, cap - len, iov, niov);
      if (r < 0) {
        write_put(w);
        link_fail(l, (int)r);
        return;
      }
      len += (size_t)r;
    }
    if (len == 0) {
      write_put(w);
      break;
    }
    w->link = l;
    uint32_t delay = 0;
    if (fault_tap &&
        fault_tap(l, l->nodelink, 1, len, &delay, fault_tap_ud)) {
      write_put(w);
      link_fail(l, WR_ERR_CLOSED);
      return;
    }
    if (delay) {
      /* A slow path: this write waits, and nothing more is produced
       * until it went (the mux keeps the rest, within flow control). */
      w->len = len;
      l->held_w = w;
      uv_timer_start(&l->fault_wt, on_fault_write, delay, 0);
      return;
    }
    uv_buf_t b = uv_buf_init((char *)w->data, (unsigned)len);
    int rv = wr_uv_write_now(&w->req, (uv_stream_t *)l->tcp, &b, 1, on_write);
    if (rv != 0) {
      write_put(w); /* written whole (1) or not at all (< 0) */
      if (rv < 0) {
        link_fail(l, rv);
        return;
      }
      continue;
    }
    w->len = b.len; /* what is left, queued */
    l->write_queued += b.len;
  }
}

static void on_prepare(uv_prepare_t *p) {
  wr_link *l = p->data;
  uv_prepare_stop(p);
  if (l->closing) return;
  do_flush(l);
  /* wr_mux_send may fire stream_close / stream_writable. */
  link_dispatch(l);
  if (!l->closing) arm_timer(l);
}

void wr_link_flush(wr_link *l) {
  if (!l->closing && l->ready) uv_prepare_start(&l->prep, on_prepare);
}

/* ---- timer ---- */

static void on_timer(uv_timer_t *t) {
  wr_link *l = t->data;
  if (l->closing) return;
  if (!l->ready) {
    WR_LOG_WARNF("link", "handshake_timeout", "peer=%s", l->peer);
    link_fail(l, WR_ERR_TIMEOUT);
    return;
  }
  int rv = wr_mux_tick(l->mux, uv_now(l->loop));
  if (rv < 0) {
    link_fail(l, rv);
    return;
  }
  link_dispatch(l);
  if (!l->closing) arm_timer(l);
}

static void arm_timer(wr_link *l) {
  if (!l->ready) return;
  wr_tstamp dl = wr_mux_deadline(l->mux);
  if (dl == WR_TSTAMP_NONE) {
    uv_timer_stop(&l->timer);
    return;
  }
  wr_tstamp now = uv_now(l->loop);
  /* Armed at or before dl already: it fires early and re-arms (an early
   * wr_mux_tick is harmless).  Saves a timer-heap update per flush. */
  if (uv_is_active((uv_handle_t *)&l->timer) &&
      now + uv_timer_get_due_in(&l->timer) <= dl)
    return;
  uv_timer_start(&l->timer, on_timer, dl > now ? dl - now : 0, 0);
}

/* ---- input ---- */

static int become_ready(wr_link *l) {
  wr_noise_keys k;
  int rv = wr_noise_split(l->noise, &k);
  if (rv != 0) return rv;
  l->aead = k.aead;
  memcpy(l->hh, k.handshake_hash, sizeof l->hh);
  rv = wr_record_new(&l->tx, k.aead, k.send, NULL);
  if (rv == 0) rv = wr_record_new(&l->rx, k.aead, k.recv, NULL);
  sodium_memzero(&k, sizeof k);
  if (rv == WR_ERR_IO)
    /* libcrypto is loaded on the first tunnel (record.h); without it no
     * tunnel can work, so say which library is missing. */
    WR_LOG_ERRORF("link", "record_crypto_unavailable", "peer=%s err=\"%s\"",
                  l->peer, wr_record_crypto_error());
  if (rv != 0) return rv;
  static const wr_mux_callbacks mcb = {
      mux_on_open,     mux_on_data,    mux_on_fin,    mux_on_close,
      mux_on_writable, mux_on_control, mux_on_goaway,
  };
  rv = wr_mux_new(&l->mux, &l->muxcfg, &mcb, l, NULL, uv_now(l->loop));
  if (rv != 0) return rv;
  wr_noise_del(l->noise);
  l->noise = NULL;
  l->ready = 1;
  uv_timer_stop(&l->timer);
  if (l->cb.ready) l->cb.ready(l, l->ud);
  wr_link_flush(l);
  arm_timer(l);
  return 0;
}

/*
 * Opens one record and feeds it to the mux; returns its wire length, 0
 * for an incomplete record, or an error.
 *
 * A large record is decrypted out of place: its first frame header's
 * worth into a scratch, the rest into a buffer of its own.  A record
 * usually is one DATA frame (wr_mux_send fills records that way), so the
 * frame's payload is exactly that buffer, and push_event hands it to the
 * app as the event's data instead of copying it: the bytes are decrypted
 * straight into what the app writes to the visitor.  Only a piece that
 * starts the buffer and fills at least half of its capacity takes it
 * over, so a held buffer never pins more than twice the window-charged
 * bytes it carries; anything else is copied (into a buffer of its own
 * size class) and the buffer goes back to the pool.  Both come from the
 * pool above, so the steady state allocates nothing per record.  Small
 * records are opened in place.
 */
#define CLAIM_MIN 4096
static wr_ssize open_rec(wr_link *l, uint8_t *in, size_t len, wr_tstamp now) {
  size_t ptlen;
  int rv;
  wr_ssize n = wr_record_peek(in, len, &ptlen);
  if (n <= 0) return n;
  if (ptlen < CLAIM_MIN) {
    const uint8_t *pt;
    n = wr_record_open(l->rx, in, len, &pt, &ptlen);
    if (n > 0 && (rv = wr_mux_recv(l->mux, pt, ptlen, now)) != 0) return rv;
    return n;
  }
  uint8_t head[WR_FRAME_HDR_LEN];
  size_t blen = ptlen - sizeof head;
  uint8_t *body = wr_link_buf_new(blen);
  if (!body) return WR_ERR_NOMEM;
  /* What the buffer pins is its class capacity, not blen. */
  size_t cap = data_cap(body);
  struct iovec v[2] = {{head, sizeof head}, {body, blen}};
  n = wr_record_open_v(l->rx, in, len, v, 2, &ptlen);
  if (n > 0) {
    l->claim = body;
    l->claim_len = cap;
    rv = wr_mux_recv(l->mux, head, sizeof head, now);
    if (rv == 0) rv = wr_mux_recv(l->mux, body, blen, now);
    if (rv != 0) n = rv;
    body = l->claim; /* NULL if an event took it */
    l->claim = NULL;
  }
  wr_link_buf_free(body);
  return n;
}

static int process_input(wr_link *l) {
  size_t off = 0;
  int rv = 0;
  while (!l->closing && !l->ready && off < l->inlen) {
    wr_ssize n = wr_noise_read(l->noise, l->in + off, l->inlen - off,
                               wr_wall_ms());
    if (n < 0) {
      if (!l->initiator) {
        /* Tell an honest client why before closing (noise.h). */
        uint8_t rej[8];
        wr_ssize r = wr_noise_write_reject(rej, sizeof rej, (int)n);
        if (r > 0) write_raw(l, rej, (size_t)r);
      }
      return (int)n;
    }
    if (n == 0) break;
    off += (size_t)n;
    if (!l->initiator) {
      uint8_t msg[WR_NOISE_MAX_MSG];
      wr_ssize w = wr_noise_write(l->noise, msg, sizeof msg, wr_wall_ms());
      if (w < 0) return (int)w;
      if ((rv = write_raw(l, msg, (size_t)w)) != 0) return rv;
    }
    if (wr_noise_done(l->noise) && (rv = become_ready(l)) != 0) return rv;
  }
  wr_tstamp now = uv_now(l->loop);
  while (!l->closing && l->ready && off < l->inlen) {
    wr_ssize n = open_rec(l, l->in + off, l->inlen - off, now);
    if (n < 0) return (int)n;
    if (n == 0) break;
    off += (size_t)n;
  }
  if (off > 0 && !l->closing) {
    memmove(l->in, l->in + off, l->inlen - off);
    l->inlen -= off;
  }
  return 0;
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf) {
  (void)hint;
  wr_link *l = h->data;
  if (!l->in) l->in = malloc(IN_CAP);
  if (!l->in || l->inlen >= IN_CAP) {
    *buf = uv_buf_init(NULL, 0); /* libuv reports UV_ENOBUFS */
    return;
  }
  *buf = uv_buf_init((char *)l->in + l->inlen, (unsigned)(IN_CAP - l->inlen));
}

static void handle_input(wr_link *l);
static void on_fault_read(uv_timer_t *t);

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf) {
  (void)buf;
  wr_link *l = s->data;
  if (l->closing) return;
  if (n < 0) {
    link_fail(l, n == UV_EOF ? WR_ERR_CLOSED : (int)n);
    return;
  }
  uint32_t delay = 0;
  if (fault_tap && n > 0 &&
      fault_tap(l, l->nodelink, 0, (size_t)n, &delay, fault_tap_ud)) {
    link_fail(l, WR_ERR_CLOSED);
    return;
  }
  l->inlen += (size_t)n;
  if (delay) {
    /* A slow path: what was read waits in |in| (at most IN_CAP), and
     * nothing more is read until it has been handled. */
    uv_read_stop(s);
    uv_timer_start(&l->fault_rt, on_fault_read, delay, 0);
    return;
  }
  handle_input(l);
}

/* The input in |in| is due: handle it as on_read would have. */
static void handle_input(wr_link *l) {
  int rv = process_input(l);
  if (rv != 0) {
    link_fail(l, rv);
    return;
  }
  if (l->inlen == 0) {
    free(l->in);
    l->in = NULL;
  }
  link_dispatch(l);
  if (!l->closing) arm_timer(l);
}

static void on_fault_read(uv_timer_t *t) {
  wr_link *l = t->data;
  if (l->closing) return;
  handle_input(l);
  if (l->closing) return;
  int rv = uv_read_start((uv_stream_t *)l->tcp, on_alloc, on_read);
  if (rv != 0) link_fail(l, rv);
}

/* ---- lifetime ---- */

static void on_handle_closed(uv_handle_t *h) {
  wr_link *l = h->data;
  if (--l->handles_open > 0) return;
  if (l->cb.closed) l->cb.closed(l, l->close_err, l->ud);
  if (l->held_w) write_put(l->held_w);
  free_events(l);
  wr_mux_del(l->mux);
  wr_record_del(l->tx);
  wr_record_del(l->rx);
  wr_noise_del(l->noise);
  free(l->in);
  free(l->tcp);
  free(l);
}

static void link_fail(wr_link *l, int err) {
  if (l->closing) return;
  l->closing = 1;
  l->close_err = err;
  uv_close((uv_handle_t *)l->tcp, on_handle_closed);
  uv_close((uv_handle_t *)&l->prep, on_handle_closed);
  uv_close((uv_handle_t *)&l->timer, on_handle_closed);
  uv_close((uv_handle_t *)&l->fault_rt, on_handle_closed);
  uv_close((uv_handle_t *)&l->fault_wt, on_handle_closed);
}

void wr_link_close(wr_link *l, int err) { link_fail(l, err); }

static void on_end_shutdown(uv_shutdown_t *req, int status) {
  (void)status;
  wr_link *l = req->data;
  /* UV_ECANCELED: the link closed meanwhile; its memory is still valid,
   * as it is freed only in the handles' close callbacks. */
  link_fail(l, l->close_err);
}

void wr_link_end(wr_link *l, int err) {
  if (l->closing || l->ending) return;
  l->ending = 1;
  l->close_err = err;
  /* What the app queued (an Error saying why) is sealed and handed to
   * the socket now; libuv runs the shutdown once those writes are done,
   * and a close before that would cancel them. */
  release_held_write(l);
  if (l->ready && !l->closing) do_flush(l);
  if (l->closing) return;
  l->shut.data = l;
  if (uv_shutdown(&l->shut, (uv_stream_t *)l->tcp, on_end_shutdown) != 0)
    link_fail(l, err);
}

wr_mux *wr_link_mux(wr_link *l) { return l->mux; }
int wr_link_is_ready(const wr_link *l) { return l->ready && !l->closing; }
const uint8_t *wr_link_handshake_hash(const wr_link *l) { return l->hh; }

const char *wr_link_peer(const wr_link *l) { return l->peer; }
wr_aead wr_link_aead(const wr_link *l) { return l->aead; }

int wr_link_start(wr_link **pl, uv_loop_t *loop, uv_tcp_t *tcp,
                  const wr_link_config *cfg, const wr_link_callbacks *cb,
                  void *ud, const uint8_t *pre, size_t prelen) {
  if (prelen > IN_CAP) return WR_ERR_TOOBIG;
  wr_link *l = calloc(1, sizeof *l);
  if (!l) return WR_ERR_NOMEM;
  int rv;
  l->loop = loop;
  l->tcp = tcp;
  l->cb = *cb;
  l->ud = ud;
  l->initiator = cfg->initiator;
  l->nodelink = cfg->use_psk;
  snprintf(l->peer, sizeof l->peer, "%s", cfg->peer ? cfg->peer : "?");
  if (cfg->mux.stream_window) l->muxcfg = cfg->mux;
  else wr_mux_config_default(&l->muxcfg, cfg->initiator);
  const uint8_t *psk = cfg->use_psk ? cfg->psk : NULL;
  if (cfg->initiator)
    rv = wr_noise_initiator_new_psk(&l->noise, cfg->fleet_key, psk,
                                    wr_sodium_rand, NULL, NULL);
  else
    rv = wr_noise_responder_new_psk(&l->noise, cfg->fleet_key, psk,
                                    cfg->replay, wr_sodium_rand, NULL, NULL);
  if (rv != 0) {
    free(l);
    return rv;
  }
  if (prelen) {
    l->in = malloc(IN_CAP);
    if (!l->in) {
      wr_noise_del(l->noise);
      free(l);
      return WR_ERR_NOMEM;
    }
    memcpy(l->in, pre, prelen);
    l->inlen = prelen;
  }
  uv_prepare_init(loop, &l->prep);
  uv_timer_init(loop, &l->timer);
  uv_timer_init(loop, &l->fault_rt);
  uv_timer_init(loop, &l->fault_wt);
  l->prep.data = l->timer.data = l;
  l->fault_rt.data = l->fault_wt.data = l;
  tcp->data = l;
  l->handles_open = 5;
  wr_tcp_tune(tcp);
  *pl = l;

  uv_timer_start(&l->timer, on_timer, HANDSHAKE_TIMEOUT_MS, 0);
  if (cfg->initiator) {
    uint8_t msg[WR_NOISE_MAX_MSG];
    wr_ssize w = wr_noise_write(l->noise, msg, sizeof msg, wr_wall_ms());
    rv = w < 0 ? (int)w : write_raw(l, msg, (size_t)w);
    if (rv != 0) {
      link_fail(l, rv);
      return 0; /* `closed` reports it */
    }
  }
  rv = uv_read_start((uv_stream_t *)tcp, on_alloc, on_read);
  if (rv != 0) {
    link_fail(l, rv);
    return 0;
  }
  if (l->inlen) {
    rv = process_input(l);
    if (rv != 0) link_fail(l, rv);
    else link_dispatch(l);
  }
  return 0;
}
