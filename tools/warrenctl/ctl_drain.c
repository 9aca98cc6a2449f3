/*
 * `warrenctl drain [--wait]`: POST /drain (the node drains gracefully
 * and exits, docs/DEPLOY.md), and with --wait, follow it until its admin
 * API stops answering.  One request, then at most one GET /readyz every
 * 200 ms, each bounded by --timeout; the whole wait by the node's own
 * drain timeout plus a margin for the leave and the exit.
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

int ctl_drain_run(const ctl_target *t, const char *token, int timeout_ms,
                  int json, int wait) {
  ctl_response r;
  char err[256];
  if (ctl_http_request(t, "POST", "/drain", token, NULL, 0, timeout_ms, &r,
                       err, sizeof err) != 0) {
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
  if (r.status != 200) {
    const char *msg = json_string_value(json_object_get(j, "error"));
    fprintf(stderr, "warrenctl: admin API at %s answered %d for /drain%s%.200s\n",
            t->display, r.status, msg ? ": " : "", msg ? msg : "");
    json_decref(j);
    return 1;
  }
  const char *id = json_string_value(json_object_get(j, "id"));
  json_t *jw = json_object_get(j, "wait_ms"), *jt = json_object_get(j, "timeout_ms");
  if (!json_is_object(j) || !id || !json_is_integer(jw) ||
      !json_is_integer(jt) || json_integer_value(jt) < 0) {
    fprintf(stderr, "warrenctl: unexpected answer from admin API at %s for "
                    "/drain\n", t->display);
    json_decref(j);
    return 1;
  }
  long long timeout = json_integer_value(jt);
  char node[128]; /* |id| belongs to |j|, freed below */
  snprintf(node, sizeof node, "%s", id);
  if (json) {
    char *s = json_dumps(j, JSON_COMPACT);
    if (s) puts(s);
    free(s);
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
    struct timespec ts = {0, 200 * 1000000L};
    nanosleep(&ts, NULL);
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
