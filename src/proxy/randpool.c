/*
 * The request-id random pool (randpool.h).
 *
 * X-Request-Id needs unpredictable bytes per request, not a syscall per
 * request: libsodium 1.0.18's randombytes_buf is one getrandom() per call
 * of up to 256 bytes (~5% of the node's time at 25k req/s when it was
 * called per request).  A 4 KiB pool filled by randombytes_buf still cost
 * 16 getrandom() calls per refill (it reads the kernel 256 bytes at a
 * time).  So each refill takes one 32-byte seed from the OS (one
 * syscall) and expands it with randombytes_buf_deterministic (ChaCha20,
 * the same construction the kernel's own CSPRNG uses), then wipes the
 * seed: a fresh OS seed per 256 ids, and what was handed out cannot be
 * recomputed from the pool's state afterwards, since used bytes are
 * zeroed and the seed is gone.
 */
#include "randpool.h"

#include <string.h>

#include <sodium.h>

static void os_seed(uint8_t seed[WR_RANDPOOL_SEED], void *ud) {
  (void)ud;
  randombytes_buf(seed, WR_RANDPOOL_SEED);
}

void wr_randpool_init(wr_randpool *p,
                      void (*seed)(uint8_t seed[WR_RANDPOOL_SEED], void *),
                      void *seed_ud) {
  memset(p, 0, sizeof *p);
  p->off = sizeof p->buf;
  p->seed = seed ? seed : os_seed;
  p->seed_ud = seed_ud;
}

static void expand(wr_randpool *p, uint8_t *dst, size_t len) {
  uint8_t seed[WR_RANDPOOL_SEED];
  p->seed(seed, p->seed_ud);
  randombytes_buf_deterministic(dst, len, seed);
  sodium_memzero(seed, sizeof seed);
  p->refills++;
}

void wr_randpool_fill(uint8_t *dst, size_t len, void *ud) {
  wr_randpool *p = ud;
  if (len > sizeof p->buf) {
    expand(p, dst, len);
    return;
  }
  if (p->off + len > sizeof p->buf) {
    expand(p, p->buf, sizeof p->buf);
    p->off = 0;
  }
  memcpy(dst, p->buf + p->off, len);
  sodium_memzero(p->buf + p->off, len); /* each byte is handed out once */
  p->off += len;
}
