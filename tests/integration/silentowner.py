"""A request forwarded to an owner whose host goes silent (issue 12's
chaos finding): SIGSTOP stands in for a machine that vanishes (power,
kernel hang), so nothing refuses the node link and nothing answers.
Once membership declares the owner dead, the node link to it closes and
the visitor gets a clean 502 within detection time (before: when the
mux keepalive gave up, 20 s, or at the 60 s upstream timeout).

usage: silentowner.py WARREN_BINARY
"""
import http.client
import http.server
import os
import signal
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from meshlib import FAILED, Client, Fleet, check, poll  # noqa


class SlowHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        if self.path == "/slow":
            time.sleep(90)  # the owner is stopped long before
        body = b"ok\n"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *a):
        pass


def main():
    warren = sys.argv[1]
    with tempfile.TemporaryDirectory() as tmp:
        fleet = Fleet(warren, tmp, 3)
        n1, n2, n3 = fleet.nodes
        stopped = False
        try:
            fleet.start()
            ok, _ = poll(fleet.all_alive, 20)
            if not check("three nodes alive", ok):
                return
            srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0),
                                                  SlowHandler)
            srv.daemon_threads = True
            threading.Thread(target=srv.serve_forever, daemon=True).start()
            c = Client(fleet, n1, "quiet", srv.server_address[1],
                       ["--links", "1"])
            ok, _ = poll(lambda: n2.visit("quiet")[0] == 200, 15)
            if not check("served through n2 (owner n1)", ok, c.stderr()[-400:]):
                return
            result = {}

            def visitor():
                t0 = time.time()
                conn = http.client.HTTPConnection(*n2.http, timeout=45)
                try:
                    conn.request("GET", "/slow",
                                 headers={"Host": "quiet.mesh.test"})
                    r = conn.getresponse()
                    result["status"] = r.status
                    result["body"] = r.read()
                except (OSError, http.client.HTTPException) as e:
                    result["status"] = 0
                    result["body"] = str(e).encode()
                result["took"] = time.time() - t0
                conn.close()

            th = threading.Thread(target=visitor)
            th.start()
            time.sleep(0.5)  # the request is at the origin, unanswered
            n1.proc.send_signal(signal.SIGSTOP)
            stopped = True
            t_stop = time.time()
            ok, _ = poll(lambda: (((n2.members() or {}).get("n1") or {})
                                  .get("state") == "dead"), 30, 0.1)
            detect = time.time() - t_stop
            check("n1 declared dead at n2 (%.1f s)" % detect, ok)
            th.join(50)
            st, took = result.get("status"), result.get("took", 99)
            print("visitor: status %s after %.1f s (detection %.1f s)" % (
                st, took, detect), flush=True)
            check("the visitor gets a clean 502 once n1 is declared dead",
                  st == 502, repr(result.get("body", b"")[:120]))
            check("within detection + 3 s, not the 60 s upstream timeout",
                  took < detect + 3.5, "%.1f s" % took)
            check("n2 logged closing its link to n1",
                  "node_links_closed" in open(n2.log).read())
        finally:
            if stopped:
                n1.proc.send_signal(signal.SIGCONT)
            fleet.stop()
    print("%d failed" % len(FAILED) if FAILED else "all passed")
    sys.exit(1 if FAILED else 0)


if __name__ == "__main__":
    main()
