/*
 * The ownership table's hash tables (routes_int.h): names, owners and
 * accounts in chained tables keyed with SipHash-2-4 under a random key
 * (table.c says why), and the interned account strings.
 */
#include <sodium.h>
#include <string.h>

#include "routes_int.h"
#include "warren/err.h"

/* ---- hash tables ------------------------------------------------------ */

typedef struct hnode {
  struct hnode *next;
} hnode;

static uint64_t hstr(const wr_routes *t, const char *s, size_t n) {
  uint8_t out[crypto_shorthash_BYTES];
  uint64_t v;
  crypto_shorthash(out, (const unsigned char *)s, n, t->key);
  memcpy(&v, out, sizeof v);
  return v;
}

static const char *hkey(hkind k, const void *n, size_t *len) {
  switch (k) {
  case H_NAME: *len = ((const rt_name *)n)->len; return ((const rt_name *)n)->s;
  case H_OWNER: *len = ((const rt_owner *)n)->len; return ((const rt_owner *)n)->id;
  default: *len = ((const rt_acct *)n)->len; return ((const rt_acct *)n)->s;
  }
}

void *routes_hfind(const wr_routes *t, const rt_hash *h, hkind k,
                   const char *s, size_t n) {
  const hnode *x;
  if (!h->nb) return NULL;
  for (x = h->b[hstr(t, s, n) & (h->nb - 1)]; x; x = x->next) {
    size_t l;
    const char *ks = hkey(k, x, &l);
    if (l == n && memcmp(ks, s, n) == 0) return (void *)x;
  }
  return NULL;
}

/* Grows at load 1 (a chain averages one node).  A failed grow is not an
 * error: the table just gets a little slower. */
void routes_hgrow(wr_routes *t, rt_hash *h, hkind k) {
  size_t nb = h->nb ? h->nb * 2 : 64, i;
  void **b;
  if (h->n < h->nb) return;
  b = wr_mem_calloc(t->mem, nb, sizeof *b);
  if (!b) return;
  for (i = 0; i < h->nb; i++) {
    hnode *x = h->b[i], *nx;
    for (; x; x = nx) {
      size_t l;
      const char *ks = hkey(k, x, &l);
      size_t j = hstr(t, ks, l) & (nb - 1);
      nx = x->next;
      x->next = b[j];
      b[j] = x;
    }
  }
  wr_mem_free(t->mem, h->b);
  h->b = b;
  h->nb = nb;
}

/* Needs h->nb > 0 (hgrow first, or the initial buckets of wr_routes_new). */
void routes_hinsert(wr_routes *t, rt_hash *h, hkind k, void *node) {
  size_t l;
  const char *ks = hkey(k, node, &l);
  size_t j = hstr(t, ks, l) & (h->nb - 1);
  ((hnode *)node)->next = h->b[j];
  h->b[j] = node;
  h->n++;
}

void routes_hremove(wr_routes *t, rt_hash *h, hkind k, void *node) {
  size_t l;
  const char *ks = hkey(k, node, &l);
  hnode **pp = (hnode **)&h->b[hstr(t, ks, l) & (h->nb - 1)];
  for (; *pp; pp = &(*pp)->next)
    if (*pp == node) {
      *pp = ((hnode *)node)->next;
      h->n--;
      return;
    }
}

/* ---- interned accounts ------------------------------------------------ */

rt_acct *routes_acct_get(wr_routes *t, const char *s) {
  size_t n = strlen(s);
  rt_acct *a = routes_hfind(t, &t->accts, H_ACCT, s, n);
  if (a) {
    a->refs++;
    return a;
  }
  routes_hgrow(t, &t->accts, H_ACCT);
  if (!t->accts.nb) return NULL;
  a = wr_mem_malloc(t->mem, sizeof *a + n + 1);
  if (!a) return NULL;
  a->refs = 1;
  a->len = (uint8_t)n;
  memcpy(a->s, s, n + 1);
  routes_hinsert(t, &t->accts, H_ACCT, a);
  return a;
}

void routes_acct_put(wr_routes *t, rt_acct *a) {
  if (--a->refs) return;
  routes_hremove(t, &t->accts, H_ACCT, a);
  wr_mem_free(t->mem, a);
}

void routes_hfree(wr_routes *t, rt_hash *h) {
  size_t i;
  for (i = 0; i < h->nb; i++) {
    hnode *x = h->b[i], *nx;
    for (; x; x = nx) {
      nx = x->next;
      wr_mem_free(t->mem, x);
    }
  }
  wr_mem_free(t->mem, h->b);
}

