/*
 * The node's public listener: visitors and tunnel clients on one port
 * (see ingress.h).  Protocol decisions come from head.c (what to accept,
 * how to rewrite, where messages end) and the mux (credit); this file
 * moves bytes for visitor connections (vconn), each with at most one
 * stream to a tunnel.  Tunnel clients' links, the table name -> link and
 * the routes hooks are bindings.c's: a request for a tunnel upgrade hands
 * its socket there, and a visitor's request head asks it where the name
 * is (bound here, owned by another node, or nowhere).
 *
 * Visitor -> tunnel: parse, and write each event's span into the stream
 * within credit.  When the stream takes less, the rest of the span (it
 * points into the parser's head buffer or our read buffer, both stable
 * until the next feed) and the unparsed input wait, and reading stops
 * until stream_writable.  The unparsed input waits the same way, before
 * the next head, while PIPELINE_MAX responses are owed, until one ends.
 *
 * Tunnel -> visitor: each DATA buffer is parsed (to find response ends,
 * 101 upgrades, garbage); response heads are replaced by their rewritten
 * form (hop-by-hop fields stripped, our Connection semantics added, see
 * head.c), body bytes are written as they came; its credit returns in the
 * write callback.
 *
 * One timer per visitor; timer.c decides what it waits for (the side
 * that owes bytes: the visitor's head or body, the origin's answer, the
 * origin taking the body, or keep-alive idleness) and until when; this
 * file reports events to it and arms the uv_timer_t at its deadline
 * (docs/HTTP.md, "Timers").
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <sodium.h>

#include "bindings.h"
#include "up_tunnel.h"
#include "warren/control.h"
#include "warren/err.h"
#include "warren/http.h"
#include "warren/http_timer.h"
#include "warren/ingress.h"
#include "warren/link.h"
#include "warren/log.h"
#include "warren/names.h"
#include "warren/proxyproto.h"

#define VBUF_CAP 65536
#define HEAD_MAX 32768
/* Response bytes for one visitor are gathered over a loop turn and
 * written with one uv_write (strace showed one write() per 16 KiB frame
 * before: 73 syscalls per MiB). */
#define VBATCH 64
#define TUNNEL_PATH "GET /_warren/tunnel "
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

typedef struct vconn vconn;

struct vconn {
  wr_ingress *ig;
  uv_tcp_t *tcp;
  uv_timer_t timer;
  wr_http_timer wt;            /* what the timer waits for */
  wr_http_req *req;
  wr_http_resp *resp;
  wr_fwd_upstream up;          /* where requests go (up.ops NULL:
                                  none); forward.h */
  uint32_t up_gen;             /* bumps with each upstream opened: a
                                  write's credit belongs to one */
  wr_up_tunnel ut;             /* up.up when it is a local tunnel */
  char name[WR_CONTROL_NAME_MAX + 1];
  char peer[64];
  char reqid[80];
  uint8_t *rbuf;
  size_t in_off, in_len;       /* unparsed input waiting in rbuf */
  int expect_proxy;            /* a PROXY header must come first */
  size_t pp_len;               /* bytes of it read so far */
  const uint8_t *span;         /* output waiting for credit */
  size_t span_len;
  int reading, read_eof, closing, close_after_write, handed_off, no_more;
  int tunnel_upgrade, upgraded, req_upgrade, last_head_final;
  int in_req;                  /* a request head went, its END not yet */
  int paused;                  /* reads stopped at PIPELINE_MAX owed
                                  since they last started (one count) */
  int resp_started;            /* a final response head went out and its
                                  response has not ended */
  int answered;                /* the connection is winding down: only
                                  what is queued (our error page, the
                                  last response) is written, and input is
                                  read and dropped */
  int lingering;               /* ... all written, FIN sent, waiting */
  uint64_t linger_end;
  uv_shutdown_t shut;
  int writes;                  /* uv_writes in flight */
  uv_buf_t obufs[VBATCH];      /* response bytes gathered this loop turn */
  unsigned nobufs;
  size_t ocredit;
  vconn *dprev, *dnext;        /* in ig->dirty while nobufs > 0 */
  int dirty;
  vconn *aprev, *anext;        /* in ig->all */
};

typedef struct vwrite {
  uv_write_t req;
  vconn *v;
  size_t credit;               /* stream bytes to consume when written */
  uint32_t up_gen;             /* the upstream |credit| belongs to */
  unsigned nbufs;
  uv_buf_t bufs[]; /* each .base from wr_link_buf_new, freed when done */
} vwrite;


/* X-Request-Id needs unpredictable bytes per request, not a syscall per
 * request: libsodium 1.0.18's randombytes_buf is one getrandom() each
 * time (~5% of the node's time at 25k req/s).  A 4 KiB pool refilled
 * from it costs one syscall per 256 ids. */
typedef struct rand_pool {
  uint8_t buf[4096];
  size_t off;
} rand_pool;

struct wr_ingress {
  uv_loop_t *loop;
  uv_tcp_t server;
  int port;
  char domain[256], node_id[128];
  wr_bindings *bindings;
  void *routes_ud;
  int (*lookup_remote)(void *ud, const char *name, char *owner_id,
                       size_t cap);
  rand_pool ids;
  uint64_t upstream_timeout, idle_timeout, head_timeout;
  uint64_t body_min_rate;
  char proxy_from[16][48];     /* peers whose connections start with a
                                  PROXY protocol header */
  int nproxy_from;
  vconn *all;
  vconn *dirty;                /* visitors with gathered response bytes */
  uv_prepare_t prep;
  int prep_closed;
  int stopping, server_closed, bindings_done;
  void (*done)(void *);
  void *done_ud;
  /* metrics */
  uint64_t *m_requests, *m_bad, *m_404, *m_408, *m_502, *m_504;
  uint64_t *m_tunnel_bad, *m_head_timeouts, *m_pipeline_pauses;
  uint64_t *m_body_rate, *m_lingers;
  /* Where lingering visitors' bytes go: libuv calls alloc_cb and read_cb
   * back to back on this one thread, so one buffer serves them all. */
  uint8_t discard[16384];
  int64_t *g_tunnels, *g_visitors;
};

static void vconn_close(vconn *v);
static void vconn_process(vconn *v);
static void vconn_on_timer(uv_timer_t *t);
static void vconn_end(vconn *v);
static void maybe_done(wr_ingress *ig);

/* ---- writing to visitors ---- */

static int writes_done(const vconn *v) {
  return v->writes == 0 && v->nobufs == 0;
}

static void vconn_on_write(uv_write_t *req, int status) {
  vwrite *w = (vwrite *)req;
  vconn *v = w->v;
  /* Credit goes back only now that the visitor's socket took the bytes:
   * this is what makes a slow visitor slow down the origin. */
  if (w->credit && v->up.ops && v->up_gen == w->up_gen)
    v->up.ops->consume(v->up.up, w->credit);
  for (unsigned i = 0; i < w->nbufs; i++)
    wr_link_buf_free((uint8_t *)w->bufs[i].base);
  free(w);
  v->writes--;
  if (v->closing) return;
  if (status < 0) {
    vconn_close(v);
    return;
  }
  if (v->close_after_write && writes_done(v)) vconn_end(v);
}

/* Takes ownership of |buf|. */
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
  v->ocredit = 0;
  undirty(v);
}

/* Writes everything gathered for |v| with one uv_write. */
static int vconn_flush(vconn *v) {
  if (v->nobufs == 0) return 0;
  unsigned n = v->nobufs;
  vwrite *w = malloc(sizeof *w + n * sizeof(uv_buf_t));
  if (!w) {
    drop_gathered(v);
    return WR_ERR_NOMEM;
  }
  w->v = v;
  w->credit = v->ocredit;
  w->up_gen = v->up_gen;
  w->nbufs = n;
  memcpy(w->bufs, v->obufs, n * sizeof(uv_buf_t));
  v->nobufs = 0;
  v->ocredit = 0;
  undirty(v);
  /* The visitor's socket usually takes a small response at once: then
   * there is no write callback to wait for (wr_uv_write_now), and the
   * credit goes back here.  A connection closing after this write keeps
   * the callback path, which ends it (vconn_end). */
  int rv;
  if (v->close_after_write) {
    rv = uv_write(&w->req, (uv_stream_t *)v->tcp, w->bufs, n, vconn_on_write);
  } else {
    uv_buf_t left[VBATCH];
    memcpy(left, w->bufs, n * sizeof(uv_buf_t));
    rv = wr_uv_write_now(&w->req, (uv_stream_t *)v->tcp, left, n,
                         vconn_on_write);
  }
  if (rv != 0) {
    if (rv > 0 && w->credit && v->up.ops)
      v->up.ops->consume(v->up.up, w->credit);
    for (unsigned i = 0; i < n; i++)
      wr_link_buf_free((uint8_t *)w->bufs[i].base);
    free(w);
    return rv < 0 ? rv : 0;
  }
  v->writes++;
  return 0;
}

static void on_ingress_prepare(uv_prepare_t *p) {
  wr_ingress *ig = p->data;
  while (ig->dirty) {
    vconn *v = ig->dirty;
    if (vconn_flush(v) != 0) vconn_close(v);
  }
  uv_prepare_stop(p);
}

/* Gathers |buf| (ownership taken) for this loop turn's write. */
static int vconn_gather(vconn *v, uint8_t *buf, size_t len, size_t credit) {
  if (v->nobufs == VBATCH) {
    int rv = vconn_flush(v);
    if (rv != 0) {
      wr_link_buf_free(buf);
      return rv;
    }
  }
  v->obufs[v->nobufs++] = uv_buf_init((char *)buf, (unsigned)len);
  v->ocredit += credit;
  if (!v->dirty) {
    v->dirty = 1;
    v->dprev = NULL;
    v->dnext = v->ig->dirty;
    if (v->ig->dirty) v->ig->dirty->dprev = v;
    v->ig->dirty = v;
    uv_prepare_start(&v->ig->prep, on_ingress_prepare);
  }
  return 0;
}

/* Writes |buf| (ownership taken) now, after anything gathered. */
static int vconn_write(vconn *v, uint8_t *buf, size_t len, size_t credit) {
  int rv = vconn_gather(v, buf, len, credit);
  return rv ? rv : vconn_flush(v);
}

static void detach_stream(vconn *v, int reset) {
  /* Gathered bytes carry this stream's credit: send them first. */
  if (v->nobufs && !v->closing) vconn_flush(v);
  if (!v->up.ops) return;
  v->up.ops->detach(v->up.up, reset);
  v->up.ops = NULL;
}

static void stop_reading(vconn *v) {
  if (v->reading) uv_read_stop((uv_stream_t *)v->tcp);
  v->reading = 0;
}

static void vconn_on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf);
static void vconn_on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf);

/* From here on only what is queued is written (then vconn_end), and the
 * visitor's input is read and dropped rather than left unread: a visitor
 * blocked writing its request would never read our answer, and we would
 * be waiting for its reads (a deadlock until the timer below). */
static void wind_down(vconn *v) {
  detach_stream(v, 1);
  v->close_after_write = 1;
  v->answered = 1;
  v->span = NULL;
  v->span_len = 0;
  v->in_len = 0;
  if (v->closing) return;
  if (!v->reading && !v->read_eof && !v->handed_off) {
    v->reading = 1;
    uv_read_start((uv_stream_t *)v->tcp, vconn_on_alloc, vconn_on_read);
  }
  /* The timer now only bounds how long the queued bytes may take to be
   * written (a visitor that never reads them). */
  uv_timer_start(&v->timer, vconn_on_timer, v->ig->idle_timeout, 0);
}

static void on_linger_shutdown(uv_shutdown_t *req, int status) {
  /* UV_ECANCELED: the connection closed meanwhile (vconn_close); the
   * handle's data is still valid, as the close callback comes after. */
  vconn *v = req->handle->data;
  if (status < 0 && status != UV_ECANCELED && !v->closing) vconn_close(v);
}

/* Everything queued was written: close, or linger first when the visitor
 * may still be sending (it was answered by us, or mid-request). */
static void vconn_end(vconn *v) {
  if (v->closing || v->lingering) return;
  int sending = v->answered || (v->in_req && !v->upgraded &&
                                !v->tunnel_upgrade);
  if (!sending || v->read_eof || v->handed_off) {
    vconn_close(v);
    return;
  }
  if (!v->answered) wind_down(v);
  if (uv_shutdown(&v->shut, (uv_stream_t *)v->tcp, on_linger_shutdown) != 0) {
    vconn_close(v);
    return;
  }
  v->lingering = 1;
  v->linger_end = uv_now(v->ig->loop) + LINGER_MS;
  if (v->ig->m_lingers) (*v->ig->m_lingers)++;
  uv_timer_start(&v->timer, vconn_on_timer, LINGER_QUIET_MS, 0);
}

/* Bytes from a winding-down visitor were dropped. */
static void linger_read(vconn *v, ssize_t n) {
  if (n < 0) {
    /* Its EOF (or an error): nothing more will come.  Queued bytes may
     * still go out after an EOF; vconn_end then closes. */
    stop_reading(v);
    v->read_eof = 1;
    if (n != UV_EOF || writes_done(v)) vconn_close(v);
    return;
  }
  if (!v->lingering) return;
  uint64_t now = uv_now(v->ig->loop);
  if (now >= v->linger_end) {
    vconn_close(v);
    return;
  }
  uint64_t left = v->linger_end - now;
  uv_timer_start(&v->timer, vconn_on_timer,
                 left < LINGER_QUIET_MS ? left : LINGER_QUIET_MS, 0);
}

/* Answers with an error page (404 when |status| is 404: it names |host|)
 * and closes after it is written, lingering (vconn_end).  Nothing more is
 * parsed: the stream to the origin, if any, is reset. */
static void vconn_answer(vconn *v, int status, const char *detail,
                         const char *host, const char *name) {
  uint64_t *counter = status == 404   ? v->ig->m_404
                      : status == 408 ? v->ig->m_408
                      : status == 502 ? v->ig->m_502
                      : status == 504 ? v->ig->m_504
                                      : NULL;
  if (counter) (*counter)++;
  wind_down(v);
  uint8_t *page = wr_link_buf_new(WR_HTTP_ERROR_PAGE_MAX);
  if (!page) {
    vconn_close(v);
    return;
  }
  const char *rid = v->reqid[0] ? v->reqid : NULL;
  wr_ssize n =
      status == 404
          ? wr_http_not_found_page(page, WR_HTTP_ERROR_PAGE_MAX, host, name,
                                   v->ig->domain, rid)
          : wr_http_error_page(page, WR_HTTP_ERROR_PAGE_MAX, status, detail,
                               rid);
  if (n < 0) wr_link_buf_free(page);
  if (n < 0 || vconn_write(v, page, (size_t)n, 0) != 0) vconn_close(v);
}

static void vconn_error(vconn *v, int status, const char *detail) {
  vconn_answer(v, status, detail, NULL, NULL);
}

static void vconn_not_found(vconn *v, const char *host, const char *name) {
  vconn_answer(v, 404, NULL, host, name);
}

/* ---- timers ---- */

/* Arms the timer at the deadline timer.c gives for the current wait.  A
 * timer already armed at or before that deadline is left alone: it fires
 * early, finds nothing expired and re-arms (vconn_on_timer).  A keep-alive
 * request moves the deadline later two or three times (idle, origin,
 * idle); re-arming each time was a timer-heap removal and insertion per
 * move (uv_timer_stop 1.7 % of the node's samples at 1 KiB). */
static void rearm(vconn *v) {
  if (v->closing || v->answered) return;
  wr_tstamp dl = wr_http_timer_deadline(&v->wt);
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

static void vconn_on_timer(uv_timer_t *t) {
  vconn *v = t->data;
  if (v->closing) return;
  if (v->answered) {
    vconn_close(v);
    return;
  }
  char d[200];
  switch (wr_http_timer_expired(&v->wt, uv_now(v->ig->loop))) {
  case WR_HTTP_WAIT_NONE:
    rearm(v); /* early, or the wait changed meanwhile */
    return;
  case WR_HTTP_WAIT_ORIGIN:
    snprintf(d, sizeof d,
             "the local server behind tunnel '%.63s' did not answer within "
             "%llu ms",
             v->name, (unsigned long long)v->ig->upstream_timeout);
    vconn_error(v, 504, d);
    return;
  case WR_HTTP_WAIT_SEND:
    snprintf(d, sizeof d,
             "the local server behind tunnel '%.63s' did not read the request "
             "for %llu ms",
             v->name, (unsigned long long)v->ig->upstream_timeout);
    vconn_error(v, 504, d);
    return;
  case WR_HTTP_WAIT_BODY: {
    int slow = wr_http_timer_too_slow(&v->wt, uv_now(v->ig->loop));
    if (slow && v->ig->m_body_rate) (*v->ig->m_body_rate)++;
    if (wr_http_resp_owed(v->resp) == 0 || v->resp_started) {
      /* The origin answered this request already (an early 413): a 408
       * now would be a response nobody asked for.  Or the request was
       * pipelined behind a response still streaming: a 408 would land
       * inside that response, and the origin has this request's head on
       * the same stream, so the stream is reset and the visitor gets
       * what is queued, then our FIN. */
      WR_LOG_DEBUGF("ingress", "body_timeout_no_page",
                    "peer=%s name=%s slow=%d", v->peer, v->name, slow);
      wind_down(v);
      if (writes_done(v)) vconn_end(v);
      return;
    }
    if (slow) {
      WR_LOG_DEBUGF("ingress", "body_too_slow", "peer=%s name=%s", v->peer,
                    v->name);
      snprintf(d, sizeof d,
               "the request body arrived slower than %llu bytes/s",
               (unsigned long long)v->ig->body_min_rate);
      vconn_error(v, 408, d);
      return;
    }
    vconn_error(v, 408, "the request body did not arrive in time");
    return;
  }
  case WR_HTTP_WAIT_HEAD:
  case WR_HTTP_WAIT_IDLE:
    /* No response is in progress in these states, so a 408 cannot land
     * inside one.  A connection that never sent a byte is closed quietly
     * and not counted: browsers open spare connections they may not use. */
    if (wr_http_req_buffered(v->req) > 0 ||
        (v->in_len > 0 && !v->expect_proxy)) {
      if (v->ig->m_head_timeouts) (*v->ig->m_head_timeouts)++;
      WR_LOG_DEBUGF("ingress", "head_timeout", "peer=%s buffered=%zu",
                    v->peer, wr_http_req_buffered(v->req) + v->in_len);
      vconn_error(v, 408, "the request head did not arrive in time");
    } else {
      vconn_close(v); /* idle keep-alive */
    }
    return;
  }
}

/* ---- tunnel links (node side of a client) ---- */

void wr_ingress_url(const wr_ingress *ig, const char *name, char *out,
                    size_t cap) {
  if (ig->port == 80)
    snprintf(out, cap, "http://%s.%s", name, ig->domain);
  else snprintf(out, cap, "http://%s.%s:%d", name, ig->domain, ig->port);
}

/* Stream events on a tunnel link: the visitor side of each stream. */

static void vconn_stream_ended(vconn *v, int clean, const char *why) {
  /* The origin side is done.  If a response is owed and none started,
   * the visitor gets a 502 saying why; otherwise close after flushing. */
  if (v->closing) return;
  if (wr_http_resp_pending(v->resp) && !v->resp_started) {
    vconn_error(v, 502, why);
    return;
  }
  (void)clean;
  detach_stream(v, 1);
  v->close_after_write = 1;
  if (writes_done(v)) vconn_end(v);
}

/* Appends to a growing output buffer (wr_link_buf_new, as everything the
 * visitor is written from); -1 when out of memory. */
static int out_add(uint8_t **o, size_t *on, size_t *cap, const uint8_t *p,
                   size_t n) {
  if (*on + n > *cap) {
    size_t c = *cap ? *cap : 1024;
    while (c < *on + n) c *= 2;
    uint8_t *b = wr_link_buf_new(c);
    if (!b) return -1;
    if (*on) memcpy(b, *o, *on);
    wr_link_buf_free(*o);
    *o = b;
    *cap = c;
  }
  memcpy(*o + *on, p, n);
  *on += n;
  return 0;
}

/* ---- the upstream's events (forward.h's wr_fwd_sink) ---- */

static void up_on_data(void *owner, uint8_t *buf, size_t len) {
  vconn *v = owner;
  if (v->closing) { /* not reached: a closing vconn has detached */
    if (v->up.ops) v->up.ops->consume(v->up.up, len);
    wr_link_buf_free(buf);
    return;
  }
  wr_http_timer_resp_bytes(&v->wt, uv_now(v->ig->loop));
  /* Parse to learn where responses end and to rewrite their heads
   * (hop-by-hop fields out, our Connection in); bodies pass unchanged.
   * While the output is a prefix of |buf| (body bytes only: most of any
   * large response) |buf| itself is forwarded, |fwd| bytes of it; a head
   * switches to composing the output in |o|. */
  uint8_t *o = NULL;
  size_t on = 0, ocap = 0, fwd = 0, off = 0;
  int bad = 0;
  for (;;) {
    wr_http_ev ev;
    size_t at = off;
    wr_ssize n = wr_http_resp_feed(v->resp, buf + off, len - off, &ev);
    if (n < 0) {
      bad = 1;
      break;
    }
    off += (size_t)n;
    if (ev.type == WR_HTTP_EV_NONE) break;
    if ((ev.type == WR_HTTP_EV_BODY || ev.type == WR_HTTP_EV_RAW) && !o &&
        at == fwd) {
      fwd += ev.len;
      continue;
    }
    if (ev.type == WR_HTTP_EV_BODY || ev.type == WR_HTTP_EV_RAW ||
        ev.type == WR_HTTP_EV_HEAD) {
      /* Composing: what went through so far, then this event's bytes.
       * Sized for the whole buffer plus this head, which is what the
       * common case (one response head and its body) needs. */
      if (!o) {
        ocap = len + ev.len + 64;
        o = wr_link_buf_new(ocap);
        if (!o || out_add(&o, &on, &ocap, buf, fwd) != 0) {
          bad = 1;
          break;
        }
      }
      if (out_add(&o, &on, &ocap, ev.data, ev.len) != 0) {
        bad = 1;
        break;
      }
    }
    if (ev.type == WR_HTTP_EV_HEAD) {
      /* 1xx heads (100 Continue, 103) are interim: a 502 may still follow
       * them as the final answer. */
      v->last_head_final = ev.status >= 200 || ev.status == 101;
      if (v->last_head_final) v->resp_started = 1;
      wr_http_timer_resp_head(&v->wt, ev.status, uv_now(v->ig->loop));
      if (v->req_upgrade && v->last_head_final) {
        if (ev.status != 101) wr_http_req_upgrade_refused(v->req);
        v->req_upgrade = 0;
      }
    } else if (ev.type == WR_HTTP_EV_END) {
      wr_http_timer_resp_end(&v->wt, v->last_head_final, uv_now(v->ig->loop));
      if (v->last_head_final) {
        v->resp_started = 0;
        /* The response's keep_alive says whether the visitor's connection
         * ends after it (the origin's close, or the visitor's own
         * "Connection: close", which the response head now announces);
         * the second test is the same rule seen from the request side. */
        if (!ev.keep_alive ||
            (v->no_more && !wr_http_resp_pending(v->resp)))
          v->close_after_write = 1;
      }
    } else if (ev.type == WR_HTTP_EV_UPGRADE) {
      v->upgraded = 1;
      wr_http_timer_upgraded(&v->wt, uv_now(v->ig->loop));
    } else if (ev.type == WR_HTTP_EV_ERROR) {
      bad = 1;
      break;
    }
  }
  if (bad) {
    wr_link_buf_free(o);
    wr_link_buf_free(buf);
    v->up.ops->consume(v->up.up, len);
    WR_LOG_WARNF("ingress", "bad_response", "name=%s", v->name);
    if (!v->resp_started)
      vconn_error(v, 502,
                  "the local server sent a response warren could not parse");
    else vconn_close(v);
    return;
  }
  if (o) {
    wr_link_buf_free(buf);
    buf = o;
  } else {
    on = fwd; /* the rest, if any, is a head still incomplete */
  }
  if (on == 0) {
    /* Nothing to write yet (part of a head): the parser holds the bytes,
     * bounded by its max_head, so the credit can go back now. */
    wr_link_buf_free(buf);
    v->up.ops->consume(v->up.up, len);
  } else if (vconn_gather(v, buf, on, len) != 0) {
    vconn_close(v);
    return;
  }
  rearm(v);
  /* Responses ended and the visitor paused for a pipelining limit. */
  if (!v->reading && !v->closing && !v->close_after_write && !v->span)
    vconn_process(v);
}

static void up_on_fin(void *owner) {
  vconn *v = owner;
  if (v->closing) return;
  int done = wr_http_resp_eof(v->resp);
  if (v->upgraded) {
    /* Raw stream: the origin closed its half; so do we. */
    detach_stream(v, 0);
    v->close_after_write = 1;
    if (writes_done(v)) vconn_close(v);
    return;
  }
  char why[200];
  snprintf(why, sizeof why,
           "the local server behind tunnel '%.63s' closed the connection "
           "without a complete response",
           v->name);
  vconn_stream_ended(v, done, why);
}

static void up_on_ended(void *owner, wr_fwd_end end) {
  vconn *v = owner;
  /* The upstream detached itself, so nothing resets it again. */
  v->up.ops = NULL;
  if (v->closing) return;
  if (end == WR_FWD_END_GONE) {
    char why[200];
    snprintf(why, sizeof why,
             "the tunnel '%.63s' went away while the request was in flight",
             v->name);
    vconn_stream_ended(v, 0, why);
    return;
  }
  char why[240];
  if (end == WR_FWD_END_REFUSED)
    snprintf(why, sizeof why,
             "tunnel '%.63s' is up, but the local server behind it refused the "
             "connection (is it running?)",
             v->name);
  else
    snprintf(why, sizeof why, "the tunnel '%.63s' closed the stream", v->name);
  if (end == WR_FWD_END_DONE) {
    /* Both sides sent FIN: the normal end of a close-delimited response
     * or an upgraded stream. */
    v->close_after_write = 1;
    if (writes_done(v)) vconn_end(v);
    return;
  }
  if (wr_http_resp_pending(v->resp) && !v->resp_started)
    vconn_error(v, 502, why);
  else vconn_close(v);
}

static void up_on_writable(void *owner) {
  vconn *v = owner;
  if (!v->closing) vconn_process(v);
}

static const wr_fwd_sink up_sink = {
    .data = up_on_data,
    .fin = up_on_fin,
    .ended = up_on_ended,
    .writable = up_on_writable,
};

static void pooled_rand(uint8_t *dst, size_t len, void *ud) {
  rand_pool *p = ud;
  if (len > sizeof p->buf) {
    randombytes_buf(dst, len);
    return;
  }
  if (p->off + len > sizeof p->buf) {
    randombytes_buf(p->buf, sizeof p->buf);
    p->off = 0;
  }
  memcpy(dst, p->buf + p->off, len);
  sodium_memzero(p->buf + p->off, len); /* each byte is handed out once */
  p->off += len;
}

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
  wr_http_req_del(v->req);
  wr_http_resp_del(v->resp);
  free(v->rbuf);
  if (v->aprev) v->aprev->anext = v->anext;
  else ig->all = v->anext;
  if (v->anext) v->anext->aprev = v->aprev;
  if (ig->g_visitors) (*ig->g_visitors)--;
  free(v);
  maybe_done(ig);
}

static void vconn_close(vconn *v) {
  if (v->closing) return;
  v->closing = 1;
  drop_gathered(v);
  detach_stream(v, 1);
  uv_close((uv_handle_t *)&v->timer, vconn_free_cb);
  if (v->handed_off) {
    /* The socket belongs to a tunnel link now. */
    v->tcp = NULL;
    return;
  }
  uv_close((uv_handle_t *)v->tcp, vconn_free_cb);
}

static int head_is_tunnel(const wr_http_ev *ev) {
  if (!ev->upgrade || ev->len < sizeof TUNNEL_PATH - 1 ||
      memcmp(ev->data, TUNNEL_PATH, sizeof TUNNEL_PATH - 1) != 0)
    return 0;
  static const char needle[] = "\nupgrade: warren/1\r";
  size_t nl = sizeof needle - 1;
  for (size_t i = 0; i + nl <= ev->len; i++)
    if (strncasecmp((const char *)ev->data + i, needle, nl) == 0) return 1;
  return 0;
}

/* The request was a tunnel client's Upgrade: its socket becomes a
 * tunnel link (bindings.c), with the bytes read past the request. */
static void hand_off_tunnel(vconn *v) {
  if (wr_bindings_accept(v->ig->bindings, v->tcp, v->peer,
                         v->rbuf + v->in_off, v->in_len) != 0) {
    vconn_close(v);
    return;
  }
  v->handed_off = 1;
  v->in_len = 0;
  vconn_close(v);
}

/* A request head: route it.  Returns 0 to go on forwarding. */
static int on_request_head(vconn *v, const wr_http_ev *ev) {
  wr_ingress *ig = v->ig;
  if (ig->m_requests) (*ig->m_requests)++;
  snprintf(v->reqid, sizeof v->reqid, "%s",
           ev->request_id ? ev->request_id : "");
  if (!v->up.ops && !v->resp_started && head_is_tunnel(ev)) {
    v->tunnel_upgrade = 1;
    return 0;
  }
  if (!ev->name) {
    vconn_not_found(v, ev->host ? ev->host : "", NULL);
    return -1;
  }
  if (v->up.ops && strcmp(v->name, ev->name) != 0) {
    /* HTTP/1.1 connections are per origin; a client that reuses one for
     * another name is told so rather than mixing two tunnels. */
    vconn_error(v, 421,
                "this connection already serves another name; open a new "
                "connection");
    return -1;
  }
  if (!v->up.ops) {
    /* Route: bound here -> a stream on the client's tunnel; owned by
     * another live node -> (not built yet) 502; else 404. */
    wr_tlink *tl;
    wr_bindings_find f = wr_bindings_lookup(ig->bindings, ev->name, &tl);
    snprintf(v->name, sizeof v->name, "%s", ev->name);
    if (f == WR_BINDINGS_GONE) {
      char d[240];
      snprintf(d, sizeof d,
               "the tunnel '%.63s' is disconnected; its client is "
               "reconnecting",
               ev->name);
      vconn_error(v, 502, d);
      return -1;
    }
    char owner[65];
    if (f == WR_BINDINGS_NONE && ig->lookup_remote &&
        ig->lookup_remote(ig->routes_ud, ev->name, owner, sizeof owner) ==
            1) {
      char d[240];
      owner[sizeof owner - 1] = 0;
      snprintf(d, sizeof d,
               "%.63s is served by node %.64s; forwarding between nodes is "
               "not built yet",
               ev->name, owner);
      vconn_error(v, 502, d);
      return -1;
    }
    if (f == WR_BINDINGS_NONE) {
      vconn_not_found(v, ev->host ? ev->host : ev->name, ev->name);
      return -1;
    }
    wr_fwd_open meta = {
        .name = ev->name,
        .host = ev->host,
        .request_id = ev->request_id,
        .visitor_addr = v->peer,
        .scheme = "http",
        .hops = 0,
    };
    int rv = wr_up_tunnel_open(&v->ut, tl, &meta, &up_sink, v, &v->up);
    if (rv == 0) v->up_gen++;
    if (rv != 0) {
      char d[200];
      snprintf(d, sizeof d, "tunnel '%.63s' cannot take more connections (%s)",
               ev->name, wr_strerror(rv));
      vconn_error(v, 502, d);
      return -1;
    }
  }
  /* process() pauses reading before PIPELINE_MAX responses are owed, so
   * only running out of memory fails here. */
  int rv = wr_http_resp_expect(v->resp, ev->resp_flags);
  if (rv != 0) {
    char d[120];
    snprintf(d, sizeof d, "cannot forward the request (%s)", wr_strerror(rv));
    vconn_error(v, 500, d);
    return -1;
  }
  v->in_req = 1;
  if (ev->upgrade) v->req_upgrade = 1;
  wr_http_timer_req_head(&v->wt, ev->expect_continue, uv_now(ig->loop));
  return 0;
}

/* Writes the pending span within credit; 1 when it all went. */
static int push_span(vconn *v) {
  if (!v->span_len) return 1;
  if (!v->up.ops) return 0;
  wr_ssize n = v->up.ops->write(v->up.up, v->span, v->span_len);
  if (n < 0) {
    vconn_close(v);
    return 0;
  }
  v->span += n;
  v->span_len -= (size_t)n;
  wr_http_timer_req_sent(&v->wt, (size_t)n, v->span_len > 0,
                         uv_now(v->ig->loop));
  return v->span_len == 0;
}

static void vconn_on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf) {
  (void)hint;
  vconn *v = h->data;
  if (v->answered) {
    /* Nothing read from here on is parsed (and nothing still points into
     * rbuf: this is a fresh callback), so the read buffer can go. */
    free(v->rbuf);
    v->rbuf = NULL;
    v->in_off = v->in_len = 0;
    *buf = uv_buf_init((char *)v->ig->discard, sizeof v->ig->discard);
    return;
  }
  if (!v->rbuf) v->rbuf = malloc(VBUF_CAP);
  if (!v->rbuf) {
    *buf = uv_buf_init(NULL, 0);
    return;
  }
  if (v->expect_proxy) {
    *buf = uv_buf_init((char *)v->rbuf + v->pp_len,
                       (unsigned)(VBUF_CAP - v->pp_len));
    return;
  }
  *buf = uv_buf_init((char *)v->rbuf, VBUF_CAP);
}

static void start_reading(vconn *v) {
  if (!v->reading && !v->read_eof && !v->closing && !v->handed_off &&
      !v->no_more) {
    v->reading = 1;
    v->paused = 0;
    uv_read_start((uv_stream_t *)v->tcp, vconn_on_alloc, vconn_on_read);
  }
}

static void process(vconn *v);

/* Between requests with PIPELINE_MAX responses owed: the next head must
 * wait.  Only between requests, so the request in progress always
 * completes and every response owed can be answered without more input
 * from the visitor (no deadlock); an upgrade request's raw bytes wait
 * too, until its 101 (docs/HTTP.md suggests not reading there anyway). */
static int pipeline_full(const vconn *v) {
  return !v->in_req && !v->tunnel_upgrade &&
         wr_http_resp_owed(v->resp) >= PIPELINE_MAX;
}

/* Forwards what can be forwarded, then arms the timer for what is left
 * to wait for. */
static void vconn_process(vconn *v) {
  process(v);
  rearm(v);
}

static void process(vconn *v) {
  if (v->closing || v->answered) return;
  if (!push_span(v)) {
    stop_reading(v);
    return;
  }
  v->span = NULL;
  while (!v->closing) {
    if (pipeline_full(v)) {
      /* The unparsed bytes stay at rbuf + in_off (nothing reads into
       * rbuf while reading is stopped) and are parsed when a response
       * ends (tl_on_data).  Their head's deadline starts then. */
      stop_reading(v);
      if (!v->paused && v->ig->m_pipeline_pauses)
        (*v->ig->m_pipeline_pauses)++;
      v->paused = 1;
      if (v->in_len > 0)
        wr_http_timer_head_part(&v->wt, uv_now(v->ig->loop));
      return;
    }
    wr_http_ev ev;
    wr_ssize n = wr_http_req_feed(
        v->req, v->rbuf ? v->rbuf + v->in_off : NULL, v->in_len, &ev);
    if (n < 0) {
      vconn_close(v);
      return;
    }
    v->in_off += (size_t)n;
    v->in_len -= (size_t)n;
    switch (ev.type) {
    case WR_HTTP_EV_NONE:
      /* All input consumed; a head cut by the read's end starts (or
       * keeps) its deadline. */
      if (wr_http_req_buffered(v->req) > 0)
        wr_http_timer_head_part(&v->wt, uv_now(v->ig->loop));
      if (v->rbuf && !v->close_after_write) {
        free(v->rbuf);
        v->rbuf = NULL;
      }
      v->in_off = 0;
      if (!v->close_after_write) start_reading(v);
      return;
    case WR_HTTP_EV_HEAD:
      if (on_request_head(v, &ev) != 0) return;
      if (v->tunnel_upgrade) continue;
      v->span = ev.data;
      v->span_len = ev.len;
      break;
    case WR_HTTP_EV_BODY:
    case WR_HTTP_EV_RAW:
      if (v->tunnel_upgrade) {
        vconn_error(v, 400, "a tunnel upgrade request has no body");
        return;
      }
      if (ev.type == WR_HTTP_EV_BODY)
        wr_http_timer_body_bytes(&v->wt, ev.len, uv_now(v->ig->loop));
      v->span = ev.data;
      v->span_len = ev.len;
      break;
    case WR_HTTP_EV_END:
      v->in_req = 0;
      if (!v->tunnel_upgrade)
        wr_http_timer_req_end(&v->wt, uv_now(v->ig->loop));
      if (!ev.keep_alive && !ev.upgrade && !v->tunnel_upgrade) {
        /* The visitor will send nothing more we could forward. */
        v->no_more = 1;
        stop_reading(v);
      }
      continue;
    case WR_HTTP_EV_UPGRADE:
      if (v->tunnel_upgrade) {
        hand_off_tunnel(v);
        return;
      }
      continue;
    case WR_HTTP_EV_ERROR:
      if (v->ig->m_bad) (*v->ig->m_bad)++;
      WR_LOG_DEBUGF("ingress", "bad_request", "peer=%s status=%d reason=\"%s\"",
                    v->peer, ev.status, ev.reason ? ev.reason : "");
      vconn_error(v, ev.status ? ev.status : 400,
                  ev.reason ? ev.reason : "bad request");
      return;
    }
    if (!push_span(v)) {
      stop_reading(v);
      return;
    }
    v->span = NULL;
  }
}

static void vconn_on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf) {
  (void)buf;
  vconn *v = s->data;
  if (v->closing) return;
  if (n == 0) return;
  if (v->answered) {
    linger_read(v, n);
    return;
  }
  if (n < 0) {
    stop_reading(v);
    v->read_eof = 1;
    if (n == UV_EOF && v->up.ops && wr_http_resp_pending(v->resp)) {
      /* Half-close: the visitor sent its request and waits for the
       * answer; pass the FIN on. */
      v->up.ops->fin(v->up.up);
      return;
    }
    if (n == UV_EOF && v->upgraded && v->up.ops) {
      v->up.ops->fin(v->up.up);
      return;
    }
    vconn_close(v);
    return;
  }
  v->in_off = 0;
  v->in_len = (size_t)n;
  if (v->expect_proxy) {
    /* The load balancer's PROXY header carries the real client address;
     * it is bounded (v1 107 bytes, v2 2 KiB here) and must come whole
     * before any HTTP. */
    v->pp_len += (size_t)n;
    wr_proxy_info info;
    wr_ssize r = wr_proxy_parse(v->rbuf, v->pp_len, &info);
    if (r == 0 && v->pp_len < WR_PROXY_V2_MAX) return;
    if (r <= 0) {
      if (v->ig->m_bad) (*v->ig->m_bad)++;
      WR_LOG_DEBUGF("ingress", "bad_proxy_header", "peer=%s", v->peer);
      vconn_close(v);
      return;
    }
    if (!info.local) wr_http_req_set_client_addr(v->req, info.src_str);
    v->expect_proxy = 0;
    v->in_off = (size_t)r;
    v->in_len = v->pp_len - (size_t)r;
  }
  wr_http_timer_visitor_bytes(&v->wt, uv_now(v->ig->loop));
  vconn_process(v);
}

static void on_connection(uv_stream_t *server, int status) {
  wr_ingress *ig = server->data;
  if (status < 0 || ig->stopping) return;
  vconn *v = calloc(1, sizeof *v);
  uv_tcp_t *tcp = malloc(sizeof *tcp);
  if (!v || !tcp) {
    /* Out of memory: the connection waits in the backlog for a retry. */
    free(v);
    free(tcp);
    return;
  }
  v->ig = ig;
  v->tcp = tcp;
  uv_tcp_init(ig->loop, tcp);
  tcp->data = v;
  uv_timer_init(ig->loop, &v->timer);
  v->timer.data = v;
  v->anext = ig->all;
  if (ig->all) ig->all->aprev = v;
  ig->all = v;
  if (ig->g_visitors) (*ig->g_visitors)++;
  if (uv_accept(server, (uv_stream_t *)tcp) != 0) {
    vconn_close(v);
    return;
  }
  wr_tcp_tune(tcp);
  struct sockaddr_storage ss;
  int sl = sizeof ss;
  char ip[48] = "unknown"; /* INET6_ADDRSTRLEN is 46 */
  if (uv_tcp_getpeername(tcp, (struct sockaddr *)&ss, &sl) == 0) {
    if (ss.ss_family == AF_INET)
      uv_ip4_name((struct sockaddr_in *)&ss, ip, sizeof ip);
    else uv_ip6_name((struct sockaddr_in6 *)&ss, ip, sizeof ip);
    snprintf(v->peer, sizeof v->peer, "%s:%d", ip,
             ntohs(((struct sockaddr_in *)&ss)->sin_port));
  }
  wr_http_req_config rc = {
      .domain = ig->domain,
      .client_addr = ip,
      .proto = "http",
      .max_head = HEAD_MAX,
      .rand = pooled_rand,
      .rand_ud = &ig->ids,
  };
  for (int i = 0; i < ig->nproxy_from; i++)
    if (strcmp(ig->proxy_from[i], ip) == 0) v->expect_proxy = 1;
  if (wr_http_req_new(&v->req, &rc, NULL) != 0 ||
      wr_http_resp_new(&v->resp, HEAD_MAX, NULL) != 0) {
    vconn_close(v);
    return;
  }
  wr_http_timer_config tc = {
      .head_ms = ig->head_timeout,
      .idle_ms = ig->idle_timeout,
      /* A visitor sending a body is as idle as one between requests. */
      .body_ms = ig->idle_timeout,
      .upstream_ms = ig->upstream_timeout,
      .body_min_rate = ig->body_min_rate,
      /* The time a body gets to get going before the rate counts is the
       * time a head gets to arrive whole: both are what a client may
       * take to present a request (Apache's defaults are alike, 20 s
       * for the body, 20-40 s for the head). */
      .body_grace_ms = ig->head_timeout,
  };
  wr_http_timer_init(&v->wt, &tc, uv_now(ig->loop));
  rearm(v);
  start_reading(v);
}

/* ---- the ingress ---- */

static void maybe_done(wr_ingress *ig) {
  if (!ig->stopping || !ig->server_closed || !ig->prep_closed || ig->all ||
      !ig->bindings_done)
    return;
  wr_bindings_del(ig->bindings);
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

static void url_of(void *ud, const char *name, char *out, size_t cap) {
  wr_ingress_url(ud, name, out, cap);
}

static void server_closed(uv_handle_t *h) {
  wr_ingress *ig = h->data;
  if (h == (uv_handle_t *)&ig->prep) ig->prep_closed = 1;
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
  ig->ids.off = sizeof ig->ids.buf; /* empty: the first use fills it */
  snprintf(ig->domain, sizeof ig->domain, "%s", cfg->domain);
  snprintf(ig->node_id, sizeof ig->node_id, "%s", cfg->node_id);
  ig->routes_ud = cfg->routes_ud;
  ig->lookup_remote = cfg->lookup_remote;
  ig->upstream_timeout = cfg->upstream_timeout_ms ? cfg->upstream_timeout_ms
                                                  : 60000;
  ig->idle_timeout = cfg->idle_timeout_ms ? cfg->idle_timeout_ms : 75000;
  ig->head_timeout = cfg->head_timeout_ms ? cfg->head_timeout_ms : 30000;
  ig->body_min_rate = cfg->body_min_rate;
  for (const char *p = cfg->proxy_from; p && *p && ig->nproxy_from < 16;) {
    size_t n = strcspn(p, ",");
    if (n > 0 && n < sizeof ig->proxy_from[0]) {
      memcpy(ig->proxy_from[ig->nproxy_from], p, n);
      ig->proxy_from[ig->nproxy_from++][n] = 0;
    }
    p += n;
    if (*p == ',') p++;
  }
  wr_metrics *m = cfg->metrics;
  if (m) {
    wr_metrics_counter(m, "warren_http_requests_total", NULL, NULL,
                       "Visitor requests received.", &ig->m_requests);
    wr_metrics_counter(m, "warren_http_bad_requests_total", NULL, NULL,
                       "Visitor requests rejected as malformed (4xx).",
                       &ig->m_bad);
    wr_metrics_counter(m, "warren_http_responses_total", "code", "404",
                       "Error responses generated by the node.", &ig->m_404);
    wr_metrics_counter(m, "warren_http_responses_total", "code", "408",
                       "Error responses generated by the node.", &ig->m_408);
    wr_metrics_counter(m, "warren_http_responses_total", "code", "502",
                       "Error responses generated by the node.", &ig->m_502);
    wr_metrics_counter(m, "warren_http_responses_total", "code", "504",
                       "Error responses generated by the node.", &ig->m_504);
    wr_metrics_counter(m, "warren_http_head_timeouts_total", NULL, NULL,
                       "Visitor connections closed (408) because a started "
                       "request head was not complete within the head "
                       "timeout.",
                       &ig->m_head_timeouts);
    wr_metrics_counter(m, "warren_http_body_rate_timeouts_total", NULL, NULL,
                       "Visitor requests answered 408 because the body "
                       "arrived slower than the minimum rate.",
                       &ig->m_body_rate);
    wr_metrics_counter(m, "warren_http_lingering_closes_total", NULL, NULL,
                       "Visitor connections the node ended while the "
                       "visitor might still be sending: FIN sent, input "
                       "read and dropped for up to 5 s, then closed.",
                       &ig->m_lingers);
    wr_metrics_counter(m, "warren_http_pipeline_pauses_total", NULL, NULL,
                       "Times reading a visitor stopped because it had the "
                       "most pipelined requests owed (32).",
                       &ig->m_pipeline_pauses);
    wr_metrics_counter(m, "warren_rx_malformed_total", "source", "tunnel",
                       "Malformed or unauthenticated input dropped.",
                       &ig->m_tunnel_bad);
    wr_metrics_gauge(m, "warren_tunnels", NULL, NULL,
                     "Tunnels bound on this node.", &ig->g_tunnels);
    wr_metrics_gauge(m, "warren_visitor_connections", NULL, NULL,
                     "Open visitor connections.", &ig->g_visitors);
  }
  wr_bindings_config bc = {
      .ic = cfg,
      .ev = &wr_up_tunnel_events,
      .url = url_of,
      .ud = ig,
      .m_tunnel_bad = ig->m_tunnel_bad,
      .g_tunnels = ig->g_tunnels,
  };
  rv = wr_bindings_new(&ig->bindings, loop, &bc);
  if (rv != 0) {
    free(ig);
    return rv;
  }
  uv_tcp_init(loop, &ig->server);
  ig->server.data = ig;
  uv_prepare_init(loop, &ig->prep);
  ig->prep.data = ig;
  rv = uv_tcp_bind(&ig->server, (struct sockaddr *)&ss, 0);
  if (rv == 0) rv = uv_listen((uv_stream_t *)&ig->server, 1024, on_connection);
  if (rv != 0) {
    /* Closing is asynchronous; the ingress frees itself when it ends. */
    ig->stopping = 1;
    uv_close((uv_handle_t *)&ig->server, server_closed);
    uv_close((uv_handle_t *)&ig->prep, server_closed);
    wr_bindings_stop(ig->bindings, on_bindings_done, ig);
    return rv;
  }
  struct sockaddr_storage bound;
  int bl = sizeof bound;
  uv_tcp_getsockname(&ig->server, (struct sockaddr *)&bound, &bl);
  ig->port = ntohs(((struct sockaddr_in *)&bound)->sin_port);
  *pig = ig;
  return 0;
}

int wr_ingress_port(const wr_ingress *ig) { return ig->port; }

size_t wr_ingress_tunnel_count(const wr_ingress *ig) {
  return wr_bindings_count(ig->bindings);
}

void wr_ingress_foreach(const wr_ingress *ig,
                        void (*fn)(const wr_tunnel_info *t, void *ud),
                        void *ud) {
  wr_bindings_foreach(ig->bindings, fn, ud);
}

int wr_ingress_evict(wr_ingress *ig, const char *name,
                     const uint8_t session[16], int reason) {
  return wr_bindings_evict(ig->bindings, name, session, reason);
}

void wr_ingress_drain(wr_ingress *ig) { wr_bindings_drain(ig->bindings); }

void wr_ingress_stop(wr_ingress *ig, void (*done)(void *ud), void *ud) {
  if (ig->stopping) return;
  ig->stopping = 1;
  /* Metrics keep counting until |done|: the registry's owner (the admin
   * server in `warren node`) is closed only after that (main.c). */
  ig->done = done;
  ig->done_ud = ud;
  uv_close((uv_handle_t *)&ig->server, server_closed);
  uv_close((uv_handle_t *)&ig->prep, server_closed);
  for (vconn *v = ig->all; v; v = v->anext) vconn_close(v);
  wr_bindings_stop(ig->bindings, on_bindings_done, ig);
}
