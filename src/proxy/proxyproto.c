/*
 * PROXY protocol v1/v2 parser (see include/warren/proxyproto.h).
 *
 * Need-more versus reject.  The header arrives in pieces like any other
 * bytes, so a short input is only "need more" when every byte so far could
 * still start a valid header: the v1 prefix "PROXY " and its character set
 * are checked as they come, the v2 signature byte by byte, the v2 version,
 * command and family as soon as byte 12 and 13 are there.  A peer that is
 * not speaking PROXY is refused on its first wrong byte instead of being
 * waited for.
 */
#include <arpa/inet.h>
#include <string.h>

#include "warren/buf.h"
#include "warren/crc32c.h"
#include "warren/err.h"
#include "warren/proxyproto.h"

static const uint8_t v2sig[12] = {0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d,
                                  0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a};

/* ---- v1 ---- */

/* Characters that can appear in a v1 line before its CR. */
static int v1_char(uint8_t c) {
  return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') ||
         (c >= 'a' && c <= 'f') || c == ' ' || c == '.' || c == ':';
}

/* Next space-separated field of [*p, end): exactly one space between. */
static int v1_field(const char **p, const char *end, const char **f,
                    size_t *n) {
  const char *s = *p, *q = s;
  while (q < end && *q != ' ') q++;
  if (q == s) return -1;
  *f = s;
  *n = (size_t)(q - s);
  *p = q < end ? q + 1 : q;
  if (q < end && *p == end) return -1; /* trailing space */
  return 0;
}

static int v1_port(const char *f, size_t n, uint16_t *port) {
  if (n == 0 || n > 5 || (n > 1 && f[0] == '0')) return -1;
  uint32_t v = 0;
  for (size_t i = 0; i < n; i++) {
    if (f[i] < '0' || f[i] > '9') return -1;
    v = v * 10 + (uint32_t)(f[i] - '0');
  }
  if (v > 65535) return -1;
  *port = (uint16_t)v;
  return 0;
}

static int v1_addr(const char *f, size_t n, int family, wr_addr *a) {
  char tmp[48];
  if (n == 0 || n >= sizeof(tmp)) return -1;
  memcpy(tmp, f, n);
  tmp[n] = '\0';
  memset(a, 0, sizeof(*a));
  if (family == 4) {
    /* inet_pton takes "1.2.3.4" only, but also "01.2.3.4" on some libcs:
     * leading zeros are refused here (they read as octal elsewhere). */
    for (size_t i = 0; i < n; i++)
      if (tmp[i] == '0' && (i == 0 || tmp[i - 1] == '.') && i + 1 < n &&
          tmp[i + 1] != '.')
        return -1;
    if (inet_pton(AF_INET, tmp, a->ip) != 1) return -1;
  } else {
    if (inet_pton(AF_INET6, tmp, a->ip) != 1) return -1;
  }
  a->family = (uint8_t)family;
  return 0;
}

static wr_ssize parse_v1(const uint8_t *data, size_t len, wr_proxy_info *info) {
  static const char pre[] = "PROXY ";
  size_t scan = WR_MIN(len, (size_t)WR_PROXY_V1_MAX);
  if (memcmp(data, pre, WR_MIN(len, sizeof(pre) - 1)) != 0) return WR_ERR_PROTO;
  const uint8_t *lf = memchr(data, '\n', scan);
  if (!lf) {
    /* Only a CR may end the bytes so far; everything else must be a
     * character of the line. */
    for (size_t i = 0; i < scan; i++)
      if (!v1_char(data[i]) && !(data[i] == '\r' && i == scan - 1))
        return WR_ERR_PROTO;
    return len >= WR_PROXY_V1_MAX ? WR_ERR_PROTO : 0;
  }
  size_t hlen = (size_t)(lf - data) + 1;
  if (hlen < 8 || data[hlen - 2] != '\r') return WR_ERR_PROTO;
  const char *p = (const char *)data + 6, *end = (const char *)data + hlen - 2;
  for (const char *q = p; q < end; q++)
    if (!v1_char((uint8_t)*q)) return WR_ERR_PROTO;
  memset(info, 0, sizeof(*info));
  info->version = 1;
  const char *f;
  size_t n;
  if (end - p >= 7 && memcmp(p, "UNKNOWN", 7) == 0 &&
      (end - p == 7 || p[7] == ' ')) {
    /* The spec: the rest of an UNKNOWN line is ignored. */
    info->local = 1;
    return (wr_ssize)hlen;
  }
  if (v1_field(&p, end, &f, &n) != 0 || n != 4) return WR_ERR_PROTO;
  int family;
  if (memcmp(f, "TCP4", 4) == 0)
    family = 4;
  else if (memcmp(f, "TCP6", 4) == 0)
    family = 6;
  else
    return WR_ERR_PROTO;
  const char *fs, *fd, *fsp, *fdp;
  size_t ns, nd, nsp, ndp;
  if (v1_field(&p, end, &fs, &ns) || v1_field(&p, end, &fd, &nd) ||
      v1_field(&p, end, &fsp, &nsp) || v1_field(&p, end, &fdp, &ndp) ||
      p != end)
    return WR_ERR_PROTO;
  if (v1_addr(fs, ns, family, &info->src) ||
      v1_addr(fd, nd, family, &info->dst) ||
      v1_port(fsp, nsp, &info->src.port) || v1_port(fdp, ndp, &info->dst.port))
    return WR_ERR_PROTO;
  if (!inet_ntop(family == 4 ? AF_INET : AF_INET6, info->src.ip, info->src_str,
                 sizeof(info->src_str)))
    return WR_ERR_PROTO;
  return (wr_ssize)hlen;
}

/* ---- v2 ---- */

/* The spec's TLV type for a CRC-32C of the whole header. */
#define PP2_TYPE_CRC32C 0x03

/*
 * PP2_TYPE_CRC32C: the sender computes the CRC-32C (RFC 4960 Appendix B)
 * of the whole header, TLVs included, with the 4 checksum bytes at |at|
 * set to zero, and stores it in network byte order.  A mismatch means the
 * header was damaged or forged on the way, so its address cannot be
 * trusted: it is refused like any other bad header.  Computed in three
 * pieces, the zeros standing in for the field, so the input stays const.
 */
static int crc_ok(const uint8_t *h, size_t hlen, size_t at) {
  static const uint8_t zero[4] = {0, 0, 0, 0};
  uint32_t c = wr_crc32c(0, h, at);
  c = wr_crc32c(c, zero, 4);
  c = wr_crc32c(c, h + at + 4, hlen - at - 4);
  return c == wr_get_u32(h + at);
}

static wr_ssize parse_v2(const uint8_t *data, size_t len, wr_proxy_info *info) {
  if (memcmp(data, v2sig, WR_MIN(len, sizeof(v2sig))) != 0) return WR_ERR_PROTO;
  if (len > 12) {
    uint8_t vc = data[12];
    if ((vc >> 4) != 2 || (vc & 15) > 1) return WR_ERR_PROTO;
  }
  if (len > 13) {
    uint8_t fam = data[13] >> 4, tr = data[13] & 15;
    /* DGRAM makes no sense in front of an HTTP listener. */
    if (fam > 3 || tr > 1) return WR_ERR_PROTO;
  }
  if (len < 16) return 0;
  size_t body = wr_get_u16(data + 14), hlen = 16 + body;
  if (hlen > WR_PROXY_V2_MAX) return WR_ERR_PROTO;
  if (len < hlen) return 0;

  memset(info, 0, sizeof(*info));
  info->version = 2;
  int cmd = data[12] & 15, fam = data[13] >> 4;
  size_t alen = fam == 1 ? 12 : fam == 2 ? 36 : fam == 3 ? 216 : 0;
  if (body < alen) return WR_ERR_PROTO;
  /* TLVs fill what follows the addresses exactly. */
  wr_rbuf b;
  wr_rbuf_init(&b, data + 16 + alen, body - alen);
  const uint8_t *crc = NULL;
  while (wr_rbuf_left(&b) > 0) {
    uint8_t type;
    uint16_t tl;
    const uint8_t *v;
    if (wr_rbuf_u8(&b, &type) || wr_rbuf_u16(&b, &tl) ||
        wr_rbuf_view(&b, tl, &v))
      return WR_ERR_PROTO;
    if (type == PP2_TYPE_CRC32C) {
      /* One 32-bit checksum; a second one could not be checked (each
       * would be computed with the other set). */
      if (tl != 4 || crc) return WR_ERR_PROTO;
      crc = v;
    }
  }
  if (crc && !crc_ok(data, hlen, (size_t)(crc - data)))
    return WR_ERR_PROTO;
  /* LOCAL (health checks from the LB itself): the spec says to ignore the
   * address block; UNSPEC and UNIX carry no IP to forward. */
  if (cmd == 0 || fam == 0 || fam == 3) {
    info->local = 1;
    return (wr_ssize)hlen;
  }
  const uint8_t *a = data + 16;
  int af = fam == 1 ? AF_INET : AF_INET6;
  size_t ipn = fam == 1 ? 4 : 16;
  info->src.family = info->dst.family = fam == 1 ? 4 : 6;
  memcpy(info->src.ip, a, ipn);
  memcpy(info->dst.ip, a + ipn, ipn);
  info->src.port = wr_get_u16(a + 2 * ipn);
  info->dst.port = wr_get_u16(a + 2 * ipn + 2);
  if (!inet_ntop(af, info->src.ip, info->src_str, sizeof(info->src_str)))
    return WR_ERR_PROTO;
  return (wr_ssize)hlen;
}

wr_ssize wr_proxy_parse(const uint8_t *data, size_t len, wr_proxy_info *info) {
  if (len == 0) return 0;
  if (data[0] == 'P') return parse_v1(data, len, info);
  if (data[0] == 0x0d) return parse_v2(data, len, info);
  return WR_ERR_PROTO;
}
