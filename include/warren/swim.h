/*
 * SWIM membership with Lifeguard: the sans-IO state machine (issue 4,
 * DESIGN.md "Membership: SWIM with Lifeguard").  No clock, no sockets, no
 * libuv: the adapter feeds datagrams to wr_swim_recv, drains wr_swim_send
 * until it returns 0, and arms one timer at wr_swim_deadline.  Packets
 * are the codec in swim_codec.h sealed with swim_seal.h.
 *
 * STATUS: API only.  The implementation (src/swim/swim.c) is not written
 * yet; nothing links against these functions so far.
 */
#ifndef WARREN_SWIM_H
#define WARREN_SWIM_H

#include "warren/swim_codec.h"
#include "warren/swim_seal.h"
#include "warren/types.h"

typedef struct wr_swim wr_swim;

typedef enum wr_swim_state {
  WR_SWIM_ALIVE = 0,
  WR_SWIM_SUSPECT = 1,
  WR_SWIM_DEAD = 2,
  WR_SWIM_LEFT = 3, /* graceful leave: never reported as DEAD */
} wr_swim_state;

/*
 * Every tunable.  wr_swim_config_default fills memberlist's LAN profile,
 * which is tuned for a LAN/datacenter RTT well under 10 ms; a WAN build
 * should scale the timeouts, not the multipliers.  Times are in ms.
 */
typedef struct wr_swim_config {
  char id[WR_SWIM_ID_MAX + 1]; /* our member id (unique, printable) */
  wr_addr gossip;              /* where peers send us datagrams */
  wr_addr data;                /* advertised in ALIVE for the data plane */
  char region[WR_SWIM_REGION_MAX + 1];
  /* 1000: one probe per second per node keeps load O(1) per member and
   * detects a failure in about one round in expectation (SWIM 4.1). */
  uint64_t probe_interval_ms;
  /* 500: an order of magnitude above LAN RTT, below the interval so the
   * indirect probes still fit inside one round. */
  uint64_t probe_timeout_ms;
  /* 3: k indirect probers; with independent loss p the false-positive
   * chance falls as p^(k+1) while traffic grows only linearly. */
  unsigned indirect_checks;
  /* 4: suspicion lasts mult * log10(n+1) * interval, enough rounds for a
   * refutation to be gossiped back before the member is declared dead. */
  unsigned suspicion_mult;
  /* 6: Lifeguard starts at max = mult * min and shrinks towards min with
   * independent confirmations; 6 is memberlist's default. */
  unsigned suspicion_max_timeout_mult;
  /* 4: each update is piggybacked mult * ceil(log10(n+1)) times, enough
   * for epidemic spread to reach all n members with high probability. */
  unsigned retransmit_mult;
  /* 3: gossip fan-out per gossip tick, independent of probing. */
  unsigned gossip_nodes;
  /* 200: fast dissemination (5 gossip ticks per probe round). */
  uint64_t gossip_interval_ms;
  /* 30000: dead/left members are remembered this long so a late ALIVE
   * with a stale incarnation cannot resurrect them. */
  uint64_t dead_reap_ms;
  /* 8: Lifeguard's awareness ceiling: timeouts are stretched by at most
   * (1 + awareness) so a slow node stops accusing healthy peers. */
  unsigned awareness_max;
  wr_rand_fn rand;             /* required: seeded PCG in tests */
  void *rand_user_data;
} wr_swim_config;

void wr_swim_config_default(wr_swim_config *cfg);

typedef struct wr_swim_member_info {
  const char *id;
  wr_addr gossip;
  wr_addr data;
  const char *region;
  wr_swim_state state;
  uint32_t incarnation;
  wr_tstamp state_since;
} wr_swim_member_info;

/* Callbacks (all optional).  They must not call back into |sw|. */
typedef struct wr_swim_callbacks {
  /* A member appeared or changed state/incarnation. */
  void (*member_changed)(wr_swim *sw, const wr_swim_member_info *m,
                         void *user_data);
  /* A USER update arrived (ownership table broadcasts). */
  void (*user_update)(wr_swim *sw, const wr_swim_update *u,
                      void *user_data);
} wr_swim_callbacks;

typedef struct wr_swim_stats {
  uint64_t rx_packets, tx_packets;
  uint64_t rx_malformed; /* failed wr_swim_decode: dropped, no state change */
  uint64_t rx_badseal;   /* no installed key opened it */
  uint64_t rx_version;   /* another wire version */
  uint64_t probes, probe_timeouts, indirect_probes, nacks_rx;
  uint64_t suspicions, refutations, deaths, reaped;
  unsigned awareness;    /* current Lifeguard score, 0..awareness_max */
} wr_swim_stats;

/*
 * Creates a core.  |keyring| may be NULL or empty (identity seal: tests,
 * fuzzing).  Returns 0, WR_ERR_INVAL (bad config) or WR_ERR_NOMEM.
 */
int wr_swim_new(wr_swim **psw, const wr_swim_config *cfg,
                const wr_swim_callbacks *cb, const wr_swim_keyring *keyring,
                const wr_mem *mem, void *user_data, wr_tstamp now);
void wr_swim_del(wr_swim *sw);

/* Adds seeds to probe; they become members once they answer. */
int wr_swim_join(wr_swim *sw, const wr_addr *seeds, size_t nseeds,
                 wr_tstamp now);

/* Feeds one sealed datagram.  Malformed or unopenable packets are counted
 * in the stats and return 0: a bad peer is not our error. */
int wr_swim_recv(wr_swim *sw, const wr_addr *from, const uint8_t *pkt,
                 size_t len, wr_tstamp now);

/* Writes the next sealed datagram into |dst| and its destination into
 * |to|.  Returns its length, 0 when nothing is due, WR_ERR_NOBUF. */
wr_ssize wr_swim_send(wr_swim *sw, wr_addr *to, uint8_t *dst, size_t cap,
                      wr_tstamp now);

/* Earliest time wr_swim_tick must run (UINT64_MAX: none). */
wr_tstamp wr_swim_deadline(const wr_swim *sw);
void wr_swim_tick(wr_swim *sw, wr_tstamp now);

/* Broadcasts LEFT with a bumped incarnation; drain wr_swim_send after. */
int wr_swim_leave(wr_swim *sw, wr_tstamp now);

/* Queues a USER update for dissemination (copied). */
int wr_swim_broadcast_user(wr_swim *sw, const char *key, uint64_t version,
                           const uint8_t *payload, size_t len);

size_t wr_swim_member_count(const wr_swim *sw);
/* Member |i| (0 <= i < count, unstable order); 0 or WR_ERR_INVAL. */
int wr_swim_member_at(const wr_swim *sw, size_t i, wr_swim_member_info *out);
int wr_swim_member_find(const wr_swim *sw, const char *id,
                        wr_swim_member_info *out);

void wr_swim_get_stats(const wr_swim *sw, wr_swim_stats *out);

#endif
