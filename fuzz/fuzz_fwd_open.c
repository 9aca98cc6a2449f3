/*
 * libFuzzer target: the OPEN metadata of a node-to-node stream
 * (forward.h, fwd_open.c) on arbitrary bytes.
 *
 * Whatever decodes must re-encode, and the re-encoding must decode to the
 * same struct; every decoded string is printable ASCII and NUL-ended
 * within its field.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "warren/err.h"
#include "warren/forward.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_str(const char *s, size_t cap) {
  size_t n = strnlen(s, cap);
  if (n == cap) abort();
  for (size_t i = 0; i < n; i++)
    if ((uint8_t)s[i] < 0x20 || (uint8_t)s[i] > 0x7e) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static wr_fwd_meta m, back;
  static uint8_t wire[WR_FWD_OPEN_MAX_WIRE];
  wr_fwd_open v;
  int rv = wr_fwd_open_decode(data, size, &m);
  if (rv != 0) {
    if (rv != WR_ERR_PROTO || m.name[0]) abort();
    return 0;
  }
  if (!m.name[0]) abort();
  check_str(m.name, sizeof m.name);
  check_str(m.host, sizeof m.host);
  check_str(m.request_id, sizeof m.request_id);
  check_str(m.visitor_addr, sizeof m.visitor_addr);
  check_str(m.scheme, sizeof m.scheme);
  wr_fwd_meta_view(&m, &v);
  wr_ssize n = wr_fwd_open_encode(&v, wire, sizeof wire);
  if (n <= 0) abort();
  memset(&back, 0, sizeof back);
  if (wr_fwd_open_decode(wire, (size_t)n, &back) != 0) abort();
  if (memcmp(&m, &back, sizeof m) != 0) abort();
  return 0;
}
