/*
 * The replicated ownership table (issue 10, DESIGN.md "The ownership
 * table"): "public name -> owner node" for the whole fleet, as a sans-IO
 * core.  No clock, no sockets, no libuv, no swim: the node's wiring (or
 * the simulator) moves encoded updates between this table and swim's
 * USER gossip and app-state sync, and reports membership changes.
 *
 * Model.  Every node is the only writer of the bindings it holds: its
 * *log* is one entry per name it has bound, each stamped with the owner's
 * epoch (a restarted owner starts a new, larger one) and a sequence
 * number counted per owner and epoch (1, 2, 3 ...; a later write of the
 * same name replaces the earlier entry, so the log is compacted).  Each
 * entry also carries a Lamport version (max seen + 1 at the write), which
 * orders writes *across* owners (moves), and the claim time of its
 * account (the version of the account's first claim, kept by moves).
 *
 * Resolution of a name is a pure function of the entries held and of
 * which owners are live, the same on every node whatever order updates
 * arrived in:
 *   1. candidates: ACTIVE entries whose owner is not DEAD/LEFT;
 *   2. the winning account: the smallest (claimed_at, account) among the
 *      candidates (the established holder keeps the name; concurrent
 *      claims fall to one account everywhere);
 *   3. among that account's candidates, the newest session (the session
 *      of the entry with the largest (version, owner)) serves with all of
 *      its entries (one client holding links to several nodes); when that
 *      newest entry has WR_ROUTE_OPT_BALANCE, every entry of the account
 *      with the option serves too (balancing).  The rest lost: another
 *      account holds the name (TAKEN) or a newer session moved it (MOVED).
 *
 * Replication.  A local write (bind, release) returns the encoded entry
 * to gossip (swim's USER update).  Anti-entropy is scuttlebutt by owner:
 * the digest is one mark (owner, epoch, watermark) per owner, where the
 * watermark w says "my copy of this owner's log is at least as new as the
 * owner's own log was at its seq w"; the answer to a digest is, per owner,
 * only the entries above the peer's watermark plus our own mark, so its
 * cost grows with the changes, not with the table.  An incoming entry at
 * or below our watermark for its owner is old news and is ignored, which
 * is also what keeps a collected tombstone from being resurrected by a
 * stale peer (a tombstone is only collected once it is below the
 * watermark).  A tombstone collected above a peer's watermark cannot be
 * sent any more, so for such a peer (its watermark below the highest seq
 * we collected, our "floor") the answer is the owner's whole log behind a
 * full mark, and the peer drops what the log skipped (docs/ROUTES.md).
 *
 * Owners.  The wiring reports each member's liveness (from swim).  A DEAD
 * or LEFT owner's entries stop resolving at once, on every node, and its
 * log is collected after dead_grace_ms; its (owner, epoch) is remembered
 * (owner_tombstone_ms) so stale peers cannot bring the log back.  An
 * owner that learns (from a peer's digest) that its current epoch was
 * collected somewhere starts a new epoch and republishes its bindings.
 */
#ifndef WARREN_ROUTES_H
#define WARREN_ROUTES_H

#include "warren/types.h"

typedef struct wr_routes wr_routes;

#define WR_ROUTE_NAME_MAX 63    /* one DNS label */
#define WR_ROUTE_OWNER_MAX 64   /* = WR_SWIM_ID_MAX */
#define WR_ROUTE_ACCOUNT_MAX 64
#define WR_ROUTE_SESSION_LEN 16
/* Versions and sequence numbers above this are refused on ingest, so a
 * hostile or broken peer cannot push the Lamport clock to where it would
 * wrap (2^62 writes at a million a second is 146,000 years). */
#define WR_ROUTE_VERSION_MAX (UINT64_C(1) << 62)
/* An encoded entry (gossip payload, sync record) is at most this long. */
#define WR_ROUTE_ENCODED_MAX 512

typedef enum wr_route_state {
  WR_ROUTE_ACTIVE = 0,
  WR_ROUTE_RELEASED = 1,
} wr_route_state;

#define WR_ROUTE_OPT_BALANCE 0x1u

typedef struct wr_route_entry {
  char name[WR_ROUTE_NAME_MAX + 1];
  char owner[WR_ROUTE_OWNER_MAX + 1];
  char account[WR_ROUTE_ACCOUNT_MAX + 1];
  uint8_t session[WR_ROUTE_SESSION_LEN];
  uint64_t epoch;      /* the owner's epoch */
  uint64_t seq;        /* the owner's log sequence within the epoch */
  uint64_t version;    /* Lamport */
  uint64_t claimed_at; /* the version of the account's original claim */
  wr_route_state state;
  uint32_t options;    /* WR_ROUTE_OPT_* */
} wr_route_entry;

typedef enum wr_route_owner_state {
  WR_ROUTE_OWNER_LIVE = 0,    /* alive or suspect: still tried */
  WR_ROUTE_OWNER_DEAD = 1,    /* dead or left: no route */
} wr_route_owner_state;

/* Why a local binding stopped serving (the lost callback). */
typedef enum wr_route_loss {
  WR_ROUTE_LOST_TAKEN = 1, /* another account holds the name */
  WR_ROUTE_LOST_MOVED = 2, /* a newer session of the same account */
} wr_route_loss;

/* Verdict on one candidate entry (wr_routes_explain). */
typedef enum wr_route_verdict {
  WR_ROUTE_SERVES = 0,
  WR_ROUTE_V_TAKEN = 1,      /* another account's older claim wins */
  WR_ROUTE_V_MOVED = 2,      /* a newer session of its account serves */
  WR_ROUTE_V_RELEASED = 3,
  WR_ROUTE_V_OWNER_DEAD = 4,
} wr_route_verdict;
const char *wr_route_verdict_name(wr_route_verdict v);

typedef struct wr_routes_config {
  char self[WR_ROUTE_OWNER_MAX + 1]; /* our node id */
  uint64_t epoch;            /* ours: wall-clock ms at start, > any before */
  uint64_t released_grace_ms;/* tombstones kept at least this long (60 s) */
  uint64_t dead_grace_ms;    /* a dead owner's log kept this long (60 s) */
  uint64_t owner_tombstone_ms; /* a collected (owner, epoch) remembered (24 h) */
  size_t max_entries;        /* all entries held, every owner (1,000,000) */
  /* One owner's log, in entries (10,000) and in bytes of table memory
   * its entries pin (2 MiB: an entry costs ~144 bytes plus its name and
   * account, so ~200 bytes for a 20-character name and a 36-character
   * key account, and 271 at the length limits).  A node owns one entry
   * per name its clients bound (clients bind a few names each) plus the
   * tombstones of the last released_grace_ms, so 10,000 is ~2,500
   * clients of four names per node; a larger node raises both.  Each
   * table holds up to this much of every owner, so a poisoned or broken
   * peer costs each node ~2 MiB, not hundreds.  Over either, an
   * incoming entry of a new name is dropped (quota_drops). */
  size_t max_per_owner;
  size_t max_owner_bytes;
  size_t max_owners;         /* owners and owner tombstones (20,000) */
  /* Owners membership has not reported (owner_known says no): a
   * gossiped entry of one is most likely a reaped member's old log, or a
   * hostile member making owners up to get around the per-owner quota.
   * At most max_unknown_owners (256) such owners hold a log, each with
   * at most max_per_unknown_owner entries (16): 4,096 entries, about
   * 1.2 MiB at the length limits, at worst.  An honest owner is unknown
   * only between its first gossip and its join reaching us.  An
   * entry over either is dropped like one over the rate (counted in
   * unknown_drops, not news, not counted as received), so once
   * membership reports the owner, a sync brings it. */
  size_t max_unknown_owners;
  size_t max_per_unknown_owner;
  /* Per-owner ingest rate (a token bucket in virtual time): a remote
   * owner's writes that change this table are taken at up to owner_rate
   * a second after a burst of owner_burst; the rest are dropped and
   * counted (rate_drops), and are neither news (not gossiped on) nor
   * counted as received (the watermark stays below them), so a sync
   * offers them again later, itself within the same bucket.  An honest
   * owner writes when its clients bind, move or leave: owner_burst (2,000)
   * lets a node rewrite a fifth of a full log at once (clients moving in
   * from a drained node, a republish) and owner_rate (500/s) is far above
   * a node's steady churn, while a flooding member costs each node at
   * most 500 applies a second.  0 = no limit. */
  uint32_t owner_rate;
  uint32_t owner_burst;
  /* The ingest queue (wr_routes_ingest_*): gossiped entries admitted by
   * the checks above, waiting to be applied a slice per loop turn
   * (1,024; beyond, dropped and counted in ingest_drops). */
  size_t ingest_max;
  /* Keys the name hash table (SipHash-2-4): names are chosen by clients,
   * so an unkeyed hash would let one client turn lookups into list walks.
   * NULL means libsodium's randombytes_buf; tests pass a seeded PCG. */
  wr_rand_fn rand;
  void *rand_user_data;
} wr_routes_config;

void wr_routes_config_default(wr_routes_config *cfg);
/* Sets one limit by name: "max-entries", "owner-max-entries",
 * "owner-max-bytes", "owner-rate" (0 = no limit), "owner-burst",
 * "ingest-max", "unknown-owners", "unknown-owner-max-entries"
 * (underscores work too).  Returns 0, or WR_ERR_INVAL
 * (unknown name, not a number, out of range) with a one-line reason in
 * |err|.  The node's --routes-set K=V,... and [routes] section. */
int wr_routes_config_set(wr_routes_config *cfg, const char *name,
                         const char *value, char *err, size_t errlen);

/* Events (optional).  They must not call back into the table except the
 * read-only queries (bind, release and apply return WR_ERR_INTERNAL if
 * they do); record and act after the call that fired them.  lost and
 * changed fire from bind, release, apply, owner_state, tick and
 * delta_in; republish from delta_in only. */
typedef struct wr_routes_callbacks {
  /* A binding of ours stopped serving because of another entry: the
   * wiring closes it (NAME_TAKEN / NAME_MOVED to its client) and then
   * calls wr_routes_release for it. */
  void (*lost)(wr_routes *t, const wr_route_entry *e, wr_route_loss why,
               void *user_data);
  /* The resolution of |name| changed (new owner set or none).  Lets the
   * wiring count convergence and invalidate caches. */
  void (*changed)(wr_routes *t, const char *name, void *user_data);
  /* Our epoch was found collected at a peer, or a peer holds a log of
   * ours ahead of this process (a newer epoch: the clock went back since
   * an earlier run; or ours with a higher seq: a restart that reused its
   * epoch), so we started a new epoch (that epoch + 1) and re-wrote every
   * active binding in it, keeping versions and claim times: each
   * re-written entry is handed here to be gossiped like the return of
   * wr_routes_bind.  stats.epoch shows the epoch in use. */
  void (*republish)(wr_routes *t, const uint8_t *enc, size_t len,
                    void *user_data);
  /* Does membership know |owner| (alive or suspect)?  Asked once, when
   * an entry or a mark brings an owner this table holds nothing of.  0
   * makes it dead at once (no route; its log collected after
   * dead_grace_ms unless wr_routes_owner_state revives it): the log of
   * an owner that died and was reaped from membership while a peer
   * still held it.  NULL: unknown owners count as live. */
  int (*owner_known)(wr_routes *t, const char *owner, void *user_data);
} wr_routes_callbacks;

typedef struct wr_routes_stats {
  size_t entries, names, owners, owner_tombstones;
  uint64_t applied, stale;      /* incoming entries taken / old news */
  uint64_t rejected;            /* malformed or invalid (counted, dropped) */
  uint64_t quota_drops;         /* over max_per_owner, max_owner_bytes
                                   or max_entries */
  uint64_t rate_drops;          /* over the owner's ingest rate */
  uint64_t unknown_drops;       /* from owners membership never reported,
                                   over max_unknown_owners or
                                   max_per_unknown_owner */
  uint64_t ingest_drops;        /* the ingest queue was full */
  size_t ingest_queued;         /* entries waiting in the ingest queue */
  uint64_t collected;           /* tombstones and dead logs collected */
  uint64_t lamport;             /* the highest version seen */
  uint64_t self_seq;            /* our log's sequence */
  uint64_t epoch;               /* our current epoch (grows on republish) */
  uint64_t sync_records_out;    /* records written by delta_next */
  uint64_t sync_bytes_out;      /* their bytes */
} wr_routes_stats;

/* Returns 0, WR_ERR_INVAL (bad config: self not printable ASCII without
 * spaces, epoch 0 or over WR_ROUTE_VERSION_MAX, a zero cap),
 * WR_ERR_INTERNAL (libsodium failed to initialise) or WR_ERR_NOMEM. */
int wr_routes_new(wr_routes **pt, const wr_routes_config *cfg,
                  const wr_routes_callbacks *cb, const wr_mem *mem,
                  void *user_data, wr_tstamp now);
void wr_routes_del(wr_routes *t);
void wr_routes_get_stats(const wr_routes *t, wr_routes_stats *out);

/* ---- local writes (we are the owner) ---------------------------------- */

/*
 * Binds |name| for a client of ours.  Refused with WR_ERR_EXISTS when
 * another account holds a live binding of the name (as this table knows
 * it); WR_ERR_INVAL for a bad name/account; WR_ERR_LIMIT over quota
 * (max_per_owner, max_entries) or with the Lamport clock at
 * WR_ROUTE_VERSION_MAX; WR_ERR_NOMEM (the table is unchanged);
 * WR_ERR_INTERNAL from inside a callback.
 * On success the new entry is encoded into |enc| (cap >=
 * WR_ROUTE_ENCODED_MAX) with its length in |*enclen|, for the wiring to
 * gossip.  Re-binding the same (name, account, session, options) while
 * it is ACTIVE is a refresh: no new write (a new version would let an
 * older session take the name back from a newer one); |enc| gets the
 * current entry.  A bind of a new session (a move) keeps the smallest
 * claimed_at of the account's live entries for the name.
 */
int wr_routes_bind(wr_routes *t, const char *name, const char *account,
                   const uint8_t session[WR_ROUTE_SESSION_LEN],
                   uint32_t options, uint8_t *enc, size_t *enclen,
                   wr_tstamp now);
/* Releases our binding of |name| (a RELEASED entry, encoded as above).
 * WR_ERR_NOTFOUND when we hold none (or it is released already),
 * WR_ERR_LIMIT, WR_ERR_INTERNAL as for bind. */
int wr_routes_release(wr_routes *t, const char *name, uint8_t *enc,
                      size_t *enclen, wr_tstamp now);

/* ---- replication ----------------------------------------------------- */

/* One gossiped entry, applied at once (the node takes gossip through
 * wr_routes_ingest_* below).  Returns 1 when it changed our table (news:
 * gossip it on), 0 when it was old news (or dropped over a quota, counted
 * in quota_drops, or over its owner's ingest rate, counted in rate_drops:
 * not gossiped on, and a later sync offers it again), WR_ERR_PROTO when malformed or invalid (counted in
 * rejected), WR_ERR_NOMEM (the table is unchanged) or WR_ERR_INTERNAL
 * from inside a callback.  Entries whose owner is us are old news: we are
 * the only writer of our log.  May fire callbacks. */
int wr_routes_apply(wr_routes *t, const uint8_t *enc, size_t len,
                    wr_tstamp now);

/*
 * The bounded ingest of gossip (the node's USER updates).  A swim
 * callback must not take long, and a flood of well-formed entries from
 * one member must not stall the loop, so gossip is taken in two steps:
 *
 * wr_routes_ingest_push decodes and checks one entry at once (invalid:
 * WR_ERR_PROTO, counted in rejected; old news: 0; our own: 0; its owner
 * over its ingest rate: 0, counted in rate_drops; the queue full at
 * ingest_max: 0, counted in ingest_drops) and queues what is left:
 * returns 1.  Nothing is applied and no callback fires.
 *
 * wr_routes_ingest_run applies at most |max| queued entries, oldest
 * first, exactly as wr_routes_apply would, and hands each that was news
 * to |relay| (may be NULL; it must not call into the table) with its
 * encoding, for the wiring to gossip on.  Returns how many were taken
 * off the queue, or WR_ERR_NOMEM / WR_ERR_INTERNAL (that entry is lost;
 * the next sync carries it).  wr_routes_ingest_pending says how many
 * wait.  May fire the table's callbacks.
 */
int wr_routes_ingest_push(wr_routes *t, const uint8_t *enc, size_t len,
                          wr_tstamp now);
wr_ssize wr_routes_ingest_run(wr_routes *t, size_t max,
                              void (*relay)(const wr_route_entry *e,
                                            const uint8_t *enc, size_t len,
                                            void *ud),
                              void *ud, wr_tstamp now);
size_t wr_routes_ingest_pending(const wr_routes *t);

/* Membership says |owner| now runs at routes epoch |epoch| (a restarted
 * node advertises its new epoch with its ALIVE): the owner's log of an
 * older epoch is dropped at once, as a newer-epoch entry or mark would
 * drop it, instead of serving again until such an entry arrives (which,
 * for a node that came back with no bindings, is never).  An epoch not
 * newer than the one held, an unknown owner, or ourselves: nothing. */
void wr_routes_owner_epoch(wr_routes *t, const char *owner, uint64_t epoch,
                           wr_tstamp now);

/* A member's liveness, from swim (owners membership has not
 * reported: see owner_known).  DEAD
 * takes the owner's entries out of resolution at once; LIVE brings them
 * back unless its log was collected meanwhile (dead_grace_ms). */
void wr_routes_owner_state(wr_routes *t, const char *owner,
                           wr_route_owner_state st, wr_tstamp now);

/*
 * Anti-entropy session (one per swim sync; this is what swim's opaque
 * app-state records carry).  digest_next writes our marks one record at a
 * time; digest_in takes the peer's (all of them, before the first
 * delta_next); delta_next then writes, per owner concerned, the entries
 * the peer lacks (ascending seq) followed by our mark, preceded by a
 * full mark when the whole log is sent, or a single collected mark for
 * an owner tombstone the peer lacks; delta_in applies the peer's.
 * *_next return a length, 0 when done, WR_ERR_NOBUF (cap <
 * WR_ROUTE_ENCODED_MAX) or WR_ERR_NOMEM.  *_in return 0, WR_ERR_PROTO
 * (malformed, counted in rejected; the session stays usable),
 * WR_ERR_NOMEM, or for digest_in WR_ERR_INVAL after delta_next began.
 * The session holds no pointer into the table that it trusts across
 * calls (an entry position hint is revalidated), so the table may change
 * between calls; the session must be deleted before the table.
 */
typedef struct wr_routes_sync wr_routes_sync;
int wr_routes_sync_new(wr_routes *t, wr_routes_sync **ps, wr_tstamp now);
wr_ssize wr_routes_sync_digest_next(wr_routes_sync *s, uint8_t *dst,
                                    size_t cap);
int wr_routes_sync_digest_in(wr_routes_sync *s, const uint8_t *rec,
                             size_t len);
wr_ssize wr_routes_sync_delta_next(wr_routes_sync *s, uint8_t *dst,
                                   size_t cap);
int wr_routes_sync_delta_in(wr_routes_sync *s, const uint8_t *rec,
                            size_t len, wr_tstamp now);
void wr_routes_sync_del(wr_routes_sync *s);

/*
 * The sync above as swim's app-state hooks (swim.h, wr_swim_app_sync):
 * set `app_sync = wr_routes_swim_sync()` and `app_sync_user_data` to a
 * host that outlives the swim core.  |now| gives the clock for applying
 * delta records; |applied| (may be NULL) runs after each one, outside
 * the table call (the node uses it to act on the table's callbacks).
 * Neither may call into swim (swim.h's rule for its hooks).
 */
struct wr_swim_app_sync;
typedef struct wr_routes_sync_host {
  wr_routes *rt;
  wr_tstamp (*now)(void *ud);
  void (*applied)(void *ud);
  void *ud;
} wr_routes_sync_host;
const struct wr_swim_app_sync *wr_routes_swim_sync(void);

/*
 * The swim USER key of a route entry: WR_ROUTE_KEY_PREFIX and 32 hex
 * digits of BLAKE2b-128 over (owner NUL name).  swim's piggyback queue
 * keeps one update per key (the newer version replaces the older), and
 * one owner writes one entry per name, so a key per (owner, name) is
 * exactly "the latest write of this binding".  Hashing keeps the key
 * within swim's 64 characters whatever the lengths of owner and name.
 * |cap| >= WR_ROUTE_KEY_LEN + 1.
 */
#define WR_ROUTE_KEY_PREFIX "r."
#define WR_ROUTE_KEY_LEN 34
void wr_route_gossip_key(const char *owner, const char *name, char *out,
                         size_t cap);

/* ---- timers ---------------------------------------------------------- */

wr_tstamp wr_routes_deadline(const wr_routes *t);
void wr_routes_tick(wr_routes *t, wr_tstamp now);

/* ---- queries --------------------------------------------------------- */

/*
 * The entries serving |name| (at most |cap| copied into |out|), ours
 * first.  Returns how many serve (0: no route), which may exceed |cap|.
 */
size_t wr_routes_resolve(const wr_routes *t, const char *name,
                         wr_route_entry *out, size_t cap);
/* Every candidate entry of |name| with its verdict; returns the count. */
size_t wr_routes_explain(const wr_routes *t, const char *name,
                         void (*fn)(const wr_route_entry *e,
                                    wr_route_verdict v, void *ud),
                         void *ud);
/* Every name with a route, its winning entry (the newest serving one)
 * and how many entries serve it; unordered. */
void wr_routes_foreach(const wr_routes *t,
                       void (*fn)(const wr_route_entry *winner,
                                  size_t nserving, void *ud),
                       void *ud);
/* Names with a route now. */
size_t wr_routes_count(const wr_routes *t);
/* A hash of the resolved table (names with a route and the entries that
 * serve them), independent of arrival order: equal digests on two nodes
 * mean they route alike.  It is the XOR over serving entries of
 * BLAKE2b-128(name, owner, account, version, session), unkeyed so that
 * nodes can compare it.  Kept incrementally (O(1) to read). */
void wr_routes_digest(const wr_routes *t, uint8_t out[16]);

/* Encoding of one entry (the gossip payload), for tests and tools.
 * encode returns the length, WR_ERR_INVAL for an entry that would be
 * refused on ingest, or WR_ERR_NOBUF; decode returns 0 or WR_ERR_PROTO
 * (every field is validated as on ingest). */
wr_ssize wr_route_entry_encode(const wr_route_entry *e, uint8_t *dst,
                               size_t cap);
int wr_route_entry_decode(const uint8_t *buf, size_t len, wr_route_entry *e);
/* 1 when |name| is a valid public name: 1-63 of [a-z0-9-], not starting
 * or ending with '-'. */
int wr_route_name_ok(const char *name);

#endif
