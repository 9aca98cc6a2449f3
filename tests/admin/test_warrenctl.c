/*
 * warrenctl's testable halves: contract checks, table and --json output,
 * watch diffs, address parsing and the HTTP response parser (fed whole and
 * cut at every offset).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ctl.h"

/* Captures what |fn| prints. */
typedef struct cap {
  char *buf;
  size_t len;
  FILE *f;
} cap;

static void cap_open(cap *c) {
  c->buf = NULL;
  c->len = 0;
  c->f = open_memstream(&c->buf, &c->len);
  assert_non_null(c->f);
}

static char *cap_close(cap *c) {
  fclose(c->f);
  return c->buf;
}

static json_t *parse(const char *text,
                     json_t *(*check)(const json_t *, char *, size_t),
                     char *err) {
  return ctl_parse_checked(text, strlen(text), check, err, 256);
}

static const char members_json[] =
    "[{\"id\":\"node-a\",\"addr\":\"10.0.0.1:7946\",\"state\":\"alive\","
    "\"incarnation\":0,\"region\":\"eu\"},"
    "{\"incarnation\":17,\"state\":\"suspect\",\"addr\":\"[::1]:7946\","
    "\"id\":\"a-much-longer-node-id\"}]";

static void test_members_table_and_json(void **state) {
  char err[256];
  json_t *m = parse(members_json, ctl_check_members, err);
  assert_non_null(m);
  cap c;
  cap_open(&c);
  ctl_print_members(c.f, m);
  char *s = cap_close(&c);
  assert_string_equal(s, "ID                     ADDR           STATE    "
                         "INCARNATION\n"
                         "node-a                 10.0.0.1:7946  alive    0\n"
                         "a-much-longer-node-id  [::1]:7946     suspect  17\n");
  free(s);
  /* --json: contract fields only, contract order, server's row order. */
  cap_open(&c);
  ctl_print_json(c.f, m);
  s = cap_close(&c);
  assert_string_equal(
      s, "[{\"id\":\"node-a\",\"addr\":\"10.0.0.1:7946\",\"state\":\"alive\","
         "\"incarnation\":0},{\"id\":\"a-much-longer-node-id\",\"addr\":"
         "\"[::1]:7946\",\"state\":\"suspect\",\"incarnation\":17}]\n");
  free(s);
  json_decref(m);

  m = parse("[]", ctl_check_members, err);
  cap_open(&c);
  ctl_print_members(c.f, m);
  s = cap_close(&c);
  assert_string_equal(s, "ID  ADDR  STATE  INCARNATION\n(no members)\n");
  free(s);
  json_decref(m);
}

static void test_members_bad_shapes(void **state) {
  struct {
    const char *in, *err;
  } cases[] = {
      {"{}", "expected a JSON array of members"},
      {"[1]", "member 1 is not a JSON object"},
      {"[{\"id\":\"a\",\"addr\":\"b\",\"state\":\"alive\"}]",
       "member 1 has no non-negative integer \"incarnation\""},
      {"[{\"id\":\"a\",\"addr\":\"b\",\"state\":\"alive\",\"incarnation\":-1}]",
       "member 1 has no non-negative integer \"incarnation\""},
      {"[{\"id\":\"a\",\"addr\":\"b\",\"state\":\"alive\",\"incarnation\":1},"
       "{\"id\":2,\"addr\":\"b\",\"state\":\"alive\",\"incarnation\":1}]",
       "member 2 has no string \"id\""},
      {"[{\"id\":\"a\",\"addr\":\"b\",\"state\":\"ALIVE\",\"incarnation\":1}]",
       "member 1 has unknown state \"ALIVE\""},
      {"[{\"id\":\"a\",\"addr\":\"b\",\"state\":\"alive\",\"incarnation\":1.5}"
       "]",
       "member 1 has no non-negative integer \"incarnation\""},
      {"<html>", "not JSON (line 1: '[' or '{' expected near '<')"},
      {"[{\"id\":\"a\",\"id\":\"b\"}]",
       "not JSON (line 1: duplicate object key near '\"id\"')"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    char err[256] = "";
    json_t *m = parse(cases[i].in, ctl_check_members, err);
    assert_null(m);
    assert_string_equal(err, cases[i].err);
  }
}

static void test_routes(void **state) {
  char err[256];
  json_t *r = parse("[{\"name\":\"app\",\"owner\":\"n1\",\"version\":3,"
                    "\"state\":\"ACTIVE\",\"account\":\"x\"},"
                    "{\"state\":\"RELEASED\",\"version\":12345678901,"
                    "\"owner\":\"node-two\",\"name\":\"b\"}]",
                    ctl_check_routes, err);
  assert_non_null(r);
  cap c;
  cap_open(&c);
  ctl_print_routes(c.f, r);
  char *s = cap_close(&c);
  assert_string_equal(s, "NAME  OWNER     VERSION      STATE\n"
                         "app   n1        3            ACTIVE\n"
                         "b     node-two  12345678901  RELEASED\n");
  free(s);
  cap_open(&c);
  ctl_print_json(c.f, r);
  s = cap_close(&c);
  assert_string_equal(s, "[{\"name\":\"app\",\"owner\":\"n1\",\"version\":3,"
                         "\"state\":\"ACTIVE\"},{\"name\":\"b\",\"owner\":"
                         "\"node-two\",\"version\":12345678901,\"state\":"
                         "\"RELEASED\"}]\n");
  free(s);
  json_decref(r);
  assert_null(parse("[{\"name\":\"a\",\"owner\":\"b\",\"version\":\"3\","
                    "\"state\":\"x\"}]",
                    ctl_check_routes, err));
  assert_string_equal(err, "route 1 has no non-negative integer \"version\"");
}

static const char status_json[] =
    "{\"routes_digest\":\"ab12\",\"routes\":7,\"id\":\"node-a\",\"extra\":1,"
    "\"members\":{\"left\":1,\"dead\":0,\"suspect\":2,\"alive\":3}}";

static void test_status(void **state) {
  char err[256];
  json_t *st = parse(status_json, ctl_check_status, err);
  assert_non_null(st);
  cap c;
  cap_open(&c);
  ctl_print_status(c.f, st);
  char *s = cap_close(&c);
  assert_string_equal(s, "node:           node-a\n"
                         "members:        3 alive, 2 suspect, 0 dead, 1 left\n"
                         "routes:         7\n"
                         "routes digest:  ab12\n");
  free(s);
  cap_open(&c);
  ctl_print_json(c.f, st);
  s = cap_close(&c);
  assert_string_equal(s, "{\"id\":\"node-a\",\"members\":{\"alive\":3,"
                         "\"suspect\":2,\"dead\":0,\"left\":1},\"routes\":7,"
                         "\"routes_digest\":\"ab12\"}\n");
  free(s);
  json_decref(st);
  assert_null(parse("{\"id\":\"a\",\"routes\":1,\"routes_digest\":\"x\","
                    "\"members\":{\"alive\":1}}",
                    ctl_check_status, err));
  assert_string_equal(err, "status \"members\" has no non-negative integer "
                           "\"suspect\"");
  assert_null(parse("[]", ctl_check_status, err));
  assert_string_equal(err, "status is not a JSON object");
}

static void test_control_chars_sanitised(void **state) {
  char err[256];
  json_t *m = parse("[{\"id\":\"evil\\u001b[2J\\nnode\",\"addr\":\"x\","
                    "\"state\":\"dead\",\"incarnation\":1}]",
                    ctl_check_members, err);
  assert_non_null(m);
  cap c;
  cap_open(&c);
  ctl_print_members(c.f, m);
  char *s = cap_close(&c);
  assert_null(strchr(s, '\x1b'));
  assert_non_null(strstr(s, "\nevil?[2J?node  x     dead   1\n"));
  free(s);
  json_decref(m);
}

static json_t *mem(const char *id, const char *state, int inc) {
  return json_pack("{s:s,s:s,s:s,s:i}", "id", id, "addr", "h:1", "state", state,
                   "incarnation", inc);
}

static json_t *status(int routes, const char *digest) {
  return json_pack("{s:s,s:{s:i,s:i,s:i,s:i},s:i,s:s}", "id", "n1", "members",
                   "alive", 2, "suspect", 0, "dead", 0, "left", 0, "routes",
                   routes, "routes_digest", digest);
}

static void test_watch_diff(void **state) {
  json_t *s1 = status(1, "aa"), *s2 = status(2, "bb"), *s3 = status(2, "bb");
  json_t *m1 = json_pack("[o,o,o]", mem("n1", "alive", 0),
                         mem("n2", "alive", 0), mem("n3", "alive", 1));
  json_t *m2 = json_pack("[o,o,o]", mem("n1", "alive", 0),
                         mem("n2", "suspect", 0), mem("n4", "alive", 0));
  json_t *m3 = json_pack("[o,o,o]", mem("n1", "alive", 0),
                         mem("n2", "alive", 1), mem("n4", "alive", 0));
  json_t *m4 = json_pack("[o,o,o]", mem("n1", "alive", 0),
                         mem("n2", "alive", 1), mem("n4", "alive", 2));
  cap c;
  cap_open(&c);
  assert_int_equal(ctl_watch_diff(c.f, "T ", 0, NULL, NULL, s1, m1), 4);
  assert_int_equal(ctl_watch_diff(c.f, "T ", 0, s1, m1, s2, m2), 4);
  assert_int_equal(ctl_watch_diff(c.f, "T ", 0, s2, m2, s3, m3), 1);
  assert_int_equal(ctl_watch_diff(c.f, "T ", 0, s3, m3, s3, m4), 1);
  assert_int_equal(ctl_watch_diff(c.f, "T ", 0, s3, m4, s3, m4), 0);
  char *s = cap_close(&c);
  assert_string_equal(
      s, "T node n1: 2 alive, 0 suspect, 0 dead, 0 left; 1 routes (digest aa)\n"
         "T member n1 alive (incarnation 0)\n"
         "T member n2 alive (incarnation 0)\n"
         "T member n3 alive (incarnation 1)\n"
         "T member n2 alive -> suspect (incarnation 0)\n"
         "T member n4 joined (alive, incarnation 0)\n"
         "T member n3 gone\n"
         "T routes 1 -> 2 (digest aa -> bb)\n"
         "T member n2 suspect -> alive (incarnation 1)\n"
         "T member n4 incarnation 0 -> 2 (alive)\n");
  free(s);

  cap_open(&c);
  assert_int_equal(ctl_watch_diff(c.f, "T ", 1, s1, m1, s2, m2), 4);
  s = cap_close(&c);
  assert_string_equal(
      s, "{\"event\":\"member\",\"id\":\"n2\",\"from\":\"alive\",\"to\":"
         "\"suspect\",\"incarnation\":0}\n"
         "{\"event\":\"member\",\"id\":\"n4\",\"from\":null,\"to\":\"alive\","
         "\"incarnation\":0}\n"
         "{\"event\":\"member\",\"id\":\"n3\",\"from\":\"alive\",\"to\":null}\n"
         "{\"event\":\"routes\",\"from\":1,\"to\":2,\"digest_from\":\"aa\","
         "\"digest_to\":\"bb\"}\n");
  free(s);
  json_decref(s1);
  json_decref(s2);
  json_decref(s3);
  json_decref(m1);
  json_decref(m2);
  json_decref(m3);
  json_decref(m4);
}

static void test_mesh(void **state) {
  json_t *a = status(2, "d1"), *b = status(2, "d1"), *c = status(3, "d2");
  const char *names[] = {"127.0.0.1:9081", "127.0.0.1:9082", "h:9083"};
  json_t *st[3] = {a, b, NULL};
  assert_true(ctl_mesh_converged(st, 2));
  assert_false(ctl_mesh_converged(st, 3)); /* one unreachable */
  assert_false(ctl_mesh_converged(st, 0));
  cap k;
  cap_open(&k);
  ctl_print_mesh(k.f, names, st, 2);
  char *s = cap_close(&k);
  assert_string_equal(
      s, "ADMIN           NODE  ALIVE  SUSPECT  DEAD  LEFT  ROUTES  DIGEST\n"
         "127.0.0.1:9081  n1    2      0        0     0     2       d1\n"
         "127.0.0.1:9082  n1    2      0        0     0     2       d1\n"
         "converged: 2 nodes, 2 routes, digest d1\n");
  free(s);
  st[1] = c;
  cap_open(&k);
  ctl_print_mesh(k.f, names, st, 3);
  s = cap_close(&k);
  assert_string_equal(
      s, "ADMIN           NODE         ALIVE  SUSPECT  DEAD  LEFT  ROUTES  "
         "DIGEST\n"
         "127.0.0.1:9081  n1           2      0        0     0     2       d1\n"
         "127.0.0.1:9082  n1           2      0        0     0     3       d2\n"
         "h:9083          unreachable  -      -        -     -     -       -\n"
         "not converged: 2 distinct route digests, 1 unreachable\n");
  free(s);
  /* Same digest but a different view of membership: not converged. */
  json_t *d = json_deep_copy(a);
  json_object_set_new(json_object_get(d, "members"), "dead", json_integer(1));
  st[1] = d;
  assert_false(ctl_mesh_converged(st, 2));
  json_t *j = ctl_mesh_json(names, st, 3);
  cap_open(&k);
  ctl_print_json(k.f, j);
  s = cap_close(&k);
  assert_string_equal(
      s, "{\"converged\":false,\"nodes\":[{\"admin\":\"127.0.0.1:9081\","
         "\"status\":{\"id\":\"n1\",\"members\":{\"alive\":2,\"suspect\":0,"
         "\"dead\":0,\"left\":0},\"routes\":2,\"routes_digest\":\"d1\"}},"
         "{\"admin\":\"127.0.0.1:9082\",\"status\":{\"id\":\"n1\",\"members\""
         ":{\"alive\":2,\"suspect\":0,\"dead\":1,\"left\":0},\"routes\":2,"
         "\"routes_digest\":\"d1\"}},{\"admin\":\"h:9083\",\"status\":null}]}"
         "\n");
  free(s);
  json_decref(j);
  json_decref(a);
  json_decref(b);
  json_decref(c);
  json_decref(d);
}

static void test_parse_target(void **state) {
  ctl_target t;
  assert_int_equal(ctl_parse_target("127.0.0.1:9081", &t), 0);
  assert_string_equal(t.host, "127.0.0.1");
  assert_string_equal(t.port, "9081");
  assert_int_equal(ctl_parse_target("[::1]:80", &t), 0);
  assert_string_equal(t.host, "::1");
  assert_string_equal(t.display, "[::1]:80");
  assert_int_equal(ctl_parse_target("localhost:1", &t), 0);
  const char *bad[] = {"127.0.0.1", ":80",        "h:",     "h:0",
                       "h:65536",   "h:8x",       "::1:80", "[::1]80",
                       "[]:80",     "h:123456789"};
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
    assert_int_equal(ctl_parse_target(bad[i], &t), -1);
}

static void test_http_parse_splits(void **state) {
  const char *resp = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                     "Content-Length: 7\r\n\r\n[1,2,3]";
  size_t len = strlen(resp);
  char err[128];
  ctl_response r;
  /* Every prefix is "need more"; the whole is complete. */
  for (size_t k = 0; k < len; k++) {
    assert_int_equal(ctl_http_parse(resp, k, 0, &r, err, sizeof err), 0);
    assert_null(r.body);
  }
  assert_int_equal(ctl_http_parse(resp, len, 0, &r, err, sizeof err), 1);
  assert_int_equal(r.status, 200);
  assert_int_equal(r.len, 7);
  assert_string_equal(r.body, "[1,2,3]");
  free(r.body);
  /* A prefix followed by EOF is an error. */
  assert_int_equal(ctl_http_parse(resp, len - 1, 1, &r, err, sizeof err), -1);
  assert_string_equal(err,
                      "connection closed before the response was complete");

  /* No Content-Length: the body ends at EOF. */
  const char *eofb = "HTTP/1.1 401 Unauthorized\r\nConnection: close\r\n\r\n"
                     "{\"error\":\"x\"}";
  assert_int_equal(ctl_http_parse(eofb, strlen(eofb), 0, &r, err, sizeof err),
                   0);
  assert_int_equal(ctl_http_parse(eofb, strlen(eofb), 1, &r, err, sizeof err),
                   1);
  assert_int_equal(r.status, 401);
  assert_string_equal(r.body, "{\"error\":\"x\"}");
  free(r.body);

  /* Chunked. */
  const char *ch = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                   "2\r\n[]\r\n0\r\n\r\n";
  assert_int_equal(ctl_http_parse(ch, strlen(ch), 0, &r, err, sizeof err), 1);
  assert_string_equal(r.body, "[]");
  free(r.body);

  /* Not HTTP at all (an SSH banner on the wrong port). */
  const char *ssh = "SSH-2.0-OpenSSH_9.2\r\n";
  assert_int_equal(ctl_http_parse(ssh, strlen(ssh), 0, &r, err, sizeof err),
                   -1);
  assert_true(strncmp(err, "malformed HTTP response: ", 25) == 0);
  assert_null(r.body);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_members_table_and_json),
      cmocka_unit_test(test_members_bad_shapes),
      cmocka_unit_test(test_routes),
      cmocka_unit_test(test_status),
      cmocka_unit_test(test_control_chars_sanitised),
      cmocka_unit_test(test_watch_diff),
      cmocka_unit_test(test_mesh),
      cmocka_unit_test(test_parse_target),
      cmocka_unit_test(test_http_parse_splits),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
