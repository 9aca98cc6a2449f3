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
 * streams are tstream objects embedded in the user's own state; the
 * link's events for them come back through tstream_events.  Like
 * up_tunnel.h, this is the proxy module's own API, so its names carry the
 * bare module prefixes (STYLE.md, "Naming"), not wr_.
 */
#ifndef WARREN_PROXY_BINDINGS_H
#define WARREN_PROXY_BINDINGS_H

#include "warren/ingress.h"
#include "warren/link.h"

typedef struct bindings bindings;
typedef struct tlink tlink;

/* A stream on a local tunnel link, embedded in whoever opened it. */
typedef struct tstream {
  tlink *tl;  /* NULL before open and once the stream is gone */
  uint32_t sid;
  struct tstream *prev, *next; /* on tl's list, or the waiters' */
  /* Held (tstream_wait): the GONE binding it waits for, else NULL. */
  struct tunnel *waiting;
  bindings *b;
  uint64_t wait_until;
  int fin_asked; /* tstream_fin while held: sent once open */
} tstream;

/*
 * Events for open streams, delivered after the link's mux call returned
 * (link.h), and only while s->tl is set: events for a stream already
 * detached are absorbed here (DATA consumed and freed).  In `closed` and
 * `gone`, s->tl is already NULL.
 */
typedef struct tstream_events {
  /* |buf| (wr_link_buf_new) is handed over; its |len| bytes of credit
   * come back with tstream_consume. */
  void (*data)(tstream *s, uint8_t *buf, size_t len);
  void (*fin)(tstream *s);
  /* The stream closed: |code| < 0 when both sides sent FIN (the normal
   * end), else the WR_MUX_RST_* code, |by_peer| when the client sent it. */
  void (*closed)(tstream *s, int64_t code, int by_peer);
  void (*writable)(tstream *s);
  /* The whole link dropped. */
  void (*gone)(tstream *s);
} tstream_events;

typedef struct bindings_config {
  const wr_ingress_config *ic; /* fleet key, token, node id, gone grace,
                                  the routes hooks; read during new only */
  const tstream_events *ev;
  /* Builds the public URL of a name (the ingress knows the port). */
  void (*url)(void *ud, const char *name, char *out, size_t cap);
  void *ud;
  /* Metrics, each may be NULL. */
  uint64_t *m_tunnel_bad;
  uint64_t *m_auth_fail; /* Hellos that failed authentication */
  uint64_t *m_held_resumed, *m_held_failed; /* tstream_wait's outcomes */
  uint64_t *m_released_early; /* GONE skipped: served elsewhere */
  int64_t *g_tunnels;
} bindings_config;

int bindings_new(bindings **pb, uv_loop_t *loop,
                    const bindings_config *cfg);
/* Frees the table; every link must have closed (bindings_idle). */
void bindings_del(bindings *b);

/* Takes over |tcp| (already answered 101, reading stopped) as a tunnel
 * link; |pre| are bytes read past the Upgrade request.  Returns 0 or an
 * error with |tcp| still the caller's. */
int bindings_accept(bindings *b, uv_tcp_t *tcp, const char *peer,
                       const uint8_t *pre, size_t prelen);

typedef enum bindings_find {
  BINDINGS_NONE = 0, /* not bound here */
  BINDINGS_LIVE,     /* bound to a live link: *ptl */
  BINDINGS_GONE,     /* its link dropped less than gone_grace ago */
  BINDINGS_MOVING,   /* draining: its client was told to move, no new
                        stream opens on its link (*ptl set all the same) */
} bindings_find;
bindings_find bindings_lookup(bindings *b, const char *name,
                                    tlink **ptl);

/* Opens a stream on |tl| for |s| (meta: the OPEN metadata).  Returns 0 or
 * a mux error (WR_ERR_LIMIT, WR_ERR_CLOSED). */
int tstream_open(tstream *s, tlink *tl, const uint8_t *meta,
                    size_t len);
/*
 * Holds |s| for |name|, whose binding is GONE (its link dropped; the
 * client may come back here): when the client re-binds within
 * BINDINGS_HOLD_MS, |s| opens on its new link and `writable` comes;
 * else (the hold or the grace ends, the binding is released or evicted)
 * `gone` comes, and the visitor gets its 502 then.  Meanwhile writes
 * take nothing (0), a FIN is remembered, detach lets go.  Returns 0,
 * WR_ERR_NOTFOUND (|name| is not GONE here) or WR_ERR_LIMIT (too many
 * held: BINDINGS_HOLD_MAX per name, BINDINGS_HOLD_TOTAL in all).
 */
#define BINDINGS_HOLD_MS 2000
#define BINDINGS_HOLD_MAX 64
#define BINDINGS_HOLD_TOTAL 1024
int tstream_wait(tstream *s, bindings *b, const char *name);

/* Stream operations; each schedules the link's output.  No-ops (0) once
 * the stream is gone (write: 0 while held). */
wr_ssize tstream_write(tstream *s, const uint8_t *data, size_t len);
void tstream_consume(tstream *s, size_t n);
void tstream_fin(tstream *s);
/* Detaches |s| (no event comes for it afterwards); |reset|: with a
 * WR_MUX_RST_CANCEL to the client. */
void tstream_detach(tstream *s, int reset);

/* |name|'s entry is GONE here and another node serves it now: forget it
 * (the routes hook `unbound` runs).  1 when it did.  Not from inside a
 * routes hook (it asks lookup_remote). */
int bindings_recheck(bindings *b, const char *name);
/* 1 when |name| has a GONE entry here (a table read only: safe anywhere). */
int bindings_is_gone(bindings *b, const char *name);

int bindings_evict(bindings *b, const char *name,
                      const uint8_t session[16], int reason);
void bindings_foreach(const bindings *b,
                         void (*fn)(const wr_tunnel_info *t, void *ud),
                         void *ud);
size_t bindings_count(const bindings *b);
/* Tunnel links open (bound or not yet). */
size_t bindings_links(const bindings *b);
/* GOAWAY to each tunnel client once its link carries no stream (and
 * Binds refused from now on); docs/DEPLOY.md. */
void bindings_drain(bindings *b);
/* Bound links a drain still waits for: not told to move yet, still
 * carrying streams, or told less than |grace_ms| ago (a client with other
 * nodes to go to binds there and then closes this link; one that has
 * nowhere else to go keeps it until the node closes it). */
size_t bindings_unmoved(const bindings *b, uint64_t grace_ms);
/* Links still waiting for an idle moment take no new streams from now on
 * (their names answer MOVING), so they become idle and get their GOAWAY. */
void bindings_drain_hard(bindings *b);
/* Closes every link and the sweep timer; |done| runs once all closed. */
void bindings_stop(bindings *b, void (*done)(void *ud), void *ud);

#endif
