/*
 * The tunnel link's record I/O (link_int.h): input read into one buffer
 * per link, records opened (large ones straight into the buffer the app
 * gets) and fed to the mux; output sealed from the mux's queue into
 * records, one uv_write per flush, at most WRITE_QUEUE_MAX queued; the
 * process-wide pools those buffers come from; the fault tap's delays.
 * The link's states and the rest of its life: tunnel_uv.c.
 */
#include <stdlib.h>
#include <string.h>

#include "warren/err.h"

#include "frame.h"
#include "link_int.h"

/* 4 MiB in flight to the kernel keeps a 1 MiB/stream window busy on
 * loopback while bounding what a stalled peer can make us hold. */
#define WRITE_QUEUE_MAX (4u * 1024 * 1024)
/* One uv_write carries at most 16 records (~256 KiB): big enough to
 * amortise the syscall, small enough to interleave streams. */
#define WRITE_RECORDS_MAX 16

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

void link_write_put(link_write *w) {
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

/* Scratch for the frame headers and small pieces of one record (see
 * wr_mux_send_v): one per process, not per link, because the loop is
 * single-threaded and link_do_flush never re-enters; 1,000 idle tunnels should
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

/* ---- output ---- */

static void on_write(uv_write_t *req, int status) {
  link_write *w = (link_write *)req;
  wr_link *l = w->link;
  l->write_queued -= w->len;
  link_write_put(w);
  if (l->closing) return;
  if (status < 0) {
    link_fail(l, status);
    return;
  }
  /* Room in the queue again: let the mux produce more (handshake writes
   * complete before there is a mux). */
  if (l->mux && wr_mux_want_write(l->mux)) wr_link_flush(l);
}

int link_write_raw(wr_link *l, const uint8_t *data, size_t len) {
  link_write *w = write_get(len);
  if (!w) return WR_ERR_NOMEM;
  w->link = l;
  w->len = len;
  memcpy(w->data, data, len);
  uv_buf_t b = uv_buf_init((char *)w->data, (unsigned)len);
  int rv = uv_write(&w->req, (uv_stream_t *)l->tcp, &b, 1, on_write);
  if (rv < 0) {
    link_write_put(w);
    return rv;
  }
  l->write_queued += len;
  return 0;
}

/* Writes the write a fault delay held (now: its time came, or the link
 * is ending and its FIN must not overtake it). */
void link_release_held_write(wr_link *l) {
  link_write *w = l->held_w;
  l->held_w = NULL;
  uv_timer_stop(&l->fault_wt);
  if (!w) return;
  if (l->closing) {
    link_write_put(w);
    return;
  }
  uv_buf_t b = uv_buf_init((char *)w->data, (unsigned)w->len);
  int rv = wr_uv_write_now(&w->req, (uv_stream_t *)l->tcp, &b, 1, on_write);
  if (rv != 0) {
    link_write_put(w); /* written whole (1) or not at all (< 0) */
    if (rv < 0) link_fail(l, rv);
    return;
  }
  w->len = b.len;
  l->write_queued += b.len;
}

static void on_fault_write(uv_timer_t *t) {
  wr_link *l = t->data;
  link_release_held_write(l);
  wr_link_flush(l); /* produce what waited behind it */
}

void link_do_flush(wr_link *l) {
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
        link_write_put(w);
        link_fail(l, (int)n);
        return;
      }
      if (n == 0) break;
      wr_ssize r =
          wr_record_seal_v(l->tx, w->data + len, cap - len, iov, niov);
      if (r < 0) {
        link_write_put(w);
        link_fail(l, (int)r);
        return;
      }
      len += (size_t)r;
    }
    if (len == 0) {
      link_write_put(w);
      break;
    }
    w->link = l;
    uint32_t delay = 0;
    if (fault_tap &&
        fault_tap(l, l->nodelink, 1, len, &delay, fault_tap_ud)) {
      link_write_put(w);
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
      link_write_put(w); /* written whole (1) or not at all (< 0) */
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
  link_do_flush(l);
  /* wr_mux_send may fire stream_close / stream_writable. */
  link_dispatch(l);
  if (!l->closing) link_arm_timer(l);
}

void wr_link_flush(wr_link *l) {
  if (!l->closing && l->ready) uv_prepare_start(&l->prep, on_prepare);
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

int link_process_input(wr_link *l) {
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
        if (r > 0) link_write_raw(l, rej, (size_t)r);
      }
      return (int)n;
    }
    if (n == 0) break;
    off += (size_t)n;
    if (!l->initiator) {
      uint8_t msg[WR_NOISE_MAX_MSG];
      wr_ssize w = wr_noise_write(l->noise, msg, sizeof msg, wr_wall_ms());
      if (w < 0) return (int)w;
      if ((rv = link_write_raw(l, msg, (size_t)w)) != 0) return rv;
    }
    if (wr_noise_done(l->noise) && (rv = link_become_ready(l)) != 0) return rv;
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

/*
 * A link gives its input buffer back whenever a read drains it, so an idle
 * link holds none.  Under small requests nearly every link read drains it,
 * and each was a free and a malloc of IN_CAP (80 KiB: past tcache, into
 * glibc's bins and malloc_consolidate).  One drained buffer is kept per
 * process (the loop is single-threaded) for the next link that reads;
 * more links busy at once still each get their own.
 */
static uint8_t *in_spare;

uint8_t *link_in_get(void) {
  uint8_t *b = in_spare;
  if (!b) return malloc(IN_CAP);
  in_spare = NULL;
  return b;
}

void link_in_put(uint8_t *b) {
  if (b && !in_spare) in_spare = b;
  else free(b);
}

void link_on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf) {
  (void)hint;
  wr_link *l = h->data;
  if (!l->in) l->in = link_in_get();
  if (!l->in || l->inlen >= IN_CAP) {
    *buf = uv_buf_init(NULL, 0); /* libuv reports UV_ENOBUFS */
    return;
  }
  *buf = uv_buf_init((char *)l->in + l->inlen, (unsigned)(IN_CAP - l->inlen));
}

static void handle_input(wr_link *l);
static void on_fault_read(uv_timer_t *t);

void link_on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf) {
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

/* The input in |in| is due: handle it as link_on_read would have. */
static void handle_input(wr_link *l) {
  int rv = link_process_input(l);
  if (rv != 0) {
    link_fail(l, rv);
    return;
  }
  if (l->inlen == 0) {
    link_in_put(l->in);
    l->in = NULL;
  }
  link_dispatch(l);
  if (!l->closing) link_arm_timer(l);
}

static void on_fault_read(uv_timer_t *t) {
  wr_link *l = t->data;
  if (l->closing) return;
  handle_input(l);
  if (l->closing) return;
  int rv = uv_read_start((uv_stream_t *)l->tcp, link_on_alloc, link_on_read);
  if (rv != 0) link_fail(l, rv);
}

