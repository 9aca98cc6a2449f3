/*
 * `warren http PORT`: the client side of a tunnel (see client.h).
 *
 * The client holds up to `links` links, each in a slot of its own, each
 * to a distinct node (pick.c chooses which, and when).  A slot's states:
 *
 *   IDLE        no link; its timer runs (back-off, or waiting for a node
 *               when every node is held by another slot)
 *   RESOLVING   waiting for the DNS answer of the node names (only when
 *               no address is known yet; later answers refresh the list
 *               in the background)
 *   CONNECTING  TCP connect to the chosen node
 *   UPGRADING   `Upgrade: warren/1` sent, waiting for 101
 *   LINKED      Noise handshake, then Hello + Bind sent
 *   BOUND       the node serves the name on this link
 *
 *   IDLE -timer-> CONNECTING -connected-> UPGRADING -101-> LINKED
 *   LINKED -Bound-> BOUND
 *   any but IDLE -failure/link closed-> IDLE (pick: FAILED, back-off)
 *   IDLE -no address yet, a name to resolve-> RESOLVING -answer-> IDLE
 *   BOUND/LINKED -GOAWAY-> IDLE, the link kept as the slot's `old`
 *
 * A node that says GOAWAY is draining: the slot keeps that link (`old`)
 * serving what it carries and connects to another node at once; once the
 * new link is bound, the old one ends when its last visitor stream does,
 * or OLD_LINGER_MS later (make before break: the name never loses this
 * slot's owner).  With no other node for the slot (one node given, or
 * every other one held by another slot) the draining link ends as soon
 * as it carries no visitor, so the node's drain need not wait for us;
 * the slot finds the node again when it is back.  Every slot binds the
 * same name with the same session,
 * so the route table makes each of their nodes an owner (docs/ROUTES.md,
 * "one session's bindings at several nodes all serve").
 *
 * Errors no retry can fix (wrong fleet key, name taken, bad token) are
 * fatal before the first bind (on_fatal); NAME_TAKEN while bound and
 * NAME_MOVED are fatal always.
 *
 * Each stream the node opens is one visitor connection, piped to the
 * local server (client_origin.c); reaching a node, from DNS to the
 * Upgrade, is client_dial.c's.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "client_int.h"
#include "warren/client.h"
#include "warren/identity.h"
#include "warren/control.h"
#include "warren/err.h"
#include "warren/link.h"
#include "warren/log.h"
#include "warren/pick.h"

void fatal(wr_client *c, const char *line) {
  if (c->fatal) return;
  c->fatal = 1;
  if (c->cfg.on_fatal) c->cfg.on_fatal(line, c->cfg.ud);
}

static uint64_t uniform(uint32_t bound) {
  return bound ? randombytes_uniform(bound) : 0;
}

static size_t links_bound(const wr_client *c) {
  size_t n = 0;
  for (int i = 0; i < c->nslots; i++) n += c->slots[i].state == SL_BOUND;
  return n;
}

/* Ends the draining link of |s| now. */
static void old_end(slot *s) {
  if (!s->old) return;
  WR_LOG_INFOF("client", "drained_link_closed", "node=%s", s->old_addr);
  wr_link_end(s->old, 0);
}

/* A visitor stream of link |l| ended: a draining link that carries no
 * more and whose slot is bound elsewhere (or has nowhere else to go)
 * goes now. */
void old_maybe_end(wr_client *c, wr_link *l) {
  for (int i = 0; i < c->nslots; i++) {
    slot *s = &c->slots[i];
    if (s->old != l || (s->state != SL_BOUND && !s->old_alone)) continue;
    for (origin *o = c->origins; o; o = o->next)
      if (o->link == l) return;
    old_end(s);
  }
}

/* The node of |s| drains (GOAWAY): keep its link as `old` and move. */
static void slot_drain(slot *s, wr_link *l, const char *reason) {
  wr_client *c = s->c;
  if (l != s->link) return; /* this link is already the old one */
  WR_LOG_INFOF("client", "node_draining", "node=%s reason=\"%s\"", s->addr,
               reason);
  if (s->old) {
    /* The replacement drains too while the first draining link still
     * serves: keep that one, and let the replacement go like a failed
     * attempt (its closed callback finds another node).  A slot holds
     * at most two links, so every link it made is one it can close. */
    s->drained = 1;
    wr_link_close(l, 0);
    return;
  }
  wr_pick_done(&c->pick, s->addr, WR_PICK_DRAINED, uv_now(c->loop));
  s->old = s->link;
  memcpy(s->old_addr, s->addr, sizeof s->addr);
  s->link = NULL;
  s->addr[0] = 0;
  uv_timer_stop(&s->timer);
  slot_next(s, 1);
  /* No other node for this slot (slot_next found none): holding the
   * draining link idle only made the node wait its whole move grace for
   * us (2 s) before it could stop.  Let it go once its visitors are
   * done; the slot's timer keeps looking, and the node itself comes back
   * into the choice after its drain hold-out (pick.c), so a restarted
   * node at the same address is found again, with back-off while it is
   * down. */
  s->old_alone = !s->addr[0];
  if (s->old_alone) {
    WR_LOG_INFOF("client", "no_other_node", "node=%s", s->old_addr);
    old_maybe_end(c, s->old);
  }
}

static void start_waiting_slots(wr_client *c) {
  for (int i = 0; i < c->nslots; i++)
    if (!c->slots[i].started) slot_next(&c->slots[i], 0);
}

static int on_control(wr_link *l, const uint8_t *msg, size_t len, void *ud) {
  slot *s = ud;
  wr_client *c = s->c;
  wr_control_msg m;
  if (wr_control_decode(msg, len, &m) != 0) {
    WR_LOG_WARNF("client", "bad_control", "node=%s len=%zu", s->addr, len);
    return WR_ERR_PROTO;
  }
  if (m.type == WR_CONTROL_BOUND) {
    if (l != s->link) return 0; /* a draining link's late answer */
    snprintf(c->name, sizeof c->name, "%s", m.u.bound.name);
    int first = !c->ever_bound;
    c->ever_bound = 1;
    s->state = SL_BOUND;
    wr_pick_done(&c->pick, s->addr, WR_PICK_BOUND, uv_now(c->loop));
    WR_LOG_INFOF("client", "bound", "name=%s url=%s node=%s links=%zu/%d "
                 "aead=%s", m.u.bound.name, m.u.bound.url, s->addr,
                 links_bound(c), c->nslots, wr_aead_name(wr_link_aead(l)));
    if (s->old) {
      /* The replacement serves: the draining link goes once idle. */
      old_maybe_end(c, s->old);
      if (s->old) uv_timer_start(&s->timer, on_slot_timer, OLD_LINGER_MS, 0);
    }
    if (c->cfg.on_bound)
      c->cfg.on_bound(m.u.bound.name, m.u.bound.url, first, c->cfg.ud);
    /* The other slots waited for the name the node picked. */
    if (first) start_waiting_slots(c);
    return 0;
  }
  if (m.type == WR_CONTROL_ERROR) {
    char line[600];
    wr_control_error_line(&m, line, sizeof line);
    uint32_t code = m.u.error.code;
    /* "did not accept the --token given" reads wrong when none was. */
    if (code == WR_CONTROL_ERR_BAD_TOKEN && !c->token[0])
      snprintf(line, sizeof line,
               "bad token: the node requires one; give it with --token");
    int permanent = code == WR_CONTROL_ERR_BAD_TOKEN ||
                    code == WR_CONTROL_ERR_BAD_NAME ||
                    code == WR_CONTROL_ERR_UNSUPPORTED_VERSION ||
                    code == WR_CONTROL_ERR_NAME_TAKEN ||
                    code == WR_CONTROL_ERR_NAME_MOVED;
    /* After a first bind, "name taken" in answer to a Bind usually means
     * the node still holds our previous, dead link: keep retrying until it
     * notices.  The same error while this link is bound is an eviction
     * (another account won the name in the route table): final.  "Name
     * moved" is final too: a newer client of our account serves the name,
     * and reconnecting would take it back from that one, which would then
     * take it back again, forever. */
    int transient = c->ever_bound && code == WR_CONTROL_ERR_NAME_TAKEN &&
                    s->state != SL_BOUND;
    s->ctl_error = 1;
    if (permanent && !transient) {
      char out[700];
      snprintf(out, sizeof out, "warren: %s", line);
      fatal(c, out); /* the one line the user sees; no log line too */
      return WR_ERR_AUTH;
    }
    if (code == WR_CONTROL_ERR_NODE_DRAINING) s->drained = 1;
    WR_LOG_WARNF("client", "node_error", "node=%s code=%u msg=\"%s\"",
                 s->addr, code, line);
    return WR_ERR_AUTH; /* close the link, and retry elsewhere */
  }
  if (m.type == WR_CONTROL_GOAWAY) {
    slot_drain(s, l, m.u.goaway.reason);
    return 0;
  }
  return 0;
}

static int on_goaway(wr_link *l, uint32_t code, void *ud) {
  char why[32];
  snprintf(why, sizeof why, "mux goaway %u", code);
  slot_drain(ud, l, why);
  return 0;
}

static int send_control(wr_link *l, const wr_control_msg *m) {
  uint8_t buf[WR_CONTROL_MAX_WIRE];
  wr_ssize n = wr_control_encode(m, buf, sizeof buf);
  if (n < 0) return (int)n;
  int rv = wr_mux_control(wr_link_mux(l), buf, (size_t)n);
  wr_link_flush(l);
  return rv;
}

static void on_ready(wr_link *l, void *ud) {
  slot *s = ud;
  wr_client *c = s->c;
  wr_control_msg m;
  memset(&m, 0, sizeof m);
  m.type = WR_CONTROL_HELLO;
  m.u.hello.protocol_version = WR_CONTROL_PROTOCOL_VERSION;
  snprintf(m.u.hello.token, sizeof m.u.hello.token, "%s", c->token);
  snprintf(m.u.hello.client_version, sizeof m.u.hello.client_version,
           "warren/%s", WARREN_VERSION);
  if (c->has_identity) {
    /* The proof signs this link's handshake hash: it is worthless on any
     * other link, so a node (or anyone who saw it) cannot replay it. */
    m.u.hello.has_identity = 1;
    memcpy(m.u.hello.identity_key, c->identity.pk, 32);
    wr_identity_sign(&c->identity, wr_link_handshake_hash(l),
                     m.u.hello.identity_proof);
  }
  int rv = send_control(l, &m);
  memset(&m, 0, sizeof m);
  m.type = WR_CONTROL_BIND;
  snprintf(m.u.bind.name, sizeof m.u.bind.name, "%s", c->name);
  memcpy(m.u.bind.session, c->session, sizeof m.u.bind.session);
  m.u.bind.options = c->cfg.options;
  if (rv == 0) rv = send_control(l, &m);
  if (rv != 0) wr_link_close(l, rv);
}

/* Every stream of |l| is gone: drop its local connections. */
static void drop_origins(wr_client *c, wr_link *l) {
  for (origin *o = c->origins; o; o = o->next) {
    if (o->link == l) {
      o->stream_gone = 1;
      o->link = NULL;
      origin_close(o);
    }
  }
}

static void on_link_closed(wr_link *l, int err, void *ud) {
  slot *s = ud;
  wr_client *c = s->c;
  drop_origins(c, l);
  if (l == s->old) {
    s->old = NULL;
    s->old_alone = 0;
    wr_pick_done(&c->pick, s->old_addr, WR_PICK_RELEASE, uv_now(c->loop));
    s->old_addr[0] = 0;
    maybe_finish_stop(c);
    return;
  }
  s->link = NULL;
  int was_bound = s->state == SL_BOUND;
  int ctl_error = s->ctl_error, drained = s->drained;
  s->ctl_error = s->drained = 0;
  s->state = SL_IDLE;
  if (c->stopping) {
    maybe_finish_stop(c);
    return;
  }
  if (c->fatal) return;
  char line[512];
  if (!c->ever_bound && !ctl_error &&
      (err == WR_ERR_AUTH || err == WR_ERR_DECRYPT)) {
    snprintf(line, sizeof line,
             "warren: handshake with %s failed: the node does not hold the "
             "fleet key you pinned (--fleet-key)",
             s->addr);
    fatal(c, line);
    return;
  }
  if (!c->ever_bound && err == WR_ERR_VERSION) {
    snprintf(line, sizeof line,
             "warren: handshake with %s failed: the node speaks another "
             "protocol version",
             s->addr);
    fatal(c, line);
    return;
  }
  if (err == WR_ERR_REPLAY)
    WR_LOG_WARNF("client", "link_closed",
                 "node=%s err=\"clock skew: the node rejected our "
                 "handshake timestamp; check this machine's clock\"",
                 s->addr);
  else
    WR_LOG_WARNF("client", "link_closed", "node=%s bound=%d err=\"%s\" "
                 "links=%zu/%d", s->addr, was_bound,
                 ctl_error ? "node's error" : wr_strerror(err),
                 links_bound(c), c->nslots);
  wr_pick_done(&c->pick, s->addr, drained ? WR_PICK_DRAINED : WR_PICK_FAILED,
               uv_now(c->loop));
  if (drained) wr_pick_done(&c->pick, s->addr, WR_PICK_RELEASE, 0);
  s->addr[0] = 0;
  c->resolve_stale = 1; /* the fleet may have changed under that node */
  slot_next(s, 1);
}

const wr_link_callbacks client_link_cb = {
    .ready = on_ready,
    .closed = on_link_closed,
    .stream_open = on_stream_open,
    .stream_data = on_stream_data,
    .stream_fin = on_stream_fin,
    .stream_close = on_stream_close,
    .stream_writable = on_stream_writable,
    .control = on_control,
    .goaway = on_goaway,
};

/* ---- slots ---- */

void on_slot_timer(uv_timer_t *t) {
  slot *s = t->data;
  wr_client *c = s->c;
  if (c->stopping || c->fatal) return;
  if (s->state == SL_BOUND) {
    old_end(s); /* OLD_LINGER_MS after the replacement bound */
    return;
  }
  if (s->state != SL_IDLE) return;
  if (s->addr[0]) try_connect(s);
  else slot_next(s, 0);
}

/*
 * |s| has no link: choose its next node and arm its timer.  |quick|: a
 * link was just lost, so wait a short random while first (see
 * QUICK_MIN_MS); the node's own back-off may make it longer.
 */
void slot_next(slot *s, int quick) {
  wr_client *c = s->c;
  if (c->stopping || c->fatal) return;
  s->started = 1;
  s->state = SL_IDLE;
  uint64_t now = uv_now(c->loop);
  if (c->nnames && c->resolve_stale &&
      now - c->resolved_at >= RESOLVE_MIN_GAP_MS)
    resolve_start(c);
  if (c->resolving && c->pick.n == 0) {
    /* Nothing to dial before the first answer. */
    s->state = SL_RESOLVING;
    return;
  }
  if (s->addr[0]) {
    /* Still holding a node (a drain raced a failure): let it go. */
    wr_pick_done(&c->pick, s->addr, WR_PICK_RELEASE, now);
    s->addr[0] = 0;
  }
  wr_tstamp at;
  if (wr_pick_choose(&c->pick, s->id, now, s->addr, &at) != 0) {
    s->addr[0] = 0;
    c->resolve_stale = 1;
    uv_timer_start(&s->timer, on_slot_timer, NO_NODE_RETRY_MS, 0);
    return;
  }
  uint64_t d = at > now ? at - now : 0;
  if (quick) {
    uint64_t q = QUICK_MIN_MS + uniform(QUICK_JITTER_MS + 1);
    if (d < q) d = q;
  }
  if (d > 0)
    WR_LOG_INFOF("client", "reconnect", "node=%s in_ms=%llu slot=%d",
                 s->addr, (unsigned long long)d, s->id);
  uv_timer_start(&s->timer, on_slot_timer, d, 0);
}

/* Splits the node list of the config into addresses and names. */
static int add_node(wr_client *c, const char *hp) {
  struct sockaddr_storage ss;
  if (wr_parse_hostport(hp, &ss) == 0) {
    if (strlen(hp) >= WR_PICK_ADDR_MAX || c->nlit == WR_PICK_MAX)
      return WR_ERR_INVAL;
    /* The canonical text, so "localhost:1" and "127.0.0.1:1" are one. */
    char ip[48];
    if (ss.ss_family == AF_INET) {
      uv_ip4_name((struct sockaddr_in *)&ss, ip, sizeof ip);
      snprintf(c->lit[c->nlit++], WR_PICK_ADDR_MAX, "%s:%u", ip,
               ntohs(((struct sockaddr_in *)&ss)->sin_port));
    } else {
      uv_ip6_name((struct sockaddr_in6 *)&ss, ip, sizeof ip);
      snprintf(c->lit[c->nlit++], WR_PICK_ADDR_MAX, "[%s]:%u", ip,
               ntohs(((struct sockaddr_in6 *)&ss)->sin6_port));
    }
    return 0;
  }
  if (strlen(hp) >= sizeof c->names[0] || c->nnames == NAMES_MAX)
    return WR_ERR_INVAL;
  snprintf(c->names[c->nnames++], sizeof c->names[0], "%s", hp);
  return 0;
}

int wr_client_start(wr_client **pc, uv_loop_t *loop,
                    const wr_client_config *cfg) {
  wr_client *c = calloc(1, sizeof *c);
  if (!c) return WR_ERR_NOMEM;
  c->loop = loop;
  c->cfg = *cfg;
  c->cfg.nodes = NULL; /* borrowed for the call only */
  wr_pick_init(&c->pick, wr_sodium_rand, NULL);
  int rv = 0;
  if (cfg->nnodes == 0) rv = cfg->node ? add_node(c, cfg->node) : WR_ERR_INVAL;
  for (size_t i = 0; rv == 0 && i < cfg->nnodes; i++)
    rv = add_node(c, cfg->nodes[i]);
  if (rv != 0) {
    free(c);
    return rv;
  }
  pick_refresh(c);
  c->resolve_stale = c->nnames > 0;
  size_t most = c->nlit + (c->nnames ? WR_PICK_MAX : 0);
  int links = cfg->links > 0 ? cfg->links : 1;
  if (links > WR_CLIENT_LINKS_MAX) links = WR_CLIENT_LINKS_MAX;
  if ((size_t)links > most) links = (int)most;
  c->slots = calloc((size_t)links, sizeof *c->slots);
  if (!c->slots) {
    free(c);
    return WR_ERR_NOMEM;
  }
  c->nslots = links;
  snprintf(c->token, sizeof c->token, "%s", cfg->token ? cfg->token : "");
  snprintf(c->name, sizeof c->name, "%s", cfg->name ? cfg->name : "");
  snprintf(c->local_host, sizeof c->local_host, "%s",
           cfg->local_host ? cfg->local_host : "127.0.0.1");
  /* One session per client, sent unchanged on every link and reconnect,
   * so the route table tells our own links (same session: co-owners) and
   * our comeback from another client of the account (a move).  All zero
   * in the config: draw one. */
  memcpy(c->session, cfg->session, sizeof c->session);
  if (sodium_is_zero(c->session, sizeof c->session))
    randombytes_buf(c->session, sizeof c->session);
  if (cfg->identity) {
    c->identity = *cfg->identity;
    c->has_identity = 1;
  }
  for (int i = 0; i < c->nslots; i++) {
    slot *s = &c->slots[i];
    s->c = c;
    s->id = i;
    uv_timer_init(loop, &s->timer);
    s->timer.data = s;
  }
  /* Without a name, the first link's node picks one and the other slots
   * bind it once known (start_waiting_slots). */
  for (int i = 0; i < (c->name[0] ? c->nslots : 1); i++)
    slot_next(&c->slots[i], 0);
  *pc = c;
  return 0;
}

static void timer_closed(uv_handle_t *h) {
  slot *s = h->data;
  s->timer_closed = 1;
  maybe_finish_stop(s->c);
}

void maybe_finish_stop(wr_client *c) {
  if (!c->stopping || c->origins || c->resolving || c->ntcp_closing) return;
  for (int i = 0; i < c->nslots; i++) {
    slot *s = &c->slots[i];
    if (!s->timer_closed || s->link || s->old || s->tcp) return;
  }
  void (*done)(void *) = c->done;
  void *ud = c->done_ud;
  sodium_memzero(&c->identity, sizeof c->identity);
  free(c->slots);
  free(c);
  if (done) done(ud);
}

void wr_client_stop(wr_client *c, void (*done)(void *ud), void *ud) {
  if (c->stopping) return;
  c->stopping = 1;
  c->done = done;
  c->done_ud = ud;
  if (c->resolving) uv_cancel((uv_req_t *)&c->gai);
  for (int i = 0; i < c->nslots; i++) {
    slot *s = &c->slots[i];
    uv_close((uv_handle_t *)&s->timer, timer_closed);
    if (s->tcp) {
      uv_tcp_t *t = s->tcp;
      s->tcp = NULL;
      t->data = c;
      c->ntcp_closing++;
      uv_close((uv_handle_t *)t, tcp_closed_free);
    }
    if (s->link) wr_link_close(s->link, 0);
    if (s->old) wr_link_close(s->old, 0);
  }
  for (origin *o = c->origins; o; o = o->next) origin_close(o);
}
