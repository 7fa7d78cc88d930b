package emit

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	promtest "github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/apiguard/apiguard/internal/testutil"
)

// TestMetrics fills a stopped emitter past its queue, runs it, sends one
// event again, and reads every series through the registry.
func TestMetrics(t *testing.T) {
	cfg := DefaultConfig()
	cfg.QueueSize, cfg.BatchSize = 4, 4
	_, _, e, _ := setup(t, cfg)
	reg := prometheus.NewPedanticRegistry()
	if err := RegisterMetrics(reg, e); err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		e.Emit(ev(i))
	}
	read := func(name string) float64 {
		t.Helper()
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range mfs {
			if mf.GetName() == name {
				m := mf.GetMetric()[0]
				return m.GetCounter().GetValue() + m.GetGauge().GetValue()
			}
		}
		t.Fatalf("%s not gathered", name)
		return 0
	}
	for name, want := range map[string]float64{
		"apiguard_emit_events_total": 4, "apiguard_emit_dropped_queue_total": 6, "apiguard_emit_queue_length": 4,
		"apiguard_emit_published_total": 0, "apiguard_emit_spool_bytes": 0,
	} {
		if got := read(name); got != want {
			t.Errorf("before Run: %s = %g, want %g", name, got, want)
		}
	}
	run(t, e)
	testutil.Eventually(t, 10*time.Second, func() bool { return read("apiguard_emit_published_total") == 4 }, "not published")
	e.Emit(ev(2)) // the same event id again: stored once, acknowledged as a duplicate
	testutil.Eventually(t, 10*time.Second, func() bool { return read("apiguard_emit_duplicates_total") == 1 }, "duplicate not counted")
	for name, want := range map[string]float64{
		"apiguard_emit_events_total": 5, "apiguard_emit_published_total": 5, "apiguard_emit_queue_length": 0,
		"apiguard_emit_spooled_total": 0, "apiguard_emit_dropped_spool_total": 0, "apiguard_emit_publish_errors_total": 0,
		"apiguard_emit_encode_errors_total": 0,
	} {
		if got := read(name); got != want {
			t.Errorf("after Run: %s = %g, want %g", name, got, want)
		}
	}
	if n, err := promtest.GatherAndCount(reg); err != nil || n != 10 {
		t.Errorf("%d series (%v), want 10", n, err)
	}
}
