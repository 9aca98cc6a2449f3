/*
 * Internals of a sync session shared by sync.c (the stream format, the
 * input side and the session's life) and sync_out.c (the producer of
 * outgoing messages).  Not installed; sans-IO like both files.
 */
#ifndef WARREN_SYNC_INT_H
#define WARREN_SYNC_INT_H

#include "swim_int.h"

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

/* Output phases: one message is a list of them (the table at the top of sync.c). */
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
  digest_ent *peer; /* the peer's DIGEST of D, sorted before use */
  size_t npeer, peer_cap;
  uint8_t in_type;    /* type of the previous frame of the message being read */
  uint64_t frames_in; /* frames opened and applied (wr_swim_sync_frames_in) */
  /* the frame being built (in the scratch below) */
  uint8_t type;
  uint32_t count;
  size_t pt_len;
  uint8_t *pt;
};

static inline uint8_t swim_sync_self_state(const wr_swim_update *u) {
  return u->kind == WR_SWIM_UPD_LEFT ? WR_SWIM_LEFT : WR_SWIM_ALIVE;
}

/* Is the member with id hash |idh| in a bucket of D? */
static inline int swim_sync_in_diff(const wr_swim_sync *s, uint64_t idh) {
  uint32_t b = (uint32_t)(idh & (s->nb - 1));
  return s->diff[b >> 3] >> (b & 7) & 1;
}

/* ---- sync_out.c: the producer ---- */

/* Starts writing a message of up to three phases (P_IDLE: none). */
void swim_sync_msg_plan(wr_swim_sync *s, int p0, int p1, int p2);
/* The phase being written, P_IDLE when no message is. */
int swim_sync_phase_now(const wr_swim_sync *s);
/* Writes output until SYNC_OUT_BOUND bytes wait or nothing is left. */
int swim_sync_produce(wr_swim_sync *s);
/* Our bucket hashes at level s->nb XORed into |out|. */
void swim_sync_xor_ours(wr_swim_sync *s, uint64_t *out);
/* Allocates the bitmap of D for s->nb buckets. */
int swim_sync_alloc_diff(wr_swim_sync *s);

#endif
