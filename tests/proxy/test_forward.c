/*
 * Tests for the forwarding core (src/proxy/forward.c) with virtual time
 * and a scripted upstream: state transitions, each timeout, pipelining,
 * upgrades, the tunnel hand-off, the PROXY header, resets from the
 * upstream in each state, and credit (backpressure both ways).
 *
 * The harness plays the adapter: it reads into the buffer the core
 * lends, collects what the core sends to the visitor (reported written
 * only when a test says so, as a socket would), and is the upstream (it
 * takes request bytes within `credit` and records consume, FIN, detach).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "warren/err.h"
#include "warren/forward.h"
#include "../support/failmalloc.h"

#define HEAD_MS 30000
#define IDLE_MS 75000
#define UP_MS 60000
#define LINGER_MS 5000
#define QUIET_MS 2000

typedef struct harness {
  wr_fwd *f;
  wr_fwd_config cfg;
  wr_fwd_metrics m;
  uint64_t requests, bad, r404, r408, r502, r504, head_to, pauses, rate,
      lingers, silent, stalls, sheds, body_answered;
  wr_tstamp now;
  /* to the visitor */
  char out[1 << 16];
  size_t outlen, unwritten, unwritten_credit, sends;
  /* the upstream */
  int route;            /* what open answers: 0, 404 or 502 */
  int opens, fins, detaches, resets;
  int not_reusable;     /* what the upstream's reusable op answers: !x */
  size_t credit;        /* request bytes the upstream takes now */
  char up[1 << 16];
  size_t uplen;
  size_t consumed;
  wr_fwd_open meta;
  char meta_name[64], meta_host[64];
  /* hand-off */
  int handoffs;
  char pre[64];
  size_t prelen;
} harness;

static harness H;

/* ---- the upstream ---- */

static wr_ssize up_write(void *up, const uint8_t *data, size_t len) {
  (void)up;
  size_t n = len < H.credit ? len : H.credit;
  assert_true(H.uplen + n <= sizeof H.up);
  memcpy(H.up + H.uplen, data, n);
  H.uplen += n;
  H.credit -= n;
  return (wr_ssize)n;
}
static void up_consume(void *up, size_t n) {
  (void)up;
  H.consumed += n;
}
static void up_fin(void *up) {
  (void)up;
  H.fins++;
}
static void up_detach(void *up, int reset) {
  (void)up;
  H.detaches++;
  H.resets += reset;
}
static int up_reusable(void *up) {
  (void)up;
  return !H.not_reusable;
}
static const wr_fwd_upstream_ops up_ops = {up_write, up_consume, up_fin,
                                           up_detach, up_reusable};

/* ---- the core's callbacks ---- */

static int cb_open(void *ud, const wr_fwd_open *meta, wr_fwd_upstream *out,
                   char *detail, size_t cap) {
  (void)ud;
  H.opens++;
  H.meta = *meta;
  strncpy(H.meta_name, meta->name, sizeof H.meta_name - 1);
  strncpy(H.meta_host, meta->host ? meta->host : "", sizeof H.meta_host - 1);
  if (H.route == 502) {
    strncpy(detail, "no way there", cap);
    return 502;
  }
  if (H.route) return H.route;
  out->ops = &up_ops;
  out->up = &H;
  return 0;
}
static void cb_send(void *ud, uint8_t *buf, size_t len, size_t credit) {
  (void)ud;
  assert_true(H.outlen + len < sizeof H.out);
  memcpy(H.out + H.outlen, buf, len);
  H.outlen += len;
  H.out[H.outlen] = 0;
  H.unwritten += len;
  H.unwritten_credit += credit;
  H.sends++;
  free(buf);
}
static int cb_handoff(void *ud, const uint8_t *pre, size_t len) {
  (void)ud;
  H.handoffs++;
  assert_true(len < sizeof H.pre);
  memcpy(H.pre, pre, len);
  H.prelen = len;
  return 0;
}
static uint8_t *cb_buf_new(size_t len) { return malloc(len); }
static void cb_buf_free(uint8_t *b) { free(b); }
static const wr_fwd_callbacks cbs = {cb_open, cb_send, cb_handoff, cb_buf_new,
                                     cb_buf_free, cb_handoff};

static void rand_counter(uint8_t *dst, size_t len, void *ud) {
  static uint8_t c;
  (void)ud;
  for (size_t i = 0; i < len; i++) dst[i] = c++;
}

static void start_with(int expect_proxy, size_t pipeline_max) {
  memset(&H, 0, sizeof H);
  H.m = (wr_fwd_metrics){&H.requests, &H.bad,     &H.r404,   &H.r408,
                         &H.r502,     &H.r504,    &H.head_to, &H.pauses,
                         &H.rate,     &H.lingers, &H.silent,
                         &H.stalls,   &H.sheds,   &H.body_answered};
  H.cfg = (wr_fwd_config){
      .domain = "mesh.test",
      .proto = "http",
      .max_head = 32768,
      .rbuf_cap = 65536,
      .head_ms = HEAD_MS,
      .idle_ms = IDLE_MS,
      .upstream_ms = UP_MS,
      .pipeline_max = pipeline_max,
      .linger_ms = LINGER_MS,
      .linger_quiet_ms = QUIET_MS,
      .rand = rand_counter,
      .cb = &cbs,
      .metrics = &H.m,
  };
  H.now = 1000;
  H.credit = 1 << 20;
  assert_int_equal(wr_fwd_new(&H.f, &H.cfg, &H, "10.0.0.1:5555", "10.0.0.1",
                              expect_proxy, NULL, H.now),
                   0);
}
static void start(void) { start_with(0, 32); }

static void finish(void) {
  wr_fwd_del(H.f);
  H.f = NULL;
}

static wr_fwd_state state(void) { return wr_fwd_get_state(H.f); }

/* The visitor sends |s| (one read). */
static void visit_n(const char *s, size_t n) {
  assert_true(wr_fwd_want_read(H.f));
  uint8_t *p;
  size_t cap;
  int rv = wr_fwd_read_buf(H.f, &p, &cap);
  if (rv == 1) {
    wr_fwd_read(H.f, n, H.now); /* dropped */
    return;
  }
  assert_int_equal(rv, 0);
  assert_true(n <= cap);
  memcpy(p, s, n);
  wr_fwd_read(H.f, n, H.now);
}
static void visit(const char *s) { visit_n(s, strlen(s)); }

/* The origin sends |s| (one DATA buffer). */
static void origin(const char *s) {
  size_t n = strlen(s);
  uint8_t *b = malloc(n ? n : 1);
  memcpy(b, s, n);
  wr_fwd_up_data(H.f, b, n, H.now);
}

/* The visitor's socket took everything sent so far. */
static void written(void) {
  size_t len = H.unwritten, credit = H.unwritten_credit;
  H.unwritten = H.unwritten_credit = 0;
  if (len || credit) wr_fwd_written(H.f, len, credit, 0, H.now);
}

static void advance(uint64_t ms) {
  H.now += ms;
  wr_fwd_tick(H.f, H.now);
}

/* The deadline is exactly |ms| from now, and nothing happens before. */
static void expect_deadline(uint64_t ms) {
  assert_true(wr_fwd_deadline(H.f) == H.now + ms);
}

static int out_has(const char *s) { return strstr(H.out, s) != NULL; }
static int up_has(const char *s) {
  H.up[H.uplen < sizeof H.up ? H.uplen : sizeof H.up - 1] = 0;
  return strstr(H.up, s) != NULL;
}

#define GET "GET / HTTP/1.1\r\nHost: app.mesh.test\r\n\r\n"
#define OK2 "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi"

/* ---- transitions ---- */

static void test_keep_alive(void **state_) {
  (void)state_;
  start();
  assert_int_equal(state(), WR_FWD_OPEN);
  expect_deadline(HEAD_MS); /* a new connection's first head */
  visit(GET);
  assert_int_equal(H.opens, 1);
  assert_string_equal(H.meta_name, "app");
  assert_string_equal(H.meta_host, "app.mesh.test");
  assert_string_equal(H.meta.scheme, "http");
  assert_int_equal(H.meta.hops, 0);
  assert_true(up_has("GET / HTTP/1.1\r\n"));
  assert_true(up_has("X-Forwarded-For: 10.0.0.1\r\n"));
  expect_deadline(UP_MS); /* the origin owes an answer */
  origin(OK2);
  assert_true(out_has("HTTP/1.1 200 OK\r\n"));
  assert_true(out_has("\r\n\r\nhi"));
  /* Credit goes back only once the visitor's socket took the bytes. */
  assert_int_equal(H.consumed, 0);
  written();
  assert_int_equal(H.consumed, strlen(OK2));
  assert_int_equal(state(), WR_FWD_OPEN);
  assert_true(wr_fwd_want_read(H.f));
  expect_deadline(IDLE_MS);
  /* A second request on the same upstream: no second open. */
  visit(GET);
  assert_int_equal(H.opens, 1);
  origin(OK2);
  written();
  assert_int_equal(H.requests, 2);
  /* Idle keep-alive: closed quietly. */
  advance(IDLE_MS - 1);
  assert_int_equal(state(), WR_FWD_OPEN);
  advance(1);
  assert_int_equal(state(), WR_FWD_CLOSED);
  assert_int_equal(H.resets, 1);
  assert_int_equal(H.r408, 0);
  finish();
}

static void test_close_request(void **state_) {
  (void)state_;
  start();
  visit("GET / HTTP/1.1\r\nHost: app.mesh.test\r\nConnection: close\r\n\r\n");
  /* Nothing more to forward: reads stay off. */
  assert_false(wr_fwd_want_read(H.f));
  origin(OK2);
  assert_true(out_has("Connection: close\r\n"));
  assert_int_equal(state(), WR_FWD_ENDING);
  written();
  assert_int_equal(state(), WR_FWD_CLOSED);
  finish();
}

static void test_no_route(void **state_) {
  (void)state_;
  start();
  H.route = 404;
  visit(GET);
  assert_int_equal(state(), WR_FWD_ANSWERED);
  assert_true(out_has("HTTP/1.1 404 "));
  assert_true(out_has("app.mesh.test"));
  assert_int_equal(H.r404, 1);
  /* Input is dropped while the page goes out. */
  assert_true(wr_fwd_want_read(H.f));
  uint8_t *p;
  size_t cap;
  assert_int_equal(wr_fwd_read_buf(H.f, &p, &cap), 1);
  /* Written: the visitor may still be sending, so FIN and linger. */
  written();
  assert_int_equal(state(), WR_FWD_LINGER);
  assert_true(wr_fwd_want_shutdown(H.f));
  assert_int_equal(H.lingers, 1);
  expect_deadline(QUIET_MS);
  /* Its EOF ends it. */
  wr_fwd_read_eof(H.f, 0, H.now);
  assert_int_equal(state(), WR_FWD_CLOSED);
  finish();

  start();
  H.route = 502;
  visit(GET);
  assert_true(out_has("HTTP/1.1 502 "));
  assert_true(out_has("no way there"));
  assert_int_equal(H.r502, 1);
  finish();

  /* A Host outside the domain: 404 naming it, no route asked. */
  start();
  visit("GET / HTTP/1.1\r\nHost: example.org\r\n\r\n");
  assert_int_equal(H.opens, 0);
  assert_true(out_has("HTTP/1.1 404 "));
  assert_true(out_has("example.org"));
  finish();
}

static void test_bad_request_and_421(void **state_) {
  (void)state_;
  start();
  visit("GET / HTTP/1.1\r\nHost: app.mesh.test\r\nContent-Length: 1\r\n"
        "Content-Length: 2\r\n\r\n");
  assert_true(out_has("HTTP/1.1 400 "));
  assert_int_equal(H.bad, 1);
  assert_int_equal(state(), WR_FWD_ANSWERED);
  finish();

  start();
  visit(GET);
  origin(OK2);
  written();
  visit("GET / HTTP/1.1\r\nHost: other.mesh.test\r\n\r\n");
  assert_true(out_has("HTTP/1.1 421 "));
  assert_int_equal(H.resets, 1); /* the upstream is reset */
  finish();
}

/* ---- timeouts ---- */

static void test_head_timeout(void **state_) {
  (void)state_;
  start();
  visit("GET / HTTP/1.1\r\nHost: app.me");
  expect_deadline(HEAD_MS);
  advance(HEAD_MS / 2);
  visit("sh.test\r\nX: y"); /* later bytes do not re-arm it (slowloris) */
  advance(HEAD_MS / 2);
  assert_true(out_has("HTTP/1.1 408 "));
  assert_int_equal(H.head_to, 1);
  assert_int_equal(H.r408, 1);
  /* The page is never taken: give up after idle_ms. */
  expect_deadline(IDLE_MS);
  advance(IDLE_MS);
  assert_int_equal(state(), WR_FWD_CLOSED);
  finish();

  /* A connection that never sent a byte closes quietly. */
  start();
  advance(HEAD_MS);
  assert_int_equal(state(), WR_FWD_CLOSED);
  assert_int_equal(H.outlen, 0);
  assert_int_equal(H.head_to, 0);
  assert_int_equal(H.silent, 1); /* ... but is counted apart */
  finish();
}

static void test_origin_timeout(void **state_) {
  (void)state_;
  start();
  visit(GET);
  advance(UP_MS - 1);
  assert_int_equal(H.outlen, 0);
  advance(1);
  assert_true(out_has("HTTP/1.1 504 "));
  assert_true(out_has("did not answer within"));
  assert_int_equal(H.resets, 1);
  assert_int_equal(H.r504, 1);
  finish();
}

static void test_send_timeout(void **state_) {
  (void)state_;
  start();
  H.credit = 10;
  visit("POST / HTTP/1.1\r\nHost: app.mesh.test\r\nContent-Length: 5\r\n\r\n"
        "hello");
  /* The head did not fit: it waits, and so does the visitor. */
  assert_int_equal(H.uplen, 10);
  assert_false(wr_fwd_want_read(H.f));
  expect_deadline(UP_MS);
  advance(UP_MS);
  assert_true(out_has("HTTP/1.1 504 "));
  assert_true(out_has("did not read the request"));
  finish();
}

static void test_body_timeout(void **state_) {
  (void)state_;
  start();
  visit("POST / HTTP/1.1\r\nHost: app.mesh.test\r\nContent-Length: 10\r\n\r\n"
        "hello");
  expect_deadline(IDLE_MS); /* the visitor owes the rest of its body */
  advance(IDLE_MS);
  assert_true(out_has("HTTP/1.1 408 "));
  assert_true(out_has("did not arrive in time"));
  /* It is mid-request: after the page, FIN and linger. */
  written();
  assert_int_equal(state(), WR_FWD_LINGER);
  /* Dropped bytes keep it for another quiet period, up to linger_ms. */
  advance(QUIET_MS - 1);
  visit("more");
  expect_deadline(QUIET_MS);
  advance(QUIET_MS - 1);
  visit("more");
  expect_deadline(LINGER_MS - 2 * (QUIET_MS - 1));
  advance(LINGER_MS);
  assert_int_equal(state(), WR_FWD_CLOSED);
  finish();
}

static void test_body_rate(void **state_) {
  (void)state_;
  /* The rate is part of the timer's config, taken at wr_fwd_new. */
  start();
  wr_fwd_del(H.f);
  H.cfg.body_min_rate = 1000;
  assert_int_equal(wr_fwd_new(&H.f, &H.cfg, &H, "p", "10.0.0.1", 0, NULL,
                              H.now),
                   0);
  visit("POST / HTTP/1.1\r\nHost: app.mesh.test\r\nContent-Length: 100000"
        "\r\n\r\n");
  /* 10 bytes every 10 s: never idle for idle_ms, but far below 1000 B/s
   * once the grace (head_ms) is over. */
  for (int i = 0; i < 10 && state() == WR_FWD_OPEN; i++) {
    advance(10000);
    if (state() == WR_FWD_OPEN) visit("0123456789");
  }
  assert_true(out_has("HTTP/1.1 408 "));
  assert_true(out_has("slower than 1000 bytes/s"));
  assert_int_equal(H.rate, 1);
  finish();
}

/* ---- pipelining, upgrades, hand-off, PROXY ---- */

static void test_pipelining(void **state_) {
  (void)state_;
  start_with(0, 4);
  char six[6 * sizeof GET];
  six[0] = 0;
  for (int i = 0; i < 6; i++) strcat(six, GET);
  visit(six);
  /* Four owed: the rest waits unparsed, and reading stops. */
  assert_int_equal(H.requests, 4);
  assert_false(wr_fwd_want_read(H.f));
  assert_int_equal(H.pauses, 1);
  origin(OK2);
  assert_int_equal(H.requests, 5);
  assert_false(wr_fwd_want_read(H.f));
  origin(OK2);
  assert_int_equal(H.requests, 6);
  /* All input parsed, but four are owed again: reads stay off until one
   * ends (the limit is checked before parsing, input or not). */
  assert_false(wr_fwd_want_read(H.f));
  origin(OK2);
  assert_true(wr_fwd_want_read(H.f));
  origin(OK2 OK2 OK2);
  written();
  assert_int_equal(H.consumed, 6 * strlen(OK2));
  assert_int_equal(state(), WR_FWD_OPEN);
  finish();
}

static void test_upgrade(void **state_) {
  (void)state_;
  start();
  visit("GET /ws HTTP/1.1\r\nHost: app.mesh.test\r\nConnection: Upgrade\r\n"
        "Upgrade: websocket\r\n\r\n");
  assert_true(up_has("Upgrade: websocket\r\n"));
  origin("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\n"
         "Upgrade: websocket\r\n\r\nfrom-origin");
  assert_true(out_has("101 Switching Protocols"));
  assert_true(out_has("from-origin"));
  written();
  assert_int_equal(wr_fwd_deadline(H.f), WR_TSTAMP_NONE); /* raw: no timer */
  visit("from-visitor");
  assert_true(up_has("from-visitor"));
  origin("more");
  assert_true(out_has("more"));
  /* The visitor's half ends: FIN on; the origin's: close once written. */
  wr_fwd_read_eof(H.f, 0, H.now);
  assert_int_equal(H.fins, 1);
  wr_fwd_up_fin(H.f, H.now);
  assert_int_equal(state(), WR_FWD_ENDING);
  assert_int_equal(H.resets, 0);
  written();
  assert_int_equal(state(), WR_FWD_CLOSED);
  finish();

  /* A refused upgrade: the request side goes back to HTTP. */
  start();
  visit("GET /ws HTTP/1.1\r\nHost: app.mesh.test\r\nConnection: Upgrade\r\n"
        "Upgrade: websocket\r\n\r\n");
  origin("HTTP/1.1 400 Bad\r\nContent-Length: 0\r\n\r\n");
  written();
  assert_int_equal(state(), WR_FWD_OPEN);
  visit(GET);
  assert_int_equal(H.requests, 2);
  finish();
}

/* Another node's link upgrade goes to handoff_node (same callback here,
 * counted alike), not to routing. */
static void test_node_handoff(void **state_) {
  (void)state_;
  start();
  visit("GET /_warren/node HTTP/1.1\r\nHost: n2:8080\r\nConnection: "
        "Upgrade\r\nUpgrade: warren-node/1\r\n\r\nNK");
  assert_int_equal(H.handoffs, 1);
  assert_int_equal(H.prelen, 2);
  assert_int_equal(H.opens, 0);
  assert_int_equal(state(), WR_FWD_HANDED_OFF);
  finish();
}

static void test_tunnel_handoff(void **state_) {
  (void)state_;
  start();
  visit("GET /_warren/tunnel HTTP/1.1\r\nHost: n1:8080\r\nConnection: "
        "Upgrade\r\nUpgrade: warren/1\r\n\r\nNOISE");
  assert_int_equal(H.handoffs, 1);
  assert_int_equal(H.prelen, 5);
  assert_memory_equal(H.pre, "NOISE", 5);
  assert_int_equal(H.opens, 0);
  assert_int_equal(state(), WR_FWD_HANDED_OFF);
  assert_false(wr_fwd_want_read(H.f));
  assert_int_equal(wr_fwd_deadline(H.f), WR_TSTAMP_NONE);
  finish();
}

static void test_proxy_header(void **state_) {
  (void)state_;
  start_with(1, 32);
  assert_int_equal(state(), WR_FWD_PROXY);
  visit("PROXY TCP4 192.0.2.7 10.0.0.2 4000 80\r\n" GET);
  assert_int_equal(state(), WR_FWD_OPEN);
  assert_true(up_has("X-Forwarded-For: 192.0.2.7\r\n"));
  finish();

  start_with(1, 32);
  visit(GET); /* no header from a configured LB: closed */
  assert_int_equal(state(), WR_FWD_CLOSED);
  assert_int_equal(H.bad, 1);
  finish();
}

/* ---- the upstream ends, in each state ---- */

static void test_upstream_ends(void **state_) {
  (void)state_;
  /* Refused before any response: 502 saying so. */
  start();
  visit(GET);
  wr_fwd_up_ended(H.f, WR_FWD_END_REFUSED, H.now);
  assert_true(out_has("HTTP/1.1 502 "));
  assert_true(out_has("refused the connection"));
  assert_int_equal(H.resets, 0); /* it ended itself */
  finish();

  /* The link went away before any response. */
  start();
  visit(GET);
  wr_fwd_up_ended(H.f, WR_FWD_END_GONE, H.now);
  assert_true(out_has("went away while the request was in flight"));
  finish();

  /* Reset in the middle of a response: no page can follow, close. */
  start();
  visit(GET);
  origin("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc");
  wr_fwd_up_ended(H.f, WR_FWD_END_RESET, H.now);
  assert_int_equal(state(), WR_FWD_CLOSED);
  assert_false(out_has("502"));
  finish();

  /* Between requests: nothing owed, close. */
  start();
  visit(GET);
  origin(OK2);
  wr_fwd_up_ended(H.f, WR_FWD_END_RESET, H.now);
  assert_int_equal(state(), WR_FWD_CLOSED);
  finish();

  /* FIN before any response.  wr_http_resp_eof() leaves nothing
   * "pending", so this closes without a 502, as proxy_uv.c did before
   * the core (kept byte-for-byte; see the report of issue 11). */
  start();
  visit(GET);
  wr_fwd_up_fin(H.f, H.now);
  assert_int_equal(state(), WR_FWD_CLOSED);
  assert_int_equal(H.outlen, 0);
  finish();

  /* A close-delimited response ends with the origin's FIN. */
  start();
  visit(GET);
  origin("HTTP/1.1 200 OK\r\n\r\nuntil-close");
  wr_fwd_up_fin(H.f, H.now);
  wr_fwd_up_ended(H.f, WR_FWD_END_DONE, H.now);
  assert_int_equal(state(), WR_FWD_ENDING);
  written();
  assert_int_equal(state(), WR_FWD_CLOSED);
  assert_true(out_has("until-close"));
  finish();

  /* Garbage from the origin before a head: 502. */
  start();
  visit(GET);
  origin("SSH-2.0-OpenSSH\r\n\r\n");
  assert_true(out_has("HTTP/1.1 502 "));
  assert_true(out_has("could not parse"));
  finish();
}

/* ---- credit ---- */

static void test_credit(void **state_) {
  (void)state_;
  start();
  H.credit = 0;
  visit("POST / HTTP/1.1\r\nHost: app.mesh.test\r\nContent-Length: 5\r\n\r\n"
        "hello");
  assert_int_equal(H.uplen, 0);
  assert_false(wr_fwd_want_read(H.f));
  /* Credit in dribbles: each writable pushes what fits. */
  while (!up_has("hello")) {
    H.credit = 7;
    wr_fwd_up_writable(H.f, H.now);
  }
  assert_true(wr_fwd_want_read(H.f));
  /* Response credit: returned per write completion, in order. */
  origin("HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nab");
  size_t first = H.unwritten_credit;
  written();
  assert_int_equal(H.consumed, first);
  origin("cd");
  assert_int_equal(H.consumed, first);
  wr_fwd_written(H.f, H.unwritten, H.unwritten_credit, 0, H.now);
  assert_int_equal(H.consumed, first + 2);
  H.unwritten = H.unwritten_credit = 0;
  finish();

  /* Credit of an upstream that ended never reaches anyone. */
  start();
  visit(GET);
  origin("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc");
  wr_fwd_up_ended(H.f, WR_FWD_END_RESET, H.now);
  written();
  assert_int_equal(H.consumed, 0);
  finish();

  /* A failed write closes. */
  start();
  visit(GET);
  origin(OK2);
  wr_fwd_written(H.f, H.unwritten, H.unwritten_credit, -32, H.now);
  assert_int_equal(state(), WR_FWD_CLOSED);
  finish();
}

/* ---- send stalls (issue 11: visitors that never read) ---- */

#define STALL_MS 30000
#define BIG_HEAD "HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n"

/* A visitor that takes none of its response for send_stall_ms is closed
 * and its upstream reset (the credit it held returns); one whose socket
 * keeps taking bytes, however few, is not. */
static void test_send_stall(void **state_) {
  (void)state_;
  start();
  H.cfg.send_stall_ms = STALL_MS;
  visit(GET);
  expect_deadline(UP_MS); /* the origin owes the answer: no stall yet */
  advance(1000);
  origin(BIG_HEAD "part");
  assert_int_equal(wr_fwd_held(H.f), strlen(BIG_HEAD "part"));
  assert_true(wr_fwd_stalled_since(H.f) == H.now);
  expect_deadline(STALL_MS);
  /* Partial progress (the socket took some, the write is not done). */
  for (int i = 0; i < 10; i++) {
    advance(STALL_MS - 1);
    assert_int_equal(state(), WR_FWD_OPEN);
    wr_fwd_send_progress(H.f, H.now);
    expect_deadline(STALL_MS);
  }
  /* A completed write too; then nothing owed: no stall timer. */
  written();
  assert_int_equal(wr_fwd_deadline(H.f), WR_TSTAMP_NONE);
  assert_true(wr_fwd_stalled_since(H.f) == WR_TSTAMP_NONE);
  origin("more");
  expect_deadline(STALL_MS);
  advance(STALL_MS - 1);
  assert_int_equal(state(), WR_FWD_OPEN);
  advance(1);
  assert_int_equal(state(), WR_FWD_CLOSED);
  assert_int_equal(H.stalls, 1);
  assert_int_equal(H.resets, 1);
  finish();

  /* Off (0): a response never taken is never cut by this rule. */
  start();
  visit(GET);
  origin(BIG_HEAD "part");
  assert_int_equal(wr_fwd_deadline(H.f), WR_TSTAMP_NONE);
  finish();
}

/* A WebSocket: idle for ever is fine (nothing owed); frames the visitor
 * takes slowly are fine; frames it stops taking end it after the stall
 * time, counted. */
static void test_send_stall_websocket(void **state_) {
  (void)state_;
  start();
  H.cfg.send_stall_ms = STALL_MS;
  visit("GET /ws HTTP/1.1\r\nHost: app.mesh.test\r\nConnection: Upgrade\r\n"
        "Upgrade: websocket\r\n\r\n");
  origin("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\n"
         "Upgrade: websocket\r\n\r\n");
  written();
  assert_int_equal(wr_fwd_deadline(H.f), WR_TSTAMP_NONE);
  H.now += 10 * STALL_MS; /* an hour of silence both ways */
  wr_fwd_tick(H.f, H.now);
  assert_int_equal(state(), WR_FWD_OPEN);
  for (int i = 0; i < 20; i++) {
    origin("frame");
    advance(STALL_MS / 2);
    written();
    advance(STALL_MS / 2);
  }
  assert_int_equal(state(), WR_FWD_OPEN);
  assert_int_equal(H.stalls, 0);
  origin("frame");
  advance(STALL_MS);
  assert_int_equal(state(), WR_FWD_CLOSED);
  assert_int_equal(H.stalls, 1);
  finish();
}

/* The ingress sheds a stalled connection whose link needs the credit. */
static void test_shed(void **state_) {
  (void)state_;
  start();
  visit(GET);
  assert_ptr_equal(wr_fwd_upstream_of(H.f), &H);
  origin(BIG_HEAD "part");
  advance(2000);
  wr_fwd_shed(H.f, H.now);
  assert_int_equal(state(), WR_FWD_CLOSED);
  assert_int_equal(H.sheds, 1);
  assert_int_equal(H.resets, 1);
  assert_int_equal(wr_fwd_held(H.f), 0);
  assert_null(wr_fwd_upstream_of(H.f));
  finish();
}

/* A slow body is timed even while its own response streams (an origin
 * that answers as it reads): no 408 can follow a response, so the stream
 * is reset and the connection ends, counted (issue 11). */
static void test_body_timeout_answered(void **state_) {
  (void)state_;
  start();
  visit("POST / HTTP/1.1\r\nHost: app.mesh.test\r\nContent-Length: 10\r\n\r\n"
        "hello");
  origin("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n");
  written();
  expect_deadline(IDLE_MS);
  advance(IDLE_MS - 1);
  visit("wo");
  expect_deadline(IDLE_MS);
  advance(IDLE_MS);
  assert_int_equal(H.body_answered, 1);
  assert_int_equal(H.resets, 1);
  assert_false(out_has("408"));
  assert_true(state() == WR_FWD_LINGER || state() == WR_FWD_CLOSED);
  finish();
}

/* ---- draining ---- */

/* The node drains while a request is in flight: its response and every
 * later one say "Connection: close", the connection ends once the answer
 * is written, and nothing in flight is cut. */
static void test_drain_in_flight(void **state_) {
  (void)state_;
  start();
  assert_int_equal(wr_fwd_busy(H.f), 0); /* a new, silent connection */
  visit(GET);
  assert_int_equal(wr_fwd_busy(H.f), 1);
  wr_fwd_drain(H.f, H.now);
  wr_fwd_drain(H.f, H.now); /* idempotent */
  assert_int_equal(state(), WR_FWD_OPEN);
  origin(OK2);
  assert_true(out_has("HTTP/1.1 200 OK\r\n"));
  assert_true(out_has("Connection: close\r\n"));
  assert_true(out_has("\r\n\r\nhi"));
  assert_int_equal(wr_fwd_busy(H.f), 1); /* not written yet */
  written();
  assert_int_equal(state(), WR_FWD_CLOSED);
  assert_int_equal(wr_fwd_busy(H.f), 0);
  assert_int_equal(H.r502, 0);
  finish();
}

/* A keep-alive connection between requests is idle (the node may close
 * it); its next request after the drain is answered with close, and a
 * request pipelined behind it is not forwarded. */
static void test_drain_keep_alive(void **state_) {
  (void)state_;
  start();
  visit(GET);
  origin(OK2);
  written();
  assert_false(out_has("Connection: close"));
  assert_int_equal(wr_fwd_busy(H.f), 0);
  wr_fwd_drain(H.f, H.now);
  assert_int_equal(state(), WR_FWD_OPEN);
  visit(GET GET);
  assert_int_equal(wr_fwd_busy(H.f), 1);
  origin(OK2);
  written();
  assert_true(out_has("Connection: close\r\n"));
  assert_int_equal(H.requests, 2); /* the pipelined third never went */
  assert_int_equal(state(), WR_FWD_CLOSED);
  finish();
}

/* An upstream that says it is not reusable (its node link drains) is let
 * go once its response ends; the next request opens a new one, and the
 * visitor's connection stays open throughout. */
static void test_upstream_not_reusable(void **state_) {
  (void)state_;
  start();
  visit(GET);
  assert_int_equal(H.opens, 1);
  H.not_reusable = 1;
  origin(OK2);
  assert_int_equal(H.detaches, 1);
  assert_int_equal(state(), WR_FWD_OPEN);
  written();
  assert_false(out_has("Connection: close"));
  H.not_reusable = 0;
  visit(GET);
  assert_int_equal(H.opens, 2);
  origin(OK2);
  written();
  assert_int_equal(H.requests, 2);
  assert_int_equal(state(), WR_FWD_OPEN);
  /* The first answer's credit is not paid to anyone: its upstream was
   * detached (stale credit), and the second must not get it. */
  assert_int_equal(H.consumed, strlen(OK2));
  /* With a second request already owed, the upstream is kept. */
  H.not_reusable = 1;
  visit(GET GET);
  origin(OK2);
  assert_int_equal(H.detaches, 1);
  origin(OK2);
  assert_int_equal(H.detaches, 2);
  written();
  assert_int_equal(state(), WR_FWD_OPEN);
  finish();
}

/* Every allocation the core makes may fail: wr_fwd_new says so and
 * leaves nothing behind; a failing read buffer is WR_ERR_NOMEM. */
static void test_failmalloc(void **state_) {
  (void)state_;
  start();
  wr_fwd_del(H.f);
  H.f = NULL;
  int ok = 0;
  for (long k = 1; k < 200 && !ok; k++) {
    failmalloc fm;
    failmalloc_init(&fm, k);
    wr_fwd *f = NULL;
    int rv = wr_fwd_new(&f, &H.cfg, &H, "p", "10.0.0.1", 0, &fm.mem, H.now);
    if (rv != 0) {
      assert_int_equal(rv, WR_ERR_NOMEM);
      assert_int_equal(fm.live, 0);
      continue;
    }
    /* The rest of the allocations come from the read buffer. */
    uint8_t *p;
    size_t cap;
    rv = wr_fwd_read_buf(f, &p, &cap);
    assert_true(rv == 0 || rv == WR_ERR_NOMEM);
    ok = rv == 0;
    wr_fwd_del(f);
    assert_int_equal(fm.live, 0);
  }
  assert_true(ok);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_keep_alive),
      cmocka_unit_test(test_close_request),
      cmocka_unit_test(test_no_route),
      cmocka_unit_test(test_bad_request_and_421),
      cmocka_unit_test(test_head_timeout),
      cmocka_unit_test(test_origin_timeout),
      cmocka_unit_test(test_send_timeout),
      cmocka_unit_test(test_body_timeout),
      cmocka_unit_test(test_body_rate),
      cmocka_unit_test(test_pipelining),
      cmocka_unit_test(test_upgrade),
      cmocka_unit_test(test_tunnel_handoff),
      cmocka_unit_test(test_node_handoff),
      cmocka_unit_test(test_proxy_header),
      cmocka_unit_test(test_upstream_ends),
      cmocka_unit_test(test_credit),
      cmocka_unit_test(test_send_stall),
      cmocka_unit_test(test_send_stall_websocket),
      cmocka_unit_test(test_shed),
      cmocka_unit_test(test_body_timeout_answered),
      cmocka_unit_test(test_drain_in_flight),
      cmocka_unit_test(test_drain_keep_alive),
      cmocka_unit_test(test_upstream_not_reusable),
      cmocka_unit_test(test_failmalloc),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
