/*
 * The ownership table's resolution (routes_int.h): which entries of a
 * name serve (the same pure function on every node), each name's share
 * of the table digest, the lost/changed callbacks, and the queries that
 * read the result (resolve, explain, foreach, digest).
 */
#include <sodium.h>
#include <string.h>

#include "routes_int.h"
#include "warren/err.h"

/* ---- resolution ------------------------------------------------------- */

int routes_candidate(const rt_entry *e) {
  return e->state == WR_ROUTE_ACTIVE && !e->owner->dead;
}

/* (claimed_at, account) ascending: the established holder first. */
static int claim_before(const rt_entry *a, const rt_entry *b) {
  if (a->claimed_at != b->claimed_at) return a->claimed_at < b->claimed_at;
  return strcmp(a->acct->s, b->acct->s) < 0;
}

/* (version, owner) descending: the newest write first. */
static int newer(const rt_entry *a, const rt_entry *b) {
  if (a->version != b->version) return a->version > b->version;
  return strcmp(a->owner->id, b->owner->id) > 0;
}

void routes_decide(const rt_name *nm, verdict *v) {
  const rt_entry *e, *best = NULL;
  v->win = NULL;
  v->newest = NULL;
  for (e = nm->entries; e; e = e->nnext)
    if (routes_candidate(e) && (!best || claim_before(e, best))) best = e;
  if (!best) return;
  v->win = best->acct;
  for (e = nm->entries; e; e = e->nnext)
    if (routes_candidate(e) && e->acct == v->win &&
        (!v->newest || newer(e, v->newest)))
      v->newest = e;
}

static int serves(const verdict *v, const rt_entry *e) {
  if (!v->win || !routes_candidate(e) || e->acct != v->win) return 0;
  if (memcmp(e->session, v->newest->session, WR_ROUTE_SESSION_LEN) == 0)
    return 1;
  return (v->newest->options & WR_ROUTE_OPT_BALANCE) &&
         (e->options & WR_ROUTE_OPT_BALANCE);
}

static wr_route_verdict verdict_of(const verdict *v, const rt_entry *e) {
  if (e->state != WR_ROUTE_ACTIVE) return WR_ROUTE_V_RELEASED;
  if (e->owner->dead) return WR_ROUTE_V_OWNER_DEAD;
  if (serves(v, e)) return WR_ROUTE_SERVES;
  return e->acct != v->win ? WR_ROUTE_V_TAKEN : WR_ROUTE_V_MOVED;
}

/* A serving entry's share of the digest.  Only what routing depends on
 * goes in (owner, account, version, session), not seq or epoch: two nodes
 * that serve alike must agree even if one saw an epoch republish. */
static void entry_hash(const rt_entry *e, uint8_t out[16]) {
  uint8_t buf[2 + WR_ROUTE_NAME_MAX + 1 + WR_ROUTE_OWNER_MAX + 1 +
              WR_ROUTE_ACCOUNT_MAX + 8 + WR_ROUTE_SESSION_LEN];
  size_t n = 0;
  int i;
  buf[n++] = e->name->len;
  memcpy(buf + n, e->name->s, e->name->len);
  n += e->name->len;
  buf[n++] = e->owner->len;
  memcpy(buf + n, e->owner->id, e->owner->len);
  n += e->owner->len;
  buf[n++] = e->acct->len;
  memcpy(buf + n, e->acct->s, e->acct->len);
  n += e->acct->len;
  for (i = 0; i < 8; i++) buf[n++] = (uint8_t)(e->version >> (8 * i));
  memcpy(buf + n, e->session, WR_ROUTE_SESSION_LEN);
  n += WR_ROUTE_SESSION_LEN;
  crypto_generichash(out, 16, buf, n, NULL, 0);
}

void routes_entry_export(const rt_entry *x, wr_route_entry *e) {
  memset(e, 0, sizeof *e);
  memcpy(e->name, x->name->s, x->name->len + 1u);
  memcpy(e->owner, x->owner->id, x->owner->len + 1u);
  memcpy(e->account, x->acct->s, x->acct->len + 1u);
  memcpy(e->session, x->session, WR_ROUTE_SESSION_LEN);
  e->epoch = x->owner->epoch;
  e->seq = x->seq;
  e->version = x->version;
  e->claimed_at = x->claimed_at;
  e->state = (wr_route_state)x->state;
  e->options = x->options;
}

/*
 * Recomputes |nm| after one of its entries or owners changed: serving
 * flags, its digest share, the routed count, then the callbacks (lost for
 * a binding of ours that stopped serving while still a candidate, i.e.
 * because of another entry; changed when the serving set changed).
 */
void routes_recompute(wr_routes *t, rt_name *nm) {
  verdict v;
  rt_entry *e, *lost = NULL;
  wr_route_loss why = WR_ROUTE_LOST_TAKEN;
  uint8_t d[16] = {0}, h[16];
  int routed = 0, i, changed;
  routes_decide(nm, &v);
  for (e = nm->entries; e; e = e->nnext) {
    int s = serves(&v, e);
    if (e->serving && !s && e->owner->is_self && routes_candidate(e)) {
      lost = e;
      why = e->acct != v.win ? WR_ROUTE_LOST_TAKEN : WR_ROUTE_LOST_MOVED;
    }
    e->serving = (uint8_t)s;
    if (s) {
      routed = 1;
      entry_hash(e, h);
      for (i = 0; i < 16; i++) d[i] ^= h[i];
    }
  }
  if (routed != nm->routed) {
    if (routed) t->nrouted++;
    else t->nrouted--;
    nm->routed = (uint8_t)routed;
  }
  changed = memcmp(d, nm->digest, 16) != 0;
  if (changed) {
    for (i = 0; i < 16; i++) t->digest[i] ^= d[i] ^ nm->digest[i];
    memcpy(nm->digest, d, 16);
  }
  t->in_callback++;
  if (lost && t->cb.lost) {
    wr_route_entry x;
    routes_entry_export(lost, &x);
    t->cb.lost(t, &x, why, t->user_data);
  }
  if (changed && t->cb.changed) t->cb.changed(t, nm->s, t->user_data);
  t->in_callback--;
}

/* ---- queries ---------------------------------------------------------- */

size_t wr_routes_resolve(const wr_routes *t, const char *name,
                         wr_route_entry *out, size_t cap) {
  const rt_name *nm = name ? routes_name_find(t, name) : NULL;
  const rt_entry *e;
  size_t n = 0;
  int pass;
  if (!nm || !nm->routed) return 0;
  for (pass = 0; pass < 2; pass++)
    for (e = nm->entries; e; e = e->nnext) {
      if (!e->serving || (pass == 0) != (e->owner->is_self != 0)) continue;
      if (n < cap) routes_entry_export(e, &out[n]);
      n++;
    }
  return n;
}

size_t wr_routes_explain(const wr_routes *t, const char *name,
                         void (*fn)(const wr_route_entry *e,
                                    wr_route_verdict v, void *ud),
                         void *ud) {
  const rt_name *nm = name ? routes_name_find(t, name) : NULL;
  const rt_entry *e;
  verdict v;
  size_t n = 0;
  if (!nm) return 0;
  routes_decide(nm, &v);
  for (e = nm->entries; e; e = e->nnext, n++) {
    wr_route_entry x;
    routes_entry_export(e, &x);
    if (fn) fn(&x, verdict_of(&v, e), ud);
  }
  return n;
}

void wr_routes_foreach(const wr_routes *t,
                       void (*fn)(const wr_route_entry *winner,
                                  size_t nserving, void *ud),
                       void *ud) {
  size_t i;
  for (i = 0; i < t->names.nb; i++) {
    const rt_name *nm;
    for (nm = t->names.b[i]; nm; nm = nm->hnext) {
      const rt_entry *e, *w = NULL;
      size_t n = 0;
      wr_route_entry x;
      if (!nm->routed) continue;
      for (e = nm->entries; e; e = e->nnext)
        if (e->serving) {
          n++;
          if (!w || newer(e, w)) w = e;
        }
      routes_entry_export(w, &x);
      fn(&x, n, ud);
    }
  }
}

size_t wr_routes_count(const wr_routes *t) { return t->nrouted; }

void wr_routes_digest(const wr_routes *t, uint8_t out[16]) {
  memcpy(out, t->digest, 16);
}
