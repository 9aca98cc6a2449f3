/*
 * The OPEN metadata of a node-to-node stream (forward.h, "The OPEN
 * metadata on the wire") over protobuf-c (proto/forward.proto).
 *
 * Decoding untrusted protobuf: the length is bounded first
 * (WR_FWD_OPEN_MAX_WIRE), and protobuf-c allocates only from an arena on
 * the stack: a bump allocator whose free does nothing, so whatever
 * protobuf-c does on hostile input, nothing leaks and nothing grows past
 * the arena (an allocation that does not fit fails the unpack, which is a
 * WR_ERR_PROTO).  Why 16 KiB: a good message is six strings, < 1.2 KiB
 * with protobuf-c's bookkeeping; 1 KiB of two-byte unknown fields would
 * need ~13 KiB (a 24-byte record each), so even that decodes, and no
 * input can make us use more.  The strings are then copied into fixed
 * fields, so no protobuf-c pointer outlives the call.
 */
#include <protobuf-c/protobuf-c.h>
#include <stdalign.h>
#include <string.h>

#include "forward.pb-c.h"
#include "warren/err.h"
#include "warren/forward.h"

#define ARENA 16384

typedef struct arena {
  alignas(16) uint8_t mem[ARENA];
  size_t used;
} arena;

static void *ar_alloc(void *ud, size_t size) {
  arena *a = ud;
  size_t n = (size + 15) & ~(size_t)15;
  if (n < size || n > ARENA - a->used) return NULL;
  void *p = a->mem + a->used;
  a->used += n;
  return p;
}

static void ar_free(void *ud, void *p) {
  (void)ud;
  (void)p;
}

static const char *nz(const char *s) { return s ? s : ""; }

wr_ssize wr_fwd_open_encode(const wr_fwd_open *m, uint8_t *dst, size_t cap) {
  wr_fwd_meta probe;
  Warren__ForwardOpen o = WARREN__FORWARD_OPEN__INIT;
  o.name = (char *)nz(m->name);
  o.hops = m->hops;
  o.request_id = (char *)nz(m->request_id);
  o.visitor_addr = (char *)nz(m->visitor_addr);
  o.scheme = (char *)nz(m->scheme);
  o.host = (char *)nz(m->host);
  if (strlen(o.name) >= sizeof probe.name ||
      strlen(o.host) >= sizeof probe.host ||
      strlen(o.request_id) >= sizeof probe.request_id ||
      strlen(o.visitor_addr) >= sizeof probe.visitor_addr ||
      strlen(o.scheme) >= sizeof probe.scheme)
    return WR_ERR_TOOBIG;
  size_t n = warren__forward_open__get_packed_size(&o);
  if (n > WR_FWD_OPEN_MAX_WIRE) return WR_ERR_TOOBIG;
  if (n > cap) return WR_ERR_NOBUF;
  if (warren__forward_open__pack(&o, dst) != n) return WR_ERR_INTERNAL;
  return (wr_ssize)n;
}

/* Copies a decoded string: it must fit and be printable ASCII. */
static int copy_str(char *dst, size_t cap, const char *src) {
  size_t n = strlen(nz(src));
  if (n >= cap) return WR_ERR_PROTO;
  for (size_t i = 0; i < n; i++)
    if ((uint8_t)src[i] < 0x20 || (uint8_t)src[i] > 0x7e) return WR_ERR_PROTO;
  memcpy(dst, nz(src), n);
  dst[n] = 0;
  return 0;
}

int wr_fwd_open_decode(const uint8_t *buf, size_t len, wr_fwd_meta *out) {
  arena a;
  ProtobufCAllocator al = {ar_alloc, ar_free, &a};
  Warren__ForwardOpen *o;
  int rv;
  memset(out, 0, sizeof *out);
  if (len > WR_FWD_OPEN_MAX_WIRE) return WR_ERR_PROTO;
  a.used = 0;
  o = warren__forward_open__unpack(&al, len, buf);
  if (!o) return WR_ERR_PROTO;
  out->hops = o->hops;
  if ((rv = copy_str(out->name, sizeof out->name, o->name)) != 0 ||
      (rv = copy_str(out->host, sizeof out->host, o->host)) != 0 ||
      (rv = copy_str(out->request_id, sizeof out->request_id,
                     o->request_id)) != 0 ||
      (rv = copy_str(out->visitor_addr, sizeof out->visitor_addr,
                     o->visitor_addr)) != 0 ||
      (rv = copy_str(out->scheme, sizeof out->scheme, o->scheme)) != 0)
    goto fail;
  if (!out->name[0]) {
    rv = WR_ERR_PROTO;
    goto fail;
  }
  /* The arena goes with the stack frame; free_unpacked is a no-op here. */
  return 0;
fail:
  memset(out, 0, sizeof *out);
  return rv;
}

void wr_fwd_meta_view(const wr_fwd_meta *mt, wr_fwd_open *view) {
  view->name = mt->name;
  view->host = mt->host;
  view->request_id = mt->request_id;
  view->visitor_addr = mt->visitor_addr;
  view->scheme = mt->scheme;
  view->hops = mt->hops;
}

wr_ssize wr_fwd_moved_encode(uint32_t sid, const char *owner, uint8_t *dst,
                             size_t cap) {
  Warren__ForwardMoved o = WARREN__FORWARD_MOVED__INIT;
  o.stream_id = sid;
  o.owner = (char *)nz(owner);
  if (!o.owner[0] || strlen(o.owner) >= WR_FWD_OWNER_MAX) return WR_ERR_TOOBIG;
  size_t n = warren__forward_moved__get_packed_size(&o);
  if (n > cap) return WR_ERR_NOBUF;
  if (warren__forward_moved__pack(&o, dst) != n) return WR_ERR_INTERNAL;
  return (wr_ssize)n;
}

int wr_fwd_moved_decode(const uint8_t *buf, size_t len, uint32_t *psid,
                        char owner[WR_FWD_OWNER_MAX]) {
  arena a;
  ProtobufCAllocator al = {ar_alloc, ar_free, &a};
  owner[0] = 0;
  if (len > WR_FWD_OPEN_MAX_WIRE) return WR_ERR_PROTO;
  a.used = 0;
  Warren__ForwardMoved *o = warren__forward_moved__unpack(&al, len, buf);
  if (!o) return WR_ERR_PROTO;
  if (copy_str(owner, WR_FWD_OWNER_MAX, o->owner) != 0 || !owner[0]) {
    owner[0] = 0;
    return WR_ERR_PROTO;
  }
  *psid = o->stream_id;
  return 0;
}
