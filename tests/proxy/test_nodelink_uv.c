/*
 * The node-to-node hop's stale-route retry (up_nodelink.h), with three
 * real ingresses, a real client and a tiny origin in one process on
 * loopback.  A is the first node; its lookup_remote hook answers from a
 * script, so its table can be made stale on purpose:
 *
 *   - A says B, B has no such name (NO_ROUTE) -> A retries, now C: the
 *     visitor gets the origin's answer, request body included (the bytes
 *     A had written to B are written again to C);
 *   - A says B, B's table says C (MOVED) -> the same;
 *   - A says a dead address (the link cannot be made) -> retried to C;
 *   - A says B twice -> one retry only, then a 502 naming the name.
 *
 * Every test ends with a clean loop close.
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
#include "warren/err.h"
#include "warren/ingress.h"
#include "warren/noise.h"

#define REQ                                                                    \
  "POST /x HTTP/1.1\r\nHost: far.mesh.test\r\nContent-Length: 10\r\n"          \
  "Connection: close\r\n\r\nhello-body"

typedef struct node {
  struct world *w;
  wr_ingress *ig;
  const char *id;
  const char *script[2]; /* lookup_remote's answers, in turn (NULL: none) */
  const char *rr[3];     /* else, when rr[0] is set: these in rotation */
  int lookups;
} node;

typedef struct world {
  uv_loop_t loop;
  node a, b, c;
  int dead_port;
  wr_client *client;
  int client_bound, stopped;
  /* the origin */
  uv_tcp_t osrv, ocon;
  char oreq[4096];
  size_t olen;
  uv_write_t owrite;
  char oresp[256];
  int origin_hits;
  /* the visitor */
  uv_tcp_t vtcp;
  uv_connect_t vconn;
  uv_write_t vwrite;
  char answer[4096];
  size_t alen;
  int vdone;
} world;

static int port_of(const node *n) { return wr_ingress_port(n->ig); }

static node *by_id(world *w, const char *id) {
  return strcmp(id, "B") == 0 ? &w->b : strcmp(id, "C") == 0 ? &w->c : NULL;
}

static int h_lookup_remote(void *ud, const char *name, char *owner,
                           size_t cap) {
  node *n = ud;
  (void)name;
  const char *ans = n->script[n->lookups < 2 ? n->lookups : 1];
  if (n->rr[0]) {
    int k = n->rr[2] ? 3 : n->rr[1] ? 2 : 1;
    ans = n->rr[n->lookups % k];
  }
  n->lookups++;
  if (!ans) return 0;
  snprintf(owner, cap, "%s", ans);
  return 1;
}

static int h_owner_addr(void *ud, const char *owner, char *addr, size_t cap) {
  node *n = ud;
  node *o = by_id(n->w, owner);
  snprintf(addr, cap, "127.0.0.1:%d", o ? port_of(o) : n->w->dead_port);
  return 1;
}

static void on_timeout(uv_timer_t *t) { *(int *)t->data = 1; }

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

/* ---- the origin: reads one request (head + Content-Length body) and
 * answers with the body it got ---- */

static void o_closed(uv_handle_t *h) { (void)h; }

static void o_written(uv_write_t *req, int status) {
  world *w = req->data;
  (void)status;
  uv_close((uv_handle_t *)&w->ocon, o_closed);
}

static void o_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf) {
  world *w = h->data;
  (void)hint;
  *buf = uv_buf_init(w->oreq + w->olen, (unsigned)(sizeof w->oreq - 1 -
                                                   w->olen));
}

static void o_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf) {
  world *w = s->data;
  (void)buf;
  if (n < 0) {
    uv_close((uv_handle_t *)s, o_closed);
    return;
  }
  w->olen += (size_t)n;
  w->oreq[w->olen] = 0;
  char *end = strstr(w->oreq, "\r\n\r\n");
  if (!end) return;
  char *cl = strcasestr(w->oreq, "content-length:");
  size_t want = cl ? (size_t)atoi(cl + 15) : 0;
  size_t have = w->olen - (size_t)(end + 4 - w->oreq);
  if (have < want) return;
  uv_read_stop(s);
  int len = snprintf(w->oresp, sizeof w->oresp,
                     "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\n"
                     "Connection: close\r\n\r\n%.*s",
                     want, (int)want, end + 4);
  w->origin_hits++;
  uv_buf_t b = uv_buf_init(w->oresp, (unsigned)len);
  w->owrite.data = w;
  uv_write(&w->owrite, s, &b, 1, o_written);
}

static void o_conn(uv_stream_t *srv, int status) {
  world *w = srv->data;
  assert_int_equal(status, 0);
  w->olen = 0;
  uv_tcp_init(&w->loop, &w->ocon);
  w->ocon.data = w;
  assert_int_equal(uv_accept(srv, (uv_stream_t *)&w->ocon), 0);
  uv_read_start((uv_stream_t *)&w->ocon, o_alloc, o_read);
}

/* ---- setup ---- */

static void on_bound(const char *name, const char *url, int first, void *ud) {
  (void)name;
  (void)url;
  (void)first;
  ((world *)ud)->client_bound++;
}

static void on_fatal(const char *line, void *ud) {
  (void)ud;
  fail_msg("client: %s", line);
}

static int free_port(void) {
  uv_loop_t l;
  uv_tcp_t t;
  struct sockaddr_in sa;
  struct sockaddr_storage ss;
  int sl = sizeof ss;
  uv_loop_init(&l);
  uv_tcp_init(&l, &t);
  uv_ip4_addr("127.0.0.1", 0, &sa);
  uv_tcp_bind(&t, (struct sockaddr *)&sa, 0);
  uv_tcp_getsockname(&t, (struct sockaddr *)&ss, &sl);
  int port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
  uv_close((uv_handle_t *)&t, NULL);
  uv_run(&l, UV_RUN_DEFAULT);
  uv_loop_close(&l);
  return port; /* closed again: connecting to it is refused */
}

static void start_node(world *w, node *n, const char *id,
                       const uint8_t secret[32]) {
  uint8_t pub[32];
  wr_ingress_config ic;
  memset(&ic, 0, sizeof ic);
  n->w = w;
  n->id = id;
  ic.listen = "127.0.0.1:0";
  ic.domain = "mesh.test";
  ic.node_id = id;
  wr_keys_fleet_keypair(secret, pub, ic.fleet_priv);
  wr_keys_node_psk(secret, ic.node_psk);
  ic.have_node_psk = 1;
  ic.routes_ud = n;
  ic.lookup_remote = h_lookup_remote;
  ic.owner_addr = h_owner_addr;
  assert_int_equal(wr_ingress_start(&n->ig, &w->loop, &ic), 0);
}

static void start(world *w) {
  uint8_t secret[32], pub[32], priv[32];
  memset(w, 0, sizeof *w);
  assert_int_equal(uv_loop_init(&w->loop), 0);
  randombytes_buf(secret, sizeof secret);
  wr_keys_fleet_keypair(secret, pub, priv);
  start_node(w, &w->a, "A", secret);
  start_node(w, &w->b, "B", secret);
  start_node(w, &w->c, "C", secret);
  w->dead_port = free_port();
  /* the origin */
  struct sockaddr_in sa;
  struct sockaddr_storage ss;
  int sl = sizeof ss;
  uv_tcp_init(&w->loop, &w->osrv);
  w->osrv.data = w;
  uv_ip4_addr("127.0.0.1", 0, &sa);
  assert_int_equal(uv_tcp_bind(&w->osrv, (struct sockaddr *)&sa, 0), 0);
  assert_int_equal(uv_listen((uv_stream_t *)&w->osrv, 16, o_conn), 0);
  uv_tcp_getsockname(&w->osrv, (struct sockaddr *)&ss, &sl);
  /* the client, bound at C */
  char addr[64];
  snprintf(addr, sizeof addr, "127.0.0.1:%d", port_of(&w->c));
  wr_client_config cc;
  memset(&cc, 0, sizeof cc);
  cc.node = addr;
  memcpy(cc.fleet_pub, pub, 32);
  cc.name = "far";
  cc.local_host = "127.0.0.1";
  cc.local_port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
  cc.on_bound = on_bound;
  cc.on_fatal = on_fatal;
  cc.ud = w;
  assert_int_equal(wr_client_start(&w->client, &w->loop, &cc), 0);
  assert_true(run_until(w, &w->client_bound, 5000));
}

static void stopped(void *ud) { (*(int *)ud)++; }

static void finish(world *w) {
  wr_client_stop(w->client, stopped, &w->stopped);
  wr_ingress_stop(w->a.ig, stopped, &w->stopped);
  wr_ingress_stop(w->b.ig, stopped, &w->stopped);
  wr_ingress_stop(w->c.ig, stopped, &w->stopped);
  uv_close((uv_handle_t *)&w->osrv, NULL);
  while (w->stopped < 4) uv_run(&w->loop, UV_RUN_ONCE);
  uv_run(&w->loop, UV_RUN_DEFAULT);
  assert_int_equal(uv_loop_close(&w->loop), 0);
}

/* ---- the visitor, at A ---- */

static void v_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf) {
  world *w = h->data;
  (void)hint;
  *buf = uv_buf_init(w->answer + w->alen,
                     (unsigned)(sizeof w->answer - 1 - w->alen));
}

static void v_closed(uv_handle_t *h) { ((world *)h->data)->vdone = 1; }

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
  static char get[] = REQ;
  uv_buf_t b = uv_buf_init(get, sizeof get - 1);
  assert_int_equal(uv_write(&w->vwrite, (uv_stream_t *)&w->vtcp, &b, 1, NULL),
                   0);
  uv_read_start((uv_stream_t *)&w->vtcp, v_alloc, v_read);
}

static void visit(world *w) {
  struct sockaddr_in sa;
  uv_ip4_addr("127.0.0.1", port_of(&w->a), &sa);
  uv_tcp_init(&w->loop, &w->vtcp);
  w->vtcp.data = w;
  w->vconn.data = w;
  w->alen = 0;
  w->vdone = 0;
  assert_int_equal(uv_tcp_connect(&w->vconn, &w->vtcp,
                                  (struct sockaddr *)&sa, v_connected),
                   0);
  assert_true(run_until(w, &w->vdone, 8000));
}

static void served(world *w) {
  assert_non_null(strstr(w->answer, "HTTP/1.1 200 "));
  assert_non_null(strstr(w->answer, "\r\n\r\nhello-body"));
  assert_int_equal(w->origin_hits, 1);
}

static void test_direct(void **state) {
  world w;
  (void)state;
  start(&w);
  w.a.script[0] = w.a.script[1] = "C";
  visit(&w);
  served(&w);
  assert_int_equal(w.a.lookups, 1);
  finish(&w);
}

static void test_retry_after_no_route(void **state) {
  world w;
  (void)state;
  start(&w);
  w.a.script[0] = "B"; /* stale */
  w.a.script[1] = "C"; /* the table's answer by the retry */
  visit(&w);
  served(&w);
  assert_int_equal(w.a.lookups, 2);
  assert_int_equal(w.b.lookups, 1); /* B checked for MOVED: no */
  finish(&w);
}

static void test_retry_after_moved(void **state) {
  world w;
  (void)state;
  start(&w);
  w.a.script[0] = "B";
  w.a.script[1] = "C";
  w.b.script[0] = w.b.script[1] = "C"; /* B knows it moved */
  visit(&w);
  served(&w);
  assert_int_equal(w.a.lookups, 2);
  finish(&w);
}

static void test_retry_after_unreachable(void **state) {
  world w;
  (void)state;
  start(&w);
  w.a.script[0] = "dead";
  w.a.script[1] = "C";
  visit(&w);
  served(&w);
  assert_int_equal(w.a.lookups, 2);
  finish(&w);
}

/* A name with two owners (one client's two links): the dead one first,
 * and the table's rotation would hand it out again; the retry asks on
 * until it gets the other one. */
static void test_retry_avoids_failed_owner(void **state) {
  world w;
  (void)state;
  start(&w);
  w.a.rr[0] = "dead";
  w.a.rr[1] = "dead";
  w.a.rr[2] = "C";
  visit(&w);
  served(&w);
  assert_int_equal(w.a.lookups, 3);
  finish(&w);
}

static void test_one_retry_only(void **state) {
  world w;
  (void)state;
  start(&w);
  w.a.script[0] = w.a.script[1] = "B";
  visit(&w);
  assert_non_null(strstr(w.answer, "HTTP/1.1 502 "));
  assert_non_null(strstr(w.answer, "no longer serves it"));
  /* The first lookup, then the retry's: it asks up to 4 times for an
   * owner other than B (proxy_uv.c, OWNER_TRIES), gets B each time and
   * tries B once more. */
  assert_int_equal(w.a.lookups, 5);
  assert_int_equal(w.origin_hits, 0);
  finish(&w);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_direct),
      cmocka_unit_test(test_retry_after_no_route),
      cmocka_unit_test(test_retry_after_moved),
      cmocka_unit_test(test_retry_after_unreachable),
      cmocka_unit_test(test_retry_avoids_failed_owner),
      cmocka_unit_test(test_one_retry_only),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
