#include <stdlib.h>

#include "warren/types.h"

static void *libc_malloc(size_t n, void *u) { (void)u; return malloc(n); }
static void libc_free(void *p, void *u) { (void)u; free(p); }
static void *libc_calloc(size_t m, size_t n, void *u) { (void)u; return calloc(m, n); }
static void *libc_realloc(void *p, size_t n, void *u) { (void)u; return realloc(p, n); }

static const wr_mem libc_mem = {NULL, libc_malloc, libc_free, libc_calloc,
                                libc_realloc};

const wr_mem *wr_mem_default(void) { return &libc_mem; }

void *wr_mem_malloc(const wr_mem *mem, size_t size) {
  if (!mem) mem = &libc_mem;
  return mem->malloc(size, mem->user_data);
}
void *wr_mem_calloc(const wr_mem *mem, size_t nmemb, size_t size) {
  if (!mem) mem = &libc_mem;
  return mem->calloc(nmemb, size, mem->user_data);
}
void *wr_mem_realloc(const wr_mem *mem, void *ptr, size_t size) {
  if (!mem) mem = &libc_mem;
  return mem->realloc(ptr, size, mem->user_data);
}
void wr_mem_free(const wr_mem *mem, void *ptr) {
  if (!mem) mem = &libc_mem;
  mem->free(ptr, mem->user_data);
}
