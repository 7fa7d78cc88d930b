package plugin

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/grafana/grafana-plugin-sdk-go/backend"
	"github.com/grafana/grafana-plugin-sdk-go/data"

	"github.com/apiguard/apiguard/detectors"
	"github.com/apiguard/apiguard/internal/testutil"
)

// hour is the fixture's range: t0 to the end of its hour.
var hourFrom, hourTo = hourStart, hourStart.Add(time.Hour - time.Second)

// TestQueries runs every query type against a real ClickHouse filled by
// the sink's writer with the fixture, and checks frames, field names,
// types and values.
func TestQueries(t *testing.T) {
	ch := testutil.StartClickHouse(t)
	c, fx := fillClickHouse(t, ch, queryDatabase("queries"))
	q := NewQueries(c.Conn(), c.Database())
	run := func(t *testing.T, dq backend.DataQuery) data.Frames {
		t.Helper()
		resp := q.Handle(context.Background(), backend.PluginContext{}, dq)
		if resp.Error != nil {
			t.Fatalf("%s: %v (status %d)", dq.QueryType, resp.Error, resp.Status)
		}
		for _, f := range resp.Frames {
			if f.RefID != dq.RefID {
				t.Errorf("frame %s has refId %q, want %q", f.Name, f.RefID, dq.RefID)
			}
			if _, err := f.RowLen(); err != nil {
				t.Errorf("frame %s: %v", f.Name, err)
			}
		}
		return resp.Frames
	}

	t.Run("traffic by API from the rollup", func(t *testing.T) {
		frames := run(t, typedQuery(QueryTypeSeries, `{"groupBy":"api"}`, hourFrom, hourTo, 10*time.Minute))
		got := seriesByLabel(t, frames, "api")
		wantOrders := []uint64{20, 20, 20, 20, 20, 20}
		if !reflect.DeepEqual(got[apiOrders], wantOrders) {
			t.Errorf("orders per 10 min = %v, want %v", got[apiOrders], wantOrders)
		}
		if !reflect.DeepEqual(got[apiLogin], []uint64{10, 10, 10, 10, 10, 10}) {
			t.Errorf("logins per 10 min = %v", got[apiLogin])
		}
		f := frames[0]
		if f.Meta == nil || f.Meta.Type != data.FrameTypeTimeSeriesMulti {
			t.Errorf("frame type %v, want timeseries-multi", f.Meta)
		}
		if f.Fields[0].Name != "time" || f.Fields[0].Type() != data.FieldTypeTime || f.Fields[1].Name != MetricRequests || f.Fields[1].Type() != data.FieldTypeUint64 {
			t.Errorf("fields %s %s, %s %s", f.Fields[0].Name, f.Fields[0].Type(), f.Fields[1].Name, f.Fields[1].Type())
		}
		if tm := f.Fields[0].At(1).(time.Time); !tm.Equal(hourStart.Add(10 * time.Minute)) {
			t.Errorf("second bucket at %s, want %s", tm, hourStart.Add(10*time.Minute))
		}
	})

	t.Run("traffic by decision from the events", func(t *testing.T) {
		// 45 s is not a whole number of minutes: the events are counted.
		frames := run(t, typedQuery(QueryTypeSeries, `{"groupBy":"decision","api":"POST /login"}`, hourFrom, hourTo, 45*time.Second))
		got := seriesByLabel(t, frames, "decision")
		if s := total(got["allow"]); s != 40 {
			t.Errorf("allowed logins %d, want 40", s)
		}
		if s := total(got["block"]); s != 20 {
			t.Errorf("blocked logins %d, want 20", s)
		}
		if n := len(got["allow"]); n != 80 {
			t.Errorf("%d buckets of 45 s in the hour, want 80", n)
		}
	})

	t.Run("traffic server errors, api and decision", func(t *testing.T) {
		frames := run(t, typedQuery(QueryTypeSeries, `{"metric":"server_errors","decisions":["allow"]}`, hourFrom, hourTo, time.Minute))
		var errs uint64
		for _, f := range frames {
			if f.Fields[1].Labels["api"] == apiOrders && f.Fields[1].Labels["decision"] == "allow" {
				errs += total(f.Fields[1])
			}
			if f.Fields[1].Config == nil || f.Fields[1].Config.DisplayNameFromDS == "" {
				t.Errorf("series %v has no display name", f.Fields[1].Labels)
			}
		}
		if errs != 12 {
			t.Errorf("order 5xx = %d, want 12", errs)
		}
	})

	t.Run("series limited to the largest", func(t *testing.T) {
		frames := run(t, typedQuery(QueryTypeSeries, `{"groupBy":"api","limit":1}`, hourFrom, hourTo, 10*time.Minute))
		if len(frames) != 1 || frames[0].Fields[1].Labels["api"] != apiOrders {
			t.Fatalf("%d frames, first %v; want the orders series only", len(frames), frames[0].Fields[1].Labels)
		}
		if n := frames[0].Meta.Notices; len(n) != 1 || !strings.Contains(n[0].Text, "the 1 largest of 4 series") {
			t.Errorf("notices %v", n)
		}
	})

	t.Run("top principals by risk", func(t *testing.T) {
		f := run(t, typedQuery(QueryTypeTopPrincipals, ``, hourFrom, hourTo, time.Minute))[0]
		queryFields(t, f, map[string]data.FieldType{"kind": data.FieldTypeString, "principal": data.FieldTypeString,
			"risk": data.FieldTypeFloat64, "anomalies": data.FieldTypeUint64, "severity": data.FieldTypeString,
			"detectors": data.FieldTypeString, "first_seen": data.FieldTypeTime, "last_seen": data.FieldTypeTime})
		if f.Rows() != 2 {
			t.Fatalf("%d principals, want 2 (API anomalies are not principals)", f.Rows())
		}
		if p := frameField(f, "principal").At(0); p != ipStuffer {
			t.Errorf("riskiest %v, want %s", p, ipStuffer)
		}
		if s := frameField(f, "severity").At(0); s != "critical" {
			t.Errorf("severity %v, want critical", s)
		}
	})

	t.Run("top principals by anomalies", func(t *testing.T) {
		f := run(t, typedQuery(QueryTypeTopPrincipals, `{"orderBy":"anomalies","limit":1}`, hourFrom, hourTo, time.Minute))[0]
		if f.Rows() != 1 || frameField(f, "principal").At(0) != keyGood || frameField(f, "anomalies").At(0) != uint64(2) {
			t.Errorf("top by anomalies: %v", frameRows(f))
		}
		if d := frameField(f, "detectors").At(0); d != "volumetric" {
			t.Errorf("detectors %v", d)
		}
	})

	t.Run("anomaly list with explanations", func(t *testing.T) {
		f := run(t, typedQuery(QueryTypeAnomalies, `{"minSeverity":"high"}`, hourFrom, hourTo, time.Minute))[0]
		queryFields(t, f, map[string]data.FieldType{"time": data.FieldTypeTime, "anomaly_id": data.FieldTypeString,
			"detector": data.FieldTypeString, "score": data.FieldTypeFloat64, "severity": data.FieldTypeString,
			"summary": data.FieldTypeString, "explanation": data.FieldTypeString, "deviations": data.FieldTypeJSON})
		// high and critical, newest first: a1 (25m), a3 (20m), a5 (6m), a4 (5m).
		ids := fieldStrings(frameField(f, "anomaly_id"))
		if want := []string{fx.a1.Id, fx.a3.Id, fx.a5.Id, fx.a4.Id}; !reflect.DeepEqual(ids, want) {
			t.Fatalf("ids %v, want %v", ids, want)
		}
		if e := frameField(f, "explanation").At(0); e != "failure_ratio_10m 1 (normal 0.05, +12.3σ); failed_logins_10m 40 (normal 2)" {
			t.Errorf("explanation %q", e)
		}
		var devs []anomalyDeviation
		if err := json.Unmarshal(frameField(f, "deviations").At(0).(json.RawMessage), &devs); err != nil {
			t.Fatal(err)
		}
		if len(devs) != 2 || devs[1] != (anomalyDeviation{Feature: "failed_logins_10m", Observed: 40, Expected: 2}) {
			t.Errorf("deviations %+v", devs)
		}
	})

	t.Run("anomalies of one principal", func(t *testing.T) {
		f := run(t, typedQuery(QueryTypeAnomalies, `{"principalValue":"key:k-good","minScore":0.75}`, hourFrom, hourTo, time.Minute))[0]
		if ids := fieldStrings(frameField(f, "anomaly_id")); !reflect.DeepEqual(ids, []string{fx.a3.Id}) {
			t.Errorf("ids %v, want a3", ids)
		}
	})

	t.Run("anomaly detail with its events", func(t *testing.T) {
		frames := run(t, typedQuery(QueryTypeAnomalyDetail, fmt.Sprintf(`{"anomalyId":%q}`, fx.a1.Id), hourFrom, hourTo, time.Minute))
		if len(frames) != 3 || frames[0].Name != "anomaly" || frames[1].Name != "deviations" || frames[2].Name != "events" {
			t.Fatalf("frames %v", frameNames(frames))
		}
		if s := frameField(frames[0], "summary").At(0); s != fx.a1.Summary {
			t.Errorf("summary %v", s)
		}
		if got := frameRows(frames[1]); !reflect.DeepEqual(got, [][]any{{"failure_ratio_10m", 1.0, 0.05, 12.3}, {"failed_logins_10m", 40.0, 2.0, 0.0}}) {
			t.Errorf("deviations %v", got)
		}
		fixtureEvent := frames[2]
		queryFields(t, fixtureEvent, map[string]data.FieldType{"time": data.FieldTypeTime, "event_id": data.FieldTypeString,
			"status": data.FieldTypeUint16, "decision": data.FieldTypeString, "client_ip": data.FieldTypeString, "duration_us": data.FieldTypeUint32})
		if ids := fieldStrings(frameField(fixtureEvent, "event_id")); !reflect.DeepEqual(ids, fx.loginIDs[:3]) {
			t.Errorf("events %v, want %v", ids, fx.loginIDs[:3])
		}
		if ip := frameField(fixtureEvent, "client_ip").At(0); ip != ipStuffer {
			t.Errorf("client_ip %v", ip)
		}
	})

	t.Run("baselines against observed", func(t *testing.T) {
		// The range is the fixture's hour; the reference the hour before
		// and the one before that (only the earlier has orders).
		f := run(t, typedQuery(QueryTypeBaselines, `{"apis":["GET /orders/{id}"],"referenceHours":2}`, hourFrom, hourTo, time.Minute))[0]
		queryFields(t, f, map[string]data.FieldType{"api": data.FieldTypeString, "metric": data.FieldTypeString,
			"source": data.FieldTypeString, "observed": data.FieldTypeNullableFloat64, "expected": data.FieldTypeNullableFloat64,
			"ratio": data.FieldTypeNullableFloat64, "samples": data.FieldTypeUint64})
		rows := map[string][]any{}
		for i := range f.Rows() {
			r := f.RowCopy(i)
			rows[r[1].(string)+"/"+r[2].(string)] = r
		}
		check := func(key string, col int, want float64) {
			t.Helper()
			r, ok := rows[key]
			if !ok {
				t.Errorf("no row %s in %v", key, frameRows(f))
				return
			}
			got, _ := r[col].(*float64)
			if got == nil || *got < want-1e-9 || *got > want+1e-9 {
				t.Errorf("%s column %s = %v, want %g", key, f.Fields[col].Name, derefFloat(got), want)
			}
		}
		check(BaselineVolume+"/reference_2h", 3, 120)           // observed orders in the hour
		check(BaselineVolume+"/reference_2h", 4, 30)            // 60 in two hours, scaled to one
		check(BaselineRate+"/reference_2h", 3, 120.0/3600)      // per second
		check(BaselineServerError+"/reference_2h", 3, 12.0/120) // every tenth
		check(BaselineServerError+"/reference_2h", 4, 0)
		check(BaselineP99+"/reference_2h", 3, 2)
		check("requests_1m/volumetric", 4, 3)        // (2·100 + 4·100) / 200, latest snapshots
		check("requests_1m/volumetric", 5, 2)        // spread, weighted the same
		check("requests_1m/volumetric", 3, 2)        // k-good's orders in the last minute
		check("distinct_objects_10m/scraping", 3, 7) // /orders/0 … /orders/6
		if r := rows["requests_1m/volumetric"]; r != nil && (r[7] != uint64(200) || r[8] != uint64(15)) {
			t.Errorf("samples, principals = %v, %v, want 200, 15", r[7], r[8])
		}
	})

	t.Run("principal timeline series", func(t *testing.T) {
		frames := run(t, typedQuery(QueryTypePrincipalTimeline, `{"principalKind":"ip","principalValue":"203.0.113.9"}`, hourFrom, hourTo, 30*time.Minute))
		got := seriesByLabel(t, frames, "decision")
		if !reflect.DeepEqual(got["allow"], []uint64{30, 10}) || !reflect.DeepEqual(got["block"], []uint64{0, 20}) {
			t.Errorf("series %v", got)
		}
	})

	t.Run("principal timeline events", func(t *testing.T) {
		f := run(t, typedQuery(QueryTypePrincipalTimeline, `{"principalValue":"ip:203.0.113.9","view":"events"}`, hourFrom, hourTo, time.Minute))[0]
		queryFields(t, f, map[string]data.FieldType{"time": data.FieldTypeTime, "type": data.FieldTypeString,
			"api": data.FieldTypeString, "detail": data.FieldTypeString, "id": data.FieldTypeString})
		counts := map[string]int{}
		for _, v := range fieldStrings(frameField(f, "type")) {
			counts[v]++
		}
		if want := map[string]int{"anomaly": 1, "action": 1, "request_block": 20}; !reflect.DeepEqual(counts, want) {
			t.Errorf("types %v, want %v", counts, want)
		}
		times := frameField(f, "time")
		for i := 1; i < f.Rows(); i++ {
			if times.At(i).(time.Time).After(times.At(i - 1).(time.Time)) {
				t.Fatalf("not newest first at row %d", i)
			}
		}
		for i, ty := range fieldStrings(frameField(f, "type")) {
			if ty == "action" && !strings.HasPrefix(frameField(f, "detail").At(i).(string), "block for 600s by policy:default") {
				t.Errorf("action detail %q", frameField(f, "detail").At(i))
			}
		}
	})

	t.Run("principal timeline of a network", func(t *testing.T) {
		frames := run(t, typedQuery(QueryTypePrincipalTimeline, `{"principalKind":"cidr","principalValue":"203.0.113.0/24"}`, hourFrom, hourTo, time.Hour))
		got := seriesByLabel(t, frames, "decision")
		if total(got["allow"]) != 40 || total(got["block"]) != 20 {
			t.Errorf("series %v", got)
		}
	})

	t.Run("inventory", func(t *testing.T) {
		f := run(t, typedQuery(QueryTypeInventory, `{"declared":["GET /orders/{id}","POST /login"]}`, hourFrom, hourTo, time.Minute))[0]
		queryFields(t, f, map[string]data.FieldType{"api": data.FieldTypeString, "status": data.FieldTypeString,
			"source": data.FieldTypeString, "reports": data.FieldTypeUint64, "requests": data.FieldTypeUint64,
			"first_seen": data.FieldTypeTime, "summary": data.FieldTypeString})
		got := map[string]string{}
		for i := range f.Rows() {
			r := f.RowCopy(i)
			got[r[0].(string)] = fmt.Sprintf("%s %s reports=%d requests=%d principals=%d", r[1], r[2], r[3], r[4], r[5])
		}
		want := map[string]string{
			apiDebug:  "shadow detector reports=1 requests=5 principals=1",
			apiLegacy: "zombie detector reports=1 requests=0 principals=0",
			apiDelete: "undeclared schema reports=0 requests=3 principals=1",
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("inventory\n got %v\nwant %v", got, want)
		}
		f = run(t, typedQuery(QueryTypeInventory, `{"status":"zombie"}`, hourFrom, hourTo, time.Minute))[0]
		if apis := fieldStrings(frameField(f, "api")); !reflect.DeepEqual(apis, []string{apiLegacy}) {
			t.Errorf("zombies %v", apis)
		}
		// Without the declared list, served APIs count only when the
		// detector reported them.
		f = run(t, typedQuery(QueryTypeInventory, ``, hourFrom, hourTo, time.Minute))[0]
		if f.Rows() != 3 {
			t.Errorf("inventory without a declared list: %v", frameRows(f))
		}
	})

	t.Run("actions audit", func(t *testing.T) {
		f := run(t, typedQuery(QueryTypeAudit, ``, hourFrom, hourTo, time.Minute))[0]
		queryFields(t, f, map[string]data.FieldType{"time": data.FieldTypeTime, "action_id": data.FieldTypeString,
			"kind": data.FieldTypeString, "target": data.FieldTypeString, "ttl_seconds": data.FieldTypeInt64,
			"expires": data.FieldTypeTime, "actor": data.FieldTypeString, "dry_run": data.FieldTypeBool, "enforce_ms": data.FieldTypeFloat64})
		if ids := fieldStrings(frameField(f, "action_id")); !reflect.DeepEqual(ids, []string{fx.x1.Id, fx.x2.Id}) {
			t.Fatalf("ids %v", ids)
		}
		if e := frameField(f, "expires").At(0).(time.Time); !e.Equal(hourStart.Add(35*time.Minute + time.Second)) {
			t.Errorf("expires %s", e)
		}
		if ms := frameField(f, "enforce_ms").At(0); ms != 40.0 {
			t.Errorf("enforce_ms %v, want 40", ms)
		}
		if d := frameField(f, "dry_run").At(1); d != true {
			t.Errorf("dry_run %v", d)
		}
		f = run(t, typedQuery(QueryTypeAudit, `{"dryRun":"exclude","kinds":["block"],"principalKind":"ip","principalValue":"203.0.113.9"}`, hourFrom, hourTo, time.Minute))[0]
		if ids := fieldStrings(frameField(f, "action_id")); !reflect.DeepEqual(ids, []string{fx.x1.Id}) {
			t.Errorf("filtered ids %v", ids)
		}
		f = run(t, typedQuery(QueryTypeAudit, `{"actor":"grafana:alice"}`, hourFrom, hourTo, time.Minute))[0]
		if ids := fieldStrings(frameField(f, "action_id")); !reflect.DeepEqual(ids, []string{fx.x2.Id}) {
			t.Errorf("alice's ids %v", ids)
		}
	})

	t.Run("raw SQL with macros", func(t *testing.T) {
		sql := `SELECT intDiv(toUInt32(time), $__interval_s) * $__interval_s AS t, count() AS n
FROM ` + c.Database() + `.events WHERE $__timeFilter(time) AND api = 'POST /login' GROUP BY t ORDER BY t;`
		f := run(t, typedQuery(QueryTypeSQL, modelJSON(t, map[string]string{"rawSql": sql}), hourFrom, hourTo, 30*time.Minute))[0]
		if got := frameRows(f); !reflect.DeepEqual(got, [][]any{{uint64(hourStart.Unix()), uint64(30)}, {uint64(hourStart.Unix() + 1800), uint64(30)}}) {
			t.Errorf("rows %v", got)
		}
		if f.Meta == nil || strings.Contains(f.Meta.ExecutedQueryString, "$__") || strings.HasSuffix(f.Meta.ExecutedQueryString, ";") {
			t.Errorf("executed %q", f.Meta.ExecutedQueryString)
		}
	})

	t.Run("raw SQL types", func(t *testing.T) {
		sql := `SELECT toDateTime(0) AS t, 'x' AS s, toNullable(1.5) AS n, [1, 2] AS a, CAST('block' AS Enum8('allow' = 1, 'block' = 2)) AS e`
		f := run(t, typedQuery(QueryTypeSQL, modelJSON(t, map[string]string{"rawSql": sql}), hourFrom, hourTo, time.Minute))[0]
		queryFields(t, f, map[string]data.FieldType{"t": data.FieldTypeTime, "s": data.FieldTypeString,
			"n": data.FieldTypeNullableFloat64, "a": data.FieldTypeJSON, "e": data.FieldTypeString})
		r := f.RowCopy(0)
		if !r[0].(time.Time).Equal(time.Unix(0, 0)) || r[1] != "x" || *r[2].(*float64) != 1.5 || string(r[3].(json.RawMessage)) != "[1,2]" || r[4] != "block" {
			t.Errorf("row %v", r)
		}
	})

	t.Run("the read-only setting refuses writes", func(t *testing.T) {
		// What the SQL check would refuse, sent past it, with the
		// settings every raw query runs with.
		ctx := sqlContext(context.Background())
		err := c.Conn().Exec(ctx, "CREATE TABLE "+c.Database()+".x (a UInt8) ENGINE = Memory")
		if err == nil || !strings.Contains(strings.ToLower(err.Error()), "readonly") {
			t.Errorf("a CREATE with the raw query settings: %v, want refused as read-only", err)
		}
	})

	t.Run("variables", func(t *testing.T) {
		for _, tc := range []struct {
			model string
			want  []string
		}{
			{`{"variable":"api"}`, []string{apiDelete, apiDebug, apiOrders, apiLogin}},
			{`{"variable":"api","search":"ORDERS"}`, []string{apiOrders}},
			{`{"variable":"detector"}`, []string{"credential_stuffing", inventoryDetector, "volumetric"}},
			{`{"variable":"principal"}`, []string{"key:" + keyGood, "ip:" + ipStuffer, "ip:" + ipUndeclare}},
			{`{"variable":"principal","principalKind":"ip","limit":1}`, []string{ipStuffer}},
			{`{"variable":"principal","api":"GET /internal/debug"}`, []string{"key:" + keyGood}},
			{`{"variable":"detector","api":"POST /login"}`, []string{"credential_stuffing"}},
			{`{"variable":"principal","source":"anomalies"}`, []string{"key:" + keyGood, "ip:" + ipStuffer}},
		} {
			frames := run(t, typedQuery(QueryTypeVariable, tc.model, hourFrom, hourTo, time.Minute))
			f := frames[0]
			if len(frames) != 1 || len(f.Fields) != 1 || f.Fields[0].Type() != data.FieldTypeString {
				t.Fatalf("%s: want one frame of one string field, got %v", tc.model, frameRows(f))
			}
			if got := fieldStrings(f.Fields[0]); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("%s = %v, want %v", tc.model, got, tc.want)
			}
		}
	})

	t.Run("an unknown anomaly is not found", func(t *testing.T) {
		resp := q.Handle(context.Background(), backend.PluginContext{}, typedQuery(QueryTypeAnomalyDetail, `{"anomalyId":"nope"}`, hourFrom, hourTo, time.Minute))
		if resp.Error == nil || resp.Status != backend.StatusNotFound {
			t.Errorf("got %v, status %d, want 404", resp.Error, resp.Status)
		}
	})

	t.Run("ClickHouse's error on the analyst's SQL", func(t *testing.T) {
		resp := q.Handle(context.Background(), backend.PluginContext{}, typedQuery(QueryTypeSQL, `{"rawSql":"SELECT nosuchcolumn FROM system.one"}`, hourFrom, hourTo, time.Minute))
		if resp.Error == nil || resp.Status != backend.StatusBadRequest || !strings.Contains(resp.Error.Error(), "nosuchcolumn") {
			t.Errorf("got %v, status %d", resp.Error, resp.Status)
		}
	})

	t.Run("an empty range", func(t *testing.T) {
		from := hourStart.Add(-48 * time.Hour)
		for _, qt := range QueryTypeNames() {
			if qt == QueryTypeEnforcement {
				continue // the data source's, from the bucket
			}
			model := map[string]string{QueryTypeAnomalyDetail: `{"anomalyId":"` + fx.a1.Id + `"}`, QueryTypeSQL: `{"rawSql":"SELECT 1 AS one"}`,
				QueryTypeVariable: `{"variable":"api"}`, QueryTypePrincipalTimeline: `{"principalValue":"key:k-good","view":"events"}`}[qt]
			resp := q.Handle(context.Background(), backend.PluginContext{}, typedQuery(qt, model, from, from.Add(time.Hour), time.Minute))
			if resp.Error != nil {
				t.Errorf("%s over an empty range: %v", qt, resp.Error)
			}
		}
	})
}

// TestInventoryDetectorName keeps the name the inventory query reads
// equal to the detector's.
func TestInventoryDetectorName(t *testing.T) {
	if inventoryDetector != detectors.InventoryName {
		t.Errorf("inventoryDetector = %q, detectors.InventoryName = %q", inventoryDetector, detectors.InventoryName)
	}
}

func seriesByLabel(t *testing.T, frames data.Frames, label string) map[string][]uint64 {
	t.Helper()
	out := map[string][]uint64{}
	for _, f := range frames {
		if len(f.Fields) != 2 {
			t.Fatalf("series frame with %d fields", len(f.Fields))
		}
		vals := make([]uint64, f.Fields[1].Len())
		for i := range vals {
			vals[i] = f.Fields[1].At(i).(uint64)
		}
		out[f.Fields[1].Labels[label]] = vals
	}
	return out
}

func total(v any) uint64 {
	var s uint64
	switch v := v.(type) {
	case []uint64:
		for _, x := range v {
			s += x
		}
	case *data.Field:
		for i := range v.Len() {
			s += v.At(i).(uint64)
		}
	}
	return s
}

func queryFields(t *testing.T, f *data.Frame, want map[string]data.FieldType) {
	t.Helper()
	for name, ty := range want {
		fl := frameField(f, name)
		if fl == nil {
			t.Errorf("frame %s has no field %s", f.Name, name)
			continue
		}
		if fl.Type() != ty {
			t.Errorf("frame %s field %s is %s, want %s", f.Name, name, fl.Type(), ty)
		}
	}
}

func fieldStrings(f *data.Field) []string {
	out := make([]string, f.Len())
	for i := range out {
		out[i] = f.At(i).(string)
	}
	return out
}

func frameRows(f *data.Frame) [][]any {
	var out [][]any
	for i := range f.Rows() {
		out = append(out, f.RowCopy(i))
	}
	return out
}

func frameNames(frames data.Frames) []string {
	var out []string
	for _, f := range frames {
		out = append(out, f.Name)
	}
	return out
}

func derefFloat(p *float64) any {
	if p == nil {
		return nil
	}
	return *p
}

func modelJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
