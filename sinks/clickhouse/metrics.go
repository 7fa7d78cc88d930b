package clickhouse

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// RegisterMetrics registers the writer's collectors on reg, read from its
// Stats at scrape time. The loaders that feed it register their own
// (pipeline.RegisterLoader).
func RegisterMetrics(reg prometheus.Registerer, w *Writer) error {
	st := w.Stats()
	return register(reg,
		counter("apiguard_clickhouse_rows_total", "Rows inserted into ClickHouse.", st.Rows.Load),
		counter("apiguard_clickhouse_inserts_total", "Inserts that succeeded.", st.Batches.Load),
		counter("apiguard_clickhouse_duplicates_total", "Records skipped because their id was stored already.", st.Duplicates.Load),
		counter("apiguard_clickhouse_rejected_total", "Records that could not be decoded.", st.Rejected.Load),
		counter("apiguard_clickhouse_errors_total", "Inserts or stored-id lookups that failed (retried).", st.Errors.Load),
	)
}

// RegisterBaselineMetrics registers the baseline writer's collectors on reg.
func RegisterBaselineMetrics(reg prometheus.Registerer, b *BaselineWriter) error {
	st := b.Stats()
	return register(reg,
		counter("apiguard_clickhouse_baselines_stored_total", "Baseline snapshots inserted.", st.Stored.Load),
		counter("apiguard_clickhouse_baselines_dropped_total", "Baseline snapshots dropped: queue full, insert failed, or still queued at shutdown.", st.Dropped.Load),
	)
}

func counter(name, help string, f func() uint64) prometheus.Collector {
	return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help}, func() float64 { return float64(f()) })
}

func register(reg prometheus.Registerer, cs ...prometheus.Collector) error {
	for _, c := range cs {
		if err := reg.Register(c); err != nil {
			return fmt.Errorf("registering ClickHouse metrics: %w", err)
		}
	}
	return nil
}
