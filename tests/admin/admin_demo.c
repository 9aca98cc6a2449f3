/*
 * admin_demo: the real admin server (wr_admin over libuv) with canned
 * handlers, for warrenctl's integration test.  Listens on 127.0.0.1 with
 * an ephemeral port, prints "PORT\n" on stdout once listening, and runs
 * until SIGTERM/SIGINT or 60 s (so a crashed test never leaves it behind).
 *
 *   admin_demo [--token T] [--mode normal|evolve|garbage|shape|empty]
 *              [--max-conns N] [--idle-ms MS]
 *
 * normal   three members (alive, suspect, dead), two routes, a status.
 * evolve   like normal, but each GET /members moves node-c one step
 *          alive -> suspect -> dead and adds node-d on the third call, and
 *          each GET /status reports one more route: what `watch` sees.
 * garbage  /members and /status answer text that is not JSON.
 * shape    valid JSON with the wrong shape (state "zombie", no routes).
 * empty    no members, no routes.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

static int h_routes(const wr_admin_req *req, wr_admin_resp *resp, void *ud) {
  demo *d = ud;
  if (strcmp(d->mode, "empty") == 0)
    return wr_admin_resp_json(resp, json_array());
  return wr_admin_resp_json(
      resp,
      json_pack("[{s:s,s:s,s:I,s:s},{s:s,s:s,s:I,s:s}]", "name", "app", "owner",
                "node-a", "version", (json_int_t)7, "state", "active", "name",
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

static void stop_all(void) {
  if (!admin) return;
  wr_admin_close(admin, NULL, NULL);
  admin = NULL;
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
  for (int i = 1; i + 1 < argc; i += 2) {
    if (strcmp(argv[i], "--token") == 0)
      token = argv[i + 1];
    else if (strcmp(argv[i], "--mode") == 0)
      d.mode = argv[i + 1];
    else if (strcmp(argv[i], "--max-conns") == 0)
      max_conns = (unsigned)atoi(argv[i + 1]);
    else if (strcmp(argv[i], "--idle-ms") == 0)
      idle_ms = (uint64_t)atoll(argv[i + 1]);
  }
  uv_loop_t *loop = uv_default_loop();
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
