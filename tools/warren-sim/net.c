/*
 * The simulated network (net.h): a binary min-heap of events keyed by
 * (time, seq), a pool of fixed-size payload buffers, and per-node death,
 * pause and partition state.  See net.h for the rules; this file is only
 * their mechanics.
 *
 * Why a plain binary heap: a run pushes and pops tens of millions of
 * events, nearly all due within a few ms of now; a heap of 40-byte
 * records in one array costs O(log n) cheap compares and no allocation
 * once it has grown, which is all a single-threaded simulator needs.  A
 * timing wheel would be faster still but needs a bound on delays that
 * scenarios (long pauses) break.
 */
#include "net.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "warren/pcg.h"

/* Buffers are allocated in chunks so their addresses stay put while the
 * pool grows (a pointer into one stays valid until it is released). */
#define POOL_CHUNK 256

struct sim_net {
  uint64_t now;
  uint64_t seq;
  sim_net_params p;
  wr_pcg32 rng;

  sim_ev *heap;
  size_t nheap, capheap;

  uint8_t **chunks; /* chunks of POOL_CHUNK buffers of SIM_PKT_CAP */
  size_t nchunks, capchunks;
  uint32_t *freelist; /* indices of free buffers */
  size_t nfree;

  uint32_t nnodes;
  uint8_t *dead;
  uint64_t *paused_until;
  sim_net_filter filter; /* --faults (net.h), NULL: none */
  void *filter_ud;
  uint8_t sched_flags; /* flags of what schedule() pushes (a cut stream) */
  uint64_t *slow_until;
  uint8_t *group;
  uint64_t part_start, part_end;
  uint8_t *region; /* NULL: one region */
  /* Burst loss (net.h): per node, whether its link is in the bad state
   * and when it next flips; advanced lazily when a datagram uses it. */
  uint8_t *ge_bad;
  uint64_t *ge_flip;

  sim_net_stats st;
};

sim_net *sim_net_new(uint32_t nnodes, const sim_net_params *p, uint64_t seed) {
  sim_net *n = calloc(1, sizeof *n);
  if (!n) return NULL;
  n->p = *p;
  n->nnodes = nnodes;
  /* Stream 0 is the network's; node i's core draws from stream i + 1. */
  wr_pcg32_seed(&n->rng, seed, 0);
  n->dead = calloc(nnodes ? nnodes : 1, 1);
  n->paused_until = calloc(nnodes ? nnodes : 1, sizeof *n->paused_until);
  n->slow_until = calloc(nnodes ? nnodes : 1, sizeof *n->slow_until);
  if (p->burst_loss > 0) {
    n->ge_bad = calloc(nnodes ? nnodes : 1, 1);
    n->ge_flip = calloc(nnodes ? nnodes : 1, sizeof *n->ge_flip);
    if (!n->ge_bad || !n->ge_flip) {
      sim_net_del(n);
      return NULL;
    }
  }
  if (!n->dead || !n->paused_until || !n->slow_until) {
    sim_net_del(n);
    return NULL;
  }
  return n;
}

void sim_net_del(sim_net *n) {
  if (!n) return;
  for (size_t i = 0; i < n->nchunks; i++) free(n->chunks[i]);
  free(n->chunks);
  free(n->freelist);
  free(n->heap);
  free(n->dead);
  free(n->paused_until);
  free(n->slow_until);
  free(n->group);
  free(n->region);
  free(n->ge_bad);
  free(n->ge_flip);
  free(n);
}

uint64_t sim_net_now(const sim_net *n) { return n->now; }
struct wr_pcg32 *sim_net_rng(sim_net *n) {
  return &n->rng;
}

/* ---- the heap ---- */

static int ev_before(const sim_ev *a, const sim_ev *b) {
  return a->t < b->t || (a->t == b->t && a->seq < b->seq);
}

static int heap_push(sim_net *n, sim_ev *ev) {
  if (n->nheap == n->capheap) {
    size_t cap = n->capheap ? n->capheap * 2 : 1024;
    sim_ev *h = realloc(n->heap, cap * sizeof *h);
    if (!h) return -1;
    n->heap = h;
    n->capheap = cap;
  }
  ev->seq = n->seq++;
  size_t i = n->nheap++;
  while (i > 0) {
    size_t up = (i - 1) / 2;
    if (!ev_before(ev, &n->heap[up])) break;
    n->heap[i] = n->heap[up];
    i = up;
  }
  n->heap[i] = *ev;
  if (n->nheap > n->st.heap_max) n->st.heap_max = n->nheap;
  return 0;
}

static void heap_pop(sim_net *n, sim_ev *out) {
  *out = n->heap[0];
  sim_ev last = n->heap[--n->nheap];
  size_t i = 0, cnt = n->nheap;
  for (;;) {
    size_t c = 2 * i + 1;
    if (c >= cnt) break;
    if (c + 1 < cnt && ev_before(&n->heap[c + 1], &n->heap[c])) c++;
    if (!ev_before(&n->heap[c], &last)) break;
    n->heap[i] = n->heap[c];
    i = c;
  }
  if (cnt) n->heap[i] = last;
}

int sim_net_push(sim_net *n, uint64_t t, uint8_t kind, uint32_t node,
                 uint32_t arg) {
  sim_ev ev = {.t = t < n->now ? n->now : t,
               .node = node,
               .from = SIM_NONE,
               .arg = arg,
               .buf = SIM_NONE,
               .kind = kind};
  return heap_push(n, &ev);
}

/* ---- the buffer pool ---- */

static uint8_t *buf_ptr(const sim_net *n, uint32_t b) {
  return n->chunks[b / POOL_CHUNK] + (size_t)(b % POOL_CHUNK) * SIM_PKT_CAP;
}

static uint32_t buf_get(sim_net *n) {
  if (n->nfree == 0) {
    if (n->nchunks == n->capchunks) {
      size_t cap = n->capchunks ? n->capchunks * 2 : 16;
      /* The free list grows first: it must hold every buffer. */
      uint32_t *fl = realloc(n->freelist, cap * POOL_CHUNK * sizeof *fl);
      if (!fl) return SIM_NONE;
      n->freelist = fl;
      uint8_t **c = realloc(n->chunks, cap * sizeof *c);
      if (!c) return SIM_NONE;
      n->chunks = c;
      n->capchunks = cap;
    }
    uint8_t *chunk = malloc((size_t)POOL_CHUNK * SIM_PKT_CAP);
    if (!chunk) return SIM_NONE;
    uint32_t base = (uint32_t)(n->nchunks * POOL_CHUNK);
    n->chunks[n->nchunks++] = chunk;
    /* Pushed in reverse so the lowest index is handed out first. */
    for (uint32_t i = POOL_CHUNK; i-- > 0;) n->freelist[n->nfree++] = base + i;
    n->st.pool_bufs += POOL_CHUNK;
  }
  return n->freelist[--n->nfree];
}

static void buf_put(sim_net *n, uint32_t b) {
  if (b != SIM_NONE) n->freelist[n->nfree++] = b;
}

const uint8_t *sim_net_payload(const sim_net *n, const sim_ev *ev) {
  return ev->buf == SIM_NONE ? NULL : buf_ptr(n, ev->buf);
}

void sim_net_release(sim_net *n, sim_ev *ev) {
  buf_put(n, ev->buf);
  ev->buf = SIM_NONE;
}

/* ---- nodes and partitions ---- */

void sim_net_kill(sim_net *n, uint32_t node) {
  if (node < n->nnodes) n->dead[node] = 1;
}

int sim_net_dead(const sim_net *n, uint32_t node) {
  return node < n->nnodes && n->dead[node];
}

void sim_net_pause(sim_net *n, uint32_t node, uint64_t until) {
  if (node < n->nnodes && until > n->paused_until[node])
    n->paused_until[node] = until;
}

void sim_net_slow(sim_net *n, uint32_t node, uint64_t until) {
  if (node < n->nnodes && until > n->slow_until[node])
    n->slow_until[node] = until;
}

int sim_net_paused(const sim_net *n, uint32_t node) {
  return node < n->nnodes && n->paused_until[node] > n->now;
}

uint64_t sim_net_paused_until(const sim_net *n, uint32_t node) {
  return node < n->nnodes ? n->paused_until[node] : 0;
}

int sim_net_partition(sim_net *n, const uint8_t *group, uint64_t start,
                      uint64_t end) {
  if (!n->group) {
    n->group = malloc(n->nnodes ? n->nnodes : 1);
    if (!n->group) return -1;
  }
  memcpy(n->group, group, n->nnodes);
  n->part_start = start;
  n->part_end = end;
  return 0;
}

int sim_net_set_regions(sim_net *n, const uint8_t *region) {
  if (!n->region) {
    n->region = malloc(n->nnodes ? n->nnodes : 1);
    if (!n->region) return -1;
  }
  memcpy(n->region, region, n->nnodes);
  return 0;
}

uint64_t sim_net_link_delay(const sim_net *n, uint32_t a, uint32_t b) {
  if (n->region && a < n->nnodes && b < n->nnodes &&
      n->region[a] != n->region[b])
    return n->p.region_delay_ms;
  return n->p.delay_ms;
}

int sim_net_cut(const sim_net *n, uint32_t a, uint32_t b) {
  if (!n->group || n->now < n->part_start || n->now >= n->part_end) return 0;
  if (a >= n->nnodes || b >= n->nnodes) return 0;
  return n->group[a] != n->group[b];
}

/* ---- sending ---- */

static int schedule(sim_net *n, uint8_t kind, uint32_t from, uint32_t to,
                    uint32_t arg, uint64_t delay, const uint8_t *data,
                    size_t len) {
  uint32_t b = buf_get(n);
  if (b == SIM_NONE) return -1;
  if (len) memcpy(buf_ptr(n, b), data, len);
  sim_ev ev = {.t = n->now + delay,
               .node = to,
               .from = from,
               .arg = arg,
               .buf = b,
               .len = (uint16_t)len,
               .kind = kind,
               .flags = n->sched_flags};
  if (heap_push(n, &ev) != 0) {
    buf_put(n, b);
    return -1;
  }
  return 0;
}

static uint64_t draw_delay(sim_net *n, uint32_t from, uint32_t to) {
  uint64_t d = sim_net_link_delay(n, from, to);
  if (n->p.jitter_ms)
    d += wr_pcg32_bounded(&n->rng, (uint32_t)n->p.jitter_ms + 1);
  return d;
}

/* Node |v|'s link state now (Gilbert-Elliott): flips at exponential
 * intervals, drawn only when a datagram uses the link, so a run without
 * burst loss replays as before.  A link starts good, its first flip one
 * mean good stretch away on average. */
static double draw_exp(sim_net *n, uint64_t mean_ms) {
  double u = wr_pcg32_double(&n->rng);
  return -(double)(mean_ms ? mean_ms : 1) * log(1.0 - u);
}

static int link_bad(sim_net *n, uint32_t v) {
  if (v >= n->nnodes) return 0;
  if (!n->ge_flip[v])
    n->ge_flip[v] = n->now + 1 + (uint64_t)draw_exp(n, n->p.burst_good_ms);
  while (n->ge_flip[v] <= n->now) {
    n->ge_bad[v] = !n->ge_bad[v];
    n->ge_flip[v] += 1 + (uint64_t)draw_exp(
        n, n->ge_bad[v] ? n->p.burst_bad_ms : n->p.burst_good_ms);
  }
  return n->ge_bad[v];
}

int sim_net_send(sim_net *n, uint32_t from, uint32_t to, const uint8_t *pkt,
                 size_t len) {
  if (len > SIM_PKT_CAP) return -1;
  if (sim_net_dead(n, from)) return 0;
  n->st.sent++;
  /* Draws happen in a fixed order (loss, dup, delays) and only when the
   * feature is on, so a run without loss replays the same delays as
   * before loss existed. */
  sim_net_verdict fv = {1, 0};
  if (n->filter) {
    n->filter(n->filter_ud, from, to, 0, pkt, len, &fv);
    if (fv.copies == 0) return 0;
  }
  if (n->p.loss > 0 && wr_pcg32_double(&n->rng) < n->p.loss) {
    n->st.lost++;
    return 0;
  }
  if (n->p.burst_loss > 0 && (link_bad(n, from) || link_bad(n, to)) &&
      wr_pcg32_double(&n->rng) < n->p.burst_loss) {
    n->st.lost++;
    n->st.burst_lost++;
    return 0;
  }
  int copies = fv.copies;
  if (n->p.dup > 0 && wr_pcg32_double(&n->rng) < n->p.dup) copies = 2;
  for (int i = 0; i < copies; i++)
    if (schedule(n, SIM_EV_DELIVER, from, to, 0,
                 draw_delay(n, from, to) + fv.delay_ms, pkt, len))
      return -1;
  if (copies == 2) n->st.duplicated++;
  return copies;
}

/* --faults on a stream's bytes: a cut stream's pieces are scheduled
 * broken (sched_flags, cleared by the caller once they are queued); the
 * delay the rules give them is returned (the node holds the chunk in its
 * adapter for as long, swim_uv.c). */
static uint32_t stream_fault(sim_net *n, uint32_t from, uint32_t to,
                             const uint8_t *data, size_t len) {
  sim_net_verdict fv = {1, 0};
  if (n->filter && len) n->filter(n->filter_ud, from, to, 1, data, len, &fv);
  n->sched_flags = fv.copies ? 0 : SIM_EVF_BROKEN;
  return fv.copies ? fv.delay_ms : 0;
}

int sim_net_stream(sim_net *n, uint32_t from, uint32_t to, uint32_t arg,
                   const uint8_t *data, size_t len) {
  /* Fixed delay and seq order keep the pieces in order, as TCP would.
   * An empty send is one empty piece (the driver's connect and FIN).
   * Without a sender's clock a fault delay could reorder pieces, so this
   * path takes none (the sync's data goes through sim_net_stream_at). */
  (void)stream_fault(n, from, to, data, len);
  do {
    size_t k = len < SIM_PKT_CAP ? len : SIM_PKT_CAP;
    if (schedule(n, SIM_EV_STREAM, from, to, arg,
                 sim_net_link_delay(n, from, to), data, k)) {
      n->sched_flags = 0;
      return -1;
    }

    n->st.stream_bytes += k;
    data += k;
    len -= k;
  } while (len > 0);
  n->sched_flags = 0;
  return 0;
}

int sim_net_stream_at(sim_net *n, uint32_t from, uint32_t to, uint32_t arg,
                      const uint8_t *data, size_t len, uint64_t *clock) {
  /* The sender's bytes leave one after another at the stream's rate
   * (|*clock| in microseconds, so a 1.5 KB piece at 100 Mbit/s costs its
   * 123 us, not a whole clock tick) and arrive one delay later: arrival
   * times of one direction never go back, and (time, seq) order keeps
   * equal times in sending order. */
  uint64_t bpms = n->p.stream_bytes_per_ms;
  /* A fault delay holds this chunk, and the sender's clock with it, as
   * the node's adapter does: later chunks leave after it, in order. */
  uint32_t hold = stream_fault(n, from, to, data, len);
  if (hold) {
    uint64_t base = *clock > n->now * 1000 ? *clock : n->now * 1000;
    *clock = base + (uint64_t)hold * 1000;
  }
  do {
    size_t k = len < SIM_PKT_CAP ? len : SIM_PKT_CAP;
    uint64_t depart = *clock > n->now * 1000 ? *clock : n->now * 1000;
    if (bpms) depart += ((uint64_t)k * 1000 + bpms - 1) / bpms;
    *clock = depart;
    uint64_t at = (depart + 999) / 1000; /* whole ms, never early */
    if (schedule(n, SIM_EV_STREAM, from, to, arg,
                 at - n->now + sim_net_link_delay(n, from, to), data, k)) {
      n->sched_flags = 0;
      return -1;
    }
    n->st.stream_bytes += k;
    data += k;
    len -= k;
  } while (len > 0);
  n->sched_flags = 0;
  return 0;
}

int sim_net_stream_connect(sim_net *n, uint32_t from, uint32_t to,
                           uint32_t arg, uint64_t *clock) {
  /* SYN and SYN-ACK take two delays before the initiator may write; its
   * first bytes ride behind the final ACK, which arrives a delay later. */
  uint64_t d = sim_net_link_delay(n, from, to);
  *clock = (n->now + 2 * d) * 1000;
  return schedule(n, SIM_EV_STREAM, from, to, arg, 3 * d, NULL, 0);
}

/* ---- the event loop's pop ---- */

static void defer(sim_net *n, sim_ev *ev) {
  ev->t = n->paused_until[ev->node];
  n->st.deferred++;
  /* Cannot fail: the slot it just left is still allocated. */
  (void)heap_push(n, ev);
}

/* Holds input to a slow node back once.  1 when it did (|ev| is queued
 * again); draws only for slow nodes, so other runs replay as before. */
static int hold_slow(sim_net *n, sim_ev *ev) {
  if (n->slow_until[ev->node] <= n->now || (ev->flags & SIM_EVF_SLOWED) ||
      !n->p.slow_ms)
    return 0;
  uint64_t half = n->p.slow_ms / 2;
  ev->t = n->now + half +
          wr_pcg32_bounded(&n->rng, (uint32_t)(n->p.slow_ms - half + 1));
  ev->flags |= SIM_EVF_SLOWED;
  n->st.slowed++;
  (void)heap_push(n, ev); /* cannot fail: its slot is still allocated */
  return 1;
}

int sim_net_next(sim_net *n, uint64_t until, sim_ev *ev) {
  for (;;) {
    if (n->nheap == 0 || n->heap[0].t > until) {
      if (until != UINT64_MAX && until > n->now) n->now = until;
      return 0;
    }
    heap_pop(n, ev);
    n->now = ev->t;
    n->st.events++;
    if (ev->kind >= SIM_EV_USER || ev->node >= n->nnodes) return 1;
    switch (ev->kind) {
    case SIM_EV_DELIVER:
      if (n->dead[ev->node]) {
        n->st.dead_dropped++;
        uint32_t sender = ev->from, dead = ev->node;
        sim_net_release(n, ev);
        /* Its kernel answers for the dead process.  Draws only when on,
         * so silent runs replay as before. */
        if (n->p.refuse_dead && sender != SIM_NONE && !n->dead[sender] &&
            !(n->p.loss > 0 && wr_pcg32_double(&n->rng) < n->p.loss))
          (void)schedule(n, SIM_EV_UNREACH, dead, sender, 0,
                         draw_delay(n, dead, sender), NULL, 0);
        continue;
      }
      if (ev->from != SIM_NONE && sim_net_cut(n, ev->from, ev->node)) {
        n->st.partition_dropped++;
        sim_net_release(n, ev);
        continue;
      }
      if (n->paused_until[ev->node] > n->now) {
        defer(n, ev);
        continue;
      }
      if (hold_slow(n, ev)) continue;
      n->st.delivered++;
      return 1;
    case SIM_EV_UNREACH:
      if (n->dead[ev->node]) {
        sim_net_release(n, ev);
        continue;
      }
      if (n->paused_until[ev->node] > n->now) {
        defer(n, ev);
        continue;
      }
      if (hold_slow(n, ev)) continue;
      return 1;
    case SIM_EV_TIMER:
      if (n->dead[ev->node]) continue;
      if (n->paused_until[ev->node] > n->now) {
        defer(n, ev);
        continue;
      }
      return 1;
    case SIM_EV_STREAM:
      if (n->dead[ev->node] ||
          (ev->from != SIM_NONE &&
           (n->dead[ev->from] || sim_net_cut(n, ev->from, ev->node)))) {
        ev->flags |= SIM_EVF_BROKEN;
        n->st.stream_broken++;
        return 1;
      }
      if (n->paused_until[ev->node] > n->now) {
        defer(n, ev);
        continue;
      }
      return 1;
    default:
      return 1;
    }
  }
}

void sim_net_get_stats(const sim_net *n, sim_net_stats *out) { *out = n->st; }

void sim_net_set_filter(sim_net *n, sim_net_filter fn, void *ud) {
  n->filter = fn;
  n->filter_ud = ud;
}
