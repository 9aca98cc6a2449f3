/*
 * warrenctl: the mesh-status inspector (DESIGN.md "Command-line
 * contract").  It asks one node's admin API and prints what that node
 * sees:
 *
 *   warrenctl [--admin ADDR:PORT] [--token T] members|routes|status [--json]
 *   warrenctl --admin A:P,B:P,... status [--json]   (convergence view)
 *   warrenctl [--admin ADDR:PORT] [--token T] watch [--interval S]
 *             [--count N] [--json]
 *
 * Exit status: 0 success, 1 the request failed (unreachable, rejected
 * token, garbage answer), 2 usage error.  Errors are one line on stderr
 * starting with "warrenctl: ".
 */
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ctl.h"

#ifndef WARREN_VERSION
#define WARREN_VERSION "0.0.0"
#endif

#define DEFAULT_ADMIN "127.0.0.1:9081"

static const char usage[] =
    "usage: warrenctl [--admin ADDR:PORT] [--token T] COMMAND [--json]\n"
    "\n"
    "Inspect a warren mesh through one node's admin API.\n"
    "\n"
    "commands:\n"
    "  members   the members this node knows: ID ADDR STATE INCARNATION\n"
    "  routes    the ownership table: NAME OWNER VERSION STATE\n"
    "  status    node id, member counts per state, route count and digest\n"
    "            (equal digests on every node = the tables have converged)\n"
    "  watch     poll status and members, print one line per change\n"
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
    "  --timeout S        give up on a request after S seconds (default 5)\n"
    "  --interval S       watch: seconds between polls (default 1)\n"
    "  --count N          watch: stop after N polls (default: until Ctrl-C)\n"
    "  -h, --help         this text\n"
    "  -V, --version      print the version\n";

typedef struct opts {
  const char *admin;
  const char *token;
  const char *cmd;
  int json;
  double timeout_s;
  double interval_s;
  long count;
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
    if (strcmp(name, "--admin") != 0 && strcmp(name, "--token") != 0 &&
        strcmp(name, "--timeout") != 0 && strcmp(name, "--interval") != 0 &&
        strcmp(name, "--count") != 0)
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
    return usage_error("missing command (members, routes, status "
                       "or watch)");
  if (strcmp(o->cmd, "members") != 0 && strcmp(o->cmd, "routes") != 0 &&
      strcmp(o->cmd, "status") != 0 && strcmp(o->cmd, "watch") != 0)
    return usage_error("unknown command '%s'", o->cmd);
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
