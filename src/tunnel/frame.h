/*
 * Mux frame codec (internal to src/tunnel): encoding, strict validation and
 * an incremental reader.  The wire format is described at the top of
 * frame.c and in docs/MUX.md.
 *
 * Every frame starts with an 8-byte header:
 *
 *   u8 type | u8 flags | u16 length | u32 stream id     (big-endian)
 *
 * followed by |length| payload bytes.
 */
#ifndef WARREN_TUNNEL_FRAME_H
#define WARREN_TUNNEL_FRAME_H

#include "warren/buf.h"
#include "warren/types.h"

#define WR_FRAME_HDR_LEN 8
/* Largest DATA payload a sender produces and a receiver accepts: one
 * record's worth, so a DATA frame never needs more than two records. */
#define WR_FRAME_MAX_DATA 16384
/* The u16 length field bounds every other payload. */
#define WR_FRAME_MAX_PAYLOAD 65535

enum {
  WR_FRAME_DATA = 0,     /* stream bytes; flag FIN ends our direction */
  WR_FRAME_OPEN = 1,     /* new stream, payload = metadata; flag FIN */
  WR_FRAME_RST = 2,      /* u32 code: abort the stream */
  WR_FRAME_WINDOW = 3,   /* u32 increment; sid 0 = link credit */
  WR_FRAME_PING = 4,     /* 8 opaque bytes */
  WR_FRAME_PONG = 5,     /* the PING's 8 bytes echoed */
  WR_FRAME_GOAWAY = 6,   /* u32 code: open no new streams */
  WR_FRAME_CONTROL = 7,  /* opaque protobuf message */
  WR_FRAME_SETTINGS = 8, /* (u16 id, u32 value) pairs; first frame only */
  WR_FRAME_TYPE_COUNT
};

#define WR_FRAME_FLAG_FIN 0x01

/* SETTINGS identifiers. */
enum {
  WR_SET_STREAM_WINDOW = 1,
  WR_SET_LINK_WINDOW = 2,
  WR_SET_MAX_STREAMS = 3,
  WR_SET_MAX_META = 4,
  WR_SET_MAX_CONTROL = 5,
  /* The sender's stream credit comes back in steps of at most this many
   * bytes while the link is short (mux.c, "Fair link credit"); absent
   * (older peers): only in half windows. */
  WR_SET_CREDIT_STEP = 6,
  WR_SET_COUNT
};
/* At most this many pairs in one SETTINGS frame (room for new ids). */
#define WR_SET_MAX_PAIRS 10

typedef struct wr_frame_settings {
  uint32_t present; /* bit (1 << id) set for every id received */
  uint32_t val[WR_SET_COUNT];
} wr_frame_settings;

/* Receiver limits used to validate headers. */
typedef struct wr_frame_limits {
  uint32_t max_meta;    /* OPEN payload */
  uint32_t max_control; /* CONTROL payload */
} wr_frame_limits;

typedef struct wr_frame {
  uint8_t type, flags;
  uint32_t sid;
  uint32_t len;             /* payload length */
  uint32_t value;           /* RST and GOAWAY code, WINDOW increment */
  uint8_t opaque[8];        /* PING, PONG */
  const uint8_t *payload;   /* DATA, OPEN, CONTROL: a view (see reader) */
  wr_frame_settings set;    /* SETTINGS */
} wr_frame;

/* Writes a header at |p| (8 bytes). */
static inline void wr_frame_hdr_put(uint8_t *p, uint8_t type, uint8_t flags,
                                    uint16_t len, uint32_t sid) {
  p[0] = type;
  p[1] = flags;
  wr_put_u16(p + 2, len);
  wr_put_u32(p + 4, sid);
}

/*
 * Parses and validates the 8-byte header at |p| into |f| (type, flags,
 * len, sid).  Returns 0, WR_ERR_PROTO (unknown type, bad flags, wrong sid
 * or fixed length) or WR_ERR_TOOBIG (payload over its limit).
 */
int wr_frame_hdr_parse(const uint8_t *p, const wr_frame_limits *lim,
                       wr_frame *f);

/*
 * Decodes the payload of a validated header (|payload| holds f->len bytes)
 * into |f|.  DATA/OPEN/CONTROL keep a view in f->payload.  Returns 0 or
 * WR_ERR_PROTO (zero WINDOW increment, malformed SETTINGS).
 */
int wr_frame_body_parse(wr_frame *f, const uint8_t *payload);

/* Bytes wr_frame_encode writes for |f| (header + payload). */
size_t wr_frame_encoded_len(const wr_frame *f);

/*
 * Encodes |f| (type, flags, sid and the type's fields; DATA/OPEN/CONTROL
 * from payload/len; SETTINGS from set.present/val) into |b|.  Returns 0,
 * WR_ERR_NOBUF, or WR_ERR_INVAL (payload too long, bad type).
 */
int wr_frame_encode(wr_wbuf *b, const wr_frame *f);

/*
 * Incremental reader: bytes in any split, frames out.  DATA payloads are
 * handed out as they arrive (views into the caller's input: zero copy);
 * other frames are handed out whole, from the input when they lie within
 * one call and from an internal reassembly buffer otherwise.
 */
enum {
  WR_FRAME_EV_FRAME = 1, /* a complete non-DATA frame in ev->f */
  WR_FRAME_EV_DATA = 2,  /* a piece of a DATA frame */
};

typedef struct wr_frame_event {
  int kind;
  const wr_frame *f;     /* header (+ body for EV_FRAME); valid until the
                          * next call to wr_frame_reader_next */
  const uint8_t *data;   /* EV_DATA: this piece, inside the input */
  size_t len;
  uint32_t off;          /* EV_DATA: offset of the piece in the payload */
  int last;              /* EV_DATA: the frame's final piece */
} wr_frame_event;

typedef struct wr_frame_reader {
  const wr_mem *mem;
  wr_frame_limits lim;
  uint8_t hdr[WR_FRAME_HDR_LEN];
  uint32_t hdr_have;
  int in_body;           /* header parsed, payload pending */
  uint32_t body_have;
  wr_frame f;
  uint8_t *buf;          /* reassembly of split non-DATA payloads */
  uint32_t buf_cap;
} wr_frame_reader;

void wr_frame_reader_init(wr_frame_reader *r, const wr_frame_limits *lim,
                          const wr_mem *mem);
void wr_frame_reader_free(wr_frame_reader *r);

/*
 * Consumes bytes from *|pp| / *|plen| (advanced past what was used) until
 * it can report one event.  Returns 1 with |ev| filled, 0 when the input
 * is used up without an event, or WR_ERR_PROTO / WR_ERR_TOOBIG /
 * WR_ERR_NOMEM; after an error the reader must not be used again.
 * A DATA frame with an empty payload yields one event with len 0, last 1;
 * a non-empty one yields pieces with len > 0, the first with off 0.
 */
int wr_frame_reader_next(wr_frame_reader *r, const uint8_t **pp,
                         size_t *plen, wr_frame_event *ev);

#endif
