/*
 * Frame codec tests: every frame type round-trips through wr_frame_encode
 * and the incremental reader, fed whole, split at every offset and byte
 * by byte; malformed headers and bodies are rejected with the right code;
 * the reassembly buffer survives a failing allocator.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "../../src/tunnel/frame.h"
#include "failmalloc.h"

static const wr_frame_limits lim = {.max_meta = 4096, .max_control = 65535};

/* A decoded frame, reassembled from reader events. */
typedef struct got {
  wr_frame f;
  uint8_t payload[70000];
  size_t plen;
} got;

typedef struct sink {
  got frames[16];
  int n;
  int data_pieces;
} sink;

static uint8_t big[65535 + 16];

/* Feeds |wire| to a fresh reader in chunks given by |cuts| (ascending
 * offsets; 0 terminates), collecting frames.  Returns the first error. */
static int feed(const uint8_t *wire, size_t len, const size_t *cuts,
                size_t ncuts, sink *s, const wr_mem *mem) {
  wr_frame_reader r;
  wr_frame_reader_init(&r, &lim, mem);
  memset(s, 0, sizeof *s);
  size_t start = 0;
  int rv = 0;
  for (size_t c = 0; c <= ncuts && rv >= 0; c++) {
    size_t end = c < ncuts ? cuts[c] : len;
    const uint8_t *p = wire + start;
    size_t n = end - start;
    start = end;
    wr_frame_event ev;
    while ((rv = wr_frame_reader_next(&r, &p, &n, &ev)) == 1) {
      got *g = &s->frames[s->n];
      if (ev.kind == WR_FRAME_EV_DATA) {
        s->data_pieces++;
        assert_int_equal(ev.off, g->plen);
        memcpy(g->payload + g->plen, ev.data, ev.len);
        g->plen += ev.len;
        if (!ev.last) continue;
        g->f = *ev.f;
      } else {
        g->f = *ev.f;
        g->plen = ev.f->len;
        if (ev.f->payload) memcpy(g->payload, ev.f->payload, g->plen);
      }
      s->n++;
      assert_true(s->n < 16);
    }
    if (rv == 0) assert_int_equal(n, 0);
  }
  wr_frame_reader_free(&r);
  return rv < 0 ? rv : 0;
}

static size_t build(uint8_t *wire, size_t cap, const wr_frame *fs, int n) {
  wr_wbuf b;
  wr_wbuf_init(&b, wire, cap);
  for (int i = 0; i < n; i++) {
    assert_int_equal(wr_frame_encode(&b, &fs[i]), 0);
  }
  return wr_wbuf_len(&b);
}

static void check_same(const wr_frame *want, const got *g) {
  assert_int_equal(g->f.type, want->type);
  assert_int_equal(g->f.flags, want->flags);
  assert_int_equal(g->f.sid, want->sid);
  switch (want->type) {
  case WR_FRAME_DATA:
  case WR_FRAME_OPEN:
  case WR_FRAME_CONTROL:
    assert_int_equal(g->plen, want->len);
    if (want->len) assert_memory_equal(g->payload, want->payload, want->len);
    break;
  case WR_FRAME_RST:
  case WR_FRAME_WINDOW:
  case WR_FRAME_GOAWAY:
    assert_int_equal(g->f.value, want->value);
    break;
  case WR_FRAME_PING:
  case WR_FRAME_PONG:
    assert_memory_equal(g->f.opaque, want->opaque, 8);
    break;
  case WR_FRAME_SETTINGS:
    assert_int_equal(g->f.set.present, want->set.present);
    for (int id = 1; id < WR_SET_COUNT; id++)
      if (want->set.present & (1u << id))
        assert_int_equal(g->f.set.val[id], want->set.val[id]);
    break;
  }
}

/* One of every frame type (DATA three times: empty+FIN, small, max). */
static int sample_frames(wr_frame *fs) {
  static const uint8_t meta[] = "GET / HTTP/1.1\r\nHost: a.example\r\n";
  int n = 0;
  memset(fs, 0, 12 * sizeof *fs);
  for (size_t i = 0; i < sizeof big; i++) big[i] = (uint8_t)(i * 7 + 3);
  fs[n++] = (wr_frame){.type = WR_FRAME_SETTINGS,
                       .set = {.present = (1u << WR_SET_STREAM_WINDOW) |
                                          (1u << WR_SET_MAX_CONTROL),
                               .val = {[WR_SET_STREAM_WINDOW] = 1048576,
                                       [WR_SET_MAX_CONTROL] = 65535}}};
  fs[n++] = (wr_frame){.type = WR_FRAME_OPEN, .sid = 2, .payload = meta,
                       .len = sizeof meta - 1};
  fs[n++] = (wr_frame){.type = WR_FRAME_OPEN, .sid = 4,
                       .flags = WR_FRAME_FLAG_FIN, .payload = big, .len = 0};
  fs[n++] = (wr_frame){.type = WR_FRAME_DATA, .sid = 2, .payload = big,
                       .len = 5};
  fs[n++] = (wr_frame){.type = WR_FRAME_DATA, .sid = 0xfffffffe,
                       .payload = big + 1, .len = WR_FRAME_MAX_DATA};
  fs[n++] = (wr_frame){.type = WR_FRAME_DATA, .sid = 2,
                       .flags = WR_FRAME_FLAG_FIN, .len = 0};
  fs[n++] = (wr_frame){.type = WR_FRAME_RST, .sid = 7, .value = 3};
  fs[n++] = (wr_frame){.type = WR_FRAME_WINDOW, .sid = 0, .value = 0x7fffffff};
  fs[n++] = (wr_frame){.type = WR_FRAME_PING,
                       .opaque = {1, 2, 3, 4, 5, 6, 7, 8}};
  fs[n++] = (wr_frame){.type = WR_FRAME_PONG,
                       .opaque = {8, 7, 6, 5, 4, 3, 2, 1}};
  fs[n++] = (wr_frame){.type = WR_FRAME_GOAWAY, .value = 9};
  fs[n++] = (wr_frame){.type = WR_FRAME_CONTROL, .payload = big + 2,
                       .len = 65535};
  return n;
}

static uint8_t wire[200000];
static sink s;

static void test_roundtrip_whole(void **state) {
  (void)state;
  wr_frame fs[12];
  int n = sample_frames(fs);
  size_t len = build(wire, sizeof wire, fs, n);
  size_t expect = 0;
  for (int i = 0; i < n; i++) expect += wr_frame_encoded_len(&fs[i]);
  assert_int_equal(len, expect);
  assert_int_equal(feed(wire, len, NULL, 0, &s, NULL), 0);
  assert_int_equal(s.n, n);
  for (int i = 0; i < n; i++) check_same(&fs[i], &s.frames[i]);
}

/* Each frame alone, split into two at every offset, then byte by byte. */
static void test_roundtrip_split(void **state) {
  (void)state;
  wr_frame fs[12];
  int n = sample_frames(fs);
  for (int i = 0; i < n; i++) {
    size_t len = build(wire, sizeof wire, &fs[i], 1);
    /* Splitting a 64 KiB frame at every offset is 64k runs: sample it. */
    size_t step = len > 4096 ? 97 : 1;
    for (size_t cut = 0; cut <= len; cut += step) {
      assert_int_equal(feed(wire, len, &cut, 1, &s, NULL), 0);
      assert_int_equal(s.n, 1);
      check_same(&fs[i], &s.frames[0]);
    }
    if (len < 4096) {
      size_t cuts[4096];
      for (size_t k = 0; k < len; k++) cuts[k] = k + 1;
      assert_int_equal(feed(wire, len, cuts, len, &s, NULL), 0);
      assert_int_equal(s.n, 1);
      check_same(&fs[i], &s.frames[0]);
    }
  }
}

/* All frames back to back, split at every offset of the whole stream
 * (sampled in the 64 KiB CONTROL payload). */
static void test_roundtrip_stream_split(void **state) {
  (void)state;
  wr_frame fs[12];
  int n = sample_frames(fs);
  size_t len = build(wire, sizeof wire, fs, n);
  for (size_t cut = 0; cut <= len; cut += (cut > 17000 ? 251 : 1)) {
    assert_int_equal(feed(wire, len, &cut, 1, &s, NULL), 0);
    assert_int_equal(s.n, n);
    for (int i = 0; i < n; i++) check_same(&fs[i], &s.frames[i]);
  }
}

/* DATA is handed out without reassembly: a split frame gives two pieces
 * whose views point into the input. */
static void test_data_zero_copy(void **state) {
  (void)state;
  wr_frame f = {.type = WR_FRAME_DATA, .sid = 1, .payload = big, .len = 100};
  size_t len = build(wire, sizeof wire, &f, 1);
  size_t cut = 50;
  assert_int_equal(feed(wire, len, &cut, 1, &s, NULL), 0);
  assert_int_equal(s.n, 1);
  assert_int_equal(s.data_pieces, 2);

  wr_frame_reader r;
  wr_frame_reader_init(&r, &lim, NULL);
  const uint8_t *p = wire;
  size_t n = len;
  wr_frame_event ev;
  assert_int_equal(wr_frame_reader_next(&r, &p, &n, &ev), 1);
  assert_ptr_equal(ev.data, wire + WR_FRAME_HDR_LEN);
  assert_int_equal(ev.len, 100);
  assert_true(ev.last);
  assert_null(r.buf);
  wr_frame_reader_free(&r);
}

static int decode_one(const uint8_t *hdr_and_body, size_t len) {
  return feed(hdr_and_body, len, NULL, 0, &s, NULL);
}

static void test_malformed(void **state) {
  (void)state;
  uint8_t b[80];
  memset(b, 0, sizeof b);
  /* Unknown type. */
  wr_frame_hdr_put(b, WR_FRAME_TYPE_COUNT, 0, 0, 0);
  assert_int_equal(decode_one(b, 8), WR_ERR_PROTO);
  wr_frame_hdr_put(b, 0xff, 0, 0, 1);
  assert_int_equal(decode_one(b, 8), WR_ERR_PROTO);
  /* Unknown flag. */
  wr_frame_hdr_put(b, WR_FRAME_DATA, 0x02, 0, 1);
  assert_int_equal(decode_one(b, 8), WR_ERR_PROTO);
  wr_frame_hdr_put(b, WR_FRAME_RST, WR_FRAME_FLAG_FIN, 4, 1);
  assert_int_equal(decode_one(b, 12), WR_ERR_PROTO);
  /* Stream frames on sid 0, link frames on a stream. */
  wr_frame_hdr_put(b, WR_FRAME_DATA, 0, 0, 0);
  assert_int_equal(decode_one(b, 8), WR_ERR_PROTO);
  wr_frame_hdr_put(b, WR_FRAME_OPEN, 0, 0, 0);
  assert_int_equal(decode_one(b, 8), WR_ERR_PROTO);
  wr_frame_hdr_put(b, WR_FRAME_RST, 0, 4, 0);
  assert_int_equal(decode_one(b, 12), WR_ERR_PROTO);
  wr_frame_hdr_put(b, WR_FRAME_PING, 0, 8, 3);
  assert_int_equal(decode_one(b, 16), WR_ERR_PROTO);
  wr_frame_hdr_put(b, WR_FRAME_CONTROL, 0, 0, 1);
  assert_int_equal(decode_one(b, 8), WR_ERR_PROTO);
  wr_frame_hdr_put(b, WR_FRAME_SETTINGS, 0, 0, 1);
  assert_int_equal(decode_one(b, 8), WR_ERR_PROTO);
  /* Wrong fixed lengths. */
  wr_frame_hdr_put(b, WR_FRAME_WINDOW, 0, 3, 0);
  assert_int_equal(decode_one(b, 11), WR_ERR_PROTO);
  wr_frame_hdr_put(b, WR_FRAME_PING, 0, 9, 0);
  assert_int_equal(decode_one(b, 17), WR_ERR_PROTO);
  wr_frame_hdr_put(b, WR_FRAME_GOAWAY, 0, 0, 0);
  assert_int_equal(decode_one(b, 8), WR_ERR_PROTO);
  wr_frame_hdr_put(b, WR_FRAME_SETTINGS, 0, 7, 0);
  assert_int_equal(decode_one(b, 15), WR_ERR_PROTO);
  wr_frame_hdr_put(b, WR_FRAME_SETTINGS, 0, 66, 0);
  assert_int_equal(decode_one(b, 74), WR_ERR_PROTO);
  /* Zero window increment. */
  wr_frame_hdr_put(b, WR_FRAME_WINDOW, 0, 4, 5);
  memset(b + 8, 0, 4);
  assert_int_equal(decode_one(b, 12), WR_ERR_PROTO);
  /* Repeated SETTINGS id; an unknown id is ignored. */
  wr_frame_hdr_put(b, WR_FRAME_SETTINGS, 0, 12, 0);
  wr_put_u16(b + 8, 1);
  wr_put_u32(b + 10, 5);
  wr_put_u16(b + 14, 1);
  wr_put_u32(b + 16, 6);
  assert_int_equal(decode_one(b, 20), WR_ERR_PROTO);
  wr_put_u16(b + 14, 99);
  assert_int_equal(decode_one(b, 20), 0);
  assert_int_equal(s.frames[0].f.set.present, 1u << 1);
  assert_int_equal(s.frames[0].f.set.val[1], 5);
  /* Oversized payloads. */
  wr_frame_hdr_put(b, WR_FRAME_DATA, 0, WR_FRAME_MAX_DATA + 1, 1);
  assert_int_equal(decode_one(b, 8), WR_ERR_TOOBIG);
  wr_frame_hdr_put(b, WR_FRAME_OPEN, 0, 4097, 1);
  assert_int_equal(decode_one(b, 8), WR_ERR_TOOBIG);
  wr_frame_reader r;
  wr_frame_limits small = {.max_meta = 10, .max_control = 10};
  wr_frame_reader_init(&r, &small, NULL);
  wr_frame_hdr_put(b, WR_FRAME_CONTROL, 0, 11, 0);
  const uint8_t *p = b;
  size_t n = 8;
  wr_frame_event ev;
  assert_int_equal(wr_frame_reader_next(&r, &p, &n, &ev), WR_ERR_TOOBIG);
  wr_frame_reader_free(&r);
}

/* Encoder refuses what the format cannot carry. */
static void test_encode_errors(void **state) {
  (void)state;
  uint8_t b[32];
  wr_wbuf w;
  wr_wbuf_init(&w, b, sizeof b);
  wr_frame f = {.type = WR_FRAME_TYPE_COUNT};
  assert_int_equal(wr_frame_encode(&w, &f), WR_ERR_INVAL);
  f = (wr_frame){.type = WR_FRAME_CONTROL, .payload = big, .len = 65536};
  assert_int_equal(wr_frame_encode(&w, &f), WR_ERR_INVAL);
  f = (wr_frame){.type = WR_FRAME_CONTROL, .payload = big, .len = 25};
  assert_int_equal(wr_frame_encode(&w, &f), WR_ERR_NOBUF);
  assert_int_equal(wr_wbuf_len(&w), 0);
  f.len = 24;
  assert_int_equal(wr_frame_encode(&w, &f), 0);
  assert_int_equal(wr_wbuf_len(&w), 32);
}

/* The reassembly buffer's allocation fails: an error, no leak. */
static void test_failmalloc(void **state) {
  (void)state;
  wr_frame f = {.type = WR_FRAME_CONTROL, .payload = big, .len = 300};
  size_t len = build(wire, sizeof wire, &f, 1);
  size_t cut = 100;
  failmalloc fm;
  failmalloc_init(&fm, 1);
  assert_int_equal(feed(wire, len, &cut, 1, &s, &fm.mem), WR_ERR_NOMEM);
  assert_int_equal(fm.live, 0);
  failmalloc_init(&fm, 2);
  assert_int_equal(feed(wire, len, &cut, 1, &s, &fm.mem), 0);
  assert_int_equal(s.n, 1);
  assert_int_equal(fm.count, 1);
  assert_int_equal(fm.live, 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_roundtrip_whole),
      cmocka_unit_test(test_roundtrip_split),
      cmocka_unit_test(test_roundtrip_stream_split),
      cmocka_unit_test(test_data_zero_copy),
      cmocka_unit_test(test_malformed),
      cmocka_unit_test(test_encode_errors),
      cmocka_unit_test(test_failmalloc),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
