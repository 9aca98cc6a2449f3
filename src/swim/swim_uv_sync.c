/*
 * The TCP side of the SWIM adapter (swim_uv.c): anti-entropy sync
 * connections, the ones we open and the ones we accept, each pumping a
 * wr_swim_sync session over its stream.
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
 * and gets the rest of sync_timeout_ms.  The struct is freed once all
 * four of its handles (the socket, the timer and the fault tap's two hold
 * timers) are closed (libuv's rule).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "warren/err.h"
#include "warren/log.h"
#include "swim_uv_int.h"

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

static void sync_close(sync_conn *c, const char *why, int err);

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

/* Closes all four handles of |c|: the struct is freed after the last
 * one (sync_handle_closed), and the adapter only after the last struct,
 * so one left open would keep the adapter's close from ever finishing. */
static void close_handles(sync_conn *c) {
  uv_timer_stop(&c->timer);
  uv_close((uv_handle_t *)&c->timer, sync_handle_closed);
  uv_close((uv_handle_t *)&c->hold_w, sync_handle_closed);
  uv_close((uv_handle_t *)&c->hold_r, sync_handle_closed);
  uv_close((uv_handle_t *)&c->tcp, sync_handle_closed);
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
  close_handles(c);
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

void swim_uv_sync_connect(wr_swim_uv *u, const wr_addr *peer) {
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

int swim_uv_sync_listen(wr_swim_uv *u, const struct sockaddr_storage *ss,
                        const char **pstep) {
  *pstep = "tcp_bind";
  int rv = uv_tcp_bind(&u->listener, (const struct sockaddr *)ss, 0);
  if (rv != 0) return rv;
  *pstep = "tcp_listen";
  return uv_listen((uv_stream_t *)&u->listener, 128, on_sync_accept);
}

void swim_uv_sync_close_all(wr_swim_uv *u) {
  for (sync_conn *c = u->conns; c; c = c->next)
    if (!c->closing) {
      /* Not a failure of the peer: close quietly. */
      c->closing = 1;
      close_handles(c);
    }
}
