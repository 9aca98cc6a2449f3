/*
 * libFuzzer target: the mux frame reader on arbitrary bytes.
 *
 * Input: byte 0 picks the chunk size (0 = whole input) in which the rest
 * is fed to wr_frame_reader_next.  Every frame the reader accepts must
 * re-encode to exactly the bytes it came from (SETTINGS excepted: unknown
 * ids are dropped), and DATA pieces must be contiguous views of the input.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../src/tunnel/frame.h"

static uint8_t tmp[WR_FRAME_HDR_LEN + WR_FRAME_MAX_PAYLOAD];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  size_t step = data[0] ? data[0] : size;
  data++;
  size--;
  wr_frame_limits lim = {.max_meta = 4096, .max_control = 65535};
  wr_frame_reader r;
  wr_frame_reader_init(&r, &lim, NULL);
  size_t frame_start = 0, data_next = 0;
  for (size_t off = 0; off < size;) {
    size_t n = size - off < step ? size - off : step;
    const uint8_t *p = data + off;
    size_t left = n;
    wr_frame_event ev;
    int rv;
    while ((rv = wr_frame_reader_next(&r, &p, &left, &ev)) == 1) {
      size_t here = (size_t)(p - data);
      if (ev.kind == WR_FRAME_EV_DATA) {
        if (ev.off == 0) data_next = frame_start + WR_FRAME_HDR_LEN;
        if (ev.len && ev.data != data + data_next) __builtin_trap();
        data_next += ev.len;
        if (!ev.last) continue;
        if (here - frame_start != WR_FRAME_HDR_LEN + ev.f->len)
          __builtin_trap();
      } else if (ev.f->type != WR_FRAME_SETTINGS) {
        wr_wbuf b;
        wr_wbuf_init(&b, tmp, sizeof tmp);
        if (wr_frame_encode(&b, ev.f) != 0) __builtin_trap();
        size_t len = wr_wbuf_len(&b);
        if (len != here - frame_start) __builtin_trap();
        if (memcmp(tmp, data + frame_start, len) != 0) __builtin_trap();
      }
      frame_start = here;
    }
    if (rv < 0) break;
    if (left != 0) __builtin_trap();
    off += n;
  }
  wr_frame_reader_free(&r);
  return 0;
}
