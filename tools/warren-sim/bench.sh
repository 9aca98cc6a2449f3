#!/bin/sh
# The docs/BENCHMARKS.md membership table: warren-sim runs with fixed
# seeds, one JSON object per line on stdout.  Usage:
#   tools/warren-sim/bench.sh [BUILD_DIR] [SIZES]   (default: build "10 100 1000")
# Add 10000 to SIZES for the 10k rows (about 3 minutes and 7.5 GiB each).
set -eu
B=${1:-build}/tools/warren-sim/warren-sim
SIZES=${2:-"10 100 1000"}
for n in $SIZES; do
  for loss in 0 0.1 0.3; do
    "$B" --nodes "$n" --seed 1 --loss "$loss" --kill 3 --routes 10 --json
  done
done
for n in 100 1000; do
  for slow in "" "--slow-ms 1500" "--slow-ms 3000"; do
    for lg in "" --no-lifeguard; do
      "$B" --nodes "$n" --seed 1 --scenario falsepos --pause-frac 0.1 \
        --duration-s 120 $slow $lg --json
    done
  done
done
for p in lan wan local; do
  "$B" --nodes 1000 --seed 1 --scenario idle --profile "$p" --json
done
