/*
 * What fault injection costs a node per gossip datagram (docs/FAULTS.md,
 * docs/BENCHMARKS.md): the swim tap's work, step by step.
 *
 *   covers     wr_fault_covers with N rules for other kinds: the whole
 *              cost while no rule covers gossip
 *   peek       wr_swim_packet_peek of a sealed full-size datagram (one
 *              XChaCha20-Poly1305 open with a keyring copy)
 *   decide     wr_fault_decide with N matching rules (drop 0.1, jitter)
 *   baseline   wr_swim_recv of the same datagram (what a node does with
 *              every datagram anyway), measured in the same run
 *
 * usage: bench_fault_cost [ITERATIONS]   (default 200000)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

#include "warren/fault.h"
#include "warren/swim.h"
#include "warren/swim_seal.h"

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static volatile int sink;

static void rnd(uint8_t *dst, size_t len, void *ud) {
  (void)ud;
  randombytes_buf(dst, len);
}

int main(int argc, char **argv) {
  long iters = argc > 1 ? atol(argv[1]) : 200000;
  if (iters < 1000 || sodium_init() < 0) return 2;
  /* A core with a real key, and a sealed datagram from it. */
  wr_swim_keyring kr;
  uint8_t key[32];
  randombytes_buf(key, sizeof key);
  wr_swim_keyring_init(&kr);
  wr_swim_keyring_add(&kr, key, 1);
  wr_swim_config cfg;
  wr_swim_config_default(&cfg);
  snprintf(cfg.id, sizeof cfg.id, "bench");
  cfg.gossip.family = 4;
  cfg.gossip.ip[0] = 127;
  cfg.gossip.ip[3] = 1;
  cfg.gossip.port = 7946;
  cfg.data = cfg.gossip;
  cfg.rand = rnd;
  wr_swim *sw;
  static const wr_swim_callbacks cb;
  if (wr_swim_new(&sw, &cfg, &cb, &kr, NULL, NULL, 1) != 0) {
    fprintf(stderr, "bench_fault_cost: wr_swim_new failed\n");
    return 1;
  }
  uint8_t pt[WR_SWIM_PACKET_MAX], pkt[WR_SWIM_DATAGRAM_MAX];
  /* version 1 | GOSSIP | seq | "n2" | no updates, padded is not valid:
   * a short real header, as the codec writes it. */
  size_t n = 0;
  pt[n++] = 1;
  pt[n++] = 5;
  memset(pt + n, 0, 4);
  n += 4;
  pt[n++] = 2;
  pt[n++] = 'n';
  pt[n++] = '2';
  pt[n++] = 0;
  /* Fill to a full datagram the way piggybacked updates would (the
   * open's cost grows with the length; the parse is not timed). */
  memset(pt + n, 'x', sizeof pt - n);
  size_t ptlen = sizeof pt;
  uint8_t nonce[24];
  randombytes_buf(nonce, sizeof nonce);
  wr_ssize len = wr_swim_seal(&kr, pkt, sizeof pkt, pt, ptlen, nonce);
  if (len <= 0) return 1;
  char from[WR_SWIM_ID_MAX + 1];
  if (wr_swim_packet_peek(sw, pkt, (size_t)len, from) != 5 ||
      strcmp(from, "n2")) {
    fprintf(stderr, "bench_fault_cost: the datagram does not peek\n");
    return 1;
  }

  printf("iterations %ld, datagram %zd bytes\n", iters, len);
  double t0 = now_s();
  wr_addr a = cfg.gossip;
  a.ip[3] = 2;
  for (long i = 0; i < iters; i++)
    sink += wr_swim_recv(sw, &a, pkt, (size_t)len, (wr_tstamp)(2 + i / 1000));
  double base = (now_s() - t0) / (double)iters * 1e9;
  printf("baseline  wr_swim_recv (open + parse, rejected)  %8.0f ns\n", base);

  t0 = now_s();
  for (long i = 0; i < iters; i++)
    sink += wr_swim_packet_peek(sw, pkt, (size_t)len, from);
  printf("peek      wr_swim_packet_peek                    %8.0f ns\n",
         (now_s() - t0) / (double)iters * 1e9);

  for (int nr = 1; nr <= WR_FAULT_MAX_RULES; nr *= 8) {
    wr_fault *f, *g;
    if (wr_fault_new(&f, 1, 0, NULL) || wr_fault_new(&g, 1, 0, NULL))
      return 1;
    for (int k = 0; k < nr; k++) {
      wr_fault_rule r;
      const char *other = "{\"kinds\":\"tunnel\",\"drop\":1}";
      const char *match = "{\"kinds\":\"broadcast\",\"peers\":[\"n1\",\"n2\"],"
                          "\"drop\":0.1,\"jitter_ms\":5}";
      if (wr_fault_rule_parse(other, strlen(other), &r, NULL, 0) ||
          wr_fault_add(f, &r, 0, NULL) ||
          wr_fault_rule_parse(match, strlen(match), &r, NULL, 0) ||
          wr_fault_add(g, &r, 0, NULL))
        return 1;
    }
    t0 = now_s();
    for (long i = 0; i < iters; i++)
      sink += wr_fault_covers(f, WR_FAULT_KIND_BIT(WR_FAULT_BROADCAST));
    double c = (now_s() - t0) / (double)iters * 1e9;
    wr_fault_verdict v;
    t0 = now_s();
    for (long i = 0; i < iters; i++) {
      wr_fault_decide(g, WR_FAULT_BROADCAST, "n2", WR_FAULT_IN, 1, &v);
      sink += v.drop;
    }
    double d = (now_s() - t0) / (double)iters * 1e9;
    printf("rules %2d  covers (no match) %5.1f ns   decide (all match) "
           "%7.1f ns\n", nr, c, d);
    wr_fault_del(f);
    wr_fault_del(g);
  }
  wr_swim_del(sw);
  return 0;
}
