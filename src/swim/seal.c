/*
 * Gossip packet sealing with a keyring (see swim_seal.h for the format and
 * the reasons behind the random 192-bit nonce and the key id).
 */
#include <string.h>

#include <sodium.h>

#include "warren/buf.h"
#include "warren/err.h"
#include "warren/swim_seal.h"

static uint32_t key_id(const uint8_t key[32]) {
  uint8_t h[16];
  /* A hash of the key, not the key: the id travels in clear. */
  crypto_generichash(h, sizeof h, key, 32, (const uint8_t *)"warren key id",
                     13);
  return wr_get_u32(h);
}

void wr_swim_keyring_init(wr_swim_keyring *kr) { memset(kr, 0, sizeof *kr); }

void wr_swim_keyring_clear(wr_swim_keyring *kr) {
  sodium_memzero(kr->keys, sizeof kr->keys);
  kr->n = 0;
}

static int find(const wr_swim_keyring *kr, const uint8_t key[32]) {
  for (int i = 0; i < kr->n; i++)
    if (sodium_memcmp(kr->keys[i], key, 32) == 0) return i;
  return -1;
}

static void make_primary(wr_swim_keyring *kr, int i) {
  uint8_t k[32];
  uint32_t id = kr->ids[i];
  memcpy(k, kr->keys[i], 32);
  memmove(kr->keys[1], kr->keys[0], (size_t)i * 32);
  memmove(&kr->ids[1], &kr->ids[0], (size_t)i * sizeof kr->ids[0]);
  memcpy(kr->keys[0], k, 32);
  kr->ids[0] = id;
  sodium_memzero(k, sizeof k);
}

int wr_swim_keyring_add(wr_swim_keyring *kr, const uint8_t key[32],
                        int primary) {
  int i = find(kr, key);
  if (i >= 0) {
    if (primary) make_primary(kr, i);
    return WR_ERR_EXISTS;
  }
  if (kr->n == WR_SWIM_KEYS_MAX) return WR_ERR_LIMIT;
  memcpy(kr->keys[kr->n], key, 32);
  kr->ids[kr->n] = key_id(key);
  kr->n++;
  if (primary) make_primary(kr, kr->n - 1);
  return 0;
}

int wr_swim_keyring_use(wr_swim_keyring *kr, const uint8_t key[32]) {
  int i = find(kr, key);
  if (i < 0) return WR_ERR_NOTFOUND;
  make_primary(kr, i);
  return 0;
}

int wr_swim_keyring_remove(wr_swim_keyring *kr, const uint8_t key[32]) {
  int i = find(kr, key);
  if (i < 0) return WR_ERR_NOTFOUND;
  if (i == 0 && kr->n > 1) return WR_ERR_INVAL;
  memmove(kr->keys[i], kr->keys[i + 1], (size_t)(kr->n - i - 1) * 32);
  memmove(&kr->ids[i], &kr->ids[i + 1],
          (size_t)(kr->n - i - 1) * sizeof kr->ids[0]);
  kr->n--;
  sodium_memzero(kr->keys[kr->n], 32);
  return 0;
}

wr_ssize wr_swim_seal(const wr_swim_keyring *kr, uint8_t *dst, size_t cap,
                      const uint8_t *pt, size_t len, const uint8_t nonce[24]) {
  if (kr->n == 0) {
    if (cap < len) return WR_ERR_NOBUF;
    memmove(dst, pt, len);
    return (wr_ssize)len;
  }
  if (cap < len + WR_SWIM_SEAL_OVERHEAD) return WR_ERR_NOBUF;
  dst[0] = WR_SWIM_SEAL_VERSION;
  wr_put_u32(dst + 1, kr->ids[0]);
  memcpy(dst + 5, nonce, 24);
  unsigned long long clen;
  /* The header (version, key id, nonce) is associated data, so a packet
   * whose id was rewritten does not open under another key. */
  crypto_aead_xchacha20poly1305_ietf_encrypt(dst + 29, &clen, pt, len, dst,
                                             29, NULL, nonce, kr->keys[0]);
  return (wr_ssize)(29 + clen);
}

wr_ssize wr_swim_open(wr_swim_keyring *kr, uint8_t *dst, size_t cap,
                      const uint8_t *in, size_t len) {
  if (kr->n == 0) {
    if (cap < len) return WR_ERR_NOBUF;
    memmove(dst, in, len);
    return (wr_ssize)len;
  }
  if (len < WR_SWIM_SEAL_OVERHEAD || in[0] != WR_SWIM_SEAL_VERSION) {
    kr->rx_malformed++;
    return WR_ERR_PROTO;
  }
  if (cap < len - WR_SWIM_SEAL_OVERHEAD) return WR_ERR_NOBUF;
  uint32_t id = wr_get_u32(in + 1);
  for (int i = 0; i < kr->n; i++) {
    if (kr->ids[i] != id) continue;
    unsigned long long plen;
    if (crypto_aead_xchacha20poly1305_ietf_decrypt(
            dst, &plen, NULL, in + 29, len - 29, in, 29, in + 5,
            kr->keys[i]) == 0)
      return (wr_ssize)plen;
    kr->rx_badseal++;
    return WR_ERR_DECRYPT;
  }
  kr->rx_unknown_key++;
  return WR_ERR_AUTH;
}
