/*
 * A pool of random bytes for per-request ids (X-Request-Id): one job,
 * unpredictable bytes at no syscall per request.  Sans-IO: the seed
 * comes from a function the caller picks (the OS by default).
 */
#ifndef WR_PROXY_RANDPOOL_H
#define WR_PROXY_RANDPOOL_H

#include <stddef.h>
#include <stdint.h>

#define WR_RANDPOOL_BYTES 4096
#define WR_RANDPOOL_SEED 32

typedef struct wr_randpool {
  uint8_t buf[WR_RANDPOOL_BYTES];
  size_t off; /* bytes of buf handed out (and zeroed) */
  /* Fills a fresh seed; NULL = libsodium's randombytes_buf (the OS). */
  void (*seed)(uint8_t seed[WR_RANDPOOL_SEED], void *ud);
  void *seed_ud;
  uint64_t refills;
} wr_randpool;

/* An empty pool: the first draw refills it. */
void wr_randpool_init(wr_randpool *p,
                      void (*seed)(uint8_t seed[WR_RANDPOOL_SEED], void *),
                      void *seed_ud);

/* Writes |len| random bytes to |dst|; a wr_rand_fn (ud = the pool).  Each
 * pool byte is handed out once and wiped.  Requests larger than the pool
 * are expanded from a seed of their own. */
void wr_randpool_fill(uint8_t *dst, size_t len, void *ud);

#endif
