/*
 * warren-sim: real wr_swim cores on a simulated network, driven by
 * virtual time (DESIGN.md "Command-line contract", issue 4).
 *
 *   warren-sim --nodes N [--seed S] [--loss P] [--kill K] [--routes R
 *              [--churn C]] [--json] [more options, see --help]
 *
 * Exit status: 0 the run completed (and, with --check, every assertion
 * held), 1 a --check assertion failed or the run could not be set up
 * (a "warren-sim: FAILED (replay with WARREN_SIM_SEED=S ...)" line says
 * how to replay it), 2 usage error.  The seed is always printed; the same
 * seed and options give byte-identical output except wall_s.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "sim.h"
#include "warren/swim.h"

#ifndef WARREN_VERSION
#define WARREN_VERSION "0.0.0"
#endif

#define UNSET UINT32_MAX

static const char usage[] =
    "usage: warren-sim --nodes N [--seed S] [--loss P] [--kill K] "
    "[--routes R [--churn C]] [--json]\n"
    "\n"
    "Run N real SWIM+Lifeguard cores on a simulated network in virtual\n"
    "time and measure failure detection, dissemination, false positives\n"
    "and traffic; with --routes, every node also runs the real ownership\n"
    "table (src/routes) wired to its core as the node wires it.\n"
    "\n"
    "options:\n"
    "  --nodes N          fleet size (1..100000)\n"
    "  --seed S           seed (default: env WARREN_SIM_SEED, else the clock)\n"
    "  --loss P           datagram loss probability, 0 <= P < 1\n"
    "  --kill K           nodes killed after warm-up (default 3 for the\n"
    "                     default and detect scenarios, else 0)\n"
    "  --routes R         R names bound at random live nodes after warm-up,\n"
    "                     spread at --churn changes per second, with moves\n"
    "                     (18 %), releases (12 %) and other accounts' claims\n"
    "                     (10 %) among the binds (60 %), so about R/0.6\n"
    "                     changes (default 10 for default and disseminate,\n"
    "                     1000 churn, 100 partition-claims, 200 owner-death\n"
    "                     and gc-stale, else 0)\n"
    "  --churn C          route changes per second (default 500)\n"
    "  --routes-grace-s S the tables' released and dead-owner grace\n"
    "                     (default 60, as the node)\n"
    "  --scenario S       default (detect + disseminate), detect,\n"
    "                     disseminate, falsepos, idle, or a routes one:\n"
    "                     churn        the --routes workload alone\n"
    "                     partition-claims  two halves cut apart (for\n"
    "                                  --partition-s), each name claimed by\n"
    "                                  acct-a on one side and acct-b on the\n"
    "                                  other, then healed: one winner each\n"
    "                     owner-death  the churn, then --kill K (default 2)\n"
    "                                  nodes holding names are killed: their\n"
    "                                  names must leave every live table by\n"
    "                                  the time it declares them dead, their\n"
    "                                  logs collected after the grace\n"
    "                     gc-stale     the churn, then one node is paused\n"
    "                                  until all declared it dead; half the\n"
    "                                  names are released and --kill K\n"
    "                                  (default 1) owners killed behind its\n"
    "                                  back; it resumes after the GC: no\n"
    "                                  collected name may route again\n"
    "";

/* In three parts: ISO C caps a string literal at 4095 characters. */
static const char usage2[] =
    "  --profile P        lan (default), wan, local: core timings and the\n"
    "                     network's default delay/jitter\n"
    "  --no-lifeguard     plain SWIM (cfg.lifeguard = 0)\n"
    "  --set K=V          a core tunable after the profile, repeatable\n"
    "                     (probe-interval-ms, suspicion-mult, confirm-probes,\n"
    "                     ...: the names of wr_swim_config_set)\n"
    "  --pause-frac F     fraction of live nodes that stall now and then\n"
    "                     (falsepos default 0.1)\n"
    "  --pause-mean-s S   mean stall, exponential (default 3)\n"
    "  --pause-gap-s S    mean time between a node's stalls (default 10)\n"
    "  --slow-ms M        a stall is a slow stretch, not a freeze: the\n"
    "                     node's timers fire, its input is handled M/2..M\n"
    "                     ms late (a CPU-starved process)\n"
    "  --duration-s S     falsepos (default 60) / idle (30) / stalls length\n"
    "  --warmup-s S       quiet time before the disturbance (default 61 s:\n"
    "                     traffic is measured over its last 80 %, at least\n"
    "                     60 s by default)\n"
    "  --observe-s S      keep running until S s after the last fault\n"
    "                     (kill, partition, stalls, churn), so that a\n"
    "                     count of 0 false deaths means something: it does\n"
    "                     once S >= false_positives_needed_s, twice the\n"
    "                     longest suspicion timeout (JSON\n"
    "                     false_positives_conclusive)\n"
    "  --stream-mbit M    bandwidth of a sync stream (default 100; 0: no\n"
    "                     transmission time); streams also pay a TCP\n"
    "                     handshake (three one-way delays) before data\n"
    "  --delay-ms D       one-way base delay (lan 1, wan 50, local 0)\n"
    "  --jitter-ms J      plus uniform [0, J] per packet (lan 1, wan 20)\n"
    "  --dup P            datagram duplication probability\n"
    "  --faults FILE      fault rules per node, as a node's /faults holds\n"
    "                     them: {\"seed\":S,\"nodes\":{\"*\"|\"nK\":{\"rules\":\n"
    "                     [...]}},\"pauses\":[{\"node\",\"at_ms\",\"ms\"}]}\n"
    "                     (docs/FAULTS.md); totals on stderr\n"
    "  --crash M          silent (default: a killed node's host is down) or\n"
    "                     refuse (its host is up and answers ICMP port\n"
    "                     unreachable: a crashed process)\n"
    "  --partition F      cut F of the live nodes off after warm-up\n"
    "  --partition-s S    for S seconds (default 15)\n"
    "  --sync-s S         anti-entropy period (default: the profile's;\n"
    "                     0 turns it off)\n"
    "  --regions R        split the nodes into R regions (2..16) of equal\n"
    "                     size (node i in region i*R/N, named r0, r1, ...),\n"
    "                     --delay-ms apart inside a region and\n"
    "                     --region-delay-ms between two; JSON adds\n"
    "                     detect_all_by_region_ms,\n"
    "                     cross_region_bytes_per_node_per_s and the\n"
    "                     cores' cross_probes and region_silent_probes\n"
    "  --region-delay-ms D  one-way delay between regions (default 80)\n"
    "  --region-cut R     cut region R off from the others after warm-up\n"
    "                     for --partition-s seconds\n"
    "  --burst-loss P     burst loss (Gilbert-Elliott): each node's link\n"
    "                     has bad stretches in which datagrams through it\n"
    "                     are lost with probability P, on top of --loss\n"
    "  --burst-good-s S   mean good stretch of a link (default 10)\n"
    "  --burst-bad-s S    mean bad stretch of a link (default 1)\n"
    "";

static const char usage3[] =
    "  --join-bootstrap   a join storm: every node starts alone and joins\n"
    "                     through the seeds n0, n1, n2 by the real protocol\n"
    "                     instead of starting converged\n"
    "  --check            exit 1 unless: no live member declared dead\n"
    "                     without loss/stalls/partition, every killed node\n"
    "                     detected by all within the bound the config\n"
    "                     predicts (detect_bound_ms), every route\n"
    "                     everywhere, all live nodes agree at the end, a\n"
    "                     --join-bootstrap storm converged within 30 s;\n"
    "                     with --routes also: every (change, live node)\n"
    "                     pair converged, every live table's digest equal to\n"
    "                     the reference's, the clients hold exactly what the\n"
    "                     resolution serves (one winner per name), the USER\n"
    "                     queues drained, and the scenario's own assertion\n"
    "  --json             one JSON object instead of the table; with\n"
    "                     --routes, route_converge_p50_ms/p99_ms are over\n"
    "                     every (change, live node) pair: -1 when the rank\n"
    "                     falls on pairs that never converged (counted in\n"
    "                     route_missing), null without routes;\n"
    "                     detect_victims_ms: per victim, its first\n"
    "                     suspicion, first DEAD and DEAD everywhere;\n"
    "                     first_probe_ms: per victim, its death to the\n"
    "                     first PING anyone sent it (-1: none);\n"
    "                     refute_lag: how long nodes held suspicions\n"
    "                     of live members until the refutation came\n"
    "                     (quantiles, counts past 1-4 s and past the\n"
    "                     suspicion minimum min_ms)\n"
    "  --no-thp           do not re-exec with glibc.malloc.hugetlb=1\n"
    "  -v, --verbose      phases, false deaths and peak RSS on stderr\n"
    "  -h, --help         this text\n"
    "  -V, --version      print the version\n";

static int usage_error(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));
static int usage_error(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fputs("warren-sim: ", stderr);
  vfprintf(stderr, fmt, ap);
  fputs(" (see warren-sim --help)\n", stderr);
  va_end(ap);
  return 2;
}

static int parse_u64(const char *s, uint64_t max, uint64_t *out) {
  char *end;
  errno = 0;
  if (*s == '-' || *s == '\0') return -1;
  unsigned long long v = strtoull(s, &end, 0);
  if (errno || *end || v > max) return -1;
  *out = v;
  return 0;
}

static int parse_dbl(const char *s, double lo, double hi, double *out) {
  char *end;
  errno = 0;
  double v = strtod(s, &end);
  if (errno || end == s || *end || !(v >= lo && v <= hi)) return -1;
  *out = v;
  return 0;
}

static const char *const scenarios[] = {
    "default", "detect",           "disseminate", "falsepos",
    "idle",    "churn", "partition-claims", "owner-death",
    "gc-stale"};
#define NSCENARIOS (sizeof scenarios / sizeof *scenarios)

typedef struct flag {
  const char *name;
  int has_value;
} flag;

static const flag flags[] = {
    {"--nodes", 1},       {"--seed", 1},         {"--loss", 1},
    {"--kill", 1},        {"--routes", 1},       {"--scenario", 1},
    {"--profile", 1},     {"--pause-frac", 1},   {"--pause-mean-s", 1},
    {"--pause-gap-s", 1}, {"--slow-ms", 1}, {"--duration-s", 1},   {"--warmup-s", 1},
    {"--delay-ms", 1},    {"--jitter-ms", 1},    {"--dup", 1},
    {"--partition", 1},   {"--partition-s", 1},  {"--json", 0},
    {"--check", 0},       {"--no-lifeguard", 0}, {"--join-bootstrap", 0},
    {"--verbose", 0},     {"--no-thp", 0},       {"--sync-s", 1},
    {"--set", 1},         {"--crash", 1},        {"--churn", 1},
    {"--routes-grace-s", 1}, {"--faults", 1}, {"--stream-mbit", 1},
    {"--observe-s", 1},   {"--regions", 1},      {"--region-delay-ms", 1},
    {"--region-cut", 1},  {"--burst-loss", 1},   {"--burst-good-s", 1},
    {"--burst-bad-s", 1},
};

typedef struct cli {
  sim_opts o;
  int json, have_seed, have_nodes, no_thp;
  uint32_t kill, routes;
} cli;

static int set_flag(cli *c, const char *name, const char *v) {
  sim_opts *o = &c->o;
  uint64_t u;
  double d;
  if (!strcmp(name, "--json"))
    c->json = 1;
  else if (!strcmp(name, "--check"))
    o->check = 1;
  else if (!strcmp(name, "--no-lifeguard"))
    o->lifeguard = 0;
  else if (!strcmp(name, "--join-bootstrap"))
    o->join_bootstrap = 1;
  else if (!strcmp(name, "--verbose"))
    o->verbose++;
  else if (!strcmp(name, "--no-thp"))
    c->no_thp = 1;
  else if (!strcmp(name, "--set")) {
    /* Checked against the core's own table; applied in run.c. */
    wr_swim_config probe;
    char err[160];
    const char *eq = strchr(v, '=');
    char key[48];
    if (!eq || (size_t)(eq - v) >= sizeof key || o->nset == 32) return -1;
    memcpy(key, v, (size_t)(eq - v));
    key[eq - v] = 0;
    wr_swim_config_default(&probe);
    if (wr_swim_config_set(&probe, key, eq + 1, err, sizeof err) != 0) {
      fprintf(stderr, "warren-sim: --set: %s\n", err);
      return -1;
    }
    o->set[o->nset++] = v;
  }
  else if (!strcmp(name, "--nodes")) {
    if (parse_u64(v, 100000, &u) || u < 1) return -1;
    o->nodes = (uint32_t)u;
    c->have_nodes = 1;
  } else if (!strcmp(name, "--seed")) {
    if (parse_u64(v, UINT64_MAX, &o->seed)) return -1;
    c->have_seed = 1;
  } else if (!strcmp(name, "--kill") || !strcmp(name, "--routes")) {
    if (parse_u64(v, 100000, &u)) return -1;
    *(name[2] == 'k' ? &c->kill : &c->routes) = (uint32_t)u;
  } else if (!strcmp(name, "--scenario")) {
    size_t i = 0;
    while (i < NSCENARIOS && strcmp(v, scenarios[i])) i++;
    if (i == NSCENARIOS) return -1;
    o->scenario = (sim_scenario)i;
  } else if (!strcmp(name, "--crash")) {
    if (strcmp(v, "silent") && strcmp(v, "refuse")) return -1;
    o->refuse_dead = !strcmp(v, "refuse");
  } else if (!strcmp(name, "--faults")) {
    o->faults_file = v;
  } else if (!strcmp(name, "--profile")) {
    if (strcmp(v, "lan") && strcmp(v, "wan") && strcmp(v, "local")) return -1;
    o->profile = v;
  } else if (!strcmp(name, "--regions")) {
    if (parse_u64(v, SIM_REGIONS_MAX, &u) || u < 1) return -1;
    o->regions = (uint32_t)u;
  } else if (!strcmp(name, "--region-delay-ms")) {
    if (parse_u64(v, 60000, &u)) return -1;
    o->region_delay_ms = (int64_t)u;
  } else if (!strcmp(name, "--region-cut")) {
    if (parse_u64(v, SIM_REGIONS_MAX - 1, &u)) return -1;
    o->region_cut = (int32_t)u;
  } else if (!strcmp(name, "--delay-ms") || !strcmp(name, "--jitter-ms")) {
    if (parse_u64(v, 60000, &u)) return -1;
    *(name[2] == 'd' ? &o->delay_ms : &o->jitter_ms) = (int64_t)u;
  } else {
    /* The probabilities and the durations. */
    int prob = !strcmp(name, "--loss") || !strcmp(name, "--dup") ||
               !strcmp(name, "--burst-loss") ||
               !strcmp(name, "--pause-frac") || !strcmp(name, "--partition");
    if (parse_dbl(v, 0, prob ? (name[2] == 'l' ? 0.99 : 1) : 86400, &d))
      return -1;
    if (!strcmp(name, "--loss"))
      o->loss = d;
    else if (!strcmp(name, "--dup"))
      o->dup = d;
    else if (!strcmp(name, "--pause-frac"))
      o->pause_frac = d;
    else if (!strcmp(name, "--partition"))
      o->partition_frac = d;
    else if (!strcmp(name, "--pause-mean-s"))
      o->pause_mean_s = d;
    else if (!strcmp(name, "--pause-gap-s"))
      o->pause_gap_s = d;
    else if (!strcmp(name, "--slow-ms"))
      o->slow_ms = d;
    else if (!strcmp(name, "--duration-s"))
      o->duration_s = d;
    else if (!strcmp(name, "--warmup-s"))
      o->warmup_s = d;
    else if (!strcmp(name, "--partition-s"))
      o->partition_s = d;
    else if (!strcmp(name, "--sync-s"))
      o->sync_s = d;
    else if (!strcmp(name, "--routes-grace-s"))
      o->routes_grace_s = d;
    else if (!strcmp(name, "--stream-mbit"))
      o->stream_mbit = d;
    else if (!strcmp(name, "--observe-s"))
      o->observe_s = d;
    else if (!strcmp(name, "--burst-loss"))
      o->burst_loss = d;
    else if (!strcmp(name, "--burst-good-s") || !strcmp(name, "--burst-bad-s")) {
      if (d < 0.001) return -1;
      *(name[8] == 'g' ? &o->burst_good_s : &o->burst_bad_s) = d;
    }
    else if (!strcmp(name, "--churn")) {
      if (d < 0.01 || d > 100000) return -1;
      o->churn = d;
    }
  }
  return 0;
}

/* Returns -1 to go on, or an exit status (0 for --help/--version). */
static int parse_args(int argc, char **argv, cli *c) {
  sim_opts *o = &c->o;
  memset(c, 0, sizeof *c);
  o->profile = "lan";
  o->lifeguard = 1;
  o->delay_ms = o->jitter_ms = -1;
  o->pause_frac = -1;
  o->pause_mean_s = 3;
  o->pause_gap_s = 10;
  o->partition_s = 15;
  o->sync_s = -1;
  o->churn = 500;
  o->stream_mbit = 100;
  o->region_delay_ms = -1;
  o->region_cut = -1;
  o->burst_good_s = 10;
  o->burst_bad_s = 1;
  c->kill = c->routes = UNSET;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
      fputs(usage, stdout);
      fputs(usage2, stdout);
      fputs(usage3, stdout);
      return 0;
    }
    if (!strcmp(a, "-V") || !strcmp(a, "--version")) {
      printf("warren-sim %s\n", WARREN_VERSION);
      return 0;
    }
    if (!strcmp(a, "-v")) a = "--verbose";
    const char *eq = strchr(a, '=');
    size_t nl = eq ? (size_t)(eq - a) : strlen(a);
    const flag *f = NULL;
    for (size_t k = 0; k < sizeof flags / sizeof *flags; k++)
      if (strlen(flags[k].name) == nl && !strncmp(a, flags[k].name, nl))
        f = &flags[k];
    if (!f) return usage_error("unknown option '%s'", a);
    const char *v = NULL;
    if (f->has_value) {
      if (eq)
        v = eq + 1;
      else if (i + 1 < argc)
        v = argv[++i];
      else
        return usage_error("%s needs a value", f->name);
    } else if (eq) {
      return usage_error("%s takes no value", f->name);
    }
    if (set_flag(c, f->name, v) != 0)
      return usage_error("bad value '%s' for %s", v, f->name);
  }
  if (!c->have_nodes) return usage_error("--nodes N is required");
  if (!c->have_seed) {
    const char *env = getenv("WARREN_SIM_SEED");
    if (env && *env) {
      if (parse_u64(env, UINT64_MAX, &o->seed))
        return usage_error("bad WARREN_SIM_SEED '%s'", env);
    } else {
      struct timespec ts;
      clock_gettime(CLOCK_REALTIME, &ts);
      uint64_t x = (uint64_t)ts.tv_sec * 1000003u ^ (uint64_t)ts.tv_nsec ^
                   (uint64_t)getpid() << 20;
      /* splitmix64 finaliser, then kept below 2^53 so JSON readers that
       * use doubles print it back exactly. */
      x ^= x >> 30;
      x *= 0xbf58476d1ce4e5b9ull;
      x ^= x >> 27;
      x *= 0x94d049bb133111ebull;
      x ^= x >> 31;
      o->seed = x & ((1ull << 53) - 1);
    }
  }
  int sc = o->scenario;
  int kills = sc == SIM_SC_DEFAULT || sc == SIM_SC_DETECT   ? 3
              : sc == SIM_SC_OWNER_DEATH                      ? 2
              : sc == SIM_SC_GC_STALE                         ? 1
                                                              : 0;
  uint32_t routes = sc == SIM_SC_DEFAULT || sc == SIM_SC_DISSEMINATE ? 10
                    : sc == SIM_SC_CHURN                             ? 1000
                    : sc == SIM_SC_PARTITION_CLAIMS                  ? 100
                    : sc >= SIM_SC_OWNER_DEATH                       ? 200
                                                                     : 0;
  /* The join storm's 3 seeds are never killed (scenario.c). */
  uint32_t keep = o->join_bootstrap ? 3 : 0;
  uint32_t maxkill = o->nodes > 1 + keep ? o->nodes - 1 - keep : 0;
  if (sc == SIM_SC_GC_STALE && maxkill) maxkill--; /* the stale node */
  if (c->kill == UNSET)
    c->kill = kills ? (maxkill < (uint32_t)kills ? maxkill / 2
                                                 : (uint32_t)kills)
                    : 0;
  if (c->routes == UNSET) c->routes = routes;
  if (sc >= SIM_SC_CHURN && c->routes == 0)
    return usage_error("--scenario %s needs --routes R > 0", scenarios[sc]);
  if (sc == SIM_SC_PARTITION_CLAIMS && o->nodes < 4)
    return usage_error("partition-claims needs at least 4 nodes");
  if (c->kill > maxkill || (o->nodes - c->kill < 2 && c->kill))
    return usage_error("--kill %u leaves fewer than 2 live nodes", c->kill);
  if (c->routes && o->nodes < 2)
    return usage_error("--routes needs at least 2 nodes");
  o->kill = c->kill;
  o->routes = c->routes;
  if (o->pause_frac < 0) o->pause_frac = sc == SIM_SC_FALSEPOS ? 0.1 : 0;
  if (o->duration_s == 0)
    o->duration_s = sc == SIM_SC_FALSEPOS ? 60
                    : sc == SIM_SC_IDLE   ? 30
                    : o->pause_frac > 0   ? 30
                                          : 0;
  if (o->regions > o->nodes)
    return usage_error("--regions %u is more than --nodes %u", o->regions,
                       o->nodes);
  if (o->region_cut >= 0 && (uint32_t)o->region_cut >= o->regions)
    return usage_error("--region-cut %d needs --regions above it",
                       (int)o->region_cut);
  if (o->region_cut >= 0 && o->partition_frac > 0)
    return usage_error("--region-cut and --partition are one partition: "
                       "pick one");
  if (o->pause_mean_s <= 0 || o->pause_gap_s <= 0)
    return usage_error("--pause-mean-s and --pause-gap-s must be > 0");
  return -1;
}

/* null: not measured; -1 (SIM_NEVER): a percentile that falls on pairs
 * that never converged. */
static void jnum(const char *name, int64_t v, int last) {
  if (v == SIM_NEVER)
    printf("\"%s\":-1%s", name, last ? "" : ",");
  else if (v < 0)
    printf("\"%s\":null%s", name, last ? "" : ",");
  else
    printf("\"%s\":%lld%s", name, (long long)v, last ? "" : ",");
}

static void print_json(const cli *c, const sim_result *r) {
  const sim_opts *o = &c->o;
  printf("{\"nodes\":%u,\"seed\":%llu,\"loss\":%g,", r->nodes,
         (unsigned long long)r->seed, o->loss);
  jnum("detect_first_ms", r->detect_first_ms, 0);
  jnum("detect_all_ms", r->detect_all_ms, 0);
  printf("\"false_positives\":%llu,", (unsigned long long)r->false_positives);
  jnum("route_converge_p50_ms", r->route_p50_ms, 0);
  jnum("route_converge_p99_ms", r->route_p99_ms, 0);
  printf("\"bytes_per_node_per_s\":%.1f,\"wall_s\":%.3f,",
         r->bytes_per_node_per_s, r->wall_s);
  printf("\"scenario\":\"%s\",\"profile\":\"%s\",\"lifeguard\":%s,",
         scenarios[o->scenario], o->profile, o->lifeguard ? "true" : "false");
  printf("\"kill\":%u,\"routes\":%u,\"dup\":%g,\"pause_frac\":%g,"
         "\"partition\":%g,",
         r->killed, r->routes, o->dup, o->pause_frac, o->partition_frac);
  printf("\"crash\":\"%s\",", o->refuse_dead ? "refuse" : "silent");
  printf("\"slow_ms\":%g,", o->slow_ms);
  jnum("detect_first_min_ms", r->detect_first_min_ms, 0);
  printf("\"detected_all\":%u,\"detect_bound_ms\":%llu,", r->detected_all,
         (unsigned long long)r->bound_ms);
  printf("\"refute_lag\":{\"n\":%llu,", (unsigned long long)r->lag_count);
  jnum("p50_ms", r->lag_p50_ms, 0);
  jnum("p99_ms", r->lag_p99_ms, 0);
  jnum("p999_ms", r->lag_p999_ms, 0);
  jnum("p9999_ms", r->lag_p9999_ms, 0);
  jnum("max_ms", r->lag_max_ms, 0);
  printf("\"at_least_ms\":{");
  for (int t = 0; t < SIM_LAG_THRESHOLDS; t++)
    printf("%s\"%llu\":%llu", t ? "," : "",
           (unsigned long long)sim_lag_thresholds_ms[t],
           (unsigned long long)r->lag_over[t]);
  printf("},");
  printf("\"over_min\":%llu,\"min_ms\":%llu,\"lost\":%llu},",
         (unsigned long long)r->lag_over_min,
         (unsigned long long)r->lag_min_ms, (unsigned long long)r->lag_lost);
  printf("\"detect_victims_ms\":[");
  for (uint32_t k = 0; k < r->killed && k < SIM_VICTIMS_SHOWN; k++)
    printf("%s[%lld,%lld,%lld]", k ? "," : "",
           (long long)r->victim_ms[k][0], (long long)r->victim_ms[k][1],
           (long long)r->victim_ms[k][2]);
  printf("],\"first_probe_ms\":[");
  for (uint32_t k = 0; k < r->killed && k < SIM_VICTIMS_SHOWN; k++)
    printf("%s%lld", k ? "," : "", (long long)r->victim_ping_ms[k]);
  printf("],");
  jnum("route_converge_all_ms", r->route_all_ms, 0);
  printf("\"false_positives_by_healthy\":%llu,"
         "\"false_positives_healthy_victims\":%llu,",
         (unsigned long long)r->fp_by_healthy,
         (unsigned long long)r->fp_healthy_victims);
  printf("\"route_missing\":%llu,\"false_dead_reports\":%llu,"
         "\"suspect_reports\":%llu,\"suspicions\":%llu,\"refutations\":%llu,",
         (unsigned long long)r->route_missing,
         (unsigned long long)r->false_dead_events,
         (unsigned long long)r->suspect_events,
         (unsigned long long)r->suspicions, (unsigned long long)r->refutations);
  printf("\"packets_per_node_per_s\":%.2f,\"idle_window_s\":%.1f,",
         r->packets_per_node_per_s, r->idle_window_s);
  printf("\"bytes_per_node_per_s_udp\":%.1f,"
         "\"bytes_per_node_per_s_tcp\":%.1f,",
         r->udp_bytes_per_node_per_s, r->tcp_bytes_per_node_per_s);
  printf("\"pings_per_victim\":%.1f,\"confirm_probes_per_victim\":%.1f,"
         "\"stale_corrections\":%llu,\"last_chance_probes\":%llu,",
         r->pings_per_victim, r->confirm_probes_per_victim,
         (unsigned long long)r->stale_corrections,
         (unsigned long long)r->last_chance_probes);
  printf("\"sync_bytes_per_session\":%.0f,\"sync_period_s\":%.1f,",
         r->sync_bytes_per_session, (double)r->sync_period_ms / 1000);
  /* Steady state per node whatever the window caught: the window's UDP
   * plus one session's bytes per sync period (every node starts one
   * session a period, and a session's bytes count once). */
  printf("\"bytes_per_node_per_s_amortised\":%.1f,"
         "\"sync_buckets\":%llu,\"sync_buckets_differ\":%llu,",
         r->udp_bytes_per_node_per_s +
             (r->sync_period_ms
                  ? r->sync_bytes_per_session * 1000 / (double)r->sync_period_ms
                  : 0),
         (unsigned long long)r->sync_buckets,
         (unsigned long long)r->sync_buckets_differ);
  /* A count of 0 false deaths is only evidence after the run watched for
   * twice the longest suspicion timeout past its last fault. */
  printf("\"false_positives_window_s\":%.1f,"
         "\"false_positives_needed_s\":%.1f,"
         "\"false_positives_conclusive\":%s,",
         (double)r->fp_window_ms / 1000, (double)r->fp_needed_ms / 1000,
         r->false_positives || r->fp_window_ms >= r->fp_needed_ms ? "true"
                                                                  : "false");
  printf("\"converged\":%s,", r->converged ? "true" : "false");
  jnum("converge_ms", r->converge_ms, 0);
  if (o->join_bootstrap) jnum("join_converge_ms", r->join_converge_ms, 0);
  printf("\"virtual_s\":%.1f,\"events\":%llu,\"packets_sent\":%llu,"
         "\"packets_lost\":%llu,\"syncs_ok\":%llu,\"syncs_failed\":%llu,"
         "\"stuck_deadlines\":%llu,\"send_errors\":%llu",
         (double)r->virtual_ms / 1000, (unsigned long long)r->events,
         (unsigned long long)r->packets, (unsigned long long)r->lost,
         (unsigned long long)r->syncs_ok, (unsigned long long)r->syncs_failed,
         (unsigned long long)r->stuck_deadlines,
         (unsigned long long)r->send_errors);
  printf(",\"bcast_queue_peak\":%zu,\"bcast_evicted_member\":%llu,"
         "\"bcast_evicted_user\":%llu",
         r->bcast_queue_peak, (unsigned long long)r->bcast_evicted_member,
         (unsigned long long)r->bcast_evicted_user);
  if (r->routes) {
    printf(",\"churn\":%g,\"route_pairs\":%llu,\"route_changes\":%llu,"
           "\"route_binds\":%llu,\"route_moves\":%llu,"
           "\"route_releases\":%llu,\"route_claims\":%llu,"
           "\"route_claims_refused\":%llu,\"evict_taken\":%llu,"
           "\"evict_moved\":%llu,",
           o->churn, (unsigned long long)r->route_pairs,
           (unsigned long long)r->route_changes,
           (unsigned long long)r->rt_binds, (unsigned long long)r->rt_moves,
           (unsigned long long)r->rt_releases,
           (unsigned long long)r->rt_claims,
           (unsigned long long)r->rt_refused,
           (unsigned long long)r->rt_evict_taken,
           (unsigned long long)r->rt_evict_moved);
    printf("\"user_news\":%llu,\"user_old\":%llu,\"user_rejected\":%llu,"
           "\"user_queue_left\":%llu,",
           (unsigned long long)r->rt_news, (unsigned long long)r->rt_old,
           (unsigned long long)r->rt_rejected,
           (unsigned long long)r->rt_queue_left);
    printf("\"routes_named\":%llu,\"routes_converged\":%s,"
           "\"routes_tables_off\":%llu,"
           "\"routes_digest_groups\":%llu,\"routes_winner_errors\":%llu,",
           (unsigned long long)r->rt_names, r->rt_converged ? "true" : "false",
           (unsigned long long)r->rt_tables_off,
           (unsigned long long)r->rt_digest_groups,
           (unsigned long long)r->rt_winner_errors);
    jnum("routes_converge_ms", r->rt_converge_ms, 0);
    printf("\"churn_s\":%.1f,\"churn_bytes_per_node_per_s\":%.1f,"
           "\"sync_app_bytes\":%llu",
           r->rt_churn_s, r->rt_bytes_per_node_per_s,
           (unsigned long long)r->rt_sync_bytes);
    if (o->scenario == SIM_SC_OWNER_DEATH || o->scenario == SIM_SC_GC_STALE) {
      printf(",\"death_pairs\":%llu,\"death_missing\":%llu,"
             "\"death_late\":%llu,",
             (unsigned long long)r->death_pairs,
             (unsigned long long)r->death_missing,
             (unsigned long long)r->death_late);
      jnum("death_gone_max_ms", r->death_max_ms, 0);
      printf("\"dead_entries_left\":%llu",
             (unsigned long long)r->dead_entries_left);
    }
    if (o->scenario == SIM_SC_GC_STALE)
      printf(",\"stale_node\":%u,\"watched_names\":%llu,"
             "\"stale_held\":%llu,\"stale_epoch\":%llu,"
             "\"resurrected\":%llu",
             r->stale_node, (unsigned long long)r->watched_names,
             (unsigned long long)r->stale_held,
             (unsigned long long)r->stale_epoch,
             (unsigned long long)r->resurrected);
  }
  if (o->regions > 1) {
    printf(",\"regions\":%u,\"region_delay_ms\":%lld,\"region_cut\":%d,"
           "\"cross_region_bytes_per_node_per_s\":%.1f,"
           "\"cross_probes\":%llu,\"region_silent_probes\":%llu,"
           "\"detect_all_by_region_ms\":[",
           o->regions,
           (long long)(o->region_delay_ms >= 0 ? o->region_delay_ms : 80),
           (int)o->region_cut, r->cross_bytes_per_node_per_s,
           (unsigned long long)r->cross_probes,
           (unsigned long long)r->region_silent_probes);
    for (uint32_t g = 0; g < o->regions; g++) {
      if (r->detect_region_ms[g] < 0)
        printf("%snull", g ? "," : "");
      else
        printf("%s%lld", g ? "," : "", (long long)r->detect_region_ms[g]);
    }
    printf("]");
  }
  if (o->burst_loss > 0)
    printf(",\"burst_loss\":%g,\"burst_good_s\":%g,\"burst_bad_s\":%g",
           o->burst_loss, o->burst_good_s, o->burst_bad_s);
  if (o->verbose) printf(",\"rss_mib\":%.1f", (double)r->rss_kib / 1024);
  if (o->check) printf(",\"check\":\"%s\"", r->failure[0] ? "failed" : "ok");
  printf("}\n");
}

static void ms(const char *label, int64_t v) {
  if (v == SIM_NEVER)
    printf("  %-8s never", label);
  else if (v < 0)
    printf("  %-8s -", label);
  else
    printf("  %-8s %lld ms", label, (long long)v);
}

static void print_table(const cli *c, const sim_result *r) {
  const sim_opts *o = &c->o;
  printf("warren-sim %s  seed=%llu\n", WARREN_VERSION,
         (unsigned long long)r->seed);
  printf("%-16s %u nodes, %s, %s, profile %s, loss %g, dup %g\n", "fleet",
         r->nodes, scenarios[o->scenario],
         o->lifeguard ? "Lifeguard" : "plain SWIM", o->profile, o->loss,
         o->dup);
  printf("%-16s %u killed, all-detected %u", "detect", r->killed,
         r->detected_all);
  ms("first", r->detect_first_ms);
  ms("all", r->detect_all_ms);
  printf("  (bound %llu ms)\n", (unsigned long long)r->bound_ms);
  printf("%-16s %u names, %llu changes at %g/s over %.1f s", "routes",
         r->routes, (unsigned long long)r->route_changes, o->churn,
         r->rt_churn_s);
  ms("p50", r->route_p50_ms);
  ms("p99", r->route_p99_ms);
  ms("all", r->route_all_ms);
  printf("  missing %llu of %llu\n", (unsigned long long)r->route_missing,
         (unsigned long long)r->route_pairs);
  if (r->routes)
    printf("%-16s binds %llu, moves %llu, releases %llu, claims %llu "
           "(refused %llu), evicted taken %llu moved %llu; tables %s\n",
           "", (unsigned long long)r->rt_binds,
           (unsigned long long)r->rt_moves,
           (unsigned long long)r->rt_releases,
           (unsigned long long)r->rt_claims,
           (unsigned long long)r->rt_refused,
           (unsigned long long)r->rt_evict_taken,
           (unsigned long long)r->rt_evict_moved,
           r->rt_converged ? "converged" : "DIFFER");
  printf("%-16s %llu members (dead reports %llu, suspect reports %llu, "
         "refutations %llu)\n",
         "false positives", (unsigned long long)r->false_positives,
         (unsigned long long)r->false_dead_events,
         (unsigned long long)r->suspect_events,
         (unsigned long long)r->refutations);
  if (!r->false_positives && r->fp_window_ms < r->fp_needed_ms)
    printf("%-16s too short to tell: watched %.1f s after the last fault, "
           "0 means 0 after %.1f s (--observe-s)\n",
           "", (double)r->fp_window_ms / 1000,
           (double)r->fp_needed_ms / 1000);
  if (o->pause_frac > 0)
    printf("%-16s %llu declared by never-stalled nodes, %llu never-stalled "
           "victims\n",
           "", (unsigned long long)r->fp_by_healthy,
           (unsigned long long)r->fp_healthy_victims);
  printf("%-16s %.1f bytes/node/s on the wire (UDP %.1f, TCP sync %.1f), "
         "%.2f packets/node/s (quiet %.1f s)\n",
         "traffic", r->bytes_per_node_per_s, r->udp_bytes_per_node_per_s,
         r->tcp_bytes_per_node_per_s, r->packets_per_node_per_s,
         r->idle_window_s);
  printf("%-16s %.0f bytes a session every %.0f s per node (%llu of %llu "
         "buckets differed); amortised %.1f bytes/node/s\n",
         "sync", r->sync_bytes_per_session, (double)r->sync_period_ms / 1000,
         (unsigned long long)r->sync_buckets_differ,
         (unsigned long long)r->sync_buckets,
         r->udp_bytes_per_node_per_s +
             (r->sync_period_ms
                  ? r->sync_bytes_per_session * 1000 / (double)r->sync_period_ms
                  : 0));
  printf("%-16s peak %zu queued, evicted %llu membership and %llu USER "
         "updates\n",
         "piggyback", r->bcast_queue_peak,
         (unsigned long long)r->bcast_evicted_member,
         (unsigned long long)r->bcast_evicted_user);
  if (o->regions > 1) {
    printf("%-16s %u regions %lld ms apart: %.1f bytes/node/s across, "
           "%llu cross probes (%llu met a silent region); all in region:",
           "regions", o->regions,
           (long long)(o->region_delay_ms >= 0 ? o->region_delay_ms : 80),
           r->cross_bytes_per_node_per_s, (unsigned long long)r->cross_probes,
           (unsigned long long)r->region_silent_probes);
    for (uint32_t g = 0; g < o->regions; g++) {
      char label[16];
      snprintf(label, sizeof label, "r%u", g);
      ms(label, r->detect_region_ms[g]);
    }
    printf("\n");
  }
  printf("%-16s %s", "converged", r->converged ? "yes" : "no");
  if (r->converge_ms >= 0)
    printf(" (%lld ms after the disturbance ended)", (long long)r->converge_ms);
  printf("\n%-16s %.1f s virtual, %llu events, %llu packets, wall %.2f s\n",
         "run", (double)r->virtual_ms / 1000, (unsigned long long)r->events,
         (unsigned long long)r->packets, r->wall_s);
}

/*
 * Big fleets: at 10,000 nodes bootstrap allocates about 7 GiB in 20,000
 * member tables, and on Debian (THP "madvise") every 4 KiB page is a
 * fault.  glibc 2.35+ madvises its heap for transparent huge pages when
 * the tunable glibc.malloc.hugetlb=1 is set, but tunables are read only
 * at process start, so the simulator re-executes itself once with it.
 * Measured at N=10,000 (bootstrap only): 68 s -> 37 s.  Output does not
 * change (allocation never feeds the simulation).
 */
static void maybe_reexec_thp(char **argv, const cli *c) {
  if (c->no_thp || c->o.nodes < 2000 || getenv("WARREN_SIM_THP")) return;
  const char *old = getenv("GLIBC_TUNABLES");
  if (old && strstr(old, "hugetlb")) return;
  char buf[512];
  snprintf(buf, sizeof buf, "%s%sglibc.malloc.hugetlb=1", old ? old : "",
           old && *old ? ":" : "");
  setenv("GLIBC_TUNABLES", buf, 1);
  setenv("WARREN_SIM_THP", "1", 1);
  fflush(NULL);
  execv("/proc/self/exe", argv);
  /* exec failed: just run without huge pages. */
}

int main(int argc, char **argv) {
  cli c;
  int st = parse_args(argc, argv, &c);
  if (st >= 0) return st;
  maybe_reexec_thp(argv, &c);
  sim_result r;
  int rv = sim_run(&c.o, &r);
  if (rv == 0) {
    if (c.json)
      print_json(&c, &r);
    else
      print_table(&c, &r);
  }
  if (c.o.verbose)
    fprintf(stderr, "warren-sim: peak RSS %.1f MiB\n",
            (double)r.rss_kib / 1024);
  fflush(stdout);
  if (rv == 0 && !r.failure[0]) return 0;
  /* The replay line: the same options with the seed in the environment. */
  fprintf(stderr, "warren-sim: %s\n", r.failure);
  fprintf(stderr, "warren-sim: FAILED (replay with WARREN_SIM_SEED=%llu",
          (unsigned long long)c.o.seed);
  for (int i = 0; i < argc; i++) {
    if (!strcmp(argv[i], "--seed")) {
      i++;
      continue;
    }
    if (!strncmp(argv[i], "--seed=", 7)) continue;
    fprintf(stderr, " %s", i == 0 ? "warren-sim" : argv[i]);
  }
  fprintf(stderr, ")\n");
  return 1;
}
