/*
 * Regions: the census and the region-shaped picks of the SWIM core
 * (issue 14; docs/SWIM.md "Regions").
 *
 * One pool, whose probing, relays and timeouts follow the regions
 * (Consul runs a LAN pool per region plus a WAN pool of servers, which
 * doubles state and traffic for the members in both).  swim.c asks this
 * file three things:
 *
 *   census   how many members each region has, so that a suspicion's
 *            timeout follows log10 of its region's size (the members
 *            that probe it), not of the whole fleet's;
 *   picks    a random member of a given region, or of any other region:
 *            round-robin probes stay in our region, relays come from the
 *            target's region, gossip sends a bounded number of packets
 *            across per round;
 *   silence  whether a region answers our cross-region probes at all: a
 *            region cut off (or a WAN link down) makes every cross probe
 *            fail with no relay answering either, and treating each of
 *            those as a suspicion would accuse a whole region member by
 *            member (1,000 suspicions at once, every one gossiped to the
 *            whole fleet); swim.c instead marks the region silent.
 *
 * Nothing here reads a clock or a socket; every choice draws from the
 * caller's random source.
 */
#include <string.h>

#include "swim_int.h"

static int alive_or_suspect(const swim_member *m) {
  return m->state == WR_SWIM_ALIVE || m->state == WR_SWIM_SUSPECT;
}

swim_region *swim_regions_find(swim_regions *r, const char *name) {
  for (unsigned j = 0; j < r->n; j++)
    if (strcmp(r->v[j].name, name) == 0) return &r->v[j];
  return NULL;
}

static swim_region *find_or_add(swim_regions *r, const char *name) {
  swim_region *g = swim_regions_find(r, name);
  if (g || r->n == SWIM_REGIONS_MAX) return g;
  g = &r->v[r->n++];
  memset(g, 0, sizeof *g);
  /* Both come from a wire string of at most WR_SWIM_REGION_MAX. */
  size_t len = strlen(name);
  if (len > WR_SWIM_REGION_MAX) len = WR_SWIM_REGION_MAX;
  memcpy(g->name, name, len);
  g->name[len] = 0;
  return g;
}

void swim_regions_census(swim_regions *r, const swim_members *t,
                         const char *own) {
  /* Counts start over, silence is kept: it is what our probes saw, and
   * a census must not make a silent region look reachable again. */
  for (unsigned j = 0; j < r->n; j++) r->v[j].members = 0;
  swim_region *g = find_or_add(r, own);
  if (g) g->members++;
  for (size_t i = 0; i < t->n; i++) {
    const swim_member *m = &t->v[i];
    if (!alive_or_suspect(m)) continue;
    g = find_or_add(r, swim_member_region(m));
    if (g) g->members++;
  }
  /* Regions that emptied out stay listed with 0 members: their silence
   * record still matters if they come back. */
  r->census_n = t->n ? t->n : 1;
}

void swim_regions_refresh(swim_regions *r, const swim_members *t,
                          const char *own) {
  size_t n = t->n ? t->n : 1, c = r->census_n;
  if (!c || n > c + c / 8 || n + n / 8 < c) swim_regions_census(r, t, own);
}

size_t swim_regions_size(const swim_regions *r, const char *name) {
  for (unsigned j = 0; j < r->n; j++)
    if (strcmp(r->v[j].name, name) == 0)
      return r->v[j].members ? r->v[j].members : 1;
  return 1;
}

int swim_regions_active(const swim_regions *r) {
  unsigned populated = 0;
  for (unsigned j = 0; j < r->n; j++) populated += r->v[j].members > 0;
  return populated > 1;
}

ssize_t swim_regions_pick(const swim_members *t, const char *region, int same,
                          int allow_suspect, const char *skip, unsigned tries,
                          size_t (*below)(void *, size_t), void *ud) {
  if (!t->n) return -1;
  for (unsigned k = 0; k < tries; k++) {
    size_t i = below(ud, t->n);
    const swim_member *m = &t->v[i];
    if (m->state != WR_SWIM_ALIVE &&
        !(allow_suspect && m->state == WR_SWIM_SUSPECT))
      continue;
    if ((strcmp(swim_member_region(m), region) == 0) != same) continue;
    if (skip && strcmp(swim_member_id(m), skip) == 0) continue;
    return (ssize_t)i;
  }
  return -1;
}
