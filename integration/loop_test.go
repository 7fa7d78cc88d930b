package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/apiguard/apiguard/internal/testutil"
	"github.com/apiguard/apiguard/pipeline/topology"
)

// config is the test's apiguard config: short windows so the loop closes
// in seconds, the same code paths as production.
const config = `
nats:
  partitions: 4
proxy:
  routes: ["GET /items/{id}", "POST /orders"]
  fail_open: false
emit:
  publish_timeout: 1s
  flush_interval: 2ms
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
  block_ttl: 1m
  # The tests on this config are about the loop, not the policy: every
  # anomaly blocks its principal (policy_test.go tests the defaults).
  policies:
    - {name: block-principal, match: {min_score: 0.5}, action: block, ttl: 1m}
log:
  level: info
`

// client sends requests as one principal and remembers every status.
type client struct {
	key      string
	base     string
	http     *http.Client
	mu       sync.Mutex
	statuses map[int]int
	sent     *atomic.Int64
	errors   *atomic.Int64
}

func (c *client) do(method, path string) int {
	req, _ := http.NewRequest(method, c.base+path, nil)
	req.Header.Set("X-API-Key", c.key+".secret")
	resp, err := c.http.Do(req)
	if err != nil {
		c.errors.Add(1)
		return 0
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	c.sent.Add(1)
	c.mu.Lock()
	c.statuses[resp.StatusCode]++
	c.mu.Unlock()
	return resp.StatusCode
}

func (c *client) count(status int) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.statuses[status]
}

// TestClosedLoop runs the proxy and the pipeline as separate processes over
// an embedded JetStream: normal clients and one attacker. The attacker is
// blocked within a bounded time, no normal client ever is, unblock restores
// the attacker, every request yields exactly one stored event, and stopping
// NATS in mid-run neither stops the proxy nor loses an event.
func TestClosedLoop(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test; skipped with -short")
	}
	dir := t.TempDir()
	store := filepath.Join(dir, "nats")
	natsPort := testutil.FreePort(t) // restarted on the same port below
	srv := testutil.JetStream(t, natsPort, store)
	natsURL := srv.ClientURL()
	_, js := testutil.Connect(t, srv)

	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"path":%q}`, r.URL.Path)
	}))
	defer upstream.Close()

	// Anomalies are also alerts, in a real Alertmanager.
	am := testutil.StartAlertmanager(t)
	cfgPath := filepath.Join(dir, "apiguard.yaml")
	alerting := fmt.Sprintf("alerts:\n  alertmanager: %s\n  min_severity: low\n  resolve_after: 10m\n", am)
	if err := os.WriteFile(cfgPath, []byte(config+alerting), 0o600); err != nil {
		t.Fatal(err)
	}
	listen := freeAddr(t)
	base := "http://" + listen
	start(t, "pipeline", "pipeline", "--config", cfgPath, "--nats", natsURL)
	proxyProc := start(t, "proxy", "proxy", "--config", cfgPath, "--nats", natsURL, "--listen", listen,
		"--upstream", upstream.URL, "--spool-dir", filepath.Join(dir, "spool"))

	var sent, errs atomic.Int64
	newClient := func(key string) *client {
		tr := &http.Transport{MaxIdleConnsPerHost: 4}
		t.Cleanup(tr.CloseIdleConnections)
		return &client{key: key, base: base, http: &http.Client{Transport: tr, Timeout: 10 * time.Second},
			statuses: map[int]int{}, sent: &sent, errors: &errs}
	}
	probe := newClient("probe")
	testutil.Eventually(t, 20*time.Second, func() bool {
		resp, err := http.Get(base + "/items/1")
		if err == nil {
			resp.Body.Close()
			sent.Add(1)
		}
		return err == nil && resp.StatusCode == 200
	}, "proxy never answered")

	// Normal clients: 20 principals, about 2 req/s each over two APIs.
	ctx, stopNormal := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var normals []*client
	for i := range 20 {
		c := newClient(fmt.Sprintf("client-%02d", i))
		normals = append(normals, c)
		wg.Go(func() {
			for n := 0; ctx.Err() == nil; n++ {
				if n%3 == 2 {
					c.do("POST", "/orders")
				} else {
					c.do("GET", fmt.Sprintf("/items/%d", n))
				}
				select {
				case <-ctx.Done():
				case <-time.After(time.Duration(400+37*i%200) * time.Millisecond):
				}
			}
		})
	}
	defer func() { stopNormal(); wg.Wait() }()

	// Warm-up: a first window (2s), then a few windows of baseline samples.
	time.Sleep(6 * time.Second)

	// The attacker hammers POST /orders until it is refused.
	attacker := newClient("attacker")
	t.Logf("attacker blocked %s after its attack began", hammer(t, attacker))
	if out := apiguard(t, "blocks", "--nats", natsURL); !strings.Contains(out, "attacker") {
		t.Errorf("blocks does not list the attacker:\n%s", out)
	}
	testutil.Eventually(t, 10*time.Second, func() bool { return alertFor(am, "attacker") },
		"Alertmanager has no alert for the attacker")
	for _, c := range []string{"client-00", "client-07", "probe"} {
		if alertFor(am, c) {
			t.Errorf("Alertmanager has an alert for normal client %s", c)
		}
	}

	// Once its window has passed, unblock restores the attacker.
	time.Sleep(2500 * time.Millisecond)
	apiguard(t, "unblock", "--nats", natsURL, "key", "attacker")
	testutil.Eventually(t, 5*time.Second, func() bool {
		ok := attacker.do("POST", "/orders") == http.StatusOK
		time.Sleep(200 * time.Millisecond)
		return ok
	}, "attacker still refused after unblock")

	// NATS goes away in mid-run: the proxy keeps serving from memory and spools.
	okBefore := probe.count(200)
	srv.Shutdown()
	srv.WaitForShutdown()
	outageStart := time.Now()
	for time.Since(outageStart) < 2*time.Second {
		if st := probe.do("GET", "/items/7"); st != 200 {
			t.Fatalf("proxy answered %d while NATS was away", st)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if probe.count(200)-okBefore < 10 {
		t.Fatalf("proxy served %d requests during the outage", probe.count(200)-okBefore)
	}
	testutil.JetStream(t, natsPort, store)

	// The loop closes again after the outage: consumers and the watcher
	// have recovered, and a second attacker is refused.
	second := newClient("second-attacker")
	t.Logf("second attacker blocked %s after its attack began, after the outage", hammer(t, second))
	stopNormal()
	wg.Wait()
	want := uint64(sent.Load())
	var stored uint64
	testutil.Eventually(t, 30*time.Second, func() bool {
		n, err := topology.EventCount(context.Background(), js)
		stored = n
		return err == nil && n == want
	}, "stream holds %d events for %d requests", func() any { return stored }, want)
	if errs.Load() != 0 {
		t.Errorf("%d client requests failed at the transport", errs.Load())
	}
	for _, c := range normals {
		for _, st := range []int{401, 403, 429} {
			if n := c.count(st); n > 0 {
				t.Errorf("normal client %s got %d × %d", c.key, n, st)
			}
		}
		if c.count(200)+c.count(201) == 0 {
			t.Errorf("normal client %s was never served", c.key)
		}
	}
	proxyProc.stop(t)
	if n, _ := topology.EventCount(context.Background(), js); n != want {
		t.Errorf("after proxy shutdown the stream holds %d events, want %d", n, want)
	}
}

// hammer sends POST /orders as fast as one client can until it is refused
// with 403, and returns how long that took; it fails the test after 15s.
func hammer(t *testing.T, c *client) time.Duration {
	t.Helper()
	start := time.Now()
	for time.Since(start) < 15*time.Second {
		if c.do("POST", "/orders") == http.StatusForbidden {
			return time.Since(start)
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("%s not blocked within 15s; statuses %v", c.key, c.statuses)
	return 0
}

// alertFor reports whether Alertmanager holds an active apiguard alert
// whose principal label is principal.
func alertFor(am, principal string) bool {
	resp, err := http.Get(am + "/api/v2/alerts?active=true")
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	var alerts []struct {
		Labels map[string]string `json:"labels"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&alerts); err != nil {
		return false
	}
	for _, a := range alerts {
		if a.Labels["alertname"] == "ApiguardAnomaly" && a.Labels["principal"] == principal {
			return true
		}
	}
	return false
}
