/*
 * Record layer tests: round trips under both AEADs, agreement with an
 * independent implementation (libsodium's AEADs with the documented nonce
 * and AAD), tampering with every byte, streams split at every offset,
 * sealing from pieces (seal_v) and opening into pieces (open_v) cut at
 * every offset,
 * length bounds, rekeying across a forced interval, a failing allocator.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <sodium.h>

#include "failmalloc.h"
#include "warren/buf.h"
#include "warren/err.h"
#include "warren/pcg.h"
#include "warren/record.h"

static const wr_aead algs[] = {WR_AEAD_AES256GCM, WR_AEAD_CHACHA20POLY1305};

static uint8_t key[32];
static uint8_t pt[WR_RECORD_MAX_PLAINTEXT + 1];
static uint8_t wire[4 * WR_RECORD_MAX_WIRE];
static uint8_t acc[4 * WR_RECORD_MAX_WIRE];

static int setup(void **state) {
  wr_pcg32 g;
  (void)state;
  wr_pcg32_seed(&g, 42, 1);
  wr_pcg32_fill(key, sizeof key, &g);
  wr_pcg32_fill(pt, sizeof pt, &g);
  return sodium_init() < 0 ? -1 : 0;
}

static wr_record *mk(wr_aead alg) {
  wr_record *r = NULL;
  assert_int_equal(wr_record_new(&r, alg, key, NULL), 0);
  assert_non_null(r);
  return r;
}

static void test_round_trip(void **state) {
  static const size_t lens[] = {0,  1,    15,   16,
                                17, 1000, 4096, WR_RECORD_MAX_PLAINTEXT};
  (void)state;
  for (size_t a = 0; a < WR_ARRAY_LEN(algs); a++) {
    wr_record *s = mk(algs[a]), *o = mk(algs[a]);
    for (size_t i = 0; i < WR_ARRAY_LEN(lens); i++) {
      const uint8_t *p = NULL;
      size_t plen = 99;
      wr_ssize n = wr_record_seal(s, wire, sizeof wire, pt, lens[i]);
      assert_int_equal(n, lens[i] + WR_RECORD_OVERHEAD);
      assert_int_equal(wire[0] << 8 | wire[1], lens[i] + WR_RECORD_TAG_LEN);
      if (lens[i] >= 16) assert_memory_not_equal(wire + 2, pt, 16);
      assert_int_equal(wr_record_open(o, wire, (size_t)n, &p, &plen), n);
      assert_ptr_equal(p, wire + 2); /* decrypted in place */
      assert_int_equal(plen, lens[i]);
      if (plen) assert_memory_equal(p, pt, plen);
      assert_int_equal(wr_record_count(s), i + 1);
      assert_int_equal(wr_record_count(o), i + 1);
    }
    wr_record_del(s);
    wr_record_del(o);
  }
}

/* The documented construction, checked against libsodium's independent
 * AEAD implementations: nonce = 0^32 | u64be(counter), AAD = header. */
static void test_matches_libsodium(void **state) {
  (void)state;
  for (size_t a = 0; a < WR_ARRAY_LEN(algs); a++) {
    if (algs[a] == WR_AEAD_AES256GCM && !crypto_aead_aes256gcm_is_available())
      continue;
    wr_record *s = mk(algs[a]);
    for (uint64_t i = 0; i < 3; i++) {
      uint8_t nonce[12] = {0}, out[2000];
      unsigned long long olen = 0;
      size_t len = 100 + 300 * i;
      wr_ssize n = wr_record_seal(s, wire, sizeof wire, pt, len);
      assert_int_equal(n, len + WR_RECORD_OVERHEAD);
      nonce[11] = (uint8_t)i;
      int rv = algs[a] == WR_AEAD_AES256GCM
                   ? crypto_aead_aes256gcm_decrypt(out, &olen, NULL, wire + 2,
                                                   (size_t)n - 2, wire, 2,
                                                   nonce, key)
                   : crypto_aead_chacha20poly1305_ietf_decrypt(
                         out, &olen, NULL, wire + 2, (size_t)n - 2, wire, 2,
                         nonce, key);
      assert_int_equal(rv, 0);
      assert_int_equal(olen, len);
      assert_memory_equal(out, pt, len);
    }
    wr_record_del(s);
  }
}

static void test_tamper_every_byte(void **state) {
  (void)state;
  for (size_t a = 0; a < WR_ARRAY_LEN(algs); a++) {
    uint8_t good[64 + WR_RECORD_OVERHEAD];
    wr_record *s = mk(algs[a]);
    wr_ssize n = wr_record_seal(s, good, sizeof good, pt, 64);
    assert_int_equal(n, sizeof good);
    wr_record_del(s);
    for (size_t i = 0; i < sizeof good; i++) {
      for (int bit = 0; bit < 8; bit += 7) {
        wr_record *o = mk(algs[a]);
        const uint8_t *p = NULL;
        size_t plen = 0;
        memcpy(wire, good, sizeof good);
        wire[i] ^= (uint8_t)(1u << bit);
        wr_ssize rv = wr_record_open(o, wire, sizeof good, &p, &plen);
        if (i >= 2) {
          assert_int_equal(rv, WR_ERR_DECRYPT);
          /* No unauthenticated plaintext is left behind. */
          for (size_t j = 2; j < 2 + 64; j++) assert_int_equal(wire[j], 0);
        } else {
          /* A changed length is out of range, incomplete, or caught by
           * the tag over the header: never accepted. */
          assert_true(rv == WR_ERR_PROTO || rv == 0 || rv == WR_ERR_DECRYPT);
        }
        assert_null(p);
        assert_int_equal(wr_record_count(o), 0);
        wr_record_del(o);
      }
    }
  }
}

/* Opens every whole record at the front of acc; returns records opened. */
static int drain(wr_record *o, size_t *have, size_t *plain_off) {
  int got = 0;
  for (;;) {
    const uint8_t *p;
    size_t plen;
    wr_ssize n = wr_record_open(o, acc, *have, &p, &plen);
    assert_true(n >= 0);
    if (n == 0) return got;
    assert_memory_equal(p, pt + *plain_off, plen);
    *plain_off += plen;
    memmove(acc, acc + n, *have - (size_t)n);
    *have -= (size_t)n;
    got++;
  }
}

static void test_split_every_offset(void **state) {
  static const size_t lens[] = {0, 33, 700};
  (void)state;
  for (size_t a = 0; a < WR_ARRAY_LEN(algs); a++) {
    wr_record *s = mk(algs[a]);
    size_t total = 0, off = 0;
    for (size_t i = 0; i < WR_ARRAY_LEN(lens); i++) {
      wr_ssize n = wr_record_seal(s, wire + total, sizeof wire - total,
                                  pt + off, lens[i]);
      assert_true(n > 0);
      total += (size_t)n;
      off += lens[i];
    }
    wr_record_del(s);
    /* Two chunks split at every offset, then byte by byte. */
    for (size_t cut = 0; cut <= total; cut++) {
      wr_record *o = mk(algs[a]);
      size_t have = 0, poff = 0;
      int got = 0;
      memcpy(acc, wire, cut);
      have = cut;
      got += drain(o, &have, &poff);
      memcpy(acc + have, wire + cut, total - cut);
      have += total - cut;
      got += drain(o, &have, &poff);
      assert_int_equal(got, 3);
      assert_int_equal(have, 0);
      assert_int_equal(poff, off);
      wr_record_del(o);
    }
    wr_record *o = mk(algs[a]);
    size_t have = 0, poff = 0;
    int got = 0;
    for (size_t i = 0; i < total; i++) {
      acc[have++] = wire[i];
      got += drain(o, &have, &poff);
    }
    assert_int_equal(got, 3);
    assert_int_equal(wr_record_count(o), 3);
    wr_record_del(o);
  }
}

/*
 * wr_record_seal_v gives the same record as wr_record_seal of the
 * concatenation: two pieces cut at every offset, three pieces at a
 * spread of cuts (odd sizes straddle the AES block and ChaCha's 64-byte
 * block), empty pieces, and the bounds.
 */
static void test_seal_v(void **state) {
  static uint8_t ref[WR_RECORD_MAX_WIRE], got[WR_RECORD_MAX_WIRE];
  static const size_t lens[] = {0, 1, 47, 1000, WR_RECORD_MAX_PLAINTEXT};
  (void)state;
  for (size_t a = 0; a < WR_ARRAY_LEN(algs); a++) {
    for (size_t li = 0; li < WR_ARRAY_LEN(lens); li++) {
      size_t len = lens[li];
      /* Full cut sweep for the short lengths, every 7th for 16 KiB. */
      size_t step = len > 2000 ? 7 : 1;
      for (size_t cut = 0; cut <= len; cut += step) {
        wr_record *s1 = mk(algs[a]), *s2 = mk(algs[a]);
        wr_ssize n1 = wr_record_seal(s1, ref, sizeof ref, pt, len);
        size_t c2 = cut + (len - cut) / 3;
        struct iovec v[4] = {{pt, cut},
                             {pt + cut, 0},
                             {pt + cut, c2 - cut},
                             {pt + c2, len - c2}};
        wr_ssize n2 = wr_record_seal_v(s2, got, sizeof got, v, 4);
        assert_int_equal(n1, len + WR_RECORD_OVERHEAD);
        assert_int_equal(n2, n1);
        assert_memory_equal(got, ref, (size_t)n1);
        wr_record_del(s1);
        wr_record_del(s2);
      }
    }
    /* Too much in total, or in one piece; a short dst. */
    wr_record *s = mk(algs[a]);
    struct iovec v[2] = {{pt, WR_RECORD_MAX_PLAINTEXT}, {pt, 1}};
    assert_int_equal(wr_record_seal_v(s, got, sizeof got, v, 2),
                     WR_ERR_TOOBIG);
    v[0].iov_len = WR_RECORD_MAX_PLAINTEXT + 1;
    assert_int_equal(wr_record_seal_v(s, got, sizeof got, v, 1),
                     WR_ERR_TOOBIG);
    v[0].iov_len = 10;
    assert_int_equal(wr_record_seal_v(s, got, 10 + WR_RECORD_OVERHEAD, v, 2),
                     WR_ERR_NOBUF);
    assert_int_equal(wr_record_count(s), 0);
    assert_int_equal(wr_record_seal_v(s, got, sizeof got, NULL, 0),
                     WR_RECORD_OVERHEAD);
    wr_record_del(s);
  }
}

/*
 * wr_record_open_v: the plaintext of every record, decrypted into two
 * pieces cut at every offset (every 7th at 16 KiB), matches; the input is
 * untouched; a flipped byte anywhere fails with the pieces zeroed; a short
 * destination is WR_ERR_NOBUF and consumes nothing; peek agrees.
 */
static void test_open_v(void **state) {
  static uint8_t rwire[WR_RECORD_MAX_WIRE], copy[WR_RECORD_MAX_WIRE];
  static uint8_t d1[WR_RECORD_MAX_PLAINTEXT], d2[WR_RECORD_MAX_PLAINTEXT];
  static const size_t lens[] = {0, 1, 47, 1000, WR_RECORD_MAX_PLAINTEXT};
  (void)state;
  for (size_t a = 0; a < WR_ARRAY_LEN(algs); a++) {
    for (size_t li = 0; li < WR_ARRAY_LEN(lens); li++) {
      size_t len = lens[li], step = len > 2000 ? 7 : 1;
      for (size_t cut = 0; cut <= len; cut += step) {
        wr_record *s = mk(algs[a]), *o = mk(algs[a]);
        wr_ssize n = wr_record_seal(s, rwire, sizeof rwire, pt, len);
        assert_int_equal(n, len + WR_RECORD_OVERHEAD);
        memcpy(copy, rwire, (size_t)n);
        size_t ptlen = 99;
        assert_int_equal(wr_record_peek(rwire, (size_t)n - 1, &ptlen), 0);
        assert_int_equal(wr_record_peek(rwire, (size_t)n, &ptlen), n);
        assert_int_equal(ptlen, len);
        struct iovec v[3] = {{d1, cut}, {d2, 0}, {d2, len - cut}};
        ptlen = 99;
        assert_int_equal(wr_record_open_v(o, rwire, (size_t)n, v, 3, &ptlen),
                         n);
        assert_int_equal(ptlen, len);
        if (cut) assert_memory_equal(d1, pt, cut);
        if (len - cut) assert_memory_equal(d2, pt + cut, len - cut);
        assert_memory_equal(rwire, copy, (size_t)n);
        assert_int_equal(wr_record_count(o), 1);
        wr_record_del(s);
        wr_record_del(o);
      }
    }
    /* Tamper: one flipped bit per byte position of a 300-byte record. */
    wr_record *s = mk(algs[a]);
    wr_ssize n = wr_record_seal(s, rwire, sizeof rwire, pt, 300);
    wr_record_del(s);
    for (size_t i = 0; i < (size_t)n; i++) {
      wr_record *o = mk(algs[a]);
      memcpy(copy, rwire, (size_t)n);
      copy[i] ^= 0x20;
      struct iovec v[2] = {{d1, 100}, {d2, 200}};
      size_t ptlen = 0;
      wr_ssize r = wr_record_open_v(o, copy, (size_t)n, v, 2, &ptlen);
      if (i < WR_RECORD_HEADER_LEN) {
        assert_true(r == WR_ERR_DECRYPT || r == WR_ERR_PROTO || r == 0);
      } else {
        static const uint8_t zero[200];
        assert_int_equal(r, WR_ERR_DECRYPT);
        assert_memory_equal(d1, zero, 100);
        assert_memory_equal(d2, zero, 200);
      }
      wr_record_del(o);
    }
    /* Too little room: nothing consumed, the counter unchanged. */
    wr_record *o = mk(algs[a]);
    struct iovec v[2] = {{d1, 100}, {d2, 199}};
    size_t ptlen = 0;
    assert_int_equal(wr_record_open_v(o, rwire, (size_t)n, v, 2, &ptlen),
                     WR_ERR_NOBUF);
    assert_int_equal(wr_record_count(o), 0);
    v[1].iov_len = 200;
    assert_int_equal(wr_record_open_v(o, rwire, (size_t)n, v, 2, &ptlen), n);
    assert_memory_equal(d1, pt, 100);
    wr_record_del(o);
  }
}

static void test_bounds(void **state) {
  wr_record *r = mk(WR_AEAD_CHACHA20POLY1305);
  const uint8_t *p;
  size_t plen;
  uint8_t hdr[2];
  (void)state;
  assert_int_equal(
      wr_record_seal(r, wire, sizeof wire, pt, WR_RECORD_MAX_PLAINTEXT + 1),
      WR_ERR_TOOBIG);
  assert_int_equal(wr_record_seal(r, wire, 10 + WR_RECORD_OVERHEAD - 1, pt, 10),
                   WR_ERR_NOBUF);
  assert_int_equal(wr_record_count(r), 0);
  assert_int_equal(wr_record_open(r, wire, 0, &p, &plen), 0);
  assert_int_equal(wr_record_open(r, wire, 1, &p, &plen), 0);
  /* Length header out of range: rejected before the body arrives. */
  wr_put_u16(hdr, 0xffff);
  assert_int_equal(wr_record_open(r, hdr, 2, &p, &plen), WR_ERR_PROTO);
  wr_put_u16(hdr, WR_RECORD_MAX_PLAINTEXT + WR_RECORD_TAG_LEN + 1);
  assert_int_equal(wr_record_open(r, hdr, 2, &p, &plen), WR_ERR_PROTO);
  wr_put_u16(hdr, WR_RECORD_TAG_LEN - 1);
  assert_int_equal(wr_record_open(r, hdr, 2, &p, &plen), WR_ERR_PROTO);
  /* The largest legal length just waits for more. */
  wr_put_u16(hdr, WR_RECORD_MAX_PLAINTEXT + WR_RECORD_TAG_LEN);
  assert_int_equal(wr_record_open(r, hdr, 2, &p, &plen), 0);
  assert_int_equal(wr_record_count(r), 0);
  wr_record_del(r);
  assert_int_equal(wr_record_new(&r, (wr_aead)7, key, NULL), WR_ERR_INVAL);
  assert_null(r);
  wr_record_del(NULL);
}

static void test_rekey(void **state) {
  (void)state;
  for (size_t a = 0; a < WR_ARRAY_LEN(algs); a++) {
    wr_record *s = mk(algs[a]), *o = mk(algs[a]), *plain = mk(algs[a]),
              *stale = mk(algs[a]);
    uint8_t w2[100 + WR_RECORD_OVERHEAD];
    wr__record_set_rekey_interval(s, 3);
    wr__record_set_rekey_interval(o, 3);
    for (int i = 0; i < 10; i++) {
      const uint8_t *p;
      size_t plen;
      wr_ssize n = wr_record_seal(s, wire, sizeof wire, pt + i, 100);
      assert_int_equal(wr_record_seal(plain, w2, sizeof w2, pt + i, 100), n);
      /* Records 0..2 use the first key; from 3 on the key has changed. */
      if (i < 3)
        assert_memory_equal(wire, w2, (size_t)n);
      else
        assert_memory_not_equal(wire + 2, w2 + 2, (size_t)n - 2);
      memcpy(w2, wire, (size_t)n);
      wr_ssize st = wr_record_open(stale, w2, (size_t)n, &p, &plen);
      if (i < 3) assert_int_equal(st, n);
      if (i == 3) assert_int_equal(st, WR_ERR_DECRYPT);
      assert_int_equal(wr_record_open(o, wire, (size_t)n, &p, &plen), n);
      assert_memory_equal(p, pt + i, 100);
    }
    assert_int_equal(wr_record_count(o), 10);
    wr_record_del(s);
    wr_record_del(o);
    wr_record_del(plain);
    wr_record_del(stale);
  }
}

/* A record used in both directions reschedules its key on each switch. */
static void test_direction_switch(void **state) {
  wr_record *a = mk(WR_AEAD_AES256GCM), *b = mk(WR_AEAD_AES256GCM);
  (void)state;
  for (int i = 0; i < 4; i++) {
    wr_record *from = i % 2 ? b : a, *to = i % 2 ? a : b;
    const uint8_t *p;
    size_t plen;
    wr_ssize n = wr_record_seal(from, wire, sizeof wire, pt, 50);
    assert_int_equal(wr_record_open(to, wire, (size_t)n, &p, &plen), n);
    assert_memory_equal(p, pt, 50);
  }
  wr_record_del(a);
  wr_record_del(b);
}

static void test_failmalloc(void **state) {
  failmalloc fm;
  wr_record *r = (wr_record *)1;
  (void)state;
  failmalloc_init(&fm, 1);
  assert_int_equal(wr_record_new(&r, WR_AEAD_AES256GCM, key, &fm.mem),
                   WR_ERR_NOMEM);
  assert_null(r);
  assert_int_equal(fm.live, 0);
  failmalloc_init(&fm, 0);
  assert_int_equal(wr_record_new(&r, WR_AEAD_AES256GCM, key, &fm.mem), 0);
  assert_int_equal(fm.live, 1);
  wr_record_del(r);
  assert_int_equal(fm.live, 0);
}

static void test_preferred(void **state) {
  (void)state;
  setenv("WARREN_AEAD", "chacha", 1);
  assert_int_equal(wr_aead_preferred(), WR_AEAD_CHACHA20POLY1305);
  setenv("WARREN_AEAD", "aes", 1);
  assert_int_equal(wr_aead_preferred(), WR_AEAD_AES256GCM);
  unsetenv("WARREN_AEAD");
  wr_aead p = wr_aead_preferred();
  assert_true(p == WR_AEAD_AES256GCM || p == WR_AEAD_CHACHA20POLY1305);
  assert_string_equal(wr_aead_name(WR_AEAD_AES256GCM), "aes-256-gcm");
  assert_string_equal(wr_aead_name(WR_AEAD_CHACHA20POLY1305),
                      "chacha20-poly1305");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_round_trip),
      cmocka_unit_test(test_matches_libsodium),
      cmocka_unit_test(test_tamper_every_byte),
      cmocka_unit_test(test_split_every_offset),
      cmocka_unit_test(test_seal_v),
      cmocka_unit_test(test_open_v),
      cmocka_unit_test(test_bounds),
      cmocka_unit_test(test_rekey),
      cmocka_unit_test(test_direction_switch),
      cmocka_unit_test(test_failmalloc),
      cmocka_unit_test(test_preferred),
  };
  return cmocka_run_group_tests(tests, setup, NULL);
}
