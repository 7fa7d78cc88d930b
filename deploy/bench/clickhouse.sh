#!/usr/bin/env bash
# ClickHouse writer throughput: apiguard's writer (protobuf decode + columnar
# native insert, batches of 10,000) against clickhouse-client inserting the
# same rows from a TSV file, into identical tables (with the rollup view),
# on one local clickhouse-server, four runs alternating which goes first,
# each after background merges have finished. Prints rows/s
# and the ratio writer/client.
# Usage: [BATCH=rows-per-insert] deploy/bench/clickhouse.sh [rows]
set -euo pipefail
cd "$(dirname "$0")/../.."
ROWS=${1:-500000}
CH=$(command -v clickhouse-server || echo /usr/sbin/clickhouse-server)
[ -x "$CH" ] || { sudo apt-get install -y clickhouse-server clickhouse-client || apt-get install -y clickhouse-server clickhouse-client; }
work=$(mktemp -d)
port=$((20000 + RANDOM % 10000))
cat >"$work/config.xml" <<XML
<?xml version="1.0"?>
<yandex>
  <logger><level>warning</level><console>1</console></logger>
  <tcp_port>$port</tcp_port><http_port>$((port + 1))</http_port><listen_host>127.0.0.1</listen_host>
  <path>$work/data/</path><tmp_path>$work/tmp/</tmp_path><user_files_path>$work/uf/</user_files_path>
  <format_schema_path>$work/fs/</format_schema_path>
  <mark_cache_size>268435456</mark_cache_size><users_config>users.xml</users_config>
  <default_profile>default</default_profile><default_database>default</default_database><timezone>UTC</timezone>
</yandex>
XML
cat >"$work/users.xml" <<XML
<?xml version="1.0"?>
<yandex><profiles><default/></profiles>
<users><default><password></password><networks><ip>127.0.0.1</ip></networks><profile>default</profile><quota>default</quota></default></users>
<quotas><default/></quotas></yandex>
XML
"$CH" --config-file="$work/config.xml" >"$work/server.log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null; wait $server 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 100); do clickhouse-client --port $port -q 'SELECT 1' >/dev/null 2>&1 && break; sleep 0.2; done

go build -o "$work/chwriter" ./deploy/bench/chwriter
cols=$("$work/chwriter" -rows "$ROWS" -tsv "$work/rows.tsv")
echo "rows: $ROWS, TSV $(du -h "$work/rows.tsv" | cut -f1), server $(clickhouse-client --port $port -q 'SELECT version()')"
quiet() { # wait for background merges, so one side's parts do not slow the other
	for _ in $(seq 300); do
		[ "$(clickhouse-client --port $port -q 'SELECT count() FROM system.merges')" = 0 ] && return
		sleep 0.2
	done
}
run_writer() {
	quiet
	"$work/chwriter" -addr 127.0.0.1:$port -db bench_writer -rows "$ROWS" ${BATCH:+-batch $BATCH} | sed 's/.*= \([0-9]*\) rows\/s/\1/'
}
run_client() {
	quiet
	local start end
	start=$(date +%s.%N)
	clickhouse-client --port $port -q "INSERT INTO bench_client.events ($cols) FORMAT TabSeparated" <"$work/rows.tsv"
	end=$(date +%s.%N)
	echo "$ROWS / ($end - $start)" | bc -l
}
for run in 1 2 3 4; do
	for db in bench_writer bench_client; do
		clickhouse-client --port $port -q "DROP DATABASE IF EXISTS $db"
		"$work/chwriter" -addr 127.0.0.1:$port -db $db -migrate-only
	done
	if [ $((run % 2)) = 1 ]; then w=$(run_writer); c=$(run_client); else c=$(run_client); w=$(run_writer); fi
	nw=$(clickhouse-client --port $port -q "SELECT count() FROM bench_writer.events")
	nc=$(clickhouse-client --port $port -q "SELECT count() FROM bench_client.events")
	printf 'run %d: writer %.0f rows/s (%s rows), clickhouse-client %.0f rows/s (%s rows), ratio %.2f\n' \
		"$run" "$w" "$nw" "$c" "$nc" "$(echo "$w / $c" | bc -l)"
done
