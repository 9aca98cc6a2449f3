/*
 * wr_link: one encrypted, multiplexed tunnel link over a libuv TCP handle
 * (src/tunnel/tunnel_uv.c).  It owns the socket after the HTTP Upgrade
 * exchange and runs, in order, the Noise NK handshake (noise.h), sealed
 * records (record.h) and the stream multiplexer (mux.h).  Both the node
 * (responder) and the client (initiator) use it.
 *
 * The application talks to the mux directly (wr_link_mux) from its
 * callbacks and then calls wr_link_flush(): output is produced once per
 * loop turn (a uv_prepare handle), so many small writes coalesce into few
 * records and one uv_write.
 *
 * Lifetime: wr_link_close() (or a fatal error) closes the socket; the
 * `closed` callback fires exactly once, after which the link is freed.
 */
#ifndef WARREN_LINK_H
#define WARREN_LINK_H

#include <uv.h>

#include "warren/mux.h"
#include "warren/noise.h"

typedef struct wr_link wr_link;

typedef struct wr_link_callbacks {
  /* Handshake done; the mux is usable. */
  void (*ready)(wr_link *l, void *ud);
  /* The link is gone (err = 0 for a local close, else why).  Every stream
   * is already closed (stream_close is NOT called for them: the app drops
   * its per-stream state here).  The link is freed after this returns. */
  void (*closed)(wr_link *l, int err, void *ud);
  /*
   * The mux events, delivered after the mux call that produced them has
   * returned, so handlers may call any mux function (the mux forbids that
   * inside its own callbacks).  |sud| is the stream's user data as it was
   * when the event happened (NULL once the app cleared it).
   * stream_data hands over |buf| (from wr_link_buf_new: the app gives it
   * back with wr_link_buf_free, never free()): it is what the app writes
   * to its socket, so the bytes are copied only once; the app returns
   * credit with wr_mux_stream_consume after the write.
   * A handler returning non-zero closes the link.
   */
  int (*stream_open)(wr_link *l, uint32_t sid, const uint8_t *meta,
                     size_t len, void *ud);
  int (*stream_data)(wr_link *l, uint32_t sid, void *sud, uint8_t *buf,
                     size_t len, void *ud);
  int (*stream_fin)(wr_link *l, uint32_t sid, void *sud, void *ud);
  int (*stream_close)(wr_link *l, uint32_t sid, void *sud, int64_t code,
                      int by_peer, void *ud);
  int (*stream_writable)(wr_link *l, uint32_t sid, void *sud, void *ud);
  int (*control)(wr_link *l, const uint8_t *msg, size_t len, void *ud);
  int (*goaway)(wr_link *l, uint32_t code, void *ud);
} wr_link_callbacks;

typedef struct wr_link_config {
  int initiator;                 /* 1: client side (Noise initiator) */
  uint8_t fleet_key[32];         /* initiator: fleet public key;
                                    responder: fleet private key */
  wr_noise_replay *replay;       /* responder only: the node's cache */
  int use_psk;                   /* 1: a node-to-node link, Noise NKpsk0
                                    with |psk| (noise.h) */
  uint8_t psk[32];
  wr_mux_config mux;             /* wr_mux_config_default() if zeroed */
  const char *peer;              /* "127.0.0.1:8081", for messages */
} wr_link_config;

/*
 * Takes over |tcp| (already connected, reading stopped; its memory must
 * come from malloc and is freed by the link).  |pre|/|prelen| are bytes
 * already read past the Upgrade exchange (copied).  Returns 0 or an error
 * (then |tcp| is left untouched and still the caller's).
 */
int wr_link_start(wr_link **pl, uv_loop_t *loop, uv_tcp_t *tcp,
                  const wr_link_config *cfg, const wr_link_callbacks *cb,
                  void *ud, const uint8_t *pre, size_t prelen);

wr_mux *wr_link_mux(wr_link *l);
/* Schedules output for this loop turn (call after any mux API call). */
void wr_link_flush(wr_link *l);
/* Closes the link; `closed` fires later with |err|.  Output not yet
 * written is dropped. */
void wr_link_close(wr_link *l, int err);
/* Closes the link after what is queued (e.g. a CONTROL Error saying why)
 * was written: sends it, then FIN, then closes; `closed` fires later with
 * |err|.  A peer that stops reading keeps it open at most until the mux's
 * keepalive gives up on it. */
void wr_link_end(wr_link *l, int err);
int wr_link_is_ready(const wr_link *l);
const char *wr_link_peer(const wr_link *l);
/* The Noise handshake hash (32 bytes, the same at both ends), valid once
 * the link is ready: what an identity proof signs (identity.h). */
const uint8_t *wr_link_handshake_hash(const wr_link *l);
/* The AEAD the handshake chose (valid once ready). */
wr_aead wr_link_aead(const wr_link *l);

/*
 * The buffers stream_data hands over, from a small per-process pool (size
 * classes of 2-16 KiB, at most 1 MiB kept free; link_io.c says why), so
 * that the steady state allocates nothing per record.  wr_link_buf_new
 * returns at least |len| bytes, or NULL when out of memory; the app may
 * use it for its own bytes that travel the same way (a composed response
 * head, an error page), so that everything it writes is freed one way.
 * wr_link_buf_free takes only such buffers (NULL is ignored).  One loop
 * thread per process: the pool has no lock.
 */
uint8_t *wr_link_buf_new(size_t len);
void wr_link_buf_free(uint8_t *buf);

/*
 * Fault injection (src/node/faults.c; docs/FAULTS.md): a process-wide
 * tap shown every chunk a link reads (|out| 0) or is about to write
 * (|out| 1), with the link's kind (|nodelink| 1 for a node-to-node link,
 * 0 for a tunnel).  It returns 0 to let the bytes pass, or 1 to cut the
 * link (closed with WR_ERR_CLOSED, as a path that went away).  When it
 * passes them it may set |*delay_ms| (0 on entry): the link then holds
 * that chunk, and reads or produces nothing more in that direction,
 * until the delay is over (a slow path; order is kept, and the held
 * bytes are bounded by the link's input buffer or one write).  It must
 * not call into the link.  NULL removes it.
 */
typedef int (*wr_link_tap)(const wr_link *l, int nodelink, int out,
                           size_t len, uint32_t *delay_ms, void *ud);
void wr_link_set_tap(wr_link_tap tap, void *ud);

/* Wall-clock Unix time in ms, for the handshake's timestamp. */
uint64_t wr_wall_ms(void);
/* Sets TCP_NODELAY and keepalive on a TCP handle. */
void wr_tcp_tune(uv_tcp_t *tcp);
/* Writes |bufs| to |s| now if the socket takes them all (returns 1: no
 * callback will come, the buffers are free again), else queues what is
 * left with uv_write (returns 0: |cb| comes as usual).  < 0: uv_write
 * failed and no callback will come.  |bufs| is modified (the written
 * part skipped).  libuv 1.44 re-arms the fd in epoll (one epoll_ctl)
 * after every uv_write that completes, even at once; a write the socket
 * takes whole costs only the write(2) this way. */
int wr_uv_write_now(uv_write_t *req, uv_stream_t *s, uv_buf_t *bufs,
                    unsigned n, uv_write_cb cb);
/* wr_uv_write_now's first half, for callers that allocate their write
 * request only when one is needed (a small response usually goes out
 * whole): returns 1 when the socket took all of |*pbufs|, else 0 with
 * |*pbufs| and |*pn| moved past what it took (the first buffer possibly
 * cut), for uv_write to queue.  Errors other than UV_EAGAIN are left
 * for that uv_write to report. */
int wr_uv_try_write_all(uv_stream_t *s, uv_buf_t **pbufs, unsigned *pn);
/* Parses "HOST:PORT" (IPv4, [IPv6] or "localhost") into a sockaddr. */
int wr_parse_hostport(const char *s, struct sockaddr_storage *ss);
/* libsodium randomness as a wr_rand_fn. */
void wr_sodium_rand(uint8_t *dst, size_t len, void *ud);

#endif
