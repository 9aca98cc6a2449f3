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

/* The same bytes as a MOVED hint (ForwardMoved): a decoded one re-encodes
 * to something that decodes the same. */
static void moved(const uint8_t *data, size_t size) {
  static uint8_t wire[WR_FWD_OPEN_MAX_WIRE];
  char owner[WR_FWD_OWNER_MAX], back[WR_FWD_OWNER_MAX];
  uint32_t sid = 0, sid2 = 0;
  if (wr_fwd_moved_decode(data, size, &sid, owner) != 0) {
    if (owner[0]) abort();
    return;
  }
  check_str(owner, sizeof owner);
  if (!owner[0]) abort();
  wr_ssize n = wr_fwd_moved_encode(sid, owner, wire, sizeof wire);
  if (n <= 0) abort();
  if (wr_fwd_moved_decode(wire, (size_t)n, &sid2, back) != 0) abort();
  if (sid2 != sid || strcmp(owner, back) != 0) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static wr_fwd_meta m, back;
  static uint8_t wire[WR_FWD_OPEN_MAX_WIRE];
  wr_fwd_open v;
  moved(data, size);
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
