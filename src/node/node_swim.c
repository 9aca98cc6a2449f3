/*
 * The node's membership: starting gossip from the options, its callbacks
 * (member changes feed the routes, USER updates the routes or events),
 * and its /metrics.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <sodium.h>
#include <uv.h>

#include "app.h"

/* ---- membership ---- */

/* Counters mirrored from the core's and the adapter's stats at each
 * scrape (the collect hook), so neither holds pointers into a registry
 * that the admin server frees on its own schedule. */
enum {
  MS_RX_PACKETS, MS_TX_PACKETS, MS_RX_BYTES, MS_TX_BYTES, MS_MALFORMED,
  MS_BADSEAL, MS_SUSPICIONS, MS_DEATHS, MS_REFUTATIONS, MS_PROBES,
  MS_PROBE_FAILURES, MS_SOCK_ERRORS, MS_SEND_DROPS, MS_SYNC_OK, MS_SYNC_FAILED,
  MS_SYNC_REFUSED, MS_REFUSED, MS_RECONNECTS, MS_EVICTED_MEMBER,
  MS_EVICTED_USER, MS_SYNC_VERSION, MS_SYNC_APP_REJECTED, MS_SYNC_IDLE,
  MS_CONFIRM_PROBES, MS_STALE_CORRECTIONS, MS_LAST_CHANCE, MS_INDIRECT,
  MS_NACKS, MS_FOREIGN, MS_REAPED, MS_SYNC_BUCKETS, MS_SYNC_BUCKETS_DIFFER,
  MS_SYNC_CATCHUP, MS_CROSS_PROBES, MS_REGION_SILENT, MS_N
};
enum { GS_AWARENESS, GS_INCARNATION, GS_ALIVE, GS_SUSPECT, GS_DEAD, GS_LEFT,
       GS_QUEUE_MEMBER, GS_QUEUE_USER, GS_N };
_Static_assert(MS_N <= WR_ARRAY_LEN(((app *)0)->m_swim), "app.m_swim");
_Static_assert(GS_N <= WR_ARRAY_LEN(((app *)0)->g_swim), "app.g_swim");

static void swim_collect(void *ud) {
  app *a = ud;
  if (!a->swim) return; /* closed: the last values stay */
  wr_swim_stats st;
  wr_swim_uv_stats us;
  wr_swim_get_stats(wr_swim_uv_core(a->swim), &st);
  wr_swim_uv_get_stats(a->swim, &us);
  uint64_t v[MS_N] = {
      st.rx_packets, st.tx_packets, st.rx_bytes, st.tx_bytes,
      st.rx_malformed + st.rx_version + st.rx_oversize, st.rx_badseal,
      st.suspicions, st.deaths, st.refutations, st.probes, st.probe_failures,
      us.udp_recv_errors + us.udp_send_errors + us.tcp_errors,
      us.udp_queue_drops + st.tx_dropped, us.sync_ok,
      us.sync_failed + us.sync_timeouts, us.sync_refused, st.refused,
      st.reconnects, st.bcast_evicted_member, st.bcast_evicted_user,
      st.syncs_version, st.syncs_app_rejected, us.sync_idle,
      st.confirm_probes, st.stale_corrections, st.last_chance_probes,
      st.indirect_probes, st.nacks_rx, st.rx_foreign, st.reaped,
      st.sync_buckets, st.sync_buckets_differ, st.syncs_catchup,
      st.cross_probes, st.region_silent_probes};
  for (int i = 0; i < MS_N; i++) *a->m_swim[i] = v[i];
  json_int_t c[4];
  count_members(a, c);
  *a->g_swim[GS_AWARENESS] = st.awareness;
  *a->g_swim[GS_INCARNATION] = st.incarnation;
  for (int i = 0; i < 4; i++) *a->g_swim[GS_ALIVE + i] = c[i];
  *a->g_swim[GS_QUEUE_MEMBER] =
      (int64_t)(st.broadcast_queue - st.broadcast_queue_user);
  *a->g_swim[GS_QUEUE_USER] = (int64_t)st.broadcast_queue_user;
}

static void swim_metrics(app *a, wr_metrics *m) {
  static const struct {
    const char *name, *lk, *lv, *help;
  } cs[MS_N] = {
      {"warren_swim_rx_packets_total", NULL, NULL, "Gossip datagrams received."},
      {"warren_swim_tx_packets_total", NULL, NULL, "Gossip datagrams sent."},
      {"warren_swim_rx_bytes_total", NULL, NULL, "Gossip bytes received."},
      {"warren_swim_tx_bytes_total", NULL, NULL, "Gossip bytes sent."},
      {"warren_swim_rx_malformed_total", NULL, NULL,
       "Gossip datagrams dropped as malformed, oversized or of another "
       "version."},
      {"warren_swim_rx_badseal_total", NULL, NULL,
       "Gossip datagrams no installed key opened (wrong cluster key)."},
      {"warren_swim_suspicions_total", NULL, NULL, "Members suspected."},
      {"warren_swim_deaths_total", NULL, NULL, "Members declared dead."},
      {"warren_swim_refutations_total", NULL, NULL,
       "Times this node refuted a suspicion of itself."},
      {"warren_swim_probes_total", NULL, NULL, "Probes sent."},
      {"warren_swim_probe_failures_total", NULL, NULL,
       "Probes without an ack, even indirect."},
      {"warren_swim_socket_errors_total", NULL, NULL,
       "Gossip UDP and sync TCP socket errors."},
      {"warren_swim_tx_dropped_total", NULL, NULL,
       "Gossip datagrams dropped: send queue full."},
      {"warren_swim_syncs_total", "result", "ok", "Anti-entropy sessions."},
      {"warren_swim_syncs_total", "result", "failed", NULL},
      {"warren_swim_syncs_total", "result", "refused", NULL},
      {"warren_swim_port_unreachable_total", NULL, NULL,
       "Gossip datagrams refused by the member's host (ICMP port "
       "unreachable): evidence that nothing listens there."},
      {"warren_swim_reconnects_total", NULL, NULL,
       "Syncs started with a member declared dead (partition healing)."},
      {"warren_swim_bcast_evicted_total", "queue", "member",
       "Updates that left a piggyback queue before their retransmit limit "
       "(queue full, or no memory); the sync repairs them."},
      {"warren_swim_bcast_evicted_total", "queue", "user", NULL},
      {"warren_swim_sync_failures_total", "reason", "version",
       "Failed syncs (also in result=failed) by reason: the peer speaks "
       "another sync stream version, or the application refused one of "
       "its records."},
      {"warren_swim_sync_failures_total", "reason", "app_rejected", NULL},
      {"warren_swim_sync_idle_closed_total", NULL, NULL,
       "Accepted sync connections closed because no sealed frame arrived "
       "within the first-frame deadline (idle or keyless peers)."},
      {"warren_swim_confirm_probes_total", NULL, NULL,
       "Confirmation probes (also in probes_total): a suspicion heard from "
       "another member, checked by this node at once."},
      {"warren_swim_stale_corrections_total", NULL, NULL,
       "Stale accusations answered with this node's newer entry, straight "
       "to the member that sent them."},
      {"warren_swim_last_chance_probes_total", NULL, NULL,
       "Unconfirmed suspicions at their maximum whose suspect (and a few "
       "random members) was asked once more before being declared dead."},
      {"warren_swim_indirect_probes_total", NULL, NULL,
       "Ping-reqs sent to relays after a direct probe went unanswered."},
      {"warren_swim_nacks_total", NULL, NULL,
       "NACKs received from relays that did not reach the target "
       "(Lifeguard)."},
      {"warren_swim_rx_foreign_total", NULL, NULL,
       "PINGs naming another member id, and ACKs for no outstanding probe "
       "(late, or a restarted peer)."},
      {"warren_swim_reaped_total", NULL, NULL,
       "Dead and left members removed from the table after dead-reap."},
      {"warren_swim_sync_buckets_total", "result", "compared",
       "Digest buckets of the syncs this node answered: compared, and of "
       "them found to differ (each costs both sides' digests of its "
       "members; a converged fleet adds only compared)."},
      {"warren_swim_sync_buckets_total", "result", "differ", NULL},
      {"warren_swim_syncs_catchup_total", NULL, NULL,
       "Syncs started early because this node dropped gossiped routes "
       "(over an owner's ingest rate, ingest queue full) that only a sync "
       "brings back."},
      {"warren_swim_cross_probes_total", NULL, NULL,
       "Probes sent to a member of another region (region-aware "
       "membership: one probe in region-cross-probe)."},
      {"warren_swim_region_silent_probes_total", NULL, NULL,
       "Cross-region probes that nobody in the target's region answered: "
       "the region was marked silent instead of suspecting the member."},
  };
  static const struct {
    const char *name, *lk, *lv, *help;
  } gs[GS_N] = {
      {"warren_swim_awareness", NULL, NULL,
       "Lifeguard local health score (0 = healthy)."},
      {"warren_swim_incarnation", NULL, NULL, "This node's incarnation."},
      {"warren_swim_members", "state", "alive",
       "Members known, per state, this node included."},
      {"warren_swim_members", "state", "suspect", NULL},
      {"warren_swim_members", "state", "dead", NULL},
      {"warren_swim_members", "state", "left", NULL},
      {"warren_swim_bcast_queue", "queue", "member",
       "Updates waiting to be piggybacked, per queue."},
      {"warren_swim_bcast_queue", "queue", "user", NULL},
  };
  for (int i = 0; i < MS_N; i++)
    wr_metrics_counter(m, cs[i].name, cs[i].lk, cs[i].lv, cs[i].help,
                       &a->m_swim[i]);
  for (int i = 0; i < GS_N; i++)
    wr_metrics_gauge(m, gs[i].name, gs[i].lk, gs[i].lv, gs[i].help,
                     &a->g_swim[i]);
  wr_metrics_on_collect(m, swim_collect, a);
}

/* A member's state changed: its routes follow (a dead or left owner's
 * names stop resolving everywhere at once). */
static void on_member_changed(wr_swim *sw, const wr_swim_member_info *m,
                              void *ud) {
  (void)sw;
  app *a = ud;
  if (a->mesh) wr_mesh_member_changed(a->mesh, m);
}

/* USER updates: an "event/" key is logged and re-gossiped once per
 * version; other keys are passed on as before. */
static int on_user_update(wr_swim *sw, const wr_swim_update *u, void *ud) {
  (void)sw;
  app *a = ud;
  int news = a->mesh ? wr_mesh_user_update(a->mesh, u) : -1;
  if (news >= 0) return news;
  if (strncmp(u->key, "event/", 6) != 0) return 1;
  if (event_seen(a, u->key, u->version, uv_now(a->loop))) return 0;
  WR_LOG_INFOF("main", "user_event", "key=%s version=%llu origin=%s len=%u",
               u->key, (unsigned long long)u->version, u->id,
               (unsigned)u->payload_len);
  return 1;
}

/* A word of printable ASCII without spaces (what the codec carries). */
int printable_word(const char *s) {
  for (; *s; s++)
    if (*s <= ' ' || *s > '~') return 0;
  return 1;
}

int is_wildcard(const struct sockaddr_storage *ss) {
  static const uint8_t zero[16];
  if (ss->ss_family == AF_INET)
    return ((const struct sockaddr_in *)ss)->sin_addr.s_addr == 0;
  return memcmp(&((const struct sockaddr_in6 *)ss)->sin6_addr, zero, 16) == 0;
}

/* Applies --gossip-set "k=v,k=v" to |c|; 0, or -1 with |err| set. */
int apply_gossip_set(wr_swim_config *c, const char *list, char *err,
                            size_t errlen) {
  char buf[1024];
  snprintf(buf, sizeof buf, "%s", list);
  for (char *save = NULL, *kv = strtok_r(buf, ",", &save); kv;
       kv = strtok_r(NULL, ",", &save)) {
    char *eq = strchr(kv, '=');
    if (!eq) {
      snprintf(err, errlen, "--gossip-set wants KEY=VALUE, got '%.40s'", kv);
      return -1;
    }
    *eq = 0;
    if (wr_swim_config_set(c, kv, eq + 1, err, errlen) != 0) return -1;
  }
  return 0;
}

/* Starts gossip on --gossip and joins through --join; 0 or an error
 * (printed).  |secret| is the cluster secret: the gossip key derives from
 * it and becomes the keyring's primary. */
int start_swim(app *a, const wr_node_opts *o, const uint8_t secret[32]) {
  wr_swim_uv_config c;
  memset(&c, 0, sizeof c);
  c.listen = o->gossip;
  wr_swim_config_default(&c.swim);
  const char *profile = o->gossip_profile[0] ? o->gossip_profile : "lan";
  if (wr_swim_config_profile(&c.swim, profile) != 0) return WR_ERR_INVAL;
  char set_err[160];
  if (apply_gossip_set(&c.swim, o->gossip_set, set_err, sizeof set_err) != 0)
    return WR_ERR_INVAL; /* cmd_node validated it already */
  /* Lengths were checked in cmd_node; the precisions say so to gcc. */
  snprintf(c.swim.id, sizeof c.swim.id, "%.*s", WR_SWIM_ID_MAX, o->id);
  snprintf(c.swim.region, sizeof c.swim.region, "%.*s", WR_SWIM_REGION_MAX,
           o->region);
  snprintf(c.swim.tags, sizeof c.swim.tags, "%.*s", WR_SWIM_TAGS_MAX, o->tags);
  /* The admin address rides in the tags, so `warrenctl mesh` can ask
   * every member from the members list of one (unless the operator set an
   * admin= tag, e.g. the address reachable from outside a container). */
  char dummy[80];
  if (wr_tag_value(c.swim.tags, "admin", dummy, sizeof dummy) < 0) {
    size_t n = strlen(c.swim.tags);
    int w = snprintf(c.swim.tags + n, sizeof c.swim.tags - n, "%sadmin=%s",
                     n ? "," : "", o->admin);
    if (w < 0 || (size_t)w >= sizeof c.swim.tags - n) {
      c.swim.tags[n] = 0; /* too long: go without */
      WR_LOG_WARNF("main", "admin_tag_skipped",
                   "reason=\"--tags leave no room for admin=%s\"", o->admin);
    }
  }
  /* The routes epoch rides in the tags too (mesh.h): a peer drops this
   * id's bindings from an earlier process the moment it hears we are
   * back, instead of serving them until our first new write reaches it. */
  if (a->mesh) {
    size_t n = strlen(c.swim.tags);
    int w = snprintf(c.swim.tags + n, sizeof c.swim.tags - n, "%s%s=%llu",
                     n ? "," : "", WR_MESH_EPOCH_TAG,
                     (unsigned long long)wr_mesh_epoch(a->mesh));
    if (w < 0 || (size_t)w >= sizeof c.swim.tags - n) {
      c.swim.tags[n] = 0;
      WR_LOG_WARNF("main", "epoch_tag_skipped",
                   "reason=\"--tags leave no room for the routes epoch\"");
    }
  }
  struct sockaddr_storage gs, hs;
  wr_parse_hostport(o->gossip, &gs);
  wr_parse_hostport(o->http, &hs);
  /* The data address peers will forward requests to: --http, or, when
   * that is a wildcard bind, the gossip host with the --http port. */
  if (is_wildcard(&hs)) {
    uint16_t port = hs.ss_family == AF_INET
                        ? ((struct sockaddr_in *)&hs)->sin_port
                        : ((struct sockaddr_in6 *)&hs)->sin6_port;
    hs = gs;
    if (hs.ss_family == AF_INET) ((struct sockaddr_in *)&hs)->sin_port = port;
    else ((struct sockaddr_in6 *)&hs)->sin6_port = port;
  }
  wr_addr *d = &c.swim.data;
  if (hs.ss_family == AF_INET) {
    d->family = 4;
    memcpy(d->ip, &((struct sockaddr_in *)&hs)->sin_addr, 4);
    d->port = ntohs(((struct sockaddr_in *)&hs)->sin_port);
  } else {
    d->family = 6;
    memcpy(d->ip, &((struct sockaddr_in6 *)&hs)->sin6_addr, 16);
    d->port = ntohs(((struct sockaddr_in6 *)&hs)->sin6_port);
  }
  uint8_t key[32];
  wr_swim_keyring_init(&a->keyring);
  wr_keys_gossip_key(secret, key);
  wr_swim_keyring_add(&a->keyring, key, 1);
  sodium_memzero(key, sizeof key);
  c.keyring = &a->keyring;
  /* Static: the core keeps the pointer (one node per process). */
  static wr_swim_callbacks cbs;
  cbs = (wr_swim_callbacks){.user_update = on_user_update,
                            .member_changed = on_member_changed};
  if (a->mesh) {
    cbs.app_sync = wr_routes_swim_sync();
    cbs.app_sync_user_data = (void *)wr_mesh_sync_host(a->mesh);
  }
  c.cb = &cbs;
  c.user_data = a;
  a->self_since = uv_now(a->loop);
  int rv = wr_swim_uv_start(&a->swim, a->loop, &c);
  if (rv != 0) {
    fprintf(stderr, "warren: cannot start gossip on %s: %s\n", o->gossip,
            wr_strerror(rv));
    a->swim = NULL;
    return rv;
  }
  swim_metrics(a, wr_admin_metrics(a->admin));
  if (a->mesh) wr_mesh_set_swim(a->mesh, a->swim);
  if (!o->join[0]) return 0;
  wr_seed_list sl;
  char err[300];
  if (wr_seeds_parse(o->join, &sl, err, sizeof err) != 0) return WR_ERR_INVAL;
  wr_swim_uv_seed seeds[WR_SEEDS_MAX];
  for (size_t i = 0; i < sl.n; i++) {
    seeds[i].host = sl.seeds[i].host;
    seeds[i].port = sl.seeds[i].port;
  }
  rv = wr_swim_uv_join(a->swim, seeds, sl.n);
  if (rv != 0)
    fprintf(stderr, "warren: cannot join through %s: %s\n", o->join,
            wr_strerror(rv));
  return rv;
}
