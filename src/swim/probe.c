/*
 * Probing (SWIM, Das et al. 2002, section 4.1; Lifeguard's NACKs and
 * local health, Dadgar et al. 2018, section IV.A), split out of swim.c:
 * one probe in flight at a time.
 *
 *   start     once a probe interval (stretched by awareness), PING the
 *             next member of a shuffled round-robin order (reshuffled
 *             each round), of our own region with regions on; one probe
 *             in region_cross_probe goes to another region instead;
 *   indirect  no ACK within the probe timeout: PING_REQ to
 *             indirect_checks relays (of the target's region first);
 *   failed    no ACK by the end of the round: awareness rises by the
 *             missing NACKs (scaled to 3 relays), the target becomes
 *             SUSPECT (told at once, the buddy system), or, for a cross
 *             probe nobody of the target's region answered, the region
 *             is marked silent instead;
 *   refused   a probe whose port was refused ends as soon as every relay
 *             reported a refusal too.
 *
 * The ACKs and NACKs themselves arrive through swim.c (handle_ack), which
 * ends the probe or counts the NACK and calls back in here.
 */
#include <stdio.h>
#include <string.h>

#include "swim_int.h"
#include "warren/err.h"

static void shuffle(wr_swim *sw) {
  if (sw->mt.n > 1) swim_members_shuffle(&sw->mt, swim_below_cb, sw);
}

/* Sends the probe of member |i|.  1, or 0 when the outbox is full. */
static int probe_send(wr_swim *sw, size_t i, wr_tstamp now) {
  swim_member *m = &sw->mt.v[i];
  swim_out *o = swim_out_push(sw, WR_SWIM_PING, &m->gossip);
  if (!o) return 0;
  memset(&sw->probe, 0, sizeof sw->probe);
  sw->probe.active = 1;
  sw->probe.seq = o->seq = ++sw->seq;
  snprintf(o->target, sizeof o->target, "%s", swim_member_id(m));
  snprintf(sw->probe.target, sizeof sw->probe.target, "%s", o->target);
  sw->probe.inc = m->incarnation;
  sw->probe.addr = m->gossip;
  sw->probe.timeout_at = now + swim_scaled(sw, sw->cfg.probe_timeout_ms);
  sw->probe.end_at = now + swim_scaled(sw, sw->cfg.probe_interval_ms);
  /* Lifeguard buddy system: tell a suspect it is suspected, so it can
   * refute at once instead of waiting for the gossip to reach it. */
  if (sw->cfg.lifeguard && m->state == WR_SWIM_SUSPECT) {
    o->extra |= EXTRA_ABOUT;
    snprintf(o->about, sizeof o->about, "%s", o->target);
  }
  sw->st.probes++;
  return 1;
}

/* One probe in region_cross_probe goes to a random live member of
 * another region (region.c): the round-robin order covers only our own
 * region, and these are what notice a region that vanished as a whole. */
static int probe_cross(wr_swim *sw, wr_tstamp now) {
  ssize_t i = swim_regions_pick(&sw->mt, sw->cfg.region, 0, 1, NULL, 16,
                                swim_below_cb, sw);
  if (i < 0 || !probe_send(sw, (size_t)i, now)) return 0;
  sw->probe.cross = 1;
  /* Its relays get the PING_REQ one WAN hop late and NACK at 80 % of
   * their own probe timeout, which puts the NACKs about 1.8 timeouts
   * plus a WAN round trip after our PING, past the end of an ordinary
   * round: a cross probe gets one more probe timeout (WAN round trips
   * up to 2 x 300 ms), or every failure would look like a silent
   * region. */
  sw->probe.end_at += swim_scaled(sw, sw->cfg.probe_timeout_ms);
  sw->st.cross_probes++;
  return 1;
}

void swim_probe_start(wr_swim *sw, wr_tstamp now) {
  int regions = swim_regions_on(sw);
  if (regions && sw->cfg.region_cross_probe &&
      ++sw->rg.probes % sw->cfg.region_cross_probe == 0 &&
      probe_cross(sw, now))
    return;
  for (size_t tries = 0; tries <= sw->mt.n; tries++) {
    if (sw->probe_pos >= sw->mt.n) {
      shuffle(sw);
      sw->probe_pos = 0;
      /* Once a round: the sizes that scale suspicion timeouts. */
      if (regions) swim_regions_census(&sw->rg, &sw->mt, sw->cfg.region);
    }
    if (!sw->mt.n) return;
    size_t i = sw->probe_pos++;
    swim_member *m = &sw->mt.v[i];
    if (m->state == WR_SWIM_DEAD || m->state == WR_SWIM_LEFT) continue;
    /* With regions the order walks the whole table but probes only our
     * region: about R positions a probe for R equal regions. */
    if (regions && !swim_in_own_region(sw, m)) continue;
    probe_send(sw, i, now);
    return;
  }
  /* Nobody of our region left to probe (we are its only live member):
   * the other regions are all there is. */
  if (regions) probe_cross(sw, now);
}

/* Asks up to indirect_checks distinct alive members to ping |target| at
 * |addr| for us, under our probe's |seq|: a relay asked twice is one
 * path, not two.  Returns how many were asked. */
static unsigned ping_reqs_in(wr_swim *sw, const char *target,
                             const wr_addr *addr, uint32_t seq,
                             const char *region, size_t *picked,
                             unsigned sent);

/* With regions on, relays come from the target's region: they reach it
 * over a LAN, a relay's NACK then says that region is reachable, and
 * silence from all of them that it is not (region_probe_silent).  A
 * region too small to provide them (the target alone) gets relays from
 * anywhere.  |*in_region| counts the relays of the target's region. */
unsigned swim_ping_reqs(wr_swim *sw, const char *target, const wr_addr *addr,
                        uint32_t seq, unsigned *in_region) {
  size_t picked[SWIM_INDIRECT_MAX];
  unsigned sent = 0;
  ssize_t t;
  if (in_region) *in_region = 0;
  if (swim_regions_on(sw) && (t = swim_members_find(&sw->mt, target)) >= 0) {
    sent = ping_reqs_in(sw, target, addr, seq,
                        swim_member_region(&sw->mt.v[t]), picked, 0);
    if (in_region) *in_region = sent;
  }
  return ping_reqs_in(sw, target, addr, seq, NULL, picked, sent);
}

/* ping_reqs' draws: relays of |region| (NULL: any), distinct from the
 * |sent| already in |picked|.  Returns the new total. */
static unsigned ping_reqs_in(wr_swim *sw, const char *target,
                             const wr_addr *addr, uint32_t seq,
                             const char *region, size_t *picked,
                             unsigned sent) {
  size_t n = sw->mt.n;
  unsigned want = WR_MIN(sw->cfg.indirect_checks, SWIM_INDIRECT_MAX),
           first = sent;
  /* In a region of a third of the fleet a draw hits it a third of the
   * time: three times the draws. */
  unsigned tries_max = region ? 9 * want + 9 : 3 * want + 3;
  for (unsigned tries = 0; sent < want && n && tries < tries_max; tries++) {
    size_t i = swim_rand_below(sw, n), j = 0;
    while (j < sent && picked[j] != i) j++;
    const swim_member *m = &sw->mt.v[i];
    if (j < sent || m->state != WR_SWIM_ALIVE ||
        strcmp(swim_member_id(m), target) == 0)
      continue;
    if (region && strcmp(swim_member_region(m), region) != 0) continue;
    swim_out *o = swim_out_push(sw, WR_SWIM_PING_REQ, &m->gossip);
    if (!o) break;
    picked[sent] = i;
    o->seq = seq;
    snprintf(o->target, sizeof o->target, "%s", target);
    o->target_addr = *addr;
    sent++;
  }
  sw->st.indirect_probes += sent - first;
  return sent;
}

void swim_probe_indirect(wr_swim *sw) {
  unsigned sent = swim_ping_reqs(sw, sw->probe.target, &sw->probe.addr,
                            sw->probe.seq, &sw->probe.region_relays);
  sw->probe.indirect_sent = 1;
  sw->probe.nacks_expected = sw->cfg.lifeguard ? sent : 0;
}

/* Our cross-region probe failed: was it the member or its region?  When
 * every relay was of the target's region and none of them answered (no
 * NACK: Lifeguard relays always send one), and the target's port was
 * not refused either, nobody of that region reached us: the region is
 * silent (a WAN cut, or the region gone).  Relays from elsewhere (the
 * region had fewer than indirect_checks to offer) may well answer: their
 * NACKs say nothing about the target's region.  Suspecting the member would
 * have every member of every other region accuse that region's members
 * one by one, about (fleet - region) / region_cross_probe suspicions a
 * second, each gossiped to the whole fleet.  Instead the region is
 * marked silent, and the probe ends without a suspicion and without the
 * Lifeguard penalty (the fault is the path, not us), until the region
 * has been silent for region_down_ms: then its members are suspected as
 * usual, since a region that is really gone must be declared dead.
 * Returns 1 when the failure was put down to the region. */
static int region_probe_silent(wr_swim *sw, wr_tstamp now) {
  if (!sw->probe.cross || !sw->cfg.lifeguard || sw->probe.refused ||
      !sw->probe.region_relays || sw->probe.region_nacks)
    return 0;
  const char *rname = swim_region_of_id(sw, sw->probe.target);
  swim_region *g = rname ? swim_regions_find(&sw->rg, rname) : NULL;
  if (!g) return 0;
  if (!g->silent_since) g->silent_since = now;
  if (now - g->silent_since >= sw->cfg.region_down_ms) return 0;
  sw->probe.active = 0;
  sw->st.probe_failures++;
  sw->st.region_silent_probes++;
  return 1;
}

/* We suspect member |i| of another region: only its region's members
 * confirm (confirmer_ok) and run confirmation probes, and our own
 * pushes and gossip cross regions only region_cross_gossip at a time,
 * so the news would reach them a few gossip rounds late.  Send it
 * straight to push_fanout members of its region: bounded, one datagram
 * each per suspicion we raise across. */
static void region_push(wr_swim *sw, size_t i) {
  const char *rname = swim_member_region(&sw->mt.v[i]);
  const char *id = swim_member_id(&sw->mt.v[i]);
  for (unsigned c = 0; c < sw->cfg.push_fanout; c++) {
    ssize_t j =
        swim_regions_pick(&sw->mt, rname, 1, 0, id, 16, swim_below_cb, sw);
    if (j < 0) break;
    swim_out *o = swim_out_push(sw, WR_SWIM_GOSSIP, &sw->mt.v[j].gossip);
    if (!o) break;
    o->extra |= EXTRA_ABOUT;
    snprintf(o->about, sizeof o->about, "%s", id);
  }
}

/* An answer to our cross probe from |from|: an ACK (direct or relayed)
 * says the target's region is reachable; a NACK only when its relay is
 * of that region. */
void swim_region_heard(wr_swim *sw, const char *from, int nack) {
  const char *rname = swim_region_of_id(sw, sw->probe.target);
  const char *rfrom = swim_region_of_id(sw, from);
  if (!rname || (nack && (!rfrom || strcmp(rfrom, rname) != 0))) return;
  if (nack) sw->probe.region_nacks++;
  swim_region *g = swim_regions_find(&sw->rg, rname);
  if (g) g->silent_since = 0;
}

void swim_probe_failed(wr_swim *sw, wr_tstamp now) {
  if (region_probe_silent(sw, now)) return;
  sw->probe.active = 0;
  sw->st.probe_failures++;
  /* Lifeguard: missing nacks mean the fault may be ours, not theirs.
   * memberlist adds one per missing nack with its 3 relays; we ask more
   * relays (config.c), so beyond 3 the share missing is scaled to 3: the
   * penalty for losing every nack stays 3, not k, which with 16 relays
   * pinned awareness at its maximum under loss and slowed detection
   * 2.5x.  Up to 3 relays it is memberlist's one per missing nack. */
  if (sw->probe.nacks_expected) {
    unsigned exp = sw->probe.nacks_expected,
             miss = exp - WR_MIN(sw->probe.nacks, exp),
             scale = WR_MIN(exp, 3u);
    swim_awareness_add(sw, (int)((miss * scale + exp - 1) / exp));
  } else {
    swim_awareness_add(sw, 1);
  }
  ssize_t i = swim_members_find(&sw->mt, sw->probe.target);
  if (i < 0) return;
  swim_member *m = &sw->mt.v[i];
  /* A suspect we failed to reach gets our independent confirmation
   * (which shortens its timer everywhere), as memberlist does. */
  if ((m->state != WR_SWIM_ALIVE && m->state != WR_SWIM_SUSPECT) ||
      m->incarnation != sw->probe.inc)
    return;
  int fresh = m->state == WR_SWIM_ALIVE;
  wr_swim_update u;
  swim_member_update(sw, (size_t)i, sw->cfg.id, &u);
  u.kind = WR_SWIM_UPD_SUSPECT;
  swim_apply_suspect(sw, &u, now);
  if (fresh) {
    /* Tell the suspect first (the buddy system, from the accuser): a live
     * member refutes before the suspicion has spread, so its refutation
     * overtakes the news instead of chasing it through the whole fleet.
     * Until confirmation probes were bounded, the fleet's own probes told
     * it; with about k + fan-out of them, at 30 % loss a healthy member
     * often heard of it only by gossip, every suspicion reached every
     * member, and the news outran the piggyback capacity (1,000 nodes:
     * 68 false deaths instead of 2; docs/BENCHMARKS.md). */
    swim_out *o = swim_out_push(sw, WR_SWIM_GOSSIP, &sw->probe.addr);
    if (o) {
      o->extra |= EXTRA_ABOUT;
      snprintf(o->about, sizeof o->about, "%s", sw->probe.target);
    }
    if (sw->probe.cross) region_push(sw, (size_t)i);
  }
  swim_susp *s;
  if ((sw->probe.refused || sw->probe.nrefused) &&
      sw->cfg.refused_suspicion_ms &&
      (i = swim_members_find(&sw->mt, sw->probe.target)) >= 0 &&
      (s = swim_susp_of(sw, (size_t)i)) != NULL) {
    /* Relays that saw the port refused witnessed it themselves. */
    for (unsigned j = 0; j < sw->probe.nrefused; j++)
      swim_susp_confirm_hash(s, sw->probe.refused_by[j]);
    swim_susp_refused(sw, (size_t)i);
  }
  swim_push_soon(sw, now);
}

/* A refused probe needs no timeout: it fails as soon as every relay has
 * reported a refusal too (with no relays, at once).  A relay that answers
 * a plain NACK, or none, leaves the probe to its normal end. */
void swim_probe_check_refused(wr_swim *sw, wr_tstamp now) {
  if (sw->probe.active && sw->probe.refused && sw->probe.indirect_sent &&
      sw->probe.nrefused >= sw->probe.nacks_expected)
    swim_probe_failed(sw, now);
}
