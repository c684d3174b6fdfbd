#!/usr/bin/env bash
# Runs the TLS workloads (HTTP/2 and HTTP/1.1 over TLS: one chat, fan-out
# with 64 goroutines per core, the 500-chunk stream, time to first chunk)
# RUNS times (default 10), one pass of every contender at a time, so that a
# shared machine's drifting load falls on all of them alike. Prints
# benchstat's medians and, per workload, the median and range of the
# per-pass ratios to the floor. Raw results are left in OUT (./tls.txt).
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${RUNS:-10}
out=${OUT:-tls.txt}
bin=$(mktemp -d)/bench.test
go test -c -o "$bin" .
: > "$out"
for i in $(seq "$runs"); do
  "$bin" -test.run '^$' -test.bench 'BenchmarkTLSChat$|BenchmarkTLSStream500|BenchmarkTimeToFirstChunk' \
    -test.benchmem -test.count 1 -test.cpu 1 | grep '^Benchmark' | sed "s/^/pass$i /" >> "$out"
  "$bin" -test.run '^$' -test.bench 'BenchmarkTLSChatParallel' -test.benchmem -test.count 1 -test.cpu 2 \
    | grep '^Benchmark' | sed "s/^/pass$i /" >> "$out"
  echo "pass $i of $runs done" >&2
done
cut -d' ' -f2- "$out" | go run golang.org/x/perf/cmd/benchstat@latest -col /name - || true
# Per-pass ratios to the floor: for each pass and workload, a contender's
# time (and allocations) over the floor's; then their median and range.
python3 - "$out" <<'PY'
import re, sys, statistics
rows = {}
for line in open(sys.argv[1]):
    f = line.split()
    pas, name, ns, allocs = f[0], f[1], float(f[3]), float(f[7])
    work, contender = name.rsplit("/", 1)
    contender = re.sub(r"-\d+$", "", contender)
    rows.setdefault((pas, work), {})[contender] = (ns, allocs)
ratios = {}
for (pas, work), cs in rows.items():
    if "floor" not in cs:
        continue
    for c, (ns, al) in cs.items():
        if c != "floor":
            ratios.setdefault((work, c), []).append((ns / cs["floor"][0], al / cs["floor"][1]))
for (work, c), rs in sorted(ratios.items()):
    t = sorted(r[0] for r in rs); a = sorted(r[1] for r in rs)
    print(f"{work:32} {c:10} time x{statistics.median(t):.2f} ({t[0]:.2f}-{t[-1]:.2f})  allocs x{statistics.median(a):.2f}  [{len(t)} passes]")
PY
