/*
 * The client's identity key (see identity.h).  File format, one line:
 *
 *   warren-identity-v1 <64 hex digits: the Ed25519 seed>
 *
 * The seed, not the 64-byte secret key, is stored: the key pair derives
 * from it, so a file cannot hold a secret key that does not match its
 * public half.
 */
#include "warren/identity.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "warren/err.h"

#define MAGIC "warren-identity-v1 "
/* The signed message is this label and the handshake hash, so a
 * signature made for a link cannot be replayed as anything else. */
#define SIG_LABEL "warren identity proof v1"

int wr_identity_path(char *out, size_t cap) {
  const char *p = getenv("WARREN_IDENTITY");
  int n;
  if (p && *p) {
    n = snprintf(out, cap, "%s", p);
  } else if ((p = getenv("XDG_CONFIG_HOME")) && *p) {
    n = snprintf(out, cap, "%s/warren/identity", p);
  } else if ((p = getenv("HOME")) && *p) {
    n = snprintf(out, cap, "%s/.config/warren/identity", p);
  } else {
    return WR_ERR_INVAL;
  }
  return n < 0 || (size_t)n >= cap ? WR_ERR_INVAL : 0;
}

/* mkdir -p of |path|'s directory, new levels 0700. */
static int make_parent(const char *path) {
  char dir[4096];
  if (snprintf(dir, sizeof dir, "%s", path) >= (int)sizeof dir) return -1;
  char *slash = strrchr(dir, '/');
  if (!slash || slash == dir) return 0;
  *slash = 0;
  for (char *p = dir + 1; *p; p++) {
    if (*p != '/') continue;
    *p = 0;
    if (mkdir(dir, 0700) != 0 && errno != EEXIST) return -1;
    *p = '/';
  }
  if (mkdir(dir, 0700) != 0 && errno != EEXIST) return -1;
  return 0;
}

static int create(wr_identity *id, const char *path, char *err,
                  size_t errlen) {
  uint8_t seed[32];
  char line[sizeof MAGIC + 64 + 2];
  char hex[65];
  if (make_parent(path) != 0) {
    snprintf(err, errlen, "cannot create the directory of %s: %s", path,
             strerror(errno));
    return WR_ERR_IO;
  }
  /* O_EXCL: two clients starting at once must not both write a key (one
   * of them would then run with a key that is not the file's). */
  int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
  if (fd < 0) {
    snprintf(err, errlen, "cannot create %s: %s", path, strerror(errno));
    return errno == EEXIST ? WR_ERR_EXISTS : WR_ERR_IO;
  }
  randombytes_buf(seed, sizeof seed);
  sodium_bin2hex(hex, sizeof hex, seed, sizeof seed);
  int n = snprintf(line, sizeof line, MAGIC "%s\n", hex);
  int ok = write(fd, line, (size_t)n) == n && fsync(fd) == 0;
  int saved = errno;
  close(fd);
  sodium_memzero(line, sizeof line);
  sodium_memzero(hex, sizeof hex);
  if (!ok) {
    unlink(path);
    snprintf(err, errlen, "cannot write %s: %s", path, strerror(saved));
    sodium_memzero(seed, sizeof seed);
    return WR_ERR_IO;
  }
  crypto_sign_seed_keypair(id->pk, id->sk, seed);
  sodium_memzero(seed, sizeof seed);
  return 0;
}

int wr_identity_load(wr_identity *id, const char *path, char *err,
                     size_t errlen) {
  for (int attempt = 0; attempt < 2; attempt++) {
    FILE *f = fopen(path, "r");
    if (!f && errno == ENOENT) {
      int rv = create(id, path, err, errlen);
      if (rv != WR_ERR_EXISTS) return rv;
      continue; /* another client made it first: read theirs */
    }
    if (!f) {
      snprintf(err, errlen, "cannot read %s: %s", path, strerror(errno));
      return WR_ERR_IO;
    }
    char buf[256];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    uint8_t seed[32];
    size_t got = 0;
    int rv = 0;
    if (strncmp(buf, MAGIC, strlen(MAGIC)) != 0 ||
        sodium_hex2bin(seed, sizeof seed, buf + strlen(MAGIC), 64, NULL,
                       &got, NULL) != 0 ||
        got != 32 ||
        (buf[strlen(MAGIC) + 64] != '\n' && buf[strlen(MAGIC) + 64] != 0)) {
      snprintf(err, errlen,
               "%s is not a warren identity key (move it away to get a new "
               "one; names bound with the old key are then lost)",
               path);
      rv = WR_ERR_INVAL;
    } else {
      crypto_sign_seed_keypair(id->pk, id->sk, seed);
    }
    sodium_memzero(seed, sizeof seed);
    sodium_memzero(buf, sizeof buf);
    return rv;
  }
  snprintf(err, errlen, "cannot create or read %s", path);
  return WR_ERR_IO;
}

static void proof_message(const uint8_t hh[32], uint8_t *msg) {
  memcpy(msg, SIG_LABEL, sizeof SIG_LABEL - 1);
  memcpy(msg + sizeof SIG_LABEL - 1, hh, 32);
}

void wr_identity_sign(const wr_identity *id, const uint8_t hh[32],
                      uint8_t sig[WR_IDENTITY_SIG_LEN]) {
  uint8_t msg[sizeof SIG_LABEL - 1 + 32];
  proof_message(hh, msg);
  crypto_sign_detached(sig, NULL, msg, sizeof msg, id->sk);
}

int wr_identity_verify(const uint8_t pk[WR_IDENTITY_PK_LEN],
                       const uint8_t hh[32],
                       const uint8_t sig[WR_IDENTITY_SIG_LEN]) {
  uint8_t msg[sizeof SIG_LABEL - 1 + 32];
  proof_message(hh, msg);
  return crypto_sign_verify_detached(sig, msg, sizeof msg, pk) == 0
             ? 0
             : WR_ERR_AUTH;
}

void wr_identity_account(const uint8_t pk[WR_IDENTITY_PK_LEN], char *out) {
  uint8_t h[16];
  crypto_generichash(h, sizeof h, pk, WR_IDENTITY_PK_LEN, NULL, 0);
  memcpy(out, "key:", 4);
  sodium_bin2hex(out + 4, 33, h, sizeof h);
}
