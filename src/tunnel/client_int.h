/*
 * The tunnel client's internals, shared by its files (see client.h for
 * the API):
 *   client.c         the slots: link life, control messages (Hello,
 *                    Bind), GOAWAY and reconnecting; start and stop;
 *   client_origin.c  visitor streams piped to the local origin;
 *   client_dial.c    reaching a node: DNS, TCP connect, the Upgrade.
 * A libuv adapter: not for the sans-IO cores.
 */
#ifndef WR_TUNNEL_CLIENT_INT_H
#define WR_TUNNEL_CLIENT_INT_H

#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "warren/client.h"
#include "warren/control.h"
#include "warren/identity.h"
#include "warren/link.h"
#include "warren/pick.h"

#define UPGRADE_HEAD_MAX 4096
/* Below this much credit, wait for more rather than read in dribbles. */
#define MIN_READ 4096
/*
 * A lost link's slot dials again after QUICK_MIN_MS plus up to
 * QUICK_JITTER_MS (then the chosen node's own back-off applies, pick.c):
 * quick, since the issue asks for a new owner within 2 s, yet spread, so
 * the clients of a dead node do not all land on the survivors in the
 * same millisecond.
 */
#define QUICK_MIN_MS 20
#define QUICK_JITTER_MS 180
/* Every node held by another slot (more links than nodes answered the
 * DNS name): look again this often. */
#define NO_NODE_RETRY_MS 1000
/* Node names are resolved again on a loss, at most this often. */
#define RESOLVE_MIN_GAP_MS 500
/* A draining link outlives its replacement's bind by at most this much,
 * for the visitor streams it still carries. */
#define OLD_LINGER_MS 5000
#define NAMES_MAX 16 /* node names to resolve (the rest are addresses) */

enum slot_state {
  SL_IDLE,
  SL_RESOLVING,
  SL_CONNECTING,
  SL_UPGRADING,
  SL_LINKED,
  SL_BOUND,
};

typedef struct slot slot;

typedef struct origin origin;
typedef struct pend {
  struct pend *next;
  uint8_t *buf;
  size_t len;
} pend;

struct origin {
  wr_client *c;
  wr_link *link;
  uint32_t sid;
  uv_tcp_t tcp;
  uv_connect_t creq;
  uv_shutdown_t sreq;
  int connected, stream_gone, closing, fin_pending;
  int tried_v6;     /* "localhost" may be ::1 only (e.g. Node.js) */
  pend *ph, *pt;    /* node -> origin bytes waiting for the connect */
  int reading;      /* origin reads started */
  int write_failed; /* the origin stopped taking the request */
  int read_eof;     /* the origin finished its side */
  uint8_t *rbuf;    /* lent to libuv between alloc and read callback */
  void *tap;        /* cfg.tap's handle for this connection */
  origin *prev, *next;
};

typedef struct owrite {
  uv_write_t req;
  origin *o;
  uint8_t *buf;
  size_t len;
} owrite;

struct slot {
  wr_client *c;
  int id;
  enum slot_state state;
  int started;                 /* has run once (slots wait for the name) */
  char addr[WR_PICK_ADDR_MAX]; /* the node this slot holds ("" none) */
  uv_timer_t timer;
  int timer_closed;
  uv_tcp_t *tcp; /* while CONNECTING / UPGRADING */
  uv_connect_t creq;
  uint8_t head[UPGRADE_HEAD_MAX];
  size_t headlen;
  /* Our Upgrade request: uv_write needs it until up_written, so each
   * link attempt has its own (a static one was shared by every client in
   * the process, and a second link's request would overwrite the first's
   * while the kernel had not taken it yet). */
  char upreq[512];
  wr_link *link;
  int ctl_error; /* the link closes because of the node's Error */
  int drained;   /* ... and that Error said NODE_DRAINING */
  /* The link to a node that said GOAWAY, until the new one is bound and
   * it has carried its last visitor (or OLD_LINGER_MS). */
  wr_link *old;
  char old_addr[WR_PICK_ADDR_MAX];
  /* ... and no other node could take this slot when it drained (the
   * client's only node, or every other one held by another slot): the
   * draining link then ends as soon as it carries no visitor, without
   * waiting for a replacement that cannot come before the node is gone. */
  int old_alone;
};

struct wr_client {
  uv_loop_t *loop;
  wr_client_config cfg;
  char token[WR_CONTROL_TOKEN_MAX + 1];
  char name[WR_CONTROL_NAME_MAX + 1], local_host[64];
  /* Nodes: the addresses given, and the names to resolve (each stands
   * for every address it resolves to). */
  wr_pick pick;
  char lit[WR_PICK_MAX][WR_PICK_ADDR_MAX];
  size_t nlit;
  char names[NAMES_MAX][WR_PICK_ADDR_MAX + 200]; /* "NAME:PORT" */
  size_t nnames;
  /* The resolver: one name at a time into found[]. */
  uv_getaddrinfo_t gai;
  int resolving, resolve_stale;
  size_t resolve_idx;
  uint32_t resolve_failing; /* bit i: names[i] failed last time */
  char found[WR_PICK_MAX][WR_PICK_ADDR_MAX];
  size_t nfound;
  uint64_t resolved_at;
  slot *slots;
  int nslots;
  int ever_bound, stopping, fatal;
  int ntcp_closing; /* slot sockets closing (tcp_closed_free) */
  uint8_t session[WR_CONTROL_SESSION_LEN]; /* Bind.session, see start */
  int has_identity;
  wr_identity identity;
  origin *origins;
  void (*done)(void *);
  void *done_ud;
};

/* client.c */
void slot_next(slot *s, int quick);
void maybe_finish_stop(wr_client *c);
void old_maybe_end(wr_client *c, wr_link *l);
void on_slot_timer(uv_timer_t *t);
void fatal(wr_client *c, const char *line);
extern const wr_link_callbacks client_link_cb;

/* client_origin.c: the link's stream callbacks, and closing an origin
 * connection (its stream is gone or the link closed). */
int on_stream_open(wr_link *l, uint32_t sid, const uint8_t *meta, size_t len,
                   void *ud);
int on_stream_data(wr_link *l, uint32_t sid, void *sud, uint8_t *buf,
                   size_t len, void *ud);
int on_stream_fin(wr_link *l, uint32_t sid, void *sud, void *ud);
int on_stream_close(wr_link *l, uint32_t sid, void *sud, int64_t code,
                    int by_peer, void *ud);
int on_stream_writable(wr_link *l, uint32_t sid, void *sud, void *ud);
void origin_close(origin *o);

/* client_dial.c */
void try_connect(slot *s);
void abort_attempt(slot *s, const char *why);
void tcp_closed_free(uv_handle_t *h);
void resolve_start(wr_client *c);
void pick_refresh(wr_client *c);

#endif
