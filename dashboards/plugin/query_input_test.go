package plugin

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/grafana/grafana-plugin-sdk-go/backend"
)

// TestBadInput checks that what a panel can send wrong is answered with
// a status and a message naming the problem, before ClickHouse is asked
// (the Queries here has no connection).
func TestBadInput(t *testing.T) {
	q := NewQueries(nil, "apiguard")
	for _, tc := range []struct {
		name, queryType, model string
		status                 backend.Status
		want                   string
	}{
		{"unknown type", "nope", `{}`, backend.StatusBadRequest, `unknown query type "nope", want one of anomalies, anomaly_detail, audit`},
		{"no type", "", `{}`, backend.StatusBadRequest, "unknown query type"},
		{"malformed JSON", QueryTypeSeries, `{"groupBy":`, backend.StatusBadRequest, "malformed query JSON"},
		{"wrong JSON type", QueryTypeTopPrincipals, `{"limit":"ten"}`, backend.StatusBadRequest, "limit: got a JSON string, want int"},
		{"group by", QueryTypeSeries, `{"groupBy":"host"}`, backend.StatusBadRequest, `groupBy: "host", want one of api_decision, api, decision, total`},
		{"metric", QueryTypeSeries, `{"metric":"bytes"}`, backend.StatusBadRequest, "metric"},
		{"decision", QueryTypeSeries, `{"decisions":["maybe"]}`, backend.StatusBadRequest, `decisions: "maybe"`},
		{"order", QueryTypeTopPrincipals, `{"orderBy":"name"}`, backend.StatusBadRequest, "orderBy"},
		{"limit", QueryTypeTopPrincipals, `{"limit":100000}`, backend.StatusBadRequest, "limit: 100000, want 1 to 1000"},
		{"severity", QueryTypeAnomalies, `{"minSeverity":"huge"}`, backend.StatusBadRequest, "minSeverity"},
		{"score", QueryTypeAnomalies, `{"minScore":2}`, backend.StatusBadRequest, "minScore: 2, want 0 to 1"},
		{"principal kind", QueryTypeAnomalies, `{"principalKind":"user","principalValue":"x"}`, backend.StatusBadRequest, `principalKind: "user" is not a principal kind, want one of ip, cidr, key, token, sub, fp`},
		{"principal without kind", QueryTypePrincipalTimeline, `{"principalValue":"alice"}`, backend.StatusBadRequest, "want principalKind and a value"},
		{"principal kind in value", QueryTypePrincipalTimeline, `{"principalValue":"user:alice"}`, backend.StatusBadRequest, `principalKind: "user"`},
		{"missing principal", QueryTypePrincipalTimeline, `{"principalKind":"ip"}`, backend.StatusBadRequest, "principalValue: required"},
		{"bad ip", QueryTypePrincipalTimeline, `{"principalKind":"ip","principalValue":"10.0.0.300"}`, backend.StatusBadRequest, "not an IP address"},
		{"bad cidr", QueryTypeAudit, `{"principalKind":"cidr","principalValue":"10.0.0.0/33"}`, backend.StatusBadRequest, "not a CIDR prefix"},
		{"view", QueryTypePrincipalTimeline, `{"principalValue":"ip:10.0.0.1","view":"graph"}`, backend.StatusBadRequest, "view"},
		{"missing anomaly id", QueryTypeAnomalyDetail, `{}`, backend.StatusBadRequest, "anomalyId: required"},
		{"event limit", QueryTypeAnomalyDetail, `{"anomalyId":"a","eventLimit":10000}`, backend.StatusBadRequest, "eventLimit: 10000, want 1 to 5000"},
		{"long list", QueryTypeSeries, `{"apis":["` + strings.Repeat("x", 1000) + strings.Repeat(`","`+strings.Repeat("x", 1000), 99) + `"]}`, backend.StatusBadRequest, "apis: 100000 bytes in all, at most 65536"},
		{"reference", QueryTypeBaselines, `{"referenceHours":-1}`, backend.StatusBadRequest, "referenceHours"},
		{"inventory status", QueryTypeInventory, `{"status":"ghost"}`, backend.StatusBadRequest, "status"},
		{"action kind", QueryTypeAudit, `{"kinds":["ban"]}`, backend.StatusBadRequest, `kinds: "ban"`},
		{"dry run", QueryTypeAudit, `{"dryRun":"maybe"}`, backend.StatusBadRequest, "dryRun"},
		{"variable", QueryTypeVariable, `{"variable":"host"}`, backend.StatusBadRequest, `variable: "host", want one of api, principal, detector`},
		{"variable source", QueryTypeVariable, `{"variable":"principal","source":"logs"}`, backend.StatusBadRequest, "source"},
		{"variable kind", QueryTypeVariable, `{"variable":"principal","principalKind":"user"}`, backend.StatusBadRequest, "principalKind"},
		{"empty SQL", QueryTypeSQL, `{"rawSql":"  "}`, backend.StatusBadRequest, "rawSql: required"},
		{"two statements", QueryTypeSQL, `{"rawSql":"SELECT 1; SELECT 2"}`, backend.StatusBadRequest, "one statement only"},
		{"insert", QueryTypeSQL, `{"rawSql":"INSERT INTO t SELECT 1"}`, backend.StatusBadRequest, "must be a SELECT statement"},
		{"drop after select", QueryTypeSQL, `{"rawSql":"SELECT 1;\nDROP TABLE apiguard.events"}`, backend.StatusBadRequest, "one statement only"},
		{"unknown macro", QueryTypeSQL, `{"rawSql":"SELECT $__timeGroup(time)"}`, backend.StatusBadRequest, "unknown macro $__timeGroup"},
		{"empty time filter", QueryTypeSQL, `{"rawSql":"SELECT 1 WHERE $__timeFilter( )"}`, backend.StatusBadRequest, "needs a column"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp := q.Handle(context.Background(), backend.PluginContext{}, typedQuery(tc.queryType, tc.model, hourFrom, hourTo, time.Minute))
			if resp.Error == nil {
				t.Fatalf("no error, frames %v", resp.Frames)
			}
			if resp.Status != tc.status || !strings.Contains(resp.Error.Error(), tc.want) {
				t.Errorf("status %d, error %q; want %d and %q", resp.Status, resp.Error, tc.status, tc.want)
			}
			if resp.Frames != nil {
				t.Errorf("frames with an error: %v", resp.Frames)
			}
		})
	}
}

// TestBadDatabaseName: the database comes from the data source's
// settings and is written into the SQL, so only a plain name is used.
func TestBadDatabaseName(t *testing.T) {
	q := NewQueries(nil, "apiguard; DROP TABLE x")
	resp := q.Handle(context.Background(), backend.PluginContext{}, typedQuery(QueryTypeSeries, "", hourFrom, hourTo, time.Minute))
	if resp.Error == nil || resp.Status != backend.StatusBadRequest || !strings.Contains(resp.Error.Error(), "database") {
		t.Errorf("got %v, status %d", resp.Error, resp.Status)
	}
}

// TestPanicIsAnError: a bug in a handler is answered, not a crash of the
// plugin. A Queries without a connection panics on its first query.
func TestPanicIsAnError(t *testing.T) {
	q := NewQueries(nil, "apiguard")
	resp := q.Handle(context.Background(), backend.PluginContext{}, typedQuery(QueryTypeSeries, "", hourFrom, hourTo, time.Minute))
	if resp.Error == nil || resp.Status != backend.StatusInternal || !strings.Contains(resp.Error.Error(), "internal error") {
		t.Errorf("got %v, status %d", resp.Error, resp.Status)
	}
}

func TestCheckSelect(t *testing.T) {
	for _, tc := range []struct {
		sql, want, err string
	}{
		{"SELECT 1", "SELECT 1", ""},
		{"  select count() from apiguard.events ; ", "  select count() from apiguard.events ", ""},
		{"WITH 2 AS x SELECT x", "WITH 2 AS x SELECT x", ""},
		{"SELECT 'DROP TABLE x; INSERT' AS s", "SELECT 'DROP TABLE x; INSERT' AS s", ""},
		{"SELECT 1 -- ; DROP TABLE x", "SELECT 1 -- ; DROP TABLE x", ""},
		{"SELECT 1 /* ; DROP */", "SELECT 1 /* ; DROP */", ""},
		{"SELECT `drop`, \"set\" FROM t", "SELECT `drop`, \"set\" FROM t", ""},
		{"SELECT 'it''s', 'a\\'b'", "SELECT 'it''s', 'a\\'b'", ""},
		{"SELECT replace(path, 'a', 'b'), check_name FROM system.one", "SELECT replace(path, 'a', 'b'), check_name FROM system.one", ""},
		{"SELECT format('{}', 1)", "SELECT format('{}', 1)", ""},
		{"", "", "no statement"},
		{"-- only a comment", "", "no statement"},
		{"SELECT 1; SELECT 2", "", "one statement only"},
		{"SELECT 1;;", "", "one statement only"},
		{"SELECT 'a\\'; DROP TABLE x; SELECT '", "SELECT 'a\\'; DROP TABLE x; SELECT '", ""},
		{"SELECT 'unterminated", "", "not closed"},
		{"SELECT 1 /* unterminated", "", "not closed"},
		{"INSERT INTO t VALUES (1)", "", "must be a SELECT"},
		{"ALTER TABLE t DELETE WHERE 1", "", "must be a SELECT"},
		{"(SELECT 1)", "", "must be a SELECT"},
		{"SYSTEM SHUTDOWN", "", "must be a SELECT"},
		{"SET readonly = 0", "", "must be a SELECT"},
		{"SELECT 1 SETTINGS readonly = 0", "", "SETTINGS is not allowed"},
		{"SELECT 1 INTO OUTFILE '/tmp/x'", "", "INTO is not allowed"},
		{"SELECT 1 FORMAT JSON", "", "FORMAT clause"},
		{"SELECT * FROM url('http://x', CSV, 'a String')", "", "table function url"},
		{"SELECT * FROM remote('10.0.0.1', system.one)", "", "table function remote"},
		{"SELECT * FROM file('/etc/passwd', CSV, 'a String')", "", "table function file"},
		{"SELECT 1 # ; DROP", "SELECT 1 # ; DROP", ""},
	} {
		got, err := checkSelect(tc.sql)
		switch {
		case tc.err == "" && err != nil:
			t.Errorf("%q: %v", tc.sql, err)
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("%q: error %v, want %q", tc.sql, err, tc.err)
		case tc.err == "" && got != tc.want:
			t.Errorf("%q: got %q, want %q", tc.sql, got, tc.want)
		}
	}
}

func TestExpandMacros(t *testing.T) {
	r := &queryRequest{from: 1000, to: 4599, step: 60}
	got, err := expandMacros("SELECT intDiv(toUInt32(t), $__interval_s) FROM e WHERE $__timeFilter( t ) AND x > $__timeFrom AND x < $__timeTo", r)
	want := "SELECT intDiv(toUInt32(t), 60) FROM e WHERE t BETWEEN toDateTime(1000) AND toDateTime(4599) AND x > toDateTime(1000) AND x < toDateTime(4599)"
	if err != nil || got != want {
		t.Errorf("got %q, %v\nwant %q", got, err, want)
	}
}

func TestQueryRequestStep(t *testing.T) {
	from := time.Unix(0, 0)
	for _, tc := range []struct {
		span, interval time.Duration
		want           int64
	}{
		{time.Hour, time.Minute, 60},
		{time.Hour, 0, 1},
		{time.Hour, 500 * time.Millisecond, 1},
		{30 * 24 * time.Hour, time.Second, 236}, // at most maxBuckets points
	} {
		r := newQueryRequest(backend.DataQuery{Interval: tc.interval, TimeRange: backend.TimeRange{From: from, To: from.Add(tc.span)}})
		if r.step != tc.want {
			t.Errorf("span %s, interval %s: step %d, want %d", tc.span, tc.interval, r.step, tc.want)
		}
	}
}

func TestQueryTypeNames(t *testing.T) {
	want := []string{QueryTypeAnomalies, QueryTypeAnomalyDetail, QueryTypeAudit, QueryTypeBaselines, QueryTypeEnforcement, QueryTypeInventory,
		QueryTypePrincipalTimeline, QueryTypeSeries, QueryTypeSQL, QueryTypeTopPrincipals, QueryTypeVariable}
	if got := QueryTypeNames(); strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("QueryTypeNames() = %v, want %v", got, want)
	}
}
