/*
 * Forwarding: where a visitor connection's requests go (the upstream).
 *
 * One visitor connection has at most one upstream at a time: a byte
 * stream that carries its requests (rewritten heads, raw bodies) and
 * brings the responses back raw.  The forwarding side talks to it only
 * through this interface, so the same visitor logic drives
 *
 *   - a stream on a local tunnel link (src/proxy/up_tunnel.c): the name
 *     is bound to a client connected to this node;
 *   - a stream on a node-to-node link (not built yet): the name is owned
 *     by another live node; its OPEN carries wr_fwd_open below as a
 *     protobuf message.
 *
 * Sans-IO: this header reaches no libuv type.  Rules, as for the mux
 * (mux.h): calls into an upstream never call back into the visitor side
 * synchronously; its events (wr_fwd_sink) come later, from the
 * implementation's own I/O callbacks.
 */
#ifndef WARREN_FORWARD_H
#define WARREN_FORWARD_H

#include "warren/types.h"

/* What a stream is opened with (the node-to-node OPEN metadata). */
typedef struct wr_fwd_open {
  const char *name;          /* the public name, lowercase */
  const char *host;          /* Host as the visitor sent it */
  const char *request_id;    /* X-Request-Id of the first request */
  const char *visitor_addr;  /* the visitor's address (after PROXY) */
  const char *scheme;        /* "http" or "https" */
  uint32_t hops;             /* 0 from the ingress; a node receiving 1
                                never forwards again (no loops) */
} wr_fwd_open;

/* Why an upstream ended (wr_fwd_sink.ended). */
typedef enum wr_fwd_end {
  WR_FWD_END_DONE = 0,  /* both directions finished (FIN both ways) */
  WR_FWD_END_REFUSED,   /* the origin refused the connection */
  WR_FWD_END_RESET,     /* the far end reset the stream */
  WR_FWD_END_GONE,      /* the link under the stream dropped */
  /* Reserved for the node-to-node hop: the owner has no such name, or it
   * moved; a request none of whose bytes left is retried once. */
  WR_FWD_END_NO_ROUTE,
  WR_FWD_END_MOVED,
} wr_fwd_end;

/* Operations on an open upstream; |up| is the implementation's handle. */
typedef struct wr_fwd_upstream_ops {
  /* Writes up to |len| bytes within credit.  Returns the bytes taken (0:
   * no credit now, `writable` follows) or a fatal error for the stream. */
  wr_ssize (*write)(void *up, const uint8_t *data, size_t len);
  /* |n| response bytes (from `data` events) reached the visitor's socket:
   * their credit goes back to the far end (backpressure). */
  void (*consume)(void *up, size_t n);
  /* The visitor will send nothing more (half-close). */
  void (*fin)(void *up);
  /* Detaches: no event comes afterwards.  |reset|: abort the stream
   * (WR_MUX_RST_CANCEL to the far end); 0: it ended already. */
  void (*detach)(void *up, int reset);
} wr_fwd_upstream_ops;

typedef struct wr_fwd_upstream {
  const wr_fwd_upstream_ops *ops; /* NULL: no upstream */
  void *up;
} wr_fwd_upstream;

/* The events of an upstream, delivered to its owner (the visitor side). */
typedef struct wr_fwd_sink {
  /* Response bytes; |buf| is handed over (free it with the allocator the
   * implementation documents; up_tunnel: wr_link_buf_free).  Their credit
   * comes back with ops->consume. */
  void (*data)(void *owner, uint8_t *buf, size_t len);
  /* The far end finished sending (its FIN). */
  void (*fin)(void *owner);
  /* The upstream is gone (already detached: do not call it again). */
  void (*ended)(void *owner, wr_fwd_end why);
  /* Credit came back: write what waits. */
  void (*writable)(void *owner);
} wr_fwd_sink;

#endif
