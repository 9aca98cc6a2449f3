/*
 * The request inspector's libuv side (src/inspect/inspect_uv.c): the web
 * server of `warren http` on 127.0.0.1:4040, the capture it fills through
 * the client's tap, and replays to the local server.  See inspect.h for
 * the API and docs/INSPECTOR.md for the page.
 */
#ifndef WARREN_INSPECT_UV_H
#define WARREN_INSPECT_UV_H

#include <uv.h>

#include "warren/client.h"
#include "warren/inspect.h"

typedef struct wr_inspector wr_inspector;

typedef struct wr_inspector_config {
  const char *listen;     /* "127.0.0.1:4040" */
  int next_free;          /* 1: when the port is taken, try the next ones */
  const char *local_host; /* the local server, "127.0.0.1" */
  int local_port;
  const wr_capture_config *capture; /* NULL: the defaults */
} wr_inspector_config;

/* How many ports after the first next_free tries (4040 .. 4059). */
#define WR_INSPECTOR_PORT_TRIES 20
/* Replays in flight at once, and how long one may take. */
#define WR_INSPECTOR_MAX_REPLAYS 16
#define WR_INSPECTOR_REPLAY_MS 60000

/* Listens and serves.  Returns 0, WR_ERR_INVAL (bad address), WR_ERR_NOMEM
 * or a libuv code (UV_EADDRINUSE once every port tried is taken). */
int wr_inspector_start(wr_inspector **pi, uv_loop_t *loop,
                       const wr_inspector_config *cfg);
/* "http://127.0.0.1:4040", valid until the stop. */
const char *wr_inspector_url(const wr_inspector *in);
/* The tap to put into wr_client_config (valid until the stop). */
const wr_client_tap *wr_inspector_tap(wr_inspector *in);
/* The tunnel's public URL, for the page. */
void wr_inspector_set_public_url(wr_inspector *in, const char *url);
/* Closes the server and replays and frees everything; |done| runs after.
 * The client that uses the tap must be stopped first. */
void wr_inspector_stop(wr_inspector *in, void (*done)(void *ud), void *ud);

#endif
