/*
 * The routes table's anti-entropy on swim's app-state channel (see
 * wr_routes_swim_sync in routes.h): each swim sync session opens one
 * wr_routes_sync session and hands it the records swim carries.  Sans-IO
 * like the rest of the core; the host supplies the clock and what to do
 * after a delta record was applied.
 */
#include <stdlib.h>

#include <sodium.h>
#include <stdio.h>
#include <string.h>

#include "warren/routes.h"
#include "warren/swim.h"

typedef struct app_session {
  const wr_routes_sync_host *host;
  wr_routes_sync *s;
} app_session;

static void *as_begin(void *ud, int initiator, wr_tstamp now) {
  (void)initiator;
  app_session *a = calloc(1, sizeof *a);
  if (!a) return NULL;
  a->host = ud;
  if (wr_routes_sync_new(a->host->rt, &a->s, now) != 0) {
    free(a);
    return NULL;
  }
  return a;
}

static wr_ssize as_digest_next(void *ctx, uint8_t *dst, size_t cap) {
  return wr_routes_sync_digest_next(((app_session *)ctx)->s, dst, cap);
}

static int as_digest_in(void *ctx, const uint8_t *rec, size_t len) {
  return wr_routes_sync_digest_in(((app_session *)ctx)->s, rec, len);
}

static wr_ssize as_delta_next(void *ctx, uint8_t *dst, size_t cap) {
  return wr_routes_sync_delta_next(((app_session *)ctx)->s, dst, cap);
}

static int as_delta_in(void *ctx, const uint8_t *rec, size_t len) {
  app_session *a = ctx;
  const wr_routes_sync_host *h = a->host;
  int rv = wr_routes_sync_delta_in(a->s, rec, len, h->now(h->ud));
  if (h->applied) h->applied(h->ud);
  return rv;
}

static void as_end(void *ctx, int ok) {
  (void)ok;
  app_session *a = ctx;
  wr_routes_sync_del(a->s);
  free(a);
}

const wr_swim_app_sync *wr_routes_swim_sync(void) {
  static const wr_swim_app_sync vt = {
      .begin = as_begin,
      .digest_next = as_digest_next,
      .digest_in = as_digest_in,
      .delta_next = as_delta_next,
      .delta_in = as_delta_in,
      .end = as_end,
  };
  return &vt;
}

void wr_route_gossip_key(const char *owner, const char *name, char *out,
                         size_t cap) {
  crypto_generichash_state st;
  uint8_t h[16];
  char hex[33];
  crypto_generichash_init(&st, NULL, 0, sizeof h);
  crypto_generichash_update(&st, (const uint8_t *)owner, strlen(owner) + 1);
  crypto_generichash_update(&st, (const uint8_t *)name, strlen(name));
  crypto_generichash_final(&st, h, sizeof h);
  sodium_bin2hex(hex, sizeof hex, h, sizeof h);
  snprintf(out, cap, WR_ROUTE_KEY_PREFIX "%s", hex);
}
