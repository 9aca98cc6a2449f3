/*
 * Fault injection in the node (see faults.h and docs/FAULTS.md): the
 * sans-IO fault model behind two taps and six admin routes.
 *
 * Datagrams.  swim_uv shows every gossip datagram to swim_tap before it
 * is sent or handed to the core.  When no rule covers a gossip kind the
 * tap returns at once (one scan of the rules); otherwise it asks the
 * core what the datagram is (wr_swim_packet_peek: one AEAD open) and who
 * the peer is (the sender's id is in the packet; a destination is looked
 * up among the members by gossip address), and acts on the verdict:
 *
 *   drop          the datagram is gone (counted by the model)
 *   delay d       a copy waits in the held queue, at most HELD_MAX
 *                 datagrams and HELD_BYTES_MAX bytes (beyond, dropped and
 *                 counted: a bounded hold, never a growing one), and goes
 *                 back through wr_swim_uv_inject when the timer fires
 *   duplicate     one copy passes now (or after d), a second after d too;
 *                 held copies are released in (time, arrival) order, so a
 *                 duplicate follows its original
 *
 * Streams (sync, node links, tunnels) are TCP: they are never duplicated
 * and a lost segment is retransmitted, so what a lossy path does to them
 * is stall and, at worst, break.  A chunk the verdict drops cuts the
 * connection (a partition cuts every connection at its next byte); a
 * delay holds the chunk in its adapter (swim_uv_sync.c for sync, the link
 * adapter for node links and tunnels); duplication applies to datagrams
 * only.  docs/FAULTS.md says so.
 *
 * Pause.  POST /faults/pause answers first (the response is written
 * before the handler's turn ends, see below), then a zero-delay timer
 * puts the loop thread to sleep for the whole pause: no datagram is read,
 * no timer fires, nothing is written, as in a GC pause or SIGSTOP.  The
 * kernel keeps queueing what arrives, bounded by the socket buffers.
 */
#include "faults.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

#include "warren/err.h"
#include "warren/fault.h"
#include "warren/link.h"
#include "warren/log.h"

/* Datagrams held at once: a second of gossip for a large fleet under a
 * 1 s delay rule (a node sends tens of datagrams a second to a 1000-node
 * fleet, and receives as many). */
#define HELD_MAX 4096
/* ... and their bytes: 4096 full datagrams are 5.9 MB; 8 MiB is that with
 * room, and a bound a node can afford to hold for a test. */
#define HELD_BYTES_MAX (8u << 20)

typedef struct held {
  uint64_t at, seq;
  int out;
  wr_addr peer;
  size_t len;
  uint8_t data[];
} held;

enum { MK_DROPPED, MK_DELAYED, MK_DUPLICATED, MK_ACTIONS };

static struct {
  int started, enabled;
  uv_loop_t *loop;
  wr_swim_uv *swim;
  wr_fault *f;
  char self[WR_SWIM_ID_MAX + 1];
  /* The held queue: a binary min-heap on (at, seq). */
  held **heap;
  size_t nheld, held_bytes;
  uint64_t seq;
  uv_timer_t timer;
  uv_timer_t pause_timer;
  int timers_open;
  uint64_t pause_ms;      /* the pause the pause timer will run */
  /* Counters beyond the model's. */
  uint64_t held_overflow, pauses, paused_ms, api_rejected;
  /* Metrics (the registry is the admin server's; see collect). */
  uint64_t *m_kind[MK_ACTIONS][WR_FAULT_KINDS];
  uint64_t *m_rejected, *m_changes, *m_pauses, *m_overflow;
  int64_t *g_rules, *g_held, *g_enabled;
} nf;

static uint64_t now_ms(void) { return uv_now(nf.loop); }

/* ---- the held queue ----------------------------------------------------- */

static int held_before(const held *a, const held *b) {
  return a->at < b->at || (a->at == b->at && a->seq < b->seq);
}

static void heap_up(size_t i) {
  while (i > 0) {
    size_t p = (i - 1) / 2;
    if (!held_before(nf.heap[i], nf.heap[p])) break;
    held *t = nf.heap[i];
    nf.heap[i] = nf.heap[p];
    nf.heap[p] = t;
    i = p;
  }
}

static void heap_down(size_t i) {
  for (;;) {
    size_t l = 2 * i + 1, r = l + 1, m = i;
    if (l < nf.nheld && held_before(nf.heap[l], nf.heap[m])) m = l;
    if (r < nf.nheld && held_before(nf.heap[r], nf.heap[m])) m = r;
    if (m == i) return;
    held *t = nf.heap[i];
    nf.heap[i] = nf.heap[m];
    nf.heap[m] = t;
    i = m;
  }
}

static void on_held_timer(uv_timer_t *t);

static void arm_held_timer(void) {
  if (nf.nheld == 0) {
    uv_timer_stop(&nf.timer);
    return;
  }
  uint64_t now = now_ms(), at = nf.heap[0]->at;
  uv_timer_start(&nf.timer, on_held_timer, at > now ? at - now : 0, 0);
}

/* Holds a copy of a datagram for |delay| ms; 0, or -1 when the queue is
 * full (the datagram is then lost: counted). */
static int hold(int out, const wr_addr *peer, const uint8_t *data, size_t len,
                uint64_t delay) {
  if (nf.nheld >= HELD_MAX || nf.held_bytes + len > HELD_BYTES_MAX) {
    nf.held_overflow++;
    return -1;
  }
  held *h = malloc(sizeof *h + len);
  if (!h) {
    nf.held_overflow++;
    return -1;
  }
  h->at = now_ms() + delay;
  h->seq = nf.seq++;
  h->out = out;
  h->peer = *peer;
  h->len = len;
  memcpy(h->data, data, len);
  nf.heap[nf.nheld++] = h;
  nf.held_bytes += len;
  heap_up(nf.nheld - 1);
  arm_held_timer();
  return 0;
}

static held *pop_held(void) {
  held *h = nf.heap[0];
  nf.heap[0] = nf.heap[--nf.nheld];
  if (nf.nheld) heap_down(0);
  nf.held_bytes -= h->len;
  return h;
}

static void on_held_timer(uv_timer_t *t) {
  (void)t;
  uint64_t now = now_ms();
  /* Bounded by the queue: at most HELD_MAX datagrams per turn. */
  while (nf.nheld && nf.heap[0]->at <= now) {
    held *h = pop_held();
    if (nf.swim) wr_swim_uv_inject(nf.swim, h->out, &h->peer, h->data, h->len);
    free(h);
  }
  arm_held_timer();
}

static void free_held(void) {
  while (nf.nheld) free(pop_held());
}

/* ---- who is the peer? --------------------------------------------------- */

static int same_ip(const wr_addr *a, const wr_addr *b) {
  if (a->family != b->family) return 0;
  return memcmp(a->ip, b->ip, a->family == 6 ? 16 : 4) == 0;
}

/* Candidate member ids for one peer (wr_fault_peer): at most this many
 * members at one IP are told apart by name; beyond, the rest match by
 * "ip:" entries only. */
#define PEER_IDS_MAX 16

typedef struct peer_ids {
  char buf[PEER_IDS_MAX][WR_SWIM_ID_MAX + 1];
  const char *ids[PEER_IDS_MAX];
  wr_fault_peer p;
} peer_ids;

static void peer_init(peer_ids *pi, const wr_addr *a) {
  memset(&pi->p, 0, sizeof pi->p);
  pi->p.ids = pi->ids;
  if (a) pi->p.addr = *a;
}

static void peer_add(peer_ids *pi, const char *id) {
  if (pi->p.nids == PEER_IDS_MAX) return;
  snprintf(pi->buf[pi->p.nids], sizeof pi->buf[0], "%s", id);
  pi->ids[pi->p.nids] = pi->buf[pi->p.nids];
  pi->p.nids++;
}

/*
 * The members at address |a| (|data|: their data address, else their
 * gossip address).  The one whose address is |a| exactly when there is
 * one: a datagram's destination, a sync or node link we dialled (its
 * port is the member's).  Else every member at |a|'s IP: an accepted
 * connection comes from an ephemeral port, so with members sharing an IP
 * (several nodes on one host, all on 127.0.0.1) it may be any of them,
 * and a rule naming one of them matches (docs/FAULTS.md).  A scan of the
 * member list: fault injection is a test tool, and the scan runs only for
 * messages some rule covers.
 */
static void ids_at(const wr_addr *a, int data, peer_ids *pi) {
  if (!nf.swim || !a->family) return;
  wr_swim *sw = wr_swim_uv_core(nf.swim);
  size_t n = wr_swim_member_count(sw);
  wr_swim_member_info m;
  for (size_t i = 0; i < n; i++)
    if (wr_swim_member_at(sw, i, &m) == 0 &&
        wr_addr_eq(data ? &m.data : &m.gossip, a)) {
      peer_add(pi, m.id);
      return;
    }
  for (size_t i = 0; i < n; i++)
    if (wr_swim_member_at(sw, i, &m) == 0 &&
        same_ip(data ? &m.data : &m.gossip, a))
      peer_add(pi, m.id);
}

/* A link's peer ("IP:PORT" or "[IP]:PORT", as links name it) as an
 * address; family 0 when it does not parse. */
static void link_addr(const char *peer, wr_addr *a) {
  memset(a, 0, sizeof *a);
  if (!peer) return;
  const char *colon = strrchr(peer, ':');
  if (!colon) return;
  const char *ip = peer;
  size_t n = (size_t)(colon - peer);
  if (n >= 2 && ip[0] == '[' && ip[n - 1] == ']') {
    ip++;
    n -= 2;
  }
  char host[64];
  if (n == 0 || n >= sizeof host) return;
  memcpy(host, ip, n);
  host[n] = 0;
  char *end;
  unsigned long port = strtoul(colon + 1, &end, 10);
  if (*end || port > 65535) return;
  if (uv_inet_pton(AF_INET, host, a->ip) == 0) a->family = 4;
  else if (uv_inet_pton(AF_INET6, host, a->ip) == 0) a->family = 6;
  else return;
  a->port = (uint16_t)port;
}

/* ---- taps --------------------------------------------------------------- */

#define GOSSIP_KINDS                                                         \
  (WR_FAULT_KIND_BIT(WR_FAULT_PROBE) | WR_FAULT_KIND_BIT(WR_FAULT_ACK) |     \
   WR_FAULT_KIND_BIT(WR_FAULT_PING_REQ) |                                    \
   WR_FAULT_KIND_BIT(WR_FAULT_BROADCAST))

static int swim_tap(wr_swim_uv *u, int out, int sync, const wr_addr *peer,
                    const uint8_t *data, size_t len, uint32_t *delay_ms,
                    void *ud) {
  (void)ud;
  if (!nf.f) return 0;
  peer_ids pi;
  peer_init(&pi, peer);
  wr_fault_kind kind = WR_FAULT_SYNC;
  if (sync) {
    if (!wr_fault_covers(nf.f, WR_FAULT_KIND_BIT(WR_FAULT_SYNC))) return 0;
    ids_at(peer, 0, &pi);
  } else {
    if (!wr_fault_covers(nf.f, GOSSIP_KINDS)) return 0;
    char from[WR_SWIM_ID_MAX + 1];
    int type = wr_swim_packet_peek(wr_swim_uv_core(u), data, len,
                                   out ? NULL : from);
    if (type < 0) return 0; /* not ours to judge: the core counts it */
    kind = wr_fault_swim_kind(type);
    /* A datagram names its sender; a destination is the member at that
     * gossip address. */
    if (out) ids_at(peer, 0, &pi);
    else if (from[0]) peer_add(&pi, from);
  }
  wr_fault_verdict v;
  wr_fault_decide_peer(nf.f, kind, &pi.p, out ? WR_FAULT_OUT : WR_FAULT_IN,
                       now_ms(), &v);
  if (v.drop) return 1;
  if (sync) {
    /* A stream is delayed in its adapter (held chunk by chunk), never
     * duplicated (TCP does not). */
    if (delay_ms) *delay_ms = v.delay_ms;
    return 0;
  }
  if (v.delay_ms == 0 && v.copies == 1) return 0;
  /* The duplicate, after the delay (0: the next loop turn). */
  if (v.copies == 2) (void)hold(out, peer, data, len, v.delay_ms);
  if (v.delay_ms == 0) return 0;
  (void)hold(out, peer, data, len, v.delay_ms);
  return 1;
}

static int link_tap(const wr_link *l, int nodelink, int out, size_t len,
                    uint32_t *delay_ms, void *ud) {
  (void)ud;
  (void)len;
  wr_fault_kind kind = nodelink ? WR_FAULT_NODELINK : WR_FAULT_TUNNEL;
  if (!nf.f || !wr_fault_covers(nf.f, WR_FAULT_KIND_BIT(kind))) return 0;
  wr_addr a;
  link_addr(wr_link_peer(l), &a);
  peer_ids pi;
  peer_init(&pi, &a);
  /* A tunnel's peer is a client, never a member: it matches peer-less
   * rules and "ip:" entries only. */
  if (nodelink) ids_at(&a, 1, &pi);
  wr_fault_verdict v;
  wr_fault_decide_peer(nf.f, kind, &pi.p, out ? WR_FAULT_OUT : WR_FAULT_IN,
                       now_ms(), &v);
  if (v.drop) return 1;
  *delay_ms = v.delay_ms; /* the link holds the chunk (link.h) */
  return 0;
}

/* ---- pause -------------------------------------------------------------- */

/* Sleeps |ms| on the loop thread, whatever signals interrupt it. */
static void stall(uint64_t ms) {
  struct timespec end, now;
  clock_gettime(CLOCK_MONOTONIC, &end);
  end.tv_sec += (time_t)(ms / 1000);
  end.tv_nsec += (long)(ms % 1000) * 1000000L;
  if (end.tv_nsec >= 1000000000L) {
    end.tv_sec++;
    end.tv_nsec -= 1000000000L;
  }
  /* Bounded: each turn sleeps the time left, and an interruption only
   * shortens one turn. */
  for (int i = 0; i < 100000; i++) {
    clock_gettime(CLOCK_MONOTONIC, &now);
    if (now.tv_sec > end.tv_sec ||
        (now.tv_sec == end.tv_sec && now.tv_nsec >= end.tv_nsec))
      return;
    if (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &end, NULL) == 0)
      return;
  }
}

static void on_pause_timer(uv_timer_t *t) {
  (void)t;
  uint64_t ms = nf.pause_ms;
  nf.pause_ms = 0;
  if (!ms) return;
  WR_LOG_INFOF("fault", "pause_start", "ms=%llu", (unsigned long long)ms);
  stall(ms);
  /* libuv's clock is read once per loop turn: bring it up to date, so
   * the timers that are now late fire at once. */
  uv_update_time(nf.loop);
  nf.pauses++;
  nf.paused_ms += ms;
  WR_LOG_INFOF("fault", "pause_end", "ms=%llu", (unsigned long long)ms);
}

/* ---- logging ------------------------------------------------------------ */

/* One key=value line per rule change (peers and kinds comma-separated). */
static void log_rule(const char *event, const wr_fault_rule *r) {
  char kinds[96] = "", peers[WR_FAULT_MAX_PEERS * (WR_FAULT_PEER_MAX + 1)] = "";
  size_t n = 0;
  if (r->kinds == WR_FAULT_KIND_ALL) {
    snprintf(kinds, sizeof kinds, "all");
  } else {
    for (int k = 0; k < WR_FAULT_KINDS; k++)
      if (r->kinds & WR_FAULT_KIND_BIT(k))
        n += (size_t)snprintf(kinds + n, sizeof kinds - n, "%s%s",
                              n ? "," : "", wr_fault_kind_name(k));
  }
  n = 0;
  for (size_t i = 0; i < r->npeers && n < sizeof peers; i++)
    n += (size_t)snprintf(peers + n, sizeof peers - n, "%s%s", i ? "," : "",
                          r->peers[i]);
  WR_LOG_INFOF("fault", event,
               "id=%u kinds=%s dir=%s peers=%s drop=%g delay_ms=%u "
               "jitter_ms=%u dup=%g after_ms=%llu for_ms=%llu",
               (unsigned)r->id, kinds, wr_fault_dir_name(r->dir),
               r->npeers ? peers : "*", r->drop, (unsigned)r->delay_ms,
               (unsigned)r->jitter_ms, r->dup,
               (unsigned long long)r->after_ms, (unsigned long long)r->for_ms);
}

/* ---- admin routes ------------------------------------------------------- */

static int off(wr_admin_resp *resp) {
  return wr_admin_resp_error(resp, 403,
                             "fault injection is off on this node: start it "
                             "with --faults (or faults = on in its config)");
}

/* A refused rule: 400 with the parser's reason, counted. */
static int refuse(wr_admin_resp *resp, const char *why) {
  char msg[320];
  nf.api_rejected++;
  WR_LOG_WARNF("fault", "rule_refused", "err=\"%s\"", why);
  snprintf(msg, sizeof msg, "bad fault rule: %s", why);
  return wr_admin_resp_error(resp, 400, msg);
}

static json_t *counters_json(void) {
  wr_fault_stats st;
  wr_fault_get_stats(nf.f, &st);
  json_t *o = json_object();
  if (!o) return NULL;
  for (int k = 0; k < WR_FAULT_KINDS; k++) {
    json_t *c = json_pack("{s:I, s:I, s:I, s:I}", "matched",
                          (json_int_t)st.matched[k], "dropped",
                          (json_int_t)st.dropped[k], "delayed",
                          (json_int_t)st.delayed[k], "duplicated",
                          (json_int_t)st.duplicated[k]);
    if (!c || json_object_set_new(o, wr_fault_kind_name(k), c) != 0) {
      json_decref(o);
      return NULL;
    }
  }
  return o;
}

/* GET /faults: the rule set (seed and rules, loadable as is by PUT, the
 * reload file and warren-sim --faults) plus counters. */
static int h_get(const wr_admin_req *req, wr_admin_resp *resp, void *ud) {
  (void)req;
  (void)ud;
  if (!nf.enabled) return off(resp);
  json_t *o = wr_fault_to_json(nf.f, now_ms());
  json_t *c = counters_json();
  wr_fault_stats st;
  wr_fault_get_stats(nf.f, &st);
  if (!o || !c ||
      json_object_set_new(o, "enabled", json_true()) != 0 ||
      json_object_set_new(o, "counters", c) != 0 ||
      json_object_set_new(o, "held", json_integer((json_int_t)nf.nheld)) ||
      json_object_set_new(o, "held_overflow",
                          json_integer((json_int_t)nf.held_overflow)) ||
      json_object_set_new(o, "rejected",
                          json_integer((json_int_t)(st.rejected +
                                                    nf.api_rejected))) ||
      json_object_set_new(o, "pauses", json_integer((json_int_t)nf.pauses)) ||
      json_object_set_new(o, "paused_ms",
                          json_integer((json_int_t)nf.paused_ms))) {
    if (!o) json_decref(c);
    json_decref(o);
    return WR_ERR_NOMEM;
  }
  return wr_admin_resp_json(resp, o);
}

/* POST /faults: one rule; answers it with its id. */
static int h_add(const wr_admin_req *req, wr_admin_resp *resp, void *ud) {
  (void)ud;
  if (!nf.enabled) return off(resp);
  wr_fault_rule r;
  char err[240];
  if (wr_fault_rule_parse((const char *)req->body, req->body_len, &r, err,
                          sizeof err) != 0)
    return refuse(resp, err);
  uint32_t id;
  int rv = wr_fault_add(nf.f, &r, now_ms(), &id);
  if (rv == WR_ERR_LIMIT) {
    snprintf(err, sizeof err, "at most %d rules at once (DELETE /faults to "
             "clear)", WR_FAULT_MAX_RULES);
    nf.api_rejected++;
    return wr_admin_resp_error(resp, 409, err);
  }
  if (rv != 0) return refuse(resp, wr_strerror(rv));
  const wr_fault_rule *added = wr_fault_rule_at(nf.f, wr_fault_count(nf.f) - 1);
  log_rule("rule_added", added);
  json_t *o = wr_fault_rule_json(added, now_ms());
  if (!o) return WR_ERR_NOMEM;
  return wr_admin_resp_json(resp, o);
}

/* PUT /faults: the whole set, {"seed":N,"rules":[...]}, all or nothing. */
static int h_put(const wr_admin_req *req, wr_admin_resp *resp, void *ud) {
  (void)ud;
  if (!nf.enabled) return off(resp);
  char err[240];
  if (wr_fault_load(nf.f, (const char *)req->body, req->body_len, now_ms(),
                    err, sizeof err) != 0)
    return refuse(resp, err);
  WR_LOG_INFOF("fault", "rules_replaced", "rules=%zu seed=%llu",
               wr_fault_count(nf.f), (unsigned long long)wr_fault_seed(nf.f));
  for (size_t i = 0; i < wr_fault_count(nf.f); i++)
    log_rule("rule_added", wr_fault_rule_at(nf.f, i));
  json_t *o = wr_fault_to_json(nf.f, now_ms());
  if (!o) return WR_ERR_NOMEM;
  return wr_admin_resp_json(resp, o);
}

/* DELETE /faults: every rule. */
static int h_clear(const wr_admin_req *req, wr_admin_resp *resp, void *ud) {
  (void)req;
  (void)ud;
  if (!nf.enabled) return off(resp);
  size_t n = wr_fault_clear(nf.f);
  WR_LOG_INFOF("fault", "rules_cleared", "rules=%zu", n);
  return wr_admin_resp_json(resp, json_pack("{s:I}", "cleared",
                                            (json_int_t)n));
}

/* DELETE /faults/ID */
static int h_delete(const wr_admin_req *req, wr_admin_resp *resp, void *ud) {
  (void)ud;
  if (!nf.enabled) return off(resp);
  const char *s = req->path + strlen("/faults/");
  char *end;
  errno = 0;
  unsigned long id = strtoul(s, &end, 10);
  if (!*s || *end || errno || s[0] == '-' || s[0] == '+' || id == 0 ||
      id > UINT32_MAX)
    return wr_admin_resp_error(resp, 400, "DELETE /faults/ID wants a rule "
                                          "id (a positive number)");
  if (wr_fault_remove(nf.f, (uint32_t)id) != 0) {
    char msg[80];
    snprintf(msg, sizeof msg, "no fault rule %lu", id);
    return wr_admin_resp_error(resp, 404, msg);
  }
  WR_LOG_INFOF("fault", "rule_removed", "id=%lu rules=%zu", id,
               wr_fault_count(nf.f));
  return wr_admin_resp_json(resp, json_pack("{s:I}", "deleted",
                                            (json_int_t)id));
}

/* POST /faults/pause {"ms":N} */
static int h_pause(const wr_admin_req *req, wr_admin_resp *resp, void *ud) {
  (void)ud;
  if (!nf.enabled) return off(resp);
  json_error_t je;
  json_t *doc = req->body_len
                    ? json_loadb((const char *)req->body, req->body_len,
                                 JSON_REJECT_DUPLICATES, &je)
                    : NULL;
  json_t *ms = json_is_object(doc) && json_object_size(doc) == 1
                   ? json_object_get(doc, "ms")
                   : NULL;
  json_int_t v = json_is_integer(ms) ? json_integer_value(ms) : -1;
  json_decref(doc);
  if (v < 1 || v > WR_FAULT_PAUSE_MAX_MS) {
    char msg[120];
    snprintf(msg, sizeof msg, "pause wants {\"ms\":N} with N from 1 to %d",
             WR_FAULT_PAUSE_MAX_MS);
    nf.api_rejected++;
    return wr_admin_resp_error(resp, 400, msg);
  }
  /* A second request before the first ran: the longer one wins (one
   * stall, not two back to back). */
  if ((uint64_t)v > nf.pause_ms) nf.pause_ms = (uint64_t)v;
  /* The response is written by the admin server right after this
   * handler returns (libuv tries the write at once); the zero-delay
   * timer stalls the loop in its next turn, after that. */
  uv_timer_start(&nf.pause_timer, on_pause_timer, 0, 0);
  return wr_admin_resp_json(resp, json_pack("{s:I}", "paused_ms",
                                             (json_int_t)v));
}

/* ---- metrics ------------------------------------------------------------ */

static void collect(void *ud) {
  (void)ud;
  if (!nf.f) return; /* stopped: the last values stay */
  wr_fault_stats st;
  wr_fault_get_stats(nf.f, &st);
  for (int k = 0; k < WR_FAULT_KINDS; k++) {
    *nf.m_kind[MK_DROPPED][k] = st.dropped[k];
    *nf.m_kind[MK_DELAYED][k] = st.delayed[k];
    *nf.m_kind[MK_DUPLICATED][k] = st.duplicated[k];
  }
  *nf.m_rejected = st.rejected + nf.api_rejected;
  *nf.m_changes = st.changes;
  *nf.m_pauses = nf.pauses;
  *nf.m_overflow = nf.held_overflow;
  *nf.g_rules = (int64_t)wr_fault_count(nf.f);
  *nf.g_held = (int64_t)nf.nheld;
  *nf.g_enabled = nf.enabled;
}

static void register_metrics(wr_metrics *m) {
  static const char *const names[MK_ACTIONS] = {
      "warren_fault_dropped_total", "warren_fault_delayed_total",
      "warren_fault_duplicated_total"};
  static const char *const helps[MK_ACTIONS] = {
      "Messages fault injection dropped (a stream chunk: the connection "
      "was cut), per kind.",
      "Datagrams fault injection held back, per kind.",
      "Datagrams fault injection sent or delivered twice, per kind."};
  for (int a = 0; a < MK_ACTIONS; a++)
    for (int k = 0; k < WR_FAULT_KINDS; k++)
      wr_metrics_counter(m, names[a], "kind",
                         wr_fault_kind_name((wr_fault_kind)k),
                         k == 0 ? helps[a] : NULL, &nf.m_kind[a][k]);
  wr_metrics_counter(m, "warren_fault_rejected_total", NULL, NULL,
                     "Fault rules refused (bad JSON, limits), from the API "
                     "or a file.", &nf.m_rejected);
  wr_metrics_counter(m, "warren_fault_changes_total", NULL, NULL,
                     "Fault rule set changes (add, remove, clear, load).",
                     &nf.m_changes);
  wr_metrics_counter(m, "warren_fault_pauses_total", NULL, NULL,
                     "Pauses run (POST /faults/pause).", &nf.m_pauses);
  wr_metrics_counter(m, "warren_fault_held_overflow_total", NULL, NULL,
                     "Delayed datagrams lost because the held queue was "
                     "full.", &nf.m_overflow);
  wr_metrics_gauge(m, "warren_fault_rules", NULL, NULL,
                   "Fault rules installed.", &nf.g_rules);
  wr_metrics_gauge(m, "warren_fault_held", NULL, NULL,
                   "Datagrams held back by delay rules now.", &nf.g_held);
  wr_metrics_gauge(m, "warren_fault_enabled", NULL, NULL,
                   "1 when fault injection is on (--faults).",
                   &nf.g_enabled);
  wr_metrics_on_collect(m, collect, NULL);
}

/* ---- lifetime ----------------------------------------------------------- */

int wr_node_faults_reload(const char *path, char *err, size_t errlen) {
  if (!nf.enabled) {
    snprintf(err, errlen, "fault injection is off (--faults)");
    return WR_ERR_INVAL;
  }
  FILE *fp = fopen(path, "r");
  if (!fp) {
    snprintf(err, errlen, "cannot read %s: %s", path, strerror(errno));
    WR_LOG_ERRORF("fault", "reload_failed", "file=%s err=\"%s\" kept=old",
                  path, err);
    return WR_ERR_IO;
  }
  char *buf = malloc(WR_FAULT_JSON_MAX + 1);
  size_t n = buf ? fread(buf, 1, WR_FAULT_JSON_MAX + 1, fp) : 0;
  fclose(fp);
  if (!buf) {
    snprintf(err, errlen, "out of memory");
    return WR_ERR_NOMEM;
  }
  char why[240];
  int rv = wr_fault_load(nf.f, buf, n, now_ms(), why, sizeof why);
  free(buf);
  if (rv != 0) {
    snprintf(err, errlen, "%s: %s", path, why);
    WR_LOG_ERRORF("fault", "reload_failed", "file=%s err=\"%s\" kept=old",
                  path, why);
    return rv;
  }
  WR_LOG_INFOF("fault", "reload", "file=%s rules=%zu seed=%llu", path,
               wr_fault_count(nf.f), (unsigned long long)wr_fault_seed(nf.f));
  for (size_t i = 0; i < wr_fault_count(nf.f); i++)
    log_rule("rule_added", wr_fault_rule_at(nf.f, i));
  return 0;
}

int wr_node_faults_start(uv_loop_t *loop, wr_admin *admin, wr_swim_uv *swim,
                         const char *self, int enabled, const char *file) {
  memset(&nf, 0, sizeof nf);
  nf.loop = loop;
  snprintf(nf.self, sizeof nf.self, "%.*s", WR_SWIM_ID_MAX, self);
  if (file && *file && !enabled) {
    fprintf(stderr, "warren: --faults-file needs --faults (fault injection "
                    "is off)\n");
    return WR_ERR_INVAL;
  }
  /* A seed a person can type back: 9 digits. */
  uint64_t seed = randombytes_uniform(1000000000u);
  int rv = wr_fault_new(&nf.f, seed, 0, NULL);
  if (rv != 0) {
    fprintf(stderr, "warren: fault injection: %s\n", wr_strerror(rv));
    return rv;
  }
  nf.heap = calloc(HELD_MAX, sizeof *nf.heap);
  if (!nf.heap) {
    wr_fault_del(nf.f);
    nf.f = NULL;
    fprintf(stderr, "warren: fault injection: out of memory\n");
    return WR_ERR_NOMEM;
  }
  nf.started = 1;
  nf.enabled = enabled;
  uv_timer_init(loop, &nf.timer);
  uv_timer_init(loop, &nf.pause_timer);
  nf.timers_open = 2;
  wr_admin_route(admin, "GET", "/faults", h_get, NULL);
  wr_admin_route(admin, "POST", "/faults", h_add, NULL);
  wr_admin_route(admin, "PUT", "/faults", h_put, NULL);
  wr_admin_route(admin, "DELETE", "/faults", h_clear, NULL);
  wr_admin_route(admin, "DELETE", "/faults/", h_delete, NULL);
  wr_admin_route(admin, "POST", "/faults/pause", h_pause, NULL);
  register_metrics(wr_admin_metrics(admin));
  if (!enabled) return 0;
  nf.swim = swim;
  if (swim) wr_swim_uv_set_tap(swim, swim_tap, NULL);
  wr_link_set_tap(link_tap, NULL);
  WR_LOG_INFOF("fault", "enabled", "seed=%llu", (unsigned long long)seed);
  if (file && *file) {
    char err[400];
    if (wr_node_faults_reload(file, err, sizeof err) != 0) {
      fprintf(stderr, "warren: --faults-file %s\n", err);
      return WR_ERR_INVAL;
    }
  }
  return 0;
}

void wr_node_faults_stop(void) {
  if (!nf.started) return;
  nf.started = 0;
  if (nf.swim) wr_swim_uv_set_tap(nf.swim, NULL, NULL);
  nf.swim = NULL;
  if (nf.enabled) wr_link_set_tap(NULL, NULL);
  free_held();
  free(nf.heap);
  nf.heap = NULL;
  wr_fault_del(nf.f);
  nf.f = NULL;
  nf.enabled = 0;
  uv_close((uv_handle_t *)&nf.timer, NULL);
  uv_close((uv_handle_t *)&nf.pause_timer, NULL);
}
