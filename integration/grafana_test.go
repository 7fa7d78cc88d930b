package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/grafana/grafana-plugin-sdk-go/backend/grpcplugin"
	"github.com/grafana/grafana-plugin-sdk-go/data"
	"github.com/grafana/grafana-plugin-sdk-go/genproto/pluginv2"
	"github.com/hashicorp/go-hclog"
	goplugin "github.com/hashicorp/go-plugin"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/apiguard/apiguard/dashboards/plugin"
	"github.com/apiguard/apiguard/event"
	"github.com/apiguard/apiguard/internal/testutil"
)

const grafanaConfig = `
nats:
  partitions: 2
proxy:
  routes: ["GET /items/{id}"]
clickhouse:
  batch_size: 100
  flush_interval: 200ms
  dial_timeout: 1s
emit:
  flush_interval: 2ms
`

// grafanaPlugin is the built apiguard-grafana executable, started as
// Grafana starts a backend plugin: hashicorp go-plugin's handshake on the
// SDK's magic cookie and protocol version 2, then gRPC.
type grafanaPlugin struct {
	client      *goplugin.Client
	diagnostics pluginv2.DiagnosticsClient
	resource    pluginv2.ResourceClient
	data        pluginv2.DataClient
	stream      pluginv2.StreamClient
	settings    *pluginv2.DataSourceInstanceSettings
	logs        *syncWriter // the plugin's log, as Grafana would copy it
}

// startGrafanaPlugin builds cmd/apiguard-grafana and starts it; it is
// killed when the test ends, and its log printed if the test failed.
func startGrafanaPlugin(t *testing.T, jsonData map[string]any, secure map[string]string) *grafanaPlugin {
	t.Helper()
	p := &grafanaPlugin{}
	bin := filepath.Join(t.TempDir(), "apiguard-grafana")
	build := exec.Command("go", "build", "-o", bin, "../cmd/apiguard-grafana")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building apiguard-grafana: %v\n%s", err, out)
	}
	logs := &syncWriter{buf: &bytes.Buffer{}}
	c := goplugin.NewClient(&goplugin.ClientConfig{
		HandshakeConfig: goplugin.HandshakeConfig{ProtocolVersion: grpcplugin.ProtocolVersion,
			MagicCookieKey: grpcplugin.MagicCookieKey, MagicCookieValue: grpcplugin.MagicCookieValue},
		VersionedPlugins: map[int]goplugin.PluginSet{grpcplugin.ProtocolVersion: {
			"diagnostics": &grpcplugin.DiagnosticsGRPCPlugin{}, "resource": &grpcplugin.ResourceGRPCPlugin{},
			"data": &grpcplugin.DataGRPCPlugin{}, "stream": &grpcplugin.StreamGRPCPlugin{},
		}},
		Cmd:              exec.Command(bin),
		AllowedProtocols: []goplugin.Protocol{goplugin.ProtocolGRPC},
		Logger:           hclog.New(&hclog.LoggerOptions{Output: logs, Level: hclog.Info}),
		StartTimeout:     30 * time.Second,
	})
	t.Cleanup(func() {
		c.Kill()
		if t.Failed() {
			t.Logf("--- log of apiguard-grafana ---\n%s", p.log())
		}
	})
	rpc, err := c.Client()
	if err != nil {
		t.Fatalf("starting apiguard-grafana over go-plugin: %v", err)
	}
	p.client, p.logs = c, logs
	for name, dst := range map[string]any{"diagnostics": &p.diagnostics, "resource": &p.resource, "data": &p.data, "stream": &p.stream} {
		raw, err := rpc.Dispense(name)
		if err != nil {
			t.Fatalf("dispensing %s: %v", name, err)
		}
		switch d := dst.(type) {
		case *pluginv2.DiagnosticsClient:
			*d = raw.(pluginv2.DiagnosticsClient)
		case *pluginv2.ResourceClient:
			*d = raw.(pluginv2.ResourceClient)
		case *pluginv2.DataClient:
			*d = raw.(pluginv2.DataClient)
		case *pluginv2.StreamClient:
			*d = raw.(pluginv2.StreamClient)
		}
	}
	js, _ := json.Marshal(jsonData)
	p.settings = &pluginv2.DataSourceInstanceSettings{Uid: "apiguard-test", Name: "apiguard", JsonData: js,
		DecryptedSecureJsonData: secure, LastUpdatedMS: time.Now().UnixMilli()}
	return p
}

// log returns what the plugin has logged so far.
func (p *grafanaPlugin) log() string {
	p.logs.mu.Lock()
	defer p.logs.mu.Unlock()
	return p.logs.buf.String()
}

// pctx is the plugin context Grafana sends for user (role "" for none).
func (p *grafanaPlugin) pctx(login, role string) *pluginv2.PluginContext {
	pc := &pluginv2.PluginContext{OrgId: 1, PluginId: plugin.PluginID, DataSourceInstanceSettings: p.settings}
	if role != "" {
		pc.User = &pluginv2.User{Login: login, Name: login, Role: role}
	}
	return pc
}

// act posts an action as user and returns the status and the answer.
func (p *grafanaPlugin) act(t *testing.T, login, role, action, body string) (int, plugin.ActionResponse) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := p.resource.CallResource(ctx, &pluginv2.CallResourceRequest{PluginContext: p.pctx(login, role),
		Path: "actions/" + action, Method: "POST", Url: "/actions/" + action, Body: []byte(body)})
	if err != nil {
		t.Fatalf("CallResource: %v", err)
	}
	resp, err := st.Recv()
	if err != nil {
		t.Fatalf("CallResource answer: %v", err)
	}
	var ar plugin.ActionResponse
	if err := json.Unmarshal(resp.Body, &ar); err != nil {
		t.Fatalf("answer %q: %v", resp.Body, err)
	}
	return int(resp.Code), ar
}

// query runs one query and returns its frames, failing on an error.
func (p *grafanaPlugin) query(t *testing.T, queryType string, model map[string]any, from, to time.Time) data.Frames {
	t.Helper()
	model["queryType"] = queryType
	b, _ := json.Marshal(model)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := p.data.QueryData(ctx, &pluginv2.QueryDataRequest{PluginContext: p.pctx("viewer", "Viewer"),
		Queries: []*pluginv2.DataQuery{{RefId: "A", QueryType: queryType, Json: b, MaxDataPoints: 1000, IntervalMS: 1000,
			TimeRange: &pluginv2.TimeRange{FromEpochMS: from.UnixMilli(), ToEpochMS: to.UnixMilli()}}}})
	if err != nil {
		t.Fatalf("QueryData %s: %v", queryType, err)
	}
	r := resp.Responses["A"]
	if r == nil || r.Error != "" {
		t.Fatalf("QueryData %s: %v", queryType, r)
	}
	frames, err := data.UnmarshalArrowFrames(r.Frames)
	if err != nil {
		t.Fatalf("QueryData %s: decoding frames: %v", queryType, err)
	}
	return frames
}

// percentile returns the p-th percentile (0..100) of ds, nearest rank.
func percentile(ds []time.Duration, p float64) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(float64(len(s))*p/100+0.5) - 1
	return s[max(0, min(i, len(s)-1))]
}

// TestGrafanaPlugin talks to the apiguard-grafana executable as Grafana
// does, over go-plugin and gRPC, with a real JetStream, a real ClickHouse
// filled by a real proxy and pipeline: CheckHealth, QueryData, an editor's
// block that the running proxy then enforces (and how fast), a viewer
// refused, and the live stream of anomalies (and its latency).
func TestGrafanaPlugin(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test; skipped with -short")
	}
	dir := t.TempDir()
	srv := testutil.JetStream(t, -1, "")
	_, js := testutil.Connect(t, srv)
	ch := testutil.StartClickHouse(t)
	cfgPath := filepath.Join(dir, "apiguard.yaml")
	if err := os.WriteFile(cfgPath, []byte(grafanaConfig), 0o600); err != nil {
		t.Fatal(err)
	}
	apiguard(t, "migrate", "--config", cfgPath, "--clickhouse", ch.Addr)
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "ok") }))
	defer upstream.Close()
	listen := freeAddr(t)
	start(t, "pipeline", "pipeline", "--config", cfgPath, "--nats", srv.ClientURL(), "--clickhouse", ch.Addr)
	start(t, "proxy", "proxy", "--config", cfgPath, "--nats", srv.ClientURL(), "--listen", listen,
		"--upstream", upstream.URL, "--spool-dir", filepath.Join(dir, "spool"))
	httpc := &http.Client{Timeout: 5 * time.Second}
	get := func(key string, i int) int {
		req, _ := http.NewRequest("GET", fmt.Sprintf("http://%s/items/%d", listen, i), nil)
		req.Header.Set("X-API-Key", key+".secret")
		resp, err := httpc.Do(req)
		if err != nil {
			return 0
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	testutil.Eventually(t, 20*time.Second, func() bool { return get("probe", 0) == 200 }, "proxy never answered")
	began := time.Now().Add(-time.Minute)
	var sent atomic.Int64
	for i := range 200 {
		if get(fmt.Sprintf("client-%d", i%5), i) == 200 {
			sent.Add(1)
		}
	}

	p := startGrafanaPlugin(t, map[string]any{"natsUrl": srv.ClientURL(), "clickhouseAddr": ch.Addr, "timeout": "2s"},
		map[string]string{plugin.SecureNATSToken: "tok-hunter2-secret"})
	ctx := context.Background()

	// CheckHealth: every part OK, with the schema version.
	h, err := p.diagnostics.CheckHealth(ctx, &pluginv2.CheckHealthRequest{PluginContext: p.pctx("admin", "Admin")})
	if err != nil || h.Status != pluginv2.CheckHealthResponse_OK || !strings.Contains(h.Message, "schema version") {
		t.Fatalf("CheckHealth: %v %v %q", err, h.GetStatus(), h.GetMessage())
	}
	t.Logf("CheckHealth: %s", h.Message)

	// QueryData: the requests sent are in ClickHouse, by API.
	testutil.Eventually(t, 30*time.Second, func() bool {
		var n float64
		for _, f := range p.query(t, plugin.QueryTypeSeries, map[string]any{"groupBy": plugin.GroupByTotal}, began, time.Now().Add(time.Minute)) {
			for _, fl := range f.Fields {
				for i := range fl.Len() {
					if v, ok := fl.ConcreteAt(i); ok {
						switch x := v.(type) {
						case float64:
							n += x
						case uint64:
							n += float64(x)
						case int64:
							n += float64(x)
						}
					}
				}
			}
		}
		return n >= float64(sent.Load())
	}, "the series query never counted the %d requests sent", sent.Load())

	// A viewer cannot act; nothing is written.
	if code, ar := p.act(t, "bob", "Viewer", "block", `{"kind":"key","value":"attacker-0","ttl":"1h"}`); code != 403 || ar.Done {
		t.Errorf("viewer's block: %d %+v", code, ar)
	}
	if code, ar := p.act(t, "alice", "Editor", "block", `{"kind":"nope","value":"x"}`); code != 400 || ar.Done {
		t.Errorf("block of an unknown kind: %d %+v", code, ar)
	}
	if get("attacker-0", 1) != 200 {
		t.Fatal("attacker-0 refused before any block")
	}

	// Editors' blocks are enforced by the running proxy: action → enforced.
	var enforced []time.Duration
	const blocks = 50
	for i := range blocks {
		key := fmt.Sprintf("attacker-%d", i)
		t0 := time.Now()
		code, ar := p.act(t, "alice", "Editor", "block", fmt.Sprintf(`{"kind":"key","value":%q,"ttl":"10m","reason":"from the test"}`, key))
		if code != 200 || !ar.Done || ar.Action.Actor != "grafana:alice" {
			t.Fatalf("editor's block: %d %+v", code, ar)
		}
		for get(key, i) != 403 {
			if time.Since(t0) > 10*time.Second {
				t.Fatalf("%s not refused 10s after the block", key)
			}
		}
		enforced = append(enforced, time.Since(t0))
	}
	t.Logf("action → enforced at the proxy over %d blocks: p50 %s, p99 %s, max %s", len(enforced),
		percentile(enforced, 50), percentile(enforced, 99), percentile(enforced, 100))
	if p99 := percentile(enforced, 99); p99 > time.Second {
		t.Errorf("action → enforced p99 %s, want well under a second", p99)
	}
	if get("client-1", 7) != 200 {
		t.Error("a client nobody blocked is refused")
	}
	frames := p.query(t, plugin.QueryTypeEnforcement, map[string]any{}, began, time.Now())
	if len(frames) != 1 || frames[0].Rows() != blocks {
		t.Errorf("enforcement query: %d frames, %v", len(frames), frames)
	}
	frames = p.query(t, plugin.QueryTypeAnomalies, map[string]any{"live": true}, began, time.Now())
	if len(frames) == 0 || frames[0].Meta == nil || frames[0].Meta.Channel != "ds/apiguard-test/anomalies" {
		t.Errorf("live anomalies query: channel %v", frames)
	}

	// The live stream: anomalies published after RunStream started come
	// back as frames; latency from publication to the frame received.
	if r, err := p.stream.SubscribeStream(ctx, &pluginv2.SubscribeStreamRequest{PluginContext: p.pctx("bob", "Viewer"), Path: "anomalies"}); err != nil ||
		r.Status != pluginv2.SubscribeStreamResponse_OK {
		t.Fatalf("SubscribeStream: %v %v", r, err)
	}
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	rs, err := p.stream.RunStream(sctx, &pluginv2.RunStreamRequest{PluginContext: p.pctx("bob", "Viewer"), Path: "anomalies"})
	if err != nil {
		t.Fatal(err)
	}
	frameIDs := make(chan string, 256)
	go func() {
		defer close(frameIDs)
		for {
			pk, err := rs.Recv()
			if err != nil {
				return
			}
			var f data.Frame
			if json.Unmarshal(pk.Data, &f) != nil || f.Rows() != 1 {
				continue
			}
			id, _ := f.Fields[1].ConcreteAt(0)
			s, _ := id.(string)
			frameIDs <- s
		}
	}()
	publish := func(id string) time.Time {
		a := &event.Anomaly{Schema: event.SchemaVersion, Id: id, TimeUnixNano: time.Now().UnixNano(), Detector: "rate",
			Api: "GET /items/{id}", Principal: &event.Principal{Kind: "key", Value: "client-1"}, Score: 0.8, Summary: "a test"}
		b, _ := event.Marshal(a)
		t0 := time.Now()
		if _, err := js.Publish(ctx, fmt.Sprintf(event.SubjectAnomaliesT, a.Detector), b, jetstream.WithMsgID(id)); err != nil {
			t.Fatal(err)
		}
		return t0
	}
	// Warm up: the consumer starts from "now", at some point after RunStream.
	warm := false
	for i := 0; !warm && i < 100; i++ {
		publish(fmt.Sprintf("warm-%d", i))
		select {
		case <-frameIDs:
			warm = true
		case <-time.After(100 * time.Millisecond):
		}
	}
	if !warm {
		t.Fatal("no live frame within 10s of RunStream")
	}
	for len(frameIDs) > 0 {
		<-frameIDs
	}
	var live []time.Duration
	for i := range 100 {
		id := fmt.Sprintf("live-%d", i)
		t0 := publish(id)
		for got := ""; got != id; {
			select {
			case got = <-frameIDs:
			case <-time.After(5 * time.Second):
				t.Fatalf("anomaly %s not streamed within 5s", id)
			}
		}
		live = append(live, time.Since(t0))
	}
	t.Logf("live stream, anomaly published → frame received over %d anomalies: p50 %s, p99 %s, max %s", len(live),
		percentile(live, 50), percentile(live, 99), percentile(live, 100))
	if p99 := percentile(live, 99); p99 > time.Second {
		t.Errorf("live stream p99 %s, want at most 1s", p99)
	}

	// The actions stream carries an analyst's action as it is audited.
	as, err := p.stream.RunStream(sctx, &pluginv2.RunStreamRequest{PluginContext: p.pctx("bob", "Viewer"), Path: "actions"})
	if err != nil {
		t.Fatal(err)
	}
	actionFrames := make(chan map[string]any, 64)
	go func() {
		defer close(actionFrames)
		for {
			pk, err := as.Recv()
			if err != nil {
				return
			}
			var f data.Frame
			if json.Unmarshal(pk.Data, &f) != nil || f.Rows() != 1 {
				continue
			}
			row := map[string]any{}
			for _, fl := range f.Fields {
				row[fl.Name], _ = fl.ConcreteAt(0)
			}
			actionFrames <- row
		}
	}()
	var row map[string]any
	for i := 0; row == nil && i < 50; i++ {
		if code, ar := p.act(t, "root", "Admin", "allow", fmt.Sprintf(`{"kind":"ip","value":"198.51.100.%d","reason":"partner"}`, i)); code != 200 || !ar.Done {
			t.Fatalf("admin's allow: %d %+v", code, ar)
		}
		select {
		case row = <-actionFrames:
		case <-time.After(200 * time.Millisecond):
		}
	}
	if row == nil || row["kind"] != "allow" || row["action_id"] == "" || row["actor"] != "grafana:root" || row["target_kind"] != "ip" {
		t.Errorf("actions stream frame: %v", row)
	}

	// Grafana logs the plugin's lines at their level; no secret in them.
	lines := p.log()
	if !strings.Contains(lines, "[INFO]  apiguard-grafana: action:") || !strings.Contains(lines, "actor=grafana:alice") {
		t.Errorf("the plugin's log lacks the actions at INFO:\n%s", lines)
	}
	if strings.Contains(lines, "hunter2") {
		t.Error("the plugin's log shows the NATS token")
	}
}
