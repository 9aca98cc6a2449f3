/*
 * A client's identity key (src/tunnel/identity.c): what an account is in
 * an open fleet (no tokens file on the nodes).  `warren http` keeps an
 * Ed25519 key in the user's config directory, created on first use, and
 * proves it holds it on every link by signing the link's Noise handshake
 * hash (channel binding: a signature from one link is worthless on
 * another).  The node turns the public key into the account
 * "key:<32 hex digits>", so a restarted client keeps its names, and no
 * other client can take them while they are bound (DESIGN.md, "The
 * ownership table").
 */
#ifndef WARREN_IDENTITY_H
#define WARREN_IDENTITY_H

#include <stddef.h>
#include <stdint.h>

#define WR_IDENTITY_PK_LEN 32
#define WR_IDENTITY_SK_LEN 64
#define WR_IDENTITY_SIG_LEN 64
/* "key:" and 32 hex digits (BLAKE2b-128 of the public key). */
#define WR_IDENTITY_ACCOUNT_LEN 36

typedef struct wr_identity {
  uint8_t pk[WR_IDENTITY_PK_LEN];
  uint8_t sk[WR_IDENTITY_SK_LEN];
} wr_identity;

/*
 * Where the key lives: $WARREN_IDENTITY, else
 * $XDG_CONFIG_HOME/warren/identity, else $HOME/.config/warren/identity.
 * Returns 0, or WR_ERR_INVAL when none of these is set.
 */
int wr_identity_path(char *out, size_t cap);

/*
 * Loads the key at |path|, or creates it (mode 0600, its directory 0700)
 * when the file does not exist.  Returns 0, or an error with a one-line
 * reason in |err|: WR_ERR_IO (cannot read or write), WR_ERR_INVAL (the
 * file is not an identity key; it is never overwritten).
 */
int wr_identity_load(wr_identity *id, const char *path, char *err,
                     size_t errlen);

/* Signs / checks the proof for a link's 32-byte handshake hash.
 * wr_identity_verify returns 0 or WR_ERR_AUTH. */
void wr_identity_sign(const wr_identity *id, const uint8_t hh[32],
                      uint8_t sig[WR_IDENTITY_SIG_LEN]);
int wr_identity_verify(const uint8_t pk[WR_IDENTITY_PK_LEN],
                       const uint8_t hh[32],
                       const uint8_t sig[WR_IDENTITY_SIG_LEN]);

/* "key:" + 32 hex digits, NUL-terminated (|out| >= 37 bytes). */
void wr_identity_account(const uint8_t pk[WR_IDENTITY_PK_LEN], char *out);

#endif
