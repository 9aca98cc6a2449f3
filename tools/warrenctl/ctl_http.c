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

typedef struct rstate {
  ctl_response *resp;
  size_t cap;
  int done;
  int oom;
} rstate;

static int on_body(llhttp_t *p, const char *at, size_t len) {
  rstate *st = p->data;
  ctl_response *r = st->resp;
  if (len > CTL_MAX_RESPONSE - r->len) return -1;
  if (r->len + len + 1 > st->cap) {
    size_t cap = st->cap ? st->cap : 4096;
    while (cap < r->len + len + 1) cap *= 2;
    char *nb = realloc(r->body, cap);
    if (!nb) {
      st->oom = 1;
      return -1;
    }
    r->body = nb;
    st->cap = cap;
  }
  memcpy(r->body + r->len, at, len);
  r->len += len;
  r->body[r->len] = '\0';
  return 0;
}

static int on_complete(llhttp_t *p) {
  ((rstate *)p->data)->done = 1;
  return HPE_PAUSED;
}

int ctl_http_parse(const char *data, size_t len, int eof, ctl_response *resp,
                   char *err, size_t cap) {
  llhttp_settings_t s;
  llhttp_t p;
  rstate st = {resp, 0, 0, 0};
  llhttp_settings_init(&s);
  s.on_body = on_body;
  s.on_message_complete = on_complete;
  llhttp_init(&p, HTTP_RESPONSE, &s);
  p.data = &st;
  resp->status = 0;
  resp->body = NULL;
  resp->len = 0;
  /* Re-parsing the whole buffer on every read is quadratic in theory;
   * admin responses are a few KiB and arrive in one or two reads. */
  llhttp_errno_t e = llhttp_execute(&p, data, len);
  if (e == HPE_OK && eof && !st.done) {
    e = llhttp_finish(&p); /* completes a body that ends at EOF */
    /* llhttp calls a truncated message "Invalid EOF state"; say it in
     * words an operator understands. */
    if (!st.done && !st.oom) {
      seterr(err, cap, "connection closed before the response was complete");
      goto fail;
    }
  }
  if (st.oom) {
    seterr(err, cap, "out of memory");
    goto fail;
  }
  if (e != HPE_OK && e != HPE_PAUSED) {
    seterr(err, cap, "malformed HTTP response: %s",
           resp->len >= CTL_MAX_RESPONSE ? "too large"
                                         : llhttp_get_error_reason(&p));
    goto fail;
  }
  if (!st.done) {
    if (eof) {
      seterr(err, cap, "connection closed before the response was complete");
      goto fail;
    }
    free(resp->body);
    resp->body = NULL;
    resp->len = 0;
    return 0;
  }
  resp->status = p.status_code;
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

/* ---- blocking I/O with a deadline -------------------------------------- */

static long long now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Waits for |events| on |fd| until |deadline|.  1 ready, 0 timeout. */
static int wait_fd(int fd, short events, long long deadline) {
  for (;;) {
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
    if (!wait_fd(fd, POLLOUT, deadline)) {
      *perr = ETIMEDOUT;
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
    else
      errno_text(e, err, cap);
    return -1;
  }

  char req[1024];
  int n = snprintf(
      req, sizeof req,
      "GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: warrenctl\r\n"
      "Accept: application/json\r\n%s%s%sConnection: close\r\n\r\n",
      path, t->display, token && *token ? "Authorization: Bearer " : "",
      token && *token ? token : "", token && *token ? "\r\n" : "");
  if (n < 0 || (size_t)n >= sizeof req) {
    close(fd);
    seterr(err, cap, "request too long (token over 800 bytes?)");
    return -1;
  }
  size_t off = 0;
  while (off < (size_t)n) {
    if (!wait_fd(fd, POLLOUT, deadline)) goto timeout;
    ssize_t w = send(fd, req + off, (size_t)n - off, MSG_NOSIGNAL);
    if (w < 0) {
      if (errno == EAGAIN || errno == EINTR) continue;
      errno_text(errno, err, cap);
      close(fd);
      return -1;
    }
    off += (size_t)w;
  }

  size_t len = 0, bcap = 8192;
  char *buf = malloc(bcap);
  if (!buf) {
    close(fd);
    seterr(err, cap, "out of memory");
    return -1;
  }
  int rv = -1;
  for (;;) {
    if (len == bcap) {
      if (bcap >= CTL_MAX_RESPONSE + 8192) {
        seterr(err, cap, "response larger than %u bytes", CTL_MAX_RESPONSE);
        break;
      }
      char *nb = realloc(buf, bcap * 2);
      if (!nb) {
        seterr(err, cap, "out of memory");
        break;
      }
      buf = nb;
      bcap *= 2;
    }
    if (!wait_fd(fd, POLLIN, deadline)) {
      free(buf);
      goto timeout;
    }
    ssize_t r = recv(fd, buf + len, bcap - len, 0);
    if (r < 0) {
      if (errno == EAGAIN || errno == EINTR) continue;
      errno_text(errno, err, cap);
      break;
    }
    len += (size_t)r;
    int pr = ctl_http_parse(buf, len, r == 0, resp, err, cap);
    if (pr != 0) {
      rv = pr == 1 ? 0 : -1;
      break;
    }
  }
  free(buf);
  close(fd);
  return rv;

timeout:
  close(fd);
  seterr(err, cap, "timed out after %d ms", timeout_ms);
  return -1;
}
