/*
 * Gossip sealing (src/swim/seal.c): every gossip packet and sync stream
 * chunk is sealed with XChaCha20-Poly1305 (libsodium) under the cluster's
 * gossip key, as DESIGN.md "Security" asks.
 *
 *   sealed = version(1) | key id(4) | nonce(24) | ciphertext | tag(16)
 *
 * The 192-bit nonce is random per packet: with XChaCha20 random nonces
 * are safe for any realistic packet count (collision odds ~2^-96 after
 * 2^48 packets), and gossip has no ordered stream to hang a counter on.
 * The key id (the first 4 bytes of BLAKE2b(key)) lets the receiver pick
 * the right key without trial decryption.
 *
 * A keyring holds up to WR_SWIM_KEYS_MAX keys for rotation: packets are
 * sealed with the primary; any installed key opens.  Rotation is
 * install new everywhere -> make it primary everywhere -> remove the old.
 * An empty keyring seals with the identity transform (tests, fuzzing,
 * and never in a node: the daemon always installs the cluster key).
 */
#ifndef WARREN_SWIM_SEAL_H
#define WARREN_SWIM_SEAL_H

#include "warren/types.h"

#define WR_SWIM_KEYS_MAX 4
#define WR_SWIM_SEAL_VERSION 1
#define WR_SWIM_SEAL_OVERHEAD (1 + 4 + 24 + 16)

typedef struct wr_swim_keyring {
  uint8_t keys[WR_SWIM_KEYS_MAX][32];
  uint32_t ids[WR_SWIM_KEYS_MAX];
  int n;        /* installed keys; keys[0] is the primary */
  /* Counters (never reset): packets that did not open, by reason. */
  uint64_t rx_badseal, rx_unknown_key, rx_malformed;
} wr_swim_keyring;

void wr_swim_keyring_init(wr_swim_keyring *kr);
/* Wipes every key. */
void wr_swim_keyring_clear(wr_swim_keyring *kr);
/* Installs |key| (as primary if |primary| or if it is the first).
 * Returns 0, WR_ERR_EXISTS (already installed: only the primary flag is
 * applied) or WR_ERR_LIMIT (full). */
int wr_swim_keyring_add(wr_swim_keyring *kr, const uint8_t key[32],
                        int primary);
/* Makes an installed key primary.  Returns 0 or WR_ERR_NOTFOUND. */
int wr_swim_keyring_use(wr_swim_keyring *kr, const uint8_t key[32]);
/* Removes a key; the primary cannot be removed while others remain
 * (WR_ERR_INVAL), so a node never seals with a key it just dropped. */
int wr_swim_keyring_remove(wr_swim_keyring *kr, const uint8_t key[32]);

/*
 * Seals |len| bytes of |pt| into |dst| (cap >= len + OVERHEAD, or len for
 * an empty keyring).  |nonce| supplies 24 random bytes.  Returns the
 * sealed length or WR_ERR_NOBUF.
 */
wr_ssize wr_swim_seal(const wr_swim_keyring *kr, uint8_t *dst, size_t cap,
                      const uint8_t *pt, size_t len, const uint8_t nonce[24]);

/*
 * Opens |len| bytes of |in| into |dst| (cap >= len).  Returns the
 * plaintext length, or WR_ERR_PROTO (too short / wrong version),
 * WR_ERR_AUTH (no installed key has that id) or WR_ERR_DECRYPT (tag);
 * each failure is counted in |kr|.  With an empty keyring the input is
 * copied as is.
 */
wr_ssize wr_swim_open(wr_swim_keyring *kr, uint8_t *dst, size_t cap,
                      const uint8_t *in, size_t len);

#endif
