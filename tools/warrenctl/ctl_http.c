/*
 * warrenctl's HTTP client: one GET per connection ("Connection: close"),
 * blocking sockets driven by poll() against one overall deadline, so a
 * stuck or silent server costs at most --timeout, never a hang.
 *
 * The response is parsed with llhttp (strict) like everything else warren
 * reads, and bounded by CTL_MAX_RESPONSE: a wrong port that streams
 * forever is cut off with a clear error.
 */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <llhttp.h>

#include "ctl.h"
#include "warren/types.h"

static void seterr(char *err, size_t cap, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void seterr(char *err, size_t cap, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err, cap, fmt, ap);
  va_end(ap);
}

/* strerror() text with a lower-case first letter, to fit in our lines. */
static void errno_text(int e, char *err, size_t cap) {
  seterr(err, cap, "%s", strerror(e));
  if (err[0] >= 'A' && err[0] <= 'Z') err[0] = (char)(err[0] - 'A' + 'a');
}

int ctl_parse_target(const char *s, ctl_target *t) {
  const char *colon;
  size_t hl;
  memset(t, 0, sizeof *t);
  if (s[0] == '[') {
    const char *rb = strchr(s, ']');
    if (!rb || rb[1] != ':') return -1;
    hl = (size_t)(rb - s - 1);
    if (hl == 0 || hl >= sizeof t->host) return -1;
    memcpy(t->host, s + 1, hl);
    colon = rb + 1;
  } else {
    colon = strrchr(s, ':');
    if (!colon) return -1;
    hl = (size_t)(colon - s);
    if (hl == 0 || hl >= sizeof t->host || memchr(s, ':', hl)) return -1;
    memcpy(t->host, s, hl);
  }
  const char *p = colon + 1;
  size_t pl = strlen(p);
  if (pl == 0 || pl >= sizeof t->port) return -1;
  long port = 0;
  for (size_t i = 0; i < pl; i++) {
    if (p[i] < '0' || p[i] > '9') return -1;
    port = port * 10 + (p[i] - '0');
  }
  if (port < 1 || port > 65535) return -1;
  memcpy(t->port, p, pl + 1);
  snprintf(t->display, sizeof t->display, "%s", s);
  return 0;
}

/* ---- response parsing (sans-IO) ---------------------------------------- */

/* An incremental response reader: ctl_http_get feeds it each recv()
 * chunk, so a large response costs O(n), and the tests feed it whole. */
typedef struct reader {
  llhttp_settings_t s;
  llhttp_t p;
  ctl_response *resp;
  size_t cap;
  int done;
  int oom;
  int toobig;
} reader;

static int on_body(llhttp_t *p, const char *at, size_t len) {
  reader *rd = p->data;
  ctl_response *r = rd->resp;
  if (len > CTL_MAX_RESPONSE - r->len) {
    rd->toobig = 1;
    return -1;
  }
  if (r->len + len + 1 > rd->cap) {
    size_t cap = rd->cap ? rd->cap : 4096;
    while (cap < r->len + len + 1) cap *= 2;
    char *nb = realloc(r->body, cap);
    if (!nb) {
      rd->oom = 1;
      return -1;
    }
    r->body = nb;
    rd->cap = cap;
  }
  memcpy(r->body + r->len, at, len);
  r->len += len;
  r->body[r->len] = '\0';
  return 0;
}

static int on_complete(llhttp_t *p) {
  ((reader *)p->data)->done = 1;
  return HPE_PAUSED; /* ignore anything after the one response */
}

static void reader_init(reader *rd, ctl_response *resp) {
  memset(rd, 0, sizeof *rd);
  llhttp_settings_init(&rd->s);
  rd->s.on_body = on_body;
  rd->s.on_message_complete = on_complete;
  llhttp_init(&rd->p, HTTP_RESPONSE, &rd->s);
  rd->p.data = rd;
  rd->resp = resp;
  resp->status = 0;
  resp->body = NULL;
  resp->len = 0;
}

/* 1 complete, 0 need more, -1 error (|err| set, body freed). */
static int reader_feed(reader *rd, const char *data, size_t len, int eof,
                       char *err, size_t cap) {
  ctl_response *resp = rd->resp;
  llhttp_errno_t e = len ? llhttp_execute(&rd->p, data, len) : HPE_OK;
  if (e == HPE_OK && eof && !rd->done) {
    e = llhttp_finish(&rd->p); /* completes a body that ends at EOF */
    /* llhttp calls a truncated message "Invalid EOF state"; say it in
     * words an operator understands. */
    if (!rd->done && !rd->oom) {
      seterr(err, cap, "connection closed before the response was complete");
      goto fail;
    }
  }
  if (rd->oom) {
    seterr(err, cap, "out of memory");
    goto fail;
  }
  if (rd->toobig) {
    seterr(err, cap, "response larger than %u bytes", CTL_MAX_RESPONSE);
    goto fail;
  }
  if (e != HPE_OK && e != HPE_PAUSED) {
    seterr(err, cap, "malformed HTTP response: %s",
           llhttp_get_error_reason(&rd->p));
    goto fail;
  }
  if (!rd->done) return 0;
  resp->status = rd->p.status_code;
  if (!resp->body && !(resp->body = calloc(1, 1))) {
    seterr(err, cap, "out of memory");
    return -1;
  }
  return 1;
fail:
  free(resp->body);
  resp->body = NULL;
  resp->len = 0;
  return -1;
}

int ctl_http_parse(const char *data, size_t len, int eof, ctl_response *resp,
                   char *err, size_t cap) {
  reader rd;
  reader_init(&rd, resp);
  int rv = reader_feed(&rd, data, len, eof, err, cap);
  if (rv == 0) {
    /* One-shot callers get nothing until the response is complete. */
    free(resp->body);
    resp->body = NULL;
    resp->len = 0;
  }
  return rv;
}

/* ---- blocking I/O with a deadline -------------------------------------- */

static long long now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

volatile sig_atomic_t ctl_interrupted;

/* Waits for |events| on |fd| until |deadline|: 1 ready, 0 timed out,
 * -1 interrupted by Ctrl-C. */
static int wait_fd(int fd, short events, long long deadline) {
  for (;;) {
    if (ctl_interrupted) return -1;
    long long left = deadline - now_ms();
    if (left <= 0) return 0;
    struct pollfd pfd = {fd, events, 0};
    int n = poll(&pfd, 1, (int)left);
    if (n > 0) return 1;
    if (n == 0) return 0;
    if (errno != EINTR) return 1; /* let the next syscall report it */
  }
}

static int connect_one(const struct addrinfo *ai, long long deadline,
                       int *perr) {
  int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK,
                  ai->ai_protocol);
  if (fd < 0) {
    *perr = errno;
    return -1;
  }
  if (connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
    if (errno != EINPROGRESS) {
      *perr = errno;
      close(fd);
      return -1;
    }
    int w = wait_fd(fd, POLLOUT, deadline);
    if (w <= 0) {
      *perr = w < 0 ? EINTR : ETIMEDOUT;
      close(fd);
      return -1;
    }
    int soerr = 0;
    socklen_t sl = sizeof soerr;
    getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl);
    if (soerr != 0) {
      *perr = soerr;
      close(fd);
      return -1;
    }
  }
  return fd;
}

int ctl_http_get(const ctl_target *t, const char *path, const char *token,
                 int timeout_ms, ctl_response *resp, char *err, size_t cap) {
  return ctl_http_request(t, "GET", path, token, NULL, 0, timeout_ms, resp,
                          err, cap);
}

int ctl_http_request(const ctl_target *t, const char *method,
                     const char *path, const char *token, const char *body,
                     size_t body_len, int timeout_ms, ctl_response *resp,
                     char *err, size_t cap) {
  long long deadline = now_ms() + timeout_ms;
  struct addrinfo hints, *res = NULL;
  memset(&hints, 0, sizeof hints);
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV;
  int gai = getaddrinfo(t->host, t->port, &hints, &res);
  if (gai != 0) {
    seterr(err, cap, "cannot resolve %s: %s", t->host, gai_strerror(gai));
    return -1;
  }
  int fd = -1, e = ECONNREFUSED;
  for (struct addrinfo *ai = res; ai && fd < 0; ai = ai->ai_next)
    fd = connect_one(ai, deadline, &e);
  freeaddrinfo(res);
  if (fd < 0) {
    if (e == ETIMEDOUT)
      seterr(err, cap, "timed out after %d ms", timeout_ms);
    else if (e == EINTR)
      seterr(err, cap, "interrupted");
    else
      errno_text(e, err, cap);
    return -1;
  }

  char req[1024];
  char clen[64] = "";
  /* A body (POST, PUT) goes with its length and type; GET has none. */
  if (body || strcmp(method, "GET") != 0)
    snprintf(clen, sizeof clen,
             "Content-Type: application/json\r\nContent-Length: %zu\r\n",
             body_len);
  int n = snprintf(
      req, sizeof req,
      "%s %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: warrenctl\r\n"
      "Accept: application/json\r\n%s%s%s%sConnection: close\r\n\r\n",
      method, path, t->display,
      token && *token ? "Authorization: Bearer " : "",
      token && *token ? token : "", token && *token ? "\r\n" : "", clen);
  if (n < 0 || (size_t)n >= sizeof req) {
    close(fd);
    seterr(err, cap, "request too long (token over 800 bytes?)");
    return -1;
  }
  /* Head, then body: two pieces of one send loop. */
  for (int part = 0; part < 2; part++) {
    const char *out = part == 0 ? req : body;
    size_t outlen = part == 0 ? (size_t)n : (body ? body_len : 0);
    size_t off = 0;
    while (off < outlen) {
      int wr = wait_fd(fd, POLLOUT, deadline);
      if (wr < 0) goto interrupted;
      if (wr == 0) goto timeout;
      ssize_t w = send(fd, out + off, outlen - off, MSG_NOSIGNAL);
      if (w < 0) {
        if (errno == EAGAIN || errno == EINTR) continue;
        errno_text(errno, err, cap);
        close(fd);
        return -1;
      }
      off += (size_t)w;
    }
  }

  reader rd;
  reader_init(&rd, resp);
  int rv = -1;
  for (;;) {
    char buf[65536];
    int w = wait_fd(fd, POLLIN, deadline);
    if (w <= 0) {
      free(resp->body);
      resp->body = NULL;
      if (w < 0) goto interrupted;
      goto timeout;
    }
    ssize_t r = recv(fd, buf, sizeof buf, 0);
    if (r < 0) {
      if (errno == EAGAIN || errno == EINTR) continue;
      errno_text(errno, err, cap);
      free(resp->body);
      resp->body = NULL;
      break;
    }
    int pr = reader_feed(&rd, buf, (size_t)r, r == 0, err, cap);
    if (pr != 0) {
      rv = pr == 1 ? 0 : -1;
      break;
    }
  }
  close(fd);
  return rv;

interrupted:
  close(fd);
  seterr(err, cap, "interrupted");
  return -1;

timeout:
  close(fd);
  seterr(err, cap, "timed out after %d ms", timeout_ms);
  return -1;
}

/* ---- many GETs at once (mesh) ------------------------------------------ */

/*
 * A fixed pool of connection slots driven by one poll() loop.  Each slot
 * goes CONNECTING -> SENDING -> READING and back to FREE; a finished slot
 * takes the next queued GET at once, so a slow or silent node holds one
 * slot for at most its timeout while the others keep moving.
 */
typedef enum { SLOT_FREE, SLOT_CONNECTING, SLOT_SENDING, SLOT_READING } slot_state;

typedef struct slot {
  slot_state state;
  int fd;
  ctl_get *g;
  long long deadline;
  int cut; /* the overall limit, not the request's timeout, ends it */
  char req[1024];
  size_t reqlen, off;
  reader rd;
} slot;

static void slot_finish(slot *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void slot_finish(slot *s, const char *fmt, ...) {
  if (fmt) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->g->err, sizeof s->g->err, fmt, ap);
    va_end(ap);
    s->g->rv = -1;
    free(s->g->resp.body);
    s->g->resp.body = NULL;
    s->g->resp.len = 0;
  } else {
    s->g->rv = 0;
  }
  if (s->fd >= 0) close(s->fd);
  s->fd = -1;
  s->g = NULL;
  s->state = SLOT_FREE;
}

static void slot_finish_errno(slot *s, int e) {
  char t[128];
  errno_text(e, t, sizeof t);
  slot_finish(s, "%s", t);
}

/* Starts |g| in |s|: resolves and issues a non-blocking connect. */
static void slot_start(slot *s, ctl_get *g, const char *token, long long now,
                       int timeout_ms, long long end) {
  memset(s, 0, sizeof *s);
  s->fd = -1;
  s->g = g;
  g->rv = -1;
  g->err[0] = '\0';
  g->resp.body = NULL;
  g->resp.len = 0;
  g->resp.status = 0;
  s->deadline = WR_MIN(now + timeout_ms, end);
  s->cut = now + timeout_ms > end;
  s->state = SLOT_CONNECTING;
  int n = snprintf(
      s->req, sizeof s->req,
      "GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: warrenctl\r\n"
      "Accept: application/json\r\n%s%s%sConnection: close\r\n\r\n",
      g->path, g->target.display, token && *token ? "Authorization: Bearer " : "",
      token && *token ? token : "", token && *token ? "\r\n" : "");
  if (n < 0 || (size_t)n >= sizeof s->req) {
    slot_finish(s, "request too long (token over 800 bytes?)");
    return;
  }
  s->reqlen = (size_t)n;
  struct addrinfo hints, *res = NULL;
  memset(&hints, 0, sizeof hints);
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  /* Numeric first: admin addresses advertised by nodes are IP:PORT, and
   * a numeric lookup never blocks. */
  hints.ai_flags = AI_NUMERICSERV | AI_NUMERICHOST;
  int gai = getaddrinfo(g->target.host, g->target.port, &hints, &res);
  if (gai == EAI_NONAME) {
    hints.ai_flags = AI_NUMERICSERV;
    gai = getaddrinfo(g->target.host, g->target.port, &hints, &res);
  }
  if (gai != 0) {
    slot_finish(s, "cannot resolve %s: %s", g->target.host, gai_strerror(gai));
    return;
  }
  s->fd = socket(res->ai_family,
                 res->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK,
                 res->ai_protocol);
  if (s->fd < 0) {
    int e = errno;
    freeaddrinfo(res);
    slot_finish_errno(s, e);
    return;
  }
  int rc = connect(s->fd, res->ai_addr, res->ai_addrlen);
  int e = errno;
  freeaddrinfo(res);
  if (rc != 0 && e != EINPROGRESS) {
    slot_finish_errno(s, e);
    return;
  }
  reader_init(&s->rd, &g->resp);
  if (rc == 0) s->state = SLOT_SENDING;
}

/* One poll() result for |s|. */
static void slot_step(slot *s, short revents) {
  if (s->state == SLOT_CONNECTING) {
    int soerr = 0;
    socklen_t sl = sizeof soerr;
    getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &soerr, &sl);
    if (soerr != 0) {
      slot_finish_errno(s, soerr);
      return;
    }
    if (!(revents & POLLOUT)) return;
    s->state = SLOT_SENDING;
  }
  if (s->state == SLOT_SENDING) {
    ssize_t w = send(s->fd, s->req + s->off, s->reqlen - s->off, MSG_NOSIGNAL);
    if (w < 0) {
      if (errno != EAGAIN && errno != EINTR) slot_finish_errno(s, errno);
      return;
    }
    s->off += (size_t)w;
    if (s->off == s->reqlen) s->state = SLOT_READING;
    return;
  }
  /* SLOT_READING */
  char buf[65536];
  ssize_t r = recv(s->fd, buf, sizeof buf, 0);
  if (r < 0) {
    if (errno != EAGAIN && errno != EINTR) slot_finish_errno(s, errno);
    return;
  }
  char err[160];
  int pr = reader_feed(&s->rd, buf, (size_t)r, r == 0, err, sizeof err);
  if (pr == 1)
    slot_finish(s, NULL);
  else if (pr < 0)
    slot_finish(s, "%s", err); /* reader_feed freed the body */
}

void ctl_http_get_many(ctl_get *gets, size_t n, const char *token,
                       int timeout_ms, int budget_ms, unsigned parallel) {
  slot slots[CTL_MAX_PARALLEL];
  struct pollfd pfd[CTL_MAX_PARALLEL];
  size_t map[CTL_MAX_PARALLEL];
  if (parallel < 1) parallel = 1;
  if (parallel > CTL_MAX_PARALLEL) parallel = CTL_MAX_PARALLEL;
  for (unsigned k = 0; k < parallel; k++) {
    slots[k].state = SLOT_FREE;
    slots[k].fd = -1;
    slots[k].g = NULL;
  }
  long long end = now_ms() + budget_ms;
  size_t next = 0;
  for (;;) {
    long long now = now_ms();
    /* Fill free slots; a GET that fails at once frees its slot again. */
    for (unsigned k = 0; k < parallel && next < n; k++) {
      while (slots[k].state == SLOT_FREE && next < n) {
        if (now >= end || ctl_interrupted) break;
        slot_start(&slots[k], &gets[next++], token, now, timeout_ms, end);
      }
    }
    if (now >= end || ctl_interrupted) {
      /* Out of time: what is queued is never asked. */
      for (; next < n; next++) {
        gets[next].rv = -1;
        gets[next].resp.body = NULL;
        snprintf(gets[next].err, sizeof gets[next].err, "%s",
                 ctl_interrupted ? "interrupted"
                                 : "not asked: overall time limit reached");
      }
    }
    size_t np = 0;
    long long soonest = end;
    for (unsigned k = 0; k < parallel; k++) {
      slot *s = &slots[k];
      if (s->state == SLOT_FREE) continue;
      if (now >= s->deadline || ctl_interrupted) {
        if (ctl_interrupted)
          slot_finish(s, "interrupted");
        else if (s->cut)
          slot_finish(s, "timed out: overall time limit reached");
        else
          slot_finish(s, "timed out after %d ms", timeout_ms);
        continue;
      }
      soonest = WR_MIN(soonest, s->deadline);
      pfd[np].fd = s->fd;
      pfd[np].events = s->state == SLOT_READING ? POLLIN : POLLOUT;
      pfd[np].revents = 0;
      map[np++] = k;
    }
    if (np == 0) {
      if (next >= n) break;
      continue; /* slots freed by timeouts: refill */
    }
    long long wait = soonest - now;
    int rc = poll(pfd, np, (int)WR_MAX(wait, 0));
    if (rc < 0 && errno != EINTR) break; /* cannot happen with valid fds */
    for (size_t i = 0; rc > 0 && i < np; i++)
      if (pfd[i].revents) slot_step(&slots[map[i]], pfd[i].revents);
  }
  /* Only reachable after an impossible poll() failure: release slots. */
  for (unsigned k = 0; k < parallel; k++)
    if (slots[k].state != SLOT_FREE) slot_finish(&slots[k], "poll failed");
}
