/*
 * libFuzzer target: an anti-entropy session fed by a hostile peer.  The
 * table holds our bindings, two peers' logs (one with a collected
 * tombstone, so full logs are exercised), a dead owner's tombstone.  The
 * input is a script of records
 *     u8 op | u16 len (big endian) | len bytes
 * op % 4: 0 digest_in, 1 delta_in, 2 pull our whole delta (delta_next)
 * and replay it into a fresh table's session: everything we write must be
 * accepted; 3 advance time by len seconds and tick.  Errors other than
 * WR_ERR_PROTO (and WR_ERR_INVAL for a digest after our delta began)
 * abort; ASan checks memory.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "warren/err.h"
#include "warren/pcg.h"
#include "warren/routes.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void config(wr_routes_config *cfg, const char *self, wr_pcg32 *g) {
  wr_routes_config_default(cfg);
  strcpy(cfg->self, self);
  cfg->epoch = 50;
  cfg->released_grace_ms = 5000;
  cfg->dead_grace_ms = 5000;
  cfg->owner_tombstone_ms = 60000;
  cfg->max_entries = 256;
  cfg->max_per_owner = 64;
  cfg->max_owners = 16;
  cfg->rand = wr_pcg32_fill;
  cfg->rand_user_data = g;
}

static void put(wr_routes *t, const char *name, const char *owner,
                uint64_t epoch, uint64_t seq, uint64_t version, int released,
                wr_tstamp now) {
  wr_route_entry e;
  uint8_t enc[WR_ROUTE_ENCODED_MAX];
  memset(&e, 0, sizeof e);
  strcpy(e.name, name);
  strcpy(e.owner, owner);
  strcpy(e.account, "acct");
  e.session[0] = (uint8_t)seq;
  e.epoch = epoch;
  e.seq = seq;
  e.version = version;
  e.claimed_at = 1;
  e.state = released ? WR_ROUTE_RELEASED : WR_ROUTE_ACTIVE;
  wr_ssize n = wr_route_entry_encode(&e, enc, sizeof enc);
  if (n < 0) abort();
  wr_routes_apply(t, enc, (size_t)n, now);
}

/* Drains s's delta into a fresh table (what an honest peer would do). */
static void pull_delta(wr_routes_sync *s, wr_tstamp now) {
  wr_routes_config cfg;
  wr_routes *u;
  wr_routes_sync *us;
  wr_pcg32 g;
  uint8_t buf[WR_ROUTE_ENCODED_MAX];
  wr_ssize n;
  wr_pcg32_seed(&g, 2, 2);
  config(&cfg, "node-fresh", &g);
  if (wr_routes_new(&u, &cfg, NULL, NULL, NULL, now) != 0) abort();
  if (wr_routes_sync_new(u, &us, now) != 0) abort();
  while ((n = wr_routes_sync_delta_next(s, buf, sizeof buf)) > 0)
    if (wr_routes_sync_delta_in(us, buf, (size_t)n, now) != 0) abort();
  if (n < 0) abort();
  wr_routes_sync_del(us);
  wr_routes_del(u);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  wr_routes_config cfg;
  wr_routes *t;
  wr_routes_sync *s;
  wr_pcg32 g;
  wr_tstamp now = 1000;
  size_t pos = 0;
  uint8_t enc[WR_ROUTE_ENCODED_MAX], sess[WR_ROUTE_SESSION_LEN] = {7};
  size_t len;
  int i;
  wr_pcg32_seed(&g, 1, 1);
  config(&cfg, "node-self", &g);
  if (wr_routes_new(&t, &cfg, NULL, NULL, NULL, now) != 0) abort();
  wr_routes_bind(t, "mine", "acct", sess, 0, enc, &len, now);
  wr_routes_bind(t, "old", "acct", sess, 0, enc, &len, now);
  wr_routes_release(t, "old", enc, &len, now);
  for (i = 1; i <= 6; i++) {
    char name[8] = {'p', (char)('0' + i), 0};
    put(t, name, "node-a", 100, (uint64_t)i, (uint64_t)(10 + i), i == 3, now);
    put(t, name, "node-b", 200, (uint64_t)i, (uint64_t)(20 + i), 0, now);
  }
  put(t, "dead", "node-c", 300, 1, 40, 0, now);
  wr_routes_owner_state(t, "node-c", WR_ROUTE_OWNER_DEAD, now);
  now += 10000;
  wr_routes_tick(t, now); /* collects node-a's tombstone, node-c's log */
  if (wr_routes_sync_new(t, &s, now) != 0) abort();
  while (pos + 3 <= size) {
    uint8_t op = data[pos];
    size_t n = (size_t)data[pos + 1] << 8 | data[pos + 2];
    const uint8_t *p = data + pos + 3;
    int rv = 0;
    pos += 3;
    if (n > size - pos) n = size - pos;
    pos += n;
    switch (op % 4) {
    case 0:
      rv = wr_routes_sync_digest_in(s, p, n);
      /* After our delta began, a digest is a caller error (the plan is
       * made); the script may well do that. */
      if (rv == WR_ERR_INVAL) rv = 0;
      break;
    case 1:
      rv = wr_routes_sync_delta_in(s, p, n, now);
      break;
    case 2:
      pull_delta(s, now);
      break;
    default:
      now += (wr_tstamp)n * 1000;
      if (wr_routes_deadline(t) <= now) wr_routes_tick(t, now);
      break;
    }
    if (rv != 0 && rv != WR_ERR_PROTO) abort();
  }
  /* Our own digest is always writable. */
  {
    uint8_t buf[WR_ROUTE_ENCODED_MAX];
    wr_ssize n;
    while ((n = wr_routes_sync_digest_next(s, buf, sizeof buf)) > 0) {
    }
    if (n < 0) abort();
  }
  wr_routes_sync_del(s);
  wr_routes_del(t);
  return 0;
}
