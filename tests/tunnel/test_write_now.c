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

/*
 * The partial-write cases one by one, over a socket pair whose send
 * buffer is made small (SO_SNDBUF), with the queue each case needs:
 *   1. a cut exactly between two buffers: 2,000 one-byte buffers; a
 *      single writev takes at most IOV_MAX (1,024) of them, so the try
 *      writes 1,024 bytes and the skip must land on a buffer boundary;
 *   2. a cut inside a buffer: [100, 1 MiB, 100] on an empty socket;
 *   3. a write while 2's rest is still queued: uv_try_write refuses
 *      (UV_EAGAIN), the whole buffer is queued behind, order is kept;
 *   4. once all is drained, a small write goes out whole: 1, no callback.
 * The reader must get the bytes of 1, 2, 3, 4 in that order, and each
 * call that returned 0 gets exactly one callback, with status 0.
 */
#define ONES 2000
static uv_loop_t *cl_loop;
static size_t cl_want; /* bytes the reader waits for before returning */

static void run_until(int cbs) {
  for (int turns = 0; turns < 100000 && (ngot < cl_want || callbacks < cbs);
       turns++)
    uv_run(cl_loop, UV_RUN_ONCE);
}

static void test_write_now_cases(void **state) {
  (void)state;
  int sv[2];
  assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
  int small = 4096;
  assert_int_equal(
      setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof small), 0);
  uv_loop_t loop;
  uv_loop_init(&loop);
  cl_loop = &loop;
  uv_pipe_t a, b;
  uv_pipe_init(&loop, &a, 0);
  uv_pipe_init(&loop, &b, 0);
  assert_int_equal(uv_pipe_open(&a, sv[0]), 0);
  assert_int_equal(uv_pipe_open(&b, sv[1]), 0);
  uv_stream_t *as = (uv_stream_t *)&a;
  const size_t total = ONES + 100 + (1u << 20) + 100 + 50 + 10;
  want = malloc(total);
  got = malloc(BIG + 1);
  for (size_t i = 0; i < total; i++) want[i] = (uint8_t)(i * 2654435761u >> 24);
  ngot = 0;
  callbacks = 0;
  cb_status = -1;
  uv_read_start((uv_stream_t *)&b, on_alloc, on_read);

  /* 1: the cut between two one-byte buffers. */
  static uv_buf_t ones[ONES];
  for (size_t i = 0; i < ONES; i++)
    ones[i] = uv_buf_init((char *)want + i, 1);
  uv_write_t r1, r2, r3, r4;
  assert_int_equal(wr_uv_write_now(&r1, as, ones, ONES, on_write), 0);
  /* (uv_write itself writes what the socket takes before queueing, so
   * the queue size says nothing here; the bytes the reader gets do.) */
  cl_want = ONES;
  run_until(1);
  assert_int_equal(callbacks, 1);
  assert_int_equal(cb_status, 0);
  assert_int_equal(ngot, ONES);
  assert_int_equal(uv_stream_get_write_queue_size(as), 0);

  /* 2: the cut inside the big buffer (all of the first went out). */
  size_t off = ONES;
  uv_buf_t three[3] = {uv_buf_init((char *)want + off, 100),
                       uv_buf_init((char *)want + off + 100, 1u << 20),
                       uv_buf_init((char *)want + off + 100 + (1u << 20),
                                   100)};
  assert_int_equal(wr_uv_write_now(&r2, as, three, 3, on_write), 0);
  size_t q = uv_stream_get_write_queue_size(as);
  assert_true(q > 100 && q < (1u << 20) + 100);
  off += 100 + (1u << 20) + 100;

  /* 3: behind the queued rest: nothing is tried, all of it queued. */
  uv_buf_t behind = uv_buf_init((char *)want + off, 50);
  assert_int_equal(wr_uv_write_now(&r3, as, &behind, 1, on_write), 0);
  assert_int_equal(uv_stream_get_write_queue_size(as), q + 50);
  off += 50;
  assert_int_equal(callbacks, 1);
  cl_want = off;
  run_until(3);
  assert_int_equal(callbacks, 3);
  assert_int_equal(cb_status, 0);
  assert_int_equal(ngot, off);

  /* 4: drained: whole at once, no callback. */
  uv_buf_t last = uv_buf_init((char *)want + off, 10);
  assert_int_equal(wr_uv_write_now(&r4, as, &last, 1, on_write), 1);
  off += 10;
  assert_int_equal(off, total);
  cl_want = total;
  run_until(3);
  assert_int_equal(callbacks, 3);
  assert_int_equal(ngot, total);
  assert_memory_equal(got, want, total);

  uv_close((uv_handle_t *)&a, NULL);
  uv_close((uv_handle_t *)&b, NULL);
  uv_run(&loop, UV_RUN_DEFAULT);
  assert_int_equal(uv_loop_close(&loop), 0);
  free(want);
  free(got);
}

/* wr_uv_try_write_all, the half callers use to allocate a write request
 * only when something is left: whole (1, the array untouched); cut inside
 * a buffer (0, the view moved to the first byte not taken, which is what
 * the reader has not got); behind a queued write (0, nothing taken, the
 * view unchanged).  What is left, queued with uv_write, arrives in order. */
static void test_try_write_all(void **state) {
  (void)state;
  int sv[2];
  assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
  int small = 4096;
  assert_int_equal(
      setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof small), 0);
  uv_loop_t loop;
  uv_loop_init(&loop);
  cl_loop = &loop;
  uv_pipe_t a, b;
  uv_pipe_init(&loop, &a, 0);
  uv_pipe_init(&loop, &b, 0);
  assert_int_equal(uv_pipe_open(&a, sv[0]), 0);
  assert_int_equal(uv_pipe_open(&b, sv[1]), 0);
  uv_stream_t *as = (uv_stream_t *)&a;
  const size_t total = 10 + 100 + (1u << 20) + 100 + 20;
  want = malloc(total);
  got = malloc(BIG + 1);
  for (size_t i = 0; i < total; i++) want[i] = (uint8_t)(i * 2654435761u >> 24);
  ngot = 0;
  callbacks = 0;
  cb_status = -1;

  /* Whole. */
  uv_buf_t first = uv_buf_init((char *)want, 10), *fp = &first;
  unsigned fn = 1;
  assert_int_equal(wr_uv_try_write_all(as, &fp, &fn), 1);

  /* Cut inside the big buffer. */
  uv_buf_t three[3] = {uv_buf_init((char *)want + 10, 100),
                       uv_buf_init((char *)want + 110, 1u << 20),
                       uv_buf_init((char *)want + 110 + (1u << 20), 100)};
  uv_buf_t *tp = three;
  unsigned tn = 3;
  assert_int_equal(wr_uv_try_write_all(as, &tp, &tn), 0);
  assert_ptr_equal(tp, &three[1]);
  assert_int_equal(tn, 2);
  size_t taken = (size_t)(tp[0].base - (char *)want);
  assert_true(taken > 110 && taken < 110 + (1u << 20));
  assert_int_equal(tp[0].len, 110 + (1u << 20) - taken);
  uv_write_t r1, r2;
  assert_int_equal(uv_write(&r1, as, tp, tn, on_write), 0);

  /* Behind the queued rest: nothing taken. */
  size_t off = 10 + 100 + (1u << 20) + 100;
  uv_buf_t last = uv_buf_init((char *)want + off, 20), *lp = &last;
  unsigned ln = 1;
  assert_int_equal(wr_uv_try_write_all(as, &lp, &ln), 0);
  assert_ptr_equal(lp, &last);
  assert_int_equal(ln, 1);
  assert_int_equal(last.len, 20);
  assert_int_equal(uv_write(&r2, as, lp, ln, on_write), 0);

  uv_read_start((uv_stream_t *)&b, on_alloc, on_read);
  cl_want = total;
  run_until(2);
  assert_int_equal(callbacks, 2);
  assert_int_equal(cb_status, 0);
  assert_int_equal(ngot, total);
  assert_memory_equal(got, want, total);

  uv_close((uv_handle_t *)&a, NULL);
  uv_close((uv_handle_t *)&b, NULL);
  uv_run(&loop, UV_RUN_DEFAULT);
  assert_int_equal(uv_loop_close(&loop), 0);
  free(want);
  free(got);
}

int main(void) {
  const struct CMUnitTest tests[] = {cmocka_unit_test(test_write_now),
                                     cmocka_unit_test(test_write_now_cases),
                                     cmocka_unit_test(test_try_write_all)};
  return cmocka_run_group_tests(tests, NULL, NULL);
}
