/*
 * Fuzz target: arbitrary bytes through both HTTP parsers of head.c (the
 * request policy and the response framing), each run twice: whole, and
 * split into pieces whose sizes the input chooses.
 *
 * Input layout: byte 0 = flags (bits 0-1 pick max_head: 32768, 64, 300,
 * 2048; bit 2: refuse upgrades, as when the origin answers non-101;
 * bit 3: call wr_http_resp_eof at the end; bit 4: the owed response
 * number (byte 1 & 7) answers a request that closes the connection;
 * bit 5: the requests were HTTP/1.0), byte 1 seeds the piece sizes
 * (1..64), byte 2 says which of the 8 owed responses answer HEAD requests,
 * byte 3 which answer upgrade requests; the rest is the stream, fed to
 * the request parser and to the response parser.
 *
 * Oracles: the event transcript (BODY/RAW spans joined, body bytes before
 * an ERROR dropped) is the same for any split; every event obeys http.h
 * (NONE only when all input is consumed, BODY/RAW spans are the input's
 * next bytes, buffered <= max_head, progress); every rewritten request
 * head is accepted again, unchanged in meaning, by a fresh parser; every
 * rewritten response head carries no hop-by-hop field but warren's own
 * Connection (or, on 101, the origin's), and rewriting it again changes
 * nothing.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "warren/http.h"

typedef struct out {
  uint8_t *s;
  size_t len, cap;
  char pend;
  size_t pend_at;
} out;

static void put(out *o, const void *p, size_t n) {
  if (o->len + n > o->cap) {
    size_t cap = o->cap ? o->cap : 4096;
    while (cap < o->len + n) cap *= 2;
    uint8_t *s = realloc(o->s, cap);
    if (!s) abort();
    o->s = s;
    o->cap = cap;
  }
  if (n) memcpy(o->s + o->len, p, n);
  o->len += n;
}

static void put_int(out *o, long v) {
  char b[24];
  int n = 0;
  unsigned long u = v < 0 ? (unsigned long)-v : (unsigned long)v;
  do b[n++] = (char)('0' + u % 10);
  while ((u /= 10) && n < 23);
  if (v < 0) put(o, "-", 1);
  while (n) put(o, &b[--n], 1);
}

static void put_str(out *o, const char *s) {
  if (!s) s = "(null)";
  put(o, s, strlen(s) + 1);
}

static void record(out *o, const wr_http_ev *ev) {
  char k = ev->type == WR_HTTP_EV_BODY  ? 'B'
           : ev->type == WR_HTTP_EV_RAW ? 'R'
                                        : 0;
  if (k && o->pend == k) {
    put(o, ev->data, ev->len);
    return;
  }
  if (ev->type == WR_HTTP_EV_ERROR && o->pend == 'B') o->len = o->pend_at;
  o->pend = k;
  o->pend_at = o->len;
  put(o, "\n#", 2);
  put_int(o, ev->type);
  switch (ev->type) {
  case WR_HTTP_EV_HEAD:
    put_str(o, ev->name);
    put_str(o, ev->host);
    put_str(o, ev->request_id);
    put_int(o, ev->method_head * 1000 + ev->expect_continue * 100 +
                   ev->upgrade * 10 + ev->keep_alive);
    put_int(o, ev->status);
    put(o, ev->data, ev->len);
    break;
  case WR_HTTP_EV_BODY:
  case WR_HTTP_EV_RAW:
    put(o, ev->data, ev->len);
    break;
  case WR_HTTP_EV_END:
    put_int(o, ev->keep_alive);
    break;
  case WR_HTTP_EV_ERROR:
    put_int(o, ev->status);
    put_str(o, ev->reason);
    break;
  default:
    break;
  }
}

typedef struct setup {
  wr_http_req_config cfg;
  int refuse, eof, close_at, http10;
  uint8_t seed, heads, upgrades;
} setup;

/* The WR_HTTP_EXP_* flags of owed response |i|. */
static unsigned exp_flags(const setup *su, int i) {
  return (su->heads >> i & 1 ? WR_HTTP_EXP_HEAD : 0) |
         (su->upgrades >> i & 1 ? WR_HTTP_EXP_UPGRADE : 0) |
         (su->close_at == i ? WR_HTTP_EXP_CLOSE : 0) |
         (su->http10 ? WR_HTTP_EXP_HTTP10 : 0);
}

static int name_is(const uint8_t *p, size_t n, const char *lit) {
  size_t m = strlen(lit);
  if (n != m) return 0;
  for (size_t i = 0; i < n; i++) {
    uint8_t c = p[i] >= 'A' && p[i] <= 'Z' ? (uint8_t)(p[i] + 32) : p[i];
    if (c != (uint8_t)lit[i]) return 0;
  }
  return 1;
}

/*
 * A rewritten response head: CRLF lines, no Keep-Alive, Proxy-Connection
 * or TE; Upgrade only on 101 and 426; on other statuses at most one
 * Connection, saying only close, keep-alive or upgrade.  Then it must
 * parse again, with the same flags, to the same status and keep_alive,
 * and be rewritten to exactly itself.
 */
static void check_resp_head(const wr_http_ev *ev, unsigned flags) {
  const uint8_t *p = ev->data, *end = ev->data + ev->len;
  if (ev->len < 4 || memcmp(end - 4, "\r\n\r\n", 4) != 0) abort();
  const uint8_t *line = memchr(p, '\n', ev->len);
  if (!line || line == p || line[-1] != '\r') abort();
  int nconn = 0;
  for (line++; line < end - 2;) {
    const uint8_t *nl = memchr(line, '\n', (size_t)(end - line));
    if (!nl || nl[-1] != '\r') abort();
    const uint8_t *colon = memchr(line, ':', (size_t)(nl - line));
    if (!colon) abort();
    size_t nn = (size_t)(colon - line);
    if (name_is(line, nn, "keep-alive") || name_is(line, nn, "te") ||
        name_is(line, nn, "proxy-connection"))
      abort();
    if (name_is(line, nn, "upgrade") && ev->status != 101 &&
        ev->status != 426)
      abort();
    if (name_is(line, nn, "connection") && ev->status != 101) {
      nconn++;
      const uint8_t *v = colon + 1;
      while (v < nl - 1) {
        while (v < nl - 1 && (*v == ' ' || *v == ',')) v++;
        const uint8_t *t = v;
        while (v < nl - 1 && *v != ',') v++;
        if (v > t && !name_is(t, (size_t)(v - t), "close") &&
            !name_is(t, (size_t)(v - t), "keep-alive") &&
            !name_is(t, (size_t)(v - t), "upgrade"))
          abort();
      }
    }
    line = nl + 1;
  }
  if (nconn > 1) abort();
  wr_http_resp *h;
  if (wr_http_resp_new(&h, 1 << 20, NULL) != 0 ||
      wr_http_resp_expect(h, flags) != 0)
    abort();
  wr_http_ev e2;
  wr_ssize n = wr_http_resp_feed(h, ev->data, ev->len, &e2);
  /* Adding our Connection line to a head of exactly 512 fields makes one
   * too many for a parser (ours included): the only allowed refusal. */
  if (e2.type == WR_HTTP_EV_ERROR && e2.reason &&
      strstr(e2.reason, "more than 512")) {
    wr_http_resp_del(h);
    return;
  }
  if (n != (wr_ssize)ev->len || e2.type != WR_HTTP_EV_HEAD) abort();
  if (e2.status != ev->status || e2.keep_alive != ev->keep_alive ||
      e2.upgrade != ev->upgrade || e2.len != ev->len ||
      memcmp(e2.data, ev->data, ev->len) != 0)
    abort();
  wr_http_resp_del(h);
}

/* A rewritten head must parse again to a HEAD for the same name. */
static void reparse(const setup *su, const wr_http_ev *ev) {
  wr_http_req *h;
  wr_http_req_config cfg = su->cfg;
  cfg.max_head = 1 << 20;
  if (wr_http_req_new(&h, &cfg, NULL) != 0) return;
  wr_http_ev e2;
  wr_ssize n = wr_http_req_feed(h, ev->data, ev->len, &e2);
  if (n != (wr_ssize)ev->len || e2.type != WR_HTTP_EV_HEAD) abort();
  if ((ev->name == NULL) != (e2.name == NULL)) abort();
  if (ev->name && strcmp(ev->name, e2.name) != 0) abort();
  if (strcmp(ev->request_id, e2.request_id) != 0) abort();
  if (e2.upgrade != ev->upgrade || e2.keep_alive != ev->keep_alive) abort();
  wr_http_req_del(h);
}

static size_t next_piece(uint32_t *st) {
  *st = *st * 1103515245u + 12345u;
  return 1 + ((*st >> 16) & 63);
}

static void run(const setup *su, int resp, const uint8_t *data, size_t size,
                int split, out *o) {
  wr_http_req *rq = NULL;
  wr_http_resp *rs = NULL;
  size_t max_head = su->cfg.max_head;
  if (resp) {
    if (wr_http_resp_new(&rs, max_head, NULL) != 0) abort();
    for (int i = 0; i < 8; i++)
      if (wr_http_resp_expect(rs, exp_flags(su, i))) abort();
  } else if (wr_http_req_new(&rq, &su->cfg, NULL) != 0) {
    abort();
  }
  uint32_t st = su->seed;
  size_t off = 0;
  long guard = 0;
  int answered = 0, final = 0; /* responses ended; the last head final */
  while (off < size) {
    size_t n = split ? next_piece(&st) : size;
    if (n > size - off) n = size - off;
    /* The piece is a fresh heap copy: ASan sees any read past it. */
    uint8_t *piece = malloc(n);
    if (!piece) abort();
    memcpy(piece, data + off, n);
    const uint8_t *p = piece;
    size_t left = n;
    for (;;) {
      if (++guard > 8 * (long)size + 64) abort();
      wr_http_ev ev;
      wr_ssize r = rs ? wr_http_resp_feed(rs, p, left, &ev)
                      : wr_http_req_feed(rq, p, left, &ev);
      if (r < 0 || (size_t)r > left) abort();
      if ((ev.type == WR_HTTP_EV_BODY || ev.type == WR_HTTP_EV_RAW) &&
          (ev.data != p || ev.len != (size_t)r || r == 0))
        abort();
      p += r;
      left -= (size_t)r;
      if (rq && wr_http_req_buffered(rq) > max_head) abort();
      if (ev.type == WR_HTTP_EV_NONE) {
        if (left != 0) abort();
        break;
      }
      record(o, &ev);
      if (rs && ev.type == WR_HTTP_EV_HEAD) {
        final = ev.status >= 200 || ev.status == 101;
        if (answered >= 8) abort();
        if (!split) check_resp_head(&ev, exp_flags(su, answered));
      }
      if (rs && ev.type == WR_HTTP_EV_END && final) answered++;
      if (rq && ev.type == WR_HTTP_EV_HEAD) {
        if (ev.len < 4 || memcmp(ev.data + ev.len - 4, "\r\n\r\n", 4) != 0)
          abort();
        if (!split) reparse(su, &ev);
      }
      if (rq && ev.type == WR_HTTP_EV_UPGRADE && su->refuse &&
          wr_http_req_upgrade_refused(rq) != 0)
        abort();
    }
    free(piece);
    off += n;
  }
  if (rs) {
    put(o, "\n#eof", 5);
    put_int(o, wr_http_resp_pending(rs));
    if (su->eof) put_int(o, wr_http_resp_eof(rs));
    wr_http_resp_del(rs);
  } else {
    wr_http_req_del(rq);
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static const size_t heads[4] = {32768, 64, 300, 2048};
  if (size < 4) return 0;
  setup su = {
      .cfg = {.domain = "localhost",
              .client_addr = "192.0.2.9",
              .proto = "http",
              .max_head = heads[data[0] & 3]},
      .refuse = data[0] >> 2 & 1,
      .eof = data[0] >> 3 & 1,
      .close_at = data[0] >> 4 & 1 ? data[1] & 7 : -1,
      .http10 = data[0] >> 5 & 1,
      .seed = data[1],
      .heads = data[2],
      .upgrades = data[3],
  };
  data += 4;
  size -= 4;
  for (int resp = 0; resp < 2; resp++) {
    out a = {0}, b = {0};
    run(&su, resp, data, size, 0, &a);
    run(&su, resp, data, size, 1, &b);
    if (a.len != b.len || (a.len && memcmp(a.s, b.s, a.len) != 0)) {
      fprintf(stderr, "%s: whole:\n%.*s\n--- split:\n%.*s\n",
              resp ? "response" : "request", (int)a.len, (const char *)a.s,
              (int)b.len, (const char *)b.s);
      abort();
    }
    free(a.s);
    free(b.s);
  }
  return 0;
}
