/*
 * The fault model (src/fault/fault.c): verdict statistics over many draws
 * with fixed seeds, determinism, matching by kind, direction, peer and
 * time window, the JSON parser's strictness and limits, round trips, and
 * a failing allocator.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "failmalloc.h"
#include "warren/err.h"
#include "warren/fault.h"

static wr_fault *mk(uint64_t seed) {
  wr_fault *f;
  assert_int_equal(wr_fault_new(&f, seed, 0, NULL), 0);
  return f;
}

static void add_json(wr_fault *f, const char *json, wr_tstamp now) {
  wr_fault_rule r;
  char err[200] = "";
  int rv = wr_fault_rule_parse(json, strlen(json), &r, err, sizeof err);
  if (rv != 0) fail_msg("%s: %s", json, err);
  assert_int_equal(wr_fault_add(f, &r, now, NULL), 0);
}

/* No rule: every message passes untouched, nothing is counted. */
static void test_empty(void **state) {
  (void)state;
  wr_fault *f = mk(1);
  wr_fault_verdict v;
  for (int k = 0; k < WR_FAULT_KINDS; k++) {
    wr_fault_decide(f, (wr_fault_kind)k, "n2", WR_FAULT_IN, 100, &v);
    assert_int_equal(v.drop, 0);
    assert_int_equal(v.copies, 1);
    assert_int_equal(v.delay_ms, 0);
  }
  wr_fault_stats st;
  wr_fault_get_stats(f, &st);
  for (int k = 0; k < WR_FAULT_KINDS; k++) assert_int_equal(st.matched[k], 0);
  assert_int_equal(wr_fault_covers(f, WR_FAULT_KIND_ALL), 0);
  wr_fault_del(f);
}

/* drop 0.1 over 100 000 draws: 10 % within 4 standard deviations
 * (sigma = sqrt(n p (1-p)) = 95), for several seeds. */
static void test_drop_rate(void **state) {
  (void)state;
  for (uint64_t seed = 1; seed <= 5; seed++) {
    wr_fault *f = mk(seed);
    add_json(f, "{\"kinds\":\"probe\",\"drop\":0.1}", 0);
    int dropped = 0;
    wr_fault_verdict v;
    for (int i = 0; i < 100000; i++) {
      wr_fault_decide(f, WR_FAULT_PROBE, "n2", WR_FAULT_OUT, 1, &v);
      dropped += v.drop;
      if (v.drop) assert_int_equal(v.copies, 0);
    }
    assert_in_range(dropped, 10000 - 380, 10000 + 380);
    wr_fault_stats st;
    wr_fault_get_stats(f, &st);
    assert_int_equal(st.dropped[WR_FAULT_PROBE], (uint64_t)dropped);
    assert_int_equal(st.matched[WR_FAULT_PROBE], 100000);
    /* Another kind is not touched by a probe rule. */
    wr_fault_decide(f, WR_FAULT_ACK, "n2", WR_FAULT_OUT, 1, &v);
    assert_int_equal(v.drop, 0);
    wr_fault_del(f);
  }
}

/* drop 1.0 always drops, drop 0 never. */
static void test_drop_extremes(void **state) {
  (void)state;
  wr_fault *f = mk(9);
  add_json(f, "{\"kinds\":\"all\",\"peers\":[\"n2\"],\"drop\":1}", 0);
  wr_fault_verdict v;
  for (int i = 0; i < 10000; i++) {
    wr_fault_decide(f, (wr_fault_kind)(i % WR_FAULT_KINDS), "n2",
                    i & 1 ? WR_FAULT_IN : WR_FAULT_OUT, 5, &v);
    assert_int_equal(v.drop, 1);
    wr_fault_decide(f, (wr_fault_kind)(i % WR_FAULT_KINDS), "n3",
                    WR_FAULT_IN, 5, &v);
    assert_int_equal(v.drop, 0);
  }
  wr_fault_del(f);
}

/* Delay 50 + jitter [0, 20]: every value in range, mean near 60, every
 * value of the range seen; dup 0.05 near 5 %. */
static void test_delay_jitter_dup(void **state) {
  (void)state;
  wr_fault *f = mk(42);
  add_json(f, "{\"kinds\":[\"ack\"],\"dir\":\"in\",\"delay_ms\":50,"
              "\"jitter_ms\":20,\"dup\":0.05}", 0);
  wr_fault_verdict v;
  int seen[21] = {0}, dups = 0;
  double sum = 0;
  const int n = 50000;
  for (int i = 0; i < n; i++) {
    wr_fault_decide(f, WR_FAULT_ACK, "x", WR_FAULT_IN, 7, &v);
    assert_int_equal(v.drop, 0);
    assert_in_range(v.delay_ms, 50, 70);
    seen[v.delay_ms - 50]++;
    sum += v.delay_ms;
    dups += v.copies == 2;
  }
  for (int j = 0; j <= 20; j++) assert_true(seen[j] > 0);
  assert_true(sum / n > 59.8 && sum / n < 60.2);
  /* sigma = sqrt(50000 * 0.05 * 0.95) = 49 */
  assert_in_range(dups, 2500 - 200, 2500 + 200);
  /* The other direction is untouched. */
  wr_fault_decide(f, WR_FAULT_ACK, "x", WR_FAULT_OUT, 7, &v);
  assert_int_equal(v.delay_ms, 0);
  assert_int_equal(v.copies, 1);
  wr_fault_stats st;
  wr_fault_get_stats(f, &st);
  assert_int_equal(st.delayed[WR_FAULT_ACK], n);
  assert_int_equal(st.duplicated[WR_FAULT_ACK], (uint64_t)dups);
  wr_fault_del(f);
}

/* The same seed and call sequence gives the same verdicts; another seed
 * does not; reseed restarts the sequence. */
static void test_deterministic(void **state) {
  (void)state;
  const char *rule = "{\"drop\":0.3,\"jitter_ms\":100,\"dup\":0.2}";
  wr_fault *a = mk(7), *b = mk(7), *c = mk(8);
  add_json(a, rule, 0);
  add_json(b, rule, 0);
  add_json(c, rule, 0);
  wr_fault_verdict va[200], vb, vc;
  int differ = 0;
  for (int i = 0; i < 200; i++) {
    wr_fault_decide(a, WR_FAULT_BROADCAST, "n1", WR_FAULT_OUT, 1, &va[i]);
    wr_fault_decide(b, WR_FAULT_BROADCAST, "n1", WR_FAULT_OUT, 1, &vb);
    wr_fault_decide(c, WR_FAULT_BROADCAST, "n1", WR_FAULT_OUT, 1, &vc);
    assert_memory_equal(&va[i], &vb, sizeof vb);
    differ += memcmp(&va[i], &vc, sizeof vc) != 0;
  }
  assert_true(differ > 100);
  wr_fault_reseed(b, 7);
  for (int i = 0; i < 200; i++) {
    wr_fault_decide(b, WR_FAULT_BROADCAST, "n1", WR_FAULT_OUT, 1, &vb);
    assert_memory_equal(&va[i], &vb, sizeof vb);
  }
  assert_int_equal(wr_fault_seed(b), 7);
  wr_fault_del(a);
  wr_fault_del(b);
  wr_fault_del(c);
}

/* A rule for other kinds draws nothing: the verdicts of a probe rule do
 * not change when a sync rule is added. */
static void test_unmatched_draw_nothing(void **state) {
  (void)state;
  wr_fault *a = mk(3), *b = mk(3);
  add_json(a, "{\"kinds\":\"probe\",\"drop\":0.5}", 0);
  add_json(b, "{\"kinds\":\"sync\",\"drop\":0.5,\"dup\":0.5}", 0);
  add_json(b, "{\"kinds\":\"probe\",\"drop\":0.5}", 0);
  wr_fault_verdict va, vb;
  for (int i = 0; i < 1000; i++) {
    wr_fault_decide(a, WR_FAULT_PROBE, "n1", WR_FAULT_OUT, 1, &va);
    wr_fault_decide(b, WR_FAULT_PROBE, "n1", WR_FAULT_OUT, 1, &vb);
    assert_int_equal(va.drop, vb.drop);
  }
  wr_fault_del(a);
  wr_fault_del(b);
}

/* Windows: after_ms and for_ms relative to the add time. */
static void test_window(void **state) {
  (void)state;
  wr_fault *f = mk(1);
  add_json(f, "{\"drop\":1,\"after_ms\":1000,\"for_ms\":500}", 10000);
  wr_fault_verdict v;
  wr_fault_decide(f, WR_FAULT_PROBE, "n", WR_FAULT_IN, 10999, &v);
  assert_int_equal(v.drop, 0);
  wr_fault_decide(f, WR_FAULT_PROBE, "n", WR_FAULT_IN, 11000, &v);
  assert_int_equal(v.drop, 1);
  wr_fault_decide(f, WR_FAULT_PROBE, "n", WR_FAULT_IN, 11499, &v);
  assert_int_equal(v.drop, 1);
  wr_fault_decide(f, WR_FAULT_PROBE, "n", WR_FAULT_IN, 11500, &v);
  assert_int_equal(v.drop, 0);
  json_t *j = wr_fault_rule_json(wr_fault_rule_at(f, 0), 11200);
  assert_true(json_is_true(json_object_get(j, "active")));
  json_decref(j);
  j = wr_fault_rule_json(wr_fault_rule_at(f, 0), 12000);
  assert_true(json_is_false(json_object_get(j, "active")));
  json_decref(j);
  wr_fault_del(f);
}

/* Rules stack: delays add, one drop is enough. */
static void test_stacking(void **state) {
  (void)state;
  wr_fault *f = mk(1);
  add_json(f, "{\"kinds\":\"tunnel\",\"delay_ms\":30}", 0);
  add_json(f, "{\"kinds\":[\"tunnel\",\"nodelink\"],\"delay_ms\":20}", 0);
  wr_fault_verdict v;
  wr_fault_decide(f, WR_FAULT_TUNNEL, NULL, WR_FAULT_OUT, 1, &v);
  assert_int_equal(v.delay_ms, 50);
  wr_fault_decide(f, WR_FAULT_NODELINK, "n2", WR_FAULT_OUT, 1, &v);
  assert_int_equal(v.delay_ms, 20);
  uint32_t id;
  wr_fault_rule r;
  const char *j = "{\"drop\":1,\"peers\":[\"n2\"]}";
  assert_int_equal(wr_fault_rule_parse(j, strlen(j), &r, NULL, 0), 0);
  assert_int_equal(wr_fault_add(f, &r, 1, &id), 0);
  assert_int_equal(id, 3);
  wr_fault_decide(f, WR_FAULT_NODELINK, "n2", WR_FAULT_OUT, 1, &v);
  assert_int_equal(v.drop, 1);
  /* A peer-set rule never matches an unknown peer. */
  wr_fault_decide(f, WR_FAULT_NODELINK, NULL, WR_FAULT_OUT, 1, &v);
  assert_int_equal(v.drop, 0);
  assert_int_equal(wr_fault_remove(f, 3), 0);
  assert_int_equal(wr_fault_remove(f, 3), WR_ERR_NOTFOUND);
  assert_int_equal(wr_fault_count(f), 2);
  assert_int_equal(wr_fault_rule_at(f, 1)->id, 2);
  assert_int_equal(wr_fault_clear(f), 2);
  assert_int_equal(wr_fault_count(f), 0);
  wr_fault_del(f);
}

/* Streams: never duplicated (TCP); sync, node links and tunnels
 * delayed (their adapters hold the chunk). */
static void test_stream_kinds(void **state) {
  (void)state;
  wr_fault *f = mk(5);
  add_json(f, "{\"delay_ms\":40,\"dup\":1}", 0);
  wr_fault_verdict v;
  wr_fault_decide(f, WR_FAULT_SYNC, "n2", WR_FAULT_IN, 1, &v);
  assert_int_equal(v.copies, 1);
  assert_int_equal(v.delay_ms, 40);
  wr_fault_decide(f, WR_FAULT_NODELINK, "n2", WR_FAULT_IN, 1, &v);
  assert_int_equal(v.copies, 1);
  assert_int_equal(v.delay_ms, 40);
  wr_fault_decide(f, WR_FAULT_TUNNEL, NULL, WR_FAULT_OUT, 1, &v);
  assert_int_equal(v.copies, 1);
  assert_int_equal(v.delay_ms, 40);
  wr_fault_decide(f, WR_FAULT_PROBE, "n2", WR_FAULT_IN, 1, &v);
  assert_int_equal(v.copies, 2);
  wr_fault_stats st;
  wr_fault_get_stats(f, &st);
  assert_int_equal(st.delayed[WR_FAULT_SYNC], 1);
  assert_int_equal(st.duplicated[WR_FAULT_SYNC] +
                       st.duplicated[WR_FAULT_NODELINK] +
                       st.duplicated[WR_FAULT_TUNNEL], 0);
  assert_int_equal(st.delayed[WR_FAULT_NODELINK], 1);
  assert_int_equal(wr_fault_swim_kind(1), WR_FAULT_PROBE);
  assert_int_equal(wr_fault_swim_kind(2), WR_FAULT_ACK);
  assert_int_equal(wr_fault_swim_kind(3), WR_FAULT_PING_REQ);
  assert_int_equal(wr_fault_swim_kind(4), WR_FAULT_ACK);
  assert_int_equal(wr_fault_swim_kind(5), WR_FAULT_BROADCAST);
  assert_int_equal(wr_fault_swim_kind(6), WR_FAULT_ACK);
  wr_fault_del(f);
}

/* Every bad rule gives its own one-line reason. */
static void test_parse_errors(void **state) {
  (void)state;
  static const struct {
    const char *json, *reason;
  } bad[] = {
      {"", "not JSON"},
      {"[1]", "a rule must be a JSON object"},
      {"{\"drop\":0.1,\"drop\":0.2}", "not JSON"},
      {"{\"drop\":1.5}", "drop must be a probability"},
      {"{\"drop\":-0.1}", "drop must be a probability"},
      {"{\"drop\":\"x\"}", "drop must be a number"},
      {"{\"dup\":2}", "dup must be a probability"},
      {"{\"delay_ms\":60001}", "delay_ms must be from 0 to 60000"},
      {"{\"delay_ms\":1.5}", "delay_ms must be a whole number"},
      {"{\"jitter_ms\":-1}", "jitter_ms must be from 0"},
      {"{\"kinds\":\"probe,zap\",\"drop\":1}", "kinds: unknown kind \"zap\""},
      {"{\"kinds\":[],\"drop\":1}", "kinds: 1 to 16 names"},
      {"{\"kinds\":[1],\"drop\":1}", "kinds[0] must be a string"},
      {"{\"kinds\":7,\"drop\":1}", "kinds must be a list"},
      {"{\"dir\":\"up\",\"drop\":1}", "dir must be"},
      {"{\"peers\":\"n2\",\"drop\":1}", "peers must be a list"},
      {"{\"peers\":[\"\"],\"drop\":1}", "peers[0]: a member id"},
      {"{\"peers\":[\"a b\"],\"drop\":1}", "peers[0]: a member id"},
      {"{\"peers\":[\"ok\",3],\"drop\":1}", "peers[1]: a member id"},
      {"{\"peers\":[\"ip:127.0.0\"],\"drop\":1}", "or ip: and an IP address"},
      {"{\"peers\":[\"ip:\"],\"drop\":1}", "or ip: and an IP address"},
      {"{\"peers\":[\"ip:n2\"],\"drop\":1}", "or ip: and an IP address"},
      {"{\"color\":\"red\",\"drop\":1}", "unknown field \"color\""},
      {"{}", "the rule does nothing"},
      {"{\"for_ms\":99999999999,\"drop\":1}", "for_ms must be from 0"},
  };
  for (size_t i = 0; i < WR_ARRAY_LEN(bad); i++) {
    wr_fault_rule r;
    char err[240] = "";
    int rv = wr_fault_rule_parse(bad[i].json, strlen(bad[i].json), &r, err,
                                 sizeof err);
    if (rv == 0) fail_msg("accepted %s", bad[i].json);
    if (!strstr(err, bad[i].reason))
      fail_msg("%s: got \"%s\", want \"%s\"", bad[i].json, err,
               bad[i].reason);
    assert_null(strchr(err, '\n'));
  }
  /* Peer limit: 32 fine, 33 refused. */
  char buf[2048];
  size_t n = (size_t)snprintf(buf, sizeof buf, "{\"drop\":1,\"peers\":[");
  for (int i = 0; i < 33; i++)
    n += (size_t)snprintf(buf + n, sizeof buf - n, "%s\"n%d\"", i ? "," : "",
                          i);
  snprintf(buf + n, sizeof buf - n, "]}");
  wr_fault_rule r;
  char err[200];
  assert_int_equal(wr_fault_rule_parse(buf, strlen(buf), &r, err, sizeof err),
                   WR_ERR_INVAL);
  assert_non_null(strstr(err, "at most 32"));
  /* A 65-character id is one too many. */
  char id65[100];
  memset(id65, 'a', 65);
  id65[65] = 0;
  snprintf(buf, sizeof buf, "{\"drop\":1,\"peers\":[\"%s\"]}", id65);
  assert_int_not_equal(wr_fault_rule_parse(buf, strlen(buf), &r, err,
                                           sizeof err), 0);
  id65[64] = 0;
  snprintf(buf, sizeof buf, "{\"drop\":1,\"peers\":[\"%s\"]}", id65);
  assert_int_equal(wr_fault_rule_parse(buf, strlen(buf), &r, err, sizeof err),
                   0);
  /* Over the size limit. */
  char *big = malloc(WR_FAULT_JSON_MAX + 2);
  memset(big, ' ', WR_FAULT_JSON_MAX + 1);
  big[WR_FAULT_JSON_MAX + 1] = 0;
  assert_int_equal(wr_fault_rule_parse(big, WR_FAULT_JSON_MAX + 1, &r, err,
                                       sizeof err), WR_ERR_TOOBIG);
  free(big);
}

/* Accepted forms: defaults, kinds as a string or a list, "all". */
static void test_parse_forms(void **state) {
  (void)state;
  wr_fault_rule r;
  char err[200];
  const char *j = "{\"dup\":0.5}";
  assert_int_equal(wr_fault_rule_parse(j, strlen(j), &r, err, sizeof err), 0);
  assert_int_equal(r.kinds, WR_FAULT_KIND_ALL);
  assert_int_equal(r.dir, WR_FAULT_BOTH);
  j = "{\"kinds\":\"probe,ack,ping-req\",\"drop\":0}";
  assert_int_not_equal(wr_fault_rule_parse(j, strlen(j), &r, err, sizeof err),
                       0); /* does nothing */
  j = "{\"kinds\":\"probe,ack,ping-req\",\"delay_ms\":5,\"dir\":\"out\"}";
  assert_int_equal(wr_fault_rule_parse(j, strlen(j), &r, err, sizeof err), 0);
  assert_int_equal(r.kinds, WR_FAULT_KIND_BIT(WR_FAULT_PROBE) |
                                WR_FAULT_KIND_BIT(WR_FAULT_ACK) |
                                WR_FAULT_KIND_BIT(WR_FAULT_PING_REQ));
  assert_int_equal(r.dir, WR_FAULT_OUT);
  j = "{\"kinds\":[\"sync\",\"all\"],\"drop\":0.25}";
  assert_int_equal(wr_fault_rule_parse(j, strlen(j), &r, err, sizeof err), 0);
  assert_int_equal(r.kinds, WR_FAULT_KIND_ALL);
  for (int k = 0; k < WR_FAULT_KINDS; k++) {
    const char *name = wr_fault_kind_name((wr_fault_kind)k);
    assert_int_equal(wr_fault_kind_parse(name, strlen(name)), k);
  }
  assert_int_equal(wr_fault_kind_parse("probes", 6), -1);
}

/* Serialize -> load -> serialize gives the same rules and seed; the rule
 * limit holds for add and for load; a failed load changes nothing. */
static void test_round_trip_and_limits(void **state) {
  (void)state;
  wr_fault *f = mk(12345);
  add_json(f, "{\"kinds\":[\"probe\",\"ack\"],\"dir\":\"in\",\"peers\":"
              "[\"n2\",\"n3\"],\"drop\":0.1,\"delay_ms\":50,\"jitter_ms\":20,"
              "\"dup\":0.05,\"after_ms\":7,\"for_ms\":9000}", 100);
  add_json(f, "{\"kinds\":\"sync\",\"drop\":1}", 100);
  json_t *doc = wr_fault_to_json(f, 100);
  char *text = json_dumps(doc, JSON_COMPACT);
  wr_fault *g = mk(1);
  char err[200];
  assert_int_equal(wr_fault_load(g, text, strlen(text), 100, err, sizeof err),
                   0);
  assert_int_equal(wr_fault_seed(g), 12345);
  json_t *doc2 = wr_fault_to_json(g, 100);
  assert_true(json_equal(doc, doc2));
  json_decref(doc2);
  free(text);
  json_decref(doc);

  /* 64 rules fit, the 65th is refused and counted. */
  wr_fault_clear(f);
  wr_fault_rule r;
  assert_int_equal(wr_fault_rule_parse("{\"drop\":0.5}", 12, &r, err,
                                       sizeof err), 0);
  for (int i = 0; i < WR_FAULT_MAX_RULES; i++)
    assert_int_equal(wr_fault_add(f, &r, 0, NULL), 0);
  assert_int_equal(wr_fault_add(f, &r, 0, NULL), WR_ERR_LIMIT);
  wr_fault_stats st;
  wr_fault_get_stats(f, &st);
  assert_int_equal(st.rejected, 1);
  /* A load of 65 rules is refused whole; g keeps its 2 rules. */
  char *many = malloc(65 * 20 + 64);
  size_t n = (size_t)sprintf(many, "{\"rules\":[");
  for (int i = 0; i < 65; i++)
    n += (size_t)sprintf(many + n, "%s{\"drop\":0.5}", i ? "," : "");
  sprintf(many + n, "]}");
  assert_int_equal(wr_fault_load(g, many, strlen(many), 0, err, sizeof err),
                   WR_ERR_LIMIT);
  assert_int_equal(wr_fault_count(g), 2);
  /* A bad rule in the middle: refused whole, with its index. */
  const char *mid = "{\"rules\":[{\"drop\":1},{\"drop\":2}]}";
  assert_int_not_equal(wr_fault_load(g, mid, strlen(mid), 0, err, sizeof err),
                       0);
  assert_non_null(strstr(err, "rules[1]: drop must be"));
  assert_int_equal(wr_fault_count(g), 2);
  const char *bads[] = {"[]", "{\"seed\":-1}", "{\"seed\":\"x\"}",
                        "{\"rules\":{}}", "{\"other\":1}"};
  for (size_t i = 0; i < WR_ARRAY_LEN(bads); i++)
    assert_int_not_equal(wr_fault_load(g, bads[i], strlen(bads[i]), 0, err,
                                       sizeof err), 0);
  wr_fault_get_stats(g, &st);
  assert_int_equal(st.rejected, 2 + WR_ARRAY_LEN(bads));
  /* An empty set clears; the seed stays when absent. */
  assert_int_equal(wr_fault_load(g, "{}", 2, 0, err, sizeof err), 0);
  assert_int_equal(wr_fault_count(g), 0);
  assert_int_equal(wr_fault_seed(g), 12345);
  free(many);
  wr_fault_del(f);
  wr_fault_del(g);
}

/* Every allocation failure is reported and leaks nothing. */
/* Peers by member name among several candidates (an accepted connection
 * from an IP that several members share), and "ip:" entries by address:
 * canonical forms match, other addresses and unknown peers do not. */
static void test_peer_names_and_ips(void **state) {
  (void)state;
  wr_fault *f = mk(5);
  add_json(f, "{\"kinds\":\"sync\",\"peers\":[\"n3\"],\"drop\":1}", 0);
  add_json(f, "{\"kinds\":\"tunnel\",\"peers\":[\"ip:::0001\","
              "\"ip:127.0.0.42\"],\"drop\":1}", 0);
  const wr_fault_rule *r = wr_fault_rule_at(f, 1);
  assert_string_equal(r->peers[0], "ip:::1"); /* stored canonical */
  wr_fault_verdict v;
  const char *one[] = {"n2"}, *shared[] = {"n2", "n3", "n4"};
  wr_fault_peer p = {.ids = one, .nids = 1};
  wr_fault_decide_peer(f, WR_FAULT_SYNC, &p, WR_FAULT_IN, 1, &v);
  assert_int_equal(v.drop, 0);
  p.ids = shared;
  p.nids = 3;
  wr_fault_decide_peer(f, WR_FAULT_SYNC, &p, WR_FAULT_IN, 1, &v);
  assert_int_equal(v.drop, 1); /* n3 may be the one: matched */
  wr_fault_decide_peer(f, WR_FAULT_SYNC, NULL, WR_FAULT_IN, 1, &v);
  assert_int_equal(v.drop, 0);
  /* By address: a tunnel client (no member id) at 127.0.0.42 or ::1. */
  wr_fault_peer c = {.ids = NULL, .nids = 0};
  c.addr.family = 4;
  c.addr.ip[0] = 127;
  c.addr.ip[3] = 42;
  wr_fault_decide_peer(f, WR_FAULT_TUNNEL, &c, WR_FAULT_OUT, 1, &v);
  assert_int_equal(v.drop, 1);
  c.addr.ip[3] = 43;
  wr_fault_decide_peer(f, WR_FAULT_TUNNEL, &c, WR_FAULT_OUT, 1, &v);
  assert_int_equal(v.drop, 0);
  memset(&c.addr, 0, sizeof c.addr);
  c.addr.family = 6;
  c.addr.ip[15] = 1;
  wr_fault_decide_peer(f, WR_FAULT_TUNNEL, &c, WR_FAULT_IN, 1, &v);
  assert_int_equal(v.drop, 1);
  c.addr.family = 0; /* address unknown */
  wr_fault_decide_peer(f, WR_FAULT_TUNNEL, &c, WR_FAULT_IN, 1, &v);
  assert_int_equal(v.drop, 0);
  /* An "ip:" entry never matches a member id that looks like one. */
  const char *lookalike[] = {"ip:::1"};
  wr_fault_peer m = {.ids = lookalike, .nids = 1};
  wr_fault_decide_peer(f, WR_FAULT_TUNNEL, &m, WR_FAULT_IN, 1, &v);
  assert_int_equal(v.drop, 0);
  /* Round trip: the JSON says the canonical entry, and loads back. */
  json_t *j = wr_fault_rule_json(r, 1);
  char *txt = json_dumps(j, JSON_COMPACT);
  assert_non_null(strstr(txt, "\"ip:::1\""));
  wr_fault_rule back;
  char err[200];
  assert_int_equal(wr_fault_rule_parse(txt, strlen(txt), &back, err,
                                       sizeof err), 0);
  assert_string_equal(back.peers[0], "ip:::1");
  free(txt);
  json_decref(j);
  wr_fault_del(f);
}

static void test_failmalloc(void **state) {
  (void)state;
  const char *doc = "{\"seed\":3,\"rules\":[{\"drop\":1},{\"dup\":1}]}";
  for (long k = 1;; k++) {
    failmalloc fm;
    failmalloc_init(&fm, k);
    wr_fault *f;
    int rv = wr_fault_new(&f, 1, 0, &fm.mem);
    if (rv != 0) {
      assert_int_equal(rv, WR_ERR_NOMEM);
      assert_int_equal(fm.live, 0);
      continue;
    }
    char err[100];
    rv = wr_fault_load(f, doc, strlen(doc), 0, err, sizeof err);
    wr_fault_del(f);
    assert_int_equal(fm.live, 0);
    if (rv == 0) break;
    assert_int_equal(rv, WR_ERR_NOMEM);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_empty),
      cmocka_unit_test(test_drop_rate),
      cmocka_unit_test(test_drop_extremes),
      cmocka_unit_test(test_delay_jitter_dup),
      cmocka_unit_test(test_deterministic),
      cmocka_unit_test(test_unmatched_draw_nothing),
      cmocka_unit_test(test_window),
      cmocka_unit_test(test_stacking),
      cmocka_unit_test(test_stream_kinds),
      cmocka_unit_test(test_parse_errors),
      cmocka_unit_test(test_parse_forms),
      cmocka_unit_test(test_round_trip_and_limits),
      cmocka_unit_test(test_peer_names_and_ips),
      cmocka_unit_test(test_failmalloc),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
