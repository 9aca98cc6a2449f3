#!/usr/bin/python3
"""Checks warren's systemd units (docs/DEPLOY.md).

usage: check_systemd.py [--binary PATH] DIR

DIR holds warren.service, warren.socket and warren.ini.  Runs
`systemd-analyze verify` on copies of the units (ExecStart pointed at
PATH, default the unit's own, since verify wants an executable there) and
takes any line it prints as a problem: verify exits 0 on unknown keys and
unparsable values, which it only reports.  Then warren's rules: the
hardening options are present with the values docs/DEPLOY.md explains,
the reload sends SIGHUP, the stop signal is SIGTERM and TimeoutStopSec
exceeds warren.ini's drain-wait + drain-timeout + 5 s.

Prints "ok" or one line per problem and exits 1; exits 77 (a skip, for
meson) when systemd-analyze is not installed.
"""
import configparser
import os
import re
import shutil
import subprocess
import sys
import tempfile

REQUIRED = {
    # key: a regex its value must match (one of its lines)
    "DynamicUser": r"yes",
    "NoNewPrivileges": r"yes",
    "ProtectSystem": r"strict",
    "ProtectHome": r"yes",
    "PrivateTmp": r"yes",
    "PrivateDevices": r"yes",
    "CapabilityBoundingSet": r"",
    "RestrictAddressFamilies": r"AF_INET AF_INET6 AF_UNIX",
    "SystemCallFilter": r"@system-service",
    "SystemCallArchitectures": r"native",
    "MemoryDenyWriteExecute": r"yes",
    "LimitNOFILE": r"\d{5,}",
    "ExecReload": r".*kill -HUP \$MAINPID",
    "KillSignal": r"SIGTERM",
    "KillMode": r"mixed",
    "TimeoutStopSec": r"\d+",
}


def unit_values(path, section):
    """{key: [values]} of |section| in a unit file (keys may repeat)."""
    vals, cur = {}, None
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line or line[0] in "#;":
                continue
            if line.startswith("["):
                cur = line.strip("[]")
                continue
            if cur == section and "=" in line:
                k, v = line.split("=", 1)
                vals.setdefault(k.strip(), []).append(v.strip())
    return vals


def main():
    args = sys.argv[1:]
    binary = None
    if args[:1] == ["--binary"] and len(args) >= 2:
        binary = os.path.abspath(args[1])
        args = args[2:]
    if len(args) != 1:
        print("usage: check_systemd.py [--binary PATH] DIR", file=sys.stderr)
        return 2
    d = args[0]
    sa = shutil.which("systemd-analyze")
    if not sa:
        print("skip: systemd-analyze is not installed (Debian package "
              "systemd; tools/bootstrap installs it)")
        return 77
    problems = []
    service = os.path.join(d, "warren.service")
    with tempfile.TemporaryDirectory() as tmp:
        for name in ("warren.service", "warren.socket"):
            with open(os.path.join(d, name)) as f:
                text = f.read()
            if binary:
                text = re.sub(r"^(ExecStart=)\S+", r"\g<1>" + binary, text,
                              flags=re.M)
            with open(os.path.join(tmp, name), "w") as f:
                f.write(text)
        p = subprocess.run([sa, "verify", os.path.join(tmp, "warren.service"),
                            os.path.join(tmp, "warren.socket")],
                           capture_output=True, text=True, timeout=60)
        out = (p.stdout + p.stderr).strip()
        if p.returncode != 0 or out:
            for line in out.splitlines() or ["exit %d" % p.returncode]:
                problems.append("systemd-analyze verify: " +
                                line.replace(tmp + "/", ""))
    vals = unit_values(service, "Service")
    for k, rx in REQUIRED.items():
        if k not in vals:
            problems.append("warren.service: %s= is missing" % k)
        elif not any(re.fullmatch(rx, v) for v in vals[k]):
            problems.append("warren.service: %s=%s, want %s" %
                            (k, "|".join(vals[k]), rx or "(empty)"))
    ini = configparser.ConfigParser(inline_comment_prefixes=(";",))
    ini.read(os.path.join(d, "warren.ini"))
    node = ini["node"] if "node" in ini else {}
    drain = int(node.get("drain-timeout", "30000")) + \
        int(node.get("drain-wait", "2000"))
    stop = vals.get("TimeoutStopSec", ["0"])[-1]
    if stop.isdigit() and int(stop) * 1000 < drain + 5000:
        problems.append("warren.service: TimeoutStopSec=%s is not above "
                        "drain-wait + drain-timeout + 5 s (%d ms)" %
                        (stop, drain + 5000))
    sock = unit_values(os.path.join(d, "warren.socket"), "Socket")
    if sock.get("FileDescriptorName") != ["http"]:
        problems.append("warren.socket: FileDescriptorName=http is needed "
                        "(warren takes LISTEN_FDNAMES 'http')")
    for line in problems:
        print(line)
    if not problems:
        print("ok")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
