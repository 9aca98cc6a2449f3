/*
 * Forwarding: where a visitor connection's requests go (the upstream).
 *
 * One visitor connection has at most one upstream at a time: a byte
 * stream that carries its requests (rewritten heads, raw bodies) and
 * brings the responses back raw.  The forwarding side talks to it only
 * through this interface, so the same visitor logic drives
 *
 *   - a stream on a local tunnel link (src/proxy/up_tunnel.c): the name
 *     is bound to a client connected to this node;
 *   - a stream on a node-to-node link (src/proxy/up_nodelink.c): the name
 *     is owned by another live node; its OPEN carries wr_fwd_open below
 *     as a protobuf message.
 *
 * Sans-IO: this header reaches no libuv type.  Rules, as for the mux
 * (mux.h): calls into an upstream never call back into the visitor side
 * synchronously; its events (wr_fwd_sink) come later, from the
 * implementation's own I/O callbacks.
 */
#ifndef WARREN_FORWARD_H
#define WARREN_FORWARD_H

#include "warren/types.h"

/* What a stream is opened with (the node-to-node OPEN metadata). */
typedef struct wr_fwd_open {
  const char *name;          /* the public name, lowercase */
  const char *host;          /* Host as the visitor sent it */
  const char *request_id;    /* X-Request-Id of the first request */
  const char *visitor_addr;  /* the visitor's address (after PROXY) */
  const char *scheme;        /* "http" or "https" */
  uint32_t hops;             /* 0 from the ingress; a node receiving 1
                                never forwards again (no loops) */
} wr_fwd_open;

/*
 * The OPEN metadata on the wire: protobuf ForwardOpen (proto/forward.proto,
 * src/proxy/fwd_open.c).  A decoded message lives in a wr_fwd_meta (fixed
 * storage; wr_fwd_meta_view gives the wr_fwd_open view of it).
 */
#define WR_FWD_OPEN_MAX_WIRE 1024
typedef struct wr_fwd_meta {
  char name[64];
  char host[256];
  char request_id[64];
  char visitor_addr[64];
  char scheme[8];
  uint32_t hops;
} wr_fwd_meta;
/* Encodes |m| (NULL strings are empty) into |dst|.  Returns the length,
 * WR_ERR_NOBUF (|cap| too small) or WR_ERR_TOOBIG (a string longer than
 * wr_fwd_meta holds: the peer would refuse it). */
wr_ssize wr_fwd_open_encode(const wr_fwd_open *m, uint8_t *dst, size_t cap);
/* Decodes untrusted bytes.  Returns 0, or WR_ERR_PROTO: not a
 * ForwardOpen, longer than WR_FWD_OPEN_MAX_WIRE, an empty name, a string
 * too long for its field or holding a byte outside printable ASCII (they
 * reach logs and, for the owner, nothing else). */
int wr_fwd_open_decode(const uint8_t *buf, size_t len, wr_fwd_meta *out);
void wr_fwd_meta_view(const wr_fwd_meta *mt, wr_fwd_open *view);

/*
 * The owner's hint before a MOVED reset (protobuf ForwardMoved, a CONTROL
 * message on the node link): stream |sid| should go to node |owner| (a
 * node id, < WR_FWD_OWNER_MAX bytes, printable ASCII).  encode returns the
 * length, WR_ERR_TOOBIG or WR_ERR_NOBUF; decode (untrusted bytes, at most
 * WR_FWD_OPEN_MAX_WIRE) returns 0 or WR_ERR_PROTO (also for an empty
 * owner), with |owner| NUL-terminated.
 */
#define WR_FWD_OWNER_MAX 65
wr_ssize wr_fwd_moved_encode(uint32_t sid, const char *owner, uint8_t *dst,
                             size_t cap);
int wr_fwd_moved_decode(const uint8_t *buf, size_t len, uint32_t *psid,
                        char owner[WR_FWD_OWNER_MAX]);

/* Why an upstream ended (wr_fwd_sink.ended). */
typedef enum wr_fwd_end {
  WR_FWD_END_DONE = 0,  /* both directions finished (FIN both ways) */
  WR_FWD_END_REFUSED,   /* the origin refused the connection */
  WR_FWD_END_RESET,     /* the far end reset the stream */
  WR_FWD_END_GONE,      /* the link under the stream dropped */
  /* Reserved for the node-to-node hop: the owner has no such name, or it
   * moved; a request none of whose bytes left is retried once. */
  WR_FWD_END_NO_ROUTE,
  WR_FWD_END_MOVED,
  /* The node-to-node link to the owner could not be made (connect,
   * upgrade or handshake failed): no byte left. */
  WR_FWD_END_UNREACHABLE,
} wr_fwd_end;

/* Operations on an open upstream; |up| is the implementation's handle. */
typedef struct wr_fwd_upstream_ops {
  /* Writes up to |len| bytes within credit.  Returns the bytes taken (0:
   * no credit now, `writable` follows) or a fatal error for the stream. */
  wr_ssize (*write)(void *up, const uint8_t *data, size_t len);
  /* |n| response bytes (from `data` events) reached the visitor's socket:
   * their credit goes back to the far end (backpressure). */
  void (*consume)(void *up, size_t n);
  /* The visitor will send nothing more (half-close). */
  void (*fin)(void *up);
  /* Detaches: no event comes afterwards.  |reset|: abort the stream
   * (WR_MUX_RST_CANCEL to the far end); 0: it ended already. */
  void (*detach)(void *up, int reset);
  /* Optional: 0 when the upstream should carry no further request (its
   * node link drains: the owner goes away, or the link is rotated).  The
   * core then detaches it once a response ends with nothing else owed,
   * and the visitor's next request opens a new upstream, routed afresh;
   * the visitor never notices.  NULL: always reusable. */
  int (*reusable)(void *up);
} wr_fwd_upstream_ops;

typedef struct wr_fwd_upstream {
  const wr_fwd_upstream_ops *ops; /* NULL: no upstream */
  void *up;
} wr_fwd_upstream;

/* The events of an upstream, delivered to its owner (the visitor side). */
typedef struct wr_fwd_sink {
  /* Response bytes; |buf| is handed over (free it with the allocator the
   * implementation documents; up_tunnel: wr_link_buf_free).  Their credit
   * comes back with ops->consume. */
  void (*data)(void *owner, uint8_t *buf, size_t len);
  /* The far end finished sending (its FIN). */
  void (*fin)(void *owner);
  /* The upstream is gone (already detached: do not call it again). */
  void (*ended)(void *owner, wr_fwd_end why);
  /* Credit came back: write what waits. */
  void (*writable)(void *owner);
} wr_fwd_sink;

/* ------------------------------------------------------------------ */
/*
 * The forwarding core (src/proxy/forward.c): one visitor connection as
 * explicit states, sans-IO.  The adapter (proxy_uv.c) owns the socket, a
 * timer and the write batching; the core decides everything else: what
 * to parse, where the request goes (through the `open` callback), what
 * to write to the visitor (the `send` callback), when to stop reading,
 * when to answer with an error page, when to close, linger or hand the
 * socket to a tunnel link.
 *
 * After every call into the core, the adapter syncs: reads on or off
 * (wr_fwd_want_read), the timer (wr_fwd_deadline), a FIN to the visitor
 * (wr_fwd_want_shutdown), and the end (wr_fwd_state CLOSED/HANDED_OFF).
 * Callbacks never call back into the core (they queue); the adapter
 * reports the completion of writes it did inside `send` later, with
 * wr_fwd_written.
 *
 * The state table is at the top of forward.c and in docs/ARCHITECTURE.md.
 */
typedef struct wr_fwd wr_fwd;

typedef enum wr_fwd_state {
  WR_FWD_PROXY = 0,  /* a PROXY protocol header must come first */
  WR_FWD_OPEN,       /* requests and responses flow */
  WR_FWD_ENDING,     /* the connection ends once what is queued is
                        written (the origin's or the visitor's close) */
  WR_FWD_ANSWERED,   /* winding down: only what is queued (our error page,
                        the last response) goes out; input is dropped */
  WR_FWD_LINGER,     /* all written, FIN sent; dropping input until the
                        visitor closes, goes quiet, or time runs out */
  WR_FWD_HANDED_OFF, /* the socket became a tunnel link (terminal) */
  WR_FWD_CLOSED,     /* close the socket (terminal) */
} wr_fwd_state;

/* Counters the core adds to (each may be NULL). */
typedef struct wr_fwd_metrics {
  uint64_t *requests, *bad, *r404, *r408, *r502, *r504;
  uint64_t *head_timeouts, *pipeline_pauses, *body_rate, *lingers;
  /* Connections the head timer closed before they sent a single byte
   * (not in head_timeouts, which counts heads that started). */
  uint64_t *silent_closes;
  /* Connections closed because the visitor's socket took none of the
   * bytes owed to it for send_stall_ms (send_stalls), or because it held
   * credit its link's other streams needed (wr_fwd_shed: sheds). */
  uint64_t *send_stalls, *sheds;
  /* Requests whose body timed out (silence or rate) after their own
   * response had started: no 408 can be sent then, the stream is reset
   * and the connection closed. */
  uint64_t *body_timeouts_answered;
} wr_fwd_metrics;

typedef struct wr_fwd_callbacks {
  /*
   * Route the first request of the connection and open its upstream:
   * fill |out| and return 0, or return the status to answer with: 404
   * (no route: the page names the host) or 502 with one line in |detail|
   * (|cap| bytes).
   */
  int (*open)(void *ud, const wr_fwd_open *meta, wr_fwd_upstream *out,
              char *detail, size_t cap);
  /* Bytes for the visitor, in order; |buf| (from buf_new, or an upstream's
   * `data` buffer) is handed over.  |credit|: upstream bytes to consume
   * once they are written (give it back in wr_fwd_written). */
  void (*send)(void *ud, uint8_t *buf, size_t len, size_t credit);
  /* The request was a tunnel client's Upgrade: take the socket, with the
   * |len| bytes read past the request.  Return 0 (the core goes to
   * HANDED_OFF) or an error (CLOSED). */
  int (*handoff)(void *ud, const uint8_t *pre, size_t len);
  /* Buffers for composed output (rewritten response heads, error
   * pages), freed by whoever frees the buffers of `send`. */
  uint8_t *(*buf_new)(size_t len);
  void (*buf_free)(uint8_t *buf);
  /* The request was another node's `GET /_warren/node` with `Upgrade:
   * warren-node/1`: take the socket as a node-to-node link, as handoff.
   * NULL: such a request is routed like any other (by Host). */
  int (*handoff_node)(void *ud, const uint8_t *pre, size_t len);
} wr_fwd_callbacks;

typedef struct wr_fwd_config {
  const char *domain;           /* names are NAME.DOMAIN */
  const char *proto;            /* "http" (X-Forwarded-Proto) */
  size_t max_head;              /* request and response heads */
  size_t rbuf_cap;              /* visitor read buffer (64 KiB) */
  uint64_t head_ms, idle_ms, upstream_ms, body_min_rate;
  size_t pipeline_max;          /* responses owed before reads pause */
  uint64_t linger_ms, linger_quiet_ms;
  /* Send stall: bytes owed to the visitor (a response, a WebSocket's
   * frames) that its socket has not taken a single one of for this long
   * close the connection and reset the upstream, freeing the credit they
   * hold.  0: no limit.  A stream that drains, however slowly, is never
   * cut; nor is one with nothing owed (an idle WebSocket). */
  uint64_t send_stall_ms;
  wr_rand_fn rand;              /* request ids */
  void *rand_ud;
  const wr_fwd_callbacks *cb;
  const wr_fwd_metrics *metrics; /* may be NULL */
} wr_fwd_config;

/*
 * A new connection from |peer| ("IP:PORT", for logs), whose address for
 * X-Forwarded-For is |client_ip|; |expect_proxy|: a PROXY header comes
 * first.  |cfg| must outlive the connection.  Returns 0, WR_ERR_NOMEM.
 */
int wr_fwd_new(wr_fwd **pf, const wr_fwd_config *cfg, void *ud,
               const char *peer, const char *client_ip, int expect_proxy,
               const wr_mem *mem, wr_tstamp now);
/* Frees everything; an open upstream is reset. */
void wr_fwd_del(wr_fwd *f);
/*
 * The same for a core embedded in the caller's own allocation (libuv's
 * handle style), so a connection costs the adapter one allocation, not
 * two: |f| points to wr_fwd_size() bytes aligned for any type.  init
 * returns 0 or WR_ERR_NOMEM (then nothing is left to free); free releases
 * what the core holds, not |f|.
 */
size_t wr_fwd_size(void);
int wr_fwd_init(wr_fwd *f, const wr_fwd_config *cfg, void *ud,
                const char *peer, const char *client_ip, int expect_proxy,
                const wr_mem *mem, wr_tstamp now);
void wr_fwd_free(wr_fwd *f);

/* Where the next read goes: returns 0 with |*pbuf|/|*pcap| set, 1 when
 * the input is dropped from here on (read into any scratch buffer), or
 * WR_ERR_NOMEM. */
int wr_fwd_read_buf(wr_fwd *f, uint8_t **pbuf, size_t *pcap);
/* |n| > 0 bytes were read into the buffer wr_fwd_read_buf gave. */
void wr_fwd_read(wr_fwd *f, size_t n, wr_tstamp now);
/* The visitor's side ended: |err| 0 for EOF, < 0 for an error. */
void wr_fwd_read_eof(wr_fwd *f, int err, wr_tstamp now);
/* Bytes given to `send` were written (|status| 0) or not (< 0: the
 * connection closes); |credit| is the sum of theirs. */
void wr_fwd_written(wr_fwd *f, size_t len, size_t credit, int status,
                    wr_tstamp now);

/* The upstream's events (wr_fwd_sink, forwarded by the adapter). */
void wr_fwd_up_data(wr_fwd *f, uint8_t *buf, size_t len, wr_tstamp now);
void wr_fwd_up_fin(wr_fwd *f, wr_tstamp now);
void wr_fwd_up_ended(wr_fwd *f, wr_fwd_end why, wr_tstamp now);
void wr_fwd_up_writable(wr_fwd *f, wr_tstamp now);

/* The visitor's socket took some of the bytes owed to it, short of a
 * whole write (the adapter sees its write queue shrink): progress for the
 * send-stall timer.  A completed write (wr_fwd_written) counts by itself. */
void wr_fwd_send_progress(wr_fwd *f, wr_tstamp now);
/* Upstream credit held by bytes owed to the visitor (sent to it, not yet
 * written), and since when its socket has taken none of them
 * (WR_TSTAMP_NONE when nothing is owed).  The ingress uses both to share
 * a link's window (docs/HTTP.md, "Send stalls"). */
size_t wr_fwd_held(const wr_fwd *f);
wr_tstamp wr_fwd_stalled_since(const wr_fwd *f);
/* The upstream handle (wr_fwd_upstream.up) while one is open, else NULL. */
void *wr_fwd_upstream_of(const wr_fwd *f);
/* Closes a stalled connection whose credit its link's other streams need:
 * the upstream is reset (its credit returns), counted in `sheds`. */
void wr_fwd_shed(wr_fwd *f, wr_tstamp now);

/* Runs an expired timer; an early call is harmless. */
void wr_fwd_tick(wr_fwd *f, wr_tstamp now);
/* Closes now (the ingress stops, the socket failed). */
void wr_fwd_close(wr_fwd *f);

wr_fwd_state wr_fwd_get_state(const wr_fwd *f);
int wr_fwd_want_read(const wr_fwd *f);
/* 1 once the visitor should get our FIN (LINGER); the adapter sends it
 * once and closes if it cannot. */
int wr_fwd_want_shutdown(const wr_fwd *f);
/*
 * The node drains (docs/DEPLOY.md): from now on every response ends the
 * connection ("Connection: close" on each response whose head has not
 * gone out yet, and on the responses to requests still to come), so a
 * keep-alive visitor leaves after its next answer instead of being cut
 * off.  Nothing in flight is interrupted.  Idempotent.
 */
void wr_fwd_drain(wr_fwd *f, wr_tstamp now);
/* 1 while something is in flight: a request being read or forwarded, a
 * response owed or being written, a raw (upgraded) stream, or a PROXY
 * header or request head partly read.  0 for a keep-alive connection
 * between requests, which a draining node may close. */
int wr_fwd_busy(const wr_fwd *f);
wr_tstamp wr_fwd_deadline(const wr_fwd *f);
/* The name this connection serves ("" before its first request). */
const char *wr_fwd_name(const wr_fwd *f);

#endif
