#!/usr/bin/env bash
# bench/inspect.sh: what the request inspector costs (issue 13: at most 10 %
# of 1 KiB req/s).  Same run, same node, same origin, two clients:
#
#   WARREN_BOOTSTRAP_BENCH=1 tools/bootstrap    # wrk, nginx-light
#   WARREN_BIN=build-x/src/node/warren bench/inspect.sh [DURATION_S] [ROUNDS]
#   # defaults: 5 s per cell, 3 rounds
#
#   off    warren http --inspect off            (Host: off.bench.test)
#   on     warren http --inspect 127.0.0.1:P    (Host: on.bench.test)
#   page   the same client while a page is open: a curl follows
#          /api/events, so every exchange is also rendered and pushed
#
# Cells run interleaved (off, on, page, off, on, page, ...) so drift on a
# shared machine hits all three alike; the table has each cell's median
# req/s and its ratio to "off", and the serving client's CPU time per
# request (user+sys from /proc, the direct cost of capture, which wrk's
# req/s shows only through the noise of four processes on a shared
# machine), then the inspected client's memory as its own API reports it.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
root=$(cd "$(dirname "$0")/.." && pwd)
dur=${1:-5} rounds=${2:-3}
W=${WARREN_BIN:-$root/build/src/node/warren}
[ -x "$W" ] || { echo "bench: no warren binary at $W (set WARREN_BIN)" >&2; exit 1; }
for t in wrk nginx curl; do
  command -v "$t" >/dev/null || { echo "bench: $t missing: WARREN_BOOTSTRAP_BENCH=1 tools/bootstrap" >&2; exit 1; }
done
ORIGIN=127.0.0.1:48080 NODE_HTTP=127.0.0.1:48081 NODE_ADMIN=127.0.0.1:49081
INSPECT=127.0.0.1:49082

tmp=$(mktemp -d /tmp/warren-inspect.XXXXXX)
chmod 755 "$tmp"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$tmp"; }
trap cleanup EXIT

mkdir -p "$tmp/www"
head -c 1024 /dev/urandom >"$tmp/www/1k"
start_origin "$tmp" "$ORIGIN"

"$W" keygen >"$tmp/key"
fleet=$("$W" pubkey "$tmp/key")
WARREN_LOG=warn "$W" node --id insp1 --http $NODE_HTTP --admin $NODE_ADMIN \
  --domain bench.test --key-file "$tmp/key" 2>"$tmp/node.log" & pids+=($!)
sleep 0.5
WARREN_LOG=warn "$W" http ${ORIGIN##*:} --node $NODE_HTTP --fleet-key "$fleet" \
  --name off --inspect off >"$tmp/off.out" 2>"$tmp/off.log" & pids+=($!)
off_pid=$!
WARREN_LOG=warn "$W" http ${ORIGIN##*:} --node $NODE_HTTP --fleet-key "$fleet" \
  --name on --inspect $INSPECT >"$tmp/on.out" 2>"$tmp/on.log" & pids+=($!)
on_pid=$!
for f in off on; do
  for _ in $(seq 50); do grep -qs Forwarding "$tmp/$f.out" && break; sleep 0.1; done
  grep -q Forwarding "$tmp/$f.out" || { echo "bench: client $f did not bind" >&2; cat "$tmp/$f.log" >&2; exit 1; }
done
grep -q "^Inspect http://$INSPECT" "$tmp/on.out" || { echo "bench: no Inspect line" >&2; exit 1; }

ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
wrk_rps() { # host pid cell -> appends req/s to cell.rps, client us/req to cell.cpu
  local out t0 t1 n
  t0=$(ticks "$2")
  out=$(wrk -t2 -c50 -d"${dur}s" -H "Host: $1" "http://$NODE_HTTP/1k")
  t1=$(ticks "$2")
  if grep -q 'Non-2xx' <<<"$out"; then echo "bench: non-2xx answers" >&2; echo "$out" >&2; exit 1; fi
  awk '/Requests\/sec/ {print $2}' <<<"$out" >>"$tmp/$3.rps"
  n=$(awk '/requests in/ {print $1}' <<<"$out")
  awk -v t=$((t1 - t0)) -v n="$n" -v hz="$(getconf CLK_TCK)" \
    'BEGIN {printf "%.2f\n", n ? t * 1e6 / hz / n : 0}' >>"$tmp/$3.cpu"
}
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }

: >"$tmp/off.rps"; : >"$tmp/on.rps"; : >"$tmp/page.rps"
: >"$tmp/off.cpu"; : >"$tmp/on.cpu"; : >"$tmp/page.cpu"
for r in $(seq "$rounds"); do
  wrk_rps off.bench.test $off_pid off
  wrk_rps on.bench.test $on_pid on
  curl -sN "http://$INSPECT/api/events" >"$tmp/events.$r" & sse=$!
  # The page counts only once its stream is open.
  for _ in $(seq 50); do grep -qs '^retry:' "$tmp/events.$r" && break; sleep 0.05; done
  wrk_rps on.bench.test $on_pid page
  kill $sse 2>/dev/null || true; wait $sse 2>/dev/null || true
done
events=$(cat "$tmp"/events.* | grep -c '^event: exchange' || true)
lagged=$(cat "$tmp"/events.* | grep -c '^event: lagged' || true)
off=$(median <"$tmp/off.rps")
offc=$(median <"$tmp/off.cpu")
echo "| client | 1 KiB req/s (median of $rounds x ${dur} s) | vs off | client CPU us/req | vs off |"
echo "|---|---|---|---|---|"
for c in off on page; do
  m=$(median <"$tmp/$c.rps") u=$(median <"$tmp/$c.cpu")
  echo "| $c | $m | $(awk -v a="$m" -v b="$off" 'BEGIN{printf "%.3f", a/b}') | $u | $(awk -v a="$u" -v b="$offc" 'BEGIN{printf "%.3f", b ? a/b : 0}') |"
done
echo
echo "req/s runs: off $(tr '\n' ' ' <"$tmp/off.rps")/ on $(tr '\n' ' ' <"$tmp/on.rps")/ page $(tr '\n' ' ' <"$tmp/page.rps")"
echo "client us/req runs: off $(tr '\n' ' ' <"$tmp/off.cpu")/ on $(tr '\n' ' ' <"$tmp/on.cpu")/ page $(tr '\n' ' ' <"$tmp/page.cpu")"
echo "events pushed to the page in all its runs: $events exchange, $lagged lagged"
status=$(curl -s "http://$INSPECT/api/status")
echo "inspector: $status"
echo "client VmRSS KiB: $(awk '/VmRSS/ {print $2}' /proc/$on_pid/status)"
