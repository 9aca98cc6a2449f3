/*
 * Encoding of routes entries and sync records (proto/routes.proto).
 *
 * Decoding follows src/tunnel/control.c: a length bound before unpacking
 * (protobuf-c would otherwise allocate in proportion to its input), a
 * tracking allocator on the caller's wr_mem with a byte budget that also
 * frees anything left behind after *__free_unpacked, and a copy into the
 * fixed C struct, checked field by field, before the unpacked message is
 * freed.  Every check of the model lives in routes_entry_valid, so the
 * gossip path and the sync path refuse exactly the same entries.
 */
#include <protobuf-c/protobuf-c.h>
#include <string.h>

#include "routes.pb-c.h"
#include "routes_int.h"
#include "warren/err.h"
#include "warren/pbmem.h"

/* A record is at most WR_ROUTE_ENCODED_MAX bytes; protobuf-c needs one
 * message struct plus copies of three strings and one bytes field, so a
 * few KiB always suffice.  Unknown fields are kept by protobuf-c (24 bytes
 * plus a copy each): 512 bytes of two-byte unknowns is < 8 KiB. */
#define DECODE_BUDGET (16 * 1024)

/* Printable ASCII without spaces, 1..max bytes: ids and accounts end up
 * in logs, JSON and metrics labels, so nothing there may need escaping. */
int routes_text_ok(const char *s, size_t max) {
  size_t n;
  if (!s) return 0;
  for (n = 0; s[n]; n++) {
    if (n >= max) return 0;
    if ((unsigned char)s[n] <= 0x20 || (unsigned char)s[n] >= 0x7f) return 0;
  }
  return n > 0;
}

int wr_route_name_ok(const char *name) {
  size_t n;
  if (!name) return 0;
  for (n = 0; name[n]; n++) {
    char c = name[n];
    if (n >= WR_ROUTE_NAME_MAX) return 0;
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-'))
      return 0;
  }
  return n > 0 && name[0] != '-' && name[n - 1] != '-';
}

int routes_entry_valid(const wr_route_entry *e) {
  if (!wr_route_name_ok(e->name)) return 0;
  if (!routes_text_ok(e->owner, WR_ROUTE_OWNER_MAX)) return 0;
  if (!routes_text_ok(e->account, WR_ROUTE_ACCOUNT_MAX)) return 0;
  if (e->state != WR_ROUTE_ACTIVE && e->state != WR_ROUTE_RELEASED) return 0;
  /* Zero is "unset" in proto3, and every writer starts at 1. */
  if (e->epoch == 0 || e->seq == 0 || e->version == 0 || e->claimed_at == 0)
    return 0;
  if (e->epoch > WR_ROUTE_VERSION_MAX || e->seq > WR_ROUTE_VERSION_MAX ||
      e->version > WR_ROUTE_VERSION_MAX || e->claimed_at > e->version)
    return 0;
  return 1;
}

static int copy_str(char *dst, size_t cap, const char *src) {
  size_t n = src ? strlen(src) : 0;
  if (n >= cap) return WR_ERR_PROTO;
  if (n) memcpy(dst, src, n);
  dst[n] = '\0';
  return 0;
}

static int from_pb(const Warren__RouteEntry *p, wr_route_entry *e) {
  memset(e, 0, sizeof *e);
  if (copy_str(e->name, sizeof e->name, p->name) ||
      copy_str(e->owner, sizeof e->owner, p->owner) ||
      copy_str(e->account, sizeof e->account, p->account))
    return WR_ERR_PROTO;
  if (p->session.len != WR_ROUTE_SESSION_LEN || p->end != 1)
    return WR_ERR_PROTO;
  memcpy(e->session, p->session.data, WR_ROUTE_SESSION_LEN);
  if (p->state > WR_ROUTE_RELEASED) return WR_ERR_PROTO;
  e->state = (wr_route_state)p->state;
  e->epoch = p->epoch;
  e->seq = p->seq;
  e->version = p->version;
  e->claimed_at = p->claimed_at;
  e->options = p->options;
  return routes_entry_valid(e) ? 0 : WR_ERR_PROTO;
}

/* Fills |p| with views into |e| (valid while |e| is). */
static int to_pb(const wr_route_entry *e, Warren__RouteEntry *p) {
  if (!memchr(e->name, 0, sizeof e->name) ||
      !memchr(e->owner, 0, sizeof e->owner) ||
      !memchr(e->account, 0, sizeof e->account) || !routes_entry_valid(e))
    return WR_ERR_INVAL;
  p->name = (char *)e->name;
  p->owner = (char *)e->owner;
  p->account = (char *)e->account;
  p->session.data = (uint8_t *)e->session;
  p->session.len = WR_ROUTE_SESSION_LEN;
  p->epoch = e->epoch;
  p->seq = e->seq;
  p->version = e->version;
  p->claimed_at = e->claimed_at;
  p->state = (uint32_t)e->state;
  p->options = e->options;
  p->end = 1;
  return 0;
}

wr_ssize wr_route_entry_encode(const wr_route_entry *e, uint8_t *dst,
                               size_t cap) {
  Warren__RouteEntry p = WARREN__ROUTE_ENTRY__INIT;
  size_t n;
  int rv = to_pb(e, &p);
  if (rv != 0) return rv;
  n = warren__route_entry__get_packed_size(&p);
  if (n > WR_ROUTE_ENCODED_MAX) return WR_ERR_INTERNAL; /* bounds say no */
  if (n > cap) return WR_ERR_NOBUF;
  if (warren__route_entry__pack(&p, dst) != n) return WR_ERR_INTERNAL;
  return (wr_ssize)n;
}

wr_ssize routes_encode_entry_record(const wr_route_entry *e, uint8_t *dst,
                                    size_t cap) {
  Warren__RouteSyncRecord r = WARREN__ROUTE_SYNC_RECORD__INIT;
  Warren__RouteEntry p = WARREN__ROUTE_ENTRY__INIT;
  size_t n;
  int rv = to_pb(e, &p);
  if (rv != 0) return rv;
  r.rec_case = WARREN__ROUTE_SYNC_RECORD__REC_ENTRY;
  r.entry = &p;
  n = warren__route_sync_record__get_packed_size(&r);
  if (n > WR_ROUTE_ENCODED_MAX) return WR_ERR_INTERNAL;
  if (n > cap) return WR_ERR_NOBUF;
  if (warren__route_sync_record__pack(&r, dst) != n) return WR_ERR_INTERNAL;
  return (wr_ssize)n;
}

wr_ssize routes_encode_mark(const rt_mark *m, uint8_t *dst, size_t cap) {
  Warren__RouteSyncRecord r = WARREN__ROUTE_SYNC_RECORD__INIT;
  Warren__OwnerMark p = WARREN__OWNER_MARK__INIT;
  size_t n;
  if (!memchr(m->owner, 0, sizeof m->owner)) return WR_ERR_INVAL;
  p.owner = (char *)m->owner;
  p.epoch = m->epoch;
  p.watermark = m->watermark;
  p.collected = m->collected ? 1 : 0;
  p.full = m->full ? 1 : 0;
  p.floor = m->floor;
  p.end = 1;
  r.rec_case = WARREN__ROUTE_SYNC_RECORD__REC_MARK;
  r.mark = &p;
  n = warren__route_sync_record__get_packed_size(&r);
  if (n > WR_ROUTE_ENCODED_MAX) return WR_ERR_INTERNAL;
  if (n > cap) return WR_ERR_NOBUF;
  if (warren__route_sync_record__pack(&r, dst) != n) return WR_ERR_INTERNAL;
  return (wr_ssize)n;
}

int routes_decode_entry_mem(const uint8_t *buf, size_t len, wr_route_entry *e,
                            const wr_mem *mem) {
  wr_pb_arena t;
  wr_pb_arena_init(&t, mem, DECODE_BUDGET);
  ProtobufCAllocator a = {wr_pb_alloc, wr_pb_free, &t};
  Warren__RouteEntry *p;
  int rv;
  memset(e, 0, sizeof *e);
  if (len > WR_ROUTE_ENCODED_MAX) return WR_ERR_PROTO;
  p = warren__route_entry__unpack(&a, len, buf);
  if (!p) {
    wr_pb_arena_free_all(&t);
    return t.oom ? WR_ERR_NOMEM : WR_ERR_PROTO;
  }
  rv = from_pb(p, e);
  warren__route_entry__free_unpacked(p, &a);
  wr_pb_arena_free_all(&t);
  if (rv != 0) memset(e, 0, sizeof *e);
  return rv;
}

int wr_route_entry_decode(const uint8_t *buf, size_t len, wr_route_entry *e) {
  return routes_decode_entry_mem(buf, len, e, NULL);
}

int routes_decode_record(const uint8_t *buf, size_t len, int *kind,
                         wr_route_entry *e, rt_mark *m, const wr_mem *mem) {
  wr_pb_arena t;
  wr_pb_arena_init(&t, mem, DECODE_BUDGET);
  ProtobufCAllocator a = {wr_pb_alloc, wr_pb_free, &t};
  Warren__RouteSyncRecord *r;
  int rv = WR_ERR_PROTO;
  *kind = 0;
  if (len > WR_ROUTE_ENCODED_MAX) return WR_ERR_PROTO;
  r = warren__route_sync_record__unpack(&a, len, buf);
  if (!r) {
    wr_pb_arena_free_all(&t);
    return t.oom ? WR_ERR_NOMEM : WR_ERR_PROTO;
  }
  switch (r->rec_case) {
  case WARREN__ROUTE_SYNC_RECORD__REC_ENTRY:
    rv = from_pb(r->entry, e);
    *kind = 2;
    break;
  case WARREN__ROUTE_SYNC_RECORD__REC_MARK:
    memset(m, 0, sizeof *m);
    rv = copy_str(m->owner, sizeof m->owner, r->mark->owner);
    m->epoch = r->mark->epoch;
    m->watermark = r->mark->watermark;
    m->collected = r->mark->collected != 0;
    m->full = r->mark->full != 0;
    m->floor = r->mark->floor;
    if (rv == 0 && (r->mark->end != 1 || !routes_text_ok(m->owner, WR_ROUTE_OWNER_MAX) ||
                    m->epoch == 0 || m->epoch > WR_ROUTE_VERSION_MAX ||
                    m->watermark > WR_ROUTE_VERSION_MAX ||
                    m->floor > WR_ROUTE_VERSION_MAX))
      rv = WR_ERR_PROTO;
    *kind = 1;
    break;
  default:
    rv = WR_ERR_PROTO; /* empty, or an arm from a later version */
  }
  warren__route_sync_record__free_unpacked(r, &a);
  wr_pb_arena_free_all(&t);
  if (rv != 0) *kind = 0;
  return rv;
}
