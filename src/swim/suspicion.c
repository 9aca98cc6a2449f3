/*
 * Suspicion (Lifeguard dynamic suspicion, Dadgar et al. 2018, section
 * IV.B; SWIM's suspicion mechanism, Das et al. 2002, section 4.2), split
 * out of swim.c: what happens between "member m is SUSPECT" and "m is
 * DEAD", apart from the merge rules themselves (swim.c, swim_apply_suspect).
 *
 *   timers         one per suspected member: from the Lifeguard maximum
 *                  down to the minimum as independent confirmations
 *                  arrive (wr_swim_suspicion_bounds has the two ends),
 *                  floored by refused_suspicion_ms once a refusal was
 *                  seen;
 *   confirmations  which accusers count (the suspect's region only, with
 *                  regions), and the confirmation probes: a member that
 *                  hears of a suspicion may probe the suspect itself,
 *                  direct and then through relays, and only silence on
 *                  every path confirms;
 *   expiry         a timer that runs out declares the member DEAD, except
 *                  that a lone accusation (or one about another region)
 *                  first asks the suspect and a few members once more
 *                  (the last chance).
 *
 * swim.c calls in here from its merge rules, ACKs, refusals, tick and
 * deadline, probe.c from a failed probe; everything here reaches the
 * rest of the core through swim_int.h.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "swim_int.h"
#include "warren/err.h"

/* ---- timers -------------------------------------------------------------- */

swim_susp *swim_susp_of(wr_swim *sw, size_t i) {
  uint32_t s = sw->mt.v[i].susp;
  return s ? &sw->susp[s - 1] : NULL;
}

void swim_susp_clear(wr_swim *sw, size_t i) {
  swim_susp *s = swim_susp_of(sw, i);
  if (s) s->used = 0;
  sw->mt.v[i].susp = 0;
}

/* memberlist's suspicion.remainingSuspicionTime: log-shaped so the first
 * confirmations count most. */
static void susp_retime(swim_susp *s) {
  uint64_t t = s->max_ms;
  if (s->k < 1) {
    t = s->min_ms;
  } else if (s->n > 0) {
    double frac = log((double)s->n + 1.0) / log((double)s->k + 1.0);
    double raw = (double)s->max_ms - frac * (double)(s->max_ms - s->min_ms);
    t = raw < (double)s->min_ms ? s->min_ms : (uint64_t)floor(raw);
  }
  /* Seen refused by us and confirmed by k others: no process to wait for
   * (refused_suspicion_ms in swim.h). */
  if (s->refused_ms && s->n >= s->k && s->refused_ms < t) t = s->refused_ms;
  s->deadline = s->start + t;
}

/* 0, or -1 when no timer could be allocated (the member is left ALIVE). */
int swim_susp_start(wr_swim *sw, size_t i, const char *accuser,
                    wr_tstamp now) {
  size_t slot = 0;
  while (slot < sw->nsusp && sw->susp[slot].used) slot++;
  if (slot == sw->nsusp) {
    size_t n = sw->nsusp ? sw->nsusp * 2 : 4;
    swim_susp *v = wr_mem_realloc(sw->mem, sw->susp, n * sizeof *v);
    if (!v) {
      /* Without a timer a suspicion could never end, and declaring the
       * member DEAD at once would kill it on one unconfirmed accusation:
       * we drop this accusation instead (the member stays ALIVE here; the
       * accuser's own timer still runs, and a later probe or gossip can
       * suspect it again once memory is back). */
      swim_members_set_state(&sw->mt, i, WR_SWIM_ALIVE,
                             sw->mt.v[i].incarnation);
      return -1;
    }
    memset(v + sw->nsusp, 0, (n - sw->nsusp) * sizeof *v);
    sw->susp = v;
    sw->nsusp = n;
  }
  swim_susp *s = &sw->susp[slot];
  memset(s, 0, sizeof *s);
  s->used = 1;
  snprintf(s->id, sizeof s->id, "%s", swim_member_id(&sw->mt.v[i]));
  size_t n = swim_fleet_n(sw);
  unsigned mult = sw->cfg.suspicion_mult;
  int remote = 0, regional = swim_regions_on(sw);
  if (regional) {
    /* The members that probe a suspect are its region's (region.c), so
     * its region's size sets how long a refutation takes to spread back
     * to them; confirmations come only from that region, so k must fit
     * in it (us counted in |rn| only when we are in it too, as the
     * "- 2" below assumes). */
    const swim_member *m = &sw->mt.v[i];
    int away = !swim_in_own_region(sw, m);
    size_t rn = swim_regions_size(&sw->rg, swim_member_region(m)) + away;
    /* A region too small to hold k confirmers besides the suspect and
     * us is judged by the whole fleet, as without regions: judged by its
     * region it would get no confirmations at all (k = 0 below), and
     * every lone accusation would end at the minimum (1 s at LAN's). */
    if (sw->cfg.lifeguard &&
        (rn < 2 || rn - 2 < sw->cfg.suspicion_confirmations))
      regional = 0;
    else {
      n = rn;
      remote = away && sw->cfg.lifeguard;
      /* Regions may shorten the suspicion (a region is smaller and
       * nearer than the fleet), never lengthen what the profile asks for
       * (LAN's minimum is already log10 n, docs/SWIM.md). */
      if (sw->cfg.region_suspicion_mult &&
          sw->cfg.region_suspicion_mult < mult)
        mult = sw->cfg.region_suspicion_mult;
    }
  }
  s->regional = regional;
  wr_swim_suspicion_bounds(&sw->cfg, mult, n, &s->min_ms, &s->max_ms);
  s->k = 0;
  if (sw->cfg.lifeguard) {
    /* Confirmations can only come from members other than the suspect
     * and us. */
    s->k = sw->cfg.suspicion_confirmations;
    if (n < 2 || n - 2 < s->k) s->k = 0;
  }
  if (remote) {
    /* A suspicion belongs to the suspect's region: its members probe
     * it, confirm it and declare it dead, and their verdict reaches us
     * by gossip, usually well before our own timer ends.  Our timer for
     * a member of another region is the backstop for a verdict we
     * missed, or for a region that cannot tell us (cut off, or gone),
     * and it ends with a last-chance hello to the suspect (wr_swim_tick)
     * whatever the confirmations: news crosses regions a few packets a
     * round, so a refutation can cross late.  At 3 x 30 members and
     * 30 % loss, timers without it declared 3 healthy members dead, each
     * from another region; with it, as many as the region-blind core
     * (1-3 a run); a floor of twice the minimum cut that to 0-1 but let
     * a member that missed the verdict wait 12 s (docs/BENCHMARKS.md,
     * "Regions"). */
    s->remote = 1;
  }
  s->start = now;
  s->confirmers[0] = swim_id_hash(accuser);
  s->n = 0;
  susp_retime(s);
  sw->mt.v[i].susp = (uint32_t)slot + 1;
  return 0;
}

/* Returns 1 when the member whose id hashes to |h| is a new independent
 * confirmer. */
int swim_susp_confirm_hash(swim_susp *s, uint32_t h) {
  if (s->n >= s->k) return 0;
  for (unsigned j = 0; j <= s->n && j < SWIM_CONFIRM_MAX; j++)
    if (s->confirmers[j] == h) return 0;
  s->n++;
  if (s->n < SWIM_CONFIRM_MAX) s->confirmers[s->n] = h;
  susp_retime(s);
  return 1;
}

int swim_susp_confirm(swim_susp *s, const char *from) {
  return swim_susp_confirm_hash(s, swim_id_hash(from));
}

/* We saw member |i|'s port refused (ourselves or through a relay). */
void swim_susp_refused(wr_swim *sw, size_t i) {
  swim_susp *s = swim_susp_of(sw, i);
  if (!s || !sw->cfg.refused_suspicion_ms || s->refused_ms) return;
  s->refused_ms = swim_scaled(sw, sw->cfg.refused_suspicion_ms);
  susp_retime(s);
}

/* ---- confirmations ------------------------------------------------------- */

/* 1 when |from|'s confirmation of member |i|'s suspicion counts: always
 * without regions, else when |from| is in |i|'s region. */
int swim_confirmer_ok(wr_swim *sw, size_t i, const char *from) {
  const swim_susp *s = swim_susp_of(sw, i);
  if (!swim_regions_on(sw) || (s && !s->regional)) return 1;
  const char *rf = swim_region_of_id(sw, from);
  return rf && strcmp(rf, swim_member_region(&sw->mt.v[i])) == 0;
}

/* We just heard that member |i| is suspected by someone else: check it
 * ourselves now rather than when the round-robin reaches it.
 *
 * Not everyone who hears it: a suspicion reaches the whole fleet within
 * a few gossip intervals (about a second at 10,000 members), and the
 * first confirmations come back only after a probe interval, so "probe
 * while it still lacks k confirmations" made nearly every member probe:
 * one suspicion drew thousands of pings at one member at 10,000 nodes
 * (docs/BENCHMARKS.md), hardest on a slow member falsely accused.  Each
 * member that hears it probes with probability want / (n - 2), want =
 * k + push_fanout, so the fleet sends about want confirmation probes per
 * suspicion whatever n is (at least k of them with 96 % probability; the
 * suspect's ordinary round-robin probes, about one a second, confirm too
 * when they fail). */
void swim_confirm_probe(wr_swim *sw, size_t i, wr_tstamp now) {
  swim_susp *s = swim_susp_of(sw, i);
  if (!sw->cfg.lifeguard || !s || s->n >= s->k || sw->leaving) return;
  size_t others = swim_fleet_n(sw) - 2; /* neither us nor the suspect */
  if (swim_regions_on(sw) && s->regional) {
    /* Only the suspect's region confirms (confirmer_ok), so only its
     * members probe, in the same number per suspicion. */
    const swim_member *sm = &sw->mt.v[i];
    if (!swim_in_own_region(sw, sm)) return;
    size_t m = swim_regions_size(&sw->rg, sw->cfg.region);
    others = m > 2 ? m - 2 : 0;
  }
  size_t want = (size_t)s->k + sw->cfg.push_fanout;
  if (others > want && swim_rand_below(sw, others) >= want) return;
  unsigned cap = WR_MIN(sw->cfg.confirm_probes, SWIM_CONFIRM_PROBES_MAX);
  swim_confirm *c = NULL;
  for (unsigned j = 0; j < cap && !c; j++)
    if (!sw->confirms[j].used) c = &sw->confirms[j];
  if (!c) return;
  const swim_member *m = &sw->mt.v[i];
  swim_out *o = swim_out_push(sw, WR_SWIM_PING, &m->gossip);
  if (!o) return;
  c->used = 1;
  sw->nconfirms++;
  c->indirect_sent = 0;
  c->addr = m->gossip;
  c->seq = o->seq = ++sw->seq;
  c->inc = m->incarnation;
  snprintf(c->id, sizeof c->id, "%s", swim_member_id(m));
  snprintf(o->target, sizeof o->target, "%s", c->id);
  /* The buddy system rides along: the suspect learns it is suspected. */
  o->extra |= EXTRA_ABOUT;
  snprintf(o->about, sizeof o->about, "%s", c->id);
  /* As strong as a normal probe: silence for the probe timeout asks the
   * indirect_checks relays (swim_confirm_tick), and only silence on every path
   * for the whole probe interval confirms.  A direct ping alone fails
   * about half the time at 30 % loss, and each such failure was counted
   * as an independent witness against a healthy member.  Both stretched
   * by our own awareness. */
  c->timeout_at = now + swim_scaled(sw, sw->cfg.probe_timeout_ms);
  c->deadline = now + swim_scaled(sw, sw->cfg.probe_interval_ms);
  sw->st.probes++;
  sw->st.confirm_probes++;
}

/* A lone suspicion of member |i| reached its maximum: besides asking
 * the suspect (the hello PING), show our entry (SUSPECT at the
 * incarnation we hold) to indirect_checks distinct random members.  One
 * that holds a newer entry (the suspect refuted and we missed it) answers
 * us directly with it (correct_stale); one that holds the same suspicion
 * or none just learns of it, as from any gossip.  At 30 % loss the hello
 * alone fails half the time (two datagrams), and that was how the false
 * deaths left at 2,000 members happened: one member missed a refutation
 * the rest of the fleet had, for a minute, and its lone verdict then
 * spread (docs/BENCHMARKS.md, "Silent failures").  16 askers fail all
 * together with probability 0.51^16 = 2e-5.  The cost is 16 datagrams
 * per lone suspicion that runs its course, which a real failure never
 * does (it gathers its confirmations). */
static void ask_fleet(wr_swim *sw, size_t i) {
  size_t n = sw->mt.n, picked[SWIM_INDIRECT_MAX];
  unsigned want = WR_MIN(sw->cfg.indirect_checks, SWIM_INDIRECT_MAX), sent = 0;
  const char *id = swim_member_id(&sw->mt.v[i]);
  for (unsigned tries = 0; sent < want && n && tries < 3 * want + 3; tries++) {
    size_t r = swim_rand_below(sw, n), j = 0;
    while (j < sent && picked[j] != r) j++;
    const swim_member *m = &sw->mt.v[r];
    if (j < sent || r == i || m->state != WR_SWIM_ALIVE) continue;
    swim_out *o = swim_out_push(sw, WR_SWIM_GOSSIP, &m->gossip);
    if (!o) break;
    o->extra |= EXTRA_ABOUT;
    snprintf(o->about, sizeof o->about, "%s", id);
    picked[sent++] = r;
  }
}

/* Our confirmation probe |c| went unanswered (or was refused): we
 * confirm the suspicion, as one more independent witness. */
static void confirm_failed(wr_swim *sw, swim_confirm *c, int refused,
                           wr_tstamp now) {
  c->used = 0;
  sw->nconfirms--;
  ssize_t i = swim_members_find(&sw->mt, c->id);
  if (i < 0 || sw->mt.v[i].state != WR_SWIM_SUSPECT ||
      sw->mt.v[i].incarnation != c->inc)
    return;
  wr_swim_update u;
  swim_member_update(sw, (size_t)i, sw->cfg.id, &u); /* SUSPECT from us */
  swim_apply_suspect(sw, &u, now);
  if (refused) swim_susp_refused(sw, (size_t)i);
}

/* Our confirmation probes: relays after the probe timeout, a confirmation
 * at the end of the probe interval. */
void swim_confirm_tick(wr_swim *sw, wr_tstamp now) {
  for (size_t j = 0; sw->nconfirms && j < SWIM_CONFIRM_PROBES_MAX; j++) {
    swim_confirm *c = &sw->confirms[j];
    if (!c->used) continue;
    if (!c->indirect_sent && now >= c->timeout_at) {
      /* Relays answer under our seq: their ACK ends the confirmation
       * probe like a direct one (handle_ack); their NACKs say nothing
       * about the suspect and are ignored. */
      swim_ping_reqs(sw, c->id, &c->addr, c->seq, NULL);
      c->indirect_sent = 1;
    }
    if (now >= c->deadline) confirm_failed(sw, c, 0, now);
  }
}

/* An ACK (or, |nack|, a NACK) under |seq|: 1 when it answers one of our
 * confirmation probes, which then ends without confirming (a NACK says
 * nothing the probe's own deadline will not, and is only consumed). */
int swim_confirm_ack(wr_swim *sw, uint32_t seq, int nack) {
  for (size_t j = 0; sw->nconfirms && j < SWIM_CONFIRM_PROBES_MAX; j++)
    if (sw->confirms[j].used && sw->confirms[j].seq == seq) {
      if (!nack) {
        sw->confirms[j].used = 0; /* it answered us: no confirmation */
        sw->nconfirms--;
      }
      return 1;
    }
  return 0;
}

/* ---- expiry, refusals, deadline ------------------------------------------ */

/* Suspicions whose timer ran out: the last chance, or DEAD. */
void swim_susp_tick(wr_swim *sw, wr_tstamp now) {
  for (size_t j = 0; j < sw->nsusp; j++) {
    swim_susp *s = &sw->susp[j];
    if (!s->used || s->deadline > now) continue;
    ssize_t i = swim_members_find(&sw->mt, s->id);
    if (i >= 0 && sw->mt.v[i].state == WR_SWIM_SUSPECT &&
        ((s->k && !s->n) || s->remote) && !s->asked && !sw->leaving) {
      /* Nobody confirmed it in all this time (the Lifeguard maximum): a
       * lone accusation, and the accused may well have refuted it long
       * ago without the news reaching us (an epidemic misses a member now
       * and then).  Before declaring it dead, ask it once who it is: an
       * empty-target PING, whose ACK carries its current ALIVE (as for a
       * stranger, handle_ping), and give it one more probe interval.  A
       * real failure gathers its k confirmations and never gets here, so
       * this costs nothing per death; at 30 % loss it removed most of the
       * single-node false verdicts left (docs/BENCHMARKS.md).  A
       * suspicion of a member of another region (regions on) gets the
       * same question even when confirmed: its region's verdict should
       * have reached us by now, and if it did not, we may have missed
       * the refutation too (susp_start). */
      swim_out *h = swim_out_push(sw, WR_SWIM_PING, &sw->mt.v[i].gossip);
      if (h) {
        h->seq = ++sw->seq;
        sw->hello_seq[sw->hello_next++ % WR_ARRAY_LEN(sw->hello_seq)] = h->seq;
      }
      ask_fleet(sw, (size_t)i);
      s->asked = 1;
      s->deadline = now + swim_scaled(sw, sw->cfg.probe_interval_ms);
      sw->st.last_chance_probes++;
      continue;
    }
    s->used = 0;
    if (i < 0 || sw->mt.v[i].state != WR_SWIM_SUSPECT) continue;
    sw->mt.v[i].susp = 0;
    wr_swim_update u;
    swim_member_update(sw, (size_t)i, sw->cfg.id, &u);
    u.kind = WR_SWIM_UPD_DEAD;
    swim_apply_dead(sw, &u, now, 0);
    swim_push_soon(sw, now);
  }
}

/* A datagram of ours to |to| was refused: a confirmation probe of that
 * address confirms at once, and a suspicion of it gets the refused
 * floor. */
void swim_susp_unreachable(wr_swim *sw, const wr_addr *to, wr_tstamp now) {
  for (size_t j = 0; j < SWIM_CONFIRM_PROBES_MAX; j++) {
    swim_confirm *c = &sw->confirms[j];
    if (!c->used) continue;
    ssize_t i = swim_members_find(&sw->mt, c->id);
    if (i >= 0 && wr_addr_eq(&sw->mt.v[i].gossip, to))
      confirm_failed(sw, c, 1, now);
  }
  /* Any datagram to a suspect (gossip, buddy probes) is a witness too. */
  for (size_t j = 0; j < sw->nsusp; j++) {
    if (!sw->susp[j].used || sw->susp[j].refused_ms) continue;
    ssize_t i = swim_members_find(&sw->mt, sw->susp[j].id);
    if (i >= 0 && wr_addr_eq(&sw->mt.v[i].gossip, to))
      swim_susp_refused(sw, (size_t)i);
  }
}

/* The earliest timer of the suspicions and the confirmation probes, or
 * WR_TSTAMP_NONE. */
wr_tstamp swim_susp_deadline(const wr_swim *sw) {
  wr_tstamp t = WR_TSTAMP_NONE;
#define AT(x) \
  do {      \
    if ((x) < t) t = (x); \
  } while (0)
  for (size_t j = 0; j < sw->nsusp; j++)
    if (sw->susp[j].used) AT(sw->susp[j].deadline);
  for (size_t j = 0; sw->nconfirms && j < SWIM_CONFIRM_PROBES_MAX; j++) {
    const swim_confirm *c = &sw->confirms[j];
    if (!c->used) continue;
    if (!c->indirect_sent) AT(c->timeout_at);
    AT(c->deadline);
  }
#undef AT
  return t;
}
