/*
 * libFuzzer target: a whole mux session driven by the input.
 *
 * Two muxes (a client and a node) with small windows and limits.  The
 * input is a script of one-byte opcodes with arguments: open, write,
 * close, reset, consume, deliver some bytes one way in chunks of a chosen
 * size, advance time and tick, CONTROL, GOAWAY, inject raw bytes into the
 * node as a hostile peer would, and arm a callback failure.  Invariants:
 * nothing crashes or leaks, the app never holds more unconsumed bytes
 * than the windows, and a fatal error sticks.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../src/tunnel/frame.h"
#include "warren/err.h"
#include "warren/mux.h"

#define NS 64

typedef struct side {
  wr_mux *m;
  wr_mux_config cfg;
  uint32_t sids[NS];
  uint64_t unconsumed[NS];
  uint64_t sent[NS], got[NS]; /* stream offsets for the content oracle */
  int n;
  uint64_t total_unconsumed;
  int fail_in; /* fail the n-th callback from now (0 = never) */
  int dead;
} side;

static side S[2];
static int injected; /* hostile bytes went into the node: no oracle */

static uint8_t pat(uint32_t sid, uint64_t off) {
  return (uint8_t)((off * 131 + sid * 17) ^ (off >> 11));
}
static wr_tstamp now;
static uint8_t rec[16384];

static int slot_of(side *s, uint32_t sid) {
  for (int i = 0; i < s->n; i++)
    if (s->sids[i] == sid)
      return i;
  return -1;
}

static int maybe_fail(side *s) {
  if (s->fail_in > 0 && --s->fail_in == 0)
    return WR_ERR_CALLBACK;
  return 0;
}

static void track(side *s, uint32_t sid) {
  if (slot_of(s, sid) >= 0 || s->n == NS)
    return;
  s->sids[s->n] = sid;
  s->sent[s->n] = s->got[s->n] = 0;
  s->unconsumed[s->n++] = 0;
}

static void forget(side *s, uint32_t sid) {
  int i = slot_of(s, sid);
  if (i < 0)
    return;
  s->total_unconsumed -= s->unconsumed[i];
  s->sids[i] = s->sids[--s->n];
  s->unconsumed[i] = s->unconsumed[s->n];
  s->sent[i] = s->sent[s->n];
  s->got[i] = s->got[s->n];
}

static int cb_open(wr_mux *m, uint32_t sid, const uint8_t *meta, size_t len,
                   void *ud) {
  side *s = ud;
  (void)m;
  volatile uint8_t touch = 0;
  for (size_t i = 0; i < len; i++)
    touch ^= meta[i]; /* ASan checks the view */
  track(s, sid);
  return maybe_fail(s);
}
static int cb_data(wr_mux *m, uint32_t sid, const uint8_t *d, size_t len,
                   void *ud) {
  side *s = ud;
  (void)m;
  (void)d;
  int i = slot_of(s, sid);
  if (i < 0)
    __builtin_trap(); /* data only for streams we were told of */
  /* Every byte arrives in order and intact. */
  for (size_t k = 0; k < len; k++)
    if (!injected && d[k] != pat(sid, s->got[i] + k))
      __builtin_trap();
  s->got[i] += len;
  s->unconsumed[i] += len;
  s->total_unconsumed += len;
  /* Flow control: the app never holds more than the windows granted. */
  if (s->unconsumed[i] > s->cfg.stream_window)
    __builtin_trap();
  if (s->total_unconsumed > s->cfg.link_window)
    __builtin_trap();
  return maybe_fail(s);
}
static int cb_fin(wr_mux *m, uint32_t sid, void *ud) {
  (void)m;
  (void)sid;
  return maybe_fail(ud);
}
static int cb_close(wr_mux *m, uint32_t sid, int64_t code, int by_peer,
                    void *ud) {
  (void)m;
  (void)code;
  (void)by_peer;
  side *s = ud;
  forget(s, sid);
  return maybe_fail(s);
}
static int cb_writable(wr_mux *m, uint32_t sid, void *ud) {
  (void)m;
  (void)sid;
  return maybe_fail(ud);
}
static int cb_control(wr_mux *m, const uint8_t *msg, size_t len, void *ud) {
  (void)m;
  (void)msg;
  (void)len;
  return maybe_fail(ud);
}
static int cb_goaway(wr_mux *m, uint32_t code, void *ud) {
  (void)m;
  (void)code;
  return maybe_fail(ud);
}

static const wr_mux_callbacks cbs = {
    cb_open, cb_data, cb_fin, cb_close, cb_writable, cb_control, cb_goaway};

typedef struct script {
  const uint8_t *p;
  size_t n;
} script;

static uint8_t next(script *sc) {
  if (!sc->n)
    return 0;
  sc->n--;
  return *sc->p++;
}

static void check(side *s, int rv) {
  if (rv >= 0)
    return;
  if (wr_err_is_fatal(rv) || rv == WR_ERR_PROTO || rv == WR_ERR_FLOW ||
      rv == WR_ERR_LIMIT || rv == WR_ERR_TOOBIG || rv == WR_ERR_TIMEOUT)
    s->dead = 1;
}

/* Moves up to |max| bytes from side x to side y in chunks of |chunk|. */
static void deliver(side *x, side *y, size_t max, size_t chunk) {
  while (max > 0 && !x->dead && !y->dead && wr_mux_want_write(x->m)) {
    size_t cap = WR_MAX((size_t)WR_MUX_MIN_SEND, WR_MIN(max, sizeof rec));
    wr_ssize n = wr_mux_send(x->m, rec, cap, now);
    if (n < 0) {
      check(x, (int)n);
      return;
    }
    if (n == 0)
      return;
    if ((size_t)n > cap)
      __builtin_trap();
    max -= WR_MIN(max, (size_t)n);
    for (size_t off = 0; off < (size_t)n; off += chunk) {
      int rv =
          wr_mux_recv(y->m, rec + off, WR_MIN(chunk, (size_t)n - off), now);
      if (rv) {
        check(y, rv);
        if (wr_mux_recv(y->m, rec, 1, now) != rv)
          __builtin_trap();
        return;
      }
    }
  }
}

static uint8_t wbuf[40000];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  script sc = {data, size};
  memset(S, 0, sizeof S);
  now = 0;
  injected = 0;
  for (int i = 0; i < 2; i++) {
    wr_mux_config_default(&S[i].cfg, i == 0);
    S[i].cfg.stream_window = 16384 + 4096 * (next(&sc) & 7);
    S[i].cfg.link_window = 16384 + 16384 * (next(&sc) & 3);
    S[i].cfg.max_streams = 1 + (next(&sc) & 7);
    S[i].cfg.max_meta = 4096;
    S[i].cfg.max_control = 4096;
    S[i].cfg.ping_interval = 1000;
    S[i].cfg.ping_timeout = 2000;
    if (wr_mux_new(&S[i].m, &S[i].cfg, &cbs, &S[i], NULL, now) != 0)
      __builtin_trap();
  }
  for (int steps = 0; sc.n && steps < 2000; steps++) {
    uint8_t op = next(&sc);
    side *s = &S[op & 1];
    side *o = &S[!(op & 1)];
    uint8_t arg = next(&sc);
    uint32_t sid = s->n ? s->sids[arg % s->n] : arg;
    int rv = 0;
    switch ((op >> 1) % 13) {
    case 0: {
      uint32_t nsid;
      rv = wr_mux_stream_open(s->m, wbuf, arg * 20u, &nsid, NULL);
      if (rv == 0)
        track(s, nsid);
      break;
    }
    case 1: {
      size_t len = (size_t)arg * 150 + next(&sc);
      int i = slot_of(s, sid);
      uint64_t base = i >= 0 ? s->sent[i] : 0;
      for (size_t k = 0; k < len; k++)
        wbuf[k] = pat(sid, base + k);
      wr_ssize k = wr_mux_stream_write(s->m, sid, wbuf, len);
      if (k > (wr_ssize)len)
        __builtin_trap();
      if (k > 0 && i >= 0)
        s->sent[i] += (uint64_t)k;
      rv = k < 0 ? (int)k : 0;
      break;
    }
    case 2:
      rv = wr_mux_stream_close(s->m, sid);
      break;
    case 3:
      rv = wr_mux_stream_reset(s->m, sid, next(&sc));
      break;
    case 4: {
      int i = slot_of(s, sid);
      uint64_t n = i >= 0 ? s->unconsumed[i] : 0;
      n = n * (next(&sc) & 3) / 3;
      rv = wr_mux_stream_consume(s->m, sid, n);
      if (rv == 0 && i >= 0) {
        s->unconsumed[i] -= n;
        s->total_unconsumed -= n;
      }
      break;
    }
    case 5:
    case 6:
      deliver(s, o, (size_t)arg * 256 + 16, 1 + next(&sc) * 64u);
      break;
    case 7:
      now += arg * 10u;
      rv = wr_mux_tick(s->m, now);
      if (!s->dead && rv == 0 && wr_mux_deadline(s->m) < now &&
          wr_mux_deadline(s->m) != WR_TSTAMP_NONE)
        __builtin_trap();
      break;
    case 8:
      rv = wr_mux_control(s->m, wbuf, arg * 20u);
      break;
    case 9:
      rv = wr_mux_goaway(s->m, arg);
      break;
    case 10: {
      /* A hostile peer: raw bytes from the input into the node. */
      size_t n = WR_MIN((size_t)arg, sc.n);
      injected = 1;
      rv = wr_mux_recv(S[1].m, sc.p, n, now);
      check(&S[1], rv);
      sc.p += n;
      sc.n -= n;
      rv = 0;
      break;
    }
    case 11:
      s->fail_in = arg & 7;
      break;
    case 12: {
      size_t c = wr_mux_stream_credit(s->m, sid);
      if (c > 0x7fffffff)
        __builtin_trap();
      break;
    }
    }
    check(s, rv);
    wr_mux_stats st;
    wr_mux_get_stats(s->m, &st);
    if (st.streams_active > 2 * s->cfg.max_streams)
      __builtin_trap();
  }
  for (int i = 0; i < 2; i++)
    wr_mux_del(S[i].m);
  return 0;
}
