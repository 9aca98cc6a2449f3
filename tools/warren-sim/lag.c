/*
 * How long a live member stays suspected at each node that heard the
 * suspicion, until its refutation reaches that node: the race the
 * suspicion timer's minimum must cover (src/swim/config.c,
 * wr_swim_suspicion_bounds).  A suspicion of a live member with its k
 * confirmations is declared dead at a holder whose lag exceeds the
 * minimum, so the tail of this distribution under loss, against the
 * minimum, says how much margin the minimum has, from hundreds of
 * thousands of refuted suspicions instead of the handful of false deaths
 * a run can show.
 *
 * Open suspicions are kept in an open-addressing table keyed by
 * (observer, member), growing by doubling at half full, with
 * backward-shift deletion so lookups never cross tombstones; the lags go
 * into a histogram of 10 ms buckets up to SIM_LAG_BUCKETS (2 minutes,
 * beyond the LAN maximum at any size the simulator runs), so memory is
 * bounded by the suspicions open at once, not by the run's length.
 */
#include <stdlib.h>
#include <string.h>

#include "sim_int.h"

#define SIM_LAG_BUCKET_MS 10
#define SIM_LAG_BUCKETS 12000

const uint64_t sim_lag_thresholds_ms[SIM_LAG_THRESHOLDS] = {1000, 1500, 2000,
                                                           2500, 3000, 4000};

struct sim_lag {
  uint64_t *keys; /* 0 = empty; else (observer + 1) << 32 | member */
  uint64_t *at;   /* when the observer began to suspect it */
  size_t cap, n;
  uint64_t min_ms;
  uint64_t count, max, over, lost;
  uint64_t hist[SIM_LAG_BUCKETS];
};

sim_lag *sim_lag_new(uint64_t min_ms) {
  sim_lag *l = calloc(1, sizeof *l);
  if (!l) return NULL;
  l->min_ms = min_ms;
  l->cap = 1024;
  l->keys = calloc(l->cap, sizeof *l->keys);
  l->at = calloc(l->cap, sizeof *l->at);
  if (!l->keys || !l->at) {
    sim_lag_free(l);
    return NULL;
  }
  return l;
}

void sim_lag_free(sim_lag *l) {
  if (!l) return;
  free(l->keys);
  free(l->at);
  free(l);
}

static uint64_t key_of(uint32_t obs, uint32_t subj) {
  return ((uint64_t)obs + 1) << 32 | subj;
}

static size_t slot_of(const sim_lag *l, uint64_t k) {
  uint64_t h = k * 0x9e3779b97f4a7c15ull;
  return (size_t)(h >> 20) & (l->cap - 1);
}

static size_t find(const sim_lag *l, uint64_t k) {
  size_t i = slot_of(l, k);
  while (l->keys[i] && l->keys[i] != k) i = (i + 1) & (l->cap - 1);
  return i;
}

static int grow(sim_lag *l) {
  size_t ocap = l->cap;
  uint64_t *ok = l->keys, *oa = l->at;
  uint64_t *nk = calloc(ocap * 2, sizeof *nk);
  uint64_t *na = calloc(ocap * 2, sizeof *na);
  if (!nk || !na) {
    free(nk);
    free(na);
    return -1;
  }
  l->keys = nk;
  l->at = na;
  l->cap = ocap * 2;
  for (size_t i = 0; i < ocap; i++)
    if (ok[i]) {
      size_t j = find(l, ok[i]);
      l->keys[j] = ok[i];
      l->at[j] = oa[i];
    }
  free(ok);
  free(oa);
  return 0;
}

/* Backward-shift deletion (Knuth 6.4, algorithm R): entries after the
 * hole that would no longer be found move up into it. */
static void erase(sim_lag *l, size_t i) {
  size_t mask = l->cap - 1, j = i;
  l->keys[i] = 0;
  l->n--;
  for (;;) {
    j = (j + 1) & mask;
    if (!l->keys[j]) return;
    size_t home = slot_of(l, l->keys[j]);
    /* Move j into the hole at i unless its home lies cyclically in
     * (i, j]. */
    int stays = i <= j ? (home > i && home <= j) : (home > i || home <= j);
    if (stays) continue;
    l->keys[i] = l->keys[j];
    l->at[i] = l->at[j];
    l->keys[j] = 0;
    i = j;
  }
}

void sim_lag_suspect(sim_lag *l, uint32_t obs, uint32_t subj, uint64_t now) {
  if (!l) return;
  if (2 * (l->n + 1) > l->cap && grow(l) != 0) {
    l->lost++; /* not measured; reported, never silently dropped */
    return;
  }
  uint64_t k = key_of(obs, subj);
  size_t i = find(l, k);
  if (!l->keys[i]) {
    l->keys[i] = k;
    l->n++;
  }
  /* A suspicion at a higher incarnation restarts the core's timer
   * (swim.c, apply_suspect), so the race restarts too. */
  l->at[i] = now;
}

void sim_lag_alive(sim_lag *l, uint32_t obs, uint32_t subj, uint64_t now) {
  if (!l || !l->n) return;
  size_t i = find(l, key_of(obs, subj));
  if (!l->keys[i]) return;
  uint64_t d = now - l->at[i];
  size_t b = (size_t)(d / SIM_LAG_BUCKET_MS);
  l->hist[b < SIM_LAG_BUCKETS ? b : SIM_LAG_BUCKETS - 1]++;
  l->count++;
  if (d > l->max) l->max = d;
  if (d > l->min_ms) l->over++;
  erase(l, i);
}

void sim_lag_gone(sim_lag *l, uint32_t obs, uint32_t subj) {
  if (!l || !l->n) return;
  size_t i = find(l, key_of(obs, subj));
  if (l->keys[i]) erase(l, i);
}

/* The upper edge of the bucket holding the q-quantile (0 < q <= 1). */
static int64_t quantile(const sim_lag *l, double q) {
  uint64_t want = (uint64_t)((double)l->count * q);
  if (want < 1) want = 1;
  uint64_t seen = 0;
  for (size_t b = 0; b < SIM_LAG_BUCKETS; b++) {
    seen += l->hist[b];
    if (seen >= want) return (int64_t)((b + 1) * SIM_LAG_BUCKET_MS);
  }
  return (int64_t)l->max;
}

void sim_lag_result(const sim_lag *l, sim_result *r) {
  r->lag_p50_ms = r->lag_p99_ms = r->lag_p999_ms = r->lag_max_ms = -1;
  r->lag_p9999_ms = -1;
  if (!l) return;
  r->lag_min_ms = l->min_ms;
  r->lag_count = l->count;
  r->lag_over_min = l->over;
  r->lag_lost = l->lost;
  if (!l->count) return;
  r->lag_p50_ms = quantile(l, 0.5);
  r->lag_p99_ms = quantile(l, 0.99);
  r->lag_p999_ms = quantile(l, 0.999);
  r->lag_max_ms = (int64_t)l->max;
  r->lag_p9999_ms = quantile(l, 0.9999);
  for (size_t t = 0; t < SIM_LAG_THRESHOLDS; t++) {
    size_t from = (size_t)(sim_lag_thresholds_ms[t] / SIM_LAG_BUCKET_MS);
    for (size_t b = from; b < SIM_LAG_BUCKETS; b++)
      r->lag_over[t] += l->hist[b];
  }
}
