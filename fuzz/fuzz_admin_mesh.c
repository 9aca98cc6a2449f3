/*
 * Fuzz target: what warrenctl does with the answers of a whole fleet
 * (`mesh`) and with a candidates answer (`routes --name`).  Every byte
 * comes from admin APIs that may be another version or not warren at all.
 *
 * Byte 0 picks the path.  Even: the rest is one candidates answer: shape
 * check, printer, --json.  Odd: the rest is NUL-separated JSON documents
 * (routes table of group A, routes table of group B, then (status,
 * members) per node, up to 16 nodes); each node's pair goes through the
 * mesh shape checks (a failing one makes the node unreachable), then the
 * report is built, diffed, printed as text (table and summary) and JSON.
 * Invariants: the report exists (no allocation failure here), the exit
 * status is 0 or 3, and "converged" agrees with it.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_DOCS 34

static FILE *sink(void) {
  static FILE *f;
  if (!f) f = fopen("/dev/null", "w");
  return f;
}

static json_t *doc(const char *p, size_t n,
                   json_t *(*check)(const json_t *, char *, size_t)) {
  char err[256];
  err[0] = '\0';
  json_t *j = ctl_parse_checked(p, n, check, err, sizeof err);
  if (!j && !err[0]) abort(); /* every rejection says why */
  return j;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  int mode = data[0] & 1;
  const char *p = (const char *)data + 1;
  size--;
  FILE *out = sink();
  if (mode == 0) {
    json_t *c = doc(p, size, ctl_check_candidates);
    if (c) {
      ctl_print_candidates(out, c);
      ctl_print_json(out, c);
    }
    json_decref(c);
    return 0;
  }
  const char *d[MAX_DOCS];
  size_t len[MAX_DOCS], nd = 0;
  while (nd < MAX_DOCS) {
    const char *nul = memchr(p, 0, size);
    d[nd] = p;
    len[nd++] = nul ? (size_t)(nul - p) : size;
    if (!nul) break;
    size -= (size_t)(nul - p) + 1;
    p = nul + 1;
  }
  ctl_mesh_node nodes[16];
  size_t n = 0;
  for (size_t k = 2; k + 1 < nd && n < 16; k += 2, n++) {
    ctl_mesh_node *m = &nodes[n];
    memset(m, 0, sizeof *m);
    m->status = doc(d[k], len[k], ctl_check_status_mesh);
    m->members = doc(d[k + 1], len[k + 1], ctl_check_members);
    const char *id = json_string_value(json_object_get(m->status, "id"));
    snprintf(m->id, sizeof m->id, "%s", id ? id : "?");
    snprintf(m->admin, sizeof m->admin, n % 3 ? "h:%zu" : "", n + 1);
    snprintf(m->state, sizeof m->state, n % 2 ? "alive" : "suspect");
    if (!m->status) snprintf(m->error, sizeof m->error, "bad status");
    /* Node 0 keeps its list (the first node's own); others only
     * sometimes, as when one list per members-digest group is fetched. */
    if (n > 0 && (n % 2)) {
      json_decref(m->members);
      m->members = NULL;
    }
  }
  json_t *rep = ctl_mesh_analyse("h:0", n ? nodes[0].id : "?", n, nodes, n);
  if (!rep) abort();
  json_t *tables[2] = {NULL, NULL};
  const char *errs[2] = {"bad table", "bad table"};
  for (size_t g = 0; g < 2 && g < nd; g++)
    tables[g] = doc(d[g], len[g], ctl_check_routes);
  size_t ng = json_array_size(
      json_object_get(json_object_get(rep, "routes"), "groups"));
  for (size_t g = 0; g < ng; g++)
    if (ctl_mesh_group_rep(rep, nodes, n, g) < 0) abort(); /* reachable */
  if (ng <= 2) {
    ctl_mesh_add_route_diffs(rep, tables, errs);
  }
  int rc = ctl_mesh_exit(rep);
  if (rc != 0 && rc != 3) abort();
  if ((rc == 0) != json_is_true(json_object_get(rep, "converged"))) abort();
  ctl_print_mesh_report(out, rep, 32);
  ctl_print_mesh_report(out, rep, 0);
  ctl_print_json(out, rep);
  json_decref(tables[0]);
  json_decref(tables[1]);
  json_decref(rep);
  for (size_t i = 0; i < n; i++) {
    json_decref(nodes[i].status);
    json_decref(nodes[i].members);
  }
  return 0;
}
