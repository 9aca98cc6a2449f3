/*
 * The tunnel handshake: Noise_NK_25519_ChaChaPoly_BLAKE2b (The Noise
 * Protocol Framework, revision 34) from libsodium primitives.  API and wire
 * framing in include/warren/noise.h; the rationale in docs/TUNNEL-CRYPTO.md.
 *
 * Objects (spec section 5): the SymmetricState is |ck|, |h| and the
 * CipherState |k|, |n| below.  Functions map one to one:
 *   HASH      BLAKE2b-512 (crypto_generichash, 64-byte output), HASHLEN 64
 *   HMAC      RFC 2104 over BLAKE2b, block length 128 (section 4.3)
 *   HKDF      section 4.3: temp = HMAC(ck, ikm); o1 = HMAC(temp, 0x01);
 *             o2 = HMAC(temp, o1 || 0x02)
 *   DH        X25519 (crypto_scalarmult); an all-zero output (low-order
 *             peer key) is rejected, as libsodium reports it
 *   ENCRYPT   ChaCha20-Poly1305 IETF, nonce = 4 zero bytes || LE64(n),
 *             AD = h (section 12.3)
 * Cipher keys are the first 32 bytes of 64-byte HKDF outputs (section 5.2,
 * "if HASHLEN is 64, then truncates temp_k to 32 bytes").
 *
 * Handshake (prologue "warren/1", pre-message <- s):
 *
 *   initiator                                 responder
 *   ST_WRITE1 --  e, es, {payload1}  -->      ST_READ1
 *   ST_READ2  <-- e, ee, {payload2}  --       ST_WRITE2
 *   ST_DONE   (Split)                         ST_DONE
 *
 *   payload1 = u8 version (1) | u64 wall ms | u8 AEAD mask | u8 preferred
 *   payload2 = u8 chosen AEAD
 *   mask bit (1 << wr_aead) per AEAD supported.  Longer payloads are
 *   accepted and the extra bytes ignored, so later versions can append.
 *
 * Any error from a read moves the object to ST_FAILED; every later call
 * returns WR_ERR_INVAL.  A call in the wrong state returns WR_ERR_INVAL and
 * changes nothing, as do "need more bytes" (0) and WR_ERR_NOBUF.
 *
 * Rejection: a responder that fails to read message 1 may send a
 * 4-byte reject frame (u16 2 | 0xff | reason) from wr_noise_write_reject
 * instead of message 2, which can never be that short, so the client can
 * tell "wrong fleet key" from "clock skew" from a dropped connection.  It
 * is unauthenticated, exactly as informative as the TCP close it precedes.
 *
 * Fuzzing builds (WR_FUZZING) replace the handshake AEAD by the identity
 * (tag ignored) so a fuzzer can reach payload parsing, timestamp and
 * replay checks; DH and framing stay real.
 */
#include <sodium.h>
#include <string.h>

#include "warren/buf.h"
#include "warren/err.h"
#include "warren/noise.h"

#define HASHLEN 64
#define BLOCKLEN 128
#define DHLEN 32
#define TAGLEN 16
#define PROTOCOL_NAME "Noise_NK_25519_ChaChaPoly_BLAKE2b"
/* Node-to-node links: NK with a pre-shared key mixed in before message 1
 * (spec section 9, "psk0").  The name differs, so h differs from the
 * first byte: an NK initiator and an NKpsk0 responder never agree. */
#define PROTOCOL_NAME_PSK "Noise_NKpsk0_25519_ChaChaPoly_BLAKE2b"
#define PROLOGUE "warren/1"

#define PAYLOAD1_LEN 11
#define PAYLOAD2_LEN 1
#define MSG1_LEN (DHLEN + PAYLOAD1_LEN + TAGLEN)
#define MSG2_LEN (DHLEN + PAYLOAD2_LEN + TAGLEN)
#define REJECT_LEN 2
#define REJECT_MAGIC 0xff

/* Every AEAD this build implements (both: libcrypto has them all). */
#define AEAD_BIT(a) (1u << (unsigned)(a))
#define AEADS_SUPPORTED                                                        \
  (AEAD_BIT(WR_AEAD_AES256GCM) | AEAD_BIT(WR_AEAD_CHACHA20POLY1305))

enum {
  ST_WRITE1,
  ST_READ1,
  ST_READ2,
  ST_WRITE2,
  ST_DONE,
  ST_FAILED,
};

enum { REASON_AUTH = 1, REASON_REPLAY = 2, REASON_VERSION = 3 };

typedef struct replay_entry {
  uint8_t e[DHLEN];
  uint64_t ts; /* the initiator's claimed time: live until ts + skew */
  int used;
} replay_entry;

/*
 * The cache is split into buckets of at most BUCKET_LEN entries, chosen by
 * the ephemeral key's first bytes (uniform for honest keys), each a ring
 * reused oldest-inserted first.  A lookup scans one bucket, so its cost does
 * not grow with the capacity: a single linear scan of 65536 entries added
 * ~40 us to a 150 us responder handshake.  An attacker who picks ephemeral
 * keys can crowd one bucket and evict an entry early; that is no worse than
 * flooding the whole cache, and the consequence is the same harmless one
 * (see replay_check_insert).
 */
#define BUCKET_LEN 16

struct wr_noise_replay {
  const wr_mem *mem;
  size_t nbuckets;
  size_t blen;  /* entries per bucket */
  size_t *next; /* per bucket: the ring position to reuse next */
  uint64_t evicted_live;
  replay_entry *v; /* nbuckets * blen entries */
  /* The fleet public key of the last responder, so each handshake does
   * not redo X25519(priv, 9): ~30 us of a ~150 us responder handshake. */
  int have_pub;
  uint8_t s_priv[DHLEN];
  uint8_t s_pub[DHLEN];
};
struct wr_noise {
  const wr_mem *mem;
  int initiator;
  int state;
  /* SymmetricState and its CipherState. */
  uint8_t ck[HASHLEN];
  uint8_t h[HASHLEN];
  uint8_t k[32];
  int has_k;
  uint64_t n;
  /* Keys: s (responder's static), e (ours), rs / re (peer's). */
  uint8_t s_priv[DHLEN];
  uint8_t e_priv[DHLEN];
  uint8_t e_pub[DHLEN];
  uint8_t rs[DHLEN];
  uint8_t re[DHLEN];
  wr_noise_replay *rc;
  wr_rand_fn rand;
  void *rand_ud;
  wr_aead pref;
  wr_aead chosen;
  wr_noise_keys keys;
  int has_psk;
  uint8_t psk[32];
};

/* ---- replay cache ---------------------------------------------------- */

int wr_noise_replay_new(wr_noise_replay **prc, size_t capacity,
                        const wr_mem *mem) {
  wr_noise_replay *rc;
  if (!prc) return WR_ERR_INVAL;
  *prc = NULL;
  if (capacity == 0 || capacity > SIZE_MAX / sizeof(replay_entry))
    return WR_ERR_INVAL;
  rc = wr_mem_calloc(mem, 1, sizeof *rc);
  if (!rc) return WR_ERR_NOMEM;
  rc->mem = mem;
  rc->nbuckets = (capacity + BUCKET_LEN - 1) / BUCKET_LEN;
  rc->blen = capacity / rc->nbuckets; /* nbuckets * blen <= capacity */
  rc->v = wr_mem_calloc(mem, rc->nbuckets * rc->blen, sizeof *rc->v);
  rc->next = wr_mem_calloc(mem, rc->nbuckets, sizeof *rc->next);
  if (!rc->v || !rc->next) {
    wr_noise_replay_del(rc);
    return WR_ERR_NOMEM;
  }
  *prc = rc;
  return 0;
}

void wr_noise_replay_del(wr_noise_replay *rc) {
  if (!rc) return;
  sodium_memzero(rc->s_priv, sizeof rc->s_priv);
  wr_mem_free(rc->mem, rc->next);
  wr_mem_free(rc->mem, rc->v);
  wr_mem_free(rc->mem, rc);
}

uint64_t wr_noise_replay_evicted(const wr_noise_replay *rc) {
  return rc->evicted_live;
}

static int entry_live(const replay_entry *en, uint64_t now) {
  return en->used && now <= en->ts + WR_NOISE_MAX_SKEW_MS;
}

/*
 * Records |e| (with its message's timestamp) unless it is already there:
 * returns WR_ERR_REPLAY for a live duplicate.  When every slot of the
 * bucket is live the oldest insertion is overwritten and counted: replay
 * protection then covers a shorter window, but new clients are never
 * refused.  A replayed message 1 that slips through gains an attacker
 * nothing but a half-open handshake: without the initiator's ephemeral key
 * it cannot read message 2 or send a record.
 */
static int replay_check_insert(wr_noise_replay *rc, const uint8_t e[DHLEN],
                               uint64_t ts, uint64_t now) {
  size_t b = (size_t)(wr_get_u32(e) % rc->nbuckets);
  replay_entry *bucket = &rc->v[b * rc->blen], *slot;
  for (size_t i = 0; i < rc->blen; i++) {
    const replay_entry *en = &bucket[i];
    if (entry_live(en, now) && memcmp(en->e, e, DHLEN) == 0)
      return WR_ERR_REPLAY;
  }
  slot = &bucket[rc->next[b]];
  if (entry_live(slot, now)) rc->evicted_live++;
  memcpy(slot->e, e, DHLEN);
  slot->ts = ts;
  slot->used = 1;
  rc->next[b] = (rc->next[b] + 1) % rc->blen;
  return 0;
}

/* ---- hash, HMAC, HKDF (spec sections 4.3 and 5.2) --------------------- */

static void hash2(uint8_t out[HASHLEN], const uint8_t *a, size_t alen,
                  const uint8_t *b, size_t blen) {
  crypto_generichash_state st;
  crypto_generichash_init(&st, NULL, 0, HASHLEN);
  crypto_generichash_update(&st, a, alen);
  if (blen) crypto_generichash_update(&st, b, blen);
  crypto_generichash_final(&st, out, HASHLEN);
  sodium_memzero(&st, sizeof st);
}

/* HMAC-BLAKE2b(key, d1 || d2) with a HASHLEN-byte key. */
static void hmac(uint8_t out[HASHLEN], const uint8_t key[HASHLEN],
                 const uint8_t *d1, size_t l1, const uint8_t *d2, size_t l2) {
  crypto_generichash_state st;
  uint8_t pad[BLOCKLEN], inner[HASHLEN];
  memset(pad, 0x36, sizeof pad);
  for (size_t i = 0; i < HASHLEN; i++) pad[i] ^= key[i];
  crypto_generichash_init(&st, NULL, 0, HASHLEN);
  crypto_generichash_update(&st, pad, sizeof pad);
  if (l1) crypto_generichash_update(&st, d1, l1);
  if (l2) crypto_generichash_update(&st, d2, l2);
  crypto_generichash_final(&st, inner, HASHLEN);
  memset(pad, 0x5c, sizeof pad);
  for (size_t i = 0; i < HASHLEN; i++) pad[i] ^= key[i];
  crypto_generichash_init(&st, NULL, 0, HASHLEN);
  crypto_generichash_update(&st, pad, sizeof pad);
  crypto_generichash_update(&st, inner, HASHLEN);
  crypto_generichash_final(&st, out, HASHLEN);
  sodium_memzero(pad, sizeof pad);
  sodium_memzero(inner, sizeof inner);
  sodium_memzero(&st, sizeof st);
}

static void hkdf2(const uint8_t ck[HASHLEN], const uint8_t *ikm, size_t len,
                  uint8_t o1[HASHLEN], uint8_t o2[HASHLEN]) {
  static const uint8_t one = 1, two = 2;
  uint8_t temp[HASHLEN];
  hmac(temp, ck, ikm, len, NULL, 0);
  hmac(o1, temp, &one, 1, NULL, 0);
  hmac(o2, temp, o1, HASHLEN, &two, 1);
  sodium_memzero(temp, sizeof temp);
}

/* HKDF with three outputs (section 4.3), for MixKeyAndHash. */
static void hkdf3(const uint8_t ck[HASHLEN], const uint8_t *ikm, size_t len,
                  uint8_t o1[HASHLEN], uint8_t o2[HASHLEN],
                  uint8_t o3[HASHLEN]) {
  static const uint8_t one = 1, two = 2, three = 3;
  uint8_t temp[HASHLEN];
  hmac(temp, ck, ikm, len, NULL, 0);
  hmac(o1, temp, &one, 1, NULL, 0);
  hmac(o2, temp, o1, HASHLEN, &two, 1);
  hmac(o3, temp, o2, HASHLEN, &three, 1);
  sodium_memzero(temp, sizeof temp);
}

void wr__noise_hkdf(const uint8_t ck[64], const uint8_t *ikm, size_t len,
                    uint8_t o1[64], uint8_t o2[64]) {
  hkdf2(ck, ikm, len, o1, o2);
}

/* ---- SymmetricState --------------------------------------------------- */

static void mix_hash(wr_noise *n, const uint8_t *data, size_t len) {
  hash2(n->h, n->h, HASHLEN, data, len);
}

static void mix_key(wr_noise *n, const uint8_t *ikm, size_t len) {
  uint8_t temp_k[HASHLEN];
  hkdf2(n->ck, ikm, len, n->ck, temp_k);
  memcpy(n->k, temp_k, 32);
  n->has_k = 1;
  n->n = 0;
  sodium_memzero(temp_k, sizeof temp_k);
}

/* MixKeyAndHash(psk) (section 5.2): the "psk" token of psk0. */
static void mix_key_and_hash(wr_noise *n, const uint8_t psk[32]) {
  uint8_t ck[HASHLEN], temp_h[HASHLEN], temp_k[HASHLEN];
  hkdf3(n->ck, psk, 32, ck, temp_h, temp_k);
  memcpy(n->ck, ck, HASHLEN);
  mix_hash(n, temp_h, HASHLEN);
  memcpy(n->k, temp_k, 32);
  n->has_k = 1;
  n->n = 0;
  sodium_memzero(ck, sizeof ck);
  sodium_memzero(temp_h, sizeof temp_h);
  sodium_memzero(temp_k, sizeof temp_k);
}

/* The "e" token: MixHash(e.pub), and in a PSK handshake also
 * MixKey(e.pub) (section 9.2), so the PSK's key never encrypts under a
 * nonce reused with another ephemeral. */
static void mix_e(wr_noise *n, const uint8_t e[DHLEN]) {
  mix_hash(n, e, DHLEN);
  if (n->has_psk) mix_key(n, e, DHLEN);
}

static void nonce_of(uint64_t c, uint8_t nonce[12]) {
  memset(nonce, 0, 4);
  for (int i = 0; i < 8; i++) nonce[4 + i] = (uint8_t)(c >> (8 * i));
}

/* Both handshake messages carry a payload after a key is set, so |has_k|
 * is always true here; n never reaches 2^64 - 1 (at most one use). */
static void encrypt_and_hash(wr_noise *n, const uint8_t *pt, size_t len,
                             uint8_t *out) {
  uint8_t nonce[12];
  nonce_of(n->n, nonce);
#ifdef WR_FUZZING
  memmove(out, pt, len);
  memset(out + len, 0, TAGLEN);
#else
  crypto_aead_chacha20poly1305_ietf_encrypt(out, NULL, pt, len, n->h, HASHLEN,
                                            NULL, nonce, n->k);
#endif
  n->n++;
  mix_hash(n, out, len + TAGLEN);
}

static int decrypt_and_hash(wr_noise *n, const uint8_t *ct, size_t len,
                            uint8_t *out) {
  uint8_t nonce[12];
  if (len < TAGLEN) return WR_ERR_PROTO;
  nonce_of(n->n, nonce);
#ifdef WR_FUZZING
  memcpy(out, ct, len - TAGLEN);
#else
  if (crypto_aead_chacha20poly1305_ietf_decrypt(out, NULL, NULL, ct, len, n->h,
                                                HASHLEN, nonce, n->k) != 0)
    return WR_ERR_DECRYPT;
#endif
  n->n++;
  mix_hash(n, ct, len);
  return 0;
}

/* MixKey(DH(priv, pub)); a low-order public key gives an all-zero shared
 * secret, which libsodium reports and we refuse (spec section 12.1 allows
 * either; refusing stops a peer from forcing a known key). */
static int mix_dh(wr_noise *n, const uint8_t priv[DHLEN],
                  const uint8_t pub[DHLEN]) {
  uint8_t shared[DHLEN];
  if (crypto_scalarmult(shared, priv, pub) != 0) return WR_ERR_PROTO;
  mix_key(n, shared, sizeof shared);
  sodium_memzero(shared, sizeof shared);
  return 0;
}

static void default_rand(uint8_t *dst, size_t len, void *ud) {
  (void)ud;
  randombytes_buf(dst, len);
}

static int noise_new(wr_noise **pn, int initiator, const uint8_t *psk,
                     wr_rand_fn rand, void *rand_ud, const wr_mem *mem) {
  wr_noise *n;
  uint8_t name[HASHLEN] = {0};
  /* sodium_init fails only when the system RNG is unusable; with an
   * injected rand nothing here needs it. */
  if (sodium_init() < 0 && !rand) return WR_ERR_INTERNAL;
  n = wr_mem_calloc(mem, 1, sizeof *n);
  if (!n) return WR_ERR_NOMEM;
  n->mem = mem;
  n->initiator = initiator;
  n->state = initiator ? ST_WRITE1 : ST_READ1;
  n->rand = rand ? rand : default_rand;
  n->rand_ud = rand_ud;
  n->pref = wr_aead_preferred();
  /* InitializeSymmetric: the name is shorter than HASHLEN, so h is the
   * name zero-padded; ck = h. */
  if (psk) {
    memcpy(name, PROTOCOL_NAME_PSK, sizeof PROTOCOL_NAME_PSK - 1);
    memcpy(n->psk, psk, 32);
    n->has_psk = 1;
  } else {
    memcpy(name, PROTOCOL_NAME, sizeof PROTOCOL_NAME - 1);
  }
  memcpy(n->h, name, HASHLEN);
  memcpy(n->ck, name, HASHLEN);
  mix_hash(n, (const uint8_t *)PROLOGUE, sizeof PROLOGUE - 1);
  *pn = n;
  return 0;
}

int wr_noise_initiator_new(wr_noise **pn, const uint8_t fleet_pub[32],
                           wr_rand_fn rand, void *rand_ud, const wr_mem *mem) {
  return wr_noise_initiator_new_psk(pn, fleet_pub, NULL, rand, rand_ud, mem);
}

int wr_noise_initiator_new_psk(wr_noise **pn, const uint8_t fleet_pub[32],
                               const uint8_t *psk, wr_rand_fn rand,
                               void *rand_ud, const wr_mem *mem) {
  int rv;
  if (!pn) return WR_ERR_INVAL;
  *pn = NULL;
  if (!fleet_pub) return WR_ERR_INVAL;
  if ((rv = noise_new(pn, 1, psk, rand, rand_ud, mem)) != 0) return rv;
  memcpy((*pn)->rs, fleet_pub, DHLEN);
  mix_hash(*pn, fleet_pub, DHLEN); /* pre-message <- s */
  return 0;
}

int wr_noise_responder_new(wr_noise **pn, const uint8_t fleet_priv[32],
                           wr_noise_replay *rc, wr_rand_fn rand, void *rand_ud,
                           const wr_mem *mem) {
  return wr_noise_responder_new_psk(pn, fleet_priv, NULL, rc, rand, rand_ud,
                                    mem);
}

int wr_noise_responder_new_psk(wr_noise **pn, const uint8_t fleet_priv[32],
                               const uint8_t *psk, wr_noise_replay *rc,
                               wr_rand_fn rand, void *rand_ud,
                               const wr_mem *mem) {
  uint8_t pub[DHLEN];
  int rv;
  if (!pn) return WR_ERR_INVAL;
  *pn = NULL;
  if (!fleet_priv || !rc) return WR_ERR_INVAL;
  if ((rv = noise_new(pn, 0, psk, rand, rand_ud, mem)) != 0) return rv;
  memcpy((*pn)->s_priv, fleet_priv, DHLEN);
  (*pn)->rc = rc;
  if (!rc->have_pub || sodium_memcmp(rc->s_priv, fleet_priv, DHLEN) != 0) {
    (void)crypto_scalarmult_base(rc->s_pub, fleet_priv);
    memcpy(rc->s_priv, fleet_priv, DHLEN);
    rc->have_pub = 1;
  }
  memcpy(pub, rc->s_pub, DHLEN);
  mix_hash(*pn, pub, DHLEN); /* pre-message <- s */
  return 0;
}

void wr_noise_del(wr_noise *n) {
  if (!n) return;
  const wr_mem *mem = n->mem;
  sodium_memzero(n, sizeof *n);
  wr_mem_free(mem, n);
}

int wr_noise_set_aead(wr_noise *n, wr_aead preferred) {
  if (n->state != (n->initiator ? ST_WRITE1 : ST_READ1) ||
      !(AEADS_SUPPORTED & AEAD_BIT(preferred)))
    return WR_ERR_INVAL;
  n->pref = preferred;
  return 0;
}

/*
 * The responder's choice.  AES-256-GCM only when both CPUs prefer it (both
 * have AES-NI): AES without hardware support is slow and leaks timing,
 * whereas ChaCha20-Poly1305 is fast in software everywhere.
 */
static int choose_aead(wr_aead ours, unsigned theirs_mask, uint8_t theirs_pref,
                       wr_aead *out) {
  unsigned common = theirs_mask & AEADS_SUPPORTED;
  if (ours == WR_AEAD_AES256GCM && theirs_pref == WR_AEAD_AES256GCM &&
      (common & AEAD_BIT(WR_AEAD_AES256GCM)))
    *out = WR_AEAD_AES256GCM;
  else if (common & AEAD_BIT(WR_AEAD_CHACHA20POLY1305))
    *out = WR_AEAD_CHACHA20POLY1305;
  else if (common & AEAD_BIT(WR_AEAD_AES256GCM))
    *out = WR_AEAD_AES256GCM;
  else
    return WR_ERR_PROTO;
  return 0;
}

/* Split (section 5.2): the first output keys initiator -> responder. */
static void split(wr_noise *n) {
  uint8_t t1[HASHLEN], t2[HASHLEN];
  hkdf2(n->ck, NULL, 0, t1, t2);
  memcpy(n->initiator ? n->keys.send : n->keys.recv, t1, 32);
  memcpy(n->initiator ? n->keys.recv : n->keys.send, t2, 32);
  memcpy(n->keys.handshake_hash, n->h, 32);
  n->keys.aead = n->chosen;
  sodium_memzero(t1, sizeof t1);
  sodium_memzero(t2, sizeof t2);
  /* Nothing of the handshake's secrets is needed any more. */
  sodium_memzero(n->ck, sizeof n->ck);
  sodium_memzero(n->k, sizeof n->k);
  sodium_memzero(n->e_priv, sizeof n->e_priv);
  sodium_memzero(n->s_priv, sizeof n->s_priv);
  sodium_memzero(n->psk, sizeof n->psk);
  n->state = ST_DONE;
}

static void gen_ephemeral(wr_noise *n) {
  n->rand(n->e_priv, DHLEN, n->rand_ud);
  (void)crypto_scalarmult_base(n->e_pub, n->e_priv);
  mix_e(n, n->e_pub);
}

wr_ssize wr_noise_write(wr_noise *n, uint8_t *dst, size_t cap,
                        uint64_t wall_ms) {
  uint8_t payload[PAYLOAD1_LEN];
  wr_wbuf w;
  int rv;
  if (n->state == ST_WRITE1) {
    if (cap < 2 + MSG1_LEN) return WR_ERR_NOBUF;
    if (n->has_psk) mix_key_and_hash(n, n->psk); /* psk0 */
    gen_ephemeral(n);
    /* es: a wrong pinned key cannot be detected here; the responder's
     * tag check on the payload is what fails. */
    if ((rv = mix_dh(n, n->e_priv, n->rs)) != 0) {
      n->state = ST_FAILED;
      return WR_ERR_INVAL; /* a low-order "fleet key" from our own config */
    }
    wr_wbuf_init(&w, payload, sizeof payload);
    (void)wr_wbuf_u8(&w, WR_NOISE_VERSION);
    (void)wr_wbuf_u64(&w, wall_ms);
    (void)wr_wbuf_u8(&w, AEADS_SUPPORTED);
    (void)wr_wbuf_u8(&w, (uint8_t)n->pref);
    wr_put_u16(dst, MSG1_LEN);
    memcpy(dst + 2, n->e_pub, DHLEN);
    encrypt_and_hash(n, payload, sizeof payload, dst + 2 + DHLEN);
    n->state = ST_READ2;
    return 2 + MSG1_LEN;
  }
  if (n->state == ST_WRITE2) {
    if (cap < 2 + MSG2_LEN) return WR_ERR_NOBUF;
    gen_ephemeral(n);
    if ((rv = mix_dh(n, n->e_priv, n->re)) != 0) {
      n->state = ST_FAILED;
      return WR_ERR_INTERNAL; /* re was checked when message 1 was read */
    }
    payload[0] = (uint8_t)n->chosen;
    wr_put_u16(dst, MSG2_LEN);
    memcpy(dst + 2, n->e_pub, DHLEN);
    encrypt_and_hash(n, payload, PAYLOAD2_LEN, dst + 2 + DHLEN);
    split(n);
    return 2 + MSG2_LEN;
  }
  return WR_ERR_INVAL;
}

wr_ssize wr_noise_write_reject(uint8_t *dst, size_t cap, int err) {
  uint8_t reason;
  if (cap < 2 + REJECT_LEN) return WR_ERR_NOBUF;
  switch (err) {
  case WR_ERR_DECRYPT:
    reason = REASON_AUTH;
    break;
  case WR_ERR_REPLAY:
    reason = REASON_REPLAY;
    break;
  case WR_ERR_VERSION:
    reason = REASON_VERSION;
    break;
  default:
    return WR_ERR_INVAL;
  }
  wr_put_u16(dst, REJECT_LEN);
  dst[2] = REJECT_MAGIC;
  dst[3] = reason;
  return 2 + REJECT_LEN;
}

/* Message 1 at the responder: e, es, payload1; then the policy checks. */
static int read_msg1(wr_noise *n, const uint8_t *msg, size_t len,
                     uint64_t wall_ms) {
  uint8_t payload[WR_NOISE_MAX_MSG];
  uint8_t version = 0, mask = 0, pref = 0;
  uint64_t ts = 0, skew;
  wr_rbuf r;
  int rv;
  if (len < MSG1_LEN) return WR_ERR_PROTO;
  if (n->has_psk) mix_key_and_hash(n, n->psk); /* psk0 */
  memcpy(n->re, msg, DHLEN);
  mix_e(n, n->re);
  if ((rv = mix_dh(n, n->s_priv, n->re)) != 0) return rv;
  rv = decrypt_and_hash(n, msg + DHLEN, len - DHLEN, payload);
  if (rv != 0) return rv;
  wr_rbuf_init(&r, payload, len - DHLEN - TAGLEN);
  (void)wr_rbuf_u8(&r, &version);
  /* The version comes first so a future initiator's longer payload is
   * told apart before anything else is interpreted. */
  if (version != WR_NOISE_VERSION) return WR_ERR_VERSION;
  (void)wr_rbuf_u64(&r, &ts);
  (void)wr_rbuf_u8(&r, &mask);
  (void)wr_rbuf_u8(&r, &pref);
  skew = wall_ms > ts ? wall_ms - ts : ts - wall_ms;
  if (skew > WR_NOISE_MAX_SKEW_MS) return WR_ERR_REPLAY;
  if ((rv = choose_aead(n->pref, mask, pref, &n->chosen)) != 0) return rv;
  /* Only an authenticated, fresh message 1 enters the cache, so garbage
   * cannot flush it. */
  return replay_check_insert(n->rc, n->re, ts, wall_ms);
}

/* Message 2 at the initiator: e, ee, payload2 (or a reject frame). */
static int read_msg2(wr_noise *n, const uint8_t *msg, size_t len) {
  uint8_t payload[WR_NOISE_MAX_MSG];
  int rv;
  if (len == REJECT_LEN && msg[0] == REJECT_MAGIC) {
    switch (msg[1]) {
    case REASON_AUTH:
      return WR_ERR_AUTH;
    case REASON_REPLAY:
      return WR_ERR_REPLAY;
    case REASON_VERSION:
      return WR_ERR_VERSION;
    }
    return WR_ERR_PROTO;
  }
  if (len < MSG2_LEN) return WR_ERR_PROTO;
  memcpy(n->re, msg, DHLEN);
  mix_e(n, n->re);
  if ((rv = mix_dh(n, n->e_priv, n->re)) != 0) return rv;
  if ((rv = decrypt_and_hash(n, msg + DHLEN, len - DHLEN, payload)) != 0)
    return rv;
  if (payload[0] >= 32 || !(AEADS_SUPPORTED & AEAD_BIT(payload[0])))
    return WR_ERR_PROTO;
  n->chosen = (wr_aead)payload[0];
  return 0;
}

wr_ssize wr_noise_read(wr_noise *n, const uint8_t *buf, size_t len,
                       uint64_t wall_ms) {
  size_t mlen;
  int rv;
  if (n->state != ST_READ1 && n->state != ST_READ2) return WR_ERR_INVAL;
  if (len < 2) return 0;
  mlen = wr_get_u16(buf);
  /* Lengths no valid message can have fail before we wait for them. */
  if (mlen > WR_NOISE_MAX_MSG ||
      (n->state == ST_READ1 ? mlen < MSG1_LEN
                            : mlen < MSG2_LEN && mlen != REJECT_LEN)) {
    n->state = ST_FAILED;
    return WR_ERR_PROTO;
  }
  if (len < 2 + mlen) return 0;
  if (n->state == ST_READ1) {
    rv = read_msg1(n, buf + 2, mlen, wall_ms);
    if (rv == 0) n->state = ST_WRITE2;
  } else {
    rv = read_msg2(n, buf + 2, mlen);
    if (rv == 0) split(n);
  }
  if (rv != 0) {
    n->state = ST_FAILED;
    return rv;
  }
  return (wr_ssize)(2 + mlen);
}

int wr_noise_done(const wr_noise *n) { return n->state == ST_DONE; }

int wr_noise_split(wr_noise *n, wr_noise_keys *keys) {
  if (n->state != ST_DONE) return WR_ERR_INVAL;
  *keys = n->keys;
  return 0;
}
