/*
 * HTTP/1.1 stream policy for the ingress (src/proxy/head.c): sans-IO
 * parsers over llhttp (strict mode) that sit on the two directions of one
 * visitor connection.
 *
 * Request direction (wr_http_req, visitor -> origin): parses every request
 * on a keep-alive connection, rejects what DESIGN.md's "Request path"
 * forbids (conflicting Content-Length/Transfer-Encoding, duplicate
 * Content-Length, obsolete line folding, bad chunk sizes -> 400; a head
 * over max_head -> 431), and rewrites each head: hop-by-hop headers
 * stripped (Connection and the headers it names, Keep-Alive, Proxy-*,
 * TE, Trailer; Upgrade kept when the request upgrades), X-Forwarded-For /
 * -Proto / -Host added (appended to an incoming X-Forwarded-For),
 * X-Request-Id added unless present, traceparent passed through.  Bodies
 * are not rewritten: BODY events are spans of the caller's input (chunk
 * framing included, already validated), so any size streams through.
 *
 * Response direction (wr_http_resp, origin -> visitor): finds where each
 * response ends (told which requests were HEAD), sees 1xx interim
 * responses (100-continue) and 101 upgrades.  Bytes pass through as is.
 *
 * Both are fed with wr_http_*_feed(), which stops at each event:
 *
 *   while (len > 0) {
 *     wr_ssize n = wr_http_req_feed(h, p, len, &ev);
 *     if (n < 0) -> fatal (WR_ERR_NOMEM); else handle ev; p += n; len -= n;
 *   }
 *
 * Views in an event (head, name, data) are valid until the next call.
 */
#ifndef WARREN_HTTP_H
#define WARREN_HTTP_H

#include "warren/types.h"

typedef enum wr_http_ev_type {
  WR_HTTP_EV_NONE = 0,   /* input consumed, nothing to report (need more) */
  WR_HTTP_EV_HEAD,       /* a complete head: ev.head is the rewritten head
                            (request) or the raw head (response) */
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
                            domain (-> 404 naming ev.host) */
  const char *host;      /* the Host header value as received (NUL-term.) */
  const char *request_id;/* X-Request-Id as forwarded */
  int method_head;       /* 1 for HEAD requests (tell the response side) */
  int expect_continue;   /* Expect: 100-continue */
  int upgrade;           /* the request asks for an Upgrade */
  int keep_alive;        /* the connection stays open after this message */
  /* HEAD of a response: */
  int status;            /* status code (also set with EV_ERROR) */
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
/* Bytes of an incomplete head currently buffered (for memory accounting). */
size_t wr_http_req_buffered(const wr_http_req *h);

typedef struct wr_http_resp wr_http_resp;

int wr_http_resp_new(wr_http_resp **ph, size_t max_head, const wr_mem *mem);
void wr_http_resp_del(wr_http_resp *h);
/* Called once per forwarded request, in order: 1 when it was a HEAD
 * request (its response has no body), and whether it asked to upgrade. */
int wr_http_resp_expect(wr_http_resp *h, int method_head, int upgrade);
/* Response events: HEAD (status; 1xx heads are reported and followed by
 * the real response), BODY, END, UPGRADE (101 to an upgrade request),
 * RAW, ERROR (origin sent garbage: status 502). */
wr_ssize wr_http_resp_feed(wr_http_resp *h, const uint8_t *data, size_t len,
                           wr_http_ev *ev);
/* 1 while a response is owed (a request was forwarded, its response has
 * not ended): what tells 504 from idle. */
int wr_http_resp_pending(const wr_http_resp *h);

/*
 * Error pages (src/proxy/errpage.c): a complete HTTP/1.1 response with a
 * short text/plain body and "Connection: close", written into |dst|.
 * |detail| is one line (e.g. "no tunnel named 'app' on this node").
 * Returns its length or WR_ERR_NOBUF.
 */
wr_ssize wr_http_error_page(uint8_t *dst, size_t cap, int status,
                            const char *detail, const char *request_id);

#endif
