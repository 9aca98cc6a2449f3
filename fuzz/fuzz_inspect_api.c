/*
 * Fuzz target: raw bytes from a client into the inspector's API (the
 * admin core with the inspector's routes, Host/Origin guard, JSON edits
 * and the replay request builder).
 *
 * Input: byte 0 is the chunk size (1..256) the rest is fed in.  A capture
 * holds a few exchanges first, so ids 1-3 exist.  Every answer must be a
 * well-formed HTTP/1.1 response: with Content-Length matching its body,
 * or a text/event-stream.  A replay the API accepts must have been built
 * as one complete request head ending in "Connection: close".
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "warren/inspect.h"

static int rep(const uint8_t *req, size_t len, uint64_t of, uint64_t *pid,
               void *ud) {
  (void)ud;
  (void)of;
  const uint8_t *end = memmem(req, len, "\r\n\r\n", 4);
  if (!end ||
      !memmem(req, (size_t)(end - req) + 4, "Connection: close\r\n\r\n", 21))
    abort();
  *pid = 9;
  return 0;
}

static void check_response(const uint8_t *o, size_t len) {
  if (len < 12 || memcmp(o, "HTTP/1.1 ", 9) != 0) abort();
  const uint8_t *end = memmem(o, len, "\r\n\r\n", 4);
  if (!end) abort();
  end += 4;
  size_t hl = (size_t)(end - o);
  const char *cl = memmem(o, hl, "Content-Length: ", 16);
  if (!cl) {
    if (!memmem(o, hl, "text/event-stream", 17)) abort();
    return;
  }
  size_t n = strtoul(cl + 16, NULL, 10);
  if (len - hl != n && len - hl != 0) abort();
}

static void seed(wr_capture *c) {
  static const char *const ex[][2] = {
      {"GET /a HTTP/1.1\r\nHost: h\r\n\r\n",
       "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"},
      {"POST /b HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabc",
       "HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n"},
      {"GET /ws HTTP/1.1\r\nHost: h\r\nConnection: upgrade\r\n"
       "Upgrade: websocket\r\n\r\n",
       "HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\n"
       "Upgrade: websocket\r\n\r\n\x81\x02hi"},
  };
  for (size_t i = 0; i < 3; i++) {
    wr_capture_conn *cc;
    if (wr_capture_conn_new(c, &cc, 0) != 0) return;
    wr_capture_conn_feed(cc, 0, (const uint8_t *)ex[i][0], strlen(ex[i][0]), 1);
    wr_capture_conn_feed(cc, 1, (const uint8_t *)ex[i][1], strlen(ex[i][1]), 2);
    wr_capture_conn_close(cc, 3);
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  size_t chunk = (size_t)data[0] + 1;
  data++;
  size--;
  wr_capture *cap = NULL;
  wr_inspect_api *api = NULL;
  wr_metrics *m = NULL;
  wr_admin_router *r = NULL;
  wr_admin_conn *c = NULL;
  if (wr_capture_new(&cap, NULL, NULL, NULL, NULL) != 0) return 0;
  seed(cap);
  wr_inspect_api_config ac = {
      .capture = cap, .port = 4040, .local_port = 1, .replay = rep};
  if (wr_inspect_api_new(&api, &ac, NULL) != 0 ||
      wr_metrics_new(&m, NULL) != 0 ||
      wr_admin_router_new(&r, NULL, m, NULL) != 0 ||
      wr_inspect_api_routes(api, r) != 0 || wr_admin_conn_new(&c, r, NULL) != 0)
    goto out;
  size_t off = 0;
  int stuck = 0;
  while (off < size && stuck < 2) {
    size_t n = WR_MIN(chunk, size - off);
    wr_ssize used = wr_admin_conn_feed(c, data + off, n);
    if (used < 0) break;
    off += (size_t)used;
    const uint8_t *o;
    size_t len;
    if (wr_admin_conn_output(c, &o, &len)) {
      check_response(o, len);
      int done = wr_admin_conn_want_close(c) || wr_admin_conn_stream(c);
      wr_admin_conn_sent(c);
      if (done) break;
      stuck = 0;
    } else if (used == 0) {
      stuck++;
    }
  }
out:
  wr_admin_conn_del(c);
  wr_admin_router_del(r);
  wr_metrics_del(m);
  wr_inspect_api_del(api);
  wr_capture_del(cap);
  return 0;
}
