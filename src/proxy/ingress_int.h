/*
 * The ingress's internals, shared by its files (see ingress.h for the
 * API):
 *   proxy_uv.c  visitor connections: libuv events into the forwarding
 *               core (forward.c) and what it wants back out;
 *   shed.c      sharing links' windows: shedding stalled visitors;
 *   ingress.c   the ingress's life (start, drain, stop), limits, metrics.
 * A libuv adapter: not for the sans-IO cores.
 */
#ifndef WR_PROXY_INGRESS_INT_H
#define WR_PROXY_INGRESS_INT_H

#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "bindings.h"
#include "conncap.h"
#include "nodepool.h"
#include "nodeserve.h"
#include "randpool.h"
#include "up_nodelink.h"
#include "up_tunnel.h"
#include "warren/forward.h"
#include "warren/ingress.h"

#define VBUF_CAP 65536
#define HEAD_MAX 32768
/* Response bytes for one visitor are gathered over a loop turn and
 * written with one uv_write. */
#define VBATCH 64
/*
 * Responses a visitor may have owed at once on one connection before we
 * stop reading it (docs/HTTP.md, "Pipelining").  Why 32: the deepest
 * pipelining seen in practice is benchmark clients at 16 (TechEmpower's
 * plaintext test), which should never pause; browsers do not pipeline at
 * all.  The limit bounds how many requests we push at an origin that has
 * not answered yet; bytes are bounded by stream credit either way.  It
 * sits well below the parser's hard cap (WR_HTTP_MAX_PIPELINE).
 */
#define PIPELINE_MAX 32
/*
 * Lingering close (docs/HTTP.md, "Lingering close").  When the node ends a
 * visitor connection that may still be sending (after its own error page,
 * or in the middle of a request body), it sends its FIN (uv_shutdown) and
 * reads and drops what still comes, until the visitor closes too, or it
 * has been quiet for LINGER_QUIET_MS, or LINGER_MS have passed; then it
 * closes.  Closing at once makes the kernel answer the visitor's next
 * bytes with a RST, which a client still writing its request sees as a
 * failed send and never reads the answer (and a RST also destroys our
 * unsent page).  nginx lingers up to 30 s with 5 s quiet, Apache 30 s
 * with 2 s; 5 s in all lets a send-then-read client on a 500 ms RTT link
 * get through several round trips and push a few MB more, while a flood
 * of error-provoking connections holds each socket at most 5 s, not 30.
 * The quiet limit is Apache's 2 s: a client that has read the page closes
 * at once (and its EOF ends the wait), one that stopped sending has no
 * bytes in flight to be reset.  Memory: the dropped bytes go to one
 * buffer shared by all visitors (discard), the read buffer is freed.
 */
#define LINGER_MS 5000
#define LINGER_QUIET_MS 2000
/*
 * Sharing a link's window (docs/HTTP.md, "Send stalls").  Response bytes
 * owed to a visitor hold its link's credit until its socket takes them.
 * Twice a second the ingress adds up what each link, and each name on
 * it, holds this way; where a name holds more than NAME_SHARE of a link
 * (half the smaller of its window and a tunnel's), or all names together
 * more than three quarters of the link's window, the visitors that hold
 * it and whose sockets have taken nothing for SHED_AFTER_MS are shed
 * (closed, stream reset: the credit returns), the longest stalled first,
 * until the group is back under half its share (hot() below).  So a name's
 * stuck visitors leave half of its tunnel to its other visitors, and on a node
 * link one tenant's leave room for the others, within a second or so; a visitor
 * whose socket keeps taking bytes, however slowly, is never shed, and
 * one that holds nothing (an idle WebSocket) is never even counted.
 * Why 1 s: a reader that is merely slow still empties some of its socket
 * buffer every few hundred ms (the kernel takes bytes as soon as there is
 * room), while a visitor that stopped reading is stalled for good; the
 * sweep runs every 500 ms, so a stuck visitor holds surplus credit for
 * 1-1.5 s.  Why three quarters: the last quarter (4 MiB of a tunnel) is
 * what new streams start from while the sweep catches up.
 */
#define SWEEP_MS 500
#define SHED_AFTER_MS 1000
#define SHED_GROUPS 128 /* (link, name) pairs tracked per sweep */
#define SHED_MAX_PER_SWEEP 256
#define SEND_STALL_MS 30000

typedef struct vconn vconn;

struct vconn {
  wr_ingress *ig;
  uv_tcp_t *tcp;
  uv_timer_t timer;
  wr_fwd *f;      /* the connection's logic, allocated
                     with the vconn (VCONN_FWD_OFF) */
  up_tunnel ut;   /* its upstream when that is a tunnel */
  up_nodelink un; /* ... or a stream to the owner node */
  char peer[64];
  int reading, closing, handed_off, shut_sent, write_failed;
  uv_shutdown_t shut;
  int writes;             /* uv_writes in flight */
  uv_buf_t obufs[VBATCH]; /* bytes gathered this loop turn */
  unsigned nobufs;
  size_t olen, ocredit;
  size_t done_len, done_credit; /* written at once, not yet reported */
  vconn *dprev, *dnext;         /* in ig->dirty while nobufs > 0 */
  int dirty;
  vconn *aprev, *anext; /* in ig->all */
  uint8_t src[16];      /* source address, counted in ig->src */
  int src_counted;
  /* Send progress short of a whole write (forward.h,
   * wr_fwd_send_progress): bytes that went into libuv's write queue, and
   * how many of them had left it at the last look. */
  uint64_t wq_in, wq_out;
};

/* The core lives right after the vconn, in the same allocation. */
#define VCONN_FWD_OFF                                                          \
  ((sizeof(vconn) + _Alignof(max_align_t) - 1) & ~(_Alignof(max_align_t) - 1))

typedef struct vwrite {
  uv_write_t req;
  vconn *v;
  size_t len, credit; /* reported to the core when written */
  unsigned nbufs;
  uv_buf_t bufs[]; /* each .base from wr_link_buf_new, freed when done */
} vwrite;

struct wr_ingress {
  uv_loop_t *loop;
  uv_tcp_t server;
  int port;
  char domain[256], node_id[128];
  bindings *bindings;
  void *routes_ud;
  int (*lookup_remote)(void *ud, const char *name, char *owner_id, size_t cap);
  int (*owner_addr)(void *ud, const char *owner_id, char *addr, size_t cap);
  nodepool *pool; /* NULL: node links are off */
  nodesrv *nodesrv;
  int pool_done, nodesrv_done;
  uint64_t *m_hop_retries, *m_hops, *m_dial_failed;
  int64_t *g_links_out, *g_links_in, *g_relays;
  wr_randpool ids; /* request ids (randpool.c) */
  uint64_t upstream_timeout, idle_timeout, head_timeout;
  uint64_t body_min_rate;
  uv_timer_t sweep; /* shares of link windows (SWEEP_MS) */
  int sweep_closed;
  uint32_t tunnel_window, node_window; /* links' receive windows */
  wr_fwd_config fcfg;                  /* shared by every visitor's core */
  wr_fwd_metrics fm;
  char proxy_from[16][48]; /* peers whose connections start with a
                              PROXY protocol header */
  int nproxy_from;
  vconn *all;
  vconn *dirty; /* visitors with gathered bytes */
  uv_prepare_t prep;
  int prep_closed;
  int stopping, server_closed, bindings_done;
  int draining;   /* wr_ingress_drain was called */
  int paused;     /* config.paused until wr_ingress_accept */
  int unlistened; /* wr_ingress_stop_accepting */
  void (*done)(void *);
  void *done_ud;
  uint64_t *m_tunnel_bad, *m_auth_fail;
  uint64_t *m_held_resumed, *m_held_failed, *m_released_early;
  /* Where lingering visitors' bytes go: libuv calls alloc_cb and read_cb
   * back to back on this one thread, so one buffer serves them all. */
  uint8_t discard[16384];
  int64_t *g_tunnels, *g_visitors;
  /* Connection caps (ingress.h, max_conns) */
  unsigned max_conns, max_per_source, nconns;
  conncap src; /* open connections per source */
  uint64_t *m_refused_total, *m_refused_source;
};

/* proxy_uv.c: visitor connections. */
extern const wr_fwd_callbacks ingress_fwd_cb;
void ingress_on_connection(uv_stream_t *server, int status);
void ingress_on_prepare(uv_prepare_t *p); /* writes what was gathered */
void vconn_sync(vconn *v);                /* applies what the core wants */
void vconn_close(vconn *v);               /* frees in its close callback */
void vconn_sample_progress(vconn *v, uint64_t now);

/* shed.c: the sweep, every SWEEP_MS. */
void ingress_on_sweep(uv_timer_t *t);

/* ingress.c: frees the ingress once everything it owns has closed. */
void ingress_maybe_done(wr_ingress *ig);

#endif
