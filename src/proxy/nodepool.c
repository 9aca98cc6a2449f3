/*
 * Outbound node-to-node links (nodepool.h).  A pooled link (plink):
 *
 *   CONNECTING  TCP connect to the owner's data address
 *   UPGRADING   "GET /_warren/node" with "Upgrade: warren-node/1" sent;
 *               waiting for the 101 head
 *   HANDSHAKE   the socket is a wr_link: Noise NKpsk0 (both ends prove the
 *               cluster secret), then records and the mux
 *   READY       streams open at once
 *   DRAINING    GOAWAY sent or received: no new streams here (the pool
 *               dials a fresh link for them); closed when the last ends
 *
 * CONNECTING, UPGRADING and HANDSHAKE are the dial: it must end within
 * dial_ms (connect and upgrade, timed here) plus the link's own 10 s
 * handshake limit; a failure gives every waiting stream `gone(sent = 0)`,
 * which the first node may retry (nothing left).  The plink leaves the
 * pool's list when it fails or drains, so a retry never lands on it.
 *
 * One link per owner serves every visitor and tenant headed there: it is
 * dialed on first need, kept while streams use it and for idle_ms after
 * (a hot path never redials: a dial is a TCP connect plus a handshake,
 * ~0.3 ms on loopback, much more across regions), and its keepalive PINGs
 * (the mux's) find a dead owner within 20 s even with no traffic.
 */
#include "nodepool.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "warren/err.h"
#include "warren/log.h"
#include "warren/mux.h"

/*
 * Rotation.  The dialer opens odd stream ids and never reuses one, so a
 * link can open 2^31 streams.  At 2^30 (half, so streams still open
 * finish long before the space ends; at 100k streams/s that is three
 * hours) the link is drained with GOAWAY and new streams go to a new one.
 */
#define ROTATE_AT (1u << 30)
#define HEAD_MAX 1024

enum pl_state { PL_CONNECTING, PL_UPGRADING, PL_HANDSHAKE, PL_READY,
                PL_DRAINING };

struct plink {
  nodepool *p;
  enum pl_state state;
  char owner[65], addr[64];
  uv_tcp_t *tcp;         /* ours until wr_link_start takes it */
  uv_connect_t creq;
  uv_write_t wreq;
  char req[256];
  uint8_t head[HEAD_MAX];
  size_t headlen;
  wr_link *link;
  uv_timer_t timer;      /* the dial's deadline, then idle */
  nstream *waiting, *streams;
  uint32_t nstreams;
  uint64_t opened;
  int failed, usable, handles; /* handles: tcp-or-link, timer */
  plink *prev, *next;
};

struct nodepool {
  uv_loop_t *loop;
  nodepool_config cfg;
  nstream_events ev;
  plink *links;       /* every plink not yet freed; new streams go to
                            the usable ones (not failed, not draining) */
  size_t nlinks;
  uint64_t dials;
  int stopping;
  void (*done)(void *);
  void *done_ud;
  /* Owners whose last dial failed (nodepool_failed_recently): a few
   * entries are enough, dead owners are rare; the oldest is replaced. */
  struct failed_owner {
    char owner[65];
    uint64_t at;
  } failed[16];
};

static void failed_set(nodepool *p, const char *owner, int failed) {
  struct failed_owner *slot = NULL, *oldest = &p->failed[0];
  for (size_t i = 0; i < WR_ARRAY_LEN(p->failed); i++) {
    struct failed_owner *f = &p->failed[i];
    if (f->owner[0] && strcmp(f->owner, owner) == 0) slot = f;
    if (f->at < oldest->at) oldest = f;
  }
  if (!failed) {
    if (slot) memset(slot, 0, sizeof *slot);
    return;
  }
  if (!slot) slot = oldest;
  snprintf(slot->owner, sizeof slot->owner, "%s", owner);
  slot->at = uv_now(p->loop);
  if (slot->at == 0) slot->at = 1; /* 0 marks a free entry */
}

int nodepool_failed_recently(const nodepool *p, const char *owner) {
  uint64_t now = uv_now(p->loop);
  for (size_t i = 0; i < WR_ARRAY_LEN(p->failed); i++) {
    const struct failed_owner *f = &p->failed[i];
    if (f->at && strcmp(f->owner, owner) == 0)
      return now - f->at < NODEPOOL_FAIL_MEMORY_MS;
  }
  return 0;
}

void nodelink_mux_config(wr_mux_config *cfg, int initiator) {
  wr_mux_config_default(cfg, initiator);
  /*
   * One node link carries every visitor of every tenant headed to one
   * owner, where a tunnel carries one client's.  Streams: a tunnel's 1024
   * would cap a busy node's visitors per owner; 16384 concurrent streams
   * cost nothing until used (a stream is ~200 bytes in the mux).
   * Windows: a stream keeps the tunnel's 1 MiB (one stream's throughput
   * is window / RTT, as through a tunnel).  The link window bounds what
   * all streams together may have unconsumed at the receiver; a slow
   * visitor holds at most its stream's 1 MiB of it, so 256 MiB lets 255
   * stalled visitors sit on one link before any other stream waits (the
   * tunnel's 16 MiB would stall the link behind 16).  It is a bound, not
   * an allocation: bytes only exist while a visitor is slower than its
   * origin.  The send buffer (accepted, not yet sealed) is 4 MiB for the
   * same reason.
   */
  cfg->max_streams = 16384;
  cfg->link_window = 256u << 20;
  cfg->send_buffer = 4u << 20;
}

/* ---- stream lists ---- */

static void list_push(nstream **head, nstream *s) {
  s->prev = NULL;
  s->next = *head;
  if (*head) (*head)->prev = s;
  *head = s;
}

static void list_remove(nstream **head, nstream *s) {
  if (s->prev) s->prev->next = s->next;
  else *head = s->next;
  if (s->next) s->next->prev = s->prev;
  s->prev = s->next = NULL;
}

static void free_meta(nstream *s) {
  free(s->meta);
  s->meta = NULL;
  s->metalen = 0;
}

/* ---- plink life ---- */

static void pool_unlist(plink *pl) { pl->usable = 0; }

static void maybe_done(nodepool *p) {
  if (!p->stopping || p->nlinks || !p->done) return;
  void (*done)(void *) = p->done;
  p->done = NULL;
  done(p->done_ud);
}

static void pl_handle_closed(plink *pl) {
  if (--pl->handles > 0) return;
  nodepool *p = pl->p;
  if (pl->prev) pl->prev->next = pl->next;
  else p->links = pl->next;
  if (pl->next) pl->next->prev = pl->prev;
  p->nlinks--;
  if (p->cfg.g_links) (*p->cfg.g_links)--;
  free(pl);
  maybe_done(p);
}

static void on_timer_closed(uv_handle_t *h) { pl_handle_closed(h->data); }

static void on_tcp_closed(uv_handle_t *h) {
  plink *pl = h->data;
  free(h);
  pl_handle_closed(pl);
}

/* Every stream of |pl| loses it: waiting ones never left (sent = 0). */
static void fail_streams(plink *pl) {
  nodepool *p = pl->p;
  while (pl->waiting) {
    nstream *s = pl->waiting;
    list_remove(&pl->waiting, s);
    free_meta(s);
    s->pl = NULL;
    p->ev.gone(s, 0);
  }
  while (pl->streams) {
    nstream *s = pl->streams;
    list_remove(&pl->streams, s);
    s->pl = NULL;
    pl->nstreams--;
    p->ev.gone(s, 1);
  }
}

/* The dial failed before a link existed (the socket is still ours). */
static void pl_fail_dial(plink *pl, const char *why) {
  if (pl->failed) return;
  pl->failed = 1;
  failed_set(pl->p, pl->owner, 1);
  if (pl->p->cfg.m_dial_failed) (*pl->p->cfg.m_dial_failed)++;
  WR_LOG_WARNF("nodelink", "dial_failed", "owner=%s addr=%s err=\"%s\"",
               pl->owner, pl->addr, why);
  pool_unlist(pl);
  uv_timer_stop(&pl->timer);
  uv_close((uv_handle_t *)&pl->timer, on_timer_closed);
  if (pl->tcp) {
    pl->tcp->data = pl;
    uv_close((uv_handle_t *)pl->tcp, on_tcp_closed);
    pl->tcp = NULL;
  }
  fail_streams(pl);
}

int nstream_reusable(const nstream *s) {
  return s->pl && !s->pl->failed && s->pl->state != PL_DRAINING;
}

/* No new streams here; closes once the last one ended. */
static void pl_drain(plink *pl) {
  pool_unlist(pl);
  if (pl->state == PL_READY) pl->state = PL_DRAINING;
  if (pl->nstreams == 0 && pl->link) wr_link_close(pl->link, 0);
}

static void on_timer(uv_timer_t *t) {
  plink *pl = t->data;
  if (pl->state < PL_HANDSHAKE) {
    pl_fail_dial(pl, "timed out");
    return;
  }
  /* Idle: no stream for idle_ms. */
  if (pl->nstreams == 0 && !pl->waiting && pl->link) {
    WR_LOG_DEBUGF("nodelink", "idle_close", "owner=%s", pl->owner);
    pool_unlist(pl);
    wr_link_close(pl->link, 0);
  }
}

static void arm_idle(plink *pl) {
  if (pl->nstreams == 0 && pl->state == PL_READY)
    uv_timer_start(&pl->timer, on_timer, pl->p->cfg.idle_ms, 0);
  else if (pl->nstreams == 0 && pl->state == PL_DRAINING && pl->link)
    wr_link_close(pl->link, 0);
}

/* Opens a waiting stream on the ready link.  Returns 0 or a mux error. */
static int open_now(plink *pl, nstream *s) {
  wr_mux *m = wr_link_mux(pl->link);
  int rv = wr_mux_stream_open(m, s->meta, s->metalen, &s->sid, s);
  if (rv != 0) return rv;
  free_meta(s);
  s->opened = 1;
  list_push(&pl->streams, s);
  pl->nstreams++;
  uv_timer_stop(&pl->timer);
  if (s->fin_pending) wr_mux_stream_close(m, s->sid);
  if (++pl->opened >= pl->p->cfg.rotate_at) {
    wr_mux_goaway(m, 0);
    pl_drain(pl);
  }
  wr_link_flush(pl->link);
  return 0;
}

/* ---- the link's callbacks ---- */

static void pl_on_ready(wr_link *l, void *ud) {
  plink *pl = ud;
  nodepool *p = pl->p;
  pl->state = PL_READY;
  failed_set(pl->p, pl->owner, 0);
  uv_timer_stop(&pl->timer);
  WR_LOG_INFOF("nodelink", "up", "owner=%s addr=%s aead=%s", pl->owner,
               pl->addr, wr_aead_name(wr_link_aead(l)));
  /* Open the waiting streams, oldest first: reverse the list. */
  nstream *rev = NULL;
  while (pl->waiting) {
    nstream *s = pl->waiting;
    list_remove(&pl->waiting, s);
    list_push(&rev, s);
  }
  while (rev) {
    nstream *s = rev;
    list_remove(&rev, s);
    if (open_now(pl, s) != 0) {
      free_meta(s);
      s->pl = NULL;
      p->ev.gone(s, 0);
      continue;
    }
    p->ev.writable(s);
  }
  arm_idle(pl);
}

static void pl_on_closed(wr_link *l, int err, void *ud) {
  (void)l;
  plink *pl = ud;
  pl->link = NULL;
  if (pl->state == PL_HANDSHAKE && pl->p->cfg.m_dial_failed)
    (*pl->p->cfg.m_dial_failed)++; /* never became ready */
  if (err && err != WR_ERR_CLOSED)
    WR_LOG_WARNF("nodelink", "down", "owner=%s addr=%s err=\"%s\"", pl->owner,
                 pl->addr, wr_strerror(err));
  else WR_LOG_DEBUGF("nodelink", "closed", "owner=%s", pl->owner);
  pool_unlist(pl);
  pl->failed = 1;
  uv_timer_stop(&pl->timer);
  uv_close((uv_handle_t *)&pl->timer, on_timer_closed);
  fail_streams(pl);
  pl_handle_closed(pl); /* the link's share */
}

static int pl_on_open(wr_link *l, uint32_t sid, const uint8_t *meta,
                      size_t len, void *ud) {
  (void)meta;
  (void)len;
  (void)ud;
  /* Streams go dialer -> owner only. */
  wr_mux_stream_reset(wr_link_mux(l), sid, WR_MUX_RST_REFUSED);
  return 0;
}

static int pl_on_data(wr_link *l, uint32_t sid, void *sud, uint8_t *buf,
                      size_t len, void *ud) {
  plink *pl = ud;
  nstream *s = sud;
  if (!s || s->pl != pl) {
    wr_mux_stream_consume(wr_link_mux(l), sid, len);
    wr_link_buf_free(buf);
    return 0;
  }
  pl->p->ev.data(s, buf, len);
  return 0;
}

static int pl_on_fin(wr_link *l, uint32_t sid, void *sud, void *ud) {
  (void)l;
  (void)sid;
  nstream *s = sud;
  plink *pl = ud;
  if (s && s->pl == pl) pl->p->ev.fin(s);
  return 0;
}

static int pl_on_close(wr_link *l, uint32_t sid, void *sud, int64_t code,
                       int by_peer, void *ud) {
  (void)l;
  (void)sid;
  plink *pl = ud;
  nstream *s = sud;
  if (!s || s->pl != pl) return 0;
  list_remove(&pl->streams, s);
  pl->nstreams--;
  s->pl = NULL;
  pl->p->ev.closed(s, code, by_peer);
  arm_idle(pl);
  return 0;
}

static int pl_on_writable(wr_link *l, uint32_t sid, void *sud, void *ud) {
  (void)l;
  (void)sid;
  nstream *s = sud;
  plink *pl = ud;
  if (s && s->pl == pl) pl->p->ev.writable(s);
  return 0;
}

static int pl_on_goaway(wr_link *l, uint32_t code, void *ud) {
  (void)l;
  (void)code;
  plink *pl = ud;
  WR_LOG_INFOF("nodelink", "goaway", "owner=%s", pl->owner);
  pl_drain(pl);
  return 0;
}

/* The owner's CONTROL messages: only ForwardMoved, the hint it sends
 * right before a MOVED reset (forward.h).  Anything else, or a hint for a
 * stream not open here, is dropped: it only makes a retry go where the
 * table says, and a bad one must not end a link that carries other
 * tenants' streams. */
static int pl_on_control(wr_link *l, const uint8_t *msg, size_t len,
                         void *ud) {
  (void)l;
  plink *pl = ud;
  uint32_t sid;
  char owner[WR_FWD_OWNER_MAX];
  if (wr_fwd_moved_decode(msg, len, &sid, owner) != 0) {
    WR_LOG_DEBUGF("nodelink", "bad_control", "owner=%s len=%zu", pl->owner,
                  len);
    return 0;
  }
  for (nstream *s = pl->streams; s; s = s->next)
    if (s->opened && s->sid == sid) {
      snprintf(s->moved_to, sizeof s->moved_to, "%s", owner);
      break;
    }
  return 0;
}

static const wr_link_callbacks pl_cb = {
    .ready = pl_on_ready,
    .closed = pl_on_closed,
    .stream_open = pl_on_open,
    .stream_data = pl_on_data,
    .stream_fin = pl_on_fin,
    .stream_close = pl_on_close,
    .stream_writable = pl_on_writable,
    .control = pl_on_control,
    .goaway = pl_on_goaway,
};

/* ---- dialing ---- */

static void up_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf) {
  (void)hint;
  plink *pl = h->data;
  *buf = uv_buf_init((char *)pl->head + pl->headlen,
                     (unsigned)(HEAD_MAX - pl->headlen));
}

static void up_read(uv_stream_t *st, ssize_t n, const uv_buf_t *buf) {
  (void)buf;
  plink *pl = st->data;
  if (n == 0 || pl->failed) return;
  if (n < 0) {
    pl_fail_dial(pl, n == UV_EOF ? "closed during the upgrade"
                                 : uv_strerror((int)n));
    return;
  }
  pl->headlen += (size_t)n;
  uint8_t *end = memmem(pl->head, pl->headlen, "\r\n\r\n", 4);
  if (!end) {
    if (pl->headlen >= HEAD_MAX) pl_fail_dial(pl, "oversized upgrade answer");
    return;
  }
  uv_read_stop(st);
  if (pl->headlen < 12 || memcmp(pl->head, "HTTP/1.1 101", 12) != 0) {
    pl_fail_dial(pl, "not a warren node, or node links are off there");
    return;
  }
  size_t hlen = (size_t)(end + 4 - pl->head);
  wr_link_config lc;
  memset(&lc, 0, sizeof lc);
  lc.initiator = 1;
  memcpy(lc.fleet_key, pl->p->cfg.fleet_pub, 32);
  lc.use_psk = 1;
  memcpy(lc.psk, pl->p->cfg.psk, 32);
  nodelink_mux_config(&lc.mux, 1);
  if (pl->p->cfg.link_window) lc.mux.link_window = pl->p->cfg.link_window;
  lc.peer = pl->addr;
  int rv = wr_link_start(&pl->link, pl->p->loop, pl->tcp, &lc, &pl_cb, pl,
                         pl->head + hlen, pl->headlen - hlen);
  memset(lc.psk, 0, sizeof lc.psk);
  if (rv != 0) {
    pl_fail_dial(pl, wr_strerror(rv));
    return;
  }
  pl->tcp = NULL; /* the link owns it; its `closed` is our share */
  pl->state = PL_HANDSHAKE;
}

static void up_written(uv_write_t *req, int status) {
  plink *pl = req->data;
  if (status < 0 && status != UV_ECANCELED && !pl->failed && pl->tcp)
    pl_fail_dial(pl, uv_strerror(status));
}

static void on_connect(uv_connect_t *req, int status) {
  plink *pl = req->data;
  if (pl->failed) return;
  if (status < 0) {
    pl_fail_dial(pl, uv_strerror(status));
    return;
  }
  wr_tcp_tune(pl->tcp);
  pl->state = PL_UPGRADING;
  int n = snprintf(pl->req, sizeof pl->req,
                   "GET /_warren/node HTTP/1.1\r\nHost: %s\r\n"
                   "Connection: Upgrade\r\nUpgrade: warren-node/1\r\n\r\n",
                   pl->addr);
  pl->wreq.data = pl;
  uv_buf_t b = uv_buf_init(pl->req, (unsigned)n);
  int rv = uv_write(&pl->wreq, (uv_stream_t *)pl->tcp, &b, 1, up_written);
  if (rv == 0)
    rv = uv_read_start((uv_stream_t *)pl->tcp, up_alloc, up_read);
  if (rv != 0) pl_fail_dial(pl, uv_strerror(rv));
}

static plink *pl_dial(nodepool *p, const char *owner, const char *addr,
                         int *err) {
  struct sockaddr_storage ss;
  if (wr_parse_hostport(addr, &ss) != 0) {
    *err = WR_ERR_INVAL;
    return NULL;
  }
  plink *pl = calloc(1, sizeof *pl);
  uv_tcp_t *tcp = malloc(sizeof *tcp);
  if (!pl || !tcp) {
    free(pl);
    free(tcp);
    *err = WR_ERR_NOMEM;
    return NULL;
  }
  pl->p = p;
  snprintf(pl->owner, sizeof pl->owner, "%s", owner);
  snprintf(pl->addr, sizeof pl->addr, "%s", addr);
  pl->state = PL_CONNECTING;
  pl->tcp = tcp;
  uv_tcp_init(p->loop, tcp);
  tcp->data = pl;
  uv_timer_init(p->loop, &pl->timer);
  pl->timer.data = pl;
  pl->handles = 2;
  p->nlinks++;
  p->dials++;
  if (p->cfg.g_links) (*p->cfg.g_links)++;
  pl->next = p->links;
  if (p->links) p->links->prev = pl;
  p->links = pl;
  pl->usable = 1;
  WR_LOG_DEBUGF("nodelink", "dial", "owner=%s addr=%s", owner, addr);
  uv_timer_start(&pl->timer, on_timer, p->cfg.dial_ms, 0);
  pl->creq.data = pl;
  int rv = uv_tcp_connect(&pl->creq, tcp, (struct sockaddr *)&ss, on_connect);
  if (rv != 0) {
    /* The caller's stream is not attached yet: it is failed after it
     * joins (a failed plink is never returned). */
    pl_fail_dial(pl, uv_strerror(rv));
    *err = rv;
    return NULL;
  }
  return pl;
}

/* ---- streams ---- */

int nstream_open(nstream *s, nodepool *p, const char *owner,
                    const char *addr, const uint8_t *meta, size_t len) {
  plink *pl;
  int err = 0;
  memset(s, 0, sizeof *s);
  if (p->stopping) return WR_ERR_CLOSED;
  for (pl = p->links; pl; pl = pl->next)
    if (pl->usable && strcmp(pl->owner, owner) == 0 &&
        strcmp(pl->addr, addr) == 0)
      break;
  if (!pl && !(pl = pl_dial(p, owner, addr, &err))) return err;
  s->pl = pl;
  if (pl->state == PL_READY) {
    int rv = wr_mux_stream_open(wr_link_mux(pl->link), meta, len, &s->sid, s);
    if (rv == WR_ERR_CLOSED || rv == WR_ERR_LIMIT) {
      /* GOAWAY crossed us, or the link is full: a fresh link. */
      pl_drain(pl);
      s->pl = NULL;
      return nstream_open(s, p, owner, addr, meta, len);
    }
    if (rv != 0) {
      s->pl = NULL;
      return rv;
    }
    s->opened = 1;
    list_push(&pl->streams, s);
    pl->nstreams++;
    uv_timer_stop(&pl->timer);
    if (++pl->opened >= p->cfg.rotate_at) {
      wr_mux_goaway(wr_link_mux(pl->link), 0);
      pl_drain(pl);
    }
    wr_link_flush(pl->link);
    return 0;
  }
  s->meta = malloc(len ? len : 1);
  if (!s->meta) {
    s->pl = NULL;
    return WR_ERR_NOMEM;
  }
  memcpy(s->meta, meta, len);
  s->metalen = len;
  list_push(&pl->waiting, s);
  return 0;
}

wr_ssize nstream_write(nstream *s, const uint8_t *data, size_t len) {
  if (!s->pl) return WR_ERR_CLOSED;
  if (!s->opened) return 0; /* `writable` comes when it opens */
  wr_ssize n = wr_mux_stream_write(wr_link_mux(s->pl->link), s->sid, data,
                                   len);
  wr_link_flush(s->pl->link);
  return n;
}

void nstream_consume(nstream *s, size_t n) {
  if (!s->pl || !s->opened) return;
  wr_mux_stream_consume(wr_link_mux(s->pl->link), s->sid, n);
  wr_link_flush(s->pl->link);
}

void nstream_fin(nstream *s) {
  if (!s->pl) return;
  if (!s->opened) {
    s->fin_pending = 1;
    return;
  }
  wr_mux_stream_close(wr_link_mux(s->pl->link), s->sid);
  wr_link_flush(s->pl->link);
}

void nstream_detach(nstream *s, int reset) {
  plink *pl = s->pl;
  if (!pl) return;
  if (!s->opened) {
    list_remove(&pl->waiting, s);
    free_meta(s);
    s->pl = NULL;
    return;
  }
  wr_mux *m = wr_link_mux(pl->link);
  wr_mux_stream_set_user_data(m, s->sid, NULL);
  if (reset) wr_mux_stream_reset(m, s->sid, WR_MUX_RST_CANCEL);
  wr_link_flush(pl->link);
  list_remove(&pl->streams, s);
  pl->nstreams--;
  s->pl = NULL;
  arm_idle(pl);
}

/* ---- the pool ---- */

int nodepool_new(nodepool **pp, uv_loop_t *loop,
                    const nodepool_config *cfg) {
  nodepool *p = calloc(1, sizeof *p);
  if (!p) return WR_ERR_NOMEM;
  p->loop = loop;
  p->cfg = *cfg;
  p->ev = *cfg->ev;
  if (!p->cfg.idle_ms) p->cfg.idle_ms = 120000;
  if (!p->cfg.dial_ms) p->cfg.dial_ms = 5000;
  if (!p->cfg.rotate_at) p->cfg.rotate_at = ROTATE_AT;
  *pp = p;
  return 0;
}

size_t nodepool_peer_dead(nodepool *p, const char *owner) {
  size_t n = 0;
  for (plink *pl = p->links, *next; pl; pl = next) {
    next = pl->next; /* closing does not free at once (handles) */
    if (pl->failed || strcmp(pl->owner, owner) != 0) continue;
    n++;
    pool_unlist(pl);
    /* Streams on it get gone(): a visitor with nothing of the response
     * yet gets a 502 now, not a 504 after the upstream timeout. */
    if (pl->link) wr_link_close(pl->link, WR_ERR_CLOSED);
    else pl_fail_dial(pl, "owner declared dead");
  }
  return n;
}

size_t nodepool_links(const nodepool *p) { return p->nlinks; }

uint64_t nodepool_dials(const nodepool *p) { return p->dials; }

void nodepool_stop(nodepool *p, void (*done)(void *ud), void *ud) {
  p->stopping = 1;
  p->done = done;
  p->done_ud = ud;
  for (plink *pl = p->links, *next; pl; pl = next) {
    next = pl->next; /* pl_fail_dial does not free at once (handles) */
    pool_unlist(pl);
    if (pl->link) wr_link_close(pl->link, 0);
    else if (!pl->failed) pl_fail_dial(pl, "node stopping");
  }
  maybe_done(p);
}

void nodepool_del(nodepool *p) {
  if (!p) return;
  memset(p->cfg.psk, 0, sizeof p->cfg.psk);
  free(p);
}
