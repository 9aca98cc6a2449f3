/*
 * The node's public side (src/proxy/): one TCP listener that serves
 * visitors (HTTP/1.1, routed by Host) and accepts tunnel clients (a GET
 * /_warren/tunnel with Upgrade: warren/1 becomes a wr_link).
 *
 *   proxy_uv.c  the listener and the libuv adapter of each visitor
 *               connection, whose logic is the sans-IO forwarding core
 *               (forward.h, src/proxy/forward.c)
 *   bindings.c  tunnel clients' links (Hello, token, Bind), this node's
 *               table name -> link, eviction, the routes hooks below
 *   up_tunnel.c the upstream "a stream on a local tunnel"
 *
 * Per visitor connection: one upstream that carries the connection's
 * requests (rewritten heads, raw bodies) and brings the responses back
 * raw.  Backpressure: visitor reads stop while the upstream has no
 * credit; credit for response bytes returns only when the visitor's
 * socket took them.
 */
#ifndef WARREN_INGRESS_H
#define WARREN_INGRESS_H

#include <uv.h>

#include "warren/metrics.h"

typedef struct wr_ingress wr_ingress;

typedef struct wr_ingress_config {
  const char *listen;            /* "127.0.0.1:8080" */
  const char *domain;            /* "localhost" */
  const char *node_id;
  uint8_t fleet_priv[32];        /* the Noise static key */
  int have_node_psk;             /* 1: node-to-node links are on: this
                                    node accepts them (GET /_warren/node,
                                    Upgrade: warren-node/1) and dials them
                                    to forward names owned elsewhere */
  uint8_t node_psk[32];          /* wr_keys_node_psk of the cluster secret */
  const char *token;             /* required of clients when set */
  uint64_t upstream_timeout_ms;  /* the origin silent this long after a
                                    request was sent whole (or not reading
                                    it) -> 504; docs/HTTP.md "Timers" */
  uint64_t idle_timeout_ms;      /* idle keep-alive visitors are closed;
                                    a visitor this long silent in the
                                    middle of a request body -> 408 */
  uint64_t head_timeout_ms;      /* a request head must be complete this
                                    long after its first byte (in total,
                                    not between reads), else 408; also how
                                    long a new connection may stay silent */
  uint64_t body_min_rate;        /* bytes/s a request body must average once
                                    it had head_timeout_ms of reading time,
                                    else 408 (time the origin is not
                                    reading does not count); 0 = no rate */
  uint64_t gone_grace_ms;        /* a dropped tunnel's name answers 502
                                    "reconnecting" this long, then 404 */
  const char *proxy_from;        /* "IP,IP,...": peers (load balancers)
                                    whose connections start with a PROXY
                                    protocol v1/v2 header; NULL = none */
  /* Visitor connections open at once (before a tunnel client's or node
   * link's hand-off they count too), in total and per source address.
   * A connection over either cap is accepted, answered 503 (one
   * try-write, no wait) and closed, and counted in
   * warren_ingress_conns_refused_total{why="total|per_source"}.  Peers
   * in proxy_from count only in the total (they carry many visitors).
   * 0 = derived from RLIMIT_NOFILE's soft limit L at start:
   * max_conns = L - max(L/4, 64), at least 16: a quarter of the
   * descriptors (64 at least) stays free for tunnel links, node links,
   * the admin API, gossip and logs, which do not count here;
   * max_conns_per_source = max_conns / 4, at least 8: one address can
   * take a quarter at most, so it takes four to fill the node, while a
   * NAT with a few hundred browsers (6 connections each) still fits at
   * L = 65536. */
  unsigned max_conns;
  unsigned max_conns_per_source;
  wr_metrics *metrics;           /* may be NULL; counted into until
                                    wr_ingress_stop's |done| runs, so it
                                    must outlive that */

  /*
   * Routes hooks (all optional: NULL means "this node alone decides", as
   * before).  They connect the local table to the replicated routes
   * table: src/node/mesh.c sets them.  Each is called on the loop thread
   * with |routes_ud|; none may call back into the ingress except
   * wr_ingress_evict, and not from inside the hook itself (queue it).
   *
   * |account| is who the client is: what authorize (below) said at its
   * Hello.  |session| is the client
   * process's 16 random bytes, the same on each of its links and
   * reconnects (all zero when the client sent none).  |options| are the
   * Bind options (WR_CONTROL_BIND_BALANCE = 1).
   */
  void *routes_ud;
  /* A client asks to bind |name|.  Return 0 to accept, WR_ERR_TAKEN to
   * refuse with Error NAME_TAKEN (the client prints "name taken" and
   * exits); any other error refuses with INTERNAL (the client retries).
   * Called before the name enters the local table, and only when no live
   * local link holds it (that is refused here, as before). */
  int (*bind_check)(void *ud, const char *name, const char *account,
                    const uint8_t session[16], uint32_t options);
  /* The binding is live locally (sent Bound to the client). */
  void (*bound)(void *ud, const char *name, const char *account,
                const uint8_t session[16], uint32_t options);
  /* The binding is gone: its client closed, its link dropped and the
   * grace period (gone_grace_ms) passed without a re-bind, it was
   * evicted, or the ingress stopped. */
  void (*unbound)(void *ud, const char *name, const uint8_t session[16]);
  /* A visitor asks for |name|, which no link here serves (live or in its
   * grace period).  Return 1 and write the owner's node id (NUL-ended,
   * at most |cap| bytes, cap 65) into |owner_id| when another live node
   * owns it, 0 for no route (404).  The request then makes one hop: a
   * stream on the node link to the owner (owner_addr below,
   * docs/NODELINK.md). */
  int (*lookup_remote)(void *ud, const char *name, char *owner_id,
                       size_t cap);
  /* Where node |owner_id| takes node-to-node links: its data address
   * ("IP:PORT", NUL-ended, at most |cap| bytes) from its membership
   * metadata.  Return 1 when it is a live member, else 0 (the request is
   * answered 502 "unreachable").  NULL, or no node_psk: an owner
   * elsewhere answers 502 as before forwarding existed. */
  int (*owner_addr)(void *ud, const char *owner_id, char *addr, size_t cap);
  /* Who a client is, decided at its Hello (after the --token check).
   * |token| as presented ("" for none); |identity| the account of the
   * identity key the client proved it holds ("key:<hex>", identity.h),
   * "" when it sent none.  Write its account (1-64 printable characters)
   * into |account| and return 0, or return WR_ERR_AUTH to refuse the link
   * with BAD_TOKEN.  NULL: the identity's account, else "anonymous". */
  int (*authorize)(void *ud, const char *token, const char *identity,
                   char *account, size_t cap);
} wr_ingress_config;

/* wr_ingress_evict reasons. */
enum {
  /* Another account won |name|: the client gets Error NAME_TAKEN, its
   * link is closed, and it prints "name taken" and exits. */
  WR_INGRESS_EVICT_TAKEN = 1,
  /* The same account bound |name| from a newer session elsewhere: Error
   * NAME_MOVED, link closed; the client says so and exits 1 rather than
   * reconnect (two clients of one account must not ping-pong). */
  WR_INGRESS_EVICT_MOVED = 2,
};
/*
 * Ends the local binding of |name| held by client session |session| (all
 * zero: whichever session holds it): the client is told why (|reason|),
 * its link is closed, the name leaves the local table at once (no grace
 * period: visitors are routed by the table from now on) and `unbound`
 * runs.  Returns 0, WR_ERR_NOTFOUND when no binding of |name| by that
 * session is here (live or in its grace period), or WR_ERR_INVAL for an
 * unknown reason.
 */
int wr_ingress_evict(wr_ingress *ig, const char *name,
                     const uint8_t session[16], int reason);

/* Returns 0 or an error (e.g. UV_EADDRINUSE) with nothing left open. */
int wr_ingress_start(wr_ingress **pig, uv_loop_t *loop,
                     const wr_ingress_config *cfg);
/* The port actually bound (for --listen 127.0.0.1:0). */
int wr_ingress_port(const wr_ingress *ig);
/* The public base URL for a name: "http://NAME.DOMAIN[:PORT]". */
void wr_ingress_url(const wr_ingress *ig, const char *name, char *out,
                    size_t cap);

typedef struct wr_tunnel_info {
  const char *name;
  const char *peer;      /* client address */
  int live;              /* 0 while in the gone grace period */
  uint64_t version;      /* bumps on every bind of this name */
  uint32_t streams;      /* visitor connections now */
} wr_tunnel_info;
void wr_ingress_foreach(const wr_ingress *ig,
                        void (*fn)(const wr_tunnel_info *t, void *ud),
                        void *ud);
size_t wr_ingress_tunnel_count(const wr_ingress *ig);

/* Sends GOAWAY to every tunnel (clients move away) and stops accepting. */
void wr_ingress_drain(wr_ingress *ig);
/* Closes everything; |done| runs once every handle is closed. */
void wr_ingress_stop(wr_ingress *ig, void (*done)(void *ud), void *ud);

#endif
