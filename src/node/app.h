/*
 * The `warren` program's shared state and the functions its files share
 * (main.c, app.c, cmd_node.c, cmd_http.c, node_admin.c, node_swim.c).
 * Not a library interface: one program, split by job.
 */
#ifndef WARREN_NODE_APP_H
#define WARREN_NODE_APP_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>
#include <uv.h>

#include "warren/admin.h"
#include "warren/client.h"
#include "warren/err.h"
#include "warren/ingress.h"
#include "warren/inspect_uv.h"
#include "warren/noise.h"
#include "warren/link.h"
#include "warren/log.h"
#include "warren/metrics.h"
#include "warren/swim_uv.h"
#include "warren/control.h"
#include "warren/identity.h"
#include "seeds.h"
#include "listenfds.h"

#include "config.h"
#include "tags.h"
#include "loopstall.h"
#include "mesh.h"
#include "tokens.h"

#define KEY_FILE_MAX 4096

typedef struct app {
  uv_loop_t *loop;
  uv_signal_t sigint, sigterm, sighup;
  uv_timer_t force;
  wr_ingress *ig;
  wr_client *client;
  wr_admin *admin;
  wr_inspector *inspector; /* warren http: the request inspector */
  wr_metrics *metrics;
  int local_port;
  int exit_code;
  int stopping;
  int parts;             /* parts still stopping before the admin closes */
  char id[128];
  char gossip[128];
  char http[128];
  /* Membership (NULL when the node runs alone).  The keyring must outlive
   * the core, so it lives here, in cmd_node's frame. */
  wr_swim_uv *swim;
  wr_loopstall stall; /* warren_loop_stall_* in /metrics */
  wr_swim_keyring keyring;
  /* The routes table and its wiring (warren node only). */
  wr_mesh *mesh;
  /* --tokens FILE: accounts, replaced whole on SIGHUP (NULL: none). */
  char tokens_path[1024];
  wr_tokens *tokens;
  int leaving;
  uint64_t self_since; /* uv_now when our own state last changed */
  /* Graceful drain (warren node: SIGTERM, POST /drain; docs/DEPLOY.md).
   * drain_wait_ms: the least time the node keeps serving after the drain
   * starts, so load balancers see /readyz fail and stop sending first;
   * drain_timeout_ms: the most it waits for requests in flight. */
  int drain_on_term;     /* SIGTERM drains (warren node), else it leaves */
  int draining;
  uint64_t drain_start, drain_wait_ms, drain_timeout_ms;
  uint64_t unlisten_at;  /* the drain stopped accepting (0: not yet) */
  uv_timer_t drain_timer;
  char drain_why[32];
  /* SIGHUP: the command line and --config file, read again whole. */
  int argc;
  char **argv;
  char config_path[1024];
  wr_node_opts opts;     /* in force (flags over the --config file) */
  /* An inherited public socket (LISTEN_FDS: systemd socket activation,
   * or an in-place upgrade; docs/DEPLOY.md): -1 when none.  With one,
   * accepting waits until the node has joined the mesh (accept_timer). */
  int listen_fd;
  uv_timer_t accept_timer;
  uint64_t accept_since, joined_at;
  /* In-place upgrade by exec (upgrade.c): the binary's path as started,
   * the check of the new one, and the kept listening socket. */
  char exe[1024];
  uint64_t started_ms; /* wall clock: tells a successor from us */
  int upgrade_state;   /* UPGRADE_* */
  char upgrade_err[200];
  int upgrade_fd;      /* -1, or the socket kept across the drain */
  uv_process_t upgrade_proc;
  uv_timer_t upgrade_timer;
  uv_signal_t sigusr2;
  uint64_t *m_upgrade_refused;
  uint64_t *m_reload_ok, *m_reload_failed; /* SIGHUP outcomes */
  /* Latest version per "event/" user key (POST /events), bounded: the
   * core re-queues every USER copy the callback calls news. */
  struct {
    char key[WR_SWIM_ID_MAX + 1];
    uint64_t version, seen;
  } ev[64];
  size_t nev;
  uint64_t *m_swim[48];
  int64_t *g_swim[8];
} app;

/* upgrade.c */
enum { UPGRADE_IDLE, UPGRADE_CHECKING, UPGRADE_DRAINING, UPGRADE_FAILED };
const char *upgrade_state_name(int s);
/* At start: the binary's path and the start time. */
void upgrade_init(app *a);
/* Checks the binary, then drains; 0 when the check started, else an
 * error with one line in |err| (the node goes on serving). */
int app_upgrade(app *a, char *err, size_t errlen);
/* After the loop ended: execs the new binary when an upgrade drained
 * (does not return then); else the exit code to return. */
int upgrade_exec(app *a);
void on_sigusr2(uv_signal_t *s, int sig);

/* main.c */
__attribute__((format(printf, 1, 2))) int usage_error(const char *fmt, ...);
int print_version(void);
int read_secret(const char *path, uint8_t secret[32]);

/* app.c */
int load_tokens(const char *path, wr_tokens **pt, char *err, size_t errlen);
void app_stop(app *a, int code);
void app_drain(app *a, const char *why);
void setup_signals(app *a);
void on_sighup(uv_signal_t *s, int sig);
int reload_opts(const app *a, wr_node_opts *o, char *err, size_t errlen);
int run_loop(app *a);
uint64_t parse_ms(const char *flag, const char *v, int *bad);
int inherited_listener(app *a, const char *http);
void accept_when_joined(app *a);
int start_ingress(app *a, const char *listen, const char *domain,
                  const uint8_t secret[32], const char *token,
                  uint64_t upstream_ms, uint64_t idle_ms, uint64_t head_ms,
                  uint64_t body_min_rate, const char *proxy_from,
                  uint64_t max_conns, uint64_t max_conns_ip,
                  uint64_t send_stall_ms, uint64_t node_link_window,
                  wr_metrics *m);

/* node_admin.c */
void count_members(app *a, json_int_t c[4]);
int event_seen(app *a, const char *key, uint64_t version, uint64_t now);
void mesh_collect(void *ud);
int start_admin(app *a, const char *listen, const char *token);

/* node_swim.c */
int printable_word(const char *s);
int is_wildcard(const struct sockaddr_storage *ss);
int apply_gossip_set(wr_swim_config *c, const char *list, char *err,
                     size_t errlen);
int start_swim(app *a, const wr_node_opts *o, const uint8_t secret[32]);

/* cmd_node.c, cmd_http.c */
int cmd_node(int argc, char **argv);
int cmd_http(int argc, char **argv);

#endif
