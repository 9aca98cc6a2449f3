/*
 * Tests for src/proxy/conncap.c: per-source counts (an address at zero
 * is forgotten, so the table holds only sources with connections),
 * colliding addresses kept apart, IPv4 mapped into IPv6, and the default
 * caps from the descriptor limit.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <arpa/inet.h>
#include <cmocka.h>

#include "../../src/proxy/conncap.h"

static void ip4(uint8_t ip[16], const char *a) {
  struct sockaddr_storage ss;
  memset(&ss, 0, sizeof ss);
  struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
  sin->sin_family = AF_INET;
  assert_int_equal(inet_pton(AF_INET, a, &sin->sin_addr), 1);
  conncap_ip16(&ss, ip);
}

static size_t entries(const conncap *c) {
  size_t n = 0;
  for (int i = 0; i < CONNCAP_BUCKETS; i++)
    for (const conncap_src *e = c->src[i]; e; e = e->next) n++;
  return n;
}

static void test_counts(void **state) {
  (void)state;
  static conncap c;
  memset(&c, 0, sizeof c);
  uint8_t a[16], b[16];
  ip4(a, "192.0.2.1");
  ip4(b, "192.0.2.2");
  static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  assert_memory_equal(a, mapped, 12);
  assert_int_equal(conncap_count(&c, a), 0);
  for (int i = 0; i < 3; i++) assert_int_equal(conncap_add(&c, a), 0);
  assert_int_equal(conncap_add(&c, b), 0);
  assert_int_equal(conncap_count(&c, a), 3);
  assert_int_equal(conncap_count(&c, b), 1);
  assert_int_equal(entries(&c), 2);
  conncap_del(&c, b);
  assert_int_equal(entries(&c), 1);
  conncap_del(&c, b); /* unknown: harmless */
  for (int i = 0; i < 3; i++) conncap_del(&c, a);
  assert_int_equal(conncap_count(&c, a), 0);
  assert_int_equal(entries(&c), 0);
}

/* More addresses than buckets: chains keep them apart. */
static void test_many(void **state) {
  (void)state;
  static conncap c;
  memset(&c, 0, sizeof c);
  uint8_t ip[16];
  for (unsigned i = 0; i < 3 * CONNCAP_BUCKETS; i++) {
    memset(ip, 0, 16);
    memcpy(ip + 12, &i, sizeof i);
    assert_int_equal(conncap_add(&c, ip), 0);
  }
  assert_int_equal(entries(&c), 3 * CONNCAP_BUCKETS);
  for (unsigned i = 0; i < 3 * CONNCAP_BUCKETS; i++) {
    memset(ip, 0, 16);
    memcpy(ip + 12, &i, sizeof i);
    assert_int_equal(conncap_count(&c, ip), 1);
    conncap_del(&c, ip);
  }
  assert_int_equal(entries(&c), 0);
}

static void test_defaults(void **state) {
  (void)state;
  unsigned t = 0, p = 0;
  conncap_defaults(1024, &t, &p); /* keep 256 */
  assert_int_equal(t, 768);
  assert_int_equal(p, 192);
  t = p = 0;
  conncap_defaults(100, &t, &p); /* keep 64 */
  assert_int_equal(t, 36);
  assert_int_equal(p, 9);
  t = p = 0;
  conncap_defaults(20, &t, &p); /* floors */
  assert_int_equal(t, 16);
  assert_int_equal(p, 8);
  t = 500, p = 0; /* a given total: per source from it */
  conncap_defaults(1u << 20, &t, &p);
  assert_int_equal(t, 500);
  assert_int_equal(p, 125);
  t = p = 0;
  conncap_defaults(UINT64_MAX / 2, &t, &p);
  assert_int_equal(t, 1u << 24);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_counts),
      cmocka_unit_test(test_many),
      cmocka_unit_test(test_defaults),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
