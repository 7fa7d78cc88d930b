package integration

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/apiguard/apiguard/event"
	"github.com/apiguard/apiguard/internal/testutil"
	"github.com/apiguard/apiguard/pipeline/topology"
	"github.com/apiguard/apiguard/sinks/clickhouse"
)

const storageConfig = `
nats:
  partitions: 2
proxy:
  routes: ["GET /items/{id}"]
clickhouse:
  batch_size: 200
  flush_interval: 200ms
  dial_timeout: 1s
emit:
  flush_interval: 2ms
`

// TestStorageSurvivesClickHouseOutage runs proxy and pipeline as processes
// against a real JetStream and a real ClickHouse, stops ClickHouse in
// mid-run and starts it again: every request is stored exactly once, in
// the events table and in the rollup.
func TestStorageSurvivesClickHouseOutage(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test; skipped with -short")
	}
	dir := t.TempDir()
	srv := testutil.JetStream(t, -1, "")
	_, js := testutil.Connect(t, srv)
	ch := testutil.StartClickHouse(t)

	cfgPath := filepath.Join(dir, "apiguard.yaml")
	if err := os.WriteFile(cfgPath, []byte(storageConfig), 0o600); err != nil {
		t.Fatal(err)
	}
	out := apiguard(t, "migrate", "--config", cfgPath, "--clickhouse", ch.Addr)
	if !strings.Contains(out, "events") || !strings.Contains(out, "applied") {
		t.Fatalf("migrate output lacks the applied events migration:\n%s", out)
	}

	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "ok")
	}))
	defer upstream.Close()
	listen, pipeMetrics, proxyMetrics := freeAddr(t), freeAddr(t), freeAddr(t)
	pipe := start(t, "pipeline", "pipeline", "--config", cfgPath, "--nats", srv.ClientURL(), "--clickhouse", ch.Addr,
		"--metrics-listen", pipeMetrics)
	start(t, "proxy", "proxy", "--config", cfgPath, "--nats", srv.ClientURL(), "--listen", listen,
		"--upstream", upstream.URL, "--spool-dir", filepath.Join(dir, "spool"), "--metrics-listen", proxyMetrics)

	var sent atomic.Int64
	get := func(i int) bool {
		resp, err := http.Get(fmt.Sprintf("http://%s/items/%d", listen, i))
		if err != nil {
			return false
		}
		resp.Body.Close()
		sent.Add(1)
		return resp.StatusCode == http.StatusOK
	}
	testutil.Eventually(t, 20*time.Second, func() bool { return get(0) }, "proxy never answered")
	for i := range 300 {
		if !get(i) {
			t.Fatalf("request %d failed", i)
		}
	}

	cfg := clickhouse.DefaultConfig()
	cfg.Addr = []string{ch.Addr}
	cfg.DialTimeout = time.Second
	rows := func(q string) uint64 {
		c, err := clickhouse.Open(context.Background(), cfg)
		if err != nil {
			return 0
		}
		defer c.Close()
		var n uint64
		if err := c.Conn().QueryRow(context.Background(), q).Scan(&n); err != nil {
			return 0
		}
		return n
	}
	const countEvents = "SELECT count() FROM apiguard.events"
	testutil.Eventually(t, 20*time.Second, func() bool { return rows(countEvents) == uint64(sent.Load()) },
		"%d rows stored before the outage, want %d", func() any { return rows(countEvents) }, func() any { return sent.Load() })

	ch.Stop()
	for i := range 300 {
		if !get(1000 + i) {
			t.Fatalf("request %d failed while ClickHouse was down", i)
		}
	}
	testutil.Eventually(t, 20*time.Second, func() bool { return strings.Contains(pipe.output(), "store failed") },
		"the pipeline never noticed ClickHouse was down")
	ch.Start()

	want := uint64(sent.Load())
	testutil.Eventually(t, 60*time.Second, func() bool { return rows(countEvents) >= want },
		"%d rows after ClickHouse returned, want %d", func() any { return rows(countEvents) }, want)
	// Let any duplicate that might be coming arrive before counting exactly.
	testutil.Eventually(t, 10*time.Second, func() bool {
		n, err := topology.Pending(context.Background(), js, event.StreamEvents, "apiguard-clickhouse-events")
		return err == nil && n == 0
	}, "the store consumer still has pending events")
	for q, label := range map[string]string{
		countEvents: "events rows",
		"SELECT uniqExact(event_id) FROM apiguard.events":      "distinct event ids",
		"SELECT countMerge(requests) FROM apiguard.api_minute": "rollup requests",
	} {
		if n := rows(q); n != want {
			t.Errorf("%s = %d, want %d (requests sent)", label, n, want)
		}
	}

	// What Prometheus would have seen.
	proxyWant := map[string]float64{
		`apiguard_proxy_requests_total{api="GET /items/{id}",check="",decision="allow"}`: float64(want),
		`apiguard_emit_published_total`: float64(want),
		`apiguard_emit_queue_length`:    0,
		`apiguard_enforce_synced`:       1,
	}
	pipeWant := map[string]float64{
		`apiguard_store_messages_total{store="clickhouse_events"}`:                  float64(want),
		`apiguard_pipeline_events_total`:                                            float64(want),
		`apiguard_pipeline_consumer_pending{consumer="apiguard-clickhouse-events"}`: 0,
		`apiguard_store_paused{store="clickhouse_events"}`:                          0,
	}
	for addr, wants := range map[string]map[string]float64{proxyMetrics: proxyWant, pipeMetrics: pipeWant} {
		testutil.Eventually(t, 15*time.Second, func() bool {
			got := scrape(t, addr)
			for k, v := range wants {
				if got[k] != v {
					return false
				}
			}
			return true
		}, "metrics at %s: want %v, got %v", addr, wants, func() any { return scrape(t, addr) })
	}
	if got := scrape(t, pipeMetrics)[`apiguard_store_failures_total{store="clickhouse_events"}`]; got < 1 {
		t.Errorf("store failures = %v, want at least 1 after the outage", got)
	}
}

// scrape reads a /metrics page into series → value (untyped samples only
// as text: the test compares a few known series).
func scrape(t *testing.T, addr string) map[string]float64 {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	out := map[string]float64{}
	for _, line := range strings.Split(string(body), "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		var v float64
		if _, err := fmt.Sscan(line[i+1:], &v); err == nil {
			out[line[:i]] = v
		}
	}
	return out
}
