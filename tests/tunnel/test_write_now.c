/* wr_uv_write_now over a real socket pair: a small write goes out whole
 * at once (1, no callback); one larger than the socket buffers is
 * written in part and the rest queued (0, one callback), and the reader
 * gets every byte in order, also when the bytes come in several buffers
 * and the cut falls inside one of them. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <cmocka.h>
#include <uv.h>

#include "warren/link.h"

#define BIG (8u << 20)

static uint8_t *want, *got;
static size_t ngot;
static int callbacks, cb_status;

static void on_write(uv_write_t *req, int status) {
  (void)req;
  callbacks++;
  cb_status = status;
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf) {
  (void)h;
  (void)hint;
  *buf = uv_buf_init((char *)got + ngot, (unsigned)(BIG + 1 - ngot));
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf) {
  (void)buf;
  if (n > 0) ngot += (size_t)n;
  if (n < 0 || ngot >= BIG) uv_read_stop(s);
}

static void test_write_now(void **state) {
  (void)state;
  int sv[2];
  assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
  uv_loop_t loop;
  uv_loop_init(&loop);
  uv_pipe_t a, b;
  uv_pipe_init(&loop, &a, 0);
  uv_pipe_init(&loop, &b, 0);
  assert_int_equal(uv_pipe_open(&a, sv[0]), 0);
  assert_int_equal(uv_pipe_open(&b, sv[1]), 0);
  want = malloc(BIG);
  got = malloc(BIG + 1);
  for (size_t i = 0; i < BIG; i++) want[i] = (uint8_t)(i * 2654435761u >> 24);

  /* Small: whole at once. */
  uv_write_t req;
  uv_buf_t small = uv_buf_init((char *)want, 100);
  assert_int_equal(wr_uv_write_now(&req, (uv_stream_t *)&a, &small, 1,
                                   on_write), 1);
  /* Large, in three buffers: part now, the rest queued. */
  uv_buf_t bufs[3] = {uv_buf_init((char *)want + 100, 1000),
                      uv_buf_init((char *)want + 1100, BIG / 2),
                      uv_buf_init((char *)want + 1100 + BIG / 2,
                                  BIG - 1100 - BIG / 2)};
  assert_int_equal(wr_uv_write_now(&req, (uv_stream_t *)&a, bufs, 3,
                                   on_write), 0);
  assert_int_equal(callbacks, 0);
  uv_read_start((uv_stream_t *)&b, on_alloc, on_read);
  for (int turns = 0; turns < 100000 && (ngot < BIG || !callbacks); turns++)
    uv_run(&loop, UV_RUN_ONCE);
  assert_int_equal(callbacks, 1);
  assert_int_equal(cb_status, 0);
  assert_int_equal(ngot, BIG);
  assert_memory_equal(got, want, BIG);

  uv_close((uv_handle_t *)&a, NULL);
  uv_close((uv_handle_t *)&b, NULL);
  uv_run(&loop, UV_RUN_DEFAULT);
  uv_loop_close(&loop);
  free(want);
  free(got);
}

int main(void) {
  const struct CMUnitTest tests[] = {cmocka_unit_test(test_write_now)};
  return cmocka_run_group_tests(tests, NULL, NULL);
}
