/*
 * The request inspector's capture core (src/inspect/capture*.c): sans-IO.
 *
 * `warren http` relays each visitor connection (one mux stream) to a new
 * connection to the local server.  The client hands the bytes of both
 * directions to a capture connection (wr_capture_conn_feed), which parses
 * them with llhttp (requests towards the origin, responses from it,
 * pipelined and keep-alive included; after a 101 the WebSocket frames of
 * both sides) and keeps one record per exchange in a bounded ring
 * (wr_capture).  The capture only reads: whatever it makes of the bytes,
 * they are relayed as they are, and input it cannot parse stops the
 * capture of that connection, never the connection itself.
 *
 * Bounds (all in wr_capture_config): at most max_exchanges records (the
 * oldest are evicted), at most body_cap bytes kept per body (the rest is
 * counted, not kept), at most max_head bytes of each head, the last
 * ws_max_msgs message summaries per WebSocket session, and at most
 * max_bytes of memory in records altogether: a record that would go over
 * evicts the oldest ones, and when it is the oldest itself, keeps no more
 * body.  So memory stays bounded whatever the traffic.
 *
 * Time is the caller's, in microseconds (now_us): exchanges on loopback
 * take well under a millisecond, and the inspector shows their timings.
 *
 * Records are read through the const wr_exchange views below; a view is
 * valid until the next call that feeds, closes, clears or evicts.
 */
#ifndef WARREN_CAPTURE_H
#define WARREN_CAPTURE_H

#include "warren/types.h"

/* Defaults (0 in a config field picks them).  500 exchanges is "the last
 * few hundred" of the issue; 1 MiB per body shows any JSON or form a
 * developer reads by eye; 64 MiB altogether is what a laptop does not
 * notice, and caps the 500 x 2 x 1 MiB worst case (1 GiB). */
#define WR_CAPTURE_MAX_EXCHANGES 500
#define WR_CAPTURE_BODY_CAP (1u << 20)
#define WR_CAPTURE_MAX_HEAD 65536
#define WR_CAPTURE_MAX_BYTES (64u << 20)
#define WR_CAPTURE_WS_MAX_MSGS 100
/* Bytes of each WebSocket message kept as its preview. */
#define WR_CAPTURE_WS_PREVIEW 256
/* While an upgrade request waits for its answer, bytes the visitor sends
 * are held (they are WebSocket frames after a 101, the next request after
 * a refusal); more than this stops the connection's capture. */
#define WR_CAPTURE_UPGRADE_HOLD 16384

typedef struct wr_capture_config {
  size_t max_exchanges;
  size_t body_cap;
  size_t max_head;
  size_t max_bytes;
  size_t ws_max_msgs;
} wr_capture_config;

typedef enum wr_exchange_state {
  WR_EXCHANGE_PENDING = 0, /* request seen, response not complete */
  WR_EXCHANGE_DONE,        /* response complete */
  WR_EXCHANGE_ABORTED,     /* the connection ended before the response did */
  WR_EXCHANGE_UPGRADED,    /* 101: a WebSocket (or other) session, open */
  WR_EXCHANGE_CLOSED,      /* the upgraded session ended */
} wr_exchange_state;

/* One side of an exchange.  The head is kept parsed: |fields| holds
 * |nfields| pairs "name\0value\0" back to back. */
typedef struct wr_capture_msg {
  char *fields;
  size_t fields_len, nfields;
  int head_truncated; /* fields over max_head were dropped */
  uint8_t *body;      /* the first body_len bytes (chunked: decoded) */
  size_t body_len;
  uint64_t body_size; /* all body bytes seen */
  int body_truncated; /* body_size > body_len */
} wr_capture_msg;

typedef struct wr_capture_ws_msg {
  int from_origin;
  int opcode;   /* 1 text, 2 binary, 8 close, 9 ping, 10 pong */
  uint64_t len; /* payload length (all frames of the message) */
  uint64_t at_us;
  size_t preview_len;
  uint8_t preview[WR_CAPTURE_WS_PREVIEW];
} wr_capture_ws_msg;

typedef struct wr_exchange {
  uint64_t id;        /* 1, 2, ...: never reused, even after a clear */
  uint64_t conn;      /* which connection (capture conn number) */
  uint64_t replay_of; /* the exchange this one replays; 0 = visitor */
  wr_exchange_state state;
  char method[24];
  char *target;     /* NUL-terminated, at most max_head bytes */
  char version[12]; /* "HTTP/1.1" */
  int status;       /* 0 until a final response head */
  char reason[64];
  const char *error; /* why the capture stopped (static text) or NULL */
  uint64_t t_start_us, t_resp_us, t_end_us; /* first request byte, first
                                   response byte, response end (0 = not) */
  wr_capture_msg req, resp;
  /* WebSocket sessions: the last ws_max_msgs messages, oldest first at
   * ws[(ws_first + i) % ws_cap]; ws_total counts all of them. */
  wr_capture_ws_msg *ws;
  size_t ws_cap, ws_count, ws_first;
  uint64_t ws_total, ws_bytes[2];
  size_t mem; /* bytes this record holds (for the budget) */
} wr_exchange;

/* What happened to a record, for wr_capture_callbacks.event. */
typedef enum wr_capture_event {
  WR_CAPTURE_EV_NEW = 1, /* a request head was parsed */
  WR_CAPTURE_EV_UPDATE,  /* response head, end, abort, a WebSocket message */
} wr_capture_event;

typedef struct wr_capture_callbacks {
  /* Called after a record changed.  It may read |e| (and the ring) but
   * must not feed, close or clear. */
  void (*event)(const wr_exchange *e, wr_capture_event ev, void *user_data);
} wr_capture_callbacks;

typedef struct wr_capture wr_capture;
typedef struct wr_capture_conn wr_capture_conn;

/* |cfg| may be NULL (defaults); |cb| may be NULL.  Returns 0, WR_ERR_INVAL
 * (max_bytes below one maximal record's heads) or WR_ERR_NOMEM. */
int wr_capture_new(wr_capture **pc, const wr_capture_config *cfg,
                   const wr_capture_callbacks *cb, void *user_data,
                   const wr_mem *mem);
/* Frees the ring and every record.  Connections must be closed first. */
void wr_capture_del(wr_capture *c);

/* The record with |id|, or NULL (evicted, cleared or never made). */
const wr_exchange *wr_capture_get(const wr_capture *c, uint64_t id);
/* Records newest first: the first call with |id| 0 gives the newest, then
 * pass the previous id.  NULL at the end. */
const wr_exchange *wr_capture_older(const wr_capture *c, uint64_t id);
size_t wr_capture_count(const wr_capture *c);
/* Bytes held by records (never above max_bytes plus one record's struct),
 * and records evicted so far. */
size_t wr_capture_mem(const wr_capture *c);
uint64_t wr_capture_evicted(const wr_capture *c);
const wr_capture_config *wr_capture_cfg(const wr_capture *c);
/* Drops every record.  Open connections carry on: their exchanges in
 * flight are no longer recorded, later ones are. */
void wr_capture_clear(wr_capture *c);

/* A connection to capture (a visitor stream, or a replay when |replay_of|
 * is not 0).  Returns 0 or WR_ERR_NOMEM. */
int wr_capture_conn_new(wr_capture *c, wr_capture_conn **pcc,
                        uint64_t replay_of);

#define WR_CAPTURE_TO_ORIGIN 0
#define WR_CAPTURE_FROM_ORIGIN 1
/*
 * Bytes that went one way (|dir|: WR_CAPTURE_TO_ORIGIN or _FROM_ORIGIN),
 * borrowed for the call.  Returns 0; input that is not HTTP (or not
 * WebSocket after a 101) ends the capture of this connection and is
 * reported once as WR_ERR_PROTO (the record in flight says why in
 * |error|), later calls return 0 and record nothing.  WR_ERR_NOMEM: a
 * record could not be made (the capture goes on with the next one).
 */
int wr_capture_conn_feed(wr_capture_conn *cc, int dir, const uint8_t *data,
                         size_t len, uint64_t now_us);
/* The connection ended (both ways): a response delimited by the close is
 * complete, one cut short is ABORTED, a WebSocket session CLOSED.  Frees
 * |cc|. */
void wr_capture_conn_close(wr_capture_conn *cc, uint64_t now_us);

/* Iterates over a message's fields: pass *pos = 0 first.  Returns 1 and
 * sets the views (into the record), 0 at the end. */
int wr_capture_field(const wr_capture_msg *m, size_t *pos, const char **name,
                     const char **value);

#endif
