/*
 * The routes hooks of wr_ingress_config and wr_ingress_evict, with a real
 * ingress and a real client (src/tunnel/client.c) in one process on
 * loopback: each test fails if a hook is not called, or if the client
 * does not react to what the hook decided (bind_check refusing -> "name
 * taken" and the client gives up; evict MOVED -> the moved line, and no
 * reconnect; evict TAKEN while bound -> "taken"; lookup_remote (node links
 * off) -> 502
 * naming the owner).  Every test ends with a clean loop close.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <sodium.h>
#include <uv.h>

#include "warren/client.h"
#include "warren/control.h"
#include "warren/link.h"
#include "warren/metrics.h"
#include "warren/err.h"
#include "warren/ingress.h"
#include "warren/noise.h"
#include "../../src/proxy/bindings.h" /* BINDINGS_HOLD_MS */

typedef struct world {
  uv_loop_t loop;
  wr_ingress *ig;
  wr_client *client;
  uint8_t pub[32];
  /* what the hooks saw */
  int checks, bounds, unbounds;
  int refuse;           /* bind_check answers WR_ERR_TAKEN */
  char name[64], account[64];
  uint8_t check_session[16], bound_session[16], unbound_session[16];
  const char *remote_owner; /* lookup_remote's answer, NULL = no route */
  int lookups;
  /* what the client said */
  int client_bound, fatals;
  char fatal[512];
  int stopped;
  /* a visitor's request and its answer */
  uv_tcp_t vtcp;
  uv_connect_t vconn;
  uv_write_t vwrite;
  char answer[4096];
  size_t alen;
  int vdone;
} world;

static int h_bind_check(void *ud, const char *name, const char *account,
                        const uint8_t session[16], uint32_t options) {
  world *w = ud;
  w->checks++;
  snprintf(w->name, sizeof w->name, "%s", name);
  snprintf(w->account, sizeof w->account, "%s", account);
  memcpy(w->check_session, session, 16);
  assert_int_equal(options, 0);
  return w->refuse ? WR_ERR_TAKEN : 0;
}

static void h_bound(void *ud, const char *name, const char *account,
                    const uint8_t session[16], uint32_t options) {
  world *w = ud;
  (void)options;
  w->bounds++;
  assert_string_equal(name, w->name);
  assert_string_equal(account, w->account);
  memcpy(w->bound_session, session, 16);
}

static void h_unbound(void *ud, const char *name, const uint8_t session[16]) {
  world *w = ud;
  w->unbounds++;
  assert_string_equal(name, w->name);
  memcpy(w->unbound_session, session, 16);
}

static int h_lookup_remote(void *ud, const char *name, char *owner,
                           size_t cap) {
  world *w = ud;
  (void)name;
  w->lookups++;
  if (!w->remote_owner) return 0;
  snprintf(owner, cap, "%s", w->remote_owner);
  return 1;
}

static void on_bound(const char *name, const char *url, int first, void *ud) {
  world *w = ud;
  (void)name;
  (void)url;
  (void)first;
  w->client_bound++;
}

static void on_fatal(const char *line, void *ud) {
  world *w = ud;
  w->fatals++;
  snprintf(w->fatal, sizeof w->fatal, "%s", line);
}

static void on_timeout(uv_timer_t *t) { *(int *)t->data = 1; }

/* Runs the loop until *|flag| is non-zero or |ms| pass; returns *flag. */
static int run_until(world *w, int *flag, uint64_t ms) {
  uv_timer_t t;
  int expired = 0;
  uv_timer_init(&w->loop, &t);
  t.data = &expired;
  uv_timer_start(&t, on_timeout, ms, 0);
  while (!*flag && !expired) uv_run(&w->loop, UV_RUN_ONCE);
  uv_close((uv_handle_t *)&t, NULL);
  uv_run(&w->loop, UV_RUN_NOWAIT);
  return *flag;
}

static void start_grace(world *w, const char *name, uint64_t grace_ms) {
  memset(w, 0, sizeof *w);
  assert_int_equal(uv_loop_init(&w->loop), 0);
  uint8_t secret[32], priv[32];
  randombytes_buf(secret, sizeof secret);
  wr_keys_fleet_keypair(secret, w->pub, priv);
  wr_ingress_config ic;
  memset(&ic, 0, sizeof ic);
  ic.listen = "127.0.0.1:0";
  ic.domain = "mesh.test";
  ic.node_id = "n1";
  memcpy(ic.fleet_priv, priv, 32);
  ic.routes_ud = w;
  ic.bind_check = h_bind_check;
  ic.bound = h_bound;
  ic.unbound = h_unbound;
  ic.lookup_remote = h_lookup_remote;
  ic.gone_grace_ms = grace_ms;
  assert_int_equal(wr_ingress_start(&w->ig, &w->loop, &ic), 0);
  char node[64];
  snprintf(node, sizeof node, "127.0.0.1:%d", wr_ingress_port(w->ig));
  wr_client_config cc;
  memset(&cc, 0, sizeof cc);
  cc.node = node;
  memcpy(cc.fleet_pub, w->pub, 32);
  cc.name = name;
  cc.local_host = "127.0.0.1";
  cc.local_port = 9; /* no visitor reaches it in these tests */
  for (int i = 0; i < 16; i++) cc.session[i] = (uint8_t)(i + 1);
  cc.on_bound = on_bound;
  cc.on_fatal = on_fatal;
  cc.ud = w;
  assert_int_equal(wr_client_start(&w->client, &w->loop, &cc), 0);
}

static void start(world *w, const char *name) { start_grace(w, name, 0); }

static void stopped(void *ud) { (*(int *)ud)++; }

static void finish(world *w) {
  wr_client_stop(w->client, stopped, &w->stopped);
  wr_ingress_stop(w->ig, stopped, &w->stopped);
  while (w->stopped < 2) uv_run(&w->loop, UV_RUN_ONCE);
  assert_int_equal(uv_loop_close(&w->loop), 0);
}

static void test_bind_check_refuses(void **state) {
  (void)state;
  world w;
  start(&w, "app");
  w.refuse = 1;
  assert_true(run_until(&w, &w.fatals, 5000));
  assert_int_equal(w.checks, 1);
  assert_string_equal(w.name, "app");
  assert_string_equal(w.account, "anonymous");
  static const uint8_t want[16] = {1, 2, 3, 4, 5, 6, 7, 8,
                                   9, 10, 11, 12, 13, 14, 15, 16};
  assert_memory_equal(w.check_session, want, 16);
  assert_non_null(strstr(w.fatal, "taken"));
  assert_int_equal(w.bounds, 0);
  assert_int_equal(w.client_bound, 0);
  assert_int_equal(wr_ingress_tunnel_count(w.ig), 0);
  finish(&w);
  assert_int_equal(w.unbounds, 0);
}

static void test_evict_moved(void **state) {
  (void)state;
  world w;
  start(&w, "app");
  assert_true(run_until(&w, &w.client_bound, 5000));
  assert_int_equal(w.checks, 1);
  assert_int_equal(w.bounds, 1);
  assert_memory_equal(w.bound_session, w.check_session, 16);
  static const uint8_t other[16] = {9};
  assert_int_equal(wr_ingress_evict(w.ig, "app", other,
                                    WR_INGRESS_EVICT_MOVED),
                   WR_ERR_NOTFOUND);
  assert_int_equal(wr_ingress_evict(w.ig, "nope", NULL,
                                    WR_INGRESS_EVICT_MOVED),
                   WR_ERR_NOTFOUND);
  assert_int_equal(wr_ingress_evict(w.ig, "app", w.bound_session,
                                    WR_INGRESS_EVICT_MOVED),
                   0);
  /* Gone from the table at once, and the routes table hears of it. */
  assert_int_equal(wr_ingress_tunnel_count(w.ig), 0);
  assert_int_equal(w.unbounds, 1);
  assert_memory_equal(w.unbound_session, w.bound_session, 16);
  assert_true(run_until(&w, &w.fatals, 5000));
  assert_non_null(strstr(w.fatal, "moved"));
  /* It does not come back: no second bind in a while (the backoff's
   * first retry would come within 250 ms). */
  int never = 0;
  run_until(&w, &never, 800);
  assert_int_equal(w.checks, 1);
  assert_int_equal(w.client_bound, 1);
  finish(&w);
}

static void test_evict_taken(void **state) {
  (void)state;
  world w;
  start(&w, "app");
  assert_true(run_until(&w, &w.client_bound, 5000));
  assert_int_equal(wr_ingress_evict(w.ig, "app", NULL,
                                    WR_INGRESS_EVICT_TAKEN),
                   0);
  assert_true(run_until(&w, &w.fatals, 5000));
  assert_non_null(strstr(w.fatal, "taken"));
  int never = 0;
  run_until(&w, &never, 800);
  assert_int_equal(w.checks, 1);
  finish(&w);
  assert_int_equal(w.unbounds, 1);
}

/* A client that goes away keeps its name for the grace period; the
 * routes table hears "unbound" when that ends, not before. */
static void test_unbound_after_grace(void **state) {
  (void)state;
  world w;
  start_grace(&w, "app", 300);
  assert_true(run_until(&w, &w.client_bound, 5000));
  int client_gone = 0;
  wr_client_stop(w.client, stopped, &client_gone);
  assert_true(run_until(&w, &client_gone, 5000));
  int never = 0;
  run_until(&w, &never, 100);
  assert_int_equal(w.unbounds, 0); /* GONE, within its grace */
  assert_int_equal(wr_ingress_tunnel_count(w.ig), 1);
  assert_true(run_until(&w, &w.unbounds, 2000));
  assert_int_equal(wr_ingress_tunnel_count(w.ig), 0);
  static const uint8_t want[16] = {1, 2, 3, 4, 5, 6, 7, 8,
                                   9, 10, 11, 12, 13, 14, 15, 16};
  assert_memory_equal(w.unbound_session, want, 16);
  wr_ingress_stop(w.ig, stopped, &w.stopped);
  while (w.stopped < 1) uv_run(&w.loop, UV_RUN_ONCE);
  assert_int_equal(uv_loop_close(&w.loop), 0);
  assert_int_equal(w.unbounds, 1);
}

/* One client's other link serves the name elsewhere (lookup_remote
 * names another owner): a dropped link's binding is released at once,
 * not after the grace, so visitors here are forwarded there. */
static void test_released_at_once_when_served_elsewhere(void **state) {
  (void)state;
  world w;
  start_grace(&w, "app", 30000);
  assert_true(run_until(&w, &w.client_bound, 5000));
  w.remote_owner = "n2";
  int client_gone = 0;
  wr_client_stop(w.client, stopped, &client_gone);
  assert_true(run_until(&w, &client_gone, 5000));
  assert_true(run_until(&w, &w.unbounds, 2000));
  assert_int_equal(wr_ingress_tunnel_count(w.ig), 0);
  assert_int_equal(wr_ingress_gone(w.ig, "app"), 0);
  wr_ingress_stop(w.ig, stopped, &w.stopped);
  while (w.stopped < 1) uv_run(&w.loop, UV_RUN_ONCE);
  assert_int_equal(uv_loop_close(&w.loop), 0);
  assert_int_equal(w.unbounds, 1);
}

/* Alone at the drop, the binding waits out its grace; once the routes
 * table says the client bound elsewhere, a recheck releases it. */
static void test_gone_released_on_recheck(void **state) {
  (void)state;
  world w;
  start_grace(&w, "app", 30000);
  assert_true(run_until(&w, &w.client_bound, 5000));
  int client_gone = 0;
  wr_client_stop(w.client, stopped, &client_gone);
  assert_true(run_until(&w, &client_gone, 5000));
  int never = 0;
  run_until(&w, &never, 100);
  assert_int_equal(w.unbounds, 0);
  assert_int_equal(wr_ingress_gone(w.ig, "app"), 1);
  assert_int_equal(wr_ingress_gone(w.ig, "other"), 0);
  assert_int_equal(wr_ingress_recheck(w.ig, "app"), 0); /* nobody else */
  assert_int_equal(w.unbounds, 0);
  w.remote_owner = "n2";
  assert_int_equal(wr_ingress_recheck(w.ig, "app"), 1);
  assert_int_equal(w.unbounds, 1);
  assert_int_equal(wr_ingress_tunnel_count(w.ig), 0);
  assert_int_equal(wr_ingress_recheck(w.ig, "app"), 0);
  wr_ingress_stop(w.ig, stopped, &w.stopped);
  while (w.stopped < 1) uv_run(&w.loop, UV_RUN_ONCE);
  assert_int_equal(uv_loop_close(&w.loop), 0);
  assert_int_equal(w.unbounds, 1);
}

static void on_bound2(const char *name, const char *url, int first,
                      void *ud) {
  (void)name, (void)url, (void)first;
  (*(int *)ud)++;
}

/* A new link of the same client (same session and account) while the
 * node still holds its old one live: the new link takes the binding (no
 * "name taken" until the old link's death is noticed), the old one is
 * closed, and the routes table sees no unbind in between. */
static void test_same_session_takes_over(void **state) {
  (void)state;
  world w;
  start(&w, "app");
  assert_true(run_until(&w, &w.client_bound, 5000));
  char node[64];
  snprintf(node, sizeof node, "127.0.0.1:%d", wr_ingress_port(w.ig));
  wr_client_config cc;
  memset(&cc, 0, sizeof cc);
  cc.node = node;
  memcpy(cc.fleet_pub, w.pub, 32);
  cc.name = "app";
  cc.local_host = "127.0.0.1";
  cc.local_port = 9;
  for (int i = 0; i < 16; i++) cc.session[i] = (uint8_t)(i + 1);
  int bound2 = 0;
  cc.on_bound = on_bound2;
  cc.on_fatal = on_fatal;
  cc.ud = &bound2;
  wr_client *c2;
  assert_int_equal(wr_client_start(&c2, &w.loop, &cc), 0);
  assert_true(run_until(&w, &bound2, 5000));
  assert_int_equal(w.fatals, 0);
  assert_int_equal(w.checks, 2);
  assert_int_equal(w.unbounds, 0);
  assert_int_equal(wr_ingress_tunnel_count(w.ig), 1);
  /* The first client lost its link: stop it before it comes back (its
   * first retry is 20 ms away at least). */
  int gone = 0;
  wr_client_stop(w.client, stopped, &gone);
  assert_true(run_until(&w, &gone, 5000));
  assert_int_equal(w.unbounds, 0);
  w.client = c2;
  finish(&w);
  assert_int_equal(w.unbounds, 1);
}

/* Stopping the ingress ends every binding: each is unbound. */
static void test_unbound_at_stop(void **state) {
  (void)state;
  world w;
  start(&w, "app");
  assert_true(run_until(&w, &w.client_bound, 5000));
  finish(&w);
  assert_int_equal(w.unbounds, 1);
}

/* ---- a visitor ---- */

static void v_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf) {
  world *w = h->data;
  (void)hint;
  *buf = uv_buf_init(w->answer + w->alen,
                     (unsigned)(sizeof w->answer - 1 - w->alen));
}

static void v_closed(uv_handle_t *h) {
  world *w = h->data;
  w->vdone = 1;
}

static void v_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf) {
  world *w = s->data;
  (void)buf;
  if (n > 0) {
    w->alen += (size_t)n;
    w->answer[w->alen] = 0;
    return;
  }
  if (n < 0) uv_close((uv_handle_t *)s, v_closed);
}

static void v_connected(uv_connect_t *req, int status) {
  world *w = req->data;
  assert_int_equal(status, 0);
  static char get[] = "GET / HTTP/1.1\r\nHost: far.mesh.test\r\n\r\n";
  uv_buf_t b = uv_buf_init(get, sizeof get - 1);
  assert_int_equal(uv_write(&w->vwrite, (uv_stream_t *)&w->vtcp, &b, 1, NULL),
                   0);
  uv_read_start((uv_stream_t *)&w->vtcp, v_alloc, v_read);
}

static void visit(world *w) {
  struct sockaddr_in sa;
  uv_ip4_addr("127.0.0.1", wr_ingress_port(w->ig), &sa);
  uv_tcp_init(&w->loop, &w->vtcp);
  w->vtcp.data = w;
  w->vconn.data = w;
  w->alen = 0;
  w->vdone = 0;
  assert_int_equal(uv_tcp_connect(&w->vconn, &w->vtcp,
                                  (struct sockaddr *)&sa, v_connected),
                   0);
  assert_true(run_until(w, &w->vdone, 5000));
}

/* Starts a visitor's request without waiting for its answer. */
static void visit_start(world *w) {
  struct sockaddr_in sa;
  uv_ip4_addr("127.0.0.1", wr_ingress_port(w->ig), &sa);
  uv_tcp_init(&w->loop, &w->vtcp);
  w->vtcp.data = w;
  w->vconn.data = w;
  w->alen = 0;
  w->vdone = 0;
  assert_int_equal(uv_tcp_connect(&w->vconn, &w->vtcp,
                                  (struct sockaddr *)&sa, v_connected),
                   0);
}

static wr_client *client_again(world *w, const char *name) {
  char node[64];
  snprintf(node, sizeof node, "127.0.0.1:%d", wr_ingress_port(w->ig));
  wr_client_config cc;
  memset(&cc, 0, sizeof cc);
  cc.node = node;
  memcpy(cc.fleet_pub, w->pub, 32);
  cc.name = name;
  cc.local_host = "127.0.0.1";
  cc.local_port = 9;
  for (int i = 0; i < 16; i++) cc.session[i] = (uint8_t)(i + 1);
  cc.on_bound = on_bound;
  cc.on_fatal = on_fatal;
  cc.ud = w;
  wr_client *c;
  assert_int_equal(wr_client_start(&c, &w->loop, &cc), 0);
  return c;
}

/* A visitor of a name whose client's link dropped (no other owner) is
 * held, not answered 502 at once; when the client binds again here, its
 * request goes through the new link (the local server there refuses, so
 * the answer is that 502, not "reconnecting"). */
static void test_held_until_rebind(void **state) {
  (void)state;
  world w;
  start_grace(&w, "far", 30000);
  assert_true(run_until(&w, &w.client_bound, 5000));
  int gone = 0;
  wr_client_stop(w.client, stopped, &gone);
  assert_true(run_until(&w, &gone, 5000));
  visit_start(&w);
  int never = 0;
  run_until(&w, &never, 300);
  assert_int_equal(w.vdone, 0); /* held */
  assert_int_equal(w.alen, 0);
  w.client_bound = 0;
  w.client = client_again(&w, "far");
  assert_true(run_until(&w, &w.vdone, 3000));
  assert_non_null(strstr(w.answer, "HTTP/1.1 502 "));
  assert_non_null(strstr(w.answer, "refused the connection"));
  assert_int_equal(w.client_bound, 1);
  finish(&w);
}

/* ... and answered 502 when the client does not come back within the
 * hold (BINDINGS_HOLD_MS). */
static void test_held_then_502(void **state) {
  (void)state;
  world w;
  start_grace(&w, "far", 30000);
  assert_true(run_until(&w, &w.client_bound, 5000));
  int gone = 0;
  wr_client_stop(w.client, stopped, &gone);
  assert_true(run_until(&w, &gone, 5000));
  uint64_t t0 = uv_now(&w.loop);
  visit_start(&w);
  assert_true(run_until(&w, &w.vdone, 6000));
  uint64_t dt = uv_now(&w.loop) - t0;
  assert_non_null(strstr(w.answer, "HTTP/1.1 502 "));
  assert_true(dt >= BINDINGS_HOLD_MS - 50 && dt < BINDINGS_HOLD_MS + 2000);
  assert_int_equal(wr_ingress_tunnel_count(w.ig), 1); /* still in grace */
  wr_ingress_stop(w.ig, stopped, &w.stopped);
  while (w.stopped < 1) uv_run(&w.loop, UV_RUN_ONCE);
  assert_int_equal(uv_loop_close(&w.loop), 0);
}

static void test_lookup_remote(void **state) {
  (void)state;
  world w;
  start(&w, "app");
  assert_true(run_until(&w, &w.client_bound, 5000));
  w.remote_owner = "n2";
  visit(&w);
  assert_int_equal(w.lookups, 1);
  assert_non_null(strstr(w.answer, "HTTP/1.1 502 "));
  /* This ingress has no node PSK: it names the owner instead of
   * forwarding (forward5.py covers the hop). */
  assert_non_null(strstr(w.answer, "far is served by node n2; this node "
                                   "does not forward"));
  w.remote_owner = NULL;
  visit(&w);
  assert_int_equal(w.lookups, 2);
  assert_non_null(strstr(w.answer, "HTTP/1.1 404 "));
  finish(&w);
}

/* ---- a hand-driven client link: one Hello after another ---- */

typedef struct raw {
  world *w;
  uv_tcp_t *tcp;
  uv_connect_t conn;
  uv_write_t up;
  char head[1024];
  size_t headlen;
  wr_link *link;
  const char *token; /* NULL: the pipelined guesses of raw_ready */
  int errors, bound, closed;
  uint32_t last_error;
  uint64_t t_ready, t_answer; /* loop time of ready, of the first answer */
} raw;

static void raw_send(wr_link *l, const wr_control_msg *m) {
  uint8_t buf[WR_CONTROL_MAX_WIRE];
  wr_ssize n = wr_control_encode(m, buf, sizeof buf);
  assert_true(n > 0);
  assert_int_equal(wr_mux_control(wr_link_mux(l), buf, (size_t)n), 0);
  wr_link_flush(l);
}

static void raw_hello(wr_link *l, const char *token) {
  wr_control_msg m;
  memset(&m, 0, sizeof m);
  m.type = WR_CONTROL_HELLO;
  m.u.hello.protocol_version = WR_CONTROL_PROTOCOL_VERSION;
  snprintf(m.u.hello.token, sizeof m.u.hello.token, "%s", token);
  raw_send(l, &m);
}

/* Pipelines two wrong Hellos, the right one and a Bind in one go; or,
 * with r->token, that Hello and a Bind. */
static void raw_ready(wr_link *l, void *ud) {
  raw *r = ud;
  r->t_ready = uv_now(&r->w->loop);
  if (r->token) {
    raw_hello(l, r->token);
  } else {
    raw_hello(l, "guess-1");
    raw_hello(l, "guess-2");
    raw_hello(l, "secret");
  }
  wr_control_msg m;
  memset(&m, 0, sizeof m);
  m.type = WR_CONTROL_BIND;
  snprintf(m.u.bind.name, sizeof m.u.bind.name, "app");
  raw_send(l, &m);
}

static void raw_closed(wr_link *l, int err, void *ud) {
  (void)l;
  (void)err;
  raw *r = ud;
  r->link = NULL;
  r->closed = 1;
}

static int raw_control(wr_link *l, const uint8_t *msg, size_t len,
                       void *ud) {
  (void)l;
  raw *r = ud;
  wr_control_msg m;
  assert_int_equal(wr_control_decode(msg, len, &m), 0);
  if (!r->t_answer) r->t_answer = uv_now(&r->w->loop);
  if (m.type == WR_CONTROL_ERROR) {
    r->errors++;
    r->last_error = m.u.error.code;
  }
  if (m.type == WR_CONTROL_BOUND) {
    r->bound++;
    wr_link_close(l, 0);
  }
  return 0;
}

static int raw_open(wr_link *l, uint32_t sid, const uint8_t *meta,
                    size_t len, void *ud) {
  (void)l, (void)sid, (void)meta, (void)len, (void)ud;
  return 0;
}

static const wr_link_callbacks raw_cb = {
    .ready = raw_ready,
    .closed = raw_closed,
    .stream_open = raw_open,
    .control = raw_control,
};

static void raw_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf) {
  raw *r = h->data;
  (void)hint;
  *buf = uv_buf_init(r->head + r->headlen,
                     (unsigned)(sizeof r->head - r->headlen));
}

static void raw_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf) {
  (void)buf;
  raw *r = s->data;
  assert_true(n >= 0);
  r->headlen += (size_t)n;
  char *end = memmem(r->head, r->headlen, "\r\n\r\n", 4);
  if (!end) return;
  uv_read_stop(s);
  assert_memory_equal(r->head, "HTTP/1.1 101", 12);
  size_t hlen = (size_t)(end + 4 - r->head);
  wr_link_config lc;
  memset(&lc, 0, sizeof lc);
  lc.initiator = 1;
  memcpy(lc.fleet_key, r->w->pub, 32);
  lc.peer = "node";
  assert_int_equal(wr_link_start(&r->link, &r->w->loop, r->tcp, &lc,
                                 &raw_cb, r, (uint8_t *)r->head + hlen,
                                 r->headlen - hlen),
                   0);
}

static void raw_connected(uv_connect_t *req, int status) {
  raw *r = req->data;
  assert_int_equal(status, 0);
  static char upreq[] = "GET /_warren/tunnel HTTP/1.1\r\nHost: n1\r\n"
                        "Connection: Upgrade\r\nUpgrade: warren/1\r\n\r\n";
  uv_buf_t b = uv_buf_init(upreq, sizeof upreq - 1);
  assert_int_equal(uv_write(&r->up, (uv_stream_t *)r->tcp, &b, 1, NULL), 0);
  uv_read_start((uv_stream_t *)r->tcp, raw_alloc, raw_read);
}

/* One link is worth one guess: after a wrong token the node answers that
 * Hello with BAD_TOKEN and ends the link; the Hellos pipelined behind it
 * (the right token among them) and the Bind are never answered, nothing
 * binds, and the failure is counted once. */
/* Starts an ingress that requires the token "secret", counting into |mx|. */
static void start_token(world *w, wr_metrics **pmx) {
  memset(w, 0, sizeof *w);
  assert_int_equal(uv_loop_init(&w->loop), 0);
  assert_int_equal(wr_metrics_new(pmx, NULL), 0);
  uint8_t secret[32], priv[32];
  randombytes_buf(secret, sizeof secret);
  wr_keys_fleet_keypair(secret, w->pub, priv);
  wr_ingress_config ic;
  memset(&ic, 0, sizeof ic);
  ic.listen = "127.0.0.1:0";
  ic.domain = "mesh.test";
  ic.node_id = "n1";
  ic.token = "secret";
  ic.metrics = *pmx;
  memcpy(ic.fleet_priv, priv, 32);
  ic.routes_ud = w;
  ic.bind_check = h_bind_check;
  ic.bound = h_bound;
  ic.unbound = h_unbound;
  assert_int_equal(wr_ingress_start(&w->ig, &w->loop, &ic), 0);
}

/* One raw link: connects, sends per |token|, runs until the link is
 * gone (the client closes it once bound). */
static void raw_run(world *w, raw *r, const char *token) {
  memset(r, 0, sizeof *r);
  r->w = w;
  r->token = token;
  r->tcp = malloc(sizeof *r->tcp);
  assert_non_null(r->tcp);
  uv_tcp_init(&w->loop, r->tcp);
  r->tcp->data = r;
  r->conn.data = r;
  struct sockaddr_in sa;
  uv_ip4_addr("127.0.0.1", wr_ingress_port(w->ig), &sa);
  assert_int_equal(uv_tcp_connect(&r->conn, r->tcp, (struct sockaddr *)&sa,
                                  raw_connected),
                   0);
  assert_true(run_until(w, &r->closed, 20000));
}

static uint64_t auth_failures(wr_metrics *mx) {
  static uint8_t text[65536];
  wr_metrics_collect(mx);
  size_t n = wr_metrics_render(mx, text, sizeof text - 1);
  text[n] = 0;
  const char *p = strstr((char *)text, "\nwarren_tunnel_auth_failures_total ");
  assert_non_null(p);
  return strtoull(p + strlen("\nwarren_tunnel_auth_failures_total "), NULL,
                  10);
}

static void stop_token(world *w, wr_metrics *mx) {
  wr_ingress_stop(w->ig, stopped, &w->stopped);
  while (w->stopped < 1) uv_run(&w->loop, UV_RUN_ONCE);
  assert_int_equal(uv_loop_close(&w->loop), 0);
  wr_metrics_del(mx);
}

/* An address's first three failures are answered at once; the fourth
 * Hello waits (500 ms), and the right token after that waits longer
 * (1 s) but still binds, its Bind held along with it. */
static void test_slow_after_failures(void **state) {
  (void)state;
  world w;
  wr_metrics *mx;
  start_token(&w, &mx);
  raw r;
  for (int i = 0; i < 3; i++) {
    raw_run(&w, &r, "wrong");
    assert_int_equal(r.errors, 1);
    assert_int_equal(r.last_error, WR_CONTROL_ERR_BAD_TOKEN);
    assert_true(r.t_answer - r.t_ready < 400);
  }
  raw_run(&w, &r, "wrong");
  assert_int_equal(r.errors, 1);
  assert_true(r.t_answer - r.t_ready >= 450);
  assert_int_equal(auth_failures(mx), 4);
  raw_run(&w, &r, "secret");
  assert_int_equal(r.errors, 0);
  assert_int_equal(r.bound, 1);
  assert_true(r.t_answer - r.t_ready >= 950);
  assert_int_equal(w.bounds, 1);
  assert_int_equal(auth_failures(mx), 4);
  stop_token(&w, mx);
}

static void test_one_guess_per_link(void **state) {
  (void)state;
  world w;
  wr_metrics *mx;
  start_token(&w, &mx);
  raw r;
  raw_run(&w, &r, NULL);
  assert_int_equal(r.errors, 1);
  assert_int_equal(r.last_error, WR_CONTROL_ERR_BAD_TOKEN);
  assert_int_equal(r.bound, 0);
  assert_int_equal(w.checks, 0);
  assert_int_equal(w.bounds, 0);
  assert_int_equal(wr_ingress_tunnel_count(w.ig), 0);
  assert_int_equal(auth_failures(mx), 1);
  stop_token(&w, mx);
}

int main(void) {
  if (sodium_init() < 0) return 1;
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_bind_check_refuses),
      cmocka_unit_test(test_evict_moved),
      cmocka_unit_test(test_evict_taken),
      cmocka_unit_test(test_lookup_remote),
      cmocka_unit_test(test_unbound_after_grace),
      cmocka_unit_test(test_unbound_at_stop),
      cmocka_unit_test(test_released_at_once_when_served_elsewhere),
      cmocka_unit_test(test_gone_released_on_recheck),
      cmocka_unit_test(test_same_session_takes_over),
      cmocka_unit_test(test_held_until_rebind),
      cmocka_unit_test(test_held_then_502),
      cmocka_unit_test(test_one_guess_per_link),
      cmocka_unit_test(test_slow_after_failures),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
