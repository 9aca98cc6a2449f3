/*
 * warrenctl fault ...: the client side of a node's fault injection API
 * (docs/FAULTS.md).  Each command is one request:
 *
 *   fault list [--json]                       GET    /faults
 *   fault add --kind K,.. --dir D --peers P,..
 *             --drop P --delay T --jitter T --dup P
 *             [--after T] [--for T]           POST   /faults
 *   fault partition ID,.. [--for T]           POST   /faults (drop 1, all
 *                                                     kinds, both ways)
 *   fault clear [ID]                          DELETE /faults[/ID]
 *   fault pause T                             POST   /faults/pause
 *   fault load FILE                           PUT    /faults
 *
 * Values are checked here first (exit 2 with one line), so a typo never
 * reaches a node; the node checks again.  Times take a unit: 50ms, 3s,
 * 1.5s, 2m.
 */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"

#define FAULT_KIND_NAMES "probe, ack, ping-req, broadcast, sync, nodelink, tunnel or all"

static int fusage(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int fusage(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fputs("warrenctl: fault: ", stderr);
  vfprintf(stderr, fmt, ap);
  fputs(" (see warrenctl --help)\n", stderr);
  va_end(ap);
  return 2;
}

int ctl_fault_duration(const char *s, uint64_t max_ms, uint64_t *out) {
  char *end;
  errno = 0;
  double v = strtod(s, &end);
  if (errno || end == s || !(v >= 0) || isinf(v)) return -1;
  double mult;
  if (!strcmp(end, "ms")) mult = 1;
  else if (!strcmp(end, "s")) mult = 1000;
  else if (!strcmp(end, "m")) mult = 60000;
  else return -1;
  double ms = v * mult;
  /* Whole milliseconds only (no libm: the cast truncates). */
  if (ms > (double)max_ms || ms != (double)(uint64_t)ms) return -1;
  *out = (uint64_t)ms;
  return 0;
}

static int parse_prob(const char *s, double *out) {
  char *end;
  errno = 0;
  double v = strtod(s, &end);
  if (errno || end == s || *end || !(v >= 0 && v <= 1)) return -1;
  *out = v;
  return 0;
}

static int kind_known(const char *s, size_t n) {
  static const char *const names[] = {"probe", "ack", "ping-req", "broadcast",
                                      "sync", "nodelink", "tunnel", "all"};
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
    if (strlen(names[i]) == n && !memcmp(names[i], s, n)) return 1;
  return 0;
}

/* "a,b,c" -> a JSON array of strings; each item checked by |ok|. */
static json_t *split_list(const char *s, int (*ok)(const char *, size_t)) {
  json_t *a = json_array();
  if (!a) return NULL;
  for (const char *p = s;;) {
    const char *c = strchr(p, ',');
    size_t n = c ? (size_t)(c - p) : strlen(p);
    if (n == 0 || !ok(p, n) ||
        json_array_append_new(a, json_stringn(p, n)) != 0) {
      json_decref(a);
      return NULL;
    }
    if (!c) break;
    p = c + 1;
  }
  return a;
}

static int peer_ok(const char *s, size_t n) {
  if (n > 64) return 0;
  for (size_t i = 0; i < n; i++)
    if (s[i] <= ' ' || s[i] > '~') return 0;
  return 1;
}

/* Builds the rule of `fault add`/`partition` from their options; NULL
 * after printing the usage line (|*rc| = 2). */
json_t *ctl_fault_rule_args(int argc, char **argv, int partition, int *rc) {
  json_t *r = json_object();
  *rc = 2;
  if (!r) {
    *rc = 1;
    return NULL;
  }
  int i = 0;
  if (partition) {
    if (argc < 1 || argv[0][0] == '-') {
      fusage("partition needs the member ids to cut off (n2,n3)");
      goto fail;
    }
    json_t *p = split_list(argv[0], peer_ok);
    if (!p || json_array_size(p) > 32) {
      json_decref(p);
      fusage("bad member list '%s' (ids without spaces, at most 32)",
             argv[0]);
      goto fail;
    }
    json_object_set_new(r, "kinds", json_string("all"));
    json_object_set_new(r, "dir", json_string("both"));
    json_object_set_new(r, "peers", p);
    json_object_set_new(r, "drop", json_real(1.0));
    i = 1;
  }
  for (; i < argc; i++) {
    const char *o = argv[i];
    const char *v = i + 1 < argc ? argv[i + 1] : NULL;
    int takes = !strcmp(o, "--kind") || !strcmp(o, "--dir") ||
                !strcmp(o, "--peers") || !strcmp(o, "--drop") ||
                !strcmp(o, "--delay") || !strcmp(o, "--jitter") ||
                !strcmp(o, "--dup") || !strcmp(o, "--after") ||
                !strcmp(o, "--for");
    if (!takes || (partition && strcmp(o, "--for") && strcmp(o, "--after"))) {
      fusage("unknown option '%s'", o);
      goto fail;
    }
    if (!v) {
      fusage("%s needs a value", o);
      goto fail;
    }
    i++;
    double p;
    uint64_t ms;
    if (!strcmp(o, "--kind")) {
      json_t *k = split_list(v, kind_known);
      if (!k) {
        fusage("bad --kind '%s' (" FAULT_KIND_NAMES ", comma-separated)", v);
        goto fail;
      }
      json_object_set_new(r, "kinds", k);
    } else if (!strcmp(o, "--dir")) {
      if (strcmp(v, "in") && strcmp(v, "out") && strcmp(v, "both")) {
        fusage("bad --dir '%s' (in, out or both)", v);
        goto fail;
      }
      json_object_set_new(r, "dir", json_string(v));
    } else if (!strcmp(o, "--peers")) {
      json_t *pl = split_list(v, peer_ok);
      if (!pl || json_array_size(pl) > 32) {
        json_decref(pl);
        fusage("bad --peers '%s' (member ids or ip:ADDR, without spaces, "
               "at most 32)", v);
        goto fail;
      }
      json_object_set_new(r, "peers", pl);
    } else if (!strcmp(o, "--drop") || !strcmp(o, "--dup")) {
      if (parse_prob(v, &p) != 0) {
        fprintf(stderr, "warrenctl: fault: bad %s '%s' (a probability from "
                        "0 to 1, e.g. 0.1) (see warrenctl --help)\n", o, v);
        goto fail;
      }
      json_object_set_new(r, o + 2, json_real(p));
    } else {
      uint64_t max = !strcmp(o, "--after") || !strcmp(o, "--for")
                         ? 86400000u : 60000u;
      if (ctl_fault_duration(v, max, &ms) != 0) {
        fprintf(stderr, "warrenctl: fault: bad %s '%s' (a time with a unit, "
                        "e.g. 50ms or 3s; at most %s) (see warrenctl "
                        "--help)\n", o, v, max == 60000u ? "60s" : "24h");
        goto fail;
      }
      char key[16];
      snprintf(key, sizeof key, "%s_ms", o + 2);
      json_object_set_new(r, key, json_integer((json_int_t)ms));
    }
  }
  if (!partition && !json_object_get(r, "drop") &&
      !json_object_get(r, "dup") && !json_object_get(r, "delay_ms") &&
      !json_object_get(r, "jitter_ms")) {
    fusage("add needs at least one of --drop, --delay, --jitter, --dup");
    goto fail;
  }
  *rc = 0;
  return r;
fail:
  json_decref(r);
  return NULL;
}

/* ---- printing `fault list` ---------------------------------------------- */

static void list_join(const json_t *a, char *out, size_t cap) {
  size_t n = 0, i;
  const json_t *e;
  out[0] = 0;
  if (!json_is_array(a) || json_array_size(a) == 0) {
    snprintf(out, cap, "*");
    return;
  }
  json_array_foreach(a, i, e) {
    const char *s = json_string_value(e);
    int w = snprintf(out + n, cap - n, "%s%s", i ? "," : "", s ? s : "?");
    if (w < 0 || (size_t)w >= cap - n) break;
    n += (size_t)w;
  }
}

static void print_ms(char *out, size_t cap, const json_t *v) {
  if (!json_is_integer(v)) snprintf(out, cap, "-");
  else snprintf(out, cap, "%lldms", (long long)json_integer_value(v));
}

/* The rule table and counters of a GET /faults answer; 0, or -1 when it
 * is not the expected shape (nothing printed then). */
int ctl_fault_print_list(FILE *out, const json_t *j) {
  const json_t *rules = json_object_get(j, "rules");
  const json_t *seed = json_object_get(j, "seed");
  if (!json_is_object(j) || !json_is_array(rules) || !json_is_integer(seed))
    return -1;
  size_t i;
  const json_t *r;
  json_array_foreach(rules, i, r) if (!json_is_object(r)) return -1;
  size_t n = json_array_size(rules);
  fprintf(out, "fault injection on, seed %lld, %zu rule%s\n",
          (long long)json_integer_value(seed), n, n == 1 ? "" : "s");
  if (n) {
    fprintf(out, "%-4s %-28s %-4s %-16s %-6s %-7s %-7s %-6s %-17s %s\n",
            "ID", "KINDS", "DIR", "PEERS", "DROP", "DELAY", "JITTER", "DUP",
            "WINDOW", "ACTIVE");
    json_array_foreach(rules, i, r) {
      char kinds[200], peers[300], delay[24], jitter[24], win[48];
      const json_t *k = json_object_get(r, "kinds");
      list_join(k, kinds, sizeof kinds);
      if (json_is_array(k) && json_array_size(k) == 7)
        snprintf(kinds, sizeof kinds, "all");
      list_join(json_object_get(r, "peers"), peers, sizeof peers);
      print_ms(delay, sizeof delay, json_object_get(r, "delay_ms"));
      print_ms(jitter, sizeof jitter, json_object_get(r, "jitter_ms"));
      json_int_t after = json_integer_value(json_object_get(r, "after_ms"));
      json_int_t dur = json_integer_value(json_object_get(r, "for_ms"));
      if (!after && !dur) snprintf(win, sizeof win, "always");
      else snprintf(win, sizeof win, "+%lldms %s%lldms", (long long)after,
                    dur ? "for " : "", dur ? (long long)dur : 0LL);
      if (after && !dur) snprintf(win, sizeof win, "+%lldms on", (long long)after);
      const char *dir = json_string_value(json_object_get(r, "dir"));
      fprintf(out, "%-4lld %-28s %-4s %-16s %-6g %-7s %-7s %-6g %-17s %s\n",
              (long long)json_integer_value(json_object_get(r, "id")), kinds,
              dir ? dir : "?", peers,
              json_number_value(json_object_get(r, "drop")), delay, jitter,
              json_number_value(json_object_get(r, "dup")), win,
              json_is_true(json_object_get(r, "active")) ? "yes" : "no");
    }
  }
  const json_t *c = json_object_get(j, "counters");
  if (json_is_object(c)) {
    fprintf(out, "%-10s %9s %9s %9s %11s\n", "KIND", "MATCHED", "DROPPED",
            "DELAYED", "DUPLICATED");
    const char *kname;
    const json_t *kc;
    json_object_foreach((json_t *)c, kname, kc) {
      fprintf(out, "%-10s %9lld %9lld %9lld %11lld\n", kname,
              (long long)json_integer_value(json_object_get(kc, "matched")),
              (long long)json_integer_value(json_object_get(kc, "dropped")),
              (long long)json_integer_value(json_object_get(kc, "delayed")),
              (long long)json_integer_value(
                  json_object_get(kc, "duplicated")));
    }
  }
  fprintf(out, "held %lld, held overflow %lld, rules rejected %lld, "
               "pauses %lld (%lld ms)\n",
          (long long)json_integer_value(json_object_get(j, "held")),
          (long long)json_integer_value(json_object_get(j, "held_overflow")),
          (long long)json_integer_value(json_object_get(j, "rejected")),
          (long long)json_integer_value(json_object_get(j, "pauses")),
          (long long)json_integer_value(json_object_get(j, "paused_ms")));
  return 0;
}

/* ---- the requests ------------------------------------------------------- */

/* One request; prints the error line and returns NULL (|*rc| = 1) on any
 * failure, else the parsed JSON answer. */
static json_t *call(const ctl_target *t, const char *token, int timeout_ms,
                    const char *method, const char *path, const char *body,
                    size_t len, int *rc) {
  ctl_response r;
  char err[256];
  *rc = 1;
  if (ctl_http_request(t, method, path, token, body, len, timeout_ms, &r, err,
                       sizeof err) != 0) {
    fprintf(stderr, "warrenctl: cannot reach admin API at %s: %s\n",
            t->display, err);
    return NULL;
  }
  json_t *j = json_loadb(r.body, r.len, JSON_REJECT_DUPLICATES, NULL);
  const char *msg = json_string_value(json_object_get(j, "error"));
  if (r.status == 401) {
    fprintf(stderr, "warrenctl: the admin API rejected the token "
                    "(use --token or WARREN_TOKEN)\n");
  } else if (r.status != 200) {
    fprintf(stderr, "warrenctl: admin API at %s answered %d for %s %s%s%.300s\n",
            t->display, r.status, method, path, msg ? ": " : "",
            msg ? msg : "");
  } else if (!j) {
    fprintf(stderr, "warrenctl: unexpected answer from admin API at %s for "
                    "%s: not JSON\n", t->display, path);
  } else {
    *rc = 0;
  }
  free(r.body);
  if (*rc) {
    json_decref(j);
    return NULL;
  }
  return j;
}

static int send_rule(const ctl_target *t, const char *token, int timeout_ms,
                     int json, json_t *rule) {
  char *body = json_dumps(rule, JSON_COMPACT);
  json_decref(rule);
  if (!body) return 1;
  int rc;
  json_t *j = call(t, token, timeout_ms, "POST", "/faults", body,
                   strlen(body), &rc);
  free(body);
  if (!j) return rc;
  if (json) {
    ctl_print_json(stdout, j);
  } else {
    char kinds[200], peers[300];
    const json_t *k = json_object_get(j, "kinds");
    list_join(k, kinds, sizeof kinds);
    if (json_is_array(k) && json_array_size(k) == 7)
      snprintf(kinds, sizeof kinds, "all");
    list_join(json_object_get(j, "peers"), peers, sizeof peers);
    printf("added fault rule %lld: kinds %s, dir %s, peers %s, drop %g, "
           "delay %lldms, jitter %lldms, dup %g\n",
           (long long)json_integer_value(json_object_get(j, "id")), kinds,
           json_string_value(json_object_get(j, "dir"))
               ? json_string_value(json_object_get(j, "dir"))
               : "?",
           peers, json_number_value(json_object_get(j, "drop")),
           (long long)json_integer_value(json_object_get(j, "delay_ms")),
           (long long)json_integer_value(json_object_get(j, "jitter_ms")),
           json_number_value(json_object_get(j, "dup")));
  }
  json_decref(j);
  return 0;
}

int ctl_fault_run(const ctl_target *t, const char *token, int timeout_ms,
                  int json, int argc, char **argv) {
  if (argc < 1)
    return fusage("missing subcommand (list, add, partition, clear, pause "
                  "or load)");
  const char *sub = argv[0];
  int rc;
  if (!strcmp(sub, "list")) {
    if (argc > 1) return fusage("unexpected argument '%s'", argv[1]);
    json_t *j = call(t, token, timeout_ms, "GET", "/faults", NULL, 0, &rc);
    if (!j) return rc;
    if (json) {
      ctl_print_json(stdout, j);
    } else if (ctl_fault_print_list(stdout, j) != 0) {
      fprintf(stderr, "warrenctl: unexpected answer from admin API at %s "
                      "for /faults: no seed and rules\n", t->display);
      json_decref(j);
      return 1;
    }
    json_decref(j);
    return 0;
  }
  if (!strcmp(sub, "add") || !strcmp(sub, "partition")) {
    json_t *rule = ctl_fault_rule_args(argc - 1, argv + 1,
                                       !strcmp(sub, "partition"), &rc);
    if (!rule) return rc;
    return send_rule(t, token, timeout_ms, json, rule);
  }
  if (!strcmp(sub, "clear")) {
    char path[64] = "/faults";
    if (argc > 2) return fusage("unexpected argument '%s'", argv[2]);
    if (argc == 2) {
      char *end;
      errno = 0;
      unsigned long id = strtoul(argv[1], &end, 10);
      if (errno || *end || end == argv[1] || argv[1][0] == '-' || id == 0 ||
          id > 4294967295UL)
        return fusage("bad rule id '%s' (a number from fault list)",
                      argv[1]);
      snprintf(path, sizeof path, "/faults/%lu", id);
    }
    json_t *j = call(t, token, timeout_ms, "DELETE", path, NULL, 0, &rc);
    if (!j) return rc;
    if (json) ctl_print_json(stdout, j);
    else if (argc == 2) printf("removed fault rule %s\n", argv[1]);
    else printf("removed %lld fault rule%s\n",
                (long long)json_integer_value(json_object_get(j, "cleared")),
                json_integer_value(json_object_get(j, "cleared")) == 1 ? ""
                                                                       : "s");
    json_decref(j);
    return 0;
  }
  if (!strcmp(sub, "pause")) {
    uint64_t ms;
    if (argc != 2) return fusage("pause needs one time, e.g. 3s");
    if (ctl_fault_duration(argv[1], 60000, &ms) != 0 || ms == 0)
      return fusage("bad pause '%s' (a time with a unit, 1ms to 60s, e.g. "
                    "3s)", argv[1]);
    char body[64];
    int n = snprintf(body, sizeof body, "{\"ms\":%llu}",
                     (unsigned long long)ms);
    /* The node answers before it stalls; the stall can outlast our
     * timeout, which is fine: the answer is already here. */
    json_t *j = call(t, token, timeout_ms, "POST", "/faults/pause", body,
                     (size_t)n, &rc);
    if (!j) return rc;
    if (json) ctl_print_json(stdout, j);
    else printf("pausing the node for %llu ms\n", (unsigned long long)ms);
    json_decref(j);
    return 0;
  }
  if (!strcmp(sub, "load")) {
    if (argc != 2) return fusage("load needs one FILE (JSON: {\"seed\":N,"
                                 "\"rules\":[...]})");
    FILE *f = fopen(argv[1], "r");
    if (!f) {
      fprintf(stderr, "warrenctl: fault: cannot read %s: %s\n", argv[1],
              strerror(errno));
      return 1;
    }
    char *buf = malloc(65537);
    size_t n = buf ? fread(buf, 1, 65537, f) : 0;
    fclose(f);
    if (!buf) return 1;
    if (n > 65536) {
      free(buf);
      fprintf(stderr, "warrenctl: fault: %s is over 64 KiB\n", argv[1]);
      return 1;
    }
    json_t *j = call(t, token, timeout_ms, "PUT", "/faults", buf, n, &rc);
    free(buf);
    if (!j) return rc;
    if (json) ctl_print_json(stdout, j);
    else printf("loaded %zu fault rule%s\n",
                json_array_size(json_object_get(j, "rules")),
                json_array_size(json_object_get(j, "rules")) == 1 ? "" : "s");
    json_decref(j);
    return 0;
  }
  return fusage("unknown subcommand '%s' (list, add, partition, clear, "
                "pause or load)", sub);
}
