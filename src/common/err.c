#include <string.h>

#include "warren/err.h"

const char *wr_strerror(int err) {
  switch (err) {
  case 0: return "success";
  case WR_ERR_INVAL: return "invalid argument";
  case WR_ERR_PROTO: return "protocol error (malformed input)";
  case WR_ERR_DECRYPT: return "decryption failed (bad key or tampered data)";
  case WR_ERR_NOBUF: return "buffer or queue full";
  case WR_ERR_FLOW: return "flow-control credit exceeded";
  case WR_ERR_AGAIN: return "incomplete input";
  case WR_ERR_NOTFOUND: return "not found";
  case WR_ERR_EXISTS: return "already exists";
  case WR_ERR_CLOSED: return "closed";
  case WR_ERR_TOOBIG: return "too large";
  case WR_ERR_VERSION: return "unsupported protocol version";
  case WR_ERR_AUTH: return "authentication failed";
  case WR_ERR_REPLAY: return "replayed or stale handshake";
  case WR_ERR_TIMEOUT: return "timed out";
  case WR_ERR_LIMIT: return "limit reached";
  case WR_ERR_IO: return "I/O error";
  case WR_ERR_TAKEN: return "name taken";
  case WR_ERR_NOMEM: return "out of memory";
  case WR_ERR_INTERNAL: return "internal error";
  case WR_ERR_CALLBACK: return "callback failed";
  default: break;
  }
  /* libuv codes are negated errno values on Unix, so strerror covers them
   * without linking libuv into the cores. */
  if (err < 0 && err >= -4095)
    return strerror(-err);
  return "unknown error";
}
