/*
 * Bounds-checked byte cursors for codecs (ngtcp2_buf, picotls ptls_decode).
 *
 * A wr_rbuf reads from borrowed memory; every getter checks pos + n <= end
 * and returns WR_ERR_PROTO when the input is short, so a decoder reads like
 * a grammar:  if ((rv = wr_rbuf_u16(&b, &len)) != 0) return rv;
 * A wr_wbuf writes into caller-owned memory and returns WR_ERR_NOBUF when
 * full.  Multi-byte integers are big-endian (network order).
 */
#ifndef WARREN_BUF_H
#define WARREN_BUF_H

#include <stdint.h>
#include <string.h>

#include "warren/err.h"

typedef struct wr_rbuf {
  const uint8_t *pos;
  const uint8_t *end;
} wr_rbuf;

typedef struct wr_wbuf {
  uint8_t *pos;
  uint8_t *end;
  uint8_t *begin;
} wr_wbuf;

static inline void wr_rbuf_init(wr_rbuf *b, const uint8_t *p, size_t len) {
  b->pos = p;
  b->end = p + len;
}
static inline size_t wr_rbuf_left(const wr_rbuf *b) {
  return (size_t)(b->end - b->pos);
}
static inline int wr_rbuf_u8(wr_rbuf *b, uint8_t *v) {
  if (wr_rbuf_left(b) < 1) return WR_ERR_PROTO;
  *v = *b->pos++;
  return 0;
}
static inline int wr_rbuf_u16(wr_rbuf *b, uint16_t *v) {
  if (wr_rbuf_left(b) < 2) return WR_ERR_PROTO;
  *v = (uint16_t)((uint16_t)b->pos[0] << 8 | b->pos[1]);
  b->pos += 2;
  return 0;
}
static inline int wr_rbuf_u32(wr_rbuf *b, uint32_t *v) {
  if (wr_rbuf_left(b) < 4) return WR_ERR_PROTO;
  *v = (uint32_t)b->pos[0] << 24 | (uint32_t)b->pos[1] << 16 |
       (uint32_t)b->pos[2] << 8 | b->pos[3];
  b->pos += 4;
  return 0;
}
static inline int wr_rbuf_u64(wr_rbuf *b, uint64_t *v) {
  uint32_t hi, lo;
  int rv;
  if ((rv = wr_rbuf_u32(b, &hi)) != 0) return rv;
  if ((rv = wr_rbuf_u32(b, &lo)) != 0) return rv;
  *v = (uint64_t)hi << 32 | lo;
  return 0;
}
/* A view of n bytes inside the input; valid as long as the input is. */
static inline int wr_rbuf_view(wr_rbuf *b, size_t n, const uint8_t **p) {
  if (wr_rbuf_left(b) < n) return WR_ERR_PROTO;
  *p = b->pos;
  b->pos += n;
  return 0;
}
static inline int wr_rbuf_copy(wr_rbuf *b, void *dst, size_t n) {
  const uint8_t *p;
  int rv = wr_rbuf_view(b, n, &p);
  if (rv == 0 && n) memcpy(dst, p, n);
  return rv;
}

static inline void wr_wbuf_init(wr_wbuf *b, uint8_t *p, size_t cap) {
  b->begin = b->pos = p;
  b->end = p + cap;
}
static inline size_t wr_wbuf_left(const wr_wbuf *b) {
  return (size_t)(b->end - b->pos);
}
static inline size_t wr_wbuf_len(const wr_wbuf *b) {
  return (size_t)(b->pos - b->begin);
}
static inline int wr_wbuf_u8(wr_wbuf *b, uint8_t v) {
  if (wr_wbuf_left(b) < 1) return WR_ERR_NOBUF;
  *b->pos++ = v;
  return 0;
}
static inline int wr_wbuf_u16(wr_wbuf *b, uint16_t v) {
  if (wr_wbuf_left(b) < 2) return WR_ERR_NOBUF;
  b->pos[0] = (uint8_t)(v >> 8);
  b->pos[1] = (uint8_t)v;
  b->pos += 2;
  return 0;
}
static inline int wr_wbuf_u32(wr_wbuf *b, uint32_t v) {
  if (wr_wbuf_left(b) < 4) return WR_ERR_NOBUF;
  b->pos[0] = (uint8_t)(v >> 24);
  b->pos[1] = (uint8_t)(v >> 16);
  b->pos[2] = (uint8_t)(v >> 8);
  b->pos[3] = (uint8_t)v;
  b->pos += 4;
  return 0;
}
static inline int wr_wbuf_u64(wr_wbuf *b, uint64_t v) {
  int rv = wr_wbuf_u32(b, (uint32_t)(v >> 32));
  return rv ? rv : wr_wbuf_u32(b, (uint32_t)v);
}
static inline int wr_wbuf_bytes(wr_wbuf *b, const void *p, size_t n) {
  if (wr_wbuf_left(b) < n) return WR_ERR_NOBUF;
  if (n) memcpy(b->pos, p, n);
  b->pos += n;
  return 0;
}

/* Plain big-endian stores/loads for fixed headers. */
static inline void wr_put_u16(uint8_t *p, uint16_t v) {
  p[0] = (uint8_t)(v >> 8);
  p[1] = (uint8_t)v;
}
static inline void wr_put_u32(uint8_t *p, uint32_t v) {
  p[0] = (uint8_t)(v >> 24);
  p[1] = (uint8_t)(v >> 16);
  p[2] = (uint8_t)(v >> 8);
  p[3] = (uint8_t)v;
}
static inline uint16_t wr_get_u16(const uint8_t *p) {
  return (uint16_t)((uint16_t)p[0] << 8 | p[1]);
}
static inline uint32_t wr_get_u32(const uint8_t *p) {
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 |
         p[3];
}

#endif
