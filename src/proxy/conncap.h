/*
 * Connection caps' bookkeeping (docs/HTTP.md, "Connection caps"): how
 * many visitor connections each source address has open, and the default
 * caps derived from the descriptor limit.  Sans-IO: the listener
 * (proxy_uv.c) asks and answers the visitor.
 */
#ifndef WR_PROXY_CONNCAP_H
#define WR_PROXY_CONNCAP_H

#include <stdint.h>

#include <sys/socket.h>

/* A chained hash of source addresses with an open connection.  1024
 * buckets keep chains short up to tens of thousands of sources, for
 * 8 KiB. */
#define CONNCAP_BUCKETS 1024

typedef struct conncap_src {
  struct conncap_src *next;
  uint8_t ip[16]; /* IPv4 as ::ffff:a.b.c.d */
  unsigned n;
} conncap_src;

typedef struct conncap {
  conncap_src *src[CONNCAP_BUCKETS];
} conncap;

/* Open connections from |ip|. */
unsigned conncap_count(conncap *c, const uint8_t ip[16]);
/* One more from |ip|: 0, or WR_ERR_NOMEM (nothing counted). */
int conncap_add(conncap *c, const uint8_t ip[16]);
/* One fewer from |ip|; an address at zero is forgotten. */
void conncap_del(conncap *c, const uint8_t ip[16]);

/* Fills the caps left 0 from the soft descriptor limit |fd_limit|: the
 * total keeps max(limit/4, 64) descriptors for tunnel clients, the admin
 * API, gossip and logs (at least 16, at most 2^24); one source gets a
 * quarter of the total (at least 8). */
void conncap_defaults(uint64_t fd_limit, unsigned *total, unsigned *per_source);

/* |ss|'s address as 16 bytes (IPv4 mapped into IPv6); zeros if neither. */
void conncap_ip16(const struct sockaddr_storage *ss, uint8_t ip[16]);

#endif
