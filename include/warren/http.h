/*
 * HTTP/1.1 stream policy for the ingress (src/proxy/head*.c): sans-IO
 * parsers over llhttp (strict mode) that sit on the two directions of one
 * visitor connection.
 *
 * Request direction (wr_http_req, visitor -> origin): parses every request
 * on a keep-alive connection, rejects what DESIGN.md's "Request path"
 * forbids (conflicting Content-Length/Transfer-Encoding, duplicate
 * Content-Length, obsolete line folding, bad chunk sizes, Transfer-Encoding
 * other than "chunked", bare LF line ends, a missing or repeated Host, HTTP
 * versions other than 1.0/1.1 -> 400; CONNECT -> 405; a head over max_head
 * or more than 512 fields -> 431), and rewrites each head: hop-by-hop
 * headers stripped (Connection and the headers it names -- except Host,
 * Content-Length and Transfer-Encoding, which are never stripped --,
 * Keep-Alive, TE, Trailer, Proxy and every Proxy-* header including
 * Proxy-Authorization; Upgrade kept when the request upgrades), incoming
 * X-Forwarded-For values joined and client_addr appended, X-Forwarded-Proto
 * and -Host replaced by ours, X-Request-Id added unless a usable one is
 * present, traceparent passed through, "Connection: close" / "keep-alive"
 * / "upgrade" re-added so the origin hop keeps the visitor's semantics.
 * Absolute-form targets become origin-form with Host set to their
 * authority.  Fields are re-emitted as "Name: value" in their order.
 * Bodies are not rewritten: BODY events are spans of the caller's input
 * (chunk framing and trailers included, already validated), so any size
 * streams through.  docs/HTTP.md explains each choice.
 *
 * Response direction (wr_http_resp, origin -> visitor): finds where each
 * response ends (told which requests were HEAD), sees 1xx interim
 * responses (100-continue) and 101 upgrades, and rewrites each head with
 * the same hop-by-hop policy: Connection and the fields it names,
 * Keep-Alive, Proxy-Connection, TE, Upgrade (except on 101 and 426) and
 * Trailer (except with a chunked body) stripped; "Connection: close" or
 * "keep-alive" re-added as the ingress will treat the visitor's connection.
 * Bodies pass through as is.
 *
 * Both are fed with wr_http_*_feed(), which stops at each event.  An
 * event may consume no input (END and UPGRADE never do; END often falls
 * exactly at the end of a read), so drain until WR_HTTP_EV_NONE, which is
 * returned only once all |len| bytes are consumed:
 *
 *   for (;;) {
 *     wr_ssize n = wr_http_req_feed(h, p, len, &ev);
 *     if (n < 0) -> fatal (WR_ERR_NOMEM, WR_ERR_INTERNAL): close;
 *     p += n; len -= n;
 *     if (ev.type == WR_HTTP_EV_NONE) break;      (len is 0 here)
 *     handle ev;        (ERROR: answer and close; the parser is dead)
 *   }
 *
 * A plain "while (len > 0)" loop would miss an END at the end of a read.
 * Calling feed with len 0 is allowed: it returns a pending END/UPGRADE or
 * NONE.  Views in an event (head, name, data) are valid until the next
 * call on the same parser.  docs/HTTP.md has the full policy.
 */
#ifndef WARREN_HTTP_H
#define WARREN_HTTP_H

#include "warren/types.h"

typedef enum wr_http_ev_type {
  WR_HTTP_EV_NONE = 0,   /* input consumed, nothing to report (need more) */
  WR_HTTP_EV_HEAD,       /* a complete head: ev.data is the rewritten head
                            (owned by the parser) */
  WR_HTTP_EV_BODY,       /* ev.data/len: a span of input to forward as is */
  WR_HTTP_EV_END,        /* the message ended; the next one may follow */
  WR_HTTP_EV_UPGRADE,    /* from here on the direction is a raw byte stream;
                            later feeds return only WR_HTTP_EV_RAW */
  WR_HTTP_EV_RAW,        /* ev.data/len: raw bytes after an upgrade */
  WR_HTTP_EV_ERROR,      /* ev.status (400, 431, 502) and ev.reason; the
                            parser is dead: answer and close */
} wr_http_ev_type;

typedef struct wr_http_ev {
  wr_http_ev_type type;
  const uint8_t *data;   /* HEAD: head bytes; BODY/RAW: input span */
  size_t len;
  /* HEAD of a request: */
  const char *name;      /* NAME from Host "NAME.DOMAIN[:port]", lowercased,
                            NUL-terminated; NULL when Host is not under the
                            domain or NAME is not one DNS label (letters,
                            digits, inner '-', <= 63) (-> 404 naming
                            ev.host) */
  const char *host;      /* the Host header value as received (NUL-term.;
                            the URL's authority for absolute-form) */
  const char *request_id;/* X-Request-Id as forwarded */
  int method_head;       /* 1 for HEAD requests (tell the response side) */
  int expect_continue;   /* Expect: 100-continue */
  int upgrade;           /* the request asks for an Upgrade */
  int keep_alive;        /* the connection stays open after this message
                            (also set on END).  Response: the visitor's
                            connection, i.e. the origin keeps it and the
                            request did not say close */
  unsigned resp_flags;   /* HEAD of a request: the WR_HTTP_EXP_* flags to
                            pass to wr_http_resp_expect() */
  /* HEAD of a response (upgrade = 1 on a 101 that switches protocols): */
  int status;            /* status code (also set with EV_ERROR: 400, 405,
                            431 for requests; 502 for responses) */
  const char *reason;    /* EV_ERROR: one line saying what was wrong */
} wr_http_ev;

typedef struct wr_http_req wr_http_req;

typedef struct wr_http_req_config {
  const char *domain;        /* "localhost", "mesh.test" */
  const char *client_addr;   /* visitor address for X-Forwarded-For */
  const char *proto;         /* "http" or "https" (X-Forwarded-Proto) */
  size_t max_head;           /* 32768: a longer head answers 431 */
  wr_rand_fn rand;           /* request ids; NULL = a counter-based id */
  void *rand_ud;
} wr_http_req_config;

/* Strings in |cfg| are copied.  Returns 0, WR_ERR_INVAL or WR_ERR_NOMEM. */
int wr_http_req_new(wr_http_req **ph, const wr_http_req_config *cfg,
                    const wr_mem *mem);
void wr_http_req_del(wr_http_req *h);
/* Updates the visitor address (PROXY protocol may change it). */
int wr_http_req_set_client_addr(wr_http_req *h, const char *addr);
/* Consumes bytes up to and including the next event (see above). */
wr_ssize wr_http_req_feed(wr_http_req *h, const uint8_t *data, size_t len,
                          wr_http_ev *ev);
/* Bytes of an incomplete head currently buffered (for memory accounting;
 * never more than max_head). */
size_t wr_http_req_buffered(const wr_http_req *h);
/*
 * The origin answered an upgrade request with a final status other than
 * 101: the request direction goes back to parsing HTTP.  Events so far:
 * HEAD (upgrade = 1), [BODY...], END, UPGRADE, RAW...; after this call the
 * next bytes are parsed as a new request (bytes already returned as RAW
 * are gone: an adapter that wants none should stop reading the visitor
 * between the request's UPGRADE and the response's HEAD).  Called before
 * the UPGRADE event, it cancels it.  Returns 0, or WR_ERR_INVAL when no
 * upgrade request is in progress.
 */
int wr_http_req_upgrade_refused(wr_http_req *h);

typedef struct wr_http_resp wr_http_resp;

/* |max_head| 0 means 32768; a longer response head is an ERROR (502).
 * Returns 0 or WR_ERR_NOMEM. */
int wr_http_resp_new(wr_http_resp **ph, size_t max_head, const wr_mem *mem);
void wr_http_resp_del(wr_http_resp *h);
/* What a forwarded request means for its response (request HEAD events
 * carry them in ev.resp_flags): */
#define WR_HTTP_EXP_HEAD 1    /* a HEAD request: the response has no body */
#define WR_HTTP_EXP_UPGRADE 2 /* it asks to upgrade (101 may answer) */
#define WR_HTTP_EXP_CLOSE 4   /* it ends the visitor's connection: the
                                 response gets "Connection: close" and
                                 keep_alive = 0 */
#define WR_HTTP_EXP_HTTP10 8  /* an HTTP/1.0 request: a keep-alive
                                 response says "Connection: keep-alive" */
/* Called once per forwarded request, in order, with its WR_HTTP_EXP_*
 * flags.  Returns 0, WR_ERR_INVAL for unknown flags, WR_ERR_NOMEM, or
 * WR_ERR_LIMIT when WR_HTTP_MAX_PIPELINE responses are already owed.  An
 * adapter keeps below that by not parsing the next request while
 * wr_http_resp_owed() is at its own limit (stop reading the visitor, keep
 * the unparsed bytes, go on when a response ends). */
#define WR_HTTP_MAX_PIPELINE 1024
int wr_http_resp_expect(wr_http_resp *h, unsigned flags);
/* Responses owed: requests passed to wr_http_resp_expect() whose final
 * response has not ended (an interim 1xx does not end one). */
size_t wr_http_resp_owed(const wr_http_resp *h);
/* Response events: HEAD (ev.data/len is the rewritten head to forward,
 * valid until the next call; status, keep_alive), BODY, END; 1xx interim
 * heads (100, 103) come as HEAD then
 * END and the real response follows; 101 to an upgrade request comes as
 * HEAD (upgrade = 1), END, UPGRADE, then RAW; a final non-101 answer to an
 * upgrade request means: call wr_http_req_upgrade_refused().  Responses to
 * HEAD requests and 204/304 have no body.  ERROR (status 502): the origin
 * sent garbage, a response nobody asked for, a head over max_head or with
 * more than 512 fields.  Fatal: WR_ERR_NOMEM, WR_ERR_INTERNAL. */
wr_ssize wr_http_resp_feed(wr_http_resp *h, const uint8_t *data, size_t len,
                           wr_http_ev *ev);
/* 1 while a response is owed (a request was forwarded, its response has
 * not ended): what tells 504 from idle. */
int wr_http_resp_pending(const wr_http_resp *h);
/* The node drains: every response owed whose head has not been rewritten
 * yet ends the visitor's connection ("Connection: close", keep_alive 0),
 * as if its request had said close.  A head already out keeps what it
 * announced. */
void wr_http_resp_close_owed(wr_http_resp *h);
/*
 * The origin's side ended (EOF).  Returns 1 when that ended cleanly: the
 * response in progress was delimited by the close (no Content-Length, not
 * chunked: it is now complete, no END event follows), or the stream was
 * between responses, or raw after an upgrade.  Returns 0 when a response
 * was cut short (inside a head or a length-delimited body) or still owed:
 * if its head was not forwarded yet answer 502, else close the visitor.
 * Later feeds discard their input.
 */
int wr_http_resp_eof(wr_http_resp *h);

/*
 * Error pages (src/proxy/errpage.c): a complete HTTP/1.1 response with a
 * short text/plain body and "Connection: close", written into |dst|.
 * |detail| is one line (e.g. "no tunnel named 'app' on this node").
 * Returns its length or WR_ERR_NOBUF.
 */
wr_ssize wr_http_error_page(uint8_t *dst, size_t cap, int status,
                            const char *detail, const char *request_id);
/*
 * The 404 page for a Host no tunnel serves: names |host| and, when
 * |name| is not NULL, says how to start a tunnel for it; when it is NULL,
 * says which names this node serves (NAME.|domain|).  Returns its length,
 * WR_ERR_NOBUF when |cap| is too small.
 */
wr_ssize wr_http_not_found_page(uint8_t *dst, size_t cap, const char *host,
                                const char *name, const char *domain,
                                const char *request_id);
/* Error pages are never longer than this (detail and ids are truncated). */
#define WR_HTTP_ERROR_PAGE_MAX 2048

#endif
