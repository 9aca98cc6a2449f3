/*
 * A node's lifecycle (docs/DEPLOY.md):
 *  - `warrenctl drain [--wait]`: POST /drain (the node drains gracefully
 *    and exits), and with --wait, follow it until its admin API stops
 *    answering;
 *  - `warrenctl upgrade [--wait]`: POST /upgrade (the node checks the
 *    binary at its path, drains, and execs it with its socket), and with
 *    --wait, follow it until a successor answers (a new started_ms) or
 *    the upgrade is refused.
 * One request, then at most one GET every 200 ms, each bounded by
 * --timeout; the whole wait by the node's own drain timeout plus a margin
 * for the leave, the exit or exec, and the successor's join.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "ctl.h"

static long long mono_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The leave's grace, the loop closing and the process exit come after
 * the drain proper; 10 s is ample on a loaded machine. */
#define EXIT_MARGIN_MS 10000

/* POSTs |path|; 0 and its JSON object (200 or 202, with "id",
 * "wait_ms" and "timeout_ms"), else 1 after one line on stderr. */
static int post_lifecycle(const ctl_target *t, const char *path,
                          const char *token, int timeout_ms, json_t **out) {
  ctl_response r;
  char err[256];
  if (ctl_http_request(t, "POST", path, token, NULL, 0, timeout_ms, &r, err,
                       sizeof err) != 0) {
    fprintf(stderr, "warrenctl: cannot reach admin API at %s: %s\n",
            t->display, err);
    return 1;
  }
  json_t *j = json_loadb(r.body, r.len, JSON_REJECT_DUPLICATES, NULL);
  free(r.body);
  if (r.status == 401 || r.status == 403) {
    fprintf(stderr, "warrenctl: the admin API rejected the token "
                    "(use --token or WARREN_TOKEN)\n");
    json_decref(j);
    return 1;
  }
  if (r.status != 200 && r.status != 202) {
    const char *msg = json_string_value(json_object_get(j, "error"));
    fprintf(stderr, "warrenctl: admin API at %s answered %d for %s%s%.200s\n",
            t->display, r.status, path, msg ? ": " : "", msg ? msg : "");
    json_decref(j);
    return 1;
  }
  json_t *jw = json_object_get(j, "wait_ms"), *jt = json_object_get(j, "timeout_ms");
  if (!json_is_object(j) || !json_string_value(json_object_get(j, "id")) ||
      !json_is_integer(jw) || !json_is_integer(jt) ||
      json_integer_value(jt) < 0) {
    fprintf(stderr, "warrenctl: unexpected answer from admin API at %s for "
                    "%s\n", t->display, path);
    json_decref(j);
    return 1;
  }
  *out = j;
  return 0;
}

static void print_json(json_t *j) {
  char *s = json_dumps(j, JSON_COMPACT);
  if (s) puts(s);
  free(s);
}

static void sleep_200ms(void) {
  struct timespec ts = {0, 200 * 1000000L};
  nanosleep(&ts, NULL);
}

int ctl_drain_run(const ctl_target *t, const char *token, int timeout_ms,
                  int json, int wait) {
  ctl_response r;
  char err[256];
  json_t *j;
  if (post_lifecycle(t, "/drain", token, timeout_ms, &j) != 0) return 1;
  const char *id = json_string_value(json_object_get(j, "id"));
  json_t *jw = json_object_get(j, "wait_ms"), *jt = json_object_get(j, "timeout_ms");
  long long timeout = json_integer_value(jt);
  char node[128]; /* |id| belongs to |j|, freed below */
  snprintf(node, sizeof node, "%s", id);
  if (json) {
    print_json(j);
  } else {
    printf("draining %s: serving at least %.1f s, at most %.1f s; it exits "
           "when done\n", id, (double)json_integer_value(jw) / 1000,
           (double)timeout / 1000);
  }
  json_decref(j);
  if (!wait) return 0;
  fflush(stdout);
  long long end = mono_ms() + timeout + EXIT_MARGIN_MS;
  while (mono_ms() < end && !ctl_interrupted) {
    sleep_200ms();
    if (ctl_http_get(t, "/readyz", NULL, timeout_ms, &r, err, sizeof err) !=
        0) {
      /* Refused: the node has closed its admin API, the last thing it
       * does before it exits. */
      if (!json) printf("%s: drained and stopped\n", node);
      return 0;
    }
    free(r.body);
  }
  fprintf(stderr, "warrenctl: %s still answers after %.1f s\n", node,
          (double)(timeout + EXIT_MARGIN_MS) / 1000);
  return 1;
}

/* The successor joins the mesh before it takes visitors (up to 10 s with
 * accept_when_joined); its admin API answers once it has started. */
#define SUCCESSOR_MARGIN_MS 20000

int ctl_upgrade_run(const ctl_target *t, const char *token, int timeout_ms,
                    int json, int wait) {
  ctl_response r;
  char err[256];
  json_t *j;
  if (post_lifecycle(t, "/upgrade", token, timeout_ms, &j) != 0) return 1;
  char node[128], bin[1024];
  snprintf(node, sizeof node, "%s", json_string_value(json_object_get(j, "id")));
  const char *b = json_string_value(json_object_get(j, "binary"));
  snprintf(bin, sizeof bin, "%s", b ? b : "?");
  long long started = json_integer_value(json_object_get(j, "started_ms"));
  long long timeout = json_integer_value(json_object_get(j, "timeout_ms"));
  if (json)
    print_json(j);
  else
    printf("upgrading %s to %s: checking it, then draining (at most %.1f s) "
           "and exec\n", node, bin, (double)timeout / 1000);
  json_decref(j);
  if (!wait) return 0;
  fflush(stdout);
  long long total = 5000 + timeout + EXIT_MARGIN_MS + SUCCESSOR_MARGIN_MS;
  long long end = mono_ms() + total;
  while (mono_ms() < end && !ctl_interrupted) {
    sleep_200ms();
    /* Refused while the node execs: the successor is not up yet. */
    if (ctl_http_get(t, "/status", token, timeout_ms, &r, err, sizeof err) !=
        0)
      continue;
    json_t *s = r.status == 200 ? json_loadb(r.body, r.len, 0, NULL) : NULL;
    free(r.body);
    long long now_started = json_integer_value(json_object_get(s, "started_ms"));
    json_t *u = json_object_get(s, "upgrade");
    const char *state = json_string_value(json_object_get(u, "state"));
    if (s && now_started && now_started != started) {
      if (!json) printf("%s: upgraded; running %s\n", node, bin);
      json_decref(s);
      return 0;
    }
    if (state && !strcmp(state, "failed")) {
      const char *why = json_string_value(json_object_get(u, "error"));
      fprintf(stderr, "warrenctl: %s refused the upgrade: %.300s\n", node,
              why ? why : "no reason given");
      json_decref(s);
      return 1;
    }
    json_decref(s);
  }
  fprintf(stderr, "warrenctl: no successor of %s answered within %.1f s\n",
          node, (double)total / 1000);
  return 1;
}
