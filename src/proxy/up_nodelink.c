/*
 * An upstream that is a stream on a node-to-node link (up_nodelink.h):
 * forward.h's operations map onto wr_nstream (nodepool.c), and the
 * stream's events onto the owner's wr_fwd_sink.  The owner's reset codes
 * say why it did not relay the stream (mux.h, WR_MUX_RST_NO_ROUTE...).
 */
#include "up_nodelink.h"

#include <stddef.h>

#include "warren/err.h"
#include "warren/mux.h"

#define UP_OF(s)                                                               \
  ((wr_up_nodelink *)((char *)(s) - offsetof(wr_up_nodelink, ns)))

static wr_ssize op_write(void *up, const uint8_t *data, size_t len) {
  wr_up_nodelink *u = up;
  wr_ssize n = wr_nstream_write(&u->ns, data, len);
  if (n > 0) u->written += (size_t)n;
  return n;
}

static void op_consume(void *up, size_t n) {
  wr_nstream_consume(&((wr_up_nodelink *)up)->ns, n);
}

static void op_fin(void *up) { wr_nstream_fin(&((wr_up_nodelink *)up)->ns); }

static void op_detach(void *up, int reset) {
  wr_nstream_detach(&((wr_up_nodelink *)up)->ns, reset);
}

static const wr_fwd_upstream_ops up_nodelink_ops = {
    .write = op_write,
    .consume = op_consume,
    .fin = op_fin,
    .detach = op_detach,
};

int wr_up_nodelink_open(wr_up_nodelink *u, wr_nodepool *p, const char *owner,
                        const char *addr, const wr_fwd_open *meta,
                        const wr_fwd_sink *sink, void *owner_ud,
                        wr_fwd_upstream *out) {
  uint8_t wire[WR_FWD_OPEN_MAX_WIRE];
  wr_fwd_open m = *meta;
  m.hops = meta->hops + 1; /* this is the hop */
  wr_ssize n = wr_fwd_open_encode(&m, wire, sizeof wire);
  if (n < 0) return (int)n;
  int rv = wr_nstream_open(&u->ns, p, owner, addr, wire, (size_t)n);
  if (rv != 0) return rv;
  u->sink = sink;
  u->owner = owner_ud;
  u->written = 0;
  out->ops = &up_nodelink_ops;
  out->up = u;
  return 0;
}

static void ev_data(wr_nstream *s, uint8_t *buf, size_t len) {
  wr_up_nodelink *u = UP_OF(s);
  u->sink->data(u->owner, buf, len);
}

static void ev_fin(wr_nstream *s) {
  wr_up_nodelink *u = UP_OF(s);
  u->sink->fin(u->owner);
}

static void ev_closed(wr_nstream *s, int64_t code, int by_peer) {
  wr_up_nodelink *u = UP_OF(s);
  wr_fwd_end why = WR_FWD_END_RESET;
  if (code < 0) why = WR_FWD_END_DONE;
  else if (by_peer) {
    switch (code) {
    case WR_MUX_RST_CONNECT_FAILED:
      why = WR_FWD_END_REFUSED;
      break;
    case WR_MUX_RST_NO_ROUTE:
      why = WR_FWD_END_NO_ROUTE;
      break;
    case WR_MUX_RST_MOVED:
      why = WR_FWD_END_MOVED;
      break;
    case WR_MUX_RST_TUNNEL_GONE:
      why = WR_FWD_END_GONE;
      break;
    }
  }
  u->sink->ended(u->owner, why);
}

static void ev_writable(wr_nstream *s) {
  wr_up_nodelink *u = UP_OF(s);
  u->sink->writable(u->owner);
}

static void ev_gone(wr_nstream *s, int sent) {
  wr_up_nodelink *u = UP_OF(s);
  u->sink->ended(u->owner, sent ? WR_FWD_END_GONE : WR_FWD_END_UNREACHABLE);
}

const wr_nstream_events wr_up_nodelink_events = {
    .data = ev_data,
    .fin = ev_fin,
    .closed = ev_closed,
    .writable = ev_writable,
    .gone = ev_gone,
};
