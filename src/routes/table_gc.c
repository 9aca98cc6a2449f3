/*
 * The ownership table's garbage collection (routes_int.h): the one timer
 * of the core (deadline/tick), batched scans, and what they collect:
 * released entries past their grace and at or below their owner's
 * watermark, dead owners' logs (an owner tombstone remains), and owner
 * tombstones past owner_tombstone_ms.
 */
#include "routes_int.h"
#include "warren/err.h"

/* GC scans batch: a scan walks every log (O(entries), ~1 ms per 100,000),
 * so with steady churn it must not run once per tombstone.  A scan runs
 * at most every max(1 s, released_grace/4), which collects a tombstone
 * at most 25 % later than its grace; the grace is a lower bound. */
static uint64_t gc_step(const wr_routes *t) {
  return WR_MAX((uint64_t)1000, t->cfg.released_grace_ms / 4);
}

void routes_gc_want(wr_routes *t, wr_tstamp when) {
  wr_tstamp earliest = t->last_gc + gc_step(t);
  if (when < earliest) when = earliest;
  if (when < t->next_gc) t->next_gc = when;
}

void routes_owner_collect(wr_routes *t, rt_owner *o, wr_tstamp now) {
  routes_owner_drop_log(t, o);
  routes_unknown_release(t, o);
  if (!o->collected) {
    o->collected = 1;
    t->ntombs++;
  }
  o->tomb_at = now;
  o->nabove = 0;
  routes_gc_want(t, now + t->cfg.owner_tombstone_ms);
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
          routes_owner_free(t, o);
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
          routes_owner_collect(t, o, now);
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
          routes_entry_remove(t, e);
        } else if (e->seq > o->wm) {
          min_into(&next, now + gc_step(t)); /* wait for the watermark */
        } else {
          min_into(&next, e->at + t->cfg.released_grace_ms);
        }
      }
    }
  }
  if (next != WR_TSTAMP_NONE) routes_gc_want(t, next);
}

