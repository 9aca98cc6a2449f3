/*
 * The tunnel control server (bindings_int.h): a client link's control
 * messages.  Hello (protocol version, token or identity proof, the
 * account from the authorize hook), Bind (the bind_check hook, then the
 * table), the Errors that answer them; and slowing down a source address
 * that keeps failing authentication (FAIL_FREE, FAIL_DELAY_*), with its
 * failures counted and its log lines folded.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bindings_int.h"
#include "warren/err.h"
#include "warren/identity.h"
#include "warren/log.h"
#include "warren/names.h"

int send_control(tlink *tl, const wr_control_msg *m) {
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

void send_error(tlink *tl, uint32_t code, const char *name, const char *msg) {
  wr_control_msg m;
  memset(&m, 0, sizeof m);
  m.type = WR_CONTROL_ERROR;
  m.u.error.code = code;
  snprintf(m.u.error.name, sizeof m.u.error.name, "%s", name ? name : "");
  snprintf(m.u.error.message, sizeof m.u.error.message, "%s", msg ? msg : "");
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
  WR_LOG_INFOF("ingress", "bind_refused", "peer=%s name=%s why=%s", tl->peer,
               name, why);
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
  if (t && t->tl && memcmp(tl->session, bindings_no_session, 16) != 0 &&
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
                   sizeof acct) != 0 ||
      !acct[0])
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

void held_unlink(tlink *tl) {
  bindings *b = tl->b;
  if (tl->hprev)
    tl->hprev->hnext = tl->hnext;
  else if (b->held == tl)
    b->held = tl->hnext;
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
    uint64_t d = k >= 6 ? FAIL_DELAY_MAX_MS : (uint64_t)FAIL_DELAY_BASE_MS << k;
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

int tl_on_control(wr_link *l, const uint8_t *msg, size_t len, void *ud) {
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
