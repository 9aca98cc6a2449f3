#!/usr/bin/env python3
"""warrenctl against the real admin server (admin_demo, canned handlers).

usage: warrenctl_test.py WARRENCTL ADMIN_DEMO

Checks the command-line contract (DESIGN.md): table and --json output of
members/routes/status, watch, token handling, unreachable port, garbage
answers, usage errors and exit codes; plus a few raw-HTTP checks of the
server itself (404/405/401 JSON errors, /metrics, keep-alive, limits).
Every subprocess has a timeout; the demo servers are killed at the end.
"""
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time

CTL, DEMO = sys.argv[1], sys.argv[2]
failures = []
demos = []


def check(cond, what):
    if not cond:
        failures.append(what)
        print("FAIL:", what)
    else:
        print("ok:", what)


def start_demo(*args):
    p = subprocess.Popen([DEMO, *args], stdout=subprocess.PIPE, text=True)
    demos.append(p)
    port = int(p.stdout.readline().strip())
    return port


def ctl(*args, env=None):
    e = {k: v for k, v in os.environ.items()
         if k not in ("WARREN_ADMIN", "WARREN_TOKEN")}
    if env:
        e.update(env)
    r = subprocess.run([CTL, *args], capture_output=True, text=True,
                       timeout=30, env=e)
    return r.returncode, r.stdout, r.stderr


def raw(port, data, read_until_close=True):
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(data)
        out = b""
        while True:
            try:
                chunk = s.recv(65536)
            except socket.timeout:
                break
            if not chunk:
                break
            out += chunk
            if not read_until_close:
                break
        return out


try:
    port = start_demo()
    admin = f"127.0.0.1:{port}"

    # members: table
    rc, out, err = ctl("--admin", admin, "members")
    check(rc == 0, f"members exit 0 (got {rc}, {err.strip()})")
    lines = out.splitlines()
    check(lines[0].split() == ["ID", "ADDR", "STATE", "INCARNATION"],
          "members header")
    check(lines[1].split() == ["node-a", "127.0.0.1:7946", "alive", "0"]
          and lines[3].split() == ["node-c", "127.0.0.1:17948", "dead", "12"],
          "members rows")
    # Columns aligned: STATE starts at the same offset in every line.
    col = lines[0].index("STATE")
    check(all(l[col:].split()[0] in ("STATE", "alive", "suspect", "dead")
              for l in lines), "members columns aligned")

    # members --json: exactly the contract's fields, in server order
    rc, out, err = ctl("members", "--json", "--admin", admin)
    check(rc == 0, "members --json exit 0")
    j = json.loads(out)
    check(j == [
        {"id": "node-a", "addr": "127.0.0.1:7946", "state": "alive",
         "incarnation": 0},
        {"id": "node-b", "addr": "127.0.0.1:7947", "state": "suspect",
         "incarnation": 3},
        {"id": "node-c", "addr": "127.0.0.1:17948", "state": "dead",
         "incarnation": 12}], f"members --json content: {out.strip()}")
    check(list(j[0].keys()) == ["id", "addr", "state", "incarnation"],
          "members --json key order")

    # routes: ACCOUNT column; account null when the node leaves it out,
    # serving passed on when it sends it
    rc, out, err = ctl("--admin", admin, "routes")
    lines = out.splitlines()
    check(rc == 0 and lines[0].split() == ["NAME", "OWNER", "ACCOUNT",
                                           "VERSION", "STATE"],
          f"routes header: {lines[:1]}")
    check(lines[1].split() == ["app", "node-a", "acme", "7", "active"]
          and lines[2].split() == ["my-long-service-name", "node-b", "-",
                                   "1234567890123", "released"],
          f"routes rows: {lines}")
    rc, out, err = ctl("--admin", admin, "routes", "--json")
    j = json.loads(out)
    check(rc == 0 and j[0] == {
        "name": "app", "owner": "node-a", "account": "acme", "version": 7,
        "state": "active", "serving": 2} and j[1]["account"] is None
        and list(j[1].keys()) == ["name", "owner", "account", "version",
                                  "state"], f"routes --json: {out!r}")

    # routes --name: every candidate and why
    rc, out, err = ctl("--admin", admin, "routes", "--name", "app")
    lines = out.splitlines()
    check(rc == 0 and lines[0] == "app: 2 candidates, 1 serves"
          and lines[1].split() == ["OWNER", "ACCOUNT", "VERSION", "CLAIMED",
                                   "STATE", "VERDICT"]
          and lines[2].split() == ["node-a", "acme", "7",
                                   "v3", "active", "serves"]
          and lines[3].split()[-1] == "released"
          and "  node-a v7 [balance]: highest version among live claims of "
              "account acme" in lines
          and "  node-b v5: released by its owner at version 5" in lines,
          f"routes --name app: {out!r} {err!r}")
    rc, out, err = ctl("--admin", admin, "routes", "--name=app", "--json")
    j = json.loads(out) if rc == 0 else {}
    c0 = j.get("candidates", [{}])[0]
    check(rc == 0 and j["name"] == "app" and len(j["candidates"]) == 2
          and list(c0.keys()) == ["owner", "account", "session", "epoch",
                                  "seq", "version", "claimed_at", "state",
                                  "options", "verdict", "why"]
          and c0["verdict"] == "serves" and c0["options"] == ["balance"],
          f"routes --name --json: {out!r}")
    # A name the node has no entry for: said plainly, exit 0 (scripts that
    # poll for a name to appear need no error handling).
    rc, out, err = ctl("--admin", admin, "routes", "--name", "ghost")
    check(rc == 0 and out == "no entry for ghost\n" and err == "",
          f"routes --name with no entry: {rc} {out!r} {err!r}")
    # Names are percent-encoded into the query.
    rc, out, err = ctl("--admin", admin, "routes", "--name", "a&b=c%")
    check(rc == 0 and out == "no entry for a&b=c%\n",
          f"routes --name encoded: {out!r} {err!r}")
    rc, out, err = ctl("--admin", admin, "members", "--name", "app")
    check(rc == 2 and "--name works with routes only" in err,
          "--name with members is a usage error")
    rc, out, err = ctl("--admin", admin, "routes", "--name", "")
    check(rc == 2 and "bad --name" in err, "empty --name")

    # status, via the environment variable this time
    rc, out, err = ctl("status", env={"WARREN_ADMIN": admin})
    check(rc == 0 and "1 alive, 1 suspect, 1 dead, 0 left" in out
          and "d1g35t0002" in out and "node-a" in out, "status text")
    rc, out, err = ctl("status", "--json", env={"WARREN_ADMIN": admin})
    j = json.loads(out)
    check(rc == 0 and j == {"id": "node-a", "members": {
        "alive": 1, "suspect": 1, "dead": 1, "left": 0}, "routes": 2,
        "routes_digest": "d1g35t0002"} and list(j.keys()) == [
        "id", "members", "routes", "routes_digest"], "status --json")

    # token required
    tport = start_demo("--token", "s3cret-t0ken")
    tadmin = f"127.0.0.1:{tport}"
    rc, out, err = ctl("--admin", tadmin, "members")
    check(rc == 1 and err.strip() == "warrenctl: the admin API rejected the "
          "token (use --token or WARREN_TOKEN)", f"missing token: {err!r}")
    rc, out, err = ctl("--admin", tadmin, "--token", "wrong", "status")
    check(rc == 1 and "rejected the token" in err, "wrong token")
    rc, out, err = ctl("--admin", tadmin, "--token", "s3cret-t0ken",
                       "members", "--json")
    check(rc == 0 and len(json.loads(out)) == 3, "right token")
    rc, out, err = ctl("--admin", tadmin, "members",
                       env={"WARREN_TOKEN": "s3cret-t0ken"})
    check(rc == 0 and "node-b" in out, "token from WARREN_TOKEN")
    r = raw(tport, b"GET /healthz HTTP/1.1\r\nConnection: close\r\n\r\n")
    check(r.startswith(b"HTTP/1.1 200") and r.endswith(b'{"ok":true}\n'),
          "healthz without token")
    r = raw(tport, b"GET /nope HTTP/1.1\r\nConnection: close\r\n\r\n")
    check(r.startswith(b"HTTP/1.1 401") and b"WWW-Authenticate: Bearer" in r,
          "unknown path without token is 401, not 404")

    # unreachable: a port bound but never listening, held for the whole
    # test, so nothing else (the 500-node fake fleet below opens hundreds
    # of ephemeral ports) can take it and answer
    dead_sock = socket.socket()
    dead_sock.bind(("127.0.0.1", 0))
    dead = dead_sock.getsockname()[1]
    rc, out, err = ctl("--admin", f"127.0.0.1:{dead}", "members")
    check(rc == 1 and err.strip() == "warrenctl: cannot reach admin API at "
          f"127.0.0.1:{dead}: connection refused", f"unreachable: {err!r}")

    # garbage and wrong shapes
    gport = start_demo("--mode", "garbage")
    rc, out, err = ctl("--admin", f"127.0.0.1:{gport}", "members")
    check(rc == 1 and "unexpected answer" in err and "not JSON" in err
          and out == "", f"garbage members: {err!r}")
    sport = start_demo("--mode", "shape")
    rc, out, err = ctl("--admin", f"127.0.0.1:{sport}", "members")
    check(rc == 1 and 'member 1 has unknown state "zombie"' in err,
          f"bad state: {err!r}")
    rc, out, err = ctl("--admin", f"127.0.0.1:{sport}", "status")
    check(rc == 1 and 'status has no non-negative integer "routes"' in err,
          f"bad status: {err!r}")
    rc, out, err = ctl("--admin", f"127.0.0.1:{sport}", "routes")
    check(rc == 0, "routes still fine in shape mode")
    # shape mode ignores ?name= like a node older than issue 10
    rc, out, err = ctl("--admin", f"127.0.0.1:{sport}", "routes", "--name",
                       "app")
    check(rc == 1 and "a node too old for --name?" in err and out == "",
          f"routes --name on an old node: {err!r}")
    eport = start_demo("--mode", "empty")
    rc, out, err = ctl("--admin", f"127.0.0.1:{eport}", "members")
    check(rc == 0 and "(no members)" in out, "empty members")
    rc, out, err = ctl("--admin", f"127.0.0.1:{eport}", "members", "--json")
    check(rc == 0 and out.strip() == "[]", "empty members --json")

    # watch
    wport = start_demo("--mode", "evolve")
    rc, out, err = ctl("--admin", f"127.0.0.1:{wport}", "watch",
                       "--interval", "0.05", "--count", "3")
    lines = [l.split(" ", 1)[1] for l in out.splitlines()]
    check(rc == 0, f"watch exit 0 ({err.strip()})")
    check("node node-a: 1 alive, 1 suspect, 1 dead, 0 left; 1 routes "
          "(digest d1g35t0001)" in lines
          and "member node-c alive (incarnation 12)" in lines
          and "member node-c alive -> suspect (incarnation 12)" in lines
          and "member node-c suspect -> dead (incarnation 12)" in lines
          and "member node-d joined (alive, incarnation 0)" in lines
          and "routes 1 -> 2 (digest d1g35t0001 -> d1g35t0002)" in lines,
          f"watch lines: {lines}")
    rc, out, err = ctl("--admin", f"127.0.0.1:{wport}", "watch", "--json",
                       "--interval", "0.05", "--count", "2")
    evs = [json.loads(l) for l in out.splitlines()]
    check(rc == 0 and {"event": "member", "id": "node-c", "from": "dead",
                       "to": "dead", "incarnation": 12} not in evs
          and any(e.get("event") == "routes" for e in evs),
          f"watch --json: {evs}")
    # Ctrl-C ends an unbounded watch cleanly (exit 0, output flushed).
    # (stdout goes to a file: Python's pipe readers would buffer lines that
    # communicate() then never sees.)
    with tempfile.TemporaryFile("w+") as f:
        w = subprocess.Popen([CTL, "--admin", f"127.0.0.1:{wport}", "watch",
                              "--interval", "0.05"], stdout=f,
                             stderr=subprocess.PIPE, text=True)
        for _ in range(200):  # wait (bounded) for the first poll's output
            time.sleep(0.02)
            if os.fstat(f.fileno()).st_size > 0:
                break
        time.sleep(0.05)
        w.send_signal(signal.SIGINT)
        _, err = w.communicate(timeout=10)
        f.seek(0)
        out = f.read()
    check(w.returncode == 0 and " member node-a " in out and err == "",
          f"watch stops on Ctrl-C: rc={w.returncode} {err!r} {out!r}")
    rc, out, err = ctl("--admin", f"127.0.0.1:{dead}", "watch",
                       "--interval", "0.05", "--count", "2")
    check(rc == 1 and err.count("cannot reach") == 1,
          f"watch unreachable reported once: {err!r}")

    # convergence view over several nodes
    port2 = start_demo()
    rc, out, err = ctl("--admin", f"{admin},127.0.0.1:{port2}", "status")
    check(rc == 0 and out.splitlines()[-1] ==
          "converged: 2 nodes, 2 routes, digest d1g35t0002",
          f"mesh converged: {out!r}")
    rc, out, err = ctl("--admin", f"{admin},127.0.0.1:{wport},127.0.0.1:{dead}",
                       "status", "--json")
    j = json.loads(out)
    check(rc == 1 and j["converged"] is False and j["nodes"][2] == {
        "admin": f"127.0.0.1:{dead}", "status": None}
        and j["nodes"][0]["status"]["routes_digest"] == "d1g35t0002"
        and "cannot reach" in err, f"mesh not converged: {out!r} {err!r}")
    rc, out, err = ctl("--admin", f"{admin},{admin}", "members")
    check(rc == 2 and "status only" in err, "several admins: status only")

    # mesh: the whole fleet from one node
    fport = start_demo("--fleet", "5")
    fadmin = f"127.0.0.1:{fport}"
    t0 = time.monotonic()
    rc, out, err = ctl("--admin", fadmin, "mesh")
    lines = out.splitlines()
    rows = [l for l in lines if l.split()[:1] in (["n1"], ["n2"], ["n3"],
                                                  ["n4"], ["n5"])]
    check(rc == 0 and err == "" and len(rows) == 5
          and "routes: 1 digest" in lines and "members: 1 digest" in lines
          and lines[-1].startswith("converged: 5 nodes, 2 routes, routes "
                                   "digest c0ffee00d1e57a11")
          and "agreed for 1 min 0 s" in lines[-1]
          and "retired" not in out and "unreachable" not in out,
          f"mesh converged fleet: rc={rc} {out!r} {err!r}")
    rc, out, err = ctl("--admin", fadmin, "mesh", "--json")
    j = json.loads(out) if out else {}
    check(rc == 0 and j.get("converged") is True
          and len(j["routes"]["groups"]) == 1
          and j["routes"]["groups"][0]["nodes"] == 5
          and j["routes"]["groups"][0]["agreed_ms"] == 60000
          and len(j["members"]["groups"]) == 1 and j["unreachable"] == []
          and j["live"] == 5 and j["members_total"] == 6,
          f"mesh --json converged: {out[:300]!r}")

    dport = start_demo("--fleet", "5", "--mode", "diverged")
    dadmin = f"127.0.0.1:{dport}"
    t0 = time.monotonic()
    # --timeout 1.5: the hung member costs that much; long enough that a
    # real node of the fake fleet (an ASan build on a loaded machine) is
    # never mistaken for a hung one.
    rc, out, err = ctl("--admin", dadmin, "mesh", "--timeout", "1.5")
    took = time.monotonic() - t0
    lines = out.splitlines()
    row = {l.split()[0]: l for l in lines[2:11] if l.strip()}
    check(rc == 3 and err == "", f"mesh diverged exits 3: rc={rc} {err!r}")
    check(row.get("n4", "").endswith("disagrees on routes (at least 5.0 s)")
          and row.get("n5", "").endswith("disagrees on members (at least "
                                         "7.0 s)")
          and "disagrees" not in row.get("n1", "x"),
          f"mesh names the disagreeing nodes: {out!r}")
    check("  app: owner n1 v7 active at group A (4 nodes), owner n2 v6 "
          "active at group B (n4)" in lines,
          f"mesh names the route and who disagrees: {out!r}")
    check("  n3: alive at 4 nodes, dead at n5" in lines,
          f"mesh names the member and who disagrees: {out!r}")
    check(any(l.startswith("  B  5e1f00d4b2a7c9e3  1 node (n4), 2 routes, "
                           "disagrees for at least 5.0 s") for l in lines)
          and any("B  77aa0e21d00d5eed  1 node (n5), disagrees for at least "
                  "7.0 s" in l for l in lines),
          f"mesh says since when: {out!r}")
    unr = lines[lines.index("unreachable: 4 of 9 live") + 1:][:4] \
        if "unreachable: 4 of 9 live" in lines else []
    check(len(unr) == 4 and unr[0].startswith("  gone (127.0.0.1:")
          and unr[0].endswith("): connection refused")
          and unr[1].endswith("): timed out after 1500 ms")
          and "garbled" in unr[2] and "not JSON" in unr[2]
          and unr[3] == "  noadmin: no admin address"
          and "retired" not in out,
          f"mesh lists unreachable members with the reason: {unr!r}")
    check(lines[-1] == "not converged: 2 routes digests, 2 members digests "
          "(4 unreachable)" and took < 6, f"mesh verdict ({took:.2f}s): "
          f"{lines[-1:]!r}")
    rc, out, err = ctl("--admin", dadmin, "mesh", "--json", "--timeout",
                       "1.5")
    j = json.loads(out) if out else {}
    check(rc == 3 and list(j.keys()) == [
        "via", "id", "members_total", "live", "asked", "reachable",
        "converged", "routes", "members", "nodes", "unreachable"]
        and list(j["routes"].keys()) == ["converged", "groups", "differences",
                                         "differences_total", "unfetched"]
        and list(j["members"].keys()) == ["converged", "groups",
                                          "differences", "differences_total",
                                          "unfetched"]
        and list(j["routes"]["groups"][0].keys()) == [
            "label", "digest", "nodes", "ids", "routes", "agreed_ms",
            "disagrees_ms"]
        and j["routes"]["groups"][1]["ids"] == ["n4"]
        and j["routes"]["groups"][1]["disagrees_ms"] == 5000
        and j["routes"]["differences"][0]["name"] == "app"
        and j["members"]["differences"][0]["id"] == "n3"
        and j["members"]["differences"][0]["views"][1]["ids"] == ["n5"]
        and {u["id"]: u["reason"] for u in j["unreachable"]}["noadmin"]
        == "no admin address"
        and len(j["nodes"]) == 9 and j["reachable"] == 5
        and set(j["nodes"][0].keys()) == {
            "id", "admin", "state", "reachable", "error", "routes",
            "routes_digest", "routes_group", "routes_digest_age_ms",
            "members_digest", "members_group", "members_digest_age_ms",
            "routes_disagrees_ms", "members_disagrees_ms"},
        f"mesh --json shape: {out[:400]!r}")

    # 500 nodes: a summary in bounded lines, within a few seconds
    bport = start_demo("--fleet", "500", "--mode", "diverged")
    t0 = time.monotonic()
    rc, out, err = ctl("--admin", f"127.0.0.1:{bport}", "mesh", "--timeout",
                       "1.5")
    took = time.monotonic() - t0
    lines = out.splitlines()
    # "A few seconds": under 1 s on an idle machine (-O2 or ASan); the
    # bound leaves room for a loaded one, and is far below the 20 s run
    # limit, so a serial or stuck implementation fails it.
    check(rc == 3 and len(lines) <= 45 and took < 10
          and lines[0].startswith("mesh via ") and "500 answered" in lines[0]
          and "  A  c0ffee00d1e57a11  499 nodes, 22 routes, agreed for 1 min "
              "0 s" in lines
          and "route differences: 21" in lines
          and "member differences: 21" in lines
          and lines.count("  and 11 more") == 2
          and "unreachable: 4 of 504 live" in lines
          and not any(l.startswith("n250 ") for l in lines),
          f"mesh 500 nodes ({took:.2f}s, {len(lines)} lines): "
          f"{out[:2000]!r} {err!r}")
    rc, out, err = ctl("--admin", f"127.0.0.1:{bport}", "mesh", "--json",
                       "--timeout", "1.5")
    j = json.loads(out) if out else {}
    check(rc == 3 and len(j["nodes"]) == 504
          and j["routes"]["differences_total"] == 21
          and len(j["routes"]["differences"]) == 21,
          "mesh --json at 500 nodes has everything")

    # the first node cannot be asked: exit 1
    rc, out, err = ctl("--admin", f"127.0.0.1:{dead}", "mesh")
    check(rc == 1 and out == "" and err.strip() == "warrenctl: cannot reach "
          f"admin API at 127.0.0.1:{dead}: connection refused",
          f"mesh, first node unreachable: {err!r}")
    # tokens go to every node
    tfport = start_demo("--fleet", "3", "--token", "fl33t")
    rc, out, err = ctl("--admin", f"127.0.0.1:{tfport}", "--token", "fl33t",
                       "mesh")
    check(rc == 0 and "3 answered" in out, f"mesh with a token: {out!r}")
    rc, out, err = ctl("--admin", f"127.0.0.1:{tfport}", "mesh")
    check(rc == 1 and "rejected the token" in err, "mesh without the token")

    # usage errors and --help/--version
    rc, out, err = ctl("--bogus", "members")
    check(rc == 2 and err.startswith("warrenctl: unknown option '--bogus'")
          and len(err.splitlines()) == 1, "bad flag exit 2")
    rc, out, err = ctl("frobnicate")
    check(rc == 2 and "unknown command" in err, "bad command exit 2")
    rc, out, err = ctl()
    check(rc == 2 and "missing command" in err, "no command exit 2")
    rc, out, err = ctl("--admin", "nonsense", "members")
    check(rc == 2 and "bad admin address" in err, "bad address exit 2")
    rc, out, err = ctl("--help")
    check(rc == 0 and out.startswith(
        "usage: warrenctl --admin ADDR:PORT [--token T] members|routes "
        "[--name N]|status|watch|mesh [--json]\n")
        and "\n  mesh " in out and "\n  routes --name N\n" in out, "--help")
    rc, out, err = ctl("--version")
    check(rc == 0 and out.startswith("warrenctl "), "--version")

    # the server itself, raw
    r = raw(port, b"GET /nope HTTP/1.1\r\nConnection: close\r\n\r\n")
    check(r.startswith(b"HTTP/1.1 404") and
          r.endswith(b'{"error":"no such endpoint: /nope"}\n'), "404 json")
    r = raw(port, b"DELETE /members HTTP/1.1\r\nConnection: close\r\n\r\n")
    check(r.startswith(b"HTTP/1.1 405") and b"Allow: GET\r\n" in r, "405")
    r = raw(port, b"GET /metrics HTTP/1.1\r\nConnection: close\r\n\r\n")
    check(b"# TYPE warren_swim_members gauge\n"
          b'warren_swim_members{state="alive"} 1\n' in r
          and b"warren_admin_requests_total " in r
          and b"text/plain; version=0.0.4" in r, "metrics exposition")
    # a request arriving in pieces (several reads) is answered
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        for piece in (b"GET /hea", b"lthz HTTP/1.1\r\nConne",
                      b"ction: close\r\n", b"\r\n"):
            s.sendall(piece)
            time.sleep(0.02)
        r = b""
        while chunk := s.recv(4096):
            r += chunk
    check(r.startswith(b"HTTP/1.1 200") and r.endswith(b'{"ok":true}\n'),
          "request split over several reads")
    # keep-alive: two pipelined requests, one connection
    r = raw(port, b"GET /healthz HTTP/1.1\r\n\r\n"
            b"GET /healthz HTTP/1.1\r\nConnection: close\r\n\r\n")
    check(r.count(b"HTTP/1.1 200 OK") == 2, "pipelined keep-alive")
    r = raw(port, b"POST /fault/drop?drop=0.5 HTTP/1.1\r\nContent-Length: 5"
            b"\r\nConnection: close\r\n\r\nhello")
    check(r.endswith(b'{"drop":"0.5","body":"hello"}\n'), "POST with body")
    r = raw(port, b"GET / HTTP/1.1\r\nX: " + b"a" * 9000 + b"\r\n\r\n")
    check(r.startswith(b"HTTP/1.1 431"), "431 on a huge head")
    r = raw(port, b"POST /fault/x HTTP/1.1\r\nContent-Length: 70000\r\n\r\n")
    check(r.startswith(b"HTTP/1.1 413"), "413 on a huge body")
    r = raw(port, b"GET /x HTTP/1.1\r\nContent-Length: 1\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n")
    check(r.startswith(b"HTTP/1.1 400"), "400 on CL+TE")
    r = raw(port, b"GET /metrics HTTP/1.1\r\nConnection: close\r\n\r\n")
    bad = [l for l in r.split(b"\n")
           if l.startswith(b"warren_admin_bad_requests_total ")]
    check(bad == [b"warren_admin_bad_requests_total 3"],
          f"bad requests counted: {bad}")
    # Closed connections are gone (lingering close saw the FIN): only the
    # scrape itself is open.
    for _ in range(60):  # bounded: up to 3 s on a loaded machine
        time.sleep(0.05)
        r = raw(port, b"GET /metrics HTTP/1.1\r\nConnection: close\r\n\r\n")
        if b"\nwarren_admin_connections 1\n" in r:
            break
    check(b"\nwarren_admin_connections 1\n" in r, "connections released")

    # connection cap and idle timeout of the libuv server
    lport = start_demo("--max-conns", "2", "--idle-ms", "300")
    held = [socket.create_connection(("127.0.0.1", lport), timeout=5)
            for _ in range(2)]
    time.sleep(0.05)
    r = raw(lport, b"GET /healthz HTTP/1.1\r\n\r\n")
    head, _, body = r.partition(b"\r\n\r\n")
    check(r.startswith(b"HTTP/1.1 503") and
          body == b'{"error":"too many admin connections"}\n' and
          f"Content-Length: {len(body)}\r\n".encode() in head,
          f"503 over the connection cap: {r!r}")
    # The held connections still work.
    held[0].sendall(b"GET /healthz HTTP/1.1\r\n\r\n")
    check(held[0].recv(4096).startswith(b"HTTP/1.1 200"),
          "connections under the cap served")
    # Idle ones are closed by the server (recv sees EOF) within ~300 ms.
    t0 = time.monotonic()
    held[1].settimeout(5)
    eof = held[1].recv(1) == b""
    waited = time.monotonic() - t0
    check(eof and waited < 3, f"idle connection closed ({waited:.2f}s)")
    for h in held:
        h.close()
    time.sleep(0.1)
    r = raw(lport, b"GET /metrics HTTP/1.1\r\nConnection: close\r\n\r\n")
    check(b"\nwarren_admin_connections_refused_total 1\n" in r,
          "refusal counted")
    # A client dribbling a request does not keep its connection: the
    # deadline runs from the last response, not from the last byte.
    t0 = time.monotonic()
    slow = socket.create_connection(("127.0.0.1", lport), timeout=5)
    closed_early = False
    for ch in b"GET /healthz HTTP/1.1\r\n":
        try:
            slow.sendall(bytes([ch]))
        except OSError:
            closed_early = True
            break
        time.sleep(0.03)
    slow.settimeout(5)
    try:
        got = slow.recv(4096)
    except OSError:
        got = b""
    waited = time.monotonic() - t0
    check(got == b"" and 0.2 < waited < 3,
          f"slow request cut off ({waited:.2f}s, {got[:20]!r})")
    slow.close()
finally:
    for p in demos:
        p.terminate()
    for p in demos:
        try:
            rc = p.wait(timeout=10)
            check(rc == 0, f"demo exits cleanly (uv_loop_close) rc={rc}")
        except subprocess.TimeoutExpired:
            p.kill()
            failures.append("demo did not stop")

print(f"{len(failures)} failures")
sys.exit(1 if failures else 0)
