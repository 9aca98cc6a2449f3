/*
 * The running program shared by `warren node` and `warren http`: the
 * shutdown order, signals, SIGHUP reload, and starting the ingress.
 */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>
#include <uv.h>

#include "app.h"
#include "faults.h"

/* ---- accounts ---- */

/* Reads and parses the tokens file; 0 and a new table, or an error with
 * a one-line message in |err|. */
int load_tokens(const char *path, wr_tokens **pt, char *err,
                       size_t errlen) {
  FILE *f = fopen(path, "r");
  if (!f) {
    snprintf(err, errlen, "cannot read %s: %s", path, strerror(errno));
    return WR_ERR_IO;
  }
  char *buf = malloc(WR_TOKENS_FILE_MAX + 2);
  size_t n = buf ? fread(buf, 1, WR_TOKENS_FILE_MAX + 1, f) : 0;
  fclose(f);
  if (!buf) {
    snprintf(err, errlen, "out of memory");
    return WR_ERR_NOMEM;
  }
  buf[n] = 0;
  int rv;
  char why[240];
  if (n > WR_TOKENS_FILE_MAX) {
    snprintf(err, errlen, "%s is larger than 1 MiB", path);
    rv = WR_ERR_INVAL;
  } else if (memchr(buf, 0, n)) {
    snprintf(err, errlen, "%s is not a text file", path);
    rv = WR_ERR_INVAL;
  } else if ((rv = wr_tokens_parse(buf, pt, why, sizeof why)) != 0) {
    snprintf(err, errlen, "%s: %s", path, why);
  }
  sodium_memzero(buf, n);
  free(buf);
  return rv;
}

/* ---- the running program ---- */

static void force_exit(uv_timer_t *t) {
  app *a = t->data;
  WR_LOG_WARNF("main", "forced_exit", "reason=\"shutdown took too long\"");
  exit(a->exit_code);
}

/*
 * Shutdown order.  The admin server owns the metrics registry that the
 * ingress and its links count into, so it closes last: only once every
 * other part (the client, the ingress with all its visitor connections
 * and tunnel links) has called back.  Until then the parts keep counting
 * and GET /metrics keeps answering.  Each part started with
 * part_done(a) as its callback adds one to a->parts first.
 */
static void part_done(void *ud) {
  app *a = ud;
  if (!a || --a->parts > 0) return;
  /* The ingress has closed every link (their unbound hooks ran), so
   * nothing calls into the mesh any more. */
  if (a->mesh) wr_mesh_close(a->mesh);
  a->mesh = NULL;
  if (a->admin) wr_admin_close(a->admin, NULL, NULL);
  a->admin = NULL;
  /* After the client: its connections fed the inspector's capture. */
  if (a->inspector) wr_inspector_stop(a->inspector, NULL, NULL);
  a->inspector = NULL;
}

void app_stop(app *a, int code) {
  if (a->stopping) return;
  a->stopping = 1;
  a->exit_code = code;
  wr_node_faults_stop(); /* before swim: it holds datagrams for it */
  /* Membership first (it holds no metrics pointers: its numbers are read
   * by the collect hook, which checks a->swim). */
  if (a->swim) wr_swim_uv_close(a->swim, NULL, NULL);
  a->swim = NULL;
  if (a->mesh) wr_mesh_set_swim(a->mesh, NULL);
  uv_close((uv_handle_t *)&a->sigint, NULL);
  uv_close((uv_handle_t *)&a->sigterm, NULL);
  if (a->sighup.data) uv_close((uv_handle_t *)&a->sighup, NULL);
  if (a->drain_timer.data) uv_close((uv_handle_t *)&a->drain_timer, NULL);
  if (a->accept_timer.data) uv_close((uv_handle_t *)&a->accept_timer, NULL);
  if (a->sigusr2.data) uv_close((uv_handle_t *)&a->sigusr2, NULL);
  if (a->upgrade_state == UPGRADE_CHECKING) {
    /* The check's exit callback still closes the process handle. */
    a->upgrade_state = UPGRADE_FAILED;
    snprintf(a->upgrade_err, sizeof a->upgrade_err, "the node stopped");
    uv_process_kill(&a->upgrade_proc, SIGKILL);
    uv_close((uv_handle_t *)&a->upgrade_timer, NULL);
  }
  /* Whatever is still open after 2 s is not worth waiting for. */
  uv_timer_init(a->loop, &a->force);
  a->force.data = a;
  uv_timer_start(&a->force, force_exit, 2000, 0);
  uv_unref((uv_handle_t *)&a->force);
  /* One count held by app_stop itself, so a part that finishes at once
   * cannot close the admin server before the others have started. */
  a->parts = 1;
  if (a->client) {
    a->parts++;
    wr_client_stop(a->client, part_done, a);
  }
  a->client = NULL;
  if (a->ig) {
    a->parts++;
    wr_ingress_stop(a->ig, part_done, a);
  }
  a->ig = NULL;
  part_done(a);
}

static void on_left(void *ud) {
  app *a = ud;
  app_stop(a, a->exit_code);
}

/* Leaves the mesh (LEFT broadcast, a short grace of gossip), then stops;
 * without membership, stops now. */
static void leave_and_stop(app *a) {
  if (a->swim && !a->leaving && !a->stopping) {
    a->leaving = 1;
    a->exit_code = 0;
    a->self_since = uv_now(a->loop);
    wr_swim_uv_leave(a->swim, 0, on_left, a);
    return;
  }
  app_stop(a, 0);
}

/*
 * The drain's clock, every 100 ms.  The node has drained when, after at
 * least drain_wait_ms (time for load balancers to see /readyz fail and
 * stop sending new visitors), no visitor connection has anything in
 * flight, every tunnel client was told to move (GOAWAY) and had
 * WR_INGRESS_MOVE_GRACE_MS to bind elsewhere with nothing left on its
 * link, and no other node forwards a stream through us.  Then, or at
 * drain_timeout_ms whatever is left, idle keep-alive visitors are closed
 * and the node leaves the mesh.  Polling rather than events: the three
 * counts live in different modules, the cost is three list walks ten
 * times a second on a node that is going away, and 100 ms is far below
 * any timeout here.
 */
/* 250 ms: far above a loopback or LAN round trip (a request follows its
 * connect within one), small beside any drain timeout. */
#define UNLISTEN_GRACE_MS 250

static void drain_tick(uv_timer_t *t) {
  app *a = t->data;
  if (a->stopping) return;
  uint64_t now = uv_now(a->loop), elapsed = now - a->drain_start;
  wr_ingress_load_info l;
  memset(&l, 0, sizeof l);
  if (a->ig) wr_ingress_load(a->ig, &l);
  int quiet = l.busy == 0 && l.unmoved == 0 && l.relays == 0;
  int timed_out = elapsed >= a->drain_timeout_ms;
  /* Load balancers had their time: a tunnel still waiting for an idle
   * moment gets no new streams, so it empties and its client moves. */
  if (elapsed >= a->drain_wait_ms && a->ig) wr_ingress_drain_hard(a->ig);
  /* An inherited socket lives on in its holder (systemd, the supervisor
   * of an upgrade, or this process's own exec upgrade): visitors that would come to us wait in its
   * backlog for the next process, so stop accepting as soon as load
   * balancers had their time; a busy node would otherwise never be quiet
   * while the balancer, which cannot tell us from our successor, keeps
   * sending. */
  if (elapsed >= a->drain_wait_ms && !a->unlisten_at &&
      (a->listen_fd >= WR_LISTEN_FDS_START ||
       a->upgrade_state == UPGRADE_DRAINING)) {
    if (a->ig) wr_ingress_stop_accepting(a->ig);
    a->unlisten_at = now;
  }
  if (elapsed < a->drain_wait_ms || (!quiet && !timed_out)) return;
  /* Quiet: stop accepting first, and only then close the idle
   * connections, once nothing arrived on them for UNLISTEN_GRACE_MS: a
   * visitor that connected a moment ago may not have sent its request
   * yet (it is served, with "Connection: close").  With an inherited
   * socket (an upgrade) the socket itself stays open in its holder and
   * new visitors wait in its backlog for the next process. */
  if (!a->unlisten_at) {
    if (a->ig) wr_ingress_stop_accepting(a->ig);
    a->unlisten_at = now;
  }
  if (!timed_out && (now - a->unlisten_at < UNLISTEN_GRACE_MS || !quiet))
    return;
  uv_timer_stop(&a->drain_timer);
  size_t idle = a->ig ? wr_ingress_close_idle(a->ig) : 0;
  if (quiet)
    WR_LOG_INFOF("main", "drain_done",
                 "elapsed_ms=%llu idle_closed=%zu tunnels_left=%zu",
                 (unsigned long long)elapsed, idle, l.tunnels);
  else
    WR_LOG_WARNF("main", "drain_timeout",
                 "elapsed_ms=%llu busy=%zu unmoved=%zu relays=%zu "
                 "idle_closed=%zu",
                 (unsigned long long)elapsed, l.busy, l.unmoved, l.relays,
                 idle);
  leave_and_stop(a);
}

void app_drain(app *a, const char *why) {
  if (a->stopping || a->draining || a->leaving) return;
  a->draining = 1;
  a->drain_start = uv_now(a->loop);
  snprintf(a->drain_why, sizeof a->drain_why, "%s", why);
  WR_LOG_INFOF("main", "drain_started",
               "why=%s wait_ms=%llu timeout_ms=%llu", why,
               (unsigned long long)a->drain_wait_ms,
               (unsigned long long)a->drain_timeout_ms);
  if (a->ig) wr_ingress_drain(a->ig);
  if (a->mesh) wr_mesh_drain(a->mesh);
  uv_timer_init(a->loop, &a->drain_timer);
  a->drain_timer.data = a;
  uv_timer_start(&a->drain_timer, drain_tick, 100, 100);
}

static void on_signal(uv_signal_t *s, int sig) {
  app *a = s->data;
  WR_LOG_INFOF("main", "signal", "sig=%d", sig);
  if (a->stopping) return;
  /* A second signal during a drain or the leave's grace stops at once. */
  if (a->draining || a->leaving) {
    app_stop(a, 0);
    return;
  }
  if (sig == SIGTERM && a->drain_on_term) {
    app_drain(a, "sigterm");
    return;
  }
  if (a->ig) wr_ingress_drain(a->ig); /* clients move as the node goes */
  /* A member that leaves is "left" everywhere, never suspected or dead:
   * broadcast LEFT and keep gossiping for a short grace, then stop.  A
   * second signal during the grace stops at once (above). */
  leave_and_stop(a);
}

void setup_signals(app *a) {
  uv_signal_init(a->loop, &a->sigint);
  uv_signal_init(a->loop, &a->sigterm);
  a->sigint.data = a->sigterm.data = a;
  uv_signal_start(&a->sigint, on_signal, SIGINT);
  uv_signal_start(&a->sigterm, on_signal, SIGTERM);
}

/* ---- SIGHUP ---- */

/* Reads the --config file again and lays the command line's flags over
 * it, as at start (flags win).  0, or an error with one line in |err|. */
int reload_opts(const app *a, wr_node_opts *o, char *err, size_t errlen) {
  wr_node_opts_init(o);
  for (int i = 2; i + 1 < a->argc; i++) {
    if (strcmp(a->argv[i], "--config") != 0) continue;
    const char *path = a->argv[i + 1];
    FILE *f = fopen(path, "r");
    if (!f) {
      snprintf(err, errlen, "cannot read %s: %s", path, strerror(errno));
      return WR_ERR_IO;
    }
    /* The same 64 KiB bound as at start (cmd_node.c). */
    char *buf = malloc(65537);
    size_t n = buf ? fread(buf, 1, 65536, f) : 0;
    int big = buf && n == 65536 && fgetc(f) != EOF;
    fclose(f);
    if (!buf) {
      snprintf(err, errlen, "out of memory");
      return WR_ERR_NOMEM;
    }
    buf[n] = 0;
    int rv = 0;
    if (big) {
      snprintf(err, errlen, "%s is larger than 64 KiB", path);
      rv = WR_ERR_INVAL;
    } else if (memchr(buf, 0, n)) {
      snprintf(err, errlen, "%s is not a text file", path);
      rv = WR_ERR_INVAL;
    } else if (wr_node_opts_parse_ini(o, buf) != 0) {
      snprintf(err, errlen, "%s: %s", path, o->err);
      rv = WR_ERR_INVAL;
    }
    free(buf);
    if (rv != 0) return rv;
  }
  for (int i = 2; i < a->argc; i++) {
    const char *f = a->argv[i];
    if (strncmp(f, "--", 2) != 0) continue;
    if (!strcmp(f, "--faults") &&
        (i + 1 >= a->argc || a->argv[i + 1][0] == '-')) {
      o->faults = 1; /* a bare --faults, as cmd_node reads it */
      continue;
    }
    if (i + 1 >= a->argc) break;
    const char *v = a->argv[++i];
    if (!strcmp(f, "--config") || !wr_node_opts_known(f + 2)) continue;
    if (wr_node_opts_set(o, f + 2, v) != 0) {
      snprintf(err, errlen, "%s", o->err);
      return WR_ERR_INVAL;
    }
  }
  return 0;
}

/* Options a running node cannot take anew: its identity, its sockets,
 * its secrets and its place in the mesh.  A change is reported and left
 * for the next restart; the rest of the reload goes on. */
static void note_fixed(const wr_node_opts *old, const wr_node_opts *o) {
  static const struct {
    const char *name;
    size_t off;
  } fixed[] = {
      {"id", offsetof(wr_node_opts, id)},
      {"http", offsetof(wr_node_opts, http)},
      {"admin", offsetof(wr_node_opts, admin)},
      {"domain", offsetof(wr_node_opts, domain)},
      {"key-file", offsetof(wr_node_opts, key_file)},
      {"token", offsetof(wr_node_opts, token)},
      {"admin-token", offsetof(wr_node_opts, admin_token)},
      {"gossip", offsetof(wr_node_opts, gossip)},
      {"join", offsetof(wr_node_opts, join)},
      {"proxy-protocol-from", offsetof(wr_node_opts, proxy_from)},
      {"region", offsetof(wr_node_opts, region)},
      {"tags", offsetof(wr_node_opts, tags)},
      {"gossip-profile", offsetof(wr_node_opts, gossip_profile)},
      {"gossip-set", offsetof(wr_node_opts, gossip_set)},
      {"routes-set", offsetof(wr_node_opts, routes_set)},
  };
  for (size_t i = 0; i < WR_ARRAY_LEN(fixed); i++)
    if (strcmp((const char *)old + fixed[i].off,
               (const char *)o + fixed[i].off) != 0)
      WR_LOG_WARNF("main", "reload_needs_restart", "option=%s",
                   fixed[i].name);
}

/*
 * SIGHUP: the tokens file, the limits and timeouts (from the --config
 * file; flags still win), the drain bounds and the fault rules file.  All or nothing: every new value is read and checked first,
 * so a typo anywhere keeps every old setting (and says why) rather than
 * half a configuration, and never locks clients out.  Tunnels, node
 * links and visitors stay connected.
 */
void on_sighup(uv_signal_t *s, int sig) {
  (void)sig;
  app *a = s->data;
  if (a->stopping || a->draining) return;
  wr_node_opts o;
  wr_tokens *t = NULL;
  char err[400];
  int rv = reload_opts(a, &o, err, sizeof err);
  if (rv == 0 && o.tokens[0]) rv = load_tokens(o.tokens, &t, err, sizeof err);
  /* The fault rules last: wr_node_faults_reload applies what it read at
   * once (all or nothing itself), and nothing after it can fail.  Turning
   * fault injection on or off needs a restart (the taps are installed at
   * start); a node with it on takes its file anew. */
  if (rv == 0 && a->opts.faults && o.faults && o.faults_file[0])
    rv = wr_node_faults_reload(o.faults_file, err, sizeof err);
  if (rv != 0) {
    wr_tokens_del(t);
    if (a->m_reload_failed) (*a->m_reload_failed)++;
    WR_LOG_ERRORF("main", "reload_failed", "err=\"%s\" kept=old", err);
    return;
  }
  note_fixed(&a->opts, &o);
  if (!a->opts.faults != !o.faults)
    WR_LOG_WARNF("main", "reload_needs_restart", "option=faults");
  /* Tokens: a node started without --tokens gets none now either (an
   * open fleet does not close on a signal, nor the reverse). */
  if (a->tokens && t) {
    wr_tokens *old = a->tokens;
    a->tokens = t;
    snprintf(a->tokens_path, sizeof a->tokens_path, "%s", o.tokens);
    if (a->mesh) wr_mesh_set_tokens(a->mesh, t);
    wr_tokens_del(old);
    WR_LOG_INFOF("main", "reload", "what=tokens accounts=%zu tokens=%zu",
                 wr_tokens_accounts(t), wr_tokens_count(t));
  } else {
    if (t || (a->tokens && !o.tokens[0]))
      WR_LOG_WARNF("main", "reload_needs_restart", "option=tokens");
    wr_tokens_del(t);
  }
  if (a->ig) {
    wr_ingress_limits l = {
        .upstream_timeout_ms = o.upstream_ms,
        .idle_timeout_ms = o.idle_ms,
        .head_timeout_ms = o.head_ms,
        .body_min_rate = o.body_min_rate,
        .max_conns = (unsigned)o.max_conns,
        .max_conns_per_source = (unsigned)o.max_conns_per_ip,
    };
    wr_ingress_set_limits(a->ig, &l);
    wr_ingress_get_limits(a->ig, &l);
    WR_LOG_INFOF("main", "reload",
                 "what=limits upstream_ms=%llu idle_ms=%llu head_ms=%llu "
                 "body_min_rate=%llu max_conns=%u max_conns_per_ip=%u",
                 (unsigned long long)l.upstream_timeout_ms,
                 (unsigned long long)l.idle_timeout_ms,
                 (unsigned long long)l.head_timeout_ms,
                 (unsigned long long)l.body_min_rate, l.max_conns,
                 l.max_conns_per_source);
  }
  a->drain_timeout_ms = o.drain_timeout_ms;
  a->drain_wait_ms = o.drain_wait_ms;
  a->opts = o;
  if (a->m_reload_ok) (*a->m_reload_ok)++;
}

int run_loop(app *a) {
  uv_run(a->loop, UV_RUN_DEFAULT);
  /* Close stragglers (the force timer, the unreferenced loop-stall
   * handle) so the loop closes cleanly. */
  wr_loopstall_stop(&a->stall);
  if (a->stopping) uv_close((uv_handle_t *)&a->force, NULL);
  uv_run(a->loop, UV_RUN_DEFAULT);
  uv_loop_close(a->loop);
  wr_metrics_del(a->metrics);
  wr_tokens_del(a->tokens);
  return upgrade_exec(a);
}

/* ---- an inherited public socket ---- */

/*
 * Looks for a listening socket handed over in LISTEN_FDS (listenfds.h).
 * Sets a->listen_fd and returns 0 (also when there is none: -1); 1 with
 * a message on stderr when the variables are wrong or the descriptor is
 * not a listening TCP socket.  The variables are removed, so nothing
 * this process starts inherits them.
 */
int inherited_listener(app *a, const char *http) {
  a->listen_fd = -1;
  int fd;
  char err[200];
  int rv = wr_listen_fds_find(getenv("LISTEN_FDS"), getenv("LISTEN_PID"),
                              getenv("LISTEN_FDNAMES"), (long)getpid(),
                              "http", &fd, err, sizeof err);
  unsetenv("LISTEN_FDS");
  unsetenv("LISTEN_PID");
  unsetenv("LISTEN_FDNAMES");
  if (rv == 0) return 0;
  if (rv < 0) {
    fprintf(stderr, "warren: %s\n", err);
    return 1;
  }
  int type = 0, listening = 0;
  socklen_t l1 = sizeof type, l2 = sizeof listening;
  struct sockaddr_storage ss;
  socklen_t sl = sizeof ss;
  if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &l1) != 0 ||
      getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &l2) != 0 ||
      getsockname(fd, (struct sockaddr *)&ss, &sl) != 0 ||
      type != SOCK_STREAM || !listening ||
      (ss.ss_family != AF_INET && ss.ss_family != AF_INET6)) {
    fprintf(stderr, "warren: LISTEN_FDS: descriptor %d is not a listening "
                    "TCP socket\n", fd);
    return 1;
  }
  char ip[64] = "?";
  int port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
  if (ss.ss_family == AF_INET)
    uv_ip4_name((struct sockaddr_in *)&ss, ip, sizeof ip);
  else
    uv_ip6_name((struct sockaddr_in6 *)&ss, ip, sizeof ip);
  /* --http stays what the node advertises to the mesh; a socket on
   * another address is the operator's choice, but worth a line. */
  struct sockaddr_storage want;
  if (wr_parse_hostport(http, &want) == 0 &&
      ntohs(((struct sockaddr_in *)&want)->sin_port) != port)
    WR_LOG_WARNF("main", "inherited_socket_port", "http=%s socket_port=%d",
                 http, port);
  WR_LOG_INFOF("main", "inherited_socket", "fd=%d addr=%s port=%d", fd, ip,
               port);
  a->listen_fd = fd;
  return 0;
}

/*
 * With an inherited socket, visitors may already be waiting in its
 * backlog (queued while the previous process drained and exited).
 * Accepting them before the routes are known would answer 404, so the
 * node first joins the mesh, gives the join's state sync 500 ms (one TCP
 * exchange with one member, a few ms on a LAN), then accepts.  10 s at
 * most: a node whose seeds are all gone still serves what it can.
 */
#define ACCEPT_SETTLE_MS 500
#define ACCEPT_WAIT_MAX_MS 10000

static void accept_tick(uv_timer_t *t) {
  app *a = t->data;
  uint64_t now = uv_now(a->loop);
  if (a->stopping || !a->ig) {
    uv_timer_stop(t);
    return;
  }
  if (!a->joined_at && (!a->swim || !wr_swim_uv_joining(a->swim)))
    a->joined_at = now;
  if ((!a->joined_at || now - a->joined_at < ACCEPT_SETTLE_MS) &&
      now - a->accept_since < ACCEPT_WAIT_MAX_MS)
    return;
  uv_timer_stop(t);
  int rv = wr_ingress_accept(a->ig);
  if (rv != 0) {
    WR_LOG_ERRORF("main", "accept_failed", "err=\"%s\"", wr_strerror(rv));
    app_stop(a, 1);
    return;
  }
  WR_LOG_INFOF("main", "accepting", "waited_ms=%llu joined=%d",
               (unsigned long long)(now - a->accept_since),
               a->joined_at != 0);
}

void accept_when_joined(app *a) {
  uv_timer_init(a->loop, &a->accept_timer);
  a->accept_timer.data = a;
  a->accept_since = uv_now(a->loop);
  uv_timer_start(&a->accept_timer, accept_tick, 50, 50);
}

uint64_t parse_ms(const char *flag, const char *v, int *bad) {
  char *end;
  errno = 0;
  unsigned long long x = strtoull(v, &end, 10);
  if (*v == 0 || *end || errno || x == 0 || x > 86400000ULL) {
    usage_error("%s wants a number of milliseconds", flag);
    *bad = 1;
    return 0;
  }
  return x;
}

int start_ingress(app *a, const char *listen, const char *domain,
                         const uint8_t secret[32], const char *token,
                         uint64_t upstream_ms, uint64_t idle_ms,
                         uint64_t head_ms, uint64_t body_min_rate,
                         const char *proxy_from, uint64_t max_conns,
                         uint64_t max_conns_ip, uint64_t send_stall_ms,
                         uint64_t node_link_window, wr_metrics *m) {
  wr_ingress_config ic;
  memset(&ic, 0, sizeof ic);
  ic.listen = listen;
  ic.domain = domain;
  /* (fd 0, a zeroed app's, is never one: they start at 3) */
  if (a->listen_fd >= WR_LISTEN_FDS_START) {
    ic.have_listen_fd = 1;
    ic.listen_fd = a->listen_fd;
    ic.paused = 1;
  }
  ic.node_id = a->id;
  uint8_t pub[32];
  wr_keys_fleet_keypair(secret, pub, ic.fleet_priv);
  /* Node links need the mesh (owners are found through it). */
  if (a->mesh) {
    wr_keys_node_psk(secret, ic.node_psk);
    ic.have_node_psk = 1;
  }
  ic.token = token;
  ic.upstream_timeout_ms = upstream_ms;
  ic.idle_timeout_ms = idle_ms;
  ic.head_timeout_ms = head_ms;
  ic.body_min_rate = body_min_rate;
  ic.send_stall_ms = send_stall_ms;
  ic.node_link_window = (uint32_t)node_link_window;
  ic.proxy_from = proxy_from;
  ic.max_conns = (unsigned)max_conns;
  ic.max_conns_per_source = (unsigned)max_conns_ip;
  ic.metrics = m;
  if (a->mesh) wr_mesh_ingress_hooks(a->mesh, &ic);
  int rv = wr_ingress_start(&a->ig, a->loop, &ic);
  if (rv == 0 && a->mesh) wr_mesh_set_ingress(a->mesh, a->ig);
  sodium_memzero(ic.fleet_priv, 32);
  sodium_memzero(ic.node_psk, 32);
  if (rv != 0) {
    fprintf(stderr, "warren: cannot listen on %s: %s\n", listen,
            wr_strerror(rv));
    a->ig = NULL;
  }
  return rv;
}
