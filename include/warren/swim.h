/*
 * SWIM membership with Lifeguard: the sans-IO state machine (issue 4,
 * DESIGN.md "Membership: SWIM with Lifeguard").  No clock, no sockets, no
 * libuv: the adapter (or the simulator) feeds datagrams to wr_swim_recv,
 * drains wr_swim_send until it returns 0, and arms one timer at
 * wr_swim_deadline, calling wr_swim_tick when it fires.  Packets are the
 * codec in swim_codec.h sealed with swim_seal.h.
 *
 * Anti-entropy runs over a byte stream (TCP in the daemon): a
 * wr_swim_sync session frames and seals its own messages, so the adapter
 * only moves bytes between the socket and wr_swim_sync_recv/_send.
 */
#ifndef WARREN_SWIM_H
#define WARREN_SWIM_H

#include "warren/swim_codec.h"
#include "warren/swim_seal.h"
#include "warren/types.h"

typedef struct wr_swim wr_swim;
typedef struct wr_swim_sync wr_swim_sync;

typedef enum wr_swim_state {
  WR_SWIM_ALIVE = 0,
  WR_SWIM_SUSPECT = 1,
  WR_SWIM_DEAD = 2,
  WR_SWIM_LEFT = 3, /* graceful leave: never reported as DEAD */
} wr_swim_state;

/* "alive", "suspect", "dead", "left" (the warrenctl/JSON spelling). */
const char *wr_swim_state_name(wr_swim_state s);

/*
 * Every tunable.  wr_swim_config_default fills the LAN profile; see
 * wr_swim_config_profile for WAN and LOCAL.  Times are in ms.  Each
 * default is justified in src/swim/config.c.
 */
/* The largest suspicion_confirmations: each suspicion remembers the
 * accuser plus this many confirmers, by id hash, so that a repeat never
 * counts twice (about 130 bytes per suspicion). */
#define WR_SWIM_CONFIRMATIONS_MAX 32

typedef struct wr_swim_config {
  char id[WR_SWIM_ID_MAX + 1]; /* our member id (unique, printable) */
  wr_addr gossip;              /* where peers send us datagrams */
  wr_addr data;                /* advertised in ALIVE for the data plane */
  char region[WR_SWIM_REGION_MAX + 1];
  char tags[WR_SWIM_TAGS_MAX + 1]; /* "k=v,k=v" */
  uint64_t probe_interval_ms;
  uint64_t probe_timeout_ms;
  unsigned indirect_checks;
  unsigned suspicion_mult;
  unsigned suspicion_max_timeout_mult;
  /* Independent confirmations that bring a suspicion from the maximum
   * timeout down to the minimum (memberlist: suspicion_mult - 2); at
   * most WR_SWIM_CONFIRMATIONS_MAX, which the core keeps room for. */
  unsigned suspicion_confirmations;
  unsigned retransmit_mult;
  unsigned gossip_nodes;
  uint64_t gossip_interval_ms;
  /* Dead members still receive gossip this long, so a wrongly declared
   * member hears about it and refutes. */
  uint64_t gossip_to_dead_ms;
  /* New updates we originate are pushed at once to this many random
   * members instead of waiting for the next gossip tick. */
  unsigned push_fanout;
  /* Anti-entropy period (0 = never); scaled up with log(n) as memberlist
   * does so a 10k fleet does not sync constantly. */
  uint64_t sync_interval_ms;
  uint64_t dead_reap_ms;
  unsigned awareness_max;
  /* 0 turns Lifeguard off (plain SWIM: no awareness, fixed suspicion
   * timeout, no nacks, no buddy system) for side-by-side comparison. */
  int lifeguard;
  /* warren's addition to Lifeguard: a member that hears of a new
   * suspicion which still lacks confirmations probes the suspect itself
   * at once, direct and then through indirect_checks relays, with
   * probability (k + push_fanout) / (n - 2), so the fleet sends about
   * k + push_fanout of them per suspicion whatever its size (at most
   * this many outstanding per member; 0 = off): a real failure gathers
   * its independent confirmations in one probe interval instead of over
   * several protocol rounds. */
  unsigned confirm_probes;
  /* warren's use of ICMP port unreachable (wr_swim_unreachable): when a
   * datagram to a member is refused, its host is up but nothing listens
   * on its gossip port (the process crashed, was killed or exited).  A
   * refused probe goes to the indirect probes at once and fails as soon
   * as every relay reports a refusal too, and a suspicion this node has
   * seen refused and that has its k independent confirmations lasts
   * only this long (scaled by our awareness) instead of the mult *
   * log10(n) rounds meant for a member that may be slow.  0 ignores
   * refusals (they can be forged by anyone who can send us ICMP). */
  uint64_t refused_suspicion_ms;
  /* Healing long partitions (serf's reconnect): every interval (0 = never)
   * a node tries, with probability failed / alive, an anti-entropy sync
   * with one random member it declared DEAD (never one that LEFT) within
   * the last reconnect_timeout_ms, reaped or not. */
  uint64_t reconnect_interval_ms;
  uint64_t reconnect_timeout_ms;
  /* Probing failed members (0 = never): every interval a node picks one
   * random entry among the members it knows and those it reaped while
   * DEAD, and when that one is a failed member (as above) it sends it an
   * empty-target PING carrying our ALIVE and our verdict.  Fleet-wide
   * that is about one datagram per failed member per interval.  A member
   * that answers is back (a healed partition): its ACK carries its
   * refuted ALIVE, and we start a reconnect sync with it at once (at most
   * one such sync per reconnect_interval_ms), so a partition heals within
   * about one interval of the network, not of the reconnect ticker. */
  uint64_t dead_probe_interval_ms;
  /* Bound of the USER piggyback queue (>= 1).  USER updates wait in a
   * queue of their own, apart from membership news (bounded at 4,096),
   * and a packet carries membership updates first and USER updates in
   * the room left: a flood of application updates evicts only its own
   * oldest-sent entries (counted in bcast_evicted_user), never a
   * suspicion or a refutation. */
  size_t user_queue_max;
  /* USER news from a peer (user_update said news) is relayed to
   * push_fanout members within this many ms, batched, and again every
   * this many ms while USER updates are still within their retransmit
   * budget, instead of waiting for gossip ticks; 0 = off (ticks only). */
  uint64_t user_relay_ms;
  /* Region-aware membership (docs/SWIM.md "Regions"; src/swim/region.c).
   * Off (0), or when every member is in one region, the core is
   * region-blind.  On, with members in two regions or more:
   * round-robin probes cover our own region only (LAN round trips
   * inside the probe timeout) and relays come from the target's region;
   * one probe in region_cross_probe (0 = none) goes to a random member
   * of another region, with relays there; a suspicion's timeout follows
   * log10 of its region's size and only members of its region confirm
   * it; of each round's gossip sends at most region_cross_gossip go to
   * other regions; and a cross-region probe that no member of the
   * target's region answered (target or relay) marks that region silent
   * instead of suspecting the member, until it has been silent for
   * region_down_ms (then its members are suspected one by one, as a
   * region that is really gone must be).  region_suspicion_mult (0: use
   * suspicion_mult) replaces suspicion_mult for those timeouts. */
  int region_aware;
  unsigned region_suspicion_mult;
  unsigned region_cross_probe;
  unsigned region_cross_gossip;
  uint64_t region_down_ms;
  wr_rand_fn rand;             /* required: seeded PCG in tests */
  void *rand_user_data;
} wr_swim_config;

/* LAN profile, no id or addresses. */
void wr_swim_config_default(wr_swim_config *cfg);
/* Applies the timing of "lan", "wan" or "local" (ids, addresses and rand
 * are kept).  Returns 0 or WR_ERR_INVAL for another name. */
int wr_swim_config_profile(wr_swim_config *cfg, const char *name);

/* The two ends of a suspicion's timer for a fleet (or region) of |n|
 * members, us included, with multiplier |mult| (suspicion_mult, or the
 * region's): *pmin once suspicion_confirmations members confirmed it,
 * *pmax for a lone accusation (Lifeguard; equal to *pmin with Lifeguard
 * off).  max = suspicion_max_timeout_mult * mult * max(1, log10 n)
 * probe intervals; min is mult * max(1, log10 n) probe intervals up to
 * 100 members and then grows by what an epidemic needs per tenfold
 * growth, log(10) / log(gossip_nodes + 1) gossip intervals, never more
 * than a probe interval (src/swim/config.c has the model).  The core's
 * timers and the simulator's bounds both come from here. */
void wr_swim_suspicion_bounds(const wr_swim_config *cfg, unsigned mult,
                              size_t n, uint64_t *pmin, uint64_t *pmax);

/* Sets one tunable by name: "probe-interval-ms", "probe-timeout-ms",
 * "indirect-checks", "suspicion-mult", "suspicion-max-timeout-mult",
 * "suspicion-confirmations", "retransmit-mult", "gossip-nodes",
 * "gossip-interval-ms", "gossip-to-dead-ms", "push-fanout",
 * "sync-interval-ms", "dead-reap-ms", "awareness-max", "lifeguard" (0|1),
 * "confirm-probes", "refused-suspicion-ms", "reconnect-interval-ms",
 * "reconnect-timeout-ms", "user-queue-max", "user-relay-ms",
 * "region-aware" (0|1), "region-suspicion-mult", "region-cross-probe", "region-cross-gossip",
 * "region-down-ms" (underscores work too).
 * Returns 0, or WR_ERR_INVAL (unknown name, not a number, out of range)
 * with a one-line reason in |err|.  wr_swim_new checks the combination. */
int wr_swim_config_set(wr_swim_config *cfg, const char *name,
                       const char *value, char *err, size_t errlen);
/* Names accepted by wr_swim_config_set, NULL-terminated. */
extern const char *const wr_swim_config_names[];

typedef struct wr_swim_member_info {
  const char *id;
  wr_addr gossip;
  wr_addr data;
  const char *region; /* "" when none */
  const char *tags;   /* "" when none */
  wr_swim_state state;
  uint32_t incarnation;
  wr_tstamp state_since;
} wr_swim_member_info;

/*
 * Application state in anti-entropy (issue 10: the ownership table runs
 * its scuttlebutt-by-owner digests and deltas through it).  swim carries
 * opaque records, each 1..WR_SWIM_APP_RECORD_MAX bytes, in the sync
 * stream's frames (sealed like the rest) and never looks inside them;
 * what a record means, and which records the peer lacks, is the
 * application's business.  Within one sync session, on each side:
 *
 *   begin                          (wr_swim_sync_new)
 *   digest_next ... 0              our digest (the initiator's with its bucket
 *                                  summary, the responder's after its
 *                                  member digest)
 *   digest_in *                    the peer's digest records, as they arrive
 *   delta_next ... 0               what the peer lacks, after its whole
 *                                  digest was seen (digest_in is never
 *                                  called again after the first delta_next)
 *   delta_in *                     what we lack, from the peer
 *   end                            once, whatever happened
 *
 * The initiator runs digest_next first (its digest opens the session),
 * then delta_in (the responder's delta), digest_in (the responder's
 * digest), delta_next; the responder runs digest_in, delta_next,
 * digest_next, delta_in.  Either side may see no digest_in at all: a peer
 * without hooks (or with nothing) sends an empty digest, which asks for
 * everything, and ignores the delta it gets.
 *
 * Output is pulled lazily: digest_next and delta_next are called only
 * while less than about two frames (128 KiB) of the session's output
 * wait to be written, from wr_swim_sync_new, _recv and _send, so a delta
 * of any size streams through a bounded buffer and the application
 * should produce it incrementally too (a cursor in |ctx|), not build it
 * whole in begin.
 *
 * The hooks run inside wr_swim_sync_* calls and must not call into the
 * session or into |sw| (except the read-only member queries); the
 * application applies what delta_in hands it to its own state.  Record
 * pointers given to digest_in/delta_in are valid during the call only.
 * The application owns |ctx|; swim owns the vtable pointer's target only
 * as long as the core lives (it must outlive the core).
 */
#define WR_SWIM_APP_RECORD_MAX 4096

typedef struct wr_swim_app_sync {
  /* A session starts.  |user_data| is app_sync_user_data; |initiator| is
   * 1 on the connecting side; |now| the session's start.  Returns the
   * session context, or NULL (no memory): wr_swim_sync_new then fails
   * with WR_ERR_NOMEM, the sync counts as failed and end is not called. */
  void *(*begin)(void *user_data, int initiator, wr_tstamp now);
  /* Our digest, one record per call: writes the next record into |dst|
   * (|cap| is WR_SWIM_APP_RECORD_MAX) and returns its length (1..cap),
   * 0 when the digest is complete, or a negative value, which fails the
   * session (the wr_swim_sync_* call returns WR_ERR_CALLBACK).  A length
   * above |cap| fails it the same way. */
  wr_ssize (*digest_next)(void *ctx, uint8_t *dst, size_t cap);
  /* One record of the peer's digest (|len| 1..WR_SWIM_APP_RECORD_MAX).
   * Returns 0, or a negative value when the record is malformed: the
   * session fails (WR_ERR_PROTO, counted in syncs_failed and
   * syncs_app_rejected). */
  int (*digest_in)(void *ctx, const uint8_t *rec, size_t len);
  /* What the peer lacks, one record per call, called only after the
   * peer's whole digest was seen; as digest_next (0 when done). */
  wr_ssize (*delta_next)(void *ctx, uint8_t *dst, size_t cap);
  /* One delta record from the peer: apply it (the application's merge
   * rule decides, as for gossip: a peer can only send, never make us
   * roll back).  0, or negative when malformed: as digest_in. */
  int (*delta_in)(void *ctx, const uint8_t *rec, size_t len);
  /* The session ends: |ok| is 1 when the whole exchange completed (both
   * deltas crossed and ours was written), 0 on any failure, a peer that
   * left early, or wr_swim_sync_del mid-session.  Called exactly once
   * for every begin that returned a context, and the last hook called
   * with |ctx|: free it here.  What delta_in applied before a failure
   * stays applied (every record stands alone). */
  void (*end)(void *ctx, int ok);
} wr_swim_app_sync;

/* Callbacks (all optional).  They must not call back into |sw| except the
 * read-only member queries. */
typedef struct wr_swim_callbacks {
  /* A member appeared or changed state or incarnation.  Reaping is
   * silent: the last state reported was final. */
  void (*member_changed)(wr_swim *sw, const wr_swim_member_info *m,
                         void *user_data);
  /* A USER update arrived (every copy: the core keeps no per-key table,
   * that is the application's).  Return nonzero when it is news to you
   * (a version newer than you hold for its key), so the core gossips it
   * on; return 0 for repeats, or it would circulate forever.  Without
   * this callback USER updates are not re-gossiped. */
  int (*user_update)(wr_swim *sw, const wr_swim_update *u, void *user_data);
  /* Application state in anti-entropy (above): NULL for none (syncs then
   * carry no app records and skip the peer's).  Every hook must be set
   * (wr_swim_new returns WR_ERR_INVAL otherwise).  The hooks get
   * |app_sync_user_data|, not the core's user_data, so an adapter can
   * pass them through untouched.  The vtable is not copied: it must
   * outlive the core. */
  const wr_swim_app_sync *app_sync;
  void *app_sync_user_data;
} wr_swim_callbacks;

typedef struct wr_swim_stats {
  uint64_t rx_packets, tx_packets, rx_bytes, tx_bytes;
  uint64_t rx_malformed; /* failed wr_swim_decode: dropped, no state change */
  uint64_t rx_badseal;   /* no installed key opened it */
  uint64_t rx_version;   /* another wire version */
  uint64_t rx_oversize;  /* longer than a sealed WR_SWIM_PACKET_MAX */
  uint64_t rx_foreign;   /* a PING for another id, or an unknown ACK seq */
  uint64_t probes, probe_failures, indirect_probes, nacks_rx;
  uint64_t suspicions, refutations, deaths, reaped;
  uint64_t tx_dropped;   /* outbox full: a reply or probe was not sent */
  uint64_t refused;      /* wr_swim_unreachable reports */
  uint64_t syncs_ok, syncs_failed;
  uint64_t syncs_version;      /* of syncs_failed: the peer's stream is
                                  another version (a rolling upgrade) */
  uint64_t syncs_app_rejected; /* of syncs_failed: digest_in or delta_in
                                  refused a record of the peer's */
  /* Syncs we answered: buckets compared (the initiator's B each time)
   * and of them found to differ (each costs both sides' digests of its
   * members); a converged fleet adds B and 0. */
  uint64_t sync_buckets, sync_buckets_differ;
  uint64_t reconnects;   /* syncs started with a failed member */
  uint64_t syncs_catchup;/* syncs started for wr_swim_sync_behind */
  unsigned awareness;    /* current Lifeguard score, 0..awareness_max */
  uint32_t incarnation;  /* ours */
  size_t broadcast_queue;/* updates still being piggybacked (both queues) */
  size_t broadcast_queue_user; /* of which USER updates */
  /* Updates that left a piggyback queue before their retransmit limit:
   * evicted because their queue was full (the most-sent went), or not
   * queued for lack of memory.  Per queue: membership, USER. */
  uint64_t bcast_evicted_member, bcast_evicted_user;
  /* Confirmation probes started (also counted in probes): we heard of a
   * suspicion that still lacked its confirmations (confirm_probes). */
  uint64_t confirm_probes;
  /* Stale accusations answered with our newer entry straight to the
   * member that sent them (at most one per datagram). */
  uint64_t stale_corrections;
  /* Unconfirmed suspicions at their maximum: the suspect was asked once
   * for its current ALIVE before we declared it dead. */
  uint64_t last_chance_probes;
  /* Region-aware membership: probes sent to a member of another region,
   * and those of them that failed with nobody in the target's region
   * answering (the region was silent: no suspicion raised). */
  uint64_t cross_probes, region_silent_probes;
  /* PINGs sent to failed members (dead_probe_interval_ms), and how many
   * were answered (the member was back). */
  uint64_t dead_probes, dead_probe_answers;
  /* Direct answers to a member whose datagram showed that one of us
   * holds the other DEAD (swim.c, dead_reply). */
  uint64_t dead_replies;
} wr_swim_stats;

/*
 * Creates a core.  |keyring| may be NULL or empty (identity seal: tests,
 * fuzzing, simulation); it is not copied and must outlive the core, so the
 * adapter can rotate keys in place.  Returns 0, WR_ERR_INVAL (bad config)
 * or WR_ERR_NOMEM.
 */
int wr_swim_new(wr_swim **psw, const wr_swim_config *cfg,
                const wr_swim_callbacks *cb, wr_swim_keyring *keyring,
                const wr_mem *mem, void *user_data, wr_tstamp now);
void wr_swim_del(wr_swim *sw);
void *wr_swim_user_data(const wr_swim *sw);

/* Sends join probes (PING with an empty target) to |seeds|; each seed
 * that answers becomes a member, and the adapter should then run a sync
 * with it (wr_swim_sync_due reports it).  Call again to retry. */
int wr_swim_join(wr_swim *sw, const wr_addr *seeds, size_t nseeds,
                 wr_tstamp now);

/* Adds a member known alive without any traffic (the simulator's
 * bootstrap of a converged fleet).  0, WR_ERR_EXISTS, WR_ERR_NOMEM. */
int wr_swim_add_member(wr_swim *sw, const char *id, const wr_addr *gossip,
                       const wr_addr *data, uint32_t incarnation,
                       wr_tstamp now);

/* wr_swim_add_member with the member's region ("" for none). */
int wr_swim_add_member_region(wr_swim *sw, const char *id,
                              const wr_addr *gossip, const wr_addr *data,
                              const char *region, uint32_t incarnation,
                              wr_tstamp now);

/* Makes |dst|'s table a copy of |src|'s members plus |src| itself (alive
 * at its incarnation), without |dst|: the simulator builds one 10,000-
 * member table and copies it, instead of 10^8 single inserts.  |dst|
 * must have no members yet.  0, WR_ERR_INVAL or WR_ERR_NOMEM. */
int wr_swim_copy_members(wr_swim *dst, const wr_swim *src, wr_tstamp now);

/* Feeds one sealed datagram.  Malformed or unopenable packets are counted
 * in the stats and return 0: a bad peer is not our error. */
int wr_swim_recv(wr_swim *sw, const wr_addr *from, const uint8_t *pkt,
                 size_t len, wr_tstamp now);

/* Sealed datagrams are at most this long. */
#define WR_SWIM_DATAGRAM_MAX (WR_SWIM_PACKET_MAX + WR_SWIM_SEAL_OVERHEAD)

/* Writes the next sealed datagram into |dst| (cap >= WR_SWIM_DATAGRAM_MAX)
 * and its destination into |to|.  Returns its length, 0 when nothing is
 * due, WR_ERR_NOBUF. */
wr_ssize wr_swim_send(wr_swim *sw, wr_addr *to, uint8_t *dst, size_t cap,
                      wr_tstamp now);

/* Earliest time wr_swim_tick must run (WR_TSTAMP_NONE: none). */
wr_tstamp wr_swim_deadline(const wr_swim *sw);
void wr_swim_tick(wr_swim *sw, wr_tstamp now);

/* The adapter reports that a datagram it sent to |to| was refused (ICMP
 * port unreachable, read from the socket's error queue).  Evidence only,
 * never a state change by itself: it speeds up the probe, relay or
 * confirmation probe aimed at |to| and lets a confirmed suspicion of the
 * member there end after refused_suspicion_ms (see the config). */
void wr_swim_unreachable(wr_swim *sw, const wr_addr *to, wr_tstamp now);

/* Broadcasts LEFT with a bumped incarnation and stops probing; drain
 * wr_swim_send after (a few gossip intervals let it spread). */
int wr_swim_leave(wr_swim *sw, wr_tstamp now);

/* Queues a USER update for dissemination (copied; len <= WR_SWIM_USER_MAX)
 * and pushes it at once to push_fanout members. */
int wr_swim_broadcast_user(wr_swim *sw, const char *key, uint64_t version,
                           const uint8_t *payload, size_t len, wr_tstamp now);
/* Gossips on a peer's USER update that the application took after its
 * user_update callback returned 0 (a bounded ingest that applies later):
 * queued as if user_update had said news, relayed within user_relay_ms
 * with the other news, no push of its own.  Returns as
 * wr_swim_broadcast_user. */
int wr_swim_relay_user(wr_swim *sw, const char *key, uint64_t version,
                       const uint8_t *payload, size_t len, wr_tstamp now);

size_t wr_swim_member_count(const wr_swim *sw); /* not counting self */
/* Member |i| (0 <= i < count, unstable order); 0 or WR_ERR_INVAL.  The
 * strings stay valid until the next call that changes |sw|. */
int wr_swim_member_at(const wr_swim *sw, size_t i, wr_swim_member_info *out);
int wr_swim_member_find(const wr_swim *sw, const char *id,
                        wr_swim_member_info *out);
/* Our own entry (state ALIVE, or LEFT after wr_swim_leave). */
void wr_swim_self(const wr_swim *sw, wr_swim_member_info *out);

void wr_swim_get_stats(const wr_swim *sw, wr_swim_stats *out);

/*
 * Fault injection (docs/FAULTS.md): the message type of a sealed datagram
 * (WR_SWIM_PING, _ACK, ...) and, when |from| is not NULL, its sender's id,
 * without processing it or counting anything.  Returns the type, or
 * WR_ERR_PROTO, WR_ERR_AUTH or WR_ERR_DECRYPT when it does not open or
 * has no header.  Costs one AEAD open, so an adapter asks only while a
 * fault rule covers gossip datagrams.
 */
int wr_swim_packet_peek(const wr_swim *sw, const uint8_t *pkt, size_t len,
                        char from[WR_SWIM_ID_MAX + 1]);

/*
 * Anti-entropy (push-pull).  Wire: length-prefixed sealed frames (u32
 * big-endian length, <= WR_SWIM_SYNC_FRAME_MAX), stream version 4.  The
 * initiator sends one hash per bucket of members (B buckets of 8 to 16
 * members, the hashes kept current as the table changes); the responder
 * answers with the buckets that differ and its digest (id, incarnation,
 * state) of their members; the initiator answers with the full entries
 * the responder lacks there plus its own digest of them; the responder
 * sends what the initiator lacks; both then close.  A converged pair so
 * exchanges about one byte per member, whatever changed elsewhere.  Every
 * entry is merged through the same rules as gossip, except that a peer's
 * DEAD about another member is only a suspicion here, and a verdict about
 * us in the peer's digest is refuted at once (docs/SWIM.md).  When the
 * application has app_sync hooks, the initiator's first message carries
 * its app digest, the responder's its delta and digest, the initiator's
 * second its delta (wr_swim_app_sync).  A peer on another stream version
 * fails the session (WR_ERR_VERSION, syncs_version).
 */
#define WR_SWIM_SYNC_FRAME_MAX (64 * 1024)

/* 1 and |peer| filled when a sync should start now (periodic, right after
 * a seed answered a join probe, or a reconnect attempt with a failed
 * member); the deadline is part of wr_swim_deadline.  Call until it
 * returns 0: more than one may be due at once. */
int wr_swim_sync_due(wr_swim *sw, wr_addr *peer, wr_tstamp now);
/* The application missed state only a sync brings back (the routes
 * table dropped gossiped entries: an owner over its ingest rate, a full
 * ingest queue).  Runs up to 3 catch-up syncs with random live members,
 * the first within a second, the others at doubling gaps of at least
 * max(2 s, an eighth of the periodic interval); reported by
 * wr_swim_sync_due like the periodic ones, counted in syncs_catchup.
 * Another call while they are pending restarts the count, not the
 * clock.  No-op with sync_interval_ms 0.  Not from inside a swim
 * callback or sync hook. */
void wr_swim_sync_behind(wr_swim *sw, wr_tstamp now);
/* |initiator| 1 for the connecting side.  The session keeps a pointer to
 * |sw| and must be freed before it.  Returns 0, WR_ERR_NOMEM (also when
 * the app_sync begin hook returned NULL) or, for an initiator whose first
 * output failed, WR_ERR_CALLBACK; a failed start counts in syncs_failed. */
int wr_swim_sync_new(wr_swim *sw, wr_swim_sync **ps, int initiator,
                     wr_tstamp now);
void wr_swim_sync_del(wr_swim_sync *s);
/* Feeds stream bytes; returns 0 or a negative error, after which the
 * session is failed (counted in syncs_failed) and the adapter closes the
 * connection: WR_ERR_PROTO (malformed, out of order, unopenable, a digest
 * entry outside the differing buckets, or an app record the application
 * refused), WR_ERR_VERSION (the peer speaks another stream version; also
 * counted in syncs_version), WR_ERR_LIMIT (a summary or digest beyond the
 * caps), WR_ERR_CALLBACK (an app hook failed), WR_ERR_NOMEM. */
int wr_swim_sync_recv(wr_swim_sync *s, const uint8_t *data, size_t len,
                      wr_tstamp now);
/* Bytes to write next (0: nothing now).  App records are pulled here as
 * the output drains (at most ~3 frames wait at once), so an adapter
 * calls this again after every completed write.  The session owns the
 * buffer; the view is valid until the next wr_swim_sync_send, _recv or
 * _consumed call (new output may move it), so an adapter with writes in
 * flight copies it.  A negative return (WR_ERR_CALLBACK: an app hook
 * failed; WR_ERR_NOMEM) fails the session like wr_swim_sync_recv. */
wr_ssize wr_swim_sync_send(wr_swim_sync *s, const uint8_t **data);
/* Marks |n| bytes from wr_swim_sync_send as written. */
void wr_swim_sync_consumed(wr_swim_sync *s, size_t n);
/* 1 when the exchange is complete and everything was written. */
int wr_swim_sync_done(const wr_swim_sync *s);
/* Frames received, opened with a cluster key and applied so far.  An
 * adapter uses it to tell a peer that speaks the protocol from a socket
 * that merely holds a connection open (swim_uv's first-frame deadline). */
uint64_t wr_swim_sync_frames_in(const wr_swim_sync *s);

#endif
