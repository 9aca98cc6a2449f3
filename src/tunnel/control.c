/*
 * Control message codec (include/warren/control.h) over protobuf-c
 * (proto/control.proto).
 *
 * Decoding untrusted protobuf with protobuf-c needs three guards:
 *  - a length bound before unpacking (WR_CONTROL_MAX_WIRE): protobuf-c
 *    would otherwise allocate in proportion to whatever it is given;
 *  - an allocator we control: every allocation goes through a tracking
 *    allocator on a wr_mem with a byte budget, which also frees anything
 *    protobuf-c might leave behind after *__free_unpacked, so a decoder bug
 *    can never leak on hostile input;
 *  - copying out: the unpacked message is turned into the fixed-size C
 *    struct (strings checked against their bounds) and freed at once, so
 *    no protobuf-c pointer outlives the call.
 *
 * Budget: a 4 KiB message holds at most ~2048 two-byte unknown fields;
 * protobuf-c keeps one 24-byte record plus a copy of each, i.e. < 100 KiB
 * with our 16-byte headers.  256 KiB is therefore never reached by a
 * well-formed input; it only bounds the damage of a surprise.
 */
#include <protobuf-c/protobuf-c.h>
#include <stdio.h>
#include <string.h>

#include "control.pb-c.h"
#include "warren/control.h"
#include "warren/err.h"
#include "warren/pbmem.h"

#define DECODE_BUDGET (256 * 1024)

/* ---- strings --------------------------------------------------------- */

/* Copies a protobuf-c string (NULL or NUL-terminated) into a bounded
 * field; over the bound is a protocol error. */
static int copy_str(char *dst, size_t cap, const char *src) {
  size_t n = src ? strlen(src) : 0;
  if (n >= cap) return WR_ERR_PROTO;
  if (n) memcpy(dst, src, n);
  dst[n] = '\0';
  return 0;
}

/* The field as a string to pack, or NULL when it is not terminated inside
 * its array (a caller bug). */
static char *field(const char *s, size_t cap) {
  return memchr(s, '\0', cap) ? (char *)s : NULL;
}

#define FIELD(s) field((s), sizeof(s))

wr_ssize wr_control_encode(const wr_control_msg *msg, uint8_t *dst,
                           size_t cap) {
  Warren__Control c = WARREN__CONTROL__INIT;
  Warren__Hello hello = WARREN__HELLO__INIT;
  Warren__Bind bind = WARREN__BIND__INIT;
  Warren__Bound bound = WARREN__BOUND__INIT;
  Warren__Error error = WARREN__ERROR__INIT;
  Warren__Goaway goaway = WARREN__GOAWAY__INIT;
  size_t n;
  switch (msg->type) {
  case WR_CONTROL_HELLO:
    hello.protocol_version = msg->u.hello.protocol_version;
    hello.token = FIELD(msg->u.hello.token);
    hello.client_version = FIELD(msg->u.hello.client_version);
    if (!hello.token || !hello.client_version) return WR_ERR_INVAL;
    if (msg->u.hello.has_identity) {
      hello.identity_key.data = (uint8_t *)msg->u.hello.identity_key;
      hello.identity_key.len = sizeof msg->u.hello.identity_key;
      hello.identity_proof.data = (uint8_t *)msg->u.hello.identity_proof;
      hello.identity_proof.len = sizeof msg->u.hello.identity_proof;
    }
    c.msg_case = WARREN__CONTROL__MSG_HELLO;
    c.hello = &hello;
    break;
  case WR_CONTROL_BIND:
    bind.name = FIELD(msg->u.bind.name);
    bind.account = FIELD(msg->u.bind.account);
    if (!bind.name || !bind.account) return WR_ERR_INVAL;
    /* An all-zero session is "none": not sent, as an older client would. */
    for (size_t i = 0; i < WR_CONTROL_SESSION_LEN; i++)
      if (msg->u.bind.session[i]) {
        bind.session.data = (uint8_t *)msg->u.bind.session;
        bind.session.len = WR_CONTROL_SESSION_LEN;
        break;
      }
    bind.options = msg->u.bind.options;
    c.msg_case = WARREN__CONTROL__MSG_BIND;
    c.bind = &bind;
    break;
  case WR_CONTROL_BOUND:
    bound.name = FIELD(msg->u.bound.name);
    bound.url = FIELD(msg->u.bound.url);
    if (!bound.name || !bound.url) return WR_ERR_INVAL;
    c.msg_case = WARREN__CONTROL__MSG_BOUND;
    c.bound = &bound;
    break;
  case WR_CONTROL_ERROR:
    /* Unknown codes are passed through: proto3 enums are open. */
    error.code = (Warren__ErrorCode)msg->u.error.code;
    error.name = FIELD(msg->u.error.name);
    error.message = FIELD(msg->u.error.message);
    if (!error.name || !error.message) return WR_ERR_INVAL;
    c.msg_case = WARREN__CONTROL__MSG_ERROR;
    c.error = &error;
    break;
  case WR_CONTROL_GOAWAY:
    goaway.reason = FIELD(msg->u.goaway.reason);
    goaway.drain_ms = msg->u.goaway.drain_ms;
    if (!goaway.reason) return WR_ERR_INVAL;
    c.msg_case = WARREN__CONTROL__MSG_GOAWAY;
    c.goaway = &goaway;
    break;
  default:
    return WR_ERR_INVAL;
  }
  n = warren__control__get_packed_size(&c);
  if (n > WR_CONTROL_MAX_WIRE) return WR_ERR_TOOBIG;
  if (n > cap) return WR_ERR_NOBUF;
  if (warren__control__pack(&c, dst) != n) return WR_ERR_INTERNAL;
  return (wr_ssize)n;
}

/* Moves an unpacked Control into |msg|. */
static int convert(const Warren__Control *c, wr_control_msg *msg) {
  int rv = 0;
  switch (c->msg_case) {
  case WARREN__CONTROL__MSG_HELLO:
    msg->type = WR_CONTROL_HELLO;
    msg->u.hello.protocol_version = c->hello->protocol_version;
    if ((rv = copy_str(msg->u.hello.token, sizeof msg->u.hello.token,
                       c->hello->token)) == 0)
      rv = copy_str(msg->u.hello.client_version,
                    sizeof msg->u.hello.client_version,
                    c->hello->client_version);
    msg->u.hello.has_identity = 0;
    if (rv == 0 && (c->hello->identity_key.len || c->hello->identity_proof.len)) {
      if (c->hello->identity_key.len != sizeof msg->u.hello.identity_key ||
          c->hello->identity_proof.len != sizeof msg->u.hello.identity_proof) {
        rv = WR_ERR_PROTO;
      } else {
        memcpy(msg->u.hello.identity_key, c->hello->identity_key.data, 32);
        memcpy(msg->u.hello.identity_proof, c->hello->identity_proof.data,
               64);
        msg->u.hello.has_identity = 1;
      }
    }
    break;
  case WARREN__CONTROL__MSG_BIND:
    msg->type = WR_CONTROL_BIND;
    if ((rv = copy_str(msg->u.bind.name, sizeof msg->u.bind.name,
                       c->bind->name)) == 0)
      rv = copy_str(msg->u.bind.account, sizeof msg->u.bind.account,
                    c->bind->account);
    memset(msg->u.bind.session, 0, sizeof msg->u.bind.session);
    if (rv == 0 && c->bind->session.len != 0) {
      if (c->bind->session.len != WR_CONTROL_SESSION_LEN) rv = WR_ERR_PROTO;
      else memcpy(msg->u.bind.session, c->bind->session.data,
                  WR_CONTROL_SESSION_LEN);
    }
    msg->u.bind.options = c->bind->options;
    break;
  case WARREN__CONTROL__MSG_BOUND:
    msg->type = WR_CONTROL_BOUND;
    if ((rv = copy_str(msg->u.bound.name, sizeof msg->u.bound.name,
                       c->bound->name)) == 0)
      rv = copy_str(msg->u.bound.url, sizeof msg->u.bound.url, c->bound->url);
    break;
  case WARREN__CONTROL__MSG_ERROR:
    msg->type = WR_CONTROL_ERROR;
    msg->u.error.code = (uint32_t)c->error->code;
    if ((rv = copy_str(msg->u.error.name, sizeof msg->u.error.name,
                       c->error->name)) == 0)
      rv = copy_str(msg->u.error.message, sizeof msg->u.error.message,
                    c->error->message);
    break;
  case WARREN__CONTROL__MSG_GOAWAY:
    msg->type = WR_CONTROL_GOAWAY;
    msg->u.goaway.drain_ms = c->goaway->drain_ms;
    rv = copy_str(msg->u.goaway.reason, sizeof msg->u.goaway.reason,
                  c->goaway->reason);
    break;
  default:
    /* Empty, or a kind from a later version: peers only send new kinds
     * after agreeing on a protocol_version that has them. */
    rv = WR_ERR_PROTO;
  }
  return rv;
}

int wr_control_decode_mem(const uint8_t *buf, size_t len, wr_control_msg *msg,
                          const wr_mem *mem) {
  wr_pb_arena t;
  wr_pb_arena_init(&t, mem, DECODE_BUDGET);
  ProtobufCAllocator a = {wr_pb_alloc, wr_pb_free, &t};
  Warren__Control *c;
  int rv;
  memset(msg, 0, sizeof *msg);
  if (len > WR_CONTROL_MAX_WIRE) return WR_ERR_PROTO;
  c = warren__control__unpack(&a, len, buf);
  if (!c) {
    wr_pb_arena_free_all(&t);
    return t.oom ? WR_ERR_NOMEM : WR_ERR_PROTO;
  }
  rv = convert(c, msg);
  warren__control__free_unpacked(c, &a);
  wr_pb_arena_free_all(&t);
  if (rv != 0) memset(msg, 0, sizeof *msg);
  return rv;
}

int wr_control_decode(const uint8_t *buf, size_t len, wr_control_msg *msg) {
  return wr_control_decode_mem(buf, len, msg, NULL);
}

int wr_control_name_valid(const char *name) {
  size_t n = 0;
  if (!name) return 0;
  for (; name[n]; n++) {
    char ch = name[n];
    if (n == 63) return 0;
    if (!((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '-'))
      return 0;
  }
  return n > 0 && name[0] != '-' && name[n - 1] != '-';
}

const char *wr_control_error_text(uint32_t code) {
  switch (code) {
  case WR_CONTROL_ERR_NAME_TAKEN:
    return "name taken: another client is serving this name";
  case WR_CONTROL_ERR_BAD_TOKEN:
    return "bad token: the node did not accept the --token given";
  case WR_CONTROL_ERR_UNSUPPORTED_VERSION:
    return "unsupported version: this client and the node speak different "
           "protocol versions; upgrade the older one";
  case WR_CONTROL_ERR_BAD_NAME:
    return "bad name: use 1-63 characters of a-z, 0-9 and '-', not starting "
           "or ending with '-'";
  case WR_CONTROL_ERR_NODE_DRAINING:
    return "node draining: it takes no new names; connect to another node";
  case WR_CONTROL_ERR_INTERNAL:
    return "internal error on the node; retry later";
  case WR_CONTROL_ERR_RATE_LIMITED:
    return "rate limited: too many requests; retry later";
  case WR_CONTROL_ERR_NOT_HELLO:
    return "protocol error: the first control message must be a hello";
  case WR_CONTROL_ERR_NAME_MOVED:
    return "name moved: another client of the same account now serves this "
           "name";
  }
  return "unknown error from the node";
}

/* |s| made printable and cut to 63 bytes ("..." marks the cut), so a
 * hostile peer cannot drive the user's terminal. */
static void printable(const char *s, char out[68]) {
  size_t i;
  for (i = 0; s[i] && i < 63; i++)
    out[i] = s[i] >= 0x20 && s[i] < 0x7f ? s[i] : '?';
  if (s[i]) {
    memcpy(out + i, "...", 3);
    i += 3;
  }
  out[i] = '\0';
}

int wr_control_error_line(const wr_control_msg *msg, char *out, size_t cap) {
  char name[68];
  uint32_t code;
  if (msg->type != WR_CONTROL_ERROR) return snprintf(out, cap, "not an error");
  code = msg->u.error.code;
  printable(msg->u.error.name, name);
  if (name[0] && code == WR_CONTROL_ERR_NAME_TAKEN)
    return snprintf(out, cap,
                    "name '%s' is taken on this fleet (another client is "
                    "serving it)",
                    name);
  if (name[0] && code == WR_CONTROL_ERR_BAD_NAME)
    return snprintf(out, cap,
                    "bad name: '%s' is not 1-63 characters of a-z, 0-9 and "
                    "'-' (not starting or ending with '-')",
                    name);
  if (name[0] && code == WR_CONTROL_ERR_NAME_MOVED)
    return snprintf(out, cap,
                    "name '%s' moved: another client of the same account "
                    "now serves it; this one stops",
                    name);
  if (code > WR_CONTROL_ERR_NAME_MOVED || code == WR_CONTROL_ERR_UNSPECIFIED) {
    char detail[68];
    printable(msg->u.error.message, detail);
    return snprintf(out, cap, "error %u from the node%s%s", (unsigned)code,
                    detail[0] ? ": " : "", detail);
  }
  return snprintf(out, cap, "%s", wr_control_error_text(code));
}
