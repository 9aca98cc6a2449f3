/*
 * libFuzzer target: the record opener on arbitrary bytes, plus a seal/open
 * round trip of the input as plaintext.
 *
 * Input: byte 0 bit 0 picks the AEAD, bits 1-7 a rekey interval (0 = the
 * default) so rekeying is reached with few records; the rest is a stream
 * of records under a fixed key, opened in place one after another until
 * the opener wants more bytes or fails.  Opened plaintext must lie inside
 * the record.  Then the same bytes (cut to the maximum) are sealed and
 * opened by a fresh pair, which must give them back.
 *
 * The real AEADs run even in fuzzing builds, so mutated records fail the
 * tag: the corpus holds genuine records (sealed with the key below) so the
 * success path, counters and rekeying are exercised too.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "warren/err.h"
#include "warren/record.h"

static const uint8_t key[32] = "warren fuzz record key 32 bytes";
static uint8_t buf[1 << 20];
static uint8_t sealed[WR_RECORD_MAX_WIRE];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  wr_record *o, *s;
  if (size < 1 || size - 1 > sizeof buf) return 0;
  wr_aead alg = data[0] & 1 ? WR_AEAD_CHACHA20POLY1305 : WR_AEAD_AES256GCM;
  uint64_t interval = data[0] >> 1;
  data++;
  size--;
  memcpy(buf, data, size);
  if (wr_record_new(&o, alg, key, NULL) != 0) abort();
  wr__record_set_rekey_interval(o, interval);
  size_t off = 0;
  for (;;) {
    const uint8_t *pt = NULL;
    size_t ptlen = 0;
    uint64_t before = wr_record_count(o);
    wr_ssize n = wr_record_open(o, buf + off, size - off, &pt, &ptlen);
    if (n == 0) {
      if (wr_record_count(o) != before) abort();
      break;
    }
    if (n < 0) {
      if (n != WR_ERR_PROTO && n != WR_ERR_DECRYPT) abort();
      if (wr_record_count(o) != before) abort();
      break;
    }
    if ((size_t)n > size - off || pt != buf + off + WR_RECORD_HEADER_LEN ||
        ptlen + WR_RECORD_OVERHEAD != (size_t)n ||
        ptlen > WR_RECORD_MAX_PLAINTEXT || wr_record_count(o) != before + 1)
      abort();
    off += (size_t)n;
  }
  wr_record_del(o);

  /* Round trip of the input as plaintext. */
  size_t len = size < WR_RECORD_MAX_PLAINTEXT ? size : WR_RECORD_MAX_PLAINTEXT;
  if (wr_record_new(&s, alg, key, NULL) != 0 ||
      wr_record_new(&o, alg, key, NULL) != 0)
    abort();
  for (int i = 0; i < 2; i++) {
    const uint8_t *pt;
    size_t ptlen;
    wr_ssize n = wr_record_seal(s, sealed, sizeof sealed, data, len);
    if (n != (wr_ssize)(len + WR_RECORD_OVERHEAD)) abort();
    if (wr_record_open(o, sealed, (size_t)n, &pt, &ptlen) != n ||
        ptlen != len || (len && memcmp(pt, data, len) != 0))
      abort();
  }
  wr_record_del(s);
  wr_record_del(o);
  return 0;
}
