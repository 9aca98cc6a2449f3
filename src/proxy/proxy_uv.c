/*
 * The node's public listener: visitors and tunnel clients on one port
 * (see ingress.h).  A thin libuv adapter: each visitor connection (vconn)
 * is a forwarding core (forward.c, sans-IO: every protocol decision,
 * the connection's states and timers) plus what only libuv can do here:
 *
 *   - the socket: reads into the buffer the core lends
 *     (wr_fwd_read_buf), reads on and off as it says, FIN and close;
 *   - write batching: what the core sends over a loop turn goes out with
 *     one uv_write from a uv_prepare handle (strace showed one write()
 *     per 16 KiB frame before: 73 syscalls per MiB), and completions are
 *     reported back (wr_fwd_written), which returns the upstream's credit;
 *   - one uv_timer_t, armed at wr_fwd_deadline;
 *   - routing (the core's `open`): bindings.c's table (bound here: a
 *     stream on the client's tunnel, up_tunnel.c), the routes hook
 *     lookup_remote (owned by another live node: a stream on the pooled
 *     node link to it, up_nodelink.c and nodepool.c), else 404;
 *   - the hand-off of a tunnel client's socket to bindings.c, and of
 *     another node's link to nodeserve.c;
 *   - the ingress's life and metrics.
 *
 * After every call into the core, sync_conn() applies what it wants.
 */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sys/resource.h>

#include <sodium.h>

#include "bindings.h"
#include "conncap.h"
#include "nodepool.h"
#include "nodeserve.h"
#include "randpool.h"
#include "up_nodelink.h"
#include "up_tunnel.h"
#include "warren/err.h"
#include "warren/forward.h"
#include "warren/ingress.h"
#include "warren/link.h"

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
 * until the group is back under half its share (hot() below).  So a name's stuck visitors
 * leave half of its tunnel to its other visitors, and on a node link one
 * tenant's leave room for the others, within a second or so; a visitor
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
#define SHED_GROUPS 128     /* (link, name) pairs tracked per sweep */
#define SHED_MAX_PER_SWEEP 256
#define SEND_STALL_MS 30000

typedef struct vconn vconn;

struct vconn {
  wr_ingress *ig;
  uv_tcp_t *tcp;
  uv_timer_t timer;
  wr_fwd *f;                   /* the connection's logic, allocated
                                  with the vconn (VCONN_FWD_OFF) */
  up_tunnel ut;             /* its upstream when that is a tunnel */
  up_nodelink un;              /* ... or a stream to the owner node */
  char peer[64];
  int reading, closing, handed_off, shut_sent, write_failed;
  uv_shutdown_t shut;
  int writes;                  /* uv_writes in flight */
  uv_buf_t obufs[VBATCH];      /* bytes gathered this loop turn */
  unsigned nobufs;
  size_t olen, ocredit;
  size_t done_len, done_credit; /* written at once, not yet reported */
  vconn *dprev, *dnext;        /* in ig->dirty while nobufs > 0 */
  int dirty;
  vconn *aprev, *anext;        /* in ig->all */
  uint8_t src[16];             /* source address, counted in ig->src */
  int src_counted;
  /* Send progress short of a whole write (forward.h,
   * wr_fwd_send_progress): bytes that went into libuv's write queue, and
   * how many of them had left it at the last look. */
  uint64_t wq_in, wq_out;
};

/* The core lives right after the vconn, in the same allocation. */
#define VCONN_FWD_OFF                                                        \
  ((sizeof(vconn) + _Alignof(max_align_t) - 1) &                             \
   ~(_Alignof(max_align_t) - 1))

typedef struct vwrite {
  uv_write_t req;
  vconn *v;
  size_t len, credit;          /* reported to the core when written */
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
  int (*lookup_remote)(void *ud, const char *name, char *owner_id,
                       size_t cap);
  int (*owner_addr)(void *ud, const char *owner_id, char *addr, size_t cap);
  nodepool *pool;           /* NULL: node links are off */
  nodesrv *nodesrv;
  int pool_done, nodesrv_done;
  uint64_t *m_hop_retries, *m_hops, *m_dial_failed;
  int64_t *g_links_out, *g_links_in, *g_relays;
  wr_randpool ids;             /* request ids (randpool.c) */
  uint64_t upstream_timeout, idle_timeout, head_timeout;
  uint64_t body_min_rate;
  uv_timer_t sweep;            /* shares of link windows (SWEEP_MS) */
  int sweep_closed;
  uint32_t tunnel_window, node_window; /* links' receive windows */
  wr_fwd_config fcfg;          /* shared by every visitor's core */
  wr_fwd_metrics fm;
  char proxy_from[16][48];     /* peers whose connections start with a
                                  PROXY protocol header */
  int nproxy_from;
  vconn *all;
  vconn *dirty;                /* visitors with gathered bytes */
  uv_prepare_t prep;
  int prep_closed;
  int stopping, server_closed, bindings_done;
  int draining;                /* wr_ingress_drain was called */
  int paused;                  /* config.paused until wr_ingress_accept */
  int unlistened;              /* wr_ingress_stop_accepting */
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
  conncap src;                 /* open connections per source */
  uint64_t *m_refused_total, *m_refused_source;
};

static void vconn_close(vconn *v);
static void maybe_done(wr_ingress *ig);

/* ---- connection caps ---- */

/* The caps left 0 derive from the soft descriptor limit (conncap.h). */
static void default_caps(unsigned *total, unsigned *per_source) {
  struct rlimit rl;
  uint64_t l = 1024;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0)
    l = rl.rlim_cur == RLIM_INFINITY ? 1u << 20 : rl.rlim_cur;
  conncap_defaults(l, total, per_source);
}

static void count_refused(uint64_t *c) {
  if (c) (*c)++;
}

static void refused_closed(uv_handle_t *h) { free(h); }

/* Over a cap: the visitor learns why if its socket takes the 90-byte
 * page at once (a new socket's send buffer is empty, so it does), then
 * the socket closes.  A visitor that has not written yet sees the page
 * and a FIN; one whose request already arrived may see a reset instead
 * (unread input), which is as good a refusal. */
static void refuse(uv_tcp_t *tcp) {
  static const char page[] = "HTTP/1.1 503 Service Unavailable\r\n"
                             "Connection: close\r\nContent-Length: 0\r\n"
                             "Retry-After: 5\r\n\r\n";
  uv_buf_t b = uv_buf_init((char *)page, sizeof page - 1);
  (void)uv_try_write((uv_stream_t *)tcp, &b, 1);
  uv_close((uv_handle_t *)tcp, refused_closed);
}

void wr_ingress_url(const wr_ingress *ig, const char *name, char *out,
                    size_t cap) {
  if (ig->port == 80)
    snprintf(out, cap, "http://%s.%s", name, ig->domain);
  else snprintf(out, cap, "http://%s.%s:%d", name, ig->domain, ig->port);
}

/* ---- writing to visitors ---- */

static void undirty(vconn *v) {
  if (!v->dirty) return;
  if (v->dprev) v->dprev->dnext = v->dnext;
  else v->ig->dirty = v->dnext;
  if (v->dnext) v->dnext->dprev = v->dprev;
  v->dprev = v->dnext = NULL;
  v->dirty = 0;
}

static void drop_gathered(vconn *v) {
  for (unsigned i = 0; i < v->nobufs; i++)
    wr_link_buf_free((uint8_t *)v->obufs[i].base);
  v->nobufs = 0;
  v->olen = v->ocredit = 0;
  undirty(v);
}

static void sync_conn(vconn *v);

static void vconn_on_write(uv_write_t *req, int status) {
  vwrite *w = (vwrite *)req;
  vconn *v = w->v;
  for (unsigned i = 0; i < w->nbufs; i++)
    wr_link_buf_free((uint8_t *)w->bufs[i].base);
  v->writes--;
  if (!v->closing) {
    wr_fwd_written(v->f, w->len, w->credit, status,
                   uv_now(v->ig->loop));
    sync_conn(v);
  }
  free(w);
}

/* Writes everything gathered for |v| with one uv_write.  The visitor's
 * socket usually takes a small response at once: then there is no write
 * callback to wait for (wr_uv_try_write_all) and no write request to
 * allocate, and the completion is reported at the next sync.  Returns 0
 * or an error (then the connection cannot be written any more). */
static int vconn_flush(vconn *v) {
  if (v->nobufs == 0) return 0;
  unsigned n = v->nobufs, ln = n;
  uv_buf_t left[VBATCH], *lp = left;
  memcpy(left, v->obufs, n * sizeof(uv_buf_t));
  if (wr_uv_try_write_all((uv_stream_t *)v->tcp, &lp, &ln)) {
    v->done_len += v->olen;
    v->done_credit += v->ocredit;
    drop_gathered(v); /* written: the buffers are free again */
    return 0;
  }
  vwrite *w = malloc(sizeof *w + n * sizeof(uv_buf_t));
  if (!w) {
    drop_gathered(v);
    return WR_ERR_NOMEM;
  }
  w->v = v;
  w->len = v->olen;
  w->credit = v->ocredit;
  w->nbufs = n;
  memcpy(w->bufs, v->obufs, n * sizeof(uv_buf_t));
  v->nobufs = 0;
  v->olen = v->ocredit = 0;
  undirty(v);
  size_t q0 = uv_stream_get_write_queue_size((uv_stream_t *)v->tcp);
  int rv = uv_write(&w->req, (uv_stream_t *)v->tcp, lp, ln, vconn_on_write);
  if (rv == 0) {
    size_t q1 = uv_stream_get_write_queue_size((uv_stream_t *)v->tcp);
    if (q1 > q0) v->wq_in += q1 - q0;
  }
  if (rv < 0) {
    for (unsigned i = 0; i < n; i++)
      wr_link_buf_free((uint8_t *)w->bufs[i].base);
    free(w);
    return rv;
  }
  v->writes++;
  return 0;
}

static void on_ingress_prepare(uv_prepare_t *p) {
  wr_ingress *ig = p->data;
  while (ig->dirty) {
    vconn *v = ig->dirty;
    if (vconn_flush(v) != 0) v->write_failed = 1;
    sync_conn(v);
  }
  uv_prepare_stop(p);
}

/* The core's `send`: gathers |buf| (ownership taken) for this loop
 * turn's write.  Never calls back into the core. */
static void fwd_send(void *ud, uint8_t *buf, size_t len, size_t credit) {
  vconn *v = ud;
  if (v->closing) {
    wr_link_buf_free(buf);
    return;
  }
  if (v->nobufs == VBATCH && vconn_flush(v) != 0) v->write_failed = 1;
  v->obufs[v->nobufs++] = uv_buf_init((char *)buf, (unsigned)len);
  v->olen += len;
  v->ocredit += credit;
  if (!v->dirty) {
    v->dirty = 1;
    v->dprev = NULL;
    v->dnext = v->ig->dirty;
    if (v->ig->dirty) v->ig->dirty->dprev = v;
    v->ig->dirty = v;
    uv_prepare_start(&v->ig->prep, on_ingress_prepare);
  }
}

/* ---- applying what the core wants ---- */

static void vconn_on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf);
static void vconn_on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf);
static void vconn_on_timer(uv_timer_t *t);

static void on_linger_shutdown(uv_shutdown_t *req, int status) {
  /* UV_ECANCELED: the connection closed meanwhile (vconn_close); the
   * handle's data is still valid, as the close callback comes after. */
  vconn *v = req->handle->data;
  if (status < 0 && status != UV_ECANCELED && !v->closing) {
    wr_fwd_close(v->f);
    vconn_close(v);
  }
}

/* Arms the timer at the core's deadline.  A timer already armed at or
 * before it is left alone: it fires early, the core finds nothing
 * expired, and it is re-armed here.  A keep-alive request moves the
 * deadline later two or three times (idle, origin, idle); re-arming each
 * time was a timer-heap removal and insertion per move (uv_timer_stop
 * 1.7 % of the node's samples at 1 KiB). */
static void arm_timer(vconn *v) {
  wr_tstamp dl = wr_fwd_deadline(v->f);
  if (dl == WR_TSTAMP_NONE) {
    uv_timer_stop(&v->timer);
    return;
  }
  uint64_t now = uv_now(v->ig->loop);
  if (uv_is_active((uv_handle_t *)&v->timer) &&
      now + uv_timer_get_due_in(&v->timer) <= dl)
    return;
  uv_timer_start(&v->timer, vconn_on_timer, dl > now ? dl - now : 0, 0);
}

/* After every call into the core: report writes done meanwhile, then
 * apply its wishes (end, reads, FIN, timer). */
static void sync_conn(vconn *v) {
  if (v->closing) return;
  wr_fwd *f = v->f;
  if (v->write_failed) wr_fwd_close(f);
  if (v->done_len || v->done_credit) {
    size_t len = v->done_len, credit = v->done_credit;
    v->done_len = v->done_credit = 0;
    wr_fwd_written(f, len, credit, 0, uv_now(v->ig->loop));
  }
  switch (wr_fwd_get_state(f)) {
  case WR_FWD_HANDED_OFF:
    v->handed_off = 1; /* the socket belongs to a tunnel link now */
    vconn_close(v);
    return;
  case WR_FWD_CLOSED:
    vconn_close(v);
    return;
  default:
    break;
  }
  int want = wr_fwd_want_read(f);
  if (want && !v->reading) {
    if (uv_read_start((uv_stream_t *)v->tcp, vconn_on_alloc,
                      vconn_on_read) != 0) {
      wr_fwd_close(f);
      vconn_close(v);
      return;
    }
    v->reading = 1;
  } else if (!want && v->reading) {
    uv_read_stop((uv_stream_t *)v->tcp);
    v->reading = 0;
  }
  if (wr_fwd_want_shutdown(f) && !v->shut_sent) {
    v->shut_sent = 1;
    if (uv_shutdown(&v->shut, (uv_stream_t *)v->tcp, on_linger_shutdown) !=
        0) {
      wr_fwd_close(f);
      vconn_close(v);
      return;
    }
  }
  arm_timer(v);
}

/* Did the visitor's socket take queued bytes since the last look?  A
 * uv_write completes only when all of it is written, which for a slow
 * reader may take minutes of steady progress; the shrinking write queue
 * is what shows it. */
static void sample_progress(vconn *v, uint64_t now) {
  size_t q = uv_stream_get_write_queue_size((uv_stream_t *)v->tcp);
  uint64_t out = v->wq_in > q ? v->wq_in - q : 0;
  if (out > v->wq_out) {
    v->wq_out = out;
    wr_fwd_send_progress(v->f, now);
  }
}

static void vconn_on_timer(uv_timer_t *t) {
  vconn *v = t->data;
  if (v->closing) return;
  sample_progress(v, uv_now(v->ig->loop));
  wr_fwd_tick(v->f, uv_now(v->ig->loop));
  sync_conn(v);
}

/* ---- the upstream's events (forward.h's wr_fwd_sink) ---- */

static void up_on_data(void *owner, uint8_t *buf, size_t len) {
  vconn *v = owner;
  if (v->closing) { /* not reached: a closing vconn has detached */
    wr_link_buf_free(buf);
    return;
  }
  wr_fwd_up_data(v->f, buf, len, uv_now(v->ig->loop));
  sync_conn(v);
}

static void up_on_fin(void *owner) {
  vconn *v = owner;
  if (v->closing) return;
  wr_fwd_up_fin(v->f, uv_now(v->ig->loop));
  sync_conn(v);
}

static void up_on_ended(void *owner, wr_fwd_end end) {
  vconn *v = owner;
  wr_fwd_up_ended(v->f, end, uv_now(v->ig->loop));
  sync_conn(v);
}

static void up_on_writable(void *owner) {
  vconn *v = owner;
  if (v->closing) return;
  wr_fwd_up_writable(v->f, uv_now(v->ig->loop));
  sync_conn(v);
}

static const wr_fwd_sink up_sink = {
    .data = up_on_data,
    .fin = up_on_fin,
    .ended = up_on_ended,
    .writable = up_on_writable,
};

/* ---- the core's callbacks ---- */

/*
 * A remote owner of |name| other than |avoid| (NULL: any), and not one
 * whose last dial failed moments ago (nodepool_failed_recently), when
 * there is one: 1 with its id in |owner|, else 0.  The routes hook hands
 * a name's several owners out in turn (mesh.c), so asking again skips
 * the ones to avoid; asking at most OWNER_TRIES times bounds the work
 * when only those are left (then the first answer is returned: the
 * caller decides).
 */
#define OWNER_TRIES 4
static int remote_owner(wr_ingress *ig, const char *name, const char *avoid,
                        char *owner, size_t cap) {
  char first[65] = "";
  if (!ig->lookup_remote) return 0;
  for (int i = 0; i < OWNER_TRIES; i++) {
    if (ig->lookup_remote(ig->routes_ud, name, owner, cap) != 1) return 0;
    owner[cap - 1] = 0;
    if (!first[0]) snprintf(first, sizeof first, "%s", owner);
    if (avoid && strcmp(owner, avoid) == 0) continue;
    if (ig->pool && nodepool_failed_recently(ig->pool, owner)) continue;
    return 1;
  }
  snprintf(owner, cap, "%s", first);
  return 1;
}

/* A stale route's retry (up_nodelink.h): where the name goes now, not
 * to the owner that just failed if it has another.  A name bound on this
 * node meanwhile is not taken over mid-connection (the upstream cannot
 * change kind); when another node still serves it (one client's links
 * at several nodes) the retry goes there, and when none does (the name
 * moved here) the visitor gets the 502 and its next connection the
 * tunnel.  A MOVED hint (the refusing owner named the new one) is
 * followed when membership knows its address. */
static int nodelink_reroute(void *ud, const char *name, const char *hint,
                            const char *avoid, char *owner, size_t ocap,
                            char *addr, size_t acap) {
  vconn *v = ud;
  wr_ingress *ig = v->ig;
  if (!ig->owner_addr) return 0;
  if (hint[0] && strcmp(hint, ig->node_id) != 0 &&
      (!avoid || strcmp(hint, avoid) != 0) &&
      ig->owner_addr(ig->routes_ud, hint, addr, acap) == 1) {
    snprintf(owner, ocap, "%s", hint);
    return 1;
  }
  if (!remote_owner(ig, name, avoid, owner, ocap)) return 0;
  return ig->owner_addr(ig->routes_ud, owner, addr, acap);
}

/* The request goes to another node that owns the name (one hop: the
 * owner never forwards again).  0, or 404/502 with |detail|. */
static int open_remote(vconn *v, const wr_fwd_open *meta, const char *owner,
                       wr_fwd_upstream *out, char *detail, size_t cap) {
  wr_ingress *ig = v->ig;
  char addr[64];
  if (!ig->pool) {
    snprintf(detail, cap,
             "%.63s is served by node %.64s; this node does not forward "
             "(node links are off)",
             meta->name, owner);
    return 502;
  }
  if (!ig->owner_addr ||
      ig->owner_addr(ig->routes_ud, owner, addr, sizeof addr) != 1) {
    snprintf(detail, cap, "node %.64s, which serves %.63s, is unreachable",
             owner, meta->name);
    return 502;
  }
  addr[sizeof addr - 1] = 0;
  v->un.m_retries = ig->m_hop_retries;
  int rv = up_nodelink_open(&v->un, ig->pool, owner, addr, meta,
                               nodelink_reroute, &up_sink, v, out);
  if (rv != 0) {
    snprintf(detail, cap,
             "node %.64s, which serves %.63s, is unreachable (%s)", owner,
             meta->name, wr_strerror(rv));
    return 502;
  }
  if (ig->m_hops) (*ig->m_hops)++;
  return 0;
}

/* Route a connection's first request: bound here -> a stream on the
 * client's tunnel; owned by another live node -> a stream on the node
 * link to it (one hop: meta->hops is 0 here, the owner never forwards
 * again); else 404.  A client with links to several nodes makes each an
 * owner: when the local tunnel cannot take the stream (its node drains:
 * GOAWAY closed it to new streams), another owner serves. */
static int fwd_open(void *ud, const wr_fwd_open *meta, wr_fwd_upstream *out,
                    char *detail, size_t cap) {
  vconn *v = ud;
  wr_ingress *ig = v->ig;
  tlink *tl;
  char owner[65];
  bindings_find found = bindings_lookup(ig->bindings, meta->name, &tl);
  /* Draining, a name whose client also has a link to another node goes
   * there: the local tunnel was told to move and should only finish
   * what it carries.  (remote_owner leaves |owner| set; the NONE branch
   * below asks again, which the table's rotation makes cheap.) */
  if (found == BINDINGS_LIVE && ig->draining && ig->pool &&
      remote_owner(ig, meta->name, NULL, owner, sizeof owner))
    found = BINDINGS_NONE;
  if (found == BINDINGS_MOVING) {
    /* Its client was told to move: another node it is bound at, if the
     * table knows one yet, else a clear 502 (it is reconnecting). */
    if (ig->pool && remote_owner(ig, meta->name, NULL, owner, sizeof owner)) {
      found = BINDINGS_NONE;
    } else {
      snprintf(detail, cap,
               "the tunnel '%.63s' is moving to another node (this one "
               "is draining); retry in a moment",
               meta->name);
      return 502;
    }
  }
  if (found == BINDINGS_GONE) {
    /* No other node serves it (bindings_lookup released it otherwise):
     * hold the request for the client's comeback, a few seconds at
     * most, rather than answer 502 at once. */
    if (up_tunnel_wait(&v->ut, ig->bindings, meta->name, &up_sink, v, out) ==
        0)
      return 0;
    snprintf(detail, cap,
             "the tunnel '%.63s' is disconnected; its client is "
             "reconnecting",
             meta->name);
    return 502;
  }
  if (found == BINDINGS_NONE) {
    if (!remote_owner(ig, meta->name, NULL, owner, sizeof owner))
      return 404;
    return open_remote(v, meta, owner, out, detail, cap);
  }
  int rv = up_tunnel_open(&v->ut, tl, meta, &up_sink, v, out);
  if (rv != 0) {
    if (remote_owner(ig, meta->name, NULL, owner, sizeof owner))
      return open_remote(v, meta, owner, out, detail, cap);
    snprintf(detail, cap, "tunnel '%.63s' cannot take more connections (%s)",
             meta->name, wr_strerror(rv));
    return 502;
  }
  return 0;
}

/* The request was a tunnel client's Upgrade: its socket becomes a
 * tunnel link (bindings.c), with the bytes read past the request. */
static int fwd_handoff(void *ud, const uint8_t *pre, size_t len) {
  vconn *v = ud;
  v->reading = 0; /* bindings_accept stops our reads */
  return bindings_accept(v->ig->bindings, v->tcp, v->peer, pre, len);
}

/* Another node's `Upgrade: warren-node/1`: a node link (nodeserve.c). */
static int fwd_handoff_node(void *ud, const uint8_t *pre, size_t len) {
  vconn *v = ud;
  if (!v->ig->nodesrv) return WR_ERR_CLOSED;
  v->reading = 0; /* nodesrv_accept stops our reads */
  return nodesrv_accept(v->ig->nodesrv, v->tcp, v->peer, pre, len);
}

static const wr_fwd_callbacks fwd_cb = {
    .open = fwd_open,
    .send = fwd_send,
    .handoff = fwd_handoff,
    .buf_new = wr_link_buf_new,
    .buf_free = wr_link_buf_free,
    .handoff_node = fwd_handoff_node,
};

/* ---- visitor connections ---- */

static void vconn_free_cb(uv_handle_t *h) {
  vconn *v = h->data;
  wr_ingress *ig = v->ig;
  /* Two handles (tcp, timer) share this callback; the last one frees. */
  if (h == (uv_handle_t *)&v->timer) {
    v->timer.data = NULL;
  } else {
    if (!v->handed_off) free(v->tcp);
    v->tcp = NULL;
  }
  if (v->tcp || v->timer.data) return;
  if (v->f) wr_fwd_free(v->f);
  if (v->aprev) v->aprev->anext = v->anext;
  else ig->all = v->anext;
  if (v->anext) v->anext->aprev = v->aprev;
  if (ig->g_visitors) (*ig->g_visitors)--;
  ig->nconns--;
  if (v->src_counted) conncap_del(&ig->src, v->src);
  free(v);
  maybe_done(ig);
}

static void vconn_close(vconn *v) {
  if (v->closing) return;
  v->closing = 1;
  drop_gathered(v);
  if (v->f) wr_fwd_close(v->f); /* resets the upstream, if any */
  uv_close((uv_handle_t *)&v->timer, vconn_free_cb);
  if (v->handed_off) {
    /* The socket belongs to a tunnel link now. */
    v->tcp = NULL;
    return;
  }
  uv_close((uv_handle_t *)v->tcp, vconn_free_cb);
}

static void vconn_on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf) {
  (void)hint;
  vconn *v = h->data;
  uint8_t *p;
  size_t cap;
  int rv = wr_fwd_read_buf(v->f, &p, &cap);
  if (rv == 1)
    *buf = uv_buf_init((char *)v->ig->discard, sizeof v->ig->discard);
  else if (rv < 0)
    *buf = uv_buf_init(NULL, 0); /* read_cb gets UV_ENOBUFS: closes */
  else *buf = uv_buf_init((char *)p, (unsigned)cap);
}

static void vconn_on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf) {
  (void)buf;
  vconn *v = s->data;
  if (v->closing || n == 0) return;
  uint64_t now = uv_now(v->ig->loop);
  if (n > 0) wr_fwd_read(v->f, (size_t)n, now);
  else wr_fwd_read_eof(v->f, n == UV_EOF ? 0 : (int)n, now);
  sync_conn(v);
}

static void on_connection(uv_stream_t *server, int status) {
  wr_ingress *ig = server->data;
  if (status < 0 || ig->stopping) return;
  uv_tcp_t *tcp = malloc(sizeof *tcp);
  if (!tcp) return; /* out of memory: it waits in the backlog */
  uv_tcp_init(ig->loop, tcp);
  if (uv_accept(server, (uv_stream_t *)tcp) != 0) {
    uv_close((uv_handle_t *)tcp, refused_closed);
    return;
  }
  /* The caps are checked once the peer is known, before anything is
   * allocated for it: a refused connection costs its socket for one
   * loop turn and nothing else. */
  struct sockaddr_storage ss;
  int sl = sizeof ss;
  char ip[48] = "unknown"; /* INET6_ADDRSTRLEN is 46 */
  memset(&ss, 0, sizeof ss);
  if (uv_tcp_getpeername(tcp, (struct sockaddr *)&ss, &sl) == 0) {
    if (ss.ss_family == AF_INET)
      uv_ip4_name((struct sockaddr_in *)&ss, ip, sizeof ip);
    else uv_ip6_name((struct sockaddr_in6 *)&ss, ip, sizeof ip);
  }
  int expect_proxy = 0;
  for (int i = 0; i < ig->nproxy_from; i++)
    if (strcmp(ig->proxy_from[i], ip) == 0) expect_proxy = 1;
  uint8_t src[16];
  conncap_ip16(&ss, src);
  if (ig->nconns >= ig->max_conns) {
    count_refused(ig->m_refused_total);
    refuse(tcp);
    return;
  }
  /* A load balancer in proxy_from speaks for many visitors: only the
   * total applies to it. */
  if (!expect_proxy && conncap_count(&ig->src, src) >= ig->max_per_source) {
    count_refused(ig->m_refused_source);
    refuse(tcp);
    return;
  }
  vconn *v = calloc(1, VCONN_FWD_OFF + wr_fwd_size());
  if (!v || (!expect_proxy && conncap_add(&ig->src, src) != 0)) {
    free(v);
    uv_close((uv_handle_t *)tcp, refused_closed);
    return;
  }
  v->src_counted = !expect_proxy;
  memcpy(v->src, src, 16);
  ig->nconns++;
  v->ig = ig;
  v->tcp = tcp;
  tcp->data = v;
  uv_timer_init(ig->loop, &v->timer);
  v->timer.data = v;
  v->anext = ig->all;
  if (ig->all) ig->all->aprev = v;
  ig->all = v;
  if (ig->g_visitors) (*ig->g_visitors)++;
  wr_tcp_tune(tcp);
  if (ss.ss_family)
    snprintf(v->peer, sizeof v->peer, "%s:%d", ip,
             ntohs(((struct sockaddr_in *)&ss)->sin_port));
  wr_fwd *f = (wr_fwd *)((char *)v + VCONN_FWD_OFF);
  if (wr_fwd_init(f, &ig->fcfg, v, v->peer, ip, expect_proxy, NULL,
                  uv_now(ig->loop)) != 0) {
    vconn_close(v);
    return;
  }
  v->f = f;
  if (ig->draining) wr_fwd_drain(f, uv_now(ig->loop));
  sync_conn(v); /* reads on, the first head's timer */
}

/* ---- sharing links' windows (SWEEP_MS above) ---- */

typedef struct held_group {
  const void *link;
  const char *name;  /* NULL: the whole link */
  size_t held, cap;
  int hot;           /* over cap at the sweep's start: shed to cap / 2 */
} held_group;

/* The link under |v|'s upstream and its receive window; 0 when it has
 * none open. */
static int vconn_link(vconn *v, const void **plk, size_t *pwin) {
  void *up = wr_fwd_upstream_of(v->f);
  if (up == &v->ut && v->ut.st.tl) {
    *plk = v->ut.st.tl;
    *pwin = v->ig->tunnel_window;
    return 1;
  }
  if (up == &v->un && v->un.ns.pl) {
    *plk = v->un.ns.pl;
    *pwin = v->ig->node_window;
    return 1;
  }
  return 0;
}

static held_group *group_of(held_group *g, size_t *ng, const void *link,
                            const char *name, size_t cap) {
  for (size_t i = 0; i < *ng; i++)
    if (g[i].link == link &&
        (name ? g[i].name && strcmp(g[i].name, name) == 0 : !g[i].name))
      return &g[i];
  if (*ng == SHED_GROUPS) return NULL; /* untracked this sweep */
  g[*ng] = (held_group){.link = link, .name = name, .held = 0, .cap = cap,
                        .hot = 0};
  return &g[(*ng)++];
}

/* The groups |v| counts in (its link's and its name's on that link). */
static void vconn_groups(vconn *v, held_group *g, size_t *ng,
                         held_group **pl, held_group **pn) {
  const void *link;
  size_t win;
  *pl = *pn = NULL;
  if (!vconn_link(v, &link, &win)) return;
  size_t share = win < v->ig->tunnel_window ? win : v->ig->tunnel_window;
  *pl = group_of(g, ng, link, NULL, win / 4 * 3);
  *pn = group_of(g, ng, link, wr_fwd_name(v->f), share / 2);
}

static int over(const held_group *x) { return x && x->held > x->cap; }

/* Once over its cap, a group is shed down to half of it, not just below:
 * new streams keep arriving while the sweep sleeps, and each takes a
 * whole stream window at once, so stopping at the cap left a name under
 * a stream-opening flood (slowhttptest's slow read, 250 connections/s)
 * full again before the next sweep. */
static int hot(const held_group *x) {
  return x && x->hot && x->held > x->cap / 2;
}

typedef struct shed_cand {
  vconn *v;
  wr_tstamp since;
  held_group *gl, *gn;
} shed_cand;

/* A max-heap on |since| (c[0]: the most recently stalled kept). */
static void heap_up(shed_cand *c, size_t i) {
  while (i > 0 && c[(i - 1) / 2].since < c[i].since) {
    shed_cand t = c[i];
    c[i] = c[(i - 1) / 2];
    c[(i - 1) / 2] = t;
    i = (i - 1) / 2;
  }
}

static void heap_down(shed_cand *c, size_t n, size_t i) {
  for (;;) {
    size_t l = 2 * i + 1, r = l + 1, m = i;
    if (l < n && c[l].since > c[m].since) m = l;
    if (r < n && c[r].since > c[m].since) m = r;
    if (m == i) return;
    shed_cand t = c[i];
    c[i] = c[m];
    c[m] = t;
    i = m;
  }
}

static int cand_cmp(const void *a, const void *b) {
  wr_tstamp x = ((const shed_cand *)a)->since,
            y = ((const shed_cand *)b)->since;
  return x < y ? -1 : x > y;
}

static void on_sweep(uv_timer_t *t) {
  wr_ingress *ig = t->data;
  uint64_t now = uv_now(ig->loop);
  held_group g[SHED_GROUPS];
  size_t ng = 0;
  int any = 0;
  for (vconn *v = ig->all; v; v = v->anext) {
    if (v->closing || !v->f) continue;
    sample_progress(v, now);
    size_t held = wr_fwd_held(v->f);
    if (!held) continue;
    held_group *gl, *gn;
    vconn_groups(v, g, &ng, &gl, &gn);
    if (gl) gl->held += held;
    if (gn) gn->held += held;
    any |= over(gl) || over(gn);
  }
  if (!any) return;
  for (size_t i = 0; i < ng; i++) g[i].hot = over(&g[i]);
  /* One more pass collects the candidates (stalled long enough, in a hot
   * group), keeping the SHED_MAX_PER_SWEEP longest stalled in a max-heap
   * on |since|; then they are shed oldest first while their group is
   * still hot.  O(visitors + k log k) per sweep: a sweep under attack
   * must not itself stall the loop. */
  shed_cand c[SHED_MAX_PER_SWEEP];
  size_t nc = 0;
  for (vconn *v = ig->all; v; v = v->anext) {
    if (v->closing || !v->f || !wr_fwd_held(v->f)) continue;
    wr_tstamp since = wr_fwd_stalled_since(v->f);
    if (since == WR_TSTAMP_NONE || since + SHED_AFTER_MS > now) continue;
    held_group *gl, *gn;
    vconn_groups(v, g, &ng, &gl, &gn);
    if (!hot(gl) && !hot(gn)) continue;
    shed_cand x = {.v = v, .since = since, .gl = gl, .gn = gn};
    if (nc < SHED_MAX_PER_SWEEP) {
      c[nc++] = x;
      heap_up(c, nc - 1);
    } else if (since < c[0].since) {
      c[0] = x;
      heap_down(c, nc, 0);
    }
  }
  qsort(c, nc, sizeof c[0], cand_cmp);
  for (size_t k = 0; k < nc; k++) {
    if (!hot(c[k].gl) && !hot(c[k].gn)) continue;
    size_t held = wr_fwd_held(c[k].v->f);
    if (c[k].gl) c[k].gl->held -= held < c[k].gl->held ? held : c[k].gl->held;
    if (c[k].gn) c[k].gn->held -= held < c[k].gn->held ? held : c[k].gn->held;
    wr_fwd_shed(c[k].v->f, now);
    sync_conn(c[k].v); /* closes: the vconn is freed on a later turn */
  }
}

/* ---- the ingress ---- */

static void maybe_done(wr_ingress *ig) {
  if (!ig->stopping || !ig->server_closed || !ig->prep_closed ||
      !ig->sweep_closed || ig->all ||
      !ig->bindings_done || !ig->pool_done || !ig->nodesrv_done)
    return;
  nodesrv_del(ig->nodesrv);
  nodepool_del(ig->pool);
  bindings_del(ig->bindings);
  void (*done)(void *) = ig->done;
  void *ud = ig->done_ud;
  free(ig);
  if (done) done(ud);
}

static void on_bindings_done(void *ud) {
  wr_ingress *ig = ud;
  ig->bindings_done = 1;
  maybe_done(ig);
}

static void on_pool_done(void *ud) {
  wr_ingress *ig = ud;
  ig->pool_done = 1;
  maybe_done(ig);
}

static void on_nodesrv_done(void *ud) {
  wr_ingress *ig = ud;
  ig->nodesrv_done = 1;
  maybe_done(ig);
}

/* Node links: the pool that dials owners and the server that relays
 * their streams.  Off (both NULL) without a node PSK. */
static int start_nodelinks(wr_ingress *ig, uv_loop_t *loop,
                           const wr_ingress_config *cfg) {
  ig->pool_done = ig->nodesrv_done = 1;
  if (!cfg->have_node_psk) return 0;
  nodepool_config pc;
  memset(&pc, 0, sizeof pc);
  crypto_scalarmult_base(pc.fleet_pub, cfg->fleet_priv);
  memcpy(pc.psk, cfg->node_psk, 32);
  pc.ev = &up_nodelink_events;
  pc.g_links = ig->g_links_out;
  pc.m_dial_failed = ig->m_dial_failed;
  pc.link_window = cfg->node_link_window;
  pc.idle_ms = cfg->node_link_idle_ms;
  pc.rotate_at = cfg->node_link_rotate_at;
  int rv = nodepool_new(&ig->pool, loop, &pc);
  sodium_memzero(pc.psk, 32);
  if (rv != 0) return rv;
  nodesrv_config sc;
  memset(&sc, 0, sizeof sc);
  sc.bindings = ig->bindings;
  memcpy(sc.fleet_priv, cfg->fleet_priv, 32);
  memcpy(sc.psk, cfg->node_psk, 32);
  sc.lookup_remote = cfg->lookup_remote;
  sc.routes_ud = cfg->routes_ud;
  sc.m_bad = ig->m_tunnel_bad;
  sc.g_links = ig->g_links_in;
  sc.g_relays = ig->g_relays;
  rv = nodesrv_new(&ig->nodesrv, loop, &sc);
  sodium_memzero(&sc, sizeof sc);
  if (rv != 0) {
    nodepool_del(ig->pool);
    ig->pool = NULL;
    return rv;
  }
  ig->pool_done = ig->nodesrv_done = 0;
  return 0;
}

static void url_of(void *ud, const char *name, char *out, size_t cap) {
  wr_ingress_url(ud, name, out, cap);
}

static void server_closed(uv_handle_t *h) {
  wr_ingress *ig = h->data;
  if (h == (uv_handle_t *)&ig->prep) ig->prep_closed = 1;
  else if (h == (uv_handle_t *)&ig->sweep) ig->sweep_closed = 1;
  else ig->server_closed = 1;
  maybe_done(ig);
}

int wr_ingress_start(wr_ingress **pig, uv_loop_t *loop,
                     const wr_ingress_config *cfg) {
  struct sockaddr_storage ss;
  int rv = wr_parse_hostport(cfg->listen, &ss);
  if (rv != 0) return rv;
  wr_ingress *ig = calloc(1, sizeof *ig);
  if (!ig) return WR_ERR_NOMEM;
  ig->loop = loop;
  wr_randpool_init(&ig->ids, NULL, NULL); /* empty: the first use fills it */
  snprintf(ig->domain, sizeof ig->domain, "%s", cfg->domain);
  snprintf(ig->node_id, sizeof ig->node_id, "%s", cfg->node_id);
  ig->routes_ud = cfg->routes_ud;
  ig->lookup_remote = cfg->lookup_remote;
  ig->upstream_timeout = cfg->upstream_timeout_ms ? cfg->upstream_timeout_ms
                                                  : 60000;
  ig->idle_timeout = cfg->idle_timeout_ms ? cfg->idle_timeout_ms : 75000;
  ig->head_timeout = cfg->head_timeout_ms ? cfg->head_timeout_ms : 30000;
  ig->body_min_rate = cfg->body_min_rate;
  {
    wr_mux_config mc;
    wr_mux_config_default(&mc, 0);
    ig->tunnel_window = mc.link_window;
    nodelink_mux_config(&mc, 1);
    ig->node_window =
        cfg->node_link_window ? cfg->node_link_window : mc.link_window;
  }
  ig->max_conns = cfg->max_conns;
  ig->max_per_source = cfg->max_conns_per_source;
  default_caps(&ig->max_conns, &ig->max_per_source);
  for (const char *p = cfg->proxy_from; p && *p && ig->nproxy_from < 16;) {
    size_t n = strcspn(p, ",");
    if (n > 0 && n < sizeof ig->proxy_from[0]) {
      memcpy(ig->proxy_from[ig->nproxy_from], p, n);
      ig->proxy_from[ig->nproxy_from++][n] = 0;
    }
    p += n;
    if (*p == ',') p++;
  }
  ig->fcfg = (wr_fwd_config){
      .domain = ig->domain,
      .proto = "http",
      .max_head = HEAD_MAX,
      .rbuf_cap = VBUF_CAP,
      .head_ms = ig->head_timeout,
      .idle_ms = ig->idle_timeout,
      .upstream_ms = ig->upstream_timeout,
      .body_min_rate = ig->body_min_rate,
      .pipeline_max = PIPELINE_MAX,
      .linger_ms = LINGER_MS,
      .linger_quiet_ms = LINGER_QUIET_MS,
      .send_stall_ms = cfg->send_stall_ms ? cfg->send_stall_ms
                                          : SEND_STALL_MS,
      .rand = wr_randpool_fill,
      .rand_ud = &ig->ids,
      .cb = &fwd_cb,
      .metrics = &ig->fm,
  };
  wr_metrics *m = cfg->metrics;
  if (m) {
    wr_metrics_counter(m, "warren_http_requests_total", NULL, NULL,
                       "Visitor requests received.", &ig->fm.requests);
    wr_metrics_counter(m, "warren_http_bad_requests_total", NULL, NULL,
                       "Visitor requests rejected as malformed (4xx).",
                       &ig->fm.bad);
    wr_metrics_counter(m, "warren_http_responses_total", "code", "404",
                       "Error responses generated by the node.", &ig->fm.r404);
    wr_metrics_counter(m, "warren_http_responses_total", "code", "408",
                       "Error responses generated by the node.", &ig->fm.r408);
    wr_metrics_counter(m, "warren_http_responses_total", "code", "502",
                       "Error responses generated by the node.", &ig->fm.r502);
    wr_metrics_counter(m, "warren_http_responses_total", "code", "504",
                       "Error responses generated by the node.", &ig->fm.r504);
    wr_metrics_counter(m, "warren_http_head_timeouts_total", NULL, NULL,
                       "Visitor connections closed (408) because a started "
                       "request head was not complete within the head "
                       "timeout.",
                       &ig->fm.head_timeouts);
    wr_metrics_counter(m, "warren_http_body_rate_timeouts_total", NULL, NULL,
                       "Visitor requests answered 408 because the body "
                       "arrived slower than the minimum rate.",
                       &ig->fm.body_rate);
    wr_metrics_counter(m, "warren_http_lingering_closes_total", NULL, NULL,
                       "Visitor connections the node ended while the "
                       "visitor might still be sending: FIN sent, input "
                       "read and dropped for up to 5 s, then closed.",
                       &ig->fm.lingers);
    wr_metrics_counter(m, "warren_http_pipeline_pauses_total", NULL, NULL,
                       "Times reading a visitor stopped because it had the "
                       "most pipelined requests owed (32).",
                       &ig->fm.pipeline_pauses);
    wr_metrics_counter(m, "warren_rx_malformed_total", "source", "tunnel",
                       "Malformed or unauthenticated input dropped.",
                       &ig->m_tunnel_bad);
    wr_metrics_counter(m, "warren_tunnel_auth_failures_total", NULL, NULL,
                       "Tunnel Hellos refused for a bad or unknown token or "
                       "a bad identity proof (each ends its link).",
                       &ig->m_auth_fail);
    wr_metrics_counter(m, "warren_tunnel_held_total", "result", "resumed",
                       "Visitor streams held for a tunnel whose link "
                       "dropped (no other owner), by outcome: its client "
                       "bound again here in time (resumed), or not "
                       "(failed: 502).",
                       &ig->m_held_resumed);
    wr_metrics_counter(m, "warren_tunnel_held_total", "result", "failed",
                       "Visitor streams held for a tunnel whose link "
                       "dropped (no other owner), by outcome: its client "
                       "bound again here in time (resumed), or not "
                       "(failed: 502).",
                       &ig->m_held_failed);
    wr_metrics_counter(m, "warren_tunnel_grace_skipped_total", NULL, NULL,
                       "Dropped tunnels released before their grace period "
                       "ended because another node serves the name (the "
                       "client's other link, or its new one).",
                       &ig->m_released_early);
    wr_metrics_counter(m, "warren_forward_hops_total", NULL, NULL,
                       "Visitor connections forwarded to the owner node "
                       "over a node-to-node link.",
                       &ig->m_hops);
    wr_metrics_counter(m, "warren_forward_retries_total", NULL, NULL,
                       "Forwarded connections retried once against the "
                       "current routes table (stale route).",
                       &ig->m_hop_retries);
    wr_metrics_counter(m, "warren_node_link_dial_failures_total", NULL, NULL,
                       "Node-to-node links that could not be made (connect, "
                       "upgrade or handshake).",
                       &ig->m_dial_failed);
    wr_metrics_gauge(m, "warren_node_links", "direction", "out",
                     "Node-to-node links: dialed by this node (out) or "
                     "accepted from other nodes (in).",
                     &ig->g_links_out);
    wr_metrics_gauge(m, "warren_node_links", "direction", "in",
                     "Node-to-node links: dialed by this node (out) or "
                     "accepted from other nodes (in).",
                     &ig->g_links_in);
    wr_metrics_gauge(m, "warren_node_relayed_streams", NULL, NULL,
                     "Streams from other nodes relayed into local tunnels "
                     "now.",
                     &ig->g_relays);
    wr_metrics_gauge(m, "warren_tunnels", NULL, NULL,
                     "Tunnels bound on this node.", &ig->g_tunnels);
    wr_metrics_gauge(m, "warren_visitor_connections", NULL, NULL,
                     "Open visitor connections.", &ig->g_visitors);
    wr_metrics_counter(m, "warren_ingress_conns_refused_total", "why",
                       "total",
                       "Visitor connections refused (503 and close) over "
                       "the connection cap: in total (--max-conns) or "
                       "from one source address (--max-conns-per-ip).",
                       &ig->m_refused_total);
    wr_metrics_counter(m, "warren_ingress_conns_refused_total", "why",
                       "per_source",
                       "Visitor connections refused (503 and close) over "
                       "the connection cap: in total (--max-conns) or "
                       "from one source address (--max-conns-per-ip).",
                       &ig->m_refused_source);
    wr_metrics_counter(m, "warren_http_send_stalls_total", NULL, NULL,
                       "Visitor connections closed (stream reset) because "
                       "their socket took none of the response bytes owed "
                       "to it within the send-stall timeout.",
                       &ig->fm.send_stalls);
    wr_metrics_counter(m, "warren_http_send_stall_sheds_total", NULL, NULL,
                       "Stalled visitor connections closed early (stream "
                       "reset) because their name or link held more than "
                       "its share of the link's window.",
                       &ig->fm.sheds);
    wr_metrics_counter(m, "warren_http_body_timeouts_answered_total", NULL,
                       NULL,
                       "Request bodies that timed out after their response "
                       "had started (no 408 possible: stream reset, "
                       "connection closed).",
                       &ig->fm.body_timeouts_answered);
    wr_metrics_counter(m, "warren_http_silent_closes_total", NULL, NULL,
                       "Visitor connections closed by the head timeout "
                       "without having sent a byte.",
                       &ig->fm.silent_closes);
  }
  bindings_config bc = {
      .ic = cfg,
      .ev = &up_tunnel_events,
      .url = url_of,
      .ud = ig,
      .m_tunnel_bad = ig->m_tunnel_bad,
      .m_auth_fail = ig->m_auth_fail,
      .m_held_resumed = ig->m_held_resumed,
      .m_held_failed = ig->m_held_failed,
      .m_released_early = ig->m_released_early,
      .g_tunnels = ig->g_tunnels,
  };
  rv = bindings_new(&ig->bindings, loop, &bc);
  if (rv != 0) {
    free(ig);
    return rv;
  }
  ig->owner_addr = cfg->owner_addr;
  rv = start_nodelinks(ig, loop, cfg);
  if (rv != 0) {
    bindings_del(ig->bindings);
    free(ig);
    return rv;
  }
  uv_tcp_init(loop, &ig->server);
  ig->server.data = ig;
  uv_prepare_init(loop, &ig->prep);
  ig->prep.data = ig;
  uv_timer_init(loop, &ig->sweep);
  ig->sweep.data = ig;
  uv_timer_start(&ig->sweep, on_sweep, SWEEP_MS, SWEEP_MS);
  if (cfg->have_listen_fd)
    rv = uv_tcp_open(&ig->server, (uv_os_sock_t)cfg->listen_fd);
  else
    rv = uv_tcp_bind(&ig->server, (struct sockaddr *)&ss, 0);
  if (rv == 0 && !cfg->paused)
    rv = uv_listen((uv_stream_t *)&ig->server, 1024, on_connection);
  ig->paused = cfg->paused;
  if (rv != 0) {
    /* Closing is asynchronous; the ingress frees itself when it ends. */
    ig->stopping = 1;
    uv_close((uv_handle_t *)&ig->server, server_closed);
    uv_close((uv_handle_t *)&ig->prep, server_closed);
    uv_close((uv_handle_t *)&ig->sweep, server_closed);
    bindings_stop(ig->bindings, on_bindings_done, ig);
    if (ig->pool) nodepool_stop(ig->pool, on_pool_done, ig);
    if (ig->nodesrv) nodesrv_stop(ig->nodesrv, on_nodesrv_done, ig);
    return rv;
  }
  struct sockaddr_storage bound;
  int bl = sizeof bound;
  uv_tcp_getsockname(&ig->server, (struct sockaddr *)&bound, &bl);
  ig->port = ntohs(((struct sockaddr_in *)&bound)->sin_port);
  *pig = ig;
  return 0;
}

int wr_ingress_accept(wr_ingress *ig) {
  if (!ig->paused || ig->stopping || ig->unlistened) return 0;
  ig->paused = 0;
  return uv_listen((uv_stream_t *)&ig->server, 1024, on_connection);
}

void wr_ingress_stop_accepting(wr_ingress *ig) {
  if (ig->stopping || ig->unlistened) return;
  ig->unlistened = 1;
  /* The handle closes now (libuv closes the descriptor at once); the
   * ingress frees itself only once server_closed has run, as ever. */
  uv_close((uv_handle_t *)&ig->server, server_closed);
}

void wr_ingress_set_limits(wr_ingress *ig, const wr_ingress_limits *l) {
  ig->upstream_timeout = l->upstream_timeout_ms ? l->upstream_timeout_ms
                                                : 60000;
  ig->idle_timeout = l->idle_timeout_ms ? l->idle_timeout_ms : 75000;
  ig->head_timeout = l->head_timeout_ms ? l->head_timeout_ms : 30000;
  ig->body_min_rate = l->body_min_rate;
  /* fcfg is shared by every connection's core, but each core copied its
   * timer settings at wr_fwd_init: only new connections see these. */
  ig->fcfg.head_ms = ig->head_timeout;
  ig->fcfg.idle_ms = ig->idle_timeout;
  ig->fcfg.upstream_ms = ig->upstream_timeout;
  ig->fcfg.body_min_rate = ig->body_min_rate;
  ig->max_conns = l->max_conns;
  ig->max_per_source = l->max_conns_per_source;
  default_caps(&ig->max_conns, &ig->max_per_source);
}

void wr_ingress_get_limits(const wr_ingress *ig, wr_ingress_limits *out) {
  out->upstream_timeout_ms = ig->upstream_timeout;
  out->idle_timeout_ms = ig->idle_timeout;
  out->head_timeout_ms = ig->head_timeout;
  out->body_min_rate = ig->body_min_rate;
  out->max_conns = ig->max_conns;
  out->max_conns_per_source = ig->max_per_source;
}

size_t wr_ingress_peer_dead(wr_ingress *ig, const char *node_id) {
  return ig->pool && !ig->stopping ? nodepool_peer_dead(ig->pool, node_id)
                                   : 0;
}

int wr_ingress_port(const wr_ingress *ig) { return ig->port; }

void wr_ingress_node_links(const wr_ingress *ig, size_t *open,
                           uint64_t *dialed) {
  *open = ig->pool ? nodepool_links(ig->pool) : 0;
  *dialed = ig->pool ? nodepool_dials(ig->pool) : 0;
}

size_t wr_ingress_tunnel_count(const wr_ingress *ig) {
  return bindings_count(ig->bindings);
}

void wr_ingress_foreach(const wr_ingress *ig,
                        void (*fn)(const wr_tunnel_info *t, void *ud),
                        void *ud) {
  bindings_foreach(ig->bindings, fn, ud);
}

int wr_ingress_evict(wr_ingress *ig, const char *name,
                     const uint8_t session[16], int reason) {
  return bindings_evict(ig->bindings, name, session, reason);
}

int wr_ingress_gone(wr_ingress *ig, const char *name) {
  return bindings_is_gone(ig->bindings, name);
}

int wr_ingress_recheck(wr_ingress *ig, const char *name) {
  return bindings_recheck(ig->bindings, name);
}

void wr_ingress_drain(wr_ingress *ig) {
  if (ig->stopping) return;
  ig->draining = 1;
  bindings_drain(ig->bindings);
  if (ig->nodesrv) nodesrv_drain(ig->nodesrv);
  uint64_t now = uv_now(ig->loop);
  for (vconn *v = ig->all; v; v = v->anext) {
    if (v->closing || !v->f) continue;
    wr_fwd_drain(v->f, now);
    sync_conn(v);
  }
}

void wr_ingress_load(const wr_ingress *ig, wr_ingress_load_info *out) {
  memset(out, 0, sizeof *out);
  for (const vconn *v = ig->all; v; v = v->anext) {
    if (v->closing || !v->f) continue;
    out->visitors++;
    if (wr_fwd_busy(v->f)) out->busy++;
  }
  out->tunnel_links = bindings_links(ig->bindings);
  out->tunnels = bindings_count(ig->bindings);
  out->unmoved = bindings_unmoved(ig->bindings, WR_INGRESS_MOVE_GRACE_MS);
  out->relays = ig->nodesrv ? nodesrv_streams(ig->nodesrv) : 0;
}

void wr_ingress_drain_hard(wr_ingress *ig) {
  if (!ig->draining || ig->stopping) return;
  bindings_drain_hard(ig->bindings);
  /* Node links accepted since the drain began are told too, so the
   * nodes forwarding through them route their visitors' next requests
   * afresh (forward.h, reusable). */
  if (ig->nodesrv) nodesrv_drain(ig->nodesrv);
}

size_t wr_ingress_close_idle(wr_ingress *ig) {
  size_t n = 0;
  for (vconn *v = ig->all; v; v = v->anext) {
    if (v->closing || !v->f || wr_fwd_busy(v->f)) continue;
    vconn_close(v); /* unlinks in its close callback, not now */
    n++;
  }
  return n;
}

void wr_ingress_stop(wr_ingress *ig, void (*done)(void *ud), void *ud) {
  if (ig->stopping) return;
  ig->stopping = 1;
  /* Metrics keep counting until |done|: the registry's owner (the admin
   * server in `warren node`) is closed only after that (main.c). */
  ig->done = done;
  ig->done_ud = ud;
  if (!ig->unlistened) uv_close((uv_handle_t *)&ig->server, server_closed);
  uv_close((uv_handle_t *)&ig->prep, server_closed);
  uv_close((uv_handle_t *)&ig->sweep, server_closed);
  for (vconn *v = ig->all; v; v = v->anext) vconn_close(v);
  bindings_stop(ig->bindings, on_bindings_done, ig);
  if (ig->pool) nodepool_stop(ig->pool, on_pool_done, ig);
  if (ig->nodesrv) nodesrv_stop(ig->nodesrv, on_nodesrv_done, ig);
}
