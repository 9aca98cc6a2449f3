#!/usr/bin/env bash
# bench/idle_tunnels.sh: what an idle node and an idle tunnel cost in memory.
#
#   WARREN_BIN=build-x/src/node/warren bench/idle_tunnels.sh [N]  # default 1000
#
# Method: start one node, wait 1 s, read its VmRSS (idle, no tunnels). Then
# start N real `warren http` clients (names t1..tN, one tunnel link each,
# full Noise handshake and bind) against that node, wait until every one has
# printed its Forwarding line (bounded: 120 s), let things settle 2 s, read
# the node's VmRSS again. Per-tunnel cost = (RSS_after - RSS_idle) / N.
# The origin port is never contacted: the tunnels stay idle.
# Also prints one client's RSS, and the node's RSS after the clients exit.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
n=${1:-1000}
W=${WARREN_BIN:-$root/build/src/node/warren}
[ -x "$W" ] || { echo "bench: no warren binary at $W (set WARREN_BIN)" >&2; exit 1; }
NODE_HTTP=127.0.0.1:28081 NODE_ADMIN=127.0.0.1:29081 ORIGIN_PORT=28080

tmp=$(mktemp -d /tmp/warren-idle.XXXXXX)
node_pid= cpids=()
cleanup() {
  for p in "${cpids[@]}"; do kill "$p" 2>/dev/null || true; done
  [ -n "$node_pid" ] && kill "$node_pid" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT
rss() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }

"$W" keygen >"$tmp/key"
fleet=$("$W" pubkey "$tmp/key")
WARREN_LOG=warn "$W" node --id idle1 --http $NODE_HTTP --admin $NODE_ADMIN \
  --domain bench.test --key-file "$tmp/key" 2>"$tmp/node.log" &
node_pid=$!
sleep 1
idle=$(rss $node_pid)
echo "node VmRSS idle (1 s after start, no tunnels): $idle KiB"

mkdir "$tmp/c"
for i in $(seq "$n"); do
  WARREN_LOG=warn "$W" http $ORIGIN_PORT --node $NODE_HTTP --fleet-key "$fleet" \
    --name "t$i" >"$tmp/c/$i.out" 2>"$tmp/c/$i.log" &
  cpids+=($!)
  # Pace the starts a little so the handshakes do not all land at once.
  (( i % 50 == 0 )) && sleep 0.2
done
up=0
for _ in $(seq 240); do
  up=$(grep -l Forwarding "$tmp"/c/*.out 2>/dev/null | wc -l)
  [ "$up" -ge "$n" ] && break
  sleep 0.5
done
sleep 2
after=$(rss $node_pid)
echo "tunnels bound: $up of $n"
echo "node VmRSS with $up idle tunnels: $after KiB"
if [ "$up" -gt 0 ]; then
  awk -v a="$after" -v b="$idle" -v n="$up" \
    'BEGIN { printf "per tunnel: (%d - %d) / %d = %.1f KiB\n", a, b, n, (a-b)/n }'
fi
echo "one client's VmRSS: $(rss "${cpids[0]}") KiB"
echo "node open fds: $(ls /proc/$node_pid/fd | wc -l)"
echo "node errors in log: $(grep -ci 'level=error' "$tmp/node.log" || true)"

for p in "${cpids[@]}"; do kill "$p" 2>/dev/null || true; done
for p in "${cpids[@]}"; do wait "$p" 2>/dev/null || true; done
cpids=()
sleep 2
echo "node VmRSS after all clients left: $(rss $node_pid) KiB"
