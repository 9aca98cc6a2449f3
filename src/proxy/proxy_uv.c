/*
 * Visitor connections on the node's public port (see ingress.h): a thin
 * libuv adapter.  Each visitor connection (vconn) is a forwarding core
 * (forward.c, sans-IO: every protocol decision, the connection's states
 * and timers) plus what only libuv can do here:
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
 *   - accepting, and refusing over the connection caps (conncap.c).
 * The ingress's life and metrics are ingress.c's, shedding stalled
 * visitors is shed.c's (ingress_int.h).
 *
 * After every call into the core, vconn_sync() applies what it wants.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ingress_int.h"
#include "warren/err.h"
#include "warren/link.h"

/* ---- refusing over the connection caps (conncap.c counts) ---- */

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


static void vconn_on_write(uv_write_t *req, int status) {
  vwrite *w = (vwrite *)req;
  vconn *v = w->v;
  for (unsigned i = 0; i < w->nbufs; i++)
    wr_link_buf_free((uint8_t *)w->bufs[i].base);
  v->writes--;
  if (!v->closing) {
    wr_fwd_written(v->f, w->len, w->credit, status,
                   uv_now(v->ig->loop));
    vconn_sync(v);
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

void ingress_on_prepare(uv_prepare_t *p) {
  wr_ingress *ig = p->data;
  while (ig->dirty) {
    vconn *v = ig->dirty;
    if (vconn_flush(v) != 0) v->write_failed = 1;
    vconn_sync(v);
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
    uv_prepare_start(&v->ig->prep, ingress_on_prepare);
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
void vconn_sync(vconn *v) {
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
void vconn_sample_progress(vconn *v, uint64_t now) {
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
  vconn_sample_progress(v, uv_now(v->ig->loop));
  wr_fwd_tick(v->f, uv_now(v->ig->loop));
  vconn_sync(v);
}

/* ---- the upstream's events (forward.h's wr_fwd_sink) ---- */

static void up_on_data(void *owner, uint8_t *buf, size_t len) {
  vconn *v = owner;
  if (v->closing) { /* not reached: a closing vconn has detached */
    wr_link_buf_free(buf);
    return;
  }
  wr_fwd_up_data(v->f, buf, len, uv_now(v->ig->loop));
  vconn_sync(v);
}

static void up_on_fin(void *owner) {
  vconn *v = owner;
  if (v->closing) return;
  wr_fwd_up_fin(v->f, uv_now(v->ig->loop));
  vconn_sync(v);
}

static void up_on_ended(void *owner, wr_fwd_end end) {
  vconn *v = owner;
  wr_fwd_up_ended(v->f, end, uv_now(v->ig->loop));
  vconn_sync(v);
}

static void up_on_writable(void *owner) {
  vconn *v = owner;
  if (v->closing) return;
  wr_fwd_up_writable(v->f, uv_now(v->ig->loop));
  vconn_sync(v);
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

const wr_fwd_callbacks ingress_fwd_cb = {
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
  ingress_maybe_done(ig);
}

void vconn_close(vconn *v) {
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
  vconn_sync(v);
}

void ingress_on_connection(uv_stream_t *server, int status) {
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
  vconn_sync(v); /* reads on, the first head's timer */
}
