/* Unit tests for member tags (src/node/tags.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "tags.h"

static void test_value(void **state) {
  (void)state;
  char v[16];
  assert_int_equal(wr_tag_value("admin=1.2.3.4:9,re=7", "admin", v, sizeof v),
                   9);
  assert_string_equal(v, "1.2.3.4:9");
  assert_int_equal(wr_tag_value("admin=1.2.3.4:9,re=7", "re", v, sizeof v), 1);
  assert_string_equal(v, "7");
  /* Keys match whole: "re" is not "are" nor "region". */
  assert_int_equal(wr_tag_value("are=1,region=eu", "re", v, sizeof v), -1);
  assert_string_equal(v, "");
  assert_int_equal(wr_tag_value("", "re", v, sizeof v), -1);
  assert_int_equal(wr_tag_value(NULL, "re", v, sizeof v), -1);
  /* Truncated copy, full length. */
  assert_int_equal(wr_tag_value("k=0123456789abcdefXYZ", "k", v, sizeof v), 19);
  assert_int_equal(strlen(v), sizeof v - 1);
  assert_int_equal(wr_tag_value("a=,b=2", "a", v, sizeof v), 0);
}

static void test_u64(void **state) {
  (void)state;
  assert_int_equal(wr_tag_u64("admin=x,re=42", "re"), 42);
  assert_int_equal(wr_tag_u64("re=18446744073709551615", "re"),
                   UINT64_MAX);
  assert_int_equal(wr_tag_u64("re=", "re"), 0);
  assert_int_equal(wr_tag_u64("re=-1", "re"), 0);
  assert_int_equal(wr_tag_u64("re=12x", "re"), 0);
  assert_int_equal(wr_tag_u64("re=99999999999999999999999", "re"), 0);
  assert_int_equal(wr_tag_u64("x=1", "re"), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_value),
      cmocka_unit_test(test_u64),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
