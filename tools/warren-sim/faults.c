/*
 * warren-sim --faults FILE: the node's fault model (src/fault/,
 * docs/FAULTS.md) applied at the simulated network, so a scenario can be
 * tried here first and then on real nodes with the same rules.
 *
 * The file gives each node the rule set a real node would hold:
 *
 *   {"seed": 7,
 *    "nodes": {"*":  {"rules": [{"kinds":"probe","drop":0.1}]},
 *              "n3": {"rules": [{"peers":["n1","n2"],"drop":1,
 *                                "after_ms":20000,"for_ms":10000}]}},
 *    "pauses": [{"node":"n2","at_ms":30000,"ms":3000}]}
 *
 * "nodes" maps a node id (n0, n1, ...) or "*" (every node) to a rule set
 * in the admin API's shape (PUT /faults, GET /faults's "rules"); a node
 * gets the "*" rules, then its own.  Rule windows count from the start of
 * the run.  "pauses" stall a node at a virtual time, as POST
 * /faults/pause stalls a real one.
 *
 * Each node's model has its own PCG, seeded (seed, node index): the same
 * file and --seed replay the same run.  A datagram is judged when it is
 * sent: by its sender's "out" rules (peer: the receiver) and its
 * receiver's "in" rules (peer: the sender); drop wins, delays add up, a
 * duplicate makes two copies.  An anti-entropy stream chunk that either
 * side drops cuts the stream (as on a node).  Node links and tunnels are
 * not simulated, so rules for them never match here.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sim_int.h"
#include "warren/err.h"
#include "warren/fault.h"

#define PAUSES_MAX 1024

struct sim_faults {
  wr_fault **f; /* one per node */
  uint32_t n;
};

static void filter(void *ud, uint32_t from, uint32_t to, int stream,
                   const uint8_t *data, size_t len, sim_net_verdict *v) {
  sim *s = ud;
  sim_faults *sf = s->faults;
  if (from >= sf->n || to >= sf->n) return;
  wr_fault_kind kind = WR_FAULT_SYNC;
  uint32_t bit = WR_FAULT_KIND_BIT(WR_FAULT_SYNC);
  if (!stream) bit = WR_FAULT_KIND_BIT(WR_FAULT_PROBE) |
                     WR_FAULT_KIND_BIT(WR_FAULT_ACK) |
                     WR_FAULT_KIND_BIT(WR_FAULT_PING_REQ) |
                     WR_FAULT_KIND_BIT(WR_FAULT_BROADCAST);
  if (!wr_fault_covers(sf->f[from], bit) && !wr_fault_covers(sf->f[to], bit))
    return;
  if (!stream) {
    int type = wr_swim_packet_peek(s->nodes[from].sw, data, len, NULL);
    if (type < 0) return;
    kind = wr_fault_swim_kind(type);
  }
  uint64_t now = sim_net_now(s->net);
  wr_fault_verdict a, b;
  wr_fault_decide(sf->f[from], kind, s->ids[to], WR_FAULT_OUT, now, &a);
  if (a.drop) {
    v->copies = 0;
    return;
  }
  wr_fault_decide(sf->f[to], kind, s->ids[from], WR_FAULT_IN, now, &b);
  if (b.drop) {
    v->copies = 0;
    return;
  }
  v->delay_ms = (uint64_t)a.delay_ms + b.delay_ms;
  if (a.copies == 2 || b.copies == 2) v->copies = 2;
}

/* Adds the rules of one rule set to node |i|'s model. */
static int add_set(sim_faults *sf, uint32_t i, const json_t *set,
                   const char *who, uint64_t now, char *err, size_t errlen) {
  const json_t *rules = json_object_get(set, "rules");
  if (!json_is_object(set) || !json_is_array(rules)) {
    snprintf(err, errlen, "nodes.%s must be {\"rules\":[...]}", who);
    return WR_ERR_INVAL;
  }
  size_t k;
  const json_t *r;
  json_array_foreach(rules, k, r) {
    wr_fault_rule rule;
    char why[200];
    int rv = wr_fault_rule_from_json(r, &rule, why, sizeof why);
    if (rv == 0) rv = wr_fault_add(sf->f[i], &rule, now, NULL);
    if (rv == WR_ERR_LIMIT)
      snprintf(why, sizeof why, "more than %d rules", WR_FAULT_MAX_RULES);
    if (rv != 0) {
      snprintf(err, errlen, "nodes.%s.rules[%zu]: %s", who, k, why);
      return rv;
    }
  }
  return 0;
}

static int load(sim *s, const json_t *doc, char *err, size_t errlen) {
  sim_faults *sf = s->faults;
  uint64_t now = sim_net_now(s->net);
  const char *key;
  json_t *v;
  json_object_foreach((json_t *)doc, key, v) {
    if (strcmp(key, "seed") && strcmp(key, "nodes") && strcmp(key, "pauses")) {
      snprintf(err, errlen, "unknown field \"%.40s\" (seed, nodes, pauses)",
               key);
      return WR_ERR_INVAL;
    }
  }
  const json_t *seed = json_object_get(doc, "seed");
  if (seed && (!json_is_integer(seed) || json_integer_value(seed) < 0)) {
    snprintf(err, errlen, "seed must be a whole number from 0 to 2^63-1");
    return WR_ERR_INVAL;
  }
  /* Without a seed in the file, --seed decides, so one flag replays all. */
  uint64_t sd = seed ? (uint64_t)json_integer_value(seed) : s->o->seed;
  for (uint32_t i = 0; i < sf->n; i++) {
    int rv = wr_fault_new(&sf->f[i], sd, i, NULL);
    if (rv != 0) return rv;
  }
  const json_t *nodes = json_object_get(doc, "nodes");
  if (nodes && !json_is_object(nodes)) {
    snprintf(err, errlen, "nodes must be an object {\"ID or *\":{\"rules\":"
                          "[...]}}");
    return WR_ERR_INVAL;
  }
  const json_t *all = json_object_get(nodes, "*");
  for (uint32_t i = 0; all && i < sf->n; i++) {
    int rv = add_set(sf, i, all, "*", now, err, errlen);
    if (rv != 0) return rv;
  }
  json_object_foreach((json_t *)nodes, key, v) {
    if (!strcmp(key, "*")) continue;
    uint32_t i = sim_id_index(s, key);
    if (i == SIM_NONE) {
      snprintf(err, errlen, "nodes: no node \"%.40s\" (n0..n%u or *)", key,
               sf->n - 1);
      return WR_ERR_INVAL;
    }
    int rv = add_set(sf, i, v, key, now, err, errlen);
    if (rv != 0) return rv;
  }
  const json_t *pauses = json_object_get(doc, "pauses");
  if (pauses && (!json_is_array(pauses) ||
                 json_array_size(pauses) > PAUSES_MAX)) {
    snprintf(err, errlen, "pauses must be a list of at most %d "
                          "{\"node\",\"at_ms\",\"ms\"}", PAUSES_MAX);
    return WR_ERR_INVAL;
  }
  size_t k;
  const json_t *p;
  json_array_foreach(pauses, k, p) {
    const char *node = json_string_value(json_object_get(p, "node"));
    const json_t *at = json_object_get(p, "at_ms");
    const json_t *ms = json_object_get(p, "ms");
    uint32_t i = node ? sim_id_index(s, node) : SIM_NONE;
    if (!json_is_object(p) || json_object_size(p) != 3 || i == SIM_NONE ||
        !json_is_integer(at) || json_integer_value(at) < 0 ||
        (uint64_t)json_integer_value(at) > WR_FAULT_WINDOW_MAX_MS ||
        !json_is_integer(ms) || json_integer_value(ms) < 1 ||
        json_integer_value(ms) > WR_FAULT_PAUSE_MAX_MS) {
      snprintf(err, errlen, "pauses[%zu] must be {\"node\":\"nK\",\"at_ms\":"
                            "T,\"ms\":1..%d}", k, WR_FAULT_PAUSE_MAX_MS);
      return WR_ERR_INVAL;
    }
    if (sim_net_push(s->net, now + (uint64_t)json_integer_value(at),
                     EV_FAULT_PAUSE, i,
                     (uint32_t)json_integer_value(ms)) != 0)
      return WR_ERR_NOMEM;
  }
  return 0;
}

int sim_faults_load(sim *s, const char *path, char *err, size_t errlen) {
  json_error_t je;
  json_t *doc = json_load_file(path, JSON_REJECT_DUPLICATES, &je);
  if (!doc) {
    if (je.line > 0)
      snprintf(err, errlen, "--faults %s: %s (line %d)", path, je.text,
               je.line);
    else
      snprintf(err, errlen, "--faults %s: %s", path, je.text);
    return WR_ERR_INVAL;
  }
  if (!json_is_object(doc)) {
    json_decref(doc);
    snprintf(err, errlen, "--faults %s: not a JSON object", path);
    return WR_ERR_INVAL;
  }
  s->faults = calloc(1, sizeof *s->faults);
  if (s->faults) s->faults->f = calloc(s->n, sizeof *s->faults->f);
  if (!s->faults || !s->faults->f) {
    json_decref(doc);
    snprintf(err, errlen, "out of memory");
    return WR_ERR_NOMEM;
  }
  s->faults->n = s->n;
  char why[300];
  int rv = load(s, doc, why, sizeof why);
  json_decref(doc);
  if (rv != 0) {
    snprintf(err, errlen, "--faults %s: %s", path,
             rv == WR_ERR_NOMEM ? "out of memory" : why);
    return rv;
  }
  sim_net_set_filter(s->net, filter, s);
  return 0;
}

void sim_faults_pause(sim *s, const sim_ev *ev) {
  if (ev->node >= s->n || s->nodes[ev->node].killed) return;
  sim_net_pause(s->net, ev->node, sim_net_now(s->net) + ev->arg);
}

void sim_faults_report(const sim *s, FILE *out) {
  if (!s->faults) return;
  wr_fault_stats sum;
  memset(&sum, 0, sizeof sum);
  for (uint32_t i = 0; i < s->faults->n; i++) {
    wr_fault_stats st;
    if (!s->faults->f[i]) continue;
    wr_fault_get_stats(s->faults->f[i], &st);
    for (int k = 0; k < WR_FAULT_KINDS; k++) {
      sum.dropped[k] += st.dropped[k];
      sum.delayed[k] += st.delayed[k];
      sum.duplicated[k] += st.duplicated[k];
    }
  }
  fprintf(out, "warren-sim: faults:");
  for (int k = 0; k < WR_FAULT_KINDS; k++)
    if (sum.dropped[k] + sum.delayed[k] + sum.duplicated[k])
      fprintf(out, " %s dropped=%llu delayed=%llu duplicated=%llu;",
              wr_fault_kind_name((wr_fault_kind)k),
              (unsigned long long)sum.dropped[k],
              (unsigned long long)sum.delayed[k],
              (unsigned long long)sum.duplicated[k]);
  fputc('\n', out);
}

void sim_faults_free(sim *s) {
  if (!s->faults) return;
  for (uint32_t i = 0; i < s->faults->n; i++) wr_fault_del(s->faults->f[i]);
  free(s->faults->f);
  free(s->faults);
  s->faults = NULL;
}
