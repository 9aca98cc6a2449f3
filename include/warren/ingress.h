/*
 * The node's public side (src/proxy/): one TCP listener that serves
 * visitors (HTTP/1.1, routed by Host) and accepts tunnel clients (a GET
 * /_warren/tunnel with Upgrade: warren/1 becomes a wr_link).
 *
 *   proxy_uv.c  the listener and the libuv adapter of each visitor
 *               connection, whose logic is the sans-IO forwarding core
 *               (forward.h, src/proxy/forward.c)
 *   ingress.c   the ingress's life, limits and metrics; shed.c sharing
 *               links' windows; conncap.c and randpool.c (sans-IO) the
 *               connection caps' counts and the request-id pool
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
  /* A listening TCP socket handed over by whoever started us (systemd
   * socket activation, or the previous process during an in-place
   * upgrade: LISTEN_FDS, docs/DEPLOY.md): used instead of binding
   * |listen|, and owned by the ingress from then on. */
  int have_listen_fd, listen_fd;
  /* 1: accept nothing until wr_ingress_accept (connections wait in the
   * kernel's backlog meanwhile, none refused): a node that inherited its
   * socket first joins the mesh and learns the routes. */
  int paused;
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
  uint64_t send_stall_ms;        /* a visitor whose socket takes none of
                                    the response bytes owed to it for this
                                    long is closed and its stream reset
                                    (docs/HTTP.md "Send stalls"); 0 = 30 s */
  uint32_t node_link_window;     /* receive window of each node link this
                                    node dials, bytes; 0 = 256 MiB
                                    (nodepool.c) */
  uint64_t node_link_idle_ms;    /* a dialed node link without streams
                                    this long closes; 0 = 120 s */
  uint32_t node_link_rotate_at;  /* streams after which a node link is
                                    drained (GOAWAY) and replaced; 0 =
                                    2^30 (tests set it low) */
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
   * grace period (gone_grace_ms) passed without a re-bind, its link
   * dropped while another node serves the name (lookup_remote: no grace
   * then), it was evicted, or the ingress stopped. */
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

/*
 * The routes table changed for |name|.  wr_ingress_gone says whether a
 * binding of |name| here is in its grace period (its link dropped): a
 * table read, callable from anywhere, so a routes callback can filter
 * the names worth a recheck.  wr_ingress_recheck (not from inside a
 * hook: it calls lookup_remote) forgets such a binding when another node
 * serves the name now (its client bound there: the grace would only
 * delay visitors), running `unbound`; returns 1 when it did.
 */
int wr_ingress_gone(wr_ingress *ig, const char *name);
int wr_ingress_recheck(wr_ingress *ig, const char *name);

/* Returns 0 or an error (e.g. UV_EADDRINUSE) with nothing left open. */
int wr_ingress_start(wr_ingress **pig, uv_loop_t *loop,
                     const wr_ingress_config *cfg);
/*
 * Limits a running ingress can take anew (SIGHUP, docs/DEPLOY.md): the
 * timeouts and rate of wr_ingress_config (0 = its default, as at start)
 * and the connection caps (0 = derived from RLIMIT_NOFILE, as at start).
 * Visitor connections accepted from now on get the new timeouts; those
 * open keep theirs until they close (a timer is not moved under a
 * request in flight).  The caps apply to the next accept at once; nobody
 * already connected is closed.  Tunnels and node links are untouched.
 */
typedef struct wr_ingress_limits {
  uint64_t upstream_timeout_ms, idle_timeout_ms, head_timeout_ms;
  uint64_t body_min_rate;
  unsigned max_conns, max_conns_per_source;
} wr_ingress_limits;
void wr_ingress_set_limits(wr_ingress *ig, const wr_ingress_limits *l);
/* What is in force now (caps as derived). */
void wr_ingress_get_limits(const wr_ingress *ig, wr_ingress_limits *out);

/* Starts accepting (after config.paused); 0 or a libuv error. */
int wr_ingress_accept(wr_ingress *ig);
/* Stops accepting and closes this process's listening socket (a socket
 * shared with another process, as in an upgrade, stays open there);
 * connections accepted already go on.  Idempotent. */
void wr_ingress_stop_accepting(wr_ingress *ig);

/* The port actually bound (for --listen 127.0.0.1:0). */
int wr_ingress_port(const wr_ingress *ig);
/* The listening socket's descriptor, -1 once it stopped accepting (for
 * the node's in-place upgrade, which keeps a duplicate across the drain). */
int wr_ingress_listen_fd(const wr_ingress *ig);
/* Membership declared node |node_id| dead: the node links to it close, so
 * requests forwarded there end now with a clean 502 (or a closed
 * connection mid-response) instead of waiting for the upstream timeout
 * when its host went silent.  Not from inside an ingress hook.  Returns
 * the number of links closed. */
size_t wr_ingress_peer_dead(wr_ingress *ig, const char *node_id);
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
/* Node links this ingress dialed: open now (dialing or up) and in all
 * since it started.  Both 0 when node links are off. */
void wr_ingress_node_links(const wr_ingress *ig, size_t *open,
                           uint64_t *dialed);

/*
 * Starts draining (docs/DEPLOY.md): every tunnel client gets GOAWAY (it
 * moves to another node) as soon as its link carries no stream, and new
 * Binds are refused; node links into
 * this node get GOAWAY (their next streams open a new link); every
 * visitor connection, open or still to come, gets "Connection: close" on
 * its next response; a name whose client also holds a link elsewhere is
 * forwarded there; a tunnel link that closes releases its names at once
 * (no "reconnecting" grace).  Requests in flight finish.  The listener
 * stays open (load balancers need a moment to notice), so the caller
 * decides when to stop: wr_ingress_load says what is still in flight.
 * Idempotent.
 */
void wr_ingress_drain(wr_ingress *ig);

typedef struct wr_ingress_load_info {
  size_t visitors;     /* visitor connections open */
  size_t busy;         /* ... of which have a request or response in
                          flight (wr_fwd_busy) */
  size_t tunnel_links; /* tunnel client links open */
  size_t tunnels;      /* names bound here (live or in their grace) */
  size_t unmoved;      /* bound tunnel links not yet told to move, still
                          carrying streams, or told less than 2 s ago
                          (WR_INGRESS_MOVE_GRACE_MS): the clients a drain
                          waits for */
  size_t relays;       /* streams other nodes forward through us now */
} wr_ingress_load_info;
/* How long a drain waits for a tunnel client told to move (GOAWAY) to
 * close its link: a client given several nodes binds elsewhere and closes
 * it within a few hundred ms (make before break); one with nowhere else
 * to go closes it at once when idle (docs/CLIENT.md); an older client
 * keeps it, and this bounds the wait. */
#define WR_INGRESS_MOVE_GRACE_MS 2000
void wr_ingress_load(const wr_ingress *ig, wr_ingress_load_info *out);
/* Draining: a tunnel link still carrying streams takes no new ones from
 * now on, so it empties and its client is told to move (wr_ingress_drain
 * waits for an idle moment first, which a busy single-link name may never
 * have). */
void wr_ingress_drain_hard(wr_ingress *ig);
/* Closes the visitor connections that have nothing in flight (keep-alive
 * between requests); returns how many. */
size_t wr_ingress_close_idle(wr_ingress *ig);
/* Closes everything; |done| runs once every handle is closed. */
void wr_ingress_stop(wr_ingress *ig, void (*done)(void *ud), void *ud);

#endif
