/*
 * warrenctl fault (tools/warrenctl/ctl_fault.c), the parts without I/O:
 * durations, the rule built from `fault add` / `fault partition` options
 * (exact JSON, every usage error), and the `fault list` text.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ctl.h"

static void test_duration(void **state) {
  (void)state;
  uint64_t ms;
  assert_int_equal(ctl_fault_duration("50ms", 60000, &ms), 0);
  assert_int_equal(ms, 50);
  assert_int_equal(ctl_fault_duration("3s", 60000, &ms), 0);
  assert_int_equal(ms, 3000);
  assert_int_equal(ctl_fault_duration("1.5s", 60000, &ms), 0);
  assert_int_equal(ms, 1500);
  assert_int_equal(ctl_fault_duration("1m", 60000, &ms), 0);
  assert_int_equal(ms, 60000);
  assert_int_equal(ctl_fault_duration("0ms", 60000, &ms), 0);
  assert_int_equal(ms, 0);
  const char *bad[] = {"3", "", "ms", "61s", "2m", "-1s", "1.5ms", "3 s",
                       "3sec", "nans", "infs", "1e400s"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    if (ctl_fault_duration(bad[i], 60000, &ms) == 0)
      fail_msg("accepted '%s'", bad[i]);
}

/* Runs the option parser; the compact JSON, or NULL (then |*rc| = 2). */
static char *rule(int partition, int *rc, ...) {
  char *argv[32];
  int argc = 0;
  va_list ap;
  va_start(ap, rc);
  for (char *a; (a = va_arg(ap, char *)) != NULL;) argv[argc++] = a;
  va_end(ap);
  json_t *j = ctl_fault_rule_args(argc, argv, partition, rc);
  if (!j) return NULL;
  char *s = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
  json_decref(j);
  return s;
}

static void test_add(void **state) {
  (void)state;
  int rc;
  char *s = rule(0, &rc, "--kind", "probe,ack", "--dir", "in", "--peers",
                 "n2,n3", "--drop", "0.1", "--delay", "50ms", "--jitter",
                 "20ms", "--dup", "0.05", "--after", "1s", "--for", "2m",
                 NULL);
  assert_non_null(s);
  assert_int_equal(rc, 0);
  assert_string_equal(s, "{\"after_ms\":1000,\"delay_ms\":50,\"dir\":\"in\","
                         "\"drop\":0.10000000000000001,\"dup\":"
                         "0.050000000000000003,\"for_ms\":120000,"
                         "\"jitter_ms\":20,\"kinds\":[\"probe\",\"ack\"],"
                         "\"peers\":[\"n2\",\"n3\"]}");
  free(s);
  s = rule(1, &rc, "n1,n2,n4", "--for", "30s", NULL);
  assert_non_null(s);
  assert_string_equal(s, "{\"dir\":\"both\",\"drop\":1.0,\"for_ms\":30000,"
                         "\"kinds\":\"all\",\"peers\":[\"n1\",\"n2\",\"n4\"]}");
  free(s);
}

static void test_add_errors(void **state) {
  (void)state;
  int rc = 0;
  /* Each one: exit 2, nothing built. */
  assert_null(rule(0, &rc, "--drop", "2", NULL));
  assert_int_equal(rc, 2);
  assert_null(rule(0, &rc, "--drop", "x", NULL));
  assert_null(rule(0, &rc, "--kind", "probe,zap", "--drop", "1", NULL));
  assert_null(rule(0, &rc, "--kind", "probe,", "--drop", "1", NULL));
  assert_null(rule(0, &rc, "--dir", "up", "--drop", "1", NULL));
  assert_null(rule(0, &rc, "--peers", "a b", "--drop", "1", NULL));
  assert_null(rule(0, &rc, "--delay", "50", NULL));
  assert_null(rule(0, &rc, "--delay", "61s", NULL));
  assert_null(rule(0, &rc, "--kind", "probe", NULL)); /* does nothing */
  assert_null(rule(0, &rc, "--drop", NULL));          /* no value */
  assert_null(rule(0, &rc, "--colour", "red", NULL));
  assert_null(rule(1, &rc, NULL));                    /* no ids */
  assert_null(rule(1, &rc, "--for", "3s", NULL));
  assert_null(rule(1, &rc, "n1", "--drop", "0.5", NULL));
  assert_int_equal(rc, 2);
}

static void test_list_text(void **state) {
  (void)state;
  const char *answer =
      "{\"seed\":42,\"rules\":[{\"id\":1,\"kinds\":[\"probe\",\"ack\"],"
      "\"dir\":\"in\",\"peers\":[\"n2\"],\"drop\":0.1,\"delay_ms\":50,"
      "\"jitter_ms\":20,\"dup\":0,\"after_ms\":0,\"for_ms\":0,"
      "\"active\":true}],\"enabled\":true,\"counters\":{\"probe\":"
      "{\"matched\":9,\"dropped\":1,\"delayed\":8,\"duplicated\":0}},"
      "\"held\":0,\"held_overflow\":0,\"rejected\":2,\"pauses\":1,"
      "\"paused_ms\":3000}";
  json_t *j = json_loads(answer, 0, NULL);
  char *buf = NULL;
  size_t len = 0;
  FILE *f = open_memstream(&buf, &len);
  assert_int_equal(ctl_fault_print_list(f, j), 0);
  fclose(f);
  assert_non_null(strstr(buf, "fault injection on, seed 42, 1 rule\n"));
  assert_non_null(strstr(buf, "1    probe,ack"));
  assert_non_null(strstr(buf, " in   n2 "));
  assert_non_null(strstr(buf, "50ms"));
  assert_non_null(strstr(buf, "always"));
  assert_non_null(strstr(buf, "yes\n"));
  assert_non_null(strstr(buf, "probe              9         1         8"));
  assert_non_null(strstr(buf, "rules rejected 2, pauses 1 (3000 ms)\n"));
  free(buf);
  json_decref(j);
  /* Wrong shapes print nothing and fail. */
  const char *bad[] = {"[]", "{\"rules\":[]}", "{\"seed\":1,\"rules\":{}}",
                       "{\"seed\":1,\"rules\":[1]}"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    j = json_loads(bad[i], 0, NULL);
    buf = NULL;
    f = open_memstream(&buf, &len);
    assert_int_equal(ctl_fault_print_list(f, j), -1);
    fclose(f);
    assert_int_equal(len, 0);
    free(buf);
    json_decref(j);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_duration),
      cmocka_unit_test(test_add),
      cmocka_unit_test(test_add_errors),
      cmocka_unit_test(test_list_text),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
