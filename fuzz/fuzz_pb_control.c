/*
 * libFuzzer target: control message decoding on arbitrary bytes.
 *
 * Whatever decodes must re-encode, and that encoding must decode to the
 * same struct (strings are cut at an embedded NUL on the first decode, so
 * the fixed point is reached after one step).  The name check and the
 * user-facing error line run on every decoded message; ASan checks that
 * protobuf-c's allocations are all returned.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "warren/control.h"
#include "warren/err.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static wr_control_msg m, back;
  static uint8_t wire[WR_CONTROL_MAX_WIRE];
  char line[256];
  int rv = wr_control_decode(data, size, &m);
  if (rv != 0) {
    if (rv != WR_ERR_PROTO) abort();
    return 0;
  }
  if (m.type == WR_CONTROL_BIND) (void)wr_control_name_valid(m.u.bind.name);
  if (m.type == WR_CONTROL_ERROR) {
    int n = wr_control_error_line(&m, line, sizeof line);
    if (n < 0) abort();
    for (const char *p = line; *p; p++)
      if (*p < 0x20 || *p > 0x7e) abort();
  }
  wr_ssize n = wr_control_encode(&m, wire, sizeof wire);
  /* Re-encoding never grows: unknown fields are dropped, strings can only
   * shrink and our varints are canonical, so it fits the decoder's bound. */
  if (n <= 0) abort();
  if (wr_control_decode(wire, (size_t)n, &back) != 0) abort();
  if (memcmp(&m, &back, sizeof m) != 0) abort();
  return 0;
}
