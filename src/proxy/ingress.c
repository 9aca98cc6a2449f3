/*
 * The ingress's life (see ingress.h): starting it (the listener, the
 * bindings, node links, the forwarding cores' shared config and the
 * metrics), its limits, draining, and stopping it once every handle it
 * owns has closed.  Visitor connections are proxy_uv.c's; this file only
 * walks them to drain or close them.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sys/resource.h>

#include <sodium.h>

#include "ingress_int.h"
#include "warren/err.h"
#include "warren/link.h"

/* The caps left 0 derive from the soft descriptor limit (conncap.h). */
static void default_caps(unsigned *total, unsigned *per_source) {
  struct rlimit rl;
  uint64_t l = 1024;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0)
    l = rl.rlim_cur == RLIM_INFINITY ? 1u << 20 : rl.rlim_cur;
  conncap_defaults(l, total, per_source);
}

void wr_ingress_url(const wr_ingress *ig, const char *name, char *out,
                    size_t cap) {
  if (ig->port == 80)
    snprintf(out, cap, "http://%s.%s", name, ig->domain);
  else
    snprintf(out, cap, "http://%s.%s:%d", name, ig->domain, ig->port);
}

void ingress_maybe_done(wr_ingress *ig) {
  if (!ig->stopping || !ig->server_closed || !ig->prep_closed ||
      !ig->sweep_closed || ig->all || !ig->bindings_done || !ig->pool_done ||
      !ig->nodesrv_done)
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
  ingress_maybe_done(ig);
}

static void on_pool_done(void *ud) {
  wr_ingress *ig = ud;
  ig->pool_done = 1;
  ingress_maybe_done(ig);
}

static void on_nodesrv_done(void *ud) {
  wr_ingress *ig = ud;
  ig->nodesrv_done = 1;
  ingress_maybe_done(ig);
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
  if (h == (uv_handle_t *)&ig->prep)
    ig->prep_closed = 1;
  else if (h == (uv_handle_t *)&ig->sweep)
    ig->sweep_closed = 1;
  else
    ig->server_closed = 1;
  ingress_maybe_done(ig);
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
  ig->upstream_timeout =
      cfg->upstream_timeout_ms ? cfg->upstream_timeout_ms : 60000;
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
      .send_stall_ms = cfg->send_stall_ms ? cfg->send_stall_ms : SEND_STALL_MS,
      .rand = wr_randpool_fill,
      .rand_ud = &ig->ids,
      .cb = &ingress_fwd_cb,
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
    wr_metrics_counter(m, "warren_ingress_conns_refused_total", "why", "total",
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
  uv_timer_start(&ig->sweep, ingress_on_sweep, SWEEP_MS, SWEEP_MS);
  if (cfg->have_listen_fd)
    rv = uv_tcp_open(&ig->server, (uv_os_sock_t)cfg->listen_fd);
  else
    rv = uv_tcp_bind(&ig->server, (struct sockaddr *)&ss, 0);
  if (rv == 0 && !cfg->paused)
    rv = uv_listen((uv_stream_t *)&ig->server, 1024, ingress_on_connection);
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
  return uv_listen((uv_stream_t *)&ig->server, 1024, ingress_on_connection);
}

void wr_ingress_stop_accepting(wr_ingress *ig) {
  if (ig->stopping || ig->unlistened) return;
  ig->unlistened = 1;
  /* The handle closes now (libuv closes the descriptor at once); the
   * ingress frees itself only once server_closed has run, as ever. */
  uv_close((uv_handle_t *)&ig->server, server_closed);
}

void wr_ingress_set_limits(wr_ingress *ig, const wr_ingress_limits *l) {
  ig->upstream_timeout =
      l->upstream_timeout_ms ? l->upstream_timeout_ms : 60000;
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
  return ig->pool && !ig->stopping ? nodepool_peer_dead(ig->pool, node_id) : 0;
}

int wr_ingress_port(const wr_ingress *ig) { return ig->port; }

int wr_ingress_listen_fd(const wr_ingress *ig) {
  uv_os_fd_t fd;
  if (ig->stopping || ig->unlistened ||
      uv_fileno((const uv_handle_t *)&ig->server, &fd) != 0)
    return -1;
  return fd;
}

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
    vconn_sync(v);
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
