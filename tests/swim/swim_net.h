/*
 * A tiny deterministic network for the SWIM core's unit tests: N cores,
 * virtual time, per-packet delay, drops by rule.  (tools/warren-sim is the
 * full simulator; this one is small enough to read next to a test.)
 * Node i lives at 127.0.0.(i+1):7946 with id "n<i>".
 */
#ifndef WARREN_TEST_SWIM_NET_H
#define WARREN_TEST_SWIM_NET_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "warren/pcg.h"
#include "warren/swim.h"

#define NET_MAX 16
#define NET_QMAX 8192

typedef struct net_pkt {
  wr_tstamp at;
  int from, to;
  size_t len;
  uint8_t b[WR_SWIM_DATAGRAM_MAX];
} net_pkt;

/* A node's application USER state (net.user_state): key -> (version,
 * payload), newer version wins, fed by gossip (user_update). */
typedef struct net_uent {
  char key[WR_SWIM_ID_MAX + 1];
  uint64_t version;
  uint16_t len;
  uint8_t payload[WR_SWIM_USER_MAX];
} net_uent;

typedef struct net_ustore {
  net_uent *v;
  size_t n, cap;
  unsigned news, stale; /* user_update: accepted, refused as not newer */
} net_ustore;

typedef struct net {
  int n;
  wr_tstamp now;
  wr_swim *sw[NET_MAX];
  wr_pcg32 rng[NET_MAX];
  int down[NET_MAX];      /* killed: no delivery either way */
  int mute_out[NET_MAX];  /* its packets vanish (a slow/broken sender) */
  wr_swim_keyring *kr[NET_MAX];
  wr_swim_config cfg;     /* template */
  wr_swim_callbacks cb;
  net_pkt *q;             /* unsorted; delivery picks the earliest */
  size_t nq;
  uint64_t delivered;
  /* What each node saw: last state per member id index, deaths seen. */
  int state[NET_MAX][NET_MAX];
  int dead_events[NET_MAX][NET_MAX];
  int user_seen[NET_MAX];
  int auto_sync; /* run anti-entropy in memory whenever a core asks */
  int user_state; /* set before net_boot: keep USER state (newer wins) */
  net_ustore us[NET_MAX];
  /* A partition: while |partitioned|, nothing crosses between nodes of
   * different groups, datagrams nor sync streams. */
  int partitioned;
  int group[NET_MAX];
  unsigned syncs_cut; /* sync attempts across the partition (failed) */
} net;

static inline int net_self(const net *nt, const wr_swim *sw) {
  for (int i = 0; i < nt->n; i++)
    if (nt->sw[i] == sw) return i;
  return -1;
}

static inline net_uent *net_ufind(net_ustore *s, const char *key) {
  for (size_t k = 0; k < s->n; k++)
    if (strcmp(s->v[k].key, key) == 0) return &s->v[k];
  return NULL;
}

/* Stores (key, version, payload) at node i if newer; 1 when it was. */
static inline int net_uset(net *nt, int i, const char *key, uint64_t version,
                           const void *payload, size_t len) {
  net_ustore *s = &nt->us[i];
  net_uent *e = net_ufind(s, key);
  if (e && e->version >= version) return 0;
  if (!e) {
    if (s->n == s->cap) {
      s->cap = s->cap ? s->cap * 2 : 16;
      s->v = realloc(s->v, s->cap * sizeof *s->v);
      if (!s->v) abort();
    }
    e = &s->v[s->n++];
    snprintf(e->key, sizeof e->key, "%s", key);
  }
  e->version = version;
  e->len = (uint16_t)len;
  if (len) memcpy(e->payload, payload, len);
  return 1;
}

static inline int net_cut(const net *nt, int i, int j) {
  return nt->partitioned && nt->group[i] != nt->group[j];
}

static inline wr_addr net_addr(int i) {
  wr_addr a = {.family = 4, .ip = {127, 0, 0, (uint8_t)(i + 1)}, .port = 7946};
  return a;
}

static inline int net_index(const wr_addr *a) { return a->ip[3] - 1; }

static inline int net_id_index(const char *id) { return atoi(id + 1); }

static void net_member_changed(wr_swim *sw, const wr_swim_member_info *m,
                               void *ud) {
  net *nt = ud;
  int self = -1;
  for (int i = 0; i < nt->n; i++)
    if (nt->sw[i] == sw) self = i;
  if (self < 0) return; /* during wr_swim_new */
  int j = net_id_index(m->id);
  nt->state[self][j] = (int)m->state;
  if (m->state == WR_SWIM_DEAD) nt->dead_events[self][j]++;
}

static int net_user_update(wr_swim *sw, const wr_swim_update *u, void *ud) {
  net *nt = ud;
  if (nt->user_state) {
    int i = net_self(nt, sw);
    if (i < 0) return 0;
    if (net_uset(nt, i, u->key, u->version, u->payload, u->payload_len)) {
      nt->us[i].news++;
      return 1;
    }
    nt->us[i].stale++;
    return 0;
  }
  for (int i = 0; i < nt->n; i++)
    if (nt->sw[i] == sw) {
      if (nt->user_seen[i]) return 0;
      nt->user_seen[i] = 1;
      return 1;
    }
  (void)u;
  return 0;
}

static inline void net_start(net *nt, int i, int know_all) {
  wr_swim_config c = nt->cfg;
  snprintf(c.id, sizeof c.id, "n%d", i);
  c.gossip = net_addr(i);
  c.rand = wr_pcg32_fill;
  c.rand_user_data = &nt->rng[i];
  wr_pcg32_seed(&nt->rng[i], 42 + (uint64_t)i * 7919, (uint64_t)i);
  nt->sw[i] = NULL;
  wr_swim *sw;
  if (wr_swim_new(&sw, &c, &nt->cb, nt->kr[i], NULL, nt, nt->now) != 0) abort();
  nt->sw[i] = sw;
  nt->down[i] = 0;
  for (int j = 0; j < nt->n; j++) nt->state[i][j] = -1;
  if (know_all)
    for (int j = 0; j < nt->n; j++)
      if (j != i) {
        char id[16];
        snprintf(id, sizeof id, "n%d", j);
        wr_addr a = net_addr(j);
        wr_swim_add_member(sw, id, &a, NULL, 0, nt->now);
        nt->state[i][j] = WR_SWIM_ALIVE;
      }
}

static inline void net_init(net *nt, int n, const wr_swim_config *cfg) {
  memset(nt, 0, sizeof *nt);
  nt->n = n;
  nt->now = 1000;
  if (cfg) {
    nt->cfg = *cfg;
  } else {
    wr_swim_config_default(&nt->cfg);
    wr_swim_config_profile(&nt->cfg, "lan");
  }
  nt->cb.member_changed = net_member_changed;
  nt->cb.user_update = net_user_update;
  nt->q = calloc(NET_QMAX, sizeof *nt->q);
}

static inline void net_boot(net *nt) {
  for (int i = 0; i < nt->n; i++) net_start(nt, i, 1);
}

static inline void net_free(net *nt) {
  for (int i = 0; i < nt->n; i++) {
    wr_swim_del(nt->sw[i]);
    free(nt->us[i].v);
  }
  free(nt->q);
}

static inline void net_drain(net *nt, int i);

/* Runs one anti-entropy exchange between i (initiator) and j in memory,
 * optionally corrupting byte |flip| (SIZE_MAX: none) of i's stream.
 * Returns 0 when both sides completed. */
static inline int net_sync(net *nt, int i, int j, size_t flip) {
  wr_swim_sync *a, *b;
  if (wr_swim_sync_new(nt->sw[i], &a, 1, nt->now) != 0) abort();
  if (wr_swim_sync_new(nt->sw[j], &b, 0, nt->now) != 0) abort();
  size_t sent_a = 0;
  int rv = 0;
  for (int round = 0; round < 100 && rv == 0; round++) {
    const uint8_t *d;
    wr_ssize n = wr_swim_sync_send(a, &d);
    if (n > 0) {
      uint8_t *cp = malloc((size_t)n);
      memcpy(cp, d, (size_t)n);
      if (flip >= sent_a && flip < sent_a + (size_t)n) cp[flip - sent_a] ^= 1;
      sent_a += (size_t)n;
      /* Feed in two pieces: streams split anywhere. */
      size_t half = (size_t)n / 2;
      rv = wr_swim_sync_recv(b, cp, half, nt->now);
      if (rv == 0) rv = wr_swim_sync_recv(b, cp + half, (size_t)n - half, nt->now);
      wr_swim_sync_consumed(a, (size_t)n);
      free(cp);
    }
    wr_ssize m = wr_swim_sync_send(b, &d);
    if (m > 0 && rv == 0) {
      rv = wr_swim_sync_recv(a, d, (size_t)m, nt->now);
      wr_swim_sync_consumed(b, (size_t)m);
    }
    if (wr_swim_sync_done(a) && wr_swim_sync_done(b)) break;
    if (n <= 0 && m <= 0) break;
  }
  int ok = rv == 0 && wr_swim_sync_done(a) && wr_swim_sync_done(b);
  wr_swim_sync_del(a);
  wr_swim_sync_del(b);
  net_drain(nt, i);
  net_drain(nt, j);
  return ok ? 0 : -1;
}

static inline void net_sync_due(net *nt, int i) {
  wr_addr peer;
  if (!nt->auto_sync || !wr_swim_sync_due(nt->sw[i], &peer, nt->now)) return;
  int j = net_index(&peer);
  if (j < 0 || j >= nt->n || nt->down[j]) return;
  if (net_cut(nt, i, j)) {
    nt->syncs_cut++; /* the connection would time out */
    return;
  }
  net_sync(nt, i, j, SIZE_MAX);
}

/* Moves everything node i wants to send into the queue (1-3 ms delay). */
static inline void net_drain(net *nt, int i) {
  net_pkt tmp;
  wr_addr to;
  wr_ssize len;
  while ((len = wr_swim_send(nt->sw[i], &to, tmp.b, sizeof tmp.b, nt->now)) > 0) {
    int j = net_index(&to);
    if (nt->down[i] || nt->mute_out[i] || j < 0 || j >= nt->n ||
        net_cut(nt, i, j))
      continue;
    if (nt->nq == NET_QMAX) abort();
    net_pkt *p = &nt->q[nt->nq++];
    p->at = nt->now + 1 + (wr_tstamp)(nt->delivered % 3);
    p->from = i;
    p->to = j;
    p->len = (size_t)len;
    memcpy(p->b, tmp.b, (size_t)len);
  }
}

/* Runs until virtual time |until|. */
static inline void net_run(net *nt, wr_tstamp until) {
  for (;;) {
    wr_tstamp t = WR_TSTAMP_NONE;
    int who = -1;
    size_t pk = SIZE_MAX;
    for (size_t k = 0; k < nt->nq; k++)
      if (nt->q[k].at < t) t = nt->q[k].at, pk = k;
    for (int i = 0; i < nt->n; i++) {
      if (nt->down[i] || !nt->sw[i]) continue;
      wr_tstamp d = wr_swim_deadline(nt->sw[i]);
      if (d < t) t = d, who = i, pk = SIZE_MAX;
    }
    if (t > until) {
      nt->now = until;
      return;
    }
    if (t > nt->now) nt->now = t;
    if (pk != SIZE_MAX) {
      net_pkt p = nt->q[pk];
      nt->q[pk] = nt->q[--nt->nq];
      if (nt->down[p.to] || nt->down[p.from]) continue;
      wr_addr from = net_addr(p.from);
      nt->delivered++;
      wr_swim_recv(nt->sw[p.to], &from, p.b, p.len, nt->now);
      net_drain(nt, p.to);
      net_sync_due(nt, p.to);
    } else {
      wr_swim_tick(nt->sw[who], nt->now);
      net_drain(nt, who);
      net_sync_due(nt, who);
    }
  }
}

/* State node i holds for node j (-1: unknown). */
static inline int net_state(net *nt, int i, int j) {
  char id[16];
  wr_swim_member_info m;
  snprintf(id, sizeof id, "n%d", j);
  if (wr_swim_member_find(nt->sw[i], id, &m) != 0) return -1;
  return (int)m.state;
}

#endif
