/* libFuzzer target: `warren node --config FILE` text (inih + our option
 * table).  Any input must parse or fail with a one-line error, never
 * crash, and never leave an unterminated string. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char *text = malloc(size + 1);
  if (!text) return 0;
  memcpy(text, data, size);
  text[size] = 0;
  wr_node_opts o;
  wr_node_opts_init(&o);
  if (wr_node_opts_parse_ini(&o, text) != 0) {
    if (strlen(o.err) == 0 || strchr(o.err, '\n')) abort();
  }
  if (strnlen(o.id, sizeof o.id) == sizeof o.id) abort();
  free(text);
  return 0;
}
