/*
 * The running program shared by `warren node` and `warren http`: the
 * shutdown order, signals, SIGHUP reload, and starting the ingress.
 */
#include <errno.h>
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

static void on_signal(uv_signal_t *s, int sig) {
  app *a = s->data;
  WR_LOG_INFOF("main", "signal", "sig=%d", sig);
  if (a->ig && !a->stopping && sig == SIGTERM) wr_ingress_drain(a->ig);
  /* A member that leaves is "left" everywhere, never suspected or dead:
   * broadcast LEFT and keep gossiping for a short grace, then stop.  A
   * second signal during the grace stops at once. */
  if (a->swim && !a->leaving && !a->stopping) {
    a->leaving = 1;
    a->exit_code = 0;
    a->self_since = uv_now(a->loop);
    wr_swim_uv_leave(a->swim, 0, on_left, a);
    return;
  }
  app_stop(a, 0);
}

void setup_signals(app *a) {
  uv_signal_init(a->loop, &a->sigint);
  uv_signal_init(a->loop, &a->sigterm);
  a->sigint.data = a->sigterm.data = a;
  uv_signal_start(&a->sigint, on_signal, SIGINT);
  uv_signal_start(&a->sigterm, on_signal, SIGTERM);
}

/* SIGHUP: reload the tokens file.  A bad file keeps the old table (and
 * says why): a typo must not lock every client out. */
void on_sighup(uv_signal_t *s, int sig) {
  (void)sig;
  app *a = s->data;
  if (!a->tokens_path[0]) {
    WR_LOG_INFOF("main", "reload", "what=nothing reason=\"no --tokens\"");
    return;
  }
  wr_tokens *t = NULL;
  char err[400];
  if (load_tokens(a->tokens_path, &t, err, sizeof err) != 0) {
    WR_LOG_ERRORF("main", "reload_failed", "what=tokens err=\"%s\" "
                  "kept=old", err);
    return;
  }
  wr_tokens *old = a->tokens;
  a->tokens = t;
  if (a->mesh) wr_mesh_set_tokens(a->mesh, t);
  wr_tokens_del(old);
  WR_LOG_INFOF("main", "reload", "what=tokens accounts=%zu tokens=%zu",
               wr_tokens_accounts(t), wr_tokens_count(t));
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
  return a->exit_code;
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
                         uint64_t max_conns_ip,
                         wr_metrics *m) {
  wr_ingress_config ic;
  memset(&ic, 0, sizeof ic);
  ic.listen = listen;
  ic.domain = domain;
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
