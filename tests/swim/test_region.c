/* Region-aware membership (src/swim/region.c and its call sites in
 * swim.c), in virtual time: the census and picks on their own, then one
 * core ("me", region a) among 30 members in three regions of 10 whose
 * answers the test writes by hand:
 *
 *   probes       round-robin probes stay in region a, one in
 *                region_cross_probe crosses; region-blind, two thirds
 *                cross;
 *   relays       an unanswered probe asks relays of the target's region;
 *   gossip       at most region_cross_gossip sends a round cross;
 *   timeouts     a suspicion's minimum follows its region's size and
 *                region_suspicion_mult; only confirmations from the
 *                suspect's region shorten it; a suspicion of a member of
 *                another region ends with a last-chance hello;
 *   silence      cross probes that nobody of the target's region answers
 *                raise no suspicion until region_down_ms has passed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "swim_int.h"
#include "warren/err.h"
#include "warren/pcg.h"

#define NMEM 30

static wr_pcg32 rng;
static wr_swim *sw;
static wr_tstamp now;

static wr_addr addr(int i) {
  wr_addr a = {.family = 4, .ip = {10, 0, 0, (uint8_t)i}, .port = 7946};
  return a;
}

/* m0..m9 in a (with us), m10..m19 in b, m20..m29 in c; 3 = us. */
static int region_ix(int m) { return m < 10 ? 0 : m < 20 ? 1 : 2; }
static const char *const rnames[] = {"a", "b", "c"};
static int addr_member(const wr_addr *a) { return a->ip[3] == 200 ? -1 : a->ip[3]; }

static unsigned core_mult = 3; /* suspicion_mult for the next make_core */
static int tiny_b; /* next make_core: region b is only m10 and m11 */

static void make_core(int aware) {
  wr_swim_config c;
  wr_swim_config_default(&c);
  /* 3 (the LAN profile's before its minimum became log10 n), so that
   * region-suspicion-mult 2 shows; test_region_mult_never_longer runs
   * the profile's own 1. */
  c.suspicion_mult = core_mult;
  c.suspicion_max_timeout_mult = 6;
  strcpy(c.id, "me");
  strcpy(c.region, "a");
  c.gossip = addr(200);
  c.rand = wr_pcg32_fill;
  c.rand_user_data = &rng;
  c.region_aware = aware;
  c.sync_interval_ms = 0; /* no anti-entropy in these tests */
  wr_pcg32_seed(&rng, 11, 3);
  now = 5000;
  assert_int_equal(wr_swim_new(&sw, &c, NULL, NULL, NULL, NULL, now), 0);
  for (int i = 0; i < NMEM; i++) {
    char id[16];
    snprintf(id, sizeof id, "m%d", i);
    wr_addr a = addr(i);
    assert_int_equal(wr_swim_add_member_region(sw, id, &a, NULL,
                                               rnames[tiny_b && i >= 12
                                                          ? 2
                                                          : region_ix(i)],
                                               0, now),
                     0);
  }
}

static void feed_pkt(wr_swim_packet *p, int from) {
  uint8_t buf[WR_SWIM_PACKET_MAX];
  wr_ssize n = wr_swim_encode(p, buf, sizeof buf);
  assert_true(n > 0);
  wr_addr a = addr(from);
  assert_int_equal(wr_swim_recv(sw, &a, buf, (size_t)n, now), 0);
}

static void feed_msg(int type, uint32_t seq, int from) {
  wr_swim_packet p;
  memset(&p, 0, sizeof p);
  p.type = (uint8_t)type;
  p.seq = seq;
  snprintf(p.from, sizeof p.from, "m%d", from);
  feed_pkt(&p, from);
}

/* One GOSSIP from member |from| carrying a SUSPECT of |id| by |accuser|. */
static void feed_suspect(int from, const char *id, int accuser) {
  wr_swim_packet p;
  memset(&p, 0, sizeof p);
  p.type = WR_SWIM_GOSSIP;
  snprintf(p.from, sizeof p.from, "m%d", from);
  wr_swim_update *u = &p.updates[0];
  u->kind = WR_SWIM_UPD_SUSPECT;
  snprintf(u->id, sizeof u->id, "%s", id);
  snprintf(u->from, sizeof u->from, "m%d", accuser);
  p.nupdates = 1;
  feed_pkt(&p, from);
}

/* What the members do with our datagrams. */
/* ANSWER_INDIRECT: direct PINGs are lost, relays reach every target (no
 * suspicion, so probing keeps its pace and every probe asks relays). */
enum { ANSWER_NONE, ANSWER_ALL, ANSWER_REGION_A, ANSWER_INDIRECT };

typedef struct tally {
  unsigned pings[3];            /* probes (PING with a target) by region */
  unsigned ping_reqs[3];        /* relays asked, by relay region */
  unsigned gossip[3];           /* GOSSIP datagrams by region */
  unsigned hellos[NMEM];        /* empty-target PINGs per member */
  unsigned max_cross_gossip_tick; /* most GOSSIP across in one tick */
} tally;

static int answers(int mode, int m) {
  return mode == ANSWER_ALL || (mode == ANSWER_REGION_A && region_ix(m) == 0);
}

/* Drains our output, answering as |mode| says: a probed member ACKs; a
 * relay whose target answers relays the ACK, else it NACKs. */
static void drain(int mode, tally *t) {
  uint8_t buf[WR_SWIM_DATAGRAM_MAX];
  wr_swim_packet p;
  wr_addr to;
  unsigned cross_gossip = 0;
  for (int k = 0; k < 10000; k++) {
    wr_ssize n = wr_swim_send(sw, &to, buf, sizeof buf, now);
    if (n <= 0) break;
    assert_int_equal(wr_swim_decode(buf, (size_t)n, &p), 0);
    int m = addr_member(&to);
    assert_true(m >= 0 && m < NMEM);
    int r = region_ix(m);
    switch (p.type) {
    case WR_SWIM_PING:
      if (!p.target[0]) {
        t->hellos[m]++;
        break;
      }
      t->pings[r]++;
      if (answers(mode, m)) feed_msg(WR_SWIM_ACK, p.seq, m);
      break;
    case WR_SWIM_PING_REQ: {
      t->ping_reqs[r]++;
      if (mode == ANSWER_INDIRECT) {
        feed_msg(WR_SWIM_ACK, p.seq, m);
        break;
      }
      if (!answers(mode, m)) break;
      int target = atoi(p.target + 1);
      feed_msg(answers(mode, target) ? WR_SWIM_ACK : WR_SWIM_NACK, p.seq, m);
      break;
    }
    case WR_SWIM_GOSSIP:
      t->gossip[r]++;
      cross_gossip += r != 0;
      break;
    default:
      break;
    }
  }
  if (cross_gossip > t->max_cross_gossip_tick)
    t->max_cross_gossip_tick = cross_gossip;
}

/* Runs to |until| in 10 ms steps. */
static void run(wr_tstamp until, int mode, tally *t) {
  while (now < until) {
    now += 10;
    wr_swim_tick(sw, now);
    drain(mode, t);
  }
}

static int state_of(const char *id) {
  wr_swim_member_info m;
  assert_int_equal(wr_swim_member_find(sw, id, &m), 0);
  return (int)m.state;
}

/* ---- the census and picks ---- */

static size_t below(void *ud, size_t n) {
  (void)ud;
  return n ? (size_t)wr_pcg32_bounded(&rng, (uint32_t)n) : 0;
}

static void test_census_and_pick(void **state) {
  (void)state;
  swim_members t;
  swim_regions rg;
  memset(&rg, 0, sizeof rg);
  wr_pcg32_seed(&rng, 5, 1);
  swim_members_init(&t, NULL);
  for (int i = 0; i < NMEM; i++) {
    char id[16];
    snprintf(id, sizeof id, "m%d", i);
    wr_addr a = addr(i);
    ssize_t k = swim_members_add(&t, id, &a, 0, 1000);
    assert_true(k >= 0);
    assert_int_equal(
        swim_members_set_meta(&t, (size_t)k, NULL, rnames[region_ix(i)], ""),
        0);
  }
  t.v[25].state = WR_SWIM_DEAD; /* not counted, never picked */
  swim_regions_census(&rg, &t, "a");
  assert_int_equal(swim_regions_size(&rg, "a"), 11); /* us included */
  assert_int_equal(swim_regions_size(&rg, "b"), 10);
  assert_int_equal(swim_regions_size(&rg, "c"), 9);
  assert_int_equal(swim_regions_size(&rg, "nowhere"), 1);
  assert_true(swim_regions_active(&rg));
  for (int k = 0; k < 200; k++) {
    ssize_t i = swim_regions_pick(&t, "b", 1, 0, "m12", 64, below, NULL);
    assert_true(i >= 0);
    assert_string_equal(swim_member_region(&t.v[i]), "b");
    assert_string_not_equal(swim_member_id(&t.v[i]), "m12");
    i = swim_regions_pick(&t, "a", 0, 0, NULL, 64, below, NULL);
    assert_true(i >= 0);
    assert_string_not_equal(swim_member_region(&t.v[i]), "a");
    assert_true(t.v[i].state == WR_SWIM_ALIVE);
  }
  assert_int_equal(swim_regions_pick(&t, "nowhere", 1, 0, NULL, 64, below,
                                     NULL),
                   -1);
  /* One region: nothing region-aware applies. */
  swim_members one;
  swim_members_init(&one, NULL);
  wr_addr a = addr(1);
  assert_true(swim_members_add(&one, "x", &a, 0, 1000) >= 0);
  memset(&rg, 0, sizeof rg);
  swim_regions_census(&rg, &one, "");
  assert_false(swim_regions_active(&rg));
  swim_members_free(&one);
  swim_members_free(&t);
}

/* ---- probes ---- */

static void test_probes_follow_regions(void **state) {
  (void)state;
  tally t;
  memset(&t, 0, sizeof t);
  make_core(1);
  run(now + 100 * 1000, ANSWER_ALL, &t);
  unsigned local = t.pings[0], cross = t.pings[1] + t.pings[2];
  /* 100 rounds, every 5th probe across (region_cross_probe 5); a cross
   * probe's round is one probe timeout longer, so a few less. */
  assert_true(local + cross >= 85 && local + cross <= 100);
  assert_true(cross * 5 >= local + cross - 4 && cross * 5 <= local + cross + 4);
  assert_true(t.pings[1] > 0 && t.pings[2] > 0);
  wr_swim_stats st;
  wr_swim_get_stats(sw, &st);
  assert_int_equal(st.cross_probes, cross);
  assert_int_equal(st.suspicions, 0);
  wr_swim_del(sw);

  /* Region-blind: two thirds of the probes cross. */
  memset(&t, 0, sizeof t);
  make_core(0);
  run(now + 100 * 1000, ANSWER_ALL, &t);
  local = t.pings[0];
  cross = t.pings[1] + t.pings[2];
  assert_true(cross > local);
  wr_swim_del(sw);
}

static void test_relays_from_target_region(void **state) {
  (void)state;
  tally t;
  memset(&t, 0, sizeof t);
  make_core(1);
  /* Every direct ping is lost, every relay gets through: each probe
   * asks 16 relays, the target's region's 9 (10 members less the
   * target) first, then 7 from anywhere. */
  run(now + 20 * 1000, ANSWER_INDIRECT, &t);
  unsigned local = t.pings[0], cross = t.pings[1] + t.pings[2];
  assert_true(cross >= 3 && local >= 12);
  unsigned reqs = t.ping_reqs[0] + t.ping_reqs[1] + t.ping_reqs[2];
  /* The last probe may still be waiting for its probe timeout. */
  assert_true(reqs == 16 * (local + cross) || reqs == 16 * (local + cross - 1));
  /* The fill from anywhere lands in a about a third of the time, so a
   * gets 9 per local probe plus about 7/3 per probe. */
  assert_true(t.ping_reqs[0] >= 9 * local);
  assert_true(t.ping_reqs[0] <= 9 * local + 7 * (local + cross) * 2 / 3);
  assert_true(t.ping_reqs[1] + t.ping_reqs[2] >= 9 * cross);
  wr_swim_stats st;
  wr_swim_get_stats(sw, &st);
  assert_int_equal(st.suspicions, 0);
  wr_swim_del(sw);
}

/* ---- gossip ---- */

static void test_gossip_across_bounded(void **state) {
  (void)state;
  tally t;
  memset(&t, 0, sizeof t);
  make_core(1);
  /* Keep news queued: a USER broadcast every second (no callback, so it
   * is pushed and gossiped but never re-gossiped by anyone). */
  for (int k = 0; k < 20; k++) {
    char key[16];
    snprintf(key, sizeof key, "k%d", k);
    assert_int_equal(wr_swim_broadcast_user(sw, key, 1, (const uint8_t *)"x",
                                            1, now),
                     0);
    run(now + 1000, ANSWER_ALL, &t);
  }
  unsigned across = t.gossip[1] + t.gossip[2];
  assert_true(across > 0);
  /* One across per gossip_to call: the push, a relay round and a gossip
   * tick can fall in one 10 ms step, 3 at most.  The cross send goes
   * first in each call, so when an update runs out of retransmits the
   * local ones are the ones skipped: across is a bit over a third. */
  assert_true(t.max_cross_gossip_tick <= 3);
  assert_true(across < t.gossip[0]);
  wr_swim_del(sw);

  memset(&t, 0, sizeof t);
  make_core(0);
  for (int k = 0; k < 20; k++) {
    char key[16];
    snprintf(key, sizeof key, "k%d", k);
    assert_int_equal(wr_swim_broadcast_user(sw, key, 1, (const uint8_t *)"x",
                                            1, now),
                     0);
    run(now + 1000, ANSWER_ALL, &t);
  }
  /* Region-blind: most gossip crosses. */
  assert_true(t.gossip[1] + t.gossip[2] > t.gossip[0]);
  wr_swim_del(sw);
}

/* ---- suspicion timeouts ---- */

/* Three members accuse |id|, each in its own name. */
static void accuse(const char *id, int a, int b, int c) {
  feed_suspect(a, id, a);
  feed_suspect(b, id, b);
  feed_suspect(c, id, c);
}

/* Time from now until |id| is DEAD, everyone else answering; -1 after
 * |cap| ms. */
static int64_t time_to_dead(const char *id, wr_tstamp cap, tally *t) {
  wr_tstamp t0 = now;
  int victim = atoi(id + 1);
  while (now < t0 + cap) {
    now += 10;
    wr_swim_tick(sw, now);
    /* The suspect stays silent; everyone else answers. */
    uint8_t buf[WR_SWIM_DATAGRAM_MAX];
    wr_swim_packet p;
    wr_addr to;
    for (int k = 0; k < 1000; k++) {
      wr_ssize n = wr_swim_send(sw, &to, buf, sizeof buf, now);
      if (n <= 0) break;
      assert_int_equal(wr_swim_decode(buf, (size_t)n, &p), 0);
      int m = addr_member(&to);
      if (p.type == WR_SWIM_PING && !p.target[0]) t->hellos[m]++;
      if (m == victim) continue;
      if (p.type == WR_SWIM_PING && p.target[0])
        feed_msg(WR_SWIM_ACK, p.seq, m);
      else if (p.type == WR_SWIM_PING_REQ)
        feed_msg(atoi(p.target + 1) == victim ? WR_SWIM_NACK : WR_SWIM_ACK,
                 p.seq, m);
    }
    if (state_of(id) == WR_SWIM_DEAD) return (int64_t)(now - t0);
  }
  return -1;
}

static void test_suspicion_follows_region(void **state) {
  (void)state;
  tally t;
  memset(&t, 0, sizeof t);
  make_core(1);
  /* m1 (region a, 11 members with us): confirmed twice by region a, the
   * minimum is region_suspicion_mult 2 x log10(11) rounds = 2,082 ms.
   * Region-blind it would be 3 x log10(31) = 4,474 ms. */
  accuse("m1", 2, 3, 4);
  int64_t d = time_to_dead("m1", 60000, &t);
  assert_true(d >= 2000 && d <= 2200);
  assert_int_equal(t.hellos[1], 0);
  wr_swim_del(sw);

  /* Confirmations from another region do not count: accused by m2,
   * "confirmed" by m12 and m13 (region b), m1 waits for the Lifeguard
   * maximum less what our own failed probes confirm. */
  memset(&t, 0, sizeof t);
  make_core(1);
  accuse("m1", 2, 12, 13);
  d = time_to_dead("m1", 60000, &t);
  assert_true(d > 3000);
  wr_swim_del(sw);

  /* Region-blind, the same three: fleet size 31, mult 3. */
  memset(&t, 0, sizeof t);
  make_core(0);
  accuse("m1", 2, 3, 4);
  d = time_to_dead("m1", 60000, &t);
  assert_true(d >= 4400 && d <= 4600);
  wr_swim_del(sw);
}

/* Regions may shorten a suspicion, never lengthen the profile's: with
 * the LAN profile's minimum of log10 n (mult 1), region a's m1 (11 with
 * us, log10 clamped to 1) waits 1 round, not region-suspicion-mult 2's
 * two. */
static void test_region_mult_never_longer(void **state) {
  (void)state;
  tally t;
  memset(&t, 0, sizeof t);
  core_mult = 1;
  make_core(1);
  core_mult = 3;
  accuse("m1", 2, 3, 4);
  int64_t d = time_to_dead("m1", 60000, &t);
  assert_true(d >= 1000 && d <= 1200);
  wr_swim_del(sw);
}

/* A region too small for k = 2 confirmers besides the suspect (b: m10,
 * m11) is judged by the whole fleet: without that its suspicions got no
 * confirmations at all and a lone accusation ended at the minimum (1 s
 * here); now it waits as a lone accusation does without regions, and
 * confirmations from any region count. */
static void test_small_region_judged_by_fleet(void **state) {
  (void)state;
  tally t;
  memset(&t, 0, sizeof t);
  core_mult = 1;
  tiny_b = 1;
  make_core(1);
  feed_suspect(2, "m10", 2);
  int64_t d = time_to_dead("m10", 60000, &t);
  assert_true(d > 5000);
  wr_swim_del(sw);
  /* Confirmed by two members of a: the fleet's minimum, log10 31 s. */
  memset(&t, 0, sizeof t);
  make_core(1);
  accuse("m10", 2, 3, 4);
  d = time_to_dead("m10", 60000, &t);
  assert_true(d >= 1400 && d <= 1700);
  wr_swim_del(sw);
  core_mult = 3;
  tiny_b = 0;
}

static void test_remote_suspicion_asks_first(void **state) {
  (void)state;
  tally t;
  memset(&t, 0, sizeof t);
  make_core(1);
  /* m11 (region b: 10 members, 11 with us counted as the - 2 expects):
   * confirmed by b, minimum 2,082 ms, then the last-chance hello and one
   * more probe interval before we declare it. */
  accuse("m11", 12, 13, 14);
  int64_t d = time_to_dead("m11", 60000, &t);
  assert_true(d >= 3000 && d <= 3300);
  assert_int_equal(t.hellos[11], 1);
  wr_swim_stats st;
  wr_swim_get_stats(sw, &st);
  assert_int_equal(st.last_chance_probes, 1);
  wr_swim_del(sw);
}

/* ---- silent regions ---- */

static void test_silent_region_no_storm(void **state) {
  (void)state;
  tally t;
  memset(&t, 0, sizeof t);
  make_core(1);
  /* Regions b and c are cut off: their members and relays never answer.
   * For region_down_ms (30 s) our cross probes fail without a single
   * suspicion, and without the Lifeguard penalty. */
  run(now + 25000, ANSWER_REGION_A, &t);
  wr_swim_stats st;
  wr_swim_get_stats(sw, &st);
  assert_true(st.cross_probes >= 3);
  assert_int_equal(st.region_silent_probes, st.cross_probes);
  assert_int_equal(st.suspicions, 0);
  assert_int_equal(st.awareness, 0);
  /* Past it, a region that stays silent is suspected member by member. */
  run(now + 20000, ANSWER_REGION_A, &t);
  wr_swim_get_stats(sw, &st);
  assert_true(st.suspicions > 0);
  for (int m = 0; m < 10; m++) {
    char id[16];
    snprintf(id, sizeof id, "m%d", m);
    assert_int_equal(state_of(id), WR_SWIM_ALIVE);
  }
  wr_swim_del(sw);

  /* A region that answers again is no longer silent: with b back, its
   * members' probes go well, and a probe that b's relays NACK (the
   * target alone is gone) suspects at once. */
  memset(&t, 0, sizeof t);
  make_core(1);
  run(now + 10000, ANSWER_REGION_A, &t);
  run(now + 20000, ANSWER_ALL, &t);
  wr_swim_get_stats(sw, &st);
  unsigned silent = (unsigned)st.region_silent_probes;
  assert_true(silent > 0);
  run(now + 30000, ANSWER_ALL, &t);
  wr_swim_get_stats(sw, &st);
  assert_int_equal(st.region_silent_probes, silent);
  assert_int_equal(st.suspicions, 0);
  wr_swim_del(sw);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_census_and_pick),
      cmocka_unit_test(test_probes_follow_regions),
      cmocka_unit_test(test_relays_from_target_region),
      cmocka_unit_test(test_gossip_across_bounded),
      cmocka_unit_test(test_suspicion_follows_region),
      cmocka_unit_test(test_region_mult_never_longer),
      cmocka_unit_test(test_small_region_judged_by_fleet),
      cmocka_unit_test(test_remote_suspicion_asks_first),
      cmocka_unit_test(test_silent_region_no_storm),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
