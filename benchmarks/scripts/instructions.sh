#!/usr/bin/env bash
# Counts the instructions one call costs, with valgrind's callgrind: unlike
# time, the count does not move with the load of a shared machine. Each
# benchmark runs twice under callgrind, with N and 3N iterations; the
# difference divided by 2N is the cost of one call (the router's side
# included), free of start-up costs. Usage: scripts/instructions.sh
# [benchmark regexp] (default: one chat, every contender).
set -euo pipefail
cd "$(dirname "$0")/.."
pattern=${1:-'BenchmarkChat$/(floor|hfkit|openai-go|go-openai)$'}
n=${N:-1000}
dir=$(mktemp -d)
go test -c -o "$dir/bench.test" .
names=$("$dir/bench.test" -test.run '^$' -test.bench "$pattern" -test.benchtime 1x -test.cpu 1 | awk '/^Benchmark/ {print $1}')
for name in $names; do
  base=${name#Benchmark}
  top=${base%%/*}
  sub=${base#*/}
  # Callgrind can abort on the signals the Go runtime sends to preempt
  # goroutines, so preemption by signal is off (for every contender alike),
  # and a count is tried up to three times.
  count() {
    local c
    for _ in 1 2 3; do
      c=$(GODEBUG=asyncpreemptoff=1 valgrind --tool=callgrind --callgrind-out-file="$dir/cg.out" "$dir/bench.test" -test.run '^$' \
        -test.bench "^Benchmark$top\$/^$sub\$" -test.benchtime "$1x" -test.cpu 1 2>&1 >/dev/null \
        | awk '/Collected/ {print $4}')
      if [ -n "$c" ]; then echo "$c"; return; fi
    done
  }
  small=$(count "$n" || true)
  large=$(count $((3 * n)) || true)
  if [ -z "$small" ] || [ -z "$large" ]; then
    echo "$base: callgrind gave no count (run it by hand to see why)" >&2
    continue
  fi
  echo "$base $(( (large - small) / (2 * n) )) instructions/call"
done
