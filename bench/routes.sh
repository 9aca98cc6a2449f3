#!/usr/bin/env bash
# bench/routes.sh: a bind reaching every node's routes table (issue 10),
# warren's routes gossip side by side with serf's user events, one run.
#
#   WARREN_BOOTSTRAP_BENCH=1 tools/bootstrap     # serf, nftables
#   WARREN_BIN=build-x/src/node/warren bench/routes.sh     # as root
#
# 1. bench/routes.py: RB_N (50) real `warren node`s on 127.0.0.1..N, RB_BINDS
#    (100) binds by `warren http` clients at rotating nodes; latency from the
#    owner's route_changed log line to the last other node's.
# 2. bench/gossip.py with GB_SYSTEMS=serf GB_NS=RB_N GB_EVENTS=RB_BINDS and no
#    kills: serf's user event from the RPC call to the last agent's log line.
# Both stamp log lines on arrival in the driver.  Prints p50 / p99 / max of
# each and the ratio.  About 5 minutes.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
W=${WARREN_BIN:-$root/build/src/node/warren}
[ -x "$W" ] || { echo "bench: no warren binary at $W (set WARREN_BIN)" >&2; exit 1; }
tmp=$(mktemp -d /tmp/warren-routes.XXXXXX)
n=${RB_N:-50} binds=${RB_BINDS:-100}
echo "bench: logs and raw numbers in $tmp" >&2
python3 "$root/bench/routes.py" "$W" "$tmp/warren.json" "$tmp"
S=${SERF_BIN:-$(command -v serf || true)}
if [ -z "$S" ] || ! command -v nft >/dev/null || [ "$(id -u)" != 0 ]; then
  echo "bench: serf comparison skipped (needs serf, nft and root: WARREN_BOOTSTRAP_BENCH=1 tools/bootstrap)" >&2
  exit 0
fi
mkdir -p "$tmp/serf"
GB_SYSTEMS=serf GB_NS=$n GB_EVENTS=$binds GB_KILLS=0 GB_FREEZES=0 GB_IDLE_S=1 \
  python3 "$root/bench/gossip.py" "$W" "$S" "$tmp/serf.json" "$tmp/serf" >/dev/null
python3 - "$tmp/warren.json" "$tmp/serf.json" <<'PY'
import json, sys
w = json.load(open(sys.argv[1]))
s = [r for r in json.load(open(sys.argv[2])) if r["system"] == "serf"][0]
ev = sorted(x for x in s["events"]["all"] if x is not None)
def pct(v, p):
    return v[min(len(v) - 1, int(round(p * (len(v) - 1))))] if v else float("nan")
sp50, sp99 = pct(ev, .5), pct(ev, .99)
print("| system | N | events | visible at all: p50 (s) | p99 (s) | max (s) | missed |")
print("|---|---|---|---|---|---|---|")
print("| warren routes | %d | %d | %.3f | %.3f | %.3f | %d |" % (
    w["n"], w["binds"], w["all_p50_s"], w["all_p99_s"], w["all_max_s"], w["missed"]))
print("| serf user event | %d | %d | %.3f | %.3f | %.3f | %d |" % (
    s["n"], len(s["events"]["all"]), sp50, sp99, ev[-1] if ev else float("nan"),
    sum(1 for x in s["events"]["all"] if x is None)))
print("\nwarren/serf: p50 %.2fx, p99 %.2fx (target: warren p99 <= 0.25 s)" % (
    w["all_p50_s"] / sp50, w["all_p99_s"] / sp99))
PY
