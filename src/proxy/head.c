/*
 * The request direction of the HTTP head parser (wr_http_req, visitor ->
 * origin): each head is validated (version, CONNECT, CRLF, Host, one
 * chunked Transfer-Encoding, the request target) and rewritten for the
 * origin (absolute-form to origin-form, the hop-by-hop policy of
 * head_fields.c, X-Forwarded-For/-Proto/-Host, X-Request-Id, our
 * Connection semantics).  The engine and its states: head_engine.c.
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "head_int.h"

/* An incoming X-Request-Id longer than this (or with spaces, controls) is
 * replaced by ours: it is echoed in error pages and logs. */
#define MAX_REQUEST_ID 128

struct wr_http_req {
  hp e;
  char *domain;
  size_t domain_len;
  char *client_addr;
  char *proto;
  wr_rand_fn rand;
  void *rand_ud;
  uint64_t counter;

  uint8_t *out; /* rewritten head + host, name, request id strings */
  size_t out_cap;

  /* The current request. */
  int keep_alive, upgrade, refused;
};

static char *dupstr(const wr_mem *mem, const char *s) {
  size_t n = strlen(s);
  char *d = wr_mem_malloc(mem, n + 1);
  if (d) memcpy(d, s, n + 1);
  return d;
}

int wr_http_req_new(wr_http_req **ph, const wr_http_req_config *cfg,
                    const wr_mem *mem) {
  if (!ph || !cfg || !cfg->domain) return WR_ERR_INVAL;
  wr_http_req *h = wr_mem_calloc(mem, 1, sizeof(*h));
  if (!h) return WR_ERR_NOMEM;
  hp_init(&h->e, HTTP_REQUEST, cfg->max_head, mem);
  /* The domain is compared lowercased, without leading/trailing dots. */
  const char *d = cfg->domain;
  while (*d == '.') d++;
  size_t dn = strlen(d);
  while (dn && d[dn - 1] == '.') dn--;
  h->domain = wr_mem_malloc(mem, dn + 1);
  h->client_addr = dupstr(mem, cfg->client_addr ? cfg->client_addr : "");
  h->proto = dupstr(mem, cfg->proto ? cfg->proto : "http");
  if (!h->domain || !h->client_addr || !h->proto) {
    wr_http_req_del(h);
    return WR_ERR_NOMEM;
  }
  for (size_t i = 0; i < dn; i++) h->domain[i] = (char)lower((uint8_t)d[i]);
  h->domain[dn] = '\0';
  h->domain_len = dn;
  h->rand = cfg->rand;
  h->rand_ud = cfg->rand_ud;
  *ph = h;
  return 0;
}

void wr_http_req_del(wr_http_req *h) {
  if (!h) return;
  const wr_mem *mem = h->e.mem;
  hp_free(&h->e);
  wr_mem_free(mem, h->domain);
  wr_mem_free(mem, h->client_addr);
  wr_mem_free(mem, h->proto);
  wr_mem_free(mem, h->out);
  wr_mem_free(mem, h);
}

int wr_http_req_set_client_addr(wr_http_req *h, const char *addr) {
  char *a = dupstr(h->e.mem, addr ? addr : "");
  if (!a) return WR_ERR_NOMEM;
  wr_mem_free(h->e.mem, h->client_addr);
  h->client_addr = a;
  return 0;
}

size_t wr_http_req_buffered(const wr_http_req *h) {
  return h->e.state == ST_HEAD ? h->e.head_len : 0;
}

int wr_http_req_upgrade_refused(wr_http_req *h) {
  hp *e = &h->e;
  if (!h->upgrade) return WR_ERR_INVAL;
  switch (e->state) {
  case ST_BODY:
  case ST_END:
    h->refused = 1;
    return 0;
  case ST_UPGRADE:
  case ST_RAW:
    h->upgrade = 0;
    hp_msg_reset(e);
    if (!h->keep_alive) e->state = ST_CLOSED;
    return 0;
  default:
    return WR_ERR_INVAL;
  }
}

static wr_ssize req_error(wr_http_req *h, wr_http_ev *ev, size_t len) {
  h->e.state = ST_DEAD;
  ev->type = WR_HTTP_EV_ERROR;
  ev->status = h->e.err_status;
  ev->reason = h->e.err_reason;
  return (wr_ssize)len;
}

static int rid_valid(const uint8_t *v, size_t n) {
  if (n == 0 || n > MAX_REQUEST_ID) return 0;
  for (size_t i = 0; i < n; i++)
    if (v[i] <= ' ' || v[i] >= 0x7f) return 0;
  return 1;
}

/*
 * NAME from "NAME.DOMAIN" (host without port): one DNS label, letters,
 * digits and inner hyphens, at most 63 characters.  Writes the lowercased
 * name to |dst| (capacity >= hn + 1) or returns 0.
 */
static int name_of(const wr_http_req *h, const uint8_t *host, size_t hn,
                   char *dst) {
  if (hn && host[hn - 1] == '.') hn--; /* "app.localhost." is the FQDN */
  size_t dn = h->domain_len;
  if (hn < dn + 2 || host[hn - dn - 1] != '.') return 0;
  for (size_t i = 0; i < dn; i++)
    if (lower(host[hn - dn + i]) != (uint8_t)h->domain[i]) return 0;
  size_t ln = hn - dn - 1;
  if (ln > 63 || host[0] == '-' || host[ln - 1] == '-') return 0;
  for (size_t i = 0; i < ln; i++) {
    uint8_t c = lower(host[i]);
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-'))
      return 0;
    dst[i] = (char)c;
  }
  dst[ln] = '\0';
  return 1;
}

/*
 * The head is complete: apply the policy, build the rewritten head into
 * h->out and fill |ev|.  Sets e->err_status for requests we refuse.
 */
static int req_head_done(wr_http_req *h, wr_http_ev *ev) {
  hp *e = &h->e;
  llhttp_t *p = &e->p;
  const uint8_t *hd = e->head;

  if (p->http_major != 1 || p->http_minor > 1)
    return hp_fail(e, 400, "only HTTP/1.0 and HTTP/1.1 are supported"), 0;
  if (p->method == HTTP_CONNECT)
    return hp_fail(e, 405,
                   "CONNECT is not supported: warren is not a "
                   "forward proxy"),
           0;
  /* The head must end in CRLF CRLF and, without fields, the request line
   * in CRLF too (llhttp takes a bare LF in both places). */
  if (e->head_len < 4 || memcmp(hd + e->head_len - 4, "\r\n\r\n", 4) != 0 ||
      (e->nf == 0 && e->head_len != e->ver_end + 4))
    return hp_fail(e, 400, "request head not terminated by CRLF CRLF"), 0;

  conn_opts co;
  co.count = 0; /* p[] and n[] are read below count only */
  const uint8_t *host = NULL, *rid = NULL;
  size_t host_n = 0, rid_n = 0, xff_len = 0, nhost = 0, nte = 0;
  int expect = 0;
  for (size_t i = 0; i < e->nf; i++) {
    int kind = hp_scan_field(e, i, &co);
    if (kind < 0) return hp_fail(e, 400, "too many Connection options"), 0;
    field *f = &e->f[i];
    const uint8_t *v = hd + f->val_off;
    size_t vn = f->val_len;
    switch (kind) {
    case K_HOST:
      nhost++;
      host = v;
      host_n = vn;
      break;
    case K_TE:
      nte++;
      if (!IEQ(v, vn, "chunked"))
        return hp_fail(e, 400, "unsupported Transfer-Encoding (only chunked)"),
               0;
      break;
    case K_XFF:
      xff_len += vn + 2;
      break;
    case K_RID:
      if (!rid && rid_valid(v, vn)) {
        rid = v;
        rid_n = vn;
      } else {
        f->kind = K_DROP;
      }
      break;
    case K_EXPECT:
      if (IEQ(v, vn, "100-continue") && p->http_minor == 1) expect = 1;
      break;
    }
  }
  if (nte > 1) return hp_fail(e, 400, "more than one Transfer-Encoding"), 0;
  if (nte && p->http_minor == 0)
    return hp_fail(e, 400, "Transfer-Encoding in an HTTP/1.0 request"), 0;
  if (nhost > 1) return hp_fail(e, 400, "more than one Host header"), 0;

  /* The request target: origin-form, "*", or absolute-form, which is
   * normalised to origin-form with its authority as the host (RFC 9112
   * 3.2.2: the Host header is then ignored). */
  const uint8_t *url = hd + e->url_off, *path = url;
  size_t url_n = e->url_len, path_n = url_n;
  int absolute = 0;
  if (url_n && url[0] != '/' && !(url_n == 1 && url[0] == '*')) {
    size_t skip = 0;
    if (url_n > 7 && strncasecmp((const char *)url, "http://", 7) == 0)
      skip = 7;
    else if (url_n > 8 && strncasecmp((const char *)url, "https://", 8) == 0)
      skip = 8;
    if (!skip) return hp_fail(e, 400, "request target is not a path or URL"), 0;
    const uint8_t *a = url + skip;
    size_t an = 0;
    while (skip + an < url_n && a[an] != '/' && a[an] != '?' && a[an] != '#')
      an++;
    if (memchr(a, '@', an))
      return hp_fail(e, 400, "user info in the request URL"), 0;
    host = a;
    host_n = an;
    path = a + an;
    path_n = url_n - skip - an;
    absolute = 1;
  } else if (nhost == 0) {
    return hp_fail(e, 400, "missing Host header"), 0;
  }
  size_t hostname_n = 0;
  if (!hp_host_valid(host, host_n, &hostname_n))
    return hp_fail(e, 400, "invalid Host"), 0;

  int upgrade = p->upgrade && !h->refused;
  int keep_alive = llhttp_should_keep_alive(p);

  /* Size: every kept line grows by at most the ": " we normalise to, and
   * the added lines are bounded by the strings they carry. */
  size_t client_n = strlen(h->client_addr), proto_n = strlen(h->proto);
  size_t need = e->head_len + 3 * e->nf + url_n + 64 +
                (xff_len + client_n + 24) + (proto_n + 24) + 2 * host_n + 48 +
                2 * (MAX_REQUEST_ID + 32) + (host_n + 1) * 2 + 128;
  if (need > h->out_cap || (h->out_cap > KEEP_BUF && need < KEEP_BUF / 2)) {
    uint8_t *o = wr_mem_realloc(e->mem, h->out, need);
    if (!o) return WR_ERR_NOMEM;
    h->out = o;
    h->out_cap = need;
  }
  uint8_t *w = h->out;

  /* Request line. */
  puts_(&w, llhttp_method_name((llhttp_method_t)p->method));
  *w++ = ' ';
  if (absolute && (path_n == 0 || path[0] != '/')) *w++ = '/';
  put(&w, path, path_n);
  puts_(&w, p->http_minor ? " HTTP/1.1\r\n" : " HTTP/1.0\r\n");
  if (absolute) {
    puts_(&w, "Host: ");
    put(&w, host, host_n);
    puts_(&w, "\r\n");
  }

  /* Trailer is dropped here as it always was (docs/HTTP.md); the
   * trailers themselves pass with the chunked body. */
  hp_put_fields(&w, e, &co,
                (upgrade ? KEEP_UPGRADE : 0) | (absolute ? DROP_HOST : 0));

  puts_(&w, "X-Forwarded-For: ");
  size_t nx = 0;
  for (size_t i = 0; i < e->nf; i++) {
    const field *f = &e->f[i];
    if (f->kind != K_XFF || f->val_len == 0) continue;
    if (nx++) put(&w, ", ", 2);
    put(&w, hd + f->val_off, f->val_len);
  }
  if (client_n) {
    if (nx++) put(&w, ", ", 2);
    put(&w, h->client_addr, client_n);
  }
  if (nx == 0) {
    w -= strlen("X-Forwarded-For: ");
  } else {
    puts_(&w, "\r\n");
  }
  puts_(&w, "X-Forwarded-Proto: ");
  put(&w, h->proto, proto_n);
  puts_(&w, "\r\nX-Forwarded-Host: ");
  put(&w, host, host_n);
  puts_(&w, "\r\n");
  char idbuf[MAX_REQUEST_ID + 1];
  if (!rid) {
    uint8_t r[16];
    if (h->rand) {
      h->rand(r, sizeof(r), h->rand_ud);
    } else {
      uint64_t c = ++h->counter;
      memset(r, 0, 8);
      for (int i = 0; i < 8; i++) r[8 + i] = (uint8_t)(c >> (56 - 8 * i));
    }
    /* Two digits a byte from a table: the per-nibble loop was ~200
     * instructions a request. */
    static const char hex2[513] =
        "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
        "202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f"
        "404142434445464748494a4b4c4d4e4f505152535455565758595a5b5c5d5e5f"
        "606162636465666768696a6b6c6d6e6f707172737475767778797a7b7c7d7e7f"
        "808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f"
        "a0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b7b8b9babbbcbdbebf"
        "c0c1c2c3c4c5c6c7c8c9cacbcccdcecfd0d1d2d3d4d5d6d7d8d9dadbdcdddedf"
        "e0e1e2e3e4e5e6e7e8e9eaebecedeeeff0f1f2f3f4f5f6f7f8f9fafbfcfdfeff";
    for (int i = 0; i < 16; i++) memcpy(idbuf + 2 * i, hex2 + 2 * r[i], 2);
    rid = (const uint8_t *)idbuf;
    rid_n = 32;
    puts_(&w, "X-Request-Id: ");
    put(&w, rid, rid_n);
    puts_(&w, "\r\n");
  }
  /* The origin hop keeps the visitor's connection semantics. */
  if (upgrade)
    puts_(&w, keep_alive ? "Connection: upgrade\r\n"
                         : "Connection: upgrade, close\r\n");
  else if (!keep_alive)
    puts_(&w, "Connection: close\r\n");
  else if (p->http_minor == 0)
    puts_(&w, "Connection: keep-alive\r\n");
  puts_(&w, "\r\n");
  size_t head_out = (size_t)(w - h->out);

  /* Strings for the event, after the head. */
  char *s_host = (char *)w;
  put(&w, host, host_n);
  *w++ = '\0';
  char *s_rid = (char *)w;
  put(&w, rid, rid_n);
  *w++ = '\0';
  char *s_name = (char *)w;
  int has_name = name_of(h, host, hostname_n, s_name);
  if (has_name) w += strlen(s_name) + 1;
  if ((size_t)(w - h->out) > h->out_cap) return WR_ERR_INTERNAL;

  h->keep_alive = keep_alive;
  h->upgrade = upgrade;
  ev->type = WR_HTTP_EV_HEAD;
  ev->data = h->out;
  ev->len = head_out;
  ev->name = has_name ? s_name : NULL;
  ev->host = s_host;
  ev->request_id = s_rid;
  ev->method_head = p->method == HTTP_HEAD;
  ev->expect_continue = expect;
  ev->upgrade = upgrade;
  ev->keep_alive = keep_alive;
  ev->resp_flags = (p->method == HTTP_HEAD ? WR_HTTP_EXP_HEAD : 0) |
                   (upgrade ? WR_HTTP_EXP_UPGRADE : 0) |
                   (keep_alive ? 0 : WR_HTTP_EXP_CLOSE) |
                   (p->http_minor == 0 ? WR_HTTP_EXP_HTTP10 : 0);
  e->chunked = (p->flags & F_CHUNKED) != 0;
  /* A body follows when it is chunked or has a non-zero length (llhttp
   * has checked that the two do not come together). */
  int body =
      e->chunked || ((p->flags & F_CONTENT_LENGTH) && p->content_length > 0);
  hp_after_head(e, body);
  return 0;
}

/* END: the next state after a message. */
static void req_after_end(wr_http_req *h, wr_http_ev *ev) {
  ev->type = WR_HTTP_EV_END;
  ev->keep_alive = h->keep_alive;
  if (h->upgrade && !h->refused) {
    h->e.state = ST_UPGRADE;
    return;
  }
  h->upgrade = 0;
  h->refused = 0;
  int ka = h->keep_alive;
  hp_msg_reset(&h->e);
  if (!ka) h->e.state = ST_CLOSED;
}

static wr_ssize req_error_v(void *h, wr_http_ev *ev, size_t len) {
  return req_error(h, ev, len);
}
static void req_after_end_v(void *h, wr_http_ev *ev) { req_after_end(h, ev); }
static int req_head_done_v(void *h, wr_http_ev *ev) {
  return req_head_done(h, ev);
}
static const hp_dir req_dir = {req_head_done_v, req_error_v, req_after_end_v};

wr_ssize wr_http_req_feed(wr_http_req *h, const uint8_t *data, size_t len,
                          wr_http_ev *ev) {
  return hp_feed(&h->e, &req_dir, h, data, len, ev);
}
