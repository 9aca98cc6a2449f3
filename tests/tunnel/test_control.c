/*
 * Control message tests: every kind round-trips; strings at and over their
 * bounds; garbage, truncation at every offset and unknown kinds are
 * WR_ERR_PROTO; bytes from the protobuf spec's encoding rules decode as
 * expected (so the wire really is control.proto); the DNS label table; the
 * lines users see; a failing allocator.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "failmalloc.h"
#include "warren/control.h"
#include "warren/err.h"
#include "warren/pcg.h"

static uint8_t wire[WR_CONTROL_MAX_WIRE + 64];

static wr_control_msg sample(wr_control_type t) {
  wr_control_msg m;
  memset(&m, 0, sizeof m);
  m.type = t;
  switch (t) {
  case WR_CONTROL_HELLO:
    m.u.hello.protocol_version = WR_CONTROL_PROTOCOL_VERSION;
    strcpy(m.u.hello.token, "s3cret-token");
    strcpy(m.u.hello.client_version, "warren/0.1.0");
    break;
  case WR_CONTROL_BIND:
    strcpy(m.u.bind.name, "app");
    strcpy(m.u.bind.account, "alice");
    for (int i = 0; i < WR_CONTROL_SESSION_LEN; i++)
      m.u.bind.session[i] = (uint8_t)(0xa0 + i);
    m.u.bind.options = WR_CONTROL_BIND_BALANCE;
    break;
  case WR_CONTROL_BOUND:
    strcpy(m.u.bound.name, "app");
    strcpy(m.u.bound.url, "http://app.example.com");
    break;
  case WR_CONTROL_ERROR:
    m.u.error.code = WR_CONTROL_ERR_NAME_TAKEN;
    strcpy(m.u.error.name, "app");
    strcpy(m.u.error.message, "owner bob");
    break;
  case WR_CONTROL_GOAWAY:
    strcpy(m.u.goaway.reason, "drain");
    m.u.goaway.drain_ms = 30000;
    break;
  }
  return m;
}

static void test_round_trip(void **state) {
  (void)state;
  for (int t = WR_CONTROL_HELLO; t <= WR_CONTROL_GOAWAY; t++) {
    wr_control_msg m = sample((wr_control_type)t), back;
    wr_ssize n = wr_control_encode(&m, wire, sizeof wire);
    assert_true(n > 0);
    assert_int_equal(wr_control_decode(wire, (size_t)n, &back), 0);
    assert_memory_equal(&m, &back, sizeof m);
    /* Every proper prefix is rejected: a truncated message is cut
     * inside a length-delimited field or misses the kind. */
    for (size_t k = 0; k < (size_t)n; k++) {
      int rv = wr_control_decode(wire, k, &back);
      assert_int_equal(rv, WR_ERR_PROTO);
      assert_int_equal(back.type, 0);
    }
    /* Too small an output buffer. */
    assert_int_equal(wr_control_encode(&m, wire, (size_t)n - 1), WR_ERR_NOBUF);
  }
  /* Empty strings and the empty name (node picks) survive. */
  wr_control_msg m, back;
  memset(&m, 0, sizeof m);
  m.type = WR_CONTROL_BIND;
  wr_ssize n = wr_control_encode(&m, wire, sizeof wire);
  assert_int_equal(n, 2); /* field 2, length 0 */
  assert_int_equal(wr_control_decode(wire, 2, &back), 0);
  assert_int_equal(back.type, WR_CONTROL_BIND);
  assert_string_equal(back.u.bind.name, "");
  /* A session of another length than 16 bytes is malformed:
   * Control{bind(2): Bind{session(3) 3 bytes}}. */
  static const uint8_t short_session[] = {0x12, 0x05, 0x1a, 0x03, 1, 2, 3};
  assert_int_equal(wr_control_decode(short_session, sizeof short_session,
                                     &back),
                   WR_ERR_PROTO);
}

/* Bytes written by hand from the protobuf encoding rules. */
static void test_wire_format(void **state) {
  /* Control{bound(3): Bound{name(1) "ab", url(2) "u"}} */
  static const uint8_t bound[] = {0x1a, 0x07, 0x0a, 0x02, 'a',
                                  'b',  0x12, 0x01, 'u'};
  /* Control{error(4): Error{code(1) 5, message(2) "x"}} + unknown field 9 */
  static const uint8_t error[] = {0x22, 0x05, 0x08, 0x05, 0x12,
                                  0x01, 'x',  0x48, 0x01};
  /* Control{hello(1): Hello{protocol_version 300}} */
  static const uint8_t hello[] = {0x0a, 0x03, 0x08, 0xac, 0x02};
  wr_control_msg m;
  (void)state;
  assert_int_equal(wr_control_decode(bound, sizeof bound, &m), 0);
  assert_int_equal(m.type, WR_CONTROL_BOUND);
  assert_string_equal(m.u.bound.name, "ab");
  assert_string_equal(m.u.bound.url, "u");
  assert_int_equal(wr_control_decode(error, sizeof error, &m), 0);
  assert_int_equal(m.type, WR_CONTROL_ERROR);
  assert_int_equal(m.u.error.code, WR_CONTROL_ERR_NODE_DRAINING);
  assert_string_equal(m.u.error.message, "x");
  assert_int_equal(wr_control_decode(hello, sizeof hello, &m), 0);
  assert_int_equal(m.u.hello.protocol_version, 300);
  /* And our encoder writes the same bytes. */
  memset(&m, 0, sizeof m);
  m.type = WR_CONTROL_BOUND;
  strcpy(m.u.bound.name, "ab");
  strcpy(m.u.bound.url, "u");
  assert_int_equal(wr_control_encode(&m, wire, sizeof wire), sizeof bound);
  assert_memory_equal(wire, bound, sizeof bound);
}

static void test_garbage(void **state) {
  static const uint8_t unknown_kind[] = {0x32, 0x00}; /* field 6 */
  static const uint8_t bad_wire_type[] = {0x0b};
  static const uint8_t long_len[] = {0x0a, 0x7f, 0x00};
  static const uint8_t bad_varint[] = {0x0a, 0x0b, 0x08, 0xff, 0xff,
                                       0xff, 0xff, 0xff, 0xff, 0xff,
                                       0xff, 0xff, 0xff, 0xff};
  wr_control_msg m;
  wr_pcg32 g;
  (void)state;
  assert_int_equal(wr_control_decode(wire, 0, &m), WR_ERR_PROTO);
  assert_int_equal(wr_control_decode(unknown_kind, 2, &m), WR_ERR_PROTO);
  assert_int_equal(wr_control_decode(bad_wire_type, 1, &m), WR_ERR_PROTO);
  assert_int_equal(wr_control_decode(long_len, 3, &m), WR_ERR_PROTO);
  assert_int_equal(wr_control_decode(bad_varint, sizeof bad_varint, &m),
                   WR_ERR_PROTO);
  memset(wire, 0, sizeof wire);
  assert_int_equal(wr_control_decode(wire, WR_CONTROL_MAX_WIRE + 1, &m),
                   WR_ERR_PROTO);
  /* Random bytes: any result but a crash or a leak (ASan); most fail. */
  wr_pcg32_seed(&g, 77, 1);
  int fails = 0;
  for (int i = 0; i < 2000; i++) {
    size_t len = wr_pcg32_bounded(&g, 64);
    wr_pcg32_fill(wire, len, &g);
    if (wr_control_decode(wire, len, &m) == WR_ERR_PROTO) fails++;
  }
  assert_true(fails > 1500);
}

static void test_bounds(void **state) {
  wr_control_msg m, back;
  wr_ssize n;
  (void)state;
  /* A token exactly at the bound round-trips. */
  m = sample(WR_CONTROL_HELLO);
  memset(m.u.hello.token, 't', WR_CONTROL_TOKEN_MAX);
  m.u.hello.token[WR_CONTROL_TOKEN_MAX] = 0;
  n = wr_control_encode(&m, wire, sizeof wire);
  assert_true(n > WR_CONTROL_TOKEN_MAX);
  assert_int_equal(wr_control_decode(wire, (size_t)n, &back), 0);
  assert_int_equal(strlen(back.u.hello.token), WR_CONTROL_TOKEN_MAX);
  /* Unterminated: the caller's bug. */
  m.u.hello.token[WR_CONTROL_TOKEN_MAX] = 't';
  assert_int_equal(wr_control_encode(&m, wire, sizeof wire), WR_ERR_INVAL);
  m.type = (wr_control_type)9;
  assert_int_equal(wr_control_encode(&m, wire, sizeof wire), WR_ERR_INVAL);
  /* One over the bound on the wire: Control{bind: Bind{name(256 bytes)}}. */
  size_t L = WR_CONTROL_NAME_MAX + 1;
  uint8_t *p = wire;
  *p++ = 0x12;
  *p++ = (uint8_t)(0x80 | ((L + 3) & 0x7f));
  *p++ = (uint8_t)((L + 3) >> 7);
  *p++ = 0x0a;
  *p++ = (uint8_t)(0x80 | (L & 0x7f));
  *p++ = (uint8_t)(L >> 7);
  memset(p, 'a', L);
  assert_int_equal(wr_control_decode(wire, (size_t)(p - wire) + L, &back),
                   WR_ERR_PROTO);
  /* At the bound it decodes (and the name check then refuses it). */
  wire[1] = (uint8_t)(0x80 | ((L + 2) & 0x7f));
  wire[2] = (uint8_t)((L + 2) >> 7);
  wire[4] = (uint8_t)(0x80 | ((L - 1) & 0x7f));
  wire[5] = (uint8_t)((L - 1) >> 7);
  assert_int_equal(wr_control_decode(wire, (size_t)(p - wire) + L - 1, &back),
                   0);
  assert_int_equal(strlen(back.u.bind.name), WR_CONTROL_NAME_MAX);
  assert_false(wr_control_name_valid(back.u.bind.name));
}

static void test_name_valid(void **state) {
  static const struct {
    const char *name;
    int ok;
  } cases[] = {
      {"app", 1},
      {"a", 1},
      {"0", 1},
      {"my-app-2", 1},
      {"a-b", 1},
      {"a--b", 1},
      {"123456789012345678901234567890123456789012345678901234567890123", 1},
      {"1234567890123456789012345678901234567890123456789012345678901234", 0},
      {"", 0},
      {"-app", 0},
      {"app-", 0},
      {"-", 0},
      {"App", 0},
      {"my_app", 0},
      {"my.app", 0},
      {"app ", 0},
      {"caf\xc3\xa9", 0},
      {"a/b", 0},
  };
  (void)state;
  for (size_t i = 0; i < WR_ARRAY_LEN(cases); i++)
    assert_int_equal(wr_control_name_valid(cases[i].name), cases[i].ok);
  assert_int_equal(wr_control_name_valid(NULL), 0);
}

static void test_error_lines(void **state) {
  wr_control_msg m = sample(WR_CONTROL_ERROR);
  char line[200];
  (void)state;
  wr_control_error_line(&m, line, sizeof line);
  assert_string_equal(line, "name 'app' is taken on this fleet (another client is serving it)");
  m.u.error.code = WR_CONTROL_ERR_BAD_NAME;
  strcpy(m.u.error.name, "Bad\x1b[2J");
  wr_control_error_line(&m, line, sizeof line);
  assert_non_null(strstr(line, "'Bad?[2J'"));
  m.u.error.code = WR_CONTROL_ERR_BAD_TOKEN;
  wr_control_error_line(&m, line, sizeof line);
  assert_string_equal(line, wr_control_error_text(WR_CONTROL_ERR_BAD_TOKEN));
  m.u.error.code = 99;
  wr_control_error_line(&m, line, sizeof line);
  assert_string_equal(line, "error 99 from the node: owner bob");
  /* Every known code has its own text. */
  for (uint32_t a = 1; a <= WR_CONTROL_ERR_NAME_MOVED; a++) {
    assert_string_not_equal(wr_control_error_text(a),
                            wr_control_error_text(99));
    for (uint32_t b = a + 1; b <= WR_CONTROL_ERR_NAME_MOVED; b++)
      assert_string_not_equal(wr_control_error_text(a),
                              wr_control_error_text(b));
  }
  m.u.error.code = WR_CONTROL_ERR_NAME_MOVED;
  strcpy(m.u.error.name, "app");
  wr_control_error_line(&m, line, sizeof line);
  assert_non_null(strstr(line, "name 'app' moved"));
  /* Truncation follows snprintf. */
  m.u.error.code = WR_CONTROL_ERR_NAME_TAKEN;
  strcpy(m.u.error.name, "app");
  int want = wr_control_error_line(&m, line, 5);
  assert_int_equal(want, strlen("name 'app' is taken on this fleet (another "
                                "client is serving it)"));
  assert_string_equal(line, "name");
}

static void test_failmalloc(void **state) {
  wr_control_msg m = sample(WR_CONTROL_HELLO), back;
  wr_ssize n = wr_control_encode(&m, wire, sizeof wire);
  long k;
  (void)state;
  for (k = 1;; k++) {
    failmalloc fm;
    failmalloc_init(&fm, k);
    int rv = wr_control_decode_mem(wire, (size_t)n, &back, &fm.mem);
    assert_int_equal(fm.live, 0);
    if (rv == 0) break;
    assert_int_equal(rv, WR_ERR_NOMEM);
    assert_true(k < 20);
  }
  assert_true(k > 1);
  assert_memory_equal(&m, &back, sizeof m);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_round_trip), cmocka_unit_test(test_wire_format),
      cmocka_unit_test(test_garbage),    cmocka_unit_test(test_bounds),
      cmocka_unit_test(test_name_valid), cmocka_unit_test(test_error_lines),
      cmocka_unit_test(test_failmalloc),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
