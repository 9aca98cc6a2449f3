/* Application state in anti-entropy (wr_swim_app_sync): two cores run
 * sync sessions back to back in memory, with a toy application behind
 * the hooks: a map key -> version, whose digest record is (key, version)
 * and whose delta record is (key, version, payload), the payload a
 * pattern of (key, version) that delta_in checks byte for byte.  The toy
 * also checks the hook contract itself: the call order on each side, and
 * end exactly once per begin. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "failmalloc.h"
#include "warren/buf.h"
#include "warren/err.h"
#include "warren/pcg.h"
#include "warren/swim.h"

/* ---- the toy application ------------------------------------------------ */

#define TOY_KEYS 8192

typedef struct toy_ent {
  char key[24];
  uint64_t version;
} toy_ent;

typedef struct toy {
  toy_ent *v;
  size_t n;
  size_t payload;     /* delta record payload bytes */
  /* what happened, over all sessions */
  unsigned begins, ends, ends_ok, digest_in, delta_in, delta_out;
  uint64_t delta_out_bytes, delta_in_bytes;
  /* failure injection */
  int begin_null;            /* begin returns NULL */
  long fail_digest_next_at;  /* the n-th digest_next (1-based) fails */
  long fail_delta_next_at;   /* the n-th delta_next fails */
  const char *reject;        /* delta_in refuses this key */
  long digest_next_calls, delta_next_calls;
} toy;

typedef struct toy_ctx {
  toy *t;
  int initiator;
  toy_ent *peer; /* the peer's digest, as it arrived */
  size_t npeer, cap;
  size_t dig_pos, delta_pos;
  int delta_started;
} toy_ctx;

static toy_ent *toy_find(toy_ent *v, size_t n, const char *key) {
  for (size_t k = 0; k < n; k++)
    if (strcmp(v[k].key, key) == 0) return &v[k];
  return NULL;
}

static void toy_set(toy *t, const char *key, uint64_t version) {
  toy_ent *e = toy_find(t->v, t->n, key);
  if (!e) {
    assert_true(t->n < TOY_KEYS);
    e = &t->v[t->n++];
    snprintf(e->key, sizeof e->key, "%s", key);
  }
  e->version = version;
}

static uint64_t toy_get(toy *t, const char *key) {
  toy_ent *e = toy_find(t->v, t->n, key);
  return e ? e->version : 0;
}

static void toy_init(toy *t) {
  memset(t, 0, sizeof *t);
  t->v = calloc(TOY_KEYS, sizeof *t->v);
  assert_non_null(t->v);
}

static uint8_t pattern(const char *key, uint64_t version, size_t i) {
  return (uint8_t)(key[0] + key[strlen(key) - 1] * 7 + version * 13 + i);
}

static void *toy_begin(void *ud, int initiator, wr_tstamp now) {
  toy *t = ud;
  (void)now;
  if (t->begin_null) return NULL;
  toy_ctx *c = calloc(1, sizeof *c);
  if (!c) return NULL;
  c->t = t;
  c->initiator = initiator;
  t->begins++;
  return c;
}

/* (key, version) */
static size_t put_kv(uint8_t *dst, const toy_ent *e) {
  size_t n = strlen(e->key);
  dst[0] = (uint8_t)n;
  memcpy(dst + 1, e->key, n);
  wr_put_u32(dst + 1 + n, (uint32_t)(e->version >> 32));
  wr_put_u32(dst + 5 + n, (uint32_t)e->version);
  return n + 9;
}

static int get_kv(wr_rbuf *b, toy_ent *e) {
  uint8_t n;
  if (wr_rbuf_u8(b, &n) != 0 || !n || n >= sizeof e->key ||
      wr_rbuf_copy(b, e->key, n) != 0 || wr_rbuf_u64(b, &e->version) != 0)
    return -1;
  e->key[n] = 0;
  return 0;
}

static wr_ssize toy_digest_next(void *ctx, uint8_t *dst, size_t cap) {
  toy_ctx *c = ctx;
  assert_int_equal(cap, WR_SWIM_APP_RECORD_MAX);
  if (++c->t->digest_next_calls == c->t->fail_digest_next_at) return -1;
  if (c->dig_pos == c->t->n) return 0;
  return (wr_ssize)put_kv(dst, &c->t->v[c->dig_pos++]);
}

static int toy_digest_in(void *ctx, const uint8_t *rec, size_t len) {
  toy_ctx *c = ctx;
  wr_rbuf b;
  toy_ent e;
  /* The contract: the peer's whole digest before our first delta. */
  assert_false(c->delta_started);
  wr_rbuf_init(&b, rec, len);
  if (get_kv(&b, &e) != 0 || wr_rbuf_left(&b)) return -1;
  if (c->npeer == c->cap) {
    c->cap = c->cap ? c->cap * 2 : 64;
    c->peer = realloc(c->peer, c->cap * sizeof *c->peer);
    assert_non_null(c->peer);
  }
  c->peer[c->npeer++] = e;
  c->t->digest_in++;
  return 0;
}

/* What the peer's digest lacks or names older, with its payload. */
static wr_ssize toy_delta_next(void *ctx, uint8_t *dst, size_t cap) {
  toy_ctx *c = ctx;
  toy *t = c->t;
  c->delta_started = 1;
  if (++t->delta_next_calls == t->fail_delta_next_at) return -1;
  while (c->delta_pos < t->n) {
    const toy_ent *e = &t->v[c->delta_pos++];
    const toy_ent *p = toy_find(c->peer, c->npeer, e->key);
    if (p && p->version >= e->version) continue;
    size_t n = put_kv(dst, e);
    assert_true(n + 2 + t->payload <= cap);
    wr_put_u16(dst + n, (uint16_t)t->payload);
    for (size_t i = 0; i < t->payload; i++)
      dst[n + 2 + i] = pattern(e->key, e->version, i);
    t->delta_out++;
    t->delta_out_bytes += n + 2 + t->payload;
    return (wr_ssize)(n + 2 + t->payload);
  }
  return 0;
}

static int toy_delta_in(void *ctx, const uint8_t *rec, size_t len) {
  toy_ctx *c = ctx;
  wr_rbuf b;
  toy_ent e;
  uint16_t plen;
  const uint8_t *p;
  wr_rbuf_init(&b, rec, len);
  if (get_kv(&b, &e) != 0 || wr_rbuf_u16(&b, &plen) != 0 ||
      wr_rbuf_view(&b, plen, &p) != 0 || wr_rbuf_left(&b))
    return -1;
  if (c->t->reject && strcmp(c->t->reject, e.key) == 0) return -1;
  for (size_t i = 0; i < plen; i++)
    if (p[i] != pattern(e.key, e.version, i)) return -1;
  /* Newer wins: a peer can only add, never roll back. */
  if (e.version > toy_get(c->t, e.key)) toy_set(c->t, e.key, e.version);
  c->t->delta_in++;
  c->t->delta_in_bytes += len;
  return 0;
}

static void toy_end(void *ctx, int ok) {
  toy_ctx *c = ctx;
  c->t->ends++;
  if (ok) c->t->ends_ok++;
  free(c->peer);
  free(c);
}

static const wr_swim_app_sync toy_hooks = {
    .begin = toy_begin,
    .digest_next = toy_digest_next,
    .digest_in = toy_digest_in,
    .delta_next = toy_delta_next,
    .delta_in = toy_delta_in,
    .end = toy_end,
};

/* ---- two cores ---------------------------------------------------------- */

static wr_pcg32 rng[2];
static wr_swim *sw[2];
static toy app[2];
static wr_tstamp now = 1000;

static void core_config(int i, wr_swim_config *pc) {
  wr_swim_config c;
  wr_swim_config_default(&c);
  snprintf(c.id, sizeof c.id, "n%d", i);
  c.gossip.family = 4;
  c.gossip.ip[0] = 10;
  c.gossip.ip[3] = (uint8_t)(i + 1);
  c.gossip.port = 7946;
  c.rand = wr_pcg32_fill;
  c.rand_user_data = &rng[i];
  wr_pcg32_seed(&rng[i], 11 + (uint64_t)i, 3);
  *pc = c;
}

static void make_core(int i, int with_app, const wr_mem *mem) {
  wr_swim_config c;
  core_config(i, &c);
  wr_swim_callbacks cb = {0};
  if (with_app) {
    cb.app_sync = &toy_hooks;
    cb.app_sync_user_data = &app[i];
  }
  assert_int_equal(wr_swim_new(&sw[i], &c, &cb, NULL, mem, NULL, now), 0);
}

static int setup(void **state) {
  (void)state;
  for (int i = 0; i < 2; i++) {
    toy_init(&app[i]);
    make_core(i, 1, NULL);
  }
  return 0;
}

static int teardown(void **state) {
  (void)state;
  for (int i = 0; i < 2; i++) {
    wr_swim_del(sw[i]);
    sw[i] = NULL;
    free(app[i].v);
  }
  return 0;
}

/* What a pump saw. */
typedef struct pumped {
  size_t max_pending;  /* largest wr_swim_sync_send view */
  uint64_t max_gap;    /* delta bytes pulled but not yet applied */
  uint64_t bytes[2];
} pumped;

/* Moves bytes both ways, at most |chunk| at a time, until both sessions
 * are done (0), one fails (-1) or nothing moves (-2). */
static int pump(wr_swim_sync *s0, wr_swim_sync *s1, size_t chunk,
                pumped *pm) {
  wr_swim_sync *ss[2] = {s0, s1};
  memset(pm, 0, sizeof *pm);
  for (long round = 0; round < 10000000; round++) {
    int moved = 0;
    for (int side = 0; side < 2; side++) {
      const uint8_t *d;
      wr_ssize n = wr_swim_sync_send(ss[side], &d);
      if (n < 0) return -1;
      if (n == 0) continue;
      if ((size_t)n > pm->max_pending) pm->max_pending = (size_t)n;
      size_t take = (size_t)n < chunk ? (size_t)n : chunk;
      int rv = wr_swim_sync_recv(ss[!side], d, take, now);
      wr_swim_sync_consumed(ss[side], take);
      pm->bytes[side] += take;
      if (rv != 0) return -1;
      moved = 1;
      for (int a = 0; a < 2; a++) {
        uint64_t gap = app[a].delta_out_bytes - app[!a].delta_in_bytes;
        if (gap > pm->max_gap) pm->max_gap = gap;
      }
    }
    if (wr_swim_sync_done(s0) && wr_swim_sync_done(s1)) return 0;
    if (!moved) return -2;
  }
  return -2;
}

/* One whole sync, |i| initiating with |j|. */
static int sync_once(int i, int j, size_t chunk, pumped *pm) {
  wr_swim_sync *a, *b;
  pumped tmp;
  assert_int_equal(wr_swim_sync_new(sw[i], &a, 1, now), 0);
  assert_int_equal(wr_swim_sync_new(sw[j], &b, 0, now), 0);
  int rv = pump(a, b, chunk, pm ? pm : &tmp);
  wr_swim_sync_del(a);
  wr_swim_sync_del(b);
  return rv;
}

static void stats(int i, wr_swim_stats *st) { wr_swim_get_stats(sw[i], st); }

/* ---- tests -------------------------------------------------------------- */

/* Both directions get exactly what they lack: a record at the same
 * version never crosses, an older one is replaced, and a second sync
 * moves digests only. */
static void test_app_exchange_both_ways(void **state) {
  (void)state;
  toy_set(&app[0], "a", 1);
  toy_set(&app[0], "b", 5);
  toy_set(&app[0], "c", 2);
  toy_set(&app[1], "b", 3);
  toy_set(&app[1], "c", 2);
  toy_set(&app[1], "d", 7);
  pumped pm;
  assert_int_equal(sync_once(0, 1, 1000, &pm), 0);
  for (int i = 0; i < 2; i++) {
    assert_int_equal(app[i].n, 4);
    assert_int_equal(toy_get(&app[i], "a"), 1);
    assert_int_equal(toy_get(&app[i], "b"), 5);
    assert_int_equal(toy_get(&app[i], "c"), 2);
    assert_int_equal(toy_get(&app[i], "d"), 7);
    assert_int_equal(app[i].digest_in, 3); /* each saw the other's 3 */
    assert_int_equal(app[i].begins, 1);
    assert_int_equal(app[i].ends, 1);
    assert_int_equal(app[i].ends_ok, 1);
  }
  /* n0 sent a and b (n1 lacks a, holds b older), n1 sent d only. */
  assert_int_equal(app[0].delta_out, 2);
  assert_int_equal(app[1].delta_in, 2);
  assert_int_equal(app[1].delta_out, 1);
  assert_int_equal(app[0].delta_in, 1);
  /* The other way round, nothing is missing. */
  assert_int_equal(sync_once(1, 0, 7, &pm), 0);
  assert_int_equal(app[0].delta_out + app[1].delta_out, 3);
  for (int i = 0; i < 2; i++) {
    assert_int_equal(app[i].ends_ok, 2);
    wr_swim_stats st;
    stats(i, &st);
    assert_int_equal(st.syncs_ok, 2);
    assert_int_equal(st.syncs_failed, 0);
  }
}

/* A delta of several MB streams through: the session never holds more
 * than about three frames of output, and no more than that is pulled
 * from the application ahead of what the peer applied. */
static void test_app_large_delta_streams(void **state) {
  (void)state;
  app[1].payload = 2000;
  for (int k = 0; k < 3000; k++) {
    char key[24];
    snprintf(key, sizeof key, "route/%d", k);
    toy_set(&app[1], key, (uint64_t)k + 1);
  }
  pumped pm;
  /* Write 16 KiB at a time, as a socket would take it. */
  assert_int_equal(sync_once(0, 1, 16384, &pm), 0);
  assert_int_equal(app[0].n, 3000);
  assert_int_equal(app[0].delta_in, 3000);
  assert_true(app[1].delta_out_bytes > 6000000);
  assert_int_equal(app[0].delta_in_bytes, app[1].delta_out_bytes);
  print_message("delta %llu bytes, max pending %zu, max gap %llu\n",
                (unsigned long long)app[1].delta_out_bytes, pm.max_pending,
                (unsigned long long)pm.max_gap);
  assert_true(pm.max_pending <= 3 * (4 + WR_SWIM_SYNC_FRAME_MAX));
  /* In the output buffer (3 frames) plus a frame the peer has only in
   * part, and the chunk in flight. */
  assert_true(pm.max_gap <= 4 * (uint64_t)WR_SWIM_SYNC_FRAME_MAX + 16384);
  for (int i = 0; i < 2; i++) assert_int_equal(app[i].ends_ok, 1);
  /* Frames stay full: the ~6 MB delta took ~6 MB on the wire. */
  assert_true(pm.bytes[1] < app[1].delta_out_bytes + app[1].delta_out_bytes / 10);
}

/* A delta record the application refuses fails the session on that side
 * and is counted; the peer sees the connection end early.  Either way
 * end is called once, with ok = 0. */
static void test_app_malformed_record_fails(void **state) {
  (void)state;
  toy_set(&app[1], "good", 1);
  toy_set(&app[1], "evil", 1);
  app[0].reject = "evil";
  assert_int_equal(sync_once(0, 1, 4096, NULL), -1);
  wr_swim_stats st;
  stats(0, &st);
  assert_int_equal(st.syncs_failed, 1);
  assert_int_equal(st.syncs_app_rejected, 1);
  assert_int_equal(st.syncs_ok, 0);
  stats(1, &st);
  assert_int_equal(st.syncs_failed, 1); /* freed before it was done */
  assert_int_equal(st.syncs_app_rejected, 0);
  for (int i = 0; i < 2; i++) {
    assert_int_equal(app[i].begins, 1);
    assert_int_equal(app[i].ends, 1);
    assert_int_equal(app[i].ends_ok, 0);
  }
  /* What came before the bad record stays applied. */
  assert_int_equal(toy_get(&app[0], "good"), 1);
  assert_int_equal(toy_get(&app[0], "evil"), 0);
}

/* Builds one frame (identity seal). */
static size_t frame(uint8_t *dst, uint8_t version, uint8_t type, int last,
                    uint32_t count, const uint8_t *body, size_t len) {
  uint8_t *p = dst + 4;
  p[0] = version;
  p[1] = type;
  p[2] = (uint8_t)last;
  wr_put_u32(p + 3, count);
  memcpy(p + 7, body, len);
  wr_put_u32(dst, (uint32_t)(7 + len));
  return 11 + len;
}

/* Broken app frames fail the responder without reaching the application
 * (an empty record, one over WR_SWIM_APP_RECORD_MAX, a short one, a
 * count beyond the records, a bucket summary after the app records); a
 * stream of the previous version (3: a node not yet upgraded) fails it
 * cleanly and is counted apart.  end is called once each time. */
static void test_app_bad_frames(void **state) {
  (void)state;
  static uint8_t in[2 * WR_SWIM_SYNC_FRAME_MAX];
  static uint8_t body[WR_SWIM_SYNC_FRAME_MAX];
  uint8_t digest[16] = {2, 'n', '1', 0, 0, 0, 0, 0};
  toy_ent x = {"x", 9};
  uint8_t rec[16];
  size_t rl = put_kv(rec, &x);
  for (int t = 0; t < 6; t++) {
    size_t off = 0, bl = 0;
    uint8_t ver = 4, type = 6; /* ADIGEST */
    uint32_t count = 1;
    int last = 1;
    switch (t) {
    case 0: bl = 2; wr_put_u16(body, 0); break;
    case 1:
      wr_put_u16(body, WR_SWIM_APP_RECORD_MAX + 1);
      bl = 2 + WR_SWIM_APP_RECORD_MAX + 1;
      memset(body + 2, 'x', bl - 2);
      break;
    case 2: wr_put_u16(body, 10); memset(body + 2, 'x', 5); bl = 7; break;
    case 3:
      wr_put_u16(body, (uint16_t)rl);
      memcpy(body + 2, rec, rl);
      bl = 2 + rl;
      count = 2;
      break;
    case 4:
      /* ADIGEST (valid), then a SUMMARY frame in the same message. */
      wr_put_u16(body, (uint16_t)rl);
      memcpy(body + 2, rec, rl);
      off += frame(in, 4, 6, 0, 1, body, 2 + rl);
      type = 1;
      memset(body, 0, 8);
      bl = 8;
      break;
    default: ver = 3; type = 1; memcpy(body, digest, 8); bl = 8; break;
    }
    off += frame(in + off, ver, type, last, count, body, bl);
    wr_swim_sync *s;
    unsigned din = app[0].digest_in;
    assert_int_equal(wr_swim_sync_new(sw[0], &s, 0, now), 0);
    int rv = wr_swim_sync_recv(s, in, off, now);
    assert_int_equal(rv, t == 5 ? WR_ERR_VERSION : WR_ERR_PROTO);
    /* Nothing malformed reached the application (the valid records
     * before the fault in cases 3 and 4 did). */
    assert_int_equal(app[0].digest_in, din + (t == 3 || t == 4));
    assert_int_equal(app[0].ends, (unsigned)t + 1);
    wr_swim_sync_del(s);
    assert_int_equal(app[0].ends, (unsigned)t + 1);
  }
  wr_swim_stats st;
  stats(0, &st);
  assert_int_equal(st.syncs_failed, 6);
  assert_int_equal(st.syncs_version, 1);
  assert_int_equal(st.syncs_app_rejected, 0);
  assert_int_equal(app[0].ends_ok, 0);
  assert_int_equal(app[0].begins, 6);
}

/* end is called exactly once after every begin: success (above), the
 * peer failing mid-stream, the session freed mid-stream, our own
 * digest_next or delta_next failing; and never without a begin (begin
 * returning NULL fails wr_swim_sync_new, counted). */
static void test_app_end_once_every_path(void **state) {
  (void)state;
  app[1].payload = 3000;
  for (int k = 0; k < 200; k++) {
    char key[24];
    snprintf(key, sizeof key, "k%d", k);
    toy_set(&app[1], key, 1);
  }
  wr_swim_sync *a, *b;
  pumped pm;
  /* The peer fails mid-stream: garbage after n1 started its delta. */
  assert_int_equal(wr_swim_sync_new(sw[0], &a, 1, now), 0);
  assert_int_equal(wr_swim_sync_new(sw[1], &b, 0, now), 0);
  const uint8_t *d;
  wr_ssize n = wr_swim_sync_send(a, &d);
  assert_true(n > 0);
  assert_int_equal(wr_swim_sync_recv(b, d, (size_t)n, now), 0);
  wr_swim_sync_consumed(a, (size_t)n);
  n = wr_swim_sync_send(b, &d);
  assert_true(n > 0);
  assert_int_equal(wr_swim_sync_recv(a, d, (size_t)n / 2, now), 0);
  /* A whole frame of an unknown type (identity seal). */
  static const uint8_t junk[11] = {0, 0, 0, 7, 4, 9, 1, 0, 0, 0, 0};
  assert_int_equal(wr_swim_sync_recv(b, junk, sizeof junk, now), WR_ERR_PROTO);
  assert_int_equal(app[1].ends, 1); /* at the failure, not later */
  assert_int_equal(app[0].ends, 0);
  wr_swim_sync_del(b);
  wr_swim_sync_del(a); /* freed mid-stream */
  for (int i = 0; i < 2; i++) {
    assert_int_equal(app[i].ends, 1);
    assert_int_equal(app[i].ends_ok, 0);
  }
  /* Our digest_next fails: at once for an initiator. */
  app[0].fail_digest_next_at = app[0].digest_next_calls + 1;
  assert_int_equal(wr_swim_sync_new(sw[0], &a, 1, now), WR_ERR_CALLBACK);
  assert_int_equal(app[0].begins, 2);
  assert_int_equal(app[0].ends, 2);
  /* The responder's delta_next fails after a few frames. */
  app[1].fail_delta_next_at = app[1].delta_next_calls + 100;
  assert_int_equal(sync_once(0, 1, 4096, &pm), -1);
  assert_int_equal(app[0].ends, 3);
  assert_int_equal(app[1].ends, 2);
  assert_true(app[0].delta_in > 0 && app[0].delta_in < 100);
  /* begin returns NULL: no session, no end. */
  app[1].begin_null = 1;
  assert_int_equal(wr_swim_sync_new(sw[1], &b, 0, now), WR_ERR_NOMEM);
  assert_null(b);
  assert_int_equal(app[1].begins, 2);
  assert_int_equal(app[1].ends, 2);
  app[1].begin_null = 0;
  /* And a clean run afterwards. */
  assert_int_equal(sync_once(0, 1, 4096, &pm), 0);
  for (int i = 0; i < 2; i++) {
    assert_int_equal(app[i].ends, app[i].begins);
    assert_int_equal(app[i].ends_ok, 1);
  }
  assert_int_equal(app[0].n, 200);
  wr_swim_stats st;
  stats(1, &st);
  assert_int_equal(st.syncs_failed, 3);
  assert_int_equal(st.syncs_ok, 1);
}

/* A node without app hooks syncs with one that has them: the records are
 * skipped there, and the node with hooks, seeing no digest, sends all. */
static void test_app_peer_without_hooks(void **state) {
  (void)state;
  wr_swim_del(sw[1]);
  make_core(1, 0, NULL);
  toy_set(&app[0], "x", 4);
  for (int dir = 0; dir < 2; dir++)
    assert_int_equal(sync_once(dir, !dir, 333, NULL), 0);
  assert_int_equal(app[0].digest_in, 0);
  assert_int_equal(app[0].delta_out, 2);
  assert_int_equal(app[0].ends_ok, 2);
  assert_int_equal(app[1].begins, 0);
  /* Every hook is required. */
  wr_swim_app_sync half = toy_hooks;
  half.end = NULL;
  wr_swim_config c;
  core_config(0, &c);
  wr_swim_callbacks cb = {.app_sync = &half};
  wr_swim *x;
  assert_int_equal(wr_swim_new(&x, &c, &cb, NULL, NULL, NULL, now),
                   WR_ERR_INVAL);
  cb.app_sync = &toy_hooks;
  assert_int_equal(wr_swim_new(&x, &c, &cb, NULL, NULL, NULL, now), 0);
  wr_swim_del(x);
}

/* Every allocation of both sessions fails in turn, on each side: each
 * run completes or fails cleanly (never wedges), end is called once per
 * begin, and nothing leaks. */
static void test_app_failmalloc(void **state) {
  (void)state;
  static failmalloc fm[2];
  for (int i = 0; i < 2; i++) {
    wr_swim_del(sw[i]);
    failmalloc_init(&fm[i], 0);
    make_core(i, 1, &fm[i].mem);
  }
  /* A first sync teaches each core the other (its table allocations are
   * state, not leaks); then the application state to exchange. */
  assert_int_equal(sync_once(0, 1, 8192, NULL), 0);
  app[0].payload = app[1].payload = 100;
  for (int k = 0; k < 300; k++) {
    char key[24];
    snprintf(key, sizeof key, "r%d", k);
    toy_set(&app[k % 2], key, (uint64_t)k + 1);
  }
  long live[2] = {fm[0].live, fm[1].live};
  int exhausted[2] = {0, 0}, failed = 0;
  for (long k = 1; !(exhausted[0] && exhausted[1]); k++) {
    int side = (int)(k % 2);
    if (exhausted[side]) continue;
    long base = fm[side].count;
    fm[side].fail_at = base + (k + 1) / 2;
    wr_swim_sync *a = NULL, *b = NULL;
    int ra = wr_swim_sync_new(sw[0], &a, 1, now);
    int rb = wr_swim_sync_new(sw[1], &b, 0, now);
    pumped pm;
    int rv = -1;
    if (ra == 0 && rb == 0) rv = pump(a, b, 8192, &pm);
    if (ra) assert_int_equal(ra, WR_ERR_NOMEM);
    if (rb) assert_int_equal(rb, WR_ERR_NOMEM);
    assert_int_not_equal(rv, -2); /* never wedged */
    wr_swim_sync_del(a);
    wr_swim_sync_del(b);
    if (rv != 0) failed++;
    if (fm[side].count < fm[side].fail_at) exhausted[side] = 1;
    fm[side].fail_at = 0;
    for (int i = 0; i < 2; i++) {
      assert_int_equal(app[i].ends, app[i].begins);
      assert_int_equal(fm[i].live, live[i]);
    }
    /* Restore the split, so every run has the same work to do. */
    for (int i = 0; i < 2; i++) {
      app[i].n = 0;
      for (int j = 0; j < 300; j++) {
        char key[24];
        snprintf(key, sizeof key, "r%d", j);
        if (j % 2 == i) toy_set(&app[i], key, (uint64_t)j + 1);
      }
    }
  }
  print_message("%d runs failed an allocation\n", failed);
  assert_true(failed > 10);
  /* Allocations are back: a whole exchange. */
  assert_int_equal(sync_once(0, 1, 8192, NULL), 0);
  for (int i = 0; i < 2; i++) assert_int_equal(app[i].n, 300);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_app_exchange_both_ways, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_app_large_delta_streams, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_app_malformed_record_fails, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_app_bad_frames, setup, teardown),
      cmocka_unit_test_setup_teardown(test_app_end_once_every_path, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_app_peer_without_hooks, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_app_failmalloc, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
