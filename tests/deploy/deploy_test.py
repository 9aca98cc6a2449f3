#!/usr/bin/python3
"""The deployment files pass their checks, and the checks catch breakage.

usage: deploy_test.py WARREN_BINARY SOURCE_ROOT [WARRENCTL_BINARY]

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
  image    with podman installed and WARRENCTL_BINARY given:
           tools/deploy/build-image builds an image FROM scratch with the
           two binaries (these builds' ones) and the libraries ldd names;
           its config runs /usr/local/bin/warren as uid 65532 (the
           manifest's runAsUser); the files exported from a container of
           it are the binaries, their libraries and /etc; and its warren
           and warrenctl answer --version using the image's files only:
           `podman run` where it works, else the exported tree's own
           loader with --inhibit-cache and the tree's library
           directories (not chroot: a sanitizer build cannot run without
           /proc).  Without podman: a "skip image"
           line, not a failure.  The image is removed afterwards.
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
WARRENCTL = os.path.abspath(sys.argv[3]) if len(sys.argv) > 3 else None
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


def run_tree(args):
    """(exit status, stdout) of a binary of the exported image tree: a
    sanitizer build (the ASan+UBSan pass packs its own binaries) may warn
    on stderr, which is not the answer; its leaks are the other tests'."""
    env = dict(os.environ)
    env["ASAN_OPTIONS"] = "detect_leaks=0"
    p = subprocess.run(args, capture_output=True, text=True, timeout=120,
                       env=env)
    return p.returncode, p.stdout


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


def image_tests(tmp):
    podman = shutil.which("podman")
    if not podman or not WARRENCTL:
        print("skip image: %s" % ("podman is not installed" if not podman
                                  else "no warrenctl binary given"))
        return
    tag = "localhost/warren-deploy-test:%d" % os.getpid()
    tool = os.path.join(DEPLOY, "build-image")
    rc, out = run([tool, "--help"])
    check("image: build-image --help", rc == 0 and "FROM scratch" in out, out)
    rc, out = run([tool, "--bogus"])
    check("image: a bad flag is a usage error", rc == 2 and "unknown" in out,
          out)
    rc, out = run([tool, "--warren", WARREN])
    check("image: --warren without --warrenctl refused", rc == 2, out)
    rc, out = run([tool, "--tag", tag, "--warren", WARREN,
                   "--warrenctl", WARRENCTL])
    check("image: build-image builds it", rc == 0, out)
    if rc != 0:
        return
    try:
        rc, out = run([podman, "image", "inspect", tag, "--format",
                       "{{.Config.User}} {{.Config.Entrypoint}}"])
        check("image: runs /usr/local/bin/warren as 65532",
              rc == 0 and out.strip() == "65532:65532 [/usr/local/bin/warren]",
              out)
        rc, out = run([podman, "create", tag, "--version"])
        cid = out.strip().splitlines()[-1] if rc == 0 and out.strip() else ""
        check("image: a container can be created", rc == 0 and cid, out)
        if not cid:
            return
        tree = os.path.join(tmp, "image-tree")
        os.mkdir(tree)
        exp = subprocess.run([podman, "export", cid], capture_output=True,
                             timeout=120)
        run([podman, "rm", cid])
        tar = subprocess.run(["tar", "-x", "-C", tree], input=exp.stdout,
                             capture_output=True, timeout=120)
        check("image: exported", exp.returncode == 0 and tar.returncode == 0,
              (exp.stderr + tar.stderr).decode(errors="replace"))
        files = sorted(os.path.relpath(os.path.join(d, f), tree)
                       for d, _, fs in os.walk(tree) for f in fs)
        libs = [f for f in files if ".so" in os.path.basename(f)]
        others = [f for f in files if f not in libs]
        check("image: only the binaries, their libraries and /etc",
              others == ["etc/group", "etc/nsswitch.conf", "etc/passwd",
                         "usr/local/bin/warren", "usr/local/bin/warrenctl"]
              and any("libc.so" in f for f in libs)
              and any("ld-linux" in f for f in libs), repr(files))
        want = run_tree([WARREN, "--version"])[1].strip()
        rc, out = run([podman, "run", "--rm", "--network", "none", tag,
                       "--version"])
        how = "podman run"
        if rc != 0:
            # Containers cannot run here (a rootless or nested podman
            # without the privileges crun needs): run the image's files
            # without the container.
            print("image: podman run failed here (%s), running the "
                  "exported tree" % out.strip().splitlines()[-1][:120]
                  if out.strip() else "image: podman run failed")
            how = "the image's loader and libraries"
            loader = next(os.path.join(tree, f) for f in libs
                          if "ld-linux" in f)
            dirs = ":".join(sorted({os.path.dirname(os.path.join(tree, f))
                                    for f in libs}))
            base = [loader, "--inhibit-cache", "--library-path", dirs]
            rc, out = run_tree(base + [os.path.join(
                tree, "usr/local/bin/warren"), "--version"])
            rc2, out2 = run_tree(base + [os.path.join(
                tree, "usr/local/bin/warrenctl"), "--version"])
            check("image: warrenctl --version (%s)" % how,
                  rc2 == 0 and out2.startswith("warrenctl "), out2)
        check("image: warren --version (%s)" % how,
              rc == 0 and out.strip() == want, "%r, want %r" % (out, want))
    finally:
        run([podman, "rmi", "-f", tag])


def main():
    with tempfile.TemporaryDirectory() as tmp:
        k8s_tests(tmp)
        image_tests(tmp)
        skip = systemd_tests(tmp)
    if FAILED:
        return 1
    return 77 if skip == 77 else 0


if __name__ == "__main__":
    sys.exit(main())
