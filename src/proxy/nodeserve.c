/*
 * The owner's side of node-to-node links (nodeserve.h).
 *
 * A link (slink) is a wr_link responder with the node-link PSK; the
 * dialer opens one stream per visitor connection.  For each stream:
 *
 *   OPEN     ForwardOpen decoded; hops must be 1 (the first node made the
 *            only hop: a node never forwards a stream again, so no loop
 *            can form).  The name bound here to a live link: a relay to
 *            a new stream on that tunnel.  Otherwise RST with why:
 *            NO_ROUTE (not bound here), MOVED (another node owns it now),
 *            TUNNEL_GONE (its client's link dropped, in its grace period),
 *            REFUSED (the tunnel has no room for a stream), PROTO (bad
 *            metadata).  NO_ROUTE and MOVED mean nothing was relayed, so
 *            the first node may retry against its current table.
 *   SPLICE   bytes relayed raw both ways: the first node did every piece
 *            of HTTP work (parsed the visitor's request, rewrote its head
 *            with X-Forwarded-* and the request id, and parses the
 *            responses for error pages and timeouts), so nothing is
 *            parsed or added twice here.
 *
 * Credit passes through: bytes from one side are consumed there (their
 * credit returned) only once the other side's mux has taken them, so the
 * owner holds at most one stream window of bytes per direction per
 * stream (the queue below fills only with what the sender had credit
 * for), and a slow visitor at the first node stops its origin, not the
 * link: the node link's per-stream windows keep other streams moving.
 *
 * FIN travels after the bytes before it; a reset on either side resets
 * the other; the link dropping resets every tunnel stream it carried.
 */
#include "nodeserve.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nodepool.h"
#include "up_tunnel.h"
#include "warren/err.h"
#include "warren/forward.h"
#include "warren/log.h"
#include "warren/mux.h"

typedef struct slink slink;

/* Bytes received on one side, waiting for the other side's credit. */
typedef struct qbuf {
  struct qbuf *next;
  uint8_t *buf; /* wr_link_buf_new */
  size_t off, len;
} qbuf;

typedef struct queue {
  qbuf *head, *tail;
} queue;

typedef struct relay {
  slink *sl;             /* NULL once the node-link stream is gone */
  uint32_t sid;
  up_tunnel ut;
  wr_fwd_upstream up;    /* up.ops NULL once the tunnel stream ended */
  queue to_t, to_n;      /* node -> tunnel, tunnel -> node */
  int fin_from_n, fin_to_t, fin_from_t, fin_to_n;
  struct relay *prev, *next;
} relay;

struct slink {
  nodesrv *s;
  wr_link *link;
  relay *relays;
  char peer[64];
  slink *prev, *next;
};

struct nodesrv {
  uv_loop_t *loop;
  nodesrv_config cfg;
  wr_noise_replay *replay;
  slink *links;
  size_t nlinks, nrelays;
  int stopping;
  void (*done)(void *);
  void *done_ud;
};

static void q_push(queue *q, qbuf *b) {
  b->next = NULL;
  if (q->tail) q->tail->next = b;
  else q->head = b;
  q->tail = b;
}

static void q_pop(queue *q) {
  qbuf *b = q->head;
  q->head = b->next;
  if (!q->head) q->tail = NULL;
  wr_link_buf_free(b->buf);
  free(b);
}

static void q_clear(queue *q) {
  while (q->head) q_pop(q);
}

static wr_mux *nmux(relay *sp) { return wr_link_mux(sp->sl->link); }

/* Frees a relay whose two sides are both gone. */
static void relay_free(relay *sp) {
  q_clear(&sp->to_t);
  q_clear(&sp->to_n);
  free(sp);
}

/* Ends the tunnel side: |reset| when it may not have finished. */
static void detach_tunnel(relay *sp, int reset) {
  if (!sp->up.ops) return;
  const wr_fwd_upstream_ops *ops = sp->up.ops;
  sp->up.ops = NULL;
  ops->detach(sp->up.up, reset);
}

static void unlink_relay(relay *sp) {
  slink *sl = sp->sl;
  if (sp->prev) sp->prev->next = sp->next;
  else sl->relays = sp->next;
  if (sp->next) sp->next->prev = sp->prev;
  sp->sl = NULL;
  sl->s->nrelays--;
  if (sl->s->cfg.g_relays) (*sl->s->cfg.g_relays)--;
}

/* Resets the node-link stream; its stream_close frees the relay. */
static void reset_node(relay *sp, uint32_t code) {
  if (!sp->sl) return;
  wr_link *l = sp->sl->link;
  wr_mux_stream_reset(wr_link_mux(l), sp->sid, code);
  wr_link_flush(l);
}

/* node -> tunnel, within the tunnel stream's credit. */
static void pump_to_t(relay *sp) {
  size_t took = 0;
  while (sp->up.ops && sp->to_t.head) {
    qbuf *b = sp->to_t.head;
    wr_ssize k = sp->up.ops->write(sp->up.up, b->buf + b->off, b->len - b->off);
    if (k < 0) {
      detach_tunnel(sp, 1);
      reset_node(sp, WR_MUX_RST_CANCEL);
      return;
    }
    if (k == 0) break;
    b->off += (size_t)k;
    took += (size_t)k;
    if (b->off == b->len) q_pop(&sp->to_t);
  }
  if (!sp->sl) return;
  /* The tunnel took them: only now does their credit go back. */
  if (took) wr_mux_stream_consume(nmux(sp), sp->sid, took);
  if (sp->up.ops && !sp->to_t.head && sp->fin_from_n && !sp->fin_to_t) {
    sp->fin_to_t = 1;
    sp->up.ops->fin(sp->up.up);
  }
  wr_link_flush(sp->sl->link);
}

/*
 * Tunnel bytes go to the node link without a copy when the stream's
 * credit takes a whole buffer: the mux queues the buffer itself and
 * frees it once sealed (wr_mux_stream_write_ext).  Before, each
 * decrypted record was copied into the node link's queue: one more pass
 * over every byte an owner relays (docs/BENCHMARKS.md, "Round 7").
 * Returns the bytes taken (all of them) or 0 when the credit is short;
 * |buf| is taken either way unless 0 is returned.
 */
static wr_ssize hand_to_n(relay *sp, uint8_t *buf, size_t len) {
  wr_mux *m = nmux(sp);
  if (wr_mux_stream_credit(m, sp->sid) < len) return 0;
  wr_ssize k = wr_mux_stream_write_ext(m, sp->sid, buf, len,
                                       wr_link_buf_free);
  return k < 0 ? k : (wr_ssize)len;
}

/* tunnel -> node, within the node-link stream's credit. */
static void pump_to_n(relay *sp) {
  size_t took = 0;
  if (!sp->sl) return;
  while (sp->to_n.head) {
    qbuf *b = sp->to_n.head;
    if (b->off == 0) {
      wr_ssize k = hand_to_n(sp, b->buf, b->len);
      if (k > 0) {
        took += (size_t)k;
        b->buf = NULL; /* the mux has it */
        q_pop(&sp->to_n);
        continue;
      }
      if (k < 0) {
        b->buf = NULL;
        q_pop(&sp->to_n);
        detach_tunnel(sp, 1);
        reset_node(sp, WR_MUX_RST_CANCEL);
        return;
      }
    }
    wr_ssize k = wr_mux_stream_write(nmux(sp), sp->sid, b->buf + b->off,
                                     b->len - b->off);
    if (k < 0) {
      detach_tunnel(sp, 1);
      reset_node(sp, WR_MUX_RST_CANCEL);
      return;
    }
    if (k == 0) break;
    b->off += (size_t)k;
    took += (size_t)k;
    if (b->off == b->len) q_pop(&sp->to_n);
  }
  if (took && sp->up.ops) sp->up.ops->consume(sp->up.up, took);
  if (!sp->to_n.head && sp->fin_from_t && !sp->fin_to_n) {
    sp->fin_to_n = 1;
    wr_mux_stream_close(nmux(sp), sp->sid);
  }
  wr_link_flush(sp->sl->link);
}

/* Queues |buf| whose first |off| bytes were already taken; a buffer
 * taken whole is freed at once (the common case: credit is usually
 * there, and this saves a malloc per record). */
static int enqueue(queue *q, uint8_t *buf, size_t off, size_t len) {
  if (off == len) {
    wr_link_buf_free(buf);
    return 0;
  }
  qbuf *b = malloc(sizeof *b);
  if (!b) {
    wr_link_buf_free(buf);
    return WR_ERR_NOMEM;
  }
  b->buf = buf;
  b->off = off;
  b->len = len;
  q_push(q, b);
  return 0;
}

/* ---- the tunnel side's events (wr_fwd_sink) ---- */

static void t_data(void *owner, uint8_t *buf, size_t len) {
  relay *sp = owner;
  if (!sp->sl) { /* not reached: a relay without its node side detached */
    wr_link_buf_free(buf);
    return;
  }
  size_t off = 0;
  if (!sp->to_n.head) {
    /* Nothing waits: the whole buffer to the node link if its credit
     * takes it, else what the credit takes, the rest queued. */
    wr_ssize k = hand_to_n(sp, buf, len);
    if (k != 0) { /* |buf| is the mux's now */
      if (k < 0) {
        detach_tunnel(sp, 1);
        reset_node(sp, WR_MUX_RST_CANCEL);
        return;
      }
      if (sp->up.ops) sp->up.ops->consume(sp->up.up, len);
      pump_to_n(sp); /* sends a FIN that waited, and flushes */
      return;
    }
    k = wr_mux_stream_write(nmux(sp), sp->sid, buf, len);
    if (k < 0) {
      wr_link_buf_free(buf);
      detach_tunnel(sp, 1);
      reset_node(sp, WR_MUX_RST_CANCEL);
      return;
    }
    off = (size_t)k;
    if (k > 0 && sp->up.ops) sp->up.ops->consume(sp->up.up, (size_t)k);
  }
  if (enqueue(&sp->to_n, buf, off, len) != 0) {
    detach_tunnel(sp, 1);
    reset_node(sp, WR_MUX_RST_INTERNAL);
    return;
  }
  pump_to_n(sp);
}

static void t_fin(void *owner) {
  relay *sp = owner;
  sp->fin_from_t = 1;
  pump_to_n(sp);
}

static void t_ended(void *owner, wr_fwd_end why) {
  relay *sp = owner;
  sp->up.ops = NULL; /* it detached itself */
  if (why == WR_FWD_END_DONE) {
    /* Both FINs went through the tunnel: the node-link stream completes
     * once what waits for it has gone out (pump_to_n sends the FIN). */
    q_clear(&sp->to_t);
    if (!sp->sl) relay_free(sp);
    return;
  }
  uint32_t code = why == WR_FWD_END_REFUSED ? WR_MUX_RST_CONNECT_FAILED
                  : why == WR_FWD_END_GONE  ? WR_MUX_RST_TUNNEL_LOST
                                            : WR_MUX_RST_CANCEL;
  if (sp->sl) reset_node(sp, code);
  else relay_free(sp);
}

static void t_writable(void *owner) { pump_to_t(owner); }

static const wr_fwd_sink tunnel_sink = {
    .data = t_data,
    .fin = t_fin,
    .ended = t_ended,
    .writable = t_writable,
};

/* ---- the node link's events ---- */

static int n_open(wr_link *l, uint32_t sid, const uint8_t *meta, size_t len,
                  void *ud) {
  slink *sl = ud;
  nodesrv *s = sl->s;
  wr_mux *m = wr_link_mux(l);
  wr_fwd_meta mt;
  wr_fwd_open view;
  tlink *tl;
  uint32_t code;
  if (wr_fwd_open_decode(meta, len, &mt) != 0) {
    if (s->cfg.m_bad) (*s->cfg.m_bad)++;
    code = WR_MUX_RST_PROTO;
    goto refuse;
  }
  if (mt.hops != 1) {
    /* Only a first node's stream is relayed: anything else would be a
     * second hop (or a confused peer). */
    code = WR_MUX_RST_REFUSED;
    goto refuse;
  }
  int held = 0;
  switch (bindings_lookup(s->cfg.bindings, mt.name, &tl)) {
  case BINDINGS_LIVE:
    break;
  case BINDINGS_GONE:
    /* Its client's link dropped and no other node serves the name: the
     * stream waits here for the client's comeback (bindings.h,
     * tstream_wait), as a visitor at this node would. */
    held = 1;
    break;
  default: {
    char owner[WR_FWD_OWNER_MAX];
    code = s->cfg.lookup_remote &&
                   s->cfg.lookup_remote(s->cfg.routes_ud, mt.name, owner,
                                        sizeof owner) == 1
               ? WR_MUX_RST_MOVED
               : WR_MUX_RST_NO_ROUTE;
    if (code == WR_MUX_RST_MOVED) {
      /* Say where: the first node's table may not know yet (it is why it
       * came here), and its retry would come back.  The hint goes before
       * the reset on the same control queue, so it arrives first.  A
       * full queue only loses the hint. */
      uint8_t hint[WR_FWD_OPEN_MAX_WIRE];
      owner[sizeof owner - 1] = 0;
      wr_ssize hn = wr_fwd_moved_encode(sid, owner, hint, sizeof hint);
      if (hn > 0) (void)wr_mux_control(m, hint, (size_t)hn);
    }
    goto refuse;
  }
  }
  relay *sp = calloc(1, sizeof *sp);
  if (!sp) {
    code = WR_MUX_RST_INTERNAL;
    goto refuse;
  }
  wr_fwd_meta_view(&mt, &view);
  if (held ? up_tunnel_wait(&sp->ut, s->cfg.bindings, mt.name, &tunnel_sink,
                             sp, &sp->up) != 0
           : up_tunnel_open(&sp->ut, tl, &view, &tunnel_sink, sp,
                            &sp->up) != 0) {
    free(sp);
    code = held ? WR_MUX_RST_TUNNEL_GONE : WR_MUX_RST_REFUSED;
    goto refuse;
  }
  sp->sl = sl;
  sp->sid = sid;
  sp->next = sl->relays;
  if (sl->relays) sl->relays->prev = sp;
  sl->relays = sp;
  s->nrelays++;
  if (s->cfg.g_relays) (*s->cfg.g_relays)++;
  wr_mux_stream_set_user_data(m, sid, sp);
  WR_LOG_DEBUGF("nodelink", "relay", "name=%s from=%s request_id=%s visitor=%s",
                mt.name, sl->peer, mt.request_id, mt.visitor_addr);
  return 0;
refuse:
  WR_LOG_DEBUGF("nodelink", "refused", "name=%s from=%s code=%u", mt.name,
                sl->peer, code);
  wr_mux_stream_reset(m, sid, code);
  wr_link_flush(l);
  return 0;
}

static int n_data(wr_link *l, uint32_t sid, void *sud, uint8_t *buf,
                  size_t len, void *ud) {
  relay *sp = sud;
  if (!sp || sp->sl != ud || !sp->up.ops) {
    wr_mux_stream_consume(wr_link_mux(l), sid, len);
    wr_link_buf_free(buf);
    wr_link_flush(l);
    return 0;
  }
  size_t off = 0;
  if (!sp->to_t.head) {
    /* Nothing waits: straight to the tunnel, within its credit. */
    wr_ssize k = sp->up.ops->write(sp->up.up, buf, len);
    if (k < 0) {
      wr_link_buf_free(buf);
      detach_tunnel(sp, 1);
      reset_node(sp, WR_MUX_RST_CANCEL);
      return 0;
    }
    off = (size_t)k;
    if (k > 0) wr_mux_stream_consume(wr_link_mux(l), sid, (size_t)k);
  }
  if (enqueue(&sp->to_t, buf, off, len) != 0) {
    detach_tunnel(sp, 1);
    reset_node(sp, WR_MUX_RST_INTERNAL);
    return 0;
  }
  pump_to_t(sp);
  return 0;
}

static int n_fin(wr_link *l, uint32_t sid, void *sud, void *ud) {
  (void)l;
  (void)sid;
  relay *sp = sud;
  if (!sp || sp->sl != ud) return 0;
  sp->fin_from_n = 1;
  pump_to_t(sp);
  return 0;
}

static int n_close(wr_link *l, uint32_t sid, void *sud, int64_t code,
                   int by_peer, void *ud) {
  (void)l;
  (void)sid;
  (void)by_peer;
  relay *sp = sud;
  if (!sp || sp->sl != ud) return 0;
  unlink_relay(sp);
  /* A clean end (both FINs) finished the tunnel stream too, unless bytes
   * still waited for it; anything else resets it. */
  detach_tunnel(sp, code >= 0 || sp->to_t.head || !sp->fin_to_t ||
                        !sp->fin_from_t);
  relay_free(sp);
  return 0;
}

static int n_writable(wr_link *l, uint32_t sid, void *sud, void *ud) {
  (void)l;
  (void)sid;
  relay *sp = sud;
  if (sp && sp->sl == ud) pump_to_n(sp);
  return 0;
}

static void maybe_done(nodesrv *s) {
  if (!s->stopping || s->links || !s->done) return;
  void (*done)(void *) = s->done;
  s->done = NULL;
  done(s->done_ud);
}

static void n_ready(wr_link *l, void *ud) {
  slink *sl = ud;
  WR_LOG_INFOF("nodelink", "accepted", "peer=%s aead=%s", sl->peer,
               wr_aead_name(wr_link_aead(l)));
}

static void n_closed(wr_link *l, int err, void *ud) {
  (void)l;
  slink *sl = ud;
  nodesrv *s = sl->s;
  sl->link = NULL;
  if (err && err != WR_ERR_CLOSED) {
    WR_LOG_INFOF("nodelink", "peer_down", "peer=%s err=\"%s\"", sl->peer,
                 wr_strerror(err));
    if (s->cfg.m_bad && (err == WR_ERR_DECRYPT || err == WR_ERR_PROTO ||
                         err == WR_ERR_REPLAY))
      (*s->cfg.m_bad)++;
  }
  while (sl->relays) {
    relay *sp = sl->relays;
    unlink_relay(sp);
    detach_tunnel(sp, 1);
    relay_free(sp);
  }
  if (sl->prev) sl->prev->next = sl->next;
  else s->links = sl->next;
  if (sl->next) sl->next->prev = sl->prev;
  s->nlinks--;
  if (s->cfg.g_links) (*s->cfg.g_links)--;
  free(sl);
  maybe_done(s);
}

static const wr_link_callbacks n_cb = {
    .ready = n_ready,
    .closed = n_closed,
    .stream_open = n_open,
    .stream_data = n_data,
    .stream_fin = n_fin,
    .stream_close = n_close,
    .stream_writable = n_writable,
    .control = NULL,
    .goaway = NULL,
};

static void free_write(uv_write_t *req, int status) {
  (void)status;
  free(req);
}

int nodesrv_accept(nodesrv *s, uv_tcp_t *tcp, const char *peer,
                      const uint8_t *pre, size_t prelen) {
  static const char resp101[] = "HTTP/1.1 101 Switching Protocols\r\n"
                                "Connection: Upgrade\r\n"
                                "Upgrade: warren-node/1\r\n\r\n";
  if (s->stopping) return WR_ERR_CLOSED;
  uv_write_t *wr = malloc(sizeof *wr);
  slink *sl = calloc(1, sizeof *sl);
  uv_buf_t buf = uv_buf_init((char *)resp101, sizeof resp101 - 1);
  if (!wr || !sl) {
    free(wr);
    free(sl);
    return WR_ERR_NOMEM;
  }
  int rv = uv_write(wr, (uv_stream_t *)tcp, &buf, 1, free_write);
  if (rv != 0) {
    free(wr);
    free(sl);
    return rv;
  }
  sl->s = s;
  snprintf(sl->peer, sizeof sl->peer, "%s", peer);
  wr_link_config lc;
  memset(&lc, 0, sizeof lc);
  lc.initiator = 0;
  memcpy(lc.fleet_key, s->cfg.fleet_priv, 32);
  lc.use_psk = 1;
  memcpy(lc.psk, s->cfg.psk, 32);
  lc.replay = s->replay;
  nodelink_mux_config(&lc.mux, 0);
  lc.peer = sl->peer;
  uv_read_stop((uv_stream_t *)tcp);
  rv = wr_link_start(&sl->link, s->loop, tcp, &lc, &n_cb, sl, pre, prelen);
  memset(lc.psk, 0, sizeof lc.psk);
  memset(lc.fleet_key, 0, sizeof lc.fleet_key);
  if (rv != 0) {
    free(sl);
    return rv;
  }
  sl->next = s->links;
  if (s->links) s->links->prev = sl;
  s->links = sl;
  s->nlinks++;
  if (s->cfg.g_links) (*s->cfg.g_links)++;
  return 0;
}

int nodesrv_new(nodesrv **ps, uv_loop_t *loop,
                   const nodesrv_config *cfg) {
  nodesrv *s = calloc(1, sizeof *s);
  if (!s) return WR_ERR_NOMEM;
  s->loop = loop;
  s->cfg = *cfg;
  /* Node links are few and long-lived: 4096 handshakes in the two-minute
   * skew window is far more than a fleet dials. */
  int rv = wr_noise_replay_new(&s->replay, 4096, NULL);
  if (rv != 0) {
    free(s);
    return rv;
  }
  *ps = s;
  return 0;
}

size_t nodesrv_links(const nodesrv *s) { return s->nlinks; }
size_t nodesrv_streams(const nodesrv *s) { return s->nrelays; }

void nodesrv_drain(nodesrv *s) {
  for (slink *sl = s->links; sl; sl = sl->next) {
    if (!sl->link || !wr_link_is_ready(sl->link)) continue;
    wr_mux_goaway(wr_link_mux(sl->link), 0);
    wr_link_flush(sl->link);
  }
}

void nodesrv_stop(nodesrv *s, void (*done)(void *ud), void *ud) {
  s->stopping = 1;
  s->done = done;
  s->done_ud = ud;
  for (slink *sl = s->links; sl; sl = sl->next)
    if (sl->link) wr_link_close(sl->link, 0);
  maybe_done(s);
}

void nodesrv_del(nodesrv *s) {
  if (!s) return;
  wr_noise_replay_del(s->replay);
  memset(s->cfg.psk, 0, sizeof s->cfg.psk);
  memset(s->cfg.fleet_priv, 0, sizeof s->cfg.fleet_priv);
  free(s);
}
