/*
 * PROXY protocol v1 and v2 (HAProxy's spec, "The PROXY protocol", versions
 * 1 and 2), sans-IO: the ingress hands over the first bytes of a
 * connection accepted from a configured load balancer; the parser says
 * how long the PROXY header is and who the real client is.
 *
 *   v1: "PROXY TCP4 1.2.3.4 5.6.7.8 111 222\r\n" (at most 107 bytes),
 *       "PROXY TCP6 ...", or "PROXY UNKNOWN[ anything]\r\n".
 *   v2: the 12-byte signature \r\n\r\n\0\r\nQUIT\n, version/command byte
 *       (0x20 LOCAL, 0x21 PROXY), family/transport byte, 16-bit length,
 *       then the addresses and TLVs.  TLVs are checked for structure and
 *       skipped; a PP2_TYPE_CRC32C TLV (0x03, 4 bytes, at most one) must
 *       hold the CRC-32C of the whole header computed with it zeroed.
 *
 * Strict: single spaces, dotted-quad IPv4 without leading zeros, ports
 * 0..65535 without leading zeros, the family matching the addresses,
 * CRLF.  Anything else is WR_ERR_PROTO: the caller closes the connection
 * (a connection from an LB that does not start with a PROXY header is
 * refused the same way, as HAProxy's accept-proxy does).
 */
#ifndef WARREN_PROXYPROTO_H
#define WARREN_PROXYPROTO_H

#include "warren/types.h"

/* Longest v1 header, CRLF included (the spec's 107). */
#define WR_PROXY_V1_MAX 107
/* Longest v2 header accepted: 16-byte fixed part plus up to 2032 bytes of
 * addresses and TLVs.  The spec allows 65535; LBs send far less (AWS NLB
 * and GCP add an id TLV of a few dozen bytes), and the cap bounds what
 * the ingress buffers before it knows who the client is. */
#define WR_PROXY_V2_MAX 2048

typedef struct wr_proxy_info {
  int version;      /* 1 or 2 */
  int local;        /* 1: no client address (v1 UNKNOWN, v2 LOCAL, v2
                       UNSPEC or UNIX family): keep the socket's peer */
  wr_addr src;      /* the client, when !local */
  wr_addr dst;      /* the address the client connected to */
  char src_str[48]; /* src as text ("192.0.2.1", "2001:db8::1"), for
                       X-Forwarded-For; "" when local */
} wr_proxy_info;

/*
 * Parses a PROXY header at the start of |data|.  Returns the header's
 * length (> 0; the HTTP stream starts right after it) and fills |info|;
 * 0 when more bytes are needed (every byte so far is consistent with a
 * header); WR_ERR_PROTO when the bytes are not a valid PROXY header, or
 * it would be longer than WR_PROXY_V2_MAX.
 */
wr_ssize wr_proxy_parse(const uint8_t *data, size_t len, wr_proxy_info *info);

#endif
