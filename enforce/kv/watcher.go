package kv

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/apiguard/apiguard/enforce"
)

// maxDeltaBatch bounds how many queued updates one snapshot swap absorbs.
const maxDeltaBatch = 4096

// Watcher keeps a Matcher equal to the bucket: it loads every entry, swaps
// them in as one snapshot, then applies changes as they arrive, batching
// those that are already queued into one swap. If the watch fails it starts
// again with a full load, so a proxy that lost NATS keeps enforcing what it
// had and catches up when NATS returns.
type Watcher struct {
	open BucketFunc
	m    *enforce.Matcher
	log  *slog.Logger

	// OnApply, if set before Run, is called from Run's goroutine for each
	// entry put after the initial load, with the time it took effect.
	OnApply func(e enforce.Entry, at time.Time)
	// Now is the clock used for OnApply; time.Now if nil.
	Now func() time.Time

	resync    chan struct{}
	synced    atomic.Bool
	applied   atomic.Uint64
	malformed atomic.Uint64
}

// errResync ends a watch that Resync asked to restart.
var errResync = errors.New("resync requested")

// BucketFunc opens the enforcement bucket. The Watcher calls it at the start
// of every watch, so a proxy can start before NATS or the bucket is there.
type BucketFunc func(ctx context.Context) (jetstream.KeyValue, error)

// Bucket returns a BucketFunc for a bucket already open.
func Bucket(kv jetstream.KeyValue) BucketFunc {
	return func(context.Context) (jetstream.KeyValue, error) { return kv, nil }
}

// NewWatcher returns a Watcher that feeds m from the bucket that open returns.
func NewWatcher(open BucketFunc, m *enforce.Matcher, log *slog.Logger) *Watcher {
	return &Watcher{open: open, m: m, log: log, resync: make(chan struct{}, 1)}
}

// Resync makes Run restart its watch with a full load, at once. Call it when
// the NATS connection has been re-established: a watch that spanned a server
// restart can be left silent. It does not block and is safe from any goroutine.
func (w *Watcher) Resync() {
	select {
	case w.resync <- struct{}{}:
	default:
	}
}

// Synced reports whether the full snapshot has been loaded by the current
// watch. It turns false while a failed watch is being restarted.
func (w *Watcher) Synced() bool { return w.synced.Load() }

// Applied returns the number of puts and deletes applied after initial loads.
func (w *Watcher) Applied() uint64 { return w.applied.Load() }

// Malformed returns the number of entries skipped because they did not decode.
func (w *Watcher) Malformed() uint64 { return w.malformed.Load() }

// Run watches until ctx is done, restarting the watch with backoff when it
// fails. It returns nil when ctx is done.
func (w *Watcher) Run(ctx context.Context) error {
	backoff := 100 * time.Millisecond
	for {
		err := w.watch(ctx)
		w.synced.Store(false)
		if ctx.Err() != nil {
			return nil
		}
		if errors.Is(err, errResync) {
			// The matcher keeps the last snapshot until the reload swaps in.
			w.log.Info("reloading the enforcement snapshot after a reconnect")
			backoff = 100 * time.Millisecond
			continue
		}
		w.log.Warn("enforcement watch failed, restarting", "err", err, "backoff", backoff)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

func (w *Watcher) now() time.Time {
	if w.Now != nil {
		return w.Now()
	}
	return time.Now()
}

func (w *Watcher) watch(ctx context.Context) error {
	bucket, err := w.open(ctx)
	if err != nil {
		return fmt.Errorf("opening enforcement bucket: %w", err)
	}
	kw, err := bucket.WatchAll(ctx)
	if err != nil {
		return fmt.Errorf("watching %s: %w", bucket.Bucket(), err)
	}
	defer func() { _ = kw.Stop() }()
	updates := kw.Updates()

	// Initial load: latest value of every key, then a nil marker.
	initial := map[string]enforce.Entry{}
	for loading := true; loading; {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-w.resync:
			return errResync
		case u, ok := <-updates:
			if !ok {
				return errors.New("watch closed during initial load")
			}
			if u == nil {
				loading = false
				break
			}
			if u.Operation() != jetstream.KeyValuePut {
				delete(initial, u.Key())
				continue
			}
			if e, ok := w.decode(u); ok {
				initial[u.Key()] = e
			}
		}
	}
	entries := make([]enforce.Entry, 0, len(initial))
	for _, e := range initial {
		entries = append(entries, e)
	}
	for _, err := range w.m.Replace(entries) {
		w.malformed.Add(1)
		w.log.Warn("skipping malformed enforcement entry", "err", err)
	}
	w.synced.Store(true)
	w.log.Info("enforcement snapshot loaded", "entries", w.m.Len())

	var changes []enforce.Change
	for {
		changes = changes[:0]
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-w.resync:
			return errResync
		case u, ok := <-updates:
			if !ok {
				return errors.New("watch closed")
			}
			changes = w.add(u, changes)
		}
		// Absorb what is already queued into the same swap.
	drain:
		for len(changes) < maxDeltaBatch {
			select {
			case u, ok := <-updates:
				if !ok {
					break drain
				}
				changes = w.add(u, changes)
			default:
				break drain
			}
		}
		if len(changes) == 0 {
			continue
		}
		for _, err := range w.m.Apply(changes) {
			w.malformed.Add(1)
			w.log.Warn("skipping malformed enforcement entry", "err", err)
		}
		w.applied.Add(uint64(len(changes)))
		if w.OnApply != nil {
			at := w.now()
			for _, c := range changes {
				if c.Entry != nil {
					w.OnApply(*c.Entry, at)
				}
			}
		}
	}
}

// add appends the change an update makes, skipping malformed ones.
func (w *Watcher) add(u jetstream.KeyValueEntry, changes []enforce.Change) []enforce.Change {
	if u == nil {
		return changes
	}
	if u.Operation() != jetstream.KeyValuePut {
		kind, v, err := ParseKey(u.Key())
		if err != nil {
			w.malformed.Add(1)
			w.log.Warn("skipping malformed enforcement key", "key", u.Key(), "err", err)
			return changes
		}
		return append(changes, enforce.Delete(enforce.Key{Kind: kind, Value: v}))
	}
	if e, ok := w.decode(u); ok {
		changes = append(changes, enforce.Put(e))
	}
	return changes
}

func (w *Watcher) decode(u jetstream.KeyValueEntry) (enforce.Entry, bool) {
	e, err := DecodeEntry(u.Key(), u.Value())
	if err != nil {
		w.malformed.Add(1)
		w.log.Warn("skipping malformed enforcement entry", "key", u.Key(), "revision", u.Revision(), "err", err)
		return enforce.Entry{}, false
	}
	return e, true
}
