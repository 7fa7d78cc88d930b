package pipeline_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/apiguard/apiguard/event"
	"github.com/apiguard/apiguard/internal/testutil"
	"github.com/apiguard/apiguard/pipeline"
	"github.com/apiguard/apiguard/pipeline/topology"
)

// memStore keeps records by content, fails while down, rejects records
// that start with "bad", and records each call's size and maybeStored.
type memStore struct {
	mu    sync.Mutex
	down  int // calls left to fail
	have  map[string]int
	calls []storeCall
}

type storeCall struct {
	n           int
	maybeStored bool
	failed      bool
}

func (s *memStore) Store(_ context.Context, recs [][]byte, maybeStored bool) (map[int]error, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.down > 0 {
		s.down--
		s.calls = append(s.calls, storeCall{len(recs), maybeStored, true})
		return nil, errors.New("store unavailable")
	}
	s.calls = append(s.calls, storeCall{len(recs), maybeStored, false})
	var rej map[int]error
	for i, r := range recs {
		if len(r) >= 3 && string(r[:3]) == "bad" {
			if rej == nil {
				rej = map[int]error{}
			}
			rej[i] = errors.New("undecodable")
			continue
		}
		if maybeStored && s.have[string(r)] > 0 {
			continue
		}
		s.have[string(r)]++
	}
	return rej, nil
}

func (s *memStore) snapshot() ([]storeCall, map[string]int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.calls), maps.Clone(s.have)
}

func loaderSetup(t *testing.T) (jetstream.JetStream, func(n int, prefix string)) {
	t.Helper()
	s := testutil.JetStream(t, -1, "")
	_, js := testutil.Connect(t, s)
	ctx := context.Background()
	cfg := topology.DefaultConfig()
	cfg.Partitions = 1
	if _, err := topology.Ensure(ctx, js, cfg); err != nil {
		t.Fatal(err)
	}
	publish := func(n int, prefix string) {
		for i := range n {
			if _, err := js.Publish(ctx, event.SubjectAnomalies, fmt.Appendf(nil, "%s%03d", prefix, i)); err != nil {
				t.Fatal(err)
			}
		}
	}
	return js, publish
}

func runLoader(t *testing.T, js jetstream.JetStream, store pipeline.Store, cfg pipeline.LoaderConfig) (*pipeline.Loader, func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	src, err := topology.NewBatchSource(ctx, js, event.StreamAnomalies, "test-loader", 2*cfg.BatchSize)
	if err != nil {
		t.Fatal(err)
	}
	l := pipeline.NewLoader("test", src, store, cfg, slog.New(slog.DiscardHandler))
	done := make(chan error, 1)
	go func() { done <- l.Run(ctx) }()
	stop := func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}
	return l, stop
}

func TestLoaderBatchesBySizeAndTime(t *testing.T) {
	js, publish := loaderSetup(t)
	publish(25, "m")
	store := &memStore{have: map[string]int{}}
	l, stop := runLoader(t, js, store, pipeline.LoaderConfig{BatchSize: 10, FlushInterval: 200 * time.Millisecond, Parallel: 3})
	defer stop()
	testutil.Eventually(t, 10*time.Second, func() bool { return l.Stats().Messages.Load() == 25 },
		"loaded %d of 25", func() any { return l.Stats().Messages.Load() })
	calls, have := store.snapshot()
	var sizes []int
	for _, c := range calls {
		sizes = append(sizes, c.n)
	}
	if total := len(have); total != 25 {
		t.Errorf("store has %d distinct records, want 25", total)
	}
	for _, n := range sizes {
		if n > 10 {
			t.Errorf("batch of %d exceeds BatchSize 10 (batches %v)", n, sizes)
		}
	}
	if got := l.Stats().Batches.Load(); got < 3 {
		t.Errorf("%d batches, want at least 3 for 25 records in batches of 10", got)
	}
	// Acked: the consumer has nothing pending.
	testutil.Eventually(t, 5*time.Second, func() bool {
		n, err := topology.Pending(context.Background(), js, event.StreamAnomalies, "test-loader")
		return err == nil && n == 0
	}, "consumer still has unacknowledged messages")
}

func TestLoaderHoldsTheBatchWhileTheStoreFails(t *testing.T) {
	js, publish := loaderSetup(t)
	publish(5, "m")
	store := &memStore{have: map[string]int{}, down: 4}
	l, stop := runLoader(t, js, store, pipeline.LoaderConfig{BatchSize: 100, FlushInterval: 100 * time.Millisecond,
		KeepAlive: time.Millisecond})
	defer stop()
	testutil.Eventually(t, 15*time.Second, func() bool { return l.Stats().Messages.Load() == 5 },
		"loaded %d of 5", func() any { return l.Stats().Messages.Load() })
	calls, have := store.snapshot()
	if len(calls) < 5 || !calls[0].failed || calls[4].failed {
		t.Fatalf("calls %+v, want 4 failures then a success", calls)
	}
	if calls[0].maybeStored {
		t.Error("first attempt of fresh messages asked for the duplicate lookup")
	}
	for _, c := range calls[1:5] {
		if !c.maybeStored {
			t.Errorf("a retry after a failure did not ask for the duplicate lookup: %+v", calls)
		}
	}
	for k, n := range have {
		if n != 1 {
			t.Errorf("record %s stored %d times", k, n)
		}
	}
	if got := l.Stats().Failures.Load(); got != 4 {
		t.Errorf("failures = %d, want 4", got)
	}
	if l.Stats().Paused.Load() {
		t.Error("still paused after the store came back")
	}
}

func TestLoaderTerminatesRejected(t *testing.T) {
	js, publish := loaderSetup(t)
	publish(3, "m")
	publish(2, "bad")
	store := &memStore{have: map[string]int{}}
	l, stop := runLoader(t, js, store, pipeline.LoaderConfig{BatchSize: 100, FlushInterval: 100 * time.Millisecond})
	testutil.Eventually(t, 10*time.Second, func() bool { return l.Stats().Messages.Load() == 3 && l.Stats().Rejected.Load() == 2 },
		"loaded %d, rejected %d", func() any { return l.Stats().Messages.Load() }, func() any { return l.Stats().Rejected.Load() })
	stop()
	// The rejected messages are terminated, not pending.
	n, err := topology.Pending(context.Background(), js, event.StreamAnomalies, "test-loader")
	if err != nil || n != 0 {
		t.Errorf("pending = %d, %v; want 0", n, err)
	}
}

func TestLoaderStoresItsLastBatchOnShutdown(t *testing.T) {
	js, publish := loaderSetup(t)
	publish(7, "m")
	store := &memStore{have: map[string]int{}}
	// A flush interval longer than the test: only shutdown ends the batch.
	l, stop := runLoader(t, js, store, pipeline.LoaderConfig{BatchSize: 100, FlushInterval: time.Hour})
	testutil.Eventually(t, 10*time.Second, func() bool { return l.Stats().Holding.Load() == 7 },
		"holding %d of 7", func() any { return l.Stats().Holding.Load() })
	stop()
	if got := l.Stats().Messages.Load(); got != 7 {
		t.Errorf("stored %d at shutdown, want 7", got)
	}
}

func TestBatchSourceMarksRedeliveries(t *testing.T) {
	js, publish := loaderSetup(t)
	publish(1, "m")
	ctx := context.Background()
	src, err := topology.NewBatchSource(ctx, js, event.StreamAnomalies, "test-loader", 10)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Stop()
	tctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	m, err := src.Next(tctx)
	if err != nil {
		t.Fatal(err)
	}
	if m.Redelivered() {
		t.Error("first delivery marked as a redelivery")
	}
	if err := m.(interface{ Nak() error }).Nak(); err != nil {
		t.Fatal(err)
	}
	m, err = src.Next(tctx)
	if err != nil {
		t.Fatal(err)
	}
	if !m.Redelivered() || string(m.Data()) != "m000" {
		t.Errorf("second delivery of %q: Redelivered() = %v, want true", m.Data(), m.Redelivered())
	}
}
