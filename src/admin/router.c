/*
 * The admin route table: authentication, route lookup, built-in routes and
 * the response a handler fills.
 *
 * Order of checks for one request (the order matters for what leaks):
 *   1. GET /healthz (and /readyz, when the daemon adds it) is always
 *      answered, so a load balancer or a Kubernetes probe needs no secret.
 *   2. With a token configured, everything else needs a valid bearer
 *      token, checked *before* the route lookup: an unauthenticated client
 *      learns nothing about which paths exist (401 for all of them).
 *   3. Exact routes, then the longest prefix route ("/fault/").  No route
 *      for the path: 404.  A route for the path with other methods: 405
 *      listing them in Allow.
 *
 * The token is never compared as is: both the configured and the
 * presented token are hashed with BLAKE2b-256 and the digests compared
 * with sodium_memcmp.  The comparison then takes the same time whatever
 * the length or content of the guess (a plain memcmp would leak the
 * length of the common prefix, and comparing raw tokens of different
 * lengths leaks the length).
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <sodium.h>

#include "admin_int.h"
#include "warren/err.h"
#include "warren/http_status.h"

typedef struct route {
  char method[16];
  char path[WR_ADMIN_MAX_PATH];
  size_t path_len;
  int prefix; /* path ends in '/' and is not "/" */
  wr_admin_handler fn;
  void *ud;
} route;

struct wr_admin_router {
  const wr_mem *mem;
  int has_token;
  uint8_t token_hash[crypto_generichash_BYTES];
  wr_metrics *metrics;
  uint64_t *requests, *bad, *unauth;
  route routes[WR_ADMIN_MAX_ROUTES];
  size_t nroutes;
  wr_admin_guard guard;
  void *guard_ud;
  size_t max_body;
};

/* ---- responses --------------------------------------------------------- */

void admin_resp_init(wr_admin_resp *resp, const wr_mem *mem) {
  memset(resp, 0, sizeof *resp);
  resp->mem = mem;
  resp->status = 200;
  resp->ctype = "application/json";
}

void admin_resp_free(wr_admin_resp *resp) {
  wr_mem_free(resp->mem, resp->body);
  resp->body = NULL;
  resp->len = resp->cap = 0;
}

/* Back to a fresh 200, keeping the buffer for the next request. */
void admin_resp_reset(wr_admin_resp *resp) {
  resp->status = 200;
  resp->ctype = "application/json";
  resp->len = 0;
  resp->extra[0] = '\0';
  resp->stream = 0;
}

int wr_admin_resp_header(wr_admin_resp *resp, const char *line) {
  if (strpbrk(line, "\r\n")) return WR_ERR_INVAL;
  size_t have = strlen(resp->extra), n = strlen(line);
  if (n + 2 >= sizeof resp->extra - have) return WR_ERR_NOBUF;
  memcpy(resp->extra + have, line, n);
  memcpy(resp->extra + have + n, "\r\n", 3);
  return 0;
}

int wr_admin_resp_stream(wr_admin_resp *resp, unsigned channel) {
  if (channel == 0 || channel > 255) return WR_ERR_INVAL;
  resp->stream = channel;
  return 0;
}

void wr_admin_resp_status(wr_admin_resp *resp, int status) {
  if (status >= 100 && status <= 599) resp->status = status;
}

void wr_admin_resp_type(wr_admin_resp *resp, const char *ctype) {
  if (ctype) resp->ctype = ctype;
}

static int resp_reserve(wr_admin_resp *resp, size_t extra) {
  if (extra > WR_ADMIN_MAX_RESP - resp->len) return WR_ERR_TOOBIG;
  size_t need = resp->len + extra;
  if (need <= resp->cap) return 0;
  /* Doubling keeps appends amortised O(1); the cap above bounds it. */
  size_t cap = resp->cap ? resp->cap : 512;
  while (cap < need) cap *= 2;
  if (cap > WR_ADMIN_MAX_RESP) cap = WR_ADMIN_MAX_RESP;
  uint8_t *p = wr_mem_realloc(resp->mem, resp->body, cap);
  if (!p) return WR_ERR_NOMEM;
  resp->body = p;
  resp->cap = cap;
  return 0;
}

int wr_admin_resp_write(wr_admin_resp *resp, const void *data, size_t len) {
  int rv = resp_reserve(resp, len);
  if (rv != 0) return rv;
  if (len) memcpy(resp->body + resp->len, data, len);
  resp->len += len;
  return 0;
}

int wr_admin_resp_printf(wr_admin_resp *resp, const char *fmt, ...) {
  char small[256];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(small, sizeof small, fmt, ap);
  va_end(ap);
  if (n < 0) return WR_ERR_INVAL;
  if ((size_t)n < sizeof small)
    return wr_admin_resp_write(resp, small, (size_t)n);
  /* Longer text: format straight into the body (+1 for vsnprintf's NUL,
   * which is then not counted). */
  int rv = resp_reserve(resp, (size_t)n + 1);
  if (rv != 0) return rv;
  va_start(ap, fmt);
  vsnprintf((char *)resp->body + resp->len, (size_t)n + 1, fmt, ap);
  va_end(ap);
  resp->len += (size_t)n;
  return 0;
}

static int dump_cb(const char *buf, size_t size, void *data) {
  return wr_admin_resp_write(data, buf, size) == 0 ? 0 : -1;
}

int wr_admin_resp_json(wr_admin_resp *resp, json_t *json) {
  if (!json) return WR_ERR_INVAL;
  resp->len = 0;
  resp->ctype = "application/json";
  int rv = json_dump_callback(json, dump_cb, resp, JSON_COMPACT) == 0
               ? wr_admin_resp_write(resp, "\n", 1)
               : WR_ERR_NOMEM;
  json_decref(json);
  if (rv != 0) resp->len = 0;
  return rv;
}

int wr_admin_resp_error(wr_admin_resp *resp, int status, const char *msg) {
  resp->len = 0;
  resp->ctype = "application/json";
  wr_admin_resp_status(resp, status);
  /* Built by hand rather than with jansson so that error replies need no
   * allocation beyond the body itself (they are also the replies to
   * hostile input).  The message is escaped for JSON. */
  int rv = wr_admin_resp_write(resp, "{\"error\":\"", 10);
  for (const char *s = msg; rv == 0 && *s; s++) {
    unsigned char ch = (unsigned char)*s;
    if (ch == '"' || ch == '\\')
      rv = wr_admin_resp_printf(resp, "\\%c", ch);
    else if (ch < 0x20)
      rv = wr_admin_resp_printf(resp, "\\u%04x", ch);
    else
      rv = wr_admin_resp_write(resp, s, 1);
  }
  if (rv == 0) rv = wr_admin_resp_write(resp, "\"}\n", 3);
  return rv;
}

/* ---- query strings ----------------------------------------------------- */

static int hexval(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

int wr_admin_req_param(const wr_admin_req *req, const char *key, char *dst,
                       size_t cap) {
  size_t klen = strlen(key);
  const char *q = req->query ? req->query : "";
  while (*q) {
    const char *end = strchr(q, '&');
    if (!end) end = q + strlen(q);
    const char *eq = memchr(q, '=', (size_t)(end - q));
    const char *kend = eq ? eq : end;
    if ((size_t)(kend - q) == klen && memcmp(q, key, klen) == 0) {
      const char *v = eq ? eq + 1 : end;
      size_t n = 0;
      while (v < end) {
        char ch = *v++;
        if (ch == '+')
          ch = ' ';
        else if (ch == '%') {
          if (end - v < 2 || hexval(v[0]) < 0 || hexval(v[1]) < 0)
            return WR_ERR_PROTO;
          ch = (char)(hexval(v[0]) * 16 + hexval(v[1]));
          v += 2;
        }
        if (n + 1 >= cap) return WR_ERR_NOBUF;
        dst[n++] = ch;
      }
      if (cap == 0) return WR_ERR_NOBUF;
      dst[n] = '\0';
      return (int)n;
    }
    q = *end ? end + 1 : end;
  }
  return WR_ERR_NOTFOUND;
}

/* ---- built-in routes --------------------------------------------------- */

static int healthz(const wr_admin_req *req, wr_admin_resp *resp, void *ud) {
  return wr_admin_resp_write(resp, "{\"ok\":true}\n", 12);
}

static int metrics(const wr_admin_req *req, wr_admin_resp *resp, void *ud) {
  wr_metrics *m = ud;
  wr_metrics_collect(m);
  resp->ctype = "text/plain; version=0.0.4; charset=utf-8";
  /* Render straight into the body: one pass to learn the size when the
   * buffer is too small, then a second one into a buffer that fits. */
  size_t room = resp->cap - resp->len;
  size_t n = wr_metrics_render(m, resp->body ? resp->body + resp->len : NULL,
                               resp->body ? room : 0);
  if (n > room) {
    int rv = resp_reserve(resp, n);
    if (rv != 0) return rv;
    wr_metrics_render(m, resp->body + resp->len, n);
  }
  resp->len += n;
  return 0;
}

/* ---- the table --------------------------------------------------------- */

int wr_admin_router_new(wr_admin_router **pr, const char *token,
                        wr_metrics *metrics_reg, const wr_mem *mem) {
  int rv;
  if (sodium_init() < 0) return WR_ERR_INTERNAL;
  wr_admin_router *r = wr_mem_calloc(mem, 1, sizeof *r);
  if (!r) return WR_ERR_NOMEM;
  r->mem = mem;
  r->metrics = metrics_reg;
  r->max_body = WR_ADMIN_MAX_BODY;
  if (token && *token) {
    r->has_token = 1;
    crypto_generichash(r->token_hash, sizeof r->token_hash,
                       (const uint8_t *)token, strlen(token), NULL, 0);
  }
  if ((rv = wr_metrics_counter(metrics_reg, "warren_admin_requests_total", NULL,
                               NULL, "Admin API requests answered.",
                               &r->requests)) != 0 ||
      (rv = wr_metrics_counter(
           metrics_reg, "warren_admin_bad_requests_total", NULL, NULL,
           "Admin API requests rejected as malformed (400, 413, 431).",
           &r->bad)) != 0 ||
      (rv = wr_metrics_counter(
           metrics_reg, "warren_admin_unauthorized_total", NULL, NULL,
           "Admin API requests rejected for a missing or wrong token.",
           &r->unauth)) != 0 ||
      (rv = wr_admin_router_add(r, "GET", "/healthz", healthz, NULL)) != 0 ||
      (rv = wr_admin_router_add(r, "GET", "/metrics", metrics, metrics_reg)) !=
          0) {
    wr_mem_free(mem, r);
    return rv;
  }
  *pr = r;
  return 0;
}

void wr_admin_router_del(wr_admin_router *r) {
  if (!r) return;
  sodium_memzero(r->token_hash, sizeof r->token_hash);
  wr_mem_free(r->mem, r);
}

static int valid_method(const char *m) {
  size_t n = strlen(m);
  if (n == 0 || n >= sizeof(((route *)0)->method)) return 0;
  for (size_t i = 0; i < n; i++)
    if (m[i] < 'A' || m[i] > 'Z') return 0;
  return 1;
}

int wr_admin_router_add(wr_admin_router *r, const char *method,
                        const char *path, wr_admin_handler fn,
                        void *user_data) {
  if (!r || !method || !path || !fn || !valid_method(method) ||
      path[0] != '/' || strlen(path) >= WR_ADMIN_MAX_PATH || strchr(path, '?'))
    return WR_ERR_INVAL;
  route *slot = NULL;
  for (size_t i = 0; i < r->nroutes; i++)
    if (strcmp(r->routes[i].method, method) == 0 &&
        strcmp(r->routes[i].path, path) == 0)
      slot = &r->routes[i];
  if (!slot) {
    if (r->nroutes >= WR_ADMIN_MAX_ROUTES) return WR_ERR_LIMIT;
    slot = &r->routes[r->nroutes++];
  }
  snprintf(slot->method, sizeof slot->method, "%s", method);
  snprintf(slot->path, sizeof slot->path, "%s", path);
  slot->path_len = strlen(path);
  slot->prefix = slot->path_len > 1 && path[slot->path_len - 1] == '/';
  slot->fn = fn;
  slot->ud = user_data;
  return 0;
}

/* Does route |rt| serve |path|?  Returns 0 (no), 1 (prefix match, weaker)
 * or 2 (exact match). */
static int match(const route *rt, const char *path) {
  if (strcmp(rt->path, path) == 0) return 2;
  if (rt->prefix && strncmp(rt->path, path, rt->path_len) == 0) return 1;
  return 0;
}

/* "Bearer TOKEN" with the scheme case-insensitive (RFC 7235 2.1). */
static int token_ok(const wr_admin_router *r, const char *auth) {
  if (!auth || strncasecmp(auth, "Bearer ", 7) != 0) return 0;
  const char *t = auth + 7;
  while (*t == ' ' || *t == '\t') t++;
  /* llhttp keeps trailing whitespace in values; it is not part of the
   * token (RFC 9110 5.5). */
  size_t n = strlen(t);
  while (n > 0 && (t[n - 1] == ' ' || t[n - 1] == '\t')) n--;
  uint8_t h[crypto_generichash_BYTES];
  crypto_generichash(h, sizeof h, (const uint8_t *)t, n, NULL, 0);
  return sodium_memcmp(h, r->token_hash, sizeof h) == 0;
}

/* Is |m| already an element of the ", "-separated |list|? */
static int method_listed(const char *list, const char *m) {
  size_t n = strlen(m);
  for (const char *p = list; (p = strstr(p, m)) != NULL; p += n)
    if ((p == list || p[-1] == ' ') && (p[n] == ',' || p[n] == '\0'))
      return 1;
  return 0;
}

void admin_router_count_bad(wr_admin_router *r) { (*r->bad)++; }

void wr_admin_router_set_guard(wr_admin_router *r, wr_admin_guard fn,
                               void *user_data) {
  r->guard = fn;
  r->guard_ud = user_data;
}

int wr_admin_router_set_max_body(wr_admin_router *r, size_t max_body) {
  if (max_body == 0 || max_body > WR_ADMIN_MAX_RESP) return WR_ERR_INVAL;
  r->max_body = max_body;
  return 0;
}

size_t admin_router_max_body(const wr_admin_router *r) { return r->max_body; }

int admin_router_dispatch(wr_admin_router *r, const admin_parsed *p,
                          wr_admin_resp *resp) {
  const wr_admin_req *req = &p->req;
  admin_resp_reset(resp);
  (*r->requests)++;
  /* HEAD is served by the GET route (RFC 9110 9.3.2); the connection
   * drops the body and keeps the headers. */
  const char *method = strcmp(req->method, "HEAD") == 0 ? "GET" : req->method;
  /* Health and readiness (the daemon's /readyz) are for load balancers
   * and probes, which carry no secret. */
  int is_health = (strcmp(req->path, "/healthz") == 0 ||
                   strcmp(req->path, "/readyz") == 0) &&
                  strcmp(method, "GET") == 0;
  if (r->has_token && !is_health && (p->auth_bad || !token_ok(r, p->auth))) {
    (*r->unauth)++;
    snprintf(resp->extra, sizeof resp->extra,
             "WWW-Authenticate: Bearer realm=\"warren\"\r\n");
    return wr_admin_resp_error(resp, 401, "missing or invalid bearer token");
  }
  if (r->guard) {
    int g = r->guard(req, resp, r->guard_ud);
    if (g < 0) return wr_admin_resp_error(resp, 500, "internal error");
    if (g > 0) return 0;
    /* Passed: headers it added (X-Frame-Options, ...) stay. */
  }

  /* Best route for the method; meanwhile collect the other methods that
   * serve this path, for 405's Allow header. */
  const route *best = NULL;
  int best_q = 0;
  char allow[96] = "";
  for (size_t i = 0; i < r->nroutes; i++) {
    const route *rt = &r->routes[i];
    int q = match(rt, req->path);
    if (!q) continue;
    if (strcmp(rt->method, method) == 0) {
      if (q > best_q ||
          (q == best_q && best && rt->path_len > best->path_len)) {
        best = rt;
        best_q = q;
      }
    } else {
      if (!method_listed(allow, rt->method)) {
        size_t al = strlen(allow);
        snprintf(allow + al, sizeof allow - al, "%s%s", al ? ", " : "",
                 rt->method);
      }
    }
  }
  if (!best) {
    if (allow[0]) {
      snprintf(resp->extra, sizeof resp->extra, "Allow: %s\r\n", allow);
      return wr_admin_resp_error(resp, 405, "method not allowed");
    }
    char msg[WR_ADMIN_MAX_PATH + 32];
    snprintf(msg, sizeof msg, "no such endpoint: %.*s", WR_ADMIN_MAX_PATH,
             req->path);
    return wr_admin_resp_error(resp, 404, msg);
  }

  int rv = best->fn(req, resp, best->ud);
  if (rv != 0) {
    char msg[96];
    snprintf(msg, sizeof msg, "internal error: %s", wr_strerror(rv));
    resp->extra[0] = '\0';
    return wr_admin_resp_error(resp, 500, msg);
  }
  return 0;
}

const char *admin_reason(int status) {
  const char *r = wr_http_reason(status);
  if (r) return r;
  return status < 300 ? "OK" : "Error";
}
