package responder_test

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	promtest "github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/apiguard/apiguard/enforce"
	"github.com/apiguard/apiguard/event"
	"github.com/apiguard/apiguard/pipeline/responder"
)

// fakeWriter refuses entries whose value is "refused".
type fakeWriter struct{ puts int }

func (w *fakeWriter) Put(_ context.Context, e enforce.Entry, _ time.Time) (uint64, error) {
	if e.Value == "refused" {
		return 0, errors.New("bucket unavailable")
	}
	w.puts++
	return uint64(w.puts), nil
}

type fakeAudit struct{ actions []*event.Action }

func (a *fakeAudit) WriteAction(_ context.Context, act *event.Action) error {
	a.actions = append(a.actions, act)
	return nil
}

const actionsHeader = `
# HELP apiguard_responder_actions_total Actions the responder recorded on the audit stream: dry_run="false" were enforced (written to the enforcement bucket), dry_run="true" were recorded only (dry-run mode, the per-minute cap, a never-block rule or allow entry, a shared principal).
# TYPE apiguard_responder_actions_total counter
`

// TestMetricsCountDryRunActions is the regression test for a counter whose
// help said dry-run actions were included while it counted only enforced
// ones: a responder in dry-run mode showed no action at all.
func TestMetricsCountDryRunActions(t *testing.T) {
	cfg := responder.DefaultConfig()
	cfg.DryRun = true
	w, audit := &fakeWriter{}, &fakeAudit{}
	r := responder.New(cfg, w, audit, time.Now, slog.New(slog.DiscardHandler))
	reg := prometheus.NewPedanticRegistry()
	if err := responder.RegisterMetrics(reg, r); err != nil {
		t.Fatal(err)
	}
	for i, v := range []string{"k1", "k2"} {
		if err := r.WriteAnomaly(context.Background(), anomaly("A"+v, event.KindKey, v, 0.9)); err != nil {
			t.Fatalf("anomaly %d: %v", i, err)
		}
	}
	if w.puts != 0 || len(audit.actions) != 2 {
		t.Fatalf("dry run: %d entries written, %d actions audited; want 0 and 2", w.puts, len(audit.actions))
	}
	want := actionsHeader + `apiguard_responder_actions_total{dry_run="false"} 0
apiguard_responder_actions_total{dry_run="true"} 2
`
	if err := promtest.GatherAndCompare(reg, strings.NewReader(want), "apiguard_responder_actions_total"); err != nil {
		t.Error(err)
	}
}

// TestMetrics drives an enforcing responder through each outcome: enforced,
// spared by a never-block rule, held back by the cap, ignored, refused.
func TestMetrics(t *testing.T) {
	cfg := responder.DefaultConfig()
	cfg.MaxActionsPerMinute = 2 // a refused write gives its slot back
	cfg.NeverBlockKeys = []string{"monitoring"}
	w, audit := &fakeWriter{}, &fakeAudit{}
	now := time.Now()
	r := responder.New(cfg, w, audit, func() time.Time { return now }, slog.New(slog.DiscardHandler))
	reg := prometheus.NewPedanticRegistry()
	if err := responder.RegisterMetrics(reg, r); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, tc := range []struct {
		a       *event.Anomaly
		wantErr bool
	}{
		{anomaly("A1", event.KindKey, "k1", 0.9), false},         // enforced
		{anomaly("A2", event.KindKey, "monitoring", 0.9), false}, // spared: recorded only
		{anomaly("A3", event.KindKey, "k3", 0.2), false},         // below min_score: ignored
		{anomaly("A4", event.KindKey, "refused", 0.9), true},     // the bucket refuses: a failure
		{anomaly("A5", event.KindKey, "k5", 0.9), false},         // enforced (the second slot of the minute)
		{anomaly("A6", event.KindKey, "k6", 0.9), false},         // over the cap: recorded only
	} {
		if err := r.WriteAnomaly(ctx, tc.a); (err != nil) != tc.wantErr {
			t.Fatalf("%s: err %v, want error %v", tc.a.Id, err, tc.wantErr)
		}
	}
	want := actionsHeader + `apiguard_responder_actions_total{dry_run="false"} 2
apiguard_responder_actions_total{dry_run="true"} 2
# HELP apiguard_responder_failures_total Actions the enforcement bucket or the audit stream refused (the pipeline retries the anomaly).
# TYPE apiguard_responder_failures_total counter
apiguard_responder_failures_total 1
# HELP apiguard_responder_ignored_total Anomalies the policy does not act on: below responder.min_score, about an API rather than a principal, or of an unknown principal kind.
# TYPE apiguard_responder_ignored_total counter
apiguard_responder_ignored_total 1
# HELP apiguard_responder_shared_total Anomalies on a principal that more than responder.max_shared_principals established principals share: its attacking members were blocked, or it was throttled or recorded only, instead.
# TYPE apiguard_responder_shared_total counter
apiguard_responder_shared_total 0
`
	if err := promtest.GatherAndCompare(reg, strings.NewReader(want), "apiguard_responder_actions_total", "apiguard_responder_failures_total",
		"apiguard_responder_ignored_total", "apiguard_responder_shared_total"); err != nil {
		t.Error(err)
	}
	// A1 escalates nothing, and every anomaly matched a rule.
	want = `# HELP apiguard_responder_escalated_total Actions made longer (repeat offences within responder.escalation.window) or turned from throttle to block (several detectors).
# TYPE apiguard_responder_escalated_total counter
apiguard_responder_escalated_total 0
# HELP apiguard_responder_unmatched_total Anomalies that no rule of responder.policies matched.
# TYPE apiguard_responder_unmatched_total counter
apiguard_responder_unmatched_total 0
`
	if err := promtest.GatherAndCompare(reg, strings.NewReader(want), "apiguard_responder_escalated_total", "apiguard_responder_unmatched_total"); err != nil {
		t.Error(err)
	}
	var dry int
	for _, a := range audit.actions {
		if a.DryRun {
			dry++
		}
	}
	if len(audit.actions) != 4 || dry != 2 {
		t.Errorf("audited %d actions, %d dry-run; the metric must agree with the audit stream (4, 2)", len(audit.actions), dry)
	}
}
