/*
 * One admin connection: llhttp (strict) turns bytes into requests, the
 * router turns each request into a response.  Sans-IO: the caller feeds
 * bytes and writes out what wr_admin_conn_output() shows.
 *
 * States:
 *   READING   parsing; feed consumes input.
 *   ANSWERED  a complete response is waiting; feed consumes nothing until
 *             wr_admin_conn_sent().  Then back to READING, or (want_close)
 *             the caller closes.
 *   DEAD      bad input was answered with 4xx; later input is discarded.
 *
 * One request at a time: on_message_complete pauses llhttp, so pipelined
 * requests stay in the caller's buffer until the previous answer is out.
 * The output is then never more than one response, whatever the client
 * sends, and the caller's read buffer bounds the rest (backpressure).
 *
 * Bounds.  llhttp itself has no limit on a head's size, so while a head
 * is being parsed we hand it at most WR_ADMIN_MAX_HEAD - head_bytes bytes
 * at a time: a head that is not complete after WR_ADMIN_MAX_HEAD bytes is
 * answered 431.  8 KiB is what nginx and Apache allow per header line by
 * default and far more than any warrenctl or Prometheus request needs.
 * Bodies (fault-injection settings, drain options) are buffered whole up
 * to WR_ADMIN_MAX_BODY (64 KiB), checked against Content-Length before the
 * first body byte and again per chunk for chunked bodies (413).
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <llhttp.h>

#include "admin_int.h"
#include "warren/err.h"

/* Authorization values longer than this are refused (401): a bearer token
 * is a few dozen characters. */
#define MAX_AUTH 512

struct wr_admin_conn {
  const wr_mem *mem;
  wr_admin_router *r;
  llhttp_t p;

  int answered; /* a response is waiting in out */
  int dead;     /* bad input answered; discard the rest */
  int want_close;
  int msg_done;     /* on_message_complete fired in this execute */
  int headers_done; /* the current message's head is complete */
  int err_status;   /* 413 set by a callback before failing the parse */
  int head_req;     /* the request being answered is HEAD: no body */
  size_t head_bytes;

  /* Request target, NUL-terminated; bounded by the head limit. */
  char url[WR_ADMIN_MAX_HEAD + 1];
  size_t url_len;
  /* The header name being parsed (only "Authorization" matters). */
  char field[16];
  size_t field_len;
  int field_long;
  int in_auth;
  char auth[MAX_AUTH + 1];
  size_t auth_len;
  int auth_count;
  int auth_long;
  /* Host and Origin, kept the same way (see wr_admin_req). */
  int in_hdr; /* 0 none, 1 host, 2 origin */
  char hv[2][WR_ADMIN_MAX_HOST + 1];
  size_t hv_len[2];
  int hv_count[2], hv_long[2];

  uint8_t *body;
  size_t body_len, body_cap;

  wr_admin_resp resp;
  uint8_t *out;
  size_t out_len, out_cap;
};

static wr_admin_conn *conn_of(llhttp_t *p) { return p->data; }

static int on_message_begin(llhttp_t *p) {
  wr_admin_conn *c = conn_of(p);
  c->head_req = 0;
  c->url_len = 0;
  c->url[0] = '\0';
  c->field_len = 0;
  c->field_long = 0;
  c->in_auth = 0;
  c->auth_len = 0;
  c->auth_count = 0;
  c->auth_long = 0;
  c->in_hdr = 0;
  for (int i = 0; i < 2; i++) {
    c->hv_len[i] = 0;
    c->hv_count[i] = c->hv_long[i] = 0;
  }
  c->body_len = 0;
  return 0;
}

static int on_url(llhttp_t *p, const char *at, size_t len) {
  wr_admin_conn *c = conn_of(p);
  /* Cannot overflow while the head limit holds; checked anyway. */
  if (len > WR_ADMIN_MAX_HEAD - c->url_len) return -1;
  memcpy(c->url + c->url_len, at, len);
  c->url_len += len;
  c->url[c->url_len] = '\0';
  return 0;
}

static int on_header_field(llhttp_t *p, const char *at, size_t len) {
  wr_admin_conn *c = conn_of(p);
  if (len >= sizeof c->field - c->field_len) {
    c->field_long = 1;
    return 0;
  }
  memcpy(c->field + c->field_len, at, len);
  c->field_len += len;
  return 0;
}

static int on_header_field_complete(llhttp_t *p) {
  wr_admin_conn *c = conn_of(p);
  c->field[c->field_len] = '\0';
  c->in_auth = !c->field_long && strcasecmp(c->field, "authorization") == 0;
  if (c->in_auth) {
    c->auth_count++;
    c->auth_len = 0;
  }
  c->in_hdr = 0;
  if (!c->field_long && strcasecmp(c->field, "host") == 0) c->in_hdr = 1;
  if (!c->field_long && strcasecmp(c->field, "origin") == 0) c->in_hdr = 2;
  if (c->in_hdr) {
    c->hv_count[c->in_hdr - 1]++;
    c->hv_len[c->in_hdr - 1] = 0;
  }
  c->field_len = 0;
  c->field_long = 0;
  return 0;
}

static int on_header_value(llhttp_t *p, const char *at, size_t len) {
  wr_admin_conn *c = conn_of(p);
  if (c->in_hdr) {
    int i = c->in_hdr - 1;
    if (len > WR_ADMIN_MAX_HOST - c->hv_len[i]) {
      c->hv_long[i] = 1;
      return 0;
    }
    memcpy(c->hv[i] + c->hv_len[i], at, len);
    c->hv_len[i] += len;
    return 0;
  }
  if (!c->in_auth) return 0;
  if (len > MAX_AUTH - c->auth_len) {
    c->auth_long = 1;
    return 0;
  }
  memcpy(c->auth + c->auth_len, at, len);
  c->auth_len += len;
  return 0;
}

static int on_header_value_complete(llhttp_t *p) {
  wr_admin_conn *c = conn_of(p);
  if (c->in_auth) c->auth[c->auth_len] = '\0';
  if (c->in_hdr) {
    /* llhttp keeps trailing whitespace in values (RFC 9110 5.5 says it
     * is not part of them). */
    int i = c->in_hdr - 1;
    while (c->hv_len[i] > 0 && (c->hv[i][c->hv_len[i] - 1] == ' ' ||
                                c->hv[i][c->hv_len[i] - 1] == '\t'))
      c->hv_len[i]--;
    c->hv[i][c->hv_len[i]] = '\0';
  }
  c->in_auth = 0;
  c->in_hdr = 0;
  return 0;
}

static int on_headers_complete(llhttp_t *p) {
  wr_admin_conn *c = conn_of(p);
  c->headers_done = 1;
  /* A declared Content-Length is known here, before any body byte. */
  if ((p->flags & F_CONTENT_LENGTH) &&
      p->content_length > admin_router_max_body(c->r)) {
    c->err_status = 413;
    return -1;
  }
  return 0;
}

static int on_body(llhttp_t *p, const char *at, size_t len) {
  wr_admin_conn *c = conn_of(p);
  size_t max = admin_router_max_body(c->r);
  if (len > max - c->body_len) {
    c->err_status = 413;
    return HPE_USER;
  }
  if (c->body_len + len > c->body_cap) {
    size_t cap = c->body_cap ? c->body_cap : 1024;
    while (cap < c->body_len + len) cap *= 2;
    if (cap > max) cap = max;
    uint8_t *nb = wr_mem_realloc(c->mem, c->body, cap);
    if (!nb) {
      c->err_status = -1; /* out of memory, not the client's fault */
      return HPE_USER;
    }
    c->body = nb;
    c->body_cap = cap;
  }
  memcpy(c->body + c->body_len, at, len);
  c->body_len += len;
  return 0;
}

static int on_message_complete(llhttp_t *p) {
  conn_of(p)->msg_done = 1;
  return HPE_PAUSED;
}

static const llhttp_settings_t settings = {
    .on_message_begin = on_message_begin,
    .on_url = on_url,
    .on_header_field = on_header_field,
    .on_header_field_complete = on_header_field_complete,
    .on_header_value = on_header_value,
    .on_header_value_complete = on_header_value_complete,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

int wr_admin_conn_new(wr_admin_conn **pc, wr_admin_router *r,
                      const wr_mem *mem) {
  wr_admin_conn *c = wr_mem_calloc(mem, 1, sizeof *c);
  if (!c) return WR_ERR_NOMEM;
  c->mem = mem;
  c->r = r;
  llhttp_init(&c->p, HTTP_REQUEST, &settings);
  c->p.data = c;
  admin_resp_init(&c->resp, mem);
  *pc = c;
  return 0;
}

void wr_admin_conn_del(wr_admin_conn *c) {
  if (!c) return;
  admin_resp_free(&c->resp);
  wr_mem_free(c->mem, c->body);
  wr_mem_free(c->mem, c->out);
  wr_mem_free(c->mem, c);
}

/* Serialises c->resp (status line, headers, body) into c->out. */
static int build_output(wr_admin_conn *c) {
  const wr_admin_resp *r = &c->resp;
  /* Content types are short literals; 1 KiB is far more than this head
   * can take, and an overflow is reported rather than truncated. */
  char head[1024];
  char clen[48] = "";
  /* A stream's body has no end but the connection's (RFC 9112 6.3). */
  if (r->stream) c->want_close = 1;
  else snprintf(clen, sizeof clen, "Content-Length: %zu\r\n", r->len);
  int n = snprintf(head, sizeof head,
                   "HTTP/1.1 %d %s\r\n"
                   "Content-Type: %s\r\n"
                   "%s"
                   "Cache-Control: no-store\r\n"
                   "%s%s\r\n",
                   r->status, admin_reason(r->status), r->ctype, clen,
                   r->extra, c->want_close ? "Connection: close\r\n" : "");
  if (n < 0 || (size_t)n >= sizeof head) return WR_ERR_INTERNAL;
  size_t blen = c->head_req ? 0 : r->len;
  size_t need = (size_t)n + blen;
  if (need > c->out_cap) {
    uint8_t *no = wr_mem_realloc(c->mem, c->out, need);
    if (!no) return WR_ERR_NOMEM;
    c->out = no;
    c->out_cap = need;
  }
  memcpy(c->out, head, (size_t)n);
  if (blen) memcpy(c->out + n, r->body, blen);
  c->out_len = need;
  c->answered = 1;
  return 0;
}

/* Answers bad input and kills the parser: a client that sent garbage gets
 * one clear error and the connection closes, since we cannot know where
 * its next request would start. */
static int reject(wr_admin_conn *c, int status, const char *msg) {
  admin_router_count_bad(c->r);
  c->dead = 1;
  c->want_close = 1;
  admin_resp_reset(&c->resp);
  int rv = wr_admin_resp_error(&c->resp, status, msg);
  return rv != 0 ? rv : build_output(c);
}

/* A whole request has been parsed: route it and build the response. */
static int answer(wr_admin_conn *c, int upgrade) {
  admin_parsed ap;
  memset(&ap, 0, sizeof ap);
  ap.req.method = llhttp_method_name((llhttp_method_t)c->p.method);
  c->head_req = c->p.method == HTTP_HEAD;
  char *q = strchr(c->url, '?');
  if (q) *q++ = '\0';
  /* Drop a fragment; clients should not send one, llhttp lets it through. */
  char *frag = strchr(q ? q : c->url, '#');
  if (frag) *frag = '\0';
  ap.req.path = c->url;
  ap.req.query = q ? q : "";
  ap.req.body = c->body_len ? c->body : NULL;
  ap.req.body_len = c->body_len;
  for (int i = 0; i < 2; i++) {
    const char *v = c->hv_count[i] == 1 && !c->hv_long[i] ? c->hv[i] : "";
    if (c->hv_count[i] == 0) v = NULL;
    if (i == 0) ap.req.host = v;
    else ap.req.origin = v;
  }
  ap.auth = c->auth_count == 1 && !c->auth_long ? c->auth : NULL;
  ap.auth_bad = c->auth_count > 1 || c->auth_long;

  if (!llhttp_should_keep_alive(&c->p) || upgrade) c->want_close = 1;
  if (c->url[0] != '/') {
    /* Absolute-form ("http://h/x") and "*" targets are for proxies. */
    return reject(c, 400, "request target must be an absolute path");
  }
  int rv = admin_router_dispatch(c->r, &ap, &c->resp);
  if (rv != 0) return rv;
  return build_output(c);
}

wr_ssize wr_admin_conn_feed(wr_admin_conn *c, const uint8_t *data, size_t len) {
  if (c->answered) return 0;
  if (c->dead) return (wr_ssize)len;
  size_t off = 0;
  while (off < len && !c->answered) {
    const char *at = (const char *)data + off;
    size_t chunk = len - off;
    int in_head = !c->headers_done;
    if (in_head) chunk = WR_MIN(chunk, WR_ADMIN_MAX_HEAD - c->head_bytes);
    c->msg_done = 0;
    llhttp_errno_t err = llhttp_execute(&c->p, at, chunk);
    size_t used = chunk;
    if (err == HPE_PAUSED || err == HPE_PAUSED_UPGRADE) {
      used = (size_t)(llhttp_get_error_pos(&c->p) - at);
    } else if (err != HPE_OK) {
      int rv;
      if (c->err_status < 0) return WR_ERR_NOMEM;
      if (c->err_status == 413) {
        char msg[64];
        snprintf(msg, sizeof msg, "request body larger than %zu bytes",
                 admin_router_max_body(c->r));
        rv = reject(c, 413, msg);
      } else
        rv = reject(c, 400,
                    llhttp_get_error_reason(&c->p)
                        ? llhttp_get_error_reason(&c->p)
                        : "malformed request");
      return rv != 0 ? rv : (wr_ssize)len;
    }
    off += used;
    if (in_head && !c->headers_done) {
      c->head_bytes += used;
      if (c->head_bytes >= WR_ADMIN_MAX_HEAD) {
        int rv = reject(c, 431, "request head larger than 8192 bytes");
        return rv != 0 ? rv : (wr_ssize)len;
      }
    }
    if (c->msg_done) {
      int upgrade = err == HPE_PAUSED_UPGRADE || c->p.upgrade;
      int rv = answer(c, upgrade);
      if (rv != 0) return rv;
      c->headers_done = 0;
      c->head_bytes = 0;
      if (upgrade) {
        /* We never switch protocols: answer and close, discard the rest. */
        c->dead = 1;
        c->want_close = 1;
        return (wr_ssize)len;
      }
      llhttp_resume(&c->p);
    } else if (err == HPE_PAUSED || err == HPE_PAUSED_UPGRADE) {
      /* Paused without a complete message: cannot happen with our
       * callbacks; treat as our own bug rather than loop forever. */
      return WR_ERR_INTERNAL;
    }
  }
  return (wr_ssize)off;
}

int wr_admin_conn_output(const wr_admin_conn *c, const uint8_t **pdata,
                         size_t *plen) {
  if (!c->answered) return 0;
  *pdata = c->out;
  *plen = c->out_len;
  return 1;
}

void wr_admin_conn_sent(wr_admin_conn *c) {
  c->answered = 0;
  c->out_len = 0;
}

int wr_admin_conn_want_close(const wr_admin_conn *c) { return c->want_close; }

unsigned wr_admin_conn_stream(const wr_admin_conn *c) {
  return c->dead ? 0 : c->resp.stream;
}
