/*
 * One warren-sim run: set up the network and the cores, play the
 * scenario (scenario.c), then turn the raw observations into the result
 * and, with --check, the assertions.
 *
 * The detection bound --check holds a run to is what the protocol
 * predicts from the config (src/swim/swim.c), with the margin the
 * measurements need and no more, so that a regression fails:
 *
 *   suspicion  min (wr_swim_suspicion_bounds, src/swim/config.c):
 *              a dead member gathers its k confirmations within about
 *              one probe interval (confirmation probes, and the
 *              round-robin probes that fail), so its timer runs at the
 *              minimum, Lifeguard or not;
 *   probing    the fleet probes a given member about once a round (each
 *              member probes one a round), so the first probe of a
 *              victim waits about a round, exponentially distributed;
 *              the slowest of 15 victims (3 x 5 seeds) waited 4-5
 *              rounds.  Then the probe takes a round and the
 *              confirmation probes one more: 6 rounds, each stretched
 *              by 1 + 5 x loss (lost acks, relays and pushes; Lifeguard
 *              awareness slows a prober that misses its nacks);
 *   spreading  the DEAD verdict is pushed to push_fanout members and
 *              gossiped; we allow the retransmit budget's length,
 *              retransmit_mult * ceil(log10(n+1)) gossip intervals (the
 *              epidemic itself takes about log3 n of them).
 *
 * The worst detection of 20 seeds x 3 victims at 10-100 members (5 seeds
 * at 1,000) and 0-30 % loss is 1.1-1.5x below it (docs/BENCHMARKS.md),
 * and a regression of that size fails a run; the bound it
 * replaced (the Lifeguard maximum, 4 rounds stretched by the largest
 * awareness, twice the budget) was 3-8x above, so detection could slow
 * down several times over before a run failed.
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "sim_int.h"
#include "warren/err.h"

/* The longest a suspicion can last: the Lifeguard maximum (a lone
 * accuser), or the fixed minimum in plain SWIM.  Awareness does not
 * stretch it (suspicion.c, swim_susp_start). */
static uint64_t suspicion_max_ms(const wr_swim_config *c, uint32_t n) {
  uint64_t min, max;
  wr_swim_suspicion_bounds(c, c->suspicion_mult, n, &min, &max);
  return max;
}

static uint64_t detect_bound(const wr_swim_config *c, uint32_t n, double loss) {
  uint64_t susp, max;
  wr_swim_suspicion_bounds(c, c->suspicion_mult, n, &susp, &max);
  /* Loss stretches every step (a lost ack, a lost relay, a lost push;
   * Lifeguard awareness slows the prober): 1 + 5p per round, fitted to
   * the slowest of 60 deaths at each of 0, 10 and 30 % loss. */
  uint64_t round =
      (uint64_t)((double)c->probe_interval_ms * (1.0 + 5.0 * loss));
  uint64_t spread =
      (uint64_t)(c->retransmit_mult * ceil(log10((double)n + 1.0))) *
      c->gossip_interval_ms;
  return susp + 6 * round + spread;
}

static void fail(sim_result *r, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void fail(sim_result *r, const char *fmt, ...) {
  if (r->failure[0]) return; /* the first failure is the one to read */
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(r->failure, sizeof r->failure, fmt, ap);
  va_end(ap);
}

static void measure(sim *s) {
  sim_result *r = s->r;
  r->detect_first_ms = r->detect_all_ms = r->detect_first_min_ms = -1;
  for (uint32_t k = 0; k < s->nkill; k++) {
    if (s->kill_first[k]) {
      int64_t f = (int64_t)(s->kill_first[k] - s->kill_at);
      if (f > r->detect_first_ms) r->detect_first_ms = f;
      if (r->detect_first_min_ms < 0 || f < r->detect_first_min_ms)
        r->detect_first_min_ms = f;
    }
    if (s->kill_all[k]) r->detected_all++;
    if (k < SIM_VICTIMS_SHOWN) {
      const uint64_t at[3] = {s->kill_susp[k], s->kill_first[k],
                              s->kill_all[k]};
      for (int j = 0; j < 3; j++)
        r->victim_ms[k][j] = at[j] ? (int64_t)(at[j] - s->kill_at) : -1;
      r->victim_ping_ms[k] =
          s->kill_ping[k] ? (int64_t)(s->kill_ping[k] - s->kill_at) : -1;
    }
  }
  if (s->nkill && r->detected_all == s->nkill)
    for (uint32_t k = 0; k < s->nkill; k++) {
      int64_t a = (int64_t)(s->kill_all[k] - s->kill_at);
      if (a > r->detect_all_ms) r->detect_all_ms = a;
    }
  sim_lag_result(s->lag, r);
  for (uint32_t i = 0; i < s->n; i++) {
    r->false_positives += s->fp_member[i] & 1;
    r->fp_by_healthy += (s->fp_member[i] >> 1) & 1;
    r->fp_healthy_victims += (s->fp_member[i] & 1) && !s->nodes[i].pausy;
  }
  for (uint32_t i = 0; i < s->n; i++) {
    wr_swim_stats st;
    wr_swim_get_stats(s->nodes[i].sw, &st);
    r->suspicions += st.suspicions;
    r->refutations += st.refutations;
    r->bcast_evicted_member += st.bcast_evicted_member;
    r->bcast_evicted_user += st.bcast_evicted_user;
    r->confirm_probes_per_victim += (double)st.confirm_probes;
    r->stale_corrections += st.stale_corrections;
    r->sync_buckets += st.sync_buckets;
    r->sync_buckets_differ += st.sync_buckets_differ;
    r->last_chance_probes += st.last_chance_probes;
    r->cross_probes += st.cross_probes;
    r->region_silent_probes += st.region_silent_probes;
  }
  /* Per region: the slowest victim's "all live members of region g". */
  for (uint32_t g = 0; s->region && g < s->nregions && g < SIM_REGIONS_MAX;
       g++) {
    int64_t worst = -1;
    for (uint32_t k = 0; k < s->nkill; k++) {
      uint64_t t = s->kill_all_region[(size_t)k * s->nregions + g];
      if (!t && s->nlive_region[g]) {
        worst = -1;
        break;
      }
      if (t && (int64_t)(t - s->kill_at) > worst)
        worst = (int64_t)(t - s->kill_at);
    }
    r->detect_region_ms[g] = worst;
  }
  if (s->nkill) {
    r->pings_per_victim = (double)s->victim_pings / s->nkill;
    r->confirm_probes_per_victim /= s->nkill;
  }
  r->route_p50_ms = r->route_p99_ms = r->route_all_ms = -1;
  r->death_max_ms = -1;
  sim_routes_measure(s);
  sim_net_stats ns;
  sim_net_get_stats(s->net, &ns);
  r->events = ns.events;
  r->packets = ns.sent;
  r->lost = ns.lost;
  r->syncs_ok = s->syncs_ok;
  r->sync_bytes_per_session =
      s->streams_opened ? (double)s->wire_tcp / (double)s->streams_opened : 0;
  r->syncs_failed = s->syncs_failed;
  r->stuck_deadlines = s->stuck;
  r->send_errors = s->send_errors;
}

/* The routes assertions (routes.c measures). */
static void check_routes(sim *s) {
  const sim_opts *o = s->o;
  sim_result *r = s->r;
  if (r->rt_bookkeeping)
    fail(r, "the driver's client state and the tables disagree %llu times",
         (unsigned long long)r->rt_bookkeeping);
  if (r->route_missing)
    fail(r, "%llu of %llu (change, live node) pairs never converged",
         (unsigned long long)r->route_missing,
         (unsigned long long)r->route_pairs);
  if (!r->rt_converged)
    fail(r, "%llu live route tables differ from the reference after changes "
            "stopped (%llu distinct digests among them all)",
         (unsigned long long)r->rt_tables_off,
         (unsigned long long)r->rt_digest_groups);
  if (r->rt_winner_errors)
    fail(r, "%llu names: clients and resolution disagree (not one winner)",
         (unsigned long long)r->rt_winner_errors);
  /* Every copy answered "news" would circulate forever (swim.h). */
  if (r->rt_queue_left)
    fail(r, "%llu route updates still piggybacked after the tables settled",
         (unsigned long long)r->rt_queue_left);
  if (o->scenario == SIM_SC_PARTITION_CLAIMS && r->rt_evict_taken < r->routes)
    fail(r, "%llu TAKEN evictions for %u conflicting claims",
         (unsigned long long)r->rt_evict_taken, r->routes);
  if (o->scenario == SIM_SC_OWNER_DEATH) {
    if (!r->death_pairs)
      fail(r, "owner-death: no name lost its owner");
    if (r->death_missing)
      fail(r, "%llu (dead owner's name, live node) pairs still routed",
           (unsigned long long)r->death_missing);
    if (r->death_late)
      fail(r, "%llu names outlived their owner's detection",
           (unsigned long long)r->death_late);
  }
  if (r->dead_entries_left)
    fail(r, "%llu entries of killed owners held after their grace",
         (unsigned long long)r->dead_entries_left);
  if (o->scenario == SIM_SC_GC_STALE && !r->stale_held)
    fail(r, "gc-stale: the stale node came back holding nothing collected "
            "(%llu names watched): the scenario tested nothing",
         (unsigned long long)r->watched_names);
  if (r->resurrected)
    fail(r, "%llu times a collected name routed again",
         (unsigned long long)r->resurrected);
}

static void check(sim *s) {
  const sim_opts *o = s->o;
  sim_result *r = s->r;
  /* partition-claims cuts the fleet in two and gc-stale pauses a node
   * until it is declared dead: both on purpose. */
  int cut = o->partition_frac > 0 || o->region_cut >= 0 ||
            o->scenario == SIM_SC_PARTITION_CLAIMS ||
            o->scenario == SIM_SC_GC_STALE;
  if (o->loss == 0 && o->pause_frac == 0 && !cut &&
      r->false_positives)
    fail(r, "%llu live members declared dead at 0%% loss",
         (unsigned long long)r->false_positives);
  /* Region-aware membership's promise (docs/SWIM.md "Regions"): a
   * region cut off for less than region_down_ms costs no suspicion of
   * its members, so no death, on either side. */
  if (o->loss == 0 && o->burst_loss == 0 && o->region_cut >= 0 &&
      s->cfg.region_aware && (uint64_t)(o->partition_s * 1000) <
                                 s->cfg.region_down_ms &&
      r->false_positives)
    fail(r, "%llu members declared dead in a %.0f s region cut (region-down "
            "%llu ms)",
         (unsigned long long)r->false_positives, o->partition_s,
         (unsigned long long)s->cfg.region_down_ms);
  /* Stalled or slow members may be declared dead (they failed, for a
   * while); a member that never stalled must not be, without loss. */
  if (o->loss == 0 && !cut && r->fp_healthy_victims)
    fail(r, "%llu members that never stalled declared dead",
         (unsigned long long)r->fp_healthy_victims);
  for (uint32_t k = 0; k < s->nkill; k++) {
    uint32_t v = s->kill_list[k];
    if (!s->kill_all[k])
      fail(r, "killed %s marked dead by %u of %u live nodes", s->ids[v],
           s->kill_count[k], s->nlive);
    else if (s->kill_all[k] - s->kill_at > r->bound_ms &&
             o->scenario != SIM_SC_GC_STALE) /* the paused node learns late */
      fail(r, "killed %s detected by all after %llu ms > bound %llu ms",
           s->ids[v], (unsigned long long)(s->kill_all[k] - s->kill_at),
           (unsigned long long)r->bound_ms);
  }
  if (s->rt) check_routes(s);
  if (!r->converged)
    fail(r, "live nodes disagree on the alive set after changes stopped");
  if (o->join_bootstrap && r->join_converge_ms < 0)
    fail(r, "--join-bootstrap: the fleet never learned all members");
  /* Issue 14's target for a storm through 3 seeds, at any size. */
  else if (o->join_bootstrap && r->join_converge_ms > 30000)
    fail(r, "--join-bootstrap: all knew all only after %lld ms > 30000 ms",
         (long long)r->join_converge_ms);
  /* swim.h: a tick runs every expired timer, so the deadline after it is
   * in the future (harmless for the adapter if not, but a broken
   * contract; fixed in the core by 91005e7, kept as a regression check). */
  if (r->stuck_deadlines)
    fail(r, "a core's deadline stayed in the past after its tick %llu times",
         (unsigned long long)r->stuck_deadlines);
}

static void free_tables(sim *s) {
  free(s->kill_list);
  free(s->kill_slot);
  free(s->kill_seen);
  free(s->kill_count);
  free(s->kill_first);
  free(s->kill_all);
  free(s->kill_susp);
  free(s->kill_ping);
  free(s->fp_member);
  sim_lag_free(s->lag);
  s->lag = NULL;
  free(s->region);
  free(s->region_names);
  free(s->kill_count_region);
  free(s->kill_all_region);
}

int sim_run(const sim_opts *o, sim_result *r) {
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  memset(r, 0, sizeof *r);
  r->nodes = o->nodes;
  r->seed = o->seed;
  r->scenario = o->scenario;
  r->lifeguard = o->lifeguard;
  r->rt_converge_ms = -1;
  sim s;
  memset(&s, 0, sizeof s);
  s.o = o;
  s.r = r;
  s.n = o->nodes;
  int rv = -1;
  wr_swim_config_default(&s.cfg);
  if (wr_swim_config_profile(&s.cfg, o->profile) != 0) {
    fail(r, "unknown profile '%s'", o->profile);
    return -1;
  }
  s.cfg.lifeguard = o->lifeguard;
  if (o->sync_s >= 0) s.cfg.sync_interval_ms = (uint64_t)(o->sync_s * 1000);
  for (int i = 0; i < o->nset; i++) {
    char key[48], err[160];
    const char *eq = strchr(o->set[i], '=');
    snprintf(key, sizeof key, "%.*s", (int)(eq - o->set[i]), o->set[i]);
    if (wr_swim_config_set(&s.cfg, key, eq + 1, err, sizeof err) != 0) {
      fail(r, "--set: %s", err);
      return -1;
    }
  }

  /* One-way delays: LAN about half a millisecond (rounded to 1 ms, the
   * core's clock tick), WAN a continent, LOCAL loopback. */
  int wan = strcmp(o->profile, "wan") == 0,
      local = !strcmp(o->profile, "local");
  sim_net_params p = {
      .delay_ms = (uint64_t)(o->delay_ms >= 0 ? o->delay_ms
                             : wan            ? 50
                             : local          ? 0
                                              : 1),
      .jitter_ms = (uint64_t)(o->jitter_ms >= 0 ? o->jitter_ms
                              : wan             ? 20
                              : local           ? 1
                                                : 1),
      .loss = o->loss,
      .dup = o->dup,
      .refuse_dead = o->refuse_dead,
      .slow_ms = (uint64_t)o->slow_ms,
      .region_delay_ms =
          (uint64_t)(o->region_delay_ms >= 0 ? o->region_delay_ms : 80),
      .burst_loss = o->burst_loss,
      .burst_good_ms = (uint64_t)(o->burst_good_s * 1000),
      .burst_bad_ms = (uint64_t)(o->burst_bad_s * 1000),
  };
  s.net = sim_net_new(s.n, &p, o->seed);
  if (!s.net) goto nomem;
  for (uint32_t g = 0; g < SIM_REGIONS_MAX; g++) r->detect_region_ms[g] = -1;
  if (o->regions > 1) {
    /* Contiguous blocks: node i is in region i * R / n. */
    s.nregions = o->regions;
    s.region = malloc(s.n);
    s.region_names = calloc(s.nregions, sizeof *s.region_names);
    s.kill_count_region = calloc((size_t)o->kill * s.nregions + 1,
                                 sizeof *s.kill_count_region);
    s.kill_all_region = calloc((size_t)o->kill * s.nregions + 1,
                               sizeof *s.kill_all_region);
    if (!s.region || !s.region_names || !s.kill_count_region ||
        !s.kill_all_region)
      goto nomem;
    for (uint32_t g = 0; g < s.nregions; g++)
      snprintf(s.region_names[g], sizeof s.region_names[g], "r%u",
               g % SIM_REGIONS_MAX);
    for (uint32_t i = 0; i < s.n; i++)
      s.region[i] = (uint8_t)((uint64_t)i * s.nregions / s.n);
    if (sim_net_set_regions(s.net, s.region) != 0) goto nomem;
  }
  sim_ev ev;
  sim_net_next(s.net, T_BASE, &ev); /* empty queue: moves the clock */

  s.nkill = o->kill;
  s.nlive = s.n;
  size_t n = s.n;
  s.kill_list = calloc(s.nkill + 1, sizeof *s.kill_list);
  s.kill_slot = malloc(n * sizeof *s.kill_slot);
  s.kill_seen = calloc((size_t)s.nkill * n + 1, 1);
  s.kill_count = calloc(s.nkill + 1, sizeof *s.kill_count);
  s.kill_first = calloc(s.nkill + 1, sizeof *s.kill_first);
  s.kill_all = calloc(s.nkill + 1, sizeof *s.kill_all);
  s.kill_susp = calloc(s.nkill + 1, sizeof *s.kill_susp);
  s.kill_ping = calloc(s.nkill + 1, sizeof *s.kill_ping);
  s.fp_member = calloc(n, 1);
  if (!s.kill_list || !s.kill_slot || !s.kill_seen || !s.kill_count ||
      !s.kill_first || !s.kill_all || !s.kill_susp || !s.kill_ping ||
      !s.fp_member)
    goto nomem;
  for (size_t i = 0; i < n; i++) s.kill_slot[i] = -1;
  r->bound_ms = detect_bound(&s.cfg, s.n, o->loss);
  {
    uint64_t min, max;
    wr_swim_suspicion_bounds(&s.cfg, s.cfg.suspicion_mult, s.n, &min, &max);
    s.lag = sim_lag_new(min);
    if (!s.lag) goto nomem;
  }
  r->fp_needed_ms = 2 * suspicion_max_ms(&s.cfg, s.n);
  /* The core's sync period (swim.c, sync_interval: memberlist's
   * pushPullScale, one more period per doubling above 32 members). */
  r->sync_period_ms = s.cfg.sync_interval_ms;
  if (s.n + 0 > 32)
    r->sync_period_ms *=
        (uint64_t)ceil(log2((double)s.n) - log2(32.0)) + 1;

  sim_phase(&s, "start");
  rv = sim_nodes_init(&s);
  if (rv != 0) {
    fail(r, "setting up the cores: %s", wr_strerror(rv));
    rv = -1;
    goto out;
  }
  if (o->faults_file) {
    char ferr[400];
    rv = sim_faults_load(&s, o->faults_file, ferr, sizeof ferr);
    if (rv != 0) {
      fail(r, "%s", ferr);
      rv = -1;
      goto out;
    }
  }
  sim_phase(&s, "bootstrap");
  rv = sim_scenario_run(&s);
  sim_faults_report(&s, stderr);
  if (rv != 0) goto nomem;
  r->killed = s.nkill;
  r->routes = o->routes;
  measure(&s);
  if (o->check) check(&s);
  rv = 0;
  goto out;
nomem:
  fail(r, "out of memory");
  rv = -1;
out:
  sim_faults_free(&s);
  sim_nodes_free(&s);
  sim_net_del(s.net);
  free_tables(&s);
  struct rusage ru;
  if (getrusage(RUSAGE_SELF, &ru) == 0) r->rss_kib = (size_t)ru.ru_maxrss;
  clock_gettime(CLOCK_MONOTONIC, &t1);
  r->wall_s =
      (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
  return rv;
}
