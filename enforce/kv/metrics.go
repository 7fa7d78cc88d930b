package kv

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// RegisterMetrics registers the collectors of the enforcement state a
// proxy holds on reg: the watcher's counters and the entries in the
// matcher it feeds, read at scrape time.
func RegisterMetrics(reg prometheus.Registerer, w *Watcher) error {
	counter := func(name, help string, f func() uint64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help},
			func() float64 { return float64(f()) })
	}
	gauge := func(name, help string, f func() float64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, f)
	}
	for _, c := range []prometheus.Collector{
		gauge("apiguard_enforce_entries", "Enforcement entries in the proxy's matcher.", func() float64 { return float64(w.m.Len()) }),
		gauge("apiguard_enforce_synced", "1 while the proxy holds the enforcement state (loaded, and not being reloaded after a failed watch).", func() float64 {
			if w.Synced() {
				return 1
			}
			return 0
		}),
		counter("apiguard_enforce_changes_total", "Enforcement puts and deletes applied from the KV bucket after the initial load.", w.Applied),
		counter("apiguard_enforce_malformed_total", "Enforcement entries skipped as malformed.", w.Malformed),
	} {
		if err := reg.Register(c); err != nil {
			return fmt.Errorf("registering enforcement metrics: %w", err)
		}
	}
	return nil
}
