// Package pipeline provides the streaming runtime: one worker per partition
// that decodes events in order, feeds them to that partition's detectors,
// hands the anomalies to the sinks and acknowledges each event only after
// all of that is done. It defines the Source and Sink interfaces it uses;
// pipeline/topology adapts them to JetStream.
package pipeline

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/apiguard/apiguard/detectors"
	"github.com/apiguard/apiguard/event"
)

// Message is one delivered event.
type Message interface {
	Data() []byte
	// Sequence is the message's position in its stream; 0 if unknown.
	Sequence() uint64
	// Ack acknowledges the message: it will not be delivered again.
	Ack() error
	// Term tells the server never to deliver the message again, with a reason.
	Term(reason string) error
}

// Source delivers one partition's messages in order. Next blocks until a
// message arrives or Stop is called; after Stop it returns ErrStopped.
type Source interface {
	Next() (Message, error)
	Stop()
}

// ErrStopped is returned by Source.Next after Stop.
var ErrStopped = errors.New("source stopped")

// Detector turns events into anomalies. Each partition has its own, called
// from one goroutine, so implementations need no locks.
type Detector interface {
	Observe(ev *event.RequestEvent) []*event.Anomaly
}

// Snapshotter is a Detector that can report its baselines. Baselines must
// not change what the detector will detect.
type Snapshotter interface {
	Baselines() []detectors.BaselineSnapshot
}

// BaselineSink takes baseline snapshots. It is called from a partition's
// worker and must not block: queue, and count what it drops.
type BaselineSink interface {
	WriteBaselines(partition int, at time.Time, bs []detectors.BaselineSnapshot)
}

// BaselineSinkFunc adapts a function to a BaselineSink.
type BaselineSinkFunc func(partition int, at time.Time, bs []detectors.BaselineSnapshot)

// WriteBaselines calls f.
func (f BaselineSinkFunc) WriteBaselines(partition int, at time.Time, bs []detectors.BaselineSnapshot) {
	f(partition, at, bs)
}

// Sink receives anomalies. An error is taken as transient: the worker retries
// with backoff and does not acknowledge the event until every sink has it.
type Sink interface {
	WriteAnomaly(ctx context.Context, a *event.Anomaly) error
}

// Stats are the pipeline's counters; safe to read while it runs.
type Stats struct {
	Processed   atomic.Uint64
	Redelivered atomic.Uint64 // seen again after processing, acked and skipped
	Undecodable atomic.Uint64
	Anomalies   atomic.Uint64
	SinkErrors  atomic.Uint64
	// Checkpoints and CheckpointErrors count detector checkpoints saved
	// and failed.
	Checkpoints      atomic.Uint64
	CheckpointErrors atomic.Uint64
}

// Pipeline runs one worker per partition. Build it with New; Run runs it.
type Pipeline struct {
	sources     map[int]Source
	newDetector func(partition int) Detector
	sinks       []Sink
	log         *slog.Logger
	stats       Stats
	metrics     *Metrics // nil: none
	baselines   BaselineSink
	snapEvery   int64 // event-time ns between snapshots

	checkpoints     CheckpointStore // nil: none
	checkpointEvery time.Duration
}

// SetBaselineSink makes each partition's worker hand its detector's
// baselines to s every interval of event time (so a replay snapshots at
// the same points). Call it before Run.
func (p *Pipeline) SetBaselineSink(s BaselineSink, every time.Duration) {
	p.baselines, p.snapEvery = s, int64(every)
}

// New returns a pipeline over sources (by partition) that makes one detector
// per partition with newDetector and delivers anomalies to sinks, in order.
func New(sources map[int]Source, newDetector func(partition int) Detector, sinks []Sink, log *slog.Logger) *Pipeline {
	return &Pipeline{sources: sources, newDetector: newDetector, sinks: sinks, log: log}
}

// Stats returns the live counters.
func (p *Pipeline) Stats() *Stats { return &p.stats }

// Run processes every partition until ctx is done, then returns nil. A
// message being processed when ctx ends is finished or left unacknowledged,
// to be redelivered.
func (p *Pipeline) Run(ctx context.Context) error {
	g, ctx := errgroup.WithContext(ctx)
	for part, src := range p.sources {
		w := &worker{p: p, part: part, src: src, det: p.newDetector(part), log: p.log.With("partition", part)}
		g.Go(func() error { return w.run(ctx) })
	}
	return g.Wait()
}

type worker struct {
	p    *Pipeline
	part int
	src  Source
	det  Detector
	log  *slog.Logger
	// lastBadLog rate-limits the log of undecodable events, which an
	// attacker who can publish could otherwise use to flood the log.
	lastBadLog time.Time
	// nextSnap is the event time of the next baseline snapshot.
	nextSnap int64
	// done is the highest stream sequence handled. The worker handles its
	// partition in order, so a message at or below it is a redelivery (its
	// ack was late or lost) and must not be counted again.
	done uint64
	// complete is the sequence of the last message fully handled (its
	// anomalies delivered); a checkpoint is only taken when it is done.
	complete uint64
	// saved is the sequence of the last checkpoint saved, at savedAt.
	saved   uint64
	savedAt time.Time
}

func (w *worker) run(ctx context.Context) error {
	stop := context.AfterFunc(ctx, w.src.Stop)
	defer stop()
	if err := w.restore(ctx); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("partition %d: restoring detector checkpoint: %w", w.part, err)
	}
	w.savedAt = time.Now()
	defer w.checkpoint(true)
	for {
		msg, err := w.src.Next()
		if errors.Is(err, ErrStopped) || ctx.Err() != nil {
			return nil
		}
		if err != nil {
			w.log.Warn("receiving event", "err", err)
			continue
		}
		if err := w.handle(ctx, msg); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			w.log.Warn("handling event", "err", err)
		}
		w.checkpoint(false)
	}
}

func (w *worker) handle(ctx context.Context, msg Message) error {
	seq := msg.Sequence()
	if seq != 0 && seq <= w.done {
		w.p.stats.Redelivered.Add(1)
		if err := msg.Ack(); err != nil {
			return fmt.Errorf("acknowledging redelivered message %d: %w", seq, err)
		}
		return nil
	}
	if seq > w.done {
		w.done = seq
	}
	// The message's data is this message's own buffer, never written again:
	// decode in place. Detectors clone what they keep.
	var ev event.RequestEvent
	if err := event.UnmarshalEventInPlace(msg.Data(), &ev); err != nil {
		w.p.stats.Undecodable.Add(1)
		if now := time.Now(); now.Sub(w.lastBadLog) > time.Second {
			w.lastBadLog = now
			w.log.Warn("terminating undecodable event", "err", err, "bytes", len(msg.Data()),
				"undecodable_total", w.p.stats.Undecodable.Load())
		}
		w.complete = seq
		if err := msg.Term(err.Error()); err != nil {
			return fmt.Errorf("terminating undecodable event: %w", err)
		}
		return nil
	}
	began := time.Now()
	found := w.det.Observe(&ev)
	if m := w.p.metrics; m != nil {
		m.observe(time.Since(began), found)
	}
	w.snapshot(ev.TimeUnixNano)
	for _, a := range found {
		w.p.stats.Anomalies.Add(1)
		for _, s := range w.p.sinks {
			if err := w.deliver(ctx, s, a); err != nil {
				return err
			}
		}
	}
	w.p.stats.Processed.Add(1)
	w.complete = seq
	if err := msg.Ack(); err != nil {
		return fmt.Errorf("acknowledging event %s: %w", ev.Id, err)
	}
	return nil
}

// snapshot hands the detector's baselines to the baseline sink once per
// snapshot interval of event time.
func (w *worker) snapshot(t int64) {
	s, ok := w.det.(Snapshotter)
	if w.p.baselines == nil || !ok || w.p.snapEvery <= 0 {
		return
	}
	switch {
	case w.nextSnap == 0:
		w.nextSnap = t + w.p.snapEvery
	case t >= w.nextSnap:
		w.p.baselines.WriteBaselines(w.part, time.Unix(0, t).UTC(), s.Baselines())
		w.nextSnap = t + w.p.snapEvery
	}
}

// deliver retries a sink with backoff until it takes the anomaly or ctx
// ends: the partition pauses rather than lose it.
func (w *worker) deliver(ctx context.Context, s Sink, a *event.Anomaly) error {
	backoff := 50 * time.Millisecond
	for {
		err := s.WriteAnomaly(ctx, a)
		if err == nil {
			return nil
		}
		w.p.stats.SinkErrors.Add(1)
		w.log.Warn("sink refused anomaly, retrying", "anomaly", a.Id, "err", err, "backoff", backoff)
		select {
		case <-ctx.Done():
			return fmt.Errorf("delivering anomaly %s: %w", a.Id, ctx.Err())
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}
