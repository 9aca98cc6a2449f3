/*
 * libFuzzer target: gossip payloads applied to a routes table that holds
 * some state (our bindings, two peers' entries, a tombstone, a dead
 * owner).  The input is a script of records
 *     u8 op | u16 len (big endian) | len bytes
 * op % 4: 0, 1 apply the bytes as a gossip payload; 2 set the liveness of
 * owner (byte 0 % 4) to (byte 1 & 1); 3 advance time by len seconds and
 * tick.  Checks: whatever decodes re-encodes to an entry that decodes to
 * the same struct; applying the same payload twice in a row is news at
 * most once; every name foreach lists resolves; the routed count matches
 * foreach; the table frees everything (ASan).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "warren/err.h"
#include "warren/pcg.h"
#include "warren/routes.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *owners[4] = {"node-a", "node-b", "node-c", "node-self"};

static void count_fn(const wr_route_entry *w, size_t n, void *ud) {
  wr_routes *t = ((void **)ud)[0];
  size_t *count = ((void **)ud)[1];
  wr_route_entry out[2];
  if (n == 0 || wr_routes_resolve(t, w->name, out, 2) != n) abort();
  (*count)++;
}

static void seed_state(wr_routes *t, wr_tstamp now) {
  static const char *peer_names[] = {"app", "web", "api", "shared"};
  uint8_t enc[WR_ROUTE_ENCODED_MAX], sess[WR_ROUTE_SESSION_LEN] = {1};
  size_t len, i;
  wr_route_entry e;
  wr_routes_bind(t, "mine", "acct-self", sess, 0, enc, &len, now);
  wr_routes_bind(t, "shared", "acct-self", sess, WR_ROUTE_OPT_BALANCE, enc,
                 &len, now);
  wr_routes_bind(t, "gone", "acct-self", sess, 0, enc, &len, now);
  wr_routes_release(t, "gone", enc, &len, now);
  for (i = 0; i < 8; i++) {
    memset(&e, 0, sizeof e);
    strcpy(e.name, peer_names[i % 4]);
    strcpy(e.owner, owners[i % 3]);
    strcpy(e.account, i % 2 ? "acct-one" : "acct-two");
    e.session[0] = (uint8_t)i;
    e.epoch = 100 + i % 3;
    e.seq = 1 + i / 3;
    e.version = 10 + i;
    e.claimed_at = 5 + i % 2;
    e.state = i == 7 ? WR_ROUTE_RELEASED : WR_ROUTE_ACTIVE;
    wr_ssize n = wr_route_entry_encode(&e, enc, sizeof enc);
    if (n < 0) abort();
    wr_routes_apply(t, enc, (size_t)n, now);
  }
  wr_routes_owner_state(t, "node-c", WR_ROUTE_OWNER_DEAD, now);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  wr_routes_config cfg;
  wr_routes *t;
  wr_pcg32 g;
  wr_tstamp now = 1000;
  size_t pos = 0;
  wr_routes_config_default(&cfg);
  strcpy(cfg.self, "node-self");
  cfg.epoch = 50;
  cfg.released_grace_ms = 5000;
  cfg.dead_grace_ms = 5000;
  cfg.owner_tombstone_ms = 60000;
  cfg.max_entries = 64;
  cfg.max_per_owner = 16;
  cfg.max_owners = 8;
  cfg.ingest_max = 4;
  cfg.owner_rate = 2; /* two a second after a burst of three */
  cfg.owner_burst = 3;
  wr_pcg32_seed(&g, 1, 1);
  cfg.rand = wr_pcg32_fill;
  cfg.rand_user_data = &g;
  if (wr_routes_new(&t, &cfg, NULL, NULL, NULL, now) != 0) abort();
  seed_state(t, now);
  while (pos + 3 <= size) {
    uint8_t op = data[pos];
    size_t len = (size_t)data[pos + 1] << 8 | data[pos + 2];
    const uint8_t *p = data + pos + 3;
    pos += 3;
    if (len > size - pos) len = size - pos;
    pos += len;
    switch (op % 4) {
    case 1: {
      /* The node's gossip path: checked and queued, applied in slices
       * (the queue of 4 fills up; the rest are counted drops). */
      int rv = wr_routes_ingest_push(t, p, len, now);
      if (rv != 0 && rv != 1 && rv != WR_ERR_PROTO) abort();
      if ((rv == WR_ERR_PROTO) != (wr_route_entry_decode(p, len, &(wr_route_entry){0}) != 0))
        abort();
      if (wr_routes_ingest_pending(t) > cfg.ingest_max) abort();
      if (op & 0x10 && wr_routes_ingest_run(t, op >> 5, NULL, NULL, now) < 0)
        abort();
      break;
    }
    case 0: {
      wr_route_entry e, back;
      uint8_t enc[WR_ROUTE_ENCODED_MAX];
      int rv = wr_routes_apply(t, p, len, now);
      if (rv != 0 && rv != 1 && rv != WR_ERR_PROTO) abort();
      if (wr_route_entry_decode(p, len, &e) == 0) {
        wr_ssize n = wr_route_entry_encode(&e, enc, sizeof enc);
        if (n <= 0) abort();
        if (wr_route_entry_decode(enc, (size_t)n, &back) != 0) abort();
        if (memcmp(&e, &back, sizeof e) != 0) abort();
        if (rv == WR_ERR_PROTO) abort();
        if (wr_routes_apply(t, p, len, now) != 0) abort(); /* idempotent */
      } else if (rv != WR_ERR_PROTO) {
        abort();
      }
      break;
    }
    case 2:
      if (len >= 2)
        wr_routes_owner_state(t, owners[p[0] % 4],
                              p[1] & 1 ? WR_ROUTE_OWNER_DEAD
                                       : WR_ROUTE_OWNER_LIVE,
                              now);
      break;
    default:
      now += (wr_tstamp)len * 1000;
      if (wr_routes_deadline(t) <= now) wr_routes_tick(t, now);
      break;
    }
  }
  {
    size_t count = 0;
    void *ud[2] = {t, &count};
    wr_routes_foreach(t, count_fn, ud);
    if (count != wr_routes_count(t)) abort();
  }
  wr_routes_del(t);
  return 0;
}
