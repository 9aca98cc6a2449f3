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
 * byte per member (SYNC_PER_BUCKET in sync_int.h).  The responder folds
 * its own fine level to B (digest.c); D is where the two differ.
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
 *
 * This file is the stream format, the session's input (frames read,
 * checked and applied) and its life; the producer of its output is
 * sync_out.c; the session's struct is in sync_int.h.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sync_int.h"
#include "warren/buf.h"
#include "warren/err.h"

/* One plaintext frame buffer per thread: a frame is built and sealed, or
 * opened and applied, within a single call, so sessions never need one
 * of their own (10,000 simulated cores would otherwise each hold 64 KiB,
 * and every session start/stop would churn the allocator). */
static _Thread_local uint8_t frame_scratch[SYNC_PT_MAX];

/* ---- input ---- */

/* The peer's summary is complete: D = the buckets where ours differs. */
static int compute_diff(wr_swim_sync *s) {
  if (!s->nsum || (s->nsum & (s->nsum - 1))) return WR_ERR_PROTO;
  s->nb = (uint32_t)s->nsum;
  if (swim_sync_alloc_diff(s) != 0) return WR_ERR_NOMEM;
  swim_sync_xor_ours(s, s->sum); /* equal buckets XOR to 0 */
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
    if (!swim_sync_in_diff(s, swim_digest_idhash(e->id))) return WR_ERR_PROTO;
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
      !type_ok(s->state, type) || swim_sync_phase_now(s) != P_IDLE)
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
   * written by swim_sync_produce() once the input at hand is consumed. */
  int app = s->app != NULL;
  switch (s->state) {
  case S_R_WAIT_M1:
    if ((rv = compute_diff(s)) != 0) return rv;
    s->state = S_R_WAIT_M3;
    swim_sync_msg_plan(s, P_DIFF, app ? P_APP_DELTA : P_IDLE,
             app ? P_APP_DIGEST : P_IDLE);
    return 0;
  case S_I_WAIT_M2:
    s->state = S_I_WAIT_M4;
    swim_sync_msg_plan(s, P_STATE_DIGEST, app ? P_APP_DELTA : P_IDLE, P_IDLE);
    return 0;
  case S_R_WAIT_M3:
    s->state = S_DONE;
    swim_sync_msg_plan(s, P_STATE, P_IDLE, P_IDLE);
    return 0;
  default:
    s->state = S_DONE;
    return 0;
  }
}

/* Input done, output all produced and written. */
static int finished(const wr_swim_sync *s) {
  return s->state == S_DONE && swim_sync_phase_now(s) == P_IDLE &&
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
    if (swim_sync_phase_now(s) != P_IDLE && (rv = swim_sync_produce(s)) != 0)
      return fail(s, rv);
  }
  memmove(s->in, s->in + off, s->in_len - off);
  s->in_len -= off;
  if ((rv = swim_sync_produce(s)) != 0) return fail(s, rv);
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
    swim_sync_msg_plan(s, P_SUMMARY, s->app ? P_APP_DIGEST : P_IDLE, P_IDLE);
    int rv = swim_sync_produce(s);
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
  int rv = swim_sync_produce(s); /* the socket drained: pull more app records */
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
