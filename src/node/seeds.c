/*
 * Seed list parsing (see seeds.h).  Grammar:
 *
 *   list  = "dns:" name ":" port | entry *("," entry)
 *   entry = (ipv4 | "[" ipv6 "]" | name) ":" port
 *
 * Names follow RFC 1123 host rules (labels of letters, digits and inner
 * '-', 1-63 chars, 253 in all); ports are 1-65535.  Whitespace around
 * entries is tolerated because people paste lists from YAML.
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "seeds.h"

static int valid_name(const char *s) {
  size_t n = strlen(s), label = 0;
  if (n == 0 || n > WR_SEED_HOST_MAX) return 0;
  for (size_t i = 0; i < n; i++) {
    char c = s[i];
    if (c == '.') {
      if (label == 0 || s[i - 1] == '-') return 0;
      label = 0;
      continue;
    }
    int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
             (c >= '0' && c <= '9') || (c == '-' && label > 0);
    if (!ok || ++label > 63) return 0;
  }
  return label > 0 && s[n - 1] != '-';
}

static int parse_port(const char *s, uint16_t *port) {
  if (!*s || strlen(s) > 5) return -1;
  long v = 0;
  for (const char *p = s; *p; p++) {
    if (*p < '0' || *p > '9') return -1;
    v = v * 10 + (*p - '0');
  }
  if (v < 1 || v > 65535) return -1;
  *port = (uint16_t)v;
  return 0;
}

/* One "host:port" entry, trimmed, into |seed|. */
static int parse_entry(const char *s, size_t len, wr_seed *seed, char *err,
                       size_t cap) {
  char buf[WR_SEED_HOST_MAX + 16];
  while (len && (*s == ' ' || *s == '\t')) s++, len--;
  while (len && (s[len - 1] == ' ' || s[len - 1] == '\t')) len--;
  if (len == 0) {
    snprintf(err, cap, "empty entry in the seed list");
    return -1;
  }
  if (len >= sizeof buf) {
    snprintf(err, cap, "seed '%.40s...' is too long", s);
    return -1;
  }
  memcpy(buf, s, len);
  buf[len] = 0;
  char *host = buf, *port;
  if (buf[0] == '[') {
    char *end = strchr(buf, ']');
    if (!end || end[1] != ':') {
      snprintf(err, cap, "seed '%s': want [IPv6]:PORT", buf);
      return -1;
    }
    *end = 0;
    host = buf + 1;
    port = end + 2;
  } else {
    char *colon = strrchr(buf, ':');
    if (!colon || strchr(buf, ':') != colon) {
      snprintf(err, cap, "seed '%s': want HOST:PORT (IPv6 in brackets)", buf);
      return -1;
    }
    *colon = 0;
    port = colon + 1;
  }
  if (parse_port(port, &seed->port) != 0) {
    snprintf(err, cap, "seed '%.*s': port must be 1-65535", (int)len, s);
    return -1;
  }
  unsigned char tmp[16];
  if (inet_pton(AF_INET6, host, tmp) == 1) {
    if (host == buf) {
      snprintf(err, cap, "seed '%.*s': put IPv6 addresses in brackets",
               (int)len, s);
      return -1;
    }
    seed->is_ip = 1;
  } else if (inet_pton(AF_INET, host, tmp) == 1) {
    if (host != buf) {
      snprintf(err, cap, "seed '%.*s': brackets are for IPv6", (int)len, s);
      return -1;
    }
    seed->is_ip = 1;
  } else if (host == buf && valid_name(host)) {
    seed->is_ip = 0;
  } else {
    snprintf(err, cap, "seed '%.*s': '%.64s' is not an address or a DNS name",
             (int)len, s, host);
    return -1;
  }
  size_t hl = strlen(host); /* <= 253: checked above for names, IPs are short */
  if (hl >= sizeof seed->host) {
    snprintf(err, cap, "seed host is too long");
    return -1;
  }
  memcpy(seed->host, host, hl + 1);
  return 0;
}

int wr_seeds_parse(const char *text, wr_seed_list *out, char *err,
                   size_t cap) {
  memset(out, 0, sizeof *out);
  /* Errors quote the input; control bytes would break the one-line rule
   * (and could be terminal escapes). */
  for (const char *p = text; *p; p++)
    if ((unsigned char)*p < 0x20 || *p == 0x7f) {
      snprintf(err, cap, "the seed list contains a control character");
      return -1;
    }
  if (strncmp(text, "dns:", 4) == 0) {
    out->dns = 1;
    out->n = 1;
    if (parse_entry(text + 4, strlen(text + 4), &out->seeds[0], err, cap))
      return -1;
    if (out->seeds[0].is_ip) {
      snprintf(err, cap, "dns:%s names an address, not a DNS name; drop "
               "the dns: prefix", text + 4);
      return -1;
    }
    return 0;
  }
  const char *p = text;
  for (;;) {
    size_t len = strcspn(p, ",");
    if (out->n == WR_SEEDS_MAX) {
      snprintf(err, cap, "more than %d seeds; a few per zone are enough",
               WR_SEEDS_MAX);
      return -1;
    }
    if (parse_entry(p, len, &out->seeds[out->n], err, cap)) return -1;
    out->n++;
    if (p[len] == 0) return 0;
    p += len + 1;
  }
}
