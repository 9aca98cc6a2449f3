/*
 * The inspector's libuv adapter: the HTTP server (the admin server's, with
 * the inspector's routes and guard), the client tap that feeds the capture,
 * server-sent events to open pages, and replays.
 *
 * Time: the capture is fed uv_hrtime() in microseconds; exchanges on
 * loopback take well under the millisecond of uv_now().  The Unix time the
 * page shows is that plus an offset taken once at start.
 *
 * Live updates: a record changes three times per exchange (request head,
 * response head, end), at tens of thousands of exchanges a second through
 * a busy tunnel.  Rendering and pushing each change to an open page cost
 * half the throughput (bench/inspect.sh), and no page shows 20k rows a
 * second.  So changes only mark the record dirty; a timer pushes the dirty
 * records every FLUSH_MS, each once, at most FLUSH_MAX of them (the
 * newest); when more changed, a "lagged" event tells the page to reload
 * the list instead.  Nobody watching: nothing is marked at all.
 *
 * Replays: one TCP connection to the local server each, with its own
 * capture connection (replay_of = the original), so the replayed exchange
 * shows up in the list like any other.  The request is fed to the capture
 * before it is sent, so its id is known at once and the API can answer
 * 202 {"id"} without waiting for the local server.  Each replay has a
 * timer (WR_INSPECTOR_REPLAY_MS) and at most WR_INSPECTOR_MAX_REPLAYS run
 * at once.  Memory is freed once all its handles are closed.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "warren/err.h"
#include "warren/inspect_uv.h"
#include "warren/log.h"

#define RBUF 16384
/* 10 pushes a second look live to a person and bound the work. */
#define FLUSH_MS 100
#define FLUSH_MAX 100
/* Dirty ids remembered between flushes (more: "lagged"). */
#define DIRTY_CAP 1024

typedef struct replay {
  struct replay *prev, *next;
  wr_inspector *in;
  uv_tcp_t tcp;
  uv_timer_t timer;
  uv_connect_t creq;
  uv_write_t wreq;
  wr_capture_conn *cc;
  uint8_t *req;
  size_t len;
  int handles, closing;
  int tried_v6; /* "localhost" may be ::1 only, as for the tunnel */
  uint8_t rbuf[RBUF];
} replay;

struct wr_inspector {
  uv_loop_t *loop;
  wr_admin *admin;
  wr_capture *cap;
  wr_inspect_api *api;
  wr_client_tap tap;
  char url[96];
  char local_host[64];
  int local_port;
  replay *replays;
  unsigned nreplays;
  uv_timer_t flush;
  uint64_t dirty[DIRTY_CAP];
  size_t ndirty;
  int lagged, flush_armed, flush_open;
  int stopping, admin_open;
  void (*done)(void *);
  void *done_ud;
};

static uint64_t now_us(void) { return uv_hrtime() / 1000; }

/* ---- capture -> server-sent events ----------------------------------------
 */

static void flush_events(uv_timer_t *t) {
  wr_inspector *in = t->data;
  in->flush_armed = 0;
  if (!in->admin) return;
  /* Newest first, each id once (a record's three changes are one push). */
  uint64_t sent[FLUSH_MAX];
  size_t nsent = 0;
  int lagged = in->lagged;
  for (size_t i = in->ndirty; i-- > 0;) {
    uint64_t id = in->dirty[i];
    int dup = 0;
    for (size_t k = 0; k < nsent && !dup; k++) dup = sent[k] == id;
    if (dup) continue;
    if (nsent == FLUSH_MAX) {
      lagged = 1;
      break;
    }
    sent[nsent++] = id;
  }
  in->ndirty = 0;
  in->lagged = 0;
  /* Oldest of the batch first, so the page inserts rows in order. */
  for (size_t k = nsent; k-- > 0;) {
    const wr_exchange *e = wr_capture_get(in->cap, sent[k]);
    size_t n;
    char *s = e ? wr_inspect_sse(in->api, "exchange", e, &n) : NULL;
    if (!s) continue;
    wr_admin_publish(in->admin, WR_INSPECT_CHANNEL, s, n);
    free(s);
  }
  if (lagged) {
    size_t n;
    char *s = wr_inspect_sse(in->api, "lagged", NULL, &n);
    if (s) wr_admin_publish(in->admin, WR_INSPECT_CHANNEL, s, n);
    free(s);
  }
}

static void on_capture(const wr_exchange *e, wr_capture_event ev, void *ud) {
  wr_inspector *in = ud;
  (void)ev;
  /* Nobody is watching: nothing to push (this keeps capture cheap). */
  if (!in->admin || !wr_admin_subscribers(in->admin, WR_INSPECT_CHANNEL))
    return;
  if (in->ndirty == 0 || in->dirty[in->ndirty - 1] != e->id) {
    if (in->ndirty == DIRTY_CAP) {
      /* Keep the newest: by the flush the oldest are likely evicted from
       * the ring anyway (at 20k exchanges a second, 100 ms is 2000). */
      memmove(in->dirty, in->dirty + DIRTY_CAP / 2,
              DIRTY_CAP / 2 * sizeof in->dirty[0]);
      in->ndirty = DIRTY_CAP / 2;
      in->lagged = 1;
    }
    in->dirty[in->ndirty++] = e->id;
  }
  if (!in->flush_armed) {
    in->flush_armed = 1;
    uv_timer_start(&in->flush, flush_events, FLUSH_MS, 0);
  }
}

static void on_cleared(void *ud) {
  wr_inspector *in = ud;
  size_t n;
  char *s = wr_inspect_sse(in->api, "clear", NULL, &n);
  if (!s) return;
  wr_admin_publish(in->admin, WR_INSPECT_CHANNEL, s, n);
  free(s);
}

/* ---- the client tap -------------------------------------------------------
 */

static void *tap_open(void *ud) {
  wr_inspector *in = ud;
  wr_capture_conn *cc;
  return wr_capture_conn_new(in->cap, &cc, 0) == 0 ? cc : NULL;
}

static void tap_data(void *conn, int to_origin, const uint8_t *p, size_t n,
                     void *ud) {
  (void)ud;
  /* Errors only stop this connection's capture; the relay goes on. */
  wr_capture_conn_feed(
      conn, to_origin ? WR_CAPTURE_TO_ORIGIN : WR_CAPTURE_FROM_ORIGIN, p, n,
      now_us());
}

static void tap_close(void *conn, void *ud) {
  (void)ud;
  wr_capture_conn_close(conn, now_us());
}

/* ---- replays ----------------------------------------------------------------
 */

static void maybe_done(wr_inspector *in);

static void replay_handle_closed(uv_handle_t *h) {
  replay *r = h->data;
  if (--r->handles > 0) return;
  wr_inspector *in = r->in;
  if (r->prev)
    r->prev->next = r->next;
  else
    in->replays = r->next;
  if (r->next) r->next->prev = r->prev;
  in->nreplays--;
  free(r->req);
  free(r);
  maybe_done(in);
}

static void replay_close(replay *r) {
  if (r->closing) return;
  r->closing = 1;
  if (r->cc) wr_capture_conn_close(r->cc, now_us());
  r->cc = NULL;
  uv_close((uv_handle_t *)&r->tcp, replay_handle_closed);
  uv_close((uv_handle_t *)&r->timer, replay_handle_closed);
}

static void replay_timeout(uv_timer_t *t) { replay_close(t->data); }

static void replay_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf) {
  (void)hint;
  replay *r = h->data;
  *buf = uv_buf_init((char *)r->rbuf, sizeof r->rbuf);
}

static void replay_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf) {
  (void)buf;
  replay *r = s->data;
  if (r->closing) return;
  if (n < 0) {
    replay_close(r); /* EOF ends a "Connection: close" response */
    return;
  }
  if (n > 0)
    wr_capture_conn_feed(r->cc, WR_CAPTURE_FROM_ORIGIN, r->rbuf, (size_t)n,
                         now_us());
}

static void replay_written(uv_write_t *req, int status) {
  replay *r = req->data;
  free(r->req);
  r->req = NULL;
  if (status < 0 && !r->closing) replay_close(r);
}

static void replay_connected(uv_connect_t *req, int status);

/* Connects a new replay of |len| bytes at |req| (owned from here) that
 * feeds |cc| (owned too) to |sa|.  0, or a negative code after which
 * nothing is left (the capture conn is closed: the record says aborted). */
static int replay_connect(wr_inspector *in, wr_capture_conn *cc, uint8_t *req,
                          size_t len, const struct sockaddr *sa, int tried_v6) {
  replay *r = calloc(1, sizeof *r);
  if (!r) {
    free(req);
    wr_capture_conn_close(cc, now_us());
    return WR_ERR_NOMEM;
  }
  r->in = in;
  r->cc = cc;
  r->req = req;
  r->len = len;
  r->tried_v6 = tried_v6;
  uv_tcp_init(in->loop, &r->tcp);
  uv_timer_init(in->loop, &r->timer);
  r->tcp.data = r->timer.data = r->creq.data = r;
  r->handles = 2;
  r->next = in->replays;
  if (in->replays) in->replays->prev = r;
  in->replays = r;
  in->nreplays++;
  uv_timer_start(&r->timer, replay_timeout, WR_INSPECTOR_REPLAY_MS, 0);
  int rv = uv_tcp_connect(&r->creq, &r->tcp, sa, replay_connected);
  if (rv != 0) replay_close(r);
  return rv;
}

/* 127.0.0.1 refused: many dev servers bind "localhost" as ::1 only, and
 * the tunnel reaches them there (client.c), so the replay tries too.  A
 * libuv handle cannot connect twice: a new replay takes the request and
 * the capture over. */
static int replay_retry_v6(replay *r) {
  wr_inspector *in = r->in;
  struct sockaddr_in6 sa6;
  if (r->tried_v6 || strcmp(in->local_host, "127.0.0.1") != 0 ||
      uv_ip6_addr("::1", in->local_port, &sa6) != 0)
    return 0;
  wr_capture_conn *cc = r->cc;
  uint8_t *req = r->req;
  size_t len = r->len;
  r->cc = NULL;
  r->req = NULL;
  replay_close(r);
  replay_connect(in, cc, req, len, (struct sockaddr *)&sa6, 1);
  return 1;
}

static void replay_connected(uv_connect_t *req, int status) {
  replay *r = req->data;
  if (r->closing) return;
  if (status == UV_ECONNREFUSED && replay_retry_v6(r)) return;
  if (status < 0) {
    WR_LOG_WARNF("inspect", "replay_failed", "local=%s:%d err=\"%s\"",
                 r->in->local_host, r->in->local_port, uv_strerror(status));
    replay_close(r);
    return;
  }
  uv_tcp_nodelay(&r->tcp, 1);
  r->wreq.data = r;
  uv_buf_t b = uv_buf_init((char *)r->req, (unsigned)r->len);
  if (uv_write(&r->wreq, (uv_stream_t *)&r->tcp, &b, 1, replay_written) != 0 ||
      uv_read_start((uv_stream_t *)&r->tcp, replay_alloc, replay_read) != 0)
    replay_close(r);
}

static int start_replay(const uint8_t *req, size_t len, uint64_t of,
                        uint64_t *pid, void *ud) {
  wr_inspector *in = ud;
  if (in->stopping) return WR_ERR_CLOSED;
  if (in->nreplays >= WR_INSPECTOR_MAX_REPLAYS) return WR_ERR_LIMIT;
  struct sockaddr_storage ss;
  if (uv_ip4_addr(in->local_host, in->local_port, (struct sockaddr_in *)&ss) !=
          0 &&
      uv_ip6_addr(in->local_host, in->local_port, (struct sockaddr_in6 *)&ss) !=
          0)
    return WR_ERR_INVAL;
  uint8_t *copy = malloc(len);
  wr_capture_conn *cc = NULL;
  if (!copy || wr_capture_conn_new(in->cap, &cc, of) != 0) {
    free(copy);
    return WR_ERR_NOMEM;
  }
  memcpy(copy, req, len);
  /* The request is recorded now, so its id is known before any I/O. */
  wr_capture_conn_feed(cc, WR_CAPTURE_TO_ORIGIN, req, len, now_us());
  const wr_exchange *e = wr_capture_older(in->cap, 0);
  *pid = e && e->replay_of == of ? e->id : 0;
  WR_LOG_INFOF("inspect", "replay", "of=%llu id=%llu local=%s:%d",
               (unsigned long long)of, (unsigned long long)*pid, in->local_host,
               in->local_port);
  /* A connect that fails at once still made a record (aborted). */
  replay_connect(in, cc, copy, len, (struct sockaddr *)&ss, 0);
  return 0;
}

/* ---- start and stop -------------------------------------------------------
 */

static void free_all(wr_inspector *in) {
  wr_inspect_api_del(in->api);
  wr_capture_del(in->cap);
  free(in);
}

static void maybe_done(wr_inspector *in) {
  if (!in->stopping || in->admin_open || in->replays || in->flush_open) return;
  void (*done)(void *) = in->done;
  void *ud = in->done_ud;
  free_all(in);
  if (done) done(ud);
}

static void flush_closed(uv_handle_t *h) {
  wr_inspector *in = h->data;
  in->flush_open = 0;
  maybe_done(in);
}

static void admin_closed(void *ud) {
  wr_inspector *in = ud;
  in->admin_open = 0;
  maybe_done(in);
}

/* Splits "ADDR:PORT" into the address (brackets kept for IPv6) and port. */
static int split_listen(const char *listen, char *host, size_t cap, int *port) {
  const char *colon = strrchr(listen, ':');
  if (!colon || (size_t)(colon - listen) >= cap) return WR_ERR_INVAL;
  memcpy(host, listen, (size_t)(colon - listen));
  host[colon - listen] = '\0';
  char *end;
  long p = strtol(colon + 1, &end, 10);
  if (colon[1] == '\0' || *end || p < 0 || p > 65535) return WR_ERR_INVAL;
  *port = (int)p;
  return 0;
}

int wr_inspector_start(wr_inspector **pi, uv_loop_t *loop,
                       const wr_inspector_config *cfg) {
  char host[64], addr[96];
  int port, rv;
  if (!cfg || !cfg->listen ||
      split_listen(cfg->listen, host, sizeof host, &port) != 0)
    return WR_ERR_INVAL;
  wr_inspector *in = calloc(1, sizeof *in);
  if (!in) return WR_ERR_NOMEM;
  in->loop = loop;
  snprintf(in->local_host, sizeof in->local_host, "%s",
           cfg->local_host ? cfg->local_host : "127.0.0.1");
  in->local_port = cfg->local_port;
  wr_capture_callbacks cb = {.event = on_capture};
  if ((rv = wr_capture_new(&in->cap, cfg->capture, &cb, in, NULL)) != 0) {
    free(in);
    return rv;
  }
  int tries = cfg->next_free && port != 0 ? WR_INSPECTOR_PORT_TRIES : 1;
  for (int i = 0; i < tries; i++) {
    snprintf(addr, sizeof addr, "%s:%d", host, port + i);
    rv = wr_admin_new(&in->admin, loop, addr, NULL, NULL);
    if (rv != UV_EADDRINUSE) break;
  }
  if (rv != 0) {
    wr_capture_del(in->cap);
    free(in);
    return rv;
  }
  in->admin_open = 1;
  uv_timer_init(loop, &in->flush);
  in->flush.data = in;
  in->flush_open = 1;
  port = wr_admin_port(in->admin);
  /* The page is reached at the address it listens on; a wildcard bind
   * is shown as loopback (the Host check accepts any IP literal). */
  const char *shown = host;
  if (!strcmp(host, "0.0.0.0") || !strcmp(host, "localhost") || !host[0])
    shown = "127.0.0.1";
  else if (!strcmp(host, "[::]"))
    shown = "[::1]";
  snprintf(in->url, sizeof in->url, "http://%s:%d", shown, port);
  uv_timeval64_t tv;
  uv_gettimeofday(&tv);
  wr_inspect_api_config ac = {
      .capture = in->cap,
      .port = port,
      .local_host = in->local_host,
      .local_port = in->local_port,
      .wall_offset_us =
          (int64_t)tv.tv_sec * 1000000 + tv.tv_usec - (int64_t)now_us(),
      .replay = start_replay,
      .cleared = on_cleared,
      .user_data = in,
  };
  if ((rv = wr_inspect_api_new(&in->api, &ac, NULL)) != 0 ||
      (rv = wr_inspect_api_routes(in->api, wr_admin_get_router(in->admin))) !=
          0) {
    /* The server is up: it can only go away through its close callback. */
    in->stopping = 1;
    uv_close((uv_handle_t *)&in->flush, flush_closed);
    wr_admin_close(in->admin, admin_closed, in);
    return rv;
  }
  wr_admin_set_limits(in->admin, 0, 0);
  in->tap.open = tap_open;
  in->tap.data = tap_data;
  in->tap.close = tap_close;
  in->tap.ud = in;
  *pi = in;
  return 0;
}

const char *wr_inspector_url(const wr_inspector *in) { return in->url; }

const wr_client_tap *wr_inspector_tap(wr_inspector *in) { return &in->tap; }

void wr_inspector_set_public_url(wr_inspector *in, const char *url) {
  wr_inspect_api_set_url(in->api, url);
}

void wr_inspector_stop(wr_inspector *in, void (*done)(void *ud), void *ud) {
  if (in->stopping) return;
  in->stopping = 1;
  in->done = done;
  in->done_ud = ud;
  for (replay *r = in->replays; r; r = r->next) replay_close(r);
  uv_close((uv_handle_t *)&in->flush, flush_closed);
  wr_admin *a = in->admin;
  in->admin = NULL;
  wr_admin_close(a, admin_closed, in);
}
