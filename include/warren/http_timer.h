/*
 * Which timer a visitor connection runs, and when it expires
 * (src/proxy/timer.c).  Sans-IO: the ingress reports what happened on the
 * connection with the loop's time, arms one uv_timer_t at
 * wr_http_timer_deadline(), and when it fires asks
 * wr_http_timer_expired() what the silence means.  No clock is read here.
 *
 * The rule (docs/HTTP.md, "Timers"): at any moment exactly one side owes
 * us bytes, and only that side's silence is timed.
 *
 *   NONE    a final response is streaming to the visitor, or the
 *           connection was upgraded: no timer.  (A request whose body is
 *           still arriving while a response streams, be it its own early
 *           answer or an earlier request's, is BODY instead, unless its
 *           bytes wait for stream credit or for a 100-continue: the
 *           visitor owes them.)
 *   ORIGIN  a request was forwarded whole (its END went into the stream)
 *           and its response has not started, or a request with
 *           "Expect: 100-continue" waits for the origin's 100 or final
 *           answer: upstream_ms since the later of entering this state and
 *           the last response bytes (interim heads, parts of a head).
 *           Expiry: 504.  Pipelined requests sent meanwhile do not re-arm
 *           it: the origin is still silent about the oldest one.
 *   SEND    a request is being forwarded and the origin does not take it
 *           (no stream credit): upstream_ms since it last took bytes.
 *           Expiry: 504 (nginx's proxy_send_timeout).
 *   BODY    a request is being forwarded and we wait for the visitor's
 *           next body bytes: body_ms since the last ones.  With
 *           body_min_rate, also a rate: the time spent in BODY during
 *           this request may not exceed body_grace_ms plus one second
 *           per body_min_rate body bytes received (Apache
 *           mod_reqtimeout's MinRate); time in other states (SEND: the
 *           origin is not reading, so neither are we) does not count.
 *           Expiry: 408 (wr_http_timer_too_slow() tells which rule).
 *   HEAD    part of a request head has been read and the head is not
 *           complete: head_ms in total, from the moment the head became
 *           the visitor's turn (its first bytes, or the end of the last
 *           response owed when the visitor pipelined them); later bytes
 *           do not re-arm it, so a head trickled a byte at a time still
 *           ends at the deadline (slowloris).  Also a new connection
 *           before its first bytes: head_ms since it opened.  Expiry: 408
 *           when part of a head is buffered, else a quiet close.
 *   IDLE    between requests on a keep-alive connection, before any byte
 *           of the next head: idle_ms since the state began.  The first
 *           bytes of a head move the connection to HEAD.  Expiry: as HEAD.
 *
 * The struct is embedded in the caller's connection (no allocation, like a
 * libuv handle); its fields are private.
 */
#ifndef WARREN_HTTP_TIMER_H
#define WARREN_HTTP_TIMER_H

#include "warren/types.h"

typedef enum wr_http_wait {
  WR_HTTP_WAIT_NONE = 0,
  WR_HTTP_WAIT_HEAD,
  WR_HTTP_WAIT_IDLE,
  WR_HTTP_WAIT_BODY,
  WR_HTTP_WAIT_SEND,
  WR_HTTP_WAIT_ORIGIN,
} wr_http_wait;

typedef struct wr_http_timer_config {
  uint64_t head_ms;      /* HEAD */
  uint64_t idle_ms;      /* IDLE */
  uint64_t body_ms;      /* BODY */
  uint64_t upstream_ms;  /* ORIGIN and SEND */
  uint64_t body_min_rate; /* BODY: bytes/s on average after the grace;
                             0 = no rate rule */
  uint64_t body_grace_ms; /* BODY time a request gets before any byte
                             counts against it */
} wr_http_timer_config;

typedef struct wr_http_timer {
  wr_http_timer_config cfg;
  uint64_t heads;        /* requests whose head was forwarded */
  uint64_t ends;         /* ... and whose END was */
  uint64_t resps;        /* final responses ended */
  int req_open;          /* a request's head went, its END not yet */
  int cont_wait;         /* it asked for 100-continue; nothing came yet */
  int resp_started;      /* a final response head went, its END not yet */
  int blocked;           /* request bytes wait for stream credit */
  int upgraded;
  int served;            /* a request was seen: IDLE, not HEAD */
  int head_part;         /* part of the next head was read */
  wr_http_wait wait;
  wr_tstamp since;       /* when the current wait began or was re-armed */
  uint64_t body_bytes;   /* body bytes of the open request */
  uint64_t body_spent;   /* ms in BODY for it before body_from */
  wr_tstamp body_from;   /* when the current BODY wait began */
} wr_http_timer;

/* A new connection: HEAD from |now|. */
void wr_http_timer_init(wr_http_timer *t, const wr_http_timer_config *cfg,
                        wr_tstamp now);
/* Bytes arrived from the visitor (any, before they are parsed).  They
 * re-arm BODY only: a head has one deadline however it is split. */
void wr_http_timer_visitor_bytes(wr_http_timer *t, wr_tstamp now);
/* After a read: part of a request head is held and the head is not
 * complete (the parser buffers it, or it waits unparsed).  The first call
 * after a request head (or on a new connection) starts the head's
 * deadline; later calls change nothing. */
void wr_http_timer_head_part(wr_http_timer *t, wr_tstamp now);
/* |n| body bytes of the open request were parsed (they count toward
 * body_min_rate; whichever state the timer is in, they are the visitor's
 * progress). */
void wr_http_timer_body_bytes(wr_http_timer *t, size_t n, wr_tstamp now);
/* A request head was routed and is being forwarded.  Starts the body's
 * rate accounting afresh. */
void wr_http_timer_req_head(wr_http_timer *t, int expect_continue,
                            wr_tstamp now);
/* |n| request bytes went into the stream; |blocked|: some still wait for
 * credit. */
void wr_http_timer_req_sent(wr_http_timer *t, size_t n, int blocked,
                            wr_tstamp now);
/* The request's END: everything before it went into the stream. */
void wr_http_timer_req_end(wr_http_timer *t, wr_tstamp now);
/* Bytes arrived from the origin on this connection's stream. */
void wr_http_timer_resp_bytes(wr_http_timer *t, wr_tstamp now);
/* A response head: |status| 1xx is interim (100 releases a request
 * waiting for 100-continue), 101 and >= 200 are final. */
void wr_http_timer_resp_head(wr_http_timer *t, int status, wr_tstamp now);
/* A response's END (|final| as its head was). */
void wr_http_timer_resp_end(wr_http_timer *t, int final, wr_tstamp now);
/* The connection became a raw byte stream (101). */
void wr_http_timer_upgraded(wr_http_timer *t, wr_tstamp now);

/* What is being waited for, and until when (WR_TSTAMP_NONE: no timer). */
wr_http_wait wr_http_timer_wait(const wr_http_timer *t);
wr_tstamp wr_http_timer_deadline(const wr_http_timer *t);
/* The wait that ran out at |now|, or WR_HTTP_WAIT_NONE when none has (an
 * early call is harmless: re-arm at the deadline). */
wr_http_wait wr_http_timer_expired(const wr_http_timer *t, wr_tstamp now);
/* 1 when a BODY expiry at |now| is the rate rule (the body came slower
 * than body_min_rate), 0 when it is body_ms of silence or no expiry. */
int wr_http_timer_too_slow(const wr_http_timer *t, wr_tstamp now);

#endif
