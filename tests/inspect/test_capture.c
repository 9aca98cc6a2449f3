/*
 * The inspector's capture core: exchanges parsed from both directions of a
 * relayed connection (fed whole, split at every offset, byte by byte),
 * pipelining, HEAD, 1xx, chunked bodies, truncation of big bodies, the
 * ring's bounds (count, memory) and eviction, WebSocket sessions, input
 * that is no HTTP, and allocation failures.  Time is a plain variable.
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
#include "warren/capture.h"
#include "warren/err.h"

#define TO WR_CAPTURE_TO_ORIGIN
#define FROM WR_CAPTURE_FROM_ORIGIN

typedef struct evlog {
  int news, updates;
} evlog;

static void on_event(const wr_exchange *e, wr_capture_event ev, void *ud) {
  evlog *l = ud;
  assert_non_null(e);
  if (ev == WR_CAPTURE_EV_NEW)
    l->news++;
  else
    l->updates++;
}

static const wr_capture_callbacks cbs = {.event = on_event};

static void feed(wr_capture_conn *cc, int dir, const char *s, uint64_t t) {
  assert_int_equal(
      wr_capture_conn_feed(cc, dir, (const uint8_t *)s, strlen(s), t), 0);
}

/* Feeds |s| cut into pieces of |step| bytes (0 = whole). */
static void feed_split(wr_capture_conn *cc, int dir, const char *s, size_t step,
                       uint64_t t) {
  size_t n = strlen(s);
  if (step == 0) step = n;
  for (size_t off = 0; off < n; off += step) {
    size_t k = WR_MIN(step, n - off);
    assert_int_equal(
        wr_capture_conn_feed(cc, dir, (const uint8_t *)s + off, k, t), 0);
  }
}

static const char *hdr(const wr_capture_msg *m, const char *name) {
  size_t pos = 0;
  const char *n, *v;
  while (wr_capture_field(m, &pos, &n, &v))
    if (strcmp(n, name) == 0) return v;
  return NULL;
}

static const char req1[] =
    "POST /api/items?x=1 HTTP/1.1\r\nHost: app.localhost:8080\r\n"
    "Content-Type: application/json\r\nX-Empty:\r\n"
    "Content-Length: 13\r\n\r\n{\"name\":\"a\"}\n";
static const char resp1[] =
    "HTTP/1.1 201 Created\r\nContent-Type: application/json\r\n"
    "Content-Length: 8\r\n\r\n{\"id\":7}";

static void check_ex1(const wr_exchange *e) {
  assert_non_null(e);
  assert_string_equal(e->method, "POST");
  assert_string_equal(e->target, "/api/items?x=1");
  assert_string_equal(e->version, "HTTP/1.1");
  assert_int_equal(e->status, 201);
  assert_string_equal(e->reason, "Created");
  assert_int_equal(e->state, WR_EXCHANGE_DONE);
  assert_int_equal(e->req.nfields, 4);
  assert_string_equal(hdr(&e->req, "Host"), "app.localhost:8080");
  assert_string_equal(hdr(&e->req, "X-Empty"), "");
  assert_string_equal(hdr(&e->resp, "Content-Type"), "application/json");
  assert_int_equal(e->req.body_size, 13);
  assert_memory_equal(e->req.body, "{\"name\":\"a\"}\n", 13);
  assert_int_equal(e->resp.body_len, 8);
  assert_memory_equal(e->resp.body, "{\"id\":7}", 8);
  assert_false(e->req.body_truncated);
  assert_null(e->error);
}

static void test_simple_every_split(void **st) {
  (void)st;
  size_t longest = WR_MAX(sizeof req1, sizeof resp1);
  for (size_t step = 0; step < longest; step++) {
    wr_capture *c;
    evlog l = {0};
    assert_int_equal(wr_capture_new(&c, NULL, &cbs, &l, NULL), 0);
    wr_capture_conn *cc;
    assert_int_equal(wr_capture_conn_new(c, &cc, 0), 0);
    feed_split(cc, TO, req1, step, 1000);
    feed_split(cc, FROM, resp1, step, 1250);
    wr_capture_conn_close(cc, 5000);
    const wr_exchange *e = wr_capture_get(c, 1);
    check_ex1(e);
    assert_int_equal(e->t_start_us, 1000);
    assert_int_equal(e->t_resp_us, 1250);
    assert_int_equal(e->t_end_us, 1250);
    assert_int_equal(l.news, 1);
    assert_true(l.updates >= 2); /* response head, response end */
    assert_int_equal(wr_capture_count(c), 1);
    wr_capture_del(c);
  }
}

static void test_pipelined_head_chunked(void **st) {
  (void)st;
  wr_capture *c;
  assert_int_equal(wr_capture_new(&c, NULL, NULL, NULL, NULL), 0);
  wr_capture_conn *cc;
  assert_int_equal(wr_capture_conn_new(c, &cc, 0), 0);
  /* HEAD's response has a Content-Length but no body: only knowing the
   * request was HEAD tells where the next response starts. */
  feed(cc, TO,
       "HEAD /a HTTP/1.1\r\nHost: h\r\n\r\n"
       "PUT /b HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
       "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
       "GET /c HTTP/1.1\r\nHost: h\r\n\r\n",
       10);
  feed(cc, FROM,
       "HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\n"
       "HTTP/1.1 100 Continue\r\n\r\n"
       "HTTP/1.1 204 No Content\r\nX-Final: 1\r\n\r\n"
       "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
       "3\r\nabc\r\n0\r\n\r\n",
       20);
  wr_capture_conn_close(cc, 30);
  const wr_exchange *a = wr_capture_get(c, 1), *b = wr_capture_get(c, 2),
                    *d = wr_capture_get(c, 3);
  assert_string_equal(a->method, "HEAD");
  assert_int_equal(a->status, 200);
  assert_int_equal(a->resp.body_size, 0);
  assert_string_equal(b->target, "/b");
  assert_int_equal(b->req.body_len, 11);
  assert_memory_equal(b->req.body, "hello world", 11);
  /* The interim 100 is not the answer; the 204 and its headers are. */
  assert_int_equal(b->status, 204);
  assert_string_equal(hdr(&b->resp, "X-Final"), "1");
  assert_int_equal(b->resp.nfields, 1);
  assert_string_equal(d->target, "/c");
  assert_int_equal(d->status, 200);
  assert_memory_equal(d->resp.body, "abc", 3);
  assert_int_equal(a->state, WR_EXCHANGE_DONE);
  assert_int_equal(b->state, WR_EXCHANGE_DONE);
  assert_int_equal(d->state, WR_EXCHANGE_DONE);
  /* Newest first. */
  assert_ptr_equal(wr_capture_older(c, 0), d);
  assert_ptr_equal(wr_capture_older(c, 3), b);
  assert_ptr_equal(wr_capture_older(c, 2), a);
  assert_null(wr_capture_older(c, 1));
  wr_capture_del(c);
}

static void test_truncation(void **st) {
  (void)st;
  wr_capture_config cfg = {.body_cap = 1000};
  wr_capture *c;
  assert_int_equal(wr_capture_new(&c, &cfg, NULL, NULL, NULL), 0);
  wr_capture_conn *cc;
  assert_int_equal(wr_capture_conn_new(c, &cc, 0), 0);
  char *big = malloc(5000 + 200);
  int n = snprintf(big, 200,
                   "POST /up HTTP/1.1\r\nHost: h\r\n"
                   "Content-Length: 5000\r\n\r\n");
  for (int i = 0; i < 5000; i++) big[n + i] = (char)('a' + i % 26);
  big[n + 5000] = '\0';
  feed_split(cc, TO, big, 777, 1);
  feed(cc, FROM, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", 2);
  const wr_exchange *e = wr_capture_get(c, 1);
  assert_int_equal(e->req.body_size, 5000);
  assert_int_equal(e->req.body_len, 1000);
  assert_true(e->req.body_truncated);
  assert_memory_equal(e->req.body, big + n, 1000);
  assert_int_equal(e->state, WR_EXCHANGE_DONE);
  assert_false(e->resp.body_truncated);
  wr_capture_conn_close(cc, 3);
  free(big);
  wr_capture_del(c);
}

static void one_exchange(wr_capture *c, const char *body, uint64_t t) {
  wr_capture_conn *cc;
  assert_int_equal(wr_capture_conn_new(c, &cc, 0), 0);
  char head[128];
  snprintf(head, sizeof head,
           "POST /n HTTP/1.1\r\nHost: h\r\nContent-Length: %zu\r\n\r\n",
           strlen(body));
  feed(cc, TO, head, t);
  feed(cc, TO, body, t);
  feed(cc, FROM, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", t + 1);
  wr_capture_conn_close(cc, t + 2);
}

static void test_eviction_by_count(void **st) {
  (void)st;
  wr_capture_config cfg = {.max_exchanges = 4};
  wr_capture *c;
  assert_int_equal(wr_capture_new(&c, &cfg, NULL, NULL, NULL), 0);
  for (int i = 0; i < 10; i++) one_exchange(c, "x", (uint64_t)i * 10);
  assert_int_equal(wr_capture_count(c), 4);
  assert_int_equal(wr_capture_evicted(c), 6);
  for (uint64_t id = 1; id <= 6; id++) assert_null(wr_capture_get(c, id));
  for (uint64_t id = 7; id <= 10; id++)
    assert_int_equal(wr_capture_get(c, id)->id, id);
  int seen = 0;
  for (const wr_exchange *e = wr_capture_older(c, 0); e;
       e = wr_capture_older(c, e->id))
    seen++;
  assert_int_equal(seen, 4);
  /* Clear forgets them; ids go on. */
  wr_capture_clear(c);
  assert_int_equal(wr_capture_count(c), 0);
  assert_null(wr_capture_older(c, 0));
  one_exchange(c, "y", 500);
  assert_non_null(wr_capture_get(c, 11));
  assert_int_equal(wr_capture_mem(c), wr_capture_get(c, 11)->mem);
  wr_capture_del(c);
}

/* The ring full of big bodies, then small exchanges: their records reuse
 * small buffers but give the big ones back. */
static void test_memory_returns(void **st) {
  (void)st;
  wr_capture_config cfg = {.max_exchanges = 4};
  wr_capture *c;
  assert_int_equal(wr_capture_new(&c, &cfg, NULL, NULL, NULL), 0);
  char *body = malloc(200 * 1024 + 1);
  memset(body, 'b', 200 * 1024);
  body[200 * 1024] = '\0';
  for (int i = 0; i < 4; i++) one_exchange(c, body, (uint64_t)i);
  assert_true(wr_capture_mem(c) > 4 * 200 * 1024);
  for (int i = 0; i < 4; i++) one_exchange(c, "small", 100 + (uint64_t)i);
  assert_int_equal(wr_capture_count(c), 4);
  assert_true(wr_capture_mem(c) < 64 * 1024);
  assert_memory_equal(wr_capture_older(c, 0)->req.body, "small", 5);
  free(body);
  wr_capture_del(c);
}

static void test_memory_bound(void **st) {
  (void)st;
  /* 300 KiB for records of 100 KiB bodies: never over, oldest go first. */
  wr_capture_config cfg = {.max_bytes = 300 * 1024, .max_head = 4096};
  wr_capture *c;
  assert_int_equal(wr_capture_new(&c, &cfg, NULL, NULL, NULL), 0);
  char *body = malloc(100 * 1024 + 1);
  memset(body, 'b', 100 * 1024);
  body[100 * 1024] = '\0';
  for (int i = 0; i < 50; i++) {
    one_exchange(c, body, (uint64_t)i * 10);
    assert_true(wr_capture_mem(c) <= cfg.max_bytes);
    assert_non_null(wr_capture_get(c, (uint64_t)i + 1)); /* newest kept */
  }
  assert_true(wr_capture_count(c) >= 1 && wr_capture_count(c) <= 3);
  assert_true(wr_capture_evicted(c) >= 47);
  /* One body bigger than the whole budget: kept only up to what fits. */
  char *huge = malloc(400 * 1024 + 1);
  memset(huge, 'h', 400 * 1024);
  huge[400 * 1024] = '\0';
  one_exchange(c, huge, 1000);
  const wr_exchange *e = wr_capture_older(c, 0);
  assert_int_equal(e->req.body_size, 400 * 1024);
  assert_true(e->req.body_truncated);
  assert_true(wr_capture_mem(c) <= cfg.max_bytes);
  free(huge);
  free(body);
  wr_capture_del(c);
}

/* A WebSocket frame; |mask| NULL for the server's unmasked frames. */
static size_t ws_frame(uint8_t *out, int fin, int op, const char *payload,
                       size_t n, const uint8_t *mask) {
  size_t o = 0;
  out[o++] = (uint8_t)((fin ? 0x80 : 0) | op);
  uint8_t m = mask ? 0x80 : 0;
  if (n < 126) {
    out[o++] = (uint8_t)(m | n);
  } else {
    out[o++] = m | 126;
    out[o++] = (uint8_t)(n >> 8);
    out[o++] = (uint8_t)n;
  }
  if (mask) {
    memcpy(out + o, mask, 4);
    o += 4;
  }
  for (size_t i = 0; i < n; i++)
    out[o + i] = (uint8_t)payload[i] ^ (mask ? mask[i & 3] : 0);
  return o + n;
}

static void test_websocket(void **st) {
  (void)st;
  for (size_t step = 0; step <= 7; step++) {
    wr_capture *c;
    assert_int_equal(wr_capture_new(&c, NULL, NULL, NULL, NULL), 0);
    wr_capture_conn *cc;
    assert_int_equal(wr_capture_conn_new(c, &cc, 0), 0);
    uint8_t buf[2048];
    size_t n = 0;
    const char *up = "GET /ws HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\n"
                     "Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n"
                     "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n";
    memcpy(buf, up, strlen(up));
    n = strlen(up);
    const uint8_t mask[4] = {1, 2, 3, 4};
    /* The visitor's first frames may come before the 101 reaches it. */
    n += ws_frame(buf + n, 1, 1, "hello", 5, mask);
    n += ws_frame(buf + n, 0, 1, "frag", 4, mask);
    n += ws_frame(buf + n, 1, 9, "p", 1, mask); /* ping between fragments */
    n += ws_frame(buf + n, 1, 0, "ment", 4, mask);
    size_t k = step ? step : n;
    for (size_t off = 0; off < n; off += k)
      assert_int_equal(
          wr_capture_conn_feed(cc, TO, buf + off, WR_MIN(k, n - off), 5), 0);
    uint8_t rb[1024];
    const char *sw = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket"
                     "\r\nConnection: Upgrade\r\n\r\n";
    size_t rn = strlen(sw);
    memcpy(rb, sw, rn);
    char longmsg[300];
    memset(longmsg, 'L', sizeof longmsg);
    rn += ws_frame(rb + rn, 1, 1, "world", 5, NULL);
    rn += ws_frame(rb + rn, 1, 2, longmsg, sizeof longmsg, NULL);
    for (size_t off = 0; off < rn; off += k)
      assert_int_equal(
          wr_capture_conn_feed(cc, FROM, rb + off, WR_MIN(k, rn - off), 9), 0);
    const wr_exchange *e = wr_capture_get(c, 1);
    assert_int_equal(e->status, 101);
    assert_int_equal(e->state, WR_EXCHANGE_UPGRADED);
    assert_int_equal(e->ws_total, 5);
    assert_int_equal(e->ws_count, 5);
    /* In the order they completed on each side: visitor first here. */
    const wr_capture_ws_msg *m = e->ws;
    assert_int_equal(m[0].opcode, 1);
    assert_memory_equal(m[0].preview, "hello", 5);
    assert_int_equal(m[1].opcode, 9);
    assert_int_equal(m[2].len, 8);
    assert_memory_equal(m[2].preview, "fragment", 8);
    assert_false(m[2].from_origin);
    assert_true(m[3].from_origin);
    assert_memory_equal(m[3].preview, "world", 5);
    assert_int_equal(m[4].opcode, 2);
    assert_int_equal(m[4].len, 300);
    assert_int_equal(m[4].preview_len, WR_CAPTURE_WS_PREVIEW);
    assert_int_equal(e->ws_bytes[0], 5 + 8 + 1);
    assert_int_equal(e->ws_bytes[1], 305);
    wr_capture_conn_close(cc, 20);
    assert_int_equal(e->state, WR_EXCHANGE_CLOSED);
    assert_int_equal(e->t_end_us, 20);
    wr_capture_del(c);
  }
}

static void test_ws_ring_bound(void **st) {
  (void)st;
  wr_capture_config cfg = {.ws_max_msgs = 10};
  wr_capture *c;
  assert_int_equal(wr_capture_new(&c, &cfg, NULL, NULL, NULL), 0);
  wr_capture_conn *cc;
  assert_int_equal(wr_capture_conn_new(c, &cc, 0), 0);
  feed(cc, TO,
       "GET /ws HTTP/1.1\r\nHost: h\r\nConnection: upgrade\r\n"
       "Upgrade: websocket\r\n\r\n",
       1);
  feed(cc, FROM,
       "HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\n"
       "Upgrade: websocket\r\n\r\n",
       2);
  for (int i = 0; i < 25; i++) {
    uint8_t f[32];
    char p[8];
    int pn = snprintf(p, sizeof p, "m%d", i);
    size_t fn = ws_frame(f, 1, 1, p, (size_t)pn, NULL);
    assert_int_equal(wr_capture_conn_feed(cc, FROM, f, fn, 3), 0);
  }
  const wr_exchange *e = wr_capture_get(c, 1);
  assert_int_equal(e->ws_total, 25);
  assert_int_equal(e->ws_count, 10);
  /* The last ten, oldest first. */
  const wr_capture_ws_msg *first = &e->ws[e->ws_first];
  assert_memory_equal(first->preview, "m15", 3);
  assert_memory_equal(e->ws[(e->ws_first + 9) % e->ws_cap].preview, "m24", 3);
  wr_capture_conn_close(cc, 4);
  wr_capture_del(c);
}

static void test_upgrade_refused(void **st) {
  (void)st;
  wr_capture *c;
  assert_int_equal(wr_capture_new(&c, NULL, NULL, NULL, NULL), 0);
  wr_capture_conn *cc;
  assert_int_equal(wr_capture_conn_new(c, &cc, 0), 0);
  feed(cc, TO,
       "GET /ws HTTP/1.1\r\nHost: h\r\nConnection: upgrade\r\n"
       "Upgrade: websocket\r\n\r\nGET /next HTTP/1.1\r\nHost: h\r\n\r\n",
       1);
  feed(cc, FROM,
       "HTTP/1.1 426 Upgrade Required\r\nContent-Length: 0\r\n\r\n"
       "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
       2);
  const wr_exchange *a = wr_capture_get(c, 1), *b = wr_capture_get(c, 2);
  assert_int_equal(a->status, 426);
  assert_int_equal(a->state, WR_EXCHANGE_DONE);
  assert_non_null(b);
  assert_string_equal(b->target, "/next");
  assert_int_equal(b->status, 200);
  assert_memory_equal(b->resp.body, "ok", 2);
  wr_capture_conn_close(cc, 3);
  wr_capture_del(c);
}

static void test_not_http(void **st) {
  (void)st;
  wr_capture *c;
  evlog l = {0};
  assert_int_equal(wr_capture_new(&c, NULL, &cbs, &l, NULL), 0);
  wr_capture_conn *cc;
  assert_int_equal(wr_capture_conn_new(c, &cc, 0), 0);
  feed(cc, TO, "GET / HTTP/1.1\r\nHost: h\r\n\r\n", 1);
  const char *junk = "SSH-2.0-OpenSSH\r\n";
  assert_int_equal(
      wr_capture_conn_feed(cc, FROM, (const uint8_t *)junk, strlen(junk), 2),
      WR_ERR_PROTO);
  /* Dead: later input is ignored, not an error, and records nothing. */
  feed(cc, TO, "GET /again HTTP/1.1\r\nHost: h\r\n\r\n", 3);
  const wr_exchange *e = wr_capture_get(c, 1);
  assert_non_null(e->error);
  assert_int_equal(wr_capture_count(c), 1);
  wr_capture_conn_close(cc, 4);
  assert_int_equal(e->state, WR_EXCHANGE_ABORTED);
  /* A response nobody asked for. */
  assert_int_equal(wr_capture_conn_new(c, &cc, 0), 0);
  const char *r = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
  assert_int_equal(
      wr_capture_conn_feed(cc, FROM, (const uint8_t *)r, strlen(r), 5),
      WR_ERR_PROTO);
  wr_capture_conn_close(cc, 6);
  assert_int_equal(wr_capture_count(c), 1);
  wr_capture_del(c);
}

static void test_close_semantics(void **st) {
  (void)st;
  wr_capture *c;
  assert_int_equal(wr_capture_new(&c, NULL, NULL, NULL, NULL), 0);
  wr_capture_conn *cc;
  /* Delimited by the close: complete at close. */
  assert_int_equal(wr_capture_conn_new(c, &cc, 0), 0);
  feed(cc, TO, "GET /eof HTTP/1.1\r\nHost: h\r\n\r\n", 1);
  feed(cc, FROM, "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nall of it", 2);
  wr_capture_conn_close(cc, 3);
  const wr_exchange *e = wr_capture_get(c, 1);
  assert_int_equal(e->state, WR_EXCHANGE_DONE);
  assert_int_equal(e->resp.body_size, 9);
  /* Cut short: aborted.  A head never completed: no record at all. */
  assert_int_equal(wr_capture_conn_new(c, &cc, 0), 0);
  feed(cc, TO, "GET /cut HTTP/1.1\r\nHost: h\r\n\r\nGET /half HTTP/1.1\r\nHo",
       4);
  feed(cc, FROM, "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", 5);
  wr_capture_conn_close(cc, 6);
  e = wr_capture_get(c, 2);
  assert_int_equal(e->state, WR_EXCHANGE_ABORTED);
  assert_int_equal(e->t_end_us, 6);
  assert_null(wr_capture_get(c, 3));
  assert_int_equal(wr_capture_count(c), 2);
  /* No response at all. */
  assert_int_equal(wr_capture_conn_new(c, &cc, 9), 0);
  feed(cc, TO, "DELETE /x HTTP/1.1\r\nHost: h\r\n\r\n", 7);
  wr_capture_conn_close(cc, 8);
  e = wr_capture_older(c, 0);
  assert_int_equal(e->replay_of, 9);
  assert_int_equal(e->state, WR_EXCHANGE_ABORTED);
  assert_int_equal(e->status, 0);
  wr_capture_del(c);
}

/* Lenient response parsing lets a NUL through in a value: the record
 * keeps its name/value layout (the NUL shows as '?'). */
static void test_nul_in_value(void **st) {
  (void)st;
  wr_capture *c;
  assert_int_equal(wr_capture_new(&c, NULL, NULL, NULL, NULL), 0);
  wr_capture_conn *cc;
  assert_int_equal(wr_capture_conn_new(c, &cc, 0), 0);
  feed(cc, TO, "GET / HTTP/1.1\r\nHost: h\r\n\r\n", 1);
  static const char r[] = "HTTP/1.1 200 OK\r\nX-N: a\0b\r\nX-Last: z\r\n"
                          "Content-Length: 0\r\n\r\n";
  wr_capture_conn_feed(cc, FROM, (const uint8_t *)r, sizeof r - 1, 2);
  wr_capture_conn_close(cc, 3);
  const wr_exchange *e = wr_capture_get(c, 1);
  size_t pos = 0, n = 0;
  const char *name, *value;
  while (wr_capture_field(&e->resp, &pos, &name, &value)) n++;
  assert_int_equal(n, e->resp.nfields);
  assert_int_equal(n, 3);
  assert_string_equal(hdr(&e->resp, "X-N"), "a?b");
  assert_string_equal(hdr(&e->resp, "X-Last"), "z");
  wr_capture_del(c);
}

static void test_bad_config(void **st) {
  (void)st;
  wr_capture *c;
  wr_capture_config cfg = {.max_bytes = 1000};
  assert_int_equal(wr_capture_new(&c, &cfg, NULL, NULL, NULL), WR_ERR_INVAL);
  wr_capture_config ok = {0};
  assert_int_equal(wr_capture_new(&c, &ok, NULL, NULL, NULL), 0);
  wr_capture_conn *cc;
  assert_int_equal(wr_capture_conn_new(c, &cc, 0), 0);
  assert_int_equal(wr_capture_conn_feed(cc, 7, (const uint8_t *)"x", 1, 0),
                   WR_ERR_INVAL);
  wr_capture_conn_close(cc, 0);
  wr_capture_del(c);
}

/* Every allocation failing in turn: errors or partial records, never a
 * crash or a leak (ASan checks the latter). */
static void test_failmalloc(void **st) {
  (void)st;
  for (long k = 1; k < 200; k++) {
    failmalloc fm;
    failmalloc_init(&fm, k);
    wr_capture *c;
    if (wr_capture_new(&c, NULL, NULL, NULL, &fm.mem) != 0) {
      assert_int_equal(fm.live, 0);
      continue;
    }
    for (int i = 0; i < 3; i++) {
      wr_capture_conn *cc;
      if (wr_capture_conn_new(c, &cc, 0) != 0) continue;
      wr_capture_conn_feed(cc, TO, (const uint8_t *)req1, strlen(req1), 1);
      wr_capture_conn_feed(cc, FROM, (const uint8_t *)resp1, strlen(resp1), 2);
      wr_capture_conn_close(cc, 3);
    }
    assert_true(wr_capture_count(c) <= 3);
    wr_capture_del(c);
    assert_int_equal(fm.live, 0);
    if (fm.count < k) break; /* no failure happened: all paths covered */
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_simple_every_split),
      cmocka_unit_test(test_pipelined_head_chunked),
      cmocka_unit_test(test_truncation),
      cmocka_unit_test(test_eviction_by_count),
      cmocka_unit_test(test_memory_bound),
      cmocka_unit_test(test_memory_returns),
      cmocka_unit_test(test_websocket),
      cmocka_unit_test(test_ws_ring_bound),
      cmocka_unit_test(test_upgrade_refused),
      cmocka_unit_test(test_not_http),
      cmocka_unit_test(test_close_semantics),
      cmocka_unit_test(test_nul_in_value),
      cmocka_unit_test(test_bad_config),
      cmocka_unit_test(test_failmalloc),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
