/*
 * warrenctl mesh: the whole fleet from one node, without I/O.
 *
 * main.c asks the first node for /status and /members, asks every live
 * member's own admin API for the same (ctl_http_get_many), and hands the
 * answers here.  This file groups the nodes by digest, finds who
 * disagrees with whom about which member, and after main.c has fetched
 * one /routes per routes-digest group, about which name.  Everything it
 * finds goes into one JSON report; the human output is printed from that
 * report, so `--json` and the text can never tell different stories.
 *
 * Sizes: a fleet of 500 answers 500 member lists of 500 rows.  Member
 * views are compared through one jansson object (a hash table) per node,
 * so the comparison is O(nodes x members) lookups, not a quadratic scan
 * per member.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"
#include "warren/types.h"

/* How many entries of each list the summary prints (the rest is
 * "and N more"; --json always has everything). */
#define SHOW_GROUPS 10
#define SHOW_DIFFS 10
#define SHOW_UNREACHABLE 5
/* A group or view of at most this many nodes is named node by node;
 * larger ones are a count ("at 4 nodes"). */
#define NAME_NODES 3

/* Answered /status.  Its member list is fetched only when it stands for
 * its members-digest group (or when nodes send no members_digest). */
static int reachable(const ctl_mesh_node *nd) { return nd->status != NULL; }

/* Spreadsheet-style group labels: A..Z, AA, AB, ... */
static void label_of(size_t g, char *dst) {
  char tmp[16];
  size_t n = 0;
  g++;
  while (g > 0 && n < sizeof tmp) {
    g--;
    tmp[n++] = (char)('A' + g % 26);
    g /= 26;
  }
  for (size_t i = 0; i < n; i++) dst[i] = tmp[n - 1 - i];
  dst[n] = '\0';
}

/* ---- grouping by digest ------------------------------------------------ */

typedef struct gsort {
  const char *key;
  json_t *idx; /* array of node indexes */
} gsort;

static int gsort_cmp(const void *x, const void *y) {
  const gsort *a = x, *b = y;
  size_t na = json_array_size(a->idx), nb = json_array_size(b->idx);
  if (na != nb) return na > nb ? -1 : 1; /* majority first */
  return strcmp(a->key, b->key);
}

/*
 * Groups the nodes with a non-NULL |keys[i]| by key.  Each group:
 * {"label","digest","nodes","ids",["routes",]"agreed_ms","disagrees_ms"}.
 *
 * agreed_ms: every node of the group has held this digest for at least
 * its own *_age_ms, so the group has agreed for at least the minimum of
 * them (null when a node does not report its age).
 * disagrees_ms (groups after the first): the group and the majority have
 * both held their digests unchanged for min(their agreed_ms), so they
 * have disagreed for at least that long.  (A minority node's own age alone
 * is not a bound: the majority may have moved away from its digest only a
 * moment ago.)
 */
static json_t *make_groups(const ctl_mesh_node *nodes, size_t n,
                           const char *const *keys, const char *age_key,
                           int with_routes) {
  json_t *by = json_object(), *out = json_array();
  gsort *gs = calloc(n ? n : 1, sizeof *gs);
  if (!by || !out || !gs) goto fail;
  for (size_t i = 0; i < n; i++) {
    if (!keys[i]) continue;
    json_t *a = json_object_get(by, keys[i]);
    if (!a) {
      a = json_array();
      if (!a || json_object_set_new(by, keys[i], a) != 0) goto fail;
    }
    json_array_append_new(a, json_integer((json_int_t)i));
  }
  size_t ng = 0;
  const char *k;
  json_t *v;
  json_object_foreach(by, k, v) {
    gs[ng].key = k;
    gs[ng++].idx = v;
  }
  qsort(gs, ng, sizeof *gs, gsort_cmp);
  json_int_t major_age = -1;
  for (size_t g = 0; g < ng; g++) {
    char label[16];
    label_of(g, label);
    json_t *ids = json_array();
    json_int_t agreed = -1; /* -1: unknown */
    int age_known = 1;
    size_t j;
    json_t *iv;
    json_array_foreach(gs[g].idx, j, iv) {
      const ctl_mesh_node *nd = &nodes[json_integer_value(iv)];
      json_array_append_new(ids, json_string(nd->id));
      json_t *age = json_object_get(nd->status, age_key);
      if (!json_is_integer(age))
        age_known = 0;
      else if (agreed < 0 || json_integer_value(age) < agreed)
        agreed = json_integer_value(age);
    }
    if (!age_known) agreed = -1;
    if (g == 0) major_age = agreed;
    json_t *o = json_pack("{s:s,s:s,s:I,s:o}", "label", label, "digest",
                          gs[g].key, "nodes",
                          (json_int_t)json_array_size(gs[g].idx), "ids", ids);
    if (!o) goto fail;
    if (with_routes) {
      const ctl_mesh_node *first =
          &nodes[json_integer_value(json_array_get(gs[g].idx, 0))];
      json_object_set(o, "routes", json_object_get(first->status, "routes"));
    }
    json_object_set_new(o, "agreed_ms",
                        agreed >= 0 ? json_integer(agreed) : json_null());
    json_object_set_new(o, "disagrees_ms",
                        g > 0 && agreed >= 0 && major_age >= 0
                            ? json_integer(WR_MIN(agreed, major_age))
                            : json_null());
    json_array_append_new(out, o);
  }
  free(gs);
  json_decref(by);
  return out;
fail:
  free(gs);
  json_decref(by);
  json_decref(out);
  return NULL;
}

/* FNV-1a, 64 bits: a fingerprint of a member view for nodes that do not
 * send members_digest (not a security property, only equality). */
static uint64_t fnv(uint64_t h, const char *s) {
  for (; *s; s++) {
    h ^= (unsigned char)*s;
    h *= 1099511628211ull;
  }
  return h;
}

static int strp_cmp(const void *x, const void *y) {
  return strcmp(*(const char *const *)x, *(const char *const *)y);
}

/* "~" and 16 hex digits over the sorted "id=state" lines of |members|. */
static int members_fingerprint(const json_t *members, char dst[24]) {
  size_t n = json_array_size(members);
  char **lines = calloc(n ? n : 1, sizeof *lines);
  if (!lines) return -1;
  int rv = 0;
  for (size_t i = 0; i < n; i++) {
    const json_t *m = json_array_get(members, i);
    const char *id = json_string_value(json_object_get(m, "id"));
    const char *st = json_string_value(json_object_get(m, "state"));
    size_t len = strlen(id) + strlen(st) + 2;
    if (!(lines[i] = malloc(len))) {
      rv = -1;
      goto out;
    }
    snprintf(lines[i], len, "%s=%s", id, st);
  }
  qsort(lines, n, sizeof *lines, strp_cmp);
  uint64_t h = 14695981039346656037ull;
  for (size_t i = 0; i < n; i++) h = fnv(fnv(h, lines[i]), "\n");
  snprintf(dst, 24, "~%016llx", (unsigned long long)h);
out:
  for (size_t i = 0; i < n; i++) free(lines[i]);
  free(lines);
  return rv;
}

/* ---- member views ------------------------------------------------------ */

typedef struct vsort {
  const char *key;
  json_t *val; /* the view object */
} vsort;

static int vsort_cmp(const void *x, const void *y) {
  const vsort *a = x, *b = y;
  json_int_t na = json_integer_value(json_object_get(a->val, "nodes"));
  json_int_t nb = json_integer_value(json_object_get(b->val, "nodes"));
  if (na != nb) return na > nb ? -1 : 1;
  return strcmp(a->key, b->key);
}

/* Turns {key: view} into an array of views, largest first.  Steals |by|. */
static json_t *sorted_views(json_t *by) {
  size_t n = json_object_size(by), i = 0;
  vsort *vs = calloc(n ? n : 1, sizeof *vs);
  json_t *out = json_array();
  if (!vs || !out) {
    free(vs);
    json_decref(out);
    json_decref(by);
    return NULL;
  }
  const char *k;
  json_t *v;
  json_object_foreach(by, k, v) {
    vs[i].key = k;
    vs[i++].val = v;
  }
  qsort(vs, n, sizeof *vs, vsort_cmp);
  for (i = 0; i < n; i++) json_array_append(out, vs[i].val);
  free(vs);
  json_decref(by);
  return out;
}

/* Differences are listed most-disputed first ("dissent": nodes outside
 * the largest view), then by name, so the first ten are the ones that
 * matter and the order is stable. */
static int diff_cmp(const void *x, const void *y) {
  const json_t *a = *(json_t *const *)x, *b = *(json_t *const *)y;
  json_int_t da = json_integer_value(json_object_get(a, "dissent"));
  json_int_t db = json_integer_value(json_object_get(b, "dissent"));
  if (da != db) return da > db ? -1 : 1;
  const char *ka = json_string_value(json_object_get(a, "id"));
  const char *kb = json_string_value(json_object_get(b, "id"));
  if (!ka) {
    ka = json_string_value(json_object_get(a, "name"));
    kb = json_string_value(json_object_get(b, "name"));
  }
  return strcmp(ka, kb);
}

static json_t *sort_diffs(json_t *arr) {
  size_t n = json_array_size(arr);
  json_t **v = calloc(n ? n : 1, sizeof *v);
  json_t *out = json_array();
  if (!v || !out) {
    free(v);
    json_decref(out);
    return NULL;
  }
  for (size_t i = 0; i < n; i++) v[i] = json_array_get(arr, i);
  qsort(v, n, sizeof *v, diff_cmp);
  for (size_t i = 0; i < n; i++) json_array_append(out, v[i]);
  free(v);
  return out;
}

/* The first node of group |g| whose member list was fetched, or -1. */
static long group_lister(const json_t *g, const json_t *idmap,
                         const ctl_mesh_node *nodes) {
  size_t j;
  json_t *idv;
  json_array_foreach(json_object_get(g, "ids"), j, idv) {
    json_t *ix = json_object_get(idmap, json_string_value(idv));
    if (ix && nodes[json_integer_value(ix)].members)
      return (long)json_integer_value(ix);
  }
  return -1;
}

/*
 * For each member any group's list mentions: its state in each
 * members-digest group ("unknown" where the list lacks it); a difference
 * when the groups do not all say the same.  Nodes with equal digests hold
 * equal views, so one list per group stands for all of its nodes: a view
 * counts the group's nodes and names them.  Groups without a fetched
 * list go to |unfetched|.
 */
static json_t *member_diffs(const ctl_mesh_node *nodes, const json_t *groups,
                            const json_t *idmap, json_t *unfetched) {
  size_t ng = json_array_size(groups);
  json_t **maps = calloc(ng ? ng : 1, sizeof *maps);
  json_t *all = json_object(), *diffs = json_array(), *sorted = NULL;
  if (!maps || !all || !diffs) goto out;
  json_int_t total = 0;
  for (size_t g = 0; g < ng; g++) {
    const json_t *grp = json_array_get(groups, g);
    long r = group_lister(grp, idmap, nodes);
    if (r < 0) {
      const json_t *first = json_object_get(
          idmap, json_string_value(json_array_get(json_object_get(grp, "ids"), 0)));
      const char *why = first ? nodes[json_integer_value(first)].error : "";
      json_array_append_new(unfetched,
                            json_pack("{s:O,s:s}", "group",
                                      json_object_get(grp, "label"), "error",
                                      *why ? why : "no member list"));
      continue;
    }
    total += json_integer_value(json_object_get(grp, "nodes"));
    if (!(maps[g] = json_object())) goto out;
    size_t j;
    json_t *m;
    json_array_foreach(nodes[r].members, j, m) {
      const char *id = json_string_value(json_object_get(m, "id"));
      json_object_set(maps[g], id, json_object_get(m, "state"));
      json_object_set_new(all, id, json_true());
    }
  }
  const char *id;
  json_t *unused;
  json_object_foreach(all, id, unused) {
    json_t *by = json_object();
    if (!by) goto out;
    for (size_t g = 0; g < ng; g++) {
      if (!maps[g]) continue;
      const json_t *grp = json_array_get(groups, g);
      const char *st = json_string_value(json_object_get(maps[g], id));
      if (!st) st = "unknown";
      json_t *view = json_object_get(by, st);
      if (!view) {
        view = json_pack("{s:s,s:I,s:[],s:[]}", "state", st, "nodes",
                         (json_int_t)0, "groups", "ids");
        if (!view || json_object_set_new(by, st, view) != 0) {
          json_decref(by);
          goto out;
        }
      }
      json_object_set_new(
          view, "nodes",
          json_integer(json_integer_value(json_object_get(view, "nodes")) +
                       json_integer_value(json_object_get(grp, "nodes"))));
      json_array_append(json_object_get(view, "groups"),
                        json_object_get(grp, "label"));
      json_array_extend(json_object_get(view, "ids"),
                        json_object_get(grp, "ids"));
    }
    if (json_object_size(by) < 2) {
      json_decref(by);
      continue;
    }
    json_t *views = sorted_views(by);
    if (!views) goto out;
    json_int_t top = json_integer_value(
        json_object_get(json_array_get(views, 0), "nodes"));
    json_array_append_new(diffs,
                          json_pack("{s:s,s:I,s:o}", "id", id, "dissent",
                                    total - top, "views", views));
  }
  sorted = sort_diffs(diffs);
out:
  for (size_t g = 0; maps && g < ng; g++) json_decref(maps[g]);
  free(maps);
  json_decref(all);
  json_decref(diffs);
  return sorted;
}

/* ---- the report -------------------------------------------------------- */

static json_t *str_or_null(const char *s) {
  return s && *s ? json_string(s) : json_null();
}

json_t *ctl_mesh_analyse(const char *via, const char *via_id,
                         size_t member_count, const ctl_mesh_node *nodes,
                         size_t n) {
  const char **rkeys = calloc(n ? n : 1, sizeof *rkeys);
  const char **mkeys = calloc(n ? n : 1, sizeof *mkeys);
  char(*fp)[24] = calloc(n ? n : 1, sizeof *fp);
  json_t *rep = NULL, *rg = NULL, *mg = NULL, *md = NULL, *idmap = NULL,
         *mun = NULL;
  if (!rkeys || !mkeys || !fp) goto out;

  /* The node's own members_digest when every reachable node sends one;
   * otherwise (older nodes in the fleet) a fingerprint computed here for
   * all of them, so two digest schemes never split one view in two. */
  int all_md = 1;
  size_t asked = 0, nr = 0;
  for (size_t i = 0; i < n; i++) {
    if (nodes[i].admin[0]) asked++;
    if (!reachable(&nodes[i])) continue;
    nr++;
    if (!json_is_string(json_object_get(nodes[i].status, "members_digest")))
      all_md = 0;
  }
  for (size_t i = 0; i < n; i++) {
    if (!reachable(&nodes[i])) continue;
    rkeys[i] =
        json_string_value(json_object_get(nodes[i].status, "routes_digest"));
    if (all_md) {
      mkeys[i] =
          json_string_value(json_object_get(nodes[i].status, "members_digest"));
    } else if (nodes[i].members) {
      if (members_fingerprint(nodes[i].members, fp[i]) != 0) goto out;
      mkeys[i] = fp[i];
    }
  }
  rg = make_groups(nodes, n, rkeys, "routes_digest_age_ms", 1);
  mg = make_groups(nodes, n, mkeys, "members_digest_age_ms", 0);
  idmap = json_object();
  mun = json_array();
  if (!rg || !mg || !idmap || !mun) goto out;
  for (size_t i = 0; i < n; i++)
    if (reachable(&nodes[i]) && !json_object_get(idmap, nodes[i].id))
      json_object_set_new(idmap, nodes[i].id, json_integer((json_int_t)i));
  md = member_diffs(nodes, mg, idmap, mun);
  if (!md) goto out;

  json_t *nl = json_array(), *un = json_array();
  rep = json_pack(
      "{s:s,s:s,s:I,s:I,s:I,s:I,s:b,"
      "s:{s:b,s:O,s:[],s:I,s:[]},s:{s:b,s:O,s:O,s:I,s:O},s:o,s:o}",
      "via", via, "id", via_id, "members_total", (json_int_t)member_count,
      "live", (json_int_t)n, "asked", (json_int_t)asked, "reachable",
      (json_int_t)nr, "converged",
      nr > 0 && json_array_size(rg) <= 1 && json_array_size(mg) <= 1,
      "routes", "converged", json_array_size(rg) <= 1, "groups", rg,
      "differences", "differences_total", (json_int_t)0, "unfetched",
      "members", "converged", json_array_size(mg) <= 1, "groups", mg,
      "differences", md, "differences_total",
      (json_int_t)json_array_size(md), "unfetched", mun, "nodes", nl,
      "unreachable", un);
  if (!rep) goto out;

  /* Which group each node is in, by label. */
  for (size_t i = 0; i < n; i++) {
    const ctl_mesh_node *nd = &nodes[i];
    json_t *o = json_pack("{s:s,s:o,s:s,s:b}", "id", nd->id, "admin",
                          str_or_null(nd->admin), "state", nd->state,
                          "reachable", reachable(nd));
    if (!o) continue;
    if (!reachable(nd)) {
      json_object_set_new(o, "error", json_string(nd->error));
      json_array_append_new(un, json_pack("{s:s,s:o,s:s}", "id", nd->id,
                                          "admin", str_or_null(nd->admin),
                                          "reason", nd->error));
    } else {
      json_object_set_new(o, "error", json_null());
    }
    static const char *const copy[] = {"routes", "routes_digest", NULL,
                                       "routes_digest_age_ms",
                                       "members_digest", NULL,
                                       "members_digest_age_ms"};
    for (size_t k = 0; k < WR_ARRAY_LEN(copy); k++) {
      if (!copy[k]) {
        /* The group label, after each digest. */
        const json_t *groups = k == 2 ? rg : mg;
        const char *key = k == 2 ? rkeys[i] : mkeys[i];
        const char *lab = NULL;
        size_t g;
        json_t *gv;
        json_array_foreach(groups, g, gv) {
          if (key && !strcmp(json_string_value(json_object_get(gv, "digest")),
                             key))
            lab = json_string_value(json_object_get(gv, "label"));
        }
        json_object_set_new(o, k == 2 ? "routes_group" : "members_group",
                            str_or_null(lab));
        continue;
      }
      json_t *v = json_object_get(nd->status, copy[k]);
      if (k == 4 && mkeys[i]) v = json_string(mkeys[i]);
      else if (v) json_incref(v);
      json_object_set_new(o, copy[k], v ? v : json_null());
    }
    /* A node outside the majority group has disagreed with it for at
     * least min(its own digest age, the majority's agreed_ms); see
     * make_groups. */
    for (int w = 0; w < 2; w++) {
      const char *lab = json_string_value(
          json_object_get(o, w ? "members_group" : "routes_group"));
      const json_t *age = json_object_get(
          nd->status, w ? "members_digest_age_ms" : "routes_digest_age_ms");
      const json_t *major =
          json_object_get(json_array_get(w ? mg : rg, 0), "agreed_ms");
      json_t *v = json_null();
      if (lab && strcmp(lab, "A") != 0 && json_is_integer(age) &&
          json_is_integer(major))
        v = json_integer(
            WR_MIN(json_integer_value(age), json_integer_value(major)));
      json_object_set_new(o, w ? "members_disagrees_ms" : "routes_disagrees_ms",
                          v);
    }
    json_array_append_new(nl, o);
  }
out:
  free(rkeys);
  free(mkeys);
  free(fp);
  json_decref(rg);
  json_decref(mg);
  json_decref(md);
  json_decref(idmap);
  json_decref(mun);
  return rep;
}

long ctl_mesh_group_rep(const json_t *report, const ctl_mesh_node *nodes,
                        size_t n, size_t g) {
  const json_t *grp = json_array_get(
      json_object_get(json_object_get(report, "routes"), "groups"), g);
  if (!grp) return -1;
  const json_t *ids = json_object_get(grp, "ids");
  size_t j;
  json_t *idv;
  json_array_foreach(ids, j, idv) {
    for (size_t i = 0; i < n; i++)
      if (reachable(&nodes[i]) &&
          strcmp(nodes[i].id, json_string_value(idv)) == 0)
        return (long)i;
  }
  return -1;
}

/* A route as the diff compares it; NULL row = "no route". */
static json_t *route_view(const json_t *row) {
  if (!row) return json_null();
  return json_pack("{s:O,s:O,s:O,s:O}", "owner", json_object_get(row, "owner"),
                   "account", json_object_get(row, "account"), "version",
                   json_object_get(row, "version"), "state",
                   json_object_get(row, "state"));
}

void ctl_mesh_add_route_diffs(json_t *report, json_t *const *tables,
                              const char *const *errors) {
  json_t *routes = json_object_get(report, "routes");
  json_t *groups = json_object_get(routes, "groups");
  size_t ng = json_array_size(groups);
  json_t **maps = calloc(ng ? ng : 1, sizeof *maps);
  json_t *names = json_object(), *diffs = json_array();
  if (!maps || !names || !diffs) goto out;
  size_t fetched_nodes = 0;
  for (size_t g = 0; g < ng; g++) {
    json_t *grp = json_array_get(groups, g);
    if (!tables[g]) {
      json_array_append_new(
          json_object_get(routes, "unfetched"),
          json_pack("{s:O,s:s}", "group", json_object_get(grp, "label"),
                    "error", errors[g] ? errors[g] : "not asked"));
      continue;
    }
    fetched_nodes += (size_t)json_integer_value(json_object_get(grp, "nodes"));
    if (!(maps[g] = json_object())) goto out;
    size_t i;
    json_t *row;
    json_array_foreach(tables[g], i, row) {
      const char *name = json_string_value(json_object_get(row, "name"));
      json_object_set(maps[g], name, row);
      json_object_set_new(names, name, json_true());
    }
  }
  const char *name;
  json_t *unused;
  json_object_foreach(names, name, unused) {
    json_t *by = json_object();
    if (!by) goto out;
    for (size_t g = 0; g < ng; g++) {
      if (!maps[g]) continue;
      json_t *grp = json_array_get(groups, g);
      json_t *rv = route_view(json_object_get(maps[g], name));
      char *key =
          json_dumps(rv, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
      json_t *view = key ? json_object_get(by, key) : NULL;
      if (key && !view) {
        view = json_pack("{s:O,s:I,s:[]}", "route", rv, "nodes",
                         (json_int_t)0, "groups");
        json_object_set_new(by, key, view);
      }
      if (view) {
        json_object_set_new(
            view, "nodes",
            json_integer(json_integer_value(json_object_get(view, "nodes")) +
                         json_integer_value(json_object_get(grp, "nodes"))));
        json_array_append(json_object_get(view, "groups"),
                          json_object_get(grp, "label"));
      }
      free(key);
      json_decref(rv);
    }
    if (json_object_size(by) < 2) {
      json_decref(by);
      continue;
    }
    json_t *views = sorted_views(by);
    if (!views) goto out;
    json_int_t top = json_integer_value(
        json_object_get(json_array_get(views, 0), "nodes"));
    json_array_append_new(diffs, json_pack("{s:s,s:I,s:o}", "name", name,
                                           "dissent",
                                           (json_int_t)fetched_nodes - top,
                                           "views", views));
  }
  json_t *sorted = sort_diffs(diffs);
  if (sorted) {
    json_object_set_new(routes, "differences_total",
                        json_integer((json_int_t)json_array_size(sorted)));
    json_object_set_new(routes, "differences", sorted);
  }
out:
  for (size_t g = 0; maps && g < ng; g++) json_decref(maps[g]);
  free(maps);
  json_decref(names);
  json_decref(diffs);
}

int ctl_mesh_exit(const json_t *report) {
  return json_is_true(json_object_get(report, "converged")) ? 0 : 3;
}

/* ---- human output ------------------------------------------------------ */

/* A server string made safe for a terminal (control bytes -> '?'),
 * bounded. */
#define TXT 128
static const char *san(const json_t *v, char *dst) {
  const char *s = json_string_value(v);
  size_t n = 0;
  if (!s) {
    if (json_is_integer(v)) {
      snprintf(dst, TXT, "%lld", (long long)json_integer_value(v));
      return dst;
    }
    s = "-";
  }
  for (; *s && n < TXT - 1; s++)
    dst[n++] = ((unsigned char)*s < 0x20 || *s == 0x7f) ? '?' : *s;
  dst[n] = '\0';
  return dst;
}

static void fmt_ms(json_int_t ms, char *dst, size_t cap) {
  if (ms < 1000)
    snprintf(dst, cap, "%lld ms", (long long)ms);
  else if (ms < 60000)
    snprintf(dst, cap, "%.1f s", (double)ms / 1000);
  else if (ms < 3600000)
    snprintf(dst, cap, "%lld min %lld s", (long long)ms / 60000,
             (long long)ms / 1000 % 60);
  else
    snprintf(dst, cap, "%lld h %lld min", (long long)ms / 3600000,
             (long long)ms / 60000 % 60);
}

/* "n4" / "n4, n5" for a few nodes, else "4 nodes". */
static void who(FILE *out, const json_t *ids, json_int_t count) {
  if (count <= NAME_NODES && json_array_size(ids) == (size_t)count) {
    size_t i;
    json_t *v;
    char t[TXT];
    json_array_foreach(ids, i, v) fprintf(out, "%s%s", i ? ", " : "", san(v, t));
  } else {
    fprintf(out, "%lld node%s", (long long)count, count == 1 ? "" : "s");
  }
}

static const json_t *group_by_label(const json_t *groups, const char *lab) {
  size_t i;
  json_t *g;
  json_array_foreach(groups, i, g) {
    if (!strcmp(json_string_value(json_object_get(g, "label")), lab)) return g;
  }
  return NULL;
}

static void print_groups(FILE *out, const char *what, const json_t *sect) {
  const json_t *groups = json_object_get(sect, "groups");
  size_t ng = json_array_size(groups), i;
  json_t *g;
  fprintf(out, "%s: %zu digest%s\n", what, ng, ng == 1 ? "" : "s");
  json_array_foreach(groups, i, g) {
    if (i == SHOW_GROUPS) {
      fprintf(out, "  and %zu more\n", ng - SHOW_GROUPS);
      break;
    }
    char t[TXT], d[TXT];
    json_int_t cnt = json_integer_value(json_object_get(g, "nodes"));
    san(json_object_get(g, "digest"), d);
    fprintf(out, "  %s  %.16s  ", san(json_object_get(g, "label"), t), d);
    if (cnt <= NAME_NODES) {
      fprintf(out, "%lld node%s (", (long long)cnt, cnt == 1 ? "" : "s");
      who(out, json_object_get(g, "ids"), cnt);
      fputc(')', out);
    } else {
      who(out, json_object_get(g, "ids"), cnt);
    }
    const json_t *r = json_object_get(g, "routes");
    if (r)
      fprintf(out, ", %lld route%s", (long long)json_integer_value(r),
              json_integer_value(r) == 1 ? "" : "s");
    const json_t *ag = json_object_get(g, "agreed_ms");
    const json_t *dis = json_object_get(g, "disagrees_ms");
    char ms[48];
    if (i == 0 && json_is_integer(ag)) {
      fmt_ms(json_integer_value(ag), ms, sizeof ms);
      fprintf(out, ", agreed for %s", ms);
    } else if (i > 0 && json_is_integer(dis)) {
      fmt_ms(json_integer_value(dis), ms, sizeof ms);
      fprintf(out, ", disagrees for at least %s", ms);
    }
    fputc('\n', out);
  }
}

/* The account is printed only when the views disagree about it. */
static void print_route(FILE *out, const json_t *r, int with_account) {
  char a[TXT], b[TXT], c[TXT];
  if (json_is_null(r)) {
    fputs("no route", out);
    return;
  }
  fprintf(out, "owner %s v%s %s", san(json_object_get(r, "owner"), a),
          san(json_object_get(r, "version"), b),
          san(json_object_get(r, "state"), c));
  if (with_account)
    fprintf(out, " account %s", san(json_object_get(r, "account"), a));
}

static int accounts_differ(const json_t *views) {
  const json_t *first = NULL;
  size_t i;
  json_t *v;
  json_array_foreach(views, i, v) {
    const json_t *r = json_object_get(v, "route");
    if (json_is_null(r)) continue;
    const json_t *acc = json_object_get(r, "account");
    if (!first)
      first = acc;
    else if (!json_equal(first, acc) && !(json_is_null(first) && json_is_null(acc)))
      return 1;
  }
  return 0;
}

static void print_diffs(FILE *out, const json_t *report) {
  const json_t *rs = json_object_get(report, "routes");
  const json_t *groups = json_object_get(rs, "groups");
  const json_t *rd = json_object_get(rs, "differences");
  size_t i, j;
  json_t *d, *v;
  char t[TXT];
  if (json_array_size(rd) > 0) {
    fprintf(out, "route differences: %zu\n", json_array_size(rd));
    json_array_foreach(rd, i, d) {
      if (i == SHOW_DIFFS) {
        fprintf(out, "  and %zu more\n", json_array_size(rd) - SHOW_DIFFS);
        break;
      }
      fprintf(out, "  %s: ", san(json_object_get(d, "name"), t));
      int acc = accounts_differ(json_object_get(d, "views"));
      json_array_foreach(json_object_get(d, "views"), j, v) {
        if (j) fputs(", ", out);
        print_route(out, json_object_get(v, "route"), acc);
        const json_t *gl = json_object_get(v, "groups");
        fprintf(out, " at group%s ", json_array_size(gl) == 1 ? "" : "s");
        size_t k;
        json_t *lab;
        json_array_foreach(gl, k, lab) {
          fprintf(out, "%s%s", k ? "+" : "", san(lab, t));
        }
        fputs(" (", out);
        if (json_array_size(gl) == 1) {
          const json_t *g = group_by_label(groups, json_string_value(
                                                       json_array_get(gl, 0)));
          who(out, json_object_get(g, "ids"),
              json_integer_value(json_object_get(v, "nodes")));
        } else {
          who(out, NULL, json_integer_value(json_object_get(v, "nodes")));
        }
        fputc(')', out);
      }
      fputc('\n', out);
    }
  }
  json_array_foreach(json_object_get(rs, "unfetched"), i, d) {
    char e[TXT];
    fprintf(out, "  (routes of group %s not compared: %s)\n",
            san(json_object_get(d, "group"), t),
            san(json_object_get(d, "error"), e));
  }
  json_array_foreach(json_object_get(json_object_get(report, "members"),
                                     "unfetched"),
                     i, d) {
    char e[TXT];
    fprintf(out, "  (members of group %s not compared: %s)\n",
            san(json_object_get(d, "group"), t),
            san(json_object_get(d, "error"), e));
  }
  const json_t *md =
      json_object_get(json_object_get(report, "members"), "differences");
  if (json_array_size(md) > 0) {
    fprintf(out, "member differences: %zu\n", json_array_size(md));
    json_array_foreach(md, i, d) {
      if (i == SHOW_DIFFS) {
        fprintf(out, "  and %zu more\n", json_array_size(md) - SHOW_DIFFS);
        break;
      }
      fprintf(out, "  %s: ", san(json_object_get(d, "id"), t));
      json_array_foreach(json_object_get(d, "views"), j, v) {
        fprintf(out, "%s%s at ", j ? ", " : "",
                san(json_object_get(v, "state"), t));
        who(out, json_object_get(v, "ids"),
            json_integer_value(json_object_get(v, "nodes")));
      }
      fputc('\n', out);
    }
  } else if (!json_is_true(json_object_get(
                 json_object_get(report, "members"), "converged"))) {
    fputs("member differences: none in id and state (the digests differ in "
          "fields warrenctl does not compare)\n",
          out);
  }
}

/* The per-node table, rows right-trimmed. */
static void print_node_table(FILE *out, const json_t *nodes) {
  static const char *const hdr[] = {"NODE",          "STATE",
                                    "ADMIN",         "ROUTES",
                                    "ROUTES_DIGEST", "MEMBERS_DIGEST",
                                    "NOTE"};
  enum { NCOL = 7 };
  size_t n = json_array_size(nodes);
  char(*cells)[NCOL][TXT + 24] = calloc(n ? n : 1, sizeof *cells);
  if (!cells) return;
  size_t w[NCOL];
  for (size_t k = 0; k < NCOL; k++) w[k] = strlen(hdr[k]);
  for (size_t i = 0; i < n; i++) {
    const json_t *nd = json_array_get(nodes, i);
    char t[TXT], u[TXT];
    snprintf(cells[i][0], TXT, "%s", san(json_object_get(nd, "id"), t));
    snprintf(cells[i][1], TXT, "%s", san(json_object_get(nd, "state"), t));
    snprintf(cells[i][2], TXT, "%s", san(json_object_get(nd, "admin"), t));
    if (json_is_true(json_object_get(nd, "reachable"))) {
      snprintf(cells[i][3], TXT, "%s", san(json_object_get(nd, "routes"), t));
      snprintf(cells[i][4], TXT + 24, "%s %.12s",
               san(json_object_get(nd, "routes_group"), t),
               san(json_object_get(nd, "routes_digest"), u));
      snprintf(cells[i][5], TXT + 24, "%s %.12s",
               san(json_object_get(nd, "members_group"), t),
               san(json_object_get(nd, "members_digest"), u));
      const char *rl = json_string_value(json_object_get(nd, "routes_group"));
      const char *ml = json_string_value(json_object_get(nd, "members_group"));
      int r = !rl || strcmp(rl, "A") != 0;
      int m = !ml || strcmp(ml, "A") != 0;
      char ra[64] = "", ma[64] = "", ms[48];
      const json_t *rd = json_object_get(nd, "routes_disagrees_ms");
      const json_t *md = json_object_get(nd, "members_disagrees_ms");
      if (json_is_integer(rd)) {
        fmt_ms(json_integer_value(rd), ms, sizeof ms);
        snprintf(ra, sizeof ra, " (at least %s)", ms);
      }
      if (json_is_integer(md)) {
        fmt_ms(json_integer_value(md), ms, sizeof ms);
        snprintf(ma, sizeof ma, " (at least %s)", ms);
      }
      if (r && m)
        snprintf(cells[i][6], TXT, "disagrees on routes%s and members%s", ra,
                 ma);
      else if (r)
        snprintf(cells[i][6], TXT, "disagrees on routes%s", ra);
      else if (m)
        snprintf(cells[i][6], TXT, "disagrees on members%s", ma);
    } else {
      for (size_t k = 3; k < 6; k++) snprintf(cells[i][k], TXT, "-");
      snprintf(cells[i][6], TXT, "%s", san(json_object_get(nd, "error"), t));
    }
    for (size_t k = 0; k < NCOL; k++) w[k] = WR_MAX(w[k], strlen(cells[i][k]));
  }
  for (size_t i = 0; i <= n; i++) {
    char line[NCOL * (TXT + 26)];
    size_t len = 0;
    for (size_t k = 0; k < NCOL; k++) {
      const char *c = i == 0 ? hdr[k] : cells[i - 1][k];
      len += (size_t)snprintf(line + len, sizeof line - len, "%-*s  ",
                              (int)w[k], c);
    }
    while (len > 0 && line[len - 1] == ' ') len--;
    fprintf(out, "%.*s\n", (int)len, line);
  }
  free(cells);
}

void ctl_print_mesh_report(FILE *out, const json_t *rep, size_t table_max) {
  char t[TXT], u[TXT];
  json_int_t live = json_integer_value(json_object_get(rep, "live"));
  json_int_t nr = json_integer_value(json_object_get(rep, "reachable"));
  fprintf(out,
          "mesh via %s (%s): %lld members, %lld live, %lld with an admin "
          "address, %lld answered\n",
          san(json_object_get(rep, "via"), t), san(json_object_get(rep, "id"), u),
          (long long)json_integer_value(json_object_get(rep, "members_total")),
          (long long)live,
          (long long)json_integer_value(json_object_get(rep, "asked")),
          (long long)nr);
  if ((size_t)live <= table_max)
    print_node_table(out, json_object_get(rep, "nodes"));
  const json_t *rs = json_object_get(rep, "routes");
  const json_t *ms = json_object_get(rep, "members");
  print_groups(out, "routes", rs);
  print_groups(out, "members", ms);
  print_diffs(out, rep);

  const json_t *un = json_object_get(rep, "unreachable");
  size_t nu = json_array_size(un), i;
  json_t *v;
  if (nu > 0) {
    fprintf(out, "unreachable: %zu of %lld live\n", nu, (long long)live);
    json_array_foreach(un, i, v) {
      if (i == SHOW_UNREACHABLE && nu > SHOW_UNREACHABLE + 1) {
        fprintf(out, "  and %zu more\n", nu - SHOW_UNREACHABLE);
        break;
      }
      fprintf(out, "  %s", san(json_object_get(v, "id"), t));
      if (json_is_string(json_object_get(v, "admin")))
        fprintf(out, " (%s)", san(json_object_get(v, "admin"), t));
      fprintf(out, ": %s\n", san(json_object_get(v, "reason"), t));
    }
  }

  const json_t *rg = json_object_get(rs, "groups");
  const json_t *mg = json_object_get(ms, "groups");
  if (ctl_mesh_exit(rep) == 0) {
    const json_t *r0 = json_array_get(rg, 0), *m0 = json_array_get(mg, 0);
    fprintf(out, "converged: %lld node%s, %lld routes, routes digest %.16s, "
                 "members digest %.16s",
            (long long)nr, nr == 1 ? "" : "s",
            (long long)json_integer_value(json_object_get(r0, "routes")),
            san(json_object_get(r0, "digest"), t),
            san(json_object_get(m0, "digest"), u));
    const json_t *ra = json_object_get(r0, "agreed_ms");
    const json_t *ma = json_object_get(m0, "agreed_ms");
    if (json_is_integer(ra) && json_is_integer(ma)) {
      char ms_[48];
      fmt_ms(WR_MIN(json_integer_value(ra), json_integer_value(ma)), ms_,
             sizeof ms_);
      fprintf(out, ", agreed for %s", ms_);
    }
  } else {
    fprintf(out, "not converged: %zu routes digests, %zu members digests",
            json_array_size(rg), json_array_size(mg));
  }
  if (nu > 0) fprintf(out, " (%zu unreachable)", nu);
  fputc('\n', out);
}
