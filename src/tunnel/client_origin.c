/*
 * The tunnel client's visitor streams (client_int.h): each stream the
 * node opens is one visitor connection, piped to a connection of its own
 * to the local origin.  Origin -> node: each read lands in a buffer of
 * the mux's own queue (wr_mux_buf_new) and is queued on the stream as it
 * is (wr_mux_stream_write_buf), so origin bytes are not copied before the
 * sealer reads them; a read asks for no more than the stream's credit,
 * and with less than MIN_READ of it we stop reading until
 * stream_writable.  Node -> origin: each DATA buffer from the link is
 * written as is and its credit returned in the write callback (so a slow
 * local server slows the visitor, not the link).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client_int.h"
#include "warren/err.h"
#include "warren/log.h"

/* ---- origin side ---- */

/* The inspector sees the bytes as they pass (wr_client_tap). */
static void tap_data(origin *o, int to_origin, const uint8_t *p, size_t n) {
  if (o->tap) o->c->cfg.tap->data(o->tap, to_origin, p, n, o->c->cfg.tap->ud);
}

static void origin_closed(uv_handle_t *h) {
  origin *o = h->data;
  wr_client *c = o->c;
  if (o->prev)
    o->prev->next = o->next;
  else
    c->origins = o->next;
  if (o->next) o->next->prev = o->prev;
  if (o->tap) c->cfg.tap->close(o->tap, c->cfg.tap->ud);
  wr_link *l = o->link;
  for (pend *p = o->ph; p;) {
    pend *n = p->next;
    wr_link_buf_free(p->buf);
    free(p);
    p = n;
  }
  free(o);
  if (l) old_maybe_end(c, l);
  maybe_finish_stop(c);
}

void origin_close(origin *o) {
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
  if (uv_read_start((uv_stream_t *)&o->tcp, origin_alloc, origin_on_read) == 0)
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
  if (o->fin_pending)
    uv_shutdown(&o->sreq, (uv_stream_t *)&o->tcp, origin_on_shutdown);
  if (!o->stream_gone) origin_read_start(o);
}

/* ---- link callbacks ---- */

int on_stream_open(wr_link *l, uint32_t sid, const uint8_t *meta, size_t len,
                   void *ud) {
  (void)meta;
  (void)len;
  wr_client *c = ((slot *)ud)->c;
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

int on_stream_data(wr_link *l, uint32_t sid, void *sud, uint8_t *buf,
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
    if (o->pt)
      o->pt->next = p;
    else
      o->ph = p;
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

int on_stream_fin(wr_link *l, uint32_t sid, void *sud, void *ud) {
  (void)l;
  (void)sid;
  (void)ud;
  origin *o = sud;
  if (!o || o->closing) return 0;
  if (o->connected)
    uv_shutdown(&o->sreq, (uv_stream_t *)&o->tcp, origin_on_shutdown);
  else
    o->fin_pending = 1;
  return 0;
}

int on_stream_close(wr_link *l, uint32_t sid, void *sud, int64_t code,
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

int on_stream_writable(wr_link *l, uint32_t sid, void *sud, void *ud) {
  (void)l;
  (void)sid;
  (void)ud;
  origin *o = sud;
  if (!o || o->closing || !o->connected) return 0;
  if (!o->read_eof) origin_read_start(o);
  return 0;
}
