/*
 * Reconnecting to failed members, so that a partition longer than the
 * dead-member reap time heals (issue 4; serf's reconnect, in
 * hashicorp/serf serf/serf.go handleReconnect/reconnect).
 *
 * A partition that outlasts the suspicion timeout makes each side declare
 * the other DEAD; once the verdicts are reaped (dead_reap_ms) neither side
 * probes, gossips to or syncs with the other again, so without help the
 * fleet stays split for good.  serf keeps failed members for
 * reconnect_timeout (24 h) and, every reconnect_interval (30 s), joins one
 * of them at random; warren does the same with an anti-entropy sync:
 *
 *   candidates  members we hold DEAD (not LEFT: a member that said goodbye
 *               is not coming back by itself), and members reaped while
 *               DEAD, kept here ("lost") with their gossip address;
 *               both for at most reconnect_timeout_ms after the verdict;
 *   rate        each interval a node tries with probability
 *               failed / alive (alive counting itself), serf's rule, so
 *               the whole fleet makes about one attempt per failed member
 *               per interval whatever its size (a dead member costs one
 *               connection attempt every 30 s, not n of them), while a
 *               minority side (few alive, many failed) tries every time;
 *   attempt     the core reports the peer through wr_swim_sync_due like
 *               any sync; a dead peer just fails the connection.
 *
 * A sync that gets through heals both sides (swim.c, sync.c): each side's
 * digest tells the other what it believes, so a member that sees itself
 * called DEAD refutes at once; a DEAD learned from a sync is only a
 * suspicion (memberlist's mergeState rule), which makes the suspect hear of
 * it and refute; and a member that comes back ALIVE from DEAD or from this
 * list is gossiped on as news, so one bridging sync spreads to both sides.
 *
 * The list is an unordered array of at most SWIM_LOST_MAX entries
 * (~104 bytes each): one live member on the far side is all a heal needs,
 * so when it is full the entry that died longest ago gives way.
 */
#include <stdio.h>
#include <string.h>

#include "swim_int.h"
#include "warren/err.h"

void swim_lost_init(swim_lost *l, const wr_mem *mem) {
  memset(l, 0, sizeof *l);
  l->mem = mem;
}

void swim_lost_free(swim_lost *l) {
  wr_mem_free(l->mem, l->v);
  memset(l, 0, sizeof *l);
}

static ssize_t lost_find(const swim_lost *l, const char *id, uint32_t h) {
  for (size_t k = 0; k < l->n; k++)
    if (l->v[k].hash == h && strcmp(l->v[k].id, id) == 0) return (ssize_t)k;
  return -1;
}

int swim_lost_has(const swim_lost *l, const char *id) {
  return lost_find(l, id, swim_hash(id, SWIM_HASH_BASIS)) >= 0;
}

static void lost_remove(swim_lost *l, size_t k) {
  l->v[k] = l->v[--l->n];
}

void swim_lost_add(swim_lost *l, const swim_member *m) {
  const char *id = swim_member_id(m);
  uint32_t h = swim_hash(id, SWIM_HASH_BASIS);
  ssize_t k = lost_find(l, id, h);
  if (k < 0) {
    if (l->n == SWIM_LOST_MAX) {
      size_t old = 0;
      for (size_t j = 1; j < l->n; j++)
        if (l->v[j].dead_at < l->v[old].dead_at) old = j;
      lost_remove(l, old);
    }
    if (l->n == l->cap) {
      size_t cap = l->cap ? l->cap * 2 : 8;
      swim_lost_ent *v = wr_mem_realloc(l->mem, l->v, cap * sizeof *v);
      if (!v) return; /* one reconnect candidate fewer, nothing worse */
      l->v = v;
      l->cap = cap;
    }
    k = (ssize_t)l->n++;
  }
  swim_lost_ent *e = &l->v[k];
  snprintf(e->id, sizeof e->id, "%s", id);
  e->hash = h;
  e->gossip = m->gossip;
  e->dead_at = m->state_since;
}

static int candidate(const swim_member *m, wr_tstamp now, uint64_t timeout) {
  return m->state == WR_SWIM_DEAD && now - m->state_since < timeout;
}

int swim_reconnect_pick(swim_lost *l, const swim_members *t, wr_tstamp now,
                        uint64_t timeout_ms,
                        size_t (*below)(void *, size_t), void *ud,
                        wr_addr *peer) {
  /* Forget what timed out, and whoever is back in the table (it is a
   * candidate there if it is DEAD again). */
  for (size_t k = 0; k < l->n;) {
    if (now - l->v[k].dead_at >= timeout_ms ||
        swim_members_find(t, l->v[k].id) >= 0)
      lost_remove(l, k);
    else
      k++;
  }
  size_t dead = 0, alive = 1; /* ourselves */
  for (size_t i = 0; i < t->n; i++) {
    dead += (size_t)candidate(&t->v[i], now, timeout_ms);
    alive += t->v[i].state == WR_SWIM_ALIVE || t->v[i].state == WR_SWIM_SUSPECT;
  }
  size_t failed = dead + l->n;
  /* serf: try with probability failed / alive. */
  if (!failed || below(ud, alive) >= failed) return 0;
  size_t k = below(ud, failed);
  if (k >= dead) {
    *peer = l->v[k - dead].gossip;
    return 1;
  }
  for (size_t i = 0; i < t->n; i++)
    if (candidate(&t->v[i], now, timeout_ms) && k-- == 0) {
      *peer = t->v[i].gossip;
      return 1;
    }
  return 0; /* not reached: |dead| counted them */
}
