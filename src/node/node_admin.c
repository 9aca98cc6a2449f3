/*
 * The node's own admin API handlers (members, status, drain, events);
 * /routes and friends are mesh.c's, the server is src/admin/.
 */
#include <time.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <sodium.h>
#include <uv.h>

#include "app.h"

static void addr_text(const wr_addr *ad, char *out, size_t cap) {
  char ip[64] = "?";
  if (ad->family == 6) {
    uv_inet_ntop(AF_INET6, ad->ip, ip, sizeof ip);
    snprintf(out, cap, "[%s]:%u", ip, ad->port);
  } else if (ad->family == 4) {
    uv_inet_ntop(AF_INET, ad->ip, ip, sizeof ip);
    snprintf(out, cap, "%s:%u", ip, ad->port);
  } else {
    snprintf(out, cap, "-");
  }
}

static json_t *member_json(const wr_swim_member_info *m, uint64_t now) {
  char g[80], d[80];
  addr_text(&m->gossip, g, sizeof g);
  addr_text(&m->data, d, sizeof d);
  uint64_t age = now > m->state_since ? now - m->state_since : 0;
  char admin[80];
  wr_tag_value(m->tags, "admin", admin, sizeof admin);
  return json_pack("{s:s, s:s, s:s, s:I, s:s, s:s, s:s, s:I, s:s}", "id", m->id,
                   "addr", g, "state", wr_swim_state_name(m->state),
                   "incarnation", (json_int_t)m->incarnation, "region",
                   m->region ? m->region : "", "tags", m->tags ? m->tags : "",
                   "data_addr", d, "state_age_ms", (json_int_t)age,
                   "admin", admin);
}

/* GET /members: every member this node knows, itself first, in the
 * contract's shape ({"id","addr","state","incarnation"}) plus region,
 * tags, the advertised data address and how long the state has held. */
static int h_members(const wr_admin_req *req, wr_admin_resp *resp, void *ud) {
  (void)req;
  app *a = ud;
  if (!a->swim) {
    json_t *arr = json_pack("[{s:s, s:s, s:s, s:i}]", "id", a->id, "addr",
                            a->gossip[0] ? a->gossip : a->http, "state",
                            a->stopping ? "left" : "alive", "incarnation", 0);
    if (!arr) return WR_ERR_NOMEM;
    return wr_admin_resp_json(resp, arr);
  }
  wr_swim *sw = wr_swim_uv_core(a->swim);
  uint64_t now = uv_now(a->loop);
  json_t *arr = json_array();
  if (!arr) return WR_ERR_NOMEM;
  wr_swim_member_info m;
  wr_swim_self(sw, &m);
  if (m.state_since == 0) m.state_since = a->self_since; /* core leaves 0 */
  json_t *o = member_json(&m, now);
  if (!o || json_array_append_new(arr, o) != 0) goto nomem;
  size_t n = wr_swim_member_count(sw);
  for (size_t i = 0; i < n; i++) {
    if (wr_swim_member_at(sw, i, &m) != 0) continue;
    o = member_json(&m, now);
    if (!o || json_array_append_new(arr, o) != 0) goto nomem;
  }
  return wr_admin_resp_json(resp, arr);
nomem:
  json_decref(arr);
  return WR_ERR_NOMEM;
}

/* Members per state, this node included. */
void count_members(app *a, json_int_t c[4]) {
  c[0] = c[1] = c[2] = c[3] = 0;
  if (!a->swim) {
    c[a->stopping ? WR_SWIM_LEFT : WR_SWIM_ALIVE] = 1;
    return;
  }
  wr_swim *sw = wr_swim_uv_core(a->swim);
  wr_swim_member_info m;
  wr_swim_self(sw, &m);
  if ((unsigned)m.state < 4) c[m.state]++;
  size_t n = wr_swim_member_count(sw);
  for (size_t i = 0; i < n; i++)
    if (wr_swim_member_at(sw, i, &m) == 0 && (unsigned)m.state < 4)
      c[m.state]++;
}

/*
 * The members digest: an XOR of BLAKE2b-128(id, state) over every member
 * this node knows, itself included, so it is independent of order and two
 * nodes with the same view of who is in which state agree (incarnations
 * are left out: they differ for a moment after every refutation).  Its
 * age is the time since the youngest state change.  O(members) per call,
 * nothing per gossip event.
 */
static void members_digest(app *a, char hex[33], uint64_t *age_ms) {
  uint8_t acc[16] = {0};
  uint64_t newest = 0, now = uv_now(a->loop);
  if (a->swim) {
    wr_swim *sw = wr_swim_uv_core(a->swim);
    size_t n = wr_swim_member_count(sw);
    wr_swim_member_info m;
    for (size_t i = 0; i <= n; i++) {
      if (i == n) {
        wr_swim_self(sw, &m);
        if (m.state_since == 0) m.state_since = a->self_since;
      } else if (wr_swim_member_at(sw, i, &m) != 0) {
        continue;
      }
      crypto_generichash_state st;
      uint8_t h[16], state = (uint8_t)m.state;
      crypto_generichash_init(&st, NULL, 0, sizeof h);
      crypto_generichash_update(&st, (const uint8_t *)m.id,
                                strlen(m.id) + 1);
      crypto_generichash_update(&st, &state, 1);
      crypto_generichash_final(&st, h, sizeof h);
      for (int k = 0; k < 16; k++) acc[k] ^= h[k];
      if (m.state_since > newest) newest = m.state_since;
    }
  }
  sodium_bin2hex(hex, 33, acc, sizeof acc);
  *age_ms = now > newest ? now - newest : 0;
}

/* GET /status: the contract's shape plus the members digest and how long
 * each digest has held (for warrenctl mesh). */
static int h_status(const wr_admin_req *req, wr_admin_resp *resp, void *ud) {
  (void)req;
  app *a = ud;
  json_int_t c[4];
  count_members(a, c);
  char mhex[33];
  uint64_t mage;
  members_digest(a, mhex, &mage);
  json_t *o = json_pack("{s:s, s:{s:I, s:I, s:I, s:I}, s:s, s:I}", "id",
                        a->id, "members", "alive", c[WR_SWIM_ALIVE],
                        "suspect", c[WR_SWIM_SUSPECT], "dead",
                        c[WR_SWIM_DEAD], "left", c[WR_SWIM_LEFT],
                        "members_digest", mhex, "members_digest_age_ms",
                        (json_int_t)mage);
  if (!o) return WR_ERR_NOMEM;
  json_object_set_new(o, "draining",
                      json_boolean(a->draining || a->leaving));
  json_object_set_new(o, "pid", json_integer((json_int_t)getpid()));
  json_object_set_new(o, "started_ms", json_integer((json_int_t)a->started_ms));
  if (a->upgrade_state != UPGRADE_IDLE) {
    json_t *u = json_pack("{s:s, s:s}", "state",
                          upgrade_state_name(a->upgrade_state), "binary",
                          a->exe);
    if (u && a->upgrade_err[0])
      json_object_set_new(u, "error", json_string(a->upgrade_err));
    if (u) json_object_set_new(o, "upgrade", u);
  }
  int rv = a->mesh ? wr_mesh_status(a->mesh, o) : 0;
  if (rv != 0) {
    json_decref(o);
    return rv;
  }
  return wr_admin_resp_json(resp, o);
}

/* POST /drain: the same graceful drain as SIGTERM (app_drain); the node
 * exits when it is done.  Answered before anything closes, so the caller
 * learns the bounds; a second call changes nothing. */
static int h_drain(const wr_admin_req *req, wr_admin_resp *resp, void *ud) {
  (void)req;
  app *a = ud;
  if (a->stopping || a->leaving)
    return wr_admin_resp_error(resp, 409, "the node is already stopping");
  app_drain(a, "admin");
  json_t *o = json_pack("{s:s, s:b, s:I, s:I, s:I}", "id", a->id, "draining",
                        1, "elapsed_ms",
                        (json_int_t)(uv_now(a->loop) - a->drain_start),
                        "wait_ms", (json_int_t)a->drain_wait_ms,
                        "timeout_ms", (json_int_t)a->drain_timeout_ms);
  if (!o) return WR_ERR_NOMEM;
  return wr_admin_resp_json(resp, o);
}

/* POST /upgrade: the in-place upgrade (upgrade.c): 202 once the new
 * binary's check has started; its outcome shows in GET /status
 * ("upgrade"), and a successor answers with a new "started_ms". */
static int h_upgrade(const wr_admin_req *req, wr_admin_resp *resp,
                     void *ud) {
  (void)req;
  app *a = ud;
  char err[200];
  int rv = app_upgrade(a, err, sizeof err);
  if (rv == WR_ERR_CLOSED || rv == WR_ERR_EXISTS)
    return wr_admin_resp_error(resp, 409, err);
  if (rv != 0) return wr_admin_resp_error(resp, 500, err);
  json_t *o = json_pack("{s:s, s:s, s:I, s:I, s:I}", "id", a->id, "binary",
                        a->exe, "started_ms", (json_int_t)a->started_ms,
                        "wait_ms", (json_int_t)a->drain_wait_ms,
                        "timeout_ms", (json_int_t)a->drain_timeout_ms);
  if (!o) return WR_ERR_NOMEM;
  wr_admin_resp_status(resp, 202);
  return wr_admin_resp_json(resp, o);
}

/* GET /readyz (no token needed, like /healthz): 200 while the node takes
 * visitors, 503 from the moment it drains or leaves, so a load balancer
 * or a Kubernetes readiness probe stops sending before it goes.  /healthz
 * stays 200 (alive) until the process ends: a liveness probe must not
 * restart a node for draining. */
static int h_readyz(const wr_admin_req *req, wr_admin_resp *resp, void *ud) {
  (void)req;
  app *a = ud;
  int ready = !a->draining && !a->leaving && !a->stopping && a->ig;
  json_t *o = json_pack("{s:b, s:b}", "ready", ready, "draining",
                        a->draining || a->leaving || a->stopping);
  if (!o) return WR_ERR_NOMEM;
  int rv = wr_admin_resp_json(resp, o);
  if (rv == 0 && !ready) wr_admin_resp_status(resp, 503);
  return rv;
}

/* Records |key| at |version| unless that version or a newer one was
 * already seen (returns 1 then); a full table forgets the oldest key. */
int event_seen(app *a, const char *key, uint64_t version,
                      uint64_t now) {
  size_t i, old = 0;
  for (i = 0; i < a->nev; i++) {
    if (!strcmp(a->ev[i].key, key)) break;
    if (a->ev[i].seen < a->ev[old].seen) old = i;
  }
  if (i < a->nev && version <= a->ev[i].version) return 1;
  if (i == a->nev) i = a->nev < WR_ARRAY_LEN(a->ev) ? a->nev++ : old;
  snprintf(a->ev[i].key, sizeof a->ev[i].key, "%s", key);
  a->ev[i].version = version;
  a->ev[i].seen = now;
  return 0;
}

/* POST /events?name=NAME: gossips the body (<= 1 KiB) as user event
 * "event/NAME"; every node logs user_event when it first hears it. */
static int h_events(const wr_admin_req *req, wr_admin_resp *resp, void *ud) {
  app *a = ud;
  char name[WR_SWIM_ID_MAX + 1], key[WR_SWIM_ID_MAX + 1];
  if (!a->swim || a->leaving)
    return wr_admin_resp_error(resp, 409, "no membership (--gossip)");
  int n = wr_admin_req_param(req, "name", name, sizeof name);
  if (n <= 0 || n > WR_SWIM_ID_MAX - 6 || !printable_word(name))
    return wr_admin_resp_error(resp, 400, "name= wants a word of 1-58 "
                                          "printable characters");
  if (req->body_len > WR_SWIM_USER_MAX)
    return wr_admin_resp_error(resp, 413, "payload over 1024 bytes");
  snprintf(key, sizeof key, "event/%.*s", WR_SWIM_ID_MAX - 6, name);
  /* Version: wall-clock microseconds, above any version seen here. */
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  uint64_t v = (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000;
  uint64_t now = uv_now(a->loop);
  for (size_t i = 0; i < a->nev; i++)
    if (!strcmp(a->ev[i].key, key) && v <= a->ev[i].version)
      v = a->ev[i].version + 1;
  event_seen(a, key, v, now);
  int rv = wr_swim_broadcast_user(wr_swim_uv_core(a->swim), key, v,
                                  req->body, req->body_len, now);
  if (rv != 0) return rv;
  wr_swim_uv_kick(a->swim);
  WR_LOG_INFOF("main", "user_event_sent", "key=%s version=%llu len=%zu", key,
               (unsigned long long)v, req->body_len);
  return wr_admin_resp_json(resp, json_pack("{s:s, s:I}", "key", key,
                                            "version", (json_int_t)v));
}

void mesh_collect(void *ud) {
  app *a = ud;
  if (a->mesh) wr_mesh_collect(a->mesh); /* closed: the last values stay */
}

int start_admin(app *a, const char *listen, const char *token) {
  int rv = wr_admin_new(&a->admin, a->loop, listen, token, NULL);
  if (rv != 0) {
    fprintf(stderr, "warren: cannot serve the admin API on %s: %s\n", listen,
            wr_strerror(rv));
    return rv;
  }
  wr_admin_route(a->admin, "GET", "/members", h_members, a);
  wr_admin_route(a->admin, "GET", "/status", h_status, a);
  wr_admin_route(a->admin, "POST", "/drain", h_drain, a);
  wr_admin_route(a->admin, "POST", "/upgrade", h_upgrade, a);
  wr_admin_route(a->admin, "GET", "/readyz", h_readyz, a);
  wr_admin_route(a->admin, "POST", "/events", h_events, a);
  a->metrics = NULL;
  return 0;
}
