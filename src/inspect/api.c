/*
 * The inspector's JSON API and page, as routes on the admin server's
 * sans-IO core (see inspect.h for the endpoints).
 *
 * Why on the admin core: it already parses requests strictly, bounds
 * heads and bodies, answers pipelined requests in order, and renders JSON
 * errors; the inspector adds what the admin API must not have (no bearer
 * token, a Host/Origin guard, streamed server-sent events, a bigger body
 * cap for edited replays) through the router's hooks.
 *
 * The guard, in order:
 *   1. Host must be this inspector: localhost or an IP literal with our
 *      port.  A page on evil.example whose DNS name is re-pointed at
 *      127.0.0.1 (DNS rebinding) reaches us with Host: evil.example:4040,
 *      and is refused (403), so it can neither read captures nor replay.
 *   2. A write (anything but GET/HEAD) with an Origin header must come
 *      from our own origin, "http://" + Host.  Browsers send Origin on
 *      every cross-origin POST/DELETE, including plain form posts that
 *      need no CORS preflight; scripts (curl, CI) send none and pass.
 *   3. Responses carry X-Frame-Options: DENY and a CSP with
 *      frame-ancestors 'none', so no site can frame the page and trick a
 *      click on Replay.  There are no CORS headers: other origins cannot
 *      read anything.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <arpa/inet.h>
#include <sodium.h>

#include "warren/err.h"
#include "warren/inspect.h"

struct wr_inspect_api {
  const wr_mem *mem;
  wr_inspect_api_config cfg;
  char local_host[64];
  char url[256];
};

/* ---- JSON helpers -------------------------------------------------------- */

/* Length of the valid UTF-8 sequence at |p| (1..4), or 0. */
static size_t utf8_seq(const uint8_t *p, size_t n) {
  uint8_t c = p[0];
  if (c < 0x80) return 1;
  size_t len;
  uint32_t cp;
  if (c >= 0xc2 && c <= 0xdf)
    len = 2, cp = c & 0x1f;
  else if (c >= 0xe0 && c <= 0xef)
    len = 3, cp = c & 0x0f;
  else if (c >= 0xf0 && c <= 0xf4)
    len = 4, cp = c & 0x07;
  else
    return 0;
  if (n < len) return 0;
  for (size_t i = 1; i < len; i++) {
    if ((p[i] & 0xc0) != 0x80) return 0;
    cp = cp << 6 | (p[i] & 0x3f);
  }
  /* Overlong forms, surrogates and beyond U+10FFFF are invalid. */
  if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
      (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff)
    return 0;
  return len;
}

static int utf8_valid(const uint8_t *p, size_t n) {
  for (size_t i = 0; i < n;) {
    size_t k = utf8_seq(p + i, n - i);
    if (!k) return 0;
    i += k;
  }
  return 1;
}

/* A JSON string from bytes that may not be UTF-8: invalid bytes become
 * U+FFFD (header values may carry obs-text; jansson takes UTF-8 only). */
static json_t *jstr(const void *data, size_t n) {
  const uint8_t *p = data;
  if (!p) return json_string("");
  if (utf8_valid(p, n)) return json_stringn((const char *)p, n);
  char *buf = malloc(n * 3 + 1);
  if (!buf) return NULL;
  size_t o = 0;
  for (size_t i = 0; i < n;) {
    size_t k = utf8_seq(p + i, n - i);
    if (k) {
      memcpy(buf + o, p + i, k);
      o += k;
      i += k;
    } else {
      memcpy(buf + o, "\xef\xbf\xbd", 3);
      o += 3;
      i++;
    }
  }
  json_t *j = json_stringn(buf, o);
  free(buf);
  return j;
}

static json_t *b64(const uint8_t *p, size_t n) {
  size_t cap = sodium_base64_ENCODED_LEN(n, sodium_base64_VARIANT_ORIGINAL);
  char *buf = malloc(cap);
  if (!buf) return NULL;
  sodium_bin2base64(buf, cap, p ? p : (const uint8_t *)"", n,
                    sodium_base64_VARIANT_ORIGINAL);
  json_t *j = json_string(buf);
  free(buf);
  return j;
}

static const char *state_name(wr_exchange_state s) {
  switch (s) {
  case WR_EXCHANGE_PENDING:
    return "pending";
  case WR_EXCHANGE_DONE:
    return "done";
  case WR_EXCHANGE_ABORTED:
    return "aborted";
  case WR_EXCHANGE_UPGRADED:
    return "websocket";
  case WR_EXCHANGE_CLOSED:
    return "closed";
  }
  return "unknown";
}

static const char *field(const wr_capture_msg *m, const char *want) {
  size_t pos = 0;
  const char *n, *v;
  while (wr_capture_field(m, &pos, &n, &v))
    if (strcasecmp(n, want) == 0) return v;
  return NULL;
}

/* Durations in integer microseconds: exact, and no float noise
 * (1.1060000000000001) in what scripts compare. */
static json_t *us(uint64_t from, uint64_t to) {
  if (!from || !to || to < from) return json_null();
  return json_integer((json_int_t)(to - from));
}

static json_t *msg_json(const wr_capture_msg *m) {
  json_t *h = json_array();
  size_t pos = 0;
  const char *n, *v;
  while (h && wr_capture_field(m, &pos, &n, &v))
    json_array_append_new(
        h, json_pack("[o,o]", jstr(n, strlen(n)), jstr(v, strlen(v))));
  int text = utf8_valid(m->body, m->body_len);
  return json_pack("{s:o,s:b,s:o,s:o,s:I,s:b}", "headers", h, "head_truncated",
                   m->head_truncated, "body",
                   text ? jstr(m->body, m->body_len) : json_null(),
                   "body_base64", b64(m->body, m->body_len), "body_size",
                   (json_int_t)m->body_size, "body_truncated",
                   m->body_truncated);
}

static const char *op_name(int op) {
  switch (op) {
  case 1:
    return "text";
  case 2:
    return "binary";
  case 8:
    return "close";
  case 9:
    return "ping";
  case 10:
    return "pong";
  }
  return "other";
}

json_t *wr_inspect_exchange_json(const wr_exchange *e, int detail,
                                 int64_t wall_offset_us) {
  int64_t t = (int64_t)e->t_start_us + wall_offset_us;
  char iso[40] = "";
  time_t secs = (time_t)(t / 1000000);
  struct tm tm;
  if (gmtime_r(&secs, &tm))
    snprintf(iso + strftime(iso, sizeof iso, "%Y-%m-%dT%H:%M:%S", &tm),
             sizeof iso - 19, ".%03dZ", (int)(t / 1000 % 1000));
  const char *ctype = field(&e->resp, "content-type");
  json_t *j = json_pack(
      "{s:I,s:I,s:s,s:o,s:o,s:o,s:o,s:o,s:s,s:I,s:o,s:o,s:I,s:I,s:b,s:b}", "id",
      (json_int_t)e->id, "conn", (json_int_t)e->conn, "state",
      /* Peer bytes (the reason phrase may be any obs-text) go through
       * jstr: json_pack refuses invalid UTF-8 and would fail whole. */
      state_name(e->state), "method", jstr(e->method, strlen(e->method)),
      "target", jstr(e->target, e->target ? strlen(e->target) : 0), "version",
      jstr(e->version, strlen(e->version)), "status",
      e->status ? json_integer(e->status) : json_null(), "reason",
      jstr(e->reason, strlen(e->reason)), "time", iso, "time_us", (json_int_t)t,
      "ttfb_us", us(e->t_start_us, e->t_resp_us), "duration_us",
      us(e->t_start_us, e->t_end_us), "req_size", (json_int_t)e->req.body_size,
      "resp_size", (json_int_t)e->resp.body_size, "req_truncated",
      e->req.body_truncated, "resp_truncated", e->resp.body_truncated);
  if (!j) return NULL;
  if (e->replay_of)
    json_object_set_new(j, "replay_of", json_integer((json_int_t)e->replay_of));
  if (ctype) json_object_set_new(j, "content_type", jstr(ctype, strlen(ctype)));
  if (e->error) json_object_set_new(j, "error", json_string(e->error));
  if (e->status == 101 || e->ws_total)
    json_object_set_new(
        j, "ws",
        json_pack("{s:I,s:I,s:I}", "messages", (json_int_t)e->ws_total,
                  "bytes_from_visitor", (json_int_t)e->ws_bytes[0],
                  "bytes_from_origin", (json_int_t)e->ws_bytes[1]));
  if (!detail) return j;
  json_object_set_new(j, "request", msg_json(&e->req));
  json_object_set_new(j, "response", msg_json(&e->resp));
  if (e->ws_cap) {
    json_t *a = json_array();
    for (size_t i = 0; a && i < e->ws_count; i++) {
      const wr_capture_ws_msg *m = &e->ws[(e->ws_first + i) % e->ws_cap];
      int text = m->opcode == 1 && utf8_valid(m->preview, m->preview_len);
      json_array_append_new(a, json_pack("{s:s,s:s,s:I,s:o,s:o,s:b}", "from",
                                         m->from_origin ? "origin" : "visitor",
                                         "type", op_name(m->opcode), "len",
                                         (json_int_t)m->len, "at_us",
                                         us(e->t_start_us, m->at_us), "preview",
                                         text ? jstr(m->preview, m->preview_len)
                                              : b64(m->preview, m->preview_len),
                                         "preview_base64", !text));
    }
    json_object_set_new(j, "ws_messages", a);
  }
  return j;
}

char *wr_inspect_sse(const wr_inspect_api *api, const char *type,
                     const wr_exchange *e, size_t *plen) {
  char *data = NULL;
  if (e) {
    json_t *j = wr_inspect_exchange_json(e, 0, api->cfg.wall_offset_us);
    data = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    if (!data) return NULL;
  }
  /* Compact JSON has no newline, so one data line carries it. */
  size_t n = strlen(type) + (data ? strlen(data) : 2) + 32;
  char *out = wr_mem_malloc(api->mem, n);
  if (out)
    *plen = (size_t)snprintf(out, n, "event: %s\ndata: %s\n\n", type,
                             data ? data : "{}");
  free(data);
  return out;
}

/* ---- the guard ------------------------------------------------------------
 */

int wr_inspect_host_ok(const char *host, int port) {
  if (!host || !*host) return 0;
  const char *colon;
  char name[64];
  if (host[0] == '[') {
    const char *rb = strchr(host, ']');
    if (!rb || rb[1] != ':' || (size_t)(rb - host) >= sizeof name) return 0;
    memcpy(name, host + 1, (size_t)(rb - host - 1));
    name[rb - host - 1] = '\0';
    colon = rb + 1;
    unsigned char buf[16];
    if (!strchr(name, ':') || inet_pton(AF_INET6, name, buf) != 1) return 0;
  } else {
    colon = strrchr(host, ':');
    if (!colon || (size_t)(colon - host) >= sizeof name) return 0;
    memcpy(name, host, (size_t)(colon - host));
    name[colon - host] = '\0';
    unsigned char buf[4];
    if (strcasecmp(name, "localhost") != 0 &&
        inet_pton(AF_INET, name, buf) != 1)
      return 0;
  }
  char *end;
  long p = strtol(colon + 1, &end, 10);
  return colon[1] != '\0' && *end == '\0' && p == port;
}

static int guard(const wr_admin_req *req, wr_admin_resp *resp, void *ud) {
  wr_inspect_api *api = ud;
  wr_admin_resp_header(resp, "X-Frame-Options: DENY");
  wr_admin_resp_header(resp, "X-Content-Type-Options: nosniff");
  wr_admin_resp_header(resp, "Referrer-Policy: no-referrer");
  if (!wr_inspect_host_ok(req->host, api->cfg.port)) {
    wr_admin_resp_error(resp, 403,
                        "Host must be this inspector (localhost or an IP "
                        "address with its port): DNS-rebinding defence");
    return 1;
  }
  int write =
      strcmp(req->method, "GET") != 0 && strcmp(req->method, "HEAD") != 0;
  if (write && req->origin) {
    char own[WR_ADMIN_MAX_HOST + 8];
    snprintf(own, sizeof own, "http://%s", req->host);
    if (strcasecmp(req->origin, own) != 0) {
      wr_admin_resp_error(resp, 403,
                          "cross-origin request refused (Origin "
                          "is not this inspector)");
      return 1;
    }
  }
  return 0;
}

/* ---- routes ---------------------------------------------------------------
 */

static int page(const wr_admin_req *req, wr_admin_resp *resp, void *ud) {
  (void)req;
  (void)ud;
  wr_admin_resp_type(resp, "text/html; charset=utf-8");
  /* Everything is inline in one file: no other source is allowed, and of
   * inline scripts only the page's own (by hash), so markup that slipped
   * into the page from captured bytes could not run. */
  char csp[400];
  snprintf(csp, sizeof csp,
           "Content-Security-Policy: default-src 'none'; script-src '%s'; "
           "style-src 'unsafe-inline'; connect-src 'self'; img-src data:; "
           "frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
           wr_inspect_page_script_hash);
  int rv = wr_admin_resp_header(resp, csp);
  if (rv != 0) return rv;
  return wr_admin_resp_write(resp, wr_inspect_page, wr_inspect_page_len);
}

static int status(const wr_admin_req *req, wr_admin_resp *resp, void *ud) {
  (void)req;
  wr_inspect_api *api = ud;
  wr_capture *c = api->cfg.capture;
  const wr_capture_config *k = wr_capture_cfg(c);
  char local[96];
  snprintf(local, sizeof local, "http://localhost:%d", api->cfg.local_port);
  return wr_admin_resp_json(
      resp, json_pack("{s:s,s:s,s:s?,s:I,s:I,s:I,s:I,s:I,s:I}", "version",
                      WARREN_VERSION, "local", local, "public_url",
                      api->url[0] ? api->url : NULL, "exchanges",
                      (json_int_t)wr_capture_count(c), "evicted",
                      (json_int_t)wr_capture_evicted(c), "memory",
                      (json_int_t)wr_capture_mem(c), "max_memory",
                      (json_int_t)k->max_bytes, "max_exchanges",
                      (json_int_t)k->max_exchanges, "body_cap",
                      (json_int_t)k->body_cap));
}

/* A decimal id or limit, all digits, at most 18 of them. */
static int parse_u64(const char *s, uint64_t *out) {
  size_t n = strlen(s);
  if (n == 0 || n > 18) return -1;
  uint64_t v = 0;
  for (size_t i = 0; i < n; i++) {
    if (s[i] < '0' || s[i] > '9') return -1;
    v = v * 10 + (uint64_t)(s[i] - '0');
  }
  *out = v;
  return 0;
}

static int param_u64(const wr_admin_req *req, const char *key, uint64_t dflt,
                     uint64_t *out, wr_admin_resp *resp, int *answered) {
  char v[32];
  int rv = wr_admin_req_param(req, key, v, sizeof v);
  *out = dflt;
  if (rv == WR_ERR_NOTFOUND) return 0;
  if (rv < 0 || parse_u64(v, out) != 0) {
    char msg[96];
    snprintf(msg, sizeof msg, "?%s= wants a non-negative integer", key);
    *answered = 1;
    return wr_admin_resp_error(resp, 400, msg);
  }
  return 0;
}

/* Case-insensitive substring, for ?q= and the page's filter alike. */
static int matches(const wr_exchange *e, const char *q) {
  if (!q[0]) return 1;
  char line[512];
  snprintf(line, sizeof line, "%s %s %d %s", e->method,
           e->target ? e->target : "", e->status, state_name(e->state));
  return strcasestr(line, q) != NULL;
}

static int list(const wr_admin_req *req, wr_admin_resp *resp, void *ud) {
  wr_inspect_api *api = ud;
  uint64_t limit, since;
  int answered = 0;
  int rv = param_u64(req, "limit", 100, &limit, resp, &answered);
  if (rv == 0 && !answered)
    rv = param_u64(req, "since", 0, &since, resp, &answered);
  if (rv != 0 || answered) return rv;
  char q[256] = "";
  rv = wr_admin_req_param(req, "q", q, sizeof q);
  if (rv < 0 && rv != WR_ERR_NOTFOUND)
    return wr_admin_resp_error(resp, 400, "?q= is too long or badly escaped");
  if (limit > 1000) limit = 1000;
  json_t *a = json_array();
  if (!a) return WR_ERR_NOMEM;
  uint64_t n = 0;
  for (const wr_exchange *e = wr_capture_older(api->cfg.capture, 0);
       e && n < limit && e->id > since;
       e = wr_capture_older(api->cfg.capture, e->id)) {
    if (!matches(e, q)) continue;
    json_t *j = wr_inspect_exchange_json(e, 0, api->cfg.wall_offset_us);
    if (!j || json_array_append_new(a, j) != 0) {
      json_decref(a);
      return WR_ERR_NOMEM;
    }
    n++;
  }
  return wr_admin_resp_json(resp, json_pack("{s:o}", "exchanges", a));
}

static int clear(const wr_admin_req *req, wr_admin_resp *resp, void *ud) {
  (void)req;
  wr_inspect_api *api = ud;
  size_t n = wr_capture_count(api->cfg.capture);
  wr_capture_clear(api->cfg.capture);
  if (api->cfg.cleared) api->cfg.cleared(api->cfg.user_data);
  return wr_admin_resp_json(resp, json_pack("{s:I}", "cleared", (json_int_t)n));
}

/* "/api/exchanges/ID[/TAIL]": the id, and TAIL (or "") in |tail|. */
static int path_id(const char *path, uint64_t *id, const char **tail) {
  const char *p = path + strlen("/api/exchanges/");
  char num[24];
  size_t n = strcspn(p, "/");
  if (n == 0 || n >= sizeof num) return -1;
  memcpy(num, p, n);
  num[n] = '\0';
  *tail = p[n] ? p + n + 1 : "";
  return parse_u64(num, id);
}

static int one(const wr_admin_req *req, wr_admin_resp *resp, void *ud) {
  wr_inspect_api *api = ud;
  uint64_t id;
  const char *tail;
  if (path_id(req->path, &id, &tail) != 0 || tail[0])
    return wr_admin_resp_error(resp, 404,
                               "no such endpoint (want "
                               "/api/exchanges/ID)");
  const wr_exchange *e = wr_capture_get(api->cfg.capture, id);
  if (!e)
    return wr_admin_resp_error(resp, 404,
                               "no such exchange (evicted "
                               "or cleared?)");
  json_t *j = wr_inspect_exchange_json(e, 1, api->cfg.wall_offset_us);
  return j ? wr_admin_resp_json(resp, j) : WR_ERR_NOMEM;
}

static int replay(const wr_admin_req *req, wr_admin_resp *resp, void *ud) {
  wr_inspect_api *api = ud;
  uint64_t id;
  const char *tail;
  if (path_id(req->path, &id, &tail) != 0 || strcmp(tail, "replay") != 0)
    return wr_admin_resp_error(resp, 404,
                               "no such endpoint (want "
                               "POST /api/exchanges/ID/replay)");
  const wr_exchange *e = wr_capture_get(api->cfg.capture, id);
  if (!e)
    return wr_admin_resp_error(resp, 404,
                               "no such exchange (evicted "
                               "or cleared?)");
  json_t *edits = NULL;
  if (req->body_len) {
    json_error_t jerr;
    edits = json_loadb((const char *)req->body, req->body_len,
                       JSON_REJECT_DUPLICATES, &jerr);
    if (!edits || !json_is_object(edits)) {
      char msg[260];
      snprintf(msg, sizeof msg, "the body must be a JSON object of edits: %s",
               edits ? "not an object" : jerr.text);
      json_decref(edits);
      return wr_admin_resp_error(resp, 400, msg);
    }
  }
  uint8_t *out = NULL;
  char err[160];
  wr_ssize n =
      wr_inspect_build_replay(e, edits, &out, err, sizeof err, api->mem);
  json_decref(edits);
  if (n == WR_ERR_NOMEM) return (int)n;
  if (n < 0) return wr_admin_resp_error(resp, 400, err);
  if (!api->cfg.replay) {
    wr_mem_free(api->mem, out);
    return wr_admin_resp_error(resp, 503, "replay is not available here");
  }
  uint64_t nid = 0;
  int rv = api->cfg.replay(out, (size_t)n, id, &nid, api->cfg.user_data);
  wr_mem_free(api->mem, out);
  if (rv != 0) {
    char msg[160];
    snprintf(msg, sizeof msg, "cannot reach the local server: %s",
             wr_strerror(rv));
    return wr_admin_resp_error(resp, 502, msg);
  }
  wr_admin_resp_status(resp, 202);
  return wr_admin_resp_json(resp, json_pack("{s:I,s:I}", "id", (json_int_t)nid,
                                            "replay_of", (json_int_t)id));
}

static int events(const wr_admin_req *req, wr_admin_resp *resp, void *ud) {
  (void)req;
  (void)ud;
  wr_admin_resp_type(resp, "text/event-stream");
  int rv = wr_admin_resp_stream(resp, WR_INSPECT_CHANNEL);
  /* EventSource reconnects after |retry| ms when the stream drops. */
  if (rv == 0) rv = wr_admin_resp_write(resp, "retry: 1000\n\n", 13);
  return rv;
}

int wr_inspect_api_routes(wr_inspect_api *api, wr_admin_router *r) {
  int rv;
  wr_admin_router_set_guard(r, guard, api);
  if ((rv = wr_admin_router_set_max_body(r, WR_INSPECT_MAX_REQUEST)) != 0 ||
      (rv = wr_admin_router_add(r, "GET", "/", page, api)) != 0 ||
      (rv = wr_admin_router_add(r, "GET", "/index.html", page, api)) != 0 ||
      (rv = wr_admin_router_add(r, "GET", "/api/status", status, api)) != 0 ||
      (rv = wr_admin_router_add(r, "GET", "/api/exchanges", list, api)) != 0 ||
      (rv = wr_admin_router_add(r, "DELETE", "/api/exchanges", clear, api)) !=
          0 ||
      (rv = wr_admin_router_add(r, "GET", "/api/exchanges/", one, api)) != 0 ||
      (rv = wr_admin_router_add(r, "POST", "/api/exchanges/", replay, api)) !=
          0 ||
      (rv = wr_admin_router_add(r, "GET", "/api/events", events, api)) != 0)
    return rv;
  return 0;
}

int wr_inspect_api_new(wr_inspect_api **pa, const wr_inspect_api_config *cfg,
                       const wr_mem *mem) {
  if (!cfg || !cfg->capture || cfg->port < 0 || cfg->port > 65535)
    return WR_ERR_INVAL;
  wr_inspect_api *api = wr_mem_calloc(mem, 1, sizeof *api);
  if (!api) return WR_ERR_NOMEM;
  api->mem = mem;
  api->cfg = *cfg;
  snprintf(api->local_host, sizeof api->local_host, "%s",
           cfg->local_host ? cfg->local_host : "127.0.0.1");
  api->cfg.local_host = api->local_host;
  *pa = api;
  return 0;
}

void wr_inspect_api_del(wr_inspect_api *api) {
  if (api) wr_mem_free(api->mem, api);
}

void wr_inspect_api_set_url(wr_inspect_api *api, const char *url) {
  snprintf(api->url, sizeof api->url, "%s", url ? url : "");
}

/* ---- replay ---------------------------------------------------------------
 */

static int tchar(int c) {
  return isalnum(c) || (c && strchr("!#$%&'*+-.^_`|~", c));
}

static int token_ok(const char *s, size_t max) {
  size_t n = strlen(s);
  if (n == 0 || n > max) return 0;
  for (size_t i = 0; i < n; i++)
    if (!tchar((unsigned char)s[i])) return 0;
  return 1;
}

/* Headers the replay sets itself or that belong to the old connection. */
static int dropped(const char *name) {
  static const char *const hop[] = {"content-length",  "transfer-encoding",
                                    "connection",      "keep-alive",
                                    "upgrade",         "te",
                                    "trailer",         "expect",
                                    "proxy-connection"};
  for (size_t i = 0; i < WR_ARRAY_LEN(hop); i++)
    if (strcasecmp(name, hop[i]) == 0) return 1;
  return 0;
}

typedef struct sbuf {
  const wr_mem *mem;
  uint8_t *p;
  size_t len, cap;
  int nomem;
} sbuf;

static void sb_put(sbuf *b, const void *d, size_t n) {
  if (b->nomem) return;
  if (b->len + n > b->cap) {
    size_t cap = b->cap ? b->cap : 1024;
    while (cap < b->len + n) cap *= 2;
    uint8_t *np = wr_mem_realloc(b->mem, b->p, cap);
    if (!np) {
      b->nomem = 1;
      return;
    }
    b->p = np;
    b->cap = cap;
  }
  memcpy(b->p + b->len, d, n);
  b->len += n;
}

static void sb_str(sbuf *b, const char *s) { sb_put(b, s, strlen(s)); }

static int value_ok(const char *v) {
  for (const unsigned char *p = (const unsigned char *)v; *p; p++)
    if ((*p < 0x20 && *p != '\t') || *p == 0x7f) return 0;
  return 1;
}

static int header_line(sbuf *b, const char *n, const char *v, char *err,
                       size_t errlen) {
  if (!token_ok(n, 256)) {
    snprintf(err, errlen, "bad header name '%.40s'", n);
    return WR_ERR_INVAL;
  }
  if (!value_ok(v) || strlen(v) > 16384) {
    snprintf(err, errlen,
             "bad value for header '%.40s' (control "
             "characters or over 16 KiB)",
             n);
    return WR_ERR_INVAL;
  }
  if (dropped(n)) return 0;
  sb_str(b, n);
  sb_str(b, ": ");
  sb_str(b, v);
  sb_str(b, "\r\n");
  return 0;
}

wr_ssize wr_inspect_build_replay(const wr_exchange *e, const json_t *edits,
                                 uint8_t **pout, char *err, size_t errlen,
                                 const wr_mem *mem) {
  sbuf b = {.mem = mem};
  uint8_t *body = NULL;
  size_t blen = 0;
  int rv = WR_ERR_INVAL;
  snprintf(err, errlen, "bad edits");
  if (e->status == 101 || e->state == WR_EXCHANGE_UPGRADED) {
    snprintf(err, errlen, "a WebSocket session cannot be replayed");
    return WR_ERR_INVAL;
  }
  if (edits && !json_is_object(edits)) return WR_ERR_INVAL;
  const char *method = e->method, *target = e->target ? e->target : "/";
  json_t *jm = edits ? json_object_get(edits, "method") : NULL;
  json_t *jt = edits ? json_object_get(edits, "target") : NULL;
  json_t *jh = edits ? json_object_get(edits, "headers") : NULL;
  json_t *jb = edits ? json_object_get(edits, "body") : NULL;
  json_t *j64 = edits ? json_object_get(edits, "body_base64") : NULL;
  if (jm && !(method = json_string_value(jm))) {
    snprintf(err, errlen, "\"method\" must be a string");
    return WR_ERR_INVAL;
  }
  if (jt && !(target = json_string_value(jt))) {
    snprintf(err, errlen, "\"target\" must be a string");
    return WR_ERR_INVAL;
  }
  if (!token_ok(method, 20) || strcasecmp(method, "CONNECT") == 0) {
    snprintf(err, errlen, "bad method '%.24s'", method);
    return WR_ERR_INVAL;
  }
  size_t tl = strlen(target);
  int tok = (target[0] == '/' || strcmp(target, "*") == 0) && tl <= 16384;
  for (size_t i = 0; tok && i < tl; i++)
    if ((unsigned char)target[i] <= 0x20 || target[i] == 0x7f) tok = 0;
  if (!tok) {
    snprintf(err, errlen,
             "bad target: it must start with '/' and hold no "
             "spaces or control characters");
    return WR_ERR_INVAL;
  }
  if (jb && j64) {
    snprintf(err, errlen, "give \"body\" or \"body_base64\", not both");
    return WR_ERR_INVAL;
  }
  if (jb) {
    if (!json_is_string(jb)) {
      snprintf(err, errlen, "\"body\" must be a string");
      return WR_ERR_INVAL;
    }
    body = (uint8_t *)json_string_value(jb);
    blen = json_string_length(jb);
  } else if (j64) {
    const char *s = json_string_value(j64);
    if (!s) {
      snprintf(err, errlen, "\"body_base64\" must be a string");
      return WR_ERR_INVAL;
    }
    size_t sl = strlen(s);
    body = wr_mem_malloc(mem, sl / 4 * 3 + 3);
    if (!body) return WR_ERR_NOMEM;
    if (sodium_base642bin(body, sl / 4 * 3 + 3, s, sl, NULL, &blen, NULL,
                          sodium_base64_VARIANT_ORIGINAL) != 0) {
      wr_mem_free(mem, body);
      snprintf(err, errlen, "\"body_base64\" is not base64");
      return WR_ERR_INVAL;
    }
  } else {
    if (e->req.body_truncated) {
      snprintf(err, errlen,
               "the captured body was truncated at %zu bytes: "
               "give the body to send",
               e->req.body_len);
      return WR_ERR_INVAL;
    }
    body = e->req.body;
    blen = e->req.body_len;
  }
  sb_str(&b, method);
  sb_str(&b, " ");
  sb_str(&b, target);
  sb_str(&b, " HTTP/1.1\r\n");
  if (jh) {
    /* [["Name","value"],...] keeps order and repeats; {"Name":"value"}
     * is the short form. */
    if (json_is_array(jh)) {
      size_t i;
      json_t *pair;
      json_array_foreach(jh, i, pair) {
        const char *n = json_string_value(json_array_get(pair, 0));
        const char *v = json_string_value(json_array_get(pair, 1));
        if (!json_is_array(pair) || json_array_size(pair) != 2 || !n || !v) {
          snprintf(err, errlen, "\"headers\" wants [[name, value], ...]");
          goto fail;
        }
        if ((rv = header_line(&b, n, v, err, errlen)) != 0) goto fail;
      }
    } else if (json_is_object(jh)) {
      const char *n;
      json_t *v;
      json_object_foreach((json_t *)jh, n, v) {
        if (!json_is_string(v)) {
          snprintf(err, errlen, "header '%.40s' wants a string value", n);
          goto fail;
        }
        if ((rv = header_line(&b, n, json_string_value(v), err, errlen)) != 0)
          goto fail;
      }
    } else {
      snprintf(err, errlen, "\"headers\" wants [[name, value], ...]");
      goto fail;
    }
  } else {
    size_t pos = 0;
    const char *n, *v;
    while (wr_capture_field(&e->req, &pos, &n, &v))
      if ((rv = header_line(&b, n, v, err, errlen)) != 0) goto fail;
  }
  char cl[48];
  /* A body, or a method that usually has one, gets its length; a GET
   * without a body goes as it came. */
  if (blen || strcasecmp(method, "POST") == 0 ||
      strcasecmp(method, "PUT") == 0 || strcasecmp(method, "PATCH") == 0) {
    snprintf(cl, sizeof cl, "Content-Length: %zu\r\n", blen);
    sb_str(&b, cl);
  }
  sb_str(&b, "Connection: close\r\n\r\n");
  if (blen) sb_put(&b, body, blen);
  if (j64) wr_mem_free(mem, body);
  body = NULL;
  if (b.nomem) {
    wr_mem_free(mem, b.p);
    return WR_ERR_NOMEM;
  }
  *pout = b.p;
  err[0] = '\0';
  return (wr_ssize)b.len;
fail:
  if (j64) wr_mem_free(mem, body);
  wr_mem_free(mem, b.p);
  return WR_ERR_INVAL;
}
