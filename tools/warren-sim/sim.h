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
  SIM_SC_CHURN,            /* the routes workload alone */
  SIM_SC_PARTITION_CLAIMS, /* conflicting claims on both sides, heal */
  SIM_SC_OWNER_DEATH,      /* owners killed after the churn */
  SIM_SC_GC_STALE,         /* a paused node back after GC elsewhere */
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
  double churn;        /* routes changes per second (500) */
  double routes_grace_s; /* released/dead grace of the tables (60) */
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
  const char *faults_file; /* --faults FILE: fault rules (faults.c) */
  int check;
  int verbose;
  double sync_s; /* anti-entropy period override; < 0: the profile's */
  double stream_mbit; /* a sync stream's bandwidth (100); 0 = unlimited */
  double observe_s;   /* run at least this long after the last fault */
  /* --regions R: the nodes split into R regions of equal size (node i in
   * region i * R / n, named "r<index>"), region_delay_ms apart (one way;
   * -1: 80); the intra-region delay is delay_ms.  0 or 1: one region,
   * no region names (as before). */
  uint32_t regions;
  int64_t region_delay_ms;
  /* --region-cut R: region R cut off from all others after warm-up for
   * partition_s (-1: none). */
  int32_t region_cut;
  /* --burst-loss P: Gilbert-Elliott burst loss (net.h), bad stretches of
   * burst_bad_s every burst_good_s on average per node link. */
  double burst_loss, burst_good_s, burst_bad_s;
  /* --set K=V: core tunables (wr_swim_config_set) after the profile */
  const char *set[32];
  int nset;
} sim_opts;

#define SIM_NEVER (-2)
#define SIM_REGIONS_MAX 16
#define SIM_VICTIMS_SHOWN 16
#define SIM_LAG_THRESHOLDS 6
extern const uint64_t sim_lag_thresholds_ms[SIM_LAG_THRESHOLDS];

typedef struct sim_result {
  uint32_t nodes, killed, routes;
  uint64_t seed;
  int scenario;
  int lifeguard;
  /* detect (-1: nothing killed or not detected) */
  int64_t detect_first_ms; /* max over killed of first-detection time */
  int64_t detect_all_ms;   /* max over killed of all-live-nodes time */
  int64_t detect_first_min_ms;
  /* Where each victim's time went (the first SIM_VICTIMS_SHOWN killed,
   * -1 where it never happened), from its death: the first suspicion
   * anywhere (someone probed it and the probe failed), the first DEAD
   * (the suspicion's timer), every live node's DEAD (the spread). */
  int64_t victim_ms[SIM_VICTIMS_SHOWN][3];
  /* Per victim (same order), its death to the first PING anyone sent it:
   * the first-probe wait alone, without the probe's round. */
  int64_t victim_ping_ms[SIM_VICTIMS_SHOWN];
  uint32_t detected_all; /* killed nodes every live node marked dead */
  /* false positives: never-killed members declared dead by anyone */
  uint64_t false_positives;
  uint64_t false_dead_events;  /* (observer, member) DEAD reports */
  uint64_t fp_by_healthy;      /* ... declared by a node that never stalls */
  uint64_t fp_healthy_victims; /* ... that never stalled themselves */
  uint64_t suspect_events;     /* SUSPECT reports about live members */
  uint64_t suspicions, refutations; /* summed core stats */
  /* Refuted suspicions of live members, per (holder, member): how long
   * the holder held it before the refutation reached it (lag.c), its
   * quantiles (10 ms resolution; -1: none), how many lasted longer than
   * the suspicion minimum (each would have been a false death had it
   * been confirmed k times), and suspicions not measured (no memory). */
  uint64_t lag_count, lag_over_min, lag_lost, lag_min_ms;
  int64_t lag_p50_ms, lag_p99_ms, lag_p999_ms, lag_p9999_ms, lag_max_ms;
  /* ... and how many lasted at least each of sim_lag_thresholds_ms
   * (10 ms resolution), to set against any minimum. */
  uint64_t lag_over[SIM_LAG_THRESHOLDS];
  /* routes (-1: no routes; SIM_NEVER: a missing pair pushes the
   * percentile past the end) */
  int64_t route_p50_ms, route_p99_ms, route_all_ms;
  uint64_t route_missing; /* (change, live node) pairs never converged */
  uint64_t route_pairs;   /* (change, live node) pairs measured */
  uint64_t route_changes; /* changes of a name's fleet-wide resolution */
  uint64_t rt_binds, rt_moves, rt_releases, rt_claims, rt_refused;
  uint64_t rt_evict_taken, rt_evict_moved;
  uint64_t rt_news, rt_old, rt_rejected; /* user_update verdicts */
  uint64_t rt_names;        /* names routed at the end (reference) */
  int rt_converged;         /* every live digest = the reference's */
  int64_t rt_converge_ms;   /* after the last change */
  uint64_t rt_digest_groups;/* distinct digests among live nodes */
  uint64_t rt_tables_off;   /* live tables whose digest is not the
                               reference's */
  uint64_t rt_winner_errors;/* names whose clients disagree with the
                               resolution (two accounts, a stale session) */
  uint64_t rt_queue_left;   /* USER updates still queued at the end */
  uint64_t rt_bookkeeping;  /* the driver's client state out of step */
  double rt_churn_s;        /* length of the churn (virtual) */
  double rt_bytes_per_node_per_s; /* swim tx during the churn */
  uint64_t rt_sync_bytes;   /* app records written by syncs */
  /* owner-death */
  uint64_t death_pairs, death_missing, death_late;
  int64_t death_max_ms;
  uint64_t dead_entries_left; /* killed owners' entries held after GC */
  /* gc-stale */
  uint64_t resurrected, watched_names;
  uint64_t stale_held; /* watched names the stale node routed on return */
  uint64_t stale_epoch; /* its table's epoch at the end (1 + republishes) */
  uint32_t stale_node;
  /* traffic over the quiet window, per node, as on the wire: datagrams
   * with seal and IPv4/UDP headers, sync streams with seals and TCP/IP
   * overhead (sim.c); the two parts apart */
  double bytes_per_node_per_s, packets_per_node_per_s;
  double udp_bytes_per_node_per_s, tcp_bytes_per_node_per_s;
  double idle_window_s;
  /* --regions: the share of the quiet window's wire bytes that crossed
   * a region boundary, per node per second; per region, the slowest
   * "every live node of region r marked the victim dead" over the
   * killed (-1: not all detected); summed core stats of the
   * region-aware core. */
  double cross_bytes_per_node_per_s;
  int64_t detect_region_ms[SIM_REGIONS_MAX];
  uint64_t cross_probes, region_silent_probes;
  /* How long the run went on after its last fault, and how long it must
   * for a count of 0 false deaths to mean anything: twice the longest
   * suspicion timeout (a suspicion raised just before the end could
   * still turn into a death) */
  uint64_t fp_window_ms, fp_needed_ms;
  /* Sync streams over the whole run: mean wire bytes per session (both
   * directions; 0 when none ran) and the period at which each node starts
   * one at this fleet size.  A window shorter than the period catches
   * syncs by chance, so the steady-state share of a node is
   * sync_bytes_per_session / sync_period. */
  double sync_bytes_per_session;
  /* Probe load on a suspect: PINGs sent to killed members between their
   * death and their detection by all, per killed member; confirmation
   * probes started fleet-wide, per killed member (with loss, false
   * suspicions add to both). */
  double pings_per_victim, confirm_probes_per_victim;
  uint64_t stale_corrections, last_chance_probes; /* summed core stats */
  /* Buckets compared by the syncs' responders and found to differ
   * (summed core stats, sync v4): how much of a session is more than
   * its bucket summary. */
  uint64_t sync_buckets, sync_buckets_differ;
  uint64_t sync_period_ms;
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
  /* Updates that left a piggyback queue before their retransmit limit,
   * summed over every node at the end (wr_swim_stats). */
  uint64_t bcast_evicted_member, bcast_evicted_user;
  size_t rss_kib; /* peak RSS of the process */
  double wall_s;
  /* --check: the first failed assertion ("" when all held) */
  char failure[160];
} sim_result;

/* Runs one simulation.  0, or -1 with |r->failure| set when the run could
 * not be set up (out of memory, a core refusing its config). */
int sim_run(const sim_opts *o, sim_result *r);

#endif
