/*
 * Seeds and join retries of the SWIM adapter (swim_uv.c): resolving the
 * --join hosts, handing what they resolve to to wr_swim_join, and trying
 * again until the core knows a member.
 *
 * Join: every seed host goes through uv_getaddrinfo (a literal address
 * resolves at once); when all lookups of a round are back, the addresses
 * found are handed to wr_swim_join, and a retry timer is armed with
 * jittered exponential backoff.  A retry re-resolves, so a Kubernetes
 * headless Service that gains its first ready pod is picked up.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "warren/err.h"
#include "warren/log.h"
#include "swim_uv_int.h"

typedef struct dns_req {
  struct dns_req *next, *prev; /* outstanding lookups, for uv_cancel */
  uv_getaddrinfo_t req;
  wr_swim_uv *u;
  unsigned round;
  uint16_t port;
  char host[256];
} dns_req;

static void join_round_start(wr_swim_uv *u);

static void on_join_timer(uv_timer_t *t);

static void join_round_done(wr_swim_uv *u) {
  if (u->njoin > 0) {
    u->st.join_attempts++;
    char first[64];
    swim_uv_addr_str(&u->join_addrs[0], first, sizeof first);
    WR_LOG_INFOF("swim", "join_attempt", "round=%u addrs=%zu first=%s",
                 u->join_round, u->njoin, first);
    int rv = wr_swim_join(u->sw, u->join_addrs, u->njoin, swim_uv_now(u));
    if (rv != 0)
      WR_LOG_WARNF("swim", "join_error", "err=%s", wr_strerror(rv));
    swim_uv_after_core(u);
  } else if (u->join_self) {
    /* The usual first node of a fleet: every node gets the same --join. */
    WR_LOG_INFOF("swim", "join_wait",
                 "round=%u msg=\"the seeds name only this node; waiting "
                 "for others to join it\"", u->join_round);
  } else {
    WR_LOG_WARNF("swim", "join_no_seeds",
                 "round=%u msg=\"no seed address resolved\"", u->join_round);
  }
  if (!u->joining || u->closing) return;
  /* "Equal jitter": half the backoff fixed, half random, so a fleet
   * restarted at once does not retry in lockstep against its seeds. */
  uint64_t half = u->backoff / 2;
  uint32_t r = randombytes_uniform((uint32_t)(half > 0 ? half : 1));
  uv_timer_start(&u->join_timer, on_join_timer, half + r, 0);
  WR_LOG_DEBUGF("swim", "join_retry_armed", "round=%u in_ms=%llu",
                u->join_round, (unsigned long long)(half + r));
  u->backoff = u->backoff * 2 > u->backoff_max ? u->backoff_max
                                                : u->backoff * 2;
}

static void on_resolved(uv_getaddrinfo_t *req, int status,
                        struct addrinfo *res) {
  dns_req *r = req->data;
  wr_swim_uv *u = r->u;
  u->dns_pending--;
  if (r->prev)
    r->prev->next = r->next;
  else
    u->dns = r->next;
  if (r->next) r->next->prev = r->prev;
  int stale = u->closing || r->round != u->join_round || !u->joining;
  if (!stale && status != 0) {
    u->st.dns_failures++;
    if (swim_uv_log_ok(u, LOG_DNS))
      WR_LOG_WARNF("swim", "seed_unresolved", "host=%s err=%s folded=%llu",
                   r->host, uv_err_name(status), swim_uv_folded(u, LOG_DNS));
  }
  for (struct addrinfo *ai = res; !stale && ai; ai = ai->ai_next) {
    wr_addr a;
    if (swim_uv_from_sockaddr(ai->ai_addr, &a) != 0) continue;
    a.port = r->port;
    /* Our own address is no seed (a headless Service lists every pod,
     * this one included). */
    if (wr_addr_eq(&a, &u->cfg.gossip)) {
      u->join_self = 1;
      continue;
    }
    /* An IPv4 socket cannot reach an AAAA record ("localhost" gives
     * both); a dual-stack IPv6 socket reaches either. */
    if (!u->v6 && a.family == 6) continue;
    int dup = 0;
    for (size_t i = 0; i < u->njoin && !dup; i++)
      dup = wr_addr_eq(&a, &u->join_addrs[i]);
    if (!dup && u->njoin < JOIN_ADDRS_MAX) u->join_addrs[u->njoin++] = a;
  }
  if (res) uv_freeaddrinfo(res);
  free(r);
  if (u->closing) {
    swim_uv_maybe_free(u);
    return;
  }
  if (stale) return;
  if (--u->round_pending == 0) join_round_done(u);
}

static void join_round_start(wr_swim_uv *u) {
  u->join_round++;
  u->njoin = 0;
  u->join_self = 0;
  u->round_pending = (unsigned)u->nseeds;
  for (size_t i = 0; i < u->nseeds; i++) {
    dns_req *r = calloc(1, sizeof *r);
    int rv = WR_ERR_NOMEM;
    if (r) {
      r->u = u;
      r->round = u->join_round;
      snprintf(r->host, sizeof r->host, "%s", u->seeds[i].host);
      r->req.data = r;
      r->port = u->seeds[i].port;
      struct addrinfo hints;
      memset(&hints, 0, sizeof hints);
      hints.ai_family = AF_UNSPEC;
      hints.ai_socktype = SOCK_DGRAM;
      rv = uv_getaddrinfo(u->loop, &r->req, on_resolved, r->host, NULL,
                          &hints);
    }
    if (rv != 0) {
      free(r);
      u->st.dns_failures++;
      if (swim_uv_log_ok(u, LOG_DNS))
        WR_LOG_WARNF("swim", "seed_unresolved", "host=%s err=%s folded=%llu",
                     u->seeds[i].host,
                     rv > -5000 ? uv_err_name(rv) : wr_strerror(rv),
                     swim_uv_folded(u, LOG_DNS));
      u->round_pending--;
      continue;
    }
    u->dns_pending++;
    r->next = u->dns;
    if (u->dns) u->dns->prev = r;
    u->dns = r;
  }
  if (u->round_pending == 0) join_round_done(u);
}

static void on_join_timer(uv_timer_t *t) {
  wr_swim_uv *u = t->data;
  if (u->closing || !u->joining) return;
  if (wr_swim_member_count(u->sw) > 0) {
    swim_uv_after_core(u); /* logs "joined" and stops */
    return;
  }
  if (u->round_pending > 0) return; /* lookups of this round still out */
  join_round_start(u);
}

int wr_swim_uv_join(wr_swim_uv *u, const wr_swim_uv_seed *seeds, size_t n) {
  if (!u || u->closing || n == 0 || n > SEEDS_MAX) return WR_ERR_INVAL;
  char *hosts[SEEDS_MAX];
  for (size_t i = 0; i < n; i++) {
    hosts[i] = strdup(seeds[i].host ? seeds[i].host : "");
    if (!hosts[i] || !hosts[i][0] || strlen(hosts[i]) > 255) {
      int nomem = !hosts[i];
      for (size_t j = 0; j <= i; j++) free(hosts[j]);
      return nomem ? WR_ERR_NOMEM : WR_ERR_INVAL;
    }
  }
  for (size_t i = 0; i < u->nseeds; i++) free(u->seed_hosts[i]);
  for (size_t i = 0; i < n; i++) {
    u->seed_hosts[i] = hosts[i];
    u->seeds[i].host = hosts[i];
    u->seeds[i].port = seeds[i].port;
  }
  u->nseeds = n;
  u->joining = 1;
  u->backoff = u->backoff_min;
  uv_timer_stop(&u->join_timer);
  join_round_start(u);
  return 0;
}

int wr_swim_uv_joining(const wr_swim_uv *u) { return u->joining; }

void swim_uv_join_cancel(wr_swim_uv *u) {
  /* Queued lookups are cancelled (their callbacks come with
   * UV_EAI_CANCELED); one already running in the thread pool cannot be
   * (EBUSY), and swim_uv_maybe_free waits for its callback. */
  for (dns_req *r = u->dns; r; r = r->next)
    (void)uv_cancel((uv_req_t *)&r->req);
}
