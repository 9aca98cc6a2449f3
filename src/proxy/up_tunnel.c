/*
 * An upstream that is a stream on a local tunnel link (up_tunnel.h): the
 * forward.h operations map onto wr_tstream (bindings.c), and the link's
 * stream events onto the owner's wr_fwd_sink.
 */
#include "up_tunnel.h"

#include <stddef.h>

#include "warren/mux.h"

#define UP_OF(s) ((wr_up_tunnel *)((char *)(s) - offsetof(wr_up_tunnel, st)))

static wr_ssize op_write(void *up, const uint8_t *data, size_t len) {
  return wr_tstream_write(&((wr_up_tunnel *)up)->st, data, len);
}

static void op_consume(void *up, size_t n) {
  wr_tstream_consume(&((wr_up_tunnel *)up)->st, n);
}

static void op_fin(void *up) { wr_tstream_fin(&((wr_up_tunnel *)up)->st); }

static void op_detach(void *up, int reset) {
  wr_tstream_detach(&((wr_up_tunnel *)up)->st, reset);
}

static const wr_fwd_upstream_ops up_tunnel_ops = {
    .write = op_write,
    .consume = op_consume,
    .fin = op_fin,
    .detach = op_detach,
};

int wr_up_tunnel_open(wr_up_tunnel *u, wr_tlink *tl, const wr_fwd_open *meta,
                      const wr_fwd_sink *sink, void *owner,
                      wr_fwd_upstream *out) {
  (void)meta; /* a client link serves one origin: nothing to say yet */
  int rv = wr_tstream_open(&u->st, tl, NULL, 0);
  if (rv != 0) return rv;
  u->sink = sink;
  u->owner = owner;
  out->ops = &up_tunnel_ops;
  out->up = u;
  return 0;
}

static void ev_data(wr_tstream *s, uint8_t *buf, size_t len) {
  wr_up_tunnel *u = UP_OF(s);
  u->sink->data(u->owner, buf, len);
}

static void ev_fin(wr_tstream *s) {
  wr_up_tunnel *u = UP_OF(s);
  u->sink->fin(u->owner);
}

static void ev_closed(wr_tstream *s, int64_t code, int by_peer) {
  wr_up_tunnel *u = UP_OF(s);
  wr_fwd_end why = code < 0 ? WR_FWD_END_DONE
                   : by_peer && code == WR_MUX_RST_CONNECT_FAILED
                       ? WR_FWD_END_REFUSED
                       : WR_FWD_END_RESET;
  u->sink->ended(u->owner, why);
}

static void ev_writable(wr_tstream *s) {
  wr_up_tunnel *u = UP_OF(s);
  u->sink->writable(u->owner);
}

static void ev_gone(wr_tstream *s) {
  wr_up_tunnel *u = UP_OF(s);
  u->sink->ended(u->owner, WR_FWD_END_GONE);
}

const wr_tstream_events wr_up_tunnel_events = {
    .data = ev_data,
    .fin = ev_fin,
    .closed = ev_closed,
    .writable = ev_writable,
    .gone = ev_gone,
};
