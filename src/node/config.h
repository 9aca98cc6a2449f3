/*
 * `warren node` options, from flags and from an INI file (--config FILE,
 * parsed with Debian's inih).  The file uses the flag names without the
 * dashes, in a [node] section (or before any section):
 *
 *   [node]
 *   id = n1
 *   http = 0.0.0.0:80
 *   admin = 127.0.0.1:9081
 *   domain = tunnels.example.com
 *   key-file = /etc/warren/cluster.key
 *   tokens = /etc/warren/tokens
 *   upstream-timeout = 60000
 *   head-timeout = 30000
 *   body-min-rate = 500
 *   drain-timeout = 30000
 *   drain-wait = 2000
 *   gossip = 10.0.0.5:7946
 *   join = dns:warren-headless.default.svc.cluster.local:7946
 *   gossip-profile = lan
 *   region = eu-west
 *   tags = rack=r12,role=edge
 *   gossip-set = probe-interval-ms=500,suspicion-mult=3
 *   faults = on              ; fault injection (docs/FAULTS.md); off by
 *   faults-file = /etc/warren/faults.json   ; default; rules at start
 *
 *   [gossip]                 ; any tunable of wr_swim_config_set
 *   probe-timeout-ms = 300   ; (appended to gossip-set)
 *
 *   [routes]                 ; any limit of wr_routes_config_set
 *   owner-max-entries = 50000 ; (appended to routes-set)
 *
 * Flags given on the command line win over the file.  Pure code (no
 * libuv), so it is unit-tested and fuzzed.
 */
#ifndef WARREN_NODE_CONFIG_H
#define WARREN_NODE_CONFIG_H

#include <stddef.h>
#include <stdint.h>

typedef struct wr_node_opts {
  char id[128], http[128], admin[128], domain[256], key_file[1024];
  char token[512], admin_token[512], gossip[128], join[1024];
  char tokens[1024]; /* --tokens FILE: accounts (tokens.h) */
  char proxy_from[800];
  char region[64], tags[256], gossip_profile[16]; /* validated by main.c */
  char gossip_set[1024]; /* "k=v,k=v" gossip tunables, checked by main.c */
  char routes_set[512];  /* "k=v,k=v" routes table limits (routes.h
                            wr_routes_config_set), checked by cmd_node.c */
  uint64_t upstream_ms, idle_ms, head_ms;
  uint64_t body_min_rate; /* bytes/s, 0 = off */
  uint64_t max_conns, max_conns_per_ip; /* 0 = derived (ingress.h) */
  uint64_t send_stall_ms;    /* ingress.h send_stall_ms */
  uint64_t node_link_window; /* ingress.h node_link_window, 0 = default */
  uint64_t drain_timeout_ms, drain_wait_ms; /* graceful drain (DEPLOY.md) */
  uint64_t faults;       /* 1: fault injection on (--faults; faults.h) */
  char faults_file[1024]; /* a rule set loaded at start (docs/FAULTS.md) */
  char err[300]; /* the first error, one line, when a call fails */
} wr_node_opts;

/*
 * A request body must average this many bytes/s once it had the head
 * timeout's worth of reading time (docs/HTTP.md, "Timers").  500 is Apache
 * mod_reqtimeout's default MinRate, in use since 2.4 (2012): 4 kbit/s,
 * below any link a person uploads over (GPRS manages ~20 kbit/s), while a
 * visitor that drips a byte every few seconds is cut at the grace's end,
 * and holding a connection for an hour costs an attacker 1.8 MB sent.
 */
#define WR_NODE_BODY_MIN_RATE 500

/* Defaults: admin 127.0.0.1:9081, upstream 60 s, idle 75 s, head 30 s,
 * body-min-rate 500, send-stall 30 s, node-link-window 0 (256 MiB),
 * drain-timeout 30 s, drain-wait 2 s. */
void wr_node_opts_init(wr_node_opts *o);

/*
 * Sets option |key| ("id", "http", ..., the flag name without "--") to
 * |value|.  Returns 0, or -1 with o->err set (unknown key, value too long,
 * bad number).
 */
int wr_node_opts_set(wr_node_opts *o, const char *key, const char *value);
/* 1 when |key| (a flag name without the dashes) is an option, else 0: a
 * flag is checked before its value is looked for, so a misspelt one is
 * reported as unknown rather than as missing a value. */
int wr_node_opts_known(const char *key);

/* Parses INI text (NUL-terminated).  Returns 0, or -1 with o->err naming
 * the line. */
int wr_node_opts_parse_ini(wr_node_opts *o, const char *text);

#endif
