/*
 * Metrics registry (src/admin/metrics.c): named counters and gauges that
 * the admin API exposes at GET /metrics in the Prometheus text format
 * 0.0.4.
 *
 * Metrics are registered once at startup and then updated in hot paths
 * through a plain pointer, with no lookup, lock or atomic (the daemon is
 * one libuv thread):
 *
 *   uint64_t *malformed;
 *   rv = wr_metrics_counter(m, "warren_rx_malformed_total", "source", "mux",
 *                           "Frames dropped as malformed.", &malformed);
 *   ...
 *   (*malformed)++;
 *
 * Every name starts with "warren_" and matches [a-zA-Z_:][a-zA-Z0-9_:]*;
 * counters should end in "_total" (Prometheus convention, not enforced).
 * A metric has at most one label (kind="ping", state="alive"); the same
 * name may be registered with several label values, which share one
 * # HELP / # TYPE block in the output.  Registering the same (name, label
 * value) twice returns the same slot, so several instances of a module
 * (two tunnels, two proxies) can count into one series.
 *
 * Pointers returned stay valid until wr_metrics_del().  A NULL registry is
 * allowed everywhere a module registers: it hands out a pointer to a
 * private sink that is never exposed, so modules can increment
 * unconditionally in tests and tools that run without an admin API.
 */
#ifndef WARREN_METRICS_H
#define WARREN_METRICS_H

#include "warren/types.h"

typedef struct wr_metrics wr_metrics;

/* Caps that bound the registry (and so the size of GET /metrics). */
#define WR_METRICS_MAX_SERIES 4096
#define WR_METRICS_MAX_NAME 128  /* name and label key, bytes */
#define WR_METRICS_MAX_VALUE 128 /* label value, bytes */

/*
 * Creates an empty registry.  |mem| may be NULL (libc).
 * Returns 0 or WR_ERR_NOMEM.
 */
int wr_metrics_new(wr_metrics **pm, const wr_mem *mem);

/* Frees the registry and every slot; pointers handed out become invalid. */
void wr_metrics_del(wr_metrics *m);

/*
 * Registers (or finds) the counter |name| with an optional label
 * |label_key|=|label_value| (both NULL for none) and stores a pointer to
 * its value in |*pval|.  |help| is one line of text (copied; may be NULL
 * only when the name was registered before).  Strings are copied.
 *
 * Returns 0, or
 *   WR_ERR_INVAL  bad name, label key or value (not "warren_...", too long,
 *                 bad characters, NUL help on first registration)
 *   WR_ERR_EXISTS |name| exists with another type, or with another label key
 *   WR_ERR_LIMIT  WR_METRICS_MAX_SERIES reached
 *   WR_ERR_NOMEM
 * On error |*pval| points to the private sink, so a caller that ignores the
 * error still has a valid pointer.
 */
int wr_metrics_counter(wr_metrics *m, const char *name, const char *label_key,
                       const char *label_value, const char *help,
                       uint64_t **pval);

/* The same for a gauge: a signed value that goes up and down. */
int wr_metrics_gauge(wr_metrics *m, const char *name, const char *label_key,
                     const char *label_value, const char *help, int64_t **pval);

/*
 * A hook run by wr_metrics_collect() just before each exposition, for
 * gauges that are cheaper to compute on demand than to keep up to date
 * (members per state, routes in the table).  The hook sets the values
 * through the pointers it registered.  At most 32 hooks; returns 0,
 * WR_ERR_LIMIT or WR_ERR_INVAL (m or fn NULL).  Hooks must not register
 * new metrics.
 */
int wr_metrics_on_collect(wr_metrics *m, void (*fn)(void *user_data),
                          void *user_data);

/* Runs every collect hook, in registration order. */
void wr_metrics_collect(wr_metrics *m);

/*
 * Writes the exposition text (format 0.0.4) into |dst| (at most |cap|
 * bytes, not NUL-terminated) and returns the full length it needs, as
 * snprintf does: when the result is > |cap|, grow the buffer and call
 * again.  Families appear in first-registration order and series in
 * registration order within a family:
 *
 *   # HELP warren_swim_members Members known, per state.
 *   # TYPE warren_swim_members gauge
 *   warren_swim_members{state="alive"} 3
 *   warren_swim_members{state="dead"} 0
 *
 * Does not run the collect hooks (call wr_metrics_collect() first).
 * A NULL registry renders as the empty text.
 */
size_t wr_metrics_render(const wr_metrics *m, uint8_t *dst, size_t cap);

/* Number of series registered (0 for NULL); for tests and sizing. */
size_t wr_metrics_count(const wr_metrics *m);

#endif
