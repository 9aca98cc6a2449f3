#!/usr/bin/env bash
# bench/relay_instr.sh: user-space instructions per MiB in the owner when
# it relays a node-link stream into a tunnel (issue 11, the hop at 1 MiB),
# counted by callgrind, for binaries to compare.
#
#   bench/relay_instr.sh DURATION_S LABEL=BIN [LABEL=BIN ...]   # e.g. 6
#   KEEP=DIR ...   keep each run's callgrind file in DIR/LABEL-N/
#
# Why: the relay's cost is n1's CPU per MiB in `CPU=1 bench/forward.sh`,
# but on a shared 2-core box that figure swings by more than the copy a
# change saves (docs/BENCHMARKS.md, Rounds 6 and 7).  Instructions do not
# depend on the neighbours; they leave out the kernel, and under valgrind
# libcrypto runs its AVX2 code, so compare binaries with each other.
#
# For each binary: nginx serving /1m, nodes n1 and n2 in one fleet, n1
# under callgrind with instrumentation off, a client bound at n1; 2 s of
# wrk through n2 to warm up, then instrumentation on for DURATION_S of
# `wrk -t1 -c4` on /1m through n2 (visitor -> n2 -> node link -> n1 ->
# tunnel -> client), off again; n1's total Ir divided by the MiB wrk read.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
dur=$1; shift
command -v valgrind >/dev/null || { echo "bench: valgrind missing" >&2; exit 1; }
tmp=$(mktemp -d /tmp/warren-relay.XXXXXX); chmod 755 $tmp
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$tmp"; }
trap cleanup EXIT
ORIGIN=127.0.0.1:26180
N1_HTTP=127.0.0.1:26181 N1_ADMIN=127.0.0.1:26191 N1_GOSSIP=127.0.0.1:26171
N2_HTTP=127.0.0.1:26182 N2_ADMIN=127.0.0.1:26192 N2_GOSSIP=127.0.0.1:26172
mkdir -p $tmp/www; head -c 1048576 /dev/urandom >$tmp/www/1m
start_origin $tmp $ORIGIN
sleep 0.5
total_ir() { callgrind_annotate "$1" 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1}'; }
mib_of() { awk '/requests in/ {v=$5; u=substr(v,length(v)-1); n=substr(v,1,length(v)-2);
  print (u=="GB") ? n*1024 : (u=="MB") ? n : (u=="KB") ? n/1024 : 0}'; }
echo "| build | MiB | n1 (owner, relaying) Ir/MiB |"
echo "|---|---|---|"
i=0
for arg in "$@"; do
  i=$((i+1))
  label=${arg%%=*} W=${arg#*=} d=$tmp/$label-$i
  mkdir -p $d
  "$W" keygen >$d/key
  # exec: $! is then valgrind's own pid, for callgrind_control.
  ( exec valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file=$d/cg.n1 \
      "$W" node --id n1 --http $N1_HTTP --admin $N1_ADMIN --gossip $N1_GOSSIP \
      --domain bench.test --key-file $d/key --gossip-profile local ) 2>$d/n1.log & n1=$!; pids+=($n1)
  for _ in $(seq 100); do curl -s -o /dev/null "http://$N1_ADMIN/" 2>/dev/null && break; sleep 0.1; done
  "$W" node --id n2 --http $N2_HTTP --admin $N2_ADMIN --gossip $N2_GOSSIP \
    --domain bench.test --key-file $d/key --gossip-profile local \
    --join $N1_GOSSIP 2>$d/n2.log & n2=$!; pids+=($n2)
  "$W" http ${ORIGIN##*:} --node $N1_HTTP --fleet-key "$("$W" pubkey $d/key)" \
    --name app >$d/c.out 2>$d/c.log & cp=$!; pids+=($cp)
  for _ in $(seq 150); do grep -qs Forwarding $d/c.out && break; sleep 0.2; done
  grep -qs Forwarding $d/c.out || { echo "bench: client did not bind" >&2; cat $d/c.log >&2; exit 1; }
  st=
  for _ in $(seq 150); do
    st=$(curl -s -o /dev/null -w '%{http_code}' -H 'Host: app.bench.test' "http://$N2_HTTP/1m" || true)
    [ "$st" = 200 ] && break; sleep 0.2
  done
  [ "$st" = 200 ] || { echo "bench: n2 does not serve app ($st)" >&2; exit 1; }
  wrk -t1 -c4 -d2s -H 'Host: app.bench.test' http://$N2_HTTP/1m >/dev/null
  callgrind_control -i on $n1 >/dev/null 2>&1
  out=$(wrk -t1 -c4 -d${dur}s -H 'Host: app.bench.test' http://$N2_HTTP/1m)
  callgrind_control -i off $n1 >/dev/null 2>&1
  mib=$(mib_of <<<"$out")
  kill $cp $n2; wait $cp $n2 2>/dev/null || true
  kill $n1; wait $n1 2>/dev/null || true # callgrind writes its file at exit
  awk -v b="$label" -v m="$mib" -v ir="$(total_ir $d/cg.n1)" \
    'BEGIN{printf "| %s | %.0f | %.0f |\n", b, m, m ? ir/m : 0}'
  if [ -n "${KEEP:-}" ]; then mkdir -p "$KEEP"; cp -r $d "$KEEP/"; fi
done
