/*
 * The inspector's JSON API through the admin core: raw HTTP requests in,
 * responses out (no sockets).  Listing, filters, one exchange, replay (and
 * the request it builds), clear, the page, server-sent events, and the
 * safety rules: Host must name the inspector, cross-origin writes are
 * refused, bad input gets a clear 4xx.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "warren/err.h"
#include "warren/inspect.h"

typedef struct fixture {
  wr_capture *cap;
  wr_inspect_api *api;
  wr_metrics *m;
  wr_admin_router *r;
  int replays, cleared, replay_rv;
  uint64_t replay_of;
  char sent[4096];
  size_t sent_len;
} fixture;

static int do_replay(const uint8_t *req, size_t len, uint64_t of, uint64_t *pid,
                     void *ud) {
  fixture *f = ud;
  f->replays++;
  f->replay_of = of;
  f->sent_len = WR_MIN(len, sizeof f->sent - 1);
  memcpy(f->sent, req, f->sent_len);
  f->sent[f->sent_len] = '\0';
  *pid = 77;
  return f->replay_rv;
}

static void do_cleared(void *ud) { ((fixture *)ud)->cleared++; }

static void record(fixture *f, const char *req, const char *resp) {
  wr_capture_conn *cc;
  assert_int_equal(wr_capture_conn_new(f->cap, &cc, 0), 0);
  assert_int_equal(wr_capture_conn_feed(cc, WR_CAPTURE_TO_ORIGIN,
                                        (const uint8_t *)req, strlen(req),
                                        1000),
                   0);
  if (resp)
    assert_int_equal(wr_capture_conn_feed(cc, WR_CAPTURE_FROM_ORIGIN,
                                          (const uint8_t *)resp, strlen(resp),
                                          3500),
                     0);
  wr_capture_conn_close(cc, 4000);
}

static int setup(void **st) {
  fixture *f = calloc(1, sizeof *f);
  wr_capture_config cc = {.body_cap = 64};
  assert_int_equal(wr_capture_new(&f->cap, &cc, NULL, NULL, NULL), 0);
  wr_inspect_api_config ac = {.capture = f->cap,
                              .port = 4040,
                              .local_port = 3000,
                              .wall_offset_us = 1700000000000000LL,
                              .replay = do_replay,
                              .cleared = do_cleared,
                              .user_data = f};
  assert_int_equal(wr_inspect_api_new(&f->api, &ac, NULL), 0);
  assert_int_equal(wr_metrics_new(&f->m, NULL), 0);
  assert_int_equal(wr_admin_router_new(&f->r, NULL, f->m, NULL), 0);
  assert_int_equal(wr_inspect_api_routes(f->api, f->r), 0);
  record(f,
         "GET /hello?x=1 HTTP/1.1\r\nHost: app.localhost:8080\r\n"
         "Accept: */*\r\n\r\n",
         "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
         "Content-Length: 11\r\n\r\n{\"ok\":true}");
  record(f,
         "POST /hook HTTP/1.1\r\nHost: app.localhost:8080\r\n"
         "Content-Type: text/plain\r\nConnection: keep-alive\r\n"
         "Content-Length: 4\r\n\r\nping",
         "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n");
  /* A body over the 64-byte cap: kept in part only. */
  char big[400];
  int n = snprintf(big, sizeof big,
                   "PUT /big HTTP/1.1\r\nHost: h\r\n"
                   "Content-Length: 100\r\n\r\n");
  memset(big + n, 'z', 100);
  big[n + 100] = '\0';
  record(f, big, "HTTP/1.1 204 No Content\r\n\r\n");
  *st = f;
  return 0;
}

static int teardown(void **st) {
  fixture *f = *st;
  wr_admin_router_del(f->r);
  wr_metrics_del(f->m);
  wr_inspect_api_del(f->api);
  wr_capture_del(f->cap);
  free(f);
  return 0;
}

typedef struct reply {
  int status;
  char head[2048];
  json_t *json;
  char *body;
  size_t body_len;
  unsigned stream;
} reply;

/* Sends one raw request through a fresh connection. */
static reply send_raw(fixture *f, const char *raw) {
  reply r;
  memset(&r, 0, sizeof r);
  wr_admin_conn *c;
  assert_int_equal(wr_admin_conn_new(&c, f->r, NULL), 0);
  wr_ssize n = wr_admin_conn_feed(c, (const uint8_t *)raw, strlen(raw));
  assert_true(n >= 0);
  const uint8_t *out;
  size_t len;
  assert_int_equal(wr_admin_conn_output(c, &out, &len), 1);
  r.stream = wr_admin_conn_stream(c);
  const char *end = memmem(out, len, "\r\n\r\n", 4);
  assert_non_null(end);
  size_t hl = (size_t)(end - (const char *)out);
  assert_true(hl < sizeof r.head);
  memcpy(r.head, out, hl);
  sscanf(r.head, "HTTP/1.1 %d", &r.status);
  r.body_len = len - hl - 4;
  r.body = malloc(r.body_len + 1);
  memcpy(r.body, end + 4, r.body_len);
  r.body[r.body_len] = '\0';
  if (strstr(r.head, "application/json"))
    r.json = json_loadb(r.body, r.body_len, 0, NULL);
  wr_admin_conn_del(c);
  return r;
}

static void reply_free(reply *r) {
  json_decref(r->json);
  free(r->body);
}

static reply get(fixture *f, const char *path) {
  char raw[1024];
  snprintf(raw, sizeof raw, "GET %s HTTP/1.1\r\nHost: 127.0.0.1:4040\r\n\r\n",
           path);
  return send_raw(f, raw);
}

static reply post(fixture *f, const char *method, const char *path,
                  const char *origin, const char *body) {
  char raw[4096];
  char ob[300] = "";
  if (origin) snprintf(ob, sizeof ob, "Origin: %s\r\n", origin);
  snprintf(raw, sizeof raw,
           "%s %s HTTP/1.1\r\nHost: localhost:4040\r\n%s"
           "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n%s",
           method, path, ob, strlen(body), body);
  return send_raw(f, raw);
}

static void test_list(void **st) {
  fixture *f = *st;
  reply r = get(f, "/api/exchanges");
  assert_int_equal(r.status, 200);
  json_t *a = json_object_get(r.json, "exchanges");
  assert_int_equal(json_array_size(a), 3);
  json_t *newest = json_array_get(a, 0), *oldest = json_array_get(a, 2);
  assert_int_equal(json_integer_value(json_object_get(newest, "id")), 3);
  assert_string_equal(json_string_value(json_object_get(oldest, "method")),
                      "GET");
  assert_string_equal(json_string_value(json_object_get(oldest, "target")),
                      "/hello?x=1");
  assert_int_equal(json_integer_value(json_object_get(oldest, "status")), 200);
  assert_string_equal(json_string_value(json_object_get(oldest, "state")),
                      "done");
  assert_int_equal(json_integer_value(json_object_get(oldest, "ttfb_us")),
                   2500);
  assert_int_equal(json_integer_value(json_object_get(oldest, "duration_us")),
                   2500);
  assert_int_equal(json_integer_value(json_object_get(oldest, "time_us")),
                   1700000000001000LL);
  assert_string_equal(json_string_value(json_object_get(oldest, "time")),
                      "2023-11-14T22:13:20.001Z");
  assert_string_equal(
      json_string_value(json_object_get(oldest, "content_type")),
      "application/json");
  assert_true(json_is_true(json_object_get(newest, "req_truncated")));
  reply_free(&r);

  r = get(f, "/api/exchanges?limit=1");
  assert_int_equal(json_array_size(json_object_get(r.json, "exchanges")), 1);
  reply_free(&r);
  r = get(f, "/api/exchanges?since=2");
  a = json_object_get(r.json, "exchanges");
  assert_int_equal(json_array_size(a), 1);
  assert_int_equal(
      json_integer_value(json_object_get(json_array_get(a, 0), "id")), 3);
  reply_free(&r);
  r = get(f, "/api/exchanges?q=post");
  a = json_object_get(r.json, "exchanges");
  assert_int_equal(json_array_size(a), 1);
  assert_string_equal(
      json_string_value(json_object_get(json_array_get(a, 0), "target")),
      "/hook");
  reply_free(&r);
  r = get(f, "/api/exchanges?q=404");
  assert_int_equal(json_array_size(json_object_get(r.json, "exchanges")), 1);
  reply_free(&r);
  r = get(f, "/api/exchanges?limit=ten");
  assert_int_equal(r.status, 400);
  assert_non_null(
      strstr(json_string_value(json_object_get(r.json, "error")), "limit"));
  reply_free(&r);
  r = get(f, "/api/exchanges?q=%zz");
  assert_int_equal(r.status, 400);
  reply_free(&r);
}

static void test_one(void **st) {
  fixture *f = *st;
  reply r = get(f, "/api/exchanges/1");
  assert_int_equal(r.status, 200);
  json_t *req = json_object_get(r.json, "request");
  json_t *h = json_object_get(req, "headers");
  assert_int_equal(json_array_size(h), 2);
  assert_string_equal(
      json_string_value(json_array_get(json_array_get(h, 0), 0)), "Host");
  json_t *resp = json_object_get(r.json, "response");
  assert_string_equal(json_string_value(json_object_get(resp, "body")),
                      "{\"ok\":true}");
  assert_string_equal(json_string_value(json_object_get(resp, "body_base64")),
                      "eyJvayI6dHJ1ZX0=");
  reply_free(&r);
  r = get(f, "/api/exchanges/3");
  req = json_object_get(r.json, "request");
  assert_int_equal(json_integer_value(json_object_get(req, "body_size")), 100);
  assert_int_equal(json_string_length(json_object_get(req, "body")), 64);
  assert_true(json_is_true(json_object_get(req, "body_truncated")));
  reply_free(&r);
  const char *bad[] = {"/api/exchanges/99", "/api/exchanges/abc",
                       "/api/exchanges/1/x",
                       "/api/exchanges/99999999999999999999"};
  for (size_t i = 0; i < WR_ARRAY_LEN(bad); i++) {
    r = get(f, bad[i]);
    assert_int_equal(r.status, 404);
    assert_non_null(json_object_get(r.json, "error"));
    reply_free(&r);
  }
}

static void test_host_guard(void **st) {
  fixture *f = *st;
  const char *good[] = {"127.0.0.1:4040", "localhost:4040", "[::1]:4040",
                        "LOCALHOST:4040", "192.168.1.5:4040"};
  const char *bad[] = {
      "evil.example:4040",     "127.0.0.1:4041", "127.0.0.1", "localhost",
      "127.0.0.1.nip.io:4040", "[::1]",          "",          "[zz]:4040",
      "localhost:4040x"};
  char raw[512];
  for (size_t i = 0; i < WR_ARRAY_LEN(good); i++) {
    snprintf(raw, sizeof raw, "GET /api/status HTTP/1.1\r\nHost: %s\r\n\r\n",
             good[i]);
    reply r = send_raw(f, raw);
    assert_int_equal(r.status, 200);
    assert_int_equal(json_integer_value(json_object_get(r.json, "exchanges")),
                     3);
    reply_free(&r);
  }
  for (size_t i = 0; i < WR_ARRAY_LEN(bad); i++) {
    snprintf(raw, sizeof raw, "GET /api/status HTTP/1.1\r\nHost: %s\r\n\r\n",
             bad[i]);
    reply r = send_raw(f, raw);
    assert_int_equal(r.status, 403);
    assert_non_null(strstr(r.body, "DNS-rebinding"));
    reply_free(&r);
  }
  /* No Host at all (HTTP/1.0), and two of them. */
  reply r = send_raw(f, "GET /api/status HTTP/1.0\r\n\r\n");
  assert_int_equal(r.status, 403);
  reply_free(&r);
  r = send_raw(f, "GET / HTTP/1.1\r\nHost: localhost:4040\r\n"
                  "Host: evil:4040\r\n\r\n");
  assert_true(r.status == 403 || r.status == 400);
  reply_free(&r);
  assert_int_equal(f->replays, 0);
}

static void test_replay(void **st) {
  fixture *f = *st;
  /* Another origin may not write; a missing Origin (curl) or our own may. */
  reply r =
      post(f, "POST", "/api/exchanges/2/replay", "http://evil.example", "");
  assert_int_equal(r.status, 403);
  reply_free(&r);
  r = post(f, "POST", "/api/exchanges/2/replay", "null", "");
  assert_int_equal(r.status, 403);
  reply_free(&r);
  assert_int_equal(f->replays, 0);
  r = post(f, "POST", "/api/exchanges/2/replay", "http://localhost:4040", "");
  assert_int_equal(r.status, 202);
  assert_int_equal(json_integer_value(json_object_get(r.json, "id")), 77);
  assert_int_equal(json_integer_value(json_object_get(r.json, "replay_of")), 2);
  reply_free(&r);
  assert_int_equal(f->replays, 1);
  assert_int_equal(f->replay_of, 2);
  assert_string_equal(f->sent,
                      "POST /hook HTTP/1.1\r\nHost: app.localhost:8080\r\n"
                      "Content-Type: text/plain\r\nContent-Length: 4\r\n"
                      "Connection: close\r\n\r\nping");
  /* Edited. */
  r = post(f, "POST", "/api/exchanges/1/replay", NULL,
           "{\"method\":\"PATCH\",\"target\":\"/x?y=2\","
           "\"headers\":[[\"Host\",\"h\"],[\"Transfer-Encoding\",\"chunked\"],"
           "[\"X-A\",\"1\"]],\"body\":\"hi\"}");
  assert_int_equal(r.status, 202);
  reply_free(&r);
  assert_string_equal(f->sent, "PATCH /x?y=2 HTTP/1.1\r\nHost: h\r\nX-A: 1\r\n"
                               "Content-Length: 2\r\nConnection: close\r\n"
                               "\r\nhi");
  r = post(f, "POST", "/api/exchanges/1/replay", NULL,
           "{\"headers\":{\"X-B\":\"2\"},\"body_base64\":\"AAEC\"}");
  assert_int_equal(r.status, 202);
  reply_free(&r);
  const char *want = "GET /hello?x=1 HTTP/1.1\r\nX-B: 2\r\n"
                     "Content-Length: 3\r\nConnection: close\r\n\r\n";
  assert_int_equal(f->sent_len, strlen(want) + 3);
  assert_memory_equal(f->sent, want, strlen(want));
  assert_memory_equal(f->sent + f->sent_len - 3, "\x00\x01\x02", 3);
  /* Bad input: each gets a 400 saying what is wrong, nothing is sent. */
  int before = f->replays;
  const char *bad[][2] = {
      {"{\"method\":\"GE T\"}", "method"},
      {"{\"method\":\"CONNECT\"}", "method"},
      {"{\"target\":\"no-slash\"}", "target"},
      {"{\"target\":\"/a b\"}", "target"},
      {"{\"headers\":[[\"Bad Name\",\"v\"]]}", "header name"},
      {"{\"headers\":[[\"X\",\"a\\r\\nInjected: 1\"]]}", "bad value"},
      {"{\"headers\":\"x\"}", "headers"},
      {"{\"body\":1}", "body"},
      {"{\"body\":\"a\",\"body_base64\":\"YQ==\"}", "not both"},
      {"{\"body_base64\":\"!!\"}", "base64"},
      {"[1,2]", "JSON object"},
      {"{not json", "JSON object"},
  };
  for (size_t i = 0; i < WR_ARRAY_LEN(bad); i++) {
    r = post(f, "POST", "/api/exchanges/1/replay", NULL, bad[i][0]);
    assert_int_equal(r.status, 400);
    const char *msg = json_string_value(json_object_get(r.json, "error"));
    assert_non_null(msg);
    if (!strstr(msg, bad[i][1])) fail_msg("%s -> %s", bad[i][0], msg);
    reply_free(&r);
  }
  /* The truncated body cannot be replayed as is, but with a new one. */
  r = post(f, "POST", "/api/exchanges/3/replay", NULL, "");
  assert_int_equal(r.status, 400);
  assert_non_null(strstr(r.body, "truncated"));
  reply_free(&r);
  assert_int_equal(f->replays, before);
  r = post(f, "POST", "/api/exchanges/3/replay", NULL, "{\"body\":\"new\"}");
  assert_int_equal(r.status, 202);
  reply_free(&r);
  r = post(f, "POST", "/api/exchanges/42/replay", NULL, "");
  assert_int_equal(r.status, 404);
  reply_free(&r);
  r = post(f, "POST", "/api/exchanges/1/again", NULL, "");
  assert_int_equal(r.status, 404);
  reply_free(&r);
  /* The local server cannot be reached. */
  f->replay_rv = -ECONNREFUSED;
  r = post(f, "POST", "/api/exchanges/1/replay", NULL, "");
  assert_int_equal(r.status, 502);
  assert_non_null(strstr(r.body, "local server"));
  reply_free(&r);
}

static void test_clear(void **st) {
  fixture *f = *st;
  reply r = post(f, "DELETE", "/api/exchanges", "http://evil.example", "");
  assert_int_equal(r.status, 403);
  reply_free(&r);
  assert_int_equal(wr_capture_count(f->cap), 3);
  r = post(f, "DELETE", "/api/exchanges", NULL, "");
  assert_int_equal(r.status, 200);
  assert_int_equal(json_integer_value(json_object_get(r.json, "cleared")), 3);
  reply_free(&r);
  assert_int_equal(f->cleared, 1);
  r = get(f, "/api/exchanges");
  assert_int_equal(json_array_size(json_object_get(r.json, "exchanges")), 0);
  reply_free(&r);
  r = post(f, "PUT", "/api/exchanges", NULL, "");
  assert_int_equal(r.status, 405);
  reply_free(&r);
}

static void test_page_and_events(void **st) {
  fixture *f = *st;
  reply r = get(f, "/");
  assert_int_equal(r.status, 200);
  assert_non_null(strstr(r.head, "text/html"));
  assert_non_null(strstr(r.head, "X-Frame-Options: DENY"));
  assert_non_null(strstr(r.head, "frame-ancestors 'none'"));
  /* Only the page's own script may run (by hash), no inline markup. */
  assert_non_null(strstr(r.head, wr_inspect_page_script_hash));
  assert_memory_equal(wr_inspect_page_script_hash, "sha256-", 7);
  assert_null(strstr(r.head, "script-src 'unsafe-inline'"));
  assert_int_equal(r.body_len, wr_inspect_page_len);
  assert_non_null(strstr(r.body, "EventSource"));
  /* No external resource: it must work offline. */
  assert_null(strstr(r.body, "src=\"http"));
  assert_null(strstr(r.body, "href=\"http"));
  assert_int_equal(r.stream, 0);
  reply_free(&r);
  r = get(f, "/api/events");
  assert_int_equal(r.status, 200);
  assert_int_equal(r.stream, WR_INSPECT_CHANNEL);
  assert_non_null(strstr(r.head, "text/event-stream"));
  assert_null(strstr(r.head, "Content-Length"));
  assert_string_equal(r.body, "retry: 1000\n\n");
  reply_free(&r);
  size_t n;
  char *ev = wr_inspect_sse(f->api, "exchange", wr_capture_get(f->cap, 2), &n);
  assert_non_null(ev);
  assert_int_equal(strlen(ev), n);
  assert_memory_equal(ev, "event: exchange\ndata: {", 23);
  assert_string_equal(ev + n - 2, "\n\n");
  assert_null(memchr(ev + 22, '\n', n - 24)); /* one data line */
  free(ev);
}

static void test_utf8(void **st) {
  fixture *f = *st;
  /* obs-text in a header value and a binary body: still valid JSON. */
  record(f, "GET /bin HTTP/1.1\r\nHost: h\r\nX-L: caf\xe9\r\n\r\n",
         "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n\xff\x01\xfe");
  record(f, "GET /r HTTP/1.1\r\nHost: h\r\n\r\n",
         "HTTP/1.1 200 Tr\xe8s bien\r\nContent-Length: 0\r\n\r\n");
  reply r = get(f, "/api/exchanges/5");
  assert_int_equal(r.status, 200);
  assert_string_equal(json_string_value(json_object_get(r.json, "reason")),
                      "Tr\xef\xbf\xbds bien");
  reply_free(&r);
  r = get(f, "/api/exchanges");
  assert_int_equal(json_array_size(json_object_get(r.json, "exchanges")), 5);
  reply_free(&r);
  r = get(f, "/api/exchanges/4");
  assert_int_equal(r.status, 200);
  assert_non_null(r.json);
  json_t *resp = json_object_get(r.json, "response");
  assert_true(json_is_null(json_object_get(resp, "body")));
  assert_string_equal(json_string_value(json_object_get(resp, "body_base64")),
                      "/wH+");
  json_t *h = json_object_get(json_object_get(r.json, "request"), "headers");
  assert_string_equal(
      json_string_value(json_array_get(json_array_get(h, 1), 1)),
      "caf\xef\xbf\xbd");
  reply_free(&r);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_list, setup, teardown),
      cmocka_unit_test_setup_teardown(test_one, setup, teardown),
      cmocka_unit_test_setup_teardown(test_host_guard, setup, teardown),
      cmocka_unit_test_setup_teardown(test_replay, setup, teardown),
      cmocka_unit_test_setup_teardown(test_clear, setup, teardown),
      cmocka_unit_test_setup_teardown(test_page_and_events, setup, teardown),
      cmocka_unit_test_setup_teardown(test_utf8, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
