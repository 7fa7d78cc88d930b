#!/usr/bin/env bash
# The proxy against nginx on one pinned core (make bench-proxy).
#
# Core 0 runs the proxy under test, alone: nginx (one worker), the bare Go
# proxy (httputil.ReverseProxy with a buffer pool) and apiguard's proxy,
# each with GOMAXPROCS=1 and taskset -c 0. Core 1 runs everything else:
# wrk, the demo upstream, and a separate NATS with the pipeline ('apiguard
# up', its embedded JetStream), which the apiguard proxies publish every
# event to.
#   nginx     reverse proxy with upstream keepalive, access log off
#   bare      deploy/bench/bareproxy
#   fast      deploy/bench/fastproxy: the same on fasthttp, for what the
#             HTTP engine alone costs
#   apiguard  'apiguard proxy', default checks, every event published, on
#             the default engine (proxy.engine: native, its own HTTP/1.1
#             loop and upstream pool)
#   nethttp   the same on proxy.engine: net/http (net/http's server and
#             httputil.ReverseProxy), for what the native engine saves
#   full      'apiguard proxy' with every check on: decoys, bots, origins,
#             API key and HS256 JWT both verified, scopes, rate limits,
#             inspection, secret injection, response stripping
# ROUNDS interleaved rounds (nginx, bare, fast, apiguard, nethttp, full in each), wrk -t1
# -cCONNS for DUR each, GET of a ~200-byte JSON document. CPU per request is
# the target's own utime+stime (/proc/PID/stat, all its processes) over
# the requests wrk counted. Then an open-loop run (ratedload) at half of
# full's saturation against nginx, apiguard and full, for the p99 latency
# the proxy adds over nginx at the same rate.
#
# Needs wrk and nginx (Debian packages wrk, nginx: installed with apt-get
# when run as root, else it says so) and two cores. A benchmark, not CI:
# run it on a quiet machine.
# Usage: deploy/bench/proxy.sh [duration] [connections] [rounds]
set -euo pipefail
cd "$(dirname "$0")/../.."
DUR=${1:-10s}
CONNS=${2:-32}
ROUNDS=${3:-3}
PATH_UNDER_TEST=/products/12345
PROXY_CORE=${PROXY_CORE:-0}
LOAD_CORE=${LOAD_CORE:-1}

need() { # need COMMAND PACKAGE
	command -v "$1" >/dev/null || [ -x "/usr/sbin/$1" ] && return
	if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
		apt-get update -qq && apt-get install -y -qq "$2"
	else
		echo "deploy/bench/proxy.sh needs $1: apt-get install $2 (as root)" >&2
		exit 1
	fi
}
need wrk wrk
need nginx nginx
need taskset util-linux
[ "$(nproc)" -ge 2 ] || { echo "needs two cores (the proxy on one, the load on the other)" >&2; exit 1; }
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
go build -o bin/apiguard ./cmd/apiguard
go build -o bin/bareproxy ./deploy/bench/bareproxy
go build -o bin/fastproxy ./deploy/bench/fastproxy
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
on_proxy_core() { GOMAXPROCS=1 exec taskset -c "$PROXY_CORE" "$@"; }
on_load_core() { exec taskset -c "$LOAD_CORE" "$@"; }

# Core 1: the upstream, NATS with the pipeline (its own proxy listens on a
# port nobody loads).
on_load_core bin/apiguard demo-upstream --listen 127.0.0.1:19000 >"$work/upstream.log" 2>&1 & pids+=($!)
on_load_core bin/apiguard up --listen 127.0.0.1:19009 --upstream http://127.0.0.1:19000 \
	--nats-listen 127.0.0.1:19222 --store-dir "$work/nats" --spool-dir "$work/spool-up" --log-level warn \
	--metrics-listen off --admin-listen off >"$work/up.out" 2>"$work/up.log" & pids+=($!)
NATS_URL=nats://127.0.0.1:19222

# Core 0: the proxies under test.
on_proxy_core bin/bareproxy -listen 127.0.0.1:19001 -upstream http://127.0.0.1:19000 >"$work/bare.log" 2>&1 & bare_pid=$!; pids+=($bare_pid)
on_proxy_core bin/fastproxy -listen 127.0.0.1:19005 -upstream http://127.0.0.1:19000 >"$work/fast.log" 2>&1 & fast_pid=$!; pids+=($fast_pid)

mkdir -p "$work/nginx"
cat >"$work/nginx/nginx.conf" <<NGINX
worker_processes 1;
worker_cpu_affinity $(printf '1%0*d' "$PROXY_CORE" 0);
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
taskset -c "$PROXY_CORE" "$NGINX" -p "$work/nginx" -c "$work/nginx/nginx.conf" & nginx_pid=$!; pids+=($nginx_pid)

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
full_headers=(-H "X-API-Key: $api_key" -H "Authorization: Bearer $jwt" -H "Origin: https://shop.example"
	-H "User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:140.0) Gecko/20100101 Firefox/140.0" -H "Accept: application/json")

wait_up() { # wait_up PORT [curl args]
	local port=$1
	shift
	for _ in $(seq 150); do
		curl -fsS -o /dev/null "$@" "http://127.0.0.1:$port$PATH_UNDER_TEST" 2>/dev/null && return
		sleep 0.2
	done
	echo "nothing answers on port $port; the logs:" >&2
	tail -n 5 "$work"/*.log >&2
	exit 1
}
wait_up 19000
wait_up 19009 # NATS and the stream are up once up's proxy answers
on_proxy_core bin/apiguard proxy --nats "$NATS_URL" --listen 127.0.0.1:19002 --upstream http://127.0.0.1:19000 \
	--spool-dir "$work/spool-default" --log-level info --metrics-listen off --admin-listen off \
	>"$work/apiguard.out" 2>"$work/apiguard.log" & apiguard_pid=$!; pids+=($apiguard_pid)
printf 'proxy:\n  engine: net/http\n' >"$work/nethttp.yaml"
on_proxy_core bin/apiguard proxy --config "$work/nethttp.yaml" --nats "$NATS_URL" --listen 127.0.0.1:19006 --upstream http://127.0.0.1:19000 \
	--spool-dir "$work/spool-nethttp" --log-level info --metrics-listen off --admin-listen off \
	>"$work/nethttp.out" 2>"$work/nethttp.log" & nethttp_pid=$!; pids+=($nethttp_pid)
on_proxy_core bin/apiguard proxy --config "$work/full.yaml" --nats "$NATS_URL" --listen 127.0.0.1:19004 \
	--upstream http://127.0.0.1:19000 --spool-dir "$work/spool-full" --log-level info --metrics-listen off --admin-listen off \
	>"$work/full.out" 2>"$work/full.log" & full_pid=$!; pids+=($full_pid)
wait_up 19001
wait_up 19003
wait_up 19005
wait_up 19002 "${full_headers[@]}"
wait_up 19006
wait_up 19004 "${full_headers[@]}"
status=$(curl -s -o /dev/null -w '%{http_code}' "${full_headers[@]}" "http://127.0.0.1:19004$PATH_UNDER_TEST")
[ "$status" = 200 ] || { echo "full chain answers $status, not 200: see $work/full.log" >&2; cat "$work/full.log" >&2; exit 1; }
status=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:19004$PATH_UNDER_TEST")
[ "$status" = 401 ] || { echo "full chain without credentials answers $status, not 401" >&2; exit 1; }

# cpu_ticks PID…: utime+stime of the processes and their threads, in clock ticks.
cpu_ticks() {
	local t=0 p
	for p in "$@"; do
		t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat")))
	done
	echo "$t"
}
pids_of() { # the processes that do the work of a target
	case $1 in
	nginx) echo "$nginx_pid $(pgrep -P "$nginx_pid" | tr '\n' ' ')" ;;
	bare) echo "$bare_pid" ;;
	fast) echo "$fast_pid" ;;
	apiguard) echo "$apiguard_pid" ;;
	nethttp) echo "$nethttp_pid" ;;
	full) echo "$full_pid" ;;
	esac
}
port_of() { case $1 in nginx) echo 19003 ;; bare) echo 19001 ;; fast) echo 19005 ;; apiguard) echo 19002 ;; nethttp) echo 19006 ;; full) echo 19004 ;; esac; }
HZ=$(getconf CLK_TCK)

# run NAME: prints "NAME rps cpu_us_per_request p99_ms"
run() {
	local name=$1 port out t0 t1 rps n p99
	port=$(port_of "$name")
	local hdr=()
	[ "$name" = full ] && hdr=("${full_headers[@]}")
	# shellcheck disable=SC2046
	t0=$(cpu_ticks $(pids_of "$name"))
	out=$(on_load_core wrk -t1 -c"$CONNS" -d"$DUR" --latency "${hdr[@]}" "http://127.0.0.1:$port$PATH_UNDER_TEST")
	# shellcheck disable=SC2046
	t1=$(cpu_ticks $(pids_of "$name"))
	rps=$(awk '/^Requests\/sec:/ {print $2}' <<<"$out")
	n=$(awk '/requests in/ {print $1}' <<<"$out")
	p99=$(awk '$1=="99%" {print $2}' <<<"$out")
	if grep -q 'Non-2xx' <<<"$out"; then echo "$name: wrk saw non-2xx answers" >&2; fi
	awk -v name="$name" -v rps="$rps" -v n="$n" -v dt=$((t1 - t0)) -v hz="$HZ" -v p99="$p99" 'BEGIN {
		v = p99; if (v ~ /us$/) { sub(/us$/, "", v); v /= 1000 } else if (v ~ /ms$/) { sub(/ms$/, "", v) } else if (v ~ /s$/) { sub(/s$/, "", v); v *= 1000 }
		printf "%s %.0f %.1f %.3f\n", name, rps, dt * 1e6 / hz / n, v }'
}

# Warm each target, then the interleaved rounds.
for t in nginx bare fast apiguard nethttp full; do
	hdr=()
	[ "$t" = full ] && hdr=("${full_headers[@]}")
	(on_load_core wrk -t1 -c8 -d2s "${hdr[@]}" "http://127.0.0.1:$(port_of "$t")$PATH_UNDER_TEST" >/dev/null)
done
results=""
for r in $(seq "$ROUNDS"); do
	for t in nginx bare fast apiguard nethttp full; do
		results+="$r $(run "$t")"$'\n'
	done
done

# Open loop at half of full's saturation (median of the rounds).
half=$(awk '$2=="full" {print $3}' <<<"$results" | sort -n |
	awk -v f="${RATE_FRACTION:-0.5}" '{v[++n]=$1} END {printf "%d", v[int((n+1)/2)]*f}')
lat_nginx=$(on_load_core bin/ratedload -url "http://127.0.0.1:19003$PATH_UNDER_TEST" -rate "$half" -d "$DUR")
lat_apiguard=$(on_load_core bin/ratedload -url "http://127.0.0.1:19002$PATH_UNDER_TEST" -rate "$half" -d "$DUR")
lat_full=$(on_load_core bin/ratedload -url "http://127.0.0.1:19004$PATH_UNDER_TEST" -rate "$half" -d "$DUR" \
	-H "X-API-Key: $api_key" -H "Authorization: Bearer $jwt" -H "Origin: https://shop.example" \
	-H "User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:140.0) Gecko/20100101 Firefox/140.0" -H "Accept: application/json")

kill -TERM "$apiguard_pid" "$nethttp_pid" "$full_pid"
wait "$apiguard_pid" "$nethttp_pid" "$full_pid" 2>/dev/null || true
served() { grep -o 'msg="proxy stopped" component=proxy requests=[0-9]*' "$1" | tail -1 | sed 's/.*requests=//'; }
published() { grep -o 'published=[0-9]*' "$1" | tail -1 | cut -d= -f2; }

echo "pinned: proxies on core $PROXY_CORE (GOMAXPROCS=1; nginx one worker), wrk -t1 -c$CONNS -d$DUR, upstream and NATS on core $LOAD_CORE; $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"
awk '
	BEGIN { printf "%-5s %-9s %10s %12s %9s %10s %10s\n", "round", "target", "req/s", "CPU us/req", "p99 ms", "rps/nginx", "cpu/nginx" }
	NF < 5 { next }
	$2=="nginx" { nr[$1]=$3; nc[$1]=$4 }
	{ printf "%-5s %-9s %10.0f %12.1f %9.3f %9.2fx %9.2fx\n", $1, $2, $3, $4, $5, $3/nr[$1], $4/nc[$1]
	  rr[$2] = rr[$2] sprintf(" %.2f", $3/nr[$1]); cr[$2] = cr[$2] sprintf(" %.2f", $4/nc[$1]) }
	END {
		print "ratios to nginx per round (req/s; CPU per request):"
		split("bare fast apiguard nethttp full", ts, " ")
		for (i = 1; i <= 5; i++) printf "  %-9s req/s%s;  CPU%s\n", ts[i], rr[ts[i]], cr[ts[i]]
		print "targets: full >= 0.75x nginx req/s and <= 1.33x its CPU/request; default (apiguard) >= 0.9x req/s"
	}' <<<"$results"
echo "apiguard events published: $(published "$work/apiguard.log") of $(served "$work/apiguard.log") requests; full: $(published "$work/full.log") of $(served "$work/full.log")"
echo "open loop at $half req/s (${RATE_FRACTION:-0.5} of full's saturation), $DUR:"
awk -v n="$lat_nginx" -v a="$lat_apiguard" -v f="$lat_full" 'BEGIN {
	split(n, x, " "); split(a, y, " "); split(f, z, " ")
	printf "%-9s %9s %9s %7s %14s\n", "target", "p50 ms", "p99 ms", "errors", "p99 over nginx"
	printf "%-9s %9.3f %9.3f %7d\n", "nginx", x[1], x[2], x[3]
	printf "%-9s %9.3f %9.3f %7d %13.3f\n", "apiguard", y[1], y[2], y[3], y[2]-x[2]
	printf "%-9s %9.3f %9.3f %7d %13.3f\n", "full", z[1], z[2], z[3], z[2]-x[2]
	print "target: full adds <= 1 ms at p99 over nginx" }'
