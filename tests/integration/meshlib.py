"""Shared pieces of the multi-node integration tests (routes5.py, ...):
real `warren node` processes on 127.0.0.x, their admin APIs, `warren http`
clients, a local origin, bounded polling and one-line check reports.

Every wait is bounded; Fleet.stop() kills every process it started, and
the tests call it in a finally block.
"""
import http.client
import http.server
import json
import os
import random
import signal
import socket
import subprocess
import threading
import time

FAILED = []


def check(name, cond, detail=""):
    print("%s %s%s" % ("ok  " if cond else "FAIL", name,
                        (": " + detail) if detail and not cond else ""),
          flush=True)
    if not cond:
        FAILED.append(name)
    return cond


def ip(i):
    return "127.0.0.%d" % i


def port_free(host, port, udp):
    s = socket.socket(socket.AF_INET,
                      socket.SOCK_DGRAM if udp else socket.SOCK_STREAM)
    try:
        s.bind((host, port))
        return True
    except OSError:
        return False
    finally:
        s.close()


def pick_base(hosts):
    """A base port B such that B (UDP+TCP gossip), B+1 (http) and B+2
    (admin) are free on every host."""
    rnd = random.Random()
    for _ in range(200):
        # below the ephemeral range (32768+): another test's outgoing
        # connection could take a port between this check and our bind
        b = rnd.randrange(20000, 32000, 3)
        if all(port_free(h, b, True) and port_free(h, b, False) and
               port_free(h, b + 1, False) and port_free(h, b + 2, False)
               for h in hosts):
            return b
    raise RuntimeError("no free port base")


def poll(fn, timeout, every=0.05):
    """Calls fn() until it returns a true value or timeout passes; returns
    (value, seconds waited)."""
    t0 = time.time()
    while True:
        v = fn()
        if v:
            return v, time.time() - t0
        if time.time() - t0 > timeout:
            return None, time.time() - t0
        time.sleep(every)


class Node:
    def __init__(self, fleet, i, join=None, extra=()):
        self.fleet = fleet
        self.i = i
        self.id = "n%d" % i
        self.join = join
        self.extra = list(extra)
        self.proc = None
        self.runs = 0

    @property
    def admin(self):
        return (ip(self.i), self.fleet.base + 2)

    @property
    def http(self):
        return (ip(self.i), self.fleet.base + 1)

    def start(self):
        b = self.fleet.base
        args = [self.fleet.warren, "node", "--id", self.id,
                "--http", "%s:%d" % self.http,
                "--admin", "%s:%d" % self.admin,
                "--gossip", "%s:%d" % (ip(self.i), b),
                "--domain", self.fleet.domain,
                "--key-file", self.fleet.key,
                "--gossip-profile", self.fleet.profile] + self.extra
        if self.join:
            args += ["--join", self.join]
        self.log = os.path.join(self.fleet.tmp,
                                "%s-%d.log" % (self.id, self.runs))
        self.runs += 1
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL,
                                     stderr=open(self.log, "w"))
        self.fleet.procs.append(self.proc)

    def kill(self):
        self.proc.kill()
        self.proc.wait()

    def alive_proc(self):
        return self.proc is not None and self.proc.poll() is None

    def get(self, path, timeout=2.0):
        c = http.client.HTTPConnection(*self.admin, timeout=timeout)
        try:
            c.request("GET", path)
            r = c.getresponse()
            return r.status, r.read()
        finally:
            c.close()

    def post_drain(self):
        """POST /drain on the admin API: (status, body), or (0, error)."""
        c = http.client.HTTPConnection(*self.admin, timeout=2.0)
        try:
            c.request("POST", "/drain", body=b"")
            r = c.getresponse()
            return r.status, r.read()
        except (OSError, http.client.HTTPException) as e:
            return 0, str(e).encode()
        finally:
            c.close()

    def get_json(self, path):
        """Parsed JSON of GET path, or None when unreachable or not 200."""
        try:
            st, body = self.get(path)
            return json.loads(body) if st == 200 else None
        except (OSError, ValueError, http.client.HTTPException):
            return None

    def members(self):
        m = self.get_json("/members")
        return {e["id"]: e for e in m} if m is not None else None

    def status(self):
        return self.get_json("/status")

    def routes(self):
        """{name: row} from GET /routes, or None."""
        r = self.get_json("/routes")
        return {e["name"]: e for e in r} if r is not None else None

    def metric(self, name):
        try:
            st, body = self.get("/metrics")
        except (OSError, http.client.HTTPException):
            return None
        for line in body.decode().splitlines():
            if line.startswith(name + " "):
                return float(line.rsplit(" ", 1)[1])
        return None

    def visit(self, name, path="/", timeout=5.0):
        """(status, body) of a visitor request for NAME through this node's
        public port, or (0, error text)."""
        c = http.client.HTTPConnection(*self.http, timeout=timeout)
        try:
            c.request("GET", path, headers={
                "Host": "%s.%s" % (name, self.fleet.domain)})
            r = c.getresponse()
            return r.status, r.read()
        except (OSError, http.client.HTTPException) as e:
            return 0, str(e).encode()
        finally:
            c.close()


class Client:
    """A `warren http PORT --node ...` process and what it printed (the
    inspector off: a fleet test starts more clients than it has ports).
    |node| is one Node, or a list of them (--node A,B,C: give --links in
    |extra| to hold other than the default two), or the --node text."""

    def __init__(self, fleet, node, name, origin_port, extra=(), env=None):
        self.name = name
        if isinstance(node, str):
            where = node  # as given: "dns:NAME:PORT"
        else:
            nodes = node if isinstance(node, (list, tuple)) else [node]
            where = ",".join("%s:%d" % n.http for n in nodes)
        args = [fleet.warren, "http", str(origin_port), "--node", where,
                "--fleet-key", fleet.pub,
                "--name", name, "--inspect", "off"] + list(extra)
        self.log = os.path.join(fleet.tmp, "client-%s-%d.log" %
                                (name, len(fleet.procs)))
        e = dict(os.environ)
        # Every client its own identity key unless the test says otherwise
        # (an identity is an account in an open fleet).
        e["WARREN_IDENTITY"] = os.path.join(fleet.tmp, "id-%s-%d" % (
            name, len(fleet.procs)))
        e.update(env or {})
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE,
                                     stderr=open(self.log, "w"), text=True,
                                     env=e)
        fleet.procs.append(self.proc)
        self.lines = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def forwarding(self):
        return next((l for l in self.lines if l.startswith("Forwarding")),
                    None)

    def stderr(self):
        with open(self.log) as f:
            return f.read()

    def exited(self):
        return self.proc.poll() is not None

    def bound_at(self, fleet):
        """Ids of the nodes whose /routes?name= lists an entry of this
        client's name that serves, as seen by the first live node."""
        for n in fleet.live():
            r = n.get_json("/routes?name=%s" % self.name)
            if r is not None:
                return sorted(c["owner"] for c in r["candidates"]
                              if c["verdict"] == "serves")
        return None


class _OriginHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        body = ("origin %s path %s\n" % (self.server.tag, self.path)).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *a):
        pass


def start_origin(tag):
    """A local HTTP server answering "origin TAG path P"; returns its
    port (daemon thread, lives as long as the test)."""
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _OriginHandler)
    srv.daemon_threads = True
    srv.tag = tag
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv.server_address[1]


class Fleet:
    def __init__(self, warren, tmp, n, domain="mesh.test", profile="local",
                 extra=lambda i: ()):
        self.warren = warren
        self.tmp = tmp
        self.domain = domain
        self.profile = profile
        self.procs = []
        self.key = os.path.join(tmp, "cluster.key")
        with open(self.key, "w") as f:
            subprocess.run([warren, "keygen"], stdout=f, check=True)
        self.pub = subprocess.run([warren, "pubkey", self.key],
                                  capture_output=True, text=True,
                                  check=True).stdout.strip()
        self.base = pick_base([ip(i) for i in range(1, n + 1)])
        seed = "%s:%d" % (ip(1), self.base)
        self.nodes = [Node(self, i, None if i == 1 else seed, extra(i))
                      for i in range(1, n + 1)]

    def start(self):
        for n in self.nodes:
            n.start()

    def live(self):
        return [n for n in self.nodes if n.alive_proc()]

    def all_alive(self, nodes=None):
        nodes = nodes or self.live()
        ids = [n.id for n in nodes]
        for n in nodes:
            m = n.members()
            if m is None or not all(i in m and m[i]["state"] == "alive"
                                    for i in ids):
                return False
        return True

    def digests(self, nodes=None):
        """{node id: routes_digest} (None for an unreachable node)."""
        return {n.id: (n.status() or {}).get("routes_digest")
                for n in (nodes or self.live())}

    def converged(self, nodes=None):
        d = self.digests(nodes)
        return None not in d.values() and len(set(d.values())) == 1

    def stop(self):
        for p in self.procs:
            if p.poll() is None:
                try:
                    p.send_signal(signal.SIGKILL)
                except OSError:
                    pass
        for p in self.procs:
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
