package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/apiguard/apiguard/event"
	"github.com/apiguard/apiguard/internal/secret"
	"github.com/apiguard/apiguard/internal/testutil"
	"github.com/apiguard/apiguard/pipeline"
	"github.com/apiguard/apiguard/pipeline/responder"
	"github.com/apiguard/apiguard/pipeline/topology"
)

// TestResponderRestartKeepsGoodHistory: a partner succeeds from
// 198.51.100.7; the pipeline restarts; a campaign of addresses of
// 198.51.100.0/24 is then blocked address by address, and the network is
// recorded only, naming the partner — a restarted responder knows who
// used the network before the restart (its request record is loaded from
// the event stream), as the first process did. An address blocked before
// the restart is an offence after it (its history is loaded from the
// audit stream before the first anomaly is judged).
func TestResponderRestartKeepsGoodHistory(t *testing.T) {
	s := testutil.JetStream(t, -1, "")
	_, js := testutil.Connect(t, s)
	cfg := DefaultConfig()
	cfg.NATS.URL = secret.URL(s.ClientURL())
	log := slog.New(slog.DiscardHandler)
	var mu sync.Mutex
	var actions []*event.Action
	onAction := func(a *event.Action) {
		mu.Lock()
		actions = append(actions, a)
		mu.Unlock()
	}
	run := func() (*pipelineParts, func()) {
		ctx, cancel := context.WithCancel(context.Background())
		var g errgroup.Group
		pp, err := startPipeline(ctx, &g, cfg, cfg.NATS.URL, log, nil, nil, onAction)
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
	anomaly := func(id, ip string) *event.Anomaly {
		return &event.Anomaly{Schema: event.SchemaVersion, Id: id, TimeUnixNano: time.Now().UnixNano(), Detector: "probing",
			Api: "GET /orders/{id}", Principal: &event.Principal{Kind: event.KindIP, Value: ip}, Score: 0.95,
			Severity: event.Severity_SEVERITY_HIGH, Summary: "probing"}
	}

	ctx := context.Background()
	// request publishes a successful request of key from ip.
	request := func(key, ip string) {
		at := time.Now()
		ev := &event.RequestEvent{Schema: event.SchemaVersion, Id: event.HashID(at, key, ip), TimeUnixNano: at.UnixNano(),
			Api: "GET /orders/{id}", Method: "GET", Path: "/orders/7", Status: 200, ApiKeyId: key,
			ClientIp: event.ClientIPBytes(netip.MustParseAddr(ip)), UserAgent: "client/2",
			Decision: event.Decision_DECISION_ALLOW, Auth: event.AuthOutcome_AUTH_OK}
		b, err := event.Marshal(ev)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := js.Publish(ctx, fmt.Sprintf(event.SubjectEventsT, event.Partition(event.KindKey, key, cfg.NATS.Partitions)), b); err != nil {
			t.Fatal(err)
		}
	}

	pp, stop := run()
	for range 3 {
		request("k-partner", "198.51.100.7")
	}
	testutil.Eventually(t, 10*time.Second, func() bool { return pp.pipeline.Stats().Processed.Load() >= 3 }, "partner's events not processed")
	if err := pp.responder.WriteAnomaly(ctx, anomaly("before-restart", "203.0.113.9")); err != nil {
		t.Fatal(err)
	}
	stop()

	pp, stop = run()
	defer stop()
	// Traffic after the restart, elsewhere: the responder sees requests
	// again, and must not take what it has not seen since for unused.
	request("k-elsewhere", "10.99.0.1")
	testutil.Eventually(t, 10*time.Second, func() bool { return pp.pipeline.Stats().Processed.Load() >= 1 }, "event after the restart not processed")
	if !pp.responder.History().Acted(event.KindIP, "203.0.113.9") {
		t.Error("the address blocked before the restart is not in the history after it")
	}
	for i := range cfg.Responder.Groups.MinAddresses {
		if err := pp.responder.WriteAnomaly(ctx, anomaly(fmt.Sprintf("campaign-%d", i), fmt.Sprintf("198.51.100.%d", 20+i))); err != nil {
			t.Fatal(err)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	var network *event.Action
	blocked := 0
	for _, a := range actions {
		switch a.GetTarget().GetValue() {
		case "198.51.100.0/24":
			network = a
		default:
			if strings.HasPrefix(a.GetTarget().GetValue(), "198.51.100.") && !a.DryRun {
				blocked++
			}
		}
	}
	if blocked != cfg.Responder.Groups.MinAddresses {
		t.Errorf("%d campaign addresses blocked, want %d", blocked, cfg.Responder.Groups.MinAddresses)
	}
	if network == nil || !network.DryRun || !strings.Contains(network.Reason, "good history") || !strings.Contains(network.Reason, "k-partner") {
		t.Errorf("network action %v, want it recorded only, naming the partner", network)
	}
}

// BenchmarkWarmResponder measures the startup load of a responder's
// request record: 100,000 events of 2,000 clients on one partition, read
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
		_, events, err := warmResponder(ctx, js, resp, warmWindow(cfg.Responder), []int{0}, cps)
		if err != nil || events != n {
			b.Fatalf("%d events, %v", events, err)
		}
	}
	b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "events/s")
}
