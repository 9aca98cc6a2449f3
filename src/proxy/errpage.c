/*
 * Error pages: what a visitor sees when warren itself answers.  Each is a
 * complete HTTP/1.1 response with a text/plain body, Content-Length and
 * "Connection: close" (the ingress closes after an error, so whatever the
 * visitor pipelined behind the failed request is never half-answered).
 *
 * The body is short and says what to do next: a developer reading a 502
 * in a browser should learn that their local server is not answering, not
 * just that "a gateway" failed.  Text/plain needs no escaping, but |detail|
 * and |request_id| come partly from the visitor (the Host, X-Request-Id),
 * so control characters are replaced: no header or line can be injected.
 */
#include <stdio.h>
#include <string.h>

#include "warren/err.h"
#include "warren/http.h"
#include "warren/http_status.h"

/* Longest detail or host kept; longer ones are cut (with "..."). */
#define MAX_DETAIL 512

static const char *status_text(int status) {
  const char *r = wr_http_reason(status);
  if (r) return r;
  return status < 500 ? "Client Error" : "Server Error";
}

/* What to do about it, one or two lines per status. */
static const char *hint(int status) {
  switch (status) {
  case 400:
    return "The request is not valid HTTP/1.1, so it was not forwarded to "
           "any tunnel.\n";
  case 404:
    return "No tunnel serves this host name.\n";
  case 405:
    return "warren is a reverse proxy; this method is not forwarded.\n";
  case 408:
    return "The request did not arrive in time.\n";
  case 431:
    return "The request head (request line and headers) is larger than "
           "this node accepts.\nSend fewer or smaller headers (large "
           "cookies are the usual cause).\n";
  case 502:
    return "The tunnel or the local server behind it did not answer "
           "properly.\nCheck that 'warren http PORT' is still running and "
           "that a server is listening on PORT.\n";
  case 503:
    return "This node cannot take the request right now; retry shortly.\n";
  case 504:
    return "The local server behind the tunnel took too long to answer.\n";
  default:
    return "";
  }
}

/* Copies |s| into |dst| (cap >= 4), replacing control bytes with '?'
 * and cutting it at MAX_DETAIL or cap - 1 bytes. */
static void clean(char *dst, size_t cap, const char *s) {
  size_t max = WR_MIN(cap - 1, (size_t)MAX_DETAIL), n = 0;
  for (; s && s[n] && n < max; n++) {
    unsigned char c = (unsigned char)s[n];
    dst[n] = (c < 0x20 || c == 0x7f) ? '?' : (char)c;
  }
  if (s && s[n] && n >= 3) memcpy(dst + n - 3, "...", 3);
  dst[n] = '\0';
}

/* An id goes in a header: visible ASCII only, else it is left out. */
static int id_ok(const char *id) {
  if (!id || !*id || strlen(id) > 128) return 0;
  for (const char *p = id; *p; p++)
    if ((unsigned char)*p <= ' ' || (unsigned char)*p >= 0x7f) return 0;
  return 1;
}

static wr_ssize page(uint8_t *dst, size_t cap, int status, const char *body,
                     size_t body_n, const char *request_id) {
  char head[512];
  int hn = snprintf(head, sizeof(head),
                    "HTTP/1.1 %d %s\r\n"
                    "Content-Type: text/plain; charset=utf-8\r\n"
                    "Content-Length: %zu\r\n"
                    "Connection: close\r\n"
                    "Cache-Control: no-store\r\n"
                    "%s%s%s"
                    "\r\n",
                    status, status_text(status), body_n,
                    id_ok(request_id) ? "X-Request-Id: " : "",
                    id_ok(request_id) ? request_id : "",
                    id_ok(request_id) ? "\r\n" : "");
  if (hn < 0 || (size_t)hn >= sizeof(head)) return WR_ERR_INTERNAL;
  if (!dst || (size_t)hn + body_n > cap) return WR_ERR_NOBUF;
  memcpy(dst, head, (size_t)hn);
  memcpy(dst + hn, body, body_n);
  return (wr_ssize)((size_t)hn + body_n);
}

wr_ssize wr_http_error_page(uint8_t *dst, size_t cap, int status,
                            const char *detail, const char *request_id) {
  if (status < 100 || status > 599) return WR_ERR_INVAL;
  char d[MAX_DETAIL + 1], body[1536];
  clean(d, sizeof(d), detail);
  int n = snprintf(body, sizeof(body), "%d %s\n\n%s%s%s%s", status,
                   status_text(status), d[0] ? "warren: " : "", d,
                   d[0] ? "\n" : "", hint(status));
  if (n < 0 || (size_t)n >= sizeof(body)) return WR_ERR_INTERNAL;
  return page(dst, cap, status, body, (size_t)n, request_id);
}

wr_ssize wr_http_not_found_page(uint8_t *dst, size_t cap, const char *host,
                                const char *name, const char *domain,
                                const char *request_id) {
  char h[MAX_DETAIL + 1], nm[96], dom[256], body[1536];
  int n;
  clean(h, sizeof(h), host);
  clean(nm, sizeof(nm), name);
  clean(dom, sizeof(dom), domain);
  if (name)
    n = snprintf(body, sizeof(body),
                 "404 Not Found\n\nwarren: no tunnel is serving '%s'.\n"
                 "Start one with: warren http PORT --name %s\n"
                 "(on a separate node, add --node HOST:PORT --fleet-key "
                 "KEY)\n",
                 h, nm);
  else
    n = snprintf(body, sizeof(body),
                 "404 Not Found\n\nwarren: '%s' is not a tunnel name on "
                 "this node.\nTunnels are served as NAME.%s, where NAME is "
                 "one label (letters, digits, '-').\n",
                 h, dom[0] ? dom : "DOMAIN");
  if (n < 0 || (size_t)n >= sizeof(body)) return WR_ERR_INTERNAL;
  return page(dst, cap, 404, body, (size_t)n, request_id);
}
