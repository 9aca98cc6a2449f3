/*
 * The multiplexer's streams (mux_int.h): the table from id to stream, a
 * stream's end (its credit returned both ways), and the calls the app
 * makes on one stream (open, write, close, reset, consume).
 */
#include <string.h>

#include "mux_int.h"

#define FREE_STREAMS_MAX 64

/* Load factor 1 before doubling: chains stay about one long. */
int mux_table_insert(wr_mux *m, stream *s) {
  if (m->nstreams >= m->nbuckets) {
    uint32_t nb = m->nbuckets * 2;
    stream **b = wr_mem_calloc(m->mem, nb, sizeof *b);
    if (!b) return WR_ERR_NOMEM;
    for (uint32_t i = 0; i < m->nbuckets; i++) {
      stream *e = m->buckets[i];
      while (e) {
        stream *next = e->hnext;
        e->hnext = b[bucket_of(e->sid, nb)];
        b[bucket_of(e->sid, nb)] = e;
        e = next;
      }
    }
    wr_mem_free(m->mem, m->buckets);
    m->buckets = b;
    m->nbuckets = nb;
  }
  stream **slot = &m->buckets[bucket_of(s->sid, m->nbuckets)];
  s->hnext = *slot;
  *slot = s;
  m->nstreams++;
  return 0;
}

void mux_table_remove(wr_mux *m, stream *s) {
  stream **pp = &m->buckets[bucket_of(s->sid, m->nbuckets)];
  while (*pp != s) pp = &(*pp)->hnext;
  *pp = s->hnext;
  m->nstreams--;
}

stream *mux_stream_alloc(wr_mux *m, uint32_t sid) {
  stream *s = m->free_streams;
  if (s) {
    m->free_streams = s->hnext;
    m->n_free_streams--;
  } else if (!(s = wr_mem_malloc(m->mem, sizeof *s))) {
    return NULL;
  }
  memset(s, 0, sizeof *s);
  s->sid = sid;
  s->rwin = m->cfg.stream_window;
  s->swin = m->peer_stream_window;
  return s;
}

void mux_stream_free(wr_mux *m, stream *s) {
  mux_bq_clear(m, &s->q);
  if (m->n_free_streams < FREE_STREAMS_MAX) {
    s->hnext = m->free_streams;
    m->free_streams = s;
    m->n_free_streams++;
  } else {
    wr_mem_free(m->mem, s);
  }
}

/*
 * Ends |s|: fires stream_close, returns its credit, frees it.  Queued
 * bytes the peer never saw give their link credit back to us; bytes the
 * app has not consumed give theirs back to the peer.
 */
int mux_stream_end(wr_mux *m, stream *s, int64_t code, int by_peer) {
  int rv = 0;
  if (m->cb.stream_close &&
      m->cb.stream_close(m, s->sid, code, by_peer, m->user_data) != 0)
    rv = WR_ERR_CALLBACK;
  mux_table_remove(m, s);
  dl_del(&s->act);
  dl_del(&s->blocked);
  if (s->q.len) {
    m->swin_link += (int64_t)s->q.len;
    m->queued_data -= s->q.len;
    m->recheck_writable = 1;
  }
  if (s->held) m->n_holding--;
  if (is_local(m, s->sid))
    m->n_local--;
  else
    m->n_peer--;
  uint64_t back = s->unconsumed;
  mux_stream_free(m, s);
  if (rv == 0 && back) rv = mux_link_credit_back(m, back);
  return rv;
}

/* ---- streams ---- */

int wr_mux_stream_open(wr_mux *m, const uint8_t *meta, size_t len,
                       uint32_t *psid, void *stream_user_data) {
  int rv;
  if (m->fatal) return m->fatal;
  if (m->goaway_sent || m->goaway_recv) return WR_ERR_CLOSED;
  if (len > m->peer_max_meta) return WR_ERR_TOOBIG;
  if (m->n_local >= WR_MIN(m->cfg.max_streams, m->peer_max_streams) ||
      m->next_sid > UINT32_MAX)
    return WR_ERR_LIMIT;
  uint32_t sid = (uint32_t)m->next_sid;
  stream *s = mux_stream_alloc(m, sid);
  if (!s) return WR_ERR_NOMEM;
  if ((rv = mux_table_insert(m, s)) != 0) {
    mux_stream_free(m, s);
    return rv;
  }
  wr_frame f = {.type = WR_FRAME_OPEN, .sid = sid, .payload = meta,
                .len = (uint32_t)len};
  if ((rv = mux_q_frame(m, &f)) != 0) {
    mux_table_remove(m, s);
    mux_stream_free(m, s);
    return rv;
  }
  s->user_data = stream_user_data;
  m->next_sid += 2;
  m->n_local++;
  m->st.streams_opened++;
  if (psid) *psid = sid;
  return 0;
}

/* |n| bytes of |s| joined its queue: charge them to its credit and the
 * link's, count them against the send buffer, and make |s| sendable.
 * Inline: wr_mux_stream_write runs it for every piece it takes. */
static inline void queued(wr_mux *m, stream *s, size_t n) {
  mux_take_credit(m, s, n);
  m->queued_data += n;
  if (!dl_linked(&s->act)) dl_push(&m->active, &s->act);
}

/* What wr_mux_stream_write_buf and _ext check before taking a buffer
 * whole: the link is up, the stream open for writing, |len| within |max|
 * and the stream's credit.  Returns |len| or the error; *ps is the
 * stream. */
static wr_ssize check_whole(wr_mux *m, uint32_t sid, size_t len, size_t max,
                            stream **ps) {
  stream *s = *ps = m->fatal ? NULL : find(m, sid);
  return m->fatal                                         ? m->fatal
         : !s                                             ? WR_ERR_NOTFOUND
         : s->fin_queued                                  ? WR_ERR_CLOSED
         : len > max || len > (size_t)mux_credit_of(m, s) ? WR_ERR_INVAL
                                                          : (wr_ssize)len;
}

wr_ssize wr_mux_stream_write(wr_mux *m, uint32_t sid, const uint8_t *data,
                             size_t len) {
  if (m->fatal) return m->fatal;
  stream *s = find(m, sid);
  if (!s) return WR_ERR_NOTFOUND;
  if (s->fin_queued) return WR_ERR_CLOSED;
  size_t n = WR_MIN(len, (size_t)mux_credit_of(m, s));
  if (n < len && !dl_linked(&s->blocked)) dl_push(&m->blocked, &s->blocked);
  if (n < len && m->queued_data + n >= m->cfg.send_buffer) m->buf_full = 1;
  if (n == 0) return 0;
  size_t done = mux_bq_append(m, &s->q, data, n);
  if (done == 0) return WR_ERR_NOMEM;
  queued(m, s, done);
  return (wr_ssize)done;
}

wr_ssize wr_mux_stream_write_buf(wr_mux *m, uint32_t sid, uint8_t *buf,
                                 size_t len) {
  blk *b = container_of(buf, blk, data);
  stream *s;
  wr_ssize rv = check_whole(m, sid, len, WR_MUX_BUF_CAP, &s);
  if (rv <= 0) {
    mux_blk_put(m, b);
    return rv;
  }
  if (len < WR_MUX_BUF_CAP / 4) {
    /* A short read (a small response, the end of a body) is copied into
     * the queue and the block recycled: queued blocks then hold at least
     * a quarter of their size in data, so memory stays within 4x of the
     * bytes the send buffer and credit allow, and 50 streams of 1 KiB
     * responses do not each hold a 64 KiB block. */
    len = mux_bq_append(m, &s->q, buf, len); /* fewer only on NOMEM */
    mux_blk_put(m, b);
    if (len == 0) return WR_ERR_NOMEM;
    rv = (wr_ssize)len;
  } else {
    /* The block joins the queue as it is: no copy. */
    b->start = 0;
    b->end = (uint32_t)len;
    mux_bq_link(&s->q, b);
    s->q.len += len;
  }
  queued(m, s, len);
  return rv;
}

/*
 * Why EXT_MIN: a queued buffer costs a block header (a small malloc) and
 * the sealer one EVP update of its own (out_bytes views pieces of
 * VIEW_MIN bytes and more); a piece below 4 KiB is cheaper copied into
 * the tail block, where it joins its neighbours.  It also keeps what a
 * queued buffer pins (its owner's allocation) near the bytes it carries.
 */
#define EXT_MIN 4096

wr_ssize wr_mux_stream_write_ext(wr_mux *m, uint32_t sid, uint8_t *buf,
                                 size_t len, wr_mux_release release) {
  stream *s;
  wr_ssize rv = check_whole(m, sid, len, UINT32_MAX, &s);
  blk *b = NULL;
  if (rv > 0 && len >= EXT_MIN) {
    b = wr_mem_malloc(m->mem, sizeof *b);
    if (!b) rv = WR_ERR_NOMEM;
  }
  if (rv <= 0) {
    release(buf);
    return rv;
  }
  if (!b) {
    len = mux_bq_append(m, &s->q, buf, len); /* fewer only on NOMEM */
    release(buf);
    if (len == 0) return WR_ERR_NOMEM;
    rv = (wr_ssize)len;
  } else {
    /* The buffer joins the queue as it is: no copy.  cap = end, so no
     * later append writes into it. */
    b->next = NULL;
    b->base = buf;
    b->release = release;
    b->cap = b->end = (uint32_t)len;
    b->start = 0;
    mux_bq_link(&s->q, b);
    s->q.len += len;
  }
  queued(m, s, len);
  return rv;
}

size_t wr_mux_stream_wait(wr_mux *m, uint32_t sid) {
  stream *s = m->fatal ? NULL : find(m, sid);
  if (!s || s->fin_queued) return 0;
  size_t c = (size_t)mux_credit_of(m, s);
  if (!dl_linked(&s->blocked)) dl_push(&m->blocked, &s->blocked);
  if (m->queued_data > m->cfg.send_buffer / 2) m->buf_full = 1;
  return c;
}

size_t wr_mux_stream_credit(const wr_mux *m, uint32_t sid) {
  if (m->fatal) return 0;
  const stream *s = find(m, sid);
  if (!s || s->fin_queued) return 0;
  return (size_t)mux_credit_of(m, s);
}

int wr_mux_stream_close(wr_mux *m, uint32_t sid) {
  if (m->fatal) return m->fatal;
  stream *s = find(m, sid);
  if (!s) return WR_ERR_NOTFOUND;
  if (s->fin_queued) return 0;
  s->fin_queued = 1;
  dl_del(&s->blocked);
  if (!dl_linked(&s->act)) dl_push(&m->active, &s->act);
  return 0;
}

int wr_mux_stream_reset(wr_mux *m, uint32_t sid, uint32_t code) {
  int rv;
  if (m->fatal) return m->fatal;
  stream *s = find(m, sid);
  if (!s) return WR_ERR_NOTFOUND;
  if ((rv = mux_q_u32(m, WR_FRAME_RST, sid, code)) != 0)
    return mux_set_fatal(m, rv);
  m->st.streams_reset++;
  if ((rv = mux_stream_end(m, s, code, 0)) != 0) return mux_set_fatal(m, rv);
  return 0;
}

int wr_mux_stream_consume(wr_mux *m, uint32_t sid, size_t n) {
  int rv;
  if (m->fatal) return m->fatal;
  stream *s = find(m, sid);
  if (!s) return sid != 0 && sid_seen(m, sid) ? 0 : WR_ERR_NOTFOUND;
  if (n > s->unconsumed) return WR_ERR_INVAL;
  s->unconsumed -= n;
  /* No stream WINDOW once the peer has sent FIN: it will send no more. */
  if (!s->fin_recv) {
    s->pending += n;
    if ((rv = mux_stream_credit_back(m, s)) != 0) return mux_set_fatal(m, rv);
  }
  if ((rv = mux_link_credit_back(m, n)) != 0) return mux_set_fatal(m, rv);
  return 0;
}

int wr_mux_stream_set_user_data(wr_mux *m, uint32_t sid, void *ud) {
  stream *s = find(m, sid);
  if (!s) return WR_ERR_NOTFOUND;
  s->user_data = ud;
  return 0;
}

void *wr_mux_stream_get_user_data(const wr_mux *m, uint32_t sid) {
  const stream *s = find(m, sid);
  return s ? s->user_data : NULL;
}
