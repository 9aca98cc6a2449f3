/*
 * The tokens file (see tokens.h).  Two sorted arrays: token hashes ->
 * account, and reserved names -> account, each searched by bsearch.  The
 * file is parsed whole on start and on SIGHUP, so sorting once beats a
 * hash table's upkeep, and a lookup per bind is a few dozen comparisons.
 */
#include "tokens.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ini.h>
#include <sodium.h>

#include "warren/err.h"

#define ACCOUNT_MAX 64
#define NAME_MAX_LEN 63

typedef struct tok_ent {
  uint8_t hash[32];
  size_t account; /* index into accounts */
} tok_ent;

typedef struct name_ent {
  char name[NAME_MAX_LEN + 1];
  size_t account;
} name_ent;

typedef struct account {
  char name[ACCOUNT_MAX + 1];
  size_t ntok; /* to refuse a section without tokens */
} account;

struct wr_tokens {
  account *accounts;
  size_t naccounts, cap_accounts;
  tok_ent *toks;
  size_t ntoks, cap_toks;
  name_ent *names;
  size_t nnames, cap_names;
};

typedef struct parse_ctx {
  wr_tokens *t;
  char *err;
  size_t errlen;
  int rv;
  long cur; /* account index of the current section, -1 before any */
  const char *pos; /* where the next line to report starts */
  int line;        /* its number */
} parse_ctx;

/*
 * The line of the key inih just reported.  Debian's inih is built
 * without INI_HANDLER_LINENO, so the handler is not told; inih reports
 * keys in file order, so the next line from |pos| that starts with |key|
 * followed by '=' or ':' is the one.  Errors then name their line.
 */
static int locate(parse_ctx *c, const char *key) {
  size_t klen = strlen(key);
  while (*c->pos) {
    const char *l = c->pos;
    const char *end = strchr(l, '\n');
    c->pos = end ? end + 1 : l + strlen(l);
    int n = ++c->line;
    while (*l == ' ' || *l == '\t') l++;
    if (strncmp(l, key, klen) != 0) continue;
    const char *r = l + klen;
    while (*r == ' ' || *r == '\t') r++;
    if (*r == '=' || *r == ':') return n;
  }
  return c->line;
}

static void token_hash(const char *token, uint8_t out[32]) {
  crypto_generichash(out, 32, (const uint8_t *)token, strlen(token),
                     (const uint8_t *)"warren-tokens-v1", 16);
}

static int grow(void **p, size_t *cap, size_t n, size_t size, size_t max) {
  if (n < *cap) return 0;
  if (*cap >= max) return WR_ERR_LIMIT;
  size_t nc = *cap ? *cap * 2 : 16;
  if (nc > max) nc = max;
  void *q = realloc(*p, nc * size);
  if (!q) return WR_ERR_NOMEM;
  *p = q;
  *cap = nc;
  return 0;
}

static int printable_word(const char *s, size_t max) {
  size_t n = strlen(s);
  if (n == 0 || n > max) return 0;
  for (; *s; s++)
    if (*s <= ' ' || *s > '~') return 0;
  return 1;
}

static int label_ok(const char *s) {
  size_t n = strlen(s);
  if (n == 0 || n > NAME_MAX_LEN || s[0] == '-' || s[n - 1] == '-') return 0;
  for (; *s; s++)
    if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '-'))
      return 0;
  return 1;
}

__attribute__((format(printf, 4, 5))) static int fail(parse_ctx *c,
                                                     int line, int rv,
                                                     const char *fmt, ...) {
  if (c->rv == 0) {
    char what[200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    snprintf(c->err, c->errlen, "line %d: %s", line, what);
    c->rv = rv;
  }
  return 0; /* stop inih */
}

static int add_account(parse_ctx *c, const char *section, int line) {
  wr_tokens *t = c->t;
  if (!printable_word(section, ACCOUNT_MAX))
    return fail(c, line, WR_ERR_INVAL,
                "account [%.64s] must be 1-64 printable characters without "
                "spaces", section);
  if (strncmp(section, "key:", 4) == 0)
    return fail(c, line, WR_ERR_INVAL,
                "account [%.64s] may not start with \"key:\" (identity-key "
                "accounts use it)", section);
  for (size_t i = 0; i < t->naccounts; i++)
    if (!strcmp(t->accounts[i].name, section)) {
      c->cur = (long)i; /* a section given twice adds to the first */
      return 1;
    }
  int rv = grow((void **)&t->accounts, &t->cap_accounts, t->naccounts,
                sizeof *t->accounts, WR_TOKENS_MAX);
  if (rv != 0)
    return fail(c, line, rv, "%s", rv == WR_ERR_NOMEM ? "out of memory"
                                                      : "too many accounts");
  account *a = &t->accounts[t->naccounts];
  snprintf(a->name, sizeof a->name, "%s", section);
  a->ntok = 0;
  c->cur = (long)t->naccounts++;
  return 1;
}

static int add_token(parse_ctx *c, const char *v, int line) {
  wr_tokens *t = c->t;
  size_t n = strlen(v);
  if (n < WR_TOKEN_MIN)
    return fail(c, line, WR_ERR_INVAL,
                "token shorter than 16 characters (guessable)");
  if (n > WR_TOKEN_MAX || !printable_word(v, WR_TOKEN_MAX))
    return fail(c, line, WR_ERR_INVAL,
                "token must be 16-512 printable characters without "
                "spaces");
  int rv = grow((void **)&t->toks, &t->cap_toks, t->ntoks, sizeof *t->toks,
                WR_TOKENS_MAX);
  if (rv != 0)
    return fail(c, line, rv, "%s", rv == WR_ERR_NOMEM ? "out of memory"
                                                      : "more than 100000 "
                                                        "tokens");
  tok_ent *e = &t->toks[t->ntoks++];
  token_hash(v, e->hash);
  e->account = (size_t)c->cur;
  t->accounts[c->cur].ntok++;
  return 1;
}

static int add_names(parse_ctx *c, const char *v, int line) {
  wr_tokens *t = c->t;
  char buf[4096];
  if (strlen(v) >= sizeof buf)
    return fail(c, line, WR_ERR_INVAL, "names line longer than %s bytes",
                "4095");
  snprintf(buf, sizeof buf, "%s", v);
  for (char *save = NULL, *s = strtok_r(buf, ", \t", &save); s;
       s = strtok_r(NULL, ", \t", &save)) {
    if (!label_ok(s))
      return fail(c, line, WR_ERR_INVAL,
                  "'%.63s' is not a name (one DNS label: a-z, 0-9, inner "
                  "'-', at most 63)", s);
    int rv = grow((void **)&t->names, &t->cap_names, t->nnames,
                  sizeof *t->names, WR_TOKENS_MAX);
    if (rv != 0)
      return fail(c, line, rv, "%s", rv == WR_ERR_NOMEM ? "out of memory"
                                                        : "more than 100000 "
                                                          "names");
    name_ent *e = &t->names[t->nnames++];
    snprintf(e->name, sizeof e->name, "%s", s);
    e->account = (size_t)c->cur;
  }
  return 1;
}

/* One handler for both inih builds: with INI_CALL_HANDLER_ON_NEW_SECTION
 * it is also called with key NULL at each [section]; without (Debian),
 * accounts open at their first key. */
static int on_kv(void *ud, const char *section, const char *key,
                 const char *value) {
  parse_ctx *c = ud;
  if (c->rv) return 0;
  int line = key ? locate(c, key) : c->line;
  if (!section[0]) {
    if (!key) return 1;
    return fail(c, line, WR_ERR_INVAL,
                "'%.40s' outside an [account] section", key);
  }
  if ((c->cur < 0 || strcmp(c->t->accounts[c->cur].name, section) != 0) &&
      !add_account(c, section, line))
    return 0;
  if (!key) return 1;
  if (!strcmp(key, "token")) return add_token(c, value, line);
  if (!strcmp(key, "names")) return add_names(c, value, line);
  return fail(c, line, WR_ERR_INVAL,
              "unknown key '%.40s' (token, names)", key);
}

static int cmp_tok(const void *a, const void *b) {
  return memcmp(((const tok_ent *)a)->hash, ((const tok_ent *)b)->hash, 32);
}

static int cmp_name(const void *a, const void *b) {
  return strcmp(((const name_ent *)a)->name, ((const name_ent *)b)->name);
}

int wr_tokens_parse(const char *text, wr_tokens **pt, char *err,
                    size_t errlen) {
  *pt = NULL;
  if (strlen(text) > WR_TOKENS_FILE_MAX) {
    snprintf(err, errlen, "larger than 1 MiB");
    return WR_ERR_INVAL;
  }
  wr_tokens *t = calloc(1, sizeof *t);
  if (!t) return WR_ERR_NOMEM;
  parse_ctx c = {t, err, errlen, 0, -1, text, 0};
  int r = ini_parse_string(text, on_kv, &c);
  if (c.rv == 0 && r != 0) {
    if (r > 0) snprintf(err, errlen, "line %d: not KEY = VALUE or [account]",
                        r);
    else snprintf(err, errlen, "cannot parse (out of memory)");
    c.rv = r > 0 ? WR_ERR_INVAL : WR_ERR_NOMEM;
  }
  for (size_t i = 0; c.rv == 0 && i < t->naccounts; i++)
    if (t->accounts[i].ntok == 0) {
      snprintf(err, errlen, "account [%s] has no token", t->accounts[i].name);
      c.rv = WR_ERR_INVAL;
    }
  if (c.rv == 0) {
    if (t->ntoks) qsort(t->toks, t->ntoks, sizeof *t->toks, cmp_tok);
    for (size_t i = 1; i < t->ntoks; i++)
      if (!memcmp(t->toks[i - 1].hash, t->toks[i].hash, 32)) {
        snprintf(err, errlen, "a token is given twice (accounts [%s] and "
                 "[%s])", t->accounts[t->toks[i - 1].account].name,
                 t->accounts[t->toks[i].account].name);
        c.rv = WR_ERR_INVAL;
        break;
      }
  }
  if (c.rv == 0) {
    if (t->nnames) qsort(t->names, t->nnames, sizeof *t->names, cmp_name);
    size_t w = 0;
    for (size_t i = 0; i < t->nnames; i++) {
      if (w && !strcmp(t->names[w - 1].name, t->names[i].name)) {
        if (t->names[w - 1].account == t->names[i].account) continue;
        snprintf(err, errlen, "name '%s' is reserved by [%s] and [%s]",
                 t->names[i].name, t->accounts[t->names[w - 1].account].name,
                 t->accounts[t->names[i].account].name);
        c.rv = WR_ERR_INVAL;
        break;
      }
      t->names[w++] = t->names[i];
    }
    t->nnames = w;
  }
  if (c.rv != 0) {
    wr_tokens_del(t);
    return c.rv;
  }
  *pt = t;
  return 0;
}

void wr_tokens_del(wr_tokens *t) {
  if (!t) return;
  if (t->toks) sodium_memzero(t->toks, t->cap_toks * sizeof *t->toks);
  free(t->toks);
  free(t->names);
  free(t->accounts);
  free(t);
}

const char *wr_tokens_account(const wr_tokens *t, const char *token) {
  if (!t || !token || !token[0] || strlen(token) > WR_TOKEN_MAX) return NULL;
  tok_ent key;
  token_hash(token, key.hash);
  const tok_ent *e = t->ntoks ? bsearch(&key, t->toks, t->ntoks,
                                        sizeof *t->toks, cmp_tok)
                              : NULL;
  return e ? t->accounts[e->account].name : NULL;
}

const char *wr_tokens_reserved(const wr_tokens *t, const char *name) {
  if (!t || !name || strlen(name) > NAME_MAX_LEN) return NULL;
  name_ent key;
  snprintf(key.name, sizeof key.name, "%s", name);
  const name_ent *e = t->nnames ? bsearch(&key, t->names, t->nnames,
                                          sizeof *t->names, cmp_name)
                                : NULL;
  return e ? t->accounts[e->account].name : NULL;
}

size_t wr_tokens_count(const wr_tokens *t) { return t ? t->ntoks : 0; }
size_t wr_tokens_accounts(const wr_tokens *t) { return t ? t->naccounts : 0; }
