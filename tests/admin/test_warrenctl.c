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

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

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
  assert_string_equal(s, "NAME  OWNER     ACCOUNT  VERSION      STATE\n"
                         "app   n1        x        3            ACTIVE\n"
                         "b     node-two  -        12345678901  RELEASED\n");
  free(s);
  /* account null when the node (older) leaves it out; serving only when
   * sent. */
  cap_open(&c);
  ctl_print_json(c.f, r);
  s = cap_close(&c);
  assert_string_equal(s, "[{\"name\":\"app\",\"owner\":\"n1\",\"account\":"
                         "\"x\",\"version\":3,\"state\":\"ACTIVE\"},{\"name\""
                         ":\"b\",\"owner\":\"node-two\",\"account\":null,"
                         "\"version\":12345678901,\"state\":\"RELEASED\"}]\n");
  free(s);
  json_decref(r);
  r = parse("[{\"name\":\"a\",\"owner\":\"b\",\"version\":1,\"state\":"
            "\"active\",\"serving\":2,\"account\":null}]",
            ctl_check_routes, err);
  assert_non_null(r);
  cap_open(&c);
  ctl_print_json(c.f, r);
  s = cap_close(&c);
  assert_string_equal(s, "[{\"name\":\"a\",\"owner\":\"b\",\"account\":null,"
                         "\"version\":1,\"state\":\"active\",\"serving\":2}]"
                         "\n");
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

static const char cand_json[] =
    "{\"name\":\"app\",\"candidates\":["
    "{\"owner\":\"n1\",\"account\":\"acme\",\"session\":\"00ff\","
    "\"epoch\":3,\"seq\":2,\"version\":7,\"claimed_at\":3,"
    "\"state\":\"active\",\"options\":[\"balance\"],\"verdict\":\"serves\","
    "\"why\":\"highest version\",\"extra\":1},"
    "{\"owner\":\"node-two\",\"version\":5,\"claimed_at\":2,"
    "\"state\":\"released\",\"verdict\":\"released\"}]}";

static void test_candidates(void **state) {
  char err[256];
  json_t *c = parse(cand_json, ctl_check_candidates, err);
  assert_non_null(c);
  cap k;
  cap_open(&k);
  ctl_print_candidates(k.f, c);
  char *s = cap_close(&k);
  /* claimed_at is a Lamport version, printed "v<N>"; absent fields are
   * "-" and "(no reason given)". */
  assert_string_equal(
      s, "app: 2 candidates, 1 serves\n"
         "OWNER     ACCOUNT  VERSION  CLAIMED  STATE     VERDICT\n"
         "n1        acme     7        v3       active    serves\n"
         "node-two  -        5        v2       released  "
         "released\n"
         "why:\n"
         "  n1 v7 [balance]: highest version\n"
         "  node-two v5: (no reason given)\n");
  free(s);
  cap_open(&k);
  ctl_print_json(k.f, c);
  s = cap_close(&k);
  assert_string_equal(
      s, "{\"name\":\"app\",\"candidates\":[{\"owner\":\"n1\",\"account\":"
         "\"acme\",\"session\":\"00ff\",\"epoch\":3,\"seq\":2,\"version\":7,"
         "\"claimed_at\":3,\"state\":\"active\",\"options\":"
         "[\"balance\"],\"verdict\":\"serves\",\"why\":\"highest version\"},"
         "{\"owner\":\"node-two\",\"account\":null,\"session\":null,\"epoch\""
         ":null,\"seq\":null,\"version\":5,\"claimed_at\":2,\"state\""
         ":\"released\",\"options\":null,\"verdict\":\"released\",\"why\":"
         "null}]}\n");
  free(s);
  json_decref(c);

  c = parse("{\"name\":\"zz\",\"candidates\":[]}", ctl_check_candidates, err);
  cap_open(&k);
  ctl_print_candidates(k.f, c);
  s = cap_close(&k);
  assert_string_equal(s, "no entry for zz\n");
  free(s);
  json_decref(c);

  static const struct {
    const char *in, *err;
  } bad[] = {
      {"[]", "expected an object {\"name\",\"candidates\"} but got the whole "
             "route table (a node too old for --name?)"},
      {"{\"candidates\":[]}", "answer has no string \"name\""},
      {"{\"name\":\"a\"}", "expected a JSON array of candidates"},
      {"{\"name\":\"a\",\"candidates\":[{\"owner\":\"n\",\"version\":1,"
       "\"state\":\"active\"}]}",
       "candidate 1 has no string \"verdict\""},
      {"{\"name\":\"a\",\"candidates\":[{\"owner\":\"n\",\"version\":1,"
       "\"state\":\"active\",\"verdict\":\"serves\",\"options\":[1]}]}",
       "candidate 1 has no array of strings \"options\""},
  };
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    assert_null(parse(bad[i].in, ctl_check_candidates, err));
    assert_string_equal(err, bad[i].err);
  }
}

/* ---- mesh report ---- */

static json_t *mstatus(const char *id, const char *rd, long rage,
                       const char *md, long mage) {
  json_t *j = json_pack("{s:s,s:{s:i,s:i,s:i,s:i},s:i,s:s}", "id", id,
                        "members", "alive", 5, "suspect", 0, "dead", 0, "left",
                        0, "routes", 2, "routes_digest", rd);
  if (rage >= 0)
    json_object_set_new(j, "routes_digest_age_ms", json_integer(rage));
  if (md) json_object_set_new(j, "members_digest", json_string(md));
  if (mage >= 0)
    json_object_set_new(j, "members_digest_age_ms", json_integer(mage));
  char err[256];
  json_t *r = ctl_check_status_mesh(j, err, sizeof err);
  assert_non_null(r);
  json_decref(j);
  return r;
}

/* A member list in which every id of |ids| is alive except |odd| (state
 * |odd_state|). */
static json_t *mlist(const char *odd, const char *odd_state) {
  static const char *const ids[] = {"n1", "n2", "n3", "n4", "n5"};
  json_t *a = json_array();
  for (size_t i = 0; i < 5; i++)
    json_array_append_new(
        a, mem(ids[i], odd && !strcmp(ids[i], odd) ? odd_state : "alive", 1));
  return a;
}

static void node_set(ctl_mesh_node *nd, const char *id, const char *admin,
                     json_t *st, json_t *ml, const char *error) {
  memset(nd, 0, sizeof *nd);
  snprintf(nd->id, sizeof nd->id, "%s", id);
  snprintf(nd->admin, sizeof nd->admin, "%s", admin);
  snprintf(nd->state, sizeof nd->state, "alive");
  nd->status = st;
  nd->members = ml;
  snprintf(nd->error, sizeof nd->error, "%s", error ? error : "");
}

static void nodes_free(ctl_mesh_node *nd, size_t n) {
  for (size_t i = 0; i < n; i++) {
    json_decref(nd[i].status);
    json_decref(nd[i].members);
  }
}

static void test_mesh_report_converged(void **state) {
  ctl_mesh_node nd[5];
  char id[8], adm[32];
  for (int i = 0; i < 5; i++) {
    snprintf(id, sizeof id, "n%d", i + 1);
    snprintf(adm, sizeof adm, "10.0.0.%d:9081", i + 1);
    /* Only n1's member list (the first node's own) is at hand: equal
     * members digests stand for equal lists. */
    node_set(&nd[i], id, adm, mstatus(id, "rd1", 60000 + i, "md1", 9000 + i),
             i == 0 ? mlist(NULL, NULL) : NULL, NULL);
  }
  json_t *rep = ctl_mesh_analyse("10.0.0.1:9081", "n1", 5, nd, 5);
  assert_non_null(rep);
  assert_int_equal(ctl_mesh_exit(rep), 0);
  assert_true(ctl_mesh_group_rep(rep, nd, 5, 0) == 0);
  assert_true(ctl_mesh_group_rep(rep, nd, 5, 1) == -1);
  cap k;
  cap_open(&k);
  ctl_print_mesh_report(k.f, rep, 32);
  char *s = cap_close(&k);
  assert_string_equal(
      s,
      "mesh via 10.0.0.1:9081 (n1): 5 members, 5 live, 5 with an admin "
      "address, 5 answered\n"
      "NODE  STATE  ADMIN          ROUTES  ROUTES_DIGEST  MEMBERS_DIGEST  NOTE\n"
      "n1    alive  10.0.0.1:9081  2       A rd1          A md1\n"
      "n2    alive  10.0.0.2:9081  2       A rd1          A md1\n"
      "n3    alive  10.0.0.3:9081  2       A rd1          A md1\n"
      "n4    alive  10.0.0.4:9081  2       A rd1          A md1\n"
      "n5    alive  10.0.0.5:9081  2       A rd1          A md1\n"
      "routes: 1 digest\n"
      "  A  rd1  5 nodes, 2 routes, agreed for 1 min 0 s\n"
      "members: 1 digest\n"
      "  A  md1  5 nodes, agreed for 9.0 s\n"
      "converged: 5 nodes, 2 routes, routes digest rd1, members digest md1, "
      "agreed for 9.0 s\n");
  free(s);
  json_decref(rep);
  nodes_free(nd, 5);
}

static void test_mesh_report_diverged(void **state) {
  ctl_mesh_node nd[7];
  node_set(&nd[0], "n1", "h1:1", mstatus("n1", "rd1", 60000, "md1", 60000),
           mlist(NULL, NULL), NULL);
  node_set(&nd[1], "n2", "h2:1", mstatus("n2", "rd1", 61000, "md1", 61000),
           NULL, NULL);
  node_set(&nd[2], "n3", "h3:1", mstatus("n3", "rd1", 62000, "md1", 62000),
           NULL, NULL);
  /* n4: other routes for 5 s; n5: sees n3 dead for 7 s. */
  node_set(&nd[3], "n4", "h4:1", mstatus("n4", "rd2", 5000, "md1", 63000),
           NULL, NULL);
  node_set(&nd[4], "n5", "h5:1", mstatus("n5", "rd1", 64000, "md2", 7000),
           mlist("n3", "dead"), NULL);
  node_set(&nd[5], "gone", "h6:1", NULL, NULL, "connection refused");
  node_set(&nd[6], "noadmin", "", NULL, NULL, "no admin address");
  json_t *rep = ctl_mesh_analyse("h1:1", "n1", 8, nd, 7);
  assert_non_null(rep);
  assert_int_equal(ctl_mesh_exit(rep), 3);
  /* Routes: group A (4 nodes) is asked through n1, B through n4. */
  assert_true(ctl_mesh_group_rep(rep, nd, 7, 0) == 0);
  assert_true(ctl_mesh_group_rep(rep, nd, 7, 1) == 3);
  char err[256];
  json_t *tables[2] = {
      parse("[{\"name\":\"app\",\"owner\":\"n1\",\"version\":7,\"state\":"
            "\"active\"},{\"name\":\"api\",\"owner\":\"n2\",\"version\":3,"
            "\"state\":\"active\"}]",
            ctl_check_routes, err),
      parse("[{\"name\":\"app\",\"owner\":\"n2\",\"version\":6,\"state\":"
            "\"active\"},{\"name\":\"api\",\"owner\":\"n2\",\"version\":3,"
            "\"state\":\"active\"},{\"name\":\"new\",\"owner\":\"n4\","
            "\"version\":1,\"state\":\"active\"}]",
            ctl_check_routes, err)};
  const char *errs[2] = {NULL, NULL};
  ctl_mesh_add_route_diffs(rep, tables, errs);
  cap k;
  cap_open(&k);
  ctl_print_mesh_report(k.f, rep, 32);
  char *s = cap_close(&k);
  assert_string_equal(
      s,
      "mesh via h1:1 (n1): 8 members, 7 live, 6 with an admin address, 5 "
      "answered\n"
      "NODE     STATE  ADMIN  ROUTES  ROUTES_DIGEST  MEMBERS_DIGEST  NOTE\n"
      "n1       alive  h1:1   2       A rd1          A md1\n"
      "n2       alive  h2:1   2       A rd1          A md1\n"
      "n3       alive  h3:1   2       A rd1          A md1\n"
      "n4       alive  h4:1   2       B rd2          A md1           disagrees "
      "on routes (at least 5.0 s)\n"
      "n5       alive  h5:1   2       A rd1          B md2           disagrees "
      "on members (at least 7.0 s)\n"
      "gone     alive  h6:1   -       -              -               "
      "connection refused\n"
      "noadmin  alive  -      -       -              -               no admin "
      "address\n"
      "routes: 2 digests\n"
      "  A  rd1  4 nodes, 2 routes, agreed for 1 min 0 s\n"
      "  B  rd2  1 node (n4), 2 routes, disagrees for at least 5.0 s\n"
      "members: 2 digests\n"
      "  A  md1  4 nodes, agreed for 1 min 0 s\n"
      "  B  md2  1 node (n5), disagrees for at least 7.0 s\n"
      "route differences: 2\n"
      "  app: owner n1 v7 active at group A (4 nodes), owner n2 v6 active at "
      "group B (n4)\n"
      "  new: no route at group A (4 nodes), owner n4 v1 active at group B "
      "(n4)\n"
      "member differences: 1\n"
      "  n3: alive at 4 nodes, dead at n5\n"
      "unreachable: 2 of 7 live\n"
      "  gone (h6:1): connection refused\n"
      "  noadmin: no admin address\n"
      "not converged: 2 routes digests, 2 members digests (2 unreachable)\n");
  free(s);
  /* The JSON has everything the text says. */
  json_t *r = json_object_get(rep, "routes");
  json_t *d0 = json_array_get(json_object_get(r, "differences"), 0);
  assert_string_equal(json_string_value(json_object_get(d0, "name")), "app");
  assert_int_equal(json_integer_value(json_object_get(r, "differences_total")),
                   2);
  json_t *g1 = json_array_get(json_object_get(r, "groups"), 1);
  assert_int_equal(json_integer_value(json_object_get(g1, "disagrees_ms")),
                   5000);
  json_t *n4 = json_array_get(json_object_get(rep, "nodes"), 3);
  assert_int_equal(
      json_integer_value(json_object_get(n4, "routes_disagrees_ms")), 5000);
  assert_true(json_is_null(json_object_get(n4, "members_disagrees_ms")));
  json_t *m = json_object_get(rep, "members");
  json_t *md0 = json_array_get(json_object_get(m, "differences"), 0);
  assert_string_equal(json_string_value(json_object_get(md0, "id")), "n3");
  json_t *v1 = json_array_get(json_object_get(md0, "views"), 1);
  assert_string_equal(json_string_value(json_object_get(v1, "state")), "dead");
  assert_string_equal(
      json_string_value(json_array_get(json_object_get(v1, "ids"), 0)), "n5");
  json_t *un = json_object_get(rep, "unreachable");
  assert_int_equal(json_array_size(un), 2);
  assert_true(json_is_null(json_object_get(json_array_get(un, 1), "admin")));
  assert_false(json_is_true(json_object_get(rep, "converged")));
  assert_int_equal(json_integer_value(json_object_get(rep, "reachable")), 5);
  json_decref(tables[0]);
  json_decref(tables[1]);
  json_decref(rep);
  nodes_free(nd, 7);
}

/* Nodes that send no members_digest (or no ages): warrenctl fingerprints
 * the member lists itself and leaves ages out. */
static void test_mesh_report_fingerprint(void **state) {
  ctl_mesh_node nd[3];
  node_set(&nd[0], "n1", "h1:1", mstatus("n1", "rd1", -1, NULL, -1),
           mlist(NULL, NULL), NULL);
  node_set(&nd[1], "n2", "h2:1", mstatus("n2", "rd1", -1, NULL, -1),
           mlist(NULL, NULL), NULL);
  node_set(&nd[2], "n3", "h3:1", mstatus("n3", "rd1", -1, NULL, -1),
           mlist("n5", "suspect"), NULL);
  json_t *rep = ctl_mesh_analyse("h1:1", "n1", 5, nd, 3);
  assert_int_equal(ctl_mesh_exit(rep), 3);
  json_t *m = json_object_get(rep, "members");
  json_t *g = json_object_get(m, "groups");
  assert_int_equal(json_array_size(g), 2);
  const char *d = json_string_value(json_object_get(json_array_get(g, 0),
                                                    "digest"));
  assert_true(d[0] == '~' && strlen(d) == 17);
  assert_true(json_is_null(json_object_get(json_array_get(g, 0), "agreed_ms")));
  assert_true(json_object_get(json_object_get(rep, "routes"), "converged") ==
              json_true());
  cap k;
  cap_open(&k);
  ctl_print_mesh_report(k.f, rep, 0); /* summary only */
  char *s = cap_close(&k);
  assert_non_null(strstr(s, "  n5: alive at n1, n2, suspect at n3\n"));
  assert_null(strstr(s, "NODE"));
  assert_null(strstr(s, "agreed for"));
  free(s);
  json_decref(rep);
  nodes_free(nd, 3);

  /* A group whose list could not be fetched is reported, not guessed. */
  node_set(&nd[0], "n1", "h1:1", mstatus("n1", "rd1", 1, "md1", 1),
           mlist(NULL, NULL), NULL);
  node_set(&nd[1], "n2", "h2:1", mstatus("n2", "rd1", 1, "md2", 1), NULL,
           "/members: timed out after 5000 ms");
  rep = ctl_mesh_analyse("h1:1", "n1", 2, nd, 2);
  assert_int_equal(ctl_mesh_exit(rep), 3);
  json_t *u = json_array_get(
      json_object_get(json_object_get(rep, "members"), "unfetched"), 0);
  assert_string_equal(json_string_value(json_object_get(u, "group")), "B");
  cap_open(&k);
  ctl_print_mesh_report(k.f, rep, 32);
  s = cap_close(&k);
  assert_non_null(strstr(s, "  (members of group B not compared: /members: "
                            "timed out after 5000 ms)\n"));
  assert_non_null(strstr(s, "answered\n")); /* n2 still counts as reachable */
  assert_int_equal(json_integer_value(json_object_get(rep, "reachable")), 2);
  free(s);
  json_decref(rep);
  nodes_free(nd, 2);
}

/* At 500 nodes the text is a summary: bounded whatever the fleet. */
static void test_mesh_report_large(void **state) {
  enum { N = 500 };
  ctl_mesh_node *nd = calloc(N, sizeof *nd);
  for (int i = 0; i < N; i++) {
    char id[16], adm[32], rd[16];
    snprintf(id, sizeof id, "n%d", i + 1);
    snprintf(adm, sizeof adm, "10.0.%d.%d:9081", i / 250, i % 250);
    /* 40 nodes in 20 odd routes groups, 30 unreachable. */
    snprintf(rd, sizeof rd, "rd%d", i < 40 ? i / 2 + 1 : 0);
    if (i >= N - 30)
      node_set(&nd[i], id, adm, NULL, NULL, "timed out after 5000 ms");
    else
      node_set(&nd[i], id, adm, mstatus(id, rd, 1000, "md", 1000),
               i == 0 ? mlist(NULL, NULL) : NULL, NULL);
  }
  json_t *rep = ctl_mesh_analyse("10.0.0.0:9081", "n1", N, nd, N);
  cap k;
  cap_open(&k);
  ctl_print_mesh_report(k.f, rep, 32);
  char *s = cap_close(&k);
  size_t lines = 0;
  for (char *p = s; *p; p++) lines += *p == '\n';
  assert_true(lines < 40);
  assert_non_null(strstr(s, "routes: 21 digests\n"));
  assert_non_null(strstr(s, "  A  rd0  430 nodes, 2 routes"));
  assert_non_null(strstr(s, "  and 11 more\n"));
  assert_non_null(strstr(s, "unreachable: 30 of 500 live\n"));
  assert_non_null(strstr(s, "  and 25 more\n"));
  free(s);
  assert_int_equal(json_array_size(json_object_get(rep, "nodes")), N);
  json_decref(rep);
  nodes_free(nd, N);
  free(nd);
}

/* ctl_http_get_many against a port that accepts and never answers: each
 * GET ends at its timeout, the run at its budget, and what was never
 * started says so.  And a refused port fails at once. */
static void test_get_many_limits(void **state) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET,
                          .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t l = sizeof a;
  assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
  assert_int_equal(listen(fd, 128), 0);
  assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &l), 0);
  char addr[32];
  snprintf(addr, sizeof addr, "127.0.0.1:%d", ntohs(a.sin_port));
  enum { N = 40 };
  ctl_get *g = calloc(N, sizeof *g);
  for (int i = 0; i < N; i++) {
    assert_int_equal(ctl_parse_target(addr, &g[i].target), 0);
    g[i].path = "/status";
  }
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  /* 4 at a time, 200 ms each, 500 ms in all: 8 time out on their own,
   * 4 are cut by the budget, 28 are never asked (on a loaded machine a
   * late start may move a batch from one kind to the next). */
  ctl_http_get_many(g, N, NULL, 200, 500, 4);
  clock_gettime(CLOCK_MONOTONIC, &t1);
  double took = (double)(t1.tv_sec - t0.tv_sec) +
                (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
  int own = 0, cut = 0, never = 0;
  for (int i = 0; i < N; i++) {
    assert_int_equal(g[i].rv, -1);
    assert_null(g[i].resp.body);
    if (!strcmp(g[i].err, "timed out after 200 ms"))
      own++;
    else if (!strcmp(g[i].err, "timed out: overall time limit reached"))
      cut++;
    else if (!strcmp(g[i].err, "not asked: overall time limit reached"))
      never++;
    else
      fail_msg("unexpected error %s", g[i].err);
  }
  assert_true(own >= 4 && own <= 8);
  assert_true(cut <= 4 && own + cut >= 8);
  assert_true(never >= N - 12);
  assert_true(took >= 0.45 && took < 2.0);
  close(fd);

  /* Refused: immediate, whatever the timeout. */
  fd = socket(AF_INET, SOCK_STREAM, 0);
  a.sin_port = 0;
  assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
  assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &l), 0);
  snprintf(addr, sizeof addr, "127.0.0.1:%d", ntohs(a.sin_port));
  close(fd);
  for (int i = 0; i < 3; i++)
    assert_int_equal(ctl_parse_target(addr, &g[i].target), 0);
  clock_gettime(CLOCK_MONOTONIC, &t0);
  ctl_http_get_many(g, 3, "tok", 5000, 5000, 2);
  clock_gettime(CLOCK_MONOTONIC, &t1);
  for (int i = 0; i < 3; i++) assert_string_equal(g[i].err, "connection refused");
  assert_true(t1.tv_sec - t0.tv_sec < 2);
  free(g);
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
      cmocka_unit_test(test_candidates),
      cmocka_unit_test(test_mesh_report_converged),
      cmocka_unit_test(test_mesh_report_diverged),
      cmocka_unit_test(test_mesh_report_fingerprint),
      cmocka_unit_test(test_mesh_report_large),
      cmocka_unit_test(test_get_many_limits),
      cmocka_unit_test(test_parse_target),
      cmocka_unit_test(test_http_parse_splits),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
