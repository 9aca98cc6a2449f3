/*
 * The libuv adapter around the sans-IO SWIM core (see swim_uv.h).  It moves
 * bytes and time, nothing else: every membership decision is in swim.c.
 *
 * After every core call (a datagram in, the timer, a join, a leave, a sync
 * session's progress) the adapter runs swim_uv_after_core():
 *
 *   1. drain wr_swim_send onto the gossip socket (swim_uv_udp.c);
 *   2. start every sync wr_swim_sync_due reports (up to max_syncs_out at
 *      once);
 *   3. notice a finished join (the core knows a member);
 *   4. arm the one timer at wr_swim_deadline.
 *
 * Sync connections (anti-entropy over TCP): one struct per connection
 * with its socket, a timer (sync_timeout_ms, 10 s) and a session.  The
 * pump writes what wr_swim_sync_send returns (copied, so the view's
 * lifetime does not matter), marks it consumed when the write completes,
 * and closes when wr_swim_sync_done says the exchange is over, or on any
 * error, EOF before done, or the timer.
 *
 * The sync port is open to anyone who can reach the gossip address, and
 * a TCP connection costs its opener nothing, so accepted connections get
 * their own budget (max_syncs) apart from the ones we open (max_syncs_out):
 * a stranger holding every inbound slot delays other members' syncs with
 * us, never ours with them.  And an accepted connection is first on a
 * short leash: until one complete frame has opened with a cluster key
 * (wr_swim_sync_frames_in > 0) its timer is sync_first_frame_ms, not
 * sync_timeout_ms, so an idle or keyless peer gives its slot back within
 * seconds (counted in sync_idle).  After that frame the peer is a member
 * and gets the rest of sync_timeout_ms.  The struct is freed once both
 * handles are closed (libuv's rule).
 *
 * Join: every seed host goes through uv_getaddrinfo (a literal address
 * resolves at once); when all lookups of a round are back, the addresses
 * found are handed to wr_swim_join, and a retry timer is armed with
 * jittered exponential backoff.  A retry re-resolves, so a Kubernetes
 * headless Service that gains its first ready pod is picked up.
 *
 * Errors on sockets are counted and logged, at most one line per second
 * per kind (with how many were folded in), so a flood of bad traffic does
 * not become a flood of log lines.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <netinet/in.h>
#include <sys/socket.h>

#include <sodium.h>
#include <uv.h>

#include "warren/err.h"
#include "warren/log.h"
#include "swim_uv_int.h"

#define DEFAULT_MAX_SYNCS 8
/* A sync is four messages: bucket hashes (about 1 byte per member, 8 KiB
 * at 10,000 members), then digests and entries of the buckets that
 * differ, plus the app deltas, many more frames when application state
 * is far behind (a 10 MB app delta takes ~1 s at 100 Mbit/s); 10 s
 * covers a slow WAN link many times over, and a hung peer gives its
 * socket back. */
#define DEFAULT_SYNC_TIMEOUT_MS 10000
/* Our own syncs: one periodic plus one per answered join or reconnect
 * attempt are due at a time, so 4 leaves room for a burst of joins. */
#define DEFAULT_MAX_SYNCS_OUT 4
/* The initiator writes its first digest frame as soon as it is connected
 * (wr_swim_sync_new produces it), so a member's first frame arrives one
 * round trip plus at most 64 KiB after the accept: ~5 ms at 100 Mbit/s.
 * 2 s leaves room for a 300 ms WAN round trip and one lost segment at
 * Linux's 1 s initial retransmission timeout, and frees a slot held by
 * someone without the key 5x sooner than sync_timeout_ms would. */
#define DEFAULT_SYNC_FIRST_FRAME_MS 2000
#define DEFAULT_BACKOFF_MIN_MS 1000
#define DEFAULT_BACKOFF_MAX_MS 30000
/* 256 datagrams of <= 1445 bytes: ~370 KiB, about one gossip burst to a
 * large fleet; more would only be stale by the time it left. */
#define DEFAULT_SEND_QUEUE_MAX 256
/* Leave grace: three gossip intervals spread LEFT to most of the fleet
 * (each interval pushes it to gossip_nodes members); capped at 1 s so a
 * SIGTERM'd node stops promptly within systemd's and Kubernetes' limits. */
#define LEAVE_GRACE_MAX_MS 1000

typedef struct sync_conn {
  struct sync_conn *next, *prev;
  wr_swim_uv *u;
  uv_tcp_t tcp;
  uv_timer_t timer;
  /* A fault delay on this stream (the tap's *delay_ms): the chunk being
   * written waits on hold_w; a chunk read waits in rbuf on hold_r, with
   * reading paused, so order is kept and nothing more is buffered. */
  uv_timer_t hold_w, hold_r;
  size_t held_n; /* bytes of rbuf waiting on hold_r */
  uv_connect_t creq;
  uv_write_t wreq;
  wr_swim_sync *s;
  uint8_t *wbuf;     /* copy of the bytes being written */
  size_t wlen;
  int initiator;
  int connected;
  int writing;
  int closing;
  int eof;           /* the peer closed its side */
  int open_handles;
  int counted;       /* counted in syncs_active */
  int got_frame;     /* responder: the first frame opened (see the top) */
  uint64_t started;  /* uv_now at creation */
  wr_addr peer_addr; /* for the fault tap */
  char peer[64];
  uint8_t rbuf[16384];
} sync_conn;

typedef struct dns_req {
  struct dns_req *next, *prev; /* outstanding lookups, for uv_cancel */
  uv_getaddrinfo_t req;
  wr_swim_uv *u;
  unsigned round;
  uint16_t port;
  char host[256];
} dns_req;

static void sync_close(sync_conn *c, const char *why, int err);
static void join_round_start(wr_swim_uv *u);

/* ---- helpers ---- */

/* One line per kind per second at most; the next line says how many
 * were folded into it. */
int swim_uv_log_ok(wr_swim_uv *u, int kind) {
  uint64_t t = swim_uv_now(u);
  if (u->log_last[kind] && t - u->log_last[kind] < 1000) {
    u->log_folded[kind]++;
    return 0;
  }
  u->log_last[kind] = t ? t : 1;
  return 1;
}

unsigned long long swim_uv_folded(wr_swim_uv *u, int kind) {
  unsigned long long n = u->log_folded[kind];
  u->log_folded[kind] = 0;
  return n;
}

void swim_uv_to_sockaddr(const wr_addr *a, struct sockaddr_storage *ss) {
  memset(ss, 0, sizeof *ss);
  if (a->family == 6) {
    struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;
    s6->sin6_family = AF_INET6;
    memcpy(&s6->sin6_addr, a->ip, 16);
    s6->sin6_port = htons(a->port);
  } else {
    struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
    s4->sin_family = AF_INET;
    memcpy(&s4->sin_addr, a->ip, 4);
    s4->sin_port = htons(a->port);
  }
}

int swim_uv_from_sockaddr(const struct sockaddr *sa, wr_addr *a) {
  memset(a, 0, sizeof *a);
  if (sa->sa_family == AF_INET) {
    const struct sockaddr_in *s4 = (const struct sockaddr_in *)sa;
    a->family = 4;
    memcpy(a->ip, &s4->sin_addr, 4);
    a->port = ntohs(s4->sin_port);
    return 0;
  }
  if (sa->sa_family == AF_INET6) {
    const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)sa;
    /* An IPv4-mapped peer on a dual-stack socket is an IPv4 member. */
    static const uint8_t mapped[12] = {0, 0, 0, 0, 0,    0,
                                       0, 0, 0, 0, 0xff, 0xff};
    if (memcmp(&s6->sin6_addr, mapped, 12) == 0) {
      a->family = 4;
      memcpy(a->ip, (const uint8_t *)&s6->sin6_addr + 12, 4);
    } else {
      a->family = 6;
      memcpy(a->ip, &s6->sin6_addr, 16);
    }
    a->port = ntohs(s6->sin6_port);
    return 0;
  }
  return WR_ERR_INVAL;
}

void swim_uv_addr_str(const wr_addr *a, char *out, size_t cap) {
  char ip[INET6_ADDRSTRLEN] = "?";
  if (a->family == 6) {
    uv_inet_ntop(AF_INET6, a->ip, ip, sizeof ip);
    snprintf(out, cap, "[%s]:%u", ip, a->port);
  } else {
    uv_inet_ntop(AF_INET, a->ip, ip, sizeof ip);
    snprintf(out, cap, "%s:%u", ip, a->port);
  }
}

/* "ADDR:PORT" or "[ADDR]:PORT" (no names: a bind address is literal). */
static int parse_listen(const char *s, struct sockaddr_storage *ss) {
  char host[INET6_ADDRSTRLEN + 1];
  const char *colon;
  size_t n;
  if (!s || !*s) return WR_ERR_INVAL;
  if (s[0] == '[') {
    const char *end = strchr(s, ']');
    if (!end || end[1] != ':') return WR_ERR_INVAL;
    n = (size_t)(end - s - 1);
    if (n == 0 || n >= sizeof host) return WR_ERR_INVAL;
    memcpy(host, s + 1, n);
    colon = end + 1;
  } else {
    colon = strrchr(s, ':');
    if (!colon) return WR_ERR_INVAL;
    n = (size_t)(colon - s);
    if (n == 0 || n >= sizeof host) return WR_ERR_INVAL;
    memcpy(host, s, n);
  }
  host[n] = 0;
  char *end;
  long port = strtol(colon + 1, &end, 10);
  if (colon[1] == 0 || *end || port < 1 || port > 65535) return WR_ERR_INVAL;
  if (strcmp(host, "localhost") == 0) snprintf(host, sizeof host, "127.0.0.1");
  if (uv_ip4_addr(host, (int)port, (struct sockaddr_in *)ss) == 0) return 0;
  if (uv_ip6_addr(host, (int)port, (struct sockaddr_in6 *)ss) == 0) return 0;
  return WR_ERR_INVAL;
}

static void sodium_rand(uint8_t *dst, size_t len, void *ud) {
  (void)ud;
  randombytes_buf(dst, len);
}

/* ---- core callbacks: log, then forward to the application ---- */

static void on_member_changed(wr_swim *sw, const wr_swim_member_info *m,
                              void *ud) {
  wr_swim_uv *u = ud;
  char g[64];
  swim_uv_addr_str(&m->gossip, g, sizeof g);
  WR_LOG_INFOF("swim", "member", "id=%s state=%s incarnation=%u addr=%s",
               m->id, wr_swim_state_name(m->state), (unsigned)m->incarnation,
               g);
  if (u->app_cb.member_changed) u->app_cb.member_changed(sw, m, u->app_ud);
}

static int on_user_update(wr_swim *sw, const wr_swim_update *up, void *ud) {
  wr_swim_uv *u = ud;
  if (u->app_cb.user_update) return u->app_cb.user_update(sw, up, u->app_ud);
  /* Nobody here consumes USER updates, so nobody can tell news from
   * repeats: passing them on would keep every copy circulating. */
  return 0;
}

/* ---- the core's timer ---- */

static void on_timer(uv_timer_t *t);

static void arm_timer(wr_swim_uv *u) {
  wr_tstamp dl = wr_swim_deadline(u->sw);
  if (dl == WR_TSTAMP_NONE) {
    uv_timer_stop(&u->timer);
    return;
  }
  uint64_t now = swim_uv_now(u);
  /* A deadline already past means "tick now"; 0 runs it on the next loop
   * turn, after pending I/O, so a core that keeps a past deadline cannot
   * starve the sockets. */
  uv_timer_start(&u->timer, on_timer, dl > now ? dl - now : 0, 0);
}

static void on_timer(uv_timer_t *t) {
  wr_swim_uv *u = t->data;
  if (u->closing) return;
  wr_swim_tick(u->sw, swim_uv_now(u));
  swim_uv_after_core(u);
}

/* ---- anti-entropy connections ---- */

static void sync_handle_closed(uv_handle_t *h) {
  sync_conn *c = h->data;
  if (--c->open_handles > 0) return;
  wr_swim_uv *u = c->u;
  if (c->prev)
    c->prev->next = c->next;
  else
    u->conns = c->next;
  if (c->next) c->next->prev = c->prev;
  if (c->counted) {
    u->st.syncs_active--;
    if (c->initiator)
      u->st.syncs_out--;
    else
      u->st.syncs_in--;
  }
  wr_swim_sync_del(c->s);
  free(c->wbuf);
  free(c);
  swim_uv_maybe_free(u);
}

static void sync_close(sync_conn *c, const char *why, int err) {
  if (c->closing) return;
  c->closing = 1;
  wr_swim_uv *u = c->u;
  if (why) {
    if (!strcmp(why, "timeout"))
      u->st.sync_timeouts++;
    else if (!strcmp(why, "idle"))
      u->st.sync_idle++;
    else
      u->st.sync_failed++;
    if (swim_uv_log_ok(u, LOG_TCP))
      WR_LOG_WARNF("swim", "sync_failed",
                   "peer=%s role=%s why=%s err=%s folded=%llu", c->peer,
                   c->initiator ? "initiator" : "responder", why,
                   err ? (err > -5000 ? uv_err_name(err) : wr_strerror(err))
                       : "-",
                   swim_uv_folded(u, LOG_TCP));
  } else {
    u->st.sync_ok++;
    WR_LOG_DEBUGF("swim", "sync_done", "peer=%s role=%s", c->peer,
                  c->initiator ? "initiator" : "responder");
  }
  uv_timer_stop(&c->timer);
  uv_close((uv_handle_t *)&c->timer, sync_handle_closed);
  uv_close((uv_handle_t *)&c->hold_w, sync_handle_closed);
  uv_close((uv_handle_t *)&c->hold_r, sync_handle_closed);
  uv_close((uv_handle_t *)&c->tcp, sync_handle_closed);
}

static void sync_pump(sync_conn *c);
static void on_sync_timeout(uv_timer_t *t);
static void on_sync_written(uv_write_t *req, int status);

/* Writes c->wbuf (c->wlen bytes); c->writing is already set. */
static void sync_write(sync_conn *c) {
  uv_buf_t b = uv_buf_init((char *)c->wbuf, (unsigned)c->wlen);
  c->wreq.data = c;
  int rv = uv_write(&c->wreq, (uv_stream_t *)&c->tcp, &b, 1, on_sync_written);
  if (rv != 0) {
    c->writing = 0;
    c->u->st.tcp_errors++;
    sync_close(c, "write", rv);
  }
}

static void on_sync_hold_w(uv_timer_t *t) {
  sync_conn *c = t->data;
  if (!c->closing) sync_write(c);
}

static void on_sync_written(uv_write_t *req, int status) {
  sync_conn *c = req->data;
  c->writing = 0;
  if (c->closing) return;
  if (status != 0) {
    c->u->st.tcp_errors++;
    sync_close(c, "write", status);
    return;
  }
  wr_swim_sync_consumed(c->s, c->wlen);
  sync_pump(c);
}

/* Writes what the session has, one buffer at a time, and closes once the
 * session is done.  New membership learned from the peer may have queued
 * gossip, so the core's output is flushed afterwards too. */
static void sync_pump(sync_conn *c) {
  wr_swim_uv *u = c->u;
  if (c->closing || !c->connected || c->writing) return;
  const uint8_t *data = NULL;
  wr_ssize n = wr_swim_sync_send(c->s, &data);
  if (n < 0) {
    sync_close(c, "session", (int)n);
    return;
  }
  if (n == 0) {
    if (wr_swim_sync_done(c->s))
      sync_close(c, NULL, 0);
    else if (c->eof)
      sync_close(c, "eof", 0);
    return;
  }
  uint8_t *copy = realloc(c->wbuf, (size_t)n);
  if (!copy) {
    sync_close(c, "nomem", WR_ERR_NOMEM);
    return;
  }
  c->wbuf = copy;
  memcpy(c->wbuf, data, (size_t)n);
  uint32_t delay = 0;
  if (u->tap && u->tap(u, 1, 1, &c->peer_addr, c->wbuf, (size_t)n, &delay,
                       u->tap_ud)) {
    sync_close(c, "fault", 0);
    return;
  }
  c->wlen = (size_t)n;
  c->writing = 1; /* held or in flight: the pump waits either way */
  if (delay) {
    uv_timer_start(&c->hold_w, on_sync_hold_w, delay, 0);
    return;
  }
  sync_write(c);
}

static void on_sync_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf) {
  sync_conn *c = h->data;
  (void)hint;
  *buf = uv_buf_init((char *)c->rbuf, sizeof c->rbuf);
}

static void sync_feed(sync_conn *c, size_t n);
static void on_sync_hold_r(uv_timer_t *t);

static void on_sync_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf) {
  sync_conn *c = s->data;
  wr_swim_uv *u = c->u;
  (void)buf;
  if (c->closing) return;
  if (n == UV_EOF) {
    /* The peer closes once the exchange is complete: fine if our side is
     * done too (everything read and written), a failure otherwise. */
    if (wr_swim_sync_done(c->s))
      sync_close(c, NULL, 0);
    else if (!c->writing)
      sync_close(c, "eof", 0);
    else {
      c->eof = 1; /* let the last write finish; the pump decides */
      uv_read_stop(s);
    }
    return;
  }
  if (n < 0) {
    u->st.tcp_errors++;
    sync_close(c, "read", (int)n);
    return;
  }
  if (n == 0) return;
  uint32_t delay = 0;
  if (u->tap && u->tap(u, 0, 1, &c->peer_addr, c->rbuf, (size_t)n, &delay,
                       u->tap_ud)) {
    sync_close(c, "fault", 0);
    return;
  }
  if (delay) {
    /* Held in rbuf: no more reads (which would reuse it) until it is
     * fed; the kernel's window holds back the peer meanwhile. */
    uv_read_stop(s);
    c->held_n = (size_t)n;
    uv_timer_start(&c->hold_r, on_sync_hold_r, delay, 0);
    return;
  }
  sync_feed(c, (size_t)n);
}

/* Feeds |n| bytes of rbuf to the session, then writes what it answers. */
static void sync_feed(sync_conn *c, size_t n) {
  wr_swim_uv *u = c->u;
  int rv = wr_swim_sync_recv(c->s, c->rbuf, n, swim_uv_now(u));
  if (rv != 0) {
    sync_close(c, "session", rv);
    swim_uv_after_core(u);
    return;
  }
  if (!c->initiator && !c->got_frame && wr_swim_sync_frames_in(c->s) > 0) {
    /* A member: the first-frame leash gives way to the session timeout,
     * counted from the accept. */
    uint64_t el = swim_uv_now(u) - c->started;
    c->got_frame = 1;
    uv_timer_start(&c->timer, on_sync_timeout,
                   el < u->sync_timeout_ms ? u->sync_timeout_ms - el : 0, 0);
  }
  sync_pump(c);
  swim_uv_after_core(u);
}

static void on_sync_hold_r(uv_timer_t *t) {
  sync_conn *c = t->data;
  size_t n = c->held_n;
  if (c->closing) return;
  c->held_n = 0;
  sync_feed(c, n);
  if (!c->closing)
    uv_read_start((uv_stream_t *)&c->tcp, on_sync_alloc, on_sync_read);
}

static void on_sync_timeout(uv_timer_t *t) {
  sync_conn *c = t->data;
  if (!c->initiator && !c->got_frame)
    sync_close(c, "idle", WR_ERR_TIMEOUT);
  else
    sync_close(c, "timeout", WR_ERR_TIMEOUT);
}

/* Allocates a connection with its socket and timer initialised and links
 * it; NULL when out of memory or over its direction's cap (counted). */
static sync_conn *sync_conn_new(wr_swim_uv *u, int initiator) {
  unsigned active = initiator ? u->st.syncs_out : u->st.syncs_in;
  unsigned max = initiator ? u->max_syncs_out : u->max_syncs;
  if (active >= max) {
    u->st.sync_refused++;
    if (swim_uv_log_ok(u, LOG_REFUSED))
      WR_LOG_WARNF("swim", "sync_refused",
                   "role=%s active=%u max=%u folded=%llu",
                   initiator ? "initiator" : "responder", active, max,
                   swim_uv_folded(u, LOG_REFUSED));
    return NULL;
  }
  sync_conn *c = calloc(1, sizeof *c);
  if (!c) return NULL;
  c->u = u;
  c->initiator = initiator;
  int rv = wr_swim_sync_new(u->sw, &c->s, initiator, swim_uv_now(u));
  if (rv != 0) {
    u->st.sync_failed++;
    if (swim_uv_log_ok(u, LOG_TCP))
      WR_LOG_WARNF("swim", "sync_failed", "why=session err=%s folded=%llu",
                   wr_strerror(rv), swim_uv_folded(u, LOG_TCP));
    free(c);
    return NULL;
  }
  uv_tcp_init(u->loop, &c->tcp);
  uv_timer_init(u->loop, &c->timer);
  uv_timer_init(u->loop, &c->hold_w);
  uv_timer_init(u->loop, &c->hold_r);
  c->tcp.data = c->timer.data = c->hold_w.data = c->hold_r.data = c;
  c->open_handles = 4;
  c->counted = 1;
  c->started = swim_uv_now(u);
  u->st.syncs_active++;
  if (initiator)
    u->st.syncs_out++;
  else
    u->st.syncs_in++;
  c->next = u->conns;
  if (u->conns) u->conns->prev = c;
  u->conns = c;
  /* An accepted connection starts on the first-frame leash (the top). */
  uint64_t ms = u->sync_timeout_ms;
  if (!initiator && u->sync_first_frame_ms < ms) ms = u->sync_first_frame_ms;
  uv_timer_start(&c->timer, on_sync_timeout, ms, 0);
  return c;
}

static void sync_start_reading(sync_conn *c) {
  int rv = uv_read_start((uv_stream_t *)&c->tcp, on_sync_alloc, on_sync_read);
  if (rv != 0) {
    c->u->st.tcp_errors++;
    sync_close(c, "read", rv);
    return;
  }
  c->connected = 1;
  sync_pump(c);
}

static void on_sync_connected(uv_connect_t *req, int status) {
  sync_conn *c = req->data;
  if (c->closing) return;
  if (status != 0) {
    c->u->st.tcp_errors++;
    sync_close(c, "connect", status);
    return;
  }
  uv_tcp_nodelay(&c->tcp, 1);
  sync_start_reading(c);
}

static void sync_connect(wr_swim_uv *u, const wr_addr *peer) {
  sync_conn *c = sync_conn_new(u, 1);
  if (!c) return;
  swim_uv_addr_str(peer, c->peer, sizeof c->peer);
  c->peer_addr = *peer;
  u->st.sync_started++;
  struct sockaddr_storage ss;
  if (peer->family == u->cfg.gossip.family) {
    /* Connect from the gossip address, so the peer (and its firewall)
     * sees the member's address and not whatever the routing table
     * picks.  Failing that, the kernel's choice still works. */
    wr_addr src = u->cfg.gossip;
    src.port = 0;
    swim_uv_to_sockaddr(&src, &ss);
    (void)uv_tcp_bind(&c->tcp, (const struct sockaddr *)&ss, 0);
  }
  swim_uv_to_sockaddr(peer, &ss);
  c->creq.data = c;
  int rv = uv_tcp_connect(&c->creq, &c->tcp, (const struct sockaddr *)&ss,
                          on_sync_connected);
  if (rv != 0) {
    u->st.tcp_errors++;
    sync_close(c, "connect", rv);
  }
}

static void free_handle(uv_handle_t *h) { free(h); }

static void on_sync_accept(uv_stream_t *server, int status) {
  wr_swim_uv *u = server->data;
  if (u->closing) return;
  if (status != 0) {
    u->st.tcp_errors++;
    if (swim_uv_log_ok(u, LOG_TCP))
      WR_LOG_WARNF("swim", "accept_error", "err=%s folded=%llu",
                   uv_err_name(status), swim_uv_folded(u, LOG_TCP));
    return;
  }
  sync_conn *c = sync_conn_new(u, 0);
  if (!c) {
    /* Accept and close at once: libuv stops watching the listener until
     * the pending connection is accepted, which would wedge it. */
    uv_tcp_t *t = malloc(sizeof *t);
    if (!t) return;
    uv_tcp_init(u->loop, t);
    (void)uv_accept(server, (uv_stream_t *)t);
    uv_close((uv_handle_t *)t, free_handle);
    return;
  }
  int rv = uv_accept(server, (uv_stream_t *)&c->tcp);
  if (rv != 0) {
    u->st.tcp_errors++;
    sync_close(c, "accept", rv);
    return;
  }
  u->st.sync_accepted++;
  struct sockaddr_storage ss;
  int len = sizeof ss;
  wr_addr pa;
  if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &len) == 0 &&
      swim_uv_from_sockaddr((struct sockaddr *)&ss, &pa) == 0) {
    swim_uv_addr_str(&pa, c->peer, sizeof c->peer);
    c->peer_addr = pa;
  } else {
    snprintf(c->peer, sizeof c->peer, "?");
  }
  uv_tcp_nodelay(&c->tcp, 1);
  sync_start_reading(c);
}

/* ---- after every core call ---- */

void swim_uv_after_core(wr_swim_uv *u) {
  if (u->closing) return;
  swim_uv_flush(u);
  wr_addr peer;
  /* Each call hands out one due sync; a handful per turn is plenty (the
   * core schedules one periodic sync plus one per answered join). */
  for (int i = 0; i < 16 && wr_swim_sync_due(u->sw, &peer, swim_uv_now(u)); i++)
    sync_connect(u, &peer);
  if (u->joining && wr_swim_member_count(u->sw) > 0) {
    u->joining = 0;
    uv_timer_stop(&u->join_timer);
    WR_LOG_INFOF("swim", "joined", "members=%zu attempts=%u",
                 wr_swim_member_count(u->sw), u->join_round);
  }
  arm_timer(u);
}

/* ---- join ---- */

static void on_join_timer(uv_timer_t *t);

static void join_round_done(wr_swim_uv *u) {
  if (u->njoin > 0) {
    u->st.join_attempts++;
    char first[64];
    swim_uv_addr_str(&u->join_addrs[0], first, sizeof first);
    WR_LOG_INFOF("swim", "join_attempt", "round=%u addrs=%zu first=%s",
                 u->join_round, u->njoin, first);
    int rv = wr_swim_join(u->sw, u->join_addrs, u->njoin, swim_uv_now(u));
    if (rv != 0)
      WR_LOG_WARNF("swim", "join_error", "err=%s", wr_strerror(rv));
    swim_uv_after_core(u);
  } else if (u->join_self) {
    /* The usual first node of a fleet: every node gets the same --join. */
    WR_LOG_INFOF("swim", "join_wait",
                 "round=%u msg=\"the seeds name only this node; waiting "
                 "for others to join it\"", u->join_round);
  } else {
    WR_LOG_WARNF("swim", "join_no_seeds",
                 "round=%u msg=\"no seed address resolved\"", u->join_round);
  }
  if (!u->joining || u->closing) return;
  /* "Equal jitter": half the backoff fixed, half random, so a fleet
   * restarted at once does not retry in lockstep against its seeds. */
  uint64_t half = u->backoff / 2;
  uint32_t r = randombytes_uniform((uint32_t)(half > 0 ? half : 1));
  uv_timer_start(&u->join_timer, on_join_timer, half + r, 0);
  WR_LOG_DEBUGF("swim", "join_retry_armed", "round=%u in_ms=%llu",
                u->join_round, (unsigned long long)(half + r));
  u->backoff = u->backoff * 2 > u->backoff_max ? u->backoff_max
                                                : u->backoff * 2;
}

static void on_resolved(uv_getaddrinfo_t *req, int status,
                        struct addrinfo *res) {
  dns_req *r = req->data;
  wr_swim_uv *u = r->u;
  u->dns_pending--;
  if (r->prev)
    r->prev->next = r->next;
  else
    u->dns = r->next;
  if (r->next) r->next->prev = r->prev;
  int stale = u->closing || r->round != u->join_round || !u->joining;
  if (!stale && status != 0) {
    u->st.dns_failures++;
    if (swim_uv_log_ok(u, LOG_DNS))
      WR_LOG_WARNF("swim", "seed_unresolved", "host=%s err=%s folded=%llu",
                   r->host, uv_err_name(status), swim_uv_folded(u, LOG_DNS));
  }
  for (struct addrinfo *ai = res; !stale && ai; ai = ai->ai_next) {
    wr_addr a;
    if (swim_uv_from_sockaddr(ai->ai_addr, &a) != 0) continue;
    a.port = r->port;
    /* Our own address is no seed (a headless Service lists every pod,
     * this one included). */
    if (wr_addr_eq(&a, &u->cfg.gossip)) {
      u->join_self = 1;
      continue;
    }
    /* An IPv4 socket cannot reach an AAAA record ("localhost" gives
     * both); a dual-stack IPv6 socket reaches either. */
    if (!u->v6 && a.family == 6) continue;
    int dup = 0;
    for (size_t i = 0; i < u->njoin && !dup; i++)
      dup = wr_addr_eq(&a, &u->join_addrs[i]);
    if (!dup && u->njoin < JOIN_ADDRS_MAX) u->join_addrs[u->njoin++] = a;
  }
  if (res) uv_freeaddrinfo(res);
  free(r);
  if (u->closing) {
    swim_uv_maybe_free(u);
    return;
  }
  if (stale) return;
  if (--u->round_pending == 0) join_round_done(u);
}

static void join_round_start(wr_swim_uv *u) {
  u->join_round++;
  u->njoin = 0;
  u->join_self = 0;
  u->round_pending = (unsigned)u->nseeds;
  for (size_t i = 0; i < u->nseeds; i++) {
    dns_req *r = calloc(1, sizeof *r);
    int rv = WR_ERR_NOMEM;
    if (r) {
      r->u = u;
      r->round = u->join_round;
      snprintf(r->host, sizeof r->host, "%s", u->seeds[i].host);
      r->req.data = r;
      r->port = u->seeds[i].port;
      struct addrinfo hints;
      memset(&hints, 0, sizeof hints);
      hints.ai_family = AF_UNSPEC;
      hints.ai_socktype = SOCK_DGRAM;
      rv = uv_getaddrinfo(u->loop, &r->req, on_resolved, r->host, NULL,
                          &hints);
    }
    if (rv != 0) {
      free(r);
      u->st.dns_failures++;
      if (swim_uv_log_ok(u, LOG_DNS))
        WR_LOG_WARNF("swim", "seed_unresolved", "host=%s err=%s folded=%llu",
                     u->seeds[i].host,
                     rv > -5000 ? uv_err_name(rv) : wr_strerror(rv),
                     swim_uv_folded(u, LOG_DNS));
      u->round_pending--;
      continue;
    }
    u->dns_pending++;
    r->next = u->dns;
    if (u->dns) u->dns->prev = r;
    u->dns = r;
  }
  if (u->round_pending == 0) join_round_done(u);
}

static void on_join_timer(uv_timer_t *t) {
  wr_swim_uv *u = t->data;
  if (u->closing || !u->joining) return;
  if (wr_swim_member_count(u->sw) > 0) {
    swim_uv_after_core(u); /* logs "joined" and stops */
    return;
  }
  if (u->round_pending > 0) return; /* lookups of this round still out */
  join_round_start(u);
}

int wr_swim_uv_join(wr_swim_uv *u, const wr_swim_uv_seed *seeds, size_t n) {
  if (!u || u->closing || n == 0 || n > SEEDS_MAX) return WR_ERR_INVAL;
  char *hosts[SEEDS_MAX];
  for (size_t i = 0; i < n; i++) {
    hosts[i] = strdup(seeds[i].host ? seeds[i].host : "");
    if (!hosts[i] || !hosts[i][0] || strlen(hosts[i]) > 255) {
      int nomem = !hosts[i];
      for (size_t j = 0; j <= i; j++) free(hosts[j]);
      return nomem ? WR_ERR_NOMEM : WR_ERR_INVAL;
    }
  }
  for (size_t i = 0; i < u->nseeds; i++) free(u->seed_hosts[i]);
  for (size_t i = 0; i < n; i++) {
    u->seed_hosts[i] = hosts[i];
    u->seeds[i].host = hosts[i];
    u->seeds[i].port = seeds[i].port;
  }
  u->nseeds = n;
  u->joining = 1;
  u->backoff = u->backoff_min;
  uv_timer_stop(&u->join_timer);
  join_round_start(u);
  return 0;
}

int wr_swim_uv_joining(const wr_swim_uv *u) { return u->joining; }

/* ---- leave ---- */

static void on_leave_timer(uv_timer_t *t) {
  wr_swim_uv *u = t->data;
  WR_LOG_INFOF("swim", "left", "id=%s", u->cfg.id);
  void (*cb)(void *) = u->leave_cb;
  u->leave_cb = NULL;
  if (cb) cb(u->leave_ud);
}

void wr_swim_uv_leave(wr_swim_uv *u, uint64_t grace_ms,
                      void (*done)(void *user_data), void *user_data) {
  u->leave_cb = done;
  u->leave_ud = user_data;
  if (u->leaving) return;
  u->leaving = 1;
  u->joining = 0;
  uv_timer_stop(&u->join_timer);
  if (grace_ms == 0) {
    grace_ms = 3 * u->cfg.gossip_interval_ms;
    if (grace_ms > LEAVE_GRACE_MAX_MS) grace_ms = LEAVE_GRACE_MAX_MS;
    if (grace_ms == 0) grace_ms = LEAVE_GRACE_MAX_MS;
  }
  /* Alone: nobody to tell.  Still asynchronous, as the API promises. */
  if (wr_swim_member_count(u->sw) == 0) grace_ms = 1;
  int rv = wr_swim_leave(u->sw, swim_uv_now(u));
  WR_LOG_INFOF("swim", "leaving", "id=%s members=%zu grace_ms=%llu err=%s",
               u->cfg.id, wr_swim_member_count(u->sw),
               (unsigned long long)grace_ms, rv ? wr_strerror(rv) : "-");
  swim_uv_after_core(u);
  uv_timer_start(&u->leave_timer, on_leave_timer, grace_ms, 0);
}

/* ---- lifetime ---- */

void swim_uv_maybe_free(wr_swim_uv *u) {
  if (!u->closing || u->open_handles > 0 || u->dns_pending > 0 || u->conns)
    return;
  /* Sessions are gone (they point into the core), so the core can go. */
  wr_swim_del(u->sw);
  for (size_t i = 0; i < u->nseeds; i++) free(u->seed_hosts[i]);
  void (*cb)(void *) = u->close_cb;
  void *ud = u->close_ud;
  free(u);
  if (cb) cb(ud);
}

static void on_handle_closed(uv_handle_t *h) {
  wr_swim_uv *u = h->data;
  u->open_handles--;
  swim_uv_maybe_free(u);
}

void wr_swim_uv_close(wr_swim_uv *u, void (*cb)(void *user_data),
                      void *user_data) {
  if (!u || u->closing) return;
  u->closing = 1;
  u->close_cb = cb;
  u->close_ud = user_data;
  for (sync_conn *c = u->conns; c; c = c->next)
    if (!c->closing) {
      /* Not a failure of the peer: close quietly. */
      c->closing = 1;
      uv_timer_stop(&c->timer);
      uv_close((uv_handle_t *)&c->timer, sync_handle_closed);
      uv_close((uv_handle_t *)&c->tcp, sync_handle_closed);
    }
  /* Queued lookups are cancelled (their callbacks come with
   * UV_EAI_CANCELED); one already running in the thread pool cannot be
   * (EBUSY), and maybe_free waits for its callback. */
  for (dns_req *r = u->dns; r; r = r->next)
    (void)uv_cancel((uv_req_t *)&r->req);
  uv_close((uv_handle_t *)&u->udp, on_handle_closed);
  uv_close((uv_handle_t *)&u->listener, on_handle_closed);
  uv_close((uv_handle_t *)&u->timer, on_handle_closed);
  uv_close((uv_handle_t *)&u->join_timer, on_handle_closed);
  uv_close((uv_handle_t *)&u->leave_timer, on_handle_closed);
}

int wr_swim_uv_start(wr_swim_uv **pu, uv_loop_t *loop,
                     const wr_swim_uv_config *cfg) {
  struct sockaddr_storage ss;
  *pu = NULL;
  if (!cfg || parse_listen(cfg->listen, &ss) != 0) return WR_ERR_INVAL;
  wr_swim_uv *u = calloc(1, sizeof *u);
  if (!u) return WR_ERR_NOMEM;
  u->loop = loop;
  u->cfg = cfg->swim;
  if (u->cfg.gossip.family == 0)
    swim_uv_from_sockaddr((struct sockaddr *)&ss, &u->cfg.gossip);
  if (!u->cfg.rand) u->cfg.rand = sodium_rand;
  if (cfg->cb) u->app_cb = *cfg->cb;
  u->app_ud = cfg->user_data;
  u->v6 = ss.ss_family == AF_INET6;
  u->port = u->v6 ? ntohs(((struct sockaddr_in6 *)&ss)->sin6_port)
                  : ntohs(((struct sockaddr_in *)&ss)->sin_port);
  snprintf(u->listen, sizeof u->listen, "%s", cfg->listen);
  u->max_syncs = cfg->max_syncs ? cfg->max_syncs : DEFAULT_MAX_SYNCS;
  u->max_syncs_out =
      cfg->max_syncs_out ? cfg->max_syncs_out : DEFAULT_MAX_SYNCS_OUT;
  u->sync_timeout_ms =
      cfg->sync_timeout_ms ? cfg->sync_timeout_ms : DEFAULT_SYNC_TIMEOUT_MS;
  u->sync_first_frame_ms = cfg->sync_first_frame_ms
                               ? cfg->sync_first_frame_ms
                               : DEFAULT_SYNC_FIRST_FRAME_MS;
  u->backoff_min = cfg->join_backoff_min_ms ? cfg->join_backoff_min_ms
                                            : DEFAULT_BACKOFF_MIN_MS;
  u->backoff_max = cfg->join_backoff_max_ms ? cfg->join_backoff_max_ms
                                            : DEFAULT_BACKOFF_MAX_MS;
  if (u->backoff_max < u->backoff_min) u->backoff_max = u->backoff_min;
  u->send_queue_max =
      cfg->send_queue_max ? cfg->send_queue_max : DEFAULT_SEND_QUEUE_MAX;

  wr_swim_callbacks cbs = {.member_changed = on_member_changed,
                           .user_update = on_user_update};
  /* App-sync hooks take their own user_data, so they pass through as
   * they are; the pump below already pulls output after every write. */
  cbs.app_sync = u->app_cb.app_sync;
  cbs.app_sync_user_data = u->app_cb.app_sync_user_data;
  int rv = wr_swim_new(&u->sw, &u->cfg, &cbs, cfg->keyring, NULL, u,
                       uv_now(loop));
  if (rv != 0) {
    free(u);
    return rv;
  }
  /* From here on every failure goes through the close path, which frees
   * the core and |u| once the handles are closed. */
  uv_udp_init(loop, &u->udp);
  uv_tcp_init(loop, &u->listener);
  uv_timer_init(loop, &u->timer);
  uv_timer_init(loop, &u->join_timer);
  uv_timer_init(loop, &u->leave_timer);
  u->udp.data = u->listener.data = u->timer.data = u;
  u->join_timer.data = u->leave_timer.data = u;
  u->open_handles = 5;
  const char *step = "udp_bind";
  rv = swim_uv_udp_open(u, &ss, &step);
  if (rv == 0) {
    step = "tcp_bind";
    rv = uv_tcp_bind(&u->listener, (const struct sockaddr *)&ss, 0);
  }
  if (rv == 0) {
    step = "tcp_listen";
    rv = uv_listen((uv_stream_t *)&u->listener, 128, on_sync_accept);
  }
  if (rv != 0) {
    WR_LOG_ERRORF("swim", "start_failed", "listen=%s step=%s err=%s",
                  cfg->listen, step, uv_err_name(rv));
    wr_swim_uv_close(u, NULL, NULL);
    return rv;
  }
  WR_LOG_INFOF("swim", "started",
               "id=%s listen=%s probe_ms=%llu gossip_ms=%llu lifeguard=%d "
               "keys=%d",
               u->cfg.id, cfg->listen,
               (unsigned long long)u->cfg.probe_interval_ms,
               (unsigned long long)u->cfg.gossip_interval_ms,
               u->cfg.lifeguard, cfg->keyring ? cfg->keyring->n : 0);
  swim_uv_after_core(u);
  *pu = u;
  return 0;
}

wr_swim *wr_swim_uv_core(wr_swim_uv *u) { return u->sw; }

void wr_swim_uv_kick(wr_swim_uv *u) { swim_uv_after_core(u); }

void wr_swim_uv_get_stats(const wr_swim_uv *u, wr_swim_uv_stats *out) {
  *out = u->st;
}

int wr_swim_uv_port(const wr_swim_uv *u) { return u->port; }

void wr_swim_uv_set_tap(wr_swim_uv *u, wr_swim_uv_tap tap, void *ud) {
  u->tap = tap;
  u->tap_ud = ud;
}

void wr_swim_uv_inject(wr_swim_uv *u, int out, const wr_addr *peer,
                       const uint8_t *data, size_t len) {
  if (u->closing) return;
  if (out) {
    swim_uv_send_one(u, peer, data, len);
    return;
  }
  wr_swim_recv(u->sw, peer, data, len, swim_uv_now(u));
  swim_uv_after_core(u);
}
