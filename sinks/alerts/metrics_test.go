package alerts

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	promtest "github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/apiguard/apiguard/event"
	"github.com/apiguard/apiguard/internal/secret"
	"github.com/apiguard/apiguard/internal/testutil"
)

// TestMetrics drives a sender against one webhook that accepts and one
// that refuses, and reads the counters through the registry.
func TestMetrics(t *testing.T) {
	ok := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer ok.Close()
	refuse := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "gone", http.StatusGone)
	}))
	defer refuse.Close()
	cfg := DefaultConfig()
	cfg.Webhooks = []WebhookConfig{{URL: secret.String(ok.URL), Format: "slack"}, {URL: secret.String(refuse.URL), Format: "slack"}}
	s := newSender(t, cfg, nil)
	reg := prometheus.NewPedanticRegistry()
	if err := RegisterMetrics(reg, s); err != nil {
		t.Fatal(err)
	}
	stop := run(t, s)
	_ = s.WriteAnomaly(context.Background(), anomaly(event.Severity_SEVERITY_HIGH, "k1"))
	_ = s.WriteAnomaly(context.Background(), anomaly(event.Severity_SEVERITY_LOW, "k2"))
	testutil.Eventually(t, 5*time.Second, func() bool { return s.Stats().Delivered.Load()+s.Stats().Failed.Load() == 2 }, "not delivered")
	stop()
	const want = `
# HELP apiguard_alerts_delivered_total Alert deliveries a destination accepted.
# TYPE apiguard_alerts_delivered_total counter
apiguard_alerts_delivered_total 1
# HELP apiguard_alerts_failed_total Alert deliveries given up: refused (4xx) or still failing after the retries.
# TYPE apiguard_alerts_failed_total counter
apiguard_alerts_failed_total 1
# HELP apiguard_alerts_filtered_total Anomalies below alerts.min_severity, not alerted.
# TYPE apiguard_alerts_filtered_total counter
apiguard_alerts_filtered_total 1
# HELP apiguard_alerts_retries_total Alert delivery attempts after a failure.
# TYPE apiguard_alerts_retries_total counter
apiguard_alerts_retries_total 0
`
	if err := promtest.GatherAndCompare(reg, strings.NewReader(want), "apiguard_alerts_delivered_total",
		"apiguard_alerts_failed_total", "apiguard_alerts_filtered_total", "apiguard_alerts_retries_total"); err != nil {
		t.Error(err)
	}
	if n, err := promtest.GatherAndCount(reg); err != nil || n != 5 {
		t.Errorf("%d series (%v), want 5", n, err)
	}
	if err := RegisterMetrics(reg, s); err == nil {
		t.Error("registering twice succeeded")
	}
}
