/*
 * The node's mesh wiring (src/node/mesh.c): binds the routes table
 * (src/routes/, sans-IO) to swim's gossip and anti-entropy, to the
 * ingress's binding hooks, to a libuv timer, and to the admin API.  It
 * holds no protocol logic of its own: every decision is the table's.
 *
 *   ingress bind      -> wr_routes_bind   -> swim USER update (gossip)
 *   swim USER "r.*"   -> wr_routes_apply  -> news is gossiped on
 *   swim sync         -> wr_routes_sync_* (opaque app-state records)
 *   member changed    -> wr_routes_owner_state
 *   table "lost"      -> wr_ingress_evict (NAME_TAKEN / NAME_MOVED)
 */
#ifndef WARREN_NODE_MESH_H
#define WARREN_NODE_MESH_H

#include <uv.h>

#include "warren/admin.h"
#include "warren/ingress.h"
#include "warren/routes.h"
#include "warren/swim.h"
#include "warren/swim_uv.h"

typedef struct wr_mesh wr_mesh;

/* |self| is our node id; the routes epoch is taken from the wall clock.
 * |routes_set| (may be NULL or empty) is --routes-set's "k=v,k=v" list of
 * table limits, already checked with wr_mesh_routes_set.  Registers its
 * counters in |metrics| (may be NULL).  0 or an error. */
int wr_mesh_new(wr_mesh **pm, uv_loop_t *loop, const char *self,
                wr_metrics *metrics, const char *routes_set);
/* Applies a "k=v,k=v" list of routes limits (wr_routes_config_set) to
 * |cfg|: 0, or -1 with a one-line reason in |err|. */
int wr_mesh_routes_set(wr_routes_config *cfg, const char *list, char *err,
                       size_t errlen);
/* Closes the timer; |m| is freed once it is closed.  Call after the
 * ingress and swim have stopped calling into it. */
void wr_mesh_close(wr_mesh *m);

/* Accounts from --tokens (NULL: an open fleet).  Borrowed: the node
 * replaces it on SIGHUP and calls this again before freeing the old. */
struct wr_tokens;
void wr_mesh_set_tokens(wr_mesh *m, const struct wr_tokens *tokens);

/* Where to gossip (may stay NULL: a node without --gossip). */
void wr_mesh_set_swim(wr_mesh *m, wr_swim_uv *swim);
/* Where to evict bindings that lost their name. */
void wr_mesh_set_ingress(wr_mesh *m, wr_ingress *ig);
/*
 * The node starts draining: every name bound here that another live node
 * also serves (a client's other link, a --balance peer) is released in
 * the table now, and gossiped, so the fleet stops routing it here while
 * the local tunnel finishes what it carries.  A name served only here
 * stays until its client moves (releasing it would make it a 404
 * everywhere meanwhile).  Returns how many were released.
 */
size_t wr_mesh_drain(wr_mesh *m);
/* Fills the ingress config's routes hooks (bind_check, bound, unbound,
 * lookup_remote and their user data). */
void wr_mesh_ingress_hooks(wr_mesh *m, wr_ingress_config *ic);

/* swim callbacks, forwarded by the node's own (which also handles the
 * "event/" keys).  wr_mesh_user_update returns 1 for news, 0 for old
 * news, -1 when the key is not a route (the caller decides). */
int wr_mesh_user_update(wr_mesh *m, const wr_swim_update *u);
void wr_mesh_member_changed(wr_mesh *m, const wr_swim_member_info *mi);
/* The routes epoch this node writes at, advertised in its swim tags as
 * WR_MESH_EPOCH_TAG=N so that peers drop its bindings from an earlier
 * process as soon as it is back (wr_routes_owner_epoch). */
#define WR_MESH_EPOCH_TAG "re"
uint64_t wr_mesh_epoch(const wr_mesh *m);
/* The host of swim's app-state sync of the table (wr_routes_swim_sync's
 * user data); lives as long as |m|. */
const wr_routes_sync_host *wr_mesh_sync_host(wr_mesh *m);

/* GET /routes (and /routes?name=N) on |admin|. */
void wr_mesh_admin_routes(wr_mesh *m, wr_admin *admin);
/* Adds "routes", "routes_digest", "routes_digest_age_ms" to a /status
 * object. */
int wr_mesh_status(wr_mesh *m, json_t *status);

/* Mirrors the table's counters into the metrics registered by
 * wr_mesh_new; the node calls it from its collect hook while |m| lives
 * (the registry has no way to drop a hook, and outlives the mesh). */
void wr_mesh_collect(wr_mesh *m);

wr_routes *wr_mesh_routes(wr_mesh *m);

#endif
