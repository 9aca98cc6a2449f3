/* Unit tests for the SWIM core's member state machine, driven on the small
 * virtual-time network in swim_net.h. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "swim_net.h"
#include "warren/err.h"

static net nt;

static void all_see(int n, int j, int state) {
  for (int i = 0; i < n; i++)
    if (i != j && !nt.down[i]) {
      if (net_state(&nt, i, j) != state)
        fail_msg("n%d sees n%d as %d, want %d", i, j, net_state(&nt, i, j),
                 state);
    }
}

static void test_quiet_fleet_stays_alive(void **state) {
  (void)state;
  net_init(&nt, 8, NULL);
  net_boot(&nt);
  net_run(&nt, nt.now + 60000);
  for (int j = 0; j < 8; j++) all_see(8, j, WR_SWIM_ALIVE);
  wr_swim_stats st;
  wr_swim_get_stats(nt.sw[0], &st);
  assert_true(st.probes >= 55 && st.probes <= 61); /* one per second */
  assert_int_equal(st.suspicions, 0);
  assert_int_equal(st.awareness, 0);
  assert_int_equal(st.rx_malformed + st.rx_badseal + st.rx_foreign, 0);
  net_free(&nt);
}

static void test_kill_detected_by_all(void **state) {
  (void)state;
  net_init(&nt, 8, NULL);
  net_boot(&nt);
  net_run(&nt, nt.now + 5000);
  nt.down[3] = 1;
  wr_tstamp killed = nt.now;
  /* Probe round + the longest suspicion (6 x 2 x log10(8) floor 1 s),
   * well inside dead_reap (30 s), so the verdict is still visible. */
  net_run(&nt, killed + 8 * 1000 + 12000 + 2000);
  all_see(8, 3, WR_SWIM_DEAD);
  for (int i = 0; i < 8; i++) {
    if (i == 3) continue;
    for (int j = 0; j < 8; j++)
      if (j != 3 && j != i) assert_int_equal(net_state(&nt, i, j), WR_SWIM_ALIVE);
    assert_int_equal(nt.dead_events[i][3], 1);
  }
  net_free(&nt);
}

static void test_leave_is_left_never_dead(void **state) {
  (void)state;
  net_init(&nt, 6, NULL);
  net_boot(&nt);
  net_run(&nt, nt.now + 3000);
  assert_int_equal(wr_swim_leave(nt.sw[2], nt.now), 0);
  net_drain(&nt, 2);
  net_run(&nt, nt.now + 1000); /* the leaver keeps gossiping briefly */
  nt.down[2] = 1;
  net_run(&nt, nt.now + 40000);
  for (int i = 0; i < 6; i++) {
    if (i == 2) continue;
    /* Reaped after dead_reap_ms, or still LEFT; never DEAD. */
    int s = net_state(&nt, i, 2);
    assert_true(s == WR_SWIM_LEFT || s == -1);
    assert_int_equal(nt.dead_events[i][2], 0);
    assert_int_equal(nt.state[i][2], WR_SWIM_LEFT);
  }
  net_free(&nt);
}

/* A false accusation reaches the accused, which outbids it. */
static void test_suspect_refuted(void **state) {
  (void)state;
  net_init(&nt, 5, NULL);
  net_boot(&nt);
  net_run(&nt, nt.now + 2000);
  /* n0's outbound vanishes for a while (shorter than the minimum
   * suspicion, 2 s): n0 cannot get acks, suspects whoever it probes, and
   * its awareness rises; others suspect n0, which must refute. */
  nt.mute_out[0] = 1;
  net_run(&nt, nt.now + 1800);
  nt.mute_out[0] = 0;
  net_run(&nt, nt.now + 30000);
  for (int j = 0; j < 5; j++) all_see(5, j, WR_SWIM_ALIVE);
  int refuted = 0;
  for (int i = 1; i < 5; i++) {
    wr_swim_stats st;
    wr_swim_get_stats(nt.sw[i], &st);
    refuted += st.incarnation > 0;
  }
  wr_swim_stats s0;
  wr_swim_get_stats(nt.sw[0], &s0);
  assert_true(s0.probe_failures >= 1);
  assert_true(refuted >= 1 || s0.incarnation > 0);
  for (int i = 0; i < 5; i++)
    for (int j = 0; j < 5; j++) assert_int_equal(nt.dead_events[i][j], 0);
  net_free(&nt);
}

static void test_restart_same_id_comes_back_higher(void **state) {
  (void)state;
  net_init(&nt, 6, NULL);
  net_boot(&nt);
  net_run(&nt, nt.now + 2000);
  nt.down[4] = 1;
  net_run(&nt, nt.now + 20000);
  all_see(6, 4, WR_SWIM_DEAD);
  wr_swim_member_info m;
  assert_int_equal(wr_swim_member_find(nt.sw[0], "n4", &m), 0);
  uint32_t dead_inc = m.incarnation;
  /* A new process, same id, knows nobody; joins through n0 (and pulls
   * n0's view by sync, as the daemon does). */
  nt.auto_sync = 1;
  wr_swim_del(nt.sw[4]);
  net_start(&nt, 4, 0);
  wr_addr seed = net_addr(0);
  assert_int_equal(wr_swim_join(nt.sw[4], &seed, 1, nt.now), 0);
  net_drain(&nt, 4);
  net_run(&nt, nt.now + 10000);
  all_see(6, 4, WR_SWIM_ALIVE);
  assert_int_equal(wr_swim_member_find(nt.sw[1], "n4", &m), 0);
  assert_true(m.incarnation > dead_inc);
  net_free(&nt);
}

static void test_user_broadcast_reaches_all(void **state) {
  (void)state;
  net_init(&nt, 10, NULL);
  net_boot(&nt);
  net_run(&nt, nt.now + 2000);
  const uint8_t payload[] = "app->n5";
  assert_int_equal(wr_swim_broadcast_user(nt.sw[5], "route/app", 1, payload,
                                          sizeof payload, nt.now), 0);
  nt.user_seen[5] = 1;
  net_drain(&nt, 5);
  net_run(&nt, nt.now + 3000);
  for (int i = 0; i < 10; i++) assert_int_equal(nt.user_seen[i], 1);
  net_free(&nt);
}

static void test_garbage_changes_nothing(void **state) {
  (void)state;
  net_init(&nt, 3, NULL);
  net_boot(&nt);
  uint8_t junk[64];
  memset(junk, 0xab, sizeof junk);
  wr_addr from = net_addr(1);
  for (size_t l = 0; l <= sizeof junk; l++)
    assert_int_equal(wr_swim_recv(nt.sw[0], &from, junk, l, nt.now), 0);
  static uint8_t big[WR_SWIM_DATAGRAM_MAX + 1];
  assert_int_equal(wr_swim_recv(nt.sw[0], &from, big, sizeof big, nt.now), 0);
  wr_swim_stats st;
  wr_swim_get_stats(nt.sw[0], &st);
  assert_int_equal(st.rx_oversize, 1);
  assert_int_equal(st.rx_malformed + st.rx_version, sizeof junk + 1);
  assert_int_equal(wr_swim_member_count(nt.sw[0]), 2);
  net_free(&nt);
}

/* A fresh fleet forms from seeds alone: join probe, then a sync. */
static void test_join_through_seed_and_sync(void **state) {
  (void)state;
  net_init(&nt, 8, NULL);
  nt.auto_sync = 1;
  for (int i = 0; i < 8; i++) net_start(&nt, i, 0);
  wr_addr seed = net_addr(0);
  for (int i = 1; i < 8; i++) {
    assert_int_equal(wr_swim_join(nt.sw[i], &seed, 1, nt.now), 0);
    net_drain(&nt, i);
    net_run(&nt, nt.now + 50);
  }
  /* One probe round (7 members, 1 s each) plus slack: a member that
   * missed a joiner's gossip learns it when the joiner first probes it. */
  net_run(&nt, nt.now + 9000);
  for (int i = 0; i < 8; i++) {
    assert_int_equal(wr_swim_member_count(nt.sw[i]), 7);
    for (int j = 0; j < 8; j++)
      if (j != i) assert_int_equal(net_state(&nt, i, j), WR_SWIM_ALIVE);
  }
  wr_swim_stats st;
  wr_swim_get_stats(nt.sw[7], &st);
  assert_true(st.syncs_ok >= 1);
  net_free(&nt);
}

/* Sync repairs what gossip lost, and a corrupted stream fails cleanly. */
static void test_sync_repairs_and_rejects_corruption(void **state) {
  (void)state;
  static wr_swim_keyring kr;
  uint8_t key[32];
  memset(key, 0x5a, sizeof key);
  wr_swim_keyring_init(&kr);
  assert_int_equal(wr_swim_keyring_add(&kr, key, 1), 0);
  net_init(&nt, 6, NULL);
  for (int i = 0; i < 6; i++) nt.kr[i] = &kr; /* sealed streams */
  net_boot(&nt);
  net_run(&nt, nt.now + 2000);
  /* n5 drops off n1's view only (as if every update about it was lost). */
  wr_swim_del(nt.sw[1]);
  net_start(&nt, 1, 0);
  wr_addr a0 = net_addr(0);
  wr_swim_add_member(nt.sw[1], "n0", &a0, NULL, 0, nt.now);
  assert_int_equal(wr_swim_member_count(nt.sw[1]), 1);
  /* A single-bit flip anywhere in n1's digest frame (4 + 45 + 7 + two
   * entries of 8 bytes) fails the session and changes nothing. */
  for (size_t flip = 0; flip < 4 + 45 + 7 + 16; flip += 3)
    assert_int_equal(net_sync(&nt, 1, 0, flip), -1);
  assert_int_equal(wr_swim_member_count(nt.sw[1]), 1);
  assert_int_equal(net_sync(&nt, 1, 0, SIZE_MAX), 0);
  assert_int_equal(wr_swim_member_count(nt.sw[1]), 5);
  wr_swim_stats st;
  wr_swim_get_stats(nt.sw[1], &st);
  assert_int_equal(st.syncs_ok, 1);
  assert_true(st.syncs_failed >= 20);
  assert_int_equal(st.rx_badseal, 0); /* streams are not datagrams */
  net_free(&nt);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_quiet_fleet_stays_alive),
      cmocka_unit_test(test_kill_detected_by_all),
      cmocka_unit_test(test_leave_is_left_never_dead),
      cmocka_unit_test(test_suspect_refuted),
      cmocka_unit_test(test_restart_same_id_comes_back_higher),
      cmocka_unit_test(test_user_broadcast_reaches_all),
      cmocka_unit_test(test_garbage_changes_nothing),
      cmocka_unit_test(test_join_through_seed_and_sync),
      cmocka_unit_test(test_sync_repairs_and_rejects_corruption),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
