/*
 * warren-sim --routes R: the real ownership table (src/routes) on every
 * simulated node, a client workload that binds, moves, releases and
 * claims names, and the measurements (issue 10).
 *
 * Wiring (as src/node/mesh.c wires a node, minus libuv and the ingress):
 *
 *   a write (bind, release, republish)  -> the encoded entry is queued,
 *       and after the table call returns it goes to wr_swim_broadcast_user
 *       under the key "r." + BLAKE2b-128(owner, name) with the entry's
 *       Lamport version (one key per (owner, name): swim's queue keeps the
 *       latest write of each binding)
 *   swim user_update  -> wr_routes_apply; returns 1 only for news, so a
 *       repeat is not gossiped on (swim.h's contract)
 *   swim app sync     -> a wr_routes_sync session per sync
 *   member_changed    -> wr_routes_owner_state (alive/suspect: live)
 *   owner_known       -> the node's swim member table
 *   lost              -> the simulated client gives the binding up: after
 *       the table call returns, the node releases it (counted TAKEN/MOVED)
 *   the table's GC timer joins the node's one timer (sim.c's arm)
 *
 * Unlike mesh.c, nothing calls into swim from inside a swim callback or an
 * app-sync hook (swim.h forbids it): evictions and gossip wait in a
 * per-node queue that sim_routes_settle empties after the core call.
 *
 * Measurement.  A reference table (the "oracle") receives every write of
 * every node at once, and the deaths of killed nodes: its resolution of
 * a name is what every live table must converge to (resolution is a pure
 * function of the entries and the owners' liveness).  Each time a write
 * changes the reference's resolution of a name, that is a *change*; a
 * (change, live node) pair converges the first time the node resolves
 * the name as the reference did after that change or a later change of
 * the same name (a node that skips a state it never saw converges when it
 * reaches a later one).  A resolution is compared by a fingerprint of the
 * serving entries (owner, account, version, session), order-independent.
 * Pairs that never converge are counted (route_missing) and sort after
 * every latency, so p99 is "never" (-1 in JSON) once more than 1 % miss.
 * Writes that do not change the reference (a claim that loses, a loser's
 * release) are not pairs.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>


#include "sim_int.h"
#include "warren/err.h"

#define NB_MAX 4     /* client bindings of one name held at once */
#define NACCT 4      /* synthetic accounts */

enum { K_BIND, K_MOVE, K_RELEASE, K_CLAIM, K_EVICT, K_DEATH, K_REPUB };

typedef struct cbind {
  uint32_t node, sess;
  uint8_t acct;
} cbind;

typedef struct rname {
  uint32_t *chg; /* indices into sim_routes.chg, in order */
  uint32_t nchg, capchg;
  cbind b[NB_MAX]; /* the simulated clients' bindings, oldest first */
  uint8_t nb;
  uint8_t watch;  /* gc-stale: must never route again */
  uint8_t killed; /* owner-death: its owner was killed */
  int32_t apos;   /* index in sim_routes.active, or -1 */
} rname;

typedef struct rchange {
  uint64_t t, fp;
  uint32_t name, owner;
  uint8_t kind;
} rchange;

typedef struct rpair {
  uint32_t lat, node, chg;
} rpair;

typedef struct evict {
  uint32_t name, sess;
  uint8_t why;
} evict;

typedef struct rnode {
  uint8_t *gq; /* pending gossip: [u16 length][entry] ... */
  size_t gq_len, gq_cap;
  evict *ev;
  size_t nev, capev;
} rnode;

typedef struct sim_routes {
  rnode *nodes;
  wr_routes *oracle;
  rname *names;
  uint32_t nnames, created, last_new;
  rchange *chg;
  size_t nchg, capchg;
  uint32_t *cur; /* nnames x n: per (name, node) changes converged */
  rpair *pairs;
  size_t npairs, cappairs;
  uint32_t *active; /* names with a client binding */
  uint32_t nactive;
  uint32_t next_sess;
  uint64_t t0, nsched, last_change;
  int churning;
  uint64_t tx0; /* swim tx bytes when the churn began */
  int mode;     /* what EV_CHANGE does: 0 churn, 1 partition claims */
  uint8_t *group;
  uint32_t stale;   /* gc-stale: the paused node, or SIM_NONE */
  int watching;     /* count resurrections from now on */
  int oom;
} sim_routes;

static const char *const accts[NACCT] = {"acct-a", "acct-b", "acct-c",
                                         "acct-d"};

static uint64_t now_of(const sim *s) { return sim_net_now(s->net); }

static void name_str(uint32_t i, char *out, size_t cap) {
  snprintf(out, cap, "r%u", i);
}

/* "r<digits>" -> index, or UINT32_MAX. */
static uint32_t name_idx(const sim_routes *R, const char *s) {
  if (s[0] != 'r' || !s[1]) return UINT32_MAX;
  uint32_t v = 0;
  for (const char *p = s + 1; *p; p++) {
    if (*p < '0' || *p > '9' || v > 100000000) return UINT32_MAX;
    v = v * 10 + (uint32_t)(*p - '0');
  }
  return v < R->nnames ? v : UINT32_MAX;
}

static void sess_bytes(uint32_t sess, uint8_t out[WR_ROUTE_SESSION_LEN]) {
  memset(out, 0x5a, WR_ROUTE_SESSION_LEN);
  memcpy(out, &sess, sizeof sess);
}

static uint32_t sess_of(const uint8_t b[WR_ROUTE_SESSION_LEN]) {
  uint32_t v;
  memcpy(&v, b, sizeof v);
  return v;
}

/* ---- fingerprints of a resolution ---------------------------------- */

static uint64_t fnv(uint64_t h, const void *p, size_t n) {
  const uint8_t *b = p;
  for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 0x100000001b3ull;
  return h;
}

/* XOR of a hash per serving entry: 0 = no route. */
static uint64_t fp_of(const wr_routes *t, uint32_t name) {
  char nm[16];
  wr_route_entry e[NB_MAX];
  name_str(name, nm, sizeof nm);
  size_t n = wr_routes_resolve(t, nm, e, NB_MAX);
  uint64_t fp = 0;
  for (size_t i = 0; i < n && i < NB_MAX; i++) {
    uint64_t h = 0xcbf29ce484222325ull;
    h = fnv(h, e[i].owner, strlen(e[i].owner) + 1);
    h = fnv(h, e[i].account, strlen(e[i].account) + 1);
    h = fnv(h, &e[i].version, sizeof e[i].version);
    h = fnv(h, e[i].session, sizeof e[i].session);
    fp ^= h ? h : 1;
  }
  if (n > NB_MAX) fp ^= n; /* more than we copy: still a distinct state */
  return fp;
}

/* ---- convergence ------------------------------------------------------ */

static void pair_add(sim *s, uint32_t lat, uint32_t node, uint32_t chg) {
  sim_routes *R = s->rt;
  if (R->npairs == R->cappairs) {
    size_t nc = R->cappairs ? R->cappairs * 2 : 4096;
    rpair *p = realloc(R->pairs, nc * sizeof *p);
    if (!p) {
      R->oom = 1;
      return;
    }
    R->pairs = p;
    R->cappairs = nc;
  }
  R->pairs[R->npairs++] = (rpair){lat, node, chg};
}

/* Node |x|'s resolution of |name| now: converges every pending change up
 * to the latest one it equals. */
static void check_pair(sim *s, uint32_t x, uint32_t name) {
  sim_routes *R = s->rt;
  rname *nm = &R->names[name];
  sim_node *nd = &s->nodes[x];
  if (nd->killed) return;
  uint64_t fp = fp_of(nd->rt, name);
  if (R->watching && nm->watch && fp != 0 && x != R->stale) {
    s->r->resurrected++;
    if (s->o->verbose)
      fprintf(stderr, "warren-sim: t=%llu %s resolves collected r%u\n",
              (unsigned long long)now_of(s), s->ids[x], name);
  }
  uint32_t *cur = &R->cur[(size_t)name * s->n + x];
  if (*cur >= nm->nchg) return;
  uint32_t k = nm->nchg;
  while (k > *cur && R->chg[nm->chg[k - 1]].fp != fp) k--;
  if (k == *cur) return;
  uint64_t now = now_of(s);
  for (uint32_t j = *cur; j < k; j++) {
    const rchange *c = &R->chg[nm->chg[j]];
    pair_add(s, (uint32_t)(now - c->t), x, nm->chg[j]);
  }
  *cur = k;
}

/* After the reference changed: a new change of |name| when its
 * resolution moved, and every live node checked against it. */
static void record(sim *s, uint32_t name, int kind, uint32_t owner) {
  sim_routes *R = s->rt;
  rname *nm = &R->names[name];
  uint64_t fp = fp_of(R->oracle, name);
  uint64_t last = nm->nchg ? R->chg[nm->chg[nm->nchg - 1]].fp : 0;
  if (fp == last) return;
  if (R->nchg == R->capchg) {
    size_t nc = R->capchg ? R->capchg * 2 : 1024;
    rchange *c = realloc(R->chg, nc * sizeof *c);
    if (!c) {
      R->oom = 1;
      return;
    }
    R->chg = c;
    R->capchg = nc;
  }
  if (nm->nchg == nm->capchg) {
    uint32_t nc = nm->capchg ? nm->capchg * 2 : 4;
    uint32_t *v = realloc(nm->chg, nc * sizeof *v);
    if (!v) {
      R->oom = 1;
      return;
    }
    nm->chg = v;
    nm->capchg = nc;
  }
  R->chg[R->nchg] = (rchange){now_of(s), fp, name, owner, (uint8_t)kind};
  nm->chg[nm->nchg++] = (uint32_t)R->nchg++;
  if (kind != K_DEATH && kind != K_REPUB) R->last_change = now_of(s);
  for (uint32_t x = 0; x < s->n; x++) check_pair(s, x, name);
}

/* ---- client bookkeeping ---------------------------------------------- */

static void active_set(sim_routes *R, uint32_t name) {
  rname *nm = &R->names[name];
  if (nm->nb && nm->apos < 0) {
    nm->apos = (int32_t)R->nactive;
    R->active[R->nactive++] = name;
  } else if (!nm->nb && nm->apos >= 0) {
    uint32_t last = R->active[--R->nactive];
    R->active[nm->apos] = last;
    R->names[last].apos = nm->apos;
    nm->apos = -1;
  }
}

static void bind_add(sim_routes *R, uint32_t name, uint32_t node,
                     uint32_t sess, uint8_t acct) {
  rname *nm = &R->names[name];
  if (nm->nb == NB_MAX) return; /* callers check */
  nm->b[nm->nb++] = (cbind){node, sess, acct};
  active_set(R, name);
}

static int bind_find(const rname *nm, uint32_t node) {
  for (int i = 0; i < nm->nb; i++)
    if (nm->b[i].node == node) return i;
  return -1;
}

static void bind_del(sim_routes *R, uint32_t name, int i) {
  rname *nm = &R->names[name];
  memmove(&nm->b[i], &nm->b[i + 1], (size_t)(nm->nb - i - 1) * sizeof *nm->b);
  nm->nb--;
  active_set(R, name);
}

/* ---- writes ------------------------------------------------------------ */

static void gossip_q(sim *s, uint32_t node, const uint8_t *enc, size_t len) {
  rnode *rn = &s->rt->nodes[node];
  if (rn->gq_len + 2 + len > rn->gq_cap) {
    size_t nc = rn->gq_cap ? rn->gq_cap * 2 : 1024;
    while (nc < rn->gq_len + 2 + len) nc *= 2;
    uint8_t *g = realloc(rn->gq, nc);
    if (!g) {
      s->rt->oom = 1;
      return;
    }
    rn->gq = g;
    rn->gq_cap = nc;
  }
  rn->gq[rn->gq_len++] = (uint8_t)(len >> 8);
  rn->gq[rn->gq_len++] = (uint8_t)len;
  memcpy(rn->gq + rn->gq_len, enc, len);
  rn->gq_len += len;
}

/* A write of node |node|: to the reference at once, to gossip after the
 * current core call. */
static void wrote(sim *s, uint32_t node, const uint8_t *enc, size_t len) {
  if (wr_routes_apply(s->rt->oracle, enc, len, now_of(s)) < 0)
    s->r->rt_bookkeeping++;
  gossip_q(s, node, enc, len);
}


static void evict_run(sim *s, sim_node *nd, const evict *v) {
  sim_routes *R = s->rt;
  rname *nm = &R->names[v->name];
  int i = bind_find(nm, nd->idx);
  if (i < 0 || nm->b[i].sess != v->sess) return; /* gone already */
  char name[16];
  uint8_t enc[WR_ROUTE_ENCODED_MAX];
  size_t len = 0;
  name_str(v->name, name, sizeof name);
  bind_del(R, v->name, i);
  if (wr_routes_release(nd->rt, name, enc, &len, now_of(s)) != 0) {
    s->r->rt_bookkeeping++;
    return;
  }
  if (v->why == WR_ROUTE_LOST_MOVED)
    s->r->rt_evict_moved++;
  else
    s->r->rt_evict_taken++;
  wrote(s, nd->idx, enc, len);
  record(s, v->name, K_EVICT, nd->idx);
}

void sim_routes_settle(sim *s, sim_node *nd) {
  sim_routes *R = s->rt;
  if (!R) return;
  rnode *rn = &R->nodes[nd->idx];
  while (rn->nev) {
    evict v = rn->ev[--rn->nev];
    evict_run(s, nd, &v);
  }
  uint64_t now = now_of(s);
  for (size_t off = 0; off + 2 <= rn->gq_len;) {
    size_t len = (size_t)rn->gq[off] << 8 | rn->gq[off + 1];
    const uint8_t *enc = rn->gq + off + 2;
    off += 2 + len;
    wr_route_entry e;
    char key[WR_SWIM_ID_MAX + 1];
    if (wr_route_entry_decode(enc, len, &e) != 0) {
      s->r->rt_bookkeeping++;
      continue;
    }
    wr_route_gossip_key(e.owner, e.name, key, sizeof key);
    if (wr_swim_broadcast_user(nd->sw, key, e.version, enc, len, now) != 0)
      s->send_errors++;
  }
  rn->gq_len = 0;
}

/* ---- table callbacks (record only; sim_routes_settle acts) ---------- */

static void on_lost(wr_routes *t, const wr_route_entry *e, wr_route_loss why,
                    void *ud) {
  (void)t;
  sim_node *nd = ud;
  sim_routes *R = nd->s->rt;
  uint32_t name = name_idx(R, e->name);
  if (name == UINT32_MAX) return;
  rnode *rn = &R->nodes[nd->idx];
  if (rn->nev == rn->capev) {
    size_t nc = rn->capev ? rn->capev * 2 : 8;
    evict *v = realloc(rn->ev, nc * sizeof *v);
    if (!v) {
      R->oom = 1;
      return;
    }
    rn->ev = v;
    rn->capev = nc;
  }
  rn->ev[rn->nev++] = (evict){name, sess_of(e->session), (uint8_t)why};
}

static void on_changed(wr_routes *t, const char *name, void *ud) {
  (void)t;
  sim_node *nd = ud;
  uint32_t i = name_idx(nd->s->rt, name);
  if (i != UINT32_MAX) check_pair(nd->s, nd->idx, i);
}

static void on_republish(wr_routes *t, const uint8_t *enc, size_t len,
                         void *ud) {
  (void)t;
  sim_node *nd = ud;
  wrote(nd->s, nd->idx, enc, len);
}

static int on_owner_known(wr_routes *t, const char *owner, void *ud) {
  (void)t;
  sim_node *nd = ud;
  wr_swim_member_info mi;
  if (wr_swim_member_find(nd->sw, owner, &mi) != 0) return 0;
  return mi.state == WR_SWIM_ALIVE || mi.state == WR_SWIM_SUSPECT;
}

static const wr_routes_callbacks table_cb = {
    .lost = on_lost,
    .changed = on_changed,
    .republish = on_republish,
    .owner_known = on_owner_known,
};

/* ---- swim side -------------------------------------------------------- */

int sim_routes_user_update(sim_node *nd, const wr_swim_update *u) {
  sim *s = nd->s;
  if (strncmp(u->key, WR_ROUTE_KEY_PREFIX, strlen(WR_ROUTE_KEY_PREFIX)) != 0) return 0;
  int rv = wr_routes_apply(nd->rt, u->payload, u->payload_len, now_of(s));
  if (rv == 1)
    s->r->rt_news++;
  else if (rv == 0)
    s->r->rt_old++;
  else
    s->r->rt_rejected++;
  return rv == 1;
}

void sim_routes_member(sim_node *nd, const wr_swim_member_info *m) {
  wr_route_owner_state st =
      m->state == WR_SWIM_ALIVE || m->state == WR_SWIM_SUSPECT
          ? WR_ROUTE_OWNER_LIVE
          : WR_ROUTE_OWNER_DEAD;
  wr_routes_owner_state(nd->rt, m->id, st, now_of(nd->s));
  /* A killed owner's names must be gone from this table the moment it
   * declares the owner dead (owner-death, gc-stale). */
  sim *s = nd->s;
  uint32_t v = sim_id_index(s, m->id);
  sim_routes *R = s->rt;
  if (st != WR_ROUTE_OWNER_DEAD || v == SIM_NONE || s->kill_slot[v] < 0 ||
      !s->kill_at || nd->idx == R->stale)
    return;
  for (uint32_t name = 0; name < R->nnames; name++) {
    const rname *nm = &R->names[name];
    if (!nm->killed || !nm->nchg) continue;
    const rchange *c = &R->chg[nm->chg[nm->nchg - 1]];
    if (c->kind == K_DEATH && c->owner == v &&
        R->cur[(size_t)name * s->n + nd->idx] < nm->nchg &&
        fp_of(nd->rt, name) != c->fp)
      s->r->death_late++;
  }
}

/* The app-state sync host (src/routes/swim_sync.c): virtual time; the
 * simulator acts on table callbacks itself, so nothing after a record. */
static wr_tstamp host_now(void *ud) { return now_of(((sim_node *)ud)->s); }

wr_tstamp sim_routes_deadline(const sim_node *nd) {
  return nd->rt ? wr_routes_deadline(nd->rt) : WR_TSTAMP_NONE;
}

void sim_routes_tick(sim *s, sim_node *nd) {
  if (nd->rt) wr_routes_tick(nd->rt, now_of(s));
}

/* ---- life --------------------------------------------------------------- */

static void table_config(const sim *s, wr_routes_config *cfg, const char *id,
                         wr_pcg32 *g) {
  wr_routes_config_default(cfg);
  snprintf(cfg->self, sizeof cfg->self, "%s", id);
  cfg->epoch = 1; /* nobody restarts in a run */
  if (s->o->routes_grace_s > 0)
    cfg->released_grace_ms = cfg->dead_grace_ms =
        (uint64_t)(s->o->routes_grace_s * 1000);
  cfg->rand = wr_pcg32_fill;
  cfg->rand_user_data = g;
}

int sim_routes_new(sim *s) {
  sim_routes *R = calloc(1, sizeof *R);
  if (!R) return WR_ERR_NOMEM;
  s->rt = R;
  R->nnames = s->o->routes;
  R->stale = SIM_NONE;
  R->nodes = calloc(s->n, sizeof *R->nodes);
  R->names = calloc(R->nnames + 1, sizeof *R->names);
  R->active = calloc(R->nnames + 1, sizeof *R->active);
  R->cur = calloc((size_t)R->nnames * s->n + 1, sizeof *R->cur);
  R->group = calloc(s->n, 1);
  if (!R->nodes || !R->names || !R->active || !R->cur || !R->group)
    return WR_ERR_NOMEM;
  for (uint32_t i = 0; i < R->nnames; i++) R->names[i].apos = -1;
  uint64_t now = now_of(s);
  for (uint32_t i = 0; i < s->n; i++) {
    /* The tables' hash keys come from streams of their own (n + 1 + i),
     * so the swim cores draw exactly what they draw without routes. */
    wr_pcg32 g;
    wr_routes_config cfg;
    wr_pcg32_seed(&g, s->o->seed, (uint64_t)s->n + 1 + i);
    table_config(s, &cfg, s->ids[i], &g);
    int rv = wr_routes_new(&s->nodes[i].rt, &cfg, &table_cb, NULL,
                           &s->nodes[i], now);
    if (rv != 0) return rv;
    s->nodes[i].sync_host = (wr_routes_sync_host){
        .rt = s->nodes[i].rt, .now = host_now, .ud = &s->nodes[i]};
  }
  wr_pcg32 g;
  wr_routes_config cfg;
  wr_pcg32_seed(&g, s->o->seed, 2 * (uint64_t)s->n + 1);
  table_config(s, &cfg, "reference", &g);
  /* The reference takes every write at once, whatever the per-owner
   * limits the nodes' tables apply. */
  cfg.max_per_owner = cfg.max_entries;
  cfg.max_owner_bytes = SIZE_MAX;
  cfg.owner_rate = 0;
  return wr_routes_new(&R->oracle, &cfg, NULL, NULL, NULL, now);
}

void sim_routes_free(sim *s) {
  sim_routes *R = s->rt;
  if (!R) return;
  for (uint32_t i = 0; s->nodes && i < s->n; i++) {
    wr_routes_del(s->nodes[i].rt);
    s->nodes[i].rt = NULL;
    if (R->nodes) {
      free(R->nodes[i].gq);
      free(R->nodes[i].ev);
    }
  }
  for (uint32_t i = 0; R->names && i < R->nnames; i++) free(R->names[i].chg);
  wr_routes_del(R->oracle);
  free(R->nodes);
  free(R->names);
  free(R->active);
  free(R->cur);
  free(R->group);
  free(R->chg);
  free(R->pairs);
  free(R);
  s->rt = NULL;
}

/* ---- the workload ------------------------------------------------------ */

/* A random live, running node that holds no binding of |nm| (NULL: any)
 * and, when |grp| < 2, is on that side of the partition. */
static uint32_t pick_node(sim *s, const rname *nm, int grp) {
  wr_pcg32 *g = sim_net_rng(s->net);
  for (int tries = 0; tries < 1000; tries++) {
    uint32_t v = wr_pcg32_bounded(g, s->n);
    if (s->nodes[v].killed || sim_net_paused(s->net, v) ||
        v == s->rt->stale || (nm && bind_find(nm, v) >= 0) ||
        (grp < 2 && s->rt->group[v] != grp))
      continue;
    return v;
  }
  return SIM_NONE;
}

static int do_bind(sim *s, uint32_t name, uint32_t v, uint8_t acct,
                   int kind) {
  sim_routes *R = s->rt;
  rname *nm = &R->names[name];
  if (v == SIM_NONE || nm->nb == NB_MAX) return -1;
  char nms[16];
  uint8_t sess[WR_ROUTE_SESSION_LEN], enc[WR_ROUTE_ENCODED_MAX];
  size_t len = 0;
  uint32_t id = ++R->next_sess;
  name_str(name, nms, sizeof nms);
  sess_bytes(id, sess);
  sim_node *nd = &s->nodes[v];
  int rv = wr_routes_bind(nd->rt, nms, accts[acct], sess, 0, enc, &len,
                          now_of(s));
  if (rv == WR_ERR_EXISTS) {
    s->r->rt_refused++;
    return -1;
  }
  if (rv != 0) {
    s->r->rt_bookkeeping++;
    return -1;
  }
  bind_add(R, name, v, id, acct);
  wrote(s, v, enc, len);
  record(s, name, kind, v);
  sim_after_core(s, nd);
  return 0;
}

static void do_release(sim *s, uint32_t name) {
  sim_routes *R = s->rt;
  rname *nm = &R->names[name];
  cbind b = nm->b[nm->nb - 1];
  sim_node *nd = &s->nodes[b.node];
  char nms[16];
  uint8_t enc[WR_ROUTE_ENCODED_MAX];
  size_t len = 0;
  name_str(name, nms, sizeof nms);
  bind_del(R, name, nm->nb - 1);
  if (wr_routes_release(nd->rt, nms, enc, &len, now_of(s)) != 0) {
    s->r->rt_bookkeeping++;
    return;
  }
  s->r->rt_releases++;
  wrote(s, b.node, enc, len);
  record(s, name, K_RELEASE, b.node);
  sim_after_core(s, nd);
}

/* One step of the churn: a new name (60 %), a move to another node by the
 * same account (18 %), a release (12 %), or another account's claim of
 * the newest name (10 %: often concurrent with its first claim). */
static void churn_step(sim *s) {
  sim_routes *R = s->rt;
  wr_pcg32 *g = sim_net_rng(s->net);
  uint32_t r = wr_pcg32_bounded(g, 100);
  if (R->nactive == 0 || r < 60) {
    if (R->created >= R->nnames) return;
    uint32_t name = R->created++;
    R->last_new = name;
    if (do_bind(s, name, pick_node(s, NULL, 2),
                (uint8_t)wr_pcg32_bounded(g, NACCT), K_BIND) == 0)
      s->r->rt_binds++;
    return;
  }
  if (r < 78) {
    uint32_t name = R->active[wr_pcg32_bounded(g, R->nactive)];
    rname *nm = &R->names[name];
    if (do_bind(s, name, pick_node(s, nm, 2), nm->b[nm->nb - 1].acct,
                K_MOVE) == 0)
      s->r->rt_moves++;
  } else if (r < 90) {
    do_release(s, R->active[wr_pcg32_bounded(g, R->nactive)]);
  } else {
    rname *nm = &R->names[R->last_new];
    if (!nm->nb) return;
    uint8_t a = (uint8_t)((nm->b[0].acct + 1 + wr_pcg32_bounded(g, NACCT - 1)) %
                          NACCT);
    if (do_bind(s, R->last_new, pick_node(s, nm, 2), a, K_CLAIM) == 0)
      s->r->rt_claims++;
  }
}

/* partition-claims: name i is claimed by acct-a on side 1 and by acct-b
 * on side 0, both while the sides cannot hear each other. */
static void claims_step(sim *s) {
  sim_routes *R = s->rt;
  if (R->created >= R->nnames) return;
  uint32_t name = R->created++;
  if (do_bind(s, name, pick_node(s, NULL, 1), 0, K_BIND) == 0)
    s->r->rt_binds++;
  if (do_bind(s, name, pick_node(s, &R->names[name], 0), 1, K_CLAIM) == 0)
    s->r->rt_claims++;
}

static uint64_t change_at(const sim *s, uint64_t k) {
  return s->rt->t0 + (uint64_t)((double)k * 1000.0 / s->o->churn);
}

void sim_routes_churn(sim *s, uint64_t t0) {
  sim_routes *R = s->rt;
  wr_swim_stats st;
  R->t0 = t0;
  R->nsched = 0;
  R->churning = 1;
  R->tx0 = 0;
  for (uint32_t i = 0; i < s->n; i++) {
    wr_swim_get_stats(s->nodes[i].sw, &st);
    R->tx0 += st.tx_bytes;
  }
  sim_net_push(s->net, change_at(s, 0), EV_CHANGE, SIM_NONE, 0);
}

static void churn_over(sim *s) {
  sim_routes *R = s->rt;
  wr_swim_stats st;
  uint64_t tx = 0;
  R->churning = 0;
  for (uint32_t i = 0; i < s->n; i++) {
    wr_swim_get_stats(s->nodes[i].sw, &st);
    tx += st.tx_bytes;
  }
  double len = (double)(now_of(s) - R->t0) / 1000;
  s->r->rt_churn_s = len;
  if (len > 0)
    s->r->rt_bytes_per_node_per_s = (double)(tx - R->tx0) / s->n / len;
}

void sim_routes_event(sim *s, const sim_ev *ev) {
  sim_routes *R = s->rt;
  (void)ev;
  if (!R || !R->churning) return;
  if (R->mode == 1)
    claims_step(s);
  else
    churn_step(s);
  if (R->created >= R->nnames) {
    churn_over(s);
    return;
  }
  uint64_t next = change_at(s, ++R->nsched);
  sim_net_push(s->net, next < now_of(s) ? now_of(s) : next, EV_CHANGE,
               SIM_NONE, 0);
}

/* ---- phases ------------------------------------------------------------ */

static size_t pairs_wanted(const sim *s, int death) {
  const sim_routes *R = s->rt;
  uint32_t live = 0;
  size_t n = 0;
  for (uint32_t i = 0; i < s->n; i++) live += !s->nodes[i].killed;
  for (size_t c = 0; c < R->nchg; c++)
    if ((R->chg[c].kind == K_DEATH) == death) n += live;
  return n;
}

/* Every pair converged: cheap enough to ask once per 100 ms (the
 * cursors say it without walking the pairs). */
static int all_converged(const sim *s) {
  const sim_routes *R = s->rt;
  for (uint32_t name = 0; name < R->nnames; name++) {
    const rname *nm = &R->names[name];
    if (!nm->nchg) continue;
    const uint32_t *cur = &R->cur[(size_t)name * s->n];
    for (uint32_t x = 0; x < s->n; x++)
      if (!s->nodes[x].killed && cur[x] < nm->nchg) return 0;
  }
  return 1;
}

int sim_routes_done(sim *s) {
  return !s->rt || (!s->rt->churning && all_converged(s));
}

/* Live nodes whose digest differs from the reference's. */
static uint32_t digests_off(const sim *s) {
  uint8_t want[16], d[16];
  uint32_t off = 0;
  wr_routes_digest(s->rt->oracle, want);
  for (uint32_t i = 0; i < s->n; i++) {
    if (s->nodes[i].killed) continue;
    wr_routes_digest(s->nodes[i].rt, d);
    off += memcmp(d, want, 16) != 0;
  }
  return off;
}

static uint64_t user_queued(const sim *s) {
  uint64_t q = 0;
  for (uint32_t i = 0; i < s->n; i++) {
    wr_swim_stats st;
    if (s->nodes[i].killed) continue;
    wr_swim_get_stats(s->nodes[i].sw, &st);
    q += st.broadcast_queue_user;
  }
  return q;
}

/* How long the settling may take: anti-entropy alone reaches everyone in
 * about two of a node's sync periods (swim scales them with log2 n), a
 * healed partition waits a reconnect interval, and after a heavy churn
 * the piggyback queues (4,096 updates, each sent up to
 * retransmit_mult * log10(n + 1) times at some 135 a second) take
 * minutes to drain; four periods cover the runs we make. */
static uint64_t sync_cap(const sim *s) {
  uint64_t iv = s->cfg.sync_interval_ms;
  if (s->n > 32) iv *= (uint64_t)ceil(log2((double)s->n) - 5.0) + 1;
  return 4 * iv + s->cfg.reconnect_interval_ms + 10000;
}

/* Runs until |until| or |stop| holds (checked every 100 ms). */
static void run_while(sim *s, uint64_t until, int (*stop)(sim *s)) {
  while (now_of(s) < until) {
    sim_run_until(s, now_of(s) + 100);
    if (stop && stop(s)) break;
  }
}

static int settled(sim *s) {
  return !s->rt->churning && digests_off(s) == 0 && all_converged(s) &&
         user_queued(s) == 0;
}

void sim_routes_settle_phase(sim *s) {
  sim_routes *R = s->rt;
  if (!R) return;
  run_while(s, now_of(s) + sync_cap(s), settled);
  s->r->rt_converged = digests_off(s) == 0;
  uint64_t from = R->last_change ? R->last_change : R->t0;
  s->r->rt_converge_ms =
      s->r->rt_converged ? (int64_t)(now_of(s) - from) : -1;
  sim_phase(s, "routes settled");
}

/* ---- the routes scenarios ---------------------------------------------- */

/* Runs the churn to its end and until it converged (or a cap). */
static void churn_phase(sim *s, uint64_t t0) {
  sim_routes_churn(s, t0);
  uint64_t end = change_at(s, (uint64_t)((double)s->rt->nnames / 0.6) + 1);
  run_while(s, end + sync_cap(s), settled);
  sim_phase(s, "churned");
}

/* Kills |v| now: the reference learns at once, every name it served
 * becomes a change (measured against each node's detection). */
static void kill_owner(sim *s, uint32_t v, uint32_t k) {
  sim_routes *R = s->rt;
  sim_kill(s, v, k);
  wr_routes_owner_state(R->oracle, s->ids[v], WR_ROUTE_OWNER_DEAD, now_of(s));
  for (uint32_t name = 0; name < R->nnames; name++) {
    rname *nm = &R->names[name];
    int i = bind_find(nm, v);
    if (i < 0) continue;
    bind_del(R, name, i); /* its clients lost their node */
    nm->killed = 1;
    record(s, name, K_DEATH, v);
  }
}

/* Nodes holding bindings, in random order (the first |k| are taken). */
static uint32_t owners(sim *s, uint32_t *out, uint32_t k, uint32_t skip) {
  uint32_t m = 0;
  for (uint32_t v = 0; v < s->n; v++) {
    if (s->nodes[v].killed || v == skip) continue;
    for (uint32_t j = 0; j < s->rt->nactive; j++)
      if (bind_find(&s->rt->names[s->rt->active[j]], v) >= 0) {
        out[m++] = v;
        break;
      }
  }
  wr_pcg32 *g = sim_net_rng(s->net);
  for (uint32_t i = 0; i < k && i < m; i++) {
    uint32_t j = i + wr_pcg32_bounded(g, m - i), t = out[i];
    out[i] = out[j];
    out[j] = t;
  }
  return k < m ? k : m;
}

static int deaths_seen(sim *s) {
  for (uint32_t k = 0; k < s->nkill; k++)
    if (!s->kill_all[k]) return 0;
  return all_converged(s);
}

static uint64_t gc_step_ms(const sim *s) {
  uint64_t g = s->o->routes_grace_s > 0
                   ? (uint64_t)(s->o->routes_grace_s * 1000)
                   : 60000;
  return g / 4 > 1000 ? g / 4 : 1000;
}

static uint64_t grace_ms(const sim *s) { return 4 * gc_step_ms(s); }

uint64_t sim_routes_timeline(sim *s, uint64_t t1) {
  sim_routes *R = s->rt;
  const sim_opts *o = s->o;
  if (o->scenario == SIM_SC_PARTITION_CLAIMS) {
    /* Two halves, cut at t1; claims start half a second later. */
    wr_pcg32 *g = sim_net_rng(s->net);
    for (uint32_t i = 0; i < s->n; i++) R->group[i] = (uint8_t)(i < s->n / 2);
    for (uint32_t i = s->n; i-- > 1;) {
      uint32_t j = wr_pcg32_bounded(g, i + 1);
      uint8_t t = R->group[i];
      R->group[i] = R->group[j];
      R->group[j] = t;
    }
    uint64_t heal = t1 + (uint64_t)(o->partition_s * 1000);
    sim_net_partition(s->net, R->group, t1, heal);
    R->mode = 1;
    sim_routes_churn(s, t1 + 500);
    run_while(s, heal, NULL);
    sim_phase(s, "healed");
    run_while(s, heal + s->r->bound_ms + sync_cap(s), settled);
    return heal;
  }
  /* owner-death and gc-stale: the churn first, converged. */
  churn_phase(s, t1);
  uint32_t *ow = calloc(s->n, sizeof *ow);
  if (!ow) {
    R->oom = 1;
    return now_of(s);
  }
  uint64_t end = now_of(s);
  if (o->scenario == SIM_SC_OWNER_DEATH) {
    uint32_t k = owners(s, ow, s->nkill, SIM_NONE);
    s->nkill = k;
    s->kill_at = now_of(s);
    for (uint32_t i = 0; i < k; i++) kill_owner(s, ow[i], i);
    s->nlive = s->n - k;
    run_while(s, now_of(s) + 2 * s->r->bound_ms, deaths_seen);
    sim_phase(s, "deaths seen");
    end = now_of(s);
    /* Then their logs must be collected everywhere. */
    run_while(s, s->kill_at + s->r->bound_ms + grace_ms(s) +
                     2 * gc_step_ms(s),
              NULL);
  } else if (o->scenario == SIM_SC_GC_STALE) {
    /* Pause a node until everyone declared it dead and stopped gossiping
     * to it, then change the table behind its back, wait for the GC, and
     * let it come back. */
    uint32_t st = owners(s, ow, 1, SIM_NONE) ? ow[0] : pick_node(s, NULL, 2);
    R->stale = st;
    s->r->stale_node = st;
    uint64_t cap = now_of(s) + 2 * s->r->bound_ms;
    while (now_of(s) < cap) {
      sim_net_pause(s->net, st, now_of(s) + 1000);
      sim_run_until(s, now_of(s) + 100);
      uint32_t seen = 0, live = 0;
      for (uint32_t i = 0; i < s->n; i++) {
        wr_swim_member_info mi;
        if (i == st || s->nodes[i].killed) continue;
        live++;
        seen += wr_swim_member_find(s->nodes[i].sw, s->ids[st], &mi) != 0 ||
                mi.state == WR_SWIM_DEAD;
      }
      if (seen == live) break;
    }
    sim_net_pause(s->net, st, now_of(s) + s->cfg.gossip_to_dead_ms + 2000);
    sim_run_until(s, now_of(s) + s->cfg.gossip_to_dead_ms + 1000);
    sim_phase(s, "stale paused");
    /* Behind its back: release half of the names, kill owners. */
    wr_pcg32 *g = sim_net_rng(s->net);
    for (uint32_t n0 = R->nactive / 2; n0 > 0; n0--) {
      uint32_t name = R->active[wr_pcg32_bounded(g, R->nactive)];
      rname *nm = &R->names[name];
      if (bind_find(nm, st) >= 0) continue;
      do_release(s, name);
      if (!nm->nb) nm->watch = 1;
    }
    uint32_t k = owners(s, ow, s->nkill, st);
    s->nkill = k;
    s->kill_at = now_of(s);
    for (uint32_t i = 0; i < k; i++) kill_owner(s, ow[i], i);
    s->nlive = s->n - k;
    for (uint32_t name = 0; name < R->nnames; name++)
      if (R->names[name].killed && !R->names[name].nb)
        R->names[name].watch = 1;
    uint64_t back = now_of(s) + s->r->bound_ms + grace_ms(s) +
                    2 * gc_step_ms(s) + 5000;
    sim_net_pause(s->net, st, back);
    sim_run_until(s, back);
    sim_phase(s, "stale back");
    /* What the stale node still routes that the others collected: the
     * test means something only if this is not 0. */
    for (uint32_t name = 0; name < R->nnames; name++) {
      s->r->watched_names += R->names[name].watch;
      s->r->stale_held +=
          R->names[name].watch && fp_of(s->nodes[st].rt, name) != 0;
    }
    R->watching = 1;
    end = now_of(s);
    run_while(s, now_of(s) + s->r->bound_ms + sync_cap(s), settled);
  }
  free(ow);
  return end;
}

/* ---- results ------------------------------------------------------------ */

static int cmp_u32(const void *a, const void *b) {
  uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
  return x < y ? -1 : x > y;
}

/* Nearest rank over |want| pairs of which |n| converged (sorted |v|):
 * the missing ones rank last, as never. */
static int64_t pct(const uint32_t *v, size_t n, size_t want, double p) {
  if (want == 0) return -1;
  size_t k = (size_t)ceil(p * (double)want);
  if (k < 1) k = 1;
  return k <= n ? (int64_t)v[k - 1] : SIM_NEVER;
}

typedef struct held {
  const char *owner;
  uint64_t n;
} held;

static void count_owner(const wr_route_entry *e, wr_route_verdict v,
                        void *ud) {
  held *h = ud;
  (void)v;
  if (!strcmp(e->owner, h->owner)) h->n++;
}

static void dump_entry(const wr_route_entry *e, wr_route_verdict v,
                       void *ud) {
  (void)ud;
  fprintf(stderr,
          "warren-sim:   %s owner %s account %s epoch %llu seq %llu version "
          "%llu claimed %llu %s session %u: %s\n",
          e->name, e->owner, e->account, (unsigned long long)e->epoch,
          (unsigned long long)e->seq, (unsigned long long)e->version,
          (unsigned long long)e->claimed_at,
          e->state == WR_ROUTE_ACTIVE ? "active" : "released",
          sess_of(e->session), wr_route_verdict_name(v));
}

void sim_routes_measure(sim *s) {
  sim_routes *R = s->rt;
  sim_result *r = s->r;
  if (!R) return;
  for (int death = 0; death < 2; death++) {
    size_t want = pairs_wanted(s, death), n = 0;
    uint32_t *lat = malloc((R->npairs + 1) * sizeof *lat);
    if (!lat) {
      R->oom = 1;
      return;
    }
    for (size_t i = 0; i < R->npairs; i++) {
      const rpair *p = &R->pairs[i];
      const rchange *c = &R->chg[p->chg];
      if (s->nodes[p->node].killed || (c->kind == K_DEATH) != death)
        continue;
      lat[n++] = p->lat;
      if (death) {
        /* Gone from this table no later than the fleet had declared its
         * owner dead. */
        int32_t k = s->kill_slot[c->owner];
        if (k >= 0 && s->kill_all[k] && p->lat > s->kill_all[k] - s->kill_at)
          r->death_late++;
      }
    }
    qsort(lat, n, sizeof *lat, cmp_u32);
    if (!death) {
      r->route_pairs = want;
      r->route_missing = want - n;
      r->route_p50_ms = pct(lat, n, want, 0.50);
      r->route_p99_ms = pct(lat, n, want, 0.99);
      r->route_all_ms = want && n == want ? (int64_t)lat[n - 1] : -1;
    } else {
      r->death_pairs = want;
      r->death_missing = want - n;
      r->death_max_ms = want && n == want ? (int64_t)lat[n - 1] : -1;
    }
    free(lat);
  }
  for (size_t c = 0; c < R->nchg; c++) r->route_changes += R->chg[c].kind != K_DEATH;
  r->rt_names = wr_routes_count(R->oracle);
  r->rt_queue_left = user_queued(s);
  r->rt_tables_off = digests_off(s);
  r->rt_converged = r->rt_tables_off == 0;
  /* Distinct digests among live nodes (1 = converged). */
  uint8_t (*dg)[16] = calloc(s->n, 16);
  if (dg) {
    uint32_t m = 0;
    for (uint32_t i = 0; i < s->n; i++) {
      uint8_t d[16];
      uint32_t j;
      if (s->nodes[i].killed) continue;
      wr_routes_digest(s->nodes[i].rt, d);
      for (j = 0; j < m && memcmp(dg[j], d, 16); j++) {
      }
      if (j == m) memcpy(dg[m++], d, 16);
    }
    r->rt_digest_groups = m;
    free(dg);
  }
  for (uint32_t i = 0; i < s->n; i++) {
    wr_routes_stats st;
    if (s->nodes[i].killed) continue;
    wr_routes_get_stats(s->nodes[i].rt, &st);
    r->rt_sync_bytes += st.sync_bytes_out;
  }
  /* One winner per name: what the reference routes is exactly what the
   * simulated clients still hold (the losers were told and let go). */
  for (uint32_t name = 0; name < R->nnames; name++) {
    rname *nm = &R->names[name];
    char nms[16];
    wr_route_entry e[NB_MAX];
    name_str(name, nms, sizeof nms);
    size_t n = wr_routes_resolve(R->oracle, nms, e, NB_MAX);
    int ok = n == nm->nb && n <= 1;
    if (ok && n == 1)
      ok = !strcmp(e[0].owner, s->ids[nm->b[0].node]) &&
           sess_of(e[0].session) == nm->b[0].sess &&
           !strcmp(e[0].account, accts[nm->b[0].acct]);
    r->rt_winner_errors += !ok;
    if (!ok && s->o->verbose > 1)
      fprintf(stderr, "warren-sim: r%u: reference serves %zu, clients hold %u\n",
              name, n, nm->nb);
  }
  /* Killed owners' logs: collected everywhere once the grace passed. */
  if (s->nkill && (s->o->scenario == SIM_SC_OWNER_DEATH ||
                   s->o->scenario == SIM_SC_GC_STALE))
    for (uint32_t name = 0; name < R->nnames; name++) {
      if (!R->names[name].killed) continue;
      char nms[16];
      name_str(name, nms, sizeof nms);
      for (uint32_t i = 0; i < s->n; i++) {
        if (s->nodes[i].killed) continue;
        for (uint32_t k = 0; k < s->nkill; k++) {
          held h = {s->ids[s->kill_list[k]], 0};
          wr_routes_explain(s->nodes[i].rt, nms, count_owner, &h);
          r->dead_entries_left += h.n;
        }
      }
    }
  /* -vv: what an unconverged table holds of each name it disagrees on,
   * next to the reference. */
  for (uint32_t name = 0; s->o->verbose > 1 && name < R->nnames; name++) {
    rname *nm = &R->names[name];
    for (uint32_t x = 0; x < s->n; x++) {
      if (s->nodes[x].killed || R->cur[(size_t)name * s->n + x] >= nm->nchg)
        continue;
      char nms[16];
      name_str(name, nms, sizeof nms);
      fprintf(stderr, "warren-sim: unconverged r%u at %s; its candidates:\n",
              name, s->ids[x]);
      wr_routes_explain(s->nodes[x].rt, nms, dump_entry, NULL);
      fprintf(stderr, "warren-sim:   the reference's:\n");
      wr_routes_explain(R->oracle, nms, dump_entry, NULL);
    }
  }
  if (R->stale != SIM_NONE) {
    wr_routes_stats st;
    wr_routes_get_stats(s->nodes[R->stale].rt, &st);
    r->stale_epoch = st.epoch;
  }
  /* Watched names (gc-stale): none may route anywhere at the end. */
  for (uint32_t name = 0; R->watching && name < R->nnames; name++) {
    if (!R->names[name].watch) continue;
    for (uint32_t i = 0; i < s->n; i++)
      if (!s->nodes[i].killed && fp_of(s->nodes[i].rt, name) != 0)
        r->resurrected++;
  }
  if (R->oom) r->rt_bookkeeping++;
}
