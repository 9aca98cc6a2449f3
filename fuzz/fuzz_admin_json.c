/*
 * Fuzz target: what warrenctl does with an admin API's answer.  The admin
 * API may be another version, or not warren at all, so its bytes are
 * untrusted input.
 *
 * Byte 0 picks the path: 0 -> the HTTP response parser (ctl_http_parse,
 * with and without EOF, on every prefix length given by byte 1); 1..3 ->
 * the members/routes/status shape checks, then the printers and, for two
 * documents split at the first NUL, the watch diff between them.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static FILE *sink(void) {
  static FILE *f;
  if (!f) f = fopen("/dev/null", "w");
  return f;
}

static void http(const uint8_t *data, size_t size) {
  char err[256];
  ctl_response r;
  for (int eof = 0; eof < 2; eof++) {
    int rv = ctl_http_parse((const char *)data, size, eof, &r, err, sizeof err);
    if (rv == 1) {
      if (!r.body || r.body[r.len] != '\0') abort();
      free(r.body);
    } else if (r.body) {
      abort(); /* no body may be handed out unless complete */
    }
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  int mode = data[0] % 4;
  data++;
  size--;
  if (mode == 0) {
    http(data, size);
    return 0;
  }
  json_t *(*check)(const json_t *, char *, size_t) =
      mode == 1   ? ctl_check_members
      : mode == 2 ? ctl_check_routes
                  : ctl_check_status;
  const uint8_t *nul = memchr(data, 0, size);
  size_t len1 = nul ? (size_t)(nul - data) : size;
  char err[256];
  json_t *a =
      ctl_parse_checked((const char *)data, len1, check, err, sizeof err);
  if (!a) {
    if (!err[0]) abort(); /* every rejection says why */
    return 0;
  }
  FILE *out = sink();
  if (mode == 1) ctl_print_members(out, a);
  if (mode == 2) ctl_print_routes(out, a);
  if (mode == 3) ctl_print_status(out, a);
  ctl_print_json(out, a);
  if (mode == 1 && nul) {
    /* Two member lists: diff them under a fixed status. */
    json_t *b = ctl_parse_checked((const char *)nul + 1, size - len1 - 1,
                                  ctl_check_members, err, sizeof err);
    json_t *st = json_pack("{s:s,s:{s:i,s:i,s:i,s:i},s:i,s:s}", "id", "n",
                           "members", "alive", 0, "suspect", 0, "dead", 0,
                           "left", 0, "routes", 0, "routes_digest", "d");
    if (b && st) {
      ctl_watch_diff(out, "", 0, NULL, NULL, st, a);
      ctl_watch_diff(out, "", 0, st, a, st, b);
      ctl_watch_diff(out, "", 1, st, b, st, a);
    }
    json_decref(b);
    json_decref(st);
  }
  json_decref(a);
  return 0;
}
