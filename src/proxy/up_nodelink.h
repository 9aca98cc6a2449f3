/*
 * The upstream on a node-to-node link (forward.h): a stream on the pooled
 * link to the node that owns the name (nodepool.h), whose OPEN carries
 * the ForwardOpen metadata.  Embedded in its owner, like up_tunnel.
 *
 * Stale routes are retried once, inside this upstream (the forwarding
 * core sees one upstream throughout): when the owner answers NO_ROUTE,
 * MOVED, TUNNEL_GONE or REFUSED at OPEN (it relayed nothing), or the link
 * to it could not be made (nothing left), before any response byte came
 * back, the stream is
 * opened again on the owner `reroute` names now, and the request bytes
 * written so far are written again.  They are kept for that until the
 * first response byte, up to UP_NODELINK_KEEP_MAX; a request that
 * wrote more than that (a body that partly left) is never retried.
 */
#ifndef WARREN_PROXY_UP_NODELINK_H
#define WARREN_PROXY_UP_NODELINK_H

#include "nodepool.h"
#include "warren/forward.h"

/* A request head is at most 32 KiB (proxy_uv.c HEAD_MAX): a retry covers
 * any head plus the start of its body. */
#define UP_NODELINK_KEEP_MAX 65536

/* Where the name goes now: 1 with the owner's id and data address, 0 for
 * nowhere remote (no route, or bound on this node since).  |avoid| is
 * the owner that just failed: when the name has several owners (one
 * client's redundant links, --balance), another one is chosen. */
typedef int (*up_nodelink_reroute)(void *owner_ud, const char *name,
                                      const char *avoid, char *owner,
                                      size_t ocap, char *addr, size_t acap);

typedef struct up_nodelink {
  nstream ns;
  const wr_fwd_sink *sink;
  void *owner;
  nodepool *pool;
  up_nodelink_reroute reroute;
  char name[64];
  char peer[65];         /* the owner the stream went to */
  uint8_t *meta;         /* the encoded OPEN, kept for a retry */
  size_t metalen;
  uint8_t *kept;         /* request bytes written, while retryable */
  size_t keptlen, replayed;
  int retryable, retried, replaying, fin_asked;
  uint64_t *m_retries;   /* may be NULL */
} up_nodelink;

/* The nstream events nodepool.c delivers for these streams. */
extern const nstream_events up_nodelink_events;

/* Opens a stream to node |owner| at |addr| with |meta| (hops + 1 on the
 * wire) and fills |out|.  |reroute| may be NULL (no retry).  Returns 0,
 * or WR_ERR_TOOBIG (metadata too long), WR_ERR_INVAL (bad address),
 * WR_ERR_NOMEM, WR_ERR_CLOSED. */
int up_nodelink_open(up_nodelink *u, nodepool *p, const char *owner,
                        const char *addr, const wr_fwd_open *meta,
                        up_nodelink_reroute reroute,
                        const wr_fwd_sink *sink, void *owner_ud,
                        wr_fwd_upstream *out);

#endif
