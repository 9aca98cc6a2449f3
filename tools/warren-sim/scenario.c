/*
 * warren-sim's scenarios: one timeline, with parts switched on by the
 * options, measured in virtual milliseconds.
 *
 *   bootstrap  converged fleet (wr_swim_add_member), or --join-bootstrap:
 *              a join storm: every node starts knowing nobody and joins
 *              through the seeds n0, n1, n2 (JOIN_SEEDS) by the real
 *              protocol within the first second, and the run waits until
 *              all know all (join_converge_ms)
 *   warm-up    nothing happens; after its first probe round comes the
 *              quiet window (60 s, or the last 80 % of --warmup-s) where
 *              wire bytes and packets per node per second are measured
 *   T1         the disturbance: kill K nodes (no leave: they just stop),
 *              start the --routes churn (routes.c) at random live nodes,
 *              cut a partition, start the stalls of --pause-frac nodes
 *   measure    until every killed node is dead for every live node and
 *              every route change converged on every live node, or a cap
 *              (2 x bound), and at least until stalls, partition and
 *              churn have ended
 *   settle     until all live nodes agree on the same alive set (checked
 *              once per probe interval), or the settle cap; then, with
 *              --routes, until every live table equals the reference
 *
 * The routes scenarios (partition-claims, owner-death, gc-stale) replace
 * T1 and measure with their own timeline (routes.c); warm-up and settle
 * are the same.
 *
 * falsepos runs the stalls for --duration-s (60 s) and kills nothing;
 * idle only measures the quiet window (--duration-s, 30 s).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sim_int.h"
#include "warren/err.h"

static uint64_t sec(double s) { return (uint64_t)(s * 1000.0 + 0.5); }

static double rnd_exp(sim *s, double mean_ms) {
  double u = wr_pcg32_double(sim_net_rng(s->net));
  return -mean_ms * log(1.0 - u);
}

/* Live nodes that hold the same alive set: every non-killed member
 * ALIVE or SUSPECT, every killed one DEAD or gone, and no stranger.  A
 * suspect is still a member in SWIM (it is probed, gossiped to and
 * routed to until declared dead), and under steady loss some member is
 * always briefly suspected somewhere, so "alive" means not DEAD/LEFT. */
static int agree(sim *s) {
  uint32_t live = 0;
  for (uint32_t i = 0; i < s->n; i++) live += !s->nodes[i].killed;
  for (uint32_t i = 0; i < s->n; i++) {
    sim_node *nd = &s->nodes[i];
    if (nd->killed) continue;
    size_t cnt = wr_swim_member_count(nd->sw), alive = 0;
    for (size_t j = 0; j < cnt; j++) {
      wr_swim_member_info mi;
      if (wr_swim_member_at(nd->sw, j, &mi) != 0) return 0;
      uint32_t m = sim_id_index(s, mi.id);
      if (m == SIM_NONE || m == i) return 0;
      int is_live = !s->nodes[m].killed;
      if (mi.state == WR_SWIM_ALIVE || mi.state == WR_SWIM_SUSPECT) {
        if (!is_live) return 0;
        alive++;
      } else if (is_live) {
        return 0;
      }
    }
    if (alive != live - 1) {
      if (s->o->verbose > 1) {
        fprintf(stderr, "warren-sim: t=%llu %s sees %zu of %u live:",
                (unsigned long long)sim_net_now(s->net), s->ids[i], alive,
                live - 1);
        for (uint32_t m = 0; m < s->n; m++) {
          wr_swim_member_info mi;
          if (m == i || s->nodes[m].killed) continue;
          if (wr_swim_member_find(nd->sw, s->ids[m], &mi) != 0)
            fprintf(stderr, " %s(unknown)", s->ids[m]);
        }
        fprintf(stderr, "\n");
      }
      return 0;
    }
  }
  return 1;
}

void sim_phase(sim *s, const char *what) {
  if (!s->o->verbose) return;
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  fprintf(stderr, "warren-sim: %-10s virtual %.1f s, wall clock %ld.%03ld\n",
          what, (double)(sim_net_now(s->net) - T_BASE) / 1000, (long)ts.tv_sec,
          ts.tv_nsec / 1000000);
}

static void dispatch(sim *s, sim_ev *ev);

void sim_run_until(sim *s, uint64_t until) {
  sim_ev ev;
  while (sim_net_next(s->net, until, &ev)) dispatch(s, &ev);
}

#define run_until sim_run_until

void sim_kill(sim *s, uint32_t v, uint32_t k) {
  s->kill_list[k] = v;
  s->kill_slot[v] = (int32_t)k;
  s->nodes[v].killed = 1;
  sim_net_kill(s->net, v);
}

static void on_pause(sim *s, uint32_t node) {
  uint64_t now = sim_net_now(s->net);
  if (now >= s->pause_stop || s->nodes[node].killed) return;
  uint64_t d = 1 + (uint64_t)rnd_exp(s, s->o->pause_mean_s * 1000.0);
  if (s->o->slow_ms > 0)
    sim_net_slow(s->net, node, now + d);
  else
    sim_net_pause(s->net, node, now + d);
  uint64_t next =
      now + d + 1 + (uint64_t)rnd_exp(s, s->o->pause_gap_s * 1000.0);
  sim_net_push(s->net, next, EV_PAUSE, node, 0);
}

/* Seeds of a --join-bootstrap storm: the first JOIN_SEEDS nodes, as a
 * fleet would list three well-known members (or a DNS name with three
 * records); a seed joins through the other seeds. */
#define JOIN_SEEDS 3

static void on_join(sim *s, uint32_t node) {
  sim_node *nd = &s->nodes[node];
  if (nd->killed || wr_swim_member_count(nd->sw) > 0) return;
  uint64_t now = sim_net_now(s->net);
  wr_addr seeds[JOIN_SEEDS];
  size_t ns = 0;
  for (uint32_t j = 0; j < JOIN_SEEDS && j < s->n; j++)
    if (j != node) seeds[ns++] = s->addrs[j];
  wr_swim_join(nd->sw, seeds, ns, now);
  sim_after_core(s, nd);
  /* Retry like the adapter: about a second, jittered. */
  sim_net_push(s->net, now + 1000 + wr_pcg32_bounded(sim_net_rng(s->net), 500),
               EV_JOIN, node, 0);
}

static void dispatch(sim *s, sim_ev *ev) {
  switch (ev->kind) {
  case EV_PAUSE:
    on_pause(s, ev->node);
    break;
  case EV_STREAM_TIMEOUT:
    sim_stream_timeout(s, ev->arg);
    break;
  case EV_JOIN:
    on_join(s, ev->node);
    break;
  case EV_FAULT_PAUSE:
    sim_faults_pause(s, ev);
    break;
  case EV_CHANGE:
    sim_routes_event(s, ev);
    break;
  default:
    sim_handle_net(s, ev);
    break;
  }
}

/* Partial Fisher-Yates over [lo, n): the first k of |perm| are a random
 * k-subset, drawn from the network's generator. */
static void pick(sim *s, uint32_t *perm, uint32_t lo, uint32_t k) {
  wr_pcg32 *g = sim_net_rng(s->net);
  for (uint32_t i = 0; i < k && lo + i < s->n; i++) {
    uint32_t j = lo + i + wr_pcg32_bounded(g, s->n - lo - i);
    uint32_t t = perm[lo + i];
    perm[lo + i] = perm[j];
    perm[j] = t;
  }
}

/* What the fleet put on the wire so far (sim.c counts it as a real node
 * would send it): datagrams, sync streams, packets of both. */
static void traffic(sim *s, uint64_t *udp, uint64_t *tcp, uint64_t *packets) {
  *udp = s->wire_udp;
  *tcp = s->wire_tcp;
  *packets = s->wire_packets;
}

/* Once per virtual second while measuring: the largest piggyback queue
 * (both queues; an entry holds the encoded update, its id or key and
 * three links, about 100-160 bytes for membership news and up to ~1.2 KB
 * for a USER update with a full payload), which is where memory goes
 * under loss. */
static void sample_queues(sim *s) {
  for (uint32_t i = 0; i < s->n; i++) {
    wr_swim_stats st;
    if (s->nodes[i].killed) continue;
    wr_swim_get_stats(s->nodes[i].sw, &st);
    if (st.broadcast_queue > s->r->bcast_queue_peak)
      s->r->bcast_queue_peak = st.broadcast_queue;
  }
}

static int done_measuring(sim *s) {
  for (uint32_t k = 0; k < s->nkill; k++)
    if (!s->kill_all[k]) return 0;
  return sim_routes_done(s);
}

/* The timeline above; fills the timing fields of s->r. */
int sim_scenario_run(sim *s) {
  const sim_opts *o = s->o;
  sim_result *r = s->r;
  const wr_swim_config *c = &s->cfg;
  uint64_t now = sim_net_now(s->net);
  uint32_t *perm = malloc(s->n * sizeof *perm);
  if (!perm) return WR_ERR_NOMEM;
  for (uint32_t i = 0; i < s->n; i++) perm[i] = i;

  if (o->join_bootstrap) {
    for (uint32_t i = 1; i < s->n; i++)
      sim_net_push(s->net, now + wr_pcg32_bounded(sim_net_rng(s->net), 1000),
                   EV_JOIN, i, 0);
    uint64_t cap = now + 300000;
    r->join_converge_ms = -1;
    while (sim_net_now(s->net) < cap) {
      run_until(s, sim_net_now(s->net) + c->probe_interval_ms);
      if (o->verbose) {
        size_t lo_m = SIZE_MAX, hi_m = 0;
        for (uint32_t i = 0; i < s->n; i++) {
          size_t m = wr_swim_member_count(s->nodes[i].sw);
          lo_m = m < lo_m ? m : lo_m;
          hi_m = m > hi_m ? m : hi_m;
        }
        fprintf(stderr, "warren-sim: join t=%llu members min %zu max %zu\n",
                (unsigned long long)(sim_net_now(s->net) - now), lo_m, hi_m);
      }
      if (agree(s)) {
        r->join_converge_ms = (int64_t)(sim_net_now(s->net) - now);
        break;
      }
    }
    now = sim_net_now(s->net);
  }

  /* Warm-up with the quiet window: its first probe round (20 % of an
   * explicit --warmup-s) lets the first probes and gossip settle, the
   * rest is measured.
   * By default the window is 60 s: anti-entropy syncs run every 30 s or
   * more per node (minutes in a large fleet), and a shorter window
   * catches them or not by chance, so per-node bytes would swing with
   * the run's length instead of the fleet's size. */
  double warm_s, skip_s;
  if (o->warmup_s > 0) {
    warm_s = o->warmup_s;
    skip_s = warm_s * 0.2;
  } else {
    skip_s = (double)c->probe_interval_ms / 1000;
    warm_s = skip_s + 60.0;
  }
  uint64_t t1 = now + sec(warm_s);
  uint64_t w0 = now + sec(skip_s), u0, c0, p0, u1, c1, p1, x0, x1;
  run_until(s, w0);
  traffic(s, &u0, &c0, &p0);
  x0 = s->wire_cross;
  double window_s = warm_s - skip_s;
  if (o->scenario == SIM_SC_IDLE) {
    window_s += o->duration_s;
    t1 += sec(o->duration_s);
  }
  run_until(s, t1);
  traffic(s, &u1, &c1, &p1);
  x1 = s->wire_cross;
  r->cross_bytes_per_node_per_s = (double)(x1 - x0) / s->n / window_s;
  r->idle_window_s = window_s;
  r->udp_bytes_per_node_per_s = (double)(u1 - u0) / s->n / window_s;
  r->tcp_bytes_per_node_per_s = (double)(c1 - c0) / s->n / window_s;
  r->bytes_per_node_per_s =
      r->udp_bytes_per_node_per_s + r->tcp_bytes_per_node_per_s;
  r->packets_per_node_per_s = (double)(p1 - p0) / s->n / window_s;

  sim_phase(s, "warm-up");
  uint64_t disturb_end = t1;
  if (o->scenario >= SIM_SC_PARTITION_CLAIMS) {
    /* The routes scenarios keep their own timeline (routes.c). */
    disturb_end = sim_routes_timeline(s, t1);
    goto settle;
  }
  /* T1: kill, churn the routes, partition, stalls. */
  /* The seeds stay alive. */
  uint32_t lo = o->join_bootstrap ? (s->n < JOIN_SEEDS ? s->n : JOIN_SEEDS) : 0;
  pick(s, perm, lo, s->nkill);
  for (uint32_t k = 0; k < s->nkill; k++) sim_kill(s, perm[lo + k], k);
  s->kill_at = s->nkill ? t1 : 0;
  s->nlive = s->n - s->nkill;
  if (s->region)
    for (uint32_t i = 0; i < s->n; i++)
      s->nlive_region[s->region[i]] += !s->nodes[i].killed;
  uint32_t live_lo = lo + s->nkill;
  if (s->region && o->region_cut >= 0) {
    /* A region-shaped partition: region_cut against all the others. */
    uint8_t *group = calloc(s->n, 1);
    for (uint32_t i = 0; group && i < s->n; i++)
      group[i] = s->region[i] == (uint32_t)o->region_cut;
    uint64_t end = t1 + sec(o->partition_s);
    if (group) sim_net_partition(s->net, group, t1, end);
    free(group);
    disturb_end = end;
  } else if (o->partition_frac > 0) {
    uint8_t *group = calloc(s->n, 1);
    uint32_t k = (uint32_t)(o->partition_frac * s->nlive + 0.5);
    pick(s, perm, live_lo, k);
    for (uint32_t i = 0; group && i < k; i++) group[perm[live_lo + i]] = 1;
    uint64_t end = t1 + sec(o->partition_s);
    if (group) sim_net_partition(s->net, group, t1, end);
    free(group);
    disturb_end = end;
  }
  if (o->pause_frac > 0) {
    uint32_t k = (uint32_t)(o->pause_frac * s->nlive + 0.5);
    pick(s, perm, live_lo, k);
    s->pause_stop = t1 + sec(o->duration_s);
    for (uint32_t i = 0; i < k; i++) {
      uint32_t v = perm[live_lo + i];
      s->nodes[v].pausy = 1;
      sim_net_push(s->net, t1 + (uint64_t)rnd_exp(s, o->pause_gap_s * 1000.0),
                   EV_PAUSE, v, 0);
    }
    if (s->pause_stop > disturb_end) disturb_end = s->pause_stop;
  }
  if (o->scenario == SIM_SC_FALSEPOS && t1 + sec(o->duration_s) > disturb_end)
    disturb_end = t1 + sec(o->duration_s);
  if (s->rt) {
    /* Names bound, moved, released and claimed at random live nodes, at
     * --churn changes per second; measuring lasts at least that long. */
    sim_routes_churn(s, t1);
    uint64_t end = t1 + (uint64_t)(o->routes / 0.6 / o->churn * 1000) + 1000;
    if (end > disturb_end) disturb_end = end;
  }

  /* Measure. */
  uint64_t cap = t1 + 2 * r->bound_ms;
  if (disturb_end > cap) cap = disturb_end;
  for (unsigned step = 0; sim_net_now(s->net) < cap; step++) {
    run_until(s, sim_net_now(s->net) + 100);
    if (step % 10 == 9) sample_queues(s);
    if (sim_net_now(s->net) >= disturb_end && done_measuring(s)) break;
  }

  sim_phase(s, "measured");
settle:;
  /* Settle: the same alive set everywhere once changes stop. */
  uint64_t settle_cap =
      sim_net_now(s->net) + r->bound_ms + c->gossip_to_dead_ms;
  /* A partition that outlasted the suspicion timeout heals by reconnect
   * attempts (src/swim/reconnect.c), one interval apart. */
  if (o->partition_frac > 0 || o->region_cut >= 0 ||
      o->scenario == SIM_SC_PARTITION_CLAIMS ||
      o->scenario == SIM_SC_GC_STALE)
    settle_cap += c->reconnect_interval_ms;
  r->converged = 0;
  r->converge_ms = -1;
  for (;;) {
    if (agree(s)) {
      r->converged = 1;
      r->converge_ms = (int64_t)(sim_net_now(s->net) - disturb_end);
      break;
    }
    if (sim_net_now(s->net) >= settle_cap) break;
    run_until(s, sim_net_now(s->net) + c->probe_interval_ms);
  }
  sim_phase(s, "settled");
  /* Then the tables: every live digest equal to the reference's. */
  sim_routes_settle_phase(s);
  /* --observe-s: go on watching for false deaths; then say whether the
   * run watched long enough after its last fault for 0 to mean 0. */
  if (o->observe_s > 0 && sim_net_now(s->net) < disturb_end + sec(o->observe_s))
    run_until(s, disturb_end + sec(o->observe_s));
  r->fp_window_ms = sim_net_now(s->net) - disturb_end;
  r->virtual_ms = sim_net_now(s->net) - T_BASE;
  free(perm);
  return 0;
}
