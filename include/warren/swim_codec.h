/*
 * SWIM wire codec (src/swim/codec.c): the plaintext inside a sealed gossip
 * packet (swim_seal.h).  One packet is one protocol message plus as many
 * piggybacked membership/user updates as fit in WR_SWIM_PACKET_MAX:
 *
 *   packet  = u8 version | u8 type | u32 seq | str from | body
 *             | u8 nupdates | update*
 *   body    = PING: str target     (the id we mean to probe; a restarted
 *                                   process at the same address is not it;
 *                                   empty = a join probe, "whoever you are")
 *             ACK, NACK, NACK_REFUSED, GOSSIP: nothing
 *             PING_REQ: str target | addr target_addr
 *   update  = u8 kind | str id | u32 incarnation | kind body
 *             ALIVE: addr gossip | addr data | str region | str tags
 *             SUSPECT, DEAD: str from   (who declared it: Lifeguard counts
 *                                        independent confirmations)
 *             LEFT: nothing
 *             USER: str key | u64 version | u16 len | bytes
 *                   (the ownership table's broadcasts ride here)
 *   addr    = u8 family (4|6) | 4 or 16 bytes | u16 port
 *   str     = u8 len | bytes   (printable ASCII, no spaces; ids <= 64)
 *
 * Integers are big-endian.  Decoding is strict and bounded: every length
 * is checked against what is left, unknown types and trailing bytes are
 * errors, and nothing is allocated (USER payloads are views into the
 * input).  Why a hand-written codec here when DESIGN.md says protobuf-c for
 * structured messages: see docs/SWIM.md ("Wire format").
 */
#ifndef WARREN_SWIM_CODEC_H
#define WARREN_SWIM_CODEC_H

#include "warren/types.h"

#define WR_SWIM_WIRE_VERSION 1
/* A compound packet fits one Ethernet MTU after IP/UDP headers and the
 * 45-byte seal (DESIGN.md: "within one MTU (about 1400 bytes)"). */
#define WR_SWIM_PACKET_MAX 1400
#define WR_SWIM_ID_MAX 64
#define WR_SWIM_REGION_MAX 32
/* Tags are "k=v,k=v" (no spaces): enough for role/zone/version labels. */
#define WR_SWIM_TAGS_MAX 128
#define WR_SWIM_UPDATES_MAX 64
#define WR_SWIM_USER_MAX 1024

typedef enum wr_swim_msg_type {
  WR_SWIM_PING = 1,
  WR_SWIM_ACK = 2,
  WR_SWIM_PING_REQ = 3,
  WR_SWIM_NACK = 4,
  /* Pure dissemination: updates only, no reply expected. */
  WR_SWIM_GOSSIP = 5,
  /* A NACK from a ping-req relay whose ping of the target was refused
   * (ICMP port unreachable: the target's host is up but nothing listens
   * on its gossip port), sent as soon as the refusal arrives. */
  WR_SWIM_NACK_REFUSED = 6,
} wr_swim_msg_type;
#define WR_SWIM_MSG_TYPE_MAX WR_SWIM_NACK_REFUSED

typedef enum wr_swim_update_kind {
  WR_SWIM_UPD_ALIVE = 1,
  WR_SWIM_UPD_SUSPECT = 2,
  WR_SWIM_UPD_DEAD = 3,
  WR_SWIM_UPD_LEFT = 4,
  WR_SWIM_UPD_USER = 5,
} wr_swim_update_kind;

typedef struct wr_swim_update {
  uint8_t kind;
  char id[WR_SWIM_ID_MAX + 1];
  uint32_t incarnation;
  /* ALIVE */
  wr_addr gossip, data;
  char region[WR_SWIM_REGION_MAX + 1];
  char tags[WR_SWIM_TAGS_MAX + 1];
  /* SUSPECT, DEAD */
  char from[WR_SWIM_ID_MAX + 1];
  /* USER (payload is a view into the decoded input) */
  char key[WR_SWIM_ID_MAX + 1];
  uint64_t version;
  const uint8_t *payload;
  uint16_t payload_len;
} wr_swim_update;

typedef struct wr_swim_packet {
  uint8_t type;
  uint32_t seq;
  char from[WR_SWIM_ID_MAX + 1];
  char target[WR_SWIM_ID_MAX + 1]; /* PING, PING_REQ */
  wr_addr target_addr;             /* PING_REQ */
  size_t nupdates;
  wr_swim_update updates[WR_SWIM_UPDATES_MAX];
  /* Encode only: |nraw| more updates already encoded (raw_len bytes,
   * each as wr_swim_update_encode writes it), sent after |updates| and
   * counted with them.  The piggyback queue keeps its updates encoded,
   * so a packet copies them instead of decoding and re-encoding each.
   * wr_swim_decode sets nraw to 0 and decodes everything into updates. */
  const uint8_t *raw;
  size_t raw_len, nraw;
} wr_swim_packet;

/* Bytes |u| takes on the wire, or 0 when it cannot be encoded (bad
 * strings or address, oversized payload). */
size_t wr_swim_update_size(const wr_swim_update *u);

/*
 * Encodes |p| into |dst|.  Returns the length, WR_ERR_NOBUF (cap too small)
 * or WR_ERR_INVAL (a field that cannot be encoded).  Callers pack updates
 * with wr_swim_update_size until WR_SWIM_PACKET_MAX would be passed.
 */
wr_ssize wr_swim_encode(const wr_swim_packet *p, uint8_t *dst, size_t cap);

/*
 * Decodes |len| bytes.  Returns 0, or WR_ERR_PROTO for anything malformed
 * (|p| is then unspecified), WR_ERR_VERSION for another wire version.
 * USER payload views point into |buf|.
 */
int wr_swim_decode(const uint8_t *buf, size_t len, wr_swim_packet *p);

/* 1 when |n| bytes (n <= max) are printable ASCII without spaces: the
 * rule for every string on the wire (ids, regions, tags, keys). */
int wr_swim_bytes_ok(const uint8_t *p, size_t n, size_t max);

/* One update alone (anti-entropy streams carry runs of them): the
 * encoded length / bytes consumed, or WR_ERR_NOBUF, WR_ERR_INVAL,
 * WR_ERR_PROTO.  USER payload views point into |buf|. */
wr_ssize wr_swim_update_encode(const wr_swim_update *u, uint8_t *dst,
                               size_t cap);
wr_ssize wr_swim_update_decode(const uint8_t *buf, size_t len,
                               wr_swim_update *u);

#endif
