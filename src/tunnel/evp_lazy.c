/*
 * libcrypto loaded on first use: see evp_lazy.h for why.
 *
 * RTLD_NOW resolves all of libcrypto's own symbols at load, so a broken
 * install fails here, once, with a message, rather than in the middle of a
 * record.  RTLD_LOCAL keeps libcrypto's symbols out of the global namespace:
 * nothing else in the process should bind to them by accident.  The handle
 * is never closed: OpenSSL 3 pins itself in memory anyway
 * (OPENSSL_init_crypto), and records may live until exit.
 */
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "evp_lazy.h"

static pthread_once_t once = PTHREAD_ONCE_INIT;
static wr_evp table;
static const wr_evp *loaded; /* &table once every symbol resolved */
static char error[256];

static void load(void) {
  void *h = dlopen(WR_EVP_SONAME, RTLD_NOW | RTLD_LOCAL);
  const char *missing = NULL;
  if (!h) {
    const char *why = dlerror();
    snprintf(error, sizeof error, "cannot load %s: %s", WR_EVP_SONAME,
             why ? why : "unknown dlopen error");
    return;
  }
  /* dlsym returns void *, which ISO C will not cast to a function pointer
   * (-Wpedantic); POSIX guarantees the two have the same representation, so
   * copy the bytes into the typed field.  The field's type, taken from
   * OpenSSL's prototype, is what the call sites are checked against. */
#define RESOLVE(field, sym)                                                   \
  do {                                                                        \
    void *p_ = missing ? NULL : dlsym(h, #sym);                               \
    _Static_assert(sizeof p_ == sizeof table.field, "dlsym pointer size");    \
    if (!p_ && !missing) missing = #sym;                                      \
    memcpy(&table.field, &p_, sizeof p_);                                     \
  } while (0)
  RESOLVE(aes_256_gcm, EVP_aes_256_gcm);
  RESOLVE(chacha20_poly1305, EVP_chacha20_poly1305);
  RESOLVE(CIPHER_CTX_new, EVP_CIPHER_CTX_new);
  RESOLVE(CIPHER_CTX_free, EVP_CIPHER_CTX_free);
  RESOLVE(CIPHER_CTX_ctrl, EVP_CIPHER_CTX_ctrl);
  RESOLVE(CipherInit_ex, EVP_CipherInit_ex);
  RESOLVE(EncryptUpdate, EVP_EncryptUpdate);
  RESOLVE(EncryptFinal_ex, EVP_EncryptFinal_ex);
  RESOLVE(DecryptUpdate, EVP_DecryptUpdate);
  RESOLVE(DecryptFinal_ex, EVP_DecryptFinal_ex);
#undef RESOLVE
  if (missing) {
    /* A libcrypto.so.3 without one of these is not OpenSSL 3 as we know it
     * (or was built with no-chacha); refuse records rather than crash. */
    snprintf(error, sizeof error, "%s lacks symbol %s", WR_EVP_SONAME,
             missing);
    dlclose(h);
    return;
  }
  loaded = &table;
}

const wr_evp *wr__evp_get(void) {
  /* pthread_once also orders the writes in load() before any caller's
   * reads of the table. */
  (void)pthread_once(&once, load);
  return loaded;
}

const char *wr__evp_error(void) {
  /* No load here: asking why is only meaningful after wr__evp_get() failed,
   * and that call already completed the once (and its memory ordering). */
  return error;
}
