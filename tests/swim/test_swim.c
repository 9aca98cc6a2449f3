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

/* USER news is not spent on the dead.  Gossip still goes to members
 * declared dead within gossip_to_dead_ms (so a wrong verdict is heard and
 * refuted), but those sends used to carry, and count against, USER
 * updates' small retransmit budget (4 sends below 10 members): in a fleet
 * of five with two recently dead and one just killed, the last live
 * member missed a route change about one time in four, until a sync. */
static void test_user_news_not_spent_on_dead(void **state) {
  (void)state;
  int missed = 0;
  for (int trial = 0; trial < 40; trial++) {
    net_init(&nt, 5, NULL);
    net_boot(&nt);
    net_run(&nt, nt.now + 2000);
    nt.down[1] = nt.down[3] = 1;
    net_run(&nt, nt.now + 20000);
    assert_int_equal(net_state(&nt, 0, 1), WR_SWIM_DEAD);
    assert_int_equal(net_state(&nt, 0, 3), WR_SWIM_DEAD);
    net_run(&nt, nt.now + (wr_tstamp)(trial * 37));
    nt.down[4] = 1; /* killed, not yet suspected */
    memset(nt.user_seen, 0, sizeof nt.user_seen);
    const uint8_t news[] = "moved";
    assert_int_equal(wr_swim_broadcast_user(nt.sw[0], "route/x", 1, news,
                                            sizeof news, nt.now), 0);
    net_drain(&nt, 0);
    /* Well inside one gossip interval: the relay rounds, not the ticks
     * and not a sync, must have carried it. */
    net_run(&nt, nt.now + 150);
    if (!nt.user_seen[2]) missed++;
    net_free(&nt);
  }
  print_message("live member missed USER news in %d of 40 trials\n",
                missed);
  assert_int_equal(missed, 0);
}

/* How long USER news from n5 takes to reach all 16 members while every
 * queue is busy (an earlier update still being retransmitted), with
 * user_relay_ms = |relay|. */
static wr_tstamp busy_spread_ms(uint64_t relay) {
  wr_swim_config c;
  wr_swim_config_default(&c);
  wr_swim_config_profile(&c, "lan");
  c.user_relay_ms = relay;
  net_init(&nt, 16, &c);
  nt.user_state = 1;
  net_boot(&nt);
  net_run(&nt, nt.now + 2000);
  const uint8_t bg[] = "background", news[] = "news";
  assert_int_equal(net_uset(&nt, 0, "bg", 1, bg, sizeof bg), 1);
  assert_int_equal(wr_swim_broadcast_user(nt.sw[0], "bg", 1, bg, sizeof bg,
                                          nt.now), 0);
  net_drain(&nt, 0);
  net_run(&nt, nt.now + 300);
  wr_tstamp t0 = nt.now;
  assert_int_equal(net_uset(&nt, 5, "news", 1, news, sizeof news), 1);
  assert_int_equal(wr_swim_broadcast_user(nt.sw[5], "news", 1, news,
                                          sizeof news, nt.now), 0);
  net_drain(&nt, 5);
  for (;;) {
    int all = 1;
    for (int i = 0; i < 16; i++)
      if (!net_ufind(&nt.us[i], "news")) all = 0;
    if (all) break;
    if (nt.now - t0 > 5000) fail_msg("news did not reach everyone in 5 s");
    net_run(&nt, nt.now + 1);
  }
  wr_tstamp took = nt.now - t0;
  net_free(&nt);
  return took;
}

/* A node relays USER news within user_relay_ms even while its queue is
 * busy, instead of at its next gossip tick (up to 200 ms a hop). */
static void test_user_news_relayed_at_once(void **state) {
  (void)state;
  wr_tstamp on = busy_spread_ms(10), off = busy_spread_ms(0);
  print_message("busy fleet of 16: news everywhere after %llu ms relayed, "
                "%llu ms on gossip ticks only\n", (unsigned long long)on,
                (unsigned long long)off);
  assert_true(on <= 60);
  assert_true(off > on);
}

/* Membership news survives application churn: while n3 broadcasts 500
 * fresh USER updates every 200 ms (far past its 64-entry USER queue), n7
 * dies, and every member still learns it, in the usual time.  No
 * membership update is evicted anywhere; n3's USER queue evicts plenty. */
static void test_user_flood_keeps_membership(void **state) {
  (void)state;
  wr_swim_config c;
  char err[128];
  wr_swim_config_default(&c);
  assert_int_equal(wr_swim_config_set(&c, "user-queue-max", "64", err,
                                      sizeof err), 0);
  net_init(&nt, 10, &c);
  net_boot(&nt);
  net_run(&nt, nt.now + 2000);
  nt.down[7] = 1;
  wr_tstamp killed = nt.now;
  int k = 0, all = 0;
  while (!all && nt.now < killed + 30000) {
    for (int b = 0; b < 500; b++, k++) {
      char key[32];
      snprintf(key, sizeof key, "route/%d", k);
      assert_int_equal(wr_swim_broadcast_user(nt.sw[3], key, 1,
                                              (const uint8_t *)"x", 1,
                                              nt.now), 0);
    }
    net_drain(&nt, 3);
    net_run(&nt, nt.now + 200);
    all = 1;
    for (int i = 0; i < 10; i++)
      if (i != 7 && net_state(&nt, i, 7) != WR_SWIM_DEAD) all = 0;
  }
  if (!all) fail_msg("n7's death did not reach everyone under USER churn");
  print_message("dead everywhere after %llu ms, %d USER updates\n",
                (unsigned long long)(nt.now - killed), k);
  for (int i = 0; i < 10; i++) {
    if (i == 7) continue;
    wr_swim_stats st;
    wr_swim_get_stats(nt.sw[i], &st);
    assert_int_equal(st.bcast_evicted_member, 0);
    assert_true(st.broadcast_queue_user <= 64);
    if (i == 3) assert_true(st.bcast_evicted_user > (uint64_t)k / 2);
  }
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

/* ---- USER state in anti-entropy ---------------------------------------- */

static int has_version(int i, const char *key, uint64_t version) {
  net_uent *e = net_ufind(&nt.us[i], key);
  return e && e->version == version;
}

/* A node that was deaf while an update spread, and a node that joined
 * after the gossip died down, both get it at their next sync. */
static void test_user_state_missed_update_synced(void **state) {
  (void)state;
  net_init(&nt, 7, NULL);
  nt.user_state = 1;
  nt.auto_sync = 1;
  for (int i = 0; i < 6; i++) net_start(&nt, i, 0);
  for (int i = 0; i < 6; i++)
    for (int j = 0; j < 6; j++)
      if (i != j) {
        char id[8];
        snprintf(id, sizeof id, "n%d", j);
        wr_addr a = net_addr(j);
        wr_swim_add_member(nt.sw[i], id, &a, NULL, 0, nt.now);
      }
  net_run(&nt, nt.now + 2000);
  /* n5 hears nothing for 1.5 s (less than a suspicion), while n2 sets
   * and gossips route/a. */
  nt.group[5] = 1;
  nt.partitioned = 1;
  const char payload[] = "owner=n2";
  assert_int_equal(net_uset(&nt, 2, "route/a", 7, payload, sizeof payload), 1);
  assert_int_equal(wr_swim_broadcast_user(nt.sw[2], "route/a", 7,
                                          (const uint8_t *)payload,
                                          sizeof payload, nt.now), 0);
  net_drain(&nt, 2);
  net_run(&nt, nt.now + 1500);
  nt.partitioned = 0;
  net_run(&nt, nt.now + 3000); /* gossip about it is over by now */
  assert_false(has_version(5, "route/a", 7));
  /* The next periodic sync (30 s, first placed within 15..30 s) that
   * involves n5 carries it (and any other node gossip missed gets it at
   * its own). */
  net_run(&nt, nt.now + 60000);
  for (int i = 0; i < 6; i++) assert_true(has_version(i, "route/a", 7));
  net_uent *e = net_ufind(&nt.us[5], "route/a");
  assert_memory_equal(e->payload, payload, sizeof payload);
  /* A node started now joins through n0 and pulls it with the join
   * sync, long after any gossip of it. */
  net_start(&nt, 6, 0);
  wr_addr seed = net_addr(0);
  assert_int_equal(wr_swim_join(nt.sw[6], &seed, 1, nt.now), 0);
  net_drain(&nt, 6);
  net_run(&nt, nt.now + 500);
  assert_true(has_version(6, "route/a", 7));
  net_free(&nt);
}

/* Digest first, then only what the other side lacks or holds older: a
 * newer version is never overwritten, and equal versions cross nothing. */
static void test_user_state_newer_wins(void **state) {
  (void)state;
  net_init(&nt, 3, NULL);
  nt.user_state = 1;
  net_boot(&nt);
  net_uset(&nt, 0, "k/new-at-0", 5, "five", 4);
  net_uset(&nt, 1, "k/new-at-0", 3, "three", 5);
  net_uset(&nt, 0, "k/new-at-1", 1, "one", 3);
  net_uset(&nt, 1, "k/new-at-1", 9, "nine", 4);
  net_uset(&nt, 0, "k/same", 2, "two", 3);
  net_uset(&nt, 1, "k/same", 2, "two", 3);
  net_uset(&nt, 1, "k/only-1", 1, "x", 1);
  for (int dir = 0; dir < 2; dir++) {
    assert_int_equal(net_sync(&nt, dir, !dir, SIZE_MAX), 0);
    for (int i = 0; i < 2; i++) {
      assert_true(has_version(i, "k/new-at-0", 5));
      assert_true(has_version(i, "k/new-at-1", 9));
      assert_true(has_version(i, "k/same", 2));
      assert_true(has_version(i, "k/only-1", 1));
      /* Nothing older was even offered. */
      assert_int_equal(nt.us[i].stale, 0);
    }
  }
  /* First sync: n0 fetched 1 payload (k/new-at-0), n1 fetched 2; the
   * second sync found nothing to send. */
  assert_int_equal(nt.us[0].gets, 1);
  assert_int_equal(nt.us[1].gets, 2);
  assert_memory_equal(net_ufind(&nt.us[1], "k/new-at-0")->payload, "five", 4);
  /* n2 knows nothing: its sync with n0 gets all four. */
  assert_int_equal(net_sync(&nt, 2, 0, SIZE_MAX), 0);
  assert_int_equal(nt.us[2].n, 4);
  net_free(&nt);
}

/* Builds one frame (identity seal: these cores have no keyring). */
static size_t sync_frame(uint8_t *dst, uint8_t type, int last, uint32_t count,
                         const uint8_t *body, size_t len) {
  uint8_t *p = dst + 4;
  p[0] = 3; /* stream version */
  p[1] = type;
  p[2] = (uint8_t)last;
  p[3] = (uint8_t)(count >> 24);
  p[4] = (uint8_t)(count >> 16);
  p[5] = (uint8_t)(count >> 8);
  p[6] = (uint8_t)count;
  memcpy(p + 7, body, len);
  uint32_t fl = (uint32_t)(7 + len);
  dst[0] = (uint8_t)(fl >> 24);
  dst[1] = (uint8_t)(fl >> 16);
  dst[2] = (uint8_t)(fl >> 8);
  dst[3] = (uint8_t)fl;
  return 4 + fl;
}

static size_t udigest_entry(uint8_t *p, const char *key, uint64_t version) {
  size_t n = strlen(key);
  p[0] = (uint8_t)n;
  memcpy(p + 1, key, n);
  for (int b = 0; b < 8; b++) p[1 + n + b] = (uint8_t)(version >> (56 - 8 * b));
  return n + 9;
}

/* A peer whose user digest lies (a version it does not have) or is
 * garbage changes nothing here: a lie only keeps us from sending, the
 * entries it then sends obey the version rule, and garbage fails the
 * session before anything is applied. */
static void test_user_state_lying_digest(void **state) {
  (void)state;
  net_init(&nt, 2, NULL);
  nt.user_state = 1;
  net_boot(&nt);
  net_uset(&nt, 0, "k", 5, "five", 4);
  net_uset(&nt, 0, "other", 1, "o", 1);
  static uint8_t in[4096];
  uint8_t body[512];
  size_t off = 0, bl;
  /* DIGEST: the liar n1 alone; UDIGEST: "k" at 2^64-1, "other" at 0. */
  bl = 0;
  body[bl++] = 2;
  memcpy(body + bl, "n1", 2), bl += 2;
  memset(body + bl, 0, 5), bl += 5; /* incarnation 0, alive */
  off += sync_frame(in + off, 1, 0, 1, body, bl);
  bl = udigest_entry(body, "k", UINT64_MAX);
  bl += udigest_entry(body + bl, "other", 0);
  off += sync_frame(in + off, 3, 1, 2, body, bl);
  wr_swim_sync *s;
  assert_int_equal(wr_swim_sync_new(nt.sw[0], &s, 0, nt.now), 0);
  assert_int_equal(wr_swim_sync_recv(s, in, off, nt.now), 0);
  /* Only "other" was fetched to be sent: "k" is claimed newer. */
  assert_int_equal(nt.us[0].gets, 1);
  /* STATE from the liar: "k" at version 2 (older than ours). */
  wr_swim_update u;
  memset(&u, 0, sizeof u);
  u.kind = WR_SWIM_UPD_USER;
  strcpy(u.id, "n1");
  strcpy(u.key, "k");
  u.version = 2;
  u.payload = (const uint8_t *)"two";
  u.payload_len = 3;
  wr_ssize el = wr_swim_update_encode(&u, body, sizeof body);
  assert_true(el > 0);
  off = sync_frame(in, 2, 1, 1, body, (size_t)el);
  assert_int_equal(wr_swim_sync_recv(s, in, off, nt.now), 0);
  assert_true(has_version(0, "k", 5));
  assert_memory_equal(net_ufind(&nt.us[0], "k")->payload, "five", 4);
  assert_int_equal(nt.us[0].stale, 1);
  assert_int_equal(nt.us[0].news, 0);
  wr_swim_sync_del(s);

  /* Garbage in a UDIGEST: a key with a space, a truncated version, a
   * count larger than the entries, an empty key.  Each fails the
   * session; nothing is fetched or changed. */
  static const char *bad_keys[] = {"a b", "", NULL};
  for (int t = 0; t < 4; t++) {
    unsigned gets = nt.us[0].gets;
    assert_int_equal(wr_swim_sync_new(nt.sw[0], &s, 0, nt.now), 0);
    if (t < 2) {
      bl = udigest_entry(body, t == 0 ? bad_keys[0] : "k", 9);
      if (t == 1) bl -= 3;
      off = sync_frame(in, 3, 1, 1, body, bl);
    } else if (t == 2) {
      bl = udigest_entry(body, "k", 9);
      off = sync_frame(in, 3, 1, 2, body, bl);
    } else {
      body[0] = 0; /* empty key */
      memset(body + 1, 0, 8);
      off = sync_frame(in, 3, 1, 1, body, 9);
    }
    assert_int_not_equal(wr_swim_sync_recv(s, in, off, nt.now), 0);
    assert_int_equal(nt.us[0].gets, gets);
    wr_swim_sync_del(s);
  }
  assert_true(has_version(0, "k", 5));
  assert_int_equal(nt.us[0].n, 2);
  net_free(&nt);
}

/* Moves bytes between two sessions in chunks of 1..97 bytes; returns
 * the number of frames each side wrote. */
static int pump_chunked(wr_swim_sync *a, wr_swim_sync *b, unsigned frames[2]) {
  wr_swim_sync *ss[2] = {a, b};
  size_t chunk = 1;
  /* Per side: bytes left of the frame being counted. */
  size_t in_frame[2] = {0, 0};
  uint8_t lenb[2][4];
  size_t lenn[2] = {0, 0};
  frames[0] = frames[1] = 0;
  for (int round = 0; round < 1000000; round++) {
    int moved = 0;
    for (int side = 0; side < 2; side++) {
      const uint8_t *d;
      wr_ssize n = wr_swim_sync_send(ss[side], &d);
      if (n <= 0) continue;
      size_t take = WR_MIN((size_t)n, chunk);
      chunk = chunk % 97 + 1;
      for (size_t k = 0; k < take; k++) {
        if (in_frame[side]) {
          in_frame[side]--;
          continue;
        }
        lenb[side][lenn[side]++] = d[k];
        if (lenn[side] == 4) {
          in_frame[side] = (size_t)lenb[side][0] << 24 |
                           (size_t)lenb[side][1] << 16 |
                           (size_t)lenb[side][2] << 8 | lenb[side][3];
          lenn[side] = 0;
          frames[side]++;
        }
      }
      if (wr_swim_sync_recv(ss[!side], d, take, nt.now) != 0) return -1;
      wr_swim_sync_consumed(ss[side], take);
      moved = 1;
    }
    if (wr_swim_sync_done(a) && wr_swim_sync_done(b)) return 0;
    if (!moved) return -1;
  }
  return -1;
}

/* Messages larger than one 64 KiB frame are split at entry boundaries and
 * arrive whole, whatever the stream's chunking: 300 payloads of 1000 bytes
 * (STATE) and 4,000 keys (UDIGEST). */
static void test_user_state_split_frames(void **state) {
  (void)state;
  net_init(&nt, 2, NULL);
  nt.user_state = 1;
  net_boot(&nt);
  uint8_t payload[1000];
  for (int k = 0; k < 4000; k++) {
    char key[32];
    snprintf(key, sizeof key, "route/%04d", k);
    memset(payload, k & 0xff, sizeof payload);
    net_uset(&nt, 1, key, (uint64_t)k + 1, payload, k < 300 ? sizeof payload : 0);
  }
  wr_swim_sync *a, *b;
  unsigned frames[2];
  assert_int_equal(wr_swim_sync_new(nt.sw[0], &a, 1, nt.now), 0);
  assert_int_equal(wr_swim_sync_new(nt.sw[1], &b, 0, nt.now), 0);
  assert_int_equal(pump_chunked(a, b, frames), 0);
  wr_swim_sync_del(a);
  wr_swim_sync_del(b);
  /* n1 wrote a STATE of ~300 KiB (>= 5 frames) and a 4,000-key digest
   * (>= 2 frames); n0 then wrote a digest of its own. */
  assert_true(frames[1] >= 7);
  assert_int_equal(nt.us[0].n, 4000);
  for (int k = 0; k < 4000; k += 37) {
    char key[32];
    snprintf(key, sizeof key, "route/%04d", k);
    net_uent *e = net_ufind(&nt.us[0], key);
    assert_non_null(e);
    assert_int_equal(e->version, (uint64_t)k + 1);
    assert_int_equal(e->len, k < 300 ? 1000 : 0);
    if (k < 300) assert_int_equal(e->payload[999], k & 0xff);
  }
  /* Now n0's digest is the 4,000 keys: the reverse sync sends nothing. */
  unsigned gets = nt.us[0].gets + nt.us[1].gets;
  assert_int_equal(net_sync(&nt, 0, 1, SIZE_MAX), 0);
  assert_int_equal(nt.us[0].gets + nt.us[1].gets, gets);
  net_free(&nt);
}

/* ---- long partitions heal (src/swim/reconnect.c) ------------------------ */

/* Two halves cut apart for 5 minutes: each declares the other dead and
 * reaps it (dead_reap 30 s), so no probe, gossip or periodic sync ever
 * crosses again.  Once the network heals, a reconnect attempt (every 30
 * s, with a member declared dead) bridges the halves and everyone is alive
 * everywhere within one reconnect interval plus a few probe rounds; the
 * USER state set on one side meanwhile reaches the other by its syncs. */
static void test_long_partition_heals(void **state) {
  (void)state;
  net_init(&nt, 8, NULL);
  nt.user_state = 1;
  nt.auto_sync = 1;
  net_boot(&nt);
  net_run(&nt, nt.now + 5000);
  for (int i = 4; i < 8; i++) nt.group[i] = 1;
  nt.partitioned = 1;
  net_run(&nt, nt.now + 60000);
  const char payload[] = "owner=n1";
  net_uset(&nt, 1, "route/p", 3, payload, sizeof payload);
  assert_int_equal(wr_swim_broadcast_user(nt.sw[1], "route/p", 3,
                                          (const uint8_t *)payload,
                                          sizeof payload, nt.now), 0);
  net_drain(&nt, 1);
  net_run(&nt, nt.now + 240000);
  for (int i = 0; i < 8; i++) {
    /* The other half is reaped; this half is intact. */
    assert_int_equal(wr_swim_member_count(nt.sw[i]), 3);
    for (int j = 0; j < 8; j++)
      if (j != i && nt.group[j] == nt.group[i])
        assert_int_equal(net_state(&nt, i, j), WR_SWIM_ALIVE);
  }
  assert_true(nt.syncs_cut > 0); /* attempts that met the partition */
  nt.partitioned = 0;
  wr_tstamp healed = nt.now;
  wr_tstamp bound = healed + 30000 + 10000;
  int all = 0;
  while (!all && nt.now < bound) {
    net_run(&nt, nt.now + 500);
    all = 1;
    for (int i = 0; i < 8 && all; i++)
      for (int j = 0; j < 8 && all; j++)
        if (i != j && net_state(&nt, i, j) != WR_SWIM_ALIVE) all = 0;
  }
  if (!all) fail_msg("not all alive everywhere 40 s after the heal");
  print_message("healed after %llu ms\n",
                (unsigned long long)(nt.now - healed));
  uint64_t reconnects = 0;
  for (int i = 0; i < 8; i++) {
    wr_swim_stats st;
    wr_swim_get_stats(nt.sw[i], &st);
    reconnects += st.reconnects;
    /* Nobody ever declared a member of its own half dead. */
    for (int j = 0; j < 8; j++)
      if (nt.group[j] == nt.group[i]) assert_int_equal(nt.dead_events[i][j], 0);
  }
  assert_true(reconnects > 0);
  /* Stays healed, and the USER state crosses with the periodic syncs. */
  net_run(&nt, nt.now + 120000);
  for (int i = 0; i < 8; i++) {
    for (int j = 0; j < 8; j++)
      if (i != j) assert_int_equal(net_state(&nt, i, j), WR_SWIM_ALIVE);
    assert_true(has_version(i, "route/p", 3));
  }
  net_free(&nt);
}

/* ---- dead probes: a healed network is found within about a second ------ */

/* Every node sees every other alive; the ms it took from |since|, or
 * fails after |limit| ms.  Checked every 50 ms of virtual time. */
static wr_tstamp until_all_alive(int n, wr_tstamp since, wr_tstamp limit) {
  for (;;) {
    int all = 1;
    for (int i = 0; i < n && all; i++)
      for (int j = 0; j < n && all; j++)
        if (i != j && net_state(&nt, i, j) != WR_SWIM_ALIVE) all = 0;
    if (all) return nt.now - since;
    if (nt.now - since >= limit) return WR_TSTAMP_NONE;
    net_run(&nt, nt.now + 50);
  }
}

/* Two halves of 8 apart for 20 s: past the suspicion timeout, so each
 * side declares the other dead, but within dead_reap (30 s), so the
 * verdicts are still held: the chaos harness's short partition-heal.
 * Nobody probes the dead and nothing is queued to gossip them, so before
 * dead probes only the reconnect ticker (30 s here, at a phase fixed by
 * the node id) noticed the heal.  Now a dead probe finds it within about
 * one interval (1 s) and its answer brings both ends back at once.  The
 * same seed with dead probes off waits for the ticker: what this test
 * guards. */
static wr_tstamp short_partition_heal_ms(uint64_t dead_probe_ms,
                                         wr_tstamp longer) {
  wr_swim_config c;
  wr_swim_config_default(&c);
  c.dead_probe_interval_ms = dead_probe_ms;
  net_init(&nt, 8, &c);
  nt.auto_sync = 1;
  net_boot(&nt);
  net_run(&nt, nt.now + 5000);
  for (int i = 4; i < 8; i++) nt.group[i] = 1;
  nt.partitioned = 1;
  net_run(&nt, nt.now + 20000 + longer);
  for (int i = 0; i < 8; i++)
    for (int j = 0; j < 8; j++)
      if (nt.group[j] != nt.group[i])
        assert_int_equal(net_state(&nt, i, j), WR_SWIM_DEAD);
  nt.partitioned = 0;
  wr_tstamp healed = nt.now;
  wr_tstamp took = until_all_alive(8, healed, 60000);
  if (took == WR_TSTAMP_NONE) fail_msg("not healed 60 s after the heal");
  uint64_t probes = 0, answers = 0;
  for (int i = 0; i < 8; i++) {
    wr_swim_stats st;
    wr_swim_get_stats(nt.sw[i], &st);
    probes += st.dead_probes;
    answers += st.dead_probe_answers;
    /* Nobody declared a member of its own half dead. */
    for (int j = 0; j < 8; j++)
      if (nt.group[j] == nt.group[i]) assert_int_equal(nt.dead_events[i][j], 0);
  }
  if (dead_probe_ms) {
    /* At most one per node per interval: 8 nodes, about 20 s of verdicts
     * held plus the heal. */
    assert_true(probes > 0);
    assert_true(probes <= 8 * (20 + (longer + took) / 1000 + 2));
    assert_true(answers > 0);
  } else {
    assert_int_equal(probes, 0);
  }
  net_free(&nt);
  return took;
}

/* Six heal times 1.7 s apart (the reconnect ticker's phase against the
 * heal moves with them): every one within 2 s with dead probes; without
 * them, at least one waits for the ticker. */
static void test_short_partition_heals_fast(void **state) {
  (void)state;
  wr_tstamp worst_with = 0, worst_without = 0;
  for (int k = 0; k < 6; k++) {
    wr_tstamp with = short_partition_heal_ms(1000, (wr_tstamp)k * 1700);
    wr_tstamp without = short_partition_heal_ms(0, (wr_tstamp)k * 1700);
    print_message("short partition +%d ms: all alive everywhere %llu ms "
                  "after the heal with dead probes, %llu ms without\n",
                  k * 1700, (unsigned long long)with,
                  (unsigned long long)without);
    worst_with = WR_MAX(worst_with, with);
    worst_without = WR_MAX(worst_without, without);
  }
  assert_true(worst_with <= 2000);
  assert_true(worst_without > 2000);
}

/* Bounded: one member killed in a fleet of 16, held DEAD by the other
 * 15.  Each of them picks it with probability 1/15 per interval, so the
 * fleet sends it about one datagram a second, not 15; and a probe that
 * nobody answers changes nothing (no suspicion, no awareness, no sync). */
static void test_dead_probes_bounded(void **state) {
  (void)state;
  net_init(&nt, 16, NULL);
  nt.auto_sync = 1;
  net_boot(&nt);
  net_run(&nt, nt.now + 3000);
  nt.down[7] = 1;
  net_run(&nt, nt.now + 15000);
  all_see(16, 7, WR_SWIM_DEAD);
  uint64_t before = 0, after = 0;
  unsigned awareness = 0;
  wr_swim_stats st;
  for (int i = 0; i < 16; i++) {
    wr_swim_get_stats(nt.sw[i], &st);
    before += st.dead_probes;
  }
  /* 100 s: reaped after dead_reap (30 s), it stays a candidate in the
   * reconnect list, picked with the same probability. */
  net_run(&nt, nt.now + 100000);
  for (int i = 0; i < 16; i++) {
    if (i == 7) continue;
    wr_swim_get_stats(nt.sw[i], &st);
    after += st.dead_probes;
    awareness += st.awareness;
    assert_int_equal(st.dead_probe_answers, 0);
  }
  uint64_t sent = after - before;
  print_message("one dead member, 15 live: %llu dead probes in 100 s\n",
                (unsigned long long)sent);
  /* Expected 100 (one per second fleet-wide), Poisson-like spread. */
  assert_true(sent >= 60 && sent <= 150);
  assert_int_equal(awareness, 0);
  for (int i = 0; i < 16; i++)
    for (int j = 0; j < 16; j++)
      if (j != 7 && i != 7 && i != j)
        assert_int_equal(net_state(&nt, i, j), WR_SWIM_ALIVE);
  net_free(&nt);
}

/* With reconnects off (reconnect-interval-ms = 0) the same partition
 * stays split: what the test above guards. */
static void test_long_partition_without_reconnect_stays_split(void **state) {
  (void)state;
  wr_swim_config c;
  wr_swim_config_default(&c);
  char err[128];
  assert_int_equal(wr_swim_config_set(&c, "reconnect-interval-ms", "0", err,
                                      sizeof err), 0);
  net_init(&nt, 6, &c);
  nt.auto_sync = 1;
  net_boot(&nt);
  net_run(&nt, nt.now + 5000);
  for (int i = 3; i < 6; i++) nt.group[i] = 1;
  nt.partitioned = 1;
  net_run(&nt, nt.now + 120000);
  nt.partitioned = 0;
  net_run(&nt, nt.now + 120000);
  for (int i = 0; i < 6; i++) assert_int_equal(wr_swim_member_count(nt.sw[i]), 2);
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
      cmocka_unit_test(test_user_news_not_spent_on_dead),
      cmocka_unit_test(test_user_news_relayed_at_once),
      cmocka_unit_test(test_user_flood_keeps_membership),
      cmocka_unit_test(test_garbage_changes_nothing),
      cmocka_unit_test(test_join_through_seed_and_sync),
      cmocka_unit_test(test_sync_repairs_and_rejects_corruption),
      cmocka_unit_test(test_user_state_missed_update_synced),
      cmocka_unit_test(test_user_state_newer_wins),
      cmocka_unit_test(test_user_state_lying_digest),
      cmocka_unit_test(test_user_state_split_frames),
      cmocka_unit_test(test_long_partition_heals),
      cmocka_unit_test(test_long_partition_without_reconnect_stays_split),
      cmocka_unit_test(test_short_partition_heals_fast),
      cmocka_unit_test(test_dead_probes_bounded),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
