/*
 * The admin core: request parsing (whole, split at every offset, byte by
 * byte), routing, bearer auth, limits, pipelining, response helpers, and
 * allocation failures.  No sockets: bytes in, bytes out.
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
#include "warren/admin.h"
#include "warren/err.h"

/* ---- fixtures ----------------------------------------------------------- */

typedef struct calls {
  int members, fault, fail, echo;
  char last_path[64];
  char last_query[64];
} calls;

static int h_members(const wr_admin_req *req, wr_admin_resp *resp, void *ud) {
  calls *c = ud;
  c->members++;
  return wr_admin_resp_json(resp, json_pack("[{s:s,s:s,s:s,s:i}]", "id", "n1",
                                            "addr", "a:1", "state", "alive",
                                            "incarnation", 2));
}

static int h_fault(const wr_admin_req *req, wr_admin_resp *resp, void *ud) {
  calls *c = ud;
  c->fault++;
  snprintf(c->last_path, sizeof c->last_path, "%s", req->path);
  snprintf(c->last_query, sizeof c->last_query, "%s", req->query);
  wr_admin_resp_status(resp, 202);
  wr_admin_resp_type(resp, "text/plain");
  return wr_admin_resp_printf(resp, "%s %zu:%.*s", req->method, req->body_len,
                              (int)req->body_len,
                              req->body ? (const char *)req->body : "");
}

static int h_fail(const wr_admin_req *req, wr_admin_resp *resp, void *ud) {
  calls *c = ud;
  c->fail++;
  wr_admin_resp_printf(resp, "partial garbage");
  return WR_ERR_NOTFOUND;
}

typedef struct env {
  wr_metrics *m;
  wr_admin_router *r;
  calls calls;
} env;

static int setup_token(env *e, const char *token, const wr_mem *mem) {
  int rv;
  memset(e, 0, sizeof *e);
  if ((rv = wr_metrics_new(&e->m, mem)) != 0) return rv;
  if ((rv = wr_admin_router_new(&e->r, token, e->m, mem)) != 0) {
    wr_metrics_del(e->m);
    return rv;
  }
  if ((rv = wr_admin_router_add(e->r, "GET", "/members", h_members,
                                &e->calls)) != 0 ||
      (rv = wr_admin_router_add(e->r, "POST", "/fault/", h_fault, &e->calls)) !=
          0 ||
      (rv = wr_admin_router_add(e->r, "POST", "/drain", h_fault, &e->calls)) !=
          0 ||
      (rv = wr_admin_router_add(e->r, "GET", "/fail", h_fail, &e->calls)) !=
          0) {
    wr_admin_router_del(e->r);
    wr_metrics_del(e->m);
    return rv;
  }
  return 0;
}

static void teardown(env *e) {
  wr_admin_router_del(e->r);
  wr_metrics_del(e->m);
}

/* All responses produced for |in| when fed in pieces of the sizes listed
 * in |splits| (0-terminated; the rest in one piece), concatenated, as a
 * NUL-terminated malloc'd string.  *pclose gets want_close at the end. */
static char *run(wr_admin_router *r, const char *in, size_t len,
                 const size_t *splits, int *pclose) {
  wr_admin_conn *c;
  assert_int_equal(wr_admin_conn_new(&c, r, NULL), 0);
  size_t cap = 1 << 16, olen = 0;
  char *out = malloc(cap);
  assert_non_null(out);
  size_t off = 0, si = 0;
  /* Bounded: every round either consumes input or drains a response. */
  for (int guard = 0; off < len && guard < 100000; guard++) {
    size_t piece = len - off;
    if (splits && splits[si]) piece = WR_MIN(piece, splits[si]);
    size_t end = off + piece, p = off;
    while (p < end) {
      wr_ssize n = wr_admin_conn_feed(c, (const uint8_t *)in + p, end - p);
      assert_true(n >= 0);
      p += (size_t)n;
      const uint8_t *o;
      size_t ol;
      if (wr_admin_conn_output(c, &o, &ol)) {
        if (olen + ol + 1 > cap) {
          cap = (olen + ol + 1) * 2;
          out = realloc(out, cap);
          assert_non_null(out);
        }
        memcpy(out + olen, o, ol);
        olen += ol;
        wr_admin_conn_sent(c);
      } else {
        assert_int_equal(p, end); /* no output means all consumed */
      }
    }
    off = end;
    if (splits && splits[si]) si++;
  }
  out[olen] = '\0';
  if (pclose) *pclose = wr_admin_conn_want_close(c);
  wr_admin_conn_del(c);
  return out;
}

static char *run_whole(wr_admin_router *r, const char *in, int *pclose) {
  return run(r, in, strlen(in), NULL, pclose);
}

/* Feeds |in| whole, split at every offset into two, and byte by byte;
 * every way must give the same bytes out.  Returns the whole-fed output. */
static char *run_all_splits(wr_admin_router *r, const char *in, int *pclose) {
  size_t len = strlen(in);
  int wc;
  char *whole = run(r, in, len, NULL, &wc);
  for (size_t k = 1; k < len; k++) {
    size_t splits[] = {k, 0};
    int sc;
    char *s = run(r, in, len, splits, &sc);
    assert_string_equal(s, whole);
    assert_int_equal(sc, wc);
    free(s);
  }
  size_t *ones = calloc(len + 1, sizeof *ones);
  assert_non_null(ones);
  for (size_t k = 0; k < len; k++) ones[k] = 1;
  int bc;
  char *b = run(r, in, len, ones, &bc);
  assert_string_equal(b, whole);
  assert_int_equal(bc, wc);
  free(b);
  free(ones);
  if (pclose) *pclose = wc;
  return whole;
}

static int status_of(const char *resp) {
  int st = 0;
  if (sscanf(resp, "HTTP/1.1 %d ", &st) != 1) return -1;
  return st;
}

static const char *body_of(const char *resp) {
  const char *b = strstr(resp, "\r\n\r\n");
  return b ? b + 4 : NULL;
}

static uint64_t metric(const wr_metrics *m, const char *name) {
  size_t n = wr_metrics_render(m, NULL, 0);
  char *s = malloc(n + 1);
  wr_metrics_render(m, (uint8_t *)s, n);
  s[n] = '\0';
  char key[128];
  snprintf(key, sizeof key, "\n%s ", name);
  char *p = strstr(s, key);
  unsigned long long v = p ? strtoull(p + strlen(key), NULL, 10) : ~0ull;
  free(s);
  return v;
}

/* ---- tests --------------------------------------------------------------- */

static void test_get_members_exact(void **state) {
  env e;
  assert_int_equal(setup_token(&e, NULL, NULL), 0);
  int close;
  const char *in = "GET /members HTTP/1.1\r\nHost: x\r\n\r\n";
  char *out = run_all_splits(e.r, in, &close);
  assert_string_equal(out,
                      "HTTP/1.1 200 OK\r\n"
                      "Content-Type: application/json\r\n"
                      "Content-Length: 59\r\n"
                      "Cache-Control: no-store\r\n"
                      "\r\n"
                      "[{\"id\":\"n1\",\"addr\":\"a:1\",\"state\":\"alive\","
                      "\"incarnation\":2}]\n");
  assert_int_equal(close, 0);
  /* Whole, every 2-split and byte by byte: one handler call each. */
  assert_int_equal(e.calls.members, 1 + (strlen(in) - 1) + 1);
  free(out);
  teardown(&e);
}

static void test_pipelined_and_close(void **state) {
  env e;
  assert_int_equal(setup_token(&e, NULL, NULL), 0);
  int close;
  char *out = run_all_splits(
      e.r,
      "GET /healthz HTTP/1.1\r\n\r\n"
      "POST /fault/drop?kind=ping&p=0.5 HTTP/1.1\r\nContent-Length: 4\r\n\r\n"
      "abcd"
      "POST /drain HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
      "3\r\nxyz\r\n2\r\n12\r\n0\r\n\r\n"
      "GET /members HTTP/1.1\r\nConnection: close\r\n\r\n"
      "GET /healthz HTTP/1.1\r\n\r\n", /* after close: ignored */
      &close);
  assert_int_equal(close, 1);
  const char *p = out;
  int statuses[8], n = 0;
  while ((p = strstr(p, "HTTP/1.1 ")) != NULL && n < 8)
    statuses[n++] = status_of(p++);
  assert_int_equal(n, 4);
  assert_int_equal(statuses[0], 200);
  assert_int_equal(statuses[1], 202);
  assert_int_equal(statuses[2], 202);
  assert_int_equal(statuses[3], 200);
  assert_non_null(strstr(out, "\r\n\r\nPOST 4:abcd"));
  assert_non_null(strstr(out, "\r\n\r\nPOST 5:xyz12"));
  assert_non_null(strstr(out, "Connection: close\r\n\r\n[{"));
  assert_string_equal(e.calls.last_path, "/drain");
  free(out);
  teardown(&e);
}

static void test_http10(void **state) {
  env e;
  assert_int_equal(setup_token(&e, NULL, NULL), 0);
  int close;
  char *out = run_whole(e.r, "GET /healthz HTTP/1.0\r\n\r\n", &close);
  assert_int_equal(status_of(out), 200);
  assert_int_equal(close, 1);
  assert_non_null(strstr(out, "Connection: close\r\n"));
  free(out);
  out = run_whole(
      e.r, "GET /healthz HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", &close);
  assert_int_equal(close, 0);
  free(out);
  teardown(&e);
}

static void test_routing(void **state) {
  env e;
  assert_int_equal(setup_token(&e, NULL, NULL), 0);
  char *out;

  /* HEAD: the GET route's headers (same Content-Length), no body; the
   * next pipelined request still parses. */
  out = run_all_splits(e.r,
                       "HEAD /members HTTP/1.1\r\n\r\n"
                       "HEAD /nope HTTP/1.1\r\n\r\n"
                       "GET /healthz HTTP/1.1\r\n\r\n",
                       NULL);
  assert_string_equal(out, "HTTP/1.1 200 OK\r\n"
                           "Content-Type: application/json\r\n"
                           "Content-Length: 59\r\n"
                           "Cache-Control: no-store\r\n\r\n"
                           "HTTP/1.1 404 Not Found\r\n"
                           "Content-Type: application/json\r\n"
                           "Content-Length: 36\r\n"
                           "Cache-Control: no-store\r\n\r\n"
                           "HTTP/1.1 200 OK\r\n"
                           "Content-Type: application/json\r\n"
                           "Content-Length: 12\r\n"
                           "Cache-Control: no-store\r\n\r\n"
                           "{\"ok\":true}\n");
  free(out);

  out = run_whole(e.r, "GET /nope?x=1 HTTP/1.1\r\n\r\n", NULL);
  assert_int_equal(status_of(out), 404);
  assert_string_equal(body_of(out),
                      "{\"error\":\"no such endpoint: /nope\"}\n");
  free(out);

  out = run_whole(e.r, "DELETE /members HTTP/1.1\r\n\r\n", NULL);
  assert_int_equal(status_of(out), 405);
  assert_non_null(strstr(out, "\r\nAllow: GET\r\n"));
  free(out);

  /* Prefix routes: /fault/ serves /fault/x but not /fault or /faultx. */
  out = run_whole(e.r,
                  "POST /fault/delay/ms?v=%20 HTTP/1.1\r\n"
                  "Content-Length: 0\r\n\r\n",
                  NULL);
  assert_int_equal(status_of(out), 202);
  assert_string_equal(e.calls.last_path, "/fault/delay/ms");
  assert_string_equal(e.calls.last_query, "v=%20");
  free(out);
  out = run_whole(e.r, "POST /faultx HTTP/1.1\r\nContent-Length: 0\r\n\r\n",
                  NULL);
  assert_int_equal(status_of(out), 404);
  free(out);
  out = run_whole(e.r, "GET /fault/x HTTP/1.1\r\n\r\n", NULL);
  assert_int_equal(status_of(out), 405);
  assert_non_null(strstr(out, "\r\nAllow: POST\r\n"));
  free(out);

  /* Handler failure: 500 without the partial body. */
  out = run_whole(e.r, "GET /fail HTTP/1.1\r\n\r\n", NULL);
  assert_int_equal(status_of(out), 500);
  assert_string_equal(body_of(out),
                      "{\"error\":\"internal error: not found\"}\n");
  free(out);

  /* Not an absolute path. */
  out = run_whole(e.r, "GET http://x/members HTTP/1.1\r\n\r\n", NULL);
  assert_int_equal(status_of(out), 400);
  free(out);

  /* Allow lists each other method once, even when one method's name is
   * part of another's. */
  assert_int_equal(
      wr_admin_router_add(e.r, "PUTX", "/members", h_fail, &e.calls), 0);
  assert_int_equal(
      wr_admin_router_add(e.r, "PUT", "/members", h_fail, &e.calls), 0);
  assert_int_equal(
      wr_admin_router_add(e.r, "PUT", "/members", h_fail, &e.calls), 0);
  out = run_whole(e.r, "DELETE /members HTTP/1.1\r\n\r\n", NULL);
  assert_int_equal(status_of(out), 405);
  assert_non_null(strstr(out, "\r\nAllow: GET, PUTX, PUT\r\n"));
  free(out);

  /* Override a built-in; add rules. */
  assert_int_equal(
      wr_admin_router_add(e.r, "GET", "/healthz", h_fail, &e.calls), 0);
  out = run_whole(e.r, "GET /healthz HTTP/1.1\r\n\r\n", NULL);
  assert_int_equal(status_of(out), 500);
  free(out);
  assert_int_equal(wr_admin_router_add(e.r, "get", "/x", h_fail, NULL),
                   WR_ERR_INVAL);
  assert_int_equal(wr_admin_router_add(e.r, "GET", "x", h_fail, NULL),
                   WR_ERR_INVAL);
  assert_int_equal(wr_admin_router_add(e.r, "GET", "/x?y", h_fail, NULL),
                   WR_ERR_INVAL);
  assert_int_equal(wr_admin_router_add(e.r, "GET", "/x", NULL, NULL),
                   WR_ERR_INVAL);
  int rv = 0;
  char path[32];
  for (int i = 0; i < WR_ADMIN_MAX_ROUTES && rv == 0; i++) {
    snprintf(path, sizeof path, "/r%d", i);
    rv = wr_admin_router_add(e.r, "GET", path, h_fail, NULL);
  }
  assert_int_equal(rv, WR_ERR_LIMIT);
  teardown(&e);
}

static void test_auth(void **state) {
  env e;
  assert_int_equal(setup_token(&e, "t0k3n", NULL), 0);
  char *out;
  int close;

  const char *noauth = "GET /members HTTP/1.1\r\n\r\n";
  out = run_all_splits(e.r, noauth, &close);
  assert_int_equal(status_of(out), 401);
  assert_int_equal(close, 0); /* a 401 does not end the connection */
  assert_non_null(strstr(out, "WWW-Authenticate: Bearer realm=\"warren\""));
  assert_string_equal(body_of(out),
                      "{\"error\":\"missing or invalid bearer token\"}\n");
  free(out);

  const char *bad[] = {
      "Authorization: Bearer t0k3\r\n",
      "Authorization: Bearer t0k3n2\r\n",
      "Authorization: Basic t0k3n\r\n",
      "Authorization: t0k3n\r\n",
      "Authorization: Bearer t0k3n\r\nAuthorization: Bearer t0k3n\r\n",
      "X-Authorization: Bearer t0k3n\r\n",
  };
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    char req[256];
    snprintf(req, sizeof req, "GET /members HTTP/1.1\r\n%s\r\n", bad[i]);
    out = run_whole(e.r, req, NULL);
    assert_int_equal(status_of(out), 401);
    free(out);
  }
  /* An unknown path is 401 too: no probing for endpoints. */
  out = run_whole(e.r, "GET /secret HTTP/1.1\r\n\r\n", NULL);
  assert_int_equal(status_of(out), 401);
  free(out);
  out = run_whole(e.r, "GET /metrics HTTP/1.1\r\n\r\n", NULL);
  assert_int_equal(status_of(out), 401);
  free(out);
  /* /healthz needs no token. */
  out = run_whole(e.r, "GET /healthz HTTP/1.1\r\n\r\n", NULL);
  assert_int_equal(status_of(out), 200);
  free(out);
  assert_int_equal(e.calls.members, 0);

  const char *good[] = {"Authorization: Bearer t0k3n\r\n",
                        "authorization: bearer t0k3n\r\n",
                        "AUTHORIZATION:   BEARER   t0k3n  \r\n"};
  for (size_t i = 0; i < sizeof good / sizeof *good; i++) {
    char req[256];
    snprintf(req, sizeof req, "GET /members HTTP/1.1\r\n%s\r\n", good[i]);
    out = run_all_splits(e.r, req, NULL);
    assert_int_equal(status_of(out), 200);
    free(out);
  }
  assert_true(e.calls.members > 0);
  /* A token longer than the buffer is refused, not truncated and
   * accepted. */
  char req[1200];
  char longtok[700];
  memset(longtok, 'a', sizeof longtok - 1);
  longtok[sizeof longtok - 1] = '\0';
  snprintf(req, sizeof req,
           "GET /members HTTP/1.1\r\nAuthorization: Bearer %s\r\n\r\n",
           longtok);
  out = run_whole(e.r, req, NULL);
  assert_int_equal(status_of(out), 401);
  free(out);
  /* noauth fed strlen + 1 ways, 6 bad, 2 more paths, the long token. */
  assert_int_equal(metric(e.m, "warren_admin_unauthorized_total"),
                   strlen(noauth) + 1 + 6 + 2 + 1);
  teardown(&e);
}

static void test_malformed(void **state) {
  env e;
  assert_int_equal(setup_token(&e, NULL, NULL), 0);
  const char *bad[] = {
      "GET /x HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
      "GET /x HTTP/1.1\r\nContent-Length: 1\r\n"
      "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
      "GET /x HTTP/9.9\r\n\r\n",
      "G@T /x HTTP/1.1\r\n\r\n",
      "GET /x HTTP/1.1\nHost: a\n\n",
      "POST /drain HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
      "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", /* TLS hello */
  };
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    int close;
    char *out = run_all_splits(e.r, bad[i], &close);
    assert_int_equal(status_of(out), 400);
    assert_int_equal(close, 1);
    assert_non_null(strstr(out, "Connection: close\r\n"));
    assert_non_null(strstr(body_of(out), "{\"error\":\""));
    free(out);
  }
  /* Each case ran whole + (len-1) splits + byte by byte; count them all. */
  uint64_t expect = 0;
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
    expect += strlen(bad[i]) + 1;
  assert_int_equal(metric(e.m, "warren_admin_bad_requests_total"), expect);
  teardown(&e);
}

/* Builds "GET / HTTP/1.1\r\nX: aaa...\r\n\r\n" of exactly |n| bytes. */
static char *head_of_size(size_t n) {
  const char *pre = "GET /healthz HTTP/1.1\r\nX: ";
  const char *post = "\r\n\r\n";
  char *s = malloc(n + 1);
  size_t pl = strlen(pre), ql = strlen(post);
  memcpy(s, pre, pl);
  memset(s + pl, 'a', n - pl - ql);
  memcpy(s + n - ql, post, ql);
  s[n] = '\0';
  return s;
}

static void test_head_limit(void **state) {
  env e;
  assert_int_equal(setup_token(&e, NULL, NULL), 0);
  char *in = head_of_size(WR_ADMIN_MAX_HEAD);
  size_t splits[] = {1000, 5000, 1, 0};
  char *out = run(e.r, in, strlen(in), splits, NULL);
  assert_int_equal(status_of(out), 200);
  free(out);
  free(in);
  in = head_of_size(WR_ADMIN_MAX_HEAD + 1);
  int close;
  out = run(e.r, in, strlen(in), NULL, &close);
  assert_int_equal(status_of(out), 431);
  assert_int_equal(close, 1);
  free(out);
  out = run(e.r, in, strlen(in), splits, NULL);
  assert_int_equal(status_of(out), 431);
  free(out);
  free(in);
  /* A head that never ends is cut at the limit, not buffered forever. */
  in = malloc(1 << 20);
  memcpy(in, "GET / HTTP/1.1\r\nX: ", 19);
  memset(in + 19, 'b', (1 << 20) - 20);
  in[(1 << 20) - 1] = '\0';
  out = run_whole(e.r, in, NULL);
  assert_int_equal(status_of(out), 431);
  free(out);
  free(in);
  teardown(&e);
}

static void test_body_limit(void **state) {
  env e;
  assert_int_equal(setup_token(&e, NULL, NULL), 0);
  char hdr[128];
  /* Exactly the limit: accepted. */
  size_t n = WR_ADMIN_MAX_BODY;
  int hl = snprintf(hdr, sizeof hdr,
                    "POST /drain HTTP/1.1\r\nContent-Length: %zu\r\n\r\n", n);
  char *in = malloc((size_t)hl + n + 1);
  memcpy(in, hdr, (size_t)hl);
  memset(in + hl, 'z', n);
  in[hl + n] = '\0';
  char *out = run_whole(e.r, in, NULL);
  assert_int_equal(status_of(out), 202);
  assert_non_null(strstr(out, "POST 65536:zzz"));
  free(out);
  free(in);
  /* Declared over the limit: 413 before any body byte. */
  out = run_whole(e.r, "POST /drain HTTP/1.1\r\nContent-Length: 65537\r\n\r\n",
                  NULL);
  assert_int_equal(status_of(out), 413);
  free(out);
  /* Chunked over the limit: 413 once the chunks pass it. */
  char *big = malloc(200000);
  size_t off = (size_t)sprintf(
      big, "POST /drain HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n");
  for (int i = 0; i < 20; i++) {
    off += (size_t)sprintf(big + off, "1000\r\n");
    memset(big + off, 'c', 0x1000);
    off += 0x1000;
    off += (size_t)sprintf(big + off, "\r\n");
  }
  off += (size_t)sprintf(big + off, "0\r\n\r\n");
  int close;
  out = run(e.r, big, off, NULL, &close);
  assert_int_equal(status_of(out), 413);
  assert_int_equal(close, 1);
  free(out);
  free(big);
  assert_int_equal(e.calls.fault, 1);
  teardown(&e);
}

static void test_metrics_route(void **state) {
  env e;
  assert_int_equal(setup_token(&e, NULL, NULL), 0);
  uint64_t *c;
  assert_int_equal(
      wr_metrics_counter(e.m, "warren_demo_total", "kind", "ping", "Demo.", &c),
      0);
  *c = 9;
  char *out = run_whole(e.r, "GET /metrics HTTP/1.1\r\n\r\n", NULL);
  assert_int_equal(status_of(out), 200);
  assert_non_null(
      strstr(out, "Content-Type: text/plain; version=0.0.4; charset=utf-8"));
  assert_non_null(strstr(out, "\r\n\r\n# HELP warren_admin_requests_total "));
  assert_non_null(strstr(out, "\nwarren_admin_requests_total 1\n"));
  assert_non_null(strstr(out, "\nwarren_demo_total{kind=\"ping\"} 9\n"));
  /* Content-Length matches the body. */
  size_t cl = 0;
  sscanf(strstr(out, "Content-Length: "), "Content-Length: %zu", &cl);
  assert_int_equal(cl, strlen(body_of(out)));
  free(out);
  teardown(&e);
}

static void test_resp_helpers(void **state) {
  char buf[16];
  wr_admin_req req = {
      .method = "GET", .path = "/", .query = "a=1&b=x%20y+z&c&dd=%zz&e=%41"};
  assert_int_equal(wr_admin_req_param(&req, "a", buf, sizeof buf), 1);
  assert_string_equal(buf, "1");
  assert_int_equal(wr_admin_req_param(&req, "b", buf, sizeof buf), 5);
  assert_string_equal(buf, "x y z");
  assert_int_equal(wr_admin_req_param(&req, "c", buf, sizeof buf), 0);
  assert_string_equal(buf, "");
  assert_int_equal(wr_admin_req_param(&req, "d", buf, sizeof buf),
                   WR_ERR_NOTFOUND);
  assert_int_equal(wr_admin_req_param(&req, "dd", buf, sizeof buf),
                   WR_ERR_PROTO);
  assert_int_equal(wr_admin_req_param(&req, "e", buf, sizeof buf), 1);
  assert_string_equal(buf, "A");
  assert_int_equal(wr_admin_req_param(&req, "b", buf, 5), WR_ERR_NOBUF);
  assert_int_equal(wr_admin_req_param(&req, "b", buf, 6), 5);
  req.query = "";
  assert_int_equal(wr_admin_req_param(&req, "a", buf, sizeof buf),
                   WR_ERR_NOTFOUND);
}

static int h_helpers(const wr_admin_req *req, wr_admin_resp *resp, void *ud) {
  int rv;
  /* A long printf (beyond the 256-byte fast path), then an error body
   * with characters that need escaping replaces it. */
  if ((rv = wr_admin_resp_printf(resp, "%0300d", 7)) != 0) return rv;
  if (strcmp(req->path, "/long") == 0) return 0;
  wr_admin_resp_status(resp, 99);  /* ignored */
  wr_admin_resp_status(resp, 600); /* ignored */
  return wr_admin_resp_error(resp, 409, "bad \"x\"\\\n\x01");
}

static void test_resp_error_json(void **state) {
  env e;
  assert_int_equal(setup_token(&e, NULL, NULL), 0);
  assert_int_equal(wr_admin_router_add(e.r, "GET", "/e", h_helpers, NULL), 0);
  assert_int_equal(wr_admin_router_add(e.r, "GET", "/long", h_helpers, NULL),
                   0);
  char *out = run_whole(e.r, "GET /e HTTP/1.1\r\n\r\n", NULL);
  assert_int_equal(status_of(out), 409);
  assert_string_equal(body_of(out),
                      "{\"error\":\"bad \\\"x\\\"\\\\\\u000a\\u0001\"}\n");
  /* The error body is valid JSON that decodes to the message. */
  json_t *j = json_loads(body_of(out), 0, NULL);
  assert_non_null(j);
  assert_string_equal(json_string_value(json_object_get(j, "error")),
                      "bad \"x\"\\\n\x01");
  json_decref(j);
  free(out);
  out = run_whole(e.r, "GET /long HTTP/1.1\r\n\r\n", NULL);
  assert_int_equal(strlen(body_of(out)), 300);
  assert_int_equal(body_of(out)[299], '7');
  free(out);
  teardown(&e);
}

/* Every allocation in router creation, connection creation and a request
 * with a body can fail: each failure is reported, nothing leaks. */
static void test_failmalloc(void **state) {
  const char *in = "POST /drain HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc"
                   "GET /metrics HTTP/1.1\r\n\r\n";
  int succeeded = 0;
  for (long k = 1; k < 200 && !succeeded; k++) {
    failmalloc fm;
    failmalloc_init(&fm, k);
    env e;
    int rv = setup_token(&e, "tok", &fm.mem);
    if (rv != 0) {
      assert_int_equal(rv, WR_ERR_NOMEM);
      assert_int_equal(fm.live, 0);
      continue;
    }
    wr_admin_conn *c;
    rv = wr_admin_conn_new(&c, e.r, &fm.mem);
    if (rv != 0) {
      assert_int_equal(rv, WR_ERR_NOMEM);
      teardown(&e);
      assert_int_equal(fm.live, 0);
      continue;
    }
    size_t len = strlen(in), off = 0;
    int responses = 0, failed = 0;
    while (off < len) {
      wr_ssize n = wr_admin_conn_feed(c, (const uint8_t *)in + off, len - off);
      if (n < 0) {
        assert_int_equal(n, WR_ERR_NOMEM);
        failed = 1;
        break;
      }
      off += (size_t)n;
      const uint8_t *o;
      size_t ol;
      if (wr_admin_conn_output(c, &o, &ol)) {
        responses++;
        wr_admin_conn_sent(c);
      }
    }
    wr_admin_conn_del(c);
    teardown(&e);
    assert_int_equal(fm.live, 0);
    /* Body allocation failure (-> NOMEM) or a 500/OK answer; success is
     * two responses with nothing failing. */
    if (!failed && responses == 2 && fm.count < k) succeeded = 1;
  }
  assert_true(succeeded);
}

/* ---- hooks other servers use (the inspector) ---------------------------- */

typedef struct seen {
  char host[300], origin[300];
  int host_null, origin_null, guarded;
} seen;

static int g_guard(const wr_admin_req *req, wr_admin_resp *resp, void *ud) {
  seen *s = ud;
  s->guarded++;
  s->host_null = req->host == NULL;
  s->origin_null = req->origin == NULL;
  snprintf(s->host, sizeof s->host, "%s", req->host ? req->host : "");
  snprintf(s->origin, sizeof s->origin, "%s", req->origin ? req->origin : "");
  wr_admin_resp_header(resp, "X-Guarded: yes");
  if (req->host && strcmp(req->host, "bad") == 0) {
    wr_admin_resp_error(resp, 403, "go away");
    return 1;
  }
  return 0;
}

static void test_guard_and_headers(void **st) {
  env e;
  seen s;
  int cl;
  memset(&s, 0, sizeof s);
  assert_int_equal(setup_token(&e, NULL, NULL), 0);
  wr_admin_router_set_guard(e.r, g_guard, &s);
  /* Values split across reads, trailing blanks trimmed. */
  char *out = run_all_splits(e.r,
                             "GET /members HTTP/1.1\r\nHost: a.b:1  \r\n"
                             "Origin: http://x\r\n\r\n",
                             &cl);
  assert_non_null(strstr(out, "HTTP/1.1 200 OK\r\n"));
  assert_non_null(strstr(out, "X-Guarded: yes\r\n"));
  assert_string_equal(s.host, "a.b:1");
  assert_string_equal(s.origin, "http://x");
  free(out);
  int before = e.calls.members;
  out = run_whole(e.r, "GET /members HTTP/1.1\r\nHost: bad\r\n\r\n", &cl);
  assert_non_null(strstr(out, "HTTP/1.1 403 "));
  assert_non_null(strstr(out, "go away"));
  assert_int_equal(e.calls.members, before); /* the guard answered */
  free(out);
  /* Absent: NULL; repeated or over 255 bytes: "". */
  out = run_whole(e.r, "GET /members HTTP/1.0\r\n\r\n", &cl);
  assert_true(s.host_null && s.origin_null);
  free(out);
  out = run_whole(e.r, "GET /members HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
                  &cl);
  assert_false(s.host_null);
  assert_string_equal(s.host, "");
  free(out);
  char big[600];
  snprintf(big, sizeof big, "GET /members HTTP/1.1\r\nHost: h\r\n"
                            "Origin: http://%0300d\r\n\r\n", 0);
  out = run_whole(e.r, big, &cl);
  assert_false(s.origin_null);
  assert_string_equal(s.origin, "");
  free(out);
  /* Header lines: no CR/LF, bounded. */
  teardown(&e);
}

static void test_max_body(void **st) {
  env e;
  int cl;
  assert_int_equal(setup_token(&e, NULL, NULL), 0);
  assert_int_equal(wr_admin_router_set_max_body(e.r, 0), WR_ERR_INVAL);
  assert_int_equal(wr_admin_router_set_max_body(e.r, 10), 0);
  char *out = run_whole(e.r, "POST /drain HTTP/1.1\r\nContent-Length: 11\r\n"
                             "\r\nhello world", &cl);
  assert_non_null(strstr(out, "HTTP/1.1 413 "));
  assert_non_null(strstr(out, "larger than 10 bytes"));
  free(out);
  out = run_whole(e.r, "POST /drain HTTP/1.1\r\nContent-Length: 10\r\n"
                       "\r\nhelloworld", &cl);
  assert_non_null(strstr(out, "HTTP/1.1 202 "));
  free(out);
  /* Raised above the default. */
  assert_int_equal(wr_admin_router_set_max_body(e.r, 100000), 0);
  char *big = malloc(80000 + 100);
  int n = snprintf(big, 100, "POST /drain HTTP/1.1\r\nContent-Length: "
                             "80000\r\n\r\n");
  memset(big + n, 'b', 80000);
  big[n + 80000] = '\0';
  out = run_whole(e.r, big, &cl);
  assert_non_null(strstr(out, "HTTP/1.1 202 "));
  assert_non_null(strstr(out, "POST 80000:"));
  free(out);
  free(big);
  teardown(&e);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_get_members_exact),
      cmocka_unit_test(test_pipelined_and_close),
      cmocka_unit_test(test_http10),
      cmocka_unit_test(test_routing),
      cmocka_unit_test(test_auth),
      cmocka_unit_test(test_malformed),
      cmocka_unit_test(test_head_limit),
      cmocka_unit_test(test_body_limit),
      cmocka_unit_test(test_metrics_route),
      cmocka_unit_test(test_resp_helpers),
      cmocka_unit_test(test_resp_error_json),
      cmocka_unit_test(test_failmalloc),
      cmocka_unit_test(test_guard_and_headers),
      cmocka_unit_test(test_max_body),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
