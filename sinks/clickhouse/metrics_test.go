package clickhouse_test

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	promtest "github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/apiguard/apiguard/internal/testutil"
	"github.com/apiguard/apiguard/sinks/clickhouse"
)

// TestMetrics stores, stores again, rejects and fails records, queues
// baseline snapshots past a full queue, and reads every counter through
// the registry.
func TestMetrics(t *testing.T) {
	c := migrated(t)
	w := clickhouse.NewWriter(c)
	b := clickhouse.NewBaselineWriter(w, 1, slog.New(slog.DiscardHandler))
	reg := prometheus.NewPedanticRegistry()
	if err := clickhouse.RegisterMetrics(reg, w); err != nil {
		t.Fatal(err)
	}
	if err := clickhouse.RegisterBaselineMetrics(reg, b); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	t0 := time.Now().UTC()
	recs := encode(t, fullEvent(0, t0), fullEvent(1, t0), fullEvent(2, t0))
	if _, err := w.Events().Store(ctx, append(recs, []byte("\xffnot an event")), false); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Events().Store(ctx, recs, true); err != nil { // redelivered: all three stored already
		t.Fatal(err)
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := w.Events().Store(cancelled, encode(t, fullEvent(3, t0)), false); err == nil {
		t.Fatal("a store with a cancelled context succeeded")
	}
	b.Write(snapshot(t0, 0))
	b.Write(snapshot(t0, 1)) // the queue holds one: dropped
	rctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- b.Run(rctx) }()
	testutil.Eventually(t, 10*time.Second, func() bool { return b.Stats().Stored.Load() == 1 }, "snapshot not stored")
	stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	const want = `
# HELP apiguard_clickhouse_baselines_dropped_total Baseline snapshots dropped: queue full, insert failed, or still queued at shutdown.
# TYPE apiguard_clickhouse_baselines_dropped_total counter
apiguard_clickhouse_baselines_dropped_total 1
# HELP apiguard_clickhouse_baselines_stored_total Baseline snapshots inserted.
# TYPE apiguard_clickhouse_baselines_stored_total counter
apiguard_clickhouse_baselines_stored_total 1
# HELP apiguard_clickhouse_duplicates_total Records skipped because their id was stored already.
# TYPE apiguard_clickhouse_duplicates_total counter
apiguard_clickhouse_duplicates_total 3
# HELP apiguard_clickhouse_errors_total Inserts or stored-id lookups that failed (retried).
# TYPE apiguard_clickhouse_errors_total counter
apiguard_clickhouse_errors_total 1
# HELP apiguard_clickhouse_inserts_total Inserts that succeeded.
# TYPE apiguard_clickhouse_inserts_total counter
apiguard_clickhouse_inserts_total 2
# HELP apiguard_clickhouse_rejected_total Records that could not be decoded.
# TYPE apiguard_clickhouse_rejected_total counter
apiguard_clickhouse_rejected_total 1
# HELP apiguard_clickhouse_rows_total Rows inserted into ClickHouse.
# TYPE apiguard_clickhouse_rows_total counter
apiguard_clickhouse_rows_total 5
`
	if err := promtest.GatherAndCompare(reg, strings.NewReader(want)); err != nil {
		t.Error(err)
	}
}
