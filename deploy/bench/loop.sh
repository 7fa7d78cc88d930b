#!/usr/bin/env bash
# Loop latency: offending request -> anomaly -> responder -> KV -> block
# enforced at the proxy, measured by the proxy's watcher for every block of
# the demo with many attackers. Prints the demo's JSON summary.
# Usage: deploy/bench/loop.sh [attackers]
set -euo pipefail
cd "$(dirname "$0")/../.."
N=${1:-60}
go build -o bin/apiguard ./cmd/apiguard
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# Attackers start one a second after 30s of warm-up.
secs=$((30 + N + 10))
bin/apiguard up --demo --attackers "$N" --for "${secs}s" --listen 127.0.0.1:0 \
	--nats-listen 127.0.0.1:0 --store-dir "$work/nats" --spool-dir "$work/spool" >"$work/demo.out" 2>"$work/demo.log"
grep -c ENFORCED "$work/demo.out" | sed 's/^/blocks enforced at the proxy: /'
tail -1 "$work/demo.out"
