/*
 * `warren http PORT`: the client side of a tunnel (see client.h).
 *
 * The client holds up to `links` links, each in a slot of its own, each
 * to a distinct node (pick.c chooses which, and when).  A slot's states:
 *
 *   IDLE        no link; its timer runs (back-off, or waiting for a node
 *               when every node is held by another slot)
 *   RESOLVING   waiting for the DNS answer of the node names (only when
 *               no address is known yet; later answers refresh the list
 *               in the background)
 *   CONNECTING  TCP connect to the chosen node
 *   UPGRADING   `Upgrade: warren/1` sent, waiting for 101
 *   LINKED      Noise handshake, then Hello + Bind sent
 *   BOUND       the node serves the name on this link
 *
 *   IDLE -timer-> CONNECTING -connected-> UPGRADING -101-> LINKED
 *   LINKED -Bound-> BOUND
 *   any but IDLE -failure/link closed-> IDLE (pick: FAILED, back-off)
 *   IDLE -no address yet, a name to resolve-> RESOLVING -answer-> IDLE
 *   BOUND/LINKED -GOAWAY-> IDLE, the link kept as the slot's `old`
 *
 * A node that says GOAWAY is draining: the slot keeps that link (`old`)
 * serving what it carries and connects to another node at once; once the
 * new link is bound, the old one ends when its last visitor stream does,
 * or OLD_LINGER_MS later (make before break: the name never loses this
 * slot's owner).  With no other node for the slot (one node given, or
 * every other one held by another slot) the draining link ends as soon
 * as it carries no visitor, so the node's drain need not wait for us;
 * the slot finds the node again when it is back.  Every slot binds the same name with the same session,
 * so the route table makes each of their nodes an owner (docs/ROUTES.md,
 * "one session's bindings at several nodes all serve").
 *
 * Errors no retry can fix (wrong fleet key, name taken, bad token) are
 * fatal before the first bind (on_fatal); NAME_TAKEN while bound and
 * NAME_MOVED are fatal always.
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
#include "warren/pick.h"

#define UPGRADE_HEAD_MAX 4096
/* Below this much credit, wait for more rather than read in dribbles. */
#define MIN_READ 4096
/*
 * A lost link's slot dials again after QUICK_MIN_MS plus up to
 * QUICK_JITTER_MS (then the chosen node's own back-off applies, pick.c):
 * quick, since the issue asks for a new owner within 2 s, yet spread, so
 * the clients of a dead node do not all land on the survivors in the
 * same millisecond.
 */
#define QUICK_MIN_MS 20
#define QUICK_JITTER_MS 180
/* Every node held by another slot (more links than nodes answered the
 * DNS name): look again this often. */
#define NO_NODE_RETRY_MS 1000
/* Node names are resolved again on a loss, at most this often. */
#define RESOLVE_MIN_GAP_MS 500
/* A draining link outlives its replacement's bind by at most this much,
 * for the visitor streams it still carries. */
#define OLD_LINGER_MS 5000
#define NAMES_MAX 16 /* node names to resolve (the rest are addresses) */

enum slot_state {
  SL_IDLE,
  SL_RESOLVING,
  SL_CONNECTING,
  SL_UPGRADING,
  SL_LINKED,
  SL_BOUND,
};

typedef struct slot slot;

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

struct slot {
  wr_client *c;
  int id;
  enum slot_state state;
  int started;               /* has run once (slots wait for the name) */
  char addr[WR_PICK_ADDR_MAX]; /* the node this slot holds ("" none) */
  uv_timer_t timer;
  int timer_closed;
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
  int ctl_error;  /* the link closes because of the node's Error */
  int drained;    /* ... and that Error said NODE_DRAINING */
  /* The link to a node that said GOAWAY, until the new one is bound and
   * it has carried its last visitor (or OLD_LINGER_MS). */
  wr_link *old;
  char old_addr[WR_PICK_ADDR_MAX];
  /* ... and no other node could take this slot when it drained (the
   * client's only node, or every other one held by another slot): the
   * draining link then ends as soon as it carries no visitor, without
   * waiting for a replacement that cannot come before the node is gone. */
  int old_alone;
};

struct wr_client {
  uv_loop_t *loop;
  wr_client_config cfg;
  char token[WR_CONTROL_TOKEN_MAX + 1];
  char name[WR_CONTROL_NAME_MAX + 1], local_host[64];
  /* Nodes: the addresses given, and the names to resolve (each stands
   * for every address it resolves to). */
  wr_pick pick;
  char lit[WR_PICK_MAX][WR_PICK_ADDR_MAX];
  size_t nlit;
  char names[NAMES_MAX][WR_PICK_ADDR_MAX + 200]; /* "NAME:PORT" */
  size_t nnames;
  /* The resolver: one name at a time into found[]. */
  uv_getaddrinfo_t gai;
  int resolving, resolve_stale;
  size_t resolve_idx;
  uint32_t resolve_failing; /* bit i: names[i] failed last time */
  char found[WR_PICK_MAX][WR_PICK_ADDR_MAX];
  size_t nfound;
  uint64_t resolved_at;
  slot *slots;
  int nslots;
  int ever_bound, stopping, fatal;
  int ntcp_closing; /* slot sockets closing (tcp_closed_free) */
  uint8_t session[WR_CONTROL_SESSION_LEN]; /* Bind.session, see start */
  int has_identity;
  wr_identity identity;
  origin *origins;
  void (*done)(void *);
  void *done_ud;
};

static void slot_next(slot *s, int quick);
static void origin_close(origin *o);
static void maybe_finish_stop(wr_client *c);
static void old_maybe_end(wr_client *c, wr_link *l);
static void on_slot_timer(uv_timer_t *t);

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
  if (c->fatal) return;
  c->fatal = 1;
  if (c->cfg.on_fatal) c->cfg.on_fatal(line, c->cfg.ud);
}

static uint64_t uniform(uint32_t bound) {
  return bound ? randombytes_uniform(bound) : 0;
}

static size_t links_bound(const wr_client *c) {
  size_t n = 0;
  for (int i = 0; i < c->nslots; i++) n += c->slots[i].state == SL_BOUND;
  return n;
}

/* Ends the draining link of |s| now. */
static void old_end(slot *s) {
  if (!s->old) return;
  WR_LOG_INFOF("client", "drained_link_closed", "node=%s", s->old_addr);
  wr_link_end(s->old, 0);
}

/* A visitor stream of link |l| ended: a draining link that carries no
 * more and whose slot is bound elsewhere (or has nowhere else to go)
 * goes now. */
static void old_maybe_end(wr_client *c, wr_link *l) {
  for (int i = 0; i < c->nslots; i++) {
    slot *s = &c->slots[i];
    if (s->old != l || (s->state != SL_BOUND && !s->old_alone)) continue;
    for (origin *o = c->origins; o; o = o->next)
      if (o->link == l) return;
    old_end(s);
  }
}

/* The node of |s| drains (GOAWAY): keep its link as `old` and move. */
static void slot_drain(slot *s, wr_link *l, const char *reason) {
  wr_client *c = s->c;
  if (l != s->link) return; /* this link is already the old one */
  WR_LOG_INFOF("client", "node_draining", "node=%s reason=\"%s\"", s->addr,
               reason);
  if (s->old) {
    /* The replacement drains too while the first draining link still
     * serves: keep that one, and let the replacement go like a failed
     * attempt (its closed callback finds another node).  A slot holds
     * at most two links, so every link it made is one it can close. */
    s->drained = 1;
    wr_link_close(l, 0);
    return;
  }
  wr_pick_done(&c->pick, s->addr, WR_PICK_DRAINED, uv_now(c->loop));
  s->old = s->link;
  memcpy(s->old_addr, s->addr, sizeof s->addr);
  s->link = NULL;
  s->addr[0] = 0;
  uv_timer_stop(&s->timer);
  slot_next(s, 1);
  /* No other node for this slot (slot_next found none): holding the
   * draining link idle only made the node wait its whole move grace for
   * us (2 s) before it could stop.  Let it go once its visitors are
   * done; the slot's timer keeps looking, and the node itself comes back
   * into the choice after its drain hold-out (pick.c), so a restarted
   * node at the same address is found again, with back-off while it is
   * down. */
  s->old_alone = !s->addr[0];
  if (s->old_alone) {
    WR_LOG_INFOF("client", "no_other_node", "node=%s", s->old_addr);
    old_maybe_end(c, s->old);
  }
}

static void start_waiting_slots(wr_client *c) {
  for (int i = 0; i < c->nslots; i++)
    if (!c->slots[i].started) slot_next(&c->slots[i], 0);
}

static int on_control(wr_link *l, const uint8_t *msg, size_t len, void *ud) {
  slot *s = ud;
  wr_client *c = s->c;
  wr_control_msg m;
  if (wr_control_decode(msg, len, &m) != 0) {
    WR_LOG_WARNF("client", "bad_control", "node=%s len=%zu", s->addr, len);
    return WR_ERR_PROTO;
  }
  if (m.type == WR_CONTROL_BOUND) {
    if (l != s->link) return 0; /* a draining link's late answer */
    snprintf(c->name, sizeof c->name, "%s", m.u.bound.name);
    int first = !c->ever_bound;
    c->ever_bound = 1;
    s->state = SL_BOUND;
    wr_pick_done(&c->pick, s->addr, WR_PICK_BOUND, uv_now(c->loop));
    WR_LOG_INFOF("client", "bound", "name=%s url=%s node=%s links=%zu/%d "
                 "aead=%s", m.u.bound.name, m.u.bound.url, s->addr,
                 links_bound(c), c->nslots, wr_aead_name(wr_link_aead(l)));
    if (s->old) {
      /* The replacement serves: the draining link goes once idle. */
      old_maybe_end(c, s->old);
      if (s->old) uv_timer_start(&s->timer, on_slot_timer, OLD_LINGER_MS, 0);
    }
    if (c->cfg.on_bound)
      c->cfg.on_bound(m.u.bound.name, m.u.bound.url, first, c->cfg.ud);
    /* The other slots waited for the name the node picked. */
    if (first) start_waiting_slots(c);
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
                    s->state != SL_BOUND;
    s->ctl_error = 1;
    if (permanent && !transient) {
      char out[700];
      snprintf(out, sizeof out, "warren: %s", line);
      fatal(c, out); /* the one line the user sees; no log line too */
      return WR_ERR_AUTH;
    }
    if (code == WR_CONTROL_ERR_NODE_DRAINING) s->drained = 1;
    WR_LOG_WARNF("client", "node_error", "node=%s code=%u msg=\"%s\"",
                 s->addr, code, line);
    return WR_ERR_AUTH; /* close the link, and retry elsewhere */
  }
  if (m.type == WR_CONTROL_GOAWAY) {
    slot_drain(s, l, m.u.goaway.reason);
    return 0;
  }
  return 0;
}

static int on_goaway(wr_link *l, uint32_t code, void *ud) {
  char why[32];
  snprintf(why, sizeof why, "mux goaway %u", code);
  slot_drain(ud, l, why);
  return 0;
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
  slot *s = ud;
  wr_client *c = s->c;
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

/* Every stream of |l| is gone: drop its local connections. */
static void drop_origins(wr_client *c, wr_link *l) {
  for (origin *o = c->origins; o; o = o->next) {
    if (o->link == l) {
      o->stream_gone = 1;
      o->link = NULL;
      origin_close(o);
    }
  }
}

static void on_link_closed(wr_link *l, int err, void *ud) {
  slot *s = ud;
  wr_client *c = s->c;
  drop_origins(c, l);
  if (l == s->old) {
    s->old = NULL;
    s->old_alone = 0;
    wr_pick_done(&c->pick, s->old_addr, WR_PICK_RELEASE, uv_now(c->loop));
    s->old_addr[0] = 0;
    maybe_finish_stop(c);
    return;
  }
  s->link = NULL;
  int was_bound = s->state == SL_BOUND;
  int ctl_error = s->ctl_error, drained = s->drained;
  s->ctl_error = s->drained = 0;
  s->state = SL_IDLE;
  if (c->stopping) {
    maybe_finish_stop(c);
    return;
  }
  if (c->fatal) return;
  char line[512];
  if (!c->ever_bound && !ctl_error &&
      (err == WR_ERR_AUTH || err == WR_ERR_DECRYPT)) {
    snprintf(line, sizeof line,
             "warren: handshake with %s failed: the node does not hold the "
             "fleet key you pinned (--fleet-key)",
             s->addr);
    fatal(c, line);
    return;
  }
  if (!c->ever_bound && err == WR_ERR_VERSION) {
    snprintf(line, sizeof line,
             "warren: handshake with %s failed: the node speaks another "
             "protocol version",
             s->addr);
    fatal(c, line);
    return;
  }
  if (err == WR_ERR_REPLAY)
    WR_LOG_WARNF("client", "link_closed",
                 "node=%s err=\"clock skew: the node rejected our "
                 "handshake timestamp; check this machine's clock\"",
                 s->addr);
  else
    WR_LOG_WARNF("client", "link_closed", "node=%s bound=%d err=\"%s\" "
                 "links=%zu/%d", s->addr, was_bound,
                 ctl_error ? "node's error" : wr_strerror(err),
                 links_bound(c), c->nslots);
  wr_pick_done(&c->pick, s->addr, drained ? WR_PICK_DRAINED : WR_PICK_FAILED,
               uv_now(c->loop));
  if (drained) wr_pick_done(&c->pick, s->addr, WR_PICK_RELEASE, 0);
  s->addr[0] = 0;
  c->resolve_stale = 1; /* the fleet may have changed under that node */
  slot_next(s, 1);
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

/* A slot's socket before its link took it: closed, then freed.  The
 * client waits for these (ntcp_closing): libuv runs the socket's pending
 * connect and write callbacks (UV_ECANCELED) before this one, and those
 * read the slot. */
static void tcp_closed_free(uv_handle_t *h) {
  wr_client *c = h->data;
  free(h);
  c->ntcp_closing--;
  maybe_finish_stop(c);
}

static void abort_attempt(slot *s, const char *why) {
  wr_client *c = s->c;
  if (s->tcp) {
    s->tcp->data = c;
    c->ntcp_closing++;
    uv_close((uv_handle_t *)s->tcp, tcp_closed_free);
    s->tcp = NULL;
  }
  s->state = SL_IDLE;
  if (c->stopping) return;
  WR_LOG_WARNF("client", "connect_failed", "node=%s err=\"%s\"", s->addr,
               why);
  wr_pick_done(&c->pick, s->addr, WR_PICK_FAILED, uv_now(c->loop));
  s->addr[0] = 0;
  c->resolve_stale = 1;
  slot_next(s, 1);
}

static void up_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf) {
  (void)hint;
  slot *s = h->data;
  *buf = uv_buf_init((char *)s->head + s->headlen,
                     (unsigned)(UPGRADE_HEAD_MAX - s->headlen));
}

static void up_read(uv_stream_t *st, ssize_t n, const uv_buf_t *buf) {
  (void)buf;
  slot *s = st->data;
  wr_client *c = s->c;
  if (n < 0) {
    abort_attempt(s, n == UV_EOF ? "connection closed during upgrade"
                                 : uv_strerror((int)n));
    return;
  }
  s->headlen += (size_t)n;
  uint8_t *end = memmem(s->head, s->headlen, "\r\n\r\n", 4);
  if (!end) {
    if (s->headlen >= UPGRADE_HEAD_MAX)
      abort_attempt(s, "oversized answer to the upgrade request");
    return;
  }
  uv_read_stop(st);
  size_t hlen = (size_t)(end + 4 - s->head);
  if (s->headlen < 12 || memcmp(s->head, "HTTP/1.1 101", 12) != 0) {
    char status[64];
    size_t sl = 0;
    while (sl < s->headlen && sl < sizeof status - 1 && s->head[sl] != '\r') {
      /* The peer's bytes go into a key="value" log line: no quote,
       * backslash or control character may end or split it. */
      uint8_t ch = s->head[sl];
      status[sl] = ch < 0x20 || ch > 0x7e || ch == '"' || ch == '\\'
                       ? '?'
                       : (char)ch;
      sl++;
    }
    status[sl] = 0;
    char why[160];
    snprintf(why, sizeof why, "not a warren node (it answered '%s')",
             status);
    abort_attempt(s, why);
    return;
  }
  wr_link_config lc;
  memset(&lc, 0, sizeof lc);
  lc.initiator = 1;
  memcpy(lc.fleet_key, c->cfg.fleet_pub, 32);
  lc.peer = s->addr;
  uv_tcp_t *tcp = s->tcp;
  int rv = wr_link_start(&s->link, c->loop, tcp, &lc, &link_cb, s,
                         s->head + hlen, s->headlen - hlen);
  if (rv != 0) {
    abort_attempt(s, wr_strerror(rv));
    return;
  }
  s->tcp = NULL; /* the link owns it now */
  s->state = SL_LINKED;
}

static void up_written(uv_write_t *req, int status) {
  slot *s = req->data;
  free(req);
  if (status < 0 && s->tcp && status != UV_ECANCELED)
    abort_attempt(s, uv_strerror(status));
}

static void on_connect(uv_connect_t *req, int status) {
  slot *s = req->data;
  if (s->c->stopping) return;
  if (status < 0) {
    abort_attempt(s, uv_strerror(status));
    return;
  }
  s->state = SL_UPGRADING;
  s->headlen = 0;
  int n = snprintf(s->upreq, sizeof s->upreq,
                   "GET /_warren/tunnel HTTP/1.1\r\nHost: %s\r\n"
                   "Connection: Upgrade\r\nUpgrade: warren/1\r\n"
                   "User-Agent: warren/%s\r\n\r\n",
                   s->addr, WARREN_VERSION);
  uv_write_t *w = malloc(sizeof *w);
  if (!w) {
    abort_attempt(s, "out of memory");
    return;
  }
  w->data = s;
  uv_buf_t b = uv_buf_init(s->upreq, (unsigned)n);
  int rv = uv_write(w, (uv_stream_t *)s->tcp, &b, 1, up_written);
  if (rv == 0)
    rv = uv_read_start((uv_stream_t *)s->tcp, up_alloc, up_read);
  else free(w);
  if (rv != 0) abort_attempt(s, uv_strerror(rv));
}

static void try_connect(slot *s) {
  wr_client *c = s->c;
  struct sockaddr_storage ss;
  if (wr_parse_hostport(s->addr, &ss) != 0) {
    /* Addresses come from the command line (checked there) or from
     * getaddrinfo: this is our bug, not the user's. */
    abort_attempt(s, "bad node address");
    return;
  }
  s->tcp = malloc(sizeof *s->tcp);
  if (!s->tcp) {
    abort_attempt(s, "out of memory");
    return;
  }
  uv_tcp_init(c->loop, s->tcp);
  s->tcp->data = s;
  s->creq.data = s;
  s->state = SL_CONNECTING;
  WR_LOG_DEBUGF("client", "connecting", "node=%s slot=%d", s->addr, s->id);
  int rv = uv_tcp_connect(&s->creq, s->tcp, (struct sockaddr *)&ss,
                          on_connect);
  if (rv != 0) abort_attempt(s, uv_strerror(rv));
}

/* ---- the node list ---- */

static void resolve_next(wr_client *c);

/* The candidate list: the addresses given plus the last answers. */
static void pick_refresh(wr_client *c) {
  const char *all[WR_PICK_MAX];
  size_t n = 0;
  for (size_t i = 0; i < c->nlit && n < WR_PICK_MAX; i++) all[n++] = c->lit[i];
  for (size_t i = 0; i < c->nfound && n < WR_PICK_MAX; i++)
    all[n++] = c->found[i];
  if (wr_pick_set(&c->pick, all, n) != 0)
    WR_LOG_WARNF("client", "node_list", "err=\"more than %d nodes\"",
                 WR_PICK_MAX);
}

static void on_resolved(uv_getaddrinfo_t *req, int status,
                        struct addrinfo *res) {
  wr_client *c = req->data;
  if (status == 0) {
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
      char ip[48], addr[WR_PICK_ADDR_MAX];
      uint16_t port;
      if (ai->ai_family == AF_INET) {
        struct sockaddr_in *sa = (struct sockaddr_in *)ai->ai_addr;
        uv_ip4_name(sa, ip, sizeof ip);
        port = ntohs(sa->sin_port);
        snprintf(addr, sizeof addr, "%s:%u", ip, port);
      } else if (ai->ai_family == AF_INET6) {
        struct sockaddr_in6 *sa = (struct sockaddr_in6 *)ai->ai_addr;
        uv_ip6_name(sa, ip, sizeof ip);
        port = ntohs(sa->sin6_port);
        snprintf(addr, sizeof addr, "[%s]:%u", ip, port);
      } else {
        continue;
      }
      int dup = 0;
      for (size_t i = 0; i < c->nfound && !dup; i++)
        dup = strcmp(c->found[i], addr) == 0;
      if (!dup && c->nfound < WR_PICK_MAX)
        memcpy(c->found[c->nfound++], addr, sizeof addr);
    }
  } else if (status != UV_ECANCELED) {
    /* Retried every second or so while it fails: one line per outage. */
    if (!(c->resolve_failing & (1u << c->resolve_idx)))
      WR_LOG_WARNF("client", "resolve_failed", "node=%s err=\"%s\"",
                   c->names[c->resolve_idx], uv_strerror(status));
    c->resolve_failing |= 1u << c->resolve_idx;
  }
  if (status == 0) c->resolve_failing &= ~(1u << c->resolve_idx);
  uv_freeaddrinfo(res);
  c->resolving = 0;
  if (c->stopping) {
    maybe_finish_stop(c);
    return;
  }
  c->resolve_idx++;
  resolve_next(c);
}

/* Resolves c->names[resolve_idx..] one at a time; at the end, the list
 * is replaced by what was found (kept as it was when nothing was) and
 * the slots that waited for it go on. */
static void resolve_next(wr_client *c) {
  while (c->resolve_idx < c->nnames) {
    char host[WR_PICK_ADDR_MAX + 200];
    snprintf(host, sizeof host, "%s", c->names[c->resolve_idx]);
    char *colon = strrchr(host, ':');
    if (!colon) {
      c->resolve_idx++;
      continue;
    }
    *colon = 0;
    struct addrinfo hints;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    c->gai.data = c;
    if (uv_getaddrinfo(c->loop, &c->gai, on_resolved, host, colon + 1,
                       &hints) == 0) {
      c->resolving = 1;
      return;
    }
    c->resolve_idx++;
  }
  /* Done: a lookup that found nothing keeps the list we had. */
  if (c->nfound > 0) {
    pick_refresh(c);
    c->resolve_stale = 0;
  }
  WR_LOG_DEBUGF("client", "resolved", "nodes=%zu", c->pick.n);
  for (int i = 0; i < c->nslots; i++)
    if (c->slots[i].state == SL_RESOLVING) slot_next(&c->slots[i], 0);
}

static void resolve_start(wr_client *c) {
  if (c->resolving || c->stopping) return;
  c->resolved_at = uv_now(c->loop);
  c->resolve_idx = 0;
  c->nfound = 0;
  resolve_next(c);
}

/* ---- slots ---- */

static void on_slot_timer(uv_timer_t *t) {
  slot *s = t->data;
  wr_client *c = s->c;
  if (c->stopping || c->fatal) return;
  if (s->state == SL_BOUND) {
    old_end(s); /* OLD_LINGER_MS after the replacement bound */
    return;
  }
  if (s->state != SL_IDLE) return;
  if (s->addr[0]) try_connect(s);
  else slot_next(s, 0);
}

/*
 * |s| has no link: choose its next node and arm its timer.  |quick|: a
 * link was just lost, so wait a short random while first (see
 * QUICK_MIN_MS); the node's own back-off may make it longer.
 */
static void slot_next(slot *s, int quick) {
  wr_client *c = s->c;
  if (c->stopping || c->fatal) return;
  s->started = 1;
  s->state = SL_IDLE;
  uint64_t now = uv_now(c->loop);
  if (c->nnames && c->resolve_stale &&
      now - c->resolved_at >= RESOLVE_MIN_GAP_MS)
    resolve_start(c);
  if (c->resolving && c->pick.n == 0) {
    /* Nothing to dial before the first answer. */
    s->state = SL_RESOLVING;
    return;
  }
  if (s->addr[0]) {
    /* Still holding a node (a drain raced a failure): let it go. */
    wr_pick_done(&c->pick, s->addr, WR_PICK_RELEASE, now);
    s->addr[0] = 0;
  }
  wr_tstamp at;
  if (wr_pick_choose(&c->pick, s->id, now, s->addr, &at) != 0) {
    s->addr[0] = 0;
    c->resolve_stale = 1;
    uv_timer_start(&s->timer, on_slot_timer, NO_NODE_RETRY_MS, 0);
    return;
  }
  uint64_t d = at > now ? at - now : 0;
  if (quick) {
    uint64_t q = QUICK_MIN_MS + uniform(QUICK_JITTER_MS + 1);
    if (d < q) d = q;
  }
  if (d > 0)
    WR_LOG_INFOF("client", "reconnect", "node=%s in_ms=%llu slot=%d",
                 s->addr, (unsigned long long)d, s->id);
  uv_timer_start(&s->timer, on_slot_timer, d, 0);
}

/* Splits the node list of the config into addresses and names. */
static int add_node(wr_client *c, const char *hp) {
  struct sockaddr_storage ss;
  if (wr_parse_hostport(hp, &ss) == 0) {
    if (strlen(hp) >= WR_PICK_ADDR_MAX || c->nlit == WR_PICK_MAX)
      return WR_ERR_INVAL;
    /* The canonical text, so "localhost:1" and "127.0.0.1:1" are one. */
    char ip[48];
    if (ss.ss_family == AF_INET) {
      uv_ip4_name((struct sockaddr_in *)&ss, ip, sizeof ip);
      snprintf(c->lit[c->nlit++], WR_PICK_ADDR_MAX, "%s:%u", ip,
               ntohs(((struct sockaddr_in *)&ss)->sin_port));
    } else {
      uv_ip6_name((struct sockaddr_in6 *)&ss, ip, sizeof ip);
      snprintf(c->lit[c->nlit++], WR_PICK_ADDR_MAX, "[%s]:%u", ip,
               ntohs(((struct sockaddr_in6 *)&ss)->sin6_port));
    }
    return 0;
  }
  if (strlen(hp) >= sizeof c->names[0] || c->nnames == NAMES_MAX)
    return WR_ERR_INVAL;
  snprintf(c->names[c->nnames++], sizeof c->names[0], "%s", hp);
  return 0;
}

int wr_client_start(wr_client **pc, uv_loop_t *loop,
                    const wr_client_config *cfg) {
  wr_client *c = calloc(1, sizeof *c);
  if (!c) return WR_ERR_NOMEM;
  c->loop = loop;
  c->cfg = *cfg;
  c->cfg.nodes = NULL; /* borrowed for the call only */
  wr_pick_init(&c->pick, wr_sodium_rand, NULL);
  int rv = 0;
  if (cfg->nnodes == 0) rv = cfg->node ? add_node(c, cfg->node) : WR_ERR_INVAL;
  for (size_t i = 0; rv == 0 && i < cfg->nnodes; i++)
    rv = add_node(c, cfg->nodes[i]);
  if (rv != 0) {
    free(c);
    return rv;
  }
  pick_refresh(c);
  c->resolve_stale = c->nnames > 0;
  size_t most = c->nlit + (c->nnames ? WR_PICK_MAX : 0);
  int links = cfg->links > 0 ? cfg->links : 1;
  if (links > WR_CLIENT_LINKS_MAX) links = WR_CLIENT_LINKS_MAX;
  if ((size_t)links > most) links = (int)most;
  c->slots = calloc((size_t)links, sizeof *c->slots);
  if (!c->slots) {
    free(c);
    return WR_ERR_NOMEM;
  }
  c->nslots = links;
  snprintf(c->token, sizeof c->token, "%s", cfg->token ? cfg->token : "");
  snprintf(c->name, sizeof c->name, "%s", cfg->name ? cfg->name : "");
  snprintf(c->local_host, sizeof c->local_host, "%s",
           cfg->local_host ? cfg->local_host : "127.0.0.1");
  /* One session per client, sent unchanged on every link and reconnect,
   * so the route table tells our own links (same session: co-owners) and
   * our comeback from another client of the account (a move).  All zero
   * in the config: draw one. */
  memcpy(c->session, cfg->session, sizeof c->session);
  if (sodium_is_zero(c->session, sizeof c->session))
    randombytes_buf(c->session, sizeof c->session);
  if (cfg->identity) {
    c->identity = *cfg->identity;
    c->has_identity = 1;
  }
  for (int i = 0; i < c->nslots; i++) {
    slot *s = &c->slots[i];
    s->c = c;
    s->id = i;
    uv_timer_init(loop, &s->timer);
    s->timer.data = s;
  }
  /* Without a name, the first link's node picks one and the other slots
   * bind it once known (start_waiting_slots). */
  for (int i = 0; i < (c->name[0] ? c->nslots : 1); i++)
    slot_next(&c->slots[i], 0);
  *pc = c;
  return 0;
}

static void timer_closed(uv_handle_t *h) {
  slot *s = h->data;
  s->timer_closed = 1;
  maybe_finish_stop(s->c);
}

static void maybe_finish_stop(wr_client *c) {
  if (!c->stopping || c->origins || c->resolving || c->ntcp_closing) return;
  for (int i = 0; i < c->nslots; i++) {
    slot *s = &c->slots[i];
    if (!s->timer_closed || s->link || s->old || s->tcp) return;
  }
  void (*done)(void *) = c->done;
  void *ud = c->done_ud;
  sodium_memzero(&c->identity, sizeof c->identity);
  free(c->slots);
  free(c);
  if (done) done(ud);
}

void wr_client_stop(wr_client *c, void (*done)(void *ud), void *ud) {
  if (c->stopping) return;
  c->stopping = 1;
  c->done = done;
  c->done_ud = ud;
  if (c->resolving) uv_cancel((uv_req_t *)&c->gai);
  for (int i = 0; i < c->nslots; i++) {
    slot *s = &c->slots[i];
    uv_close((uv_handle_t *)&s->timer, timer_closed);
    if (s->tcp) {
      uv_tcp_t *t = s->tcp;
      s->tcp = NULL;
      t->data = c;
      c->ntcp_closing++;
      uv_close((uv_handle_t *)t, tcp_closed_free);
    }
    if (s->link) wr_link_close(s->link, 0);
    if (s->old) wr_link_close(s->old, 0);
  }
  for (origin *o = c->origins; o; o = o->next) origin_close(o);
}
