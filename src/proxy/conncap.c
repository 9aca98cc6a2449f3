/*
 * Connection caps' bookkeeping (conncap.h): per-source counts and the
 * default caps.  Moved out of proxy_uv.c, which keeps only the refusal
 * itself (a 503 written with uv_try_write, then close).
 */
#include "conncap.h"

#include <stdlib.h>
#include <string.h>

#include <netinet/in.h>

#include "warren/err.h"

static conncap_src **slot(conncap *c, const uint8_t ip[16]) {
  uint32_t h = 2166136261u; /* FNV-1a */
  for (int i = 0; i < 16; i++) h = (h ^ ip[i]) * 16777619u;
  conncap_src **pp = &c->src[h % CONNCAP_BUCKETS];
  while (*pp && memcmp((*pp)->ip, ip, 16) != 0) pp = &(*pp)->next;
  return pp;
}

unsigned conncap_count(conncap *c, const uint8_t ip[16]) {
  conncap_src *e = *slot(c, ip);
  return e ? e->n : 0;
}

int conncap_add(conncap *c, const uint8_t ip[16]) {
  conncap_src **pp = slot(c, ip);
  if (!*pp) {
    conncap_src *e = calloc(1, sizeof *e);
    if (!e) return WR_ERR_NOMEM;
    memcpy(e->ip, ip, 16);
    *pp = e;
  }
  (*pp)->n++;
  return 0;
}

void conncap_del(conncap *c, const uint8_t ip[16]) {
  conncap_src **pp = slot(c, ip), *e = *pp;
  if (!e) return;
  if (--e->n == 0) {
    *pp = e->next;
    free(e);
  }
}

void conncap_defaults(uint64_t l, unsigned *total, unsigned *per_source) {
  uint64_t keep = l / 4 > 64 ? l / 4 : 64;
  uint64_t t = l > keep + 16 ? l - keep : 16;
  if (t > 1u << 24) t = 1u << 24;
  if (!*total) *total = (unsigned)t;
  if (!*per_source) *per_source = *total / 4 > 8 ? *total / 4 : 8;
}

void conncap_ip16(const struct sockaddr_storage *ss, uint8_t ip[16]) {
  memset(ip, 0, 16);
  if (ss->ss_family == AF_INET) {
    ip[10] = ip[11] = 0xff;
    memcpy(ip + 12, &((const struct sockaddr_in *)ss)->sin_addr, 4);
  } else if (ss->ss_family == AF_INET6) {
    memcpy(ip, &((const struct sockaddr_in6 *)ss)->sin6_addr, 16);
  }
}
