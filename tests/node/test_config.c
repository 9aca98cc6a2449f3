/* Unit tests for `warren node` options: flags and INI files share one
 * table, so both paths are checked against the same fields. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "config.h"

/* The drain bounds: drain-wait takes 0 (no wait), drain-timeout does
 * not; both are milliseconds up to a day.  (Each option kind has its own
 * marker in config.c's table: two sharing one once parsed drain-wait as
 * an on/off switch.) */
static void test_drain_options(void **state) {
  (void)state;
  wr_node_opts o;
  wr_node_opts_init(&o);
  assert_int_equal(o.drain_timeout_ms, 30000);
  assert_int_equal(o.drain_wait_ms, 2000);
  assert_int_equal(wr_node_opts_set(&o, "drain-wait", "0"), 0);
  assert_int_equal(o.drain_wait_ms, 0);
  assert_int_equal(wr_node_opts_set(&o, "drain-wait", "1000"), 0);
  assert_int_equal(o.drain_wait_ms, 1000);
  assert_int_equal(wr_node_opts_set(&o, "drain-timeout", "15000"), 0);
  assert_int_equal(o.drain_timeout_ms, 15000);
  assert_int_equal(wr_node_opts_set(&o, "drain-timeout", "0"), -1);
  assert_int_equal(wr_node_opts_set(&o, "drain-wait", "-1"), -1);
  assert_non_null(strstr(o.err, "milliseconds"));
  assert_int_equal(wr_node_opts_set(&o, "drain-wait", "86400001"), -1);
  assert_int_equal(wr_node_opts_set(&o, "drain-wait", "on"), -1);
  assert_int_equal(wr_node_opts_parse_ini(&o, "[node]\ndrain-wait = 250\n"
                                              "drain-timeout = 5000\n"),
                   0);
  assert_int_equal(o.drain_wait_ms, 250);
  assert_int_equal(o.drain_timeout_ms, 5000);
}

static void test_defaults_and_flags(void **state) {
  (void)state;
  wr_node_opts o;
  wr_node_opts_init(&o);
  assert_string_equal(o.admin, "127.0.0.1:9081");
  assert_int_equal(o.upstream_ms, 60000);
  assert_int_equal(wr_node_opts_known("id"), 1);
  assert_int_equal(wr_node_opts_known("body-min-rate"), 1);
  assert_int_equal(wr_node_opts_known("bogus"), 0);
  assert_int_equal(wr_node_opts_known("-id"), 0);
  assert_int_equal(wr_node_opts_known(""), 0);
  assert_int_equal(wr_node_opts_set(&o, "id", "n1"), 0);
  assert_int_equal(wr_node_opts_set(&o, "key-file", "/k"), 0);
  assert_int_equal(wr_node_opts_set(&o, "upstream-timeout", "2500"), 0);
  assert_string_equal(o.id, "n1");
  assert_string_equal(o.key_file, "/k");
  assert_int_equal(o.upstream_ms, 2500);
  assert_int_equal(wr_node_opts_set(&o, "upstream-timeout", "0"), -1);
  assert_non_null(strstr(o.err, "milliseconds"));
  assert_int_equal(o.head_ms, 30000);
  assert_int_equal(wr_node_opts_set(&o, "head-timeout", "1000"), 0);
  assert_int_equal(o.head_ms, 1000);
  assert_int_equal(wr_node_opts_set(&o, "head-timeout", "0"), -1);
  /* A rate, not a timeout: 0 is allowed and means off. */
  assert_int_equal(o.body_min_rate, 500);
  assert_int_equal(wr_node_opts_set(&o, "body-min-rate", "0"), 0);
  assert_int_equal(o.body_min_rate, 0);
  assert_int_equal(wr_node_opts_set(&o, "body-min-rate", "1000000000"), 0);
  assert_int_equal(o.body_min_rate, 1000000000);
  assert_int_equal(wr_node_opts_set(&o, "body-min-rate", "1000000001"), -1);
  assert_non_null(strstr(o.err, "bytes per second"));
  assert_int_equal(wr_node_opts_set(&o, "body-min-rate", "-1"), -1);
  assert_int_equal(wr_node_opts_set(&o, "body-min-rate", "5k"), -1);
  assert_int_equal(wr_node_opts_set(&o, "body-min-rate", ""), -1);
  assert_int_equal(o.body_min_rate, 1000000000);
  /* Send stall (ms) and the node links' window (bytes, 0 = default). */
  assert_int_equal(o.send_stall_ms, 30000);
  assert_int_equal(wr_node_opts_set(&o, "send-stall-timeout", "5000"), 0);
  assert_int_equal(o.send_stall_ms, 5000);
  assert_int_equal(wr_node_opts_set(&o, "send-stall-timeout", "0"), -1);
  assert_int_equal(o.node_link_window, 0);
  assert_int_equal(wr_node_opts_set(&o, "node-link-window", "16777216"), 0);
  assert_int_equal(o.node_link_window, 16777216);
  assert_int_equal(wr_node_opts_set(&o, "node-link-window", "1000"), -1);
  assert_non_null(strstr(o.err, "window in bytes"));
  assert_int_equal(wr_node_opts_set(&o, "node-link-window", "2147483648"),
                   -1);
  assert_int_equal(wr_node_opts_set(&o, "node-link-window", "0"), 0);
  assert_int_equal(o.node_link_window, 0);
  assert_int_equal(wr_node_opts_set(&o, "idle-timeout", "-5"), -1);
  assert_int_equal(wr_node_opts_set(&o, "idle-timeout", "12x"), -1);
  assert_int_equal(wr_node_opts_set(&o, "idle-timeout", ""), -1);
  assert_int_equal(wr_node_opts_set(&o, "bogus", "1"), -1);
  assert_string_equal(o.err, "unknown option 'bogus'");
  char longv[2000];
  memset(longv, 'a', sizeof longv - 1);
  longv[sizeof longv - 1] = 0;
  assert_int_equal(wr_node_opts_set(&o, "id", longv), -1);
  assert_non_null(strstr(o.err, "too long"));
  assert_string_equal(o.id, "n1"); /* a failed set changes nothing */
}

static void test_ini(void **state) {
  (void)state;
  wr_node_opts o;
  wr_node_opts_init(&o);
  const char *ini = "; a comment\n"
                    "[node]\n"
                    "id = edge-1\n"
                    "http = 0.0.0.0:80\n"
                    "domain = t.example.com\n"
                    "key-file = /etc/warren/cluster.key\n"
                    "proxy-protocol-from = 10.0.0.5,10.0.0.6\n"
                    "idle-timeout = 30000\n"
                    "head-timeout = 5000\n"
                    "body-min-rate = 2048\n";
  assert_int_equal(wr_node_opts_parse_ini(&o, ini), 0);
  assert_string_equal(o.id, "edge-1");
  assert_string_equal(o.http, "0.0.0.0:80");
  assert_string_equal(o.domain, "t.example.com");
  assert_string_equal(o.key_file, "/etc/warren/cluster.key");
  assert_string_equal(o.proxy_from, "10.0.0.5,10.0.0.6");
  assert_int_equal(o.idle_ms, 30000);
  assert_int_equal(o.head_ms, 5000);
  assert_int_equal(o.body_min_rate, 2048);
  assert_string_equal(o.admin, "127.0.0.1:9081");
}

static void test_ini_errors_name_the_line(void **state) {
  (void)state;
  wr_node_opts o;
  wr_node_opts_init(&o);
  assert_int_equal(wr_node_opts_parse_ini(&o, "[node]\nid = a\nnope = 1\n"),
                   -1);
  assert_string_equal(o.err, "line 3: unknown option 'nope'");
  wr_node_opts_init(&o);
  assert_int_equal(wr_node_opts_parse_ini(&o, "[other]\nid = a\n"), -1);
  assert_string_equal(o.err, "line 2: unknown section [other]");
  wr_node_opts_init(&o);
  assert_int_equal(wr_node_opts_parse_ini(&o, "id = a\n[node\n"), -1);
  assert_string_equal(o.err, "line 2: syntax error");
  wr_node_opts_init(&o);
  assert_int_equal(wr_node_opts_parse_ini(&o, "upstream-timeout = soon\n"),
                   -1);
  assert_non_null(strstr(o.err, "line 1: upstream-timeout wants"));
  /* Keys before any section are accepted (a plain key = value file). */
  wr_node_opts_init(&o);
  assert_int_equal(wr_node_opts_parse_ini(&o, "id = x\n"), 0);
  assert_string_equal(o.id, "x");
}

/* A [gossip] section's lines are collected as "k=v,k=v" for main.c. */
static void test_gossip_section(void **state) {
  (void)state;
  wr_node_opts o;
  wr_node_opts_init(&o);
  assert_int_equal(wr_node_opts_parse_ini(&o, "[node]\nid = n1\n"
                                              "gossip-set = push-fanout=2\n"
                                              "[gossip]\nprobe-timeout-ms = 300\n"
                                              "suspicion-mult=3\n"), 0);
  assert_string_equal(o.gossip_set, "push-fanout=2,probe-timeout-ms=300,suspicion-mult=3");
  wr_node_opts_init(&o);
  /* Overflow is an error naming the section, not a silent cut. */
  char big[3000];
  size_t n = (size_t)snprintf(big, sizeof big, "[gossip]\n");
  for (int i = 0; i < 60; i++)
    n += (size_t)snprintf(big + n, sizeof big - n, "probe-timeout-ms = %d\n", 100 + i);
  assert_int_equal(wr_node_opts_parse_ini(&o, big), -1);
  assert_non_null(strstr(o.err, "[gossip] settings are too long"));
}

/* A [routes] section's lines join --routes-set's list (cmd_node.c checks
 * them with wr_routes_config_set). */
static void test_routes_section(void **state) {
  (void)state;
  wr_node_opts o;
  wr_node_opts_init(&o);
  assert_int_equal(wr_node_opts_parse_ini(&o, "[node]\nid = n1\n"
                                              "routes-set = owner-rate=100\n"
                                              "[routes]\nowner-max-entries = 50000\n"), 0);
  assert_string_equal(o.routes_set, "owner-rate=100,owner-max-entries=50000");
  wr_node_opts_init(&o);
  assert_int_equal(wr_node_opts_set(&o, "routes-set", "owner-burst=10"), 0);
  assert_string_equal(o.routes_set, "owner-burst=10");
}

/* faults: a switch (on/off and friends), off by default; faults-file a
 * path; both from flags and from the INI file. */
static void test_faults_switch(void **state) {
  (void)state;
  wr_node_opts o;
  wr_node_opts_init(&o);
  assert_int_equal(o.faults, 0);
  const char *on[] = {"on", "true", "yes", "1"};
  const char *off[] = {"off", "false", "no", "0"};
  for (int i = 0; i < 4; i++) {
    assert_int_equal(wr_node_opts_set(&o, "faults", on[i]), 0);
    assert_int_equal(o.faults, 1);
    assert_int_equal(wr_node_opts_set(&o, "faults", off[i]), 0);
    assert_int_equal(o.faults, 0);
  }
  assert_int_equal(wr_node_opts_set(&o, "faults", "maybe"), -1);
  assert_non_null(strstr(o.err, "faults wants on or off"));
  assert_int_equal(wr_node_opts_set(&o, "faults", ""), -1);
  assert_int_equal(wr_node_opts_parse_ini(&o, "[node]\nfaults = on\n"
                                              "faults-file = /f.json\n"), 0);
  assert_int_equal(o.faults, 1);
  assert_string_equal(o.faults_file, "/f.json");
  assert_int_equal(wr_node_opts_parse_ini(&o, "faults = sure\n"), -1);
  assert_non_null(strstr(o.err, "line 1"));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_defaults_and_flags),
      cmocka_unit_test(test_drain_options),
      cmocka_unit_test(test_ini),
      cmocka_unit_test(test_ini_errors_name_the_line),
      cmocka_unit_test(test_gossip_section),
      cmocka_unit_test(test_routes_section),
      cmocka_unit_test(test_faults_switch),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
