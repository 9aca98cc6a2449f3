/* libFuzzer target: a gossip packet as it arrives, first through the
 * keyring (empty here, so the identity seal lets the fuzzer reach the
 * decoder), then the codec.  A packet that decodes must re-encode to
 * exactly its own bytes: the format has one spelling per message. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "warren/swim_codec.h"
#include "warren/swim_seal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static wr_swim_packet p;
  static uint8_t plain[WR_SWIM_PACKET_MAX + WR_SWIM_SEAL_OVERHEAD];
  static uint8_t again[WR_SWIM_PACKET_MAX];
  wr_swim_keyring kr;
  wr_swim_keyring_init(&kr);
  if (size > sizeof plain) return 0;
  wr_ssize n = wr_swim_open(&kr, plain, sizeof plain, data, size);
  if (n < 0) return 0;
  if (wr_swim_decode(plain, (size_t)n, &p) != 0) return 0;
  wr_ssize m = wr_swim_encode(&p, again, sizeof again);
  if (m != n || memcmp(again, plain, (size_t)n) != 0) abort();
  return 0;
}
