/*
 * Defaults and profiles.  They start from HashiCorp memberlist's
 * DefaultLANConfig / DefaultWANConfig / DefaultLocalConfig, the de-facto
 * reference for SWIM in production; where warren departs from them the
 * comment says why and docs/SWIM.md has the simulator runs behind it.
 */
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
  /* k indirect probers: with independent loss p a false suspicion needs
   * k + 1 failed paths (p^(k+1)), for traffic growing only linearly. */
  c->indirect_checks = 3;
  /* Suspicion lasts at least mult * log10(n) rounds: time for the suspect
   * to hear of it and for its refutation to spread back. */
  c->suspicion_mult = 4;
  /* Lifeguard: start at 6x the minimum and shrink with independent
   * confirmations, so a lone (possibly unhealthy) accuser is slow to
   * kill and a chorus is fast. */
  c->suspicion_max_timeout_mult = 6;
  /* memberlist uses suspicion_mult - 2 = 2. */
  c->suspicion_confirmations = 2;
  /* Each update rides mult * ceil(log10(n+1)) packets: epidemic spread
   * reaches all n members with high probability at that fan-out. */
  c->retransmit_mult = 4;
  c->gossip_nodes = 3;
  /* Gossip five times per probe round: dissemination should not wait for
   * probes. */
  c->gossip_interval_ms = 200;
  c->gossip_to_dead_ms = 30000;
  /* Pushing an update we originate to 3 members at once saves up to one
   * gossip interval per hop at the cost of 3 packets per update. */
  c->push_fanout = 3;
  /* Anti-entropy every 30 s (scaled with log n above 32 members): a
   * backstop for updates that gossip lost, not the main path. */
  c->sync_interval_ms = 30000;
  /* Remember the dead for a while so a stale ALIVE cannot resurrect
   * them, and so a wrongly declared member can still refute. */
  c->dead_reap_ms = 30000;
  /* Awareness multiplies our timeouts by at most 8. */
  c->awareness_max = 8;
  c->lifeguard = 1;
  /* Only members that hear of a suspicion before it has its k
   * confirmations probe, so a fleet of any size sends about k + fan-out
   * extra pings per suspicion, none when idle. */
  c->confirm_probes = 4;
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
    c->suspicion_mult = 6;
    c->gossip_nodes = 4;
    c->gossip_interval_ms = 500;
    c->gossip_to_dead_ms = 60000;
    c->sync_interval_ms = 60000;
    c->dead_reap_ms = 60000;
  } else if (strcmp(name, "local") == 0) {
    /* One host (tests, loopback): tiny RTT, so short timeouts are safe. */
    lan(c);
    c->probe_timeout_ms = 200;
    c->indirect_checks = 1;
    c->suspicion_mult = 3;
    /* memberlist's local profile uses 2; with ten nodes joining at once
     * that left views to the periodic sync (swim10 took 11-28 s to see
     * everyone; 0.2 s with 4). */
    c->gossip_interval_ms = 100;
    c->gossip_to_dead_ms = 15000;
    c->sync_interval_ms = 15000;
    c->dead_reap_ms = 15000;
  } else {
    return WR_ERR_INVAL;
  }
  return 0;
}
