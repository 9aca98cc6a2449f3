/*
 * The upstream on a local tunnel (forward.h): a stream on the link of
 * the client that bound the name here (bindings.c).  Embedded in its
 * owner (one per visitor connection: no allocation per request).
 */
#ifndef WARREN_PROXY_UP_TUNNEL_H
#define WARREN_PROXY_UP_TUNNEL_H

#include "bindings.h"
#include "warren/forward.h"

typedef struct up_tunnel {
  tstream st;
  const wr_fwd_sink *sink;
  void *owner;
} up_tunnel;

/* The tstream events bindings.c delivers for these streams. */
extern const tstream_events up_tunnel_events;

/* Opens a stream on |tl| (OPEN metadata: none yet on a client link, the
 * client knows its one origin) and fills |out|.  Returns 0 or a mux
 * error (WR_ERR_LIMIT, WR_ERR_CLOSED). */
int up_tunnel_open(up_tunnel *u, tlink *tl, const wr_fwd_open *meta,
                      const wr_fwd_sink *sink, void *owner,
                      wr_fwd_upstream *out);

/* The same, held for |name|'s GONE binding (tstream_wait): the
 * upstream opens when its client re-binds here, or ends (GONE). */
int up_tunnel_wait(up_tunnel *u, bindings *b, const char *name,
                   const wr_fwd_sink *sink, void *owner,
                   wr_fwd_upstream *out);

#endif
