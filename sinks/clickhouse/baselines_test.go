package clickhouse_test

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apiguard/apiguard/internal/testutil"
	"github.com/apiguard/apiguard/sinks/clickhouse"
)

// syncBuffer is a log destination safe for the writer's goroutine and the
// test's.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func snapshot(at time.Time, partition uint16) []clickhouse.Baseline {
	return []clickhouse.Baseline{
		{Time: at, Detector: "rate", API: "GET /search", Feature: "requests_per_window", Centre: 4, Spread: 1.5, Samples: 120, Principals: 40, Partition: partition},
		{Time: at, Detector: "rate", API: "POST /login", Feature: "requests_per_window", Centre: 1, Spread: 0.5, Samples: 30, Principals: 12, Partition: partition},
	}
}

func TestBaselineWriterStoresQueuedSnapshots(t *testing.T) {
	c := migrated(t)
	b := clickhouse.NewBaselineWriter(clickhouse.NewWriter(c), 8, slog.New(slog.DiscardHandler))
	at := time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC)
	for p := range uint16(3) {
		b.Write(snapshot(at, p)) // queued before Run: they wait
	}
	b.Write(nil) // nothing to store: not a snapshot
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.Run(ctx) }()
	testutil.Eventually(t, 10*time.Second, func() bool { return b.Stats().Stored.Load() == 3 }, "stored %d of 3 snapshots",
		func() any { return b.Stats().Stored.Load() })
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if n := count(t, c, "SELECT count() FROM "+c.Database()+".baselines"); n != 6 {
		t.Errorf("baseline rows = %d, want 6", n)
	}
	if d := b.Stats().Dropped.Load(); d != 0 {
		t.Errorf("dropped = %d, want 0", d)
	}
}

func TestBaselineWriterCountsAndLogsDrops(t *testing.T) {
	c := migrated(t)
	var logs syncBuffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	b := clickhouse.NewBaselineWriter(clickhouse.NewWriter(c), 1, log)
	at := time.Now().UTC()
	done := make(chan struct{})
	go func() {
		for p := range uint16(4) {
			b.Write(snapshot(at, p)) // not running: one waits, three are dropped
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Write blocked on a full queue")
	}
	if d := b.Stats().Dropped.Load(); d != 3 {
		t.Errorf("dropped = %d, want 3", d)
	}
	if !strings.Contains(logs.String(), "baseline queue full") || !strings.Contains(logs.String(), "dropped_total=") {
		t.Errorf("a full queue was not logged:\n%s", logs.String())
	}
	// Stopped with a snapshot still queued: counted and logged too.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := b.Run(ctx); err != nil {
		t.Fatal(err)
	}
	if got := b.Stats().Dropped.Load() + b.Stats().Stored.Load(); got != 4 {
		t.Errorf("dropped + stored = %d, want 4: a snapshot went unaccounted", got)
	}
	if b.Stats().Dropped.Load() == 4 && !strings.Contains(logs.String(), "not stored at shutdown") {
		t.Errorf("the snapshot left at shutdown was not logged:\n%s", logs.String())
	}
}
