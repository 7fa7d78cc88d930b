package plugin

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/grafana/grafana-plugin-sdk-go/backend"

	"github.com/apiguard/apiguard/internal/testutil"
	"github.com/apiguard/apiguard/sinks/clickhouse"
)

// benchEventsEnv sets the events of BenchmarkQueryData (3,000,000 by
// default).
const benchEventsEnv = "APIGUARD_BENCH_EVENTS"

// benchDay is the day the benchmark's rows fill.
var benchDay = time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC)

// BenchmarkQueryData measures Handle for each query type over a day of
// generated rows: events spread evenly over 24 hours on 20 APIs and 5,000
// principals (4,000 API keys, 1,000 addresses), 4% blocked, 1% throttled,
// 2% 5xx; 20,000 anomalies of 5 detectors; 2,000 actions; baseline
// snapshots every 5 minutes on 4 partitions. The rows are made by
// ClickHouse itself (INSERT … SELECT FROM system.numbers, through the
// migrations' schema and rollup view). Every query asks for the whole
// day, as a 24-hour dashboard does. It reports the median and 95th
// percentile latency of the iterations as ms-p50 and ms-p95.
//
//	go test -run '^$' -bench BenchmarkQueryData -benchtime 20x ./dashboards/plugin/
func BenchmarkQueryData(b *testing.B) {
	n := 3_000_000
	if s := os.Getenv(benchEventsEnv); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil || v < 10000 {
			b.Fatalf("%s=%q: want a number of events, at least 10000", benchEventsEnv, s)
		}
		n = v
	}
	ch := testutil.StartClickHouse(b)
	c := benchFill(b, ch, n)
	q := NewQueries(c.Conn(), c.Database())
	from, to := benchDay, benchDay.Add(24*time.Hour-time.Second)
	var anomalyID string
	if err := c.Conn().QueryRow(context.Background(), "SELECT anomaly_id FROM "+c.Database()+".anomalies WHERE detector = 'volumetric' ORDER BY time DESC LIMIT 1").Scan(&anomalyID); err != nil {
		b.Fatal(err)
	}
	declared := `["GET /api/v1/r0","POST /api/v1/r1","PUT /api/v1/r2","DELETE /api/v1/r3","GET /api/v1/r4","POST /api/v1/r5","PUT /api/v1/r6","DELETE /api/v1/r7","GET /api/v1/r8","POST /api/v1/r9","PUT /api/v1/r10","DELETE /api/v1/r11","GET /api/v1/r12","POST /api/v1/r13","PUT /api/v1/r14"]`
	for _, bc := range []struct {
		name, queryType, model string
		interval               time.Duration
	}{
		{"series/rollup_1m", QueryTypeSeries, `{}`, time.Minute},
		{"series/events_30s", QueryTypeSeries, `{"groupBy":"decision"}`, 30 * time.Second},
		{"top_principals", QueryTypeTopPrincipals, `{}`, time.Minute},
		{"anomalies", QueryTypeAnomalies, `{"limit":100}`, time.Minute},
		{"anomaly_detail", QueryTypeAnomalyDetail, `{"anomalyId":"` + anomalyID + `"}`, time.Minute},
		{"baselines", QueryTypeBaselines, `{}`, time.Minute},
		{"principal_timeline/series", QueryTypePrincipalTimeline, `{"principalValue":"key:key-17"}`, time.Minute},
		{"principal_timeline/events", QueryTypePrincipalTimeline, `{"principalValue":"ip:10.0.3.210","view":"events"}`, time.Minute},
		{"inventory", QueryTypeInventory, `{"declared":` + declared + `}`, time.Minute},
		{"audit", QueryTypeAudit, `{}`, time.Minute},
		{"sql", QueryTypeSQL, `{"rawSql":"SELECT api, count() AS requests FROM ` + c.Database() + `.events WHERE $__timeFilter(time) GROUP BY api ORDER BY requests DESC LIMIT 20"}`, time.Minute},
		{"variable/api", QueryTypeVariable, `{"variable":"api"}`, time.Minute},
		{"variable/principal", QueryTypeVariable, `{"variable":"principal"}`, time.Minute},
		{"variable/principal_anomalies", QueryTypeVariable, `{"variable":"principal","source":"anomalies"}`, time.Minute},
	} {
		b.Run(bc.name, func(b *testing.B) {
			dq := typedQuery(bc.queryType, bc.model, from, to, bc.interval)
			var took []time.Duration
			for b.Loop() {
				start := time.Now()
				resp := q.Handle(context.Background(), backend.PluginContext{}, dq)
				took = append(took, time.Since(start))
				if resp.Error != nil {
					b.Fatal(resp.Error)
				}
				if len(resp.Frames) == 0 {
					b.Fatal("no frames")
				}
			}
			slices.Sort(took)
			b.ReportMetric(ms(took[len(took)/2]), "ms-p50")
			b.ReportMetric(ms(took[(len(took)*95+99)/100-1]), "ms-p95")
		})
	}
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// benchFill migrates a database and fills it with n events and the rest
// (see BenchmarkQueryData).
func benchFill(b *testing.B, ch *testutil.ClickHouse, n int) *clickhouse.Client {
	b.Helper()
	ctx := context.Background()
	cfg := clickhouse.DefaultConfig()
	cfg.Addr, cfg.Database = []string{ch.Addr}, queryDatabase("bench")
	c, err := clickhouse.Open(ctx, cfg)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c.Close() })
	if _, err := c.Migrate(ctx, 0); err != nil {
		b.Fatal(err)
	}
	day := benchDay.Unix()
	db := c.Database()
	// Principal p of event k is (k·7919) mod 5000: keys below 4000,
	// addresses above.
	stmts := []string{
		fmt.Sprintf(`INSERT INTO %[1]s.events (time, time_unix_nano, event_id, proxy, api, method, host, path, status,
    request_bytes, response_bytes, duration_us, upstream_us, client_ip, user_agent, api_key_id, principal_kind, principal,
    decision, check_name, reason, stream_partition)
SELECT toDateTime(%[2]d + intDiv(number * 86400, %[3]d)) AS t, toInt64(t) * 1000000000 AS tn, hex(number) AS id, 'proxy-a',
    concat(arrayElement(['GET', 'POST', 'PUT', 'DELETE'], (number %% 20) %% 4 + 1), ' /api/v1/r', toString(number %% 20)) AS api,
    arrayElement(['GET', 'POST', 'PUT', 'DELETE'], (number %% 20) %% 4 + 1), 'shop.example', concat('/api/v1/r', toString(number %% 20), '/', toString(number %% 1000)),
    toUInt16(multiIf(number %% 50 = 0, 503, number %% 20 = 0, 404, 200)), toInt64(100), toInt64(2000 + number %% 5000),
    toUInt32(1000 + (number * 31) %% 50000), toUInt32(800), concat('10.0.', toString(intDiv((number * 7919) %% 5000, 256)), '.', toString((number * 7919) %% 256)),
    'curl/8.5', if((number * 7919) %% 5000 < 4000, concat('key-', toString((number * 7919) %% 5000)), ''),
    if((number * 7919) %% 5000 < 4000, 'key', 'ip'),
    if((number * 7919) %% 5000 < 4000, concat('key-', toString((number * 7919) %% 5000)), concat('10.0.', toString(intDiv((number * 7919) %% 5000, 256)), '.', toString((number * 7919) %% 256))),
    multiIf(number %% 25 = 0, 'block', number %% 100 = 1, 'throttle', 'allow'),
    multiIf(number %% 25 = 0, 'enforcement', number %% 100 = 1, 'ratelimit', ''), '', toUInt16((number * 7919) %% 5000 %% 4)
FROM system.numbers LIMIT %[3]d`, db, day, n),
		fmt.Sprintf(`INSERT INTO %[1]s.anomalies (time, time_unix_nano, anomaly_id, detector, api, principal_kind, principal, score, risk,
    severity, features, observed, expected, deviation, event_ids, summary)
SELECT toDateTime(%[2]d + intDiv(number * 86400, 20000)) AS t, toInt64(t) * 1000000000, concat('anomaly-', toString(number)),
    arrayElement(['volumetric', 'scraping', 'credential_stuffing', 'enumeration', 'shadow_api'], number %% 5 + 1) AS det,
    concat(arrayElement(['GET', 'POST', 'PUT', 'DELETE'], (number %% 20) %% 4 + 1), ' /api/v1/r', toString(number %% 20)) AS api,
    if(det = 'shadow_api', 'api', 'key'), if(det = 'shadow_api', api, concat('key-', toString(number %% 4000))),
    (number %% 100) / 100, (number %% 97) / 97, arrayElement(['low', 'medium', 'high', 'critical'], number %% 4 + 1),
    if(det = 'shadow_api', ['undeclared_operation'], ['requests_1m', 'response_kib_10m']),
    if(det = 'shadow_api', [1.], [40., 900.]), if(det = 'shadow_api', [0.], [4., 120.]), if(det = 'shadow_api', [0.], [9., 6.]),
    arrayMap(i -> hex(toUInt64(intDiv(number * %[3]d, 20000) + i)), range(20)), 'generated'
FROM system.numbers LIMIT 20000`, db, day, n),
		fmt.Sprintf(`INSERT INTO %[1]s.actions (time, time_unix_nano, action_id, kind, target_kind, target, ttl_seconds, reason, anomaly_id,
    actor, dry_run, trigger_unix_nano)
SELECT toDateTime(%[2]d + intDiv(number * 86400, 2000)) AS t, toInt64(t) * 1000000000 AS tn, concat('action-', toString(number)),
    arrayElement(['block', 'throttle', 'revoke', 'unblock'], number %% 4 + 1), 'key', concat('key-', toString(number %% 4000)),
    toInt64(600), 'generated', concat('anomaly-', toString(number * 10)), if(number %% 10 = 0, 'grafana:alice', 'policy:default'),
    toUInt8(number %% 7 = 0), tn - 30000000
FROM system.numbers LIMIT 2000`, db, day),
		fmt.Sprintf(`INSERT INTO %[1]s.baselines (time, detector, api, feature, centre, spread, samples, principals, stream_partition)
SELECT toDateTime(%[2]d + 300 * intDiv(number, 320)), if(number %% 4 < 3, 'volumetric', 'scraping'),
    concat(arrayElement(['GET', 'POST', 'PUT', 'DELETE'], (intDiv(number, 16) %% 20) %% 4 + 1), ' /api/v1/r', toString(intDiv(number, 16) %% 20)),
    arrayElement(['requests_1m', 'requests_10m', 'requests_1h', 'distinct_objects_10m'], number %% 4 + 1),
    toFloat64(number %% 4 + 2), 1., toUInt32(100), toUInt32(50), toUInt16(intDiv(number, 4) %% 4)
FROM system.numbers LIMIT %[3]d`, db, day, 288*320),
	}
	start := time.Now()
	for _, s := range stmts {
		if err := c.Conn().Exec(ctx, s); err != nil {
			b.Fatalf("filling the benchmark's tables: %v\n%s", err, s)
		}
	}
	b.Logf("%d events and the rest generated in %s", n, time.Since(start).Round(time.Millisecond))
	return c
}
