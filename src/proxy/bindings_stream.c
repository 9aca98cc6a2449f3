/*
 * Visitors' streams on a client's tunnel link (bindings_int.h): opening
 * one for up_tunnel.c (tstream_open), credit, FIN, detaching, and the
 * link's stream callbacks that bring the visitor its response.  A
 * draining link's GOAWAY waits for its last stream (on_goaway_due).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bindings_int.h"
#include "warren/err.h"
#include "warren/identity.h"
#include "warren/log.h"
#include "warren/names.h"

/* A draining link's last stream ended a loop turn ago: tell its client
 * to move now, unless a new stream opened meanwhile. */
static void on_goaway_due(uv_timer_t *timer) {
  bindings *b = timer->data;
  for (tlink *tl = b->tlinks; tl; tl = tl->next)
    if (tl->goaway_due && tl->nstreams == 0) send_goaway(tl);
}

void stream_unlink(tstream *s) {
  tlink *tl = s->tl;
  if (s->prev)
    s->prev->next = s->next;
  else
    tl->streams = s->next;
  if (s->next) s->next->prev = s->prev;
  s->prev = s->next = NULL;
  tl->nstreams--;
  s->tl = NULL;
  if (tl->goaway_due && tl->nstreams == 0 && !tl->b->stopping)
    uv_timer_start(&tl->b->goaway, on_goaway_due, 0, 0);
}

int tstream_open(tstream *s, tlink *tl, const uint8_t *meta, size_t len) {
  s->waiting = NULL;
  int rv = wr_mux_stream_open(wr_link_mux(tl->link), meta, len, &s->sid, s);
  if (rv != 0) return rv;
  s->tl = tl;
  s->prev = NULL;
  s->next = tl->streams;
  if (tl->streams) tl->streams->prev = s;
  tl->streams = s;
  tl->nstreams++;
  return 0;
}

wr_ssize tstream_write(tstream *s, const uint8_t *data, size_t len) {
  if (s->waiting) return 0; /* `writable` comes when it opens */
  if (!s->tl || !s->tl->link) return WR_ERR_CLOSED;
  wr_ssize n = wr_mux_stream_write(wr_link_mux(s->tl->link), s->sid, data, len);
  wr_link_flush(s->tl->link);
  return n;
}

void tstream_consume(tstream *s, size_t n) {
  if (!s->tl || !s->tl->link) return;
  wr_mux_stream_consume(wr_link_mux(s->tl->link), s->sid, n);
  wr_link_flush(s->tl->link);
}

void tstream_fin(tstream *s) {
  if (s->waiting) {
    s->fin_asked = 1;
    return;
  }
  if (!s->tl || !s->tl->link) return;
  wr_mux_stream_close(wr_link_mux(s->tl->link), s->sid);
  wr_link_flush(s->tl->link);
}

void tstream_detach(tstream *s, int reset) {
  if (s->waiting) {
    tunnel *t = s->waiting;
    if (s->prev)
      s->prev->next = s->next;
    else
      t->waiters = s->next;
    if (s->next) s->next->prev = s->prev;
    s->prev = s->next = NULL;
    s->waiting = NULL;
    t->nwait--;
    s->b->nwaiting--;
    return;
  }
  if (!s->tl) return;
  tlink *tl = s->tl;
  if (tl->link) {
    wr_mux *m = wr_link_mux(tl->link);
    wr_mux_stream_set_user_data(m, s->sid, NULL);
    if (reset) wr_mux_stream_reset(m, s->sid, WR_MUX_RST_CANCEL);
    wr_link_flush(tl->link);
  }
  stream_unlink(s);
}

int tl_on_data(wr_link *l, uint32_t sid, void *sud, uint8_t *buf, size_t len,
               void *ud) {
  tlink *tl = ud;
  tstream *s = sud;
  if (!s || s->tl != tl) {
    wr_mux_stream_consume(wr_link_mux(l), sid, len);
    wr_link_buf_free(buf);
    return 0;
  }
  tl->b->ev.data(s, buf, len);
  return 0;
}

int tl_on_fin(wr_link *l, uint32_t sid, void *sud, void *ud) {
  (void)l;
  (void)sid;
  tstream *s = sud;
  if (s && s->tl == ud) ((tlink *)ud)->b->ev.fin(s);
  return 0;
}

int tl_on_close(wr_link *l, uint32_t sid, void *sud, int64_t code, int by_peer,
                void *ud) {
  (void)l;
  (void)sid;
  tlink *tl = ud;
  tstream *s = sud;
  if (!s || s->tl != tl) return 0;
  /* Gone before the event, so nothing resets it again. */
  stream_unlink(s);
  tl->b->ev.closed(s, code, by_peer);
  return 0;
}

int tl_on_writable(wr_link *l, uint32_t sid, void *sud, void *ud) {
  (void)l;
  (void)sid;
  tstream *s = sud;
  if (s && s->tl == ud) ((tlink *)ud)->b->ev.writable(s);
  return 0;
}

int tl_on_open(wr_link *l, uint32_t sid, const uint8_t *meta, size_t len,
               void *ud) {
  (void)meta;
  (void)len;
  (void)ud;
  /* Clients never open streams toward the node. */
  wr_mux_stream_reset(wr_link_mux(l), sid, WR_MUX_RST_REFUSED);
  return 0;
}
