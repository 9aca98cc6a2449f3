/*
 * The `warren` program: subcommands http (the client, with an embedded node
 * when no --node is given), node (an edge node), keygen and pubkey.
 *
 * The command line is a contract users' scripts rely on (DESIGN.md
 * "Command-line contract"): extend it, never break it.  Every usage error
 * is one line on stderr and exit status 2; runtime failures exit 1.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>
#include <sodium.h>
#include <uv.h>

#include "warren/admin.h"
#include "warren/client.h"
#include "warren/err.h"
#include "warren/ingress.h"
#include "warren/inspect_uv.h"
#include "warren/link.h"
#include "warren/log.h"
#include "warren/metrics.h"
#include "warren/noise.h"
#include "warren/swim_uv.h"

#include "config.h"
#include "loopstall.h"
#include "mesh.h"
#include "warren/control.h"
#include "warren/identity.h"
#include "seeds.h"
#include "tokens.h"

#define KEY_FILE_MAX 4096

static const char usage_main[] =
    "usage: warren COMMAND [ARGS...]\n"
    "\n"
    "  http PORT      serve localhost:PORT at a public URL through a node\n"
    "  node           run an edge node\n"
    "  keygen         print a new cluster secret (keep it private)\n"
    "  pubkey FILE    print the fleet public key clients pin (--fleet-key)\n"
    "\n"
    "  --help, -h     this text (warren COMMAND --help for a command)\n"
    "  --version      print the version\n"
    "\n"
    "Environment: WARREN_LOG=debug|info|warn|error (stderr log level).\n";

static const char usage_http[] =
    "usage: warren http PORT [--name NAME] [--node HOST:PORT] [--fleet-key KEY]\n"
    "                        [--token TOKEN] [--balance] [--listen ADDR:PORT]\n"
    "                        [--inspect ADDR:PORT|off]\n"
    "                        [--upstream-timeout MS] [--idle-timeout MS]\n"
    "                        [--head-timeout MS] [--body-min-rate BYTES/S]\n"
    "\n"
    "Serves http://localhost:PORT at http://NAME.DOMAIN and prints one line on\n"
    "stdout once the name is bound:\n"
    "  Forwarding http://NAME.DOMAIN[:PORT] -> http://localhost:PORT\n"
    "then, with the inspector on, a second one:\n"
    "  Inspect http://127.0.0.1:4040\n"
    "Logs go to stderr.  Reconnects with backoff, forever, keeping NAME.\n"
    "\n"
    "  --name NAME          the name to serve (a DNS label); default: random,\n"
    "                       like quiet-otter-4821\n"
    "  --node HOST:PORT     a node's public HTTP port; without it an embedded\n"
    "                       node runs in this process (domain \"localhost\")\n"
    "  --fleet-key KEY      the fleet public key to pin (warren pubkey FILE);\n"
    "                       required with --node\n"
    "  --token TOKEN        auth token, when the node requires one\n"
    "  --balance            share NAME with your account's other --balance\n"
    "                       clients: all of them serve it (default: a newer\n"
    "                       client takes the name over, the older one exits)\n"
    "  --listen ADDR:PORT   embedded node's address (default 127.0.0.1:8080)\n"
    "  --inspect ADDR:PORT  the request inspector (a live page of the requests\n"
    "                       with replay, and a JSON API); default\n"
    "                       127.0.0.1:4040, or the next free port up to 4059;\n"
    "                       off: no inspector, nothing captured\n"
    "  --upstream-timeout MS  embedded node: 504 when the local server has\n"
    "                       not answered within MS (default 60000)\n"
    "  --idle-timeout MS, --head-timeout MS, --body-min-rate BYTES/S\n"
    "                       embedded node: as for `warren node` (defaults\n"
    "                       75000, 30000, 500); with --node, set them on\n"
    "                       that node instead\n"
    "\n"
    "Your names belong to your identity key, made on first use in\n"
    "~/.config/warren/identity ($XDG_CONFIG_HOME/warren/identity, or the file\n"
    "$WARREN_IDENTITY names): a restarted client keeps its names and no other\n"
    "client can take them.  On a fleet with a tokens file, your --token's\n"
    "account owns them instead.\n";

static const char usage_node[] =
    "usage: warren node --id ID --http ADDR:PORT --admin ADDR:PORT\n"
    "                   --domain DOMAIN --key-file FILE [--token TOKEN]\n"
    "                   [--tokens FILE]\n"
    "                   [--admin-token TOKEN] [--gossip ADDR:PORT]\n"
    "                   [--join HOST:PORT,...|dns:NAME:PORT] [--config FILE]\n"
    "                   [--gossip-profile lan|wan|local] [--region R]\n"
    "                   [--gossip-set K=V,...]\n"
    "                   [--tags K=V,...] [--upstream-timeout MS]\n"
    "                   [--idle-timeout MS] [--head-timeout MS]\n"
    "                   [--body-min-rate BYTES/S]\n"
    "                   [--proxy-protocol-from IP,...]\n"
    "                   [--max-conns N] [--max-conns-per-ip N]\n"
    "\n"
    "  --id ID              this node's name in the mesh\n"
    "  --http ADDR:PORT     public port: visitors and tunnel clients\n"
    "  --admin ADDR:PORT    admin API (members, routes, status, metrics);\n"
    "                       keep it on loopback\n"
    "  --domain DOMAIN      names are served as NAME.DOMAIN\n"
    "  --key-file FILE      the cluster secret (warren keygen > FILE)\n"
    "  --token TOKEN        require this token from tunnel clients\n"
    "  --tokens FILE        accounts: [account] sections with token = T lines\n"
    "                       and names = reserved,names (docs/ROUTES.md);\n"
    "                       clients bind as the account of their token;\n"
    "                       reloaded on SIGHUP\n"
    "  --admin-token TOKEN  require this bearer token on the admin API\n"
    "  --gossip ADDR:PORT   membership (SWIM gossip): UDP gossip and TCP\n"
    "                       state sync on this address, which peers must be\n"
    "                       able to reach (not 0.0.0.0); without it the node\n"
    "                       runs alone\n"
    "  --join SEEDS         join the mesh through HOST:PORT,... (gossip\n"
    "                       addresses of members), or dns:NAME:PORT (every\n"
    "                       A/AAAA record of NAME is a seed); retried with\n"
    "                       backoff until a member answers; needs --gossip\n"
    "  --gossip-profile P   lan (default), wan or local (one host, tests)\n"
    "  --gossip-set K=V,... override single gossip tunables after the\n"
    "                       profile (probe-interval-ms, suspicion-mult, ...;\n"
    "                       docs/SWIM.md lists them)\n"
    "  --region R           region advertised to the mesh (a word)\n"
    "  --tags K=V,...       labels advertised to the mesh\n"
    "  --config FILE        INI file with these options (flag names without\n"
    "                       dashes, in a [node] section); flags win\n"
    "  --upstream-timeout MS  504 when a local server has not answered within\n"
    "                       MS (default 60000)\n"
    "  --idle-timeout MS    close idle keep-alive visitors, and answer 408\n"
    "                       to one whose request body stalls this long\n"
    "                       (default 75000)\n"
    "  --head-timeout MS    a request head must be complete within MS of its\n"
    "                       first byte, however it trickles in (else 408\n"
    "                       and close); also how long a new connection may\n"
    "                       stay silent (default 30000)\n"
    "  --body-min-rate BYTES/S  a request body must average this rate once\n"
    "                       it had --head-timeout of reading time (time the\n"
    "                       local server is not reading does not count),\n"
    "                       else 408 and close; 0 = off (default 500)\n"
    "  --proxy-protocol-from IP,...  connections from these load balancers\n"
    "                       start with a PROXY v1/v2 header; X-Forwarded-For\n"
    "                       then carries the real client address\n"
    "  --max-conns N        visitor connections open at once; more get 503\n"
    "                       and close (default: the descriptor limit less a\n"
    "                       quarter, at least 64, kept for tunnels, node\n"
    "                       links and the admin API)\n"
    "  --max-conns-per-ip N  the same per source address; load balancers in\n"
    "                       --proxy-protocol-from are exempt (default: a\n"
    "                       quarter of --max-conns)\n"
    "\n"
    "SIGINT/SIGTERM: the node leaves the mesh (peers see it as \"left\", not\n"
    "dead), clients are told to move (GOAWAY), then the node exits.  A second\n"
    "signal skips the leave.\n";

#include <stdarg.h>

__attribute__((format(printf, 1, 2))) static int usage_error(const char *fmt,
                                                             ...) {
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "warren: ");
  vfprintf(stderr, fmt, ap);
  fprintf(stderr, " (see --help)\n");
  va_end(ap);
  return 2;
}

/* Every program and command answers --version (DESIGN.md). */
static int print_version(void) {
  printf("warren %s\n", WARREN_VERSION);
  return fflush(stdout) == 0 ? 0 : 1;
}

/* ---- keys ---- */

static int read_secret(const char *path, uint8_t secret[32]) {
  FILE *f = fopen(path, "r");
  if (!f) {
    fprintf(stderr, "warren: cannot read key file %s: %s\n", path,
            strerror(errno));
    return 1;
  }
  char buf[KEY_FILE_MAX];
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  buf[n] = 0;
  if (wr_keys_parse_secret(buf, n, secret) != 0) {
    fprintf(stderr,
            "warren: %s is not a cluster secret (64 hex characters, as "
            "written by `warren keygen`)\n",
            path);
    sodium_memzero(buf, sizeof buf);
    return 1;
  }
  sodium_memzero(buf, sizeof buf);
  return 0;
}

static int cmd_keygen(int argc, char **argv) {
  if (argc > 2 && (strcmp(argv[2], "--help") == 0 || strcmp(argv[2], "-h") == 0)) {
    printf("usage: warren keygen > FILE\n\nPrints a new random cluster "
           "secret.  The gossip key and the fleet\nNoise key derive from it; "
           "give the file to every node (mode 0600).\n");
    return 0;
  }
  if (argc > 2 && !strcmp(argv[2], "--version")) return print_version();
  if (argc > 2) return usage_error("keygen takes no arguments: '%s'", argv[2]);
  /* `warren keygen > FILE`: the shell created FILE with the umask's mode,
   * usually readable by everyone, and the secret must not be (ssh-keygen
   * writes its keys 0600).  Only a regular file is changed, before the
   * secret is in it; a pipe or a terminal is left alone. */
  struct stat st;
  if (fstat(STDOUT_FILENO, &st) == 0 && S_ISREG(st.st_mode) &&
      (st.st_mode & 077) && fchmod(STDOUT_FILENO, st.st_mode & 0700) != 0)
    fprintf(stderr, "warren: warning: cannot make the key file private "
                    "(chmod 600 it yourself): %s\n", strerror(errno));
  uint8_t secret[32];
  char hex[65];
  randombytes_buf(secret, sizeof secret);
  wr_keys_format_secret(secret, hex);
  printf("%s\n", hex);
  sodium_memzero(secret, sizeof secret);
  sodium_memzero(hex, sizeof hex);
  return fflush(stdout) == 0 ? 0 : 1;
}

static int cmd_pubkey(int argc, char **argv) {
  if (argc > 2 && (strcmp(argv[2], "--help") == 0 || strcmp(argv[2], "-h") == 0)) {
    printf("usage: warren pubkey FILE\n\nPrints the fleet public key "
           "derived from the cluster secret in FILE;\nclients pin it with "
           "--fleet-key.\n");
    return 0;
  }
  if (argc > 2 && !strcmp(argv[2], "--version")) return print_version();
  if (argc != 3) {
    fprintf(stderr, "warren: pubkey needs exactly one FILE (see --help)\n");
    return 2;
  }
  uint8_t secret[32], pub[32], priv[32];
  if (read_secret(argv[2], secret) != 0) return 1;
  wr_keys_fleet_keypair(secret, pub, priv);
  char out[44];
  wr_keys_format_pub(pub, out);
  printf("%s\n", out);
  sodium_memzero(secret, sizeof secret);
  sodium_memzero(priv, sizeof priv);
  return 0;
}

/* ---- accounts ---- */

/* Reads and parses the tokens file; 0 and a new table, or an error with
 * a one-line message in |err|. */
static int load_tokens(const char *path, wr_tokens **pt, char *err,
                       size_t errlen) {
  FILE *f = fopen(path, "r");
  if (!f) {
    snprintf(err, errlen, "cannot read %s: %s", path, strerror(errno));
    return WR_ERR_IO;
  }
  char *buf = malloc(WR_TOKENS_FILE_MAX + 2);
  size_t n = buf ? fread(buf, 1, WR_TOKENS_FILE_MAX + 1, f) : 0;
  fclose(f);
  if (!buf) {
    snprintf(err, errlen, "out of memory");
    return WR_ERR_NOMEM;
  }
  buf[n] = 0;
  int rv;
  char why[240];
  if (n > WR_TOKENS_FILE_MAX) {
    snprintf(err, errlen, "%s is larger than 1 MiB", path);
    rv = WR_ERR_INVAL;
  } else if (memchr(buf, 0, n)) {
    snprintf(err, errlen, "%s is not a text file", path);
    rv = WR_ERR_INVAL;
  } else if ((rv = wr_tokens_parse(buf, pt, why, sizeof why)) != 0) {
    snprintf(err, errlen, "%s: %s", path, why);
  }
  sodium_memzero(buf, n);
  free(buf);
  return rv;
}

/* ---- the running program ---- */

typedef struct app {
  uv_loop_t *loop;
  uv_signal_t sigint, sigterm, sighup;
  uv_timer_t force;
  wr_ingress *ig;
  wr_client *client;
  wr_admin *admin;
  wr_inspector *inspector; /* warren http: the request inspector */
  wr_metrics *metrics;
  int local_port;
  int exit_code;
  int stopping;
  int parts;             /* parts still stopping before the admin closes */
  char id[128];
  char gossip[128];
  char http[128];
  /* Membership (NULL when the node runs alone).  The keyring must outlive
   * the core, so it lives here, in cmd_node's frame. */
  wr_swim_uv *swim;
  wr_loopstall stall; /* warren_loop_stall_* in /metrics */
  wr_swim_keyring keyring;
  /* The routes table and its wiring (warren node only). */
  wr_mesh *mesh;
  /* --tokens FILE: accounts, replaced whole on SIGHUP (NULL: none). */
  char tokens_path[1024];
  wr_tokens *tokens;
  int leaving;
  uint64_t self_since; /* uv_now when our own state last changed */
  /* Latest version per "event/" user key (POST /events), bounded: the
   * core re-queues every USER copy the callback calls news. */
  struct {
    char key[WR_SWIM_ID_MAX + 1];
    uint64_t version, seen;
  } ev[64];
  size_t nev;
  uint64_t *m_swim[24];
  int64_t *g_swim[8];
} app;

static void force_exit(uv_timer_t *t) {
  app *a = t->data;
  WR_LOG_WARNF("main", "forced_exit", "reason=\"shutdown took too long\"");
  exit(a->exit_code);
}

/*
 * Shutdown order.  The admin server owns the metrics registry that the
 * ingress and its links count into, so it closes last: only once every
 * other part (the client, the ingress with all its visitor connections
 * and tunnel links) has called back.  Until then the parts keep counting
 * and GET /metrics keeps answering.  Each part started with
 * part_done(a) as its callback adds one to a->parts first.
 */
static void part_done(void *ud) {
  app *a = ud;
  if (!a || --a->parts > 0) return;
  /* The ingress has closed every link (their unbound hooks ran), so
   * nothing calls into the mesh any more. */
  if (a->mesh) wr_mesh_close(a->mesh);
  a->mesh = NULL;
  if (a->admin) wr_admin_close(a->admin, NULL, NULL);
  a->admin = NULL;
  /* After the client: its connections fed the inspector's capture. */
  if (a->inspector) wr_inspector_stop(a->inspector, NULL, NULL);
  a->inspector = NULL;
}

static void app_stop(app *a, int code) {
  if (a->stopping) return;
  a->stopping = 1;
  a->exit_code = code;
  /* Membership first (it holds no metrics pointers: its numbers are read
   * by the collect hook, which checks a->swim). */
  if (a->swim) wr_swim_uv_close(a->swim, NULL, NULL);
  a->swim = NULL;
  if (a->mesh) wr_mesh_set_swim(a->mesh, NULL);
  uv_close((uv_handle_t *)&a->sigint, NULL);
  uv_close((uv_handle_t *)&a->sigterm, NULL);
  if (a->sighup.data) uv_close((uv_handle_t *)&a->sighup, NULL);
  /* Whatever is still open after 2 s is not worth waiting for. */
  uv_timer_init(a->loop, &a->force);
  a->force.data = a;
  uv_timer_start(&a->force, force_exit, 2000, 0);
  uv_unref((uv_handle_t *)&a->force);
  /* One count held by app_stop itself, so a part that finishes at once
   * cannot close the admin server before the others have started. */
  a->parts = 1;
  if (a->client) {
    a->parts++;
    wr_client_stop(a->client, part_done, a);
  }
  a->client = NULL;
  if (a->ig) {
    a->parts++;
    wr_ingress_stop(a->ig, part_done, a);
  }
  a->ig = NULL;
  part_done(a);
}

static void on_left(void *ud) {
  app *a = ud;
  app_stop(a, a->exit_code);
}

static void on_signal(uv_signal_t *s, int sig) {
  app *a = s->data;
  WR_LOG_INFOF("main", "signal", "sig=%d", sig);
  if (a->ig && !a->stopping && sig == SIGTERM) wr_ingress_drain(a->ig);
  /* A member that leaves is "left" everywhere, never suspected or dead:
   * broadcast LEFT and keep gossiping for a short grace, then stop.  A
   * second signal during the grace stops at once. */
  if (a->swim && !a->leaving && !a->stopping) {
    a->leaving = 1;
    a->exit_code = 0;
    a->self_since = uv_now(a->loop);
    wr_swim_uv_leave(a->swim, 0, on_left, a);
    return;
  }
  app_stop(a, 0);
}

static void setup_signals(app *a) {
  uv_signal_init(a->loop, &a->sigint);
  uv_signal_init(a->loop, &a->sigterm);
  a->sigint.data = a->sigterm.data = a;
  uv_signal_start(&a->sigint, on_signal, SIGINT);
  uv_signal_start(&a->sigterm, on_signal, SIGTERM);
}

/* SIGHUP: reload the tokens file.  A bad file keeps the old table (and
 * says why): a typo must not lock every client out. */
static void on_sighup(uv_signal_t *s, int sig) {
  (void)sig;
  app *a = s->data;
  if (!a->tokens_path[0]) {
    WR_LOG_INFOF("main", "reload", "what=nothing reason=\"no --tokens\"");
    return;
  }
  wr_tokens *t = NULL;
  char err[400];
  if (load_tokens(a->tokens_path, &t, err, sizeof err) != 0) {
    WR_LOG_ERRORF("main", "reload_failed", "what=tokens err=\"%s\" "
                  "kept=old", err);
    return;
  }
  wr_tokens *old = a->tokens;
  a->tokens = t;
  if (a->mesh) wr_mesh_set_tokens(a->mesh, t);
  wr_tokens_del(old);
  WR_LOG_INFOF("main", "reload", "what=tokens accounts=%zu tokens=%zu",
               wr_tokens_accounts(t), wr_tokens_count(t));
}

static int run_loop(app *a) {
  uv_run(a->loop, UV_RUN_DEFAULT);
  /* Close stragglers (the force timer, the unreferenced loop-stall
   * handle) so the loop closes cleanly. */
  wr_loopstall_stop(&a->stall);
  if (a->stopping) uv_close((uv_handle_t *)&a->force, NULL);
  uv_run(a->loop, UV_RUN_DEFAULT);
  uv_loop_close(a->loop);
  wr_metrics_del(a->metrics);
  wr_tokens_del(a->tokens);
  return a->exit_code;
}

static uint64_t parse_ms(const char *flag, const char *v, int *bad) {
  char *end;
  errno = 0;
  unsigned long long x = strtoull(v, &end, 10);
  if (*v == 0 || *end || errno || x == 0 || x > 86400000ULL) {
    usage_error("%s wants a number of milliseconds", flag);
    *bad = 1;
    return 0;
  }
  return x;
}

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

/* The value of |key| in "k=v,k=v" tags, copied into |out|: its length,
 * or -1 when absent. */
static int tag_value(const char *tags, const char *key, char *out,
                     size_t cap) {
  size_t klen = strlen(key);
  for (const char *p = tags; p && *p; p = strchr(p, ',') ? strchr(p, ',') + 1
                                                          : NULL) {
    if (strncmp(p, key, klen) == 0 && p[klen] == '=') {
      const char *v = p + klen + 1;
      size_t n = strcspn(v, ",");
      snprintf(out, cap, "%.*s", (int)n, v);
      return (int)n;
    }
  }
  if (cap) out[0] = 0;
  return -1;
}

static json_t *member_json(const wr_swim_member_info *m, uint64_t now) {
  char g[80], d[80];
  addr_text(&m->gossip, g, sizeof g);
  addr_text(&m->data, d, sizeof d);
  uint64_t age = now > m->state_since ? now - m->state_since : 0;
  char admin[80];
  tag_value(m->tags ? m->tags : "", "admin", admin, sizeof admin);
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
static void count_members(app *a, json_int_t c[4]) {
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
  int rv = a->mesh ? wr_mesh_status(a->mesh, o) : 0;
  if (rv != 0) {
    json_decref(o);
    return rv;
  }
  return wr_admin_resp_json(resp, o);
}

static int h_drain(const wr_admin_req *req, wr_admin_resp *resp, void *ud) {
  (void)req;
  app *a = ud;
  if (a->ig) wr_ingress_drain(a->ig);
  return wr_admin_resp_json(resp, json_pack("{s:b}", "draining", 1));
}

/* Records |key| at |version| unless that version or a newer one was
 * already seen (returns 1 then); a full table forgets the oldest key. */
static int event_seen(app *a, const char *key, uint64_t version,
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

static int printable_word(const char *s);

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

static void mesh_collect(void *ud) {
  app *a = ud;
  if (a->mesh) wr_mesh_collect(a->mesh); /* closed: the last values stay */
}

static int start_admin(app *a, const char *listen, const char *token) {
  int rv = wr_admin_new(&a->admin, a->loop, listen, token, NULL);
  if (rv != 0) {
    fprintf(stderr, "warren: cannot serve the admin API on %s: %s\n", listen,
            wr_strerror(rv));
    return rv;
  }
  wr_admin_route(a->admin, "GET", "/members", h_members, a);
  wr_admin_route(a->admin, "GET", "/status", h_status, a);
  wr_admin_route(a->admin, "POST", "/drain", h_drain, a);
  wr_admin_route(a->admin, "POST", "/events", h_events, a);
  a->metrics = NULL;
  return 0;
}

static int start_ingress(app *a, const char *listen, const char *domain,
                         const uint8_t secret[32], const char *token,
                         uint64_t upstream_ms, uint64_t idle_ms,
                         uint64_t head_ms, uint64_t body_min_rate,
                         const char *proxy_from, uint64_t max_conns,
                         uint64_t max_conns_ip,
                         wr_metrics *m) {
  wr_ingress_config ic;
  memset(&ic, 0, sizeof ic);
  ic.listen = listen;
  ic.domain = domain;
  ic.node_id = a->id;
  uint8_t pub[32];
  wr_keys_fleet_keypair(secret, pub, ic.fleet_priv);
  /* Node links need the mesh (owners are found through it). */
  if (a->mesh) {
    wr_keys_node_psk(secret, ic.node_psk);
    ic.have_node_psk = 1;
  }
  ic.token = token;
  ic.upstream_timeout_ms = upstream_ms;
  ic.idle_timeout_ms = idle_ms;
  ic.head_timeout_ms = head_ms;
  ic.body_min_rate = body_min_rate;
  ic.proxy_from = proxy_from;
  ic.max_conns = (unsigned)max_conns;
  ic.max_conns_per_source = (unsigned)max_conns_ip;
  ic.metrics = m;
  if (a->mesh) wr_mesh_ingress_hooks(a->mesh, &ic);
  int rv = wr_ingress_start(&a->ig, a->loop, &ic);
  if (rv == 0 && a->mesh) wr_mesh_set_ingress(a->mesh, a->ig);
  sodium_memzero(ic.fleet_priv, 32);
  sodium_memzero(ic.node_psk, 32);
  if (rv != 0) {
    fprintf(stderr, "warren: cannot listen on %s: %s\n", listen,
            wr_strerror(rv));
    a->ig = NULL;
  }
  return rv;
}

/* ---- membership ---- */

/* Counters mirrored from the core's and the adapter's stats at each
 * scrape (the collect hook), so neither holds pointers into a registry
 * that the admin server frees on its own schedule. */
enum {
  MS_RX_PACKETS, MS_TX_PACKETS, MS_RX_BYTES, MS_TX_BYTES, MS_MALFORMED,
  MS_BADSEAL, MS_SUSPICIONS, MS_DEATHS, MS_REFUTATIONS, MS_PROBES,
  MS_PROBE_FAILURES, MS_SOCK_ERRORS, MS_SEND_DROPS, MS_SYNC_OK, MS_SYNC_FAILED,
  MS_SYNC_REFUSED, MS_REFUSED, MS_RECONNECTS, MS_EVICTED_MEMBER,
  MS_EVICTED_USER, MS_SYNC_VERSION, MS_SYNC_APP_REJECTED, MS_SYNC_IDLE, MS_N
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
      st.syncs_version, st.syncs_app_rejected, us.sync_idle};
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

/* A word of printable ASCII without spaces (what the codec carries). */
static int printable_word(const char *s) {
  for (; *s; s++)
    if (*s <= ' ' || *s > '~') return 0;
  return 1;
}

static int is_wildcard(const struct sockaddr_storage *ss) {
  static const uint8_t zero[16];
  if (ss->ss_family == AF_INET)
    return ((const struct sockaddr_in *)ss)->sin_addr.s_addr == 0;
  return memcmp(&((const struct sockaddr_in6 *)ss)->sin6_addr, zero, 16) == 0;
}

/* Applies --gossip-set "k=v,k=v" to |c|; 0, or -1 with |err| set. */
static int apply_gossip_set(wr_swim_config *c, const char *list, char *err,
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
static int start_swim(app *a, const wr_node_opts *o, const uint8_t secret[32]) {
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
  if (tag_value(c.swim.tags, "admin", dummy, sizeof dummy) < 0) {
    size_t n = strlen(c.swim.tags);
    int w = snprintf(c.swim.tags + n, sizeof c.swim.tags - n, "%sadmin=%s",
                     n ? "," : "", o->admin);
    if (w < 0 || (size_t)w >= sizeof c.swim.tags - n) {
      c.swim.tags[n] = 0; /* too long: go without */
      WR_LOG_WARNF("main", "admin_tag_skipped",
                   "reason=\"--tags leave no room for admin=%s\"", o->admin);
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

/* ---- warren node ---- */

static int load_config(wr_node_opts *o, const char *path) {
  FILE *f = fopen(path, "r");
  if (!f) {
    fprintf(stderr, "warren: cannot read config %s: %s\n", path,
            strerror(errno));
    return 1;
  }
  /* A node's config is a few lines; 64 KiB is a generous bound. */
  char *buf = malloc(65537);
  size_t n = buf ? fread(buf, 1, 65536, f) : 0;
  int big = buf && n == 65536 && fgetc(f) != EOF;
  fclose(f);
  if (!buf) return 1;
  buf[n] = 0;
  int rv = 0;
  if (big) {
    fprintf(stderr, "warren: config %s is larger than 64 KiB\n", path);
    rv = 2;
  } else if (memchr(buf, 0, n)) {
    fprintf(stderr, "warren: config %s is not a text file\n", path);
    rv = 2;
  } else if (wr_node_opts_parse_ini(o, buf) != 0) {
    fprintf(stderr, "warren: config %s: %s\n", path, o->err);
    rv = 2;
  }
  free(buf);
  return rv;
}

static int cmd_node(int argc, char **argv) {
  wr_node_opts o;
  wr_node_opts_init(&o);
  /* The file first, so flags override it whatever their order. */
  for (int i = 2; i + 1 < argc; i++)
    if (!strcmp(argv[i], "--config")) {
      int rv = load_config(&o, argv[i + 1]);
      if (rv) return rv;
    }
  for (int i = 2; i < argc; i++) {
    const char *f = argv[i];
    if (!strcmp(f, "--help") || !strcmp(f, "-h")) {
      fputs(usage_node, stdout);
      return 0;
    }
    if (!strcmp(f, "--version")) return print_version();
    if (f[0] != '-' || f[1] != '-')
      return usage_error("unexpected argument '%s'", f);
    if (strcmp(f, "--config") != 0 && !wr_node_opts_known(f + 2))
      return usage_error("unknown flag '%s'", f);
    if (i + 1 >= argc) return usage_error("%s needs a value", f);
    const char *v = argv[++i];
    if (!strcmp(f, "--config")) continue;
    if (wr_node_opts_set(&o, f + 2, v) != 0) {
      if (strncmp(o.err, "unknown option", 14) == 0)
        return usage_error("unknown flag '%s'", f);
      return usage_error("%s", o.err);
    }
  }
  const char *id = o.id, *http = o.http, *admin = o.admin;
  const char *domain = o.domain, *keyfile = o.key_file;
  const char *token = o.token[0] ? o.token : NULL;
  const char *admin_token = o.admin_token[0] ? o.admin_token : NULL;
  const char *gossip = o.gossip[0] ? o.gossip : NULL;
  const char *join = o.join[0] ? o.join : NULL;
  const char *proxy_from = o.proxy_from[0] ? o.proxy_from : NULL;
  uint64_t upstream = o.upstream_ms, idle = o.idle_ms, head = o.head_ms;
  if (!id[0]) return usage_error("node needs %s", "--id");
  if (!http[0]) return usage_error("node needs %s", "--http");
  if (!domain[0]) return usage_error("node needs %s", "--domain");
  if (!keyfile[0]) return usage_error("node needs %s", "--key-file");
  struct sockaddr_storage ss;
  if (wr_parse_hostport(http, &ss) != 0)
    return usage_error("--http wants ADDR:PORT, got '%s'", http);
  if (wr_parse_hostport(admin, &ss) != 0)
    return usage_error("--admin wants ADDR:PORT, got '%s'", admin);
  if (gossip && wr_parse_hostport(gossip, &ss) != 0)
    return usage_error("--gossip wants ADDR:PORT, got '%s'", gossip);
  if (gossip && is_wildcard(&ss))
    return usage_error("--gossip must be an address peers can reach, not "
                       "'%s' (it is advertised to the mesh)", gossip);
  if (gossip && ((ss.ss_family == AF_INET &&
                  ((struct sockaddr_in *)&ss)->sin_port == 0) ||
                 (ss.ss_family == AF_INET6 &&
                  ((struct sockaddr_in6 *)&ss)->sin6_port == 0)))
    return usage_error("--gossip needs a port other than 0, got '%s'", gossip);
  if (join && !gossip)
    return usage_error("--join needs --gossip ADDR:PORT (the address peers "
                       "reach this node on)");
  if (o.gossip_profile[0] && strcmp(o.gossip_profile, "lan") &&
      strcmp(o.gossip_profile, "wan") && strcmp(o.gossip_profile, "local"))
    return usage_error("--gossip-profile wants lan, wan or local, got '%s'",
                       o.gossip_profile);
  if (o.gossip_set[0]) {
    wr_swim_config probe;
    char err[160];
    wr_swim_config_default(&probe);
    wr_swim_config_profile(&probe, o.gossip_profile[0] ? o.gossip_profile
                                                       : "lan");
    if (apply_gossip_set(&probe, o.gossip_set, err, sizeof err) != 0)
      return usage_error("%s", err);
    if (probe.probe_timeout_ms >= probe.probe_interval_ms)
      return usage_error("--gossip-set: probe-timeout-ms (%llu) must be "
                         "below probe-interval-ms (%llu)",
                         (unsigned long long)probe.probe_timeout_ms,
                         (unsigned long long)probe.probe_interval_ms);
  }
  if (strlen(o.region) > WR_SWIM_REGION_MAX || !printable_word(o.region))
    return usage_error("--region wants a word of at most %d printable "
                       "characters", WR_SWIM_REGION_MAX);
  if (strlen(o.tags) > WR_SWIM_TAGS_MAX || !printable_word(o.tags))
    return usage_error("--tags wants K=V,... without spaces, at most %d "
                       "characters", WR_SWIM_TAGS_MAX);
  if (strlen(id) > WR_SWIM_ID_MAX || !printable_word(id))
    return usage_error("--id wants a word of at most %d printable characters",
                       WR_SWIM_ID_MAX);
  if (join) {
    wr_seed_list seeds;
    char err[300];
    if (wr_seeds_parse(join, &seeds, err, sizeof err) != 0)
      return usage_error("--join: %s", err);
  }
  uint8_t secret[32];
  if (read_secret(keyfile, secret) != 0) return 1;
  /* Anyone who can read the secret can join the fleet and serve any
   * name.  ssh refuses such a key; a node only warns, since a key made
   * before keygen set 0600 (or a container's mounted secret) may well be
   * guarded some other way. */
  struct stat kst;
  if (stat(keyfile, &kst) == 0 && (kst.st_mode & 077))
    WR_LOG_WARNF("main", "key_file_readable",
                 "file=%s mode=%03o hint=\"chmod 600 %s\"", keyfile,
                 (unsigned)(kst.st_mode & 0777), keyfile);

  wr_tokens *tokens = NULL;
  if (o.tokens[0]) {
    char err[400];
    if (load_tokens(o.tokens, &tokens, err, sizeof err) != 0) {
      fprintf(stderr, "warren: --tokens %s\n", err);
      sodium_memzero(secret, sizeof secret);
      return 1;
    }
    struct stat tst;
    if (stat(o.tokens, &tst) == 0 && (tst.st_mode & 077))
      WR_LOG_WARNF("main", "tokens_file_readable",
                   "file=%s mode=%03o hint=\"chmod 600 %s\"", o.tokens,
                   (unsigned)(tst.st_mode & 0777), o.tokens);
  }

  app a;
  memset(&a, 0, sizeof a);
  a.loop = uv_default_loop();
  a.tokens = tokens;
  snprintf(a.tokens_path, sizeof a.tokens_path, "%s", o.tokens);
  snprintf(a.id, sizeof a.id, "%s", id);
  snprintf(a.http, sizeof a.http, "%s", http);
  if (gossip) snprintf(a.gossip, sizeof a.gossip, "%s", gossip);
  setup_signals(&a);
  if (start_admin(&a, admin, admin_token) != 0) {
    app_stop(&a, 1);
    return run_loop(&a);
  }
  if (wr_loopstall_start(&a.stall, a.loop, wr_admin_metrics(a.admin)) != 0)
    WR_LOG_WARNF("main", "loop_stall_off", "reason=\"%s\"",
                 "libuv has no idle-time metric");
  int mrv = wr_mesh_new(&a.mesh, a.loop, a.id, wr_admin_metrics(a.admin));
  if (mrv != 0) {
    fprintf(stderr, "warren: cannot create the routes table: %s\n",
            wr_strerror(mrv));
    app_stop(&a, 1);
    return run_loop(&a);
  }
  wr_mesh_admin_routes(a.mesh, a.admin);
  wr_mesh_set_tokens(a.mesh, a.tokens);
  uv_signal_init(a.loop, &a.sighup);
  a.sighup.data = &a;
  uv_signal_start(&a.sighup, on_sighup, SIGHUP);
  wr_metrics_on_collect(wr_admin_metrics(a.admin), mesh_collect, &a);
  if (gossip && start_swim(&a, &o, secret) != 0) {
    sodium_memzero(secret, sizeof secret);
    app_stop(&a, 1);
    return run_loop(&a);
  }
  if (start_ingress(&a, http, domain, secret, token, upstream, idle, head,
                    o.body_min_rate, proxy_from, o.max_conns,
                    o.max_conns_per_ip, wr_admin_metrics(a.admin)) != 0) {
    sodium_memzero(secret, sizeof secret);
    app_stop(&a, 1);
    return run_loop(&a);
  }
  sodium_memzero(secret, sizeof secret);
  WR_LOG_INFOF("main", "node_started",
               "id=%s http=%s admin=%s domain=%s gossip=%s join=%s", id, http,
               admin, domain, gossip ? gossip : "-", join ? join : "-");
  return run_loop(&a);
}

/* ---- warren http ---- */

typedef struct http_ctx {
  app *a;
  int port;
} http_ctx;

static void on_bound(const char *name, const char *url, int first, void *ud) {
  http_ctx *h = ud;
  (void)name;
  if (h->a->inspector) wr_inspector_set_public_url(h->a->inspector, url);
  if (!first) return;
  /* The Forwarding line stays first and unchanged: scripts read it. */
  printf("Forwarding %s -> http://localhost:%d\n", url, h->port);
  if (h->a->inspector)
    printf("Inspect %s\n", wr_inspector_url(h->a->inspector));
  fflush(stdout);
}

static void on_fatal(const char *line, void *ud) {
  http_ctx *h = ud;
  fprintf(stderr, "%s\n", line);
  app_stop(h->a, 1);
}

static int cmd_http(int argc, char **argv) {
  const char *name = NULL, *node = NULL, *fleet = NULL, *token = NULL;
  const char *listen = "127.0.0.1:8080";
  const char *inspect = NULL; /* NULL: the default, 4040 or next free */
  const char *port_s = NULL;
  uint64_t upstream = 60000;
  int bad = 0, balance = 0;
  /* The embedded node's ingress limits, parsed and checked by the same
   * table as `warren node`'s flags (config.c), so both say the same. */
  wr_node_opts eo;
  wr_node_opts_init(&eo);
  const char *node_only = NULL;
  for (int i = 2; i < argc; i++) {
    const char *f = argv[i];
    if (!strcmp(f, "--help") || !strcmp(f, "-h")) {
      fputs(usage_http, stdout);
      return 0;
    }
    if (!strcmp(f, "--version")) return print_version();
    if (f[0] != '-') {
      if (port_s) return usage_error("unexpected argument '%s'", f);
      port_s = f;
      continue;
    }
    if (!strcmp(f, "--balance")) {
      balance = 1;
      continue;
    }
    if (i + 1 >= argc) return usage_error("%s needs a value", f);
    const char *v = argv[++i];
    if (!strcmp(f, "--name")) name = v;
    else if (!strcmp(f, "--node")) node = v;
    else if (!strcmp(f, "--fleet-key")) fleet = v;
    else if (!strcmp(f, "--token")) token = v;
    else if (!strcmp(f, "--listen")) listen = v;
    else if (!strcmp(f, "--inspect")) inspect = v;
    else if (!strcmp(f, "--upstream-timeout")) upstream = parse_ms(f, v, &bad);
    else if (!strcmp(f, "--idle-timeout") || !strcmp(f, "--head-timeout") ||
             !strcmp(f, "--body-min-rate")) {
      if (wr_node_opts_set(&eo, f + 2, v) != 0)
        return usage_error("%s", eo.err);
      node_only = f;
    } else return usage_error("unknown flag '%s'", f);
    if (bad) return 2;
  }
  if (!port_s) return usage_error("http needs the local %s to serve", "PORT");
  char *end;
  long port = strtol(port_s, &end, 10);
  if (*end || port < 1 || port > 65535)
    return usage_error("PORT must be 1-65535, got '%s'", port_s);
  if (name && *name) {
    /* The node checks too; failing here gives the clearest message. */
    size_t n = strlen(name);
    int ok = n >= 1 && n <= 63 && name[0] != '-' && name[n - 1] != '-';
    for (size_t i = 0; ok && i < n; i++) {
      char c = name[i];
      ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c >= '0' && c <= '9') || c == '-';
    }
    if (!ok)
      return usage_error("--name must be a DNS label (letters, digits, "
                         "inner '-', at most 63), got '%s'", name);
  }
  if (node && node_only)
    return usage_error("%s sets the embedded node; with --node, give it to "
                       "that node (warren node %s)", node_only, node_only);
  uint8_t pub[32];
  if (node && !fleet)
    return usage_error("--node %s needs --fleet-key (warren pubkey FILE on "
                       "the node)", node);
  if (fleet && wr_keys_parse_pub(fleet, pub) != 0)
    return usage_error("--fleet-key is not a fleet public key (43 "
                       "characters from `warren pubkey`): '%s'", fleet);
  struct sockaddr_storage ss;
  if (node && wr_parse_hostport(node, &ss) != 0)
    return usage_error("--node wants HOST:PORT, got '%s'", node);
  if (!node && wr_parse_hostport(listen, &ss) != 0)
    return usage_error("--listen wants ADDR:PORT, got '%s'", listen);
  if (inspect && strcmp(inspect, "off") != 0 &&
      wr_parse_hostport(inspect, &ss) != 0)
    return usage_error("--inspect wants ADDR:PORT or off, got '%s'", inspect);

  app a;
  memset(&a, 0, sizeof a);
  a.loop = uv_default_loop();
  a.local_port = (int)port;
  setup_signals(&a);
  char node_addr[160];
  if (!node) {
    /* Embedded node: a fresh secret that never leaves this process, and
     * the client dials it over loopback like any other node. */
    uint8_t secret[32], priv[32];
    randombytes_buf(secret, sizeof secret);
    snprintf(a.id, sizeof a.id, "embedded");
    snprintf(a.http, sizeof a.http, "%s", listen);
    if (wr_metrics_new(&a.metrics, NULL) != 0) a.metrics = NULL;
    if (start_ingress(&a, listen, "localhost", secret, token, upstream,
                      eo.idle_ms, eo.head_ms, eo.body_min_rate, NULL, 0, 0,
                      a.metrics) != 0) {
      sodium_memzero(secret, sizeof secret);
      app_stop(&a, 1);
      return run_loop(&a);
    }
    wr_keys_fleet_keypair(secret, pub, priv);
    sodium_memzero(secret, sizeof secret);
    sodium_memzero(priv, sizeof priv);
    int p = wr_ingress_port(a.ig);
    const char *colon = strrchr(listen, ':');
    snprintf(node_addr, sizeof node_addr, "%.*s:%d",
             (int)(colon - listen), listen, p);
    if (strncmp(node_addr, "0.0.0.0:", 8) == 0)
      snprintf(node_addr, sizeof node_addr, "127.0.0.1:%d", p);
    node = node_addr;
  }
  if (!inspect || strcmp(inspect, "off") != 0) {
    wr_inspector_config ic = {
        .listen = inspect ? inspect : "127.0.0.1:4040",
        .next_free = inspect == NULL, /* a port the user chose is that one */
        .local_host = "127.0.0.1",
        .local_port = (int)port,
    };
    int rv = wr_inspector_start(&a.inspector, a.loop, &ic);
    if (rv != 0 && inspect) {
      fprintf(stderr, "warren: cannot serve the inspector on %s: %s\n",
              inspect, wr_strerror(rv));
      app_stop(&a, 1);
      return run_loop(&a);
    }
    if (rv != 0)
      WR_LOG_WARNF("main", "inspector_off",
                   "err=\"ports 4040-%d are taken: %s\" hint=\"--inspect "
                   "ADDR:PORT\"", 4040 + WR_INSPECTOR_PORT_TRIES - 1,
                   wr_strerror(rv));
    else if (inspect && strncmp(inspect, "127.", 4) != 0 &&
             strncmp(inspect, "localhost:", 10) != 0 &&
             strncmp(inspect, "[::1]:", 6) != 0)
      WR_LOG_WARNF("main", "inspector_exposed",
                   "listen=%s hint=\"it can replay requests to your local "
                   "server: keep it on loopback\"", inspect);
  }
  /* The identity key: the account this client's names belong to in an
   * open fleet, so a restart keeps them and nobody else can take them. */
  static wr_identity ident;
  int have_ident = 0;
  char ipath[1024], ierr[1200];
  if (wr_identity_path(ipath, sizeof ipath) == 0) {
    if (wr_identity_load(&ident, ipath, ierr, sizeof ierr) == 0)
      have_ident = 1;
    else
      WR_LOG_WARNF("main", "no_identity", "err=\"%s\" hint=\"names are "
                   "then bound as anonymous\"", ierr);
  }
  http_ctx h = {&a, (int)port};
  wr_client_config cc;
  memset(&cc, 0, sizeof cc);
  cc.identity = have_ident ? &ident : NULL;
  cc.options = balance ? WR_CONTROL_BIND_BALANCE : 0;
  cc.node = node;
  memcpy(cc.fleet_pub, pub, 32);
  cc.token = token;
  cc.name = name;
  cc.local_host = "127.0.0.1";
  cc.local_port = (int)port;
  cc.on_bound = on_bound;
  cc.on_fatal = on_fatal;
  cc.ud = &h;
  if (a.inspector) cc.tap = wr_inspector_tap(a.inspector);
  if (wr_client_start(&a.client, a.loop, &cc) != 0) {
    fprintf(stderr, "warren: out of memory\n");
    app_stop(&a, 1);
  }
  int rc = run_loop(&a);
  sodium_memzero(&ident, sizeof ident);
  return rc;
}

int main(int argc, char **argv) {
  if (sodium_init() < 0) {
    fprintf(stderr, "warren: libsodium failed to initialise\n");
    return 1;
  }
  signal(SIGPIPE, SIG_IGN);
  if (argc < 2) {
    fputs(usage_main, stderr);
    return 2;
  }
  const char *cmd = argv[1];
  if (!strcmp(cmd, "--help") || !strcmp(cmd, "-h") || !strcmp(cmd, "help")) {
    fputs(usage_main, stdout);
    return 0;
  }
  if (!strcmp(cmd, "--version")) return print_version();
  if (!strcmp(cmd, "http")) return cmd_http(argc, argv);
  if (!strcmp(cmd, "node")) return cmd_node(argc, argv);
  if (!strcmp(cmd, "keygen")) return cmd_keygen(argc, argv);
  if (!strcmp(cmd, "pubkey")) return cmd_pubkey(argc, argv);
  return usage_error("unknown command '%s'", cmd);
}
