/*
 * Anti-entropy over a byte stream, scuttlebutt style: digests first, then
 * only what the other side lacks, so the cost follows the differences,
 * not the fleet size (apart from the digests themselves, ~12 bytes per
 * member).
 *
 *   initiator                          responder
 *   DIGEST [UDIGEST] [ADIGEST] ------>
 *                          <---------- STATE [ADELTA] (what the initiator lacks)
 *                          <---------- DIGEST [UDIGEST] [ADIGEST] (its view)
 *   STATE [ADELTA] ------------------>  (what the responder lacks)
 *
 * Stream = frames: u32 length | sealed(plaintext), length <= 64 KiB.
 * plaintext = u8 version | u8 type | u8 last | u32 count | entry*
 *   DIGEST entry  = str id | u32 incarnation | u8 state
 *   UDIGEST entry = str key | u64 version      (application USER state)
 *   STATE entry   = an update in the gossip codec (ALIVE/SUSPECT/DEAD/LEFT,
 *                   and USER with its payload)
 *   ADIGEST entry = u16 len | record           (application state, opaque:
 *   ADELTA entry  = u16 len | record            1..WR_SWIM_APP_RECORD_MAX)
 * A message spans as many frames as it needs (a frame holds whole entries
 * of one type only; every entry, a 1 KiB USER payload or a 4 KiB app
 * record included, fits one frame many times over); |last| marks its
 * final frame.  A digest message is DIGEST frames, then UDIGEST frames
 * when the application keeps USER state, then ADIGEST frames when it has
 * app-sync hooks; a state message is STATE frames, then ADELTA frames.
 * Anything out of order, malformed or unopenable fails the session
 * (counted), and what was merged before stays merged: every entry obeys
 * the gossip rules (USER entries the application's version rule), with
 * swim_core_merge's departures for healing partitions: a DEAD about
 * another member is only a suspicion, a member back from DEAD is gossiped
 * on, and a verdict about us in the peer's digest is refuted before we
 * answer (src/swim/reconnect.c).
 *
 * USER state (swim.h, user_digest/user_get): the digest lists every
 * (key, version) the application holds; the other side sends back the
 * entries whose key the digest lacks or names at a lower version, fetched
 * with user_get only then, so the payloads cross only when needed.
 *
 * App state (swim.h, wr_swim_app_sync): opaque records the application
 * produces and consumes itself (the ownership table's per-owner digests
 * and deltas).  Those can be large (a node that was away while 10^5 names
 * changed), so they are the one part produced lazily: records are pulled
 * from the application one frame at a time, and only while less than
 * SYNC_OUT_BOUND bytes wait to be written (wr_swim_sync_send pulls
 * more as the socket drains).  Members and USER entries are produced
 * whole when their message starts, as before: they are bounded by the
 * fleet and by the USER caps.
 *
 * The output side is therefore a small producer with phases, apart from
 * the input side's states:
 *
 *   input state      message end (last frame)    output phases queued
 *   I_WAIT_STATE  -> I_WAIT_DIGEST
 *   I_WAIT_DIGEST -> DONE                        STATE, APP_DELTA
 *   R_WAIT_DIGEST -> R_WAIT_STATE                STATE, APP_DELTA, DIGEST,
 *                                                APP_DIGEST
 *   R_WAIT_STATE  -> DONE
 *   (initiator start)                            DIGEST, APP_DIGEST
 *
 * The session is over when the input is DONE, the producer idle and every
 * byte written.  Version 3 of the stream (2 added USER state, 3 the app
 * records): a peer on another version fails the session, counted apart
 * (syncs_version), and only anti-entropy with it stops until both run
 * the same version; gossip is unaffected.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "swim_int.h"
#include "warren/buf.h"
#include "warren/err.h"

#define SYNC_VERSION 3
#define SYNC_DIGEST 1
#define SYNC_STATE 2
#define SYNC_UDIGEST 3
#define SYNC_ADIGEST 4
#define SYNC_ADELTA 5
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
/* A peer claiming more members than this is not a fleet we can hold. */
#define SYNC_PEER_MAX 1000000
/* Nor more USER keys than this: at ~20 bytes a digest entry, a million
 * keys is a 20 MB digest per sync, far past what a periodic full-key
 * digest is meant for (the ownership table would digest per owner
 * first). */
#define SYNC_USER_MAX 1000000

typedef struct digest_ent {
  char id[WR_SWIM_ID_MAX + 1];
  uint32_t inc;
  uint8_t state;
} digest_ent;

/* One USER key with its version: the peer's digest, and our own keys the
 * peer lacks (collected during user_digest, fetched after it). */
typedef struct user_ent {
  char key[WR_SWIM_ID_MAX + 1];
  uint64_t version;
} user_ent;

typedef struct user_vec {
  user_ent *v;
  size_t n, cap;
} user_vec;

/* Input states: what the session reads next. */
enum {
  S_I_WAIT_STATE, /* initiator: digest sent, reading the responder's STATE */
  S_I_WAIT_DIGEST,
  S_R_WAIT_DIGEST,
  S_R_WAIT_STATE,
  S_DONE,   /* nothing more to read */
  S_FAILED,
};

/* Output phases: what the producer writes next (see the table above). */
enum {
  P_IDLE,
  P_DIGEST,     /* members + USER keys, whole */
  P_APP_DIGEST, /* app digest records, pulled frame by frame */
  P_STATE,      /* member + USER entries, whole */
  P_APP_DELTA,  /* app delta records, pulled frame by frame */
};

struct wr_swim_sync {
  wr_swim *sw;
  wr_tstamp now; /* of the latest call that had a clock */
  const wr_mem *mem;
  int state, reported;
  int phase, then; /* output: the phase now, the message after this one */
  /* The application's app-sync hooks, and its session context: non-NULL
   * from begin until end (called once, in report()). */
  const wr_swim_app_sync *app;
  void *app_ud, *app_ctx;
  uint8_t *in;
  size_t in_len, in_cap;
  uint8_t *out;
  size_t out_len, out_off, out_cap;
  digest_ent *peer;
  size_t npeer, peer_cap;
  user_vec upeer;  /* the peer's USER digest, sorted before use */
  user_vec usend;  /* scratch for send_state */
  int emit_err;    /* set by an emit callback that failed */
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

static void msg_begin(wr_swim_sync *s, uint8_t type) {
  s->type = type;
  s->count = 0;
  s->pt_len = SYNC_HDR;
}

/* The message's final frame: the producer moves on to the next message
 * queued (the responder's digest after its state), or goes idle. */
static int msg_end(wr_swim_sync *s) {
  int rv = frame_flush(s, 1);
  s->phase = s->then;
  s->then = P_IDLE;
  return rv;
}

/* The members and USER part of a message is written: the app records
 * follow (phase |app_phase|) when the application has hooks, else the
 * message ends here. */
static int eager_done(wr_swim_sync *s, int app_phase) {
  if (!s->app) return msg_end(s);
  s->phase = app_phase;
  return frame_flush(s, 0);
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

/* A key the application listed: one that can go on the wire. */
static int user_key_ok(const char *key, size_t *plen) {
  size_t n = strnlen(key, WR_SWIM_ID_MAX + 1);
  *plen = n;
  return n && n <= WR_SWIM_ID_MAX && wr_swim_bytes_ok((const uint8_t *)key, n,
                                                      WR_SWIM_ID_MAX);
}

/* emit for send_digest: one UDIGEST entry.  The first one closes the
 * member frames, because a frame carries one type. */
static int emit_digest(void *ctx, const char *key, uint64_t version) {
  wr_swim_sync *s = ctx;
  uint8_t e[1 + WR_SWIM_ID_MAX + 8];
  size_t n;
  int rv;
  if (s->emit_err) return 1;
  if (!user_key_ok(key, &n)) return 0; /* not ours to send: skipped */
  if (s->type != SYNC_UDIGEST) {
    if ((rv = frame_flush(s, 0)) != 0) goto fail;
    msg_begin(s, SYNC_UDIGEST);
  }
  e[0] = (uint8_t)n;
  memcpy(e + 1, key, n);
  wr_put_u32(e + 1 + n, (uint32_t)(version >> 32));
  wr_put_u32(e + 5 + n, (uint32_t)version);
  if ((rv = msg_add(s, e, n + 9)) != 0) goto fail;
  return 0;
fail:
  s->emit_err = rv;
  return 1;
}

static int send_digest(wr_swim_sync *s) {
  swim_members *t = swim_core_table(s->sw);
  wr_swim_update self;
  int rv;
  swim_core_self_update(s->sw, &self);
  msg_begin(s, SYNC_DIGEST);
  if ((rv = add_digest(s, self.id, self.incarnation, self_state(&self))) != 0)
    return rv;
  for (size_t i = 0; i < t->n; i++)
    if ((rv = add_digest(s, swim_member_id(&t->v[i]), t->v[i].incarnation,
                         t->v[i].state)) != 0)
      return rv;
  if (swim_core_has_user_state(s->sw)) {
    s->emit_err = 0;
    rv = swim_core_user_digest(s->sw, emit_digest, s);
    if (s->emit_err) return s->emit_err;
    if (rv) return rv < 0 ? rv : WR_ERR_CALLBACK;
  }
  return eager_done(s, P_APP_DIGEST);
}

static int user_push(const wr_mem *mem, user_vec *v, const char *key,
                     size_t n, uint64_t version) {
  if (v->n == v->cap) {
    if (v->cap >= SYNC_USER_MAX) return WR_ERR_LIMIT;
    size_t cap = v->cap ? v->cap * 2 : 64;
    user_ent *p = wr_mem_realloc(mem, v->v, cap * sizeof *p);
    if (!p) return WR_ERR_NOMEM;
    v->v = p;
    v->cap = cap;
  }
  user_ent *e = &v->v[v->n++];
  memcpy(e->key, key, n);
  e->key[n] = 0;
  e->version = version;
  return 0;
}

static int cmp_user(const void *a, const void *b) {
  return strcmp(((const user_ent *)a)->key, ((const user_ent *)b)->key);
}

/* emit for send_state: remember the keys the peer lacks or holds older;
 * their payloads are fetched after the listing is over. */
static int emit_missing(void *ctx, const char *key, uint64_t version) {
  wr_swim_sync *s = ctx;
  user_ent probe;
  size_t n;
  if (s->emit_err) return 1;
  if (!user_key_ok(key, &n)) return 0;
  memcpy(probe.key, key, n);
  probe.key[n] = 0;
  const user_ent *p =
      s->upeer.n ? bsearch(&probe, s->upeer.v, s->upeer.n, sizeof probe,
                           cmp_user)
                 : NULL;
  if (p && p->version >= version) return 0;
  int rv = user_push(s->mem, &s->usend, key, n, version);
  if (rv) {
    s->emit_err = rv;
    return 1;
  }
  return 0;
}

static int cmp_ent(const void *a, const void *b) {
  return strcmp(((const digest_ent *)a)->id, ((const digest_ent *)b)->id);
}

/* Does our (inc, state) say more than the peer's digest?  States rank as
 * the merge rules order them: alive < suspect < dead < left. */
static int newer(const digest_ent *peer, uint32_t inc, uint8_t state) {
  if (!peer) return state == WR_SWIM_ALIVE || state == WR_SWIM_SUSPECT;
  return inc > peer->inc || (inc == peer->inc && state > peer->state);
}

static int add_state(wr_swim_sync *s, const wr_swim_update *u) {
  uint8_t e[WR_SWIM_PACKET_MAX]; /* > any one update, USER included */
  wr_ssize n = wr_swim_update_encode(u, e, sizeof e);
  return n < 0 ? (int)n : msg_add(s, e, (size_t)n);
}

static const digest_ent *find_peer(const wr_swim_sync *s, const digest_ent *key) {
  return s->npeer ? bsearch(key, s->peer, s->npeer, sizeof *s->peer, cmp_ent)
                  : NULL;
}

/* The USER half of STATE: what the peer's UDIGEST lacks or holds at a
 * lower version, sent as USER updates from us. */
static int send_user_state(wr_swim_sync *s) {
  static _Thread_local uint8_t payload[WR_SWIM_USER_MAX];
  wr_swim_update u;
  int rv;
  if (s->upeer.n) qsort(s->upeer.v, s->upeer.n, sizeof *s->upeer.v, cmp_user);
  s->usend.n = 0;
  s->emit_err = 0;
  rv = swim_core_user_digest(s->sw, emit_missing, s);
  if (s->emit_err) return s->emit_err;
  if (rv) return rv < 0 ? rv : WR_ERR_CALLBACK;
  swim_core_self_update(s->sw, &u);
  u.kind = WR_SWIM_UPD_USER;
  for (size_t k = 0; k < s->usend.n; k++) {
    uint64_t version = 0;
    wr_ssize n = swim_core_user_get(s->sw, s->usend.v[k].key, &version,
                                    payload, sizeof payload);
    if (n < 0 || n > WR_SWIM_USER_MAX) continue; /* gone since the listing */
    snprintf(u.key, sizeof u.key, "%s", s->usend.v[k].key);
    u.version = version;
    u.payload = payload;
    u.payload_len = (uint16_t)n;
    if ((rv = add_state(s, &u)) != 0) return rv;
  }
  return 0;
}

/* STATE: every entry the peer's digest lacks or holds older. */
static int send_state(wr_swim_sync *s) {
  swim_members *t = swim_core_table(s->sw);
  wr_swim_update u;
  digest_ent key;
  int rv;
  if (s->npeer) qsort(s->peer, s->npeer, sizeof *s->peer, cmp_ent);
  msg_begin(s, SYNC_STATE);
  swim_core_self_update(s->sw, &u);
  snprintf(key.id, sizeof key.id, "%s", u.id);
  const digest_ent *p = find_peer(s, &key);
  if (newer(p, u.incarnation, self_state(&u)) && (rv = add_state(s, &u)) != 0)
    return rv;
  for (size_t i = 0; i < t->n; i++) {
    const swim_member *m = &t->v[i];
    snprintf(key.id, sizeof key.id, "%s", swim_member_id(m));
    p = find_peer(s, &key);
    if (!newer(p, m->incarnation, m->state)) continue;
    swim_core_member_update(s->sw, i, &u);
    if ((rv = add_state(s, &u)) != 0) return rv;
  }
  if (swim_core_has_user_state(s->sw)) {
    if ((rv = send_user_state(s)) != 0) return rv;
  }
  return eager_done(s, P_APP_DELTA);
}

/* One frame of app records (ADIGEST or ADELTA, after the phase), pulled
 * from the application while a record of maximal size still fits; the
 * frame is sealed before returning (the plaintext scratch is shared), as
 * the last one of its message when the application has no more. */
static int app_frame(wr_swim_sync *s) {
  int digest = s->phase == P_APP_DIGEST;
  wr_ssize (*next)(void *, uint8_t *, size_t) =
      digest ? s->app->digest_next : s->app->delta_next;
  msg_begin(s, digest ? SYNC_ADIGEST : SYNC_ADELTA);
  while (s->pt_len + SYNC_APP_ENTRY_MAX <= SYNC_PT_MAX) {
    uint8_t *rec = s->pt + s->pt_len + 2;
    wr_ssize n = next(s->app_ctx, rec, WR_SWIM_APP_RECORD_MAX);
    if (n == 0) return msg_end(s);
    if (n < 0 || n > WR_SWIM_APP_RECORD_MAX) return WR_ERR_CALLBACK;
    wr_put_u16(s->pt + s->pt_len, (uint16_t)n);
    s->pt_len += 2 + (size_t)n;
    s->count++;
  }
  return frame_flush(s, 0);
}

/* Writes output until SYNC_OUT_BOUND bytes wait or nothing is left to
 * write.  The whole phases (members, USER) may overshoot the bound: they
 * are written in one go, as they always were. */
static int produce(wr_swim_sync *s) {
  int rv = 0;
  while (rv == 0 && s->phase != P_IDLE &&
         s->out_len - s->out_off < SYNC_OUT_BOUND) {
    switch (s->phase) {
    case P_DIGEST: rv = send_digest(s); break;
    case P_STATE: rv = send_state(s); break;
    default: rv = app_frame(s); break;
    }
  }
  return rv;
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
    digest_ent *e = &s->peer[s->npeer++];
    memcpy(e->id, id, n);
    e->id[n] = 0;
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

static int read_udigest(wr_swim_sync *s, wr_rbuf *b, uint32_t count) {
  for (uint32_t k = 0; k < count; k++) {
    uint8_t n;
    const uint8_t *key;
    uint64_t version;
    int rv;
    if (wr_rbuf_u8(b, &n) != 0 || wr_rbuf_view(b, n, &key) != 0 || !n ||
        !wr_swim_bytes_ok(key, n, WR_SWIM_ID_MAX) ||
        wr_rbuf_u64(b, &version) != 0)
      return WR_ERR_PROTO;
    if ((rv = user_push(s->mem, &s->upeer, (const char *)key, n, version)) != 0)
      return rv;
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
    if (n < 0) return WR_ERR_PROTO;
    wr_rbuf_view(b, (size_t)n, &rest);
    swim_core_merge(s->sw, &u, now);
  }
  return 0;
}

/* One opened frame: check it is what this state expects, apply it, and
 * move on when it was the last frame of its message.  Within a message
 * frame types never go back (DIGEST < UDIGEST < ADIGEST, STATE < ADELTA),
 * so a peer cannot slip member entries in after the app records. */
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
  if (wr_rbuf_u8(&b, &type) != 0 || wr_rbuf_u8(&b, &last) != 0 || last > 1 ||
      wr_rbuf_u32(&b, &count) != 0 || type < s->in_type)
    return WR_ERR_PROTO;
  switch (s->state) {
  case S_I_WAIT_STATE:
  case S_R_WAIT_STATE:
    if (type == SYNC_STATE)
      rv = read_state(s, &b, count, now);
    else if (type == SYNC_ADELTA)
      rv = read_app(s, &b, count, type);
    else
      return WR_ERR_PROTO;
    break;
  case S_I_WAIT_DIGEST:
  case S_R_WAIT_DIGEST:
    if (type == SYNC_DIGEST)
      rv = read_digest(s, &b, count);
    else if (type == SYNC_UDIGEST)
      rv = read_udigest(s, &b, count);
    else if (type == SYNC_ADIGEST)
      rv = read_app(s, &b, count, type);
    else
      return WR_ERR_PROTO;
    break;
  default:
    return WR_ERR_PROTO; /* nothing more is expected */
  }
  if (rv) return rv;
  if (wr_rbuf_left(&b)) return WR_ERR_PROTO;
  s->in_type = type;
  if (!last) return 0;
  s->in_type = 0;
  /* The whole message is in: the output it calls for is queued here and
   * written by produce() once the input at hand is consumed. */
  switch (s->state) {
  case S_I_WAIT_STATE:
    s->state = S_I_WAIT_DIGEST;
    return 0;
  case S_I_WAIT_DIGEST:
    s->state = S_DONE;
    s->phase = P_STATE;
    return 0;
  case S_R_WAIT_DIGEST:
    s->state = S_R_WAIT_STATE;
    s->phase = P_STATE;
    s->then = P_DIGEST;
    return 0;
  default:
    s->state = S_DONE;
    return 0;
  }
}

/* Input done, output all produced and written. */
static int finished(const wr_swim_sync *s) {
  return s->state == S_DONE && s->phase == P_IDLE && s->out_off == s->out_len;
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
  s->phase = s->then = P_IDLE;
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
  s->state = initiator ? S_I_WAIT_STATE : S_R_WAIT_DIGEST;
  s->app = swim_core_app_sync(sw, &s->app_ud);
  if (s->app) {
    s->app_ctx = s->app->begin(s->app_ud, initiator, now);
    if (!s->app_ctx) {
      wr_swim_sync_del(s); /* counted as failed; end is not called */
      return WR_ERR_NOMEM;
    }
  }
  if (initiator) {
    s->phase = P_DIGEST;
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
  wr_mem_free(s->mem, s->upeer.v);
  wr_mem_free(s->mem, s->usend.v);
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
