/*
 * The forwarding core's internals, shared by its files (forward.h is the
 * API, forward.c's top comment the states):
 *   forward.c    the connection: helpers, the visitor's side, the object;
 *   fwd_up.c     the origin's side: upstream data, FIN, end, credit;
 *   fwd_timer.c  the timer: which wait expired, send stalls, shedding.
 * Sans-IO like forward.c.
 */
#ifndef WR_PROXY_FWD_INT_H
#define WR_PROXY_FWD_INT_H

#include "warren/forward.h"
#include "warren/http.h"
#include "warren/http_timer.h"

#define TUNNEL_PATH "GET /_warren/tunnel "
#define NODE_PATH "GET /_warren/node "

enum req_side { REQ_IDLE, REQ_BODY, REQ_TUNNEL };
enum resp_side { RESP_NONE, RESP_INTERIM, RESP_FINAL, RESP_RAW };
enum vin { VIN_READING, VIN_STOPPED, VIN_DONE, VIN_EOF };
enum up_side { UP_NONE, UP_OPEN, UP_ENDED };

struct wr_fwd {
  const wr_fwd_config *cfg;
  const wr_fwd_callbacks *cb;
  const wr_mem *mem;
  void *ud;
  wr_tstamp now; /* of the call in progress */
  wr_fwd_state state;
  enum req_side req;
  int node_link; /* REQ_TUNNEL is a node-to-node link */
  enum resp_side resp;
  enum vin vin;
  enum up_side upst;
  int upgrade_asked; /* an upgrade request waits for its final
                        answer (101 or a refusal) */
  int pause_counted; /* this pipelining pause was counted */
  int draining;      /* wr_fwd_drain: every response closes */
  wr_fwd_upstream up;
  size_t owed, stale; /* credit bookkeeping (top of file) */
  size_t out_pending; /* sent to the visitor, not yet written */
  wr_tstamp drain_at; /* its socket last took bytes (or the
                         first of out_pending was sent) */
  wr_http_timer wt;   /* what the timer waits for (timer.c) */
  wr_http_req *hreq;
  wr_http_resp *hresp;
  uint8_t *rbuf;
  size_t in_off, in_len; /* unparsed input waiting in rbuf */
  size_t pp_len;         /* PROXY header bytes read so far */
  const uint8_t *span;   /* output waiting for credit */
  size_t span_len;
  wr_tstamp end_at;               /* ANSWERED: give up writing at */
  wr_tstamp linger_end, quiet_at; /* LINGER */
  char name[256];
  char peer[64];
  char reqid[80];
};

static inline int terminal(const wr_fwd *f) {
  return f->state == WR_FWD_CLOSED || f->state == WR_FWD_HANDED_OFF;
}

/* ENDING, ANSWERED or LINGER: what is queued is the last. */
static inline int ending(const wr_fwd *f) {
  return f->state == WR_FWD_ENDING || f->state == WR_FWD_ANSWERED ||
         f->state == WR_FWD_LINGER;
}

static inline int winding_down(const wr_fwd *f) {
  return f->state == WR_FWD_ANSWERED || f->state == WR_FWD_LINGER;
}

static inline int writes_done(const wr_fwd *f) { return f->out_pending == 0; }

static inline void count(uint64_t *c) {
  if (c) (*c)++;
}
#define M(f, field) ((f)->cfg->metrics ? (f)->cfg->metrics->field : NULL)

/* forward.c: winding down (only what is queued goes out), the end once
 * all is written, error pages, output to the visitor, parsing what
 * waits, the upstream's detach, ENDING. */
void fwd_wind_down(wr_fwd *f);
void fwd_end(wr_fwd *f);
void fwd_error_page(wr_fwd *f, int status, const char *detail);
void fwd_send_out(wr_fwd *f, uint8_t *buf, size_t len, size_t credit);
void fwd_process(wr_fwd *f);
void fwd_up_detach(wr_fwd *f, int reset);
void fwd_set_ending(wr_fwd *f);

#endif
