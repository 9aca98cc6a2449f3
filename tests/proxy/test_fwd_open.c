/*
 * The node-to-node OPEN metadata codec (forward.h, fwd_open.c): round
 * trips, bounds on every field, hostile bytes (truncation at every
 * offset, non-printable strings, wrong wire types, unknown fields, a
 * flood of unknown fields that must not exhaust the decoder's arena
 * unsafely).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "warren/err.h"
#include "warren/forward.h"

static const wr_fwd_open sample = {
    .name = "myapp",
    .host = "myapp.example.com:8080",
    .request_id = "6f1c0d9a2b3e4f50",
    .visitor_addr = "203.0.113.7",
    .scheme = "https",
    .hops = 1,
};

static void test_round_trip(void **state) {
  uint8_t wire[WR_FWD_OPEN_MAX_WIRE];
  wr_fwd_meta mt;
  wr_fwd_open v;
  (void)state;
  wr_ssize n = wr_fwd_open_encode(&sample, wire, sizeof wire);
  assert_true(n > 0);
  assert_int_equal(wr_fwd_open_decode(wire, (size_t)n, &mt), 0);
  wr_fwd_meta_view(&mt, &v);
  assert_string_equal(v.name, "myapp");
  assert_string_equal(v.host, "myapp.example.com:8080");
  assert_string_equal(v.request_id, "6f1c0d9a2b3e4f50");
  assert_string_equal(v.visitor_addr, "203.0.113.7");
  assert_string_equal(v.scheme, "https");
  assert_int_equal(v.hops, 1);
  /* Too small a buffer: NOBUF at every size below. */
  for (size_t cap = 0; cap < (size_t)n; cap++)
    assert_int_equal(wr_fwd_open_encode(&sample, wire, cap), WR_ERR_NOBUF);
}

static void test_truncated(void **state) {
  uint8_t wire[WR_FWD_OPEN_MAX_WIRE];
  wr_fwd_meta mt;
  (void)state;
  wr_ssize n = wr_fwd_open_encode(&sample, wire, sizeof wire);
  /* Every proper prefix either fails or decodes to fewer fields (a
   * prefix ending between fields is a valid message); none crashes. */
  for (size_t k = 0; k < (size_t)n; k++) {
    int rv = wr_fwd_open_decode(wire, k, &mt);
    assert_true(rv == 0 || rv == WR_ERR_PROTO);
    if (rv != 0) assert_int_equal(mt.name[0], 0);
  }
}

static void test_bounds(void **state) {
  uint8_t wire[WR_FWD_OPEN_MAX_WIRE];
  char big[300];
  wr_fwd_meta mt;
  wr_fwd_open m = sample;
  (void)state;
  memset(big, 'a', sizeof big - 1);
  big[sizeof big - 1] = 0;
  m.host = big;
  assert_int_equal(wr_fwd_open_encode(&m, wire, sizeof wire), WR_ERR_TOOBIG);
  big[255] = 0; /* exactly too long for host[256]: 255 fits */
  assert_true(wr_fwd_open_encode(&m, wire, sizeof wire) > 0);
  m = sample;
  big[64] = 0;
  m.name = big;
  assert_int_equal(wr_fwd_open_encode(&m, wire, sizeof wire), WR_ERR_TOOBIG);
  /* An empty name is refused on decode. */
  m = sample;
  m.name = "";
  wr_ssize n = wr_fwd_open_encode(&m, wire, sizeof wire);
  assert_true(n > 0);
  assert_int_equal(wr_fwd_open_decode(wire, (size_t)n, &mt), WR_ERR_PROTO);
  /* Oversized input is refused before unpacking. */
  uint8_t huge[WR_FWD_OPEN_MAX_WIRE + 1];
  memset(huge, 0, sizeof huge);
  assert_int_equal(wr_fwd_open_decode(huge, sizeof huge, &mt), WR_ERR_PROTO);
}

static void test_hostile(void **state) {
  wr_fwd_meta mt;
  (void)state;
  /* name = "a\r\nb": a control byte is refused. */
  static const uint8_t crlf[] = {0x0a, 4, 'a', '\r', '\n', 'b'};
  assert_int_equal(wr_fwd_open_decode(crlf, sizeof crlf, &mt), WR_ERR_PROTO);
  /* name as a varint (wrong wire type). */
  static const uint8_t wt[] = {0x08, 1};
  assert_int_equal(wr_fwd_open_decode(wt, sizeof wt, &mt), WR_ERR_PROTO);
  /* A length running past the end. */
  static const uint8_t past[] = {0x0a, 10, 'a'};
  assert_int_equal(wr_fwd_open_decode(past, sizeof past, &mt), WR_ERR_PROTO);
  /* An unknown field is skipped. */
  static const uint8_t unk[] = {0x0a, 1, 'x', 0x78, 5};
  assert_int_equal(wr_fwd_open_decode(unk, sizeof unk, &mt), 0);
  assert_string_equal(mt.name, "x");
  /* WR_FWD_OPEN_MAX_WIRE bytes of two-byte unknown fields. */
  uint8_t flood[WR_FWD_OPEN_MAX_WIRE];
  flood[0] = 0x0a;
  flood[1] = 1;
  flood[2] = 'x';
  for (size_t i = 3; i + 1 < sizeof flood; i += 2) {
    flood[i] = 0x78;
    flood[i + 1] = 1;
  }
  int rv = wr_fwd_open_decode(flood, sizeof flood - 1, &mt);
  assert_true(rv == 0 || rv == WR_ERR_PROTO);
}

/* The MOVED hint: round trip, an empty or oversized or unprintable
 * owner refused, truncations and foreign bytes refused. */
static void test_moved(void **state) {
  (void)state;
  uint8_t wire[WR_FWD_OPEN_MAX_WIRE];
  char owner[WR_FWD_OWNER_MAX];
  uint32_t sid = 0;
  wr_ssize n = wr_fwd_moved_encode(4097, "n3", wire, sizeof wire);
  assert_true(n > 0);
  assert_int_equal(wr_fwd_moved_decode(wire, (size_t)n, &sid, owner), 0);
  assert_int_equal(sid, 4097);
  assert_string_equal(owner, "n3");
  for (wr_ssize k = 1; k < n; k++)
    assert_int_equal(wr_fwd_moved_decode(wire, (size_t)k, &sid, owner),
                     WR_ERR_PROTO);
  assert_int_equal(wr_fwd_moved_encode(1, "", wire, sizeof wire),
                   WR_ERR_TOOBIG);
  char big[WR_FWD_OWNER_MAX + 1];
  memset(big, 'a', sizeof big - 1);
  big[sizeof big - 1] = 0;
  assert_int_equal(wr_fwd_moved_encode(1, big, wire, sizeof wire),
                   WR_ERR_TOOBIG);
  assert_int_equal(wr_fwd_moved_encode(1, "n3", wire, 2), WR_ERR_NOBUF);
  /* owner = "a\nb" (field 2, length 3) and an empty message. */
  static const uint8_t bad[] = {0x08, 0x01, 0x12, 0x03, 'a', '\n', 'b'};
  assert_int_equal(wr_fwd_moved_decode(bad, sizeof bad, &sid, owner),
                   WR_ERR_PROTO);
  assert_int_equal(owner[0], 0);
  assert_int_equal(wr_fwd_moved_decode(bad, 2, &sid, owner), WR_ERR_PROTO);
  static const uint8_t junk[] = {0xff, 0xff, 0xff};
  assert_int_equal(wr_fwd_moved_decode(junk, sizeof junk, &sid, owner),
                   WR_ERR_PROTO);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_round_trip),
      cmocka_unit_test(test_truncated),
      cmocka_unit_test(test_bounds),
      cmocka_unit_test(test_hostile),
      cmocka_unit_test(test_moved),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
