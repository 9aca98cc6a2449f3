/*
 * Internals of the SWIM adapter shared by its files: swim_uv.c (start,
 * close, the core's timer, leave, stats), swim_uv_udp.c (the gossip
 * socket), swim_uv_sync.c (TCP anti-entropy connections) and
 * swim_uv_join.c (seed lookups and join retries).  Not installed: only
 * swim_uv.h is the API.  Like swim_uv.h it includes uv.h, so no sans-IO
 * core may include it.
 */
#ifndef WARREN_SWIM_UV_INT_H
#define WARREN_SWIM_UV_INT_H

#include <stdint.h>

#include <sys/socket.h>

#include <uv.h>

#include "warren/swim_uv.h"

#define SEEDS_MAX 64
/* Addresses handed to one wr_swim_join: a headless Service with more
 * ready pods than this gives a random-enough subset (resolver order). */
#define JOIN_ADDRS_MAX 128
/* A received datagram longer than any sealed packet is not ours; the
 * buffer is larger, so such a datagram arrives as more than
 * WR_SWIM_DATAGRAM_MAX bytes (truncated or not) and the core counts it as
 * oversize. */
#define RECV_BUF (WR_SWIM_DATAGRAM_MAX + 512)

/* Kinds of rate-limited log lines (swim_uv_log_ok). */
enum {
  LOG_RECV,
  LOG_SEND,
  LOG_TCP,
  LOG_DNS,
  LOG_REFUSED,
  LOG_REJECT,
  LOG_KINDS
};

struct sync_conn;
struct dns_req;

struct wr_swim_uv {
  uv_loop_t *loop;
  wr_swim *sw;
  wr_swim_callbacks app_cb;
  void *app_ud;
  wr_swim_config cfg;
  uv_udp_t udp;
  uv_tcp_t listener;
  uv_timer_t timer;      /* the core's deadline */
  uv_timer_t join_timer; /* join retries */
  uv_timer_t leave_timer;
  int open_handles;
  int closing;
  void (*close_cb)(void *);
  void *close_ud;
  int port;
  int v6; /* the sockets are IPv6 (maybe dual-stack) */
  char listen[128];
  unsigned max_syncs, max_syncs_out;
  uint64_t sync_timeout_ms, sync_first_frame_ms, backoff_min, backoff_max;
  size_t send_queue_max;
  struct sync_conn *conns;
  wr_swim_uv_stats st;
  /* join */
  wr_swim_uv_seed seeds[SEEDS_MAX];
  char *seed_hosts[SEEDS_MAX];
  size_t nseeds;
  int joining;
  unsigned join_round;
  unsigned dns_pending; /* lookups of any round still out */
  struct dns_req *dns;  /* ... and their list */
  unsigned round_pending;
  uint64_t backoff;
  wr_addr join_addrs[JOIN_ADDRS_MAX];
  size_t njoin;
  int join_self; /* this round resolved our own gossip address */
  /* leave */
  int leaving;
  void (*leave_cb)(void *);
  void *leave_ud;
  /* log rate limiting */
  uint64_t log_last[LOG_KINDS];
  uint64_t log_folded[LOG_KINDS];
  wr_swim_uv_tap tap; /* fault injection (swim_uv.h), NULL: none */
  void *tap_ud;
  uint8_t rbuf[RECV_BUF];
  uint8_t sbuf[WR_SWIM_DATAGRAM_MAX];
};

static inline uint64_t swim_uv_now(wr_swim_uv *u) { return uv_now(u->loop); }

/* ---- swim_uv.c ---- */

/* One line per kind per second at most; the next line says how many
 * were folded into it (swim_uv_folded, which resets the count). */
int swim_uv_log_ok(wr_swim_uv *u, int kind);
unsigned long long swim_uv_folded(wr_swim_uv *u, int kind);
void swim_uv_to_sockaddr(const wr_addr *a, struct sockaddr_storage *ss);
int swim_uv_from_sockaddr(const struct sockaddr *sa, wr_addr *a);
void swim_uv_addr_str(const wr_addr *a, char *out, size_t cap);
/* Runs after every core call (the top of swim_uv.c). */
void swim_uv_after_core(wr_swim_uv *u);
/* Frees |u| once it is closing and nothing refers to it any more. */
void swim_uv_maybe_free(wr_swim_uv *u);

/* ---- swim_uv_udp.c ---- */

/* Binds the gossip socket to |ss| and starts receiving; on failure
 * *pstep names the step that failed. */
int swim_uv_udp_open(wr_swim_uv *u, const struct sockaddr_storage *ss,
                     const char **pstep);
/* Drains wr_swim_send onto the socket. */
void swim_uv_flush(wr_swim_uv *u);
/* Sends one datagram now, or queues it (bounded, counted when dropped). */
void swim_uv_send_one(wr_swim_uv *u, const wr_addr *to, const uint8_t *data,
                      size_t len);

/* ---- swim_uv_sync.c ---- */

/* Binds the sync listener to |ss| and listens; on failure *pstep names
 * the step that failed. */
int swim_uv_sync_listen(wr_swim_uv *u, const struct sockaddr_storage *ss,
                        const char **pstep);
/* Opens a sync with |peer| (refused and counted over max_syncs_out). */
void swim_uv_sync_connect(wr_swim_uv *u, const wr_addr *peer);
/* Closes every sync connection quietly (the adapter is closing). */
void swim_uv_sync_close_all(wr_swim_uv *u);

/* ---- swim_uv_join.c ---- */

/* Cancels the seed lookups still queued (the adapter is closing). */
void swim_uv_join_cancel(wr_swim_uv *u);

#endif
