/*
 * The producer of a sync session's outgoing messages (sync.c has the
 * stream format, the exchange and the input side).  A message is a list
 * of phases (the table at the top of sync.c), each writing entries of one
 * kind into frames built in the shared plaintext scratch (s->pt) and
 * sealed into s->out: the bucket summary (M1), D and our digest of it
 * (M2), the states the peer lacks (M3, M4), and the application's records,
 * pulled frame by frame while less than SYNC_OUT_BOUND bytes wait.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sync_int.h"
#include "warren/buf.h"
#include "warren/err.h"

static int out_reserve(wr_swim_sync *s, size_t more) {
  if (s->out_off && s->out_off == s->out_len) s->out_off = s->out_len = 0;
  if (s->out_len + more <= s->out_cap) return 0;
  if (s->out_off) {
    /* Written bytes are dropped before growing: with output produced as
     * the socket drains, the buffer would otherwise grow by everything
     * ever sent whenever the adapter consumes in pieces. */
    memmove(s->out, s->out + s->out_off, s->out_len - s->out_off);
    s->out_len -= s->out_off;
    s->out_off = 0;
    if (s->out_len + more <= s->out_cap) return 0;
  }
  size_t cap = s->out_cap ? s->out_cap : 4096;
  while (cap < s->out_len + more) cap *= 2;
  uint8_t *p = wr_mem_realloc(s->mem, s->out, cap);
  if (!p) return WR_ERR_NOMEM;
  s->out = p;
  s->out_cap = cap;
  return 0;
}

static int frame_flush(wr_swim_sync *s, int last) {
  s->pt[0] = SYNC_VERSION;
  s->pt[1] = s->type;
  s->pt[2] = (uint8_t)last;
  wr_put_u32(s->pt + 3, s->count);
  size_t sealed = s->pt_len + WR_SWIM_SEAL_OVERHEAD;
  int rv = out_reserve(s, 4 + sealed);
  if (rv) return rv;
  uint8_t nonce[24];
  swim_core_rand(s->sw, nonce, sizeof nonce);
  wr_ssize n = wr_swim_seal(swim_core_keyring(s->sw), s->out + s->out_len + 4,
                            sealed, s->pt, s->pt_len, nonce);
  if (n < 0) return (int)n;
  wr_put_u32(s->out + s->out_len, (uint32_t)n);
  s->out_len += 4 + (size_t)n;
  s->pt_len = SYNC_HDR;
  s->count = 0;
  return 0;
}

/* Entries of |type| follow: the frame at hand is closed first when it
 * holds entries of another type (a frame carries one type), and an empty
 * one is simply retyped, since only a message's last frame is ever sent
 * empty. */
static int frame_type(wr_swim_sync *s, uint8_t type) {
  if (s->type == type) return 0;
  if (s->count) {
    int rv = frame_flush(s, 0);
    if (rv) return rv;
  }
  s->type = type;
  s->count = 0;
  s->pt_len = SYNC_HDR;
  return 0;
}

/* Starts writing a message of |n| phases. */
void swim_sync_msg_plan(wr_swim_sync *s, int p0, int p1, int p2) {
  int v[SYNC_PHASES_MAX] = {p0, p1, p2};
  s->nplan = 0;
  for (int k = 0; k < SYNC_PHASES_MAX; k++)
    if (v[k] != P_IDLE) s->plan[s->nplan++] = v[k];
  s->iplan = 0;
  s->type = 0;
  s->count = 0;
  s->pt_len = SYNC_HDR;
}

int swim_sync_phase_now(const wr_swim_sync *s) {
  return s->iplan < s->nplan ? s->plan[s->iplan] : P_IDLE;
}

/* The running phase wrote everything: on to the next one, or the
 * message ends with its last frame (sent even when empty). */
static int phase_done(wr_swim_sync *s) {
  if (++s->iplan < s->nplan) return 0;
  s->nplan = s->iplan = 0;
  return frame_flush(s, 1);
}

/* Appends one encoded entry, starting a new frame when this one is full. */
static int msg_add(wr_swim_sync *s, const uint8_t *e, size_t len) {
  if (s->pt_len + len > SYNC_PT_MAX) {
    int rv = frame_flush(s, 0);
    if (rv) return rv;
  }
  memcpy(s->pt + s->pt_len, e, len);
  s->pt_len += len;
  s->count++;
  return 0;
}

/* ---- the bucket summary ---- */

/* Our bucket hashes at level |s->nb| XORed into |out|: the table's, and
 * our own entry, which the table does not hold. */
void swim_sync_xor_ours(wr_swim_sync *s, uint64_t *out) {
  wr_swim_update self;
  swim_core_self_update(s->sw, &self);
  swim_digest_xor(swim_core_table(s->sw), out, s->nb, 0);
  uint64_t idh = swim_digest_idhash(self.id);
  out[idh & (s->nb - 1)] ^=
      swim_digest_entry(idh, self.incarnation, swim_sync_self_state(&self));
}

int swim_sync_alloc_diff(wr_swim_sync *s) {
  s->diff = wr_mem_calloc(s->mem, (s->nb + 7) / 8, 1);
  return s->diff ? 0 : WR_ERR_NOMEM;
}

/* M1: B from our view of the fleet, then one hash per bucket. */
static int send_summary(wr_swim_sync *s) {
  size_t n = swim_core_table(s->sw)->n + 1, nb = 1;
  while (nb * 2 * SYNC_PER_BUCKET <= n && nb * 2 <= SYNC_BUCKETS_MAX) nb *= 2;
  s->nb = (uint32_t)nb;
  uint64_t *h = wr_mem_calloc(s->mem, nb, sizeof *h);
  if (!h || swim_sync_alloc_diff(s) != 0) {
    wr_mem_free(s->mem, h);
    return WR_ERR_NOMEM;
  }
  swim_sync_xor_ours(s, h);
  int rv = frame_type(s, SYNC_SUMMARY);
  for (size_t b = 0; rv == 0 && b < nb; b++) {
    uint8_t e[8];
    wr_put_u32(e, (uint32_t)(h[b] >> 32));
    wr_put_u32(e + 4, (uint32_t)h[b]);
    rv = msg_add(s, e, sizeof e);
  }
  wr_mem_free(s->mem, h);
  return rv ? rv : phase_done(s);
}

/* ---- member digests and states of D ---- */

static int add_digest(wr_swim_sync *s, const char *id, uint32_t inc,
                      uint8_t state) {
  uint8_t e[1 + WR_SWIM_ID_MAX + 5];
  size_t n = strlen(id);
  e[0] = (uint8_t)n;
  memcpy(e + 1, id, n);
  wr_put_u32(e + 1 + n, inc);
  e[5 + n] = state;
  return msg_add(s, e, n + 6);
}

/* DIGEST: our entries (self included) in the buckets of D. */
static int send_digest(wr_swim_sync *s) {
  swim_members *t = swim_core_table(s->sw);
  wr_swim_update self;
  int rv;
  if ((rv = frame_type(s, SYNC_DIGEST)) != 0) return rv;
  if (!s->ndiff) return 0;
  swim_core_self_update(s->sw, &self);
  if (swim_sync_in_diff(s, swim_digest_idhash(self.id)) &&
      (rv = add_digest(s, self.id, self.incarnation,
                       swim_sync_self_state(&self))) != 0)
    return rv;
  for (size_t i = 0; i < t->n; i++) {
    const swim_member *m = &t->v[i];
    const char *id = swim_member_id(m);
    if (!swim_sync_in_diff(s, swim_digest_idhash(id))) continue;
    if ((rv = add_digest(s, id, m->incarnation, m->state)) != 0) return rv;
  }
  return 0;
}

/* M2's member part: D, then our digest of it. */
static int send_diff(wr_swim_sync *s) {
  int rv = frame_type(s, SYNC_BUCKETS);
  for (uint32_t b = 0; rv == 0 && b < s->nb; b++) {
    if (!(s->diff[b >> 3] >> (b & 7) & 1)) continue;
    uint8_t e[4];
    wr_put_u32(e, b);
    rv = msg_add(s, e, sizeof e);
  }
  if (rv == 0) rv = send_digest(s);
  return rv ? rv : phase_done(s);
}

static int cmp_ent(const void *a, const void *b) {
  return strcmp(((const digest_ent *)a)->id, ((const digest_ent *)b)->id);
}

/* Does our (inc, state) say more than the peer's digest?  States rank as
 * the merge rules order them: alive < suspect < dead < left.  A member
 * the peer lacks is worth sending while it is alive or suspect (a verdict
 * about a member it never knew teaches it nothing). */
static int newer(const digest_ent *peer, uint32_t inc, uint8_t state) {
  if (!peer) return state == WR_SWIM_ALIVE || state == WR_SWIM_SUSPECT;
  return inc > peer->inc || (inc == peer->inc && state > peer->state);
}

static int add_state(wr_swim_sync *s, const wr_swim_update *u) {
  uint8_t e[WR_SWIM_PACKET_MAX]; /* > any one member update */
  wr_ssize n = wr_swim_update_encode(u, e, sizeof e);
  return n < 0 ? (int)n : msg_add(s, e, (size_t)n);
}

static const digest_ent *find_peer(const wr_swim_sync *s, const char *id) {
  digest_ent key;
  snprintf(key.id, sizeof key.id, "%s", id);
  return s->npeer ? bsearch(&key, s->peer, s->npeer, sizeof *s->peer, cmp_ent)
                  : NULL;
}

/* STATE: every entry of ours in D that the peer's digest of D lacks or
 * holds older. */
static int send_state(wr_swim_sync *s) {
  swim_members *t = swim_core_table(s->sw);
  wr_swim_update u;
  int rv;
  if ((rv = frame_type(s, SYNC_STATE)) != 0) return rv;
  if (!s->ndiff) return 0;
  if (s->npeer) qsort(s->peer, s->npeer, sizeof *s->peer, cmp_ent);
  swim_core_self_update(s->sw, &u);
  if (swim_sync_in_diff(s, swim_digest_idhash(u.id)) &&
      newer(find_peer(s, u.id), u.incarnation, swim_sync_self_state(&u)) &&
      (rv = add_state(s, &u)) != 0)
    return rv;
  for (size_t i = 0; i < t->n; i++) {
    const swim_member *m = &t->v[i];
    const char *id = swim_member_id(m);
    if (!swim_sync_in_diff(s, swim_digest_idhash(id)) ||
        !newer(find_peer(s, id), m->incarnation, m->state))
      continue;
    swim_core_member_update(s->sw, i, &u);
    if ((rv = add_state(s, &u)) != 0) return rv;
  }
  return 0;
}

/* ---- app records ---- */

/* One frame of app records (ADIGEST or ADELTA, after the phase), pulled
 * from the application while a record of maximal size still fits; the
 * frame is sealed before returning (the plaintext scratch is shared), or
 * the phase ends when the application has no more. */
static int app_frame(wr_swim_sync *s) {
  int digest = swim_sync_phase_now(s) == P_APP_DIGEST;
  wr_ssize (*next)(void *, uint8_t *, size_t) =
      digest ? s->app->digest_next : s->app->delta_next;
  int rv = frame_type(s, digest ? SYNC_ADIGEST : SYNC_ADELTA);
  if (rv) return rv;
  while (s->pt_len + SYNC_APP_ENTRY_MAX <= SYNC_PT_MAX) {
    uint8_t *rec = s->pt + s->pt_len + 2;
    wr_ssize n = next(s->app_ctx, rec, WR_SWIM_APP_RECORD_MAX);
    if (n == 0) {
      /* An app phase is never a message's first, so a non-empty frame
       * of records is flushed here, before the next phase retypes it. */
      if (s->iplan + 1 < s->nplan && s->count &&
          (rv = frame_flush(s, 0)) != 0)
        return rv;
      return phase_done(s);
    }
    if (n < 0 || n > WR_SWIM_APP_RECORD_MAX) return WR_ERR_CALLBACK;
    wr_put_u16(s->pt + s->pt_len, (uint16_t)n);
    s->pt_len += 2 + (size_t)n;
    s->count++;
  }
  return frame_flush(s, 0);
}

/* Writes output until SYNC_OUT_BOUND bytes wait or nothing is left to
 * write.  The member phases may overshoot the bound: they are written in
 * one go, and every phase leaves no half-built frame behind (the
 * plaintext scratch is shared by all sessions). */
int swim_sync_produce(wr_swim_sync *s) {
  int rv = 0;
  while (rv == 0 && swim_sync_phase_now(s) != P_IDLE &&
         s->out_len - s->out_off < SYNC_OUT_BOUND) {
    switch (swim_sync_phase_now(s)) {
    case P_SUMMARY: rv = send_summary(s); break;
    case P_DIFF: rv = send_diff(s); break;
    case P_STATE_DIGEST:
      rv = send_state(s);
      if (rv == 0) rv = send_digest(s);
      if (rv == 0) rv = phase_done(s);
      break;
    case P_STATE:
      rv = send_state(s);
      if (rv == 0) rv = phase_done(s);
      break;
    default: rv = app_frame(s); break;
    }
    /* A member phase followed by an app phase leaves its entries in the
     * scratch frame: sealed now, before produce can return. */
    if (rv == 0 && s->count && swim_sync_phase_now(s) >= P_APP_DIGEST &&
        s->type != SYNC_ADIGEST && s->type != SYNC_ADELTA)
      rv = frame_flush(s, 0);
  }
  return rv;
}
