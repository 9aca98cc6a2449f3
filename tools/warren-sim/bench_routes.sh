#!/bin/sh
# The docs/BENCHMARKS.md "Routes in the simulator" runs: warren-sim with the
# real ownership table, fixed seeds, one JSON object per line on stdout and
# "wall s / max RSS KiB" of each run on stderr.  Usage:
#   tools/warren-sim/bench_routes.sh [BUILD_DIR] [target|sweep|tuned|all]
# target: the 100 nodes x 10,000 names at 500 changes/s (about
# 1.5 minutes of wall time each); sweep: 2,000 names at 20..500 changes/s;
# tuned: 500/s with faster gossip or sync.
set -eu
B=${1:-build}/tools/warren-sim/warren-sim
WHAT=${2:-all}
run() { /usr/bin/time -f "wall %e s, max RSS %M KiB: $*" "$B" "$@" --json; }
case $WHAT in target|all)
  run --nodes 100 --routes 10000 --churn 500 --seed 1
  run --nodes 100 --routes 10000 --churn 500 --seed 1 --loss 0.1
  run --nodes 100 --routes 10000 --churn 500 --seed 1 --scenario churn
esac
case $WHAT in sweep|all)
  for c in 20 50 100 200 500; do
    run --nodes 100 --routes 2000 --churn "$c" --seed 1 --scenario churn
  done
esac
case $WHAT in tuned|all)
  run --nodes 100 --routes 2000 --churn 500 --seed 1 --scenario churn \
    --set gossip-interval-ms=50
  run --nodes 100 --routes 2000 --churn 500 --seed 1 --scenario churn \
    --set gossip-interval-ms=50 --set gossip-nodes=6
  run --nodes 100 --routes 2000 --churn 500 --seed 1 --scenario churn \
    --sync-s 2
esac
