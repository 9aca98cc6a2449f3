/*
 * The daemon's libuv adapter around the sans-IO SWIM core (swim.h):
 * src/swim/swim_uv.c.  It owns, on one gossip address:
 *
 *  - a UDP socket: datagrams go to wr_swim_recv (with uv_now); after every
 *    core call the adapter drains wr_swim_send into uv_udp_try_send, or
 *    into a bounded queue of uv_udp_send requests when the socket is busy;
 *  - one uv_timer armed at wr_swim_deadline;
 *  - a TCP listener on the same address and port for anti-entropy: when
 *    wr_swim_sync_due names a peer the adapter connects and pumps an
 *    initiator wr_swim_sync session; accepted connections run responder
 *    sessions.  Each direction has its own budget (|max_syncs| accepted,
 *    |max_syncs_out| opened), so connections from outside can never take
 *    the slots of the node's own syncs; each session lasts at most
 *    |sync_timeout_ms|, and an accepted one that has not delivered a
 *    complete sealed frame within |sync_first_frame_ms| is closed;
 *  - seed joining: names are resolved with uv_getaddrinfo (every A/AAAA
 *    record is a seed), and the join is retried, re-resolving, with
 *    jittered exponential backoff until at least one member is known.
 *
 * Socket errors are logged (component "swim") and counted in
 * wr_swim_uv_stats; none of them stops the adapter.  The adapter holds no
 * protocol logic: every decision is the core's.
 *
 * Lifetime: wr_swim_uv_start -> (wr_swim_uv_join) -> (wr_swim_uv_leave)
 * -> wr_swim_uv_close, whose callback fires once libuv has closed every
 * handle; only then is the memory freed.  A start that fails calls no
 * callback.
 */
#ifndef WARREN_SWIM_UV_H
#define WARREN_SWIM_UV_H

#include <uv.h>

#include "warren/swim.h"

typedef struct wr_swim_uv wr_swim_uv;

typedef struct wr_swim_uv_config {
  /* "ADDR:PORT" (IPv4, [IPv6]) to bind, UDP and TCP.  Port 0 is not
   * allowed: UDP and TCP must share one advertised port. */
  const char *listen;
  /* The core's config.  Its |gossip| address is filled from |listen| when
   * left zero (family 0); |rand| defaults to libsodium. */
  wr_swim_config swim;
  /* Borrowed; must outlive the adapter (keys can rotate in place). */
  wr_swim_keyring *keyring;
  /* Forwarded from the core (may be NULL), with |user_data|.  The
   * adapter also logs every member change itself.  The app_sync hooks
   * pass through untouched, with their own app_sync_user_data (copied
   * with the struct; the vtable itself must outlive the adapter). */
  const wr_swim_callbacks *cb;
  void *user_data;
  unsigned max_syncs;            /* 0: 8 accepted sync connections at once */
  unsigned max_syncs_out;        /* 0: 4 syncs we open, at once */
  uint64_t sync_timeout_ms;      /* 0: 10 s per sync connection */
  /* An accepted connection must deliver one complete frame that opens
   * with a cluster key within this time, or it is closed (sync_idle).
   * 0: 2 s (see DEFAULT_SYNC_FIRST_FRAME_MS in swim_uv.c). */
  uint64_t sync_first_frame_ms;
  uint64_t join_backoff_min_ms;  /* 0: 1 s */
  uint64_t join_backoff_max_ms;  /* 0: 30 s */
  size_t send_queue_max;         /* 0: 256 datagrams waiting in libuv */
} wr_swim_uv_config;

/* Adapter counters (the core's own are in wr_swim_get_stats). */
typedef struct wr_swim_uv_stats {
  uint64_t udp_recv_errors;  /* errors reported by the recv callback */
  uint64_t udp_send_errors;  /* try_send/send failures other than EAGAIN */
  uint64_t udp_queued;       /* datagrams that waited in the send queue */
  uint64_t udp_refused;      /* ICMP port unreachable for a datagram we sent */
  uint64_t udp_queue_drops;  /* datagrams dropped: send queue full */
  uint64_t sync_started;     /* connections we opened */
  uint64_t sync_accepted;    /* connections we accepted and served */
  uint64_t sync_ok;          /* sessions that reached wr_swim_sync_done */
  uint64_t sync_failed;      /* socket error, core error, EOF too early */
  uint64_t sync_timeouts;    /* closed after sync_timeout_ms */
  uint64_t sync_idle;        /* accepted, closed: no sealed frame within
                                sync_first_frame_ms (not in sync_failed) */
  uint64_t sync_refused;     /* over max_syncs or max_syncs_out */
  uint64_t tcp_errors;       /* listen/accept/connect/read/write errors */
  uint64_t join_attempts;    /* wr_swim_join calls */
  uint64_t dns_failures;     /* seed names that did not resolve */
  unsigned syncs_active;     /* sessions open now (both directions) */
  unsigned syncs_in;         /* ... of them accepted */
  unsigned syncs_out;        /* ... of them opened by us */
  size_t send_queue;         /* datagrams waiting in libuv now */
} wr_swim_uv_stats;

/*
 * Creates the core and binds UDP and TCP on cfg->listen.  Returns 0,
 * WR_ERR_INVAL (bad address, port 0, bad core config), WR_ERR_NOMEM or a
 * libuv code (UV_EADDRINUSE, ...).  On failure nothing is left open
 * except handles already closing, which the loop's next turn frees.
 */
int wr_swim_uv_start(wr_swim_uv **pu, uv_loop_t *loop,
                     const wr_swim_uv_config *cfg);

/* The core, for member queries and stats.  After calling a mutating core
 * function directly (wr_swim_broadcast_user, ...) call wr_swim_uv_kick. */
wr_swim *wr_swim_uv_core(wr_swim_uv *u);
/* Flushes the core's output, starts due syncs and re-arms the timer. */
void wr_swim_uv_kick(wr_swim_uv *u);

/* One seed: a literal address or a DNS name (all its records). */
typedef struct wr_swim_uv_seed {
  const char *host; /* copied; IPv4, IPv6 without brackets, or a name */
  uint16_t port;
} wr_swim_uv_seed;

/*
 * Starts joining through |seeds| (n <= 64; copied): resolve every entry,
 * send join probes to every address, and repeat (re-resolving) with
 * jittered backoff between join_backoff_min_ms and _max_ms until the
 * core knows at least one member.  Calling it again replaces the seeds
 * and starts over.  Returns 0, WR_ERR_INVAL (n == 0 or > 64) or
 * WR_ERR_NOMEM.
 */
int wr_swim_uv_join(wr_swim_uv *u, const wr_swim_uv_seed *seeds, size_t n);

/* 1 while a join is still retrying. */
int wr_swim_uv_joining(const wr_swim_uv *u);

/*
 * Graceful leave: wr_swim_leave, then keeps gossiping for |grace_ms| (0:
 * three gossip intervals, at most 1 s) so the LEFT update spreads, then
 * calls |done| (may be NULL).  Calling it twice only replaces |done|.
 */
void wr_swim_uv_leave(wr_swim_uv *u, uint64_t grace_ms,
                      void (*done)(void *user_data), void *user_data);

void wr_swim_uv_get_stats(const wr_swim_uv *u, wr_swim_uv_stats *out);

/*
 * Fault injection (src/node/faults.c; docs/FAULTS.md).  While a tap is
 * set, every gossip datagram (|sync| 0) is shown to it before it is sent
 * (|out| 1) or handed to the core (|out| 0), and so is every chunk of an
 * anti-entropy stream (|sync| 1) before it is written or fed to its
 * session.  |peer| is the datagram's destination or source, or the sync
 * connection's peer address.  The tap returns 0 to let the bytes pass, or
 * 1 when it took them: a datagram is then dropped or held (a held one
 * comes back through wr_swim_uv_inject), and a sync connection is closed
 * (a cut path).  A sync chunk the tap lets pass may be delayed: the tap
 * sets *|delay_ms| (NULL for datagrams, which are held through inject
 * instead), and the adapter holds that chunk so long before it writes it
 * or feeds it to the session, reading no more of that stream meanwhile,
 * so order is kept and nothing else is buffered.  The tap must not call
 * back into the adapter except wr_swim_uv_core.  NULL removes it.
 */
typedef int (*wr_swim_uv_tap)(wr_swim_uv *u, int out, int sync,
                              const wr_addr *peer, const uint8_t *data,
                              size_t len, uint32_t *delay_ms, void *ud);
void wr_swim_uv_set_tap(wr_swim_uv *u, wr_swim_uv_tap tap, void *ud);
/* Sends (|out| 1, to |peer|) or receives (|out| 0, from |peer|) a
 * datagram the tap held, bypassing the tap. */
void wr_swim_uv_inject(wr_swim_uv *u, int out, const wr_addr *peer,
                       const uint8_t *data, size_t len);

/* The bound port (the one in cfg->listen). */
int wr_swim_uv_port(const wr_swim_uv *u);

/*
 * Closes every socket, cancels DNS lookups, ends sync sessions, frees the
 * core and then |u|, and calls |cb| (may be NULL).  |u| must not be used
 * after this call.  Does not leave: call wr_swim_uv_leave first for that.
 */
void wr_swim_uv_close(wr_swim_uv *u, void (*cb)(void *user_data),
                      void *user_data);

#endif
