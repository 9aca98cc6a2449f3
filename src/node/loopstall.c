/*
 * Loop stall: the busy time of each turn of the event loop.
 *
 * A turn runs timers, pending callbacks, idle and prepare handles, then
 * blocks in poll and runs the I/O callbacks, then check and close
 * callbacks.  Between two prepare callbacks lies exactly one turn, and
 * libuv's idle-time metric (UV_METRICS_IDLE_TIME) says how much of it was
 * spent blocked in poll, so busy = wall time - idle time.  That makes a
 * uv_check handle unnecessary: a prepare/check pair could only time the
 * part after the I/O callbacks, and the I/O callbacks are where a flood of
 * gossip or a slow table merge would stall.
 *
 * The gauges are updated at scrape time (a collect hook), so the hot path
 * is two clock reads and a compare per turn.
 */
#include <string.h>
#include <time.h>

#include "loopstall.h"

/* CPU time of the calling thread (the loop's), ns; 0 if unavailable. */
static uint64_t thread_cpu_ns(void) {
  struct timespec ts;
  if (clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts) != 0) return 0;
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void on_prepare(uv_prepare_t *h) {
  wr_loopstall *s = h->data;
  uint64_t now = uv_hrtime(), idle = uv_metrics_idle_time(h->loop);
  uint64_t cpu_now = thread_cpu_ns();
  if (s->last_ns) {
    uint64_t wall = now - s->last_ns, idled = idle - s->last_idle_ns;
    uint64_t busy = wall > idled ? wall - idled : 0;
    /* The CPU the whole turn used, poll included (a few microseconds of
     * it: blocked in poll costs no CPU). */
    uint64_t cpu = cpu_now > s->last_cpu_ns ? cpu_now - s->last_cpu_ns : 0;
    if (busy > s->max_ns) s->max_ns = busy;
    if (cpu > s->cpu_max_ns) s->cpu_max_ns = cpu;
    if (now - s->window_start_ns >= WR_LOOPSTALL_WINDOW_MS * 1000000ull) {
      s->window_ns[1] = s->window_ns[0];
      s->window_ns[0] = 0;
      s->cpu_window_ns[1] = s->cpu_window_ns[0];
      s->cpu_window_ns[0] = 0;
      s->window_start_ns = now;
    }
    if (busy > s->window_ns[0]) s->window_ns[0] = busy;
    if (cpu > s->cpu_window_ns[0]) s->cpu_window_ns[0] = cpu;
    if (busy >= WR_LOOPSTALL_SLOW_MS * 1000000ull) (*s->stalls)++;
  } else {
    s->window_start_ns = now;
  }
  s->last_ns = now;
  s->last_idle_ns = idle;
  s->last_cpu_ns = cpu_now;
}

static void collect(void *ud) {
  wr_loopstall *s = ud;
  uint64_t recent =
      s->window_ns[0] > s->window_ns[1] ? s->window_ns[0] : s->window_ns[1];
  *s->g_max = (int64_t)(s->max_ns / 1000000);
  *s->g_recent = (int64_t)(recent / 1000000);
  recent = s->cpu_window_ns[0] > s->cpu_window_ns[1] ? s->cpu_window_ns[0]
                                                     : s->cpu_window_ns[1];
  *s->g_cpu_max = (int64_t)(s->cpu_max_ns / 1000000);
  *s->g_cpu_recent = (int64_t)(recent / 1000000);
}

int wr_loopstall_start(wr_loopstall *s, uv_loop_t *loop, wr_metrics *m) {
  memset(s, 0, sizeof *s);
  int rv = uv_loop_configure(loop, UV_METRICS_IDLE_TIME);
  if (rv != 0) return rv;
  wr_metrics_gauge(m, "warren_loop_stall_max_ms", NULL, NULL,
                   "Longest turn of the event loop spent in callbacks "
                   "(not waiting for I/O) since start, ms.",
                   &s->g_max);
  wr_metrics_gauge(m, "warren_loop_stall_recent_ms", NULL, NULL,
                   "Longest such turn in the last 10 to 20 s, ms.",
                   &s->g_recent);
  wr_metrics_gauge(m, "warren_loop_cpu_max_ms", NULL, NULL,
                   "Most CPU time one turn of the event loop used since "
                   "start, ms (the busy time less waiting for a CPU).",
                   &s->g_cpu_max);
  wr_metrics_gauge(m, "warren_loop_cpu_recent_ms", NULL, NULL,
                   "Most CPU time of one turn in the last 10 to 20 s, ms.",
                   &s->g_cpu_recent);
  wr_metrics_counter(m, "warren_loop_stalls_total", NULL, NULL,
                     "Turns of the event loop busy for 100 ms or more.",
                     &s->stalls);
  wr_metrics_on_collect(m, collect, s);
  uv_prepare_init(loop, &s->prepare);
  s->prepare.data = s;
  uv_prepare_start(&s->prepare, on_prepare);
  /* Measuring must not keep the loop (and so the node) alive. */
  uv_unref((uv_handle_t *)&s->prepare);
  s->started = 1;
  return 0;
}

void wr_loopstall_stop(wr_loopstall *s) {
  if (!s->started) return;
  s->started = 0;
  uv_close((uv_handle_t *)&s->prepare, NULL);
}
