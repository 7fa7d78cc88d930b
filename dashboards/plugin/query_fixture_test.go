package plugin

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/grafana/grafana-plugin-sdk-go/backend"

	"github.com/apiguard/apiguard/event"
	"github.com/apiguard/apiguard/internal/testutil"
	"github.com/apiguard/apiguard/sinks/clickhouse"
)

// hourStart is the start of the fixture's hour; the reference traffic is the
// hour two hours before.
var hourStart = time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)

// Fixture principals and APIs.
const (
	apiOrders   = "GET /orders/{id}"
	apiLogin    = "POST /login"
	apiDebug    = "GET /internal/debug"
	apiLegacy   = "GET /v1/legacy"
	apiDelete   = "DELETE /users/{id}"
	keyGood     = "k-good"
	ipStuffer   = "203.0.113.9"
	ipUndeclare = "198.51.100.4"
)

// queryFixture is what the fixture stored, for the tests' expectations.
type queryFixture struct {
	loginIDs           []string // the login events, in time order
	a1, a2, a3, a4, a5 *event.Anomaly
	x1, x2             *event.Action
}

func fixtureEvent(ts time.Time, api, path string, status uint32, dec event.Decision) *event.RequestEvent {
	method, _, _ := strings.Cut(api, " ")
	return &event.RequestEvent{Schema: event.SchemaVersion, Id: event.NewID(ts), TimeUnixNano: ts.UnixNano(),
		Proxy: "proxy-a", Api: api, Method: method, Host: "shop.example", Path: path, Status: status, Decision: dec,
		DurationNanos: int64(2 * time.Millisecond), ResponseBytes: 2048, UserAgent: "curl/8.5"}
}

// fillClickHouse migrates a fresh database on ch and stores the fixture's events,
// anomalies, actions and baselines through the ClickHouse sink's writer.
func fillClickHouse(t testing.TB, ch *testutil.ClickHouse, db string) (*clickhouse.Client, *queryFixture) {
	t.Helper()
	ctx := context.Background()
	cfg := clickhouse.DefaultConfig()
	cfg.Addr, cfg.Database = []string{ch.Addr}, db
	c, err := clickhouse.Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if _, err := c.Migrate(ctx, 0); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	w := clickhouse.NewWriter(c)
	fx := &queryFixture{}
	var evs []event.Message
	// GET /orders/{id}: k-good every 30 s, every tenth a 503.
	for i := range 120 {
		e := fixtureEvent(hourStart.Add(time.Duration(i)*30*time.Second), apiOrders, fmt.Sprintf("/orders/%d", i%7), 200, event.Decision_DECISION_ALLOW)
		if i%10 == 9 {
			e.Status = 503
		}
		e.ApiKeyId = keyGood
		evs = append(evs, e)
	}
	// The hour two hours before: one order a minute, 2xx only.
	for i := range 60 {
		e := fixtureEvent(hourStart.Add(-2*time.Hour+time.Duration(i)*time.Minute), apiOrders, "/orders/1", 200, event.Decision_DECISION_ALLOW)
		e.ApiKeyId = keyGood
		evs = append(evs, e)
	}
	// POST /login: a stuffer, one a minute, 40 failing, then 20 blocked.
	for i := range 60 {
		e := fixtureEvent(hourStart.Add(time.Duration(i)*time.Minute+time.Second), apiLogin, "/login", 401, event.Decision_DECISION_ALLOW)
		if i >= 40 {
			e.Status, e.Decision, e.Check, e.Reason = 403, event.Decision_DECISION_BLOCK, "enforcement", "block ip "+ipStuffer
		}
		e.ClientIp = event.ClientIPBytes(netip.MustParseAddr(ipStuffer))
		fx.loginIDs = append(fx.loginIDs, e.Id)
		evs = append(evs, e)
	}
	// A shadow API, served to k-good.
	for i := range 5 {
		e := fixtureEvent(hourStart.Add(5*time.Minute+time.Duration(i)*time.Second), apiDebug, "/internal/debug", 200, event.Decision_DECISION_ALLOW)
		e.ApiKeyId = keyGood
		evs = append(evs, e)
	}
	// Requests refused as undeclared operations.
	for i := range 3 {
		e := fixtureEvent(hourStart.Add(30*time.Minute+time.Duration(i)*time.Second), apiDelete, "/users/17", 404, event.Decision_DECISION_BLOCK)
		e.Check, e.Reason = "schema", "undeclared operation DELETE /users/17"
		e.ClientIp = event.ClientIPBytes(netip.MustParseAddr(ipUndeclare))
		evs = append(evs, e)
	}
	if _, err := w.Events().Store(ctx, encodeMessages(t, evs), false); err != nil {
		t.Fatalf("storing events: %v", err)
	}

	anomaly := func(floatAt time.Duration, det, api, kind, val string, score, risk float64, sev event.Severity, summary string, devs []*event.Deviation, ids []string) *event.Anomaly {
		ts := hourStart.Add(floatAt)
		return &event.Anomaly{Schema: event.SchemaVersion, Id: event.HashID(ts, det, api, val), TimeUnixNano: ts.UnixNano(),
			Detector: det, Api: api, Principal: &event.Principal{Kind: kind, Value: val}, Score: score, Risk: risk,
			Severity: sev, Deviations: devs, EventIds: ids, Summary: summary}
	}
	fx.a1 = anomaly(25*time.Minute, "credential_stuffing", apiLogin, event.KindIP, ipStuffer, 0.99, 0.95, event.Severity_SEVERITY_CRITICAL,
		"40 failed logins in 10m", []*event.Deviation{
			{Feature: "failure_ratio_10m", Observed: 1, Expected: 0.05, Deviation: 12.3},
			{Feature: "failed_logins_10m", Observed: 40, Expected: 2},
		}, fx.loginIDs[:3])
	fx.a2 = anomaly(10*time.Minute, "volumetric", apiOrders, event.KindKey, keyGood, 0.7, 0.6, event.Severity_SEVERITY_MEDIUM,
		"7x normal", []*event.Deviation{{Feature: "requests_1m", Observed: 30, Expected: 4, Deviation: 5}}, nil)
	fx.a3 = anomaly(20*time.Minute, "volumetric", apiOrders, event.KindKey, keyGood, 0.8, 0.65, event.Severity_SEVERITY_HIGH,
		"8x normal", []*event.Deviation{{Feature: "requests_1m", Observed: 32, Expected: 4, Deviation: 6}}, nil)
	fx.a4 = anomaly(5*time.Minute, inventoryDetector, apiDebug, event.KindAPI, apiDebug, 1, 0, event.Severity_SEVERITY_HIGH,
		apiDebug+" is not in the declared inventory (a shadow API)", []*event.Deviation{{Feature: "undeclared_operation", Observed: 1}}, nil)
	fx.a5 = anomaly(6*time.Minute, inventoryDetector, apiLegacy, event.KindAPI, apiLegacy, 1, 0, event.Severity_SEVERITY_HIGH,
		apiLegacy+" is deprecated in the inventory but still served (a zombie API)", []*event.Deviation{{Feature: "deprecated_operation", Observed: 1}}, nil)
	if _, err := w.Anomalies().Store(ctx, encodeMessages(t, []event.Message{fx.a1, fx.a2, fx.a3, fx.a4, fx.a5}), false); err != nil {
		t.Fatalf("storing anomalies: %v", err)
	}

	floatAt := hourStart.Add(25*time.Minute + time.Second)
	fx.x1 = &event.Action{Schema: event.SchemaVersion, Id: event.HashID(floatAt, "x1"), TimeUnixNano: floatAt.UnixNano(),
		Kind: event.ActionKind_ACTION_BLOCK, Target: &event.Principal{Kind: event.KindIP, Value: ipStuffer}, TtlSeconds: 600,
		Reason: "credential stuffing", AnomalyId: fx.a1.Id, Actor: "policy:default", TriggerUnixNano: floatAt.UnixNano() - int64(40*time.Millisecond)}
	floatAt = hourStart.Add(21 * time.Minute)
	fx.x2 = &event.Action{Schema: event.SchemaVersion, Id: event.HashID(floatAt, "x2"), TimeUnixNano: floatAt.UnixNano(),
		Kind: event.ActionKind_ACTION_THROTTLE, Target: &event.Principal{Kind: event.KindKey, Value: keyGood}, TtlSeconds: 300,
		Reason: "checking", Actor: "grafana:alice", DryRun: true}
	if _, err := w.Actions().Store(ctx, encodeMessages(t, []event.Message{fx.x1, fx.x2}), false); err != nil {
		t.Fatalf("storing actions: %v", err)
	}

	err = w.WriteBaselines(ctx, []clickhouse.Baseline{
		// An older snapshot, superseded by the later ones.
		{Time: hourStart.Add(10 * time.Minute), Detector: "volumetric", API: apiOrders, Feature: "requests_1m", Centre: 100, Spread: 9, Samples: 50, Principals: 3},
		{Time: hourStart.Add(30 * time.Minute), Detector: "volumetric", API: apiOrders, Feature: "requests_1m", Centre: 2, Spread: 1, Samples: 100, Principals: 10},
		{Time: hourStart.Add(30 * time.Minute), Detector: "volumetric", API: apiOrders, Feature: "requests_1m", Centre: 4, Spread: 3, Samples: 100, Principals: 5, Partition: 1},
		{Time: hourStart.Add(30 * time.Minute), Detector: "scraping", API: apiOrders, Feature: "distinct_objects_10m", Centre: 3, Spread: 1, Samples: 10, Principals: 10},
	})
	if err != nil {
		t.Fatalf("storing baselines: %v", err)
	}
	return c, fx
}

func encodeMessages(t testing.TB, msgs []event.Message) [][]byte {
	t.Helper()
	out := make([][]byte, len(msgs))
	for i, m := range msgs {
		b, err := event.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		out[i] = b
	}
	return out
}

// typedQuery is a query of type qt over [from, to] with the given model
// JSON and interval.
func typedQuery(qt, model string, from, to time.Time, interval time.Duration) backend.DataQuery {
	if model == "" {
		model = "{}"
	}
	return backend.DataQuery{RefID: "A", QueryType: qt, Interval: interval, MaxDataPoints: 1000,
		TimeRange: backend.TimeRange{From: from, To: to}, JSON: json.RawMessage(model)}
}

// queryDatabase names a database of its own for this process.
func queryDatabase(name string) string {
	return fmt.Sprintf("apiguard_%s_%d", name, os.Getpid())
}
