/*
 * The forwarding core, the origin's side (fwd_int.h): response bytes
 * from the upstream are parsed to find each response's end, 101 upgrades
 * and garbage; heads are replaced by their rewritten form, body bytes go
 * to the visitor as they came; the upstream's FIN and end; credit back
 * when the upstream can take more of the request.
 */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "fwd_int.h"
#include "warren/err.h"
#include "warren/log.h"

/* The upstream is done.  If a response is owed and none started, the
 * visitor gets a 502 saying why; otherwise close after flushing. */
static void upstream_ended(wr_fwd *f, const char *why) {
  if (terminal(f)) return;
  if (wr_http_resp_pending(f->hresp) && f->resp != RESP_FINAL) {
    fwd_error_page(f, 502, why);
    return;
  }
  fwd_up_detach(f, 1);
  fwd_set_ending(f);
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
      if (final && (!ev.keep_alive ||
                    (f->vin == VIN_DONE && !wr_http_resp_pending(f->hresp))))
        fwd_set_ending(f);
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
      fwd_error_page(f, 502,
                     "the local server sent a response warren could not parse");
    else
      wr_fwd_close(f);
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
    fwd_send_out(f, buf, on, len);
  }
  if (let_go && f->upst == UP_OPEN && !wr_http_resp_pending(f->hresp)) {
    fwd_up_detach(f, 1); /* what is owed to it becomes stale credit */
    f->upst = UP_NONE;
  }
  /* Responses ended and the visitor paused for a pipelining limit. */
  if (f->vin != VIN_READING && f->state == WR_FWD_OPEN && !f->span)
    fwd_process(f);
}

void wr_fwd_up_fin(wr_fwd *f, wr_tstamp now) {
  f->now = now;
  if (terminal(f)) return;
  (void)wr_http_resp_eof(f->hresp);
  if (f->resp == RESP_RAW) {
    /* Raw stream: the origin closed its half; so do we. */
    fwd_up_detach(f, 0);
    fwd_set_ending(f);
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
    fwd_set_ending(f);
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
    snprintf(why, sizeof why, "the node serving '%.63s' could not be reached",
             f->name);
    break;
  default:
    snprintf(why, sizeof why, "the tunnel '%.63s' closed the stream", f->name);
  }
  if (wr_http_resp_pending(f->hresp) && f->resp != RESP_FINAL)
    fwd_error_page(f, 502, why);
  else
    wr_fwd_close(f);
}

void wr_fwd_up_writable(wr_fwd *f, wr_tstamp now) {
  f->now = now;
  if (!terminal(f)) fwd_process(f);
}
