/*
 * The admin API's libuv adapter: a TCP listener, one wr_admin_conn per
 * connection, an idle timer per connection and a cap on connections.
 * All HTTP decisions are in conn.c and router.c.
 *
 * Per connection:
 *   read -> wr_admin_conn_feed -> (response?) stop reading, uv_write it
 *   write done -> wr_admin_conn_sent -> feed the bytes left from the last
 *   read (pipelining) -> read again, or close when the core wants it.
 *
 * Closing after an error reply uses a "lingering close" (nginx): shutdown
 * our side, then read and discard until the peer closes or a short timer
 * fires.  Closing a socket with unread input makes the kernel send RST,
 * and the RST can destroy the error reply before the client read it.
 *
 * Memory: the connection struct is freed only once both its handles
 * (socket and timer) have been closed (libuv's rule).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include "warren/admin.h"
#include "warren/err.h"
#include "warren/log.h"

/* One read's worth: larger than a maximal head, so a normal request
 * arrives in one read; pipelined leftovers are fed from here. */
#define RBUF 16384
/* How long a lingering close waits for the peer's FIN. */
#define LINGER_MS 1000

typedef struct aconn {
  struct aconn *next, *prev;
  wr_admin *a;
  uv_tcp_t tcp;
  uv_timer_t timer;
  uv_write_t wreq;
  uv_shutdown_t sreq;
  wr_admin_conn *core; /* NULL for a refused (over the cap) connection */
  uint8_t rbuf[RBUF];
  size_t roff, rlen; /* unconsumed input: rbuf[roff .. roff + rlen) */
  int writing;
  int reading; /* uv_read_start is in effect (it fails if called twice) */
  int lingering;
  int closing;
  int open_handles;
  unsigned stream; /* streaming on this channel (wr_admin_resp_stream) */
  size_t queued;   /* stream bytes handed to uv_write, not yet written */
} aconn;

/* One wr_admin_publish() write to one streaming connection. */
typedef struct swrite {
  uv_write_t req;
  aconn *c;
  size_t len;
  uint8_t data[];
} swrite;

struct wr_admin {
  uv_loop_t *loop;
  const wr_mem *mem;
  uv_tcp_t listener;
  wr_admin_router *router;
  wr_metrics *metrics;
  unsigned max_conns;
  uint64_t idle_ms;
  aconn *conns;
  unsigned nconns;
  /* One connection struct kept in reserve.  If allocation fails when a
   * connection arrives, libuv keeps the accepted socket and stops
   * watching the listener until uv_accept() is called, which would wedge
   * the admin API for good; the spare lets us accept, answer 503 and
   * carry on. */
  aconn *spare;
  int port;
  int closing;
  int listener_open;
  void (*close_cb)(void *);
  void *close_ud;
  int64_t *g_conns;
  uint64_t *c_refused;
};

/* Canned replies for connections that get no parser; the integration test
 * checks their Content-Length against the body. */
static const char nomem_reply[] = "HTTP/1.1 503 Service Unavailable\r\n"
                                  "Content-Type: application/json\r\n"
                                  "Content-Length: 26\r\n"
                                  "Connection: close\r\n\r\n"
                                  "{\"error\":\"out of memory\"}\n";

static const char refused_reply[] =
    "HTTP/1.1 503 Service Unavailable\r\n"
    "Content-Type: application/json\r\n"
    "Content-Length: 39\r\n"
    "Connection: close\r\n\r\n"
    "{\"error\":\"too many admin connections\"}\n";

static void maybe_finish(wr_admin *a);
static void conn_close(aconn *c);
static void conn_pump(aconn *c);
static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf);

static void conn_handle_closed(uv_handle_t *h) {
  aconn *c = h->data;
  if (--c->open_handles > 0) return;
  wr_admin *a = c->a;
  if (c->prev)
    c->prev->next = c->next;
  else
    a->conns = c->next;
  if (c->next) c->next->prev = c->prev;
  a->nconns--;
  *a->g_conns = (int64_t)a->nconns;
  wr_admin_conn_del(c->core);
  if (!a->spare && !a->closing) {
    a->spare = c; /* refill the reserve */
  } else {
    wr_mem_free(a->mem, c);
  }
  maybe_finish(a);
}

static void conn_close(aconn *c) {
  if (c->closing) return;
  c->closing = 1;
  uv_close((uv_handle_t *)&c->tcp, conn_handle_closed);
  uv_close((uv_handle_t *)&c->timer, conn_handle_closed);
}

static void on_timer(uv_timer_t *t) { conn_close(t->data); }

static void arm_idle(aconn *c, uint64_t ms) {
  uv_timer_start(&c->timer, on_timer, ms, 0);
}

static int read_start(aconn *c);
static void read_stop(aconn *c) {
  if (c->reading) uv_read_stop((uv_stream_t *)&c->tcp);
  c->reading = 0;
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf) {
  aconn *c = h->data;
  /* Reading happens only when no input is pending (see conn_pump), so
   * the whole buffer is free. */
  c->roff = c->rlen = 0;
  buf->base = (char *)c->rbuf;
  buf->len = sizeof c->rbuf;
}

static void on_shutdown(uv_shutdown_t *req, int status) {
  aconn *c = req->data;
  if (status != 0) conn_close(c);
}

static void start_linger(aconn *c) {
  c->lingering = 1;
  c->sreq.data = c;
  if (uv_shutdown(&c->sreq, (uv_stream_t *)&c->tcp, on_shutdown) != 0 ||
      read_start(c) != 0) {
    conn_close(c);
    return;
  }
  arm_idle(c, LINGER_MS);
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf) {
  aconn *c = s->data;
  if (c->closing) return;
  if (n < 0) {
    /* EOF or error.  Reading stops while a response is written, so a
     * client that half-closes right after its request still gets the
     * reply: its EOF is only seen once the write is done. */
    conn_close(c);
    return;
  }
  if (n == 0) return;
  if (c->lingering || c->stream) return; /* discard */
  c->roff = 0;
  c->rlen = (size_t)n;
  /* Reads do not re-arm the idle timer: a whole request must arrive
   * within idle_ms of the connection or of the previous response, so a
   * client dribbling a byte at a time (slowloris) cannot hold one of the
   * few admin connections forever. */
  conn_pump(c);
}

static int read_start(aconn *c) {
  if (c->reading) return 0;
  int rv = uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
  if (rv == 0) c->reading = 1;
  return rv;
}

static void on_write(uv_write_t *req, int status) {
  aconn *c = req->data;
  c->writing = 0;
  if (c->closing) return;
  if (status < 0 || !c->core) {
    /* The 503 of a refused connection, or a failed write. */
    if (status < 0)
      conn_close(c);
    else
      start_linger(c);
    return;
  }
  wr_admin_conn_sent(c->core);
  unsigned ch = wr_admin_conn_stream(c->core);
  if (ch) {
    /* From now on the connection only carries published events; reading
     * goes on to see the client leave (EOF), and no idle timeout applies:
     * a live page holds it for as long as it is open. */
    c->stream = ch;
    uv_timer_stop(&c->timer);
    if (read_start(c) != 0) conn_close(c);
    return;
  }
  if (wr_admin_conn_want_close(c->core)) {
    start_linger(c);
    return;
  }
  arm_idle(c, c->a->idle_ms);
  conn_pump(c);
}

/* Feeds pending input to the core and writes what it answers; reads more
 * only when the input is used up and nothing is being written. */
static void conn_pump(aconn *c) {
  while (!c->writing && !c->closing) {
    if (c->rlen > 0) {
      wr_ssize n = wr_admin_conn_feed(c->core, c->rbuf + c->roff, c->rlen);
      if (n < 0) {
        WR_LOG_WARNF("admin", "conn_error", "err=%s", wr_strerror((int)n));
        conn_close(c);
        return;
      }
      c->roff += (size_t)n;
      c->rlen -= (size_t)n;
    }
    const uint8_t *out;
    size_t len;
    if (wr_admin_conn_output(c->core, &out, &len)) {
      read_stop(c);
      uv_buf_t b = uv_buf_init((char *)out, (unsigned)len);
      c->wreq.data = c;
      if (uv_write(&c->wreq, (uv_stream_t *)&c->tcp, &b, 1, on_write) != 0) {
        conn_close(c);
        return;
      }
      c->writing = 1;
      return;
    }
    if (c->rlen == 0) break;
  }
  if (!c->writing && !c->closing && read_start(c) != 0) conn_close(c);
}

static void on_connection(uv_stream_t *server, int status) {
  wr_admin *a = server->data;
  if (status < 0 || a->closing) return;
  aconn *c = wr_mem_calloc(a->mem, 1, sizeof *c);
  int from_spare = 0;
  if (!c && a->spare) {
    c = a->spare;
    a->spare = NULL;
    memset(c, 0, sizeof *c);
    from_spare = 1;
  }
  if (!c) return; /* only if the spare is in use too */
  c->a = a;
  uv_tcp_init(a->loop, &c->tcp);
  uv_timer_init(a->loop, &c->timer);
  c->tcp.data = c->timer.data = c;
  c->open_handles = 2;
  c->next = a->conns;
  if (a->conns) a->conns->prev = c;
  a->conns = c;
  a->nconns++;
  *a->g_conns = (int64_t)a->nconns;
  if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0) {
    conn_close(c);
    return;
  }
  uv_tcp_nodelay(&c->tcp, 1);
  if (a->nconns > a->max_conns || from_spare) {
    /* Answer rather than silently drop, so an operator sees why. */
    (*a->c_refused)++;
    uv_buf_t b =
        from_spare
            ? uv_buf_init((char *)nomem_reply, sizeof nomem_reply - 1)
            : uv_buf_init((char *)refused_reply, sizeof refused_reply - 1);
    c->wreq.data = c;
    if (uv_write(&c->wreq, (uv_stream_t *)&c->tcp, &b, 1, on_write) != 0)
      conn_close(c);
    else
      c->writing = 1;
    arm_idle(c, LINGER_MS);
    return;
  }
  if (wr_admin_conn_new(&c->core, a->router, a->mem) != 0) {
    conn_close(c);
    return;
  }
  arm_idle(c, a->idle_ms);
  conn_pump(c);
}

/* "127.0.0.1:9081", "[::1]:9081", "localhost:9081" (as 127.0.0.1). */
static int parse_listen(const char *s, struct sockaddr_storage *ss) {
  char host[64];
  const char *colon;
  if (s[0] == '[') {
    const char *rb = strchr(s, ']');
    if (!rb || rb[1] != ':' || (size_t)(rb - s - 1) >= sizeof host)
      return WR_ERR_INVAL;
    memcpy(host, s + 1, (size_t)(rb - s - 1));
    host[rb - s - 1] = '\0';
    colon = rb + 1;
  } else {
    colon = strrchr(s, ':');
    if (!colon || (size_t)(colon - s) >= sizeof host) return WR_ERR_INVAL;
    memcpy(host, s, (size_t)(colon - s));
    host[colon - s] = '\0';
  }
  char *end;
  long port = strtol(colon + 1, &end, 10);
  if (colon[1] == '\0' || *end || port < 0 || port > 65535) return WR_ERR_INVAL;
  if (strcmp(host, "localhost") == 0 || host[0] == '\0')
    snprintf(host, sizeof host, "127.0.0.1");
  if (uv_ip4_addr(host, (int)port, (struct sockaddr_in *)ss) == 0) return 0;
  if (uv_ip6_addr(host, (int)port, (struct sockaddr_in6 *)ss) == 0) return 0;
  return WR_ERR_INVAL;
}

static void listener_closed(uv_handle_t *h) {
  wr_admin *a = h->data;
  a->listener_open = 0;
  maybe_finish(a);
}

static void free_admin(wr_admin *a) {
  wr_mem_free(a->mem, a->spare);
  wr_admin_router_del(a->router);
  wr_metrics_del(a->metrics);
  wr_mem_free(a->mem, a);
}

static void maybe_finish(wr_admin *a) {
  if (!a->closing || a->listener_open || a->conns) return;
  void (*cb)(void *) = a->close_cb;
  void *ud = a->close_ud;
  free_admin(a);
  if (cb) cb(ud);
}

static void failed_listener_closed(uv_handle_t *h) { free_admin(h->data); }

int wr_admin_new(wr_admin **pa, struct uv_loop_s *loop, const char *listen,
                 const char *token, const wr_mem *mem) {
  struct sockaddr_storage ss;
  int rv;
  if (!loop || !listen || parse_listen(listen, &ss) != 0) return WR_ERR_INVAL;
  wr_admin *a = wr_mem_calloc(mem, 1, sizeof *a);
  if (!a) return WR_ERR_NOMEM;
  a->loop = loop;
  a->mem = mem;
  a->max_conns = WR_ADMIN_MAX_CONNS;
  a->idle_ms = WR_ADMIN_IDLE_MS;
  if (!(a->spare = wr_mem_calloc(mem, 1, sizeof *a->spare))) {
    rv = WR_ERR_NOMEM;
    goto fail;
  }
  if ((rv = wr_metrics_new(&a->metrics, mem)) != 0) goto fail;
  if ((rv = wr_admin_router_new(&a->router, token, a->metrics, mem)) != 0)
    goto fail;
  if ((rv = wr_metrics_gauge(a->metrics, "warren_admin_connections", NULL, NULL,
                             "Admin API connections open.", &a->g_conns)) !=
          0 ||
      (rv = wr_metrics_counter(
           a->metrics, "warren_admin_connections_refused_total", NULL, NULL,
           "Admin API connections refused over the connection cap.",
           &a->c_refused)) != 0)
    goto fail;

  if ((rv = uv_tcp_init(loop, &a->listener)) != 0) goto fail;
  a->listener.data = a;
  a->listener_open = 1;
  if ((rv = uv_tcp_bind(&a->listener, (struct sockaddr *)&ss, 0)) != 0 ||
      (rv = uv_listen((uv_stream_t *)&a->listener, 64, on_connection)) != 0) {
    /* The handle exists now: it can only go away through uv_close, and
     * the struct holding it only after the close callback. */
    uv_close((uv_handle_t *)&a->listener, failed_listener_closed);
    return rv;
  }
  struct sockaddr_storage bound;
  int blen = sizeof bound;
  uv_tcp_getsockname(&a->listener, (struct sockaddr *)&bound, &blen);
  a->port = bound.ss_family == AF_INET6
                ? ntohs(((struct sockaddr_in6 *)&bound)->sin6_port)
                : ntohs(((struct sockaddr_in *)&bound)->sin_port);
  *pa = a;
  return 0;

fail:
  free_admin(a);
  return rv;
}

wr_metrics *wr_admin_metrics(wr_admin *a) { return a->metrics; }

wr_admin_router *wr_admin_get_router(wr_admin *a) { return a->router; }

static void on_stream_write(uv_write_t *req, int status) {
  swrite *w = (swrite *)req;
  aconn *c = w->c;
  c->queued -= w->len;
  wr_mem_free(c->a->mem, w);
  if (status < 0) conn_close(c);
}

int wr_admin_publish(wr_admin *a, unsigned channel, const void *data,
                     size_t len) {
  int n = 0;
  if (!channel || len == 0) return 0;
  for (aconn *c = a->conns; c; c = c->next) {
    if (c->stream != channel || c->closing) continue;
    if (len > WR_ADMIN_STREAM_MAX - c->queued) {
      /* Not reading: memory for it would grow without bound. */
      WR_LOG_INFOF("admin", "stream_dropped", "reason=\"slow reader\"");
      conn_close(c);
      continue;
    }
    swrite *w = wr_mem_malloc(a->mem, sizeof *w + len);
    if (!w) {
      conn_close(c);
      continue;
    }
    w->c = c;
    w->len = len;
    memcpy(w->data, data, len);
    uv_buf_t b = uv_buf_init((char *)w->data, (unsigned)len);
    if (uv_write(&w->req, (uv_stream_t *)&c->tcp, &b, 1, on_stream_write) !=
        0) {
      wr_mem_free(a->mem, w);
      conn_close(c);
      continue;
    }
    c->queued += len;
    n++;
  }
  return n;
}

unsigned wr_admin_subscribers(const wr_admin *a, unsigned channel) {
  unsigned n = 0;
  for (const aconn *c = a->conns; c; c = c->next)
    if (c->stream == channel && channel && !c->closing) n++;
  return n;
}

int wr_admin_route(wr_admin *a, const char *method, const char *path,
                   wr_admin_handler fn, void *user_data) {
  return wr_admin_router_add(a->router, method, path, fn, user_data);
}

int wr_admin_port(const wr_admin *a) { return a->port; }

void wr_admin_set_limits(wr_admin *a, unsigned max_conns, uint64_t idle_ms) {
  if (max_conns) a->max_conns = max_conns;
  if (idle_ms) a->idle_ms = idle_ms;
}

void wr_admin_close(wr_admin *a, void (*cb)(void *user_data), void *user_data) {
  if (a->closing) return;
  a->closing = 1;
  a->close_cb = cb;
  a->close_ud = user_data;
  uv_close((uv_handle_t *)&a->listener, listener_closed);
  for (aconn *c = a->conns; c; c = c->next) conn_close(c);
}
