/*
 * Header fields of both directions: the syntax of Host and the hop-by-hop
 * policy that decides which fields reach the next hop.
 */
#include <string.h>
#include <strings.h>

#include "head_int.h"

/*
 * uri-host [ ":" port ] (RFC 9110 7.2): a reg-name (unreserved,
 * pct-encoded, sub-delims), an IPv4 address, or an IP-literal in
 * brackets.  Sets *hostlen to the part before the port.
 */
int hp_host_valid(const uint8_t *s, size_t n, size_t *hostlen) {
  size_t i = 0;
  if (n == 0) return 0;
  if (s[0] == '[') {
    for (i = 1; i < n && s[i] != ']'; i++) {
      uint8_t c = s[i];
      if (!((c >= '0' && c <= '9') || (lower(c) >= 'a' && lower(c) <= 'f') ||
            c == ':' || c == '.'))
        return 0;
    }
    if (i >= n || i == 1) return 0;
    i++;
  } else {
    for (; i < n && s[i] != ':'; i++) {
      uint8_t c = s[i];
      if (!((c >= '0' && c <= '9') || (lower(c) >= 'a' && lower(c) <= 'z') ||
            strchr("-._~!$&'()*+,;=%", c)))
        return 0;
    }
    if (i == 0) return 0;
  }
  *hostlen = i;
  if (i == n) return 1;
  if (s[i] != ':' || n - i - 1 > 5) return 0;
  for (size_t j = i + 1; j < n; j++)
    if (s[j] < '0' || s[j] > '9') return 0;
  return 1;
}

/* ---- hop-by-hop policy (both directions) ---------------------------------
 *
 * RFC 9110 7.6.1: a proxy removes Connection, every field that Connection
 * names, and the fields that are hop-by-hop by definition (Keep-Alive,
 * Proxy-Connection, TE, Transfer-Encoding, Upgrade), then sets its own
 * connection semantics for the next hop.  Requests and responses share the
 * same three pieces: classify() sorts field names, conn_parse() collects
 * the Connection options, hp_put_fields() writes what survives.  Framing
 * fields (Content-Length, Transfer-Encoding) are never dropped, even when
 * Connection names them: the body passes through with its framing as is,
 * so its header must pass too, or the two hops would frame it differently.
 */

static int conn_parse(conn_opts *c, const uint8_t *v, size_t n) {
  size_t i = 0;
  while (i < n) {
    size_t j = i;
    while (j < n && v[j] != ',') j++;
    const uint8_t *t = v + i;
    size_t tn = j - i;
    trim(&t, &tn);
    if (tn) {
      if (c->count == MAX_CONN_TOKENS) return -1;
      c->p[c->count] = t;
      c->n[c->count++] = tn;
    }
    i = j + 1;
  }
  return 0;
}

static int conn_lists(const conn_opts *c, const uint8_t *name, size_t n) {
  for (size_t i = 0; i < c->count; i++)
    if (c->n[i] == n &&
        strncasecmp((const char *)c->p[i], (const char *)name, n) == 0)
      return 1;
  return 0;
}

/*
 * Sorts a field by name.  Lengths first: most names match nothing.  The
 * names warren itself sets or reads on requests (Host, X-Forwarded-*,
 * X-Request-Id, Expect, the httpoxy "Proxy" and every Proxy-* field) only
 * count on requests; a response keeps them, and of the Proxy-* fields
 * drops only Proxy-Connection (Proxy-Authenticate of a 407 is the origin's
 * business, as Authorization is on requests).
 */
static int classify(const uint8_t *nm, size_t n, int is_req) {
  switch (n) {
  case 2:
    if (IEQ(nm, n, "te")) return K_DROP;
    break;
  case 4:
    if (is_req && IEQ(nm, n, "host")) return K_HOST;
    break;
  case 5:
    /* RFC 9110 18.4 reserves "Close" as a field name: next to the
     * Connection: close we add, a field of that name would read as one
     * the connection option names (found by the http_head fuzzer). */
    if (IEQ(nm, n, "close")) return K_DROP;
    if (is_req && IEQ(nm, n, "proxy")) return K_DROP; /* httpoxy */
    break;
  case 6:
    if (is_req && IEQ(nm, n, "expect")) return K_EXPECT;
    break;
  case 7:
    if (IEQ(nm, n, "trailer")) return K_TRAILER;
    if (IEQ(nm, n, "upgrade")) return K_UPGRADE;
    break;
  case 10:
    if (IEQ(nm, n, "connection")) return K_CONN;
    if (IEQ(nm, n, "keep-alive")) return K_DROP;
    break;
  case 12:
    if (is_req && IEQ(nm, n, "x-request-id")) return K_RID;
    break;
  case 14:
    if (IEQ(nm, n, "content-length")) return K_CL;
    break;
  case 15:
    if (is_req && IEQ(nm, n, "x-forwarded-for")) return K_XFF;
    break;
  case 16:
    if (IEQ(nm, n, "proxy-connection")) return K_DROP;
    if (is_req && IEQ(nm, n, "x-forwarded-host")) return K_DROP;
    break;
  case 17:
    if (IEQ(nm, n, "transfer-encoding")) return K_TE;
    if (is_req && IEQ(nm, n, "x-forwarded-proto")) return K_DROP;
    break;
  }
  /* Proxy-Authorization, ...: addressed to a proxy. */
  if (is_req && n > 6 && ieq_n(nm, 6, "proxy-", 6))
    return K_DROP;
  return K_KEEP;
}

/*
 * Trims field |i|'s value in place, classifies it and, for Connection,
 * collects its options.  Returns the kind, or -1 when the Connection
 * options are more than MAX_CONN_TOKENS.
 */
int hp_scan_field(hp *e, size_t i, conn_opts *co) {
  field *f = &e->f[i];
  const uint8_t *v = e->head + f->val_off;
  size_t vn = f->val_len;
  trim(&v, &vn);
  f->val_off = (uint32_t)(v - e->head);
  f->val_len = (uint32_t)vn;
  f->kind = (uint8_t)classify(e->head + f->name_off, f->name_len, e->is_req);
  if (f->kind == K_CONN && conn_parse(co, v, vn) != 0) return -1;
  return f->kind;
}

/*
 * Writes the fields of |e| that go to the next hop, in their order, as
 * "Name: value" (|w| must have room for head_len + 3 per field).  K_DROP
 * never passes, K_XFF neither (the request policy writes its own joined
 * X-Forwarded-For); K_CONN, K_UPGRADE, K_TRAILER and Host pass per
 * |flags|; framing always passes; any other field passes unless a
 * Connection option names it.
 */
void hp_put_fields(uint8_t **w, const hp *e, const conn_opts *co, int flags) {
  const uint8_t *hd = e->head;
  for (size_t i = 0; i < e->nf; i++) {
    const field *f = &e->f[i];
    const uint8_t *nm = hd + f->name_off;
    switch (f->kind) {
    case K_DROP:
    case K_XFF:
      continue;
    case K_CONN:
      if (!(flags & KEEP_CONN)) continue;
      break;
    case K_HOST:
      if (flags & DROP_HOST) continue;
      break;
    case K_UPGRADE:
      if (!(flags & KEEP_UPGRADE)) continue;
      break;
    case K_TE:
    case K_CL:
      break; /* framing: never stripped, even when Connection names it */
    case K_TRAILER:
      if (!(flags & KEEP_TRAILER)) continue;
      if (conn_lists(co, nm, f->name_len)) continue;
      break;
    default:
      if (conn_lists(co, nm, f->name_len)) continue;
    }
    put(w, nm, f->name_len);
    put(w, ": ", 2);
    put(w, hd + f->val_off, f->val_len);
    put(w, "\r\n", 2);
  }
}
