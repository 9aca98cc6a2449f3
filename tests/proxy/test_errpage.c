/*
 * Tests for src/proxy/errpage.c.  Every page is read back with the
 * response parser (wr_http_resp), so "complete, well-framed HTTP/1.1
 * response" is checked by a real parser, not by string matching alone.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "warren/err.h"
#include "warren/http.h"

/* Parses |page| as the response to one GET; returns the body. */
static void parse_page(const uint8_t *page, size_t len, int status, char *body,
                       size_t body_cap) {
  wr_http_resp *h;
  assert_int_equal(wr_http_resp_new(&h, 0, NULL), 0);
  assert_int_equal(wr_http_resp_expect(h, 0), 0);
  size_t bn = 0;
  int heads = 0, ends = 0;
  const uint8_t *p = page;
  size_t left = len;
  for (;;) {
    wr_http_ev ev;
    wr_ssize r = wr_http_resp_feed(h, p, left, &ev);
    assert_true(r >= 0);
    p += r;
    left -= (size_t)r;
    if (ev.type == WR_HTTP_EV_NONE) break;
    switch (ev.type) {
    case WR_HTTP_EV_HEAD:
      heads++;
      assert_int_equal(ev.status, status);
      assert_int_equal(ev.keep_alive, 0); /* Connection: close */
      break;
    case WR_HTTP_EV_BODY:
      assert_true(bn + ev.len < body_cap);
      memcpy(body + bn, ev.data, ev.len);
      bn += ev.len;
      break;
    case WR_HTTP_EV_END:
      ends++;
      break;
    default:
      fail_msg("event %d", ev.type);
    }
  }
  body[bn] = '\0';
  assert_int_equal(heads, 1);
  assert_int_equal(ends, 1);
  assert_int_equal(left, 0);
  wr_http_resp_del(h);
}

static void test_statuses(void **state) {
  (void)state;
  static const struct {
    int status;
    const char *line, *text;
  } cases[] = {
      {400, "HTTP/1.1 400 Bad Request\r\n", "not valid HTTP/1.1"},
      {404, "HTTP/1.1 404 Not Found\r\n", "No tunnel serves"},
      {405, "HTTP/1.1 405 Method Not Allowed\r\n", "reverse proxy"},
      {431, "HTTP/1.1 431 Request Header Fields Too Large\r\n", "cookies"},
      {502, "HTTP/1.1 502 Bad Gateway\r\n", "warren http PORT"},
      {503, "HTTP/1.1 503 Service Unavailable\r\n", "retry"},
      {504, "HTTP/1.1 504 Gateway Timeout\r\n", "too long"},
      {418, "HTTP/1.1 418 Client Error\r\n", "detail here"},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    uint8_t buf[WR_HTTP_ERROR_PAGE_MAX];
    wr_ssize n = wr_http_error_page(buf, sizeof(buf), cases[i].status,
                                    "detail here", "rid-1");
    assert_true(n > 0);
    buf[n < (wr_ssize)sizeof(buf) ? n : n - 1] = 0;
    assert_int_equal(memcmp(buf, cases[i].line, strlen(cases[i].line)), 0);
    assert_non_null(strstr((char *)buf, "\r\nConnection: close\r\n"));
    assert_non_null(strstr((char *)buf, "\r\nX-Request-Id: rid-1\r\n"));
    assert_non_null(
        strstr((char *)buf, "Content-Type: text/plain; charset=utf-8\r\n"));
    char body[2048];
    parse_page(buf, (size_t)n, cases[i].status, body, sizeof(body));
    char first[64];
    snprintf(first, sizeof(first), "%d ", cases[i].status);
    assert_int_equal(strncmp(body, first, strlen(first)), 0);
    assert_non_null(strstr(body, "\n\nwarren: detail here\n"));
    assert_non_null(strstr(body, cases[i].text));
  }
}

static void test_not_found(void **state) {
  (void)state;
  uint8_t buf[WR_HTTP_ERROR_PAGE_MAX];
  char body[2048];
  wr_ssize n = wr_http_not_found_page(buf, sizeof(buf), "app.localhost", "app",
                                      "localhost", NULL);
  assert_true(n > 0);
  parse_page(buf, (size_t)n, 404, body, sizeof(body));
  assert_string_equal(body,
                      "404 Not Found\n\nwarren: no tunnel is serving "
                      "'app.localhost'.\nStart one with: warren http PORT "
                      "--name app\n(on a separate node, add --node "
                      "HOST:PORT --fleet-key KEY)\n");
  assert_null(memmem(buf, (size_t)n, "X-Request-Id", 12));
  n = wr_http_not_found_page(buf, sizeof(buf), "a.b.localhost", NULL,
                             "localhost", "x");
  assert_true(n > 0);
  parse_page(buf, (size_t)n, 404, body, sizeof(body));
  assert_non_null(strstr(body, "'a.b.localhost' is not a tunnel name"));
  assert_non_null(strstr(body, "NAME.localhost"));
}

static void test_injection(void **state) {
  (void)state;
  uint8_t buf[WR_HTTP_ERROR_PAGE_MAX];
  char body[2048];
  /* CR/LF in the detail or id cannot add a header or a line. */
  wr_ssize n = wr_http_error_page(buf, sizeof(buf), 400,
                                  "bad\r\nSet-Cookie: x=1", "a\r\nX-Evil: 1");
  assert_true(n > 0);
  assert_null(memmem(buf, (size_t)n, "\r\nSet-Cookie", 12));
  assert_null(memmem(buf, (size_t)n, "X-Evil", 6));
  assert_null(memmem(buf, (size_t)n, "X-Request-Id", 12));
  parse_page(buf, (size_t)n, 400, body, sizeof(body));
  assert_non_null(strstr(body, "warren: bad??Set-Cookie: x=1\n"));
  n = wr_http_not_found_page(buf, sizeof(buf), "h\nx", "n\r", "d", NULL);
  assert_true(n > 0);
  assert_null(memmem(buf, (size_t)n, "h\nx", 3));
  /* Long details are cut; the page stays under the documented cap. */
  char big[4000];
  memset(big, 'z', sizeof(big) - 1);
  big[sizeof(big) - 1] = 0;
  n = wr_http_error_page(buf, sizeof(buf), 502, big, big);
  assert_true(n > 0 && n <= WR_HTTP_ERROR_PAGE_MAX);
  parse_page(buf, (size_t)n, 502, body, sizeof(body));
  assert_non_null(strstr(body, "zzz...\n"));
  n = wr_http_not_found_page(buf, sizeof(buf), big, big, big, big);
  assert_true(n > 0 && n <= WR_HTTP_ERROR_PAGE_MAX);
}

static void test_bounds(void **state) {
  (void)state;
  uint8_t buf[WR_HTTP_ERROR_PAGE_MAX];
  wr_ssize full = wr_http_error_page(buf, sizeof(buf), 504, "slow", "id");
  assert_true(full > 0);
  for (size_t cap = 0; cap < (size_t)full; cap++)
    assert_int_equal(wr_http_error_page(buf, cap, 504, "slow", "id"),
                     WR_ERR_NOBUF);
  assert_int_equal(wr_http_error_page(buf, (size_t)full, 504, "slow", "id"),
                   full);
  assert_int_equal(wr_http_error_page(buf, sizeof(buf), 99, "x", NULL),
                   WR_ERR_INVAL);
  assert_int_equal(wr_http_error_page(buf, sizeof(buf), 600, "x", NULL),
                   WR_ERR_INVAL);
  /* No detail: no "warren:" line. */
  wr_ssize n = wr_http_error_page(buf, sizeof(buf), 504, NULL, NULL);
  assert_true(n > 0);
  assert_null(memmem(buf, (size_t)n, "warren: ", 8));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_statuses),
      cmocka_unit_test(test_not_found),
      cmocka_unit_test(test_injection),
      cmocka_unit_test(test_bounds),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
