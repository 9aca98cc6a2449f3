/*
 * The admin API: a small HTTP/1.1 server on loopback that operators and
 * warrenctl talk to (members, routes, status, Prometheus /metrics, drain,
 * fault injection).
 *
 * Two layers, as everywhere in warren:
 *
 *  - the sans-IO core (src/admin/router.c, conn.c): a route table with the
 *    bearer-token check (wr_admin_router) and one connection's request
 *    parser (wr_admin_conn, llhttp in strict mode).  Bytes in, one
 *    complete response out; no socket, no clock.  Unit tests and the
 *    admin_request fuzzer drive it directly.
 *  - the libuv server (src/admin/admin_uv.c, wr_admin): listens on
 *    ADDR:PORT, owns the connections, applies the idle timeout and the
 *    connection cap, and writes what the core produces.
 *
 * Handlers run synchronously on the loop thread: they read local state
 * (the member list, the route table), fill a wr_admin_resp and return.
 *
 *   static int members(const wr_admin_req *req, wr_admin_resp *resp,
 *                      void *ud) {
 *     json_t *a = json_array();
 *     ... json_array_append_new(a, json_pack("{s:s,...}", ...)) ...
 *     return wr_admin_resp_json(resp, a);       (steals the reference)
 *   }
 *   wr_admin_new(&a, loop, "127.0.0.1:9081", token, NULL);
 *   wr_admin_route(a, "GET", "/members", members, node);
 *   ...
 *   wr_admin_close(a, on_closed, node);
 *
 * Protocol rules (DESIGN.md "Operations"; docs/ADMIN.md has the details):
 *  - A request head is at most WR_ADMIN_MAX_HEAD bytes (else 431) and a
 *    body at most WR_ADMIN_MAX_BODY (else 413); anything llhttp rejects in
 *    strict mode is 400.  All three close the connection and count in
 *    warren_admin_bad_requests_total.
 *  - With a token configured, every route except GET /healthz needs
 *    "Authorization: Bearer TOKEN" (compared in constant time); otherwise
 *    401 with a JSON error and WWW-Authenticate: Bearer.
 *  - Unknown path: 404; known path, other method: 405 with Allow.
 *  - Errors are JSON: {"error":"one line"}.
 *  - Keep-alive by default; "Connection: close" and HTTP/1.0 without
 *    keep-alive close after the response.  Pipelined requests are answered
 *    in order, one at a time.
 *  - Built-in routes: GET /metrics (text/plain; version=0.0.4) and
 *    GET /healthz ({"ok":true}).
 */
#ifndef WARREN_ADMIN_H
#define WARREN_ADMIN_H

#include <jansson.h>

#include "warren/metrics.h"
#include "warren/types.h"

/* Bounds on one request (see above) and on one response body. */
#define WR_ADMIN_MAX_HEAD 8192
#define WR_ADMIN_MAX_BODY 65536
#define WR_ADMIN_MAX_RESP (16u << 20)
/* Routes per router; method and path lengths. */
#define WR_ADMIN_MAX_ROUTES 64
#define WR_ADMIN_MAX_PATH 256
/* libuv server defaults: connections open at once, and the time a
 * connection has to deliver a complete request after it opened or after
 * the previous response (reads do not extend it). */
#define WR_ADMIN_MAX_CONNS 64
#define WR_ADMIN_IDLE_MS 30000

/* A parsed request, valid during the handler call only. */
typedef struct wr_admin_req {
  const char *method;  /* "GET", "POST", ... */
  const char *path;    /* "/members": the target up to '?', not decoded */
  const char *query;   /* after '?', "" when none, not decoded */
  const uint8_t *body; /* request body (NULL when empty) */
  size_t body_len;
  /* Host and Origin as received (NUL-terminated), NULL when absent, ""
   * when repeated or longer than WR_ADMIN_MAX_HOST: servers that check
   * them (the inspector's DNS-rebinding and cross-origin defence) then
   * refuse rather than pick one. */
  const char *host;
  const char *origin;
} wr_admin_req;
#define WR_ADMIN_MAX_HOST 255

/*
 * Looks up |key| in the query string ("a=1&b=x%20y") and writes its
 * %-decoded value (with '+' as space) into |dst| (NUL-terminated).
 * Returns the value length, WR_ERR_NOTFOUND, WR_ERR_NOBUF (|cap| too
 * small) or WR_ERR_PROTO (bad %-escape).  A key without '=' has value "".
 */
int wr_admin_req_param(const wr_admin_req *req, const char *key, char *dst,
                       size_t cap);

/* The response a handler fills.  Starts as 200, application/json, empty. */
typedef struct wr_admin_resp wr_admin_resp;

/* Sets the status code (100..599; others are ignored). */
void wr_admin_resp_status(wr_admin_resp *resp, int status);
/* Sets the Content-Type; |ctype| must outlive the call (a literal). */
void wr_admin_resp_type(wr_admin_resp *resp, const char *ctype);
/* Appends bytes to the body.  Returns 0, WR_ERR_NOMEM or WR_ERR_TOOBIG
 * (over WR_ADMIN_MAX_RESP). */
int wr_admin_resp_write(wr_admin_resp *resp, const void *data, size_t len);
/* Appends formatted text; same returns, plus WR_ERR_INVAL for a bad
 * format. */
int wr_admin_resp_printf(wr_admin_resp *resp, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Replaces the body with |json| dumped compactly plus "\n", sets the type
 * to application/json and releases |json| (always, even on error).
 * Returns 0, WR_ERR_INVAL (json NULL), WR_ERR_NOMEM or WR_ERR_TOOBIG. */
int wr_admin_resp_json(wr_admin_resp *resp, json_t *json);
/* Replaces the body with {"error":"|msg|"} and sets |status|.
 * Returns 0 or WR_ERR_NOMEM. */
int wr_admin_resp_error(wr_admin_resp *resp, int status, const char *msg);
/* Adds a header line ("X-Frame-Options: DENY", no CRLF).  Returns 0, or
 * WR_ERR_NOBUF when the response's extra headers (512 bytes) are full, or
 * WR_ERR_INVAL for a line with CR or LF. */
int wr_admin_resp_header(wr_admin_resp *resp, const char *line);
/*
 * Makes the response an open-ended stream on |channel| (1..255), as for
 * server-sent events: the head goes out without Content-Length, then the
 * body written so far, and the connection stays open; later bytes are
 * sent with wr_admin_publish() to every connection streaming on that
 * channel, until the client goes away.  Such a connection reads no more
 * requests.  Returns 0 or WR_ERR_INVAL.
 */
int wr_admin_resp_stream(wr_admin_resp *resp, unsigned channel);

/*
 * A route handler.  Returns 0 after filling |resp|, or a negative code:
 * the server then answers 500 {"error":"internal error: <strerror>"} and
 * drops what the handler wrote.  It must not call back into the admin
 * objects except wr_admin_resp_* and wr_admin_req_param.
 */
typedef int (*wr_admin_handler)(const wr_admin_req *req, wr_admin_resp *resp,
                                void *user_data);

/* ---- sans-IO core ------------------------------------------------------ */

typedef struct wr_admin_router wr_admin_router;

/*
 * Creates a route table with the built-in routes.  |token| (copied) is the
 * bearer token, or NULL/"" for no authentication.  |metrics| (borrowed,
 * may be NULL) is exposed at GET /metrics and receives the
 * warren_admin_requests_total / _bad_requests_total / _unauthorized_total
 * counters.  Returns 0, WR_ERR_NOMEM or an error from wr_metrics_counter.
 */
int wr_admin_router_new(wr_admin_router **pr, const char *token,
                        wr_metrics *metrics, const wr_mem *mem);
void wr_admin_router_del(wr_admin_router *r);

/*
 * Adds a route.  |method| is an HTTP method in capitals; |path| starts
 * with '/' and matches exactly, or, when it is longer than "/" and ends
 * in '/', matches every path under that prefix ("/fault/" matches
 * "/fault/drop"; an exact route wins over a prefix).  A later route
 * for the same method and path replaces the earlier one (so the daemon
 * may override /healthz).  Strings are copied.
 * Returns 0, WR_ERR_INVAL, WR_ERR_LIMIT (WR_ADMIN_MAX_ROUTES) or
 * WR_ERR_NOMEM.
 */
int wr_admin_router_add(wr_admin_router *r, const char *method,
                        const char *path, wr_admin_handler fn, void *user_data);

/*
 * A guard runs before every route (after the token check): it returns 0 to
 * let the request through, or 1 after filling |resp| (e.g. 403) to answer
 * it as is.  The inspector checks Host and Origin this way.  Header lines
 * it adds (wr_admin_resp_header) stay on every response.  NULL removes it.
 */
typedef int (*wr_admin_guard)(const wr_admin_req *req, wr_admin_resp *resp,
                              void *user_data);
void wr_admin_router_set_guard(wr_admin_router *r, wr_admin_guard fn,
                               void *user_data);
/* Raises (or lowers) the request body cap from WR_ADMIN_MAX_BODY, up to
 * WR_ADMIN_MAX_RESP.  Returns 0 or WR_ERR_INVAL. */
int wr_admin_router_set_max_body(wr_admin_router *r, size_t max_body);

/* One connection's request parser and response producer. */
typedef struct wr_admin_conn wr_admin_conn;

/* |r| is borrowed and must outlive the connection.  0 or WR_ERR_NOMEM. */
int wr_admin_conn_new(wr_admin_conn **pc, wr_admin_router *r,
                      const wr_mem *mem);
void wr_admin_conn_del(wr_admin_conn *c);

/*
 * Feeds received bytes.  Parses until one request is complete and
 * answered, or the input is used up, and returns how many bytes it
 * consumed.  While a response is waiting (wr_admin_conn_output() returns
 * it) it consumes nothing: write the response, call wr_admin_conn_sent(),
 * then feed the rest.  Malformed input is not an error here: it produces
 * a 4xx response and marks the connection for closing; input after that
 * is discarded (consumed).  Returns >= 0, or WR_ERR_NOMEM (fatal: delete
 * the connection).
 */
wr_ssize wr_admin_conn_feed(wr_admin_conn *c, const uint8_t *data, size_t len);

/*
 * The complete response waiting to be written: sets |*pdata| and |*plen|
 * and returns 1, or returns 0 when none is waiting.  The view is valid
 * until wr_admin_conn_sent() or wr_admin_conn_del().
 */
int wr_admin_conn_output(const wr_admin_conn *c, const uint8_t **pdata,
                         size_t *plen);

/* The waiting response was written out; the connection may read again. */
void wr_admin_conn_sent(wr_admin_conn *c);

/* 1 when the connection must be closed once the output is written
 * (Connection: close, HTTP/1.0, an upgrade request, or bad input). */
int wr_admin_conn_want_close(const wr_admin_conn *c);

/* The channel the connection streams on once its output is written (see
 * wr_admin_resp_stream), or 0 for an ordinary response. */
unsigned wr_admin_conn_stream(const wr_admin_conn *c);

/* ---- libuv server ------------------------------------------------------ */

struct uv_loop_s;
typedef struct wr_admin wr_admin;

/*
 * Creates a router, binds |listen| ("127.0.0.1:9081", "[::1]:9081"; port 0
 * picks a free port, see wr_admin_port) and starts accepting.  |token|
 * as in wr_admin_router_new.  The server owns a metrics registry
 * (wr_admin_metrics) that it exposes at /metrics.
 * Returns 0, WR_ERR_INVAL (bad address), WR_ERR_NOMEM or a libuv code
 * (UV_EADDRINUSE, UV_EACCES, ...).  After a libuv error the listening
 * handle is already closing and its memory is freed by the loop's next
 * turn: run the loop before uv_loop_close().  No callback is ever called
 * for a failed wr_admin_new.
 */
int wr_admin_new(wr_admin **pa, struct uv_loop_s *loop, const char *listen,
                 const char *token, const wr_mem *mem);

/* The registry served at /metrics: modules register their metrics here.
 * Valid until the close callback. */
wr_metrics *wr_admin_metrics(wr_admin *a);

/* Adds a route; see wr_admin_router_add. */
int wr_admin_route(wr_admin *a, const char *method, const char *path,
                   wr_admin_handler fn, void *user_data);

/* The router, to add routes and a guard with the core's calls. */
wr_admin_router *wr_admin_get_router(wr_admin *a);

/*
 * Sends |len| bytes to every connection streaming on |channel| (copied).
 * A client that lets more than WR_ADMIN_STREAM_MAX bytes pile up unread
 * is disconnected (an EventSource reconnects by itself).  Returns the
 * number of connections it went to.
 */
#define WR_ADMIN_STREAM_MAX (1u << 20)
int wr_admin_publish(wr_admin *a, unsigned channel, const void *data,
                     size_t len);
/* Connections streaming on |channel| now (0: nobody listens, so an event
 * need not even be rendered). */
unsigned wr_admin_subscribers(const wr_admin *a, unsigned channel);

/* The port actually bound (useful with port 0). */
int wr_admin_port(const wr_admin *a);

/* Overrides the defaults WR_ADMIN_MAX_CONNS and WR_ADMIN_IDLE_MS (0 keeps
 * the current value).  Connections over the cap get 503 and are closed. */
void wr_admin_set_limits(wr_admin *a, unsigned max_conns, uint64_t idle_ms);

/*
 * Stops listening, closes every connection (responses in flight are
 * dropped) and frees |a| once libuv has closed all handles; then calls
 * |cb| (may be NULL) with |user_data|.  |a| must not be used after this
 * call.  The registry is freed too.
 */
void wr_admin_close(wr_admin *a, void (*cb)(void *user_data), void *user_data);

#endif
