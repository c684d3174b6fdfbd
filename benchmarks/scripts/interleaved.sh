#!/usr/bin/env bash
# Runs every benchmark RUNS times (default 10), one pass of all contenders at
# a time, so that a shared machine's drifting load falls on every contender
# alike instead of on whichever ran during a slow minute. Sequential
# workloads run with -cpu 1 (time is CPU cost), the fan-out one with -cpu 2.
# Prints benchstat's medians; the raw results are left in OUT (default
# ./bench.txt) for benchstat -col /name.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${RUNS:-10}
out=${OUT:-bench.txt}
bin=$(mktemp -d)/bench.test
go test -c -o "$bin" .
: > "$out"
for i in $(seq "$runs"); do
  "$bin" -test.run '^$' -test.bench 'BenchmarkChat$|BenchmarkStream500|BenchmarkGatedError|BenchmarkGatedWalk' \
    -test.benchmem -test.count 1 -test.cpu 1 | grep '^Benchmark' >> "$out"
  "$bin" -test.run '^$' -test.bench 'BenchmarkChatParallel' -test.benchmem -test.count 1 -test.cpu 2 \
    | grep '^Benchmark' >> "$out"
  echo "pass $i of $runs done" >&2
done
go run golang.org/x/perf/cmd/benchstat@latest -col /name "$out"
