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
 */
#include "bindings.h"

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

#define TABLE_BUCKETS 4096

/*
 * Authentication failures are remembered per source address (the peer
 * without its port) in a small table, evicting the least recently seen
 * address when full: 256 entries of ~90 bytes keep the memory fixed
 * whatever an attacker spreads its guesses over.  Within one window of
 * FAIL_WINDOW_MS, only the first failure of an address is logged; the
 * others are counted and summed up in one line when the window ends.
 */
#define FAIL_TABLE_SIZE 256
#define FAIL_WINDOW_MS 60000
/*
 * Slowing down: an address's first FAIL_FREE failures in a window cost
 * nothing (a person who mistyped the token twice is not punished; the
 * client stops at the first BAD_TOKEN anyway), then each Hello waits
 * 500 ms, 1 s, 2 s, ... up to 16 s after the previous answer to that
 * address.  Within one minute that is 3 + 6 guesses (0.5+1+...+16 =
 * 31.5 s) and then ~2 more, about 11 a minute, against tokens of 128
 * random bits or more: the point is not the keyspace but the handshakes,
 * log lines and lookups an address can make the node do.  MAX_HELD links
 * of ~2 held messages (a few KiB each) bound the memory it costs.
 */
#define FAIL_FREE 3
#define FAIL_DELAY_BASE_MS 500
#define FAIL_DELAY_MAX_MS 16000
#define MAX_HELD 256

typedef struct tunnel tunnel;

enum tl_state { TL_HELLO, TL_READY, TL_BOUND, TL_FAILED };

struct tlink {
  bindings *b;
  wr_link *link;
  enum tl_state state;
  tunnel *bound;
  tstream *streams;   /* visitors' streams on this link */
  tlink *prev, *next;
  uint32_t nstreams;
  /* Draining (bindings_drain): the link's client is told to move
   * (GOAWAY) only once no stream is on it, since a client closes the
   * link when told; until then the link finishes what it carries.
   * goaway_due: waiting for that; no_new: no new stream may open on it
   * (bindings_lookup answers MOVING), set with the GOAWAY or when
   * bindings_drain_hard gives up waiting for an idle moment. */
  int goaway_due, goaway_sent, no_new;
  uint64_t goaway_at;    /* when the GOAWAY went */
  uint32_t options;      /* Bind options */
  uint8_t session[16];   /* Bind session (all zero: none sent) */
  char peer[64];
  char account[WR_ROUTE_ACCOUNT_MAX + 1]; /* from authorize, at Hello */
  /* A Hello held back (slowing down), and at most one message after it
   * (a client's Bind); due: when to go on. */
  wr_control_msg *held[2];
  int nheld;
  uint64_t due;
  tlink *hprev, *hnext; /* on b->held, while nheld > 0 */
};

struct tunnel {
  tunnel *next;          /* hash chain */
  tunnel *gprev, *gnext; /* in the GONE FIFO, while gone */
  char name[WR_CONTROL_NAME_MAX + 1];
  tlink *tl;          /* NULL while gone */
  uint64_t gone_at;
  uint64_t version;
  uint8_t session[16];   /* of the client that bound it */
  tstream *waiters;      /* visitors held for its client (GONE only) */
  uint32_t nwait;
};

struct bindings {
  uv_loop_t *loop;
  tstream_events ev;
  void (*url)(void *ud, const char *name, char *out, size_t cap);
  void *url_ud;
  uint8_t fleet_priv[32];
  wr_noise_replay *replay;
  char node_id[128], token[WR_CONTROL_TOKEN_MAX + 1];
  uint64_t gone_grace;
  /* routes hooks */
  void *routes_ud;
  int (*bind_check)(void *, const char *, const char *, const uint8_t *,
                    uint32_t);
  void (*bound)(void *, const char *, const char *, const uint8_t *,
                uint32_t);
  void (*unbound)(void *, const char *, const uint8_t *);
  int (*lookup_remote)(void *, const char *, char *, size_t);
  int (*authorize)(void *, const char *, const char *, char *, size_t);
  tunnel *table[TABLE_BUCKETS];
  uint8_t hash_key[crypto_shorthash_KEYBYTES]; /* name_hash's, per ingress */
  size_t ntunnels;
  tunnel *ghead, *gtail; /* GONE FIFO, oldest first */
  uv_timer_t sweep;
  tlink *tlinks;
  uint64_t version_clock;
  int draining, stopping, sweep_closed; /* 4: sweep, slow, hold, goaway */
  uv_timer_t goaway; /* sends the GOAWAYs due, one loop turn after a
                        link's last stream ended (never from inside the
                        mux callback that ended it) */
  void (*done)(void *);
  void *done_ud;
  uint64_t *m_tunnel_bad, *m_auth_fail;
  uint64_t *m_held_resumed, *m_held_failed, *m_released_early;
  int64_t *g_tunnels;
  /* Authentication failures per source address, for folding log lines. */
  struct fail_entry {
    char addr[64];
    uint64_t window_start, last;
    uint32_t fails, suppressed;
    uint64_t next_at; /* the next held Hello of this address goes on */
  } fails[FAIL_TABLE_SIZE];
  tlink *held; /* links whose Hello is held */
  size_t nheld;
  uv_timer_t slow; /* at the earliest due of b->held */
  uv_timer_t hold; /* at the earliest wait_until of the held visitors */
  size_t nwaiting;
};

static const uint8_t no_session[16];

/* Who a client is, for the routes hooks: decided once, at its Hello. */
static const char *bind_account(const tlink *tl) { return tl->account; }

/* ---- the table ---- */

/*
 * Names are chosen by clients, so the bucket must not be predictable:
 * with an unkeyed hash (FNV-1a before), anyone could bind names that all
 * land in one chain and make every lookup walk it.  SipHash-2-4
 * (crypto_shorthash) under a key drawn once per ingress makes the
 * buckets a secret; 4096 is a power of two, so the modulo keeps the low
 * 12 bits of a uniformly distributed 64-bit output unbiased.
 */
static uint32_t name_hash(const bindings *b, const char *s) {
  uint8_t h[crypto_shorthash_BYTES];
  crypto_shorthash(h, (const uint8_t *)s, strlen(s), b->hash_key);
  uint64_t v = 0;
  for (size_t i = 0; i < sizeof h; i++) v |= (uint64_t)h[i] << (8 * i);
  return (uint32_t)(v % TABLE_BUCKETS);
}

static tunnel *table_find(bindings *b, const char *name) {
  for (tunnel *t = b->table[name_hash(b, name)]; t; t = t->next)
    if (strcmp(t->name, name) == 0) return t;
  return NULL;
}

static void gone_unlink(bindings *b, tunnel *t) {
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
static void waiters_resume(bindings *b, tunnel *t, tlink *tl) {
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
static void arm_sweep(bindings *b) {
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

/* ---- control messages ---- */

static int send_control(tlink *tl, const wr_control_msg *m) {
  uint8_t buf[WR_CONTROL_MAX_WIRE];
  wr_ssize n = wr_control_encode(m, buf, sizeof buf);
  if (n < 0) return (int)n;
  int rv = wr_mux_control(wr_link_mux(tl->link), buf, (size_t)n);
  if (rv == WR_ERR_NOBUF) {
    /* 64 KiB of our answers wait unsent: the client sends but does not
     * read.  Dropping an answer would leave it guessing, so the link
     * goes (`closed` comes later; |tl| stays valid until then). */
    WR_LOG_INFOF("ingress", "control_queue_full", "peer=%s", tl->peer);
    wr_link_close(tl->link, rv);
    return rv;
  }
  wr_link_flush(tl->link);
  return rv;
}

static void send_error(tlink *tl, uint32_t code, const char *name,
                       const char *msg) {
  wr_control_msg m;
  memset(&m, 0, sizeof m);
  m.type = WR_CONTROL_ERROR;
  m.u.error.code = code;
  snprintf(m.u.error.name, sizeof m.u.error.name, "%s", name ? name : "");
  snprintf(m.u.error.message, sizeof m.u.error.message, "%s",
           msg ? msg : "");
  send_control(tl, &m);
}

/* The routes hook's word on |name|: 0, or the control error to send. */
static uint32_t check_bind(tlink *tl, const char *name) {
  bindings *b = tl->b;
  if (!b->bind_check) return 0;
  int rv = b->bind_check(b->routes_ud, name, bind_account(tl), tl->session,
                         tl->options);
  if (rv == 0) return 0;
  return rv == WR_ERR_TAKEN ? WR_CONTROL_ERR_NAME_TAKEN
                            : WR_CONTROL_ERR_INTERNAL;
}

/*
 * A Bind refused for its name (bad, taken here or by the routes table):
 * the Error goes out and the link ends after it, as after a failed Hello,
 * so one link is one try.  Left open, a link could Bind name after name
 * and learn from the answers which are held, as fast as it liked.
 */
static void bind_refused(tlink *tl, uint32_t code, const char *name,
                         const char *msg, const char *why) {
  send_error(tl, code, name, msg);
  WR_LOG_INFOF("ingress", "bind_refused", "peer=%s name=%s why=%s",
               tl->peer, name, why);
  tl->state = TL_FAILED;
  wr_link_end(tl->link, 0);
}

static void handle_bind(tlink *tl, const wr_control_msg *m) {
  bindings *b = tl->b;
  char name[WR_CONTROL_NAME_MAX + 1];
  if (tl->state == TL_BOUND) {
    send_error(tl, WR_CONTROL_ERR_BAD_NAME, m->u.bind.name,
               "this link is already bound");
    return;
  }
  memcpy(tl->session, m->u.bind.session, sizeof tl->session);
  tl->options = m->u.bind.options;
  uint32_t refused = 0;
  if (m->u.bind.name[0]) {
    /* Names are DNS labels; Host matching is case-insensitive, so the
     * table holds lowercase. */
    size_t i = 0;
    for (; m->u.bind.name[i] && i < sizeof name - 1; i++) {
      char ch = m->u.bind.name[i];
      name[i] = (ch >= 'A' && ch <= 'Z') ? (char)(ch + 32) : ch;
    }
    name[i] = 0;
    if (!wr_control_name_valid(name)) {
      bind_refused(tl, WR_CONTROL_ERR_BAD_NAME, name, NULL, "bad_name");
      return;
    }
  } else {
    /* A name the node picks: one nobody holds here, nor (bind_check)
     * anywhere the routes table knows of. */
    int tries = 0;
    do {
      wr_name_random(name, wr_sodium_rand, NULL);
      refused = table_find(b, name) ? WR_CONTROL_ERR_NAME_TAKEN : 0;
      if (!refused) refused = check_bind(tl, name);
    } while (refused == WR_CONTROL_ERR_NAME_TAKEN && ++tries < 16);
  }
  tunnel *t = table_find(b, name);
  if (t && t->tl && memcmp(tl->session, no_session, 16) != 0 &&
      memcmp(tl->session, t->session, 16) == 0 &&
      strcmp(tl->account, t->tl->account) == 0) {
    /* The same client (session and account) binds again on a new link:
     * it lost the old one before we noticed (a link per node is all a
     * client holds).  The new link takes the entry; the old one goes. */
    tlink *old = t->tl;
    WR_LOG_INFOF("ingress", "rebound", "name=%s peer=%s old_peer=%s", name,
                 tl->peer, old->peer);
    old->bound = NULL;
    t->tl = NULL;
    if (b->g_tunnels) (*b->g_tunnels)--;
    wr_link_close(old->link, WR_ERR_CLOSED);
  }
  if (t && t->tl) {
    bind_refused(tl, WR_CONTROL_ERR_NAME_TAKEN, name, NULL, "taken");
    return;
  }
  if (m->u.bind.name[0]) refused = check_bind(tl, name);
  if (refused) {
    bind_refused(tl, refused, name,
                 refused == WR_CONTROL_ERR_INTERNAL ? "routes refused" : NULL,
                 refused == WR_CONTROL_ERR_NAME_TAKEN ? "routes_taken"
                                                      : "routes_error");
    return;
  }
  if (!t) {
    t = calloc(1, sizeof *t);
    if (!t) {
      send_error(tl, WR_CONTROL_ERR_INTERNAL, name, "out of memory");
      return;
    }
    snprintf(t->name, sizeof t->name, "%s", name);
    uint32_t h = name_hash(b, name);
    t->next = b->table[h];
    b->table[h] = t;
    b->ntunnels++;
  } else {
    gone_unlink(b, t); /* its client is back within the grace period */
    arm_sweep(b);
  }
  t->tl = tl;
  t->version = ++b->version_clock;
  memcpy(t->session, tl->session, sizeof t->session);
  tl->bound = t;
  tl->state = TL_BOUND;
  if (b->g_tunnels) (*b->g_tunnels)++;
  wr_control_msg bm;
  memset(&bm, 0, sizeof bm);
  bm.type = WR_CONTROL_BOUND;
  snprintf(bm.u.bound.name, sizeof bm.u.bound.name, "%s", name);
  b->url(b->url_ud, name, bm.u.bound.url, sizeof bm.u.bound.url);
  send_control(tl, &bm);
  WR_LOG_INFOF("ingress", "bound", "name=%s peer=%s url=%s", name, tl->peer,
               bm.u.bound.url);
  if (b->bound)
    b->bound(b->routes_ud, name, bind_account(tl), tl->session, tl->options);
  if (t->waiters) {
    WR_LOG_INFOF("ingress", "held_resumed", "name=%s n=%u", name, t->nwait);
    waiters_resume(b, t, tl);
  }
}

/* The source address of |peer| ("1.2.3.4:5" or "[::1]:5"): its port
 * changes with every connection, so it is left out. */
static void peer_addr(const char *peer, char *out, size_t cap) {
  snprintf(out, cap, "%s", peer);
  char *colon = strrchr(out, ':');
  if (colon && colon != out) *colon = 0;
}

/* The table entry of |addr|, made (over the least recently seen one when
 * the table is full) if it has none. */
static struct fail_entry *fail_entry_get(bindings *b, const char *addr,
                                         uint64_t now) {
  struct fail_entry *lru = &b->fails[0];
  for (size_t i = 0; i < FAIL_TABLE_SIZE; i++) {
    struct fail_entry *e = &b->fails[i];
    if (e->addr[0] && strcmp(e->addr, addr) == 0) return e;
    if (!e->addr[0]) {
      if (lru->addr[0]) lru = e;
    } else if (lru->addr[0] && e->last < lru->last) {
      lru = e;
    }
  }
  if (lru->addr[0] && lru->suppressed)
    WR_LOG_INFOF("ingress", "auth_failures_suppressed", "addr=%s n=%u",
                 lru->addr, lru->suppressed);
  memset(lru, 0, sizeof *lru);
  snprintf(lru->addr, sizeof lru->addr, "%s", addr);
  lru->window_start = now;
  return lru;
}

/*
 * A Hello that failed authentication (|why|: bad_token, unknown_token,
 * bad_identity_proof): counted, logged (folded per source address), the
 * Error sent, and the link ended after it, so a link carries one guess.
 */
static void auth_fail(tlink *tl, const char *why) {
  bindings *b = tl->b;
  uint64_t now = uv_now(b->loop);
  if (b->m_auth_fail) (*b->m_auth_fail)++;
  char addr[64];
  peer_addr(tl->peer, addr, sizeof addr);
  struct fail_entry *e = fail_entry_get(b, addr, now);
  if (e->fails && now - e->window_start >= FAIL_WINDOW_MS) {
    if (e->suppressed)
      WR_LOG_INFOF("ingress", "auth_failures_suppressed", "addr=%s n=%u",
                   e->addr, e->suppressed);
    e->window_start = now;
    e->fails = 0;
    e->suppressed = 0;
  }
  if (e->fails++ == 0)
    WR_LOG_INFOF("ingress", why, "peer=%s", tl->peer);
  else
    e->suppressed++;
  e->last = now;
  send_error(tl, WR_CONTROL_ERR_BAD_TOKEN, NULL, NULL);
  tl->state = TL_FAILED;
  wr_link_end(tl->link, 0);
}

/*
 * The account of a client at its Hello: its identity proof is checked
 * against this link's handshake hash (a proof made for another link, or
 * by someone without the key, fails), then authorize (the node's tokens
 * file) decides.  NULL, or why it failed (the caller's auth_fail logs
 * and counts it).
 */
static const char *hello_account(tlink *tl, const wr_control_msg *m) {
  bindings *b = tl->b;
  char identity[WR_IDENTITY_ACCOUNT_LEN + 1] = "";
  if (m->u.hello.has_identity) {
    if (wr_identity_verify(m->u.hello.identity_key,
                           wr_link_handshake_hash(tl->link),
                           m->u.hello.identity_proof) != 0)
      return "bad_identity_proof";
    wr_identity_account(m->u.hello.identity_key, identity);
  }
  if (!b->authorize) {
    snprintf(tl->account, sizeof tl->account, "%s",
             identity[0] ? identity : "anonymous");
    return NULL;
  }
  char acct[WR_ROUTE_ACCOUNT_MAX + 1] = "";
  if (b->authorize(b->routes_ud, m->u.hello.token, identity, acct,
                   sizeof acct) != 0 || !acct[0])
    return "unknown_token";
  snprintf(tl->account, sizeof tl->account, "%s", acct);
  return NULL;
}

/* One control message of |tl|, in its state. */
static void handle_control(tlink *tl, const wr_control_msg *m) {
  bindings *b = tl->b;
  switch (tl->state) {
  case TL_HELLO:
    if (m->type != WR_CONTROL_HELLO) {
      send_error(tl, WR_CONTROL_ERR_NOT_HELLO, NULL, NULL);
      return;
    }
    if (m->u.hello.protocol_version != WR_CONTROL_PROTOCOL_VERSION) {
      send_error(tl, WR_CONTROL_ERR_UNSUPPORTED_VERSION, NULL, NULL);
      return;
    }
    if (b->token[0]) {
      /* Compare fixed-size digests so the time taken says nothing about
       * how much of the token matched. */
      uint8_t x[32], y[32];
      crypto_generichash(x, 32, (const uint8_t *)b->token, strlen(b->token),
                         NULL, 0);
      crypto_generichash(y, 32, (const uint8_t *)m->u.hello.token,
                         strlen(m->u.hello.token), NULL, 0);
      if (sodium_memcmp(x, y, 32) != 0) {
        auth_fail(tl, "bad_token");
        return;
      }
    }
    const char *why = hello_account(tl, m);
    if (why) {
      auth_fail(tl, why);
      return;
    }
    tl->state = TL_READY;
    return;
  case TL_FAILED:
    return; /* one guess per link: the rest is not even read */
  case TL_READY:
  case TL_BOUND:
    if (m->type != WR_CONTROL_BIND) return;
    if (b->draining) {
      send_error(tl, WR_CONTROL_ERR_NODE_DRAINING, m->u.bind.name, NULL);
      return;
    }
    handle_bind(tl, m);
    return;
  }
}

/* ---- slowing down an address that keeps failing ---- */

static void held_unlink(tlink *tl) {
  bindings *b = tl->b;
  if (tl->hprev) tl->hprev->hnext = tl->hnext;
  else if (b->held == tl) b->held = tl->hnext;
  if (tl->hnext) tl->hnext->hprev = tl->hprev;
  tl->hprev = tl->hnext = NULL;
  for (int i = 0; i < tl->nheld; i++) free(tl->held[i]);
  tl->nheld = 0;
  b->nheld--;
}

static void on_slow(uv_timer_t *timer);

/* Arms the slow timer at the earliest due of the held links (at most
 * MAX_HELD of them: a scan is fine). */
static void arm_slow(bindings *b) {
  if (b->stopping) return;
  if (!b->held) {
    uv_timer_stop(&b->slow);
    return;
  }
  uint64_t due = UINT64_MAX, now = uv_now(b->loop);
  for (tlink *tl = b->held; tl; tl = tl->hnext)
    if (tl->due < due) due = tl->due;
  uv_timer_start(&b->slow, on_slow, due > now ? due - now : 0, 0);
}

static void on_slow(uv_timer_t *timer) {
  bindings *b = timer->data;
  uint64_t now = uv_now(b->loop);
  tlink *tl = b->held;
  while (tl) {
    tlink *next = tl->hnext;
    if (tl->due <= now) {
      wr_control_msg *msgs[2] = {tl->held[0], tl->held[1]};
      int n = tl->nheld;
      tl->nheld = 0; /* the messages are ours now */
      held_unlink(tl);
      for (int i = 0; i < n; i++) {
        handle_control(tl, msgs[i]);
        free(msgs[i]);
      }
    }
    tl = next;
  }
  arm_slow(b);
}

/* How long the Hello of |tl| must wait (0: answer it now), taking the
 * address's next slot. */
static uint64_t hello_delay(tlink *tl, uint64_t now) {
  bindings *b = tl->b;
  char addr[64];
  peer_addr(tl->peer, addr, sizeof addr);
  for (size_t i = 0; i < FAIL_TABLE_SIZE; i++) {
    struct fail_entry *e = &b->fails[i];
    if (!e->addr[0] || strcmp(e->addr, addr) != 0) continue;
    if (now - e->window_start >= FAIL_WINDOW_MS || e->fails < FAIL_FREE)
      return 0;
    uint32_t k = e->fails - FAIL_FREE;
    uint64_t d = k >= 6 ? FAIL_DELAY_MAX_MS
                        : (uint64_t)FAIL_DELAY_BASE_MS << k;
    if (d > FAIL_DELAY_MAX_MS) d = FAIL_DELAY_MAX_MS;
    uint64_t due = (e->next_at > now ? e->next_at : now) + d;
    e->next_at = due;
    return due - now;
  }
  return 0;
}

static wr_control_msg *msg_dup(const wr_control_msg *m) {
  wr_control_msg *c = malloc(sizeof *c);
  if (c) *c = *m;
  return c;
}

static int tl_on_control(wr_link *l, const uint8_t *msg, size_t len,
                         void *ud) {
  (void)l;
  tlink *tl = ud;
  bindings *b = tl->b;
  wr_control_msg m;
  if (wr_control_decode(msg, len, &m) != 0) {
    if (b->m_tunnel_bad) (*b->m_tunnel_bad)++;
    WR_LOG_WARNF("ingress", "bad_control", "peer=%s len=%zu", tl->peer, len);
    return WR_ERR_PROTO;
  }
  if (tl->nheld) {
    /* Behind a held Hello: a client's Bind waits with it; anything more
     * before the answer is not what a client sends, and is dropped. */
    if (tl->nheld < 2) {
      tl->held[1] = msg_dup(&m);
      if (!tl->held[1]) return WR_ERR_NOMEM;
      tl->nheld = 2;
    }
    return 0;
  }
  if (tl->state == TL_HELLO && m.type == WR_CONTROL_HELLO) {
    uint64_t now = uv_now(b->loop);
    uint64_t d = hello_delay(tl, now);
    if (d > 0) {
      if (b->nheld >= MAX_HELD) {
        send_error(tl, WR_CONTROL_ERR_RATE_LIMITED, NULL,
                   "too many failed Hellos from this address");
        tl->state = TL_FAILED;
        wr_link_end(tl->link, 0);
        return 0;
      }
      tl->held[0] = msg_dup(&m);
      if (!tl->held[0]) return WR_ERR_NOMEM;
      tl->nheld = 1;
      tl->due = now + d;
      tl->hprev = NULL;
      tl->hnext = b->held;
      if (b->held) b->held->hprev = tl;
      b->held = tl;
      b->nheld++;
      arm_slow(b);
      return 0;
    }
  }
  handle_control(tl, &m);
  return 0;
}

/* ---- streams ---- */

static void send_goaway(tlink *tl);

/* A draining link's last stream ended a loop turn ago: tell its client
 * to move now, unless a new stream opened meanwhile. */
static void on_goaway_due(uv_timer_t *timer) {
  bindings *b = timer->data;
  for (tlink *tl = b->tlinks; tl; tl = tl->next)
    if (tl->goaway_due && tl->nstreams == 0) send_goaway(tl);
}

static void stream_unlink(tstream *s) {
  tlink *tl = s->tl;
  if (s->prev) s->prev->next = s->next;
  else tl->streams = s->next;
  if (s->next) s->next->prev = s->prev;
  s->prev = s->next = NULL;
  tl->nstreams--;
  s->tl = NULL;
  if (tl->goaway_due && tl->nstreams == 0 && !tl->b->stopping)
    uv_timer_start(&tl->b->goaway, on_goaway_due, 0, 0);
}

int tstream_open(tstream *s, tlink *tl, const uint8_t *meta,
                    size_t len) {
  s->waiting = NULL;
  int rv = wr_mux_stream_open(wr_link_mux(tl->link), meta, len, &s->sid, s);
  if (rv != 0) return rv;
  s->tl = tl;
  s->prev = NULL;
  s->next = tl->streams;
  if (tl->streams) tl->streams->prev = s;
  tl->streams = s;
  tl->nstreams++;
  return 0;
}

wr_ssize tstream_write(tstream *s, const uint8_t *data, size_t len) {
  if (s->waiting) return 0; /* `writable` comes when it opens */
  if (!s->tl || !s->tl->link) return WR_ERR_CLOSED;
  wr_ssize n = wr_mux_stream_write(wr_link_mux(s->tl->link), s->sid, data,
                                   len);
  wr_link_flush(s->tl->link);
  return n;
}

void tstream_consume(tstream *s, size_t n) {
  if (!s->tl || !s->tl->link) return;
  wr_mux_stream_consume(wr_link_mux(s->tl->link), s->sid, n);
  wr_link_flush(s->tl->link);
}

void tstream_fin(tstream *s) {
  if (s->waiting) {
    s->fin_asked = 1;
    return;
  }
  if (!s->tl || !s->tl->link) return;
  wr_mux_stream_close(wr_link_mux(s->tl->link), s->sid);
  wr_link_flush(s->tl->link);
}

void tstream_detach(tstream *s, int reset) {
  if (s->waiting) {
    tunnel *t = s->waiting;
    if (s->prev) s->prev->next = s->next;
    else t->waiters = s->next;
    if (s->next) s->next->prev = s->prev;
    s->prev = s->next = NULL;
    s->waiting = NULL;
    t->nwait--;
    s->b->nwaiting--;
    return;
  }
  if (!s->tl) return;
  tlink *tl = s->tl;
  if (tl->link) {
    wr_mux *m = wr_link_mux(tl->link);
    wr_mux_stream_set_user_data(m, s->sid, NULL);
    if (reset) wr_mux_stream_reset(m, s->sid, WR_MUX_RST_CANCEL);
    wr_link_flush(tl->link);
  }
  stream_unlink(s);
}

static int tl_on_data(wr_link *l, uint32_t sid, void *sud, uint8_t *buf,
                      size_t len, void *ud) {
  tlink *tl = ud;
  tstream *s = sud;
  if (!s || s->tl != tl) {
    wr_mux_stream_consume(wr_link_mux(l), sid, len);
    wr_link_buf_free(buf);
    return 0;
  }
  tl->b->ev.data(s, buf, len);
  return 0;
}

static int tl_on_fin(wr_link *l, uint32_t sid, void *sud, void *ud) {
  (void)l;
  (void)sid;
  tstream *s = sud;
  if (s && s->tl == ud) ((tlink *)ud)->b->ev.fin(s);
  return 0;
}

static int tl_on_close(wr_link *l, uint32_t sid, void *sud, int64_t code,
                       int by_peer, void *ud) {
  (void)l;
  (void)sid;
  tlink *tl = ud;
  tstream *s = sud;
  if (!s || s->tl != tl) return 0;
  /* Gone before the event, so nothing resets it again. */
  stream_unlink(s);
  tl->b->ev.closed(s, code, by_peer);
  return 0;
}

static int tl_on_writable(wr_link *l, uint32_t sid, void *sud, void *ud) {
  (void)l;
  (void)sid;
  tstream *s = sud;
  if (s && s->tl == ud) ((tlink *)ud)->b->ev.writable(s);
  return 0;
}

static int tl_on_open(wr_link *l, uint32_t sid, const uint8_t *meta,
                      size_t len, void *ud) {
  (void)meta;
  (void)len;
  (void)ud;
  /* Clients never open streams toward the node. */
  wr_mux_stream_reset(wr_link_mux(l), sid, WR_MUX_RST_REFUSED);
  return 0;
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
  if (session && memcmp(session, no_session, 16) != 0 &&
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

static void send_goaway(tlink *tl) {
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
