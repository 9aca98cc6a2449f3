/*
 * CRC-32C (Castagnoli): the checksum of iSCSI, SCTP (RFC 4960 Appendix
 * B), ext4 metadata and the PROXY protocol v2 PP2_TYPE_CRC32C TLV.
 * Reflected polynomial 0x82F63B78, initial value and final XOR all ones;
 * the check value (CRC of the nine bytes "123456789") is 0xE3069283.
 */
#ifndef WARREN_CRC32C_H
#define WARREN_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/*
 * Continues |crc| (0 to start) over |len| bytes at |p| and returns the
 * CRC of everything so far: wr_crc32c(wr_crc32c(0, a, n), b, m) is the
 * CRC of a followed by b.  |p| may be NULL when |len| is 0.
 */
uint32_t wr_crc32c(uint32_t crc, const uint8_t *p, size_t len);

#endif
