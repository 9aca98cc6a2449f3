/*
 * libcrypto loaded on first use (src/tunnel/evp_lazy.c).
 *
 * Only the record layer needs OpenSSL, and only once a tunnel exists.
 * Linking libcrypto.so.3 costs ~1.4 MiB RSS per process before any call
 * (relocations plus OpenSSL 3's constructors), which a membership-only node
 * cannot afford (issue 4: <= 4 MiB).  So the warren binary does not link it;
 * record.c calls EVP through this table, filled by dlopen on the first
 * wr_record_new.  docs/TUNNEL-CRYPTO.md "Loading libcrypto" has the numbers.
 *
 * The types come from <openssl/evp.h> via __typeof__, so the compiler still
 * checks every call against OpenSSL's own prototypes.
 */
#ifndef WARREN_TUNNEL_EVP_LAZY_H
#define WARREN_TUNNEL_EVP_LAZY_H

#include <openssl/evp.h>

/* The soname we load: OpenSSL 3's ABI, the one the headers describe. */
#define WR_EVP_SONAME "libcrypto.so.3"

typedef struct wr_evp {
  __typeof__(EVP_aes_256_gcm) *aes_256_gcm;
  __typeof__(EVP_chacha20_poly1305) *chacha20_poly1305;
  __typeof__(EVP_CIPHER_CTX_new) *CIPHER_CTX_new;
  __typeof__(EVP_CIPHER_CTX_free) *CIPHER_CTX_free;
  __typeof__(EVP_CIPHER_CTX_ctrl) *CIPHER_CTX_ctrl;
  __typeof__(EVP_CipherInit_ex) *CipherInit_ex;
  __typeof__(EVP_EncryptUpdate) *EncryptUpdate;
  __typeof__(EVP_EncryptFinal_ex) *EncryptFinal_ex;
  __typeof__(EVP_DecryptUpdate) *DecryptUpdate;
  __typeof__(EVP_DecryptFinal_ex) *DecryptFinal_ex;
} wr_evp;

/*
 * Loads WR_EVP_SONAME and resolves the table, once per process (pthread_once,
 * so concurrent first calls are safe).  Returns the table, or NULL when the
 * library or a symbol is missing; the failure is final for the process
 * (installing libssl3 needs a restart) and wr__evp_error() says why.
 */
const wr_evp *wr__evp_get(void);

/* Why wr__evp_get() failed, naming WR_EVP_SONAME; "" when it did not. */
const char *wr__evp_error(void);

#endif
