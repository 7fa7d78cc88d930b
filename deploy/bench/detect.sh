#!/usr/bin/env bash
# Detection figures: the backtest on generated days (precision, recall,
# time to detect, events/s through every detector on one core), the
# memory held per (API, principal) pair at a million pairs, and the
# parameter models' F1 on CSIC 2010, alone and through the product path. Usage: deploy/bench/detect.sh [SEEDS…]
set -euo pipefail
cd "$(dirname "$0")/../.."
seeds=("${@:-1 2 3}")
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for seed in ${seeds[@]}; do
	echo "== backtest, seed $seed (one engine per partition, 4 partitions)"
	bin/apiguard replay generate --seed "$seed" --out "$tmp/day.cap"
	bin/apiguard replay backtest "$tmp/day.cap"
	echo "== same traffic, one partition on one core"
	bin/apiguard replay backtest "$tmp/day.cap" --partitions 1 | awk 'NR == 1'
done
echo "== memory per pair and CSIC 2010 (parameter models alone)"
go test -count=1 -run 'TestPairMemory|TestCSICParameterModel' -v ./detectors | grep -E 'bytes per pair|TPR|^(ok|FAIL|---)'
echo "== CSIC 2010 through the product path (every request; raw-http import, proxy checks, engine) and parameters on the ordinary site"
APIGUARD_CSIC_FULL=1 go test -count=1 -run 'TestCSICProductPath|TestParametersOnOrdinarySite' -v ./replay | grep -E 'figures|^(ok|FAIL|---)'
echo "== real access logs (1 and 4 partitions), generated seeds 1-24, no collateral"
go test -count=1 -timeout 30m -run 'TestRealLogs|TestGeneratedSeeds|TestNoCollateral' -v ./replay -args -seeds 24 |
	grep -E 'figures|seed [0-9]+:|known|^(ok|FAIL|---)' || true
echo "== engine throughput (mixed synthetic traffic)"
go test -run '^$' -bench 'Engine|Backtest' -benchtime 3x -count 3 ./detectors ./replay | grep -E 'Benchmark|ok'
