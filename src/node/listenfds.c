/* LISTEN_FDS parsing (listenfds.h). */
#include "listenfds.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A decimal number without sign, spaces or leading junk; -1 if not. */
static long long parse_num(const char *s) {
  if (!s || !*s || *s < '0' || *s > '9') return -1;
  char *end;
  errno = 0;
  long long v = strtoll(s, &end, 10);
  if (errno || *end) return -1;
  return v;
}

int wr_listen_fds_find(const char *fds, const char *pid, const char *names,
                       long mypid, const char *want, int *pfd, char *err,
                       size_t errlen) {
  if (!fds) return 0;
  if (pid) {
    long long p = parse_num(pid);
    if (p <= 0) {
      snprintf(err, errlen, "LISTEN_PID is not a process id: '%.32s'", pid);
      return -1;
    }
    if (p != mypid) return 0; /* for another process */
  }
  long long n = parse_num(fds);
  if (n < 1 || n > WR_LISTEN_FDS_MAX) {
    snprintf(err, errlen, "LISTEN_FDS wants 1-%d sockets, got '%.32s'",
             WR_LISTEN_FDS_MAX, fds);
    return -1;
  }
  if (!names || !*names) {
    if (n != 1) {
      snprintf(err, errlen, "LISTEN_FDS=%lld without LISTEN_FDNAMES: "
               "which one is '%s'?", n, want);
      return -1;
    }
    *pfd = WR_LISTEN_FDS_START;
    return 1;
  }
  /* Walk the names; their count must match (systemd always sets one per
   * descriptor, "unknown" for those without FileDescriptorName=). */
  long long i = 0, found = -1;
  size_t wl = strlen(want);
  for (const char *p = names;; i++) {
    size_t l = strcspn(p, ":");
    if (l == wl && memcmp(p, want, wl) == 0) {
      if (found >= 0) {
        snprintf(err, errlen, "LISTEN_FDNAMES names '%s' twice", want);
        return -1;
      }
      found = i;
    }
    if (!p[l]) break;
    p += l + 1;
  }
  if (i + 1 != n) {
    snprintf(err, errlen, "LISTEN_FDNAMES has %lld names for LISTEN_FDS=%lld",
             i + 1, n);
    return -1;
  }
  if (found < 0) {
    if (n == 1) { /* one socket, named otherwise: it is ours */
      *pfd = WR_LISTEN_FDS_START;
      return 1;
    }
    snprintf(err, errlen, "LISTEN_FDNAMES has no '%s' among %lld sockets",
             want, n);
    return -1;
  }
  *pfd = WR_LISTEN_FDS_START + (int)found;
  return 1;
}
