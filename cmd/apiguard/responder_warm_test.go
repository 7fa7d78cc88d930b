package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/sync/errgroup"

	"github.com/apiguard/apiguard/event"
	"github.com/apiguard/apiguard/internal/secret"
	"github.com/apiguard/apiguard/internal/testutil"
	"github.com/apiguard/apiguard/pipeline"
	"github.com/apiguard/apiguard/pipeline/responder"
	"github.com/apiguard/apiguard/pipeline/topology"
)

// restartRig runs pipeline processes, one after another, on one real
// embedded JetStream, and keeps every action they record.
type restartRig struct {
	t       *testing.T
	js      jetstream.JetStream
	cfg     Config
	mu      sync.Mutex
	actions []*event.Action
}

func newRestartRig(t *testing.T) *restartRig {
	s := testutil.JetStream(t, -1, "")
	_, js := testutil.Connect(t, s)
	cfg := DefaultConfig()
	cfg.NATS.URL = secret.URL(s.ClientURL())
	return &restartRig{t: t, js: js, cfg: cfg}
}

// run starts a pipeline process, waits until it is ready, and returns it
// with its stop.
func (r *restartRig) run() (*pipelineParts, func()) {
	t := r.t
	ctx, cancel := context.WithCancel(context.Background())
	var g errgroup.Group
	pp, err := startPipeline(ctx, &g, r.cfg, r.cfg.NATS.URL, slog.New(slog.DiscardHandler), nil, nil, func(a *event.Action) {
		r.mu.Lock()
		r.actions = append(r.actions, a)
		r.mu.Unlock()
	})
	if err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 30*time.Second, func() bool { return pp.ready() == nil }, "pipeline not ready: %v", func() any { return pp.ready() })
	return pp, func() {
		cancel()
		if err := g.Wait(); err != nil {
			t.Error(err)
		}
	}
}

// anomaly is a probing anomaly on the address ip (rule scanners-block-ip).
func (r *restartRig) anomaly(id, ip string) *event.Anomaly {
	return &event.Anomaly{Schema: event.SchemaVersion, Id: id, TimeUnixNano: time.Now().UnixNano(), Detector: "probing",
		Api: "GET /orders/{id}", Principal: &event.Principal{Kind: event.KindIP, Value: ip}, Score: 0.95,
		Severity: event.Severity_SEVERITY_HIGH, Summary: "probing"}
}

// request publishes a successful request of key from ip.
func (r *restartRig) request(key, ip string) {
	at := time.Now()
	ev := &event.RequestEvent{Schema: event.SchemaVersion, Id: event.HashID(at, key, ip), TimeUnixNano: at.UnixNano(),
		Api: "GET /orders/{id}", Method: "GET", Path: "/orders/7", Status: 200, ApiKeyId: key,
		ClientIp: event.ClientIPBytes(netip.MustParseAddr(ip)), UserAgent: "client/2",
		Decision: event.Decision_DECISION_ALLOW, Auth: event.AuthOutcome_AUTH_OK}
	b, err := event.Marshal(ev)
	if err != nil {
		r.t.Fatal(err)
	}
	if _, err := r.js.Publish(context.Background(), fmt.Sprintf(event.SubjectEventsT, event.Partition(event.KindKey, key, r.cfg.NATS.Partitions)), b); err != nil {
		r.t.Fatal(err)
	}
}

// before runs a first process in which a partner succeeds from
// 198.51.100.7 (3 requests, processed) and 203.0.113.9 is blocked, and
// stops it.
func (r *restartRig) before() {
	pp, stop := r.run()
	defer stop()
	for range 3 {
		r.request("k-partner", "198.51.100.7")
	}
	testutil.Eventually(r.t, 10*time.Second, func() bool { return pp.pipeline.Stats().Processed.Load() >= 3 }, "partner's events not processed")
	if err := pp.responder.WriteAnomaly(context.Background(), r.anomaly("before-restart", "203.0.113.9")); err != nil {
		r.t.Fatal(err)
	}
}

// TestResponderRestartKeepsGoodHistory: a partner succeeds from
// 198.51.100.7; the pipeline restarts; a campaign of addresses of
// 198.51.100.0/24 is then blocked address by address, and the network is
// recorded only, naming the partner — a restarted responder knows who
// used the network before the restart (its request record is loaded from
// the event stream), as the first process did. An address blocked before
// the restart is an offence after it (its history is loaded from the
// audit stream before the first anomaly is judged).
func TestResponderRestartKeepsGoodHistory(t *testing.T) {
	r := newRestartRig(t)
	r.before()
	pp, stop := r.run()
	defer stop()
	// Traffic after the restart, elsewhere: the responder sees requests
	// again, and must not take what it has not seen since for unused.
	r.request("k-elsewhere", "10.99.0.1")
	testutil.Eventually(t, 10*time.Second, func() bool { return pp.pipeline.Stats().Processed.Load() >= 1 }, "event after the restart not processed")
	if !pp.responder.History().Acted(event.KindIP, "203.0.113.9") {
		t.Error("the address blocked before the restart is not in the history after it")
	}
	ctx := context.Background()
	for i := range r.cfg.Responder.Groups.MinAddresses {
		if err := pp.responder.WriteAnomaly(ctx, r.anomaly(fmt.Sprintf("campaign-%d", i), fmt.Sprintf("198.51.100.%d", 20+i))); err != nil {
			t.Fatal(err)
		}
	}
	// Judged with the record, at once or when its load ends.
	checkCampaign(t, &r.mu, &r.actions, r.cfg.Responder.Groups.MinAddresses)
}

// TestResponderRestartJudgesWhileLoading: the restarted pipeline is ready
// and judges while its responder's request record is still loading (the
// load held at its first event): it consumes, an address is blocked at
// once, a campaign's addresses too, and their network is held back,
// saying why; when the load ends the network is judged again and spared,
// naming the partner that used it before the restart.
func TestResponderRestartJudgesWhileLoading(t *testing.T) {
	r := newRestartRig(t)
	r.before()
	release := make(chan struct{})
	var held sync.Once
	holding := make(chan struct{})
	warmEventHook = func(ctx context.Context) error {
		held.Do(func() { close(holding) })
		select {
		case <-release:
		case <-ctx.Done():
		}
		return nil
	}
	t.Cleanup(func() { warmEventHook = nil })
	pp, stop := r.run()
	defer stop()
	<-holding
	if !pp.responder.RecordLoading() {
		t.Fatal("the request record is not loading")
	}
	// The pipeline consumes meanwhile.
	r.request("k-elsewhere", "10.99.0.1")
	testutil.Eventually(t, 10*time.Second, func() bool { return pp.pipeline.Stats().Processed.Load() >= 1 }, "no event processed while the record loads")
	ctx := context.Background()
	if err := pp.responder.WriteAnomaly(ctx, r.anomaly("scanner", "192.0.2.77")); err != nil {
		t.Fatal(err)
	}
	for i := range r.cfg.Responder.Groups.MinAddresses {
		if err := pp.responder.WriteAnomaly(ctx, r.anomaly(fmt.Sprintf("campaign-%d", i), fmt.Sprintf("198.51.100.%d", 20+i))); err != nil {
			t.Fatal(err)
		}
	}
	r.mu.Lock()
	scanner, network := false, false
	for _, a := range r.actions {
		switch a.GetTarget().GetValue() {
		case "192.0.2.77":
			scanner = scanner || !a.DryRun
		case "198.51.100.0/24":
			network = true
			if !a.DryRun || !strings.Contains(a.Reason, "still loading its record") || !strings.Contains(a.Reason, "judged again when the load ends") {
				t.Errorf("network action while loading: %s (dry-run %v)", a.Reason, a.DryRun)
			}
		}
	}
	r.mu.Unlock()
	if !scanner {
		t.Error("an address was not blocked while the request record loads")
	}
	if !network {
		t.Error("the campaign's network was not recorded as held back while the request record loads")
	}
	if !pp.responder.RecordLoading() {
		t.Fatal("the load ended while held")
	}
	close(release)
	checkCampaign(t, &r.mu, &r.actions, r.cfg.Responder.Groups.MinAddresses)
	if pp.responder.RecordLoading() || pp.responder.RecordLoaded() < 3 {
		t.Errorf("after the load: loading %v, %d events loaded, want the partner's 3", pp.responder.RecordLoading(), pp.responder.RecordLoaded())
	}
}

// checkCampaign waits for the action on 198.51.100.0/24 that names the
// partner (recorded only), and checks that the campaign's addresses were
// blocked and the network never.
func checkCampaign(t *testing.T, mu *sync.Mutex, actions *[]*event.Action, want int) {
	t.Helper()
	var network, whole *event.Action
	blocked := 0
	testutil.Eventually(t, 30*time.Second, func() bool {
		mu.Lock()
		defer mu.Unlock()
		network, blocked = nil, 0
		for _, a := range *actions {
			switch v := a.GetTarget().GetValue(); {
			case v == "198.51.100.0/24":
				if !a.DryRun {
					whole = a
				}
				if strings.Contains(a.Reason, "k-partner") {
					network = a
				}
			case strings.HasPrefix(v, "198.51.100.") && !a.DryRun:
				blocked++
			}
		}
		return network != nil || whole != nil
	}, "no action on 198.51.100.0/24 naming the partner")
	if whole != nil {
		t.Fatalf("network blocked whole: %s", whole.Reason)
	}
	if blocked != want {
		t.Errorf("%d campaign addresses blocked, want %d", blocked, want)
	}
	if !strings.Contains(network.Reason, "good history") {
		t.Errorf("network action %v, want it recorded only, naming the partner's good history", network)
	}
}

// BenchmarkWarmResponder measures the background load of a restarted
// responder's request record: 100,000 events of 2,000 clients on one partition, read
// back from a real JetStream and shown to the responder (the checkpoint at
// the last one). Its events/s metric is what a restart reads per second.
func BenchmarkWarmResponder(b *testing.B) {
	const n = 100_000
	s := testutil.JetStream(b, -1, "")
	_, js := testutil.Connect(b, s)
	cfg := DefaultConfig()
	cfg.NATS.Partitions = 1
	ctx := context.Background()
	if _, err := topology.Ensure(ctx, js, cfg.NATS.Config); err != nil {
		b.Fatal(err)
	}
	cps, err := topology.EnsureCheckpoints(ctx, js, cfg.NATS.Config)
	if err != nil {
		b.Fatal(err)
	}
	var last uint64
	for i := range n {
		at := time.Now()
		ev := &event.RequestEvent{Schema: event.SchemaVersion, Id: event.HashID(at, "bench", fmt.Sprint(i)), TimeUnixNano: at.UnixNano(),
			Api: "GET /orders/{id}", Method: "GET", Path: "/orders/7", Status: 200, ApiKeyId: fmt.Sprintf("k-%d", i%2000),
			ClientIp: event.ClientIPBytes(netip.AddrFrom4([4]byte{198, byte(i % 200), byte(i % 250), 7})), UserAgent: "client/2",
			Decision: event.Decision_DECISION_ALLOW, Auth: event.AuthOutcome_AUTH_OK}
		data, err := event.Marshal(ev)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := js.PublishAsync(fmt.Sprintf(event.SubjectEventsT, 0), data); err != nil {
			b.Fatal(err)
		}
		if i%1000 == 999 {
			<-js.PublishAsyncComplete()
		}
	}
	<-js.PublishAsyncComplete()
	info, err := js.Stream(ctx, event.StreamEvents)
	if err != nil {
		b.Fatal(err)
	}
	last = info.CachedInfo().State.LastSeq
	if err := cps.Save(ctx, 0, pipeline.Checkpoint{Sequence: last}); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for range b.N {
		resp := responder.New(cfg.Responder, nil, nil, time.Now, slog.New(slog.DiscardHandler))
		l, err := planRecordLoad(ctx, js, resp, warmWindow(cfg.Responder), []int{0}, cps)
		if err != nil {
			b.Fatal(err)
		}
		l.run(ctx, slog.New(slog.DiscardHandler))
		if l.events != n || resp.RecordLoading() {
			b.Fatalf("%d events, loading %v", l.events, resp.RecordLoading())
		}
	}
	b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

// TestWarmRecordWindow: the request record is loaded over
// responder.record_window when set, else over the record's own window.
func TestWarmRecordWindow(t *testing.T) {
	cfg := DefaultConfig().Responder
	if got := recordWindow(cfg); got != 24*time.Hour {
		t.Errorf("default: %s, want 24h (escalation.window)", got)
	}
	cfg.RecordWindow = 2 * time.Hour
	if got := recordWindow(cfg); got != 2*time.Hour {
		t.Errorf("record_window 2h: %s", got)
	}
}

// TestWarmRecordLoadRetries: a read of the request record that fails
// midway is retried from the event after the last one shown: the record
// gets each event once, and the groups stay held back until it is whole.
func TestWarmRecordLoadRetries(t *testing.T) {
	r := newRestartRig(t)
	r.before()
	ctx := context.Background()
	cps, err := topology.EnsureCheckpoints(ctx, r.js, r.cfg.NATS.Config)
	if err != nil {
		t.Fatal(err)
	}
	owned := make([]int, r.cfg.NATS.Partitions)
	for i := range owned {
		owned[i] = i
	}
	resp := responder.New(r.cfg.Responder, nil, nil, time.Now, slog.New(slog.DiscardHandler))
	l, err := planRecordLoad(ctx, r.js, resp, recordWindow(r.cfg.Responder), owned, cps)
	if err != nil {
		t.Fatal(err)
	}
	calls, failed := 0, false
	l.onEvent = func(context.Context) error {
		calls++
		if !resp.RecordLoading() {
			t.Error("the load ended before its last event")
		}
		if calls == 2 && !failed {
			failed = true
			return errors.New("stream unavailable")
		}
		return nil
	}
	l.run(ctx, slog.New(slog.DiscardHandler))
	if !failed || l.events != 3 || resp.RecordLoaded() != 3 || resp.RecordLoading() {
		t.Errorf("after a failed read: failed %v, %d events shown (%d recorded), loading %v; want the partner's 3, each once, and the load ended",
			failed, l.events, resp.RecordLoaded(), resp.RecordLoading())
	}
}
