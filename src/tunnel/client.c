/*
 * `warren http PORT`: the client side of a tunnel (see client.h).
 *
 * States of the connection to the node:
 *   IDLE (backoff timer) -> CONNECTING (TCP) -> UPGRADING (HTTP 101)
 *   -> LINKED (handshake, then Hello + Bind) -> BOUND
 * Any failure closes the socket/link and goes back to IDLE, except the
 * errors no retry can fix before the first bind (on_fatal).
 *
 * Each stream the node opens is one visitor connection: we connect to the
 * local server and pipe.  Origin -> node: each read lands in a buffer of
 * the mux's own queue (wr_mux_buf_new) and is queued on the stream as it
 * is (wr_mux_stream_write_buf), so origin bytes are not copied before the
 * sealer reads them; a read asks for no more than the stream's credit,
 * and with less than MIN_READ of it we stop reading until
 * stream_writable.  Node -> origin: each DATA buffer
 * from the link is written as is and its credit returned in the write
 * callback (so a slow local server slows the visitor, not the link).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "warren/client.h"
#include "warren/identity.h"
#include "warren/control.h"
#include "warren/err.h"
#include "warren/link.h"
#include "warren/log.h"

#define BACKOFF_MIN_MS 250
#define BACKOFF_MAX_MS 30000
#define UPGRADE_HEAD_MAX 4096
/* Below this much credit, wait for more rather than read in dribbles. */
#define MIN_READ 4096

enum cstate { C_IDLE, C_CONNECTING, C_UPGRADING, C_LINKED, C_BOUND };

typedef struct origin origin;
typedef struct pend {
  struct pend *next;
  uint8_t *buf;
  size_t len;
} pend;

struct origin {
  wr_client *c;
  wr_link *link;
  uint32_t sid;
  uv_tcp_t tcp;
  uv_connect_t creq;
  uv_shutdown_t sreq;
  int connected, stream_gone, closing, fin_pending;
  int tried_v6;          /* "localhost" may be ::1 only (e.g. Node.js) */
  pend *ph, *pt; /* node -> origin bytes waiting for the connect */
  int reading;           /* origin reads started */
  int write_failed;      /* the origin stopped taking the request */
  int read_eof;          /* the origin finished its side */
  uint8_t *rbuf;         /* lent to libuv between alloc and read callback */
  void *tap;             /* cfg.tap's handle for this connection */
  origin *prev, *next;
};

typedef struct owrite {
  uv_write_t req;
  origin *o;
  uint8_t *buf;
  size_t len;
} owrite;

struct wr_client {
  uv_loop_t *loop;
  wr_client_config cfg;
  char node[256], token[WR_CONTROL_TOKEN_MAX + 1];
  char name[WR_CONTROL_NAME_MAX + 1], local_host[64];
  enum cstate state;
  uv_timer_t timer;
  uv_tcp_t *tcp; /* while CONNECTING / UPGRADING */
  uv_connect_t creq;
  uint8_t head[UPGRADE_HEAD_MAX];
  size_t headlen;
  /* Our Upgrade request: uv_write needs it until up_written, so each
   * link attempt has its own (a static one was shared by every client in
   * the process, and a second link's request would overwrite the first's
   * while the kernel had not taken it yet). */
  char upreq[512];
  wr_link *link;
  int ever_bound, attempt, stopping, fatal;
  uint8_t session[WR_CONTROL_SESSION_LEN]; /* Bind.session, see start */
  int has_identity;
  wr_identity identity;
  origin *origins;
  void (*done)(void *);
  void *done_ud;
  int timer_closed;
};

static void schedule_reconnect(wr_client *c);
static void origin_close(origin *o);
static void maybe_finish_stop(wr_client *c);

/* ---- origin side ---- */

/* The inspector sees the bytes as they pass (wr_client_tap). */
static void tap_data(origin *o, int to_origin, const uint8_t *p, size_t n) {
  if (o->tap) o->c->cfg.tap->data(o->tap, to_origin, p, n, o->c->cfg.tap->ud);
}

static void origin_closed(uv_handle_t *h) {
  origin *o = h->data;
  wr_client *c = o->c;
  if (o->prev) o->prev->next = o->next;
  else c->origins = o->next;
  if (o->next) o->next->prev = o->prev;
  if (o->tap) c->cfg.tap->close(o->tap, c->cfg.tap->ud);
  for (pend *p = o->ph; p;) {
    pend *n = p->next;
    wr_link_buf_free(p->buf);
    free(p);
    p = n;
  }
  free(o);
  maybe_finish_stop(c);
}

static void origin_close(origin *o) {
  if (o->closing) return;
  o->closing = 1;
  if (!o->stream_gone && o->link) {
    wr_mux_stream_set_user_data(wr_link_mux(o->link), o->sid, NULL);
    wr_mux_stream_reset(wr_link_mux(o->link), o->sid, WR_MUX_RST_CANCEL);
    wr_link_flush(o->link);
    o->stream_gone = 1;
  }
  uv_close((uv_handle_t *)&o->tcp, origin_closed);
}

static void origin_on_write(uv_write_t *req, int status) {
  owrite *w = (owrite *)req;
  origin *o = w->o;
  if (!o->stream_gone && o->link) {
    wr_mux_stream_consume(wr_link_mux(o->link), o->sid, w->len);
    wr_link_flush(o->link);
  }
  wr_link_buf_free(w->buf);
  free(w);
  if (status < 0 && status != UV_ECANCELED && !o->closing) {
    /* A server that refuses a request body (413, 401 on an upload)
     * answers and closes without reading it, so this write fails while
     * its answer is on its way or already read: keep reading, drop the
     * rest of the request (on_stream_data), and let the answer through.
     * Resetting the stream here turned that answer into a 502, even
     * after the answer and its FIN were queued: a reset drops them.  The
     * stream (and this socket) ends when the node ends it. */
    o->write_failed = 1;
  }
}

static int origin_write(origin *o, uint8_t *buf, size_t len) {
  uv_buf_t b = uv_buf_init((char *)buf, (unsigned)len), *bp = &b;
  unsigned n = 1;
  /* A request the socket takes whole needs no write request: its credit
   * goes back now. */
  if (wr_uv_try_write_all((uv_stream_t *)&o->tcp, &bp, &n)) {
    if (!o->stream_gone && o->link) {
      wr_mux_stream_consume(wr_link_mux(o->link), o->sid, len);
      wr_link_flush(o->link);
    }
    wr_link_buf_free(buf);
    return 0;
  }
  owrite *w = malloc(sizeof *w);
  if (!w) {
    wr_link_buf_free(buf);
    return WR_ERR_NOMEM;
  }
  w->o = o;
  w->buf = buf;
  w->len = len;
  int rv = uv_write(&w->req, (uv_stream_t *)&o->tcp, bp, n, origin_on_write);
  if (rv < 0) {
    wr_link_buf_free(buf);
    free(w);
    return rv;
  }
  return 0;
}

static void origin_on_shutdown(uv_shutdown_t *req, int status) {
  (void)req;
  (void)status;
}

static void origin_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf) {
  (void)hint;
  origin *o = h->data;
  size_t credit = 0;
  *buf = uv_buf_init(NULL, 0); /* libuv reports UV_ENOBUFS */
  if (o->closing || o->stream_gone || !o->link) return;
  wr_mux *m = wr_link_mux(o->link);
  credit = wr_mux_stream_credit(m, o->sid);
  if (credit < MIN_READ) return;
  if (!(o->rbuf = wr_mux_buf_new(m))) return;
  *buf = uv_buf_init((char *)o->rbuf,
                     (unsigned)WR_MIN(credit, (size_t)WR_MUX_BUF_CAP));
}

static void origin_read_start(origin *o);

static void origin_on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf) {
  (void)buf;
  origin *o = s->data;
  uint8_t *rbuf = o->rbuf;
  o->rbuf = NULL;
  if (o->closing || o->stream_gone || !o->link) {
    /* alloc lends no buffer without a link, and a link cannot close
     * between alloc and this callback. */
    if (rbuf && o->link) wr_mux_buf_free(wr_link_mux(o->link), rbuf);
    return;
  }
  wr_mux *m = wr_link_mux(o->link);
  if (n == UV_ENOBUFS) {
    /* Out of credit: wait for stream_writable.  With credit, alloc found
     * no memory for a buffer: give this stream up. */
    uv_read_stop(s);
    o->reading = 0;
    if (wr_mux_stream_wait(m, o->sid) >= MIN_READ) origin_close(o);
    return;
  }
  if (n <= 0) {
    wr_mux_buf_free(m, rbuf);
    if (n == 0) return;
    /* EOF: the local server finished its side.  An error after a failed
     * write: it reset the connection after refusing the request (its
     * kernel does, with the body unread).  Either way FIN after what was
     * read, so the node's parser judges whether the answer was complete;
     * any other error resets the stream. */
    if (n != UV_EOF && !o->write_failed) {
      origin_close(o);
      return;
    }
    uv_read_stop(s);
    o->reading = 0;
    o->read_eof = 1;
    wr_mux_stream_close(m, o->sid);
    wr_link_flush(o->link);
    return;
  }
  tap_data(o, 0, rbuf, (size_t)n);
  /* alloc asked for no more than the credit, and nothing ran in between. */
  if (wr_mux_stream_write_buf(m, o->sid, rbuf, (size_t)n) != n) {
    origin_close(o);
    return;
  }
  wr_link_flush(o->link);
}

static void origin_read_start(origin *o) {
  if (o->reading || o->closing || o->stream_gone) return;
  if (uv_read_start((uv_stream_t *)&o->tcp, origin_alloc, origin_on_read) ==
      0)
    o->reading = 1;
}

static int origin_connect(origin *o, const char *host);
static void origin_on_connect(uv_connect_t *req, int status);

/* 127.0.0.1 refused: many dev servers bind "localhost" as ::1 only, so a
 * default local host gets one more try there.  libuv handles cannot
 * connect twice, so a fresh origin takes over the stream and the pending
 * bytes; the old one closes quietly. */
static int origin_retry_v6(origin *o) {
  wr_client *c = o->c;
  if (o->tried_v6 || o->stream_gone || !o->link ||
      strcmp(c->local_host, "127.0.0.1") != 0)
    return 0;
  origin *n = calloc(1, sizeof *n);
  if (!n) return 0;
  n->c = c;
  n->link = o->link;
  n->sid = o->sid;
  n->tried_v6 = 1;
  n->fin_pending = o->fin_pending;
  n->ph = o->ph;
  n->pt = o->pt;
  o->ph = o->pt = NULL;
  n->tap = o->tap; /* the same visitor connection */
  o->tap = NULL;
  uv_tcp_init(c->loop, &n->tcp);
  n->tcp.data = n;
  n->creq.data = n;
  n->next = c->origins;
  if (c->origins) c->origins->prev = n;
  c->origins = n;
  wr_mux_stream_set_user_data(wr_link_mux(o->link), o->sid, n);
  o->stream_gone = 1; /* the stream is n's now */
  origin_close(o);
  if (origin_connect(n, "[::1]") != 0) {
    n->tried_v6 = 1;
    origin_on_connect(&n->creq, UV_ECONNREFUSED);
  }
  return 1;
}

static void origin_on_connect(uv_connect_t *req, int status) {
  origin *o = req->data;
  if (o->closing) return;
  if (status == UV_ECONNREFUSED && origin_retry_v6(o)) return;
  if (status < 0) {
    WR_LOG_WARNF("client", "origin_refused", "local=%s:%d%s err=\"%s\"",
                 o->c->local_host, o->c->cfg.local_port,
                 o->tried_v6 ? " (and [::1])" : "", uv_strerror(status));
    /* The node answers the visitor 502 for this reset code. */
    if (!o->stream_gone) {
      wr_mux_stream_set_user_data(wr_link_mux(o->link), o->sid, NULL);
      wr_mux_stream_reset(wr_link_mux(o->link), o->sid,
                          WR_MUX_RST_CONNECT_FAILED);
      wr_link_flush(o->link);
      o->stream_gone = 1;
    }
    origin_close(o);
    return;
  }
  o->connected = 1;
  wr_tcp_tune(&o->tcp);
  pend *p = o->ph;
  o->ph = o->pt = NULL;
  while (p) {
    pend *n = p->next;
    origin_write(o, p->buf, p->len);
    free(p);
    p = n;
  }
  if (o->fin_pending) uv_shutdown(&o->sreq, (uv_stream_t *)&o->tcp,
                                  origin_on_shutdown);
  if (!o->stream_gone) origin_read_start(o);
}

/* ---- link callbacks ---- */

static int on_stream_open(wr_link *l, uint32_t sid, const uint8_t *meta,
                          size_t len, void *ud) {
  (void)meta;
  (void)len;
  wr_client *c = ud;
  wr_mux *m = wr_link_mux(l);
  /* The visitor may already be gone (OPEN and RST in one batch). */
  if (wr_mux_stream_set_user_data(m, sid, NULL) != 0) return 0;
  origin *o = calloc(1, sizeof *o);
  if (!o) {
    wr_mux_stream_reset(m, sid, WR_MUX_RST_INTERNAL);
    return 0;
  }
  o->c = c;
  o->link = l;
  o->sid = sid;
  if (c->cfg.tap) o->tap = c->cfg.tap->open(c->cfg.tap->ud);
  uv_tcp_init(c->loop, &o->tcp);
  o->tcp.data = o;
  o->creq.data = o;
  o->next = c->origins;
  if (c->origins) c->origins->prev = o;
  c->origins = o;
  wr_mux_stream_set_user_data(m, sid, o);
  int rv = origin_connect(o, c->local_host);
  if (rv != 0) {
    wr_mux_stream_set_user_data(m, sid, NULL);
    wr_mux_stream_reset(m, sid, WR_MUX_RST_CONNECT_FAILED);
    o->stream_gone = 1;
    origin_close(o);
  }
  return 0;
}

static int origin_connect(origin *o, const char *host) {
  struct sockaddr_storage ss;
  char hp[96];
  snprintf(hp, sizeof hp, "%s:%d", host, o->c->cfg.local_port);
  int rv = wr_parse_hostport(hp, &ss);
  if (rv == 0)
    rv = uv_tcp_connect(&o->creq, &o->tcp, (struct sockaddr *)&ss,
                        origin_on_connect);
  return rv;
}

static int on_stream_data(wr_link *l, uint32_t sid, void *sud, uint8_t *buf,
                          size_t len, void *ud) {
  (void)ud;
  origin *o = sud;
  if (o) tap_data(o, 1, buf, len);
  if (!o || o->closing || o->write_failed) {
    /* Nobody will write these: give the credit back at once. */
    wr_mux_stream_consume(wr_link_mux(l), sid, len);
    wr_link_buf_free(buf);
    return 0;
  }
  if (!o->connected) {
    pend *p = malloc(sizeof *p);
    if (!p) {
      wr_link_buf_free(buf);
      origin_close(o);
      return 0;
    }
    p->next = NULL;
    p->buf = buf;
    p->len = len;
    if (o->pt) o->pt->next = p;
    else o->ph = p;
    o->pt = p;
    return 0;
  }
  if (origin_write(o, buf, len) != 0) {
    /* Already known broken (EPIPE at once): the same as a failed write,
     * and these bytes' credit goes back as if written. */
    wr_mux_stream_consume(wr_link_mux(l), sid, len);
    o->write_failed = 1;
  }
  return 0;
}

static int on_stream_fin(wr_link *l, uint32_t sid, void *sud, void *ud) {
  (void)l;
  (void)sid;
  (void)ud;
  origin *o = sud;
  if (!o || o->closing) return 0;
  if (o->connected)
    uv_shutdown(&o->sreq, (uv_stream_t *)&o->tcp, origin_on_shutdown);
  else o->fin_pending = 1;
  return 0;
}

static int on_stream_close(wr_link *l, uint32_t sid, void *sud, int64_t code,
                           int by_peer, void *ud) {
  (void)l;
  (void)sid;
  (void)code;
  (void)by_peer;
  (void)ud;
  origin *o = sud;
  if (!o) return 0;
  o->stream_gone = 1;
  /* Both directions done (or reset): let queued writes finish, then the
   * close below cancels nothing that matters. */
  origin_close(o);
  return 0;
}

static int on_stream_writable(wr_link *l, uint32_t sid, void *sud, void *ud) {
  (void)l;
  (void)sid;
  (void)ud;
  origin *o = sud;
  if (!o || o->closing || !o->connected) return 0;
  if (!o->read_eof) origin_read_start(o);
  return 0;
}

static void fatal(wr_client *c, const char *line) {
  c->fatal = 1;
  if (c->cfg.on_fatal) c->cfg.on_fatal(line, c->cfg.ud);
}

static int on_control(wr_link *l, const uint8_t *msg, size_t len, void *ud) {
  wr_client *c = ud;
  wr_control_msg m;
  if (wr_control_decode(msg, len, &m) != 0) {
    WR_LOG_WARNF("client", "bad_control", "len=%zu", len);
    return WR_ERR_PROTO;
  }
  if (m.type == WR_CONTROL_BOUND) {
    snprintf(c->name, sizeof c->name, "%s", m.u.bound.name);
    int first = !c->ever_bound;
    c->ever_bound = 1;
    c->attempt = 0;
    c->state = C_BOUND;
    WR_LOG_INFOF("client", "bound", "name=%s url=%s aead=%s", m.u.bound.name,
                 m.u.bound.url, wr_aead_name(wr_link_aead(l)));
    if (c->cfg.on_bound)
      c->cfg.on_bound(m.u.bound.name, m.u.bound.url, first, c->cfg.ud);
    return 0;
  }
  if (m.type == WR_CONTROL_ERROR) {
    char line[600];
    wr_control_error_line(&m, line, sizeof line);
    uint32_t code = m.u.error.code;
    /* "did not accept the --token given" reads wrong when none was. */
    if (code == WR_CONTROL_ERR_BAD_TOKEN && !c->token[0])
      snprintf(line, sizeof line,
               "bad token: the node requires one; give it with --token");
    int permanent = code == WR_CONTROL_ERR_BAD_TOKEN ||
                    code == WR_CONTROL_ERR_BAD_NAME ||
                    code == WR_CONTROL_ERR_UNSUPPORTED_VERSION ||
                    code == WR_CONTROL_ERR_NAME_TAKEN ||
                    code == WR_CONTROL_ERR_NAME_MOVED;
    /* After a first bind, "name taken" in answer to a Bind usually means
     * the node still holds our previous, dead link: keep retrying until it
     * notices.  The same error while this link is bound is an eviction
     * (another account won the name in the route table): final.  "Name
     * moved" is final too: a newer client of our account serves the name,
     * and reconnecting would take it back from that one, which would then
     * take it back again, forever. */
    int transient = c->ever_bound && code == WR_CONTROL_ERR_NAME_TAKEN &&
                    c->state != C_BOUND;
    if (permanent && !transient) {
      char out[700];
      snprintf(out, sizeof out, "warren: %s", line);
      fatal(c, out); /* the one line the user sees; no log line too */
      return WR_ERR_AUTH;
    }
    WR_LOG_WARNF("client", "node_error", "code=%u msg=\"%s\"", code, line);
    return WR_ERR_AUTH; /* close the link, and retry */
  }
  if (m.type == WR_CONTROL_GOAWAY) {
    WR_LOG_INFOF("client", "node_draining", "reason=\"%s\"",
                 m.u.goaway.reason);
    return WR_ERR_CLOSED; /* reconnect (to the next node) now */
  }
  return 0;
}

static int on_goaway(wr_link *l, uint32_t code, void *ud) {
  (void)l;
  (void)code;
  (void)ud;
  WR_LOG_INFOF("client", "goaway", "code=%u", code);
  return WR_ERR_CLOSED;
}

static int send_control(wr_link *l, const wr_control_msg *m) {
  uint8_t buf[WR_CONTROL_MAX_WIRE];
  wr_ssize n = wr_control_encode(m, buf, sizeof buf);
  if (n < 0) return (int)n;
  int rv = wr_mux_control(wr_link_mux(l), buf, (size_t)n);
  wr_link_flush(l);
  return rv;
}

static void on_ready(wr_link *l, void *ud) {
  wr_client *c = ud;
  wr_control_msg m;
  memset(&m, 0, sizeof m);
  m.type = WR_CONTROL_HELLO;
  m.u.hello.protocol_version = WR_CONTROL_PROTOCOL_VERSION;
  snprintf(m.u.hello.token, sizeof m.u.hello.token, "%s", c->token);
  snprintf(m.u.hello.client_version, sizeof m.u.hello.client_version,
           "warren/%s", WARREN_VERSION);
  if (c->has_identity) {
    /* The proof signs this link's handshake hash: it is worthless on any
     * other link, so a node (or anyone who saw it) cannot replay it. */
    m.u.hello.has_identity = 1;
    memcpy(m.u.hello.identity_key, c->identity.pk, 32);
    wr_identity_sign(&c->identity, wr_link_handshake_hash(l),
                     m.u.hello.identity_proof);
  }
  int rv = send_control(l, &m);
  memset(&m, 0, sizeof m);
  m.type = WR_CONTROL_BIND;
  snprintf(m.u.bind.name, sizeof m.u.bind.name, "%s", c->name);
  memcpy(m.u.bind.session, c->session, sizeof m.u.bind.session);
  m.u.bind.options = c->cfg.options;
  if (rv == 0) rv = send_control(l, &m);
  if (rv != 0) wr_link_close(l, rv);
}

static void on_link_closed(wr_link *l, int err, void *ud) {
  wr_client *c = ud;
  (void)l;
  c->link = NULL;
  /* Every stream of the link is gone: drop the local connections. */
  for (origin *o = c->origins; o; o = o->next) {
    if (o->link == l) {
      o->stream_gone = 1;
      o->link = NULL;
      origin_close(o);
    }
  }
  if (c->stopping) {
    maybe_finish_stop(c);
    return;
  }
  char line[512];
  if (!c->ever_bound && (err == WR_ERR_AUTH || err == WR_ERR_DECRYPT)) {
    if (c->fatal) return;
    snprintf(line, sizeof line,
             "warren: handshake with %s failed: the node does not hold the "
             "fleet key you pinned (--fleet-key)",
             c->node);
    fatal(c, line);
    return;
  }
  if (!c->ever_bound && err == WR_ERR_VERSION) {
    snprintf(line, sizeof line,
             "warren: handshake with %s failed: the node speaks another "
             "protocol version",
             c->node);
    fatal(c, line);
    return;
  }
  if (c->fatal) return;
  if (err == WR_ERR_REPLAY)
    WR_LOG_WARNF("client", "link_closed",
                 "node=%s err=\"clock skew: the node rejected our "
                 "handshake timestamp; check this machine's clock\"",
                 c->node);
  else
    WR_LOG_WARNF("client", "link_closed", "node=%s err=\"%s\"", c->node,
                 wr_strerror(err));
  schedule_reconnect(c);
}

static const wr_link_callbacks link_cb = {
    .ready = on_ready,
    .closed = on_link_closed,
    .stream_open = on_stream_open,
    .stream_data = on_stream_data,
    .stream_fin = on_stream_fin,
    .stream_close = on_stream_close,
    .stream_writable = on_stream_writable,
    .control = on_control,
    .goaway = on_goaway,
};

/* ---- connecting and upgrading ---- */

static void tcp_closed_free(uv_handle_t *h) {
  wr_client *c = h->data;
  free(h);
  if (c) maybe_finish_stop(c);
}

static void abort_attempt(wr_client *c, const char *why) {
  if (c->tcp) {
    c->tcp->data = c;
    uv_close((uv_handle_t *)c->tcp, tcp_closed_free);
    c->tcp = NULL;
  }
  if (c->stopping) return;
  WR_LOG_WARNF("client", "connect_failed", "node=%s err=\"%s\"", c->node, why);
  schedule_reconnect(c);
}

static void up_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf) {
  (void)hint;
  wr_client *c = h->data;
  *buf = uv_buf_init((char *)c->head + c->headlen,
                     (unsigned)(UPGRADE_HEAD_MAX - c->headlen));
}

static void up_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf) {
  (void)buf;
  wr_client *c = s->data;
  if (n < 0) {
    abort_attempt(c, n == UV_EOF ? "connection closed during upgrade"
                                 : uv_strerror((int)n));
    return;
  }
  c->headlen += (size_t)n;
  uint8_t *end = memmem(c->head, c->headlen, "\r\n\r\n", 4);
  if (!end) {
    if (c->headlen >= UPGRADE_HEAD_MAX)
      abort_attempt(c, "oversized answer to the upgrade request");
    return;
  }
  uv_read_stop(s);
  size_t hlen = (size_t)(end + 4 - c->head);
  if (c->headlen < 12 || memcmp(c->head, "HTTP/1.1 101", 12) != 0) {
    char status[64];
    size_t sl = 0;
    while (sl < c->headlen && sl < sizeof status - 1 && c->head[sl] != '\r') {
      /* The peer's bytes go into a key="value" log line: no quote,
       * backslash or control character may end or split it. */
      uint8_t ch = c->head[sl];
      status[sl] = ch < 0x20 || ch > 0x7e || ch == '"' || ch == '\\'
                       ? '?'
                       : (char)ch;
      sl++;
    }
    status[sl] = 0;
    char why[160];
    snprintf(why, sizeof why, "not a warren node (it answered '%s')",
             status);
    abort_attempt(c, why);
    return;
  }
  wr_link_config lc;
  memset(&lc, 0, sizeof lc);
  lc.initiator = 1;
  memcpy(lc.fleet_key, c->cfg.fleet_pub, 32);
  lc.peer = c->node;
  uv_tcp_t *tcp = c->tcp;
  int rv = wr_link_start(&c->link, c->loop, tcp, &lc, &link_cb, c,
                         c->head + hlen, c->headlen - hlen);
  if (rv != 0) {
    abort_attempt(c, wr_strerror(rv));
    return;
  }
  c->tcp = NULL; /* the link owns it now */
  c->state = C_LINKED;
}

static void up_written(uv_write_t *req, int status) {
  wr_client *c = req->data;
  free(req);
  if (status < 0 && c->tcp && status != UV_ECANCELED)
    abort_attempt(c, uv_strerror(status));
}

static void on_connect(uv_connect_t *req, int status) {
  wr_client *c = req->data;
  if (c->stopping) return;
  if (status < 0) {
    abort_attempt(c, uv_strerror(status));
    return;
  }
  c->state = C_UPGRADING;
  c->headlen = 0;
  int n = snprintf(c->upreq, sizeof c->upreq,
                   "GET /_warren/tunnel HTTP/1.1\r\nHost: %s\r\n"
                   "Connection: Upgrade\r\nUpgrade: warren/1\r\n"
                   "User-Agent: warren/%s\r\n\r\n",
                   c->node, WARREN_VERSION);
  uv_write_t *w = malloc(sizeof *w);
  if (!w) {
    abort_attempt(c, "out of memory");
    return;
  }
  w->data = c;
  uv_buf_t b = uv_buf_init(c->upreq, (unsigned)n);
  int rv = uv_write(w, (uv_stream_t *)c->tcp, &b, 1, up_written);
  if (rv == 0)
    rv = uv_read_start((uv_stream_t *)c->tcp, up_alloc, up_read);
  else free(w);
  if (rv != 0) abort_attempt(c, uv_strerror(rv));
}

static void try_connect(uv_timer_t *t) {
  wr_client *c = t->data;
  if (c->stopping) return;
  struct sockaddr_storage ss;
  if (wr_parse_hostport(c->node, &ss) != 0) {
    char line[400];
    snprintf(line, sizeof line, "warren: bad --node address '%s' (want "
             "HOST:PORT with an IP address or localhost)", c->node);
    fatal(c, line);
    return;
  }
  c->tcp = malloc(sizeof *c->tcp);
  if (!c->tcp) {
    schedule_reconnect(c);
    return;
  }
  uv_tcp_init(c->loop, c->tcp);
  c->tcp->data = c;
  c->creq.data = c;
  c->state = C_CONNECTING;
  WR_LOG_DEBUGF("client", "connecting", "node=%s attempt=%d", c->node,
                c->attempt);
  int rv = uv_tcp_connect(&c->creq, c->tcp, (struct sockaddr *)&ss,
                          on_connect);
  if (rv != 0) abort_attempt(c, uv_strerror(rv));
}

static void schedule_reconnect(wr_client *c) {
  if (c->stopping || c->fatal) return;
  c->state = C_IDLE;
  /* Exponential backoff with "equal jitter": half fixed, half random, so
   * a fleet of clients cut off by one node failure does not reconnect in
   * lockstep, yet each still waits a predictable minimum. */
  uint64_t d = BACKOFF_MIN_MS;
  for (int i = 0; i < c->attempt && d < BACKOFF_MAX_MS; i++) d *= 2;
  if (d > BACKOFF_MAX_MS) d = BACKOFF_MAX_MS;
  d = d / 2 + randombytes_uniform((uint32_t)(d / 2 + 1));
  c->attempt++;
  WR_LOG_INFOF("client", "reconnect", "node=%s in_ms=%llu attempt=%d",
               c->node, (unsigned long long)d, c->attempt);
  uv_timer_start(&c->timer, try_connect, d, 0);
}

int wr_client_start(wr_client **pc, uv_loop_t *loop,
                    const wr_client_config *cfg) {
  wr_client *c = calloc(1, sizeof *c);
  if (!c) return WR_ERR_NOMEM;
  c->loop = loop;
  c->cfg = *cfg;
  snprintf(c->node, sizeof c->node, "%s", cfg->node);
  snprintf(c->token, sizeof c->token, "%s", cfg->token ? cfg->token : "");
  snprintf(c->name, sizeof c->name, "%s", cfg->name ? cfg->name : "");
  snprintf(c->local_host, sizeof c->local_host, "%s",
           cfg->local_host ? cfg->local_host : "127.0.0.1");
  /* One session per client, sent unchanged on every reconnect, so the
   * route table tells our comeback (same session) from another client of
   * the account (a move).  All zero in the config: draw one. */
  memcpy(c->session, cfg->session, sizeof c->session);
  if (sodium_is_zero(c->session, sizeof c->session))
    randombytes_buf(c->session, sizeof c->session);
  if (cfg->identity) {
    c->identity = *cfg->identity;
    c->has_identity = 1;
  }
  uv_timer_init(loop, &c->timer);
  c->timer.data = c;
  uv_timer_start(&c->timer, try_connect, 0, 0);
  *pc = c;
  return 0;
}

static void timer_closed(uv_handle_t *h) {
  wr_client *c = h->data;
  c->timer_closed = 1;
  maybe_finish_stop(c);
}

static void maybe_finish_stop(wr_client *c) {
  if (!c->stopping || !c->timer_closed || c->link || c->tcp || c->origins)
    return;
  void (*done)(void *) = c->done;
  void *ud = c->done_ud;
  sodium_memzero(&c->identity, sizeof c->identity);
  free(c);
  if (done) done(ud);
}

void wr_client_stop(wr_client *c, void (*done)(void *ud), void *ud) {
  if (c->stopping) return;
  c->stopping = 1;
  c->done = done;
  c->done_ud = ud;
  uv_close((uv_handle_t *)&c->timer, timer_closed);
  if (c->tcp) {
    uv_tcp_t *t = c->tcp;
    c->tcp = NULL;
    t->data = NULL;
    uv_close((uv_handle_t *)t, tcp_closed_free);
  }
  if (c->link) wr_link_close(c->link, 0);
  for (origin *o = c->origins; o; o = o->next) origin_close(o);
}
