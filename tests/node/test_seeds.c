/* Unit tests for --join seed lists. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "seeds.h"

static void test_host_port_lists(void **state) {
  (void)state;
  wr_seed_list l;
  char err[200];
  assert_int_equal(wr_seeds_parse("127.0.0.2:7946, [::1]:7000,seed-1.mesh:80",
                                  &l, err, sizeof err),
                   0);
  assert_int_equal(l.dns, 0);
  assert_int_equal(l.n, 3);
  assert_string_equal(l.seeds[0].host, "127.0.0.2");
  assert_int_equal(l.seeds[0].port, 7946);
  assert_true(l.seeds[0].is_ip);
  assert_string_equal(l.seeds[1].host, "::1");
  assert_int_equal(l.seeds[1].port, 7000);
  assert_true(l.seeds[1].is_ip);
  assert_string_equal(l.seeds[2].host, "seed-1.mesh");
  assert_false(l.seeds[2].is_ip);
}

static void test_dns_form(void **state) {
  (void)state;
  wr_seed_list l;
  char err[200];
  assert_int_equal(
      wr_seeds_parse("dns:warren.default.svc.cluster.local:7946", &l, err,
                     sizeof err),
      0);
  assert_int_equal(l.dns, 1);
  assert_int_equal(l.n, 1);
  assert_string_equal(l.seeds[0].host, "warren.default.svc.cluster.local");
  assert_int_equal(l.seeds[0].port, 7946);
  assert_int_equal(wr_seeds_parse("dns:10.0.0.1:7946", &l, err, sizeof err),
                   -1);
  assert_non_null(strstr(err, "drop the dns: prefix"));
}

static void test_rejections(void **state) {
  (void)state;
  wr_seed_list l;
  char err[200];
  static const char *bad[] = {
      "",           "127.0.0.1",     "127.0.0.1:0",    "127.0.0.1:65536",
      "a:b:c",      "::1:80",        "[127.0.0.1]:80", "[::1]80",
      "host_x:80",  "-bad.host:80",  "a..b:80",        "x.-y:80",
      "127.0.0.1:80,", ",127.0.0.1:80", "h:12345678",  "dns:",
      "h: 80",
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    err[0] = 0;
    if (wr_seeds_parse(bad[i], &l, err, sizeof err) != -1)
      fail_msg("accepted '%s'", bad[i]);
    assert_true(strlen(err) > 0);
    assert_null(strchr(err, '\n'));
  }
  /* 64 seeds fit, 65 do not. */
  char many[65 * 16] = "";
  for (int i = 0; i < 64; i++)
    strcat(many, i ? ",10.0.0.1:1" : "10.0.0.1:1");
  assert_int_equal(wr_seeds_parse(many, &l, err, sizeof err), 0);
  assert_int_equal(l.n, 64);
  strcat(many, ",10.0.0.1:1");
  assert_int_equal(wr_seeds_parse(many, &l, err, sizeof err), -1);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_host_port_lists),
      cmocka_unit_test(test_dns_form),
      cmocka_unit_test(test_rejections),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
