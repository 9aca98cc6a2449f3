#!/usr/bin/env bash
# bench/small_ab.sh: 1 KiB requests, several warren binaries interleaved
# against one nginx, CPU per request per process.
#
#   bench/small_ab.sh DURATION_S LABEL=BIN [LABEL=BIN ...]
#   e.g. bench/small_ab.sh 8 base=/tmp/base/warren head=build-r/src/node/warren \
#                            base=/tmp/base/warren head=build-r/src/node/warren
#   STAT=1 ...   also counts the node's and the client's syscalls per request
#                during the warren cell (perf stat on syscall tracepoints)
#   PERFREC=N PERFOUT=/tmp/x ...  perf record -e cpu-clock -g the node and the
#                client of the Nth binary during its warren cell
#   CLIENT_ARGS='--inspect off' ...  extra flags for every `warren http`
#                (the inspector is on by default and costs the client
#                1-2 µs per exchange: docs/BENCHMARKS.md, issue 13)
#
# For each binary: start a node and a client, run wrk -t2 -c50 on /1k
# direct to nginx, then through warren, and print one Markdown row: direct
# and warren req/s, their ratio, and user+sys CPU (from /proc) of the node,
# the client and nginx's worker in µs per request of the warren cell.
# Ports are below the ephemeral range (a busy box's outgoing connections
# took 37180 once).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
dur=$1; shift
tmp=$(mktemp -d /tmp/warren-small.XXXXXX); chmod 755 $tmp
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$tmp"; }
trap cleanup EXIT
ORIGIN=127.0.0.1:23180 NODE_HTTP=127.0.0.1:23181 NODE_ADMIN=127.0.0.1:23191
mkdir -p $tmp/www; head -c 1024 /dev/urandom >$tmp/www/1k
start_origin $tmp $ORIGIN
sleep 0.5
ngx=$(pgrep -P "$(cat $tmp/nginx.pid)" nginx | head -1)
ticks() { local t=0 p; for p in $*; do t=$((t + $(awk '{print $14 + $15}' /proc/$p/stat))); done; echo $t; }
wrkrun() { # url host -> prints "rps nreq"
  local o; if [ -n "$2" ]; then o=$(wrk -t2 -c50 -d${dur}s -H "Host: $2" "$1"); else o=$(wrk -t2 -c50 -d${dur}s "$1"); fi
  echo "$(awk '/Requests\/sec/ {print $2}' <<<"$o") $(awk '/requests in/ {print $1}' <<<"$o") $(grep -c -E 'Non-2xx|Socket errors' <<<"$o" || true)"
}
echo "| build | direct req/s | warren req/s | warren / direct | node µs/req | client µs/req | node+client | nginx µs/req | load, wrk error lines |"
echo "|---|---|---|---|---|---|---|---|---|"
i=0
for arg in "$@"; do
  i=$((i+1))
  label=${arg%%=*} W=${arg#*=}
  "$W" keygen >$tmp/key$i
  "$W" node --id b$i --http $NODE_HTTP --admin $NODE_ADMIN --domain bench.test --key-file $tmp/key$i 2>$tmp/node$i.log & np=$!; pids+=($np)
  sleep 0.4
  "$W" http ${ORIGIN##*:} --node $NODE_HTTP --fleet-key "$("$W" pubkey $tmp/key$i)" --name app ${CLIENT_ARGS:-} >$tmp/c$i.out 2>$tmp/c$i.log & cp=$!; pids+=($cp)
  for _ in $(seq 50); do grep -qs Forwarding $tmp/c$i.out && break; sleep 0.1; done
  read drps dn de < <(wrkrun http://$ORIGIN/1k "")
  t0n=$(ticks $np); t0c=$(ticks $cp); t0x=$(ticks $ngx)
  if [ -n "${PERFREC:-}" ] && [ $i = "$PERFREC" ]; then
    perf record -e cpu-clock -g -o $PERFOUT-node.data -p $np -- sleep $dur >/dev/null 2>&1 &
    perf record -e cpu-clock -g -o $PERFOUT-client.data -p $cp -- sleep $dur >/dev/null 2>&1 &
  fi
  if [ -n "${STAT:-}" ]; then
    ev=$(printf 'syscalls:sys_enter_%s,' read write writev readv epoll_wait epoll_ctl getrandom brk mmap munmap madvise sendmsg recvmsg setsockopt clock_gettime)
    perf stat -x, -e "${ev%,}" -o $tmp/st-node$i -p $np -- sleep $dur >/dev/null 2>&1 &
    perf stat -x, -e "${ev%,}" -o $tmp/st-client$i -p $cp -- sleep $dur >/dev/null 2>&1 &
  fi
  read wrps wn we < <(wrkrun http://$NODE_HTTP/1k app.bench.test)
  if [ -n "${STAT:-}" ]; then wait $(jobs -p | grep -v -e "^$np\$" -e "^$cp\$" | grep -v -F "$(printf '%s\n' "${pids[@]}")") 2>/dev/null || true; sleep 0.3
    for w in node client; do printf '%s per req:' $w; awk -F, -v n=$wn '/sys_enter/ {sub("syscalls:sys_enter_","",$3); if ($1>0) printf " %s %.2f", $3, $1/n} END{print ""}' $tmp/st-$w$i; done; fi
  [ -n "${PERFREC:-}" ] && [ $i = "$PERFREC" ] && sleep 1
  tn=$(( $(ticks $np) - t0n )); tc=$(( $(ticks $cp) - t0c )); tx=$(( $(ticks $ngx) - t0x ))
  awk -v b="$label" -v d=$drps -v w=$wrps -v n=$wn -v tn=$tn -v tc=$tc -v tx=$tx -v e="$de/$we" -v l="$(cut -d' ' -f1 /proc/loadavg)" \
   'BEGIN{printf "| %s | %.0f | %.0f | %.2f× | %.1f | %.1f | %.1f | %.1f | %s, %s |\n", b, d, w, w/d, tn*10000/n, tc*10000/n, (tn+tc)*10000/n, tx*10000/n, l, e}'
  kill $np $cp; wait $np $cp 2>/dev/null || true
  sleep 0.5
done
