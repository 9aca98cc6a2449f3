/*
 * Outbound node-to-node links (src/proxy/nodepool.c, docs/NODELINK.md),
 * internal to the proxy module: one pooled, persistent link per owner
 * node that has traffic, dialed on first need at the owner's data address
 * (GET /_warren/node, Upgrade: warren-node/1, then Noise NKpsk0 and the
 * same records and mux as tunnels), kept while streams use it, closed
 * after idle_ms without any, and rotated (GOAWAY, a fresh link for new
 * streams) when the owner drains or long before stream ids could run out.
 *
 * Streams (nstream) are embedded in whoever opens them (up_nodelink.c);
 * a stream opened while its link is still being dialed waits, and opens
 * once the handshake is done.  Events come back through nstream_events,
 * after the link's mux call returned (link.h), and only while s->pl is
 * set.
 */
#ifndef WARREN_PROXY_NODEPOOL_H
#define WARREN_PROXY_NODEPOOL_H

#include <uv.h>

#include "warren/forward.h"
#include "warren/link.h"

typedef struct nodepool nodepool;
typedef struct plink plink;

typedef struct nstream {
  plink *pl;          /* NULL before open and once gone */
  uint32_t sid;          /* valid once opened */
  int opened;            /* 0: waiting for the link's handshake */
  int fin_pending;       /* fin asked while waiting */
  uint8_t *meta;         /* the OPEN metadata, kept while waiting */
  size_t metalen;
  struct nstream *prev, *next; /* on pl's waiting or open list */
  char moved_to[WR_FWD_OWNER_MAX]; /* the owner's hint before a MOVED
                                      reset ("" without one) */
} nstream;

typedef struct nstream_events {
  /* |buf| (wr_link_buf_new) is handed over; its credit comes back with
   * nstream_consume. */
  void (*data)(nstream *s, uint8_t *buf, size_t len);
  void (*fin)(nstream *s);
  /* The stream closed: |code| < 0 after both FINs, else the RST code
   * (WR_MUX_RST_*), |by_peer| when the owner sent it. */
  void (*closed)(nstream *s, int64_t code, int by_peer);
  /* Credit came back, or the stream just opened (a waiting stream's
   * writes returned 0 until now). */
  void (*writable)(nstream *s);
  /* The link dropped, or could not be made.  |sent| 0: the stream never
   * opened, so none of its bytes left this node. */
  void (*gone)(nstream *s, int sent);
} nstream_events;

typedef struct nodepool_config {
  uint8_t fleet_pub[32];
  uint8_t psk[32];
  const nstream_events *ev;
  uint64_t idle_ms;      /* close a link this long without streams */
  uint64_t dial_ms;      /* connect + upgrade must finish within this */
  int64_t *g_links;      /* gauge: outbound links (dialing or up); may be
                            NULL */
  uint64_t *m_dial_failed; /* dials that failed; may be NULL */
  uint32_t link_window;  /* our receive window per link (responses
                            coming back); 0 = nodelink_mux_config's */
  uint32_t rotate_at;    /* streams after which a link is drained with
                            GOAWAY and replaced; 0 = 2^30 (tests set
                            it low) */
} nodepool_config;

int nodepool_new(nodepool **pp, uv_loop_t *loop,
                    const nodepool_config *cfg);
/* Closes every link (their streams get `gone`); |done| runs once every
 * handle is closed.  Then nodepool_del frees it. */
void nodepool_stop(nodepool *p, void (*done)(void *ud), void *ud);
void nodepool_del(nodepool *p);
/* Membership declared |owner| dead: its links (dialing or up) close and
 * their streams end at once.  Returns how many links there were. */
size_t nodepool_peer_dead(nodepool *p, const char *owner);
/* Links now (dialing or up), for metrics and tests. */
size_t nodepool_links(const nodepool *p);
/* Links dialed since the pool started (tests: rotation, idle close). */
uint64_t nodepool_dials(const nodepool *p);
/* 1 when the last dial to |owner| failed less than NODEPOOL_FAIL_MEMORY_MS
 * ago (and none succeeded since): a name with other owners is better sent
 * to them (an owner killed is listed until swim declares it dead, and
 * each dial to it costs a connect attempt, up to dial_ms for a host that
 * does not answer). */
#define NODEPOOL_FAIL_MEMORY_MS 3000
int nodepool_failed_recently(const nodepool *p, const char *owner);

/* Opens |s| on the link to node |owner| at |addr| ("IP:PORT"), dialing it
 * if there is none.  |meta| is copied.  Returns 0 (the stream may still
 * wait for the link: writes take 0 bytes until `writable`), WR_ERR_INVAL
 * (bad address), WR_ERR_NOMEM. */
int nstream_open(nstream *s, nodepool *p, const char *owner,
                    const char *addr, const uint8_t *meta, size_t len);
wr_ssize nstream_write(nstream *s, const uint8_t *data, size_t len);
void nstream_consume(nstream *s, size_t n);
void nstream_fin(nstream *s);
/* 0 once |s|'s link drains (GOAWAY from the owner, rotation) or is gone:
 * the stream goes on, but no new request should follow on it. */
int nstream_reusable(const nstream *s);
/* No event comes for |s| afterwards; |reset|: RST CANCEL to the owner. */
void nstream_detach(nstream *s, int reset);

/* The node-link mux settings, the same at both ends (nodepool.c argues
 * the numbers). */
void nodelink_mux_config(wr_mux_config *cfg, int initiator);

#endif
