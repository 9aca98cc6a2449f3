/*
 * admin_demo: the real admin server (wr_admin over libuv) with canned
 * handlers, for warrenctl's integration test.  Listens on 127.0.0.1 with
 * an ephemeral port, prints "PORT\n" on stdout once listening, and runs
 * until SIGTERM/SIGINT or 60 s (so a crashed test never leaves it behind).
 *
 *   admin_demo [--token T] [--mode normal|evolve|garbage|shape|empty]
 *              [--max-conns N] [--idle-ms MS]
 *   admin_demo --fleet N [--mode converged|diverged] [--token T]
 *
 * GET /routes?name=NAME answers the candidates object (issue 10): for
 * "app", node-a serves (balance) and node-b's released entry lost; any
 * other name has no candidates.  In shape mode the query is ignored and
 * the whole table comes back, as from a node older than issue 10.
 *
 * normal   three members (alive, suspect, dead), two routes, a status.
 * evolve   like normal, but each GET /members moves node-c one step
 *          alive -> suspect -> dead and adds node-d on the third call, and
 *          each GET /status reports one more route: what `watch` sees.
 * garbage  /members and /status answer text that is not JSON.
 * shape    valid JSON with the wrong shape (state "zombie", no routes).
 * empty    no members, no routes.
 *
 * --fleet N plays a whole fleet for `warrenctl mesh` (fleet.c-style, in
 * this one process): N nodes n1..nN, each its own admin server on an
 * ephemeral port with its own /members, /status and /routes; every
 * /members row carries "admin" pointing at that member's server.  The
 * port of n1 is printed.  Besides n1..nN every view lists "retired"
 * (dead: must not be asked).  converged: every node agrees.  diverged
 * adds four live members that cannot be asked -- "gone" (admin port
 * closed: refused), "mute" (accepts, never answers: timeout), "garbled"
 * (answers /status with non-JSON), "noadmin" (no admin address) -- and,
 * with N >= 5, n4 disagrees on a route (app: owner n2 v6 instead of n1
 * v7) and n5 on a member (sees n3 dead).  With N >= 100, n4 also lacks
 * the 20 routes r00..r19 and n5 sees n10..n29 suspect, so the report
 * has more differences than it prints.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <uv.h>

#include "warren/admin.h"
#include "warren/err.h"

typedef struct demo {
  const char *mode;
  int members_calls;
  int status_calls;
  uint64_t *http_requests;
  int64_t *alive, *suspect;
} demo;

static const char *step_state(int k) {
  return k <= 1 ? "alive" : k == 2 ? "suspect" : "dead";
}

static int h_members(const wr_admin_req *req, wr_admin_resp *resp, void *ud) {
  demo *d = ud;
  d->members_calls++;
  if (strcmp(d->mode, "garbage") == 0)
    return wr_admin_resp_printf(resp, "<html>definitely not json</html>\n");
  if (strcmp(d->mode, "empty") == 0)
    return wr_admin_resp_json(resp, json_array());
  if (strcmp(d->mode, "shape") == 0)
    return wr_admin_resp_json(
        resp, json_pack("[{s:s,s:s,s:s,s:i}]", "id", "node-a", "addr",
                        "127.0.0.1:7946", "state", "zombie", "incarnation", 1));
  const char *c_state = "dead";
  if (strcmp(d->mode, "evolve") == 0) c_state = step_state(d->members_calls);
  json_t *a = json_pack(
      "[{s:s,s:s,s:s,s:i,s:s},{s:s,s:s,s:s,s:i},{s:s,s:s,s:s,s:i}]", "id",
      "node-a", "addr", "127.0.0.1:7946", "state", "alive", "incarnation", 0,
      "region", "local", /* extra field: dropped */
      "id", "node-b", "addr", "127.0.0.1:7947", "state", "suspect",
      "incarnation", 3, "id", "node-c", "addr", "127.0.0.1:17948", "state",
      strcmp(d->mode, "evolve") == 0 ? c_state : "dead", "incarnation", 12);
  if (strcmp(d->mode, "evolve") == 0 && d->members_calls >= 3)
    json_array_append_new(a, json_pack("{s:s,s:s,s:s,s:i}", "id", "node-d",
                                       "addr", "127.0.0.1:7949", "state",
                                       "alive", "incarnation", 0));
  return wr_admin_resp_json(resp, a);
}

/* GET /routes?name=NAME: every candidate entry and its verdict. */
static json_t *candidates(const char *name) {
  json_t *c = json_array();
  if (strcmp(name, "app") == 0) {
    json_array_append_new(
        c, json_pack("{s:s,s:s,s:s,s:I,s:I,s:I,s:I,s:s,s:[s],s:s,s:s}",
                     "owner", "node-a", "account", "acme", "session",
                     "0123456789abcdef0123456789abcdef", "epoch",
                     (json_int_t)3, "seq", (json_int_t)2, "version",
                     (json_int_t)7, "claimed_at", (json_int_t)3,
                     "state", "active", "options", "balance", "verdict",
                     "serves", "why",
                     "highest version among live claims of account acme"));
    json_array_append_new(
        c, json_pack("{s:s,s:s,s:s,s:I,s:I,s:I,s:I,s:s,s:[],s:s,s:s}",
                     "owner", "node-b", "account", "acme", "session",
                     "fedcba9876543210fedcba9876543210", "epoch",
                     (json_int_t)2, "seq", (json_int_t)9, "version",
                     (json_int_t)5, "claimed_at", (json_int_t)2,
                     "state", "released", "options", "verdict", "released",
                     "why", "released by its owner at version 5"));
  }
  return json_pack("{s:s,s:o}", "name", name, "candidates", c);
}

static int h_routes(const wr_admin_req *req, wr_admin_resp *resp, void *ud) {
  demo *d = ud;
  char name[256];
  if (strcmp(d->mode, "shape") != 0 &&
      wr_admin_req_param(req, "name", name, sizeof name) >= 0)
    return wr_admin_resp_json(resp, candidates(name));
  if (strcmp(d->mode, "empty") == 0)
    return wr_admin_resp_json(resp, json_array());
  return wr_admin_resp_json(
      resp, json_pack("[{s:s,s:s,s:s,s:I,s:s,s:i},{s:s,s:s,s:I,s:s}]", "name",
                      "app", "owner", "node-a", "account", "acme", "version",
                      (json_int_t)7, "state", "active", "serving", 2, "name",
                      "my-long-service-name", "owner", "node-b", "version",
                      (json_int_t)1234567890123, "state", "released"));
}

static int h_status(const wr_admin_req *req, wr_admin_resp *resp, void *ud) {
  demo *d = ud;
  d->status_calls++;
  if (strcmp(d->mode, "garbage") == 0)
    return wr_admin_resp_printf(resp, "{\"id\": \n");
  if (strcmp(d->mode, "shape") == 0)
    return wr_admin_resp_json(resp, json_pack("{s:s}", "id", "node-a"));
  int routes = strcmp(d->mode, "evolve") == 0 ? d->status_calls : 2;
  char digest[32];
  snprintf(digest, sizeof digest, "d1g35t%04d", routes);
  return wr_admin_resp_json(
      resp, json_pack("{s:s,s:{s:i,s:i,s:i,s:i},s:i,s:s}", "id", "node-a",
                      "members", "alive", 1, "suspect", 1, "dead", 1, "left", 0,
                      "routes", routes, "routes_digest", digest));
}

/* A POST route with a body, as fault injection will use. */
static int h_echo(const wr_admin_req *req, wr_admin_resp *resp, void *ud) {
  char v[64];
  int n = wr_admin_req_param(req, "drop", v, sizeof v);
  json_t *j =
      json_pack("{s:s,s:s#}", "drop", n >= 0 ? v : "", "body",
                req->body ? (const char *)req->body : "", (int)req->body_len);
  return wr_admin_resp_json(resp, j);
}

static void collect(void *ud) {
  demo *d = ud;
  *d->alive = 1;
  *d->suspect = 1;
  (*d->http_requests) += 5;
}

static wr_admin *admin;
static uv_signal_t sigterm, sigint;
static uv_timer_t lifetime;

/* ---- --fleet ----------------------------------------------------------- */

typedef struct fnode {
  char id[24];
  int index; /* 0-based: n1 is 0 */
  wr_admin *admin;
  int port;
} fnode;

typedef struct fleet {
  size_t n;
  int diverged;
  fnode *nodes;
  wr_admin *garbled;
  int garbled_port, gone_port, mute_port, retired_port;
  int mute_fd;
  /* /members and /routes are the same text on most nodes: built once. */
  char *members_common, *members_n5;
  char *routes_common, *routes_n4;
} fleet;

static fleet fl = {.mute_fd = -1};

static int is_route_dissenter(const fnode *f) {
  return fl.diverged && fl.n >= 5 && f->index == 3; /* n4 */
}
static int is_member_dissenter(const fnode *f) {
  return fl.diverged && fl.n >= 5 && f->index == 4; /* n5 */
}

static json_t *fleet_member(const char *id, const char *state, int port) {
  char adm[32];
  snprintf(adm, sizeof adm, "127.0.0.1:%d", port);
  json_t *m = json_pack("{s:s,s:s,s:s,s:i}", "id", id, "addr",
                        "127.0.0.1:7946", "state", state, "incarnation", 1);
  if (port > 0) json_object_set_new(m, "admin", json_string(adm));
  return m;
}

/* The member list as node n5 (|n5| set) or anyone else sees it. */
static char *fleet_members_text(int n5) {
  json_t *a = json_array();
  for (size_t i = 0; i < fl.n; i++) {
    const char *state = "alive";
    if (n5 && i == 2) state = "dead";                              /* n3 */
    if (n5 && fl.n >= 100 && i >= 9 && i <= 28) state = "suspect"; /* n10.. */
    json_array_append_new(a, fleet_member(fl.nodes[i].id, state,
                                          fl.nodes[i].port));
  }
  json_array_append_new(a, fleet_member("retired", "dead", fl.retired_port));
  if (fl.diverged) {
    json_array_append_new(a, fleet_member("gone", "alive", fl.gone_port));
    json_array_append_new(a, fleet_member("mute", "suspect", fl.mute_port));
    json_array_append_new(a, fleet_member("garbled", "alive", fl.garbled_port));
    json_array_append_new(a, fleet_member("noadmin", "alive", 0));
  }
  char *s = json_dumps(a, JSON_COMPACT);
  json_decref(a);
  return s;
}

static char *fleet_routes_text(int n4) {
  json_t *a = json_array();
  json_array_append_new(
      a, json_pack("{s:s,s:s,s:s,s:i,s:s}", "name", "app", "owner",
                   n4 ? "n2" : "n1", "account", "acme", "version", n4 ? 6 : 7,
                   "state", "active"));
  json_array_append_new(a, json_pack("{s:s,s:s,s:s,s:i,s:s}", "name", "api",
                                     "owner", "n2", "account", "acme",
                                     "version", 3, "state", "active"));
  if (fl.n >= 100 && !n4)
    for (int r = 0; r < 20; r++) {
      char name[8];
      snprintf(name, sizeof name, "r%02d", r);
      json_array_append_new(a, json_pack("{s:s,s:s,s:s,s:i,s:s}", "name", name,
                                         "owner", "n1", "account", "acme",
                                         "version", 1, "state", "active"));
    }
  char *s = json_dumps(a, JSON_COMPACT);
  json_decref(a);
  return s;
}

static int fleet_text(wr_admin_resp *resp, const char *s) {
  return wr_admin_resp_write(resp, s, strlen(s));
}

static int fh_members(const wr_admin_req *req, wr_admin_resp *resp,
                      void *ud) {
  return fleet_text(resp, is_member_dissenter(ud) ? fl.members_n5
                                                  : fl.members_common);
}

static int fh_routes(const wr_admin_req *req, wr_admin_resp *resp, void *ud) {
  return fleet_text(resp, is_route_dissenter(ud) ? fl.routes_n4
                                                 : fl.routes_common);
}

/* Ages: the common digests have held for a minute (plus 100 ms per node,
 * so the minimum is n1's 60 s); the dissenters changed 5 s (routes, n4)
 * and 7 s (members, n5) ago. */
static int fh_status(const wr_admin_req *req, wr_admin_resp *resp, void *ud) {
  const fnode *f = ud;
  int rd = is_route_dissenter(f), md = is_member_dissenter(f);
  size_t live = fl.n + (fl.diverged ? 4 : 0);
  size_t routes = rd ? 2 : fl.n >= 100 ? 22 : 2;
  json_int_t base = 60000 + 100 * (json_int_t)f->index;
  json_t *o = json_pack(
      "{s:s,s:{s:I,s:i,s:I,s:i},s:I,s:s,s:I,s:s,s:I}", "id", f->id, "members",
      "alive", (json_int_t)(md ? live - 1 : live), "suspect", 0, "dead",
      (json_int_t)(md ? 2 : 1), "left", 0, "routes", (json_int_t)routes,
      "routes_digest",
      rd ? "5e1f00d4b2a7c9e3" : "c0ffee00d1e57a11", "routes_digest_age_ms",
      rd ? (json_int_t)5000 : base, "members_digest",
      md ? "77aa0e21d00d5eed" : "4f0c2e11aa03b6c8", "members_digest_age_ms",
      md ? (json_int_t)7000 : base);
  return wr_admin_resp_json(resp, o);
}

static int fh_garbled(const wr_admin_req *req, wr_admin_resp *resp,
                      void *ud) {
  return wr_admin_resp_printf(resp, "{\"id\": \"garbled\", oops\n");
}

/* A port nothing listens on: bind, read the port, close. */
static int closed_port(void) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET,
                          .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t l = sizeof a;
  if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) != 0 ||
      getsockname(fd, (struct sockaddr *)&a, &l) != 0) {
    if (fd >= 0) close(fd);
    return -1;
  }
  close(fd);
  return ntohs(a.sin_port);
}

/* A port that accepts connections (the kernel completes the handshake
 * into the backlog) but never reads or answers: a hung node. */
static int mute_port(int *pfd) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET,
                          .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t l = sizeof a;
  if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) != 0 ||
      listen(fd, 64) != 0 ||
      getsockname(fd, (struct sockaddr *)&a, &l) != 0) {
    if (fd >= 0) close(fd);
    return -1;
  }
  *pfd = fd;
  return ntohs(a.sin_port);
}

static int fleet_start(uv_loop_t *loop, size_t n, const char *mode,
                       const char *token) {
  fl.n = n;
  fl.diverged = strcmp(mode, "diverged") == 0;
  if (!(fl.nodes = calloc(n, sizeof *fl.nodes))) return -1;
  for (size_t i = 0; i < n; i++) {
    fnode *f = &fl.nodes[i];
    f->index = (int)i;
    snprintf(f->id, sizeof f->id, "n%zu", i + 1);
    int rv = wr_admin_new(&f->admin, loop, "127.0.0.1:0", token, NULL);
    if (rv != 0) {
      fprintf(stderr, "admin_demo: node %s: %s\n", f->id, wr_strerror(rv));
      return -1;
    }
    f->port = wr_admin_port(f->admin);
    if (wr_admin_route(f->admin, "GET", "/members", fh_members, f) != 0 ||
        wr_admin_route(f->admin, "GET", "/routes", fh_routes, f) != 0 ||
        wr_admin_route(f->admin, "GET", "/status", fh_status, f) != 0)
      return -1;
  }
  fl.retired_port = closed_port();
  if (fl.diverged) {
    fl.gone_port = closed_port();
    fl.mute_port = mute_port(&fl.mute_fd);
    if (wr_admin_new(&fl.garbled, loop, "127.0.0.1:0", token, NULL) != 0 ||
        wr_admin_route(fl.garbled, "GET", "/status", fh_garbled, NULL) != 0)
      return -1;
    fl.garbled_port = wr_admin_port(fl.garbled);
  }
  fl.members_common = fleet_members_text(0);
  fl.members_n5 = fleet_members_text(1);
  fl.routes_common = fleet_routes_text(0);
  fl.routes_n4 = fleet_routes_text(1);
  if (!fl.members_common || !fl.members_n5 || !fl.routes_common ||
      !fl.routes_n4 || fl.retired_port < 0 ||
      (fl.diverged && (fl.gone_port < 0 || fl.mute_port < 0)))
    return -1;
  return 0;
}

static void fleet_stop(void) {
  for (size_t i = 0; i < fl.n; i++)
    if (fl.nodes[i].admin) wr_admin_close(fl.nodes[i].admin, NULL, NULL);
  if (fl.garbled) wr_admin_close(fl.garbled, NULL, NULL);
  if (fl.mute_fd >= 0) close(fl.mute_fd);
  fl.n = 0;
  fl.garbled = NULL;
  fl.mute_fd = -1;
}

static void fleet_free(void) {
  free(fl.nodes);
  free(fl.members_common);
  free(fl.members_n5);
  free(fl.routes_common);
  free(fl.routes_n4);
}

static int stopped;
static void stop_all(void) {
  if (stopped) return;
  stopped = 1;
  if (admin) wr_admin_close(admin, NULL, NULL);
  admin = NULL;
  fleet_stop();
  uv_close((uv_handle_t *)&sigterm, NULL);
  uv_close((uv_handle_t *)&sigint, NULL);
  uv_close((uv_handle_t *)&lifetime, NULL);
}
static void on_signal(uv_signal_t *s, int sig) { stop_all(); }
static void on_lifetime(uv_timer_t *t) { stop_all(); }

int main(int argc, char **argv) {
  demo d = {.mode = "normal"};
  const char *token = NULL;
  unsigned max_conns = 0;
  uint64_t idle_ms = 0;
  size_t fleet_n = 0;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (strcmp(argv[i], "--token") == 0)
      token = argv[i + 1];
    else if (strcmp(argv[i], "--mode") == 0)
      d.mode = argv[i + 1];
    else if (strcmp(argv[i], "--max-conns") == 0)
      max_conns = (unsigned)atoi(argv[i + 1]);
    else if (strcmp(argv[i], "--idle-ms") == 0)
      idle_ms = (uint64_t)atoll(argv[i + 1]);
    else if (strcmp(argv[i], "--fleet") == 0)
      fleet_n = (size_t)atol(argv[i + 1]);
  }
  uv_loop_t *loop = uv_default_loop();
  if (fleet_n > 0) {
    if (fleet_start(loop, fleet_n, d.mode, token) != 0) {
      fprintf(stderr, "admin_demo: fleet setup failed\n");
      return 1;
    }
    uv_signal_init(loop, &sigterm);
    uv_signal_start(&sigterm, on_signal, SIGTERM);
    uv_signal_init(loop, &sigint);
    uv_signal_start(&sigint, on_signal, SIGINT);
    uv_timer_init(loop, &lifetime);
    uv_timer_start(&lifetime, on_lifetime, 60000, 0);
    printf("%d\n", fl.nodes[0].port);
    fflush(stdout);
    uv_run(loop, UV_RUN_DEFAULT);
    fleet_free();
    return uv_loop_close(loop) == 0 ? 0 : 1;
  }
  int rv = wr_admin_new(&admin, loop, "127.0.0.1:0", token, NULL);
  if (rv != 0) {
    fprintf(stderr, "admin_demo: %s\n", wr_strerror(rv));
    return 1;
  }
  wr_admin_set_limits(admin, max_conns, idle_ms);
  wr_metrics *m = wr_admin_metrics(admin);
  if (wr_metrics_counter(m, "warren_http_requests_total", NULL, NULL,
                         "Public HTTP requests received.",
                         &d.http_requests) != 0 ||
      wr_metrics_gauge(m, "warren_swim_members", "state", "alive",
                       "Members known, per state.", &d.alive) != 0 ||
      wr_metrics_gauge(m, "warren_swim_members", "state", "suspect", NULL,
                       &d.suspect) != 0 ||
      wr_metrics_on_collect(m, collect, &d) != 0 ||
      wr_admin_route(admin, "GET", "/members", h_members, &d) != 0 ||
      wr_admin_route(admin, "GET", "/routes", h_routes, &d) != 0 ||
      wr_admin_route(admin, "GET", "/status", h_status, &d) != 0 ||
      wr_admin_route(admin, "POST", "/fault/", h_echo, &d) != 0) {
    fprintf(stderr, "admin_demo: setup failed\n");
    return 1;
  }
  uv_signal_init(loop, &sigterm);
  uv_signal_start(&sigterm, on_signal, SIGTERM);
  uv_signal_init(loop, &sigint);
  uv_signal_start(&sigint, on_signal, SIGINT);
  uv_timer_init(loop, &lifetime);
  uv_timer_start(&lifetime, on_lifetime, 60000, 0);
  printf("%d\n", wr_admin_port(admin));
  fflush(stdout);
  uv_run(loop, UV_RUN_DEFAULT);
  return uv_loop_close(loop) == 0 ? 0 : 1;
}
