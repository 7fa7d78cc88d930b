package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
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

	upstream := echoUpstream(t)

	// Anomalies are also alerts, in a real Alertmanager.
	am := testutil.StartAlertmanager(t)
	alerting := fmt.Sprintf("alerts:\n  alertmanager: %s\n  min_severity: low\n  resolve_after: 10m\n", am)
	cfgPath := writeConfig(t, dir, config+alerting)
	base, proxyProc := startLoop(t, dir, cfgPath, natsURL, upstream.URL)
	pool := &clients{base: base}
	probe := pool.add(t, "probe")
	serving(t, probe)

	// Normal clients: 20 principals, about 2 req/s each over two APIs.
	var normals []*client
	for i := range 20 {
		normals = append(normals, pool.add(t, fmt.Sprintf("client-%02d", i)))
	}
	stopNormal := normalTraffic(len(normals), func(i, k int) { normals[i].normal(k) })
	defer stopNormal()
	time.Sleep(baselineWarmUp)

	// The attacker hammers POST /orders until it is refused.
	attacker := pool.add(t, "attacker")
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
	second := pool.add(t, "second-attacker")
	t.Logf("second attacker blocked %s after its attack began, after the outage", hammer(t, second))
	stopNormal()
	want := uint64(pool.sent.Load())
	var stored uint64
	testutil.Eventually(t, 30*time.Second, func() bool {
		n, err := topology.EventCount(context.Background(), js)
		stored = n
		return err == nil && n == want
	}, "stream holds %d events for %d requests", func() any { return stored }, want)
	if n := pool.errors.Load(); n != 0 {
		t.Errorf("%d client requests failed at the transport", n)
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
