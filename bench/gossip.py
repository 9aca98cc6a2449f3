#!/usr/bin/env python3
"""bench/gossip.py: membership, warren vs HashiCorp serf, on loopback (issue 4).
Run through bench/gossip.sh, which checks the tools and cleans up after it.

usage: gossip.py WARREN_BIN SERF_BIN OUT_JSON TMPDIR
       gossip.py --table OUT_JSON     (the tables of a finished run again)

For each N (GB_NS, default "10 20 50") and system (warren, then serf; one
fleet at a time, node i on 127.0.0.i, node 1 the seed, both encrypted):

  start     node 1, then nodes 2..N joining through it; wait until every
            node has logged every other one alive (bounded)
  idle      GB_IDLE_S (60) quiet seconds: bytes and packets each node
            sends on its gossip port (UDP and TCP, IP headers included),
            counted by an nftables set on lo's output hook keyed by source
            address; then VmRSS and smaps_rollup (Pss, Private) per node
  events    GB_EVENTS (10) user events, each from another node: time from
            the request to the first log line of it at every other node
  kills     GB_KILLS (5) times: kill -9 one node (each time another, never
            the seed), time until each other node logs it dead/failed;
            restart it and wait until everyone has it alive again.  A
            killed process's host is up, so its kernel refuses datagrams
            to the dead port (ICMP port unreachable)
  freezes   GB_FREEZES (3) times the same with SIGSTOP instead (a frozen
            process, or a host that went silent: no refusal), then
            SIGKILL, restart, wait; target (issue 14): the median at most
            half serf's, like kill -9
  false     any other member logged dead/failed (suspect) at any node
            during the whole fleet run = false death (false suspicion)

Every log line is stamped by this driver when it arrives on the node's
stderr/stdout pipe (time.time()), for both systems alike: serf logs with
1 s resolution and its event handlers run after a 1-3 s member-event
coalescing window, so neither would time what the protocol does.  warren's
own millisecond timestamps are kept as a cross-check.

GB_LOCAL_NS (default ""): the same run with both systems' local profile
for these N (extra rows; "10" adds about 4.5 minutes).  Prints a Markdown table and
writes every raw number to OUT_JSON.
"""
import base64
import http.client
import json
import os
import random
import re
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time

if len(sys.argv) == 3 and sys.argv[1] == "--table":
    # Re-print the tables of a finished run from its OUT_JSON (main()
    # below is not run: the definitions it needs come first).
    WARREN = SERF = OUT = TMP = None
else:
    WARREN, SERF, OUT, TMP = sys.argv[1:5]
NS = [int(x) for x in os.environ.get("GB_NS", "10 20 50").split()]
LOCAL_NS = [int(x) for x in os.environ.get("GB_LOCAL_NS", "").split()]
IDLE_S = float(os.environ.get("GB_IDLE_S", "60"))
EVENTS = int(os.environ.get("GB_EVENTS", "10"))
KILLS = int(os.environ.get("GB_KILLS", "5"))
FREEZES = int(os.environ.get("GB_FREEZES", "3"))
SYSTEMS = os.environ.get("GB_SYSTEMS", "warren serf").split()
CONVERGE_S = 60      # after each restart
JOIN_S = 90          # start: above serf's push-pull period at n = 50 (60 s)
DETECT_S = 90        # kill -> dead everywhere (LAN max suspicion at n=50: 41 s)
EVENT_S = 15         # user event everywhere
SETTLE_S = 3         # after convergence, before measuring
TABLE = "gbench_%d" % os.getpid()

LOCK = threading.Condition()
PROCS = []           # every Popen we started, for the cleanup
PIDFILE = os.path.join(TMP, "pids") if TMP else None


def log(msg):
    print("[%s] %s" % (time.strftime("%H:%M:%S"), msg), file=sys.stderr,
          flush=True)


# ---- processes and their logs ----

W_MEMBER = re.compile(r"^(\S+) \w+ swim member id=(\S+) state=(\w+) ")
W_EVENT = re.compile(r"^(\S+) \w+ main user_event key=event/(\S+) ")
S_JOIN = re.compile(r"serf: EventMember(Join|Failed|Leave|Reap): (\S+) ")
S_SUSPECT = re.compile(r"memberlist: Suspect (\S+) has failed")
S_EVENT = re.compile(r"serf: messageUserEventType: (\S+)")
SERF_STATE = {"Join": "alive", "Failed": "dead", "Leave": "left",
              "Reap": "reaped"}


def iso_ts(s):
    """warren's 2026-11-23T10:22:48.809Z -> epoch seconds."""
    import calendar
    t = time.strptime(s[:19], "%Y-%m-%dT%H:%M:%S")
    return calendar.timegm(t) + int(s[20:23]) / 1000.0


class Node:
    def __init__(self, fleet, i):
        self.fleet, self.i, self.id = fleet, i, "n%d" % i
        self.ip = "127.0.0.%d" % i
        self.proc = None
        self.view = {}       # member id -> state, from this run's log
        self.events = []     # (t, kind, member/name, state, own_ts)
        self.runs = 0
        self.ready = False

    def start(self, join):
        args = self.fleet.args(self, join)
        self.view, self.ready = {}, False
        logf = open(os.path.join(self.fleet.dir, "%s-%d.log" % (self.id,
                                                                self.runs)),
                    "w")
        self.runs += 1
        env = dict(os.environ, WARREN_LOG="info")
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, env=env)
        PROCS.append(self.proc)
        with open(PIDFILE, "a") as f:
            f.write("%d\n" % self.proc.pid)
        threading.Thread(target=self.reader, args=(self.proc, logf),
                         daemon=True).start()

    def reader(self, proc, logf):
        parse = self.fleet.parse
        for raw in proc.stdout:
            t = time.time()
            line = raw.decode("utf-8", "replace").rstrip("\n")
            logf.write("%.6f %s\n" % (t, line))
            ev = parse(line)
            if not ev:
                continue
            with LOCK:
                if proc is not self.proc:
                    continue
                kind, what, state, own = ev
                if kind == "ready":
                    self.ready = True
                elif kind == "member" and what != self.id:
                    # serf logs a suspicion (at the prober) but not its
                    # refutation: it is counted, it does not change the view.
                    if state != "suspect" or self.fleet.name == "warren":
                        self.view[what] = state
                    self.events.append((t, kind, what, state, own))
                elif kind == "user":
                    self.events.append((t, kind, what, None, own))
                LOCK.notify_all()
        logf.close()

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def kill(self):
        if self.running():
            self.proc.kill()
        if self.proc is not None:
            self.proc.wait()

    def mem(self):
        out = {}
        try:
            with open("/proc/%d/status" % self.proc.pid) as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        out["rss"] = int(line.split()[1])
            with open("/proc/%d/smaps_rollup" % self.proc.pid) as f:
                for line in f:
                    k, _, v = line.partition(":")
                    if k in ("Pss", "Private_Clean", "Private_Dirty",
                             "Shared_Clean"):
                        out[k] = int(v.split()[0])
        except OSError:
            return None
        out["private"] = out.get("Private_Clean", 0) + out.get("Private_Dirty", 0)
        return out


def wait_for(pred, timeout, every=0.05):
    """Waits until pred() (called under LOCK) is true; returns it or None."""
    end = time.time() + timeout
    with LOCK:
        while True:
            v = pred()
            if v:
                return v
            left = end - time.time()
            if left <= 0:
                return None
            LOCK.wait(min(every, left))


class Fleet:
    def __init__(self, n, profile):
        self.n, self.profile = n, profile
        self.dir = os.path.join(TMP, "%s-%s-%d" % (self.name, profile, n))
        os.makedirs(self.dir, exist_ok=True)
        self.nodes = [Node(self, i) for i in range(1, n + 1)]

    def seed(self):
        return "127.0.0.1:%d" % self.port

    def start_all(self):
        self.nodes[0].start(None)
        if not wait_for(lambda: self.nodes[0].ready, 15):
            raise RuntimeError("%s: seed did not start" % self.name)
        for nd in self.nodes[1:]:
            nd.start(self.seed())

    def converged(self):
        live = [nd for nd in self.nodes if nd.running()]
        ids = [nd.id for nd in live]
        return all(all(nd.view.get(i) == "alive" for i in ids if i != nd.id)
                   for nd in live) and len(live) == self.n

    def stop(self):
        for nd in self.nodes:
            nd.kill()


class WarrenFleet(Fleet):
    name = "warren"

    def __init__(self, n, profile, port):
        self.port = port
        super().__init__(n, profile)
        self.key = os.path.join(self.dir, "cluster.key")
        with open(self.key, "w") as f:
            subprocess.run([WARREN, "keygen"], stdout=f, check=True)

    def args(self, nd, join):
        a = [WARREN, "node", "--id", nd.id,
             "--http", "%s:%d" % (nd.ip, self.port + 1),
             "--admin", "%s:%d" % (nd.ip, self.port + 2),
             "--gossip", "%s:%d" % (nd.ip, self.port),
             "--domain", "gbench.test", "--key-file", self.key,
             "--gossip-profile", self.profile]
        return a + (["--join", join] if join else [])

    @staticmethod
    def parse(line):
        m = W_MEMBER.match(line)
        if m:
            return ("member", m.group(2), m.group(3), iso_ts(m.group(1)))
        m = W_EVENT.match(line)
        if m:
            return ("user", m.group(2), None, iso_ts(m.group(1)))
        if " main node_started " in line:
            return ("ready", None, None, None)
        return None

    def send_event(self, nd, name):
        c = http.client.HTTPConnection(nd.ip, self.port + 2, timeout=5)
        c.connect()
        t0 = time.time()
        c.request("POST", "/events?name=" + name, body=b"x" * 16)
        r = c.getresponse()
        body = r.read()
        c.close()
        if r.status != 200:
            raise RuntimeError("POST /events: %d %r" % (r.status, body))
        return t0


# ---- serf: a minimal msgpack RPC client (handshake + event) ----

def mp_enc(v):
    if isinstance(v, bool):
        return b"\xc3" if v else b"\xc2"
    if isinstance(v, int):
        return bytes([v]) if 0 <= v < 128 else b"\xcf" + v.to_bytes(8, "big")
    if isinstance(v, (str, bytes)):
        b = v.encode() if isinstance(v, str) else v
        if len(b) < 32:
            return bytes([0xa0 | len(b)]) + b
        return b"\xd9" + bytes([len(b)]) + b
    if isinstance(v, dict):
        return bytes([0x80 | len(v)]) + b"".join(mp_enc(k) + mp_enc(x)
                                                for k, x in v.items())
    raise TypeError(v)


def mp_dec(b, i=0):
    """(value, next index); raises IndexError when b is incomplete."""
    c = b[i]
    if c < 0x80:
        return c, i + 1
    if 0x80 <= c <= 0x8f:
        d, i = {}, i + 1
        for _ in range(c & 15):
            k, i = mp_dec(b, i)
            d[k], i = mp_dec(b, i)
        return d, i
    if 0xa0 <= c <= 0xbf:
        n = c & 31
        if i + 1 + n > len(b):
            raise IndexError
        return b[i + 1:i + 1 + n].decode(), i + 1 + n
    if c in (0xd9, 0xc4):
        n = b[i + 1]
        if i + 2 + n > len(b):
            raise IndexError
        return b[i + 2:i + 2 + n].decode(), i + 2 + n
    if c == 0xc0:
        return None, i + 1
    if c in (0xc2, 0xc3):
        return c == 0xc3, i + 1
    if 0xcc <= c <= 0xcf:
        n = 1 << (c - 0xcc)
        if i + 1 + n > len(b):
            raise IndexError
        return int.from_bytes(b[i + 1:i + 1 + n], "big"), i + 1 + n
    raise ValueError("msgpack byte 0x%02x" % c)


class SerfRPC:
    def __init__(self, host, port):
        self.s = socket.create_connection((host, port), timeout=5)
        self.buf, self.seq = b"", 0
        self.call("handshake", {"Version": 1})

    def send(self, cmd, body):
        self.s.sendall(mp_enc({"Command": cmd, "Seq": self.seq}) +
                       mp_enc(body))
        self.seq += 1

    def reply(self):
        while True:
            try:
                h, i = mp_dec(self.buf)
                self.buf = self.buf[i:]
                if h.get("Error"):
                    raise RuntimeError("serf rpc: %s" % h["Error"])
                return h
            except IndexError:
                chunk = self.s.recv(4096)
                if not chunk:
                    raise RuntimeError("serf rpc: closed")
                self.buf += chunk

    def call(self, cmd, body):
        self.send(cmd, body)
        return self.reply()

    def close(self):
        self.s.close()


class SerfFleet(Fleet):
    name = "serf"

    def __init__(self, n, profile, port):
        self.port = port
        super().__init__(n, profile)
        self.key = base64.b64encode(os.urandom(32)).decode()

    def args(self, nd, join):
        a = [SERF, "agent", "-node=" + nd.id,
             "-bind=%s:%d" % (nd.ip, self.port),
             "-rpc-addr=%s:%d" % (nd.ip, self.port + 1),
             "-encrypt=" + self.key, "-profile=" + self.profile,
             "-log-level=debug", "-tag", "gbench=" + os.path.basename(TMP)]
        return a + (["-join=" + join] if join else [])

    @staticmethod
    def parse(line):
        m = S_JOIN.search(line)
        if m:
            return ("member", m.group(2), SERF_STATE[m.group(1)], None)
        m = S_SUSPECT.search(line)
        if m:
            return ("member", m.group(1), "suspect", None)
        m = S_EVENT.search(line)
        if m:
            return ("user", m.group(1), None, None)
        if "Serf agent running!" in line:
            return ("ready", None, None, None)
        return None

    def send_event(self, nd, name):
        rpc = SerfRPC(nd.ip, self.port + 1)
        t0 = time.time()
        rpc.call("event", {"Name": name, "Payload": b"x" * 16,
                           "Coalesce": False})
        rpc.close()
        return t0


# ---- traffic counters ----

def nft(cmd, inp=None):
    return subprocess.run(["nft"] + cmd, input=inp, capture_output=True,
                          text=True, check=True).stdout


def nft_setup(ports):
    ps = ", ".join(str(p) for p in ports)
    nft(["-f", "-"], """
table inet %s {
  set tx { type ipv4_addr . inet_proto; flags dynamic; counter; size 4096; }
  chain out {
    type filter hook output priority 0; policy accept;
    oifname "lo" meta l4proto { tcp, udp } th sport { %s } update @tx { ip saddr . meta l4proto }
    oifname "lo" meta l4proto { tcp, udp } th sport != { %s } th dport { %s } update @tx { ip saddr . meta l4proto }
  }
}
""" % (TABLE, ps, ps, ps))


def nft_read():
    """{(ip, 'udp'|'tcp'): (packets, bytes)}"""
    j = json.loads(nft(["-j", "list", "set", "inet", TABLE, "tx"]))
    out = {}
    for it in j["nftables"]:
        for e in it.get("set", {}).get("elem", []):
            e = e["elem"]
            ip, proto = e["val"]["concat"]
            out[(ip, proto)] = (e["counter"]["packets"], e["counter"]["bytes"])
    return out


def nft_cleanup():
    subprocess.run(["nft", "delete", "table", "inet", TABLE],
                   capture_output=True)


# ---- one fleet ----

def med(v):
    return statistics.median(v) if v else None


def run_fleet(cls, n, profile, port):
    f = cls(n, profile, port)
    r = {"system": f.name, "profile": profile, "n": n}
    t_start = time.time()
    log("%s %s n=%d: starting" % (f.name, profile, n))
    allowed = []   # (member, t_from, t_to): deaths of a killed node
    try:
        f.start_all()
        ok = wait_for(f.converged, JOIN_S, 0.2)
        r["converge_s"] = round(time.time() - t_start, 2)
        if not ok:
            raise RuntimeError("no convergence after %d s" % JOIN_S)
        time.sleep(SETTLE_S)

        # idle
        log("%s n=%d: converged in %.1f s; idle %d s" % (f.name, n,
                                                         r["converge_s"],
                                                         IDLE_S))
        subprocess.run(["nft", "flush", "set", "inet", TABLE, "tx"],
                       check=True)
        t0 = time.time()
        time.sleep(IDLE_S)
        c = nft_read()
        dt = time.time() - t0
        ips = {nd.ip for nd in f.nodes}
        tot = {"udp": [0, 0], "tcp": [0, 0]}
        per_node = []
        for nd in f.nodes:
            pb = [0, 0]
            for proto in ("udp", "tcp"):
                p, b = c.get((nd.ip, proto), (0, 0))
                tot[proto][0] += p
                tot[proto][1] += b
                pb[0] += p
                pb[1] += b
            per_node.append(pb[1] / dt)
        stray = {k: v for k, v in c.items() if k[0] not in ips}
        r["idle"] = {
            "seconds": round(dt, 2),
            "bytes_per_node_s": (tot["udp"][1] + tot["tcp"][1]) / n / dt,
            "pkts_per_node_s": (tot["udp"][0] + tot["tcp"][0]) / n / dt,
            "udp_bytes_per_node_s": tot["udp"][1] / n / dt,
            "tcp_bytes_per_node_s": tot["tcp"][1] / n / dt,
            "udp_pkts_per_node_s": tot["udp"][0] / n / dt,
            "tcp_pkts_per_node_s": tot["tcp"][0] / n / dt,
            "max_node_bytes_s": max(per_node),
            "stray": {"%s/%s" % k: v for k, v in stray.items()},
        }
        mems = [m for m in (nd.mem() for nd in f.nodes) if m]
        r["mem_kib"] = {k: {"median": med([m[k] for m in mems]),
                            "max": max(m[k] for m in mems)}
                        for k in ("rss", "Pss", "private")}

        # user events
        lat_all, lat_member = [], []
        for k in range(EVENTS):
            origin = f.nodes[(1 + k * max(1, (n - 1) // max(1, EVENTS))) % n]
            name = "gb%d_%d_%04x" % (n, k, random.randrange(65536))
            others = [nd for nd in f.nodes if nd is not origin]
            t0 = f.send_event(origin, name)

            def got():
                seen = {}
                for nd in others:
                    for (t, kind, what, _, own) in nd.events:
                        if kind == "user" and what == name:
                            seen[nd.id] = (t, own)
                            break
                    else:
                        return None
                return seen
            seen = wait_for(got, EVENT_S)
            if not seen:
                lat_all.append(None)
                log("%s n=%d: event %s did not reach everyone" % (f.name, n,
                                                                 name))
                continue
            lats = [t - t0 for (t, _) in seen.values()]
            lat_all.append(max(lats))
            lat_member += lats
            if f.name == "warren":
                r.setdefault("event_own_minus_arrival_ms", []).extend(
                    (own - t) * 1000 for (t, own) in seen.values())
            time.sleep(1)
        r["events"] = {"all": lat_all, "member_median": med(lat_member)}

        # failure detection: kill -9 (a crashed process; its host is up
        # and refuses datagrams to the dead port), then SIGSTOP (a frozen
        # process or a host that stopped answering: silence, no refusal)
        def detect(how, count):
            kills = []
            for k in range(count):
                # every node but the seed, spread out; freezes start
                # half a stride later so they pick other victims
                off = 0 if how == "kill" else (n - 1) // (2 * count)
                victim = f.nodes[1 + (off + (k * (n - 1)) // count) % (n - 1)] \
                    if count <= n - 1 else f.nodes[1 + k % (n - 1)]
                others = [nd for nd in f.nodes if nd is not victim]
                t_kill = time.time()
                if how == "stop":
                    victim.proc.send_signal(signal.SIGSTOP)
                else:
                    victim.kill()

                def dead_everywhere():
                    seen = {}
                    for nd in others:
                        for (t, kind, what, state, own) in nd.events:
                            if (kind == "member" and what == victim.id and
                                    state == "dead" and t >= t_kill):
                                seen[nd.id] = (t, own)
                                break
                        else:
                            return None
                    return seen
                seen = wait_for(dead_everywhere, DETECT_S, 0.1)
                t_det = time.time()
                if seen:
                    lats = sorted(t - t_kill for (t, _) in seen.values())
                    kills.append({"victim": victim.id, "first": lats[0],
                                  "all": lats[-1], "median": med(lats)})
                    if f.name == "warren":
                        r.setdefault("dead_own_minus_arrival_ms", []).extend(
                            (own - t) * 1000 for (t, own) in seen.values())
                else:
                    with LOCK:
                        partial = {nd.id: [e for e in nd.events if e[2] ==
                                           victim.id and e[0] >= t_kill]
                                   for nd in others}
                    kills.append({"victim": victim.id, "first": None,
                                  "all": None, "timeout": DETECT_S,
                                  "partial": {k2: [(round(e[0] - t_kill, 2), e[3])
                                                   for e in v]
                                              for k2, v in partial.items()}})
                log("%s n=%d: %s %s -> %s" % (
                    f.name, n, how, victim.id,
                    "first %.2f s, all %.2f s" % (kills[-1]["first"],
                                                 kills[-1]["all"])
                    if seen else "TIMEOUT"))
                victim.kill()  # SIGKILL also ends a stopped process
                victim.start(f.seed())
                okc = wait_for(f.converged, CONVERGE_S, 0.2)
                t_conv = time.time()
                allowed.append((victim.id, t_kill, t_conv + SETTLE_S))
                kills[-1]["rejoin_s"] = round(t_conv - t_det, 2) if okc else None
                if not okc:
                    log("%s n=%d: no convergence after restarting %s" %
                        (f.name, n, victim.id))
                    return kills
                time.sleep(SETTLE_S)
            return kills

        r["kills"] = detect("kill", KILLS)
        if FREEZES:
            r["freezes"] = detect("stop", FREEZES)
    except Exception as e:  # recorded, the run goes on with the next fleet
        r["error"] = str(e)
        log("%s n=%d: ERROR %s" % (f.name, n, e))
    finally:
        # false deaths / suspicions over the whole fleet run
        with LOCK:
            fd, fs = [], []
            for nd in f.nodes:
                for (t, kind, what, state, _) in nd.events:
                    if kind != "member" or state not in ("dead", "suspect"):
                        continue
                    if any(w == what and a <= t <= b for (w, a, b) in allowed):
                        continue
                    (fd if state == "dead" else fs).append(
                        (round(t - t_start, 2), nd.id, what))
        r["false_deaths"], r["false_suspicions"] = fd, fs
        f.stop()
        r["wall_s"] = round(time.time() - t_start, 1)
    return r


# ---- report ----

def fmt_s(v):
    return "–" if v is None else "%.2f" % v


def mm(vals):
    """'median / max' of the non-None values, 'timeout' marked."""
    ok = [v for v in vals if v is not None]
    if not ok:
        return "timeout" if vals else "–"
    s = "%s / %s" % (fmt_s(med(ok)), fmt_s(max(ok)))
    if len(ok) < len(vals):
        s += " (%d of %d missed)" % (len(vals) - len(ok), len(vals))
    return s


def table(results):
    rows = ["| system | profile | N | detect first (s) p50 / max | "
            "detect all (s) p50 / max | SIGSTOP: detect all (s) p50 / max | "
            "false deaths (suspicions) | "
            "join: all see all (s) | "
            "dissemination all (s) p50 / max | idle B/s per node (UDP+TCP) | "
            "idle pkt/s per node | VmRSS KiB p50 | Pss KiB p50 | "
            "Private KiB p50 |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        if "idle" not in r:
            rows.append("| %s | %s | %d | error: %s ||||||||||" % (
                r["system"], r["profile"], r["n"], r.get("error")))
            continue
        k = r.get("kills", [])
        i = r["idle"]
        m = r["mem_kib"]
        rows.append("| %s | %s | %d | %s | %s | %s | %d (%d) | %s | %s | %.0f (%.0f+%.0f) | "
                    "%.1f | %.0f | %.0f | %.0f |" % (
                        r["system"], r["profile"], r["n"],
                        mm([x["first"] for x in k]),
                        mm([x["all"] for x in k]),
                        mm([x["all"] for x in r.get("freezes", [])]),
                        len(r["false_deaths"]), len(r["false_suspicions"]),
                        fmt_s(r.get("converge_s")),
                        mm(r.get("events", {}).get("all", [])),
                        i["bytes_per_node_s"], i["udp_bytes_per_node_s"],
                        i["tcp_bytes_per_node_s"], i["pkts_per_node_s"],
                        m["rss"]["median"], m["Pss"]["median"],
                        m["private"]["median"]))
    return "\n".join(rows)


def verdicts(results):
    by = {(r["system"], r["profile"], r["n"]): r for r in results}
    rows = ["| N | detect all p50 warren/serf (≤ 0.5) | false deaths warren "
            "(= 0) | dissemination p50 warren/serf (≤ 0.5) | idle bytes "
            "warren/serf (≤ 1) | warren Pss ≤ 4 MiB (RSS) | SIGSTOP detect "
            "all p50 warren/serf (≤ 0.5, issue 14) |",
            "|---|---|---|---|---|---|---|"]

    def ratio(a, b):
        if a is None or b is None or b == 0:
            return None
        return a / b

    for (s, p, n), w in sorted(by.items(), key=lambda x: (x[0][1], x[0][2])):
        if s != "warren" or ("serf", p, n) not in by:
            continue
        sf = by[("serf", p, n)]
        if "idle" not in w or "idle" not in sf:
            continue

        def p50(r, key):
            v = [x for x in (r.get(key) or []) if x is not None]
            return med(v)
        wd = med([x["all"] for x in w.get("kills", []) if x["all"] is not None])
        sd = med([x["all"] for x in sf.get("kills", []) if x["all"] is not None])
        we = p50(w.get("events", {}), "all")
        se = p50(sf.get("events", {}), "all")
        rd, re_ = ratio(wd, sd), ratio(we, se)
        rb = ratio(w["idle"]["bytes_per_node_s"], sf["idle"]["bytes_per_node_s"])
        pss = w["mem_kib"]["Pss"]["median"]
        rss = w["mem_kib"]["rss"]["median"]

        def v(x, lim):
            if x is None:
                return "–"
            return "%.2f× %s" % (x, "met" if x <= lim else "**missed**")
        wf = med([x["all"] for x in w.get("freezes", []) if x["all"] is not None])
        sff = med([x["all"] for x in sf.get("freezes", []) if x["all"] is not None])
        rf = ratio(wf, sff)
        rows.append("| %d%s | %s | %d %s | %s | %s | %.1f MiB Pss %s (RSS %.1f MiB %s) | %s |" % (
            n, "" if p == "lan" else " (" + p + ")", v(rd, 0.5),
            len(w["false_deaths"]),
            "met" if not w["false_deaths"] else "**missed**",
            v(re_, 0.5), v(rb, 1.0), pss / 1024,
            "met" if pss <= 4096 else "**missed**", rss / 1024,
            "met" if rss <= 4096 else "**missed**",
            v(rf, 0.5)))
    return "\n".join(rows)


def free_base(hosts, width):
    rnd = random.Random()
    for _ in range(300):
        # below the ephemeral range (32768+), where a test's outgoing
        # connection could take a port between our check and our bind
        b = rnd.randrange(20000, 32000, 10)
        ok = True
        for h in hosts:
            for p in range(b, b + width):
                for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
                    s = socket.socket(socket.AF_INET, kind)
                    try:
                        s.bind((h, p))
                    except OSError:
                        ok = False
                    finally:
                        s.close()
                    if not ok:
                        break
                if not ok:
                    break
            if not ok:
                break
        if ok:
            return b
    raise RuntimeError("no free port base")


def on_signal(sig, frame):
    raise SystemExit(128 + sig)


def main():
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    hosts = ["127.0.0.%d" % i for i in range(1, max(NS + LOCAL_NS) + 1)]
    base = free_base(hosts, 20)
    wport, sport = base, base + 10
    nft_setup([wport, sport])
    results = []
    plan = [(n, "lan") for n in NS] + [(n, "local") for n in LOCAL_NS]
    try:
        for n, prof in plan:
            for s in SYSTEMS:
                cls = WarrenFleet if s == "warren" else SerfFleet
                results.append(run_fleet(cls, n, prof,
                                         wport if s == "warren" else sport))
                with open(OUT, "w") as f:
                    json.dump(results, f, indent=1)
                time.sleep(2)   # the last fleet's packets drain
    finally:
        for p in PROCS:
            if p.poll() is None:
                p.kill()
        for p in PROCS:
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
        nft_cleanup()
    print(table(results))
    print()
    print(verdicts(results))
    bad = [r for r in results if "error" in r or r.get("false_deaths")]
    return 1 if bad else 0


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--table":
        with open(sys.argv[2]) as f:
            saved = json.load(f)
        print(table(saved))
        print()
        print(verdicts(saved))
        sys.exit(0)
    sys.exit(main())
