#!/usr/bin/env bash
# bench/cpu_instr.sh: user-space instructions per 1 KiB request in the node
# and the client, counted by valgrind's callgrind, for binaries to compare.
#
#   bench/cpu_instr.sh DURATION_S LABEL=BIN [LABEL=BIN ...]   # e.g. 8
#   CLIENT_ARGS='--inspect off' ...   extra flags for `warren http`
#   KEEP=DIR ...   keep each run's callgrind files in DIR/LABEL-N/ for
#                  callgrind_annotate (a build with -g names the lines)
#
# Why: on a shared 2-core box CPU time per request swings by +-30 % between
# identical cells (docs/BENCHMARKS.md), far more than a change of a few
# percent in user space.  Instruction counts do not depend on the
# neighbours.  They leave out the kernel (count syscalls with
# `STAT=1 bench/small_ab.sh`), and under valgrind libcrypto runs its
# AVX2 code, not AVX-512, and loop turns batch fewer requests, so crypto
# and per-turn costs read higher than in a real run: compare binaries
# with each other, not with CPU time.
#
# For each binary: nginx serving /1k, a node and a client under callgrind
# with instrumentation off; 2 s of wrk to warm up, then instrumentation on
# for DURATION_S of `wrk -t1 -c10` through the node, off again; total Ir
# of each process divided by the requests wrk completed.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
dur=$1; shift
command -v valgrind >/dev/null || { echo "bench: valgrind missing" >&2; exit 1; }
tmp=$(mktemp -d /tmp/warren-instr.XXXXXX); chmod 755 $tmp
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$tmp"; }
trap cleanup EXIT
ORIGIN=127.0.0.1:25180 NODE_HTTP=127.0.0.1:25181 NODE_ADMIN=127.0.0.1:25191
mkdir -p $tmp/www; head -c 1024 /dev/urandom >$tmp/www/1k
start_origin $tmp $ORIGIN
sleep 0.5
cg() { exec valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$1" "${@:2}"; }
# (exec: `cg ... &` then leaves $! the pid of valgrind itself, for callgrind_control)
total_ir() { callgrind_annotate "$1" 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1}'; }
echo "| build | requests | node Ir/req | client Ir/req |"
echo "|---|---|---|---|"
i=0
for arg in "$@"; do
  i=$((i+1))
  label=${arg%%=*} W=${arg#*=} d=$tmp/$label-$i
  mkdir -p $d
  "$W" keygen >$d/key
  cg $d/cg.node "$W" node --id c$i --http $NODE_HTTP --admin $NODE_ADMIN --domain bench.test \
    --key-file $d/key 2>$d/node.log & np=$!; pids+=($np)
  for _ in $(seq 100); do curl -s -o /dev/null "http://$NODE_ADMIN/" 2>/dev/null && break; sleep 0.1; done
  cg $d/cg.client "$W" http ${ORIGIN##*:} --node $NODE_HTTP --fleet-key "$("$W" pubkey $d/key)" \
    --name app ${CLIENT_ARGS:-} >$d/c.out 2>$d/c.log & cp=$!; pids+=($cp)
  for _ in $(seq 150); do grep -qs Forwarding $d/c.out && break; sleep 0.2; done
  grep -qs Forwarding $d/c.out || { echo "bench: client did not bind" >&2; cat $d/c.log >&2; exit 1; }
  wrk -t1 -c10 -d2s -H 'Host: app.bench.test' http://$NODE_HTTP/1k >/dev/null
  callgrind_control -i on $np >/dev/null 2>&1; callgrind_control -i on $cp >/dev/null 2>&1
  out=$(wrk -t1 -c10 -d${dur}s -H 'Host: app.bench.test' http://$NODE_HTTP/1k)
  callgrind_control -i off $np >/dev/null 2>&1; callgrind_control -i off $cp >/dev/null 2>&1
  n=$(awk '/requests in/ {print $1}' <<<"$out")
  # callgrind writes its file at exit.
  kill $cp; wait $cp 2>/dev/null || true
  kill $np; wait $np 2>/dev/null || true
  awk -v b="$label" -v n=$n -v in_="$(total_ir $d/cg.node)" -v ic="$(total_ir $d/cg.client)" \
    'BEGIN{printf "| %s | %d | %.0f | %.0f |\n", b, n, in_/n, ic/n}'
  if [ -n "${KEEP:-}" ]; then mkdir -p "$KEEP"; cp -r $d "$KEEP/"; fi
done
