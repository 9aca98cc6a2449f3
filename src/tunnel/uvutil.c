/*
 * Small libuv helpers the adapters share (declared in warren/link.h): the
 * wall clock, libsodium as a wr_rand_fn, TCP tuning, writes that try the
 * socket first, and host:port parsing.
 */
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include <sodium.h>

#include "warren/err.h"
#include "warren/link.h"

uint64_t wr_wall_ms(void) {
  struct timeval tv;
  gettimeofday(&tv, NULL);
  return (uint64_t)tv.tv_sec * 1000 + (uint64_t)tv.tv_usec / 1000;
}

void wr_sodium_rand(uint8_t *dst, size_t len, void *ud) {
  (void)ud;
  randombytes_buf(dst, len);
}

void wr_tcp_tune(uv_tcp_t *tcp) {
  /* Nagle would hold small responses for the peer's delayed ACK: that is
   * why `ssh -N -R` manages only ~5k req/s (DESIGN.md). */
  uv_tcp_nodelay(tcp, 1);
  uv_tcp_keepalive(tcp, 1, 60);
}

int wr_uv_try_write_all(uv_stream_t *s, uv_buf_t **pbufs, unsigned *pn) {
  /* UV_EAGAIN when writes are queued: order is kept.  Any other error is
   * left to uv_write, so it is reported the usual way. */
  uv_buf_t *bufs = *pbufs;
  unsigned n = *pn;
  int w = uv_try_write(s, bufs, n);
  if (w > 0) {
    size_t left = (size_t)w;
    while (n > 0 && left >= bufs[0].len) {
      left -= bufs[0].len;
      bufs++;
      n--;
    }
    if (n == 0) return 1;
    bufs[0].base += left;
    bufs[0].len -= left;
  }
  *pbufs = bufs;
  *pn = n;
  return 0;
}

int wr_uv_write_now(uv_write_t *req, uv_stream_t *s, uv_buf_t *bufs,
                    unsigned n, uv_write_cb cb) {
  if (wr_uv_try_write_all(s, &bufs, &n)) return 1;
  int rv = uv_write(req, s, bufs, n, cb);
  return rv < 0 ? rv : 0;
}

int wr_parse_hostport(const char *s, struct sockaddr_storage *ss) {
  char host[256];
  const char *colon;
  memset(ss, 0, sizeof *ss);
  if (!s || !*s) return WR_ERR_INVAL;
  if (s[0] == '[') {
    const char *end = strchr(s, ']');
    if (!end || end[1] != ':') return WR_ERR_INVAL;
    size_t n = (size_t)(end - s - 1);
    if (n >= sizeof host) return WR_ERR_INVAL;
    memcpy(host, s + 1, n);
    host[n] = 0;
    colon = end + 1;
  } else {
    colon = strrchr(s, ':');
    if (!colon) return WR_ERR_INVAL;
    size_t n = (size_t)(colon - s);
    if (n == 0 || n >= sizeof host) return WR_ERR_INVAL;
    memcpy(host, s, n);
    host[n] = 0;
  }
  char *endp;
  long port = strtol(colon + 1, &endp, 10);
  if (*endp || port < 0 || port > 65535 || colon[1] == 0) return WR_ERR_INVAL;
  if (strcmp(host, "localhost") == 0) strcpy(host, "127.0.0.1");
  if (uv_ip4_addr(host, (int)port, (struct sockaddr_in *)ss) == 0) return 0;
  if (uv_ip6_addr(host, (int)port, (struct sockaddr_in6 *)ss) == 0) return 0;
  return WR_ERR_INVAL;
}

