package pipeline

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"
)

// Store is where a Loader puts batches of one stream's messages: a
// ClickHouse table, for instance. Store writes every record of the batch,
// or returns an error and then none of the batch counts as written. It
// returns by index the records it can never write (undecodable), with
// the reason. maybeStored says that some records may have been written
// before (redelivered, or retried after an error that may have come after
// the write); the store must then skip those it has.
type Store interface {
	Store(ctx context.Context, records [][]byte, maybeStored bool) (rejected map[int]error, err error)
}

// BatchMessage is a message as a Loader sees it.
type BatchMessage interface {
	Message
	// Redelivered reports that the server delivered the message before.
	Redelivered() bool
	// InProgress asks the server to wait longer for the acknowledgement.
	InProgress() error
}

// BatchSource delivers one stream's messages to a Loader.
type BatchSource interface {
	// Next waits for the next message until ctx ends, then returns
	// ctx.Err(). After Stop it returns ErrStopped.
	Next(ctx context.Context) (BatchMessage, error)
	Stop()
}

// LoaderConfig sizes a Loader's batches.
type LoaderConfig struct {
	// BatchSize is the most messages in one Store call.
	BatchSize int
	// FlushInterval is the longest the first message of a batch waits.
	FlushInterval time.Duration
	// Parallel is how many batches may be in the store's hands at once
	// (at least 1).
	Parallel int
	// KeepAlive is how often messages held through a failing store are
	// marked in progress, so the server does not deliver them again; keep
	// it well under the consumer's ack wait.
	KeepAlive time.Duration
}

// LoaderStats are a loader's counters, safe to read while it runs.
type LoaderStats struct {
	Messages  atomic.Uint64 // written and acknowledged
	Batches   atomic.Uint64 // Store calls that succeeded
	Rejected  atomic.Uint64 // terminated as never writable
	Failures  atomic.Uint64 // Store calls that failed (and were retried)
	Paused    atomic.Bool   // a batch is waiting for the store to come back
	Holding   atomic.Int64  // messages in the batch in hand
	LastBatch atomic.Int64  // unix nanoseconds of the last successful batch
}

// Loader moves one stream into a Store: it gathers messages into batches by
// size and time, stores each batch, and acknowledges its messages only
// after the store succeeded. While the store fails it retries the same
// batch with backoff and takes nothing new: the stream keeps the rest, so
// nothing is lost and the loader catches up when the store returns.
// Detection does not wait for it; each loader has a consumer of its own.
type Loader struct {
	name  string
	src   BatchSource
	store Store
	cfg   LoaderConfig
	log   *slog.Logger
	stats LoaderStats
	// drainTimeout bounds the last store at shutdown.
	drainTimeout time.Duration
	// lastRejectLog rate-limits the log of rejected messages, which a
	// publisher could otherwise use to flood it.
	lastRejectLog time.Time
}

// NewLoader returns a loader named name (for logs) from src into store.
func NewLoader(name string, src BatchSource, store Store, cfg LoaderConfig, log *slog.Logger) *Loader {
	if cfg.KeepAlive <= 0 {
		cfg.KeepAlive = 10 * time.Second
	}
	return &Loader{name: name, src: src, store: store, cfg: cfg, log: log.With("loader", name), drainTimeout: 5 * time.Second}
}

// Stats returns the live counters.
func (l *Loader) Stats() *LoaderStats { return &l.stats }

// Run loads until ctx ends. One goroutine gathers batches; Parallel
// goroutines store them, so that gathering and encoding the next batch
// overlaps the store's work on the last. The batches in hand when ctx ends
// are stored within a short grace period; if that fails they stay
// unacknowledged and the server delivers them again later, when the store
// skips what it has.
func (l *Loader) Run(ctx context.Context) error {
	defer l.src.Stop()
	batches := make(chan []BatchMessage)
	var g errgroup.Group
	for range max(1, l.cfg.Parallel) {
		g.Go(func() error {
			for batch := range batches {
				wctx, cancel := ctx, context.CancelFunc(func() {})
				if ctx.Err() != nil {
					wctx, cancel = context.WithTimeout(context.WithoutCancel(ctx), l.drainTimeout)
				}
				err := l.write(wctx, batch)
				cancel()
				if err != nil && ctx.Err() == nil {
					return err
				}
			}
			return nil
		})
	}
	for {
		batch, err := l.collect(ctx)
		if len(batch) > 0 {
			batches <- batch
		}
		if ctx.Err() != nil || errors.Is(err, ErrStopped) {
			break
		}
	}
	close(batches)
	return g.Wait()
}

// collect waits for a first message, then takes more until the batch is
// full or FlushInterval has passed since the first.
func (l *Loader) collect(ctx context.Context) ([]BatchMessage, error) {
	first, err := l.next(ctx)
	if err != nil {
		return nil, err
	}
	batch := []BatchMessage{first}
	l.stats.Holding.Store(1)
	fctx, cancel := context.WithTimeout(ctx, l.cfg.FlushInterval)
	defer cancel()
	for len(batch) < l.cfg.BatchSize {
		m, err := l.next(fctx)
		if err != nil {
			if errors.Is(err, fctx.Err()) && ctx.Err() == nil {
				return batch, nil // the flush interval passed
			}
			return batch, err
		}
		batch = append(batch, m)
		l.stats.Holding.Store(int64(len(batch)))
	}
	return batch, nil
}

func (l *Loader) next(ctx context.Context) (BatchMessage, error) {
	for {
		m, err := l.src.Next(ctx)
		switch {
		case err == nil:
			return m, nil
		case errors.Is(err, ErrStopped):
			return nil, err
		case ctx.Err() != nil:
			return nil, ctx.Err()
		}
		l.log.Warn("receiving message", "err", err)
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// write stores batch, retrying with backoff until it succeeds or ctx
// ends, then acknowledges it.
func (l *Loader) write(ctx context.Context, batch []BatchMessage) error {
	records := make([][]byte, len(batch))
	maybeStored := false
	for i, m := range batch {
		records[i] = m.Data()
		maybeStored = maybeStored || m.Redelivered()
	}
	backoff := 100 * time.Millisecond
	lastKeep := time.Now()
	for {
		rejected, err := l.store.Store(ctx, records, maybeStored)
		if err == nil {
			l.stats.Paused.Store(false)
			return l.acknowledge(batch, rejected)
		}
		l.stats.Failures.Add(1)
		l.stats.Paused.Store(true)
		// The failure may have come after the store committed (a lost
		// reply): from now on, ask it to skip what it has.
		maybeStored = true
		l.log.Warn("store failed, holding the batch and retrying", "messages", len(batch), "err", err, "backoff", backoff)
		select {
		case <-ctx.Done():
			return fmt.Errorf("storing a batch of %d for %s: %w", len(batch), l.name, ctx.Err())
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
		if time.Since(lastKeep) >= l.cfg.KeepAlive {
			lastKeep = time.Now()
			for _, m := range batch {
				if err := m.InProgress(); err != nil {
					l.log.Warn("extending ack wait", "err", err)
					break
				}
			}
		}
	}
}

func (l *Loader) acknowledge(batch []BatchMessage, rejected map[int]error) error {
	for i, m := range batch {
		if reason, bad := rejected[i]; bad {
			l.stats.Rejected.Add(1)
			if now := time.Now(); now.Sub(l.lastRejectLog) > time.Second {
				l.lastRejectLog = now
				l.log.Warn("terminating a message the store can never take", "seq", m.Sequence(), "err", reason,
					"rejected_total", l.stats.Rejected.Load())
			}
			if err := m.Term(reason.Error()); err != nil {
				return fmt.Errorf("terminating message %d: %w", m.Sequence(), err)
			}
			continue
		}
		if err := m.Ack(); err != nil {
			// Not fatal: the message comes again and the store skips it.
			l.log.Warn("acknowledging a stored message", "seq", m.Sequence(), "err", err)
		}
	}
	l.stats.Holding.Store(0)
	l.stats.Messages.Add(uint64(len(batch) - len(rejected)))
	l.stats.Batches.Add(1)
	l.stats.LastBatch.Store(time.Now().UnixNano())
	return nil
}
