/*
 * warrenctl internals, split from main.c so that the unit tests
 * (tests/admin/test_warrenctl.c) can drive them without a server.
 *
 *   ctl_format.c  checks the JSON the admin API returns against the
 *                 contract (DESIGN.md "Command-line contract"), prints it
 *                 as tables or normalised JSON, and diffs two snapshots
 *                 for `watch`.
 *   ctl_http.c    a blocking HTTP/1.1 GET with a deadline (poll), its
 *                 response parsed by llhttp.
 */
#ifndef WARREN_CTL_H
#define WARREN_CTL_H

#include <signal.h>
#include <stdint.h>
#include <stdio.h>

#include <jansson.h>

/* The largest response warrenctl accepts (the server's own bound). */
#define CTL_MAX_RESPONSE (16u << 20)

/*
 * Shape checks.  Each takes the parsed body and, when it matches the
 * contract, returns a new normalised value holding exactly the contract's
 * fields in the contract's order (extra fields the server adds are
 * dropped from --json output, so scripts see a stable shape).  Otherwise
 * returns NULL and writes one line saying what is wrong into |err|.
 *
 *   members: [{"id","addr","state":"alive|suspect|dead|left","incarnation"}]
 *   routes:  [{"name","owner","account","version","state"}] ("account" null
 *            when an older node leaves it out; "serving" kept when sent)
 *   status:  {"id","members":{"alive","suspect","dead","left"},"routes",
 *             "routes_digest"}
 *   candidates (GET /routes?name=N):
 *            {"name","candidates":[{"owner","account","session","epoch",
 *             "seq","version","claimed_at","state","options","verdict",
 *             "why"}]}; owner, version, state and verdict are required,
 *             the others null when absent
 *
 * The _mesh variants keep what `mesh` needs beyond the contract: the
 * member's "admin" address, and the status's "members_digest",
 * "routes_digest_age_ms" and "members_digest_age_ms" (each only when the
 * node sends it).
 */
json_t *ctl_check_members(const json_t *j, char *err, size_t cap);
json_t *ctl_check_routes(const json_t *j, char *err, size_t cap);
json_t *ctl_check_status(const json_t *j, char *err, size_t cap);
json_t *ctl_check_candidates(const json_t *j, char *err, size_t cap);
json_t *ctl_check_members_mesh(const json_t *j, char *err, size_t cap);
json_t *ctl_check_status_mesh(const json_t *j, char *err, size_t cap);

/* Parses |len| bytes of JSON then runs |check|; same contract. */
json_t *ctl_parse_checked(const char *text, size_t len,
                          json_t *(*check)(const json_t *, char *, size_t),
                          char *err, size_t cap);

/* Human output: aligned tables with a header row, two spaces between
 * columns; "(no members)" / "(no routes)" when empty. */
void ctl_print_members(FILE *out, const json_t *members);
void ctl_print_routes(FILE *out, const json_t *routes);
void ctl_print_status(FILE *out, const json_t *status);
/*
 * routes --name: "NAME: 2 candidates, 1 serves", the table
 * OWNER ACCOUNT VERSION CLAIMED STATE VERDICT (CLAIMED in UTC), then
 * "why:" and one line per candidate ("  n1 v7 [balance]: ...").  No
 * candidates: the single line "no entry for NAME".
 */
void ctl_print_candidates(FILE *out, const json_t *answer);
/* --json output: compact JSON of the normalised value plus "\n". */
void ctl_print_json(FILE *out, const json_t *j);

/*
 * watch: compares two snapshots (normalised status and members; the old
 * pair NULL on the first poll, which prints the initial state) and prints
 * one line per change, each starting with |prefix| (a timestamp):
 *
 *   member node-3 joined (alive, incarnation 0)
 *   member node-3 alive -> suspect (incarnation 4)
 *   member node-3 incarnation 4 -> 5 (alive)
 *   member node-3 gone
 *   routes 12 -> 13 (digest 9f2c.. -> 01ab..)
 *   node id a -> b
 *
 * With |json| set, each change is one JSON object per line instead, e.g.
 * {"event":"member","id":"node-3","from":"alive","to":"suspect",
 *  "incarnation":4}.  Returns the number of lines printed.
 */
int ctl_watch_diff(FILE *out, const char *prefix, int json,
                   const json_t *old_status, const json_t *old_members,
                   const json_t *new_status, const json_t *new_members);

/*
 * status with several --admin addresses: one row per node and a verdict.
 * |admins[i]| is the address asked, |st[i]| its normalised status or NULL
 * when it could not be read (the row then says "unreachable").
 *
 *   ADMIN           NODE    ALIVE  SUSPECT  DEAD  LEFT  ROUTES  DIGEST
 *   127.0.0.1:9081  node-a  3      0        0     0     12      9f2c01ab
 *   ...
 *   converged: 3 nodes, 12 routes, digest 9f2c01ab
 *
 * The mesh has converged when every node answered and all report the same
 * routes_digest and member counts.  ctl_mesh_json builds
 * {"converged":bool,"nodes":[{"admin":..,"status":{...}|null},...]}.
 */
int ctl_mesh_converged(json_t *const *st, size_t n);
void ctl_print_mesh(FILE *out, const char *const *admins, json_t *const *st,
                    size_t n);
json_t *ctl_mesh_json(const char *const *admins, json_t *const *st, size_t n);

/* ---- mesh: the whole fleet from one node ------------------------------ */

/*
 * One live member (alive or suspect in the first node's view) and what
 * its own admin API said.  The caller fills it; ctl_mesh_analyse reads
 * it.  |status| is a ctl_check_status_mesh value, |members| a
 * ctl_check_members value; both NULL (and |error| set) when the node
 * could not be asked.
 */
typedef struct ctl_mesh_node {
  char id[128];
  char admin[280];  /* "" = the member advertises no admin address */
  char state[16];   /* "alive" or "suspect" */
  json_t *status;   /* owned */
  json_t *members;  /* owned */
  char error[200];  /* why status/members are missing */
} ctl_mesh_node;

/*
 * Builds the report (docs/ADMIN.md "warrenctl mesh --json"):
 * {"via","id","members","live","asked","reachable","converged",
 *  "routes":{"converged","groups":[...],"differences":[...],
 *            "differences_total"},
 *  "members_view":{...same...},"nodes":[...],"unreachable":[...]}.
 * |member_count| is the size of the first node's member list.  Route
 * differences are empty until ctl_mesh_add_route_diffs.  NULL when out of
 * memory.
 */
json_t *ctl_mesh_analyse(const char *via, const char *via_id,
                         size_t member_count, const ctl_mesh_node *nodes,
                         size_t n);
/* Index into |nodes| of the node whose /routes stands for routes group |g|
 * (the first reachable node of the group), or -1 past the last group. */
long ctl_mesh_group_rep(const json_t *report, const ctl_mesh_node *nodes,
                        size_t n, size_t g);
/* Diffs the route tables of the groups: |tables[g]| is group g's
 * ctl_check_routes value or NULL (|errors[g]| then says why). */
void ctl_mesh_add_route_diffs(json_t *report, json_t *const *tables,
                              const char *const *errors);
/* Human output: every node one line up to |table_max| live members, then
 * a summary (groups, the first 10 differences, a few unreachable). */
void ctl_print_mesh_report(FILE *out, const json_t *report, size_t table_max);
/* 0 converged, 3 not converged (the exit status of `mesh`). */
int ctl_mesh_exit(const json_t *report);

/* ---- HTTP -------------------------------------------------------------- */

typedef struct ctl_target {
  char host[256]; /* without brackets */
  char port[8];
  char display[280]; /* "HOST:PORT" as the user wrote it, for messages */
} ctl_target;

/* Set by warrenctl's SIGINT/SIGTERM handler: a request in progress gives
 * up at once ("interrupted") instead of waiting out its timeout. */
extern volatile sig_atomic_t ctl_interrupted;

/* Parses "HOST:PORT" or "[V6]:PORT".  Returns 0 or -1. */
int ctl_parse_target(const char *s, ctl_target *t);

typedef struct ctl_response {
  int status;
  char *body; /* malloc'd, NUL-terminated; free() it */
  size_t len;
} ctl_response;

/*
 * GET |path| with "Authorization: Bearer |token|" when token is non-NULL
 * and non-empty, within |timeout_ms| in total.  Returns 0 and fills |resp|,
 * or -1 with one lower-case line in |err| ("connection refused",
 * "timed out after 5000 ms", "malformed HTTP response: ...").
 */
int ctl_http_get(const ctl_target *t, const char *path, const char *token,
                 int timeout_ms, ctl_response *resp, char *err, size_t cap);

/* The same with any |method| and, unless NULL, a JSON |body| (sent with
 * Content-Type and Content-Length; POST and PUT send a length even when
 * empty). */
int ctl_http_request(const ctl_target *t, const char *method,
                     const char *path, const char *token, const char *body,
                     size_t body_len, int timeout_ms, ctl_response *resp,
                     char *err, size_t cap);

/* `drain [--wait]` (ctl_drain.c): POST /drain, then with |wait| poll
 * until the node's admin API stops answering; the exit status. */
int ctl_drain_run(const ctl_target *t, const char *token, int timeout_ms,
                  int json, int wait);
/* `upgrade [--wait]` (ctl_drain.c): POST /upgrade, then with |wait| poll
 * GET /status until a successor answers or the upgrade is refused. */
int ctl_upgrade_run(const ctl_target *t, const char *token, int timeout_ms,
                    int json, int wait);

/*
 * Parses a complete HTTP/1.1 response held in |data| (sans-IO half of
 * ctl_http_get, also used by the tests).  Returns 1 when complete (status
 * and body filled, body malloc'd), 0 when more bytes are needed, -1 on a
 * malformed response (|err| filled).  |eof| says the peer closed, which
 * completes a body without Content-Length.
 */
int ctl_http_parse(const char *data, size_t len, int eof, ctl_response *resp,
                   char *err, size_t cap);

/* One request of ctl_http_get_many. */
typedef struct ctl_get {
  ctl_target target; /* in */
  const char *path;  /* in, e.g. "/status" */
  int rv;            /* out: 0 answered (resp filled), -1 failed (err) */
  ctl_response resp; /* out: free(resp.body) when rv == 0 */
  char err[160];     /* out: one lower-case line, as ctl_http_get */
} ctl_get;

/*
 * Runs the |n| GETs concurrently, at most |parallel| (1..CTL_MAX_PARALLEL)
 * connections at a time, each within |timeout_ms| of its own start and
 * all within |budget_ms| of the call: a GET not started by then fails
 * with "not asked: overall time limit reached".  Never blocks longer than
 * |budget_ms| plus name resolution (numeric addresses resolve at once;
 * host names go through a blocking getaddrinfo).
 */
#define CTL_MAX_PARALLEL 64
void ctl_http_get_many(ctl_get *gets, size_t n, const char *token,
                       int timeout_ms, int budget_ms, unsigned parallel);

/* ---- fault (ctl_fault.c) ------------------------------------------------ */

/* "50ms", "3s", "1.5s", "2m" -> whole milliseconds <= |max_ms|; 0 or -1. */
int ctl_fault_duration(const char *s, uint64_t max_ms, uint64_t *out);
/* The rule JSON of `fault add OPTIONS` (|partition| 0) or `fault
 * partition IDS [--for T]` (1); NULL after a usage line, |*rc| = 2. */
json_t *ctl_fault_rule_args(int argc, char **argv, int partition, int *rc);
/* The text of `fault list` from a GET /faults answer; -1 on a bad shape. */
int ctl_fault_print_list(FILE *out, const json_t *j);
/* Runs `fault ARGS...` (argv[0] is the subcommand); the exit status. */
int ctl_fault_run(const ctl_target *t, const char *token, int timeout_ms,
                  int json, int argc, char **argv);

#endif
