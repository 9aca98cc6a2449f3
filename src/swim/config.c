/*
 * Defaults and profiles.  They start from HashiCorp memberlist's
 * DefaultLANConfig / DefaultWANConfig / DefaultLocalConfig, the de-facto
 * reference for SWIM in production; where warren departs from them the
 * comment says why and docs/SWIM.md has the simulator runs behind it.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "warren/err.h"
#include "warren/swim.h"

const char *wr_swim_state_name(wr_swim_state s) {
  switch (s) {
  case WR_SWIM_ALIVE: return "alive";
  case WR_SWIM_SUSPECT: return "suspect";
  case WR_SWIM_DEAD: return "dead";
  case WR_SWIM_LEFT: return "left";
  }
  return "unknown";
}

static void lan(wr_swim_config *c) {
  /* One probe per second keeps each member's load O(1) whatever n is, and
   * a dead member is probed by someone within about one round (SWIM 4.1). */
  c->probe_interval_ms = 1000;
  /* An order of magnitude above LAN RTT, and short enough that the
   * indirect probes still fit inside the same round. */
  c->probe_timeout_ms = 500;
  /* k indirect probers.  With loss p a direct probe fails with
   * f = 1 - (1-p)^2 and each relay path (4 datagrams) with
   * r = 1 - (1-p)^4, so a live member is suspected with f * r^k per probe,
   * and a fleet of n raises n * f * r^k suspicions a second, every one
   * gossiped to all with its refutation.  memberlist's k = 3 gives 22 %
   * per probe at 30 % loss: at 2,000 members that is more news than the
   * piggyback capacity carries, refutations stop arriving in time and
   * the simulator's fleet collapsed (1,475 healthy members declared
   * dead, 38 KB/s per node).  k = 16 gives 0.6 %: 0 false deaths at
   * 2,000 (5.8 KB/s per node) and at 10,000 members.  The cost is paid
   * only when a direct probe fails: 16 small ping-reqs instead of 3,
   * about 10-40 % more packets under loss and none without; bytes fall
   * because the chatter does.  Relays are distinct, and the Lifeguard nack penalty
   * is scaled to 3 relays (swim.c).  docs/BENCHMARKS.md has the runs. */
  c->indirect_checks = 16;
  /* The suspicion timer runs from max = 18 * log10(n) rounds down to
   * min = 1 * log10(n) rounds (up to 100 members; beyond, min grows by
   * an epidemic's length per tenfold, 0.33 s, wr_swim_suspicion_bounds
   * below) as k independent members confirm it (Lifeguard;
   * suspicion.c, susp_retime).  Both ends have a different job:
   *
   * max is what a lone accusation costs, the case of a live member that
   * one prober (perhaps itself slow or badly connected) failed to reach:
   * the suspect must hear of it and its refutation must reach everyone
   * who heard the suspicion, at any loss, with a margin for the rare
   * member the refutation's epidemic misses.  18 * log10(n) rounds is
   * what warren had (3 * 6) and what 0 false deaths at 10,000 members
   * and 30 % loss was measured with; it stays.
   *
   * min applies only once k other members saw the suspect fail for
   * themselves, each with a probe as strong as a normal one (direct,
   * then 16 relays: a live member fails one with probability 6e-9 at
   * 10 % loss, 0.6 % at 30 %).  A member that k + 1 members cannot
   * reach on 17 paths each is not serving anyone, and a live suspect
   * answers the accuser's direct notice and the buddy probes within a
   * round trip and its refutation spreads within a few gossip
   * intervals (about 0.2 s at 50 members): so min needs to cover the
   * confirmations themselves (one probe interval) and dissemination,
   * not the several rounds Lifeguard's default gives.  1 * log10(n)
   * rounds (1.3 s at 20 members, 1.7 s at 50) is the smallest the
   * integer tunable allows, and it is what a silent failure (a host
   * that vanished: SIGSTOP on loopback) costs after its first failed
   * probe: it was 3 * log10(n) (memberlist uses 4), and SIGSTOP
   * detection took 0.63-0.86x serf's time; with 1 it took 0.38-0.47x at 20
   * and 0.38x at 50 members (docs/BENCHMARKS.md, "Silent failures").  The price: a process
   * that is frozen (GC, swap, a stopped VM) for more than about
   * 2 + log10(n) s is declared dead where it used to be 2 + 3 log10(n)
   * s, and refutes when it wakes (its names come back with it).  In the
   * simulator: 0 false deaths at 10 % and 30 % loss over 10 minutes at
   * 20 and 50 members, and at 2,000 members and 30 % loss over 5 minutes
   * (with the lone-suspicion fix in suspicion.c, ask_fleet).  Beyond
   * 100 members the minimum no longer takes a probe interval per
   * tenfold (2.33 s at 1,000, 2.66 s at 10,000 instead of 3 and 4 s):
   * wr_swim_suspicion_bounds has the model. */
  c->suspicion_mult = 1;
  c->suspicion_max_timeout_mult = 18;
  /* k = 2: memberlist's (its suspicion_mult - 2). */
  c->suspicion_confirmations = 2;
  /* Each update rides mult * ceil(log10(n+1)) packets: epidemic spread
   * reaches all n members with high probability at that fan-out. */
  c->retransmit_mult = 4;
  /* memberlist's GossipNodes: 3 random members per gossip interval, so
   * an update reaches about 3^h members after h intervals. */
  c->gossip_nodes = 3;
  /* Gossip five times per probe round: dissemination should not wait for
   * probes. */
  c->gossip_interval_ms = 200;
  c->gossip_to_dead_ms = 30000;
  /* Pushing an update we originate to 3 members at once saves up to one
   * gossip interval per hop at the cost of 3 packets per update. */
  c->push_fanout = 3;
  /* Relaying USER news within 10 ms of its arrival (to push_fanout
   * members), round after round while it is within its retransmit
   * budget, makes a route change a fast epidemic: about ceil(log3 n)
   * hops of <= 10 ms + one network delay each (50 members: 4 hops, tens
   * of ms) instead of up to a 200 ms gossip interval per hop on a busy
   * node.  The window batches: at 500 changes/s a node sends at most 100
   * relay rounds of 3 packets a second, each carrying the news of its
   * window; the bytes are the retransmit budget's, as before. */
  c->user_relay_ms = 10;
  /* Anti-entropy every 30 s (scaled with log n above 32 members): a
   * backstop for updates that gossip lost, not the main path. */
  c->sync_interval_ms = 30000;
  /* Remember the dead for a while so a stale ALIVE cannot resurrect
   * them, and so a wrongly declared member can still refute. */
  c->dead_reap_ms = 30000;
  /* Awareness multiplies our timeouts by at most 8. */
  c->awareness_max = 8;
  c->lifeguard = 1;
  /* Members that hear of a suspicion before it has its k confirmations
   * probe it with probability (k + fan-out) / (n - 2) (suspicion.c,
   * swim_confirm_probe), so a fleet of any size sends about k + fan-out = 5
   * confirmation probes per suspicion (measured: 4-6 at 100-3,000
   * members, docs/BENCHMARKS.md), none when idle; 4 outstanding per
   * member is room for several suspicions at once. */
  c->confirm_probes = 4;
  /* A member whose port is refused by its own kernel has no process
   * behind it: the suspicion timeout exists so a live but slow member can
   * refute, and a slow process still holds its socket.  One probe round
   * leaves a process that is restarting on the same address time to
   * answer the buddy probes; a confirmed refusal then kills in about one
   * second instead of mult * log10(n).  docs/SWIM.md ("Refused probes")
   * has the measurements and the forged-ICMP caveat. */
  c->refused_suspicion_ms = 1000;
  /* serf's ReconnectInterval.  A partition that outlasted dead_reap heals
   * within about one interval after the network does (the failed/alive
   * probability makes the minority side try every time), and the fleet
   * as a whole spends about one connection attempt per dead member per
   * interval, whatever its size. */
  c->reconnect_interval_ms = 30000;
  /* serf's ReconnectTimeout: an outage or partition of up to a day heals
   * by itself.  What it costs: at most 512 remembered members (~104
   * bytes each) per node, and the attempts above. */
  c->reconnect_timeout_ms = 24ull * 3600 * 1000;
  /* The reconnect ticker alone heals a partition only at its next tick
   * (up to 30 s after the network healed; 2.4 s in the chaos harness's
   * short partition-heal, where the acceptance is 2 s).  One datagram
   * per probe interval to a random failed member, sent with probability
   * failed / known, costs the fleet about one datagram per failed member
   * per second (a member that is really gone: one a second fleet-wide;
   * the two halves of a split: at most one per member per second, as
   * much as the ordinary probes), and finds a healed network within
   * about a second. */
  c->dead_probe_interval_ms = 1000;
  /* USER updates (the ownership table's changes) wait in a queue of
   * their own, so that churn there never evicts membership news.  Its
   * bound is the membership queue's, 4,096: a node's piggyback capacity
   * is about 3 gossip packets per 200 ms of ~1,400 bytes, some 150 route
   * updates a second, and each is sent retransmit_mult * log10(n + 1)
   * times (12 at 1,000 members), so a node spreads ~12 fresh updates a
   * second and the queue holds about five minutes of backlog beyond
   * that.  Anything older is evicted (counted) and left to the periodic
   * sync, which repairs it within one sync interval.  Memory: at most
   * ~1.2 KB per entry with a full 1 KiB payload, ~5 MB; route entries
   * are ~100-200 bytes, ~0.8 MB. */
  c->user_queue_max = 4096;
  /* Regions (docs/SWIM.md "Regions"): on, since a fleet with one region
   * (or none given) behaves exactly as region-blind.  One probe in 5
   * crosses: at 3 x 1,000 members each member of a region is still
   * probed from outside about every 2.5 s by somebody (2,000 remote
   * members x 1/5 probe a second / 1,000), which is what finds a region
   * that vanished as a whole, for about 0.2 WAN round trips a second per
   * member instead of the region-blind two thirds of every probe.  One
   * gossip packet a round across: news reaches another region within a
   * round of its first holder there (each of a region's holders sends
   * one across), and the cross share of gossip falls from (R-1)/R of
   * the packets to 1 in gossip_nodes.  30 s of silence before a
   * region's members are suspected one by one: a WAN cut shorter than
   * that costs no suspicion at all; one that lasts, or a region gone,
   * then takes the ordinary path (the Lifeguard maximum, since nobody
   * in the region confirms). */
  c->region_aware = 1;
  /* A region's suspicion: mult * log10(region size) rounds, 2 instead of
   * suspicion_mult's 3.  The minimum is there for the suspect to hear of
   * the accusation and for its refutation to reach those who hold it;
   * with regions both happen inside one region over LAN round trips (the
   * accuser tells the suspect at once, relays and confirmation probes
   * are its neighbours), and only that region's members confirm, so a
   * suspicion that reaches the minimum was seen failing by k of them
   * for themselves.  At 3 x 1,000 members that is 6 s instead of 9 s
   * (10.4 s for the region-blind fleet of 3,000), which is what brings
   * "dead in every region" under issue 14's 10 s; the 10-minute run at
   * 10 % loss behind it is in docs/BENCHMARKS.md ("Regions"). */
  c->region_suspicion_mult = 2;
  c->region_cross_probe = 5;
  c->region_cross_gossip = 1;
  c->region_down_ms = 30000;
}

void wr_swim_config_default(wr_swim_config *cfg) {
  memset(cfg, 0, sizeof *cfg);
  lan(cfg);
}

int wr_swim_config_profile(wr_swim_config *c, const char *name) {
  if (strcmp(name, "lan") == 0) {
    lan(c);
  } else if (strcmp(name, "wan") == 0) {
    /* Internet RTTs and loss: memberlist's WAN timings. */
    lan(c);
    c->probe_interval_ms = 5000;
    c->probe_timeout_ms = 3000;
    /* memberlist's WAN minimum (6 * log10(n) rounds of 5 s), and the
     * Lifeguard maximum 6x that as memberlist has it: a WAN's loss
     * comes in bursts and its members behind NATs and firewalls, where
     * the confirmations the LAN profile relies on are weaker
     * evidence. */
    c->suspicion_mult = 6;
    c->suspicion_max_timeout_mult = 6;
    c->gossip_nodes = 4;
    c->gossip_interval_ms = 500;
    c->gossip_to_dead_ms = 60000;
    c->sync_interval_ms = 60000;
    c->dead_reap_ms = 60000;
    /* Across the Internet ICMP is filtered, rate-limited and forgeable
     * by more parties: trust only silence. */
    c->refused_suspicion_ms = 0;
    c->dead_probe_interval_ms = 5000; /* the probe interval */
    /* serf uses 30 s on the WAN too: healing is worth one connection
     * attempt per dead member per 30 s fleet-wide. */
  } else if (strcmp(name, "local") == 0) {
    /* One host (tests, loopback): tiny RTT, so short timeouts are safe. */
    lan(c);
    c->probe_timeout_ms = 200;
    c->indirect_checks = 1;
    /* Every node of a loopback fleet shares the host's CPUs, and a
     * loaded test box starves processes for seconds: the confirmed
     * minimum stays at 3 * log10(n) rounds (the LAN profile's before
     * issue 14), so a starved test node is not declared dead after 2 s.
     * With one relay a confirmation is weaker here, too.  The maximum
     * is 6x the minimum, as before. */
    c->suspicion_mult = 3;
    c->suspicion_max_timeout_mult = 6;
    /* memberlist's local profile uses 2; with ten nodes joining at once
     * that left views to the periodic sync (swim10 took 11-28 s to see
     * everyone; 0.2 s with 4). */
    c->gossip_interval_ms = 100;
    c->gossip_to_dead_ms = 15000;
    c->sync_interval_ms = 15000;
    c->dead_reap_ms = 15000;
    /* One host: an attempt is a loopback connect, so heal faster. */
    c->reconnect_interval_ms = 10000;
  } else {
    return WR_ERR_INVAL;
  }
  return 0;
}

/* The suspicion timer's two ends (swim.h).  The maximum is memberlist's
 * shape, suspicion_max_timeout_mult * mult * log10(n) probe intervals: a
 * lone accusation, where the suspect must hear of it and its refutation
 * reach every holder at any loss.
 *
 * The minimum applies only once k other members failed to reach the
 * suspect for themselves, each for a whole probe interval, and what it
 * must still cover is the race between a refutation and the suspicion:
 * the suspect hears of the accusation a round trip after it starts (the
 * accuser tells it at once; the confirmers' probes carry it too), and
 * its refutation then spreads by the same epidemic as the suspicion did,
 * pushed at once and gossiped every interval to gossip_nodes members.
 * Each holder's timer starts when it hears the suspicion, so what one
 * holder needs is the refutation's lag behind the suspicion at that
 * holder, worst at the accuser (it held the suspicion first): a round
 * trip plus one epidemic, log(n) / log(gossip_nodes + 1) gossip
 * intervals plus its tail.  The k confirmations themselves arrive only
 * after a probe interval and an epidemic of their own, so by then the
 * refutation of a live suspect (a probe interval ahead) has usually
 * reached the holder already; the minimum is the margin for the rare
 * holder its epidemic missed, and for a suspect that was only slow.
 *
 * memberlist's log10(n) probe intervals charge a whole probe interval
 * per tenfold growth of the fleet, where the epidemic needs
 * log(10) / log(g + 1) gossip intervals (g = gossip_nodes): 0.33 s on
 * LAN, not 1 s.  Measured in the simulator: the last member holds a
 * suspicion 0.3-0.5 s after its accuser at 100 members, 0.6-0.9 s at
 * 1,000, 0.6-1.2 s at 10,000.  Up to 100 members the minimum stays as
 * it was (1.3 s at 20, 2 s at 100 on LAN): there it is set by the stalls
 * it must forgive and by the SIGSTOP and false-death runs measured with
 * it (docs/SWIM.md), not by the epidemic.  Beyond 100, each tenfold adds
 * what the epidemic costs: 2.33 s at 1,000 and 2.66 s at 10,000 on LAN
 * instead of 3 s and 4 s, so a member stalled (GC, swap, a stopped VM)
 * with k members probing it meanwhile is forgiven as long in a fleet of
 * 10,000 as in one of 100, plus the longer epidemic.  docs/BENCHMARKS.md
 * ("Detection at 10,000 against 100") has the runs at loss behind it. */
void wr_swim_suspicion_bounds(const wr_swim_config *c, unsigned mult,
                              size_t n, uint64_t *pmin, uint64_t *pmax) {
  double decades = log10((double)(n ? n : 1));
  if (decades < 1) decades = 1;
  double scale = decades;
  if (decades > 2 && c->gossip_nodes && c->probe_interval_ms) {
    double per = log(10.0) / log((double)c->gossip_nodes + 1.0) *
                 (double)c->gossip_interval_ms /
                 (double)c->probe_interval_ms;
    if (per < 1) scale = 2 + (decades - 2) * per;
  }
  uint64_t min = (uint64_t)(mult * scale * (double)c->probe_interval_ms);
  uint64_t max = (uint64_t)(mult * decades * (double)c->probe_interval_ms);
  if (c->lifeguard)
    max *= c->suspicion_max_timeout_mult;
  else
    max = min;
  *pmin = min;
  *pmax = max < min ? min : max;
}

/* The tunables by name, for --config files, flags and the simulator. */
typedef struct tunable {
  const char *name;
  size_t off;
  int is_u64; /* 1: uint64_t, 0: unsigned (or lifeguard's int), 2: size_t */
  uint64_t lo, hi;
} tunable;

#define U64(n, f, lo, hi) {n, offsetof(wr_swim_config, f), 1, lo, hi}
#define UNS(n, f, lo, hi) {n, offsetof(wr_swim_config, f), 0, lo, hi}
static const tunable tunables[] = {
    U64("probe-interval-ms", probe_interval_ms, 10, 600000),
    U64("probe-timeout-ms", probe_timeout_ms, 1, 600000),
    UNS("indirect-checks", indirect_checks, 0, 32),
    UNS("suspicion-mult", suspicion_mult, 1, 100),
    UNS("suspicion-max-timeout-mult", suspicion_max_timeout_mult, 1, 100),
    UNS("suspicion-confirmations", suspicion_confirmations, 0,
        WR_SWIM_CONFIRMATIONS_MAX),
    UNS("retransmit-mult", retransmit_mult, 1, 100),
    UNS("gossip-nodes", gossip_nodes, 0, 64),
    U64("gossip-interval-ms", gossip_interval_ms, 1, 600000),
    U64("gossip-to-dead-ms", gossip_to_dead_ms, 0, 86400000),
    UNS("push-fanout", push_fanout, 0, 64),
    U64("sync-interval-ms", sync_interval_ms, 0, 86400000),
    U64("dead-reap-ms", dead_reap_ms, 0, 86400000),
    UNS("awareness-max", awareness_max, 1, 64),
    {"lifeguard", offsetof(wr_swim_config, lifeguard), 0, 0, 1},
    UNS("confirm-probes", confirm_probes, 0, 16),
    U64("refused-suspicion-ms", refused_suspicion_ms, 0, 600000),
    U64("reconnect-interval-ms", reconnect_interval_ms, 0, 86400000),
    U64("reconnect-timeout-ms", reconnect_timeout_ms, 0, 30ull * 86400000),
    U64("dead-probe-interval-ms", dead_probe_interval_ms, 0, 86400000),
    /* 1 Mi entries of up to 1.2 KB is 1.2 GB: beyond that no box holds
     * it, and the sync is the better path anyway. */
    {"user-queue-max", offsetof(wr_swim_config, user_queue_max), 2, 1,
     1u << 20},
    U64("user-relay-ms", user_relay_ms, 0, 60000),
    {"region-aware", offsetof(wr_swim_config, region_aware), 0, 0, 1},
    UNS("region-suspicion-mult", region_suspicion_mult, 0, 100),
    UNS("region-cross-probe", region_cross_probe, 0, 1000),
    UNS("region-cross-gossip", region_cross_gossip, 0, 64),
    U64("region-down-ms", region_down_ms, 0, 86400000),
};
#undef U64
#undef UNS

const char *const wr_swim_config_names[] = {
    "probe-interval-ms", "probe-timeout-ms", "indirect-checks",
    "suspicion-mult", "suspicion-max-timeout-mult",
    "suspicion-confirmations", "retransmit-mult", "gossip-nodes",
    "gossip-interval-ms", "gossip-to-dead-ms", "push-fanout",
    "sync-interval-ms", "dead-reap-ms", "awareness-max", "lifeguard",
    "confirm-probes", "refused-suspicion-ms", "reconnect-interval-ms",
    "reconnect-timeout-ms", "user-queue-max", "user-relay-ms",
    "region-aware", "region-suspicion-mult", "region-cross-probe", "region-cross-gossip",
    "region-down-ms", "dead-probe-interval-ms", NULL};

int wr_swim_config_set(wr_swim_config *cfg, const char *name,
                       const char *value, char *err, size_t errlen) {
  char key[40];
  size_t n = strlen(name);
  if (n >= sizeof key) n = sizeof key - 1;
  for (size_t i = 0; i < n; i++) key[i] = name[i] == '_' ? '-' : name[i];
  key[n] = 0;
  for (size_t i = 0; i < sizeof tunables / sizeof tunables[0]; i++) {
    const tunable *t = &tunables[i];
    if (strcmp(t->name, key) != 0) continue;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(value, &end, 10);
    if (!value[0] || *end || errno || value[0] == '-' || v < t->lo ||
        v > t->hi) {
      snprintf(err, errlen, "%s wants a whole number in %llu..%llu, got '%.40s'",
               t->name, (unsigned long long)t->lo, (unsigned long long)t->hi,
               value);
      return WR_ERR_INVAL;
    }
    if (t->is_u64 == 2)
      *(size_t *)(void *)((char *)cfg + t->off) = (size_t)v;
    else if (t->is_u64)
      *(uint64_t *)(void *)((char *)cfg + t->off) = v;
    else if (strcmp(t->name, "lifeguard") == 0)
      cfg->lifeguard = (int)v;
    else if (strcmp(t->name, "region-aware") == 0)
      cfg->region_aware = (int)v;
    else
      *(unsigned *)(void *)((char *)cfg + t->off) = (unsigned)v;
    return 0;
  }
  snprintf(err, errlen, "unknown gossip setting '%.40s'", name);
  return WR_ERR_INVAL;
}
