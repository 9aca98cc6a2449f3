/*
 * The fault model (see fault.h).  A flat array of at most 64 rules in
 * order of addition and one PCG32; a decision scans the rules once.
 *
 * Why a scan and not an index by kind or peer: a chaos scenario holds a
 * handful of rules, and a scan of 64 with a bit test per rule costs less
 * than a hash lookup of the peer id would; peers are compared only for a
 * rule whose kind and direction matched.
 *
 * Determinism.  The PCG is drawn only by wr_fault_decide, per matching
 * active rule, in rule order: drop (when drop > 0), jitter (when
 * jitter_ms > 0), dup (when dup > 0); a drop ends the scan.  Rules that
 * do not match draw nothing, so adding a rule for other kinds does not
 * change the verdicts a scenario got before.
 *
 * JSON.  Strict: an object with known keys only, each of its type and
 * range; the first problem is reported in one line naming the field.
 */
#include <arpa/inet.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "warren/err.h"
#include "warren/fault.h"
#include "warren/pcg.h"
#include "warren/swim_codec.h"

struct wr_fault {
  const wr_mem *mem;
  uint64_t seed, stream;
  wr_pcg32 rng;
  uint32_t next_id;
  size_t n;
  wr_fault_rule rules[WR_FAULT_MAX_RULES];
  wr_fault_stats st;
};

static const char *const kind_names[WR_FAULT_KINDS] = {
    "probe", "ack", "ping-req", "broadcast", "sync", "nodelink", "tunnel"};

const char *wr_fault_kind_name(wr_fault_kind k) {
  return (unsigned)k < WR_FAULT_KINDS ? kind_names[k] : "?";
}

int wr_fault_kind_parse(const char *name, size_t len) {
  for (int k = 0; k < WR_FAULT_KINDS; k++)
    if (strlen(kind_names[k]) == len && memcmp(kind_names[k], name, len) == 0)
      return k;
  return -1;
}

wr_fault_kind wr_fault_swim_kind(int type) {
  switch (type) {
  case WR_SWIM_PING: return WR_FAULT_PROBE;
  case WR_SWIM_PING_REQ: return WR_FAULT_PING_REQ;
  case WR_SWIM_ACK:
  case WR_SWIM_NACK:
  case WR_SWIM_NACK_REFUSED: return WR_FAULT_ACK;
  default: return WR_FAULT_BROADCAST; /* GOSSIP: updates only */
  }
}

const char *wr_fault_dir_name(int dir) {
  switch (dir) {
  case WR_FAULT_IN: return "in";
  case WR_FAULT_OUT: return "out";
  case WR_FAULT_BOTH: return "both";
  default: return "?";
  }
}

/* ---- the model ---------------------------------------------------------- */

int wr_fault_new(wr_fault **pf, uint64_t seed, uint64_t stream,
                 const wr_mem *mem) {
  if (!mem) mem = wr_mem_default();
  wr_fault *f = wr_mem_calloc(mem, 1, sizeof *f);
  *pf = NULL;
  if (!f) return WR_ERR_NOMEM;
  f->mem = mem;
  f->stream = stream;
  f->next_id = 1;
  wr_fault_reseed(f, seed);
  *pf = f;
  return 0;
}

void wr_fault_del(wr_fault *f) {
  if (f) wr_mem_free(f->mem, f);
}

uint64_t wr_fault_seed(const wr_fault *f) { return f->seed; }

void wr_fault_reseed(wr_fault *f, uint64_t seed) {
  f->seed = seed;
  wr_pcg32_seed(&f->rng, seed, f->stream);
}

static void set_err(char *err, size_t errlen, const char *msg) {
  if (err && errlen) snprintf(err, errlen, "%s", msg);
}

static int valid_prob(double p) { return p >= 0.0 && p <= 1.0; }

/* "ip:ADDR" entries match by address, not by member id. */
#define IP_PREFIX "ip:"
#define IP_PREFIX_LEN 3

static int is_ip_entry(const char *s) {
  return strncmp(s, IP_PREFIX, IP_PREFIX_LEN) == 0;
}

/* The canonical text of an IPv4 or IPv6 literal into |out| (at least
 * INET6_ADDRSTRLEN bytes): 0, or -1 when |s| is no such literal. */
static int ip_canon(const char *s, char *out, size_t cap) {
  unsigned char b[16];
  if (inet_pton(AF_INET, s, b) == 1)
    return inet_ntop(AF_INET, b, out, (socklen_t)cap) ? 0 : -1;
  if (inet_pton(AF_INET6, s, b) == 1)
    return inet_ntop(AF_INET6, b, out, (socklen_t)cap) ? 0 : -1;
  return -1;
}

/* A member id as swim carries it (printable ASCII, no spaces), or
 * "ip:" and an IPv4 or IPv6 literal. */
static int valid_peer(const char *s) {
  size_t n = strnlen(s, WR_FAULT_PEER_MAX + 1);
  if (n == 0 || n > WR_FAULT_PEER_MAX) return 0;
  for (size_t i = 0; i < n; i++)
    if (s[i] <= ' ' || s[i] > '~') return 0;
  char canon[INET6_ADDRSTRLEN];
  if (is_ip_entry(s) && ip_canon(s + IP_PREFIX_LEN, canon, sizeof canon) != 0)
    return 0;
  return 1;
}

/* Stores peer entry |s| (valid) in |dst|: "ip:" entries in canonical
 * form, so "ip:::0001" matches and prints as "ip:::1". */
static void store_peer(char *dst, size_t cap, const char *s) {
  char canon[INET6_ADDRSTRLEN];
  if (is_ip_entry(s) && ip_canon(s + IP_PREFIX_LEN, canon, sizeof canon) == 0)
    snprintf(dst, cap, IP_PREFIX "%s", canon);
  else
    snprintf(dst, cap, "%s", s);
}

int wr_fault_rule_check(const wr_fault_rule *r, char *err, size_t errlen) {
  char msg[160];
  if (r->kinds == 0 || (r->kinds & ~WR_FAULT_KIND_ALL)) {
    set_err(err, errlen, "kinds: no message kind");
    return WR_ERR_INVAL;
  }
  if (r->dir < WR_FAULT_IN || r->dir > WR_FAULT_BOTH) {
    set_err(err, errlen, "dir must be \"in\", \"out\" or \"both\"");
    return WR_ERR_INVAL;
  }
  if (r->npeers > WR_FAULT_MAX_PEERS) {
    snprintf(msg, sizeof msg, "peers: at most %d members per rule",
             WR_FAULT_MAX_PEERS);
    set_err(err, errlen, msg);
    return WR_ERR_INVAL;
  }
  for (size_t i = 0; i < r->npeers; i++) {
    if (!valid_peer(r->peers[i])) {
      snprintf(msg, sizeof msg,
               "peers[%zu]: a member id is 1-%d printable characters "
               "without spaces, or ip: and an IP address", i,
               WR_FAULT_PEER_MAX);
      set_err(err, errlen, msg);
      return WR_ERR_INVAL;
    }
  }
  if (!valid_prob(r->drop)) {
    set_err(err, errlen, "drop must be a probability from 0 to 1");
    return WR_ERR_INVAL;
  }
  if (!valid_prob(r->dup)) {
    set_err(err, errlen, "dup must be a probability from 0 to 1");
    return WR_ERR_INVAL;
  }
  if (r->delay_ms > WR_FAULT_DELAY_MAX_MS ||
      r->jitter_ms > WR_FAULT_DELAY_MAX_MS) {
    snprintf(msg, sizeof msg,
             "delay_ms and jitter_ms are at most %d (a longer delay is a "
             "partition: use drop)", WR_FAULT_DELAY_MAX_MS);
    set_err(err, errlen, msg);
    return WR_ERR_INVAL;
  }
  if (r->after_ms > WR_FAULT_WINDOW_MAX_MS ||
      r->for_ms > WR_FAULT_WINDOW_MAX_MS) {
    set_err(err, errlen, "after_ms and for_ms are at most 86400000 (a day)");
    return WR_ERR_INVAL;
  }
  if (r->drop == 0.0 && r->dup == 0.0 && r->delay_ms == 0 &&
      r->jitter_ms == 0) {
    set_err(err, errlen, "the rule does nothing: give drop, delay_ms, "
                         "jitter_ms or dup");
    return WR_ERR_INVAL;
  }
  return 0;
}

int wr_fault_add(wr_fault *f, const wr_fault_rule *r, wr_tstamp now,
                 uint32_t *pid) {
  if (wr_fault_rule_check(r, NULL, 0) != 0) {
    f->st.rejected++;
    return WR_ERR_INVAL;
  }
  if (f->n == WR_FAULT_MAX_RULES) {
    f->st.rejected++;
    return WR_ERR_LIMIT;
  }
  wr_fault_rule *d = &f->rules[f->n++];
  *d = *r;
  d->id = f->next_id++;
  if (f->next_id == 0) f->next_id = 1; /* 2^32 adds later: skip 0 */
  d->start = now + r->after_ms;
  d->end = r->for_ms ? d->start + r->for_ms : WR_TSTAMP_NONE;
  f->st.changes++;
  if (pid) *pid = d->id;
  return 0;
}

int wr_fault_remove(wr_fault *f, uint32_t id) {
  for (size_t i = 0; i < f->n; i++) {
    if (f->rules[i].id != id) continue;
    memmove(&f->rules[i], &f->rules[i + 1],
            (f->n - i - 1) * sizeof f->rules[0]);
    f->n--;
    f->st.changes++;
    return 0;
  }
  return WR_ERR_NOTFOUND;
}

size_t wr_fault_clear(wr_fault *f) {
  size_t n = f->n;
  f->n = 0;
  f->st.changes++;
  return n;
}

size_t wr_fault_count(const wr_fault *f) { return f->n; }

const wr_fault_rule *wr_fault_rule_at(const wr_fault *f, size_t i) {
  return i < f->n ? &f->rules[i] : NULL;
}

int wr_fault_covers(const wr_fault *f, uint32_t kinds) {
  for (size_t i = 0; i < f->n; i++)
    if (f->rules[i].kinds & kinds) return 1;
  return 0;
}

/* |ip| is the canonical text of the peer's IP ("" when unknown). */
static int peer_matches(const wr_fault_rule *r, const wr_fault_peer *p,
                        const char *ip) {
  if (r->npeers == 0) return 1;
  if (!p) return 0;
  for (size_t i = 0; i < r->npeers; i++) {
    const char *e = r->peers[i];
    if (is_ip_entry(e)) {
      if (*ip && strcmp(e + IP_PREFIX_LEN, ip) == 0) return 1;
      continue;
    }
    for (size_t k = 0; k < p->nids; k++)
      if (p->ids[k] && strcmp(e, p->ids[k]) == 0) return 1;
  }
  return 0;
}

void wr_fault_decide(wr_fault *f, wr_fault_kind kind, const char *peer,
                     int dir, wr_tstamp now, wr_fault_verdict *v) {
  wr_fault_peer p;
  memset(&p, 0, sizeof p);
  p.ids = &peer;
  p.nids = peer && *peer ? 1 : 0;
  wr_fault_decide_peer(f, kind, &p, dir, now, v);
}

void wr_fault_decide_peer(wr_fault *f, wr_fault_kind kind,
                          const wr_fault_peer *peer, int dir, wr_tstamp now,
                          wr_fault_verdict *v) {
  /* The peer's IP as text, once per decision and only when a rule could
   * use it (a rule with an "ip:" entry is rare; formatting is cheap). */
  char ip[INET6_ADDRSTRLEN] = "";
  if (peer && (peer->addr.family == 4 || peer->addr.family == 6))
    inet_ntop(peer->addr.family == 4 ? AF_INET : AF_INET6, peer->addr.ip, ip,
              sizeof ip);
  v->drop = 0;
  v->delay_ms = 0;
  v->copies = 1;
  if ((unsigned)kind >= WR_FAULT_KINDS) return;
  uint32_t bit = WR_FAULT_KIND_BIT(kind);
  int matched = 0;
  uint64_t delay = 0;
  for (size_t i = 0; i < f->n; i++) {
    const wr_fault_rule *r = &f->rules[i];
    if (!(r->kinds & bit) || !(r->dir & dir) || now < r->start ||
        now >= r->end || !peer_matches(r, peer, ip))
      continue;
    matched = 1;
    if (r->drop > 0.0 && wr_pcg32_double(&f->rng) < r->drop) {
      v->drop = 1;
      break;
    }
    delay += r->delay_ms;
    if (r->jitter_ms)
      delay += wr_pcg32_bounded(&f->rng, r->jitter_ms + 1);
    if (r->dup > 0.0 && wr_pcg32_double(&f->rng) < r->dup) v->copies = 2;
  }
  if (!matched) return;
  /* TCP never delivers a duplicate, so streams are not duplicated.  The
   * draws above happened all the same, so the sequence does not depend
   * on the kind. */
  if (kind >= WR_FAULT_SYNC) v->copies = 1;
  f->st.matched[kind]++;
  if (v->drop) {
    v->copies = 0;
    f->st.dropped[kind]++;
    return;
  }
  /* Several rules' delays add up; the sum stays a bounded hold. */
  if (delay > (uint64_t)WR_FAULT_DELAY_MAX_MS * 2)
    delay = (uint64_t)WR_FAULT_DELAY_MAX_MS * 2;
  v->delay_ms = (uint32_t)delay;
  if (v->delay_ms) f->st.delayed[kind]++;
  if (v->copies == 2) f->st.duplicated[kind]++;
}

void wr_fault_get_stats(const wr_fault *f, wr_fault_stats *out) {
  *out = f->st;
}

void wr_fault_count_rejected(wr_fault *f) { f->st.rejected++; }

/* ---- JSON --------------------------------------------------------------- */

/* Messages quote what the caller sent (an unknown kind, a field name):
 * control characters there become '?', so a message stays one log line
 * and one line of an HTTP error body. */
static void err_clean(char *err) {
  for (; *err; err++)
    if ((unsigned char)*err < 0x20 || *err == 0x7f) *err = '?';
}

#define FAIL(code, ...)                                                      \
  do {                                                                       \
    if (err && errlen) {                                                     \
      snprintf(err, errlen, __VA_ARGS__);                                    \
      err_clean(err);                                                        \
    }                                                                        \
    return (code);                                                           \
  } while (0)

static int parse_kinds(const json_t *v, uint32_t *out, char *err,
                       size_t errlen) {
  uint32_t kinds = 0;
  /* "probe,ack" or "all" as one string, or an array of names. */
  if (json_is_string(v)) {
    const char *s = json_string_value(v);
    size_t len = json_string_length(v);
    if (len == 3 && memcmp(s, "all", 3) == 0) {
      *out = WR_FAULT_KIND_ALL;
      return 0;
    }
    size_t i = 0;
    while (i <= len) {
      size_t j = i;
      while (j < len && s[j] != ',') j++;
      int k = wr_fault_kind_parse(s + i, j - i);
      if (k < 0)
        FAIL(WR_ERR_INVAL, "kinds: unknown kind \"%.*s\" (probe, ack, "
             "ping-req, broadcast, sync, nodelink, tunnel or all)",
             (int)WR_MIN(j - i, 32), s + i);
      kinds |= WR_FAULT_KIND_BIT(k);
      i = j + 1;
    }
  } else if (json_is_array(v)) {
    if (json_array_size(v) == 0 || json_array_size(v) > 16)
      FAIL(WR_ERR_INVAL, "kinds: 1 to 16 names");
    size_t i;
    const json_t *e;
    json_array_foreach(v, i, e) {
      if (!json_is_string(e))
        FAIL(WR_ERR_INVAL, "kinds[%zu] must be a string", i);
      const char *s = json_string_value(e);
      size_t len = json_string_length(e);
      if (len == 3 && memcmp(s, "all", 3) == 0) {
        kinds = WR_FAULT_KIND_ALL;
        continue;
      }
      int k = wr_fault_kind_parse(s, len);
      if (k < 0)
        FAIL(WR_ERR_INVAL, "kinds[%zu]: unknown kind \"%.*s\" (probe, ack, "
             "ping-req, broadcast, sync, nodelink, tunnel or all)",
             i, (int)WR_MIN(len, 32), s);
      kinds |= WR_FAULT_KIND_BIT(k);
    }
  } else {
    FAIL(WR_ERR_INVAL, "kinds must be a list of names or \"all\"");
  }
  *out = kinds;
  return 0;
}

/* A number in [0, 1]. */
static int parse_prob(const json_t *v, const char *name, double *out,
                      char *err, size_t errlen) {
  if (!json_is_number(v))
    FAIL(WR_ERR_INVAL, "%s must be a number from 0 to 1", name);
  double d = json_number_value(v);
  if (!(d >= 0.0 && d <= 1.0) || isnan(d))
    FAIL(WR_ERR_INVAL, "%s must be a probability from 0 to 1", name);
  *out = d;
  return 0;
}

/* A whole number of milliseconds in [0, max]. */
static int parse_ms(const json_t *v, const char *name, uint64_t max,
                    uint64_t *out, char *err, size_t errlen) {
  if (!json_is_integer(v))
    FAIL(WR_ERR_INVAL, "%s must be a whole number of milliseconds", name);
  json_int_t x = json_integer_value(v);
  if (x < 0 || (uint64_t)x > max)
    FAIL(WR_ERR_INVAL, "%s must be from 0 to %llu", name,
         (unsigned long long)max);
  *out = (uint64_t)x;
  return 0;
}

int wr_fault_rule_from_json(const json_t *obj, wr_fault_rule *r, char *err,
                            size_t errlen) {
  memset(r, 0, sizeof *r);
  r->kinds = WR_FAULT_KIND_ALL;
  r->dir = WR_FAULT_BOTH;
  if (!json_is_object(obj)) FAIL(WR_ERR_PROTO, "a rule must be a JSON object");
  const char *key;
  json_t *v;
  int rv;
  uint64_t ms;
  json_object_foreach((json_t *)obj, key, v) {
    if (!strcmp(key, "kinds") || !strcmp(key, "kind")) {
      if ((rv = parse_kinds(v, &r->kinds, err, errlen)) != 0) return rv;
    } else if (!strcmp(key, "dir")) {
      const char *s = json_is_string(v) ? json_string_value(v) : "";
      if (!strcmp(s, "in")) r->dir = WR_FAULT_IN;
      else if (!strcmp(s, "out")) r->dir = WR_FAULT_OUT;
      else if (!strcmp(s, "both")) r->dir = WR_FAULT_BOTH;
      else FAIL(WR_ERR_INVAL, "dir must be \"in\", \"out\" or \"both\"");
    } else if (!strcmp(key, "peers")) {
      if (!json_is_array(v))
        FAIL(WR_ERR_INVAL, "peers must be a list of member ids");
      if (json_array_size(v) > WR_FAULT_MAX_PEERS)
        FAIL(WR_ERR_INVAL, "peers: at most %d members per rule",
             WR_FAULT_MAX_PEERS);
      size_t i;
      const json_t *e;
      json_array_foreach(v, i, e) {
        const char *s = json_is_string(e) ? json_string_value(e) : NULL;
        if (!s || json_string_length(e) > WR_FAULT_PEER_MAX ||
            strlen(s) != json_string_length(e) || !valid_peer(s))
          FAIL(WR_ERR_INVAL, "peers[%zu]: a member id is 1-%d printable "
               "characters without spaces, or ip: and an IP address", i,
               WR_FAULT_PEER_MAX);
        store_peer(r->peers[i], sizeof r->peers[i], s);
      }
      r->npeers = json_array_size(v);
    } else if (!strcmp(key, "drop")) {
      if ((rv = parse_prob(v, "drop", &r->drop, err, errlen)) != 0) return rv;
    } else if (!strcmp(key, "dup")) {
      if ((rv = parse_prob(v, "dup", &r->dup, err, errlen)) != 0) return rv;
    } else if (!strcmp(key, "delay_ms")) {
      if ((rv = parse_ms(v, key, WR_FAULT_DELAY_MAX_MS, &ms, err, errlen)))
        return rv;
      r->delay_ms = (uint32_t)ms;
    } else if (!strcmp(key, "jitter_ms")) {
      if ((rv = parse_ms(v, key, WR_FAULT_DELAY_MAX_MS, &ms, err, errlen)))
        return rv;
      r->jitter_ms = (uint32_t)ms;
    } else if (!strcmp(key, "after_ms")) {
      if ((rv = parse_ms(v, key, WR_FAULT_WINDOW_MAX_MS, &r->after_ms, err,
                         errlen)))
        return rv;
    } else if (!strcmp(key, "for_ms")) {
      if ((rv = parse_ms(v, key, WR_FAULT_WINDOW_MAX_MS, &r->for_ms, err,
                         errlen)))
        return rv;
    } else if (!strcmp(key, "id") || !strcmp(key, "active")) {
      /* What wr_fault_rule_json adds: a saved answer loads back. */
    } else {
      FAIL(WR_ERR_INVAL, "unknown field \"%.40s\" (kinds, dir, peers, drop, "
           "delay_ms, jitter_ms, dup, after_ms, for_ms)", key);
    }
  }
  return wr_fault_rule_check(r, err, errlen);
}

static json_t *parse_text(const char *text, size_t len, char *err,
                          size_t errlen, int *prv) {
  if (len > WR_FAULT_JSON_MAX) {
    *prv = WR_ERR_TOOBIG;
    if (err && errlen)
      snprintf(err, errlen, "JSON over %d bytes", WR_FAULT_JSON_MAX);
    return NULL;
  }
  json_error_t je;
  json_t *doc = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
  if (!doc) {
    *prv = WR_ERR_PROTO;
    if (err && errlen) {
      snprintf(err, errlen, "not JSON: %s (line %d, column %d)", je.text,
               je.line, je.column);
      err_clean(err); /* jansson quotes the offending input */
    }
  }
  return doc;
}

int wr_fault_rule_parse(const char *text, size_t len, wr_fault_rule *r,
                        char *err, size_t errlen) {
  int rv = 0;
  memset(r, 0, sizeof *r);
  json_t *doc = parse_text(text, len, err, errlen, &rv);
  if (!doc) return rv;
  rv = wr_fault_rule_from_json(doc, r, err, errlen);
  json_decref(doc);
  return rv;
}

json_t *wr_fault_rule_json(const wr_fault_rule *r, wr_tstamp now) {
  json_t *kinds = json_array(), *peers = json_array();
  json_t *o = NULL;
  if (!kinds || !peers) goto fail;
  for (int k = 0; k < WR_FAULT_KINDS; k++)
    if ((r->kinds & WR_FAULT_KIND_BIT(k)) &&
        json_array_append_new(kinds, json_string(kind_names[k])) != 0)
      goto fail;
  for (size_t i = 0; i < r->npeers; i++)
    if (json_array_append_new(peers, json_string(r->peers[i])) != 0)
      goto fail;
  int active = r->id != 0 && now >= r->start && now < r->end;
  o = json_pack("{s:I, s:o, s:s, s:o, s:f, s:I, s:I, s:f, s:I, s:I, s:b}",
                "id", (json_int_t)r->id, "kinds", kinds, "dir",
                wr_fault_dir_name(r->dir), "peers", peers, "drop", r->drop,
                "delay_ms", (json_int_t)r->delay_ms, "jitter_ms",
                (json_int_t)r->jitter_ms, "dup", r->dup, "after_ms",
                (json_int_t)r->after_ms, "for_ms", (json_int_t)r->for_ms,
                "active", active);
  return o; /* json_pack stole kinds and peers, even on failure */
fail:
  json_decref(kinds);
  json_decref(peers);
  return NULL;
}

json_t *wr_fault_to_json(const wr_fault *f, wr_tstamp now) {
  json_t *rules = json_array();
  if (!rules) return NULL;
  for (size_t i = 0; i < f->n; i++) {
    json_t *r = wr_fault_rule_json(&f->rules[i], now);
    if (!r || json_array_append_new(rules, r) != 0) {
      json_decref(rules);
      return NULL;
    }
  }
  return json_pack("{s:I, s:o}", "seed", (json_int_t)f->seed, "rules",
                   rules);
}

int wr_fault_load_json(wr_fault *f, const json_t *doc, wr_tstamp now,
                       char *err, size_t errlen) {
  char why[200];
  if (!json_is_object(doc)) {
    f->st.rejected++;
    FAIL(WR_ERR_PROTO, "a rule set is a JSON object {\"seed\":N,"
                       "\"rules\":[...]}");
  }
  const json_t *seed = NULL, *rules = NULL;
  const char *key;
  json_t *v;
  json_object_foreach((json_t *)doc, key, v) {
    if (!strcmp(key, "seed")) seed = v;
    else if (!strcmp(key, "rules")) rules = v;
    else {
      f->st.rejected++;
      FAIL(WR_ERR_INVAL, "unknown field \"%.40s\" in a rule set (seed, "
           "rules)", key);
    }
  }
  if (seed && (!json_is_integer(seed) || json_integer_value(seed) < 0)) {
    f->st.rejected++;
    FAIL(WR_ERR_INVAL, "seed must be a whole number from 0 to 2^63-1");
  }
  size_t n = rules ? json_array_size(rules) : 0;
  if (rules && !json_is_array(rules)) {
    f->st.rejected++;
    FAIL(WR_ERR_INVAL, "rules must be a list of rules");
  }
  if (n > WR_FAULT_MAX_RULES) {
    f->st.rejected++;
    FAIL(WR_ERR_LIMIT, "rules: at most %d", WR_FAULT_MAX_RULES);
  }
  /* Parse into a scratch array first: all or nothing. */
  wr_fault_rule *tmp = n ? wr_mem_calloc(f->mem, n, sizeof *tmp) : NULL;
  if (n && !tmp) FAIL(WR_ERR_NOMEM, "out of memory");
  for (size_t i = 0; i < n; i++) {
    int rv = wr_fault_rule_from_json(json_array_get(rules, i), &tmp[i], why,
                                     sizeof why);
    if (rv != 0) {
      wr_mem_free(f->mem, tmp);
      f->st.rejected++;
      FAIL(rv, "rules[%zu]: %s", i, why);
    }
  }
  f->n = 0;
  for (size_t i = 0; i < n; i++) {
    int rv = wr_fault_add(f, &tmp[i], now, NULL);
    (void)rv; /* checked above, and n <= the limit */
  }
  wr_mem_free(f->mem, tmp);
  if (seed) wr_fault_reseed(f, (uint64_t)json_integer_value(seed));
  f->st.changes++;
  return 0;
}

int wr_fault_load(wr_fault *f, const char *text, size_t len, wr_tstamp now,
                  char *err, size_t errlen) {
  int rv = 0;
  json_t *doc = parse_text(text, len, err, errlen, &rv);
  if (!doc) {
    f->st.rejected++;
    return rv;
  }
  rv = wr_fault_load_json(f, doc, now, err, errlen);
  json_decref(doc);
  return rv;
}
