/* The stream-data buffer pool (wr_link_buf_new / wr_link_buf_free in
 * src/tunnel/tunnel_uv.c): every size gets at least what it asked for
 * (ASan sees an overrun when a class is too small), a returned buffer of a
 * class is the next one handed out (LIFO, the point of the pool), classes
 * do not mix, and the pool keeps at most 1 MiB: 64 full-size buffers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "warren/link.h"

static void test_sizes(void **state) {
  (void)state;
  static const size_t sizes[] = {1,    100,  1024, 1025, 2048, 2049,
                                 4096, 4097, 8192, 8193, 16375, 16384,
                                 16385, 65536};
  for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
    uint8_t *b = wr_link_buf_new(sizes[i]);
    assert_non_null(b);
    memset(b, 0xa5, sizes[i]);
    assert_int_equal(b[sizes[i] - 1], 0xa5);
    wr_link_buf_free(b);
  }
  wr_link_buf_free(NULL);
}

static void test_reuse(void **state) {
  (void)state;
  /* A 16 KiB buffer comes back for the next full-record request. */
  uint8_t *a = wr_link_buf_new(16375);
  wr_link_buf_free(a);
  uint8_t *b = wr_link_buf_new(9000);
  assert_ptr_equal(a, b);
  /* Another class does not take it. */
  wr_link_buf_free(b);
  uint8_t *c = wr_link_buf_new(3000);
  assert_ptr_not_equal(c, a);
  uint8_t *d = wr_link_buf_new(16384);
  assert_ptr_equal(d, a);
  wr_link_buf_free(d);
  wr_link_buf_free(c);
  /* Small pieces are plain malloc: never pooled, so never handed out
   * as a class buffer. */
  uint8_t *s = wr_link_buf_new(500);
  wr_link_buf_free(s);
  uint8_t *e = wr_link_buf_new(16384);
  assert_ptr_equal(e, a);
  wr_link_buf_free(e);
}

#define N 100
static void test_cap(void **state) {
  (void)state;
  /* Runs first: the pool starts empty, so all 1 MiB is for this class. */
  uint8_t *bufs[N], *again[N];
  for (int i = 0; i < N; i++)
    assert_non_null(bufs[i] = wr_link_buf_new(16384));
  for (int i = 0; i < N; i++) wr_link_buf_free(bufs[i]);
  /* LIFO: the pooled ones come back in reverse order of their return;
   * only the first 64 returned were kept (1 MiB), so exactly
   * bufs[63], bufs[62], ..., bufs[0] come out first. */
  for (int i = 0; i < N; i++)
    assert_non_null(again[i] = wr_link_buf_new(16384));
  for (int i = 0; i < 64; i++) assert_ptr_equal(again[i], bufs[63 - i]);
  for (int i = 0; i < N; i++) wr_link_buf_free(again[i]);
}

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
/* Under ASan a pooled buffer is poisoned (a use after free is caught),
 * and handed out again unpoisoned. */
static void test_poison(void **state) {
  (void)state;
  uint8_t *a = wr_link_buf_new(16384);
  wr_link_buf_free(a);
  assert_true(__asan_address_is_poisoned(a));
  assert_true(__asan_address_is_poisoned(a + 16383));
  uint8_t *b = wr_link_buf_new(16384);
  assert_ptr_equal(a, b);
  assert_false(__asan_address_is_poisoned(b));
  assert_false(__asan_address_is_poisoned(b + 16383));
  wr_link_buf_free(b);
}
#endif

int main(void) {
  const struct CMUnitTest tests[] = {
      /* First, while the process's pool is still empty. */
      cmocka_unit_test(test_cap),
      cmocka_unit_test(test_sizes),
      cmocka_unit_test(test_reuse),
#if defined(__SANITIZE_ADDRESS__)
      cmocka_unit_test(test_poison),
#endif
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
