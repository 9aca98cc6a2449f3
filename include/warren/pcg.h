/*
 * PCG32 (O'Neill, pcg-random.org, "PCG-XSH-RR 64/32"): a small, fast,
 * seedable generator.  Tests and the simulator use it so that every run is
 * reproducible from its seed; the daemon uses libsodium instead.
 */
#ifndef WARREN_PCG_H
#define WARREN_PCG_H

#include <stddef.h>
#include <stdint.h>

typedef struct wr_pcg32 {
  uint64_t state;
  uint64_t inc;
} wr_pcg32;

void wr_pcg32_seed(wr_pcg32 *g, uint64_t seed, uint64_t stream);
uint32_t wr_pcg32_next(wr_pcg32 *g);
/* Uniform in [0, bound) without modulo bias; bound 0 returns 0. */
uint32_t wr_pcg32_bounded(wr_pcg32 *g, uint32_t bound);
/* Uniform double in [0, 1). */
double wr_pcg32_double(wr_pcg32 *g);
/* Fills dst; matches wr_rand_fn with user_data = the generator. */
void wr_pcg32_fill(uint8_t *dst, size_t len, void *g);

#endif
