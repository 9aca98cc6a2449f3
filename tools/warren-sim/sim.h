/*
 * warren-sim's driver: what main.c asks for (sim_opts) and what a run
 * measured (sim_result).  All times are virtual milliseconds.
 */
#ifndef WARREN_SIM_SIM_H
#define WARREN_SIM_SIM_H

#include <stddef.h>
#include <stdint.h>

typedef enum sim_scenario {
  SIM_SC_DEFAULT = 0, /* detect + disseminate together */
  SIM_SC_DETECT,
  SIM_SC_DISSEMINATE,
  SIM_SC_FALSEPOS,
  SIM_SC_IDLE,
} sim_scenario;

typedef struct sim_opts {
  uint32_t nodes;
  uint64_t seed;
  double loss;
  double dup;
  int64_t delay_ms;  /* -1: from the profile (lan 1, wan 50, local 0) */
  int64_t jitter_ms; /* -1: from the profile (lan 1, wan 20, local 0) */
  uint32_t kill;
  uint32_t routes;
  sim_scenario scenario;
  const char *profile; /* "lan", "wan", "local" */
  int lifeguard;
  double pause_frac;     /* fraction of live nodes that stall now and then */
  double pause_mean_s;   /* mean stall (exponential) */
  double pause_gap_s;    /* mean time between a node's stalls */
  /* > 0: a stall is a slow stretch instead of a freeze: the node's input
   * is handled slow_ms/2..slow_ms late, its timers fire on time. */
  double slow_ms;
  double duration_s;     /* falsepos/idle length; 0 = scenario default */
  double warmup_s;       /* 0 = scenario default */
  double partition_frac; /* nodes cut off from the rest after warm-up */
  double partition_s;
  int join_bootstrap;
  int refuse_dead; /* --crash refuse: killed processes' hosts answer */
  int check;
  int verbose;
  double sync_s; /* anti-entropy period override; < 0: the profile's */
  /* --set K=V: core tunables (wr_swim_config_set) after the profile */
  const char *set[32];
  int nset;
} sim_opts;

typedef struct sim_result {
  uint32_t nodes, killed, routes;
  uint64_t seed;
  int scenario;
  int lifeguard;
  /* detect (-1: nothing killed or not detected) */
  int64_t detect_first_ms; /* max over killed of first-detection time */
  int64_t detect_all_ms;   /* max over killed of all-live-nodes time */
  int64_t detect_first_min_ms;
  uint32_t detected_all; /* killed nodes every live node marked dead */
  /* false positives: never-killed members declared dead by anyone */
  uint64_t false_positives;
  uint64_t false_dead_events;  /* (observer, member) DEAD reports */
  uint64_t fp_by_healthy;      /* ... declared by a node that never stalls */
  uint64_t fp_healthy_victims; /* ... that never stalled themselves */
  uint64_t suspect_events;     /* SUSPECT reports about live members */
  uint64_t suspicions, refutations; /* summed core stats */
  /* disseminate (-1: no routes or not seen) */
  int64_t route_p50_ms, route_p99_ms, route_all_ms;
  uint64_t route_missing; /* (route, live node) pairs never seen */
  /* traffic over the quiet window, per live node */
  double bytes_per_node_per_s, packets_per_node_per_s;
  double idle_window_s;
  /* agreement after changes stopped */
  int converged;
  int64_t converge_ms;      /* since the disturbance (kill/broadcast/heal) */
  int64_t join_converge_ms; /* --join-bootstrap: all know all */
  uint64_t bound_ms;        /* detection bound --check uses */
  uint64_t virtual_ms;      /* virtual time simulated */
  uint64_t events, packets, lost, syncs_ok, syncs_failed;
  uint64_t stuck_deadlines; /* a deadline still <= now after a tick */
  uint64_t send_errors;
  size_t bcast_queue_peak; /* largest piggyback queue seen (sampled 1/s) */
  size_t rss_kib; /* peak RSS of the process */
  double wall_s;
  /* --check: the first failed assertion ("" when all held) */
  char failure[160];
} sim_result;

/* Runs one simulation.  0, or -1 with |r->failure| set when the run could
 * not be set up (out of memory, a core refusing its config). */
int sim_run(const sim_opts *o, sim_result *r);

#endif
