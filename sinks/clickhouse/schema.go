package clickhouse

import (
	"strings"

	"github.com/ClickHouse/clickhouse-go/v2"
)

// Migration is one versioned, idempotent step of the schema. Statements
// name their database as {db}; {retention_days} is the configured
// retention.
type Migration struct {
	Version int
	Name    string
	// MinMajor and MinMinor give the oldest server release the migration
	// needs. On an older server it is skipped and not recorded, so it is
	// applied by the first migrate run after an upgrade.
	MinMajor, MinMinor uint64
	// NeedsRetention marks a migration that only applies when
	// retention_days is set.
	NeedsRetention bool
	Statements     []string
}

// Enum values follow event.proto's enums, lower case, with their numbers.
const (
	decisionEnum = `Enum8('unspecified' = 0, 'allow' = 1, 'block' = 2, 'throttle' = 3, 'challenge' = 4, 'revoked' = 5)`
	authEnum     = `Enum8('unspecified' = 0, 'ok' = 1, 'missing' = 2, 'invalid' = 3, 'expired' = 4, 'revoked' = 5)`
	severityEnum = `Enum8('unspecified' = 0, 'low' = 1, 'medium' = 2, 'high' = 3, 'critical' = 4)`
	actionEnum   = `Enum8('unspecified' = 0, 'block' = 1, 'throttle' = 2, 'revoke' = 3, 'unblock' = 4)`
)

// columnExists reports the error of an ADD COLUMN that an interrupted
// migrate run already applied (18.16 has no ADD COLUMN IF NOT EXISTS):
// DUPLICATE_COLUMN (15), or ILLEGAL_COLUMN (44) "already exists" as 18.16
// says it.
func columnExists(exc *clickhouse.Exception) bool {
	return exc.Code == 15 || exc.Code == 44 && strings.Contains(exc.Message, "already exists")
}

// Migrations is the schema, oldest first. Never edit a released migration;
// add a new one.
//
// Table design, for the queries an analyst runs:
//   - events: partitioned by day (retention drops whole days), ordered by
//     (api, time, event_id) so per-API time ranges read contiguous data;
//     principal, IP and fingerprint filters scan one day's column, which
//     ClickHouse does at hundreds of millions of rows a second; servers
//     from 21.8 get bloom-filter skip indexes for them. ReplacingMergeTree
//     on the event id is a second guard against duplicates; the writer
//     already skips ids that are stored (see Writer).
//   - api_minute: per-minute, per-API, per-decision aggregates fed by a
//     materialized view on insert: requests, errors, bytes, latency
//     quantiles and distinct principals, read with the -Merge combinators.
//   - anomalies and actions: the audit trail, by month, ordered for "what
//     happened to this API / this principal".
//   - baselines: what each detector considered normal, snapshot by
//     snapshot, for explaining anomalies after the fact.
var Migrations = []Migration{
	{Version: 1, Name: "events", Statements: []string{`
CREATE TABLE IF NOT EXISTS {db}.events (
    date Date DEFAULT toDate(time),
    time DateTime,
    time_unix_nano Int64,
    event_id String,
    proxy String,
    api String,
    method String,
    host String,
    path String,
    query_names Array(String),
    status UInt16,
    request_bytes Int64,
    response_bytes Int64,
    duration_us UInt32,
    upstream_us UInt32,
    client_ip String,
    client_ip_num FixedString(16),
    forwarded_for Array(String),
    user_agent String,
    tls_fingerprint String,
    header_fingerprint String,
    api_key_id String,
    token_id String,
    token_hash String,
    subject String,
    session String,
    origin String,
    referer String,
    principal_kind String,
    principal String,
    decision ` + decisionEnum + `,
    check_name String,
    reason String,
    auth ` + authEnum + `,
    stream_partition UInt16
) ENGINE = ReplacingMergeTree()
PARTITION BY date
ORDER BY (api, time, event_id)`}},
	{Version: 2, Name: "api_minute rollup", Statements: []string{`
CREATE TABLE IF NOT EXISTS {db}.api_minute (
    minute DateTime,
    api String,
    decision ` + decisionEnum + `,
    requests AggregateFunction(count),
    server_errors AggregateFunction(sum, UInt64),
    client_errors AggregateFunction(sum, UInt64),
    request_bytes AggregateFunction(sum, Int64),
    response_bytes AggregateFunction(sum, Int64),
    duration_us AggregateFunction(quantiles(0.5, 0.9, 0.99), UInt32),
    principals AggregateFunction(uniq, String)
) ENGINE = AggregatingMergeTree()
PARTITION BY toDate(minute)
ORDER BY (api, minute, decision)`, `
CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.api_minute_mv TO {db}.api_minute AS
SELECT
    toStartOfMinute(time) AS minute,
    api,
    decision,
    countState() AS requests,
    sumState(toUInt64(status >= 500)) AS server_errors,
    sumState(toUInt64(status >= 400 AND status < 500)) AS client_errors,
    sumState(request_bytes) AS request_bytes,
    sumState(response_bytes) AS response_bytes,
    quantilesState(0.5, 0.9, 0.99)(duration_us) AS duration_us,
    uniqState(principal) AS principals
FROM {db}.events
GROUP BY minute, api, decision`}},
	{Version: 3, Name: "anomalies", Statements: []string{`
CREATE TABLE IF NOT EXISTS {db}.anomalies (
    date Date DEFAULT toDate(time),
    time DateTime,
    time_unix_nano Int64,
    anomaly_id String,
    detector String,
    api String,
    principal_kind String,
    principal String,
    score Float64,
    severity ` + severityEnum + `,
    features Array(String),
    observed Array(Float64),
    expected Array(Float64),
    deviation Array(Float64),
    event_ids Array(String),
    summary String
) ENGINE = ReplacingMergeTree()
PARTITION BY toYYYYMM(date)
ORDER BY (api, detector, time, anomaly_id)`}},
	{Version: 4, Name: "actions", Statements: []string{`
CREATE TABLE IF NOT EXISTS {db}.actions (
    date Date DEFAULT toDate(time),
    time DateTime,
    time_unix_nano Int64,
    action_id String,
    kind ` + actionEnum + `,
    target_kind String,
    target String,
    ttl_seconds Int64,
    reason String,
    anomaly_id String,
    actor String,
    dry_run UInt8,
    trigger_unix_nano Int64
) ENGINE = ReplacingMergeTree()
PARTITION BY toYYYYMM(date)
ORDER BY (target_kind, target, time, action_id)`}},
	{Version: 5, Name: "baselines", Statements: []string{`
CREATE TABLE IF NOT EXISTS {db}.baselines (
    date Date DEFAULT toDate(time),
    time DateTime,
    detector String,
    api String,
    feature String,
    centre Float64,
    spread Float64,
    samples UInt32,
    principals UInt32,
    stream_partition UInt16
) ENGINE = ReplacingMergeTree()
PARTITION BY toYYYYMM(date)
ORDER BY (api, detector, feature, stream_partition, time)`}},
	{Version: 6, Name: "retention", MinMajor: 21, MinMinor: 8, NeedsRetention: true, Statements: []string{
		`ALTER TABLE {db}.events MODIFY TTL date + toIntervalDay({retention_days})`,
		`ALTER TABLE {db}.api_minute MODIFY TTL toDate(minute) + toIntervalDay({retention_days})`,
		`ALTER TABLE {db}.baselines MODIFY TTL date + toIntervalDay({retention_days})`,
	}},
	{Version: 7, Name: "lookup indexes", MinMajor: 21, MinMinor: 8, Statements: []string{
		`ALTER TABLE {db}.events ADD INDEX IF NOT EXISTS idx_principal principal TYPE bloom_filter(0.01) GRANULARITY 4`,
		`ALTER TABLE {db}.events ADD INDEX IF NOT EXISTS idx_client_ip client_ip TYPE bloom_filter(0.01) GRANULARITY 4`,
		`ALTER TABLE {db}.events ADD INDEX IF NOT EXISTS idx_tls_fp tls_fingerprint TYPE bloom_filter(0.01) GRANULARITY 4`,
		`ALTER TABLE {db}.events ADD INDEX IF NOT EXISTS idx_header_fp header_fingerprint TYPE bloom_filter(0.01) GRANULARITY 4`,
	}},
	{Version: 8, Name: "events.tls_ja3", Statements: []string{
		`ALTER TABLE {db}.events ADD COLUMN tls_ja3 String DEFAULT '' AFTER tls_fingerprint`,
	}},
	{Version: 9, Name: "client fingerprint parts, account, risk", Statements: []string{
		`ALTER TABLE {db}.events ADD COLUMN accept_language String DEFAULT '' AFTER tls_ja3`,
		`ALTER TABLE {db}.events ADD COLUMN account String DEFAULT '' AFTER subject`,
		`ALTER TABLE {db}.anomalies ADD COLUMN risk Float64 DEFAULT 0 AFTER score`,
	}},
	{Version: 10, Name: "actions.kind allow and unallow", Statements: []string{
		`ALTER TABLE {db}.actions MODIFY COLUMN kind Enum8('unspecified' = 0, 'block' = 1, 'throttle' = 2, 'revoke' = 3, 'unblock' = 4, 'allow' = 5, 'unallow' = 6)`,
	}},
}
