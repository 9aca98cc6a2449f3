/*
 * What parsing one 1 KiB exchange costs the node (head.c: the visitor's
 * request and the origin's response) and the client's inspector
 * (capture.c: both again), in isolation (docs/BENCHMARKS.md, Round 7).
 *
 *   head     wr_http_req_feed of the request wrk sends, then
 *            wr_http_resp_feed of nginx's 200 with a 1 KiB body, until
 *            each says NONE: what the node does per request
 *   capture  wr_capture_conn_feed of the request as the node forwards it
 *            (X-Forwarded-*, X-Request-Id) and of the same response, on
 *            one keep-alive connection: what the client's inspector does
 *
 * usage: bench_head_cost [ITERATIONS]   (default 200000)
 * Prints ns per exchange.  For instruction counts, which do not depend on
 * the neighbours on a shared box:
 *   valgrind --tool=callgrind --toggle-collect='run_*' bench_head_cost 20000
 * and divide each function's inclusive count by the iterations.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "warren/capture.h"
#include "warren/http.h"

static const char req[] = "GET /1k HTTP/1.1\r\nHost: app.bench.test\r\n\r\n";
static const char fwd_req[] =
    "GET /1k HTTP/1.1\r\nHost: app.bench.test\r\n"
    "X-Forwarded-For: 127.0.0.1\r\nX-Forwarded-Proto: http\r\n"
    "X-Forwarded-Host: app.bench.test\r\n"
    "X-Request-Id: 0707070707070707070707070707070707\r\n\r\n";
static char resp[2048];
static size_t resp_len;

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void fixed_rand(uint8_t *d, size_t n, void *ud) {
  (void)ud;
  memset(d, 7, n);
}

/* Drains one message through |feed| until NONE; returns bytes of events. */
static size_t drain_req(wr_http_req *q) {
  size_t off = 0, tot = 0, n = sizeof req - 1;
  wr_http_ev ev;
  do {
    wr_ssize k = wr_http_req_feed(q, (const uint8_t *)req + off, n - off, &ev);
    if (k < 0) abort();
    off += (size_t)k;
    tot += ev.len;
  } while (ev.type != WR_HTTP_EV_NONE);
  return tot;
}

static size_t drain_resp(wr_http_resp *r) {
  size_t off = 0, tot = 0;
  wr_http_ev ev;
  if (wr_http_resp_expect(r, 0) != 0) abort();
  do {
    wr_ssize k = wr_http_resp_feed(r, (const uint8_t *)resp + off,
                                   resp_len - off, &ev);
    if (k < 0 || ev.type == WR_HTTP_EV_ERROR) abort();
    off += (size_t)k;
    tot += ev.len;
  } while (ev.type != WR_HTTP_EV_NONE);
  return tot;
}

/* Not static, no inlining: callgrind's --toggle-collect finds them. */
size_t run_head(wr_http_req *q, wr_http_resp *r, long n);
size_t run_capture(wr_capture_conn *cc, long n);

__attribute__((noinline)) size_t run_head(wr_http_req *q, wr_http_resp *r,
                                          long n) {
  size_t tot = 0;
  for (long i = 0; i < n; i++) tot += drain_req(q) + drain_resp(r);
  return tot;
}

__attribute__((noinline)) size_t run_capture(wr_capture_conn *cc, long n) {
  for (long i = 0; i < n; i++) {
    if (wr_capture_conn_feed(cc, WR_CAPTURE_TO_ORIGIN,
                             (const uint8_t *)fwd_req, sizeof fwd_req - 1,
                             (uint64_t)i) != 0 ||
        wr_capture_conn_feed(cc, WR_CAPTURE_FROM_ORIGIN,
                             (const uint8_t *)resp, resp_len,
                             (uint64_t)i + 1) != 0)
      abort();
  }
  return (size_t)n;
}

int main(int argc, char **argv) {
  long n = argc > 1 ? atol(argv[1]) : 200000;
  if (n <= 0) n = 1;
  resp_len = (size_t)snprintf(
      resp, sizeof resp,
      "HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\n"
      "Date: Fri, 04 Dec 2026 16:50:07 GMT\r\n"
      "Content-Type: application/octet-stream\r\nContent-Length: 1024\r\n"
      "Last-Modified: Fri, 04 Dec 2026 16:50:00 GMT\r\n"
      "Connection: keep-alive\r\nETag: \"6571e2a8-400\"\r\n"
      "Accept-Ranges: bytes\r\n\r\n");
  memset(resp + resp_len, 'x', 1024);
  resp_len += 1024;

  wr_http_req_config cfg = {.domain = "bench.test",
                            .client_addr = "127.0.0.1",
                            .proto = "http",
                            .rand = fixed_rand};
  wr_http_req *q;
  wr_http_resp *r;
  wr_capture *c;
  wr_capture_conn *cc;
  if (wr_http_req_new(&q, &cfg, NULL) != 0 ||
      wr_http_resp_new(&r, 0, NULL) != 0 ||
      wr_capture_new(&c, NULL, NULL, NULL, NULL) != 0 ||
      wr_capture_conn_new(c, &cc, 0) != 0) {
    fprintf(stderr, "bench_head_cost: setup failed\n");
    return 1;
  }
  double t0 = now_s();
  size_t x = run_head(q, r, n);
  double t1 = now_s();
  x += run_capture(cc, n);
  double t2 = now_s();
  printf("head     %.0f ns per exchange\n", (t1 - t0) * 1e9 / (double)n);
  printf("capture  %.0f ns per exchange\n", (t2 - t1) * 1e9 / (double)n);
  printf("(%zu)\n", x);
  wr_capture_conn_close(cc, 0);
  wr_capture_del(c);
  wr_http_req_del(q);
  wr_http_resp_del(r);
  return 0;
}
