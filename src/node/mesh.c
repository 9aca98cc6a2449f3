/*
 * The node's mesh wiring: the routes table (sans-IO) bound to swim, the
 * ingress, a timer and the admin API (see mesh.h).
 *
 * Re-entrancy.  The table's callbacks must not call back into it; swim's
 * callbacks and sync hooks must not call into swim (swim.h), and the
 * ingress's hooks must not call wr_ingress_evict from inside the hook
 * (ingress.h).  Yet a USER update from swim can make the table evict a
 * binding, whose unbound hook releases the name (a table call) whose
 * tombstone must be gossiped (a swim call).  So nothing acts in place:
 * "lost" queues an eviction and gossip() queues the entry, and every
 * entry point ends with settle(), which arms a zero-delay flush timer.
 * The flush runs on the loop, outside every core, in the next turn: the
 * evictions first (which may queue more gossip), then the broadcasts.
 * Those wait at most one loop turn.
 *
 * Gossip ingest.  A USER update is only checked and queued in swim's
 * callback (wr_routes_ingest_push: old news, an owner over its ingest
 * rate, a full queue are dropped there, counted, and never gossiped on);
 * an idle handle then applies INGEST_SLICE of the queue per loop turn
 * and relays what was news.  So a member flooding the table with valid,
 * well-sealed entries costs each turn a bounded slice, and the loop
 * keeps probing, answering and serving in between (docs/CHAOS.md, the
 * poison scenario).
 */
#include "mesh.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

#include "warren/err.h"
#include "tags.h"
#include "tokens.h"
#include "warren/log.h"

/* Evictions decided by one table call.  A call touches one name (an
 * apply, a bind) or one owner's names (a liveness change, a sync delta),
 * and we hold at most one binding per name; the bound only has to cover
 * a burst between two settle() calls.  Beyond it the eviction waits for
 * the name's next change (counted). */
#define EVICT_MAX 256

/* An encoded entry of ours waiting to be gossiped (see flush). */
typedef struct pending {
  struct pending *next;
  size_t len;
  uint8_t enc[WR_ROUTE_ENCODED_MAX];
} pending;

/* Names whose grace-period binding here may be covered by another owner
 * now (on_changed, filtered by wr_ingress_gone); rechecked in the flush.
 * Few names are in their grace period at once; beyond the bound, the
 * binding waits for its next lookup or its grace's end (counted). */
#define RECHECK_MAX 64
#define DEAD_MAX 16

typedef struct eviction {
  char name[WR_ROUTE_NAME_MAX + 1];
  uint8_t session[WR_ROUTE_SESSION_LEN];
  wr_route_loss why;
} eviction;

/* Queued gossip entries applied per loop turn.  An apply is a decode-free
 * insert and one name's recompute (a few microseconds; the log insert
 * may walk back over reordered arrivals, at most the owner's quota), so
 * 64 keep a turn around a millisecond, while 64 a turn at even 1,000
 * turns a second is far above what the ingest rate admits. */
#define INGEST_SLICE 64

enum { MC_GOSSIP_TX, MC_GOSSIP_RX_NEWS, MC_GOSSIP_RX_OLD, MC_REJECTED,
       MC_BINDS, MC_BIND_TAKEN, MC_EVICT_TAKEN, MC_EVICT_MOVED,
       MC_EVICT_OVERFLOW, MC_COLLECTED, MC_QUOTA, MC_GOSSIP_DROPPED,
       MC_RATE_DROPS, MC_INGEST_DROPS, MC_UNKNOWN_DROPS, MC_RELAYED, MC_N };
enum { MG_ENTRIES, MG_NAMES, MG_OWNERS, MG_INGEST_QUEUE, MG_N };

struct wr_mesh {
  uv_loop_t *loop;
  uv_timer_t timer;
  uv_timer_t flush;  /* zero-delay: acts on what settle() queued */
  uv_idle_t ingest;  /* active while gossip waits in the ingest queue */
  int closing_handles;
  pending *out_head, *out_tail;
  wr_routes *rt;
  wr_swim_uv *swim;
  wr_ingress *ig;
  const wr_tokens *tokens;
  size_t next_owner; /* round robin among remote owners of one name */
  wr_routes_sync_host sync_host; /* swim's app-state sync of our table */
  char self[WR_ROUTE_OWNER_MAX + 1];
  eviction evq[EVICT_MAX];
  size_t nevq;
  char recheck[RECHECK_MAX][WR_ROUTE_NAME_MAX + 1];
  size_t nrecheck;
  /* Members just declared dead whose node links the flush closes (a
   * stream to a dead owner would otherwise wait for its upstream timeout,
   * 60 s, when the owner's host went silent rather than refusing). */
  char dead[DEAD_MAX][WR_ROUTE_OWNER_MAX + 1];
  size_t ndead;
  uint64_t routes_changed_at; /* uv_now of the last resolution change */
  /* Gossiped entries the table dropped (rate, queue, unknown owner) as
   * of the last settle(), and whether the flush owes swim a report. */
  uint64_t drops_seen;
  int behind;
  uint64_t c[MC_N];           /* our own counters, mirrored at scrapes */
  uint64_t *mc[MC_N];
  int64_t *mg[MG_N];
};

static uint64_t now_ms(const wr_mesh *m) { return uv_now(m->loop); }

/* ---- gossip ---------------------------------------------------------- */

/* Queues an encoded entry of ours for dissemination: broadcast by the
 * flush (pushed at once to a few members by swim, then relayed and
 * piggybacked).  A failed allocation loses this push only: the next
 * anti-entropy sync carries the entry (counted). */
static void gossip(wr_mesh *m, const uint8_t *enc, size_t len) {
  if (!m->swim || len > WR_ROUTE_ENCODED_MAX) return;
  pending *p = malloc(sizeof *p);
  if (!p) {
    m->c[MC_GOSSIP_DROPPED]++;
    return;
  }
  p->next = NULL;
  p->len = len;
  memcpy(p->enc, enc, len);
  if (m->out_tail) m->out_tail->next = p; else m->out_head = p;
  m->out_tail = p;
}

static void broadcast_pending(wr_mesh *m) {
  while (m->out_head) {
    pending *p = m->out_head;
    m->out_head = p->next;
    if (!m->out_head) m->out_tail = NULL;
    wr_route_entry e;
    if (m->swim && wr_route_entry_decode(p->enc, p->len, &e) == 0) {
      char key[WR_SWIM_ID_MAX + 1];
      wr_route_gossip_key(e.owner, e.name, key, sizeof key);
      int rv = wr_swim_broadcast_user(wr_swim_uv_core(m->swim), key,
                                      e.version, p->enc, p->len, now_ms(m));
      if (rv == 0) {
        m->c[MC_GOSSIP_TX]++;
      } else {
        m->c[MC_GOSSIP_DROPPED]++;
        WR_LOG_WARNF("mesh", "gossip_failed", "name=%s err=%s", e.name,
                     wr_strerror(rv));
      }
    }
    free(p);
  }
  if (m->swim) wr_swim_uv_kick(m->swim);
}

/* ---- table callbacks (record only) ---------------------------------- */

static void on_lost(wr_routes *t, const wr_route_entry *e, wr_route_loss why,
                    void *ud) {
  (void)t;
  wr_mesh *m = ud;
  if (m->nevq == EVICT_MAX) {
    m->c[MC_EVICT_OVERFLOW]++;
    return;
  }
  eviction *v = &m->evq[m->nevq++];
  snprintf(v->name, sizeof v->name, "%s", e->name);
  memcpy(v->session, e->session, sizeof v->session);
  v->why = why;
}

static void on_changed(wr_routes *t, const char *name, void *ud) {
  (void)t;
  wr_mesh *m = ud;
  m->routes_changed_at = now_ms(m);
  /* A binding of ours in its grace period whose client bound elsewhere
   * (a move, or its other link): released in the flush, so visitors go
   * to the new owner rather than waiting out the grace. */
  if (m->ig && wr_ingress_gone(m->ig, name)) {
    size_t i = 0;
    while (i < m->nrecheck && strcmp(m->recheck[i], name) != 0) i++;
    if (i == m->nrecheck) {
      if (m->nrecheck < RECHECK_MAX)
        snprintf(m->recheck[m->nrecheck++], sizeof m->recheck[0], "%s",
                 name);
      else
        m->c[MC_EVICT_OVERFLOW]++;
    }
  }
  /* Debug: a busy fleet changes thousands of routes a second; bench/
   * routes.py times dissemination from these lines. */
  WR_LOG_DEBUGF("mesh", "route_changed", "name=%s", name);
}

static int on_owner_known(wr_routes *t, const char *owner, void *ud) {
  (void)t;
  wr_mesh *m = ud;
  if (!m->swim) return 0; /* alone: nobody else's entries are live */
  wr_swim_member_info mi;
  if (wr_swim_member_find(wr_swim_uv_core(m->swim), owner, &mi) != 0)
    return 0;
  return mi.state == WR_SWIM_ALIVE || mi.state == WR_SWIM_SUSPECT;
}

static void on_republish(wr_routes *t, const uint8_t *enc, size_t len,
                         void *ud) {
  (void)t;
  /* Safe inside the callback: gossip() only queues (see settle). */
  gossip(ud, enc, len);
}

/* ---- after every table call ------------------------------------------ */

static void on_timer(uv_timer_t *h);

static void arm_timer(wr_mesh *m) {
  wr_tstamp dl = wr_routes_deadline(m->rt);
  if (dl == WR_TSTAMP_NONE) {
    uv_timer_stop(&m->timer);
    return;
  }
  uint64_t now = now_ms(m);
  uv_timer_start(&m->timer, on_timer, dl > now ? dl - now : 0, 0);
}

/* The end of every entry point: the timer follows the table's deadline,
 * and queued evictions and gossip wait for the flush. */
static void on_flush(uv_timer_t *h);

/* Entries dropped at ingest are not lost for good (ingest.c): the next
 * anti-entropy sync offers them again.  But the periodic one may be a
 * whole interval away, so a drop asks swim for catch-up syncs
 * (wr_swim_sync_behind), from the flush: never from inside swim. */
static void note_drops(wr_mesh *m) {
  wr_routes_stats st;
  wr_routes_get_stats(m->rt, &st);
  uint64_t n = st.rate_drops + st.ingest_drops + st.unknown_drops;
  if (n != m->drops_seen) {
    m->drops_seen = n;
    m->behind = 1;
  }
}

static void settle(wr_mesh *m) {
  arm_timer(m);
  note_drops(m);
  if ((m->nevq || m->nrecheck || m->ndead || m->out_head || m->behind) &&
      !m->closing_handles)
    uv_timer_start(&m->flush, on_flush, 0, 0);
}

/* Outside every core: run the evictions (an eviction closes the client's
 * link, and the ingress's unbound hook releases the name, which may queue
 * gossip and, rarely, more evictions: the loop takes those too), then
 * broadcast. */
static void on_flush(uv_timer_t *h) {
  wr_mesh *m = h->data;
  while (m->nevq) {
    eviction v = m->evq[--m->nevq];
    int code = v.why == WR_ROUTE_LOST_MOVED ? WR_INGRESS_EVICT_MOVED
                                            : WR_INGRESS_EVICT_TAKEN;
    m->c[v.why == WR_ROUTE_LOST_MOVED ? MC_EVICT_MOVED : MC_EVICT_TAKEN]++;
    WR_LOG_INFOF("mesh", "binding_lost", "name=%s why=%s", v.name,
                 v.why == WR_ROUTE_LOST_MOVED ? "moved" : "taken");
    if (m->ig) wr_ingress_evict(m->ig, v.name, v.session, code);
  }
  while (m->nrecheck) {
    /* A copy: the release below may queue names into the same slot. */
    char name[WR_ROUTE_NAME_MAX + 1];
    memcpy(name, m->recheck[--m->nrecheck], sizeof name);
    if (m->ig && wr_ingress_recheck(m->ig, name))
      WR_LOG_INFOF("mesh", "grace_ended", "name=%s why=served_elsewhere",
                   name);
  }
  while (m->ndead) {
    char id[WR_ROUTE_OWNER_MAX + 1];
    memcpy(id, m->dead[--m->ndead], sizeof id);
    size_t n = m->ig ? wr_ingress_peer_dead(m->ig, id) : 0;
    if (n)
      WR_LOG_INFOF("mesh", "node_links_closed", "owner=%s links=%zu "
                   "why=declared_dead", id, n);
  }
  broadcast_pending(m);
  if (m->behind && m->swim) {
    m->behind = 0;
    wr_swim_sync_behind(wr_swim_uv_core(m->swim), now_ms(m));
    wr_swim_uv_kick(m->swim);
  }
  arm_timer(m);
}

static void on_timer(uv_timer_t *h) {
  wr_mesh *m = h->data;
  wr_routes_tick(m->rt, now_ms(m));
  settle(m);
}

/* ---- ingress hooks ----------------------------------------------------- */

static int hook_bind_check(void *ud, const char *name, const char *account,
                           const uint8_t session[16], uint32_t options) {
  wr_mesh *m = ud;
  /* A reserved name is refused to every other account, even while its
   * account does not use it (tokens file, "names ="). */
  const char *holder = wr_tokens_reserved(m->tokens, name);
  if (holder && strcmp(holder, account) != 0) {
    m->c[MC_BIND_TAKEN]++;
    return WR_ERR_TAKEN;
  }
  uint8_t enc[WR_ROUTE_ENCODED_MAX];
  size_t len = 0;
  uint32_t opts = options & WR_ROUTE_OPT_BALANCE;
  int rv = wr_routes_bind(m->rt, name, account, session, opts, enc, &len,
                          now_ms(m));
  if (rv == 0) {
    m->c[MC_BINDS]++;
    gossip(m, enc, len);
  } else if (rv == WR_ERR_EXISTS) {
    m->c[MC_BIND_TAKEN]++;
    rv = WR_ERR_TAKEN; /* the ingress's word for it: Error NAME_TAKEN */
  }
  settle(m);
  return rv;
}

static void hook_bound(void *ud, const char *name, const char *account,
                       const uint8_t session[16], uint32_t options) {
  /* bind_check wrote the entry already; nothing more to publish. */
  (void)ud, (void)name, (void)account, (void)session, (void)options;
}

static void hook_unbound(void *ud, const char *name,
                         const uint8_t session[16]) {
  wr_mesh *m = ud;
  (void)session;
  uint8_t enc[WR_ROUTE_ENCODED_MAX];
  size_t len = 0;
  if (wr_routes_release(m->rt, name, enc, &len, now_ms(m)) == 0)
    gossip(m, enc, len);
  settle(m);
}

static int hook_lookup_remote(void *ud, const char *name, char *owner,
                              size_t cap) {
  wr_mesh *m = ud;
  wr_route_entry e[8];
  size_t n = wr_routes_resolve(m->rt, name, e, WR_ARRAY_LEN(e)), nremote = 0;
  if (n > WR_ARRAY_LEN(e)) n = WR_ARRAY_LEN(e);
  for (size_t i = 0; i < n; i++)
    if (strcmp(e[i].owner, m->self) != 0) e[nremote++] = e[i];
  if (!nremote) return 0;
  /* Several owners serve the name (--balance clients, or one client's
   * links to several nodes): take them in turn, so visitor connections
   * spread across all of them. */
  snprintf(owner, cap, "%s", e[m->next_owner++ % nremote].owner);
  return 1;
}

/* Where a live owner takes node links: its advertised data address (its
 * --http, or the gossip host with the --http port when that is a
 * wildcard; main.c), from its ALIVE metadata. */
static int hook_owner_addr(void *ud, const char *owner, char *addr,
                           size_t cap) {
  wr_mesh *m = ud;
  wr_swim_member_info mi;
  char ip[64];
  if (!m->swim ||
      wr_swim_member_find(wr_swim_uv_core(m->swim), owner, &mi) != 0)
    return 0;
  if (mi.state != WR_SWIM_ALIVE && mi.state != WR_SWIM_SUSPECT) return 0;
  if (mi.data.port == 0) return 0;
  if (mi.data.family == 4) {
    if (!inet_ntop(AF_INET, mi.data.ip, ip, sizeof ip)) return 0;
    snprintf(addr, cap, "%s:%u", ip, mi.data.port);
  } else {
    if (!inet_ntop(AF_INET6, mi.data.ip, ip, sizeof ip)) return 0;
    snprintf(addr, cap, "[%s]:%u", ip, mi.data.port);
  }
  return 1;
}

/* Accounts: with a tokens file, the account its token names (an unknown
 * or missing token is refused); without one the fleet is open and a
 * client is its identity key's account ("key:<hex>"), or "anonymous"
 * for an old client that proves none. */
static int hook_authorize(void *ud, const char *token, const char *identity,
                          char *account, size_t cap) {
  wr_mesh *m = ud;
  if (m->tokens) {
    const char *a = wr_tokens_account(m->tokens, token);
    if (!a) return WR_ERR_AUTH;
    snprintf(account, cap, "%s", a);
    return 0;
  }
  snprintf(account, cap, "%s", identity[0] ? identity : "anonymous");
  return 0;
}

void wr_mesh_ingress_hooks(wr_mesh *m, wr_ingress_config *ic) {
  ic->routes_ud = m;
  ic->bind_check = hook_bind_check;
  ic->bound = hook_bound;
  ic->unbound = hook_unbound;
  ic->lookup_remote = hook_lookup_remote;
  ic->owner_addr = hook_owner_addr;
  ic->authorize = hook_authorize;
}

/* ---- swim ------------------------------------------------------------ */

/* News applied from the ingest queue goes on as swim would have sent it
 * on had the callback said news (wr_swim_relay_user). */
static void relay(const wr_route_entry *e, const uint8_t *enc, size_t len,
                  void *ud) {
  wr_mesh *m = ud;
  m->c[MC_GOSSIP_RX_NEWS]++;
  if (!m->swim) return;
  char key[WR_SWIM_ID_MAX + 1];
  wr_route_gossip_key(e->owner, e->name, key, sizeof key);
  if (wr_swim_relay_user(wr_swim_uv_core(m->swim), key, e->version, enc, len,
                         now_ms(m)) == 0)
    m->c[MC_RELAYED]++;
}

/* One slice of the ingest queue per loop turn (see the top). */
static void on_ingest(uv_idle_t *h) {
  wr_mesh *m = h->data;
  wr_ssize rv = wr_routes_ingest_run(m->rt, INGEST_SLICE, relay, m,
                                     now_ms(m));
  if (rv < 0)
    WR_LOG_WARNF("mesh", "ingest_failed", "err=%s", wr_strerror((int)rv));
  if (!wr_routes_ingest_pending(m->rt)) uv_idle_stop(&m->ingest);
  if (m->swim) wr_swim_uv_kick(m->swim);
  settle(m);
}

int wr_mesh_user_update(wr_mesh *m, const wr_swim_update *u) {
  if (strncmp(u->key, WR_ROUTE_KEY_PREFIX, strlen(WR_ROUTE_KEY_PREFIX)) != 0)
    return -1;
  wr_routes_stats before, after;
  wr_routes_get_stats(m->rt, &before);
  int rv = wr_routes_ingest_push(m->rt, u->payload, u->payload_len,
                                 now_ms(m));
  if (rv == 1) {
    if (!m->closing_handles) uv_idle_start(&m->ingest, on_ingest);
  } else if (rv == 0) {
    /* Old news, or dropped (over its owner's rate, the queue full):
     * those are counted by the table. */
    wr_routes_get_stats(m->rt, &after);
    if (after.rate_drops == before.rate_drops &&
        after.ingest_drops == before.ingest_drops)
      m->c[MC_GOSSIP_RX_OLD]++;
    else
      settle(m);
  } else {
    m->c[MC_REJECTED]++;
    WR_LOG_DEBUGF("mesh", "route_rejected", "origin=%s err=%s", u->id,
                  wr_strerror(rv));
  }
  /* Never news to swim: what is taken is relayed once applied. */
  return 0;
}

uint64_t wr_mesh_epoch(const wr_mesh *m) {
  wr_routes_stats st;
  wr_routes_get_stats(m->rt, &st);
  return st.epoch;
}

void wr_mesh_member_changed(wr_mesh *m, const wr_swim_member_info *mi) {
  wr_route_owner_state st = mi->state == WR_SWIM_ALIVE ||
                                    mi->state == WR_SWIM_SUSPECT
                                ? WR_ROUTE_OWNER_LIVE
                                : WR_ROUTE_OWNER_DEAD;
  /* A restarted owner's old bindings must not serve again when it comes
   * back (a new epoch in its tags drops them), before it counts live. */
  uint64_t ep = wr_tag_u64(mi->tags, WR_MESH_EPOCH_TAG);
  if (ep && st == WR_ROUTE_OWNER_LIVE)
    wr_routes_owner_epoch(m->rt, mi->id, ep, now_ms(m));
  wr_routes_owner_state(m->rt, mi->id, st, now_ms(m));
  /* Dead (not left: a leaving node drained its streams first). A full
   * queue drops the close; the mux keepalive still ends the link. */
  if (mi->state == WR_SWIM_DEAD && m->ndead < DEAD_MAX)
    snprintf(m->dead[m->ndead++], sizeof m->dead[0], "%.*s",
             WR_ROUTE_OWNER_MAX, mi->id);
  settle(m);
}

/* The app-state sync (src/routes/swim_sync.c) applies delta records with
 * our clock and settles after each. */
static wr_tstamp host_now(void *ud) { return now_ms(ud); }
static void host_applied(void *ud) { settle(ud); }

const wr_routes_sync_host *wr_mesh_sync_host(wr_mesh *m) {
  return &m->sync_host;
}

/* ---- admin ----------------------------------------------------------- */

static const char *state_name(wr_route_state s) {
  return s == WR_ROUTE_ACTIVE ? "active" : "released";
}

typedef struct rows {
  json_t *arr;
  int failed;
} rows;

static void add_row(const wr_route_entry *e, size_t nserving, void *ud) {
  rows *r = ud;
  json_t *o = json_pack("{s:s, s:s, s:s, s:I, s:s, s:I}", "name", e->name,
                        "owner", e->owner, "account", e->account, "version",
                        (json_int_t)e->version, "state", state_name(e->state),
                        "serving", (json_int_t)nserving);
  if (!o || json_array_append_new(r->arr, o) != 0) r->failed = 1;
}

static const char *verdict_why(wr_route_verdict v) {
  switch (v) {
  case WR_ROUTE_SERVES: return "serves: the winning account's newest session";
  case WR_ROUTE_V_TAKEN:
    return "taken: another account claimed the name first (smaller "
           "claimed_at)";
  case WR_ROUTE_V_MOVED:
    return "moved: a newer session of the same account serves";
  case WR_ROUTE_V_RELEASED: return "released by its client";
  case WR_ROUTE_V_OWNER_DEAD: return "its owner node is dead or left";
  }
  return "?";
}

static void add_candidate(const wr_route_entry *e, wr_route_verdict v,
                          void *ud) {
  rows *r = ud;
  char sess[2 * WR_ROUTE_SESSION_LEN + 1];
  sodium_bin2hex(sess, sizeof sess, e->session, sizeof e->session);
  json_t *opts = json_array();
  if (opts && (e->options & WR_ROUTE_OPT_BALANCE))
    json_array_append_new(opts, json_string("balance"));
  json_t *o = json_pack(
      "{s:s, s:s, s:s, s:I, s:I, s:I, s:I, s:s, s:o, s:s, s:s}", "owner",
      e->owner, "account", e->account, "session", sess, "epoch",
      (json_int_t)e->epoch, "seq", (json_int_t)e->seq, "version",
      (json_int_t)e->version, "claimed_at", (json_int_t)e->claimed_at,
      "state", state_name(e->state), "options", opts ? opts : json_array(),
      "verdict", wr_route_verdict_name(v), "why", verdict_why(v));
  if (!o || json_array_append_new(r->arr, o) != 0) r->failed = 1;
}

/* GET /routes: one row per name with a route (the contract's shape plus
 * "serving"); GET /routes?name=N: every candidate entry of N and its
 * verdict. */
static int h_routes(const wr_admin_req *req, wr_admin_resp *resp, void *ud) {
  wr_mesh *m = ud;
  char name[WR_ROUTE_NAME_MAX + 2];
  int n = wr_admin_req_param(req, "name", name, sizeof name);
  rows r = {json_array(), 0};
  if (!r.arr) return WR_ERR_NOMEM;
  if (n > 0) {
    if (!wr_route_name_ok(name)) {
      json_decref(r.arr);
      return wr_admin_resp_error(resp, 400, "name= wants one DNS label "
                                            "(a-z, 0-9, '-')");
    }
    wr_routes_explain(m->rt, name, add_candidate, &r);
    json_t *o = json_pack("{s:s, s:o}", "name", name, "candidates", r.arr);
    if (!o || r.failed) {
      json_decref(o);
      return WR_ERR_NOMEM;
    }
    return wr_admin_resp_json(resp, o);
  }
  wr_routes_foreach(m->rt, add_row, &r);
  if (r.failed) {
    json_decref(r.arr);
    return WR_ERR_NOMEM;
  }
  return wr_admin_resp_json(resp, r.arr);
}

void wr_mesh_admin_routes(wr_mesh *m, wr_admin *admin) {
  wr_admin_route(admin, "GET", "/routes", h_routes, m);
}

int wr_mesh_status(wr_mesh *m, json_t *status) {
  uint8_t dg[16];
  char hex[33];
  wr_routes_digest(m->rt, dg);
  sodium_bin2hex(hex, sizeof hex, dg, sizeof dg);
  uint64_t now = now_ms(m);
  uint64_t age = now > m->routes_changed_at ? now - m->routes_changed_at : 0;
  if (json_object_set_new(status, "routes",
                          json_integer((json_int_t)wr_routes_count(m->rt))) ||
      json_object_set_new(status, "routes_digest", json_string(hex)) ||
      json_object_set_new(status, "routes_digest_age_ms",
                          json_integer((json_int_t)age)))
    return WR_ERR_NOMEM;
  return 0;
}

/* ---- metrics ---------------------------------------------------------- */

void wr_mesh_collect(wr_mesh *m) {
  wr_routes_stats st;
  wr_routes_get_stats(m->rt, &st);
  m->c[MC_COLLECTED] = st.collected;
  m->c[MC_QUOTA] = st.quota_drops;
  m->c[MC_REJECTED] = st.rejected;
  m->c[MC_RATE_DROPS] = st.rate_drops;
  m->c[MC_INGEST_DROPS] = st.ingest_drops;
  m->c[MC_UNKNOWN_DROPS] = st.unknown_drops;
  for (int i = 0; i < MC_N; i++) *m->mc[i] = m->c[i];
  *m->mg[MG_ENTRIES] = (int64_t)st.entries;
  *m->mg[MG_NAMES] = (int64_t)st.names;
  *m->mg[MG_OWNERS] = (int64_t)st.owners;
  *m->mg[MG_INGEST_QUEUE] = (int64_t)st.ingest_queued;
}

static int register_metrics(wr_mesh *m, wr_metrics *reg) {
  static const struct {
    const char *name, *lk, *lv, *help;
  } cs[MC_N] = {
      {"warren_routes_gossip_sent_total", NULL, NULL,
       "Route entries of this node queued for gossip."},
      {"warren_routes_gossip_received_total", "result", "news",
       "Route entries received by gossip."},
      {"warren_routes_gossip_received_total", "result", "old", NULL},
      {"warren_routes_rejected_total", NULL, NULL,
       "Route entries dropped as malformed or invalid."},
      {"warren_routes_binds_total", "result", "ok",
       "Bind requests of this node's clients."},
      {"warren_routes_binds_total", "result", "taken", NULL},
      {"warren_routes_evictions_total", "why", "taken",
       "Local bindings closed because another entry won the name."},
      {"warren_routes_evictions_total", "why", "moved", NULL},
      {"warren_routes_evictions_total", "why", "overflow", NULL},
      {"warren_routes_collected_total", NULL, NULL,
       "Tombstones and dead owners' logs collected."},
      {"warren_routes_quota_drops_total", NULL, NULL,
       "Route entries refused: an owner over its quota or a full table."},
      {"warren_routes_gossip_dropped_total", NULL, NULL,
       "Entries of this node not queued for gossip (no memory, swim refused "
       "them); the next anti-entropy sync carries them."},
      {"warren_routes_ingest_dropped_total", "why", "rate",
       "Route entries from peers dropped before they were applied: their "
       "owner over its ingest rate, the ingest queue full, or an owner "
       "membership never reported over the bounds on such owners; not "
       "gossiped on, a later sync offers them again."},
      {"warren_routes_ingest_dropped_total", "why", "queue_full", NULL},
      {"warren_routes_ingest_dropped_total", "why", "unknown_owner", NULL},
      {"warren_routes_gossip_relayed_total", NULL, NULL,
       "Route entries from peers that were news here, gossiped on."},
  };
  static const struct {
    const char *name, *lk, *lv, *help;
  } gs[MG_N] = {
      {"warren_routes_entries", NULL, NULL, "Route entries held."},
      {"warren_routes_names", NULL, NULL, "Names with at least one entry."},
      {"warren_routes_owners", NULL, NULL, "Owners with a log here."},
      {"warren_routes_ingest_queue", NULL, NULL,
       "Gossiped route entries waiting to be applied."},
  };
  int rv;
  for (int i = 0; i < MC_N; i++)
    if ((rv = wr_metrics_counter(reg, cs[i].name, cs[i].lk, cs[i].lv,
                                 cs[i].help, &m->mc[i])) != 0)
      return rv;
  for (int i = 0; i < MG_N; i++)
    if ((rv = wr_metrics_gauge(reg, gs[i].name, gs[i].lk, gs[i].lv,
                               gs[i].help, &m->mg[i])) != 0)
      return rv;
  return 0;
}

/* ---- life ------------------------------------------------------------ */

int wr_mesh_routes_set(wr_routes_config *cfg, const char *list, char *err,
                       size_t errlen) {
  char buf[512];
  if (!list || !*list) return 0;
  if (snprintf(buf, sizeof buf, "%s", list) >= (int)sizeof buf) {
    snprintf(err, errlen, "--routes-set is too long");
    return -1;
  }
  for (char *save = NULL, *kv = strtok_r(buf, ",", &save); kv;
       kv = strtok_r(NULL, ",", &save)) {
    char *eq = strchr(kv, '=');
    if (!eq) {
      snprintf(err, errlen, "--routes-set wants KEY=VALUE, got '%.40s'", kv);
      return -1;
    }
    *eq = 0;
    if (wr_routes_config_set(cfg, kv, eq + 1, err, errlen) != 0) return -1;
  }
  return 0;
}

int wr_mesh_new(wr_mesh **pm, uv_loop_t *loop, const char *self,
                wr_metrics *metrics, const char *routes_set) {
  wr_mesh *m = calloc(1, sizeof *m);
  if (!m) return WR_ERR_NOMEM;
  m->loop = loop;
  snprintf(m->self, sizeof m->self, "%s", self);
  wr_routes_config cfg;
  wr_routes_config_default(&cfg);
  snprintf(cfg.self, sizeof cfg.self, "%s", self);
  char err[160];
  if (wr_mesh_routes_set(&cfg, routes_set, err, sizeof err) != 0) {
    WR_LOG_WARNF("mesh", "routes_set_refused", "reason=\"%s\"", err);
    free(m);
    return WR_ERR_INVAL;
  }
  /* The epoch must exceed every epoch this node id used before: wall-clock
   * milliseconds do, unless the clock went back across a restart by more
   * than the process lived (then the old entries win until the peers'
   * digests tell us our epoch was superseded and the table moves on). */
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  cfg.epoch = (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
  static const wr_routes_callbacks cb = {
      .lost = on_lost,
      .changed = on_changed,
      .republish = on_republish,
      .owner_known = on_owner_known};
  int rv = wr_routes_new(&m->rt, &cfg, &cb, NULL, m, uv_now(loop));
  if (rv != 0) {
    free(m);
    return rv;
  }
  m->sync_host = (wr_routes_sync_host){
      .rt = m->rt, .now = host_now, .applied = host_applied, .ud = m};
  uv_timer_init(loop, &m->timer);
  m->timer.data = m;
  uv_timer_init(loop, &m->flush);
  m->flush.data = m;
  uv_idle_init(loop, &m->ingest);
  m->ingest.data = m;
  m->routes_changed_at = uv_now(loop);
  for (int i = 0; i < MC_N; i++) m->mc[i] = &m->c[i]; /* until registered */
  static int64_t sink[MG_N];
  for (int i = 0; i < MG_N; i++) m->mg[i] = &sink[i];
  if (metrics && (rv = register_metrics(m, metrics)) != 0)
    WR_LOG_WARNF("mesh", "metrics_failed", "err=%s", wr_strerror(rv));
  arm_timer(m);
  *pm = m;
  return 0;
}

static void on_handle_closed(uv_handle_t *h) {
  wr_mesh *m = h->data;
  if (--m->closing_handles > 0) return;
  while (m->out_head) {
    pending *p = m->out_head;
    m->out_head = p->next;
    free(p);
  }
  wr_routes_del(m->rt);
  free(m);
}

void wr_mesh_close(wr_mesh *m) {
  if (!m) return;
  m->closing_handles = 3;
  uv_close((uv_handle_t *)&m->timer, on_handle_closed);
  uv_close((uv_handle_t *)&m->flush, on_handle_closed);
  uv_close((uv_handle_t *)&m->ingest, on_handle_closed);
}

void wr_mesh_set_swim(wr_mesh *m, wr_swim_uv *swim) { m->swim = swim; }
void wr_mesh_set_ingress(wr_mesh *m, wr_ingress *ig) { m->ig = ig; }

/* Names bound here, collected first: releasing gossips, which must not
 * happen from inside the ingress's walk. */
typedef struct drain_names {
  char (*name)[WR_ROUTE_NAME_MAX + 1];
  size_t n, cap;
} drain_names;

static void collect_name(const wr_tunnel_info *t, void *ud) {
  drain_names *d = ud;
  if (!t->live || d->n == d->cap) return;
  snprintf(d->name[d->n++], sizeof d->name[0], "%s", t->name);
}

size_t wr_mesh_drain(wr_mesh *m) {
  if (!m->ig) return 0;
  drain_names d = {.cap = wr_ingress_tunnel_count(m->ig)};
  if (d.cap == 0) return 0;
  d.name = calloc(d.cap, sizeof d.name[0]);
  if (!d.name) return 0; /* the names then go as their clients move */
  wr_ingress_foreach(m->ig, collect_name, &d);
  size_t released = 0;
  for (size_t i = 0; i < d.n; i++) {
    char owner[WR_ROUTE_OWNER_MAX + 1];
    if (!hook_lookup_remote(m, d.name[i], owner, sizeof owner)) continue;
    uint8_t enc[WR_ROUTE_ENCODED_MAX];
    size_t len = 0;
    if (wr_routes_release(m->rt, d.name[i], enc, &len, now_ms(m)) == 0) {
      gossip(m, enc, len);
      released++;
      WR_LOG_INFOF("mesh", "drain_release", "name=%s also_at=%s", d.name[i],
                   owner);
    }
  }
  free(d.name);
  settle(m);
  return released;
}
void wr_mesh_set_tokens(wr_mesh *m, const wr_tokens *tokens) {
  m->tokens = tokens;
}
wr_routes *wr_mesh_routes(wr_mesh *m) { return m->rt; }
