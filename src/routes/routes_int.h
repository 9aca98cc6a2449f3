/*
 * Internals shared by table.c, sync.c and codec.c (not installed).
 *
 * Memory layout (the <= 256 bytes per entry budget at 100,000 names):
 * an entry points at its name node (the name stored inline, once per
 * name), its owner record and an interned account string, so the three
 * strings cost nothing per entry; the entry itself is ~104 bytes.
 */
#ifndef WARREN_ROUTES_INT_H
#define WARREN_ROUTES_INT_H

#include "warren/routes.h"

typedef struct rt_name rt_name;
typedef struct rt_owner rt_owner;
typedef struct rt_acct rt_acct;
typedef struct rt_entry rt_entry;

/* An interned account string, refcounted by the entries naming it. */
struct rt_acct {
  rt_acct *hnext;
  uint32_t refs;
  uint8_t len;
  char s[];
};

struct rt_entry {
  rt_name *name;
  rt_owner *owner;
  rt_acct *acct;
  rt_entry *nnext;          /* the name's entries */
  rt_entry *lprev, *lnext;  /* the owner's log, ascending seq */
  uint64_t seq, version, claimed_at;
  wr_tstamp at;             /* when it reached us (tombstone age) */
  uint32_t options;
  uint8_t state;            /* wr_route_state */
  uint8_t serving;          /* serves now (for lost/changed) */
  uint16_t tag;             /* confirmed by the full log being received
                               (sync.c); lives in what was padding */
  uint8_t session[WR_ROUTE_SESSION_LEN];
};

struct rt_name {
  rt_name *hnext;
  rt_entry *entries;
  uint8_t digest[16]; /* this name's share of the table digest (0 = none) */
  uint8_t routed;     /* has a route now */
  uint8_t len;
  char s[];
};

/* Seqs received above the contiguous watermark (out-of-order gossip).
 * 14 is enough for the reordering gossip produces (a few packets); when
 * it overflows the highest are forgotten and the next sync's mark moves
 * the watermark instead. */
#define RT_ABOVE_MAX 14

struct rt_owner {
  rt_owner *hnext;
  uint64_t epoch;      /* of the log we hold; 0 = none yet */
  uint64_t wm;         /* contiguous watermark within epoch */
  uint64_t gc_floor;   /* highest seq of a tombstone we collected */
  uint64_t above[RT_ABOVE_MAX];
  rt_entry *head, *tail; /* the log, ascending seq */
  rt_entry *ins;         /* the entry inserted last (log_insert's hint) */
  size_t nentries;
  size_t bytes;          /* table memory its entries pin (entry_cost) */
  /* Ingest token bucket (owner_rate, owner_burst), in thousandths of an
   * entry so that a millisecond's refill is whole; tb_at is when it was
   * last refilled. */
  uint64_t tb_milli;
  wr_tstamp tb_at;
  wr_tstamp dead_since;  /* valid when dead */
  wr_tstamp tomb_at;     /* valid when collected */
  uint16_t full_tag;     /* the full log receive begun last (sync.c) */
  uint8_t nabove;
  uint8_t dead;          /* reported DEAD/LEFT */
  uint8_t unknown;       /* heard of before membership reported it */
  uint8_t unknown_held;  /* unknown and holding a log: in nunknown */
  uint8_t collected;     /* (owner, epoch) collected: owner tombstone */
  uint8_t is_self;
  uint8_t len;
  char id[];
};

/* A bucketed hash table of chains (names, owners, accounts alike). */
typedef struct rt_hash {
  void **b;
  size_t nb, n;
} rt_hash;

/* One admitted gossip entry waiting in the ingest queue (ingest.c). */
typedef struct rt_ingest {
  wr_route_entry e;
  uint8_t charged; /* a token was taken at push */
  uint16_t len;
  uint8_t enc[WR_ROUTE_ENCODED_MAX];
} rt_ingest;

struct wr_routes {
  wr_routes_config cfg;
  wr_routes_callbacks cb;
  const wr_mem *mem;
  void *user_data;
  uint8_t key[16]; /* SipHash key */
  rt_hash names, owners, accts;
  rt_owner *self;
  uint64_t lamport;
  uint64_t self_seq;
  size_t nentries, nrouted, ntombs;
  size_t nunknown; /* owners with |unknown_held| (max_unknown_owners) */
  uint8_t digest[16];
  wr_tstamp next_gc, last_gc;
  wr_routes_stats st;
  int in_callback;
  /* Counts entry frees: a session may keep an entry pointer as a
   * position hint between calls only while this has not moved. */
  uint64_t free_gen;
  uint16_t full_tag_next;
  /* The ingest queue: a ring of cfg.ingest_max slots, allocated on first
   * use. */
  rt_ingest *iq;
  size_t iq_head, iq_n;
};

/* Validated decode (codec.c).  Sync records: kind 1 mark, 2 entry. */
typedef struct rt_mark {
  char owner[WR_ROUTE_OWNER_MAX + 1];
  uint64_t epoch, watermark, floor;
  int collected, full;
} rt_mark;

int routes_text_ok(const char *s, size_t max);
int routes_entry_valid(const wr_route_entry *e);
int routes_decode_record(const uint8_t *buf, size_t len, int *kind,
                         wr_route_entry *e, rt_mark *m, const wr_mem *mem);
wr_ssize routes_encode_mark(const rt_mark *m, uint8_t *dst, size_t cap);
wr_ssize routes_encode_entry_record(const wr_route_entry *e, uint8_t *dst,
                                    size_t cap);
int routes_decode_entry_mem(const uint8_t *buf, size_t len, wr_route_entry *e,
                            const wr_mem *mem);

/* table.c, for sync.c. */
rt_owner *routes_owner_find(const wr_routes *t, const char *id);
void routes_entry_export(const rt_entry *x, wr_route_entry *e);
/* Applies a validated entry.  Returns 1 news, 0 old news (or over a
 * quota), RT_RATE_DROPPED (its owner over its ingest rate: not applied,
 * not counted as received, so the sender's mark must not bury it; see
 * sync.c), or a fatal error. */
#define RT_RATE_DROPPED 2
/* |charge|: take a token of the owner's bucket (0 for an entry the
 * ingest queue admitted, which took it then). */
int routes_apply_entry(wr_routes *t, const wr_route_entry *e, int charge,
                       wr_tstamp now);
/* Would |e| change the table (not old news, not ours)?  1 or 0; no
 * state changes. */
int routes_entry_is_news(const wr_routes *t, const wr_route_entry *e);
/* Takes one token of |o|'s ingest bucket at |now|: 1, or 0 when empty
 * (counted in rate_drops). */
int routes_owner_take(wr_routes *t, rt_owner *o, wr_tstamp now);
int routes_apply_mark(wr_routes *t, const rt_mark *m, wr_tstamp now);
/* Drops |o|'s entries with seq <= hi whose tag is not |tag| (a full log
 * showed they were replaced or collected at the sender). */
void routes_drop_untagged(wr_routes *t, rt_owner *o, uint64_t hi,
                          uint16_t tag);
/* The entry of |o| for |name|, or NULL. */
rt_entry *routes_entry_find(const wr_routes *t, const rt_owner *o,
                            const char *name);
/* Makes sure |o| (created if needed) is at |epoch|, dropping an older
 * epoch's log.  Returns the owner, or NULL (over max_owners, no memory,
 * or the epoch is older than or collected at ours). */
rt_owner *routes_owner_at(wr_routes *t, const char *id, uint64_t epoch);
/* Marks |o|'s seq as received and advances the watermark. */
void routes_owner_advance(rt_owner *o, uint64_t w);

/* ---- the table's files ----
 *
 *   table.c          config, lifecycle, names and entries, local writes,
 *                    replication (entries and marks applied)
 *   table_hash.c     the keyed hash tables and the interned accounts
 *   table_owner.c    owners: records, quotas, token bucket, watermarks
 *   table_resolve.c  resolution, the digest and the queries
 *   table_gc.c       the GC timer and what it collects
 */

/* Each node type keeps its key at a different place. */
typedef enum { H_NAME, H_OWNER, H_ACCT } hkind;

typedef struct verdict {
  const rt_acct *win; /* winning account, NULL = no candidate */
  const rt_entry *newest;
} verdict;

/* table.c */
rt_name *routes_name_find(const wr_routes *t, const char *s);
/* Frees |e| and recomputes its name (dropping the name when empty). */
void routes_entry_remove(wr_routes *t, rt_entry *e);

/* table_hash.c */
void *routes_hfind(const wr_routes *t, const rt_hash *h, hkind k,
                   const char *s, size_t n);
void routes_hgrow(wr_routes *t, rt_hash *h, hkind k);
void routes_hinsert(wr_routes *t, rt_hash *h, hkind k, void *node);
void routes_hremove(wr_routes *t, rt_hash *h, hkind k, void *node);
rt_acct *routes_acct_get(wr_routes *t, const char *s);
void routes_acct_put(wr_routes *t, rt_acct *a);
void routes_hfree(wr_routes *t, rt_hash *h);

/* table_owner.c */
void routes_unknown_release(wr_routes *t, rt_owner *o);
void routes_owner_free(wr_routes *t, rt_owner *o);
/* NULL with *err = WR_ERR_LIMIT (no tombstone to evict) or WR_ERR_NOMEM. */
rt_owner *routes_owner_new(wr_routes *t, const char *id, int *err);
size_t routes_entry_cost(size_t namelen, size_t acctlen);
size_t routes_entry_cost_of(const rt_entry *x);
int routes_over_quota(const wr_routes *t, const rt_owner *o, size_t cost);
void routes_owner_seen(rt_owner *o, uint64_t s);
void routes_owner_drop_log(wr_routes *t, rt_owner *o);
void routes_owner_new_epoch(wr_routes *t, rt_owner *o, uint64_t epoch);
int routes_owner_is_known(wr_routes *t, const char *id);
void routes_owner_first_state(wr_routes *t, rt_owner *o, wr_tstamp now);

/* table_resolve.c */
int routes_candidate(const rt_entry *e);
void routes_decide(const rt_name *nm, verdict *v);
/* After one of |nm|'s entries or owners changed: serving flags, digest,
 * routed count, then the lost/changed callbacks. */
void routes_recompute(wr_routes *t, rt_name *nm);

/* table_gc.c */
/* Asks for a GC scan at |when| (not sooner than the batching allows). */
void routes_gc_want(wr_routes *t, wr_tstamp when);
void routes_owner_collect(wr_routes *t, rt_owner *o, wr_tstamp now);

#endif
