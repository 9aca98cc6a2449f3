#!/usr/bin/env python3
"""warren-sim --faults (issue 12): the node's fault rules at the simulated
network.

usage: faults_sim.py WARREN_SIM DOCS_FAULTS_DIR

  partition  docs/faults/partition-n3.json (n3 cut from everyone from
             10 s to 40 s, n2 paused 3 s at 50 s): the others declare n3
             dead (false positives = the cut), everyone converged at the
             end; the same seeds replay the same run
  loss-10    docs/faults/loss-10.json (every node drops 10 % of probes in
             and out) on 20 nodes for 300 s: 0 false deaths, drops counted
  bad files  a bad rule, an unknown node, a missing file: exit 1 with the
             reason, nothing run
"""
import json
import os
import subprocess
import sys

SIM, DIR = sys.argv[1], sys.argv[2]
FAILED = []


def check(name, cond, detail=""):
    print("%s %s%s" % ("ok  " if cond else "FAIL", name,
                        (": " + detail) if detail and not cond else ""),
          flush=True)
    if not cond:
        FAILED.append(name)


def run(*args):
    p = subprocess.run([SIM] + list(args), capture_output=True, text=True,
                       timeout=60)
    return p.returncode, p.stdout, p.stderr


part = os.path.join(DIR, "partition-n3.json")
args = ["--nodes", "5", "--seed", "3", "--profile", "local", "--scenario",
        "idle", "--duration-s", "70", "--faults", part, "--json"]
rc, out, err = run(*args)
d = json.loads(out) if rc == 0 else {}
check("partition: runs", rc == 0, err)
check("partition: n3 declared dead (the cut shows)",
      d.get("false_positives", 0) >= 1, out)
check("partition: converged after the heal", d.get("converged") is True, out)
check("partition: drops counted on stderr",
      "faults: probe dropped=" in err and "sync dropped=" in err, err)
rc2, out2, err2 = run(*args)
d2 = json.loads(out2) if rc2 == 0 else {}
for k in ("wall_s",):
    d.pop(k, None)
    d2.pop(k, None)
check("partition: the same seeds replay the same run", d == d2 and
      err == err2)

loss = os.path.join(DIR, "loss-10.json")
rc, out, err = run("--nodes", "20", "--seed", "1", "--scenario", "falsepos",
                   "--pause-frac", "0", "--duration-s", "300", "--faults",
                   loss, "--json")
d = json.loads(out) if rc == 0 else {}
check("loss-10: runs", rc == 0, err)
check("loss-10: 0 false deaths", d.get("false_positives") == 0, out)
dropped = int(err.split("probe dropped=")[1].split()[0]) if \
    "probe dropped=" in err else 0
check("loss-10: probes dropped", dropped > 1000, err)

tmp = os.path.join(os.environ.get("TMPDIR", "/tmp"),
                   "faults_sim_%d.json" % os.getpid())
for body, want in [('{"nodes":{"*":{"rules":[{"drop":3}]}}}',
                    "nodes.*.rules[0]: drop must be a probability"),
                   ('{"nodes":{"n9":{"rules":[]}}}', 'no node "n9"'),
                   ('{"pauses":[{"node":"n1","at_ms":5}]}', "pauses[0]"),
                   ('{"colour":1}', 'unknown field "colour"'),
                   ('[1,', "--faults")]:
    with open(tmp, "w") as f:
        f.write(body)
    rc, out, err = run("--nodes", "5", "--faults", tmp)
    check("bad file %s: exit 1 with the reason" % body[:30],
          rc == 1 and want in err, "%d %r" % (rc, err))
os.unlink(tmp)
rc, out, err = run("--nodes", "5", "--faults", "/nonexistent/f.json")
check("missing file: exit 1", rc == 1 and "/nonexistent/f.json" in err, err)

print("%d failed" % len(FAILED))
sys.exit(1 if FAILED else 0)
