/*
 * Unit tests of the ownership table: the resolution rule case by case,
 * owner liveness, GC without resurrection, epochs and republish, the
 * codec, and allocation failures.  Virtual time, fixed seeds.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "failmalloc.h"
#include "routes_net.h"

static uint8_t enc[WR_ROUTE_ENCODED_MAX];
static size_t enclen;

/* Binds and returns the encoded entry in a fresh buffer. */
typedef struct blob {
  uint8_t b[WR_ROUTE_ENCODED_MAX];
  size_t n;
} blob;

static blob bind(tnode *n, const char *name, const char *acct, unsigned sess,
                 uint32_t opt, wr_tstamp now) {
  blob b;
  uint8_t s[WR_ROUTE_SESSION_LEN];
  tn_session(s, sess);
  assert_int_equal(
      wr_routes_bind(n->t, name, acct, s, opt, b.b, &b.n, now), 0);
  return b;
}

static blob release(tnode *n, const char *name, wr_tstamp now) {
  blob b;
  assert_int_equal(wr_routes_release(n->t, name, b.b, &b.n, now), 0);
  return b;
}

static int apply(tnode *n, const blob *b, wr_tstamp now) {
  return wr_routes_apply(n->t, b->b, b->n, now);
}

static size_t resolve1(tnode *n, const char *name, wr_route_entry *out) {
  wr_route_entry tmp[8];
  size_t k = wr_routes_resolve(n->t, name, tmp, 8);
  if (k && out) *out = tmp[0];
  return k;
}

static void assert_same(tnode *a, tnode *b) {
  uint8_t da[16], db[16];
  char *sa = tn_dump_table(a->t), *sb = tn_dump_table(b->t);
  assert_string_equal(sa, sb);
  free(sa);
  free(sb);
  wr_routes_digest(a->t, da);
  wr_routes_digest(b->t, db);
  assert_memory_equal(da, db, 16);
}

/* ---- resolution rule ---------------------------------------------------- */

static void test_established_holder_keeps(void **st) {
  tnode a, b;
  wr_route_entry e;
  uint8_t s[WR_ROUTE_SESSION_LEN];
  (void)st;
  tn_init(&a, "node-a", 100, 0);
  tn_init(&b, "node-b", 200, 0);
  blob x = bind(&a, "app", "alice", 1, 0, 1);
  assert_int_equal(apply(&b, &x, 2), 1);
  assert_int_equal(apply(&b, &x, 2), 0); /* duplicate: old news */
  tn_session(s, 2);
  assert_int_equal(wr_routes_bind(b.t, "app", "bob", s, 0, enc, &enclen, 3),
                   WR_ERR_EXISTS);
  /* A later claim by bob that raced (bound before he heard of alice's)
   * still loses: alice claimed first in Lamport order. */
  tnode c;
  tn_init(&c, "node-c", 300, 0);
  blob y0 = bind(&c, "other", "carol", 3, 0, 1); /* moves c's clock */
  (void)y0;
  assert_int_equal(apply(&c, &x, 1), 1);
  assert_int_equal(resolve1(&c, "app", &e), 1);
  assert_string_equal(e.account, "alice");
  assert_int_equal(resolve1(&b, "app", &e), 1);
  assert_string_equal(e.owner, "node-a");
  wr_routes_del(a.t);
  wr_routes_del(b.t);
  wr_routes_del(c.t);
}

static void test_concurrent_claims_one_account(void **st) {
  tnode a, b;
  wr_route_entry e;
  (void)st;
  tn_init(&a, "node-a", 100, 0);
  tn_init(&b, "node-b", 200, 0);
  blob x = bind(&a, "app", "bob", 1, 0, 1);   /* v1, claimed 1 */
  blob y = bind(&b, "app", "alice", 2, 0, 1); /* v1, claimed 1 */
  assert_int_equal(apply(&a, &y, 2), 1);
  assert_int_equal(apply(&b, &x, 2), 1);
  /* Same claim time: the account breaks the tie, everywhere. */
  assert_int_equal(resolve1(&a, "app", &e), 1);
  assert_string_equal(e.account, "alice");
  assert_same(&a, &b);
  assert_int_equal(a.nlost, 1);
  assert_string_equal(a.lost[0], "app");
  assert_int_equal(a.lost_why[0], WR_ROUTE_LOST_TAKEN);
  assert_int_equal(b.nlost, 0);
  wr_routes_del(a.t);
  wr_routes_del(b.t);
}

static void test_move_keeps_claim(void **st) {
  tnode a, b;
  wr_route_entry e;
  (void)st;
  tn_init(&a, "node-a", 100, 0);
  tn_init(&b, "node-b", 200, 0);
  blob x = bind(&a, "app", "alice", 1, 0, 1);
  apply(&b, &x, 2);
  /* The client reconnects to b with a new session: a move. */
  blob y = bind(&b, "app", "alice", 2, 0, 3);
  wr_route_entry d;
  assert_int_equal(wr_route_entry_decode(y.b, y.n, &d), 0);
  assert_int_equal(d.claimed_at, 1);
  assert_true(d.version > 1);
  assert_int_equal(apply(&a, &y, 4), 1);
  assert_int_equal(resolve1(&a, "app", &e), 1);
  assert_string_equal(e.owner, "node-b");
  assert_int_equal(a.nlost, 1);
  assert_int_equal(a.lost_why[0], WR_ROUTE_LOST_MOVED);
  /* Meanwhile bob cannot take it: alice's claim time is kept. */
  tnode c;
  tn_init(&c, "node-c", 300, 0);
  apply(&c, &x, 1);
  apply(&c, &y, 1);
  uint8_t s[WR_ROUTE_SESSION_LEN];
  tn_session(s, 9);
  assert_int_equal(wr_routes_bind(c.t, "app", "bob", s, 0, enc, &enclen, 5),
                   WR_ERR_EXISTS);
  assert_same(&a, &b);
  assert_same(&a, &c);
  wr_routes_del(a.t);
  wr_routes_del(b.t);
  wr_routes_del(c.t);
}

static void test_redundant_links_and_balance(void **st) {
  tnode a, b, c;
  wr_route_entry out[4];
  (void)st;
  tn_init(&a, "node-a", 100, 0);
  tn_init(&b, "node-b", 200, 0);
  tn_init(&c, "node-c", 300, 0);
  /* One session linked to two nodes: both serve. */
  blob x = bind(&a, "app", "alice", 7, 0, 1);
  apply(&b, &x, 1);
  blob y = bind(&b, "app", "alice", 7, 0, 2);
  apply(&a, &y, 2);
  assert_int_equal(wr_routes_resolve(a.t, "app", out, 4), 2);
  assert_string_equal(out[0].owner, "node-a"); /* ours first */
  assert_int_equal(wr_routes_resolve(b.t, "app", out, 4), 2);
  assert_string_equal(out[0].owner, "node-b");
  /* A newer session at c without balance: only it serves. */
  apply(&c, &x, 3);
  apply(&c, &y, 3);
  blob z = bind(&c, "app", "alice", 8, 0, 3);
  apply(&a, &z, 4);
  apply(&b, &z, 4);
  assert_int_equal(wr_routes_resolve(a.t, "app", out, 4), 1);
  assert_string_equal(out[0].owner, "node-c");
  assert_int_equal(a.nlost, 1);
  assert_int_equal(b.nlost, 1);
  assert_same(&a, &c);

  /* Balancing: every balancing session of the account serves. */
  tnode d, e2;
  tn_init(&d, "node-d", 400, 0);
  tn_init(&e2, "node-e", 500, 0);
  blob p = bind(&d, "bal", "alice", 1, WR_ROUTE_OPT_BALANCE, 1);
  apply(&e2, &p, 1);
  blob q = bind(&e2, "bal", "alice", 2, WR_ROUTE_OPT_BALANCE, 2);
  apply(&d, &q, 2);
  assert_int_equal(wr_routes_resolve(d.t, "bal", out, 4), 2);
  assert_int_equal(d.nlost, 0);
  /* A newer session without the option takes it all. */
  blob r = bind(&e2, "bal", "alice", 3, 0, 3);
  apply(&d, &r, 3);
  assert_int_equal(wr_routes_resolve(d.t, "bal", out, 4), 1);
  assert_int_equal(d.nlost, 1);
  assert_same(&d, &e2);
  wr_routes_del(a.t);
  wr_routes_del(b.t);
  wr_routes_del(c.t);
  wr_routes_del(d.t);
  wr_routes_del(e2.t);
}

static void test_released(void **st) {
  tnode a, b;
  (void)st;
  tn_init(&a, "node-a", 100, 0);
  tn_init(&b, "node-b", 200, 0);
  blob x = bind(&a, "app", "alice", 1, 0, 1);
  apply(&b, &x, 1);
  assert_int_equal(wr_routes_count(b.t), 1);
  blob y = release(&a, "app", 2);
  assert_int_equal(wr_routes_release(a.t, "app", enc, &enclen, 2),
                   WR_ERR_NOTFOUND);
  assert_int_equal(resolve1(&a, "app", NULL), 0);
  /* Reordered: the older ACTIVE after the RELEASED is old news. */
  tnode c;
  tn_init(&c, "node-c", 300, 0);
  assert_int_equal(apply(&c, &y, 3), 1);
  assert_int_equal(apply(&c, &x, 3), 0);
  assert_int_equal(resolve1(&c, "app", NULL), 0);
  assert_int_equal(apply(&b, &y, 3), 1);
  assert_int_equal(wr_routes_count(b.t), 0);
  /* Now bob may have it. */
  uint8_t s[WR_ROUTE_SESSION_LEN];
  tn_session(s, 2);
  assert_int_equal(wr_routes_bind(b.t, "app", "bob", s, 0, enc, &enclen, 4), 0);
  assert_same(&a, &c);
  wr_routes_del(a.t);
  wr_routes_del(b.t);
  wr_routes_del(c.t);
}

static void test_dead_owner(void **st) {
  tnode a, b;
  wr_route_entry e;
  wr_routes_stats s;
  (void)st;
  tn_init(&a, "node-a", 100, 0);
  tn_init(&b, "node-b", 200, 0);
  blob x = bind(&a, "app", "alice", 1, 0, 1);
  apply(&b, &x, 1);
  b.nchanged = 0;
  wr_routes_owner_state(b.t, "node-a", WR_ROUTE_OWNER_DEAD, 10);
  assert_int_equal(resolve1(&b, "app", NULL), 0);
  assert_int_equal(b.nchanged, 1);
  /* Refuted: back. */
  wr_routes_owner_state(b.t, "node-a", WR_ROUTE_OWNER_LIVE, 20);
  assert_int_equal(resolve1(&b, "app", &e), 1);
  /* Dead past the grace: collected, and not back when live again. */
  wr_routes_owner_state(b.t, "node-a", WR_ROUTE_OWNER_DEAD, 30);
  assert_true(wr_routes_deadline(b.t) <= 30 + 10000);
  wr_routes_tick(b.t, 30 + 9999);
  wr_routes_get_stats(b.t, &s);
  assert_int_equal(s.entries, 1);
  wr_routes_tick(b.t, wr_routes_deadline(b.t));
  wr_routes_get_stats(b.t, &s);
  assert_int_equal(s.entries, 0);
  assert_int_equal(s.owner_tombstones, 1);
  wr_routes_owner_state(b.t, "node-a", WR_ROUTE_OWNER_LIVE, 20000);
  assert_int_equal(resolve1(&b, "app", NULL), 0);
  /* Its old entries are stale now. */
  assert_int_equal(apply(&b, &x, 20001), 0);
  assert_int_equal(resolve1(&b, "app", NULL), 0);
  wr_routes_del(a.t);
  wr_routes_del(b.t);
}

/* Swim says DEAD before we hold anything of the owner; its late gossip,
 * even after the dead grace passed, must not resolve. */
static void test_dead_unknown_owner_late_gossip(void **st) {
  tnode a, b;
  (void)st;
  tn_init(&a, "node-a", 100, 0);
  tn_init(&b, "node-b", 200, 0);
  blob x = bind(&a, "app", "alice", 1, 0, 1);
  wr_routes_owner_state(b.t, "node-a", WR_ROUTE_OWNER_DEAD, 2);
  wr_routes_tick(b.t, 50000);
  wr_routes_tick(b.t, 100000);
  assert_int_equal(apply(&b, &x, 100001), 1);
  assert_int_equal(resolve1(&b, "app", NULL), 0);
  /* And its log is collected at the next scan. */
  wr_routes_tick(b.t, wr_routes_deadline(b.t));
  wr_routes_stats s;
  wr_routes_get_stats(b.t, &s);
  assert_int_equal(s.entries, 0);
  assert_int_equal(s.owner_tombstones, 1);
  wr_routes_del(a.t);
  wr_routes_del(b.t);
}

/* owner_known: an owner membership does not know (reaped while a peer
 * still held its log) is dead on arrival, and collected like any dead
 * owner's log; reported live later, its entries resolve again. */
static int known_a;
static int owner_known_fn(wr_routes *t, const char *owner, void *ud) {
  (void)t, (void)ud;
  return strcmp(owner, "node-a") != 0 || known_a;
}

static void test_unknown_owner_not_live(void **st) {
  tnode a, b;
  wr_routes_config cfg;
  wr_pcg32 g;
  wr_routes_stats s;
  (void)st;
  tn_init(&a, "node-a", 100, 0);
  wr_pcg32_seed(&g, 42, 7);
  tn_config(&cfg, "node-b", 200, &g);
  wr_routes_callbacks cb = tn_cb;
  cb.owner_known = owner_known_fn;
  memset(&b, 0, sizeof b);
  snprintf(b.id, sizeof b.id, "node-b");
  assert_int_equal(wr_routes_new(&b.t, &cfg, &cb, NULL, &b, 0), 0);
  known_a = 0;
  blob x = bind(&a, "app", "alice", 1, 0, 1);
  assert_int_equal(apply(&b, &x, 2), 1);
  assert_int_equal(resolve1(&b, "app", NULL), 0);
  /* Membership reports it after all: it routes. */
  known_a = 1;
  wr_routes_owner_state(b.t, "node-a", WR_ROUTE_OWNER_LIVE, 3);
  assert_int_equal(resolve1(&b, "app", NULL), 1);
  /* A second table that never hears of node-a collects its log. */
  known_a = 0;
  tnode c;
  tn_config(&cfg, "node-c", 300, &g);
  memset(&c, 0, sizeof c);
  snprintf(c.id, sizeof c.id, "node-c");
  assert_int_equal(wr_routes_new(&c.t, &cfg, &cb, NULL, &c, 0), 0);
  assert_int_equal(apply(&c, &x, 5), 1);
  assert_int_equal(resolve1(&c, "app", NULL), 0);
  wr_routes_tick(c.t, 5 + 10000);
  wr_routes_tick(c.t, wr_routes_deadline(c.t));
  wr_routes_get_stats(c.t, &s);
  assert_int_equal(s.entries, 0);
  wr_routes_del(a.t);
  wr_routes_del(b.t);
  wr_routes_del(c.t);
}

static int nexplain;
static wr_route_verdict verdicts[8];
static void explain_fn(const wr_route_entry *e, wr_route_verdict v, void *ud) {
  (void)e;
  (void)ud;
  verdicts[nexplain++] = v;
}

static void test_explain(void **st) {
  tnode a, b, c;
  (void)st;
  tn_init(&a, "node-a", 100, 0);
  tn_init(&b, "node-b", 200, 0);
  tn_init(&c, "node-c", 300, 0);
  blob x = bind(&a, "app", "alice", 1, 0, 1);
  blob y = bind(&b, "app", "bob", 2, 0, 1);
  apply(&c, &x, 1);
  apply(&c, &y, 1);
  nexplain = 0;
  assert_int_equal(wr_routes_explain(c.t, "app", explain_fn, NULL), 2);
  assert_true((verdicts[0] == WR_ROUTE_SERVES && verdicts[1] == WR_ROUTE_V_TAKEN) ||
              (verdicts[1] == WR_ROUTE_SERVES && verdicts[0] == WR_ROUTE_V_TAKEN));
  wr_routes_owner_state(c.t, "node-a", WR_ROUTE_OWNER_DEAD, 2);
  nexplain = 0;
  wr_routes_explain(c.t, "app", explain_fn, NULL);
  assert_true(verdicts[0] == WR_ROUTE_V_OWNER_DEAD ||
              verdicts[1] == WR_ROUTE_V_OWNER_DEAD);
  assert_string_equal(wr_route_verdict_name(WR_ROUTE_V_MOVED), "moved");
  wr_routes_del(a.t);
  wr_routes_del(b.t);
  wr_routes_del(c.t);
}

static void test_bind_args(void **st) {
  tnode a;
  uint8_t s[WR_ROUTE_SESSION_LEN] = {0};
  (void)st;
  tn_init(&a, "node-a", 100, 0);
  assert_int_equal(wr_routes_bind(a.t, "-bad", "x", s, 0, enc, &enclen, 1),
                   WR_ERR_INVAL);
  assert_int_equal(wr_routes_bind(a.t, "Upper", "x", s, 0, enc, &enclen, 1),
                   WR_ERR_INVAL);
  assert_int_equal(wr_routes_bind(a.t, "ok", "has space", s, 0, enc, &enclen, 1),
                   WR_ERR_INVAL);
  assert_int_equal(wr_routes_bind(a.t, "ok", "", s, 0, enc, &enclen, 1),
                   WR_ERR_INVAL);
  assert_int_equal(wr_routes_release(a.t, "nope", enc, &enclen, 1),
                   WR_ERR_NOTFOUND);
  /* A refresh: same encoding, no new write. */
  assert_int_equal(wr_routes_bind(a.t, "ok", "x", s, 0, enc, &enclen, 1), 0);
  uint8_t first[WR_ROUTE_ENCODED_MAX];
  size_t firstlen = enclen;
  memcpy(first, enc, enclen);
  assert_int_equal(wr_routes_bind(a.t, "ok", "x", s, 0, enc, &enclen, 2), 0);
  assert_int_equal(enclen, firstlen);
  assert_memory_equal(enc, first, enclen);
  /* Quota. */
  wr_routes_config cfg;
  wr_pcg32 g;
  tnode q;
  wr_pcg32_seed(&g, 1, 1);
  tn_config(&cfg, "node-q", 5, &g);
  cfg.max_per_owner = 2;
  assert_int_equal(tn_init_cfg(&q, &cfg, NULL, 0), 0);
  bind(&q, "n1", "x", 1, 0, 1);
  bind(&q, "n2", "x", 1, 0, 1);
  assert_int_equal(wr_routes_bind(q.t, "n3", "x", s, 0, enc, &enclen, 1),
                   WR_ERR_LIMIT);
  cfg.epoch = 0;
  wr_routes *bad;
  assert_int_equal(wr_routes_new(&bad, &cfg, NULL, NULL, NULL, 0),
                   WR_ERR_INVAL);
  wr_routes_del(a.t);
  wr_routes_del(q.t);
}

/* ---- epochs ------------------------------------------------------------- */

static void test_restart_new_epoch(void **st) {
  tnode a, b, c;
  (void)st;
  tn_init(&a, "node-a", 100, 0);
  tn_init(&b, "node-b", 200, 0);
  blob x = bind(&a, "app", "alice", 1, 0, 1);
  bind(&a, "two", "alice", 1, 0, 1);
  assert_int_equal(tn_sync(a.t, b.t, 2, NULL), 0);
  assert_int_equal(wr_routes_count(b.t), 2);
  /* a restarts (new process, larger epoch) and binds one name again. */
  wr_routes_del(a.t);
  tn_init(&a, "node-a", 150, 3);
  blob y = bind(&a, "app", "alice", 2, 0, 4);
  assert_int_equal(apply(&b, &y, 5), 1);
  /* The older epoch is gone at once, and stays gone. */
  assert_int_equal(wr_routes_count(b.t), 1);
  assert_int_equal(apply(&b, &x, 6), 0);
  /* A third node learns the new epoch from the mark alone. */
  tn_init(&c, "node-c", 300, 0);
  apply(&c, &x, 1);
  assert_int_equal(tn_sync(a.t, c.t, 7, NULL), 0);
  assert_same(&a, &c);
  assert_same(&b, &c);
  wr_routes_del(a.t);
  wr_routes_del(b.t);
  wr_routes_del(c.t);
}

/* A restart whose epoch is not larger (the wall clock went back): the
 * peer's copy of our older log shows up in the sync and we move past it. */
static void test_restart_smaller_epoch(void **st) {
  tnode a, b;
  wr_routes_stats s;
  wr_route_entry e;
  (void)st;
  tn_init(&a, "node-a", 100, 0);
  tn_init(&b, "node-b", 200, 0);
  bind(&a, "old", "alice", 1, 0, 1);
  assert_int_equal(tn_sync(a.t, b.t, 2, NULL), 0);
  wr_routes_del(a.t);
  tn_init(&a, "node-a", 90, 3);
  blob y = bind(&a, "app", "alice", 2, 0, 4);
  assert_int_equal(apply(&b, &y, 5), 0); /* looks stale to b */
  assert_int_equal(tn_sync(a.t, b.t, 6, NULL), 0);
  wr_routes_get_stats(a.t, &s);
  assert_int_equal(s.epoch, 101);
  assert_int_equal(a.nrepub, 1);
  /* The same sync already carried the new epoch to b (a's delta comes
   * after b's): the republished gossip is old news there. */
  assert_int_equal(wr_routes_apply(b.t, a.repub[0], a.repub_len[0], 7), 0);
  assert_int_equal(resolve1(&b, "app", &e), 1);
  assert_int_equal(e.epoch, 101);
  assert_int_equal(resolve1(&b, "old", NULL), 0);
  assert_same(&a, &b);
  wr_routes_del(a.t);
  wr_routes_del(b.t);
}

/* A restart that reuses its epoch (same configured epoch) while a peer
 * holds the earlier run's log behind a collected floor: the peer answers
 * with a full log of ours, whose closing mark moves us to a new epoch. */
static void test_restart_same_epoch_full_log(void **st) {
  tnode a, b;
  wr_routes_stats s;
  (void)st;
  tn_init(&a, "node-a", 100, 0);
  tn_init(&b, "node-b", 200, 0);
  bind(&a, "one", "alice", 1, 0, 1);
  bind(&a, "two", "alice", 1, 0, 1);
  release(&a, "two", 1);
  assert_int_equal(tn_sync(a.t, b.t, 2, NULL), 0);
  wr_routes_tick(b.t, 20000); /* b collects the tombstone: floor 3 */
  wr_routes_del(a.t);
  tn_init(&a, "node-a", 100, 20001);
  bind(&a, "three", "alice", 2, 0, 20002);
  assert_int_equal(tn_sync(a.t, b.t, 20003, NULL), 0);
  wr_routes_get_stats(a.t, &s);
  assert_int_equal(s.epoch, 101);
  assert_int_equal(a.nrepub, 1);
  for (int i = 0; i < a.nrepub; i++)
    (void)wr_routes_apply(b.t, a.repub[i], a.repub_len[i], 20004);
  assert_int_equal(tn_sync(a.t, b.t, 20005, NULL), 0);
  assert_int_equal(resolve1(&b, "three", NULL), 1);
  assert_int_equal(resolve1(&b, "one", NULL), 0);
  assert_same(&a, &b);
  wr_routes_del(a.t);
  wr_routes_del(b.t);
}

/* ---- GC and no resurrection --------------------------------------------- */

static void test_gc_tombstone_no_resurrection(void **st) {
  tnode a, b, stale;
  wr_routes_stats s;
  wr_tstamp now = 1;
  (void)st;
  tn_init(&a, "node-a", 100, 0);
  tn_init(&b, "node-b", 200, 0);
  tn_init(&stale, "node-s", 300, 0);
  bind(&a, "app", "alice", 1, 0, now);
  bind(&a, "keep", "alice", 1, 0, now);
  assert_int_equal(tn_sync(a.t, b.t, now, NULL), 0);
  assert_int_equal(tn_sync(a.t, stale.t, now, NULL), 0);
  assert_int_equal(wr_routes_count(stale.t), 2);
  /* The stale node is now cut off; a releases and b hears. */
  blob r = release(&a, "app", 2);
  assert_int_equal(apply(&b, &r, 2), 1);
  assert_int_equal(tn_sync(a.t, b.t, 3, NULL), 0);
  /* Both collect the tombstone after the grace. */
  now = 20000;
  wr_routes_tick(a.t, now);
  wr_routes_tick(b.t, now);
  wr_routes_get_stats(b.t, &s);
  assert_int_equal(s.entries, 1);
  assert_int_equal(s.collected, 1);
  wr_routes_get_stats(a.t, &s);
  assert_int_equal(s.entries, 1);
  /* The stale peer's copy of the ACTIVE entry is old news at b... */
  assert_int_equal(tn_sync(stale.t, b.t, now, NULL), 0);
  assert_int_equal(resolve1(&b, "app", NULL), 0);
  /* ... and the stale peer itself loses it: b sent the whole log behind
   * a full mark because its watermark was below the collected seq. */
  assert_int_equal(resolve1(&stale, "app", NULL), 0);
  assert_same(&a, &stale);
  assert_same(&b, &stale);
  /* Direct gossip of the old entry from the stale peer is stale too. */
  wr_routes_del(a.t);
  wr_routes_del(b.t);
  wr_routes_del(stale.t);
}

static void test_gc_dead_log_no_resurrection(void **st) {
  tnode a, b, stale;
  wr_routes_stats s;
  (void)st;
  tn_init(&a, "node-a", 100, 0);
  tn_init(&b, "node-b", 200, 0);
  tn_init(&stale, "node-s", 300, 0);
  bind(&a, "app", "alice", 1, 0, 1);
  tn_sync(a.t, b.t, 1, NULL);
  tn_sync(a.t, stale.t, 1, NULL);
  /* a dies; b collects its log after the grace. */
  wr_routes_owner_state(b.t, "node-a", WR_ROUTE_OWNER_DEAD, 2);
  wr_routes_tick(b.t, 20000);
  wr_routes_get_stats(b.t, &s);
  assert_int_equal(s.entries, 0);
  assert_int_equal(s.owner_tombstones, 1);
  /* A stale peer that still holds a's log (and thinks it live) syncs. */
  assert_int_equal(tn_sync(stale.t, b.t, 20001, NULL), 0);
  wr_routes_get_stats(b.t, &s);
  assert_int_equal(s.entries, 0);
  assert_int_equal(resolve1(&b, "app", NULL), 0);
  /* It adopted the tombstone. */
  wr_routes_get_stats(stale.t, &s);
  assert_int_equal(s.entries, 0);
  assert_int_equal(s.owner_tombstones, 1);
  wr_routes_del(a.t);
  wr_routes_del(b.t);
  wr_routes_del(stale.t);
}

static void test_partitioned_owner_republishes(void **st) {
  tnode a, b;
  wr_routes_stats s;
  wr_route_entry e;
  int i;
  (void)st;
  tn_init(&a, "node-a", 100, 0);
  tn_init(&b, "node-b", 200, 0);
  bind(&a, "app", "alice", 1, 0, 1);
  bind(&a, "web", "carol", 2, 0, 1);
  blob r = bind(&a, "gone", "carol", 2, 0, 1);
  (void)r;
  release(&a, "gone", 1);
  tn_sync(a.t, b.t, 1, NULL);
  assert_int_equal(wr_routes_count(b.t), 2);
  /* Partition: b declares a dead and collects its epoch. */
  wr_routes_owner_state(b.t, "node-a", WR_ROUTE_OWNER_DEAD, 2);
  wr_routes_tick(b.t, 20000);
  assert_int_equal(wr_routes_count(b.t), 0);
  /* Healed: a is live again; the sync tells a its epoch was collected. */
  wr_routes_owner_state(b.t, "node-a", WR_ROUTE_OWNER_LIVE, 20001);
  assert_int_equal(tn_sync(b.t, a.t, 20002, NULL), 0);
  wr_routes_get_stats(a.t, &s);
  assert_int_equal(s.epoch, 101);
  assert_int_equal(a.nrepub, 2);
  for (i = 0; i < a.nrepub; i++)
    assert_int_equal(wr_routes_apply(b.t, a.repub[i], a.repub_len[i], 20003), 1);
  assert_int_equal(wr_routes_count(b.t), 2);
  assert_int_equal(resolve1(&b, "app", &e), 1);
  assert_int_equal(e.epoch, 101);
  assert_int_equal(e.claimed_at, 1); /* versions and claims kept */
  assert_same(&a, &b);
  wr_routes_del(a.t);
  wr_routes_del(b.t);
}

/* ---- codec -------------------------------------------------------------- */

static void good_entry(wr_route_entry *e) {
  memset(e, 0, sizeof *e);
  strcpy(e->name, "my-app-1");
  strcpy(e->owner, "node-a");
  strcpy(e->account, "acct:alice");
  tn_session(e->session, 77);
  e->epoch = 1700000000000ull;
  e->seq = 42;
  e->version = 1000;
  e->claimed_at = 900;
  e->state = WR_ROUTE_ACTIVE;
  e->options = WR_ROUTE_OPT_BALANCE;
}

static void test_codec_roundtrip_truncation(void **st) {
  wr_route_entry e, d;
  uint8_t buf[WR_ROUTE_ENCODED_MAX];
  size_t i;
  (void)st;
  good_entry(&e);
  wr_ssize n = wr_route_entry_encode(&e, buf, sizeof buf);
  assert_true(n > 0);
  assert_int_equal(wr_route_entry_decode(buf, (size_t)n, &d), 0);
  assert_memory_equal(&e, &d, sizeof e);
  assert_int_equal(wr_route_entry_encode(&e, buf, (size_t)n - 1), WR_ERR_NOBUF);
  /* Every strict prefix is refused (each field is required). */
  for (i = 0; i < (size_t)n; i++) {
    uint8_t *cut = malloc(i ? i : 1);
    memcpy(cut, buf, i);
    assert_int_equal(wr_route_entry_decode(cut, i, &d), WR_ERR_PROTO);
    free(cut);
  }
  /* The largest entry fits the bound. */
  memset(e.name, 'a', WR_ROUTE_NAME_MAX);
  e.name[WR_ROUTE_NAME_MAX] = 0;
  memset(e.owner, 'o', WR_ROUTE_OWNER_MAX);
  e.owner[WR_ROUTE_OWNER_MAX] = 0;
  memset(e.account, 'c', WR_ROUTE_ACCOUNT_MAX);
  e.account[WR_ROUTE_ACCOUNT_MAX] = 0;
  e.epoch = e.seq = e.version = e.claimed_at = WR_ROUTE_VERSION_MAX;
  e.options = UINT32_MAX;
  e.state = WR_ROUTE_RELEASED;
  n = wr_route_entry_encode(&e, buf, sizeof buf);
  assert_true(n > 0 && n < 300);
  assert_int_equal(wr_route_entry_decode(buf, (size_t)n, &d), 0);
  assert_memory_equal(&e, &d, sizeof e);
  /* Random bit flips never crash, and what decodes is valid. */
  wr_pcg32 g;
  wr_pcg32_seed(&g, 5, 5);
  for (i = 0; i < 20000; i++) {
    uint8_t m[WR_ROUTE_ENCODED_MAX];
    memcpy(m, buf, (size_t)n);
    m[wr_pcg32_bounded(&g, (uint32_t)n)] ^= (uint8_t)(1u << wr_pcg32_bounded(&g, 8));
    if (wr_route_entry_decode(m, (size_t)n, &d) == 0)
      assert_true(wr_route_name_ok(d.name));
  }
}

/* Poison (issue 12): a member with the cluster key gossips an entry at
 * the top of the version range.  It may win its own name, but it must
 * not push this node's Lamport clock to the cap, where every bind and
 * release in the fleet would fail. */
static void test_top_version_locks_one_name(void **st) {
  tnode a;
  wr_route_entry e;
  uint8_t buf[WR_ROUTE_ENCODED_MAX], s[WR_ROUTE_SESSION_LEN];
  (void)st;
  tn_init(&a, "node-a", 100, 0);
  good_entry(&e);
  strcpy(e.name, "poisoned");
  strcpy(e.owner, "evil");
  e.version = WR_ROUTE_VERSION_MAX;
  e.claimed_at = 1;
  wr_ssize n = wr_route_entry_encode(&e, buf, sizeof buf);
  assert_true(n > 0);
  assert_int_equal(wr_routes_apply(a.t, buf, (size_t)n, 1), 1);
  /* Other names bind and release as ever, with sane versions. */
  blob x = bind(&a, "fine", "alice", 1, 0, 2);
  wr_route_entry r;
  assert_int_equal(resolve1(&a, "fine", &r), 1);
  assert_true(r.version < 1000);
  release(&a, "fine", 3);
  (void)x;
  /* The poisoned name itself: its own account may not outbid the top. */
  tn_session(s, 9);
  assert_int_equal(wr_routes_bind(a.t, "poisoned", "acct:alice", s, 0, enc,
                                  &enclen, 4),
                   WR_ERR_LIMIT);
  wr_routes_del(a.t);
}

/* A restarted owner advertises its new epoch through membership: its
 * bindings from the earlier process stop serving at once, even if the new
 * process writes nothing (chaos finding: they served again for 11-23 s). */
static void test_owner_epoch_from_membership(void **st) {
  tnode a, b, c;
  (void)st;
  tn_init(&a, "node-a", 100, 0);
  tn_init(&b, "node-b", 200, 0);
  tn_init(&c, "node-c", 300, 0);
  blob x = bind(&a, "app", "alice", 1, 0, 1);
  blob y = bind(&c, "other", "bob", 2, 0, 1);
  assert_int_equal(apply(&b, &x, 2), 1);
  assert_int_equal(apply(&b, &y, 2), 1);
  assert_int_equal(resolve1(&b, "app", NULL), 1);
  /* Not newer, unknown owner, ourselves: nothing changes. */
  wr_routes_owner_epoch(b.t, "node-a", 100, 3);
  wr_routes_owner_epoch(b.t, "node-a", 99, 3);
  wr_routes_owner_epoch(b.t, "node-z", 500, 3);
  wr_routes_owner_epoch(b.t, "node-b", 500, 3);
  assert_int_equal(resolve1(&b, "app", NULL), 1);
  /* node-a came back as a new process (epoch 150). */
  wr_routes_owner_epoch(b.t, "node-a", 150, 4);
  assert_int_equal(resolve1(&b, "app", NULL), 0);
  assert_int_equal(resolve1(&b, "other", NULL), 1);
  /* Same table as a node that only ever heard node-c's entry. */
  tnode d;
  tn_init(&d, "node-b", 200, 0);
  assert_int_equal(apply(&d, &y, 2), 1);
  uint8_t db[16], dd[16];
  wr_routes_digest(b.t, db);
  wr_routes_digest(d.t, dd);
  assert_memory_equal(db, dd, 16);
  /* The old entry arriving late is stale: it does not come back. */
  assert_int_equal(apply(&b, &x, 5), 0);
  assert_int_equal(resolve1(&b, "app", NULL), 0);
  wr_routes_del(a.t);
  wr_routes_del(b.t);
  wr_routes_del(c.t);
  wr_routes_del(d.t);
}

static void test_codec_invalid(void **st) {
  wr_route_entry e, d;
  uint8_t buf[WR_ROUTE_ENCODED_MAX];
  tnode a;
  wr_routes_stats s;
  (void)st;
  tn_init(&a, "node-a", 100, 0);
  /* Each invalid field, encoded raw through protobuf by bypassing the
   * encoder's own check: build a valid one and patch the struct. */
  struct {
    void (*f)(wr_route_entry *);
  } cases[8];
  (void)cases;
  good_entry(&e);
  e.claimed_at = e.version + 1;
  assert_int_equal(wr_route_entry_encode(&e, buf, sizeof buf), WR_ERR_INVAL);
  good_entry(&e);
  strcpy(e.name, "Bad");
  assert_int_equal(wr_route_entry_encode(&e, buf, sizeof buf), WR_ERR_INVAL);
  good_entry(&e);
  strcpy(e.owner, "a b");
  assert_int_equal(wr_route_entry_encode(&e, buf, sizeof buf), WR_ERR_INVAL);
  good_entry(&e);
  e.version = WR_ROUTE_VERSION_MAX + 1;
  assert_int_equal(wr_route_entry_encode(&e, buf, sizeof buf), WR_ERR_INVAL);
  good_entry(&e);
  e.state = (wr_route_state)2;
  assert_int_equal(wr_route_entry_encode(&e, buf, sizeof buf), WR_ERR_INVAL);
  good_entry(&e);
  e.seq = 0;
  assert_int_equal(wr_route_entry_encode(&e, buf, sizeof buf), WR_ERR_INVAL);
  /* Hand-made wire: a 15-byte session (field 4), otherwise plausible. */
  static const uint8_t short_sess[] = {
      0x0a, 0x01, 'x', 0x12, 0x01, 'o', 0x1a, 0x01, 'c', 0x22, 0x0f,
      1,    2,    3,   4,    5,    6,   7,    8,    9,   10,   11,
      12,   13,   14,  15,   0x28, 1,   0x30, 1,    0x38, 1,    0x40,
      1, 0x78, 1};
  assert_int_equal(wr_route_entry_decode(short_sess, sizeof short_sess, &d),
                   WR_ERR_PROTO);
  /* Same with 16 bytes decodes. */
  static const uint8_t ok_sess[] = {
      0x0a, 0x01, 'x', 0x12, 0x01, 'o', 0x1a, 0x01, 'c', 0x22, 0x10,
      1,    2,    3,   4,    5,    6,   7,    8,    9,   10,   11,
      12,   13,   14,  15,   16,   0x28, 1,   0x30, 1,    0x38, 1,
      0x40, 1, 0x78, 1};
  assert_int_equal(wr_route_entry_decode(ok_sess, sizeof ok_sess, &d), 0);
  /* state 2 on the wire. */
  uint8_t st2[sizeof ok_sess + 2];
  memcpy(st2, ok_sess, sizeof ok_sess);
  st2[sizeof ok_sess] = 0x48;
  st2[sizeof ok_sess + 1] = 2;
  assert_int_equal(wr_route_entry_decode(st2, sizeof st2, &d), WR_ERR_PROTO);
  assert_int_equal(wr_routes_apply(a.t, st2, sizeof st2, 1), WR_ERR_PROTO);
  assert_int_equal(wr_routes_apply(a.t, (const uint8_t *)"\xff", 1, 1),
                   WR_ERR_PROTO);
  uint8_t big[WR_ROUTE_ENCODED_MAX + 1] = {0};
  assert_int_equal(wr_routes_apply(a.t, big, sizeof big, 1), WR_ERR_PROTO);
  wr_routes_get_stats(a.t, &s);
  assert_int_equal(s.rejected, 3);
  /* A sync record where an entry is expected, and garbage. */
  wr_routes_sync *sy;
  assert_int_equal(wr_routes_sync_new(a.t, &sy, 1), 0);
  assert_int_equal(wr_routes_sync_digest_in(sy, ok_sess, sizeof ok_sess),
                   WR_ERR_PROTO);
  assert_int_equal(wr_routes_sync_delta_in(sy, (const uint8_t *)"\x0a\x00", 2, 1),
                   WR_ERR_PROTO);
  assert_int_equal(wr_routes_sync_delta_next(sy, buf, 10), WR_ERR_NOBUF);
  wr_routes_sync_del(sy);
  wr_routes_del(a.t);
}

/* ---- allocation failures ------------------------------------------------ */

static void fm_scenario_run(failmalloc *fm, int *failed) {
  tnode a, b;
  wr_routes_config cfg;
  wr_pcg32 g;
  uint8_t s[WR_ROUTE_SESSION_LEN];
  int rv, i;
  char name[16];
  blob g1[40];
  int ng = 0;
  *failed = 0;
  wr_pcg32_seed(&g, 3, 3);
  tn_config(&cfg, "node-a", 10, &g);
  rv = tn_init_cfg(&a, &cfg, &fm->mem, 0);
  if (rv != 0) {
    assert_int_equal(rv, WR_ERR_NOMEM);
    *failed = 1;
    return;
  }
  tn_config(&cfg, "node-b", 20, &g);
  rv = tn_init_cfg(&b, &cfg, &fm->mem, 0);
  if (rv != 0) {
    assert_int_equal(rv, WR_ERR_NOMEM);
    wr_routes_del(a.t);
    *failed = 1;
    return;
  }
  for (i = 0; i < 40; i++) {
    snprintf(name, sizeof name, "n%d", i);
    tn_session(s, (unsigned)i % 3);
    rv = wr_routes_bind(i % 2 ? b.t : a.t, name, i % 3 ? "x" : "y", s, 0,
                        g1[ng].b, &g1[ng].n, 1);
    if (rv == WR_ERR_NOMEM) {
      *failed = 1;
      continue;
    }
    assert_int_equal(rv, 0);
    ng++;
  }
  for (i = 0; i < ng; i++) {
    rv = wr_routes_apply(a.t, g1[i].b, g1[i].n, 2);
    if (rv == WR_ERR_NOMEM) *failed = 1;
    else assert_true(rv == 0 || rv == 1);
  }
  rv = tn_sync(a.t, b.t, 3, NULL);
  if (rv == WR_ERR_NOMEM) *failed = 1;
  else assert_int_equal(rv, 0);
  /* Whatever failed, the tables are consistent: the next (successful)
   * syncs converge them. */
  if (!*failed) {
    assert_same(&a, &b);
  }
  wr_routes_del(a.t);
  wr_routes_del(b.t);
}

static void test_failmalloc(void **st) {
  failmalloc fm;
  long k;
  int failed;
  (void)st;
  for (k = 1;; k++) {
    failmalloc_init(&fm, k);
    fm_scenario_run(&fm, &failed);
    assert_int_equal(fm.live, 0);
    if (fm.count < k) break; /* the k-th allocation never happened */
  }
  assert_true(k > 50);
}

/* After a failed apply/bind, the table still converges once memory is
 * back: fail one allocation in the middle of a sync, then sync again. */
static void test_failmalloc_recovers(void **st) {
  failmalloc fm;
  long k;
  (void)st;
  for (k = 1; k < 400; k += 7) {
    tnode a, b;
    wr_routes_config cfg;
    wr_pcg32 g;
    int i;
    char name[16];
    failmalloc_init(&fm, 0);
    wr_pcg32_seed(&g, 3, 3);
    tn_config(&cfg, "node-a", 10, &g);
    assert_int_equal(tn_init_cfg(&a, &cfg, &fm.mem, 0), 0);
    tn_config(&cfg, "node-b", 20, &g);
    assert_int_equal(tn_init_cfg(&b, &cfg, &fm.mem, 0), 0);
    for (i = 0; i < 30; i++) {
      snprintf(name, sizeof name, "r%d", i);
      bind(&a, name, "x", 1, 0, 1);
    }
    fm.fail_at = fm.count + k;
    (void)tn_sync(a.t, b.t, 2, NULL);
    fm.fail_at = 0;
    assert_int_equal(tn_sync(a.t, b.t, 3, NULL), 0);
    assert_same(&a, &b);
    wr_routes_del(a.t);
    wr_routes_del(b.t);
    assert_int_equal(fm.live, 0);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_established_holder_keeps),
      cmocka_unit_test(test_concurrent_claims_one_account),
      cmocka_unit_test(test_move_keeps_claim),
      cmocka_unit_test(test_redundant_links_and_balance),
      cmocka_unit_test(test_released),
      cmocka_unit_test(test_dead_owner),
      cmocka_unit_test(test_dead_unknown_owner_late_gossip),
      cmocka_unit_test(test_unknown_owner_not_live),
      cmocka_unit_test(test_explain),
      cmocka_unit_test(test_bind_args),
      cmocka_unit_test(test_restart_new_epoch),
      cmocka_unit_test(test_restart_smaller_epoch),
      cmocka_unit_test(test_restart_same_epoch_full_log),
      cmocka_unit_test(test_gc_tombstone_no_resurrection),
      cmocka_unit_test(test_gc_dead_log_no_resurrection),
      cmocka_unit_test(test_partitioned_owner_republishes),
      cmocka_unit_test(test_codec_roundtrip_truncation),
      cmocka_unit_test(test_codec_invalid),
      cmocka_unit_test(test_top_version_locks_one_name),
      cmocka_unit_test(test_owner_epoch_from_membership),
      cmocka_unit_test(test_failmalloc),
      cmocka_unit_test(test_failmalloc_recovers),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
