package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/grafana/grafana-plugin-sdk-go/data"
	"github.com/grafana/grafana-plugin-sdk-go/genproto/pluginv2"

	"github.com/apiguard/apiguard/dashboards"
	"github.com/apiguard/apiguard/dashboards/plugin"
	"github.com/apiguard/apiguard/internal/testutil"
)

// dashboardsConfig closes the loop in seconds (the windows of
// TestClosedLoop) and stores everything in ClickHouse; blocks outlast
// the test, so the entries in force are there to query.
const dashboardsConfig = `
nats:
  partitions: 2
proxy:
  routes: ["GET /items/{id}", "POST /orders"]
  fail_open: false
emit:
  flush_interval: 2ms
clickhouse:
  batch_size: 100
  flush_interval: 200ms
  dial_timeout: 1s
detectors:
  windows: [2s, 6s, 20s]
  warmup_samples: 8
  warmup_principals: 3
  cooldown: 2s
  idle_after: 1m
  volumetric:
    threshold: 6
    min_per_minute: 360
responder:
  block_ttl: 10m
`

// panelsWithoutGuaranteedData are the panels a run of normal clients
// and one flooding attacker (throttled or blocked) need not fill: no parameter anomaly, no
// shadow or zombie API.
var panelsWithoutGuaranteedData = []string{"Parameter anomalies", "Shadow and zombie operations"}

// TestDashboardsQueries runs every query of the committed dashboards
// (dashboards/json) through the apiguard-grafana executable's QueryData,
// as Grafana would with the dashboards' variables set, against a
// ClickHouse a real proxy and pipeline filled: normal clients, then one
// attacker flooding POST /orders until the policy acts on it. Each query
// answers without an error, with the fields its panel's links, actions,
// overrides and transformations name, and with rows wherever the run
// guarantees some. The variables' own queries list values. Each row
// action, filled from its panel's first row, is one the data source
// takes (not refused as bad input).
func TestDashboardsQueries(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test; skipped with -short")
	}
	t.Parallel()
	files := committedDashboards(t)
	panels, err := dashboards.ApiguardPanels(files)
	if err != nil {
		t.Fatal(err)
	}

	dir := t.TempDir()
	srv := testutil.JetStream(t, -1, "")
	ch := testutil.StartClickHouse(t)
	cfgPath := writeConfig(t, dir, dashboardsConfig)
	apiguard(t, "migrate", "--config", cfgPath, "--clickhouse", ch.Addr)
	upstream := echoUpstream(t)
	base, _ := startLoop(t, dir, cfgPath, srv.ClientURL(), upstream.URL, "--clickhouse", ch.Addr)
	began := time.Now().Add(-time.Minute)
	pool := &clients{base: base}
	serving(t, pool.add(t, "probe"))

	// Normal clients, then the attacker, as in TestClosedLoop.
	var normals []*client
	for i := range 12 {
		normals = append(normals, pool.add(t, fmt.Sprintf("client-%02d", i)))
	}
	stopNormal := normalTraffic(len(normals), func(i, k int) { normals[i].normal(k) })
	defer stopNormal()
	time.Sleep(baselineWarmUp)
	attacker := pool.add(t, "attacker")
	attackStart := time.Now()
	for attacker.count(http.StatusForbidden)+attacker.count(http.StatusTooManyRequests) < 20 {
		if time.Since(attackStart) > 20*time.Second {
			t.Fatalf("attacker not refused within 20s: %v", attacker.statuses)
		}
		attacker.do("POST", "/orders")
		time.Sleep(10 * time.Millisecond)
	}
	t.Logf("attacker refused %s after its attack began: %v", time.Since(attackStart), attacker.statuses)
	stopNormal()

	p := startGrafanaPlugin(t, map[string]any{"natsUrl": srv.ClientURL(), "clickhouseAddr": ch.Addr, "timeout": "2s"}, nil)

	// The stored anomaly and action on the attacker: the variables' values.
	var anomalyID string
	testutil.Eventually(t, 30*time.Second, func() bool {
		fs, err := runQuery(p, map[string]any{"refId": "A", "queryType": plugin.QueryTypeAnomalies,
			"principalValue": "key:attacker"}, began, time.Now().Add(time.Minute))
		if err != nil || len(fs) == 0 || fs[0].Rows() == 0 {
			return false
		}
		if fl := frameField(fs[0], "anomaly_id"); fl != nil {
			v, _ := fl.ConcreteAt(0)
			anomalyID, _ = v.(string)
		}
		audit, err := runQuery(p, map[string]any{"refId": "A", "queryType": plugin.QueryTypeAudit,
			"principalValue": "key:attacker"}, began, time.Now().Add(time.Minute))
		return err == nil && len(audit) > 0 && audit[0].Rows() > 0
	}, "ClickHouse never had the attacker's anomaly and block")
	vars := map[string]string{dashboards.VarAPI: "POST /orders", dashboards.VarPrincipal: "key:attacker",
		dashboards.VarAnomaly: anomalyID, dashboards.VarDatabase: "apiguard", dashboards.VarTTL: "1h"}
	from, to := began, time.Now().Add(time.Minute)

	// The variables' queries list values.
	for uid, b := range files {
		var d struct {
			Templating struct {
				List []struct {
					Name  string `json:"name"`
					Type  string `json:"type"`
					Query any    `json:"query"`
				} `json:"list"`
			} `json:"templating"`
		}
		if err := json.Unmarshal(b, &d); err != nil {
			t.Fatal(err)
		}
		for _, v := range d.Templating.List {
			q, ok := v.Query.(map[string]any)
			if v.Type != "query" || !ok {
				continue
			}
			fs, err := runQuery(p, q, from, to)
			if err != nil || len(fs) == 0 || fs[0].Rows() == 0 {
				t.Errorf("%s: variable %s: %v, %v", uid, v.Name, err, fs)
			}
		}
	}

	if len(panels) < 25 {
		t.Fatalf("%d apiguard panels in the dashboards", len(panels))
	}
	acted := 0
	for _, pq := range panels {
		name := pq.Dashboard + ": " + pq.Title
		var frames data.Frames
		for _, q := range pq.Queries {
			fs, err := runQuery(p, interpolate(q, vars), from, to)
			if err != nil {
				t.Errorf("%s: %v", name, err)
				continue
			}
			frames = append(frames, fs...)
		}
		scope := frames
		if pq.FrameIndex >= 0 {
			if pq.FrameIndex >= len(frames) {
				t.Errorf("%s: shows frame %d of %d", name, pq.FrameIndex, len(frames))
				continue
			}
			scope = frames[pq.FrameIndex : pq.FrameIndex+1]
		}
		for _, f := range pq.Fields {
			if !slices.ContainsFunc(scope, func(fr *data.Frame) bool { return frameField(fr, f) != nil }) {
				t.Errorf("%s: no field %q in its frames %s", name, f, frameNames(scope))
			}
		}
		rows := 0
		for _, fr := range scope {
			rows += fr.Rows()
		}
		if rows == 0 && !slices.Contains(panelsWithoutGuaranteedData, pq.Title) {
			t.Errorf("%s: no rows", name)
		}
		if rows > 0 {
			acted += checkActions(t, p, name, files[pq.Dashboard], pq.Title, scope[0], vars)
		}
	}
	if acted == 0 {
		t.Error("no row action was taken")
	}
}

// committedDashboards reads dashboards/json by uid.
func committedDashboards(t *testing.T) map[string][]byte {
	t.Helper()
	paths, err := filepath.Glob("../dashboards/json/*.json")
	if err != nil || len(paths) != 5 {
		t.Fatalf("dashboards/json: %v %v", paths, err)
	}
	files := map[string][]byte{}
	for _, path := range paths {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		files[strings.TrimSuffix(filepath.Base(path), ".json")] = b
	}
	return files
}

// runQuery sends one query model as Grafana sends it and returns its
// frames, or the error the panel would show.
func runQuery(p *grafanaPlugin, model map[string]any, from, to time.Time) (data.Frames, error) {
	b, _ := json.Marshal(model)
	qt, _ := model["queryType"].(string)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	resp, err := p.data.QueryData(ctx, &pluginv2.QueryDataRequest{PluginContext: p.pctx("viewer", "Viewer"),
		Queries: []*pluginv2.DataQuery{{RefId: "A", QueryType: qt, Json: b, MaxDataPoints: 1000, IntervalMS: 60000,
			TimeRange: &pluginv2.TimeRange{FromEpochMS: from.UnixMilli(), ToEpochMS: to.UnixMilli()}}}})
	if err != nil {
		return nil, fmt.Errorf("QueryData %s: %w", qt, err)
	}
	r := resp.Responses["A"]
	if r == nil || r.Error != "" {
		return nil, fmt.Errorf("QueryData %s %s: %v", qt, b, r.GetError())
	}
	return data.UnmarshalArrowFrames(r.Frames)
}

var templateVar = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)`)

// replaceVars fills s's dashboard variables, as Grafana's template
// service does; Grafana's own ($__…) stay.
func replaceVars(s string, vars map[string]string) string {
	return templateVar.ReplaceAllStringFunc(s, func(m string) string {
		name := strings.Trim(strings.TrimPrefix(m, "$"), "{}")
		if v, ok := vars[name]; ok {
			return v
		}
		return m
	})
}

// interpolate copies a query and fills the options the data source's
// frontend replaces (api, principalValue, detector, anomalyId, rawSql).
func interpolate(q map[string]any, vars map[string]string) map[string]any {
	out := map[string]any{}
	for k, v := range q {
		if s, ok := v.(string); ok && slices.Contains([]string{"api", "principalValue", "detector", "anomalyId", "rawSql"}, k) {
			v = replaceVars(s, vars)
		}
		out[k] = v
	}
	return out
}

// checkActions takes each row action of the panel titled title on the
// first row of f, as Grafana would after the confirmation (an editor,
// the body filled in), and returns how many the data source carried out.
// Bad input (400) or a refusal (403) is an error: the body the dashboard
// sends must be one the data source takes.
func checkActions(t *testing.T, p *grafanaPlugin, name string, dashboardJSON []byte, title string, f *data.Frame, vars map[string]string) int {
	t.Helper()
	var d struct {
		Panels []struct {
			Title       string `json:"title"`
			FieldConfig struct {
				Defaults struct {
					Actions []struct {
						Fetch struct {
							URL  string `json:"url"`
							Body string `json:"body"`
						} `json:"fetch"`
					} `json:"actions"`
				} `json:"defaults"`
			} `json:"fieldConfig"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(dashboardJSON, &d); err != nil {
		t.Fatal(err)
	}
	row := map[string]string{}
	for _, fl := range f.Fields {
		if v, ok := fl.ConcreteAt(0); ok {
			row["__data.fields."+fl.Name] = fmt.Sprint(v)
		}
	}
	for k, v := range vars {
		row[k] = v
	}
	fill := regexp.MustCompile(`\$\{([A-Za-z0-9_.]+)\}`)
	done := 0
	for _, panel := range d.Panels {
		if panel.Title != title {
			continue
		}
		for _, a := range panel.FieldConfig.Defaults.Actions {
			body := fill.ReplaceAllStringFunc(a.Fetch.Body, func(m string) string { return row[m[2:len(m)-1]] })
			action := strings.TrimPrefix(a.Fetch.URL, dashboards.ActionsPath)
			code, ar := p.act(t, "analyst", "Editor", action, body)
			switch {
			case code == 400 || code == 403:
				t.Errorf("%s: action %s %s refused: %d %s", name, action, body, code, ar.Message)
			case code == 200 && ar.Done:
				done++
			}
		}
	}
	return done
}

// frameField returns f's field named name, or nil.
func frameField(f *data.Frame, name string) *data.Field {
	for _, fl := range f.Fields {
		if fl.Name == name {
			return fl
		}
	}
	return nil
}

// frameNames lists frames and their fields, for messages.
func frameNames(fs data.Frames) string {
	var parts []string
	for _, f := range fs {
		var names []string
		for _, fl := range f.Fields {
			names = append(names, fl.Name)
		}
		parts = append(parts, f.Name+"("+strings.Join(names, ",")+")")
	}
	return strings.Join(parts, " ")
}
