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


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


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

    # routes
    rc, out, err = ctl("--admin", admin, "routes")
    lines = out.splitlines()
    check(rc == 0 and lines[0].split() == ["NAME", "OWNER", "VERSION",
                                           "STATE"], "routes header")
    check(lines[2].split() == ["my-long-service-name", "node-b",
                               "1234567890123", "released"], "routes rows")
    rc, out, err = ctl("--admin", admin, "routes", "--json")
    check(rc == 0 and json.loads(out)[0] == {
        "name": "app", "owner": "node-a", "version": 7, "state": "active"},
        "routes --json")

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

    # unreachable
    dead = free_port()
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
    check(rc == 0 and out.startswith("usage: warrenctl"), "--help")
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
