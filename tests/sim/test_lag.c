/*
 * Unit tests of warren-sim's refutation-lag table (tools/warren-sim/lag.c):
 * random suspicions, refutations and verdicts over a small set of
 * (observer, member) pairs, checked against a plain array, so that the
 * open-addressing table's growth and backward-shift deletion lose or
 * invent nothing; then the quantiles and threshold counts of known lags.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "sim_int.h"

#define OBS 40
#define SUBJ 60

/* The reference: when each pair began to be suspected, 0 = not. */
static uint64_t ref[OBS][SUBJ];

static void test_against_reference(void **state) {
  (void)state;
  memset(ref, 0, sizeof ref);
  sim_lag *l = sim_lag_new(2000);
  assert_non_null(l);
  wr_pcg32 g;
  wr_pcg32_seed(&g, 14, 3);
  uint64_t now = 1, count = 0, max = 0, over = 0;
  /* 200,000 steps over 2,400 pairs: the table grows past its first
   * 1,024 slots and deletes in every cluster shape. */
  for (int step = 0; step < 200000; step++) {
    now += wr_pcg32_bounded(&g, 5);
    uint32_t o = wr_pcg32_bounded(&g, OBS), m = wr_pcg32_bounded(&g, SUBJ);
    switch (wr_pcg32_bounded(&g, 3)) {
    case 0:
      sim_lag_suspect(l, o, m, now);
      ref[o][m] = now;
      break;
    case 1:
      sim_lag_alive(l, o, m, now);
      if (ref[o][m]) {
        uint64_t d = now - ref[o][m];
        count++;
        if (d > max) max = d;
        if (d > 2000) over++;
        ref[o][m] = 0;
      }
      break;
    default:
      sim_lag_gone(l, o, m);
      ref[o][m] = 0;
    }
  }
  sim_result r;
  memset(&r, 0, sizeof r);
  sim_lag_result(l, &r);
  assert_int_equal(r.lag_count, count);
  assert_int_equal(r.lag_max_ms, (int64_t)max);
  assert_int_equal(r.lag_over_min, over);
  assert_int_equal(r.lag_lost, 0);
  assert_int_equal(r.lag_min_ms, 2000);
  /* Every pair still open in the reference is still open in the table:
   * refuting all of them now adds exactly that many lags. */
  uint64_t open = 0;
  for (uint32_t o = 0; o < OBS; o++)
    for (uint32_t m = 0; m < SUBJ; m++)
      if (ref[o][m]) {
        open++;
        sim_lag_alive(l, o, m, now);
      }
  memset(&r, 0, sizeof r);
  sim_lag_result(l, &r);
  assert_int_equal(r.lag_count, count + open);
  sim_lag_free(l);
}

/* 1,000 lags of 10, 20, ... 10,000 ms: the quantiles are the upper edges
 * of their 10 ms buckets, and the threshold counts are exact. */
static void test_quantiles(void **state) {
  (void)state;
  sim_lag *l = sim_lag_new(2500);
  assert_non_null(l);
  for (uint32_t i = 0; i < 1000; i++) {
    sim_lag_suspect(l, i, 7, 100000);
    sim_lag_alive(l, i, 7, 100000 + 10 * ((uint64_t)i + 1));
  }
  /* A refutation of a pair never suspected counts nothing. */
  sim_lag_alive(l, 5000, 7, 200000);
  sim_result r;
  memset(&r, 0, sizeof r);
  sim_lag_result(l, &r);
  assert_int_equal(r.lag_count, 1000);
  assert_int_equal(r.lag_p50_ms, 5010);
  assert_int_equal(r.lag_p99_ms, 9910);
  assert_int_equal(r.lag_max_ms, 10000);
  assert_int_equal(r.lag_over_min, 750); /* 2,510 .. 10,000 */
  for (int t = 0; t < SIM_LAG_THRESHOLDS; t++)
    assert_int_equal(r.lag_over[t],
                     1000 - sim_lag_thresholds_ms[t] / 10 + 1);
  sim_lag_free(l);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_against_reference),
      cmocka_unit_test(test_quantiles),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
