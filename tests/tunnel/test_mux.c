/*
 * Mux tests.  Two muxes (a = client, odd ids; b = node, even ids) are
 * joined by pump(), which shuttles wr_mux_send output (or wr_mux_send_v's
 * pieces, flattened: use_send_v) into the other side's wr_mux_recv until
 * both are idle.  Callbacks append to per-side
 * state that the tests assert on.  Time is a plain variable.  Crafted
 * frames (frame.h encoder) drive one mux directly for protocol errors.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "../../src/tunnel/frame.h"
#include "failmalloc.h"
#include "warren/mux.h"
#include "warren/pcg.h"

#define MAXSID 4096

enum { EV_OPEN = 1, EV_FIN, EV_CLOSE, EV_WRITABLE, EV_CONTROL, EV_GOAWAY };

typedef struct side {
  wr_mux *m;
  int auto_consume;
  int fail_kind;       /* callback kind that returns an error */
  int no_hash;         /* benchmark: count bytes only */
  int verify;          /* stress: check each byte against pat() */
  int bad_bytes;
  uint64_t written[MAXSID];
  uint64_t rx[MAXSID]; /* bytes received per sid */
  uint64_t rx_hash[MAXSID];
  uint64_t unconsumed[MAXSID];
  int opened[MAXSID], fin[MAXSID], closed[MAXSID], writable[MAXSID];
  int64_t close_code[MAXSID];
  int close_by_peer[MAXSID];
  uint8_t meta[256];
  size_t meta_len;
  uint32_t last_open;
  int n_open, n_close, n_control, n_goaway;
  uint32_t goaway_code;
  uint8_t control[128];
  size_t control_len;
  uint32_t wake_order[64]; /* stream_writable, in order (first 64) */
  int n_wake;
} side;

static side A, B;

static uint64_t fnv(uint64_t h, const uint8_t *p, size_t n) {
  for (size_t i = 0; i < n; i++)
    h = (h ^ p[i]) * 0x100000001b3ull;
  return h;
}
#define FNV0 0xcbf29ce484222325ull

static int cb_open(wr_mux *m, uint32_t sid, const uint8_t *meta, size_t len,
                   void *ud) {
  side *s = ud;
  (void)m;
  if (s->fail_kind == EV_OPEN)
    return WR_ERR_CALLBACK;
  assert_true(sid < MAXSID);
  s->opened[sid]++;
  s->rx_hash[sid] = FNV0;
  s->last_open = sid;
  s->n_open++;
  s->meta_len = WR_MIN(len, sizeof s->meta);
  memcpy(s->meta, meta, s->meta_len);
  return 0;
}
/* Stress-test content: byte |off| of stream |sid|. */
static uint8_t pat(uint32_t sid, uint64_t off) {
  return (uint8_t)((off * 131 + sid * 17) ^ (off >> 11));
}

static int cb_data(wr_mux *m, uint32_t sid, const uint8_t *d, size_t len,
                   void *ud) {
  side *s = ud;
  (void)m;
  if (s->fail_kind == 99)
    return WR_ERR_CALLBACK;
  assert_true(sid < MAXSID);
  if (s->rx[sid] == 0)
    s->rx_hash[sid] = FNV0;
  if (s->verify)
    for (size_t i = 0; i < len; i++)
      if (d[i] != pat(sid, s->rx[sid] + i))
        s->bad_bytes++;
  s->rx[sid] += len;
  if (!s->no_hash)
    s->rx_hash[sid] = fnv(s->rx_hash[sid], d, len);
  s->unconsumed[sid] += len;
  return 0;
}
static int cb_fin(wr_mux *m, uint32_t sid, void *ud) {
  side *s = ud;
  (void)m;
  if (s->fail_kind == EV_FIN)
    return WR_ERR_CALLBACK;
  s->fin[sid]++;
  return 0;
}
static int cb_close(wr_mux *m, uint32_t sid, int64_t code, int by_peer,
                    void *ud) {
  side *s = ud;
  /* The stream is still visible during its close callback. */
  (void)wr_mux_stream_get_user_data(m, sid);
  if (s->fail_kind == EV_CLOSE)
    return WR_ERR_CALLBACK;
  s->closed[sid]++;
  s->close_code[sid] = code;
  s->close_by_peer[sid] = by_peer;
  s->unconsumed[sid] = 0;
  s->n_close++;
  return 0;
}
static int cb_writable(wr_mux *m, uint32_t sid, void *ud) {
  side *s = ud;
  (void)m;
  if (s->fail_kind == EV_WRITABLE)
    return WR_ERR_CALLBACK;
  s->writable[sid]++;
  if (s->n_wake < 64) s->wake_order[s->n_wake] = sid;
  s->n_wake++;
  return 0;
}
static int cb_control(wr_mux *m, const uint8_t *msg, size_t len, void *ud) {
  side *s = ud;
  (void)m;
  if (s->fail_kind == EV_CONTROL)
    return WR_ERR_CALLBACK;
  s->n_control++;
  s->control_len = WR_MIN(len, sizeof s->control);
  memcpy(s->control, msg, s->control_len);
  return 0;
}
static int cb_goaway(wr_mux *m, uint32_t code, void *ud) {
  side *s = ud;
  (void)m;
  if (s->fail_kind == EV_GOAWAY)
    return WR_ERR_CALLBACK;
  s->n_goaway++;
  s->goaway_code = code;
  return 0;
}

static const wr_mux_callbacks cbs = {
    .stream_open = cb_open,
    .stream_data = cb_data,
    .stream_fin = cb_fin,
    .stream_close = cb_close,
    .stream_writable = cb_writable,
    .control = cb_control,
    .goaway = cb_goaway,
};

static wr_tstamp now;

static void setup_pair(const wr_mux_config *ca, const wr_mux_config *cb,
                       const wr_mem *mem) {
  memset(&A, 0, sizeof A);
  memset(&B, 0, sizeof B);
  now = 1000;
  wr_mux_config da, db;
  wr_mux_config_default(&da, 1);
  wr_mux_config_default(&db, 0);
  assert_int_equal(wr_mux_new(&A.m, ca ? ca : &da, &cbs, &A, mem, now), 0);
  assert_int_equal(wr_mux_new(&B.m, cb ? cb : &db, &cbs, &B, mem, now), 0);
}

static void teardown_pair(void) {
  wr_mux_del(A.m);
  wr_mux_del(B.m);
  A.m = B.m = NULL;
}

static uint8_t rec[16384];
static size_t chunk = 0; /* 0: whole records; n: deliver n bytes at a time */

static int deliver(side *to, const uint8_t *p, size_t n) {
  if (!chunk)
    return wr_mux_recv(to->m, p, n, now);
  for (size_t off = 0; off < n; off += chunk) {
    int rv = wr_mux_recv(to->m, p + off, WR_MIN(chunk, n - off), now);
    if (rv)
      return rv;
  }
  return 0;
}

static int consume_all(side *s) {
  for (uint32_t sid = 1; sid < MAXSID; sid++) {
    if (!s->unconsumed[sid])
      continue;
    int rv = wr_mux_stream_consume(s->m, sid, s->unconsumed[sid]);
    if (rv)
      return rv;
    s->unconsumed[sid] = 0;
  }
  return 0;
}

/*
 * 1: every wr_mux_send in pump() and the stress test goes through
 * wr_mux_send_v instead, flattened here; the pieces must add up, fit the
 * iov bound, and be either scratch or views of at least 1 KiB.  Views are
 * read after the call returns, so ASan sees a block recycled too early.
 */
static int use_send_v;

static wr_ssize msend(wr_mux *m, uint8_t *dst, size_t cap) {
  static uint8_t scratch[WR_MUX_SEND_V_MAX];
  if (!use_send_v)
    return wr_mux_send(m, dst, cap, now);
  struct iovec iov[WR_MUX_SEND_IOV_MAX + 1];
  size_t niov = WR_MUX_SEND_IOV_MAX;
  cap = WR_MIN(cap, (size_t)WR_MUX_SEND_V_MAX);
  wr_ssize n = wr_mux_send_v(m, scratch, cap, iov, &niov, now);
  if (n <= 0) {
    assert_int_equal(niov, 0);
    return n;
  }
  assert_true(niov >= 1 && niov <= WR_MUX_SEND_IOV_MAX);
  size_t off = 0, sc = 0;
  for (size_t i = 0; i < niov; i++) {
    const uint8_t *b = iov[i].iov_base;
    assert_true(iov[i].iov_len > 0);
    if (b >= scratch && b < scratch + sizeof scratch) {
      assert_ptr_equal(b, scratch + sc); /* runs in order */
      sc += iov[i].iov_len;
    } else {
      assert_true(iov[i].iov_len >= 1024);
    }
    memcpy(dst + off, b, iov[i].iov_len);
    off += iov[i].iov_len;
  }
  assert_int_equal(off, (size_t)n);
  assert_true(sc <= cap && (size_t)n <= cap);
  return n;
}

/* Moves bytes both ways until neither side has anything to send. */
static int pump(void) {
  for (int iter = 0; iter < 1000000; iter++) {
    int moved = 0;
    side *dirs[2][2] = {{&A, &B}, {&B, &A}};
    for (int d = 0; d < 2; d++) {
      side *x = dirs[d][0], *y = dirs[d][1];
      while (wr_mux_want_write(x->m)) {
        wr_ssize n = msend(x->m, rec, sizeof rec);
        if (n < 0)
          return (int)n;
        if (n == 0)
          break;
        int rv = deliver(y, rec, (size_t)n);
        if (rv)
          return rv;
        moved = 1;
      }
    }
    for (int i = 0; i < 2; i++) {
      side *s = i ? &B : &A;
      if (s->auto_consume) {
        int rv = consume_all(s);
        if (rv)
          return rv;
      }
    }
    if (!moved)
      return 0;
  }
  return WR_ERR_INTERNAL;
}

static uint8_t pattern[1 << 20];

static void fill_pattern(void) {
  for (size_t i = 0; i < sizeof pattern; i++)
    pattern[i] = (uint8_t)(i * 131 + (i >> 9));
}

/* Writes |len| pattern bytes starting at |off| as far as credit allows. */
static size_t write_some(side *s, uint32_t sid, size_t off, size_t len) {
  size_t done = 0;
  while (done < len) {
    size_t n =
        WR_MIN(len - done, sizeof pattern - (off + done) % sizeof pattern);
    wr_ssize k = wr_mux_stream_write(
        s->m, sid, pattern + (off + done) % sizeof pattern, n);
    assert_true(k >= 0);
    if (k == 0)
      break;
    done += (size_t)k;
  }
  return done;
}

static uint64_t pattern_hash(size_t len) {
  uint64_t h = FNV0;
  for (size_t off = 0; off < len;) {
    size_t n = WR_MIN(len - off, sizeof pattern - off % sizeof pattern);
    h = fnv(h, pattern + off % sizeof pattern, n);
    off += n;
  }
  return h;
}

/* ---- tests ---- */

static void basic_exchange(void) {
  static const uint8_t meta[] = "GET /x";
  uint32_t sid = 0;
  A.auto_consume = B.auto_consume = 1;
  assert_int_equal(wr_mux_stream_open(A.m, meta, 6, &sid, &A), 0);
  assert_int_equal(sid, 1);
  assert_ptr_equal(wr_mux_stream_get_user_data(A.m, sid), &A);
  assert_int_equal(wr_mux_stream_write(A.m, sid, (const uint8_t *)"hello", 5),
                   5);
  assert_int_equal(wr_mux_stream_close(A.m, sid), 0);
  assert_int_equal(pump(), 0);
  assert_int_equal(B.opened[1], 1);
  assert_int_equal(B.meta_len, 6);
  assert_memory_equal(B.meta, meta, 6);
  assert_int_equal(B.rx[1], 5);
  assert_int_equal(B.rx_hash[1], fnv(FNV0, (const uint8_t *)"hello", 5));
  assert_int_equal(B.fin[1], 1);
  assert_int_equal(B.closed[1], 0);
  assert_int_equal(wr_mux_stream_write(A.m, sid, (const uint8_t *)"x", 1),
                   WR_ERR_CLOSED);
  /* The answer, then the FIN that completes the stream. */
  assert_int_equal(wr_mux_stream_write(B.m, 1, (const uint8_t *)"world!", 6),
                   6);
  assert_int_equal(wr_mux_stream_close(B.m, 1), 0);
  assert_int_equal(pump(), 0);
  assert_int_equal(A.rx[1], 6);
  assert_int_equal(A.fin[1], 1);
  assert_int_equal(A.closed[1], 1);
  assert_int_equal(A.close_code[1], -1);
  assert_int_equal(B.closed[1], 1);
  assert_int_equal(B.close_code[1], -1);
  wr_mux_stats st;
  wr_mux_get_stats(A.m, &st);
  assert_int_equal(st.streams_active, 0);
  assert_int_equal(st.bytes_out, 5);
  assert_int_equal(st.bytes_in, 6);
  assert_int_equal(st.queued_bytes, 0);
  assert_int_equal(st.rx_malformed, 0);
  wr_mux_get_stats(B.m, &st);
  assert_int_equal(st.streams_active, 0);
  assert_int_equal(st.streams_opened, 1);
  /* The id is gone: user calls see it as closed or unknown. */
  assert_int_equal(wr_mux_stream_write(A.m, 1, (const uint8_t *)"x", 1),
                   WR_ERR_NOTFOUND);
  assert_int_equal(wr_mux_stream_consume(A.m, 1, 0), 0);
  assert_int_equal(wr_mux_stream_consume(A.m, 3, 0), WR_ERR_NOTFOUND);
}

static void test_open_data_fin(void **state) {
  (void)state;
  chunk = 0;
  setup_pair(NULL, NULL, NULL);
  basic_exchange();
  /* The node opens toward the client: even ids. */
  uint32_t sid = 0;
  assert_int_equal(wr_mux_stream_open(B.m, NULL, 0, &sid, NULL), 0);
  assert_int_equal(sid, 2);
  assert_int_equal(wr_mux_stream_close(B.m, sid), 0);
  assert_int_equal(pump(), 0);
  assert_int_equal(A.opened[2], 1);
  assert_int_equal(A.fin[2], 1);
  assert_int_equal(A.meta_len, 0);
  assert_int_equal(wr_mux_stream_close(A.m, 2), 0);
  assert_int_equal(pump(), 0);
  assert_int_equal(A.closed[2], 1);
  assert_int_equal(B.closed[2], 1);
  assert_int_equal(B.close_by_peer[2], 1);
  teardown_pair();
}

/* The same conversation delivered in pieces of every size up to 40 bytes
 * (byte by byte included): frames straddle recv calls everywhere. */
static void test_split_delivery(void **state) {
  (void)state;
  for (chunk = 1; chunk <= 40; chunk++) {
    setup_pair(NULL, NULL, NULL);
    basic_exchange();
    teardown_pair();
  }
  chunk = 0;
}

static void test_many_streams(void **state) {
  (void)state;
  enum { N = 300 };
  static uint32_t sids[N];
  static size_t sizes[N];
  fill_pattern();
  setup_pair(NULL, NULL, NULL);
  A.auto_consume = B.auto_consume = 1;
  assert_int_equal(pump(), 0);
  for (int i = 0; i < N; i++) {
    side *s = i % 2 ? &B : &A;
    assert_int_equal(wr_mux_stream_open(s->m, NULL, 0, &sids[i], NULL), 0);
    sizes[i] = (size_t)(i * 7919) % 70000;
  }
  /* Writes interleaved across streams, then FINs; pumping in between. */
  size_t sent[N] = {0};
  for (int round = 0; round < 100; round++) {
    int busy = 0;
    for (int i = 0; i < N; i++) {
      side *s = i % 2 ? &B : &A;
      if (sent[i] < sizes[i]) {
        size_t want = WR_MIN(sizes[i] - sent[i], (size_t)5000);
        sent[i] += write_some(s, sids[i], sent[i], want);
        busy = 1;
      }
      if (sent[i] == sizes[i])
        assert_int_equal(wr_mux_stream_close(s->m, sids[i]), 0);
    }
    assert_int_equal(pump(), 0);
    if (!busy)
      break;
  }
  for (int i = 0; i < N; i++) {
    side *peer = i % 2 ? &A : &B;
    side *self = i % 2 ? &B : &A;
    assert_int_equal(peer->rx[sids[i]], sizes[i]);
    if (sizes[i])
      assert_int_equal(peer->rx_hash[sids[i]], pattern_hash(sizes[i]));
    assert_int_equal(peer->fin[sids[i]], 1);
    assert_int_equal(wr_mux_stream_close(peer->m, sids[i]), 0);
    (void)self;
  }
  assert_int_equal(pump(), 0);
  for (int i = 0; i < N; i++) {
    assert_int_equal(A.closed[sids[i]], 1);
    assert_int_equal(B.closed[sids[i]], 1);
  }
  wr_mux_stats st;
  wr_mux_get_stats(A.m, &st);
  assert_int_equal(st.streams_active, 0);
  assert_int_equal(st.streams_opened, N);
  teardown_pair();
}

static void small_windows(wr_mux_config *ca, wr_mux_config *cb, uint32_t sw,
                          uint32_t lw) {
  wr_mux_config_default(ca, 1);
  wr_mux_config_default(cb, 0);
  ca->stream_window = cb->stream_window = sw;
  ca->link_window = cb->link_window = lw;
}

/* A consumer that does not consume stops the sender at exactly the
 * window; consuming half a window sends one WINDOW and fires writable. */
static void test_stream_window(void **state) {
  (void)state;
  wr_mux_config ca, cb;
  small_windows(&ca, &cb, 65536, 1 << 20);
  fill_pattern();
  setup_pair(&ca, &cb, NULL);
  assert_int_equal(pump(), 0); /* SETTINGS both ways */
  uint32_t sid;
  assert_int_equal(wr_mux_stream_open(A.m, NULL, 0, &sid, NULL), 0);
  assert_int_equal(wr_mux_stream_credit(A.m, sid), 65536);
  size_t sent = write_some(&A, sid, 0, 1 << 20);
  assert_int_equal(sent, 65536);
  assert_int_equal(wr_mux_stream_credit(A.m, sid), 0);
  assert_int_equal(pump(), 0);
  assert_int_equal(B.rx[sid], 65536);
  assert_int_equal(write_some(&A, sid, sent, 1000), 0);
  /* Below half a window: no WINDOW frame, still no credit. */
  assert_int_equal(wr_mux_stream_consume(B.m, sid, 32767), 0);
  assert_int_equal(pump(), 0);
  assert_int_equal(wr_mux_stream_credit(A.m, sid), 0);
  assert_int_equal(A.writable[sid], 0);
  /* Reaching half: credit for exactly what was consumed. */
  assert_int_equal(wr_mux_stream_consume(B.m, sid, 1), 0);
  assert_int_equal(wr_mux_stream_consume(B.m, sid, 32769), WR_ERR_INVAL);
  assert_int_equal(pump(), 0);
  assert_int_equal(A.writable[sid], 1);
  assert_int_equal(wr_mux_stream_credit(A.m, sid), 32768);
  sent += write_some(&A, sid, sent, 1 << 20);
  assert_int_equal(sent, 65536 + 32768);
  assert_int_equal(pump(), 0);
  assert_int_equal(B.rx[sid], sent);
  assert_int_equal(B.rx_hash[sid], pattern_hash(sent));
  wr_mux_stats st;
  wr_mux_get_stats(A.m, &st);
  assert_int_equal(st.queued_bytes, 0);
  teardown_pair();
}

/* Streams share the link window: one stream's unconsumed bytes limit the
 * other; consuming them wakes the blocked stream. */
/* Any |cap| >= WR_MUX_MIN_SEND makes progress while want_write is 1. */
static void test_small_cap(void **state) {
  (void)state;
  fill_pattern();
  setup_pair(NULL, NULL, NULL);
  assert_int_equal(wr_mux_send(A.m, rec, WR_MUX_MIN_SEND - 1, now),
                   WR_ERR_INVAL);
  uint32_t sid;
  assert_int_equal(wr_mux_stream_open(A.m, NULL, 0, &sid, NULL), 0);
  assert_int_equal(write_some(&A, sid, 0, 5000), 5000);
  assert_int_equal(wr_mux_stream_close(A.m, sid), 0);
  int calls = 0;
  while (wr_mux_want_write(A.m)) {
    wr_ssize n = wr_mux_send(A.m, rec, WR_MUX_MIN_SEND, now);
    assert_true(n > 0 && n <= WR_MUX_MIN_SEND);
    assert_int_equal(wr_mux_recv(B.m, rec, (size_t)n, now), 0);
    assert_true(++calls < 10000);
  }
  assert_int_equal(B.rx[sid], 5000);
  assert_int_equal(B.rx_hash[sid], pattern_hash(5000));
  assert_int_equal(B.fin[sid], 1);
  teardown_pair();
}

/*
 * send_buffer bounds the bytes accepted but not yet sent, over all
 * streams, below the credit: writes are cut at the buffer, and blocked
 * streams are woken (once each) only when wr_mux_send has drained it to
 * half, not per record.
 */
static void test_send_buffer(void **state) {
  (void)state;
  wr_mux_config ca, cb;
  small_windows(&ca, &cb, 1 << 20, 4 << 20);
  ca.send_buffer = 65536;
  fill_pattern();
  setup_pair(&ca, &cb, NULL);
  B.auto_consume = 1;
  assert_int_equal(pump(), 0);
  uint32_t s1, s2;
  assert_int_equal(wr_mux_stream_open(A.m, NULL, 0, &s1, NULL), 0);
  assert_int_equal(wr_mux_stream_open(A.m, NULL, 0, &s2, NULL), 0);
  assert_int_equal(write_some(&A, s1, 0, 40000), 40000);
  assert_int_equal(wr_mux_stream_credit(A.m, s2), 65536 - 40000);
  assert_int_equal(write_some(&A, s2, 0, 1 << 20), 65536 - 40000);
  assert_int_equal(write_some(&A, s1, 40000, 1000), 0);
  wr_mux_stats st;
  wr_mux_get_stats(A.m, &st);
  assert_true(st.queued_bytes >= 65536 && st.queued_bytes < 65536 + 200);
  /* One record out (16 KiB): still above half, nobody woken. */
  wr_ssize n = msend(A.m, rec, sizeof rec);
  assert_true(n > 0);
  assert_int_equal(wr_mux_recv(B.m, rec, (size_t)n, now), 0);
  assert_int_equal(A.writable[s1] + A.writable[s2], 0);
  /* A WINDOW-style wake-up attempt above half is held back too. */
  assert_int_equal(consume_all(&B), 0);
  /* Drain to half or less: both blocked streams woken, once. */
  while ((n = msend(A.m, rec, sizeof rec)) > 0) {
    assert_int_equal(wr_mux_recv(B.m, rec, (size_t)n, now), 0);
    wr_mux_get_stats(A.m, &st);
    if (st.queued_bytes > 32768)
      assert_int_equal(A.writable[s1] + A.writable[s2], 0);
  }
  assert_int_equal(A.writable[s1], 1);
  assert_int_equal(A.writable[s2], 1);
  assert_int_equal(pump(), 0);
  assert_int_equal(A.writable[s1], 1);
  assert_int_equal(B.rx[s1], 40000);
  assert_int_equal(B.rx[s2], 65536 - 40000);
  assert_int_equal(B.rx_hash[s2], pattern_hash(65536 - 40000));
  /* Empty again: the whole buffer is available. */
  assert_int_equal(wr_mux_stream_credit(A.m, s1), 65536);
  teardown_pair();
}

/*
 * Zero-copy writes: a buffer from wr_mux_buf_new joins the stream's queue
 * as it is; over credit, on a finished or unknown stream it is refused
 * and freed (ASan/LSan see a leak or double free otherwise);
 * wr_mux_stream_wait registers for stream_writable without writing.
 */
/*
 * Blocked streams are woken one per send call at the half-way crossing or
 * on an empty queue, never all at once; a woken stream that writes
 * nothing cannot strand the others: wr_mux_want_write stays 1 until each
 * has been woken.
 */
static void test_send_buffer_wake_one(void **state) {
  (void)state;
  wr_mux_config ca, cb;
  small_windows(&ca, &cb, 1 << 20, 4 << 20);
  ca.send_buffer = 65536;
  fill_pattern();
  setup_pair(&ca, &cb, NULL);
  B.auto_consume = 1;
  assert_int_equal(pump(), 0);
  uint32_t sid[4];
  for (int i = 0; i < 4; i++)
    assert_int_equal(wr_mux_stream_open(A.m, NULL, 0, &sid[i], NULL), 0);
  assert_int_equal(write_some(&A, sid[0], 0, 65536), 65536);
  for (int i = 1; i < 4; i++)
    assert_int_equal(write_some(&A, sid[i], 0, 100), 0);
  int calls = 0;
  wr_ssize n;
  wr_mux_stats st;
  while ((n = msend(A.m, rec, sizeof rec)) > 0) {
    assert_int_equal(wr_mux_recv(B.m, rec, (size_t)n, now), 0);
    calls++;
    wr_mux_get_stats(A.m, &st);
    int woken = A.writable[sid[1]] + A.writable[sid[2]] + A.writable[sid[3]];
    /* Above half: none; after the crossing: only the oldest. */
    assert_int_equal(woken, st.queued_bytes > 32768 ? 0
                            : st.queued_bytes > 0   ? 1
                                                    : woken);
    assert_true(woken <= 2);
  }
  assert_true(calls >= 4);
  /* Emptied, and nobody wrote: one more wake per send call, in order. */
  assert_int_equal(A.writable[sid[1]], 1);
  assert_int_equal(A.writable[sid[2]], 1);
  while (wr_mux_want_write(A.m)) {
    assert_int_equal(msend(A.m, rec, sizeof rec), 0);
    assert_true(++calls < 100);
  }
  for (int i = 1; i < 4; i++) assert_int_equal(A.writable[sid[i]], 1);
  assert_false(wr_mux_want_write(A.m));
  teardown_pair();
}

static void test_write_buf(void **state) {
  (void)state;
  wr_mux_config ca, cb;
  small_windows(&ca, &cb, 65536, 1 << 20);
  fill_pattern();
  setup_pair(&ca, &cb, NULL);
  assert_int_equal(pump(), 0);
  uint32_t sid;
  assert_int_equal(wr_mux_stream_open(A.m, NULL, 0, &sid, NULL), 0);
  size_t off = 0;
  /* Three buffers: a short one (copied), a long one (queued as it is),
   * the third filling the credit exactly. */
  for (int i = 0; i < 3; i++) {
    size_t len = i == 2 ? wr_mux_stream_credit(A.m, sid) : i ? 40000 : 100;
    uint8_t *b = wr_mux_buf_new(A.m);
    assert_non_null(b);
    memcpy(b, pattern + off, len);
    assert_int_equal(wr_mux_stream_write_buf(A.m, sid, b, len), len);
    off += len;
  }
  assert_int_equal(off, 65536);
  assert_int_equal(wr_mux_stream_credit(A.m, sid), 0);
  /* Over credit: refused, freed. */
  uint8_t *b = wr_mux_buf_new(A.m);
  assert_int_equal(wr_mux_stream_write_buf(A.m, sid, b, 1), WR_ERR_INVAL);
  assert_int_equal(wr_mux_stream_write_buf(A.m, 999, wr_mux_buf_new(A.m), 0),
                   WR_ERR_NOTFOUND);
  wr_mux_buf_free(A.m, wr_mux_buf_new(A.m));
  wr_mux_buf_free(A.m, NULL);
  /* Wait without credit: woken once the peer consumes half a window. */
  assert_int_equal(wr_mux_stream_wait(A.m, sid), 0);
  assert_int_equal(pump(), 0);
  assert_int_equal(B.rx[sid], 65536);
  assert_int_equal(B.rx_hash[sid], pattern_hash(65536));
  assert_int_equal(A.writable[sid], 0);
  assert_int_equal(wr_mux_stream_consume(B.m, sid, 32768), 0);
  assert_int_equal(pump(), 0);
  assert_int_equal(A.writable[sid], 1);
  /* After FIN: refused. */
  assert_int_equal(wr_mux_stream_close(A.m, sid), 0);
  assert_int_equal(wr_mux_stream_write_buf(A.m, sid, wr_mux_buf_new(A.m), 1),
                   WR_ERR_CLOSED);
  assert_int_equal(wr_mux_stream_wait(A.m, sid), 0);
  assert_int_equal(pump(), 0);
  assert_int_equal(B.fin[sid], 1);
  teardown_pair();
}

/* wr_mux_stream_write_ext: app buffers queued as they are, each handed
 * back exactly once (free() here, so ASan sees a view read after its
 * buffer went back, or a buffer never handed back). */
static int ext_given, ext_released;
static void ext_release(uint8_t *buf) {
  ext_released++;
  free(buf);
}
static uint8_t *ext_buf(size_t off, size_t len) {
  uint8_t *b = malloc(len ? len : 1);
  assert_non_null(b);
  memcpy(b, pattern + off, len);
  ext_given++;
  return b;
}

static void write_ext_once(void) {
  wr_mux_config ca, cb;
  small_windows(&ca, &cb, 65536, 1 << 20);
  fill_pattern();
  setup_pair(&ca, &cb, NULL);
  ext_given = ext_released = 0;
  assert_int_equal(pump(), 0);
  uint32_t sid;
  assert_int_equal(wr_mux_stream_open(A.m, NULL, 0, &sid, NULL), 0);
  /* A short piece (copied, handed back at once), a long one (queued as
   * it is), one filling the credit exactly. */
  size_t off = 0;
  for (int i = 0; i < 3; i++) {
    size_t len = i == 2 ? wr_mux_stream_credit(A.m, sid) : i ? 40000 : 100;
    assert_int_equal(wr_mux_stream_write_ext(A.m, sid, ext_buf(off, len), len,
                                             ext_release),
                     len);
    off += len;
    if (i == 0) assert_int_equal(ext_released, 1);
  }
  assert_int_equal(ext_released, 1);
  assert_int_equal(wr_mux_stream_credit(A.m, sid), 0);
  /* Over credit, unknown stream: refused, handed back. */
  assert_int_equal(
      wr_mux_stream_write_ext(A.m, sid, ext_buf(0, 1), 1, ext_release),
      WR_ERR_INVAL);
  assert_int_equal(
      wr_mux_stream_write_ext(A.m, 999, ext_buf(0, 8), 8, ext_release),
      WR_ERR_NOTFOUND);
  assert_int_equal(ext_released, 3);
  assert_int_equal(pump(), 0);
  assert_int_equal(B.rx[sid], 65536);
  assert_int_equal(B.rx_hash[sid], pattern_hash(65536));
  /* Views (send_v) stay valid until the next send call, which hands
   * their buffers back. */
  assert_int_equal(wr_mux_stream_consume(B.m, sid, 65536), 0);
  assert_int_equal(pump(), 0);
  if (use_send_v) assert_true(ext_released < ext_given);
  assert_int_equal(msend(A.m, rec, sizeof rec), 0);
  assert_int_equal(ext_released, ext_given);
  /* A reset drops queued buffers at once, and their credit comes back. */
  size_t c0 = wr_mux_stream_credit(A.m, sid);
  assert_true(c0 >= 20000);
  assert_int_equal(wr_mux_stream_write_ext(A.m, sid, ext_buf(0, 20000), 20000,
                                           ext_release),
                   20000);
  assert_int_equal(ext_released, ext_given - 1);
  assert_int_equal(wr_mux_stream_reset(A.m, sid, WR_MUX_RST_CANCEL), 0);
  assert_int_equal(ext_released, ext_given);
  assert_int_equal(pump(), 0);
  /* After FIN: refused. */
  uint32_t sid2;
  assert_int_equal(wr_mux_stream_open(A.m, NULL, 0, &sid2, NULL), 0);
  assert_int_equal(wr_mux_stream_close(A.m, sid2), 0);
  assert_int_equal(wr_mux_stream_write_ext(A.m, sid2, ext_buf(0, 5000), 5000,
                                           ext_release),
                   WR_ERR_CLOSED);
  /* What is still queued when the mux goes is handed back by wr_mux_del. */
  uint32_t sid3;
  assert_int_equal(wr_mux_stream_open(A.m, NULL, 0, &sid3, NULL), 0);
  assert_int_equal(wr_mux_stream_write_ext(A.m, sid3, ext_buf(0, 9000), 9000,
                                           ext_release),
                   9000);
  assert_int_equal(ext_released, ext_given - 1);
  teardown_pair();
  assert_int_equal(ext_released, ext_given);
}

static void test_write_ext(void **state) {
  (void)state;
  use_send_v = 0;
  write_ext_once();
  use_send_v = 1;
  write_ext_once();
  use_send_v = 0;
}

static void test_link_window(void **state) {
  (void)state;
  wr_mux_config ca, cb;
  small_windows(&ca, &cb, 65536, 65536);
  fill_pattern();
  setup_pair(&ca, &cb, NULL);
  assert_int_equal(pump(), 0);
  uint32_t s1, s2;
  assert_int_equal(wr_mux_stream_open(A.m, NULL, 0, &s1, NULL), 0);
  assert_int_equal(wr_mux_stream_open(A.m, NULL, 0, &s2, NULL), 0);
  assert_int_equal(write_some(&A, s1, 0, 40000), 40000);
  assert_int_equal(wr_mux_stream_credit(A.m, s2), 65536 - 40000);
  assert_int_equal(write_some(&A, s2, 0, 65536), 65536 - 40000);
  assert_int_equal(wr_mux_stream_credit(A.m, s1), 0);
  assert_int_equal(pump(), 0);
  assert_int_equal(B.rx[s1] + B.rx[s2], 65536);
  /* Consuming s1 returns link credit (40000 >= half the link). */
  assert_int_equal(wr_mux_stream_consume(B.m, s1, 40000), 0);
  assert_int_equal(pump(), 0);
  assert_int_equal(A.writable[s2], 1);
  assert_int_equal(wr_mux_stream_credit(A.m, s2), 40000);
  /* s1 was not blocked by a short write: no callback for it. */
  assert_int_equal(A.writable[s1], 0);
  teardown_pair();
}

/* Streams that hold more than half the link window unconsumed (their
 * readers stopped) must not stop the others: the credit a live stream
 * consumes comes back even below the half-window batch, because the
 * peer has less left than that (issue 11, visitors that never read). */
static void test_link_window_stuck_streams(void **state) {
  (void)state;
  wr_mux_config ca, cb;
  small_windows(&ca, &cb, 65536, 4 * 65536);
  fill_pattern();
  setup_pair(&ca, &cb, NULL);
  assert_int_equal(pump(), 0);
  uint32_t stuck[3], live;
  for (int i = 0; i < 3; i++) {
    assert_int_equal(wr_mux_stream_open(A.m, NULL, 0, &stuck[i], NULL), 0);
    assert_int_equal(write_some(&A, stuck[i], 0, 65536), 65536);
  }
  assert_int_equal(wr_mux_stream_open(A.m, NULL, 0, &live, NULL), 0);
  assert_int_equal(pump(), 0);
  /* Many rounds of a live stream: each one consumed is sent again.  The
   * link is short (3/4 held by the stuck ones), so the live stream gets
   * its fair share, 32 KiB, per round (test_fair_credit_*). */
  size_t total = 0;
  for (int round = 0; round < 8; round++) {
    size_t c = wr_mux_stream_credit(A.m, live);
    assert_int_equal(c, 32768);
    assert_int_equal(write_some(&A, live, total, c), c);
    total += c;
    assert_int_equal(pump(), 0);
    assert_int_equal(B.rx[live], total);
    assert_int_equal(wr_mux_stream_consume(B.m, live, c), 0);
    assert_int_equal(pump(), 0);
  }
  for (int i = 0; i < 3; i++) assert_int_equal(B.rx[stuck[i]], 65536);
  teardown_pair();
}

/* The same with the stuck streams written through
 * wr_mux_stream_write_ext (the owner relaying into a node link): what
 * they hold counts toward the fair share as any write does, so the live
 * stream gets 32 KiB, not the whole 64 KiB left of the link. */
static void test_fair_credit_ext(void **state) {
  (void)state;
  wr_mux_config ca, cb;
  small_windows(&ca, &cb, 65536, 4 * 65536);
  fill_pattern();
  setup_pair(&ca, &cb, NULL);
  ext_given = ext_released = 0;
  assert_int_equal(pump(), 0);
  uint32_t stuck[3], live;
  for (int i = 0; i < 3; i++) {
    assert_int_equal(wr_mux_stream_open(A.m, NULL, 0, &stuck[i], NULL), 0);
    size_t c = wr_mux_stream_credit(A.m, stuck[i]);
    assert_int_equal(c, 65536);
    assert_int_equal(wr_mux_stream_write_ext(A.m, stuck[i], ext_buf(0, c), c,
                                             ext_release),
                     c);
  }
  assert_int_equal(wr_mux_stream_open(A.m, NULL, 0, &live, NULL), 0);
  assert_int_equal(pump(), 0);
  assert_int_equal(wr_mux_stream_credit(A.m, live), 32768);
  teardown_pair();
  assert_int_equal(ext_released, ext_given);
}

/*
 * Fair link credit (mux.c): a flood of new streams whose reader never
 * consumes (slow readers of large responses) must leave link credit for
 * a fresh stream.  With first-come credit the first 16 of them took the
 * whole 16 MiB link at 1 MiB each and every later stream got nothing
 * until they were reset.  Default windows, as the tunnel runs them.
 */
static void test_fair_credit_flood(void **state) {
  (void)state;
  enum { STUCK = 200, FRESH = 20, PAGE = 32768 };
  fill_pattern();
  setup_pair(NULL, NULL, NULL);
  assert_int_equal(pump(), 0);
  size_t stuck_bytes = 0;
  for (int i = 0; i < STUCK; i++) {
    uint32_t sid;
    now += 5; /* 200 connections/s */
    assert_int_equal(wr_mux_stream_open(A.m, NULL, 0, &sid, NULL), 0);
    /* Each wants 2 MiB and takes all the credit it is given. */
    for (int k = 0; k < 4; k++) {
      stuck_bytes += write_some(&A, sid, 0, 1 << 20);
      assert_int_equal(pump(), 0);
    }
  }
  /* The flood holds at most what the shares allow: 8 streams at a whole
   * window before the link got short, then shares shrinking to 32 KiB. */
  assert_true(stuck_bytes < (15u << 20));
  for (int i = 0; i < FRESH; i++) {
    uint32_t sid;
    now += 5;
    assert_int_equal(wr_mux_stream_open(A.m, NULL, 0, &sid, NULL), 0);
    assert_true(wr_mux_stream_credit(A.m, sid) >= PAGE);
    assert_int_equal(write_some(&A, sid, 0, PAGE), PAGE);
    assert_int_equal(wr_mux_stream_close(A.m, sid), 0);
    assert_int_equal(pump(), 0);
    assert_int_equal(B.rx[sid], PAGE);
    assert_int_equal(B.fin[sid], 1);
    assert_int_equal(wr_mux_stream_consume(B.m, sid, PAGE), 0);
    B.unconsumed[sid] = 0;
    assert_int_equal(wr_mux_stream_close(B.m, sid), 0);
    assert_int_equal(pump(), 0);
    assert_int_equal(A.closed[sid], 1);
  }
  teardown_pair();
}

/*
 * A stream over its share waits for its own stream credit; that comes
 * back in CREDIT_STEP pieces while the link is short, including bytes it
 * consumed before the link got short (below the half-window batch): the
 * receiver returns those when it sees the link get short.  Without that
 * the live stream below would hold 64 KiB against a 32 KiB share, with
 * nothing left to consume, and never send again.
 */
static void test_fair_credit_short_flush(void **state) {
  (void)state;
  wr_mux_config ca, cb;
  small_windows(&ca, &cb, 256 << 10, 1 << 20);
  fill_pattern();
  setup_pair(&ca, &cb, NULL);
  assert_int_equal(pump(), 0);
  uint32_t live, stuck[3];
  assert_int_equal(wr_mux_stream_open(A.m, NULL, 0, &live, NULL), 0);
  assert_int_equal(write_some(&A, live, 0, 65536), 65536);
  assert_int_equal(pump(), 0);
  assert_int_equal(wr_mux_stream_consume(B.m, live, 65536), 0);
  B.unconsumed[live] = 0;
  assert_int_equal(pump(), 0);
  for (int i = 0; i < 3; i++) {
    assert_int_equal(wr_mux_stream_open(A.m, NULL, 0, &stuck[i], NULL), 0);
    (void)write_some(&A, stuck[i], 0, 256 << 10);
    assert_int_equal(pump(), 0);
  }
  /* Two took a whole window, the third its 32 KiB share. */
  assert_int_equal(B.rx[stuck[0]] + B.rx[stuck[1]], 512 << 10);
  assert_int_equal(B.rx[stuck[2]], 32768);
  size_t total = 65536;
  for (int round = 0; round < 6; round++) {
    size_t c = wr_mux_stream_credit(A.m, live);
    assert_true(c >= 16384);
    assert_int_equal(write_some(&A, live, total, c), c);
    total += c;
    assert_int_equal(pump(), 0);
    assert_int_equal(B.rx[live], total);
    assert_int_equal(wr_mux_stream_consume(B.m, live, c), 0);
    B.unconsumed[live] = 0;
    assert_int_equal(pump(), 0);
  }
  teardown_pair();
}

/* A peer that did not announce a credit step (an older version) batches
 * its stream credit in half windows: no cap then, first come as before,
 * or a capped stream could wait for credit its peer never sends. */
static void test_fair_credit_needs_step(void **state) {
  (void)state;
  wr_mux_config ca, cb;
  small_windows(&ca, &cb, 65536, 4 * 65536);
  fill_pattern();
  setup_pair(&ca, &cb, NULL);
  /* B's SETTINGS, rewritten without the step, as an older node sends. */
  wr_frame f = {.type = WR_FRAME_SETTINGS};
  f.set.present = (1u << WR_SET_STREAM_WINDOW) | (1u << WR_SET_LINK_WINDOW);
  f.set.val[WR_SET_STREAM_WINDOW] = 65536;
  f.set.val[WR_SET_LINK_WINDOW] = 4 * 65536;
  uint8_t buf[128];
  wr_wbuf w;
  wr_wbuf_init(&w, buf, sizeof buf);
  assert_int_equal(wr_frame_encode(&w, &f), 0);
  assert_int_equal(wr_mux_recv(A.m, buf, wr_frame_encoded_len(&f), now), 0);
  uint32_t sid[4];
  for (int i = 0; i < 4; i++) {
    assert_int_equal(wr_mux_stream_open(A.m, NULL, 0, &sid[i], NULL), 0);
    assert_int_equal(wr_mux_stream_credit(A.m, sid[i]), 65536);
    assert_int_equal(write_some(&A, sid[i], 0, 65536), 65536);
  }
  teardown_pair();
}

/*
 * Streams waiting for room in the send buffer are woken least-served
 * first: a fresh stream with a small answer that blocked behind a burst
 * of big ones goes before them (oldest first, it waited for every one of
 * them to refill the buffer once).
 */
static void test_wake_least_served_first(void **state) {
  (void)state;
  wr_mux_config ca, cb;
  wr_mux_config_default(&ca, 1);
  wr_mux_config_default(&cb, 0);
  ca.send_buffer = 65536;
  fill_pattern();
  setup_pair(&ca, &cb, NULL);
  assert_int_equal(pump(), 0);
  uint32_t big[8], fresh;
  for (int i = 0; i < 8; i++) {
    assert_int_equal(wr_mux_stream_open(A.m, NULL, 0, &big[i], NULL), 0);
    assert_int_equal(write_some(&A, big[i], 0, 8192), 8192);
  }
  for (int i = 0; i < 8; i++) /* the buffer is full: all wait */
    assert_int_equal(write_some(&A, big[i], 8192, 65536), 0);
  assert_int_equal(wr_mux_stream_open(A.m, NULL, 0, &fresh, NULL), 0);
  assert_int_equal(write_some(&A, fresh, 0, 5), 0);
  /* pump() drains the buffer; each drain wakes one (the woken ones here
   * write nothing more, so some stay waiting). */
  assert_int_equal(pump(), 0);
  assert_true(A.n_wake >= 2);
  assert_int_equal(A.wake_order[0], fresh);
  /* Among equals, oldest first. */
  for (int i = 1; i < A.n_wake && i < 9; i++)
    assert_int_equal(A.wake_order[i], big[i - 1]);
  teardown_pair();
}

/* ... but not for a sliver of credit: a stream woken with less than the
 * client reads for (4 KiB) waits again at once, and being the least
 * served it was chosen again at every wake-up while streams with credit
 * to use waited. */
static void test_wake_not_for_sliver(void **state) {
  (void)state;
  wr_mux_config ca, cb;
  small_windows(&ca, &cb, 16384, 1 << 20);
  ca.send_buffer = 2 * 16384;
  fill_pattern();
  setup_pair(&ca, &cb, NULL);
  assert_int_equal(pump(), 0);
  uint32_t big[4], x;
  for (int i = 0; i < 4; i++) {
    assert_int_equal(wr_mux_stream_open(A.m, NULL, 0, &big[i], NULL), 0);
    assert_int_equal(write_some(&A, big[i], 0, 16384), 16384);
    assert_int_equal(pump(), 0);
  }
  for (int i = 0; i < 4; i++) { /* their stream credit comes back */
    assert_int_equal(wr_mux_stream_consume(B.m, big[i], 16384), 0);
    B.unconsumed[big[i]] = 0;
  }
  assert_int_equal(pump(), 0);
  /* x has sent less than any of them, and has 2 KiB of credit left. */
  assert_int_equal(wr_mux_stream_open(A.m, NULL, 0, &x, NULL), 0);
  assert_int_equal(write_some(&A, x, 0, 14336), 14336);
  assert_int_equal(pump(), 0);
  for (int i = 0; i < 4; i++) /* the send buffer fills */
    assert_int_equal(write_some(&A, big[i], 16384, 8192), 8192);
  for (int i = 0; i < 4; i++) /* each with 8 KiB of credit left */
    assert_int_equal(write_some(&A, big[i], 24576, 1), 0);
  (void)wr_mux_stream_wait(A.m, x); /* as the client does under 4 KiB */
  A.n_wake = 0;
  assert_int_equal(pump(), 0);
  assert_true(A.n_wake >= 1);
  assert_int_equal(A.wake_order[0], big[0]);
  assert_int_equal(A.writable[x], 0);
  teardown_pair();
}

/* Resets free queued bytes and give credit back on both sides. */
static void test_reset_returns_credit(void **state) {
  (void)state;
  wr_mux_config ca, cb;
  small_windows(&ca, &cb, 65536, 65536);
  fill_pattern();
  setup_pair(&ca, &cb, NULL);
  assert_int_equal(pump(), 0);
  uint32_t s1, s2, s3;
  assert_int_equal(wr_mux_stream_open(A.m, NULL, 0, &s1, NULL), 0);
  assert_int_equal(write_some(&A, s1, 0, 65536), 65536);
  assert_int_equal(pump(), 0);
  assert_int_equal(B.rx[s1], 65536);
  /* Receiver resets without consuming: the link credit comes back. */
  assert_int_equal(wr_mux_stream_reset(B.m, s1, WR_MUX_RST_CANCEL), 0);
  assert_int_equal(B.closed[s1], 1);
  assert_int_equal(B.close_by_peer[s1], 0);
  assert_int_equal(B.close_code[s1], WR_MUX_RST_CANCEL);
  assert_int_equal(pump(), 0);
  assert_int_equal(A.closed[s1], 1);
  assert_int_equal(A.close_by_peer[s1], 1);
  assert_int_equal(wr_mux_stream_open(A.m, NULL, 0, &s2, NULL), 0);
  assert_int_equal(wr_mux_stream_credit(A.m, s2), 65536);
  /* Sender resets with bytes still queued: freed, credit back locally. */
  assert_int_equal(write_some(&A, s2, 0, 65536), 65536);
  wr_mux_stats st;
  wr_mux_get_stats(A.m, &st);
  assert_int_equal(st.queued_bytes >= 65536, 1);
  assert_int_equal(wr_mux_stream_reset(A.m, s2, WR_MUX_RST_INTERNAL), 0);
  wr_mux_get_stats(A.m, &st);
  assert_true(st.queued_bytes < 100);
  assert_int_equal(wr_mux_stream_open(A.m, NULL, 0, &s3, NULL), 0);
  assert_int_equal(wr_mux_stream_credit(A.m, s3), 65536);
  assert_int_equal(pump(), 0);
  assert_int_equal(B.rx[s2], 0);
  assert_int_equal(B.closed[s2], 1);
  assert_int_equal(B.close_code[s2], WR_MUX_RST_INTERNAL);
  /* Data in flight when the receiver reset: charged and returned. */
  assert_int_equal(write_some(&A, s3, 0, 65536), 65536);
  wr_ssize n = wr_mux_send(A.m, rec, sizeof rec, now);
  assert_true(n > 0);
  assert_int_equal(wr_mux_recv(B.m, rec, (size_t)n, now), 0);
  assert_int_equal(wr_mux_stream_reset(B.m, s3, WR_MUX_RST_CANCEL), 0);
  assert_int_equal(pump(), 0); /* the rest arrives for a dead stream */
  assert_int_equal(A.closed[s3], 1);
  uint32_t s4;
  assert_int_equal(wr_mux_stream_open(A.m, NULL, 0, &s4, NULL), 0);
  assert_int_equal(pump(), 0);
  /* 65536 bytes went as 4 frames of 16376 and one of 32.  B returned the
   * first 16376 at the reset and the next two as they arrived (one
   * WINDOW at >= half the link); the last 16408 wait for more, batched. */
  assert_int_equal(wr_mux_stream_credit(A.m, s4), 65536 - 16408);
  assert_int_equal(wr_mux_stream_reset(A.m, 999, 0), WR_ERR_NOTFOUND);
  wr_mux_get_stats(B.m, &st);
  assert_int_equal(st.rx_malformed, 0);
  teardown_pair();
}

/* ---- crafted input against one mux ---- */

static size_t put(uint8_t *p, const wr_frame *f) {
  wr_wbuf b;
  wr_wbuf_init(&b, p, 70000);
  assert_int_equal(wr_frame_encode(&b, f), 0);
  return wr_wbuf_len(&b);
}

static size_t put_settings(uint8_t *p, uint32_t sw, uint32_t lw) {
  wr_frame f = {.type = WR_FRAME_SETTINGS};
  f.set.present = (1u << WR_SET_STREAM_WINDOW) | (1u << WR_SET_LINK_WINDOW);
  f.set.val[WR_SET_STREAM_WINDOW] = sw;
  f.set.val[WR_SET_LINK_WINDOW] = lw;
  return put(p, &f);
}

static uint8_t raw[1 << 21];

/* A node mux (b) with a fresh client-peer prefix: SETTINGS + OPEN 1. */
static size_t peer_prefix(uint8_t *p) {
  size_t n = put_settings(p, 65536, 1 << 20);
  wr_frame o = {.type = WR_FRAME_OPEN, .sid = 1};
  return n + put(p + n, &o);
}

static int feed_b(const uint8_t *p, size_t n) {
  return wr_mux_recv(B.m, p, n, now);
}

static uint64_t malformed_b(void) {
  wr_mux_stats st;
  wr_mux_get_stats(B.m, &st);
  return st.rx_malformed;
}

static void test_flow_violation(void **state) {
  (void)state;
  wr_mux_config ca, cb;
  small_windows(&ca, &cb, 65536, 1 << 20);
  setup_pair(&ca, &cb, NULL);
  size_t n = peer_prefix(raw);
  /* Exactly the stream window is fine; one more byte is not. */
  for (int i = 0; i < 4; i++) {
    wr_frame d = {
        .type = WR_FRAME_DATA, .sid = 1, .payload = pattern, .len = 16384};
    n += put(raw + n, &d);
  }
  assert_int_equal(feed_b(raw, n), 0);
  assert_int_equal(B.rx[1], 65536);
  wr_frame d = {.type = WR_FRAME_DATA, .sid = 1, .payload = pattern, .len = 1};
  n = put(raw, &d);
  assert_int_equal(feed_b(raw, n), WR_ERR_FLOW);
  assert_int_equal(malformed_b(), 1);
  /* Sticky. */
  assert_int_equal(feed_b(raw, n), WR_ERR_FLOW);
  assert_int_equal(wr_mux_send(B.m, rec, sizeof rec, now), WR_ERR_FLOW);
  teardown_pair();

  /* Link window: two streams, each within its window, together over. */
  small_windows(&ca, &cb, 65536, 65536);
  setup_pair(&ca, &cb, NULL);
  n = peer_prefix(raw);
  wr_frame o = {.type = WR_FRAME_OPEN, .sid = 3};
  n += put(raw + n, &o);
  for (int i = 0; i < 5; i++) {
    wr_frame f = {.type = WR_FRAME_DATA,
                  .sid = i % 2 ? 3 : 1,
                  .payload = pattern,
                  .len = 16384};
    n += put(raw + n, &f);
  }
  assert_int_equal(feed_b(raw, n), WR_ERR_FLOW);
  assert_int_equal(B.rx[1] + B.rx[3], 65536);
  teardown_pair();

  /* Credit overflow: a WINDOW beyond 2^31 - 1. */
  setup_pair(NULL, NULL, NULL);
  n = peer_prefix(raw);
  wr_frame w = {.type = WR_FRAME_WINDOW, .sid = 0, .value = 0x7fffffff};
  n += put(raw + n, &w);
  assert_int_equal(feed_b(raw, n), WR_ERR_FLOW);
  assert_int_equal(malformed_b(), 1);
  teardown_pair();
  setup_pair(NULL, NULL, NULL);
  n = peer_prefix(raw);
  w.sid = 1;
  w.value = 0x7fffffff - 65536; /* on top of the 64 KiB it announced */
  n += put(raw + n, &w);
  assert_int_equal(feed_b(raw, n), 0);
  w.value = 1;
  n = put(raw, &w);
  assert_int_equal(feed_b(raw, n), WR_ERR_FLOW);
  assert_int_equal(malformed_b(), 1);
  teardown_pair();
}

/* Each malformed input kills the link with the right code and counts. */
static void test_malformed(void **state) {
  (void)state;
  size_t n;
  wr_frame f;
  int expect;
#define CASE(code_, ...)                                                       \
  do {                                                                         \
    setup_pair(NULL, NULL, NULL);                                              \
    n = peer_prefix(raw);                                                      \
    __VA_ARGS__;                                                               \
    expect = (code_);                                                          \
    assert_int_equal(feed_b(raw, n), expect);                                  \
    assert_int_equal(malformed_b(), 1);                                        \
    teardown_pair();                                                           \
  } while (0)

  /* Unknown frame type. */
  CASE(WR_ERR_PROTO, wr_frame_hdr_put(raw + n, 42, 0, 0, 0); n += 8);
  /* Oversized OPEN metadata (B accepts 16 KiB). */
  CASE(WR_ERR_TOOBIG, wr_frame_hdr_put(raw + n, WR_FRAME_OPEN, 0, 16385, 3);
       n += 8);
  /* OPEN with our (even) parity, and a reused id. */
  CASE(WR_ERR_PROTO, f = (wr_frame){.type = WR_FRAME_OPEN, .sid = 2};
       n += put(raw + n, &f));
  CASE(WR_ERR_PROTO, f = (wr_frame){.type = WR_FRAME_OPEN, .sid = 1};
       n += put(raw + n, &f));
  /* DATA for a stream never opened. */
  CASE(WR_ERR_PROTO, f = (wr_frame){.type = WR_FRAME_DATA,
                                    .sid = 5,
                                    .payload = pattern,
                                    .len = 1};
       n += put(raw + n, &f));
  CASE(WR_ERR_PROTO, f = (wr_frame){.type = WR_FRAME_DATA,
                                    .sid = 4,
                                    .payload = pattern,
                                    .len = 1};
       n += put(raw + n, &f));
  /* DATA after FIN. */
  CASE(WR_ERR_PROTO, f = (wr_frame){.type = WR_FRAME_DATA,
                                    .sid = 1,
                                    .flags = WR_FRAME_FLAG_FIN};
       n += put(raw + n, &f);
       f =
           (wr_frame){
               .type = WR_FRAME_DATA, .sid = 1, .payload = pattern, .len = 1};
       n += put(raw + n, &f));
  /* WINDOW / RST for a stream never opened. */
  CASE(WR_ERR_PROTO,
       f = (wr_frame){.type = WR_FRAME_WINDOW, .sid = 9, .value = 1};
       n += put(raw + n, &f));
  CASE(WR_ERR_PROTO, f = (wr_frame){.type = WR_FRAME_RST, .sid = 8};
       n += put(raw + n, &f));
  /* A second SETTINGS, and SETTINGS out of range. */
  CASE(WR_ERR_PROTO, n += put_settings(raw + n, 65536, 65536));
  CASE(WR_ERR_PROTO, n = put_settings(raw, 100, 65536));
  /* Anything before SETTINGS. */
  CASE(WR_ERR_PROTO, f = (wr_frame){.type = WR_FRAME_PING}; n = put(raw, &f));
  /* Bad flag, bad fixed length. */
  CASE(WR_ERR_PROTO, wr_frame_hdr_put(raw + n, WR_FRAME_PING, 1, 8, 0);
       n += 16);
  CASE(WR_ERR_PROTO, wr_frame_hdr_put(raw + n, WR_FRAME_GOAWAY, 0, 5, 0);
       n += 13);
#undef CASE
  /* Late frames for a closed stream are not malformed. */
  setup_pair(NULL, NULL, NULL);
  n = peer_prefix(raw);
  f = (wr_frame){.type = WR_FRAME_RST, .sid = 1};
  n += put(raw + n, &f);
  f = (wr_frame){
      .type = WR_FRAME_DATA, .sid = 1, .payload = pattern, .len = 100};
  n += put(raw + n, &f);
  f = (wr_frame){.type = WR_FRAME_WINDOW, .sid = 1, .value = 5};
  n += put(raw + n, &f);
  f = (wr_frame){.type = WR_FRAME_RST, .sid = 1};
  n += put(raw + n, &f);
  assert_int_equal(feed_b(raw, n), 0);
  assert_int_equal(B.closed[1], 1);
  assert_int_equal(B.close_by_peer[1], 1);
  assert_int_equal(malformed_b(), 0);
  teardown_pair();
}

static void test_ping_timeout(void **state) {
  (void)state;
  setup_pair(NULL, NULL, NULL);
  wr_mux_config c;
  wr_mux_config_default(&c, 1);
  assert_int_equal(pump(), 0);
  wr_tstamp t0 = now;
  assert_int_equal(wr_mux_deadline(A.m), t0 + c.ping_interval);
  now = t0 + c.ping_interval - 1;
  assert_int_equal(wr_mux_tick(A.m, now), 0);
  assert_int_equal(wr_mux_want_write(A.m), 0);
  now = t0 + c.ping_interval;
  assert_int_equal(wr_mux_tick(A.m, now), 0);
  assert_int_equal(wr_mux_want_write(A.m), 1); /* PING */
  assert_int_equal(wr_mux_deadline(A.m), t0 + c.ping_timeout);
  /* B answers; the PONG is liveness for A. */
  assert_int_equal(wr_mux_tick(B.m, now), 0); /* B pings too */
  assert_int_equal(pump(), 0);
  assert_int_equal(wr_mux_deadline(A.m), now + c.ping_interval);
  wr_mux_stats st;
  wr_mux_get_stats(A.m, &st);
  assert_int_equal(st.rx_malformed, 0);
  /* Now B goes silent: A pings once, then times out at last_rx+timeout. */
  wr_tstamp last = now;
  now = last + c.ping_interval;
  assert_int_equal(wr_mux_tick(A.m, now), 0);
  now = last + c.ping_timeout - 1;
  assert_int_equal(wr_mux_tick(A.m, now), 0);
  now = last + c.ping_timeout;
  assert_int_equal(wr_mux_deadline(A.m), now);
  assert_int_equal(wr_mux_tick(A.m, now), WR_ERR_TIMEOUT);
  assert_int_equal(wr_mux_tick(A.m, now), WR_ERR_TIMEOUT);
  assert_int_equal(wr_mux_deadline(A.m), WR_TSTAMP_NONE);
  /* Any frame is liveness: B receiving traffic resets its timer. */
  now = last + c.ping_timeout - 1;
  teardown_pair();

  setup_pair(NULL, NULL, NULL);
  assert_int_equal(pump(), 0);
  for (int i = 0; i < 10; i++) {
    now += c.ping_interval - 1;
    assert_int_equal(wr_mux_tick(B.m, now), 0);
    assert_int_equal(wr_mux_want_write(B.m), 0); /* no ping needed */
    assert_int_equal(wr_mux_control(A.m, (const uint8_t *)"hi", 2), 0);
    assert_int_equal(pump(), 0);
  }
  /* Without traffic the next tick one interval later does ping. */
  now += c.ping_interval;
  assert_int_equal(wr_mux_tick(B.m, now), 0);
  assert_int_equal(wr_mux_want_write(B.m), 1);
  assert_int_equal(B.n_control, 10);
  assert_memory_equal(B.control, "hi", 2);
  teardown_pair();
}

/* The control queue is bounded: CONTROL frames queue up to
 * max_control_queue bytes, the next one is refused (WR_ERR_NOBUF, nothing
 * queued, the mux still usable), and once the peer drained the queue
 * they are taken again; an empty queue takes even a frame over the cap. */
static void test_control_queue_cap(void **state) {
  (void)state;
  wr_mux_config ca, cb;
  wr_mux_config_default(&ca, 1);
  wr_mux_config_default(&cb, 0);
  ca.max_control_queue = 4096;
  fill_pattern();
  setup_pair(&ca, &cb, NULL);
  assert_int_equal(pump(), 0); /* SETTINGS both ways */
  int queued = 0, rv;
  while ((rv = wr_mux_control(A.m, pattern, 1000)) == 0) {
    queued++;
    assert_true(queued <= 4);
  }
  assert_int_equal(rv, WR_ERR_NOBUF);
  assert_int_equal(queued, 4); /* 4 x (1000 + header) <= 4096 < 5 x */
  wr_mux_stats st;
  wr_mux_get_stats(A.m, &st);
  assert_true(st.queued_bytes <= 4096);
  assert_int_equal(wr_mux_control(A.m, pattern, 100), WR_ERR_NOBUF);
  assert_int_equal(pump(), 0);
  assert_int_equal(B.n_control, 4);
  assert_int_equal(B.control_len, 128);
  /* Drained: accepted again, even one frame larger than the cap. */
  assert_int_equal(wr_mux_control(A.m, pattern, 5000), 0);
  assert_int_equal(wr_mux_control(A.m, pattern, 1000), WR_ERR_NOBUF);
  assert_int_equal(pump(), 0);
  assert_int_equal(B.n_control, 5);
  assert_int_equal(wr_mux_control(A.m, pattern, 1000), 0);
  assert_int_equal(pump(), 0);
  assert_int_equal(B.n_control, 6);
  /* Out of bounds caps are refused. */
  wr_mux *m;
  ca.max_control_queue = 4095;
  assert_int_equal(wr_mux_new(&m, &ca, &cbs, NULL, NULL, now), WR_ERR_INVAL);
  teardown_pair();
}

static void test_goaway(void **state) {
  (void)state;
  setup_pair(NULL, NULL, NULL);
  A.auto_consume = B.auto_consume = 1;
  assert_int_equal(pump(), 0);
  uint32_t s1, s2;
  assert_int_equal(wr_mux_stream_open(A.m, NULL, 0, &s1, NULL), 0);
  assert_int_equal(pump(), 0);
  /* B opens a stream while A's GOAWAY is in flight: refused. */
  assert_int_equal(wr_mux_stream_open(B.m, NULL, 0, &s2, NULL), 0);
  assert_int_equal(wr_mux_goaway(A.m, 7), 0);
  assert_int_equal(wr_mux_goaway(A.m, 8), 0);
  assert_int_equal(wr_mux_stream_open(A.m, NULL, 0, NULL, NULL), WR_ERR_CLOSED);
  assert_int_equal(pump(), 0);
  assert_int_equal(B.n_goaway, 1);
  assert_int_equal(B.goaway_code, 7);
  assert_int_equal(B.closed[s2], 1);
  assert_int_equal(B.close_code[s2], WR_MUX_RST_REFUSED);
  assert_int_equal(A.opened[s2], 0);
  assert_int_equal(wr_mux_stream_open(B.m, NULL, 0, NULL, NULL), WR_ERR_CLOSED);
  /* The existing stream still works both ways. */
  assert_int_equal(wr_mux_stream_write(A.m, s1, (const uint8_t *)"abc", 3), 3);
  assert_int_equal(wr_mux_stream_write(B.m, s1, (const uint8_t *)"de", 2), 2);
  assert_int_equal(wr_mux_stream_close(A.m, s1), 0);
  assert_int_equal(wr_mux_stream_close(B.m, s1), 0);
  assert_int_equal(pump(), 0);
  assert_int_equal(B.rx[s1], 3);
  assert_int_equal(A.rx[s1], 2);
  assert_int_equal(A.closed[s1], 1);
  assert_int_equal(B.closed[s1], 1);
  teardown_pair();
}

static void test_stream_limit(void **state) {
  (void)state;
  wr_mux_config ca, cb;
  wr_mux_config_default(&ca, 1);
  wr_mux_config_default(&cb, 0);
  ca.max_streams = 8;
  cb.max_streams = 3;
  setup_pair(&ca, &cb, NULL);
  /* Before B's SETTINGS, A assumes its own limit (8): B refuses 5. */
  uint32_t sid;
  for (int i = 0; i < 8; i++)
    assert_int_equal(wr_mux_stream_open(A.m, NULL, 0, &sid, NULL), 0);
  assert_int_equal(wr_mux_stream_open(A.m, NULL, 0, &sid, NULL), WR_ERR_LIMIT);
  assert_int_equal(pump(), 0);
  assert_int_equal(B.n_open, 3);
  int refused = 0;
  for (uint32_t s = 1; s < 17; s += 2)
    if (A.closed[s] && A.close_code[s] == WR_MUX_RST_REFUSED)
      refused++;
  assert_int_equal(refused, 5);
  /* Now A knows B's limit: 3 live streams, a fourth is refused locally. */
  assert_int_equal(wr_mux_stream_open(A.m, NULL, 0, &sid, NULL), WR_ERR_LIMIT);
  assert_int_equal(wr_mux_stream_reset(A.m, 1, WR_MUX_RST_CANCEL), 0);
  assert_int_equal(wr_mux_stream_open(A.m, NULL, 0, &sid, NULL), 0);
  assert_int_equal(sid, 17);
  assert_int_equal(pump(), 0);
  assert_int_equal(B.opened[17], 1);
  wr_mux_stats st;
  wr_mux_get_stats(B.m, &st);
  assert_int_equal(st.rx_malformed, 0);
  assert_int_equal(st.streams_active, 3);
  teardown_pair();

  /* A flood of OPENs beyond the limit in one burst kills the link. */
  setup_pair(&ca, &cb, NULL);
  size_t n = put_settings(raw, 65536, 65536);
  for (uint32_t s = 1; s < 2 * 100; s += 2) {
    wr_frame o = {.type = WR_FRAME_OPEN, .sid = s};
    n += put(raw + n, &o);
  }
  assert_int_equal(feed_b(raw, n), WR_ERR_LIMIT);
  assert_int_equal(malformed_b(), 1);
  teardown_pair();
}

/* Every callback failure makes the call fail with WR_ERR_CALLBACK, and
 * the error sticks. */
static void test_callback_failure(void **state) {
  (void)state;
  int kinds[] = {EV_OPEN, 99, EV_FIN, EV_CLOSE, EV_CONTROL, EV_GOAWAY};
  for (size_t k = 0; k < WR_ARRAY_LEN(kinds); k++) {
    setup_pair(NULL, NULL, NULL);
    assert_int_equal(pump(), 0);
    B.fail_kind = kinds[k];
    uint32_t sid;
    assert_int_equal(wr_mux_stream_open(A.m, NULL, 0, &sid, NULL), 0);
    assert_int_equal(wr_mux_stream_write(A.m, sid, (const uint8_t *)"a", 1), 1);
    assert_int_equal(wr_mux_stream_close(A.m, sid), 0);
    assert_int_equal(wr_mux_control(A.m, (const uint8_t *)"c", 1), 0);
    assert_int_equal(wr_mux_goaway(A.m, 0), 0);
    int rv = pump();
    if (kinds[k] == EV_CLOSE) {
      assert_int_equal(rv, 0);
      assert_int_equal(wr_mux_stream_close(B.m, sid), 0);
      rv = pump();
    }
    assert_int_equal(rv, WR_ERR_CALLBACK);
    assert_int_equal(wr_mux_recv(B.m, rec, 1, now), WR_ERR_CALLBACK);
    teardown_pair();
  }
  /* A failing reset callback. */
  setup_pair(NULL, NULL, NULL);
  uint32_t sid;
  assert_int_equal(wr_mux_stream_open(A.m, NULL, 0, &sid, NULL), 0);
  A.fail_kind = EV_CLOSE;
  assert_int_equal(wr_mux_stream_reset(A.m, sid, 0), WR_ERR_CALLBACK);
  assert_int_equal(wr_mux_stream_open(A.m, NULL, 0, &sid, NULL),
                   WR_ERR_CALLBACK);
  teardown_pair();
}

/* A scenario touching every allocation site; returns the first error. */
static int scenario(const wr_mem *mem) {
  int rv;
  wr_mux_config ca, cb;
  small_windows(&ca, &cb, 65536, 1 << 20);
  cb.max_streams = 70;
  memset(&A, 0, sizeof A);
  memset(&B, 0, sizeof B);
  now = 1000;
  A.auto_consume = B.auto_consume = 1;
  if ((rv = wr_mux_new(&A.m, &ca, &cbs, &A, mem, now)) != 0)
    return rv;
  if ((rv = wr_mux_new(&B.m, &cb, &cbs, &B, mem, now)) != 0)
    return rv;
  uint32_t sids[80];
  /* 80 streams grow the table past its first size; B refuses 10. */
  for (int i = 0; i < 80; i++) {
    if ((rv = wr_mux_stream_open(A.m, (const uint8_t *)"meta", 4, &sids[i],
                                 NULL)) != 0)
      return rv;
  }
  /* An app buffer queued as it is: handed back whatever fails (the
   * caller checks ext_released == ext_given after wr_mux_del).  Within
   * the 16 KiB floor: B's SETTINGS have not arrived yet. */
  wr_ssize ke = wr_mux_stream_write_ext(A.m, sids[0], ext_buf(0, 10000), 10000,
                                        ext_release);
  if (ke < 0)
    return (int)ke;
  for (int i = 0; i < 80; i++) {
    wr_ssize k = wr_mux_stream_write(A.m, sids[i], pattern, 40000);
    if (k < 0)
      return (int)k;
  }
  if ((rv = wr_mux_control(A.m, pattern, 3000)) != 0)
    return rv;
  if ((rv = pump()) != 0)
    return rv;
  chunk = 7; /* reassembly buffer */
  if ((rv = wr_mux_control(B.m, pattern, 3000)) != 0)
    return rv;
  rv = pump();
  chunk = 0;
  if (rv != 0)
    return rv;
  if ((rv = wr_mux_stream_reset(B.m, sids[0], 1)) != 0)
    return rv;
  if ((rv = wr_mux_tick(A.m, now + 10000)) != 0)
    return rv;
  if ((rv = wr_mux_goaway(B.m, 2)) != 0)
    return rv;
  if ((rv = wr_mux_stream_close(A.m, sids[1])) != 0)
    return rv;
  return pump();
}

static void test_failmalloc(void **state) {
  (void)state;
  fill_pattern();
  int failures = 0;
  long k;
  for (k = 1; k < 10000; k++) {
    failmalloc fm;
    failmalloc_init(&fm, k);
    ext_given = ext_released = 0;
    int rv = scenario(&fm.mem);
    teardown_pair();
    assert_int_equal(fm.live, 0);
    assert_int_equal(ext_released, ext_given);
    if (fm.count < k) {
      assert_int_equal(rv, 0); /* no allocation failed: must succeed */
      break;
    }
    /* A failed block allocation in stream_write only shortens the write;
     * every other failure is reported. */
    assert_true(rv == 0 || rv == WR_ERR_NOMEM);
    if (rv == WR_ERR_NOMEM)
      failures++;
  }
  assert_true(k < 10000);
  assert_true(failures >= 5);
}

/*
 * Seeded random sessions: opens, writes, closes, resets and partial
 * consumes on both sides, with the wire delivered in random slices.  The
 * receiving app must never hold more than the windows, every byte must
 * arrive in order and intact, and once everything is closed and consumed
 * no stream may remain and no credit may be lost.
 */
typedef struct wire {
  uint8_t buf[1 << 20];
  size_t len;
} wire;
static wire W[2];

static void stress_one(uint64_t seed) {
  wr_pcg32 g;
  wr_pcg32_seed(&g, seed, 7);
  wr_mux_config ca, cb;
  small_windows(&ca, &cb, 16384 + 16384 * wr_pcg32_bounded(&g, 4),
                32768 + 32768 * wr_pcg32_bounded(&g, 4));
  cb.stream_window = 16384 + 16384 * wr_pcg32_bounded(&g, 4);
  ca.max_streams = 1 + wr_pcg32_bounded(&g, 8);
  cb.max_streams = 1 + wr_pcg32_bounded(&g, 8);
  ca.send_buffer = 16384 * (1 + wr_pcg32_bounded(&g, 8));
  cb.send_buffer = 16384 * (1 + wr_pcg32_bounded(&g, 8));
  setup_pair(&ca, &cb, NULL);
  A.verify = B.verify = 1;
  W[0].len = W[1].len = 0;
  side *sd[2] = {&A, &B};
  const wr_mux_config *cf[2] = {&ca, &cb};
  static uint8_t tmp[70000];
  uint32_t opens = 0;

  for (int step = 0; step < 3000; step++) {
    int who = (int)wr_pcg32_bounded(&g, 2);
    side *x = sd[who], *y = sd[!who];
    uint32_t op = wr_pcg32_bounded(&g, 100);
    /* A random stream id this side may know of. */
    uint32_t sid = 1 + wr_pcg32_bounded(&g, 2 * opens + 2);
    int live = sid < MAXSID && !x->closed[sid];
    if (op < 8 && opens < 1500) {
      uint32_t nsid;
      int rv = wr_mux_stream_open(x->m, NULL, 0, &nsid, NULL);
      assert_true(rv == 0 || rv == WR_ERR_LIMIT);
      if (rv == 0) opens++;
    } else if (op < 50 && live) {
      size_t len = wr_pcg32_bounded(&g, sizeof tmp);
      for (size_t i = 0; i < len; i++)
        tmp[i] = pat(sid, x->written[sid] + i);
      wr_ssize k;
      if (op & 1) {
        /* Zero-copy: read no more than the credit into a mux buffer. */
        len = WR_MIN(WR_MIN(len, wr_mux_stream_credit(x->m, sid)),
                     (size_t)WR_MUX_BUF_CAP);
        uint8_t *b = wr_mux_buf_new(x->m);
        assert_non_null(b);
        memcpy(b, tmp, len);
        k = wr_mux_stream_write_buf(x->m, sid, b, len);
        assert_true(k == (wr_ssize)len || k == WR_ERR_NOTFOUND ||
                    k == WR_ERR_CLOSED);
      } else {
        k = wr_mux_stream_write(x->m, sid, tmp, len);
      }
      assert_true(k >= 0 || k == WR_ERR_NOTFOUND || k == WR_ERR_CLOSED);
      if (k > 0) x->written[sid] += (uint64_t)k;
    } else if (op < 55 && live) {
      int rv = wr_mux_stream_close(x->m, sid);
      assert_true(rv == 0 || rv == WR_ERR_NOTFOUND);
    } else if (op < 57 && live) {
      int rv = wr_mux_stream_reset(x->m, sid, WR_MUX_RST_CANCEL);
      assert_true(rv == 0 || rv == WR_ERR_NOTFOUND);
    } else if (op < 75) {
      for (uint32_t s2 = 1; s2 < MAXSID && s2 < 2 * opens + 3; s2++) {
        if (!x->unconsumed[s2]) continue;
        uint64_t n = x->unconsumed[s2] * wr_pcg32_bounded(&g, 3) / 2;
        assert_int_equal(wr_mux_stream_consume(x->m, s2, n), 0);
        x->unconsumed[s2] -= n;
      }
    } else {
      /* Produce into the wire, deliver a random slice in random chunks. */
      wire *w = &W[who];
      while (wr_mux_want_write(x->m) && w->len + 16384 <= sizeof w->buf) {
        size_t cap = 16 + wr_pcg32_bounded(&g, 16384 - 16 + 1);
        wr_ssize n = msend(x->m, w->buf + w->len, cap);
        assert_true(n >= 0);
        if (n == 0) break;
        w->len += (size_t)n;
      }
      size_t take = wr_pcg32_bounded(&g, (uint32_t)w->len + 1);
      for (size_t off = 0; off < take;) {
        size_t c = 1 + wr_pcg32_bounded(&g, 20000); /* WR_MIN evaluates twice */
        c = WR_MIN(c, take - off);
        assert_int_equal(wr_mux_recv(y->m, w->buf + off, c, now), 0);
        off += c;
      }
      memmove(w->buf, w->buf + take, w->len - take);
      w->len -= take;
    }
    /* The app never holds more than the windows it granted. */
    uint64_t total = 0;
    for (uint32_t s2 = 1; s2 < MAXSID && s2 < 2 * opens + 3; s2++) {
      assert_true(y->unconsumed[s2] <= cf[!who]->stream_window);
      total += y->unconsumed[s2];
    }
    assert_true(total <= cf[!who]->link_window);
  }

  /* Wind down: flush the wires, close everything, consume everything. */
  for (int d = 0; d < 2; d++) {
    assert_int_equal(wr_mux_recv(sd[!d]->m, W[d].buf, W[d].len, now), 0);
    W[d].len = 0;
  }
  A.auto_consume = B.auto_consume = 1;
  for (int round = 0; round < 10; round++) {
    assert_int_equal(pump(), 0);
    for (int d = 0; d < 2; d++)
      for (uint32_t s2 = 1; s2 < MAXSID && s2 < 2 * opens + 3; s2++)
        (void)wr_mux_stream_close(sd[d]->m, s2);
  }
  assert_int_equal(pump(), 0);
  for (int d = 0; d < 2; d++) {
    wr_mux_stats st;
    wr_mux_get_stats(sd[d]->m, &st);
    assert_int_equal(st.streams_active, 0);
    assert_int_equal(st.rx_malformed, 0);
    assert_int_equal(st.queued_bytes, 0);
    assert_int_equal(sd[d]->bad_bytes, 0);
  }
  /* Every stream that ended cleanly delivered exactly what was written,
   * in both directions. */
  int clean = 0;
  for (uint32_t s2 = 1; s2 < MAXSID && s2 < 2 * opens + 3; s2++) {
    if (A.close_code[s2] != -1 || B.close_code[s2] != -1) continue;
    if (!A.closed[s2] || !B.closed[s2]) continue;
    assert_int_equal(B.rx[s2], A.written[s2]);
    assert_int_equal(A.rx[s2], B.written[s2]);
    clean++;
  }
  assert_true(clean > 0);
  /* No credit lost: a new stream may send at least half the link (the
   * rest may sit in a batch below the WINDOW threshold). */
  uint32_t nsid;
  assert_int_equal(wr_mux_stream_open(A.m, NULL, 0, &nsid, NULL), 0);
  assert_true(wr_mux_stream_credit(A.m, nsid) >=
              WR_MIN(WR_MIN(cb.stream_window, cb.link_window / 2),
                     ca.send_buffer));
  teardown_pair();
}

static void test_random_sessions(void **state) {
  (void)state;
  for (uint64_t seed = 1; seed <= 30; seed++)
    stress_one(seed);
}

/* The same sessions, and the pump-driven tests, through wr_mux_send_v. */
static void test_send_v(void **state) {
  use_send_v = 1;
  for (uint64_t seed = 1; seed <= 30; seed++)
    stress_one(seed);
  test_open_data_fin(state);
  test_split_delivery(state);
  test_many_streams(state);
  test_stream_window(state);
  test_link_window(state);
  use_send_v = 0;
}

/* wr_mux_send_v's argument checks; an idle mux gives 0 pieces. */
static void test_send_v_args(void **state) {
  (void)state;
  static uint8_t scratch[WR_MUX_SEND_V_MAX + 1];
  struct iovec iov[WR_MUX_SEND_IOV_MAX];
  size_t niov = WR_MUX_SEND_IOV_MAX;
  setup_pair(NULL, NULL, NULL);
  assert_int_equal(wr_mux_send_v(A.m, scratch, WR_MUX_MIN_SEND - 1, iov,
                                 &niov, now),
                   WR_ERR_INVAL);
  assert_int_equal(wr_mux_send_v(A.m, scratch, WR_MUX_SEND_V_MAX + 1, iov,
                                 &niov, now),
                   WR_ERR_INVAL);
  niov = WR_MUX_SEND_IOV_MAX - 1;
  assert_int_equal(wr_mux_send_v(A.m, scratch, 100, iov, &niov, now),
                   WR_ERR_INVAL);
  assert_int_equal(pump(), 0);
  niov = WR_MUX_SEND_IOV_MAX;
  assert_int_equal(wr_mux_send_v(A.m, scratch, 100, iov, &niov, now), 0);
  assert_int_equal(niov, 0);
  teardown_pair();
}

/*
 * Micro-benchmark (not an assertion on speed): one stream moves
 * WARREN_MUX_BENCH_MIB MiB (default 64) from A to B through record-sized
 * wr_mux_send/wr_mux_recv calls, consuming after every record.
 */
static void test_bench(void **state) {
  (void)state;
  const char *e = getenv("WARREN_MUX_BENCH_MIB");
  uint64_t total = (uint64_t)(e ? atoi(e) : 64) << 20;
  fill_pattern();
  setup_pair(NULL, NULL, NULL);
  assert_int_equal(pump(), 0);
  uint32_t sid;
  assert_int_equal(wr_mux_stream_open(A.m, NULL, 0, &sid, NULL), 0);
  B.no_hash = 1;
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  uint64_t sent = 0;
  /* Source bytes walk through 1 MiB, as socket reads would not all hit
   * the same cache lines. */
  const size_t chunk_in = 65536;
  while (B.rx[sid] < total) {
    while (sent < total) {
      const uint8_t *in = pattern + sent % (sizeof pattern - chunk_in);
      wr_ssize k =
          wr_mux_stream_write(A.m, sid, in, WR_MIN(chunk_in, total - sent));
      assert_true(k >= 0);
      if (k == 0)
        break;
      sent += (uint64_t)k;
    }
    wr_ssize n;
    while ((n = wr_mux_send(A.m, rec, sizeof rec, now)) > 0) {
      assert_int_equal(wr_mux_recv(B.m, rec, (size_t)n, now), 0);
      assert_int_equal(wr_mux_stream_consume(B.m, sid, B.unconsumed[sid]), 0);
      B.unconsumed[sid] = 0;
    }
    assert_true(n == 0);
    while ((n = wr_mux_send(B.m, rec, sizeof rec, now)) > 0)
      assert_int_equal(wr_mux_recv(A.m, rec, (size_t)n, now), 0);
  }
  clock_gettime(CLOCK_MONOTONIC, &t1);
  double s = (double)(t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9;
  printf("mux bench: %llu MiB in %.3f s = %.0f MiB/s\n",
         (unsigned long long)(total >> 20), s, (double)(total >> 20) / s);
  assert_int_equal(B.rx[sid], total);
  teardown_pair();
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_open_data_fin),
      cmocka_unit_test(test_split_delivery),
      cmocka_unit_test(test_many_streams),
      cmocka_unit_test(test_stream_window),
      cmocka_unit_test(test_small_cap),
      cmocka_unit_test(test_link_window),
      cmocka_unit_test(test_send_buffer),
      cmocka_unit_test(test_send_buffer_wake_one),
      cmocka_unit_test(test_write_buf),
      cmocka_unit_test(test_write_ext),
      cmocka_unit_test(test_reset_returns_credit),
      cmocka_unit_test(test_flow_violation),
      cmocka_unit_test(test_malformed),
      cmocka_unit_test(test_ping_timeout),
      cmocka_unit_test(test_goaway),
      cmocka_unit_test(test_stream_limit),
      cmocka_unit_test(test_callback_failure),
      cmocka_unit_test(test_failmalloc),
      cmocka_unit_test(test_random_sessions),
      cmocka_unit_test(test_send_v),
      cmocka_unit_test(test_send_v_args),
      cmocka_unit_test(test_control_queue_cap),
      cmocka_unit_test(test_link_window_stuck_streams),
      cmocka_unit_test(test_fair_credit_flood),
      cmocka_unit_test(test_fair_credit_ext),
      cmocka_unit_test(test_fair_credit_short_flush),
      cmocka_unit_test(test_fair_credit_needs_step),
      cmocka_unit_test(test_wake_least_served_first),
      cmocka_unit_test(test_wake_not_for_sliver),
      cmocka_unit_test(test_bench),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
