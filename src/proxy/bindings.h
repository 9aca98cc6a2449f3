/*
 * The node's tunnel bindings (src/proxy/bindings.c), internal to the
 * proxy module: the tunnel control server (a client link's Hello, token
 * and Bind), the local table name -> link, the grace period of a dropped
 * link's names, eviction when the routes table says a binding lost its
 * name (TAKEN) or moved (MOVED), and the routes hooks of
 * wr_ingress_config.
 *
 * Its only user is proxy_uv.c, which hands it every socket that asked for
 * `Upgrade: warren/1` and opens streams on its links for visitors.  Those
 * streams are wr_tstream objects embedded in the user's own state; the
 * link's events for them come back through wr_tstream_events.
 */
#ifndef WARREN_PROXY_BINDINGS_H
#define WARREN_PROXY_BINDINGS_H

#include "warren/ingress.h"
#include "warren/link.h"

typedef struct wr_bindings wr_bindings;
typedef struct wr_tlink wr_tlink;

/* A stream on a local tunnel link, embedded in whoever opened it. */
typedef struct wr_tstream {
  wr_tlink *tl;  /* NULL before open and once the stream is gone */
  uint32_t sid;
  struct wr_tstream *prev, *next; /* on tl's list */
} wr_tstream;

/*
 * Events for open streams, delivered after the link's mux call returned
 * (link.h), and only while s->tl is set: events for a stream already
 * detached are absorbed here (DATA consumed and freed).  In `closed` and
 * `gone`, s->tl is already NULL.
 */
typedef struct wr_tstream_events {
  /* |buf| (wr_link_buf_new) is handed over; its |len| bytes of credit
   * come back with wr_tstream_consume. */
  void (*data)(wr_tstream *s, uint8_t *buf, size_t len);
  void (*fin)(wr_tstream *s);
  /* The stream closed: |code| < 0 when both sides sent FIN (the normal
   * end), else the WR_MUX_RST_* code, |by_peer| when the client sent it. */
  void (*closed)(wr_tstream *s, int64_t code, int by_peer);
  void (*writable)(wr_tstream *s);
  /* The whole link dropped. */
  void (*gone)(wr_tstream *s);
} wr_tstream_events;

typedef struct wr_bindings_config {
  const wr_ingress_config *ic; /* fleet key, token, node id, gone grace,
                                  the routes hooks; read during new only */
  const wr_tstream_events *ev;
  /* Builds the public URL of a name (the ingress knows the port). */
  void (*url)(void *ud, const char *name, char *out, size_t cap);
  void *ud;
  /* Metrics, each may be NULL. */
  uint64_t *m_tunnel_bad;
  int64_t *g_tunnels;
} wr_bindings_config;

int wr_bindings_new(wr_bindings **pb, uv_loop_t *loop,
                    const wr_bindings_config *cfg);
/* Frees the table; every link must have closed (wr_bindings_idle). */
void wr_bindings_del(wr_bindings *b);

/* Takes over |tcp| (already answered 101, reading stopped) as a tunnel
 * link; |pre| are bytes read past the Upgrade request.  Returns 0 or an
 * error with |tcp| still the caller's. */
int wr_bindings_accept(wr_bindings *b, uv_tcp_t *tcp, const char *peer,
                       const uint8_t *pre, size_t prelen);

typedef enum wr_bindings_find {
  WR_BINDINGS_NONE = 0, /* not bound here */
  WR_BINDINGS_LIVE,     /* bound to a live link: *ptl */
  WR_BINDINGS_GONE,     /* its link dropped less than gone_grace ago */
} wr_bindings_find;
wr_bindings_find wr_bindings_lookup(wr_bindings *b, const char *name,
                                    wr_tlink **ptl);

/* Opens a stream on |tl| for |s| (meta: the OPEN metadata).  Returns 0 or
 * a mux error (WR_ERR_LIMIT, WR_ERR_CLOSED). */
int wr_tstream_open(wr_tstream *s, wr_tlink *tl, const uint8_t *meta,
                    size_t len);
/* Stream operations; each schedules the link's output.  No-ops (0) once
 * the stream is gone. */
wr_ssize wr_tstream_write(wr_tstream *s, const uint8_t *data, size_t len);
void wr_tstream_consume(wr_tstream *s, size_t n);
void wr_tstream_fin(wr_tstream *s);
/* Detaches |s| (no event comes for it afterwards); |reset|: with a
 * WR_MUX_RST_CANCEL to the client. */
void wr_tstream_detach(wr_tstream *s, int reset);

int wr_bindings_evict(wr_bindings *b, const char *name,
                      const uint8_t session[16], int reason);
void wr_bindings_foreach(const wr_bindings *b,
                         void (*fn)(const wr_tunnel_info *t, void *ud),
                         void *ud);
size_t wr_bindings_count(const wr_bindings *b);
void wr_bindings_drain(wr_bindings *b);
/* Closes every link and the sweep timer; |done| runs once all closed. */
void wr_bindings_stop(wr_bindings *b, void (*done)(void *ud), void *ud);

#endif
