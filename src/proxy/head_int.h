/*
 * Internal to the HTTP head parser, shared by its four files and nothing
 * else (include/warren/http.h is the API):
 *
 *   head_engine.c  the llhttp engine both directions share: spans, the
 *                  checks where llhttp is lenient, head buffering, body
 *                  framing, the states after a head
 *   head_fields.c  header fields: Host syntax and the hop-by-hop policy
 *                  (classify, Connection options, what passes)
 *   head.c         the request direction: validation and the rewritten
 *                  head (X-Forwarded-*, X-Request-Id)
 *   head_resp.c    the response direction: which response is owed and
 *                  the visitor's connection semantics
 */
#ifndef WR_PROXY_HEAD_INT_H
#define WR_PROXY_HEAD_INT_H

#include <stdint.h>
#include <string.h>

#include <llhttp.h>

#include "warren/err.h"
#include "warren/http.h"

/* Distinct options in Connection headers ("close, upgrade" is two). */
#define MAX_CONN_TOKENS 16
/* After a head larger than this the buffers are freed again, so one big
 * head does not pin 32 KiB per idle keep-alive connection. */
#define KEEP_BUF 8192

enum { ST_HEAD, ST_BODY, ST_END, ST_UPGRADE, ST_RAW, ST_CLOSED, ST_DEAD };

/* What the request policy does with a field (decided once per head). */
enum {
  K_KEEP, /* forwarded as is */
  K_DROP, /* hop-by-hop or replaced by ours */
  K_HOST,
  K_CONN,
  K_TE,
  K_UPGRADE, /* kept only when the request upgrades */
  K_XFF,     /* folded into our X-Forwarded-For */
  K_RID,     /* X-Request-Id */
  K_EXPECT,
  K_CL,      /* Content-Length: framing, always kept */
  K_TRAILER, /* kept only on a chunked response, whose trailers pass */
};

typedef struct field {
  uint32_t name_off, name_len, val_off, val_len;
  uint8_t kind;
} field;

#define BAD_NAME_WS 1
#define BAD_LINE_END 2
#define BAD_TOO_MANY 4
#define BAD_FOLD 8
#define BAD_TRAILER_FOLD 16

/* The engine shared by both directions. */
typedef struct hp {
  llhttp_t p;
  const wr_mem *mem;
  size_t max_head;
  int is_req;
  int state;

  /* Offsets: a span at |at| is at exec_off + (at - exec_base). */
  const uint8_t *exec_base;
  size_t exec_off;

  /* The current head. */
  int in_head;
  size_t head_len;     /* head bytes consumed so far */
  const uint8_t *head; /* complete head (input or raw) */
  uint8_t *raw;        /* partial head copied across reads */
  size_t raw_cap;

  field *f; /* the head's fields (offsets into head) */
  size_t nf, f_cap;
  int in_field, in_value;
  size_t field_len, val_off, val_len;
  size_t url_off, url_len;
  int url_started;
  size_t ver_end;
  int ver_seen;

  /* The current body. */
  size_t body_off;
  uint8_t tail[4]; /* last 4 bytes of the message so far */
  int chunked;

  /* Trailers of a chunked body: scanned for obs-fold from the first
   * trailer field on (trail_at: where it starts in this feed). */
  int trailers, trail_lf;
  const uint8_t *trail_at;

  int bad; /* BAD_* seen inside spans, reported at the next _complete */
  int headers_done, msg_done;
  int err_status;
  const char *err_reason;
  int nomem;
} hp;

/* The Connection options of a head, as spans of the head. */
typedef struct conn_opts {
  const uint8_t *p[MAX_CONN_TOKENS];
  size_t n[MAX_CONN_TOKENS];
  size_t count;
} conn_opts;

#define KEEP_UPGRADE 1 /* Upgrade passes (an upgrade request; 101, 426) */
#define KEEP_CONN 2    /* Connection passes (101: it says "upgrade") */
#define KEEP_TRAILER 4 /* Trailer passes (a chunked response) */
#define DROP_HOST 8    /* Host is replaced (absolute-form request) */

/*
 * Both directions move through the same states (head, body, end, upgrade,
 * raw); only the policy applied to a complete head, how an error is
 * reported and what follows the end of a message differ, and |d| supplies
 * those.
 */
typedef struct hp_dir {
  /* The head is complete: apply the policy and fill the HEAD event.
   * 0, or < 0 (NOMEM, INTERNAL); bad input sets e->err_status. */
  int (*head_done)(void *h, wr_http_ev *ev);
  wr_ssize (*error)(void *h, wr_http_ev *ev, size_t len);
  void (*after_end)(void *h, wr_http_ev *ev);
} hp_dir;

/* ---- small string and output helpers (inline: they run per byte or
 * per field of every head) ---- */

static inline uint8_t lower(uint8_t c) {
  return (c >= 'A' && c <= 'Z') ? (uint8_t)(c + 32) : c;
}

/* |a| (|n| bytes) equals the lower-case literal |lit| of |m| bytes, in
 * any case.  Inline, with the length known at the call (IEQ): classify()
 * runs it for several fields of every head, and strlen plus a
 * strncasecmp call cost ~120 instructions a comparison. */
static inline int ieq_n(const uint8_t *a, size_t n, const char *lit,
                        size_t m) {
  if (n != m) return 0;
  for (size_t i = 0; i < m; i++)
    if (lower(a[i]) != (uint8_t)lit[i]) return 0;
  return 1;
}
#define IEQ(a, n, lit) ieq_n((a), (n), "" lit, sizeof(lit) - 1)

static inline int is_ows(uint8_t c) { return c == ' ' || c == '\t'; }

static inline void trim(const uint8_t **p, size_t *n) {
  while (*n && is_ows((*p)[0])) (*p)++, (*n)--;
  while (*n && is_ows((*p)[*n - 1])) (*n)--;
}

static inline void put(uint8_t **w, const void *p, size_t n) {
  memcpy(*w, p, n);
  *w += n;
}
static inline void puts_(uint8_t **w, const char *s) { put(w, s, strlen(s)); }

/* ---- head_engine.c ---- */

/* Records the first refusal (|status|, |reason|: a static string) and
 * returns HPE_USER, which stops llhttp when returned from a callback. */
int hp_fail(hp *e, int status, const char *reason);
int hp_init(hp *e, llhttp_type_t type, size_t max_head, const wr_mem *mem);
void hp_free(hp *e);
/* Back to HEAD for the next message: llhttp reset, the head forgotten. */
void hp_msg_reset(hp *e);
/* After a head: BODY when one follows (llhttp resumed past the head),
 * else END. */
void hp_after_head(hp *e, int body);
/* One wr_http_*_feed call of direction |d| (|h| its parser). */
wr_ssize hp_feed(hp *e, const hp_dir *d, void *h, const uint8_t *data,
                 size_t len, wr_http_ev *ev);

/* ---- head_fields.c ---- */

int hp_host_valid(const uint8_t *s, size_t n, size_t *hostlen);
int hp_scan_field(hp *e, size_t i, conn_opts *co);
void hp_put_fields(uint8_t **w, const hp *e, const conn_opts *co, int flags);

#endif /* WR_PROXY_HEAD_INT_H */
