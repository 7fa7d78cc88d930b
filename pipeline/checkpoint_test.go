package pipeline_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/apiguard/apiguard/detectors"
	"github.com/apiguard/apiguard/event"
	"github.com/apiguard/apiguard/internal/testutil"
	"github.com/apiguard/apiguard/pipeline"
	"github.com/apiguard/apiguard/pipeline/topology"
	"github.com/apiguard/apiguard/replay"
)

// forgetful is a checkpoint store that loads but never saves: a run with
// it processes and acknowledges events whose state is then lost, as if
// the process died before its next checkpoint.
type forgetful struct{ pipeline.CheckpointStore }

func (forgetful) Save(context.Context, int, pipeline.Checkpoint) error { return nil }

// idSink collects anomaly ids.
type idSink struct {
	mu  sync.Mutex
	ids []string
}

func (s *idSink) WriteAnomaly(_ context.Context, a *event.Anomaly) error {
	s.mu.Lock()
	s.ids = append(s.ids, a.Id)
	s.mu.Unlock()
	return nil
}

func (s *idSink) set() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := slices.Clone(s.ids)
	slices.Sort(out)
	return slices.Compact(out)
}

// generated is labelled synthetic traffic, in event-time order.
func generated(t *testing.T) []*event.RequestEvent {
	t.Helper()
	var buf bytes.Buffer
	w, err := replay.NewWriter(&buf)
	if err != nil {
		t.Fatal(err)
	}
	cfg := replay.DefaultGenConfig()
	cfg.Seed, cfg.Duration, cfg.Scale, cfg.Campaigns = 7, 4*time.Hour, 0.15, 1
	if _, err := replay.Generate(cfg, w); err != nil {
		t.Fatal(err)
	}
	r, err := replay.NewReader(&buf, "generated")
	if err != nil {
		t.Fatal(err)
	}
	var evs []*event.RequestEvent
	for {
		ev := new(event.RequestEvent)
		if _, err := r.Next(ev); errors.Is(err, io.EOF) {
			return evs
		} else if err != nil {
			t.Fatal(err)
		}
		evs = append(evs, ev)
	}
}

// TestRestartResumesFromCheckpoint runs the real detectors over real
// JetStream in three runs: the first stops cleanly and checkpoints; the
// second processes and acknowledges more events but its checkpoints are
// lost; the third must rewind to the first's checkpoint, process the lost
// events again with the rest, and end with every anomaly of an unbroken
// run and the same detector state, byte for byte.
func TestRestartResumesFromCheckpoint(t *testing.T) {
	const parts = 2
	evs := generated(t)
	partOf := func(ev *event.RequestEvent) int { k, v := event.PrincipalOf(ev); return event.Partition(k, v, parts) }

	// The reference: one engine per partition, fed directly.
	newEngine := func(int) pipeline.Detector {
		e, err := detectors.New(detectors.DefaultConfig())
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	var ref [parts]*detectors.Engine
	var want []string
	for p := range ref {
		ref[p] = newEngine(p).(*detectors.Engine)
	}
	for _, ev := range evs {
		for _, a := range ref[partOf(ev)].Observe(ev) {
			want = append(want, a.Id)
		}
	}
	slices.Sort(want)
	want = slices.Compact(want)
	if len(want) < 5 {
		t.Fatalf("only %d anomalies in the reference run", len(want))
	}

	s := testutil.JetStream(t, -1, "")
	_, js := testutil.Connect(t, s)
	ctx := context.Background()
	cfg := topology.DefaultConfig()
	cfg.Partitions = parts
	if _, err := topology.Ensure(ctx, js, cfg); err != nil {
		t.Fatal(err)
	}
	store, err := topology.EnsureCheckpoints(ctx, js, cfg)
	if err != nil {
		t.Fatal(err)
	}
	publish := func(evs []*event.RequestEvent) {
		t.Helper()
		for _, ev := range evs {
			b, err := event.Marshal(ev)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := js.Publish(ctx, fmt.Sprintf(event.SubjectEventsT, partOf(ev)), b); err != nil {
				t.Fatal(err)
			}
		}
	}
	// run processes everything published so far, then stops the pipeline.
	run := func(store pipeline.CheckpointStore, sink *idSink) *pipeline.Pipeline {
		t.Helper()
		sources := map[int]pipeline.Source{}
		for p := range parts {
			src, err := topology.NewSource(ctx, js, p)
			if err != nil {
				t.Fatal(err)
			}
			sources[p] = src
		}
		pl := pipeline.New(sources, newEngine, []pipeline.Sink{sink}, slog.New(slog.DiscardHandler))
		pl.SetCheckpoints(store, time.Hour) // the final checkpoint only
		rctx, stop := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- pl.Run(rctx) }()
		testutil.Eventually(t, 4*time.Minute, func() bool { return drained(ctx, js, parts) }, "pipeline never drained its consumers")
		stop()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		return pl
	}

	c1, c2 := len(evs)/3, len(evs)*2/3
	publish(evs[:c1])
	first := &idSink{}
	if n := run(store, first).Stats().Checkpoints.Load(); n < parts {
		t.Fatalf("%d checkpoints saved by the first run, want at least one per partition", n)
	}
	publish(evs[c1:c2])
	lost := &idSink{}
	run(forgetful{store}, lost)

	publish(evs[c2:])
	second := &idSink{}
	pl := run(store, second)
	if n := pl.Stats().Processed.Load(); n != uint64(len(evs)-c1) {
		t.Errorf("the restarted pipeline processed %d events, want the %d since the checkpoint", n, len(evs)-c1)
	}

	got := append(append(first.set(), lost.set()...), second.set()...)
	slices.Sort(got)
	got = slices.Compact(got)
	if !slices.Equal(got, want) {
		t.Errorf("anomalies: %d across the restart, %d in an unbroken run", len(got), len(want))
	}
	for p := range parts {
		c, ok, err := store.Load(ctx, p)
		if err != nil || !ok {
			t.Fatalf("partition %d: no checkpoint after the second run: %v", p, err)
		}
		b, err := ref[p].MarshalState()
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(c.State, b) {
			t.Errorf("partition %d: state after the restart (%d bytes) differs from an unbroken run's (%d bytes)", p, len(c.State), len(b))
		}
	}
}

// drained reports whether every partition's consumer has nothing pending
// or unacknowledged.
func drained(ctx context.Context, js jetstream.JetStream, parts int) bool {
	for p := range parts {
		c, err := js.Consumer(ctx, event.StreamEvents, topology.ConsumerName(p))
		if err != nil {
			return false
		}
		info, err := c.Info(ctx)
		if err != nil || info.NumPending > 0 || info.NumAckPending > 0 {
			return false
		}
	}
	return true
}
