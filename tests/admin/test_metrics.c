/*
 * Metrics registry: registration rules, exact exposition text, the
 * snprintf-style size contract, collect hooks, and allocation failures.
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
#include "warren/metrics.h"

/* Renders into a malloc'd NUL-terminated string. */
static char *render(const wr_metrics *m) {
  size_t n = wr_metrics_render(m, NULL, 0);
  char *s = malloc(n + 1);
  assert_non_null(s);
  assert_int_equal(wr_metrics_render(m, (uint8_t *)s, n), n);
  s[n] = '\0';
  return s;
}

static void test_exposition_exact(void **state) {
  wr_metrics *m;
  uint64_t *req, *mal_mux, *mal_swim;
  int64_t *alive, *dead;
  assert_int_equal(wr_metrics_new(&m, NULL), 0);
  assert_int_equal(wr_metrics_counter(m, "warren_http_requests_total", NULL,
                                      NULL, "Requests received.", &req),
                   0);
  assert_int_equal(wr_metrics_counter(m, "warren_rx_malformed_total", "source",
                                      "mux", "Malformed input.", &mal_mux),
                   0);
  assert_int_equal(wr_metrics_gauge(m, "warren_swim_members", "state", "alive",
                                    "Members per state.", &alive),
                   0);
  /* A later series of an earlier family joins that family's block. */
  assert_int_equal(wr_metrics_counter(m, "warren_rx_malformed_total", "source",
                                      "swim", NULL, &mal_swim),
                   0);
  assert_int_equal(
      wr_metrics_gauge(m, "warren_swim_members", "state", "dead", NULL, &dead),
      0);
  *req += 41;
  (*req)++;
  *mal_mux = 3;
  *alive = 5;
  *dead = -2;
  (*mal_swim)++;
  char *s = render(m);
  assert_string_equal(s,
                      "# HELP warren_http_requests_total Requests received.\n"
                      "# TYPE warren_http_requests_total counter\n"
                      "warren_http_requests_total 42\n"
                      "# HELP warren_rx_malformed_total Malformed input.\n"
                      "# TYPE warren_rx_malformed_total counter\n"
                      "warren_rx_malformed_total{source=\"mux\"} 3\n"
                      "warren_rx_malformed_total{source=\"swim\"} 1\n"
                      "# HELP warren_swim_members Members per state.\n"
                      "# TYPE warren_swim_members gauge\n"
                      "warren_swim_members{state=\"alive\"} 5\n"
                      "warren_swim_members{state=\"dead\"} -2\n");
  free(s);
  assert_int_equal(wr_metrics_count(m), 5);
  wr_metrics_del(m);
}

static void test_escaping_and_extremes(void **state) {
  wr_metrics *m;
  uint64_t *c;
  int64_t *g;
  assert_int_equal(wr_metrics_new(&m, NULL), 0);
  assert_int_equal(wr_metrics_counter(m, "warren_x_total", "k", "a\"b\\c\nd",
                                      "line\\one\ntwo", &c),
                   0);
  assert_int_equal(wr_metrics_gauge(m, "warren_ns:g", NULL, NULL, "", &g), 0);
  *c = UINT64_MAX;
  *g = INT64_MIN;
  char *s = render(m);
  assert_string_equal(s, "# HELP warren_x_total line\\\\one\\ntwo\n"
                         "# TYPE warren_x_total counter\n"
                         "warren_x_total{k=\"a\\\"b\\\\c\\nd\"} "
                         "18446744073709551615\n"
                         "# HELP warren_ns:g \n"
                         "# TYPE warren_ns:g gauge\n"
                         "warren_ns:g -9223372036854775808\n");
  free(s);
  wr_metrics_del(m);
}

static void test_registration_rules(void **state) {
  wr_metrics *m;
  uint64_t *a, *b;
  int64_t *g;
  assert_int_equal(wr_metrics_new(&m, NULL), 0);
  assert_int_equal(wr_metrics_counter(m, "warren_a_total", NULL, NULL, "h", &a),
                   0);
  /* Same series again: the same slot. */
  assert_int_equal(
      wr_metrics_counter(m, "warren_a_total", NULL, NULL, NULL, &b), 0);
  assert_ptr_equal(a, b);
  /* Type clash, label clash. */
  assert_int_equal(wr_metrics_gauge(m, "warren_a_total", NULL, NULL, "h", &g),
                   WR_ERR_EXISTS);
  assert_non_null(g); /* the sink: still safe to write */
  *g = 7;
  assert_int_equal(wr_metrics_counter(m, "warren_a_total", "k", "v", "h", &b),
                   WR_ERR_EXISTS);
  assert_int_equal(wr_metrics_counter(m, "warren_l_total", "k", "v", "h", &b),
                   0);
  assert_int_equal(wr_metrics_counter(m, "warren_l_total", "j", "v", "h", &b),
                   WR_ERR_EXISTS);
  assert_int_equal(wr_metrics_counter(m, "warren_l_total", NULL, NULL, "h", &b),
                   WR_ERR_EXISTS);
  /* Bad names and labels. */
  const char *bad_names[] = {"http_total", "warren_",  "warren_a-b",
                             "warren_a b", "Warren_x", ""};
  for (size_t i = 0; i < sizeof bad_names / sizeof *bad_names; i++)
    assert_int_equal(wr_metrics_counter(m, bad_names[i], NULL, NULL, "h", &b),
                     WR_ERR_INVAL);
  assert_int_equal(wr_metrics_counter(m, "warren_b", "1k", "v", "h", &b),
                   WR_ERR_INVAL);
  assert_int_equal(wr_metrics_counter(m, "warren_b", "__k", "v", "h", &b),
                   WR_ERR_INVAL);
  assert_int_equal(wr_metrics_counter(m, "warren_b", "k", NULL, "h", &b),
                   WR_ERR_INVAL);
  assert_int_equal(wr_metrics_counter(m, "warren_b", NULL, NULL, NULL, &b),
                   WR_ERR_INVAL); /* no help on first registration */
  char longname[200];
  memset(longname, 'x', sizeof longname - 1);
  memcpy(longname, "warren_", 7);
  longname[sizeof longname - 1] = '\0';
  assert_int_equal(wr_metrics_counter(m, longname, NULL, NULL, "h", &b),
                   WR_ERR_INVAL);
  /* Failed registrations left nothing behind: only "warren_a_total" and
   * "warren_l_total"{k="v"}. */
  assert_int_equal(wr_metrics_count(m), 2);
  wr_metrics_del(m);
}

static void test_limit(void **state) {
  wr_metrics *m;
  uint64_t *c;
  char v[16];
  assert_int_equal(wr_metrics_new(&m, NULL), 0);
  for (int i = 0; i < WR_METRICS_MAX_SERIES; i++) {
    snprintf(v, sizeof v, "%d", i);
    assert_int_equal(
        wr_metrics_counter(m, "warren_many_total", "i", v, "h", &c), 0);
  }
  assert_int_equal(
      wr_metrics_counter(m, "warren_many_total", "i", "x", "h", &c),
      WR_ERR_LIMIT);
  /* Existing series are still found at the cap. */
  assert_int_equal(
      wr_metrics_counter(m, "warren_many_total", "i", "7", NULL, &c), 0);
  wr_metrics_del(m);
}

static void test_null_registry(void **state) {
  uint64_t *c;
  int64_t *g;
  assert_int_equal(
      wr_metrics_counter(NULL, "warren_a_total", NULL, NULL, "h", &c), 0);
  assert_int_equal(wr_metrics_gauge(NULL, "warren_g", NULL, NULL, "h", &g), 0);
  (*c)++;
  (*g)--;
  assert_int_equal(wr_metrics_render(NULL, NULL, 0), 0);
  assert_int_equal(wr_metrics_count(NULL), 0);
  wr_metrics_collect(NULL);
  wr_metrics_del(NULL);
}

static void test_render_truncation(void **state) {
  wr_metrics *m;
  uint64_t *c;
  assert_int_equal(wr_metrics_new(&m, NULL), 0);
  assert_int_equal(
      wr_metrics_counter(m, "warren_t_total", "k", "v", "help", &c), 0);
  *c = 12345;
  char *full = render(m);
  size_t n = strlen(full);
  /* Every smaller buffer gets the prefix that fits and the full length,
   * and nothing past its end is touched. */
  for (size_t cap = 0; cap <= n; cap++) {
    uint8_t buf[256];
    memset(buf, 0xAA, sizeof buf);
    assert_int_equal(wr_metrics_render(m, buf, cap), n);
    assert_memory_equal(buf, full, cap);
    assert_int_equal(buf[cap], 0xAA);
  }
  free(full);
  wr_metrics_del(m);
}

typedef struct hook_state {
  int64_t *g;
  int calls;
} hook_state;

static void hook(void *ud) {
  hook_state *h = ud;
  h->calls++;
  *h->g = 100 + h->calls;
}

static void test_collect_hooks(void **state) {
  wr_metrics *m;
  hook_state h = {0};
  assert_int_equal(wr_metrics_new(&m, NULL), 0);
  assert_int_equal(
      wr_metrics_gauge(m, "warren_routes", NULL, NULL, "Routes.", &h.g), 0);
  assert_int_equal(wr_metrics_on_collect(m, hook, &h), 0);
  assert_int_equal(wr_metrics_on_collect(m, NULL, &h), WR_ERR_INVAL);
  wr_metrics_collect(m);
  char *s = render(m);
  assert_non_null(strstr(s, "\nwarren_routes 101\n"));
  free(s);
  wr_metrics_collect(m);
  assert_int_equal(h.calls, 2);
  assert_int_equal(*h.g, 102);
  for (int i = 1; i < 32; i++)
    assert_int_equal(wr_metrics_on_collect(m, hook, &h), 0);
  assert_int_equal(wr_metrics_on_collect(m, hook, &h), WR_ERR_LIMIT);
  wr_metrics_del(m);
}

/* Every allocation of a registration may fail: the call reports NOMEM,
 * the registry stays as it was, and nothing leaks. */
static void test_failmalloc(void **state) {
  int succeeded = 0;
  for (long k = 1; k < 50 && !succeeded; k++) {
    failmalloc fm;
    failmalloc_init(&fm, k);
    wr_metrics *m;
    uint64_t *c;
    int64_t *g;
    int rv = wr_metrics_new(&m, &fm.mem);
    if (rv != 0) {
      assert_int_equal(rv, WR_ERR_NOMEM);
      assert_int_equal(fm.live, 0);
      continue;
    }
    size_t before;
    int ok = 1;
    before = wr_metrics_count(m);
    rv = wr_metrics_counter(m, "warren_a_total", "k", "v", "h", &c);
    if (rv != 0) {
      assert_int_equal(rv, WR_ERR_NOMEM);
      assert_int_equal(wr_metrics_count(m), before);
      assert_int_equal(wr_metrics_render(m, NULL, 0), 0);
      ok = 0;
    }
    if (ok) {
      before = wr_metrics_count(m);
      rv = wr_metrics_gauge(m, "warren_g", NULL, NULL, "h", &g);
      if (rv != 0) {
        assert_int_equal(rv, WR_ERR_NOMEM);
        assert_int_equal(wr_metrics_count(m), before);
        ok = 0;
      }
    }
    if (ok) succeeded = 1;
    wr_metrics_del(m);
    assert_int_equal(fm.live, 0);
  }
  assert_true(succeeded);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_exposition_exact),
      cmocka_unit_test(test_escaping_and_extremes),
      cmocka_unit_test(test_registration_rules),
      cmocka_unit_test(test_limit),
      cmocka_unit_test(test_null_registry),
      cmocka_unit_test(test_render_truncation),
      cmocka_unit_test(test_collect_hooks),
      cmocka_unit_test(test_failmalloc),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
