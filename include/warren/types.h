/*
 * Basic types shared by every warren module.
 *
 * Time is a wr_tstamp: milliseconds on a monotonic clock chosen by the
 * caller (uv_now() in the daemon, a plain variable in tests and in the
 * simulator).  Protocol cores never read a clock themselves.
 */
#ifndef WARREN_TYPES_H
#define WARREN_TYPES_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

typedef uint64_t wr_tstamp;
/* "No deadline": a core with nothing scheduled returns this. */
#define WR_TSTAMP_NONE UINT64_MAX

/* Byte producers return a length (>= 0) or a negative error code. */
typedef ssize_t wr_ssize;

/*
 * An injectable allocator (ngtcp2_mem).  Cores take a `const wr_mem *`;
 * NULL means libc.  Tests pass a failing allocator to prove that every
 * allocation failure is reported and leaks nothing.
 */
typedef struct wr_mem {
  void *user_data;
  void *(*malloc)(size_t size, void *user_data);
  void (*free)(void *ptr, void *user_data);
  void *(*calloc)(size_t nmemb, size_t size, void *user_data);
  void *(*realloc)(void *ptr, size_t size, void *user_data);
} wr_mem;

/* The libc allocator, used when a core is given NULL. */
const wr_mem *wr_mem_default(void);

void *wr_mem_malloc(const wr_mem *mem, size_t size);
void *wr_mem_calloc(const wr_mem *mem, size_t nmemb, size_t size);
void *wr_mem_realloc(const wr_mem *mem, void *ptr, size_t size);
void wr_mem_free(const wr_mem *mem, void *ptr);

/*
 * A network address as protocol cores see it: no sockaddr, so cores stay
 * free of socket headers.  family is 4 or 6; ip holds 4 or 16 bytes.
 */
typedef struct wr_addr {
  uint8_t family;
  uint8_t ip[16];
  uint16_t port;
} wr_addr;

/* Same family, address and port (only the family's bytes of ip count). */
static inline int wr_addr_eq(const wr_addr *a, const wr_addr *b) {
  if (a->family != b->family || a->port != b->port) return 0;
  size_t n = a->family == 6 ? 16 : 4;
  for (size_t i = 0; i < n; i++)
    if (a->ip[i] != b->ip[i]) return 0;
  return 1;
}

/* Random bytes source injected into cores (libsodium or a seeded PCG). */
typedef void (*wr_rand_fn)(uint8_t *dst, size_t len, void *user_data);

#define WR_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define WR_MIN(a, b) ((a) < (b) ? (a) : (b))
#define WR_MAX(a, b) ((a) > (b) ? (a) : (b))

#endif
