#!/usr/bin/env bash
# Enforcement state at scale: bulk writes to the KV bucket, a full load in
# process with its CPU time, the local snapshot, then real proxy processes:
# cold start (full load), cold start from the shared snapshot (object
# store) the first proxy uploaded, start from a local snapshot, resident
# memory per entry (against a proxy whose bucket is empty), and how fast a change reaches
# N proxies watching the bucket (p50/p99 from the proxies' own logs of the
# time since each entry's trigger, which is its write time here).
# Usage: deploy/bench/enforce.sh [entries] [proxies]
set -euo pipefail
cd "$(dirname "$0")/../.."
N=${1:-1000000}
P=${2:-10}
go build -o bin/apiguard ./cmd/apiguard
go build -o bin/enforcescale ./cmd/apiguard-enforcescale
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) cores"
bin/enforcescale -n "$N" -proxies "$P" -bin bin/apiguard
