#!/usr/bin/env python3
"""Clients that move and hold redundant links (issue 11, "Clients move, and
stay up while they do"): five real `warren node`s; clients given
`--node n1,n2,n3`, visitors through every live node (n4 and n5 are not
in the first client's list).

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
  GOAWAY             a client on the four live nodes; POST /drain on one
                     of its two: the client moves to a free node within
                     2 s, and the drained node stops being an owner; no
                     visitor request fails meanwhile (load through every
                     live node, the draining one included), and the
                     drained node exits 0 (POST /drain ends in an exit,
                     docs/DEPLOY.md); then SIGTERM
                     of another: the client is bound at the last free
                     node before that one exits, no request fails
  dns:               `--node dns:localhost:PORT` binds at the node on
                     127.0.0.1
  one link           `--links 1`: kill -9 of its node -> the name answers
                     again from every live node within detection + 2 s;
                     the same load counts its failures (the baseline)
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
    fleet = Fleet(WARREN, TMP, 5)
    try:
        run(fleet)
    finally:
        fleet.stop()


def run(fleet):
    fleet.start()
    ok, _ = poll(fleet.all_alive, 30, 0.1)
    if not check("five nodes see each other alive", ok):
        return
    n1, n2, n3, n4, n5 = fleet.nodes
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

    # ---- dns: ----------------------------------------------------------
    # localhost's records: 127.0.0.1 (n1's port) and, where the resolver
    # gives one, ::1 (nothing listens there: that slot keeps backing off).
    d = Client(fleet, "dns:localhost:%d" % n1.http[1], "viadns", port)
    ok, _ = poll(d.forwarding, 15)
    check("--node dns:localhost:PORT: bound at the node its record names",
          ok and (serving(fleet, "viadns") or [None])[0] == "n1",
          d.stderr()[-800:])
    d.proc.kill()

    # ---- kill -9 one of the two, under load ---------------------------
    victim = next(n for n in trio if n.id == owners[0])
    third = next(n for n in trio if n.id not in owners)
    load = Load(fleet, "duo", fleet.nodes)
    dials0 = n4.metric("warren_node_link_dial_failures_total") or 0
    load.start()
    time.sleep(LOAD_S / 3)
    load.drop(victim)
    t_kill = time.time()
    victim.kill()
    # The process is reaped here: a request that started before could
    # still reach it (its death takes a while under ASan).
    t_dead = time.time()
    moved, dt = poll(lambda: third.id in (serving(fleet, "duo", third) or []),
                     10, 0.02)
    dt += t_dead - t_kill
    check("kill -9 %s: the client is bound at %s within 2 s (%.2f s)" %
          (victim.id, third.id, dt), moved and dt <= 2.0)
    time.sleep(max(0.5, LOAD_S * 2 / 3 - (time.time() - t_kill)))
    load.stop()
    res = load.results
    bad = load.failed()
    # In flight on the killed node: visitors forwarded to it that started
    # before it was dead (kill -9 sent and the process reaped).
    inflight = [r for r in bad if r[1] < t_dead]
    late = [r for r in bad if r[1] >= t_dead]
    after = [r for r in res if r[1] >= t_dead]
    print("load: %d requests through %s in %.1f s, %d after the kill; "
          "failed %d (%d in flight at the kill, %d started after); kill "
          "took %.1f ms" % (
              len(res), ",".join(sorted(load.nodes)),
              max(r[2] for r in res) - min(r[1] for r in res), len(after),
              len(bad), len(inflight), len(late),
              (t_dead - t_kill) * 1000), flush=True)
    check("kill -9 under load: no request started after the kill failed",
          not late, repr(late[:5]))
    check("kill -9 under load: requests kept answering after the kill",
          len(after) >= 20, "%d" % len(after))
    check("kill -9 under load: failures at most the in-flight ones",
          len(inflight) <= 2 * 2 * 5, repr(inflight[:5]))
    # n4 forwards every request (it is no owner): after a failed dial to
    # the dead owner it sends the name's visitors to the live one for 3 s
    # (nodepool_failed_recently) instead of dialling the dead one again
    # for about every other request until swim declares it dead.
    dials = (n4.metric("warren_node_link_dial_failures_total") or 0) - dials0
    per_window = (time.time() - t_kill) / 3.0 + 1
    print("n4: %d failed dials to the dead owner in %.1f s" % (
        dials, time.time() - t_kill), flush=True)
    check("kill -9 under load: n4 dialled the dead owner about once per "
          "3 s, not per request (%d)" % dials, dials <= 2 * per_window + 2)

    # ---- GOAWAY --------------------------------------------------------
    live3 = [n for n in trio if n is not victim]
    ok, _ = poll(lambda: (serving(fleet, "duo") or []) == sorted(
        n.id for n in live3), 15, 0.1)
    check("after %s is declared dead, %s serve" % (
        victim.id, "+".join(n.id for n in live3)), ok,
        repr(serving(fleet, "duo")))
    c.proc.kill()
    # A fresh client on the four live nodes (the dead one is not
    # restarted: a restarted node's old bindings resolve again until its
    # new epoch reaches every node, a routes matter outside this test).
    live = [n for n in fleet.nodes if n is not victim]
    g = Client(fleet, live, "mover", port)
    ok, _ = poll(g.forwarding, 15)
    if not check("GOAWAY: --links 2 client on %s bound" % "+".join(
            n.id for n in live), ok, g.stderr()[-800:]):
        return
    before, _ = poll(lambda: (lambda v: v if v and len(v) == 2 else None)(
        serving(fleet, "mover")), 10, 0.05)
    if not check("GOAWAY: two owners", before is not None,
                 repr(serving(fleet, "mover"))):
        return
    drained = next(n for n in live if n.id == before[0])
    load = Load(fleet, "mover", live)
    load.start()
    time.sleep(0.5)
    st, _ = drained.post_drain()
    ok, dt = poll(lambda: (lambda v: v if v and drained.id not in v and
                           len(v) == 2 else None)(
        serving(fleet, "mover")), 10, 0.02)
    check("GOAWAY (POST /drain on %s): the client moved within 2 s "
          "(%.2f s, now %s)" % (drained.id, dt, serving(fleet, "mover")),
          st == 200 and ok and dt <= 2.0)
    # Read now: POST /drain ends with the node's exit (docs/DEPLOY.md),
    # once --drain-wait (2 s) passed and nothing is in flight.
    skipped = drained.metric("warren_tunnel_grace_skipped_total") or 0
    time.sleep(1.0)
    load.stop()
    bad = load.failed()
    print("drain: %d requests, failed %d" % (len(load.results), len(bad)),
          flush=True)
    check("GOAWAY: no visitor request failed while the client moved",
          not bad, repr(bad[:5]))
    check("GOAWAY: %s released the binding without a grace (counted)" %
          drained.id, skipped >= 1)
    try:
        rc = drained.proc.wait(15)
    except Exception:
        rc = None
    check("GOAWAY: %s exits 0 once drained" % drained.id, rc == 0,
          "rc=%r" % rc)
    live = [n for n in live if n is not drained]

    # SIGTERM drains too (then the node leaves the mesh and exits): the
    # client moves to the last free node while the old one still runs.
    now = serving(fleet, "mover") or []
    term = next(n for n in live if n.id == now[0])
    spare = [n for n in live if n.id not in now and n is not drained]
    load = Load(fleet, "mover", [n for n in live if n is not term])
    load.start()
    time.sleep(0.5)
    t0 = time.time()
    term.proc.terminate()
    moved, dt = poll(lambda: spare and spare[0].id in (
        serving(fleet, "mover", spare[0]) or []), 10, 0.02)
    still = term.proc.poll() is None
    check("SIGTERM %s: the client is bound at %s within 2 s (%.2f s), "
          "before %s exited" % (term.id, spare[0].id if spare else "?", dt,
                                term.id),
          moved and dt <= 2.0 and still)
    try:
        term.proc.wait(10)
    except Exception:
        pass
    time.sleep(0.5)
    load.stop()
    bad = load.failed()
    print("sigterm: %d requests, failed %d" % (len(load.results), len(bad)),
          flush=True)
    check("SIGTERM: no visitor request failed while the client moved",
          not bad, repr(bad[:5]))
    g.proc.kill()
    live = [n for n in live if n is not term]

    # ---- one link -------------------------------------------------------
    s = Client(fleet, live, "solo", port, ["--links", "1"])
    ok, _ = poll(s.forwarding, 15)
    if not check("--links 1 client bound", ok, s.stderr()[-800:]):
        return
    own, _ = poll(lambda: (lambda v: v if v and len(v) == 1 else None)(
        serving(fleet, "solo")), 10, 0.05)
    if not check("one link: one owner", own is not None,
                 repr(serving(fleet, "solo"))):
        return
    dead = next(n for n in live if n.id == own[0])
    rest = [n for n in live if n is not dead]
    # The same load as for two links, for comparison (BENCHMARKS.md).
    load = Load(fleet, "solo", live)
    load.start()
    time.sleep(LOAD_S / 3)
    load.drop(dead)
    t_kill = time.time()
    dead.kill()
    t_dead = time.time()
    seen = []

    def answers():
        last = {n.id: n.visit("solo", timeout=2.0) for n in rest}
        ok = all(v[0] == 200 for v in last.values())
        if not ok and time.time() - t_kill > 1.0 and not seen:
            # Slow: what the failing nodes answer and hold (a diagnosis
            # for the log; printed below).
            seen.append(({k: (v[0], v[1][:90]) for k, v in last.items()},
                         [(n.id, [(c["owner"], c["verdict"]) for c in
                                  (n.get_json("/routes?name=solo") or
                                   {}).get("candidates", [])])
                          for n in rest]))
        return ok
    ok, dt = poll(answers, 20, 0.05)
    if seen:
        print("one link: slow; at 1 s answers %r, candidates %r" % seen[0],
              flush=True)
    time.sleep(max(0.5, LOAD_S * 2 / 3 - (time.time() - t_kill)))
    load.stop()
    res = load.results
    bad = load.failed()
    late = [r for r in bad if r[1] >= t_dead]
    print("one link load: %d requests through %s in %.1f s, %d after the "
          "kill; failed %d (%d in flight at the kill, %d started after)" % (
              len(res), ",".join(sorted(load.nodes)),
              max(r[2] for r in res) - min(r[1] for r in res),
              len([r for r in res if r[1] >= t_dead]), len(bad),
              len(bad) - len(late), len(late)), flush=True)
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
