/*
 * Fault injection in `warren node` (src/node/faults.c; docs/FAULTS.md):
 * the fault model (include/warren/fault.h) wired to the node's traffic
 * and to the admin API.
 *
 *   gossip datagrams   swim_uv's tap: drop, hold (delay), duplicate
 *   sync streams       swim_uv's tap: a dropped chunk cuts the connection
 *   node links,        wr_link's tap: a dropped chunk cuts the link
 *   tunnel links
 *   pause              the loop thread sleeps (a GC pause, a SIGSTOP)
 *
 *   GET    /faults         {"enabled","seed","rules","counters",...}
 *   POST   /faults         add one rule (JSON), answers it with its id
 *   PUT    /faults         replace the rule set {"seed":N,"rules":[...]}
 *   DELETE /faults         remove every rule
 *   DELETE /faults/ID      remove one rule
 *   POST   /faults/pause   {"ms":N}: stall the whole node N ms (<= 60 s)
 *
 * Off unless the node was started with --faults (or faults = on in its
 * config): the routes then answer 403 and say how to turn it on.  One
 * node per process (the state is static, like swim's callbacks).
 */
#ifndef WARREN_NODE_FAULTS_H
#define WARREN_NODE_FAULTS_H

#include <stddef.h>

#include <uv.h>

#include "warren/admin.h"
#include "warren/swim_uv.h"

/*
 * Registers the /faults routes and the warren_fault_* metrics on |admin|,
 * and, when |enabled|, installs the taps on |swim| (may be NULL: no
 * gossip) and on every link.  |file| (may be NULL or "") is a rule set
 * loaded at once, as wr_node_faults_reload does.  |self| is our member
 * id.  Returns 0, or an error after printing a one-line reason to stderr
 * (a bad --faults-file, or --faults-file without --faults).
 */
int wr_node_faults_start(uv_loop_t *loop, wr_admin *admin, wr_swim_uv *swim,
                         const char *self, int enabled, const char *file);

/* Removes the taps, frees held datagrams and closes the timers.  Call
 * before swim closes.  Safe to call when start was never called. */
void wr_node_faults_stop(void);

/*
 * Replaces the rule set (and the seed, when the file has one) with the
 * document in |path| ({"seed":N,"rules":[...]}, as GET /faults answers
 * it; at most WR_FAULT_JSON_MAX bytes), all or nothing.  For SIGHUP.
 * Returns 0, or an error with a one-line reason in |err|: WR_ERR_INVAL
 * (fault injection is off), WR_ERR_IO (cannot read), or the parser's.
 * Logs the outcome either way.
 */
int wr_node_faults_reload(const char *path, char *err, size_t errlen);

#endif
