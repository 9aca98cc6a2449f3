/*
 * The tunnel client reaching a node (client_int.h): the node list (given
 * addresses, and names resolved one at a time into pick.c's list), the
 * TCP connect of a slot's attempt, and the `Upgrade: warren/1` exchange
 * that turns the socket into a link.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client_int.h"
#include "warren/err.h"
#include "warren/log.h"

/* ---- connecting and upgrading ---- */

/* A slot's socket before its link took it: closed, then freed.  The
 * client waits for these (ntcp_closing): libuv runs the socket's pending
 * connect and write callbacks (UV_ECANCELED) before this one, and those
 * read the slot. */
void tcp_closed_free(uv_handle_t *h) {
  wr_client *c = h->data;
  free(h);
  c->ntcp_closing--;
  maybe_finish_stop(c);
}

void abort_attempt(slot *s, const char *why) {
  wr_client *c = s->c;
  if (s->tcp) {
    s->tcp->data = c;
    c->ntcp_closing++;
    uv_close((uv_handle_t *)s->tcp, tcp_closed_free);
    s->tcp = NULL;
  }
  s->state = SL_IDLE;
  if (c->stopping) return;
  WR_LOG_WARNF("client", "connect_failed", "node=%s err=\"%s\"", s->addr, why);
  wr_pick_done(&c->pick, s->addr, WR_PICK_FAILED, uv_now(c->loop));
  s->addr[0] = 0;
  c->resolve_stale = 1;
  slot_next(s, 1);
}

static void up_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf) {
  (void)hint;
  slot *s = h->data;
  *buf = uv_buf_init((char *)s->head + s->headlen,
                     (unsigned)(UPGRADE_HEAD_MAX - s->headlen));
}

static void up_read(uv_stream_t *st, ssize_t n, const uv_buf_t *buf) {
  (void)buf;
  slot *s = st->data;
  wr_client *c = s->c;
  if (n < 0) {
    abort_attempt(s, n == UV_EOF ? "connection closed during upgrade"
                                 : uv_strerror((int)n));
    return;
  }
  s->headlen += (size_t)n;
  uint8_t *end = memmem(s->head, s->headlen, "\r\n\r\n", 4);
  if (!end) {
    if (s->headlen >= UPGRADE_HEAD_MAX)
      abort_attempt(s, "oversized answer to the upgrade request");
    return;
  }
  uv_read_stop(st);
  size_t hlen = (size_t)(end + 4 - s->head);
  if (s->headlen < 12 || memcmp(s->head, "HTTP/1.1 101", 12) != 0) {
    char status[64];
    size_t sl = 0;
    while (sl < s->headlen && sl < sizeof status - 1 && s->head[sl] != '\r') {
      /* The peer's bytes go into a key="value" log line: no quote,
       * backslash or control character may end or split it. */
      uint8_t ch = s->head[sl];
      status[sl] =
          ch < 0x20 || ch > 0x7e || ch == '"' || ch == '\\' ? '?' : (char)ch;
      sl++;
    }
    status[sl] = 0;
    char why[160];
    snprintf(why, sizeof why, "not a warren node (it answered '%s')", status);
    abort_attempt(s, why);
    return;
  }
  wr_link_config lc;
  memset(&lc, 0, sizeof lc);
  lc.initiator = 1;
  memcpy(lc.fleet_key, c->cfg.fleet_pub, 32);
  lc.peer = s->addr;
  uv_tcp_t *tcp = s->tcp;
  int rv = wr_link_start(&s->link, c->loop, tcp, &lc, &client_link_cb, s,
                         s->head + hlen, s->headlen - hlen);
  if (rv != 0) {
    abort_attempt(s, wr_strerror(rv));
    return;
  }
  s->tcp = NULL; /* the link owns it now */
  s->state = SL_LINKED;
}

static void up_written(uv_write_t *req, int status) {
  slot *s = req->data;
  free(req);
  if (status < 0 && s->tcp && status != UV_ECANCELED)
    abort_attempt(s, uv_strerror(status));
}

static void on_connect(uv_connect_t *req, int status) {
  slot *s = req->data;
  if (s->c->stopping) return;
  if (status < 0) {
    abort_attempt(s, uv_strerror(status));
    return;
  }
  s->state = SL_UPGRADING;
  s->headlen = 0;
  int n = snprintf(s->upreq, sizeof s->upreq,
                   "GET /_warren/tunnel HTTP/1.1\r\nHost: %s\r\n"
                   "Connection: Upgrade\r\nUpgrade: warren/1\r\n"
                   "User-Agent: warren/%s\r\n\r\n",
                   s->addr, WARREN_VERSION);
  uv_write_t *w = malloc(sizeof *w);
  if (!w) {
    abort_attempt(s, "out of memory");
    return;
  }
  w->data = s;
  uv_buf_t b = uv_buf_init(s->upreq, (unsigned)n);
  int rv = uv_write(w, (uv_stream_t *)s->tcp, &b, 1, up_written);
  if (rv == 0)
    rv = uv_read_start((uv_stream_t *)s->tcp, up_alloc, up_read);
  else
    free(w);
  if (rv != 0) abort_attempt(s, uv_strerror(rv));
}

void try_connect(slot *s) {
  wr_client *c = s->c;
  struct sockaddr_storage ss;
  if (wr_parse_hostport(s->addr, &ss) != 0) {
    /* Addresses come from the command line (checked there) or from
     * getaddrinfo: this is our bug, not the user's. */
    abort_attempt(s, "bad node address");
    return;
  }
  s->tcp = malloc(sizeof *s->tcp);
  if (!s->tcp) {
    abort_attempt(s, "out of memory");
    return;
  }
  uv_tcp_init(c->loop, s->tcp);
  s->tcp->data = s;
  s->creq.data = s;
  s->state = SL_CONNECTING;
  WR_LOG_DEBUGF("client", "connecting", "node=%s slot=%d", s->addr, s->id);
  int rv = uv_tcp_connect(&s->creq, s->tcp, (struct sockaddr *)&ss, on_connect);
  if (rv != 0) abort_attempt(s, uv_strerror(rv));
}

/* ---- the node list ---- */

static void resolve_next(wr_client *c);

/* The candidate list: the addresses given plus the last answers. */
void pick_refresh(wr_client *c) {
  const char *all[WR_PICK_MAX];
  size_t n = 0;
  for (size_t i = 0; i < c->nlit && n < WR_PICK_MAX; i++) all[n++] = c->lit[i];
  for (size_t i = 0; i < c->nfound && n < WR_PICK_MAX; i++)
    all[n++] = c->found[i];
  if (wr_pick_set(&c->pick, all, n) != 0)
    WR_LOG_WARNF("client", "node_list", "err=\"more than %d nodes\"",
                 WR_PICK_MAX);
}

static void on_resolved(uv_getaddrinfo_t *req, int status,
                        struct addrinfo *res) {
  wr_client *c = req->data;
  if (status == 0) {
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
      char ip[48], addr[WR_PICK_ADDR_MAX];
      uint16_t port;
      if (ai->ai_family == AF_INET) {
        struct sockaddr_in *sa = (struct sockaddr_in *)ai->ai_addr;
        uv_ip4_name(sa, ip, sizeof ip);
        port = ntohs(sa->sin_port);
        snprintf(addr, sizeof addr, "%s:%u", ip, port);
      } else if (ai->ai_family == AF_INET6) {
        struct sockaddr_in6 *sa = (struct sockaddr_in6 *)ai->ai_addr;
        uv_ip6_name(sa, ip, sizeof ip);
        port = ntohs(sa->sin6_port);
        snprintf(addr, sizeof addr, "[%s]:%u", ip, port);
      } else {
        continue;
      }
      int dup = 0;
      for (size_t i = 0; i < c->nfound && !dup; i++)
        dup = strcmp(c->found[i], addr) == 0;
      if (!dup && c->nfound < WR_PICK_MAX)
        memcpy(c->found[c->nfound++], addr, sizeof addr);
    }
  } else if (status != UV_ECANCELED) {
    /* Retried every second or so while it fails: one line per outage. */
    if (!(c->resolve_failing & (1u << c->resolve_idx)))
      WR_LOG_WARNF("client", "resolve_failed", "node=%s err=\"%s\"",
                   c->names[c->resolve_idx], uv_strerror(status));
    c->resolve_failing |= 1u << c->resolve_idx;
  }
  if (status == 0) c->resolve_failing &= ~(1u << c->resolve_idx);
  uv_freeaddrinfo(res);
  c->resolving = 0;
  if (c->stopping) {
    maybe_finish_stop(c);
    return;
  }
  c->resolve_idx++;
  resolve_next(c);
}

/* Resolves c->names[resolve_idx..] one at a time; at the end, the list
 * is replaced by what was found (kept as it was when nothing was) and
 * the slots that waited for it go on. */
static void resolve_next(wr_client *c) {
  while (c->resolve_idx < c->nnames) {
    char host[WR_PICK_ADDR_MAX + 200];
    snprintf(host, sizeof host, "%s", c->names[c->resolve_idx]);
    char *colon = strrchr(host, ':');
    if (!colon) {
      c->resolve_idx++;
      continue;
    }
    *colon = 0;
    struct addrinfo hints;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    c->gai.data = c;
    if (uv_getaddrinfo(c->loop, &c->gai, on_resolved, host, colon + 1,
                       &hints) == 0) {
      c->resolving = 1;
      return;
    }
    c->resolve_idx++;
  }
  /* Done: a lookup that found nothing keeps the list we had. */
  if (c->nfound > 0) {
    pick_refresh(c);
    c->resolve_stale = 0;
  }
  WR_LOG_DEBUGF("client", "resolved", "nodes=%zu", c->pick.n);
  for (int i = 0; i < c->nslots; i++)
    if (c->slots[i].state == SL_RESOLVING) slot_next(&c->slots[i], 0);
}

void resolve_start(wr_client *c) {
  if (c->resolving || c->stopping) return;
  c->resolved_at = uv_now(c->loop);
  c->resolve_idx = 0;
  c->nfound = 0;
  resolve_next(c);
}
