/*
 * Fuzz target: the inspector's capture core fed a script of both
 * directions of relayed connections.
 *
 * Input: byte 0 picks how many connections share the ring (1..4); then
 * records of [ctl][len][len bytes]: ctl bit 0 is the direction, bits 1-2
 * the connection, bit 3 closes that connection (and opens a new one)
 * after the bytes.  The ring is made tiny (8 records, 64-byte bodies,
 * 2 KiB heads, 40 KiB in all) so eviction and truncation happen all the
 * time.  After every step: memory within its bound, count within its
 * bound, and every record renders as JSON (as the API would serve it).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "warren/capture.h"
#include "warren/inspect.h"

static void check(const wr_capture *c, const wr_capture_config *k) {
  if (wr_capture_mem(c) > k->max_bytes) abort();
  if (wr_capture_count(c) > k->max_exchanges) abort();
  size_t n = 0;
  for (const wr_exchange *e = wr_capture_older(c, 0); e;
       e = wr_capture_older(c, e->id)) {
    json_t *j = wr_inspect_exchange_json(e, 1, 0);
    if (!j) abort();
    char *s = json_dumps(j, JSON_COMPACT);
    if (!s) abort();
    free(s);
    json_decref(j);
    if (e->req.body_len > k->body_cap || e->resp.body_len > k->body_cap)
      abort();
    n++;
  }
  if (n != wr_capture_count(c)) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  wr_capture_config k = {.max_exchanges = 8,
                         .body_cap = 64,
                         .max_head = 2048,
                         .max_bytes = 40960,
                         .ws_max_msgs = 4};
  wr_capture *c;
  uint64_t t = 1;
  if (wr_capture_new(&c, &k, NULL, NULL, NULL) != 0) return 0;
  int nconn = 1 + (data[0] & 3);
  wr_capture_conn *cc[4] = {0};
  for (int i = 0; i < nconn; i++)
    if (wr_capture_conn_new(c, &cc[i], (uint64_t)i) != 0) goto out;
  size_t off = 1;
  while (off + 2 <= size) {
    uint8_t ctl = data[off], len = data[off + 1];
    off += 2;
    size_t n = WR_MIN((size_t)len, size - off);
    int dir = ctl & 1, i = (ctl >> 1) % nconn;
    wr_capture_conn_feed(cc[i], dir, data + off, n, t);
    off += n;
    t += ctl >> 4;
    if (ctl & 8) {
      wr_capture_conn_close(cc[i], t);
      cc[i] = NULL;
      if (wr_capture_conn_new(c, &cc[i], 0) != 0) goto out;
    }
    check(c, &k);
  }
out:
  for (int i = 0; i < nconn; i++)
    if (cc[i]) wr_capture_conn_close(cc[i], t + 1);
  check(c, &k);
  wr_capture_del(c);
  return 0;
}
