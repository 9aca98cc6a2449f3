/*
 * The owner's side of node-to-node links (src/proxy/nodeserve.c,
 * docs/NODELINK.md), internal to the proxy module: it takes the sockets
 * that asked for `Upgrade: warren-node/1` as links (Noise NKpsk0: the
 * dialer must hold the cluster secret), and relays each stream they open
 * into a new stream on the local tunnel of the name its ForwardOpen
 * names, as a byte splice with credit passed through both ways.
 */
#ifndef WARREN_PROXY_NODESERVE_H
#define WARREN_PROXY_NODESERVE_H

#include "bindings.h"

typedef struct nodesrv nodesrv;

typedef struct nodesrv_config {
  bindings *bindings;         /* where names are bound here */
  uint8_t fleet_priv[32];
  uint8_t psk[32];
  /* "is |name| owned by another node?" (the ingress's lookup_remote):
   * answers MOVED rather than NO_ROUTE.  May be NULL. */
  int (*lookup_remote)(void *ud, const char *name, char *owner, size_t cap);
  void *routes_ud;
  uint64_t *m_bad;               /* failed handshakes, bad OPENs; may be NULL */
  int64_t *g_links, *g_relays;   /* gauges: inbound links, relayed streams;
                                    may be NULL */
} nodesrv_config;

int nodesrv_new(nodesrv **ps, uv_loop_t *loop,
                   const nodesrv_config *cfg);
/* Takes over |tcp| (reading stopped) after the Upgrade request: answers
 * 101 and starts the link.  Returns 0 or an error with |tcp| still the
 * caller's. */
int nodesrv_accept(nodesrv *s, uv_tcp_t *tcp, const char *peer,
                      const uint8_t *pre, size_t prelen);
/* Links now, and relayed streams now (metrics, tests). */
size_t nodesrv_links(const nodesrv *s);
size_t nodesrv_streams(const nodesrv *s);
/* Sends GOAWAY on every link (dialers move to a fresh link). */
void nodesrv_drain(nodesrv *s);
/* Closes every link; |done| runs once all are closed. */
void nodesrv_stop(nodesrv *s, void (*done)(void *ud), void *ud);
void nodesrv_del(nodesrv *s);

#endif
