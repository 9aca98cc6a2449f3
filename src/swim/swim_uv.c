/*
 * The libuv adapter around the sans-IO SWIM core (see swim_uv.h).  It moves
 * bytes and time, nothing else: every membership decision is in swim.c.
 *
 * After every core call (a datagram in, the timer, a join, a leave, a sync
 * session's progress) the adapter runs swim_uv_after_core():
 *
 *   1. drain wr_swim_send onto the gossip socket (swim_uv_udp.c);
 *   2. start every sync wr_swim_sync_due reports (up to max_syncs_out at
 *      once);
 *   3. notice a finished join (the core knows a member);
 *   4. arm the one timer at wr_swim_deadline.
 *
 * The adapter is split by concern: swim_uv_udp.c is the gossip socket,
 * swim_uv_sync.c the TCP sync connections, swim_uv_join.c the seed
 * lookups and join retries; this file starts and closes the whole, runs
 * the core's timer and the leave, and holds the helpers the others share
 * (swim_uv_int.h).
 *
 * Errors on sockets are counted and logged, at most one line per second
 * per kind (with how many were folded in), so a flood of bad traffic does
 * not become a flood of log lines.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <netinet/in.h>
#include <sys/socket.h>

#include <sodium.h>
#include <uv.h>

#include "warren/err.h"
#include "warren/log.h"
#include "swim_uv_int.h"

#define DEFAULT_MAX_SYNCS 8
/* A sync is four messages: bucket hashes (about 1 byte per member, 8 KiB
 * at 10,000 members), then digests and entries of the buckets that
 * differ, plus the app deltas, many more frames when application state
 * is far behind (a 10 MB app delta takes ~1 s at 100 Mbit/s); 10 s
 * covers a slow WAN link many times over, and a hung peer gives its
 * socket back. */
#define DEFAULT_SYNC_TIMEOUT_MS 10000
/* Our own syncs: one periodic plus one per answered join or reconnect
 * attempt are due at a time, so 4 leaves room for a burst of joins. */
#define DEFAULT_MAX_SYNCS_OUT 4
/* The initiator writes its first digest frame as soon as it is connected
 * (wr_swim_sync_new produces it), so a member's first frame arrives one
 * round trip plus at most 64 KiB after the accept: ~5 ms at 100 Mbit/s.
 * 2 s leaves room for a 300 ms WAN round trip and one lost segment at
 * Linux's 1 s initial retransmission timeout, and frees a slot held by
 * someone without the key 5x sooner than sync_timeout_ms would. */
#define DEFAULT_SYNC_FIRST_FRAME_MS 2000
#define DEFAULT_BACKOFF_MIN_MS 1000
#define DEFAULT_BACKOFF_MAX_MS 30000
/* 256 datagrams of <= 1445 bytes: ~370 KiB, about one gossip burst to a
 * large fleet; more would only be stale by the time it left. */
#define DEFAULT_SEND_QUEUE_MAX 256
/* Leave grace: three gossip intervals spread LEFT to most of the fleet
 * (each interval pushes it to gossip_nodes members); capped at 1 s so a
 * SIGTERM'd node stops promptly within systemd's and Kubernetes' limits. */
#define LEAVE_GRACE_MAX_MS 1000


/* ---- helpers ---- */

/* One line per kind per second at most; the next line says how many
 * were folded into it. */
int swim_uv_log_ok(wr_swim_uv *u, int kind) {
  uint64_t t = swim_uv_now(u);
  if (u->log_last[kind] && t - u->log_last[kind] < 1000) {
    u->log_folded[kind]++;
    return 0;
  }
  u->log_last[kind] = t ? t : 1;
  return 1;
}

unsigned long long swim_uv_folded(wr_swim_uv *u, int kind) {
  unsigned long long n = u->log_folded[kind];
  u->log_folded[kind] = 0;
  return n;
}

void swim_uv_to_sockaddr(const wr_addr *a, struct sockaddr_storage *ss) {
  memset(ss, 0, sizeof *ss);
  if (a->family == 6) {
    struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;
    s6->sin6_family = AF_INET6;
    memcpy(&s6->sin6_addr, a->ip, 16);
    s6->sin6_port = htons(a->port);
  } else {
    struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
    s4->sin_family = AF_INET;
    memcpy(&s4->sin_addr, a->ip, 4);
    s4->sin_port = htons(a->port);
  }
}

int swim_uv_from_sockaddr(const struct sockaddr *sa, wr_addr *a) {
  memset(a, 0, sizeof *a);
  if (sa->sa_family == AF_INET) {
    const struct sockaddr_in *s4 = (const struct sockaddr_in *)sa;
    a->family = 4;
    memcpy(a->ip, &s4->sin_addr, 4);
    a->port = ntohs(s4->sin_port);
    return 0;
  }
  if (sa->sa_family == AF_INET6) {
    const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)sa;
    /* An IPv4-mapped peer on a dual-stack socket is an IPv4 member. */
    static const uint8_t mapped[12] = {0, 0, 0, 0, 0,    0,
                                       0, 0, 0, 0, 0xff, 0xff};
    if (memcmp(&s6->sin6_addr, mapped, 12) == 0) {
      a->family = 4;
      memcpy(a->ip, (const uint8_t *)&s6->sin6_addr + 12, 4);
    } else {
      a->family = 6;
      memcpy(a->ip, &s6->sin6_addr, 16);
    }
    a->port = ntohs(s6->sin6_port);
    return 0;
  }
  return WR_ERR_INVAL;
}

void swim_uv_addr_str(const wr_addr *a, char *out, size_t cap) {
  char ip[INET6_ADDRSTRLEN] = "?";
  if (a->family == 6) {
    uv_inet_ntop(AF_INET6, a->ip, ip, sizeof ip);
    snprintf(out, cap, "[%s]:%u", ip, a->port);
  } else {
    uv_inet_ntop(AF_INET, a->ip, ip, sizeof ip);
    snprintf(out, cap, "%s:%u", ip, a->port);
  }
}

/* "ADDR:PORT" or "[ADDR]:PORT" (no names: a bind address is literal). */
static int parse_listen(const char *s, struct sockaddr_storage *ss) {
  char host[INET6_ADDRSTRLEN + 1];
  const char *colon;
  size_t n;
  if (!s || !*s) return WR_ERR_INVAL;
  if (s[0] == '[') {
    const char *end = strchr(s, ']');
    if (!end || end[1] != ':') return WR_ERR_INVAL;
    n = (size_t)(end - s - 1);
    if (n == 0 || n >= sizeof host) return WR_ERR_INVAL;
    memcpy(host, s + 1, n);
    colon = end + 1;
  } else {
    colon = strrchr(s, ':');
    if (!colon) return WR_ERR_INVAL;
    n = (size_t)(colon - s);
    if (n == 0 || n >= sizeof host) return WR_ERR_INVAL;
    memcpy(host, s, n);
  }
  host[n] = 0;
  char *end;
  long port = strtol(colon + 1, &end, 10);
  if (colon[1] == 0 || *end || port < 1 || port > 65535) return WR_ERR_INVAL;
  if (strcmp(host, "localhost") == 0) snprintf(host, sizeof host, "127.0.0.1");
  if (uv_ip4_addr(host, (int)port, (struct sockaddr_in *)ss) == 0) return 0;
  if (uv_ip6_addr(host, (int)port, (struct sockaddr_in6 *)ss) == 0) return 0;
  return WR_ERR_INVAL;
}

static void sodium_rand(uint8_t *dst, size_t len, void *ud) {
  (void)ud;
  randombytes_buf(dst, len);
}

/* ---- core callbacks: log, then forward to the application ---- */

static void on_member_changed(wr_swim *sw, const wr_swim_member_info *m,
                              void *ud) {
  wr_swim_uv *u = ud;
  char g[64];
  swim_uv_addr_str(&m->gossip, g, sizeof g);
  WR_LOG_INFOF("swim", "member", "id=%s state=%s incarnation=%u addr=%s",
               m->id, wr_swim_state_name(m->state), (unsigned)m->incarnation,
               g);
  if (u->app_cb.member_changed) u->app_cb.member_changed(sw, m, u->app_ud);
}

static int on_user_update(wr_swim *sw, const wr_swim_update *up, void *ud) {
  wr_swim_uv *u = ud;
  if (u->app_cb.user_update) return u->app_cb.user_update(sw, up, u->app_ud);
  /* Nobody here consumes USER updates, so nobody can tell news from
   * repeats: passing them on would keep every copy circulating. */
  return 0;
}

/* ---- the core's timer ---- */

static void on_timer(uv_timer_t *t);

static void arm_timer(wr_swim_uv *u) {
  wr_tstamp dl = wr_swim_deadline(u->sw);
  if (dl == WR_TSTAMP_NONE) {
    uv_timer_stop(&u->timer);
    return;
  }
  uint64_t now = swim_uv_now(u);
  /* A deadline already past means "tick now"; 0 runs it on the next loop
   * turn, after pending I/O, so a core that keeps a past deadline cannot
   * starve the sockets. */
  uv_timer_start(&u->timer, on_timer, dl > now ? dl - now : 0, 0);
}

static void on_timer(uv_timer_t *t) {
  wr_swim_uv *u = t->data;
  if (u->closing) return;
  wr_swim_tick(u->sw, swim_uv_now(u));
  swim_uv_after_core(u);
}

/* ---- after every core call ---- */

void swim_uv_after_core(wr_swim_uv *u) {
  if (u->closing) return;
  swim_uv_flush(u);
  wr_addr peer;
  /* Each call hands out one due sync; a handful per turn is plenty (the
   * core schedules one periodic sync plus one per answered join). */
  for (int i = 0; i < 16 && wr_swim_sync_due(u->sw, &peer, swim_uv_now(u)); i++)
    swim_uv_sync_connect(u, &peer);
  if (u->joining && wr_swim_member_count(u->sw) > 0) {
    u->joining = 0;
    uv_timer_stop(&u->join_timer);
    WR_LOG_INFOF("swim", "joined", "members=%zu attempts=%u",
                 wr_swim_member_count(u->sw), u->join_round);
  }
  arm_timer(u);
}

/* ---- leave ---- */

static void on_leave_timer(uv_timer_t *t) {
  wr_swim_uv *u = t->data;
  WR_LOG_INFOF("swim", "left", "id=%s", u->cfg.id);
  void (*cb)(void *) = u->leave_cb;
  u->leave_cb = NULL;
  if (cb) cb(u->leave_ud);
}

void wr_swim_uv_leave(wr_swim_uv *u, uint64_t grace_ms,
                      void (*done)(void *user_data), void *user_data) {
  u->leave_cb = done;
  u->leave_ud = user_data;
  if (u->leaving) return;
  u->leaving = 1;
  u->joining = 0;
  uv_timer_stop(&u->join_timer);
  if (grace_ms == 0) {
    grace_ms = 3 * u->cfg.gossip_interval_ms;
    if (grace_ms > LEAVE_GRACE_MAX_MS) grace_ms = LEAVE_GRACE_MAX_MS;
    if (grace_ms == 0) grace_ms = LEAVE_GRACE_MAX_MS;
  }
  /* Alone: nobody to tell.  Still asynchronous, as the API promises. */
  if (wr_swim_member_count(u->sw) == 0) grace_ms = 1;
  int rv = wr_swim_leave(u->sw, swim_uv_now(u));
  WR_LOG_INFOF("swim", "leaving", "id=%s members=%zu grace_ms=%llu err=%s",
               u->cfg.id, wr_swim_member_count(u->sw),
               (unsigned long long)grace_ms, rv ? wr_strerror(rv) : "-");
  swim_uv_after_core(u);
  uv_timer_start(&u->leave_timer, on_leave_timer, grace_ms, 0);
}

/* ---- lifetime ---- */

void swim_uv_maybe_free(wr_swim_uv *u) {
  if (!u->closing || u->open_handles > 0 || u->dns_pending > 0 || u->conns)
    return;
  /* Sessions are gone (they point into the core), so the core can go. */
  wr_swim_del(u->sw);
  for (size_t i = 0; i < u->nseeds; i++) free(u->seed_hosts[i]);
  void (*cb)(void *) = u->close_cb;
  void *ud = u->close_ud;
  free(u);
  if (cb) cb(ud);
}

static void on_handle_closed(uv_handle_t *h) {
  wr_swim_uv *u = h->data;
  u->open_handles--;
  swim_uv_maybe_free(u);
}

void wr_swim_uv_close(wr_swim_uv *u, void (*cb)(void *user_data),
                      void *user_data) {
  if (!u || u->closing) return;
  u->closing = 1;
  u->close_cb = cb;
  u->close_ud = user_data;
  swim_uv_sync_close_all(u);
  swim_uv_join_cancel(u);
  uv_close((uv_handle_t *)&u->udp, on_handle_closed);
  uv_close((uv_handle_t *)&u->listener, on_handle_closed);
  uv_close((uv_handle_t *)&u->timer, on_handle_closed);
  uv_close((uv_handle_t *)&u->join_timer, on_handle_closed);
  uv_close((uv_handle_t *)&u->leave_timer, on_handle_closed);
}

int wr_swim_uv_start(wr_swim_uv **pu, uv_loop_t *loop,
                     const wr_swim_uv_config *cfg) {
  struct sockaddr_storage ss;
  *pu = NULL;
  if (!cfg || parse_listen(cfg->listen, &ss) != 0) return WR_ERR_INVAL;
  wr_swim_uv *u = calloc(1, sizeof *u);
  if (!u) return WR_ERR_NOMEM;
  u->loop = loop;
  u->cfg = cfg->swim;
  if (u->cfg.gossip.family == 0)
    swim_uv_from_sockaddr((struct sockaddr *)&ss, &u->cfg.gossip);
  if (!u->cfg.rand) u->cfg.rand = sodium_rand;
  if (cfg->cb) u->app_cb = *cfg->cb;
  u->app_ud = cfg->user_data;
  u->v6 = ss.ss_family == AF_INET6;
  u->port = u->v6 ? ntohs(((struct sockaddr_in6 *)&ss)->sin6_port)
                  : ntohs(((struct sockaddr_in *)&ss)->sin_port);
  snprintf(u->listen, sizeof u->listen, "%s", cfg->listen);
  u->max_syncs = cfg->max_syncs ? cfg->max_syncs : DEFAULT_MAX_SYNCS;
  u->max_syncs_out =
      cfg->max_syncs_out ? cfg->max_syncs_out : DEFAULT_MAX_SYNCS_OUT;
  u->sync_timeout_ms =
      cfg->sync_timeout_ms ? cfg->sync_timeout_ms : DEFAULT_SYNC_TIMEOUT_MS;
  u->sync_first_frame_ms = cfg->sync_first_frame_ms
                               ? cfg->sync_first_frame_ms
                               : DEFAULT_SYNC_FIRST_FRAME_MS;
  u->backoff_min = cfg->join_backoff_min_ms ? cfg->join_backoff_min_ms
                                            : DEFAULT_BACKOFF_MIN_MS;
  u->backoff_max = cfg->join_backoff_max_ms ? cfg->join_backoff_max_ms
                                            : DEFAULT_BACKOFF_MAX_MS;
  if (u->backoff_max < u->backoff_min) u->backoff_max = u->backoff_min;
  u->send_queue_max =
      cfg->send_queue_max ? cfg->send_queue_max : DEFAULT_SEND_QUEUE_MAX;

  wr_swim_callbacks cbs = {.member_changed = on_member_changed,
                           .user_update = on_user_update};
  /* App-sync hooks take their own user_data, so they pass through as
   * they are; the pump below already pulls output after every write. */
  cbs.app_sync = u->app_cb.app_sync;
  cbs.app_sync_user_data = u->app_cb.app_sync_user_data;
  int rv = wr_swim_new(&u->sw, &u->cfg, &cbs, cfg->keyring, NULL, u,
                       uv_now(loop));
  if (rv != 0) {
    free(u);
    return rv;
  }
  /* From here on every failure goes through the close path, which frees
   * the core and |u| once the handles are closed. */
  uv_udp_init(loop, &u->udp);
  uv_tcp_init(loop, &u->listener);
  uv_timer_init(loop, &u->timer);
  uv_timer_init(loop, &u->join_timer);
  uv_timer_init(loop, &u->leave_timer);
  u->udp.data = u->listener.data = u->timer.data = u;
  u->join_timer.data = u->leave_timer.data = u;
  u->open_handles = 5;
  const char *step = "udp_bind";
  rv = swim_uv_udp_open(u, &ss, &step);
  if (rv == 0) rv = swim_uv_sync_listen(u, &ss, &step);
  if (rv != 0) {
    WR_LOG_ERRORF("swim", "start_failed", "listen=%s step=%s err=%s",
                  cfg->listen, step, uv_err_name(rv));
    wr_swim_uv_close(u, NULL, NULL);
    return rv;
  }
  WR_LOG_INFOF("swim", "started",
               "id=%s listen=%s probe_ms=%llu gossip_ms=%llu lifeguard=%d "
               "keys=%d",
               u->cfg.id, cfg->listen,
               (unsigned long long)u->cfg.probe_interval_ms,
               (unsigned long long)u->cfg.gossip_interval_ms,
               u->cfg.lifeguard, cfg->keyring ? cfg->keyring->n : 0);
  swim_uv_after_core(u);
  *pu = u;
  return 0;
}

wr_swim *wr_swim_uv_core(wr_swim_uv *u) { return u->sw; }

void wr_swim_uv_kick(wr_swim_uv *u) { swim_uv_after_core(u); }

void wr_swim_uv_get_stats(const wr_swim_uv *u, wr_swim_uv_stats *out) {
  *out = u->st;
}

int wr_swim_uv_port(const wr_swim_uv *u) { return u->port; }

void wr_swim_uv_set_tap(wr_swim_uv *u, wr_swim_uv_tap tap, void *ud) {
  u->tap = tap;
  u->tap_ud = ud;
}

void wr_swim_uv_inject(wr_swim_uv *u, int out, const wr_addr *peer,
                       const uint8_t *data, size_t len) {
  if (u->closing) return;
  if (out) {
    swim_uv_send_one(u, peer, data, len);
    return;
  }
  wr_swim_recv(u->sw, peer, data, len, swim_uv_now(u));
  swim_uv_after_core(u);
}
