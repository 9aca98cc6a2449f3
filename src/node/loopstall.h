/*
 * The node's loop-stall gauges: how long one turn of the event loop spent
 * in callbacks (not waiting for I/O), so a stall (a slow table merge, a
 * flood of gossip) shows in /metrics.  docs/CHAOS.md, issue 12.
 */
#ifndef WARREN_NODE_LOOPSTALL_H
#define WARREN_NODE_LOOPSTALL_H

#include <uv.h>

#include "warren/metrics.h"

typedef struct wr_loopstall {
  uv_prepare_t prepare;
  uint64_t last_ns, last_idle_ns; /* at the previous prepare */
  uint64_t max_ns;                /* since start */
  uint64_t window_ns[2];          /* max in this and the previous window */
  uint64_t window_start_ns;
  /* The same in CPU time of the loop's thread: on a shared host a turn
   * can be long in wall time because the process waited for a CPU, which
   * is the host's doing, not the node's work. */
  uint64_t last_cpu_ns, cpu_max_ns, cpu_window_ns[2];
  uint64_t *stalls;               /* turns over WR_LOOPSTALL_SLOW_MS */
  int64_t *g_max, *g_recent, *g_cpu_max, *g_cpu_recent;
  int started;
} wr_loopstall;

/* A turn this long is counted in warren_loop_stalls_total: 100 ms is
 * where a visitor notices, and ten times the local gossip interval. */
#define WR_LOOPSTALL_SLOW_MS 100
/* warren_loop_stall_recent_ms covers 10 to 20 s back. */
#define WR_LOOPSTALL_WINDOW_MS 10000

/* Starts measuring on |loop| (call before uv_run: it turns on libuv's idle
 * time metric) and registers the gauges in |m|.  0 or a libuv error. */
int wr_loopstall_start(wr_loopstall *s, uv_loop_t *loop, wr_metrics *m);
/* Closes the handle (no callback; |s| must live until the loop ends). */
void wr_loopstall_stop(wr_loopstall *s);

#endif
