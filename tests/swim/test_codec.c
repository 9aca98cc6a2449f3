/* Unit tests for the SWIM wire codec: every message and update kind round
 * trips; every truncation and trailing byte is refused; bounds hold. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "warren/err.h"
#include "warren/swim_codec.h"

static wr_addr a4(uint8_t last, uint16_t port) {
  wr_addr a = {.family = 4, .ip = {127, 0, 0, last}, .port = port};
  return a;
}

static void sample(wr_swim_packet *p) {
  memset(p, 0, sizeof *p);
  p->type = WR_SWIM_PING_REQ;
  p->seq = 0xdeadbeef;
  strcpy(p->from, "n1");
  strcpy(p->target, "n7");
  p->target_addr = a4(7, 7946);
  static const uint8_t payload[] = "app->n3";
  wr_swim_update *u = p->updates;
  u[0].kind = WR_SWIM_UPD_ALIVE;
  strcpy(u[0].id, "n2");
  u[0].incarnation = 3;
  u[0].gossip = a4(2, 7946);
  u[0].data = (wr_addr){.family = 6, .ip = {[15] = 1}, .port = 8081};
  strcpy(u[0].region, "eu-west");
  strcpy(u[0].tags, "role=edge,zone=b");
  u[1].kind = WR_SWIM_UPD_SUSPECT;
  strcpy(u[1].id, "n3");
  u[1].incarnation = 9;
  strcpy(u[1].from, "n1");
  u[2].kind = WR_SWIM_UPD_DEAD;
  strcpy(u[2].id, "n4");
  strcpy(u[2].from, "n5");
  u[3].kind = WR_SWIM_UPD_LEFT;
  strcpy(u[3].id, "n6");
  u[3].incarnation = 1;
  u[4].kind = WR_SWIM_UPD_USER;
  strcpy(u[4].id, "n3");
  strcpy(u[4].key, "route/app");
  u[4].version = 0x0102030405060708ULL;
  u[4].payload = payload;
  u[4].payload_len = sizeof payload;
  p->nupdates = 5;
}

static void test_roundtrip_every_kind(void **state) {
  (void)state;
  wr_swim_packet p, q;
  uint8_t buf[WR_SWIM_PACKET_MAX];
  sample(&p);
  size_t want = 1 + 1 + 4 + 3 + 3 + 7 + 1;
  for (size_t i = 0; i < p.nupdates; i++)
    want += wr_swim_update_size(&p.updates[i]);
  wr_ssize n = wr_swim_encode(&p, buf, sizeof buf);
  assert_int_equal(n, want);
  assert_int_equal(wr_swim_decode(buf, (size_t)n, &q), 0);
  assert_int_equal(q.type, WR_SWIM_PING_REQ);
  assert_int_equal(q.seq, 0xdeadbeef);
  assert_string_equal(q.from, "n1");
  assert_string_equal(q.target, "n7");
  assert_memory_equal(&q.target_addr, &p.target_addr, sizeof(wr_addr));
  assert_int_equal(q.nupdates, 5);
  assert_memory_equal(&q.updates[0].gossip, &p.updates[0].gossip,
                      sizeof(wr_addr));
  assert_memory_equal(&q.updates[0].data, &p.updates[0].data,
                      sizeof(wr_addr));
  assert_string_equal(q.updates[0].region, "eu-west");
  assert_string_equal(q.updates[0].tags, "role=edge,zone=b");
  assert_string_equal(q.updates[1].from, "n1");
  assert_int_equal(q.updates[1].incarnation, 9);
  assert_int_equal(q.updates[2].kind, WR_SWIM_UPD_DEAD);
  assert_int_equal(q.updates[3].kind, WR_SWIM_UPD_LEFT);
  assert_true(q.updates[4].version == 0x0102030405060708ULL);
  assert_int_equal(q.updates[4].payload_len, p.updates[4].payload_len);
  assert_memory_equal(q.updates[4].payload, p.updates[4].payload,
                      p.updates[4].payload_len);
  /* The payload is a view into the input, not a copy. */
  assert_true(q.updates[4].payload >= buf && q.updates[4].payload < buf + n);
  /* Re-encoding gives the same bytes. */
  uint8_t again[WR_SWIM_PACKET_MAX];
  assert_int_equal(wr_swim_encode(&q, again, sizeof again), n);
  assert_memory_equal(again, buf, (size_t)n);
}

static void test_truncation_and_trailing(void **state) {
  (void)state;
  wr_swim_packet p, q;
  uint8_t buf[WR_SWIM_PACKET_MAX + 1];
  sample(&p);
  wr_ssize n = wr_swim_encode(&p, buf, sizeof buf);
  for (size_t l = 0; l < (size_t)n; l++)
    assert_int_not_equal(wr_swim_decode(buf, l, &q), 0);
  buf[n] = 0;
  assert_int_equal(wr_swim_decode(buf, (size_t)n + 1, &q), WR_ERR_PROTO);
  /* Encoding into every too-small buffer fails cleanly. */
  for (size_t cap = 0; cap < (size_t)n; cap++)
    assert_int_equal(wr_swim_encode(&p, buf, cap), WR_ERR_NOBUF);
}

static void test_rejections(void **state) {
  (void)state;
  wr_swim_packet p, q;
  uint8_t buf[WR_SWIM_PACKET_MAX + 8];
  sample(&p);
  wr_ssize n = wr_swim_encode(&p, buf, sizeof buf);
  buf[0] = 2;
  assert_int_equal(wr_swim_decode(buf, (size_t)n, &q), WR_ERR_VERSION);
  buf[0] = 1;
  buf[1] = 9; /* unknown message type */
  assert_int_equal(wr_swim_decode(buf, (size_t)n, &q), WR_ERR_PROTO);
  buf[1] = WR_SWIM_PING_REQ;
  buf[7] = 'x' ^ 0x80; /* a non-ASCII byte in "from" */
  assert_int_equal(wr_swim_decode(buf, (size_t)n, &q), WR_ERR_PROTO);
  buf[7] = 0; /* a NUL would shorten the C string (found by fuzzing) */
  assert_int_equal(wr_swim_decode(buf, (size_t)n, &q), WR_ERR_PROTO);
  buf[7] = 'n';
  assert_int_equal(wr_swim_decode(buf, (size_t)n, &q), 0);
  /* Oversized packets are refused before parsing. */
  memset(buf, 0, sizeof buf);
  assert_int_equal(wr_swim_decode(buf, WR_SWIM_PACKET_MAX + 1, &q),
                   WR_ERR_PROTO);
  /* Fields that cannot be encoded. */
  sample(&p);
  strcpy(p.from, "has space");
  assert_int_equal(wr_swim_encode(&p, buf, sizeof buf), WR_ERR_INVAL);
  sample(&p);
  p.updates[0].gossip.family = 5;
  assert_int_equal(wr_swim_update_size(&p.updates[0]), 0);
  assert_int_equal(wr_swim_encode(&p, buf, sizeof buf), WR_ERR_INVAL);
  sample(&p);
  p.updates[4].payload_len = WR_SWIM_USER_MAX + 1;
  assert_int_equal(wr_swim_encode(&p, buf, sizeof buf), WR_ERR_INVAL);
  sample(&p);
  p.updates[1].kind = 42;
  assert_int_equal(wr_swim_encode(&p, buf, sizeof buf), WR_ERR_INVAL);
}

static void test_ping_ack_minimal(void **state) {
  (void)state;
  wr_swim_packet p, q;
  uint8_t buf[64];
  memset(&p, 0, sizeof p);
  p.type = WR_SWIM_ACK;
  p.seq = 7;
  strcpy(p.from, "n9");
  wr_ssize n = wr_swim_encode(&p, buf, sizeof buf);
  assert_int_equal(n, 1 + 1 + 4 + 3 + 1);
  assert_int_equal(wr_swim_decode(buf, (size_t)n, &q), 0);
  assert_int_equal(q.type, WR_SWIM_ACK);
  assert_int_equal(q.nupdates, 0);
  /* An empty PING target is a join probe ("whoever listens here"). */
  p.type = WR_SWIM_PING;
  n = wr_swim_encode(&p, buf, sizeof buf);
  assert_int_equal(n, 1 + 1 + 4 + 3 + 1 + 1);
  assert_int_equal(wr_swim_decode(buf, (size_t)n, &q), 0);
  assert_string_equal(q.target, "");
  /* ... but a PING_REQ must name whom to probe. */
  p.type = WR_SWIM_PING_REQ;
  p.target_addr.family = 4;
  assert_int_equal(wr_swim_encode(&p, buf, sizeof buf), WR_ERR_INVAL);
  strcpy(p.target, "n1");
  assert_true(wr_swim_encode(&p, buf, sizeof buf) > 0);
  /* GOSSIP carries updates only. */
  p.type = WR_SWIM_GOSSIP;
  n = wr_swim_encode(&p, buf, sizeof buf);
  assert_int_equal(n, 1 + 1 + 4 + 3 + 1);
  assert_int_equal(wr_swim_decode(buf, (size_t)n, &q), 0);
  assert_int_equal(q.type, WR_SWIM_GOSSIP);
  /* NACK_REFUSED is a bare NACK with its own type; the next type
   * number is unknown and refused. */
  p.type = WR_SWIM_NACK_REFUSED;
  n = wr_swim_encode(&p, buf, sizeof buf);
  assert_int_equal(n, 1 + 1 + 4 + 3 + 1);
  assert_int_equal(wr_swim_decode(buf, (size_t)n, &q), 0);
  assert_int_equal(q.type, WR_SWIM_NACK_REFUSED);
  buf[1] = WR_SWIM_MSG_TYPE_MAX + 1;
  assert_int_equal(wr_swim_decode(buf, (size_t)n, &q), WR_ERR_PROTO);
  buf[1] = 0;
  assert_int_equal(wr_swim_decode(buf, (size_t)n, &q), WR_ERR_PROTO);
}

/* Updates passed already encoded (the piggyback queue's way) go on the
 * wire exactly as the same updates passed decoded. */
static void test_raw_updates(void **state) {
  (void)state;
  wr_swim_packet p, q;
  uint8_t want[WR_SWIM_PACKET_MAX], got[WR_SWIM_PACKET_MAX], raw[1024];
  sample(&p);
  wr_ssize n = wr_swim_encode(&p, want, sizeof want);
  assert_true(n > 0);
  for (size_t split = 0; split <= p.nupdates; split++) {
    sample(&q);
    size_t off = 0;
    for (size_t i = split; i < q.nupdates; i++) {
      wr_ssize m = wr_swim_update_encode(&q.updates[i], raw + off,
                                         sizeof raw - off);
      assert_true(m > 0);
      off += (size_t)m;
    }
    q.nraw = q.nupdates - split;
    q.nupdates = split;
    q.raw = raw;
    q.raw_len = off;
    assert_int_equal(wr_swim_encode(&q, got, sizeof got), n);
    assert_memory_equal(got, want, (size_t)n);
    /* Too small a buffer for the raw tail fails cleanly. */
    assert_int_equal(wr_swim_encode(&q, got, (size_t)n - 1), WR_ERR_NOBUF);
  }
  assert_int_equal(wr_swim_decode(want, (size_t)n, &q), 0);
  assert_int_equal(q.nraw, 0);
  assert_null(q.raw);
  /* More than WR_SWIM_UPDATES_MAX in all, or a length without bytes. */
  sample(&q);
  q.nraw = WR_SWIM_UPDATES_MAX - q.nupdates + 1;
  q.raw = raw;
  q.raw_len = 1;
  assert_int_equal(wr_swim_encode(&q, got, sizeof got), WR_ERR_INVAL);
  q.nraw = 1;
  q.raw = NULL;
  assert_int_equal(wr_swim_encode(&q, got, sizeof got), WR_ERR_INVAL);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_roundtrip_every_kind),
      cmocka_unit_test(test_truncation_and_trailing),
      cmocka_unit_test(test_rejections),
      cmocka_unit_test(test_ping_ack_minimal),
      cmocka_unit_test(test_raw_updates),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
