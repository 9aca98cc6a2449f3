/* Unit tests for gossip sealing and keyring rotation (src/swim/seal.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include <sodium.h>

#include "warren/err.h"
#include "warren/swim_seal.h"

static const uint8_t k1[32] = {1}, k2[32] = {2}, k3[32] = {3};
static const uint8_t nonce[24] = {9, 9, 9};

static void test_roundtrip_and_tamper(void **state) {
  (void)state;
  wr_swim_keyring kr;
  wr_swim_keyring_init(&kr);
  assert_int_equal(wr_swim_keyring_add(&kr, k1, 1), 0);
  const uint8_t msg[] = "ping from n1";
  uint8_t sealed[128], out[128];
  wr_ssize n = wr_swim_seal(&kr, sealed, sizeof sealed, msg, sizeof msg, nonce);
  assert_int_equal(n, sizeof msg + WR_SWIM_SEAL_OVERHEAD);
  assert_int_equal(wr_swim_open(&kr, out, sizeof out, sealed, (size_t)n),
                   sizeof msg);
  assert_memory_equal(out, msg, sizeof msg);
  /* Every single-byte change fails: header bytes are associated data. */
  for (wr_ssize i = 0; i < n; i++) {
    sealed[i] ^= 0x40;
    assert_true(wr_swim_open(&kr, out, sizeof out, sealed, (size_t)n) < 0);
    sealed[i] ^= 0x40;
  }
  assert_int_equal(kr.rx_malformed, 1);           /* the version byte */
  assert_int_equal(kr.rx_unknown_key, 4);         /* the key id */
  assert_int_equal(kr.rx_badseal, (uint64_t)n - 5); /* nonce, body, tag */
  /* Truncation at every length is refused, never read past. */
  for (size_t l = 0; l < (size_t)n; l++)
    assert_true(wr_swim_open(&kr, out, sizeof out, sealed, l) < 0);
  assert_int_equal(wr_swim_seal(&kr, sealed, sizeof msg, msg, sizeof msg,
                                nonce),
                   WR_ERR_NOBUF);
}

static void test_rotation(void **state) {
  (void)state;
  wr_swim_keyring a, b;
  wr_swim_keyring_init(&a);
  wr_swim_keyring_init(&b);
  wr_swim_keyring_add(&a, k1, 1);
  wr_swim_keyring_add(&b, k1, 1);
  uint8_t sealed[128], out[128];
  const uint8_t msg[] = "alive n2 inc 7";
  /* Step 1: install k2 everywhere (k1 still primary): both directions
   * keep working. */
  assert_int_equal(wr_swim_keyring_add(&a, k2, 0), 0);
  assert_int_equal(wr_swim_keyring_add(&b, k2, 0), 0);
  /* Step 2: a switches to k2 first; b still opens it. */
  assert_int_equal(wr_swim_keyring_use(&a, k2), 0);
  wr_ssize n = wr_swim_seal(&a, sealed, sizeof sealed, msg, sizeof msg, nonce);
  assert_int_equal(wr_swim_open(&b, out, sizeof out, sealed, (size_t)n),
                   sizeof msg);
  n = wr_swim_seal(&b, sealed, sizeof sealed, msg, sizeof msg, nonce);
  assert_int_equal(wr_swim_open(&a, out, sizeof out, sealed, (size_t)n),
                   sizeof msg);
  /* Step 3: b switches, both drop k1. */
  wr_swim_keyring_use(&b, k2);
  assert_int_equal(wr_swim_keyring_remove(&a, k1), 0);
  assert_int_equal(wr_swim_keyring_remove(&b, k1), 0);
  n = wr_swim_seal(&a, sealed, sizeof sealed, msg, sizeof msg, nonce);
  assert_int_equal(wr_swim_open(&b, out, sizeof out, sealed, (size_t)n),
                   sizeof msg);
  /* A node still on k1 alone is shut out, and counted. */
  wr_swim_keyring old;
  wr_swim_keyring_init(&old);
  wr_swim_keyring_add(&old, k1, 1);
  assert_int_equal(wr_swim_open(&old, out, sizeof out, sealed, (size_t)n),
                   WR_ERR_AUTH);
  assert_int_equal(old.rx_unknown_key, 1);
}

static void test_keyring_rules(void **state) {
  (void)state;
  wr_swim_keyring kr;
  wr_swim_keyring_init(&kr);
  assert_int_equal(wr_swim_keyring_add(&kr, k1, 0), 0); /* first = primary */
  assert_int_equal(wr_swim_keyring_add(&kr, k1, 0), WR_ERR_EXISTS);
  assert_int_equal(wr_swim_keyring_add(&kr, k2, 0), 0);
  assert_int_equal(wr_swim_keyring_remove(&kr, k1), WR_ERR_INVAL);
  assert_int_equal(wr_swim_keyring_use(&kr, k3), WR_ERR_NOTFOUND);
  assert_int_equal(wr_swim_keyring_add(&kr, k3, 1), 0);
  assert_memory_equal(kr.keys[0], k3, 32);
  uint8_t k4[32] = {4}, k5[32] = {5};
  assert_int_equal(wr_swim_keyring_add(&kr, k4, 0), 0);
  assert_int_equal(wr_swim_keyring_add(&kr, k5, 0), WR_ERR_LIMIT);
  assert_int_equal(wr_swim_keyring_remove(&kr, k1), 0);
  assert_int_equal(kr.n, 3);
  wr_swim_keyring_clear(&kr);
  assert_int_equal(kr.n, 0);
  static const uint8_t zero[sizeof kr.keys] = {0};
  assert_memory_equal(kr.keys, zero, sizeof zero);
}

static void test_identity_when_empty(void **state) {
  (void)state;
  wr_swim_keyring kr;
  wr_swim_keyring_init(&kr);
  const uint8_t msg[] = "plain";
  uint8_t buf[16], out[16];
  assert_int_equal(wr_swim_seal(&kr, buf, sizeof buf, msg, 5, nonce), 5);
  assert_memory_equal(buf, "plain", 5);
  assert_int_equal(wr_swim_open(&kr, out, sizeof out, buf, 5), 5);
  assert_memory_equal(out, "plain", 5);
}

int main(void) {
  if (sodium_init() < 0) return 1;
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_roundtrip_and_tamper),
      cmocka_unit_test(test_rotation),
      cmocka_unit_test(test_keyring_rules),
      cmocka_unit_test(test_identity_when_empty),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
