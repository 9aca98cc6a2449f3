/*
 * Internals of the SWIM core shared by members.c (the member table),
 * broadcast.c (the piggyback queue), swim.c (the state machine), probe.c
 * (the probe in flight), suspicion.c (from SUSPECT to DEAD), region.c,
 * reconnect.c, digest.c and sync.c (anti-entropy).  Not installed: only
 * swim.h is the API.
 */
#ifndef WARREN_SWIM_INT_H
#define WARREN_SWIM_INT_H

#include <string.h>

#include "warren/swim.h"

/* FNV-1a from |basis|: ids and keys are short and come from the fleet,
 * not from visitors, so a keyed hash would buy nothing.  One function for
 * the member index, the piggyback queue and the suspicion confirmers. */
#define SWIM_HASH_BASIS 2166136261u
static inline uint32_t swim_hash(const char *s, uint32_t basis) {
  uint32_t h = basis;
  for (; *s; s++) h = (h ^ (uint8_t)*s) * 16777619u;
  return h;
}

/* ---- member table (members.c) ----------------------------------------
 *
 * One fleet member.  The simulator holds 10,000 cores each knowing 10,000
 * members, so an entry is kept to 64 bytes: short ids live inline, the
 * rarely-set metadata (data address when it differs from the gossip one,
 * region, tags) lives in one optional allocation.
 */
#define SWIM_ID_INLINE 16

typedef struct swim_meta {
  wr_addr data;
  char region[WR_SWIM_REGION_MAX + 1];
  char tags[WR_SWIM_TAGS_MAX + 1];
} swim_meta;

typedef struct swim_member {
  union {
    char inl[SWIM_ID_INLINE];
    char *heap;
  } id_;
  uint8_t id_len;
  uint8_t state;   /* wr_swim_state */
  uint32_t incarnation;
  uint32_t susp;   /* suspicion slot + 1, 0 when not suspected */
  wr_addr gossip;
  swim_meta *meta; /* NULL: data == gossip, no region, no tags */
  wr_tstamp state_since;
} swim_member;

typedef struct swim_members {
  const wr_mem *mem;
  swim_member *v;
  size_t n, cap;
  uint32_t *slots; /* open addressing: member index + 1, 0 = empty */
  size_t nslots;   /* power of two, >= 2 n */
  /* The bucket digest's fine level (digest.c): nbh hashes, a power of
   * two, kept current by every add, remove and swim_members_set_state;
   * NULL / 0 until the first member. */
  uint64_t *bh;
  size_t nbh;
} swim_members;

static inline const char *swim_member_id(const swim_member *m) {
  return m->id_len < SWIM_ID_INLINE ? m->id_.inl : m->id_.heap;
}

void swim_members_init(swim_members *t, const wr_mem *mem);
void swim_members_free(swim_members *t);
/* Index of |id| or -1. */
ssize_t swim_members_find(const swim_members *t, const char *id);
/* Appends a member (state ALIVE); returns its index or WR_ERR_NOMEM.  The
 * caller has checked that |id| is absent. */
ssize_t swim_members_add(swim_members *t, const char *id,
                         const wr_addr *gossip, uint32_t incarnation,
                         wr_tstamp now);
/* Sets data/region/tags (allocating meta only when they say something).
 * Returns 0 or WR_ERR_NOMEM (the member keeps its old metadata). */
int swim_members_set_meta(swim_members *t, size_t i, const wr_addr *data,
                          const char *region, const char *tags);
/* |dst| (empty) becomes a deep copy of |src|.  0 or WR_ERR_NOMEM. */
int swim_members_copy(swim_members *dst, const swim_members *src);
/* Removes member |i|; the last member takes its index. */
void swim_members_remove(swim_members *t, size_t i);
/* Member |i|'s state and incarnation: the only way to change them, so
 * that the bucket digest follows. */
void swim_members_set_state(swim_members *t, size_t i, uint8_t state,
                            uint32_t incarnation);
/* Fisher-Yates over the whole table; |below(ud, n)| is uniform in [0, n). */
void swim_members_shuffle(swim_members *t, size_t (*below)(void *, size_t),
                          void *ud);
/* Swaps members |i| and |j| (a new member's random place in the order). */
void swim_members_swap(swim_members *t, size_t i, size_t j);
void swim_members_info(const swim_members *t, size_t i,
                       wr_swim_member_info *out);

/* ---- bucket digest (digest.c) -----------------------------------------
 *
 * XOR of h(id, incarnation, state) per bucket, bucket = idhash & (nb - 1)
 * for a power-of-two nb; the table keeps a fine level current and folds
 * it to the level a sync asks for.
 */
uint64_t swim_digest_idhash(const char *id);
uint64_t swim_digest_entry(uint64_t idh, uint32_t inc, uint8_t state);
/* XORs member |m|'s entry into the fine level (in, or out again). */
void swim_digest_toggle(swim_members *t, const swim_member *m);
/* XORs the table's bucket hashes at level |nb| into |out| (nb entries):
 * folded from the fine level, or with |slow| (or a level finer than the
 * table's) recomputed from the members. */
void swim_digest_xor(const swim_members *t, uint64_t *out, size_t nb,
                     int slow);
/* |out| = the table's level |nb| recomputed from scratch (the reference
 * the incremental level must always equal). */
void swim_digest_recompute(const swim_members *t, uint64_t *out, size_t nb);
/* Grows the fine level to the table's size when it crossed it. */
void swim_digest_fit(swim_members *t);

/* ---- broadcast queue (broadcast.c) -------------------------------------
 *
 * Updates waiting to be piggybacked, least-transmitted first.  A new
 * update about a member replaces any queued one about the same member; a
 * USER update replaces an older one for its key.
 *
 * Under heavy loss every member learns far more news than it can send
 * (at 10,000 nodes and 30 % loss, thousands of suspicions and refutations
 * a second against a few hundred update slots), so the queue sits at its
 * bound and every operation must cost O(1), not O(queue): one list per
 * transmit count and a hash index by topic, where a sorted array cost
 * 40 % of a simulation's CPU in scans and insertion sorts.
 */
/* An entry holds the update as it goes on the wire (one allocation of
 * about 80-140 bytes instead of a 400-byte wr_swim_update plus payload). */
typedef struct swim_bcast {
  struct swim_bcast *prev, *next; /* in the list of its transmit count */
  struct swim_bcast *hnext;       /* in its topic index chain */
  uint64_t version;               /* USER */
  uint32_t transmits;
  uint32_t hash;                  /* of the id (or USER key) */
  uint16_t size;                  /* encoded length, = wr_swim_update_size */
  uint8_t kind;
  uint8_t topic_len;
  /* |size| encoded bytes, then the id (or USER key) and a NUL */
  uint8_t data[];
} swim_bcast;

typedef struct swim_blist {
  swim_bcast *head, *tail;
} swim_blist;

/* Transmit counts with a list of their own; higher counts share the last
 * (retransmit limits are retransmit_mult * ceil(log10(n + 1)): 20 at
 * 10,000 members with the LAN profile). */
#define SWIM_BQUEUE_LEVELS 32
/* The membership queue's bound (the USER queue's is user_queue_max). */
#define SWIM_BQUEUE_MAX 4096

typedef struct swim_bqueue {
  const wr_mem *mem;
  /* level[t]: entries sent t times.  The head goes first: level 0 is
   * newest first (fresh news wins under overload), higher levels are
   * FIFO (an entry just sent queues behind those that waited). */
  swim_blist level[SWIM_BQUEUE_LEVELS];
  swim_bcast **index; /* chain heads, nindex a power of two >= n */
  size_t nindex;
  size_t n, max;    /* max >= 1: beyond it the most-sent entry goes */
  uint64_t dropped; /* evicted because the queue was full */
} swim_bqueue;

/* The core keeps two of these: one for membership updates (bound
 * SWIM_BQUEUE_MAX) and one for USER updates (bound user_queue_max), so
 * application churn can never evict membership news (swim.c, send). */
void swim_bqueue_init(swim_bqueue *q, const wr_mem *mem, size_t max);
void swim_bqueue_free(swim_bqueue *q);
/* Queues a copy of |u| (and its payload).  0 or WR_ERR_NOMEM/WR_ERR_INVAL. */
int swim_bqueue_push(swim_bqueue *q, const wr_swim_update *u);
/* 1 when an update about member |id| is queued. */
int swim_bqueue_has(const swim_bqueue *q, const char *id);
/* Drops anything queued about member |id| (not USER updates). */
void swim_bqueue_forget(swim_bqueue *q, const char *id);
/* The entry the next take starts with, NULL when empty. */
const swim_bcast *swim_bqueue_first(const swim_bqueue *q);
/*
 * Copies to |dst| (room for |*budget| bytes) the encoded bytes of the
 * least-sent updates that fit, at most |max| of them, counts one
 * transmission for each and drops those that reached |limit|.  Returns
 * how many were copied and lowers |*budget| by the bytes written: the
 * wr_swim_packet raw tail, with no decoding or re-encoding per packet.
 */
size_t swim_bqueue_take(swim_bqueue *q, uint8_t *dst, size_t max,
                        size_t *budget, uint32_t limit);

/* ---- reconnecting to failed members (reconnect.c) ----------------------
 *
 * Members reaped while DEAD, kept for reconnect_timeout_ms so a long
 * partition can heal.  Bounded: when full, the longest-dead gives way.
 */
#define SWIM_LOST_MAX 512

typedef struct swim_lost_ent {
  char id[WR_SWIM_ID_MAX + 1];
  uint32_t hash;
  wr_addr gossip;
  wr_tstamp dead_at;
} swim_lost_ent;

typedef struct swim_lost {
  const wr_mem *mem;
  swim_lost_ent *v; /* unordered */
  size_t n, cap;
} swim_lost;

void swim_lost_init(swim_lost *l, const wr_mem *mem);
void swim_lost_free(swim_lost *l);
/* Remembers member |m| (DEAD, about to be reaped). */
void swim_lost_add(swim_lost *l, const swim_member *m);
/* 1 when |id| was reaped while DEAD and is still remembered. */
int swim_lost_has(const swim_lost *l, const char *id);
/*
 * One reconnect round: drops expired entries and those back in |t|, then,
 * with serf's probability failed / alive, picks a random failed member
 * (DEAD in |t| or lost, within |timeout_ms| of its verdict).  Returns 1
 * and fills |peer|, or 0 for no attempt this round.  |below(ud, n)| is
 * uniform in [0, n).
 */
int swim_reconnect_pick(swim_lost *l, const swim_members *t, wr_tstamp now,
                        uint64_t timeout_ms,
                        size_t (*below)(void *, size_t), void *ud,
                        wr_addr *peer);

/* ---- regions (region.c) -------------------------------------------------
 *
 * Region-aware membership (docs/SWIM.md "Regions"): a census of the
 * regions in the table, the region-shaped choices of probe targets,
 * relays and gossip targets, and each region's reachability as our
 * cross-region probes see it.  The census is a small fixed table: a
 * fleet has a handful of regions, and members of regions beyond the
 * bound are counted in none (they are then treated as remote members of
 * an unknown region: probed only across, never suspected in a storm).
 */
#define SWIM_REGIONS_MAX 16

typedef struct swim_region {
  char name[WR_SWIM_REGION_MAX + 1];
  uint32_t members; /* ALIVE or SUSPECT at the census, us included */
  /* Our cross-region probes of this region found no member of it
   * answering (neither the target nor any relay there) since this time;
   * 0 while it answers. */
  wr_tstamp silent_since;
} swim_region;

typedef struct swim_regions {
  swim_region v[SWIM_REGIONS_MAX];
  unsigned n;
  size_t census_n; /* table size at the census (0: never taken) */
  uint32_t probes; /* probes started: every cross_every-th goes across */
} swim_regions;

static inline const char *swim_member_region(const swim_member *m) {
  return m->meta ? m->meta->region : "";
}

/* Counts the members of each region (ALIVE or SUSPECT), us in |own|. */
void swim_regions_census(swim_regions *r, const swim_members *t,
                         const char *own);
/* Takes the census when none was taken or the table changed size by more
 * than an eighth since (members join and leave in bulk at bootstrap). */
void swim_regions_refresh(swim_regions *r, const swim_members *t,
                          const char *own);
/* The census entry of |name|, NULL when it has none. */
swim_region *swim_regions_find(swim_regions *r, const char *name);
/* Members of region |name| at the census (at least 1). */
size_t swim_regions_size(const swim_regions *r, const char *name);
/* 1 when the census saw more than one region: below that every
 * region-aware choice falls back to the region-blind one. */
int swim_regions_active(const swim_regions *r);
/*
 * A uniformly random member index in [0, t->n) that is ALIVE (or
 * |allow_suspect| and SUSPECT), not |skip| (an id, or NULL) and whose
 * region is |region| (|same| 1) or is not (|same| 0).  Rejection
 * sampling with a bound of |tries| draws: a region of a tenth of the
 * fleet costs about ten draws a pick.  -1 when none was found.
 */
ssize_t swim_regions_pick(const swim_members *t, const char *region, int same,
                          int allow_suspect, const char *skip, unsigned tries,
                          size_t (*below)(void *, size_t), void *ud);

/* ---- the core's state (swim.c, and the files split out of it) ----------
 *
 * struct wr_swim and the records it keeps: swim.c runs the protocol on
 * it; the files that hold one job of the core each (the suspicion
 * machinery, ...) share it through this header.  sync.c, region.c and
 * the others above never touch it and use the swim_core_* functions
 * below instead.
 */
#define SWIM_RELAYS_MAX 64
#define SWIM_OUTBOX_MAX 1024
/* The accuser and up to WR_SWIM_CONFIRMATIONS_MAX confirmers: the
 * suspicion-confirmations tunable's bound, so that every confirmer up to
 * k is remembered and a repeat of any of them never counts twice. */
#define SWIM_CONFIRM_MAX (WR_SWIM_CONFIRMATIONS_MAX + 1)
/* Relays per indirect probe: the indirect-checks tunable's bound. */
#define SWIM_INDIRECT_MAX 32

/* EXTRA_NO_USER: a datagram to a member already dead or left carries
 * membership news only (see gossip_to).  EXTRA_BARE: no piggybacked news
 * at all, only the extras (a dead probe: most go to members that are
 * really gone, and each send counts against an update's budget). */
enum { EXTRA_SELF = 1, EXTRA_ABOUT = 2, EXTRA_NO_USER = 4, EXTRA_BARE = 8 };

typedef struct swim_out {
  wr_addr to;
  uint8_t type, extra;
  uint32_t seq;
  char target[WR_SWIM_ID_MAX + 1];
  wr_addr target_addr;
  char about[WR_SWIM_ID_MAX + 1]; /* EXTRA_ABOUT: our entry for this id */
} swim_out;

typedef struct swim_susp {
  int used;
  char id[WR_SWIM_ID_MAX + 1];
  wr_tstamp start, deadline;
  uint64_t min_ms, max_ms;
  uint64_t refused_ms; /* 0, or the floor once we saw it refused */
  unsigned k, n; /* confirmations wanted for the minimum, and received */
  int asked; /* the last-chance hello went out (wr_swim_tick) */
  int remote; /* a member of another region (regions on) */
  int regional; /* judged by its region (regions on, and big enough) */
  uint32_t confirmers[SWIM_CONFIRM_MAX]; /* id hashes, accuser first */
} swim_susp;

typedef struct swim_relay {
  int used, nacked;
  uint32_t seq, origin_seq;
  wr_addr origin, target;
  wr_tstamp nack_at, expire_at;
} swim_relay;

/* A probe sent because we heard of a suspicion (see confirm_probes). */
typedef struct swim_confirm {
  int used, indirect_sent;
  uint32_t seq, inc;
  char id[WR_SWIM_ID_MAX + 1];
  wr_addr addr;
  wr_tstamp timeout_at, deadline;
} swim_confirm;
#define SWIM_CONFIRM_PROBES_MAX 16

typedef struct swim_grave {
  char id[WR_SWIM_ID_MAX + 1];
  wr_tstamp at;
} swim_grave;

struct wr_swim {
  wr_swim_config cfg;
  wr_swim_callbacks cb;
  wr_swim_keyring *kr, empty_kr;
  const wr_mem *mem;
  void *user_data;

  uint32_t inc;
  int leaving;
  wr_tstamp self_since; /* when we started, or when we left */
  int merging; /* applying a sync stream: learn, don't re-gossip */
  int join_announce; /* re-gossip our ALIVE once the join sync is done */
  /* Follow-up syncs after a join (swim_core_sync_result): the gap to the
   * next one (0: none, periodic syncs only) and the member count when the
   * last one was scheduled. */
  uint64_t followup_gap;
  size_t followup_n;
  unsigned awareness;
  uint32_t seq;

  swim_members mt;
  /* Two piggyback queues: membership news (bq) and USER updates (uq).
   * A packet takes from bq first and gives uq only the room left, and
   * each queue evicts only its own entries, so no amount of application
   * churn can push a suspicion or a refutation out (docs/SWIM.md). */
  swim_bqueue bq, uq;

  size_t probe_pos;
  struct {
    int active, acked, indirect_sent;
    int refused; /* our PING to the target was refused */
    /* A probe of a member of another region (regions on): its relays
     * were asked in the target's region (region_relays of them), and
     * silence from all of them says the region, not the member, is
     * unreachable (region_probe_silent). */
    int cross;
    unsigned region_relays, region_nacks;
    uint32_t seq, inc;
    char target[WR_SWIM_ID_MAX + 1];
    wr_addr addr;
    wr_tstamp timeout_at, end_at;
    unsigned nacks_expected, nacks;
    /* Relays that saw the target refused (NACK_REFUSED), by id hash:
     * each is an independent witness, like a confirmation. */
    unsigned nrefused;
    uint32_t refused_by[SWIM_INDIRECT_MAX];
  } probe;
  wr_tstamp next_probe_at, next_gossip_at, next_sync_at;
  wr_tstamp relay_user_at; /* 0: no USER news waiting to be relayed */

  swim_susp *susp;
  size_t nsusp;
  swim_relay relays[SWIM_RELAYS_MAX];
  swim_confirm confirms[SWIM_CONFIRM_PROBES_MAX];
  /* Slots in use in the two arrays above: when 0 (always, in a quiet
   * fleet), every tick, deadline and ACK skips their scans.  The
   * simulator runs 10^4 cores, where these scans of ~4 KB per call were
   * a tenth of the time. */
  unsigned nrelays, nconfirms;

  swim_grave *graves; /* FIFO: state changes happen in time order */
  size_t grave_head, grave_n, grave_cap;

  swim_out *out; /* ring */
  size_t out_head, out_n, out_cap;

  uint32_t join_seq_lo, join_seq_hi;
  uint32_t hello_seq[8]; /* empty-target PINGs sent to unknown pingers */
  unsigned hello_next;
  int sync_now;
  wr_addr sync_peer;
  /* Catch-up syncs the application asked for (wr_swim_sync_behind): when
   * the next is due (0: none) and how many are left. */
  wr_tstamp catchup_at;
  unsigned catchup_left;
  /* The sender of the datagram being applied, while stale news in it
   * may still get a direct correction (correct_stale); family 0 when
   * none (a sync, or one correction already sent for this packet). */
  wr_addr rx_from;
  /* Reconnecting to failed members (reconnect.c). */
  swim_lost lost;
  wr_tstamp next_reconnect_at;
  int reconnect_now;
  wr_addr reconnect_peer;
  /* Probing failed members (dead_probe_tick): when the next pick is due,
   * the seq of the one PING awaiting its ACK (0: none), and the earliest
   * time an answer may start a sync (one per reconnect interval). */
  wr_tstamp next_dead_probe_at;
  uint32_t dead_probe_seq;
  wr_tstamp heal_sync_at;
  /* While a datagram is applied: it declared us DEAD (dead_reply).  And
   * the members we last answered that way, so a pair that cannot agree
   * (incarnations at their top) does not ping-pong: at most one direct
   * answer per member per probe interval (a collision in this small
   * direct-mapped table only lets one more through). */
  int rx_self_dead;
  struct {
    uint32_t hash;
    wr_tstamp at;
  } dead_replied[16];

  /* Region census and silence (region.c). */
  swim_regions rg;

  wr_swim_stats st;
  wr_swim_packet pkt;
  uint8_t plain[WR_SWIM_DATAGRAM_MAX];
  uint8_t piggyback[WR_SWIM_PACKET_MAX]; /* queued updates, as encoded */
};

/* Small helpers every part of the core uses. */
static inline uint32_t swim_rand_u32(wr_swim *sw) {
  uint8_t b[4];
  sw->cfg.rand(b, sizeof b, sw->cfg.rand_user_data);
  return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 |
         (uint32_t)b[3] << 24;
}

static inline size_t swim_rand_below(wr_swim *sw, size_t n) {
  return n ? (size_t)(((uint64_t)swim_rand_u32(sw) * n) >> 32) : 0;
}

static inline uint32_t swim_id_hash(const char *s) {
  return swim_hash(s, SWIM_HASH_BASIS);
}

/* Lifeguard local health: our timeouts stretch with (awareness + 1). */
static inline uint64_t swim_scaled(const wr_swim *sw, uint64_t ms) {
  return sw->cfg.lifeguard ? ms * (sw->awareness + 1) : ms;
}

/* Fleet size estimate for the log(n) formulas: everyone we know of. */
static inline size_t swim_fleet_n(const wr_swim *sw) { return sw->mt.n + 1; }

static inline int swim_is_self(const wr_swim *sw, const char *id) {
  return strcmp(sw->cfg.id, id) == 0;
}

/* Region-aware membership (region.c, docs/SWIM.md "Regions") applies
 * when the config asks for it and the census saw two regions or more;
 * otherwise every choice below is the region-blind one, draw for draw. */
static inline int swim_regions_on(wr_swim *sw) {
  if (!sw->cfg.region_aware) return 0;
  swim_regions_refresh(&sw->rg, &sw->mt, sw->cfg.region);
  return swim_regions_active(&sw->rg);
}

static inline int swim_in_own_region(const wr_swim *sw, const swim_member *m) {
  return strcmp(swim_member_region(m), sw->cfg.region) == 0;
}

/* The region of member |id|, or of us; NULL for a stranger. */
static inline const char *swim_region_of_id(const wr_swim *sw, const char *id) {
  if (swim_is_self(sw, id)) return sw->cfg.region;
  ssize_t i = swim_members_find(&sw->mt, id);
  return i < 0 ? NULL : swim_member_region(&sw->mt.v[i]);
}

/* Lifeguard local health: |delta| on the awareness score, within
 * 0..awareness_max - 1. */
static inline void swim_awareness_add(wr_swim *sw, int delta) {
  if (!sw->cfg.lifeguard) return;
  int a = (int)sw->awareness + delta;
  int top = sw->cfg.awareness_max ? (int)sw->cfg.awareness_max - 1 : 0;
  sw->awareness = (unsigned)(a < 0 ? 0 : a > top ? top : a);
}

/* swim_rand_below for the table's helpers that take a callback. */
static inline size_t swim_below_cb(void *ud, size_t n) {
  return swim_rand_below((wr_swim *)ud, n);
}

/* ---- probing (probe.c) -----------------------------------------------------
 *
 * The one probe in flight (sw->probe); the top of probe.c has its steps.
 */
void swim_probe_start(wr_swim *sw, wr_tstamp now);
/* The probe timeout passed without an ACK: ask the relays. */
void swim_probe_indirect(wr_swim *sw);
/* The round ended without an ACK. */
void swim_probe_failed(wr_swim *sw, wr_tstamp now);
/* A refused probe fails once every relay reported a refusal too. */
void swim_probe_check_refused(wr_swim *sw, wr_tstamp now);
/* An ACK (or |nack|) from |from| to our cross-region probe. */
void swim_region_heard(wr_swim *sw, const char *from, int nack);

/* ---- suspicion (suspicion.c) ---------------------------------------------
 *
 * Timers, confirmations and the last chance of a suspected member; the
 * top of suspicion.c has the states.  |i| is a member table index.
 */
/* The member's suspicion timer, or NULL (not suspected). */
swim_susp *swim_susp_of(wr_swim *sw, size_t i);
void swim_susp_clear(wr_swim *sw, size_t i);
/* Starts the timer of a new suspicion raised by |accuser|: 0, or -1 when
 * no timer could be allocated (the member is then left ALIVE). */
int swim_susp_start(wr_swim *sw, size_t i, const char *accuser,
                    wr_tstamp now);
/* 1 when the member whose id hashes to |h| (or |from|) is a new
 * independent confirmer; the timer is retimed. */
int swim_susp_confirm_hash(swim_susp *s, uint32_t h);
int swim_susp_confirm(swim_susp *s, const char *from);
/* We saw member |i|'s port refused (ourselves or through a relay). */
void swim_susp_refused(wr_swim *sw, size_t i);
/* 1 when |from|'s confirmation of member |i|'s suspicion counts. */
int swim_confirmer_ok(wr_swim *sw, size_t i, const char *from);
/* We heard of member |i|'s suspicion from someone else: maybe probe it. */
void swim_confirm_probe(wr_swim *sw, size_t i, wr_tstamp now);
void swim_confirm_tick(wr_swim *sw, wr_tstamp now);
/* 1 when |seq| is one of our confirmation probes' (an ACK ends it). */
int swim_confirm_ack(wr_swim *sw, uint32_t seq, int nack);
void swim_susp_tick(wr_swim *sw, wr_tstamp now);
void swim_susp_unreachable(wr_swim *sw, const wr_addr *to, wr_tstamp now);
wr_tstamp swim_susp_deadline(const wr_swim *sw);

/* ---- what suspicion.c and probe.c need from the protocol (swim.c) ---- */

/* Queues a datagram descriptor (encoded in wr_swim_send), or NULL when
 * the outbox is full (counted in tx_dropped). */
swim_out *swim_out_push(wr_swim *sw, uint8_t type, const wr_addr *to);
/* Our table's entry for member |i| as an update; SUSPECT and DEAD name
 * |from| as the accuser (us when NULL). */
void swim_member_update(const wr_swim *sw, size_t i, const char *from,
                        wr_swim_update *u);
/* The merge rules for a SUSPECT, and for a DEAD (|left|: a LEFT). */
void swim_apply_suspect(wr_swim *sw, const wr_swim_update *u, wr_tstamp now);
void swim_apply_dead(wr_swim *sw, const wr_swim_update *u, wr_tstamp now,
                     int left);
/* Pushes what we just originated to push_fanout members now. */
void swim_push_soon(wr_swim *sw, wr_tstamp now);
/* PING_REQs for |target| at |addr| under |seq| to indirect_checks relays
 * (of the target's region first, with regions; |*in_region| counts
 * those); returns how many were sent (probe.c). */
unsigned swim_ping_reqs(wr_swim *sw, const char *target, const wr_addr *addr,
                        uint32_t seq, unsigned *in_region);

/* ---- what sync.c needs from the core (swim.c) ---------------------------- */

swim_members *swim_core_table(wr_swim *sw);
/* Our own entry: ALIVE, or LEFT once leaving. */
void swim_core_self_update(const wr_swim *sw, wr_swim_update *u);
/* Our entry for member |i| (SUSPECT/DEAD name us as the accuser). */
void swim_core_member_update(const wr_swim *sw, size_t i, wr_swim_update *u);
/* Merges one entry from a sync stream: the gossip rules, without
 * re-gossiping what we learn (the stream is the backstop, not news),
 * except our own refutations and members back from a DEAD verdict of
 * ours (held, or reaped and remembered).  A DEAD about another member is
 * merged as a SUSPECT (memberlist's mergeState).  The sync sends member
 * entries only (USER state left it in v4). */
void swim_core_merge(wr_swim *sw, const wr_swim_update *u, wr_tstamp now);
/* A peer's digest entry about us: a verdict at or above our incarnation
 * (or an ALIVE above it) is refuted now, so the STATE we send next
 * already carries our new incarnation. */
void swim_core_self_digest(wr_swim *sw, uint32_t inc, uint8_t state,
                           wr_tstamp now);
/* The application's app-sync hooks (NULL: none) and their user_data. */
const wr_swim_app_sync *swim_core_app_sync(const wr_swim *sw, void **pud);
/* The core's counters, for the sync's reasons of failure. */
wr_swim_stats *swim_core_stats(wr_swim *sw);
wr_swim_keyring *swim_core_keyring(wr_swim *sw);
const wr_mem *swim_core_mem(const wr_swim *sw);
void swim_core_rand(wr_swim *sw, uint8_t *dst, size_t len);
void swim_core_sync_result(wr_swim *sw, int ok, wr_tstamp now);

#endif
