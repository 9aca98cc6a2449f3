/*
 * Key file and derivation tests.  The expected values were computed
 * independently in Python (hashlib.blake2b with key=secret, digest_size=32;
 * X25519 and base64url from the `cryptography` package and the standard
 * library) for the secret 00 01 02 ... 1f.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "warren/err.h"
#include "warren/noise.h"
#include "warren/pcg.h"

static const char secret_hex[] =
    "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
static const char gossip_hex[] =
    "ed4ce9283e056f4e2c80b378b7098f8a7541f301f5176ddba47aed48ee463af7";
static const char fleet_priv_hex[] =
    "8c03e2296217a133f884feb0289ce554fd19a21a336a1085fcce94d030bb2e40";
static const char fleet_pub_hex[] =
    "cac54f489b038986fbbf2ca999a9d02fbdd277fe654898f0cc582c317500a75b";
static const char fleet_pub_b64[] =
    "ysVPSJsDiYb7vyypmanQL73Sd_5lSJjwzFgsMXUAp1s";

static void unhex(const char *h, uint8_t out[32]) {
  assert_int_equal(wr_keys_parse_secret(h, strlen(h), out), 0);
}

static void test_known_answers(void **state) {
  uint8_t secret[32], want[32], got[32], pub[32], priv[32];
  char text[65], b64[44];
  (void)state;
  unhex(secret_hex, secret);
  for (int i = 0; i < 32; i++) assert_int_equal(secret[i], i);
  wr_keys_format_secret(secret, text);
  assert_string_equal(text, secret_hex);
  wr_keys_gossip_key(secret, got);
  unhex(gossip_hex, want);
  assert_memory_equal(got, want, 32);
  wr_keys_fleet_keypair(secret, pub, priv);
  unhex(fleet_priv_hex, want);
  assert_memory_equal(priv, want, 32);
  unhex(fleet_pub_hex, want);
  assert_memory_equal(pub, want, 32);
  wr_keys_format_pub(pub, b64);
  assert_string_equal(b64, fleet_pub_b64);
  assert_int_equal(wr_keys_parse_pub(fleet_pub_b64, got), 0);
  assert_memory_equal(got, pub, 32);
  /* Distinct labels give distinct keys. */
  wr_keys_gossip_key(secret, got);
  assert_memory_not_equal(got, priv, 32);
}

static void test_round_trips(void **state) {
  wr_pcg32 g;
  (void)state;
  wr_pcg32_seed(&g, 7, 3);
  for (int i = 0; i < 200; i++) {
    uint8_t k[32], back[32];
    char text[66], b64[44];
    wr_pcg32_fill(k, 32, &g);
    wr_keys_format_secret(k, text);
    assert_int_equal(strlen(text), 64);
    text[64] = '\n';
    text[65] = 0;
    assert_int_equal(wr_keys_parse_secret(text, 65, back), 0);
    assert_memory_equal(k, back, 32);
    wr_keys_format_pub(k, b64);
    assert_int_equal(strlen(b64), 43);
    assert_null(strpbrk(b64, "+/="));
    assert_int_equal(wr_keys_parse_pub(b64, back), 0);
    assert_memory_equal(k, back, 32);
  }
}

static void test_secret_whitespace_and_case(void **state) {
  uint8_t a[32], b[32];
  char buf[100];
  (void)state;
  unhex(secret_hex, a);
  snprintf(buf, sizeof buf, "  \t%s\r\n\n", secret_hex);
  assert_int_equal(wr_keys_parse_secret(buf, strlen(buf), b), 0);
  assert_memory_equal(a, b, 32);
  snprintf(buf, sizeof buf, "%s", secret_hex);
  for (char *p = buf; *p; p++)
    if (*p >= 'a' && *p <= 'f') *p = (char)(*p - 32);
  assert_int_equal(wr_keys_parse_secret(buf, 64, b), 0);
  assert_memory_equal(a, b, 32);
  /* |len| bounds the read: the text need not be NUL-terminated. */
  memcpy(buf, secret_hex, 64);
  buf[64] = 'z';
  assert_int_equal(wr_keys_parse_secret(buf, 64, b), 0);
}

static void test_bad_secrets(void **state) {
  uint8_t out[32], orig[32];
  char buf[100];
  const char *bad[] = {
      "",
      "\n",
      "00",
      /* 63 and 65 digits */
      "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1",
      "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f0",
      /* a non-hex digit, inner space, 0x prefix */
      "g00102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1",
      "000102030405060708090a0b0c0d0e0f 01112131415161718191a1b1c1d1e1f",
      "0x0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f",
  };
  (void)state;
  memset(orig, 0xaa, 32);
  for (size_t i = 0; i < WR_ARRAY_LEN(bad); i++) {
    memcpy(out, orig, 32);
    assert_int_equal(wr_keys_parse_secret(bad[i], strlen(bad[i]), out),
                     WR_ERR_INVAL);
    assert_memory_equal(out, orig, 32); /* untouched on error */
  }
  /* Two keys in one file. */
  snprintf(buf, sizeof buf, "%s\n%.20s", secret_hex, secret_hex);
  assert_int_equal(wr_keys_parse_secret(buf, strlen(buf), out), WR_ERR_INVAL);
  assert_int_equal(wr_keys_parse_secret(NULL, 0, out), WR_ERR_INVAL);
}

static void test_bad_pubs(void **state) {
  uint8_t out[32];
  char buf[64];
  (void)state;
  const char *bad[] = {
      "",
      "ysVPSJsDiYb7vyypmanQL73Sd_5lSJjwzFgsMXUAp1",   /* 42 */
      "ysVPSJsDiYb7vyypmanQL73Sd_5lSJjwzFgsMXUAp1sA", /* 44 */
      "ysVPSJsDiYb7vyypmanQL73Sd_5lSJjwzFgsMXUAp1s=", /* padding */
      "ysVPSJsDiYb7vyypmanQL73Sd/5lSJjwzFgsMXUAp1s",  /* '/' not url-safe */
      "ysVPSJsDiYb7vyypmanQL73Sd 5lSJjwzFgsMXUAp1s",  /* space */
      "ysVPSJsDiYb7vyypmanQL73Sd_5lSJjwzFgsMXUAp1t",  /* non-zero pad bits */
  };
  for (size_t i = 0; i < WR_ARRAY_LEN(bad); i++)
    assert_int_equal(wr_keys_parse_pub(bad[i], out), WR_ERR_INVAL);
  assert_int_equal(wr_keys_parse_pub(NULL, out), WR_ERR_INVAL);
  snprintf(buf, sizeof buf, "%s", fleet_pub_b64);
  assert_int_equal(wr_keys_parse_pub(buf, out), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_known_answers),
      cmocka_unit_test(test_round_trips),
      cmocka_unit_test(test_secret_whitespace_and_case),
      cmocka_unit_test(test_bad_secrets),
      cmocka_unit_test(test_bad_pubs),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
