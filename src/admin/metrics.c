/*
 * The metrics registry behind GET /metrics.
 *
 * Layout: a list of families (one per metric name: type, help, label
 * key), each with a list of series (one per label value).  Every series is
 * its own allocation, so the pointer to its value that registration hands
 * out never moves; the hot path is a plain "(*p)++" with no lookup.
 * Lookups happen only at registration (startup), where a linear scan over
 * at most WR_METRICS_MAX_SERIES entries costs nothing that matters.
 *
 * Rendering follows the Prometheus text format 0.0.4
 * (https://prometheus.io/docs/instrumenting/exposition_formats/):
 * "# HELP name text" with '\\' and newline escaped, "# TYPE name type",
 * then "name{key="value"} 123" lines with '\\', '"' and newline escaped in
 * the label value.  Families come in first-registration order so that the
 * output is stable and tests can compare it byte for byte.
 */
#include <stdio.h>
#include <string.h>

#include "warren/err.h"
#include "warren/metrics.h"

typedef enum { MT_COUNTER, MT_GAUGE } metric_type;

typedef struct series {
  struct series *next;
  union {
    uint64_t u;
    int64_t i;
  } v;
  char *label_value; /* NULL when the family has no label */
} series;

typedef struct family {
  struct family *next;
  metric_type type;
  char *name;
  char *help;
  char *label_key; /* NULL: unlabelled family */
  series *head, *tail;
} family;

#define MAX_HOOKS 32

struct wr_metrics {
  const wr_mem *mem;
  family *head, *tail;
  size_t nseries;
  struct {
    void (*fn)(void *);
    void *ud;
  } hooks[MAX_HOOKS];
  size_t nhooks;
};

/* Where registrations against a NULL registry (or failed ones) point.
 * Single-threaded daemon, and nobody reads it: sharing it is harmless. */
static union {
  uint64_t u;
  int64_t i;
} sink;

int wr_metrics_new(wr_metrics **pm, const wr_mem *mem) {
  wr_metrics *m = wr_mem_calloc(mem, 1, sizeof *m);
  if (!m) return WR_ERR_NOMEM;
  m->mem = mem;
  *pm = m;
  return 0;
}

void wr_metrics_del(wr_metrics *m) {
  if (!m) return;
  family *f = m->head;
  while (f) {
    family *fn = f->next;
    series *s = f->head;
    while (s) {
      series *sn = s->next;
      wr_mem_free(m->mem, s->label_value);
      wr_mem_free(m->mem, s);
      s = sn;
    }
    wr_mem_free(m->mem, f->name);
    wr_mem_free(m->mem, f->help);
    wr_mem_free(m->mem, f->label_key);
    wr_mem_free(m->mem, f);
    f = fn;
  }
  wr_mem_free(m->mem, m);
}

static char *dup(const wr_mem *mem, const char *s) {
  size_t n = strlen(s) + 1;
  char *p = wr_mem_malloc(mem, n);
  if (p) memcpy(p, s, n);
  return p;
}

/* Prometheus metric names: [a-zA-Z_:][a-zA-Z0-9_:]*; label names the same
 * without ':'.  Labels starting with "__" are reserved by Prometheus. */
static int valid_ident(const char *s, int colon_ok, size_t max) {
  size_t n = strlen(s);
  if (n == 0 || n > max) return 0;
  for (size_t i = 0; i < n; i++) {
    char c = s[i];
    int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
             (colon_ok && c == ':') || (i > 0 && c >= '0' && c <= '9');
    if (!ok) return 0;
  }
  return 1;
}

static int valid_name(const char *name) {
  return name && strncmp(name, "warren_", 7) == 0 && name[7] != '\0' &&
         valid_ident(name, 1, WR_METRICS_MAX_NAME);
}

static int register_series(wr_metrics *m, metric_type type, const char *name,
                           const char *key, const char *value, const char *help,
                           series **ps) {
  if (!valid_name(name)) return WR_ERR_INVAL;
  if ((key == NULL) != (value == NULL)) return WR_ERR_INVAL;
  if (key &&
      (!valid_ident(key, 0, WR_METRICS_MAX_NAME) ||
       strncmp(key, "__", 2) == 0 || strlen(value) > WR_METRICS_MAX_VALUE))
    return WR_ERR_INVAL;
  if (help && strlen(help) > 1024) return WR_ERR_INVAL;

  family *f;
  for (f = m->head; f; f = f->next)
    if (strcmp(f->name, name) == 0) break;
  if (f) {
    if (f->type != type || (f->label_key == NULL) != (key == NULL) ||
        (key && strcmp(f->label_key, key) != 0))
      return WR_ERR_EXISTS;
    for (series *s = f->head; s; s = s->next)
      if (!key || strcmp(s->label_value, value) == 0) {
        *ps = s;
        return 0;
      }
  }
  if (m->nseries >= WR_METRICS_MAX_SERIES) return WR_ERR_LIMIT;

  family *nf = NULL;
  if (!f) {
    if (!help) return WR_ERR_INVAL;
    nf = wr_mem_calloc(m->mem, 1, sizeof *nf);
    if (!nf) return WR_ERR_NOMEM;
    nf->type = type;
    nf->name = dup(m->mem, name);
    nf->help = dup(m->mem, help);
    nf->label_key = key ? dup(m->mem, key) : NULL;
    if (!nf->name || !nf->help || (key && !nf->label_key)) goto fail;
    f = nf;
  }
  series *s = wr_mem_calloc(m->mem, 1, sizeof *s);
  if (!s) goto fail;
  if (value && !(s->label_value = dup(m->mem, value))) {
    wr_mem_free(m->mem, s);
    goto fail;
  }
  /* Link only once everything is allocated, so a failure leaves the
   * registry exactly as it was. */
  if (nf) {
    if (m->tail)
      m->tail->next = nf;
    else
      m->head = nf;
    m->tail = nf;
  }
  if (f->tail)
    f->tail->next = s;
  else
    f->head = s;
  f->tail = s;
  m->nseries++;
  *ps = s;
  return 0;

fail:
  if (nf) {
    wr_mem_free(m->mem, nf->name);
    wr_mem_free(m->mem, nf->help);
    wr_mem_free(m->mem, nf->label_key);
    wr_mem_free(m->mem, nf);
  }
  return WR_ERR_NOMEM;
}

int wr_metrics_counter(wr_metrics *m, const char *name, const char *label_key,
                       const char *label_value, const char *help,
                       uint64_t **pval) {
  series *s;
  *pval = &sink.u;
  if (!m) return 0;
  int rv =
      register_series(m, MT_COUNTER, name, label_key, label_value, help, &s);
  if (rv == 0) *pval = &s->v.u;
  return rv;
}

int wr_metrics_gauge(wr_metrics *m, const char *name, const char *label_key,
                     const char *label_value, const char *help,
                     int64_t **pval) {
  series *s;
  *pval = &sink.i;
  if (!m) return 0;
  int rv = register_series(m, MT_GAUGE, name, label_key, label_value, help, &s);
  if (rv == 0) *pval = &s->v.i;
  return rv;
}

int wr_metrics_on_collect(wr_metrics *m, void (*fn)(void *user_data),
                          void *user_data) {
  if (!m || !fn) return WR_ERR_INVAL;
  if (m->nhooks >= MAX_HOOKS) return WR_ERR_LIMIT;
  m->hooks[m->nhooks].fn = fn;
  m->hooks[m->nhooks].ud = user_data;
  m->nhooks++;
  return 0;
}

void wr_metrics_collect(wr_metrics *m) {
  if (!m) return;
  for (size_t i = 0; i < m->nhooks; i++) m->hooks[i].fn(m->hooks[i].ud);
}

size_t wr_metrics_count(const wr_metrics *m) { return m ? m->nseries : 0; }

/* An output cursor that keeps counting past the end of |dst| so that the
 * caller learns the size it needs (snprintf's contract). */
typedef struct out {
  uint8_t *dst;
  size_t cap;
  size_t len;
} out;

static void put(out *o, const char *s, size_t n) {
  if (o->len < o->cap) {
    size_t k = WR_MIN(n, o->cap - o->len);
    memcpy(o->dst + o->len, s, k);
  }
  o->len += n;
}

static void puts_(out *o, const char *s) { put(o, s, strlen(s)); }

/* HELP text escapes '\' and newline; label values also escape '"'. */
static void put_escaped(out *o, const char *s, int quote) {
  for (; *s; s++) {
    if (*s == '\\')
      put(o, "\\\\", 2);
    else if (*s == '\n')
      put(o, "\\n", 2);
    else if (quote && *s == '"')
      put(o, "\\\"", 2);
    else
      put(o, s, 1);
  }
}

size_t wr_metrics_render(const wr_metrics *m, uint8_t *dst, size_t cap) {
  out o = {dst, cap, 0};
  if (!m) return 0;
  for (const family *f = m->head; f; f = f->next) {
    puts_(&o, "# HELP ");
    puts_(&o, f->name);
    put(&o, " ", 1);
    put_escaped(&o, f->help, 0);
    puts_(&o, "\n# TYPE ");
    puts_(&o, f->name);
    puts_(&o, f->type == MT_COUNTER ? " counter\n" : " gauge\n");
    for (const series *s = f->head; s; s = s->next) {
      char num[32];
      puts_(&o, f->name);
      if (f->label_key) {
        put(&o, "{", 1);
        puts_(&o, f->label_key);
        put(&o, "=\"", 2);
        put_escaped(&o, s->label_value, 1);
        put(&o, "\"}", 2);
      }
      int n =
          f->type == MT_COUNTER
              ? snprintf(num, sizeof num, " %llu\n", (unsigned long long)s->v.u)
              : snprintf(num, sizeof num, " %lld\n", (long long)s->v.i);
      put(&o, num, (size_t)n);
    }
  }
  return o.len;
}
