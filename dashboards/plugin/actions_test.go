package plugin_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/grafana/grafana-plugin-sdk-go/backend"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/apiguard/apiguard/dashboards/plugin"
	"github.com/apiguard/apiguard/enforce"
	"github.com/apiguard/apiguard/enforce/kv"
	"github.com/apiguard/apiguard/event"
	"github.com/apiguard/apiguard/internal/testutil"
)

// newDatasource returns a data source on a fresh JetStream with apiguard's
// topology, and a ClickHouse address where nothing listens.
func newDatasource(t *testing.T) (*plugin.Datasource, jetstream.JetStream, *kv.Writer) {
	t.Helper()
	js, bucket := testutil.Topology(t)
	cfg := plugin.DefaultSettings()
	cfg.NATSURL = js.Conn().ConnectedUrl()
	cfg.ClickHouseAddr = "127.0.0.1:1"
	cfg.Timeout = "1s"
	ds, err := plugin.NewDatasource(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ds.Dispose)
	return ds, js, kv.NewWriter(js, bucket)
}

// call sends one resource request as user (nil: none) and decodes the answer.
func call(t *testing.T, ds *plugin.Datasource, user *backend.User, method, path, body string) (int, plugin.ActionResponse) {
	t.Helper()
	var got *backend.CallResourceResponse
	err := ds.CallResource(context.Background(), &backend.CallResourceRequest{
		PluginContext: backend.PluginContext{User: user}, Method: method, Path: path, Body: []byte(body),
	}, backend.CallResourceResponseSenderFunc(func(r *backend.CallResourceResponse) error { got = r; return nil }))
	if err != nil || got == nil {
		t.Fatalf("CallResource %s %s: %v", method, path, err)
	}
	var resp plugin.ActionResponse
	if err := json.Unmarshal(got.Body, &resp); err != nil && path != "entries" {
		t.Fatalf("%s %s answered %q: %v", method, path, got.Body, err)
	}
	if resp.Message == "" && path != "entries" {
		t.Errorf("%s %s answered without a message: %s", method, path, got.Body)
	}
	return got.Status, resp
}

var (
	editor = &backend.User{Login: "alice", Role: "Editor"}
	admin  = &backend.User{Login: "root", Role: "Admin"}
	viewer = &backend.User{Login: "bob", Role: "Viewer"}
)

// TestActionsRefused: a viewer, an anonymous request and every kind of bad
// input are refused with the right status and a message, and nothing is
// written to the bucket or the audit stream.
func TestActionsRefused(t *testing.T) {
	ds, js, w := newDatasource(t)
	good := `{"kind":"ip","value":"192.0.2.7","ttl":"1h","reason":"test"}`
	for _, tc := range []struct {
		name   string
		user   *backend.User
		method string
		path   string
		body   string
		status int
		says   string
	}{
		{"viewer", viewer, "POST", "actions/block", good, 403, "Editors and Admins"},
		{"no user", nil, "POST", "actions/block", good, 403, "no role"},
		{"no login", &backend.User{Role: "Admin"}, "POST", "actions/block", good, 403, "Editors"},
		{"GET an action", editor, "GET", "actions/block", good, 405, "POST"},
		{"unknown action", editor, "POST", "actions/ban", good, 400, "unknown action"},
		{"unknown resource", editor, "POST", "nothing", good, 404, "no resource"},
		{"malformed JSON", editor, "POST", "actions/block", `{"kind":"ip",`, 400, "malformed JSON"},
		{"two objects", editor, "POST", "actions/block", good + good, 400, "malformed JSON"},
		{"unknown field", editor, "POST", "actions/block", `{"kind":"ip","value":"192.0.2.7","until":"never"}`, 400, "unknown field"},
		{"unknown kind", editor, "POST", "actions/block", `{"kind":"user","value":"bob"}`, 400, "unknown kind"},
		{"api kind", editor, "POST", "actions/block", `{"kind":"api","value":"GET /x"}`, 400, "unknown kind"},
		{"invalid ip", editor, "POST", "actions/block", `{"kind":"ip","value":"300.0.0.1"}`, 400, "ip entry"},
		{"empty value", editor, "POST", "actions/revoke", `{"kind":"token","value":""}`, 400, "empty value"},
		{"ttl not a duration", editor, "POST", "actions/block", `{"kind":"ip","value":"192.0.2.7","ttl":"soon"}`, 400, "not a duration"},
		{"ttl negative", editor, "POST", "actions/block", `{"kind":"ip","value":"192.0.2.7","ttl":"-1h"}`, 400, "ttl"},
		{"ttl too short", editor, "POST", "actions/block", `{"kind":"ip","value":"192.0.2.7","ttl":"100ms"}`, 400, "shorter than 1s"},
		{"ttl too long", editor, "POST", "actions/throttle", `{"kind":"ip","value":"192.0.2.7","ttl":"10000h"}`, 400, "longer than"},
		{"huge body", editor, "POST", "actions/block", `{"kind":"ip","value":"192.0.2.7","reason":"` + strings.Repeat("x", 70000) + `"}`, 413, "limit"},
		{"no action named", editor, "POST", "actions", good, 400, "unknown action"},
		{"actions disagree", editor, "POST", "actions/block", `{"action":"allow","kind":"ip","value":"192.0.2.7"}`, 400, "in the path"},
		{"unblock of nothing", admin, "POST", "actions/unblock", `{"kind":"key","value":"nobody"}`, 404, "no enforcement entry"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, resp := call(t, ds, tc.user, tc.method, tc.path, tc.body)
			if status != tc.status || !strings.Contains(resp.Message, tc.says) || resp.Done {
				t.Errorf("status %d, %+v; want %d saying %q", status, resp, tc.status, tc.says)
			}
		})
	}
	if entries, _ := w.List(context.Background()); len(entries) != 0 {
		t.Errorf("refused requests wrote %v", entries)
	}
	if n := countMsgs(t, js, event.StreamActions); n != 0 {
		t.Errorf("refused requests audited %d actions", n)
	}
}

func countMsgs(t *testing.T, js jetstream.JetStream, stream string) uint64 {
	t.Helper()
	s, err := js.Stream(context.Background(), stream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return info.State.Msgs
}

// TestActions: an editor's and an admin's actions go through the
// responder: written with the Grafana user as actor, audited, answered
// with what was done; a block of an allowed principal is refused (409) and
// audited as dry-run; the enforcement query and the entries resource list
// what is active.
func TestActions(t *testing.T) {
	ds, js, w := newDatasource(t)
	ctx := context.Background()

	status, resp := call(t, ds, editor, "POST", "actions/block", `{"kind":"ip","value":"::ffff:192.0.2.7","ttl":"1h","reason":"scraping","anomalyId":"A1"}`)
	if status != 200 || !resp.Done || resp.Action == nil || resp.Action.Actor != "grafana:alice" || resp.Action.Value != "192.0.2.7" ||
		resp.Action.TTL != 3600 || resp.Action.AnomalyID != "A1" || !strings.Contains(resp.Message, "block ip 192.0.2.7 until") {
		t.Fatalf("block: %d %+v %+v", status, resp, resp.Action)
	}
	e, _, err := w.Get(ctx, enforce.KindIP, "192.0.2.7", time.Now())
	if err != nil || e.Action != enforce.ActionBlock || e.Actor != "grafana:alice" || e.Reason != "scraping" || e.Expires.IsZero() {
		t.Fatalf("entry after the block: %+v, %v", e, err)
	}

	// The action named in the body, as the app's pages send it.
	status, resp = call(t, ds, admin, "POST", "actions", `{"action":"allow","kind":"key","value":"partner","reason":"load test"}`)
	if status != 200 || !resp.Done || resp.Action.Expires != "" {
		t.Fatalf("allow: %d %+v", status, resp)
	}
	status, resp = call(t, ds, editor, "POST", "actions/revoke", `{"kind":"key","value":"partner","ttl":"30m"}`)
	if status != 409 || resp.Done || resp.SparedBy == nil || resp.Action == nil || !resp.Action.DryRun || !strings.Contains(resp.Message, "allowed by grafana:root") {
		t.Fatalf("revoke of an allowed key: %d %+v", status, resp)
	}
	status, resp = call(t, ds, editor, "POST", "actions/unblock", `{"kind":"key","value":"partner"}`)
	if status != 409 || resp.Done || !strings.Contains(resp.Message, "allow entry") {
		t.Fatalf("unblock of an allow: %d %+v", status, resp)
	}

	// The enforcement query: two active entries, the block with its TTL left.
	qr, err := ds.QueryData(ctx, &backend.QueryDataRequest{Queries: []backend.DataQuery{{RefID: "A", QueryType: plugin.QueryTypeEnforcement}}})
	if err != nil {
		t.Fatal(err)
	}
	dr := qr.Responses["A"]
	if dr.Error != nil || len(dr.Frames) != 1 || dr.Frames[0].Rows() != 2 {
		t.Fatalf("enforcement query: %v, %v", dr.Error, dr.Frames)
	}
	f := dr.Frames[0]
	for i := range f.Rows() {
		if f.Fields[1].At(i) == "192.0.2.7" {
			left, _ := f.Fields[8].ConcreteAt(i)
			if l, ok := left.(int64); !ok || l < 3590 || l > 3600 {
				t.Errorf("ttl_left_s of the block: %v", left)
			}
		}
	}

	status, resp = call(t, ds, editor, "POST", "actions/unblock", `{"kind":"ip","value":"192.0.2.7","reason":"false positive"}`)
	if status != 200 || !resp.Done || resp.Previous == nil || resp.Previous.Action != "block" {
		t.Fatalf("unblock: %d %+v", status, resp)
	}
	// block, allow, revoke (dry-run), unblock: four audited actions.
	if n := countMsgs(t, js, event.StreamActions); n != 4 {
		t.Errorf("%d actions audited, want 4", n)
	}
	var got *backend.CallResourceResponse
	_ = ds.CallResource(ctx, &backend.CallResourceRequest{PluginContext: backend.PluginContext{User: viewer}, Method: "GET", Path: "entries"},
		backend.CallResourceResponseSenderFunc(func(r *backend.CallResourceResponse) error { got = r; return nil }))
	var entries []plugin.EntryJSON
	if err := json.Unmarshal(got.Body, &entries); err != nil || got.Status != http.StatusOK || len(entries) != 1 || entries[0].Value != "partner" {
		t.Errorf("entries for a viewer: %d %s", got.Status, got.Body)
	}
}
