#!/usr/bin/env python3
"""A flood of new slow readers of large responses (issue 11, fair link
credit): one node, one client bound there (name aa), one origin.  From
127.0.0.1, new visitors of aa arrive at RATE per second for FLOOD_S
seconds, each asking for a 2 MiB answer with a 4 KiB receive buffer and
never reading it (slowhttptest -X's shape).  Meanwhile a normal visitor
from 127.0.0.2 asks aa for a small page every 100 ms.

usage: flood.py WARREN_BINARY

Before fair credit at the client's mux, the flood's streams took the
tunnel's link credit first-come (1 MiB each), and the normal visitor
waited 1-5 s for credit during the flood's first seconds, until the
node shed the stalled ones.  Now each stream holds at most its fair
share while the link is short, so credit is left for fresh streams.

Checks:
  flood      the flood really ran: most of its connections were accepted
             (the node's sheds and stalls are printed)
  latency    at least 90 % of the normal visitor's requests during the
             flood are served within 1 s, and none takes over 3 s (4x
             that under ASan)
  after      aa is served right after the flood
  exit       SIGTERM: exit 0
Prints one line per check; exits non-zero when any failed.  Bounded:
about 25 s in all.
"""
import multiprocessing
import os
import signal
import socket
import socketserver
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from meshlib import FAILED, Client, Fleet, check, poll  # noqa

WARREN = os.path.abspath(sys.argv[1])
TMP = tempfile.mkdtemp(prefix="warren-flood-")
BIG = 2 << 20
RATE = 150
FLOOD_S = 6
SAN = "ASAN_OPTIONS" in os.environ
SLOWER = 4 if SAN else 1
CHUNK = bytes(range(256)) * 256  # 64 KiB


class Origin(socketserver.BaseRequestHandler):
    """GET /big/N: N bytes; anything else: 5 bytes.  Both end with close."""

    def handle(self):
        s = self.request
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        head = b""
        try:
            while b"\r\n\r\n" not in head:
                d = s.recv(4096)
                if not d:
                    return
                head += d
            path = head.split(b" ", 2)[1].decode()
            if path.startswith("/big/"):
                n = int(path[5:])
                s.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n"
                          b"Connection: close\r\n\r\n" % n)
                while n > 0:
                    k = min(n, len(CHUNK))
                    s.sendall(CHUNK[:k])
                    n -= k
            else:
                s.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n"
                          b"Connection: close\r\n\r\nsmall")
        except OSError:
            pass


class OriginServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 1024


def fetch_small(node, timeout):
    """(status, seconds) of GET /small of aa from 127.0.0.2."""
    t0 = time.time()
    status = 0
    try:
        s = socket.create_connection(node.http, timeout=timeout,
                                     source_address=("127.0.0.2", 0))
        s.sendall(("GET /small HTTP/1.1\r\nHost: aa.%s\r\n\r\n" %
                   node.fleet.domain).encode())
        data = b""
        while time.time() - t0 < timeout:
            d = s.recv(4096)
            if not d:
                break
            data += d
            if data.endswith(b"small"):
                status = int(data.split(b" ", 2)[1])
                break
        s.close()
    except (OSError, ValueError, IndexError):
        pass
    return status, time.time() - t0


class Flood(threading.Thread):
    """Opens RATE connections per second for FLOOD_S seconds; each asks
    for BIG bytes and never reads.  Keeps them open until stop()."""

    def __init__(self, node):
        super().__init__(daemon=True)
        self.node = node
        self.socks = []
        self.failed = 0

    def run(self):
        t0 = time.time()
        k = 0
        while time.time() - t0 < FLOOD_S:
            due = t0 + k / RATE
            if due > time.time():
                time.sleep(due - time.time())
            k += 1
            try:
                s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
                s.settimeout(2)
                s.connect(self.node.http)
                s.sendall(("GET /big/%d HTTP/1.1\r\nHost: aa.%s\r\n\r\n"
                           % (BIG, self.node.fleet.domain)).encode())
                self.socks.append(s)
            except OSError:
                self.failed += 1

    def stop(self):
        for s in self.socks:
            s.close()
        self.socks = []


def main():
    # The origin runs in its own process: its ~1,000 sending threads must
    # not take the probe's and the flood's GIL.
    origin = OriginServer(("127.0.0.1", 0), Origin)
    oport = origin.server_address[1]
    oproc = multiprocessing.get_context("fork").Process(
        target=origin.serve_forever, daemon=True)
    oproc.start()
    origin.socket.close()
    fleet = Fleet(WARREN, TMP, 1)
    n1 = fleet.nodes[0]
    flood = None
    try:
        fleet.start()
        ok, _ = poll(lambda: fleet.all_alive(), 15)
        if not check("node up", ok):
            return
        ca = Client(fleet, n1, "aa", oport)
        ok, _ = poll(lambda: ca.forwarding() and
                     fetch_small(n1, 2)[0] == 200, 15)
        if not check("aa bound at n1", ok):
            return
        base = [fetch_small(n1, 5)[1] for _ in range(5)]

        flood = Flood(n1)
        flood.start()
        lat = []
        t0 = time.time()
        while time.time() - t0 < FLOOD_S:
            st, t = fetch_small(n1, 5 * SLOWER)
            lat.append(t if st == 200 else float("inf"))
            time.sleep(max(0.0, 0.1 - t))
        flood.join(FLOOD_S + 5)
        sheds = n1.metric("warren_http_send_stall_sheds_total") or 0
        stalls = n1.metric("warren_http_send_stalls_total") or 0
        n = len(flood.socks)
        check("the flood ran", n >= RATE * FLOOD_S * 0.8,
              "%d connections (%d failed)" % (n, flood.failed))
        print("     flood: %d connections, sheds=%d stalls=%d" %
              (n, sheds, stalls), flush=True)
        fast = sum(1 for t in lat if t <= 1.0 * SLOWER)
        worst = max(lat) if lat else float("inf")
        s = sorted(lat)
        p50 = s[len(s) // 2] if s else float("inf")
        check("a normal visitor is served during the flood",
              lat and fast >= 0.9 * len(lat) and worst <= 3.0 * SLOWER,
              "%d/%d within %.0f s, p50 %.3f s, worst %.2f s "
              "(before the flood: %.3f s)" %
              (fast, len(lat), 1.0 * SLOWER, p50, worst, max(base)))
        flood.stop()
        st, _ = fetch_small(n1, 5)
        check("aa served after the flood", st == 200, "status %d" % st)
        n1.proc.send_signal(signal.SIGTERM)
        try:
            rc = n1.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            rc = None
        check("n1 exits 0 on SIGTERM", rc == 0, "rc=%r" % rc)
    finally:
        if flood:
            flood.stop()
        fleet.stop()
        oproc.kill()
        oproc.join(5)
        if FAILED:
            print("logs in %s" % TMP)
    sys.exit(1 if FAILED else 0)


if __name__ == "__main__":
    main()
