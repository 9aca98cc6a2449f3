/*
 * The piggyback queue.  memberlist's TransmitLimitedQueue keeps a btree;
 * ours is a pointer array kept sorted by (transmits, newest first).  A
 * take bumps a prefix-ish subset by one, which an insertion sort restores
 * in near-linear time; the queue is small in steady state (tens of
 * entries) and bounded (SWIM_BQUEUE_MAX) under churn.
 */
#include <stdio.h>
#include <string.h>

#include "swim_int.h"
#include "warren/err.h"

void swim_bqueue_init(swim_bqueue *q, const wr_mem *mem) {
  memset(q, 0, sizeof *q);
  q->mem = mem;
}

static void bcast_free(const wr_mem *mem, swim_bcast *b) {
  wr_mem_free(mem, b);
}

static const char *bcast_topic(const swim_bcast *b) {
  return (const char *)b->data + b->size;
}

static void flush_retired(swim_bqueue *q) {
  for (size_t i = 0; i < q->nretired; i++) bcast_free(q->mem, q->retired[i]);
  q->nretired = 0;
}

void swim_bqueue_free(swim_bqueue *q) {
  flush_retired(q);
  for (size_t i = 0; i < q->n; i++) bcast_free(q->mem, q->v[i]);
  wr_mem_free(q->mem, q->v);
  memset(q, 0, sizeof *q);
}

static int before(const swim_bcast *a, const swim_bcast *b) {
  return a->transmits != b->transmits ? a->transmits < b->transmits
                                      : a->order > b->order;
}

static void remove_at(swim_bqueue *q, size_t i) {
  bcast_free(q->mem, q->v[i]);
  memmove(&q->v[i], &q->v[i + 1], (q->n - i - 1) * sizeof *q->v);
  q->n--;
}

static uint32_t topic_hash(const wr_swim_update *u) {
  /* Different bases keep a key and a member id of the same spelling
   * apart. */
  return u->kind == WR_SWIM_UPD_USER ? swim_hash(u->key, 0x9e3779b9u)
                                     : swim_hash(u->id, SWIM_HASH_BASIS);
}

/* Does queued |b| say less than |u|, so that |u| replaces it? */
static int superseded(const swim_bcast *b, const wr_swim_update *u,
                      uint32_t hash) {
  if (b->hash != hash) return 0;
  if (u->kind == WR_SWIM_UPD_USER)
    return b->kind == WR_SWIM_UPD_USER && strcmp(bcast_topic(b), u->key) == 0 &&
           b->version <= u->version;
  return b->kind != WR_SWIM_UPD_USER && strcmp(bcast_topic(b), u->id) == 0;
}

int swim_bqueue_push(swim_bqueue *q, const wr_swim_update *u) {
  size_t size = wr_swim_update_size(u);
  if (!size) return WR_ERR_INVAL;
  flush_retired(q);
  uint32_t hash = topic_hash(u);
  /* A repeat of a USER update already queued at the same or a newer
   * version changes nothing: replacing it would reset its send count and
   * keep it circulating. */
  for (size_t i = 0; i < q->n && u->kind == WR_SWIM_UPD_USER; i++)
    if (q->v[i]->hash == hash && q->v[i]->kind == WR_SWIM_UPD_USER &&
        strcmp(bcast_topic(q->v[i]), u->key) == 0 &&
        q->v[i]->version >= u->version)
      return 0;
  for (size_t i = 0; i < q->n; i++)
    if (superseded(q->v[i], u, hash)) {
      remove_at(q, i);
      break; /* at most one per member or key is ever queued */
    }
  if (q->n == SWIM_BQUEUE_MAX) {
    /* Full: evict the most-sent (the last), it has done the most good. */
    remove_at(q, q->n - 1);
    q->dropped++;
  }
  if (q->n == q->cap) {
    size_t cap = q->cap ? q->cap * 2 : 16;
    swim_bcast **v = wr_mem_realloc(q->mem, q->v, cap * sizeof *v);
    if (!v) return WR_ERR_NOMEM;
    q->v = v;
    q->cap = cap;
  }
  const char *topic = u->kind == WR_SWIM_UPD_USER ? u->key : u->id;
  size_t tlen = strlen(topic); /* <= WR_SWIM_ID_MAX: the size check passed */
  swim_bcast *b = wr_mem_malloc(q->mem, sizeof *b + size + tlen + 1);
  if (!b) return WR_ERR_NOMEM;
  if (wr_swim_update_encode(u, b->data, size) != (wr_ssize)size) {
    wr_mem_free(q->mem, b);
    return WR_ERR_INVAL;
  }
  memcpy(b->data + size, topic, tlen + 1);
  b->kind = u->kind;
  b->topic_len = (uint8_t)tlen;
  b->version = u->version;
  b->transmits = 0;
  b->order = q->next_order++;
  b->size = (uint16_t)size;
  b->hash = hash;
  /* Newest with zero transmits sorts first. */
  memmove(&q->v[1], &q->v[0], q->n * sizeof *q->v);
  q->v[0] = b;
  q->n++;
  return 0;
}

int swim_bqueue_has(const swim_bqueue *q, const char *id) {
  wr_swim_update probe = {.kind = WR_SWIM_UPD_ALIVE};
  snprintf(probe.id, sizeof probe.id, "%s", id);
  uint32_t hash = topic_hash(&probe);
  for (size_t i = 0; i < q->n; i++)
    if (superseded(q->v[i], &probe, hash)) return 1;
  return 0;
}

void swim_bqueue_forget(swim_bqueue *q, const char *id) {
  wr_swim_update probe = {.kind = WR_SWIM_UPD_ALIVE};
  snprintf(probe.id, sizeof probe.id, "%s", id);
  uint32_t hash = topic_hash(&probe);
  flush_retired(q);
  for (size_t i = 0; i < q->n; i++)
    if (superseded(q->v[i], &probe, hash)) {
      remove_at(q, i);
      return;
    }
}

size_t swim_bqueue_take(swim_bqueue *q, wr_swim_update *out, size_t max,
                        size_t *budget, uint32_t limit) {
  size_t got = 0, keep = 0;
  flush_retired(q);
  for (size_t i = 0; i < q->n; i++) {
    swim_bcast *b = q->v[i];
    /* Decoding our own encoding cannot fail; the payload view points
     * into |b|, which lives until the next call (retired or not). */
    if (got < max && b->size <= *budget &&
        wr_swim_update_decode(b->data, b->size, &out[got]) == (wr_ssize)b->size) {
      got++;
      *budget -= b->size;
      if (++b->transmits >= limit) {
        q->retired[q->nretired++] = b;
        continue;
      }
    }
    q->v[keep++] = b;
  }
  q->n = keep;
  /* Insertion sort: only the entries just sent moved, each by one. */
  for (size_t i = 1; i < q->n; i++) {
    swim_bcast *b = q->v[i];
    size_t j = i;
    for (; j > 0 && before(b, q->v[j - 1]); j--) q->v[j] = q->v[j - 1];
    q->v[j] = b;
  }
  return got;
}
