/*
 * Sharing links' windows (docs/HTTP.md, "Send stalls"; SWEEP_MS in
 * ingress_int.h says why these numbers): twice a second, add up the link
 * credit each visitor holds per upstream link and per name on it, and
 * shed the longest stalled visitors of a group over its share.  One job:
 * choosing whom to shed; forward.c (wr_fwd_shed) does the shedding.
 */
#include <stdlib.h>
#include <string.h>

#include "ingress_int.h"

typedef struct held_group {
  const void *link;
  const char *name; /* NULL: the whole link */
  size_t held, cap;
  int hot; /* over cap at the sweep's start: shed to cap / 2 */
} held_group;

/* The link under |v|'s upstream and its receive window; 0 when it has
 * none open. */
static int vconn_link(vconn *v, const void **plk, size_t *pwin) {
  void *up = wr_fwd_upstream_of(v->f);
  if (up == &v->ut && v->ut.st.tl) {
    *plk = v->ut.st.tl;
    *pwin = v->ig->tunnel_window;
    return 1;
  }
  if (up == &v->un && v->un.ns.pl) {
    *plk = v->un.ns.pl;
    *pwin = v->ig->node_window;
    return 1;
  }
  return 0;
}

static held_group *group_of(held_group *g, size_t *ng, const void *link,
                            const char *name, size_t cap) {
  for (size_t i = 0; i < *ng; i++)
    if (g[i].link == link &&
        (name ? g[i].name && strcmp(g[i].name, name) == 0 : !g[i].name))
      return &g[i];
  if (*ng == SHED_GROUPS) return NULL; /* untracked this sweep */
  g[*ng] =
      (held_group){.link = link, .name = name, .held = 0, .cap = cap, .hot = 0};
  return &g[(*ng)++];
}

/* The groups |v| counts in (its link's and its name's on that link). */
static void vconn_groups(vconn *v, held_group *g, size_t *ng, held_group **pl,
                         held_group **pn) {
  const void *link;
  size_t win;
  *pl = *pn = NULL;
  if (!vconn_link(v, &link, &win)) return;
  size_t share = win < v->ig->tunnel_window ? win : v->ig->tunnel_window;
  *pl = group_of(g, ng, link, NULL, win / 4 * 3);
  *pn = group_of(g, ng, link, wr_fwd_name(v->f), share / 2);
}

static int over(const held_group *x) { return x && x->held > x->cap; }

/* Once over its cap, a group is shed down to half of it, not just below:
 * new streams keep arriving while the sweep sleeps, and each takes a
 * whole stream window at once, so stopping at the cap left a name under
 * a stream-opening flood (slowhttptest's slow read, 250 connections/s)
 * full again before the next sweep. */
static int hot(const held_group *x) {
  return x && x->hot && x->held > x->cap / 2;
}

typedef struct shed_cand {
  vconn *v;
  wr_tstamp since;
  held_group *gl, *gn;
} shed_cand;

/* A max-heap on |since| (c[0]: the most recently stalled kept). */
static void heap_up(shed_cand *c, size_t i) {
  while (i > 0 && c[(i - 1) / 2].since < c[i].since) {
    shed_cand t = c[i];
    c[i] = c[(i - 1) / 2];
    c[(i - 1) / 2] = t;
    i = (i - 1) / 2;
  }
}

static void heap_down(shed_cand *c, size_t n, size_t i) {
  for (;;) {
    size_t l = 2 * i + 1, r = l + 1, m = i;
    if (l < n && c[l].since > c[m].since) m = l;
    if (r < n && c[r].since > c[m].since) m = r;
    if (m == i) return;
    shed_cand t = c[i];
    c[i] = c[m];
    c[m] = t;
    i = m;
  }
}

static int cand_cmp(const void *a, const void *b) {
  wr_tstamp x = ((const shed_cand *)a)->since,
            y = ((const shed_cand *)b)->since;
  return x < y ? -1 : x > y;
}

void ingress_on_sweep(uv_timer_t *t) {
  wr_ingress *ig = t->data;
  uint64_t now = uv_now(ig->loop);
  held_group g[SHED_GROUPS];
  size_t ng = 0;
  int any = 0;
  for (vconn *v = ig->all; v; v = v->anext) {
    if (v->closing || !v->f) continue;
    vconn_sample_progress(v, now);
    size_t held = wr_fwd_held(v->f);
    if (!held) continue;
    held_group *gl, *gn;
    vconn_groups(v, g, &ng, &gl, &gn);
    if (gl) gl->held += held;
    if (gn) gn->held += held;
    any |= over(gl) || over(gn);
  }
  if (!any) return;
  for (size_t i = 0; i < ng; i++) g[i].hot = over(&g[i]);
  /* One more pass collects the candidates (stalled long enough, in a hot
   * group), keeping the SHED_MAX_PER_SWEEP longest stalled in a max-heap
   * on |since|; then they are shed oldest first while their group is
   * still hot.  O(visitors + k log k) per sweep: a sweep under attack
   * must not itself stall the loop. */
  shed_cand c[SHED_MAX_PER_SWEEP];
  size_t nc = 0;
  for (vconn *v = ig->all; v; v = v->anext) {
    if (v->closing || !v->f || !wr_fwd_held(v->f)) continue;
    wr_tstamp since = wr_fwd_stalled_since(v->f);
    if (since == WR_TSTAMP_NONE || since + SHED_AFTER_MS > now) continue;
    held_group *gl, *gn;
    vconn_groups(v, g, &ng, &gl, &gn);
    if (!hot(gl) && !hot(gn)) continue;
    shed_cand x = {.v = v, .since = since, .gl = gl, .gn = gn};
    if (nc < SHED_MAX_PER_SWEEP) {
      c[nc++] = x;
      heap_up(c, nc - 1);
    } else if (since < c[0].since) {
      c[0] = x;
      heap_down(c, nc, 0);
    }
  }
  qsort(c, nc, sizeof c[0], cand_cmp);
  for (size_t k = 0; k < nc; k++) {
    if (!hot(c[k].gl) && !hot(c[k].gn)) continue;
    size_t held = wr_fwd_held(c[k].v->f);
    if (c[k].gl) c[k].gl->held -= held < c[k].gl->held ? held : c[k].gl->held;
    if (c[k].gn) c[k].gn->held -= held < c[k].gn->held ? held : c[k].gn->held;
    wr_fwd_shed(c[k].v->f, now);
    vconn_sync(c[k].v); /* closes: the vconn is freed on a later turn */
  }
}
