#!/usr/bin/env python3
"""Seeds for the swim_sync fuzzer (fuzz/fuzz_swim_sync.c), stream v4.

Each seed is: u8 flags | u8 fail_at | u8 drain | (u16 len | bytes)*, the
bytes being the peer's side of one session (identity seal: a frame is
u32 length | plaintext).  Run from the repository root:
    python3 tests/swim/gen_sync_corpus.py fuzz/corpus/swim_sync
"""
import os
import struct
import sys

V = 4
SUMMARY, STATE, BUCKETS, DIGEST, ADELTA, ADIGEST = 1, 2, 3, 4, 5, 6
M64 = (1 << 64) - 1


def fmix64(k):
    k ^= k >> 33
    k = (k * 0xff51afd7ed558ccd) & M64
    k ^= k >> 33
    k = (k * 0xc4ceb9fe1a85ec53) & M64
    return k ^ (k >> 33)


def idhash(i):
    """src/swim/digest.c, swim_digest_idhash."""
    h = 0xcbf29ce484222325
    for c in i.encode():
        h = ((h ^ c) * 0x100000001b3) & M64
    return fmix64(h)


def frame(typ, last, entries, version=V):
    pt = struct.pack(">BBBI", version, typ, last, len(entries)) + b"".join(entries)
    return struct.pack(">I", len(pt)) + pt


def s(x):
    return bytes([len(x)]) + x.encode()


def digest_ent(i, inc=0, state=0):
    return s(i) + struct.pack(">IB", inc, state)


def addr(last):
    return bytes([4, 127, 0, 0, last]) + struct.pack(">H", 7946)


def alive(i, inc, last):
    return bytes([1]) + s(i) + struct.pack(">I", inc) + addr(last) + addr(last) + s("") + s("")


def dead(i, inc, by):
    return bytes([3]) + s(i) + struct.pack(">I", inc) + s(by)


def rec(key, version, pad=0):
    r = s(key) + struct.pack(">Q", version) + b"\xd5" * pad
    return struct.pack(">H", len(r)) + r


def seed(flags, fail_at, drain, *messages, chunk=None):
    """One u16-prefixed chunk per message (the session writes its answer
    between them), or pieces of |chunk| bytes."""
    out = bytes([flags, fail_at, drain])
    for m in messages:
        c = chunk or len(m) or 1
        for k in range(0, max(len(m), 1), c):
            piece = m[k:k + c]
            out += struct.pack(">H", len(piece)) + piece
    return out


def main(d):
    os.makedirs(d, exist_ok=True)
    for f in os.listdir(d):
        os.unlink(os.path.join(d, f))
    seeds = {}
    # Responder: the initiator's summary (one bucket: 4 members) and app
    # digest, then its state, digest and app delta.
    m1 = frame(SUMMARY, 0, [struct.pack(">Q", 0x1234)]) + \
        frame(ADIGEST, 1, [rec("a", 2), rec("zz", 1)])
    m3 = frame(STATE, 0, [alive("n9", 2, 10), dead("n2", 5, "n9")]) + \
        frame(DIGEST, 0, [digest_ent("n1"), digest_ent("n9", 2), digest_ent("n0", 1, 2)]) + \
        frame(ADELTA, 1, [rec("b", 4, 100), rec("new", 2, 4000)])
    seeds["responder_app"] = seed(0, 0, 0, m1, m3)
    seeds["responder_app_one_chunk"] = seed(0, 0, 0, m1 + m3)
    seeds["responder_app_split"] = seed(0, 0, 1, m1, m3, chunk=7)
    seeds["responder_app_fail_digest_in"] = seed(0, 2, 0, m1, m3)
    seeds["responder_app_fail_delta_next"] = seed(0, 3, 0, m1, m3)
    # 200 members: a summary of 16 buckets, the initiator's digest of a
    # few of them.
    m1b = frame(SUMMARY, 1, [struct.pack(">Q", b * 77) for b in range(16)])
    ids = ["n%d" % k for k in range(1, 40)]
    m3b = frame(STATE, 0, [alive("n300", 1, 9)]) + \
        frame(DIGEST, 1, [digest_ent(i, 1) for i in ids])
    seeds["responder_200"] = seed(2, 0, 0, m1b, m3b)
    # Initiator: D and the responder's digest, app delta and digest, then
    # the final state.
    m2 = frame(BUCKETS, 0, [struct.pack(">I", 0)]) + \
        frame(DIGEST, 0, [digest_ent("n1", 1), digest_ent("n9", 0), digest_ent("n0", 3, 2)]) + \
        frame(ADELTA, 0, [rec("c", 7, 200)]) + \
        frame(ADIGEST, 1, [rec("a", 9), rec("route/c", 1)])
    m4 = frame(STATE, 1, [alive("n9", 1, 10)])
    seeds["initiator_app"] = seed(1, 0, 0, m2, m4)
    seeds["initiator_app_fail_record_in"] = seed(1, 5, 0, m2, m4)
    # 200 members: B = 16, every bucket named, digests spread over them.
    m2b = frame(BUCKETS, 0, [struct.pack(">I", b) for b in range(16)]) + \
        frame(DIGEST, 1, [digest_ent("n%d" % k, k % 4) for k in range(1, 200, 3)])
    seeds["initiator_200"] = seed(3, 0, 0, m2b, frame(STATE, 1, []))
    # Two buckets only: digests must fall in them.
    two = [0, 5]
    ents = [digest_ent("n%d" % k) for k in range(1, 200) if idhash("n%d" % k) & 15 in two]
    m2c = frame(BUCKETS, 0, [struct.pack(">I", b) for b in two]) + frame(DIGEST, 1, ents)
    seeds["initiator_200_two_buckets"] = seed(3, 0, 0, m2c, frame(STATE, 1, []))
    seeds["begin_null"] = seed(4, 0, 0, m1)
    # A peer not yet upgraded (v3 digest), and broken grammar.
    seeds["v3_peer"] = seed(0, 0, 0, frame(1, 1, [digest_ent("n1")], version=3))
    seeds["bad_order"] = seed(0, 0, 0, frame(ADIGEST, 0, [rec("a", 1)]) +
                              frame(SUMMARY, 1, [struct.pack(">Q", 1)]))
    seeds["bad_record_len"] = seed(0, 0, 0, frame(SUMMARY, 0, [struct.pack(">Q", 1)]) +
                                   frame(ADIGEST, 1, [struct.pack(">H", 0)]))
    seeds["bad_bucket_order"] = seed(1, 0, 0, frame(BUCKETS, 1, [struct.pack(">I", 0)] * 2))
    for name, data in seeds.items():
        with open(os.path.join(d, name), "wb") as f:
            f.write(data)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "fuzz/corpus/swim_sync")
