/*
 * The visitor connection's one timer (include/warren/http_timer.h): which
 * side owes bytes, and since when.
 *
 * The state is recomputed from a few counters after every event; a change
 * of state re-arms (since = now), and so does progress by the side being
 * waited for.  Counting heads, ENDs and final responses instead of keeping
 * a queue is enough because both directions are in order: the oldest
 * response owed belongs to request number |resps|, which was sent whole
 * iff ends > resps.  A response may also end before its request does (an
 * origin answering 413 to an upload); then resps == heads while the
 * request is still open, and the visitor's body is what we wait for.
 *
 * A head is timed in total, not between reads: re-arming on every read
 * let a visitor that sends one byte every few seconds hold a connection
 * (and its buffers) forever, the slowloris attack.  head_part marks that
 * the next head has begun; it turns IDLE into HEAD (IDLE is only the wait
 * for a first byte) and, being set once, re-arms once.  HAProxy splits
 * the same way: "timeout http-keep-alive" until a request starts to
 * arrive, then "timeout http-request" for the whole head.
 *
 * A body is timed twice.  body_ms bounds each silence, but a visitor that
 * drips a byte every few seconds is never silent that long and would hold
 * a connection and a tunnel stream forever.  So a body also has a budget
 * that grows with what it delivers, Apache mod_reqtimeout's MinRate: the
 * BODY time of one request may reach body_grace_ms plus 1 s per
 * body_min_rate bytes received, no more.  Only BODY time is spent from
 * the budget.  In SEND the origin is not taking bytes, the ingress has
 * stopped reading the visitor, and a body that stalls there is not the
 * visitor's doing; nor is ORIGIN time (a 100-continue not yet given,
 * earlier pipelined answers owed).
 * A request whose body arrives while a response streams is in BODY, not
 * NONE, whether that response answers an earlier pipelined request or
 * this one (an early answer): the visitor owes those bytes, and leaving
 * them untimed let a visitor drip a body for as long as a response
 * streamed (a slow reader can make that forever).
 * body_spent holds the BODY time before the current BODY wait, which began
 * at body_from; both restart with each request head.
 */
#include <string.h>

#include "warren/http_timer.h"

static wr_http_wait compute(const wr_http_timer *t) {
  if (t->upgraded) return WR_HTTP_WAIT_NONE;
  if (t->resp_started) {
    /* A request still open while a response streams owes us its body,
     * whether it is the request being answered (an origin that answers
     * while it reads: an early 413, or a streaming echo) or one
     * pipelined behind it, so that silence is timed as BODY.  Leaving
     * the first case untimed let 1,000 slow bodies live for as long as
     * their visitors liked (issue 11).  Not while the stream takes no
     * more (the origin, busy with the response, may leave the request
     * unread as long as it likes: a response in progress is never
     * timed), nor while the request waits for its 100-continue, which
     * the origin owes. */
    if (t->req_open && !t->blocked && !t->cont_wait)
      return WR_HTTP_WAIT_BODY;
    return WR_HTTP_WAIT_NONE;
  }
  if (t->ends > t->resps) return WR_HTTP_WAIT_ORIGIN;
  if (t->req_open) {
    if (t->cont_wait && t->heads > t->resps) return WR_HTTP_WAIT_ORIGIN;
    return t->blocked ? WR_HTTP_WAIT_SEND : WR_HTTP_WAIT_BODY;
  }
  return t->served && !t->head_part ? WR_HTTP_WAIT_IDLE : WR_HTTP_WAIT_HEAD;
}

static void update(wr_http_timer *t, wr_tstamp now) {
  wr_http_wait w = compute(t);
  if (w == t->wait) return;
  if (t->wait == WR_HTTP_WAIT_BODY && now > t->body_from)
    t->body_spent += now - t->body_from;
  if (w == WR_HTTP_WAIT_BODY) t->body_from = now;
  t->wait = w;
  t->since = now;
}

/* |a| + |b| without wrapping (WR_TSTAMP_NONE - 1 at most: NONE means no
 * deadline). */
static wr_tstamp add_sat(wr_tstamp a, uint64_t b) {
  return b > WR_TSTAMP_NONE - 1 - a ? WR_TSTAMP_NONE - 1 : a + b;
}

/* When the body's budget runs out if no more bytes come; WR_TSTAMP_NONE
 * without a rate rule.  Valid in BODY only. */
static wr_tstamp rate_deadline(const wr_http_timer *t) {
  uint64_t rate = t->cfg.body_min_rate;
  if (rate == 0) return WR_TSTAMP_NONE;
  /* budget = grace + bytes * 1000 / rate, in ms, saturating. */
  uint64_t whole = t->body_bytes / rate, part = t->body_bytes % rate;
  uint64_t budget = whole > (UINT64_MAX - 1000) / 1000
                        ? UINT64_MAX
                        : whole * 1000 + part * 1000 / rate;
  budget = budget > UINT64_MAX - t->cfg.body_grace_ms
               ? UINT64_MAX
               : budget + t->cfg.body_grace_ms;
  /* Spent already: due now (the timer fires at once). */
  if (budget <= t->body_spent) return t->body_from;
  return add_sat(t->body_from, budget - t->body_spent);
}

void wr_http_timer_init(wr_http_timer *t, const wr_http_timer_config *cfg,
                        wr_tstamp now) {
  memset(t, 0, sizeof *t);
  t->cfg = *cfg;
  /* Keeps bytes % rate * 1000 from wrapping; 1.8e16 B/s is no limit. */
  if (t->cfg.body_min_rate > UINT64_MAX / 1000)
    t->cfg.body_min_rate = UINT64_MAX / 1000;
  t->wait = WR_HTTP_WAIT_HEAD;
  t->since = now;
}

void wr_http_timer_visitor_bytes(wr_http_timer *t, wr_tstamp now) {
  /* Body bytes sent without waiting for the 100 (curl waits 1 s): the
   * visitor is sending, so its silence is what counts from here. */
  if (t->req_open) t->cont_wait = 0;
  update(t, now);
  if (t->wait == WR_HTTP_WAIT_BODY) t->since = now;
}

void wr_http_timer_head_part(wr_http_timer *t, wr_tstamp now) {
  if (t->head_part || t->req_open) return;
  t->head_part = 1;
  /* From IDLE this is a change of state, which re-arms.  On a new
   * connection the state stays HEAD, so re-arm here: the deadline counts
   * from the head's first bytes, not from the connect.  Behind responses
   * still owed (pipelining) the head's time starts when they end. */
  wr_http_wait before = t->wait;
  update(t, now);
  if (before == WR_HTTP_WAIT_HEAD && t->wait == WR_HTTP_WAIT_HEAD)
    t->since = now;
}

void wr_http_timer_body_bytes(wr_http_timer *t, size_t n, wr_tstamp now) {
  (void)now;
  if (!t->req_open) return;
  t->body_bytes = n > UINT64_MAX - t->body_bytes ? UINT64_MAX
                                                 : t->body_bytes + n;
}

void wr_http_timer_req_head(wr_http_timer *t, int expect_continue,
                            wr_tstamp now) {
  t->heads++;
  t->body_bytes = 0;
  t->body_spent = 0;
  t->body_from = now;
  t->req_open = 1;
  t->cont_wait = expect_continue != 0;
  t->blocked = 0;
  t->served = 1;
  t->head_part = 0;
  update(t, now);
}

void wr_http_timer_req_sent(wr_http_timer *t, size_t n, int blocked,
                            wr_tstamp now) {
  t->blocked = blocked != 0;
  update(t, now);
  /* The origin took bytes: progress for a send that waits on credit. */
  if (n > 0 && (t->wait == WR_HTTP_WAIT_SEND || t->wait == WR_HTTP_WAIT_BODY))
    t->since = now;
}

void wr_http_timer_req_end(wr_http_timer *t, wr_tstamp now) {
  if (!t->req_open) return;
  t->ends++;
  t->req_open = 0;
  t->cont_wait = 0;
  t->blocked = 0;
  update(t, now);
}

void wr_http_timer_resp_bytes(wr_http_timer *t, wr_tstamp now) {
  update(t, now);
  if (t->wait == WR_HTTP_WAIT_ORIGIN) t->since = now;
}

void wr_http_timer_resp_head(wr_http_timer *t, int status, wr_tstamp now) {
  int final = status >= 200 || status == 101;
  /* A 100, or an answer without one: the visitor may send its body now
   * (or need not), so the origin no longer owes the go-ahead.  A 103 is
   * not a go-ahead. */
  if (final || status == 100) t->cont_wait = 0;
  if (final) t->resp_started = 1;
  update(t, now);
  if (t->wait == WR_HTTP_WAIT_ORIGIN) t->since = now;
}

void wr_http_timer_resp_end(wr_http_timer *t, int final, wr_tstamp now) {
  if (final && t->resp_started) {
    t->resp_started = 0;
    t->resps++;
  }
  update(t, now);
}

void wr_http_timer_upgraded(wr_http_timer *t, wr_tstamp now) {
  t->upgraded = 1;
  update(t, now);
}

wr_http_wait wr_http_timer_wait(const wr_http_timer *t) { return t->wait; }

wr_tstamp wr_http_timer_deadline(const wr_http_timer *t) {
  uint64_t ms;
  switch (t->wait) {
  case WR_HTTP_WAIT_HEAD: ms = t->cfg.head_ms; break;
  case WR_HTTP_WAIT_IDLE: ms = t->cfg.idle_ms; break;
  case WR_HTTP_WAIT_BODY: ms = t->cfg.body_ms; break;
  case WR_HTTP_WAIT_SEND:
  case WR_HTTP_WAIT_ORIGIN: ms = t->cfg.upstream_ms; break;
  default: return WR_TSTAMP_NONE;
  }
  wr_tstamp dl = add_sat(t->since, ms);
  if (t->wait == WR_HTTP_WAIT_BODY) {
    wr_tstamp rdl = rate_deadline(t);
    if (rdl < dl) dl = rdl;
  }
  return dl;
}

wr_http_wait wr_http_timer_expired(const wr_http_timer *t, wr_tstamp now) {
  wr_tstamp dl = wr_http_timer_deadline(t);
  return dl != WR_TSTAMP_NONE && now >= dl ? t->wait : WR_HTTP_WAIT_NONE;
}

int wr_http_timer_too_slow(const wr_http_timer *t, wr_tstamp now) {
  if (t->wait != WR_HTTP_WAIT_BODY) return 0;
  wr_tstamp rdl = rate_deadline(t);
  return rdl != WR_TSTAMP_NONE && now >= rdl;
}
