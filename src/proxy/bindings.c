/*
 * Tunnel bindings (bindings.h): the node side of client links and the
 * local table name -> link.
 *
 * A client link (tlink) goes through three states:
 *
 *   HELLO   the link is sealed; the first control message must be a
 *           Hello with our protocol version (and the token when the node
 *           requires one).  Anything else: Error, and the link stays here,
 *           except an authentication failure (bad or unknown token, bad
 *           identity proof): Error, then the link ends (FAILED).
 *   READY   Hello accepted: a Bind may come.  bind_check (the routes
 *           hook) may refuse it; else the name enters the table.
 *   BOUND   the link serves one name: visitors' streams run on it.
 *   FAILED  the Hello failed authentication: the Error is flushed, then
 *           FIN (wr_link_end); whatever else the peer pipelined is
 *           ignored, so one link is worth exactly one guess.
 *
 * A Hello from a source address that failed FAIL_FREE times within the
 * current window is held (with the Bind behind it) before it is even
 * looked at: the address's answers are spaced by a delay that doubles
 * with each further failure up to FAIL_DELAY_MAX_MS, and parallel links
 * from the address queue for successive slots, so opening many links
 * buys no more guesses.  At most MAX_HELD links wait at once; past that,
 * a penalised address's Hello gets RATE_LIMITED and its link ends.
 *
 * A name's table entry (tunnel) is LIVE while its link is up, then GONE
 * for gone_grace_ms after the link dropped (visitors get 502 "its client
 * is reconnecting", and the same client re-binding within that time takes
 * the entry back), then forgotten, which is when the routes hook
 * `unbound` runs.  The grace helps only a client that comes back here:
 * when another node serves the name (the client's other link, or its new
 * one after a move), the entry is forgotten at once instead (at the drop,
 * at the next lookup, or when the routes table says so, bindings_recheck),
 * so this node forwards its visitors there rather than answering 502, and
 * the other nodes stop sending them here.  A new link of the client that
 * holds a LIVE entry (same session and account: it lost the old link
 * before this node noticed) takes the entry over, closing the old link.  The GONE entries sit in a FIFO in the order they died;
 * since the grace period is one constant, that is also the order they
 * expire in, so one timer armed at the head's expiry sweeps them all.
 * Eviction (routes decided the name belongs elsewhere) removes the entry
 * at once, whichever state it is in.
 *
 * This file holds the table and the links' life; the control messages
 * (HELLO, READY, slowing down) are bindings_ctl.c's, visitors' streams
 * on a link bindings_stream.c's (bindings_int.h).
 */
#include "bindings_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "warren/control.h"
#include "warren/err.h"
#include "warren/identity.h"
#include "warren/routes.h"
#include "warren/log.h"
#include "warren/names.h"

const uint8_t bindings_no_session[16];

/* ---- the table ---- */

/*
 * Names are chosen by clients, so the bucket must not be predictable:
 * with an unkeyed hash (FNV-1a before), anyone could bind names that all
 * land in one chain and make every lookup walk it.  SipHash-2-4
 * (crypto_shorthash) under a key drawn once per ingress makes the
 * buckets a secret; 4096 is a power of two, so the modulo keeps the low
 * 12 bits of a uniformly distributed 64-bit output unbiased.
 */
uint32_t name_hash(const bindings *b, const char *s) {
  uint8_t h[crypto_shorthash_BYTES];
  crypto_shorthash(h, (const uint8_t *)s, strlen(s), b->hash_key);
  uint64_t v = 0;
  for (size_t i = 0; i < sizeof h; i++) v |= (uint64_t)h[i] << (8 * i);
  return (uint32_t)(v % TABLE_BUCKETS);
}

tunnel *table_find(bindings *b, const char *name) {
  for (tunnel *t = b->table[name_hash(b, name)]; t; t = t->next)
    if (strcmp(t->name, name) == 0) return t;
  return NULL;
}

void gone_unlink(bindings *b, tunnel *t) {
  if (t->gprev) t->gprev->gnext = t->gnext;
  else if (b->ghead == t) b->ghead = t->gnext;
  if (t->gnext) t->gnext->gprev = t->gprev;
  else if (b->gtail == t) b->gtail = t->gprev;
  t->gprev = t->gnext = NULL;
}

/* ---- visitors held for a GONE binding's client ---- */

/* Takes every waiter of |t| off its list: the caller tells each (after
 * it is done with |t|, which a waiter's event must not find half-gone). */
static tstream *waiters_take(bindings *b, tunnel *t) {
  tstream *list = t->waiters;
  for (tstream *s = list; s; s = s->next) s->waiting = NULL;
  b->nwaiting -= t->nwait;
  t->waiters = NULL;
  t->nwait = 0;
  return list;
}

/* The held visitors of a binding that is not coming back: `gone`. */
static void waiters_fail(bindings *b, tstream *list) {
  while (list) {
    tstream *s = list;
    list = s->next;
    s->prev = s->next = NULL;
    if (b->m_held_failed) (*b->m_held_failed)++;
    b->ev.gone(s);
  }
}

/* Forgets |t| (GONE, or LIVE with its link already told) and tells the
 * routes hook; its held visitors get `gone`. */
static void table_remove(bindings *b, tunnel *t) {
  tunnel **pp = &b->table[name_hash(b, t->name)];
  while (*pp && *pp != t) pp = &(*pp)->next;
  if (*pp) *pp = t->next;
  gone_unlink(b, t);
  b->ntunnels--;
  tstream *held = waiters_take(b, t);
  if (b->unbound) b->unbound(b->routes_ud, t->name, t->session);
  free(t);
  waiters_fail(b, held);
}

static void on_hold(uv_timer_t *timer);

/* Arms the hold timer at the earliest end of a hold (a scan of the GONE
 * entries: few, and only while visitors are held). */
static void arm_hold(bindings *b) {
  if (b->stopping) return;
  uint64_t due = UINT64_MAX, now = uv_now(b->loop);
  for (tunnel *t = b->ghead; t && b->nwaiting; t = t->gnext)
    for (tstream *s = t->waiters; s; s = s->next)
      if (s->wait_until < due) due = s->wait_until;
  if (due == UINT64_MAX) {
    uv_timer_stop(&b->hold);
    return;
  }
  uv_timer_start(&b->hold, on_hold, due > now ? due - now : 0, 0);
}

/* Holds that ran out: those visitors get `gone` (their 502). */
static void on_hold(uv_timer_t *timer) {
  bindings *b = timer->data;
  uint64_t now = uv_now(b->loop);
  tstream *expired = NULL;
  for (tunnel *t = b->ghead; t; t = t->gnext) {
    tstream *s = t->waiters;
    while (s) {
      tstream *next = s->next;
      if (s->wait_until <= now) {
        if (s->prev) s->prev->next = s->next;
        else t->waiters = s->next;
        if (s->next) s->next->prev = s->prev;
        s->waiting = NULL;
        t->nwait--;
        b->nwaiting--;
        s->prev = NULL;
        s->next = expired;
        expired = s;
      }
      s = next;
    }
  }
  waiters_fail(b, expired);
  arm_hold(b);
}

int tstream_wait(tstream *s, bindings *b, const char *name) {
  tunnel *t = table_find(b, name);
  if (!t || t->tl) return WR_ERR_NOTFOUND;
  if (t->nwait >= BINDINGS_HOLD_MAX || b->nwaiting >= BINDINGS_HOLD_TOTAL)
    return WR_ERR_LIMIT;
  s->tl = NULL;
  s->b = b;
  s->waiting = t;
  s->fin_asked = 0;
  s->wait_until = uv_now(b->loop) + BINDINGS_HOLD_MS;
  s->prev = NULL;
  s->next = t->waiters;
  if (t->waiters) t->waiters->prev = s;
  t->waiters = s;
  t->nwait++;
  b->nwaiting++;
  arm_hold(b);
  return 0;
}

/* |t| was taken back by its client on |tl|: its held visitors' streams
 * open there now (or get `gone` if the link cannot take them). */
void waiters_resume(bindings *b, tunnel *t, tlink *tl) {
  tstream *list = waiters_take(b, t);
  while (list) {
    tstream *s = list;
    list = s->next;
    s->prev = s->next = NULL;
    int fin = s->fin_asked;
    if (!tl->link || tstream_open(s, tl, NULL, 0) != 0) {
      if (b->m_held_failed) (*b->m_held_failed)++;
      b->ev.gone(s);
      continue;
    }
    if (b->m_held_resumed) (*b->m_held_resumed)++;
    if (fin) tstream_fin(s);
    b->ev.writable(s);
  }
  arm_hold(b);
}

static void on_sweep(uv_timer_t *timer);

/* Arms the sweep at the oldest GONE entry's expiry. */
void arm_sweep(bindings *b) {
  if (b->stopping) return;
  if (!b->ghead) {
    uv_timer_stop(&b->sweep);
    return;
  }
  uint64_t now = uv_now(b->loop), end = b->ghead->gone_at + b->gone_grace;
  uv_timer_start(&b->sweep, on_sweep, end > now ? end - now : 0, 0);
}

static void on_sweep(uv_timer_t *timer) {
  bindings *b = timer->data;
  uint64_t now = uv_now(b->loop);
  while (b->ghead && now - b->ghead->gone_at >= b->gone_grace)
    table_remove(b, b->ghead);
  arm_sweep(b);
}

/* Another node serves |t|'s name (the routes table's word): a GONE entry
 * here only delays visitors, who are better forwarded there. */
static int served_elsewhere(bindings *b, const tunnel *t) {
  char owner[65];
  return b->lookup_remote &&
         b->lookup_remote(b->routes_ud, t->name, owner, sizeof owner) == 1;
}

bindings_find bindings_lookup(bindings *b, const char *name,
                                    tlink **ptl) {
  *ptl = NULL;
  tunnel *t = table_find(b, name);
  if (!t) return BINDINGS_NONE;
  if (t->tl) {
    *ptl = t->tl;
    return t->tl->no_new ? BINDINGS_MOVING : BINDINGS_LIVE;
  }
  /* The sweep timer may not have run yet for an entry just expired. */
  if (uv_now(b->loop) - t->gone_at < b->gone_grace) {
    if (!served_elsewhere(b, t)) return BINDINGS_GONE;
    if (b->m_released_early) (*b->m_released_early)++;
  }
  table_remove(b, t);
  arm_sweep(b);
  return BINDINGS_NONE;
}

int bindings_recheck(bindings *b, const char *name) {
  tunnel *t = table_find(b, name);
  if (!t || t->tl || !served_elsewhere(b, t)) return 0;
  WR_LOG_INFOF("ingress", "released", "name=%s why=served_elsewhere", name);
  if (b->m_released_early) (*b->m_released_early)++;
  table_remove(b, t);
  arm_sweep(b);
  return 1;
}

int bindings_is_gone(bindings *b, const char *name) {
  tunnel *t = table_find(b, name);
  return t && !t->tl;
}

/* ---- links ---- */

static void maybe_done(bindings *b) {
  if (!b->stopping || b->tlinks || b->sweep_closed < 4 || !b->done) return;
  void (*done)(void *) = b->done;
  b->done = NULL;
  done(b->done_ud);
}

static void tl_on_ready(wr_link *l, void *ud) {
  tlink *tl = ud;
  WR_LOG_INFOF("ingress", "tunnel_link", "peer=%s aead=%s", tl->peer,
               wr_aead_name(wr_link_aead(l)));
}

static void tl_on_closed(wr_link *l, int err, void *ud) {
  (void)l;
  tlink *tl = ud;
  bindings *b = tl->b;
  tl->link = NULL;
  if (tl->nheld) held_unlink(tl);
  if (tl->bound && (b->draining || served_elsewhere(b, tl->bound))) {
    /* No grace: another node serves the name (this client's other link,
     * or its new one), so visitors here are forwarded there now; or this
     * node drains and told the client to move: it is not coming back
     * here, and the routes hook releases the name at once. */
    tunnel *t = tl->bound;
    t->tl = NULL;
    tl->bound = NULL;
    if (b->g_tunnels) (*b->g_tunnels)--;
    WR_LOG_INFOF("ingress", "unbound", "name=%s peer=%s err=\"%s\" "
                 "grace=none why=%s", t->name, tl->peer,
                 err ? wr_strerror(err) : "closed",
                 b->draining ? "draining" : "served_elsewhere");
    if (b->m_released_early) (*b->m_released_early)++;
    table_remove(b, t);
    arm_sweep(b);
  } else if (tl->bound) {
    /* GONE for the grace period (an evicted link was unbound already). */
    tunnel *t = tl->bound;
    t->tl = NULL;
    t->gone_at = uv_now(b->loop);
    t->gprev = b->gtail;
    t->gnext = NULL;
    if (b->gtail) b->gtail->gnext = t;
    else b->ghead = t;
    b->gtail = t;
    arm_sweep(b);
    if (b->g_tunnels) (*b->g_tunnels)--;
    WR_LOG_INFOF("ingress", "unbound", "name=%s peer=%s err=\"%s\"", t->name,
                 tl->peer, err ? wr_strerror(err) : "closed");
  } else if (err && err != WR_ERR_CLOSED) {
    WR_LOG_INFOF("ingress", "tunnel_link_failed", "peer=%s err=\"%s\"",
                 tl->peer, wr_strerror(err));
    if (b->m_tunnel_bad && (err == WR_ERR_DECRYPT || err == WR_ERR_PROTO ||
                            err == WR_ERR_REPLAY))
      (*b->m_tunnel_bad)++;
  }
  /* Every visitor on this link loses its stream. */
  while (tl->streams) {
    tstream *s = tl->streams;
    stream_unlink(s);
    b->ev.gone(s);
  }
  if (tl->prev) tl->prev->next = tl->next;
  else b->tlinks = tl->next;
  if (tl->next) tl->next->prev = tl->prev;
  free(tl);
  maybe_done(b);
}

static const wr_link_callbacks tl_cb = {
    .ready = tl_on_ready,
    .closed = tl_on_closed,
    .stream_open = tl_on_open,
    .stream_data = tl_on_data,
    .stream_fin = tl_on_fin,
    .stream_close = tl_on_close,
    .stream_writable = tl_on_writable,
    .control = tl_on_control,
    .goaway = NULL,
};

static void free_write(uv_write_t *req, int status) {
  (void)status;
  free(req);
}

int bindings_accept(bindings *b, uv_tcp_t *tcp, const char *peer,
                       const uint8_t *pre, size_t prelen) {
  static const char resp101[] = "HTTP/1.1 101 Switching Protocols\r\n"
                                "Connection: Upgrade\r\n"
                                "Upgrade: warren/1\r\n\r\n";
  /* This write outlives the visitor connection that carried the request
   * (the link owns the socket next), so it frees itself. */
  uv_write_t *wr = malloc(sizeof *wr);
  uv_buf_t buf = uv_buf_init((char *)resp101, sizeof resp101 - 1);
  if (!wr) return WR_ERR_NOMEM;
  int rv = uv_write(wr, (uv_stream_t *)tcp, &buf, 1, free_write);
  if (rv != 0) {
    free(wr);
    return rv;
  }
  tlink *tl = calloc(1, sizeof *tl);
  if (!tl) return WR_ERR_NOMEM;
  tl->b = b;
  tl->state = TL_HELLO;
  snprintf(tl->peer, sizeof tl->peer, "%s", peer);
  wr_link_config lc;
  memset(&lc, 0, sizeof lc);
  lc.initiator = 0;
  memcpy(lc.fleet_key, b->fleet_priv, 32);
  lc.replay = b->replay;
  lc.peer = tl->peer;
  uv_read_stop((uv_stream_t *)tcp);
  rv = wr_link_start(&tl->link, b->loop, tcp, &lc, &tl_cb, tl, pre, prelen);
  if (rv != 0) {
    free(tl);
    return rv;
  }
  tl->next = b->tlinks;
  if (b->tlinks) b->tlinks->prev = tl;
  b->tlinks = tl;
  return 0;
}

int bindings_evict(bindings *b, const char *name,
                      const uint8_t session[16], int reason) {
  uint32_t code;
  if (reason == WR_INGRESS_EVICT_TAKEN) code = WR_CONTROL_ERR_NAME_TAKEN;
  else if (reason == WR_INGRESS_EVICT_MOVED) code = WR_CONTROL_ERR_NAME_MOVED;
  else return WR_ERR_INVAL;
  tunnel *t = table_find(b, name);
  if (!t) return WR_ERR_NOTFOUND;
  if (session && memcmp(session, bindings_no_session, 16) != 0 &&
      memcmp(session, t->session, 16) != 0)
    return WR_ERR_NOTFOUND;
  tlink *tl = t->tl;
  WR_LOG_INFOF("ingress", "evicted", "name=%s why=%s peer=%s", t->name,
               code == WR_CONTROL_ERR_NAME_TAKEN ? "taken" : "moved",
               tl ? tl->peer : "");
  if (tl) {
    /* The Error goes out before the close (wr_link_end writes what is
     * queued first).  Its visitors lose their streams then. */
    send_error(tl, code, t->name, NULL);
    tl->bound = NULL;
    t->tl = NULL;
    if (b->g_tunnels) (*b->g_tunnels)--;
    wr_link_end(tl->link, 0);
  }
  table_remove(b, t);
  arm_sweep(b);
  return 0;
}

int bindings_new(bindings **pb, uv_loop_t *loop,
                    const bindings_config *cfg) {
  const wr_ingress_config *ic = cfg->ic;
  bindings *b = calloc(1, sizeof *b);
  if (!b) return WR_ERR_NOMEM;
  b->loop = loop;
  b->ev = *cfg->ev;
  b->url = cfg->url;
  b->url_ud = cfg->ud;
  memcpy(b->fleet_priv, ic->fleet_priv, 32);
  snprintf(b->node_id, sizeof b->node_id, "%s",
           ic->node_id ? ic->node_id : "");
  snprintf(b->token, sizeof b->token, "%s", ic->token ? ic->token : "");
  b->gone_grace = ic->gone_grace_ms ? ic->gone_grace_ms : 30000;
  crypto_shorthash_keygen(b->hash_key);
  b->routes_ud = ic->routes_ud;
  b->bind_check = ic->bind_check;
  b->authorize = ic->authorize;
  b->bound = ic->bound;
  b->unbound = ic->unbound;
  b->lookup_remote = ic->lookup_remote;
  b->m_tunnel_bad = cfg->m_tunnel_bad;
  b->m_auth_fail = cfg->m_auth_fail;
  b->m_held_resumed = cfg->m_held_resumed;
  b->m_held_failed = cfg->m_held_failed;
  b->m_released_early = cfg->m_released_early;
  b->g_tunnels = cfg->g_tunnels;
  /* 64k recent handshakes: two minutes of skew window at ~500/s. */
  int rv = wr_noise_replay_new(&b->replay, 65536, NULL);
  if (rv != 0) {
    free(b);
    return rv;
  }
  uv_timer_init(loop, &b->sweep);
  b->sweep.data = b;
  uv_timer_init(loop, &b->slow);
  b->slow.data = b;
  uv_timer_init(loop, &b->goaway);
  b->goaway.data = b;
  uv_unref((uv_handle_t *)&b->goaway);
  uv_timer_init(loop, &b->hold);
  b->hold.data = b;
  uv_unref((uv_handle_t *)&b->hold);
  /* The timers alone must not keep a loop running (the links and the
   * listener do). */
  uv_unref((uv_handle_t *)&b->sweep);
  uv_unref((uv_handle_t *)&b->slow);
  *pb = b;
  return 0;
}

static void sweep_closed(uv_handle_t *h) {
  bindings *b = h->data;
  b->sweep_closed++;
  maybe_done(b);
}

void bindings_stop(bindings *b, void (*done)(void *ud), void *ud) {
  if (b->stopping) return;
  b->stopping = 1;
  b->done = done;
  b->done_ud = ud;
  uv_close((uv_handle_t *)&b->sweep, sweep_closed);
  uv_close((uv_handle_t *)&b->slow, sweep_closed);
  uv_close((uv_handle_t *)&b->goaway, sweep_closed);
  uv_close((uv_handle_t *)&b->hold, sweep_closed);
  /* Held visitors will not see their client again. */
  for (tunnel *t = b->ghead; t; t = t->gnext)
    waiters_fail(b, waiters_take(b, t));
  for (tlink *tl = b->tlinks; tl; tl = tl->next)
    if (tl->link) wr_link_close(tl->link, 0);
}

void bindings_del(bindings *b) {
  if (!b) return;
  /* Every binding ends with the ingress: the routes table hears of each. */
  for (size_t i = 0; i < TABLE_BUCKETS; i++)
    while (b->table[i]) table_remove(b, b->table[i]);
  wr_noise_replay_del(b->replay);
  sodium_memzero(b->fleet_priv, 32);
  sodium_memzero(b->hash_key, sizeof b->hash_key);
  free(b);
}

size_t bindings_count(const bindings *b) { return b->ntunnels; }

size_t bindings_links(const bindings *b) {
  size_t n = 0;
  for (const tlink *tl = b->tlinks; tl; tl = tl->next) n++;
  return n;
}

void bindings_foreach(const bindings *b,
                         void (*fn)(const wr_tunnel_info *t, void *ud),
                         void *ud) {
  for (size_t i = 0; i < TABLE_BUCKETS; i++)
    for (tunnel *t = b->table[i]; t; t = t->next) {
      wr_tunnel_info info = {
          .name = t->name,
          .peer = t->tl ? t->tl->peer : "",
          .live = t->tl != NULL,
          .version = t->version,
          .streams = t->tl ? t->tl->nstreams : 0,
      };
      fn(&info, ud);
    }
}

void send_goaway(tlink *tl) {
  bindings *b = tl->b;
  tl->goaway_due = 0;
  tl->no_new = 1;
  if (tl->goaway_sent || !tl->link) return;
  tl->goaway_sent = 1;
  tl->goaway_at = uv_now(b->loop);
  wr_control_msg m;
  memset(&m, 0, sizeof m);
  m.type = WR_CONTROL_GOAWAY;
  snprintf(m.u.goaway.reason, sizeof m.u.goaway.reason,
           "node %s is draining", b->node_id);
  send_control(tl, &m);
  /* send_control may have closed the link (its client does not read). */
  if (!tl->link) return;
  wr_mux_goaway(wr_link_mux(tl->link), 0);
  wr_link_flush(tl->link);
}

void bindings_drain(bindings *b) {
  if (b->draining || b->stopping) return;
  b->draining = 1;
  /* Names whose client dropped before the drain are not coming back
   * either: release them now rather than after the grace period. */
  while (b->ghead) table_remove(b, b->ghead);
  arm_sweep(b);
  /* Links still in their handshake are told at their Bind (refused with
   * NODE_DRAINING). */
  for (tlink *tl = b->tlinks; tl; tl = tl->next) {
    if (!tl->link || !wr_link_is_ready(tl->link)) continue;
    if (tl->nstreams == 0) send_goaway(tl);
    else tl->goaway_due = 1;
  }
}

size_t bindings_unmoved(const bindings *b, uint64_t grace_ms) {
  uint64_t now = uv_now(b->loop);
  size_t n = 0;
  for (const tlink *tl = b->tlinks; tl; tl = tl->next)
    if (tl->bound && tl->link &&
        (!tl->goaway_sent || tl->nstreams > 0 ||
         now - tl->goaway_at < grace_ms))
      n++;
  return n;
}

void bindings_drain_hard(bindings *b) {
  for (tlink *tl = b->tlinks; tl; tl = tl->next)
    if (tl->goaway_due) tl->no_new = 1;
}
