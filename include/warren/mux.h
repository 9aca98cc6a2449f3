/*
 * The stream multiplexer (src/tunnel/frame.c, src/tunnel/mux*.c): a sans-IO
 * core that runs many two-way byte streams over one link, below the record
 * layer.  It never touches a socket or a clock:
 *
 *   bytes from the peer (opened records) -> wr_mux_recv(now)  -> callbacks
 *   wr_mux_stream_write / _close / _reset -> wr_mux_send(dst) -> records
 *   wr_mux_deadline() / wr_mux_tick(now)  -> keepalive pings, dead peers
 *
 * Flow control (HTTP/2 style, nghttp2's consume rule): every stream and
 * the link as a whole have receive windows.  The sender may only have
 * window bytes in flight; the receiver returns credit (WINDOW frames) only
 * when the application calls wr_mux_stream_consume() after it has really
 * written the bytes out.  A slow consumer therefore stops its producer
 * without stopping other streams, and neither side ever buffers more than
 * its windows.  A peer that sends beyond credit is a protocol error.
 *
 * Stream ids: the client side (is_client = 1) opens odd ids, the node even
 * ones; id 0 is the link itself.  A stream ends when both directions have
 * sent FIN, or at once on RST (either side), which frees its buffers and
 * returns its unconsumed credit to the link.
 *
 * Control messages (protobuf-c bytes, opaque here) travel in CONTROL
 * frames on the link.  GOAWAY tells the peer to open no new streams.
 *
 * Callback rule (ngtcp2): callbacks must not call back into the mux
 * except wr_mux_stream_set_user_data/_get_user_data; they record what
 * happened and return 0, or WR_ERR_CALLBACK to make the call fail fatally.
 * Every callback's |user_data| is the one given to wr_mux_new (nghttp2);
 * a stream's own pointer is wr_mux_stream_get_user_data(m, sid).
 * Callbacks fire from wr_mux_recv, and also: stream_close from
 * wr_mux_send (the FIN that completes a stream went out) and from
 * wr_mux_stream_reset; stream_writable from wr_mux_send and wr_mux_tick
 * (credit freed by a local reset).
 *
 * After a fatal error (any code returned by recv/send/tick, or NOMEM and
 * CALLBACK from other calls) every later call returns the same code; the
 * adapter closes the link and calls wr_mux_del.
 */
#ifndef WARREN_MUX_H
#define WARREN_MUX_H

#include <sys/uio.h>

#include "warren/types.h"

typedef struct wr_mux wr_mux;

/* Reset codes carried in RST frames (uint32 on the wire). */
enum {
  WR_MUX_RST_CANCEL = 0,          /* the other end went away */
  WR_MUX_RST_REFUSED = 1,         /* stream refused (goaway, too many) */
  WR_MUX_RST_CONNECT_FAILED = 2,  /* local origin refused the connection */
  WR_MUX_RST_TIMEOUT = 3,         /* origin did not answer in time */
  WR_MUX_RST_PROTO = 4,           /* stream-level protocol error */
  WR_MUX_RST_INTERNAL = 5,
  /* Node-to-node streams (docs/NODELINK.md): the owner says why it did not
   * relay a stream.  NO_ROUTE, MOVED and TUNNEL_GONE come at OPEN, before
   * any byte of it was relayed, so the first node may retry it once. */
  WR_MUX_RST_NO_ROUTE = 6,        /* the name is not bound here */
  WR_MUX_RST_MOVED = 7,           /* the name is owned by another node */
  WR_MUX_RST_TUNNEL_GONE = 8,     /* its client's link dropped (at OPEN:
                                     nothing relayed) */
  WR_MUX_RST_TUNNEL_LOST = 9,     /* its client's link dropped while the
                                     stream was relayed (not retried) */
};

typedef struct wr_mux_config {
  int is_client;               /* 1: opens odd ids; 0: even ids */
  uint32_t max_streams;        /* concurrent streams each side may open */
  uint32_t stream_window;      /* initial receive window per stream, bytes */
  uint32_t link_window;        /* receive window of the whole link, bytes */
  uint32_t send_buffer;        /* stream bytes accepted but not yet sent,
                                * all streams together, bytes */
  uint32_t max_meta;           /* largest OPEN metadata accepted, bytes */
  uint32_t max_control;        /* largest CONTROL payload accepted, bytes */
  uint32_t max_control_queue;  /* frames queued to send on the control
                                * queue above which wr_mux_control refuses
                                * more (WR_ERR_NOBUF), bytes */
  wr_tstamp ping_interval;     /* send PING after this much peer silence;
                                * 0 disables keepalive */
  wr_tstamp ping_timeout;      /* declare the link dead after this long */
} wr_mux_config;
/* Bounds checked by wr_mux_new (WR_ERR_INVAL otherwise): windows and
 * send_buffer in [16 KiB, 2^31 - 1], max_streams in [1, 2^20], max_meta
 * and max_control in [4096, 65535], max_control_queue in [4096, 2^31 - 1],
 * ping_timeout >= ping_interval. */

/* Sensible defaults; see mux.c for the derivation of each number. */
void wr_mux_config_default(wr_mux_config *cfg, int is_client);

typedef struct wr_mux_callbacks {
  /* The peer opened |sid| with metadata |meta| (view valid during call). */
  int (*stream_open)(wr_mux *m, uint32_t sid, const uint8_t *meta,
                     size_t len, void *user_data);
  /* Bytes for |sid|.  The view is valid only during the call; the app
   * copies or writes them and later calls wr_mux_stream_consume(). */
  int (*stream_data)(wr_mux *m, uint32_t sid, const uint8_t *data,
                     size_t len, void *user_data);
  /* The peer will send no more on |sid| (FIN). */
  int (*stream_fin)(wr_mux *m, uint32_t sid, void *user_data);
  /* |sid| is gone: both FINs done (code = -1; |by_peer| = 1 when the
   * peer's FIN came last) or reset (code = RST code, |by_peer| says who).
   * Unconsumed bytes of |sid| return to the link; later
   * wr_mux_stream_consume calls for it are harmless no-ops.  The id is
   * never reused. */
  int (*stream_close)(wr_mux *m, uint32_t sid, int64_t code, int by_peer,
                      void *user_data);
  /* Credit returned, or the send buffer drained to half: a write to |sid|
   * that was cut short may be retried. */
  int (*stream_writable)(wr_mux *m, uint32_t sid, void *user_data);
  /* A CONTROL frame's payload (view valid during call). */
  int (*control)(wr_mux *m, const uint8_t *msg, size_t len, void *user_data);
  /* The peer sent GOAWAY: open no new streams on this link. */
  int (*goaway)(wr_mux *m, uint32_t code, void *user_data);
} wr_mux_callbacks;

/* |cfg| NULL means defaults for a node (is_client 0); |cb| may be NULL
 * and any callback may be NULL.  Queues our SETTINGS frame, so
 * wr_mux_want_write is 1 at once.  Returns 0, WR_ERR_INVAL or
 * WR_ERR_NOMEM. */
int wr_mux_new(wr_mux **pm, const wr_mux_config *cfg,
               const wr_mux_callbacks *cb, void *user_data, const wr_mem *mem,
               wr_tstamp now);
/* Frees every stream and queued byte.  No callbacks fire.  NULL ignored. */
void wr_mux_del(wr_mux *m);

/*
 * Feeds bytes from the peer (any split: frames may straddle calls).
 * Consumes all of |len| or fails.  Returns 0, or a fatal code after which
 * the link must close: WR_ERR_PROTO (malformed frame, unknown stream
 * state), WR_ERR_FLOW (credit exceeded), WR_ERR_LIMIT (too many streams),
 * WR_ERR_TOOBIG, WR_ERR_NOMEM, WR_ERR_CALLBACK.  Every malformed input is
 * also counted in wr_mux_stats.
 */
int wr_mux_recv(wr_mux *m, const uint8_t *data, size_t len, wr_tstamp now);

/* 1 when wr_mux_send has work: bytes to produce, or streams blocked on
 * the send buffer to wake (it then fires stream_writable and may return
 * 0). */
int wr_mux_want_write(const wr_mux *m);

/*
 * Produces up to |cap| bytes of frames into |dst|: control frames first,
 * then DATA round robin over streams.  Frames may straddle calls (the
 * receiver reassembles); DATA frames are cut to fit |cap|.  Callers pass a
 * record's worth (16384); |cap| < WR_MUX_MIN_SEND is WR_ERR_INVAL.
 * Returns the length (0 = nothing queued) or a fatal code (WR_ERR_CALLBACK
 * from stream_close/stream_writable, or an earlier fatal error).
 */
#define WR_MUX_MIN_SEND 16
wr_ssize wr_mux_send(wr_mux *m, uint8_t *dst, size_t cap, wr_tstamp now);

/*
 * wr_mux_send without the copy of stream bytes: produces the same frames
 * as wr_mux_send(dst, cap) would, but as a list of pieces in *piovcnt
 * entries of |iov|.  Pieces of 1 KiB or more are views into the mux's
 * queues; frame headers and smaller pieces are copied into |scratch|
 * (which needs |cap| bytes).  The sealer reads the pieces in order
 * (wr_record_seal_v), so stream bytes go from the queue to the record in
 * one pass.  The views stay valid until the next call of any wr_mux_*
 * function on |m|.  |cap| must be in [WR_MUX_MIN_SEND, WR_MUX_SEND_V_MAX]
 * and *piovcnt at least WR_MUX_SEND_IOV_MAX on entry (else WR_ERR_INVAL).
 * Returns the total length (0 = nothing queued; *piovcnt is then 0) or a
 * fatal code, as wr_mux_send.
 */
#define WR_MUX_SEND_V_MAX 16384
/* Every view is at least 1 KiB and every copied run lies between two
 * views, so 16 KiB needs at most 16 views and 17 runs. */
#define WR_MUX_SEND_IOV_MAX 33
wr_ssize wr_mux_send_v(wr_mux *m, uint8_t *scratch, size_t cap,
                       struct iovec *iov, size_t *piovcnt, wr_tstamp now);

/* The next time wr_mux_tick must run, or WR_TSTAMP_NONE. */
wr_tstamp wr_mux_deadline(const wr_mux *m);
/* Sends due PINGs; returns WR_ERR_TIMEOUT when the peer has been silent
 * longer than ping_timeout (close the link). Early calls are harmless. */
int wr_mux_tick(wr_mux *m, wr_tstamp now);

/*
 * Opens a stream carrying |meta| (<= peer's max_meta; 4096 until the
 * peer's SETTINGS arrived).  Returns 0 and sets *psid, or WR_ERR_LIMIT
 * (too many streams: min of ours and the peer's max_streams), WR_ERR_CLOSED
 * (GOAWAY sent or received), WR_ERR_TOOBIG, WR_ERR_NOMEM.  Data may be
 * written at once: the peer sees OPEN before any DATA.
 */
int wr_mux_stream_open(wr_mux *m, const uint8_t *meta, size_t len,
                       uint32_t *psid, void *stream_user_data);

/*
 * Queues up to |len| bytes on |sid| within the send credit (stream and
 * link) and the room left in the link's send_buffer.  Returns the bytes
 * accepted (0 = no credit or room now; wait for stream_writable), WR_ERR_NOTFOUND, WR_ERR_CLOSED (FIN already sent),
 * WR_ERR_NOMEM.
 */
wr_ssize wr_mux_stream_write(wr_mux *m, uint32_t sid, const uint8_t *data,
                             size_t len);
/* Bytes wr_mux_stream_write would accept right now on |sid|. */
size_t wr_mux_stream_credit(const wr_mux *m, uint32_t sid);

/*
 * Zero-copy writes: the app reads from its socket straight into a buffer
 * of the mux's queue blocks, then hands it to the stream.
 * wr_mux_buf_new returns WR_MUX_BUF_CAP bytes (NULL on NOMEM);
 * wr_mux_buf_free gives an unused one back (NULL ignored).
 * wr_mux_stream_write_buf queues the first |len| bytes of |buf| on |sid|
 * and always takes |buf|.  |len| must be within wr_mux_stream_credit
 * (read no more than that).  Fewer than WR_MUX_BUF_CAP / 4 bytes are
 * copied into the queue and |buf| recycled, so queued buffers are never
 * mostly empty.  Returns |len| (fewer, or WR_ERR_NOMEM, only when out of
 * memory while copying), WR_ERR_INVAL (over credit), WR_ERR_NOTFOUND,
 * WR_ERR_CLOSED, or a fatal code.
 */
#define WR_MUX_BUF_CAP 65536
uint8_t *wr_mux_buf_new(wr_mux *m);
void wr_mux_buf_free(wr_mux *m, uint8_t *buf);
wr_ssize wr_mux_stream_write_buf(wr_mux *m, uint32_t sid, uint8_t *buf,
                                 size_t len);
/*
 * Queues |len| bytes at |buf|, a buffer the app owns, on |sid| without
 * copying them: the mux keeps |buf| until those bytes went out in
 * wr_mux_send / wr_mux_send_v output (a view stays valid until the next
 * send call), or the stream or the mux ended, and then calls
 * |release(buf)|.  For a relay that received |buf| from one link and
 * sends it on another.  Always takes |buf|: on any error, and for short
 * pieces (under 4 KiB, copied into the queue), |release| runs before the
 * call returns.  |len| must be within wr_mux_stream_credit.  Returns
 * |len| (fewer, or WR_ERR_NOMEM, only when out of memory while copying),
 * WR_ERR_INVAL (over credit), WR_ERR_NOTFOUND, WR_ERR_CLOSED, WR_ERR_NOMEM
 * or a fatal code.  |release| must not call into the mux.
 */
typedef void (*wr_mux_release)(uint8_t *buf);
wr_ssize wr_mux_stream_write_ext(wr_mux *m, uint32_t sid, uint8_t *buf,
                                 size_t len, wr_mux_release release);
/* Like a write cut short: |sid| gets stream_writable when credit and
 * send-buffer room come back.  Returns the credit now (0 for an unknown or
 * finished stream, which is not registered). */
size_t wr_mux_stream_wait(wr_mux *m, uint32_t sid);

/* Half-closes our direction (FIN after queued data).  Returns 0 (also when
 * already closed) or WR_ERR_NOTFOUND. */
int wr_mux_stream_close(wr_mux *m, uint32_t sid);
/* Aborts |sid| now with |code|: drops queued data, returns credit,
 * fires stream_close (by_peer = 0) before returning.  Returns 0,
 * WR_ERR_NOTFOUND, WR_ERR_NOMEM or WR_ERR_CALLBACK. */
int wr_mux_stream_reset(wr_mux *m, uint32_t sid, uint32_t code);

/* The app has written |n| received bytes of |sid| out: return credit
 * (WINDOW frames go out once half a window is pending).  Returns 0 (also
 * for a stream already closed), WR_ERR_NOTFOUND (never opened),
 * WR_ERR_INVAL (more than was delivered and not yet consumed), WR_ERR_NOMEM.
 */
int wr_mux_stream_consume(wr_mux *m, uint32_t sid, size_t n);

int wr_mux_stream_set_user_data(wr_mux *m, uint32_t sid, void *ud);
void *wr_mux_stream_get_user_data(const wr_mux *m, uint32_t sid);

/* Queues a CONTROL frame (|len| <= peer's max_control, 4096 until its
 * SETTINGS arrived).  Returns 0, WR_ERR_TOOBIG, WR_ERR_NOBUF (the control
 * queue holds max_control_queue bytes not yet sent: nothing was queued,
 * the mux stays usable; an empty queue always takes the frame) or
 * WR_ERR_NOMEM. */
int wr_mux_control(wr_mux *m, const uint8_t *msg, size_t len);
/* Queues GOAWAY; further wr_mux_stream_open calls fail, and streams the
 * peer opens from now on are refused (RST REFUSED).  Existing streams
 * continue.  A second call does nothing.  Returns 0 or WR_ERR_NOMEM. */
int wr_mux_goaway(wr_mux *m, uint32_t code);

typedef struct wr_mux_stats {
  uint64_t frames_in, frames_out;
  uint64_t bytes_in, bytes_out;   /* stream payload bytes */
  uint64_t rx_malformed;          /* frames rejected as malformed */
  uint64_t streams_opened, streams_reset;
  uint32_t streams_active;
  size_t queued_bytes;            /* bytes waiting in wr_mux_send's queue */
} wr_mux_stats;
void wr_mux_get_stats(const wr_mux *m, wr_mux_stats *st);

#endif
