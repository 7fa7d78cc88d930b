package clickhouse

import (
	"context"
	"log/slog"
	"sync/atomic"
	"time"
)

// baselineInsertTimeout bounds one snapshot's insert.
const baselineInsertTimeout = 10 * time.Second

// BaselineStats are a BaselineWriter's counters, in snapshots (the rows of
// one partition at one time); safe to read while it runs.
type BaselineStats struct {
	Stored  atomic.Uint64 // inserted
	Dropped atomic.Uint64 // queue full, insert failed, or still queued at shutdown
}

// BaselineWriter takes baseline snapshots off the detection path and
// inserts them in the background. Snapshots are derived data, taken again
// at the next interval: when the queue is full or an insert fails, a
// snapshot is dropped rather than hold up detection, and every drop is
// counted and logged (at most once a second). Write is safe from any
// goroutine; Run owns the inserts and must be running for snapshots to
// leave the queue. Build it with NewBaselineWriter.
type BaselineWriter struct {
	w       *Writer
	queue   chan []Baseline
	log     *slog.Logger
	stats   BaselineStats
	lastLog atomic.Int64
}

// NewBaselineWriter returns a writer inserting through w with a queue of
// queueSize snapshots (at least 1).
func NewBaselineWriter(w *Writer, queueSize int, log *slog.Logger) *BaselineWriter {
	return &BaselineWriter{w: w, queue: make(chan []Baseline, max(queueSize, 1)), log: log}
}

// Stats returns the live counters.
func (b *BaselineWriter) Stats() *BaselineStats { return &b.stats }

// Write queues one snapshot without blocking; the writer owns rows from
// then on. A full queue drops the snapshot, counts and logs it.
func (b *BaselineWriter) Write(rows []Baseline) {
	if len(rows) == 0 {
		return
	}
	select {
	case b.queue <- rows:
	default:
		b.drop("baseline queue full, dropping a snapshot", 1, "queue_size", cap(b.queue))
	}
}

// Run inserts queued snapshots until ctx ends, then counts and logs those
// still queued as dropped, and returns nil.
func (b *BaselineWriter) Run(ctx context.Context) error {
	for {
		select {
		case <-ctx.Done():
			if n := len(b.queue); n > 0 {
				// Not inserted: ClickHouse may be the reason for the stop,
				// and the next run takes a snapshot of its own.
				b.stats.Dropped.Add(uint64(n))
				b.log.Warn("baseline snapshots not stored at shutdown", "snapshots", n, "dropped_total", b.stats.Dropped.Load())
			}
			return nil
		case rows := <-b.queue:
			wctx, cancel := context.WithTimeout(ctx, baselineInsertTimeout)
			err := b.w.WriteBaselines(wctx, rows)
			cancel()
			switch {
			case err == nil:
				b.stats.Stored.Add(1)
			case ctx.Err() != nil:
				b.stats.Dropped.Add(1) // the insert was cut short by the stop
				b.log.Warn("baseline snapshot not stored at shutdown", "rows", len(rows), "dropped_total", b.stats.Dropped.Load())
			default:
				b.drop("baseline snapshot not stored", 1, "rows", len(rows), "err", err)
			}
		}
	}
}

// drop counts n dropped snapshots and logs at most once a second.
func (b *BaselineWriter) drop(msg string, n uint64, args ...any) {
	total := b.stats.Dropped.Add(n)
	now := time.Now().UnixNano()
	if last := b.lastLog.Load(); now-last > int64(time.Second) && b.lastLog.CompareAndSwap(last, now) {
		b.log.Warn(msg, append(args, "dropped_total", total)...)
	}
}
