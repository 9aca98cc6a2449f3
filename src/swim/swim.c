/*
 * SWIM with Lifeguard (Das et al. 2002; Dadgar et al. 2018), sans-IO.
 *
 * One probe is in flight at a time: PING the next member in a shuffled
 * round-robin order; no ACK within the probe timeout -> PING_REQ through
 * k random members (they answer NACK if the target stays silent, which
 * tells us our own network is fine); no ACK by the end of the round ->
 * SUSPECT.  A suspicion becomes DEAD when its timer runs out; the timer
 * starts long and shrinks with each independent confirmation (Lifeguard
 * dynamic suspicion).  Our own timeouts stretch with the awareness score,
 * which rises when we miss nacks or must refute and falls with each
 * successful probe (Lifeguard local health).  Every accepted change is
 * queued for piggybacking on all packets, least-sent first.
 *
 * Outgoing packets are queued as small descriptors (swim_out) and only
 * encoded in wr_swim_send, so piggybacked updates are as fresh as they
 * can be when the adapter actually has room to send.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include <sodium.h>

#include "swim_int.h"
#include "warren/err.h"

/* ---- small helpers ----------------------------------------------------- */





static uint32_t retransmit_limit(const wr_swim *sw) {
  double l = ceil(log10((double)swim_fleet_n(sw) + 1.0));
  uint32_t lim = sw->cfg.retransmit_mult * (uint32_t)(l < 1 ? 1 : l);
  return lim ? lim : 1;
}


/* Doubles a full ring of |n| elements of |elem| bytes (the outbox, the
 * grave FIFO), unrolling it so that it starts at index 0.  0 or
 * WR_ERR_NOMEM (the ring is then unchanged). */
static int ring_grow(const wr_mem *mem, void **buf, size_t elem, size_t *head,
                     size_t n, size_t *cap) {
  size_t ncap = *cap ? *cap * 2 : 4;
  uint8_t *v = wr_mem_malloc(mem, ncap * elem);
  if (!v) return WR_ERR_NOMEM;
  for (size_t i = 0; i < n; i++)
    memcpy(v + i * elem, (uint8_t *)*buf + ((*head + i) % *cap) * elem, elem);
  wr_mem_free(mem, *buf);
  *buf = v;
  *cap = ncap;
  *head = 0;
  return 0;
}

swim_out *swim_out_push(wr_swim *sw, uint8_t type, const wr_addr *to) {
  if (sw->out_n == sw->out_cap) {
    if (sw->out_cap == SWIM_OUTBOX_MAX) {
      sw->st.tx_dropped++;
      return NULL;
    }
    if (ring_grow(sw->mem, (void **)&sw->out, sizeof *sw->out, &sw->out_head,
                  sw->out_n, &sw->out_cap) != 0) {
      sw->st.tx_dropped++;
      return NULL;
    }
  }
  swim_out *o = &sw->out[(sw->out_head + sw->out_n++) % sw->out_cap];
  memset(o, 0, sizeof *o);
  o->type = type;
  o->to = *to;
  return o;
}

static void member_info_at(const wr_swim *sw, size_t i,
                           wr_swim_member_info *out) {
  swim_members_info(&sw->mt, i, out);
}

static void notify(wr_swim *sw, size_t i) {
  if (!sw->cb.member_changed) return;
  wr_swim_member_info info;
  member_info_at(sw, i, &info);
  sw->cb.member_changed(sw, &info, sw->user_data);
}

/* Our own ALIVE or LEFT. */
static void self_update(const wr_swim *sw, wr_swim_update *u) {
  memset(u, 0, offsetof(wr_swim_update, payload));
  u->kind = sw->leaving ? WR_SWIM_UPD_LEFT : WR_SWIM_UPD_ALIVE;
  snprintf(u->id, sizeof u->id, "%s", sw->cfg.id);
  u->incarnation = sw->inc;
  u->gossip = sw->cfg.gossip;
  u->data = sw->cfg.data.family ? sw->cfg.data : sw->cfg.gossip;
  snprintf(u->region, sizeof u->region, "%s", sw->cfg.region);
  snprintf(u->tags, sizeof u->tags, "%s", sw->cfg.tags);
  u->payload = NULL;
  u->payload_len = 0;
}

/* Our table's entry for member |i| as an update; SUSPECT and DEAD name
 * |from| as the accuser (us when we restate it). */
void swim_member_update(const wr_swim *sw, size_t i, const char *from,
                        wr_swim_update *u) {
  wr_swim_member_info m;
  member_info_at(sw, i, &m);
  memset(u, 0, offsetof(wr_swim_update, payload));
  static const uint8_t kinds[] = {
      [WR_SWIM_ALIVE] = WR_SWIM_UPD_ALIVE, [WR_SWIM_SUSPECT] = WR_SWIM_UPD_SUSPECT,
      [WR_SWIM_DEAD] = WR_SWIM_UPD_DEAD, [WR_SWIM_LEFT] = WR_SWIM_UPD_LEFT};
  u->kind = kinds[m.state];
  snprintf(u->id, sizeof u->id, "%s", m.id);
  u->incarnation = m.incarnation;
  u->gossip = m.gossip;
  u->data = m.data;
  snprintf(u->region, sizeof u->region, "%s", m.region);
  snprintf(u->tags, sizeof u->tags, "%s", m.tags);
  snprintf(u->from, sizeof u->from, "%s", from ? from : sw->cfg.id);
  u->payload = NULL;
  u->payload_len = 0;
}

/* The queue an update waits in: USER updates have their own. */
static swim_bqueue *queue_of(wr_swim *sw, const wr_swim_update *u) {
  return u->kind == WR_SWIM_UPD_USER ? &sw->uq : &sw->bq;
}

static void broadcast_always(wr_swim *sw, const wr_swim_update *u) {
  /* A push that fails (no memory for the entry) loses one piggyback, not
   * correctness: anti-entropy repairs it.  It is counted with the
   * evictions of its queue (bcast_evicted_member/_user in the stats,
   * warren_swim_bcast_evicted_total in /metrics): either way an update
   * left before its retransmit limit. */
  swim_bqueue *q = queue_of(sw, u);
  if (swim_bqueue_push(q, u) != 0) q->dropped++;
}

static void broadcast(wr_swim *sw, const wr_swim_update *u) {
  if (!sw->merging) broadcast_always(sw, u);
}

/* Pushes what we just originated to a few members now (not waiting for
 * the next gossip tick). */
static void gossip_to(wr_swim *sw, unsigned count, wr_tstamp now);
void swim_push_soon(wr_swim *sw, wr_tstamp now) {
  gossip_to(sw, sw->cfg.push_fanout, now);
}

/* The next incarnation above |at_least|.  It saturates: wrapping to 0
 * would make every stale entry about us newer than our own (only a
 * member with the cluster key can push us there, but it must not be
 * able to make us unrefutable forever; at the top we stay at the top). */
static uint32_t next_inc(uint32_t at_least) {
  return at_least == UINT32_MAX ? UINT32_MAX : at_least + 1;
}

static void refute(wr_swim *sw, uint32_t accused_inc, wr_tstamp now) {
  sw->inc = next_inc(accused_inc >= sw->inc ? accused_inc : sw->inc);
  sw->st.refutations++;
  swim_awareness_add(sw, 1);
  wr_swim_update u;
  self_update(sw, &u);
  broadcast_always(sw, &u);
  swim_push_soon(sw, now);
}

/* Someone says we are suspect, dead or left.  At our incarnation or above
 * we must outbid it; below it, it is a stale view of us that someone still
 * holds (our earlier refutation may have been lost), so we re-announce
 * what we are without bumping. */
static void accused(wr_swim *sw, uint32_t inc, wr_tstamp now) {
  if (sw->leaving) return;
  if (inc >= sw->inc) {
    refute(sw, inc, now);
    return;
  }
  wr_swim_update u;
  self_update(sw, &u);
  broadcast_always(sw, &u);
}

/* ---- state transitions ----------------------------------------------------- */

static void grave_push(wr_swim *sw, const char *id, wr_tstamp now) {
  if (sw->grave_n == sw->grave_cap) {
    if (ring_grow(sw->mem, (void **)&sw->graves, sizeof *sw->graves,
                  &sw->grave_head, sw->grave_n, &sw->grave_cap) != 0)
      return; /* never reaped: costs memory, not correctness */
  }
  swim_grave *g = &sw->graves[(sw->grave_head + sw->grave_n++) % sw->grave_cap];
  snprintf(g->id, sizeof g->id, "%s", id);
  g->at = now;
}

static void set_state(wr_swim *sw, size_t i, wr_swim_state st, uint32_t inc,
                      wr_tstamp now) {
  swim_member *m = &sw->mt.v[i];
  if (m->state != st) m->state_since = now;
  swim_members_set_state(&sw->mt, i, (uint8_t)st, inc);
  if (st != WR_SWIM_SUSPECT) swim_susp_clear(sw, i);
  if (st == WR_SWIM_DEAD || st == WR_SWIM_LEFT)
    grave_push(sw, swim_member_id(m), now);
}

static void apply_alive(wr_swim *sw, const wr_swim_update *u, wr_tstamp now) {
  if (swim_is_self(sw, u->id)) {
    /* Our own ALIVE coming back is normal; one with a higher incarnation
     * is from a previous life of this id: outbid it. */
    if (!sw->leaving && u->incarnation > sw->inc) refute(sw, u->incarnation, now);
    return;
  }
  ssize_t i = swim_members_find(&sw->mt, u->id);
  if (i < 0) {
    i = swim_members_add(&sw->mt, u->id, &u->gossip, u->incarnation, now);
    if (i < 0) return;
    swim_members_set_meta(&sw->mt, (size_t)i, &u->data, u->region, u->tags);
    /* A new member joins the probe order at a random place ahead of us,
     * so it is probed within this round (memberlist does the same). */
    size_t left = sw->mt.n - sw->probe_pos;
    if (left > 1)
      swim_members_swap(&sw->mt, (size_t)i, sw->probe_pos + swim_rand_below(sw, left));
    i = swim_members_find(&sw->mt, u->id);
  } else {
    swim_member *m = &sw->mt.v[i];
    if (u->incarnation <= m->incarnation) return;
    m->gossip = u->gossip;
    swim_members_set_meta(&sw->mt, (size_t)i, &u->data, u->region, u->tags);
    set_state(sw, (size_t)i, WR_SWIM_ALIVE, u->incarnation, now);
  }
  broadcast(sw, u);
  notify(sw, (size_t)i);
}




/* Someone gossips an accusation that our entry for member |i| already
 * supersedes (an older incarnation, or a member that left): it missed
 * our news, and a member that missed a LEFT would otherwise go on to
 * declare the leaver dead.  Gossip our entry again, once: not while it is
 * still queued, so stale rumours cannot keep resetting its count.
 *
 * And tell the one who sent it, directly (one packet per datagram it
 * sent us): it is the member that missed the news.  An epidemic whose
 * every holder sends an update retransmit_mult * log10(n+1) times still
 * misses a member now and then (at 30 % loss and 1,000 members, about
 * one in 10^5 per refutation), and such a member, still suspecting a
 * live one, declares it dead when its timer runs out and the verdict
 * spreads.  It re-gossips the suspicion meanwhile, and this answer is
 * what reaches it. */
static void correct_stale(wr_swim *sw, size_t i) {
  const char *id = swim_member_id(&sw->mt.v[i]);
  if (!sw->merging && sw->rx_from.family) {
    swim_out *o = swim_out_push(sw, WR_SWIM_GOSSIP, &sw->rx_from);
    if (o) {
      o->extra |= EXTRA_ABOUT;
      snprintf(o->about, sizeof o->about, "%s", id);
    }
    sw->rx_from.family = 0;
    sw->st.stale_corrections++;
  }
  if (sw->merging || swim_bqueue_has(&sw->bq, id)) return;
  wr_swim_update u;
  swim_member_update(sw, i, NULL, &u);
  broadcast(sw, &u);
}


void swim_apply_suspect(wr_swim *sw, const wr_swim_update *u,
                        wr_tstamp now) {
  if (swim_is_self(sw, u->id)) {
    accused(sw, u->incarnation, now);
    return;
  }
  ssize_t i = swim_members_find(&sw->mt, u->id);
  if (i < 0) return;
  swim_member *m = &sw->mt.v[i];
  if (u->incarnation < m->incarnation || m->state == WR_SWIM_DEAD ||
      m->state == WR_SWIM_LEFT) {
    correct_stale(sw, (size_t)i);
    return;
  }
  if (m->state == WR_SWIM_SUSPECT && u->incarnation == m->incarnation) {
    swim_susp *s = swim_susp_of(sw, (size_t)i);
    /* Re-gossip only news: a new confirmer shortens everyone's timer.
     * With regions, only members of the suspect's region confirm: they
     * are the ones that probe it over a LAN, and a WAN cut that makes
     * remote members silent to each other must not add up to a death. */
    if (s && swim_confirmer_ok(sw, (size_t)i, u->from) && swim_susp_confirm(s, u->from))
      broadcast(sw, u);
    return;
  }
  /* A new suspicion, or one at a higher incarnation than the one we
   * hold: the member refuted ours (we missed that) and is suspected
   * anew, so its timer starts now.  Keeping the old timer (as memberlist
   * does) declared healthy members dead at 30 % loss: a member that
   * missed a refutation held its suspicion for tens of seconds and a
   * fresh accusation at the new incarnation inherited the old deadline. */
  swim_susp_clear(sw, (size_t)i); /* the old timer, if any */
  set_state(sw, (size_t)i, WR_SWIM_SUSPECT, u->incarnation, now);
  if (swim_susp_start(sw, (size_t)i, u->from, now) != 0) return;
  sw->st.suspicions++;
  broadcast(sw, u);
  notify(sw, (size_t)i);
  if (!swim_is_self(sw, u->from)) swim_confirm_probe(sw, (size_t)i, now);
}

void swim_apply_dead(wr_swim *sw, const wr_swim_update *u, wr_tstamp now,
                     int left) {
  if (swim_is_self(sw, u->id)) {
    accused(sw, u->incarnation, now);
    if (!left && !sw->merging) sw->rx_self_dead = 1;
    return;
  }
  ssize_t i = swim_members_find(&sw->mt, u->id);
  if (i < 0) return;
  swim_member *m = &sw->mt.v[i];
  if (u->incarnation < m->incarnation ||
      (m->state == WR_SWIM_LEFT && !left)) {
    correct_stale(sw, (size_t)i);
    return;
  }
  if (m->state == WR_SWIM_LEFT) return;
  /* LEFT beats DEAD at the same incarnation: a member that said goodbye
   * is never reported dead. */
  if (m->state == WR_SWIM_DEAD && !left) return;
  set_state(sw, (size_t)i, left ? WR_SWIM_LEFT : WR_SWIM_DEAD, u->incarnation,
            now);
  if (!left) sw->st.deaths++;
  broadcast(sw, u);
  notify(sw, (size_t)i);
}

/* News from a peer is relayed to push_fanout members within
 * user_relay_ms, and again every user_relay_ms while USER updates wait
 * (see wr_swim_tick), instead of at the next gossip tick: on a busy node
 * (a queue never empty) every hop would otherwise wait up to a whole
 * gossip interval, which across the 3-5 hops of a 50-1,000 member fleet
 * put a route change 0.3-0.5 s (p99 0.5 s at N = 50) behind.  News that
 * arrives within the window shares the relay's packets. */
static void apply_user(wr_swim *sw, const wr_swim_update *u, wr_tstamp now) {
  if (!sw->cb.user_update || !sw->cb.user_update(sw, u, sw->user_data))
    return;
  broadcast(sw, u);
  if (sw->cfg.user_relay_ms && !sw->merging && !sw->relay_user_at)
    sw->relay_user_at = now + sw->cfg.user_relay_ms;
}

static void apply_update(wr_swim *sw, const wr_swim_update *u, wr_tstamp now) {
  switch (u->kind) {
  case WR_SWIM_UPD_ALIVE: apply_alive(sw, u, now); break;
  case WR_SWIM_UPD_SUSPECT: swim_apply_suspect(sw, u, now); break;
  case WR_SWIM_UPD_DEAD: swim_apply_dead(sw, u, now, 0); break;
  case WR_SWIM_UPD_LEFT: swim_apply_dead(sw, u, now, 1); break;
  case WR_SWIM_UPD_USER: apply_user(sw, u, now); break;
  default: break;
  }
}

/* ---- probing ------------------------------------------------------------ */

static int gossip_target_ok(const wr_swim *sw, const swim_member *m,
                            wr_tstamp now) {
  if (m->state == WR_SWIM_ALIVE || m->state == WR_SWIM_SUSPECT) return 1;
  /* The recently dead still hear gossip, so a wrong verdict is refuted. */
  return now - m->state_since < sw->cfg.gossip_to_dead_ms;
}


/* Queues GOSSIP packets to |count| distinct random members: with
 * repeats, a burst of 3 among 9 members hits only 2 a third of the time,
 * and a small fleet's last member then waits a whole gossip interval. */
static void gossip_to(wr_swim *sw, unsigned count, wr_tstamp now) {
  size_t n = sw->mt.n, picked[64];
  unsigned sent = 0, tries_max = 4 * count + 4;
  if (count > WR_ARRAY_LEN(picked)) count = WR_ARRAY_LEN(picked);
  int regions = swim_regions_on(sw);
  if (regions) {
    /* At most region_cross_gossip of the sends cross a region boundary
     * (a live member of any other region), the rest stay in ours: news
     * crosses once per round from each holder instead of with (R-1)/R
     * of every gossip packet (docs/SWIM.md "Regions"). */
    unsigned cross = WR_MIN(count, sw->cfg.region_cross_gossip);
    for (unsigned c = 0; c < cross; c++) {
      ssize_t i = swim_regions_pick(&sw->mt, sw->cfg.region, 0, 1, NULL, 16,
                                    swim_below_cb, sw);
      size_t j = 0;
      while (i >= 0 && j < sent && picked[j] != (size_t)i) j++;
      if (i < 0 || j < sent) continue;
      if (swim_out_push(sw, WR_SWIM_GOSSIP, &sw->mt.v[i].gossip))
        picked[sent++] = (size_t)i;
    }
    /* The local picks reject the other regions' members: R regions of
     * equal size cost about R draws a pick. */
    tries_max *= 4;
  }
  for (unsigned tries = 0; sent < count && n && tries < tries_max; tries++) {
    size_t i = swim_rand_below(sw, n), j = 0;
    while (j < sent && picked[j] != i) j++;
    const swim_member *m = &sw->mt.v[i];
    if (j < sent || !gossip_target_ok(sw, m, now)) continue;
    if (regions && !swim_in_own_region(sw, m)) continue;
    swim_out *o = swim_out_push(sw, WR_SWIM_GOSSIP, &m->gossip);
    /* The recently dead hear membership news (to refute it), but USER
     * updates sent there are lost sends: each counts against a budget of
     * only retransmit_mult * log10(n + 1), so in a small fleet with a few
     * dead members a live one missed route changes until the next sync. */
    if (o && m->state != WR_SWIM_ALIVE && m->state != WR_SWIM_SUSPECT)
      o->extra |= EXTRA_NO_USER;
    picked[sent++] = i;
  }
}

static void handle_ping_req(wr_swim *sw, const wr_addr *src, wr_tstamp now) {
  const wr_swim_packet *p = &sw->pkt;
  if (swim_is_self(sw, p->target)) {
    /* Asked to probe ourselves: we are the answer. */
    swim_out *o = swim_out_push(sw, WR_SWIM_ACK, src);
    if (o) o->seq = p->seq;
    return;
  }
  swim_relay *r = NULL;
  for (size_t j = 0; j < SWIM_RELAYS_MAX && !r; j++)
    if (!sw->relays[j].used) r = &sw->relays[j];
  if (!r) {
    sw->st.tx_dropped++;
    return;
  }
  swim_out *o = swim_out_push(sw, WR_SWIM_PING, &p->target_addr);
  if (!o) return;
  memset(r, 0, sizeof *r);
  r->used = 1;
  sw->nrelays++;
  r->seq = o->seq = ++sw->seq;
  r->origin = *src;
  r->target = p->target_addr;
  r->origin_seq = p->seq;
  /* Nack at 80 % of the timeout so it reaches the prober in time. */
  r->nack_at = now + sw->cfg.probe_timeout_ms * 4 / 5;
  r->expire_at = now + sw->cfg.probe_timeout_ms;
  snprintf(o->target, sizeof o->target, "%s", p->target);
}

enum { ACK_PLAIN, ACK_NACK, ACK_NACK_REFUSED };

/* A failed member answered our dead probe (dead_probe_tick): the network
 * between us works again.  Its ACK carried its ALIVE, refuted against
 * the verdict our PING carried, and was applied before we got here, so
 * it is back in our table and its return is being gossiped on; if it
 * held us dead too, the ACK said so and we refuted.  What gossip cannot
 * bring back is everything else that changed on its side while we were
 * apart (the members it still holds dead, USER and application state),
 * so sync with it now, as the reconnect ticker would have done at its
 * next tick, seconds later.  Bounded like the ticker: at most one such
 * sync per reconnect interval per node, and none when reconnecting is
 * off. */
static void dead_probe_answered(wr_swim *sw, const wr_addr *src,
                                wr_tstamp now) {
  sw->dead_probe_seq = 0;
  sw->st.dead_probe_answers++;
  if (!sw->cfg.reconnect_interval_ms || now < sw->heal_sync_at ||
      sw->reconnect_now || sw->leaving)
    return;
  sw->heal_sync_at = now + sw->cfg.reconnect_interval_ms;
  sw->reconnect_now = 1;
  sw->reconnect_peer = *src;
  sw->st.reconnects++;
}

static void handle_ack(wr_swim *sw, const wr_addr *src, int nack,
                       wr_tstamp now) {
  uint32_t seq = sw->pkt.seq;
  if (sw->probe.active && seq == sw->probe.seq) {
    if (sw->probe.cross) swim_region_heard(sw, sw->pkt.from, nack);
    if (nack) {
      sw->probe.nacks++;
      sw->st.nacks_rx++;
      if (nack == ACK_NACK_REFUSED && sw->cfg.refused_suspicion_ms &&
          sw->probe.nrefused < sw->probe.nacks_expected &&
          sw->probe.nrefused < SWIM_INDIRECT_MAX) {
        uint32_t h = swim_id_hash(sw->pkt.from);
        for (unsigned j = 0; j < sw->probe.nrefused; j++)
          if (sw->probe.refused_by[j] == h) return; /* a repeat */
        sw->probe.refused_by[sw->probe.nrefused++] = h;
        swim_probe_check_refused(sw, now);
      }
    } else {
      sw->probe.active = 0;
      swim_awareness_add(sw, -1);
    }
    return;
  }
  if (nack) {
    if (!swim_confirm_ack(sw, seq, 1)) sw->st.rx_foreign++;
    return;
  }
  if (swim_confirm_ack(sw, seq, 0)) return;
  for (size_t j = 0; sw->nrelays && j < SWIM_RELAYS_MAX; j++) {
    swim_relay *r = &sw->relays[j];
    if (r->used && r->seq == seq) {
      swim_out *o = swim_out_push(sw, WR_SWIM_ACK, &r->origin);
      if (o) o->seq = r->origin_seq;
      r->used = 0;
      sw->nrelays--;
      return;
    }
  }
  if (seq && seq == sw->dead_probe_seq) {
    dead_probe_answered(sw, src, now);
    return;
  }
  for (size_t j = 0; j < WR_ARRAY_LEN(sw->hello_seq); j++)
    if (sw->hello_seq[j] == seq && seq) {
      sw->hello_seq[j] = 0; /* its ALIVE rode on the ACK: done */
      return;
    }
  if (sw->join_seq_hi && seq >= sw->join_seq_lo && seq <= sw->join_seq_hi) {
    /* A seed answered: pull its whole view over the sync stream, then
     * announce ourselves to what we learned (swim_core_sync_result). */
    sw->join_announce = 1;
    sw->sync_now = 1;
    sw->sync_peer = *src;
    sw->join_seq_lo = sw->join_seq_hi = 0;
    return;
  }
  sw->st.rx_foreign++;
}

static void handle_ping(wr_swim *sw, const wr_addr *src) {
  const wr_swim_packet *p = &sw->pkt;
  if (p->target[0] && !swim_is_self(sw, p->target)) {
    /* Meant for whoever had this address before us. */
    sw->st.rx_foreign++;
    return;
  }
  swim_out *o = swim_out_push(sw, WR_SWIM_ACK, src);
  if (!o) return;
  o->seq = p->seq;
  if (!p->target[0]) o->extra |= EXTRA_SELF; /* a join probe */
  ssize_t known = swim_members_find(&sw->mt, p->from);
  if (known < 0 && p->target[0] && !sw->leaving) {
    /* A member probes us that we never heard of (every update about it
     * was lost, or we joined after its gossip died down).  Ask it who it
     * is: an empty-target PING is answered with the answerer's ALIVE, so
     * membership heals within one probe round instead of at the next
     * anti-entropy sync. */
    swim_out *h = swim_out_push(sw, WR_SWIM_PING, src);
    if (h) {
      h->seq = ++sw->seq;
      sw->hello_seq[sw->hello_next++ % WR_ARRAY_LEN(sw->hello_seq)] = h->seq;
    }
  }
  /* A member we hold as suspect, dead or left is talking to us: tell it
   * what we think, so it refutes (a restarted node learns its old
   * incarnation this way). */
  ssize_t i = swim_members_find(&sw->mt, p->from);
  if (i >= 0 && sw->mt.v[i].state != WR_SWIM_ALIVE) {
    o->extra |= EXTRA_ABOUT;
    snprintf(o->about, sizeof o->about, "%s", p->from);
  }
}

/* After a partition both sides hold DEAD verdicts about each other, and
 * the epidemic that carries each refutation back misses a member now and
 * then (a refutation goes out retransmit_mult * log10(n+1) times, among
 * targets that mostly knew already): such a member keeps its verdict,
 * nobody probes it, and only a dead probe that happens to pick it (one
 * chance in |known| per interval) or a sync repairs it.  But the two
 * ends talk to each other anyway, through probes and gossip, and either
 * end can see the disagreement in the datagram itself:
 *
 *   - a member we hold DEAD sent us this (not a PING: handle_ping
 *     already puts our verdict on its ACK): tell it our verdict;
 *   - this datagram said we are DEAD: tell the sender our ALIVE (we
 *     refuted it, or hold a newer incarnation already) directly, not
 *     only by gossip, which may miss it again.
 *
 * One small GOSSIP with just those entries, at most one per datagram
 * received and one per member per probe interval, so two members whose
 * views cannot be reconciled do not answer each other for ever. */
static void dead_reply(wr_swim *sw, const wr_addr *src, wr_tstamp now) {
  int self_dead = sw->rx_self_dead;
  sw->rx_self_dead = 0;
  if (sw->leaving) return;
  ssize_t i = swim_members_find(&sw->mt, sw->pkt.from);
  int held_dead = i >= 0 && sw->mt.v[i].state == WR_SWIM_DEAD &&
                  sw->pkt.type != WR_SWIM_PING;
  if (!held_dead && !self_dead) return;
  uint32_t h = swim_id_hash(sw->pkt.from);
  size_t slot = h % WR_ARRAY_LEN(sw->dead_replied);
  if (sw->dead_replied[slot].hash == h &&
      now - sw->dead_replied[slot].at < sw->cfg.probe_interval_ms)
    return;
  swim_out *o = swim_out_push(sw, WR_SWIM_GOSSIP, src);
  if (!o) return;
  sw->dead_replied[slot].hash = h;
  sw->dead_replied[slot].at = now;
  o->extra = EXTRA_BARE | (self_dead ? EXTRA_SELF : 0);
  if (held_dead) {
    o->extra |= EXTRA_ABOUT;
    snprintf(o->about, sizeof o->about, "%s", sw->pkt.from);
  }
  sw->st.dead_replies++;
}

/* ---- the adapter-facing API ------------------------------------------------ */

int wr_swim_recv(wr_swim *sw, const wr_addr *from, const uint8_t *pkt,
                 size_t len, wr_tstamp now) {
  sw->st.rx_packets++;
  sw->st.rx_bytes += len;
  if (len > WR_SWIM_DATAGRAM_MAX) {
    sw->st.rx_oversize++;
    return 0;
  }
  wr_ssize n = wr_swim_open(sw->kr, sw->plain, sizeof sw->plain, pkt, len);
  if (n < 0) {
    /* Too short or another seal version is malformed; an unknown key or
     * a bad tag is a packet we may not read. */
    if (n == WR_ERR_PROTO)
      sw->st.rx_malformed++;
    else
      sw->st.rx_badseal++;
    return 0;
  }
  int rv = wr_swim_decode(sw->plain, (size_t)n, &sw->pkt);
  if (rv != 0) {
    if (rv == WR_ERR_VERSION)
      sw->st.rx_version++;
    else
      sw->st.rx_malformed++;
    return 0;
  }
  if (swim_is_self(sw, sw->pkt.from)) {
    /* Another process claims our id: take nothing from it. */
    sw->st.rx_foreign++;
    return 0;
  }
  sw->rx_from = *from;
  sw->rx_self_dead = 0;
  for (size_t j = 0; j < sw->pkt.nupdates; j++)
    apply_update(sw, &sw->pkt.updates[j], now);
  sw->rx_from.family = 0;
  dead_reply(sw, from, now);
  switch (sw->pkt.type) {
  case WR_SWIM_PING: handle_ping(sw, from); break;
  case WR_SWIM_PING_REQ: handle_ping_req(sw, from, now); break;
  case WR_SWIM_ACK: handle_ack(sw, from, ACK_PLAIN, now); break;
  case WR_SWIM_NACK: handle_ack(sw, from, ACK_NACK, now); break;
  case WR_SWIM_NACK_REFUSED: handle_ack(sw, from, ACK_NACK_REFUSED, now); break;
  default: break; /* GOSSIP: the updates were the message */
  }
  return 0;
}

void wr_swim_unreachable(wr_swim *sw, const wr_addr *to, wr_tstamp now) {
  sw->st.refused++;
  if (!sw->cfg.refused_suspicion_ms) return;
  if (sw->probe.active && !sw->probe.refused &&
      wr_addr_eq(&sw->probe.addr, to)) {
    /* No point waiting out the probe timeout: ask the relays now. */
    sw->probe.refused = 1;
    if (!sw->probe.indirect_sent) swim_probe_indirect(sw);
    swim_probe_check_refused(sw, now);
  }
  for (size_t j = 0; j < SWIM_RELAYS_MAX; j++) {
    swim_relay *r = &sw->relays[j];
    if (!r->used || r->nacked || !wr_addr_eq(&r->target, to)) continue;
    swim_out *o = swim_out_push(sw, WR_SWIM_NACK_REFUSED, &r->origin);
    if (o) o->seq = r->origin_seq;
    r->nacked = 1;
  }
  swim_susp_unreachable(sw, to, now);
}

static size_t header_size(const wr_swim_packet *p) {
  size_t n = 1 + 1 + 4 + 1 + strlen(p->from) + 1;
  if (p->type == WR_SWIM_PING || p->type == WR_SWIM_PING_REQ)
    n += 1 + strlen(p->target);
  if (p->type == WR_SWIM_PING_REQ)
    n += 1 + (p->target_addr.family == 6 ? 16 : 4) + 2;
  return n;
}

static void add_extra(wr_swim_packet *p, const wr_swim_update *u,
                      size_t *budget) {
  size_t sz = wr_swim_update_size(u);
  if (!sz || sz > *budget || p->nupdates == WR_SWIM_UPDATES_MAX) return;
  p->updates[p->nupdates++] = *u;
  *budget -= sz;
}

wr_ssize wr_swim_send(wr_swim *sw, wr_addr *to, uint8_t *dst, size_t cap,
                      wr_tstamp now) {
  (void)now;
  if (cap < WR_SWIM_DATAGRAM_MAX) return WR_ERR_NOBUF;
  while (sw->out_n) {
    swim_out o = sw->out[sw->out_head];
    sw->out_head = (sw->out_head + 1) % sw->out_cap;
    sw->out_n--;
    int user_ok = !(o.extra & EXTRA_NO_USER);
    if (o.type == WR_SWIM_GOSSIP && !(o.extra & ~EXTRA_NO_USER) &&
        !sw->bq.n && !(user_ok && sw->uq.n))
      continue;
    wr_swim_packet *p = &sw->pkt;
    p->type = o.type;
    p->seq = o.seq;
    snprintf(p->from, sizeof p->from, "%s", sw->cfg.id);
    snprintf(p->target, sizeof p->target, "%s", o.target);
    p->target_addr = o.target_addr;
    p->nupdates = 0;
    size_t budget = WR_SWIM_PACKET_MAX - header_size(p);
    wr_swim_update u;
    if (o.extra & EXTRA_SELF) {
      self_update(sw, &u);
      add_extra(p, &u, &budget);
    }
    ssize_t i;
    if ((o.extra & EXTRA_ABOUT) && (i = swim_members_find(&sw->mt, o.about)) >= 0) {
      swim_member_update(sw, (size_t)i, NULL, &u);
      add_extra(p, &u, &budget);
    }
    /* Membership first, then USER updates in the room left: both at the
     * same retransmit limit, lambda * log(n + 1) packets each. */
    size_t room = budget;
    uint32_t limit = retransmit_limit(sw);
    p->nraw = o.extra & EXTRA_BARE
                  ? 0
                  : swim_bqueue_take(&sw->bq, sw->piggyback,
                                     WR_SWIM_UPDATES_MAX - p->nupdates,
                                     &budget, limit);
    if (user_ok && !(o.extra & EXTRA_BARE))
      p->nraw += swim_bqueue_take(&sw->uq, sw->piggyback + (room - budget),
                                  WR_SWIM_UPDATES_MAX - p->nupdates - p->nraw,
                                  &budget, limit);
    p->raw = sw->piggyback;
    p->raw_len = room - budget;
    wr_ssize n = wr_swim_encode(p, sw->plain, sizeof sw->plain);
    if (n < 0) continue; /* cannot happen with validated fields */
    uint8_t nonce[24];
    sw->cfg.rand(nonce, sizeof nonce, sw->cfg.rand_user_data);
    wr_ssize m = wr_swim_seal(sw->kr, dst, cap, sw->plain, (size_t)n, nonce);
    if (m < 0) return m;
    *to = o.to;
    sw->st.tx_packets++;
    sw->st.tx_bytes += (uint64_t)m;
    return m;
  }
  return 0;
}

static uint64_t sync_interval(const wr_swim *sw) {
  /* memberlist's pushPullScale: one more period per doubling above 32
   * members, so fleet-wide sync traffic grows like n log n, not n^2. */
  size_t n = swim_fleet_n(sw);
  uint64_t mult = 1;
  if (n > 32) mult = (uint64_t)ceil(log2((double)n) - log2(32.0)) + 1;
  return sw->cfg.sync_interval_ms * mult;
}

/* A sync with a random ALIVE member (a few tries: the table may hold
 * suspects and the dead). */
static void sync_with_random(wr_swim *sw) {
  for (unsigned tries = 0; sw->mt.n && tries < 8; tries++) {
    const swim_member *m = &sw->mt.v[swim_rand_below(sw, sw->mt.n)];
    if (m->state != WR_SWIM_ALIVE) continue;
    sw->sync_now = 1;
    sw->sync_peer = m->gossip;
    return;
  }
}

/* Catch-up syncs (wr_swim_sync_behind).  The application dropped news
 * that only anti-entropy brings back, and the periodic sync may be a
 * whole interval away (15 s on a LAN, minutes in a large fleet): under a
 * flood, an honest owner's change that met a full ingest queue at some
 * nodes stayed missing there until then (the chaos poison scenario).
 * So: the first catch-up within SWIM_CATCHUP_FIRST_MS, then
 * SWIM_CATCHUP_SYNCS - 1 more at doubling gaps, each with a random live
 * member, since the first peer may have missed the same news.  A new
 * report restarts the count but not the clock, so a steady flood costs
 * one extra sync per gap, and the gap is at least an eighth of the
 * periodic interval: a 10,000-node fleet, whose periodic interval is
 * 150 s because a full exchange costs it most, adds at most one every
 * 19 s per node. */
#define SWIM_CATCHUP_SYNCS 3u
#define SWIM_CATCHUP_FIRST_MS 1000u
#define SWIM_CATCHUP_GAP_MIN_MS 2000u

static uint64_t catchup_gap(const wr_swim *sw, unsigned left) {
  uint64_t gap = WR_MAX((uint64_t)SWIM_CATCHUP_GAP_MIN_MS,
                        sync_interval(sw) / 8);
  return gap << (SWIM_CATCHUP_SYNCS - 1 - left);
}

static void catchup_tick(wr_swim *sw, wr_tstamp now) {
  if (!sw->catchup_at || now < sw->catchup_at) return;
  sw->catchup_left--;
  sw->catchup_at =
      sw->catchup_left ? now + catchup_gap(sw, sw->catchup_left) : 0;
  /* A periodic sync due in the same tick does the same job. */
  if (sw->sync_now) return;
  sync_with_random(sw);
  if (sw->sync_now) sw->st.syncs_catchup++;
}

void wr_swim_sync_behind(wr_swim *sw, wr_tstamp now) {
  if (!sw->cfg.sync_interval_ms) return;
  sw->catchup_left = SWIM_CATCHUP_SYNCS;
  if (!sw->catchup_at) sw->catchup_at = now + SWIM_CATCHUP_FIRST_MS;
}

static int reconnect_armed(const wr_swim *sw) {
  return sw->cfg.reconnect_interval_ms && (sw->mt.n || sw->lost.n);
}

/* Every reconnect interval (serf's ticker): maybe one sync with a failed
 * member (reconnect.c).  The phase comes from our id, not from the random
 * source, so a fleet started together does not try in step, and a node
 * with nothing to reconnect draws nothing. */
static void reconnect_tick(wr_swim *sw, wr_tstamp now) {
  if (!reconnect_armed(sw)) return;
  uint64_t iv = sw->cfg.reconnect_interval_ms;
  if (!sw->next_reconnect_at) {
    sw->next_reconnect_at = now + 1 + swim_id_hash(sw->cfg.id) % iv;
    return;
  }
  if (now < sw->next_reconnect_at) return;
  sw->next_reconnect_at = now + iv;
  /* Nobody ever declared dead here: no candidate, skip the table scan. */
  if (sw->leaving || (!sw->st.deaths && !sw->lost.n)) return;
  if (swim_reconnect_pick(&sw->lost, &sw->mt, now,
                          sw->cfg.reconnect_timeout_ms, swim_below_cb, sw,
                          &sw->reconnect_peer)) {
    sw->reconnect_now = 1;
    sw->st.reconnects++;
  }
}

static int dead_probe_armed(const wr_swim *sw) {
  return sw->cfg.dead_probe_interval_ms && !sw->leaving &&
         (sw->st.deaths || sw->lost.n);
}

/*
 * Every dead probe interval: one random entry among the members we know
 * and the ones we reaped while DEAD (reconnect.c); if it is a failed
 * member within reconnect_timeout, an empty-target PING goes to it,
 * carrying our ALIVE and, when we still hold it, our DEAD verdict.
 *
 * Why: nobody probes a DEAD member and gossip reaches the dead only
 * while there is news, so after a partition that outlived the suspicion
 * timeout both sides fall silent towards each other, and before this
 * only the reconnect ticker (every 30 s, 10 s with LOCAL, at a phase
 * fixed by the node id) found out that the network was back: the chaos
 * harness's short partition-heal took its members back 2.3-2.5 s after
 * the heal in 4 runs of 5 (docs/BENCHMARKS.md).
 *
 * What an answer does: the member applies our verdict about it first
 * and refutes it, so the ACK (an empty-target PING is answered with the
 * answerer's ALIVE) brings its new incarnation, which we take and gossip
 * on as a rejoin; if it holds us DEAD too, handle_ping attaches its
 * verdict and we refute ours.  Then dead_probe_answered syncs with it.
 *
 * Bounded: one uniform pick over everyone we know makes a node probe
 * with probability failed / known, so the fleet sends about one datagram
 * per failed member per interval, a partition's two sides at most one
 * per member per interval (what the ordinary probes cost), a node that
 * knows only live members none; one outstanding per node (a new pick
 * forgets an unanswered one).  The pick is O(1): no table scan on a
 * timer that runs every second in a 10,000-core simulation.
 */
static void dead_probe_tick(wr_swim *sw, wr_tstamp now) {
  if (!dead_probe_armed(sw)) return;
  uint64_t iv = sw->cfg.dead_probe_interval_ms;
  if (!sw->next_dead_probe_at) {
    /* A random phase, so a side that learned the same deaths together
     * does not send in step. */
    sw->next_dead_probe_at = now + 1 + swim_rand_below(sw, iv);
    return;
  }
  if (now < sw->next_dead_probe_at) return;
  sw->next_dead_probe_at = now + iv;
  size_t n = sw->mt.n + sw->lost.n;
  if (!n) return;
  size_t k = swim_rand_below(sw, n);
  const wr_addr *addr;
  const char *about = NULL;
  if (k < sw->mt.n) {
    const swim_member *m = &sw->mt.v[k];
    if (m->state != WR_SWIM_DEAD ||
        now - m->state_since >= sw->cfg.reconnect_timeout_ms)
      return;
    addr = &m->gossip;
    about = swim_member_id(m);
  } else {
    const swim_lost_ent *e = &sw->lost.v[k - sw->mt.n];
    if (now - e->dead_at >= sw->cfg.reconnect_timeout_ms) return;
    addr = &e->gossip;
  }
  swim_out *o = swim_out_push(sw, WR_SWIM_PING, addr);
  if (!o) return;
  o->seq = sw->dead_probe_seq = ++sw->seq;
  if (!o->seq) o->seq = sw->dead_probe_seq = ++sw->seq; /* 0 is "none" */
  o->extra = EXTRA_SELF | EXTRA_BARE;
  if (about) {
    o->extra |= EXTRA_ABOUT;
    snprintf(o->about, sizeof o->about, "%s", about);
  }
  sw->st.dead_probes++;
}

static void reap(wr_swim *sw, wr_tstamp now) {
  while (sw->grave_n) {
    swim_grave *g = &sw->graves[sw->grave_head];
    if (now - g->at < sw->cfg.dead_reap_ms) break;
    ssize_t i = swim_members_find(&sw->mt, g->id);
    if (i >= 0) {
      swim_member *m = &sw->mt.v[i];
      if ((m->state == WR_SWIM_DEAD || m->state == WR_SWIM_LEFT) &&
          now - m->state_since >= sw->cfg.dead_reap_ms) {
        /* The dead stay reconnect candidates (reconnect.c). */
        if (m->state == WR_SWIM_DEAD && sw->cfg.reconnect_interval_ms)
          swim_lost_add(&sw->lost, m);
        swim_members_remove(&sw->mt, (size_t)i);
        if (sw->probe_pos > sw->mt.n) sw->probe_pos = sw->mt.n;
        sw->st.reaped++;
      }
    }
    sw->grave_head = (sw->grave_head + 1) % sw->grave_cap;
    sw->grave_n--;
  }
}

void wr_swim_tick(wr_swim *sw, wr_tstamp now) {
  for (size_t j = 0; sw->nrelays && j < SWIM_RELAYS_MAX; j++) {
    swim_relay *r = &sw->relays[j];
    if (!r->used) continue;
    if (!r->nacked && sw->cfg.lifeguard && now >= r->nack_at) {
      swim_out *o = swim_out_push(sw, WR_SWIM_NACK, &r->origin);
      if (o) o->seq = r->origin_seq;
      r->nacked = 1;
    }
    if (now >= r->expire_at) {
      r->used = 0;
      sw->nrelays--;
    }
  }
  swim_confirm_tick(sw, now);
  if (sw->probe.active) {
    if (!sw->probe.indirect_sent && now >= sw->probe.timeout_at)
      swim_probe_indirect(sw);
    if (now >= sw->probe.end_at) swim_probe_failed(sw, now);
  }
  if (!sw->leaving && !sw->probe.active && now >= sw->next_probe_at) {
    swim_probe_start(sw, now);
    sw->next_probe_at = now + swim_scaled(sw, sw->cfg.probe_interval_ms);
  }
  /* Suspicions that ran out become deaths, declared by us.  After the
   * probes: a probe that failed just now may have confirmed a suspicion
   * and so moved its deadline into the past. */
  swim_susp_tick(sw, now);
  /* The gossip clock only runs while there is something to gossip: a
   * node with an empty queue passes news on the moment it arrives
   * (wr_swim_deadline makes that tick due at once) instead of at a tick
   * phase set by whatever unrelated timer ran last. */
  if (sw->relay_user_at && now >= sw->relay_user_at) {
    /* Rounds go on while USER updates wait: the retransmit budget of
     * each (retransmit_mult * log10(n+1) sends) is spent in a few relay
     * windows, not over seconds of gossip ticks.  A push epidemic where
     * each node sends an update k times misses a member with probability
     * about e^-k; k = 3 (one round) left 1 of 20 members to the ticks
     * (p99 0.34 s at N = 50), the whole budget (8 at N = 50) about 1 in
     * 3,000.  Bytes are the same (the budget is); only sooner. */
    sw->relay_user_at = 0;
    if (sw->uq.n) {
      gossip_to(sw, sw->cfg.push_fanout, now);
      if (sw->uq.n) sw->relay_user_at = now + sw->cfg.user_relay_ms;
    }
  }
  if (now >= sw->next_gossip_at && (sw->bq.n || sw->uq.n)) {
    gossip_to(sw, sw->cfg.gossip_nodes, now);
    sw->next_gossip_at = now + sw->cfg.gossip_interval_ms;
  }
  reap(sw, now);
  if (sw->cfg.sync_interval_ms && sw->mt.n && !sw->next_sync_at) {
    uint64_t iv = sync_interval(sw);
    sw->next_sync_at = now + iv / 2 + swim_rand_below(sw, iv / 2 + 1);
  }
  if (sw->cfg.sync_interval_ms && sw->next_sync_at && now >= sw->next_sync_at) {
    sw->next_sync_at = now + sync_interval(sw);
    if (sw->followup_gap) {
      /* A join's follow-up (swim_core_sync_result): another one while
       * members keep arriving, with a doubled gap, at most a sync
       * interval. */
      uint64_t gap = sw->followup_gap * 2;
      if (sw->mt.n > sw->followup_n && gap < sync_interval(sw)) {
        sw->followup_gap = gap;
        sw->followup_n = sw->mt.n;
        sw->next_sync_at = now + gap / 2 + swim_rand_below(sw, gap / 2 + 1);
      } else {
        sw->followup_gap = 0;
      }
    }
    /* With regions, three syncs in four stay in our region: a full
     * state exchange is the largest thing a member sends, and any peer
     * repairs what gossip lost; the fourth crosses, so a region that
     * missed news still hears it by anti-entropy. */
    ssize_t li;
    if (swim_regions_on(sw) && swim_rand_below(sw, 4) != 0 &&
        (li = swim_regions_pick(&sw->mt, sw->cfg.region, 1, 0, NULL, 32,
                                swim_below_cb, sw)) >= 0) {
      sw->sync_now = 1;
      sw->sync_peer = sw->mt.v[li].gossip;
    }
    if (!sw->sync_now) sync_with_random(sw);
  }
  catchup_tick(sw, now);
  reconnect_tick(sw, now);
  dead_probe_tick(sw, now);
}

wr_tstamp wr_swim_deadline(const wr_swim *sw) {
  wr_tstamp t = WR_TSTAMP_NONE;
#define AT(x) \
  do {      \
    if ((x) < t) t = (x); \
  } while (0)
  if (!sw->leaving && !sw->probe.active && sw->mt.n) AT(sw->next_probe_at);
  if (sw->probe.active) {
    if (!sw->probe.indirect_sent) AT(sw->probe.timeout_at);
    AT(sw->probe.end_at);
  }
  if (sw->bq.n || sw->uq.n) AT(sw->next_gossip_at);
  if (sw->relay_user_at) AT(sw->relay_user_at);
  AT(swim_susp_deadline(sw));
  for (size_t j = 0; sw->nrelays && j < SWIM_RELAYS_MAX; j++) {
    const swim_relay *r = &sw->relays[j];
    if (!r->used) continue;
    if (!r->nacked && sw->cfg.lifeguard) AT(r->nack_at);
    AT(r->expire_at);
  }
  if (sw->grave_n) AT(sw->graves[sw->grave_head].at + sw->cfg.dead_reap_ms);
  if (sw->cfg.sync_interval_ms && sw->mt.n)
    AT(sw->next_sync_at ? sw->next_sync_at : 0); /* 0: place it now */
  if (sw->catchup_at) AT(sw->catchup_at);
  if (reconnect_armed(sw)) AT(sw->next_reconnect_at);
  if (dead_probe_armed(sw)) AT(sw->next_dead_probe_at);
#undef AT
  return t;
}

/* ---- lifecycle and queries -------------------------------------------------- */

int wr_swim_new(wr_swim **psw, const wr_swim_config *cfg,
                const wr_swim_callbacks *cb, wr_swim_keyring *keyring,
                const wr_mem *mem, void *user_data, wr_tstamp now) {
  if (!mem) mem = wr_mem_default();
  *psw = NULL;
  if (!cfg->rand || !cfg->probe_interval_ms || !cfg->probe_timeout_ms ||
      cfg->probe_timeout_ms >= cfg->probe_interval_ms ||
      !cfg->gossip_interval_ms || !cfg->suspicion_mult ||
      !cfg->retransmit_mult || !cfg->user_queue_max ||
      cfg->suspicion_confirmations > WR_SWIM_CONFIRMATIONS_MAX)
    return WR_ERR_INVAL;
  wr_swim *sw = wr_mem_calloc(mem, 1, sizeof *sw);
  if (!sw) return WR_ERR_NOMEM;
  sw->cfg = *cfg;
  /* Our ALIVE must be encodable: that validates id, addresses and
   * metadata in one place. */
  wr_swim_update u;
  self_update(sw, &u);
  if (!wr_swim_update_size(&u)) {
    wr_mem_free(mem, sw);
    return WR_ERR_INVAL;
  }
  if (cb) sw->cb = *cb;
  const wr_swim_app_sync *as = sw->cb.app_sync;
  if (as && (!as->begin || !as->digest_next || !as->digest_in ||
             !as->delta_next || !as->delta_in || !as->end)) {
    wr_mem_free(mem, sw);
    return WR_ERR_INVAL;
  }
  wr_swim_keyring_init(&sw->empty_kr);
  sw->kr = keyring ? keyring : &sw->empty_kr;
  sw->mem = mem;
  sw->user_data = user_data;
  sw->self_since = now;
  swim_members_init(&sw->mt, mem);
  swim_bqueue_init(&sw->bq, mem, SWIM_BQUEUE_MAX);
  swim_bqueue_init(&sw->uq, mem, cfg->user_queue_max);
  swim_lost_init(&sw->lost, mem);
  /* Random phases, so a fleet started together does not probe in step. */
  sw->next_probe_at = now + swim_rand_below(sw, cfg->probe_interval_ms);
  sw->next_gossip_at = now + swim_rand_below(sw, cfg->gossip_interval_ms);
  /* The first periodic sync is placed by the first tick that has
   * members, so it scales with the fleet like every later one (a 10k
   * simulation otherwise ran 10k full syncs in its first 30 s). */
  sw->next_sync_at = 0;
  sw->seq = swim_rand_u32(sw);
  *psw = sw;
  return 0;
}

void wr_swim_del(wr_swim *sw) {
  if (!sw) return;
  swim_members_free(&sw->mt);
  swim_bqueue_free(&sw->bq);
  swim_bqueue_free(&sw->uq);
  swim_lost_free(&sw->lost);
  wr_mem_free(sw->mem, sw->susp);
  wr_mem_free(sw->mem, sw->graves);
  wr_mem_free(sw->mem, sw->out);
  wr_mem_free(sw->mem, sw);
}

void *wr_swim_user_data(const wr_swim *sw) { return sw->user_data; }

int wr_swim_join(wr_swim *sw, const wr_addr *seeds, size_t nseeds,
                 wr_tstamp now) {
  (void)now;
  if (!nseeds) return WR_ERR_INVAL;
  sw->join_seq_lo = sw->seq + 1;
  for (size_t j = 0; j < nseeds; j++) {
    swim_out *o = swim_out_push(sw, WR_SWIM_PING, &seeds[j]);
    if (!o) return WR_ERR_NOMEM;
    o->seq = ++sw->seq;
    o->extra = EXTRA_SELF;
  }
  sw->join_seq_hi = sw->seq;
  if (sw->join_seq_lo == 0) sw->join_seq_lo = 1; /* seq wrapped to 0 */
  return 0;
}

int wr_swim_add_member(wr_swim *sw, const char *id, const wr_addr *gossip,
                       const wr_addr *data, uint32_t incarnation,
                       wr_tstamp now) {
  return wr_swim_add_member_region(sw, id, gossip, data, "", incarnation, now);
}

int wr_swim_add_member_region(wr_swim *sw, const char *id,
                              const wr_addr *gossip, const wr_addr *data,
                              const char *region, uint32_t incarnation,
                              wr_tstamp now) {
  if (swim_is_self(sw, id)) return WR_ERR_INVAL;
  if (!region || strlen(region) > WR_SWIM_REGION_MAX) return WR_ERR_INVAL;
  if (swim_members_find(&sw->mt, id) >= 0) return WR_ERR_EXISTS;
  ssize_t i = swim_members_add(&sw->mt, id, gossip, incarnation, now);
  if (i < 0) return (int)i;
  if ((data || region[0]) &&
      swim_members_set_meta(&sw->mt, (size_t)i, data ? data : gossip, region,
                            "") != 0) {
    swim_members_remove(&sw->mt, (size_t)i);
    return WR_ERR_NOMEM;
  }
  /* Bulk bootstrap: one shuffle before the first probe instead of a
   * random insertion per member (10^8 of them in a 10k simulation). */
  sw->probe_pos = sw->mt.n;
  return 0;
}

int wr_swim_copy_members(wr_swim *dst, const wr_swim *src, wr_tstamp now) {
  if (dst->mt.n || dst == src) return WR_ERR_INVAL;
  int rv = swim_members_copy(&dst->mt, &src->mt);
  if (rv) return rv;
  ssize_t self = swim_members_find(&dst->mt, dst->cfg.id);
  if (self >= 0) swim_members_remove(&dst->mt, (size_t)self);
  wr_swim_member_info me;
  wr_swim_self(src, &me);
  if (swim_members_find(&dst->mt, me.id) < 0)
    rv = wr_swim_add_member_region(dst, me.id, &me.gossip, &me.data,
                                   me.region, me.incarnation, now);
  dst->probe_pos = dst->mt.n; /* shuffle before the first probe */
  return rv;
}

int wr_swim_leave(wr_swim *sw, wr_tstamp now) {
  if (sw->leaving) return 0;
  sw->leaving = 1;
  sw->self_since = now;
  sw->inc = next_inc(sw->inc);
  sw->probe.active = 0;
  wr_swim_update u;
  self_update(sw, &u);
  broadcast(sw, &u);
  swim_push_soon(sw, now);
  return 0;
}

/* Queues a USER update of ours (|push|: pushed at once) or one relayed
 * for the application (wr_swim_relay_user). */
static int user_queue(wr_swim *sw, const char *key, uint64_t version,
                      const uint8_t *payload, size_t len, int push,
                      wr_tstamp now) {
  if (len > WR_SWIM_USER_MAX) return WR_ERR_INVAL;
  wr_swim_update u;
  memset(&u, 0, sizeof u);
  u.kind = WR_SWIM_UPD_USER;
  snprintf(u.id, sizeof u.id, "%s", sw->cfg.id);
  u.incarnation = sw->inc;
  if (snprintf(u.key, sizeof u.key, "%s", key) >= (int)sizeof u.key)
    return WR_ERR_INVAL;
  u.version = version;
  u.payload = payload;
  u.payload_len = (uint16_t)len;
  int rv = swim_bqueue_push(&sw->uq, &u);
  if (rv != 0) return rv;
  if (push) swim_push_soon(sw, now);
  /* Then relay rounds, as for news from a peer (apply_user). */
  if (sw->cfg.user_relay_ms && !sw->relay_user_at)
    sw->relay_user_at = now + sw->cfg.user_relay_ms;
  return 0;
}

int wr_swim_broadcast_user(wr_swim *sw, const char *key, uint64_t version,
                           const uint8_t *payload, size_t len, wr_tstamp now) {
  return user_queue(sw, key, version, payload, len, 1, now);
}

int wr_swim_relay_user(wr_swim *sw, const char *key, uint64_t version,
                       const uint8_t *payload, size_t len, wr_tstamp now) {
  return user_queue(sw, key, version, payload, len, 0, now);
}

size_t wr_swim_member_count(const wr_swim *sw) { return sw->mt.n; }

int wr_swim_member_at(const wr_swim *sw, size_t i, wr_swim_member_info *out) {
  if (i >= sw->mt.n) return WR_ERR_INVAL;
  member_info_at(sw, i, out);
  return 0;
}

int wr_swim_member_find(const wr_swim *sw, const char *id,
                        wr_swim_member_info *out) {
  ssize_t i = swim_members_find(&sw->mt, id);
  if (i < 0) return WR_ERR_NOTFOUND;
  member_info_at(sw, (size_t)i, out);
  return 0;
}

void wr_swim_self(const wr_swim *sw, wr_swim_member_info *out) {
  out->id = sw->cfg.id;
  out->gossip = sw->cfg.gossip;
  out->data = sw->cfg.data.family ? sw->cfg.data : sw->cfg.gossip;
  out->region = sw->cfg.region;
  out->tags = sw->cfg.tags;
  out->state = sw->leaving ? WR_SWIM_LEFT : WR_SWIM_ALIVE;
  out->incarnation = sw->inc;
  out->state_since = sw->self_since;
}

void wr_swim_get_stats(const wr_swim *sw, wr_swim_stats *out) {
  *out = sw->st;
  out->awareness = sw->awareness;
  out->incarnation = sw->inc;
  out->broadcast_queue = sw->bq.n + sw->uq.n;
  out->broadcast_queue_user = sw->uq.n;
  out->bcast_evicted_member = sw->bq.dropped;
  out->bcast_evicted_user = sw->uq.dropped;
  out->rx_badseal = sw->st.rx_badseal;
}

int wr_swim_sync_due(wr_swim *sw, wr_addr *peer, wr_tstamp now) {
  (void)now;
  if (sw->sync_now) {
    sw->sync_now = 0;
    *peer = sw->sync_peer;
    return 1;
  }
  if (sw->reconnect_now) {
    sw->reconnect_now = 0;
    *peer = sw->reconnect_peer;
    return 1;
  }
  return 0;
}

/* ---- for sync.c --------------------------------------------------------------- */

swim_members *swim_core_table(wr_swim *sw) { return &sw->mt; }

void swim_core_self_update(const wr_swim *sw, wr_swim_update *u) {
  self_update(sw, u);
}

void swim_core_member_update(const wr_swim *sw, size_t i, wr_swim_update *u) {
  swim_member_update(sw, i, NULL, u);
}

void swim_core_merge(wr_swim *sw, const wr_swim_update *u, wr_tstamp now) {
  wr_swim_update v;
  ssize_t i = swim_is_self(sw, u->id) ? -1 : swim_members_find(&sw->mt, u->id);
  if (u->kind == WR_SWIM_UPD_DEAD && !swim_is_self(sw, u->id)) {
    /* memberlist's mergeState: a peer's DEAD is only a suspicion here.
     * Its verdict may be stale or a partition's (reconnect.c); as a
     * suspicion the member hears of it (our probe carries it) and
     * refutes, and if it is really gone our own timer says so. */
    v = *u;
    v.kind = WR_SWIM_UPD_SUSPECT;
    u = &v;
  }
  /* A member we declared dead (held DEAD, or reaped and remembered)
   * coming back ALIVE is news to everyone who shared our verdict, as
   * after a partition: gossip it on.  Everything else a sync teaches is
   * not re-gossiped. */
  int news = u->kind == WR_SWIM_UPD_ALIVE && !swim_is_self(sw, u->id) &&
             (i >= 0 ? sw->mt.v[i].state == WR_SWIM_DEAD ||
                           sw->mt.v[i].state == WR_SWIM_LEFT
                     : swim_lost_has(&sw->lost, u->id));
  sw->merging = !news;
  apply_update(sw, u, now);
  sw->merging = 0;
}

void swim_core_self_digest(wr_swim *sw, uint32_t inc, uint8_t state,
                           wr_tstamp now) {
  static const uint8_t kinds[] = {
      [WR_SWIM_ALIVE] = WR_SWIM_UPD_ALIVE, [WR_SWIM_SUSPECT] = WR_SWIM_UPD_SUSPECT,
      [WR_SWIM_DEAD] = WR_SWIM_UPD_DEAD, [WR_SWIM_LEFT] = WR_SWIM_UPD_LEFT};
  if (state > WR_SWIM_LEFT || inc < sw->inc ||
      (state == WR_SWIM_ALIVE && inc == sw->inc))
    return;
  wr_swim_update u;
  self_update(sw, &u);
  u.kind = kinds[state];
  u.incarnation = inc;
  snprintf(u.from, sizeof u.from, "%s", sw->cfg.id);
  sw->merging = 1;
  apply_update(sw, &u, now);
  sw->merging = 0;
}

const wr_swim_app_sync *swim_core_app_sync(const wr_swim *sw, void **pud) {
  *pud = sw->cb.app_sync_user_data;
  return sw->cb.app_sync;
}

wr_swim_stats *swim_core_stats(wr_swim *sw) { return &sw->st; }

wr_swim_keyring *swim_core_keyring(wr_swim *sw) { return sw->kr; }
const wr_mem *swim_core_mem(const wr_swim *sw) { return sw->mem; }

void swim_core_rand(wr_swim *sw, uint8_t *dst, size_t len) {
  sw->cfg.rand(dst, len, sw->cfg.rand_user_data);
}

void swim_core_sync_result(wr_swim *sw, int ok, wr_tstamp now) {
  if (!ok) {
    sw->st.syncs_failed++;
    return;
  }
  sw->st.syncs_ok++;
  if (sw->join_announce) {
    /* The seed gossiped our ALIVE while the fleet it knew was small, so
     * its retransmit limit was low; now that we know the fleet, tell it
     * ourselves (memberlist's joiner does the same after push-pull). */
    sw->join_announce = 0;
    wr_swim_update u;
    self_update(sw, &u);
    broadcast_always(sw, &u);
    swim_push_soon(sw, now);
    /* And sync again soon, with random members, while the fleet we see
     * keeps growing: in a join storm the members that join while we do
     * are in no seed's answer yet, and their own announcements compete
     * for piggyback room with a thousand others, so gossip alone leaves
     * pairs that only the first periodic sync (half to one sync interval
     * later) would fill: 1,000 nodes joining through 3 seeds took 196 s
     * to converge (docs/BENCHMARKS.md).  The first follow-up comes one
     * epidemic's length later (the retransmit budget in gossip
     * intervals, jittered up to twice that so a storm does not sync in
     * step), the gap doubles while members keep arriving, and once a
     * gap passes without a new member we are back to periodic syncs. */
    if (sw->cfg.sync_interval_ms) {
      uint64_t l = (uint64_t)retransmit_limit(sw) * sw->cfg.gossip_interval_ms;
      sw->followup_gap = l;
      sw->followup_n = sw->mt.n;
      sw->next_sync_at = now + l + swim_rand_below(sw, l + 1);
    }
  }
}

/* A copy of the keyring opens the packet, so its failure counters (which
 * wr_swim_recv reports) see each datagram once; the copy holds the keys,
 * so it is wiped. */
int wr_swim_packet_peek(const wr_swim *sw, const uint8_t *pkt, size_t len,
                        char from[WR_SWIM_ID_MAX + 1]) {
  uint8_t plain[WR_SWIM_DATAGRAM_MAX];
  wr_swim_keyring kr = *sw->kr;
  if (from) from[0] = 0;
  wr_ssize n = len <= sizeof plain
                   ? wr_swim_open(&kr, plain, sizeof plain, pkt, len)
                   : WR_ERR_PROTO;
  sodium_memzero(&kr, sizeof kr);
  if (n < 0) return (int)n;
  /* version | type | u32 seq | u8 len | from (codec.h) */
  if (n < 7 || plain[0] != WR_SWIM_WIRE_VERSION || plain[1] == 0 ||
      plain[1] > WR_SWIM_MSG_TYPE_MAX || plain[6] > WR_SWIM_ID_MAX ||
      (size_t)n < 7u + plain[6])
    return WR_ERR_PROTO;
  if (from) {
    memcpy(from, plain + 7, plain[6]);
    from[plain[6]] = 0;
  }
  return plain[1];
}
