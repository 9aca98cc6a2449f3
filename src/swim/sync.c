/*
 * Anti-entropy over a byte stream, version 4: bucket hashes first, then
 * member digests of the differing buckets only, then the entries each side
 * lacks.  A converged pair therefore exchanges one hash per bucket (8
 * bytes per 8 to 16 members) instead of ~12 bytes per member each way, and
 * a difference costs the digests of its bucket, not of the fleet.
 *
 *   initiator                              responder
 *   M1 SUMMARY [ADIGEST] ------------------>   B bucket hashes (digest.c)
 *                                              compares: D = buckets that
 *                                              differ
 *                        <------------------ M2 BUCKETS DIGEST [ADELTA]
 *                                               [ADIGEST]  D, and its
 *                                               entries in D
 *   M3 STATE DIGEST [ADELTA] -------------->   what it lacks in D, and
 *                                              our entries in D
 *                        <------------------ M4 STATE  what we lack in D
 *
 * Stream = frames: u32 length | sealed(plaintext), length <= 64 KiB.
 * plaintext = u8 version (4) | u8 type | u8 last | u32 count | entry*
 *   SUMMARY (1) entry = u64 hash of bucket 0, 1, ... (count over the
 *                       whole message = B, a power of two)
 *   STATE   (2) entry = an update in the gossip codec (ALIVE, SUSPECT,
 *                       DEAD, LEFT; nothing else)
 *   BUCKETS (3) entry = u32 bucket index (< B, strictly increasing)
 *   DIGEST  (4) entry = str id | u32 incarnation | u8 state (a member of
 *                       a bucket in D)
 *   ADELTA  (5), ADIGEST (6) entry = u16 len | record (application state,
 *                       opaque: 1..WR_SWIM_APP_RECORD_MAX)
 * A message spans as many frames as it needs (a frame holds whole entries
 * of one type; an empty frame is sent only as a message's last); |last|
 * marks its final frame, and within a message frame types only go up, so
 * a peer cannot slip member entries in after its app records.  Anything
 * out of order, malformed or unopenable fails the session (counted), and
 * what was merged before stays merged: every entry obeys the gossip
 * rules, with swim_core_merge's departures for healing partitions (a DEAD
 * about another member is only a suspicion, a member back from DEAD is
 * gossiped on) and a verdict about us in the peer's DIGEST refuted before
 * we answer (src/swim/reconnect.c), which is why the exchange takes four
 * messages: each side reads the other's digest of D before its STATE.
 *
 * B is the initiator's: the largest power of two <= n / 8 (n counting
 * itself), so buckets hold 8 to 16 members and the summary costs about 1
 * byte per member (SYNC_PER_BUCKET below).  The responder folds its own
 * fine level to B (digest.c); D is where the two differ.
 *
 * App state (swim.h, wr_swim_app_sync): opaque records the application
 * produces and consumes itself (the ownership table's per-owner digests
 * and deltas), carried as in v3: the initiator's app digest with M1, the
 * responder's delta and digest with M2, the initiator's delta with M3.
 * They can be large (a node that was away while 10^5 names changed), so
 * they are pulled from the application one frame at a time, and only
 * while less than SYNC_OUT_BOUND bytes wait to be written
 * (wr_swim_sync_send pulls more as the socket drains).  Member parts are
 * produced whole when their message starts: they are bounded by D.
 *
 * The output side is a producer that writes one message as a list of
 * phases, apart from the input side's states:
 *
 *   input state   message end (last frame)   message queued (phases)
 *   (initiator start)                        M1: SUMMARY, APP_DIGEST
 *   R_WAIT_M1  -> R_WAIT_M3                  M2: DIFF, APP_DELTA, APP_DIGEST
 *   I_WAIT_M2  -> I_WAIT_M4                  M3: STATE_DIGEST, APP_DELTA
 *   R_WAIT_M3  -> DONE                       M4: STATE
 *   I_WAIT_M4  -> DONE
 *
 * The session is over when the input is DONE, the producer idle and every
 * byte written.  A peer on another stream version (v3 before this one:
 * full member digests and a per-key USER state path, which nothing used
 * any more and which v4 dropped) fails the session with WR_ERR_VERSION,
 * counted apart (syncs_version), so during a rolling upgrade anti-entropy
 * between old and new nodes pauses while gossip goes on (docs/SWIM.md).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "swim_int.h"
#include "warren/buf.h"
#include "warren/err.h"

#define SYNC_VERSION 4
#define SYNC_SUMMARY 1
#define SYNC_STATE 2
#define SYNC_BUCKETS 3
#define SYNC_DIGEST 4
#define SYNC_ADELTA 5
#define SYNC_ADIGEST 6
#define SYNC_HDR 7
/* Plaintext room in one frame. */
#define SYNC_PT_MAX (WR_SWIM_SYNC_FRAME_MAX - WR_SWIM_SEAL_OVERHEAD)
/* App records are pulled only while less than this waits to be written:
 * two whole frames, so the socket always has the next frame ready while
 * one is in flight (no stall between writes), and a session holds at most
 * three frames (~192 KiB) of output however large the delta. */
#define SYNC_OUT_BOUND (2 * (4 + WR_SWIM_SYNC_FRAME_MAX))
/* A frame takes another app record only while one of maximal size still
 * fits, since a record cannot be handed back once pulled: frames are at
 * least (SYNC_PT_MAX - this) / SYNC_PT_MAX = 94 % full. */
#define SYNC_APP_ENTRY_MAX (2 + WR_SWIM_APP_RECORD_MAX)
_Static_assert(SYNC_HDR + 2 * SYNC_APP_ENTRY_MAX <= SYNC_PT_MAX,
               "a frame holds several app records");
/* A peer claiming more members than this in D is not a fleet we can
 * hold. */
#define SYNC_PEER_MAX 1000000
/*
 * Members per bucket, on average at least: B = the largest power of two
 * <= n / SYNC_PER_BUCKET, so a bucket holds 8 to 16.  Why 8: a converged
 * pair pays B hashes of 8 bytes (0.5 to 1 byte per member: 8 KiB at
 * 10,000 members, against ~120 KiB each way for v3's full digest), and a
 * bucket that differs costs both sides' digests of it, 8 to 16 entries of
 * ~12 bytes each way.  Halving the buckets halves the first and doubles
 * the second; in a quiet fleet the first is paid at every sync and the
 * second only for the few members whose state moved since the peer saw it
 * (a suspicion, a death not yet reaped), so fewer, larger buckets win
 * until a bucket's digests approach the summary's bytes.
 */
#define SYNC_PER_BUCKET 8
/* A summary of 2^17 buckets (1 MiB, 17 frames) serves a million members. */
#define SYNC_BUCKETS_MAX (1u << 17)

typedef struct digest_ent {
  char id[WR_SWIM_ID_MAX + 1];
  uint32_t inc;
  uint8_t state;
} digest_ent;

/* Input states: what the session reads next. */
enum {
  S_I_WAIT_M2, /* initiator: summary sent, reading D and the peer's digest */
  S_I_WAIT_M4, /* initiator: reading what we lack */
  S_R_WAIT_M1, /* responder: reading the summary */
  S_R_WAIT_M3, /* responder: reading the peer's state and digest */
  S_DONE,      /* nothing more to read */
  S_FAILED,
};

/* Output phases: one message is a list of them (the table above). */
enum {
  P_IDLE,
  P_SUMMARY,      /* M1: our bucket hashes, whole */
  P_DIFF,         /* M2: D and our digest of it, whole */
  P_STATE_DIGEST, /* M3: what the peer lacks in D, then our digest of D */
  P_STATE,        /* M4: what the peer lacks in D */
  P_APP_DIGEST,   /* app digest records, pulled frame by frame */
  P_APP_DELTA,    /* app delta records, pulled frame by frame */
};
#define SYNC_PHASES_MAX 3

struct wr_swim_sync {
  wr_swim *sw;
  wr_tstamp now; /* of the latest call that had a clock */
  const wr_mem *mem;
  int state, reported;
  /* The message being written: its phases and the one running now. */
  int plan[SYNC_PHASES_MAX];
  int nplan, iplan;
  /* The application's app-sync hooks, and its session context: non-NULL
   * from begin until end (called once, in report()). */
  const wr_swim_app_sync *app;
  void *app_ud, *app_ctx;
  uint8_t *in;
  size_t in_len, in_cap;
  uint8_t *out;
  size_t out_len, out_off, out_cap;
  /* B and the buckets that differ (a bitmap of B bits), once known: the
   * initiator picks B, the responder learns it from the summary and
   * computes D, the initiator learns D from BUCKETS. */
  uint32_t nb;
  uint8_t *diff;
  uint32_t ndiff;
  int64_t last_bucket; /* the previous BUCKETS entry (strictly increasing) */
  uint64_t *sum;       /* responder: the peer's summary as it arrives */
  size_t nsum, sum_cap;
  digest_ent *peer;    /* the peer's DIGEST of D, sorted before use */
  size_t npeer, peer_cap;
  uint8_t in_type; /* type of the previous frame of the message being read */
  uint64_t frames_in; /* frames opened and applied (wr_swim_sync_frames_in) */
  /* the frame being built (in the scratch below) */
  uint8_t type;
  uint32_t count;
  size_t pt_len;
  uint8_t *pt;
};

/* One plaintext frame buffer per thread: a frame is built and sealed, or
 * opened and applied, within a single call, so sessions never need one
 * of their own (10,000 simulated cores would otherwise each hold 64 KiB,
 * and every session start/stop would churn the allocator). */
static _Thread_local uint8_t frame_scratch[SYNC_PT_MAX];

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
static void msg_plan(wr_swim_sync *s, int p0, int p1, int p2) {
  int v[SYNC_PHASES_MAX] = {p0, p1, p2};
  s->nplan = 0;
  for (int k = 0; k < SYNC_PHASES_MAX; k++)
    if (v[k] != P_IDLE) s->plan[s->nplan++] = v[k];
  s->iplan = 0;
  s->type = 0;
  s->count = 0;
  s->pt_len = SYNC_HDR;
}

static int phase_now(const wr_swim_sync *s) {
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

static uint8_t self_state(const wr_swim_update *u) {
  return u->kind == WR_SWIM_UPD_LEFT ? WR_SWIM_LEFT : WR_SWIM_ALIVE;
}

static int in_diff(const wr_swim_sync *s, uint64_t idh) {
  uint32_t b = (uint32_t)(idh & (s->nb - 1));
  return s->diff[b >> 3] >> (b & 7) & 1;
}

/* ---- the bucket summary ---- */

/* Our bucket hashes at level |s->nb| XORed into |out|: the table's, and
 * our own entry, which the table does not hold. */
static void xor_ours(wr_swim_sync *s, uint64_t *out) {
  wr_swim_update self;
  swim_core_self_update(s->sw, &self);
  swim_digest_xor(swim_core_table(s->sw), out, s->nb, 0);
  uint64_t idh = swim_digest_idhash(self.id);
  out[idh & (s->nb - 1)] ^=
      swim_digest_entry(idh, self.incarnation, self_state(&self));
}

static int alloc_diff(wr_swim_sync *s) {
  s->diff = wr_mem_calloc(s->mem, (s->nb + 7) / 8, 1);
  return s->diff ? 0 : WR_ERR_NOMEM;
}

/* M1: B from our view of the fleet, then one hash per bucket. */
static int send_summary(wr_swim_sync *s) {
  size_t n = swim_core_table(s->sw)->n + 1, nb = 1;
  while (nb * 2 * SYNC_PER_BUCKET <= n && nb * 2 <= SYNC_BUCKETS_MAX) nb *= 2;
  s->nb = (uint32_t)nb;
  uint64_t *h = wr_mem_calloc(s->mem, nb, sizeof *h);
  if (!h || alloc_diff(s) != 0) {
    wr_mem_free(s->mem, h);
    return WR_ERR_NOMEM;
  }
  xor_ours(s, h);
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

/* The peer's summary is complete: D = the buckets where ours differs. */
static int compute_diff(wr_swim_sync *s) {
  if (!s->nsum || (s->nsum & (s->nsum - 1))) return WR_ERR_PROTO;
  s->nb = (uint32_t)s->nsum;
  if (alloc_diff(s) != 0) return WR_ERR_NOMEM;
  xor_ours(s, s->sum); /* equal buckets XOR to 0 */
  for (uint32_t b = 0; b < s->nb; b++)
    if (s->sum[b]) {
      s->diff[b >> 3] |= (uint8_t)(1u << (b & 7));
      s->ndiff++;
    }
  swim_core_stats(s->sw)->sync_buckets += s->nb;
  swim_core_stats(s->sw)->sync_buckets_differ += s->ndiff;
  wr_mem_free(s->mem, s->sum);
  s->sum = NULL;
  s->nsum = s->sum_cap = 0;
  return 0;
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
  if (in_diff(s, swim_digest_idhash(self.id)) &&
      (rv = add_digest(s, self.id, self.incarnation, self_state(&self))) != 0)
    return rv;
  for (size_t i = 0; i < t->n; i++) {
    const swim_member *m = &t->v[i];
    const char *id = swim_member_id(m);
    if (!in_diff(s, swim_digest_idhash(id))) continue;
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
  if (in_diff(s, swim_digest_idhash(u.id)) &&
      newer(find_peer(s, u.id), u.incarnation, self_state(&u)) &&
      (rv = add_state(s, &u)) != 0)
    return rv;
  for (size_t i = 0; i < t->n; i++) {
    const swim_member *m = &t->v[i];
    const char *id = swim_member_id(m);
    if (!in_diff(s, swim_digest_idhash(id)) ||
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
  int digest = phase_now(s) == P_APP_DIGEST;
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
static int produce(wr_swim_sync *s) {
  int rv = 0;
  while (rv == 0 && phase_now(s) != P_IDLE &&
         s->out_len - s->out_off < SYNC_OUT_BOUND) {
    switch (phase_now(s)) {
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
    if (rv == 0 && s->count && phase_now(s) >= P_APP_DIGEST &&
        s->type != SYNC_ADIGEST && s->type != SYNC_ADELTA)
      rv = frame_flush(s, 0);
  }
  return rv;
}

/* ---- input ---- */

/* One frame of the peer's app records, each handed to the application
 * (digest_in or delta_in by the frame's type); without hooks they are
 * checked and skipped.  A record the application refuses fails the
 * session like any malformed input, counted apart. */
static int read_app(wr_swim_sync *s, wr_rbuf *b, uint32_t count,
                    uint8_t type) {
  for (uint32_t k = 0; k < count; k++) {
    uint16_t n;
    const uint8_t *rec;
    if (wr_rbuf_u16(b, &n) != 0 || !n || n > WR_SWIM_APP_RECORD_MAX ||
        wr_rbuf_view(b, n, &rec) != 0)
      return WR_ERR_PROTO;
    if (!s->app_ctx) continue;
    int rv = type == SYNC_ADIGEST ? s->app->digest_in(s->app_ctx, rec, n)
                                  : s->app->delta_in(s->app_ctx, rec, n);
    if (rv < 0) {
      swim_core_stats(s->sw)->syncs_app_rejected++;
      return WR_ERR_PROTO;
    }
  }
  return 0;
}

static int read_summary(wr_swim_sync *s, wr_rbuf *b, uint32_t count) {
  if (count > SYNC_BUCKETS_MAX - s->nsum) return WR_ERR_LIMIT;
  if (wr_rbuf_left(b) / 8 < count) return WR_ERR_PROTO; /* before allocating */
  if (s->nsum + count > s->sum_cap) {
    size_t cap = s->sum_cap ? s->sum_cap : 64;
    while (cap < s->nsum + count) cap *= 2;
    uint64_t *v = wr_mem_realloc(s->mem, s->sum, cap * sizeof *v);
    if (!v) return WR_ERR_NOMEM;
    s->sum = v;
    s->sum_cap = cap;
  }
  for (uint32_t k = 0; k < count; k++)
    if (wr_rbuf_u64(b, &s->sum[s->nsum++]) != 0) return WR_ERR_PROTO;
  return 0;
}

static int read_buckets(wr_swim_sync *s, wr_rbuf *b, uint32_t count) {
  for (uint32_t k = 0; k < count; k++) {
    uint32_t i;
    if (wr_rbuf_u32(b, &i) != 0 || i >= s->nb || (int64_t)i <= s->last_bucket)
      return WR_ERR_PROTO;
    s->last_bucket = i;
    s->diff[i >> 3] |= (uint8_t)(1u << (i & 7));
    s->ndiff++;
  }
  return 0;
}

static int read_digest(wr_swim_sync *s, wr_rbuf *b, uint32_t count) {
  wr_swim_update self;
  swim_core_self_update(s->sw, &self);
  for (uint32_t k = 0; k < count; k++) {
    uint8_t n, st;
    const uint8_t *id;
    uint32_t inc;
    if (wr_rbuf_u8(b, &n) != 0 || wr_rbuf_view(b, n, &id) != 0 ||
        !n || !wr_swim_bytes_ok(id, n, WR_SWIM_ID_MAX) ||
        wr_rbuf_u32(b, &inc) != 0 || wr_rbuf_u8(b, &st) != 0 ||
        st > WR_SWIM_LEFT)
      return WR_ERR_PROTO;
    if (s->npeer == s->peer_cap) {
      if (s->peer_cap >= SYNC_PEER_MAX) return WR_ERR_LIMIT;
      size_t cap = s->peer_cap ? s->peer_cap * 2 : 64;
      digest_ent *v = wr_mem_realloc(s->mem, s->peer, cap * sizeof *v);
      if (!v) return WR_ERR_NOMEM;
      s->peer = v;
      s->peer_cap = cap;
    }
    digest_ent *e = &s->peer[s->npeer];
    memcpy(e->id, id, n);
    e->id[n] = 0;
    /* Only members of D: anything else is a peer that does not follow
     * the exchange. */
    if (!in_diff(s, swim_digest_idhash(e->id))) return WR_ERR_PROTO;
    s->npeer++;
    e->inc = inc;
    e->state = st;
    /* What the peer thinks of us: refute a verdict now, so that the STATE
     * we send it next carries our new incarnation (after a partition,
     * this is how each side learns the other is back). */
    if (strcmp(e->id, self.id) == 0)
      swim_core_self_digest(s->sw, inc, st, s->now);
  }
  return 0;
}

static int read_state(wr_swim_sync *s, wr_rbuf *b, uint32_t count,
                      wr_tstamp now) {
  wr_swim_update u;
  for (uint32_t k = 0; k < count; k++) {
    const uint8_t *rest;
    size_t left = wr_rbuf_left(b);
    wr_rbuf_view(b, 0, &rest);
    wr_ssize n = wr_swim_update_decode(rest, left, &u);
    if (n < 0 || u.kind == WR_SWIM_UPD_USER) return WR_ERR_PROTO;
    wr_rbuf_view(b, (size_t)n, &rest);
    swim_core_merge(s->sw, &u, now);
  }
  return 0;
}

/* Which frame types each input state reads (types only go up within a
 * message, checked apart). */
static int type_ok(int state, uint8_t type) {
  switch (state) {
  case S_R_WAIT_M1: return type == SYNC_SUMMARY || type == SYNC_ADIGEST;
  case S_I_WAIT_M2:
    return type == SYNC_BUCKETS || type == SYNC_DIGEST ||
           type == SYNC_ADELTA || type == SYNC_ADIGEST;
  case S_R_WAIT_M3:
    return type == SYNC_STATE || type == SYNC_DIGEST || type == SYNC_ADELTA;
  case S_I_WAIT_M4: return type == SYNC_STATE;
  default: return 0; /* nothing more is expected */
  }
}

/* One opened frame: check it is what this state expects, apply it, and
 * move on when it was the last frame of its message. */
static int on_frame(wr_swim_sync *s, const uint8_t *pt, size_t len,
                    wr_tstamp now) {
  wr_rbuf b;
  uint8_t ver, type, last;
  uint32_t count;
  int rv;
  wr_rbuf_init(&b, pt, len);
  if (wr_rbuf_u8(&b, &ver) != 0) return WR_ERR_PROTO;
  if (ver != SYNC_VERSION) {
    swim_core_stats(s->sw)->syncs_version++;
    return WR_ERR_VERSION;
  }
  /* A peer answers a message only once it has all of it, and ours is
   * produced before its last frame can have left: input while we are
   * still producing is a peer that does not wait for us. */
  if (wr_rbuf_u8(&b, &type) != 0 || wr_rbuf_u8(&b, &last) != 0 || last > 1 ||
      wr_rbuf_u32(&b, &count) != 0 || type < s->in_type ||
      !type_ok(s->state, type) || phase_now(s) != P_IDLE)
    return WR_ERR_PROTO;
  switch (type) {
  case SYNC_SUMMARY: rv = read_summary(s, &b, count); break;
  case SYNC_STATE: rv = read_state(s, &b, count, now); break;
  case SYNC_BUCKETS: rv = read_buckets(s, &b, count); break;
  case SYNC_DIGEST: rv = read_digest(s, &b, count); break;
  default: rv = read_app(s, &b, count, type); break;
  }
  if (rv) return rv;
  if (wr_rbuf_left(&b)) return WR_ERR_PROTO;
  s->in_type = type;
  if (!last) return 0;
  s->in_type = 0;
  /* The whole message is in: the output it calls for is queued here and
   * written by produce() once the input at hand is consumed. */
  int app = s->app != NULL;
  switch (s->state) {
  case S_R_WAIT_M1:
    if ((rv = compute_diff(s)) != 0) return rv;
    s->state = S_R_WAIT_M3;
    msg_plan(s, P_DIFF, app ? P_APP_DELTA : P_IDLE,
             app ? P_APP_DIGEST : P_IDLE);
    return 0;
  case S_I_WAIT_M2:
    s->state = S_I_WAIT_M4;
    msg_plan(s, P_STATE_DIGEST, app ? P_APP_DELTA : P_IDLE, P_IDLE);
    return 0;
  case S_R_WAIT_M3:
    s->state = S_DONE;
    msg_plan(s, P_STATE, P_IDLE, P_IDLE);
    return 0;
  default:
    s->state = S_DONE;
    return 0;
  }
}

/* Input done, output all produced and written. */
static int finished(const wr_swim_sync *s) {
  return s->state == S_DONE && phase_now(s) == P_IDLE &&
         s->out_off == s->out_len;
}

/* The session's outcome, once: the application's end hook, then the
 * core's counters. */
static void report(wr_swim_sync *s, int ok) {
  if (s->reported) return;
  s->reported = 1;
  if (s->app_ctx) {
    void *ctx = s->app_ctx;
    s->app_ctx = NULL;
    s->app->end(ctx, ok);
  }
  swim_core_sync_result(s->sw, ok, s->now);
}

static int fail(wr_swim_sync *s, int rv) {
  s->state = S_FAILED;
  s->nplan = s->iplan = 0;
  report(s, 0);
  return rv;
}

int wr_swim_sync_recv(wr_swim_sync *s, const uint8_t *data, size_t len,
                      wr_tstamp now) {
  int rv;
  if (s->state == S_FAILED) return WR_ERR_PROTO;
  s->now = now;
  if (!len) return 0;
  if (s->in_len + len > s->in_cap) {
    size_t cap = s->in_cap ? s->in_cap : 4096;
    while (cap < s->in_len + len) cap *= 2;
    /* Never more than one maximal frame plus what arrived with it. */
    uint8_t *p = wr_mem_realloc(s->mem, s->in, cap);
    if (!p) return fail(s, WR_ERR_NOMEM);
    s->in = p;
    s->in_cap = cap;
  }
  memcpy(s->in + s->in_len, data, len);
  s->in_len += len;
  size_t off = 0;
  while (s->in_len - off >= 4) {
    uint32_t flen = wr_get_u32(s->in + off);
    if (flen > WR_SWIM_SYNC_FRAME_MAX || flen < SYNC_HDR)
      return fail(s, WR_ERR_PROTO);
    if (s->in_len - off - 4 < flen) break;
    wr_ssize n = wr_swim_open(swim_core_keyring(s->sw), s->pt, SYNC_PT_MAX,
                              s->in + off + 4, flen);
    if (n < 0) return fail(s, WR_ERR_PROTO);
    if ((rv = on_frame(s, s->pt, (size_t)n, now)) != 0) return fail(s, rv);
    s->frames_in++;
    off += 4 + flen;
    /* A message ended and ours is due: produced before the next frame is
     * read (the plaintext scratch is free again), so bytes that carry
     * the peer's answer right behind it meet a finished message. */
    if (phase_now(s) != P_IDLE && (rv = produce(s)) != 0) return fail(s, rv);
  }
  memmove(s->in, s->in + off, s->in_len - off);
  s->in_len -= off;
  if ((rv = produce(s)) != 0) return fail(s, rv);
  if (finished(s)) report(s, 1);
  return 0;
}

int wr_swim_sync_new(wr_swim *sw, wr_swim_sync **ps, int initiator,
                     wr_tstamp now) {
  const wr_mem *mem = swim_core_mem(sw);
  wr_swim_sync *s = wr_mem_calloc(mem, 1, sizeof *s);
  *ps = NULL;
  if (!s) return WR_ERR_NOMEM;
  s->sw = sw;
  s->mem = mem;
  s->now = now;
  s->pt = frame_scratch;
  s->last_bucket = -1;
  s->state = initiator ? S_I_WAIT_M2 : S_R_WAIT_M1;
  s->app = swim_core_app_sync(sw, &s->app_ud);
  if (s->app) {
    s->app_ctx = s->app->begin(s->app_ud, initiator, now);
    if (!s->app_ctx) {
      wr_swim_sync_del(s); /* counted as failed; end is not called */
      return WR_ERR_NOMEM;
    }
  }
  if (initiator) {
    msg_plan(s, P_SUMMARY, s->app ? P_APP_DIGEST : P_IDLE, P_IDLE);
    int rv = produce(s);
    if (rv) {
      wr_swim_sync_del(s);
      return rv;
    }
  }
  *ps = s;
  return 0;
}

void wr_swim_sync_del(wr_swim_sync *s) {
  if (!s) return;
  report(s, finished(s));
  wr_mem_free(s->mem, s->in);
  wr_mem_free(s->mem, s->out);
  wr_mem_free(s->mem, s->peer);
  wr_mem_free(s->mem, s->sum);
  wr_mem_free(s->mem, s->diff);
  wr_mem_free(s->mem, s);
}

wr_ssize wr_swim_sync_send(wr_swim_sync *s, const uint8_t **data) {
  int rv = produce(s); /* the socket drained: pull more app records */
  if (rv) {
    *data = NULL;
    return fail(s, rv);
  }
  if (s->out_off == s->out_len) {
    *data = NULL; /* (s->out may be NULL: no pointer arithmetic on it) */
    return 0;
  }
  *data = s->out + s->out_off;
  return (wr_ssize)(s->out_len - s->out_off);
}

void wr_swim_sync_consumed(wr_swim_sync *s, size_t n) {
  if (n > s->out_len - s->out_off) n = s->out_len - s->out_off;
  s->out_off += n;
  if (finished(s)) report(s, 1);
}

int wr_swim_sync_done(const wr_swim_sync *s) { return finished(s); }

uint64_t wr_swim_sync_frames_in(const wr_swim_sync *s) { return s->frames_in; }
