/*
 * The UDP side of the SWIM adapter (swim_uv.c): the gossip socket, what
 * it receives (shown to the fault tap, then to wr_swim_recv, with
 * rejected datagrams logged), and what the core sends.
 *
 * Sending drains wr_swim_send: each datagram goes out with
 * uv_udp_try_send; when the socket would block (or earlier datagrams are
 * still queued, to keep order) it waits in a uv_udp_send request, at most
 * send_queue_max of them, beyond which it is dropped and counted.  Gossip
 * tolerates loss by design, so dropping beats unbounded memory.
 *
 * Refused datagrams: with refused_suspicion_ms set, the UDP socket has
 * IP_RECVERR/IPV6_RECVERR on, so the kernel queues an ICMP port
 * unreachable for a datagram we sent as an entry on the socket's error
 * queue (with the datagram's destination) instead of dropping it.  The
 * queue is drained whenever libuv reports the socket readable-with-error
 * and after any send that failed with ECONNREFUSED, and each entry goes
 * to wr_swim_unreachable.  The option has a side effect the adapter must
 * absorb: a queued error is also reported once by the *next* send on the
 * socket, whatever its destination, which then fails without sending; so
 * a send failing with ECONNREFUSED is retried once (the report is
 * consumed by the failure).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <linux/errqueue.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "warren/err.h"
#include "warren/log.h"
#include "swim_uv_int.h"

typedef struct udp_send {
  uv_udp_send_t req;
  wr_swim_uv *u;
  struct sockaddr_storage to;
  int retried; /* resent once after a stale ECONNREFUSED */
  size_t len;
  uint8_t data[];
} udp_send;

/* Reads every entry of the socket's error queue (IP_RECVERR) and hands
 * the destinations of refused datagrams to the core.  Bounded: the queue
 * is capped by the socket's receive buffer, and 256 entries are more
 * than one tick sends. */
static int drain_errqueue(wr_swim_uv *u) {
  uv_os_fd_t fd;
  int reported = 0;
  if (!u->cfg.refused_suspicion_ms ||
      uv_fileno((uv_handle_t *)&u->udp, &fd) != 0)
    return 0;
  for (int n = 0; n < 256; n++) {
    struct sockaddr_storage ss;
    union {
      char buf[CMSG_SPACE(sizeof(struct sock_extended_err) +
                          sizeof(struct sockaddr_in6))];
      struct cmsghdr align;
    } ctl;
    uint8_t data[64]; /* the head of our datagram, unused */
    struct iovec iov = {data, sizeof data};
    struct msghdr mh = {.msg_name = &ss, .msg_namelen = sizeof ss,
                        .msg_iov = &iov, .msg_iovlen = 1,
                        .msg_control = ctl.buf,
                        .msg_controllen = sizeof ctl.buf};
    if (recvmsg(fd, &mh, MSG_ERRQUEUE | MSG_DONTWAIT) < 0) break;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
      if (!((c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_RECVERR) ||
            (c->cmsg_level == IPPROTO_IPV6 && c->cmsg_type == IPV6_RECVERR)))
        continue;
      struct sock_extended_err ee;
      memcpy(&ee, CMSG_DATA(c), sizeof ee);
      /* Only "port unreachable" means no process: host/net unreachable
       * and the rest say nothing about the member itself. */
      int port_unreach =
          (ee.ee_origin == SO_EE_ORIGIN_ICMP && ee.ee_type == 3 &&
           ee.ee_code == 3) ||
          (ee.ee_origin == SO_EE_ORIGIN_ICMP6 && ee.ee_type == 1 &&
           ee.ee_code == 4);
      wr_addr to;
      if (!port_unreach ||
          swim_uv_from_sockaddr((struct sockaddr *)&ss, &to) != 0)
        continue;
      u->st.udp_refused++;
      wr_swim_unreachable(u->sw, &to, swim_uv_now(u));
      reported++;
    }
  }
  return reported;
}

static void on_udp_sent(uv_udp_send_t *req, int status) {
  udp_send *q = (udp_send *)req;
  wr_swim_uv *u = q->u;
  u->st.send_queue--;
  if (status == UV_ECONNREFUSED && !q->retried && !u->closing) {
    /* Someone else's refusal, reported by our send (see the top). */
    q->retried = 1;
    uv_buf_t b = uv_buf_init((char *)q->data, (unsigned)q->len);
    if (uv_udp_send(&q->req, &u->udp, &b, 1, (const struct sockaddr *)&q->to,
                    on_udp_sent) == 0) {
      u->st.send_queue++;
      if (drain_errqueue(u)) swim_uv_after_core(u);
      return;
    }
  }
  if (status != 0 && status != UV_ECANCELED) {
    u->st.udp_send_errors++;
    if (swim_uv_log_ok(u, LOG_SEND))
      WR_LOG_WARNF("swim", "udp_send_error", "err=%s folded=%llu",
                   uv_err_name(status), swim_uv_folded(u, LOG_SEND));
  }
  free(q);
}

void swim_uv_send_one(wr_swim_uv *u, const wr_addr *to, const uint8_t *data,
                      size_t len) {
  struct sockaddr_storage ss;
  if (u->v6 && to->family == 4) {
    /* A dual-stack socket reaches IPv4 members through mapped addresses. */
    wr_addr m = *to;
    m.family = 6;
    memset(m.ip, 0, 10);
    m.ip[10] = m.ip[11] = 0xff;
    memcpy(m.ip + 12, to->ip, 4);
    swim_uv_to_sockaddr(&m, &ss);
  } else {
    swim_uv_to_sockaddr(to, &ss);
  }
  uv_buf_t b = uv_buf_init((char *)data, (unsigned)len);
  int rv = UV_EAGAIN;
  /* Datagrams already waiting go first: try_send would overtake them. */
  if (u->st.send_queue == 0) {
    rv = uv_udp_try_send(&u->udp, &b, 1, (const struct sockaddr *)&ss);
    /* A refusal of an earlier datagram, reported here (see the top). */
    if (rv == UV_ECONNREFUSED)
      rv = uv_udp_try_send(&u->udp, &b, 1, (const struct sockaddr *)&ss);
    if (rv >= 0) return;
  }
  if (rv != UV_EAGAIN) {
    u->st.udp_send_errors++;
    if (swim_uv_log_ok(u, LOG_SEND)) {
      char a[64];
      swim_uv_addr_str(to, a, sizeof a);
      WR_LOG_WARNF("swim", "udp_send_error", "to=%s err=%s folded=%llu", a,
                   uv_err_name(rv), swim_uv_folded(u, LOG_SEND));
    }
    return;
  }
  if (u->st.send_queue >= u->send_queue_max) {
    u->st.udp_queue_drops++;
    if (swim_uv_log_ok(u, LOG_SEND))
      WR_LOG_WARNF("swim", "udp_queue_full", "queued=%zu folded=%llu",
                   u->st.send_queue, swim_uv_folded(u, LOG_SEND));
    return;
  }
  udp_send *q = malloc(sizeof *q + len);
  if (!q) {
    u->st.udp_queue_drops++;
    return;
  }
  q->u = u;
  q->to = ss;
  q->retried = 0;
  q->len = len;
  memcpy(q->data, data, len);
  b = uv_buf_init((char *)q->data, (unsigned)len);
  rv = uv_udp_send(&q->req, &u->udp, &b, 1, (const struct sockaddr *)&ss,
                   on_udp_sent);
  if (rv != 0) {
    free(q);
    u->st.udp_send_errors++;
    if (swim_uv_log_ok(u, LOG_SEND))
      WR_LOG_WARNF("swim", "udp_send_error", "err=%s folded=%llu",
                   uv_err_name(rv), swim_uv_folded(u, LOG_SEND));
    return;
  }
  u->st.send_queue++;
  u->st.udp_queued++;
}

void swim_uv_flush(wr_swim_uv *u) {
  wr_addr to;
  /* Bounded: a core that always has output must not starve the loop.
   * 4096 datagrams is far above one tick's worth for any sane fleet. */
  for (int i = 0; i < 4096; i++) {
    wr_ssize n =
        wr_swim_send(u->sw, &to, u->sbuf, sizeof u->sbuf, swim_uv_now(u));
    if (n <= 0) {
      if (n < 0 && swim_uv_log_ok(u, LOG_SEND))
        WR_LOG_WARNF("swim", "core_send_error", "err=%s folded=%llu",
                     wr_strerror((int)n), swim_uv_folded(u, LOG_SEND));
      return;
    }
    if (u->tap && u->tap(u, 1, 0, &to, u->sbuf, (size_t)n, NULL, u->tap_ud))
      continue;
    swim_uv_send_one(u, &to, u->sbuf, (size_t)n);
  }
}

static void on_udp_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf) {
  wr_swim_uv *u = h->data;
  (void)hint;
  *buf = uv_buf_init((char *)u->rbuf, sizeof u->rbuf);
}

static void on_udp_recv(uv_udp_t *h, ssize_t n, const uv_buf_t *buf,
                        const struct sockaddr *addr, unsigned flags) {
  wr_swim_uv *u = h->data;
  (void)buf;
  if (u->closing) return;
  if ((n < 0 || !addr) && drain_errqueue(u)) swim_uv_after_core(u);
  if (n == UV_ECONNREFUSED) return; /* the error queue had it */
  if (n < 0) {
    u->st.udp_recv_errors++;
    if (swim_uv_log_ok(u, LOG_RECV))
      WR_LOG_WARNF("swim", "udp_recv_error", "err=%s folded=%llu",
                   uv_err_name((int)n), swim_uv_folded(u, LOG_RECV));
    return;
  }
  if (!addr) return; /* nothing more to read this turn */
  /* A truncated datagram (UV_UDP_PARTIAL) filled the whole buffer, which
   * is longer than any sealed packet: the core counts it as oversize.
   * An empty one fails to open and is counted too. */
  (void)flags;
  wr_addr from;
  if (swim_uv_from_sockaddr(addr, &from) != 0) return;
  if (u->tap && u->tap(u, 0, 0, &from, u->rbuf, (size_t)n, NULL, u->tap_ud))
    return;
  wr_swim_stats before, after;
  wr_swim_get_stats(u->sw, &before);
  int rv = wr_swim_recv(u->sw, &from, u->rbuf, (size_t)n, swim_uv_now(u));
  if (rv != 0 && swim_uv_log_ok(u, LOG_RECV))
    WR_LOG_WARNF("swim", "recv_error", "err=%s folded=%llu", wr_strerror(rv),
                 swim_uv_folded(u, LOG_RECV));
  /* The core drops and counts what it cannot open or parse; say so in
   * the log too (rate-limited), since a node started with the wrong key
   * file is otherwise silent: nobody answers it and nothing fails. */
  wr_swim_get_stats(u->sw, &after);
  if (after.rx_badseal != before.rx_badseal && swim_uv_log_ok(u, LOG_REJECT)) {
    char a[64];
    swim_uv_addr_str(&from, a, sizeof a);
    WR_LOG_WARNF("swim", "rx_badseal",
                 "from=%s len=%zd total=%llu folded=%llu "
                 "msg=\"no installed key opens it: another cluster key?\"",
                 a, n, (unsigned long long)after.rx_badseal,
                 swim_uv_folded(u, LOG_REJECT));
  } else if (after.rx_malformed + after.rx_version + after.rx_oversize !=
                 before.rx_malformed + before.rx_version + before.rx_oversize &&
             swim_uv_log_ok(u, LOG_REJECT)) {
    char a[64];
    swim_uv_addr_str(&from, a, sizeof a);
    WR_LOG_WARNF("swim", "rx_malformed",
                 "from=%s len=%zd malformed=%llu version=%llu oversize=%llu "
                 "folded=%llu",
                 a, n, (unsigned long long)after.rx_malformed,
                 (unsigned long long)after.rx_version,
                 (unsigned long long)after.rx_oversize,
                 swim_uv_folded(u, LOG_REJECT));
  }
  swim_uv_after_core(u);
}

int swim_uv_udp_open(wr_swim_uv *u, const struct sockaddr_storage *ss,
                     const char **pstep) {
  const char *step = "udp_bind";
  int rv = uv_udp_bind(&u->udp, (const struct sockaddr *)ss, 0);
  if (rv == 0 && u->cfg.refused_suspicion_ms) {
    /* Refusals (see the top); a dual-stack socket reaches IPv4 members
     * through mapped addresses, so it wants both options. */
    uv_os_fd_t fd;
    int one = 1;
    step = "udp_recverr";
    rv = uv_fileno((uv_handle_t *)&u->udp, &fd);
    if (rv == 0 && u->v6 &&
        setsockopt(fd, IPPROTO_IPV6, IPV6_RECVERR, &one, sizeof one) != 0)
      rv = uv_translate_sys_error(errno);
    if (rv == 0 &&
        setsockopt(fd, IPPROTO_IP, IP_RECVERR, &one, sizeof one) != 0 && !u->v6)
      rv = uv_translate_sys_error(errno);
  }
  if (rv == 0) {
    step = "udp_recv";
    rv = uv_udp_recv_start(&u->udp, on_udp_alloc, on_udp_recv);
  }
  *pstep = step;
  return rv;
}
