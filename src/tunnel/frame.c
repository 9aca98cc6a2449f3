/*
 * Mux frame codec.
 *
 * Wire format (all integers big-endian).  Every frame is an 8-byte header
 *
 *   0        1        2                 4                                8
 *   +--------+--------+-----------------+--------------------------------+
 *   |  type  | flags  |   length (u16)  |        stream id (u32)         |
 *   +--------+--------+-----------------+--------------------------------+
 *
 * and |length| payload bytes.  Frames form one byte stream carried in
 * sealed records; a frame may straddle records.  Why 8 bytes: a 16 KiB
 * record then spends 0.05 % on framing, and fixed offsets decode without
 * varint loops.  u16 lengths bound every non-DATA payload to 64 KiB, plenty
 * for request metadata and control messages.
 *
 *   type      sid     flags  payload
 *   0 DATA    != 0    FIN    0..16384 stream bytes
 *   1 OPEN    != 0    FIN    0..max_meta metadata (opaque to the mux)
 *   2 RST     != 0    -      u32 code (WR_MUX_RST_*)
 *   3 WINDOW  any     -      u32 increment > 0 (sid 0: the link)
 *   4 PING    0       -      8 opaque bytes
 *   5 PONG    0       -      the PING's 8 bytes
 *   6 GOAWAY  0       -      u32 code
 *   7 CONTROL 0       -      0..max_control bytes (protobuf, opaque here)
 *   8 SETTINGS 0      -      n * (u16 id, u32 value), n <= 10
 *
 * Decoding is strict: an unknown type, a flag not listed, a sid of the
 * wrong kind, a fixed-size payload of the wrong length, a zero WINDOW, or
 * a SETTINGS frame that is not a whole number of pairs is WR_ERR_PROTO; a
 * payload over its limit is WR_ERR_TOOBIG.  Unknown SETTINGS ids are
 * ignored so that later versions can add some.
 */
#include "frame.h"

#include <string.h>

#include "warren/err.h"

int wr_frame_hdr_parse(const uint8_t *p, const wr_frame_limits *lim,
                       wr_frame *f) {
  memset(f, 0, sizeof *f);
  f->type = p[0];
  f->flags = p[1];
  f->len = wr_get_u16(p + 2);
  f->sid = wr_get_u32(p + 4);
  uint8_t allowed_flags = 0;
  int want_sid; /* 1: nonzero, 0: zero, -1: any */
  switch (f->type) {
  case WR_FRAME_DATA:
    allowed_flags = WR_FRAME_FLAG_FIN;
    want_sid = 1;
    if (f->len > WR_FRAME_MAX_DATA) return WR_ERR_TOOBIG;
    break;
  case WR_FRAME_OPEN:
    allowed_flags = WR_FRAME_FLAG_FIN;
    want_sid = 1;
    if (f->len > lim->max_meta) return WR_ERR_TOOBIG;
    break;
  case WR_FRAME_RST:
    want_sid = 1;
    if (f->len != 4) return WR_ERR_PROTO;
    break;
  case WR_FRAME_WINDOW:
    want_sid = -1;
    if (f->len != 4) return WR_ERR_PROTO;
    break;
  case WR_FRAME_PING:
  case WR_FRAME_PONG:
    want_sid = 0;
    if (f->len != 8) return WR_ERR_PROTO;
    break;
  case WR_FRAME_GOAWAY:
    want_sid = 0;
    if (f->len != 4) return WR_ERR_PROTO;
    break;
  case WR_FRAME_CONTROL:
    want_sid = 0;
    if (f->len > lim->max_control) return WR_ERR_TOOBIG;
    break;
  case WR_FRAME_SETTINGS:
    want_sid = 0;
    if (f->len % 6 != 0 || f->len > 6 * WR_SET_MAX_PAIRS) return WR_ERR_PROTO;
    break;
  default:
    return WR_ERR_PROTO;
  }
  if (f->flags & ~allowed_flags) return WR_ERR_PROTO;
  if (want_sid == 1 && f->sid == 0) return WR_ERR_PROTO;
  if (want_sid == 0 && f->sid != 0) return WR_ERR_PROTO;
  return 0;
}

int wr_frame_body_parse(wr_frame *f, const uint8_t *payload) {
  wr_rbuf b;
  int rv;
  wr_rbuf_init(&b, payload, f->len);
  switch (f->type) {
  case WR_FRAME_DATA:
  case WR_FRAME_OPEN:
  case WR_FRAME_CONTROL:
    f->payload = payload;
    return 0;
  case WR_FRAME_RST:
  case WR_FRAME_GOAWAY:
    return wr_rbuf_u32(&b, &f->value);
  case WR_FRAME_WINDOW:
    if ((rv = wr_rbuf_u32(&b, &f->value)) != 0) return rv;
    return f->value == 0 ? WR_ERR_PROTO : 0;
  case WR_FRAME_PING:
  case WR_FRAME_PONG:
    return wr_rbuf_copy(&b, f->opaque, 8);
  case WR_FRAME_SETTINGS:
    memset(&f->set, 0, sizeof f->set);
    while (wr_rbuf_left(&b) > 0) {
      uint16_t id;
      uint32_t v;
      if ((rv = wr_rbuf_u16(&b, &id)) != 0) return rv;
      if ((rv = wr_rbuf_u32(&b, &v)) != 0) return rv;
      if (id == 0 || id >= WR_SET_COUNT) continue; /* unknown: ignored */
      /* A repeated id is a sender bug that hides which value it meant. */
      if (f->set.present & (1u << id)) return WR_ERR_PROTO;
      f->set.present |= 1u << id;
      f->set.val[id] = v;
    }
    return 0;
  default:
    return WR_ERR_PROTO;
  }
}

static uint32_t settings_pairs(const wr_frame_settings *s) {
  uint32_t n = 0;
  for (uint32_t id = 1; id < WR_SET_COUNT; id++)
    if (s->present & (1u << id)) n++;
  return n;
}

static size_t payload_len(const wr_frame *f) {
  switch (f->type) {
  case WR_FRAME_RST:
  case WR_FRAME_WINDOW:
  case WR_FRAME_GOAWAY:
    return 4;
  case WR_FRAME_PING:
  case WR_FRAME_PONG:
    return 8;
  case WR_FRAME_SETTINGS:
    return 6 * settings_pairs(&f->set);
  default:
    return f->len;
  }
}

size_t wr_frame_encoded_len(const wr_frame *f) {
  return WR_FRAME_HDR_LEN + payload_len(f);
}

int wr_frame_encode(wr_wbuf *b, const wr_frame *f) {
  if (f->type >= WR_FRAME_TYPE_COUNT) return WR_ERR_INVAL;
  size_t len = payload_len(f);
  if (len > WR_FRAME_MAX_PAYLOAD) return WR_ERR_INVAL;
  if (wr_wbuf_left(b) < WR_FRAME_HDR_LEN + len) return WR_ERR_NOBUF;
  wr_frame_hdr_put(b->pos, f->type, f->flags, (uint16_t)len, f->sid);
  b->pos += WR_FRAME_HDR_LEN;
  switch (f->type) {
  case WR_FRAME_RST:
  case WR_FRAME_WINDOW:
  case WR_FRAME_GOAWAY:
    return wr_wbuf_u32(b, f->value);
  case WR_FRAME_PING:
  case WR_FRAME_PONG:
    return wr_wbuf_bytes(b, f->opaque, 8);
  case WR_FRAME_SETTINGS:
    for (uint32_t id = 1; id < WR_SET_COUNT; id++) {
      if (!(f->set.present & (1u << id))) continue;
      wr_wbuf_u16(b, (uint16_t)id);
      wr_wbuf_u32(b, f->set.val[id]);
    }
    return 0;
  default:
    return wr_wbuf_bytes(b, f->payload, len);
  }
}

void wr_frame_reader_init(wr_frame_reader *r, const wr_frame_limits *lim,
                          const wr_mem *mem) {
  memset(r, 0, sizeof *r);
  r->mem = mem;
  r->lim = *lim;
}

void wr_frame_reader_free(wr_frame_reader *r) {
  if (r->buf) wr_mem_free(r->mem, r->buf);
  r->buf = NULL;
  r->buf_cap = 0;
}

/*
 * The reader has two states: collecting the header (hdr_have < 8) and
 * collecting the payload (in_body).  DATA pieces go out as soon as any
 * payload byte is present, so a 16 KiB frame split over two records is
 * delivered in two pieces without a copy.  Other payloads are at most
 * 64 KiB and need to be whole for their callback: they are viewed in place
 * when the input holds them entirely, else copied into |buf|, which grows
 * to the largest such frame seen (bounded by the limits).
 */
int wr_frame_reader_next(wr_frame_reader *r, const uint8_t **pp,
                         size_t *plen, wr_frame_event *ev) {
  const uint8_t *p = *pp;
  size_t n = *plen;
  int rv;

  for (;;) {
    if (!r->in_body) {
      if (r->hdr_have == 0 && n >= WR_FRAME_HDR_LEN) {
        rv = wr_frame_hdr_parse(p, &r->lim, &r->f);
        p += WR_FRAME_HDR_LEN;
        n -= WR_FRAME_HDR_LEN;
      } else {
        size_t take = WR_MIN(n, (size_t)(WR_FRAME_HDR_LEN - r->hdr_have));
        if (take == 0) break;
        memcpy(r->hdr + r->hdr_have, p, take);
        r->hdr_have += (uint32_t)take;
        p += take;
        n -= take;
        if (r->hdr_have < WR_FRAME_HDR_LEN) break;
        rv = wr_frame_hdr_parse(r->hdr, &r->lim, &r->f);
      }
      r->hdr_have = 0;
      if (rv != 0) goto out_err;
      r->in_body = 1;
      r->body_have = 0;
    }

    wr_frame *f = &r->f;
    if (f->type == WR_FRAME_DATA) {
      uint32_t left = f->len - r->body_have;
      if (left > 0 && n == 0) break;
      size_t take = WR_MIN(n, (size_t)left);
      ev->kind = WR_FRAME_EV_DATA;
      ev->f = f;
      ev->data = p;
      ev->len = take;
      ev->off = r->body_have;
      r->body_have += (uint32_t)take;
      ev->last = r->body_have == f->len;
      if (ev->last) r->in_body = 0;
      *pp = p + take;
      *plen = n - take;
      return 1;
    }

    const uint8_t *payload;
    if (r->body_have == 0 && n >= f->len) {
      payload = p; /* whole payload in this input: zero copy */
      p += f->len;
      n -= f->len;
    } else {
      if (r->buf_cap < f->len) {
        uint8_t *nb = wr_mem_realloc(r->mem, r->buf, f->len);
        if (!nb) {
          rv = WR_ERR_NOMEM;
          goto out_err;
        }
        r->buf = nb;
        r->buf_cap = f->len;
      }
      size_t take = WR_MIN(n, (size_t)(f->len - r->body_have));
      if (take) memcpy(r->buf + r->body_have, p, take);
      r->body_have += (uint32_t)take;
      p += take;
      n -= take;
      if (r->body_have < f->len) break;
      payload = r->buf;
    }
    r->in_body = 0;
    if ((rv = wr_frame_body_parse(f, payload)) != 0) goto out_err;
    ev->kind = WR_FRAME_EV_FRAME;
    ev->f = f;
    ev->data = NULL;
    ev->len = 0;
    ev->off = 0;
    ev->last = 1;
    *pp = p;
    *plen = n;
    return 1;
  }
  *pp = p;
  *plen = n;
  return 0;

out_err:
  *pp = p;
  *plen = n;
  return rv;
}
