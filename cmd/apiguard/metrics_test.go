package main

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	promtest "github.com/prometheus/client_golang/prometheus/testutil"
	"golang.org/x/sync/errgroup"

	"github.com/apiguard/apiguard/event"
	"github.com/apiguard/apiguard/internal/secret"
	"github.com/apiguard/apiguard/internal/testutil"
)

// TestMetricsWiring starts a proxy and a pipeline on one registry, as up
// does, and checks that every component's collectors are registered and
// that a dry-run action is counted as one.
func TestMetricsWiring(t *testing.T) {
	s := testutil.JetStream(t, -1, "")
	cfg := DefaultConfig()
	cfg.NATS.URL = secret.URL(s.ClientURL())
	cfg.Proxy.Listen = "127.0.0.1:0"
	cfg.Emit.SpoolDir = t.TempDir()
	cfg.Responder.DryRun = true
	reg := prometheus.NewPedanticRegistry()
	log := slog.New(slog.DiscardHandler)
	ctx, cancel := context.WithCancel(context.Background())
	var g errgroup.Group
	defer func() {
		cancel()
		if err := g.Wait(); err != nil {
			t.Error(err)
		}
	}()
	if _, err := startProxy(ctx, &g, cfg, cfg.NATS.URL, log, reg, nil, nil); err != nil {
		t.Fatal(err)
	}
	pp, err := startPipeline(ctx, &g, cfg, cfg.NATS.URL, log, reg, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	a := &event.Anomaly{Id: "01WIRING", TimeUnixNano: time.Now().UnixNano(), Detector: "rate", Api: "GET /x",
		Principal: &event.Principal{Kind: event.KindKey, Value: "k1"}, Score: 0.9, Severity: event.Severity_SEVERITY_HIGH}
	if err := pp.responder.WriteAnomaly(ctx, a); err != nil {
		t.Fatal(err)
	}
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, mf := range families {
		names[mf.GetName()] = true
	}
	for _, want := range []string{
		"apiguard_proxy_upstream_errors_total", "apiguard_proxy_reloads_total",
		"apiguard_proxy_reload_failures_total", "apiguard_emit_events_total", "apiguard_emit_queue_length",
		"apiguard_enforce_entries", "apiguard_enforce_synced", "apiguard_pipeline_events_total",
		"apiguard_responder_actions_total", "apiguard_responder_ignored_total", "apiguard_responder_failures_total",
	} {
		if !names[want] {
			t.Errorf("%s is not registered", want)
		}
	}
	dry, err := promtest.GatherAndCount(reg, "apiguard_responder_actions_total")
	if err != nil || dry != 2 {
		t.Fatalf("apiguard_responder_actions_total has %d series (%v), want dry_run false and true", dry, err)
	}
	for _, mf := range families {
		if mf.GetName() != "apiguard_responder_actions_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			want := 0.0
			if m.GetLabel()[0].GetValue() == "true" {
				want = 1
			}
			if got := m.GetCounter().GetValue(); got != want {
				t.Errorf("apiguard_responder_actions_total{dry_run=%q} = %g, want %g", m.GetLabel()[0].GetValue(), got, want)
			}
		}
	}
}
