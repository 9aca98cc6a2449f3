/*
 * Writes the seed corpora of fuzz/fuzz_routes_entry.c and
 * fuzz/fuzz_routes_sync.c from real encodings: entries written by real
 * tables (binds, moves, releases, epochs) and the records of real sync
 * sessions (digests, deltas, full logs below a collected tombstone, a
 * collected mark of the fuzz table's own epoch).  Run by hand:
 *   build/tests/routes/gen_routes_corpus fuzz/corpus
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "warren/pcg.h"
#include "warren/routes.h"

typedef struct script {
  uint8_t b[65536];
  size_t n;
} script;

static void rec(script *s, uint8_t op, const uint8_t *p, size_t len) {
  if (s->n + 3 + len > sizeof s->b) return;
  s->b[s->n++] = op;
  s->b[s->n++] = (uint8_t)(len >> 8);
  s->b[s->n++] = (uint8_t)len;
  memcpy(s->b + s->n, p, len);
  s->n += len;
}

static void save(const char *dir, const char *target, const char *name,
                 const script *s) {
  char path[1024];
  FILE *f;
  snprintf(path, sizeof path, "%s/%s/%s", dir, target, name);
  f = fopen(path, "wb");
  if (!f || fwrite(s->b, 1, s->n, f) != s->n) {
    perror(path);
    exit(1);
  }
  fclose(f);
}

static wr_routes *table(const char *self, uint64_t epoch, wr_pcg32 *g) {
  wr_routes_config cfg;
  wr_routes *t;
  wr_routes_config_default(&cfg);
  snprintf(cfg.self, sizeof cfg.self, "%s", self);
  cfg.epoch = epoch;
  cfg.released_grace_ms = 5000;
  cfg.dead_grace_ms = 5000;
  cfg.rand = wr_pcg32_fill;
  cfg.rand_user_data = g;
  if (wr_routes_new(&t, &cfg, NULL, NULL, NULL, 0) != 0) exit(1);
  return t;
}

/* All records of a session from |from| as an empty peer would see them. */
static void session(wr_routes *from, wr_routes *peer, script *s, int digest,
                    wr_tstamp now) {
  wr_routes_sync *a, *b;
  uint8_t buf[WR_ROUTE_ENCODED_MAX];
  wr_ssize n;
  wr_routes_sync_new(from, &a, now);
  wr_routes_sync_new(peer, &b, now);
  while ((n = wr_routes_sync_digest_next(b, buf, sizeof buf)) > 0)
    wr_routes_sync_digest_in(a, buf, (size_t)n);
  if (digest)
    while ((n = wr_routes_sync_digest_next(a, buf, sizeof buf)) > 0)
      rec(s, 0, buf, (size_t)n);
  while ((n = wr_routes_sync_delta_next(a, buf, sizeof buf)) > 0) {
    rec(s, 1, buf, (size_t)n);
    wr_routes_sync_delta_in(b, buf, (size_t)n, now);
  }
  wr_routes_sync_del(a);
  wr_routes_sync_del(b);
}

int main(int argc, char **argv) {
  const char *dir = argc > 1 ? argv[1] : "fuzz/corpus";
  wr_pcg32 g;
  uint8_t enc[WR_ROUTE_ENCODED_MAX], sess[WR_ROUTE_SESSION_LEN] = {3};
  size_t len;
  script s;
  wr_routes *a, *b, *self_view, *lag;
  uint8_t tick[2] = {0, 0};
  wr_pcg32_seed(&g, 9, 9);

  /* ---- routes_entry: gossip from node-a / node-b ---- */
  a = table("node-a", 100, &g);
  b = table("node-b", 200, &g);
  memset(&s, 0, sizeof s);
  wr_routes_bind(a, "app", "acct-one", sess, 0, enc, &len, 1);
  rec(&s, 0, enc, len);
  save(dir, "routes_entry", "bind", &s);
  sess[0] = 4;
  wr_routes_bind(b, "app", "acct-one", sess, WR_ROUTE_OPT_BALANCE, enc, &len, 2);
  rec(&s, 1, enc, len);
  save(dir, "routes_entry", "bind-move", &s);
  wr_routes_release(a, "app", enc, &len, 3);
  rec(&s, 0, enc, len);
  rec(&s, 0, enc, len);
  save(dir, "routes_entry", "release-dup", &s);
  memset(&s, 0, sizeof s);
  wr_routes_bind(b, "shared", "acct-two", sess, 0, enc, &len, 4);
  rec(&s, 0, enc, len);
  { uint8_t dead[2] = {1, 1}; rec(&s, 2, dead, 2); }
  rec(&s, 3, tick, 6);
  { uint8_t live[2] = {1, 0}; rec(&s, 2, live, 2); }
  rec(&s, 0, enc, len);
  save(dir, "routes_entry", "dead-tick-live", &s);
  memset(&s, 0, sizeof s);
  {
    /* The same owner at a newer epoch, then an entry of the old one. */
    wr_route_entry e;
    wr_routes_bind(a, "web", "acct-one", sess, 0, enc, &len, 5);
    wr_route_entry_decode(enc, len, &e);
    e.epoch = 500;
    wr_ssize n = wr_route_entry_encode(&e, enc, sizeof enc);
    rec(&s, 0, enc, (size_t)n);
    e.epoch = 100;
    e.seq = 9;
    n = wr_route_entry_encode(&e, enc, sizeof enc);
    rec(&s, 0, enc, (size_t)n);
    strcpy(e.owner, "node-self");
    n = wr_route_entry_encode(&e, enc, sizeof enc);
    rec(&s, 1, enc, (size_t)n);
    save(dir, "routes_entry", "epochs", &s);
  }

  /* ---- routes_sync ---- */
  memset(&s, 0, sizeof s);
  session(a, b, &s, 1, 10);
  rec(&s, 2, enc, 0);
  save(dir, "routes_sync", "session-a", &s);
  memset(&s, 0, sizeof s);
  session(b, a, &s, 1, 10);
  save(dir, "routes_sync", "session-b", &s);
  /* A log with a collected tombstone, sent to a lagging peer: full. */
  lag = table("node-lag", 700, &g);
  session(a, lag, &s, 0, 11);
  wr_routes_bind(a, "late", "acct-one", sess, 0, enc, &len, 12);
  wr_routes_release(a, "late", enc, &len, 12);
  wr_routes_tick(a, 20000);
  wr_routes_tick(a, 40000);
  memset(&s, 0, sizeof s);
  session(a, lag, &s, 1, 40001);
  save(dir, "routes_sync", "full-log", &s);
  /* A peer that collected our epoch (node-self, 50): republish. */
  self_view = table("node-x", 800, &g);
  {
    wr_routes *me = table("node-self", 50, &g);
    wr_routes_bind(me, "mine", "acct", sess, 0, enc, &len, 1);
    wr_routes_apply(self_view, enc, len, 1);
    wr_routes_owner_state(self_view, "node-self", WR_ROUTE_OWNER_DEAD, 2);
    wr_routes_tick(self_view, 30000);
    memset(&s, 0, sizeof s);
    session(self_view, me, &s, 1, 30001);
    rec(&s, 3, tick, 3);
    rec(&s, 2, enc, 0);
    save(dir, "routes_sync", "collected-self", &s);
    wr_routes_del(me);
  }
  wr_routes_del(a);
  wr_routes_del(b);
  wr_routes_del(lag);
  wr_routes_del(self_view);
  return 0;
}
