/* Unit tests for LISTEN_FDS parsing (src/node/listenfds.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "listenfds.h"

static int find(const char *fds, const char *pid, const char *names,
                int *fd, char *err) {
  *fd = -1;
  err[0] = 0;
  return wr_listen_fds_find(fds, pid, names, 4242, "http", fd, err, 200);
}

static void test_found(void **state) {
  (void)state;
  int fd;
  char err[200];
  assert_int_equal(find("1", NULL, NULL, &fd, err), 1);
  assert_int_equal(fd, 3);
  assert_int_equal(find("1", "4242", NULL, &fd, err), 1);
  assert_int_equal(find("2", "4242", "admin:http", &fd, err), 1);
  assert_int_equal(fd, 4);
  assert_int_equal(find("3", NULL, "http:x:y", &fd, err), 1);
  assert_int_equal(fd, 3);
  /* One socket with another name (systemd's "unknown" default). */
  assert_int_equal(find("1", NULL, "unknown", &fd, err), 1);
  assert_int_equal(fd, 3);
}

static void test_not_ours(void **state) {
  (void)state;
  int fd;
  char err[200];
  assert_int_equal(find(NULL, NULL, NULL, &fd, err), 0);
  assert_int_equal(find(NULL, "4242", "http", &fd, err), 0);
  assert_int_equal(find("1", "4243", NULL, &fd, err), 0);
  assert_int_equal(fd, -1);
}

static void test_malformed(void **state) {
  (void)state;
  int fd;
  char err[200];
  const char *bad[][3] = {
      {"0", NULL, NULL},      {"", NULL, NULL},       {"-1", NULL, NULL},
      {"1x", NULL, NULL},     {" 1", NULL, NULL},     {"17", NULL, NULL},
      {"99999999999999999999", NULL, NULL},           {"1", "abc", NULL},
      {"1", "0", NULL},       {"1", "", NULL},        {"2", NULL, NULL},
      {"2", NULL, "http"},    {"2", NULL, "a:b:c"},   {"2", NULL, "a:b"},
      {"2", NULL, "http:http"}, {"1", NULL, "http:"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    assert_int_equal(find(bad[i][0], bad[i][1], bad[i][2], &fd, err), -1);
    assert_true(strlen(err) > 0);
    assert_int_equal(fd, -1);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_found),
      cmocka_unit_test(test_not_ours),
      cmocka_unit_test(test_malformed),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
