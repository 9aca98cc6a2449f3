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

#define TUNNEL_PATH "GET /_warren/tunnel "
#define NODE_PATH "GET /_warren/node "

enum req_side { REQ_IDLE, REQ_BODY, REQ_TUNNEL };
enum resp_side { RESP_NONE, RESP_INTERIM, RESP_FINAL, RESP_RAW };
enum vin { VIN_READING, VIN_STOPPED, VIN_DONE, VIN_EOF };
enum up_side { UP_NONE, UP_OPEN, UP_ENDED };

struct wr_fwd {
  const wr_fwd_config *cfg;
  const wr_fwd_callbacks *cb;
  const wr_mem *mem;
  void *ud;
  wr_tstamp now;               /* of the call in progress */
  wr_fwd_state state;
  enum req_side req;
  int node_link;               /* REQ_TUNNEL is a node-to-node link */
  enum resp_side resp;
  enum vin vin;
  enum up_side upst;
  int upgrade_asked;           /* an upgrade request waits for its final
                                  answer (101 or a refusal) */
  int pause_counted;           /* this pipelining pause was counted */
  int draining;                /* wr_fwd_drain: every response closes */
  wr_fwd_upstream up;
  size_t owed, stale;          /* credit bookkeeping (top of file) */
  size_t out_pending;          /* sent to the visitor, not yet written */
  wr_tstamp drain_at;          /* its socket last took bytes (or the
                                  first of out_pending was sent) */
  wr_http_timer wt;            /* what the timer waits for (timer.c) */
  wr_http_req *hreq;
  wr_http_resp *hresp;
  uint8_t *rbuf;
  size_t in_off, in_len;       /* unparsed input waiting in rbuf */
  size_t pp_len;               /* PROXY header bytes read so far */
  const uint8_t *span;         /* output waiting for credit */
  size_t span_len;
  wr_tstamp end_at;            /* ANSWERED: give up writing at */
  wr_tstamp linger_end, quiet_at; /* LINGER */
  char name[256];
  char peer[64];
  char reqid[80];
};

static void process(wr_fwd *f);
static void fwd_end(wr_fwd *f);

static int terminal(const wr_fwd *f) {
  return f->state == WR_FWD_CLOSED || f->state == WR_FWD_HANDED_OFF;
}

/* ENDING, ANSWERED or LINGER: what is queued is the last. */
static int ending(const wr_fwd *f) {
  return f->state == WR_FWD_ENDING || f->state == WR_FWD_ANSWERED ||
         f->state == WR_FWD_LINGER;
}

static int winding_down(const wr_fwd *f) {
  return f->state == WR_FWD_ANSWERED || f->state == WR_FWD_LINGER;
}

static int writes_done(const wr_fwd *f) { return f->out_pending == 0; }

static void count(uint64_t *c) {
  if (c) (*c)++;
}
#define M(f, field) ((f)->cfg->metrics ? (f)->cfg->metrics->field : NULL)

static void stop_reading(wr_fwd *f) {
  if (f->vin == VIN_READING) f->vin = VIN_STOPPED;
}

static void start_reading(wr_fwd *f) {
  if (f->vin == VIN_STOPPED && !terminal(f)) {
    f->vin = VIN_READING;
    f->pause_counted = 0;
  }
}

static void set_ending(wr_fwd *f) {
  if (f->state == WR_FWD_OPEN || f->state == WR_FWD_PROXY)
    f->state = WR_FWD_ENDING;
}

static void up_detach(wr_fwd *f, int reset) {
  if (f->upst != UP_OPEN) return;
  f->up.ops->detach(f->up.up, reset);
  f->up.ops = NULL;
  f->upst = UP_ENDED;
  f->stale += f->owed;
  f->owed = 0;
}

void wr_fwd_close(wr_fwd *f) {
  if (terminal(f)) return;
  up_detach(f, 1);
  f->state = WR_FWD_CLOSED;
}

static void send_out(wr_fwd *f, uint8_t *buf, size_t len, size_t credit) {
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
static void wind_down(wr_fwd *f) {
  if (terminal(f)) return;
  up_detach(f, 1);
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
static void fwd_end(wr_fwd *f) {
  if (terminal(f) || f->state == WR_FWD_LINGER) return;
  int sending = f->state == WR_FWD_ANSWERED ||
                (f->req == REQ_BODY && f->resp != RESP_RAW);
  if (!sending || f->vin == VIN_EOF) {
    wr_fwd_close(f);
    return;
  }
  wind_down(f);
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
  wind_down(f);
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
  send_out(f, page, (size_t)n, 0);
}

static void error_page(wr_fwd *f, int status, const char *detail) {
  answer(f, status, detail, NULL, NULL);
}

/* ---- the origin's side ---- */

/* The upstream is done.  If a response is owed and none started, the
 * visitor gets a 502 saying why; otherwise close after flushing. */
static void upstream_ended(wr_fwd *f, const char *why) {
  if (terminal(f)) return;
  if (wr_http_resp_pending(f->hresp) && f->resp != RESP_FINAL) {
    error_page(f, 502, why);
    return;
  }
  up_detach(f, 1);
  set_ending(f);
  if (writes_done(f)) fwd_end(f);
}

/* Appends to a growing output buffer (cb->buf_new); -1 when out of
 * memory. */
static int out_add(wr_fwd *f, uint8_t **o, size_t *on, size_t *cap,
                   const uint8_t *p, size_t n) {
  if (*on + n > *cap) {
    size_t c = *cap ? *cap : 1024;
    while (c < *on + n) c *= 2;
    uint8_t *b = f->cb->buf_new(c);
    if (!b) return -1;
    if (*on) memcpy(b, *o, *on);
    f->cb->buf_free(*o);
    *o = b;
    *cap = c;
  }
  memcpy(*o + *on, p, n);
  *on += n;
  return 0;
}

void wr_fwd_up_data(wr_fwd *f, uint8_t *buf, size_t len, wr_tstamp now) {
  f->now = now;
  if (terminal(f) || f->upst != UP_OPEN) {
    /* Not reached: events stop when the upstream is detached. */
    f->cb->buf_free(buf);
    return;
  }
  wr_http_timer_resp_bytes(&f->wt, now);
  /* Parse to learn where responses end and to rewrite their heads
   * (hop-by-hop fields out, our Connection in); bodies pass unchanged.
   * While the output is a prefix of |buf| (body bytes only: most of any
   * large response) |buf| itself is forwarded, |fwd| bytes of it; a head
   * switches to composing the output in |o|. */
  uint8_t *o = NULL;
  size_t on = 0, ocap = 0, fwd = 0, off = 0;
  int bad = 0, let_go = 0;
  for (;;) {
    wr_http_ev ev;
    size_t at = off;
    wr_ssize n = wr_http_resp_feed(f->hresp, buf + off, len - off, &ev);
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
        o = f->cb->buf_new(ocap);
        if (!o || out_add(f, &o, &on, &ocap, buf, fwd) != 0) {
          bad = 1;
          break;
        }
      }
      if (out_add(f, &o, &on, &ocap, ev.data, ev.len) != 0) {
        bad = 1;
        break;
      }
    }
    if (ev.type == WR_HTTP_EV_HEAD) {
      /* 1xx heads (100 Continue, 103) are interim: a 502 may still follow
       * them as the final answer. */
      int final = ev.status >= 200 || ev.status == 101;
      f->resp = final ? RESP_FINAL : RESP_INTERIM;
      wr_http_timer_resp_head(&f->wt, ev.status, now);
      if (f->upgrade_asked && final) {
        if (ev.status != 101) wr_http_req_upgrade_refused(f->hreq);
        f->upgrade_asked = 0;
      }
    } else if (ev.type == WR_HTTP_EV_END) {
      int final = f->resp == RESP_FINAL;
      wr_http_timer_resp_end(&f->wt, final, now);
      f->resp = RESP_NONE;
      /* The response's keep_alive says whether the visitor's connection
       * ends after it (the origin's close, or the visitor's own
       * "Connection: close", which the response head now announces); the
       * second test is the same rule seen from the request side. */
      if (final && (!ev.keep_alive || (f->vin == VIN_DONE &&
                                       !wr_http_resp_pending(f->hresp))))
        set_ending(f);
      else if (final && f->state == WR_FWD_OPEN && f->upst == UP_OPEN &&
               f->req == REQ_IDLE && !wr_http_resp_pending(f->hresp) &&
               f->up.ops->reusable && !f->up.ops->reusable(f->up.up)) {
        /* Between requests, and the upstream's link drains: let it go
         * once this buffer is sent (its credit is the upstream's), and
         * route the next request afresh.  A reset: its response is
         * complete, so nothing is lost. */
        let_go = 1;
      }
    } else if (ev.type == WR_HTTP_EV_UPGRADE) {
      f->resp = RESP_RAW;
      wr_http_timer_upgraded(&f->wt, now);
    } else if (ev.type == WR_HTTP_EV_ERROR) {
      bad = 1;
      break;
    }
  }
  if (bad) {
    if (o) f->cb->buf_free(o);
    f->cb->buf_free(buf);
    f->up.ops->consume(f->up.up, len);
    WR_LOG_WARNF("ingress", "bad_response", "name=%s", f->name);
    if (f->resp != RESP_FINAL)
      error_page(f, 502,
                 "the local server sent a response warren could not parse");
    else wr_fwd_close(f);
    return;
  }
  if (o) {
    f->cb->buf_free(buf);
    buf = o;
  } else {
    on = fwd; /* the rest, if any, is a head still incomplete */
  }
  if (on == 0) {
    /* Nothing to write yet (part of a head): the parser holds the bytes,
     * bounded by its max_head, so the credit can go back now. */
    f->cb->buf_free(buf);
    f->up.ops->consume(f->up.up, len);
  } else {
    send_out(f, buf, on, len);
  }
  if (let_go && f->upst == UP_OPEN && !wr_http_resp_pending(f->hresp)) {
    up_detach(f, 1); /* what is owed to it becomes stale credit */
    f->upst = UP_NONE;
  }
  /* Responses ended and the visitor paused for a pipelining limit. */
  if (f->vin != VIN_READING && f->state == WR_FWD_OPEN && !f->span)
    process(f);
}

void wr_fwd_up_fin(wr_fwd *f, wr_tstamp now) {
  f->now = now;
  if (terminal(f)) return;
  (void)wr_http_resp_eof(f->hresp);
  if (f->resp == RESP_RAW) {
    /* Raw stream: the origin closed its half; so do we. */
    up_detach(f, 0);
    set_ending(f);
    if (writes_done(f)) wr_fwd_close(f);
    return;
  }
  char why[200];
  snprintf(why, sizeof why,
           "the local server behind tunnel '%.63s' closed the connection "
           "without a complete response",
           f->name);
  upstream_ended(f, why);
}

void wr_fwd_up_ended(wr_fwd *f, wr_fwd_end end, wr_tstamp now) {
  f->now = now;
  /* The upstream detached itself: nothing may reset it again. */
  if (f->upst == UP_OPEN) {
    f->up.ops = NULL;
    f->upst = UP_ENDED;
    f->stale += f->owed;
    f->owed = 0;
  }
  if (terminal(f)) return;
  char why[240];
  switch (end) {
  case WR_FWD_END_DONE:
    /* Both sides sent FIN: the normal end of a close-delimited response
     * or an upgraded stream. */
    set_ending(f);
    if (writes_done(f)) fwd_end(f);
    return;
  case WR_FWD_END_GONE:
    snprintf(why, sizeof why,
             "the tunnel '%.63s' went away while the request was in flight",
             f->name);
    upstream_ended(f, why);
    return;
  case WR_FWD_END_REFUSED:
    snprintf(why, sizeof why,
             "tunnel '%.63s' is up, but the local server behind it refused the "
             "connection (is it running?)",
             f->name);
    break;
  case WR_FWD_END_NO_ROUTE:
  case WR_FWD_END_MOVED:
    snprintf(why, sizeof why,
             "the node that owned '%.63s' no longer serves it (%s)", f->name,
             end == WR_FWD_END_MOVED ? "it moved" : "no route there");
    break;
  case WR_FWD_END_UNREACHABLE:
    snprintf(why, sizeof why,
             "the node serving '%.63s' could not be reached", f->name);
    break;
  default:
    snprintf(why, sizeof why, "the tunnel '%.63s' closed the stream",
             f->name);
  }
  if (wr_http_resp_pending(f->hresp) && f->resp != RESP_FINAL)
    error_page(f, 502, why);
  else wr_fwd_close(f);
}

void wr_fwd_up_writable(wr_fwd *f, wr_tstamp now) {
  f->now = now;
  if (!terminal(f)) process(f);
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
    error_page(f, 421,
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
      error_page(f, st, detail);
      return -1;
    }
    assert(f->up.ops);
    f->upst = UP_OPEN;
  }
  /* process() pauses reading before pipeline_max responses are owed, so
   * only running out of memory fails here. */
  unsigned flags = ev->resp_flags;
  if (f->draining) flags |= WR_HTTP_EXP_CLOSE;
  int rv = wr_http_resp_expect(f->hresp, flags);
  if (rv != 0) {
    char d[120];
    snprintf(d, sizeof d, "cannot forward the request (%s)", wr_strerror(rv));
    error_page(f, 500, d);
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
static void process(wr_fwd *f) {
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
        error_page(f, 400, "a tunnel upgrade request has no body");
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
      error_page(f, ev.status ? ev.status : 400,
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
  process(f);
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

/* ---- the timer ---- */

/*
 * Send stalls.  Response bytes owed to a visitor hold the upstream's
 * credit until its socket takes them (wr_fwd_written), which is what
 * slows an origin down to its visitor's pace.  A visitor that takes none
 * at all holds that credit for ever: a stream window on the link (1 MiB),
 * and, fifteen such visitors later, the whole tunnel (issue 11).  None of
 * the request-side waits times this (a response in progress is the
 * visitor's turn to read, timer.c), so it has its own clock: drain_at,
 * moved by every write completion and by partial progress the adapter
 * sees (wr_fwd_send_progress).  Only OPEN and ENDING: ANSWERED bounds its
 * own last writes (end_at), LINGER has written everything.
 */
static wr_tstamp stall_deadline(const wr_fwd *f) {
  if (f->cfg->send_stall_ms == 0 || f->out_pending == 0 ||
      (f->state != WR_FWD_OPEN && f->state != WR_FWD_ENDING))
    return WR_TSTAMP_NONE;
  return f->drain_at + f->cfg->send_stall_ms;
}

void wr_fwd_send_progress(wr_fwd *f, wr_tstamp now) {
  f->now = now;
  if (f->out_pending > 0) f->drain_at = now;
}

size_t wr_fwd_held(const wr_fwd *f) {
  return f->upst == UP_OPEN && !terminal(f) ? f->owed : 0;
}

wr_tstamp wr_fwd_stalled_since(const wr_fwd *f) {
  return f->out_pending > 0 && !terminal(f) ? f->drain_at : WR_TSTAMP_NONE;
}

void *wr_fwd_upstream_of(const wr_fwd *f) {
  return f->upst == UP_OPEN ? f->up.up : NULL;
}

void wr_fwd_shed(wr_fwd *f, wr_tstamp now) {
  f->now = now;
  if (terminal(f)) return;
  count(M(f, sheds));
  WR_LOG_DEBUGF("ingress", "send_stall_shed",
               "peer=%s name=%s held=%zu stalled_ms=%llu", f->peer, f->name,
               f->owed, (unsigned long long)(now - f->drain_at));
  wr_fwd_close(f);
}

void wr_fwd_tick(wr_fwd *f, wr_tstamp now) {
  f->now = now;
  if (terminal(f)) return;
  wr_tstamp sdl = stall_deadline(f);
  if (sdl != WR_TSTAMP_NONE && now >= sdl) {
    /* Nothing can reach this visitor (not even an error page: it would
     * queue behind the bytes it does not take), so the connection closes
     * and the upstream is reset, which returns the credit. */
    count(M(f, send_stalls));
    WR_LOG_DEBUGF("ingress", "send_stall",
                 "peer=%s name=%s owed=%zu held=%zu ms=%llu", f->peer,
                 f->name, f->out_pending, f->owed,
                 (unsigned long long)f->cfg->send_stall_ms);
    wr_fwd_close(f);
    return;
  }
  if (f->state == WR_FWD_ANSWERED) {
    if (now >= f->end_at) wr_fwd_close(f);
    return;
  }
  if (f->state == WR_FWD_LINGER) {
    if (now >= f->quiet_at || now >= f->linger_end) wr_fwd_close(f);
    return;
  }
  char d[200];
  wr_http_wait w = wr_http_timer_expired(&f->wt, now);
  switch (w) {
  case WR_HTTP_WAIT_NONE:
    return; /* early, or the wait changed meanwhile */
  case WR_HTTP_WAIT_ORIGIN:
    snprintf(d, sizeof d,
             "the local server behind tunnel '%.63s' did not answer within "
             "%llu ms",
             f->name, (unsigned long long)f->cfg->upstream_ms);
    error_page(f, 504, d);
    return;
  case WR_HTTP_WAIT_SEND:
    snprintf(d, sizeof d,
             "the local server behind tunnel '%.63s' did not read the request "
             "for %llu ms",
             f->name, (unsigned long long)f->cfg->upstream_ms);
    error_page(f, 504, d);
    return;
  case WR_HTTP_WAIT_BODY: {
    int slow = wr_http_timer_too_slow(&f->wt, now);
    if (slow) count(M(f, body_rate));
    if (wr_http_resp_owed(f->hresp) == 0 || f->resp == RESP_FINAL) {
      /* The origin answered this request already (an early 413): a 408
       * now would be a response nobody asked for.  Or the request was
       * pipelined behind a response still streaming: a 408 would land
       * inside that response, and the origin has this request's head on
       * the same upstream, so it is reset and the visitor gets what is
       * queued, then our FIN. */
      count(M(f, body_timeouts_answered));
      WR_LOG_DEBUGF("ingress", "body_timeout_no_page",
                    "peer=%s name=%s slow=%d", f->peer, f->name, slow);
      wind_down(f);
      if (writes_done(f)) fwd_end(f);
      return;
    }
    if (slow) {
      WR_LOG_DEBUGF("ingress", "body_too_slow", "peer=%s name=%s", f->peer,
                    f->name);
      snprintf(d, sizeof d,
               "the request body arrived slower than %llu bytes/s",
               (unsigned long long)f->cfg->body_min_rate);
      error_page(f, 408, d);
      return;
    }
    error_page(f, 408, "the request body did not arrive in time");
    return;
  }
  case WR_HTTP_WAIT_HEAD:
  case WR_HTTP_WAIT_IDLE:
    /* No response is in progress in these states, so a 408 cannot land
     * inside one.  A connection that never sent a byte is closed quietly
     * and not counted: browsers open spare connections they may not use. */
    if (wr_http_req_buffered(f->hreq) > 0 ||
        (f->in_len > 0 && f->state != WR_FWD_PROXY)) {
      count(M(f, head_timeouts));
      WR_LOG_DEBUGF("ingress", "head_timeout", "peer=%s buffered=%zu",
                    f->peer, wr_http_req_buffered(f->hreq) + f->in_len);
      error_page(f, 408, "the request head did not arrive in time");
    } else {
      /* Never a byte (WAIT_HEAD with nothing buffered): counted apart, as
       * a flood of such connections is how descriptors get held. */
      if (w == WR_HTTP_WAIT_HEAD) count(M(f, silent_closes));
      wr_fwd_close(f); /* idle keep-alive */
    }
    return;
  }
}

wr_tstamp wr_fwd_deadline(const wr_fwd *f) {
  switch (f->state) {
  case WR_FWD_HANDED_OFF:
  case WR_FWD_CLOSED:
    return WR_TSTAMP_NONE;
  case WR_FWD_ANSWERED:
    return f->end_at;
  case WR_FWD_LINGER:
    return f->quiet_at < f->linger_end ? f->quiet_at : f->linger_end;
  default: {
    wr_tstamp dl = wr_http_timer_deadline(&f->wt);
    wr_tstamp sdl = stall_deadline(f);
    return sdl < dl ? sdl : dl;
  }
  }
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
  up_detach(f, 1);
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
