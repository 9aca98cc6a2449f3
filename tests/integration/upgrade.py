#!/usr/bin/env python3
"""Zero-downtime upgrade of one node in place (issue 12): the node's
public socket is held by its supervisor (here the test, as systemd's
socket unit does; docs/DEPLOY.md) and handed to each process in
LISTEN_FDS, so while the old process drains and exits and the new one
starts and joins, visitors wait in the socket's backlog instead of being
refused.

Then the node's own upgrade (`warrenctl upgrade`, docs/DEPLOY.md): n1
and n3 run from copies of the binary; n3's copy is replaced (a new file
renamed over it, as a package manager does) and `warrenctl upgrade
--wait` makes n3 check it, drain, and exec it in the same process with
its own socket kept open; n1's copy is replaced by a program that fails
`--version`, and its upgrade is refused while it goes on serving.

usage: upgrade.py WARREN_BINARY WARRENCTL_BINARY

Three nodes; n2's public port is a socket this test listens on and passes
as descriptor 3 (LISTEN_FDS=1, LISTEN_FDNAMES=http).  A `--links 2`
client serves "duo" from two of the three nodes.  Workers send requests
for "duo" to n2's port (never taken out of rotation) and to n1 and n3,
keep-alive, a new connection after "Connection: close"; any error is a
failed request, and a refused connect counts too (it must not happen on
n2's port).  The upgrade: the binary is copied to a new path (the "new
version"), the old process gets SIGTERM (drain, exit), the new one starts
from the copy with the same id, ports and socket.

Checks:
  bad LISTEN_FDS   a malformed LISTEN_FDS stops the node with a clear line
  handover         the old process exits 0 after draining; the new one
                   logs the inherited socket and starts accepting after it
                   joined
  identity         n2 is alive in every member's view again, at a higher
                   incarnation than before
  self-upgrade     warrenctl upgrade --wait exits 0; n3 is the same
                   process (pid) with a new start time, it logged the exec
                   and took its socket as descriptor 3; alive and serving
  refused upgrade  a binary failing --version: warrenctl exits 1 naming
                   the cause, counted, /status says failed, n1 still ready
  zero loss        0 failed requests and 0 refused connects during the
                   whole run (both upgrades); the longest wait on n2's
                   port is printed
Prints one line per check and a summary; exits non-zero when any failed.
"""
import http.client
import http.server
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from meshlib import FAILED, Client, Fleet, check, ip, poll  # noqa

WARREN = os.path.abspath(sys.argv[1])
WARRENCTL = os.path.abspath(sys.argv[2])
TMP = tempfile.mkdtemp(prefix="warren-upgrade-")
N = 3
NAME = "duo"
DRAIN_TIMEOUT_MS = 15000


class Origin(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        time.sleep(0.005)
        body = ("up %s\n" % self.path).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *a):
        pass


def node_args(fleet, n, binary):
    b = fleet.base
    seeds = ",".join("%s:%d" % (ip(j), b) for j in range(1, N + 1)
                     if j != n.i)
    return [binary, "node", "--id", n.id,
            "--http", "%s:%d" % n.http, "--admin", "%s:%d" % n.admin,
            "--gossip", "%s:%d" % (ip(n.i), b), "--domain", fleet.domain,
            "--key-file", fleet.key, "--gossip-profile", fleet.profile,
            "--join", seeds, "--drain-wait", "500",
            "--drain-timeout", str(DRAIN_TIMEOUT_MS)]


def start_with_socket(fleet, n, binary, sock, env_extra=None):
    """Starts |n| from |binary| with |sock| as descriptor 3."""
    n.log = os.path.join(fleet.tmp, "%s-%d.log" % (n.id, n.runs))
    n.runs += 1
    env = dict(os.environ)
    env.update({"LISTEN_FDS": "1", "LISTEN_FDNAMES": "http"})
    env.update(env_extra or {})
    fd = sock.fileno()
    # The shell puts the socket at descriptor 3 for the exec'd node, as
    # systemd does (Python's own child setup may use low descriptors).
    args = node_args(fleet, n, binary)
    n.proc = subprocess.Popen(["/bin/sh", "-c", 'exec "$0" "$@" 3<&%d' % fd]
                              + args, env=env, stdout=subprocess.DEVNULL,
                              stderr=open(n.log, "w"), pass_fds=(fd,))
    fleet.procs.append(n.proc)


class Load:
    def __init__(self, fleet, targets):
        self.fleet = fleet
        self.targets = targets
        self.lock = threading.Lock()
        self.ok = self.failed = self.refused = 0
        self.failures = []
        self.slowest = {}
        self.stop = threading.Event()

    def fail(self, why):
        with self.lock:
            self.failed += 1
            if len(self.failures) < 20:
                self.failures.append(why)

    def worker(self, k):
        node = self.targets[k % len(self.targets)]
        conn = None
        seq = 0
        while not self.stop.is_set():
            if conn is None:
                conn = http.client.HTTPConnection(*node.http, timeout=15)
                try:
                    conn.connect()
                except ConnectionRefusedError:
                    with self.lock:
                        self.refused += 1
                    conn = None
                    time.sleep(0.05)
                    continue
                except OSError as e:
                    self.fail("connect %s: %s" % (node.id, e))
                    conn = None
                    continue
            seq += 1
            path = "/w%d/%d" % (k, seq)
            t0 = time.time()
            try:
                conn.request("GET", path, headers={
                    "Host": "%s.%s" % (NAME, self.fleet.domain)})
                r = conn.getresponse()
                body = r.read()
                close = r.getheader("Connection", "").lower() == "close"
            except (OSError, http.client.HTTPException) as e:
                self.fail("%s %s: %s: %s" % (node.id, path,
                                             type(e).__name__, e))
                conn.close()
                conn = None
                continue
            dt = time.time() - t0
            with self.lock:
                if dt > self.slowest.get(node.id, 0):
                    self.slowest[node.id] = dt
            if r.status == 200 and body == ("up %s\n" % path).encode():
                with self.lock:
                    self.ok += 1
            else:
                self.fail("%s %s: %d %r" % (node.id, path, r.status,
                                            body[:120]))
            if close:
                conn.close()
                conn = None
            time.sleep(0.002)
        if conn:
            conn.close()


def serving(nodes):
    for n in nodes:
        r = n.routes()
        if not r or NAME not in r or r[NAME].get("serving", 1) != 2:
            return False
    return True


def main():
    fleet = Fleet(WARREN, TMP, N)
    n1, n2, n3 = fleet.nodes
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(n2.http)
    sock.listen(1024)
    load = None
    try:
        # A malformed LISTEN_FDS is refused with a clear line.
        p = subprocess.run(node_args(fleet, n2, WARREN),
                           env=dict(os.environ, LISTEN_FDS="two"),
                           capture_output=True, text=True, timeout=20)
        check("bad LISTEN_FDS: exit 1 with a clear line",
              p.returncode == 1 and "LISTEN_FDS wants" in p.stderr,
              "exit %d: %r" % (p.returncode, p.stderr))

        srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Origin)
        srv.daemon_threads = True
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        bins = {}
        for n in (n1, n3):
            bins[n.id] = os.path.join(TMP, "warren-%s" % n.id)
            shutil.copy2(WARREN, bins[n.id])
            n.proc = subprocess.Popen(node_args(fleet, n, bins[n.id]),
                                      stdout=subprocess.DEVNULL,
                                      stderr=open(os.path.join(
                                          TMP, "%s-0.log" % n.id), "w"))
            n.log = os.path.join(TMP, "%s-0.log" % n.id)
            fleet.procs.append(n.proc)
        start_with_socket(fleet, n2, WARREN, sock)
        ok, _ = poll(lambda: fleet.all_alive(fleet.nodes), 30)
        check("three nodes alive", ok)
        c = Client(fleet, fleet.nodes, NAME, srv.server_address[1],
                   extra=["--links", "2"])
        ok, _ = poll(lambda: c.forwarding() and serving(fleet.nodes), 30)
        check("duo served from two nodes", ok, c.stderr()[-500:])
        inc0 = (n1.members() or {}).get("n2", {}).get("incarnation", -1)

        load = Load(fleet, [n2, n2, n3, n1, n3, n2])
        threads = [threading.Thread(target=load.worker, args=(k,),
                                    daemon=True) for k in range(6)]
        for th in threads:
            th.start()
        time.sleep(2)
        ok_before = load.ok

        newbin = os.path.join(TMP, "warren-v2")
        shutil.copy2(WARREN, newbin)
        t0 = time.time()
        n2.proc.send_signal(signal.SIGTERM)
        code = n2.proc.wait(timeout=DRAIN_TIMEOUT_MS / 1000 + 10)
        t_exit = time.time() - t0
        old_log = open(n2.log).read()
        check("handover: the old process drained and exited 0 (%.1f s)" %
              t_exit, code == 0 and "drain_done" in old_log,
              "exit %r" % code)
        start_with_socket(fleet, n2, newbin, sock)
        ok, t_acc = poll(lambda: "main accepting" in open(n2.log).read(),
                         20, 0.05)
        new_log = open(n2.log).read()
        check("handover: the new process took the socket and accepts after "
              "joining (%.1f s after its start)" % t_acc,
              ok and "inherited_socket fd=3" in new_log and
              "joined=1" in new_log, new_log[-600:])
        ok, _ = poll(lambda: fleet.all_alive(fleet.nodes) and
                     serving(fleet.nodes), 30)
        inc1 = (n1.members() or {}).get("n2", {}).get("incarnation", -1)
        check("identity: n2 alive everywhere at a higher incarnation "
              "(%d -> %d)" % (inc0, inc1), ok and inc1 > inc0)

        # -- the node's own upgrade: n3 execs a new file at its path --------
        def ctl(n, *args):
            return subprocess.run([WARRENCTL, "--admin", "%s:%d" % n.admin]
                                  + list(args), capture_output=True,
                                  text=True, timeout=90)
        tmpbin = bins["n3"] + ".new"
        shutil.copy2(WARREN, tmpbin)
        os.replace(tmpbin, bins["n3"])
        st0 = n3.status() or {}
        t0 = time.time()
        p = ctl(n3, "upgrade", "--wait")
        t_up = time.time() - t0
        st1 = n3.status() or {}
        log3 = open(n3.log).read()
        check("self-upgrade: warrenctl upgrade --wait exits 0 (%.1f s)" % t_up,
              p.returncode == 0 and "upgraded" in p.stdout,
              "exit %d: %r %r" % (p.returncode, p.stdout, p.stderr))
        check("self-upgrade: the same process, a new start time",
              n3.proc.poll() is None and st1.get("pid") == n3.proc.pid and
              st0.get("started_ms") and
              st1.get("started_ms", 0) > st0.get("started_ms", 0),
              "%r -> %r" % (st0.get("started_ms"), st1.get("started_ms")))
        check("self-upgrade: checked, drained, exec'd, took fd 3",
              "upgrade_check" in log3 and "drain_done" in log3 and
              "upgrade_exec" in log3 and "inherited_socket fd=3" in log3,
              log3[-800:])
        ok, _ = poll(lambda: fleet.all_alive(fleet.nodes) and
                     serving(fleet.nodes), 30)
        check("self-upgrade: n3 alive everywhere and serving again", ok)

        # -- refused: n1's path now holds a program that fails --version --
        tmpbin = bins["n1"] + ".new"
        with open(tmpbin, "w") as f:
            f.write("#!/bin/sh\nexit 3\n")
        os.chmod(tmpbin, 0o755)
        os.replace(tmpbin, bins["n1"])
        p = ctl(n1, "upgrade", "--wait")
        st = n1.status() or {}
        check("refused upgrade: warrenctl exits 1 naming the cause",
              p.returncode == 1 and "exited 3" in p.stderr,
              "exit %d: %r" % (p.returncode, p.stderr))
        check("refused upgrade: /status says failed, counted, still ready",
              st.get("upgrade", {}).get("state") == "failed" and
              n1.metric('warren_upgrades_total{result="refused"}') == 1 and
              n1.get("/readyz")[0] == 200, str(st.get("upgrade")))

        time.sleep(2)
        load.stop.set()
        for th in threads:
            th.join(timeout=20)
        total = load.ok + load.failed
        print("upgrade: %d requests, %d ok (%d after the upgrade began), %d "
              "failed, %d refused connects; old process drained in %.1f s; "
              "slowest request per node: %s" % (
                  total, load.ok, load.ok - ok_before, load.failed,
                  load.refused, t_exit,
                  ", ".join("%s %.2f s" % kv for kv in
                            sorted(load.slowest.items()))), flush=True)
        for f in load.failures:
            print("  failed: %s" % f)
        check("zero loss: 0 failed, 0 refused",
              load.failed == 0 and load.refused == 0 and load.ok > 100,
              "%d failed, %d refused" % (load.failed, load.refused))
    finally:
        if load:
            load.stop.set()
        fleet.stop()
        sock.close()
    if FAILED:
        print("logs in %s" % TMP)
    return 1 if FAILED else 0


if __name__ == "__main__":
    sys.exit(main())
