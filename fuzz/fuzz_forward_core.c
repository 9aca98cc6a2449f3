/*
 * libFuzzer target: the forwarding core (src/proxy/forward.c) driven by a
 * script of events, as the adapter and an upstream would deliver them.
 *
 * The input is a script of one-byte opcodes with arguments: the visitor
 * sends bytes (a piece of a canned request, cut where the script says, or
 * raw script bytes) or closes its side; the origin sends bytes (canned
 * responses or raw), its FIN, or the upstream ends for any reason; credit
 * comes back; the visitor's socket completes some of the writes, or fails
 * one, or takes part of one (send progress); time passes (with or
 * without a send-stall limit); the adapter closes, or sheds the
 * connection for its link's sake.  Invariants: nothing crashes or
 * leaks; the core never calls an upstream after it detached or ended;
 * never sends to the visitor once closed or handed off; never writes more
 * request bytes than the credit it was given; never consumes more credit
 * than the origin's bytes it was handed; reads only where it lends; a
 * finished connection holds no credit and no upstream.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "warren/err.h"
#include "warren/forward.h"

typedef struct script {
  const uint8_t *p;
  size_t n;
} script;

static uint8_t next(script *sc) {
  if (!sc->n) return 0;
  sc->n--;
  return *sc->p++;
}

#define MAXQ 4096
static struct {
  wr_fwd *f;
  int up_open, handed_off;
  size_t credit;        /* request bytes the upstream still takes */
  uint64_t given;       /* origin bytes handed to the core */
  uint64_t consumed;
  size_t qlen[MAXQ], qcredit[MAXQ]; /* sends not yet written, in order */
  int qh, qt;
} F;

#define CHECK(c)                                                             \
  do {                                                                       \
    if (!(c)) __builtin_trap();                                              \
  } while (0)

static wr_ssize up_write(void *up, const uint8_t *d, size_t len) {
  (void)up;
  CHECK(F.up_open);
  volatile uint8_t touch = 0;
  size_t n = len < F.credit ? len : F.credit;
  for (size_t i = 0; i < n; i++) touch ^= d[i];
  (void)touch;
  F.credit -= n;
  return (wr_ssize)n;
}
static void up_consume(void *up, size_t n) {
  (void)up;
  CHECK(F.up_open);
  F.consumed += n;
  CHECK(F.consumed <= F.given);
}
static void up_fin(void *up) {
  (void)up;
  CHECK(F.up_open);
}
static void up_detach(void *up, int reset) {
  (void)up;
  (void)reset;
  CHECK(F.up_open);
  F.up_open = 0;
}
static int not_reusable; /* the upstream's link drains (script) */
static int up_reusable(void *up) {
  (void)up;
  return !not_reusable;
}
static const wr_fwd_upstream_ops ops = {up_write, up_consume, up_fin,
                                        up_detach, up_reusable};

static int route; /* what open answers, from the script */

static int cb_open(void *ud, const wr_fwd_open *meta, wr_fwd_upstream *out,
                   char *detail, size_t cap) {
  (void)ud;
  CHECK(!F.up_open);
  CHECK(meta->name && meta->name[0]);
  if (route == 1) return 404;
  if (route == 2) {
    strncpy(detail, "fuzz: no", cap);
    return 502;
  }
  out->ops = &ops;
  out->up = &F;
  F.up_open = 1;
  F.given = F.consumed = 0;
  return 0;
}
static void cb_send(void *ud, uint8_t *buf, size_t len, size_t credit) {
  (void)ud;
  wr_fwd_state st = wr_fwd_get_state(F.f);
  CHECK(st != WR_FWD_CLOSED && st != WR_FWD_HANDED_OFF);
  CHECK(len > 0);
  free(buf);
  CHECK(F.qt - F.qh < MAXQ);
  F.qlen[F.qt % MAXQ] = len;
  F.qcredit[F.qt % MAXQ] = credit;
  F.qt++;
}
static int cb_handoff(void *ud, const uint8_t *pre, size_t len) {
  (void)ud;
  volatile uint8_t touch = 0;
  for (size_t i = 0; i < len; i++) touch ^= pre[i];
  (void)touch;
  F.handed_off = 1;
  return 0;
}
static uint8_t *cb_new(size_t n) { return malloc(n); }
static void cb_free(uint8_t *b) { free(b); }
static const wr_fwd_callbacks cbs = {cb_open, cb_send, cb_handoff, cb_new,
                                     cb_free, cb_handoff};

static void rand_fill(uint8_t *d, size_t n, void *ud) {
  (void)ud;
  memset(d, 0x5a, n);
}

static const char *const requests[] = {
    "GET / HTTP/1.1\r\nHost: app.mesh.test\r\n\r\n",
    "POST /u HTTP/1.1\r\nHost: app.mesh.test\r\nContent-Length: 10\r\n\r\n"
    "0123456789",
    "POST /c HTTP/1.1\r\nHost: app.mesh.test\r\nTransfer-Encoding: chunked"
    "\r\nExpect: 100-continue\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    "GET /ws HTTP/1.1\r\nHost: app.mesh.test\r\nConnection: Upgrade\r\n"
    "Upgrade: websocket\r\n\r\n",
    "GET / HTTP/1.1\r\nHost: app.mesh.test\r\nConnection: close\r\n\r\n",
    "GET /_warren/tunnel HTTP/1.1\r\nHost: n\r\nConnection: Upgrade\r\n"
    "Upgrade: warren/1\r\n\r\nhandshake",
    "HEAD / HTTP/1.0\r\nHost: other.mesh.test\r\n\r\n",
    "PROXY TCP4 192.0.2.1 192.0.2.2 1 2\r\n",
    "GET / HTTP/1.1\r\nHost: app.mesh.test\r\nContent-Length: 1\r\n"
    "Content-Length: 2\r\n\r\n",
};
static const char *const responses[] = {
    "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi",
    "HTTP/1.1 100 Continue\r\n\r\n",
    "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: "
    "websocket\r\n\r\nraw",
    "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n"
    "\r\n",
    "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil-close",
    "HTTP/1.1 413 Too Large\r\nContent-Length: 0\r\n\r\n",
    "garbage\r\n\r\n",
};
#define NREQ (sizeof requests / sizeof requests[0])
#define NRESP (sizeof responses / sizeof responses[0])

static uint8_t raw[4096];

/* Bytes for one step: a piece of a canned message or raw script bytes. */
static size_t pick(script *sc, const char *const *set, size_t nset,
                   const uint8_t **out) {
  uint8_t a = next(sc), b = next(sc);
  if (a & 0x80) {
    size_t n = (size_t)b * 16 + 1;
    if (n > sc->n) n = sc->n;
    memcpy(raw, sc->p, n);
    sc->p += n;
    sc->n -= n;
    *out = raw;
    return n;
  }
  const char *m = set[a % nset];
  size_t len = strlen(m), cut = b % 4; /* whole, or from a point in it */
  size_t from = cut == 0 ? 0 : len * cut / 4;
  *out = (const uint8_t *)m + from;
  return len - from;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  script sc = {data, size};
  memset(&F, 0, sizeof F);
  not_reusable = 0;
  wr_tstamp now = 1000;
  uint8_t setup = next(&sc);
  route = setup % 4 == 3 ? 0 : setup % 4;
  wr_fwd_config cfg = {
      .domain = "mesh.test",
      .proto = "http",
      .max_head = 1024 + 512 * (next(&sc) & 7),
      .rbuf_cap = 4096,
      .head_ms = 3000,
      .idle_ms = 5000,
      .upstream_ms = 4000,
      .body_min_rate = (setup & 8) ? 100 : 0,
      .pipeline_max = 1 + (next(&sc) & 7),
      .linger_ms = 5000,
      .linger_quiet_ms = 2000,
      .send_stall_ms = (setup & 16) ? 2000 : 0,
      .rand = rand_fill,
      .cb = &cbs,
  };
  if (wr_fwd_new(&F.f, &cfg, NULL, "192.0.2.9:1", "192.0.2.9",
                 (setup & 4) != 0, NULL, now) != 0)
    return 0;
  F.credit = (size_t)next(&sc) * 64;
  for (int steps = 0; sc.n && steps < 4000; steps++) {
    uint8_t op = next(&sc);
    wr_fwd_state st = wr_fwd_get_state(F.f);
    int done = st == WR_FWD_CLOSED || st == WR_FWD_HANDED_OFF;
    if (done) {
      CHECK(!wr_fwd_want_read(F.f));
      CHECK(wr_fwd_deadline(F.f) == WR_TSTAMP_NONE);
      CHECK(!F.up_open);
      CHECK(wr_fwd_held(F.f) == 0);
      CHECK(wr_fwd_upstream_of(F.f) == NULL);
      CHECK(wr_fwd_stalled_since(F.f) == WR_TSTAMP_NONE);
    }
    if (!F.up_open) CHECK(wr_fwd_held(F.f) == 0);
    if (F.handed_off) CHECK(st == WR_FWD_HANDED_OFF || st == WR_FWD_CLOSED);
    switch (op % 10) {
    case 0: { /* the visitor sends */
      const uint8_t *m;
      size_t len = pick(&sc, requests, NREQ, &m);
      if (done || !wr_fwd_want_read(F.f)) break;
      while (len > 0 && wr_fwd_want_read(F.f)) {
        uint8_t *buf;
        size_t cap;
        uint8_t scratch[512];
        int rv = wr_fwd_read_buf(F.f, &buf, &cap);
        if (rv < 0) break;
        if (rv == 1) {
          buf = scratch;
          cap = sizeof scratch;
        }
        size_t n = len < cap ? len : cap;
        memcpy(buf, m, n);
        m += n;
        len -= n;
        wr_fwd_read(F.f, n, now);
      }
      break;
    }
    case 1: /* the visitor closes its side */
      if (!done && wr_fwd_want_read(F.f))
        wr_fwd_read_eof(F.f, (op & 0x10) ? -104 : 0, now);
      break;
    case 2: { /* the origin sends */
      const uint8_t *m;
      size_t len = pick(&sc, responses, NRESP, &m);
      if (!F.up_open || len == 0) break;
      uint8_t *b = malloc(len);
      if (!b) break;
      memcpy(b, m, len);
      F.given += len;
      wr_fwd_up_data(F.f, b, len, now);
      break;
    }
    case 3:
      if (op & 0x40) { /* the node drains; busy is a pure query */
        (void)wr_fwd_busy(F.f);
        wr_fwd_drain(F.f, now);
      } else if (F.up_open) {
        wr_fwd_up_fin(F.f, now);
      }
      break;
    case 4:
      if (F.up_open) {
        F.up_open = 0; /* it detached itself */
        wr_fwd_up_ended(F.f, (wr_fwd_end)(next(&sc) % 6), now);
      }
      break;
    case 5: /* credit comes back; bit 0x40: the link drains or not */
      if (op & 0x40) not_reusable = !not_reusable;
      F.credit += (size_t)next(&sc) * 8;
      if (F.up_open) wr_fwd_up_writable(F.f, now);
      break;
    case 6: { /* the socket completes some writes, in order */
      int k = next(&sc) % 8 + 1;
      size_t len = 0, credit = 0;
      while (k-- > 0 && F.qh < F.qt) {
        len += F.qlen[F.qh % MAXQ];
        credit += F.qcredit[F.qh % MAXQ];
        F.qh++;
      }
      if (len) wr_fwd_written(F.f, len, credit, 0, now);
      break;
    }
    case 7: /* time passes */
      now += (wr_tstamp)next(&sc) * 50;
      wr_fwd_tick(F.f, now);
      break;
    case 8: /* a write fails */
      if (F.qh < F.qt) {
        size_t len = 0, credit = 0;
        while (F.qh < F.qt) {
          len += F.qlen[F.qh % MAXQ];
          credit += F.qcredit[F.qh % MAXQ];
          F.qh++;
        }
        wr_fwd_written(F.f, len, credit, -32, now);
      }
      break;
    case 9:
      if (op & 0x80) wr_fwd_close(F.f);
      else if ((op & 0x60) == 0x60) { /* the ingress sheds it */
        wr_fwd_shed(F.f, now);
        CHECK(wr_fwd_get_state(F.f) == WR_FWD_CLOSED ||
              wr_fwd_get_state(F.f) == WR_FWD_HANDED_OFF);
      } else if (op & 0x40) { /* the socket took part of a write */
        wr_fwd_send_progress(F.f, now);
      } else { /* a deadline reached exactly */
        wr_tstamp dl = wr_fwd_deadline(F.f);
        if (dl != WR_TSTAMP_NONE && dl >= now && dl - now < 200000) {
          now = dl;
          wr_fwd_tick(F.f, now);
        }
      }
      break;
    }
  }
  wr_fwd_del(F.f);
  return 0;
}
