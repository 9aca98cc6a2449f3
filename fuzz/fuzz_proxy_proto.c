/*
 * Fuzz target: arbitrary bytes into the PROXY protocol parser, at every
 * prefix length.  Oracles: the answers over growing prefixes read
 * 0 ... 0 then either L (a header of L bytes, the same L and address for
 * every longer prefix) or WR_ERR_PROTO (for every longer prefix); L is at
 * most WR_PROXY_V2_MAX; the address text is terminated and present exactly
 * when the header carries a client address.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "warren/err.h"
#include "warren/proxyproto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size > 4 * WR_PROXY_V2_MAX) size = 4 * WR_PROXY_V2_MAX;
  wr_ssize first = 0;
  wr_proxy_info fi;
  memset(&fi, 0, sizeof(fi));
  for (size_t k = 0; k <= size; k++) {
    /* A fresh copy of exactly k bytes: ASan catches over-reads. */
    uint8_t *p = malloc(k ? k : 1);
    if (!p) abort();
    memcpy(p, data, k);
    wr_proxy_info info;
    memset(&info, 0xa5, sizeof(info));
    wr_ssize r = wr_proxy_parse(p, k, &info);
    free(p);
    if (r > 0) {
      if ((size_t)r > k || r > WR_PROXY_V2_MAX) abort();
      if (memchr(info.src_str, 0, sizeof(info.src_str)) == NULL) abort();
      if (info.local != (info.src_str[0] == '\0')) abort();
      if (info.version != 1 && info.version != 2) abort();
      if (first == 0) {
        first = r;
        fi = info;
      } else if (r != first || strcmp(info.src_str, fi.src_str) != 0) {
        abort();
      }
    } else if (r == 0) {
      if (first != 0) abort();
    } else if (r == WR_ERR_PROTO) {
      if (first > 0) abort();
      first = r;
    } else {
      abort();
    }
  }
  return 0;
}
