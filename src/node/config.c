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

typedef struct opt_field {
  const char *name;
  size_t off;   /* offset of a char[] field, or of a uint64_t for numbers */
  size_t size;  /* sizeof the char[] field; 0 = a number of milliseconds;
                   RATE = bytes per second, where 0 means off;
                   COUNT = a count, where 0 means derived */
} opt_field;

#define RATE ((size_t)-1)
#define COUNT ((size_t)-2)
#define WINDOW ((size_t)-3) /* bytes, 0 = the default, else the mux's
                               bounds: [16 KiB, 2^31 - 1] */
#define SWITCH ((size_t)-4) /* on/off, true/false, yes/no, 1/0 */
#define MS0 ((size_t)-5) /* milliseconds where 0 is allowed */
/* Connection caps: beyond any descriptor limit Linux allows (nr_open is
 * at most 2^30, usually 2^20). */
#define COUNT_MAX 16777216ULL
/* 1 GB/s: far above any one visitor's upload; a typo, not a policy. */
#define RATE_MAX 1000000000ULL

#define STR(f) {#f, offsetof(wr_node_opts, f), sizeof(((wr_node_opts *)0)->f)}
static const opt_field fields[] = {
    STR(id),
    STR(http),
    STR(admin),
    STR(domain),
    {"key-file", offsetof(wr_node_opts, key_file), sizeof(((wr_node_opts *)0)->key_file)},
    STR(token),
    STR(tokens),
    {"admin-token", offsetof(wr_node_opts, admin_token), sizeof(((wr_node_opts *)0)->admin_token)},
    STR(gossip),
    STR(join),
    {"proxy-protocol-from", offsetof(wr_node_opts, proxy_from), sizeof(((wr_node_opts *)0)->proxy_from)},
    STR(region),
    STR(tags),
    {"gossip-profile", offsetof(wr_node_opts, gossip_profile), sizeof(((wr_node_opts *)0)->gossip_profile)},
    {"gossip-set", offsetof(wr_node_opts, gossip_set), sizeof(((wr_node_opts *)0)->gossip_set)},
    {"routes-set", offsetof(wr_node_opts, routes_set), sizeof(((wr_node_opts *)0)->routes_set)},
    {"upstream-timeout", offsetof(wr_node_opts, upstream_ms), 0},
    {"idle-timeout", offsetof(wr_node_opts, idle_ms), 0},
    {"head-timeout", offsetof(wr_node_opts, head_ms), 0},
    {"body-min-rate", offsetof(wr_node_opts, body_min_rate), RATE},
    {"max-conns", offsetof(wr_node_opts, max_conns), COUNT},
    {"max-conns-per-ip", offsetof(wr_node_opts, max_conns_per_ip), COUNT},
    {"send-stall-timeout", offsetof(wr_node_opts, send_stall_ms), 0},
    {"node-link-window", offsetof(wr_node_opts, node_link_window), WINDOW},
    {"drain-timeout", offsetof(wr_node_opts, drain_timeout_ms), 0},
    {"drain-wait", offsetof(wr_node_opts, drain_wait_ms), MS0},
    {"faults", offsetof(wr_node_opts, faults), SWITCH},
    {"faults-file", offsetof(wr_node_opts, faults_file), sizeof(((wr_node_opts *)0)->faults_file)},
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

int wr_node_opts_set(wr_node_opts *o, const char *key, const char *value) {
  for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
    const opt_field *f = &fields[i];
    if (strcmp(f->name, key) != 0) continue;
    char *base = (char *)o + f->off;
    if (f->size == SWITCH) {
      static const char *const on[] = {"on", "true", "yes", "1"};
      static const char *const no[] = {"off", "false", "no", "0"};
      uint64_t v = 2;
      for (size_t k = 0; k < 4; k++) {
        if (!strcmp(value, on[k])) v = 1;
        if (!strcmp(value, no[k])) v = 0;
      }
      if (v == 2) {
        snprintf(o->err, sizeof o->err, "%s wants on or off, got '%.64s'",
                 key, value);
        return -1;
      }
      memcpy(base, &v, sizeof v);
      return 0;
    }
    if (f->size == COUNT) {
      char *end;
      errno = 0;
      unsigned long long x = strtoull(value, &end, 10);
      if (!*value || *end || errno || x > COUNT_MAX || value[0] == '-') {
        snprintf(o->err, sizeof o->err,
                 "%s wants a number of connections (0-%llu, 0 = derived "
                 "from the descriptor limit), got '%.64s'",
                 key, COUNT_MAX, value);
        return -1;
      }
      uint64_t v = x;
      memcpy(base, &v, sizeof v);
      return 0;
    }
    if (f->size == WINDOW) {
      char *end;
      errno = 0;
      unsigned long long x = strtoull(value, &end, 10);
      if (!*value || *end || errno || value[0] == '-' ||
          (x != 0 && (x < 16384 || x > 2147483647ULL))) {
        snprintf(o->err, sizeof o->err,
                 "%s wants a window in bytes (16384-2147483647, 0 = the "
                 "default), got '%.64s'",
                 key, value);
        return -1;
      }
      uint64_t v = x;
      memcpy(base, &v, sizeof v);
      return 0;
    }
    if (f->size == RATE) {
      char *end;
      errno = 0;
      unsigned long long x = strtoull(value, &end, 10);
      if (!*value || *end || errno || x > RATE_MAX || value[0] == '-') {
        snprintf(o->err, sizeof o->err,
                 "%s wants bytes per second (0-%llu, 0 = off), got '%.64s'",
                 key, RATE_MAX, value);
        return -1;
      }
      uint64_t v = x;
      memcpy(base, &v, sizeof v);
      return 0;
    }
    if (f->size == MS0) {
      char *end;
      errno = 0;
      unsigned long long x = strtoull(value, &end, 10);
      if (!*value || *end || errno || x > 86400000ULL || value[0] == '-') {
        snprintf(o->err, sizeof o->err,
                 "%s wants a number of milliseconds (0-86400000), got "
                 "'%.64s'",
                 key, value);
        return -1;
      }
      uint64_t v = x;
      memcpy(base, &v, sizeof v);
      return 0;
    }
    if (f->size == 0) {
      /* A day is far beyond any sane timeout; zero would disable it. */
      char *end;
      errno = 0;
      unsigned long long x = strtoull(value, &end, 10);
      if (!*value || *end || errno || x == 0 || x > 86400000ULL ||
          value[0] == '-') {
        snprintf(o->err, sizeof o->err,
                 "%s wants a number of milliseconds (1-86400000), got '%.64s'",
                 key, value);
        return -1;
      }
      uint64_t v = x;
      memcpy(base, &v, sizeof v);
      return 0;
    }
    size_t n = strlen(value);
    if (n >= f->size) {
      snprintf(o->err, sizeof o->err, "%s is too long (at most %zu bytes)",
               key, f->size - 1);
      return -1;
    }
    memcpy(base, value, n + 1);
    return 0;
  }
  snprintf(o->err, sizeof o->err, "unknown option '%.64s'", key);
  return -1;
}

static int on_ini(void *user, const char *section, const char *name,
                  const char *value) {
  wr_node_opts *o = user;
  if (strcmp(section, "gossip") == 0) {
    /* Each line is one gossip tunable; main.c checks names and values. */
    size_t have = strlen(o->gossip_set);
    int n = snprintf(o->gossip_set + have, sizeof o->gossip_set - have,
                     "%s%s=%s", have ? "," : "", name, value);
    if (n < 0 || (size_t)n >= sizeof o->gossip_set - have) {
      o->gossip_set[have] = 0;
      snprintf(o->err, sizeof o->err, "[gossip] settings are too long");
      return 0;
    }
    return 1;
  }
  if (strcmp(section, "routes") == 0) {
    /* Each line is one routes limit; cmd_node.c checks names and values. */
    size_t have = strlen(o->routes_set);
    int n = snprintf(o->routes_set + have, sizeof o->routes_set - have,
                     "%s%s=%s", have ? "," : "", name, value);
    if (n < 0 || (size_t)n >= sizeof o->routes_set - have) {
      o->routes_set[have] = 0;
      snprintf(o->err, sizeof o->err, "[routes] settings are too long");
      return 0;
    }
    return 1;
  }
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
