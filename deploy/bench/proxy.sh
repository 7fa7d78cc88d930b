#!/usr/bin/env bash
# Proxy throughput and latency under wrk, in one run so the ratios compare
# like with like on a shared machine:
#   direct    wrk -> demo upstream
#   bare      wrk -> httputil.ReverseProxy -> demo upstream
#   apiguard  wrk -> apiguard up (checks, events published to embedded
#             JetStream and consumed by the pipeline) -> demo upstream
# Usage: deploy/bench/proxy.sh [duration] [connections]
set -euo pipefail
cd "$(dirname "$0")/../.."
DUR=${1:-10s}
CONNS=${2:-32}
THREADS=2
PATH_UNDER_TEST=/products/12345

command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk; }
go build -o bin/apiguard ./cmd/apiguard
go build -o bin/bareproxy ./deploy/bench/bareproxy

work=$(mktemp -d)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT

bin/apiguard demo-upstream --listen 127.0.0.1:19000 >"$work/upstream.log" 2>&1 & pids+=($!)
bin/bareproxy -listen 127.0.0.1:19001 -upstream http://127.0.0.1:19000 >"$work/bare.log" 2>&1 & pids+=($!)
bin/apiguard up --listen 127.0.0.1:19002 --upstream http://127.0.0.1:19000 \
	--nats-listen 127.0.0.1:0 --store-dir "$work/nats" --spool-dir "$work/spool" --log-level info \
	>"$work/apiguard.out" 2>"$work/apiguard.log" & apiguard_pid=$!; pids+=($apiguard_pid)

for port in 19000 19001 19002; do
	for _ in $(seq 100); do
		curl -fsS -o /dev/null "http://127.0.0.1:$port$PATH_UNDER_TEST" 2>/dev/null && break
		sleep 0.1
	done
done

# run NAME PORT: prints "NAME rps p50_ms p99_ms"
run() {
	local out
	out=$(wrk -t"$THREADS" -c"$CONNS" -d"$DUR" --latency "http://127.0.0.1:$2$PATH_UNDER_TEST")
	local rps p50 p99
	rps=$(awk '/^Requests\/sec:/ {print $2}' <<<"$out")
	p50=$(awk '$1=="50%" {print $2}' <<<"$out")
	p99=$(awk '$1=="99%" {print $2}' <<<"$out")
	echo "$1 $rps $(to_ms "$p50") $(to_ms "$p99")"
}
to_ms() {
	awk -v v="$1" 'BEGIN {
		if (v ~ /us$/) { sub(/us$/, "", v); printf "%.3f", v/1000 }
		else if (v ~ /ms$/) { sub(/ms$/, "", v); printf "%.3f", v }
		else if (v ~ /s$/) { sub(/s$/, "", v); printf "%.3f", v*1000 }
		else print v }'
}

# Warm each target, then measure.
for port in 19000 19001 19002; do wrk -t1 -c8 -d2s "http://127.0.0.1:$port$PATH_UNDER_TEST" >/dev/null; done
results=$(run direct 19000; run bare 19001; run apiguard 19002)

kill -TERM "$apiguard_pid"; wait "$apiguard_pid" 2>/dev/null || true
published=$(grep -o 'published=[0-9]*' "$work/apiguard.log" | tail -1 | cut -d= -f2)
requests=$(grep -o 'msg="proxy stopped" component=proxy requests=[0-9]*' "$work/apiguard.log" | tail -1 | sed 's/.*requests=//')

echo "wrk -t$THREADS -c$CONNS -d$DUR GET $PATH_UNDER_TEST on $(nproc) cores"
awk -v base="$(awk '$1=="bare" {print $2}' <<<"$results")" -v direct="$(awk '$1=="direct" {print $2}' <<<"$results")" '
	BEGIN { printf "%-9s %12s %9s %9s %10s %10s\n", "target", "req/s", "p50 ms", "p99 ms", "vs direct", "vs bare" }
	{ printf "%-9s %12.0f %9.3f %9.3f %9.2fx %9.2fx\n", $1, $2, $3, $4, $2/direct, $2/base }' <<<"$results"
echo "apiguard events published: ${published:-?} of ${requests:-?} requests it served"
