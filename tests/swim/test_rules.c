/* The member state machine one transition at a time: a single core is fed
 * crafted gossip and its table is checked after each packet.  Also the
 * Lifeguard suspicion timer, awareness, the piggyback queue and the
 * member table's index. */
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

static wr_pcg32 rng;
static wr_swim *sw;
static wr_tstamp now;

static wr_addr addr(int i) {
  wr_addr a = {.family = 4, .ip = {10, 0, 0, (uint8_t)i}, .port = 7946};
  return a;
}

static unsigned confirm_probes = 4;
static uint64_t refused_ms = 1000;

static unsigned indirect_checks; /* 0: the profile's */
static unsigned confirmations;   /* 0: the profile's */
static unsigned push_fanout;     /* 0: the profile's */
static uint64_t core_seed = 7;
static int lan_timing; /* 1: the LAN profile's suspicion timings as they are */

/* Fills in our identity and randomness (rng seeded with |seed|), creates
 * sw at now = 5000 and adds members m0..m(members-1) as ALIVE. */
static void start_core(wr_swim_config *c, int members, uint64_t seed) {
  strcpy(c->id, "me");
  c->gossip = addr(200);
  c->rand = wr_pcg32_fill;
  c->rand_user_data = &rng;
  wr_pcg32_seed(&rng, seed, 7);
  now = 5000;
  assert_int_equal(wr_swim_new(&sw, c, NULL, NULL, NULL, NULL, now), 0);
  for (int i = 0; i < members; i++) {
    char id[16];
    snprintf(id, sizeof id, "m%d", i);
    wr_addr a = addr(i);
    assert_int_equal(wr_swim_add_member(sw, id, &a, NULL, 0, now), 0);
  }
}

static void make_core(int members, int lifeguard) {
  wr_swim_config c;
  wr_swim_config_default(&c);
  if (indirect_checks) c.indirect_checks = indirect_checks;
  if (confirmations) c.suspicion_confirmations = confirmations;
  if (push_fanout) c.push_fanout = push_fanout;
  c.confirm_probes = confirm_probes;
  c.refused_suspicion_ms = refused_ms;
  if (!lan_timing) {
    /* memberlist's, so the numbers below are its */
    c.suspicion_mult = 4;
    c.suspicion_max_timeout_mult = 6;
  }
  c.lifeguard = lifeguard;
  start_core(&c, members, core_seed);
}

/* Sends one GOSSIP packet from "m9" carrying |u|. */
static void feed(const wr_swim_update *u) {
  wr_swim_packet p;
  uint8_t buf[WR_SWIM_PACKET_MAX];
  memset(&p, 0, sizeof p);
  p.type = WR_SWIM_GOSSIP;
  strcpy(p.from, "m9");
  p.updates[0] = *u;
  p.nupdates = 1;
  wr_ssize n = wr_swim_encode(&p, buf, sizeof buf);
  assert_true(n > 0);
  wr_addr from = addr(9);
  assert_int_equal(wr_swim_recv(sw, &from, buf, (size_t)n, now), 0);
}

static wr_swim_update upd(int kind, const char *id, uint32_t inc) {
  wr_swim_update u;
  memset(&u, 0, sizeof u);
  u.kind = (uint8_t)kind;
  snprintf(u.id, sizeof u.id, "%s", id);
  u.incarnation = inc;
  u.gossip = addr(atoi(id + 1));
  u.data = u.gossip;
  strcpy(u.from, "m8");
  return u;
}

static void expect(const char *id, int state, uint32_t inc) {
  wr_swim_member_info m;
  assert_int_equal(wr_swim_member_find(sw, id, &m), 0);
  if ((int)m.state != state || m.incarnation != inc)
    fail_msg("%s: state %d inc %u, want %d inc %u", id, m.state, m.incarnation,
             state, inc);
}

/* Puts m1 into |state| at incarnation 5. */
static void prime(int state) {
  static const int kind[] = {WR_SWIM_UPD_ALIVE, WR_SWIM_UPD_SUSPECT,
                             WR_SWIM_UPD_DEAD, WR_SWIM_UPD_LEFT};
  wr_swim_update u = upd(WR_SWIM_UPD_ALIVE, "m1", 5);
  feed(&u);
  if (state != WR_SWIM_ALIVE) {
    u = upd(kind[state], "m1", 5);
    feed(&u);
  }
  expect("m1", state, 5);
}

/* The merge table: (state held at inc 5) x (update kind, inc) -> result.
 * Alive needs a strictly higher incarnation to override anything; suspect
 * overrides alive at the same incarnation; dead overrides alive and
 * suspect; left overrides everything at the same incarnation, and nothing
 * but a newer alive overrides left. */
static void test_merge_table(void **state) {
  (void)state;
  static const struct {
    int held, kind;
    uint32_t inc;
    int want;
    uint32_t want_inc;
  } cases[] = {
      {WR_SWIM_ALIVE, WR_SWIM_UPD_ALIVE, 4, WR_SWIM_ALIVE, 5},
      {WR_SWIM_ALIVE, WR_SWIM_UPD_ALIVE, 6, WR_SWIM_ALIVE, 6},
      {WR_SWIM_ALIVE, WR_SWIM_UPD_SUSPECT, 4, WR_SWIM_ALIVE, 5},
      {WR_SWIM_ALIVE, WR_SWIM_UPD_SUSPECT, 5, WR_SWIM_SUSPECT, 5},
      {WR_SWIM_ALIVE, WR_SWIM_UPD_DEAD, 4, WR_SWIM_ALIVE, 5},
      {WR_SWIM_ALIVE, WR_SWIM_UPD_DEAD, 5, WR_SWIM_DEAD, 5},
      {WR_SWIM_ALIVE, WR_SWIM_UPD_LEFT, 5, WR_SWIM_LEFT, 5},
      {WR_SWIM_SUSPECT, WR_SWIM_UPD_ALIVE, 5, WR_SWIM_SUSPECT, 5},
      {WR_SWIM_SUSPECT, WR_SWIM_UPD_ALIVE, 6, WR_SWIM_ALIVE, 6},
      {WR_SWIM_SUSPECT, WR_SWIM_UPD_DEAD, 5, WR_SWIM_DEAD, 5},
      {WR_SWIM_SUSPECT, WR_SWIM_UPD_DEAD, 4, WR_SWIM_SUSPECT, 5},
      {WR_SWIM_SUSPECT, WR_SWIM_UPD_LEFT, 5, WR_SWIM_LEFT, 5},
      {WR_SWIM_DEAD, WR_SWIM_UPD_ALIVE, 5, WR_SWIM_DEAD, 5},
      {WR_SWIM_DEAD, WR_SWIM_UPD_ALIVE, 6, WR_SWIM_ALIVE, 6},
      {WR_SWIM_DEAD, WR_SWIM_UPD_SUSPECT, 6, WR_SWIM_DEAD, 5},
      {WR_SWIM_DEAD, WR_SWIM_UPD_LEFT, 5, WR_SWIM_LEFT, 5},
      {WR_SWIM_LEFT, WR_SWIM_UPD_DEAD, 5, WR_SWIM_LEFT, 5},
      {WR_SWIM_LEFT, WR_SWIM_UPD_DEAD, 6, WR_SWIM_LEFT, 5},
      {WR_SWIM_LEFT, WR_SWIM_UPD_SUSPECT, 6, WR_SWIM_LEFT, 5},
      {WR_SWIM_LEFT, WR_SWIM_UPD_ALIVE, 5, WR_SWIM_LEFT, 5},
      {WR_SWIM_LEFT, WR_SWIM_UPD_ALIVE, 6, WR_SWIM_ALIVE, 6},
  };
  for (size_t k = 0; k < WR_ARRAY_LEN(cases); k++) {
    make_core(0, 1);
    prime(cases[k].held);
    wr_swim_update u = upd(cases[k].kind, "m1", cases[k].inc);
    feed(&u);
    expect("m1", cases[k].want, cases[k].want_inc);
    wr_swim_del(sw);
  }
}

/* Drains the core; returns 1 if some packet carried |kind| about |id|. */
static int sends_update(int kind, const char *id) {
  uint8_t buf[WR_SWIM_DATAGRAM_MAX];
  wr_addr to;
  wr_swim_packet p;
  wr_ssize n;
  int seen = 0;
  now += 1000; /* a gossip tick */
  wr_swim_tick(sw, now);
  while ((n = wr_swim_send(sw, &to, buf, sizeof buf, now)) > 0) {
    assert_int_equal(wr_swim_decode(buf, (size_t)n, &p), 0);
    for (size_t j = 0; j < p.nupdates; j++)
      seen |= p.updates[j].kind == kind && strcmp(p.updates[j].id, id) == 0;
  }
  return seen;
}

/* A stale accusation about a member that left is answered with the LEFT,
 * so the accuser does not go on to declare the leaver dead. */
static void test_stale_accusation_corrected(void **state) {
  (void)state;
  make_core(4, 1);
  prime(WR_SWIM_LEFT);
  for (int r = 0; r < 10; r++) sends_update(WR_SWIM_UPD_LEFT, "m1"); /* drain */
  assert_false(sends_update(WR_SWIM_UPD_LEFT, "m1"));
  wr_swim_update u = upd(WR_SWIM_UPD_SUSPECT, "m1", 5);
  feed(&u);
  expect("m1", WR_SWIM_LEFT, 5);
  assert_true(sends_update(WR_SWIM_UPD_LEFT, "m1"));
  /* An older incarnation's DEAD about an alive member: our ALIVE again. */
  u = upd(WR_SWIM_UPD_ALIVE, "m2", 9);
  feed(&u);
  for (int r = 0; r < 10; r++) sends_update(WR_SWIM_UPD_ALIVE, "m2");
  u = upd(WR_SWIM_UPD_DEAD, "m2", 3);
  feed(&u);
  expect("m2", WR_SWIM_ALIVE, 9);
  assert_true(sends_update(WR_SWIM_UPD_ALIVE, "m2"));
  wr_swim_del(sw);
}

/* Sends a packet of |type| from m9 (seq, target). */
static void feed_msg(int type, uint32_t seq, const char *from, const char *target) {
  wr_swim_packet p;
  uint8_t buf[WR_SWIM_PACKET_MAX];
  memset(&p, 0, sizeof p);
  p.type = (uint8_t)type;
  p.seq = seq;
  strcpy(p.from, from);
  if (target) {
    strcpy(p.target, target);
    p.target_addr = addr(atoi(target + 1));
  }
  wr_ssize n = wr_swim_encode(&p, buf, sizeof buf);
  assert_true(n > 0);
  wr_addr src = addr(atoi(from + 1));
  assert_int_equal(wr_swim_recv(sw, &src, buf, (size_t)n, now), 0);
}

/* Pops the next datagram; returns its type (0: none). */
static int next_out(wr_swim_packet *p, wr_addr *to) {
  uint8_t buf[WR_SWIM_DATAGRAM_MAX];
  wr_ssize n = wr_swim_send(sw, to, buf, sizeof buf, now);
  if (n <= 0) return 0;
  assert_int_equal(wr_swim_decode(buf, (size_t)n, p), 0);
  return p->type;
}

/* An indirect probe: we ping the target for the requester and relay its
 * ACK under the requester's sequence number; silence gets a NACK at 80 %
 * of the probe timeout (Lifeguard); a request about us is answered. */
static void test_ping_req_relay(void **state) {
  (void)state;
  make_core(0, 1);
  now += 100; /* past our own first probe: no members, nothing sent */
  wr_swim_packet p;
  wr_addr to;
  feed_msg(WR_SWIM_PING_REQ, 77, "m9", "m1");
  assert_int_equal(next_out(&p, &to), WR_SWIM_PING);
  assert_string_equal(p.target, "m1");
  assert_int_equal(to.ip[3], 1);
  feed_msg(WR_SWIM_ACK, p.seq, "m1", NULL);
  assert_int_equal(next_out(&p, &to), WR_SWIM_ACK);
  assert_int_equal(p.seq, 77);
  assert_int_equal(to.ip[3], 9);
  /* The target stays silent. */
  feed_msg(WR_SWIM_PING_REQ, 78, "m9", "m2");
  assert_int_equal(next_out(&p, &to), WR_SWIM_PING);
  wr_tstamp nack_at = now + 400; /* 80 % of 500 ms */
  assert_int_equal(wr_swim_deadline(sw), nack_at);
  now = nack_at;
  wr_swim_tick(sw, now);
  assert_int_equal(next_out(&p, &to), WR_SWIM_NACK);
  assert_int_equal(p.seq, 78);
  /* A late ACK after the relay expired is foreign. */
  now += 200;
  wr_swim_tick(sw, now);
  feed_msg(WR_SWIM_ACK, 12345, "m2", NULL);
  wr_swim_stats st;
  wr_swim_get_stats(sw, &st);
  assert_int_equal(st.rx_foreign, 1);
  /* About ourselves. */
  feed_msg(WR_SWIM_PING_REQ, 79, "m9", "me");
  assert_int_equal(next_out(&p, &to), WR_SWIM_ACK);
  assert_int_equal(p.seq, 79);
  /* A PING for someone else (the address changed hands) is not ours. */
  feed_msg(WR_SWIM_PING, 80, "m9", "m4");
  assert_int_equal(next_out(&p, &to), 0);
  wr_swim_del(sw);
}

/* A stranger that probes us is asked who it is (an empty-target PING),
 * and its answer (an ACK carrying its ALIVE) makes it a member. */
static void test_hello_to_unknown_pinger(void **state) {
  (void)state;
  make_core(0, 1);
  now += 100;
  wr_swim_packet p, hello;
  wr_addr to;
  feed_msg(WR_SWIM_PING, 5, "m7", "me");
  assert_int_equal(next_out(&p, &to), WR_SWIM_ACK);
  assert_int_equal(next_out(&hello, &to), WR_SWIM_PING);
  assert_string_equal(hello.target, "");
  assert_int_equal(to.ip[3], 7);
  /* m7 answers like any node answers a join probe. */
  wr_swim_packet ack;
  memset(&ack, 0, sizeof ack);
  ack.type = WR_SWIM_ACK;
  ack.seq = hello.seq;
  strcpy(ack.from, "m7");
  ack.updates[0] = upd(WR_SWIM_UPD_ALIVE, "m7", 2);
  ack.nupdates = 1;
  uint8_t buf[WR_SWIM_PACKET_MAX];
  wr_ssize n = wr_swim_encode(&ack, buf, sizeof buf);
  wr_addr from = addr(7);
  assert_int_equal(wr_swim_recv(sw, &from, buf, (size_t)n, now), 0);
  expect("m7", WR_SWIM_ALIVE, 2);
  wr_swim_stats st;
  wr_swim_get_stats(sw, &st);
  assert_int_equal(st.rx_foreign, 0);
  /* A known member's ping asks nothing. */
  feed_msg(WR_SWIM_PING, 6, "m7", "me");
  assert_int_equal(next_out(&p, &to), WR_SWIM_ACK);
  assert_int_equal(next_out(&p, &to), 0);
  wr_swim_del(sw);
}

static void test_unknown_members(void **state) {
  (void)state;
  make_core(0, 1);
  /* Suspect/dead/left about strangers teach us nothing. */
  wr_swim_update u = upd(WR_SWIM_UPD_SUSPECT, "m3", 1);
  feed(&u);
  u = upd(WR_SWIM_UPD_DEAD, "m3", 1);
  feed(&u);
  u = upd(WR_SWIM_UPD_LEFT, "m3", 1);
  feed(&u);
  assert_int_equal(wr_swim_member_count(sw), 0);
  u = upd(WR_SWIM_UPD_ALIVE, "m3", 0);
  feed(&u);
  expect("m3", WR_SWIM_ALIVE, 0);
  wr_swim_del(sw);
}

/* Accusations about ourselves: at or above our incarnation we outbid
 * them (and awareness rises); below it we only re-announce. */
static void test_self_refutation(void **state) {
  (void)state;
  make_core(3, 1);
  wr_swim_stats st;
  wr_swim_update u = upd(WR_SWIM_UPD_SUSPECT, "me", 0);
  feed(&u);
  wr_swim_get_stats(sw, &st);
  assert_int_equal(st.incarnation, 1);
  assert_int_equal(st.refutations, 1);
  assert_int_equal(st.awareness, 1);
  u = upd(WR_SWIM_UPD_DEAD, "me", 7);
  feed(&u);
  wr_swim_get_stats(sw, &st);
  assert_int_equal(st.incarnation, 8);
  u = upd(WR_SWIM_UPD_DEAD, "me", 2); /* stale: no bump */
  feed(&u);
  u = upd(WR_SWIM_UPD_ALIVE, "me", 8); /* our own echo */
  feed(&u);
  wr_swim_get_stats(sw, &st);
  assert_int_equal(st.incarnation, 8);
  assert_int_equal(st.refutations, 2);
  u = upd(WR_SWIM_UPD_ALIVE, "me", 12); /* a previous life of our id */
  feed(&u);
  wr_swim_get_stats(sw, &st);
  assert_int_equal(st.incarnation, 13);
  /* Once leaving, accusations are not answered. */
  assert_int_equal(wr_swim_leave(sw, now), 0);
  u = upd(WR_SWIM_UPD_DEAD, "me", 20);
  feed(&u);
  wr_swim_get_stats(sw, &st);
  assert_int_equal(st.incarnation, 14);
  wr_swim_member_info self;
  wr_swim_self(sw, &self);
  assert_int_equal(self.state, WR_SWIM_LEFT);
  wr_swim_del(sw);

  /* An accusation at the top incarnation: we stay at the top instead of
   * wrapping to 0, below every stale entry about us. */
  make_core(3, 1);
  u = upd(WR_SWIM_UPD_SUSPECT, "me", UINT32_MAX);
  feed(&u);
  wr_swim_get_stats(sw, &st);
  assert_int_equal(st.incarnation, UINT32_MAX);
  assert_int_equal(wr_swim_leave(sw, now), 0);
  wr_swim_get_stats(sw, &st);
  assert_int_equal(st.incarnation, UINT32_MAX);
  wr_swim_del(sw);
}

/* Advances virtual time in 10 ms steps, ticking; returns when |id| turns
 * DEAD (or gives up after |limit| ms) and reports the elapsed time.
 * Every round-robin PING is answered, so our own probes never add a
 * confirmation: only what the test feeds counts, whatever order the
 * random probe schedule takes. */
static wr_tstamp time_to_dead(const char *id, wr_tstamp limit) {
  wr_tstamp start = now;
  uint8_t buf[WR_SWIM_DATAGRAM_MAX];
  wr_addr to;
  wr_swim_packet p;
  while (now - start < limit) {
    now += 10;
    wr_swim_tick(sw, now);
    wr_ssize n;
    uint32_t acks[64];
    char ackers[64][WR_SWIM_ID_MAX + 1];
    size_t nacks = 0;
    while ((n = wr_swim_send(sw, &to, buf, sizeof buf, now)) > 0) {
      assert_int_equal(wr_swim_decode(buf, (size_t)n, &p), 0);
      if (p.type == WR_SWIM_PING && p.target[0] && nacks < 64) {
        acks[nacks] = p.seq;
        strcpy(ackers[nacks++], p.target);
      }
    }
    for (size_t j = 0; j < nacks; j++)
      feed_msg(WR_SWIM_ACK, acks[j], ackers[j], NULL);
    wr_swim_member_info m;
    if (wr_swim_member_find(sw, id, &m) == 0 && m.state == WR_SWIM_DEAD)
      return now - start;
  }
  return WR_TSTAMP_NONE;
}

/* Lifeguard dynamic suspicion at n = 9 + us = 10 (log10 = 1): min =
 * 4 x 1 x 1 s = 4 s, max = 6 x min = 24 s, k = 4 - 2 = 2 confirmations.
 * One accuser: 24 s.  A second independent one at once: 24 - (log 2 / log
 * 3) x 20 = 11.38 s.  A third: the minimum.  Repeats of the same accuser
 * do not count.  A lone accusation, never confirmed, asks the suspect
 * once more at the maximum (an empty-target PING, unanswered here) and
 * waits one more probe interval: 25 s. */
static void test_suspicion_timer(void **state) {
  (void)state;
  struct {
    int accusers;
    wr_tstamp lo, hi;
  } cases[] = {{1, 24990, 25020}, {2, 11370, 11400}, {3, 3990, 4020}};
  confirm_probes = 0; /* only the accusers we feed count */
  for (size_t k = 0; k < WR_ARRAY_LEN(cases); k++) {
    make_core(9, 1);
    for (int a = 0; a < cases[k].accusers; a++) {
      wr_swim_update u = upd(WR_SWIM_UPD_SUSPECT, "m1", 0);
      snprintf(u.from, sizeof u.from, "m%d", 2 + a);
      feed(&u);
      feed(&u); /* the same accuser twice counts once */
    }
    /* Keep m1 from being probed into a second suspicion path: it is
     * suspect already, probes only carry the buddy update. */
    wr_tstamp t = time_to_dead("m1", 30000);
    if (t < cases[k].lo || t > cases[k].hi)
      fail_msg("%d accusers: dead after %llu ms", cases[k].accusers,
               (unsigned long long)t);
    wr_swim_del(sw);
  }
  /* Plain SWIM: a fixed timeout (the minimum), however many accusers. */
  make_core(9, 0);
  wr_swim_update u = upd(WR_SWIM_UPD_SUSPECT, "m1", 0);
  feed(&u);
  wr_tstamp t = time_to_dead("m1", 30000);
  assert_true(t >= 3990 && t <= 4020);
  wr_swim_del(sw);
  confirm_probes = 4;
}

/* With the LAN profile's timings, in a core of |members| + us: each case
 * feeds |accusers| SUSPECTs of m1 from distinct members (no confirmation
 * probes of our own) and checks when m1 is declared dead. */
typedef struct accusal_case {
  int accusers;
  wr_tstamp lo, hi;
} accusal_case;

static void check_accusals(int members, const accusal_case *cases, size_t n) {
  confirm_probes = 0; /* only the accusers we feed count */
  lan_timing = 1;
  for (size_t k = 0; k < n; k++) {
    make_core(members, 1);
    for (int a = 0; a < cases[k].accusers; a++) {
      wr_swim_update u = upd(WR_SWIM_UPD_SUSPECT, "m1", 0);
      snprintf(u.from, sizeof u.from, "m%d", 2 + a);
      feed(&u);
    }
    wr_tstamp t = time_to_dead("m1", 30000);
    if (t < cases[k].lo || t > cases[k].hi)
      fail_msg("LAN n=%d, %d accusers: dead after %llu ms", members + 1,
               cases[k].accusers, (unsigned long long)t);
    wr_swim_del(sw);
  }
  lan_timing = 0;
  confirm_probes = 4;
}

/* The LAN profile's timings (issue 14) at n = 19 + us = 20, log10 n =
 * 1.301: min = 1 x 1.301 x 1 s = 1,301 ms, max = 18 x min = 23,418 ms,
 * k = 2.  A silent failure confirmed by two other members ends at the
 * minimum, 1.3 s after the suspicion began (it was 3 x 1.301 = 3.9 s);
 * one confirmation gives 23,418 - (log 2 / log 3) x 22,117 = 9,463 ms;
 * a lone accusation still waits the old maximum (3 x 6 = 18 rounds per
 * log10 n) plus the last-chance interval.  Fails with the pre-issue-14
 * LAN profile (mult 3, max mult 6: 3,903 / 11,104 / 24,418 ms). */
static void test_lan_suspicion_timing(void **state) {
  (void)state;
  static const accusal_case cases[] = {
      {3, 1300, 1320}, {2, 9460, 9480}, {1, 24410, 24440}};
  wr_swim_config c;
  wr_swim_config_default(&c);
  assert_int_equal(c.suspicion_mult, 1);
  assert_int_equal(c.suspicion_max_timeout_mult, 18);
  check_accusals(19, cases, WR_ARRAY_LEN(cases));
  /* The other profiles keep their timings: WAN memberlist's 6 x log10 n
   * rounds of 5 s with Lifeguard's 6x maximum, local (one loaded host)
   * the LAN's old 3 and 6x. */
  assert_int_equal(wr_swim_config_profile(&c, "wan"), 0);
  assert_int_equal(c.suspicion_mult, 6);
  assert_int_equal(c.suspicion_max_timeout_mult, 6);
  assert_int_equal(wr_swim_config_profile(&c, "local"), 0);
  assert_int_equal(c.suspicion_mult, 3);
  assert_int_equal(c.suspicion_max_timeout_mult, 6);
}

/* The suspicion minimum beyond 100 members grows by what the epidemic
 * needs per tenfold, log(10) / log(gossip_nodes + 1) gossip intervals
 * (0.33 s on LAN), not by a probe interval (config.c has the model); up
 * to 100 it is log10 n probe intervals as before, and the maximum keeps
 * its log10 n everywhere.  Fails with the formula it replaced
 * (min = log10 n s: 3,000 and 4,000 ms at 1,000 and 10,000). */
static void test_suspicion_bounds(void **state) {
  (void)state;
  wr_swim_config c;
  wr_swim_config_default(&c);
  struct {
    size_t n;
    uint64_t min, max;
  } lan[] = {{1, 1000, 18000},     {10, 1000, 18000},
             {20, 1301, 23418},    {100, 2000, 36000},
             {1000, 2332, 54000},  {10000, 2664, 72000},
             {100000, 2996, 90000}};
  for (size_t k = 0; k < WR_ARRAY_LEN(lan); k++) {
    uint64_t mn, mx;
    wr_swim_suspicion_bounds(&c, c.suspicion_mult, lan[k].n, &mn, &mx);
    if (mn != lan[k].min || mx != lan[k].max)
      fail_msg("LAN n=%zu: min %llu max %llu", lan[k].n,
               (unsigned long long)mn, (unsigned long long)mx);
  }
  /* Without Lifeguard the timer is the minimum. */
  uint64_t mn, mx;
  c.lifeguard = 0;
  wr_swim_suspicion_bounds(&c, 1, 10000, &mn, &mx);
  assert_int_equal(mn, 2664);
  assert_int_equal(mx, 2664);
  /* No gossip (gossip_nodes 0), or gossip slower than probing: the
   * epidemic is no faster than a probe interval per decade, so the old
   * formula. */
  wr_swim_config_default(&c);
  c.gossip_nodes = 0;
  wr_swim_suspicion_bounds(&c, 1, 10000, &mn, &mx);
  assert_int_equal(mn, 4000);
  wr_swim_config_default(&c);
  c.gossip_interval_ms = 5000;
  wr_swim_suspicion_bounds(&c, 1, 10000, &mn, &mx);
  assert_int_equal(mn, 4000);
  /* WAN: 6 x (2 + 2 x log 10 / log 5 x 0.5 s / 5 s) rounds of 5 s at
   * 10,000 (120 s before), the maximum unchanged at 6 x 6 x 4 rounds. */
  assert_int_equal(wr_swim_config_profile(&c, "wan"), 0);
  wr_swim_suspicion_bounds(&c, c.suspicion_mult, 10000, &mn, &mx);
  assert_int_equal(mn, 68584);
  assert_int_equal(mx, 720000);
}

/* The same in a core of 1,000 (999 members and us): confirmed by k = 2
 * others, dead 2,332 ms after the suspicion began (3,000 before); one
 * confirmation, 54,000 - (log 2 / log 3) x 51,668 = 21,401 ms. */
static void test_lan_suspicion_at_scale(void **state) {
  (void)state;
  static const accusal_case cases[] = {{3, 2330, 2350}, {2, 21400, 21420}};
  check_accusals(999, cases, WR_ARRAY_LEN(cases));
}

/* A suspicion at a higher incarnation than the one we hold is a new one
 * (the member refuted ours and we missed it): its timer starts afresh
 * instead of inheriting the old deadline. */
static void test_suspicion_restarts(void **state) {
  (void)state;
  confirm_probes = 0;
  make_core(9, 1);
  wr_swim_update u = upd(WR_SWIM_UPD_SUSPECT, "m1", 0);
  feed(&u);
  assert_true(time_to_dead("m1", 20000) == WR_TSTAMP_NONE);
  u = upd(WR_SWIM_UPD_SUSPECT, "m1", 1);
  strcpy(u.from, "m3");
  feed(&u);
  expect("m1", WR_SWIM_SUSPECT, 1);
  /* 24 s again (plus the last-chance interval), not the 4 s left. */
  wr_tstamp t = time_to_dead("m1", 30000);
  if (t < 24990 || t > 25020)
    fail_msg("restarted suspicion: dead after %llu ms", (unsigned long long)t);
  wr_swim_del(sw);
  confirm_probes = 4;
}

/* The last chance: a suspicion nobody confirmed reaches its maximum (24 s
 * here) and we ask the suspect who it is; its ACK carries its ALIVE at a
 * higher incarnation (a refutation we never heard of), and it lives. */
static void test_last_chance(void **state) {
  (void)state;
  confirm_probes = 0;
  make_core(9, 1);
  wr_swim_update u = upd(WR_SWIM_UPD_SUSPECT, "m1", 0);
  feed(&u);
  wr_swim_packet p;
  wr_addr to;
  uint32_t hello = 0;
  unsigned asked = 0; /* bit per member shown our SUSPECT of m1 */
  for (int s = 0; s < 2600 && !hello; s++) {
    now += 10;
    wr_swim_tick(sw, now);
    while (next_out(&p, &to)) {
      if (p.type == WR_SWIM_PING && !p.target[0] && to.ip[3] == 1)
        hello = p.seq;
      else if (p.type == WR_SWIM_PING && p.target[0])
        feed_msg(WR_SWIM_ACK, p.seq, p.target, NULL);
      else if (p.type == WR_SWIM_GOSSIP && hello)
        for (size_t j = 0; j < p.nupdates; j++)
          if (p.updates[j].kind == WR_SWIM_UPD_SUSPECT &&
              strcmp(p.updates[j].id, "m1") == 0)
            asked |= 1u << to.ip[3];
    }
  }
  assert_true(hello != 0);
  expect("m1", WR_SWIM_SUSPECT, 0); /* not dead yet: it was asked */
  /* ... and the fleet was shown our entry, so a member holding m1's
   * refutation answers us (correct_stale): all 8 others (m0, m2..m8),
   * never the suspect itself.  Fails without ask_fleet. */
  if (asked != (0x1ffu & ~(1u << 1)))
    fail_msg("members shown the lone suspicion: %#x", asked);
  wr_swim_packet ack;
  memset(&ack, 0, sizeof ack);
  ack.type = WR_SWIM_ACK;
  ack.seq = hello;
  strcpy(ack.from, "m1");
  ack.updates[0] = upd(WR_SWIM_UPD_ALIVE, "m1", 1);
  ack.nupdates = 1;
  uint8_t buf[WR_SWIM_PACKET_MAX];
  wr_ssize n = wr_swim_encode(&ack, buf, sizeof buf);
  assert_true(n > 0);
  wr_addr from = addr(1);
  wr_swim_stats st0, st1;
  wr_swim_get_stats(sw, &st0);
  assert_int_equal(wr_swim_recv(sw, &from, buf, (size_t)n, now), 0);
  wr_swim_get_stats(sw, &st1);
  assert_int_equal(st1.rx_foreign, st0.rx_foreign); /* our hello's ACK */
  assert_int_equal(st1.last_chance_probes, 1);
  expect("m1", WR_SWIM_ALIVE, 1);
  assert_true(time_to_dead("m1", 10000) == WR_TSTAMP_NONE);
  wr_swim_del(sw);
  confirm_probes = 4;
}

/* suspicion-confirmations accepts up to WR_SWIM_CONFIRMATIONS_MAX and the
 * core remembers that many confirmers: with k = 12, twelve distinct
 * accusers bring the timer to the minimum, while nine distinct ones and
 * endless repeats of the ninth (once beyond the 8 ids the core used to
 * keep, so repeats counted again) leave it well above. */
static void test_many_confirmations(void **state) {
  (void)state;
  wr_swim_config c;
  char err[128];
  wr_swim_config_default(&c);
  assert_int_equal(wr_swim_config_set(&c, "suspicion-confirmations", "32",
                                      err, sizeof err), 0);
  assert_int_equal(wr_swim_config_set(&c, "suspicion-confirmations", "33",
                                      err, sizeof err), WR_ERR_INVAL);
  c.suspicion_confirmations = WR_SWIM_CONFIRMATIONS_MAX + 1;
  c.rand = wr_pcg32_fill;
  c.rand_user_data = &rng;
  strcpy(c.id, "me");
  c.gossip = addr(200);
  wr_swim *bad = NULL;
  assert_int_equal(wr_swim_new(&bad, &c, NULL, NULL, NULL, NULL, 1),
                   WR_ERR_INVAL);
  assert_null(bad);

  /* n = 19 + us = 20: min = 4 x log10(20) x 1 s = 5,204 ms. */
  confirmations = 12;
  confirm_probes = 0; /* only the accusers we feed count */
  for (int distinct = 9; distinct <= 13; distinct += 4) {
    make_core(19, 1);
    for (int a = 0; a < distinct; a++) {
      wr_swim_update u = upd(WR_SWIM_UPD_SUSPECT, "m1", 0);
      snprintf(u.from, sizeof u.from, "m%d", 2 + a);
      for (int r = 0; r < (a == distinct - 1 ? 20 : 1); r++) feed(&u);
    }
    wr_tstamp t = time_to_dead("m1", 40000);
    if (distinct == 13 && (t < 5190 || t > 5230))
      fail_msg("12 confirmations: dead after %llu ms, not the minimum",
               (unsigned long long)t);
    /* 8 of 12: max - log 9 / log 13 x (max - min) = 8,935 ms. */
    if (distinct == 9 && (t < 8920 || t > 8960))
      fail_msg("8 confirmations and repeats: dead after %llu ms",
               (unsigned long long)t);
    wr_swim_del(sw);
  }
  confirmations = 0;
  confirm_probes = 4;
}

/* Hearing of a fresh suspicion, we probe the suspect ourselves; silence
 * for a probe interval is our confirmation (11.39 s instead of 24 s with
 * one other accuser), an answer is not. */
static void test_confirm_probe(void **state) {
  (void)state;
  /* want = k + fan-out = 10 > the 8 other members: every hearer probes. */
  push_fanout = 8;
  make_core(9, 1);
  wr_swim_update u = upd(WR_SWIM_UPD_SUSPECT, "m1", 0);
  feed(&u);
  uint8_t buf[WR_SWIM_DATAGRAM_MAX];
  wr_addr to;
  wr_swim_packet p;
  int pinged = 0;
  wr_ssize n;
  while ((n = wr_swim_send(sw, &to, buf, sizeof buf, now)) > 0) {
    assert_int_equal(wr_swim_decode(buf, (size_t)n, &p), 0);
    if (p.type == WR_SWIM_PING && strcmp(p.target, "m1") == 0) {
      pinged = 1;
      assert_int_equal(to.ip[3], 1);
      /* The buddy system: the ping tells m1 it is suspected. */
      int told = 0;
      for (size_t j = 0; j < p.nupdates; j++)
        told |= p.updates[j].kind == WR_SWIM_UPD_SUSPECT &&
                strcmp(p.updates[j].id, "m1") == 0;
      assert_true(told);
    }
  }
  assert_true(pinged);
  wr_tstamp t = time_to_dead("m1", 30000);
  assert_true(t >= 11370 && t <= 11400);
  wr_swim_del(sw);

  /* Same, but m1 answers the confirmation probe: the timer stays long. */
  make_core(9, 1);
  feed(&u);
  while ((n = wr_swim_send(sw, &to, buf, sizeof buf, now)) > 0) {
    assert_int_equal(wr_swim_decode(buf, (size_t)n, &p), 0);
    if (p.type != WR_SWIM_PING || strcmp(p.target, "m1") != 0) continue;
    wr_swim_packet ack;
    memset(&ack, 0, sizeof ack);
    ack.type = WR_SWIM_ACK;
    ack.seq = p.seq;
    strcpy(ack.from, "m1");
    uint8_t ab[64];
    wr_ssize an = wr_swim_encode(&ack, ab, sizeof ab);
    wr_addr from = addr(1);
    wr_swim_recv(sw, &from, ab, (size_t)an, now);
  }
  t = time_to_dead("m1", 30000);
  assert_true(t > 20000);
  wr_swim_del(sw);
  push_fanout = 0;
}

/* A confirmation probe is as strong as a normal one: when the direct
 * ping goes unanswered for the probe timeout, indirect_checks relays are
 * asked under the same seq, and a relayed ACK means no confirmation (the
 * timer stays long); the relays' NACKs are not foreign traffic. */
static void test_confirm_indirect(void **state) {
  (void)state;
  push_fanout = 8;
  make_core(9, 1);
  wr_swim_update u = upd(WR_SWIM_UPD_SUSPECT, "m1", 0);
  feed(&u);
  wr_swim_packet p;
  wr_addr to;
  uint32_t seq = 0;
  while (next_out(&p, &to))
    if (p.type == WR_SWIM_PING && strcmp(p.target, "m1") == 0) seq = p.seq;
  assert_true(seq != 0);
  /* Nothing before the probe timeout (500 ms)... */
  now += 490;
  wr_swim_tick(sw, now);
  int reqs = 0;
  while (next_out(&p, &to)) reqs += p.type == WR_SWIM_PING_REQ;
  assert_int_equal(reqs, 0);
  /* ...then the relays, under the confirmation probe's seq. */
  now += 10;
  wr_swim_tick(sw, now);
  char relay[16] = "";
  while (next_out(&p, &to))
    if (p.type == WR_SWIM_PING_REQ && p.seq == seq) {
      assert_string_equal(p.target, "m1");
      reqs++;
      snprintf(relay, sizeof relay, "m%d", to.ip[3]);
    }
  assert_true(reqs >= 7); /* every alive member but m1 (16 wanted) */
  wr_swim_stats st0, st1;
  wr_swim_get_stats(sw, &st0);
  feed_msg(WR_SWIM_NACK, seq, relay, NULL);
  wr_swim_get_stats(sw, &st1);
  assert_int_equal(st1.rx_foreign, st0.rx_foreign);
  feed_msg(WR_SWIM_ACK, seq, relay, NULL); /* relayed: m1 is alive */
  wr_tstamp t = time_to_dead("m1", 30000);
  assert_true(t > 20000);
  wr_swim_del(sw);
  push_fanout = 0;
}

/* Confirmation probes per suspicion do not grow with the fleet: of 300
 * members of a 1,000-member fleet that each hear a fresh suspicion, about
 * 300 x (k + fan-out) / 998 = 1.5 probe, not 300. */
static void test_confirm_bounded(void **state) {
  (void)state;
  unsigned probed = 0;
  for (uint64_t seed = 1; seed <= 300; seed++) {
    core_seed = seed;
    make_core(999, 1);
    wr_swim_update u = upd(WR_SWIM_UPD_SUSPECT, "m1", 0);
    feed(&u);
    wr_swim_stats st;
    wr_swim_get_stats(sw, &st);
    probed += (unsigned)st.confirm_probes;
    wr_swim_del(sw);
  }
  core_seed = 7;
  if (probed > 8) fail_msg("%u of 300 members probed the suspect", probed);
}

/* Ticks until our next round-robin probe leaves; returns its target's
 * id in |target| and its address and seq. */
static void own_probe(char *target, wr_addr *to, uint32_t *seq) {
  wr_swim_packet p;
  for (int steps = 0; steps < 400; steps++) {
    wr_swim_tick(sw, now);
    while (next_out(&p, to))
      if (p.type == WR_SWIM_PING && p.target[0]) {
        strcpy(target, p.target);
        *seq = p.seq;
        return;
      }
    now += 10;
  }
  fail_msg("no probe in 4 s");
}

/* The PING_REQs queued now: their relays' ids into |relays|. */
static int ping_reqs(char relays[][16], const char *target) {
  wr_swim_packet p;
  wr_addr to;
  int n = 0;
  while (next_out(&p, &to))
    if (p.type == WR_SWIM_PING_REQ) {
      assert_string_equal(p.target, target);
      assert_true(n < 32);
      snprintf(relays[n], 16, "m%d", to.ip[3]);
      for (int j = 0; j < n; j++) /* relays are distinct */
        assert_string_not_equal(relays[j], relays[n]);
      n++;
    }
  return n;
}

/* ICMP port unreachable (wr_swim_unreachable): a refused probe asks the
 * relays at once instead of after the probe timeout; when every relay
 * reports a refusal too, the probe fails at once, the relays count as
 * the k confirmations, and the member dies after refused_suspicion_ms
 * (1 s) instead of 4 s.  A plain NACK leaves the probe to its normal end
 * and the suspicion unconfirmed; an ACK through a relay clears it all;
 * with refused_suspicion_ms = 0 refusals change nothing. */
static void test_refused_probe(void **state) {
  (void)state;
  char target[16], relays[32][16];
  wr_addr to;
  uint32_t seq;

  make_core(9, 1);
  own_probe(target, &to, &seq);
  wr_tstamp t0 = now;
  wr_swim_unreachable(sw, &to, now);
  int n = ping_reqs(relays, target);
  /* 16 relays asked for, 8 members besides the target: each once. */
  assert_int_equal(n, 8);
  for (int j = 0; j < n; j++) {
    expect(target, WR_SWIM_ALIVE, 0);
    feed_msg(WR_SWIM_NACK_REFUSED, seq, relays[j], NULL);
    feed_msg(WR_SWIM_NACK_REFUSED, seq, relays[j], NULL); /* a repeat */
  }
  expect(target, WR_SWIM_SUSPECT, 0);
  wr_tstamp t = time_to_dead(target, 30000);
  assert_true(now - t0 >= 990 && now - t0 <= 1020);
  (void)t;
  wr_swim_stats st;
  wr_swim_get_stats(sw, &st);
  assert_int_equal(st.refused, 1);
  wr_swim_del(sw);

  /* Relays that only time out: the probe ends with its round and the
   * suspicion waits for confirmations (max 24 s here, none come). */
  confirm_probes = 0;
  make_core(9, 1);
  own_probe(target, &to, &seq);
  t0 = now;
  wr_swim_unreachable(sw, &to, now);
  n = ping_reqs(relays, target);
  for (int j = 0; j < n; j++) feed_msg(WR_SWIM_NACK, seq, relays[j], NULL);
  expect(target, WR_SWIM_ALIVE, 0);
  t = time_to_dead(target, 30000);
  assert_true(now - t0 > 20000);
  wr_swim_del(sw);
  confirm_probes = 4;

  /* An ACK relayed from the target: nothing happened. */
  make_core(9, 1);
  own_probe(target, &to, &seq);
  wr_swim_unreachable(sw, &to, now);
  n = ping_reqs(relays, target);
  feed_msg(WR_SWIM_NACK_REFUSED, seq, relays[0], NULL);
  feed_msg(WR_SWIM_ACK, seq, relays[1], NULL);
  now += 2000;
  wr_swim_tick(sw, now);
  expect(target, WR_SWIM_ALIVE, 0);
  wr_swim_del(sw);

  /* Refusals ignored: the relays are asked only after the timeout. */
  refused_ms = 0;
  make_core(9, 1);
  own_probe(target, &to, &seq);
  wr_swim_unreachable(sw, &to, now);
  assert_int_equal(ping_reqs(relays, target), 0);
  wr_swim_del(sw);
  refused_ms = 1000;
}

/* A relay whose ping of the target is refused says so at once
 * (NACK_REFUSED under the requester's seq), and not again at 80 %. */
static void test_refused_relay(void **state) {
  (void)state;
  make_core(0, 1);
  now += 100;
  wr_swim_packet p;
  wr_addr to;
  feed_msg(WR_SWIM_PING_REQ, 78, "m9", "m2");
  assert_int_equal(next_out(&p, &to), WR_SWIM_PING);
  wr_swim_unreachable(sw, &to, now);
  assert_int_equal(next_out(&p, &to), WR_SWIM_NACK_REFUSED);
  assert_int_equal(p.seq, 78);
  assert_int_equal(to.ip[3], 9);
  now += 500;
  wr_swim_tick(sw, now);
  assert_int_equal(next_out(&p, &to), 0);
  /* Someone else's address refused: nothing to say. */
  feed_msg(WR_SWIM_PING_REQ, 79, "m9", "m3");
  assert_int_equal(next_out(&p, &to), WR_SWIM_PING);
  wr_addr other = addr(4);
  wr_swim_unreachable(sw, &other, now);
  assert_int_equal(next_out(&p, &to), 0);
  wr_swim_del(sw);
}

/* A confirmation probe that is refused confirms at once; with a second
 * confirmation the suspicion ends refused_suspicion_ms after it began. */
static void test_refused_confirm(void **state) {
  (void)state;
  push_fanout = 8; /* every hearer probes (test_confirm_probe) */
  make_core(9, 1);
  wr_tstamp t0 = now;
  wr_swim_update u = upd(WR_SWIM_UPD_SUSPECT, "m1", 0);
  feed(&u);
  wr_addr m1 = addr(1);
  wr_swim_unreachable(sw, &m1, now);
  /* One confirmation (ours): 11.38 s, refused or not. */
  expect("m1", WR_SWIM_SUSPECT, 0);
  u = upd(WR_SWIM_UPD_SUSPECT, "m1", 0);
  strcpy(u.from, "m7");
  now += 300;
  feed(&u);
  time_to_dead("m1", 30000);
  assert_true(now - t0 >= 1000 && now - t0 <= 1020);
  wr_swim_del(sw);
  push_fanout = 0;
}

/* Probes into silence raise awareness (no nacks came back either), which
 * stretches the probe period; acks bring it back down. */
static void test_awareness(void **state) {
  (void)state;
  make_core(5, 1);
  uint8_t buf[WR_SWIM_DATAGRAM_MAX];
  wr_addr to;
  for (int s = 0; s < 4000; s++) {
    now += 10;
    wr_swim_tick(sw, now);
    while (wr_swim_send(sw, &to, buf, sizeof buf, now) > 0) {
    }
  }
  wr_swim_stats st;
  wr_swim_get_stats(sw, &st);
  assert_true(st.awareness >= 3);
  assert_true(st.awareness <= 7); /* awareness_max - 1 */
  assert_true(st.probe_failures >= 3);
  /* Fewer probes than one per second: the period stretched. */
  assert_true(st.probes < 30);
  wr_swim_del(sw);
}

/* A probe whose relays all stay silent raises awareness by one per
 * missing nack up to 3 relays (memberlist's rule), and by 3 however many
 * more were asked. */
static void test_awareness_nack_penalty(void **state) {
  (void)state;
  const unsigned ks[] = {1, 2, 3, 16}, want[] = {1, 2, 3, 3};
  for (size_t i = 0; i < WR_ARRAY_LEN(ks); i++) {
    indirect_checks = ks[i];
    make_core(9, 1);
    char target[16];
    wr_addr to;
    uint32_t seq;
    own_probe(target, &to, &seq);
    wr_swim_packet p;
    wr_swim_stats st;
    for (int steps = 0; steps < 200; steps++) {
      now += 10;
      wr_swim_tick(sw, now);
      while (next_out(&p, &to)) {
      }
      wr_swim_get_stats(sw, &st);
      if (st.probe_failures) break;
    }
    assert_int_equal(st.probe_failures, 1);
    assert_int_equal(st.awareness, want[i]);
    wr_swim_del(sw);
  }
  indirect_checks = 0;
}

/* swim_bqueue_take, decoded: the take writes encoded bytes (a packet's
 * raw tail); this checks they are exactly |got| whole updates. */
static size_t take_decoded(swim_bqueue *q, wr_swim_update *out, size_t max,
                           size_t *budget, uint32_t limit) {
  static uint8_t raw[128 * 1024];
  assert_true(*budget <= sizeof raw);
  size_t before = *budget;
  size_t got = swim_bqueue_take(q, raw, max, budget, limit);
  size_t len = before - *budget, off = 0;
  assert_true(got <= max);
  for (size_t i = 0; i < got; i++) {
    wr_ssize m = wr_swim_update_decode(raw + off, len - off, &out[i]);
    assert_true(m > 0);
    off += (size_t)m;
  }
  assert_int_equal(off, len);
  return got;
}

static void test_bqueue_order_and_limits(void **state) {
  (void)state;
  swim_bqueue q;
  swim_bqueue_init(&q, wr_mem_default(), SWIM_BQUEUE_MAX);
  wr_swim_update u = upd(WR_SWIM_UPD_ALIVE, "m1", 1), out[WR_SWIM_UPDATES_MAX];
  assert_int_equal(swim_bqueue_push(&q, &u), 0);
  u = upd(WR_SWIM_UPD_ALIVE, "m2", 1);
  assert_int_equal(swim_bqueue_push(&q, &u), 0);
  /* A newer update about m1 replaces the queued one. */
  u = upd(WR_SWIM_UPD_SUSPECT, "m1", 1);
  assert_int_equal(swim_bqueue_push(&q, &u), 0);
  assert_int_equal(q.n, 2);
  size_t budget = 1400;
  size_t got = take_decoded(&q, out, 1, &budget, 3);
  assert_int_equal(got, 1);
  assert_string_equal(out[0].id, "m1"); /* newest first */
  assert_int_equal(out[0].kind, WR_SWIM_UPD_SUSPECT);
  budget = 1400;
  got = take_decoded(&q, out, 1, &budget, 3);
  assert_string_equal(out[0].id, "m2"); /* then the least sent */
  /* Both sent twice more: the limit (3) retires them. */
  for (int r = 0; r < 2; r++) {
    budget = 1400;
    assert_int_equal(take_decoded(&q, out, 8, &budget, 3), 2);
  }
  assert_int_equal(q.n, 0);
  /* A USER repeat (same key, same or older version) does not replace the
   * queued one, so its send count is not reset; a newer version does. */
  wr_swim_update us;
  memset(&us, 0, sizeof us);
  us.kind = WR_SWIM_UPD_USER;
  strcpy(us.id, "m1");
  strcpy(us.key, "route/a");
  us.version = 5;
  assert_int_equal(swim_bqueue_push(&q, &us), 0);
  budget = 1400;
  take_decoded(&q, out, 8, &budget, 3);
  assert_int_equal(swim_bqueue_first(&q)->transmits, 1);
  us.version = 4;
  assert_int_equal(swim_bqueue_push(&q, &us), 0);
  us.version = 5;
  assert_int_equal(swim_bqueue_push(&q, &us), 0);
  assert_int_equal(q.n, 1);
  assert_int_equal(swim_bqueue_first(&q)->transmits, 1);
  us.version = 6;
  assert_int_equal(swim_bqueue_push(&q, &us), 0);
  assert_int_equal(q.n, 1);
  assert_int_equal(swim_bqueue_first(&q)->transmits, 0);
  assert_true(swim_bqueue_first(&q)->version == 6);
  budget = 1400;
  for (int r = 0; r < 3; r++) take_decoded(&q, out, 8, &budget, 3);
  assert_int_equal(q.n, 0);
  /* Budget: nothing that does not fit is taken. */
  u = upd(WR_SWIM_UPD_ALIVE, "m3", 1);
  swim_bqueue_push(&q, &u);
  budget = wr_swim_update_size(&u) - 1;
  assert_int_equal(take_decoded(&q, out, 8, &budget, 3), 0);
  swim_bqueue_free(&q);
}

/* At its bound the queue evicts the most-sent entry, its index finds
 * every survivor and none of the evicted, and takes send each entry
 * exactly |limit| times, never twice in one packet. */
static void test_bqueue_bound_and_takes(void **state) {
  (void)state;
  swim_bqueue q;
  swim_bqueue_init(&q, wr_mem_default(), SWIM_BQUEUE_MAX);
  wr_swim_update u, out[WR_SWIM_UPDATES_MAX];
  char id[16];
  for (int i = 0; i < SWIM_BQUEUE_MAX + 10; i++) {
    snprintf(id, sizeof id, "m%d", i);
    u = upd(WR_SWIM_UPD_ALIVE, id, 1);
    assert_int_equal(swim_bqueue_push(&q, &u), 0);
    if (i == 99) { /* m0..m99 sent once: they are the most-sent */
      size_t budget = 100000;
      for (int k = 0; k < 2; k++)
        assert_int_equal(take_decoded(&q, out, 50, &budget, 4), 50);
    }
  }
  assert_int_equal(q.n, SWIM_BQUEUE_MAX);
  assert_int_equal(q.dropped, 10);
  /* Level 1 is FIFO: m99..m50 were sent first and go first again, the
   * tail (m9..m0, sent last) is evicted first. */
  assert_false(swim_bqueue_has(&q, "m0"));
  assert_false(swim_bqueue_has(&q, "m9"));
  assert_true(swim_bqueue_has(&q, "m10"));
  assert_true(swim_bqueue_has(&q, "m99"));
  assert_true(swim_bqueue_has(&q, "m4105"));
  swim_bqueue_forget(&q, "m4105");
  assert_false(swim_bqueue_has(&q, "m4105"));
  assert_int_equal(q.n, SWIM_BQUEUE_MAX - 1);
  /* Drain: count sends per id. */
  static uint8_t sends[SWIM_BQUEUE_MAX + 10];
  memset(sends, 0, sizeof sends);
  size_t total = 0;
  for (int round = 0; round < 100000 && q.n; round++) {
    size_t budget = 1400 - (size_t)(round % 7) * 90;
    size_t got = take_decoded(&q, out, WR_SWIM_UPDATES_MAX, &budget, 4);
    assert_true(got > 0);
    for (size_t a = 0; a < got; a++) {
      for (size_t b = a + 1; b < got; b++)
        assert_string_not_equal(out[a].id, out[b].id);
      sends[atoi(out[a].id + 1)]++;
    }
    total += got;
  }
  assert_int_equal(q.n, 0);
  assert_null(swim_bqueue_first(&q));
  for (int i = 0; i < SWIM_BQUEUE_MAX + 10; i++) {
    int evicted = i <= 9, forgotten = i == 4105;
    int before = i < 100 ? 1 : 0; /* the first 100 had one send already */
    if (evicted || forgotten) continue;
    assert_int_equal(sends[i] + before, 4);
  }
  assert_int_equal(total, (size_t)(SWIM_BQUEUE_MAX - 1) * 4 - 90);
  swim_bqueue_free(&q);
}

/* Decodes one of the core's datagrams (identity seal). */
static void decode_sent(const uint8_t *b, size_t len, wr_swim_packet *p) {
  uint8_t plain[WR_SWIM_DATAGRAM_MAX];
  wr_swim_keyring kr;
  wr_swim_keyring_init(&kr);
  wr_ssize n = wr_swim_open(&kr, plain, sizeof plain, b, len);
  assert_true(n > 0);
  assert_int_equal(wr_swim_decode(plain, (size_t)n, p), 0);
}

/* USER updates have a queue of their own (user_queue_max): a flood of
 * them far beyond both bounds evicts USER entries only, exactly as many
 * as overflowed, and the membership update queued before the flood (and
 * already sent once, so in a shared queue it would be the most-sent and
 * go first) still rides every packet, ahead of the USER updates, until
 * its retransmit limit. */
static void test_user_queue_apart(void **state) {
  (void)state;
  wr_swim_config c;
  wr_swim_config_default(&c);
  c.user_queue_max = 100;
  start_core(&c, 8, 7);
  /* Our leave: one membership update, queued and pushed now. */
  assert_int_equal(wr_swim_leave(sw, now), 0);
  static uint8_t b[WR_SWIM_DATAGRAM_MAX];
  static wr_swim_packet p;
  wr_addr to;
  wr_ssize n = wr_swim_send(sw, &to, b, sizeof b, now);
  assert_true(n > 0);
  decode_sent(b, (size_t)n, &p);
  assert_int_equal(p.nupdates, 1);
  assert_int_equal(p.updates[0].kind, WR_SWIM_UPD_LEFT);
  /* The flood: more USER updates than both bounds together. */
  const int flood = SWIM_BQUEUE_MAX + 1000;
  for (int k = 0; k < flood; k++) {
    char key[32];
    snprintf(key, sizeof key, "route/%d", k);
    assert_int_equal(wr_swim_broadcast_user(sw, key, 1, (const uint8_t *)"x",
                                            1, now), 0);
  }
  wr_swim_stats st;
  wr_swim_get_stats(sw, &st);
  assert_int_equal(st.bcast_evicted_user, (uint64_t)flood - 100);
  assert_int_equal(st.bcast_evicted_member, 0);
  assert_int_equal(st.broadcast_queue, 101);
  assert_int_equal(st.broadcast_queue_user, 100);
  /* The LEFT goes out first in every packet until its limit (4 at 9
   * members); USER updates fill the rest of the room. */
  int lefts = 1, users = 0;
  while ((n = wr_swim_send(sw, &to, b, sizeof b, now)) > 0) {
    decode_sent(b, (size_t)n, &p);
    for (size_t k = 0; k < p.nupdates; k++) {
      if (p.updates[k].kind == WR_SWIM_UPD_LEFT) {
        assert_int_equal(k, 0);
        lefts++;
      } else {
        assert_int_equal(p.updates[k].kind, WR_SWIM_UPD_USER);
        users++;
      }
    }
  }
  assert_int_equal(lefts, 4);
  /* The same retransmit limit holds for the USER queue: each of the 100
   * survivors went out exactly 4 times, and the queues are empty. */
  assert_int_equal(users, 100 * 4);
  wr_swim_get_stats(sw, &st);
  assert_int_equal(st.broadcast_queue, 0);
  assert_int_equal(st.bcast_evicted_member, 0);
  assert_int_equal(st.bcast_evicted_user, (uint64_t)flood - 100);
  wr_swim_del(sw);
}

static size_t below(void *ud, size_t n) { return wr_pcg32_bounded(ud, (uint32_t)n); }

/* The member index against a model under random add/remove/shuffle. */
static void test_member_table(void **state) {
  (void)state;
  swim_members t;
  swim_members_init(&t, wr_mem_default());
  wr_pcg32 g;
  wr_pcg32_seed(&g, 99, 1);
  static int present[3000];
  memset(present, 0, sizeof present);
  for (int step = 0; step < 20000; step++) {
    int k = (int)wr_pcg32_bounded(&g, 3000);
    char id[40];
    /* Long ids exercise the heap path. */
    snprintf(id, sizeof id, k % 3 ? "m%d" : "a-much-longer-member-id-%d", k);
    ssize_t i = swim_members_find(&t, id);
    assert_int_equal(i >= 0, present[k]);
    if (i < 0) {
      wr_addr a = addr(k % 250);
      assert_true(swim_members_add(&t, id, &a, 0, 0) >= 0);
      present[k] = 1;
    } else if (wr_pcg32_bounded(&g, 2)) {
      swim_members_remove(&t, (size_t)i);
      present[k] = 0;
    }
    if (step % 5000 == 0) swim_members_shuffle(&t, below, &g);
  }
  size_t n = 0;
  for (int k = 0; k < 3000; k++) n += (size_t)present[k];
  assert_int_equal(t.n, n);
  swim_members_free(&t);
}

static void test_copy_members(void **state) {
  (void)state;
  make_core(0, 1);
  wr_swim *src = sw;
  wr_addr a = addr(1), d = addr(77);
  assert_int_equal(wr_swim_add_member(src, "m1", &a, &d, 3, now), 0);
  a = addr(2);
  assert_int_equal(wr_swim_add_member(src, "a-rather-long-member-id-2", &a,
                                      NULL, 0, now), 0);
  a = addr(3);
  assert_int_equal(wr_swim_add_member(src, "m3", &a, NULL, 0, now), 0);
  /* m3's own core: it gets m1, the long one, and "me"; not itself. */
  wr_swim_config c;
  wr_swim_config_default(&c);
  strcpy(c.id, "m3");
  c.gossip = addr(3);
  c.rand = wr_pcg32_fill;
  c.rand_user_data = &rng;
  wr_swim *dst;
  assert_int_equal(wr_swim_new(&dst, &c, NULL, NULL, NULL, NULL, now), 0);
  assert_int_equal(wr_swim_copy_members(dst, src, now), 0);
  assert_int_equal(wr_swim_member_count(dst), 3);
  wr_swim_member_info m;
  assert_int_equal(wr_swim_member_find(dst, "m3", &m), WR_ERR_NOTFOUND);
  assert_int_equal(wr_swim_member_find(dst, "me", &m), 0);
  assert_int_equal(wr_swim_member_find(dst, "m1", &m), 0);
  assert_int_equal(m.incarnation, 3);
  assert_int_equal(m.data.ip[3], 77);
  assert_int_equal(wr_swim_member_find(dst, "a-rather-long-member-id-2", &m), 0);
  /* Deep copies: freeing the source leaves the copy intact (ASan). */
  wr_swim_del(src);
  assert_int_equal(wr_swim_member_find(dst, "a-rather-long-member-id-2", &m), 0);
  assert_int_equal(wr_swim_copy_members(dst, dst, now), WR_ERR_INVAL);
  wr_swim_del(dst);
}

static void test_config_set(void **state) {
  (void)state;
  wr_swim_config c;
  char err[128];
  wr_swim_config_default(&c);
  assert_int_equal(wr_swim_config_set(&c, "probe-interval-ms", "750", err, sizeof err), 0);
  assert_int_equal(c.probe_interval_ms, 750);
  assert_int_equal(wr_swim_config_set(&c, "suspicion_mult", "2", err, sizeof err), 0);
  assert_int_equal(c.suspicion_mult, 2);
  assert_int_equal(wr_swim_config_set(&c, "lifeguard", "0", err, sizeof err), 0);
  assert_int_equal(c.lifeguard, 0);
  assert_int_equal(wr_swim_config_set(&c, "lifeguard", "2", err, sizeof err), WR_ERR_INVAL);
  assert_non_null(strstr(err, "0..1"));
  assert_int_equal(wr_swim_config_set(&c, "gossip-nodes", "-1", err, sizeof err), WR_ERR_INVAL);
  assert_int_equal(wr_swim_config_set(&c, "gossip-nodes", "3x", err, sizeof err), WR_ERR_INVAL);
  assert_int_equal(wr_swim_config_set(&c, "gossip-nodes", "", err, sizeof err), WR_ERR_INVAL);
  assert_int_equal(wr_swim_config_set(&c, "nope", "1", err, sizeof err), WR_ERR_INVAL);
  assert_non_null(strstr(err, "unknown gossip setting 'nope'"));
  assert_int_equal(c.user_queue_max, 4096);
  assert_int_equal(wr_swim_config_set(&c, "user-queue-max", "64", err, sizeof err), 0);
  assert_int_equal(c.user_queue_max, 64);
  assert_int_equal(wr_swim_config_set(&c, "user_queue_max", "0", err, sizeof err), WR_ERR_INVAL);
  assert_int_equal(wr_swim_config_set(&c, "user-queue-max", "1048577", err, sizeof err), WR_ERR_INVAL);
  assert_int_equal(c.user_queue_max, 64);
  /* Every advertised name is known (1 may be out of its range). */
  for (size_t i = 0; wr_swim_config_names[i]; i++) {
    err[0] = 0;
    wr_swim_config_set(&c, wr_swim_config_names[i], "1", err, sizeof err);
    assert_null(strstr(err, "unknown"));
  }
  /* Profiles: unknown names refused, known ones keep identity fields. */
  wr_swim_config_default(&c);
  strcpy(c.id, "keep");
  assert_int_equal(wr_swim_config_profile(&c, "wan"), 0);
  assert_int_equal(c.probe_interval_ms, 5000);
  assert_string_equal(c.id, "keep");
  assert_int_equal(wr_swim_config_profile(&c, "mars"), WR_ERR_INVAL);
}

/* Reconnect candidates (reconnect.c): members declared DEAD, in the table
 * or reaped, for reconnect_timeout; never one that LEFT.  With one DEAD
 * and nobody alive the probability failed / alive is 1, so every interval
 * makes an attempt, and each one names the dead member. */
static void test_reconnect_candidates(void **state) {
  (void)state;
  wr_swim_config c;
  wr_swim_config_default(&c);
  c.reconnect_timeout_ms = 300000; /* 5 min, so the test can outlive it */
  start_core(&c, 2, 7);
  wr_swim_update u = upd(WR_SWIM_UPD_LEFT, "m0", 0);
  feed(&u);
  u = upd(WR_SWIM_UPD_DEAD, "m1", 0);
  feed(&u);
  wr_tstamp dead_at = now;
  unsigned attempts = 0, reaped_attempts = 0;
  uint8_t buf[WR_SWIM_DATAGRAM_MAX];
  wr_addr to, peer;
  while (now < dead_at + 600000) {
    now += 100;
    wr_swim_tick(sw, now);
    assert_true(wr_swim_deadline(sw) > now);
    while (wr_swim_send(sw, &to, buf, sizeof buf, now) > 0) {
    }
    while (wr_swim_sync_due(sw, &peer, now)) {
      assert_int_equal(peer.ip[3], 1); /* m1, never m0 */
      assert_true(now - dead_at < c.reconnect_timeout_ms + 1);
      attempts++;
      reaped_attempts += wr_swim_member_count(sw) == 0;
    }
  }
  /* 5 minutes of 30 s intervals, the first within 30 s of the start. */
  assert_true(attempts >= 9 && attempts <= 11);
  assert_true(reaped_attempts >= 8); /* m1 was reaped after 30 s */
  wr_swim_stats st;
  wr_swim_get_stats(sw, &st);
  assert_int_equal(st.reconnects, attempts);
  assert_int_equal(wr_swim_member_count(sw), 0);
  wr_swim_del(sw);
}

/* Catch-up syncs (wr_swim_sync_behind): the first a second after the
 * report, then two more at doubling gaps of max(2 s, interval / 8), each
 * with a live member, and no more; a report while they are pending
 * restarts the count, not the clock; none with syncs off. */
static unsigned catchup_run(uint64_t interval, wr_tstamp *at, unsigned max,
                            int again_at_ms) {
  wr_swim_config c;
  wr_swim_config_default(&c);
  c.probe_interval_ms = 3600000; /* no probes: the members stay ALIVE */
  c.sync_interval_ms = interval;
  start_core(&c, 4, 11);
  wr_swim_tick(sw, now);
  wr_tstamp t0 = now;
  wr_swim_sync_behind(sw, now);
  unsigned n = 0;
  uint64_t seen = 0;
  wr_addr peer;
  uint8_t buf[WR_SWIM_DATAGRAM_MAX];
  wr_addr to;
  while (now < t0 + 60000) {
    now += 50;
    if (again_at_ms && now == t0 + (wr_tstamp)again_at_ms)
      wr_swim_sync_behind(sw, now);
    wr_swim_tick(sw, now);
    while (wr_swim_send(sw, &to, buf, sizeof buf, now) > 0) {
    }
    while (wr_swim_sync_due(sw, &peer, now)) assert_true(peer.ip[3] < 4);
    wr_swim_stats st;
    wr_swim_get_stats(sw, &st);
    if (st.syncs_catchup != seen) {
      assert_int_equal(st.syncs_catchup, seen + 1);
      seen = st.syncs_catchup;
      if (n < max) at[n] = now - t0;
      n++;
    }
  }
  wr_swim_del(sw);
  sw = NULL;
  return n;
}

static void test_catchup_syncs(void **state) {
  (void)state;
  wr_tstamp at[8];
  /* 4 members: the interval is 30 s, so the gaps are 3.75 and 7.5 s. */
  assert_int_equal(catchup_run(30000, at, 8, 0), 3);
  assert_int_equal(at[0], 1000);
  assert_int_equal(at[1], 1000 + 3750);
  assert_int_equal(at[2], 1000 + 3750 + 7500);
  /* A 4 s interval: the 2 s floor (2 and 4 s). */
  assert_int_equal(catchup_run(4000, at, 8, 0), 3);
  assert_int_equal(at[1] - at[0], 2000);
  assert_int_equal(at[2] - at[1], 4000);
  /* Reported again after the first: the count restarts, the clock runs
   * on (3.75 s after the first, then 3.75 again and 7.5). */
  assert_int_equal(catchup_run(30000, at, 8, 2000), 4);
  assert_int_equal(at[0], 1000);
  assert_int_equal(at[1], 1000 + 3750);
  assert_int_equal(at[2], 1000 + 3750 + 3750);
  assert_int_equal(at[3], 1000 + 3750 + 3750 + 7500);
  /* Syncs off: nothing. */
  assert_int_equal(catchup_run(0, at, 8, 0), 0);
}

static size_t below_zero(void *ud, size_t n) {
  (void)ud, (void)n;
  return 0;
}

/* The list of reaped members is bounded: the longest-dead gives way, a
 * repeat replaces its entry, and members back in the table are dropped. */
static void test_lost_bounded(void **state) {
  (void)state;
  swim_lost l;
  swim_members t;
  swim_lost_init(&l, NULL);
  swim_members_init(&t, NULL);
  for (int i = 0; i < SWIM_LOST_MAX + 10; i++) {
    char id[16];
    snprintf(id, sizeof id, "d%d", i);
    wr_addr a = addr(i % 250);
    ssize_t k = swim_members_add(&t, id, &a, 0, (wr_tstamp)1000 + (wr_tstamp)i);
    assert_true(k >= 0);
    t.v[k].state = WR_SWIM_DEAD;
    swim_lost_add(&l, &t.v[k]);
    swim_lost_add(&l, &t.v[k]); /* a repeat takes no room */
    swim_members_remove(&t, (size_t)k);
  }
  assert_int_equal(l.n, SWIM_LOST_MAX);
  for (int i = 0; i < 10; i++) {
    char id[16];
    snprintf(id, sizeof id, "d%d", i);
    assert_false(swim_lost_has(&l, id));
  }
  assert_true(swim_lost_has(&l, "d10"));
  assert_true(swim_lost_has(&l, "d521"));
  /* d10 comes back: no longer a reaped candidate. */
  wr_addr a = addr(10);
  swim_members_add(&t, "d10", &a, 1, 5000);
  wr_addr peer;
  assert_int_equal(
      swim_reconnect_pick(&l, &t, 5000, 3600000, below_zero, NULL, &peer), 1);
  assert_false(swim_lost_has(&l, "d10"));
  assert_int_equal(l.n, SWIM_LOST_MAX - 1);
  /* Past the timeout everything is forgotten. */
  assert_int_equal(swim_reconnect_pick(&l, &t,
                                       1000 + 3600000 + SWIM_LOST_MAX + 10,
                                       3600000, below_zero, NULL, &peer),
                   0);
  assert_int_equal(l.n, 0);
  swim_lost_free(&l);
  swim_members_free(&t);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_merge_table),
      cmocka_unit_test(test_unknown_members),
      cmocka_unit_test(test_stale_accusation_corrected),
      cmocka_unit_test(test_ping_req_relay),
      cmocka_unit_test(test_hello_to_unknown_pinger),
      cmocka_unit_test(test_self_refutation),
      cmocka_unit_test(test_suspicion_timer),
      cmocka_unit_test(test_lan_suspicion_timing),
      cmocka_unit_test(test_suspicion_bounds),
      cmocka_unit_test(test_lan_suspicion_at_scale),
      cmocka_unit_test(test_many_confirmations),
      cmocka_unit_test(test_last_chance),
      cmocka_unit_test(test_suspicion_restarts),
      cmocka_unit_test(test_confirm_probe),
      cmocka_unit_test(test_confirm_indirect),
      cmocka_unit_test(test_confirm_bounded),
      cmocka_unit_test(test_refused_probe),
      cmocka_unit_test(test_refused_relay),
      cmocka_unit_test(test_refused_confirm),
      cmocka_unit_test(test_awareness),
      cmocka_unit_test(test_awareness_nack_penalty),
      cmocka_unit_test(test_bqueue_order_and_limits),
      cmocka_unit_test(test_bqueue_bound_and_takes),
      cmocka_unit_test(test_user_queue_apart),
      cmocka_unit_test(test_member_table),
      cmocka_unit_test(test_copy_members),
      cmocka_unit_test(test_config_set),
      cmocka_unit_test(test_reconnect_candidates),
      cmocka_unit_test(test_catchup_syncs),
      cmocka_unit_test(test_lost_bounded),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
