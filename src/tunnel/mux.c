/*
 * The stream multiplexer: a sans-IO core running many two-way byte streams
 * over one link (see include/warren/mux.h for the API, frame.c for the
 * frame layout, docs/MUX.md for the whole protocol).
 *
 * Link life:
 *   Each side's first frame is SETTINGS (its receive windows, how many
 *   streams the peer may open, its largest OPEN metadata and CONTROL
 *   payload).  Until a side has the peer's SETTINGS it assumes the protocol
 *   floors below (16 KiB windows, 4 KiB metadata and control messages) and
 *   adds the difference when they arrive, as HTTP/2 does with
 *   SETTINGS_INITIAL_WINDOW_SIZE.  A peer whose first frame is anything
 *   else is broken (WR_ERR_PROTO).
 *
 * Stream life (one direction each way):
 *   OPEN --DATA*--> FIN        our side: fin_queued (app closed) -> fin_sent
 *                              (the FIN left in wr_mux_send output)
 *   peer side: OPEN seen -> fin_recv.
 *   fin_sent && fin_recv -> stream_close(code -1); RST either way ->
 *   stream_close(code) at once.  A closed stream's id is never reused: ids
 *   grow by two, so "id <= highest seen" tells a closed stream (frames for
 *   it are late and ignored) from one never opened (WR_ERR_PROTO).
 *
 * Flow control (nghttp2's consume rule).  Every stream and the link have a
 * receive window.  The sender takes credit when wr_mux_stream_write
 * accepts bytes; the receiver charges a DATA frame's length against the
 * stream and the link when its header arrives (over credit: WR_ERR_FLOW)
 * and returns credit only when the app calls wr_mux_stream_consume, in a
 * WINDOW frame once half a window is pending (one WINDOW per 512 KiB with
 * the defaults: 0.002 % overhead).  So neither side buffers more than the
 * windows: the sender's stream queues hold at most its credit, the
 * receiver's app holds at most the window it granted.
 *   Bytes that can no longer reach the app go back to the link at once:
 *   a reset or closed stream's unconsumed bytes, and DATA arriving late
 *   for a stream already gone.  The sender likewise gets back the link
 *   credit of queued bytes it drops on a reset, since the peer never
 *   counted them.
 *
 * Send buffer.  Credit bounds what the peer must hold; send_buffer bounds
 * what we hold: wr_mux_stream_write accepts no more than send_buffer
 * bytes queued over all streams, and a stream cut short by it is woken
 * (stream_writable) once wr_mux_send has drained the queue to half.
 *
 * Sending.  wr_mux_send builds frames straight into the caller's record
 * buffer: first the control queue (pre-encoded OPEN, RST, WINDOW, PING,
 * PONG, GOAWAY, CONTROL and SETTINGS frames, in order, which may straddle
 * calls), then one DATA frame per stream with queued bytes, round robin,
 * so a bulk stream cannot starve a small one.  Stream bytes live in a
 * chain of 16 KiB blocks recycled through a free list: the steady state
 * does one copy in (wr_mux_stream_write) and one copy out (into the
 * record) and no malloc.
 *
 * Receiving.  The frame reader hands DATA out as views into the opened
 * record (no copy); other frames whole.  Stream lookup is a chained hash
 * on the id (ids are sequential, so the low bits spread perfectly).
 *
 * Keepalive.  Any received byte is liveness.  After ping_interval of
 * silence one PING goes out; after ping_timeout of silence wr_mux_tick
 * returns WR_ERR_TIMEOUT.  With ping_timeout = 2 * ping_interval a dead
 * link is noticed within two intervals, and a live one always has one
 * interval for its PONG to come back.
 *
 * Abuse limits.  A peer opening more than max_streams gets RST REFUSED per
 * stream; if more refusals pile up unsent than max(64, max_streams), or
 * more than 64 PONGs, the peer is flooding us faster than we can answer
 * and the link dies with WR_ERR_LIMIT, so the control queue stays bounded.
 *
 * Files: this one is the link (SETTINGS, frames in and out, keepalive,
 * GOAWAY, CONTROL); streams are mux_stream.c, flow control and send
 * scheduling mux_credit.c, memory and the send output mux_queue.c
 * (mux_int.h lists them).
 */
#include <string.h>

#include "mux_int.h"

/*
 * Protocol floors: what a side may assume of its peer before SETTINGS
 * arrive, and therefore the smallest values a config may use.  16 KiB of
 * window lets the first record of a fresh stream go out without waiting a
 * round trip for SETTINGS; 4 KiB covers a typical request head and the
 * hello/auth control messages.
 */
#define FLOOR_WINDOW 16384
#define FLOOR_META 4096
#define FLOOR_CONTROL 4096
#define MAX_STREAMS_CFG (1u << 20)
/* A DATA frame is not started in less room than this when more bytes are
 * waiting and the record already holds other frames: the next record can
 * carry a full frame instead. */
#define MIN_DATA_FRAME 256
#define MAX_PONG_UNSENT 64
#define MIN_REFUSED_UNSENT 64

/*
 * Defaults.
 *
 * stream_window = 1 MiB.  A stream can move at most one window per round
 * trip of (data out, WINDOW back), and that loop on loopback includes the
 * records sitting in both kernels' socket buffers and in the adapters'
 * write queues, several hundred KiB at full speed, plus the half window
 * held back by batching.  At the 1.2 GiB/s target and a ~0.4 ms loop that
 * is ~500 KiB; 1 MiB leaves headroom.  Over the internet (50 ms RTT) it
 * still allows 20 MiB/s per stream.
 *
 * link_window = 16 MiB: sixteen streams at full window before the link
 * itself pushes back, which is the memory a peer can make us hold per link
 * (the windows bound it, not the stream count).
 *
 * send_buffer = 1 MiB: how far the app may write ahead of the link.
 * Credit alone let the client read its origins into the mux up to the
 * peer's 16 MiB link window while the link drained at its own pace: 50
 * streams of 1 MiB bodies held 14 MiB queued and the client's RSS was
 * 24-29 MiB.  The link writes up to 256 KiB per uv_write and keeps 4 MiB
 * in flight to the kernel, so 1 MiB queued still has a write ready every
 * loop turn; throughput did not move (bench, docs/BENCHMARKS.md) and the
 * client's RSS fell to 12 MiB.
 *
 * max_streams = 1024: HTTP/2 servers allow 100-250 per browser connection;
 * a tunnel carries every visitor of a name, and an idle stream costs about
 * 150 bytes, so 1024 is generous and still bounded.
 *
 * max_meta = 16 KiB: a request head within common server limits (nginx
 * allows 8 KiB per header line); max_control = the largest u16 payload.
 *
 * max_control_queue = 64 KiB: CONTROL messages are a handful per link
 * (Hello, Bind, Bound, an Error, GOAWAY), each at most 4 KiB
 * (WR_CONTROL_MAX_WIRE), so a healthy link never queues more than a few
 * KiB.  The queue grows only when the peer stops reading while the app
 * keeps answering it (a client pipelining Binds it never reads the
 * answers to); 64 KiB is 16 of the largest messages, and bounds that at
 * the size of one full-sized frame per link.  The cap is checked against
 * everything queued on the control queue (the mux's own WINDOW, PING and
 * RST frames too, which are small and bounded by the streams), but only
 * wr_mux_control is ever refused, and never on an empty queue, so one
 * frame of any legal size always gets through.
 *
 * ping_interval = 10 s, ping_timeout = 20 s: a dead link within two
 * intervals, below the 30-60 s idle timeouts of NATs and load balancers.
 */
void wr_mux_config_default(wr_mux_config *cfg, int is_client) {
  memset(cfg, 0, sizeof *cfg);
  cfg->is_client = is_client ? 1 : 0;
  cfg->max_streams = 1024;
  cfg->stream_window = 1u << 20;
  cfg->link_window = 16u << 20;
  cfg->send_buffer = 1u << 20;
  cfg->max_meta = 16384;
  cfg->max_control = WR_FRAME_MAX_PAYLOAD;
  cfg->max_control_queue = 65536;
  cfg->ping_interval = 10000;
  cfg->ping_timeout = 20000;
}

/* ---- lifecycle ---- */

static int config_ok(const wr_mux_config *c) {
  if (c->stream_window < FLOOR_WINDOW || c->stream_window > MAX_WINDOW)
    return 0;
  if (c->link_window < FLOOR_WINDOW || c->link_window > MAX_WINDOW) return 0;
  if (c->send_buffer < FLOOR_WINDOW || c->send_buffer > MAX_WINDOW) return 0;
  if (c->max_streams == 0 || c->max_streams > MAX_STREAMS_CFG) return 0;
  if (c->max_meta < FLOOR_META || c->max_meta > WR_FRAME_MAX_PAYLOAD) return 0;
  if (c->max_control < FLOOR_CONTROL || c->max_control > WR_FRAME_MAX_PAYLOAD)
    return 0;
  if (c->max_control_queue < FLOOR_CONTROL ||
      c->max_control_queue > MAX_WINDOW)
    return 0;
  if (c->ping_interval && c->ping_timeout < c->ping_interval) return 0;
  return 1;
}

int wr_mux_new(wr_mux **pm, const wr_mux_config *cfg,
               const wr_mux_callbacks *cb, void *user_data, const wr_mem *mem,
               wr_tstamp now) {
  wr_mux_config def;
  if (!pm) return WR_ERR_INVAL;
  *pm = NULL;
  if (!cfg) {
    wr_mux_config_default(&def, 0);
    cfg = &def;
  }
  if (!config_ok(cfg)) return WR_ERR_INVAL;
  if (!mem) mem = wr_mem_default();
  wr_mux *m = wr_mem_calloc(mem, 1, sizeof *m);
  if (!m) return WR_ERR_NOMEM;
  m->cfg = *cfg;
  m->cfg.is_client = cfg->is_client ? 1 : 0;
  if (cb) m->cb = *cb;
  m->user_data = user_data;
  m->mem = mem;
  m->peer_stream_window = FLOOR_WINDOW;
  m->peer_max_streams = cfg->max_streams;
  m->peer_max_meta = FLOOR_META;
  m->peer_max_control = FLOOR_CONTROL;
  m->peer_link_window = FLOOR_WINDOW;
  m->swin_link = FLOOR_WINDOW;
  m->rwin_link = cfg->link_window;
  m->next_sid = m->cfg.is_client ? 1 : 2;
  m->nbuckets = 64;
  dl_init(&m->active);
  dl_init(&m->blocked);
  m->last_rx = now;
  wr_frame_limits lim = {.max_meta = cfg->max_meta,
                         .max_control = cfg->max_control};
  wr_frame_reader_init(&m->rd, &lim, mem);
  m->buckets = wr_mem_calloc(mem, m->nbuckets, sizeof *m->buckets);
  if (!m->buckets) goto fail;

  wr_frame f = {.type = WR_FRAME_SETTINGS};
  f.set.present = (1u << WR_SET_STREAM_WINDOW) | (1u << WR_SET_LINK_WINDOW) |
                  (1u << WR_SET_MAX_STREAMS) | (1u << WR_SET_MAX_META) |
                  (1u << WR_SET_MAX_CONTROL) | (1u << WR_SET_CREDIT_STEP);
  f.set.val[WR_SET_CREDIT_STEP] = CREDIT_STEP;
  f.set.val[WR_SET_STREAM_WINDOW] = cfg->stream_window;
  f.set.val[WR_SET_LINK_WINDOW] = cfg->link_window;
  f.set.val[WR_SET_MAX_STREAMS] = cfg->max_streams;
  f.set.val[WR_SET_MAX_META] = cfg->max_meta;
  f.set.val[WR_SET_MAX_CONTROL] = cfg->max_control;
  if (mux_q_frame(m, &f) != 0) goto fail;
  *pm = m;
  return 0;

fail:
  wr_mux_del(m);
  return WR_ERR_NOMEM;
}

void wr_mux_del(wr_mux *m) {
  if (!m) return;
  if (m->buckets) {
    for (uint32_t i = 0; i < m->nbuckets; i++) {
      stream *s = m->buckets[i];
      while (s) {
        stream *next = s->hnext;
        mux_bq_clear(m, &s->q);
        wr_mem_free(m->mem, s);
        s = next;
      }
    }
    wr_mem_free(m->mem, m->buckets);
  }
  while (m->free_streams) {
    stream *s = m->free_streams;
    m->free_streams = s->hnext;
    wr_mem_free(m->mem, s);
  }
  mux_bq_clear(m, &m->ctrl);
  mux_release_retired(m);
  while (m->free_blks) {
    blk *b = m->free_blks;
    m->free_blks = b->next;
    wr_mem_free(m->mem, b);
  }
  while (m->free_bufs) {
    blk *b = m->free_bufs;
    m->free_bufs = b->next;
    wr_mem_free(m->mem, b);
  }
  wr_frame_reader_free(&m->rd);
  wr_mem_free(m->mem, m);
}

/* ---- receiving ---- */

static int on_settings(wr_mux *m, const wr_frame *f) {
  const wr_frame_settings *s = &f->set;
  uint32_t v[WR_SET_COUNT] = {
      [WR_SET_STREAM_WINDOW] = FLOOR_WINDOW,
      [WR_SET_LINK_WINDOW] = FLOOR_WINDOW,
      [WR_SET_MAX_STREAMS] = m->cfg.max_streams,
      [WR_SET_MAX_META] = FLOOR_META,
      [WR_SET_MAX_CONTROL] = FLOOR_CONTROL,
  };
  for (int id = 1; id < WR_SET_COUNT; id++)
    if (s->present & (1u << id)) v[id] = s->val[id];
  if (v[WR_SET_STREAM_WINDOW] < FLOOR_WINDOW ||
      v[WR_SET_STREAM_WINDOW] > MAX_WINDOW ||
      v[WR_SET_LINK_WINDOW] < FLOOR_WINDOW ||
      v[WR_SET_LINK_WINDOW] > MAX_WINDOW || v[WR_SET_MAX_STREAMS] == 0 ||
      v[WR_SET_MAX_META] < FLOOR_META ||
      v[WR_SET_MAX_META] > WR_FRAME_MAX_PAYLOAD ||
      v[WR_SET_MAX_CONTROL] < FLOOR_CONTROL ||
      v[WR_SET_MAX_CONTROL] > WR_FRAME_MAX_PAYLOAD)
    return WR_ERR_PROTO;
  m->got_settings = 1;
  /* Streams we opened so far assumed the floor window: top them up. */
  int64_t delta = (int64_t)v[WR_SET_STREAM_WINDOW] - FLOOR_WINDOW;
  if (delta) {
    for (uint32_t i = 0; i < m->nbuckets; i++)
      for (stream *st = m->buckets[i]; st; st = st->hnext) st->swin += delta;
  }
  m->swin_link += (int64_t)v[WR_SET_LINK_WINDOW] - FLOOR_WINDOW;
  m->peer_stream_window = v[WR_SET_STREAM_WINDOW];
  m->peer_max_streams = v[WR_SET_MAX_STREAMS];
  m->peer_max_meta = v[WR_SET_MAX_META];
  m->peer_max_control = v[WR_SET_MAX_CONTROL];
  m->peer_link_window = v[WR_SET_LINK_WINDOW];
  /* A step over half a stream window is no step at all. */
  if ((s->present & (1u << WR_SET_CREDIT_STEP)) &&
      s->val[WR_SET_CREDIT_STEP] <= m->peer_stream_window / 2)
    m->peer_credit_step = s->val[WR_SET_CREDIT_STEP];
  return mux_fire_writable(m);
}

static int on_open(wr_mux *m, const wr_frame *f) {
  int rv;
  if (is_local(m, f->sid) || f->sid <= m->last_peer_sid) return WR_ERR_PROTO;
  m->last_peer_sid = f->sid;
  if (m->goaway_sent || m->n_peer >= m->cfg.max_streams) {
    /* Refused, not fatal: the peer may simply not have seen our GOAWAY or
     * a stream close yet.  Only a flood of them is abuse. */
    if (++m->refused_unsent > WR_MAX(MIN_REFUSED_UNSENT, m->cfg.max_streams))
      return WR_ERR_LIMIT;
    m->st.streams_reset++;
    return mux_q_u32(m, WR_FRAME_RST, f->sid, WR_MUX_RST_REFUSED);
  }
  stream *s = mux_stream_alloc(m, f->sid);
  if (!s) return WR_ERR_NOMEM;
  if ((rv = mux_table_insert(m, s)) != 0) {
    mux_stream_free(m, s);
    return rv;
  }
  m->n_peer++;
  m->st.streams_opened++;
  if (m->cb.stream_open &&
      m->cb.stream_open(m, f->sid, f->payload, f->len, m->user_data) != 0)
    return WR_ERR_CALLBACK;
  if (f->flags & WR_FRAME_FLAG_FIN) {
    s->fin_recv = 1;
    if (m->cb.stream_fin && m->cb.stream_fin(m, f->sid, m->user_data) != 0)
      return WR_ERR_CALLBACK;
  }
  return 0;
}

static int on_window(wr_mux *m, const wr_frame *f) {
  if (f->sid == 0) {
    if (m->swin_link + f->value > MAX_WINDOW) return WR_ERR_FLOW;
    m->swin_link += f->value;
    return mux_fire_writable(m);
  }
  stream *s = find(m, f->sid);
  if (!s) return sid_seen(m, f->sid) ? 0 : WR_ERR_PROTO;
  if (s->swin + f->value > MAX_WINDOW) return WR_ERR_FLOW;
  s->swin += f->value;
  mux_held_back(m, s, f->value);
  if (dl_linked(&s->blocked) && mux_credit_of(m, s) > 0 && mux_buf_low(m)) {
    dl_del(&s->blocked);
    if (m->cb.stream_writable &&
        m->cb.stream_writable(m, s->sid, m->user_data) != 0)
      return WR_ERR_CALLBACK;
  }
  return 0;
}

static int on_frame(wr_mux *m, const wr_frame *f) {
  stream *s;
  m->st.frames_in++;
  if (!m->got_settings && f->type != WR_FRAME_SETTINGS) return WR_ERR_PROTO;
  switch (f->type) {
  case WR_FRAME_SETTINGS:
    if (m->got_settings) return WR_ERR_PROTO;
    return on_settings(m, f);
  case WR_FRAME_OPEN:
    return on_open(m, f);
  case WR_FRAME_RST:
    if (!(s = find(m, f->sid))) return sid_seen(m, f->sid) ? 0 : WR_ERR_PROTO;
    m->st.streams_reset++;
    return mux_stream_end(m, s, f->value, 1);
  case WR_FRAME_WINDOW:
    return on_window(m, f);
  case WR_FRAME_PING:
    if (++m->pong_unsent > MAX_PONG_UNSENT) return WR_ERR_LIMIT;
    {
      wr_frame pong = {.type = WR_FRAME_PONG};
      memcpy(pong.opaque, f->opaque, 8);
      return mux_q_frame(m, &pong);
    }
  case WR_FRAME_PONG:
    return 0; /* liveness was noted when the bytes came in */
  case WR_FRAME_GOAWAY:
    if (m->goaway_recv) return 0;
    m->goaway_recv = 1;
    if (m->cb.goaway && m->cb.goaway(m, f->value, m->user_data) != 0)
      return WR_ERR_CALLBACK;
    return 0;
  case WR_FRAME_CONTROL:
    if (m->cb.control && m->cb.control(m, f->payload, f->len, m->user_data))
      return WR_ERR_CALLBACK;
    return 0;
  default:
    return WR_ERR_PROTO; /* the reader lets no other type through */
  }
}

/*
 * A piece of a DATA frame.  The whole frame is charged against both
 * windows when its first piece arrives.  Each piece is then looked up
 * again, because the app may reset the stream between two records of one
 * frame; bytes with no stream to go to return their link credit at once.
 */
static int on_data(wr_mux *m, const wr_frame_event *ev) {
  const wr_frame *f = ev->f;
  stream *s = find(m, f->sid);
  int rv;
  if (ev->off == 0) {
    if (!m->got_settings) return WR_ERR_PROTO;
    if (f->len > m->rwin_link) return WR_ERR_FLOW;
    if (s) {
      if (s->fin_recv) return WR_ERR_PROTO;
      if (f->len > s->rwin) return WR_ERR_FLOW;
      s->rwin -= f->len;
    } else if (!sid_seen(m, f->sid)) {
      return WR_ERR_PROTO;
    }
    int was_short = mux_link_short(m);
    m->rwin_link -= f->len;
    if (!was_short && mux_link_short(m) && (rv = mux_flush_steps(m)) != 0)
      return rv;
  }
  if (!s) {
    if (ev->last) m->st.frames_in++;
    return ev->len ? mux_link_credit_back(m, ev->len) : 0;
  }
  if (ev->len) {
    s->unconsumed += ev->len;
    m->st.bytes_in += ev->len;
    if (m->cb.stream_data &&
        m->cb.stream_data(m, f->sid, ev->data, ev->len, m->user_data) != 0)
      return WR_ERR_CALLBACK;
  }
  if (!ev->last) return 0;
  m->st.frames_in++;
  if (!(f->flags & WR_FRAME_FLAG_FIN)) return 0;
  s->fin_recv = 1;
  if (m->cb.stream_fin && m->cb.stream_fin(m, f->sid, m->user_data) != 0)
    return WR_ERR_CALLBACK;
  if (s->fin_sent && (rv = mux_stream_end(m, s, -1, 1)) != 0) return rv;
  return 0;
}

int mux_set_fatal(wr_mux *m, int rv) {
  if (rv == WR_ERR_PROTO || rv == WR_ERR_FLOW || rv == WR_ERR_TOOBIG ||
      rv == WR_ERR_LIMIT)
    m->st.rx_malformed++;
  m->fatal = rv;
  return rv;
}

int wr_mux_recv(wr_mux *m, const uint8_t *data, size_t len, wr_tstamp now) {
  int rv;
  if (m->fatal) return m->fatal;
  if (len == 0) return 0;
  m->last_rx = now;
  m->ping_out = 0;
  if (m->recheck_writable && (rv = mux_fire_writable(m)) != 0)
    return mux_set_fatal(m, rv);
  wr_frame_event ev;
  while ((rv = wr_frame_reader_next(&m->rd, &data, &len, &ev)) == 1) {
    if (ev.kind == WR_FRAME_EV_DATA)
      rv = on_data(m, &ev);
    else
      rv = on_frame(m, ev.f);
    if (rv != 0) return mux_set_fatal(m, rv);
  }
  if (rv < 0) return mux_set_fatal(m, rv);
  return 0;
}

/* ---- sending ---- */

int wr_mux_want_write(const wr_mux *m) {
  if (m->fatal) return 0;
  return m->ctrl.len > 0 || !dl_empty(&m->active) ||
         (m->buf_full && !dl_empty(&m->blocked));
}

/* wr_mux_send and wr_mux_send_v: the same frames, copied or viewed. */
static wr_ssize send_out(wr_mux *m, sendout *o, size_t cap) {
  int rv;
  if (m->fatal) return m->fatal;
  size_t queued_before = m->queued_data;
  mux_release_retired(m);
  if (m->recheck_writable && (rv = mux_fire_writable(m)) != 0)
    return mux_set_fatal(m, rv);
  mux_bq_out(m, &m->ctrl, o, cap);
  if (m->ctrl.len) return (wr_ssize)o->len; /* the output is full */
  m->refused_unsent = 0;
  m->pong_unsent = 0;

  while (!dl_empty(&m->active) && cap - o->len >= WR_FRAME_HDR_LEN) {
    stream *s = container_of(m->active.next, stream, act);
    size_t room = cap - o->len - WR_FRAME_HDR_LEN;
    size_t n = WR_MIN(WR_MIN(s->q.len, room), (size_t)WR_FRAME_MAX_DATA);
    /* A small tail piece only if nothing else went out: every call with
     * work queued makes progress, so want_write loops terminate. */
    if (n < s->q.len && n < MIN_DATA_FRAME && o->len > 0) break;
    int fin = s->fin_queued && n == s->q.len;
    wr_frame_hdr_put(mux_out_room(o, WR_FRAME_HDR_LEN), WR_FRAME_DATA,
                     fin ? WR_FRAME_FLAG_FIN : 0, (uint16_t)n, s->sid);
    mux_bq_out(m, &s->q, o, n);
    m->queued_data -= n;
    m->st.frames_out++;
    m->st.bytes_out += n;
    dl_del(&s->act);
    if (fin) {
      s->fin_sent = 1;
      if (s->fin_recv && (rv = mux_stream_end(m, s, -1, 0)) != 0)
        return mux_set_fatal(m, rv);
    } else if (s->q.len) {
      dl_push(&m->active, &s->act); /* round robin */
    }
  }
  /* Wake the next blocked stream when this call drained the buffer to
   * half, or when nothing is left to send (so a woken stream that wrote
   * nothing cannot leave the others waiting); not on every record sent
   * below half, which woke every stream once per flush. */
  if (m->buf_full && m->queued_data <= m->cfg.send_buffer / 2 &&
      (queued_before > m->cfg.send_buffer / 2 || dl_empty(&m->active))) {
    m->buf_full = 0;
    if ((rv = mux_fire_writable(m)) != 0) return mux_set_fatal(m, rv);
  }
  return (wr_ssize)o->len;
}

wr_ssize wr_mux_send(wr_mux *m, uint8_t *dst, size_t cap, wr_tstamp now) {
  (void)now;
  if (!m->fatal && cap < WR_MUX_MIN_SEND) return WR_ERR_INVAL;
  sendout o = {.dst = dst};
  return send_out(m, &o, cap);
}

wr_ssize wr_mux_send_v(wr_mux *m, uint8_t *scratch, size_t cap,
                       struct iovec *iov, size_t *piovcnt, wr_tstamp now) {
  (void)now;
  if (!m->fatal && (cap < WR_MUX_MIN_SEND || cap > WR_MUX_SEND_V_MAX ||
                    *piovcnt < WR_MUX_SEND_IOV_MAX))
    return WR_ERR_INVAL;
  sendout o = {.dst = scratch, .iov = iov};
  wr_ssize n = send_out(m, &o, cap);
  *piovcnt = n > 0 ? o.niov : 0;
  return n;
}

/* ---- time ---- */

wr_tstamp wr_mux_deadline(const wr_mux *m) {
  if (m->fatal || m->cfg.ping_interval == 0) return WR_TSTAMP_NONE;
  wr_tstamp d = m->last_rx + m->cfg.ping_timeout;
  if (!m->ping_out) d = WR_MIN(d, m->last_rx + m->cfg.ping_interval);
  return d;
}

int wr_mux_tick(wr_mux *m, wr_tstamp now) {
  int rv;
  if (m->fatal) return m->fatal;
  if (m->recheck_writable && (rv = mux_fire_writable(m)) != 0)
    return mux_set_fatal(m, rv);
  if (m->cfg.ping_interval == 0) return 0;
  if (now >= m->last_rx + m->cfg.ping_timeout) {
    m->fatal = WR_ERR_TIMEOUT;
    return WR_ERR_TIMEOUT;
  }
  if (!m->ping_out && now >= m->last_rx + m->cfg.ping_interval) {
    wr_frame f = {.type = WR_FRAME_PING};
    uint64_t v = ++m->ping_seq;
    wr_put_u32(f.opaque, (uint32_t)(v >> 32));
    wr_put_u32(f.opaque + 4, (uint32_t)v);
    if ((rv = mux_q_frame(m, &f)) != 0) return mux_set_fatal(m, rv);
    m->ping_out = 1;
  }
  return 0;
}

/* ---- link ---- */

int wr_mux_control(wr_mux *m, const uint8_t *msg, size_t len) {
  int rv;
  if (m->fatal) return m->fatal;
  if (len > m->peer_max_control) return WR_ERR_TOOBIG;
  wr_frame f = {.type = WR_FRAME_CONTROL, .payload = msg,
                .len = (uint32_t)len};
  /* Bounded (max_control_queue), but an empty queue takes any frame. */
  if (m->ctrl.len > 0 &&
      m->ctrl.len + wr_frame_encoded_len(&f) > m->cfg.max_control_queue)
    return WR_ERR_NOBUF;
  if ((rv = mux_q_frame(m, &f)) != 0) return mux_set_fatal(m, rv);
  return 0;
}

int wr_mux_goaway(wr_mux *m, uint32_t code) {
  int rv;
  if (m->fatal) return m->fatal;
  if (m->goaway_sent) return 0;
  if ((rv = mux_q_u32(m, WR_FRAME_GOAWAY, 0, code)) != 0)
    return mux_set_fatal(m, rv);
  m->goaway_sent = 1;
  return 0;
}

void wr_mux_get_stats(const wr_mux *m, wr_mux_stats *st) {
  *st = m->st;
  st->streams_active = m->nstreams;
  st->queued_bytes = m->ctrl.len + m->queued_data;
}
