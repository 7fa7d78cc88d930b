package kv

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/apiguard/apiguard/enforce"
)

// maxDeltaBatch bounds how many queued updates one snapshot swap absorbs.
const maxDeltaBatch = 4096

// loadBatch is how many messages the watcher asks the server for at once.
const loadBatch = 8192

// Watcher keeps a Matcher equal to the bucket. It reads the bucket's
// stream directly with an ordered consumer: a full load takes the last
// message of every key in large batches, builds one snapshot and swaps it
// in; then it applies changes as they arrive, batching those already in
// the stream into one swap. When the Matcher already holds the bucket's
// state up to a revision (a local snapshot, see Resume, or the last watch
// before a reconnect), it reads only what changed since. If the watch
// fails it starts again, so a proxy that lost NATS keeps enforcing what it
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
	loaded    atomic.Uint64 // messages read by the current load or catch-up
	toLoad    atomic.Uint64 // messages it had to read when it started

	mu  sync.Mutex
	pos enforce.Position // what m holds; Source "" when unknown
}

// errResync ends a watch that Resync asked to restart.
var errResync = errors.New("resync requested")

// BucketFunc opens the enforcement bucket and returns it with the
// JetStream context it lives in. The Watcher calls it at the start of
// every watch, so a proxy can start before NATS or the bucket is there.
type BucketFunc func(ctx context.Context) (jetstream.JetStream, jetstream.KeyValue, error)

// Bucket returns a BucketFunc for a bucket already open.
func Bucket(js jetstream.JetStream, kv jetstream.KeyValue) BucketFunc {
	return func(context.Context) (jetstream.JetStream, jetstream.KeyValue, error) { return js, kv, nil }
}

// NewWatcher returns a Watcher that feeds m from the bucket that open returns.
func NewWatcher(open BucketFunc, m *enforce.Matcher, log *slog.Logger) *Watcher {
	return &Watcher{open: open, m: m, log: log, resync: make(chan struct{}, 1)}
}

// Resume tells the Watcher, before Run, that its Matcher already holds the
// state at p (loaded from a local snapshot): if p is of the bucket the
// watch opens, Run reads only the changes after p.Revision; otherwise it
// logs why and makes a full load.
func (w *Watcher) Resume(p enforce.Position) {
	w.mu.Lock()
	w.pos = p
	w.mu.Unlock()
}

// Position returns the bucket and revision the Matcher holds, and false
// while the watcher is not synced.
func (w *Watcher) Position() (enforce.Position, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.pos, w.synced.Load() && w.pos.Source != ""
}

func (w *Watcher) setPosition(p enforce.Position) {
	w.mu.Lock()
	w.pos = p
	w.mu.Unlock()
}

// Resync makes Run restart its watch at once. Call it when the NATS
// connection has been re-established: a watch that spanned a server
// restart can be left silent. It does not block and is safe from any goroutine.
func (w *Watcher) Resync() {
	select {
	case w.resync <- struct{}{}:
	default:
	}
}

// Synced reports whether the current watch has loaded the bucket's state
// (a full load, or the changes since a snapshot). It turns false while a
// failed watch is being restarted.
func (w *Watcher) Synced() bool { return w.synced.Load() }

// Progress returns how many messages the current load or catch-up has
// read and how many it had to read, for logs while a large state loads.
func (w *Watcher) Progress() (read, total uint64) { return w.loaded.Load(), w.toLoad.Load() }

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
		if ctx.Err() != nil {
			// Stopped: the matcher still holds the state at Position,
			// which a proxy saves as it stops.
			return nil
		}
		w.synced.Store(false)
		if errors.Is(err, errResync) {
			// The matcher keeps its state until the new watch has caught up.
			w.log.Info("restarting the enforcement watch after a reconnect")
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

// SourceOf names a bucket's stream as Position.Source does: its name and
// creation time, so that a bucket made again is another source.
func SourceOf(info *jetstream.StreamInfo) string {
	return info.Config.Name + "@" + info.Created.UTC().Format(time.RFC3339Nano)
}

// resumeFrom returns the revision after which the watch may start, or 0
// for a full load, saying why when it cannot use what it holds.
func (w *Watcher) resumeFrom(source string, info *jetstream.StreamInfo) uint64 {
	w.mu.Lock()
	p := w.pos
	w.mu.Unlock()
	switch {
	case p.Source == "":
		return 0
	case p.Source != source:
		w.log.Warn("ignoring the enforcement snapshot: it is of another bucket; loading the whole bucket",
			"snapshot_source", p.Source, "bucket_source", source)
	case p.Revision > info.State.LastSeq:
		w.log.Warn("ignoring the enforcement snapshot: it is ahead of the bucket; loading the whole bucket",
			"snapshot_revision", p.Revision, "bucket_revision", info.State.LastSeq)
	case uint64(w.m.Len()) > info.State.Msgs:
		w.log.Warn("ignoring the enforcement snapshot: it holds more entries than the bucket has messages (purged?); loading the whole bucket",
			"snapshot_entries", w.m.Len(), "bucket_messages", info.State.Msgs)
	default:
		return p.Revision
	}
	// What the matcher holds is not of this bucket: drop it rather than
	// enforce it while the bucket loads.
	w.m.Load(enforce.NewBuilder())
	w.setPosition(enforce.Position{})
	return 0
}

func (w *Watcher) watch(ctx context.Context) error {
	js, bucket, err := w.open(ctx)
	if err != nil {
		return fmt.Errorf("opening enforcement bucket: %w", err)
	}
	streamName := "KV_" + bucket.Bucket()
	stream, err := js.Stream(ctx, streamName)
	if err != nil {
		return fmt.Errorf("opening stream %s: %w", streamName, err)
	}
	info := stream.CachedInfo()
	source := SourceOf(info)
	prefix := "$KV." + bucket.Bucket() + "."
	cfg := jetstream.OrderedConsumerConfig{FilterSubjects: []string{prefix + ">"}, DeliverPolicy: jetstream.DeliverLastPerSubjectPolicy}
	from := w.resumeFrom(source, info)
	if from > 0 {
		cfg.DeliverPolicy = jetstream.DeliverByStartSequencePolicy
		cfg.OptStartSeq = from + 1
	}
	cons, err := stream.OrderedConsumer(ctx, cfg)
	if err != nil {
		return fmt.Errorf("reading stream %s: %w", streamName, err)
	}
	it, err := cons.Messages(jetstream.PullMaxMessages(loadBatch))
	if err != nil {
		return fmt.Errorf("reading stream %s: %w", streamName, err)
	}
	defer it.Stop()

	// Resync and ctx end the watch by cancelling wctx, which Next obeys.
	wctx, cancel := context.WithCancel(ctx)
	var resynced atomic.Bool
	done := make(chan struct{})
	go func() {
		defer close(done)
		select {
		case <-wctx.Done():
		case <-w.resync:
			resynced.Store(true)
			cancel()
		}
	}()
	defer func() { cancel(); <-done }()
	next := func() (jetstream.Msg, uint64, uint64, error) {
		msg, err := it.Next(jetstream.NextContext(wctx))
		if err != nil {
			if resynced.Load() {
				return nil, 0, 0, errResync
			}
			if ctx.Err() != nil {
				return nil, 0, 0, ctx.Err()
			}
			return nil, 0, 0, fmt.Errorf("reading stream %s: %w", streamName, err)
		}
		md, err := msg.Metadata()
		if err != nil {
			return nil, 0, 0, fmt.Errorf("reading stream %s: %w", streamName, err)
		}
		return msg, md.Sequence.Stream, md.NumPending, nil
	}

	pending := uint64(0)
	if ci := cons.CachedInfo(); ci != nil {
		pending = ci.NumPending
	}
	w.loaded.Store(0)
	w.toLoad.Store(pending)
	rev := from
	start := time.Now()
	if from == 0 {
		b := enforce.NewBuilder()
		for pending > 0 {
			msg, seq, left, err := next()
			if err != nil {
				return err
			}
			w.build(b, prefix, msg)
			rev, pending = seq, left
			w.loaded.Add(1)
		}
		w.m.Load(b)
		w.setPosition(enforce.Position{Source: source, Revision: rev})
		w.synced.Store(true)
		w.log.Info("enforcement state loaded", "entries", w.m.Len(), "revision", rev, "took", time.Since(start).Round(time.Millisecond))
	} else if pending == 0 {
		w.synced.Store(true)
		w.log.Info("enforcement state caught up", "entries", w.m.Len(), "revision", rev, "changes", 0)
	}

	var changes []enforce.Change
	caughtUp := w.synced.Load()
	for {
		changes = changes[:0]
		left := uint64(0)
		for {
			msg, seq, n, err := next()
			if err != nil {
				return err
			}
			changes = w.add(changes, prefix, msg)
			rev, left = seq, n
			if !caughtUp {
				w.loaded.Add(1)
			}
			// Absorb what is already in the stream into the same swap.
			if left == 0 || len(changes) >= maxDeltaBatch {
				break
			}
		}
		for _, err := range w.m.Apply(changes) {
			w.malformed.Add(1)
			w.log.Warn("skipping malformed enforcement entry", "err", err)
		}
		w.setPosition(enforce.Position{Source: source, Revision: rev})
		if !caughtUp {
			if left > 0 {
				continue
			}
			caughtUp = true
			w.synced.Store(true)
			w.log.Info("enforcement state caught up", "entries", w.m.Len(), "revision", rev,
				"changes", w.loaded.Load(), "took", time.Since(start).Round(time.Millisecond))
			continue
		}
		w.applied.Add(uint64(len(changes)))
		if w.OnApply != nil || w.log.Enabled(ctx, slog.LevelDebug) {
			at := w.now()
			for _, c := range changes {
				if c.Entry == nil {
					continue
				}
				if w.OnApply != nil {
					w.OnApply(*c.Entry, at)
				}
				if !c.Entry.Trigger.IsZero() {
					w.log.Debug("enforcement entry applied", "kind", c.Entry.Kind.String(), "value", c.Entry.Value,
						"since_trigger_ms", float64(at.Sub(c.Entry.Trigger).Microseconds())/1000)
				}
			}
		}
	}
}

// isDelete reports whether msg is a KV deletion or purge marker.
func isDelete(msg jetstream.Msg) bool {
	h := msg.Headers()
	if h == nil {
		return false
	}
	op := h.Get("KV-Operation")
	if op == "DEL" || op == "PURGE" {
		return true
	}
	// A server's marker, left when a key's TTL lapses.
	return h.Get(jetstream.MarkerReasonHeader) != ""
}

// build applies one message of a full load to b.
func (w *Watcher) build(b *enforce.Builder, prefix string, msg jetstream.Msg) {
	key := msg.Subject()[len(prefix):]
	if isDelete(msg) {
		if kind, v, err := ParseKey(key); err == nil {
			b.Delete(enforce.Key{Kind: kind, Value: v})
		}
		return
	}
	e, err := decodeCompact(key, msg.Data())
	if err == nil {
		err = b.Put(e)
	}
	if err != nil {
		w.malformed.Add(1)
		w.log.Warn("skipping malformed enforcement entry", "key", key, "err", err)
	}
}

// add appends the change a message makes, skipping malformed ones.
func (w *Watcher) add(changes []enforce.Change, prefix string, msg jetstream.Msg) []enforce.Change {
	key := msg.Subject()[len(prefix):]
	if isDelete(msg) {
		kind, v, err := ParseKey(key)
		if err != nil {
			w.malformed.Add(1)
			w.log.Warn("skipping malformed enforcement key", "key", key, "err", err)
			return changes
		}
		return append(changes, enforce.Delete(enforce.Key{Kind: kind, Value: v}))
	}
	e, err := DecodeEntry(key, msg.Data())
	if err != nil {
		w.malformed.Add(1)
		w.log.Warn("skipping malformed enforcement entry", "key", key, "err", err)
		return changes
	}
	return append(changes, enforce.Put(e))
}
