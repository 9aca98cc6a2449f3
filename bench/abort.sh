#!/usr/bin/env bash
# bench/abort.sh: visitors that hang up mid-body must not leak memory or slow
# the node down.
#
#   WARREN_BIN=build-x/src/node/warren bench/abort.sh [ROUNDS] [ABORTS]
#   # defaults: 3 rounds, 100 aborted downloads per round
#
# One nginx origin (/1k and a 64 MiB /64m), one node, one `warren http`
# client. Baseline: a 5 s wrk run on /1k through warren. Then ROUNDS times:
# a 5 s wrk run on /1k in the background while ABORTS curls fetch /64m through
# warren and give up after 50 ms (--max-time 0.05, so each aborts mid-body),
# followed by a clean 5 s wrk run. Prints node and client VmRSS and the
# req/s of every clean run; "flat" means they stay within noise. Finally one
# full /64m download through warren is checked byte for byte.
#
# The client runs with its request inspector on (INSPECT=ADDR:PORT, default
# 127.0.0.1:39082; INSPECT=off to compare): the last column is the memory
# its capture holds (GET /api/status), which must stay within its bound
# (64 MiB) however many big bodies are cut short.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
root=$(cd "$(dirname "$0")/.." && pwd)
rounds=${1:-3} aborts=${2:-100}
W=${WARREN_BIN:-$root/build/src/node/warren}
[ -x "$W" ] || { echo "bench: no warren binary at $W (set WARREN_BIN)" >&2; exit 1; }
for t in wrk nginx curl; do
  command -v "$t" >/dev/null || { echo "bench: $t missing" >&2; exit 1; }
done
ORIGIN=127.0.0.1:38080 NODE_HTTP=127.0.0.1:38081 NODE_ADMIN=127.0.0.1:39081
INSPECT=${INSPECT:-127.0.0.1:39082}
HOST=app.bench.test

tmp=$(mktemp -d /tmp/warren-abort.XXXXXX)
chmod 755 "$tmp"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$tmp"; }
trap cleanup EXIT
rss() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }
capmem() { # KiB the inspector's capture holds, or - with it off
  [ "$INSPECT" = off ] && { echo -; return; }
  curl -s "http://$INSPECT/api/status" | sed -n 's/.*"memory":\([0-9]*\).*/\1/p' | awk '{print int($1 / 1024)}'
}

mkdir -p "$tmp/www"
head -c 1024 /dev/urandom >"$tmp/www/1k"
head -c $((64 << 20)) /dev/urandom >"$tmp/www/64m"
start_origin "$tmp" "$ORIGIN"

"$W" keygen >"$tmp/key"
WARREN_LOG=warn "$W" node --id abort1 --http $NODE_HTTP --admin $NODE_ADMIN \
  --domain bench.test --key-file "$tmp/key" 2>"$tmp/node.log" & pids+=($!)
node_pid=$!
sleep 0.5
WARREN_LOG=warn "$W" http ${ORIGIN##*:} --node $NODE_HTTP \
  --fleet-key "$("$W" pubkey "$tmp/key")" --name app --inspect "$INSPECT" \
  >"$tmp/client.out" 2>"$tmp/client.log" & pids+=($!)
client_pid=$!
for _ in $(seq 50); do grep -qs Forwarding "$tmp/client.out" && break; sleep 0.1; done
grep -q Forwarding "$tmp/client.out" || { echo "bench: client did not bind" >&2; exit 1; }

wrk_rps() { # duration -> req/s; aborts the script on non-2xx answers
  local out
  out=$(wrk -t2 -c50 -d"$1s" -H "Host: $HOST" "http://$NODE_HTTP/1k")
  if grep -q 'Non-2xx' <<<"$out"; then echo "bench: non-2xx answers" >&2; echo "$out" >&2; exit 1; fi
  awk '/Requests\/sec/ {print $2}' <<<"$out"
}

echo "| step | wrk /1k req/s | node VmRSS KiB | client VmRSS KiB | capture KiB |"
echo "|---|---|---|---|---|"
echo "| start (idle) | - | $(rss $node_pid) | $(rss $client_pid) | $(capmem) |"
r=$(wrk_rps 5)
echo "| baseline | $r | $(rss $node_pid) | $(rss $client_pid) | $(capmem) |"
total_aborted=0 total_done=0
for round in $(seq "$rounds"); do
  wrk -t2 -c50 -d5s -H "Host: $HOST" "http://$NODE_HTTP/1k" >"$tmp/bg.txt" &
  bg=$!
  for _ in $(seq "$aborts"); do
    # exit 28 = timed out mid-transfer, which is the point
    if curl -s -o /dev/null --max-time 0.05 -H "Host: $HOST" "http://$NODE_HTTP/64m"; then
      total_done=$((total_done + 1))
    else
      total_aborted=$((total_aborted + 1))
    fi
  done
  wait $bg
  bgr=$(awk '/Requests\/sec/ {print $2}' "$tmp/bg.txt")
  echo "| round $round: $aborts aborts during wrk | $bgr (under aborts) | $(rss $node_pid) | $(rss $client_pid) | $(capmem) |"
  r=$(wrk_rps 5)
  echo "| round $round: clean wrk after | $r | $(rss $node_pid) | $(rss $client_pid) | $(capmem) |"
done
sleep 1
echo "| end (idle, 1 s later) | - | $(rss $node_pid) | $(rss $client_pid) | $(capmem) |"
echo
echo "curl downloads aborted: $total_aborted, completed within 50 ms: $total_done"
curl -fsS -H "Host: $HOST" -o "$tmp/got" "http://$NODE_HTTP/64m"
if cmp -s "$tmp/got" "$tmp/www/64m"; then echo "full 64 MiB download after the aborts: identical"
else echo "full 64 MiB download after the aborts: DIFFERS"; fi
echo "node open fds at the end: $(ls /proc/$node_pid/fd | wc -l)"
[ "$INSPECT" != off ] && echo "inspector: $(curl -s "http://$INSPECT/api/status")"
echo "node log lines at warn+: $(wc -l <"$tmp/node.log"), client: $(wc -l <"$tmp/client.log")"
