/*
 * Which node a client's link slot dials next, and when (src/tunnel/pick.c).
 *
 * `warren http --node A,B,C --links N` holds N links, each to a distinct
 * node (a "slot" per link).  This sans-IO core keeps the candidate nodes
 * and, per node, its failure streak and when it may be dialled again; the
 * client asks it for a node whenever a slot has none, and tells it how the
 * attempt ended.  No clock, no sockets: |now| comes in, and randomness
 * only through the wr_rand_fn given at init.
 *
 * The rules:
 *   - a node held by a slot (dialling, linked, or a draining link) is
 *     never handed to another slot;
 *   - among the free nodes, those whose back-off has passed are taken in
 *     turn (a rotating cursor), so slots and reconnects spread over the
 *     fleet; failing that, the free node that comes back first, at its
 *     retry time;
 *   - a failure (connect refused, handshake failed, link dropped) of a
 *     node with streak k keeps it out for an "equal jitter" back-off of
 *     d = min(WR_PICK_BACKOFF_MIN_MS * 2^(k-1), WR_PICK_BACKOFF_MAX_MS):
 *     d/2 fixed plus up to d/2 random, so clients cut off by one node's
 *     death do not come back in lockstep;
 *   - a bind resets the streak; a node that said GOAWAY (draining) is
 *     kept out for WR_PICK_DRAIN_MS whatever its streak.
 */
#ifndef WARREN_PICK_H
#define WARREN_PICK_H

#include <stddef.h>
#include <stdint.h>

#include "warren/types.h"

#define WR_PICK_MAX 64       /* nodes; a seed list holds as many */
#define WR_PICK_ADDR_MAX 64  /* "[v6]:port" fits in 48 */
/* 250 ms doubling to 30 s: what the one-link client always did. */
#define WR_PICK_BACKOFF_MIN_MS 250
#define WR_PICK_BACKOFF_MAX_MS 30000
/* A draining node is being restarted or retired: a little over a
 * drain's default --drain-wait (2 s), after which a restarted node is
 * usually back.  10 s was too long in a rolling restart of a small
 * fleet: with three nodes, the one node a moving slot could take was the
 * one restarted just before, still held out, so the client ran on one
 * link and lost its name while the next node drained (warren-chaos
 * rolling-restart: 79 failed requests of 393).  A node still draining
 * when dialled again answers GOAWAY again: one more wait, no harm. */
#define WR_PICK_DRAIN_MS 3000

typedef struct wr_pick_node {
  char addr[WR_PICK_ADDR_MAX]; /* "IP:PORT" */
  int slot;                    /* the slot holding it, -1: free */
  uint32_t fails;              /* failures since its last bind */
  wr_tstamp retry_at;          /* not dialled before (0: any time) */
  int stale;                   /* left the list while held: dropped on
                                  release */
} wr_pick_node;

typedef struct wr_pick {
  size_t n;
  wr_pick_node node[WR_PICK_MAX];
  size_t cursor; /* where the next round-robin search starts */
  wr_rand_fn rand;
  void *rand_ud;
} wr_pick;

/* |rand| is required (libsodium's in the client, a seeded PCG in tests). */
void wr_pick_init(wr_pick *p, wr_rand_fn rand, void *rand_ud);

/*
 * Replaces the candidate list with |addrs| (|n| "IP:PORT" strings, each
 * shorter than WR_PICK_ADDR_MAX; duplicates are kept once).  A node that
 * stays keeps its state; one that leaves is forgotten, unless a slot
 * holds it (then it goes when released).  Returns 0, or WR_ERR_INVAL for
 * an address too long or more than WR_PICK_MAX distinct ones (nothing
 * changed).
 */
int wr_pick_set(wr_pick *p, const char *const *addrs, size_t n);

/*
 * A node for |slot| (>= 0): copies its address into |addr|
 * (WR_PICK_ADDR_MAX bytes), sets *|pat| to when to dial it (|now|, or its
 * retry time when every free node is backing off), marks it held by
 * |slot| and returns 0.  Returns -1 when every node is held by other
 * slots (or there are none): the slot waits for the list to change.
 * Indices move when the list is replaced, so slots keep the address.
 */
int wr_pick_choose(wr_pick *p, int slot, wr_tstamp now, char *addr,
                   wr_tstamp *pat);

/* How an attempt on a held node ended. */
typedef enum wr_pick_outcome {
  WR_PICK_BOUND,   /* the link bound the name: streak reset, still held */
  WR_PICK_FAILED,  /* connect/handshake/link failure: back-off, released */
  WR_PICK_DRAINED, /* the node said GOAWAY: kept out WR_PICK_DRAIN_MS;
                      still held (the draining link lives on) */
  WR_PICK_RELEASE, /* the slot let go (a draining link closed, stop) */
} wr_pick_outcome;

/* Records |out| for the node at |addr| at |now|.  An address not in the
 * list is ignored. */
void wr_pick_done(wr_pick *p, const char *addr, wr_pick_outcome out,
                  wr_tstamp now);

/* The back-off of a failure streak |k| >= 1 before jitter (ms). */
uint64_t wr_pick_backoff(uint32_t k);

/* Nodes held by slots, and nodes not held (what more slots could take). */
size_t wr_pick_free(const wr_pick *p);

#endif
