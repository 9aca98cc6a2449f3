/*
 * Tests for src/proxy/timer.c with a hand-driven clock: which side's
 * silence is timed (docs/HTTP.md, "Timers"), for slow uploads, silent
 * origins, pipelining, 100-continue, early answers, missing credit,
 * upgrades, keep-alive, heads timed in total (slowloris) and bodies held
 * to a minimum rate.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "warren/http_timer.h"

#define HEAD_MS 30000
#define IDLE_MS 75000
#define BODY_MS 20000
#define UP_MS 3000

static const wr_http_timer_config cfg = {
    .head_ms = HEAD_MS,
    .idle_ms = IDLE_MS,
    .body_ms = BODY_MS,
    .upstream_ms = UP_MS,
};

/* The rate rule: 500 B/s after 10 s of BODY time (2 ms per byte). */
#define RATE 500
#define GRACE_MS 10000
static const wr_http_timer_config rcfg = {
    .head_ms = HEAD_MS,
    .idle_ms = IDLE_MS,
    .body_ms = BODY_MS,
    .upstream_ms = UP_MS,
    .body_min_rate = RATE,
    .body_grace_ms = GRACE_MS,
};

/* The state is |w| with deadline |dl|, and the timer fires exactly then. */
static void expect(const wr_http_timer *t, wr_http_wait w, wr_tstamp dl) {
  assert_int_equal(wr_http_timer_wait(t), w);
  assert_true(wr_http_timer_deadline(t) == dl);
  if (dl == WR_TSTAMP_NONE) {
    assert_int_equal(wr_http_timer_expired(t, UINT64_MAX - 1),
                     WR_HTTP_WAIT_NONE);
    return;
  }
  assert_int_equal(wr_http_timer_expired(t, dl - 1), WR_HTTP_WAIT_NONE);
  assert_int_equal(wr_http_timer_expired(t, dl), w);
  assert_int_equal(wr_http_timer_expired(t, dl + 1), w);
}

/* A head, and its bytes taken by the stream. */
static void head(wr_http_timer *t, int cont, wr_tstamp now) {
  wr_http_timer_visitor_bytes(t, now);
  wr_http_timer_req_head(t, cont, now);
  wr_http_timer_req_sent(t, 100, 0, now);
}

/* A whole final response at |now|. */
static void response(wr_http_timer *t, int status, wr_tstamp now) {
  wr_http_timer_resp_bytes(t, now);
  wr_http_timer_resp_head(t, status, now);
  wr_http_timer_resp_end(t, 1, now);
}

/* The bug this module fixes: an upload that takes longer than the
 * upstream timeout to send is not the origin's fault.  The visitor's
 * silence is timed while it sends; the origin's from the END on. */
static void test_slow_upload(void **state) {
  (void)state;
  wr_http_timer t;
  wr_http_timer_init(&t, &cfg, 1000);
  head(&t, 0, 1000);
  expect(&t, WR_HTTP_WAIT_BODY, 1000 + BODY_MS);
  /* Body pieces every 900 ms for 60 s: never an upstream deadline. */
  wr_tstamp now = 1000;
  for (int i = 0; i < 66; i++) {
    now += 900;
    wr_http_timer_visitor_bytes(&t, now);
    wr_http_timer_req_sent(&t, 16384, 0, now);
    expect(&t, WR_HTTP_WAIT_BODY, now + BODY_MS);
  }
  wr_http_timer_req_end(&t, now);
  expect(&t, WR_HTTP_WAIT_ORIGIN, now + UP_MS);
  /* The origin stays silent: 504 exactly upstream_ms after the END. */
  assert_int_equal(wr_http_timer_expired(&t, now + UP_MS), WR_HTTP_WAIT_ORIGIN);
}

/* A visitor that stops sending its body gets the body timeout (408). */
static void test_body_stalls(void **state) {
  (void)state;
  wr_http_timer t;
  wr_http_timer_init(&t, &cfg, 0);
  head(&t, 0, 0);
  wr_http_timer_visitor_bytes(&t, 500);
  expect(&t, WR_HTTP_WAIT_BODY, 500 + BODY_MS);
  assert_int_equal(wr_http_timer_expired(&t, 500 + BODY_MS), WR_HTTP_WAIT_BODY);
}

/* Response bytes re-arm the upstream timer until a final head; a final
 * response in progress has no timer; its end starts the idle timer. */
static void test_response_bytes(void **state) {
  (void)state;
  wr_http_timer t;
  wr_http_timer_init(&t, &cfg, 0);
  head(&t, 0, 0);
  wr_http_timer_req_end(&t, 10);
  expect(&t, WR_HTTP_WAIT_ORIGIN, 10 + UP_MS);
  wr_http_timer_resp_bytes(&t, 2000); /* part of a head */
  expect(&t, WR_HTTP_WAIT_ORIGIN, 2000 + UP_MS);
  wr_http_timer_resp_head(&t, 103, 4000); /* Early Hints: interim */
  wr_http_timer_resp_end(&t, 0, 4000);
  expect(&t, WR_HTTP_WAIT_ORIGIN, 4000 + UP_MS);
  wr_http_timer_resp_bytes(&t, 6000);
  wr_http_timer_resp_head(&t, 200, 6000);
  expect(&t, WR_HTTP_WAIT_NONE, WR_TSTAMP_NONE);
  wr_http_timer_resp_bytes(&t, 60000); /* a slow body: still no timer */
  expect(&t, WR_HTTP_WAIT_NONE, WR_TSTAMP_NONE);
  wr_http_timer_resp_end(&t, 1, 61000);
  expect(&t, WR_HTTP_WAIT_IDLE, 61000 + IDLE_MS);
  /* Bytes read do not extend keep-alive idleness; once they are part of
   * a next head, that head has head_ms from then. */
  wr_http_timer_visitor_bytes(&t, 70000);
  expect(&t, WR_HTTP_WAIT_IDLE, 61000 + IDLE_MS);
  wr_http_timer_head_part(&t, 70000);
  expect(&t, WR_HTTP_WAIT_HEAD, 70000 + HEAD_MS);
  /* The next request on the connection starts afresh. */
  head(&t, 0, 80000);
  wr_http_timer_req_end(&t, 80000);
  expect(&t, WR_HTTP_WAIT_ORIGIN, 80000 + UP_MS);
}

/* Pipelining: the origin's silence about the oldest request is timed;
 * later requests (heads, bodies, ENDs) do not re-arm it.  When a response
 * ends the next one is owed from that moment, if its request was sent
 * whole; if it is still arriving, the visitor is waited for. */
static void test_pipelining(void **state) {
  (void)state;
  wr_http_timer t;
  wr_http_timer_init(&t, &cfg, 0);
  head(&t, 0, 0);
  wr_http_timer_req_end(&t, 0);
  expect(&t, WR_HTTP_WAIT_ORIGIN, UP_MS);
  head(&t, 0, 1000);
  wr_http_timer_visitor_bytes(&t, 2000);
  wr_http_timer_req_end(&t, 2000);
  head(&t, 0, 2500); /* a third, still sending its body */
  wr_http_timer_visitor_bytes(&t, 2900);
  expect(&t, WR_HTTP_WAIT_ORIGIN, UP_MS);
  /* Response 1 streams, then ends at 2600: response 2 owed from then. */
  response(&t, 200, 2600);
  expect(&t, WR_HTTP_WAIT_ORIGIN, 2600 + UP_MS);
  /* Response 2 ends; request 3 is still arriving: the visitor's turn. */
  response(&t, 200, 4000);
  expect(&t, WR_HTTP_WAIT_BODY, 4000 + BODY_MS);
  wr_http_timer_visitor_bytes(&t, 5000);
  expect(&t, WR_HTTP_WAIT_BODY, 5000 + BODY_MS);
  wr_http_timer_req_end(&t, 6000);
  expect(&t, WR_HTTP_WAIT_ORIGIN, 6000 + UP_MS);
  response(&t, 200, 7000);
  expect(&t, WR_HTTP_WAIT_IDLE, 7000 + IDLE_MS);
}

/* 100-continue: the origin owes the go-ahead (or an answer) from the head
 * on; after the 100 the visitor owes the body. */
static void test_continue(void **state) {
  (void)state;
  wr_http_timer t;
  wr_http_timer_init(&t, &cfg, 0);
  head(&t, 1, 100);
  expect(&t, WR_HTTP_WAIT_ORIGIN, 100 + UP_MS);
  wr_http_timer_resp_bytes(&t, 600);
  wr_http_timer_resp_head(&t, 100, 600);
  wr_http_timer_resp_end(&t, 0, 600);
  expect(&t, WR_HTTP_WAIT_BODY, 600 + BODY_MS);
  wr_http_timer_visitor_bytes(&t, 900);
  expect(&t, WR_HTTP_WAIT_BODY, 900 + BODY_MS);
  wr_http_timer_req_end(&t, 1200);
  expect(&t, WR_HTTP_WAIT_ORIGIN, 1200 + UP_MS);

  /* A 100 never comes and the origin says nothing: 504. */
  wr_http_timer_init(&t, &cfg, 0);
  head(&t, 1, 0);
  assert_int_equal(wr_http_timer_expired(&t, UP_MS), WR_HTTP_WAIT_ORIGIN);

  /* The visitor does not wait for the 100 (curl sends after 1 s). */
  wr_http_timer_init(&t, &cfg, 0);
  head(&t, 1, 0);
  wr_http_timer_visitor_bytes(&t, 1000);
  expect(&t, WR_HTTP_WAIT_BODY, 1000 + BODY_MS);
  /* A late 100 changes nothing. */
  wr_http_timer_resp_bytes(&t, 1500);
  wr_http_timer_resp_head(&t, 100, 1500);
  wr_http_timer_resp_end(&t, 0, 1500);
  expect(&t, WR_HTTP_WAIT_BODY, 1000 + BODY_MS);

  /* The origin refuses at once (417 or 401) without a 100: the response
   * streams, and the visitor may then send nothing more. */
  wr_http_timer_init(&t, &cfg, 0);
  head(&t, 1, 0);
  response(&t, 401, 500);
  expect(&t, WR_HTTP_WAIT_BODY, 500 + BODY_MS);
}

/* An origin that answers before the upload ended (413, or a streaming
 * echo): no 504 for a response already given; the rest of the body is
 * the visitor's, timed while the answer streams and after it (issue 11:
 * 0 of 1,000 slow bodies were closed in 60 s when it was untimed). */
static void test_early_answer(void **state) {
  (void)state;
  wr_http_timer t;
  wr_http_timer_init(&t, &cfg, 0);
  head(&t, 0, 0);
  wr_http_timer_visitor_bytes(&t, 100);
  wr_http_timer_resp_bytes(&t, 200);
  wr_http_timer_resp_head(&t, 413, 200);
  expect(&t, WR_HTTP_WAIT_BODY, 100 + BODY_MS);
  /* Response bytes are not the visitor's progress. */
  wr_http_timer_resp_bytes(&t, 5000);
  expect(&t, WR_HTTP_WAIT_BODY, 100 + BODY_MS);
  wr_http_timer_visitor_bytes(&t, 6000);
  expect(&t, WR_HTTP_WAIT_BODY, 6000 + BODY_MS);
  /* Request bytes waiting for credit while the answer streams: the
   * origin is not reading, and that is never timed. */
  wr_http_timer_req_sent(&t, 10, 1, 7000);
  expect(&t, WR_HTTP_WAIT_NONE, WR_TSTAMP_NONE);
  wr_http_timer_req_sent(&t, 10, 0, 8000);
  expect(&t, WR_HTTP_WAIT_BODY, 8000 + BODY_MS);
  wr_http_timer_resp_end(&t, 1, 9000);
  expect(&t, WR_HTTP_WAIT_BODY, 8000 + BODY_MS);
  wr_http_timer_req_end(&t, 400);
  expect(&t, WR_HTTP_WAIT_IDLE, 400 + IDLE_MS);
}

/* Request bytes waiting for stream credit: the origin (or the tunnel) is
 * not taking them, and each time it takes some the timer starts again. */
static void test_send_blocked(void **state) {
  (void)state;
  wr_http_timer t;
  wr_http_timer_init(&t, &cfg, 0);
  head(&t, 0, 0);
  wr_http_timer_visitor_bytes(&t, 100);
  wr_http_timer_req_sent(&t, 4096, 1, 100);
  expect(&t, WR_HTTP_WAIT_SEND, 100 + UP_MS);
  wr_http_timer_req_sent(&t, 0, 1, 2000); /* no credit came: no progress */
  expect(&t, WR_HTTP_WAIT_SEND, 100 + UP_MS);
  wr_http_timer_req_sent(&t, 8192, 1, 3000);
  expect(&t, WR_HTTP_WAIT_SEND, 3000 + UP_MS);
  wr_http_timer_req_sent(&t, 100, 0, 4000);
  expect(&t, WR_HTTP_WAIT_BODY, 4000 + BODY_MS);
  wr_http_timer_req_sent(&t, 100, 1, 5000);
  assert_int_equal(wr_http_timer_expired(&t, 5000 + UP_MS), WR_HTTP_WAIT_SEND);
  /* Pipelined behind a request the origin owes an answer to, the
   * oldest silence is what counts. */
  wr_http_timer_init(&t, &cfg, 0);
  head(&t, 0, 0);
  wr_http_timer_req_end(&t, 0);
  head(&t, 0, 100);
  wr_http_timer_req_sent(&t, 1, 1, 200);
  expect(&t, WR_HTTP_WAIT_ORIGIN, UP_MS);
  response(&t, 200, 1000);
  expect(&t, WR_HTTP_WAIT_SEND, 1000 + UP_MS);
}

/* A request pipelined behind a response that is streaming: its body is
 * the visitor's to send, so it is timed (idle and rate) while the earlier
 * response streams, not only once that response has ended. */
static void test_pipelined_body_while_streaming(void **state) {
  (void)state;
  wr_http_timer t;
  wr_http_timer_init(&t, &rcfg, 0);
  head(&t, 0, 0);
  wr_http_timer_req_end(&t, 0);
  wr_http_timer_resp_bytes(&t, 500);
  wr_http_timer_resp_head(&t, 200, 500); /* response 1 streams */
  expect(&t, WR_HTTP_WAIT_NONE, WR_TSTAMP_NONE);
  head(&t, 0, 1000); /* request 2 pipelined, its body under way */
  wr_http_timer_body_bytes(&t, 10, 1000);
  /* Idle and rate limits from the head on (10 bytes: +20 ms budget). */
  expect(&t, WR_HTTP_WAIT_BODY, 1000 + GRACE_MS + 20);
  assert_true(wr_http_timer_too_slow(&t, 1000 + GRACE_MS + 20));
  /* Response bytes keep streaming: they are no visitor progress. */
  wr_http_timer_resp_bytes(&t, 5000);
  expect(&t, WR_HTTP_WAIT_BODY, 1000 + GRACE_MS + 20);
  /* Without the rate rule the idle limit applies, from the last bytes. */
  wr_http_timer_init(&t, &cfg, 0);
  head(&t, 0, 0);
  wr_http_timer_req_end(&t, 0);
  wr_http_timer_resp_head(&t, 200, 500);
  head(&t, 0, 1000);
  wr_http_timer_visitor_bytes(&t, 3000);
  expect(&t, WR_HTTP_WAIT_BODY, 3000 + BODY_MS);
  /* Bytes waiting for credit while the origin is busy answering: not
   * the visitor's doing, and a response in progress is never timed. */
  wr_http_timer_req_sent(&t, 10, 1, 4000);
  expect(&t, WR_HTTP_WAIT_NONE, WR_TSTAMP_NONE);
  wr_http_timer_req_sent(&t, 10, 0, 6000);
  expect(&t, WR_HTTP_WAIT_BODY, 6000 + BODY_MS);
  /* Response 1 ends: the same BODY wait goes on. */
  wr_http_timer_resp_end(&t, 1, 7000);
  expect(&t, WR_HTTP_WAIT_BODY, 6000 + BODY_MS);
  wr_http_timer_req_end(&t, 8000);
  expect(&t, WR_HTTP_WAIT_ORIGIN, 8000 + UP_MS);
  /* Rate budget: only the BODY time is spent, across the streaming and
   * after it (2 s while streaming, then SEND for 5 s, then BODY). */
  wr_http_timer_init(&t, &rcfg, 0);
  head(&t, 0, 0);
  wr_http_timer_req_end(&t, 0);
  wr_http_timer_resp_head(&t, 200, 100);
  head(&t, 0, 1000);
  wr_http_timer_req_sent(&t, 10, 1, 3000);
  wr_http_timer_req_sent(&t, 10, 0, 8000);
  expect(&t, WR_HTTP_WAIT_BODY, 8000 + GRACE_MS - 2000);
  /* A pipelined 100-continue request: the origin owes the go-ahead. */
  wr_http_timer_init(&t, &cfg, 0);
  head(&t, 0, 0);
  wr_http_timer_req_end(&t, 0);
  wr_http_timer_resp_head(&t, 200, 100);
  head(&t, 1, 1000);
  expect(&t, WR_HTTP_WAIT_NONE, WR_TSTAMP_NONE);
  wr_http_timer_visitor_bytes(&t, 2000); /* sent without waiting */
  expect(&t, WR_HTTP_WAIT_BODY, 2000 + BODY_MS);
  /* The same when the response streaming answers the open request
   * itself (an early answer). */
  wr_http_timer_init(&t, &cfg, 0);
  head(&t, 0, 0);
  wr_http_timer_resp_head(&t, 413, 100);
  expect(&t, WR_HTTP_WAIT_BODY, BODY_MS);
}

/* An upgrade: the origin owes the 101; then no timer at all. */
static void test_upgrade(void **state) {
  (void)state;
  wr_http_timer t;
  wr_http_timer_init(&t, &cfg, 0);
  head(&t, 0, 0);
  wr_http_timer_req_end(&t, 0);
  expect(&t, WR_HTTP_WAIT_ORIGIN, UP_MS);
  wr_http_timer_visitor_bytes(&t, 1000); /* RAW before the 101 */
  expect(&t, WR_HTTP_WAIT_ORIGIN, UP_MS);
  wr_http_timer_resp_bytes(&t, 2000);
  wr_http_timer_resp_head(&t, 101, 2000);
  wr_http_timer_resp_end(&t, 1, 2000);
  wr_http_timer_upgraded(&t, 2000);
  expect(&t, WR_HTTP_WAIT_NONE, WR_TSTAMP_NONE);
  wr_http_timer_visitor_bytes(&t, 9000);
  wr_http_timer_resp_bytes(&t, 9000);
  expect(&t, WR_HTTP_WAIT_NONE, WR_TSTAMP_NONE);
}

/* Before the first request: head_ms from the open, then from the head's
 * first bytes. */
static void test_head(void **state) {
  (void)state;
  wr_http_timer t;
  wr_http_timer_init(&t, &cfg, 50);
  expect(&t, WR_HTTP_WAIT_HEAD, 50 + HEAD_MS);
  /* Bytes that held no head (a PROXY header, say) change nothing. */
  wr_http_timer_visitor_bytes(&t, 500);
  expect(&t, WR_HTTP_WAIT_HEAD, 50 + HEAD_MS);
  wr_http_timer_visitor_bytes(&t, 1000);
  wr_http_timer_head_part(&t, 1000);
  expect(&t, WR_HTTP_WAIT_HEAD, 1000 + HEAD_MS);
  /* END without an open request (a tunnel upgrade is not counted) and
   * the deadline does not wrap. */
  wr_http_timer_req_end(&t, 2000);
  expect(&t, WR_HTTP_WAIT_HEAD, 1000 + HEAD_MS);
  wr_http_timer_config big = cfg;
  big.head_ms = UINT64_MAX;
  wr_http_timer_init(&t, &big, 10);
  assert_true(wr_http_timer_deadline(&t) == WR_TSTAMP_NONE - 1);
}

/* A head sent one byte every 200 ms (slowloris): the deadline is
 * head_ms after its first byte however many bytes follow, on a new
 * connection and on a keep-alive one; a head that does complete in time
 * starts the next request as usual. */
static void test_slowloris(void **state) {
  (void)state;
  wr_http_timer t;
  wr_http_timer_init(&t, &cfg, 0);
  wr_tstamp now = 7000; /* the first byte, after a quiet connect */
  wr_http_timer_visitor_bytes(&t, now);
  wr_http_timer_head_part(&t, now);
  wr_tstamp dl = now + HEAD_MS;
  for (; now + 200 < dl; now += 200) {
    wr_http_timer_visitor_bytes(&t, now);
    wr_http_timer_head_part(&t, now);
    expect(&t, WR_HTTP_WAIT_HEAD, dl);
  }
  assert_int_equal(wr_http_timer_expired(&t, dl), WR_HTTP_WAIT_HEAD);

  /* The same after a response on a keep-alive connection: idle_ms for
   * the first byte, then head_ms for the head, not a re-arm per byte. */
  wr_http_timer_init(&t, &cfg, 0);
  head(&t, 0, 0);
  wr_http_timer_req_end(&t, 0);
  response(&t, 200, 100);
  expect(&t, WR_HTTP_WAIT_IDLE, 100 + IDLE_MS);
  now = 100 + IDLE_MS - 1; /* just in time */
  wr_http_timer_visitor_bytes(&t, now);
  wr_http_timer_head_part(&t, now);
  dl = now + HEAD_MS;
  expect(&t, WR_HTTP_WAIT_HEAD, dl);
  for (now += 200; now < dl; now += 200) {
    wr_http_timer_visitor_bytes(&t, now);
    wr_http_timer_head_part(&t, now);
  }
  expect(&t, WR_HTTP_WAIT_HEAD, dl);

  /* The head completes in time: the request runs with its own timers
   * and the next head gets a fresh head_ms. */
  head(&t, 0, dl - 1);
  wr_http_timer_req_end(&t, dl - 1);
  expect(&t, WR_HTTP_WAIT_ORIGIN, dl - 1 + UP_MS);
  response(&t, 200, dl);
  wr_http_timer_head_part(&t, dl + 10);
  expect(&t, WR_HTTP_WAIT_HEAD, dl + 10 + HEAD_MS);
}

/* Part of a pipelined head read while the origin owes answers: the
 * origin is timed first, and the head's time starts when the visitor's
 * turn does (the last response owed ended), not when its bytes came. */
static void test_head_behind_responses(void **state) {
  (void)state;
  wr_http_timer t;
  wr_http_timer_init(&t, &cfg, 0);
  head(&t, 0, 0);
  wr_http_timer_req_end(&t, 0);
  wr_http_timer_head_part(&t, 0);
  expect(&t, WR_HTTP_WAIT_ORIGIN, UP_MS);
  wr_http_timer_head_part(&t, 2000);
  expect(&t, WR_HTTP_WAIT_ORIGIN, UP_MS);
  response(&t, 200, 2500);
  expect(&t, WR_HTTP_WAIT_HEAD, 2500 + HEAD_MS);
  wr_http_timer_head_part(&t, 9000);
  expect(&t, WR_HTTP_WAIT_HEAD, 2500 + HEAD_MS);
  /* A call while a body is open means nothing (the head is done). */
  wr_http_timer_init(&t, &cfg, 0);
  head(&t, 0, 0);
  wr_http_timer_head_part(&t, 100);
  wr_http_timer_visitor_bytes(&t, 100);
  expect(&t, WR_HTTP_WAIT_BODY, 100 + BODY_MS);
  wr_http_timer_req_end(&t, 200);
  response(&t, 200, 300);
  expect(&t, WR_HTTP_WAIT_IDLE, 300 + IDLE_MS);
}

/* A body dripped a byte every 2 s is never silent for body_ms, but its
 * budget (10 s + 2 ms per byte) runs out after 5 bytes: 408 at 10 010 ms,
 * and the rate rule is named as the cause. */
static void test_body_drip(void **state) {
  (void)state;
  wr_http_timer t;
  wr_http_timer_init(&t, &rcfg, 0);
  head(&t, 0, 0);
  expect(&t, WR_HTTP_WAIT_BODY, GRACE_MS);
  wr_tstamp now = 0;
  for (int k = 1; k <= 5; k++) {
    now += 2000;
    wr_http_timer_visitor_bytes(&t, now);
    wr_http_timer_body_bytes(&t, 1, now);
    wr_http_timer_req_sent(&t, 1, 0, now);
    assert_false(wr_http_timer_too_slow(&t, now));
    wr_tstamp rdl = GRACE_MS + (wr_tstamp)k * 1000 / RATE;
    expect(&t, WR_HTTP_WAIT_BODY, rdl < now + BODY_MS ? rdl : now + BODY_MS);
  }
  assert_true(wr_http_timer_deadline(&t) == GRACE_MS + 10);
  assert_false(wr_http_timer_too_slow(&t, GRACE_MS + 9));
  assert_true(wr_http_timer_too_slow(&t, GRACE_MS + 10));
  /* Silence, not slowness: without the rate rule the same drip lives on,
   * and body_ms of silence is not reported as too slow. */
  wr_http_timer_init(&t, &cfg, 0);
  head(&t, 0, 0);
  for (now = 2000; now < 600000; now += 2000) {
    wr_http_timer_visitor_bytes(&t, now);
    wr_http_timer_body_bytes(&t, 1, now);
    expect(&t, WR_HTTP_WAIT_BODY, now + BODY_MS);
  }
  assert_false(wr_http_timer_too_slow(&t, now + BODY_MS));
  wr_http_timer_init(&t, &rcfg, 0);
  head(&t, 0, 0);
  wr_http_timer_body_bytes(&t, 100000, 0); /* 200 s of budget */
  assert_int_equal(wr_http_timer_expired(&t, BODY_MS), WR_HTTP_WAIT_BODY);
  assert_false(wr_http_timer_too_slow(&t, BODY_MS));
}

/* A fast body never meets the rate deadline: 1 MiB in 16 KiB pieces every
 * 100 ms; only silence is timed. */
static void test_body_fast(void **state) {
  (void)state;
  wr_http_timer t;
  wr_http_timer_init(&t, &rcfg, 0);
  head(&t, 0, 0);
  wr_tstamp now = 0;
  for (int i = 0; i < 64; i++) {
    now += 100;
    wr_http_timer_visitor_bytes(&t, now);
    wr_http_timer_body_bytes(&t, 16384, now);
    wr_http_timer_req_sent(&t, 16384, 0, now);
    expect(&t, WR_HTTP_WAIT_BODY, now + BODY_MS);
  }
  wr_http_timer_req_end(&t, now);
  expect(&t, WR_HTTP_WAIT_ORIGIN, now + UP_MS);
}

/* Only BODY time is spent from the budget: while the stream has no credit
 * (SEND) the ingress is not reading the visitor; while a 100-continue is
 * owed the visitor is not the one waited for.  Body bytes parsed
 * meanwhile still count.  An early answer streaming does not stop the
 * budget: the body is still the visitor's to send. */
static void test_body_rate_only_when_reading(void **state) {
  (void)state;
  wr_http_timer t;
  wr_http_timer_init(&t, &rcfg, 0);
  head(&t, 0, 0);
  wr_http_timer_visitor_bytes(&t, 1000);
  wr_http_timer_body_bytes(&t, 100, 1000);
  wr_http_timer_req_sent(&t, 50, 1, 1000); /* 1 s of BODY spent */
  expect(&t, WR_HTTP_WAIT_SEND, 1000 + UP_MS);
  /* Credit trickles back for 100 s; the visitor cannot be read. */
  wr_tstamp now = 1000;
  for (; now < 100000; now += 2000)
    wr_http_timer_req_sent(&t, 1, 1, now);
  assert_int_equal(wr_http_timer_wait(&t), WR_HTTP_WAIT_SEND);
  wr_http_timer_req_sent(&t, 49, 0, now);
  /* Budget 10 s + 200 ms, 1 s of it spent. */
  expect(&t, WR_HTTP_WAIT_BODY, now + GRACE_MS + 200 - 1000);
  assert_true(wr_http_timer_too_slow(&t, now + GRACE_MS + 200 - 1000));

  /* 100-continue: the budget starts with the 100, not the head. */
  wr_http_timer_init(&t, &rcfg, 0);
  head(&t, 1, 0);
  expect(&t, WR_HTTP_WAIT_ORIGIN, UP_MS);
  wr_http_timer_resp_bytes(&t, 2500);
  wr_http_timer_resp_head(&t, 100, 2500);
  wr_http_timer_resp_end(&t, 0, 2500);
  expect(&t, WR_HTTP_WAIT_BODY, 2500 + GRACE_MS);

  /* An early answer (413) streams: the body's budget keeps running, so
   * a body dripped behind it still ends at its rate deadline. */
  wr_http_timer_init(&t, &rcfg, 0);
  head(&t, 0, 0);
  wr_http_timer_resp_bytes(&t, 1000);
  wr_http_timer_resp_head(&t, 413, 1000);
  for (now = 1000; now < 9000; now += 1000) {
    wr_http_timer_visitor_bytes(&t, now);
    wr_http_timer_body_bytes(&t, 1, now);
  }
  expect(&t, WR_HTTP_WAIT_BODY, GRACE_MS + 8 * 2);
  assert_true(wr_http_timer_too_slow(&t, GRACE_MS + 16));
  wr_http_timer_resp_end(&t, 1, 9500);
  expect(&t, WR_HTTP_WAIT_BODY, GRACE_MS + 8 * 2);
}

/* Each request has its own budget; body bytes outside a request (none
 * should come) change nothing, and huge values saturate. */
static void test_body_rate_per_request(void **state) {
  (void)state;
  wr_http_timer t;
  wr_http_timer_init(&t, &rcfg, 0);
  head(&t, 0, 0);
  wr_http_timer_visitor_bytes(&t, 9000);
  wr_http_timer_body_bytes(&t, 10, 9000);
  wr_http_timer_req_end(&t, 9000);
  wr_http_timer_body_bytes(&t, 1000000, 9000); /* ignored: no request */
  response(&t, 200, 9500);
  head(&t, 0, 20000);
  expect(&t, WR_HTTP_WAIT_BODY, 20000 + GRACE_MS);

  wr_http_timer_config big = rcfg;
  big.body_grace_ms = UINT64_MAX;
  big.body_min_rate = UINT64_MAX;
  wr_http_timer_init(&t, &big, 5);
  head(&t, 0, 5);
  for (int i = 0; i < 4; i++) wr_http_timer_body_bytes(&t, SIZE_MAX, 5);
  expect(&t, WR_HTTP_WAIT_BODY, 5 + BODY_MS);
  big.body_grace_ms = 0;
  big.body_min_rate = 1;
  wr_http_timer_init(&t, &big, 5);
  head(&t, 0, 5);
  assert_true(wr_http_timer_too_slow(&t, 5)); /* no grace, no bytes */
  for (int i = 0; i < 4; i++) wr_http_timer_body_bytes(&t, SIZE_MAX, 5);
  expect(&t, WR_HTTP_WAIT_BODY, 5 + BODY_MS);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_slow_upload),
      cmocka_unit_test(test_body_stalls),
      cmocka_unit_test(test_response_bytes),
      cmocka_unit_test(test_pipelining),
      cmocka_unit_test(test_continue),
      cmocka_unit_test(test_early_answer),
      cmocka_unit_test(test_send_blocked),
      cmocka_unit_test(test_pipelined_body_while_streaming),
      cmocka_unit_test(test_upgrade),
      cmocka_unit_test(test_head),
      cmocka_unit_test(test_slowloris),
      cmocka_unit_test(test_head_behind_responses),
      cmocka_unit_test(test_body_drip),
      cmocka_unit_test(test_body_fast),
      cmocka_unit_test(test_body_rate_only_when_reading),
      cmocka_unit_test(test_body_rate_per_request),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
