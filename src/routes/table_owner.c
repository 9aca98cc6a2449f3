/*
 * The ownership table's owners (routes_int.h): the owner records (created,
 * evicted at max_owners, freed), their quotas (entries, bytes, the ingest
 * token bucket), their seq watermarks, and a new epoch or first state.
 */
#include <string.h>

#include "routes_int.h"
#include "warren/err.h"

/* ---- owners ----------------------------------------------------------- */

rt_owner *routes_owner_find(const wr_routes *t, const char *id) {
  return routes_hfind(t, &t->owners, H_OWNER, id, strlen(id));
}

/* An unknown owner stops counting against max_unknown_owners once it
 * holds no log (collected, freed) or membership reports it. */
void routes_unknown_release(wr_routes *t, rt_owner *o) {
  if (!o->unknown_held) return;
  o->unknown_held = 0;
  t->nunknown--;
}

void routes_owner_free(wr_routes *t, rt_owner *o) {
  routes_hremove(t, &t->owners, H_OWNER, o);
  if (o->collected) t->ntombs--;
  routes_unknown_release(t, o);
  wr_mem_free(t->mem, o);
}

/* A new owner record.  At max_owners the oldest owner tombstone makes
 * room (the brief's "oldest dropped first"): forgetting it lets a stale
 * peer bring that dead log back, but only one that outlived every
 * younger tombstone.  Live owners are never evicted.  Returns NULL with
 * *err = WR_ERR_LIMIT or WR_ERR_NOMEM. */
rt_owner *routes_owner_new(wr_routes *t, const char *id, int *err) {
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
    routes_owner_free(t, old);
  }
  routes_hgrow(t, &t->owners, H_OWNER);
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
  routes_hinsert(t, &t->owners, H_OWNER, o);
  return o;
}

/* What one entry pins in the table, charged to its owner's byte quota:
 * the entry, a name node and both strings, as if neither name nor
 * account were shared with another entry (they may be, but an owner's
 * quota must not depend on what other owners hold). */
size_t routes_entry_cost(size_t namelen, size_t acctlen) {
  return sizeof(rt_entry) + sizeof(rt_name) + sizeof(rt_acct) + namelen +
         acctlen + 2;
}

size_t routes_entry_cost_of(const rt_entry *x) {
  return routes_entry_cost(x->name->len, x->acct->len);
}

/* Would a new entry of |o| for a name it holds nothing of go over a
 * quota (its entries, its bytes, the table)? */
int routes_over_quota(const wr_routes *t, const rt_owner *o, size_t cost) {
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
void routes_owner_seen(rt_owner *o, uint64_t s) {
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

void routes_owner_drop_log(wr_routes *t, rt_owner *o) {
  while (o->head) routes_entry_remove(t, o->head);
}

/* An entry or mark showed a newer epoch of |o|: the owner restarted (or
 * republished), so everything of the older epoch is gone. */
void routes_owner_new_epoch(wr_routes *t, rt_owner *o, uint64_t epoch) {
  routes_owner_drop_log(t, o);
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

/* An owner first heard of through an entry or a mark: live unless the
 * wiring says membership does not know it (owner_known).  An entry from
 * an owner nobody knows is most likely the log of one that died and was
 * reaped from membership while a peer still held it: it must not route,
 * and it is collected like any dead owner's log.  If membership reports
 * the owner later, wr_routes_owner_state revives it. */
int routes_owner_is_known(wr_routes *t, const char *id) {
  return !t->cb.owner_known || t->cb.owner_known(t, id, t->user_data);
}

void routes_owner_first_state(wr_routes *t, rt_owner *o, wr_tstamp now) {
  if (routes_owner_is_known(t, o->id)) return;
  o->unknown = 1;
  o->unknown_held = 1;
  t->nunknown++;
  o->dead = 1;
  o->dead_since = now;
  routes_gc_want(t, now + t->cfg.dead_grace_ms);
}

