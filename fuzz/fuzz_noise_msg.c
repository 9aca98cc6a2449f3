/*
 * libFuzzer target: handshake messages from a hostile peer.
 *
 * Input: byte 0 bit 0 picks the side.
 *   0: a responder (fixed fleet key, fresh replay cache) reads the rest as
 *      message 1; when it accepts it, it must be able to write message 2,
 *      be done and split.
 *   1: an initiator (fixed randomness) writes message 1, then reads the
 *      rest as message 2 (or a reject frame); when it accepts it, it must
 *      be done and split.
 * Byte 0 bit 1 picks the node-to-node handshake (NKpsk0 with the node
 * link PSK of the same secret) instead of the tunnel's NK.
 * Byte 0 bits 2-7 pick a chunk size (0 = whole): the message is offered
 * as growing prefixes, which must return 0 until the whole frame is there.
 * Fuzzing builds swap the handshake AEAD for the identity (noise.c), so
 * the payload checks (version, clock, AEADs, replay) are reached; replay
 * builds use the real AEAD, so the corpus holds real handshakes too.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "warren/err.h"
#include "warren/noise.h"
#include "warren/pcg.h"

#define TS 1700000000000ULL

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static const uint8_t secret[32] = "warren fuzz cluster secret 32 b";
  uint8_t pub[32], priv[32], psk[32], out[WR_NOISE_MAX_MSG + 2];
  wr_noise_replay *rc = NULL;
  wr_noise *n = NULL;
  wr_pcg32 g;
  wr_noise_keys k;
  if (size < 1) return 0;
  int side = data[0] & 1;
  const uint8_t *use_psk = (data[0] & 2) ? psk : NULL;
  size_t step = data[0] >> 2;
  data++;
  size--;
  wr_keys_fleet_keypair(secret, pub, priv);
  wr_keys_node_psk(secret, psk);
  wr_pcg32_seed(&g, 1, side);
  if (side == 0) {
    if (wr_noise_replay_new(&rc, 4, NULL) != 0 ||
        wr_noise_responder_new_psk(&n, priv, use_psk, rc, wr_pcg32_fill, &g,
                                   NULL) != 0)
      abort();
  } else {
    if (wr_noise_initiator_new_psk(&n, pub, use_psk, wr_pcg32_fill, &g,
                                   NULL) != 0 ||
        wr_noise_write(n, out, sizeof out, TS) <= 0)
      abort();
  }
  wr_ssize rv = 0;
  if (step) {
    for (size_t have = 0; have < size; have += step) {
      rv = wr_noise_read(n, data, have, TS);
      if (rv != 0) break;
    }
  }
  if (rv == 0) rv = wr_noise_read(n, data, size, TS);
  if (rv > 0) {
    if ((size_t)rv > size || (size_t)rv > WR_NOISE_MAX_MSG + 2) abort();
    if (side == 0 && wr_noise_write(n, out, sizeof out, TS) <= 0) abort();
    if (!wr_noise_done(n) || wr_noise_split(n, &k) != 0) abort();
    if (k.aead != WR_AEAD_AES256GCM && k.aead != WR_AEAD_CHACHA20POLY1305)
      abort();
  } else if (rv < 0) {
    if (rv != WR_ERR_PROTO && rv != WR_ERR_DECRYPT && rv != WR_ERR_REPLAY &&
        rv != WR_ERR_VERSION && rv != WR_ERR_AUTH)
      abort();
    if (wr_noise_done(n) || wr_noise_read(n, data, size, TS) != WR_ERR_INVAL)
      abort();
  } else if (size >= 2 && size >= 2 + (size_t)(data[0] << 8 | data[1])) {
    abort(); /* a whole frame must not be "need more" */
  }
  wr_noise_del(n);
  wr_noise_replay_del(rc);
  return 0;
}
