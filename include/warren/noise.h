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
 * On the wire each handshake message is framed as u16 length | message.
 */
#ifndef WARREN_NOISE_H
#define WARREN_NOISE_H

#include "warren/record.h"
#include "warren/types.h"

#define WR_NOISE_KEY_LEN 32
#define WR_NOISE_MAX_MSG 512
#define WR_NOISE_MAX_SKEW_MS (120 * 1000)

typedef struct wr_noise wr_noise;

/* Shared across all responder handshakes of one node: seen ephemerals. */
typedef struct wr_noise_replay wr_noise_replay;

int wr_noise_replay_new(wr_noise_replay **prc, size_t capacity,
                        const wr_mem *mem);
void wr_noise_replay_del(wr_noise_replay *rc);

/* The fleet key pair derives from the cluster secret (see keys below). */
int wr_noise_initiator_new(wr_noise **pn, const uint8_t fleet_pub[32],
                           wr_rand_fn rand, void *rand_ud, const wr_mem *mem);
int wr_noise_responder_new(wr_noise **pn, const uint8_t fleet_priv[32],
                           wr_noise_replay *rc, wr_rand_fn rand, void *rand_ud,
                           const wr_mem *mem);
void wr_noise_del(wr_noise *n);

/*
 * Writes the next handshake message (framed: u16 len | msg) into |dst|.
 * Initiator: message 1; responder: message 2 (after reading message 1).
 * |wall_ms| is Unix time in ms (only message 1 uses it).  Returns the
 * framed length, WR_ERR_NOBUF, or WR_ERR_INVAL when it is not this side's
 * turn.
 */
wr_ssize wr_noise_write(wr_noise *n, uint8_t *dst, size_t cap,
                        uint64_t wall_ms);

/*
 * Reads one framed handshake message from |buf|.  Returns bytes consumed,
 * 0 when |buf| holds less than a whole message, or an error:
 * WR_ERR_PROTO (malformed/oversized), WR_ERR_DECRYPT (wrong fleet key:
 * the message does not authenticate), WR_ERR_REPLAY (stale timestamp or
 * a replayed ephemeral), WR_ERR_INVAL (not this side's turn).
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
  uint8_t handshake_hash[32]; /* channel binding, e.g. for logs */
} wr_noise_keys;
int wr_noise_split(wr_noise *n, wr_noise_keys *keys);

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
/* The fleet public key as clients type it: 43 chars, base64url. */
void wr_keys_format_pub(const uint8_t pub[32], char out[44]);
int wr_keys_parse_pub(const char *text, uint8_t pub[32]);

#endif
