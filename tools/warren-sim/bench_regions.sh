#!/bin/sh
# The docs/BENCHMARKS.md "Regions" table (issue 14): the same warren-sim
# command with the region-aware core and with it off (--set
# region-aware=0), one JSON object per line on stdout.  Usage:
#   tools/warren-sim/bench_regions.sh [BUILD_DIR] [NODES] [OBSERVE_S]
# (default: build 3000 600).  3 regions, 80 ms apart one way, 10 % loss,
# 3 silent deaths after the 61 s warm-up, then OBSERVE_S seconds watched
# for false deaths; about 2.4 GiB of RAM per run at 3,000 nodes.
set -eu
B=${1:-build}/tools/warren-sim/warren-sim
N=${2:-3000}
OBS=${3:-600}
for aware in 1 0; do
  "$B" --nodes "$N" --regions 3 --region-delay-ms 80 --seed 14 --kill 3 \
    --scenario detect --loss 0.1 --observe-s "$OBS" \
    --set region-aware="$aware" --json
done
# A region cut off for 20 s, then healed: suspicions, deaths, agreement.
for aware in 1 0; do
  "$B" --nodes "$N" --regions 3 --region-delay-ms 80 --seed 15 \
    --scenario idle --region-cut 0 --partition-s 20 --duration-s 10 \
    --set region-aware="$aware" --json
done
