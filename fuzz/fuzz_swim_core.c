/* libFuzzer target: the SWIM core driven by a script.  The input is a
 * sequence of steps:
 *   0x00 u16 ms            advance virtual time, tick
 *   0x01 u8 who u16 len .. one datagram from member |who| (identity seal,
 *                          so the fuzzer reaches the codec and the rules)
 *   0x02 u16 len ..        bytes on an anti-entropy stream (responder)
 *   0x03                   start an initiator sync session instead
 *   0x04                   leave
 *   0x09 u8 key u8 version the application stores USER entry "u/<key % 8>"
 *                          (a |version|-byte payload)
 *   0xF0 | who             a datagram we sent to member |who| was refused
 *                          (ICMP port unreachable)
 * (Below 0xF0 the op is the byte mod 5, except that op % 5 == 4 is leave
 * when (byte / 5) is even and the USER store otherwise: seeds written
 * before 0x09 existed keep their meaning.)  The application keeps a small
 * USER table (newer version wins) behind user_update.  After every step
 * the core's output is drained.  The core must never crash, leak, hang
 * (deadline must move forward once ticked), or grow its table past what
 * the packets named; a USER entry never goes back to an older version;
 * the member table's bucket digest, kept as the table changes, always
 * equals one recomputed from the members (src/swim/digest.c). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "swim_int.h"
#include "warren/pcg.h"
#include "warren/swim.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static wr_addr addr_of(uint8_t who) {
  wr_addr a = {.family = 4, .ip = {127, 0, 0, (uint8_t)(who % 8 + 1)},
               .port = 7946};
  return a;
}

static size_t updates_seen;

static void on_member(wr_swim *sw, const wr_swim_member_info *m, void *ud) {
  (void)sw, (void)m, (void)ud;
  updates_seen++;
}

/* The application's USER table. */
#define UKEYS 16
static struct {
  char key[WR_SWIM_ID_MAX + 1];
  uint64_t version;
  uint16_t len;
  uint8_t payload[WR_SWIM_USER_MAX];
} ustore[UKEYS];
static size_t nustore;

/* 1 when stored (newer than what we held). */
static int ustore_set(const char *key, uint64_t version, const uint8_t *p,
                      size_t len) {
  size_t k = 0;
  while (k < nustore && strcmp(ustore[k].key, key) != 0) k++;
  if (k < nustore && ustore[k].version >= version) return 0;
  if (k == nustore) {
    if (nustore == UKEYS) return 0;
    nustore++;
    snprintf(ustore[k].key, sizeof ustore[k].key, "%s", key);
  }
  if (len > WR_SWIM_USER_MAX) abort(); /* the codec bounds it */
  ustore[k].version = version;
  ustore[k].len = (uint16_t)len;
  if (len) memcpy(ustore[k].payload, p, len);
  return 1;
}

static int on_user(wr_swim *sw, const wr_swim_update *u, void *ud) {
  (void)sw, (void)ud;
  if (u->kind != WR_SWIM_UPD_USER || !u->key[0]) abort();
  return ustore_set(u->key, u->version, u->payload, u->payload_len);
}

/* The incremental bucket digest equals the recomputed one, at the fine
 * level and folded. */
static void check_digest(wr_swim *sw) {
  static uint64_t a[256], b[256];
  swim_members *t = swim_core_table(sw);
  for (size_t nb = 1; nb <= 256; nb *= 4) {
    memset(a, 0, nb * sizeof *a);
    swim_digest_xor(t, a, nb, 0);
    swim_digest_recompute(t, b, nb);
    if (memcmp(a, b, nb * sizeof *a) != 0) abort();
  }
}

static void drain(wr_swim *sw, wr_swim_sync *s, wr_tstamp now) {
  static uint8_t buf[WR_SWIM_DATAGRAM_MAX];
  wr_addr to;
  int guard = 0;
  while (wr_swim_send(sw, &to, buf, sizeof buf, now) > 0)
    if (++guard > 100000) abort(); /* the outbox is bounded */
  if (s) {
    const uint8_t *d;
    wr_ssize n = wr_swim_sync_send(s, &d);
    if (n > 0) wr_swim_sync_consumed(s, (size_t)n);
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  wr_pcg32 rng;
  wr_pcg32_seed(&rng, 1, 2);
  wr_swim_config cfg;
  wr_swim_config_default(&cfg);
  strcpy(cfg.id, "n0");
  cfg.gossip = addr_of(0);
  cfg.rand = wr_pcg32_fill;
  cfg.rand_user_data = &rng;
  wr_swim_callbacks cb = {.member_changed = on_member,
                          .user_update = on_user};
  nustore = 0;
  wr_tstamp now = 1000;
  wr_swim *sw;
  if (wr_swim_new(&sw, &cfg, &cb, NULL, NULL, NULL, now) != 0) abort();
  for (uint8_t i = 1; i < 4; i++) {
    char id[8] = {'n', (char)('0' + i), 0};
    wr_addr a = addr_of(i);
    wr_swim_add_member(sw, id, &a, NULL, 0, now);
  }
  wr_swim_sync *s = NULL;
  size_t off = 0;
  while (off < size) {
    uint8_t op = data[off++];
    uint16_t len;
    if (op >= 0xF0) {
      wr_addr to = addr_of(op & 0x0F);
      wr_swim_unreachable(sw, &to, now);
      drain(sw, s, now);
      continue;
    }
    switch (op % 5) {
    case 0:
      if (size - off < 2) goto out;
      now += (uint16_t)(data[off] << 8 | data[off + 1]);
      off += 2;
      wr_swim_tick(sw, now);
      if (wr_swim_deadline(sw) < now) abort(); /* ticked: nothing overdue */
      break;
    case 1: {
      if (size - off < 3) goto out;
      wr_addr from = addr_of(data[off]);
      len = (uint16_t)(data[off + 1] << 8 | data[off + 2]);
      off += 3;
      if (len > size - off) len = (uint16_t)(size - off);
      wr_swim_recv(sw, &from, data + off, len, now);
      off += len;
      break;
    }
    case 2:
      if (size - off < 2) goto out;
      len = (uint16_t)(data[off] << 8 | data[off + 1]);
      off += 2;
      if (len > size - off) len = (uint16_t)(size - off);
      if (!s && wr_swim_sync_new(sw, &s, 0, now) != 0) abort();
      if (wr_swim_sync_recv(s, data + off, len, now) != 0) {
        wr_swim_sync_del(s);
        s = NULL;
      }
      off += len;
      break;
    case 3:
      wr_swim_sync_del(s);
      if (wr_swim_sync_new(sw, &s, 1, now) != 0) abort();
      break;
    default:
      if ((op / 5) % 2 == 0) {
        wr_swim_leave(sw, now);
      } else {
        if (size - off < 2) goto out;
        char key[8] = {'u', '/', (char)('0' + data[off] % 8), 0};
        uint8_t p[255];
        memset(p, 'p', sizeof p);
        ustore_set(key, data[off + 1], p, data[off + 1]);
        off += 2;
      }
      break;
    }
    drain(sw, s, now);
    wr_addr peer;
    wr_swim_sync_due(sw, &peer, now);
    check_digest(sw);
  }
out:
  wr_swim_sync_del(s);
  /* Every member is one we added or one a packet named. */
  if (wr_swim_member_count(sw) > 3 + updates_seen) abort();
  wr_swim_del(sw);
  updates_seen = 0;
  return 0;
}
