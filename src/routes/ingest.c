/*
 * The bounded ingest of gossiped entries (routes.h, wr_routes_ingest_*).
 *
 * Why two steps.  swim hands every USER update to the wiring from inside
 * its receive path, and one member with the cluster secret can send
 * thousands of valid, well-sealed entries a second (docs/CHAOS.md, the
 * poison scenario).  Applying each at once made the loop's work follow
 * the flood.  So:
 *
 *   push  (in swim's callback)  decode and validate; drop old news, our
 *         own entries and entries of an owner over its ingest rate
 *         (one token of its bucket is taken here, so the queue holds
 *         only what the rate admitted); copy the rest into a ring of
 *         ingest_max slots, or drop it when the ring is full.
 *   run   (once per loop turn, by the wiring)  apply at most |max| of the
 *         oldest, like wr_routes_apply, and hand news to |relay|.
 *
 * Nothing pushed is lost for good: a dropped entry is not counted as
 * received (our watermark for its owner stays below it), so the next
 * anti-entropy sync offers it again.  Dropped entries are also not news,
 * so the wiring does not gossip them on: a node never amplifies what it
 * refused.
 *
 * Slots hold the decoded entry (applied without decoding again) and its
 * encoding (relayed byte for byte, so the relay stays one payload per
 * (key, version) as swim requires).  A slot is ~760 bytes, so the
 * default ring of 1,024 is 760 KiB, allocated at the first push.
 */
#include <string.h>

#include "routes_int.h"
#include "warren/err.h"

int wr_routes_ingest_push(wr_routes *t, const uint8_t *enc, size_t len,
                          wr_tstamp now) {
  wr_route_entry e;
  rt_owner *o;
  rt_ingest *slot;
  int rv;
  if (!enc) return WR_ERR_INVAL;
  rv = routes_decode_entry_mem(enc, len, &e, t->mem);
  if (rv == WR_ERR_PROTO) t->st.rejected++;
  if (rv != 0) return rv;
  if (!routes_entry_is_news(t, &e)) {
    t->st.stale++;
    return 0;
  }
  /* An owner we have no record of yet has a full bucket: its first
   * entries are admitted, and its record (with the bucket) is made when
   * the first one is applied. */
  o = routes_owner_find(t, e.owner);
  if (o && !routes_owner_take(t, o, now)) return 0; /* rate_drops */
  if (t->iq_n == t->cfg.ingest_max) {
    t->st.ingest_drops++;
    return 0;
  }
  if (!t->iq) {
    t->iq = wr_mem_calloc(t->mem, t->cfg.ingest_max, sizeof *t->iq);
    if (!t->iq) return WR_ERR_NOMEM;
  }
  slot = &t->iq[(t->iq_head + t->iq_n) % t->cfg.ingest_max];
  slot->e = e;
  slot->charged = o != NULL;
  slot->len = (uint16_t)len;
  memcpy(slot->enc, enc, len);
  t->iq_n++;
  return 1;
}

wr_ssize wr_routes_ingest_run(wr_routes *t, size_t max,
                              void (*relay)(const wr_route_entry *e,
                                            const uint8_t *enc, size_t len,
                                            void *ud),
                              void *ud, wr_tstamp now) {
  size_t done = 0;
  if (t->in_callback) return WR_ERR_INTERNAL;
  while (done < max && t->iq_n) {
    rt_ingest *slot = &t->iq[t->iq_head];
    int rv;
    t->iq_head = (t->iq_head + 1) % t->cfg.ingest_max;
    t->iq_n--;
    done++;
    /* Charged at push, unless its owner had no record then: then the
     * bucket the record now has pays (a flood from a new owner is held
     * to the rate from its first burst on). */
    rv = routes_apply_entry(t, &slot->e, !slot->charged, now);
    if (rv < 0) return rv;
    if (rv == 1 && relay) relay(&slot->e, slot->enc, slot->len, ud);
  }
  /* Empty: start again at the first slot, so a quiet node keeps only the
   * few pages of the ring that one turn's updates use resident, not all
   * ~760 KiB a wrapping head would touch over time. */
  if (!t->iq_n) t->iq_head = 0;
  return (wr_ssize)done;
}

size_t wr_routes_ingest_pending(const wr_routes *t) { return t->iq_n; }
