/*
 * The forwarding core's timer (fwd_int.h): the one deadline of a visitor
 * connection (timer.c's waits, ANSWERED's and LINGER's bounds, send
 * stalls), what happens when it passes, and the send-stall figures the
 * ingress's sweep reads to shed stalled visitors (shed.c).
 */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "fwd_int.h"
#include "warren/err.h"
#include "warren/log.h"

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
                  "peer=%s name=%s owed=%zu held=%zu ms=%llu", f->peer, f->name,
                  f->out_pending, f->owed,
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
    fwd_error_page(f, 504, d);
    return;
  case WR_HTTP_WAIT_SEND:
    snprintf(d, sizeof d,
             "the local server behind tunnel '%.63s' did not read the request "
             "for %llu ms",
             f->name, (unsigned long long)f->cfg->upstream_ms);
    fwd_error_page(f, 504, d);
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
      fwd_wind_down(f);
      if (writes_done(f)) fwd_end(f);
      return;
    }
    if (slow) {
      WR_LOG_DEBUGF("ingress", "body_too_slow", "peer=%s name=%s", f->peer,
                    f->name);
      snprintf(d, sizeof d, "the request body arrived slower than %llu bytes/s",
               (unsigned long long)f->cfg->body_min_rate);
      fwd_error_page(f, 408, d);
      return;
    }
    fwd_error_page(f, 408, "the request body did not arrive in time");
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
      WR_LOG_DEBUGF("ingress", "head_timeout", "peer=%s buffered=%zu", f->peer,
                    wr_http_req_buffered(f->hreq) + f->in_len);
      fwd_error_page(f, 408, "the request head did not arrive in time");
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
