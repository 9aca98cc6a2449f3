/*
 * The request inspector of `warren http` (docs/INSPECTOR.md): a local web
 * page and a JSON API over the capture ring (warren/capture.h).
 *
 * Two layers, as everywhere in warren:
 *
 *  - the sans-IO API (src/inspect/api.c): the routes, JSON rendering, the
 *    Host/Origin guard and the building of replay requests, on top of the
 *    admin server's core (wr_admin_router, wr_admin_conn).  Unit tests
 *    and the inspect_api fuzzer feed it raw HTTP.
 *  - the libuv side (src/inspect/inspect_uv.c, wr_inspector): the server
 *    on 127.0.0.1:4040 (or the next free port), the tap the client feeds
 *    (wr_client_tap), replays to the local server, server-sent events.
 *
 * The API (JSON; errors are {"error":"..."} with a 4xx status):
 *   GET    /                          the page (HTML, JS and CSS embedded)
 *   GET    /api/status                version, local and public URL, counts
 *   GET    /api/exchanges             newest first; ?limit=N (100, max 1000),
 *                                     ?since=ID (only newer), ?q=TEXT
 *   GET    /api/exchanges/ID          one exchange with headers and bodies
 *   POST   /api/exchanges/ID/replay   send it again (body: optional edits
 *                                     {"method","target","headers","body"
 *                                     or "body_base64"}) -> 202 {"id": new}
 *   DELETE /api/exchanges             forget every exchange
 *   GET    /api/events                server-sent events: "exchange" (a
 *                                     summary, on each change; batched),
 *                                     "clear", "lagged" (too many changes
 *                                     to push: reload the list)
 *
 * Safety: it can replay requests, so every request must name the
 * inspector itself in Host (localhost or an IP literal, with its port: a
 * DNS name pointing at 127.0.0.1 is DNS rebinding), writes must come
 * without Origin or from the same origin, and the page may not be framed.
 */
#ifndef WARREN_INSPECT_H
#define WARREN_INSPECT_H

#include <jansson.h>

#include "warren/admin.h"
#include "warren/capture.h"

/* The SSE channel of /api/events (wr_admin_resp_stream). */
#define WR_INSPECT_CHANNEL 1
/* Edits and replays may carry a body up to the capture's body cap, which
 * base64 and JSON make about 4/3 larger. */
#define WR_INSPECT_MAX_REQUEST (2u << 20)

/* The embedded page (generated from src/inspect/page.html). */
extern const unsigned char wr_inspect_page[];
extern const size_t wr_inspect_page_len;
/* "sha256-..." of its inline script, for the Content-Security-Policy. */
extern const char wr_inspect_page_script_hash[];

typedef struct wr_inspect_api_config {
  wr_capture *capture;    /* borrowed */
  int port;               /* the inspector's own port, for the Host check */
  const char *local_host; /* the local server, "127.0.0.1" */
  int local_port;
  int64_t wall_offset_us; /* capture time + this = Unix time in us */
  /*
   * Sends |req| (a complete request, "Connection: close") to the local
   * server as a replay of exchange |of|, and sets *pid to the new
   * exchange's id.  Returns 0 or a negative code (the API answers 502).
   * NULL: replays answer 503.
   */
  int (*replay)(const uint8_t *req, size_t len, uint64_t of, uint64_t *pid,
                void *user_data);
  /* After DELETE /api/exchanges (may be NULL): tell the open pages. */
  void (*cleared)(void *user_data);
  void *user_data;
} wr_inspect_api_config;

typedef struct wr_inspect_api wr_inspect_api;

/* Copies |cfg| (strings too).  Returns 0, WR_ERR_INVAL or WR_ERR_NOMEM. */
int wr_inspect_api_new(wr_inspect_api **pa, const wr_inspect_api_config *cfg,
                       const wr_mem *mem);
void wr_inspect_api_del(wr_inspect_api *api);
/* The public URL once bound ("http://app.localhost:8080"), for /api/status
 * and the page's title.  Copied. */
void wr_inspect_api_set_url(wr_inspect_api *api, const char *url);
/* Adds the routes, the guard and the body cap to |r|.  Returns 0 or an
 * error of wr_admin_router_add. */
int wr_inspect_api_routes(wr_inspect_api *api, wr_admin_router *r);

/*
 * JSON of one exchange: the summary the list shows, or (|detail|) with
 * headers, bodies and WebSocket messages.  NULL only without memory.
 */
json_t *wr_inspect_exchange_json(const wr_exchange *e, int detail,
                                 int64_t wall_offset_us);
/* One server-sent event "event: |type|\ndata: JSON\n\n" in a new buffer
 * (wr_mem_free it); |e| may be NULL for an event without data.  Returns
 * its length in *plen, or NULL without memory. */
char *wr_inspect_sse(const wr_inspect_api *api, const char *type,
                     const wr_exchange *e, size_t *plen);

/* 1 when |host| (a Host header value) names this inspector: "localhost",
 * an IPv4 literal or a bracketed IPv6 literal, followed by ":|port|". */
int wr_inspect_host_ok(const char *host, int port);

/*
 * Builds the request that replays |e|, with |edits| (a JSON object, may be
 * NULL) applied, into a new buffer *pout (wr_mem_free it).  Hop-by-hop
 * headers, Content-Length and Transfer-Encoding are dropped and replaced
 * by "Content-Length: N" and "Connection: close".  Returns the length, or
 * WR_ERR_INVAL with a one-line reason in |err| (bad method, target,
 * header, body; a truncated body without an edited one; a WebSocket),
 * or WR_ERR_NOMEM.
 */
wr_ssize wr_inspect_build_replay(const wr_exchange *e, const json_t *edits,
                                 uint8_t **pout, char *err, size_t errlen,
                                 const wr_mem *mem);

#endif
