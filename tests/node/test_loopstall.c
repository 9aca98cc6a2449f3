/*
 * The loop-stall gauges (src/node/loopstall.c) on a real libuv loop: a
 * timer callback that keeps the loop busy for 150 ms shows as a turn of
 * at least 150 ms and one slow turn; time spent waiting for a timer (the
 * loop idle in poll) does not count; the unreferenced handle never keeps
 * the loop alive and closes cleanly.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>
#include <uv.h>

#include "loopstall.h"

/* The value of metric NAME in the registry's exposition, or -1. */
static long long metric(wr_metrics *m, const char *name) {
  static uint8_t buf[16384];
  wr_metrics_collect(m);
  size_t n = wr_metrics_render(m, buf, sizeof buf - 1);
  assert_true(n < sizeof buf - 1);
  buf[n] = 0;
  size_t k = strlen(name);
  for (char *p = (char *)buf; (p = strstr(p, name)) != NULL; p++) {
    if ((p == (char *)buf || p[-1] == '\n') && p[k] == ' ')
      return atoll(p + k + 1);
  }
  return -1;
}

static void busy_ms(uint64_t ms) {
  uint64_t end = uv_hrtime() + ms * 1000000ull;
  while (uv_hrtime() < end) {
  }
}

/* Spins until the thread used |ms| of CPU (at most 10 s of wall time: a
 * loaded host may give it a CPU only part of the time). */
static void busy_cpu_ms(uint64_t ms) {
  struct timespec ts;
  uint64_t start, now, end = uv_hrtime() + 10000000000ull;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  start = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
  do {
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    now = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
  } while (now - start < ms * 1000000ull && uv_hrtime() < end);
}

static int fired;
static void on_cpu(uv_timer_t *t) {
  (void)t;
  fired++;
  busy_cpu_ms(150);
}
static void on_sleep(uv_timer_t *t) {
  (void)t;
  fired++;
  uv_sleep(200); /* a turn that waits: long in wall time, no CPU */
}
static void on_busy(uv_timer_t *t) {
  (void)t;
  fired++;
  busy_ms(150);
}
static void on_idle_wait(uv_timer_t *t) {
  (void)t;
  fired++;
}

static void test_busy_turn_counted(void **state) {
  (void)state;
  uv_loop_t loop;
  wr_metrics *m;
  wr_loopstall s;
  assert_int_equal(uv_loop_init(&loop), 0);
  assert_int_equal(wr_metrics_new(&m, NULL), 0);
  assert_int_equal(wr_loopstall_start(&s, &loop, m), 0);

  /* 300 ms of waiting for a timer first: idle, not a stall. */
  uv_timer_t idle, busy;
  uv_timer_init(&loop, &idle);
  uv_timer_init(&loop, &busy);
  fired = 0;
  uv_timer_start(&idle, on_idle_wait, 300, 0);
  uv_run(&loop, UV_RUN_DEFAULT);
  assert_int_equal(fired, 1);
  /* The handle is unreferenced: uv_run returned once the timer was done. */
  assert_true(metric(m, "warren_loop_stall_max_ms") < 100);
  assert_int_equal(metric(m, "warren_loop_stalls_total"), 0);

  uv_timer_start(&busy, on_busy, 10, 0);
  uv_run(&loop, UV_RUN_DEFAULT);
  /* The busy turn is seen at the next prepare: one more turn. */
  uv_timer_start(&idle, on_idle_wait, 1, 0);
  uv_run(&loop, UV_RUN_DEFAULT);
  assert_int_equal(fired, 3);
  long long max = metric(m, "warren_loop_stall_max_ms");
  assert_true(max >= 150);
  assert_true(max < 2000);
  assert_int_equal(metric(m, "warren_loop_stalls_total"), 1);
  assert_int_equal(metric(m, "warren_loop_stall_recent_ms"), max);

  /* A turn that waits is a stall in wall time but uses no CPU. */
  long long cpu0 = metric(m, "warren_loop_cpu_max_ms");
  assert_true(cpu0 <= max);
  uv_timer_start(&busy, on_sleep, 1, 0);
  uv_run(&loop, UV_RUN_DEFAULT);
  uv_timer_start(&idle, on_idle_wait, 1, 0);
  uv_run(&loop, UV_RUN_DEFAULT);
  assert_true(metric(m, "warren_loop_stall_max_ms") >= 200);
  assert_int_equal(metric(m, "warren_loop_cpu_max_ms"), cpu0);
  /* A turn that computes for 150 ms of CPU shows in both. */
  uv_timer_start(&busy, on_cpu, 1, 0);
  uv_run(&loop, UV_RUN_DEFAULT);
  uv_timer_start(&idle, on_idle_wait, 1, 0);
  uv_run(&loop, UV_RUN_DEFAULT);
  assert_int_equal(fired, 7);
  assert_true(metric(m, "warren_loop_cpu_max_ms") >= 150);
  assert_true(metric(m, "warren_loop_cpu_recent_ms") >= 150);

  uv_close((uv_handle_t *)&idle, NULL);
  uv_close((uv_handle_t *)&busy, NULL);
  wr_loopstall_stop(&s);
  wr_loopstall_stop(&s); /* twice is harmless */
  uv_run(&loop, UV_RUN_DEFAULT);
  assert_int_equal(uv_loop_close(&loop), 0);
  wr_metrics_del(m);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_busy_turn_counted),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
