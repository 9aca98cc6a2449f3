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
 *
 * This file is that engine: the llhttp callbacks and the checks above,
 * head buffering, body framing and the states after a head.  The field
 * policy is head_fields.c; the two directions are head.c (requests) and
 * head_resp.c (responses).
 */
#include <string.h>

#include "head_int.h"

#define DEFAULT_MAX_HEAD 32768
/* More fields than this answers 431.  Apache's LimitRequestFields is 100;
 * 512 is more than any browser or API client sends, and bounds the field
 * table at 512 * 20 bytes. */
#define MAX_FIELDS 512

static hp *hp_of(llhttp_t *p) { return p->data; }

static size_t span_off(const hp *e, const char *at) {
  return e->exec_off + (size_t)((const uint8_t *)at - e->exec_base);
}

int hp_fail(hp *e, int status, const char *reason) {
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
    return hp_fail(e, 400, "request line not terminated by CRLF");
  if (e->bad & BAD_NAME_WS)
    return hp_fail(e, 400, "whitespace in or after a header field name");
  if (e->field_len == 0) return hp_fail(e, 400, "empty header field name");
  if (e->bad & BAD_TOO_MANY)
    return hp_fail(e, 431, "more than 512 header fields");
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
    return hp_fail(e, 400, "obsolete line folding in a header");
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

void hp_msg_reset(hp *e) {
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

int hp_init(hp *e, llhttp_type_t type, size_t max_head, const wr_mem *mem) {
  memset(e, 0, sizeof(*e));
  e->mem = mem;
  e->max_head = max_head ? max_head : DEFAULT_MAX_HEAD;
  e->is_req = type == HTTP_REQUEST;
  llhttp_init(&e->p, type, &settings);
  e->p.data = e;
  hp_msg_reset(e);
  return 0;
}

void hp_free(hp *e) {
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
  if (!e->err_status) hp_fail(e, 400, llhttp_reason(e, err));
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
      hp_fail(e, 400, "obsolete line folding in a header");
    return (wr_ssize)used;
  }
  if (err != HPE_OK) {
    hp_set_llhttp_error(e, err);
    return (wr_ssize)n;
  }
  if (e->head_len + n >= e->max_head) {
    hp_fail(e, 431,
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
    hp_fail(e, 400, "obsolete line folding in a trailer");
  else if (e->msg_done && e->chunked && memcmp(e->tail, "\r\n\r\n", 4) != 0)
    hp_fail(e, 400, "chunked body not terminated by CRLF CRLF");
  return (wr_ssize)used;
}

void hp_after_head(hp *e, int body) {
  if (body) {
    e->state = ST_BODY;
    llhttp_resume(&e->p);
  } else {
    e->state = ST_END;
  }
}

/* Everything after a head: body, end, upgrade, raw. */
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

wr_ssize hp_feed(hp *e, const hp_dir *d, void *h, const uint8_t *data,
                 size_t len, wr_http_ev *ev) {
  memset(ev, 0, sizeof(*ev));
  if (e->state != ST_HEAD) return hp_step(e, d, h, data, len, ev);
  int done;
  wr_ssize n = hp_head(e, data, len, &done);
  if (n < 0) return n;
  if (e->err_status) return d->error(h, ev, len);
  if (!done) return n;
  int rv = d->head_done(h, ev);
  if (rv < 0) return rv;
  if (e->err_status) {
    memset(ev, 0, sizeof(*ev)); /* no half-filled HEAD event */
    return d->error(h, ev, len);
  }
  return n;
}
