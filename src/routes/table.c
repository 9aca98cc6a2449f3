/*
 * The replicated ownership table (include/warren/routes.h, docs/ROUTES.md).
 *
 * State per object, and what moves it:
 *
 *   entry   ACTIVE --release/newer write of the owner--> RELEASED
 *           RELEASED --older than released_grace_ms and at or below the
 *                      owner's watermark (tick)--> collected (freed)
 *           any --newer seq of the same (owner, name)--> replaced
 *           any --newer epoch of its owner--> dropped
 *   owner   LIVE <--owner_state--> DEAD
 *           DEAD --dead_grace_ms (tick)--> COLLECTED (owner tombstone,
 *                      log freed, (owner, epoch) kept)
 *           COLLECTED --owner_tombstone_ms, or evicted as the oldest
 *                      when max_owners is reached--> forgotten
 *           any --entry or mark of a newer epoch--> LIVE at that epoch
 *   self    epoch e --peer's mark (self, e, collected)--> epoch e+1,
 *                      every ACTIVE binding re-written (republish)
 *
 * Resolution is recomputed for one name whenever one of its entries or
 * one of their owners changes, and each name keeps its share of the table
 * digest (the XOR of a BLAKE2b-128 of every serving entry), so the digest
 * is O(1) to read and equal on two nodes exactly when (up to 2^-128) they
 * serve the same entries.  Nothing here reads a clock: time comes in with
 * each call, and the only timer is the GC's (deadline/tick).
 *
 * Names, owners and accounts live in three chained hash tables keyed with
 * SipHash-2-4 (crypto_shorthash) under a random key, because names are
 * chosen by clients and an unkeyed hash lets one client pick colliding
 * names.
 */
#include <sodium.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "routes_int.h"
#include "warren/err.h"

/* The Lamport clock follows versions up to here only (next_version). */
#define LAMPORT_SANE_MAX (WR_ROUTE_VERSION_MAX / 2)

/* GC scans batch: a scan walks every log (O(entries), ~1 ms per 100,000),
 * so with steady churn it must not run once per tombstone.  A scan runs
 * at most every max(1 s, released_grace/4), which collects a tombstone
 * at most 25 % later than its grace; the grace is a lower bound. */
static uint64_t gc_step(const wr_routes *t) {
  return WR_MAX((uint64_t)1000, t->cfg.released_grace_ms / 4);
}

void wr_routes_config_default(wr_routes_config *cfg) {
  memset(cfg, 0, sizeof *cfg);
  cfg->epoch = 1;
  cfg->released_grace_ms = 60000;
  cfg->dead_grace_ms = 60000;
  cfg->owner_tombstone_ms = 24 * 3600 * 1000ull;
  cfg->max_entries = 1000000;
  cfg->max_per_owner = 10000;
  cfg->max_owner_bytes = 2u << 20;
  cfg->max_owners = 20000;
  cfg->owner_rate = 500;
  cfg->owner_burst = 2000;
  cfg->ingest_max = 1024;
  cfg->max_unknown_owners = 256;
  cfg->max_per_unknown_owner = 16;
}

int wr_routes_config_set(wr_routes_config *cfg, const char *name,
                         const char *value, char *err, size_t errlen) {
  static const struct {
    const char *name;
    size_t off;
    int is_u32;
    uint64_t lo, hi;
  } knobs[] = {
      {"max-entries", offsetof(wr_routes_config, max_entries), 0, 1,
       UINT64_C(1) << 32},
      {"owner-max-entries", offsetof(wr_routes_config, max_per_owner), 0, 1,
       UINT64_C(1) << 32},
      {"owner-max-bytes", offsetof(wr_routes_config, max_owner_bytes), 0,
       1024, UINT64_C(1) << 40},
      {"owner-rate", offsetof(wr_routes_config, owner_rate), 1, 0, 1000000},
      {"owner-burst", offsetof(wr_routes_config, owner_burst), 1, 1,
       10000000},
      {"ingest-max", offsetof(wr_routes_config, ingest_max), 0, 1, 1000000},
      {"unknown-owners", offsetof(wr_routes_config, max_unknown_owners), 0,
       1, 1000000},
      {"unknown-owner-max-entries",
       offsetof(wr_routes_config, max_per_unknown_owner), 0, 1, 1000000},
  };
  char key[32];
  size_t i, n = name ? strlen(name) : 0;
  if (!cfg || !name || !value || n >= sizeof key) goto unknown;
  for (i = 0; i <= n; i++) key[i] = name[i] == '_' ? '-' : name[i];
  for (i = 0; i < sizeof knobs / sizeof knobs[0]; i++) {
    const char *p = value;
    uint64_t v = 0;
    if (strcmp(key, knobs[i].name) != 0) continue;
    if (!*p) goto bad;
    for (; *p; p++) {
      if (*p < '0' || *p > '9' || v > (UINT64_MAX - 9) / 10) goto bad;
      v = v * 10 + (uint64_t)(*p - '0');
    }
    if (v < knobs[i].lo || v > knobs[i].hi) goto bad;
    if (knobs[i].is_u32)
      *(uint32_t *)(void *)((char *)cfg + knobs[i].off) = (uint32_t)v;
    else
      *(size_t *)(void *)((char *)cfg + knobs[i].off) = (size_t)v;
    return 0;
  bad:
    if (err)
      snprintf(err, errlen, "routes setting %s wants a number %llu..%llu, "
               "got '%.32s'", knobs[i].name,
               (unsigned long long)knobs[i].lo,
               (unsigned long long)knobs[i].hi, value);
    return WR_ERR_INVAL;
  }
unknown:
  if (err)
    snprintf(err, errlen, "unknown routes setting '%.40s' (max-entries, "
             "owner-max-entries, owner-max-bytes, owner-rate, owner-burst, "
             "ingest-max)", name ? name : "");
  return WR_ERR_INVAL;
}

const char *wr_route_verdict_name(wr_route_verdict v) {
  switch (v) {
  case WR_ROUTE_SERVES: return "serves";
  case WR_ROUTE_V_TAKEN: return "taken";
  case WR_ROUTE_V_MOVED: return "moved";
  case WR_ROUTE_V_RELEASED: return "released";
  case WR_ROUTE_V_OWNER_DEAD: return "owner-dead";
  }
  return "unknown";
}

/* ---- hash tables ------------------------------------------------------ */

typedef struct hnode {
  struct hnode *next;
} hnode;

static uint64_t hstr(const wr_routes *t, const char *s, size_t n) {
  uint8_t out[crypto_shorthash_BYTES];
  uint64_t v;
  crypto_shorthash(out, (const unsigned char *)s, n, t->key);
  memcpy(&v, out, sizeof v);
  return v;
}

/* Each node type keeps its key at a different place. */
typedef enum { H_NAME, H_OWNER, H_ACCT } hkind;

static const char *hkey(hkind k, const void *n, size_t *len) {
  switch (k) {
  case H_NAME: *len = ((const rt_name *)n)->len; return ((const rt_name *)n)->s;
  case H_OWNER: *len = ((const rt_owner *)n)->len; return ((const rt_owner *)n)->id;
  default: *len = ((const rt_acct *)n)->len; return ((const rt_acct *)n)->s;
  }
}

static void *hfind(const wr_routes *t, const rt_hash *h, hkind k,
                   const char *s, size_t n) {
  const hnode *x;
  if (!h->nb) return NULL;
  for (x = h->b[hstr(t, s, n) & (h->nb - 1)]; x; x = x->next) {
    size_t l;
    const char *ks = hkey(k, x, &l);
    if (l == n && memcmp(ks, s, n) == 0) return (void *)x;
  }
  return NULL;
}

/* Grows at load 1 (a chain averages one node).  A failed grow is not an
 * error: the table just gets a little slower. */
static void hgrow(wr_routes *t, rt_hash *h, hkind k) {
  size_t nb = h->nb ? h->nb * 2 : 64, i;
  void **b;
  if (h->n < h->nb) return;
  b = wr_mem_calloc(t->mem, nb, sizeof *b);
  if (!b) return;
  for (i = 0; i < h->nb; i++) {
    hnode *x = h->b[i], *nx;
    for (; x; x = nx) {
      size_t l;
      const char *ks = hkey(k, x, &l);
      size_t j = hstr(t, ks, l) & (nb - 1);
      nx = x->next;
      x->next = b[j];
      b[j] = x;
    }
  }
  wr_mem_free(t->mem, h->b);
  h->b = b;
  h->nb = nb;
}

/* Needs h->nb > 0 (hgrow first, or the initial buckets of wr_routes_new). */
static void hinsert(wr_routes *t, rt_hash *h, hkind k, void *node) {
  size_t l;
  const char *ks = hkey(k, node, &l);
  size_t j = hstr(t, ks, l) & (h->nb - 1);
  ((hnode *)node)->next = h->b[j];
  h->b[j] = node;
  h->n++;
}

static void hremove(wr_routes *t, rt_hash *h, hkind k, void *node) {
  size_t l;
  const char *ks = hkey(k, node, &l);
  hnode **pp = (hnode **)&h->b[hstr(t, ks, l) & (h->nb - 1)];
  for (; *pp; pp = &(*pp)->next)
    if (*pp == node) {
      *pp = ((hnode *)node)->next;
      h->n--;
      return;
    }
}

/* ---- interned accounts ------------------------------------------------ */

static rt_acct *acct_get(wr_routes *t, const char *s) {
  size_t n = strlen(s);
  rt_acct *a = hfind(t, &t->accts, H_ACCT, s, n);
  if (a) {
    a->refs++;
    return a;
  }
  hgrow(t, &t->accts, H_ACCT);
  if (!t->accts.nb) return NULL;
  a = wr_mem_malloc(t->mem, sizeof *a + n + 1);
  if (!a) return NULL;
  a->refs = 1;
  a->len = (uint8_t)n;
  memcpy(a->s, s, n + 1);
  hinsert(t, &t->accts, H_ACCT, a);
  return a;
}

static void acct_put(wr_routes *t, rt_acct *a) {
  if (--a->refs) return;
  hremove(t, &t->accts, H_ACCT, a);
  wr_mem_free(t->mem, a);
}

/* ---- owners ----------------------------------------------------------- */

rt_owner *routes_owner_find(const wr_routes *t, const char *id) {
  return hfind(t, &t->owners, H_OWNER, id, strlen(id));
}

/* An unknown owner stops counting against max_unknown_owners once it
 * holds no log (collected, freed) or membership reports it. */
static void unknown_release(wr_routes *t, rt_owner *o) {
  if (!o->unknown_held) return;
  o->unknown_held = 0;
  t->nunknown--;
}

static void owner_free(wr_routes *t, rt_owner *o) {
  hremove(t, &t->owners, H_OWNER, o);
  if (o->collected) t->ntombs--;
  unknown_release(t, o);
  wr_mem_free(t->mem, o);
}

/* A new owner record.  At max_owners the oldest owner tombstone makes
 * room (the brief's "oldest dropped first"): forgetting it lets a stale
 * peer bring that dead log back, but only one that outlived every
 * younger tombstone.  Live owners are never evicted.  Returns NULL with
 * *err = WR_ERR_LIMIT or WR_ERR_NOMEM. */
static rt_owner *owner_new(wr_routes *t, const char *id, int *err) {
  size_t n = strlen(id), i;
  rt_owner *o;
  if (t->owners.n >= t->cfg.max_owners) {
    rt_owner *old = NULL;
    for (i = 0; i < t->owners.nb; i++)
      for (o = t->owners.b[i]; o; o = o->hnext)
        if (o->collected && !o->is_self && (!old || o->tomb_at < old->tomb_at))
          old = o;
    if (!old) {
      *err = WR_ERR_LIMIT;
      return NULL;
    }
    owner_free(t, old);
  }
  hgrow(t, &t->owners, H_OWNER);
  if (!t->owners.nb) {
    *err = WR_ERR_NOMEM;
    return NULL;
  }
  o = wr_mem_calloc(t->mem, 1, sizeof *o + n + 1);
  if (!o) {
    *err = WR_ERR_NOMEM;
    return NULL;
  }
  o->len = (uint8_t)n;
  memcpy(o->id, id, n + 1);
  o->tb_at = WR_TSTAMP_NONE; /* the bucket starts full at first use */
  hinsert(t, &t->owners, H_OWNER, o);
  return o;
}

/* What one entry pins in the table, charged to its owner's byte quota:
 * the entry, a name node and both strings, as if neither name nor
 * account were shared with another entry (they may be, but an owner's
 * quota must not depend on what other owners hold). */
static size_t entry_cost(size_t namelen, size_t acctlen) {
  return sizeof(rt_entry) + sizeof(rt_name) + sizeof(rt_acct) + namelen +
         acctlen + 2;
}

static size_t entry_cost_of(const rt_entry *x) {
  return entry_cost(x->name->len, x->acct->len);
}

/* Would a new entry of |o| for a name it holds nothing of go over a
 * quota (its entries, its bytes, the table)? */
static int over_quota(const wr_routes *t, const rt_owner *o, size_t cost) {
  return o->nentries >= t->cfg.max_per_owner ||
         o->bytes + cost > t->cfg.max_owner_bytes ||
         t->nentries >= t->cfg.max_entries;
}

/* The token bucket: owner_burst tokens at first, refilled at owner_rate
 * a second, kept in thousandths so that one millisecond refills
 * owner_rate of them exactly.  Time that goes backwards refills
 * nothing. */
int routes_owner_take(wr_routes *t, rt_owner *o, wr_tstamp now) {
  uint64_t cap = (uint64_t)t->cfg.owner_burst * 1000u;
  if (!t->cfg.owner_rate || o->is_self) return 1;
  if (o->tb_at == WR_TSTAMP_NONE) {
    o->tb_milli = cap;
    o->tb_at = now;
  } else if (now > o->tb_at) {
    uint64_t dt = now - o->tb_at;
    if (dt >= cap / t->cfg.owner_rate + 1)
      o->tb_milli = cap;
    else
      o->tb_milli = WR_MIN(cap, o->tb_milli + dt * t->cfg.owner_rate);
    o->tb_at = now;
  }
  if (o->tb_milli < 1000) {
    t->st.rate_drops++;
    return 0;
  }
  o->tb_milli -= 1000;
  return 1;
}

/* Records that seq |s| (of the owner's current epoch) reached us, and
 * moves the contiguous watermark over every seq now known. */
static void owner_seen(rt_owner *o, uint64_t s) {
  size_t i;
  if (s <= o->wm) return;
  if (s != o->wm + 1) {
    for (i = 0; i < o->nabove; i++)
      if (o->above[i] == s) return;
    if (o->nabove < RT_ABOVE_MAX) {
      o->above[o->nabove++] = s;
    } else {
      /* Full: keep the lowest, the ones that can join the watermark soon. */
      size_t hi = 0;
      for (i = 1; i < o->nabove; i++)
        if (o->above[i] > o->above[hi]) hi = i;
      if (s < o->above[hi]) o->above[hi] = s;
    }
    return;
  }
  o->wm = s;
  routes_owner_advance(o, s);
}

void routes_owner_advance(rt_owner *o, uint64_t w) {
  int moved = 1;
  size_t i;
  if (w > o->wm) o->wm = w;
  while (moved) {
    moved = 0;
    for (i = 0; i < o->nabove;) {
      if (o->above[i] <= o->wm + 1) {
        if (o->above[i] == o->wm + 1) {
          o->wm++;
          moved = 1;
        }
        o->above[i] = o->above[--o->nabove];
      } else {
        i++;
      }
    }
  }
}

/* ---- resolution ------------------------------------------------------- */

static int candidate(const rt_entry *e) {
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

typedef struct verdict {
  const rt_acct *win; /* winning account, NULL = no candidate */
  const rt_entry *newest;
} verdict;

static void decide(const rt_name *nm, verdict *v) {
  const rt_entry *e, *best = NULL;
  v->win = NULL;
  v->newest = NULL;
  for (e = nm->entries; e; e = e->nnext)
    if (candidate(e) && (!best || claim_before(e, best))) best = e;
  if (!best) return;
  v->win = best->acct;
  for (e = nm->entries; e; e = e->nnext)
    if (candidate(e) && e->acct == v->win && (!v->newest || newer(e, v->newest)))
      v->newest = e;
}

static int serves(const verdict *v, const rt_entry *e) {
  if (!v->win || !candidate(e) || e->acct != v->win) return 0;
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
static void recompute(wr_routes *t, rt_name *nm) {
  verdict v;
  rt_entry *e, *lost = NULL;
  wr_route_loss why = WR_ROUTE_LOST_TAKEN;
  uint8_t d[16] = {0}, h[16];
  int routed = 0, i, changed;
  decide(nm, &v);
  for (e = nm->entries; e; e = e->nnext) {
    int s = serves(&v, e);
    if (e->serving && !s && e->owner->is_self && candidate(e)) {
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

/* ---- names and entries ------------------------------------------------ */

static rt_name *name_find(const wr_routes *t, const char *s) {
  return hfind(t, &t->names, H_NAME, s, strlen(s));
}

static rt_name *name_new(wr_routes *t, const char *s) {
  size_t n = strlen(s);
  rt_name *nm;
  hgrow(t, &t->names, H_NAME);
  if (!t->names.nb) return NULL;
  nm = wr_mem_calloc(t->mem, 1, sizeof *nm + n + 1);
  if (!nm) return NULL;
  nm->len = (uint8_t)n;
  memcpy(nm->s, s, n + 1);
  hinsert(t, &t->names, H_NAME, nm);
  return nm;
}

static void name_drop_if_empty(wr_routes *t, rt_name *nm) {
  if (nm->entries) return;
  hremove(t, &t->names, H_NAME, nm);
  wr_mem_free(t->mem, nm);
}

static rt_entry *entry_of(const rt_name *nm, const rt_owner *o) {
  rt_entry *e;
  for (e = nm ? nm->entries : NULL; e; e = e->nnext)
    if (e->owner == o) return e;
  return NULL;
}

static void log_unlink(rt_owner *o, rt_entry *e) {
  if (o->ins == e) o->ins = NULL;
  if (!e->lprev && !e->lnext && o->head != e) return; /* not linked yet */
  if (e->lprev) e->lprev->lnext = e->lnext;
  else o->head = e->lnext;
  if (e->lnext) e->lnext->lprev = e->lprev;
  else o->tail = e->lprev;
  e->lprev = e->lnext = NULL;
}

/* Inserts by seq from the tail: gossip is nearly in order and local
 * writes always go last, so this is O(1) but for reordered arrivals.
 * Except after the last insert when that is below: a sync delta fills
 * the holes of a log in ascending seq, often far from its tail (an
 * owner whose gossip was dropped over its ingest rate leaves holes all
 * through its log), and walking back from the tail for each made a
 * delta of n entries cost O(n * log) in one loop turn (log_insert was
 * the top of a profile under the poison flood).  From the hint, a run of
 * ascending inserts costs O(1) each. */
static void log_insert(rt_owner *o, rt_entry *e) {
  rt_entry *p = o->tail;
  if (o->ins && o->ins->seq < e->seq) {
    p = o->ins;
    while (p->lnext && p->lnext->seq <= e->seq) p = p->lnext;
  } else {
    while (p && p->seq > e->seq) p = p->lprev;
  }
  e->lprev = p;
  e->lnext = p ? p->lnext : o->head;
  if (e->lnext) e->lnext->lprev = e;
  else o->tail = e;
  if (p) p->lnext = e;
  else o->head = e;
  o->ins = e;
}

/* Frees |e| and recomputes its name (dropping the name when empty). */
static void entry_remove(wr_routes *t, rt_entry *e) {
  rt_name *nm = e->name;
  rt_entry **pp;
  for (pp = &nm->entries; *pp != e; pp = &(*pp)->nnext) {
  }
  *pp = e->nnext;
  log_unlink(e->owner, e);
  e->owner->nentries--;
  e->owner->bytes -= entry_cost_of(e);
  t->nentries--;
  acct_put(t, e->acct);
  wr_mem_free(t->mem, e);
  t->free_gen++;
  recompute(t, nm);
  name_drop_if_empty(t, nm);
}

static void owner_drop_log(wr_routes *t, rt_owner *o) {
  while (o->head) entry_remove(t, o->head);
}

/* An entry or mark showed a newer epoch of |o|: the owner restarted (or
 * republished), so everything of the older epoch is gone. */
static void owner_new_epoch(wr_routes *t, rt_owner *o, uint64_t epoch) {
  owner_drop_log(t, o);
  if (o->collected) {
    o->collected = 0;
    t->ntombs--;
  }
  o->epoch = epoch;
  o->wm = 0;
  o->gc_floor = 0;
  o->nabove = 0;
  o->full_tag = 0;
}

static void gc_want(wr_routes *t, wr_tstamp when) {
  wr_tstamp earliest = t->last_gc + gc_step(t);
  if (when < earliest) when = earliest;
  if (when < t->next_gc) t->next_gc = when;
}

/* An owner first heard of through an entry or a mark: live unless the
 * wiring says membership does not know it (owner_known).  An entry from
 * an owner nobody knows is most likely the log of one that died and was
 * reaped from membership while a peer still held it: it must not route,
 * and it is collected like any dead owner's log.  If membership reports
 * the owner later, wr_routes_owner_state revives it. */
static int owner_is_known(wr_routes *t, const char *id) {
  return !t->cb.owner_known || t->cb.owner_known(t, id, t->user_data);
}

static void owner_first_state(wr_routes *t, rt_owner *o, wr_tstamp now) {
  if (owner_is_known(t, o->id)) return;
  o->unknown = 1;
  o->unknown_held = 1;
  t->nunknown++;
  o->dead = 1;
  o->dead_since = now;
  gc_want(t, now + t->cfg.dead_grace_ms);
}

static void owner_collect(wr_routes *t, rt_owner *o, wr_tstamp now) {
  owner_drop_log(t, o);
  unknown_release(t, o);
  if (!o->collected) {
    o->collected = 1;
    t->ntombs++;
  }
  o->tomb_at = now;
  o->nabove = 0;
  gc_want(t, now + t->cfg.owner_tombstone_ms);
}

/* ---- lifecycle -------------------------------------------------------- */

int wr_routes_new(wr_routes **pt, const wr_routes_config *cfg,
                  const wr_routes_callbacks *cb, const wr_mem *mem,
                  void *user_data, wr_tstamp now) {
  wr_routes *t;
  int err = 0;
  *pt = NULL;
  if (!cfg || !routes_text_ok(cfg->self, WR_ROUTE_OWNER_MAX) ||
      cfg->epoch == 0 || cfg->epoch > WR_ROUTE_VERSION_MAX ||
      cfg->max_owners < 1 || cfg->max_entries < 1 || cfg->max_per_owner < 1 ||
      cfg->max_owner_bytes < 1 || cfg->ingest_max < 1 ||
      cfg->max_unknown_owners < 1 || cfg->max_per_unknown_owner < 1 ||
      (cfg->owner_rate && cfg->owner_burst < 1))
    return WR_ERR_INVAL;
  if (sodium_init() < 0) return WR_ERR_INTERNAL;
  t = wr_mem_calloc(mem, 1, sizeof *t);
  if (!t) return WR_ERR_NOMEM;
  t->cfg = *cfg;
  if (cb) t->cb = *cb;
  t->mem = mem;
  t->user_data = user_data;
  if (cfg->rand) cfg->rand(t->key, sizeof t->key, cfg->rand_user_data);
  else randombytes_buf(t->key, sizeof t->key);
  t->next_gc = WR_TSTAMP_NONE;
  t->last_gc = now;
  t->self = owner_new(t, cfg->self, &err);
  if (!t->self) {
    wr_routes_del(t);
    return err;
  }
  t->self->is_self = 1;
  t->self->epoch = cfg->epoch;
  *pt = t;
  return 0;
}

static void hfree(wr_routes *t, rt_hash *h) {
  size_t i;
  for (i = 0; i < h->nb; i++) {
    hnode *x = h->b[i], *nx;
    for (; x; x = nx) {
      nx = x->next;
      wr_mem_free(t->mem, x);
    }
  }
  wr_mem_free(t->mem, h->b);
}

void wr_routes_del(wr_routes *t) {
  size_t i;
  if (!t) return;
  for (i = 0; i < t->owners.nb; i++) {
    rt_owner *o;
    for (o = t->owners.b[i]; o; o = o->hnext) {
      rt_entry *e, *ne;
      for (e = o->head; e; e = ne) {
        ne = e->lnext;
        wr_mem_free(t->mem, e);
      }
    }
  }
  wr_mem_free(t->mem, t->iq);
  hfree(t, &t->names);
  hfree(t, &t->owners);
  hfree(t, &t->accts);
  wr_mem_free(t->mem, t);
}

void wr_routes_get_stats(const wr_routes *t, wr_routes_stats *out) {
  *out = t->st;
  out->entries = t->nentries;
  out->names = t->names.n;
  out->owners = t->owners.n - t->ntombs;
  out->owner_tombstones = t->ntombs;
  out->lamport = t->lamport;
  out->self_seq = t->self_seq;
  out->epoch = t->self->epoch;
  out->ingest_queued = t->iq_n;
}

/* ---- local writes ----------------------------------------------------- */

static int encode_out(const rt_entry *x, uint8_t *enc, size_t *enclen) {
  wr_route_entry e;
  wr_ssize n;
  routes_entry_export(x, &e);
  n = wr_route_entry_encode(&e, enc, WR_ROUTE_ENCODED_MAX);
  if (n < 0) return (int)n;
  *enclen = (size_t)n;
  return 0;
}

/* Moves our entry |x| to a new seq at the end of our log. */
static void self_rewrite(wr_routes *t, rt_entry *x, wr_tstamp now) {
  x->seq = ++t->self_seq;
  x->at = now;
  log_unlink(t->self, x);
  log_insert(t->self, x);
  t->self->wm = t->self_seq;
}

/*
 * The version of our next write of |nm| (NULL: a name new here): above
 * the Lamport clock and above every version this name holds, or 0 when
 * that would pass WR_ROUTE_VERSION_MAX.  The resolution rule compares
 * versions within one name only, so only that name's entries must be
 * outbid.  The clock itself follows only versions up to
 * LAMPORT_SANE_MAX: a member with the cluster key that gossips an entry
 * at the top of the range (the poison scenario) then locks only that
 * one name's writes here, not every bind in the fleet.  Honest writes
 * never get near it (2^61: 73,000 years at a million writes a second).
 */
static uint64_t next_version(const wr_routes *t, const rt_name *nm) {
  uint64_t top = t->lamport;
  for (const rt_entry *e = nm ? nm->entries : NULL; e; e = e->nnext)
    if (e->version > top) top = e->version;
  return top >= WR_ROUTE_VERSION_MAX ? 0 : top + 1;
}

int wr_routes_bind(wr_routes *t, const char *name, const char *account,
                   const uint8_t session[WR_ROUTE_SESSION_LEN],
                   uint32_t options, uint8_t *enc, size_t *enclen,
                   wr_tstamp now) {
  rt_name *nm;
  rt_entry *x, *e;
  rt_acct *a;
  verdict v;
  uint64_t claimed = 0;
  int fresh_name = 0;
  if (!wr_route_name_ok(name) ||
      !routes_text_ok(account, WR_ROUTE_ACCOUNT_MAX) || !session || !enc ||
      !enclen)
    return WR_ERR_INVAL;
  if (t->in_callback) return WR_ERR_INTERNAL; /* see wr_routes_callbacks */
  nm = name_find(t, name);
  x = entry_of(nm, t->self);
  if (nm) {
    decide(nm, &v);
    if (v.win && strcmp(v.win->s, account) != 0) return WR_ERR_EXISTS;
    /* Same (name, session, account, options) still active: a refresh,
     * not a new write.  Re-writing would raise the version and let an
     * older session take the name back from a newer one. */
    if (x && x->state == WR_ROUTE_ACTIVE && x->options == options &&
        strcmp(x->acct->s, account) == 0 &&
        memcmp(x->session, session, WR_ROUTE_SESSION_LEN) == 0)
      return encode_out(x, enc, enclen);
    /* A move keeps the account's original claim time. */
    for (e = nm->entries; e; e = e->nnext)
      if (candidate(e) && strcmp(e->acct->s, account) == 0 &&
          (!claimed || e->claimed_at < claimed))
        claimed = e->claimed_at;
  }
  uint64_t version = next_version(t, nm);
  if (!version || t->self_seq >= WR_ROUTE_VERSION_MAX) return WR_ERR_LIMIT;
  /* Our own log keeps within what every peer accepts of one owner. */
  if (!x && over_quota(t, t->self, entry_cost(strlen(name), strlen(account))))
    return WR_ERR_LIMIT;
  /* Every allocation before the first change, so a failure leaves the
   * table as it was. */
  a = acct_get(t, account);
  if (!a) return WR_ERR_NOMEM;
  if (!nm) {
    nm = name_new(t, name);
    if (!nm) {
      acct_put(t, a);
      return WR_ERR_NOMEM;
    }
    fresh_name = 1;
  }
  if (!x) {
    x = wr_mem_calloc(t->mem, 1, sizeof *x);
    if (!x) {
      acct_put(t, a);
      if (fresh_name) name_drop_if_empty(t, nm);
      return WR_ERR_NOMEM;
    }
    x->name = nm;
    x->owner = t->self;
    x->nnext = nm->entries;
    nm->entries = x;
    t->self->nentries++;
    t->nentries++;
    /* Linked into our log by self_rewrite, once it has its seq. */
  } else {
    t->self->bytes -= entry_cost_of(x);
    acct_put(t, x->acct);
  }
  x->acct = a;
  t->self->bytes += entry_cost_of(x);
  memcpy(x->session, session, WR_ROUTE_SESSION_LEN);
  x->options = options;
  x->state = WR_ROUTE_ACTIVE;
  x->version = version;
  if (version > t->lamport && version <= LAMPORT_SANE_MAX)
    t->lamport = version;
  x->claimed_at = claimed ? claimed : x->version;
  self_rewrite(t, x, now);
  recompute(t, nm);
  return encode_out(x, enc, enclen);
}

int wr_routes_release(wr_routes *t, const char *name, uint8_t *enc,
                      size_t *enclen, wr_tstamp now) {
  rt_name *nm;
  rt_entry *x;
  if (!name || !enc || !enclen) return WR_ERR_INVAL;
  if (t->in_callback) return WR_ERR_INTERNAL;
  nm = name_find(t, name);
  x = entry_of(nm, t->self);
  if (!x || x->state != WR_ROUTE_ACTIVE) return WR_ERR_NOTFOUND;
  uint64_t version = next_version(t, nm);
  if (!version) return WR_ERR_LIMIT;
  x->state = WR_ROUTE_RELEASED;
  x->version = version;
  if (version > t->lamport && version <= LAMPORT_SANE_MAX)
    t->lamport = version;
  self_rewrite(t, x, now);
  gc_want(t, now + t->cfg.released_grace_ms);
  recompute(t, nm);
  return encode_out(x, enc, enclen);
}

/* ---- replication ------------------------------------------------------ */

int routes_entry_is_news(const wr_routes *t, const wr_route_entry *e) {
  const rt_owner *o;
  const rt_entry *x;
  if (strcmp(e->owner, t->cfg.self) == 0) return 0;
  o = routes_owner_find(t, e->owner);
  if (!o) return 1;
  if (e->epoch < o->epoch || (o->collected && e->epoch == o->epoch))
    return 0;
  if (e->epoch > o->epoch) return 1;
  if (e->seq <= o->wm) return 0;
  x = entry_of(name_find(t, e->name), o);
  return !x || x->seq < e->seq;
}

int routes_apply_entry(wr_routes *t, const wr_route_entry *e, int charge,
                       wr_tstamp now) {
  rt_owner *o;
  rt_name *nm;
  rt_entry *x;
  rt_acct *a;
  int err = 0, fresh_name = 0;
  if (e->version > t->lamport && e->version <= LAMPORT_SANE_MAX)
    t->lamport = e->version;
  /* We are the only writer of our log: a copy of it from a peer is at
   * best what we already hold, at worst an older epoch of ours. */
  if (strcmp(e->owner, t->cfg.self) == 0) goto stale;
  o = routes_owner_find(t, e->owner);
  if (!o) {
    /* A made-up owner each time must not get around the per-owner
     * quota: owners membership never reported are few, and small. */
    if (t->nunknown >= t->cfg.max_unknown_owners &&
        !owner_is_known(t, e->owner)) {
      t->st.unknown_drops++;
      return RT_RATE_DROPPED;
    }
    o = owner_new(t, e->owner, &err);
    if (!o) {
      if (err == WR_ERR_LIMIT) {
        t->st.quota_drops++;
        return 0;
      }
      return err;
    }
    o->epoch = e->epoch;
    owner_first_state(t, o, now);
  }
  if (e->epoch < o->epoch || (o->collected && e->epoch == o->epoch))
    goto stale;
  if (e->epoch > o->epoch) {
    /* An unknown owner whose log was collected starts holding one again:
     * within the same bound as a new one. */
    if (o->unknown && !o->unknown_held) {
      if (t->nunknown >= t->cfg.max_unknown_owners) {
        t->st.unknown_drops++;
        return RT_RATE_DROPPED;
      }
      o->unknown_held = 1;
      t->nunknown++;
    }
    owner_new_epoch(t, o, e->epoch);
  }
  if (e->seq <= o->wm) goto stale;
  nm = name_find(t, e->name);
  x = entry_of(nm, o);
  if (x && x->seq >= e->seq) {
    /* Replaced already: the seq is accounted for all the same. */
    owner_seen(o, e->seq);
    goto stale;
  }
  /* News from here on.  Over its owner's rate it is dropped before it
   * costs anything, and not marked as seen, so the watermark stays below
   * it and a later sync offers it again (within the same bucket). */
  if (charge && !routes_owner_take(t, o, now)) return RT_RATE_DROPPED;
  if (!x && o->unknown && o->nentries >= t->cfg.max_per_unknown_owner) {
    t->st.unknown_drops++;
    return RT_RATE_DROPPED;
  }
  if (!x && over_quota(t, o, entry_cost(strlen(e->name), strlen(e->account)))) {
    t->st.quota_drops++;
    return 0;
  }
  a = acct_get(t, e->account);
  if (!a) return WR_ERR_NOMEM;
  if (!nm) {
    nm = name_new(t, e->name);
    if (!nm) {
      acct_put(t, a);
      return WR_ERR_NOMEM;
    }
    fresh_name = 1;
  }
  if (!x) {
    x = wr_mem_calloc(t->mem, 1, sizeof *x);
    if (!x) {
      acct_put(t, a);
      if (fresh_name) name_drop_if_empty(t, nm);
      return WR_ERR_NOMEM;
    }
    x->name = nm;
    x->owner = o;
    x->nnext = nm->entries;
    nm->entries = x;
    o->nentries++;
    t->nentries++;
  } else {
    log_unlink(o, x);
    o->bytes -= entry_cost_of(x);
    acct_put(t, x->acct);
  }
  x->acct = a;
  o->bytes += entry_cost_of(x);
  memcpy(x->session, e->session, WR_ROUTE_SESSION_LEN);
  x->seq = e->seq;
  x->version = e->version;
  x->claimed_at = e->claimed_at;
  x->state = (uint8_t)e->state;
  x->options = e->options;
  x->at = now;
  x->tag = 0; /* a new write: no full log has confirmed it */
  log_insert(o, x);
  owner_seen(o, e->seq);
  if (x->state == WR_ROUTE_RELEASED)
    gc_want(t, now + t->cfg.released_grace_ms);
  if (o->dead) gc_want(t, o->dead_since + t->cfg.dead_grace_ms);
  t->st.applied++;
  recompute(t, nm);
  return 1;
stale:
  t->st.stale++;
  return 0;
}

int wr_routes_apply(wr_routes *t, const uint8_t *enc, size_t len,
                    wr_tstamp now) {
  wr_route_entry e;
  int rv;
  if (t->in_callback) return WR_ERR_INTERNAL;
  rv = routes_decode_entry_mem(enc, len, &e, t->mem);
  if (rv == WR_ERR_PROTO) t->st.rejected++;
  if (rv != 0) return rv;
  rv = routes_apply_entry(t, &e, 1, now);
  return rv == RT_RATE_DROPPED ? 0 : rv;
}

/* Our epoch was collected at a peer (we were partitioned away long
 * enough to be declared dead and collected): start epoch e+1 and re-write
 * every active binding in it.  Versions and claim times are kept, so the
 * resolution does not change; only the (epoch, seq) that lets the fleet
 * accept the entries again.  Our old tombstones are dropped: the whole
 * old epoch is superseded. */
static void self_new_epoch(wr_routes *t, uint64_t collected_epoch,
                           wr_tstamp now) {
  rt_owner *o = t->self;
  rt_entry *e, *ne, *last = o->tail;
  uint8_t enc[WR_ROUTE_ENCODED_MAX];
  size_t n = 0;
  o->epoch = WR_MAX(o->epoch, collected_epoch) + 1;
  t->self_seq = 0;
  o->wm = 0;
  o->gc_floor = 0;
  for (e = o->head; e; e = ne) {
    ne = e == last ? NULL : e->lnext;
    if (e->state != WR_ROUTE_ACTIVE) {
      entry_remove(t, e);
      continue;
    }
    self_rewrite(t, e, now);
    if (encode_out(e, enc, &n) == 0 && t->cb.republish) {
      t->in_callback++;
      t->cb.republish(t, enc, n, t->user_data);
      t->in_callback--;
    }
  }
}

int routes_apply_mark(wr_routes *t, const rt_mark *m, wr_tstamp now) {
  rt_owner *o;
  int err = 0;
  if (strcmp(m->owner, t->cfg.self) == 0) {
    /* Our epoch was collected there, or a peer holds a log of ours we
     * never wrote in this process: a newer epoch (our clock went back
     * since an earlier run) or the same epoch further on (a restart
     * within the same epoch).  Either way peers would take our writes for
     * stale, so move past it.  A claim about an epoch at the bound is a
     * lie; e+1 must stay within it. */
    if (m->epoch < WR_ROUTE_VERSION_MAX &&
        (m->epoch > t->self->epoch ||
         (m->epoch == t->self->epoch &&
          (m->collected || m->watermark > t->self_seq)))) {
      self_new_epoch(t, m->epoch, now);
      return 1;
    }
    return 0;
  }
  o = routes_owner_find(t, m->owner);
  if (!o) {
    o = owner_new(t, m->owner, &err);
    if (!o) {
      if (err == WR_ERR_LIMIT) {
        t->st.quota_drops++;
        return 0;
      }
      return err;
    }
    o->epoch = m->epoch;
    owner_first_state(t, o, now);
  }
  if (m->epoch < o->epoch || (o->collected && m->epoch == o->epoch))
    return 0;
  if (m->epoch > o->epoch) owner_new_epoch(t, o, m->epoch);
  if (m->collected) {
    owner_collect(t, o, now);
    t->st.collected++;
    return 1;
  }
  if (m->watermark > o->wm) {
    routes_owner_advance(o, m->watermark);
    return 1;
  }
  return 0;
}

void routes_drop_untagged(wr_routes *t, rt_owner *o, uint64_t hi,
                          uint16_t tag) {
  rt_entry *e, *ne;
  for (e = o->head; e && e->seq <= hi; e = ne) {
    ne = e->lnext;
    if (e->tag == tag) continue;
    o->gc_floor = WR_MAX(o->gc_floor, e->seq);
    t->st.collected++;
    entry_remove(t, e);
  }
}

rt_entry *routes_entry_find(const wr_routes *t, const rt_owner *o,
                            const char *name) {
  return entry_of(name_find(t, name), o);
}

rt_owner *routes_owner_at(wr_routes *t, const char *id, uint64_t epoch) {
  rt_owner *o = routes_owner_find(t, id);
  int err = 0;
  if (!o) {
    o = owner_new(t, id, &err);
    if (!o) return NULL;
    o->epoch = epoch;
  }
  if (o->is_self || epoch < o->epoch || (o->collected && epoch == o->epoch))
    return NULL;
  if (epoch > o->epoch) owner_new_epoch(t, o, epoch);
  return o;
}

void wr_routes_owner_epoch(wr_routes *t, const char *owner, uint64_t epoch,
                           wr_tstamp now) {
  (void)now;
  if (!owner || t->in_callback || epoch == 0 ||
      epoch > WR_ROUTE_VERSION_MAX || strcmp(owner, t->cfg.self) == 0)
    return;
  rt_owner *o = routes_owner_find(t, owner);
  if (!o || epoch <= o->epoch) return;
  owner_new_epoch(t, o, epoch);
}

void wr_routes_owner_state(wr_routes *t, const char *owner,
                           wr_route_owner_state st, wr_tstamp now) {
  rt_owner *o;
  rt_entry *e, *ne;
  int dead = st == WR_ROUTE_OWNER_DEAD, err;
  if (!owner || strcmp(owner, t->cfg.self) == 0) return;
  o = routes_owner_find(t, owner);
  if (!o) {
    /* Unknown owners count as live; a dead one is remembered so entries
     * still in flight from it do not resolve.  Failing to remember it
     * only costs that. */
    if (!dead || !routes_text_ok(owner, WR_ROUTE_OWNER_MAX)) return;
    o = owner_new(t, owner, &err);
    if (!o) return;
  }
  if (o->unknown) { /* membership knows it now, dead or alive */
    o->unknown = 0;
    unknown_release(t, o);
  }
  if (o->dead == dead) return;
  o->dead = (uint8_t)dead;
  if (dead) {
    o->dead_since = now;
    gc_want(t, now + t->cfg.dead_grace_ms);
  }
  for (e = o->head; e; e = ne) {
    ne = e->lnext;
    recompute(t, e->name);
  }
}

/* ---- timers ----------------------------------------------------------- */

wr_tstamp wr_routes_deadline(const wr_routes *t) { return t->next_gc; }

static void min_into(wr_tstamp *a, wr_tstamp b) {
  if (b < *a) *a = b;
}

void wr_routes_tick(wr_routes *t, wr_tstamp now) {
  size_t i;
  wr_tstamp next = WR_TSTAMP_NONE;
  if (now < t->next_gc) return;
  t->last_gc = now;
  t->next_gc = WR_TSTAMP_NONE;
  for (i = 0; i < t->owners.nb; i++) {
    rt_owner *o, *no;
    for (o = t->owners.b[i]; o; o = no) {
      rt_entry *e, *ne;
      no = o->hnext;
      if (o->collected) {
        if (now - o->tomb_at >= t->cfg.owner_tombstone_ms)
          owner_free(t, o);
        else
          min_into(&next, o->tomb_at + t->cfg.owner_tombstone_ms);
        continue;
      }
      if (o->dead) {
        if (now - o->dead_since >= t->cfg.dead_grace_ms) {
          /* No log to collect: the record stays, because it is what
           * remembers that swim said DEAD (freeing it would make a late
           * entry from this owner resolve again). */
          if (o->epoch == 0 && !o->head) continue;
          owner_collect(t, o, now);
          t->st.collected++;
          min_into(&next, now + t->cfg.owner_tombstone_ms);
          continue;
        }
        min_into(&next, o->dead_since + t->cfg.dead_grace_ms);
      }
      /* Tombstones: old enough AND at or below the watermark, so any
       * copy of an older entry of the name that a peer might still send
       * is old news here (seq <= watermark) and cannot come back. */
      for (e = o->head; e; e = ne) {
        ne = e->lnext;
        if (e->state != WR_ROUTE_RELEASED) continue;
        if (e->seq <= o->wm && now - e->at >= t->cfg.released_grace_ms) {
          o->gc_floor = WR_MAX(o->gc_floor, e->seq);
          t->st.collected++;
          entry_remove(t, e);
        } else if (e->seq > o->wm) {
          min_into(&next, now + gc_step(t)); /* wait for the watermark */
        } else {
          min_into(&next, e->at + t->cfg.released_grace_ms);
        }
      }
    }
  }
  if (next != WR_TSTAMP_NONE) gc_want(t, next);
}

/* ---- queries ---------------------------------------------------------- */

size_t wr_routes_resolve(const wr_routes *t, const char *name,
                         wr_route_entry *out, size_t cap) {
  const rt_name *nm = name ? name_find(t, name) : NULL;
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
  const rt_name *nm = name ? name_find(t, name) : NULL;
  const rt_entry *e;
  verdict v;
  size_t n = 0;
  if (!nm) return 0;
  decide(nm, &v);
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
