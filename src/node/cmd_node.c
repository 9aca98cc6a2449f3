/*
 * `warren node`: flags and config file, checks, then the parts in order
 * (admin, mesh, gossip, ingress).
 */
#include <sys/stat.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>
#include <uv.h>

#include "app.h"
#include "faults.h"

static const char usage_node[] =
    "usage: warren node --id ID --http ADDR:PORT --admin ADDR:PORT\n"
    "                   --domain DOMAIN --key-file FILE [--token TOKEN]\n"
    "                   [--tokens FILE]\n"
    "                   [--admin-token TOKEN] [--gossip ADDR:PORT]\n"
    "                   [--join HOST:PORT,...|dns:NAME:PORT] [--config FILE]\n"
    "                   [--gossip-profile lan|wan|local] [--region R]\n"
    "                   [--gossip-set K=V,...] [--routes-set K=V,...]\n"
    "                   [--tags K=V,...] [--upstream-timeout MS]\n"
    "                   [--idle-timeout MS] [--head-timeout MS]\n"
    "                   [--body-min-rate BYTES/S]\n"
    "                   [--proxy-protocol-from IP,...]\n"
    "                   [--max-conns N] [--max-conns-per-ip N]\n"
    "                   [--send-stall-timeout MS] [--node-link-window BYTES]\n"
    "                   [--drain-timeout MS] [--drain-wait MS]\n"
    "                   [--faults] [--faults-file FILE]\n"
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
    /* Split in two: ISO C caps a string literal at 4095 bytes. */
    ;
static const char usage_node2[] =
    "  --max-conns-per-ip N  the same per source address; load balancers in\n"
    "                       --proxy-protocol-from are exempt (default: a\n"
    "                       quarter of --max-conns)\n"
    "  --send-stall-timeout MS  close a visitor whose socket takes none of\n"
    "                       the response bytes owed to it for MS, freeing\n"
    "                       the tunnel credit they hold; a visitor that\n"
    "                       reads, however slowly, is never cut (default\n"
    "                       30000)\n"
    "  --node-link-window BYTES  receive window of each node-to-node link\n"
    "                       this node dials (default 0: 256 MiB)\n"
    "  --drain-timeout MS   a drain waits at most MS for requests in flight\n"
    "                       and tunnel clients to move (default 30000)\n"
    "  --drain-wait MS      a drain keeps serving at least MS, so load\n"
    "                       balancers see /readyz fail first (default 2000)\n"
    "  --faults             allow fault injection through the admin API\n"
    "                       (/faults; warrenctl fault ...; docs/FAULTS.md);\n"
    "                       off by default, when the API answers 403\n"
    "  --faults-file FILE   fault rules loaded at start (JSON, as GET\n"
    "                       /faults answers them); needs --faults\n"
    "  --routes-set K=V,... the routes table's limits on what one owner may\n"
    "                       put in it: owner-max-entries (10000),\n"
    "                       owner-max-bytes (2097152), owner-rate (500\n"
    "                       entries/s, 0 = none), owner-burst (2000),\n"
    "                       ingest-max (1024), max-entries (1000000),\n"
    "                       unknown-owners (256), unknown-owner-max-entries\n"
    "                       (16); docs/ROUTES.md\n"
    "\n"
    "SIGTERM or POST /drain (warrenctl drain): a graceful drain.  GET /readyz\n"
    "answers 503, tunnel clients are told to move (GOAWAY), every response\n"
    "says \"Connection: close\", requests in flight finish (--drain-timeout),\n"
    "then the node leaves the mesh (peers see it \"left\", not dead) and exits.\n"
    "SIGINT: clients told to move, leave, exit, without waiting.  A second\n"
    "signal stops at once.  SIGHUP reloads the tokens file, the --config\n"
    "file's limits and timeouts and the --faults-file rules, all or nothing;\n"
    "tunnels stay up.  LISTEN_FDS (systemd socket activation) hands the node\n"
    "its public socket (docs/DEPLOY.md).  SIGUSR2 or POST /upgrade (warrenctl\n"
    "upgrade): run the binary at this program's path with --version, drain,\n"
    "and exec it in place, the public socket kept open.\n";

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

int cmd_node(int argc, char **argv) {
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
      fputs(usage_node2, stdout);
      return 0;
    }
    if (!strcmp(f, "--version")) return print_version();
    if (f[0] != '-' || f[1] != '-')
      return usage_error("unexpected argument '%s'", f);
    if (!strcmp(f, "--faults") && (i + 1 >= argc || argv[i + 1][0] == '-')) {
      o.faults = 1; /* a bare --faults; "--faults on|off" is the table's */
      continue;
    }
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
  if (o.routes_set[0]) {
    wr_routes_config probe;
    char err[200];
    wr_routes_config_default(&probe);
    if (wr_mesh_routes_set(&probe, o.routes_set, err, sizeof err) != 0)
      return usage_error("%s", err);
    if (probe.owner_rate && probe.owner_burst < 1)
      return usage_error("--routes-set: owner-burst must be at least 1");
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
  a.drain_on_term = 1;
  a.drain_timeout_ms = o.drain_timeout_ms;
  a.drain_wait_ms = o.drain_wait_ms;
  a.argc = argc;
  a.argv = argv;
  a.listen_fd = -1;
  upgrade_init(&a);
  if (inherited_listener(&a, http) != 0) {
    sodium_memzero(secret, sizeof secret);
    wr_tokens_del(a.tokens);
    return 1;
  }
  a.opts = o;
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
  int mrv = wr_mesh_new(&a.mesh, a.loop, a.id, wr_admin_metrics(a.admin),
                        o.routes_set);
  if (mrv != 0) {
    fprintf(stderr, "warren: cannot create the routes table: %s\n",
            wr_strerror(mrv));
    app_stop(&a, 1);
    return run_loop(&a);
  }
  wr_mesh_admin_routes(a.mesh, a.admin);
  wr_metrics_counter(wr_admin_metrics(a.admin), "warren_config_reloads_total",
                     "result", "ok",
                     "SIGHUP reloads applied (ok) or refused whole, old "
                     "settings kept (failed).",
                     &a.m_reload_ok);
  wr_metrics_counter(wr_admin_metrics(a.admin), "warren_config_reloads_total",
                     "result", "failed",
                     "SIGHUP reloads applied (ok) or refused whole, old "
                     "settings kept (failed).",
                     &a.m_reload_failed);
  wr_mesh_set_tokens(a.mesh, a.tokens);
  uv_signal_init(a.loop, &a.sighup);
  a.sighup.data = &a;
  uv_signal_start(&a.sighup, on_sighup, SIGHUP);
  uv_signal_init(a.loop, &a.sigusr2);
  a.sigusr2.data = &a;
  uv_signal_start(&a.sigusr2, on_sigusr2, SIGUSR2);
  wr_metrics_counter(wr_admin_metrics(a.admin), "warren_upgrades_total",
                     "result", "refused",
                     "In-place upgrades (warrenctl upgrade, SIGUSR2) refused "
                     "before the drain: the new binary is missing or failed "
                     "its --version check.",
                     &a.m_upgrade_refused);
  wr_metrics_on_collect(wr_admin_metrics(a.admin), mesh_collect, &a);
  if (gossip && start_swim(&a, &o, secret) != 0) {
    sodium_memzero(secret, sizeof secret);
    app_stop(&a, 1);
    return run_loop(&a);
  }
  if (start_ingress(&a, http, domain, secret, token, upstream, idle, head,
                    o.body_min_rate, proxy_from, o.max_conns,
                    o.max_conns_per_ip, o.send_stall_ms, o.node_link_window,
                    wr_admin_metrics(a.admin)) != 0) {
    sodium_memzero(secret, sizeof secret);
    app_stop(&a, 1);
    return run_loop(&a);
  }
  sodium_memzero(secret, sizeof secret);
  if (wr_node_faults_start(a.loop, a.admin, a.swim, a.id, (int)o.faults,
                           o.faults_file) != 0) {
    app_stop(&a, 1);
    return run_loop(&a);
  }
  if (a.listen_fd >= WR_LISTEN_FDS_START) accept_when_joined(&a);
  WR_LOG_INFOF("main", "node_started",
               "id=%s http=%s admin=%s domain=%s gossip=%s join=%s", id, http,
               admin, domain, gossip ? gossip : "-", join ? join : "-");
  return run_loop(&a);
}
