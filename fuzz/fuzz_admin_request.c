/*
 * Fuzz target: arbitrary bytes into the admin API's sans-IO request
 * handler (llhttp strict + head/body bounds + routing + bearer auth).
 *
 * Input layout: byte 0 picks the setup (bit 0: a token is configured),
 * byte 1 the chunk size the rest is fed in (1..256, so splits inside every
 * token get exercised), the rest is what a client sent.  Every response
 * must be a well-formed HTTP/1.1 response whose Content-Length matches
 * its body (or, for HEAD, has no body), and the connection must always
 * make progress.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "warren/admin.h"

static int h_echo(const wr_admin_req *req, wr_admin_resp *resp, void *ud) {
  char v[64];
  int n = wr_admin_req_param(req, "p", v, sizeof v);
  return wr_admin_resp_printf(resp, "%s %s %d %zu", req->method, req->path, n,
                              req->body_len);
}

static int h_json(const wr_admin_req *req, wr_admin_resp *resp, void *ud) {
  return wr_admin_resp_json(resp, json_pack("{s:s}", "path", req->path));
}

static void check_response(const uint8_t *o, size_t len) {
  if (len < 12 || memcmp(o, "HTTP/1.1 ", 9) != 0) abort();
  const uint8_t *end = NULL;
  for (size_t i = 0; i + 4 <= len; i++)
    if (memcmp(o + i, "\r\n\r\n", 4) == 0) {
      end = o + i + 4;
      break;
    }
  if (!end) abort();
  const char *cl = memmem(o, (size_t)(end - o), "Content-Length: ", 16);
  if (!cl) abort();
  size_t n = strtoul(cl + 16, NULL, 10);
  size_t body = len - (size_t)(end - o);
  /* A HEAD answer carries the GET's Content-Length and no body. */
  if (body != n && body != 0) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 2) return 0;
  int with_token = data[0] & 1;
  size_t chunk = (size_t)data[1] + 1;
  data += 2;
  size -= 2;

  wr_metrics *m;
  wr_admin_router *r;
  wr_admin_conn *c;
  uint64_t *ctr;
  if (wr_metrics_new(&m, NULL) != 0) return 0;
  wr_metrics_counter(m, "warren_fuzz_total", "kind", "a\"b", "Fuzz.", &ctr);
  if (wr_admin_router_new(&r, with_token ? "tok" : NULL, m, NULL) != 0) {
    wr_metrics_del(m);
    return 0;
  }
  wr_admin_router_add(r, "GET", "/members", h_json, NULL);
  wr_admin_router_add(r, "POST", "/fault/", h_echo, NULL);
  wr_admin_router_add(r, "PUT", "/x", h_echo, NULL);
  if (wr_admin_conn_new(&c, r, NULL) != 0) goto out;

  size_t off = 0;
  while (off < size) {
    size_t end = off + chunk < size ? off + chunk : size;
    while (off < end) {
      wr_ssize n = wr_admin_conn_feed(c, data + off, end - off);
      if (n < 0) goto done; /* NOMEM only, cannot happen with libc */
      off += (size_t)n;
      const uint8_t *o;
      size_t ol;
      if (wr_admin_conn_output(c, &o, &ol)) {
        check_response(o, ol);
        wr_admin_conn_sent(c);
      } else if (n == 0) {
        abort(); /* no output and no progress: a stuck connection */
      }
    }
  }
done:
  wr_admin_conn_del(c);
out:
  wr_admin_router_del(r);
  wr_metrics_del(m);
  return 0;
}
