/*
 * SWIM wire codec (format in swim_codec.h).  Decoding reads only through
 * wr_rbuf getters, so every length is checked before it is used; a string
 * must be printable ASCII without spaces, because ids and regions end up
 * in logs, JSON and warrenctl tables.
 */
#include <string.h>

#include "warren/buf.h"
#include "warren/err.h"
#include "warren/swim_codec.h"

int wr_swim_bytes_ok(const uint8_t *p, size_t n, size_t max) {
  if (n > max) return 0;
  for (size_t i = 0; i < n; i++)
    if (p[i] <= 0x20 || p[i] >= 0x7f) return 0;
  return 1;
}

static int str_ok(const char *s, size_t max) {
  return wr_swim_bytes_ok((const uint8_t *)s, strnlen(s, max + 1), max);
}

static size_t addr_size(const wr_addr *a) {
  return a->family == 4 ? 1 + 4 + 2 : a->family == 6 ? 1 + 16 + 2 : 0;
}

size_t wr_swim_update_size(const wr_swim_update *u) {
  if (!str_ok(u->id, WR_SWIM_ID_MAX) || !u->id[0]) return 0;
  size_t n = 1 + 1 + strlen(u->id) + 4;
  switch (u->kind) {
  case WR_SWIM_UPD_ALIVE: {
    size_t g = addr_size(&u->gossip), d = addr_size(&u->data);
    if (!g || !d || !str_ok(u->region, WR_SWIM_REGION_MAX) ||
        !str_ok(u->tags, WR_SWIM_TAGS_MAX))
      return 0;
    return n + g + d + 1 + strlen(u->region) + 1 + strlen(u->tags);
  }
  case WR_SWIM_UPD_SUSPECT:
  case WR_SWIM_UPD_DEAD:
    if (!str_ok(u->from, WR_SWIM_ID_MAX) || !u->from[0]) return 0;
    return n + 1 + strlen(u->from);
  case WR_SWIM_UPD_LEFT:
    return n;
  case WR_SWIM_UPD_USER:
    if (!str_ok(u->key, WR_SWIM_ID_MAX) || !u->key[0] ||
        u->payload_len > WR_SWIM_USER_MAX || (u->payload_len && !u->payload))
      return 0;
    return n + 1 + strlen(u->key) + 8 + 2 + u->payload_len;
  default:
    return 0;
  }
}

static int put_str(wr_wbuf *w, const char *s) {
  size_t n = strlen(s);
  int rv = wr_wbuf_u8(w, (uint8_t)n);
  return rv ? rv : wr_wbuf_bytes(w, s, n);
}

static int put_addr(wr_wbuf *w, const wr_addr *a) {
  int rv = wr_wbuf_u8(w, a->family);
  if (rv == 0) rv = wr_wbuf_bytes(w, a->ip, a->family == 4 ? 4 : 16);
  if (rv == 0) rv = wr_wbuf_u16(w, a->port);
  return rv;
}

static int put_update(wr_wbuf *w, const wr_swim_update *u) {
  int rv;
  if ((rv = wr_wbuf_u8(w, u->kind)) != 0 || (rv = put_str(w, u->id)) != 0 ||
      (rv = wr_wbuf_u32(w, u->incarnation)) != 0)
    return rv;
  switch (u->kind) {
  case WR_SWIM_UPD_ALIVE:
    if ((rv = put_addr(w, &u->gossip)) != 0 ||
        (rv = put_addr(w, &u->data)) != 0 ||
        (rv = put_str(w, u->region)) != 0 || (rv = put_str(w, u->tags)) != 0)
      return rv;
    break;
  case WR_SWIM_UPD_SUSPECT:
  case WR_SWIM_UPD_DEAD:
    if ((rv = put_str(w, u->from)) != 0) return rv;
    break;
  case WR_SWIM_UPD_USER:
    if ((rv = put_str(w, u->key)) != 0 ||
        (rv = wr_wbuf_u64(w, u->version)) != 0 ||
        (rv = wr_wbuf_u16(w, u->payload_len)) != 0 ||
        (rv = wr_wbuf_bytes(w, u->payload, u->payload_len)) != 0)
      return rv;
    break;
  default:
    break;
  }
  return 0;
}

wr_ssize wr_swim_update_encode(const wr_swim_update *u, uint8_t *dst,
                               size_t cap) {
  wr_wbuf w;
  if (!wr_swim_update_size(u)) return WR_ERR_INVAL;
  wr_wbuf_init(&w, dst, cap);
  int rv = put_update(&w, u);
  return rv ? rv : (wr_ssize)wr_wbuf_len(&w);
}

wr_ssize wr_swim_encode(const wr_swim_packet *p, uint8_t *dst, size_t cap) {
  wr_wbuf w;
  int rv;
  if (p->type < WR_SWIM_PING || p->type > WR_SWIM_MSG_TYPE_MAX ||
      !str_ok(p->from, WR_SWIM_ID_MAX) || !p->from[0] ||
      p->nupdates + p->nraw > WR_SWIM_UPDATES_MAX || (p->raw_len && !p->raw))
    return WR_ERR_INVAL;
  if ((p->type == WR_SWIM_PING || p->type == WR_SWIM_PING_REQ) &&
      !str_ok(p->target, WR_SWIM_ID_MAX))
    return WR_ERR_INVAL;
  if (p->type == WR_SWIM_PING_REQ && !p->target[0]) return WR_ERR_INVAL;
  if (p->type == WR_SWIM_PING_REQ && !addr_size(&p->target_addr))
    return WR_ERR_INVAL;
  for (size_t i = 0; i < p->nupdates; i++)
    if (!wr_swim_update_size(&p->updates[i])) return WR_ERR_INVAL;
  wr_wbuf_init(&w, dst, cap);
  if ((rv = wr_wbuf_u8(&w, WR_SWIM_WIRE_VERSION)) != 0 ||
      (rv = wr_wbuf_u8(&w, p->type)) != 0 ||
      (rv = wr_wbuf_u32(&w, p->seq)) != 0 || (rv = put_str(&w, p->from)) != 0)
    return rv;
  if (p->type == WR_SWIM_PING || p->type == WR_SWIM_PING_REQ)
    if ((rv = put_str(&w, p->target)) != 0) return rv;
  if (p->type == WR_SWIM_PING_REQ)
    if ((rv = put_addr(&w, &p->target_addr)) != 0) return rv;
  if ((rv = wr_wbuf_u8(&w, (uint8_t)(p->nupdates + p->nraw))) != 0) return rv;
  for (size_t i = 0; i < p->nupdates; i++)
    if ((rv = put_update(&w, &p->updates[i])) != 0) return rv;
  if ((rv = wr_wbuf_bytes(&w, p->raw, p->raw_len)) != 0) return rv;
  return (wr_ssize)wr_wbuf_len(&w);
}

static int get_str(wr_rbuf *b, char *out, size_t max, int allow_empty) {
  uint8_t n;
  const uint8_t *p;
  int rv = wr_rbuf_u8(b, &n);
  if (rv == 0) rv = n > max ? WR_ERR_PROTO : wr_rbuf_view(b, n, &p);
  if (rv != 0) return WR_ERR_PROTO;
  if (n == 0 && !allow_empty) return WR_ERR_PROTO;
  /* A NUL inside would make the C string shorter than the wire one. */
  if (memchr(p, 0, n)) return WR_ERR_PROTO;
  memcpy(out, p, n);
  out[n] = 0;
  return str_ok(out, max) ? 0 : WR_ERR_PROTO;
}

static int get_addr(wr_rbuf *b, wr_addr *a) {
  memset(a, 0, sizeof *a);
  if (wr_rbuf_u8(b, &a->family) != 0) return WR_ERR_PROTO;
  if (a->family != 4 && a->family != 6) return WR_ERR_PROTO;
  if (wr_rbuf_copy(b, a->ip, a->family == 4 ? 4 : 16) != 0 ||
      wr_rbuf_u16(b, &a->port) != 0)
    return WR_ERR_PROTO;
  return 0;
}

static int get_update(wr_rbuf *b, wr_swim_update *u) {
  memset(u, 0, sizeof *u);
  if (wr_rbuf_u8(b, &u->kind) != 0 ||
      get_str(b, u->id, WR_SWIM_ID_MAX, 0) != 0 ||
      wr_rbuf_u32(b, &u->incarnation) != 0)
    return WR_ERR_PROTO;
  switch (u->kind) {
  case WR_SWIM_UPD_ALIVE:
    if (get_addr(b, &u->gossip) != 0 || get_addr(b, &u->data) != 0 ||
        get_str(b, u->region, WR_SWIM_REGION_MAX, 1) != 0 ||
        get_str(b, u->tags, WR_SWIM_TAGS_MAX, 1) != 0)
      return WR_ERR_PROTO;
    return 0;
  case WR_SWIM_UPD_SUSPECT:
  case WR_SWIM_UPD_DEAD:
    return get_str(b, u->from, WR_SWIM_ID_MAX, 0);
  case WR_SWIM_UPD_LEFT:
    return 0;
  case WR_SWIM_UPD_USER:
    if (get_str(b, u->key, WR_SWIM_ID_MAX, 0) != 0 ||
        wr_rbuf_u64(b, &u->version) != 0 ||
        wr_rbuf_u16(b, &u->payload_len) != 0 ||
        u->payload_len > WR_SWIM_USER_MAX ||
        wr_rbuf_view(b, u->payload_len, &u->payload) != 0)
      return WR_ERR_PROTO;
    return 0;
  default:
    return WR_ERR_PROTO;
  }
}

wr_ssize wr_swim_update_decode(const uint8_t *buf, size_t len,
                               wr_swim_update *u) {
  wr_rbuf b;
  wr_rbuf_init(&b, buf, len);
  if (get_update(&b, u) != 0) return WR_ERR_PROTO;
  return (wr_ssize)(len - wr_rbuf_left(&b));
}

int wr_swim_decode(const uint8_t *buf, size_t len, wr_swim_packet *p) {
  wr_rbuf b;
  uint8_t version, n;
  if (len > WR_SWIM_PACKET_MAX) return WR_ERR_PROTO;
  wr_rbuf_init(&b, buf, len);
  if (wr_rbuf_u8(&b, &version) != 0) return WR_ERR_PROTO;
  if (version != WR_SWIM_WIRE_VERSION) return WR_ERR_VERSION;
  if (wr_rbuf_u8(&b, &p->type) != 0 || wr_rbuf_u32(&b, &p->seq) != 0 ||
      get_str(&b, p->from, WR_SWIM_ID_MAX, 0) != 0)
    return WR_ERR_PROTO;
  p->target[0] = 0;
  memset(&p->target_addr, 0, sizeof p->target_addr);
  switch (p->type) {
  case WR_SWIM_PING:
    if (get_str(&b, p->target, WR_SWIM_ID_MAX, 1) != 0) return WR_ERR_PROTO;
    break;
  case WR_SWIM_PING_REQ:
    if (get_str(&b, p->target, WR_SWIM_ID_MAX, 0) != 0 ||
        get_addr(&b, &p->target_addr) != 0)
      return WR_ERR_PROTO;
    break;
  case WR_SWIM_ACK:
  case WR_SWIM_NACK:
  case WR_SWIM_GOSSIP:
  case WR_SWIM_NACK_REFUSED:
    break;
  default:
    return WR_ERR_PROTO;
  }
  if (wr_rbuf_u8(&b, &n) != 0 || n > WR_SWIM_UPDATES_MAX) return WR_ERR_PROTO;
  p->nupdates = n;
  p->raw = NULL;
  p->raw_len = p->nraw = 0;
  for (size_t i = 0; i < n; i++)
    if (get_update(&b, &p->updates[i]) != 0) return WR_ERR_PROTO;
  /* Trailing bytes mean a peer we do not understand: refuse, don't guess. */
  return wr_rbuf_left(&b) == 0 ? 0 : WR_ERR_PROTO;
}
