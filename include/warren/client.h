/*
 * The client program's logic (src/tunnel/client.c, client_origin.c,
 * client_dial.c): `warren http PORT`.
 *
 * It dials a node's public port, upgrades to `warren/1`, runs the link as
 * Noise initiator pinning the fleet key, says Hello and Bind, and then
 * serves every stream the node opens by connecting to the local server
 * and piping bytes both ways (with the mux's credit as backpressure).
 *
 * Given several nodes it holds `links` links at once, each to a distinct
 * node, all bound to the same name with the same session (so every one of
 * those nodes serves it).  A link that drops, or whose node says GOAWAY,
 * is replaced by one to another node (20-200 ms later, then each node's
 * jittered back-off: 250 ms doubling to a 30 s cap), forever, keeping the
 * name; a draining node's link serves on until its replacement is bound.
 * Node choice and back-off are the sans-IO src/tunnel/pick.c.
 */
#ifndef WARREN_CLIENT_H
#define WARREN_CLIENT_H

#include <uv.h>

typedef struct wr_client wr_client;

/*
 * A read-only view of the bytes relayed for each visitor connection (the
 * request inspector's capture).  open() runs when the node opens a stream
 * and returns the tap's handle for it (NULL: not tapped); data() sees the
 * bytes written to the local server (|to_origin| 1) and those read from it
 * (0), in order, before they go on; close() runs once, when the local
 * connection is closed.  Only visitor streams are tapped, never the
 * tunnel's own control traffic.  The callbacks must not call the client.
 */
typedef struct wr_client_tap {
  void *(*open)(void *ud);
  void (*data)(void *conn, int to_origin, const uint8_t *data, size_t len,
               void *ud);
  void (*close)(void *conn, void *ud);
  void *ud;
} wr_client_tap;

#define WR_CLIENT_LINKS_MAX 8

typedef struct wr_client_config {
  /* The nodes' public ports: |nnodes| "HOST:PORT" strings (an IP
   * address, [IPv6] or localhost; any other host is a DNS name standing
   * for every A/AAAA record it has, resolved again after a link is
   * lost).  Borrowed during wr_client_start only.  With |nnodes| 0,
   * |node| is the one node. */
  const char *const *nodes;
  size_t nnodes;
  const char *node;
  /* Links held at once, each to a distinct node (0 = 1); at most
   * WR_CLIENT_LINKS_MAX and the number of addresses given. */
  int links;
  uint8_t fleet_pub[32];   /* pinned fleet public key */
  const char *token;       /* may be NULL */
  const char *name;        /* requested name; NULL/"" = the node picks */
  const char *local_host;  /* "127.0.0.1" */
  int local_port;
  /* Bind.session: 16 bytes naming this client process, the same on every
   * link and reconnect; all zero = wr_client_start draws random ones. */
  uint8_t session[16];
  /* The client's identity key (identity.h), proven on every link; NULL
   * for none (the node then files the client under "anonymous" unless a
   * token names its account).  Copied. */
  const struct wr_identity *identity;
  /* Bind options (WR_CONTROL_BIND_*): WR_CONTROL_BIND_BALANCE shares the
   * name with the account's other balancing clients (--balance). */
  uint32_t options;
  /* Once per bind; |first| is 1 the first time. */
  void (*on_bound)(const char *name, const char *url, int first, void *ud);
  /* An error retrying cannot fix (wrong fleet key, name taken, bad token)
   * before the first bind, or the name taken from this client or moved to
   * another client of its account later (NAME_TAKEN while bound,
   * NAME_MOVED): |line| is the one line to show the user. */
  void (*on_fatal)(const char *line, void *ud);
  void *ud;
  const wr_client_tap *tap; /* may be NULL; must outlive the client */
} wr_client_config;

int wr_client_start(wr_client **pc, uv_loop_t *loop,
                    const wr_client_config *cfg);
/* Closes the link and every local connection; |done| runs when all
 * handles are closed and the client is freed. */
void wr_client_stop(wr_client *c, void (*done)(void *ud), void *ud);

#endif
