/*
 * An upstream that is a stream on a node-to-node link (up_nodelink.h):
 * forward.h's operations map onto nstream (nodepool.c), and the
 * stream's events onto the owner's wr_fwd_sink.  The owner's reset codes
 * say why it did not relay the stream (mux.h, WR_MUX_RST_NO_ROUTE...);
 * the stale-route retry is here (the header says when).
 */
#include "up_nodelink.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "warren/err.h"
#include "warren/log.h"
#include "warren/mux.h"

#define UP_OF(s)                                                               \
  ((up_nodelink *)((char *)(s) - offsetof(up_nodelink, ns)))

static void forget(up_nodelink *u) {
  free(u->kept);
  u->kept = NULL;
  u->keptlen = 0;
  u->retryable = 0;
}

static void release(up_nodelink *u) {
  forget(u);
  free(u->meta);
  u->meta = NULL;
}

/* Keeps what the link took, for a retry; past the cap, no retry. */
static void keep(up_nodelink *u, const uint8_t *data, size_t n) {
  if (!u->retryable) return;
  if (u->keptlen + n > UP_NODELINK_KEEP_MAX) {
    forget(u);
    return;
  }
  uint8_t *k = realloc(u->kept, u->keptlen + n);
  if (!k) {
    forget(u);
    return;
  }
  memcpy(k + u->keptlen, data, n);
  u->kept = k;
  u->keptlen += n;
}

/* Writes the kept bytes again on the new stream; then the core may go on
 * (writable).  Returns 1 while some still wait for credit. */
static int replay(up_nodelink *u) {
  while (u->replayed < u->keptlen) {
    wr_ssize n = nstream_write(&u->ns, u->kept + u->replayed,
                                  u->keptlen - u->replayed);
    if (n < 0) {
      nstream_detach(&u->ns, 1);
      release(u);
      u->replaying = 0;
      u->sink->ended(u->owner, WR_FWD_END_GONE);
      return 1;
    }
    if (n == 0) return 1;
    u->replayed += (size_t)n;
  }
  u->replaying = 0;
  if (u->fin_asked) nstream_fin(&u->ns);
  u->sink->writable(u->owner);
  return 0;
}

/* A stale route: open the stream again where the table says now. */
static int retry(up_nodelink *u, const char *why) {
  char owner[65], addr[64], hint[WR_FWD_OWNER_MAX];
  if (u->retried || !u->retryable || !u->reroute || !u->meta) return 0;
  u->retried = 1;
  /* nstream_open below starts the stream afresh: keep the hint first. */
  snprintf(hint, sizeof hint, "%s", u->ns.moved_to);
  if (u->reroute(u->owner, u->name, hint, u->peer, owner, sizeof owner, addr,
                 sizeof addr) != 1)
    return 0;
  owner[sizeof owner - 1] = 0;
  addr[sizeof addr - 1] = 0;
  if (nstream_open(&u->ns, u->pool, owner, addr, u->meta, u->metalen) !=
      0)
    return 0;
  memcpy(u->peer, owner, sizeof u->peer);
  if (u->m_retries) (*u->m_retries)++;
  WR_LOG_INFOF("nodelink", "retry", "name=%s why=%s owner=%s addr=%s%s",
               u->name, why, owner, addr, hint[0] ? " hinted=1" : "");
  u->replaying = 1;
  u->replayed = 0;
  /* A waiting stream gets `writable` when it opens; an open one now. */
  if (u->ns.opened) replay(u);
  return 1;
}

static wr_ssize op_write(void *up, const uint8_t *data, size_t len) {
  up_nodelink *u = up;
  if (u->replaying) return 0; /* `writable` follows the replay */
  wr_ssize n = nstream_write(&u->ns, data, len);
  if (n > 0) keep(u, data, (size_t)n);
  return n;
}

static void op_consume(void *up, size_t n) {
  nstream_consume(&((up_nodelink *)up)->ns, n);
}

static void op_fin(void *up) {
  up_nodelink *u = up;
  u->fin_asked = 1;
  if (!u->replaying) nstream_fin(&u->ns);
}

static void op_detach(void *up, int reset) {
  up_nodelink *u = up;
  nstream_detach(&u->ns, reset);
  release(u);
}

static int op_reusable(void *up) {
  return nstream_reusable(&((up_nodelink *)up)->ns);
}

static const wr_fwd_upstream_ops up_nodelink_ops = {
    .write = op_write,
    .consume = op_consume,
    .fin = op_fin,
    .detach = op_detach,
    .reusable = op_reusable,
};

int up_nodelink_open(up_nodelink *u, nodepool *p, const char *owner,
                        const char *addr, const wr_fwd_open *meta,
                        up_nodelink_reroute reroute,
                        const wr_fwd_sink *sink, void *owner_ud,
                        wr_fwd_upstream *out) {
  uint8_t wire[WR_FWD_OPEN_MAX_WIRE];
  wr_fwd_open m = *meta;
  m.hops = meta->hops + 1; /* this is the hop */
  wr_ssize n = wr_fwd_open_encode(&m, wire, sizeof wire);
  if (n < 0) return (int)n;
  uint64_t *mr = u->m_retries; /* set by the caller, kept across opens */
  memset(u, 0, sizeof *u);
  u->m_retries = mr;
  int rv = nstream_open(&u->ns, p, owner, addr, wire, (size_t)n);
  if (rv != 0) return rv;
  u->sink = sink;
  u->owner = owner_ud;
  u->pool = p;
  u->reroute = reroute;
  snprintf(u->name, sizeof u->name, "%s", meta->name ? meta->name : "");
  snprintf(u->peer, sizeof u->peer, "%s", owner);
  if (reroute && (u->meta = malloc((size_t)n)) != NULL) {
    memcpy(u->meta, wire, (size_t)n);
    u->metalen = (size_t)n;
    u->retryable = 1;
  }
  out->ops = &up_nodelink_ops;
  out->up = u;
  return 0;
}

static void ev_data(nstream *s, uint8_t *buf, size_t len) {
  up_nodelink *u = UP_OF(s);
  /* The owner relayed and the origin answered: never retried now. */
  if (u->meta) release(u);
  u->sink->data(u->owner, buf, len);
}

static void ev_fin(nstream *s) {
  up_nodelink *u = UP_OF(s);
  u->sink->fin(u->owner);
}

static void ev_closed(nstream *s, int64_t code, int by_peer) {
  up_nodelink *u = UP_OF(s);
  wr_fwd_end why = WR_FWD_END_RESET;
  if (code < 0) why = WR_FWD_END_DONE;
  else if (by_peer) {
    switch (code) {
    case WR_MUX_RST_CONNECT_FAILED:
      why = WR_FWD_END_REFUSED;
      break;
    case WR_MUX_RST_NO_ROUTE:
      if (retry(u, "no_route")) return;
      why = WR_FWD_END_NO_ROUTE;
      break;
    case WR_MUX_RST_MOVED:
      if (retry(u, "moved")) return;
      why = WR_FWD_END_MOVED;
      break;
    case WR_MUX_RST_TUNNEL_GONE:
      /* Its client may be back elsewhere already. */
      if (retry(u, "tunnel_gone")) return;
      why = WR_FWD_END_GONE;
      break;
    case WR_MUX_RST_TUNNEL_LOST:
      /* Bytes may have reached the origin: never retried. */
      why = WR_FWD_END_GONE;
      break;
    case WR_MUX_RST_REFUSED:
      /* Refused at OPEN (the owner drains: GOAWAY crossed our OPEN, or
       * its tunnel is full): nothing was relayed; a retry goes to a
       * fresh link. */
      if (retry(u, "refused")) return;
      break;
    }
  }
  release(u);
  u->sink->ended(u->owner, why);
}

static void ev_writable(nstream *s) {
  up_nodelink *u = UP_OF(s);
  if (u->replaying) {
    replay(u);
    return;
  }
  u->sink->writable(u->owner);
}

static void ev_gone(nstream *s, int sent) {
  up_nodelink *u = UP_OF(s);
  if (!sent && retry(u, "unreachable")) return;
  release(u);
  u->sink->ended(u->owner, sent ? WR_FWD_END_GONE : WR_FWD_END_UNREACHABLE);
}

const nstream_events up_nodelink_events = {
    .data = ev_data,
    .fin = ev_fin,
    .closed = ev_closed,
    .writable = ev_writable,
    .gone = ev_gone,
};
