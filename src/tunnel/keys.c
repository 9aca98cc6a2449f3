/*
 * Cluster secret and fleet key handling (include/warren/noise.h, "Cluster
 * secret handling"): the text formats of `warren keygen` / `warren pubkey`
 * and the BLAKE2b derivations that turn one 32-byte secret into every key a
 * node needs.
 *
 * Derivations.  Each derived key is BLAKE2b-256 keyed with the secret over a
 * fixed, versioned label:
 *
 *   gossip key        = BLAKE2b-256(key = secret, "warren/1 gossip key")
 *   fleet Noise priv  = BLAKE2b-256(key = secret, "warren/1 fleet noise key")
 *   fleet Noise pub   = X25519(priv, 9)
 *   node link PSK     = BLAKE2b-256(key = secret, "warren/1 node link psk")
 *
 * BLAKE2b in keyed mode is a PRF (RFC 7693 section 3.3), so outputs under
 * distinct labels are independent: publishing the fleet public key, or
 * leaking the gossip key, tells nothing about the other keys.  The labels
 * carry a version so that a future derivation change cannot collide.
 *
 * Text formats.  The secret file is 64 hex characters (either case on
 * input, lower case on output) and a newline; surrounding whitespace is
 * tolerated because editors and `echo` add it.  The public key is 43
 * characters of unpadded base64url (RFC 4648 section 5): short, and safe on
 * a command line and in a URL.
 */
#include <sodium.h>
#include <string.h>

#include "warren/err.h"
#include "warren/noise.h"

#define LABEL_GOSSIP "warren/1 gossip key"
#define LABEL_FLEET "warren/1 fleet noise key"
#define LABEL_NODE_PSK "warren/1 node link psk"

static int is_space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' ||
         c == '\f';
}

static int hex_val(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

int wr_keys_parse_secret(const char *text, size_t len, uint8_t secret[32]) {
  uint8_t tmp[32];
  if (!text) return WR_ERR_INVAL;
  while (len > 0 && is_space(text[0])) {
    text++;
    len--;
  }
  while (len > 0 && is_space(text[len - 1])) len--;
  if (len != 64) return WR_ERR_INVAL;
  for (size_t i = 0; i < 32; i++) {
    int hi = hex_val(text[2 * i]), lo = hex_val(text[2 * i + 1]);
    if (hi < 0 || lo < 0) {
      sodium_memzero(tmp, sizeof tmp);
      return WR_ERR_INVAL;
    }
    tmp[i] = (uint8_t)(hi << 4 | lo);
  }
  memcpy(secret, tmp, 32);
  sodium_memzero(tmp, sizeof tmp);
  return 0;
}

void wr_keys_format_secret(const uint8_t secret[32], char out[65]) {
  static const char digits[] = "0123456789abcdef";
  for (size_t i = 0; i < 32; i++) {
    out[2 * i] = digits[secret[i] >> 4];
    out[2 * i + 1] = digits[secret[i] & 15];
  }
  out[64] = '\0';
}

static void derive(const uint8_t secret[32], const char *label,
                   uint8_t out[32]) {
  /* crypto_generichash cannot fail for these lengths (1..64 bytes out,
   * 16..64 bytes of key). */
  (void)crypto_generichash(out, 32, (const uint8_t *)label, strlen(label),
                           secret, 32);
}

void wr_keys_fleet_keypair(const uint8_t secret[32], uint8_t pub[32],
                           uint8_t priv[32]) {
  /* sodium_init picks the fastest implementations; it fails only when
   * the system RNG is unusable, which this derivation does not need. */
  if (sodium_init() < 0) {
  }
  derive(secret, LABEL_FLEET, priv);
  /* X25519 clamps the scalar itself (RFC 7748 section 5), so any 32 bytes
   * are a valid private key. */
  (void)crypto_scalarmult_base(pub, priv);
}

void wr_keys_gossip_key(const uint8_t secret[32], uint8_t key[32]) {
  derive(secret, LABEL_GOSSIP, key);
}

void wr_keys_format_pub(const uint8_t pub[32], char out[44]) {
  sodium_bin2base64(out, 44, pub, 32, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
}

int wr_keys_parse_pub(const char *text, uint8_t pub[32]) {
  uint8_t tmp[32];
  size_t n = 0;
  if (!text) return WR_ERR_INVAL;
  /* Exactly 43 characters: libsodium would otherwise stop at the first
   * non-alphabet byte and report success for a prefix.  It also rejects
   * non-zero padding bits, so each key has exactly one spelling. */
  if (strlen(text) != 43) return WR_ERR_INVAL;
  if (sodium_base642bin(tmp, sizeof tmp, text, 43, NULL, &n, NULL,
                        sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0 ||
      n != 32)
    return WR_ERR_INVAL;
  memcpy(pub, tmp, 32);
  return 0;
}

void wr_keys_node_psk(const uint8_t secret[32], uint8_t psk[32]) {
  derive(secret, LABEL_NODE_PSK, psk);
}
