#!/usr/bin/env python3
"""A client with one node, and that node drained (issue 12, the GOAWAY
leftover): one real `warren node`, one `warren http --node n1`.

usage: drain1.py WARREN_BINARY

Checks:
  in flight      a slow request (the origin answers after 0.6 s) started
                 just before SIGTERM completes with its exact body
  drain at once  the node logs drain_done (not drain_timeout) within
                 1.8 s of the drain start: the client let its idle
                 draining link go as soon as the request was done, so the
                 node no longer waits its whole move grace (2 s after the
                 GOAWAY, WR_INGRESS_MOVE_GRACE_MS) for a client that had
                 nowhere else to go; and the node exits 0
  client stays   the client does not exit; it logs no_other_node
  back           the node restarted at the same address: the client binds
                 there again by itself (back-off while it was down) and
                 the name answers with the origin's body

Before the fix the drain_done line read elapsed_ms=2200-2400 here.
Prints one line per check; exits non-zero when any failed.
"""
import http.client
import os
import re
import signal
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from meshlib import FAILED, Client, Fleet, check, poll  # noqa

import http.server  # noqa: E402

WARREN = os.path.abspath(sys.argv[1])
TMP = tempfile.mkdtemp(prefix="warren-drain1-")
SLOW_S = 0.6
DRAIN_WAIT_MS = 200


class Origin(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        if self.path.startswith("/slow"):
            time.sleep(SLOW_S)
        body = ("origin path %s\n" % self.path).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *a):
        pass


def start_origin():
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Origin)
    srv.daemon_threads = True
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv.server_address[1]


def visit(node, host, path, timeout=5.0):
    """(status, body) of GET path at the node's public port, or (0, why)."""
    c = http.client.HTTPConnection(*node.http, timeout=timeout)
    try:
        c.request("GET", path, headers={"Host": host})
        r = c.getresponse()
        return r.status, r.read()
    except OSError as e:
        return 0, str(e).encode()
    finally:
        c.close()


def main():
    fleet = Fleet(WARREN, TMP, 1, extra=lambda i: [
        "--drain-wait", str(DRAIN_WAIT_MS), "--drain-timeout", "15000"])
    try:
        fleet.start()
        n1 = fleet.nodes[0]
        host = "app.%s" % fleet.domain
        client = Client(fleet, n1, "app", start_origin())
        _, took = poll(lambda: client.forwarding(), 15)
        check("client bound", client.forwarding() is not None,
              "no Forwarding line after %.1f s" % took)
        ok, _ = poll(lambda: visit(n1, host, "/warm")[0] == 200, 10)
        check("name answers", ok)

        # A request in flight on the tunnel when the drain starts.
        slow = {}

        def slow_req():
            slow["r"] = visit(n1, host, "/slow", timeout=10)
        t = threading.Thread(target=slow_req)
        t.start()
        time.sleep(0.15)
        t0 = time.time()
        n1.proc.send_signal(signal.SIGTERM)
        t.join(12)
        st, body = slow.get("r", (0, b"no answer"))
        check("in flight: the slow request completes", st == 200 and
              body == b"origin path /slow\n", "%r %r" % (st, body[:80]))
        try:
            code = n1.proc.wait(15)
        except Exception:
            code = None
        took = time.time() - t0
        with open(n1.log) as f:
            log = f.read()
        m = re.search(r"drain_done elapsed_ms=(\d+)", log)
        elapsed = int(m.group(1)) if m else None
        print("drain: exit %r after %.2f s, drain_done elapsed_ms=%s" %
              (code, took, elapsed))
        check("drain at once: drain_done within 1.8 s, exit 0",
              code == 0 and elapsed is not None and elapsed < 1800 and
              "drain_timeout" not in log,
              "exit %r, elapsed_ms %r" % (code, elapsed))
        time.sleep(0.3)
        check("client stays (logged no_other_node)",
              not client.exited() and "no_other_node" in client.stderr(),
              client.stderr()[-400:])

        # The node comes back at the same address: the client finds it.
        n1.start()
        ok, took = poll(lambda: visit(n1, host, "/back", timeout=2)[1] ==
                        b"origin path /back\n", 20, every=0.2)
        print("back: the name answers %.1f s after the node restarted" %
              took)
        check("back: the client binds at the restarted node", ok,
              client.stderr()[-600:])
    finally:
        fleet.stop()
    sys.exit(1 if FAILED else 0)


if __name__ == "__main__":
    main()
