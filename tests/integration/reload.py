#!/usr/bin/env python3
"""SIGHUP reloads limits without dropping tunnels (issue 12): one
`warren node --config FILE` (gossip on, alone) and one `warren http`
client bound to it.

usage: reload.py WARREN_BINARY

Checks:
  start          the config's cap (max-conns-per-ip = 50) holds 3 idle
                 connections from 127.0.0.1
  reload         the file now says max-conns-per-ip = 2 and head-timeout =
                 1500; after SIGHUP the node logs the new limits, a 3rd
                 idle connection from 127.0.0.1 gets 503, a new connection
                 left silent is closed after ~1.5 s, and the tunnel is the
                 same one (the client bound once, never reconnected) and
                 still serves
  flag wins      --upstream-timeout on the command line is kept over the
                 file's upstream-timeout
  fixed option   a changed `region` is reported as needing a restart and
                 not applied
  bad config     a value that does not parse: reload_failed with the
                 reason, every old setting kept (the cap is still 2), the
                 tunnel still serves
  faults         the --faults-file rule set is replaced from the file on
                 SIGHUP; a fault file that does not parse fails the whole
                 reload (a good new cap in the config is not applied)
  metrics        warren_config_reloads_total{result="ok"} 1 and
                 {result="failed"} 2
  signals        SIGTERM with a half-sent request head: the node drains
                 (still up after 1.5 s, /readyz 503, /healthz 200); a
                 second SIGTERM stops it at once, exit 0
Prints one line per check; exits non-zero when any failed.
"""
import os
import signal
import socket
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from meshlib import FAILED, Client, Fleet, check, poll, start_origin  # noqa

WARREN = os.path.abspath(sys.argv[1])
TMP = tempfile.mkdtemp(prefix="warren-reload-")
CONF = os.path.join(TMP, "node.ini")
FAULTS = os.path.join(TMP, "faults.json")


def write_faults(text):
    with open(FAULTS, "w") as f:
        f.write(text)


def fault_rules(node):
    """The node's fault rules as (kinds, drop) pairs, or None."""
    j = node.get_json("/faults")
    if j is None:
        return None
    return [(tuple(r.get("kinds", [])), r.get("drop", 0)) for r in j["rules"]]


def write_conf(extra):
    with open(CONF, "w") as f:
        f.write("[node]\nupstream-timeout = 9000\n" + extra)


def idle_conn(node):
    return socket.create_connection(node.http, timeout=3,
                                    source_address=("127.0.0.1", 0))


def refused(s):
    """A 503 and EOF (the cap), or False when the node keeps it open."""
    s.settimeout(1.0)
    try:
        data = s.recv(4096)
    except socket.timeout:
        return False
    except OSError:
        return False
    return data.startswith(b"HTTP/1.1 503 ")


def log_has(node, text):
    with open(node.log) as f:
        return text in f.read()


def main():
    write_conf("max-conns-per-ip = 50\nregion = r1\n")
    write_faults('{"seed":7,"rules":[{"kinds":["probe"],"drop":0.01}]}')
    fleet = Fleet(WARREN, TMP, 1,
                  extra=lambda i: ["--config", CONF,
                                   "--upstream-timeout", "7000",
                                   "--faults", "--faults-file", FAULTS])
    n = fleet.nodes[0]
    try:
        port = start_origin("r")
        fleet.start()
        poll(lambda: n.status(), 15)
        c = Client(fleet, n, "app", port)
        ok, _ = poll(c.forwarding, 15)
        check("client bound", ok, c.stderr()[-500:])
        check("served", n.visit("app")[0] == 200)

        conns = [idle_conn(n) for _ in range(3)]
        check("start: 3 idle connections from 127.0.0.1 held under cap 50",
              not any(refused(s) for s in conns))
        for s in conns:
            s.close()
        time.sleep(0.3)

        check("start: the fault file's rule is loaded",
              fault_rules(n) == [(("probe",), 0.01)], repr(fault_rules(n)))
        write_conf("max-conns-per-ip = 2\nidle-timeout = 1500\n"
                   "head-timeout = 1500\nregion = r2\n")
        write_faults('{"seed":7,"rules":[{"kinds":["ack"],"drop":0.02}]}')
        n.proc.send_signal(signal.SIGHUP)
        ok, _ = poll(lambda: log_has(n, "max_conns_per_ip=2"), 5)
        check("reload: new limits logged", ok)
        check("reload: flag --upstream-timeout wins over the file",
              log_has(n, "upstream_ms=7000"))
        check("reload: the fault rules were replaced from the file",
              fault_rules(n) == [(("ack",), 0.02)], repr(fault_rules(n)))
        check("reload: a changed region needs a restart",
              log_has(n, "reload_needs_restart option=region"))
        t0 = time.time()
        conns = [idle_conn(n) for _ in range(3)]
        check("reload: the 3rd idle connection from 127.0.0.1 gets 503",
              not refused(conns[0]) and not refused(conns[1]) and
              refused(conns[2]))
        conns[0].settimeout(5)
        try:
            eof = conns[0].recv(10) == b""
        except OSError:
            eof = True
        dt = time.time() - t0
        # (the old head timeout was 30 s)
        check("reload: a new silent connection is closed by the new "
              "1.5 s head timeout (after %.1f s)" % dt,
              eof and 1.2 < dt < 4.0)
        for s in conns:
            s.close()
        time.sleep(0.3)
        st, body = n.visit("app")
        check("reload: the tunnel still serves", st == 200, repr(body[:200]))

        write_conf("max-conns-per-ip = lots\n")
        n.proc.send_signal(signal.SIGHUP)
        ok, _ = poll(lambda: log_has(n, "reload_failed"), 5)
        with open(n.log) as f:
            line = next((l for l in f if "reload_failed" in l), "")
        check("bad config: reload_failed says why",
              ok and "max-conns-per-ip wants a number" in line and
              "kept=old" in line, line)
        conns = [idle_conn(n) for _ in range(3)]
        check("bad config: the old cap of 2 still holds", refused(conns[2]))
        for s in conns:
            s.close()
        time.sleep(0.3)
        check("bad config: the tunnel still serves", n.visit("app")[0] == 200)

        # A fault file that does not parse fails the whole reload too: the
        # config's good new cap is not applied either.
        write_conf("max-conns-per-ip = 3\nidle-timeout = 1500\n"
                   "head-timeout = 1500\nregion = r2\n")
        write_faults('{"seed":7,"rules":[{"kinds":["nonsense"],"drop":2}]}')
        n.proc.send_signal(signal.SIGHUP)
        ok, _ = poll(lambda: n.metric(
            'warren_config_reloads_total{result="failed"}') == 2, 5)
        check("bad fault file: the reload fails whole, old rules kept",
              ok and fault_rules(n) == [(("ack",), 0.02)],
              repr(fault_rules(n)))
        conns = [idle_conn(n) for _ in range(3)]
        check("bad fault file: the config's new cap (3) was not applied",
              refused(conns[2]))
        for s in conns:
            s.close()
        time.sleep(0.3)
        err = c.stderr()
        check("the client bound once and never reconnected",
              err.count(" bound ") == 1 and "reconnect" not in err,
              err[-800:])
        check("metrics: 1 reload ok, 2 failed",
              n.metric('warren_config_reloads_total{result="ok"}') == 1 and
              n.metric('warren_config_reloads_total{result="failed"}') == 2)

        # A drain waits for a request in flight (here a head half sent,
        # which the 30 s drain timeout would wait for); /readyz says 503
        # and /healthz 200 meanwhile; a second SIGTERM stops at once.
        half = socket.create_connection(n.http, timeout=3,
                                        source_address=("127.0.0.2", 0))
        half.sendall(b"GET / HTTP/1.1\r\nHost: app.mesh.test\r\n")
        time.sleep(0.2)
        n.proc.send_signal(signal.SIGTERM)
        time.sleep(1.5)
        ready = n.get("/readyz")[0] if n.alive_proc() else 0
        health = n.get("/healthz")[0] if n.alive_proc() else 0
        check("drain: still running with a request in flight, /readyz 503, "
              "/healthz 200", n.alive_proc() and ready == 503 and
              health == 200, "ready %r health %r" % (ready, health))
        t0 = time.time()
        n.proc.send_signal(signal.SIGTERM)
        try:
            rc = n.proc.wait(timeout=5)
        except Exception:
            rc = None
        check("a second SIGTERM stops at once (%.1f s)" % (time.time() - t0),
              rc == 0 and time.time() - t0 < 4, "rc=%r" % rc)
        half.close()
    finally:
        fleet.stop()
    if FAILED:
        print("logs in %s" % TMP)
    return 1 if FAILED else 0


if __name__ == "__main__":
    sys.exit(main())
