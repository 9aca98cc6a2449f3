/*
 * A wr_mem that fails the k-th allocation (nghttp2's failmalloc).  Tests
 * run an operation with k = 1, 2, ... until it succeeds, and check that
 * every failure returned an error and (under ASan) leaked nothing.
 */
#ifndef WARREN_TEST_FAILMALLOC_H
#define WARREN_TEST_FAILMALLOC_H

#include "warren/types.h"

typedef struct failmalloc {
  wr_mem mem;
  long fail_at;   /* 1-based allocation number that fails; 0 = never */
  long count;     /* allocations attempted so far */
  long live;      /* allocations not yet freed */
} failmalloc;

void failmalloc_init(failmalloc *fm, long fail_at);

#endif
