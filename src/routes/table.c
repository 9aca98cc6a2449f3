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
 *
 * Files: this one has the config, the lifecycle, names and entries, local
 * writes and replication; the hash tables are table_hash.c, owners
 * (quotas, token bucket, watermarks) table_owner.c, resolution and the
 * queries table_resolve.c, the GC table_gc.c (routes_int.h lists them).
 */
#include <sodium.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "routes_int.h"
#include "warren/err.h"

/* The Lamport clock follows versions up to here only (next_version). */
#define LAMPORT_SANE_MAX (WR_ROUTE_VERSION_MAX / 2)

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

/* ---- names and entries ------------------------------------------------ */

rt_name *routes_name_find(const wr_routes *t, const char *s) {
  return routes_hfind(t, &t->names, H_NAME, s, strlen(s));
}

static rt_name *name_new(wr_routes *t, const char *s) {
  size_t n = strlen(s);
  rt_name *nm;
  routes_hgrow(t, &t->names, H_NAME);
  if (!t->names.nb) return NULL;
  nm = wr_mem_calloc(t->mem, 1, sizeof *nm + n + 1);
  if (!nm) return NULL;
  nm->len = (uint8_t)n;
  memcpy(nm->s, s, n + 1);
  routes_hinsert(t, &t->names, H_NAME, nm);
  return nm;
}

static void name_drop_if_empty(wr_routes *t, rt_name *nm) {
  if (nm->entries) return;
  routes_hremove(t, &t->names, H_NAME, nm);
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
void routes_entry_remove(wr_routes *t, rt_entry *e) {
  rt_name *nm = e->name;
  rt_entry **pp;
  for (pp = &nm->entries; *pp != e; pp = &(*pp)->nnext) {
  }
  *pp = e->nnext;
  log_unlink(e->owner, e);
  e->owner->nentries--;
  e->owner->bytes -= routes_entry_cost_of(e);
  t->nentries--;
  routes_acct_put(t, e->acct);
  wr_mem_free(t->mem, e);
  t->free_gen++;
  routes_recompute(t, nm);
  name_drop_if_empty(t, nm);
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
  t->self = routes_owner_new(t, cfg->self, &err);
  if (!t->self) {
    wr_routes_del(t);
    return err;
  }
  t->self->is_self = 1;
  t->self->epoch = cfg->epoch;
  *pt = t;
  return 0;
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
  routes_hfree(t, &t->names);
  routes_hfree(t, &t->owners);
  routes_hfree(t, &t->accts);
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
  nm = routes_name_find(t, name);
  x = entry_of(nm, t->self);
  if (nm) {
    routes_decide(nm, &v);
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
      if (routes_candidate(e) && strcmp(e->acct->s, account) == 0 &&
          (!claimed || e->claimed_at < claimed))
        claimed = e->claimed_at;
  }
  uint64_t version = next_version(t, nm);
  if (!version || t->self_seq >= WR_ROUTE_VERSION_MAX) return WR_ERR_LIMIT;
  /* Our own log keeps within what every peer accepts of one owner. */
  if (!x && routes_over_quota(t, t->self,
                              routes_entry_cost(strlen(name), strlen(account))))
    return WR_ERR_LIMIT;
  /* Every allocation before the first change, so a failure leaves the
   * table as it was. */
  a = routes_acct_get(t, account);
  if (!a) return WR_ERR_NOMEM;
  if (!nm) {
    nm = name_new(t, name);
    if (!nm) {
      routes_acct_put(t, a);
      return WR_ERR_NOMEM;
    }
    fresh_name = 1;
  }
  if (!x) {
    x = wr_mem_calloc(t->mem, 1, sizeof *x);
    if (!x) {
      routes_acct_put(t, a);
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
    t->self->bytes -= routes_entry_cost_of(x);
    routes_acct_put(t, x->acct);
  }
  x->acct = a;
  t->self->bytes += routes_entry_cost_of(x);
  memcpy(x->session, session, WR_ROUTE_SESSION_LEN);
  x->options = options;
  x->state = WR_ROUTE_ACTIVE;
  x->version = version;
  if (version > t->lamport && version <= LAMPORT_SANE_MAX)
    t->lamport = version;
  x->claimed_at = claimed ? claimed : x->version;
  self_rewrite(t, x, now);
  routes_recompute(t, nm);
  return encode_out(x, enc, enclen);
}

int wr_routes_release(wr_routes *t, const char *name, uint8_t *enc,
                      size_t *enclen, wr_tstamp now) {
  rt_name *nm;
  rt_entry *x;
  if (!name || !enc || !enclen) return WR_ERR_INVAL;
  if (t->in_callback) return WR_ERR_INTERNAL;
  nm = routes_name_find(t, name);
  x = entry_of(nm, t->self);
  if (!x || x->state != WR_ROUTE_ACTIVE) return WR_ERR_NOTFOUND;
  uint64_t version = next_version(t, nm);
  if (!version) return WR_ERR_LIMIT;
  x->state = WR_ROUTE_RELEASED;
  x->version = version;
  if (version > t->lamport && version <= LAMPORT_SANE_MAX)
    t->lamport = version;
  self_rewrite(t, x, now);
  routes_gc_want(t, now + t->cfg.released_grace_ms);
  routes_recompute(t, nm);
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
  x = entry_of(routes_name_find(t, e->name), o);
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
        !routes_owner_is_known(t, e->owner)) {
      t->st.unknown_drops++;
      return RT_RATE_DROPPED;
    }
    o = routes_owner_new(t, e->owner, &err);
    if (!o) {
      if (err == WR_ERR_LIMIT) {
        t->st.quota_drops++;
        return 0;
      }
      return err;
    }
    o->epoch = e->epoch;
    routes_owner_first_state(t, o, now);
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
    routes_owner_new_epoch(t, o, e->epoch);
  }
  if (e->seq <= o->wm) goto stale;
  nm = routes_name_find(t, e->name);
  x = entry_of(nm, o);
  if (x && x->seq >= e->seq) {
    /* Replaced already: the seq is accounted for all the same. */
    routes_owner_seen(o, e->seq);
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
  if (!x && routes_over_quota(
                t, o, routes_entry_cost(strlen(e->name), strlen(e->account)))) {
    t->st.quota_drops++;
    return 0;
  }
  a = routes_acct_get(t, e->account);
  if (!a) return WR_ERR_NOMEM;
  if (!nm) {
    nm = name_new(t, e->name);
    if (!nm) {
      routes_acct_put(t, a);
      return WR_ERR_NOMEM;
    }
    fresh_name = 1;
  }
  if (!x) {
    x = wr_mem_calloc(t->mem, 1, sizeof *x);
    if (!x) {
      routes_acct_put(t, a);
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
    o->bytes -= routes_entry_cost_of(x);
    routes_acct_put(t, x->acct);
  }
  x->acct = a;
  o->bytes += routes_entry_cost_of(x);
  memcpy(x->session, e->session, WR_ROUTE_SESSION_LEN);
  x->seq = e->seq;
  x->version = e->version;
  x->claimed_at = e->claimed_at;
  x->state = (uint8_t)e->state;
  x->options = e->options;
  x->at = now;
  x->tag = 0; /* a new write: no full log has confirmed it */
  log_insert(o, x);
  routes_owner_seen(o, e->seq);
  if (x->state == WR_ROUTE_RELEASED)
    routes_gc_want(t, now + t->cfg.released_grace_ms);
  if (o->dead) routes_gc_want(t, o->dead_since + t->cfg.dead_grace_ms);
  t->st.applied++;
  routes_recompute(t, nm);
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
      routes_entry_remove(t, e);
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
    o = routes_owner_new(t, m->owner, &err);
    if (!o) {
      if (err == WR_ERR_LIMIT) {
        t->st.quota_drops++;
        return 0;
      }
      return err;
    }
    o->epoch = m->epoch;
    routes_owner_first_state(t, o, now);
  }
  if (m->epoch < o->epoch || (o->collected && m->epoch == o->epoch))
    return 0;
  if (m->epoch > o->epoch) routes_owner_new_epoch(t, o, m->epoch);
  if (m->collected) {
    routes_owner_collect(t, o, now);
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
    routes_entry_remove(t, e);
  }
}

rt_entry *routes_entry_find(const wr_routes *t, const rt_owner *o,
                            const char *name) {
  return entry_of(routes_name_find(t, name), o);
}

rt_owner *routes_owner_at(wr_routes *t, const char *id, uint64_t epoch) {
  rt_owner *o = routes_owner_find(t, id);
  int err = 0;
  if (!o) {
    o = routes_owner_new(t, id, &err);
    if (!o) return NULL;
    o->epoch = epoch;
  }
  if (o->is_self || epoch < o->epoch || (o->collected && epoch == o->epoch))
    return NULL;
  if (epoch > o->epoch) routes_owner_new_epoch(t, o, epoch);
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
  routes_owner_new_epoch(t, o, epoch);
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
    o = routes_owner_new(t, owner, &err);
    if (!o) return;
  }
  if (o->unknown) { /* membership knows it now, dead or alive */
    o->unknown = 0;
    routes_unknown_release(t, o);
  }
  if (o->dead == dead) return;
  o->dead = (uint8_t)dead;
  if (dead) {
    o->dead_since = now;
    routes_gc_want(t, now + t->cfg.dead_grace_ms);
  }
  for (e = o->head; e; e = ne) {
    ne = e->lnext;
    routes_recompute(t, e->name);
  }
}

