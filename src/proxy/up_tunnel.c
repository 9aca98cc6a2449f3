/*
 * An upstream that is a stream on a local tunnel link (up_tunnel.h): the
 * forward.h operations map onto tstream (bindings.c), and the link's
 * stream events onto the owner's wr_fwd_sink.
 */
#include "up_tunnel.h"

#include <stddef.h>

#include "warren/mux.h"

#define UP_OF(s) ((up_tunnel *)((char *)(s) - offsetof(up_tunnel, st)))

static wr_ssize op_write(void *up, const uint8_t *data, size_t len) {
  return tstream_write(&((up_tunnel *)up)->st, data, len);
}

static void op_consume(void *up, size_t n) {
  tstream_consume(&((up_tunnel *)up)->st, n);
}

static void op_fin(void *up) { tstream_fin(&((up_tunnel *)up)->st); }

static void op_detach(void *up, int reset) {
  tstream_detach(&((up_tunnel *)up)->st, reset);
}

static const wr_fwd_upstream_ops up_tunnel_ops = {
    .write = op_write,
    .consume = op_consume,
    .fin = op_fin,
    .detach = op_detach,
};

int up_tunnel_open(up_tunnel *u, tlink *tl, const wr_fwd_open *meta,
                      const wr_fwd_sink *sink, void *owner,
                      wr_fwd_upstream *out) {
  (void)meta; /* a client link serves one origin: nothing to say yet */
  int rv = tstream_open(&u->st, tl, NULL, 0);
  if (rv != 0) return rv;
  u->sink = sink;
  u->owner = owner;
  out->ops = &up_tunnel_ops;
  out->up = u;
  return 0;
}

int up_tunnel_wait(up_tunnel *u, bindings *b, const char *name,
                   const wr_fwd_sink *sink, void *owner,
                   wr_fwd_upstream *out) {
  int rv = tstream_wait(&u->st, b, name);
  if (rv != 0) return rv;
  u->sink = sink;
  u->owner = owner;
  out->ops = &up_tunnel_ops;
  out->up = u;
  return 0;
}

static void ev_data(tstream *s, uint8_t *buf, size_t len) {
  up_tunnel *u = UP_OF(s);
  u->sink->data(u->owner, buf, len);
}

static void ev_fin(tstream *s) {
  up_tunnel *u = UP_OF(s);
  u->sink->fin(u->owner);
}

static void ev_closed(tstream *s, int64_t code, int by_peer) {
  up_tunnel *u = UP_OF(s);
  wr_fwd_end why = code < 0 ? WR_FWD_END_DONE
                   : by_peer && code == WR_MUX_RST_CONNECT_FAILED
                       ? WR_FWD_END_REFUSED
                       : WR_FWD_END_RESET;
  u->sink->ended(u->owner, why);
}

static void ev_writable(tstream *s) {
  up_tunnel *u = UP_OF(s);
  u->sink->writable(u->owner);
}

static void ev_gone(tstream *s) {
  up_tunnel *u = UP_OF(s);
  u->sink->ended(u->owner, WR_FWD_END_GONE);
}

const tstream_events up_tunnel_events = {
    .data = ev_data,
    .fin = ev_fin,
    .closed = ev_closed,
    .writable = ev_writable,
    .gone = ev_gone,
};
