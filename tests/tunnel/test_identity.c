/* The client's identity key: created once (0600, directory 0700), the
 * same key on every later load, a clear error for a file that is not a
 * key (never overwritten), proofs bound to one handshake hash. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <sodium.h>

#include "warren/err.h"
#include "warren/identity.h"

static char dir[256];

static int setup(void **state) {
  (void)state;
  snprintf(dir, sizeof dir, "/tmp/warren-idtest-XXXXXX");
  return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state) {
  (void)state;
  char cmd[300];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  return system(cmd) == 0 ? 0 : -1;
}

static void test_create_then_load(void **state) {
  (void)state;
  char path[400], err[300] = "";
  snprintf(path, sizeof path, "%s/a/b/identity", dir);
  wr_identity a, b;
  assert_int_equal(wr_identity_load(&a, path, err, sizeof err), 0);
  struct stat st;
  assert_int_equal(stat(path, &st), 0);
  assert_int_equal(st.st_mode & 0777, 0600);
  char sub[400];
  snprintf(sub, sizeof sub, "%s/a/b", dir);
  assert_int_equal(stat(sub, &st), 0);
  assert_int_equal(st.st_mode & 0777, 0700);
  assert_int_equal(wr_identity_load(&b, path, err, sizeof err), 0);
  assert_memory_equal(a.pk, b.pk, 32);
  assert_memory_equal(a.sk, b.sk, 64);
  char acct_a[40], acct_b[40];
  wr_identity_account(a.pk, acct_a);
  wr_identity_account(b.pk, acct_b);
  assert_string_equal(acct_a, acct_b);
  assert_int_equal(strlen(acct_a), WR_IDENTITY_ACCOUNT_LEN);
  assert_memory_equal(acct_a, "key:", 4);
}

static void test_not_a_key(void **state) {
  (void)state;
  char path[400], err[300] = "";
  snprintf(path, sizeof path, "%s/garbage", dir);
  FILE *f = fopen(path, "w");
  fputs("hello\n", f);
  fclose(f);
  wr_identity a;
  assert_int_equal(wr_identity_load(&a, path, err, sizeof err), WR_ERR_INVAL);
  assert_non_null(strstr(err, "not a warren identity key"));
  assert_null(strchr(err, '\n'));
  f = fopen(path, "r");
  char buf[16] = "";
  assert_non_null(fgets(buf, sizeof buf, f));
  fclose(f);
  assert_string_equal(buf, "hello\n"); /* never overwritten */
  /* Truncated hex. */
  f = fopen(path, "w");
  fputs("warren-identity-v1 abcd\n", f);
  fclose(f);
  assert_int_equal(wr_identity_load(&a, path, err, sizeof err), WR_ERR_INVAL);
}

static void test_unwritable(void **state) {
  (void)state;
  char err[300] = "";
  wr_identity a;
  int rv = wr_identity_load(&a, "/proc/warren-no/identity", err, sizeof err);
  assert_int_equal(rv, WR_ERR_IO);
  assert_true(strlen(err) > 0);
}

static void test_proof(void **state) {
  (void)state;
  char path[400], err[300] = "";
  snprintf(path, sizeof path, "%s/p", dir);
  wr_identity a, b;
  assert_int_equal(wr_identity_load(&a, path, err, sizeof err), 0);
  snprintf(path, sizeof path, "%s/q", dir);
  assert_int_equal(wr_identity_load(&b, path, err, sizeof err), 0);
  uint8_t hh[32], sig[64];
  randombytes_buf(hh, sizeof hh);
  wr_identity_sign(&a, hh, sig);
  assert_int_equal(wr_identity_verify(a.pk, hh, sig), 0);
  assert_int_equal(wr_identity_verify(b.pk, hh, sig), WR_ERR_AUTH);
  hh[5] ^= 1;
  assert_int_equal(wr_identity_verify(a.pk, hh, sig), WR_ERR_AUTH);
  hh[5] ^= 1;
  sig[0] ^= 0x80;
  assert_int_equal(wr_identity_verify(a.pk, hh, sig), WR_ERR_AUTH);
}

static void test_path(void **state) {
  (void)state;
  char out[300];
  setenv("WARREN_IDENTITY", "/x/id", 1);
  assert_int_equal(wr_identity_path(out, sizeof out), 0);
  assert_string_equal(out, "/x/id");
  unsetenv("WARREN_IDENTITY");
  setenv("XDG_CONFIG_HOME", "/cfg", 1);
  assert_int_equal(wr_identity_path(out, sizeof out), 0);
  assert_string_equal(out, "/cfg/warren/identity");
  unsetenv("XDG_CONFIG_HOME");
  setenv("HOME", "/home/u", 1);
  assert_int_equal(wr_identity_path(out, sizeof out), 0);
  assert_string_equal(out, "/home/u/.config/warren/identity");
  unsetenv("HOME");
  assert_int_equal(wr_identity_path(out, sizeof out), WR_ERR_INVAL);
}

int main(void) {
  if (sodium_init() < 0) return 1;
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_create_then_load),
      cmocka_unit_test(test_not_a_key),
      cmocka_unit_test(test_unwritable),
      cmocka_unit_test(test_proof),
      cmocka_unit_test(test_path),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
