/*
 * HTTP/1.1 stream policy over llhttp (strict: no lenient flag is ever set).
 * Two sans-IO parsers share one engine (struct hp):
 *
 *   wr_http_req   visitor -> origin: validates and rewrites each head
 *   wr_http_resp  origin -> visitor: finds where each response ends and
 *                 rewrites each head (the same hop-by-hop policy, then
 *                 the ingress's own Connection semantics)
 *
 * States (both directions):
 *
 *   HEAD ---head complete---> (HEAD event) BODY | END
 *   BODY ---message complete--> END
 *   END  ---(END event)-----> HEAD (keep-alive) | CLOSED | UPGRADE
 *   UPGRADE --(UPGRADE event)--> RAW          every later byte is RAW
 *   DEAD  after an ERROR event; CLOSED after a non-keep-alive message:
 *         both swallow later input.
 *
 * Stopping at events.  llhttp reports spans through callbacks; our
 * on_headers_complete and on_message_complete return HPE_PAUSED, so
 * llhttp_execute() returns there and llhttp_get_error_pos() says how many
 * bytes belong to the head or the message.  After every END the llhttp
 * state is reset (llhttp_reset), so what follows a message never depends
 * on llhttp's idea of bodies we chose to skip (HEAD responses, 1xx, an
 * upgrade that started).
 *
 * Head bytes.  A head that arrives in one read is parsed in place (the
 * fast path: no copy).  One that is split over reads is copied into |raw|
 * (at most max_head bytes) and parsed there.  Callbacks record fields as
 * offsets from the start of the head, so both paths look the same to the
 * policy code, and a head longer than max_head is refused without ever
 * being buffered whole: llhttp is given at most max_head - head_len bytes.
 *
 * Bodies are never copied: a BODY event is the span of input llhttp
 * walked over until the message completed (chunk framing and trailers
 * included, validated by llhttp plus the checks below).
 *
 * Where llhttp 8.1 (strict) is still lenient, we are not (each case found
 * by feeding it crafted input, see tests/proxy/test_head.c):
 *   - obsolete line folding ("X: a\r\n b") is accepted by llhttp: we see it
 *     as a value split into non-adjacent spans, or one starting with
 *     whitespace, and refuse it (RFC 9112 5.2), in trailers too;
 *   - whitespace before the colon ("Host : a") and an empty name (": x")
 *     are accepted by llhttp: refused (RFC 9112 5.1);
 *   - a bare LF ending the request line or the head, or ending the
 *     trailer section of a chunked body ("0\r\n\n"), is accepted: refused,
 *     since an origin that wants CRLF would frame the stream differently;
 *   - HTTP/0.9 and HTTP/2.0 request lines are parsed: refused;
 *   - Transfer-Encoding other than exactly "chunked" (e.g. "gzip,
 *     chunked") is accepted: refused, as is Transfer-Encoding in HTTP/1.0.
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <llhttp.h>

#include "warren/err.h"
#include "warren/http.h"

#define DEFAULT_MAX_HEAD 32768
/* More fields than this answers 431.  Apache's LimitRequestFields is 100;
 * 512 is more than any browser or API client sends, and bounds the field
 * table at 512 * 20 bytes. */
#define MAX_FIELDS 512
/* Distinct options in Connection headers ("close, upgrade" is two). */
#define MAX_CONN_TOKENS 16
/* An incoming X-Request-Id longer than this (or with spaces, controls) is
 * replaced by ours: it is echoed in error pages and logs. */
#define MAX_REQUEST_ID 128
/* After a head larger than this the buffers are freed again, so one big
 * head does not pin 32 KiB per idle keep-alive connection. */
#define KEEP_BUF 8192

enum { ST_HEAD, ST_BODY, ST_END, ST_UPGRADE, ST_RAW, ST_CLOSED, ST_DEAD };

/* What the request policy does with a field (decided once per head). */
enum {
  K_KEEP, /* forwarded as is */
  K_DROP, /* hop-by-hop or replaced by ours */
  K_HOST,
  K_CONN,
  K_TE,
  K_UPGRADE, /* kept only when the request upgrades */
  K_XFF,     /* folded into our X-Forwarded-For */
  K_RID,     /* X-Request-Id */
  K_EXPECT,
  K_CL,      /* Content-Length: framing, always kept */
  K_TRAILER, /* kept only on a chunked response, whose trailers pass */
};

typedef struct field {
  uint32_t name_off, name_len, val_off, val_len;
  uint8_t kind;
} field;

#define BAD_NAME_WS 1
#define BAD_LINE_END 2
#define BAD_TOO_MANY 4
#define BAD_FOLD 8
#define BAD_TRAILER_FOLD 16

/* The engine shared by both directions. */
typedef struct hp {
  llhttp_t p;
  const wr_mem *mem;
  size_t max_head;
  int is_req;
  int state;

  /* Offsets: a span at |at| is at exec_off + (at - exec_base). */
  const uint8_t *exec_base;
  size_t exec_off;

  /* The current head. */
  int in_head;
  size_t head_len;     /* head bytes consumed so far */
  const uint8_t *head; /* complete head (input or raw) */
  uint8_t *raw;        /* partial head copied across reads */
  size_t raw_cap;

  field *f; /* the head's fields (offsets into head) */
  size_t nf, f_cap;
  int in_field, in_value;
  size_t field_len, val_off, val_len;
  size_t url_off, url_len;
  int url_started;
  size_t ver_end;
  int ver_seen;

  /* The current body. */
  size_t body_off;
  uint8_t tail[4]; /* last 4 bytes of the message so far */
  int chunked;

  /* Trailers of a chunked body: scanned for obs-fold from the first
   * trailer field on (trail_at: where it starts in this feed). */
  int trailers, trail_lf;
  const uint8_t *trail_at;

  int bad; /* BAD_* seen inside spans, reported at the next _complete */
  int headers_done, msg_done;
  int err_status;
  const char *err_reason;
  int nomem;
} hp;

/* ---- engine ------------------------------------------------------------ */

static hp *hp_of(llhttp_t *p) { return p->data; }

static size_t span_off(const hp *e, const char *at) {
  return e->exec_off + (size_t)((const uint8_t *)at - e->exec_base);
}

static int fail(hp *e, int status, const char *reason) {
  if (!e->err_status) {
    e->err_status = status;
    e->err_reason = reason;
  }
  return HPE_USER;
}

static int on_url(llhttp_t *p, const char *at, size_t len) {
  hp *e = hp_of(p);
  size_t off = span_off(e, at);
  if (!e->url_started) {
    e->url_started = 1;
    e->url_off = off;
    e->url_len = 0;
  }
  e->url_len += len;
  return 0;
}

static int on_version(llhttp_t *p, const char *at, size_t len) {
  hp *e = hp_of(p);
  e->ver_end = span_off(e, at) + len;
  e->ver_seen = 1;
  return 0;
}

/*
 * Whether |p| holds SP or HTAB.  Eight bytes at a time (the last eight
 * overlapping), since this runs over every field name of both heads: the
 * byte loop was a tenth of head.c's instructions (docs/BENCHMARKS.md,
 * "Round 7").  A byte of x ^ 0x20.. is zero where x has SP; the classic
 * test (v - 0x01..) & ~v & 0x80.. is nonzero iff v has a zero byte.
 */
static int has_ws(const char *p, size_t n) {
  const uint64_t ones = 0x0101010101010101ull, highs = 0x8080808080808080ull;
  const uint64_t sp = 0x2020202020202020ull, ht = 0x0909090909090909ull;
  if (n < 8) {
    for (size_t i = 0; i < n; i++)
      if (p[i] == ' ' || p[i] == '\t') return 1;
    return 0;
  }
  for (size_t i = 0;; i += 8) {
    if (i + 8 > n) i = n - 8;
    uint64_t x, a, b;
    memcpy(&x, p + i, 8);
    a = x ^ sp;
    b = x ^ ht;
    if (((a - ones) & ~a & highs) | ((b - ones) & ~b & highs)) return 1;
    if (i + 8 == n) return 0;
  }
}

/*
 * Our checks only raise flags inside span callbacks and fail in the
 * *_complete callbacks: a span may be delivered early (at the end of a
 * read) or late, and llhttp's own errors later in the same token must win
 * either way, so that the verdict does not depend on how input was split.
 */
static int on_header_field(llhttp_t *p, const char *at, size_t len) {
  hp *e = hp_of(p);
  if (!e->in_head && !e->trail_at) {
    e->trailers = 1;
    e->trail_at = (const uint8_t *)at;
  }
  if (has_ws(at, len)) e->bad |= BAD_NAME_WS;
  if (!e->in_field) {
    e->in_field = 1;
    e->in_value = 0;
    e->field_len = 0;
    e->val_off = e->val_len = 0;
    if (e->in_head) {
      /* The request line must end in CRLF: the first field starts two
       * bytes after the version (llhttp also takes a bare LF there). */
      if (e->is_req && e->nf == 0 && e->ver_seen &&
          span_off(e, at) != e->ver_end + 2)
        e->bad |= BAD_LINE_END;
      if (e->nf == MAX_FIELDS) {
        e->bad |= BAD_TOO_MANY;
      } else {
        if (e->nf == e->f_cap) {
          size_t cap = e->f_cap ? e->f_cap * 2 : 32;
          field *nf = wr_mem_realloc(e->mem, e->f, cap * sizeof(*nf));
          if (!nf) {
            e->nomem = 1;
            return HPE_USER;
          }
          e->f = nf;
          e->f_cap = cap;
        }
        e->f[e->nf].name_off = (uint32_t)span_off(e, at);
      }
    }
  }
  e->field_len += len;
  return 0;
}

static int on_header_field_complete(llhttp_t *p) {
  hp *e = hp_of(p);
  if (e->bad & BAD_LINE_END)
    return fail(e, 400, "request line not terminated by CRLF");
  if (e->bad & BAD_NAME_WS)
    return fail(e, 400, "whitespace in or after a header field name");
  if (e->field_len == 0) return fail(e, 400, "empty header field name");
  if (e->bad & BAD_TOO_MANY) return fail(e, 431, "more than 512 header fields");
  return 0;
}

static int on_header_value(llhttp_t *p, const char *at, size_t len) {
  hp *e = hp_of(p);
  size_t off = span_off(e, at);
  if (!e->in_value) {
    /* llhttp skips leading whitespace, so a value that starts with some
     * is the continuation of a folded line whose first part was empty. */
    if (len > 0 && (at[0] == ' ' || at[0] == '\t')) e->bad |= BAD_FOLD;
    e->in_value = 1;
    e->val_off = off;
    e->val_len = len;
  } else {
    /* Spans of one value are adjacent unless llhttp skipped a CRLF in
     * between: obs-fold. */
    if (off != e->val_off + e->val_len) e->bad |= BAD_FOLD;
    e->val_len += len;
  }
  return 0;
}

static int on_header_value_complete(llhttp_t *p) {
  hp *e = hp_of(p);
  if (e->bad & BAD_FOLD)
    return fail(e, 400, "obsolete line folding in a header");
  if (e->in_head) {
    field *f = &e->f[e->nf++];
    f->name_len = (uint32_t)e->field_len;
    f->val_off = (uint32_t)e->val_off;
    f->val_len = (uint32_t)e->val_len;
    f->kind = K_KEEP;
  }
  e->in_field = e->in_value = 0;
  return 0;
}

static int on_headers_complete(llhttp_t *p) {
  hp_of(p)->headers_done = 1;
  return HPE_PAUSED;
}

static int on_message_complete(llhttp_t *p) {
  hp_of(p)->msg_done = 1;
  return HPE_PAUSED;
}

static const llhttp_settings_t settings = {
    .on_url = on_url,
    .on_version = on_version,
    .on_header_field = on_header_field,
    .on_header_field_complete = on_header_field_complete,
    .on_header_value = on_header_value,
    .on_header_value_complete = on_header_value_complete,
    .on_headers_complete = on_headers_complete,
    .on_message_complete = on_message_complete,
};

static void hp_msg_reset(hp *e) {
  llhttp_reset(&e->p);
  e->state = ST_HEAD;
  e->in_head = 1;
  e->head_len = 0;
  e->head = NULL;
  e->nf = 0;
  e->in_field = e->in_value = 0;
  e->url_started = 0;
  e->url_off = e->url_len = 0;
  e->ver_seen = 0;
  e->ver_end = 0;
  e->body_off = 0;
  e->trailers = e->trail_lf = 0;
  e->bad = 0;
  e->trail_at = NULL;
  memset(e->tail, 0, sizeof(e->tail));
  e->chunked = 0;
}

static int hp_init(hp *e, llhttp_type_t type, size_t max_head,
                   const wr_mem *mem) {
  memset(e, 0, sizeof(*e));
  e->mem = mem;
  e->max_head = max_head ? max_head : DEFAULT_MAX_HEAD;
  e->is_req = type == HTTP_REQUEST;
  llhttp_init(&e->p, type, &settings);
  e->p.data = e;
  hp_msg_reset(e);
  return 0;
}

static void hp_free(hp *e) {
  wr_mem_free(e->mem, e->raw);
  wr_mem_free(e->mem, e->f);
}

static int raw_reserve(hp *e, size_t need) {
  if (need <= e->raw_cap) return 0;
  size_t cap = e->raw_cap ? e->raw_cap : 1024;
  while (cap < need) cap *= 2;
  if (cap > e->max_head) cap = e->max_head;
  uint8_t *r = wr_mem_realloc(e->mem, e->raw, cap);
  if (!r) return WR_ERR_NOMEM;
  e->raw = r;
  e->raw_cap = cap;
  return 0;
}

/* llhttp's reasons are static strings; a few get plainer words. */
static const char *llhttp_reason(hp *e, llhttp_errno_t err) {
  switch (err) {
  case HPE_PAUSED_H2_UPGRADE:
    return "HTTP/2 prior knowledge is not supported, use HTTP/1.1";
  case HPE_INVALID_METHOD:
    return "not an HTTP/1.x request (unknown method)";
  case HPE_INVALID_CHUNK_SIZE:
    return "invalid chunk size in a chunked body";
  default: {
    const char *r = llhttp_get_error_reason(&e->p);
    return r ? r : llhttp_errno_name(err);
  }
  }
}

static void hp_set_llhttp_error(hp *e, llhttp_errno_t err) {
  if (!e->err_status) fail(e, 400, llhttp_reason(e, err));
}

/*
 * A line that starts with SP or HTAB after a LF is obs-fold (a folded
 * header line): llhttp takes it and even drops the whitespace when the
 * folded line's first part is empty ("X:\r\n v"), so spans alone cannot
 * tell.  *prev_lf carries "the last byte was LF" across calls.
 */
static int has_fold(const uint8_t *p, size_t n, int *prev_lf) {
  if (n == 0) return 0;
  if (prev_lf && *prev_lf && (p[0] == ' ' || p[0] == '\t')) return 1;
  const uint8_t *q = p, *end = p + n;
  while ((q = memchr(q, '\n', (size_t)(end - q))) != NULL) {
    if (++q == end) break;
    if (*q == ' ' || *q == '\t') return 1;
  }
  if (prev_lf) *prev_lf = p[n - 1] == '\n';
  return 0;
}

/*
 * Feeds head bytes.  Returns the bytes consumed (>= 0) and sets *done when
 * the head is complete (e->head, e->head_len); on bad input sets
 * e->err_status; WR_ERR_NOMEM on allocation failure.
 */
static wr_ssize hp_head(hp *e, const uint8_t *data, size_t len, int *done) {
  *done = 0;
  if (len == 0) return 0;
  if (e->head_len == 0 && e->raw_cap > KEEP_BUF) {
    wr_mem_free(e->mem, e->raw);
    e->raw = NULL;
    e->raw_cap = 0;
  }
  size_t room = e->max_head - e->head_len;
  size_t n = len < room ? len : room;
  int slow = e->head_len > 0;
  const uint8_t *exec = data;
  if (slow) {
    if (raw_reserve(e, e->head_len + n) != 0) return WR_ERR_NOMEM;
    memcpy(e->raw + e->head_len, data, n);
    exec = e->raw + e->head_len;
    e->exec_base = e->raw;
  } else {
    e->exec_base = data;
  }
  e->exec_off = 0;
  e->headers_done = 0;
  llhttp_errno_t err = llhttp_execute(&e->p, (const char *)exec, n);
  if (e->nomem) return WR_ERR_NOMEM;
  if (err == HPE_PAUSED && e->headers_done) {
    size_t used = (size_t)((const uint8_t *)llhttp_get_error_pos(&e->p) - exec);
    e->head = slow ? e->raw : data;
    e->head_len += used;
    e->in_head = 0;
    *done = 1;
    if (has_fold(e->head, e->head_len, NULL))
      fail(e, 400, "obsolete line folding in a header");
    return (wr_ssize)used;
  }
  if (err != HPE_OK) {
    hp_set_llhttp_error(e, err);
    return (wr_ssize)n;
  }
  if (e->head_len + n >= e->max_head) {
    fail(e, 431,
         e->is_req ? "request head larger than the limit"
                   : "response head larger than the limit");
    return (wr_ssize)n;
  }
  if (!slow) {
    if (raw_reserve(e, n) != 0) return WR_ERR_NOMEM;
    memcpy(e->raw, data, n);
  }
  e->head_len += n;
  return (wr_ssize)n;
}

static void tail_push(uint8_t tail[4], const uint8_t *p, size_t n) {
  if (n >= 4) {
    memcpy(tail, p + n - 4, 4);
    return;
  }
  memmove(tail, tail + n, 4 - n);
  memcpy(tail + 4 - n, p, n);
}

/*
 * Feeds body bytes through llhttp.  Returns the span that belongs to the
 * message (> 0 unless len is 0 or the message had ended), sets
 * e->msg_done when it completed, e->err_status on bad framing.
 */
static wr_ssize hp_body(hp *e, const uint8_t *data, size_t len) {
  e->exec_base = data;
  e->exec_off = e->body_off;
  e->msg_done = 0;
  e->trail_at = e->trailers ? data : NULL;
  llhttp_errno_t err = llhttp_execute(&e->p, (const char *)data, len);
  if (e->nomem) return WR_ERR_NOMEM;
  size_t used = len;
  if (err == HPE_PAUSED && e->msg_done) {
    used = (size_t)((const uint8_t *)llhttp_get_error_pos(&e->p) - data);
  } else if (err != HPE_OK) {
    hp_set_llhttp_error(e, err);
    return (wr_ssize)len;
  }
  if (e->trail_at && e->trail_at < data + used &&
      has_fold(e->trail_at, (size_t)(data + used - e->trail_at), &e->trail_lf))
    e->bad |= BAD_TRAILER_FOLD;
  tail_push(e->tail, data, used);
  e->body_off += used;
  /* Reported when the message ends, for the same reason as above. */
  if (e->msg_done && (e->bad & BAD_TRAILER_FOLD))
    fail(e, 400, "obsolete line folding in a trailer");
  else if (e->msg_done && e->chunked && memcmp(e->tail, "\r\n\r\n", 4) != 0)
    fail(e, 400, "chunked body not terminated by CRLF CRLF");
  return (wr_ssize)used;
}

/* ---- small string helpers ------------------------------------------------ */

static uint8_t lower(uint8_t c);

/* |a| (|n| bytes) equals the lower-case literal |lit| of |m| bytes, in
 * any case.  Inline, with the length known at the call (IEQ): classify()
 * runs it for several fields of every head, and strlen plus a
 * strncasecmp call cost ~120 instructions a comparison. */
static inline int ieq_n(const uint8_t *a, size_t n, const char *lit,
                        size_t m) {
  if (n != m) return 0;
  for (size_t i = 0; i < m; i++)
    if (lower(a[i]) != (uint8_t)lit[i]) return 0;
  return 1;
}
#define IEQ(a, n, lit) ieq_n((a), (n), "" lit, sizeof(lit) - 1)


static int is_ows(uint8_t c) { return c == ' ' || c == '\t'; }

static void trim(const uint8_t **p, size_t *n) {
  while (*n && is_ows((*p)[0])) (*p)++, (*n)--;
  while (*n && is_ows((*p)[*n - 1])) (*n)--;
}

static uint8_t lower(uint8_t c) {
  return (c >= 'A' && c <= 'Z') ? (uint8_t)(c + 32) : c;
}

/*
 * uri-host [ ":" port ] (RFC 9110 7.2): a reg-name (unreserved,
 * pct-encoded, sub-delims), an IPv4 address, or an IP-literal in
 * brackets.  Sets *hostlen to the part before the port.
 */
static int host_valid(const uint8_t *s, size_t n, size_t *hostlen) {
  size_t i = 0;
  if (n == 0) return 0;
  if (s[0] == '[') {
    for (i = 1; i < n && s[i] != ']'; i++) {
      uint8_t c = s[i];
      if (!((c >= '0' && c <= '9') || (lower(c) >= 'a' && lower(c) <= 'f') ||
            c == ':' || c == '.'))
        return 0;
    }
    if (i >= n || i == 1) return 0;
    i++;
  } else {
    for (; i < n && s[i] != ':'; i++) {
      uint8_t c = s[i];
      if (!((c >= '0' && c <= '9') || (lower(c) >= 'a' && lower(c) <= 'z') ||
            strchr("-._~!$&'()*+,;=%", c)))
        return 0;
    }
    if (i == 0) return 0;
  }
  *hostlen = i;
  if (i == n) return 1;
  if (s[i] != ':' || n - i - 1 > 5) return 0;
  for (size_t j = i + 1; j < n; j++)
    if (s[j] < '0' || s[j] > '9') return 0;
  return 1;
}

/* ---- hop-by-hop policy (both directions) ---------------------------------
 *
 * RFC 9110 7.6.1: a proxy removes Connection, every field that Connection
 * names, and the fields that are hop-by-hop by definition (Keep-Alive,
 * Proxy-Connection, TE, Transfer-Encoding, Upgrade), then sets its own
 * connection semantics for the next hop.  Requests and responses share the
 * same three pieces: classify() sorts field names, conn_parse() collects
 * the Connection options, put_fields() writes what survives.  Framing
 * fields (Content-Length, Transfer-Encoding) are never dropped, even when
 * Connection names them: the body passes through with its framing as is,
 * so its header must pass too, or the two hops would frame it differently.
 */

/* The Connection options of a head, as spans of the head. */
typedef struct conn_opts {
  const uint8_t *p[MAX_CONN_TOKENS];
  size_t n[MAX_CONN_TOKENS];
  size_t count;
} conn_opts;

static int conn_parse(conn_opts *c, const uint8_t *v, size_t n) {
  size_t i = 0;
  while (i < n) {
    size_t j = i;
    while (j < n && v[j] != ',') j++;
    const uint8_t *t = v + i;
    size_t tn = j - i;
    trim(&t, &tn);
    if (tn) {
      if (c->count == MAX_CONN_TOKENS) return -1;
      c->p[c->count] = t;
      c->n[c->count++] = tn;
    }
    i = j + 1;
  }
  return 0;
}

static int conn_lists(const conn_opts *c, const uint8_t *name, size_t n) {
  for (size_t i = 0; i < c->count; i++)
    if (c->n[i] == n &&
        strncasecmp((const char *)c->p[i], (const char *)name, n) == 0)
      return 1;
  return 0;
}

/*
 * Sorts a field by name.  Lengths first: most names match nothing.  The
 * names warren itself sets or reads on requests (Host, X-Forwarded-*,
 * X-Request-Id, Expect, the httpoxy "Proxy" and every Proxy-* field) only
 * count on requests; a response keeps them, and of the Proxy-* fields
 * drops only Proxy-Connection (Proxy-Authenticate of a 407 is the origin's
 * business, as Authorization is on requests).
 */
static int classify(const uint8_t *nm, size_t n, int is_req) {
  switch (n) {
  case 2:
    if (IEQ(nm, n, "te")) return K_DROP;
    break;
  case 4:
    if (is_req && IEQ(nm, n, "host")) return K_HOST;
    break;
  case 5:
    /* RFC 9110 18.4 reserves "Close" as a field name: next to the
     * Connection: close we add, a field of that name would read as one
     * the connection option names (found by the http_head fuzzer). */
    if (IEQ(nm, n, "close")) return K_DROP;
    if (is_req && IEQ(nm, n, "proxy")) return K_DROP; /* httpoxy */
    break;
  case 6:
    if (is_req && IEQ(nm, n, "expect")) return K_EXPECT;
    break;
  case 7:
    if (IEQ(nm, n, "trailer")) return K_TRAILER;
    if (IEQ(nm, n, "upgrade")) return K_UPGRADE;
    break;
  case 10:
    if (IEQ(nm, n, "connection")) return K_CONN;
    if (IEQ(nm, n, "keep-alive")) return K_DROP;
    break;
  case 12:
    if (is_req && IEQ(nm, n, "x-request-id")) return K_RID;
    break;
  case 14:
    if (IEQ(nm, n, "content-length")) return K_CL;
    break;
  case 15:
    if (is_req && IEQ(nm, n, "x-forwarded-for")) return K_XFF;
    break;
  case 16:
    if (IEQ(nm, n, "proxy-connection")) return K_DROP;
    if (is_req && IEQ(nm, n, "x-forwarded-host")) return K_DROP;
    break;
  case 17:
    if (IEQ(nm, n, "transfer-encoding")) return K_TE;
    if (is_req && IEQ(nm, n, "x-forwarded-proto")) return K_DROP;
    break;
  }
  /* Proxy-Authorization, ...: addressed to a proxy. */
  if (is_req && n > 6 && ieq_n(nm, 6, "proxy-", 6))
    return K_DROP;
  return K_KEEP;
}

/*
 * Trims field |i|'s value in place, classifies it and, for Connection,
 * collects its options.  Returns the kind, or -1 when the Connection
 * options are more than MAX_CONN_TOKENS.
 */
static int scan_field(hp *e, size_t i, conn_opts *co) {
  field *f = &e->f[i];
  const uint8_t *v = e->head + f->val_off;
  size_t vn = f->val_len;
  trim(&v, &vn);
  f->val_off = (uint32_t)(v - e->head);
  f->val_len = (uint32_t)vn;
  f->kind = (uint8_t)classify(e->head + f->name_off, f->name_len, e->is_req);
  if (f->kind == K_CONN && conn_parse(co, v, vn) != 0) return -1;
  return f->kind;
}

static void put(uint8_t **w, const void *p, size_t n) {
  memcpy(*w, p, n);
  *w += n;
}
static void puts_(uint8_t **w, const char *s) { put(w, s, strlen(s)); }

#define KEEP_UPGRADE 1 /* Upgrade passes (an upgrade request; 101, 426) */
#define KEEP_CONN 2    /* Connection passes (101: it says "upgrade") */
#define KEEP_TRAILER 4 /* Trailer passes (a chunked response) */
#define DROP_HOST 8    /* Host is replaced (absolute-form request) */

/*
 * Writes the fields of |e| that go to the next hop, in their order, as
 * "Name: value" (|w| must have room for head_len + 3 per field).  K_DROP
 * never passes, K_XFF neither (the request policy writes its own joined
 * X-Forwarded-For); K_CONN, K_UPGRADE, K_TRAILER and Host pass per
 * |flags|; framing always passes; any other field passes unless a
 * Connection option names it.
 */
static void put_fields(uint8_t **w, const hp *e, const conn_opts *co,
                       int flags) {
  const uint8_t *hd = e->head;
  for (size_t i = 0; i < e->nf; i++) {
    const field *f = &e->f[i];
    const uint8_t *nm = hd + f->name_off;
    switch (f->kind) {
    case K_DROP:
    case K_XFF:
      continue;
    case K_CONN:
      if (!(flags & KEEP_CONN)) continue;
      break;
    case K_HOST:
      if (flags & DROP_HOST) continue;
      break;
    case K_UPGRADE:
      if (!(flags & KEEP_UPGRADE)) continue;
      break;
    case K_TE:
    case K_CL:
      break; /* framing: never stripped, even when Connection names it */
    case K_TRAILER:
      if (!(flags & KEEP_TRAILER)) continue;
      if (conn_lists(co, nm, f->name_len)) continue;
      break;
    default:
      if (conn_lists(co, nm, f->name_len)) continue;
    }
    put(w, nm, f->name_len);
    put(w, ": ", 2);
    put(w, hd + f->val_off, f->val_len);
    put(w, "\r\n", 2);
  }
}

/* ---- request direction --------------------------------------------------- */

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
    return fail(e, 400, "only HTTP/1.0 and HTTP/1.1 are supported"), 0;
  if (p->method == HTTP_CONNECT)
    return fail(e, 405,
                "CONNECT is not supported: warren is not a "
                "forward proxy"),
           0;
  /* The head must end in CRLF CRLF and, without fields, the request line
   * in CRLF too (llhttp takes a bare LF in both places). */
  if (e->head_len < 4 || memcmp(hd + e->head_len - 4, "\r\n\r\n", 4) != 0 ||
      (e->nf == 0 && e->head_len != e->ver_end + 4))
    return fail(e, 400, "request head not terminated by CRLF CRLF"), 0;

  conn_opts co;
  co.count = 0; /* p[] and n[] are read below count only */
  const uint8_t *host = NULL, *rid = NULL;
  size_t host_n = 0, rid_n = 0, xff_len = 0, nhost = 0, nte = 0;
  int expect = 0;
  for (size_t i = 0; i < e->nf; i++) {
    int kind = scan_field(e, i, &co);
    if (kind < 0) return fail(e, 400, "too many Connection options"), 0;
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
        return fail(e, 400, "unsupported Transfer-Encoding (only chunked)"), 0;
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
  if (nte > 1) return fail(e, 400, "more than one Transfer-Encoding"), 0;
  if (nte && p->http_minor == 0)
    return fail(e, 400, "Transfer-Encoding in an HTTP/1.0 request"), 0;
  if (nhost > 1) return fail(e, 400, "more than one Host header"), 0;

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
    if (!skip) return fail(e, 400, "request target is not a path or URL"), 0;
    const uint8_t *a = url + skip;
    size_t an = 0;
    while (skip + an < url_n && a[an] != '/' && a[an] != '?' && a[an] != '#')
      an++;
    if (memchr(a, '@', an))
      return fail(e, 400, "user info in the request URL"), 0;
    host = a;
    host_n = an;
    path = a + an;
    path_n = url_n - skip - an;
    absolute = 1;
  } else if (nhost == 0) {
    return fail(e, 400, "missing Host header"), 0;
  }
  size_t hostname_n = 0;
  if (!host_valid(host, host_n, &hostname_n))
    return fail(e, 400, "invalid Host"), 0;

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
  put_fields(&w, e, &co,
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
  if (body) {
    e->state = ST_BODY;
    llhttp_resume(p);
  } else {
    e->state = ST_END;
  }
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

/*
 * After a head, both directions move through the same states (body, end,
 * upgrade, raw); only how an error is reported and what follows the end
 * of a message differ, and |d| supplies those.
 */
typedef struct hp_dir {
  wr_ssize (*error)(void *h, wr_http_ev *ev, size_t len);
  void (*after_end)(void *h, wr_http_ev *ev);
} hp_dir;

static wr_ssize hp_step(hp *e, const hp_dir *d, void *h, const uint8_t *data,
                        size_t len, wr_http_ev *ev) {
  switch (e->state) {
  case ST_BODY: {
    if (len == 0) return 0;
    wr_ssize n = hp_body(e, data, len);
    if (n < 0) return n;
    if (e->err_status) return d->error(h, ev, len);
    if (e->msg_done) e->state = ST_END;
    if (n > 0) {
      ev->type = WR_HTTP_EV_BODY;
      ev->data = data;
      ev->len = (size_t)n;
      return n;
    }
    if (e->state != ST_END) return 0;
    d->after_end(h, ev);
    return 0;
  }
  case ST_END:
    d->after_end(h, ev);
    return 0;
  case ST_UPGRADE:
    ev->type = WR_HTTP_EV_UPGRADE;
    e->state = ST_RAW;
    return 0;
  case ST_RAW:
    if (len == 0) return 0;
    ev->type = WR_HTTP_EV_RAW;
    ev->data = data;
    ev->len = len;
    return (wr_ssize)len;
  default: /* CLOSED, DEAD: nothing more is read on this connection */
    return (wr_ssize)len;
  }
}

static wr_ssize req_error_v(void *h, wr_http_ev *ev, size_t len) {
  return req_error(h, ev, len);
}
static void req_after_end_v(void *h, wr_http_ev *ev) { req_after_end(h, ev); }
static const hp_dir req_dir = {req_error_v, req_after_end_v};

wr_ssize wr_http_req_feed(wr_http_req *h, const uint8_t *data, size_t len,
                          wr_http_ev *ev) {
  hp *e = &h->e;
  memset(ev, 0, sizeof(*ev));
  switch (e->state) {
  case ST_HEAD: {
    int done;
    wr_ssize n = hp_head(e, data, len, &done);
    if (n < 0) return n;
    if (e->err_status) return req_error(h, ev, len);
    if (!done) return n;
    int rv = req_head_done(h, ev);
    if (rv < 0) return rv;
    if (e->err_status) {
      memset(ev, 0, sizeof(*ev));
      return req_error(h, ev, len);
    }
    return n;
  }
  default:
    return hp_step(e, &req_dir, h, data, len, ev);
  }
}

/* ---- response direction -------------------------------------------------- */

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
 * origin sent it, the fields that survive put_fields(), then warren's own
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
    int kind = scan_field(e, i, &co);
    if (kind < 0) return fail(e, 502, "too many Connection options"), 0;
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
    return fail(e, 502, "origin sent a malformed status line"), 0;
  put(&w, hd, sl);
  put(&w, "\r\n", 2);
  put_fields(&w, e, &co, flags);
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
    return fail(e, 502, "origin's response is not HTTP/1.0 or HTTP/1.1"), 0;
  if (status < 100)
    return fail(e, 502, "origin sent an invalid status code"), 0;
  if (h->q_len == 0)
    return fail(e, 502, "origin sent a response nobody asked for"), 0;
  int exp = h->q[h->q_head];
  int ka_conn = p->http_minor == 1 ? !(p->flags & F_CONNECTION_CLOSE)
                                   : (p->flags & F_CONNECTION_KEEP_ALIVE) != 0;
  int body = 0;
  h->interim = h->upgrade = 0;
  if (status == 101) {
    if (!(exp & WR_HTTP_EXP_UPGRADE))
      return fail(e, 502, "origin switched protocols without being asked"), 0;
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
  if (body) {
    e->state = ST_BODY;
    llhttp_resume(p);
  } else {
    e->state = ST_END;
  }
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
static const hp_dir resp_dir = {resp_error_v, resp_after_end_v};

wr_ssize wr_http_resp_feed(wr_http_resp *h, const uint8_t *data, size_t len,
                           wr_http_ev *ev) {
  hp *e = &h->e;
  memset(ev, 0, sizeof(*ev));
  if (h->eof) return (wr_ssize)len;
  switch (e->state) {
  case ST_HEAD: {
    int done;
    wr_ssize n = hp_head(e, data, len, &done);
    if (n < 0) return n;
    if (e->err_status) return resp_error(h, ev, len);
    if (!done) return n;
    int rv = resp_head_done(h, ev);
    if (rv < 0) return rv;
    if (e->err_status) return resp_error(h, ev, len);
    return n;
  }
  default:
    return hp_step(e, &resp_dir, h, data, len, ev);
  }
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
