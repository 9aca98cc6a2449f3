/*
 * Anti-entropy sessions: scuttlebutt by owner (docs/ROUTES.md).
 *
 *   digest_next   our marks (owner, epoch, watermark, collected), one per
 *                 owner we know, snapshotted at the first call
 *   digest_in     the peer's marks, kept (sorted once) for delta_next
 *   delta_next    per owner the peer lacks something of, in turn:
 *                   [full mark]   when the peer's watermark is below a
 *                                 tombstone we collected (see below)
 *                   entries       seq > the peer's watermark, ascending
 *                   mark          our watermark for that owner
 *                 or a single collected mark for an owner tombstone the
 *                 peer does not have
 *   delta_in      the peer's delta: entries applied like gossip; a mark
 *                 after them moves our watermark up to the peer's
 *
 * Why the mark may move our watermark: the peer sent every entry it held
 * above our watermark, and its watermark says its copy is at least as new
 * as the owner's log at that seq, so after applying them ours is too.
 *
 * Why the full mark: a tombstone is collected once it is at or below the
 * collector's watermark, but a peer that lagged longer than the grace
 * may still hold the older ACTIVE entry the tombstone replaced; sending
 * "the entries above its watermark" would skip the collected tombstone
 * and our mark would then declare the stale entry old news forever.  So
 * when the peer's watermark is below the highest seq we collected, we
 * send the whole log behind a full mark, and the peer drops every entry
 * of that (owner, epoch) at or below our watermark that the log did not
 * confirm: each one was replaced or collected here.  The peer then takes
 * our floor over, since its copy has the same holes.  How the receiver
 * tells confirmed entries from the rest is below, at delta_in.
 *
 * The session keeps names, and no pointer into the table it trusts, so
 * the table may change (gossip, ticks) between calls: an owner whose
 * epoch changed meanwhile is skipped; a tombstone collected meanwhile
 * makes the closing mark of a plain delta fall back to the peer's own
 * watermark (the next session sends the full log), and the closing mark
 * of a full log carry the floor as it is then.
 */
#include <stdlib.h>
#include <string.h>

#include "routes_int.h"
#include "warren/err.h"

typedef struct item {
  char owner[WR_ROUTE_OWNER_MAX + 1];
  uint64_t epoch, from, snap_w, cursor, floor;
  uint8_t full, collected, stage; /* stage: 0 full mark, 1 entries, 2 mark */
} item;

/* An entry pointer kept between calls as a position hint, trusted only
 * while no entry was freed meanwhile (wr_routes.free_gen). */
typedef struct hint {
  rt_entry *e;
  uint64_t gen;
} hint;

static rt_entry *hint_get(const hint *h, const wr_routes *t,
                          const rt_owner *o) {
  return h->e && h->gen == t->free_gen && h->e->owner == o ? h->e : NULL;
}

struct wr_routes_sync {
  wr_routes *t;
  rt_mark *mine;
  size_t nmine, imine;
  int mine_built;
  rt_mark *peer;
  size_t npeer, cappeer;
  item *plan;
  size_t nplan, iplan;
  int plan_built;
  hint out; /* the entry delta_next sent last */
  /* Receiving a full log: RX_FULL after the peer's full mark, RX_BROKEN
   * when it could not be followed (then its closing mark is ignored: it
   * would bury entries the log did not get to confirm). */
  enum { RX_NONE, RX_FULL, RX_BROKEN } rx;
  char rowner[WR_ROUTE_OWNER_MAX + 1];
  uint64_t repoch, rsnap, rprev, rfloor;
  uint16_t rtag;
  /* The lowest seq of the owner being received that was dropped over
   * its ingest rate (dropped = 1), so that the owner's closing mark
   * moves our watermark only up to just below it (see delta_in). */
  char downer[WR_ROUTE_OWNER_MAX + 1];
  uint64_t depoch, dseq;
  int dropped;
};

int wr_routes_sync_new(wr_routes *t, wr_routes_sync **ps, wr_tstamp now) {
  wr_routes_sync *s;
  (void)now;
  *ps = NULL;
  s = wr_mem_calloc(t->mem, 1, sizeof *s);
  if (!s) return WR_ERR_NOMEM;
  s->t = t;
  *ps = s;
  return 0;
}

void wr_routes_sync_del(wr_routes_sync *s) {
  if (!s) return;
  wr_mem_free(s->t->mem, s->mine);
  wr_mem_free(s->t->mem, s->peer);
  wr_mem_free(s->t->mem, s->plan);
  wr_mem_free(s->t->mem, s);
}

static int mark_cmp(const void *a, const void *b) {
  return strcmp(((const rt_mark *)a)->owner, ((const rt_mark *)b)->owner);
}

static void mark_of(const wr_routes *t, const rt_owner *o, rt_mark *m) {
  memset(m, 0, sizeof *m);
  memcpy(m->owner, o->id, o->len + 1u);
  m->epoch = o->epoch;
  m->watermark = o->is_self ? t->self_seq : o->wm;
  m->collected = o->collected;
}

wr_ssize wr_routes_sync_digest_next(wr_routes_sync *s, uint8_t *dst,
                                    size_t cap) {
  wr_routes *t = s->t;
  wr_ssize n;
  if (cap < WR_ROUTE_ENCODED_MAX) return WR_ERR_NOBUF;
  if (!s->mine_built) {
    size_t i, k = 0;
    s->mine = wr_mem_calloc(t->mem, t->owners.n ? t->owners.n : 1,
                            sizeof *s->mine);
    if (!s->mine) return WR_ERR_NOMEM;
    for (i = 0; i < t->owners.nb; i++) {
      const rt_owner *o;
      for (o = t->owners.b[i]; o; o = o->hnext)
        if (o->epoch) mark_of(t, o, &s->mine[k++]);
    }
    s->nmine = k;
    s->mine_built = 1;
  }
  if (s->imine >= s->nmine) return 0;
  n = routes_encode_mark(&s->mine[s->imine], dst, cap);
  if (n >= 0) s->imine++;
  return n;
}

int wr_routes_sync_digest_in(wr_routes_sync *s, const uint8_t *rec,
                             size_t len) {
  wr_routes *t = s->t;
  wr_route_entry e;
  rt_mark m;
  int kind, rv = routes_decode_record(rec, len, &kind, &e, &m, t->mem);
  if (rv == 0 && kind != 1) rv = WR_ERR_PROTO;
  if (rv == WR_ERR_PROTO) t->st.rejected++;
  if (rv != 0) return rv;
  if (s->plan_built) return WR_ERR_INVAL; /* digests come before deltas */
  /* A peer cannot know more owners than a table may hold (twice, for
   * the tombstones it may hold that we evicted). */
  if (s->npeer >= 2 * t->cfg.max_owners) {
    t->st.rejected++;
    return WR_ERR_PROTO;
  }
  if (s->npeer == s->cappeer) {
    size_t nc = s->cappeer ? s->cappeer * 2 : 16;
    rt_mark *p = wr_mem_realloc(t->mem, s->peer, nc * sizeof *p);
    if (!p) return WR_ERR_NOMEM;
    s->peer = p;
    s->cappeer = nc;
  }
  s->peer[s->npeer++] = m;
  return 0;
}

static const rt_mark *peer_mark(const wr_routes_sync *s, const char *id) {
  rt_mark key;
  size_t n = strlen(id);
  if (!s->npeer) return NULL;
  memcpy(key.owner, id, n + 1);
  return bsearch(&key, s->peer, s->npeer, sizeof key, mark_cmp);
}

/* Decides, per owner we hold, what the peer lacks (see the top). */
static int build_plan(wr_routes_sync *s) {
  wr_routes *t = s->t;
  size_t i, k = 0;
  if (s->npeer) qsort(s->peer, s->npeer, sizeof *s->peer, mark_cmp);
  s->plan = wr_mem_calloc(t->mem, t->owners.n ? t->owners.n : 1,
                          sizeof *s->plan);
  if (!s->plan) return WR_ERR_NOMEM;
  for (i = 0; i < t->owners.nb; i++) {
    const rt_owner *o;
    for (o = t->owners.b[i]; o; o = o->hnext) {
      const rt_mark *pm = peer_mark(s, o->id);
      uint64_t pe = pm ? pm->epoch : 0, pw = pm ? pm->watermark : 0;
      int pc = pm && pm->collected;
      uint64_t wm = o->is_self ? t->self_seq : o->wm, from;
      item *it = &s->plan[k];
      if (!o->epoch) continue;
      if (o->collected) {
        if (pe < o->epoch || (pe == o->epoch && !pc)) {
          memset(it, 0, sizeof *it);
          memcpy(it->owner, o->id, o->len + 1u);
          it->epoch = o->epoch;
          it->collected = 1;
          it->stage = 2;
          k++;
        }
        continue;
      }
      if (pe > o->epoch || (pe == o->epoch && pc)) continue; /* it's newer */
      from = pe == o->epoch ? pw : 0;
      if (pe == o->epoch && wm <= pw && (!o->tail || o->tail->seq <= pw))
        continue; /* nothing it lacks */
      memset(it, 0, sizeof *it);
      memcpy(it->owner, o->id, o->len + 1u);
      it->epoch = o->epoch;
      it->from = from;
      it->snap_w = wm;
      it->full = from < o->gc_floor;
      it->floor = o->gc_floor;
      /* A full log starts from the first entry. */
      it->cursor = it->full ? 0 : from;
      it->stage = it->full ? 0 : 1;
      k++;
    }
  }
  s->nplan = k;
  s->plan_built = 1;
  return 0;
}

static wr_ssize emit(wr_routes_sync *s, wr_ssize n) {
  if (n > 0) {
    s->t->st.sync_records_out++;
    s->t->st.sync_bytes_out += (uint64_t)n;
  }
  return n;
}

wr_ssize wr_routes_sync_delta_next(wr_routes_sync *s, uint8_t *dst,
                                   size_t cap) {
  wr_routes *t = s->t;
  int rv;
  if (cap < WR_ROUTE_ENCODED_MAX) return WR_ERR_NOBUF;
  if (!s->plan_built && (rv = build_plan(s)) != 0) return rv;
  while (s->iplan < s->nplan) {
    item *it = &s->plan[s->iplan];
    const rt_owner *o = routes_owner_find(t, it->owner);
    rt_mark m;
    if (!o || o->epoch != it->epoch || o->collected != it->collected) {
      s->iplan++; /* changed under us: the next session will see it */
      continue;
    }
    memset(&m, 0, sizeof m);
    memcpy(m.owner, it->owner, sizeof m.owner);
    m.epoch = it->epoch;
    if (it->stage == 0) {
      m.watermark = it->snap_w;
      m.floor = it->floor;
      m.full = 1;
      it->stage = 1;
      return emit(s, routes_encode_mark(&m, dst, cap));
    }
    if (it->stage == 1) {
      rt_entry *e = hint_get(&s->out, t, o);
      if (e && e->seq <= it->cursor) {
        /* Usually the one sent last: its successor is next. */
        while (e && e->seq <= it->cursor) e = e->lnext;
      } else {
        /* Walk back to the first entry above the cursor: O(entries to
         * send), which is the cost the session is there to pay. */
        e = o->tail;
        while (e && e->lprev && e->lprev->seq > it->cursor) e = e->lprev;
      }
      if (e && e->seq > it->cursor) {
        wr_route_entry x;
        routes_entry_export(e, &x);
        it->cursor = e->seq;
        s->out.e = e;
        s->out.gen = t->free_gen;
        return emit(s, routes_encode_entry_record(&x, dst, cap));
      }
      it->stage = 2;
    }
    s->iplan++;
    if (it->collected) {
      m.collected = 1;
    } else {
      m.watermark = it->snap_w;
      /* Tombstones above the peer's watermark were collected during the
       * session, so perhaps not sent.  The floor is only the highest of
       * them, not the lowest, so the mark cannot say anything above the
       * peer's own watermark: it keeps what it received, and the next
       * session sends the full log. */
      if (!it->full && o->gc_floor > it->from) m.watermark = it->from;
      /* Closing a full log: tombstones collected during the session are
       * holes the peer's copy now has as well, so it needs the floor as
       * it is now, not as the full mark gave it. */
      if (it->full) m.floor = o->gc_floor;
    }
    return emit(s, routes_encode_mark(&m, dst, cap));
  }
  return 0;
}

/*
 * Receiving a full log.  The full mark opens it: the owner is brought to
 * that epoch and given a fresh tag.  Each entry of the log, once applied,
 * tags our entry for its name (the same one, or a newer one that
 * replaced it).  The closing mark drops every entry of the owner at or
 * below the sender's watermark that carries no tag: the sender's log had
 * neither it nor anything newer for its name, so it was replaced or
 * collected there.  This holds whatever arrived by gossip meanwhile (an
 * old entry landing behind the log's position is untagged and goes).  If
 * another full log of the owner began meanwhile, the tags are no longer
 * ours: this one's closing mark is ignored and the later one decides.
 */
static void rx_broken(wr_routes_sync *s) {
  if (s->rx == RX_FULL) s->rx = RX_BROKEN;
}

static int rx_is(const wr_routes_sync *s, const char *owner, uint64_t epoch) {
  return s->rx != RX_NONE && strcmp(owner, s->rowner) == 0 &&
         epoch == s->repoch;
}

int wr_routes_sync_delta_in(wr_routes_sync *s, const uint8_t *rec,
                            size_t len, wr_tstamp now) {
  wr_routes *t = s->t;
  wr_route_entry e;
  rt_mark m;
  rt_owner *o;
  int kind, rv = routes_decode_record(rec, len, &kind, &e, &m, t->mem);
  if (rv == WR_ERR_PROTO) t->st.rejected++;
  if (rv != 0) return rv;
  if (kind == 2) {
    if (s->rx != RX_NONE && !rx_is(s, e.owner, e.epoch)) rx_broken(s);
    if (s->rx == RX_FULL && e.seq <= s->rprev) rx_broken(s); /* not ascending */
    rv = routes_apply_entry(t, &e, 1, now);
    if (rv < 0) return rv;
    if (rv == RT_RATE_DROPPED) {
      /* The owner is over its ingest rate here: the entry waits for a
       * later session, which sends it again only if our watermark stays
       * below it. */
      if (!s->dropped || strcmp(s->downer, e.owner) != 0 ||
          s->depoch != e.epoch) {
        memcpy(s->downer, e.owner, sizeof s->downer);
        s->depoch = e.epoch;
        s->dseq = e.seq;
        s->dropped = 1;
      } else if (e.seq < s->dseq) {
        s->dseq = e.seq;
      }
    }
    if (s->rx == RX_FULL) {
      rt_entry *x;
      s->rprev = e.seq;
      o = routes_owner_find(t, e.owner);
      if (!o || o->epoch != s->repoch || o->full_tag != s->rtag) {
        rx_broken(s);
      } else if ((x = routes_entry_find(t, o, e.name)) != NULL &&
                 x->seq >= e.seq) {
        x->tag = s->rtag;
      }
    }
    return 0;
  }
  /* A mark of the owner some of whose entries were dropped over its
   * rate in this session: it may vouch for our copy only below the first
   * of them (the entries above it we hold are kept; the watermark just
   * does not pass the hole). */
  if (s->dropped && strcmp(s->downer, m.owner) == 0 && s->depoch == m.epoch &&
      !m.collected) {
    if (!m.full) s->dropped = 0;
    if (m.watermark >= s->dseq) m.watermark = s->dseq - 1;
  }
  if (m.full) {
    rt_entry *x;
    rx_broken(s); /* a full log that never closed */
    memcpy(s->rowner, m.owner, sizeof s->rowner);
    s->repoch = m.epoch;
    s->rsnap = m.watermark;
    s->rfloor = m.floor;
    s->rprev = 0;
    s->rx = RX_BROKEN;
    /* Our own log from a peer (an earlier run of ours): nothing of it is
     * applied, but its closing mark must reach routes_apply_mark, which
     * moves us to a new epoch if that log is ahead of ours. */
    if (strcmp(m.owner, t->cfg.self) == 0) s->rx = RX_NONE;
    if (m.collected || s->rx == RX_NONE) return 0;
    o = routes_owner_at(t, m.owner, m.epoch);
    if (!o) return 0; /* stale, over quota or no memory: not followed */
    if (++t->full_tag_next == 0) t->full_tag_next = 1;
    s->rtag = o->full_tag = t->full_tag_next;
    /* No tag from an earlier receive may pass for ours (the counter
     * wraps); this walk is O(log), like the full log itself. */
    for (x = o->head; x; x = x->lnext) x->tag = 0;
    s->rx = RX_FULL;
    return 0;
  }
  if (rx_is(s, m.owner, m.epoch) && !m.collected) {
    int full = s->rx == RX_FULL;
    s->rx = RX_NONE;
    o = routes_owner_find(t, m.owner);
    if (!full || !o || o->is_self || o->collected || o->epoch != s->repoch ||
        o->full_tag != s->rtag)
      return 0; /* see above: not ours to close */
    o->full_tag = 0;
    s->rfloor = WR_MAX(s->rfloor, m.floor);
    routes_drop_untagged(t, o, s->rsnap, s->rtag);
    rv = routes_apply_mark(t, &m, now);
    if (rv < 0) return rv;
    /* Our copy now has the sender's holes: take its floor over. */
    if (o->epoch == s->repoch && !o->collected && s->rfloor > o->gc_floor)
      o->gc_floor = WR_MIN(s->rfloor, o->wm);
    return 0;
  }
  if (s->rx != RX_NONE) s->rx = RX_NONE; /* another owner's mark */
  rv = routes_apply_mark(t, &m, now);
  return rv < 0 ? rv : 0;
}
