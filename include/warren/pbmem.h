/*
 * A bounded, tracked allocator for protobuf-c unpacking (STYLE.md:
 * "protobuf-c unpacks come after a length check, use a wr_mem-backed
 * ProtobufCAllocator, and always pair with *__free_unpacked").  Every
 * allocation of one unpack is linked in the arena, so whatever protobuf-c
 * leaves behind on a failed unpack is freed by wr_pb_arena_free_all, and
 * the bytes one message may cost are capped by |budget|, whatever its
 * wire says (repeated unknown fields cost more than their bytes).
 *
 *   wr_pb_arena ar;
 *   wr_pb_arena_init(&ar, mem, 16 * 1024);
 *   ProtobufCAllocator a = {wr_pb_alloc, wr_pb_free, &ar};
 *   Msg *m = msg__unpack(&a, len, buf);
 *   if (!m) { wr_pb_arena_free_all(&ar); return ar.oom ? NOMEM : PROTO; }
 *   ... msg__free_unpacked(m, &a); wr_pb_arena_free_all(&ar);
 *
 * No protobuf-c types here: the two functions have ProtobufCAllocator's
 * signatures, so this header serves every module.
 */
#ifndef WARREN_PBMEM_H
#define WARREN_PBMEM_H

#include "warren/types.h"

typedef struct wr_pb_hdr {
  struct wr_pb_hdr *next, *prev;
} wr_pb_hdr;

typedef struct wr_pb_arena {
  const wr_mem *mem;
  wr_pb_hdr head; /* circular list of live allocations */
  size_t used, budget;
  int oom; /* the wr_mem failed (not the budget) */
} wr_pb_arena;

void wr_pb_arena_init(wr_pb_arena *ar, const wr_mem *mem, size_t budget);
void *wr_pb_alloc(void *arena, size_t size);
void wr_pb_free(void *arena, void *p);
/* Frees everything still allocated (after free_unpacked: nothing). */
void wr_pb_arena_free_all(wr_pb_arena *ar);

#endif
