/*
 * The member table's bucket digest, what a sync (v4, sync.c) compares
 * before it sends any member entry.
 *
 * Every member (and a node's own entry, added by the caller) hashes to a
 * 64-bit value h(id, incarnation, state), and falls in a bucket chosen by
 * the hash of its id alone, so a change of state never moves it.  A
 * bucket's hash is the XOR of its members' values.  XOR is its own
 * inverse, so a change costs two XORs (the old value out, the new one in)
 * and the table can keep its bucket hashes current as it changes, instead
 * of hashing 10,000 members at every sync.  Two tables that agree on every
 * (id, incarnation, state) of a bucket have equal bucket hashes; two that
 * differ in a bucket have equal ones with probability 2^-64 (the values
 * are well mixed and members are not chosen by an adversary: every peer
 * holds the cluster key), and then only until either side changes.
 *
 * Levels.  A sync uses B buckets, a power of two the initiator picks from
 * its fleet size, and bucket b holds the members with idhash & (B - 1) ==
 * b.  The table keeps one fine level of |nbh| buckets (a power of two,
 * |nbh| >= n / SWIM_DIGEST_PER_FINE); any coarser level B <= nbh is the
 * fold of the fine one (bucket b = XOR of fine buckets b, b + B, b + 2B,
 * ...), O(nbh).  A level finer than the table's (a peer that knows far
 * more members than we do, e.g. we just joined) is recomputed from the
 * table, O(n): small, since we know few members.
 *
 * Memory: 8 bytes per fine bucket, about 1 byte per member (16 KiB at
 * 10,000 members; the simulator holds 10,000 tables, 2 % on top of their
 * 64-byte entries).  The fine level only grows (on crossing 8 members per
 * bucket, recomputed: amortised O(1) per insertion), so it follows the
 * largest fleet the node has seen; without memory for a larger one it
 * keeps the old level, which stays correct, and coarser folds still work.
 */
#include <string.h>

#include "swim_int.h"

/* Fine buckets hold at most this many members on average before the
 * level doubles (the sync's own level holds 8 to 16: sync.c). */
#define SWIM_DIGEST_PER_FINE 8
#define SWIM_DIGEST_FINE_MIN 16

/* MurmurHash3's 64-bit finaliser: every input bit flips about half the
 * output bits, so XORs of these values behave like XORs of random ones. */
static uint64_t fmix64(uint64_t k) {
  k ^= k >> 33;
  k *= 0xff51afd7ed558ccdULL;
  k ^= k >> 33;
  k *= 0xc4ceb9fe1a85ec53ULL;
  k ^= k >> 33;
  return k;
}

uint64_t swim_digest_idhash(const char *id) {
  /* FNV-1a 64, finalised: ids are short fleet names, not visitor input. */
  uint64_t h = 0xcbf29ce484222325ULL;
  for (; *id; id++) h = (h ^ (uint8_t)*id) * 0x100000001b3ULL;
  return fmix64(h);
}

uint64_t swim_digest_entry(uint64_t idh, uint32_t inc, uint8_t state) {
  /* The (incarnation, state) pair is mixed on its own first, so entries
   * of one id at different versions are unrelated values (a plain
   * idh ^ inc would let two changes in a bucket cancel out). */
  uint64_t v = ((uint64_t)inc << 8 | state) + 0x9e3779b97f4a7c15ULL;
  return fmix64(idh ^ fmix64(v));
}

static uint64_t member_entry(const swim_member *m, uint64_t *pidh) {
  uint64_t idh = swim_digest_idhash(swim_member_id(m));
  if (pidh) *pidh = idh;
  return swim_digest_entry(idh, m->incarnation, m->state);
}

void swim_digest_toggle(swim_members *t, const swim_member *m) {
  if (!t->nbh) return;
  uint64_t idh;
  uint64_t e = member_entry(m, &idh);
  t->bh[idh & (t->nbh - 1)] ^= e;
}

void swim_digest_recompute(const swim_members *t, uint64_t *out, size_t nb) {
  memset(out, 0, nb * sizeof *out);
  swim_digest_xor(t, out, nb, 1);
}

void swim_digest_xor(const swim_members *t, uint64_t *out, size_t nb,
                     int slow) {
  if (!slow && t->nbh >= nb) {
    for (size_t f = 0; f < t->nbh; f++) out[f & (nb - 1)] ^= t->bh[f];
    return;
  }
  for (size_t i = 0; i < t->n; i++) {
    uint64_t idh;
    uint64_t e = member_entry(&t->v[i], &idh);
    out[idh & (nb - 1)] ^= e;
  }
}

void swim_digest_fit(swim_members *t) {
  size_t want = t->nbh ? t->nbh : SWIM_DIGEST_FINE_MIN;
  while (t->n > want * SWIM_DIGEST_PER_FINE) want *= 2;
  if (want == t->nbh) return;
  uint64_t *bh = wr_mem_malloc(t->mem, want * sizeof *bh);
  if (!bh) return; /* the old level stays exact (header comment) */
  wr_mem_free(t->mem, t->bh);
  t->bh = bh;
  t->nbh = want;
  swim_digest_recompute(t, t->bh, t->nbh);
}
