/*
 * The client's node choice (src/tunnel/pick.c) with virtual time and a
 * seeded PCG: distinct nodes per slot, rotation, the jittered back-off
 * and its cap, a bind resetting the streak, GOAWAY keeping a node out,
 * list replacement keeping state and held nodes.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "warren/err.h"
#include "warren/pcg.h"
#include "warren/pick.h"

static wr_pcg32 rng;

static void setup(wr_pick *p, size_t n) {
  static char addrs[WR_PICK_MAX][WR_PICK_ADDR_MAX];
  const char *list[WR_PICK_MAX];
  wr_pcg32_seed(&rng, 42, 7);
  wr_pick_init(p, wr_pcg32_fill, &rng);
  for (size_t i = 0; i < n; i++) {
    snprintf(addrs[i], sizeof addrs[i], "127.0.0.%zu:8080", i + 1);
    list[i] = addrs[i];
  }
  assert_int_equal(wr_pick_set(p, list, n), 0);
}

static void test_distinct_and_rotating(void **state) {
  (void)state;
  wr_pick p;
  setup(&p, 3);
  char a[WR_PICK_ADDR_MAX], b[WR_PICK_ADDR_MAX], c[WR_PICK_ADDR_MAX];
  wr_tstamp at;
  assert_int_equal(wr_pick_choose(&p, 0, 1000, a, &at), 0);
  assert_int_equal(at, 1000);
  assert_int_equal(wr_pick_choose(&p, 1, 1000, b, &at), 0);
  assert_string_not_equal(a, b);
  assert_int_equal(wr_pick_free(&p), 1);
  /* Slot 0 lets go without failing: rotation hands out the third node
   * first, not the one just released. */
  wr_pick_done(&p, a, WR_PICK_RELEASE, 1000);
  assert_int_equal(wr_pick_choose(&p, 0, 1000, c, &at), 0);
  assert_string_not_equal(c, a);
  assert_string_not_equal(c, b);
  /* Every node held: nothing for a third slot. */
  assert_int_equal(wr_pick_choose(&p, 2, 1000, a, &at), 0); /* a is free */
  assert_int_equal(wr_pick_choose(&p, 3, 1000, a, &at), -1);
}

static void test_failure_moves_and_backs_off(void **state) {
  (void)state;
  wr_pick p;
  setup(&p, 3);
  char a[WR_PICK_ADDR_MAX], b[WR_PICK_ADDR_MAX], n[WR_PICK_ADDR_MAX];
  wr_tstamp at, now = 5000;
  assert_int_equal(wr_pick_choose(&p, 0, now, a, &at), 0);
  assert_int_equal(wr_pick_choose(&p, 1, now, b, &at), 0);
  /* Slot 0's node dies: its next node is the free one, at once. */
  wr_pick_done(&p, a, WR_PICK_FAILED, now);
  assert_int_equal(wr_pick_choose(&p, 0, now, n, &at), 0);
  assert_string_not_equal(n, a);
  assert_string_not_equal(n, b);
  assert_int_equal(at, now);
  /* That one fails too: only the first is free, and it is backing off
   * 125-250 ms (streak 1: d = 250, half fixed, half random). */
  wr_pick_done(&p, n, WR_PICK_FAILED, now);
  char m[WR_PICK_ADDR_MAX];
  assert_int_equal(wr_pick_choose(&p, 0, now, m, &at), 0);
  /* n failed at the same instant with the same streak: either comes
   * back first; both within the window. */
  assert_true(at >= now + 125 && at <= now + 250);
}

static void test_backoff_doubles_to_cap(void **state) {
  (void)state;
  assert_int_equal(wr_pick_backoff(1), 250);
  assert_int_equal(wr_pick_backoff(2), 500);
  assert_int_equal(wr_pick_backoff(3), 1000);
  assert_int_equal(wr_pick_backoff(8), 30000);
  assert_int_equal(wr_pick_backoff(1000000), 30000);
  /* One node, failing again and again: each retry within [d/2, d] of the
   * failure, d doubling to the cap; a bind resets the streak. */
  wr_pick p;
  setup(&p, 1);
  char a[WR_PICK_ADDR_MAX];
  wr_tstamp at, now = 0;
  assert_int_equal(wr_pick_choose(&p, 0, now, a, &at), 0);
  for (uint32_t k = 1; k <= 12; k++) {
    wr_pick_done(&p, a, WR_PICK_FAILED, now);
    assert_int_equal(wr_pick_choose(&p, 0, now, a, &at), 0);
    uint64_t d = wr_pick_backoff(k);
    assert_true(at >= now + d / 2 && at <= now + d);
    now = at;
  }
  wr_pick_done(&p, a, WR_PICK_BOUND, now);
  wr_pick_done(&p, a, WR_PICK_FAILED, now);
  assert_int_equal(wr_pick_choose(&p, 0, now, a, &at), 0);
  assert_true(at >= now + 125 && at <= now + 250);
}

static void test_drained_kept_out(void **state) {
  (void)state;
  wr_pick p;
  setup(&p, 2);
  char a[WR_PICK_ADDR_MAX], b[WR_PICK_ADDR_MAX];
  wr_tstamp at, now = 100;
  assert_int_equal(wr_pick_choose(&p, 0, now, a, &at), 0);
  wr_pick_done(&p, a, WR_PICK_BOUND, now);
  /* GOAWAY: the draining link lives on, so the node stays held; the
   * slot's replacement goes to the other node. */
  wr_pick_done(&p, a, WR_PICK_DRAINED, now);
  assert_int_equal(wr_pick_choose(&p, 0, now, b, &at), 0);
  assert_string_not_equal(a, b);
  assert_int_equal(at, now);
  assert_int_equal(wr_pick_free(&p), 0);
  /* The draining link closes: free again, but not before the drain's
   * hold-out, even after a quick failure of its own. */
  wr_pick_done(&p, a, WR_PICK_RELEASE, now + 50);
  wr_pick_done(&p, b, WR_PICK_FAILED, now + 50);
  char c[WR_PICK_ADDR_MAX];
  assert_int_equal(wr_pick_choose(&p, 0, now + 50, c, &at), 0);
  assert_string_equal(c, b); /* back in <= 250 ms, before a's 10 s */
  wr_pick_done(&p, c, WR_PICK_RELEASE, now + 50);
  wr_pick_done(&p, b, WR_PICK_RELEASE, now + 50);
  /* With b held elsewhere, a is handed out at its drain's end. */
  assert_int_equal(wr_pick_choose(&p, 1, now + 50, c, &at), 0);
  if (strcmp(c, b) == 0)
    assert_int_equal(wr_pick_choose(&p, 0, now + 50, c, &at), 0);
  assert_string_equal(c, a);
  assert_int_equal(at, now + WR_PICK_DRAIN_MS);
}

static void test_set_keeps_state_and_held(void **state) {
  (void)state;
  wr_pick p;
  setup(&p, 3);
  char a[WR_PICK_ADDR_MAX], x[WR_PICK_ADDR_MAX];
  wr_tstamp at, now = 0;
  /* Hold node 1 (slot 0), fail node 2's only try. */
  assert_int_equal(wr_pick_choose(&p, 0, now, a, &at), 0);
  assert_string_equal(a, "127.0.0.1:8080");
  assert_int_equal(wr_pick_choose(&p, 1, now, x, &at), 0);
  assert_string_equal(x, "127.0.0.2:8080");
  wr_pick_done(&p, x, WR_PICK_FAILED, now);
  /* DNS now answers 2, 4 and 4 again: 1 stays while held, 3 goes, 2
   * keeps its back-off, 4 is new and ready. */
  const char *next[] = {"127.0.0.2:8080", "127.0.0.4:8080", "127.0.0.4:8080"};
  assert_int_equal(wr_pick_set(&p, next, 3), 0);
  assert_int_equal(p.n, 3);
  assert_int_equal(wr_pick_free(&p), 2);
  assert_int_equal(wr_pick_choose(&p, 1, now, x, &at), 0);
  assert_string_equal(x, "127.0.0.4:8080");
  assert_int_equal(at, now);
  /* Node 1 let go: it left the list, so it is gone for good. */
  wr_pick_done(&p, a, WR_PICK_RELEASE, now);
  assert_int_equal(p.n, 2);
  assert_int_equal(wr_pick_choose(&p, 0, now, x, &at), 0);
  assert_string_equal(x, "127.0.0.2:8080");
  assert_true(at > now); /* its back-off survived the new list */
  /* Bad lists change nothing. */
  char longaddr[WR_PICK_ADDR_MAX + 8];
  memset(longaddr, '1', sizeof longaddr - 1);
  longaddr[sizeof longaddr - 1] = 0;
  const char *bad[] = {longaddr};
  assert_int_equal(wr_pick_set(&p, bad, 1), WR_ERR_INVAL);
  static char many[WR_PICK_MAX + 1][WR_PICK_ADDR_MAX];
  const char *lots[WR_PICK_MAX + 1];
  for (int i = 0; i <= WR_PICK_MAX; i++) {
    snprintf(many[i], sizeof many[i], "10.0.%d.1:80", i);
    lots[i] = many[i];
  }
  assert_int_equal(wr_pick_set(&p, lots, WR_PICK_MAX + 1), WR_ERR_INVAL);
  assert_int_equal(p.n, 2);
  /* An unknown address is ignored. */
  wr_pick_done(&p, "10.9.9.9:1", WR_PICK_FAILED, now);
  assert_int_equal(p.n, 2);
}

static void test_empty(void **state) {
  (void)state;
  wr_pick p;
  wr_pick_init(&p, wr_pcg32_fill, &rng);
  char a[WR_PICK_ADDR_MAX];
  wr_tstamp at;
  assert_int_equal(wr_pick_choose(&p, 0, 0, a, &at), -1);
  assert_int_equal(wr_pick_free(&p), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_distinct_and_rotating),
      cmocka_unit_test(test_failure_moves_and_backs_off),
      cmocka_unit_test(test_backoff_doubles_to_cap),
      cmocka_unit_test(test_drained_kept_out),
      cmocka_unit_test(test_set_keeps_state_and_held),
      cmocka_unit_test(test_empty),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
