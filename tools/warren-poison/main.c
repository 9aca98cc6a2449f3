/*
 * warren-poison: a hostile mesh member for the chaos harness's poison
 * scenario (issue 12, docs/CHAOS.md).  After the worst outage of Fly.io's
 * Corrosion, where one bad update of SWIM-gossiped routing state reached
 * every edge proxy within seconds and locked them all up: this program
 * holds the cluster secret, so everything it gossips is well sealed and
 * every node accepts it as a member's word.  What it says is hostile:
 *
 *   flood      a stream of bindings from its own id, every name at the
 *              63-character limit, every account at 64, up to --flood
 *              entries (beyond the per-owner quota if asked); with
 *              --fake-owners N, every other one from one of N made-up
 *              owner ids instead, which membership never reports (to get
 *              around the per-owner quota);
 *   top        entries at WR_ROUTE_VERSION_MAX (the highest version a node
 *              accepts) and just above it (which it must refuse), so the
 *              Lamport clock of every node is pushed to the top;
 *   conflicts  every --conflict-ms, a new claim of one of 8 contested
 *              names by two forged owners and two accounts in turn, each
 *              with an earlier claim time than the last, so the winner
 *              flips at every node every few milliseconds.
 *
 * It answers nothing else: no routes table of its own, no app-state sync
 * (a node's sync with it carries membership only), no public port.  The
 * nodes must not crash, stall or grow without bound; the harness watches
 * their tables, loop stalls (warren_loop_stall_max_seconds) and RSS.
 *
 * This is a test tool: it is bounded (--duration-s, a rate), and prints
 * one JSON line of what it sent when it exits.
 */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>
#include <uv.h>

#include "routes.pb-c.h"
#include "warren/err.h"
#include "warren/log.h"
#include "warren/noise.h"
#include "warren/routes.h"
#include "warren/swim.h"
#include "warren/swim_uv.h"

#define TICK_MS 10
#define CONTESTED 8

typedef struct poison {
  uv_loop_t *loop;
  uv_timer_t tick;
  uv_signal_t sigterm, sigint;
  wr_swim_uv *swim;
  wr_swim_keyring keyring;
  char id[WR_SWIM_ID_MAX + 1];
  uint64_t epoch;
  uint64_t seq;                /* our own log's sequence */
  uint64_t ghost_seq[2];       /* the forged owners' sequences */
  uint64_t version;            /* our Lamport clock, pushed to the top */
  uint64_t flood_max, flooded;
  uint64_t fake_owners;        /* 0, or how many made-up owners share it */
  unsigned rate;               /* flood entries per second */
  uint64_t conflict_ms, next_conflict, conflicts;
  uint64_t top_sent, over_top_sent, send_errors;
  uint64_t end_at;
  int joined;
} poison;

static uint64_t now_ms(poison *p) { return uv_now(p->loop); }

static void send_encoded(poison *p, const char *owner, const char *name,
                         uint64_t version, const uint8_t *enc, size_t len) {
  char key[WR_SWIM_ID_MAX + 1];
  wr_route_gossip_key(owner, name, key, sizeof key);
  if (wr_swim_broadcast_user(wr_swim_uv_core(p->swim), key, version, enc,
                             len, now_ms(p)) != 0)
    p->send_errors++;
}

static void send_entry(poison *p, const wr_route_entry *e) {
  uint8_t enc[WR_ROUTE_ENCODED_MAX];
  wr_ssize n = wr_route_entry_encode(e, enc, sizeof enc);
  if (n < 0) {
    p->send_errors++;
    return;
  }
  send_encoded(p, e->owner, e->name, e->version, enc, (size_t)n);
}

/* A name of exactly 63 characters (the DNS label limit), unique per k. */
static void long_name(char *dst, uint64_t k) {
  int n = snprintf(dst, WR_ROUTE_NAME_MAX + 1, "p%" PRIu64 "-", k);
  memset(dst + n, 'x', (size_t)(WR_ROUTE_NAME_MAX - n));
  dst[WR_ROUTE_NAME_MAX] = 0;
}

static void fill(poison *p, wr_route_entry *e, const char *owner,
                 const char *name, uint64_t seq) {
  memset(e, 0, sizeof *e);
  snprintf(e->name, sizeof e->name, "%s", name);
  snprintf(e->owner, sizeof e->owner, "%s", owner);
  memset(e->account, 'a', WR_ROUTE_ACCOUNT_MAX);
  randombytes_buf(e->session, sizeof e->session);
  e->epoch = p->epoch;
  e->seq = seq;
  e->state = WR_ROUTE_ACTIVE;
}

static void flood_some(poison *p, unsigned n) {
  for (unsigned i = 0; i < n && p->flooded < p->flood_max; i++) {
    char name[WR_ROUTE_NAME_MAX + 1];
    wr_route_entry e;
    long_name(name, p->flooded);
    if (p->fake_owners && (p->flooded & 1)) {
      /* Round robin over the made-up owners: each one's seqs ascend. */
      uint64_t k = p->flooded / 2;
      char owner[32];
      snprintf(owner, sizeof owner, "fake-%" PRIu64, k % p->fake_owners);
      fill(p, &e, owner, name, k / p->fake_owners + 1);
    } else {
      fill(p, &e, p->id, name, ++p->seq);
    }
    /* Versions climb from the top of the range down to where they can
     * still rise: every node's Lamport clock ends at the top. */
    if (p->version < WR_ROUTE_VERSION_MAX) p->version++;
    e.version = p->version;
    e.claimed_at = e.version;
    send_entry(p, &e);
    p->flooded++;
  }
}

/* One entry exactly at WR_ROUTE_VERSION_MAX (accepted), and one just
 * above it written with protobuf-c directly (wr_route_entry_encode
 * refuses it, as every node must). */
static void send_top(poison *p) {
  wr_route_entry e;
  char name[WR_ROUTE_NAME_MAX + 1];
  long_name(name, UINT64_C(1) << 40);
  fill(p, &e, p->id, name, ++p->seq);
  e.version = WR_ROUTE_VERSION_MAX;
  e.claimed_at = WR_ROUTE_VERSION_MAX;
  send_entry(p, &e);
  p->top_sent++;

  Warren__RouteEntry m = WARREN__ROUTE_ENTRY__INIT;
  m.name = name;
  m.owner = p->id;
  m.account = e.account;
  m.session.data = e.session;
  m.session.len = sizeof e.session;
  m.epoch = p->epoch;
  m.seq = ++p->seq;
  m.version = WR_ROUTE_VERSION_MAX + 1;
  m.claimed_at = UINT64_MAX;
  m.end = 1;
  uint8_t enc[WR_ROUTE_ENCODED_MAX];
  size_t n = warren__route_entry__get_packed_size(&m);
  if (n <= sizeof enc) {
    warren__route_entry__pack(&m, enc);
    send_encoded(p, p->id, name, WR_ROUTE_VERSION_MAX, enc, n);
    p->over_top_sent++;
  }
}

/* Two forged owners claim the contested names for two accounts in turn,
 * each claim dated earlier than the one before: every claim wins, so
 * every node's winner flips each time. */
static void send_conflict(poison *p) {
  static const char *ghosts[2] = {"ghost-a", "ghost-b"};
  static const char *accounts[2] = {"acct-a", "acct-b"};
  unsigned g = (unsigned)(p->conflicts & 1);
  char name[32];
  snprintf(name, sizeof name, "contested-%u",
           (unsigned)((p->conflicts / 2) % CONTESTED));
  wr_route_entry e;
  fill(p, &e, ghosts[g], name, ++p->ghost_seq[g]);
  snprintf(e.account, sizeof e.account, "%s", accounts[g]);
  if (p->version < WR_ROUTE_VERSION_MAX) p->version++;
  e.version = p->version;
  e.claimed_at = UINT64_C(1) << 40 > p->conflicts
                     ? (UINT64_C(1) << 40) - p->conflicts
                     : 1;
  send_entry(p, &e);
  p->conflicts++;
}

static void report(poison *p) {
  printf("{\"flooded\":%" PRIu64 ",\"top\":%" PRIu64 ",\"over_top\":%" PRIu64
         ",\"conflicts\":%" PRIu64 ",\"send_errors\":%" PRIu64 "}\n",
         p->flooded, p->top_sent, p->over_top_sent, p->conflicts,
         p->send_errors);
  fflush(stdout);
}

static void on_closed(void *ud) {
  poison *p = ud;
  uv_close((uv_handle_t *)&p->tick, NULL);
  uv_close((uv_handle_t *)&p->sigterm, NULL);
  uv_close((uv_handle_t *)&p->sigint, NULL);
}

static void finish(poison *p) {
  if (!p->swim) return;
  report(p);
  uv_timer_stop(&p->tick);
  wr_swim_uv *s = p->swim;
  p->swim = NULL;
  wr_swim_uv_close(s, on_closed, p);
}

static void on_tick(uv_timer_t *t) {
  poison *p = t->data;
  uint64_t now = now_ms(p);
  if (now >= p->end_at) {
    finish(p);
    return;
  }
  /* Nothing until a member answered: pushes need someone to go to. */
  if (wr_swim_uv_joining(p->swim)) return;
  if (!p->joined) {
    p->joined = 1;
    p->next_conflict = now;
    /* Start from just under the top, so that the flood's versions reach
     * it within the run. */
    p->version = WR_ROUTE_VERSION_MAX - p->flood_max / 2;
    fprintf(stderr, "warren-poison: joined as %s\n", p->id);
  }
  flood_some(p, p->rate * TICK_MS / 1000 ? p->rate * TICK_MS / 1000 : 1);
  if ((now / TICK_MS) % 10 == 0) send_top(p);
  while (p->conflict_ms && now >= p->next_conflict) {
    send_conflict(p);
    p->next_conflict += p->conflict_ms;
  }
  wr_swim_uv_kick(p->swim);
}

static void on_signal(uv_signal_t *s, int sig) {
  (void)sig;
  finish(s->data);
}

static int read_secret(const char *path, uint8_t secret[32]) {
  char buf[256];
  FILE *f = fopen(path, "r");
  if (!f) {
    fprintf(stderr, "warren-poison: cannot read %s: %s\n", path,
            strerror(errno));
    return -1;
  }
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  buf[n] = 0;
  int rv = wr_keys_parse_secret(buf, n, secret);
  sodium_memzero(buf, sizeof buf);
  if (rv != 0) fprintf(stderr, "warren-poison: %s: not a secret\n", path);
  return rv;
}

static void usage(FILE *f) {
  fprintf(f,
          "usage: warren-poison --id ID --gossip ADDR:PORT --join HOST:PORT\n"
          "                     --key-file FILE [--flood N] [--rate N]\n"
          "                     [--conflict-ms MS] [--duration-s S]\n"
          "                     [--fake-owners N]\n"
          "                     [--gossip-profile lan|wan|local]\n\n"
          "A hostile mesh member for the chaos harness (docs/CHAOS.md):\n"
          "gossips N bindings at the length limits (--flood, default\n"
          "20000, --rate per second, default 2000), entries at and over\n"
          "the top version, and a conflicting claim every MS ms (default\n"
          "5; 0 = none), for S seconds (default 10), then prints what it\n"
          "sent as one JSON line.  --fake-owners N: every other flood\n"
          "entry comes from one of N made-up owners (default 0).\n");
}

static int num(const char *flag, const char *v, uint64_t max, uint64_t *out) {
  char *end;
  errno = 0;
  unsigned long long x = strtoull(v, &end, 10);
  if (errno || *end || end == v || x > max || v[0] == '-') {
    fprintf(stderr, "warren-poison: %s wants a number 0..%" PRIu64 "\n",
            flag, max);
    return -1;
  }
  *out = x;
  return 0;
}

int main(int argc, char **argv) {
  static poison p;
  const char *gossip = NULL, *join = NULL, *keyfile = NULL, *id = NULL;
  const char *profile = "local";
  uint64_t flood = 20000, rate = 2000, conflict = 5, duration = 10;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
      usage(stdout);
      return 0;
    }
    if (!strcmp(a, "--version")) {
      printf("warren-poison %s\n", WARREN_VERSION);
      return 0;
    }
    if (!v) {
      fprintf(stderr, "warren-poison: unknown or incomplete flag %s\n", a);
      return 2;
    }
    i++;
    int rv = 0;
    if (!strcmp(a, "--id")) id = v;
    else if (!strcmp(a, "--gossip")) gossip = v;
    else if (!strcmp(a, "--join")) join = v;
    else if (!strcmp(a, "--key-file")) keyfile = v;
    else if (!strcmp(a, "--gossip-profile")) profile = v;
    else if (!strcmp(a, "--flood")) rv = num(a, v, 10000000, &flood);
    else if (!strcmp(a, "--rate")) rv = num(a, v, 100000, &rate);
    else if (!strcmp(a, "--fake-owners")) rv = num(a, v, 1000000, &p.fake_owners);
    else if (!strcmp(a, "--conflict-ms")) rv = num(a, v, 60000, &conflict);
    else if (!strcmp(a, "--duration-s")) rv = num(a, v, 86400, &duration);
    else {
      fprintf(stderr, "warren-poison: unknown flag %s\n", a);
      return 2;
    }
    if (rv) return 2;
  }
  if (!id || !gossip || !join || !keyfile || strlen(id) > WR_SWIM_ID_MAX) {
    fprintf(stderr, "warren-poison: --id, --gossip, --join and --key-file "
                    "are required\n");
    return 2;
  }
  if (sodium_init() < 0) return 1;
  uint8_t secret[32], key[32];
  if (read_secret(keyfile, secret) != 0) return 1;

  p.loop = uv_default_loop();
  snprintf(p.id, sizeof p.id, "%s", id);
  p.epoch = (uint64_t)uv_now(p.loop) + 1; /* any: we are a new owner */
  p.flood_max = flood;
  p.rate = rate ? (unsigned)rate : 1;
  p.conflict_ms = conflict;

  wr_swim_uv_config c;
  memset(&c, 0, sizeof c);
  c.listen = gossip;
  wr_swim_config_default(&c.swim);
  if (wr_swim_config_profile(&c.swim, profile) != 0) {
    fprintf(stderr, "warren-poison: unknown profile %s\n", profile);
    return 2;
  }
  snprintf(c.swim.id, sizeof c.swim.id, "%s", id);
  wr_swim_keyring_init(&p.keyring);
  wr_keys_gossip_key(secret, key);
  wr_swim_keyring_add(&p.keyring, key, 1);
  sodium_memzero(key, sizeof key);
  sodium_memzero(secret, sizeof secret);
  c.keyring = &p.keyring;
  int rv = wr_swim_uv_start(&p.swim, p.loop, &c);
  if (rv != 0) {
    fprintf(stderr, "warren-poison: gossip on %s: %s\n", gossip,
            wr_strerror(rv));
    return 1;
  }
  char host[256];
  const char *colon = strrchr(join, ':');
  uint64_t port;
  if (!colon || (size_t)(colon - join) >= sizeof host ||
      num("--join", colon + 1, 65535, &port) != 0) {
    fprintf(stderr, "warren-poison: --join wants HOST:PORT\n");
    return 2;
  }
  memcpy(host, join, (size_t)(colon - join));
  host[colon - join] = 0;
  wr_swim_uv_seed seed = {.host = host, .port = (uint16_t)port};
  if ((rv = wr_swim_uv_join(p.swim, &seed, 1)) != 0) {
    fprintf(stderr, "warren-poison: join: %s\n", wr_strerror(rv));
    return 1;
  }
  p.end_at = uv_now(p.loop) + duration * 1000;
  uv_timer_init(p.loop, &p.tick);
  p.tick.data = &p;
  uv_timer_start(&p.tick, on_tick, TICK_MS, TICK_MS);
  uv_signal_init(p.loop, &p.sigterm);
  uv_signal_init(p.loop, &p.sigint);
  p.sigterm.data = p.sigint.data = &p;
  uv_signal_start(&p.sigterm, on_signal, SIGTERM);
  uv_signal_start(&p.sigint, on_signal, SIGINT);
  uv_run(p.loop, UV_RUN_DEFAULT);
  return uv_loop_close(p.loop) == 0 ? 0 : 1;
}
