#!/usr/bin/env python3
"""The chaos harness checks itself: a run whose origins corrupt, truncate
and stall some answers on purpose (scenario selfcheck, origin_faults) must
fail, and fail for exactly those answers: wrong bytes, truncated bodies and
hangs past the deadline are each caught, nothing else is reported broken,
and the fleet itself stays healthy.

usage: chaos_selfcheck.py WARREN_BINARY
"""
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
CHAOS = os.path.join(HERE, "..", "..", "tools", "warren-chaos", "warren-chaos")

FAILED = []


def check(name, cond, detail=""):
    print("%s %s%s" % ("ok  " if cond else "FAIL", name,
                        (": " + detail) if detail and not cond else ""),
          flush=True)
    if not cond:
        FAILED.append(name)


def main():
    r = subprocess.run([sys.executable, CHAOS, "--json", "--quiet",
                        "--warren", os.path.abspath(sys.argv[1]), "--short",
                        "selfcheck"], capture_output=True, text=True,
                       timeout=120)
    check("the harness exits 1 on broken answers", r.returncode == 1,
          "exit %d: %s" % (r.returncode, r.stderr[-500:]))
    try:
        rep = json.loads(r.stdout)
    except ValueError:
        check("the report is JSON", False, r.stdout[:300])
        return
    by = rep["requests"]["by_outcome"]
    for kind in ("wrong_bytes", "truncated", "hang"):
        check("a deliberate %s answer is caught" % kind, by.get(kind, 0) > 0,
              json.dumps(by))
    others = {k: v for k, v in by.items()
              if k not in ("ok", "wrong_bytes", "truncated", "hang")}
    check("nothing else is reported broken or failed", not others,
          json.dumps(others))
    check("most answers are still ok", by.get("ok", 0) >
          3 * sum(v for k, v in by.items() if k != "ok"), json.dumps(by))
    bad = [p for p in rep["problems"]
           if not p.startswith(("broken answer: wrong_bytes",
                                "broken answer: truncated",
                                "broken answer: hang", "... and ",
                                "%d failed requests" % sum(
                                    v for k, v in by.items() if k != "ok")))]
    check("every problem reported is one of them", not bad, json.dumps(bad))
    check("the fleet stayed healthy (no deaths, converged, final sweep ok)",
          rep["deaths"]["total"] == 0 and
          rep["converge_after_faults_s"] is not None and
          rep["final_sweep"]["ok"] == rep["final_sweep"]["total"] > 0,
          json.dumps([rep["deaths"], rep["final_sweep"]]))


if __name__ == "__main__":
    main()
    print("chaos_selfcheck: %s" % ("FAIL (%d)" % len(FAILED) if FAILED
                                   else "ok"))
    sys.exit(1 if FAILED else 0)
