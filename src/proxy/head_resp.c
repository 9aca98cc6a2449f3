/*
 * The response direction of the HTTP head parser (wr_http_resp, origin ->
 * visitor): a queue of the responses owed (one per request forwarded),
 * which tells where each response ends (HEAD, 1xx, 101, 204/304, read
 * until close), and the head the visitor gets (resp_rewrite below).
 */
#include <string.h>

#include "head_int.h"

#define EXP_ALL                                                              \
  (WR_HTTP_EXP_HEAD | WR_HTTP_EXP_UPGRADE | WR_HTTP_EXP_CLOSE |               \
   WR_HTTP_EXP_HTTP10)

struct wr_http_resp {
  hp e;
  uint8_t *q; /* ring of WR_HTTP_EXP_* flags, one per response owed */
  size_t q_cap, q_head, q_len;
  int keep_alive, interim, upgrade, eof;
  uint8_t *out; /* the rewritten head */
  size_t out_cap;
};

int wr_http_resp_new(wr_http_resp **ph, size_t max_head, const wr_mem *mem) {
  if (!ph) return WR_ERR_INVAL;
  wr_http_resp *h = wr_mem_calloc(mem, 1, sizeof(*h));
  if (!h) return WR_ERR_NOMEM;
  hp_init(&h->e, HTTP_RESPONSE, max_head, mem);
  *ph = h;
  return 0;
}

void wr_http_resp_del(wr_http_resp *h) {
  if (!h) return;
  const wr_mem *mem = h->e.mem;
  hp_free(&h->e);
  wr_mem_free(mem, h->q);
  wr_mem_free(mem, h->out);
  wr_mem_free(mem, h);
}

int wr_http_resp_expect(wr_http_resp *h, unsigned flags) {
  if (flags & ~(unsigned)EXP_ALL) return WR_ERR_INVAL;
  if (h->q_len == WR_HTTP_MAX_PIPELINE) return WR_ERR_LIMIT;
  if (h->q_len == h->q_cap) {
    size_t cap = h->q_cap ? h->q_cap * 2 : 8;
    uint8_t *q = wr_mem_malloc(h->e.mem, cap);
    if (!q) return WR_ERR_NOMEM;
    for (size_t i = 0; i < h->q_len; i++)
      q[i] = h->q[(h->q_head + i) % h->q_cap];
    wr_mem_free(h->e.mem, h->q);
    h->q = q;
    h->q_cap = cap;
    h->q_head = 0;
  }
  h->q[(h->q_head + h->q_len++) % h->q_cap] = (uint8_t)flags;
  return 0;
}

size_t wr_http_resp_owed(const wr_http_resp *h) { return h->q_len; }

int wr_http_resp_pending(const wr_http_resp *h) {
  return h->q_len > 0 && h->e.state != ST_DEAD && !h->eof;
}

void wr_http_resp_close_owed(wr_http_resp *h) {
  /* The first one owed is the response in progress: when its head went
   * out already (BODY/END states), keep_alive was decided then and this
   * flag is not read again. */
  for (size_t i = 0; i < h->q_len; i++)
    h->q[(h->q_head + i) % h->q_cap] |= WR_HTTP_EXP_CLOSE;
}

static void q_pop(wr_http_resp *h) {
  if (h->q_len) {
    h->q_head = (h->q_head + 1) % h->q_cap;
    h->q_len--;
  }
}

static wr_ssize resp_error(wr_http_resp *h, wr_http_ev *ev, size_t len) {
  h->e.state = ST_DEAD;
  memset(ev, 0, sizeof(*ev));
  ev->type = WR_HTTP_EV_ERROR;
  ev->status = 502;
  ev->reason = h->e.err_reason;
  return (wr_ssize)len;
}

/*
 * The head the visitor gets (RFC 9110 7.6.1): the status line as the
 * origin sent it, the fields that survive hp_put_fields(), then warren's own
 * connection semantics toward the visitor, which the ingress decides:
 *
 *   101         Connection and Upgrade pass as the origin sent them (they
 *               say what the connection turns into); nothing is added.
 *   1xx         interim: hop-by-hop fields go, nothing is added.
 *   final       "Connection: close" when the visitor's connection ends
 *               after this response (the origin said close, the body runs
 *               until the origin closes, or the visitor's own request said
 *               close); "Connection: keep-alive" when it stays open and
 *               either side is HTTP/1.0 (whose default is to close);
 *               nothing for HTTP/1.1 keep-alive.
 *   426         also keeps Upgrade, with "upgrade" in Connection: RFC 9110
 *               15.5.22 requires it there, and the ingress forwards any
 *               upgrade the visitor then asks for.
 *
 * Trailer passes only with a chunked body: its trailers reach the visitor
 * untouched, so the announcement stays true (RFC 9110 6.6.2); on any other
 * response it announces nothing that could arrive.  Transfer-Encoding and
 * Content-Length always pass: the body is forwarded with the origin's
 * framing, byte for byte.
 */
static int resp_rewrite(wr_http_resp *h, int exp, int status) {
  hp *e = &h->e;
  llhttp_t *p = &e->p;
  const uint8_t *hd = e->head;
  conn_opts co;
  co.count = 0; /* p[] and n[] are read below count only */
  int has_upgrade = 0;
  for (size_t i = 0; i < e->nf; i++) {
    int kind = hp_scan_field(e, i, &co);
    if (kind < 0) return hp_fail(e, 502, "too many Connection options"), 0;
    if (kind == K_UPGRADE) has_upgrade = 1;
  }
  int flags = e->chunked ? KEEP_TRAILER : 0;
  if (status == 101) flags |= KEEP_UPGRADE | KEEP_CONN;
  if (status == 426) flags |= KEEP_UPGRADE;

  size_t need = e->head_len + 3 * e->nf + 64;
  if (need > h->out_cap || (h->out_cap > KEEP_BUF && need < KEEP_BUF / 2)) {
    uint8_t *o = wr_mem_realloc(e->mem, h->out, need);
    if (!o) return WR_ERR_NOMEM;
    h->out = o;
    h->out_cap = need;
  }
  uint8_t *w = h->out;
  /* The status line, up to its line end (CRLF, or the LF llhttp takes).
   * llhttp 8.1 also takes a CR followed by anything there ("200 O\rK\n"
   * ends the line at the CR); written out, that would end differently
   * for the visitor than it did for us, so it is refused. */
  const uint8_t *nl = memchr(hd, '\n', e->head_len);
  size_t sl = nl ? (size_t)(nl - hd) : 0;
  if (sl && hd[sl - 1] == '\r') sl--;
  if (sl == 0 || memchr(hd, '\r', sl))
    return hp_fail(e, 502, "origin sent a malformed status line"), 0;
  put(&w, hd, sl);
  put(&w, "\r\n", 2);
  hp_put_fields(&w, e, &co, flags);
  if (status >= 200 && status != 101) {
    int up = status == 426 && has_upgrade;
    int http10 = p->http_minor == 0 || (exp & WR_HTTP_EXP_HTTP10);
    const char *opt = !h->keep_alive ? "close"
                      : http10       ? "keep-alive"
                                     : NULL;
    if (up || opt) {
      puts_(&w, "Connection: ");
      if (up) puts_(&w, opt ? "upgrade, " : "upgrade");
      if (opt) puts_(&w, opt);
      puts_(&w, "\r\n");
    }
  }
  puts_(&w, "\r\n");
  if ((size_t)(w - h->out) > h->out_cap) return WR_ERR_INTERNAL;
  return (int)(w - h->out);
}

/* Returns 0, or WR_ERR_NOMEM/WR_ERR_INTERNAL; bad input sets err_status. */
static int resp_head_done(wr_http_resp *h, wr_http_ev *ev) {
  hp *e = &h->e;
  llhttp_t *p = &e->p;
  int status = p->status_code;
  if (p->http_major != 1 || p->http_minor > 1)
    return hp_fail(e, 502, "origin's response is not HTTP/1.0 or HTTP/1.1"), 0;
  if (status < 100)
    return hp_fail(e, 502, "origin sent an invalid status code"), 0;
  if (h->q_len == 0)
    return hp_fail(e, 502, "origin sent a response nobody asked for"), 0;
  int exp = h->q[h->q_head];
  int ka_conn = p->http_minor == 1 ? !(p->flags & F_CONNECTION_CLOSE)
                                   : (p->flags & F_CONNECTION_KEEP_ALIVE) != 0;
  int body = 0;
  h->interim = h->upgrade = 0;
  if (status == 101) {
    if (!(exp & WR_HTTP_EXP_UPGRADE))
      return hp_fail(e, 502, "origin switched protocols without being asked"),
             0;
    h->upgrade = 1;
  } else if (status < 200) {
    h->interim = 1;
  } else if (!(exp & WR_HTTP_EXP_HEAD) && status != 204 && status != 304) {
    /* "Content-Length: 0" is no body: the response ends with its head,
     * as a request's does (waiting for llhttp to say so would need more
     * input, which a keep-alive origin never sends). */
    body = (p->flags & F_CHUNKED) || !(p->flags & F_CONTENT_LENGTH) ||
           p->content_length > 0;
  }
  /* The visitor's connection outlives this response only when both the
   * origin's connection does and the visitor's request did not end it. */
  h->keep_alive = h->interim || h->upgrade ||
                  (ka_conn && !(body && llhttp_message_needs_eof(p)) &&
                   !(exp & WR_HTTP_EXP_CLOSE));
  e->chunked = (p->flags & F_CHUNKED) != 0;
  int n = resp_rewrite(h, exp, status);
  if (n < 0 || e->err_status) return n < 0 ? n : 0;
  ev->type = WR_HTTP_EV_HEAD;
  ev->data = h->out;
  ev->len = (size_t)n;
  ev->status = status;
  ev->upgrade = h->upgrade;
  ev->keep_alive = h->keep_alive;
  hp_after_head(e, body);
  return 0;
}

static void resp_after_end(wr_http_resp *h, wr_http_ev *ev) {
  ev->type = WR_HTTP_EV_END;
  ev->keep_alive = h->keep_alive;
  if (!h->interim) q_pop(h);
  if (h->upgrade) {
    h->e.state = ST_UPGRADE;
    return;
  }
  hp_msg_reset(&h->e);
  if (!h->keep_alive) h->e.state = ST_CLOSED;
}

static wr_ssize resp_error_v(void *h, wr_http_ev *ev, size_t len) {
  return resp_error(h, ev, len);
}
static void resp_after_end_v(void *h, wr_http_ev *ev) {
  resp_after_end(h, ev);
}
static int resp_head_done_v(void *h, wr_http_ev *ev) {
  return resp_head_done(h, ev);
}
static const hp_dir resp_dir = {resp_head_done_v, resp_error_v,
                                resp_after_end_v};

wr_ssize wr_http_resp_feed(wr_http_resp *h, const uint8_t *data, size_t len,
                           wr_http_ev *ev) {
  if (h->eof) {
    memset(ev, 0, sizeof(*ev));
    return (wr_ssize)len;
  }
  return hp_feed(&h->e, &resp_dir, h, data, len, ev);
}

int wr_http_resp_eof(wr_http_resp *h) {
  hp *e = &h->e;
  int clean;
  if (h->eof) return 0;
  switch (e->state) {
  case ST_HEAD:
    clean = e->head_len == 0 && h->q_len == 0;
    break;
  case ST_BODY:
    clean = llhttp_message_needs_eof(&e->p);
    if (clean) q_pop(h);
    break;
  case ST_END:
  case ST_UPGRADE:
  case ST_RAW:
  case ST_CLOSED:
    clean = 1;
    break;
  default:
    clean = 0;
  }
  h->eof = 1;
  return clean;
}
