/*
 * `warren node` options (see config.h).  One table maps each option name
 * to its field, so flags and the INI file cannot drift apart.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ini.h>

#include "config.h"

/* How an option's text becomes its field.  Numbers share one parser; a
 * kind only says its bounds and how to name them in an error. */
typedef enum opt_kind {
  K_STR,    /* a char[] field of |size| bytes */
  K_MS,     /* milliseconds, 0 not allowed (it would disable a timeout) */
  K_MS0,    /* milliseconds where 0 is allowed */
  K_RATE,   /* bytes per second, 0 = off */
  K_COUNT,  /* a count of connections, 0 = derived */
  K_WINDOW, /* bytes, 0 = the default, else the mux's bounds */
  K_SWITCH, /* on/off, true/false, yes/no, 1/0 */
} opt_kind;

typedef struct opt_field {
  const char *name;
  size_t off;  /* offset of a char[] field, or of a uint64_t otherwise */
  size_t size; /* sizeof the char[] field (K_STR only) */
  opt_kind kind;
} opt_field;

typedef struct num_bounds {
  uint64_t lo, hi;
  int zero_ok; /* 0 accepted below |lo| (it means "off" or "default") */
  const char *want; /* "%s wants <want>, got '...'" */
} num_bounds;

/* A day is far beyond any sane timeout.  Connection caps: beyond any
 * descriptor limit Linux allows (nr_open is at most 2^30, usually 2^20).
 * 1 GB/s: far above any one visitor's upload; a typo, not a policy. */
static const num_bounds bounds[] = {
    [K_MS] = {1, 86400000ULL, 0, "a number of milliseconds (1-86400000)"},
    [K_MS0] = {0, 86400000ULL, 0, "a number of milliseconds (0-86400000)"},
    [K_RATE] = {0, 1000000000ULL, 0,
                "bytes per second (0-1000000000, 0 = off)"},
    [K_COUNT] = {0, 16777216ULL, 0,
                 "a number of connections (0-16777216, 0 = derived from the "
                 "descriptor limit)"},
    [K_WINDOW] = {16384, 2147483647ULL, 1,
                  "a window in bytes (16384-2147483647, 0 = the default)"},
};

#define STR(f) {#f, offsetof(wr_node_opts, f), sizeof(((wr_node_opts *)0)->f), K_STR}
#define STRN(n, f) {n, offsetof(wr_node_opts, f), sizeof(((wr_node_opts *)0)->f), K_STR}
#define NUM(n, f, k) {n, offsetof(wr_node_opts, f), 0, k}
static const opt_field fields[] = {
    STR(id),
    STR(http),
    STR(admin),
    STR(domain),
    STRN("key-file", key_file),
    STR(token),
    STR(tokens),
    STRN("admin-token", admin_token),
    STR(gossip),
    STR(join),
    STRN("proxy-protocol-from", proxy_from),
    STR(region),
    STR(tags),
    STRN("gossip-profile", gossip_profile),
    STRN("gossip-set", gossip_set),
    STRN("routes-set", routes_set),
    NUM("upstream-timeout", upstream_ms, K_MS),
    NUM("idle-timeout", idle_ms, K_MS),
    NUM("head-timeout", head_ms, K_MS),
    NUM("body-min-rate", body_min_rate, K_RATE),
    NUM("max-conns", max_conns, K_COUNT),
    NUM("max-conns-per-ip", max_conns_per_ip, K_COUNT),
    NUM("send-stall-timeout", send_stall_ms, K_MS),
    NUM("node-link-window", node_link_window, K_WINDOW),
    NUM("drain-timeout", drain_timeout_ms, K_MS),
    NUM("drain-wait", drain_wait_ms, K_MS0),
    NUM("faults", faults, K_SWITCH),
    STRN("faults-file", faults_file),
};

void wr_node_opts_init(wr_node_opts *o) {
  memset(o, 0, sizeof *o);
  snprintf(o->admin, sizeof o->admin, "127.0.0.1:9081");
  o->upstream_ms = 60000;
  o->idle_ms = 75000;
  o->head_ms = 30000;
  o->body_min_rate = WR_NODE_BODY_MIN_RATE;
  o->send_stall_ms = 30000;
  /* 30 s: what Kubernetes gives a pod (terminationGracePeriodSeconds)
   * and a long request may need; 2 s: HAProxy's default check interval,
   * so one failed /readyz check has happened before the node stops
   * taking connections (set it to the LB's inter x fall). */
  o->drain_timeout_ms = 30000;
  o->drain_wait_ms = 2000;
}

int wr_node_opts_known(const char *key) {
  for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++)
    if (strcmp(fields[i].name, key) == 0) return 1;
  return 0;
}

static int parse_switch(const char *value, uint64_t *v) {
  static const char *const on[] = {"on", "true", "yes", "1"};
  static const char *const no[] = {"off", "false", "no", "0"};
  for (size_t k = 0; k < 4; k++) {
    if (!strcmp(value, on[k])) return *v = 1, 0;
    if (!strcmp(value, no[k])) return *v = 0, 0;
  }
  return -1;
}

/* Decimal digits only: strtoull alone takes "-1", " 7" and "0x10". */
static int parse_num(const char *value, const num_bounds *b, uint64_t *v) {
  if (!*value || strspn(value, "0123456789") != strlen(value)) return -1;
  char *end;
  errno = 0;
  unsigned long long x = strtoull(value, &end, 10);
  if (errno || *end) return -1;
  if (!(x == 0 && b->zero_ok) && (x < b->lo || x > b->hi)) return -1;
  *v = x;
  return 0;
}

int wr_node_opts_set(wr_node_opts *o, const char *key, const char *value) {
  for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
    const opt_field *f = &fields[i];
    if (strcmp(f->name, key) != 0) continue;
    char *base = (char *)o + f->off;
    if (f->kind == K_STR) {
      size_t n = strlen(value);
      if (n >= f->size) {
        snprintf(o->err, sizeof o->err, "%s is too long (at most %zu bytes)",
                 key, f->size - 1);
        return -1;
      }
      memcpy(base, value, n + 1);
      return 0;
    }
    uint64_t v;
    if (f->kind == K_SWITCH ? parse_switch(value, &v)
                            : parse_num(value, &bounds[f->kind], &v)) {
      snprintf(o->err, sizeof o->err, "%s wants %s, got '%.64s'", key,
               f->kind == K_SWITCH ? "on or off" : bounds[f->kind].want,
               value);
      return -1;
    }
    memcpy(base, &v, sizeof v);
    return 0;
  }
  snprintf(o->err, sizeof o->err, "unknown option '%.64s'", key);
  return -1;
}

/* Appends "name=value" to a "k=v,k=v" set; 1, or 0 with o->err. */
static int append_set(wr_node_opts *o, char *set, size_t cap,
                      const char *section, const char *name,
                      const char *value) {
  size_t have = strlen(set);
  int n = snprintf(set + have, cap - have, "%s%s=%s", have ? "," : "", name,
                   value);
  if (n < 0 || (size_t)n >= cap - have) {
    set[have] = 0;
    snprintf(o->err, sizeof o->err, "[%.32s] settings are too long", section);
    return 0;
  }
  return 1;
}

static int on_ini(void *user, const char *section, const char *name,
                  const char *value) {
  wr_node_opts *o = user;
  /* [gossip] and [routes]: each line is one tunable, gathered as
   * "k=v,k=v" for the swim and routes option parsers (cmd_node.c) to
   * check names and values. */
  if (strcmp(section, "gossip") == 0)
    return append_set(o, o->gossip_set, sizeof o->gossip_set, section, name,
                      value);
  if (strcmp(section, "routes") == 0)
    return append_set(o, o->routes_set, sizeof o->routes_set, section, name,
                      value);
  if (section[0] && strcmp(section, "node") != 0) {
    snprintf(o->err, sizeof o->err, "unknown section [%.64s]", section);
    return 0;
  }
  return wr_node_opts_set(o, name, value) == 0;
}

int wr_node_opts_parse_ini(wr_node_opts *o, const char *text) {
  char saved[sizeof o->err];
  o->err[0] = 0;
  int line = ini_parse_string(text, on_ini, o);
  if (line == 0) return 0;
  snprintf(saved, sizeof saved, "%s", o->err[0] ? o->err : "syntax error");
  snprintf(o->err, sizeof o->err, "line %d: %.280s", line, saved);
  return -1;
}
