/*
 * The upstream on a node-to-node link (forward.h): a stream on the pooled
 * link to the node that owns the name (nodepool.h), whose OPEN carries
 * the ForwardOpen metadata.  Embedded in its owner, like up_tunnel.
 */
#ifndef WARREN_PROXY_UP_NODELINK_H
#define WARREN_PROXY_UP_NODELINK_H

#include "nodepool.h"
#include "warren/forward.h"

typedef struct wr_up_nodelink {
  wr_nstream ns;
  const wr_fwd_sink *sink;
  void *owner;
  size_t written; /* request bytes the link took (0: a retry is safe) */
} wr_up_nodelink;

/* The wr_nstream events nodepool.c delivers for these streams. */
extern const wr_nstream_events wr_up_nodelink_events;

/* Opens a stream to node |owner| at |addr| with |meta| (hops set to 1 on
 * the wire) and fills |out|.  Returns 0, or WR_ERR_TOOBIG (metadata too
 * long), WR_ERR_INVAL (bad address), WR_ERR_NOMEM, WR_ERR_CLOSED. */
int wr_up_nodelink_open(wr_up_nodelink *u, wr_nodepool *p, const char *owner,
                        const char *addr, const wr_fwd_open *meta,
                        const wr_fwd_sink *sink, void *owner_ud,
                        wr_fwd_upstream *out);

#endif
