/*
 * The simulated network of warren-sim: a virtual clock, one event heap and
 * one seeded PCG that decides every delay, jitter, loss, duplication,
 * partition drop and pause (STYLE.md "Deterministic tests and the
 * simulator", after ngtcp2's examples/sim.h).
 *
 * Events are ordered by (time, seq): seq is a counter stamped at push, so
 * two events due at the same virtual millisecond run in the order they
 * were scheduled.  Nothing else (no pointer, no hash) takes part in the
 * order, which is what makes a run replay byte for byte from its seed.
 *
 * Node-bound events are filtered here, before the driver sees them:
 *
 *   DELIVER  a datagram.  Dropped (silently, like UDP) when its
 *            destination is dead or when a partition separates it from
 *            its sender at delivery time; deferred to the end of the pause
 *            when its destination is paused (a stalled process's socket
 *            buffer keeps filling).
 *   UNREACH  an ICMP port unreachable: like a datagram (deferred for a
 *            paused sender, which reads its error queue late).
 *            Both are also handed over late, by a uniform [slow_ms / 2,
 *            slow_ms], to a node marked slow (sim_net_slow): a
 *            CPU-starved process whose timers still fire but whose
 *            input waits its turn.
 *   TIMER    dropped for a dead node, deferred for a paused one (a paused
 *            node does not tick: that is a GC or CPU stall).
 *   STREAM   a piece of a reliable byte stream (the anti-entropy TCP
 *            connection).  Deferred like a datagram, but never silently
 *            dropped: a dead peer or a partition hands it to the driver
 *            with SIM_EVF_BROKEN so it can tear the connection down.
 *
 * Any kind >= SIM_EV_USER is the driver's own (scenario steps) and passes
 * through untouched.  Payloads live in pooled buffers of SIM_PKT_CAP
 * bytes that are recycled, so steady state allocates nothing per packet.
 */
#ifndef WARREN_SIM_NET_H
#define WARREN_SIM_NET_H

#include <stddef.h>
#include <stdint.h>

/* One pooled buffer: a sealed SWIM datagram (WR_SWIM_DATAGRAM_MAX, 1445)
 * fits; sim.c checks that with a static assertion. */
#define SIM_PKT_CAP 1536
#define SIM_NONE UINT32_MAX

enum {
  SIM_EV_DELIVER = 1,
  SIM_EV_TIMER = 2,
  SIM_EV_STREAM = 3,
  /* ICMP port unreachable for a datagram |node| sent to dead |from|
   * (sim_net_params.refuse_dead). */
  SIM_EV_UNREACH = 4,
  SIM_EV_USER = 16,
};

#define SIM_EVF_BROKEN 1u
#define SIM_EVF_SLOWED 2u /* already held back once by a slow node */

typedef struct sim_ev {
  uint64_t t;
  uint64_t seq;
  uint32_t node; /* destination (node-bound kinds) */
  uint32_t from; /* sender, or SIM_NONE */
  uint32_t arg;  /* driver's: timer token, stream id, scenario argument */
  uint32_t buf;  /* pooled payload, or SIM_NONE */
  uint16_t len;  /* payload length */
  uint8_t kind;
  uint8_t flags;
} sim_ev;

typedef struct sim_net_params {
  uint64_t delay_ms;  /* one-way base delay */
  uint64_t jitter_ms; /* plus uniform [0, jitter_ms] per packet */
  double loss;        /* datagram loss probability */
  double dup;         /* datagram duplication probability */
  /* A killed node's host stays up: each datagram to it comes back to
   * its sender as SIM_EV_UNREACH (a crashed process), subject to the
   * same loss and delay.  0: killed nodes are silent (a host down). */
  int refuse_dead;
  /* Input delay of a node while it is slow (sim_net_slow). */
  uint64_t slow_ms;
  /* Bandwidth of one stream (sim_net_stream_at), in bytes per ms
   * (12,500 = 100 Mbit/s); 0 = no transmission time. */
  uint64_t stream_bytes_per_ms;
  /* Regions (sim_net_set_regions): a datagram or stream between nodes of
   * two different regions takes region_delay_ms (plus the same jitter)
   * instead of delay_ms: a latency matrix with one value inside every
   * region and one between any two. */
  uint64_t region_delay_ms;
  /* Burst loss, a Gilbert-Elliott channel per node's link: each link
   * alternates between a good state (exponential, mean burst_good_ms)
   * and a bad one (mean burst_bad_ms), and a datagram that leaves or
   * enters through a link in the bad state is lost with probability
   * burst_loss, on top of |loss|.  burst_loss 0: off (no draws). */
  double burst_loss;
  uint64_t burst_good_ms, burst_bad_ms;
} sim_net_params;

typedef struct sim_net_stats {
  uint64_t sent, delivered, lost, duplicated;
  uint64_t burst_lost; /* of |lost|: dropped by a link in its bad state */
  uint64_t partition_dropped, dead_dropped, deferred, slowed;
  uint64_t stream_bytes, stream_broken;
  uint64_t events, heap_max, pool_bufs;
} sim_net_stats;

typedef struct sim_net sim_net;

/* NULL on allocation failure.  |seed| seeds the network's PCG. */
sim_net *sim_net_new(uint32_t nnodes, const sim_net_params *p, uint64_t seed);
void sim_net_del(sim_net *n);

uint64_t sim_net_now(const sim_net *n);
/* The network's generator: scenarios draw from it too, so one seed
 * decides everything. */
struct wr_pcg32 *sim_net_rng(sim_net *n);

/* Schedules an event at |t| (>= now).  0 or -1 (no memory). */
int sim_net_push(sim_net *n, uint64_t t, uint8_t kind, uint32_t node,
                 uint32_t arg);

/*
 * Pops the next event the driver must handle, moving the clock to its
 * time and applying the rules above.  Returns 1 with |ev| filled, 0 when
 * the queue is empty or the next event is later than |until| (the clock
 * then moves to |until| if that is finite and later than now).  The
 * payload of a DELIVER or STREAM event stays valid until
 * sim_net_release(ev).
 */
int sim_net_next(sim_net *n, uint64_t until, sim_ev *ev);
const uint8_t *sim_net_payload(const sim_net *n, const sim_ev *ev);
void sim_net_release(sim_net *n, sim_ev *ev);

/*
 * Sends one datagram from |from| to |to| at the current time: loss,
 * duplication, delay and jitter are drawn here.  Returns the number of
 * copies scheduled (0, 1 or 2), or -1 (no memory, or len > SIM_PKT_CAP).
 * A dead sender sends nothing.
 */
int sim_net_send(sim_net *n, uint32_t from, uint32_t to, const uint8_t *pkt,
                 size_t len);

/* Sends stream bytes: split into pooled pieces, no loss, no jitter, so
 * they arrive in order after the base delay.  |arg| is the driver's
 * stream id.  len 0 sends one empty piece.  0 or -1. */
int sim_net_stream(sim_net *n, uint32_t from, uint32_t to, uint32_t arg,
                   const uint8_t *data, size_t len);

/*
 * A modelled TCP stream: like sim_net_stream, but each piece first waits
 * for the stream's sender to finish the previous one (|*clock|, the time
 * its last byte left, in microseconds, kept by the caller per direction)
 * and then takes len / stream_bytes_per_ms to leave, so a large sync
 * occupies the stream for its transfer time.  Pieces of one direction
 * stay in order.
 */
int sim_net_stream_at(sim_net *n, uint32_t from, uint32_t to, uint32_t arg,
                      const uint8_t *data, size_t len, uint64_t *clock);
/*
 * Opens a modelled stream: the empty connect piece reaches |to| after
 * the three-way handshake (SYN, SYN-ACK, ACK: three one-way delays), and
 * |*clock| (the initiator's direction) is set so that its first bytes,
 * sent with the handshake's last ACK, arrive right behind it.  0 or -1.
 */
int sim_net_stream_connect(sim_net *n, uint32_t from, uint32_t to,
                           uint32_t arg, uint64_t *clock);

/* A dead node never sends, receives or ticks again. */
void sim_net_kill(sim_net *n, uint32_t node);
int sim_net_dead(const sim_net *n, uint32_t node);
/* Pauses |node| until |until| (extends, never shortens, a pause). */
void sim_net_pause(sim_net *n, uint32_t node, uint64_t until);
int sim_net_paused(const sim_net *n, uint32_t node);
uint64_t sim_net_paused_until(const sim_net *n, uint32_t node);
/* Makes |node| slow until |until| (extends, never shortens). */
void sim_net_slow(sim_net *n, uint32_t node, uint64_t until);

/* Node i is in region |region[i]| (copied; one entry per node).  Without
 * this call every node is in region 0. */
int sim_net_set_regions(sim_net *n, const uint8_t *region);
/* The one-way base delay from |a| to |b| (without jitter). */
uint64_t sim_net_link_delay(const sim_net *n, uint32_t a, uint32_t b);

/* Between |start| and |end|, datagrams and streams between nodes of
 * different groups are dropped.  |group| has one entry per node and is
 * copied.  One partition at a time; a new call replaces the old. */
int sim_net_partition(sim_net *n, const uint8_t *group, uint64_t start,
                      uint64_t end);
/* 1 when a packet from |a| to |b| would be dropped now. */
int sim_net_cut(const sim_net *n, uint32_t a, uint32_t b);

void sim_net_get_stats(const sim_net *n, sim_net_stats *out);

/*
 * Fault injection (--faults, faults.c; docs/FAULTS.md): a filter shown
 * every datagram sim_net_send takes (|stream| 0) and every sim_net_stream
 * send (|stream| 1) before the network's own draws.  It sets |v|: copies
 * 0 drops the datagram (a stream's pieces arrive SIM_EVF_BROKEN: the
 * connection is cut), 2 duplicates it; delay_ms is added to the
 * network's delay (datagrams only: streams keep their order).
 */
typedef struct sim_net_verdict {
  int copies;
  uint64_t delay_ms;
} sim_net_verdict;
typedef void (*sim_net_filter)(void *ud, uint32_t from, uint32_t to,
                               int stream, const uint8_t *data, size_t len,
                               sim_net_verdict *v);
void sim_net_set_filter(sim_net *n, sim_net_filter fn, void *ud);

#endif
