#!/usr/bin/python3
"""The deployment files pass their checks, and the checks catch breakage.

usage: deploy_test.py WARREN_BINARY SOURCE_ROOT

  systemd  tools/deploy/systemd passes check_systemd.py (systemd-analyze
           verify with no output, hardening rules); copies with a misspelt
           key, a bad signal name, NoNewPrivileges removed, a stop timeout
           below the drain, or no socket name each fail it
  k8s      tools/deploy/k8s/warren.yaml passes check_k8s.py; fifteen
           copies, each broken one way (a required field gone, an unknown
           field, wrong types, out-of-range ports, bad names, enums,
           quantities, a headless Service that is not, the wrong probe
           path, a grace period below the drain, a --join that is not the
           headless Service, a selector that misses, YAML that does not
           parse), each fail it with the expected reason
Prints one line per check; exits 1 when any failed, 77 (skip) when
systemd-analyze is missing, after the k8s checks ran.
"""
import copy
import os
import shutil
import subprocess
import sys
import tempfile

import yaml

WARREN = os.path.abspath(sys.argv[1])
ROOT = os.path.abspath(sys.argv[2])
DEPLOY = os.path.join(ROOT, "tools", "deploy")
PY = sys.executable
FAILED = []


def check(name, cond, detail=""):
    print("%s %s%s" % ("ok  " if cond else "FAIL", name,
                        (": " + detail) if detail and not cond else ""),
          flush=True)
    if not cond:
        FAILED.append(name)


def run(args):
    p = subprocess.run(args, capture_output=True, text=True, timeout=120)
    return p.returncode, p.stdout + p.stderr


def k8s_tests(tmp):
    good = os.path.join(DEPLOY, "k8s", "warren.yaml")
    rc, out = run([PY, os.path.join(DEPLOY, "check_k8s.py"), good])
    check("k8s: warren.yaml passes", rc == 0 and out.startswith("ok "), out)
    with open(good) as f:
        docs = list(yaml.safe_load_all(f))
    hl, svc, ss = docs[0], docs[1], docs[2]
    assert ss["kind"] == "StatefulSet" and hl["spec"]["clusterIP"] == "None"

    def c0(d):
        return d[2]["spec"]["template"]["spec"]["containers"][0]

    def args_set(d, flag, value):
        a = c0(d)["args"]
        a[a.index(flag) + 1] = value

    mutations = [
        ("selector removed", lambda d: d[2]["spec"].pop("selector"),
         "spec.selector: required"),
        ("misspelt field", lambda d: d[2]["spec"].__setitem__(
            "replica", d[2]["spec"].pop("replicas")), "spec.replica: unknown"),
        ("replicas as a string", lambda d: d[2]["spec"].__setitem__(
            "replicas", "3"), "want an integer"),
        ("port out of range", lambda d: c0(d)["ports"][0].__setitem__(
            "containerPort", 70000), "want a port 1-65535"),
        ("port name over 15", lambda d: c0(d)["ports"][1].__setitem__(
            "name", "gossip-udp-listener"), "not a valid name"),
        ("service type", lambda d: d[1]["spec"].__setitem__(
            "type", "Balancer"), "is not one of"),
        ("not headless", lambda d: d[0]["spec"].pop("clusterIP"),
         "must be headless"),
        ("probe path", lambda d: c0(d)["readinessProbe"]["httpGet"]
         .__setitem__("path", "/healthz"), "GET /readyz"),
        ("short grace", lambda d: d[2]["spec"]["template"]["spec"]
         .__setitem__("terminationGracePeriodSeconds", 20),
         "terminationGracePeriodSeconds 20"),
        ("join elsewhere", lambda d: args_set(
            d, "--join", "dns:warren.default.svc.cluster.local:7946"),
         "--join"),
        ("selector misses", lambda d: d[2]["spec"]["selector"]
         .__setitem__("matchLabels", {"app": "other"}),
         "does not match the pod labels"),
        ("bad quantity", lambda d: c0(d)["resources"]["limits"]
         .__setitem__("memory", "lots"), "is not a quantity"),
        ("bad name", lambda d: d[2]["metadata"].__setitem__(
            "name", "Warren_X"), "not a valid name"),
        ("old apiVersion", lambda d: d[2].__setitem__(
            "apiVersion", "apps/v1beta1"), "unsupported apiVersion"),
    ]
    for name, mutate, want in mutations:
        d = copy.deepcopy(docs)
        mutate(d)
        p = os.path.join(tmp, "bad.yaml")
        with open(p, "w") as f:
            yaml.safe_dump_all(d, f)
        rc, out = run([PY, os.path.join(DEPLOY, "check_k8s.py"), p])
        check("k8s: rejects %s" % name, rc == 1 and want in out, out)
    p = os.path.join(tmp, "broken.yaml")
    with open(p, "w") as f:
        f.write("apiVersion: v1\nkind: Service\nmetadata: {name: x\n")
    rc, out = run([PY, os.path.join(DEPLOY, "check_k8s.py"), p])
    check("k8s: rejects YAML that does not parse", rc == 1 and out, out)


def systemd_tests(tmp):
    src = os.path.join(DEPLOY, "systemd")
    tool = [PY, os.path.join(DEPLOY, "check_systemd.py"), "--binary", WARREN]
    rc, out = run(tool + [src])
    if rc == 77:
        print(out.strip())
        return 77
    check("systemd: warren.service and warren.socket pass", rc == 0, out)
    mutations = [
        ("misspelt key", "warren.service", "ProtectSystem=strict",
         "ProtectSystm=strict", "Unknown key"),
        ("bad signal", "warren.service", "KillSignal=SIGTERM",
         "KillSignal=SIGFOO", "signal"),
        ("NoNewPrivileges removed", "warren.service", "NoNewPrivileges=yes\n",
         "", "NoNewPrivileges= is missing"),
        ("stop timeout below the drain", "warren.service",
         "TimeoutStopSec=45", "TimeoutStopSec=20", "TimeoutStopSec=20"),
        ("no socket name", "warren.socket", "FileDescriptorName=http\n", "",
         "FileDescriptorName"),
    ]
    for name, fname, old, new, want in mutations:
        d = os.path.join(tmp, "sd-" + name.replace(" ", "-"))
        shutil.copytree(src, d)
        fp = os.path.join(d, fname)
        with open(fp) as f:
            text = f.read()
        assert old in text, old
        with open(fp, "w") as f:
            f.write(text.replace(old, new, 1))
        rc, out = run(tool + [d])
        check("systemd: rejects %s" % name, rc == 1 and want in out, out)
    return 0


def main():
    with tempfile.TemporaryDirectory() as tmp:
        k8s_tests(tmp)
        skip = systemd_tests(tmp)
    if FAILED:
        return 1
    return 77 if skip == 77 else 0


if __name__ == "__main__":
    sys.exit(main())
