/*
 * The forwarding core (forward.h): one visitor connection, sans-IO.
 *
 * Protocol decisions come from head.c (what to accept, how to rewrite,
 * where messages end), timer.c (which silence is timed) and the upstream
 * (credit); this file keeps the connection's states and moves spans.
 *
 * The connection (wr_fwd_state):
 *
 *   state      entered when                         left for
 *   ---------  -----------------------------------  ------------------------
 *   PROXY      new, from a configured LB address    OPEN (header parsed),
 *                                                   CLOSED (bad header)
 *   OPEN       new (or after PROXY)                 ENDING, ANSWERED,
 *                                                   HANDED_OFF, CLOSED
 *   ENDING     the last response ended with close,  LINGER or CLOSED once
 *              the origin's side ended (FIN, both   all is written;
 *              FINs), or a raw stream's FIN         ANSWERED (error page)
 *   ANSWERED   we answer (error page) or give up    LINGER or CLOSED once
 *              on the request in flight             written; CLOSED on
 *                                                   timeout (idle_ms)
 *   LINGER     all written while the visitor may    CLOSED: its EOF, quiet
 *              still be sending: FIN sent           linger_quiet_ms, or
 *                                                   linger_ms in all
 *   HANDED_OFF a tunnel client's Upgrade            (terminal)
 *   CLOSED     error, timeout, done                 (terminal)
 *
 * Inside OPEN/ENDING, each side has its own small state:
 *
 *   request  IDLE    between requests (part of a head may be buffered)
 *            BODY    a head went to the upstream, its END not yet
 *            TUNNEL  the request is a tunnel client's Upgrade: no
 *                    upstream; its END and UPGRADE lead to the hand-off
 *   response NONE    no response head in progress (some may be owed)
 *            INTERIM a 1xx head went out, its END not yet
 *            FINAL   a final head went out, its END not yet: an error
 *                    page now would land inside it, so errors close
 *            RAW     101: both directions are raw bytes
 *   visitor  READING reads on
 *   input    STOPPED paused: input is held (a span waits for credit, or
 *                    PIPELINE_MAX responses are owed); the held bytes stay
 *                    in rbuf, which no read may overwrite until they go
 *            DONE    the visitor's last request ended ("close"): nothing
 *                    more to forward, reads stay off (winding down turns
 *                    them on again, to drop input)
 *            EOF     the visitor closed its side
 *   upstream NONE / OPEN / ENDED (see forward.h; at most one at a time)
 *
 * An impossible combination is an assert; the visitor's or the origin's
 * bytes never are (they answer 400/502 or close).
 *
 * Visitor -> upstream: parse, and write each event's span within credit.
 * When the upstream takes less, the rest of the span (it points into the
 * parser's head buffer or rbuf, both stable until the next feed) and the
 * unparsed input wait, and reading stops until `writable`.  The unparsed
 * input waits the same way, before the next head, while pipeline_max
 * responses are owed, until one ends.
 *
 * Upstream -> visitor: each DATA buffer is parsed (to find response ends,
 * 101 upgrades, garbage); response heads are replaced by their rewritten
 * form, body bytes are forwarded as they came (the buffer itself, no
 * copy); their credit returns when the adapter reports them written.
 *
 * Credit bookkeeping: `owed` is the credit of bytes sent to the visitor
 * for the current upstream and not yet written; when an upstream ends,
 * its owed credit becomes `stale`, which the next completions pay off
 * first (writes complete in order), so credit never reaches an upstream
 * that did not send the bytes.
 *
 * The origin's side is fwd_up.c's, the timer fwd_timer.c's (fwd_int.h).
 */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "warren/err.h"
#include "warren/forward.h"
#include "warren/http.h"
#include "warren/http_timer.h"
#include "warren/log.h"
#include "warren/proxyproto.h"
#include "fwd_int.h"


static void stop_reading(wr_fwd *f) {
  if (f->vin == VIN_READING) f->vin = VIN_STOPPED;
}

static void start_reading(wr_fwd *f) {
  if (f->vin == VIN_STOPPED && !terminal(f)) {
    f->vin = VIN_READING;
    f->pause_counted = 0;
  }
}

void fwd_set_ending(wr_fwd *f) {
  if (f->state == WR_FWD_OPEN || f->state == WR_FWD_PROXY)
    f->state = WR_FWD_ENDING;
}

void fwd_up_detach(wr_fwd *f, int reset) {
  if (f->upst != UP_OPEN) return;
  f->up.ops->detach(f->up.up, reset);
  f->up.ops = NULL;
  f->upst = UP_ENDED;
  f->stale += f->owed;
  f->owed = 0;
}

void wr_fwd_close(wr_fwd *f) {
  if (terminal(f)) return;
  fwd_up_detach(f, 1);
  f->state = WR_FWD_CLOSED;
}

void fwd_send_out(wr_fwd *f, uint8_t *buf, size_t len, size_t credit) {
  /* The send-stall clock starts with the first byte owed, not with the
   * last response's end: an idle connection owes nothing. */
  if (f->out_pending == 0) f->drain_at = f->now;
  f->out_pending += len;
  f->owed += credit;
  f->cb->send(f->ud, buf, len, credit);
}

/* From here on only what is queued is written (then fwd_end), and the
 * visitor's input is read and dropped rather than left unread: a visitor
 * blocked writing its request would never read our answer, and we would
 * be waiting for its reads (a deadlock until end_at). */
void fwd_wind_down(wr_fwd *f) {
  if (terminal(f)) return;
  fwd_up_detach(f, 1);
  if (f->state != WR_FWD_LINGER) f->state = WR_FWD_ANSWERED;
  f->span = NULL;
  f->span_len = 0;
  f->in_len = 0;
  if (f->vin == VIN_STOPPED || f->vin == VIN_DONE) f->vin = VIN_READING;
  /* The timer now only bounds how long the queued bytes may take to be
   * written (a visitor that never reads them). */
  f->end_at = f->now + f->cfg->idle_ms;
}

/* Everything queued was written: close, or linger first when the visitor
 * may still be sending (it was answered by us, or is mid-request). */
void fwd_end(wr_fwd *f) {
  if (terminal(f) || f->state == WR_FWD_LINGER) return;
  int sending = f->state == WR_FWD_ANSWERED ||
                (f->req == REQ_BODY && f->resp != RESP_RAW);
  if (!sending || f->vin == VIN_EOF) {
    wr_fwd_close(f);
    return;
  }
  fwd_wind_down(f);
  f->state = WR_FWD_LINGER;
  f->linger_end = f->now + f->cfg->linger_ms;
  f->quiet_at = f->now + f->cfg->linger_quiet_ms;
  count(M(f, lingers));
}

/* Bytes (|n| > 0) or the end (|n| <= 0, err) from a winding-down visitor. */
static void linger_input(wr_fwd *f, int eof, int err) {
  if (eof) {
    /* Nothing more will come.  Queued bytes may still go out after an
     * EOF; fwd_end then closes. */
    f->vin = VIN_EOF;
    if (err != 0 || writes_done(f)) wr_fwd_close(f);
    return;
  }
  if (f->state != WR_FWD_LINGER) return;
  if (f->now >= f->linger_end) {
    wr_fwd_close(f);
    return;
  }
  f->quiet_at = f->now + f->cfg->linger_quiet_ms;
}

/* Answers with an error page (404 names |host|) and closes after it is
 * written, lingering (fwd_end).  Nothing more is parsed: the upstream, if
 * any, is reset. */
static void answer(wr_fwd *f, int status, const char *detail,
                   const char *host, const char *name) {
  count(status == 404   ? M(f, r404)
        : status == 408 ? M(f, r408)
        : status == 502 ? M(f, r502)
        : status == 504 ? M(f, r504)
                        : NULL);
  fwd_wind_down(f);
  if (terminal(f)) return;
  uint8_t *page = f->cb->buf_new(WR_HTTP_ERROR_PAGE_MAX);
  if (!page) {
    wr_fwd_close(f);
    return;
  }
  const char *rid = f->reqid[0] ? f->reqid : NULL;
  wr_ssize n = status == 404
                   ? wr_http_not_found_page(page, WR_HTTP_ERROR_PAGE_MAX, host,
                                            name, f->cfg->domain, rid)
                   : wr_http_error_page(page, WR_HTTP_ERROR_PAGE_MAX, status,
                                        detail, rid);
  if (n < 0) {
    f->cb->buf_free(page);
    wr_fwd_close(f);
    return;
  }
  fwd_send_out(f, page, (size_t)n, 0);
}

void fwd_error_page(wr_fwd *f, int status, const char *detail) {
  answer(f, status, detail, NULL, NULL);
}

/* ---- the visitor's side ---- */

static int head_has(const wr_http_ev *ev, const char *path,
                    const char *needle) {
  size_t pl = strlen(path), nl = strlen(needle);
  if (ev->len < pl || memcmp(ev->data, path, pl) != 0) return 0;
  for (size_t i = 0; i + nl <= ev->len; i++)
    if (strncasecmp((const char *)ev->data + i, needle, nl) == 0) return 1;
  return 0;
}

/* 1: a tunnel client's upgrade; 2: another node's (node-to-node link). */
static int head_is_tunnel(const wr_fwd *f, const wr_http_ev *ev) {
  if (!ev->upgrade) return 0;
  if (head_has(ev, TUNNEL_PATH, "\nupgrade: warren/1\r")) return 1;
  if (f->cb->handoff_node &&
      head_has(ev, NODE_PATH, "\nupgrade: warren-node/1\r"))
    return 2;
  return 0;
}

/* A request head: route it.  Returns 0 to go on forwarding. */
static int on_request_head(wr_fwd *f, const wr_http_ev *ev) {
  count(M(f, requests));
  snprintf(f->reqid, sizeof f->reqid, "%s",
           ev->request_id ? ev->request_id : "");
  int kind;
  if (f->upst != UP_OPEN && f->resp != RESP_FINAL &&
      (kind = head_is_tunnel(f, ev)) != 0) {
    f->req = REQ_TUNNEL;
    f->node_link = kind == 2;
    return 0;
  }
  if (!ev->name) {
    answer(f, 404, NULL, ev->host ? ev->host : "", NULL);
    return -1;
  }
  if (f->upst == UP_OPEN && strcmp(f->name, ev->name) != 0) {
    /* HTTP/1.1 connections are per origin; a client that reuses one for
     * another name is told so rather than mixing two upstreams. */
    fwd_error_page(f, 421,
               "this connection already serves another name; open a new "
               "connection");
    return -1;
  }
  if (f->upst != UP_OPEN) {
    snprintf(f->name, sizeof f->name, "%s", ev->name);
    wr_fwd_open meta = {
        .name = ev->name,
        .host = ev->host,
        .request_id = ev->request_id,
        .visitor_addr = f->peer,
        .scheme = f->cfg->proto,
        .hops = 0,
    };
    char detail[240];
    detail[0] = 0;
    int st = f->cb->open(f->ud, &meta, &f->up, detail, sizeof detail);
    if (st == 404) {
      answer(f, 404, NULL, ev->host ? ev->host : ev->name, ev->name);
      return -1;
    }
    if (st != 0) {
      fwd_error_page(f, st, detail);
      return -1;
    }
    assert(f->up.ops);
    f->upst = UP_OPEN;
  }
  /* fwd_process() pauses reading before pipeline_max responses are owed, so
   * only running out of memory fails here. */
  unsigned flags = ev->resp_flags;
  if (f->draining) flags |= WR_HTTP_EXP_CLOSE;
  int rv = wr_http_resp_expect(f->hresp, flags);
  if (rv != 0) {
    char d[120];
    snprintf(d, sizeof d, "cannot forward the request (%s)", wr_strerror(rv));
    fwd_error_page(f, 500, d);
    return -1;
  }
  f->req = REQ_BODY;
  if (ev->upgrade) f->upgrade_asked = 1;
  wr_http_timer_req_head(&f->wt, ev->expect_continue, f->now);
  return 0;
}

/* Writes the pending span within credit; 1 when it all went. */
static int push_span(wr_fwd *f) {
  if (!f->span_len) return 1;
  if (f->upst != UP_OPEN) return 0;
  wr_ssize n = f->up.ops->write(f->up.up, f->span, f->span_len);
  if (n < 0) {
    wr_fwd_close(f);
    return 0;
  }
  f->span += n;
  f->span_len -= (size_t)n;
  wr_http_timer_req_sent(&f->wt, (size_t)n, f->span_len > 0, f->now);
  return f->span_len == 0;
}

/* Between requests with pipeline_max responses owed: the next head must
 * wait.  Only between requests, so the request in progress always
 * completes and every response owed can be answered without more input
 * from the visitor (no deadlock); an upgrade request's raw bytes wait
 * too, until its 101 (docs/HTTP.md). */
static int pipeline_full(const wr_fwd *f) {
  return f->req == REQ_IDLE &&
         wr_http_resp_owed(f->hresp) >= f->cfg->pipeline_max;
}

/* Forwards what can be forwarded.  Runs in OPEN and ENDING. */
void fwd_process(wr_fwd *f) {
  if (f->state != WR_FWD_OPEN && f->state != WR_FWD_ENDING) return;
  if (!push_span(f)) {
    stop_reading(f);
    return;
  }
  f->span = NULL;
  while (f->state == WR_FWD_OPEN || f->state == WR_FWD_ENDING) {
    if (pipeline_full(f)) {
      /* The unparsed bytes stay at rbuf + in_off (nothing reads into
       * rbuf while reading is stopped) and are parsed when a response
       * ends (wr_fwd_up_data).  Their head's deadline starts then. */
      stop_reading(f);
      if (!f->pause_counted) count(M(f, pipeline_pauses));
      f->pause_counted = 1;
      if (f->in_len > 0) wr_http_timer_head_part(&f->wt, f->now);
      return;
    }
    wr_http_ev ev;
    wr_ssize n = wr_http_req_feed(
        f->hreq, f->rbuf ? f->rbuf + f->in_off : NULL, f->in_len, &ev);
    if (n < 0) {
      wr_fwd_close(f);
      return;
    }
    f->in_off += (size_t)n;
    f->in_len -= (size_t)n;
    switch (ev.type) {
    case WR_HTTP_EV_NONE:
      /* All input consumed; a head cut by the read's end starts (or
       * keeps) its deadline.  An idle connection holds no read buffer. */
      if (wr_http_req_buffered(f->hreq) > 0)
        wr_http_timer_head_part(&f->wt, f->now);
      if (f->rbuf && f->state == WR_FWD_OPEN) {
        wr_mem_free(f->mem, f->rbuf);
        f->rbuf = NULL;
      }
      f->in_off = 0;
      if (f->state == WR_FWD_OPEN) start_reading(f);
      return;
    case WR_HTTP_EV_HEAD:
      if (on_request_head(f, &ev) != 0) return;
      if (f->req == REQ_TUNNEL) continue;
      f->span = ev.data;
      f->span_len = ev.len;
      break;
    case WR_HTTP_EV_BODY:
    case WR_HTTP_EV_RAW:
      if (f->req == REQ_TUNNEL) {
        fwd_error_page(f, 400, "a tunnel upgrade request has no body");
        return;
      }
      if (ev.type == WR_HTTP_EV_BODY)
        wr_http_timer_body_bytes(&f->wt, ev.len, f->now);
      f->span = ev.data;
      f->span_len = ev.len;
      break;
    case WR_HTTP_EV_END:
      if (f->req != REQ_TUNNEL) {
        f->req = REQ_IDLE;
        wr_http_timer_req_end(&f->wt, f->now);
        if ((!ev.keep_alive || f->draining) && !ev.upgrade) {
          /* The visitor will send nothing more we could forward. */
          if (f->vin == VIN_READING || f->vin == VIN_STOPPED)
            f->vin = VIN_DONE;
          /* Draining, its response says close: whatever the visitor
           * pipelined behind this request is not forwarded (a client
           * resends unanswered pipelined requests on a new connection,
           * RFC 9112 9.3.2). */
          if (f->draining) f->in_len = 0;
        }
      }
      continue;
    case WR_HTTP_EV_UPGRADE:
      if (f->req == REQ_TUNNEL) {
        int (*take)(void *, const uint8_t *, size_t) =
            f->node_link ? f->cb->handoff_node : f->cb->handoff;
        if (take(f->ud, f->rbuf + f->in_off, f->in_len) != 0) {
          wr_fwd_close(f);
          return;
        }
        f->in_len = 0;
        f->state = WR_FWD_HANDED_OFF;
        return;
      }
      continue;
    case WR_HTTP_EV_ERROR:
      count(M(f, bad));
      WR_LOG_DEBUGF("ingress", "bad_request", "peer=%s status=%d reason=\"%s\"",
                    f->peer, ev.status, ev.reason ? ev.reason : "");
      fwd_error_page(f, ev.status ? ev.status : 400,
                 ev.reason ? ev.reason : "bad request");
      return;
    }
    if (!push_span(f)) {
      stop_reading(f);
      return;
    }
    f->span = NULL;
  }
}

int wr_fwd_read_buf(wr_fwd *f, uint8_t **pbuf, size_t *pcap) {
  if (winding_down(f) || terminal(f)) {
    /* Nothing read from here on is parsed (and nothing still points into
     * rbuf: this is a fresh read), so the read buffer can go. */
    wr_mem_free(f->mem, f->rbuf);
    f->rbuf = NULL;
    f->in_off = f->in_len = 0;
    return 1;
  }
  if (!f->rbuf) f->rbuf = wr_mem_malloc(f->mem, f->cfg->rbuf_cap);
  if (!f->rbuf) return WR_ERR_NOMEM;
  if (f->state == WR_FWD_PROXY) {
    *pbuf = f->rbuf + f->pp_len;
    *pcap = f->cfg->rbuf_cap - f->pp_len;
    return 0;
  }
  *pbuf = f->rbuf;
  *pcap = f->cfg->rbuf_cap;
  return 0;
}

void wr_fwd_read(wr_fwd *f, size_t n, wr_tstamp now) {
  f->now = now;
  if (terminal(f) || n == 0) return;
  if (winding_down(f)) {
    linger_input(f, 0, 0);
    return;
  }
  /* Reads happen only while READING, so nothing unparsed is held here. */
  f->in_off = 0;
  f->in_len = n;
  if (f->state == WR_FWD_PROXY) {
    /* The load balancer's PROXY header carries the real client address;
     * it is bounded (v1 107 bytes, v2 2 KiB here) and must come whole
     * before any HTTP. */
    f->pp_len += n;
    wr_proxy_info info;
    wr_ssize r = wr_proxy_parse(f->rbuf, f->pp_len, &info);
    if (r == 0 && f->pp_len < WR_PROXY_V2_MAX &&
        f->pp_len < f->cfg->rbuf_cap)
      return;
    if (r <= 0) {
      count(M(f, bad));
      WR_LOG_DEBUGF("ingress", "bad_proxy_header", "peer=%s", f->peer);
      wr_fwd_close(f);
      return;
    }
    if (!info.local) wr_http_req_set_client_addr(f->hreq, info.src_str);
    f->state = WR_FWD_OPEN;
    f->in_off = (size_t)r;
    f->in_len = f->pp_len - (size_t)r;
  }
  wr_http_timer_visitor_bytes(&f->wt, now);
  fwd_process(f);
}

void wr_fwd_read_eof(wr_fwd *f, int err, wr_tstamp now) {
  f->now = now;
  if (terminal(f)) return;
  if (winding_down(f)) {
    linger_input(f, 1, err);
    return;
  }
  f->vin = VIN_EOF;
  if (err == 0 && f->upst == UP_OPEN &&
      (wr_http_resp_pending(f->hresp) || f->resp == RESP_RAW)) {
    /* Half-close: the visitor sent its request and waits for the answer
     * (or a raw stream's visitor side ended): pass the FIN on. */
    f->up.ops->fin(f->up.up);
    return;
  }
  wr_fwd_close(f);
}

void wr_fwd_written(wr_fwd *f, size_t len, size_t credit, int status,
                    wr_tstamp now) {
  f->now = now;
  assert(len <= f->out_pending);
  f->out_pending -= len;
  if (len > 0) f->drain_at = now;
  /* Credit goes back only now that the visitor's socket took the bytes:
   * this is what makes a slow visitor slow down the origin. */
  size_t old = credit < f->stale ? credit : f->stale;
  f->stale -= old;
  credit -= old;
  if (credit && f->upst == UP_OPEN) {
    f->owed -= credit < f->owed ? credit : f->owed;
    f->up.ops->consume(f->up.up, credit);
  }
  if (terminal(f)) return;
  if (status < 0) {
    wr_fwd_close(f);
    return;
  }
  if (ending(f) && writes_done(f)) fwd_end(f);
}

/* ---- the object ---- */

size_t wr_fwd_size(void) { return sizeof(wr_fwd); }

int wr_fwd_init(wr_fwd *f, const wr_fwd_config *cfg, void *ud,
                const char *peer, const char *client_ip, int expect_proxy,
                const wr_mem *mem, wr_tstamp now) {
  memset(f, 0, sizeof *f);
  f->cfg = cfg;
  f->cb = cfg->cb;
  f->mem = mem;
  f->ud = ud;
  f->now = now;
  f->state = expect_proxy ? WR_FWD_PROXY : WR_FWD_OPEN;
  f->req = REQ_IDLE;
  f->resp = RESP_NONE;
  f->vin = VIN_READING;
  f->upst = UP_NONE;
  snprintf(f->peer, sizeof f->peer, "%s", peer ? peer : "");
  wr_http_req_config rc = {
      .domain = cfg->domain,
      .client_addr = client_ip,
      .proto = cfg->proto,
      .max_head = cfg->max_head,
      .rand = cfg->rand,
      .rand_ud = cfg->rand_ud,
  };
  if (wr_http_req_new(&f->hreq, &rc, mem) != 0 ||
      wr_http_resp_new(&f->hresp, cfg->max_head, mem) != 0) {
    wr_fwd_free(f);
    return WR_ERR_NOMEM;
  }
  wr_http_timer_config tc = {
      .head_ms = cfg->head_ms,
      .idle_ms = cfg->idle_ms,
      /* A visitor sending a body is as idle as one between requests. */
      .body_ms = cfg->idle_ms,
      .upstream_ms = cfg->upstream_ms,
      .body_min_rate = cfg->body_min_rate,
      /* The time a body gets to get going before the rate counts is the
       * time a head gets to arrive whole: both are what a client may
       * take to present a request (Apache's defaults are alike, 20 s for
       * the body, 20-40 s for the head). */
      .body_grace_ms = cfg->head_ms,
  };
  wr_http_timer_init(&f->wt, &tc, now);
  return 0;
}

void wr_fwd_free(wr_fwd *f) {
  fwd_up_detach(f, 1);
  wr_http_req_del(f->hreq);
  wr_http_resp_del(f->hresp);
  wr_mem_free(f->mem, f->rbuf);
  f->hreq = NULL;
  f->hresp = NULL;
  f->rbuf = NULL;
}

int wr_fwd_new(wr_fwd **pf, const wr_fwd_config *cfg, void *ud,
               const char *peer, const char *client_ip, int expect_proxy,
               const wr_mem *mem, wr_tstamp now) {
  wr_fwd *f = wr_mem_malloc(mem, sizeof *f);
  if (!f) return WR_ERR_NOMEM;
  int rv = wr_fwd_init(f, cfg, ud, peer, client_ip, expect_proxy, mem, now);
  if (rv != 0) {
    wr_mem_free(mem, f);
    return rv;
  }
  *pf = f;
  return 0;
}

void wr_fwd_del(wr_fwd *f) {
  if (!f) return;
  wr_fwd_free(f);
  wr_mem_free(f->mem, f);
}

wr_fwd_state wr_fwd_get_state(const wr_fwd *f) { return f->state; }

int wr_fwd_want_read(const wr_fwd *f) {
  return !terminal(f) && f->vin == VIN_READING;
}

void wr_fwd_drain(wr_fwd *f, wr_tstamp now) {
  f->now = now;
  if (terminal(f) || f->draining) return;
  f->draining = 1;
  wr_http_resp_close_owed(f->hresp);
}

int wr_fwd_busy(const wr_fwd *f) {
  if (terminal(f)) return 0;
  /* A lingering connection has had its whole answer; one from a load
   * balancer that has not sent its PROXY header yet has no request. */
  if (f->state == WR_FWD_LINGER) return 0;
  if (f->state == WR_FWD_PROXY) return f->pp_len > 0;
  if (f->state != WR_FWD_OPEN) return 1; /* ENDING, ANSWERED: writing */
  return f->req != REQ_IDLE || f->resp != RESP_NONE ||
         wr_http_resp_owed(f->hresp) > 0 ||
         wr_http_req_buffered(f->hreq) > 0 || f->in_len > 0 ||
         !writes_done(f);
}

int wr_fwd_want_shutdown(const wr_fwd *f) {
  return f->state == WR_FWD_LINGER;
}

const char *wr_fwd_name(const wr_fwd *f) { return f->name; }
