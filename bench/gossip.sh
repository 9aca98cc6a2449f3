#!/usr/bin/env bash
# bench/gossip.sh: membership, warren vs HashiCorp serf, on loopback (issue 4).
#
#   WARREN_BOOTSTRAP_BENCH=1 tools/bootstrap     # serf, nftables
#   WARREN_BIN=build-x/src/node/warren bench/gossip.sh [OUT_JSON]   # as root
#
# In one run, for N = 10, 20, 50 (GB_NS), a fleet of N real `warren node`s
# (default LAN profile) and then N `serf agent`s (default LAN profile), one
# fleet at a time, node i on 127.0.0.i, both encrypted, are measured for:
# failure detection after kill -9 (first and every other member; false
# deaths), dissemination of one user event, idle traffic per node (nftables
# counters on lo, by source address, UDP and TCP incl. IP headers), and
# memory per node (VmRSS, Pss, Private).  GB_LOCAL_NS=10 adds N = 10 again
# with both systems' local profile.  bench/gossip.py does the work and
# documents the method; this wrapper checks the tools and makes sure no
# process or nftables table outlives the run.  About 15 minutes (19 with
# GB_LOCAL_NS=10).
#
# Knobs (environment): GB_NS="10 20 50" GB_LOCAL_NS="" GB_IDLE_S=60
# GB_EVENTS=10 GB_KILLS=5 GB_FREEZES=3 GB_SYSTEMS="warren serf".  Prints a Markdown table
# (the numbers go to docs/BENCHMARKS.md) and writes the raw numbers to
# OUT_JSON (default: a file in the run's temp dir, which is kept).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
W=${WARREN_BIN:-$root/build/src/node/warren}
[ -x "$W" ] || { echo "bench: no warren binary at $W (set WARREN_BIN)" >&2; exit 1; }
S=${SERF_BIN:-$(command -v serf || true)}
[ -n "$S" ] || { echo "bench: serf missing: WARREN_BOOTSTRAP_BENCH=1 tools/bootstrap" >&2; exit 1; }
command -v nft >/dev/null || { echo "bench: nft missing: WARREN_BOOTSTRAP_BENCH=1 tools/bootstrap" >&2; exit 1; }
[ "$(id -u)" = 0 ] || { echo "bench: nftables counters need root" >&2; exit 1; }

tmp=$(mktemp -d /tmp/warren-gossip.XXXXXX)
out=${1:-$tmp/gossip.json}
py= table=
cleanup() {
  local rc=$?
  [ -n "$py" ] && kill "$py" 2>/dev/null && sleep 2
  # Whatever the driver started and did not reap (it kills them itself;
  # this is for a driver that died).
  if [ -f "$tmp/pids" ]; then
    while read -r p; do kill -9 "$p" 2>/dev/null || true; done <"$tmp/pids"
  fi
  # The driver's nftables table (it deletes it itself too).
  [ -n "$table" ] && nft delete table inet "$table" 2>/dev/null || true
  wait 2>/dev/null || true
  if left=$(pgrep -f -- "$(basename "$tmp")" 2>/dev/null); then
    echo "bench: processes left over: $left" >&2
    rc=1
  fi
  echo "bench: logs and raw numbers in $tmp" >&2
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "bench: $("$W" --version), serf $("$S" version | head -1) (Debian $(dpkg-query -W -f='${Version}' serf 2>/dev/null || echo ?))" >&2
python3 "$root/bench/gossip.py" "$W" "$S" "$out" "$tmp" &
py=$! table=gbench_$!
rc=0
wait $py || rc=$?
py=
exit $rc
