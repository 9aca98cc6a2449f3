/*
 * warren-sim's adapter side: it drives every wr_swim core exactly as the
 * libuv adapter (src/swim/swim_uv.c) does, with the simulated network in
 * place of sockets and virtual time in place of uv_now:
 *
 *   after every core call (a datagram, the timer, a join, a broadcast, a
 *   sync session's progress): drain wr_swim_send into the network, start
 *   each sync wr_swim_sync_due reports, arm the one timer at
 *   wr_swim_deadline.
 *
 * Timers: each node has at most one live TIMER event, identified by a
 * token.  A deadline earlier than the live event's time pushes a new
 * event with a new token (the old one is ignored when it pops); a later
 * deadline pushes nothing, because ticking early is harmless and the tick
 * re-arms.  So the heap holds O(nodes + packets in flight) events.
 *
 * Anti-entropy streams stand in for the adapter's TCP connections: the
 * initiator's session starts at once, an empty piece "connects" the
 * responder, bytes travel as ordered pieces (net.h), an empty piece after
 * data is the FIN, and a timeout (10 s, as swim_uv.c) or a broken piece
 * (dead peer, partition) tears the connection down.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sim_int.h"
#include "warren/err.h"
#include "warren/swim_codec.h"

_Static_assert(WR_SWIM_DATAGRAM_MAX <= SIM_PKT_CAP,
               "a sealed datagram must fit one pooled buffer");

#define STREAM_TIMEOUT_MS 10000
#define SIM_PORT 7946

/* Wire bytes (sim->wire_*).  The simulated cores run the identity seal
 * (no keyring: sealing 10^8 datagrams would dominate the run), so what a
 * real node sends is counted here: every datagram carries the 45-byte
 * seal (WR_SWIM_SEAL_OVERHEAD) and 28 bytes of IPv4 and UDP headers; a
 * sync stream carries a seal per frame and goes over TCP, where every
 * segment of at most 1,448 bytes (MSS 1,460 less the timestamps option)
 * takes 52 bytes of IPv4 and TCP headers, the receiver sends a pure ACK
 * per two segments (delayed ACK), and the connection costs SYN and
 * SYN-ACK (60 bytes with options), the handshake's ACK and a FIN and an
 * ACK each way. */
#define WIRE_UDP_IP 28
#define WIRE_TCP_IP 52
#define WIRE_TCP_SYN 60
#define WIRE_TCP_MSS 1448

/* ---- addresses and ids ---- */

/* Node i is 10.0.0.0 + i + 1 (so no address ends in .0). */
void sim_node_addr(uint32_t idx, wr_addr *a) {
  uint32_t v = idx + 1;
  memset(a, 0, sizeof *a);
  a->family = 4;
  a->ip[0] = 10;
  a->ip[1] = (uint8_t)(v >> 16);
  a->ip[2] = (uint8_t)(v >> 8);
  a->ip[3] = (uint8_t)v;
  a->port = SIM_PORT;
}

uint32_t sim_addr_index(const wr_addr *a) {
  if (a->family != 4 || a->ip[0] != 10 || a->port != SIM_PORT) return SIM_NONE;
  uint32_t v = (uint32_t)a->ip[1] << 16 | (uint32_t)a->ip[2] << 8 | a->ip[3];
  return v ? v - 1 : SIM_NONE;
}

/* "n<digits>" -> index, SIM_NONE otherwise. */
uint32_t sim_id_index(const sim *s, const char *id) {
  if (id[0] != 'n' || !id[1]) return SIM_NONE;
  uint32_t v = 0;
  for (const char *p = id + 1; *p; p++) {
    if (*p < '0' || *p > '9' || v > 100000000) return SIM_NONE;
    v = v * 10 + (uint32_t)(*p - '0');
  }
  return v < s->n ? v : SIM_NONE;
}

/* ---- callbacks: measurements only, never a call back into a core ---- */

static void on_member_changed(wr_swim *sw, const wr_swim_member_info *m,
                              void *user_data) {
  sim_node *nd = user_data;
  sim *s = nd->s;
  (void)sw;
  if (nd->killed) return;
  if (s->rt) sim_routes_member(nd, m);
  uint32_t subj = sim_id_index(s, m->id);
  if (subj == SIM_NONE) return;
  int32_t k = s->kill_slot[subj];
  int truly_dead = k >= 0 && s->kill_at != 0;
  if (!truly_dead) {
    /* A live member (never killed, or not yet): the refutation race. */
    if (m->state == WR_SWIM_SUSPECT)
      sim_lag_suspect(s->lag, nd->idx, subj, sim_net_now(s->net));
    else if (m->state == WR_SWIM_ALIVE)
      sim_lag_alive(s->lag, nd->idx, subj, sim_net_now(s->net));
    else
      sim_lag_gone(s->lag, nd->idx, subj);
  }
  if (m->state == WR_SWIM_DEAD) {
    if (truly_dead) {
      uint8_t *seen = &s->kill_seen[(size_t)k * s->n + nd->idx];
      if (*seen) return;
      *seen = 1;
      uint64_t now = sim_net_now(s->net);
      if (!s->kill_first[k]) s->kill_first[k] = now;
      if (++s->kill_count[k] == s->nlive) s->kill_all[k] = now;
      if (s->region) {
        size_t kr = (size_t)k * s->nregions + s->region[nd->idx];
        if (++s->kill_count_region[kr] == s->nlive_region[s->region[nd->idx]])
          s->kill_all_region[kr] = now;
      }
      return;
    }
    s->r->false_dead_events++;
    /* Bit 1: someone declared it; bit 2: a node that never stalls did
     * (Lifeguard's target: a healthy node wrongly killing a member). */
    s->fp_member[subj] |= (uint8_t)(1 | (nd->pausy ? 0 : 2));
    if (s->o->verbose)
      fprintf(stderr, "warren-sim: t=%llu %s declared %s dead\n",
              (unsigned long long)sim_net_now(s->net), s->ids[nd->idx], m->id);
  } else if (m->state == WR_SWIM_SUSPECT && !truly_dead) {
    s->r->suspect_events++;
  } else if (m->state == WR_SWIM_SUSPECT && !s->kill_susp[k]) {
    s->kill_susp[k] = sim_net_now(s->net);
  }
}

/* USER updates carry route entries only (routes.c): 1 only for news, so
 * the core gossips a repeat no further (swim.h). */
static int on_user_update(wr_swim *sw, const wr_swim_update *u,
                          void *user_data) {
  sim_node *nd = user_data;
  (void)sw;
  if (!nd->s->rt || u->kind != WR_SWIM_UPD_USER) return 0;
  return sim_routes_user_update(nd, u);
}

static const wr_swim_callbacks callbacks = {
    .member_changed = on_member_changed,
    .user_update = on_user_update,
};

/* ---- nodes ---- */

int sim_nodes_init(sim *s) {
  uint32_t n = s->n;
  s->nodes = calloc(n, sizeof *s->nodes);
  s->ids = calloc(n, sizeof *s->ids);
  s->addrs = calloc(n, sizeof *s->addrs);
  if (!s->nodes || !s->ids || !s->addrs) return WR_ERR_NOMEM;
  for (uint32_t i = 0; i < n; i++) {
    snprintf(s->ids[i], sizeof s->ids[i], "n%u", i);
    sim_node_addr(i, &s->addrs[i]);
  }
  uint64_t now = sim_net_now(s->net);
  for (uint32_t i = 0; i < n; i++) {
    sim_node *nd = &s->nodes[i];
    nd->s = s;
    nd->idx = i;
    nd->timer_at = WR_TSTAMP_NONE;
    /* Stream 0 is the network's, so node i draws from stream i + 1. */
    wr_pcg32_seed(&nd->rng, s->o->seed, (uint64_t)i + 1);
    wr_swim_config cfg = s->cfg;
    memcpy(cfg.id, s->ids[i], sizeof s->ids[i]);
    if (s->region)
      snprintf(cfg.region, sizeof cfg.region, "%s",
               s->region_names[s->region[i]]);
    cfg.gossip = s->addrs[i];
    cfg.data = s->addrs[i];
    cfg.rand = wr_pcg32_fill;
    cfg.rand_user_data = &nd->rng;
    wr_swim_callbacks cb = callbacks;
    if (s->o->routes) {
      cb.app_sync = wr_routes_swim_sync();
      cb.app_sync_user_data = &nd->sync_host; /* .rt set with the table */
    }
    int rv = wr_swim_new(&nd->sw, &cfg, &cb, NULL, NULL, nd, now);
    if (rv != 0) return rv;
  }
  if (s->o->routes) {
    int rv = sim_routes_new(s);
    if (rv != 0) return rv;
  }
  if (!s->o->join_bootstrap) {
    /* A converged fleet: everyone knows everyone alive at incarnation 0.
     * Node 0's table is built member by member; every other node copies
     * it (wr_swim_copy_members swaps node 0 in and itself out), which at
     * 10,000 nodes replaces 10^8 hash inserts with 10^4 memcpys. */
    for (uint32_t j = 1; j < n; j++) {
      int rv = wr_swim_add_member_region(
          s->nodes[0].sw, s->ids[j], &s->addrs[j], &s->addrs[j],
          s->region ? s->region_names[s->region[j]] : "", 0, now);
      if (rv != 0) return rv;
    }
    for (uint32_t i = 1; i < n; i++) {
      int rv = wr_swim_copy_members(s->nodes[i].sw, s->nodes[0].sw, now);
      if (rv != 0) return rv;
    }
  }
  for (uint32_t i = 0; i < n; i++) sim_after_core(s, &s->nodes[i]);
  return 0;
}

static void stream_close(sim *s, sim_stream *st, int ok);

void sim_nodes_free(sim *s) {
  for (uint32_t i = 0; i < s->nstreams; i++)
    if (s->streams[i].used) stream_close(s, &s->streams[i], 0);
  sim_routes_free(s);
  if (s->nodes)
    for (uint32_t i = 0; i < s->n; i++) wr_swim_del(s->nodes[i].sw);
  free(s->nodes);
  free(s->ids);
  free(s->addrs);
  free(s->streams);
  free(s->free_streams);
}

/* ---- the adapter loop ---- */

static void flush(sim *s, sim_node *nd) {
  uint64_t now = sim_net_now(s->net);
  wr_addr to;
  /* A core that never stops producing would hang the run: 10,000
   * datagrams from one call is far beyond any legitimate burst. */
  for (int i = 0; i < 10000; i++) {
    wr_ssize len =
        wr_swim_send(nd->sw, &to, s->sendbuf, sizeof s->sendbuf, now);
    if (len == 0) return;
    if (len < 0) {
      s->send_errors++;
      return;
    }
    uint32_t dst = sim_addr_index(&to);
    if (dst >= s->n) {
      s->send_errors++;
      continue;
    }
    s->wire_udp += (uint64_t)len + WR_SWIM_SEAL_OVERHEAD + WIRE_UDP_IP;
    if (s->region && s->region[dst] != s->region[nd->idx])
      s->wire_cross += (uint64_t)len + WR_SWIM_SEAL_OVERHEAD + WIRE_UDP_IP;
    /* Plaintext in the simulator: byte 1 is the packet type (codec). */
    int32_t k = s->kill_slot[dst];
    if (k >= 0 && s->kill_at && !s->kill_all[k] && len > 1 &&
        s->sendbuf[1] == WR_SWIM_PING) {
      s->victim_pings++;
      /* The first PING after a death is a direct probe: relays ping a
       * target only after someone's probe of it failed. */
      if (!s->kill_ping[k]) s->kill_ping[k] = sim_net_now(s->net);
    }
    s->wire_packets++;
    if (sim_net_send(s->net, nd->idx, dst, s->sendbuf, (size_t)len) < 0)
      s->send_errors++;
  }
  s->send_errors++;
}

static void arm(sim *s, sim_node *nd, int after_tick) {
  wr_tstamp dl = wr_swim_deadline(nd->sw), rdl = sim_routes_deadline(nd);
  if (rdl < dl) dl = rdl;
  if (dl == WR_TSTAMP_NONE) return;
  uint64_t now = sim_net_now(s->net);
  if (after_tick && dl <= now) {
    /* The tick left its own deadline in the past: count it, and move on
     * by 1 ms so virtual time cannot stall. */
    s->stuck++;
    if (s->o->verbose > 1)
      fprintf(stderr,
              "warren-sim: t=%llu %s: deadline %llu still due after "
              "its tick\n",
              (unsigned long long)now, s->ids[nd->idx], (unsigned long long)dl);
    dl = now + 1;
  }
  if (dl < now) dl = now;
  if (dl < nd->timer_at) {
    nd->timer_tok++;
    nd->timer_at = dl;
    sim_net_push(s->net, dl, SIM_EV_TIMER, nd->idx, nd->timer_tok);
  }
}

static void stream_open(sim *s, sim_node *nd, const wr_addr *peer);

static void after_core2(sim *s, sim_node *nd, int after_tick) {
  if (nd->killed) return;
  sim_routes_settle(s, nd);
  flush(s, nd);
  wr_addr peer;
  uint64_t now = sim_net_now(s->net);
  for (int i = 0; i < 16 && wr_swim_sync_due(nd->sw, &peer, now); i++)
    stream_open(s, nd, &peer);
  arm(s, nd, after_tick);
}

void sim_after_core(sim *s, sim_node *nd) { after_core2(s, nd, 0); }

/* ---- anti-entropy streams ---- */

/* A handle names the receiving side, the slot and its generation, so a
 * piece still in flight for a closed (and maybe reused) slot is ignored. */
static uint32_t handle(uint32_t slot, uint16_t gen, int side) {
  return (uint32_t)side << 31 | (uint32_t)(gen & 0x7fff) << 16 | slot;
}

static sim_stream *stream_of(sim *s, uint32_t h, int *side) {
  uint32_t slot = h & 0xffff;
  if (slot >= s->nstreams) return NULL;
  sim_stream *st = &s->streams[slot];
  if (!st->used || (st->gen & 0x7fff) != ((h >> 16) & 0x7fff)) return NULL;
  *side = (int)(h >> 31);
  return st;
}

static void stream_close(sim *s, sim_stream *st, int ok) {
  for (int i = 0; i < 2; i++)
    if (st->sess[i]) wr_swim_sync_del(st->sess[i]);
  memset(st->sess, 0, sizeof st->sess);
  st->used = 0;
  st->gen++;
  s->free_streams[s->nfree_streams++] = (uint32_t)(st - s->streams);
  if (ok)
    s->syncs_ok++;
  else
    s->syncs_failed++;
}

/* Counts the frames that start in |side|'s next |len| output bytes: a
 * real node seals each one. */
static uint64_t frames_started(sim_stream *st, int side, const uint8_t *d,
                               size_t len) {
  uint64_t frames = 0;
  while (len) {
    if (st->frame_left[side]) {
      size_t k = len < st->frame_left[side] ? len : st->frame_left[side];
      st->frame_left[side] -= (uint32_t)k;
      d += k;
      len -= k;
      continue;
    }
    st->hdr[side][st->hdr_n[side]++] = *d++;
    len--;
    if (st->hdr_n[side] == 4) {
      const uint8_t *h = st->hdr[side];
      st->frame_left[side] = (uint32_t)h[0] << 24 | (uint32_t)h[1] << 16 |
                             (uint32_t)h[2] << 8 | h[3];
      st->hdr_n[side] = 0;
      frames++;
    }
  }
  return frames;
}

/* |n| payload bytes written by one side: seals, segments and the other
 * side's ACKs. */
static void wire_stream(sim *s, sim_stream *st, int side, const uint8_t *d,
                        size_t n) {
  uint64_t segs = (n + WIRE_TCP_MSS - 1) / WIRE_TCP_MSS;
  uint64_t b = n + frames_started(st, side, d, n) * WR_SWIM_SEAL_OVERHEAD +
               segs * WIRE_TCP_IP + (segs + 1) / 2 * WIRE_TCP_IP;
  s->wire_tcp += b;
  if (s->region && s->region[st->node[0]] != s->region[st->node[1]])
    s->wire_cross += b;
  s->wire_packets += segs + (segs + 1) / 2;
}

/* Writes what |side|'s session has; sends a FIN once it is done.  Returns
 * 0, or -1 when the stream was closed. */
static int stream_pump(sim *s, sim_stream *st, int side) {
  uint32_t slot = (uint32_t)(st - s->streams);
  uint32_t peer_h = handle(slot, st->gen, !side);
  for (;;) {
    const uint8_t *data = NULL;
    wr_ssize n = wr_swim_sync_send(st->sess[side], &data);
    if (n < 0) {
      stream_close(s, st, 0);
      return -1;
    }
    if (n == 0) break;
    wire_stream(s, st, side, data, (size_t)n);
    if (sim_net_stream_at(s->net, st->node[side], st->node[!side], peer_h,
                          data, (size_t)n, &st->clock[side]) != 0) {
      stream_close(s, st, 0);
      return -1;
    }
    wr_swim_sync_consumed(st->sess[side], (size_t)n);
  }
  if (!st->done[side] && wr_swim_sync_done(st->sess[side])) {
    st->done[side] = 1;
    if (st->done[!side]) {
      stream_close(s, st, 1);
      return -1;
    }
    sim_net_stream_at(s->net, st->node[side], st->node[!side], peer_h, NULL,
                      0, &st->clock[side]);
  }
  return 0;
}

static void stream_open(sim *s, sim_node *nd, const wr_addr *peer) {
  uint32_t dst = sim_addr_index(peer);
  if (dst >= s->n || dst == nd->idx) {
    s->syncs_failed++;
    return;
  }
  if (s->nfree_streams == 0) {
    if (s->nstreams == 65536) {
      s->syncs_failed++;
      return;
    }
    if (s->nstreams == s->capstreams) {
      uint32_t cap = s->capstreams ? s->capstreams * 2 : 64;
      sim_stream *v = realloc(s->streams, cap * sizeof *v);
      uint32_t *f = realloc(s->free_streams, cap * sizeof *f);
      if (v) s->streams = v;
      if (f) s->free_streams = f;
      if (!v || !f) {
        s->syncs_failed++;
        return;
      }
      s->capstreams = cap;
    }
    memset(&s->streams[s->nstreams], 0, sizeof *s->streams);
    s->free_streams[s->nfree_streams++] = s->nstreams++;
  }
  uint32_t slot = s->free_streams[--s->nfree_streams];
  sim_stream *st = &s->streams[slot];
  uint16_t gen = st->gen;
  memset(st, 0, sizeof *st);
  st->gen = gen;
  st->used = 1;
  st->node[0] = nd->idx;
  st->node[1] = dst;
  uint64_t now = sim_net_now(s->net);
  if (wr_swim_sync_new(nd->sw, &st->sess[0], 1, now) != 0) {
    stream_close(s, st, 0);
    return;
  }
  /* Connect (the empty piece reaches the responder after the handshake),
   * then the initiator's first bytes right behind it.  The handshake and
   * the two FINs with their ACKs are counted here, once per connection. */
  s->streams_opened++;
  s->wire_tcp += 2 * WIRE_TCP_SYN + 5 * WIRE_TCP_IP;
  if (s->region && s->region[nd->idx] != s->region[dst])
    s->wire_cross += 2 * WIRE_TCP_SYN + 5 * WIRE_TCP_IP;
  s->wire_packets += 7;
  sim_net_stream_connect(s->net, nd->idx, dst, handle(slot, st->gen, 1),
                         &st->clock[0]);
  sim_net_push(s->net, now + STREAM_TIMEOUT_MS, EV_STREAM_TIMEOUT, SIM_NONE,
               handle(slot, st->gen, 0));
  stream_pump(s, st, 0);
}

static void stream_piece(sim *s, sim_ev *ev) {
  int side;
  sim_stream *st = stream_of(s, ev->arg, &side);
  if (!st || st->node[side] != ev->node) return;
  if (ev->flags & SIM_EVF_BROKEN) {
    stream_close(s, st, 0);
    return;
  }
  sim_node *nd = &s->nodes[ev->node];
  uint64_t now = sim_net_now(s->net);
  if (!st->sess[side]) {
    /* The connect: only the responder starts without a session. */
    if (side != 1 || wr_swim_sync_new(nd->sw, &st->sess[1], 0, now) != 0) {
      stream_close(s, st, 0);
      return;
    }
    stream_pump(s, st, 1);
    return;
  }
  if (ev->len == 0) {
    /* FIN: fine when this side has finished too (EOF before that is a
     * failed exchange, as in swim_uv.c). */
    stream_close(s, st, st->done[side]);
    return;
  }
  if (st->done[side]) return;
  int rv = wr_swim_sync_recv(st->sess[side], sim_net_payload(s->net, ev),
                             ev->len, now);
  if (rv != 0) {
    stream_close(s, st, 0);
  } else {
    stream_pump(s, st, side);
  }
  /* Merged entries may have queued gossip or changed the deadline. */
  sim_after_core(s, nd);
}

void sim_stream_timeout(sim *s, uint32_t h) {
  int side;
  sim_stream *st = stream_of(s, h, &side);
  if (st) stream_close(s, st, 0);
}

/* ---- events from the network ---- */

void sim_handle_net(sim *s, sim_ev *ev) {
  sim_node *nd = ev->node < s->n ? &s->nodes[ev->node] : NULL;
  switch (ev->kind) {
  case SIM_EV_DELIVER:
    if (nd && !nd->killed) {
      wr_swim_recv(nd->sw, &s->addrs[ev->from], sim_net_payload(s->net, ev),
                   ev->len, sim_net_now(s->net));
      sim_after_core(s, nd);
    }
    break;
  case SIM_EV_TIMER:
    if (nd && !nd->killed && ev->arg == nd->timer_tok) {
      nd->timer_at = WR_TSTAMP_NONE;
      wr_swim_tick(nd->sw, sim_net_now(s->net));
      sim_routes_tick(s, nd);
      after_core2(s, nd, 1);
    }
    break;
  case SIM_EV_STREAM:
    if (nd) stream_piece(s, ev);
    break;
  case SIM_EV_UNREACH:
    if (nd && !nd->killed) {
      wr_swim_unreachable(nd->sw, &s->addrs[ev->from], sim_net_now(s->net));
      sim_after_core(s, nd);
    }
    break;
  default:
    break;
  }
  sim_net_release(s->net, ev);
}
