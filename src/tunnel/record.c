/*
 * Sealed records (include/warren/record.h): one direction of a tunnel link.
 *
 * Wire format, per record:
 *
 *   u16 clen (big-endian) | ciphertext (clen - 16 bytes) | tag (16 bytes)
 *
 * AEAD inputs: key = the direction's current key, nonce = 4 zero bytes | u64
 * record counter (big-endian), AAD = the two length bytes.  Authenticating
 * the header means a flipped length is caught by the tag rather than
 * silently resynchronising the stream somewhere else.
 *
 * States: a record object starts with no libcrypto direction chosen; the
 * first seal or open schedules the key into the EVP context for that
 * direction (EVP_EncryptInit_ex / EVP_DecryptInit_ex with the key).  Every
 * later record only sets the IV (EVP_CipherInit_ex with key == NULL): key
 * scheduling AES-256 and GHASH tables costs about as much as sealing 1 KiB,
 * so redoing it per record would cost ~5 % at 16 KiB and far more for small
 * records.  A wr_record is meant to be used in one direction; using it in
 * both (tests do) just reschedules the key on each switch.
 *
 * Rekeying: when the counter reaches a multiple of the rekey interval
 * (2^32 records, i.e. 64 TiB at full records), both sides replace the key
 * by BLAKE2b-256(key = old key, "warren rekey") and reschedule it.  No
 * message is needed because both sides count the same records.  2^32 keeps
 * each key's nonce use far below AES-GCM's 2^32-invocation limit for random
 * nonces (we use counters, so the real bound is the 2^64 counter; rekeying
 * this early bounds how much traffic one compromised key exposes and keeps
 * the per-key data volume inside NIST SP 800-38D's guidance).
 *
 * Errors leave the object unusable in practice: the counter no longer
 * matches the peer's, so the caller must close the link (record.h).
 *
 * libcrypto is not linked: every EVP call goes through rec->evp, the table
 * evp_lazy.c fills by dlopen on the first wr_record_new, so a node that
 * never carries a tunnel never pays libcrypto's ~1.4 MiB (evp_lazy.h).
 */
#include <cpuid.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "warren/buf.h"
#include "warren/err.h"
#include "warren/record.h"

#include "evp_lazy.h"

#define NONCE_LEN 12
#define REKEY_LABEL "warren rekey"

enum { DIR_NONE = 0, DIR_SEAL = 1, DIR_OPEN = 2 };

struct wr_record {
  const wr_mem *mem;
  wr_aead alg;
  const wr_evp *evp; /* libcrypto's entry points, loaded */
  int dir;        /* which direction the EVP context holds a key for */
  int key_loaded; /* the EVP context's key schedule matches key[] */
  EVP_CIPHER_CTX *ctx;
  uint64_t count; /* records sealed/opened: the next nonce */
  uint64_t rekey_interval;
  uint64_t epoch; /* rekeys applied to key[]: count / rekey_interval */
  uint8_t key[32];
};

wr_aead wr_aead_preferred(void) {
  const char *env = getenv("WARREN_AEAD");
  if (env && strcmp(env, "chacha") == 0) return WR_AEAD_CHACHA20POLY1305;
  if (env && strcmp(env, "aes") == 0) return WR_AEAD_AES256GCM;
#if defined(__x86_64__) || defined(__i386__)
  {
    unsigned a, b, c, d;
    /* CPUID leaf 1, ECX bit 25 = AES-NI, bit 1 = PCLMULQDQ (GHASH).
     * Without both, OpenSSL's AES-GCM falls back to table code that is
     * several times slower than ChaCha20-Poly1305 and not constant time. */
    if (__get_cpuid(1, &a, &b, &c, &d) && (c & (1u << 25)) && (c & (1u << 1)))
      return WR_AEAD_AES256GCM;
  }
#endif
  return WR_AEAD_CHACHA20POLY1305;
}

const char *wr_aead_name(wr_aead alg) {
  switch (alg) {
  case WR_AEAD_AES256GCM:
    return "aes-256-gcm";
  case WR_AEAD_CHACHA20POLY1305:
    return "chacha20-poly1305";
  }
  return "unknown";
}

static int alg_known(wr_aead alg) {
  return alg == WR_AEAD_AES256GCM || alg == WR_AEAD_CHACHA20POLY1305;
}

static const EVP_CIPHER *cipher_of(const wr_evp *evp, wr_aead alg) {
  switch (alg) {
  case WR_AEAD_AES256GCM:
    return evp->aes_256_gcm();
  case WR_AEAD_CHACHA20POLY1305:
    return evp->chacha20_poly1305();
  }
  return NULL;
}

const char *wr_record_crypto_error(void) { return wr__evp_error(); }

int wr_record_new(wr_record **prec, wr_aead alg, const uint8_t key[32],
                  const wr_mem *mem) {
  wr_record *rec;
  const wr_evp *evp;
  if (!prec) return WR_ERR_INVAL;
  *prec = NULL;
  /* Argument errors first, so they read the same with or without
   * libcrypto installed. */
  if (!key || !alg_known(alg)) return WR_ERR_INVAL;
  if (!(evp = wr__evp_get())) return WR_ERR_IO;
  rec = wr_mem_calloc(mem, 1, sizeof *rec);
  if (!rec) return WR_ERR_NOMEM;
  rec->mem = mem;
  rec->alg = alg;
  rec->evp = evp;
  rec->rekey_interval = WR_RECORD_REKEY_INTERVAL;
  memcpy(rec->key, key, 32);
  /* libcrypto allocates with its own allocator, so a failing wr_mem cannot
   * reach this; OpenSSL reports its own OOM here. */
  rec->ctx = evp->CIPHER_CTX_new();
  if (!rec->ctx) {
    sodium_memzero(rec->key, sizeof rec->key);
    wr_mem_free(mem, rec);
    return WR_ERR_NOMEM;
  }
  *prec = rec;
  return 0;
}

void wr_record_del(wr_record *rec) {
  if (!rec) return;
  /* EVP_CIPHER_CTX_free cleanses the key schedule (OPENSSL_cleanse in the
   * provider's freectx); we wipe our copy. */
  rec->evp->CIPHER_CTX_free(rec->ctx);
  sodium_memzero(rec->key, sizeof rec->key);
  wr_mem_free(rec->mem, rec);
}

uint64_t wr_record_count(const wr_record *rec) { return rec->count; }

void wr__record_set_rekey_interval(wr_record *rec, uint64_t interval) {
  rec->rekey_interval = interval ? interval : WR_RECORD_REKEY_INTERVAL;
  rec->epoch = rec->count / rec->rekey_interval;
}

/*
 * Makes the EVP context ready for record number rec->count in direction
 * |dir|: rekeys at an interval boundary, (re)schedules the key when it or
 * the direction changed, then sets the nonce.
 */
static int prepare(wr_record *rec, int dir) {
  uint8_t nonce[NONCE_LEN] = {0};
  const int enc = dir == DIR_SEAL;
  /* The epoch is derived from the counter, so a failed call (which does
   * not advance the counter) never derives the next key twice. */
  while (rec->epoch < rec->count / rec->rekey_interval) {
    uint8_t next[32];
    (void)crypto_generichash(next, 32, (const uint8_t *)REKEY_LABEL,
                             sizeof REKEY_LABEL - 1, rec->key, 32);
    memcpy(rec->key, next, 32);
    sodium_memzero(next, sizeof next);
    rec->epoch++;
    rec->key_loaded = 0;
  }
  if (!rec->key_loaded || rec->dir != dir) {
    if (rec->evp->CipherInit_ex(rec->ctx, cipher_of(rec->evp, rec->alg), NULL,
                                rec->key, NULL, enc) != 1)
      return WR_ERR_INTERNAL;
    rec->dir = dir;
    rec->key_loaded = 1;
  }
  wr_put_u32(nonce + 4, (uint32_t)(rec->count >> 32));
  wr_put_u32(nonce + 8, (uint32_t)rec->count);
  if (rec->evp->CipherInit_ex(rec->ctx, NULL, NULL, NULL, nonce, enc) != 1)
    return WR_ERR_INTERNAL;
  return 0;
}

wr_ssize wr_record_seal_v(wr_record *rec, uint8_t *dst, size_t cap,
                          const struct iovec *pt, size_t n) {
  int aadl = 0, outl, fin = 0, rv;
  size_t len = 0, off = WR_RECORD_HEADER_LEN;
  for (size_t i = 0; i < n; i++) {
    if (pt[i].iov_len > WR_RECORD_MAX_PLAINTEXT) return WR_ERR_TOOBIG;
    len += pt[i].iov_len;
  }
  if (len > WR_RECORD_MAX_PLAINTEXT) return WR_ERR_TOOBIG;
  if (cap < len + WR_RECORD_OVERHEAD) return WR_ERR_NOBUF;
  wr_put_u16(dst, (uint16_t)(len + WR_RECORD_TAG_LEN));
  if ((rv = prepare(rec, DIR_SEAL)) != 0) return rv;
  /* An AAD update reports the AAD length in its out-length: keep it apart
   * from the ciphertext length. */
  if (rec->evp->EncryptUpdate(rec->ctx, NULL, &aadl, dst,
                              WR_RECORD_HEADER_LEN) != 1)
    return WR_ERR_INTERNAL;
  /* Both AEADs are stream ciphers: an update of any length writes exactly
   * that many bytes, so the pieces land back to back. */
  for (size_t i = 0; i < n; i++) {
    if (pt[i].iov_len == 0) continue;
    outl = 0;
    if (rec->evp->EncryptUpdate(rec->ctx, dst + off, &outl, pt[i].iov_base,
                                (int)pt[i].iov_len) != 1)
      return WR_ERR_INTERNAL;
    off += (size_t)outl;
  }
  if (rec->evp->EncryptFinal_ex(rec->ctx, dst + off, &fin) != 1 ||
      off + (size_t)fin != WR_RECORD_HEADER_LEN + len)
    return WR_ERR_INTERNAL;
  if (rec->evp->CIPHER_CTX_ctrl(rec->ctx, EVP_CTRL_AEAD_GET_TAG,
                                WR_RECORD_TAG_LEN,
                                dst + WR_RECORD_HEADER_LEN + len) != 1)
    return WR_ERR_INTERNAL;
  rec->count++;
  return (wr_ssize)(len + WR_RECORD_OVERHEAD);
}

wr_ssize wr_record_seal(wr_record *rec, uint8_t *dst, size_t cap,
                        const uint8_t *pt, size_t len) {
  struct iovec v = {.iov_base = (void *)pt, .iov_len = len};
  return wr_record_seal_v(rec, dst, cap, &v, 1);
}

wr_ssize wr_record_open(wr_record *rec, uint8_t *buf, size_t len,
                        const uint8_t **ppt, size_t *pptlen) {
  size_t ptlen;
  int aadl = 0, outl = 0, fin = 0, rv;
  uint8_t *ct;
  /* The framing rules live in wr_record_peek (a length past the maximum
   * is refused before its bytes arrive). */
  wr_ssize total = wr_record_peek(buf, len, &ptlen);
  if (total <= 0) return total;
  ct = buf + WR_RECORD_HEADER_LEN;
  if ((rv = prepare(rec, DIR_OPEN)) != 0) return rv;
  if (rec->evp->DecryptUpdate(rec->ctx, NULL, &aadl, buf,
                              WR_RECORD_HEADER_LEN) != 1)
    return WR_ERR_INTERNAL;
  if (ptlen > 0 &&
      rec->evp->DecryptUpdate(rec->ctx, ct, &outl, ct, (int)ptlen) != 1)
    return WR_ERR_INTERNAL;
  if (rec->evp->CIPHER_CTX_ctrl(rec->ctx, EVP_CTRL_AEAD_SET_TAG,
                                WR_RECORD_TAG_LEN, ct + ptlen) != 1)
    return WR_ERR_INTERNAL;
  if (rec->evp->DecryptFinal_ex(rec->ctx, ct + outl, &fin) != 1) {
    /* Never leave unauthenticated plaintext where a careless caller might
     * read it. */
    sodium_memzero(ct, ptlen);
    return WR_ERR_DECRYPT;
  }
  rec->count++;
  *ppt = ct;
  *pptlen = ptlen;
  return total;
}

wr_ssize wr_record_peek(const uint8_t *buf, size_t len, size_t *pptlen) {
  size_t clen;
  if (len < WR_RECORD_HEADER_LEN) return 0;
  clen = wr_get_u16(buf);
  /* An empty record (tag only) is legal; more than the maximum is not, and
   * is reported before waiting for the bytes so a bad peer cannot make us
   * wait for data that must be rejected anyway. */
  if (clen < WR_RECORD_TAG_LEN ||
      clen > WR_RECORD_MAX_PLAINTEXT + WR_RECORD_TAG_LEN)
    return WR_ERR_PROTO;
  if (len < WR_RECORD_HEADER_LEN + clen) return 0;
  *pptlen = clen - WR_RECORD_TAG_LEN;
  return (wr_ssize)(WR_RECORD_HEADER_LEN + clen);
}

wr_ssize wr_record_open_v(wr_record *rec, const uint8_t *buf, size_t len,
                          const struct iovec *dst, size_t n, size_t *pptlen) {
  size_t ptlen, cap = 0, done = 0, i;
  int aadl = 0, outl, fin = 0, rv;
  wr_ssize w = wr_record_peek(buf, len, &ptlen);
  if (w <= 0) return w;
  for (i = 0; i < n; i++) cap += dst[i].iov_len;
  if (cap < ptlen) return WR_ERR_NOBUF;
  const uint8_t *ct = buf + WR_RECORD_HEADER_LEN;
  if ((rv = prepare(rec, DIR_OPEN)) != 0) return rv;
  if (rec->evp->DecryptUpdate(rec->ctx, NULL, &aadl, buf,
                              WR_RECORD_HEADER_LEN) != 1)
    return WR_ERR_INTERNAL;
  /* Stream ciphers: each update writes exactly its input's length. */
  for (i = 0; i < n && done < ptlen; i++) {
    size_t k = WR_MIN(dst[i].iov_len, ptlen - done);
    outl = 0;
    if (k && (rec->evp->DecryptUpdate(rec->ctx, dst[i].iov_base, &outl,
                                      ct + done, (int)k) != 1 ||
              (size_t)outl != k))
      return WR_ERR_INTERNAL;
    done += k;
  }
  if (rec->evp->CIPHER_CTX_ctrl(rec->ctx, EVP_CTRL_AEAD_SET_TAG,
                                WR_RECORD_TAG_LEN,
                                (void *)(ct + ptlen)) != 1)
    return WR_ERR_INTERNAL;
  uint8_t end[WR_RECORD_TAG_LEN]; /* stream ciphers write nothing here */
  if (rec->evp->DecryptFinal_ex(rec->ctx, end, &fin) != 1) {
    /* Never leave unauthenticated plaintext where a careless caller might
     * read it. */
    for (i = 0, done = 0; i < n && done < ptlen; i++) {
      size_t k = WR_MIN(dst[i].iov_len, ptlen - done);
      sodium_memzero(dst[i].iov_base, k);
      done += k;
    }
    return WR_ERR_DECRYPT;
  }
  rec->count++;
  *pptlen = ptlen;
  return w;
}
