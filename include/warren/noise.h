/*
 * The tunnel handshake (src/tunnel/noise.c): Noise NK
 * (Noise_NK_25519_ChaChaPoly_BLAKE2b, noiseprotocol.org rev 34) built from
 * libsodium primitives, as in WireGuard and rathole.
 *
 *   NK:  <- s
 *        ...
 *        -> e, es      (message 1, initiator = client)
 *        <- e, ee      (message 2, responder = node)
 *
 * The client pins the fleet's static public key (`warren pubkey FILE`), so
 * it talks only to a node holding the fleet secret; the node learns
 * nothing about the client here (auth tokens ride in the encrypted hello
 * control message after the handshake).
 *
 * Message 1's payload carries the initiator's wall-clock time and the
 * AEADs it supports; the responder rejects timestamps outside
 * WR_NOISE_MAX_SKEW_MS and ephemeral keys it has already seen inside that
 * window (a replay cache), so a replayed message 1 fails at once with
 * WR_ERR_REPLAY instead of leaving a half-open session.  Message 2's
 * payload names the AEAD chosen for the records.
 *
 * On the wire each handshake message is framed as u16 length | message
 * (big-endian; message 1 is 59 bytes, message 2 is 49).  A responder that
 * rejects message 1 may answer with a 4-byte reject frame instead of
 * message 2 (wr_noise_write_reject), so the client can say why.
 * docs/TUNNEL-CRYPTO.md has the details and the reasoning.
 */
#ifndef WARREN_NOISE_H
#define WARREN_NOISE_H

#include "warren/record.h"
#include "warren/types.h"

#define WR_NOISE_KEY_LEN 32
#define WR_NOISE_MAX_MSG 512
#define WR_NOISE_MAX_SKEW_MS (120 * 1000)
#define WR_NOISE_VERSION 1 /* first byte of message 1's payload */

typedef struct wr_noise wr_noise;

/* Shared across all responder handshakes of one node: seen ephemerals. */
typedef struct wr_noise_replay wr_noise_replay;

/*
 * A replay cache holding up to |capacity| initiator ephemeral keys, each
 * until its message's timestamp is WR_NOISE_MAX_SKEW_MS old.  Entries
 * sit in buckets of 16 by key, so a lookup costs the same at any size.
 * When a bucket is full of live entries its oldest is overwritten (counted
 * by wr_noise_replay_evicted), so size it for the handshake rate: an entry
 * lives at most 2 * WR_NOISE_MAX_SKEW_MS = 240 s, so 65536 entries (3 MiB)
 * cover 270 handshakes/s.  Returns 0, WR_ERR_INVAL (capacity 0) or
 * WR_ERR_NOMEM.  Not thread-safe: one per event loop.
 */
int wr_noise_replay_new(wr_noise_replay **prc, size_t capacity,
                        const wr_mem *mem);
void wr_noise_replay_del(wr_noise_replay *rc);
/* Live entries overwritten because the cache was full (a metric). */
uint64_t wr_noise_replay_evicted(const wr_noise_replay *rc);

/*
 * The fleet key pair derives from the cluster secret (see keys below).
 * |rand| fills the ephemeral private key (NULL: libsodium randombytes_buf;
 * tests pass wr_pcg32_fill).  The responder requires a replay cache |rc|,
 * which must outlive it (it also keeps the fleet public key, so each
 * handshake saves one X25519 operation).  Both return 0, WR_ERR_INVAL (NULL key or cache)
 * or WR_ERR_NOMEM.  The AEAD preference starts as wr_aead_preferred().
 */
int wr_noise_initiator_new(wr_noise **pn, const uint8_t fleet_pub[32],
                           wr_rand_fn rand, void *rand_ud, const wr_mem *mem);
int wr_noise_responder_new(wr_noise **pn, const uint8_t fleet_priv[32],
                           wr_noise_replay *rc, wr_rand_fn rand, void *rand_ud,
                           const wr_mem *mem);
/*
 * Node-to-node links (docs/NODELINK.md): the same handshake as
 * Noise_NKpsk0_25519_ChaChaPoly_BLAKE2b, with |psk| (32 bytes,
 * wr_keys_node_psk) mixed in before message 1.  Only a holder of the
 * cluster secret can produce a message 1 the responder accepts, and only
 * one can answer it, so both ends prove the secret; a tunnel client, which
 * knows only the fleet public key, fails with WR_ERR_DECRYPT at the
 * responder.  |psk| NULL is plain NK (the functions above).  Returns as
 * those do.
 */
int wr_noise_initiator_new_psk(wr_noise **pn, const uint8_t fleet_pub[32],
                               const uint8_t *psk, wr_rand_fn rand,
                               void *rand_ud, const wr_mem *mem);
int wr_noise_responder_new_psk(wr_noise **pn, const uint8_t fleet_priv[32],
                               const uint8_t *psk, wr_noise_replay *rc,
                               wr_rand_fn rand, void *rand_ud,
                               const wr_mem *mem);
/* Wipes every key and frees.  NULL is ignored. */
void wr_noise_del(wr_noise *n);

/*
 * Overrides this side's AEAD preference (tests, benchmarks); only before
 * the first message.  AES-256-GCM is chosen only when both sides prefer
 * it, else ChaCha20-Poly1305.  Returns 0 or WR_ERR_INVAL.
 */
int wr_noise_set_aead(wr_noise *n, wr_aead preferred);

/*
 * Writes the next handshake message (framed: u16 len | msg) into |dst|.
 * Initiator: message 1; responder: message 2 (after reading message 1).
 * |wall_ms| is Unix time in ms (only message 1 uses it).  Returns the
 * framed length, WR_ERR_NOBUF (nothing changed), or WR_ERR_INVAL when it
 * is not this side's turn (or the pinned key is a low-order point).  The
 * responder is done after writing message 2.
 */
wr_ssize wr_noise_write(wr_noise *n, uint8_t *dst, size_t cap,
                        uint64_t wall_ms);

/*
 * Reads one framed handshake message from |buf|.  Returns bytes consumed,
 * 0 when |buf| holds less than a whole message (a length that no message
 * can have fails at once instead), or an error:
 * WR_ERR_PROTO (malformed/oversized, low-order key, no common AEAD),
 * WR_ERR_DECRYPT (wrong fleet key: the message does not authenticate;
 * at the initiator: message 2 was tampered with), WR_ERR_REPLAY (stale
 * timestamp or a replayed ephemeral), WR_ERR_VERSION (message 1 of another
 * protocol version), WR_ERR_INVAL (not this side's turn, or an earlier
 * error).  At the initiator a reject frame gives WR_ERR_AUTH (the node
 * could not authenticate message 1: wrong --fleet-key), WR_ERR_REPLAY
 * (clock skew) or WR_ERR_VERSION.  After an error the handshake is dead.
 * |wall_ms| (Unix time in ms) is used by the responder only.
 */
wr_ssize wr_noise_read(wr_noise *n, const uint8_t *buf, size_t len,
                       uint64_t wall_ms);

/* 1 once both messages have been processed on this side. */
int wr_noise_done(const wr_noise *n);

/*
 * After wr_noise_done: the two record keys and the chosen AEAD.
 * Returns 0 or WR_ERR_INVAL when the handshake is not complete.
 */
typedef struct wr_noise_keys {
  uint8_t send[32];
  uint8_t recv[32];
  wr_aead aead;
  uint8_t handshake_hash[32]; /* first half of h: channel binding, logs */
} wr_noise_keys;
int wr_noise_split(wr_noise *n, wr_noise_keys *keys);

/*
 * The responder's answer to a message 1 that wr_noise_read rejected with
 * |err| (WR_ERR_DECRYPT, WR_ERR_REPLAY or WR_ERR_VERSION): a 4-byte frame
 * (u16 2 | 0xff | reason) to write before closing.  It is not
 * authenticated, so it only helps an honest client explain the failure.
 * Returns 4, WR_ERR_NOBUF, or WR_ERR_INVAL for other errors (send nothing,
 * just close).
 */
wr_ssize wr_noise_write_reject(uint8_t *dst, size_t cap, int err);

/* Testing only: the Noise HKDF with two outputs (spec section 4.3). */
void wr__noise_hkdf(const uint8_t ck[64], const uint8_t *ikm, size_t len,
                    uint8_t o1[64], uint8_t o2[64]);

/*
 * Cluster secret handling (`warren keygen`, `warren pubkey`): a cluster
 * secret is 32 random bytes, stored as 64 hex characters plus newline.
 * The gossip key and the fleet Noise key pair are derived from it with
 * BLAKE2b under distinct labels, so one file configures a node.
 */
int wr_keys_parse_secret(const char *text, size_t len, uint8_t secret[32]);
void wr_keys_format_secret(const uint8_t secret[32], char out[65]);
void wr_keys_fleet_keypair(const uint8_t secret[32], uint8_t pub[32],
                           uint8_t priv[32]);
void wr_keys_gossip_key(const uint8_t secret[32], uint8_t key[32]);
/* The node-link pre-shared key: BLAKE2b-256(key = secret,
 * "warren/1 node link psk").  Never leaves the nodes. */
void wr_keys_node_psk(const uint8_t secret[32], uint8_t psk[32]);
/* The fleet public key as clients type it: 43 chars, base64url. */
void wr_keys_format_pub(const uint8_t pub[32], char out[44]);
int wr_keys_parse_pub(const char *text, uint8_t pub[32]);

#endif
