/* The tracked protobuf-c allocator (see pbmem.h). */
#include "warren/pbmem.h"

#include <string.h>

void wr_pb_arena_init(wr_pb_arena *ar, const wr_mem *mem, size_t budget) {
  memset(ar, 0, sizeof *ar);
  ar->mem = mem;
  ar->budget = budget;
  ar->head.next = ar->head.prev = &ar->head;
}

void *wr_pb_alloc(void *arena, size_t size) {
  wr_pb_arena *ar = arena;
  if (size > ar->budget || ar->used + size > ar->budget) return NULL;
  wr_pb_hdr *h = wr_mem_malloc(ar->mem, sizeof *h + size);
  if (!h) {
    ar->oom = 1;
    return NULL;
  }
  ar->used += size;
  h->next = ar->head.next;
  h->prev = &ar->head;
  h->next->prev = h;
  ar->head.next = h;
  return h + 1;
}

void wr_pb_free(void *arena, void *p) {
  wr_pb_arena *ar = arena;
  if (!p) return;
  wr_pb_hdr *h = (wr_pb_hdr *)p - 1;
  h->prev->next = h->next;
  h->next->prev = h->prev;
  wr_mem_free(ar->mem, h);
}

void wr_pb_arena_free_all(wr_pb_arena *ar) {
  while (ar->head.next != &ar->head) wr_pb_free(ar, ar->head.next + 1);
}
