/*
 * Node choice for the client's link slots (see pick.h for the rules).
 *
 * Per node, one small state:
 *
 *   free, ready        (slot -1, retry_at <= now)   -> choose: held
 *   free, backing off  (slot -1, retry_at >  now)   -> choose only when no
 *                                                      free node is ready
 *   held by a slot     (slot >= 0)                  -> BOUND: streak 0
 *                                                      DRAINED: kept out
 *                                                      FAILED/RELEASE: free
 *
 * Everything is a scan of at most WR_PICK_MAX entries: a choice happens
 * once per reconnect, never per request.
 */
#include "warren/pick.h"

#include <string.h>

#include "warren/err.h"

void wr_pick_init(wr_pick *p, wr_rand_fn rand, void *rand_ud) {
  memset(p, 0, sizeof *p);
  p->rand = rand;
  p->rand_ud = rand_ud;
}

static int find(const wr_pick *p, const char *addr) {
  for (size_t i = 0; i < p->n; i++)
    if (strcmp(p->node[i].addr, addr) == 0) return (int)i;
  return -1;
}

int wr_pick_set(wr_pick *p, const char *const *addrs, size_t n) {
  wr_pick_node next[WR_PICK_MAX];
  size_t m = 0;
  for (size_t i = 0; i < n; i++) {
    if (strlen(addrs[i]) >= WR_PICK_ADDR_MAX) return WR_ERR_INVAL;
    int dup = 0;
    for (size_t j = 0; j < m && !dup; j++)
      dup = strcmp(next[j].addr, addrs[i]) == 0;
    if (dup) continue;
    if (m == WR_PICK_MAX) return WR_ERR_INVAL;
    int old = find(p, addrs[i]);
    if (old >= 0) {
      next[m] = p->node[old];
      next[m].stale = 0;
    } else {
      memset(&next[m], 0, sizeof next[m]);
      strcpy(next[m].addr, addrs[i]); /* length checked above */
      next[m].slot = -1;
    }
    m++;
  }
  /* A held node that left the list stays until its slot lets go: the
   * slot's link is still up, and its address still names it. */
  for (size_t i = 0; i < p->n; i++) {
    if (p->node[i].slot < 0) continue;
    int kept = 0;
    for (size_t j = 0; j < m && !kept; j++)
      kept = strcmp(next[j].addr, p->node[i].addr) == 0;
    if (kept) continue;
    if (m == WR_PICK_MAX) return WR_ERR_INVAL;
    next[m] = p->node[i];
    next[m].stale = 1;
    m++;
  }
  memcpy(p->node, next, m * sizeof next[0]);
  p->n = m;
  if (p->cursor >= m) p->cursor = 0;
  return 0;
}

int wr_pick_choose(wr_pick *p, int slot, wr_tstamp now, char *addr,
                   wr_tstamp *pat) {
  int best = -1;
  /* Ready nodes in turn from the cursor: the first one wins. */
  for (size_t k = 0; k < p->n; k++) {
    size_t i = (p->cursor + k) % p->n;
    const wr_pick_node *nd = &p->node[i];
    if (nd->slot >= 0 || nd->stale) continue;
    if (nd->retry_at <= now) {
      best = (int)i;
      break;
    }
    /* Else remember the one back first (ties: the earlier in turn). */
    if (best < 0 || nd->retry_at < p->node[best].retry_at) best = (int)i;
  }
  if (best < 0) return -1;
  wr_pick_node *nd = &p->node[best];
  nd->slot = slot;
  p->cursor = ((size_t)best + 1) % p->n;
  *pat = nd->retry_at > now ? nd->retry_at : now;
  memcpy(addr, nd->addr, WR_PICK_ADDR_MAX);
  return 0;
}

uint64_t wr_pick_backoff(uint32_t k) {
  uint64_t d = WR_PICK_BACKOFF_MIN_MS;
  for (uint32_t i = 1; i < k && d < WR_PICK_BACKOFF_MAX_MS; i++) d *= 2;
  return d > WR_PICK_BACKOFF_MAX_MS ? WR_PICK_BACKOFF_MAX_MS : d;
}

static uint64_t uniform(wr_pick *p, uint64_t bound) {
  uint32_t r;
  p->rand((uint8_t *)&r, sizeof r, p->rand_ud);
  return bound ? r % bound : 0; /* bound <= 15001: bias below 2^-17 */
}

static void drop(wr_pick *p, int i) {
  memmove(&p->node[i], &p->node[i + 1],
          (p->n - (size_t)i - 1) * sizeof p->node[0]);
  p->n--;
  if (p->cursor >= p->n) p->cursor = 0;
}

void wr_pick_done(wr_pick *p, const char *addr, wr_pick_outcome out,
                  wr_tstamp now) {
  int i = find(p, addr);
  if (i < 0) return;
  wr_pick_node *nd = &p->node[i];
  switch (out) {
  case WR_PICK_BOUND:
    nd->fails = 0;
    nd->retry_at = 0;
    return;
  case WR_PICK_DRAINED:
    nd->retry_at = now + WR_PICK_DRAIN_MS;
    return;
  case WR_PICK_FAILED: {
    if (nd->fails < UINT32_MAX) nd->fails++;
    uint64_t d = wr_pick_backoff(nd->fails);
    uint64_t at = now + d / 2 + uniform(p, d / 2 + 1);
    /* A drain's longer wait is not cut short by a failure after it. */
    if (at > nd->retry_at) nd->retry_at = at;
    break;
  }
  case WR_PICK_RELEASE:
    break;
  }
  nd->slot = -1;
  if (nd->stale) drop(p, i);
}

size_t wr_pick_free(const wr_pick *p) {
  size_t k = 0;
  for (size_t i = 0; i < p->n; i++)
    if (p->node[i].slot < 0 && !p->node[i].stale) k++;
  return k;
}
