/* libFuzzer target: --join seed lists.  Any input parses into at most
 * WR_SEEDS_MAX well-formed seeds, or fails with a one-line reason. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "seeds.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char *text = malloc(size + 1);
  if (!text) return 0;
  memcpy(text, data, size);
  text[size] = 0;
  wr_seed_list l;
  char err[200];
  err[0] = 0;
  if (wr_seeds_parse(text, &l, err, sizeof err) == 0) {
    if (l.n == 0 || l.n > WR_SEEDS_MAX) abort();
    for (size_t i = 0; i < l.n; i++)
      if (l.seeds[i].port == 0 || l.seeds[i].host[0] == 0) abort();
  } else if (err[0] == 0 || strchr(err, '\n')) {
    abort();
  }
  free(text);
  return 0;
}
