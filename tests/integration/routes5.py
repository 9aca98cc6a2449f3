#!/usr/bin/env python3
"""The replicated routes table with five real nodes (issue 10): `warren
node` n1..n5 on 127.0.0.1..5 gossiping, `warren http` clients bound at
different nodes, every table watched through the admin APIs.

usage: routes5.py WARREN_BINARY

Checks, in order:
  bind      a bind at n1 -> all five /status routes_digest equal, and the
            name in every /routes with owner n1, within 1 s
  race      two accounts bind one name at n2 and n3 at once -> one account
            everywhere, the loser's client says "taken" and exits
  move      the same account binds the name at n4 -> every table says n4,
            the old client says "moved" and exits instead of re-binding
  kill -9   the owner dies -> its names leave every live table once it is
            declared dead
  restart   an owner restarted under the same id -> its new epoch's entry
            is the only one for its name everywhere
  balance   two --balance clients of one account at two nodes both serve
  accounts  the nodes read a tokens file: an unknown token is refused, a
            name reserved for one account is refused to another; a node
            without one (an open fleet) files clients under their identity
            keys: another key cannot take a bound name, the same key (a
            restarted client) can
Prints one line per check and the measured times; exits non-zero when any
check failed.
"""
import json
import os
import signal
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from meshlib import FAILED, Client, Fleet, check, poll, start_origin  # noqa

WARREN = os.path.abspath(sys.argv[1])
TMP = tempfile.mkdtemp(prefix="warren-routes5-")
MEASURED = {}


def owners(fleet, name, nodes=None):
    """{node id: owner of NAME in its /routes, or None}."""
    out = {}
    for n in nodes or fleet.live():
        r = n.routes()
        out[n.id] = (r or {}).get(name, {}).get("owner")
    return out


def same_owner(fleet, name, want, nodes=None):
    o = owners(fleet, name, nodes)
    return all(v == want for v in o.values()) and fleet.converged(nodes)


TOKENS = {"alice": "alice-token-00000001", "bob": "bob-token-0000000002",
          "carol": "carol-token-00000003"}


def main():
    tokens = os.path.join(TMP, "tokens")
    with open(tokens, "w") as f:
        for acct, tok in TOKENS.items():
            f.write("[%s]\ntoken = %s\n" % (acct, tok))
            if acct == "bob":
                f.write("names = bobs-name\n")
    os.chmod(tokens, 0o600)
    fleet = Fleet(WARREN, TMP, 5, extra=lambda i: ["--tokens", tokens])
    try:
        run(fleet)
    finally:
        fleet.stop()


def run(fleet):
    fleet.start()
    n1, n2, n3, n4, n5 = fleet.nodes
    ok, t = poll(fleet.all_alive, 30, 0.1)
    if not check("five nodes see each other alive", ok):
        return
    origin = start_origin("A")

    # ---- a bind spreads to every table ----
    c1 = Client(fleet, n1, "app", origin, ["--token", TOKENS["alice"]])
    ok, _ = poll(c1.forwarding, 15)
    if not check("client bound at n1", ok, c1.stderr()[-500:]):
        return
    t0 = time.time()
    ok, t = poll(lambda: same_owner(fleet, "app", "n1"), 10, 0.02)
    MEASURED["bind_visible_all_s"] = round(t, 3)
    check("bind at n1: all five tables say app -> n1, digests equal", ok,
          json.dumps([owners(fleet, "app"), fleet.digests()]))
    check("bind at n1: converged within 1 s", ok and t <= 1.0,
          "took %.2f s" % t)
    row = (n3.routes() or {}).get("app", {})
    check("/routes rows carry the contract fields",
          all(k in row for k in ("name", "owner", "account", "version",
                                 "state")) and row.get("account") and
          row.get("state") == "active", json.dumps(row))
    st = n5.status() or {}
    check("/status counts the route", st.get("routes") == 1, json.dumps(st))

    # ---- concurrent claims by two accounts ----
    ca = Client(fleet, n2, "race", origin, ["--token", TOKENS["alice"]])
    cb = Client(fleet, n3, "race", origin, ["--token", TOKENS["bob"]])
    poll(lambda: all((c.forwarding() or c.exited()) for c in (ca, cb)), 15)

    def one_winner():
        accts = set()
        for n in fleet.live():
            r = (n.routes() or {}).get("race")
            if not r:
                return None
            accts.add(r["account"])
        if len(accts) != 1 or not fleet.converged():
            return None
        return accts.pop()

    winner, t = poll(one_winner, 10, 0.05)
    MEASURED["race_resolved_s"] = round(t, 3)
    check("race: one account holds the name on every node", winner,
          json.dumps(owners(fleet, "race")))
    loser = cb if winner == "alice" else ca
    won = ca if winner == "alice" else cb
    ok, _ = poll(loser.exited, 10)
    check("race: the losing client exits", ok)
    check("race: and says the name is taken",
          "taken" in loser.stderr().lower(), loser.stderr()[-400:])
    check("race: the winning client keeps serving", not won.exited(),
          won.stderr()[-400:])
    expect = n2 if won is ca else n3
    st, body = n5.visit("race", "/x")
    check("race: the winner's node serves it",
          expect.visit("race", "/x")[0] == 200, repr((st, body[:200])))
    check("race: a node that does not own it serves it too (one hop)",
          st == 200 and b"origin A path /x" in body, repr((st, body[:200])))

    # ---- a move within one account ----
    c4 = Client(fleet, n4, "app", origin, ["--token", TOKENS["alice"]])
    ok, _ = poll(c4.forwarding, 15)
    check("move: the same account binds app at n4", ok, c4.stderr()[-400:])
    ok, t = poll(lambda: same_owner(fleet, "app", "n4"), 10, 0.02)
    MEASURED["move_visible_all_s"] = round(t, 3)
    check("move: every table says app -> n4", ok,
          json.dumps(owners(fleet, "app")))
    ok, _ = poll(c1.exited, 10)
    check("move: the old client exits", ok, c1.stderr()[-400:])
    check("move: and says the name moved", "moved" in c1.stderr().lower(),
          c1.stderr()[-400:])
    time.sleep(1.0)
    check("move: no ping-pong (n4 still owns app)",
          same_owner(fleet, "app", "n4") and not c4.exited(),
          json.dumps(owners(fleet, "app")))
    cand = n2.get_json("/routes?name=app") or {}
    verdicts = sorted(c.get("verdict") for c in cand.get("candidates", []))
    check("/routes?name= explains the winner", "serves" in verdicts,
          json.dumps(cand)[:600])

    # ---- the owner dies ----
    n4.kill()
    t0 = time.time()
    rest = [n1, n2, n3, n5]
    ok, t = poll(lambda: all(((n.routes() or {"app": 1}).get("app") is None)
                             for n in rest) and fleet.converged(rest),
                 30, 0.05)
    MEASURED["owner_dead_routes_gone_s"] = round(t, 3)
    check("kill -9 of the owner: its names leave every live table", ok,
          json.dumps(owners(fleet, "app", rest)))
    dead_seen = all(((n.members() or {}).get("n4") or {}).get("state") ==
                    "dead" for n in rest)
    check("kill -9: and n4 is declared dead", dead_seen)

    # ---- an owner restarts: the new epoch wins ----
    c5 = Client(fleet, n5, "epoch", origin, ["--token", TOKENS["carol"]])
    ok, _ = poll(c5.forwarding, 15)
    check("restart: client bound at n5", ok, c5.stderr()[-400:])
    poll(lambda: same_owner(fleet, "epoch", "n5", rest), 10, 0.05)
    before = (n1.get_json("/routes?name=epoch") or {}).get("candidates", [])
    old_epoch = max([c.get("epoch", 0) for c in before] or [0])
    n5.kill()
    n5.start()
    # The client reconnects with backoff to the restarted n5 and binds
    # again, under n5's new epoch.
    def new_epoch_only():
        for n in [n1, n2, n3, n5]:
            c = (n.get_json("/routes?name=epoch") or {}).get("candidates")
            if not c or len(c) != 1 or c[0].get("epoch", 0) <= old_epoch \
                    or c[0].get("verdict") != "serves":
                return False
        return fleet.converged([n1, n2, n3, n5])
    ok, t = poll(new_epoch_only, 30, 0.1)
    MEASURED["restart_new_epoch_s"] = round(t, 3)
    check("restart: only the new epoch's entry, everywhere", ok,
          json.dumps({"old_epoch": old_epoch, "digests":
                      fleet.digests([n1, n2, n3, n5]), "candidates": {
                          n.id: (n.get_json("/routes?name=epoch") or {})
                          .get("candidates") for n in [n1, n2, n3, n5]}})
          [:1500])
    check("restart: the name answers through n5",
          n5.visit("epoch", "/e")[0] == 200)

    # ---- balancing: two clients of one account share a name ----
    b1 = Client(fleet, n2, "shared", origin,
                ["--token", TOKENS["alice"], "--balance"])
    ok1, _ = poll(b1.forwarding, 15)
    origin_b = start_origin("B")
    b2 = Client(fleet, n3, "shared", origin_b,
                ["--token", TOKENS["alice"], "--balance"])
    ok2, _ = poll(b2.forwarding, 15)
    live = [n1, n2, n3, n5]
    ok, _ = poll(lambda: all(((n.routes() or {}).get("shared") or {})
                             .get("serving") == 2 for n in live)
                 and fleet.converged(live), 10, 0.05)
    check("balance: both --balance clients serve the name everywhere",
          ok1 and ok2 and ok, json.dumps({n.id: (n.routes() or {})
                                          .get("shared") for n in live}))
    time.sleep(1.0)
    check("balance: neither client was moved away", not b1.exited() and
          not b2.exited(), b1.stderr()[-200:] + b2.stderr()[-200:])
    check("balance: each owner node serves it", n2.visit("shared")[0] == 200
          and n3.visit("shared")[0] == 200)
    seen = set()
    for _ in range(12):
        st, body = n5.visit("shared")
        if st == 200:
            seen.add(body.split()[1].decode())
    check("balance: visitors at another node spread over both clients",
          seen == {"A", "B"}, repr(seen))

    # ---- accounts: the tokens file ----
    bad = Client(fleet, n1, "nope", origin, ["--token", "not-a-known-token"])
    ok, _ = poll(bad.exited, 10)
    check("tokens: an unknown token is refused (the client exits)", ok and
          bad.proc.returncode != 0 and "token" in bad.stderr().lower(),
          bad.stderr()[-300:])
    res = Client(fleet, n2, "bobs-name", origin, ["--token", TOKENS["alice"]])
    ok, _ = poll(res.exited, 10)
    check("tokens: a name reserved for bob is refused to alice", ok and
          "taken" in res.stderr().lower(), res.stderr()[-300:])
    own = Client(fleet, n2, "bobs-name", origin, ["--token", TOKENS["bob"]])
    ok, _ = poll(own.forwarding, 15)
    check("tokens: bob binds his reserved name", ok, own.stderr()[-300:])

    # ---- the tokens file is reloaded on SIGHUP ----
    tokens = os.path.join(TMP, "tokens")
    with open(tokens, "a") as f:
        f.write("[dave]\ntoken = dave-token-000000004\n")
    n1.proc.send_signal(signal.SIGHUP)
    ok, _ = poll(lambda: "what=tokens accounts=4" in open(n1.log).read(), 5)
    check("tokens: SIGHUP reloads the file (logged)", ok)
    dv = Client(fleet, n1, "daves", origin, ["--token", "dave-token-000000004"])
    ok, _ = poll(dv.forwarding, 15)
    check("tokens: a token added to the file binds after SIGHUP", ok,
          dv.stderr()[-300:])
    check("tokens: the node kept its tunnels across the reload",
          not own.exited() and n2.visit("bobs-name")[0] == 200)
    with open(tokens, "a") as f:
        f.write("[broken\n")
    n1.proc.send_signal(signal.SIGHUP)
    ok, _ = poll(lambda: "reload_failed" in open(n1.log).read(), 5)
    check("tokens: a broken file on SIGHUP keeps the old table", ok and
          n1.alive_proc() and not dv.exited())

    # ---- accounts: identity keys in an open fleet (a node alone) ----
    solo = Fleet(WARREN, TMP, 1, domain="solo.test")
    solo.nodes[0].i = 6
    solo.base = fleet.base
    fleet.procs.extend(solo.procs)
    try:
        solo.start()
        s6 = solo.nodes[0]
        poll(lambda: s6.status(), 10)
        key_a = os.path.join(TMP, "identity-a")
        ia = Client(solo, s6, "mine", origin, env={"WARREN_IDENTITY": key_a})
        ok, _ = poll(ia.forwarding, 15)
        check("identity: a client binds under its own key", ok,
              ia.stderr()[-300:])
        row = (s6.routes() or {}).get("mine", {})
        check("identity: its account is its key's", str(
            row.get("account", "")).startswith("key:"), json.dumps(row))
        ib = Client(solo, s6, "mine", origin)
        ok, _ = poll(ib.exited, 10)
        check("identity: another key cannot take the bound name",
              ok and "taken" in ib.stderr().lower(), ib.stderr()[-300:])
        ia.proc.kill()
        ia.proc.wait()
        ia2 = Client(solo, s6, "mine", origin, env={"WARREN_IDENTITY": key_a})
        ok, _ = poll(ia2.forwarding, 15)
        check("identity: the same key, restarted, binds its name again", ok,
              ia2.stderr()[-300:])
        check("identity: the key file is private",
              os.stat(key_a).st_mode & 0o077 == 0)
    finally:
        solo.stop()


if __name__ == "__main__":
    main()
    print("measured " + json.dumps(MEASURED, sort_keys=True))
    if FAILED:
        print("%d check(s) failed: %s" % (len(FAILED), ", ".join(FAILED)))
        print("logs in " + TMP)
        sys.exit(1)
