/*
 * The inspector's capture parsers (see capture.h): they fill the ring of
 * capture.c with exchange records from the bytes of each relayed
 * connection.
 *
 * One capture connection has two llhttp parsers, one per direction, and
 * one state for the pair:
 *
 *   HTTP     requests and responses; each request head pushes its exchange
 *            on the conn's FIFO, each final response completes the front
 *            one (pipelining keeps the order, as HTTP/1.1 does).
 *   HOLD     the request parser stopped after an upgrade request (llhttp
 *            HPE_PAUSED_UPGRADE); visitor bytes are held until the answer.
 *            101 -> WS (the held bytes are the visitor's first frames);
 *            any other final status -> HTTP again (llhttp resumes and the
 *            held bytes are the next request).
 *   WS       raw after a 101: each side is parsed as WebSocket frames
 *            (RFC 6455 5.2), and every message (a data frame sequence up
 *            to FIN, or one control frame) becomes one summary.  Bytes
 *            that are no WebSocket are only counted.
 *   DEAD     input we could not parse: the capture of this connection
 *            stops (the relay does not care, it never waits for us).
 *
 * The parsers never fail the connection and never copy more than the
 * bounds: heads are re-assembled field by field into the record (up to
 * max_head), bodies up to body_cap, the rest only counted.
 */
#include <stdio.h>
#include <string.h>

#include <llhttp.h>

#include "capture_int.h"

/* Requests owed a response on one connection.  Browsers do not pipeline
 * and curl/wrk keep one in flight; the node's own bound is 1024, but a
 * capture that loses track after 64 only stops recording that conn. */
#define FIFO_CAP 64

enum cstate { CS_HTTP, CS_HOLD, CS_WS, CS_DEAD };

typedef struct wsdir {
  uint8_t hdr[14];
  size_t hlen;     /* header bytes so far */
  uint64_t remain; /* payload bytes left in the current frame */
  int in_payload;
  uint8_t mask[4];
  int masked;
  uint64_t moff; /* payload offset, for the mask index */
  int ctl;       /* the current frame is a control frame */
  /* The message being assembled: data (fragments) and control apart,
   * since control frames may come between fragments. */
  wr_capture_ws_msg data, ctlmsg;
  int data_open;
} wsdir;

typedef struct side {
  /* One header line being parsed: name\0value in scratch. */
  char *scratch;
  size_t slen, scap, name_len;
  int overflow;
} side;

typedef struct owed {
  uint64_t id;
  int head, upgrade;
} owed;

struct wr_capture_conn {
  wr_capture *c;
  uint64_t num, replay_of;
  enum cstate state;
  llhttp_t p[2];
  side sd[2];
  uint64_t now;
  uint64_t cur_req; /* exchange whose request is being parsed */
  int resp_interim; /* the response being parsed is a 1xx */
  int refused;      /* the upgrade request got a final non-101 answer */
  owed fifo[FIFO_CAP];
  size_t fhead, flen;
  uint8_t *hold;
  size_t hold_len;
  uint64_t ws_id; /* the upgraded exchange */
  wsdir ws[2];
  int nomem; /* a record could not be made in this feed */
  /* The record each parser fills, cached: llhttp calls back a dozen times
   * per head and a lookup costs a 64-bit division.  Valid while the
   * ring's gen is unchanged (no record freed or reused since). */
  rec *cache[2];
  uint64_t cache_id[2], cache_gen[2];
};

/* ---- recording helpers ----------------------------------------------------
 */

static wr_capture_msg *msg_of(rec *r, int dir) {
  return dir == WR_CAPTURE_TO_ORIGIN ? &r->e.req : &r->e.resp;
}

static void body_append(wr_capture *c, rec *r, int dir, const char *at,
                        size_t len) {
  wr_capture_msg *m = msg_of(r, dir);
  m->body_size += len;
  if (m->body_truncated) return;
  size_t keep = WR_MIN(len, c->cfg.body_cap - m->body_len);
  if (keep && capture_grow(c, r, (void **)&m->body, &r->body_cap[dir],
                           m->body_len + keep, c->cfg.body_cap) != 0)
    keep = 0;
  if (keep) memcpy(m->body + m->body_len, at, keep);
  m->body_len += keep;
  if (keep < len) m->body_truncated = 1;
}

/* Appends "name\0value\0" (in |s|'s scratch) to the message's fields. */
static void field_commit(wr_capture *c, rec *r, int dir, side *s) {
  wr_capture_msg *m = msg_of(r, dir);
  size_t n = s->slen + 1; /* scratch holds name\0value; add the last NUL */
  /* No name terminator: not a field (llhttp would not do it; be sure). */
  if (!s->overflow && (s->name_len == 0 || !s->scratch)) return;
  if (s->overflow || m->head_truncated ||
      capture_grow(c, r, (void **)&m->fields, &r->fields_cap[dir],
                   m->fields_len + n, c->cfg.max_head) != 0) {
    m->head_truncated = 1;
    return;
  }
  char *dst = m->fields + m->fields_len;
  memcpy(dst, s->scratch, s->slen);
  dst[s->slen] = '\0';
  /* A NUL inside a value (lenient response parsing lets one through)
   * would split the pair: show it as '?' rather than lose the layout.
   * Requests were parsed strictly by the node, which refuses NUL (and
   * every control byte but HTAB) in names and values, so only responses
   * are scanned: two memchr calls per field were a tenth of the
   * capture's cost (docs/BENCHMARKS.md, "Round 7"; memchr, not a byte
   * loop, since Round 6). */
  if (dir == WR_CAPTURE_FROM_ORIGIN)
    for (char *z = dst, *end = dst + s->slen;
         (z = memchr(z, '\0', (size_t)(end - z))) != NULL; z++)
      if (z != dst + s->name_len - 1) *z = '?';
  m->fields_len += n;
  m->nfields++;
}

static int scratch_append(wr_capture *c, side *s, const char *at, size_t len) {
  if (s->overflow) return 0;
  /* +2: the NUL after the name and after the value. */
  if (len + 2 > c->cfg.max_head - s->slen) {
    s->overflow = 1;
    return 0;
  }
  if (s->slen + len + 2 > s->scap) {
    size_t cap = s->scap ? s->scap : 256;
    while (cap < s->slen + len + 2) cap *= 2;
    if (cap > c->cfg.max_head) cap = c->cfg.max_head;
    char *p = wr_mem_realloc(c->mem, s->scratch, cap);
    if (!p) {
      s->overflow = 1;
      return 0;
    }
    s->scratch = p;
    s->scap = cap;
  }
  memcpy(s->scratch + s->slen, at, len);
  s->slen += len;
  return 0;
}

static void scratch_reset(side *s) {
  s->slen = 0;
  s->name_len = 0;
  s->overflow = 0;
}

static void copy_bounded(char *dst, size_t cap, const char *at, size_t len) {
  size_t cur = strlen(dst);
  size_t n = WR_MIN(len, cap - 1 - cur);
  memcpy(dst + cur, at, n);
  dst[cur + n] = '\0';
}

/* ---- llhttp callbacks: requests ------------------------------------------ */

static wr_capture_conn *conn_of(llhttp_t *p) { return p->data; }
static int dir_of(llhttp_t *p) {
  return p->type == HTTP_REQUEST ? WR_CAPTURE_TO_ORIGIN
                                 : WR_CAPTURE_FROM_ORIGIN;
}

/* The record the parser |p| is filling now, or NULL. */
static rec *cur_rec(llhttp_t *p) {
  wr_capture_conn *cc = conn_of(p);
  int d = dir_of(p);
  uint64_t id = d == WR_CAPTURE_TO_ORIGIN ? cc->cur_req
                : cc->flen                ? cc->fifo[cc->fhead].id
                                          : 0;
  if (cc->cache_gen[d] == cc->c->gen && cc->cache_id[d] == id)
    return cc->cache[d];
  cc->cache[d] = capture_slot_get(cc->c, id);
  cc->cache_id[d] = id;
  cc->cache_gen[d] = cc->c->gen;
  return cc->cache[d];
}

static int on_message_begin(llhttp_t *p) {
  wr_capture_conn *cc = conn_of(p);
  scratch_reset(&cc->sd[dir_of(p)]);
  if (p->type == HTTP_REQUEST) {
    rec *r = capture_rec_new(cc->c, cc->num, cc->replay_of, cc->now);
    cc->cur_req = r ? r->e.id : 0;
    if (!r) cc->nomem = 1;
    return 0;
  }
  /* A response nobody asked for: the origin is not speaking HTTP/1.1 to
   * this connection's requests (or we lost track): stop here. */
  if (cc->flen == 0) return -1;
  cc->resp_interim = 0;
  rec *r = cur_rec(p);
  if (r && !r->e.t_resp_us) r->e.t_resp_us = cc->now;
  return 0;
}

static int on_method(llhttp_t *p, const char *at, size_t len) {
  rec *r = cur_rec(p);
  if (r) copy_bounded(r->e.method, sizeof r->e.method, at, len);
  return 0;
}

static int on_url(llhttp_t *p, const char *at, size_t len) {
  return scratch_append(conn_of(p)->c, &conn_of(p)->sd[0], at, len);
}

static int on_url_complete(llhttp_t *p) {
  wr_capture_conn *cc = conn_of(p);
  side *s = &cc->sd[0];
  rec *r = cur_rec(p);
  if (r && capture_grow(cc->c, r, (void **)&r->e.target, &r->target_cap,
                        s->slen + 1, cc->c->cfg.max_head) == 0) {
    if (s->slen) memcpy(r->e.target, s->scratch, s->slen);
    r->e.target[s->slen] = '\0';
  }
  scratch_reset(s);
  return 0;
}

static int on_version(llhttp_t *p, const char *at, size_t len) {
  rec *r = cur_rec(p);
  if (r && p->type == HTTP_REQUEST) {
    if (!r->e.version[0])
      copy_bounded(r->e.version, sizeof r->e.version, "HTTP/", 5);
    copy_bounded(r->e.version, sizeof r->e.version, at, len);
  }
  return 0;
}

static int on_status(llhttp_t *p, const char *at, size_t len) {
  rec *r = cur_rec(p);
  if (r) copy_bounded(r->e.reason, sizeof r->e.reason, at, len);
  return 0;
}

static int on_header_field(llhttp_t *p, const char *at, size_t len) {
  return scratch_append(conn_of(p)->c, &conn_of(p)->sd[dir_of(p)], at, len);
}

static int on_header_field_complete(llhttp_t *p) {
  side *s = &conn_of(p)->sd[dir_of(p)];
  if (!s->scratch) s->overflow = 1; /* an empty name: llhttp refuses it */
  if (!s->overflow) s->scratch[s->slen++] = '\0'; /* room kept by append */
  s->name_len = s->slen;
  return 0;
}

static int on_header_value(llhttp_t *p, const char *at, size_t len) {
  return scratch_append(conn_of(p)->c, &conn_of(p)->sd[dir_of(p)], at, len);
}

static int on_header_value_complete(llhttp_t *p) {
  wr_capture_conn *cc = conn_of(p);
  side *s = &cc->sd[dir_of(p)];
  rec *r = cur_rec(p);
  if (r) field_commit(cc->c, r, dir_of(p), s);
  scratch_reset(s);
  return 0;
}

/* A declared Content-Length sizes the body buffer at once (up to the cap),
 * rather than in doublings from 256 bytes. */
static void presize(wr_capture *c, rec *r, int dir, llhttp_t *p) {
  if (!r || !(p->flags & F_CONTENT_LENGTH) || p->content_length == 0) return;
  size_t want = (size_t)WR_MIN(p->content_length, (uint64_t)c->cfg.body_cap);
  wr_capture_msg *m = msg_of(r, dir);
  if (want > r->body_cap[dir])
    capture_grow(c, r, (void **)&m->body, &r->body_cap[dir], want,
                 c->cfg.body_cap);
}

static int on_headers_complete(llhttp_t *p) {
  wr_capture_conn *cc = conn_of(p);
  rec *r = cur_rec(p);
  presize(cc->c, r, dir_of(p), p);
  if (p->type == HTTP_REQUEST) {
    if (cc->flen == FIFO_CAP) return -1; /* lost track: stop */
    owed *o = &cc->fifo[(cc->fhead + cc->flen++) % FIFO_CAP];
    o->id = cc->cur_req;
    o->head = p->method == HTTP_HEAD;
    o->upgrade = p->upgrade;
    capture_emit(cc->c, r, WR_CAPTURE_EV_NEW);
    return 0;
  }
  owed *o = &cc->fifo[cc->fhead];
  if (p->status_code >= 100 && p->status_code < 200 && p->status_code != 101) {
    /* 100 Continue, 103 Early Hints: the real answer follows. */
    cc->resp_interim = 1;
    return 0;
  }
  if (r) {
    r->e.status = p->status_code;
    if (p->status_code == 101) r->e.state = WR_EXCHANGE_UPGRADED;
    capture_emit(cc->c, r, WR_CAPTURE_EV_UPDATE);
  }
  /* 1 = "no body" (a HEAD request's response), as llhttp defines it. */
  return o->head ? 1 : 0;
}

static int on_body(llhttp_t *p, const char *at, size_t len) {
  wr_capture_conn *cc = conn_of(p);
  rec *r = cur_rec(p);
  if (r) body_append(cc->c, r, dir_of(p), at, len);
  return 0;
}

static int on_message_complete(llhttp_t *p) {
  wr_capture_conn *cc = conn_of(p);
  rec *r = cur_rec(p);
  if (p->type == HTTP_REQUEST) {
    cc->cur_req = 0;
    return 0;
  }
  if (cc->resp_interim) {
    /* Forget the interim head; the final one is recorded instead. */
    if (r) {
      r->e.resp.fields_len = r->e.resp.nfields = 0;
      r->e.resp.head_truncated = 0;
      r->e.reason[0] = '\0';
    }
    cc->resp_interim = 0;
    return 0;
  }
  if (r) {
    if (r->e.state == WR_EXCHANGE_PENDING) r->e.state = WR_EXCHANGE_DONE;
    if (r->e.status != 101) r->e.t_end_us = cc->now;
  }
  /* A 101 keeps its place: the conn state machine takes it from here. */
  if (p->status_code == 101) return 0;
  int was_upgrade = cc->fifo[cc->fhead].upgrade;
  cc->fhead = (cc->fhead + 1) % FIFO_CAP;
  cc->flen--;
  capture_emit(cc->c, r, WR_CAPTURE_EV_UPDATE);
  if (was_upgrade && cc->state == CS_HOLD) {
    /* Refused: stop here so the held request bytes are parsed before any
     * response to them (feed_http resumes). */
    cc->refused = 1;
    return HPE_PAUSED;
  }
  return 0;
}

static const llhttp_settings_t settings = {
    .on_message_begin = on_message_begin,
    .on_method = on_method,
    .on_url = on_url,
    .on_url_complete = on_url_complete,
    .on_version = on_version,
    .on_status = on_status,
    .on_header_field = on_header_field,
    .on_header_field_complete = on_header_field_complete,
    .on_header_value = on_header_value,
    .on_header_value_complete = on_header_value_complete,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

/* ---- WebSocket ----------------------------------------------------------- */

static void ws_record(wr_capture_conn *cc, const wr_capture_ws_msg *m) {
  rec *r = capture_slot_get(cc->c, cc->ws_id);
  if (!r) return;
  wr_exchange *e = &r->e;
  e->ws_total++;
  e->ws_bytes[m->from_origin] += m->len;
  size_t max = cc->c->cfg.ws_max_msgs;
  if (e->ws_count == e->ws_cap && e->ws_cap < max) {
    /* Grow (doubling) while the summaries fit; then it is a ring.  The
     * ring is linear until it is full, so growing never reorders. */
    size_t cap = WR_MIN(e->ws_cap ? e->ws_cap * 2 : 8, max);
    size_t bytes = e->ws_cap * sizeof *e->ws;
    size_t nbytes = cap * sizeof *e->ws;
    if (capture_make_room(cc->c, r, nbytes - bytes) == 0) {
      wr_capture_ws_msg *w = wr_mem_realloc(cc->c->mem, e->ws, nbytes);
      if (w) {
        e->ws = w;
        e->ws_cap = cap;
        e->mem += nbytes - bytes;
        cc->c->mem_used += nbytes - bytes;
      }
    }
  }
  if (e->ws_cap == 0) return; /* no room: counted only */
  if (e->ws_count < e->ws_cap) {
    e->ws[(e->ws_first + e->ws_count++) % e->ws_cap] = *m;
  } else {
    e->ws[e->ws_first] = *m;
    e->ws_first = (e->ws_first + 1) % e->ws_cap;
  }
  capture_emit(cc->c, r, WR_CAPTURE_EV_UPDATE);
}

/* Parses WebSocket frames (RFC 6455 5.2) from one side.  Returns 0, or -1
 * for bytes that are no WebSocket (reserved opcode, control frame over
 * 125 bytes or fragmented, 64-bit length with the top bit set). */
static int ws_feed(wr_capture_conn *cc, int dir, const uint8_t *p, size_t len) {
  wsdir *w = &cc->ws[dir];
  while (len > 0) {
    if (!w->in_payload) {
      w->hdr[w->hlen++] = *p++;
      len--;
      if (w->hlen < 2) continue;
      size_t need = 2;
      int lc = w->hdr[1] & 0x7f;
      need += lc == 126 ? 2 : lc == 127 ? 8 : 0;
      need += (w->hdr[1] & 0x80) ? 4 : 0;
      if (w->hlen < need) continue;
      int fin = w->hdr[0] & 0x80, op = w->hdr[0] & 0x0f;
      uint64_t plen = (uint64_t)lc;
      size_t off = 2;
      if (lc == 126) {
        plen = (uint64_t)w->hdr[2] << 8 | w->hdr[3];
        off = 4;
      } else if (lc == 127) {
        plen = 0;
        for (int i = 0; i < 8; i++) plen = plen << 8 | w->hdr[2 + i];
        off = 10;
        if (plen >> 63) return -1;
      }
      w->masked = (w->hdr[1] & 0x80) != 0;
      if (w->masked) memcpy(w->mask, w->hdr + off, 4);
      w->ctl = op >= 8;
      if ((op > 2 && op < 8) || op > 10) return -1;
      if (w->ctl && (plen > 125 || !fin)) return -1;
      if (op == 0 && !w->data_open) return -1; /* nothing to continue */
      if (op != 0 && !w->ctl && w->data_open) return -1;
      wr_capture_ws_msg *m = w->ctl ? &w->ctlmsg : &w->data;
      if (op != 0) {
        memset(m, 0, offsetof(wr_capture_ws_msg, preview));
        m->from_origin = dir == WR_CAPTURE_FROM_ORIGIN;
        m->opcode = op;
        m->at_us = cc->now;
        if (!w->ctl) w->data_open = 1;
      }
      w->remain = plen;
      w->moff = 0;
      w->hlen = 0;
      w->in_payload = 1;
      /* FIN is re-read from hdr[0] when the payload ends; keep it. */
      w->hdr[0] = (uint8_t)(fin ? 0x80 : 0);
    }
    wr_capture_ws_msg *m = w->ctl ? &w->ctlmsg : &w->data;
    size_t n = (size_t)WR_MIN((uint64_t)len, w->remain);
    for (size_t i = 0; i < n && m->preview_len < WR_CAPTURE_WS_PREVIEW; i++)
      m->preview[m->preview_len++] =
          w->masked ? p[i] ^ w->mask[(w->moff + i) & 3] : p[i];
    m->len += n;
    w->moff += n;
    w->remain -= n;
    p += n;
    len -= n;
    if (w->remain == 0) {
      w->in_payload = 0;
      if (w->ctl || (w->hdr[0] & 0x80)) {
        ws_record(cc, m);
        if (!w->ctl) w->data_open = 0;
      }
    }
  }
  return 0;
}

/* ---- connections ----------------------------------------------------------
 */

int wr_capture_conn_new(wr_capture *c, wr_capture_conn **pcc,
                        uint64_t replay_of) {
  wr_capture_conn *cc = wr_mem_calloc(c->mem, 1, sizeof *cc);
  if (!cc) return WR_ERR_NOMEM;
  cc->c = c;
  cc->num = c->next_conn++;
  cc->replay_of = replay_of;
  llhttp_init(&cc->p[0], HTTP_REQUEST, &settings);
  llhttp_init(&cc->p[1], HTTP_RESPONSE, &settings);
  /* The node already parsed every request strictly; what reaches us is
   * valid.  Responses come from a developer's server as it is: take what
   * a browser would. */
  llhttp_set_lenient_headers(&cc->p[1], 1);
  cc->p[0].data = cc->p[1].data = cc;
  *pcc = cc;
  return 0;
}

/* Marks the records still owed and the one being parsed with |why|. */
static void go_dead(wr_capture_conn *cc, const char *why) {
  cc->state = CS_DEAD;
  rec *r = capture_slot_get(cc->c, cc->cur_req);
  if (r && !r->e.error) r->e.error = why;
  for (size_t i = 0; i < cc->flen; i++) {
    r = capture_slot_get(cc->c, cc->fifo[(cc->fhead + i) % FIFO_CAP].id);
    if (r && !r->e.error) {
      r->e.error = why;
      capture_emit(cc->c, r, WR_CAPTURE_EV_UPDATE);
    }
  }
}

static int hold(wr_capture_conn *cc, const uint8_t *p, size_t len) {
  if (len > WR_CAPTURE_UPGRADE_HOLD - cc->hold_len) {
    go_dead(cc, "the visitor sent too much before the upgrade was answered");
    return WR_ERR_PROTO;
  }
  if (!cc->hold) {
    cc->hold = wr_mem_malloc(cc->c->mem, WR_CAPTURE_UPGRADE_HOLD);
    if (!cc->hold) {
      go_dead(cc, "out of memory");
      return WR_ERR_NOMEM;
    }
  }
  memcpy(cc->hold + cc->hold_len, p, len);
  cc->hold_len += len;
  return 0;
}

static int feed_http(wr_capture_conn *cc, int dir, const uint8_t *p,
                     size_t len);

/* The response to the upgrade request ended: a 101 switches both sides to
 * WebSocket, anything else resumes HTTP on the request side. */
static int upgrade_answered(wr_capture_conn *cc, int switched) {
  uint8_t *h = cc->hold;
  size_t hl = cc->hold_len;
  cc->hold = NULL;
  cc->hold_len = 0;
  int rv = 0;
  if (switched) {
    cc->state = CS_WS;
    cc->ws_id = cc->fifo[cc->fhead].id;
    if (h && ws_feed(cc, WR_CAPTURE_TO_ORIGIN, h, hl) != 0) {
      go_dead(cc, "the visitor sent bytes that are no WebSocket frame");
      rv = WR_ERR_PROTO;
    }
  } else {
    cc->state = CS_HTTP;
    llhttp_resume_after_upgrade(&cc->p[0]);
    if (h) rv = feed_http(cc, WR_CAPTURE_TO_ORIGIN, h, hl);
  }
  wr_mem_free(cc->c->mem, h);
  return rv;
}

static int feed_http(wr_capture_conn *cc, int dir, const uint8_t *p,
                     size_t len) {
  llhttp_t *hp = &cc->p[dir];
  llhttp_errno_t err = llhttp_execute(hp, (const char *)p, len);
  if (err == HPE_OK) return 0;
  if (err == HPE_PAUSED && cc->refused) {
    size_t used = (size_t)((const uint8_t *)llhttp_get_error_pos(hp) - p);
    cc->refused = 0;
    llhttp_resume(hp);
    int rv = upgrade_answered(cc, 0);
    if (rv != 0 || cc->state == CS_DEAD) return rv;
    return feed_http(cc, dir, p + used, len - used);
  }
  if (err != HPE_PAUSED_UPGRADE) {
    go_dead(cc, dir == WR_CAPTURE_TO_ORIGIN
                    ? "the request is not HTTP/1.x the capture can follow"
                    : "the response is not HTTP/1.x (or answers nothing)");
    return WR_ERR_PROTO;
  }
  size_t used = (size_t)((const uint8_t *)llhttp_get_error_pos(hp) - p);
  if (dir == WR_CAPTURE_TO_ORIGIN) {
    /* An upgrade request: hold what follows until its answer. */
    if (cc->state == CS_HTTP) cc->state = CS_HOLD;
    return hold(cc, p + used, len - used);
  }
  /* A 101 ended its head (on_message_complete kept it at the front). */
  int rv = upgrade_answered(cc, 1);
  if (rv == 0 && cc->state == CS_WS && used < len &&
      ws_feed(cc, WR_CAPTURE_FROM_ORIGIN, p + used, len - used) != 0) {
    go_dead(cc, "the local server sent bytes that are no WebSocket frame");
    rv = WR_ERR_PROTO;
  }
  return rv;
}

int wr_capture_conn_feed(wr_capture_conn *cc, int dir, const uint8_t *data,
                         size_t len, uint64_t now_us) {
  if (dir != WR_CAPTURE_TO_ORIGIN && dir != WR_CAPTURE_FROM_ORIGIN)
    return WR_ERR_INVAL;
  cc->now = now_us;
  cc->nomem = 0;
  int rv = 0;
  switch (cc->state) {
  case CS_DEAD:
    return 0;
  case CS_WS:
    if (ws_feed(cc, dir, data, len) != 0) {
      go_dead(cc, dir == WR_CAPTURE_TO_ORIGIN
                      ? "the visitor sent bytes that are no WebSocket frame"
                      : "the local server sent bytes that are no WebSocket "
                        "frame");
      rv = WR_ERR_PROTO;
    }
    break;
  case CS_HOLD:
    if (dir == WR_CAPTURE_TO_ORIGIN) return hold(cc, data, len);
    /* The answer to the upgrade request (or to requests before it). */
    rv = feed_http(cc, dir, data, len);
    break;
  case CS_HTTP:
    rv = feed_http(cc, dir, data, len);
    break;
  }
  if (rv == 0 && cc->nomem) rv = WR_ERR_NOMEM;
  return rv;
}

void wr_capture_conn_close(wr_capture_conn *cc, uint64_t now_us) {
  if (!cc) return;
  wr_capture *c = cc->c;
  cc->now = now_us;
  if (cc->state == CS_HTTP || cc->state == CS_HOLD) {
    /* Completes a response delimited by the close (on_message_complete). */
    llhttp_finish(&cc->p[1]);
  }
  rec *r = capture_slot_get(c, cc->ws_id);
  if (cc->state == CS_WS && r) {
    r->e.state = WR_EXCHANGE_CLOSED;
    r->e.t_end_us = now_us;
    capture_emit(c, r, WR_CAPTURE_EV_UPDATE);
  }
  for (size_t i = 0; i < cc->flen; i++) {
    r = capture_slot_get(c, cc->fifo[(cc->fhead + i) % FIFO_CAP].id);
    if (r && (r->e.state == WR_EXCHANGE_PENDING ||
              r->e.state == WR_EXCHANGE_UPGRADED)) {
      r->e.state = r->e.state == WR_EXCHANGE_UPGRADED ? WR_EXCHANGE_CLOSED
                                                      : WR_EXCHANGE_ABORTED;
      r->e.t_end_us = now_us;
      capture_emit(c, r, WR_CAPTURE_EV_UPDATE);
    }
  }
  /* A request still being received never got its head: drop nothing,
   * it is in the ring already only if its head was complete. */
  r = capture_slot_get(c, cc->cur_req);
  if (r && r->e.state == WR_EXCHANGE_PENDING) {
    int in_fifo = 0;
    for (size_t i = 0; i < cc->flen; i++)
      if (cc->fifo[(cc->fhead + i) % FIFO_CAP].id == cc->cur_req) in_fifo = 1;
    if (!in_fifo) {
      /* Its head never completed: not an exchange anyone saw. */
      capture_drop(c, r);
    }
  }
  for (int d = 0; d < 2; d++) wr_mem_free(c->mem, cc->sd[d].scratch);
  wr_mem_free(c->mem, cc->hold);
  wr_mem_free(c->mem, cc);
}
