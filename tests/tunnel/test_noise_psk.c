/*
 * The node-to-node handshake (Noise NKpsk0, noise.h): both ends must hold
 * the cluster secret.  Real handshakes with seeded randomness: the right
 * PSK agrees on keys; a tunnel client (plain NK: it knows only the fleet
 * public key), a node of another cluster (wrong PSK) and a responder
 * without the PSK all fail; tampering with any byte of either message
 * fails.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "warren/err.h"
#include "warren/noise.h"
#include "warren/pcg.h"

#define TS 1700000000000ULL

static uint8_t secret[32], fleet_pub[32], fleet_priv[32], psk[32];

static int setup(void **state) {
  (void)state;
  for (int i = 0; i < 32; i++) secret[i] = (uint8_t)(i * 7 + 1);
  wr_keys_fleet_keypair(secret, fleet_pub, fleet_priv);
  wr_keys_node_psk(secret, psk);
  return 0;
}

/* Runs a handshake: initiator with |ipsk| (NULL: plain NK), responder
 * with |rpsk|; |flip| >= 0 flips that byte of message 1 (< 61) or of
 * message 2 (61 + k).  Returns 0 when both ends finished with matching
 * keys, else the first error. */
static int handshake(const uint8_t *ipsk, const uint8_t *rpsk, int flip) {
  wr_noise_replay *rc;
  wr_noise *i, *r;
  wr_pcg32 gi, gr;
  uint8_t m1[128], m2[128];
  wr_noise_keys ki, kr;
  int rv = 0;
  wr_pcg32_seed(&gi, 1, 2);
  wr_pcg32_seed(&gr, 3, 4);
  assert_int_equal(wr_noise_replay_new(&rc, 64, NULL), 0);
  assert_int_equal(
      wr_noise_initiator_new_psk(&i, fleet_pub, ipsk, wr_pcg32_fill, &gi, NULL),
      0);
  assert_int_equal(wr_noise_responder_new_psk(&r, fleet_priv, rpsk, rc,
                                              wr_pcg32_fill, &gr, NULL),
                   0);
  wr_ssize n1 = wr_noise_write(i, m1, sizeof m1, TS);
  assert_int_equal(n1, 61);
  if (flip >= 0 && flip < n1) m1[flip] ^= 0x40;
  wr_ssize got = wr_noise_read(r, m1, (size_t)n1, TS);
  if (got < 0) {
    rv = (int)got;
    goto done;
  }
  wr_ssize n2 = wr_noise_write(r, m2, sizeof m2, TS);
  assert_int_equal(n2, 51);
  if (flip >= n1 && flip < n1 + n2) m2[flip - n1] ^= 0x40;
  got = wr_noise_read(i, m2, (size_t)n2, TS);
  if (got < 0) {
    rv = (int)got;
    goto done;
  }
  assert_true(wr_noise_done(i) && wr_noise_done(r));
  assert_int_equal(wr_noise_split(i, &ki), 0);
  assert_int_equal(wr_noise_split(r, &kr), 0);
  assert_memory_equal(ki.send, kr.recv, 32);
  assert_memory_equal(ki.recv, kr.send, 32);
  assert_memory_equal(ki.handshake_hash, kr.handshake_hash, 32);
done:
  wr_noise_del(i);
  wr_noise_del(r);
  wr_noise_replay_del(rc);
  return rv;
}

static void test_psk_ok(void **state) {
  (void)state;
  assert_int_equal(handshake(psk, psk, -1), 0);
}

/* The point of the PSK: a tunnel client knows the fleet public key, which
 * is all plain NK needs, and must still not open a node link. */
static void test_tunnel_client_refused(void **state) {
  (void)state;
  assert_int_equal(handshake(NULL, psk, -1), WR_ERR_DECRYPT);
}

static void test_wrong_psk(void **state) {
  uint8_t other_secret[32] = {1, 2, 3}, other[32];
  (void)state;
  wr_keys_node_psk(other_secret, other);
  assert_int_equal(handshake(other, psk, -1), WR_ERR_DECRYPT);
  /* A responder without the PSK cannot read a node's message 1 either. */
  assert_int_equal(handshake(psk, NULL, -1), WR_ERR_DECRYPT);
}

static void test_tampered(void **state) {
  (void)state;
  /* The 2-byte length prefixes are framing (a change there is "malformed"
   * or "need more"); every other byte is authenticated. */
  for (int k = 2; k < 61 + 51; k++) {
    if (k == 61 || k == 62) continue;
    int rv = handshake(psk, psk, k);
    assert_true(rv == WR_ERR_DECRYPT || rv == WR_ERR_PROTO);
  }
}

/* The PSK is derived from the secret, distinct from the fleet key. */
static void test_psk_derivation(void **state) {
  uint8_t again[32];
  (void)state;
  wr_keys_node_psk(secret, again);
  assert_memory_equal(again, psk, 32);
  assert_memory_not_equal(psk, fleet_priv, 32);
  assert_memory_not_equal(psk, fleet_pub, 32);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_psk_ok),
      cmocka_unit_test(test_tunnel_client_refused),
      cmocka_unit_test(test_wrong_psk),
      cmocka_unit_test(test_tampered),
      cmocka_unit_test(test_psk_derivation),
  };
  return cmocka_run_group_tests(tests, setup, NULL);
}
