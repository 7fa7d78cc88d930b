#!/usr/bin/env bash
# Instructions per request on the proxy's hot path (BenchmarkHotPath in
# proxy/hotpath_bench_test.go), counted by callgrind: repeatable to a few
# parts per thousand on a loaded machine, where wall-clock figures are not.
# Each case runs at N and 2N requests and the difference is divided by N,
# so start-up (building the chain, the matcher) cancels out.
# The "native" and "nethttp" cases are the default chain on each engine
# through loopback sockets (BenchmarkHotPath/native, /nethttp): their
# counts include the in-process client and upstream stub, not the kernel.
# Usage: deploy/bench/hotpath-callgrind.sh [N] [cases regexp]
set -euo pipefail
cd "$(dirname "$0")/../.."
N=${1:-2000}
CASES=${2:-bare enforcement default native nethttp}
command -v valgrind >/dev/null || { echo "needs valgrind (apt-get install valgrind)" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
go test -c -o "$work/proxy.test" ./proxy/
# Valgrind 3.19 does not decode RDTSCP, which the Go runtime reads the
# clock with when a runtime lock is contended (valgrind serialises threads,
# so it is); RDTSC plus a NOP is the same for the count.
python3 - "$work/proxy.test" <<'PY'
import sys
p = sys.argv[1]
b = open(p, 'rb').read()
old = bytes.fromhex('0f01f948c1e220')
new = bytes.fromhex('0f319048c1e220')
n = b.count(old)
open(p, 'wb').write(b.replace(old, new))
print(f"patched {n} RDTSCP", file=sys.stderr)
PY
count() {
	(cd proxy && GODEBUG=asyncpreemptoff=1 GOMAXPROCS=1 valgrind --tool=callgrind --callgrind-out-file="$work/cg.out" \
		"$work/proxy.test" -test.run '^$' -test.bench "HotPath/$1\$" -test.benchtime "$2x" 2>&1) |
		awk '/Collected :/ {print $NF}'
}
printf "%-12s %14s\n" case "instr/request"
for c in $CASES; do
	a=$(count "$c" "$N")
	b=$(count "$c" $((2 * N)))
	printf "%-12s %14.0f\n" "$c" "$(awk -v a="$a" -v b="$b" -v n="$N" 'BEGIN {print (b-a)/n}')"
done
