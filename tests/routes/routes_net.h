/*
 * Test helpers for the routes table: a node (a table plus the event log
 * its callbacks write), direct sync between two tables through the real
 * session API, and deterministic sessions.  Header-only so each test
 * binary stays one file plus this.
 */
#ifndef WARREN_TEST_ROUTES_NET_H
#define WARREN_TEST_ROUTES_NET_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "warren/err.h"
#include "warren/pcg.h"
#include "warren/routes.h"

#define TN_MAX_LOST 64
#define TN_MAX_REPUB 256

typedef struct tnode {
  wr_routes *t;
  wr_pcg32 rng;
  char id[WR_ROUTE_OWNER_MAX + 1];
  /* Events from the callbacks, drained by the test. */
  char lost[TN_MAX_LOST][WR_ROUTE_NAME_MAX + 1];
  wr_route_loss lost_why[TN_MAX_LOST];
  int nlost;
  int nchanged;
  uint8_t repub[TN_MAX_REPUB][WR_ROUTE_ENCODED_MAX];
  size_t repub_len[TN_MAX_REPUB];
  int nrepub;
} tnode;

static inline void tn_lost(wr_routes *t, const wr_route_entry *e, wr_route_loss why,
                    void *ud) {
  tnode *n = ud;
  (void)t;
  if (n->nlost < TN_MAX_LOST) {
    strcpy(n->lost[n->nlost], e->name);
    n->lost_why[n->nlost] = why;
    n->nlost++;
  }
}

static inline void tn_changed(wr_routes *t, const char *name, void *ud) {
  tnode *n = ud;
  (void)t;
  (void)name;
  n->nchanged++;
}

static inline void tn_republish(wr_routes *t, const uint8_t *enc, size_t len,
                         void *ud) {
  tnode *n = ud;
  (void)t;
  if (n->nrepub < TN_MAX_REPUB) {
    memcpy(n->repub[n->nrepub], enc, len);
    n->repub_len[n->nrepub++] = len;
  }
}

static const wr_routes_callbacks tn_cb = {
    .lost = tn_lost, .changed = tn_changed, .republish = tn_republish};

static inline void tn_config(wr_routes_config *cfg, const char *id, uint64_t epoch,
                      wr_pcg32 *rng) {
  wr_routes_config_default(cfg);
  snprintf(cfg->self, sizeof cfg->self, "%s", id);
  cfg->epoch = epoch;
  cfg->released_grace_ms = 10000;
  cfg->dead_grace_ms = 10000;
  cfg->owner_tombstone_ms = 3600000;
  cfg->rand = wr_pcg32_fill;
  cfg->rand_user_data = rng;
}

static inline int tn_init_cfg(tnode *n, const wr_routes_config *cfg,
                       const wr_mem *mem, wr_tstamp now) {
  memset(n, 0, sizeof *n);
  snprintf(n->id, sizeof n->id, "%s", cfg->self);
  return wr_routes_new(&n->t, cfg, &tn_cb, mem, n, now);
}

static inline int tn_init(tnode *n, const char *id, uint64_t epoch, wr_tstamp now) {
  wr_routes_config cfg;
  wr_pcg32 g;
  wr_pcg32_seed(&g, 42, 7);
  tn_config(&cfg, id, epoch, &g);
  return tn_init_cfg(n, &cfg, NULL, now);
}

static inline void tn_session(uint8_t s[WR_ROUTE_SESSION_LEN], unsigned v) {
  memset(s, 0, WR_ROUTE_SESSION_LEN);
  s[0] = (uint8_t)v;
  s[1] = (uint8_t)(v >> 8);
  s[15] = 0x5a;
}

/* Debugging: when set, sees every delta record tn_sync delivers. */
static void (*tn_trace_rec)(const wr_routes *to, const uint8_t *rec,
                            size_t len) = NULL;

typedef struct tn_sync_cost {
  size_t records, bytes;
} tn_sync_cost;

/*
 * One anti-entropy exchange between a and b through the session API:
 * both digests, then both deltas (the order swim's sync stream gives:
 * the initiator's delta arrives after the responder's digest).  Returns
 * 0 or the first error.
 */
static inline int tn_sync(wr_routes *a, wr_routes *b, wr_tstamp now,
                   tn_sync_cost *cost) {
  wr_routes_sync *sa = NULL, *sb = NULL;
  uint8_t buf[WR_ROUTE_ENCODED_MAX];
  wr_ssize n;
  int rv = wr_routes_sync_new(a, &sa, now);
  if (rv == 0) rv = wr_routes_sync_new(b, &sb, now);
  while (rv == 0 && (n = wr_routes_sync_digest_next(sa, buf, sizeof buf)) != 0)
    rv = n < 0 ? (int)n : wr_routes_sync_digest_in(sb, buf, (size_t)n);
  while (rv == 0 && (n = wr_routes_sync_digest_next(sb, buf, sizeof buf)) != 0)
    rv = n < 0 ? (int)n : wr_routes_sync_digest_in(sa, buf, (size_t)n);
  while (rv == 0 && (n = wr_routes_sync_delta_next(sb, buf, sizeof buf)) != 0) {
    if (n > 0 && cost) {
      cost->records++;
      cost->bytes += (size_t)n;
    }
    if (n > 0 && tn_trace_rec) tn_trace_rec(a, buf, (size_t)n);
    rv = n < 0 ? (int)n : wr_routes_sync_delta_in(sa, buf, (size_t)n, now);
  }
  while (rv == 0 && (n = wr_routes_sync_delta_next(sa, buf, sizeof buf)) != 0) {
    if (n > 0 && cost) {
      cost->records++;
      cost->bytes += (size_t)n;
    }
    if (n > 0 && tn_trace_rec) tn_trace_rec(b, buf, (size_t)n);
    rv = n < 0 ? (int)n : wr_routes_sync_delta_in(sb, buf, (size_t)n, now);
  }
  wr_routes_sync_del(sa);
  wr_routes_sync_del(sb);
  return rv;
}

/* The resolved table as one sorted text, for comparing nodes. */
typedef struct tn_dump {
  char **rows;
  size_t n, cap;
} tn_dump;

static inline void tn_dump_row(const wr_route_entry *w, size_t nserving, void *ud) {
  tn_dump *d = ud;
  char row[512];
  if (d->n == d->cap) {
    d->cap = d->cap ? d->cap * 2 : 64;
    d->rows = realloc(d->rows, d->cap * sizeof *d->rows);
  }
  snprintf(row, sizeof row, "%s %s %s v%llu c%llu s%02x%02x n%zu", w->name,
           w->owner, w->account, (unsigned long long)w->version,
           (unsigned long long)w->claimed_at, w->session[0], w->session[1],
           nserving);
  d->rows[d->n++] = strdup(row);
}

static inline int tn_strcmp(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

/* A malloc'd string of the sorted rows. */
static inline char *tn_dump_table(const wr_routes *t) {
  tn_dump d = {0};
  size_t i, len = 1;
  char *s;
  wr_routes_foreach(t, tn_dump_row, &d);
  if (d.n) qsort(d.rows, d.n, sizeof *d.rows, tn_strcmp);
  for (i = 0; i < d.n; i++) len += strlen(d.rows[i]) + 1;
  s = malloc(len);
  s[0] = '\0';
  len = 0;
  for (i = 0; i < d.n; i++) {
    size_t l = strlen(d.rows[i]);
    memcpy(s + len, d.rows[i], l);
    s[len + l] = '\n';
    len += l + 1;
    s[len] = '\0';
    free(d.rows[i]);
  }
  free(d.rows);
  return s;
}

#endif
