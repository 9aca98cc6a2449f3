/*
 * Unit tests of warren-sim's network model (tools/warren-sim/net.c): the
 * event heap's order, loss and delay statistics over a fixed seed, pause
 * queues, partitions, dead nodes, determinism and buffer reuse.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "net.h"
#include "warren/pcg.h"

static const sim_net_params lan = {.delay_ms = 1, .jitter_ms = 0};

static void test_heap_order(void **state) {
  (void)state;
  sim_net *n = sim_net_new(4, &lan, 1);
  assert_non_null(n);
  wr_pcg32 g;
  wr_pcg32_seed(&g, 42, 7);
  /* 5000 events at random times in [0, 100): many share a millisecond,
   * so the seq tie-break is exercised heavily. */
  for (uint32_t i = 0; i < 5000; i++)
    assert_int_equal(
        sim_net_push(n, wr_pcg32_bounded(&g, 100), SIM_EV_USER, 0, i), 0);
  sim_ev ev;
  uint64_t last_t = 0;
  uint32_t last_arg[100];
  memset(last_arg, 0xff, sizeof last_arg);
  size_t count = 0;
  while (sim_net_next(n, UINT64_MAX, &ev)) {
    assert_true(ev.t >= last_t);
    /* Same time: popped in push order (arg is the push index). */
    if (last_arg[ev.t] != UINT32_MAX) assert_true(ev.arg > last_arg[ev.t]);
    last_arg[ev.t] = ev.arg;
    last_t = ev.t;
    assert_int_equal(sim_net_now(n), ev.t);
    count++;
  }
  assert_int_equal(count, 5000);
  sim_net_del(n);
}

static void test_until(void **state) {
  (void)state;
  sim_net *n = sim_net_new(1, &lan, 1);
  sim_net_push(n, 50, SIM_EV_USER, 0, 1);
  sim_ev ev;
  assert_int_equal(sim_net_next(n, 20, &ev), 0);
  assert_int_equal(sim_net_now(n), 20);
  assert_int_equal(sim_net_next(n, 50, &ev), 1);
  assert_int_equal(ev.t, 50);
  /* Pushing into the past lands at now. */
  sim_net_push(n, 10, SIM_EV_USER, 0, 2);
  assert_int_equal(sim_net_next(n, UINT64_MAX, &ev), 1);
  assert_int_equal(ev.t, 50);
  sim_net_del(n);
}

static void test_loss_and_delay(void **state) {
  (void)state;
  sim_net_params p = {
      .delay_ms = 5, .jitter_ms = 10, .loss = 0.10, .dup = 0.05};
  sim_net *n = sim_net_new(2, &p, 12345);
  uint8_t pkt[100] = {1, 2, 3};
  const int total = 100000;
  for (int i = 0; i < total; i++)
    assert_true(sim_net_send(n, 0, 1, pkt, sizeof pkt) >= 0);
  sim_net_stats st;
  sim_net_get_stats(n, &st);
  assert_int_equal(st.sent, total);
  /* Binomial(100000, 0.1): sd ~ 95, so +-1000 is over 10 sigma. */
  assert_in_range(st.lost, 9000, 11000);
  /* Of the ~90000 survivors, 5 % are duplicated (sd ~ 65). */
  assert_in_range(st.duplicated, 4000, 5000);
  sim_ev ev;
  uint64_t got = 0, hist[11] = {0};
  while (sim_net_next(n, UINT64_MAX, &ev)) {
    assert_int_equal(ev.kind, SIM_EV_DELIVER);
    assert_int_equal(ev.len, sizeof pkt);
    assert_memory_equal(sim_net_payload(n, &ev), pkt, sizeof pkt);
    assert_in_range(ev.t, 5, 15);
    hist[ev.t - 5]++;
    sim_net_release(n, &ev);
    got++;
  }
  assert_int_equal(got, total - st.lost + st.duplicated);
  /* Jitter is uniform over 11 values: each bucket near 1/11. */
  for (int i = 0; i < 11; i++)
    assert_in_range(hist[i], got / 11 - 1000, got / 11 + 1000);
  sim_net_del(n);
}

static void test_pause_queues(void **state) {
  (void)state;
  sim_net *n = sim_net_new(2, &lan, 1);
  sim_net_pause(n, 1, 100);
  assert_true(sim_net_paused(n, 1));
  for (uint8_t i = 0; i < 5; i++)
    assert_int_equal(sim_net_send(n, 0, 1, &i, 1), 1);
  sim_net_push(n, 10, SIM_EV_TIMER, 1, 77);
  sim_net_push(n, 20, SIM_EV_TIMER, 0, 78); /* not paused: on time */
  sim_ev ev;
  assert_int_equal(sim_net_next(n, UINT64_MAX, &ev), 1);
  assert_int_equal(ev.kind, SIM_EV_TIMER);
  assert_int_equal(ev.node, 0);
  assert_int_equal(ev.t, 20);
  /* The packets sent first arrive first, all at the end of the pause,
   * then the deferred timer (it was due later than they were). */
  for (uint8_t i = 0; i < 5; i++) {
    assert_int_equal(sim_net_next(n, UINT64_MAX, &ev), 1);
    assert_int_equal(ev.kind, SIM_EV_DELIVER);
    assert_int_equal(ev.t, 100);
    assert_int_equal(sim_net_payload(n, &ev)[0], i);
    sim_net_release(n, &ev);
  }
  assert_false(sim_net_paused(n, 1));
  assert_int_equal(sim_net_next(n, UINT64_MAX, &ev), 1);
  assert_int_equal(ev.kind, SIM_EV_TIMER);
  assert_int_equal(ev.arg, 77);
  assert_int_equal(ev.t, 100);
  sim_net_stats st;
  sim_net_get_stats(n, &st);
  assert_int_equal(st.deferred, 6);
  /* A pause is extended, never shortened. */
  sim_net_pause(n, 0, 300);
  sim_net_pause(n, 0, 200);
  assert_int_equal(sim_net_paused_until(n, 0), 300);
  sim_net_del(n);
}

/* A slow node's timers fire on time; each datagram it receives is
 * handed over once, slow_ms/2..slow_ms late; other nodes and the same node
 * after its slow stretch are unaffected. */
static void test_slow_input(void **state) {
  (void)state;
  sim_net_params p = lan;
  p.slow_ms = 400;
  sim_net *n = sim_net_new(3, &p, 1);
  assert_non_null(n);
  sim_net_slow(n, 1, 1000);
  for (uint8_t i = 0; i < 50; i++) {
    assert_int_equal(sim_net_send(n, 0, 1, &i, 1), 1);
    assert_int_equal(sim_net_send(n, 0, 2, &i, 1), 1);
  }
  sim_net_push(n, 10, SIM_EV_TIMER, 1, 77);
  sim_ev ev;
  int timer_seen = 0, fast = 0, slow = 0;
  uint64_t slow_min = UINT64_MAX, slow_max = 0;
  while (sim_net_next(n, UINT64_MAX, &ev)) {
    if (ev.kind == SIM_EV_TIMER) {
      assert_int_equal(ev.t, 10);
      timer_seen = 1;
      continue;
    }
    assert_int_equal(ev.kind, SIM_EV_DELIVER);
    if (ev.node == 2) {
      assert_int_equal(ev.t, 1);
      fast++;
    } else {
      slow++;
      if (ev.t < slow_min) slow_min = ev.t;
      if (ev.t > slow_max) slow_max = ev.t;
    }
    sim_net_release(n, &ev);
  }
  assert_true(timer_seen);
  assert_int_equal(fast, 50);
  assert_int_equal(slow, 50);
  /* Sent at 0, base delay 1, then held 200..400 ms. */
  assert_true(slow_min >= 201 && slow_max <= 401);
  assert_true(slow_max - slow_min >= 100); /* really spread */
  sim_net_stats st;
  sim_net_get_stats(n, &st);
  assert_int_equal(st.slowed, 50);
  /* After the stretch: on time again. */
  sim_net_push(n, 1000, SIM_EV_USER, 0, 0);
  assert_int_equal(sim_net_next(n, UINT64_MAX, &ev), 1);
  uint8_t b = 9;
  assert_int_equal(sim_net_send(n, 0, 1, &b, 1), 1);
  assert_int_equal(sim_net_next(n, UINT64_MAX, &ev), 1);
  assert_int_equal(ev.t, 1001);
  sim_net_release(n, &ev);
  sim_net_del(n);
}

static void test_partition(void **state) {
  (void)state;
  sim_net *n = sim_net_new(3, &lan, 1);
  const uint8_t group[3] = {0, 0, 1};
  assert_int_equal(sim_net_partition(n, group, 10, 50), 0);
  assert_false(sim_net_cut(n, 0, 2)); /* not yet */
  sim_ev ev;
  sim_net_next(n, 10, &ev);
  assert_true(sim_net_cut(n, 0, 2));
  assert_true(sim_net_cut(n, 2, 1));
  assert_false(sim_net_cut(n, 0, 1));
  uint8_t b = 9;
  sim_net_send(n, 0, 2, &b, 1);      /* dropped */
  sim_net_send(n, 0, 1, &b, 1);      /* delivered */
  sim_net_stream(n, 2, 0, 5, &b, 1); /* broken, reported */
  int delivered = 0, broken = 0;
  while (sim_net_next(n, UINT64_MAX, &ev)) {
    if (ev.kind == SIM_EV_DELIVER) delivered++;
    if (ev.kind == SIM_EV_STREAM && (ev.flags & SIM_EVF_BROKEN)) broken++;
    sim_net_release(n, &ev);
  }
  assert_int_equal(delivered, 1);
  assert_int_equal(broken, 1);
  /* The window closes at 50: everything passes again. */
  sim_net_next(n, 50, &ev);
  assert_false(sim_net_cut(n, 0, 2));
  sim_net_send(n, 0, 2, &b, 1);
  assert_int_equal(sim_net_next(n, UINT64_MAX, &ev), 1);
  assert_int_equal(ev.node, 2);
  sim_net_release(n, &ev);
  sim_net_stats st;
  sim_net_get_stats(n, &st);
  assert_int_equal(st.partition_dropped, 1);
  sim_net_del(n);
}

static void test_dead(void **state) {
  (void)state;
  sim_net *n = sim_net_new(3, &lan, 1);
  uint8_t b = 1;
  sim_net_send(n, 0, 1, &b, 1);
  sim_net_push(n, 5, SIM_EV_TIMER, 1, 0);
  sim_net_stream(n, 0, 1, 3, &b, 1);
  sim_net_kill(n, 1);
  assert_int_equal(sim_net_send(n, 1, 0, &b, 1), 0);
  sim_ev ev;
  /* Only the broken stream piece reaches the driver. */
  assert_int_equal(sim_net_next(n, UINT64_MAX, &ev), 1);
  assert_int_equal(ev.kind, SIM_EV_STREAM);
  assert_true(ev.flags & SIM_EVF_BROKEN);
  sim_net_release(n, &ev);
  assert_int_equal(sim_net_next(n, UINT64_MAX, &ev), 0);
  sim_net_stats st;
  sim_net_get_stats(n, &st);
  assert_int_equal(st.dead_dropped, 1);
  sim_net_del(n);
}

/* A modelled stream: the connect arrives after the handshake (three
 * one-way delays of 10 ms); the initiator's data right behind it, each
 * piece after its transmission time at 1,000 bytes per ms (8 Mbit/s): a
 * 6,000-byte write (4 pieces of at most SIM_PKT_CAP) ends 6 ms after the
 * handshake's ACK left; a second write queues behind the first. */
static void test_stream_model(void **state) {
  (void)state;
  sim_net_params p = {.delay_ms = 10, .stream_bytes_per_ms = 1000};
  sim_net *n = sim_net_new(2, &p, 1);
  static uint8_t big[6000];
  uint64_t clk = 0;
  assert_int_equal(sim_net_stream_connect(n, 0, 1, 9, &clk), 0);
  assert_int_equal(sim_net_stream_at(n, 0, 1, 9, big, sizeof big, &clk), 0);
  uint8_t b = 1;
  assert_int_equal(sim_net_stream_at(n, 0, 1, 9, &b, 1, &clk), 0);
  sim_ev ev;
  assert_int_equal(sim_net_next(n, UINT64_MAX, &ev), 1);
  assert_int_equal(ev.len, 0); /* the connect */
  assert_int_equal(ev.t, 30);
  sim_net_release(n, &ev);
  uint64_t last = 0;
  size_t got = 0;
  for (int i = 0; i < 5; i++) {
    assert_int_equal(sim_net_next(n, UINT64_MAX, &ev), 1);
    assert_int_equal(ev.kind, SIM_EV_STREAM);
    assert_true(ev.t >= last);
    last = ev.t;
    got += ev.len;
    if (i == 3) assert_int_equal(ev.t, 20 + 6 + 10); /* 6,000 bytes out */
    sim_net_release(n, &ev);
  }
  assert_int_equal(got, sizeof big + 1);
  assert_int_equal(last, 37); /* the byte behind them: 1 us, rounded up */
  assert_int_equal(sim_net_next(n, UINT64_MAX, &ev), 0);
  /* No bandwidth: a fixed delay, as sim_net_stream. */
  sim_net_del(n);
  p.stream_bytes_per_ms = 0;
  n = sim_net_new(2, &p, 1);
  clk = 0;
  assert_int_equal(sim_net_stream_at(n, 0, 1, 9, big, sizeof big, &clk), 0);
  assert_int_equal(sim_net_next(n, UINT64_MAX, &ev), 1);
  assert_int_equal(ev.t, 10);
  sim_net_release(n, &ev);
  sim_net_del(n);
}

/* refuse_dead: a datagram to a dead node comes back to its live sender as
 * UNREACH (from = the dead node) one delay later; a paused sender gets it
 * when it resumes; a dead sender gets nothing. */
static void test_refuse_dead(void **state) {
  (void)state;
  sim_net_params p = lan;
  p.refuse_dead = 1;
  sim_net *n = sim_net_new(3, &p, 1);
  uint8_t b = 1;
  sim_net_kill(n, 1);
  sim_net_send(n, 0, 1, &b, 1);
  sim_net_send(n, 2, 1, &b, 1);
  sim_net_pause(n, 2, 50);
  sim_ev ev;
  assert_int_equal(sim_net_next(n, UINT64_MAX, &ev), 1);
  assert_int_equal(ev.kind, SIM_EV_UNREACH);
  assert_int_equal(ev.node, 0);
  assert_int_equal(ev.from, 1);
  assert_true(ev.t >= 2 * lan.delay_ms);
  sim_net_release(n, &ev);
  assert_int_equal(sim_net_next(n, UINT64_MAX, &ev), 1);
  assert_int_equal(ev.kind, SIM_EV_UNREACH);
  assert_int_equal(ev.node, 2);
  assert_int_equal(ev.t, 50);
  sim_net_release(n, &ev);
  assert_int_equal(sim_net_next(n, UINT64_MAX, &ev), 0);
  sim_net_del(n);
  /* Off: silence, as before. */
  n = sim_net_new(3, &lan, 1);
  sim_net_kill(n, 1);
  sim_net_send(n, 0, 1, &b, 1);
  assert_int_equal(sim_net_next(n, UINT64_MAX, &ev), 0);
  sim_net_del(n);
}

/* Replays a small random workload and returns a digest of what popped. */
static uint64_t run_digest(uint64_t seed) {
  sim_net_params p = {.delay_ms = 2, .jitter_ms = 7, .loss = 0.2, .dup = 0.1};
  sim_net *n = sim_net_new(8, &p, seed);
  uint64_t h = 1469598103934665603ull;
  sim_ev ev;
  for (int round = 0; round < 200; round++) {
    for (uint32_t i = 0; i < 8; i++) {
      uint8_t b = (uint8_t)(round + i);
      sim_net_send(n, i, (i + 1 + (uint32_t)round) % 8, &b, 1);
    }
    while (sim_net_next(n, sim_net_now(n) + 3, &ev)) {
      h = (h ^ (ev.t * 131 + ev.node * 7 + sim_net_payload(n, &ev)[0])) *
          1099511628211ull;
      sim_net_release(n, &ev);
    }
  }
  sim_net_stats st;
  sim_net_get_stats(n, &st);
  /* In-flight buffers are recycled: a few hundred at most, one chunk. */
  assert_int_equal(st.pool_bufs, 256);
  sim_net_del(n);
  return h;
}

/* Regions: a datagram, a stream piece and a stream's handshake between
 * two regions take region_delay_ms, inside one the base delay. */
static void test_region_delays(void **state) {
  (void)state;
  sim_net_params p = {.delay_ms = 1, .region_delay_ms = 80};
  sim_net *n = sim_net_new(4, &p, 3);
  const uint8_t region[4] = {0, 0, 1, 2};
  assert_int_equal(sim_net_set_regions(n, region), 0);
  assert_int_equal(sim_net_link_delay(n, 0, 1), 1);
  assert_int_equal(sim_net_link_delay(n, 1, 2), 80);
  assert_int_equal(sim_net_link_delay(n, 3, 2), 80);
  uint8_t pkt[10] = {0};
  assert_int_equal(sim_net_send(n, 0, 1, pkt, sizeof pkt), 1);
  assert_int_equal(sim_net_send(n, 0, 2, pkt, sizeof pkt), 1);
  assert_int_equal(sim_net_stream(n, 3, 0, 7, pkt, sizeof pkt), 0);
  uint64_t clock = 0;
  assert_int_equal(sim_net_stream_connect(n, 1, 3, 8, &clock), 0);
  sim_ev ev;
  uint64_t at[4] = {0};
  int k = 0;
  while (sim_net_next(n, UINT64_MAX, &ev)) {
    if (k < 4) at[k++] = ev.t;
    sim_net_release(n, &ev);
  }
  assert_int_equal(k, 4);
  assert_int_equal(at[0], 1);   /* 0 -> 1, same region */
  assert_int_equal(at[1], 80);  /* 0 -> 2 */
  assert_int_equal(at[2], 80);  /* the stream piece 3 -> 0 */
  assert_int_equal(at[3], 240); /* SYN, SYN-ACK, ACK across */
  sim_net_del(n);
}

/* Burst loss: links alternate good (mean 900 ms) and bad (mean 100 ms),
 * a datagram through a bad link is lost with probability 0.8.  Sent one
 * per ms from node 0 to node 1 over 200 s, about 19 % of the time one of
 * the two links is bad: about 15 % lost, in runs, not spread evenly. */
static void test_burst_loss(void **state) {
  (void)state;
  sim_net_params p = {.delay_ms = 1, .burst_loss = 0.8, .burst_good_ms = 900,
                      .burst_bad_ms = 100};
  sim_net *n = sim_net_new(2, &p, 9);
  uint8_t pkt[10] = {0};
  unsigned lost = 0, runs = 0, longest = 0, cur = 0;
  sim_ev ev;
  for (int i = 0; i < 200000; i++) {
    int c = sim_net_send(n, 0, 1, pkt, sizeof pkt);
    assert_true(c >= 0);
    if (c == 0) {
      lost++;
      if (cur++ == 0) runs++;
      if (cur > longest) longest = cur;
    } else {
      cur = 0;
    }
    while (sim_net_next(n, sim_net_now(n) + 1, &ev)) sim_net_release(n, &ev);
  }
  sim_net_stats st;
  sim_net_get_stats(n, &st);
  assert_int_equal(st.burst_lost, lost);
  assert_in_range(lost, 200000 * 8 / 100, 200000 * 25 / 100);
  /* Independent loss at that rate would almost never lose 20 in a row;
   * a bad stretch of ~100 ms loses ~80 % of its datagrams. */
  assert_true(longest >= 20);
  assert_true(runs < lost / 2);
  sim_net_del(n);
}

static void test_deterministic(void **state) {
  (void)state;
  assert_true(run_digest(99) == run_digest(99));
  assert_true(run_digest(99) != run_digest(100));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_heap_order),
      cmocka_unit_test(test_until),
      cmocka_unit_test(test_loss_and_delay),
      cmocka_unit_test(test_pause_queues),
      cmocka_unit_test(test_slow_input),
      cmocka_unit_test(test_partition),
      cmocka_unit_test(test_dead),
      cmocka_unit_test(test_refuse_dead),
      cmocka_unit_test(test_stream_model),
      cmocka_unit_test(test_region_delays),
      cmocka_unit_test(test_burst_loss),
      cmocka_unit_test(test_deterministic),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
