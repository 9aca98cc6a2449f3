#include <string.h>

#include "warren/pcg.h"

void wr_pcg32_seed(wr_pcg32 *g, uint64_t seed, uint64_t stream) {
  g->state = 0;
  g->inc = (stream << 1) | 1u;
  (void)wr_pcg32_next(g);
  g->state += seed;
  (void)wr_pcg32_next(g);
}

uint32_t wr_pcg32_next(wr_pcg32 *g) {
  uint64_t old = g->state;
  g->state = old * 6364136223846793005ULL + g->inc;
  uint32_t xorshifted = (uint32_t)(((old >> 18u) ^ old) >> 27u);
  uint32_t rot = (uint32_t)(old >> 59u);
  return (xorshifted >> rot) | (xorshifted << ((-rot) & 31));
}

uint32_t wr_pcg32_bounded(wr_pcg32 *g, uint32_t bound) {
  if (bound == 0) return 0;
  /* Rejection sampling: values below `threshold` would make some residues
   * one more likely than others. */
  uint32_t threshold = -bound % bound;
  for (;;) {
    uint32_t r = wr_pcg32_next(g);
    if (r >= threshold) return r % bound;
  }
}

double wr_pcg32_double(wr_pcg32 *g) {
  return (double)wr_pcg32_next(g) / 4294967296.0;
}

void wr_pcg32_fill(uint8_t *dst, size_t len, void *gp) {
  wr_pcg32 *g = gp;
  while (len > 0) {
    uint32_t r = wr_pcg32_next(g);
    size_t n = len < 4 ? len : 4;
    memcpy(dst, &r, n);
    dst += n;
    len -= n;
  }
}
