#!/usr/bin/env python3
"""A rolling restart under steady load loses nothing (issue 12): five real
`warren node`s; name "roll" served by three `warren http --balance`
clients of one account (each bound at its own node: three owners), name
"duo" by one client given all five nodes with `--links 2` (it moves a
link whose node drains to another node, make before break); bounded
steady load through every node for both names, and each node in turn
drained with SIGTERM, restarted with the same id and ports, and waited
for.

usage: rolling5.py WARREN_BINARY WARRENCTL_BINARY [--rounds N]

The last node of each round is drained with `warrenctl drain --wait`
(POST /drain) instead of SIGTERM.

The load generator behaves like a load balancer in front of the fleet:
  - a health checker asks every node's GET /readyz every 100 ms and takes
    a node out of rotation on anything but 200 (and back on 200);
  - each worker sends GET requests on a keep-alive connection to a node
    in rotation, and opens a new connection (to the next node in
    rotation) when a response says "Connection: close";
  - a request is retried on another node only when the connection was
    refused before any byte was sent; any error after that (reset,
    early close, bad status, wrong body) is a failed request.

Checks:
  drain           each node exits 0 after SIGTERM, well within the drain
                  timeout, having logged drain_done (not drain_timeout)
  readyz          the health checker saw each node answer 503 while it
                  drained
  rejoin          each restarted node is alive in every member's view and
                  its client's binding is back (3 owners) before the next
  zero loss       0 failed requests out of all those sent (and at least
                  some per second of the run, so the load was real)
Prints one line per check and a summary line with the counts; exits
non-zero when any check failed.
"""
import http.client
import http.server
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from meshlib import FAILED, Client, Fleet, check, ip, poll  # noqa

WARREN = os.path.abspath(sys.argv[1])
WARRENCTL = os.path.abspath(sys.argv[2])
ROUNDS = int(sys.argv[sys.argv.index("--rounds") + 1]) \
    if "--rounds" in sys.argv else 1
TMP = tempfile.mkdtemp(prefix="warren-rolling5-")
N = 5
NAME = "roll"
DUO = "duo"
WORKERS = 6
# Each request costs the origin 5 ms, so several are in flight at any
# moment and a drain always has something to wait for.
ORIGIN_DELAY = 0.005
# LB rhythm: the drain keeps serving 1 s (ten failed health checks),
# the whole drain may take 15 s (on a loaded 2-core box).
DRAIN_WAIT_MS = 1000
DRAIN_TIMEOUT_MS = 15000


class Origin(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        time.sleep(ORIGIN_DELAY)
        body = ("%s %s\n" % (self.headers.get("Host", "?").split(".")[0],
                             self.path)).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *a):
        pass


class LB:
    """Health checks plus workers; counts outcomes."""

    def __init__(self, fleet):
        self.fleet = fleet
        self.up = {n.id: False for n in fleet.nodes}
        self.saw_503 = {n.id: 0 for n in fleet.nodes}
        self.lock = threading.Lock()
        self.ok = self.failed = self.refused_retries = 0
        self.reconnects = 0
        self.failures = []
        self.stop = threading.Event()
        self.rr = 0

    def health(self):
        while not self.stop.is_set():
            for n in self.fleet.nodes:
                st = 0
                try:
                    c = http.client.HTTPConnection(*n.admin, timeout=0.5)
                    c.request("GET", "/readyz")
                    r = c.getresponse()
                    r.read()
                    st = r.status
                    c.close()
                except (OSError, http.client.HTTPException):
                    st = 0
                with self.lock:
                    self.up[n.id] = st == 200
                    if st == 503:
                        self.saw_503[n.id] += 1
            time.sleep(0.1)

    def pick(self):
        with self.lock:
            ups = [n for n in self.fleet.nodes if self.up[n.id]]
            if not ups:
                return None
            self.rr += 1
            return ups[self.rr % len(ups)]

    def fail(self, why):
        with self.lock:
            self.failed += 1
            if len(self.failures) < 20:
                self.failures.append(why)

    def worker(self, k):
        conn = node = None
        seq = 0
        while not self.stop.is_set():
            if conn is None:
                node = self.pick()
                if node is None:
                    time.sleep(0.05)
                    continue
                conn = http.client.HTTPConnection(*node.http, timeout=10)
                try:
                    conn.connect()
                except ConnectionRefusedError:
                    # Refused before any byte: the one case an LB retries.
                    with self.lock:
                        self.refused_retries += 1
                    conn = None
                    continue
                except OSError as e:
                    self.fail("connect %s: %s" % (node.id, e))
                    conn = None
                    continue
            seq += 1
            path = "/w%d/%d" % (k, seq)
            # Workers alternate names; one connection serves one name.
            name = NAME if k % 2 == 0 else DUO
            try:
                conn.request("GET", path, headers={
                    "Host": "%s.%s" % (name, self.fleet.domain)})
                r = conn.getresponse()
                body = r.read()
                close = r.getheader("Connection", "").lower() == "close"
            except (OSError, http.client.HTTPException) as e:
                self.fail("%s %s: %s: %s" % (node.id, path,
                                             type(e).__name__, e))
                conn.close()
                conn = None
                continue
            if r.status == 200 and body == ("%s %s\n" % (name, path)).encode():
                with self.lock:
                    self.ok += 1
            else:
                self.fail("%s %s: %d %r" % (node.id, path, r.status,
                                            body[:120]))
            if close:
                conn.close()
                conn = None
                with self.lock:
                    self.reconnects += 1
            time.sleep(0.002)
        if conn:
            conn.close()


def serving(fleet, nodes):
    """True when every node in |nodes| routes NAME to three owners and DUO
    to two (the --links 2 client is bound again after a move)."""
    for n in nodes:
        r = n.routes()
        if not r or NAME not in r or r[NAME].get("serving", 1) != 3:
            return False
        if DUO not in r or r[DUO].get("serving", 1) != 2:
            return False
    return True


def main():
    ids = list(range(1, N + 1))

    def extra(i):
        seeds = ",".join("%s:%d" % (ip(j), fleet_base[0]) for j in ids
                         if j != i)
        return ["--drain-wait", str(DRAIN_WAIT_MS), "--drain-timeout",
                str(DRAIN_TIMEOUT_MS), "--join", seeds]

    fleet_base = [0]
    fleet = Fleet(WARREN, TMP, N, extra=lambda i: ())
    fleet_base[0] = fleet.base
    for n in fleet.nodes:
        # Every node joins through all the others, so any of them (n1
        # too) finds the mesh again after its restart.
        n.join = None
        n.extra = extra(n.i)
    lb = None
    try:
        srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Origin)
        srv.daemon_threads = True
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        origin = srv.server_address[1]
        fleet.start()
        _, t = poll(lambda: fleet.all_alive(), 30)
        check("fleet up", fleet.all_alive(), "not all alive after 30 s")
        env = {"WARREN_IDENTITY": os.path.join(TMP, "id-shared")}
        homes = fleet.nodes[:3]
        clients = [Client(fleet, h, NAME, origin, extra=["--balance"],
                          env=env) for h in homes]
        clients.append(Client(fleet, fleet.nodes, DUO, origin,
                              extra=["--links", "2"]))
        _, t = poll(lambda: all(c.forwarding() for c in clients), 30)
        check("clients bound", all(c.forwarding() for c in clients))
        _, t = poll(lambda: serving(fleet, fleet.nodes), 30)
        check("three owners everywhere", serving(fleet, fleet.nodes),
              "routes: %r" % (fleet.nodes[0].routes(),))

        lb = LB(fleet)
        threading.Thread(target=lb.health, daemon=True).start()
        poll(lambda: all(lb.up.values()), 10)
        threads = [threading.Thread(target=lb.worker, args=(k,),
                                    daemon=True) for k in range(WORKERS)]
        t0 = time.time()
        for th in threads:
            th.start()
        time.sleep(3)  # steady state first: the baseline
        base_n, base_s = lb.ok + lb.failed, time.time() - t0
        t_roll = time.time()
        for rnd in range(ROUNDS):
            for n in fleet.nodes:
                ok_before = lb.ok
                ts = time.time()
                ctl = None
                if n is fleet.nodes[-1]:
                    ctl = subprocess.run(
                        [WARRENCTL, "--admin", "%s:%d" % n.admin, "drain",
                         "--wait"], capture_output=True, text=True,
                        timeout=DRAIN_TIMEOUT_MS / 1000 + 20)
                    check("warrenctl drain --wait %s" % n.id,
                          ctl.returncode == 0 and
                          ctl.stdout.startswith("draining %s:" % n.id) and
                          "drained and stopped" in ctl.stdout,
                          "exit %d: %r %r" % (ctl.returncode, ctl.stdout,
                                              ctl.stderr))
                else:
                    n.proc.send_signal(signal.SIGTERM)
                try:
                    code = n.proc.wait(timeout=DRAIN_TIMEOUT_MS / 1000 + 10)
                except Exception:
                    code = None
                took = time.time() - ts
                log = open(n.log).read()
                check("drain %s (round %d)" % (n.id, rnd + 1),
                      code == 0 and "drain_done" in log and
                      took < DRAIN_TIMEOUT_MS / 1000,
                      "exit %r after %.1f s, drain_done in log: %s" %
                      (code, took, "drain_done" in log))
                check("readyz 503 while %s drained" % n.id,
                      lb.saw_503[n.id] > 0)
                n.start()
                others = [m for m in fleet.nodes]
                _, t = poll(lambda: fleet.all_alive(others) and
                            serving(fleet, fleet.nodes), 30, every=0.2)
                check("rejoin %s (round %d)" % (n.id, rnd + 1),
                      fleet.all_alive(others) and
                      serving(fleet, fleet.nodes),
                      "after %.1f s: routes at n1 %r" %
                      (t, fleet.nodes[0].routes()))
                print("  %s: drained in %.1f s, back in %.1f s, %d ok "
                      "meanwhile" % (n.id, took, t, lb.ok - ok_before),
                      flush=True)
                time.sleep(1)
        time.sleep(1)
        lb.stop.set()
        for th in threads:
            th.join(timeout=15)
        dur = time.time() - t0
        total = lb.ok + lb.failed
        roll_s = time.time() - t_roll
        print("rolling5: baseline (no restart) %d requests in %.1f s (%.0f/s);"
              " during the restarts %d in %.1f s (%.0f/s)" % (
                  base_n, base_s, base_n / base_s, total - base_n, roll_s,
                  (total - base_n) / roll_s), flush=True)
        print("rolling5: %d requests in %.1f s (%.0f/s), %d ok, %d failed, "
              "%d retried after a refused connect, %d reconnects after "
              "Connection: close" % (total, dur, total / dur, lb.ok,
                                     lb.failed, lb.refused_retries,
                                     lb.reconnects), flush=True)
        for f in lb.failures:
            print("  failed: %s" % f)
        check("zero loss", lb.failed == 0 and lb.ok > 20 * dur,
              "%d failed of %d" % (lb.failed, total))
    finally:
        if lb:
            lb.stop.set()
        fleet.stop()
    if FAILED:
        print("logs in %s" % TMP)
    return 1 if FAILED else 0


if __name__ == "__main__":
    sys.exit(main())
