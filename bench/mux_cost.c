/*
 * What the stream multiplexer costs per MiB relayed, in isolation: two
 * muxes in one process, STREAMS streams each writing BYTES in 4 KiB
 * pieces (a client's origin reads), frames carried in 16 KiB records
 * (wr_mux_send, as the link seals them), the receiver consuming what it
 * got after every record (credit back as soon as it is written out).
 * Nothing else runs: no crypto, no sockets.  It was written to check
 * that splitting mux.c by concern (mux_stream.c, mux_credit.c,
 * mux_queue.c) left the hot path as it was.
 *
 * usage: bench_mux_cost [MIB_PER_STREAM]   (default 64, 8 streams)
 * Prints ns per MiB.  For instruction counts, which do not depend on the
 * neighbours on a shared box:
 *   valgrind --tool=callgrind --toggle-collect='run_*' bench_mux_cost 8
 * and divide the inclusive count of run_relay by the MiB relayed.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "warren/err.h"
#include "warren/mux.h"

#define STREAMS 8
#define PIECE 4096
#define RECORD 16384

/* What the receiver got per stream, consumed after the record is fed. */
static size_t got[2 * STREAMS + 2], unconsumed[2 * STREAMS + 2];

static int on_data(wr_mux *m, uint32_t sid, const uint8_t *data, size_t len,
                   void *ud) {
  (void)m, (void)data, (void)ud;
  if (sid >= sizeof got / sizeof got[0]) return -1;
  got[sid] += len;
  unconsumed[sid] += len;
  return 0;
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Moves every byte |from| has to send into |to|; returns bytes moved or
 * a negative error. */
static long pump(wr_mux *from, wr_mux *to, uint8_t *rec) {
  long moved = 0;
  while (wr_mux_want_write(from)) {
    wr_ssize n = wr_mux_send(from, rec, RECORD, 0);
    if (n < 0) return (long)n;
    if (n == 0) break;
    int rv = wr_mux_recv(to, rec, (size_t)n, 0);
    if (rv != 0) return rv;
    moved += n;
    for (uint32_t sid = 0; sid < sizeof got / sizeof got[0]; sid++)
      if (unconsumed[sid]) {
        wr_mux_stream_consume(to, sid, unconsumed[sid]);
        unconsumed[sid] = 0;
      }
  }
  return moved;
}

__attribute__((noinline)) long run_relay(wr_mux *a, wr_mux *b, size_t each,
                                         uint32_t *sids);
__attribute__((noinline)) long run_relay(wr_mux *a, wr_mux *b, size_t each,
                                         uint32_t *sids) {
  static uint8_t piece[PIECE], rec[RECORD];
  size_t sent[STREAMS] = {0};
  long total = 0;
  for (;;) {
    int busy = 0;
    for (int i = 0; i < STREAMS; i++) {
      while (sent[i] < each) {
        size_t n = each - sent[i] < PIECE ? each - sent[i] : PIECE;
        wr_ssize w = wr_mux_stream_write(a, sids[i], piece, n);
        if (w < 0) return (long)w;
        if (w == 0) break;
        sent[i] += (size_t)w;
        total += w;
      }
      busy |= sent[i] < each;
    }
    long r = pump(a, b, rec);
    if (r < 0) return r;
    if ((r = pump(b, a, rec)) < 0) return r;
    if (!busy && !wr_mux_want_write(a)) return total;
  }
}

int main(int argc, char **argv) {
  size_t mib = argc > 1 ? strtoul(argv[1], NULL, 10) : 64;
  wr_mux_config ca, cb;
  wr_mux_config_default(&ca, 1);
  wr_mux_config_default(&cb, 0);
  wr_mux_callbacks rcb = {.stream_data = on_data};
  wr_mux *a, *b;
  uint32_t sids[STREAMS];
  uint8_t rec[RECORD];
  if (wr_mux_new(&a, &ca, NULL, NULL, NULL, 0) != 0 ||
      wr_mux_new(&b, &cb, &rcb, NULL, NULL, 0) != 0)
    return 1;
  for (int i = 0; i < STREAMS; i++)
    if (wr_mux_stream_open(a, NULL, 0, &sids[i], NULL) != 0) return 1;
  /* SETTINGS and OPENs both ways before the clock starts. */
  if (pump(a, b, rec) < 0 || pump(b, a, rec) < 0) return 1;
  double t0 = now_s();
  long total = run_relay(a, b, mib << 20, sids);
  double dt = now_s() - t0;
  size_t recv = 0;
  for (size_t i = 0; i < sizeof got / sizeof got[0]; i++) recv += got[i];
  if (total < 0 || recv != (size_t)total) {
    fprintf(stderr, "relay failed: %ld sent, %zu received\n", total, recv);
    return 1;
  }
  printf("mux  %zu MiB over %d streams: %.0f ns per MiB\n",
         (size_t)total >> 20, STREAMS, dt * 1e9 / (double)(total >> 20));
  wr_mux_del(a);
  wr_mux_del(b);
  return 0;
}
