/*
 * The bucket digest (src/swim/digest.c) and the v4 sync exchange built on
 * it (src/swim/sync.c):
 *
 *   - the table's incrementally kept bucket hashes always equal hashes
 *     recomputed from the members, at its fine level and folded to every
 *     coarser one, over random adds, removes, state changes, swaps,
 *     shuffles and copies (a property test), and inside a running core
 *     whose members are suspected, die, leave, come back and are reaped;
 *   - a converged pair exchanges O(B) bytes (B = buckets), far less than
 *     v3's ~12 bytes per member each way, and no bucket differs;
 *   - one member that differs costs one bucket: its digests both ways and
 *     one entry, and the next sync finds nothing;
 *   - a large difference crosses in several frames, whatever the chunking;
 *   - malformed v4 streams and a v3 peer fail the session, counted.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "swim_int.h"
#include "swim_net.h"
#include "warren/buf.h"
#include "warren/err.h"
#include "warren/pcg.h"
#include "warren/swim_codec.h"

/* ---- the table's digest, alone ---------------------------------------- */

/* Checks the incremental level against a recomputation: the members are
 * hashed once at 4x the fine level (what a peer that knows more members
 * asks for: the recomputing path), that is folded down by hand, and every
 * level from 1 up to it must match what the table gives. */
static void check_levels(const swim_members *t) {
  static uint64_t a[1 << 12], ref[1 << 12], lvl[1 << 12];
  size_t top = t->nbh ? t->nbh * 4 : 64;
  assert_true(top <= (size_t)1 << 12);
  swim_digest_recompute(t, ref, top);
  for (size_t nb = 1; nb <= top; nb *= 2) {
    memset(lvl, 0, nb * sizeof *lvl);
    for (size_t f = 0; f < top; f++) lvl[f & (nb - 1)] ^= ref[f];
    memset(a, 0, nb * sizeof *a);
    swim_digest_xor(t, a, nb, 0);
    assert_memory_equal(a, lvl, nb * sizeof *a);
  }
  /* The fine level itself, exactly. */
  if (t->nbh) {
    memset(lvl, 0, t->nbh * sizeof *lvl);
    for (size_t f = 0; f < top; f++) lvl[f & (t->nbh - 1)] ^= ref[f];
    assert_memory_equal(t->bh, lvl, t->nbh * sizeof *lvl);
  }
}

static size_t below(void *ud, size_t n) {
  return wr_pcg32_bounded(ud, (uint32_t)n);
}

static void random_id(wr_pcg32 *g, char *id, size_t cap) {
  /* Short ids live inline and long ones on the heap (members.c): both. */
  int len = wr_pcg32_bounded(g, 4) == 0 ? 20 + (int)wr_pcg32_bounded(g, 40)
                                        : 1 + (int)wr_pcg32_bounded(g, 12);
  if ((size_t)len >= cap) len = (int)cap - 1;
  for (int k = 0; k < len; k++)
    id[k] = (char)('a' + wr_pcg32_bounded(g, 26));
  id[len] = 0;
}

/* 8,000 random operations on a table that grows to about 1,800
 * members and shrinks again (the fine level doubles on the way). */
static void test_incremental_equals_recomputed(void **state) {
  (void)state;
  wr_pcg32 g;
  wr_pcg32_seed(&g, 14, 4);
  swim_members t, c;
  swim_members_init(&t, NULL);
  wr_addr a = {.family = 4, .ip = {10, 0, 0, 1}, .port = 7946};
  size_t grew = 0, last_nbh = 0;
  for (int step = 0; step < 8000; step++) {
    uint32_t op = wr_pcg32_bounded(&g, 100);
    /* Grow during the first half, shrink during the second. */
    uint32_t add_share = step < 4000 ? 60 : 20;
    if (op < add_share || t.n == 0) {
      char id[WR_SWIM_ID_MAX + 1];
      random_id(&g, id, sizeof id);
      if (swim_members_find(&t, id) < 0)
        assert_true(
            swim_members_add(&t, id, &a, wr_pcg32_next(&g) % 5, 0) >= 0);
    } else if (op < add_share + 15) {
      swim_members_remove(&t, wr_pcg32_bounded(&g, (uint32_t)t.n));
    } else if (op < add_share + 35) {
      size_t i = wr_pcg32_bounded(&g, (uint32_t)t.n);
      swim_members_set_state(&t, i, (uint8_t)wr_pcg32_bounded(&g, 4),
                             t.v[i].incarnation + wr_pcg32_bounded(&g, 2));
    } else if (op < add_share + 38) {
      swim_members_swap(&t, wr_pcg32_bounded(&g, (uint32_t)t.n),
                        wr_pcg32_bounded(&g, (uint32_t)t.n));
    } else if (op < add_share + 39) {
      swim_members_shuffle(&t, below, &g);
    } else {
      /* A copy carries an exact digest (it copies the level). */
      swim_members_init(&c, NULL);
      assert_int_equal(swim_members_copy(&c, &t), 0);
      check_levels(&c);
      swim_members_free(&c);
    }
    if (t.nbh != last_nbh) grew++, last_nbh = t.nbh;
    if (step % 97 == 0) check_levels(&t);
  }
  check_levels(&t);
  print_message("fine level %zu buckets for %zu members, resized %zu times\n",
                t.nbh, t.n, grew);
  assert_true(grew >= 4); /* the level followed the table's growth */
  swim_members_free(&t);
}

/* Equal members give equal hashes however they were inserted; any one
 * change of incarnation or state changes its bucket's hash. */
static void test_hash_sees_every_change(void **state) {
  (void)state;
  swim_members x, y;
  swim_members_init(&x, NULL);
  swim_members_init(&y, NULL);
  wr_addr a = {.family = 4, .ip = {10, 0, 0, 1}, .port = 7946};
  char id[16];
  for (int k = 0; k < 300; k++) {
    snprintf(id, sizeof id, "n%d", k);
    swim_members_add(&x, id, &a, 1, 0);
    snprintf(id, sizeof id, "n%d", 299 - k);
    swim_members_add(&y, id, &a, 1, 0);
  }
  uint64_t hx[32] = {0}, hy[32] = {0};
  swim_digest_xor(&x, hx, 32, 0);
  swim_digest_xor(&y, hy, 32, 0);
  assert_memory_equal(hx, hy, sizeof hx);
  ssize_t i = swim_members_find(&y, "n42");
  uint32_t b = (uint32_t)(swim_digest_idhash("n42") & 31);
  for (uint8_t st = 0; st <= WR_SWIM_LEFT; st++)
    for (uint32_t inc = 1; inc < 4; inc++) {
      swim_members_set_state(&y, (size_t)i, st, inc);
      memset(hy, 0, sizeof hy);
      swim_digest_xor(&y, hy, 32, 0);
      for (uint32_t j = 0; j < 32; j++)
        if (j == b && !(st == WR_SWIM_ALIVE && inc == 1))
          assert_true(hx[j] != hy[j]);
        else
          assert_true(hx[j] == hy[j]);
    }
  swim_members_free(&x);
  swim_members_free(&y);
}

/* Inside running cores: 8 members probe and gossip with 5 % of one
 * node's packets lost; one is killed (suspected, declared dead, reaped),
 * one leaves, the killed one comes back with a higher incarnation.  Every
 * core's digest is checked against a recomputation every 250 ms. */
static net nt;

static void check_fleet(void) {
  for (int i = 0; i < nt.n; i++)
    if (!nt.down[i]) check_levels(swim_core_table(nt.sw[i]));
}

static void run_checked(wr_tstamp until) {
  while (nt.now < until) {
    net_run(&nt, nt.now + 250);
    check_fleet();
  }
}

static void test_core_keeps_digest(void **state) {
  (void)state;
  net_init(&nt, 8, NULL);
  nt.auto_sync = 1;
  net_boot(&nt);
  run_checked(nt.now + 5000);
  nt.down[3] = 1;
  run_checked(nt.now + 20000);
  assert_int_equal(net_state(&nt, 0, 3), WR_SWIM_DEAD);
  assert_int_equal(wr_swim_leave(nt.sw[5], nt.now), 0);
  net_drain(&nt, 5);
  run_checked(nt.now + 5000);
  assert_int_equal(net_state(&nt, 0, 5), WR_SWIM_LEFT);
  /* Past dead_reap (30 s): both reaped. */
  run_checked(nt.now + 40000);
  assert_int_equal(net_state(&nt, 0, 3), -1);
  /* n3 restarts and joins through n0. */
  wr_swim_del(nt.sw[3]);
  net_start(&nt, 3, 0);
  wr_addr seed = net_addr(0);
  assert_int_equal(wr_swim_join(nt.sw[3], &seed, 1, nt.now), 0);
  net_drain(&nt, 3);
  run_checked(nt.now + 10000);
  assert_int_equal(net_state(&nt, 0, 3), WR_SWIM_ALIVE);
  net_free(&nt);
}

/* ---- two cores and the exchange ---------------------------------------- */

static wr_pcg32 rng[2];
static wr_tstamp now = 1000;

static wr_swim *make_core(int i) {
  wr_swim_config c;
  wr_swim_config_default(&c);
  snprintf(c.id, sizeof c.id, "self%d", i);
  c.gossip = (wr_addr){.family = 4, .ip = {127, 0, 0, (uint8_t)(i + 1)},
                       .port = 7946};
  c.rand = wr_pcg32_fill;
  c.rand_user_data = &rng[i];
  wr_pcg32_seed(&rng[i], 7 + (uint64_t)i, (uint64_t)i);
  wr_swim *sw;
  assert_int_equal(wr_swim_new(&sw, &c, NULL, NULL, NULL, NULL, now), 0);
  return sw;
}

static void add_fleet(wr_swim *sw, int from, int to) {
  for (int k = from; k < to; k++) {
    char id[16];
    snprintf(id, sizeof id, "m%d", k);
    wr_addr a = {.family = 4, .ip = {10, (uint8_t)(k >> 16), (uint8_t)(k >> 8),
                                     (uint8_t)k},
                 .port = 7946};
    assert_int_equal(wr_swim_add_member(sw, id, &a, NULL, 3, now), 0);
  }
}

/* Each side knows the other as a member too, as in a real fleet. */
static void know_each_other(wr_swim *x, wr_swim *y) {
  wr_swim_member_info me;
  wr_swim_self(y, &me);
  assert_int_equal(wr_swim_add_member(x, me.id, &me.gossip, NULL,
                                      me.incarnation, now), 0);
  wr_swim_self(x, &me);
  assert_int_equal(wr_swim_add_member(y, me.id, &me.gossip, NULL,
                                      me.incarnation, now), 0);
}

typedef struct pumped {
  size_t bytes[2];  /* written by the initiator, the responder */
  unsigned frames[2];
} pumped;

/* Runs a session a (initiator) <-> b, moving bytes in chunks of |chunk|
 * (0: whatever is ready, whole) and counting frames by their length
 * prefixes.  Returns 0 when both completed. */
static int exchange(wr_swim *a, wr_swim *b, size_t chunk, pumped *pm) {
  wr_swim_sync *ss[2];
  memset(pm, 0, sizeof *pm);
  if (wr_swim_sync_new(a, &ss[0], 1, now) != 0) return -1;
  if (wr_swim_sync_new(b, &ss[1], 0, now) != 0) return -1;
  size_t in_frame[2] = {0, 0}, lenn[2] = {0, 0};
  uint8_t lenb[2][4];
  int rv = -1;
  for (int round = 0; round < 1000000; round++) {
    int moved = 0;
    for (int side = 0; side < 2; side++) {
      const uint8_t *d;
      wr_ssize n = wr_swim_sync_send(ss[side], &d);
      if (n < 0) goto out;
      if (n == 0) continue;
      size_t take = chunk && chunk < (size_t)n ? chunk : (size_t)n;
      for (size_t k = 0; k < take; k++) {
        if (in_frame[side]) {
          in_frame[side]--;
          continue;
        }
        lenb[side][lenn[side]++] = d[k];
        if (lenn[side] == 4) {
          in_frame[side] = wr_get_u32(lenb[side]);
          lenn[side] = 0;
          pm->frames[side]++;
        }
      }
      pm->bytes[side] += take;
      if (wr_swim_sync_recv(ss[!side], d, take, now) != 0) goto out;
      wr_swim_sync_consumed(ss[side], take);
      moved = 1;
    }
    if (wr_swim_sync_done(ss[0]) && wr_swim_sync_done(ss[1])) {
      rv = 0;
      break;
    }
    if (!moved) break;
  }
out:
  wr_swim_sync_del(ss[0]);
  wr_swim_sync_del(ss[1]);
  return rv;
}

static void stats(wr_swim *sw, wr_swim_stats *st) { wr_swim_get_stats(sw, st); }

/* Both tables hold the same (id, incarnation, state) for every member of
 * either, themselves included. */
static void assert_same_view(wr_swim *x, wr_swim *y) {
  wr_swim *sides[2] = {x, y};
  for (int s = 0; s < 2; s++) {
    wr_swim *p = sides[s], *q = sides[!s];
    size_t n = wr_swim_member_count(p);
    for (size_t i = 0; i < n; i++) {
      wr_swim_member_info m, o;
      assert_int_equal(wr_swim_member_at(p, i, &m), 0);
      if (wr_swim_member_find(q, m.id, &o) != 0) {
        wr_swim_self(q, &o);
        assert_string_equal(o.id, m.id);
      }
      assert_int_equal(o.incarnation, m.incarnation);
      assert_int_equal(o.state, m.state);
    }
  }
}

/* 1,000 members on both sides, equal: the initiator's summary is 64
 * buckets of 8 bytes (1,001 members / 8 -> 64 buckets of ~16), nothing
 * else but empty closing frames crosses, and no bucket differs.  v3 sent
 * a digest of ~12 bytes per member each way (~24 KB here). */
static void test_converged_pair_costs_buckets(void **state) {
  (void)state;
  wr_swim *x = make_core(0), *y = make_core(1);
  add_fleet(x, 0, 999);
  add_fleet(y, 0, 999);
  know_each_other(x, y);
  pumped pm;
  assert_int_equal(exchange(x, y, 0, &pm), 0);
  wr_swim_stats st;
  stats(y, &st);
  assert_int_equal(st.sync_buckets, 64);
  assert_int_equal(st.sync_buckets_differ, 0);
  /* M1: the 64 hashes in one frame; M2, M3: one empty frame each from
   * the responder and the initiator; M4 one empty frame. */
  size_t frame_hdr = 4 + 7;
  assert_int_equal(pm.bytes[0], 64 * 8 + frame_hdr + frame_hdr);
  assert_int_equal(pm.bytes[1], 2 * frame_hdr);
  assert_int_equal(pm.frames[0], 2);
  assert_int_equal(pm.frames[1], 2);
  print_message("converged pair of 1,000: %zu + %zu bytes (v3: ~%d)\n",
                pm.bytes[0], pm.bytes[1], 2 * 1000 * 12);
  assert_same_view(x, y);
  wr_swim_del(x);
  wr_swim_del(y);
}

/* One member's newer incarnation on one side: exactly one bucket
 * differs; the bytes beyond the converged exchange are the two sides'
 * digests of that bucket and the one entry; afterwards they agree and
 * the next sync finds no difference. */
static void test_one_difference_costs_one_bucket(void **state) {
  (void)state;
  wr_swim *x = make_core(0), *y = make_core(1);
  add_fleet(x, 0, 999);
  add_fleet(y, 0, 999);
  know_each_other(x, y);
  pumped base, pm;
  assert_int_equal(exchange(x, y, 0, &base), 0);
  /* m500 refuted something: y hears ALIVE at incarnation 4 (by a sync
   * entry, as gossip would bring it). */
  wr_swim_update u;
  wr_swim_member_info m;
  assert_int_equal(wr_swim_member_find(y, "m500", &m), 0);
  memset(&u, 0, sizeof u);
  u.kind = WR_SWIM_UPD_ALIVE;
  snprintf(u.id, sizeof u.id, "m500");
  u.incarnation = 4;
  u.gossip = m.gossip;
  swim_core_merge(y, &u, now);
  assert_int_equal(wr_swim_member_find(y, "m500", &m), 0);
  assert_int_equal(m.incarnation, 4);
  for (int dir = 0; dir < 2; dir++) {
    wr_swim *a = dir ? y : x, *b = dir ? x : y;
    wr_swim_stats before, after;
    stats(b, &before);
    assert_int_equal(exchange(a, b, 0, &pm), 0);
    stats(b, &after);
    assert_int_equal(after.sync_buckets_differ - before.sync_buckets_differ,
                     dir == 0 ? 1 : 0);
    if (dir == 0) {
      /* Count the members of m500's bucket (64 buckets). */
      uint64_t bk = swim_digest_idhash("m500") & 63;
      size_t members = 0, idlen = 0;
      for (int k = 0; k < 999; k++) {
        char id[16];
        snprintf(id, sizeof id, "m%d", k);
        if ((swim_digest_idhash(id) & 63) == bk) members++, idlen += strlen(id);
      }
      for (int k = 0; k < 2; k++) {
        char id[16];
        snprintf(id, sizeof id, "self%d", k);
        if ((swim_digest_idhash(id) & 63) == bk) members++, idlen += strlen(id);
      }
      size_t digest = 6 * members + idlen; /* one side's digest of it */
      size_t extra = pm.bytes[0] + pm.bytes[1] - base.bytes[0] - base.bytes[1];
      print_message("one differing member: %zu bytes more than converged "
                    "(bucket of %zu members, digest %zu bytes)\n",
                    extra, members, digest);
      /* Both digests, the bucket index, one ALIVE entry (< 64 bytes)
       * and at most one more frame header each way. */
      assert_true(extra >= 2 * digest + 4);
      assert_true(extra <= 2 * digest + 4 + 64 + 2 * 11);
      assert_int_equal(wr_swim_member_find(x, "m500", &m), 0);
      assert_int_equal(m.incarnation, 4);
    } else {
      /* Converged again: the base cost. */
      assert_int_equal(pm.bytes[0] + pm.bytes[1],
                       base.bytes[0] + base.bytes[1]);
    }
  }
  assert_same_view(x, y);
  wr_swim_del(x);
  wr_swim_del(y);
}

/* A node that knows 20 members syncs with one that knows 6,000: every
 * bucket differs, the entries cross in several frames, fed in chunks of
 * 1..97 bytes, and both end up with the same view (verdicts about
 * members a side never knew are not sent: none here). */
static void test_large_difference_crosses_frames(void **state) {
  (void)state;
  for (int dir = 0; dir < 2; dir++) {
    wr_swim *x = make_core(0), *y = make_core(1);
    add_fleet(x, 0, 20);
    add_fleet(y, 0, 6000);
    know_each_other(x, y);
    pumped pm;
    for (size_t chunk = 1; chunk <= 97; chunk += 48) {
      assert_int_equal(dir ? exchange(y, x, chunk, &pm)
                           : exchange(x, y, chunk, &pm), 0);
      assert_same_view(x, y);
      /* The first exchange moved ~180 KB of entries from y: frames. */
      if (chunk == 1) assert_true(pm.frames[!dir] >= 4);
    }
    assert_int_equal(wr_swim_member_count(x), 6001);
    wr_swim_del(x);
    wr_swim_del(y);
  }
}

/* ---- malformed streams --------------------------------------------------- */

static size_t frame(uint8_t *dst, uint8_t version, uint8_t type, int last,
                    uint32_t count, const uint8_t *body, size_t len) {
  dst[4] = version;
  dst[5] = type;
  dst[6] = (uint8_t)last;
  wr_put_u32(dst + 7, count);
  memcpy(dst + 11, body, len);
  wr_put_u32(dst, (uint32_t)(7 + len));
  return 11 + len;
}

/* Each fails the session with the error named, counted in syncs_failed
 * (and the v3 one in syncs_version too); nothing crashes or hangs. */
static void test_bad_streams_fail(void **state) {
  (void)state;
  wr_swim *x = make_core(0);
  add_fleet(x, 0, 40); /* 41 members: the initiator's B is 4 */
  static uint8_t in[4096], body[2048];
  int fails = 0;
  for (int t = 0; t < 9; t++) {
    size_t off = 0, bl = 0;
    int initiator = t >= 4 && t != 8;
    int want = WR_ERR_PROTO;
    memset(body, 0, sizeof body);
    switch (t) {
    case 0: /* a summary of 3 buckets (not a power of two) */
      off = frame(in, 4, 1, 1, 3, body, 24);
      break;
    case 1: /* an empty summary */
      off = frame(in, 4, 1, 1, 0, body, 0);
      break;
    case 2: /* a count beyond the entries */
      off = frame(in, 4, 1, 1, 4, body, 24);
      break;
    case 3: /* a v3 digest: a peer not yet upgraded */
      body[0] = 2, body[1] = 'm', body[2] = '1';
      off = frame(in, 3, 1, 1, 1, body, 8);
      want = WR_ERR_VERSION;
      break;
    case 4: /* BUCKETS not increasing */
      wr_put_u32(body, 2), wr_put_u32(body + 4, 1);
      off = frame(in, 4, 3, 1, 2, body, 8);
      break;
    case 5: /* a bucket index beyond B = 4 */
      wr_put_u32(body, 4);
      off = frame(in, 4, 3, 1, 1, body, 4);
      break;
    case 6: { /* a DIGEST entry of a bucket not in D */
      uint32_t b = (uint32_t)(swim_digest_idhash("m7") & 3);
      wr_put_u32(body, (b + 1) & 3);
      off = frame(in, 4, 3, 0, 1, body, 4);
      body[0] = 2, body[1] = 'm', body[2] = '7';
      memset(body + 3, 0, 5);
      off += frame(in + off, 4, 4, 1, 1, body, 8);
      break;
    }
    case 7: /* a SUMMARY where D is expected */
      off = frame(in, 4, 1, 1, 1, body, 8);
      break;
    default: /* an app record without hooks is skipped, but a USER
              * update inside a STATE is never accepted */
      off = frame(in, 4, 1, 1, 1, body, 8);
      {
        wr_swim_sync *s;
        assert_int_equal(wr_swim_sync_new(x, &s, 0, now), 0);
        assert_int_equal(wr_swim_sync_recv(s, in, off, now), 0);
        const uint8_t *d;
        assert_true(wr_swim_sync_send(s, &d) > 0);
        wr_swim_update u;
        memset(&u, 0, sizeof u);
        u.kind = WR_SWIM_UPD_USER;
        snprintf(u.id, sizeof u.id, "m1");
        snprintf(u.key, sizeof u.key, "k");
        u.version = 1;
        wr_ssize n = wr_swim_update_encode(&u, body, sizeof body);
        assert_true(n > 0);
        off = frame(in, 4, 2, 1, 1, body, (size_t)n);
        assert_int_equal(wr_swim_sync_recv(s, in, off, now), WR_ERR_PROTO);
        wr_swim_sync_del(s);
        fails++;
        continue;
      }
    }
    (void)bl;
    wr_swim_sync *s;
    assert_int_equal(wr_swim_sync_new(x, &s, initiator, now), 0);
    assert_int_equal(wr_swim_sync_recv(s, in, off, now), want);
    wr_swim_sync_del(s);
    fails++;
  }
  wr_swim_stats st;
  stats(x, &st);
  assert_int_equal(st.syncs_failed, (uint64_t)fails);
  assert_int_equal(st.syncs_version, 1);
  wr_swim_del(x);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_incremental_equals_recomputed),
      cmocka_unit_test(test_hash_sees_every_change),
      cmocka_unit_test(test_core_keeps_digest),
      cmocka_unit_test(test_converged_pair_costs_buckets),
      cmocka_unit_test(test_one_difference_costs_one_bucket),
      cmocka_unit_test(test_large_difference_crosses_frames),
      cmocka_unit_test(test_bad_streams_fail),
  };
  if (getenv("TEST_FILTER")) cmocka_set_test_filter(getenv("TEST_FILTER"));
  return cmocka_run_group_tests(tests, NULL, NULL);
}
