/*
 * A member that floods the table (docs/CHAOS.md, the poison scenario):
 * the per-owner ingest rate (token bucket, virtual time), the byte and
 * entry quotas, the bounded ingest queue, and that what was dropped over
 * the rate still converges through anti-entropy and is never relayed.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "routes_net.h"

#define NBIND 50

typedef struct blobs {
  uint8_t enc[NBIND][WR_ROUTE_ENCODED_MAX];
  size_t len[NBIND];
} blobs;

/* |n| binds of distinct names at |src|, their encodings kept. */
static void bind_many(tnode *src, blobs *b, size_t n, const char *prefix) {
  size_t i;
  for (i = 0; i < n; i++) {
    char name[32];
    uint8_t sess[WR_ROUTE_SESSION_LEN];
    snprintf(name, sizeof name, "%s-%zu", prefix, i);
    tn_session(sess, (unsigned)i + 1);
    assert_int_equal(wr_routes_bind(src->t, name, "acct", sess, 0, b->enc[i],
                                    &b->len[i], 1),
                     0);
  }
}

static void init_limited(tnode *n, const char *id, uint64_t epoch,
                         uint32_t rate, uint32_t burst, size_t ingest_max,
                         wr_pcg32 *g) {
  wr_routes_config cfg;
  tn_config(&cfg, id, epoch, g);
  cfg.owner_rate = rate;
  cfg.owner_burst = burst;
  cfg.ingest_max = ingest_max;
  assert_int_equal(tn_init_cfg(n, &cfg, NULL, 0), 0);
}

static void assert_converged(tnode *a, tnode *b) {
  char *da = tn_dump_table(a->t), *db = tn_dump_table(b->t);
  assert_string_equal(da, db);
  free(da);
  free(db);
}

/* The bucket: burst at first, then exactly rate a second, and an
 * over-rate entry is not news. */
static void test_rate_bucket(void **st) {
  tnode a, b;
  wr_pcg32 g;
  static blobs bl;
  wr_routes_stats s;
  size_t i;
  (void)st;
  wr_pcg32_seed(&g, 3, 3);
  init_limited(&a, "node-a", 100, 0, 0, 16, &g);
  init_limited(&b, "node-b", 200, 10, 5, 16, &g);
  bind_many(&a, &bl, NBIND, "n");
  for (i = 0; i < 5; i++)
    assert_int_equal(wr_routes_apply(b.t, bl.enc[i], bl.len[i], 1000), 1);
  /* Empty: dropped, not news, counted. */
  assert_int_equal(wr_routes_apply(b.t, bl.enc[5], bl.len[5], 1000), 0);
  assert_int_equal(wr_routes_apply(b.t, bl.enc[5], bl.len[5], 1099), 0);
  /* 10 a second: one token after 100 ms. */
  assert_int_equal(wr_routes_apply(b.t, bl.enc[5], bl.len[5], 1100), 1);
  assert_int_equal(wr_routes_apply(b.t, bl.enc[6], bl.len[6], 1100), 0);
  /* A long pause refills up to the burst only. */
  for (i = 6; i < 20; i++)
    (void)wr_routes_apply(b.t, bl.enc[i], bl.len[i], 60000);
  wr_routes_get_stats(b.t, &s);
  assert_int_equal(s.entries, 11); /* 5 + 1 + 5 */
  assert_int_equal(s.rate_drops, 3 + 9);
  /* Old news costs no token and is not a drop. */
  assert_int_equal(wr_routes_apply(b.t, bl.enc[0], bl.len[0], 60000), 0);
  wr_routes_get_stats(b.t, &s);
  assert_int_equal(s.rate_drops, 12);
  /* Time going backwards refills nothing (and breaks nothing). */
  assert_int_equal(wr_routes_apply(b.t, bl.enc[30], bl.len[30], 5), 0);
  wr_routes_del(a.t);
  wr_routes_del(b.t);
}

/* Entries dropped over the rate come back through anti-entropy, within
 * the same bucket: the peer's mark must not move our watermark past
 * them (without that, the table never converges: the dropped entries
 * would be old news for ever). */
static void test_rate_drop_sync_converges(void **st) {
  tnode a, b;
  wr_pcg32 g;
  static blobs bl;
  wr_routes_stats s;
  size_t i;
  int rounds = 0;
  (void)st;
  wr_pcg32_seed(&g, 4, 4);
  init_limited(&a, "node-a", 100, 0, 0, 16, &g);
  init_limited(&b, "node-b", 200, 10, 5, 16, &g);
  bind_many(&a, &bl, NBIND, "n");
  for (i = 0; i < NBIND; i++)
    (void)wr_routes_apply(b.t, bl.enc[i], bl.len[i], 1000);
  wr_routes_get_stats(b.t, &s);
  assert_int_equal(s.entries, 5);
  /* A sync at once: the bucket is empty, everything is dropped, and the
   * table is as it was. */
  assert_int_equal(tn_sync(a.t, b.t, 1001, NULL), 0);
  wr_routes_get_stats(b.t, &s);
  assert_int_equal(s.entries, 5);
  /* One sync a second takes what the bucket refilled, up to its burst
   * of 5: the 45 in 9 rounds. */
  for (wr_tstamp t = 2001; rounds < 20; t += 1000, rounds++) {
    tn_sync_cost c = {0, 0};
    assert_int_equal(tn_sync(a.t, b.t, t, &c), 0);
    /* Bounded: at most what b lacks of a's log, plus marks. */
    assert_true(c.records <= NBIND + 4);
    wr_routes_get_stats(b.t, &s);
    if (s.entries == NBIND) break;
  }
  assert_int_equal(s.entries, NBIND);
  assert_int_equal(rounds, 8); /* the 9th sync completed it */
  assert_converged(&a, &b);
  wr_routes_del(a.t);
  wr_routes_del(b.t);
}

static int nrelayed;
static void relay_fn(const wr_route_entry *e, const uint8_t *enc, size_t len,
                     void *ud) {
  (void)e;
  (void)enc;
  (void)len;
  (void)ud;
  nrelayed++;
}

/* The ingest queue: bounded, drained a slice at a time, only news is
 * relayed, and what it dropped converges by sync. */
static void test_ingest_bounded(void **st) {
  tnode a, b;
  wr_pcg32 g;
  static blobs bl;
  wr_routes_stats s;
  size_t i;
  int queued = 0;
  (void)st;
  wr_pcg32_seed(&g, 5, 5);
  init_limited(&a, "node-a", 100, 0, 0, 16, &g);
  init_limited(&b, "node-b", 200, 0, 0, 16, &g);
  bind_many(&a, &bl, NBIND, "n");
  for (i = 0; i < NBIND; i++) {
    int rv = wr_routes_ingest_push(b.t, bl.enc[i], bl.len[i], 10);
    assert_true(rv == 0 || rv == 1);
    queued += rv;
  }
  wr_routes_get_stats(b.t, &s);
  assert_int_equal(queued, 16);
  assert_int_equal(s.ingest_drops, NBIND - 16);
  assert_int_equal(s.ingest_queued, 16);
  assert_int_equal(s.entries, 0); /* nothing applied by push */
  assert_int_equal(b.nchanged, 0);
  /* A bad record is refused at once. */
  assert_int_equal(wr_routes_ingest_push(b.t, bl.enc[0], 3, 10), WR_ERR_PROTO);
  /* Slices of 4. */
  nrelayed = 0;
  assert_int_equal(wr_routes_ingest_run(b.t, 4, relay_fn, NULL, 11), 4);
  assert_int_equal(nrelayed, 4);
  assert_int_equal(wr_routes_ingest_pending(b.t), 12);
  /* A copy of what is queued is old news at push once applied; queued
   * twice, the second is old news at run and not relayed. */
  assert_int_equal(wr_routes_ingest_push(b.t, bl.enc[0], bl.len[0], 12), 0);
  assert_int_equal(wr_routes_ingest_push(b.t, bl.enc[4], bl.len[4], 12), 1);
  while (wr_routes_ingest_pending(b.t))
    assert_true(wr_routes_ingest_run(b.t, 4, relay_fn, NULL, 13) > 0);
  assert_int_equal(nrelayed, 16);
  wr_routes_get_stats(b.t, &s);
  assert_int_equal(s.entries, 16);
  /* The dropped 34 come with the next sync. */
  assert_int_equal(tn_sync(a.t, b.t, 14, NULL), 0);
  assert_converged(&a, &b);
  wr_routes_del(a.t);
  wr_routes_del(b.t);
}

/* A flooding owner's bucket is its own: another owner's entries are
 * admitted and relayed while the flood is dropped (and not relayed). */
static void test_ingest_flood_spares_others(void **st) {
  tnode a, h, b;
  wr_pcg32 g;
  static blobs flood, honest;
  wr_routes_stats s;
  size_t i;
  (void)st;
  wr_pcg32_seed(&g, 6, 6);
  init_limited(&a, "flooder", 100, 0, 0, 16, &g);
  init_limited(&h, "honest", 150, 0, 0, 16, &g);
  init_limited(&b, "node-b", 200, 10, 5, 64, &g);
  bind_many(&a, &flood, NBIND, "f");
  bind_many(&h, &honest, 3, "h");
  /* The flooder's first entry makes its owner record (admitted
   * unbilled, charged when applied); the rest are charged at push. */
  assert_int_equal(wr_routes_ingest_push(b.t, flood.enc[0], flood.len[0], 1),
                   1);
  assert_int_equal(wr_routes_ingest_run(b.t, 1, NULL, NULL, 1), 1);
  int admitted = 0;
  for (i = 1; i < NBIND; i++)
    admitted += wr_routes_ingest_push(b.t, flood.enc[i], flood.len[i], 1);
  assert_int_equal(admitted, 4); /* burst 5, one spent */
  for (i = 0; i < 3; i++)
    assert_int_equal(
        wr_routes_ingest_push(b.t, honest.enc[i], honest.len[i], 1), 1);
  nrelayed = 0;
  while (wr_routes_ingest_pending(b.t))
    assert_true(wr_routes_ingest_run(b.t, 2, relay_fn, NULL, 2) > 0);
  assert_int_equal(nrelayed, 4 + 3);
  wr_routes_get_stats(b.t, &s);
  assert_int_equal(s.rate_drops, NBIND - 5);
  wr_route_entry out[2];
  assert_int_equal(wr_routes_resolve(b.t, "h-2", out, 2), 1);
  wr_routes_del(a.t);
  wr_routes_del(h.t);
  wr_routes_del(b.t);
}

/* The quotas: entries and bytes per owner; a name an owner already
 * holds may be rewritten at quota. */
static void test_owner_quotas(void **st) {
  tnode a, b;
  wr_pcg32 g;
  wr_routes_config cfg;
  wr_routes_stats s;
  uint8_t e[WR_ROUTE_ENCODED_MAX], sess[WR_ROUTE_SESSION_LEN];
  size_t len, i;
  char name[WR_ROUTE_NAME_MAX + 1], acct[WR_ROUTE_ACCOUNT_MAX + 1];
  (void)st;
  wr_pcg32_seed(&g, 7, 7);
  init_limited(&a, "node-a", 100, 0, 0, 16, &g);
  tn_config(&cfg, "node-b", 200, &g);
  cfg.owner_rate = 0;
  /* Three entries at the length limits fit, a fourth does not. */
  cfg.max_owner_bytes = 3 * (WR_ROUTE_NAME_MAX + WR_ROUTE_ACCOUNT_MAX + 300);
  assert_int_equal(tn_init_cfg(&b, &cfg, NULL, 0), 0);
  memset(acct, 'a', WR_ROUTE_ACCOUNT_MAX);
  acct[WR_ROUTE_ACCOUNT_MAX] = 0;
  size_t held = 0;
  for (i = 0; i < 10; i++) {
    memset(name, 'x', WR_ROUTE_NAME_MAX);
    name[WR_ROUTE_NAME_MAX] = 0;
    name[0] = (char)('a' + i);
    tn_session(sess, (unsigned)i + 1);
    assert_int_equal(wr_routes_bind(a.t, name, acct, sess, 0, e, &len, 1), 0);
    held += (size_t)wr_routes_apply(b.t, e, len, 1);
  }
  wr_routes_get_stats(b.t, &s);
  assert_in_range(held, 3, 4);
  assert_int_equal(s.entries, held);
  assert_int_equal(s.quota_drops, 10 - held);
  /* Our own binds keep within it too. */
  for (i = 0; i < 10; i++) {
    memset(name, 'y', WR_ROUTE_NAME_MAX);
    name[WR_ROUTE_NAME_MAX] = 0;
    name[0] = (char)('a' + i);
    tn_session(sess, 1);
    if (wr_routes_bind(b.t, name, acct, sess, 0, e, &len, 1) != 0) break;
  }
  assert_int_equal(i, held);
  /* A rewrite of a name held is not a new entry: taken at quota. */
  memset(name, 'x', WR_ROUTE_NAME_MAX);
  name[WR_ROUTE_NAME_MAX] = 0;
  name[0] = 'a';
  tn_session(sess, 99);
  assert_int_equal(wr_routes_bind(a.t, name, acct, sess, 0, e, &len, 2), 0);
  assert_int_equal(wr_routes_apply(b.t, e, len, 2), 1);
  wr_routes_del(a.t);
  wr_routes_del(b.t);
  /* The defaults: 10,000 entries, 2 MiB, 500 a second after 2,000. */
  wr_routes_config_default(&cfg);
  assert_int_equal(cfg.max_per_owner, 10000);
  assert_int_equal(cfg.max_owner_bytes, 2u << 20);
  assert_int_equal(cfg.owner_rate, 500);
  assert_int_equal(cfg.owner_burst, 2000);
  /* A rate without a burst is refused. */
  cfg.owner_burst = 0;
  snprintf(cfg.self, sizeof cfg.self, "x");
  wr_routes *bad;
  assert_int_equal(wr_routes_new(&bad, &cfg, NULL, NULL, NULL, 0),
                   WR_ERR_INVAL);
}

/* The node's --routes-set names. */
/* Made-up owners: a keyed member that invents a fresh owner id for each
 * batch of entries gets around any per-owner quota unless owners that
 * membership never reported are few and small.  Here 12 invented owners
 * of 10 entries each reach a table that holds at most 4 such owners of 3
 * entries; a known owner is not limited by it; once membership reports
 * one of them, a sync brings its entries that were dropped; and unknown
 * owners whose logs were collected make room for others. */
static int fake_known[12];
static int fake_known_fn(wr_routes *t, const char *owner, void *ud) {
  (void)t, (void)ud;
  int i;
  if (sscanf(owner, "fake-%d", &i) != 1 || i < 0 || i >= 12) return 1;
  return fake_known[i];
}

static void test_made_up_owners(void **st) {
  static tnode fake[12];
  static blobs bl[12];
  tnode b, honest;
  wr_routes_config cfg;
  wr_routes_callbacks cb = tn_cb;
  wr_routes_stats s;
  wr_pcg32 g;
  size_t i, k;
  (void)st;
  wr_pcg32_seed(&g, 9, 9);
  memset(fake_known, 0, sizeof fake_known);
  for (i = 0; i < 12; i++) {
    char id[16];
    snprintf(id, sizeof id, "fake-%zu", i);
    init_limited(&fake[i], id, 10 + i, 0, 0, 16, &g);
    bind_many(&fake[i], &bl[i], 10, id);
  }
  init_limited(&honest, "node-h", 500, 0, 0, 16, &g);
  static blobs hb;
  bind_many(&honest, &hb, 20, "h");
  tn_config(&cfg, "node-b", 200, &g);
  cfg.owner_rate = 0;
  cfg.max_unknown_owners = 4;
  cfg.max_per_unknown_owner = 3;
  cb.owner_known = fake_known_fn;
  memset(&b, 0, sizeof b);
  snprintf(b.id, sizeof b.id, "node-b");
  assert_int_equal(wr_routes_new(&b.t, &cfg, &cb, NULL, &b, 0), 0);
  for (i = 0; i < 12; i++)
    for (k = 0; k < 10; k++)
      assert_int_equal(
          wr_routes_apply(b.t, bl[i].enc[k], bl[i].len[k], 1000), k < 3 && i < 4);
  wr_routes_get_stats(b.t, &s);
  assert_int_equal(s.entries, 4 * 3);
  assert_int_equal(s.owners, 4 + 1); /* and ourselves */
  assert_int_equal(s.unknown_drops, 12 * 10 - 4 * 3);
  /* A known owner is held to its own quota only. */
  for (k = 0; k < 20; k++)
    assert_int_equal(wr_routes_apply(b.t, hb.enc[k], hb.len[k], 1001), 1);
  /* Membership reports fake-0 (alive) and fake-7: their logs come whole
   * by sync, within the quota of known owners. */
  fake_known[0] = fake_known[7] = 1;
  wr_routes_owner_state(b.t, "fake-0", WR_ROUTE_OWNER_LIVE, 1002);
  wr_routes_owner_state(b.t, "fake-7", WR_ROUTE_OWNER_LIVE, 1002);
  assert_int_equal(tn_sync(fake[0].t, b.t, 1003, NULL), 0);
  assert_int_equal(tn_sync(fake[7].t, b.t, 1004, NULL), 0);
  wr_routes_get_stats(b.t, &s);
  assert_int_equal(s.entries, 3 * 3 + 10 + 20 + 10);
  /* The unknown owners' logs are collected like any dead owner's (here
   * after 10 s); then they no longer count, and others may come. */
  wr_routes_tick(b.t, 1000 + 10000);
  wr_routes_tick(b.t, wr_routes_deadline(b.t));
  wr_routes_get_stats(b.t, &s);
  assert_int_equal(s.entries, 10 + 20 + 10);
  for (i = 8; i < 12; i++)
    for (k = 0; k < 10; k++)
      assert_int_equal(wr_routes_apply(b.t, bl[i].enc[k], bl[i].len[k],
                                       30000),
                       k < 3);
  for (i = 0; i < 12; i++) wr_routes_del(fake[i].t);
  wr_routes_del(honest.t);
  wr_routes_del(b.t);
}

static void test_config_set(void **st) {
  wr_routes_config cfg;
  char err[200];
  (void)st;
  wr_routes_config_default(&cfg);
  assert_int_equal(wr_routes_config_set(&cfg, "owner-max-entries", "50000",
                                        err, sizeof err), 0);
  assert_int_equal(cfg.max_per_owner, 50000);
  assert_int_equal(wr_routes_config_set(&cfg, "owner_rate", "0", err,
                                        sizeof err), 0);
  assert_int_equal(cfg.owner_rate, 0);
  assert_int_equal(wr_routes_config_set(&cfg, "owner-max-bytes", "4194304",
                                        err, sizeof err), 0);
  assert_int_equal(cfg.max_owner_bytes, 4194304);
  assert_int_equal(wr_routes_config_set(&cfg, "owner-burst", "0", err,
                                        sizeof err), WR_ERR_INVAL);
  assert_non_null(strstr(err, "owner-burst wants a number 1.."));
  assert_int_equal(wr_routes_config_set(&cfg, "ingest-max", "12x", err,
                                        sizeof err), WR_ERR_INVAL);
  assert_int_equal(wr_routes_config_set(&cfg, "ingest-max",
                                        "99999999999999999999999", err,
                                        sizeof err), WR_ERR_INVAL);
  assert_int_equal(wr_routes_config_set(&cfg, "ingest-max", "", err,
                                        sizeof err), WR_ERR_INVAL);
  assert_int_equal(wr_routes_config_set(&cfg, "nope", "1", err, sizeof err),
                   WR_ERR_INVAL);
  assert_non_null(strstr(err, "unknown routes setting 'nope'"));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_rate_bucket),
      cmocka_unit_test(test_rate_drop_sync_converges),
      cmocka_unit_test(test_ingest_bounded),
      cmocka_unit_test(test_ingest_flood_spares_others),
      cmocka_unit_test(test_owner_quotas),
      cmocka_unit_test(test_made_up_owners),
      cmocka_unit_test(test_config_set),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
