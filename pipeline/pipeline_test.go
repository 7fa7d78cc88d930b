package pipeline_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/apiguard/apiguard/detectors"
	"github.com/apiguard/apiguard/event"
	"github.com/apiguard/apiguard/internal/testutil"
	"github.com/apiguard/apiguard/pipeline"
	"github.com/apiguard/apiguard/pipeline/topology"
)

// orderDetector records the events it sees per partition and raises an
// anomaly for every event whose API is "POST /alarm".
type orderDetector struct {
	mu   *sync.Mutex
	seen map[int][]string
	part int
}

func (d *orderDetector) Observe(ev *event.RequestEvent) []*event.Anomaly {
	d.mu.Lock()
	d.seen[d.part] = append(d.seen[d.part], ev.Id)
	d.mu.Unlock()
	if ev.Api != "POST /alarm" {
		return nil
	}
	return []*event.Anomaly{{Id: "A-" + ev.Id, Detector: "test", EventIds: []string{ev.Id}}}
}

// flakySink fails its first n writes, then keeps what it is given.
type flakySink struct {
	mu    sync.Mutex
	fails int
	got   []string
}

func (s *flakySink) WriteAnomaly(_ context.Context, a *event.Anomaly) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fails > 0 {
		s.fails--
		return errors.New("sink unavailable")
	}
	s.got = append(s.got, a.Id)
	return nil
}

func TestPipelineProcessesInOrderAndAcks(t *testing.T) {
	s := testutil.JetStream(t, -1, "")
	_, js := testutil.Connect(t, s)
	ctx := context.Background()
	cfg := topology.DefaultConfig()
	cfg.Partitions = 3
	if _, err := topology.Ensure(ctx, js, cfg); err != nil {
		t.Fatal(err)
	}
	// 300 events over 3 partitions, every 50th an alarm, and 2 undecodable messages.
	want := map[int][]string{}
	for i := range 300 {
		ev := &event.RequestEvent{Id: fmt.Sprintf("E%04d", i), Api: "GET /x", Partition: uint32(i % 3)}
		if i%50 == 0 {
			ev.Api = "POST /alarm"
		}
		b, _ := event.Marshal(ev)
		if _, err := js.Publish(ctx, fmt.Sprintf(event.SubjectEventsT, ev.Partition), b); err != nil {
			t.Fatal(err)
		}
		want[i%3] = append(want[i%3], ev.Id)
	}
	for _, junk := range [][]byte{[]byte("not protobuf"), {0x0a, 0xff}} {
		if _, err := js.Publish(ctx, fmt.Sprintf(event.SubjectEventsT, 1), junk); err != nil {
			t.Fatal(err)
		}
	}

	sources := map[int]pipeline.Source{}
	for p := range cfg.Partitions {
		src, err := topology.NewSource(ctx, js, p)
		if err != nil {
			t.Fatal(err)
		}
		sources[p] = src
	}
	det := &orderDetector{mu: &sync.Mutex{}, seen: map[int][]string{}}
	sink := &flakySink{fails: 2}
	p := pipeline.New(sources, func(part int) pipeline.Detector {
		return &orderDetector{mu: det.mu, seen: det.seen, part: part}
	}, []pipeline.Sink{sink}, slog.New(slog.DiscardHandler))

	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- p.Run(runCtx) }()
	testutil.Eventually(t, 10*time.Second, func() bool {
		return p.Stats().Processed.Load() == 300 && p.Stats().Undecodable.Load() == 2
	}, "processed %d, undecodable %d", func() any { return p.Stats().Processed.Load() }, func() any { return p.Stats().Undecodable.Load() })
	// Every message acked or terminated: nothing pending on any consumer.
	testutil.Eventually(t, 5*time.Second, func() bool {
		for part := range cfg.Partitions {
			c, err := js.Consumer(ctx, event.StreamEvents, topology.ConsumerName(part))
			if err != nil {
				return false
			}
			info, err := c.Info(ctx)
			if err != nil || info.NumAckPending != 0 || info.NumPending != 0 {
				return false
			}
		}
		return true
	}, "messages left unacknowledged")
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}

	det.mu.Lock()
	for part, ids := range want {
		if fmt.Sprint(det.seen[part]) != fmt.Sprint(ids) {
			t.Errorf("partition %d saw %d events out of order or incomplete", part, len(det.seen[part]))
		}
	}
	det.mu.Unlock()
	if len(sink.got) != 6 || p.Stats().SinkErrors.Load() != 2 {
		t.Errorf("sink got %v with %d errors; want 6 anomalies after 2 retried failures", sink.got, p.Stats().SinkErrors.Load())
	}

	// A restarted pipeline resumes after what was acked: nothing is redelivered.
	src, err := topology.NewSource(ctx, js, 0)
	if err != nil {
		t.Fatal(err)
	}
	p2 := pipeline.New(map[int]pipeline.Source{0: src}, func(int) pipeline.Detector {
		return &orderDetector{mu: &sync.Mutex{}, seen: map[int][]string{}}
	}, nil, slog.New(slog.DiscardHandler))
	ctx2, cancel2 := context.WithTimeout(ctx, 500*time.Millisecond)
	defer cancel2()
	if err := p2.Run(ctx2); err != nil {
		t.Fatal(err)
	}
	if n := p2.Stats().Processed.Load(); n != 0 {
		t.Errorf("restart redelivered %d acknowledged events", n)
	}
}

func TestEnsureIsIdempotent(t *testing.T) {
	s := testutil.JetStream(t, -1, "")
	_, js := testutil.Connect(t, s)
	for range 2 {
		if _, err := topology.Ensure(context.Background(), js, topology.DefaultConfig()); err != nil {
			t.Fatal(err)
		}
	}
	names := js.StreamNames(context.Background())
	var got []string
	for n := range names.Name() {
		got = append(got, n)
	}
	if len(got) != 5 { // three streams, the KV bucket's and the snapshot object store's
		t.Errorf("streams %v", got)
	}
}

// memMsg and memSource are an in-memory Source, to replay a delivery order
// JetStream produces only under timing (a redelivery after a late ack).
type memMsg struct {
	seq   uint64
	data  []byte
	acked *atomic.Int64
}

func (m memMsg) Data() []byte        { return m.data }
func (m memMsg) Sequence() uint64    { return m.seq }
func (m memMsg) Ack() error          { m.acked.Add(1); return nil }
func (m memMsg) Term(_ string) error { m.acked.Add(1); return nil }

type memSource struct {
	msgs    chan pipeline.Message
	stopped chan struct{}
	once    sync.Once
}

func (s *memSource) Next() (pipeline.Message, error) {
	select {
	case m := <-s.msgs:
		return m, nil
	case <-s.stopped:
		return nil, pipeline.ErrStopped
	}
}

func (s *memSource) Stop() { s.once.Do(func() { close(s.stopped) }) }

func TestPipelineSkipsRedeliveries(t *testing.T) {
	var acked atomic.Int64
	src := &memSource{msgs: make(chan pipeline.Message, 16), stopped: make(chan struct{})}
	msg := func(seq uint64) memMsg {
		b, _ := event.Marshal(&event.RequestEvent{Id: fmt.Sprintf("E%d", seq), Api: "GET /x"})
		return memMsg{seq: seq, data: b, acked: &acked}
	}
	// 1, 2, 3, then 2 again (its ack was late), then 4.
	for _, seq := range []uint64{1, 2, 3, 2, 4} {
		src.msgs <- msg(seq)
	}
	det := &orderDetector{mu: &sync.Mutex{}, seen: map[int][]string{}}
	p := pipeline.New(map[int]pipeline.Source{0: src}, func(int) pipeline.Detector { return det }, nil, slog.New(slog.DiscardHandler))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	testutil.Eventually(t, 5*time.Second, func() bool { return acked.Load() == 5 }, "acked %d of 5", func() any { return acked.Load() })
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	det.mu.Lock()
	defer det.mu.Unlock()
	if got := fmt.Sprint(det.seen[0]); got != "[E1 E2 E3 E4]" {
		t.Errorf("detector saw %s, want each event once", got)
	}
	if p.Stats().Redelivered.Load() != 1 || p.Stats().Processed.Load() != 4 {
		t.Errorf("redelivered %d, processed %d", p.Stats().Redelivered.Load(), p.Stats().Processed.Load())
	}
}

// snapDetector reports one baseline whose samples count the events seen.
type snapDetector struct{ n int }

func (d *snapDetector) Observe(*event.RequestEvent) []*event.Anomaly { d.n++; return nil }
func (d *snapDetector) Baselines() []detectors.BaselineSnapshot {
	return []detectors.BaselineSnapshot{{Detector: "test", API: "GET /x", Samples: d.n}}
}

type snapSink struct {
	mu  sync.Mutex
	got []string
}

func (s *snapSink) WriteBaselines(part int, at time.Time, bs []detectors.BaselineSnapshot) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.got = append(s.got, fmt.Sprintf("p%d@%ds:%d", part, at.Unix(), bs[0].Samples))
}

func TestBaselineSnapshotsFollowEventTime(t *testing.T) {
	s := testutil.JetStream(t, -1, "")
	_, js := testutil.Connect(t, s)
	ctx := context.Background()
	cfg := topology.DefaultConfig()
	cfg.Partitions = 1
	if _, err := topology.Ensure(ctx, js, cfg); err != nil {
		t.Fatal(err)
	}
	// 35 events one second apart in event time, published at once.
	for i := range 35 {
		b, _ := event.Marshal(&event.RequestEvent{Id: fmt.Sprint(i), Api: "GET /x", TimeUnixNano: int64(i) * 1e9})
		if _, err := js.Publish(ctx, fmt.Sprintf(event.SubjectEventsT, 0), b); err != nil {
			t.Fatal(err)
		}
	}
	src, err := topology.NewSource(ctx, js, 0)
	if err != nil {
		t.Fatal(err)
	}
	p := pipeline.New(map[int]pipeline.Source{0: src}, func(int) pipeline.Detector { return &snapDetector{} }, nil,
		slog.New(slog.DiscardHandler))
	sink := &snapSink{}
	p.SetBaselineSink(sink, 10*time.Second)
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- p.Run(runCtx) }()
	testutil.Eventually(t, 10*time.Second, func() bool { return p.Stats().Processed.Load() == 35 }, "not processed")
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	want := "[p0@10s:11 p0@20s:21 p0@30s:31]"
	if got := fmt.Sprint(sink.got); got != want {
		t.Errorf("snapshots %s, want %s (every 10s of event time, not wall time)", got, want)
	}
}
