/*
 * warrenctl's output side: contract checks, tables, --json, watch diffs.
 *
 * The admin API is another program (possibly another version, possibly
 * not warren at all if the operator typed the wrong port), so nothing it
 * sends is trusted: every field is checked for presence and type before
 * use, and strings are printed with control characters replaced, so a
 * hostile name cannot move the terminal's cursor or forge table rows.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ctl.h"
#include "warren/types.h"

static void seterr(char *err, size_t cap, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void seterr(char *err, size_t cap, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err, cap, fmt, ap);
  va_end(ap);
}

/* ---- shape checks ------------------------------------------------------ */

/* F_STRS is an array of strings.  An optional field the server left out
 * (or sent as null) becomes null in the output (F_OPT_NULL), so --json
 * keeps one shape for scripts, or is left out (F_OPT_OMIT) for fields that
 * only some nodes add. */
typedef enum { F_STR, F_UINT, F_STRS } ftype;
enum { F_REQ = 0, F_OPT_NULL = 1, F_OPT_OMIT = 2 };
typedef struct field {
  const char *key;
  ftype type;
  int opt;
} field;

static int type_ok(const json_t *v, ftype t) {
  switch (t) {
  case F_STR:
    return json_is_string(v);
  case F_UINT:
    return json_is_integer(v) && json_integer_value(v) >= 0;
  case F_STRS: {
    if (!json_is_array(v)) return 0;
    size_t i;
    json_t *e;
    json_array_foreach(v, i, e) if (!json_is_string(e)) return 0;
    return 1;
  }
  }
  return 0;
}

static const char *type_name(ftype t) {
  return t == F_STR    ? "string"
         : t == F_UINT ? "non-negative integer"
                       : "array of strings";
}

/* Copies the listed fields of object |o| into a new object, checking
 * types.  |what| names the object in errors ("member 3"). */
static json_t *pick(const json_t *o, const field *fs, size_t n,
                    const char *what, char *err, size_t cap) {
  if (!json_is_object(o)) {
    seterr(err, cap, "%s is not a JSON object", what);
    return NULL;
  }
  json_t *r = json_object();
  if (!r) {
    seterr(err, cap, "out of memory");
    return NULL;
  }
  for (size_t i = 0; i < n; i++) {
    json_t *v = json_object_get(o, fs[i].key);
    if (fs[i].opt != F_REQ && (!v || json_is_null(v))) {
      if (fs[i].opt == F_OPT_NULL)
        json_object_set_new_nocheck(r, fs[i].key, json_null());
      continue;
    }
    if (!type_ok(v, fs[i].type)) {
      seterr(err, cap, "%s has no %s \"%s\"", what, type_name(fs[i].type),
             fs[i].key);
      json_decref(r);
      return NULL;
    }
    json_object_set_nocheck(r, fs[i].key, v);
  }
  return r;
}

static json_t *check_array(const json_t *j, const field *fs, size_t n,
                           const char *noun, char *err, size_t cap,
                           int (*extra)(const json_t *, const char *, char *,
                                        size_t)) {
  if (!json_is_array(j)) {
    seterr(err, cap, "expected a JSON array of %ss", noun);
    return NULL;
  }
  json_t *out = json_array();
  if (!out) {
    seterr(err, cap, "out of memory");
    return NULL;
  }
  size_t i;
  json_t *v;
  json_array_foreach(j, i, v) {
    char what[48];
    snprintf(what, sizeof what, "%s %zu", noun, i + 1);
    json_t *o = pick(v, fs, n, what, err, cap);
    if (!o || (extra && extra(o, what, err, cap) != 0)) {
      json_decref(o);
      json_decref(out);
      return NULL;
    }
    json_array_append_new(out, o);
  }
  return out;
}

static const char *const states[] = {"alive", "suspect", "dead", "left"};

static int member_state_ok(const json_t *o, const char *what, char *err,
                           size_t cap) {
  const char *s = json_string_value(json_object_get(o, "state"));
  for (size_t i = 0; i < 4; i++)
    if (strcmp(s, states[i]) == 0) return 0;
  seterr(err, cap, "%s has unknown state \"%.32s\"", what, s);
  return -1;
}

json_t *ctl_check_members(const json_t *j, char *err, size_t cap) {
  static const field fs[] = {{"id", F_STR, F_REQ},
                             {"addr", F_STR, F_REQ},
                             {"state", F_STR, F_REQ},
                             {"incarnation", F_UINT, F_REQ}};
  return check_array(j, fs, 4, "member", err, cap, member_state_ok);
}

json_t *ctl_check_routes(const json_t *j, char *err, size_t cap) {
  /* "account" is in the contract but nodes before issue 10 did not send
   * it: null then.  "serving" (how many entries serve the name, > 1 with
   * --balance) is passed on when the node sends it. */
  static const field fs[] = {{"name", F_STR, F_REQ},
                             {"owner", F_STR, F_REQ},
                             {"account", F_STR, F_OPT_NULL},
                             {"version", F_UINT, F_REQ},
                             {"state", F_STR, F_REQ},
                             {"serving", F_UINT, F_OPT_OMIT}};
  return check_array(j, fs, WR_ARRAY_LEN(fs), "route", err, cap, NULL);
}

json_t *ctl_check_status(const json_t *j, char *err, size_t cap) {
  static const field top[] = {
      {"id", F_STR, F_REQ}, {"routes", F_UINT, F_REQ}, {"routes_digest", F_STR, F_REQ}};
  static const field counts[] = {{"alive", F_UINT, F_REQ},
                                 {"suspect", F_UINT, F_REQ},
                                 {"dead", F_UINT, F_REQ},
                                 {"left", F_UINT, F_REQ}};
  json_t *t = pick(j, top, 3, "status", err, cap);
  if (!t) return NULL;
  json_t *m = pick(json_object_get(j, "members"), counts, 4,
                   "status \"members\"", err, cap);
  if (!m) {
    json_decref(t);
    return NULL;
  }
  /* Rebuild in the contract's order: id, members, routes, routes_digest. */
  json_t *r = json_object();
  if (!r) {
    json_decref(t);
    json_decref(m);
    seterr(err, cap, "out of memory");
    return NULL;
  }
  json_object_set(r, "id", json_object_get(t, "id"));
  json_object_set_new(r, "members", m);
  json_object_set(r, "routes", json_object_get(t, "routes"));
  json_object_set(r, "routes_digest", json_object_get(t, "routes_digest"));
  json_decref(t);
  return r;
}

json_t *ctl_check_members_mesh(const json_t *j, char *err, size_t cap) {
  static const field fs[] = {{"id", F_STR, F_REQ},
                             {"addr", F_STR, F_REQ},
                             {"state", F_STR, F_REQ},
                             {"incarnation", F_UINT, F_REQ},
                             {"admin", F_STR, F_OPT_OMIT}};
  return check_array(j, fs, WR_ARRAY_LEN(fs), "member", err, cap,
                     member_state_ok);
}

json_t *ctl_check_status_mesh(const json_t *j, char *err, size_t cap) {
  static const field extra[] = {
      {"routes_digest_age_ms", F_UINT, F_OPT_OMIT},
      {"members_digest", F_STR, F_OPT_OMIT},
      {"members_digest_age_ms", F_UINT, F_OPT_OMIT}};
  json_t *r = ctl_check_status(j, err, cap);
  if (!r) return NULL;
  json_t *x = pick(j, extra, WR_ARRAY_LEN(extra), "status", err, cap);
  if (!x || json_object_update(r, x) != 0) {
    json_decref(x);
    json_decref(r);
    return NULL;
  }
  json_decref(x);
  return r;
}

json_t *ctl_parse_checked(const char *text, size_t len,
                          json_t *(*check)(const json_t *, char *, size_t),
                          char *err, size_t cap) {
  json_error_t je;
  json_t *j = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
  if (!j) {
    seterr(err, cap, "not JSON (line %d: %s)", je.line, je.text);
    return NULL;
  }
  json_t *r = check(j, err, cap);
  json_decref(j);
  return r;
}

/* ---- tables ------------------------------------------------------------ */

/* A cell's text: strings with control bytes replaced, integers in
 * decimal.  Bounded so one absurd field cannot make every row huge. */
#define CELL 128
static void cell(const json_t *v, char *dst) {
  if (!v || json_is_null(v)) {
    snprintf(dst, CELL, "-");
    return;
  }
  if (json_is_integer(v)) {
    snprintf(dst, CELL, "%lld", (long long)json_integer_value(v));
    return;
  }
  const char *s = json_string_value(v);
  size_t n = 0;
  for (; s && *s && n < CELL - 1; s++)
    dst[n++] = ((unsigned char)*s < 0x20 || *s == 0x7f) ? '?' : *s;
  dst[n] = '\0';
}

/* Pads to the column width, except the last column (no trailing blanks). */
static void put_cell(FILE *out, const char *s, size_t w, int last) {
  if (last)
    fprintf(out, "%s\n", s);
  else
    fprintf(out, "%-*s  ", (int)w, s);
}

static void print_table(FILE *out, const json_t *arr, const char *const *hdr,
                        const char *const *keys, size_t ncol,
                        const char *empty) {
  size_t w[8];
  char c[CELL];
  for (size_t k = 0; k < ncol; k++) w[k] = strlen(hdr[k]);
  size_t i;
  json_t *row;
  json_array_foreach(arr, i, row) {
    for (size_t k = 0; k < ncol; k++) {
      cell(json_object_get(row, keys[k]), c);
      w[k] = WR_MAX(w[k], strlen(c));
    }
  }
  for (size_t k = 0; k < ncol; k++) put_cell(out, hdr[k], w[k], k + 1 == ncol);
  json_array_foreach(arr, i, row) {
    for (size_t k = 0; k < ncol; k++) {
      cell(json_object_get(row, keys[k]), c);
      put_cell(out, c, w[k], k + 1 == ncol);
    }
  }
  if (json_array_size(arr) == 0) fprintf(out, "%s\n", empty);
}

void ctl_print_members(FILE *out, const json_t *members) {
  static const char *const hdr[] = {"ID", "ADDR", "STATE", "INCARNATION"};
  static const char *const keys[] = {"id", "addr", "state", "incarnation"};
  print_table(out, members, hdr, keys, 4, "(no members)");
}

void ctl_print_routes(FILE *out, const json_t *routes) {
  static const char *const hdr[] = {"NAME", "OWNER", "ACCOUNT", "VERSION",
                                    "STATE"};
  static const char *const keys[] = {"name", "owner", "account", "version",
                                     "state"};
  print_table(out, routes, hdr, keys, 5, "(no routes)");
}

/* ---- routes --name ----------------------------------------------------- */

json_t *ctl_check_candidates(const json_t *j, char *err, size_t cap) {
  /* Required: what the table and the verdict need.  The rest is shown
   * when present; a node that leaves it out still gets its candidates
   * printed (null in --json). */
  static const field fs[] = {{"owner", F_STR, F_REQ},
                             {"account", F_STR, F_OPT_NULL},
                             {"session", F_STR, F_OPT_NULL},
                             {"epoch", F_UINT, F_OPT_NULL},
                             {"seq", F_UINT, F_OPT_NULL},
                             {"version", F_UINT, F_REQ},
                             {"claimed_at", F_UINT, F_OPT_NULL},
                             {"state", F_STR, F_REQ},
                             {"options", F_STRS, F_OPT_NULL},
                             {"verdict", F_STR, F_REQ},
                             {"why", F_STR, F_OPT_NULL}};
  static const field top[] = {{"name", F_STR, F_REQ}};
  if (json_is_array(j)) {
    /* A node from before issue 10 ignores "?name=" and sends the whole
     * table. */
    seterr(err, cap, "expected an object {\"name\",\"candidates\"} but got "
                     "the whole route table (a node too old for --name?)");
    return NULL;
  }
  json_t *r = pick(j, top, 1, "answer", err, cap);
  if (!r) return NULL;
  json_t *c = check_array(json_object_get(j, "candidates"), fs,
                          WR_ARRAY_LEN(fs), "candidate", err, cap, NULL);
  if (!c) {
    json_decref(r);
    return NULL;
  }
  json_object_set_new_nocheck(r, "candidates", c);
  return r;
}

/* claimed_at is a Lamport version (the version of the account's first
 * claim of the name, kept by moves), not a time: "v<N>", comparable with
 * the VERSION column.  The smaller claim wins between two accounts. */
static void claimed_cell(const json_t *v, char *dst) {
  if (!json_is_integer(v) || json_integer_value(v) < 0) {
    snprintf(dst, CELL, "-");
    return;
  }
  snprintf(dst, CELL, "v%lld", (long long)json_integer_value(v));
}

void ctl_print_candidates(FILE *out, const json_t *ans) {
  static const char *const hdr[] = {"OWNER",   "ACCOUNT", "VERSION",
                                    "CLAIMED", "STATE",   "VERDICT"};
  static const char *const keys[] = {"owner",      "account", "version",
                                     "claimed_at", "state",   "verdict"};
  enum { NCOL = 6 };
  const json_t *cs = json_object_get(ans, "candidates");
  size_t n = json_array_size(cs), serves = 0;
  char name[CELL];
  cell(json_object_get(ans, "name"), name);
  if (n == 0) {
    fprintf(out, "no entry for %s\n", name);
    return;
  }
  size_t w[NCOL];
  char c[CELL];
  for (size_t k = 0; k < NCOL; k++) w[k] = strlen(hdr[k]);
  size_t i;
  json_t *row;
  json_array_foreach(cs, i, row) {
    const char *v = json_string_value(json_object_get(row, "verdict"));
    if (strcmp(v, "serves") == 0) serves++;
    for (size_t k = 0; k < NCOL; k++) {
      if (k == 3)
        claimed_cell(json_object_get(row, keys[k]), c);
      else
        cell(json_object_get(row, keys[k]), c);
      w[k] = WR_MAX(w[k], strlen(c));
    }
  }
  fprintf(out, "%s: %zu candidate%s, ", name, n, n == 1 ? "" : "s");
  if (serves == 0)
    fprintf(out, "none serves\n");
  else
    fprintf(out, "%zu serve%s\n", serves, serves == 1 ? "s" : "");
  for (size_t k = 0; k < NCOL; k++) put_cell(out, hdr[k], w[k], k + 1 == NCOL);
  json_array_foreach(cs, i, row) {
    for (size_t k = 0; k < NCOL; k++) {
      if (k == 3)
        claimed_cell(json_object_get(row, keys[k]), c);
      else
        cell(json_object_get(row, keys[k]), c);
      put_cell(out, c, w[k], k + 1 == NCOL);
    }
  }
  /* Why each verdict: one line per candidate, in the table's order, with
   * the options (balance, ...) that took part in the decision. */
  fprintf(out, "why:\n");
  json_array_foreach(cs, i, row) {
    char own[CELL], why[CELL * 4];
    cell(json_object_get(row, "owner"), own);
    const json_t *wv = json_object_get(row, "why");
    /* A longer cell for the sentence; still bounded. */
    size_t m = 0;
    for (const char *s = json_string_value(wv); s && *s && m < sizeof why - 1;
         s++)
      why[m++] = ((unsigned char)*s < 0x20 || *s == 0x7f) ? '?' : *s;
    why[m] = '\0';
    fprintf(out, "  %s v%lld", own,
            (long long)json_integer_value(json_object_get(row, "version")));
    const json_t *opts = json_object_get(row, "options");
    if (json_array_size(opts) > 0) {
      fputs(" [", out);
      size_t k;
      json_t *o;
      json_array_foreach(opts, k, o) {
        cell(o, c);
        fprintf(out, "%s%s", k ? "," : "", c);
      }
      fputc(']', out);
    }
    fprintf(out, ": %s\n", m ? why : "(no reason given)");
  }
}

static long long ival(const json_t *o, const char *k) {
  return (long long)json_integer_value(json_object_get(o, k));
}

void ctl_print_status(FILE *out, const json_t *st) {
  char id[CELL], dg[CELL];
  const json_t *m = json_object_get(st, "members");
  cell(json_object_get(st, "id"), id);
  cell(json_object_get(st, "routes_digest"), dg);
  fprintf(out, "node:           %s\n", id);
  fprintf(
      out, "members:        %lld alive, %lld suspect, %lld dead, %lld left\n",
      ival(m, "alive"), ival(m, "suspect"), ival(m, "dead"), ival(m, "left"));
  fprintf(out, "routes:         %lld\n", ival(st, "routes"));
  fprintf(out, "routes digest:  %s\n", dg);
}

void ctl_print_json(FILE *out, const json_t *j) {
  json_dumpf(j, out, JSON_COMPACT);
  fputc('\n', out);
}

/* ---- the whole mesh ---------------------------------------------------- */

int ctl_mesh_converged(json_t *const *st, size_t n) {
  if (n == 0) return 0;
  for (size_t i = 0; i < n; i++) {
    if (!st[i]) return 0;
    /* Same table (digest) and same view of membership (counts): a node
     * that still thinks a dead member is alive has not converged either. */
    if (i > 0 && (!json_equal(json_object_get(st[i], "routes_digest"),
                              json_object_get(st[0], "routes_digest")) ||
                  !json_equal(json_object_get(st[i], "members"),
                              json_object_get(st[0], "members"))))
      return 0;
  }
  return 1;
}

void ctl_print_mesh(FILE *out, const char *const *admins, json_t *const *st,
                    size_t n) {
  static const char *const hdr[] = {"ADMIN", "NODE", "ALIVE",  "SUSPECT",
                                    "DEAD",  "LEFT", "ROUTES", "DIGEST"};
  enum { NCOL = 8 };
  char(*cells)[NCOL][CELL] = calloc(n ? n : 1, sizeof *cells);
  if (!cells) return;
  size_t w[NCOL];
  for (size_t k = 0; k < NCOL; k++) w[k] = strlen(hdr[k]);
  for (size_t i = 0; i < n; i++) {
    snprintf(cells[i][0], CELL, "%s", admins[i]);
    if (!st[i]) {
      snprintf(cells[i][1], CELL, "unreachable");
      for (size_t k = 2; k < NCOL; k++) snprintf(cells[i][k], CELL, "-");
    } else {
      const json_t *m = json_object_get(st[i], "members");
      cell(json_object_get(st[i], "id"), cells[i][1]);
      cell(json_object_get(m, "alive"), cells[i][2]);
      cell(json_object_get(m, "suspect"), cells[i][3]);
      cell(json_object_get(m, "dead"), cells[i][4]);
      cell(json_object_get(m, "left"), cells[i][5]);
      cell(json_object_get(st[i], "routes"), cells[i][6]);
      cell(json_object_get(st[i], "routes_digest"), cells[i][7]);
    }
    for (size_t k = 0; k < NCOL; k++) w[k] = WR_MAX(w[k], strlen(cells[i][k]));
  }
  for (size_t k = 0; k < NCOL; k++) put_cell(out, hdr[k], w[k], k + 1 == NCOL);
  for (size_t i = 0; i < n; i++)
    for (size_t k = 0; k < NCOL; k++)
      put_cell(out, cells[i][k], w[k], k + 1 == NCOL);
  if (ctl_mesh_converged(st, n)) {
    fprintf(out, "converged: %zu nodes, %s routes, digest %s\n", n, cells[0][6],
            cells[0][7]);
  } else {
    size_t down = 0, digests = 0;
    for (size_t i = 0; i < n; i++) {
      if (!st[i]) {
        down++;
        continue;
      }
      /* Count distinct digests: first occurrence only. */
      size_t j = 0;
      while (j < i &&
             !(st[j] && json_equal(json_object_get(st[j], "routes_digest"),
                                   json_object_get(st[i], "routes_digest"))))
        j++;
      if (j == i) digests++;
    }
    fprintf(out, "not converged: %zu distinct route digests", digests);
    if (down) fprintf(out, ", %zu unreachable", down);
    fprintf(out, "\n");
  }
  free(cells);
}

json_t *ctl_mesh_json(const char *const *admins, json_t *const *st, size_t n) {
  json_t *nodes = json_array();
  if (!nodes) return NULL;
  for (size_t i = 0; i < n; i++)
    json_array_append_new(
        nodes, json_pack("{s:s,s:O?}", "admin", admins[i], "status", st[i]));
  return json_pack("{s:b,s:o}", "converged", ctl_mesh_converged(st, n), "nodes",
                   nodes);
}

/* ---- watch ------------------------------------------------------------- */

static const json_t *find_member(const json_t *arr, const char *id) {
  size_t i;
  json_t *m;
  json_array_foreach(arr, i, m) {
    if (strcmp(json_string_value(json_object_get(m, "id")), id) == 0) return m;
  }
  return NULL;
}

/* Prints one event, as text or as a JSON line built from |ev| (stolen). */
static void emit(FILE *out, const char *prefix, int json, json_t *ev,
                 const char *fmt, ...) __attribute__((format(printf, 5, 6)));
static void emit(FILE *out, const char *prefix, int json, json_t *ev,
                 const char *fmt, ...) {
  if (json) {
    if (ev) ctl_print_json(out, ev);
  } else {
    va_list ap;
    va_start(ap, fmt);
    fputs(prefix, out);
    vfprintf(out, fmt, ap);
    fputc('\n', out);
    va_end(ap);
  }
  json_decref(ev);
}

int ctl_watch_diff(FILE *out, const char *prefix, int json, const json_t *os,
                   const json_t *om, const json_t *ns, const json_t *nm) {
  int lines = 0;
  char a[CELL], b[CELL], c[CELL], d[CELL];
  size_t i;
  json_t *m;

  if (!os) {
    /* First poll: the state as it is, so the changes that follow have a
     * baseline on screen. */
    const json_t *cnt = json_object_get(ns, "members");
    cell(json_object_get(ns, "id"), a);
    cell(json_object_get(ns, "routes_digest"), b);
    emit(out, prefix, json,
         json_pack("{s:s,s:O,s:O,s:O,s:O}", "event", "status", "id",
                   json_object_get(ns, "id"), "members", cnt, "routes",
                   json_object_get(ns, "routes"), "routes_digest",
                   json_object_get(ns, "routes_digest")),
         "node %s: %lld alive, %lld suspect, %lld dead, %lld left; "
         "%lld routes (digest %s)",
         a, ival(cnt, "alive"), ival(cnt, "suspect"), ival(cnt, "dead"),
         ival(cnt, "left"), ival(ns, "routes"), b);
    lines++;
    json_array_foreach(nm, i, m) {
      cell(json_object_get(m, "id"), a);
      cell(json_object_get(m, "state"), b);
      emit(out, prefix, json,
           json_pack("{s:s,s:O,s:n,s:O,s:O}", "event", "member", "id",
                     json_object_get(m, "id"), "from", "to",
                     json_object_get(m, "state"), "incarnation",
                     json_object_get(m, "incarnation")),
           "member %s %s (incarnation %lld)", a, b, ival(m, "incarnation"));
      lines++;
    }
    return lines;
  }

  cell(json_object_get(os, "id"), a);
  cell(json_object_get(ns, "id"), b);
  if (strcmp(a, b) != 0) {
    emit(out, prefix, json,
         json_pack("{s:s,s:O,s:O}", "event", "id", "from",
                   json_object_get(os, "id"), "to", json_object_get(ns, "id")),
         "node id %s -> %s", a, b);
    lines++;
  }

  json_array_foreach(nm, i, m) {
    const char *id = json_string_value(json_object_get(m, "id"));
    const json_t *old = find_member(om, id);
    cell(json_object_get(m, "id"), a);
    cell(json_object_get(m, "state"), b);
    long long inc = ival(m, "incarnation");
    if (!old) {
      emit(out, prefix, json,
           json_pack("{s:s,s:O,s:n,s:O,s:O}", "event", "member", "id",
                     json_object_get(m, "id"), "from", "to",
                     json_object_get(m, "state"), "incarnation",
                     json_object_get(m, "incarnation")),
           "member %s joined (%s, incarnation %lld)", a, b, inc);
      lines++;
      continue;
    }
    cell(json_object_get(old, "state"), c);
    long long oinc = ival(old, "incarnation");
    if (strcmp(b, c) != 0) {
      emit(out, prefix, json,
           json_pack("{s:s,s:O,s:O,s:O,s:O}", "event", "member", "id",
                     json_object_get(m, "id"), "from",
                     json_object_get(old, "state"), "to",
                     json_object_get(m, "state"), "incarnation",
                     json_object_get(m, "incarnation")),
           "member %s %s -> %s (incarnation %lld)", a, c, b, inc);
      lines++;
    } else if (inc != oinc) {
      /* A refutation: the member bumped its incarnation to clear a
       * suspicion, worth seeing even though the state did not move. */
      emit(out, prefix, json,
           json_pack("{s:s,s:O,s:O,s:O,s:O}", "event", "member", "id",
                     json_object_get(m, "id"), "from",
                     json_object_get(old, "state"), "to",
                     json_object_get(m, "state"), "incarnation",
                     json_object_get(m, "incarnation")),
           "member %s incarnation %lld -> %lld (%s)", a, oinc, inc, b);
      lines++;
    }
  }
  json_array_foreach(om, i, m) {
    const char *id = json_string_value(json_object_get(m, "id"));
    if (find_member(nm, id)) continue;
    cell(json_object_get(m, "id"), a);
    emit(out, prefix, json,
         json_pack("{s:s,s:O,s:O,s:n}", "event", "member", "id",
                   json_object_get(m, "id"), "from",
                   json_object_get(m, "state"), "to"),
         "member %s gone", a);
    lines++;
  }

  long long orc = ival(os, "routes"), nrc = ival(ns, "routes");
  cell(json_object_get(os, "routes_digest"), c);
  cell(json_object_get(ns, "routes_digest"), d);
  if (orc != nrc || strcmp(c, d) != 0) {
    emit(out, prefix, json,
         json_pack("{s:s,s:O,s:O,s:O,s:O}", "event", "routes", "from",
                   json_object_get(os, "routes"), "to",
                   json_object_get(ns, "routes"), "digest_from",
                   json_object_get(os, "routes_digest"), "digest_to",
                   json_object_get(ns, "routes_digest")),
         "routes %lld -> %lld (digest %s -> %s)", orc, nrc, c, d);
    lines++;
  }
  return lines;
}
