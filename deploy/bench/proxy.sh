#!/usr/bin/env bash
# Proxy throughput and latency under wrk, in one run so the ratios compare
# like with like on a shared machine:
#   direct    wrk -> demo upstream
#   bare      wrk -> httputil.ReverseProxy -> demo upstream
#   nginx     wrk -> nginx (Debian's nginx-light, keepalive upstream) -> demo upstream
#   apiguard  wrk -> apiguard up, default checks (events published to the
#             embedded JetStream and consumed by the pipeline) -> demo upstream
#   full      wrk -> apiguard up with every check on: decoys, bots, origins,
#             API key and HS256 JWT both verified, scopes, rate limits,
#             inspection, secret injection, response stripping
# then an open-loop run at half of bare's saturation against bare and full,
# for the latency the chain adds.
# Usage: deploy/bench/proxy.sh [duration] [connections]
set -euo pipefail
cd "$(dirname "$0")/../.."
DUR=${1:-10s}
CONNS=${2:-32}
THREADS=2
PATH_UNDER_TEST=/products/12345

command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk; }
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || { apt-get update -qq && apt-get install -y -qq nginx-light; }
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
go build -o bin/apiguard ./cmd/apiguard
go build -o bin/bareproxy ./deploy/bench/bareproxy
go build -o bin/ratedload ./deploy/bench/ratedload
go build -o bin/mintjwt ./deploy/bench/mintjwt

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
	--metrics-listen off --admin-listen off \
	>"$work/apiguard.out" 2>"$work/apiguard.log" & apiguard_pid=$!; pids+=($apiguard_pid)

# nginx as a reverse proxy with upstream keepalive, one worker per core.
mkdir -p "$work/nginx"
cat >"$work/nginx/nginx.conf" <<NGINX
worker_processes auto;
pid $work/nginx/nginx.pid;
error_log $work/nginx/error.log warn;
daemon off;
events { worker_connections 4096; }
http {
	access_log off;
	client_body_temp_path $work/nginx/body;
	proxy_temp_path $work/nginx/proxy;
	fastcgi_temp_path $work/nginx/fastcgi;
	uwsgi_temp_path $work/nginx/uwsgi;
	scgi_temp_path $work/nginx/scgi;
	upstream demo { server 127.0.0.1:19000; keepalive 256; }
	server {
		listen 127.0.0.1:19003;
		location / { proxy_pass http://demo; proxy_http_version 1.1; proxy_set_header Connection ""; }
	}
}
NGINX
"$NGINX" -p "$work/nginx" -c "$work/nginx/nginx.conf" & pids+=($!)

# The full chain: an API key and a JWT on every request, a secret injected.
key_out=$(bin/apiguard keys new --id bench --plan gold --scopes products:read)
api_key=$(sed -n 2p <<<"$key_out" | sed 's/^# //')
{ echo "keys:"; sed -n '4,$p' <<<"$key_out"; } >"$work/keys.yaml"
bin/apiguard secrets master-key >"$work/master.key"
export BENCH_JWT_SECRET=bench-secret-bench-secret-bench-secret-0123
jwt=$(bin/mintjwt -iss bench -aud bench)
cat >"$work/full.yaml" <<FULL
proxy:
  routes: ["GET /products/{id}"]
  decoys: {paths: ["/.env", "/admin/*"]}
  origins: {allowed: ["https://shop.example"]}
  auth:
    keys_file: $work/keys.yaml
    default: api_key
    routes: {"GET /products/{id}": {require: api_key, scopes: [products:read]}}
    jwt:
      issuers: [{issuer: bench, audience: [bench], algorithms: [HS256], secret_env: BENCH_JWT_SECRET}]
  rate_limits:
    plans: {gold: {rate: 1000000, burst: 1000000}}
    anonymous: {rate: 1000000, burst: 1000000}
    apis: {"GET /products/{id}": {rate: 1000000, burst: 1000000}}
  secrets:
    vault_file: $work/vault.yaml
    master_key_file: $work/master.key
    inject: [{header: X-Upstream-Key, secret: upstream/key}]
FULL
echo "upstream-credential-0123456789" | bin/apiguard secrets set upstream/key --config "$work/full.yaml" >/dev/null
bin/apiguard up --config "$work/full.yaml" --listen 127.0.0.1:19004 --upstream http://127.0.0.1:19000 \
	--nats-listen 127.0.0.1:0 --store-dir "$work/nats-full" --spool-dir "$work/spool-full" --log-level info \
	--metrics-listen off --admin-listen off \
	>"$work/full.out" 2>"$work/full.log" & full_pid=$!; pids+=($full_pid)
full_headers=(-H "X-API-Key: $api_key" -H "Authorization: Bearer $jwt" -H "Origin: https://shop.example"
	-H "User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:140.0) Gecko/20100101 Firefox/140.0" -H "Accept: application/json")

for port in 19000 19001 19003; do
	for _ in $(seq 100); do
		curl -fsS -o /dev/null "http://127.0.0.1:$port$PATH_UNDER_TEST" 2>/dev/null && break
		sleep 0.1
	done
done

for port in 19002 19004; do
	for _ in $(seq 100); do
		curl -fsS -o /dev/null "${full_headers[@]}" "http://127.0.0.1:$port$PATH_UNDER_TEST" 2>/dev/null && break
		sleep 0.1
	done
done
status=$(curl -s -o /dev/null -w '%{http_code}' "${full_headers[@]}" "http://127.0.0.1:19004$PATH_UNDER_TEST")
[ "$status" = 200 ] || { echo "full chain answers $status, not 200: check $work/full.log" >&2; cat "$work/full.log" >&2; exit 1; }
status=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:19004$PATH_UNDER_TEST")
[ "$status" = 401 ] || { echo "full chain without credentials answers $status, not 401" >&2; exit 1; }

# run NAME PORT [headers…]: prints "NAME rps p50_ms p99_ms"
run() {
	local name=$1 port=$2 out
	shift 2
	out=$(wrk -t"$THREADS" -c"$CONNS" -d"$DUR" --latency "$@" "http://127.0.0.1:$port$PATH_UNDER_TEST")
	local rps p50 p99
	rps=$(awk '/^Requests\/sec:/ {print $2}' <<<"$out")
	p50=$(awk '$1=="50%" {print $2}' <<<"$out")
	p99=$(awk '$1=="99%" {print $2}' <<<"$out")
	echo "$name $rps $(to_ms "$p50") $(to_ms "$p99")"
}
to_ms() {
	awk -v v="$1" 'BEGIN {
		if (v ~ /us$/) { sub(/us$/, "", v); printf "%.3f", v/1000 }
		else if (v ~ /ms$/) { sub(/ms$/, "", v); printf "%.3f", v }
		else if (v ~ /s$/) { sub(/s$/, "", v); printf "%.3f", v*1000 }
		else print v }'
}

# Warm each target, then measure.
for port in 19000 19001 19002 19003 19004; do wrk -t1 -c8 -d2s "${full_headers[@]}" "http://127.0.0.1:$port$PATH_UNDER_TEST" >/dev/null; done
results=$(run direct 19000; run bare 19001; run nginx 19003; run apiguard 19002; run full 19004 "${full_headers[@]}")

# Open loop at half of bare's saturation: the latency the full chain adds.
half=$(awk -v f="${RATE_FRACTION:-0.5}" '$1=="bare" {printf "%d", $2*f}' <<<"$results")
bare_lat=$(bin/ratedload -url "http://127.0.0.1:19001$PATH_UNDER_TEST" -rate "$half" -d "$DUR")
full_lat=$(bin/ratedload -url "http://127.0.0.1:19004$PATH_UNDER_TEST" -rate "$half" -d "$DUR" \
	-H "X-API-Key: $api_key" -H "Authorization: Bearer $jwt" -H "Origin: https://shop.example" \
	-H "User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:140.0) Gecko/20100101 Firefox/140.0")

kill -TERM "$apiguard_pid" "$full_pid"; wait "$apiguard_pid" "$full_pid" 2>/dev/null || true
published=$(grep -o 'published=[0-9]*' "$work/apiguard.log" | tail -1 | cut -d= -f2)
requests=$(grep -o 'msg="proxy stopped" component=proxy requests=[0-9]*' "$work/apiguard.log" | tail -1 | sed 's/.*requests=//')

echo "wrk -t$THREADS -c$CONNS -d$DUR GET $PATH_UNDER_TEST on $(nproc) cores"
awk -v base="$(awk '$1=="bare" {print $2}' <<<"$results")" -v direct="$(awk '$1=="direct" {print $2}' <<<"$results")" '
	BEGIN { printf "%-9s %12s %9s %9s %10s %10s\n", "target", "req/s", "p50 ms", "p99 ms", "vs direct", "vs bare" }
	{ printf "%-9s %12.0f %9.3f %9.3f %9.2fx %9.2fx\n", $1, $2, $3, $4, $2/direct, $2/base }' <<<"$results"
echo "apiguard events published: ${published:-?} of ${requests:-?} requests it served"
echo "open loop at $half req/s (${RATE_FRACTION:-0.5} of bare's saturation), $DUR:"
awk -v b="$bare_lat" -v f="$full_lat" 'BEGIN {
	split(b, x, " "); split(f, y, " ")
	printf "%-9s %9s %9s %7s\n", "target", "p50 ms", "p99 ms", "errors"
	printf "%-9s %9.3f %9.3f %7d\n", "bare", x[1], x[2], x[3]
	printf "%-9s %9.3f %9.3f %7d\n", "full", y[1], y[2], y[3]
	printf "full chain adds %.3f ms at p99\n", y[2]-x[2] }'
