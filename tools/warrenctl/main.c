/*
 * warrenctl: the mesh-status inspector (DESIGN.md "Command-line
 * contract").  It asks one node's admin API and prints what that node
 * sees:
 *
 *   warrenctl [--admin ADDR:PORT] [--token T] members|routes|status [--json]
 *   warrenctl ... routes --name NAME [--json]   (every candidate entry)
 *   warrenctl --admin A:P,B:P,... status [--json]   (convergence view)
 *   warrenctl [--admin ADDR:PORT] [--token T] watch [--interval S]
 *             [--count N] [--json]
 *   warrenctl [--admin ADDR:PORT] [--token T] mesh [--json]
 *             (every live member's own admin API, in parallel)
 *
 * Exit status: 0 success, 1 the request failed (unreachable, rejected
 * token, garbage answer), 2 usage error, 3 `mesh` found the fleet
 * reachable but not converged.  Errors are one line on stderr starting
 * with "warrenctl: ".
 */
#include <assert.h>
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ctl.h"
#include "warren/types.h"

#ifndef WARREN_VERSION
#define WARREN_VERSION "0.0.0"
#endif

#define DEFAULT_ADMIN "127.0.0.1:9081"

static const char usage[] =
    "usage: warrenctl --admin ADDR:PORT [--token T] members|routes [--name N]|"
    "status|watch|mesh [--json]\n"
    "       warrenctl --admin ADDR:PORT [--token T] drain|upgrade [--wait] "
    "[--json]\n"
    "       warrenctl --admin ADDR:PORT [--token T] fault list|add|partition|"
    "clear|pause|load ...\n"
    "\n"
    "Inspect a warren mesh through one node's admin API.\n"
    "\n"
    "commands:\n"
    "  members   the members this node knows: ID ADDR STATE INCARNATION\n"
    "  routes    the ownership table: NAME OWNER ACCOUNT VERSION STATE\n"
    "  routes --name N\n"
    "            every candidate entry for N (OWNER ACCOUNT VERSION CLAIMED\n"
    "            STATE VERDICT) and why the winner won; \"no entry for N\"\n"
    "            (exit 0) when the node has none\n"
    "  status    node id, member counts per state, route count and digest\n"
    "            (equal digests on every node = the tables have converged)\n"
    "  watch     poll status and members, print one line per change\n"
    "  drain     the node drains gracefully and exits (POST /drain, as\n"
    "            SIGTERM); --wait: until it has stopped\n"
    "  upgrade   the node runs the binary at its own path with --version,\n"
    "            drains, and execs it in place keeping its public socket\n"
    "            (POST /upgrade, as SIGUSR2); --wait: until the new one\n"
    "            answers, exit 1 when the node refused\n"
    "  mesh      ask every live member's own admin API (address from\n"
    "            /members), 32 at a time: digest groups, who disagrees\n"
    "            about which member and route, since when, unreachable\n"
    "            members; exit 0 converged, 3 not converged, 1 when the\n"
    "            first node cannot be asked\n"
    "\n"
    "  fault list                      the node's fault rules, seed, counters\n"
    "  fault add [--kind K,...] [--dir in|out|both] [--peers ID|ip:ADDR,...]\n"
    "            [--drop P] [--delay T] [--jitter T] [--dup P]\n"
    "            [--after T] [--for T]\n"
    "            a rule for the node's own traffic: kinds probe, ack,\n"
    "            ping-req, broadcast, sync, nodelink, tunnel (default all);\n"
    "            P a probability 0-1, T a time: 50ms, 3s, 2m\n"
    "  fault partition ID,... [--for T]  drop everything to and from them\n"
    "  fault clear [ID]                remove one rule, or all\n"
    "  fault pause T                   stall the whole node T (<= 60s)\n"
    "  fault load FILE                 replace the rules with FILE's\n"
    "            ({\"seed\":N,\"rules\":[...]}); needs a node started with\n"
    "            --faults (docs/FAULTS.md); exit 1 when it refuses\n"
    "\n"
    "  status with --admin A:P,B:P,...  asks every node and says whether the\n"
    "  mesh has converged (same route digest and member counts everywhere)\n"
    "\n"
    "options:\n"
    "  --admin ADDR:PORT  admin API address (env WARREN_ADMIN, "
    "default " DEFAULT_ADMIN ")\n"
    "  --token T          bearer token (env WARREN_TOKEN)\n"
    "  --json             machine-readable output (watch: one object per "
    "line)\n"
    "  --name N           routes: the candidates for the name N\n"
    "  --timeout S        give up on a request after S seconds (default 5;\n"
    "                     mesh: per request; the run ends within\n"
    "                     max(4 x S, 20 s))\n"
    "  --interval S       watch: seconds between polls (default 1)\n"
    "  --count N          watch: stop after N polls (default: until Ctrl-C)\n"
    "  -h, --help         this text\n"
    "  -V, --version      print the version\n";

typedef struct opts {
  const char *admin;
  const char *token;
  const char *cmd;
  const char *name;
  int json;
  int wait; /* drain --wait */
  double timeout_s;
  double interval_s;
  long count;
  /* fault: what follows the command, options of its own included */
  char *fargv[64];
  int fargc;
} opts;

static int usage_error(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));
static int usage_error(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fputs("warrenctl: ", stderr);
  vfprintf(stderr, fmt, ap);
  fputs(" (see warrenctl --help)\n", stderr);
  va_end(ap);
  return 2;
}

static int parse_seconds(const char *s, double *out) {
  char *end;
  errno = 0;
  double v = strtod(s, &end);
  if (errno || end == s || *end || !(v >= 0.01 && v <= 86400)) return -1;
  *out = v;
  return 0;
}

/* Returns -1 to go on, or an exit status (0 for --help/--version). */
static int parse_args(int argc, char **argv, opts *o) {
  o->admin = getenv("WARREN_ADMIN");
  if (!o->admin || !*o->admin) o->admin = DEFAULT_ADMIN;
  o->token = getenv("WARREN_TOKEN");
  o->timeout_s = 5;
  o->interval_s = 1;
  o->count = 0;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    const char *val = NULL;
    char name[32];
    if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
      fputs(usage, stdout);
      return 0;
    }
    if (strcmp(a, "-V") == 0 || strcmp(a, "--version") == 0) {
      printf("warrenctl %s\n", WARREN_VERSION);
      return 0;
    }
    /* After "fault", everything but the global options is the fault
     * command's (ctl_fault.c). */
    if (o->cmd && strcmp(o->cmd, "fault") == 0 && strcmp(a, "--json") &&
        strncmp(a, "--admin", 7) && strncmp(a, "--token", 7) &&
        strncmp(a, "--timeout", 9)) {
      if (o->fargc == (int)(sizeof o->fargv / sizeof o->fargv[0]))
        return usage_error("too many arguments");
      o->fargv[o->fargc++] = argv[i];
      continue;
    }
    if (a[0] != '-' || a[1] == '\0') {
      if (o->cmd) return usage_error("unexpected argument '%s'", a);
      o->cmd = a;
      continue;
    }
    /* "--name=value" or "--name value". */
    const char *eq = strchr(a, '=');
    size_t nl = eq ? (size_t)(eq - a) : strlen(a);
    if (nl >= sizeof name) return usage_error("unknown option '%s'", a);
    memcpy(name, a, nl);
    name[nl] = '\0';
    if (strcmp(name, "--json") == 0) {
      if (eq) return usage_error("--json takes no value");
      o->json = 1;
      continue;
    }
    if (strcmp(name, "--wait") == 0) {
      if (eq) return usage_error("--wait takes no value");
      o->wait = 1;
      continue;
    }
    if (strcmp(name, "--admin") != 0 && strcmp(name, "--token") != 0 &&
        strcmp(name, "--timeout") != 0 && strcmp(name, "--interval") != 0 &&
        strcmp(name, "--count") != 0 && strcmp(name, "--name") != 0)
      return usage_error("unknown option '%s'", a);
    if (eq)
      val = eq + 1;
    else if (i + 1 < argc)
      val = argv[++i];
    else
      return usage_error("%s needs a value", name);
    if (strcmp(name, "--admin") == 0) {
      o->admin = val;
    } else if (strcmp(name, "--token") == 0) {
      o->token = val;
    } else if (strcmp(name, "--name") == 0) {
      /* Route names are DNS labels; anything else is refused here rather
       * than sent (percent-encoded) to a node that will not know it. */
      size_t l = strlen(val);
      if (l == 0 || l > 253)
        return usage_error("bad --name '%s' (1-253 characters)", val);
      for (const char *p = val; *p; p++)
        if (*p <= ' ' || *p > '~')
          return usage_error("bad --name: printable characters without "
                             "spaces only");
      o->name = val;
    } else if (strcmp(name, "--timeout") == 0) {
      if (parse_seconds(val, &o->timeout_s) != 0)
        return usage_error("bad --timeout '%s' (seconds, e.g. 5 or 0.5)", val);
    } else if (strcmp(name, "--interval") == 0) {
      if (parse_seconds(val, &o->interval_s) != 0)
        return usage_error("bad --interval '%s' (seconds, e.g. 1 or 0.2)", val);
    } else {
      char *end;
      errno = 0;
      o->count = strtol(val, &end, 10);
      if (errno || end == val || *end || o->count < 1)
        return usage_error("bad --count '%s' (a positive number)", val);
    }
  }
  if (!o->cmd)
    return usage_error("missing command (members, routes, status, "
                       "watch, mesh, drain or upgrade)");
  if (strcmp(o->cmd, "members") != 0 && strcmp(o->cmd, "routes") != 0 &&
      strcmp(o->cmd, "status") != 0 && strcmp(o->cmd, "watch") != 0 &&
      strcmp(o->cmd, "mesh") != 0 && strcmp(o->cmd, "drain") != 0 &&
      strcmp(o->cmd, "upgrade") != 0 && strcmp(o->cmd, "fault") != 0)
    return usage_error("unknown command '%s'", o->cmd);
  if (o->wait && strcmp(o->cmd, "drain") != 0 &&
      strcmp(o->cmd, "upgrade") != 0)
    return usage_error("--wait works with drain and upgrade only");
  if (o->name && strcmp(o->cmd, "routes") != 0)
    return usage_error("--name works with routes only");
  /* The token goes into a header line: printable ASCII without spaces,
   * so a stray newline cannot inject headers. */
  if (o->token)
    for (const char *p = o->token; *p; p++)
      if (*p <= ' ' || *p > '~')
        return usage_error("the token may only hold printable characters "
                           "without spaces");
  return -1;
}

/* Fetches |path| and checks it; prints the error line and returns NULL on
 * any failure.  |*fatal| is set for errors that retrying cannot fix. */
static json_t *fetch(const opts *o, const ctl_target *t, const char *path,
                     json_t *(*check)(const json_t *, char *, size_t),
                     int quiet, int *fatal) {
  ctl_response r;
  char err[256];
  *fatal = 0;
  if (ctl_http_get(t, path, o->token, (int)(o->timeout_s * 1000), &r, err,
                   sizeof err) != 0) {
    if (!quiet && !ctl_interrupted)
      fprintf(stderr, "warrenctl: cannot reach admin API at %s: %s\n",
              t->display, err);
    return NULL;
  }
  json_t *j = NULL;
  if (r.status == 401 || r.status == 403) {
    fprintf(stderr, "warrenctl: the admin API rejected the token "
                    "(use --token or WARREN_TOKEN)\n");
    *fatal = 1;
  } else if (r.status != 200) {
    /* Use the server's {"error": ...} line when it sent one. */
    json_t *e = json_loadb(r.body, r.len, 0, NULL);
    const char *msg = json_string_value(json_object_get(e, "error"));
    fprintf(stderr, "warrenctl: admin API at %s answered %d for %s%s%.200s\n",
            t->display, r.status, path, msg ? ": " : "", msg ? msg : "");
    json_decref(e);
    *fatal = r.status == 404;
  } else if (!(j = ctl_parse_checked(r.body, r.len, check, err, sizeof err))) {
    fprintf(stderr,
            "warrenctl: unexpected answer from admin API at %s for "
            "%s: %s\n",
            t->display, path, err);
    *fatal = 1;
  }
  free(r.body);
  return j;
}

static volatile sig_atomic_t stop;
static void on_signal(int sig) {
  (void)sig;
  stop = 1;
  ctl_interrupted = 1;
}

static void sleep_s(double s) {
  struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
  /* An interrupting Ctrl-C ends the sleep early; stop is then set. */
  nanosleep(&ts, NULL);
}

static int watch(const opts *o, const ctl_target *t) {
  json_t *os = NULL, *om = NULL;
  int down = 0, rc = 0;
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  /* Restart interrupted writes of the output; poll() and nanosleep() are
   * never restarted, so the loop still sees the flag promptly. */
  sa.sa_flags = SA_RESTART;
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);
  setvbuf(stdout, NULL, _IOLBF, 0);
  for (long polls = 0; !stop && (o->count == 0 || polls < o->count); polls++) {
    if (polls > 0) sleep_s(o->interval_s);
    if (stop) break;
    int fatal;
    /* Report an outage once, not once per poll. */
    json_t *ns = fetch(o, t, "/status", ctl_check_status, down, &fatal);
    if (stop) {
      json_decref(ns);
      break; /* Ctrl-C during a request: not an outage */
    }
    json_t *nm =
        ns ? fetch(o, t, "/members", ctl_check_members, down, &fatal) : NULL;
    if (stop) {
      json_decref(ns);
      json_decref(nm);
      break;
    }
    if (fatal) {
      json_decref(ns);
      rc = 1;
      break;
    }
    char prefix[32];
    time_t now = time(NULL);
    struct tm tm;
    localtime_r(&now, &tm);
    strftime(prefix, sizeof prefix, "%H:%M:%S ", &tm);
    if (!ns || !nm) {
      /* fetch() printed why; later failures stay quiet until it is back. */
      json_decref(ns);
      down = 1;
      continue;
    }
    if (down && os) fprintf(stderr, "%sadmin API reachable again\n", prefix);
    down = 0;
    ctl_watch_diff(stdout, prefix, o->json, os, om, ns, nm);
    json_decref(os);
    json_decref(om);
    os = ns;
    om = nm;
  }
  if (!os && !rc) rc = 1; /* never got an answer */
  json_decref(os);
  json_decref(om);
  return rc;
}

/* status against several nodes: the convergence view. */
#define MAX_ADMINS 64
static int mesh_status(const opts *o, ctl_target *ts, size_t n) {
  json_t *st[MAX_ADMINS];
  const char *names[MAX_ADMINS];
  int rc = 0, fatal;
  for (size_t i = 0; i < n; i++) {
    names[i] = ts[i].display;
    st[i] = fetch(o, &ts[i], "/status", ctl_check_status, 0, &fatal);
    if (!st[i]) rc = 1;
  }
  if (o->json) {
    json_t *j = ctl_mesh_json(names, st, n);
    if (j) ctl_print_json(stdout, j);
    json_decref(j);
  } else {
    ctl_print_mesh(stdout, names, st, n);
  }
  for (size_t i = 0; i < n; i++) json_decref(st[i]);
  return rc;
}

/* ---- mesh -------------------------------------------------------------- */

/*
 * 32 requests in flight: enough that a 500-member fleet on a LAN (about
 * 1000 GETs of a few ms each) takes well under a second, few enough that
 * warrenctl never needs more than a handful of descriptors and never
 * looks like a flood to the nodes' connection caps (64 each).
 */
#define MESH_PARALLEL 32
/* Up to this many live members, every node gets a line; above, only the
 * summary (--json always has every node). */
#define MESH_TABLE_MAX 32

/* What one ctl_get brought back, checked; NULL with |err| set otherwise.
 * Frees the body either way. */
static json_t *take_answer(ctl_get *g,
                           json_t *(*check)(const json_t *, char *, size_t),
                           char *err, size_t cap) {
  json_t *j = NULL;
  char why[200];
  if (g->rv != 0) {
    snprintf(err, cap, "%s", g->err);
    return NULL;
  }
  if (g->resp.status == 401 || g->resp.status == 403)
    snprintf(err, cap, "the admin API rejected the token");
  else if (g->resp.status != 200)
    snprintf(err, cap, "answered %d for %s", g->resp.status, g->path);
  else if (!(j = ctl_parse_checked(g->resp.body, g->resp.len, check, why,
                                   sizeof why)))
    snprintf(err, cap, "unexpected answer for %s: %.150s", g->path, why);
  free(g->resp.body);
  g->resp.body = NULL;
  return j;
}

static long long mono_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Asks |path| of every node in |idx| (n of them) in parallel; |slot(i)|
 * says where the answer goes. */
static void mesh_ask(const opts *o, ctl_mesh_node *nodes, const size_t *idx,
                     size_t n, const char *path,
                     json_t *(*check)(const json_t *, char *, size_t),
                     int members, long long end) {
  if (n == 0) return;
  ctl_get *gets = calloc(n, sizeof *gets);
  if (!gets) {
    for (size_t k = 0; k < n; k++)
      snprintf(nodes[idx[k]].error, sizeof nodes[idx[k]].error,
               "out of memory");
    return;
  }
  for (size_t k = 0; k < n; k++) {
    ctl_mesh_node *nd = &nodes[idx[k]];
    /* Parsed before: a bad address never reaches this list. */
    ctl_parse_target(nd->admin, &gets[k].target);
    gets[k].path = path;
  }
  long long left = end - mono_ms();
  ctl_http_get_many(gets, n, o->token, (int)(o->timeout_s * 1000),
                    (int)(left > 0 ? left : 0), MESH_PARALLEL);
  for (size_t k = 0; k < n; k++) {
    ctl_mesh_node *nd = &nodes[idx[k]];
    char err[200];
    json_t *j = take_answer(&gets[k], check, err, sizeof err);
    if (!j) {
      /* A failed /members keeps the status: the caller decides. */
      snprintf(nd->error, sizeof nd->error, "%s%.185s",
               members ? "/members: " : "", err);
      continue;
    }
    if (members) {
      nd->members = j;
      continue;
    }
    /* An advertised address that answers as another node would count
     * that node twice and this one never: not this member's API. */
    const char *id = json_string_value(json_object_get(j, "id"));
    if (strcmp(id, nd->id) != 0) {
      snprintf(nd->error, sizeof nd->error,
               "its admin address answers as node \"%.60s\"", id);
      for (char *p = nd->error; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f) *p = '?';
      json_decref(j);
      continue;
    }
    nd->status = j;
  }
  free(gets);
}

static int mesh(const opts *o, const ctl_target *t) {
  int fatal, rc = 1;
  /* The whole run ends within max(4 x --timeout, 20 s): 20 s because a
   * 500-member fleet answering normally takes a few seconds even on a
   * loaded machine, 4 x --timeout so a long --timeout is honoured for
   * every phase.  What is not asked by then is reported, not waited for. */
  long long limit = (long long)(o->timeout_s * 4000);
  long long end = mono_ms() + WR_MAX(limit, 20000);
  json_t *st = fetch(o, t, "/status", ctl_check_status_mesh, 0, &fatal);
  json_t *mem =
      st ? fetch(o, t, "/members", ctl_check_members_mesh, 0, &fatal) : NULL;
  json_t *report = NULL;
  ctl_mesh_node *nodes = NULL;
  size_t *idx = NULL, n = 0, nm = json_array_size(mem);
  if (!st || !mem) goto out;
  const char *self = json_string_value(json_object_get(st, "id"));
  nodes = calloc(nm + 1, sizeof *nodes);
  idx = calloc(nm + 1, sizeof *idx);
  if (!nodes || !idx) {
    fprintf(stderr, "warrenctl: out of memory\n");
    goto out;
  }
  int self_seen = 0;
  size_t i;
  json_t *m;
  json_array_foreach(mem, i, m) {
    const char *id = json_string_value(json_object_get(m, "id"));
    const char *state = json_string_value(json_object_get(m, "state"));
    int is_self = strcmp(id, self) == 0;
    if (!is_self && strcmp(state, "alive") != 0 && strcmp(state, "suspect") != 0)
      continue;
    ctl_mesh_node *nd = &nodes[n++];
    snprintf(nd->id, sizeof nd->id, "%s", id);
    snprintf(nd->state, sizeof nd->state, "%s", state);
    if (is_self && !self_seen) {
      /* The node asked first: reuse its answers, and its address as the
       * operator typed it (the advertised one may be a bind address). */
      self_seen = 1;
      snprintf(nd->admin, sizeof nd->admin, "%s", t->display);
      nd->status = json_incref(st);
      nd->members = json_incref(mem);
      continue;
    }
    const char *adm = json_string_value(json_object_get(m, "admin"));
    ctl_target tmp;
    if (!adm || !*adm)
      snprintf(nd->error, sizeof nd->error, "no admin address");
    else if (strlen(adm) >= sizeof nd->admin || ctl_parse_target(adm, &tmp))
      snprintf(nd->error, sizeof nd->error, "bad admin address \"%.60s\"",
               adm);
    else
      snprintf(nd->admin, sizeof nd->admin, "%s", adm);
    for (char *p = nd->error; *p; p++)
      if ((unsigned char)*p < 0x20 || *p == 0x7f) *p = '?';
  }
  if (!self_seen) {
    /* A node that does not list itself is still a node of the fleet. */
    ctl_mesh_node *nd = &nodes[n++];
    snprintf(nd->id, sizeof nd->id, "%s", self);
    snprintf(nd->state, sizeof nd->state, "alive");
    snprintf(nd->admin, sizeof nd->admin, "%s", t->display);
    nd->status = json_incref(st);
    nd->members = json_incref(mem);
  }

  /* Phase 1: /status of everyone.  Phase 2: /members from one node per
   * members-digest group (equal digests, equal lists), or from every node
   * when some node sends no members_digest (then warrenctl fingerprints
   * the lists itself).  Phases 1 and 2 leave one --timeout of the overall
   * limit for phase 3. */
  long long ask_end = end - (long long)(o->timeout_s * 1000);
  size_t k = 0;
  for (i = 0; i < n; i++)
    if (nodes[i].admin[0] && !nodes[i].status) idx[k++] = i;
  mesh_ask(o, nodes, idx, k, "/status", ctl_check_status_mesh, 0, ask_end);
  int all_md = 1;
  for (i = 0; i < n; i++)
    if (nodes[i].status &&
        !json_is_string(json_object_get(nodes[i].status, "members_digest")))
      all_md = 0;
  k = 0;
  for (i = 0; i < n; i++) {
    if (!nodes[i].status || nodes[i].members) continue;
    /* Covered: a node with the same digest already has its list, or is
     * already in this phase's list (idx[0..k)).  O(n x groups). */
    int covered = 0;
    const json_t *dg = json_object_get(nodes[i].status, "members_digest");
    for (size_t j = 0; all_md && j < n && !covered; j++)
      covered = nodes[j].members &&
                json_equal(dg, json_object_get(nodes[j].status,
                                               "members_digest"));
    for (size_t q = 0; all_md && q < k && !covered; q++)
      covered = json_equal(dg, json_object_get(nodes[idx[q]].status,
                                               "members_digest"));
    if (!covered) idx[k++] = i;
  }
  mesh_ask(o, nodes, idx, k, "/members", ctl_check_members, 1, ask_end);
  for (i = 0; i < n; i++) {
    if (!all_md && nodes[i].status && !nodes[i].members) {
      /* No fingerprint without the list: this node cannot be placed. */
      json_decref(nodes[i].status);
      nodes[i].status = NULL;
    }
  }

  report = ctl_mesh_analyse(t->display, self, nm, nodes, n);
  if (!report) {
    fprintf(stderr, "warrenctl: out of memory\n");
    goto out;
  }
  /* Phase 3: with more than one routes digest, one /routes per group
   * (not per node) tells which names differ. */
  size_t ng = json_array_size(
      json_object_get(json_object_get(report, "routes"), "groups"));
  if (ng > 1) {
    ctl_get *gets = calloc(ng, sizeof *gets);
    json_t **tables = calloc(ng, sizeof *tables);
    char(*errs)[200] = calloc(ng, sizeof *errs);
    const char **errp = calloc(ng, sizeof *errp);
    if (gets && tables && errs && errp) {
      for (size_t g = 0; g < ng; g++) {
        /* Every group is made of reachable nodes (fuzz_admin_mesh checks
         * this invariant). */
        long r = ctl_mesh_group_rep(report, nodes, n, g);
        assert(r >= 0);
        ctl_parse_target(nodes[r].admin, &gets[g].target);
        gets[g].path = "/routes";
      }
      long long left = end - mono_ms();
      ctl_http_get_many(gets, ng, o->token, (int)(o->timeout_s * 1000),
                        (int)(left > 0 ? left : 0), MESH_PARALLEL);
      for (size_t g = 0; g < ng; g++) {
        tables[g] = take_answer(&gets[g], ctl_check_routes, errs[g],
                                sizeof errs[g]);
        errp[g] = errs[g];
      }
      ctl_mesh_add_route_diffs(report, tables, errp);
      for (size_t g = 0; g < ng; g++) json_decref(tables[g]);
    }
    free(gets);
    free(tables);
    free(errs);
    free(errp);
  }
  if (o->json)
    ctl_print_json(stdout, report);
  else
    ctl_print_mesh_report(stdout, report, MESH_TABLE_MAX);
  rc = ctl_mesh_exit(report);
out:
  for (i = 0; nodes && i < n; i++) {
    json_decref(nodes[i].status);
    json_decref(nodes[i].members);
  }
  free(nodes);
  free(idx);
  json_decref(report);
  json_decref(st);
  json_decref(mem);
  return rc;
}

/* "/routes?name=" and |name| percent-encoded (RFC 3986 unreserved kept). */
static int name_path(const char *name, char *dst, size_t cap) {
  static const char hex[] = "0123456789ABCDEF";
  size_t n = (size_t)snprintf(dst, cap, "/routes?name=");
  for (const unsigned char *p = (const unsigned char *)name; *p; p++) {
    if (n + 4 > cap) return -1;
    if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
        (*p >= '0' && *p <= '9') || *p == '-' || *p == '.' || *p == '_' ||
        *p == '~') {
      dst[n++] = (char)*p;
    } else {
      dst[n++] = '%';
      dst[n++] = hex[*p >> 4];
      dst[n++] = hex[*p & 15];
    }
  }
  dst[n] = '\0';
  return 0;
}

int main(int argc, char **argv) {
  opts o;
  memset(&o, 0, sizeof o);
  int rc = parse_args(argc, argv, &o);
  if (rc >= 0) return rc;

  /* --admin takes one address, or for status a comma-separated list. */
  static ctl_target ts[MAX_ADMINS];
  size_t n = 0;
  for (const char *p = o.admin;; n++) {
    const char *comma = strchr(p, ',');
    size_t len = comma ? (size_t)(comma - p) : strlen(p);
    char one[sizeof ts[0].display];
    if (n == MAX_ADMINS || len >= sizeof one)
      return usage_error("bad admin address list '%s'", o.admin);
    memcpy(one, p, len);
    one[len] = '\0';
    if (ctl_parse_target(one, &ts[n]) != 0)
      return usage_error("bad admin address '%s' (want HOST:PORT)", one);
    if (!comma) {
      n++;
      break;
    }
    p = comma + 1;
  }
  if (n > 1 && strcmp(o.cmd, "status") != 0)
    return usage_error("several admin addresses work with status only");
  const ctl_target *t = &ts[0];

  if (strcmp(o.cmd, "watch") == 0) return watch(&o, t);
  if (strcmp(o.cmd, "drain") == 0) {
    rc = ctl_drain_run(t, o.token, (int)(o.timeout_s * 1000), o.json,
                       o.wait);
    return fflush(stdout) != 0 ? 1 : rc;
  }
  if (strcmp(o.cmd, "upgrade") == 0) {
    rc = ctl_upgrade_run(t, o.token, (int)(o.timeout_s * 1000), o.json,
                         o.wait);
    return fflush(stdout) != 0 ? 1 : rc;
  }
  if (strcmp(o.cmd, "fault") == 0) {
    rc = ctl_fault_run(t, o.token, (int)(o.timeout_s * 1000), o.json,
                       o.fargc, o.fargv);
    return fflush(stdout) != 0 ? 1 : rc;
  }
  if (strcmp(o.cmd, "mesh") == 0) {
    rc = mesh(&o, t);
    return fflush(stdout) != 0 ? 1 : rc;
  }
  if (n > 1) {
    rc = mesh_status(&o, ts, n);
    return fflush(stdout) != 0 ? 1 : rc;
  }

  int fatal;
  json_t *j;
  if (strcmp(o.cmd, "members") == 0) {
    if (!(j = fetch(&o, t, "/members", ctl_check_members, 0, &fatal))) return 1;
    if (o.json)
      ctl_print_json(stdout, j);
    else
      ctl_print_members(stdout, j);
  } else if (strcmp(o.cmd, "routes") == 0 && o.name) {
    char path[1024];
    if (name_path(o.name, path, sizeof path) != 0)
      return usage_error("--name too long");
    if (!(j = fetch(&o, t, path, ctl_check_candidates, 0, &fatal))) return 1;
    if (o.json)
      ctl_print_json(stdout, j);
    else
      ctl_print_candidates(stdout, j);
  } else if (strcmp(o.cmd, "routes") == 0) {
    if (!(j = fetch(&o, t, "/routes", ctl_check_routes, 0, &fatal))) return 1;
    if (o.json)
      ctl_print_json(stdout, j);
    else
      ctl_print_routes(stdout, j);
  } else {
    if (!(j = fetch(&o, t, "/status", ctl_check_status, 0, &fatal))) return 1;
    if (o.json)
      ctl_print_json(stdout, j);
    else
      ctl_print_status(stdout, j);
  }
  json_decref(j);
  if (fflush(stdout) != 0) return 1;
  return 0;
}
