/*
 * Sealed records: the tunnel's bulk encryption layer (src/tunnel/record.c).
 *
 * After the Noise handshake each direction of a link has its own 32-byte
 * key.  A record carries at most WR_RECORD_MAX_PLAINTEXT bytes:
 *
 *   u16 ciphertext_len (big-endian, = plaintext_len + 16) | ciphertext | tag
 *
 * The length header is the AEAD's associated data.  The 96-bit nonce is an
 * implicit per-direction counter (4 zero bytes | u64 big-endian record
 * number; never sent, never reused).  Both sides
 * rekey deterministically (key' = BLAKE2b(key, "warren rekey")) every
 * WR_RECORD_REKEY_INTERVAL records, long before the counter could wrap, so
 * no message is needed to rekey.
 *
 * The AEAD is AES-256-GCM where the CPU has AES-NI, else ChaCha20-Poly1305,
 * both through OpenSSL libcrypto's EVP interface (DESIGN.md "The tunnel
 * link" has the measurements); the handshake chooses one per link.
 * libcrypto.so.3 is loaded with dlopen by the first wr_record_new, not
 * linked, so processes that never open a tunnel do not carry it
 * (docs/TUNNEL-CRYPTO.md "Loading libcrypto").
 */
#ifndef WARREN_RECORD_H
#define WARREN_RECORD_H

#include <sys/uio.h>

#include "warren/types.h"

#define WR_RECORD_MAX_PLAINTEXT 16384
#define WR_RECORD_TAG_LEN 16
#define WR_RECORD_HEADER_LEN 2
#define WR_RECORD_OVERHEAD (WR_RECORD_HEADER_LEN + WR_RECORD_TAG_LEN)
#define WR_RECORD_MAX_WIRE (WR_RECORD_MAX_PLAINTEXT + WR_RECORD_OVERHEAD)
#define WR_RECORD_REKEY_INTERVAL (1ULL << 32)

typedef enum wr_aead {
  WR_AEAD_AES256GCM = 1,
  WR_AEAD_CHACHA20POLY1305 = 2,
} wr_aead;

/*
 * AES-256-GCM when this CPU has AES-NI (and PCLMULQDQ), else ChaCha.  The
 * environment variable WARREN_AEAD=aes|chacha overrides the CPU check (for
 * tests and benchmarks).
 */
wr_aead wr_aead_preferred(void);
const char *wr_aead_name(wr_aead alg);

/* One direction of a link: a sealer or an opener. */
typedef struct wr_record wr_record;

/*
 * Creates a record state for |alg| with |key| (32 bytes, copied).  The
 * first call in a process loads libcrypto.so.3.  Returns 0, WR_ERR_INVAL
 * (unknown alg), WR_ERR_IO (libcrypto.so.3 could not be loaded, now or on
 * an earlier call; wr_record_crypto_error() says why) or WR_ERR_NOMEM.
 */
int wr_record_new(wr_record **prec, wr_aead alg, const uint8_t key[32],
                  const wr_mem *mem);
/*
 * Why wr_record_new returned WR_ERR_IO, naming libcrypto.so.3 (for a log
 * line); "" when libcrypto loaded or was not needed yet.
 */
const char *wr_record_crypto_error(void);

/* Wipes the key and frees.  NULL is ignored. */
void wr_record_del(wr_record *rec);

/*
 * Seals |len| (<= WR_RECORD_MAX_PLAINTEXT) bytes of |pt| into |dst| as one
 * record.  |dst| and |pt| may not overlap.  Returns the record's length
 * (len + WR_RECORD_OVERHEAD), WR_ERR_TOOBIG, WR_ERR_NOBUF (cap too small)
 * or WR_ERR_INTERNAL (libcrypto failed; the link must close).
 */
wr_ssize wr_record_seal(wr_record *rec, uint8_t *dst, size_t cap,
                        const uint8_t *pt, size_t len);

/*
 * wr_record_seal for plaintext in |n| pieces (their total is the record's
 * plaintext), read in order: the record is the same as sealing their
 * concatenation.  No piece may overlap |dst|.  Same returns.
 */
wr_ssize wr_record_seal_v(wr_record *rec, uint8_t *dst, size_t cap,
                          const struct iovec *pt, size_t n);

/*
 * Opens the first record in |buf|, decrypting in place.  Returns the
 * number of bytes consumed (> 0) and sets *ppt / *pptlen to the plaintext
 * inside |buf| (valid until |buf| changes); returns 0 when |buf| does not
 * yet hold a whole record (read more); WR_ERR_PROTO for a length header
 * out of range; WR_ERR_DECRYPT when the tag does not verify.  After any
 * error the link must be closed: the counter is out of step.
 */
wr_ssize wr_record_open(wr_record *rec, uint8_t *buf, size_t len,
                        const uint8_t **ppt, size_t *pptlen);

/*
 * Whether |buf| starts with a whole record: returns its wire length and
 * sets *pptlen to its plaintext length, 0 when more bytes are needed, or
 * WR_ERR_PROTO for a length header out of range.  Nothing is decrypted.
 */
wr_ssize wr_record_peek(const uint8_t *buf, size_t len, size_t *pptlen);

/*
 * wr_record_open, but decrypting out of place into the |n| pieces of
 * |dst| in order (their total must hold the plaintext: WR_ERR_NOBUF
 * otherwise); |buf| is not changed.  Lets the link decrypt a record's
 * payload straight into the buffer the application will write out.  On
 * WR_ERR_DECRYPT the pieces are zeroed.  Same returns as wr_record_open.
 */
wr_ssize wr_record_open_v(wr_record *rec, const uint8_t *buf, size_t len,
                          const struct iovec *dst, size_t n, size_t *pptlen);

/* Records sealed or opened so far (the current nonce counter). */
uint64_t wr_record_count(const wr_record *rec);

/*
 * Testing only: rekey every |interval| records instead of
 * WR_RECORD_REKEY_INTERVAL (0 restores the default), so tests can cross a
 * rekey.  Both directions of a link must use the same interval; call it
 * before the first record.
 */
void wr__record_set_rekey_interval(wr_record *rec, uint64_t interval);

#endif
