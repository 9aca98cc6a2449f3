#!/usr/bin/env python3
"""bench/routes.py: how fast a bind reaches every node's routes table
(issue 10), N real `warren node`s on loopback (node i on 127.0.0.i, LAN
profile, node 1 the seed).  Run through bench/routes.sh, which also runs
serf's user-event dissemination in the same session for comparison.

usage: routes.py WARREN_BIN OUT_JSON TMPDIR

  start   N nodes (RB_N, 50); wait until every node has every other alive
  binds   RB_BINDS (100) times: a `warren http` client binds a fresh name
          at a node (round robin, never the same twice in a row); t0 is
          when the owner logs the route change, and the bind's latency is
          the time until the last other node logs it (each node's stderr
          is stamped on arrival by this driver, for every node alike).
          The clients stay up (a release would be more churn).
  memory  VmRSS of every node at the end

Prints p50 / p99 / max of "visible at all nodes" and of "visible at one
node" (every (bind, node) pair), and writes every number to OUT_JSON.
"""
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time

WARREN, OUT, TMP = sys.argv[1:4]
N = int(os.environ.get("RB_N", "50"))
BINDS = int(os.environ.get("RB_BINDS", "100"))
PROFILE = os.environ.get("RB_PROFILE", "lan")
BASE = int(os.environ.get("RB_PORT", "23400"))
CHANGED = re.compile(r" mesh route_changed name=(\S+)")
PROCS = []


def log(msg):
    print("[%s] %s" % (time.strftime("%H:%M:%S"), msg), file=sys.stderr,
          flush=True)


class Node:
    def __init__(self, i, key):
        self.i, self.id, self.ip = i, "n%d" % i, "127.0.0.%d" % i
        self.seen = {}  # name -> first arrival time of route_changed
        args = [WARREN, "node", "--id", self.id,
                "--http", "%s:%d" % (self.ip, BASE + 1),
                "--admin", "%s:%d" % (self.ip, BASE + 2),
                "--gossip", "%s:%d" % (self.ip, BASE),
                "--domain", "bench.test", "--key-file", key,
                "--gossip-profile", PROFILE]
        if i > 1:
            args += ["--join", "127.0.0.1:%d" % BASE]
        env = dict(os.environ, WARREN_LOG="debug")
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, env=env)
        PROCS.append(self.proc)
        threading.Thread(target=self.reader, daemon=True).start()

    def reader(self):
        with open(os.path.join(TMP, self.id + ".log"), "w") as f:
            for raw in self.proc.stderr:
                t = time.time()
                line = raw.decode("utf-8", "replace")
                f.write("%.6f %s" % (t, line))
                m = CHANGED.search(line)
                if m and m.group(1) not in self.seen:
                    self.seen[m.group(1)] = t

    def members_alive(self):
        import http.client
        try:
            c = http.client.HTTPConnection(self.ip, BASE + 2, timeout=2)
            c.request("GET", "/members")
            r = json.loads(c.getresponse().read())
            c.close()
            return sum(1 for e in r if e["state"] == "alive")
        except Exception:
            return 0

    def rss_kib(self):
        try:
            with open("/proc/%d/status" % self.proc.pid) as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        return int(line.split()[1])
        except OSError:
            return None


def wait_for(pred, timeout, every=0.05):
    end = time.time() + timeout
    while time.time() < end:
        v = pred()
        if v:
            return v
        time.sleep(every)
    return None


def pct(v, p):
    v = sorted(v)
    return v[min(len(v) - 1, int(round(p * (len(v) - 1))))] if v else None


def main():
    key = os.path.join(TMP, "cluster.key")
    with open(key, "w") as f:
        subprocess.run([WARREN, "keygen"], stdout=f, check=True)
    pub = subprocess.run([WARREN, "pubkey", key], capture_output=True,
                         text=True, check=True).stdout.strip()
    nodes = [Node(i, key) for i in range(1, N + 1)]
    t0 = time.time()
    ok = wait_for(lambda: all(n.members_alive() == N for n in nodes), 120, 0.5)
    if not ok:
        raise SystemExit("no convergence of membership in 120 s")
    log("n=%d: all alive after %.1f s" % (N, time.time() - t0))
    time.sleep(3)
    origin = subprocess.Popen([sys.executable, "-m", "http.server", "--bind",
                               "127.0.0.1", "0"], stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL, text=True)
    PROCS.append(origin)
    line = origin.stdout.readline()
    oport = int(re.search(r"port (\d+)", line).group(1))
    lat_all, lat_pair, missed = [], [], 0
    for k in range(BINDS):
        owner = nodes[k % N]
        name = "rb%d-%d" % (k, os.getpid() % 10000)
        c = subprocess.Popen([WARREN, "http", str(oport), "--node",
                              "%s:%d" % (owner.ip, BASE + 1), "--fleet-key",
                              pub, "--name", name, "--inspect", "off"],
                             stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
        PROCS.append(c)
        if not wait_for(lambda: name in owner.seen, 10):
            log("bind %s at %s: owner never logged it" % (name, owner.id))
            missed += 1
            continue
        others = [n for n in nodes if n is not owner]
        got = wait_for(lambda: all(name in n.seen for n in others), 15)
        t_owner = owner.seen[name]
        if not got:
            missed += 1
            log("bind %s: reached %d of %d" % (
                name, sum(name in n.seen for n in others), len(others)))
            continue
        lats = [n.seen[name] - t_owner for n in others]
        lat_pair += lats
        lat_all.append(max(lats))
        time.sleep(0.2)
    rss = [r for r in (n.rss_kib() for n in nodes) if r]
    res = {"n": N, "binds": BINDS, "profile": PROFILE, "missed": missed,
           "all_s": lat_all, "pair_s": lat_pair,
           "all_p50_s": pct(lat_all, 0.5), "all_p99_s": pct(lat_all, 0.99),
           "all_max_s": max(lat_all) if lat_all else None,
           "pair_p50_s": pct(lat_pair, 0.5), "pair_p99_s": pct(lat_pair, 0.99),
           "rss_kib_median": pct(rss, 0.5), "rss_kib_max": max(rss)}
    with open(OUT, "w") as f:
        json.dump(res, f)
    print("warren routes, N=%d, %d binds (%d missed): visible at all nodes "
          "p50 %.3f s, p99 %.3f s, max %.3f s; at one node p50 %.3f s, p99 "
          "%.3f s; node RSS median %d KiB" % (
              N, BINDS, missed, res["all_p50_s"], res["all_p99_s"],
              res["all_max_s"], res["pair_p50_s"], res["pair_p99_s"],
              res["rss_kib_median"]))


if __name__ == "__main__":
    try:
        main()
    finally:
        for p in PROCS:
            if p.poll() is None:
                p.send_signal(signal.SIGKILL)
        for p in PROCS:
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
