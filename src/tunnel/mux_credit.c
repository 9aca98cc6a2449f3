/*
 * The multiplexer's flow control and send scheduling (mux_int.h): what a
 * stream may write (its credit, the link's, the send buffer, its fair
 * share of a short link), when consumed bytes give credit back, and which
 * blocked stream is woken when there is room again.
 */
#include "mux_int.h"

/* ---- credit ---- */

/*
 * Consumed bytes give their link credit back in batches of half a window
 * (one WINDOW frame per 8 MiB by default), or sooner when the peer has
 * less credit left than we are holding back.  Half a window alone
 * deadlocked a link whose other streams held more than half of it
 * unconsumed (visitors that never read, issue 11): the rest of the window
 * was all the peer could send, its consumption never reached the batch
 * size, and every other stream on the link waited for the stuck ones.
 */
int mux_link_credit_back(wr_mux *m, uint64_t n) {
  m->link_pending += n;
  if (m->link_pending > 0 &&
      (m->link_pending >= m->cfg.link_window / 2 ||
       (int64_t)m->link_pending >= m->rwin_link)) {
    int rv = mux_q_u32(m, WR_FRAME_WINDOW, 0, (uint32_t)m->link_pending);
    if (rv != 0) return rv;
    m->rwin_link += (int64_t)m->link_pending;
    m->link_pending = 0;
  }
  return 0;
}

/*
 * Fair link credit (issue 11).  The link window used to go to whichever
 * stream wrote first.  Streams whose reader stopped hold their share
 * until the node sheds them (about a second later), so a flood of new
 * slow readers of large responses took the whole link and a normal
 * visitor of that name waited 1-5 s for credit.  Now, while the link is
 * short (less than half of the peer's link window left), a stream may
 * hold at most
 *
 *   share = max(FAIR_FLOOR, link_window / (4 * n * n))
 *
 * of it, n being the streams that hold credit (this one included), where
 * "hold" is what the stream sent whose stream credit has not come back.
 * Why n squared: stuck streams never give back what they took, so a
 * share of c/n per newcomer adds up like the harmonic series and fills
 * any link after a few dozen of them; with c/n^2 the shares of all
 * newcomers together stay under 0.41 of the window (pi^2/24), and each
 * later newcomer takes only the floor.  Few streams (up to 4 with the
 * defaults) still get a whole stream window each.  Why 32 KiB: a typical
 * page goes out in one piece, and half the window lasts 256 stuck
 * newcomers, about the node's shedding delay of such a flood (250
 * connections/s in slowhttptest).  A fast reader over its share goes on
 * in floor-sized steps per round trip until the link has room again.
 *
 * The hold is exact only if the peer returns stream credit in small
 * steps while the link is short; otherwise a stream capped below half a
 * stream window would wait for a WINDOW its peer batches until half a
 * window is consumed.  So the cap applies only to a peer that announced
 * WR_SET_CREDIT_STEP, and our receive side does what we announce:
 * CREDIT_STEP while the peer has less than three quarters of our link
 * window left (a margin over the sender's half, for bytes in flight), and
 * when it first gets that short it returns what its streams already hold
 * pending.  FAIR_FLOOR is twice the step, so a capped stream whose bytes
 * were all consumed always has a step pending: it is never stuck.
 */
#define FAIR_FLOOR (2 * CREDIT_STEP)
/* The least credit mux_fire_writable wakes a stream for (see there). */
#define WAKE_MIN 4096

static int64_t fair_room(const wr_mux *m, const stream *s) {
  if (!m->peer_credit_step || m->swin_link >= (int64_t)m->peer_link_window / 2)
    return INT64_MAX;
  uint64_t n = (uint64_t)m->n_holding + (s->held == 0);
  uint64_t floor = WR_MAX((uint64_t)FAIR_FLOOR, 2ull * m->peer_credit_step);
  uint64_t share = WR_MAX(floor, m->peer_link_window / (4 * n * n));
  return share > s->held ? (int64_t)(share - s->held) : 0;
}

/* The peer gave back |n| of |s|'s stream credit. */
void mux_held_back(wr_mux *m, stream *s, uint64_t n) {
  if (!s->held) return;
  s->held -= WR_MIN(s->held, n);
  if (!s->held) m->n_holding--;
}

/* Returns |s|'s consumed bytes in a stream WINDOW when enough are
 * pending: half a window, or CREDIT_STEP while the link is short. */
int mux_stream_credit_back(wr_mux *m, stream *s) {
  if (s->fin_recv || !s->pending) return 0;
  uint64_t step = mux_link_short(m) ? CREDIT_STEP : m->cfg.stream_window / 2;
  if (s->pending < WR_MIN(step, (uint64_t)m->cfg.stream_window / 2)) return 0;
  int rv = mux_q_u32(m, WR_FRAME_WINDOW, s->sid, (uint32_t)s->pending);
  if (rv != 0) return rv;
  s->rwin += (int64_t)s->pending;
  s->pending = 0;
  return 0;
}

/* What wr_mux_stream_write accepts on |s|: its credit and the link's,
 * within the room left in the send buffer and its fair share. */
int64_t mux_credit_of(const wr_mux *m, const stream *s) {
  int64_t c = WR_MIN(s->swin, m->swin_link);
  c = WR_MIN(c, (int64_t)m->cfg.send_buffer - (int64_t)m->queued_data);
  c = WR_MIN(c, fair_room(m, s));
  return c > 0 ? c : 0;
}

/* Blocked streams are woken only once the send buffer is at most half
 * full, so a draining buffer does not wake them for every record; a
 * wake-up held back here is retried by wr_mux_send as the buffer drains. */
int mux_buf_low(wr_mux *m) {
  if (m->queued_data <= m->cfg.send_buffer / 2) return 1;
  m->buf_full = 1;
  return 0;
}

/*
 * Tells blocked streams that have credit again.  Callbacks may not touch
 * the mux, so walking the list while firing is safe.
 *
 * One stream is woken per call: one woken writer can refill the buffer on
 * its own.  The rest stay blocked with buf_full set, and wr_mux_send wakes
 * the next one when the buffer drains to half again or runs empty
 * (wr_mux_want_write asks for that call).  Waking all of them at once
 * made 50 client streams each restart reading, find the buffer full
 * after the first few reads, and stop again: ~70 epoll_ctl calls per MiB
 * instead of ~8.
 *
 * Which one: the stream that has sent the least in its life (least
 * attained service), oldest first among equals.  Oldest first let a burst
 * of 150 new streams with large answers (slowhttptest -X) each fill the
 * buffer once, ~75 MiB, before a fresh stream with a 5-byte answer that
 * arrived after them got its turn: 1-4 s.  A stream that has sent
 * nothing yet now goes first, and long transfers share what is left.
 * O(blocked streams) per wake-up, and wake-ups come once per half buffer
 * drained.
 */
int mux_fire_writable(wr_mux *m) {
  m->recheck_writable = 0;
  if (m->swin_link <= 0 || !mux_buf_low(m)) return 0;
  stream *best = NULL;
  int more = 0;
  for (dl *e = m->blocked.next; e != &m->blocked; e = e->next) {
    stream *s = container_of(e, stream, blocked);
    /* Not for a sliver of credit: the client reads its origin only with
     * 4 KiB or more (client_origin.c, MIN_READ) and waits again, and the
     * least-served stream, woken for less, would be chosen again every
     * time while the others starved.  Its own stream WINDOW still wakes
     * it (on_window), and each of those brings at least CREDIT_STEP. */
    if (mux_credit_of(m, s) < WAKE_MIN) continue;
    if (best) more = 1;
    if (!best || s->taken < best->taken) best = s;
  }
  if (!best) return 0;
  if (more) m->buf_full = 1;
  dl_del(&best->blocked);
  if (m->cb.stream_writable &&
      m->cb.stream_writable(m, best->sid, m->user_data) != 0)
    return WR_ERR_CALLBACK;
  return 0;
}

/* The link just got short: streams' consumed bytes waiting for half a
 * window go back now in steps (fair link credit, above), or a peer that
 * capped a stream at its share would wait for them for ever.  Once per
 * crossing, and a crossing takes a quarter of the link window in DATA. */
int mux_flush_steps(wr_mux *m) {
  for (uint32_t i = 0; i < m->nbuckets; i++)
    for (stream *st = m->buckets[i]; st; st = st->hnext) {
      int rv = mux_stream_credit_back(m, st);
      if (rv != 0) return rv;
    }
  return 0;
}
