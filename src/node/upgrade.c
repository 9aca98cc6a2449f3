/*
 * An in-place upgrade the node does by itself (`warrenctl upgrade`,
 * POST /upgrade, SIGUSR2; docs/DEPLOY.md), for fleets whose supervisor
 * does not hold the public socket (systemd's socket unit does: there,
 * `systemctl restart` is the upgrade).
 *
 * The order, and why:
 *  1. Check the binary at the path this process was started from (where
 *     a package manager or `install` put the new version) by running
 *     `BINARY --version` (5 s at most, without blocking the loop).  A
 *     missing or broken binary refuses the upgrade here, while the node
 *     still serves.
 *  2. Keep a duplicate of the listening socket, then drain exactly as
 *     for SIGTERM.  The drain closes the ingress's copy, but the socket
 *     stays open through the duplicate, so visitors arriving meanwhile
 *     wait in its backlog; nothing is refused.
 *  3. Leave the mesh and close everything; the gossip and admin ports
 *     are free again, so the old and the new process never hold them at
 *     once (the reason docs/DEPLOY.md gave against nginx's fork-then-
 *     exec).
 *  4. execve the binary in the same process, the socket as descriptor 3
 *     in LISTEN_FDS: the pid does not change (a supervisor sees nothing),
 *     and the new program takes the socket as from systemd, joins, and
 *     accepts once joined (accept_when_joined).
 * A failure at 4 is reported and the process exits 1, so its supervisor
 * restarts it; the socket's queue is lost with it then.
 */
#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

#include <uv.h>

#include "app.h"
#include "listenfds.h"

#define CHECK_TIMEOUT_MS 5000

static const char *state_name[] = {
    [UPGRADE_IDLE] = "idle",
    [UPGRADE_CHECKING] = "checking",
    [UPGRADE_DRAINING] = "draining",
    [UPGRADE_FAILED] = "failed",
};

const char *upgrade_state_name(int s) {
  return s >= 0 && s < (int)WR_ARRAY_LEN(state_name) ? state_name[s] : "?";
}

void upgrade_init(app *a) {
  struct timeval tv;
  gettimeofday(&tv, NULL);
  a->started_ms = (uint64_t)tv.tv_sec * 1000 + (uint64_t)tv.tv_usec / 1000;
  a->upgrade_fd = -1;
  /* The path now, not at upgrade time: once the file is replaced,
   * /proc/self/exe names the old, deleted inode. */
  ssize_t n = readlink("/proc/self/exe", a->exe, sizeof a->exe - 1);
  a->exe[n > 0 ? n : 0] = 0;
}

__attribute__((format(printf, 2, 3))) static void fail(app *a,
                                                      const char *fmt, ...) {
  a->upgrade_state = UPGRADE_FAILED;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(a->upgrade_err, sizeof a->upgrade_err, fmt, ap);
  va_end(ap);
  if (a->m_upgrade_refused) (*a->m_upgrade_refused)++;
  WR_LOG_WARNF("main", "upgrade_refused", "binary=%s reason=\"%s\"", a->exe,
               a->upgrade_err);
}

static void check_closed(uv_handle_t *h) { (void)h; }

static void check_done(app *a, const char *why) {
  uv_timer_stop(&a->upgrade_timer);
  uv_close((uv_handle_t *)&a->upgrade_timer, check_closed);
  if (why) {
    fail(a, "%s", why);
    return;
  }
  if (a->stopping || a->draining || a->leaving) {
    fail(a, "%s", "the node began stopping during the check");
    return;
  }
  int fd = a->ig ? wr_ingress_listen_fd(a->ig) : -1;
  if (fd < 0) {
    fail(a, "%s", "the node has no listening socket to hand over");
    return;
  }
  /* CLOEXEC until the exec itself (dup2 onto 3 clears it there), so a
   * process the node starts meanwhile does not hold the socket. */
  a->upgrade_fd = fcntl(fd, F_DUPFD_CLOEXEC, WR_LISTEN_FDS_START + 1);
  if (a->upgrade_fd < 0) {
    fail(a, "cannot keep the socket: %s", strerror(errno));
    return;
  }
  a->upgrade_state = UPGRADE_DRAINING;
  WR_LOG_INFOF("main", "upgrade_started", "binary=%s", a->exe);
  app_drain(a, "upgrade");
}

static void on_check_exit(uv_process_t *p, int64_t status, int sig) {
  app *a = p->data;
  uv_close((uv_handle_t *)p, check_closed);
  if (a->upgrade_state != UPGRADE_CHECKING) return; /* timed out already */
  char why[160];
  if (sig)
    snprintf(why, sizeof why, "'%.100s --version' was killed by signal %d",
             a->exe, sig);
  else if (status)
    snprintf(why, sizeof why, "'%.100s --version' exited %lld", a->exe,
             (long long)status);
  check_done(a, sig || status ? why : NULL);
}

static void on_check_timeout(uv_timer_t *t) {
  app *a = t->data;
  if (a->upgrade_state != UPGRADE_CHECKING) return;
  uv_process_kill(&a->upgrade_proc, SIGKILL);
  check_done(a, "'--version' did not answer within 5 s");
}

int app_upgrade(app *a, char *err, size_t errlen) {
  if (a->stopping || a->draining || a->leaving) {
    snprintf(err, errlen, "the node is already stopping");
    return WR_ERR_CLOSED;
  }
  if (a->upgrade_state == UPGRADE_CHECKING) {
    snprintf(err, errlen, "an upgrade is being checked already");
    return WR_ERR_EXISTS;
  }
  if (!a->exe[0] || access(a->exe, X_OK) != 0) {
    snprintf(err, errlen, "no executable at %s: %s",
             a->exe[0] ? a->exe : "(unknown path)", strerror(errno));
    fail(a, "%s", err);
    return WR_ERR_INVAL;
  }
  a->upgrade_err[0] = 0;
  char *args[] = {a->exe, "--version", NULL};
  uv_stdio_container_t io[3] = {{.flags = UV_IGNORE},
                                {.flags = UV_IGNORE},
                                {.flags = UV_INHERIT_FD, .data.fd = 2}};
  uv_process_options_t po = {.exit_cb = on_check_exit,
                             .file = a->exe,
                             .args = args,
                             .stdio_count = 3,
                             .stdio = io};
  a->upgrade_proc.data = a;
  int rv = uv_spawn(a->loop, &a->upgrade_proc, &po);
  if (rv != 0) {
    snprintf(err, errlen, "cannot run %s: %s", a->exe, uv_strerror(rv));
    /* libuv wants the handle closed even when the spawn failed. */
    uv_close((uv_handle_t *)&a->upgrade_proc, check_closed);
    fail(a, "%s", err);
    return WR_ERR_IO;
  }
  a->upgrade_state = UPGRADE_CHECKING;
  uv_timer_init(a->loop, &a->upgrade_timer);
  a->upgrade_timer.data = a;
  uv_timer_start(&a->upgrade_timer, on_check_timeout, CHECK_TIMEOUT_MS, 0);
  WR_LOG_INFOF("main", "upgrade_check", "binary=%s", a->exe);
  return 0;
}

int upgrade_exec(app *a) {
  if (a->upgrade_state != UPGRADE_DRAINING || a->upgrade_fd < 0)
    return a->exit_code;
  if (a->exit_code != 0) {
    WR_LOG_WARNF("main", "upgrade_abandoned", "exit_code=%d", a->exit_code);
    return a->exit_code;
  }
  if (dup2(a->upgrade_fd, WR_LISTEN_FDS_START) < 0) {
    WR_LOG_ERRORF("main", "upgrade_failed", "reason=\"dup2: %s\"",
                  strerror(errno));
    return 1;
  }
  char pid[24];
  snprintf(pid, sizeof pid, "%ld", (long)getpid());
  setenv("LISTEN_FDS", "1", 1);
  setenv("LISTEN_PID", pid, 1);
  setenv("LISTEN_FDNAMES", "http", 1);
  WR_LOG_INFOF("main", "upgrade_exec", "binary=%s pid=%s", a->exe, pid);
  fflush(NULL);
  execv(a->exe, a->argv);
  WR_LOG_ERRORF("main", "upgrade_failed", "binary=%s reason=\"exec: %s\"",
                a->exe, strerror(errno));
  return 1;
}

void on_sigusr2(uv_signal_t *s, int sig) {
  (void)sig;
  app *a = s->data;
  char err[200];
  if (app_upgrade(a, err, sizeof err) != 0)
    WR_LOG_WARNF("main", "upgrade_not_started", "reason=\"%s\"", err);
}
