/*
 * The multiplexer's memory (mux_int.h): 16 KiB blocks recycled through
 * free lists, byte queues made of them (each stream's and the control
 * queue), the send output that copies or views queued bytes, and the
 * app's read buffers (wr_mux_buf_new).
 */
#include <string.h>

#include "mux_int.h"

/* Send buffer blocks: one record's worth, so a full DATA frame is at most
 * two memcpy calls.  Up to 64 spare blocks (1 MiB) are kept for reuse. */
#define BLK_SIZE 16384
#define FREE_BLKS_MAX 64
/* Blocks the app reads into (wr_mux_buf_new): a socket read's worth.  A
 * few are kept for reuse, as their size would otherwise make glibc grow
 * and trim the heap for every read. */
#define FREE_BUFS_MAX 16

/* ---- blocks and byte queues ---- */

static blk *blk_get(wr_mux *m, size_t need) {
  blk *b;
  if (need <= BLK_SIZE && m->free_blks) {
    b = m->free_blks;
    m->free_blks = b->next;
    m->n_free_blks--;
  } else {
    size_t cap = need > BLK_SIZE ? need : BLK_SIZE;
    b = wr_mem_malloc(m->mem, sizeof *b + cap);
    if (!b) return NULL;
    b->cap = (uint32_t)cap;
  }
  b->next = NULL;
  b->start = b->end = 0;
  b->base = b->data;
  b->release = NULL;
  return b;
}

void mux_blk_put(wr_mux *m, blk *b) {
  if (b->release) {
    b->release(b->base);
    wr_mem_free(m->mem, b);
  } else if (b->cap == WR_MUX_BUF_CAP && m->n_free_bufs < FREE_BUFS_MAX) {
    b->next = m->free_bufs;
    m->free_bufs = b;
    m->n_free_bufs++;
  } else if (b->cap == BLK_SIZE && m->n_free_blks < FREE_BLKS_MAX) {
    b->next = m->free_blks;
    m->free_blks = b;
    m->n_free_blks++;
  } else {
    wr_mem_free(m->mem, b);
  }
}

void mux_bq_link(bq *q, blk *b) {
  if (q->tail)
    q->tail->next = b;
  else
    q->head = b;
  q->tail = b;
}

/* Appends up to |len| bytes; returns how many (fewer only on NOMEM). */
size_t mux_bq_append(wr_mux *m, bq *q, const uint8_t *p, size_t len) {
  size_t done = 0;
  while (done < len) {
    blk *b = q->tail;
    if (!b || b->end == b->cap) {
      if (!(b = blk_get(m, 0))) break;
      mux_bq_link(q, b);
    }
    size_t n = WR_MIN(len - done, (size_t)(b->cap - b->end));
    memcpy(b->base + b->end, p + done, n);
    b->end += (uint32_t)n;
    done += n;
  }
  q->len += done;
  return done;
}

/* Room for |n| contiguous bytes at the tail, counted as queued. */
static uint8_t *bq_reserve(wr_mux *m, bq *q, size_t n) {
  blk *b = q->tail;
  if (!b || b->cap - b->end < n) {
    if (!(b = blk_get(m, n))) return NULL;
    mux_bq_link(q, b);
  }
  uint8_t *p = b->base + b->end;
  b->end += (uint32_t)n;
  q->len += n;
  return p;
}

/* Views shorter than this are copied instead: a view costs the sealer one
 * EVP update call, about what copying 1 KiB costs, and the floor bounds
 * the iov count (mux.h: WR_MUX_SEND_IOV_MAX). */
#define VIEW_MIN 1024

static void out_bytes(sendout *o, const uint8_t *p, size_t n) {
  if (o->iov && n >= VIEW_MIN) {
    o->iov[o->niov++] = (struct iovec){.iov_base = (void *)p, .iov_len = n};
    o->len += n;
    return;
  }
  memcpy(mux_out_room(o, n), p, n);
}

/* Moves up to |n| bytes from the head of |q| to the output.  A block the
 * output may still view is retired, not recycled, until the next send. */
size_t mux_bq_out(wr_mux *m, bq *q, sendout *o, size_t n) {
  size_t done = 0;
  while (done < n && q->head) {
    blk *b = q->head;
    size_t k = WR_MIN(n - done, (size_t)(b->end - b->start));
    out_bytes(o, b->base + b->start, k);
    b->start += (uint32_t)k;
    done += k;
    if (b->start == b->end) {
      q->head = b->next;
      if (!q->head) q->tail = NULL;
      if (o->iov) {
        b->next = m->retired;
        m->retired = b;
      } else {
        mux_blk_put(m, b);
      }
    }
  }
  q->len -= done;
  return done;
}

void mux_release_retired(wr_mux *m) {
  while (m->retired) {
    blk *b = m->retired;
    m->retired = b->next;
    mux_blk_put(m, b);
  }
}

void mux_bq_clear(wr_mux *m, bq *q) {
  while (q->head) {
    blk *b = q->head;
    q->head = b->next;
    mux_blk_put(m, b);
  }
  q->tail = NULL;
  q->len = 0;
}

/* ---- control queue ---- */

int mux_q_frame(wr_mux *m, const wr_frame *f) {
  size_t n = wr_frame_encoded_len(f);
  uint8_t *p = bq_reserve(m, &m->ctrl, n);
  if (!p) return WR_ERR_NOMEM;
  wr_wbuf b;
  wr_wbuf_init(&b, p, n);
  int rv = wr_frame_encode(&b, f);
  (void)rv; /* sized above: cannot fail */
  m->st.frames_out++;
  return 0;
}

int mux_q_u32(wr_mux *m, uint8_t type, uint32_t sid, uint32_t v) {
  wr_frame f = {.type = type, .sid = sid, .value = v};
  return mux_q_frame(m, &f);
}

uint8_t *wr_mux_buf_new(wr_mux *m) {
  blk *b = m->free_bufs;
  if (b) {
    m->free_bufs = b->next;
    m->n_free_bufs--;
  } else if ((b = wr_mem_malloc(m->mem, sizeof *b + WR_MUX_BUF_CAP))) {
    b->cap = WR_MUX_BUF_CAP;
  } else {
    return NULL;
  }
  b->next = NULL;
  b->start = b->end = 0;
  b->base = b->data;
  b->release = NULL;
  return b->data;
}

void wr_mux_buf_free(wr_mux *m, uint8_t *buf) {
  if (buf) mux_blk_put(m, container_of(buf, blk, data));
}
