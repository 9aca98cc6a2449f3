#!/usr/bin/env bash
# bench/forward.sh: the node-to-node hop (issue 11).  Two warren nodes in one
# fleet on loopback, one client bound at n1, nginx as the origin; the same
# wrk load through the owner (n1: visitor -> tunnel) and through the other
# node (n2: visitor -> node link -> n1 -> tunnel), in the same run.
#
#   WARREN_BOOTSTRAP_BENCH=1 tools/bootstrap    # wrk, nginx-light
#   WARREN_BIN=build/src/node/warren bench/forward.sh [DURATION_S]  # default 10
#   CPU=1 ...  also, per cell, user+sys CPU (from /proc) of n1, n2, the
#              client and nginx's worker in ms per MiB wrk read (for 1 KiB
#              cells too: multiply by 1024 / 1.2 for µs per request)
#   MEM=0 ...  skip the memory part
#
# Then memory: RSS of both nodes with no node link, with one idle node link,
# and with IDLE_STREAMS (default 1000) idle keep-alive visitor connections
# held through n2 (each one a forwarded stream: a vconn and a node-link
# stream at n2, a relay and a tunnel stream at n1), per link and per stream.
# Prints Markdown tables; the numbers go to docs/BENCHMARKS.md.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
root=$(cd "$(dirname "$0")/.." && pwd)
dur=${1:-10}
IDLE_STREAMS=${IDLE_STREAMS:-1000}
W=${WARREN_BIN:-$root/build/src/node/warren}
[ -x "$W" ] || { echo "bench: no warren binary at $W (set WARREN_BIN)" >&2; exit 1; }
for t in wrk nginx python3; do
  command -v "$t" >/dev/null || { echo "bench: $t missing: WARREN_BOOTSTRAP_BENCH=1 tools/bootstrap" >&2; exit 1; }
done

tmp=$(mktemp -d /tmp/warren-fwdbench.XXXXXX)
chmod 755 "$tmp"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$tmp"; }
trap cleanup EXIT

ORIGIN=127.0.0.1:18180
N1_HTTP=127.0.0.1:18181 N1_ADMIN=127.0.0.1:19181 N1_GOSSIP=127.0.0.1:17181
N2_HTTP=127.0.0.1:18182 N2_ADMIN=127.0.0.1:19182 N2_GOSSIP=127.0.0.1:17182

mkdir -p "$tmp/www"
head -c 1024 /dev/urandom >"$tmp/www/1k"
head -c 1048576 /dev/urandom >"$tmp/www/1m"
start_origin "$tmp" "$ORIGIN"

"$W" keygen >"$tmp/key"
"$W" node --id n1 --http $N1_HTTP --admin $N1_ADMIN --gossip $N1_GOSSIP \
  --domain bench.test --key-file "$tmp/key" --gossip-profile local 2>"$tmp/n1.log" & pids+=($!)
n1_pid=$!
"$W" node --id n2 --http $N2_HTTP --admin $N2_ADMIN --gossip $N2_GOSSIP \
  --domain bench.test --key-file "$tmp/key" --gossip-profile local \
  --join $N1_GOSSIP 2>"$tmp/n2.log" & pids+=($!)
n2_pid=$!
sleep 0.5
"$W" http ${ORIGIN##*:} --node $N1_HTTP --fleet-key "$("$W" pubkey "$tmp/key")" \
  --name app >"$tmp/client.out" 2>"$tmp/client.log" & pids+=($!)
client_pid=$!
for _ in $(seq 100); do grep -qs Forwarding "$tmp/client.out" && break; sleep 0.1; done
grep -q Forwarding "$tmp/client.out" || { echo "bench: client did not bind" >&2; cat "$tmp/client.log" >&2; exit 1; }
for _ in $(seq 100); do
  st=$(curl -s -o /dev/null -w '%{http_code}' -H 'Host: app.bench.test' "http://$N2_HTTP/1k" || true)
  [ "$st" = 200 ] && break; sleep 0.1
done
[ "$st" = 200 ] || { echo "bench: n2 does not serve app ($st)" >&2; tail "$tmp/n2.log" >&2; exit 1; }

rss() { awk '/VmRSS/ {print $2}' /proc/$1/status; }

CPU=${CPU:-0}
ticks() { local t=0 p; for p in $*; do t=$((t + $(awk '{print $14 + $15}' /proc/$p/stat 2>/dev/null || echo 0))); done; echo $t; }
ngx_worker=$(pgrep -P "$(cat "$tmp/nginx.pid" 2>/dev/null || echo 1)" nginx | head -1 || true)
run_wrk() { # label url
  local out t0=() i who=(n1:$n1_pid n2:$n2_pid client:$client_pid nginx:$ngx_worker)
  for i in "${!who[@]}"; do t0[$i]=$(ticks ${who[$i]##*:}); done
  out=$(wrk -t2 -c50 -d"${dur}s" --latency -H "Host: app.bench.test" "$2")
  if [ "$CPU" = 1 ]; then
    local mib=$(awk '/requests in/ {v=$5; u=substr(v,length(v)-1); n=substr(v,1,length(v)-2);
      print (u=="GB") ? n*1024 : (u=="MB") ? n : (u=="KB") ? n/1024 : 0}' <<<"$out")
    local line="cpu ms/MiB, $1:"
    for i in "${!who[@]}"; do
      line+=$(awk -v n="${who[$i]%%:*}" -v t=$(( $(ticks ${who[$i]##*:}) - t0[$i] )) -v m="$mib" \
        'BEGIN{printf " %s %.3f", n, m ? t*10/m : 0}')
    done
    echo "$line" >>"$tmp/cpu.txt"
  fi
  local rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  local tr=$(awk '/Transfer\/sec/ {print $2}' <<<"$out")
  local p50=$(awk '$1=="50%" {print $2}' <<<"$out")
  local p99=$(awk '$1=="99%" {print $2}' <<<"$out")
  local errs=$(awk '/Non-2xx|Socket errors/ {print}' <<<"$out" | tr '\n' ' ')
  printf '| %s | %s | %s | %s | %s | %s |\n' "$1" "$rps" "$tr" "$p50" "$p99" "${errs:-none}"
}

echo "| path | req/s | transfer/s | p50 | p99 | errors |"
echo "|---|---|---|---|---|---|"
# Interleaved, twice: this machine's load drifts, and a drift should not
# land on one path only.
for round in 1 2; do
  for size in 1k 1m; do
    run_wrk "owner (n1) $size" "http://$N1_HTTP/$size"
    run_wrk "hop (n2 -> n1) $size" "http://$N2_HTTP/$size"
  done
done

if [ "$CPU" = 1 ]; then echo; cat "$tmp/cpu.txt"; fi
[ "${MEM:-1}" = 0 ] && exit 0

# ---- memory ----
# Fresh processes, so the figures are not hidden by heap the load above
# freed: three nodes, app1 bound at n1, app2 at n2, n3 owns nothing.
# Warm-up requests fill the per-process pools first (link buffers, the
# mux's free blocks); then n3's first link (to n1) is the baseline and its
# second (to n2) the cost of one more idle node link at the dialer, and
# n2's RSS before and after accepting it the cost at the owner.  Then
# IDLE_STREAMS keep-alive visitors of app1 through n3 stay open, idle:
# the cost of a forwarded stream at n3 (vconn + node-link stream) and at
# n1 (relay + tunnel stream).
for p in "${pids[@]}"; do [ "$p" = "$(cat "$tmp/nginx.pid" 2>/dev/null)" ] || kill "$p" 2>/dev/null || true; done
kill $n1_pid $n2_pid $client_pid 2>/dev/null || true
wait $n1_pid $n2_pid $client_pid 2>/dev/null || true
N3_HTTP=127.0.0.1:18183 N3_ADMIN=127.0.0.1:19183 N3_GOSSIP=127.0.0.1:17183
node() { # id http admin gossip [join]
  "$W" node --id $1 --http $2 --admin $3 --gossip $4 --domain bench.test \
    --key-file "$tmp/key" --gossip-profile local ${5:+--join $5} 2>"$tmp/$1-mem.log" & pids+=($!)
}
node n1 $N1_HTTP $N1_ADMIN $N1_GOSSIP; n1_pid=$!
node n2 $N2_HTTP $N2_ADMIN $N2_GOSSIP $N1_GOSSIP; n2_pid=$!
node n3 $N3_HTTP $N3_ADMIN $N3_GOSSIP $N1_GOSSIP; n3_pid=$!
sleep 0.5
key=$("$W" pubkey "$tmp/key")
"$W" http ${ORIGIN##*:} --node $N1_HTTP --fleet-key "$key" --name app1 >"$tmp/c1.out" 2>/dev/null & pids+=($!)
"$W" http ${ORIGIN##*:} --node $N2_HTTP --fleet-key "$key" --name app2 >"$tmp/c2.out" 2>/dev/null & pids+=($!)
serves() { [ "$(curl -s -o /dev/null -w '%{http_code}' -H "Host: $2.bench.test" "http://$1/1k")" = 200 ]; }
for _ in $(seq 100); do serves $N3_HTTP app1 && serves $N3_HTTP app2 && break; sleep 0.1; done
# n3 now has links to both; restart it to measure link by link.
kill $n3_pid; wait $n3_pid 2>/dev/null || true
node n3 $N3_HTTP $N3_ADMIN $N3_GOSSIP $N1_GOSSIP; n3_pid=$!
for _ in $(seq 100); do curl -s "http://$N3_ADMIN/routes" 2>/dev/null | grep -q app2 && break; sleep 0.1; done
rss() { awk '/VmRSS/ {print $2}' /proc/$1/status; }
for i in 1 2 3; do serves $N3_HTTP app1; serves $N2_HTTP app2; done  # warm-up, link 1
sleep 1
d0=$(rss $n3_pid) o0=$(rss $n2_pid)
serves $N3_HTTP app2  # link 2 (n3 -> n2)
sleep 1
d1=$(rss $n3_pid) o1=$(rss $n2_pid)
s0=$(rss $n3_pid) t0=$(rss $n1_pid)
python3 - "$N3_HTTP" "$IDLE_STREAMS" "$tmp/held" <<'PY' &
import socket, sys, time
host, port = sys.argv[1].split(":")
n = int(sys.argv[2])
socks = []
for i in range(n):
    s = socket.create_connection((host, int(port)))
    s.sendall(b"GET /1k HTTP/1.1\r\nHost: app1.bench.test\r\n\r\n")
    socks.append(s)
for s in socks:  # read each answer: the connections stay open, idle
    got = b""
    while b"\r\n\r\n" not in got or len(got) < got.index(b"\r\n\r\n") + 4 + 1024:
        got += s.recv(65536)
open(sys.argv[3], "w").write("held\n")
time.sleep(60)
PY
holder=$!
pids+=($holder)
for _ in $(seq 300); do [ -s "$tmp/held" ] && break; sleep 0.1; done
sleep 1
s1=$(rss $n3_pid) t1=$(rss $n1_pid)
kill $holder 2>/dev/null || true
echo
echo "| memory (RSS delta) | at the dialer | at the owner |"
echo "|---|---|---|"
awk -v d0=$d0 -v d1=$d1 -v o0=$o0 -v o1=$o1 -v s0=$s0 -v s1=$s1 -v t0=$t0 -v t1=$t1 -v n=$IDLE_STREAMS 'BEGIN {
  printf "| one more idle node link | %d KiB | %d KiB |\n", d1 - d0, o1 - o0;
  printf "| per idle forwarded stream (%d held) | %.2f KiB | %.2f KiB |\n", n, (s1 - s0) / n, (t1 - t0) / n }'
