/*
 * The libuv tunnel link: socket <-> Noise handshake <-> sealed records <->
 * mux.  No protocol decisions live here; this file moves bytes between a
 * uv_tcp_t and the sans-IO cores and turns their deadlines into a timer.
 *
 * States: HANDSHAKE (noise messages, 10 s limit) -> READY (records + mux)
 *         -> CLOSING (handles closing; `closed` fires once all have).
 *
 * Input: one buffer per link, allocated while bytes are pending and freed
 * when it drains, so an idle link holds no read buffer (1,000 idle tunnels
 * must stay cheap).  Records are opened in place and their plaintext fed
 * to wr_mux_recv.
 *
 * Output: wr_link_flush() arms a uv_prepare handle; once per loop turn
 * the queued mux frames are cut into records of up to 16 KiB and sealed
 * into one buffer sized to what is queued, written with one uv_write.
 * The sealer reads stream bytes where the mux queued them
 * (wr_mux_send_v), so they are copied once: from the queue, encrypted,
 * into the write buffer.  At
 * most WRITE_QUEUE_MAX bytes may wait in the kernel-bound queue; beyond
 * that the mux keeps its frames (and its credit bounds them).
 *
 * Mux events are queued and dispatched after the mux call returns (see
 * link.h): the mux forbids re-entry from its callbacks, and the app wants
 * to answer events with mux calls.
 *
 * Files: this one is the link's life (start, handshake, timer, events,
 * end, close); link_io.c is record I/O and the buffer pools; uvutil.c has
 * the small libuv helpers every adapter uses.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "warren/err.h"
#include "warren/log.h"

#include "frame.h"
#include "link_int.h"

/* The handshake is two small messages; a peer that has not finished it in
 * 10 s is broken or hostile, and holds a socket we want back. */
#define HANDSHAKE_TIMEOUT_MS 10000

/* ---- event queue (mux callbacks -> app, after the mux call returns) ---- */

/*
 * Events are recycled through a free list, one per process like the
 * pools above: a 1 KiB request makes four of them on each side (OPEN,
 * DATA, FIN, CLOSE), and each was a calloc and a free.  EV_POOL_MAX
 * covers a full link read of small requests (~64 KiB of them: a few
 * hundred events) and bounds what a burst leaves behind (256 x 56 bytes).
 */
#define EV_POOL_MAX 256
static link_event *ev_pool;
static unsigned ev_pool_n;

static link_event *ev_get(void) {
  link_event *e = ev_pool;
  if (!e) return calloc(1, sizeof *e);
  ev_pool = e->next;
  ev_pool_n--;
  memset(e, 0, sizeof *e);
  return e;
}

static void ev_put(link_event *e) {
  if (ev_pool_n >= EV_POOL_MAX) {
    free(e);
    return;
  }
  e->next = ev_pool;
  ev_pool = e;
  ev_pool_n++;
}

static int push_event(wr_link *l, enum ev_type type, uint32_t sid,
                      const uint8_t *data, size_t len) {
  link_event *e = ev_get();
  if (!e) return WR_ERR_CALLBACK;
  e->type = type;
  e->sid = sid;
  e->sud = sid ? wr_mux_stream_get_user_data(l->mux, sid) : NULL;
  if (type == EV_DATA && l->claim && data == l->claim &&
      len >= l->claim_len / 2) {
    /* The piece is the record body open_rec decrypted into its own
     * buffer: hand that buffer over instead of copying it. */
    e->data = l->claim;
    e->len = len;
    l->claim = NULL;
  } else if (len) {
    e->data = wr_link_buf_new(len);
    if (!e->data) {
      ev_put(e);
      return WR_ERR_CALLBACK;
    }
    memcpy(e->data, data, len);
    e->len = len;
  }
  if (l->ev_tail) l->ev_tail->next = e;
  else l->ev_head = e;
  l->ev_tail = e;
  return 0;
}

static int mux_on_open(wr_mux *m, uint32_t sid, const uint8_t *meta,
                       size_t len, void *ud) {
  (void)m;
  return push_event(ud, EV_OPEN, sid, meta, len);
}
static int mux_on_data(wr_mux *m, uint32_t sid, const uint8_t *data,
                       size_t len, void *ud) {
  (void)m;
  return len ? push_event(ud, EV_DATA, sid, data, len) : 0;
}
static int mux_on_fin(wr_mux *m, uint32_t sid, void *ud) {
  (void)m;
  return push_event(ud, EV_FIN, sid, NULL, 0);
}
static int mux_on_close(wr_mux *m, uint32_t sid, int64_t code, int by_peer,
                        void *ud) {
  (void)m;
  wr_link *l = ud;
  int rv = push_event(l, EV_CLOSE, sid, NULL, 0);
  if (rv == 0) {
    l->ev_tail->code = code;
    l->ev_tail->by_peer = by_peer;
  }
  return rv;
}
static int mux_on_writable(wr_mux *m, uint32_t sid, void *ud) {
  (void)m;
  return push_event(ud, EV_WRITABLE, sid, NULL, 0);
}
static int mux_on_control(wr_mux *m, const uint8_t *msg, size_t len,
                          void *ud) {
  (void)m;
  return push_event(ud, EV_CONTROL, 0, msg, len);
}
static int mux_on_goaway(wr_mux *m, uint32_t code, void *ud) {
  (void)m;
  int rv = push_event(ud, EV_GOAWAY, 0, NULL, 0);
  if (rv == 0) ((wr_link *)ud)->ev_tail->code = code;
  return rv;
}

static void free_events(wr_link *l) {
  link_event *e = l->ev_head;
  while (e) {
    link_event *n = e->next;
    wr_link_buf_free(e->data);
    ev_put(e);
    e = n;
  }
  l->ev_head = l->ev_tail = NULL;
}

void link_dispatch(wr_link *l) {
  /* Handlers may produce more events (a reset fires stream_close); the
   * outer call drains them all, the inner ones return at once. */
  if (l->dispatching) return;
  l->dispatching = 1;
  while (l->ev_head && !l->closing) {
    link_event *e = l->ev_head;
    l->ev_head = e->next;
    if (!l->ev_head) l->ev_tail = NULL;
    int rv = 0;
    /* The stream's user data as it is now: the app may have set it (an
     * OPEN earlier in this batch) or cleared it since the event was
     * queued.  A closed stream is gone from the mux, so CLOSE events keep
     * the value captured when they were queued (patched after OPEN). */
    if (e->type != EV_CLOSE && e->sid)
      e->sud = wr_mux_stream_get_user_data(l->mux, e->sid);
    switch (e->type) {
    case EV_OPEN:
      if (l->cb.stream_open)
        rv = l->cb.stream_open(l, e->sid, e->data, e->len, l->ud);
      for (link_event *x = l->ev_head; x; x = x->next)
        if (x->sid == e->sid && x->type == EV_CLOSE && !x->sud)
          x->sud = wr_mux_stream_get_user_data(l->mux, e->sid);
      break;
    case EV_DATA:
      if (l->cb.stream_data) {
        rv = l->cb.stream_data(l, e->sid, e->sud, e->data, e->len, l->ud);
        e->data = NULL; /* ownership passed to the app */
      }
      break;
    case EV_FIN:
      if (l->cb.stream_fin) rv = l->cb.stream_fin(l, e->sid, e->sud, l->ud);
      break;
    case EV_CLOSE:
      if (l->cb.stream_close)
        rv = l->cb.stream_close(l, e->sid, e->sud, e->code, e->by_peer, l->ud);
      break;
    case EV_WRITABLE:
      if (l->cb.stream_writable)
        rv = l->cb.stream_writable(l, e->sid, e->sud, l->ud);
      break;
    case EV_CONTROL:
      if (l->cb.control) rv = l->cb.control(l, e->data, e->len, l->ud);
      break;
    case EV_GOAWAY:
      if (l->cb.goaway) rv = l->cb.goaway(l, (uint32_t)e->code, l->ud);
      break;
    }
    wr_link_buf_free(e->data);
    ev_put(e);
    if (rv != 0) link_fail(l, rv < 0 ? rv : WR_ERR_CALLBACK);
  }
  l->dispatching = 0;
  if (!l->closing) wr_link_flush(l);
}

/* ---- timer ---- */

static void on_timer(uv_timer_t *t) {
  wr_link *l = t->data;
  if (l->closing) return;
  if (!l->ready) {
    WR_LOG_WARNF("link", "handshake_timeout", "peer=%s", l->peer);
    link_fail(l, WR_ERR_TIMEOUT);
    return;
  }
  int rv = wr_mux_tick(l->mux, uv_now(l->loop));
  if (rv < 0) {
    link_fail(l, rv);
    return;
  }
  link_dispatch(l);
  if (!l->closing) link_arm_timer(l);
}

void link_arm_timer(wr_link *l) {
  if (!l->ready) return;
  wr_tstamp dl = wr_mux_deadline(l->mux);
  if (dl == WR_TSTAMP_NONE) {
    uv_timer_stop(&l->timer);
    return;
  }
  wr_tstamp now = uv_now(l->loop);
  /* Armed at or before dl already: it fires early and re-arms (an early
   * wr_mux_tick is harmless).  Saves a timer-heap update per flush. */
  if (uv_is_active((uv_handle_t *)&l->timer) &&
      now + uv_timer_get_due_in(&l->timer) <= dl)
    return;
  uv_timer_start(&l->timer, on_timer, dl > now ? dl - now : 0, 0);
}

/* ---- input ---- */

int link_become_ready(wr_link *l) {
  wr_noise_keys k;
  int rv = wr_noise_split(l->noise, &k);
  if (rv != 0) return rv;
  l->aead = k.aead;
  memcpy(l->hh, k.handshake_hash, sizeof l->hh);
  rv = wr_record_new(&l->tx, k.aead, k.send, NULL);
  if (rv == 0) rv = wr_record_new(&l->rx, k.aead, k.recv, NULL);
  sodium_memzero(&k, sizeof k);
  if (rv == WR_ERR_IO)
    /* libcrypto is loaded on the first tunnel (record.h); without it no
     * tunnel can work, so say which library is missing. */
    WR_LOG_ERRORF("link", "record_crypto_unavailable", "peer=%s err=\"%s\"",
                  l->peer, wr_record_crypto_error());
  if (rv != 0) return rv;
  static const wr_mux_callbacks mcb = {
      mux_on_open,     mux_on_data,    mux_on_fin,    mux_on_close,
      mux_on_writable, mux_on_control, mux_on_goaway,
  };
  rv = wr_mux_new(&l->mux, &l->muxcfg, &mcb, l, NULL, uv_now(l->loop));
  if (rv != 0) return rv;
  wr_noise_del(l->noise);
  l->noise = NULL;
  l->ready = 1;
  uv_timer_stop(&l->timer);
  if (l->cb.ready) l->cb.ready(l, l->ud);
  wr_link_flush(l);
  link_arm_timer(l);
  return 0;
}

/* ---- lifetime ---- */

static void on_handle_closed(uv_handle_t *h) {
  wr_link *l = h->data;
  if (--l->handles_open > 0) return;
  if (l->cb.closed) l->cb.closed(l, l->close_err, l->ud);
  if (l->held_w) link_write_put(l->held_w);
  free_events(l);
  wr_mux_del(l->mux);
  wr_record_del(l->tx);
  wr_record_del(l->rx);
  wr_noise_del(l->noise);
  link_in_put(l->in);
  free(l->tcp);
  free(l);
}

void link_fail(wr_link *l, int err) {
  if (l->closing) return;
  l->closing = 1;
  l->close_err = err;
  uv_close((uv_handle_t *)l->tcp, on_handle_closed);
  uv_close((uv_handle_t *)&l->prep, on_handle_closed);
  uv_close((uv_handle_t *)&l->timer, on_handle_closed);
  uv_close((uv_handle_t *)&l->fault_rt, on_handle_closed);
  uv_close((uv_handle_t *)&l->fault_wt, on_handle_closed);
}

void wr_link_close(wr_link *l, int err) { link_fail(l, err); }

static void on_end_shutdown(uv_shutdown_t *req, int status) {
  (void)status;
  wr_link *l = req->data;
  /* UV_ECANCELED: the link closed meanwhile; its memory is still valid,
   * as it is freed only in the handles' close callbacks. */
  link_fail(l, l->close_err);
}

void wr_link_end(wr_link *l, int err) {
  if (l->closing || l->ending) return;
  l->ending = 1;
  l->close_err = err;
  /* What the app queued (an Error saying why) is sealed and handed to
   * the socket now; libuv runs the shutdown once those writes are done,
   * and a close before that would cancel them. */
  link_release_held_write(l);
  if (l->ready && !l->closing) link_do_flush(l);
  if (l->closing) return;
  l->shut.data = l;
  if (uv_shutdown(&l->shut, (uv_stream_t *)l->tcp, on_end_shutdown) != 0)
    link_fail(l, err);
}

wr_mux *wr_link_mux(wr_link *l) { return l->mux; }
int wr_link_is_ready(const wr_link *l) { return l->ready && !l->closing; }
const uint8_t *wr_link_handshake_hash(const wr_link *l) { return l->hh; }

const char *wr_link_peer(const wr_link *l) { return l->peer; }
wr_aead wr_link_aead(const wr_link *l) { return l->aead; }

int wr_link_start(wr_link **pl, uv_loop_t *loop, uv_tcp_t *tcp,
                  const wr_link_config *cfg, const wr_link_callbacks *cb,
                  void *ud, const uint8_t *pre, size_t prelen) {
  if (prelen > IN_CAP) return WR_ERR_TOOBIG;
  wr_link *l = calloc(1, sizeof *l);
  if (!l) return WR_ERR_NOMEM;
  int rv;
  l->loop = loop;
  l->tcp = tcp;
  l->cb = *cb;
  l->ud = ud;
  l->initiator = cfg->initiator;
  l->nodelink = cfg->use_psk;
  snprintf(l->peer, sizeof l->peer, "%s", cfg->peer ? cfg->peer : "?");
  if (cfg->mux.stream_window) l->muxcfg = cfg->mux;
  else wr_mux_config_default(&l->muxcfg, cfg->initiator);
  const uint8_t *psk = cfg->use_psk ? cfg->psk : NULL;
  if (cfg->initiator)
    rv = wr_noise_initiator_new_psk(&l->noise, cfg->fleet_key, psk,
                                    wr_sodium_rand, NULL, NULL);
  else
    rv = wr_noise_responder_new_psk(&l->noise, cfg->fleet_key, psk,
                                    cfg->replay, wr_sodium_rand, NULL, NULL);
  if (rv != 0) {
    free(l);
    return rv;
  }
  if (prelen) {
    l->in = link_in_get();
    if (!l->in) {
      wr_noise_del(l->noise);
      free(l);
      return WR_ERR_NOMEM;
    }
    memcpy(l->in, pre, prelen);
    l->inlen = prelen;
  }
  uv_prepare_init(loop, &l->prep);
  uv_timer_init(loop, &l->timer);
  uv_timer_init(loop, &l->fault_rt);
  uv_timer_init(loop, &l->fault_wt);
  l->prep.data = l->timer.data = l;
  l->fault_rt.data = l->fault_wt.data = l;
  tcp->data = l;
  l->handles_open = 5;
  wr_tcp_tune(tcp);
  *pl = l;

  uv_timer_start(&l->timer, on_timer, HANDSHAKE_TIMEOUT_MS, 0);
  if (cfg->initiator) {
    uint8_t msg[WR_NOISE_MAX_MSG];
    wr_ssize w = wr_noise_write(l->noise, msg, sizeof msg, wr_wall_ms());
    rv = w < 0 ? (int)w : link_write_raw(l, msg, (size_t)w);
    if (rv != 0) {
      link_fail(l, rv);
      return 0; /* `closed` reports it */
    }
  }
  rv = uv_read_start((uv_stream_t *)tcp, link_on_alloc, link_on_read);
  if (rv != 0) {
    link_fail(l, rv);
    return 0;
  }
  if (l->inlen) {
    rv = link_process_input(l);
    if (rv != 0) link_fail(l, rv);
    else link_dispatch(l);
  }
  return 0;
}
