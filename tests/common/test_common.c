/* Unit tests for src/common: byte cursors, PCG32, error strings. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "warren/buf.h"
#include "warren/crc32c.h"
#include "warren/err.h"
#include "warren/names.h"
#include <string.h>
#include "warren/pcg.h"

static void test_rbuf_reads_and_bounds(void **state) {
  (void)state;
  const uint8_t in[] = {1, 0, 2, 0, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0, 4, 9};
  wr_rbuf b;
  uint8_t u8;
  uint16_t u16;
  uint32_t u32;
  uint64_t u64;
  wr_rbuf_init(&b, in, sizeof in);
  assert_int_equal(wr_rbuf_u8(&b, &u8), 0);
  assert_int_equal(u8, 1);
  assert_int_equal(wr_rbuf_u16(&b, &u16), 0);
  assert_int_equal(u16, 2);
  assert_int_equal(wr_rbuf_u32(&b, &u32), 0);
  assert_int_equal(u32, 3);
  assert_int_equal(wr_rbuf_u64(&b, &u64), 0);
  assert_int_equal(u64, 4);
  assert_int_equal(wr_rbuf_left(&b), 1);
  /* A short read fails and leaves the cursor where it was. */
  assert_int_equal(wr_rbuf_u16(&b, &u16), WR_ERR_PROTO);
  assert_int_equal(wr_rbuf_left(&b), 1);
  const uint8_t *v;
  assert_int_equal(wr_rbuf_view(&b, 2, &v), WR_ERR_PROTO);
  assert_int_equal(wr_rbuf_view(&b, 1, &v), 0);
  assert_int_equal(*v, 9);
}

static void test_wbuf_roundtrip_and_full(void **state) {
  (void)state;
  uint8_t out[15];
  wr_wbuf w;
  wr_wbuf_init(&w, out, sizeof out);
  assert_int_equal(wr_wbuf_u8(&w, 0xab), 0);
  assert_int_equal(wr_wbuf_u16(&w, 0x1234), 0);
  assert_int_equal(wr_wbuf_u32(&w, 0xdeadbeef), 0);
  assert_int_equal(wr_wbuf_u64(&w, 0x0102030405060708ULL), 0);
  assert_int_equal(wr_wbuf_len(&w), 15);
  assert_int_equal(wr_wbuf_u8(&w, 1), WR_ERR_NOBUF);
  wr_rbuf r;
  uint8_t a;
  uint16_t b;
  uint32_t c;
  uint64_t d;
  wr_rbuf_init(&r, out, wr_wbuf_len(&w));
  assert_int_equal(wr_rbuf_u8(&r, &a), 0);
  assert_int_equal(wr_rbuf_u16(&r, &b), 0);
  assert_int_equal(wr_rbuf_u32(&r, &c), 0);
  assert_int_equal(wr_rbuf_u64(&r, &d), 0);
  assert_int_equal(a, 0xab);
  assert_int_equal(b, 0x1234);
  assert_int_equal(c, 0xdeadbeef);
  assert_true(d == 0x0102030405060708ULL);
}

static void test_pcg_reproducible_and_bounded(void **state) {
  (void)state;
  wr_pcg32 a, b;
  wr_pcg32_seed(&a, 42, 54);
  wr_pcg32_seed(&b, 42, 54);
  /* Reference values of PCG-XSH-RR for seed 42, stream 54 (pcg32-demo). */
  assert_int_equal(wr_pcg32_next(&a), 0xa15c02b7u);
  assert_int_equal(wr_pcg32_next(&a), 0x7b47f409u);
  (void)wr_pcg32_next(&b);
  (void)wr_pcg32_next(&b);
  for (int i = 0; i < 1000; i++)
    assert_int_equal(wr_pcg32_next(&a), wr_pcg32_next(&b));
  unsigned hist[7] = {0};
  for (int i = 0; i < 70000; i++) {
    uint32_t v = wr_pcg32_bounded(&a, 7);
    assert_true(v < 7);
    hist[v]++;
  }
  for (int i = 0; i < 7; i++) assert_in_range(hist[i], 9000, 11000);
  double d = wr_pcg32_double(&a);
  assert_true(d >= 0.0 && d < 1.0);
}

static void test_strerror_covers_both_ranges(void **state) {
  (void)state;
  assert_string_equal(wr_strerror(0), "success");
  assert_string_equal(wr_strerror(WR_ERR_DECRYPT),
                      "decryption failed (bad key or tampered data)");
  assert_string_equal(wr_strerror(-111), "Connection refused");
  assert_true(wr_err_is_fatal(WR_ERR_NOMEM));
  assert_false(wr_err_is_fatal(WR_ERR_PROTO));
}

/* CRC-32C: the standard check value, the RFC 3720 (iSCSI) B.4 vectors,
 * and chaining at every split point. */
static void test_crc32c_vectors(void **state) {
  (void)state;
  const uint8_t *check = (const uint8_t *)"123456789";
  assert_int_equal(wr_crc32c(0, check, 9), 0xE3069283u);
  assert_int_equal(wr_crc32c(0, NULL, 0), 0);
  uint8_t buf[32];
  memset(buf, 0, sizeof buf);
  assert_int_equal(wr_crc32c(0, buf, 32), 0x8A9136AAu);
  memset(buf, 0xff, sizeof buf);
  assert_int_equal(wr_crc32c(0, buf, 32), 0x62A8AB43u);
  for (int i = 0; i < 32; i++) buf[i] = (uint8_t)i;
  assert_int_equal(wr_crc32c(0, buf, 32), 0x46DD794Eu);
  for (int i = 0; i < 32; i++) buf[i] = (uint8_t)(31 - i);
  assert_int_equal(wr_crc32c(0, buf, 32), 0x113FDB5Cu);
  for (size_t cut = 0; cut <= 9; cut++)
    assert_int_equal(wr_crc32c(wr_crc32c(0, check, cut), check + cut, 9 - cut),
                     0xE3069283u);
}

static void test_names_readable_and_seeded(void **state) {
  (void)state;
  wr_pcg32 g, h;
  wr_pcg32_seed(&g, 1, 2);
  wr_pcg32_seed(&h, 1, 2);
  char a[WR_NAME_RANDOM_MAX], b[WR_NAME_RANDOM_MAX], prev[WR_NAME_RANDOM_MAX];
  prev[0] = 0;
  int distinct = 0;
  for (int i = 0; i < 200; i++) {
    wr_name_random(a, wr_pcg32_fill, &g);
    wr_name_random(b, wr_pcg32_fill, &h);
    assert_string_equal(a, b); /* the same seed gives the same names */
    /* adjective-animal-NNNN: a DNS label of [a-z0-9-], two dashes, four
     * trailing digits. */
    size_t n = strlen(a);
    assert_true(n >= 8 && n <= 63);
    int dashes = 0;
    for (size_t k = 0; k < n; k++) {
      char c = a[k];
      assert_true((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                  c == '-');
      dashes += c == '-';
    }
    assert_int_equal(dashes, 2);
    for (size_t k = n - 4; k < n; k++) assert_true(a[k] >= '0' && a[k] <= '9');
    assert_int_equal(a[n - 5], '-');
    distinct += strcmp(a, prev) != 0;
    memcpy(prev, a, sizeof prev);
  }
  assert_true(distinct > 190);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_rbuf_reads_and_bounds),
      cmocka_unit_test(test_wbuf_roundtrip_and_full),
      cmocka_unit_test(test_pcg_reproducible_and_bounded),
      cmocka_unit_test(test_strerror_covers_both_ranges),
      cmocka_unit_test(test_names_readable_and_seeded),
      cmocka_unit_test(test_crc32c_vectors),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
