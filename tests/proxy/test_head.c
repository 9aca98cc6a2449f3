/*
 * Tests for src/proxy/head.c: the request policy and the response framing.
 *
 * Every input goes through run_req()/run_resp(), which feed it whole, split
 * at every offset, and byte by byte, drain events the way http.h says, and
 * render them as a transcript (BODY and RAW spans joined per message).  All
 * renderings must be identical; the tests then assert on the transcript.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "failmalloc.h"
#include "warren/err.h"
#include "warren/http.h"

#define OUT_CAP (1 << 20)

typedef struct tr {
  char *s;
  size_t len;
  char pend;       /* 'B' or 'R' while joining body/raw spans */
  size_t pend_len; /* where the pending BODY/RAW line starts */
  int n_err;
} tr;

static void tr_add(tr *t, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(t->s + t->len, OUT_CAP - t->len, fmt, ap);
  va_end(ap);
  assert_true(n >= 0 && t->len + (size_t)n < OUT_CAP);
  t->len += (size_t)n;
}

static void tr_bytes(tr *t, const uint8_t *p, size_t n) {
  assert_true(t->len + n < OUT_CAP);
  memcpy(t->s + t->len, p, n);
  t->len += n;
  t->s[t->len] = '\0';
}

static void tr_flush(tr *t) {
  if (t->pend) tr_add(t, "]\n");
  t->pend = 0;
}

/* Rendering one event; spans of the same kind are joined. */
static void tr_event(tr *t, const wr_http_ev *ev) {
  char k = ev->type == WR_HTTP_EV_BODY  ? 'B'
           : ev->type == WR_HTTP_EV_RAW ? 'R'
                                        : 0;
  if (k && t->pend == k) {
    tr_bytes(t, ev->data, ev->len);
    return;
  }
  /* How much body got out before an error depends on the splits; the
   * error itself must not. */
  if (ev->type == WR_HTTP_EV_ERROR && t->pend == 'B') {
    t->len = t->pend_len;
    t->s[t->len] = '\0';
    t->pend = 0;
  }
  tr_flush(t);
  switch (ev->type) {
  case WR_HTTP_EV_HEAD:
    tr_add(t, "HEAD name=%s host=%s rid=%s mh=%d exp=%d up=%d ka=%d st=%d\n",
           ev->name ? ev->name : "-", ev->host ? ev->host : "-",
           ev->request_id ? ev->request_id : "-", ev->method_head,
           ev->expect_continue, ev->upgrade, ev->keep_alive, ev->status);
    tr_bytes(t, ev->data, ev->len);
    break;
  case WR_HTTP_EV_BODY:
  case WR_HTTP_EV_RAW:
    t->pend_len = t->len;
    tr_add(t, "%s[", k == 'B' ? "BODY" : "RAW");
    tr_bytes(t, ev->data, ev->len);
    t->pend = k;
    break;
  case WR_HTTP_EV_END:
    tr_add(t, "END ka=%d\n", ev->keep_alive);
    break;
  case WR_HTTP_EV_UPGRADE:
    tr_add(t, "UPGRADE\n");
    break;
  case WR_HTTP_EV_ERROR:
    tr_add(t, "ERROR %d %s\n", ev->status, ev->reason ? ev->reason : "?");
    t->n_err++;
    break;
  default:
    fail_msg("unexpected event %d", ev->type);
  }
}

static const wr_http_req_config base_cfg = {
    .domain = "localhost",
    .client_addr = "192.0.2.7",
    .proto = "http",
    .max_head = 32768,
};

/* Hooks so one test can poke the parser between events. */
typedef void (*req_hook)(wr_http_req *h, const wr_http_ev *ev);

/*
 * Feeds |in| to a fresh request parser in pieces ending at the offsets in
 * |cuts| (ncuts of them), draining after each piece.  The buffer handed to
 * feed is a fresh heap copy of exactly the piece, so ASan catches any
 * read outside it or any view kept past the call.
 */
static char *req_once(const wr_http_req_config *cfg, const uint8_t *in,
                      size_t len, const size_t *cuts, size_t ncuts,
                      req_hook hook) {
  wr_http_req *h;
  assert_int_equal(wr_http_req_new(&h, cfg, NULL), 0);
  tr t = {.s = calloc(1, OUT_CAP)};
  size_t start = 0;
  for (size_t c = 0; c <= ncuts; c++) {
    size_t end = c < ncuts ? cuts[c] : len;
    size_t n = end - start;
    uint8_t *piece = malloc(n ? n : 1);
    memcpy(piece, in + start, n);
    const uint8_t *p = piece;
    size_t left = n;
    for (int guard = 0;; guard++) {
      assert_true(guard < 100000);
      wr_http_ev ev;
      wr_ssize r = wr_http_req_feed(h, p, left, &ev);
      assert_true(r >= 0);
      assert_true((size_t)r <= left);
      if (ev.type == WR_HTTP_EV_BODY || ev.type == WR_HTTP_EV_RAW) {
        assert_ptr_equal(ev.data, p);
        assert_int_equal(ev.len, (size_t)r);
      }
      p += r;
      left -= (size_t)r;
      if (ev.type == WR_HTTP_EV_NONE) {
        assert_int_equal(left, 0);
        break;
      }
      tr_event(&t, &ev);
      if (hook) hook(h, &ev);
      assert_true(wr_http_req_buffered(h) <= cfg->max_head);
    }
    free(piece);
    start = end;
  }
  tr_flush(&t);
  wr_http_req_del(h);
  return t.s;
}

/* Whole, every single split, byte by byte: one transcript. */
static char *run_req_cfg(const wr_http_req_config *cfg, const char *in,
                         size_t len, req_hook hook) {
  char *whole = req_once(cfg, (const uint8_t *)in, len, NULL, 0, hook);
  for (size_t cut = 1; cut < len; cut++) {
    char *s = req_once(cfg, (const uint8_t *)in, len, &cut, 1, hook);
    if (strcmp(s, whole) != 0)
      fail_msg("split at %zu differs:\n%s\n--- whole:\n%s", cut, s, whole);
    free(s);
  }
  if (len > 1 && len < 4096) {
    size_t *cuts = malloc(len * sizeof(*cuts));
    for (size_t i = 0; i + 1 < len; i++) cuts[i] = i + 1;
    char *s = req_once(cfg, (const uint8_t *)in, len, cuts, len - 1, hook);
    if (strcmp(s, whole) != 0)
      fail_msg("byte by byte differs:\n%s\n--- whole:\n%s", s, whole);
    free(s);
    free(cuts);
  }
  return whole;
}

static char *run_req(const char *in) {
  return run_req_cfg(&base_cfg, in, strlen(in), NULL);
}

#define HAS(s, sub)                                                            \
  do {                                                                         \
    if (!strstr((s), (sub))) fail_msg("missing <%s> in:\n%s", (sub), (s));     \
  } while (0)
#define HASNT(s, sub)                                                          \
  do {                                                                         \
    if (strstr((s), (sub))) fail_msg("unexpected <%s> in:\n%s", (sub), (s));   \
  } while (0)

static void expect_req_error(const char *in, int status, const char *why) {
  char *s = run_req(in);
  char want[64];
  snprintf(want, sizeof(want), "ERROR %d ", status);
  HAS(s, want);
  if (why) HAS(s, why);
  HASNT(s, "HEAD");
  free(s);
}

/* ---- request tests ------------------------------------------------------ */

static void test_simple_get(void **state) {
  (void)state;
  char *s = run_req("GET /x?y=1 HTTP/1.1\r\nHost: App.LocalHost:8080\r\n"
                    "User-Agent: t\r\ntraceparent: 00-abc-def-01\r\n\r\n");
  const char *want =
      "HEAD name=app host=App.LocalHost:8080 "
      "rid=00000000000000000000000000000001 mh=0 exp=0 up=0 ka=1 st=0\n"
      "GET /x?y=1 HTTP/1.1\r\n"
      "Host: App.LocalHost:8080\r\n"
      "User-Agent: t\r\n"
      "traceparent: 00-abc-def-01\r\n"
      "X-Forwarded-For: 192.0.2.7\r\n"
      "X-Forwarded-Proto: http\r\n"
      "X-Forwarded-Host: App.LocalHost:8080\r\n"
      "X-Request-Id: 00000000000000000000000000000001\r\n"
      "\r\n"
      "END ka=1\n";
  assert_string_equal(s, want);
  free(s);
}

/* Every kept line comes out as "Name: value\r\n", whatever its spacing,
 * in order, with dropped fields between (put_fields), at every split;
 * and a name with whitespace before the colon is refused at any length
 * (has_ws looks at eight bytes at a time). */
static void test_field_runs(void **state) {
  (void)state;
  char *s = run_req("GET / HTTP/1.1\r\nHost: app.localhost\r\nA: 1\r\n"
                    "B:2\r\nC: \t3 \r\nD: 4\r\nConnection: close, E\r\n"
                    "E: x\r\nF: 5\r\nG:\r\nH: 6\r\nKeep-Alive: 1\r\n"
                    "I: 7\r\nJ:  8\r\n\r\n");
  const char *want =
      "HEAD name=app host=app.localhost "
      "rid=00000000000000000000000000000001 mh=0 exp=0 up=0 ka=0 st=0\n"
      "GET / HTTP/1.1\r\n"
      "Host: app.localhost\r\n"
      "A: 1\r\n"
      "B: 2\r\n"
      "C: 3\r\n"
      "D: 4\r\n"
      "F: 5\r\n"
      "G: \r\n"
      "H: 6\r\n"
      "I: 7\r\n"
      "J: 8\r\n"
      "X-Forwarded-For: 192.0.2.7\r\n"
      "X-Forwarded-Proto: http\r\n"
      "X-Forwarded-Host: app.localhost\r\n"
      "X-Request-Id: 00000000000000000000000000000001\r\n"
      "Connection: close\r\n"
      "\r\n"
      "END ka=0\n";
  assert_string_equal(s, want);
  free(s);
  static const char *const bad[] = {
      "Host : x\r\n", "X-Long-Name-Here :y\r\n", "Abcdefg :y\r\n",
      "Abcdefgh :y\r\n", "Abcdefghijklmno :y\r\n", "A :y\r\n"};
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    char in[256];
    snprintf(in, sizeof in, "GET / HTTP/1.1\r\nHost: app.localhost\r\n%s\r\n",
             bad[i]);
    expect_req_error(in, 400, "whitespace in or after a header field name");
  }
}

static void test_names(void **state) {
  (void)state;
  static const struct {
    const char *host, *name;
  } cases[] = {
      {"app.localhost", "app"},
      {"APP.localhost:1", "app"},
      {"app.localhost.", "app"},
      {"a-1.localhost", "a-1"},
      {"localhost", "-"},
      {"localhost:8080", "-"},
      {"a.b.localhost", "-"},
      {"app.otherhost", "-"},
      {"app.xlocalhost", "-"},
      {"-a.localhost", "-"},
      {"a-.localhost", "-"},
      {"a_b.localhost", "-"},
      {".localhost", "-"},
      {"127.0.0.1:8080", "-"},
      {"[::1]:8080", "-"},
      {"a234567890123456789012345678901234567890123456789012345678901234"
       ".localhost",
       "-"},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    char in[256], want[256];
    snprintf(in, sizeof(in), "GET / HTTP/1.1\r\nHost: %s\r\n\r\n",
             cases[i].host);
    snprintf(want, sizeof(want), "HEAD name=%s host=%s ", cases[i].name,
             cases[i].host);
    char *s = run_req_cfg(&base_cfg, in, strlen(in), NULL);
    HAS(s, want);
    free(s);
  }
  /* The configured domain is matched case-insensitively, dots trimmed. */
  wr_http_req_config cfg = base_cfg;
  cfg.domain = ".Mesh.Test.";
  const char *in = "GET / HTTP/1.1\r\nHost: web.mesh.test\r\n\r\n";
  char *s = run_req_cfg(&cfg, in, strlen(in), NULL);
  HAS(s, "HEAD name=web host=web.mesh.test ");
  free(s);
}

static void test_host_errors(void **state) {
  (void)state;
  expect_req_error("GET / HTTP/1.1\r\n\r\n", 400, "missing Host");
  expect_req_error("GET / HTTP/1.0\r\n\r\n", 400, "missing Host");
  expect_req_error("GET / HTTP/1.1\r\nHost: a.localhost\r\n"
                   "Host: b.localhost\r\n\r\n",
                   400, "more than one Host");
  expect_req_error("GET / HTTP/1.1\r\nHost: a b\r\n\r\n", 400, "invalid Host");
  expect_req_error("GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", 400, "invalid Host");
  expect_req_error("GET / HTTP/1.1\r\nHost: a:12x\r\n\r\n", 400,
                   "invalid Host");
  expect_req_error("GET / HTTP/1.1\r\nHost:\r\n\r\n", 400, "invalid Host");
}

static void test_absolute_form(void **state) {
  (void)state;
  char *s = run_req("GET http://App.localhost:8080/p?q HTTP/1.1\r\n"
                    "Host: ignored.localhost\r\n\r\n");
  HAS(s, "HEAD name=app host=App.localhost:8080 ");
  HAS(s, "GET /p?q HTTP/1.1\r\nHost: App.localhost:8080\r\n");
  HAS(s, "X-Forwarded-Host: App.localhost:8080\r\n");
  HASNT(s, "ignored");
  free(s);
  s = run_req("GET http://app.localhost HTTP/1.0\r\n\r\n");
  HAS(s, "GET / HTTP/1.0\r\nHost: app.localhost\r\n");
  HAS(s, "name=app");
  free(s);
  expect_req_error("GET http://u@app.localhost/ HTTP/1.1\r\nHost: x\r\n\r\n",
                   400, "user info");
  expect_req_error("GET ftp://app.localhost/ HTTP/1.1\r\nHost: x\r\n\r\n", 400,
                   NULL);
}

static void test_hop_by_hop(void **state) {
  (void)state;
  char *s =
      run_req("GET / HTTP/1.1\r\nHost: app.localhost\r\n"
              "Connection: keep-alive, X-Secret, Content-Length\r\n"
              "Keep-Alive: timeout=5\r\nProxy-Connection: keep-alive\r\n"
              "Proxy-Authorization: Basic abc\r\nProxy: http://evil\r\n"
              "TE: trailers\r\nTrailer: X-T\r\nUpgrade: h2c\r\nX-Secret: 1\r\n"
              "X-Other: 2\r\nContent-Length: 0\r\n\r\n");
  HASNT(s, "Connection");
  HASNT(s, "Keep-Alive");
  HASNT(s, "Proxy");
  HASNT(s, "TE:");
  HASNT(s, "Trailer");
  HASNT(s, "Upgrade");
  HASNT(s, "X-Secret");
  HAS(s, "X-Other: 2\r\n");
  /* Framing is never stripped, even when Connection names it. */
  HAS(s, "Content-Length: 0\r\n");
  HAS(s, "up=0 ka=1");
  free(s);
}

static void test_forwarded_headers(void **state) {
  (void)state;
  char *s = run_req("GET / HTTP/1.1\r\nHost: app.localhost\r\n"
                    "X-Forwarded-For: 10.0.0.1\r\n"
                    "X-Forwarded-Proto: https\r\n"
                    "X-Forwarded-Host: spoofed\r\n"
                    "x-forwarded-for: 10.0.0.2 \r\n"
                    "X-Request-Id: abc-123\r\n\r\n");
  HAS(s, "X-Forwarded-For: 10.0.0.1, 10.0.0.2, 192.0.2.7\r\n");
  HAS(s, "X-Forwarded-Proto: http\r\n");
  HAS(s, "X-Forwarded-Host: app.localhost\r\n");
  HASNT(s, "https");
  HASNT(s, "spoofed");
  HAS(s, "rid=abc-123 ");
  HAS(s, "X-Request-Id: abc-123\r\n");
  /* Only one X-Request-Id line. */
  assert_ptr_equal(strstr(strstr(s, "X-Request-Id") + 1, "X-Request-Id"), NULL);
  free(s);
  /* An unusable incoming id is replaced. */
  s = run_req("GET / HTTP/1.1\r\nHost: app.localhost\r\n"
              "X-Request-Id: has space\r\n\r\n");
  HASNT(s, "has space");
  HAS(s, "rid=00000000000000000000000000000001");
  free(s);
}

static void fixed_rand(uint8_t *dst, size_t len, void *ud) {
  (void)ud;
  for (size_t i = 0; i < len; i++) dst[i] = (uint8_t)(0xa0 + i);
}

static void test_request_id_rand(void **state) {
  (void)state;
  wr_http_req_config cfg = base_cfg;
  cfg.rand = fixed_rand;
  cfg.proto = "https";
  cfg.client_addr = NULL;
  const char *in = "GET / HTTP/1.1\r\nHost: app.localhost\r\n\r\n";
  char *s = run_req_cfg(&cfg, in, strlen(in), NULL);
  HAS(s, "X-Request-Id: a0a1a2a3a4a5a6a7a8a9aaabacadaeaf\r\n");
  HAS(s, "X-Forwarded-Proto: https\r\n");
  HASNT(s, "X-Forwarded-For");
  free(s);
}

static void test_keep_alive_semantics(void **state) {
  (void)state;
  char *s = run_req("GET / HTTP/1.0\r\nHost: app.localhost\r\n\r\n");
  HAS(s, "ka=0");
  HAS(s, "Connection: close\r\n");
  HAS(s, "END ka=0\n");
  free(s);
  s = run_req("GET / HTTP/1.0\r\nHost: app.localhost\r\n"
              "Connection: keep-alive\r\n\r\n"
              "GET /2 HTTP/1.0\r\nHost: app.localhost\r\n\r\n");
  HAS(s, "Connection: keep-alive\r\n");
  HAS(s, "GET /2 HTTP/1.0");
  free(s);
  /* After Connection: close nothing more is parsed. */
  s = run_req("GET / HTTP/1.1\r\nHost: app.localhost\r\nConnection: close"
              "\r\n\r\nGET /2 HTTP/1.1\r\nHost: app.localhost\r\n\r\n");
  HAS(s, "Connection: close\r\n");
  HAS(s, "END ka=0\n");
  HASNT(s, "GET /2");
  free(s);
}

static void test_pipelined_bodies(void **state) {
  (void)state;
  char *s = run_req(
      "POST /a HTTP/1.1\r\nHost: app.localhost\r\nContent-Length: 5\r\n\r\n"
      "hello"
      "POST /b HTTP/1.1\r\nHost: app.localhost\r\n"
      "Transfer-Encoding: chunked\r\n\r\n"
      "5;ext=1\r\nworld\r\n0\r\nX-Trailer: t\r\n\r\n"
      "HEAD /c HTTP/1.1\r\nHost: b.localhost\r\n\r\n"
      "GET /d HTTP/1.1\r\nHost: c.localhost\r\nContent-Length: 0\r\n\r\n");
  const char *b1 = strstr(s, "BODY[hello]\nEND ka=1\n");
  const char *b2 = strstr(
      s, "BODY[5;ext=1\r\nworld\r\n0\r\nX-Trailer: t\r\n\r\n]\nEND ka=1\n");
  const char *h3 = strstr(s, "HEAD name=b host=b.localhost "
                             "rid=00000000000000000000000000000003 mh=1");
  const char *h4 = strstr(s, "HEAD name=c ");
  assert_non_null(b1);
  assert_non_null(b2);
  assert_non_null(h3);
  assert_non_null(h4);
  assert_true(b1 < b2 && b2 < h3 && h3 < h4);
  HAS(s, "Transfer-Encoding: chunked\r\n");
  HAS(s, "Content-Length: 5\r\n");
  /* Four heads, four ENDs. */
  int heads = 0, ends = 0;
  for (const char *p = s; (p = strstr(p, "HEAD name=")); p++) heads++;
  for (const char *p = s; (p = strstr(p, "END ka=1\n")); p++) ends++;
  assert_int_equal(heads, 4);
  assert_int_equal(ends, 4);
  free(s);
}

static void test_expect_continue(void **state) {
  (void)state;
  char *s = run_req("PUT / HTTP/1.1\r\nHost: app.localhost\r\n"
                    "Expect: 100-Continue\r\nContent-Length: 2\r\n\r\nok");
  HAS(s, "exp=1");
  HAS(s, "Expect: 100-Continue\r\n");
  HAS(s, "BODY[ok]\nEND");
  free(s);
}

static void test_smuggling_rejected(void **state) {
  (void)state;
  const char *h = "POST / HTTP/1.1\r\nHost: app.localhost\r\n";
  char in[512];
#define REJ(extra, status, why)                                                \
  do {                                                                         \
    snprintf(in, sizeof(in), "%s%s", h, extra);                                \
    expect_req_error(in, status, why);                                         \
  } while (0)
  REJ("Content-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n", 400, NULL);
  REJ("Transfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n", 400, NULL);
  REJ("Content-Length: 3\r\nContent-Length: 3\r\n\r\nabc", 400, NULL);
  REJ("Content-Length: 3\r\nContent-Length: 4\r\n\r\nabc", 400, NULL);
  REJ("Content-Length: 3, 3\r\n\r\nabc", 400, NULL);
  REJ("Content-Length: +3\r\n\r\nabc", 400, NULL);
  REJ("Transfer-Encoding: gzip\r\n\r\n", 400, "Transfer-Encoding");
  REJ("Transfer-Encoding: gzip, chunked\r\n\r\n", 400, "Transfer-Encoding");
  REJ("Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", 400,
      NULL);
  REJ("X-A: b\r\n c\r\n\r\n", 400, "folding");
  REJ("X-A:\r\n c\r\n\r\n", 400, "folding");
  REJ("X-A: b\r\n\tc\r\n\r\n", 400, "folding");
  REJ("X-A : b\r\n\r\n", 400, "whitespace");
  REJ(": b\r\n\r\n", 400, "empty header");
  REJ("X-A: b\x01\r\n\r\n", 400, NULL);
  REJ("X-A: b\rc\r\n\r\n", 400, NULL);
  REJ("X-A: b\nX-B: c\r\n\r\n", 400, NULL);
  REJ("X-A: b\r\n\n", 400, "CRLF");
  REJ("X\x7f: b\r\n\r\n", 400, NULL);
#undef REJ
  expect_req_error("GET / HTTP/1.1\nHost: app.localhost\r\n\r\n", 400, "CRLF");
  expect_req_error("POST / HTTP/1.0\r\nHost: app.localhost\r\n"
                   "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
                   400, "HTTP/1.0");
}

static void test_bad_chunks(void **state) {
  (void)state;
  const char *h = "POST / HTTP/1.1\r\nHost: app.localhost\r\n"
                  "Transfer-Encoding: chunked\r\n\r\n";
  static const char *bad[] = {
      "zz\r\n",
      "5\nhello\r\n0\r\n\r\n",
      "5 \r\nhello\r\n0\r\n\r\n",
      "5\r\nhello\n0\r\n\r\n",
      "5\r\nhelloX0\r\n\r\n",
      "fffffffffffffffffff\r\n",
      "-1\r\n",
      "0\r\n\n",
      "0\r\nX: 1\r\n\n",
      "0\r\nX: 1\r\n 2\r\n\r\n",
      "0\r\nX : 1\r\n\r\n",
      "5;a=b\nhello\r\n0\r\n\r\n",
  };
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    char in[512];
    snprintf(in, sizeof(in), "%s%s", h, bad[i]);
    char *s = run_req(in);
    /* The head was fine and forwarded; then the body framing failed. */
    HAS(s, "HEAD name=app");
    HAS(s, "ERROR 400 ");
    HASNT(s, "END");
    free(s);
  }
}

static void test_garbage(void **state) {
  (void)state;
  expect_req_error("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 400, NULL);
  expect_req_error("SSH-2.0-OpenSSH_9.2\r\n", 400, NULL);
  expect_req_error("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 400, "HTTP/2");
  expect_req_error("GET / HTTP/2.0\r\nHost: app.localhost\r\n\r\n", 400,
                   "HTTP/1.0 and HTTP/1.1");
  expect_req_error("GET / HTTP/0.9\r\nHost: app.localhost\r\n\r\n", 400, NULL);
  expect_req_error("GET / HTTP/1.2\r\nHost: app.localhost\r\n\r\n", 400, NULL);
  expect_req_error("GET /a b HTTP/1.1\r\nHost: app.localhost\r\n\r\n", 400,
                   NULL);
  expect_req_error("CONNECT app.localhost:443 HTTP/1.1\r\n"
                   "Host: app.localhost\r\n\r\n",
                   405, "CONNECT");
  /* Errors are final: later bytes are swallowed without events. */
  char *s = run_req("BAD\r\n\r\nGET / HTTP/1.1\r\nHost: a.localhost\r\n\r\n");
  assert_int_equal(strncmp(s, "ERROR 400", 9), 0);
  HASNT(s, "HEAD");
  free(s);
}

static void test_head_limit(void **state) {
  (void)state;
  wr_http_req_config cfg = base_cfg;
  cfg.max_head = 256;
  /* 255 bytes: fits. */
  char in[600];
  const char *pre = "GET / HTTP/1.1\r\nHost: app.localhost\r\nX: ";
  size_t pl = strlen(pre);
  memset(in, 0, sizeof(in));
  memcpy(in, pre, pl);
  memset(in + pl, 'a', 255 - pl - 4);
  memcpy(in + 255 - 4, "\r\n\r\n", 4);
  char *s = run_req_cfg(&cfg, in, 255, NULL);
  HAS(s, "HEAD name=app");
  free(s);
  /* 257 bytes: 431. */
  memset(in + pl, 'a', 257 - pl - 4);
  memcpy(in + 257 - 4, "\r\n\r\n", 4);
  s = run_req_cfg(&cfg, in, 257, NULL);
  HAS(s, "ERROR 431 ");
  HASNT(s, "HEAD");
  free(s);
  /* Too many fields. */
  char *many = malloc(20000);
  size_t n = (size_t)sprintf(many, "GET / HTTP/1.1\r\nHost: app.localhost\r\n");
  for (int i = 0; i < 600; i++) n += (size_t)sprintf(many + n, "a:\r\n");
  n += (size_t)sprintf(many + n, "\r\n");
  char *t = req_once(&base_cfg, (const uint8_t *)many, n, NULL, 0, NULL);
  HAS(t, "ERROR 431 ");
  free(t);
  free(many);
}

/* A 1 MiB header line: 431 while at most max_head bytes are buffered. */
static void test_huge_header_line(void **state) {
  (void)state;
  size_t len = 1 << 20;
  uint8_t *in = malloc(len);
  const char *pre = "GET / HTTP/1.1\r\nHost: app.localhost\r\nX-Big: ";
  memset(in, 'b', len);
  memcpy(in, pre, strlen(pre));
  wr_http_req *h;
  assert_int_equal(wr_http_req_new(&h, &base_cfg, NULL), 0);
  size_t off = 0, maxbuf = 0;
  int got = 0;
  while (off < len && !got) {
    size_t n = WR_MIN((size_t)1000, len - off);
    const uint8_t *p = in + off;
    size_t left = n;
    for (;;) {
      wr_http_ev ev;
      wr_ssize r = wr_http_req_feed(h, p, left, &ev);
      assert_true(r >= 0);
      p += r;
      left -= (size_t)r;
      maxbuf = WR_MAX(maxbuf, wr_http_req_buffered(h));
      if (ev.type == WR_HTTP_EV_ERROR) {
        assert_int_equal(ev.status, 431);
        got = 1;
        break;
      }
      assert_int_equal(ev.type, WR_HTTP_EV_NONE);
      break;
    }
    off += n;
  }
  assert_true(got);
  assert_true(off <= 33 * 1024);
  assert_true(maxbuf > 0 && maxbuf < 32768);
  wr_http_req_del(h);
  /* Whole in one feed: refused without copying. */
  assert_int_equal(wr_http_req_new(&h, &base_cfg, NULL), 0);
  wr_http_ev ev;
  wr_ssize r = wr_http_req_feed(h, in, len, &ev);
  assert_int_equal(ev.type, WR_HTTP_EV_ERROR);
  assert_int_equal(ev.status, 431);
  assert_int_equal((size_t)r, len);
  assert_int_equal(wr_http_req_buffered(h), 0);
  wr_http_req_del(h);
  free(in);
}

static void refuse_on_upgrade(wr_http_req *h, const wr_http_ev *ev) {
  if (ev->type == WR_HTTP_EV_UPGRADE)
    assert_int_equal(wr_http_req_upgrade_refused(h), 0);
}

static void test_upgrade(void **state) {
  (void)state;
  const char *in = "GET /ws HTTP/1.1\r\nHost: app.localhost\r\n"
                   "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                   "Sec-WebSocket-Key: x\r\n\r\n\x81\x05hello";
  char *s = run_req(in);
  HAS(s, "up=1 ka=1");
  HAS(s, "Upgrade: websocket\r\n");
  HAS(s, "Connection: upgrade\r\n");
  HAS(s, "\r\n\r\nEND ka=1\nUPGRADE\nRAW[\x81\x05hello]\n");
  free(s);
  /* Refused: back to HTTP for the bytes that follow. */
  const char *in2 = "GET /ws HTTP/1.1\r\nHost: app.localhost\r\n"
                    "Upgrade: websocket\r\nConnection: Upgrade\r\n\r\n"
                    "GET /next HTTP/1.1\r\nHost: app.localhost\r\n\r\n";
  s = run_req_cfg(&base_cfg, in2, strlen(in2), refuse_on_upgrade);
  HAS(s, "UPGRADE\nHEAD name=app");
  HAS(s, "GET /next HTTP/1.1\r\n");
  HASNT(s, "RAW");
  free(s);
  /* Upgrade header without Connection: upgrade is not an upgrade. */
  s = run_req("GET / HTTP/1.1\r\nHost: app.localhost\r\nUpgrade: x\r\n\r\n");
  HAS(s, "up=0");
  HASNT(s, "Upgrade");
  HASNT(s, "UPGRADE");
  free(s);
  /* With a body: the body, END, then UPGRADE. */
  s = run_req("POST / HTTP/1.1\r\nHost: app.localhost\r\nUpgrade: h2c\r\n"
              "Connection: Upgrade, HTTP2-Settings\r\nHTTP2-Settings: x\r\n"
              "Content-Length: 3\r\n\r\nabcRAWBYTES");
  HAS(s, "BODY[abc]\nEND ka=1\nUPGRADE\nRAW[RAWBYTES]\n");
  HASNT(s, "HTTP2-Settings");
  free(s);
  wr_http_req *h;
  assert_int_equal(wr_http_req_new(&h, &base_cfg, NULL), 0);
  assert_int_equal(wr_http_req_upgrade_refused(h), WR_ERR_INVAL);
  wr_http_req_del(h);
}

static void test_set_client_addr(void **state) {
  (void)state;
  wr_http_req *h;
  assert_int_equal(wr_http_req_new(&h, &base_cfg, NULL), 0);
  assert_int_equal(wr_http_req_set_client_addr(h, "2001:db8::1"), 0);
  const char *in = "GET / HTTP/1.1\r\nHost: a.localhost\r\n\r\n";
  wr_http_ev ev;
  wr_ssize r = wr_http_req_feed(h, (const uint8_t *)in, strlen(in), &ev);
  assert_int_equal((size_t)r, strlen(in));
  assert_int_equal(ev.type, WR_HTTP_EV_HEAD);
  assert_non_null(
      memmem(ev.data, ev.len, "X-Forwarded-For: 2001:db8::1\r\n", 30));
  /* The END at the very end of the input comes from a len-0 call. */
  r = wr_http_req_feed(h, NULL, 0, &ev);
  assert_int_equal(r, 0);
  assert_int_equal(ev.type, WR_HTTP_EV_END);
  r = wr_http_req_feed(h, NULL, 0, &ev);
  assert_int_equal(ev.type, WR_HTTP_EV_NONE);
  wr_http_req_del(h);
  wr_http_req_config bad = base_cfg;
  bad.domain = NULL;
  assert_int_equal(wr_http_req_new(&h, &bad, NULL), WR_ERR_INVAL);
}

static void test_req_failmalloc(void **state) {
  (void)state;
  const char *in = "POST /a HTTP/1.1\r\nHost: app.localhost\r\n"
                   "Content-Length: 2\r\n\r\nhi";
  size_t len = strlen(in);
  for (long k = 1; k < 50; k++) {
    int done = 0;
    for (size_t cut = 1; cut < len; cut += 7) {
      failmalloc fm;
      failmalloc_init(&fm, k);
      wr_http_req *h;
      int rv = wr_http_req_new(&h, &base_cfg, &fm.mem);
      if (rv != 0) {
        assert_int_equal(rv, WR_ERR_NOMEM);
        assert_int_equal(fm.live, 0);
        continue;
      }
      int failed = 0, ended = 0;
      size_t cuts[2] = {cut, len};
      size_t start = 0;
      for (int c = 0; c < 2 && !failed; c++) {
        const uint8_t *p = (const uint8_t *)in + start;
        size_t left = cuts[c] - start;
        for (;;) {
          wr_http_ev ev;
          wr_ssize r = wr_http_req_feed(h, p, left, &ev);
          if (r < 0) {
            assert_int_equal(r, WR_ERR_NOMEM);
            failed = 1;
            break;
          }
          p += r;
          left -= (size_t)r;
          if (ev.type == WR_HTTP_EV_NONE) break;
          if (ev.type == WR_HTTP_EV_END) ended = 1;
        }
        start = cuts[c];
      }
      assert_true(failed || ended);
      if (!failed && fm.fail_at > fm.count) done = 1;
      wr_http_req_del(h);
      assert_int_equal(fm.live, 0);
    }
    if (done) return;
  }
}

/* ---- response tests ------------------------------------------------------ */

/* What each owed response answers: WR_HTTP_EXP_* flags. */
typedef unsigned exp_req;

static char *resp_once(const exp_req *reqs, size_t nreq, const uint8_t *in,
                       size_t len, const size_t *cuts, size_t ncuts, int eof,
                       int *eof_rv) {
  wr_http_resp *h;
  assert_int_equal(wr_http_resp_new(&h, 4096, NULL), 0);
  for (size_t i = 0; i < nreq; i++)
    assert_int_equal(wr_http_resp_expect(h, reqs[i]), 0);
  tr t = {.s = calloc(1, OUT_CAP)};
  size_t start = 0;
  for (size_t c = 0; c <= ncuts; c++) {
    size_t end = c < ncuts ? cuts[c] : len;
    size_t n = end - start;
    uint8_t *piece = malloc(n ? n : 1);
    memcpy(piece, in + start, n);
    const uint8_t *p = piece;
    size_t left = n;
    for (int guard = 0;; guard++) {
      assert_true(guard < 100000);
      wr_http_ev ev;
      wr_ssize r = wr_http_resp_feed(h, p, left, &ev);
      assert_true(r >= 0 && (size_t)r <= left);
      p += r;
      left -= (size_t)r;
      if (ev.type == WR_HTTP_EV_NONE) {
        assert_int_equal(left, 0);
        break;
      }
      tr_event(&t, &ev);
    }
    free(piece);
    start = end;
  }
  tr_flush(&t);
  tr_add(&t, "pending=%d", wr_http_resp_pending(h));
  if (eof) {
    *eof_rv = wr_http_resp_eof(h);
    tr_add(&t, " eof=%d pending=%d", *eof_rv, wr_http_resp_pending(h));
  }
  wr_http_resp_del(h);
  return t.s;
}

static char *run_resp(const exp_req *reqs, size_t nreq, const char *in,
                      int eof) {
  size_t len = strlen(in);
  int rv;
  char *whole =
      resp_once(reqs, nreq, (const uint8_t *)in, len, NULL, 0, eof, &rv);
  for (size_t cut = 1; cut < len; cut++) {
    char *s =
        resp_once(reqs, nreq, (const uint8_t *)in, len, &cut, 1, eof, &rv);
    if (strcmp(s, whole) != 0)
      fail_msg("split at %zu differs:\n%s\n--- whole:\n%s", cut, s, whole);
    free(s);
  }
  size_t *cuts = malloc((len + 1) * sizeof(*cuts));
  for (size_t i = 0; i + 1 < len; i++) cuts[i] = i + 1;
  char *s = resp_once(reqs, nreq, (const uint8_t *)in, len, cuts,
                      len ? len - 1 : 0, eof, &rv);
  if (strcmp(s, whole) != 0)
    fail_msg("byte by byte differs:\n%s\n--- whole:\n%s", s, whole);
  free(s);
  free(cuts);
  return whole;
}

static const exp_req GET = 0, HEADREQ = WR_HTTP_EXP_HEAD,
                     UPG = WR_HTTP_EXP_UPGRADE;

static void test_resp_basic(void **state) {
  (void)state;
  exp_req r[3] = {GET, GET, GET};
  char *s = run_resp(r, 3,
                     "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"
                     "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                     "3\r\nabc\r\n0\r\nT: 1\r\n\r\n"
                     "HTTP/1.1 204 No Content\r\n\r\n",
                     0);
  const char *want = "HEAD name=- host=- rid=- mh=0 exp=0 up=0 ka=1 st=200\n"
                     "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n"
                     "BODY[hello]\nEND ka=1\n"
                     "HEAD name=- host=- rid=- mh=0 exp=0 up=0 ka=1 st=200\n"
                     "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                     "BODY[3\r\nabc\r\n0\r\nT: 1\r\n\r\n]\nEND ka=1\n"
                     "HEAD name=- host=- rid=- mh=0 exp=0 up=0 ka=1 st=204\n"
                     "HTTP/1.1 204 No Content\r\n\r\n"
                     "END ka=1\npending=0";
  assert_string_equal(s, want);
  free(s);
}

static void test_resp_no_body(void **state) {
  (void)state;
  exp_req r[3] = {HEADREQ, GET, GET};
  char *s = run_resp(r, 3,
                     "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n"
                     "HTTP/1.1 304 Not Modified\r\nContent-Length: 7\r\n\r\n"
                     "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx",
                     0);
  HAS(s, "st=200\nHTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nEND ka=1\n");
  HAS(s, "st=304\nHTTP/1.1 304 Not Modified\r\nContent-Length: 7\r\n\r\n"
         "END ka=1\n");
  HAS(s, "BODY[x]\nEND ka=1\npending=0");
  free(s);
  /* "Content-Length: 0" ends with the head, even at the end of the input
   * (a keep-alive origin sends nothing more). */
  exp_req g[1] = {GET};
  s = run_resp(g, 1, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", 0);
  HAS(s, "st=200\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\nEND ka=1\n"
         "pending=0");
  free(s);
}

static void test_resp_interim(void **state) {
  (void)state;
  exp_req r[1] = {GET};
  char *s = run_resp(r, 1,
                     "HTTP/1.1 100 Continue\r\n\r\n"
                     "HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"
                     "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
                     0);
  const char *a = strstr(s, "st=100\nHTTP/1.1 100 Continue\r\n\r\nEND ka=1\n");
  const char *b = strstr(s, "st=103\n");
  const char *c = strstr(s, "st=200\n");
  assert_true(a && b && c && a < b && b < c);
  HAS(s, "BODY[ok]\nEND ka=1\npending=0");
  free(s);
  /* Still owed after the interim response only. */
  s = run_resp(r, 1, "HTTP/1.1 100 Continue\r\n\r\n", 0);
  HAS(s, "pending=1");
  free(s);
}

static void test_resp_upgrade(void **state) {
  (void)state;
  exp_req r[1] = {UPG};
  char *s = run_resp(r, 1,
                     "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket"
                     "\r\nConnection: Upgrade\r\n\r\n\x81\x02hi",
                     1);
  HAS(s, "up=1 ka=1 st=101\n");
  HAS(s, "\r\n\r\nEND ka=1\nUPGRADE\nRAW[\x81\x02hi]\npending=0 eof=1");
  free(s);
  /* Refused upgrade: an ordinary response. */
  s = run_resp(r, 1, "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n",
               0);
  HAS(s, "up=0 ka=1 st=400\n");
  HASNT(s, "UPGRADE");
  free(s);
  /* 101 nobody asked for. */
  exp_req g[1] = {GET};
  s = run_resp(g, 1, "HTTP/1.1 101 Switching Protocols\r\n\r\n", 0);
  HAS(s, "ERROR 502 ");
  free(s);
}

static void test_resp_eof(void **state) {
  (void)state;
  exp_req r[1] = {GET};
  char *s = run_resp(r, 1, "HTTP/1.1 200 OK\r\n\r\nstream until close", 1);
  HAS(s, "ka=0 st=200\n");
  HAS(s, "BODY[stream until close]\npending=1 eof=1 pending=0");
  free(s);
  s = run_resp(r, 1, "HTTP/1.0 200 OK\r\nContent-Length: 10\r\n\r\nshort", 1);
  HAS(s, "ka=0");
  HAS(s, "eof=0");
  free(s);
  s = run_resp(r, 1, "HTTP/1.1 200 OK\r\nContent-Le", 1);
  HAS(s, "pending=1 eof=0");
  free(s);
  s = run_resp(r, 1, "", 1);
  HAS(s, "pending=1 eof=0");
  free(s);
  s = run_resp(NULL, 0, "", 1);
  HAS(s, "pending=0 eof=1");
  free(s);
  /* Connection: close ends the stream: more bytes are ignored. */
  exp_req r2[2] = {GET, GET};
  s = run_resp(r2, 2,
               "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 1"
               "\r\n\r\nxHTTP/1.1 200 OK\r\n\r\n",
               0);
  HAS(s, "BODY[x]\nEND ka=0\npending=1");
  free(s);
}

static void test_resp_garbage(void **state) {
  (void)state;
  exp_req r[1] = {GET};
  static const char *bad[] = {
      "garbage\r\n\r\n",
      "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
      "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nTransfer-Encoding: chunked"
      "\r\n\r\n",
      "HTTP/1.1 200 OK\r\nX: a\r\n b\r\n\r\n",
      "HTTP/1.1 200 OK\r\nX : a\r\n\r\n",
      "HTTP/2.0 200 OK\r\n\r\n",
      "HTTP/1.1 2000 OK\r\n\r\n",
      /* A CR inside the status line (llhttp ends the line there and
       * skips a byte; found by the http_head fuzzer). */
      "HTTP/1.1 200 O\rK\nContent-Length: 0\r\n\r\n",
      "HTTP/1.1 101 Switchin\rg\n\x81\x02hn",
  };
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    char *s = run_resp(r, 1, bad[i], 0);
    HAS(s, "ERROR 502 ");
    HASNT(s, "HEAD");
    free(s);
  }
  char *s = run_resp(r, 1,
                     "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                     "xyz\r\n",
                     0);
  HAS(s, "HEAD");
  HAS(s, "ERROR 502 ");
  free(s);
  /* Nothing was asked. */
  s = run_resp(NULL, 0, "HTTP/1.1 408 Request Timeout\r\n\r\n", 0);
  HAS(s, "ERROR 502 origin sent a response nobody asked for");
  free(s);
  /* Head over the limit (4096 here). */
  char *big = malloc(6000);
  memset(big, 'a', 5999);
  big[5999] = 0;
  memcpy(big, "HTTP/1.1 200 OK\r\nX: ", 20);
  s = run_resp(r, 1, big, 0);
  HAS(s, "ERROR 502 response head larger");
  free(s);
  free(big);
}

static void test_resp_pipeline_limit(void **state) {
  (void)state;
  failmalloc fm;
  failmalloc_init(&fm, 0);
  wr_http_resp *h;
  assert_int_equal(wr_http_resp_new(&h, 0, &fm.mem), 0);
  assert_int_equal(wr_http_resp_owed(h), 0);
  for (int i = 0; i < WR_HTTP_MAX_PIPELINE; i++)
    assert_int_equal(wr_http_resp_expect(h, 0), 0);
  assert_int_equal(wr_http_resp_owed(h), WR_HTTP_MAX_PIPELINE);
  assert_int_equal(wr_http_resp_expect(h, 0), WR_ERR_LIMIT);
  assert_int_equal(wr_http_resp_expect(h, 16), WR_ERR_INVAL);
  assert_int_equal(wr_http_resp_pending(h), 1);
  wr_http_resp_del(h);
  assert_int_equal(fm.live, 0);
  /* What the ingress pauses on: owed counts final responses only (an
   * interim 100 does not end one), one less per END. */
  assert_int_equal(wr_http_resp_new(&h, 0, NULL), 0);
  for (int i = 0; i < 3; i++) assert_int_equal(wr_http_resp_expect(h, 0), 0);
  const char *two = "HTTP/1.1 100 Continue\r\n\r\n"
                    "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
                    "HTTP/1.1 204 No Content\r\n\r\n";
  const uint8_t *p = (const uint8_t *)two;
  size_t len = strlen(two);
  size_t owed_at_end[4], nend = 0;
  for (;;) {
    wr_http_ev ev;
    wr_ssize r = wr_http_resp_feed(h, p, len, &ev);
    assert_true(r >= 0);
    p += r;
    len -= (size_t)r;
    if (ev.type == WR_HTTP_EV_NONE) break;
    if (ev.type == WR_HTTP_EV_END && nend < 4)
      owed_at_end[nend++] = wr_http_resp_owed(h);
  }
  assert_int_equal(nend, 3);
  assert_int_equal(owed_at_end[0], 3); /* the 100 */
  assert_int_equal(owed_at_end[1], 2);
  assert_int_equal(owed_at_end[2], 1);
  wr_http_resp_del(h);
  /* Failing allocations. */
  for (long k = 1; k < 10; k++) {
    failmalloc_init(&fm, k);
    int rv = wr_http_resp_new(&h, 0, &fm.mem);
    if (rv != 0) {
      assert_int_equal(rv, WR_ERR_NOMEM);
      continue;
    }
    int bad = 0;
    for (int i = 0; i < 20; i++) {
      rv = wr_http_resp_expect(h, 0);
      if (rv) {
        assert_int_equal(rv, WR_ERR_NOMEM);
        bad = 1;
      }
    }
    const char *in = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
    wr_http_ev ev;
    wr_ssize r = wr_http_resp_feed(h, (const uint8_t *)in, 10, &ev);
    assert_true(r == 10 || r == WR_ERR_NOMEM);
    (void)bad;
    wr_http_resp_del(h);
    assert_int_equal(fm.live, 0);
  }
}

/* The head a visitor gets: one response, its HEAD event's line and head. */
#define RESP_HEAD(st, ka, up) "HEAD name=- host=- rid=- mh=0 exp=0 up=" #up \
                              " ka=" #ka " st=" #st "\n"

static void test_resp_hop_by_hop(void **state) {
  (void)state;
  exp_req r[2] = {GET, GET};
  /* RFC 9110 7.6.1: Connection, what it names (any case), Keep-Alive,
   * Proxy-Connection, TE, Upgrade, and Trailer without a chunked body. */
  char *s = run_resp(r, 1,
                     "HTTP/1.1 200 OK\r\nConnection: X-Foo, keep-alive\r\n"
                     "x-FOO: 1\r\nKeep-Alive: timeout=5\r\n"
                     "Proxy-Connection: keep-alive\r\nTE: trailers\r\n"
                     "Trailer: X-T\r\nUpgrade: h2c\r\nX-Other:   2  \r\n"
                     "Proxy-Authenticate: Basic\r\nContent-Length: 2\r\n"
                     "CONNECTION: x-bar\r\nX-Bar: 3\r\nX-Foo-Not: 4\r\n"
                     "\r\nok",
                     0);
  assert_string_equal(s, RESP_HEAD(200, 1, 0)
                      "HTTP/1.1 200 OK\r\nX-Other: 2\r\n"
                      "Proxy-Authenticate: Basic\r\nContent-Length: 2\r\n"
                      "X-Foo-Not: 4\r\n\r\n"
                      "BODY[ok]\nEND ka=1\npending=0");
  free(s);
  /* Framing passes even when Connection names it: the body is forwarded
   * with the origin's framing, so its header must go with it. */
  s = run_resp(r, 2,
               "HTTP/1.1 200 OK\r\nConnection: Content-Length\r\n"
               "Content-Length: 1\r\n\r\nx"
               "HTTP/1.1 200 OK\r\nConnection: transfer-encoding, trailer\r\n"
               "Trailer: X-T\r\nTransfer-Encoding: chunked\r\n\r\n"
               "0\r\nX-T: 1\r\n\r\n",
               0);
  HAS(s, "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nBODY[x]\nEND ka=1\n");
  HAS(s, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
         "BODY[0\r\nX-T: 1\r\n\r\n]\nEND ka=1\npending=0");
  free(s);
  /* Trailer stays with a chunked body: the trailers it announces pass. */
  s = run_resp(r, 1,
               "HTTP/1.1 200 OK\r\nTrailer: X-T\r\n"
               "Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nX-T: 1\r\n"
               "\r\n",
               0);
  assert_string_equal(s, RESP_HEAD(200, 1, 0)
                      "HTTP/1.1 200 OK\r\nTrailer: X-T\r\n"
                      "Transfer-Encoding: chunked\r\n\r\n"
                      "BODY[3\r\nabc\r\n0\r\nX-T: 1\r\n\r\n]\nEND ka=1\n"
                      "pending=0");
  free(s);
  /* A bare LF ending the status line (llhttp takes it) becomes CRLF. */
  s = run_resp(r, 1, "HTTP/1.1 200 OK\nX-A: 1\r\nContent-Length: 0\r\n\r\n",
               0);
  assert_string_equal(s, RESP_HEAD(200, 1, 0)
                      "HTTP/1.1 200 OK\r\nX-A: 1\r\nContent-Length: 0\r\n"
                      "\r\nEND ka=1\npending=0");
  free(s);
  /* More than 16 Connection options: refused like a request's. */
  s = run_resp(r, 1,
               "HTTP/1.1 200 OK\r\nConnection: a,b,c,d,e,f,g,h,i,j,k,l,m,n,"
               "o,p,q\r\nContent-Length: 0\r\n\r\n",
               0);
  HAS(s, "ERROR 502 too many Connection options");
  HASNT(s, "HEAD");
  free(s);
}

/*
 * Connection semantics toward the visitor are warren's: "close" whenever
 * the visitor's connection ends after the response, "keep-alive" when it
 * stays open and either side speaks HTTP/1.0, nothing otherwise.
 */
static void test_resp_connection(void **state) {
  (void)state;
  exp_req g[1] = {GET};
  char *s = run_resp(g, 1,
                     "HTTP/1.1 200 OK\r\nConnection: close\r\n"
                     "Content-Length: 1\r\n\r\nx",
                     0);
  assert_string_equal(s, RESP_HEAD(200, 0, 0)
                      "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n"
                      "Connection: close\r\n\r\nBODY[x]\nEND ka=0\n"
                      "pending=0");
  free(s);
  /* HTTP/1.0 origin: keep-alive only when it says so, and then we say it
   * too (its own Connection field is gone). */
  s = run_resp(g, 1,
               "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\n"
               "Content-Length: 1\r\n\r\nx",
               0);
  HAS(s, RESP_HEAD(200, 1, 0) "HTTP/1.0 200 OK\r\nContent-Length: 1\r\n"
                              "Connection: keep-alive\r\n\r\n");
  free(s);
  s = run_resp(g, 1, "HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\nx", 0);
  HAS(s, RESP_HEAD(200, 0, 0) "HTTP/1.0 200 OK\r\nContent-Length: 1\r\n"
                              "Connection: close\r\n\r\n");
  free(s);
  /* A body that runs until the origin closes ends the visitor's too. */
  s = run_resp(g, 1, "HTTP/1.1 200 OK\r\nX: 1\r\n\r\nall of it", 1);
  HAS(s, RESP_HEAD(200, 0, 0) "HTTP/1.1 200 OK\r\nX: 1\r\n"
                              "Connection: close\r\n\r\nBODY[all of it]");
  free(s);
  /* The visitor's request said close: so does the response, whatever the
   * origin would do, and nothing after it is read. */
  exp_req c[2] = {GET, GET | WR_HTTP_EXP_CLOSE};
  s = run_resp(c, 2,
               "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\na"
               "HTTP/1.1 200 OK\r\nConnection: keep-alive\r\n"
               "Content-Length: 1\r\n\r\nb"
               "HTTP/1.1 200 OK\r\n\r\n",
               0);
  assert_string_equal(s, RESP_HEAD(200, 1, 0)
                      "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n"
                      "BODY[a]\nEND ka=1\n" RESP_HEAD(200, 0, 0)
                      "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n"
                      "Connection: close\r\n\r\nBODY[b]\nEND ka=0\n"
                      "pending=0");
  free(s);
  /* An HTTP/1.0 visitor with keep-alive is told, even by a 1.1 origin. */
  exp_req k[1] = {GET | WR_HTTP_EXP_HTTP10};
  s = run_resp(k, 1, "HTTP/1.1 204 No Content\r\nServer: x\r\n\r\n", 0);
  assert_string_equal(s, RESP_HEAD(204, 1, 0)
                      "HTTP/1.1 204 No Content\r\nServer: x\r\n"
                      "Connection: keep-alive\r\n\r\nEND ka=1\npending=0");
  free(s);
  exp_req k2[1] = {WR_HTTP_EXP_HEAD | WR_HTTP_EXP_HTTP10 | WR_HTTP_EXP_CLOSE};
  s = run_resp(k2, 1,
               "HTTP/1.1 200 OK\r\nContent-Length: 9\r\nKeep-Alive: 5\r\n\r\n",
               0);
  HAS(s, "mh=0 exp=0 up=0 ka=0 st=200\nHTTP/1.1 200 OK\r\n"
         "Content-Length: 9\r\nConnection: close\r\n\r\nEND ka=0\n");
  free(s);
  /* Interim responses: hop-by-hop fields go, nothing is added. */
  s = run_resp(g, 1,
               "HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n"
               "Connection: keep-alive\r\n\r\n"
               "HTTP/1.1 100 Continue\r\nConnection: close\r\n\r\n"
               "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
               0);
  HAS(s, RESP_HEAD(103, 1, 0) "HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n"
                              "\r\nEND ka=1\n");
  HAS(s, RESP_HEAD(100, 1, 0) "HTTP/1.1 100 Continue\r\n\r\nEND ka=1\n");
  HAS(s, RESP_HEAD(200, 1, 0) "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n"
                              "\r\nEND ka=1\npending=0");
  free(s);
}

/* 101 keeps what the switch needs; 426 keeps Upgrade and says so. */
static void test_resp_upgrade_fields(void **state) {
  (void)state;
  exp_req u[1] = {UPG | WR_HTTP_EXP_CLOSE};
  char *s = run_resp(u, 1,
                     "HTTP/1.1 101 Switching Protocols\r\n"
                     "Upgrade: websocket\r\nConnection: Upgrade, X-Foo\r\n"
                     "X-Foo: 1\r\nKeep-Alive: timeout=5\r\n"
                     "Sec-WebSocket-Accept: abc=\r\n\r\n\x81\x02hi",
                     1);
  assert_string_equal(s, RESP_HEAD(101, 1, 1)
                      "HTTP/1.1 101 Switching Protocols\r\n"
                      "Upgrade: websocket\r\nConnection: Upgrade, X-Foo\r\n"
                      "Sec-WebSocket-Accept: abc=\r\n\r\n"
                      "END ka=1\nUPGRADE\nRAW[\x81\x02hi]\npending=0 eof=1 "
                      "pending=0");
  free(s);
  exp_req g[2] = {GET, GET | WR_HTTP_EXP_CLOSE};
  s = run_resp(g, 2,
               "HTTP/1.1 426 Upgrade Required\r\nUpgrade: websocket\r\n"
               "Connection: Upgrade\r\nContent-Length: 0\r\n\r\n"
               "HTTP/1.1 426 Upgrade Required\r\nUpgrade: websocket\r\n"
               "Connection: Upgrade\r\nContent-Length: 0\r\n\r\n",
               0);
  assert_string_equal(s, RESP_HEAD(426, 1, 0)
                      "HTTP/1.1 426 Upgrade Required\r\nUpgrade: websocket\r\n"
                      "Content-Length: 0\r\nConnection: upgrade\r\n\r\n"
                      "END ka=1\n" RESP_HEAD(426, 0, 0)
                      "HTTP/1.1 426 Upgrade Required\r\nUpgrade: websocket\r\n"
                      "Content-Length: 0\r\nConnection: upgrade, close\r\n"
                      "\r\nEND ka=0\npending=0");
  free(s);
  /* Refused upgrade (an ordinary 200): Upgrade is stripped. */
  exp_req r[1] = {UPG};
  s = run_resp(r, 1,
               "HTTP/1.1 200 OK\r\nUpgrade: websocket\r\n"
               "Connection: upgrade\r\nContent-Length: 0\r\n\r\n",
               0);
  assert_string_equal(s, RESP_HEAD(200, 1, 0)
                      "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
                      "END ka=1\npending=0");
  free(s);
}

/* The rewrite under failing allocations: an error or the right head. */
static void test_resp_rewrite_failmalloc(void **state) {
  (void)state;
  const char *in = "HTTP/1.1 200 OK\r\nConnection: close, X-A\r\nX-A: 1\r\n"
                   "Content-Length: 2\r\n\r\nok";
  int done = 0;
  for (long k = 1; k < 50 && !done; k++) {
    failmalloc fm;
    failmalloc_init(&fm, k);
    wr_http_resp *h;
    if (wr_http_resp_new(&h, 0, &fm.mem) != 0) continue;
    if (wr_http_resp_expect(h, 0) != 0) {
      wr_http_resp_del(h);
      assert_int_equal(fm.live, 0);
      continue;
    }
    /* Split in two, so the head is also copied across reads. */
    size_t len = strlen(in), cut = 20, off = 0;
    int heads = 0, failed = 0;
    for (int piece = 0; piece < 2 && !failed; piece++) {
      size_t end = piece ? len : cut;
      for (;;) {
        wr_http_ev ev;
        wr_ssize r =
            wr_http_resp_feed(h, (const uint8_t *)in + off, end - off, &ev);
        if (r < 0) {
          assert_int_equal(r, WR_ERR_NOMEM);
          failed = 1;
          break;
        }
        off += (size_t)r;
        if (ev.type == WR_HTTP_EV_NONE) break;
        assert_int_not_equal(ev.type, WR_HTTP_EV_ERROR);
        if (ev.type == WR_HTTP_EV_HEAD) {
          heads++;
          assert_int_equal(ev.len, strlen("HTTP/1.1 200 OK\r\nContent-Length:"
                                          " 2\r\nConnection: close\r\n\r\n"));
          assert_memory_equal(ev.data,
                              "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n"
                              "Connection: close\r\n\r\n",
                              ev.len);
        }
      }
    }
    if (!failed) {
      assert_int_equal(heads, 1);
      if (fm.fail_at > fm.count) done = 1;
    }
    wr_http_resp_del(h);
    assert_int_equal(fm.live, 0);
  }
  assert_true(done);
}

/* What a request tells its response (ev.resp_flags). */
static unsigned req_flags(const char *in) {
  wr_http_req *h;
  assert_int_equal(wr_http_req_new(&h, &base_cfg, NULL), 0);
  wr_http_ev ev;
  wr_ssize r = wr_http_req_feed(h, (const uint8_t *)in, strlen(in), &ev);
  assert_true(r > 0);
  assert_int_equal(ev.type, WR_HTTP_EV_HEAD);
  unsigned f = ev.resp_flags;
  wr_http_req_del(h);
  return f;
}

static void test_req_resp_flags(void **state) {
  (void)state;
  assert_int_equal(req_flags("GET / HTTP/1.1\r\nHost: a.localhost\r\n\r\n"),
                   0);
  assert_int_equal(req_flags("HEAD / HTTP/1.1\r\nHost: a.localhost\r\n\r\n"),
                   WR_HTTP_EXP_HEAD);
  assert_int_equal(req_flags("GET / HTTP/1.1\r\nHost: a.localhost\r\n"
                             "Connection: close\r\n\r\n"),
                   WR_HTTP_EXP_CLOSE);
  assert_int_equal(req_flags("GET / HTTP/1.1\r\nHost: a.localhost\r\n"
                             "Connection: Upgrade\r\nUpgrade: websocket\r\n"
                             "\r\n"),
                   WR_HTTP_EXP_UPGRADE);
  assert_int_equal(req_flags("GET / HTTP/1.0\r\nHost: a.localhost\r\n\r\n"),
                   WR_HTTP_EXP_HTTP10 | WR_HTTP_EXP_CLOSE);
  assert_int_equal(req_flags("HEAD / HTTP/1.0\r\nHost: a.localhost\r\n"
                             "Connection: keep-alive\r\n\r\n"),
                   WR_HTTP_EXP_HTTP10 | WR_HTTP_EXP_HEAD);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_simple_get),
      cmocka_unit_test(test_field_runs),
      cmocka_unit_test(test_names),
      cmocka_unit_test(test_host_errors),
      cmocka_unit_test(test_absolute_form),
      cmocka_unit_test(test_hop_by_hop),
      cmocka_unit_test(test_forwarded_headers),
      cmocka_unit_test(test_request_id_rand),
      cmocka_unit_test(test_keep_alive_semantics),
      cmocka_unit_test(test_pipelined_bodies),
      cmocka_unit_test(test_expect_continue),
      cmocka_unit_test(test_smuggling_rejected),
      cmocka_unit_test(test_bad_chunks),
      cmocka_unit_test(test_garbage),
      cmocka_unit_test(test_head_limit),
      cmocka_unit_test(test_huge_header_line),
      cmocka_unit_test(test_upgrade),
      cmocka_unit_test(test_set_client_addr),
      cmocka_unit_test(test_req_failmalloc),
      cmocka_unit_test(test_resp_basic),
      cmocka_unit_test(test_resp_no_body),
      cmocka_unit_test(test_resp_interim),
      cmocka_unit_test(test_resp_upgrade),
      cmocka_unit_test(test_resp_eof),
      cmocka_unit_test(test_resp_garbage),
      cmocka_unit_test(test_resp_pipeline_limit),
      cmocka_unit_test(test_resp_hop_by_hop),
      cmocka_unit_test(test_resp_connection),
      cmocka_unit_test(test_resp_upgrade_fields),
      cmocka_unit_test(test_resp_rewrite_failmalloc),
      cmocka_unit_test(test_req_resp_flags),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
