/*
 * Tests for src/proxy/proxyproto.c.  Every valid header is also checked
 * at every prefix length: shorter prefixes must say "need more" (0), and
 * every longer input (the HTTP request behind it) the same length and
 * address.  Every invalid one must be refused at its full length and
 * never be "complete" at any prefix.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "warren/crc32c.h"
#include "warren/err.h"
#include "warren/proxyproto.h"

static const uint8_t SIG[12] = {0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d,
                                0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a};

/* Checks |hdr| (hlen bytes) followed by an HTTP request. */
static wr_proxy_info check_valid(const uint8_t *hdr, size_t hlen) {
  uint8_t buf[4096];
  const char *req = "GET / HTTP/1.1\r\n";
  assert_true(hlen + strlen(req) <= sizeof(buf));
  memcpy(buf, hdr, hlen);
  memcpy(buf + hlen, req, strlen(req));
  wr_proxy_info want, got;
  assert_int_equal(wr_proxy_parse(buf, hlen, &want), (wr_ssize)hlen);
  for (size_t k = 0; k < hlen; k++)
    assert_int_equal(wr_proxy_parse(buf, k, &got), 0);
  for (size_t k = hlen; k <= hlen + strlen(req); k++) {
    memset(&got, 0x55, sizeof(got));
    assert_int_equal(wr_proxy_parse(buf, k, &got), (wr_ssize)hlen);
    assert_int_equal(got.local, want.local);
    assert_string_equal(got.src_str, want.src_str);
    assert_memory_equal(&got.src, &want.src, sizeof(got.src));
  }
  return want;
}

static void check_invalid(const uint8_t *hdr, size_t hlen) {
  wr_proxy_info info;
  assert_int_equal(wr_proxy_parse(hdr, hlen, &info), WR_ERR_PROTO);
  for (size_t k = 0; k < hlen; k++) {
    wr_ssize r = wr_proxy_parse(hdr, k, &info);
    assert_true(r == 0 || r == WR_ERR_PROTO);
  }
}

#define V1_OK(s) check_valid((const uint8_t *)(s), strlen(s))
#define V1_BAD(s) check_invalid((const uint8_t *)(s), strlen(s))

static void test_v1(void **state) {
  (void)state;
  wr_proxy_info i = V1_OK("PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\r\n");
  assert_int_equal(i.version, 1);
  assert_int_equal(i.local, 0);
  assert_string_equal(i.src_str, "192.0.2.1");
  assert_int_equal(i.src.family, 4);
  assert_int_equal(i.src.port, 56324);
  assert_int_equal(i.dst.port, 443);
  assert_memory_equal(i.dst.ip, "\xc6\x33\x64\x02", 4);
  i = V1_OK("PROXY TCP6 2001:db8::1 2001:db8::2 0 65535\r\n");
  assert_string_equal(i.src_str, "2001:db8::1");
  assert_int_equal(i.src.family, 6);
  assert_int_equal(i.dst.port, 65535);
  i = V1_OK("PROXY UNKNOWN\r\n");
  assert_int_equal(i.local, 1);
  assert_string_equal(i.src_str, "");
  i = V1_OK("PROXY UNKNOWN ffff:f...f:ffff 1.2.3.4 1 2\r\n");
  assert_int_equal(i.local, 1);
  /* The longest possible line is exactly 107 bytes. */
  const char *longest =
      "PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff "
      "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n";
  assert_int_equal(strlen(longest), 104);
  V1_OK(longest);
}

static void test_v1_bad(void **state) {
  (void)state;
  V1_BAD("PROXY TCP4 192.0.2.1 198.51.100.2 1 2\n");
  V1_BAD("PROXY TCP4 192.0.2.1 198.51.100.2 1 2\r\r\n");
  V1_BAD("PROXY TCP4  192.0.2.1 198.51.100.2 1 2\r\n");
  V1_BAD("PROXY TCP4 192.0.2.1 198.51.100.2 1 2 \r\n");
  V1_BAD("PROXY TCP4 192.0.2.1 198.51.100.2 1\r\n");
  V1_BAD("PROXY TCP4 192.0.2.1 198.51.100.2 1 2 3\r\n");
  V1_BAD("PROXY TCP4 2001:db8::1 198.51.100.2 1 2\r\n");
  V1_BAD("PROXY TCP6 192.0.2.1 2001:db8::2 1 2\r\n");
  V1_BAD("PROXY TCP4 192.0.2.01 198.51.100.2 1 2\r\n");
  V1_BAD("PROXY TCP4 256.0.2.1 198.51.100.2 1 2\r\n");
  V1_BAD("PROXY TCP4 192.0.2.1 198.51.100.2 65536 2\r\n");
  V1_BAD("PROXY TCP4 192.0.2.1 198.51.100.2 01 2\r\n");
  V1_BAD("PROXY TCP4 192.0.2.1 198.51.100.2 -1 2\r\n");
  V1_BAD("PROXY UDP4 192.0.2.1 198.51.100.2 1 2\r\n");
  V1_BAD("PROXY tcp4 192.0.2.1 198.51.100.2 1 2\r\n");
  V1_BAD("PROXY \r\n");
  V1_BAD("PROXY\r\n");
  V1_BAD("proxy TCP4 192.0.2.1 198.51.100.2 1 2\r\n");
  V1_BAD("GET / HTTP/1.1\r\n");
  static const char nul[] = "PROXY TCP4 192.0.2.1\x00 198.51.100.2 1 2\r\n";
  check_invalid((const uint8_t *)nul, sizeof(nul) - 1);
  /* No CRLF within 107 bytes. */
  char line[200];
  memset(line, '1', sizeof(line));
  memcpy(line, "PROXY TCP4 ", 11);
  wr_proxy_info info;
  assert_int_equal(wr_proxy_parse((uint8_t *)line, 106, &info), 0);
  assert_int_equal(wr_proxy_parse((uint8_t *)line, 107, &info), WR_ERR_PROTO);
  assert_int_equal(wr_proxy_parse((uint8_t *)line, 200, &info), WR_ERR_PROTO);
  /* Garbage is refused on its first byte, not waited for. */
  assert_int_equal(wr_proxy_parse((const uint8_t *)"G", 1, &info),
                   WR_ERR_PROTO);
  assert_int_equal(wr_proxy_parse((const uint8_t *)"PRI", 3, &info),
                   WR_ERR_PROTO);
  assert_int_equal(wr_proxy_parse((const uint8_t *)"PROXY TCP4 x", 12, &info),
                   WR_ERR_PROTO);
}

/* Builds a v2 header; returns its length. */
static size_t v2(uint8_t *out, uint8_t vc, uint8_t fam, const uint8_t *addr,
                 size_t alen, const uint8_t *tlv, size_t tlen) {
  memcpy(out, SIG, 12);
  out[12] = vc;
  out[13] = fam;
  out[14] = (uint8_t)((alen + tlen) >> 8);
  out[15] = (uint8_t)(alen + tlen);
  if (alen) memcpy(out + 16, addr, alen);
  if (tlen) memcpy(out + 16 + alen, tlv, tlen);
  return 16 + alen + tlen;
}

static void test_v2(void **state) {
  (void)state;
  uint8_t h[3000];
  static const uint8_t a4[12] = {192, 0, 2,    1,    198,  51,
                                 100, 2, 0xdc, 0x04, 0x01, 0xbb};
  size_t n = v2(h, 0x21, 0x11, a4, 12, NULL, 0);
  wr_proxy_info i = check_valid(h, n);
  assert_int_equal(i.version, 2);
  assert_int_equal(i.local, 0);
  assert_string_equal(i.src_str, "192.0.2.1");
  assert_int_equal(i.src.port, 56324);
  assert_int_equal(i.dst.port, 443);
  /* TLVs (AWS VPC endpoint id, a NOOP) are skipped. */
  static const uint8_t tlv[] = {0xea, 0x00, 0x05, 0x01, 'v', 'p',
                                'c',  'e',  0x04, 0x00, 0x00};
  n = v2(h, 0x21, 0x11, a4, 12, tlv, sizeof(tlv));
  i = check_valid(h, n);
  assert_string_equal(i.src_str, "192.0.2.1");
  uint8_t a6[36] = {0x20, 0x01, 0x0d, 0xb8};
  a6[15] = 1;
  a6[16] = 0x20;
  a6[17] = 0x01;
  a6[31] = 2;
  a6[33] = 80;
  n = v2(h, 0x21, 0x21, a6, 36, NULL, 0);
  i = check_valid(h, n);
  assert_string_equal(i.src_str, "2001:db8::1");
  assert_int_equal(i.src.family, 6);
  assert_int_equal(i.src.port, 80);
  /* LOCAL: health checks from the LB itself. */
  n = v2(h, 0x20, 0x00, NULL, 0, NULL, 0);
  i = check_valid(h, n);
  assert_int_equal(i.local, 1);
  /* LOCAL may still carry an address block: ignored. */
  n = v2(h, 0x20, 0x11, a4, 12, NULL, 0);
  i = check_valid(h, n);
  assert_int_equal(i.local, 1);
  /* UNIX sockets: no IP to forward. */
  uint8_t au[216] = {'/'};
  n = v2(h, 0x21, 0x31, au, 216, NULL, 0);
  i = check_valid(h, n);
  assert_int_equal(i.local, 1);
  /* The largest accepted header. */
  uint8_t big[WR_PROXY_V2_MAX];
  memset(big, 0, sizeof(big));
  size_t tl = WR_PROXY_V2_MAX - 16 - 12 - 3;
  big[0] = 0x04;
  big[1] = (uint8_t)(tl >> 8);
  big[2] = (uint8_t)tl;
  n = v2(h, 0x21, 0x11, a4, 12, big, tl + 3);
  assert_int_equal(n, WR_PROXY_V2_MAX);
  check_valid(h, n);
}

static void test_v2_bad(void **state) {
  (void)state;
  uint8_t h[5000];
  static const uint8_t a4[12] = {192, 0, 2, 1, 198, 51, 100, 2, 0, 1, 0, 2};
  size_t n;
  n = v2(h, 0x11, 0x11, a4, 12, NULL, 0); /* version 1 */
  check_invalid(h, n);
  n = v2(h, 0x22, 0x11, a4, 12, NULL, 0); /* command 2 */
  check_invalid(h, n);
  n = v2(h, 0x21, 0x12, a4, 12, NULL, 0); /* DGRAM */
  check_invalid(h, n);
  n = v2(h, 0x21, 0x41, a4, 12, NULL, 0); /* family 4 */
  check_invalid(h, n);
  n = v2(h, 0x21, 0x21, a4, 12, NULL, 0); /* INET6 with 12 bytes */
  check_invalid(h, n);
  n = v2(h, 0x21, 0x11, a4, 11, NULL, 0); /* short address block */
  check_invalid(h, n);
  static const uint8_t badtlv[] = {0x04, 0x00, 0x05, 0x00};
  n = v2(h, 0x21, 0x11, a4, 12, badtlv, sizeof(badtlv));
  check_invalid(h, n);
  static const uint8_t shorttlv[] = {0x04, 0x00};
  n = v2(h, 0x21, 0x11, a4, 12, shorttlv, sizeof(shorttlv));
  check_invalid(h, n);
  /* Over the cap: refused as soon as the length is known. */
  n = v2(h, 0x21, 0x11, a4, 12, NULL, 0);
  h[14] = 0x10;
  wr_proxy_info info;
  assert_int_equal(wr_proxy_parse(h, 16, &info), WR_ERR_PROTO);
  /* A broken signature is refused at the first wrong byte. */
  memcpy(h, SIG, 12);
  h[4] = 1;
  assert_int_equal(wr_proxy_parse(h, 5, &info), WR_ERR_PROTO);
  assert_int_equal(wr_proxy_parse(h, 4, &info), 0);
  assert_int_equal(wr_proxy_parse(h, 0, &info), 0);
}

/* Fills the CRC-32C TLV value at |at| of header |h| (n bytes). */
static void put_crc(uint8_t *h, size_t n, size_t at) {
  memset(h + at, 0, 4);
  uint32_t c = wr_crc32c(0, h, n);
  h[at] = (uint8_t)(c >> 24);
  h[at + 1] = (uint8_t)(c >> 16);
  h[at + 2] = (uint8_t)(c >> 8);
  h[at + 3] = (uint8_t)c;
}

static void test_v2_crc32c(void **state) {
  (void)state;
  /* A header as an AWS Network Load Balancer sends it (the example that
   * PROXY protocol libraries test with): CRC-32C TLV 0xe8d6892d, a VPC
   * endpoint id TLV (0xea) and NOOP padding (0x04). */
  static const uint8_t nlb[100] = {
      0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a,
      0x21, 0x11, 0x00, 0x54, 0xac, 0x1f, 0x07, 0x71, 0xac, 0x1f, 0x0a, 0x1f,
      0xc8, 0xf2, 0x00, 0x50, 0x03, 0x00, 0x04, 0xe8, 0xd6, 0x89, 0x2d, 0xea,
      0x00, 0x17, 0x01, 0x76, 0x70, 0x63, 0x65, 0x2d, 0x30, 0x38, 0x64, 0x32,
      0x62, 0x66, 0x31, 0x35, 0x66, 0x61, 0x63, 0x35, 0x30, 0x30, 0x31, 0x63,
      0x39, 0x04, 0x00, 0x24};
  wr_proxy_info i = check_valid(nlb, sizeof(nlb));
  assert_string_equal(i.src_str, "172.31.7.113");
  assert_int_equal(i.src.port, 51442);
  assert_int_equal(i.dst.port, 80);
  /* Any changed bit: in the checksum, the address, a TLV, the padding. */
  static const size_t flips[] = {31, 34, 16, 24, 45, 99};
  for (size_t k = 0; k < sizeof(flips) / sizeof(flips[0]); k++) {
    uint8_t bad[100];
    memcpy(bad, nlb, sizeof(bad));
    bad[flips[k]] ^= 0x01;
    check_invalid(bad, sizeof(bad));
  }

  uint8_t h[WR_PROXY_V2_MAX];
  static const uint8_t a4[12] = {192, 0, 2, 1, 198, 51, 100, 2, 0, 1, 0, 2};
  /* The CRC after another TLV, good then bad. */
  uint8_t tlv[11] = {0x04, 0x00, 0x01, 0x00, 0x03, 0x00, 0x04};
  size_t n = v2(h, 0x21, 0x11, a4, 12, tlv, sizeof(tlv));
  put_crc(h, n, n - 4);
  i = check_valid(h, n);
  assert_string_equal(i.src_str, "192.0.2.1");
  h[n - 1] ^= 0x80;
  check_invalid(h, n);
  /* Checked on LOCAL headers too (the TLVs are still read). */
  n = v2(h, 0x20, 0x00, NULL, 0, tlv, sizeof(tlv));
  put_crc(h, n, n - 4);
  i = check_valid(h, n);
  assert_int_equal(i.local, 1);
  h[n - 4] ^= 0x10;
  check_invalid(h, n);
  /* A checksum that is not 4 bytes, or two of them. */
  static const uint8_t crc3[] = {0x03, 0x00, 0x03, 0x00, 0x00, 0x00};
  n = v2(h, 0x21, 0x11, a4, 12, crc3, sizeof(crc3));
  check_invalid(h, n);
  uint8_t two[14] = {0x03, 0x00, 0x04, 0, 0, 0, 0, 0x03, 0x00, 0x04};
  n = v2(h, 0x21, 0x11, a4, 12, two, sizeof(two));
  put_crc(h, n, n - 11);
  check_invalid(h, n);
  /* The largest header, the CRC at its very end. */
  uint8_t big[WR_PROXY_V2_MAX - 28];
  memset(big, 0, sizeof(big));
  size_t pad = sizeof(big) - 3 - 7;
  big[0] = 0x04;
  big[1] = (uint8_t)(pad >> 8);
  big[2] = (uint8_t)pad;
  big[3 + pad] = 0x03;
  big[3 + pad + 2] = 0x04;
  n = v2(h, 0x21, 0x11, a4, 12, big, sizeof(big));
  assert_int_equal(n, WR_PROXY_V2_MAX);
  put_crc(h, n, n - 4);
  check_valid(h, n);
  h[100] ^= 0x01;
  check_invalid(h, n);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_v1),
      cmocka_unit_test(test_v1_bad),
      cmocka_unit_test(test_v2),
      cmocka_unit_test(test_v2_bad),
      cmocka_unit_test(test_v2_crc32c),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
