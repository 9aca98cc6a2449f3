#!/usr/bin/env python3
"""warren-sim's first_probe_ms (issue 14): each victim's death to the first
PING anyone sent it, the first-probe wait of the probing model.

usage: first_probe.py WARREN_SIM

At 0 % loss a direct probe of a dead member fails at the end of its round
(the LAN probe interval, 1,000 ms, or longer for a prober whose Lifeguard
awareness scales it), so a victim's first suspicion in detect_victims_ms
comes at least a round after its first PING, unless a probe sent before
the death (not counted in first_probe_ms) failed first, within a round; and
the waits must look like the model's: each of the ~N live members probes
one member per round, so a given victim waits about exp(1 s) for its first
probe whatever N (mean 1 s; a mean outside 0.5-2 s over 48 victims is
beyond 4 standard deviations).
"""
import json
import subprocess
import sys

SIM = sys.argv[1]
ROUND_MS = 1000
waits = []
failed = []
for seed in (1, 2, 3):
    out = subprocess.run(
        [SIM, "--nodes", "200", "--seed", str(seed), "--kill", "16",
         "--scenario", "detect", "--warmup-s", "10", "--json"],
        capture_output=True, text=True, timeout=300, check=True).stdout
    d = json.loads(out)
    fp, dv = d["first_probe_ms"], d["detect_victims_ms"]
    if len(fp) != 16 or len(dv) != 16:
        failed.append("seed %d: %d waits for %d victims" % (seed, len(fp), len(dv)))
        continue
    for k, (w, v) in enumerate(zip(fp, dv)):
        if w < 0 or v[0] < 0 or not (v[0] >= w + ROUND_MS or v[0] < ROUND_MS):
            failed.append("seed %d victim %d: first PING at %d ms, first "
                          "suspicion at %d ms" % (seed, k, w, v[0]))
    waits += fp
mean = sum(waits) / len(waits) if waits else 0
print("first-probe waits: %d victims, mean %.0f ms, longest %d ms"
      % (len(waits), mean, max(waits) if waits else -1))
if waits and not 500 <= mean <= 2000:
    failed.append("mean wait %.0f ms, outside 500-2000" % mean)
for f in failed:
    print("FAIL", f)
sys.exit(1 if failed else 0)
