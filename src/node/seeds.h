/*
 * `--join` seed lists (issue 4): "HOST:PORT,HOST:PORT,..." or
 * "dns:NAME:PORT", whose A/AAAA records are the seeds (a Kubernetes
 * headless Service, fly.io's private DNS).  Parsing is pure and bounded;
 * resolving DNS names is the adapter's job.
 */
#ifndef WARREN_NODE_SEEDS_H
#define WARREN_NODE_SEEDS_H

#include <stddef.h>
#include <stdint.h>

#define WR_SEEDS_MAX 64
#define WR_SEED_HOST_MAX 253 /* a DNS name's longest text form */

typedef struct wr_seed {
  char host[WR_SEED_HOST_MAX + 1]; /* IPv4, IPv6 (no brackets) or a name */
  uint16_t port;
  int is_ip;                       /* host is a literal address */
} wr_seed;

typedef struct wr_seed_list {
  int dns;        /* 1: one entry, a name to resolve to all its records */
  size_t n;
  wr_seed seeds[WR_SEEDS_MAX];
} wr_seed_list;

/*
 * Parses |text| (NUL-terminated).  Returns 0, or -1 with a one-line
 * reason in |err| (cap bytes): empty entries, missing or bad ports,
 * unbalanced brackets, names that are not DNS names, more than
 * WR_SEEDS_MAX entries.
 */
int wr_seeds_parse(const char *text, wr_seed_list *out, char *err,
                   size_t cap);

#endif
