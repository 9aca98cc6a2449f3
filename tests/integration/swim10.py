#!/usr/bin/env python3
"""Membership with real processes (issue 4): ten `warren node`s on
127.0.0.1 .. 127.0.0.10, gossiping over UDP, syncing over TCP, watched
through their admin APIs (GET /members, /metrics).

usage: swim10.py WARREN_BINARY [WARRENCTL_BINARY]

Checks, in order:
  join      all ten see each other alive (n10 joins with --join dns:localhost:P)
  kill -9   every other node marks the killed one dead within a bound
  restart   the same id comes back alive everywhere at a higher incarnation
  leave     SIGTERM: "left" everywhere, never "dead" (polled throughout)
  intruder  a node with another --key-file is never admitted anywhere, and
            its packets are counted as badseal in /metrics
Every wait is bounded; every process is killed at the end, also on failure.
Prints one line per check, the measured times, and exits non-zero when any
check failed.  Ports: one base picked at random and checked free on every
address (so two checkouts running the suite at once do not collide).
"""
import http.client
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from meshlib import FAILED, check, ip, pick_base, poll  # noqa: E402

WARREN = os.path.abspath(sys.argv[1])
WARRENCTL = os.path.abspath(sys.argv[2]) if len(sys.argv) > 2 else None
TMP = tempfile.mkdtemp(prefix="warren-swim10-")
N = 10
PROFILE = os.environ.get("SWIM10_PROFILE", "local")
NODES = []
MEASURED = {}


class Node:
    def __init__(self, i, key, join=None, nid=None):
        self.i = i
        self.id = nid or "n%d" % i
        self.key = key
        self.join = join
        self.proc = None
        self.runs = 0

    @property
    def admin(self):
        return (ip(self.i), BASE + 2)

    def start(self):
        args = [WARREN, "node", "--id", self.id,
                "--http", "%s:%d" % (ip(self.i), BASE + 1),
                "--admin", "%s:%d" % self.admin,
                "--gossip", "%s:%d" % (ip(self.i), BASE),
                "--domain", "mesh.test", "--key-file", self.key,
                "--gossip-profile", PROFILE,
                "--region", "r%d" % (self.i % 3), "--tags", "rack=%d" % self.i]
        if self.join:
            args += ["--join", self.join]
        self.log = os.path.join(TMP, "%s-%d.log" % (self.id, self.runs))
        self.runs += 1
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL,
                                     stderr=open(self.log, "w"))

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

    def members(self):
        """{id: entry} from GET /members, or None when unreachable."""
        try:
            st, body = self.get("/members")
            if st != 200:
                return None
            return {m["id"]: m for m in json.loads(body)}
        except (OSError, ValueError, http.client.HTTPException):
            return None

    def metric(self, name):
        try:
            st, body = self.get("/metrics")
        except (OSError, http.client.HTTPException):
            return None
        for line in body.decode().splitlines():
            if line.startswith(name + " "):
                return float(line.rsplit(" ", 1)[1])
        return None


def views(nodes):
    return {n.id: n.members() for n in nodes}


def everyone_sees(nodes, want):
    """want(id, entry_or_None) must hold for every node's view."""
    for n in nodes:
        m = n.members()
        if m is None or not want(m):
            return False
    return True


def all_alive(nodes, ids):
    return everyone_sees(nodes, lambda m: all(
        i in m and m[i]["state"] == "alive" for i in ids))


def main():
    global BASE
    key = os.path.join(TMP, "cluster.key")
    bad = os.path.join(TMP, "other.key")
    for k in (key, bad):
        with open(k, "w") as f:
            subprocess.run([WARREN, "keygen"], stdout=f, check=True)
    BASE = pick_base([ip(i) for i in range(1, N + 2)])
    seed = "%s:%d" % (ip(1), BASE)
    for i in range(1, N + 1):
        join = None if i == 1 else seed
        if i == N:
            join = "dns:localhost:%d" % BASE  # localhost -> 127.0.0.1 (n1)
        NODES.append(Node(i, key, join))
    for n in NODES:
        n.start()
    ids = [n.id for n in NODES]

    _, t = poll(lambda: all(n.members() is not None for n in NODES), 15)
    if not check("ten admin APIs answer", all(n.alive_proc() for n in NODES)
                 and all(n.members() is not None for n in NODES)):
        return
    # Ten joins within ~100 ms: most views fill by gossip at once, the rest
    # by the next anti-entropy sync (first at 7.5-15 s in the local profile).
    ok, t = poll(lambda: all_alive(NODES, ids), 60, 0.2)
    MEASURED["join_all_alive_s"] = round(t, 2)
    check("all ten see all ten alive (self included)", ok,
          json.dumps({k: sorted((i, e["state"]) for i, e in (v or {}).items())
                      for k, v in views(NODES).items()})[:1500])
    if not ok:
        return
    m1 = NODES[0].members()
    e10 = m1.get("n10", {})
    check("/members entries carry the contract fields",
          all(k in e10 for k in ("id", "addr", "state", "incarnation")) and
          e10.get("addr") == "%s:%d" % (ip(10), BASE), json.dumps(e10))
    admin10 = "%s:%d" % (ip(10), BASE + 2)
    tags = e10.get("tags", "")
    check("region and tags travel in ALIVE (the node adds its admin address "
          "and its routes epoch)",
          e10.get("region") == "r1" and
          tags.startswith("rack=10,admin=" + admin10 + ",re=") and
          tags.rsplit("=", 1)[1].isdigit() and
          e10.get("admin") == admin10, json.dumps(e10))
    dns_log = open(NODES[-1].log).read()
    check("n10 joined through dns:localhost", "event=joined" in dns_log or
          " joined " in dns_log, dns_log[-800:])
    st, body = NODES[0].get("/status")
    s = json.loads(body) if st == 200 else {}
    check("/status counts ten alive", s.get("members", {}).get("alive") == N,
          body.decode()[:300])

    # ---- kill -9 ----
    victim = NODES[4]
    others = [n for n in NODES if n is not victim]
    inc_before = max(n.members()[victim.id]["incarnation"] for n in others)
    victim.proc.kill()
    victim.proc.wait()
    t0 = time.time()
    first = {}
    deadline = t0 + 40
    bad_state = []
    while time.time() < deadline and len(first) < len(others):
        for n in others:
            if n.id in first:
                continue
            m = n.members()
            e = (m or {}).get(victim.id)
            if e and e["state"] == "left":
                bad_state.append(n.id)
            if e and e["state"] == "dead":
                first[n.id] = (time.time() - t0, e["incarnation"])
        time.sleep(0.1)
    detect = sorted(v[0] for v in first.values())
    if detect:
        MEASURED["kill_detect_first_s"] = round(detect[0], 2)
        MEASURED["kill_detect_all_s"] = round(detect[-1], 2)
    check("kill -9: all nine others mark it dead within 40 s",
          len(first) == len(others), "saw dead at %s" % sorted(first))
    check("kill -9: nobody calls a crashed node 'left'", not bad_state,
          str(bad_state))
    inc_dead = max([v[1] for v in first.values()] + [inc_before])
    # The victim's host is up, so its kernel refused the probes sent to
    # the dead process's port: the evidence behind the fast verdict.
    refused = sum(n.metric("warren_swim_port_unreachable_total") or 0
                  for n in others)
    check("kill -9: the refused probes were seen and counted", refused > 0,
          "port_unreachable total=%r" % refused)
    # The core's detector counters reach /metrics (issue 14).
    new = ("confirm_probes", "stale_corrections", "last_chance_probes",
           "indirect_probes", "nacks", "rx_foreign", "reaped",
           "cross_probes", "region_silent_probes")
    got = {k: [n.metric("warren_swim_%s_total" % k) for n in others]
           for k in new}
    check("/metrics has the detector counters of the core's stats",
          all(v is not None for vs in got.values() for v in vs), str(got))
    # The nodes are in three regions of 3-4 (region-aware membership,
    # docs/SWIM.md): the victim's own region probes it, sees its port
    # refused and asks relays; whether members elsewhere also run a
    # confirmation probe depends on who hears the suspicion before the
    # verdict, so only the detector's work as a whole must show.
    check("kill -9: the detector's probes are counted (ping-reqs and "
          "confirmation probes)",
          sum(got["confirm_probes"]) + sum(got["indirect_probes"]) > 0,
          str(got))
    # One probe in region-cross-probe (5) goes to another region, so a
    # node's first shows at its fifth probe: when the kill is seen fast
    # (the tests run side by side), that may not have come yet, so wait
    # for it (a probe a second each).  No region was cut off, but a cross
    # probe of the victim after its death may count as silent, so only
    # the cross probes must show.
    cross, _ = poll(lambda: sum(n.metric("warren_swim_cross_probes_total")
                                or 0 for n in others) > 0, 15, 0.5)
    check("regions: cross-region probes are counted in /metrics", cross,
          str([n.metric("warren_swim_cross_probes_total") for n in others]))

    # ---- restart with the same id ----
    victim.start()
    t0 = time.time()
    ok, t = poll(lambda: everyone_sees(NODES, lambda m: victim.id in m and
                                       m[victim.id]["state"] == "alive" and
                                       m[victim.id]["incarnation"] > inc_dead),
                 30, 0.2)
    MEASURED["restart_alive_everywhere_s"] = round(t, 2)
    check("restart: alive again everywhere at a higher incarnation", ok,
          json.dumps({k: (v or {}).get(victim.id)
                      for k, v in views(NODES).items()})[:1500])
    ok, _ = poll(lambda: all_alive(NODES, ids), 20, 0.2)
    check("restart: all ten alive again", ok)

    # ---- graceful leave ----
    leaver = NODES[6]
    others = [n for n in NODES if n is not leaver]
    leaver.proc.send_signal(signal.SIGTERM)
    t0 = time.time()
    seen_left, seen_dead, seen_suspect = {}, set(), set()
    # LEFT normally spreads in well under a second; a node that misses it
    # gets it from the next anti-entropy sync (<= 15 s in the local
    # profile).  Left members are reaped 15 s later, so the /status and
    # warrenctl views are taken as soon as n1 shows "left".
    end = t0 + 25
    settle = None
    status = ctl = None
    while time.time() < end:
        for n in others:
            e = (n.members() or {}).get(leaver.id)
            if e is None:
                continue
            if e["state"] == "dead":
                seen_dead.add(n.id)
            if e["state"] == "suspect":
                seen_suspect.add(n.id)
            if e["state"] == "left" and n.id not in seen_left:
                seen_left[n.id] = time.time() - t0
            if e["state"] == "left" and n is NODES[0] and status is None:
                status = n.get("/status")
                if WARRENCTL:
                    ctl = subprocess.run(
                        [WARRENCTL, "--admin", "%s:%d" % n.admin, "members"],
                        capture_output=True, text=True, timeout=10)
        if len(seen_left) == len(others) and settle is None:
            settle = time.time() + 3  # keep watching a little: no "dead"
        if settle and time.time() > settle:
            break
        time.sleep(0.1)
    rc = None
    try:
        rc = leaver.proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        pass
    if seen_left:
        MEASURED["leave_left_everywhere_s"] = round(max(seen_left.values()), 2)
    # Not a failure (suspect is not dead), but worth seeing: a member that
    # missed LEFT probes the gone node and suspects it until a sync.
    MEASURED["leave_suspected_by"] = sorted(seen_suspect)
    check("SIGTERM: the node exits 0", rc == 0, "rc=%r" % rc)
    check("SIGTERM: 'left' everywhere", len(seen_left) == len(others),
          "left at %s" % sorted(seen_left))
    check("SIGTERM: never 'dead' anywhere", not seen_dead, str(sorted(seen_dead)))
    st, body = status or (0, b"")
    s = json.loads(body) if st == 200 else {}
    check("/status counts the left node", s.get("members", {}).get("left") == 1
          and s["members"].get("alive") == N - 1, body.decode()[:300])
    if WARRENCTL and ctl:
        r = ctl
        lines = r.stdout.splitlines()
        check("warrenctl members shows the real states",
              r.returncode == 0 and
              any(leaver.id in l.split() and "left" in l.split()
                  for l in lines) and
              sum("alive" in l.split() for l in lines) == N - 1,
              r.stdout[:800] + r.stderr[:300])

    # ---- a node with another key ----
    live = [n for n in NODES if n.alive_proc()]
    bad_before = NODES[0].metric("warren_swim_rx_badseal_total") or 0
    intruder = Node(N + 1, bad, seed, nid="intruder")
    NODES.append(intruder)
    intruder.start()
    admitted = set()
    t0 = time.time()
    while time.time() - t0 < 8:
        for n in live:
            if intruder.id in (n.members() or {}):
                admitted.add(n.id)
        time.sleep(0.2)
    check("intruder: never in anyone's /members", not admitted,
          str(sorted(admitted)))
    im = intruder.members() or {}
    check("intruder: sees nobody either", set(im) <= {intruder.id}, str(im))
    bad_after = NODES[0].metric("warren_swim_rx_badseal_total")
    check("intruder: its packets count as badseal at the seed",
          bad_after is not None and bad_after > bad_before,
          "before=%r after=%r" % (bad_before, bad_after))
    rx = NODES[0].metric("warren_swim_rx_packets_total")
    check("/metrics has swim packet counters", rx is not None and rx > 0,
          "rx=%r" % rx)
    ev = [NODES[0].metric('warren_swim_bcast_evicted_total{queue="%s"}' % q)
          for q in ("member", "user")]
    check("/metrics has piggyback evictions per queue, none of membership",
          ev[0] == 0 and ev[1] is not None, "evicted=%r" % ev)
    sv = NODES[0].metric('warren_swim_sync_failures_total{reason="version"}')
    check("/metrics counts syncs failed on another stream version", sv == 0,
          "version=%r" % sv)
    # Sync v4's buckets (issue 14): by now every node has answered syncs
    # (the first come at 7.5-15 s); in a fleet that has converged most
    # buckets compare equal.
    bk = [sum(n.metric('warren_swim_sync_buckets_total{result="%s"}' % r) or 0
              for n in NODES) for r in ("compared", "differ")]
    check("/metrics counts sync buckets compared and differing",
          bk[0] > 0 and bk[1] <= bk[0], "compared, differ = %r" % bk)

    # ---- garbage on the gossip ports is dropped and counted ----
    n1 = NODES[0]
    gport = (ip(1), BASE)

    def rejected():
        return sum(n1.metric(m) or 0 for m in (
            "warren_swim_rx_malformed_total", "warren_swim_rx_badseal_total"))
    rej0 = rejected()
    rnd = random.Random(4)
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    for size in [0, 1, 5, 44, 45, 46, 100, 1445, 1446, 4000] * 5:
        u.sendto(bytes(rnd.getrandbits(8) for _ in range(size)), gport)
    u.sendto(b"\x01" + bytes(200), gport)  # right version, zero key id
    u.close()
    ok, _ = poll(lambda: rejected() >= rej0 + 40, 5)
    check("UDP garbage is counted (malformed/badseal)", ok,
          "before=%r after=%r" % (rej0, rejected()))
    failed0 = n1.metric('warren_swim_syncs_total{result="failed"}') or 0
    t = socket.create_connection(gport, timeout=2)
    t.sendall(b"\x00\x00\x10\x00" + bytes(rnd.getrandbits(8)
                                       for _ in range(4096)))
    try:
        t.settimeout(5)
        closed = t.recv(100) == b""
    except OSError:
        closed = True  # reset: closed too
    t.close()
    check("TCP garbage on the sync port: the session is closed", closed)
    ok, _ = poll(lambda: (n1.metric('warren_swim_syncs_total{result="failed"}')
                          or 0) > failed0, 5)
    check("TCP garbage is counted as a failed sync", ok)
    refused0 = n1.metric('warren_swim_syncs_total{result="refused"}') or 0
    idle = []
    for _ in range(12):
        idle.append(socket.create_connection(gport, timeout=2))
    ok, _ = poll(lambda: (n1.metric('warren_swim_syncs_total{result="refused"}')
                          or 0) >= refused0 + 4, 5)
    check("more than 8 sync connections at once are refused and counted", ok,
          "refused %r -> %r" % (refused0, n1.metric(
              'warren_swim_syncs_total{result="refused"}')))
    for c in idle:
        c.close()
    ok, _ = poll(lambda: all_alive([n1], [n.id for n in live]), 10)
    check("n1 serves on after the garbage", ok and n1.alive_proc())

    # ---- everyone stops cleanly (under ASan this is the leak check) ----
    live = [n for n in NODES if n.alive_proc()]
    for n in live:
        n.proc.send_signal(signal.SIGTERM)
    rcs = {}
    for n in live:
        try:
            rcs[n.id] = n.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            rcs[n.id] = "hung"
    check("all nodes exit 0 on SIGTERM", all(v == 0 for v in rcs.values()),
          str(rcs))
    reports = []
    for n in NODES:
        for r in range(n.runs):
            path = os.path.join(TMP, "%s-%d.log" % (n.id, r))
            text = open(path).read() if os.path.exists(path) else ""
            if "Sanitizer" in text or "runtime error:" in text:
                reports.append("%s-%d" % (n.id, r))
    check("no sanitizer reports in any node's log", not reports, str(reports))


BASE = 0
try:
    main()
except Exception as e:  # a crash of the script itself is a failure too
    import traceback
    traceback.print_exc()
    FAILED.append("script: %r" % e)
finally:
    for n in NODES:
        if n.alive_proc():
            n.proc.kill()
            n.proc.wait()
    if FAILED:
        for n in NODES:
            for r in range(n.runs):
                path = os.path.join(TMP, "%s-%d.log" % (n.id, r))
                if os.path.exists(path):
                    tail = open(path).read()[-1200:]
                    if tail:
                        print("--- %s-%d\n%s" % (n.id, r, tail))
print("measured: %s" % json.dumps(MEASURED))
print("%d checks failed" % len(FAILED) if FAILED else "all checks passed")
sys.exit(1 if FAILED else 0)
