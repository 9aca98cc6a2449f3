/*
 * The node's public side (src/proxy/proxy_uv.c): one TCP listener that
 * serves visitors (HTTP/1.1, routed by Host to a tunnel) and accepts
 * tunnel clients (a GET /_warren/tunnel with Upgrade: warren/1 becomes a
 * wr_link).  It keeps this node's tunnel table: name -> link.
 *
 * Per visitor connection: a wr_http_req and a wr_http_resp (head.c), and
 * one mux stream to the owning tunnel that carries the connection's
 * requests (rewritten heads, raw bodies) and brings the responses back
 * raw.  Backpressure: visitor reads stop while the stream has no credit;
 * credit for response bytes returns only when the visitor's socket took
 * them.
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
  wr_metrics *metrics;           /* may be NULL; counted into until
                                    wr_ingress_stop's |done| runs, so it
                                    must outlive that */
} wr_ingress_config;

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
