/*
 * Scale tests: memory per entry at 100,000 names (a counting allocator),
 * and the cost of anti-entropy between two converged tables after k
 * changes, which must be O(k) records however large the table is.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "routes_net.h"

/* ---- counting allocator --------------------------------------------------
 * Counts the bytes asked for and the live allocations.  glibc adds 8 bytes
 * of header to each chunk and rounds to 16, so "with overhead" below
 * charges 16 bytes per live allocation on top of the bytes asked for: an
 * honest figure for the RSS the table costs. */
typedef struct counting {
  wr_mem mem;
  size_t bytes, allocs;
} counting;

typedef union chdr {
  size_t size;
  max_align_t align;
} chdr;

static void *c_malloc(size_t n, void *u) {
  counting *c = u;
  chdr *h = malloc(sizeof *h + n);
  if (!h) return NULL;
  h->size = n;
  c->bytes += n;
  c->allocs++;
  return h + 1;
}
static void c_free(void *p, void *u) {
  counting *c = u;
  chdr *h;
  if (!p) return;
  h = (chdr *)p - 1;
  c->bytes -= h->size;
  c->allocs--;
  free(h);
}
static void *c_calloc(size_t m, size_t n, void *u) {
  void *p = c_malloc(m * n, u);
  if (p) memset(p, 0, m * n);
  return p;
}
static void *c_realloc(void *p, size_t n, void *u) {
  counting *c = u;
  chdr *h;
  if (!p) return c_malloc(n, u);
  h = (chdr *)p - 1;
  size_t old = h->size;
  h = realloc(h, sizeof *h + n);
  if (!h) return NULL;
  c->bytes = c->bytes - old + n;
  h->size = n;
  return h + 1;
}

static void test_memory_per_entry(void **st) {
  counting c = {{NULL, c_malloc, c_free, c_calloc, c_realloc}, 0, 0};
  wr_routes_config cfg;
  wr_routes *t, *peers[9];
  wr_pcg32 g, names;
  size_t base_bytes, base_allocs, i;
  uint8_t enc[WR_ROUTE_ENCODED_MAX];
  size_t enclen;
  wr_routes_stats s;
  (void)st;
  c.mem.user_data = &c;
  wr_pcg32_seed(&g, 11, 11);
  wr_pcg32_seed(&names, 12, 12);
  tn_config(&cfg, "edge-node-00.example.internal", 1700000000000ull, &g);
  /* What an entry costs, not what a node accepts of one owner by default
   * (10,000 entries, 2 MiB, 500 a second): those limits are off here. */
  cfg.max_per_owner = 1000000;
  cfg.max_owner_bytes = SIZE_MAX;
  cfg.owner_rate = 0;
  assert_int_equal(wr_routes_new(&t, &cfg, NULL, &c.mem, NULL, 0), 0);
  base_bytes = c.bytes;
  base_allocs = c.allocs;
  /* 100,000 names spread over 10 owners (us and 9 peers whose entries
   * arrive as gossip), 2,000 accounts; names like "quiet-otter-4821". */
  for (i = 0; i < 9; i++) {
    wr_routes_config pc = cfg;
    snprintf(pc.self, sizeof pc.self, "edge-node-%02zu.example.internal", i + 1);
    assert_int_equal(wr_routes_new(&peers[i], &pc, NULL, NULL, NULL, 0), 0);
  }
  for (i = 0; i < 100000; i++) {
    char name[32], acct[32];
    uint8_t sess[WR_ROUTE_SESSION_LEN];
    size_t o = i % 10;
    snprintf(name, sizeof name, "word%u-word%u-%04zu",
             wr_pcg32_bounded(&names, 64), wr_pcg32_bounded(&names, 64), i);
    snprintf(acct, sizeof acct, "acct-%05u", wr_pcg32_bounded(&names, 2000));
    wr_pcg32_fill(sess, sizeof sess, &names);
    if (o == 0) {
      assert_int_equal(
          wr_routes_bind(t, name, acct, sess, 0, enc, &enclen, 1), 0);
    } else {
      assert_int_equal(
          wr_routes_bind(peers[o - 1], name, acct, sess, 0, enc, &enclen, 1), 0);
      assert_int_equal(wr_routes_apply(t, enc, enclen, 1), 1);
    }
  }
  wr_routes_get_stats(t, &s);
  assert_int_equal(s.entries, 100000);
  assert_int_equal(wr_routes_count(t), 100000);
  double per = (double)(c.bytes - base_bytes) / (double)s.entries;
  double with_ovh = (double)(c.bytes - base_bytes +
                             16 * (c.allocs - base_allocs)) / (double)s.entries;
  fprintf(stderr, "memory: %zu entries, %.1f bytes/entry asked for, %.1f "
          "with 16 bytes of malloc overhead per allocation (%zu allocations)\n",
          s.entries, per, with_ovh, c.allocs - base_allocs);
  assert_true(with_ovh <= 256.0);
  wr_routes_del(t);
  for (i = 0; i < 9; i++) wr_routes_del(peers[i]);
  assert_int_equal(c.bytes, 0);
  assert_int_equal(c.allocs, 0);
}

/* Builds a (source) with n names, b converged with it, then k changes at
 * a (binds, rebinds, releases) that b does not hear by gossip; returns
 * the records (and bytes) the next sync moves, both directions. */
static void unlimited(tnode *n, const char *id, uint64_t epoch, wr_pcg32 *g) {
  wr_routes_config cfg;
  tn_config(&cfg, id, epoch, g);
  cfg.max_per_owner = 1000000;
  cfg.max_owner_bytes = SIZE_MAX;
  cfg.owner_rate = 0;
  assert_int_equal(tn_init_cfg(n, &cfg, NULL, 0), 0);
}

static void sync_cost(size_t n, size_t k, tn_sync_cost *cost) {
  tnode a, b;
  size_t i;
  uint8_t enc[WR_ROUTE_ENCODED_MAX];
  size_t enclen;
  wr_pcg32 g;
  wr_pcg32_seed(&g, 42, 7);
  /* The cost of a sync, not the per-owner limits: a table of 100,000
   * names of one owner is over them by default. */
  unlimited(&a, "node-a", 100, &g);
  unlimited(&b, "node-b", 200, &g);
  for (i = 0; i < n; i++) {
    char name[32];
    uint8_t sess[WR_ROUTE_SESSION_LEN];
    snprintf(name, sizeof name, "name-%zu", i);
    tn_session(sess, (unsigned)i);
    assert_int_equal(wr_routes_bind(a.t, name, "acct", sess, 0, enc, &enclen, 1),
                     0);
  }
  assert_int_equal(tn_sync(a.t, b.t, 2, NULL), 0);
  for (i = 0; i < k; i++) {
    char name[32];
    uint8_t sess[WR_ROUTE_SESSION_LEN];
    snprintf(name, sizeof name, "name-%zu", (i * 7919) % n);
    tn_session(sess, (unsigned)(i + n));
    if (i % 3 == 2)
      (void)wr_routes_release(a.t, name, enc, &enclen, 3);
    else
      assert_int_equal(
          wr_routes_bind(a.t, name, "acct", sess, 0, enc, &enclen, 3), 0);
  }
  memset(cost, 0, sizeof *cost);
  assert_int_equal(tn_sync(a.t, b.t, 4, cost), 0);
  char *da = tn_dump_table(a.t), *db = tn_dump_table(b.t);
  assert_string_equal(da, db);
  free(da);
  free(db);
  /* Converged: the next sync moves nothing at all. */
  tn_sync_cost again = {0, 0};
  assert_int_equal(tn_sync(a.t, b.t, 5, &again), 0);
  assert_int_equal(again.records, 0);
  wr_routes_del(a.t);
  wr_routes_del(b.t);
}

static void test_sync_cost_flat(void **st) {
  static const size_t sizes[] = {1000, 10000, 100000};
  tn_sync_cost c[3];
  size_t i, k = 30;
  (void)st;
  for (i = 0; i < 3; i++) {
    sync_cost(sizes[i], k, &c[i]);
    fprintf(stderr, "sync cost: %zu names, %zu changes: %zu records, %zu bytes\n",
            sizes[i], k, c[i].records, c[i].bytes);
    /* k entries plus one mark for the one owner concerned. */
    assert_true(c[i].records <= k + 1);
  }
  assert_int_equal(c[0].records, c[2].records);
  /* Bytes grow only with the digits of the names and seqs. */
  assert_true(c[2].bytes <= c[0].bytes + c[0].bytes / 4);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_memory_per_entry),
      cmocka_unit_test(test_sync_cost_flat),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
