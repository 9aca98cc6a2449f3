/*
 * `warren http`: the client, with an embedded node when no --node is
 * given, and the request inspector.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>
#include <uv.h>

#include "app.h"

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

int cmd_http(int argc, char **argv) {
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
