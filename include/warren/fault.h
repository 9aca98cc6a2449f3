/*
 * The fault model (src/fault/fault.c; docs/FAULTS.md): what a chaos user
 * asks a node (or warren-sim) to do to its own traffic.  Sans-IO: no
 * clock, no socket, no libuv; the caller passes |now| and acts on the
 * verdict (drop the message, hold it for a delay, send it twice).
 *
 * A rule matches a message by kind (probe, ack, ping-req, broadcast,
 * sync, nodelink, tunnel), direction (in, out, both) and peer (a member
 * id, or "ip:ADDR" for every peer at that IP; an empty peer set matches
 * everyone), and says what happens to it:
 * drop with probability |drop|, else delay by |delay_ms| plus a uniform
 * [0, |jitter_ms|], and a second copy with probability |dup|.  Every
 * matching rule applies, in the order rules were added: one drop is
 * enough, delays add up, one duplication makes two copies.  Streams are
 * TCP: they are never duplicated; a delay holds a stream's chunk in its
 * adapter (sync, node links and tunnels alike).
 *
 * Randomness comes from one seeded PCG32 per model, drawn in a fixed
 * order (per matching rule: drop, then jitter, then dup, each only when
 * the rule uses it), so a given seed and sequence of decisions replays
 * exactly: in the simulator, the same run; on a node, the same verdicts
 * for the same message order.
 *
 * Rules are JSON (jansson), the same text for the admin API, the reload
 * file and warren-sim --faults:
 *
 *   {"kinds":["probe","ack"],"dir":"in","peers":["n2","n3"],
 *    "drop":0.1,"delay_ms":50,"jitter_ms":20,"dup":0.05,
 *    "after_ms":0,"for_ms":0}
 *
 * Every field is optional ("kinds" defaults to "all", "dir" to "both"),
 * but a rule must do something (drop, delay or dup above 0).  "id" and
 * "active" (what wr_fault_rule_json adds) are accepted and ignored, so
 * a GET /faults answer can be saved and loaded back.  Anything else is
 * an error with a one-line reason.
 */
#ifndef WARREN_FAULT_H
#define WARREN_FAULT_H

#include <jansson.h>

#include "warren/types.h"

/* Message kinds.  The first four are SWIM datagrams (the core tells them
 * apart, wr_swim_packet_kind), then the TCP streams. */
typedef enum wr_fault_kind {
  WR_FAULT_PROBE = 0,    /* ping (direct probe) */
  WR_FAULT_ACK = 1,      /* ack and nack */
  WR_FAULT_PING_REQ = 2, /* indirect probe request */
  WR_FAULT_BROADCAST = 3,/* gossip-only datagrams (piggyback, push, join) */
  WR_FAULT_SYNC = 4,     /* anti-entropy TCP stream */
  WR_FAULT_NODELINK = 5, /* node-to-node forwarding link */
  WR_FAULT_TUNNEL = 6,   /* client tunnel link (node side) */
  WR_FAULT_KINDS = 7
} wr_fault_kind;

#define WR_FAULT_KIND_ALL ((1u << WR_FAULT_KINDS) - 1)
#define WR_FAULT_KIND_BIT(k) (1u << (k))

/* Directions, as bits: a rule for both matches either. */
#define WR_FAULT_IN 1
#define WR_FAULT_OUT 2
#define WR_FAULT_BOTH 3

/*
 * Bounds.  64 rules is far more than a chaos scenario uses at once (one
 * partition is one rule), and keeps a decision a short scan; 32 peers per
 * rule cover any partition of a test fleet (a bigger cut is the other
 * side's rule); a delay beyond 60 s is a partition, say so with drop.
 */
#define WR_FAULT_MAX_RULES 64
#define WR_FAULT_MAX_PEERS 32
#define WR_FAULT_PEER_MAX 64 /* = WR_SWIM_ID_MAX */
#define WR_FAULT_DELAY_MAX_MS 60000
#define WR_FAULT_PAUSE_MAX_MS 60000
/* A rule window (after_ms, for_ms) of at most a day. */
#define WR_FAULT_WINDOW_MAX_MS 86400000ULL
/* JSON text accepted by the parsers: one rule set fits easily. */
#define WR_FAULT_JSON_MAX 262144

typedef struct wr_fault_rule {
  uint32_t id;    /* set by wr_fault_add (1, 2, ...); 0 while building */
  uint32_t kinds; /* WR_FAULT_KIND_BIT(...) set, never 0 */
  int dir;        /* WR_FAULT_IN, _OUT or _BOTH */
  size_t npeers;  /* 0: every peer */
  char peers[WR_FAULT_MAX_PEERS][WR_FAULT_PEER_MAX + 1];
  double drop;    /* [0, 1] */
  double dup;     /* [0, 1] */
  uint32_t delay_ms, jitter_ms; /* each <= WR_FAULT_DELAY_MAX_MS */
  /* Active from |after_ms| after the rule was added, for |for_ms| (0: for
   * ever).  warren-sim adds its rules at time 0, so there these are
   * times since the run began. */
  uint64_t after_ms, for_ms;
  /* Set by wr_fault_add from |now|: the window [start, end). */
  wr_tstamp start, end;
} wr_fault_rule;

/* What to do with one message. */
typedef struct wr_fault_verdict {
  int drop;          /* 1: never deliver it */
  uint32_t delay_ms; /* hold it this long (0: now) */
  int copies;        /* 1, or 2 when duplicated (both after delay_ms) */
} wr_fault_verdict;

typedef struct wr_fault_stats {
  uint64_t matched[WR_FAULT_KINDS];    /* messages some rule matched */
  uint64_t dropped[WR_FAULT_KINDS];
  uint64_t delayed[WR_FAULT_KINDS];
  uint64_t duplicated[WR_FAULT_KINDS];
  uint64_t rejected;                   /* rules refused (bad JSON, limits) */
  uint64_t changes;                    /* adds, removes, clears, loads */
} wr_fault_stats;

typedef struct wr_fault wr_fault;

/* A model with no rules, its PCG seeded with (|seed|, |stream|): the
 * simulator gives each node its index as the stream.  0 or
 * WR_ERR_NOMEM. */
int wr_fault_new(wr_fault **pf, uint64_t seed, uint64_t stream,
                 const wr_mem *mem);
void wr_fault_del(wr_fault *f);

uint64_t wr_fault_seed(const wr_fault *f);
/* Restarts the PCG from (|seed|, the model's stream). */
void wr_fault_reseed(wr_fault *f, uint64_t seed);

/*
 * Adds a copy of |r| (its id, start and end are set here from |now|) and
 * writes the new id to |*pid| (may be NULL).  Returns 0, WR_ERR_INVAL (a
 * rule wr_fault_rule_check refuses) or WR_ERR_LIMIT (WR_FAULT_MAX_RULES);
 * both count in stats.rejected.
 */
int wr_fault_add(wr_fault *f, const wr_fault_rule *r, wr_tstamp now,
                 uint32_t *pid);
/* Removes rule |id|: 0 or WR_ERR_NOTFOUND. */
int wr_fault_remove(wr_fault *f, uint32_t id);
/* Removes every rule; returns how many there were. */
size_t wr_fault_clear(wr_fault *f);

size_t wr_fault_count(const wr_fault *f);
/* The |i|th rule in order of addition, or NULL; valid until the next
 * add, remove, clear or load. */
const wr_fault_rule *wr_fault_rule_at(const wr_fault *f, size_t i);

/* 1 when some rule (active now or later) covers a kind in |kinds|: the
 * adapters skip the work of classifying a message when none does. */
int wr_fault_covers(const wr_fault *f, uint32_t kinds);

/*
 * The verdict for one message of |kind| exchanged with |peer| (a member
 * id; NULL or "" when unknown, which only peer-less rules match) in
 * direction |dir| (WR_FAULT_IN or _OUT) at |now|.  Draws from the PCG
 * and counts in the stats.  Never fails.
 */
void wr_fault_decide(wr_fault *f, wr_fault_kind kind, const char *peer,
                     int dir, wr_tstamp now, wr_fault_verdict *v);

/* Who the other end of a message is, as far as the caller knows. */
typedef struct wr_fault_peer {
  /* The member ids it may be: one when known (a datagram names its
   * sender; a connection we dialled has the member's exact address), or
   * every member at the peer's IP when only that is known (an accepted
   * connection comes from an ephemeral port, and members may share an
   * IP); none for a tunnel client or a stranger. */
  const char *const *ids;
  size_t nids;
  /* Its address (family 0: unknown), which "ip:" peer entries match. */
  wr_addr addr;
} wr_fault_peer;

/*
 * As wr_fault_decide, for a peer given by its possible ids and address: a
 * rule with peers matches when one of its entries names one of |p|'s ids,
 * or is "ip:ADDR" with ADDR the IP of |p|->addr.  |p| may be NULL (an
 * unknown peer: only peer-less rules match).
 */
void wr_fault_decide_peer(wr_fault *f, wr_fault_kind kind,
                          const wr_fault_peer *p, int dir, wr_tstamp now,
                          wr_fault_verdict *v);

void wr_fault_get_stats(const wr_fault *f, wr_fault_stats *out);
/* Counts a refused rule that never reached wr_fault_add (the API's 400). */
void wr_fault_count_rejected(wr_fault *f);

/* ---- names and JSON ----------------------------------------------------- */

/* "probe", "ack", "ping-req", "broadcast", "sync", "nodelink", "tunnel". */
const char *wr_fault_kind_name(wr_fault_kind k);
/* The kind called |name| (|len| bytes), or -1. */
int wr_fault_kind_parse(const char *name, size_t len);
/* The kind of a SWIM datagram from its message type (swim_codec.h:
 * PING -> probe, ACK/NACK/NACK_REFUSED -> ack, PING_REQ -> ping-req,
 * GOSSIP and anything else -> broadcast), as the node and warren-sim
 * classify what wr_swim_packet_peek returns. */
wr_fault_kind wr_fault_swim_kind(int swim_msg_type);
/* "in", "out", "both". */
const char *wr_fault_dir_name(int dir);

/* Checks a rule's fields against the rules above: 0, or WR_ERR_INVAL with
 * a one-line reason in |err|. */
int wr_fault_rule_check(const wr_fault_rule *r, char *err, size_t errlen);

/*
 * Parses one rule from a JSON object (|obj|) or from text (|text|, |len|
 * bytes; duplicate keys are refused).  Returns 0 with |r| filled (id 0),
 * or WR_ERR_PROTO / WR_ERR_INVAL / WR_ERR_TOOBIG with a one-line reason in
 * |err| naming the field.
 */
int wr_fault_rule_from_json(const json_t *obj, wr_fault_rule *r, char *err,
                            size_t errlen);
int wr_fault_rule_parse(const char *text, size_t len, wr_fault_rule *r,
                        char *err, size_t errlen);

/* The rule as JSON (every field, with "id" and, given |now|, "active").
 * NULL when out of memory. */
json_t *wr_fault_rule_json(const wr_fault_rule *r, wr_tstamp now);

/* The rule set as {"seed":N,"rules":[...]}.  NULL when out of memory. */
json_t *wr_fault_to_json(const wr_fault *f, wr_tstamp now);

/*
 * Replaces every rule with those of a rule-set document,
 * {"seed":N,"rules":[rule,...]} ("seed" optional: it then stays), all
 * or nothing: on error the model is unchanged.  Rules get new ids and
 * their windows start at |now|.  Returns 0, or an error as
 * wr_fault_rule_parse (plus WR_ERR_LIMIT for too many rules) with the
 * reason in |err| ("rules[2]: drop must be ...").  A failure counts in
 * stats.rejected.
 */
int wr_fault_load(wr_fault *f, const char *text, size_t len, wr_tstamp now,
                  char *err, size_t errlen);
int wr_fault_load_json(wr_fault *f, const json_t *doc, wr_tstamp now,
                       char *err, size_t errlen);

#endif
