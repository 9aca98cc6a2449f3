/*
 * Internals shared by the admin core's files (router.c, conn.c).
 */
#ifndef WARREN_ADMIN_INT_H
#define WARREN_ADMIN_INT_H

#include "warren/admin.h"

struct wr_admin_resp {
  const wr_mem *mem;
  int status;
  const char *ctype;
  uint8_t *body;
  size_t len, cap;
  /* Extra header lines the router adds ("Allow: GET, POST\r\n",
   * "WWW-Authenticate: Bearer\r\n", and wr_admin_resp_header's); a
   * bounded array. */
  char extra[512];
  unsigned stream; /* wr_admin_resp_stream's channel, 0 = none */
};

/* The request as the connection parsed it, before routing. */
typedef struct admin_parsed {
  wr_admin_req req;
  const char *auth; /* Authorization value, NUL-terminated, or NULL */
  int auth_bad;     /* duplicate or oversized Authorization header */
} admin_parsed;

void admin_resp_init(wr_admin_resp *resp, const wr_mem *mem);
void admin_resp_free(wr_admin_resp *resp);
void admin_resp_reset(wr_admin_resp *resp);

/*
 * Routes |p| (auth, lookup, handler) and fills |resp|.  Returns 0 or
 * WR_ERR_NOMEM when not even the error response could be built.
 */
int admin_router_dispatch(wr_admin_router *r, const admin_parsed *p,
                          wr_admin_resp *resp);

/* The request body cap (WR_ADMIN_MAX_BODY unless set). */
size_t admin_router_max_body(const wr_admin_router *r);

/* Counts one request rejected before routing (400, 413, 431). */
void admin_router_count_bad(wr_admin_router *r);

/* The reason phrase for |status| ("Not Found"). */
const char *admin_reason(int status);

#endif
