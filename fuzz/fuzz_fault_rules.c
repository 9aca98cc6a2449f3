/*
 * libFuzzer target: the fault rule JSON parser (src/fault/fault.c), what
 * POST /faults, the reload file and warren-sim --faults read.
 *
 * Byte 0 picks the entry point (even: one rule, odd: a rule set); the
 * rest is the JSON text.  Invariants: a refusal has a one-line reason;
 * an accepted rule passes wr_fault_rule_check, serializes, and parses
 * back to the same fields; an accepted set serializes and loads back to
 * the same JSON; decisions on any accepted rule stay within bounds.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "warren/fault.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_err(const char *err) {
  if (err[0] == 0 || strchr(err, '\n')) abort();
}

static void check_verdicts(wr_fault *f) {
  wr_fault_verdict v;
  for (int k = 0; k < WR_FAULT_KINDS; k++)
    for (int d = WR_FAULT_IN; d <= WR_FAULT_OUT; d++) {
      wr_fault_decide(f, (wr_fault_kind)k, "n2", d, 1000, &v);
      if (v.drop ? v.copies != 0 : (v.copies < 1 || v.copies > 2)) abort();
      if (v.delay_ms > 2 * WR_FAULT_DELAY_MAX_MS) abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  const char *text = (const char *)data + 1;
  size_t len = size - 1;
  char err[256] = "";
  wr_fault *f;
  if (wr_fault_new(&f, 1, 0, NULL) != 0) return 0;
  if ((data[0] & 1) == 0) {
    wr_fault_rule r;
    if (wr_fault_rule_parse(text, len, &r, err, sizeof err) != 0) {
      check_err(err);
    } else {
      if (wr_fault_rule_check(&r, NULL, 0) != 0) abort();
      if (wr_fault_add(f, &r, 0, NULL) != 0) abort();
      json_t *j = wr_fault_rule_json(wr_fault_rule_at(f, 0), 0);
      if (!j) abort();
      wr_fault_rule back;
      if (wr_fault_rule_from_json(j, &back, err, sizeof err) != 0) abort();
      json_decref(j);
      if (back.kinds != r.kinds || back.dir != r.dir ||
          back.npeers != r.npeers || back.drop != r.drop ||
          back.dup != r.dup || back.delay_ms != r.delay_ms ||
          back.jitter_ms != r.jitter_ms || back.after_ms != r.after_ms ||
          back.for_ms != r.for_ms)
        abort();
      for (size_t i = 0; i < r.npeers; i++)
        if (strcmp(back.peers[i], r.peers[i])) abort();
      check_verdicts(f);
    }
  } else if (wr_fault_load(f, text, len, 0, err, sizeof err) != 0) {
    check_err(err);
  } else {
    json_t *j = wr_fault_to_json(f, 0);
    char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;
    if (!s) abort();
    wr_fault *g;
    if (wr_fault_new(&g, 2, 0, NULL) != 0) abort();
    if (wr_fault_load(g, s, strlen(s), 0, err, sizeof err) != 0) abort();
    json_t *j2 = wr_fault_to_json(g, 0);
    if (!json_equal(j, j2)) abort();
    json_decref(j2);
    json_decref(j);
    free(s);
    check_verdicts(g);
    wr_fault_del(g);
  }
  wr_fault_del(f);
  return 0;
}
