/*
 * The member table: a dense array (the probe order is the array order,
 * shuffled once per round) with an open-addressing index by id.  Dense
 * because probing, gossip target picks and iteration all want "member i";
 * indexed because every piggybacked update names a member by id.
 */
#include <stdio.h>
#include <string.h>

#include "swim_int.h"
#include "warren/err.h"

static uint32_t id_hash(const char *s) { return swim_hash(s, SWIM_HASH_BASIS); }

void swim_members_init(swim_members *t, const wr_mem *mem) {
  memset(t, 0, sizeof *t);
  t->mem = mem;
}

static void member_clear(const wr_mem *mem, swim_member *m) {
  if (m->id_len >= SWIM_ID_INLINE) wr_mem_free(mem, m->id_.heap); /* may be NULL mid-copy */
  wr_mem_free(mem, m->meta);
}

void swim_members_free(swim_members *t) {
  for (size_t i = 0; i < t->n; i++) member_clear(t->mem, &t->v[i]);
  wr_mem_free(t->mem, t->v);
  wr_mem_free(t->mem, t->slots);
  wr_mem_free(t->mem, t->bh);
  memset(t, 0, sizeof *t);
}

static size_t slot_of(const swim_members *t, const char *id) {
  return id_hash(id) & (t->nslots - 1);
}

ssize_t swim_members_find(const swim_members *t, const char *id) {
  if (!t->nslots) return -1;
  for (size_t s = slot_of(t, id);; s = (s + 1) & (t->nslots - 1)) {
    uint32_t v = t->slots[s];
    if (!v) return -1;
    if (strcmp(swim_member_id(&t->v[v - 1]), id) == 0) return (ssize_t)v - 1;
  }
}

static void index_put(swim_members *t, size_t i) {
  size_t s = slot_of(t, swim_member_id(&t->v[i]));
  while (t->slots[s]) s = (s + 1) & (t->nslots - 1);
  t->slots[s] = (uint32_t)i + 1;
}

/* The slot holding index |i| (which must be indexed). */
static size_t index_slot(const swim_members *t, size_t i) {
  size_t s = slot_of(t, swim_member_id(&t->v[i]));
  while (t->slots[s] != i + 1) s = (s + 1) & (t->nslots - 1);
  return s;
}

/* Load factor <= 3/4: linear probing stays short, and at 10,000 members
 * the index is 64 KiB (the simulator holds 10,000 of these tables). */
static int index_grow(swim_members *t, size_t want) {
  size_t ns = t->nslots ? t->nslots : 16;
  while (ns * 3 < want * 4) ns *= 2;
  if (ns == t->nslots) return 0;
  uint32_t *slots = wr_mem_calloc(t->mem, ns, sizeof *slots);
  if (!slots) return WR_ERR_NOMEM;
  wr_mem_free(t->mem, t->slots);
  t->slots = slots;
  t->nslots = ns;
  for (size_t i = 0; i < t->n; i++) index_put(t, i);
  return 0;
}

ssize_t swim_members_add(swim_members *t, const char *id,
                         const wr_addr *gossip, uint32_t incarnation,
                         wr_tstamp now) {
  size_t len = strlen(id);
  if (len > WR_SWIM_ID_MAX || t->n >= UINT32_MAX - 1) return WR_ERR_INVAL;
  if (index_grow(t, t->n + 1) != 0) return WR_ERR_NOMEM;
  if (t->n == t->cap) {
    /* 1.5x: the table is the core's main memory cost. */
    size_t cap = t->cap ? t->cap + t->cap / 2 : 8;
    swim_member *v = wr_mem_realloc(t->mem, t->v, cap * sizeof *v);
    if (!v) return WR_ERR_NOMEM;
    t->v = v;
    t->cap = cap;
  }
  swim_member *m = &t->v[t->n];
  memset(m, 0, sizeof *m);
  if (len >= SWIM_ID_INLINE) {
    m->id_.heap = wr_mem_malloc(t->mem, len + 1);
    if (!m->id_.heap) return WR_ERR_NOMEM;
    memcpy(m->id_.heap, id, len + 1);
  } else {
    memcpy(m->id_.inl, id, len + 1);
  }
  m->id_len = (uint8_t)len;
  m->state = WR_SWIM_ALIVE;
  m->incarnation = incarnation;
  m->gossip = *gossip;
  m->state_since = now;
  index_put(t, t->n);
  swim_digest_toggle(t, m);
  t->n++;
  swim_digest_fit(t);
  return (ssize_t)t->n - 1;
}

int swim_members_copy(swim_members *dst, const swim_members *src) {
  if (dst->n) return WR_ERR_INVAL;
  const wr_mem *mem = dst->mem;
  swim_members_free(dst);
  dst->mem = mem;
  if (!src->n) return 0;
  /* Room for one more: the caller adds the source core itself. */
  size_t cap = src->n + 1;
  dst->v = wr_mem_malloc(dst->mem, cap * sizeof *dst->v);
  dst->slots = wr_mem_malloc(dst->mem, src->nslots * sizeof *dst->slots);
  if (!dst->v || !dst->slots) goto nomem;
  memcpy(dst->v, src->v, src->n * sizeof *dst->v);
  memcpy(dst->slots, src->slots, src->nslots * sizeof *dst->slots);
  dst->cap = cap;
  dst->nslots = src->nslots;
  for (size_t i = 0; i < src->n; i++) {
    swim_member *m = &dst->v[i];
    /* Until fixed below, this entry shares the source's allocations. */
    const char *hid = m->id_len >= SWIM_ID_INLINE ? m->id_.heap : NULL;
    const swim_meta *meta = m->meta;
    if (hid) m->id_.heap = NULL;
    m->meta = NULL;
    dst->n = i + 1;
    if (hid) {
      if (!(m->id_.heap = wr_mem_malloc(dst->mem, m->id_len + 1U))) goto nomem;
      memcpy(m->id_.heap, hid, m->id_len + 1U);
    }
    if (meta) {
      if (!(m->meta = wr_mem_malloc(dst->mem, sizeof *meta))) goto nomem;
      *m->meta = *meta;
    }
  }
  /* The source's digest level is exact for these members: copied, not
   * recomputed (the simulator copies a 10,000-member table per node). */
  if (src->nbh &&
      (dst->bh = wr_mem_malloc(dst->mem, src->nbh * sizeof *dst->bh))) {
    memcpy(dst->bh, src->bh, src->nbh * sizeof *dst->bh);
    dst->nbh = src->nbh;
  }
  swim_digest_fit(dst);
  return 0;
nomem:
  swim_members_free(dst);
  dst->mem = mem;
  return WR_ERR_NOMEM;
}

int swim_members_set_meta(swim_members *t, size_t i, const wr_addr *data,
                          const char *region, const char *tags) {
  swim_member *m = &t->v[i];
  int plain = (!data || !data->family || wr_addr_eq(data, &m->gossip)) &&
              !region[0] && !tags[0];
  if (plain) {
    wr_mem_free(t->mem, m->meta);
    m->meta = NULL;
    return 0;
  }
  if (!m->meta && !(m->meta = wr_mem_calloc(t->mem, 1, sizeof *m->meta)))
    return WR_ERR_NOMEM;
  m->meta->data = data && data->family ? *data : m->gossip;
  snprintf(m->meta->region, sizeof m->meta->region, "%s", region);
  snprintf(m->meta->tags, sizeof m->meta->tags, "%s", tags);
  return 0;
}

/* Backward-shift deletion keeps linear probing free of tombstones. */
static void index_del(swim_members *t, size_t slot) {
  size_t mask = t->nslots - 1, hole = slot;
  for (size_t s = (slot + 1) & mask; t->slots[s]; s = (s + 1) & mask) {
    size_t home = slot_of(t, swim_member_id(&t->v[t->slots[s] - 1]));
    /* Move the entry into the hole unless its home lies cyclically in
     * (hole, s]: then it is already reachable without the hole. */
    int reachable = hole <= s ? (home > hole && home <= s)
                              : (home > hole || home <= s);
    if (!reachable) {
      t->slots[hole] = t->slots[s];
      hole = s;
    }
  }
  t->slots[hole] = 0;
}

void swim_members_remove(swim_members *t, size_t i) {
  size_t last = t->n - 1;
  swim_digest_toggle(t, &t->v[i]);
  index_del(t, index_slot(t, i));
  member_clear(t->mem, &t->v[i]);
  if (i != last) {
    t->slots[index_slot(t, last)] = (uint32_t)i + 1;
    t->v[i] = t->v[last];
  }
  t->n--;
}

void swim_members_set_state(swim_members *t, size_t i, uint8_t state,
                            uint32_t incarnation) {
  swim_member *m = &t->v[i];
  swim_digest_toggle(t, m);
  m->state = state;
  m->incarnation = incarnation;
  swim_digest_toggle(t, m);
}

void swim_members_swap(swim_members *t, size_t i, size_t j) {
  if (i == j) return;
  size_t si = index_slot(t, i), sj = index_slot(t, j);
  t->slots[si] = (uint32_t)j + 1;
  t->slots[sj] = (uint32_t)i + 1;
  swim_member tmp = t->v[i];
  t->v[i] = t->v[j];
  t->v[j] = tmp;
}

void swim_members_shuffle(swim_members *t, size_t (*below)(void *, size_t),
                          void *ud) {
  for (size_t i = t->n; i > 1; i--) {
    size_t j = below(ud, i);
    swim_member tmp = t->v[i - 1];
    t->v[i - 1] = t->v[j];
    t->v[j] = tmp;
  }
  /* Rebuilding the index once is cheaper than fixing it per swap. */
  memset(t->slots, 0, t->nslots * sizeof *t->slots);
  for (size_t i = 0; i < t->n; i++) index_put(t, i);
}

void swim_members_info(const swim_members *t, size_t i,
                       wr_swim_member_info *out) {
  const swim_member *m = &t->v[i];
  out->id = swim_member_id(m);
  out->gossip = m->gossip;
  out->data = m->meta ? m->meta->data : m->gossip;
  out->region = m->meta ? m->meta->region : "";
  out->tags = m->meta ? m->meta->tags : "";
  out->state = (wr_swim_state)m->state;
  out->incarnation = m->incarnation;
  out->state_since = m->state_since;
}
