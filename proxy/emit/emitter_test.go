package emit

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/apiguard/apiguard/event"
	"github.com/apiguard/apiguard/internal/testutil"
)

// setup starts JetStream with the event stream and an emitter connected the
// way the proxy connects (no reconnect buffer), spooling to a fresh
// directory. It returns an observer's JetStream on a connection of its own. It returns an observer's
// JetStream context on a connection of its own.
func setup(t *testing.T, cfg Config) (*server.Server, jetstream.JetStream, *Emitter, string) {
	t.Helper()
	store := t.TempDir()
	s := testutil.JetStream(t, testutil.FreePort(t), store) // some tests restart it on the same port
	nc, err := nats.Connect(s.ClientURL(), nats.MaxReconnects(-1), nats.ReconnectWait(100*time.Millisecond), nats.ReconnectBufSize(-1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, _ := jetstream.New(nc)
	_, err = js.CreateStream(context.Background(), jetstream.StreamConfig{
		Name: event.StreamEvents, Subjects: []string{event.SubjectEvents}, Duplicates: time.Minute,
	})
	if err != nil {
		t.Fatal(err)
	}
	cfg.SpoolDir = t.TempDir()
	e, err := New(cfg, nc, js, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	_, observer := testutil.Connect(t, s)
	return s, observer, e, store
}

func run(t *testing.T, e *Emitter) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
}

func stored(t *testing.T, js jetstream.JetStream) uint64 {
	t.Helper()
	st, err := js.Stream(context.Background(), event.StreamEvents)
	if err != nil {
		return 0
	}
	info, err := st.Info(context.Background())
	if err != nil {
		return 0
	}
	return info.State.Msgs
}

func ev(i int) *event.RequestEvent {
	return &event.RequestEvent{Id: fmt.Sprintf("E%08d", i), TimeUnixNano: int64(i), Api: "GET /x", Partition: uint32(i % 4)}
}

func TestEmitterPublishesOnceByID(t *testing.T) {
	_, js, e, _ := setup(t, DefaultConfig())
	run(t, e)
	for i := range 1000 {
		e.Emit(ev(i))
	}
	// A retried event (same id) is stored once.
	e.Emit(ev(7))
	testutil.Eventually(t, 10*time.Second, func() bool { return e.Stats().Published.Load() == 1001 }, "published %d of 1001", func() any { return e.Stats().Published.Load() })
	if n := stored(t, js); n != 1000 {
		t.Fatalf("stream holds %d events, want 1000", n)
	}
	msg, err := js.Stream(context.Background(), event.StreamEvents)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := msg.GetMsg(context.Background(), 1)
	if err != nil {
		t.Fatal(err)
	}
	var got event.RequestEvent
	if err := event.UnmarshalEvent(raw.Data, &got); err != nil || raw.Header.Get(event.HeaderMsgID) != got.Id || raw.Subject != fmt.Sprintf(event.SubjectEventsT, got.Partition) {
		t.Fatalf("stored message: subject %s, msg id %q, event %v, err %v", raw.Subject, raw.Header.Get(event.HeaderMsgID), &got, err)
	}
}

// TestEmitterSpoolsWhileNATSIsAway stops the server mid-stream, keeps
// emitting, restarts it on the same port and store, and expects every event.
func TestEmitterSpoolsWhileNATSIsAway(t *testing.T) {
	cfg := DefaultConfig()
	cfg.PublishTimeout = time.Second
	s, js, e, store := setup(t, cfg)
	run(t, e)
	for i := range 300 {
		e.Emit(ev(i))
	}
	testutil.Eventually(t, 10*time.Second, func() bool { return e.Stats().Published.Load() == 300 }, "first 300 not published")

	port := s.Addr().(*net.TCPAddr).Port
	s.Shutdown()
	s.WaitForShutdown()
	for i := 300; i < 1300; i++ {
		e.Emit(ev(i))
	}
	testutil.Eventually(t, 10*time.Second, func() bool { return e.Stats().Spooled.Load() > 0 && len(e.queue) == 0 }, "events not spooled while NATS is away")

	testutil.JetStream(t, port, store)
	testutil.Eventually(t, 20*time.Second, func() bool { return stored(t, js) == 1300 }, "stream holds %d of 1300 events after NATS came back",
		func() any { return stored(t, js) })
	testutil.Eventually(t, 5*time.Second, func() bool { return e.SpoolBytes() == 0 }, "spool not emptied: %d bytes", func() any { return e.SpoolBytes() })
	if d := e.Stats().DroppedQueue.Load() + e.Stats().DroppedSpool.Load(); d != 0 {
		t.Fatalf("%d events dropped", d)
	}
}

func TestEmitterCountsDrops(t *testing.T) {
	cfg := DefaultConfig()
	cfg.QueueSize, cfg.BatchSize = 4, 4
	_, _, e, _ := setup(t, cfg)
	// Not running: the queue fills and further events are dropped, not waited for.
	done := make(chan struct{})
	go func() {
		for i := range 10 {
			e.Emit(ev(i))
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Emit blocked on a full queue")
	}
	if got := e.Stats().DroppedQueue.Load(); got != 6 {
		t.Fatalf("DroppedQueue = %d, want 6", got)
	}
}

func TestConfigValidate(t *testing.T) {
	mod := func(f func(*Config)) Config { c := DefaultConfig(); f(&c); return c }
	for name, c := range map[string]Config{
		"emit.queue_size":      mod(func(c *Config) { c.QueueSize = 0 }),
		"emit.batch_size":      mod(func(c *Config) { c.BatchSize = 0 }),
		"emit.spool_dir":       mod(func(c *Config) { c.SpoolDir = "" }),
		"emit.spool_max_bytes": mod(func(c *Config) { c.SpoolMaxBytes = 1 }),
	} {
		if err := c.Validate(); err == nil || err.Error()[:len(name)] != name {
			t.Errorf("Validate() = %v, want an error naming %s", err, name)
		}
	}
}

// TestEmitterCleanStopSendsSpool: events left in the spool by an earlier run
// are sent before a clean stop returns.
func TestEmitterCleanStopSendsSpool(t *testing.T) {
	_, js, e, _ := setup(t, DefaultConfig())
	var recs []Record
	for i := range 50 {
		data, err := event.Marshal(ev(i))
		if err != nil {
			t.Fatal(err)
		}
		recs = append(recs, Record{Subject: fmt.Sprintf(event.SubjectEventsT, i%4), MsgID: ev(i).Id, Data: data})
	}
	if _, err := e.spool.Append(recs); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // stop at once: only the shutdown path can send them
	if err := e.Run(ctx); err != nil {
		t.Fatal(err)
	}
	if n := stored(t, js); n != 50 || e.SpoolBytes() != 0 {
		t.Fatalf("after a clean stop: %d of 50 stored, %d bytes still spooled", n, e.SpoolBytes())
	}
}
