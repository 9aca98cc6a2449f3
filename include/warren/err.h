/*
 * One error space for all of warren: 0 is success, negative is an error.
 *
 *   [-4095, -1]     libuv / errno codes, passed through unchanged
 *   [-5999, -5000]  WR_ERR_* below
 *
 * Codes below WR_ERR_FATAL mean the object that returned them is broken
 * and must be destroyed; codes above it concern one packet, frame or
 * stream and the object stays usable.
 */
#ifndef WARREN_ERR_H
#define WARREN_ERR_H

enum {
  WR_ERR_INVAL = -5001,     /* bad argument from our own code or a user flag */
  WR_ERR_PROTO = -5002,     /* malformed input from a peer */
  WR_ERR_DECRYPT = -5003,   /* authentication tag did not verify */
  WR_ERR_NOBUF = -5004,     /* output buffer too small / queue cap reached */
  WR_ERR_FLOW = -5005,      /* peer exceeded flow-control credit */
  WR_ERR_AGAIN = -5006,     /* need more input bytes */
  WR_ERR_NOTFOUND = -5007,  /* unknown stream, member, name */
  WR_ERR_EXISTS = -5008,    /* already present (name taken, stream id reused) */
  WR_ERR_CLOSED = -5009,    /* operation on a closed stream/link */
  WR_ERR_TOOBIG = -5010,    /* input larger than its configured bound */
  WR_ERR_VERSION = -5011,   /* unsupported protocol version */
  WR_ERR_AUTH = -5012,      /* bad token, wrong key */
  WR_ERR_REPLAY = -5013,    /* replayed or stale handshake */
  WR_ERR_TIMEOUT = -5014,   /* a deadline passed */
  WR_ERR_LIMIT = -5015,     /* a configured count limit was reached */
  WR_ERR_IO = -5016,        /* file or system failure with errno lost */
  WR_ERR_TAKEN = -5017,     /* a name is held by another account */
  WR_ERR_FATAL = -5500,
  WR_ERR_NOMEM = -5501,     /* allocation failed */
  WR_ERR_INTERNAL = -5502,  /* broken invariant of our own */
  WR_ERR_CALLBACK = -5503,  /* an application callback failed */
};

/* A static, human-readable message for any code in either range. */
const char *wr_strerror(int err);

/* 1 when err means "destroy the object". */
static inline int wr_err_is_fatal(int err) { return err <= WR_ERR_FATAL; }

#endif
