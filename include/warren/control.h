/*
 * Tunnel control messages (src/tunnel/control.c): what rides in mux
 * CONTROL frames once the link is sealed.  The wire format is protobuf
 * (proto/control.proto, one `Control` message per frame); callers see only
 * the plain C structs below, with bounded, NUL-terminated strings, so no
 * protobuf-c type or allocation escapes this unit.
 *
 * The exchange on a client link:
 *
 *   client                          node
 *   Hello{version, token}  ---->
 *   Bind{name, account}    ---->    checks token, version, name
 *                          <----    Bound{name, url}  or  Error{code}
 *                          <----    Goaway{reason, drain_ms} when draining
 *
 * A client prints wr_control_error_line() for an Error and gives up (bad
 * token, bad name, version) or retries (draining, rate limited, internal).
 */
#ifndef WARREN_CONTROL_H
#define WARREN_CONTROL_H

#include "warren/types.h"

#define WR_CONTROL_PROTOCOL_VERSION 1

/* Largest encoded message: the mux's floor for CONTROL payloads (4 KiB),
 * so any control message fits a frame whatever the peer's settings. */
#define WR_CONTROL_MAX_WIRE 4096
#define WR_CONTROL_TOKEN_MAX 512
/* Names up to 255 bytes decode (then fail wr_control_name_valid), so the
 * node can answer BAD_NAME instead of closing the link. */
#define WR_CONTROL_NAME_MAX 255
/* client_version, account, url, message, reason. */
#define WR_CONTROL_TEXT_MAX 255

typedef enum wr_control_type {
  WR_CONTROL_HELLO = 1,
  WR_CONTROL_BIND = 2,
  WR_CONTROL_BOUND = 3,
  WR_CONTROL_ERROR = 4,
  WR_CONTROL_GOAWAY = 5,
} wr_control_type;

/* Error codes: the values of proto/control.proto's ErrorCode. */
enum {
  WR_CONTROL_ERR_UNSPECIFIED = 0,
  WR_CONTROL_ERR_NAME_TAKEN = 1,
  WR_CONTROL_ERR_BAD_TOKEN = 2,
  WR_CONTROL_ERR_UNSUPPORTED_VERSION = 3,
  WR_CONTROL_ERR_BAD_NAME = 4,
  WR_CONTROL_ERR_NODE_DRAINING = 5,
  WR_CONTROL_ERR_INTERNAL = 6,
  WR_CONTROL_ERR_RATE_LIMITED = 7,
  WR_CONTROL_ERR_NOT_HELLO = 8,
  WR_CONTROL_ERR_NAME_MOVED = 9,
};

/* Bind options (Bind.options). */
#define WR_CONTROL_BIND_BALANCE 1u
/* Bind.session: one client process's identity, the same on every link. */
#define WR_CONTROL_SESSION_LEN 16

typedef struct wr_control_msg {
  wr_control_type type;
  union {
    struct {
      uint32_t protocol_version;
      char token[WR_CONTROL_TOKEN_MAX + 1];
      char client_version[WR_CONTROL_TEXT_MAX + 1];
      /* Identity key and proof (identity.h): both present or neither
       * (has_identity 0); other lengths are WR_ERR_PROTO. */
      int has_identity;
      uint8_t identity_key[32];
      uint8_t identity_proof[64];
    } hello;
    struct {
      char name[WR_CONTROL_NAME_MAX + 1]; /* "" = the node picks */
      char account[WR_CONTROL_TEXT_MAX + 1];
      /* All zero when the client sent none (older clients); a session of
       * any other length than WR_CONTROL_SESSION_LEN is WR_ERR_PROTO. */
      uint8_t session[WR_CONTROL_SESSION_LEN];
      uint32_t options; /* WR_CONTROL_BIND_* */
    } bind;
    struct {
      char name[WR_CONTROL_NAME_MAX + 1];
      char url[WR_CONTROL_TEXT_MAX + 1];
    } bound;
    struct {
      uint32_t code; /* WR_CONTROL_ERR_*; unknown values are kept */
      char name[WR_CONTROL_NAME_MAX + 1];
      char message[WR_CONTROL_TEXT_MAX + 1];
    } error;
    struct {
      char reason[WR_CONTROL_TEXT_MAX + 1];
      uint32_t drain_ms;
    } goaway;
  } u;
} wr_control_msg;

/*
 * Encodes |msg| into |dst|.  Every string must be NUL-terminated inside its
 * array.  Returns the encoded length (> 0: the message kind always takes
 * bytes; <= WR_CONTROL_MAX_WIRE), WR_ERR_INVAL (unknown type, unterminated
 * string), WR_ERR_TOOBIG (over WR_CONTROL_MAX_WIRE) or WR_ERR_NOBUF (|cap|
 * too small).
 */
wr_ssize wr_control_encode(const wr_control_msg *msg, uint8_t *dst, size_t cap);

/*
 * Decodes one message from |buf| into |msg| (overwritten).  Returns 0,
 * WR_ERR_PROTO (longer than WR_CONTROL_MAX_WIRE, malformed protobuf, a
 * string over its bound, no known message kind) or WR_ERR_NOMEM.  Strings
 * are copied; nothing points into |buf|.  Embedded NULs end a string.
 */
int wr_control_decode(const uint8_t *buf, size_t len, wr_control_msg *msg);
/* The same with protobuf-c's allocations taken from |mem| (tests). */
int wr_control_decode_mem(const uint8_t *buf, size_t len, wr_control_msg *msg,
                          const wr_mem *mem);

/* 1 when |name| is a DNS label warren serves: 1-63 characters of [a-z0-9-],
 * not starting or ending with '-'.  Upper case is refused, not folded, so
 * one name has one spelling in the route table. */
int wr_control_name_valid(const char *name);

/* One static line for an error code (unknown codes get a generic text). */
const char *wr_control_error_text(uint32_t code);

/*
 * The line a user sees for an Error message, naming the name concerned
 * when there is one, e.g. "name taken: 'app' is bound by another account".
 * Peer-supplied text is made printable (non-printable bytes become '?').
 * Writes at most |cap| bytes including the NUL; returns the length it
 * wanted (snprintf rules).
 */
int wr_control_error_line(const wr_control_msg *msg, char *out, size_t cap);

#endif
