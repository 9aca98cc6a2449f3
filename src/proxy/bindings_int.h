/*
 * Tunnel bindings' internals, shared by their files (see bindings.h for
 * the API and bindings.c for the states):
 *   bindings.c         the table name -> link, visitors held for a GONE
 *                      binding, client links' life, draining, eviction;
 *   bindings_ctl.c     the control server: Hello (token, identity), Bind,
 *                      and slowing down addresses that keep failing;
 *   bindings_stream.c  visitors' streams on a client link (tstream_*).
 * A libuv adapter: not for the sans-IO cores.
 */
#ifndef WR_PROXY_BINDINGS_INT_H
#define WR_PROXY_BINDINGS_INT_H

#include <sodium.h>

#include "bindings.h"
#include "warren/control.h"
#include "warren/routes.h"

#define TABLE_BUCKETS 4096

/*
 * Authentication failures are remembered per source address (the peer
 * without its port) in a small table, evicting the least recently seen
 * address when full: 256 entries of ~90 bytes keep the memory fixed
 * whatever an attacker spreads its guesses over.  Within one window of
 * FAIL_WINDOW_MS, only the first failure of an address is logged; the
 * others are counted and summed up in one line when the window ends.
 */
#define FAIL_TABLE_SIZE 256
#define FAIL_WINDOW_MS 60000
/*
 * Slowing down: an address's first FAIL_FREE failures in a window cost
 * nothing (a person who mistyped the token twice is not punished; the
 * client stops at the first BAD_TOKEN anyway), then each Hello waits
 * 500 ms, 1 s, 2 s, ... up to 16 s after the previous answer to that
 * address.  Within one minute that is 3 + 6 guesses (0.5+1+...+16 =
 * 31.5 s) and then ~2 more, about 11 a minute, against tokens of 128
 * random bits or more: the point is not the keyspace but the handshakes,
 * log lines and lookups an address can make the node do.  MAX_HELD links
 * of ~2 held messages (a few KiB each) bound the memory it costs.
 */
#define FAIL_FREE 3
#define FAIL_DELAY_BASE_MS 500
#define FAIL_DELAY_MAX_MS 16000
#define MAX_HELD 256

typedef struct tunnel tunnel;

enum tl_state { TL_HELLO, TL_READY, TL_BOUND, TL_FAILED };

struct tlink {
  bindings *b;
  wr_link *link;
  enum tl_state state;
  tunnel *bound;
  tstream *streams; /* visitors' streams on this link */
  tlink *prev, *next;
  uint32_t nstreams;
  /* Draining (bindings_drain): the link's client is told to move
   * (GOAWAY) only once no stream is on it, since a client closes the
   * link when told; until then the link finishes what it carries.
   * goaway_due: waiting for that; no_new: no new stream may open on it
   * (bindings_lookup answers MOVING), set with the GOAWAY or when
   * bindings_drain_hard gives up waiting for an idle moment. */
  int goaway_due, goaway_sent, no_new;
  uint64_t goaway_at;  /* when the GOAWAY went */
  uint32_t options;    /* Bind options */
  uint8_t session[16]; /* Bind session (all zero: none sent) */
  char peer[64];
  char account[WR_ROUTE_ACCOUNT_MAX + 1]; /* from authorize, at Hello */
  /* A Hello held back (slowing down), and at most one message after it
   * (a client's Bind); due: when to go on. */
  wr_control_msg *held[2];
  int nheld;
  uint64_t due;
  tlink *hprev, *hnext; /* on b->held, while nheld > 0 */
};

struct tunnel {
  tunnel *next;          /* hash chain */
  tunnel *gprev, *gnext; /* in the GONE FIFO, while gone */
  char name[WR_CONTROL_NAME_MAX + 1];
  tlink *tl; /* NULL while gone */
  uint64_t gone_at;
  uint64_t version;
  uint8_t session[16]; /* of the client that bound it */
  tstream *waiters;    /* visitors held for its client (GONE only) */
  uint32_t nwait;
};

struct bindings {
  uv_loop_t *loop;
  tstream_events ev;
  void (*url)(void *ud, const char *name, char *out, size_t cap);
  void *url_ud;
  uint8_t fleet_priv[32];
  wr_noise_replay *replay;
  char node_id[128], token[WR_CONTROL_TOKEN_MAX + 1];
  uint64_t gone_grace;
  /* routes hooks */
  void *routes_ud;
  int (*bind_check)(void *, const char *, const char *, const uint8_t *,
                    uint32_t);
  void (*bound)(void *, const char *, const char *, const uint8_t *, uint32_t);
  void (*unbound)(void *, const char *, const uint8_t *);
  int (*lookup_remote)(void *, const char *, char *, size_t);
  int (*authorize)(void *, const char *, const char *, char *, size_t);
  tunnel *table[TABLE_BUCKETS];
  uint8_t hash_key[crypto_shorthash_KEYBYTES]; /* name_hash's, per ingress */
  size_t ntunnels;
  tunnel *ghead, *gtail; /* GONE FIFO, oldest first */
  uv_timer_t sweep;
  tlink *tlinks;
  uint64_t version_clock;
  int draining, stopping, sweep_closed; /* 4: sweep, slow, hold, goaway */
  uv_timer_t goaway; /* sends the GOAWAYs due, one loop turn after a
                        link's last stream ended (never from inside the
                        mux callback that ended it) */
  void (*done)(void *);
  void *done_ud;
  uint64_t *m_tunnel_bad, *m_auth_fail;
  uint64_t *m_held_resumed, *m_held_failed, *m_released_early;
  int64_t *g_tunnels;
  /* Authentication failures per source address, for folding log lines. */
  struct fail_entry {
    char addr[64];
    uint64_t window_start, last;
    uint32_t fails, suppressed;
    uint64_t next_at; /* the next held Hello of this address goes on */
  } fails[FAIL_TABLE_SIZE];
  tlink *held; /* links whose Hello is held */
  size_t nheld;
  uv_timer_t slow; /* at the earliest due of b->held */
  uv_timer_t hold; /* at the earliest wait_until of the held visitors */
  size_t nwaiting;
};

/* Who a client is, for the routes hooks: decided once, at its Hello. */
static inline const char *bind_account(const tlink *tl) { return tl->account; }

extern const uint8_t bindings_no_session[16]; /* no Bind session */

/* bindings.c */
void waiters_resume(bindings *b, tunnel *t, tlink *tl);
tunnel *table_find(bindings *b, const char *name);
uint32_t name_hash(const bindings *b, const char *s);
void gone_unlink(bindings *b, tunnel *t);
void arm_sweep(bindings *b);
void send_goaway(tlink *tl);

/* bindings_ctl.c */
void held_unlink(tlink *tl);
int tl_on_control(wr_link *l, const uint8_t *msg, size_t len, void *ud);
void send_error(tlink *tl, uint32_t code, const char *name, const char *msg);
int send_control(tlink *tl, const wr_control_msg *m);

/* bindings_stream.c */
void stream_unlink(tstream *s);
int tl_on_open(wr_link *l, uint32_t sid, const uint8_t *meta, size_t len,
               void *ud);
int tl_on_data(wr_link *l, uint32_t sid, void *sud, uint8_t *buf, size_t len,
               void *ud);
int tl_on_fin(wr_link *l, uint32_t sid, void *sud, void *ud);
int tl_on_close(wr_link *l, uint32_t sid, void *sud, int64_t code, int by_peer,
                void *ud);
int tl_on_writable(wr_link *l, uint32_t sid, void *sud, void *ud);

#endif
