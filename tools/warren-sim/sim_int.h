/*
 * Internals shared by sim.c (driving the cores like an adapter would:
 * datagrams, the one timer, anti-entropy streams, callbacks) and
 * scenario.c (timelines, faults, measurements, checks).
 *
 * Per-node state is kept small (about 64 bytes here plus a few bytes in
 * the network and the measurement tables): at 10,000 nodes the cores'
 * member tables (10^8 entries) dominate memory, not the simulator.
 */
#ifndef WARREN_SIM_INT_H
#define WARREN_SIM_INT_H

#include <stdio.h>

#include "net.h"
#include "sim.h"
#include "warren/pcg.h"
#include "warren/routes.h"
#include "warren/swim.h"

/* Driver-owned event kinds (net.h passes kinds >= SIM_EV_USER through). */
enum {
  EV_KILL = SIM_EV_USER, /* arg: unused; kills the chosen set */
  EV_CHANGE,             /* routes workload: the next change (routes.c) */
  EV_PAUSE,              /* node: who stalls next */
  EV_STREAM_TIMEOUT,     /* arg: stream handle */
  EV_JOIN,               /* node: (re)try joining through node 0 */
  EV_PHASE,              /* arg: scenario phase marker */
  EV_FAULT_PAUSE,        /* --faults: node stalls arg ms (faults.c) */
};

/* Virtual clock at bootstrap: no core ever sees time 0. */
#define T_BASE 1000

typedef struct sim sim;

typedef struct sim_node {
  sim *s;
  wr_swim *sw;
  wr_pcg32 rng;       /* the core's cfg.rand: stream index + 1 of the seed */
  wr_tstamp timer_at; /* time of the live TIMER event, or WR_TSTAMP_NONE */
  uint32_t timer_tok; /* token of the live TIMER event */
  uint32_t idx;
  wr_routes *rt; /* the node's ownership table (--routes), or NULL */
  wr_routes_sync_host sync_host; /* swim's app-state sync of |rt| */
  uint8_t killed;
  uint8_t pausy; /* stalls now and then (--pause-frac) */
} sim_node;

/* One anti-entropy connection: side 0 initiated on node[0]. */
typedef struct sim_stream {
  wr_swim_sync *sess[2];
  uint32_t node[2];
  uint64_t clock[2]; /* side i's last byte left (us; net.h) */
  /* Side i's output, parsed as frames (u32 length | sealed) only to count
   * them for the seal each carries on a real node (sim.c, wire bytes). */
  uint32_t frame_left[2];
  uint8_t hdr_n[2], hdr[2][4];
  uint16_t gen;
  uint8_t used;
  uint8_t done[2];
} sim_stream;

struct sim {
  const sim_opts *o;
  sim_result *r;
  sim_net *net;
  sim_node *nodes;
  uint32_t n;
  char (*ids)[12];    /* "n<index>" for every node */
  wr_addr *addrs;     /* 10.x.y.z:7946 for every node */
  wr_swim_config cfg; /* the profile; id/addresses/rand set per node */
  uint8_t sendbuf[SIM_PKT_CAP];

  sim_stream *streams;
  uint32_t nstreams, capstreams;
  uint32_t *free_streams;
  uint32_t nfree_streams;

  /* detect */
  uint32_t nkill;
  uint32_t *kill_list;  /* node indices */
  int32_t *kill_slot;   /* per node: index in kill_list or -1 */
  uint8_t *kill_seen;   /* nkill x n: observer marked it dead */
  uint32_t *kill_count; /* per killed node: live observers that did */
  uint64_t *kill_first, *kill_all; /* virtual time, 0 = not yet */
  uint64_t *kill_susp; /* first live node that suspected it, 0 = none */
  uint64_t *kill_ping; /* first PING sent to it after the kill, 0 = none */
  uint64_t kill_at;                /* 0 = no kill yet */
  uint32_t nlive;

  /* false positives */
  uint8_t *fp_member; /* per node: 1 declared dead while never killed,
                       | 2 by a node that never stalls */
  struct sim_lag *lag; /* refutation lags (lag.c), NULL: not measured */

  /* the ownership tables, the workload and its measurements (routes.c);
   * NULL without --routes */
  struct sim_routes *rt;

  /* What the fleet put on the wire so far (sim.c): datagrams with their
   * seal and IPv4/UDP headers, sync streams with seals, TCP/IP headers,
   * ACKs and the handshake. */
  uint64_t wire_udp, wire_tcp, wire_packets;
  uint64_t wire_cross; /* of udp + tcp: between two regions */
  /* --regions: node -> region (NULL: one region), region names, and per
   * (killed, region) the live observers of that region that marked it
   * dead and when the last of them did. */
  uint8_t *region;
  uint32_t nregions;
  char (*region_names)[12];
  uint32_t nlive_region[SIM_REGIONS_MAX];
  uint32_t *kill_count_region; /* nkill x nregions */
  uint64_t *kill_all_region;   /* nkill x nregions, 0 = not yet */
  uint64_t streams_opened;
  /* PINGs sent to killed members before all live nodes declared them
   * dead: the probe load a member gets while it is suspected. */
  uint64_t victim_pings;

  uint64_t pause_stop; /* stalls begin only before this time */
  struct sim_faults *faults; /* --faults (faults.c), NULL: none */
  uint64_t stuck, send_errors, syncs_ok, syncs_failed;
};

/* faults.c: --faults FILE (docs/FAULTS.md).  load: 0, or an error with
 * one line in |err|; after sim_nodes_init. */
typedef struct sim_faults sim_faults;
int sim_faults_load(sim *s, const char *path, char *err, size_t errlen);
void sim_faults_pause(sim *s, const sim_ev *ev);
void sim_faults_report(const sim *s, FILE *out);
void sim_faults_free(sim *s);

/* lag.c: how long each live member stays suspected at each node until
 * its refutation arrives, against the suspicion minimum |min_ms|.  new:
 * NULL without memory (nothing measured); the others accept NULL. */
typedef struct sim_lag sim_lag;
sim_lag *sim_lag_new(uint64_t min_ms);
void sim_lag_free(sim_lag *l);
void sim_lag_suspect(sim_lag *l, uint32_t obs, uint32_t subj, uint64_t now);
void sim_lag_alive(sim_lag *l, uint32_t obs, uint32_t subj, uint64_t now);
void sim_lag_gone(sim_lag *l, uint32_t obs, uint32_t subj);
void sim_lag_result(const sim_lag *l, sim_result *r);

/* sim.c */
int sim_nodes_init(sim *s);
void sim_nodes_free(sim *s);
uint32_t sim_addr_index(const wr_addr *a);
void sim_node_addr(uint32_t idx, wr_addr *a);
/* "n<index>" -> index, or SIM_NONE. */
uint32_t sim_id_index(const sim *s, const char *id);
/* After any call into node |nd|'s core: drain its datagrams, start the
 * syncs it asks for, re-arm its timer. */
void sim_after_core(sim *s, sim_node *nd);
/* Handles a DELIVER, TIMER or STREAM event, or a stream timeout. */
void sim_handle_net(sim *s, sim_ev *ev);
void sim_stream_timeout(sim *s, uint32_t handle);

/* Marks node |v| killed (slot |k| of kill_list) and stops it. */
void sim_kill(sim *s, uint32_t v, uint32_t k);

/* routes.c: the real ownership table on every node, wired to its core as
 * src/node/mesh.c wires it (see the top of routes.c). */
int sim_routes_new(sim *s);  /* after sim_nodes_init; 0 or WR_ERR_NOMEM */
void sim_routes_free(sim *s);
/* swim callbacks of node |nd| (sim.c forwards them). */
int sim_routes_user_update(sim_node *nd, const wr_swim_update *u);
void sim_routes_member(sim_node *nd, const wr_swim_member_info *m);
/* After every call into node |nd| (before its datagrams are drained):
 * runs the evictions its table decided and queues its writes for gossip. */
void sim_routes_settle(sim *s, sim_node *nd);
wr_tstamp sim_routes_deadline(const sim_node *nd);
void sim_routes_tick(sim *s, sim_node *nd);
/* The churn workload (EV_CHANGE) from |t0|; the time of its last change
 * is an estimate until it ran. */
void sim_routes_churn(sim *s, uint64_t t0);
void sim_routes_event(sim *s, const sim_ev *ev);
/* 1 when the workload ended and every (change, live node) pair
 * converged. */
int sim_routes_done(sim *s);
/* Runs until every live table equals the reference (digest) and the
 * piggyback queues drained, or a cap. */
void sim_routes_settle_phase(sim *s);
/* The routes scenarios (partition-claims, owner-death, gc-stale): their
 * own timeline from |t1|.  Returns the end of the disturbance. */
uint64_t sim_routes_timeline(sim *s, uint64_t t1);
void sim_routes_measure(sim *s);

/* scenario.c */
int sim_scenario_run(sim *s);
void sim_run_until(sim *s, uint64_t until);
/* --verbose: one stderr line per phase with virtual and wall time. */
void sim_phase(sim *s, const char *what);

#endif
