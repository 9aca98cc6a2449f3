#!/usr/bin/env bash
# bench/http.sh: HTTP throughput and latency through warren, against a direct
# connection and `ssh -R` in the same run, all on loopback.
#
#   WARREN_BOOTSTRAP_BENCH=1 tools/bootstrap    # wrk, nginx-light, openssh
#   WARREN_BIN=build-x/src/node/warren bench/http.sh [DURATION_S]  # default 10
#   PERF=1 ...   also `perf record -g` the node and the client during the
#                warren runs (reports land in $PERF_DIR, default /tmp)
#   PERF=stat .. count the node's and the client's syscalls during the
#                warren runs (perf stat on syscall tracepoints), plus the
#                request count wrk reports, for syscalls per request
#   CPU=1 ...    after each cell, CPU time (user+sys, from /proc) of every
#                process on the path per MiB moved: wrk, nginx's worker,
#                and the node, the client (warren) or sshd, ssh (ssh -R)
#
# Three paths to the same nginx origin serving /1k and /1m:
#   direct   wrk -> nginx
#   warren   wrk -> warren node (Host: app.bench.test) -> tunnel -> warren http -> nginx
#   ssh      wrk -> sshd -R listener -> ssh client (aes128-gcm, -tt) -> nginx
# Prints a Markdown table; the numbers go to docs/BENCHMARKS.md.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
root=$(cd "$(dirname "$0")/.." && pwd)
dur=${1:-10}
W=${WARREN_BIN:-$root/build/src/node/warren}
[ -x "$W" ] || { echo "bench: no warren binary at $W (set WARREN_BIN)" >&2; exit 1; }
PERF=${PERF:-0} PERF_DIR=${PERF_DIR:-/tmp}
for t in wrk nginx ssh /usr/sbin/sshd; do
  command -v "$t" >/dev/null || { echo "bench: $t missing: WARREN_BOOTSTRAP_BENCH=1 tools/bootstrap" >&2; exit 1; }
done

tmp=$(mktemp -d /tmp/warren-bench.XXXXXX)
# nginx started as root serves as nobody: the 0700 mktemp dir gave 403s.
chmod 755 "$tmp"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$tmp"; }
trap cleanup EXIT

ORIGIN=127.0.0.1:18080 NODE_HTTP=127.0.0.1:18081 NODE_ADMIN=127.0.0.1:19081
SSH_PORT=12222 SSH_FWD=127.0.0.1:18090

# Origin: nginx with fixed bodies, access log off, keep-alive unlimited.
mkdir -p "$tmp/www"
head -c 1024 /dev/urandom >"$tmp/www/1k"
head -c 1048576 /dev/urandom >"$tmp/www/1m"
start_origin "$tmp" "$ORIGIN"

# warren: one node, one client.
"$W" keygen >"$tmp/key"
"$W" node --id bench1 --http $NODE_HTTP --admin $NODE_ADMIN --domain bench.test \
  --key-file "$tmp/key" 2>"$tmp/node.log" & pids+=($!)
node_pid=$!
sleep 0.5
"$W" http ${ORIGIN##*:} --node $NODE_HTTP --fleet-key "$("$W" pubkey "$tmp/key")" \
  --name app >"$tmp/client.out" 2>"$tmp/client.log" & pids+=($!)
client_pid=$!
sleep 0.3
curl -fsS -o /dev/null "http://$ORIGIN/1k" || { echo "bench: origin does not serve /1k" >&2; cat "$tmp/nginx.err" >&2; exit 1; }
for _ in $(seq 50); do grep -qs Forwarding "$tmp/client.out" && break; sleep 0.1; done
grep -q Forwarding "$tmp/client.out" || { echo "bench: client did not bind" >&2; cat "$tmp/client.log" >&2; exit 1; }

# ssh -R through a private sshd on loopback, key auth, OpenSSH's fast cipher.
ssh-keygen -q -t ed25519 -N '' -f "$tmp/id" && cp "$tmp/id.pub" "$tmp/authorized_keys"
ssh-keygen -q -t ed25519 -N '' -f "$tmp/hostkey"
cat >"$tmp/sshd_config" <<SSHD
Port $SSH_PORT
ListenAddress 127.0.0.1
HostKey $tmp/hostkey
AuthorizedKeysFile $tmp/authorized_keys
PidFile $tmp/sshd.pid
StrictModes no
PermitRootLogin prohibit-password
UsePAM no
SSHD
mkdir -p /run/sshd
/usr/sbin/sshd -D -f "$tmp/sshd_config" & pids+=($!)
sshd_pid=$!
sleep 0.5
ssh -tt -i "$tmp/id" -p $SSH_PORT -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null \
  -c aes128-gcm@openssh.com -R $SSH_FWD:$ORIGIN -N root@127.0.0.1 </dev/null >/dev/null 2>&1 & pids+=($!)
ssh_pid=$!
sleep 1.5

CPU=${CPU:-0}
cpu_ticks() { # pid...: "user+sys ticks" summed over the pids (children excluded)
  local t=0 p
  for p in $*; do t=$((t + $(awk '{print $14 + $15}' /proc/$p/stat 2>/dev/null || echo 0))); done
  echo $t
}
ngx_worker=$(pgrep -P "$(cat "$tmp/nginx.pid" 2>/dev/null || echo 1)" nginx | head -1 || true)
run_wrk() { # label url [host]
  local out who=() t0=() tw i
  case $1 in
    warren*) who=("node:$node_pid" "client:$client_pid") ;;
    ssh*) # our sshd's per-connection processes (monitor and session)
      local kids=$(pgrep -P "$sshd_pid" | tr '\n' ' ' || true)
      local grand=$(for k in $kids; do pgrep -P "$k" || true; done | tr '\n' ' ')
      who=("sshd:$kids $grand" "ssh:$ssh_pid") ;;
  esac
  [ -n "$ngx_worker" ] && who+=("nginx:$ngx_worker")
  for i in "${!who[@]}"; do t0[$i]=$(cpu_ticks "${who[$i]##*:}"); done
  local tf=$(mktemp)
  if [ -n "${3:-}" ]; then
    out=$( { /usr/bin/time -f "%U %S" -o "$tf" wrk -t2 -c50 -d"${dur}s" --latency -H "Host: $3" "$2"; } )
  else
    out=$( { /usr/bin/time -f "%U %S" -o "$tf" wrk -t2 -c50 -d"${dur}s" --latency "$2"; } )
  fi
  if [ "$CPU" = 1 ]; then
    # wrk's "N requests in T, X read" gives the bytes moved.
    local mib=$(awk '/requests in/ {v=$5; u=substr(v,length(v)-1); n=substr(v,1,length(v)-2);
      print (u=="GB") ? n*1024 : (u=="MB") ? n : (u=="KB") ? n/1024 : 0}' <<<"$out")
    local line="cpu ms/MiB, $1:"
    for i in "${!who[@]}"; do
      tw=$(( $(cpu_ticks "${who[$i]##*:}") - t0[$i] ))
      line+=$(awk -v n="${who[$i]%%:*}" -v t=$tw -v m="$mib" 'BEGIN{printf " %s %.3f", n, m ? t*10/m : 0}')
    done
    line+=$(awk -v m="$mib" '{printf " wrk %.3f", m ? ($1+$2)*1000/m : 0}' "$tf")
    echo "$line" >>"$tmp/cpu.txt"
  fi
  rm -f "$tf"
  local rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  local tr=$(awk '/Transfer\/sec/ {print $2}' <<<"$out")
  local p50=$(awk '$1=="50%" {print $2}' <<<"$out")
  local p99=$(awk '$1=="99%" {print $2}' <<<"$out")
  local nreq=$(awk '/requests in/ {print $1}' <<<"$out")
  [ "$PERF" = stat ] && echo "$1 requests: $nreq" >>"$PERF_DIR/requests.txt"
  local errs=$(awk '/Non-2xx|Socket errors/ {print}' <<<"$out" | tr '\n' ' ')
  printf '| %s | %s | %s | %s | %s | %s |\n' "$1" "$rps" "$tr" "$p50" "$p99" "${errs:-none}"
}

echo "| path | req/s | transfer/s | p50 | p99 | errors |"
echo "|---|---|---|---|---|---|"
for size in 1k 1m; do
  run_wrk "direct $size" "http://$ORIGIN/$size"
  sp=()
  if [ "$PERF" = stat ]; then
    ev=$(printf 'syscalls:sys_enter_%s,' read write writev epoll_wait epoll_ctl getrandom)
    for who in node:$node_pid client:$client_pid; do
      perf stat -x, -e "${ev%,}" -o "$PERF_DIR/stat-${who%%:*}-$size.csv" \
        -p "${who##*:}" -- sleep "$dur" >/dev/null 2>&1 &
      sp+=($!)
    done
  fi
  if [ "$PERF" = 1 ]; then
    perf record -g -o "$PERF_DIR/perf-node-$size.data" -p $node_pid -- sleep "$dur" >/dev/null 2>&1 &
    pn=$!
    perf record -g -o "$PERF_DIR/perf-client-$size.data" -p $client_pid -- sleep "$dur" >/dev/null 2>&1 &
    pc=$!
  fi
  run_wrk "warren $size" "http://$NODE_HTTP/$size" app.bench.test
  [ "$PERF" = 1 ] && wait $pn $pc
  [ "$PERF" = stat ] && wait "${sp[@]}"
  run_wrk "ssh -R $size" "http://$SSH_FWD/$size"
done
rss=$(awk '/VmRSS/ {print $2}' /proc/$node_pid/status)
echo
echo "node RSS after the runs: ${rss} KiB"
echo "client RSS after the runs: $(awk '/VmRSS/ {print $2}' /proc/$client_pid/status) KiB"
if [ "$CPU" = 1 ]; then echo; cat "$tmp/cpu.txt"; fi
