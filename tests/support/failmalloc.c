#include <stdlib.h>

#include "failmalloc.h"

static int should_fail(failmalloc *fm) {
  fm->count++;
  return fm->fail_at > 0 && fm->count == fm->fail_at;
}

static void *fm_malloc(size_t n, void *u) {
  failmalloc *fm = u;
  if (should_fail(fm)) return NULL;
  void *p = malloc(n);
  if (p) fm->live++;
  return p;
}
static void fm_free(void *p, void *u) {
  failmalloc *fm = u;
  if (p) fm->live--;
  free(p);
}
static void *fm_calloc(size_t m, size_t n, void *u) {
  failmalloc *fm = u;
  if (should_fail(fm)) return NULL;
  void *p = calloc(m, n);
  if (p) fm->live++;
  return p;
}
static void *fm_realloc(void *p, size_t n, void *u) {
  failmalloc *fm = u;
  if (should_fail(fm)) return NULL;
  void *q = realloc(p, n);
  if (q && !p) fm->live++;
  return q;
}

void failmalloc_init(failmalloc *fm, long fail_at) {
  fm->mem.user_data = fm;
  fm->mem.malloc = fm_malloc;
  fm->mem.free = fm_free;
  fm->mem.calloc = fm_calloc;
  fm->mem.realloc = fm_realloc;
  fm->fail_at = fail_at;
  fm->count = 0;
  fm->live = 0;
}
