#!/usr/bin/env python3
"""Clients that move and hold redundant links (issue 11, "Clients move, and
stay up while they do"): four real `warren node`s; clients given
`--node n1,n2,n3`, visitors through every live node (n4 is never an owner).

usage: client4.py WARREN_BINARY [--load-seconds S]

Checks:
  two links          `--links 2`: the name is served by two of n1..n3 at
                     once (/routes?name= lists both as serving), and the
                     Forwarding line is printed once
  kill -9 under load bounded concurrent load through every live node while
                     one of the client's two nodes is killed: the client is
                     bound at the third within 2 s, and no request fails
                     except those in flight on the killed node (started
                     before the kill); prints the counts (BENCHMARKS.md)
  GOAWAY             POST /drain on one of its nodes: the client moves to
                     the free node within 2 s, and the drained node stops
                     being an owner; no visitor request fails meanwhile
  one link           `--links 1`: kill -9 of its node -> the name answers
                     again from every live node within detection + 2 s
Prints one line per check; exits non-zero when any failed.
"""
import http.client
import os
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from meshlib import FAILED, Client, Fleet, check, poll, start_origin  # noqa

WARREN = os.path.abspath(sys.argv[1])
LOAD_S = 6.0
if "--load-seconds" in sys.argv:
    LOAD_S = float(sys.argv[sys.argv.index("--load-seconds") + 1])
TMP = tempfile.mkdtemp(prefix="warren-client4-")


class Load:
    """Visitors through the given nodes: |per_node| threads per node, each
    doing one request per connection in a loop until stopped, recording
    (node id, start, end, status) per request.  Bounded: stop() ends it,
    and every request has a 5 s timeout."""

    def __init__(self, fleet, name, nodes, per_node=2):
        self.fleet = fleet
        self.name = name
        self.results = []
        self.lock = threading.Lock()
        self.stopping = False
        self.nodes = {}
        self.threads = []
        for n in nodes:
            self.nodes[n.id] = n
            for k in range(per_node):
                t = threading.Thread(target=self.loop, args=(n,),
                                     daemon=True)
                self.threads.append(t)

    def start(self):
        for t in self.threads:
            t.start()

    def drop(self, node):
        """Stop sending through |node| (it is about to die)."""
        with self.lock:
            self.nodes.pop(node.id, None)

    def loop(self, n):
        while not self.stopping:
            with self.lock:
                if n.id not in self.nodes:
                    return
            t0 = time.time()
            st, body = n.visit(self.name, "/load", timeout=5.0)
            t1 = time.time()
            with self.lock:
                if n.id in self.nodes:
                    self.results.append((n.id, t0, t1, st, body[:120]))

    def stop(self):
        self.stopping = True
        for t in self.threads:
            t.join(timeout=10)

    def failed(self):
        return [r for r in self.results if r[3] != 200]


def serving(fleet, name, via=None):
    """Ids of the nodes serving |name| according to |via| (default: every
    live node must agree; None when they do not)."""
    views = []
    for n in ([via] if via else fleet.live()):
        r = n.get_json("/routes?name=%s" % name)
        if r is None:
            return None
        views.append(sorted(c["owner"] for c in r["candidates"]
                            if c["verdict"] == "serves"))
    if not views or any(v != views[0] for v in views):
        return None
    return views[0]


def main():
    fleet = Fleet(WARREN, TMP, 4)
    try:
        run(fleet)
    finally:
        fleet.stop()


def run(fleet):
    fleet.start()
    ok, _ = poll(fleet.all_alive, 30, 0.1)
    if not check("four nodes see each other alive", ok):
        return
    n1, n2, n3, n4 = fleet.nodes
    trio = [n1, n2, n3]
    port = start_origin("o")

    # ---- two links --------------------------------------------------
    c = Client(fleet, trio, "duo", port)
    ok, _ = poll(c.forwarding, 15)
    if not check("--links 2 client bound", ok, c.stderr()[-800:]):
        return
    owners, _ = poll(lambda: (lambda s: s if s and len(s) == 2 else None)(
        serving(fleet, "duo")), 10, 0.05)
    check("two links: two of n1..n3 serve the name on every node",
          owners is not None and set(owners) <= {"n1", "n2", "n3"},
          repr(serving(fleet, "duo")))
    if not owners:
        return
    ok = all(n.visit("duo")[0] == 200 for n in fleet.nodes)
    check("two links: the name answers through every node", ok)
    time.sleep(0.3)
    check("the Forwarding line is printed once",
          sum(1 for l in c.lines if l.startswith("Forwarding")) == 1,
          repr(c.lines))

    # ---- kill -9 one of the two, under load ---------------------------
    victim = next(n for n in trio if n.id == owners[0])
    third = next(n for n in trio if n.id not in owners)
    load = Load(fleet, "duo", fleet.nodes)
    load.start()
    time.sleep(LOAD_S / 3)
    load.drop(victim)
    t_kill = time.time()
    victim.kill()
    moved, dt = poll(lambda: third.id in (serving(fleet, "duo", third) or []),
                     10, 0.02)
    check("kill -9 %s: the client is bound at %s within 2 s (%.2f s)" %
          (victim.id, third.id, dt), moved and dt <= 2.0)
    time.sleep(max(0.5, LOAD_S * 2 / 3 - (time.time() - t_kill)))
    load.stop()
    res = load.results
    bad = load.failed()
    # In flight on the killed node: visitors sent through it before the
    # kill, or forwarded to it (started before the kill, ended after).
    inflight = [r for r in bad if r[1] < t_kill]
    late = [r for r in bad if r[1] >= t_kill]
    after = [r for r in res if r[1] >= t_kill]
    print("load: %d requests through %s, %d after the kill; failed %d "
          "(%d in flight at the kill, %d started after)" % (
              len(res), ",".join(sorted(load.nodes)), len(after), len(bad),
              len(inflight), len(late)), flush=True)
    check("kill -9 under load: no request started after the kill failed",
          not late, repr(late[:5]))
    check("kill -9 under load: requests kept answering after the kill",
          len(after) >= 20, "%d" % len(after))
    check("kill -9 under load: failures at most the in-flight ones",
          len(inflight) <= 2 * 2 * 4, repr(inflight[:5]))

    # ---- GOAWAY --------------------------------------------------------
    live3 = [n for n in trio if n is not victim]
    ok, _ = poll(lambda: (serving(fleet, "duo") or []) == sorted(
        n.id for n in live3), 15, 0.1)
    check("after %s is declared dead, %s serve" % (
        victim.id, "+".join(n.id for n in live3)), ok,
        repr(serving(fleet, "duo")))
    victim.start()  # back, as a free node for the drain to move to
    ok, _ = poll(lambda: fleet.all_alive(fleet.nodes), 30, 0.1)
    check("%s restarted and alive" % victim.id, ok)
    drained = live3[0]
    load = Load(fleet, "duo", [n for n in fleet.nodes])
    load.start()
    time.sleep(0.5)
    t0 = time.time()
    st, _ = drained.post_drain()
    ok, dt = poll(lambda: (lambda s: s if s and drained.id not in s and
                           len(s) == 2 else None)(
        serving(fleet, "duo", n4)), 10, 0.02)
    check("GOAWAY (POST /drain on %s): the client moved within 2 s "
          "(%.2f s, now %s)" % (drained.id, dt, serving(fleet, "duo", n4)),
          st == 200 and ok and dt <= 2.0)
    time.sleep(1.0)
    load.stop()
    bad = load.failed()
    print("drain: %d requests, failed %d" % (len(load.results), len(bad)),
          flush=True)
    check("GOAWAY: no visitor request failed while the client moved",
          not bad, repr(bad[:5]))
    c.proc.kill()

    # ---- one link -------------------------------------------------------
    s = Client(fleet, [n2, n3, victim], "solo", port, ["--links", "1"])
    ok, _ = poll(s.forwarding, 15)
    if not check("--links 1 client bound", ok, s.stderr()[-800:]):
        return
    own, _ = poll(lambda: (lambda v: v if v and len(v) == 1 else None)(
        serving(fleet, "solo")), 10, 0.05)
    if not check("one link: one owner", own is not None,
                 repr(serving(fleet, "solo"))):
        return
    dead = next(n for n in fleet.nodes if n.id == own[0])
    rest = [n for n in fleet.nodes if n is not dead]
    t_kill = time.time()
    dead.kill()
    ok, dt = poll(lambda: all(n.visit("solo", timeout=2.0)[0] == 200
                              for n in rest), 20, 0.05)
    t_dead, _ = poll(lambda: all(((n.members() or {}).get(dead.id) or {})
                                 .get("state") == "dead" for n in rest),
                     30, 0.1)
    detect = time.time() - t_kill
    print("one link: answered again after %.2f s (declared dead after "
          "%.2f s)" % (dt, detect), flush=True)
    check("one link: kill -9 of its node -> answers from every live node "
          "within detection + 2 s (%.2f s)" % dt, ok and dt <= detect + 2.0)


if __name__ == "__main__":
    main()
    print("client4: %s" % ("FAIL (%d)" % len(FAILED) if FAILED else "ok"))
    sys.exit(1 if FAILED else 0)
