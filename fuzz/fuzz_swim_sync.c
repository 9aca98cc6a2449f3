/* libFuzzer target: one anti-entropy session (src/swim/sync.c, stream
 * v4) with the application's app-sync hooks behind it, fed the peer's
 * stream.  Identity seal, so the fuzzer reaches the frame grammar: the
 * bucket summary, the differing buckets, member digests and states, app
 * record frames, their order within a message, and the two sides' state
 * machines.  The input is
 *
 *   u8 flags     bit 0: initiator (else responder)
 *                bit 1: 200 members instead of 4 (16 buckets, not 1)
 *                bit 2: begin returns NULL
 *   u8 fail_at   the n-th call of digest_next/digest_in/delta_next/
 *                delta_in fails (0: none), so bytes also pick callback
 *                failures
 *   u8 drain     how the session's output is written: 0 all at once,
 *                else in pieces of 97 times this many bytes
 *   then chunks: u16 len | len bytes of the peer's stream.
 *
 * The toy application keeps key -> version (newer wins); both its digest
 * and delta records are u8 len | key | u64 version, and a delta may also
 * carry padding after that, up to WR_SWIM_APP_RECORD_MAX.  Checked: no
 * crash, leak or hang; every record handed in is 1..WR_SWIM_APP_RECORD_MAX
 * bytes; digest_in never comes after the first delta_next; end is called
 * exactly once iff begin returned a context, and is the last hook; the
 * output waiting to be written stays within a few frames beyond what the
 * member part needs; the bucket digest stays equal to a recomputed one.
 * Seeds: tests/swim/gen_sync_corpus.py. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "swim_int.h"
#include "warren/pcg.h"
#include "warren/swim.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define KEYS 16

static struct {
  char key[32];
  uint64_t version;
} store[KEYS];
static size_t nstore;

static struct {
  int begins, ends, live, fail_at, calls, delta_started;
  size_t dig_pos, delta_pos;
} app;

static int should_fail(void) {
  return app.fail_at && ++app.calls == app.fail_at;
}

static void store_set(const char *key, uint64_t version) {
  size_t k = 0;
  while (k < nstore && strcmp(store[k].key, key) != 0) k++;
  if (k < nstore && store[k].version >= version) return;
  if (k == nstore) {
    if (nstore == KEYS) return;
    nstore++;
    snprintf(store[k].key, sizeof store[k].key, "%s", key);
  }
  store[k].version = version;
}

static void *on_begin(void *ud, int initiator, wr_tstamp now) {
  (void)initiator, (void)now;
  if (*(int *)ud) return NULL;
  if (app.live) abort(); /* one session at a time here */
  app.begins++;
  app.live = 1;
  return &app;
}

static size_t put_rec(uint8_t *dst, size_t k) {
  size_t n = strlen(store[k].key);
  dst[0] = (uint8_t)n;
  memcpy(dst + 1, store[k].key, n);
  for (int b = 0; b < 8; b++)
    dst[1 + n + b] = (uint8_t)(store[k].version >> (56 - 8 * b));
  return n + 9;
}

/* 0 and fills key/version, or -1 when malformed. */
static int get_rec(const uint8_t *rec, size_t len, char *key,
                   uint64_t *version, int padded) {
  if (!app.live) abort(); /* a hook after end */
  if (!len || len > WR_SWIM_APP_RECORD_MAX) abort(); /* swim's bound */
  size_t n = rec[0];
  if (!n || n > 31 || len < n + 9 || (!padded && len != n + 9)) return -1;
  memcpy(key, rec + 1, n);
  key[n] = 0;
  *version = 0;
  for (int b = 0; b < 8; b++) *version = *version << 8 | rec[1 + n + b];
  return 0;
}

static wr_ssize on_digest_next(void *ctx, uint8_t *dst, size_t cap) {
  (void)ctx;
  if (!app.live || cap != WR_SWIM_APP_RECORD_MAX) abort();
  if (should_fail()) return -1;
  if (app.dig_pos >= nstore) return 0;
  return (wr_ssize)put_rec(dst, app.dig_pos++);
}

static int on_digest_in(void *ctx, const uint8_t *rec, size_t len) {
  char key[32];
  uint64_t v;
  (void)ctx;
  if (app.delta_started) abort(); /* the whole digest comes first */
  if (get_rec(rec, len, key, &v, 0) != 0 || should_fail()) return -1;
  return 0;
}

static wr_ssize on_delta_next(void *ctx, uint8_t *dst, size_t cap) {
  (void)ctx;
  if (!app.live || cap != WR_SWIM_APP_RECORD_MAX) abort();
  app.delta_started = 1;
  if (should_fail()) return -1;
  if (app.delta_pos >= nstore) return 0;
  /* Large records, so a few fill a frame and the output bound is met. */
  size_t n = put_rec(dst, app.delta_pos++);
  memset(dst + n, 0xd5, cap - n);
  return (wr_ssize)cap;
}

static int on_delta_in(void *ctx, const uint8_t *rec, size_t len) {
  char key[32];
  uint64_t v;
  (void)ctx;
  if (get_rec(rec, len, key, &v, 1) != 0 || should_fail()) return -1;
  store_set(key, v);
  return 0;
}

static void on_end(void *ctx, int ok) {
  (void)ctx, (void)ok;
  if (!app.live) abort(); /* twice */
  app.live = 0;
  app.ends++;
}

static const wr_swim_app_sync hooks = {
    .begin = on_begin,
    .digest_next = on_digest_next,
    .digest_in = on_digest_in,
    .delta_next = on_delta_next,
    .delta_in = on_delta_in,
    .end = on_end,
};

static int on_user(wr_swim *sw, const wr_swim_update *u, void *ud) {
  (void)sw, (void)u, (void)ud;
  return 0;
}

/* Whatever the peer's entries did to the table, its bucket digest is
 * the recomputed one (src/swim/digest.c). */
static void check_digest(wr_swim *sw) {
  static uint64_t a[64], b[64];
  swim_members *t = swim_core_table(sw);
  for (size_t nb = 1; nb <= 64; nb *= 8) {
    memset(a, 0, nb * sizeof *a);
    swim_digest_xor(t, a, nb, 0);
    swim_digest_recompute(t, b, nb);
    if (memcmp(a, b, nb * sizeof *a) != 0) abort();
  }
}

/* Writes out what the session has, in pieces of |piece| (0: whole). */
static void drain(wr_swim_sync *s, size_t piece) {
  for (long guard = 0; guard < 10000000; guard++) {
    const uint8_t *d;
    wr_ssize n = wr_swim_sync_send(s, &d);
    if (n <= 0) return;
    /* Members (at most 200 here) are tiny, so anything beyond the lazy
     * bound plus one frame means records were pulled eagerly. */
    if ((size_t)n > 3 * (4 + WR_SWIM_SYNC_FRAME_MAX)) abort();
    wr_swim_sync_consumed(s, piece && piece < (size_t)n ? piece : (size_t)n);
  }
  abort(); /* output without end */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 3) return 0;
  uint8_t flags = data[0];
  wr_pcg32 rng;
  wr_pcg32_seed(&rng, 1, 2);
  wr_swim_config cfg;
  wr_swim_config_default(&cfg);
  strcpy(cfg.id, "n0");
  cfg.gossip.family = 4;
  cfg.gossip.ip[0] = 127;
  cfg.gossip.ip[3] = 1;
  cfg.gossip.port = 7946;
  cfg.rand = wr_pcg32_fill;
  cfg.rand_user_data = &rng;
  int begin_null = (flags & 4) != 0;
  wr_swim_callbacks cb = {.user_update = on_user,
                          .app_sync = &hooks,
                          .app_sync_user_data = &begin_null};
  memset(&app, 0, sizeof app);
  app.fail_at = data[1];
  /* What we hold: three keys, so our digest and delta are not empty. */
  nstore = 0;
  store_set("a", 5);
  store_set("b", 1);
  store_set("route/c", 9);
  wr_tstamp now = 1000;
  wr_swim *sw;
  if (wr_swim_new(&sw, &cfg, &cb, NULL, NULL, NULL, now) != 0) abort();
  /* n1..n3, or n1..n199: 16 buckets instead of 1 (sync.c: 8 to 16
   * members a bucket), so bucket indexes, folds and digests of some
   * buckets only are reached too. */
  int members = flags & 2 ? 200 : 4;
  for (int i = 1; i < members; i++) {
    char id[16]; /* "n" and an int: room for any, so no truncation warning */
    snprintf(id, sizeof id, "n%d", i);
    wr_addr a = cfg.gossip;
    a.ip[2] = (uint8_t)(i >> 8);
    a.ip[3] = (uint8_t)(i + 1);
    wr_swim_add_member(sw, id, &a, NULL, (uint32_t)i % 3, now);
  }
  wr_swim_sync *s = NULL;
  int rv = wr_swim_sync_new(sw, &s, flags & 1, now);
  if (rv != 0) {
    if (s) abort();
    if (app.begins != app.ends) abort();
    wr_swim_del(sw);
    return 0;
  }
  size_t piece = (size_t)data[2] * 97, off = 3;
  drain(s, piece);
  while (size - off >= 2) {
    size_t len = (size_t)data[off] << 8 | data[off + 1];
    off += 2;
    if (len > size - off) len = size - off;
    rv = wr_swim_sync_recv(s, data + off, len, ++now);
    off += len;
    if (rv != 0) {
      if (app.live) abort(); /* failed: end already called */
      break;
    }
    drain(s, piece);
    if (wr_swim_sync_done(s) && app.live) abort(); /* done: end called */
    check_digest(sw);
  }
  wr_swim_sync_del(s);
  if (app.live || app.begins != app.ends || app.begins > 1) abort();
  wr_swim_del(sw);
  return 0;
}
