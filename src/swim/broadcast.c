/*
 * The piggyback queue.  memberlist's TransmitLimitedQueue keeps a btree
 * ordered by transmits plus a map by name; ours keeps one intrusive list
 * per transmit count and a chained hash index by topic, so push, forget,
 * take and eviction cost O(1) per entry touched whatever the queue's
 * length.  That matters only under load, which is exactly when the queue
 * is long (see swim_int.h).
 */
#include <stdio.h>
#include <string.h>

#include "swim_int.h"
#include "warren/err.h"

/* A take gives up looking for an entry small enough for a packet's last
 * bytes after this many in a row that do not fit: those bytes stay
 * unused rather than the take scanning thousands of entries. */
#define TAKE_MISFITS_MAX 16

void swim_bqueue_init(swim_bqueue *q, const wr_mem *mem, size_t max) {
  memset(q, 0, sizeof *q);
  q->mem = mem;
  q->max = max ? max : 1;
}

static const char *bcast_topic(const swim_bcast *b) {
  return (const char *)b->data + b->size;
}

void swim_bqueue_free(swim_bqueue *q) {
  for (size_t t = 0; t < SWIM_BQUEUE_LEVELS; t++)
    for (swim_bcast *b = q->level[t].head, *next; b; b = next) {
      next = b->next;
      wr_mem_free(q->mem, b);
    }
  wr_mem_free(q->mem, q->index);
  memset(q, 0, sizeof *q);
}

static size_t level_of(uint32_t transmits) {
  return transmits < SWIM_BQUEUE_LEVELS ? transmits : SWIM_BQUEUE_LEVELS - 1;
}

/* ---- the transmit-count lists -------------------------------------------- */

static void list_unlink(swim_blist *l, swim_bcast *b) {
  if (b->prev) b->prev->next = b->next; else l->head = b->next;
  if (b->next) b->next->prev = b->prev; else l->tail = b->prev;
  b->prev = b->next = NULL;
}

static void list_push_head(swim_blist *l, swim_bcast *b) {
  b->prev = NULL;
  b->next = l->head;
  if (l->head) l->head->prev = b; else l->tail = b;
  l->head = b;
}

static void list_push_tail(swim_blist *l, swim_bcast *b) {
  b->next = NULL;
  b->prev = l->tail;
  if (l->tail) l->tail->next = b; else l->head = b;
  l->tail = b;
}

/* ---- the topic index ----------------------------------------------------- */

static uint32_t topic_hash(int user, const char *topic) {
  /* Different bases keep a key and a member id of the same spelling
   * apart. */
  return user ? swim_hash(topic, 0x9e3779b9u) : swim_hash(topic, SWIM_HASH_BASIS);
}

static swim_bcast **index_chain(const swim_bqueue *q, uint32_t hash) {
  return &q->index[hash & (q->nindex - 1)];
}

/* The queued entry about |topic| (a USER key when |user|, else a member
 * id), or NULL. */
static swim_bcast *index_find(const swim_bqueue *q, int user,
                              const char *topic) {
  if (!q->nindex) return NULL;
  uint32_t hash = topic_hash(user, topic);
  for (swim_bcast *b = *index_chain(q, hash); b; b = b->hnext)
    if (b->hash == hash && (b->kind == WR_SWIM_UPD_USER) == user &&
        strcmp(bcast_topic(b), topic) == 0)
      return b;
  return NULL;
}

static void index_remove(swim_bqueue *q, swim_bcast *b) {
  swim_bcast **pp = index_chain(q, b->hash);
  while (*pp != b) pp = &(*pp)->hnext;
  *pp = b->hnext;
  b->hnext = NULL;
}

static void index_insert(swim_bqueue *q, swim_bcast *b) {
  swim_bcast **pp = index_chain(q, b->hash);
  b->hnext = *pp;
  *pp = b;
}

/* Keeps chains short: at least one head per entry.  0 or WR_ERR_NOMEM
 * (the index is then unchanged and still correct, only slower). */
static int index_reserve(swim_bqueue *q, size_t want) {
  if (want <= q->nindex) return 0;
  size_t ns = q->nindex ? q->nindex : 16;
  while (ns < want) ns *= 2;
  swim_bcast **heads = wr_mem_calloc(q->mem, ns, sizeof *heads);
  if (!heads) return WR_ERR_NOMEM;
  swim_bcast **old = q->index;
  size_t nold = q->nindex;
  q->index = heads;
  q->nindex = ns;
  for (size_t i = 0; i < nold; i++)
    for (swim_bcast *b = old[i], *next; b; b = next) {
      next = b->hnext;
      index_insert(q, b);
    }
  wr_mem_free(q->mem, old);
  return 0;
}

/* ---- operations ---------------------------------------------------------- */

/* Unlinks |b| from its list and the index; the caller frees or retires it. */
static void detach(swim_bqueue *q, swim_bcast *b) {
  list_unlink(&q->level[level_of(b->transmits)], b);
  index_remove(q, b);
  q->n--;
}

/* Evicts the most-sent entry (it has done the most good): the tail of the
 * highest non-empty level. */
static void evict_one(swim_bqueue *q) {
  for (size_t t = SWIM_BQUEUE_LEVELS; t-- > 0;) {
    swim_bcast *b = q->level[t].tail;
    if (!b) continue;
    detach(q, b);
    wr_mem_free(q->mem, b);
    q->dropped++;
    return;
  }
}

int swim_bqueue_push(swim_bqueue *q, const wr_swim_update *u) {
  size_t size = wr_swim_update_size(u);
  if (!size) return WR_ERR_INVAL;
  int user = u->kind == WR_SWIM_UPD_USER;
  const char *topic = user ? u->key : u->id;
  swim_bcast *old = index_find(q, user, topic);
  /* A repeat of a USER update already queued at the same or a newer
   * version changes nothing: replacing it would reset its send count and
   * keep it circulating. */
  if (old && user && old->version >= u->version) return 0;
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
  b->size = (uint16_t)size;
  b->hash = topic_hash(user, topic);
  b->prev = b->next = b->hnext = NULL;
  if (old) { /* at most one per member or key is ever queued */
    detach(q, old);
    wr_mem_free(q->mem, old);
  }
  if (q->n >= q->max) evict_one(q);
  if (index_reserve(q, q->n + 1) != 0 && !q->nindex) {
    wr_mem_free(q->mem, b);
    return WR_ERR_NOMEM;
  }
  index_insert(q, b);
  list_push_head(&q->level[0], b);
  q->n++;
  return 0;
}

int swim_bqueue_has(const swim_bqueue *q, const char *id) {
  return index_find(q, 0, id) != NULL;
}

void swim_bqueue_forget(swim_bqueue *q, const char *id) {
  swim_bcast *b = index_find(q, 0, id);
  if (!b) return;
  detach(q, b);
  wr_mem_free(q->mem, b);
}

const swim_bcast *swim_bqueue_first(const swim_bqueue *q) {
  for (size_t t = 0; t < SWIM_BQUEUE_LEVELS; t++)
    if (q->level[t].head) return q->level[t].head;
  return NULL;
}

size_t swim_bqueue_take(swim_bqueue *q, uint8_t *dst, size_t max,
                        size_t *budget, uint32_t limit) {
  swim_bcast *taken[WR_SWIM_UPDATES_MAX];
  size_t got = 0, misfits = 0;
  if (max > WR_SWIM_UPDATES_MAX) max = WR_SWIM_UPDATES_MAX;
  for (size_t t = 0; t < SWIM_BQUEUE_LEVELS && got < max; t++) {
    for (swim_bcast *b = q->level[t].head, *next;
         b && got < max && misfits < TAKE_MISFITS_MAX; b = next) {
      next = b->next;
      if (b->size > *budget) {
        misfits++;
        continue;
      }
      misfits = 0;
      memcpy(dst, b->data, b->size);
      dst += b->size;
      *budget -= b->size;
      list_unlink(&q->level[t], b);
      taken[got++] = b;
    }
  }
  /* Relinked only now, so one take never sends an entry twice. */
  for (size_t i = 0; i < got; i++) {
    swim_bcast *b = taken[i];
    if (++b->transmits >= limit) {
      index_remove(q, b);
      q->n--;
      wr_mem_free(q->mem, b);
    } else {
      list_push_tail(&q->level[level_of(b->transmits)], b);
    }
  }
  return got;
}
