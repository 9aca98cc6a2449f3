#!/usr/bin/env python3
"""Fault rules by member name when members share an IP (issue 12, the
fault model's leftover): three real `warren node`s, all on 127.0.0.1
with their own ports, anti-entropy every 300 ms.

usage: faults_sharedip.py WARREN_BINARY

Checks:
  by name   n1 holds {"kinds":["sync"],"dir":"out","peers":["n3"],
            "drop":1}: the syncs n1 dials to n3 are cut (the rule's sync
            counter shows drops) while those it dials to n2 complete
            (n1's warren_swim_syncs_total{result="ok"} grows): fails if
            the name is never matched or matches every sync.  It does not
            tell this build from the one before, which took the first
            member at the sync's IP: the member table is reshuffled every
            probe round, so that was n2 or n3 by chance and some syncs
            passed too (the unit test test_peer_names_and_ips and the
            exact-address lookup in src/node/faults.c are the fix's
            guard); accepted syncs (ephemeral port) may be any member at
            the IP and are cut as well (docs/FAULTS.md)
  ip:       a second rule, {"kinds":["tunnel"],"peers":["ip:127.0.0.1"],
            "drop":1}, is accepted and listed in its canonical form; an
            "ip:" entry that is no address is refused with the reason
            (the build before accepted it as a member id)
Prints one line per check; exits non-zero when any failed.
"""
import http.client
import json
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from meshlib import FAILED, check, pick_base, poll  # noqa

WARREN = os.path.abspath(sys.argv[1])
TMP = tempfile.mkdtemp(prefix="warren-sharedip-")
HOST = "127.0.0.1"


def req(port, method, path, body=None):
    c = http.client.HTTPConnection(HOST, port, timeout=3)
    try:
        c.request(method, path, body=body,
                  headers={"Content-Type": "application/json"})
        r = c.getresponse()
        return r.status, r.read()
    except (OSError, http.client.HTTPException) as e:
        return 0, str(e).encode()
    finally:
        c.close()


def metric(port, name):
    st, body = req(port, "GET", "/metrics")
    if st != 200:
        return None
    for line in body.decode().splitlines():
        if line.startswith(name + " "):
            return float(line.rsplit(" ", 1)[1])
    return None


def main():
    key = os.path.join(TMP, "cluster.key")
    with open(key, "w") as f:
        subprocess.run([WARREN, "keygen"], stdout=f, check=True)
    bases = []
    while len(bases) < 3:
        b = pick_base([HOST])
        if all(abs(b - o) > 3 for o in bases):
            bases.append(b)
    procs = []
    try:
        for i, b in enumerate(bases, 1):
            args = [WARREN, "node", "--id", "n%d" % i,
                    "--http", "%s:%d" % (HOST, b + 1),
                    "--admin", "%s:%d" % (HOST, b + 2),
                    "--gossip", "%s:%d" % (HOST, b),
                    "--domain", "mesh.test", "--key-file", key,
                    "--gossip-profile", "local",
                    "--gossip-set", "sync-interval-ms=300"]
            if i == 1:
                args.append("--faults")
            else:
                args += ["--join", "%s:%d" % (HOST, bases[0])]
            procs.append(subprocess.Popen(
                args, stdout=subprocess.DEVNULL,
                stderr=open(os.path.join(TMP, "n%d.log" % i), "w")))
        admin1 = bases[0] + 2

        def all_know():
            st, body = req(admin1, "GET", "/members")
            if st != 200:
                return False
            m = {e["id"]: e["state"] for e in json.loads(body)}
            return m.get("n2") == "alive" and m.get("n3") == "alive"
        ok, took = poll(all_know, 20)
        check("n1 sees n2 and n3 alive (one IP, three ports)", ok,
              "after %.1f s" % took)

        rule = {"kinds": ["sync"], "dir": "out", "peers": ["n3"], "drop": 1}
        st, body = req(admin1, "POST", "/faults", json.dumps(rule))
        check("the rule by name is accepted", st == 200, body.decode())
        ok0 = metric(admin1, 'warren_swim_syncs_total{result="ok"}') or 0

        def counted():
            st, body = req(admin1, "GET", "/faults")
            if st != 200:
                return None
            c = json.loads(body)["counters"]["sync"]
            ok = metric(admin1, 'warren_swim_syncs_total{result="ok"}') or 0
            return (c, ok) if c["dropped"] >= 2 and ok >= ok0 + 2 else None
        res, took = poll(counted, 20, every=0.25)
        st, body = req(admin1, "GET", "/faults")
        print("sync counters at n1: %s; syncs ok %s -> %s" % (
            json.loads(body)["counters"]["sync"] if st == 200 else body,
            ok0, metric(admin1, 'warren_swim_syncs_total{result="ok"}')))
        check("by name: n1's syncs to n3 cut, to n2 complete", res is not None,
              "after %.1f s" % took)

        rule = {"kinds": ["tunnel"], "peers": ["ip:127.000.0.1"], "drop": 1}
        st, body = req(admin1, "POST", "/faults", json.dumps(rule))
        st2, body2 = req(admin1, "POST", "/faults", json.dumps(
            {"kinds": ["tunnel"], "peers": ["ip:127.0.0.1"], "drop": 1}))
        check("ip: entry accepted, canonical",
              st2 == 200 and '"ip:127.0.0.1"' in body2.decode(),
              body2.decode())
        st, body = req(admin1, "POST", "/faults", json.dumps(
            {"kinds": ["tunnel"], "peers": ["ip:n2"], "drop": 1}))
        check("a bad ip: entry refused with the reason",
              st == 400 and "ip: and an IP address" in body.decode(),
              "%d %s" % (st, body.decode()))
    finally:
        for p in procs:
            p.kill()
        for p in procs:
            p.wait()
    sys.exit(1 if FAILED else 0)


if __name__ == "__main__":
    main()
