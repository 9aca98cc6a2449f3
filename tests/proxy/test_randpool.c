/*
 * Tests for src/proxy/randpool.c: one seed per refill (one OS call per
 * 4 KiB), the bytes are the seed's ChaCha20 expansion, each pool byte is
 * handed out once and wiped, and requests larger than the pool work.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>
#include <sodium.h>

#include "../../src/proxy/randpool.h"

typedef struct seeder {
  unsigned calls;
} seeder;

/* Seed k is 32 bytes of the value k: predictable, so the output can be
 * checked against randombytes_buf_deterministic. */
static void fake_seed(uint8_t seed[WR_RANDPOOL_SEED], void *ud) {
  seeder *s = ud;
  s->calls++;
  memset(seed, (int)s->calls, WR_RANDPOOL_SEED);
}

static void expected(unsigned k, uint8_t *out, size_t len) {
  uint8_t seed[WR_RANDPOOL_SEED];
  memset(seed, (int)k, sizeof seed);
  randombytes_buf_deterministic(out, len, seed);
}

static void test_one_seed_per_refill(void **state) {
  (void)state;
  static wr_randpool p;
  seeder sd = {0};
  wr_randpool_init(&p, fake_seed, &sd);
  assert_int_equal(sd.calls, 0); /* lazy: nothing until the first draw */
  static uint8_t want[2 * WR_RANDPOOL_BYTES];
  expected(1, want, WR_RANDPOOL_BYTES);
  expected(2, want + WR_RANDPOOL_BYTES, WR_RANDPOOL_BYTES);
  /* 512 ids of 16 bytes: two refills, two seeds. */
  for (size_t i = 0; i < 512; i++) {
    uint8_t id[16];
    wr_randpool_fill(id, sizeof id, &p);
    assert_memory_equal(id, want + 16 * i, 16);
  }
  assert_int_equal(sd.calls, 2);
  assert_int_equal(p.refills, 2);
  /* Everything handed out is wiped from the pool. */
  static const uint8_t zero[WR_RANDPOOL_BYTES];
  assert_memory_equal(p.buf, zero, sizeof zero);
}

static void test_no_straddle(void **state) {
  (void)state;
  static wr_randpool p;
  seeder sd = {0};
  wr_randpool_init(&p, fake_seed, &sd);
  uint8_t a[4000], b[200];
  wr_randpool_fill(a, sizeof a, &p);
  /* 96 bytes left: a 200-byte draw comes from a fresh refill. */
  wr_randpool_fill(b, sizeof b, &p);
  static uint8_t want[WR_RANDPOOL_BYTES];
  expected(2, want, sizeof want);
  assert_memory_equal(b, want, sizeof b);
  assert_int_equal(sd.calls, 2);
}

static void test_large_request(void **state) {
  (void)state;
  static wr_randpool p;
  seeder sd = {0};
  wr_randpool_init(&p, fake_seed, &sd);
  static uint8_t big[3 * WR_RANDPOOL_BYTES], want[3 * WR_RANDPOOL_BYTES];
  wr_randpool_fill(big, sizeof big, &p);
  expected(1, want, sizeof want);
  assert_memory_equal(big, want, sizeof want);
  assert_int_equal(p.off, WR_RANDPOOL_BYTES); /* the pool is untouched */
}

/* The default seed is the OS: two pools differ. */
static void test_os_seed(void **state) {
  (void)state;
  static wr_randpool p, q;
  wr_randpool_init(&p, NULL, NULL);
  wr_randpool_init(&q, NULL, NULL);
  uint8_t a[32], b[32];
  wr_randpool_fill(a, sizeof a, &p);
  wr_randpool_fill(b, sizeof b, &q);
  assert_memory_not_equal(a, b, sizeof a);
}

int main(void) {
  if (sodium_init() < 0) return 1;
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_one_seed_per_refill),
      cmocka_unit_test(test_no_straddle),
      cmocka_unit_test(test_large_request),
      cmocka_unit_test(test_os_seed),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
