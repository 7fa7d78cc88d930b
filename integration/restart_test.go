package integration

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/apiguard/apiguard/event"
	"github.com/apiguard/apiguard/internal/testutil"
	"github.com/apiguard/apiguard/pipeline/topology"
)

// restartConfig runs the detectors on the demo's windows, over four
// partitions, checkpointing every second.
const restartConfig = `
nats:
  partitions: 4
  checkpoint_interval: 1s
detectors:
  windows: [15s, 1m, 5m]
  cooldown: 30s
log:
  level: info
`

// TestPipelineRestartAfterGap stops and restarts the pipeline process
// between runs of normal traffic whose event time jumps by 0, 1 minute and
// 10 minutes at each restart (an outage, a deploy), each run 45 s long as
// the demo's: the restored detectors must raise no anomaly at all. Run
// after run, the clients start afresh, as after an outage.
func TestPipelineRestartAfterGap(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test; skipped with -short")
	}
	dir := t.TempDir()
	srv := testutil.JetStream(t, -1, "")
	_, js := testutil.Connect(t, srv)
	natsURL := srv.ClientURL()
	cfgPath := filepath.Join(dir, "apiguard.yaml")
	if err := os.WriteFile(cfgPath, []byte(restartConfig), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	cfg := topology.DefaultConfig()
	cfg.Partitions = 4
	if _, err := topology.Ensure(ctx, js, cfg); err != nil {
		t.Fatal(err)
	}

	const run = 45 * time.Second
	at := time.Now().Add(-3 * time.Hour).Truncate(time.Minute)
	for i, gap := range []time.Duration{0, 0, time.Minute, 10 * time.Minute} {
		at = at.Add(gap)
		n := publishNormal(ctx, t, js, uint64(i), at, run, cfg.Partitions)
		at = at.Add(run)
		p := start(t, fmt.Sprintf("pipeline run %d", i+1), "pipeline", "--config", cfgPath, "--nats", natsURL)
		testutil.Eventually(t, time.Minute, func() bool { return drained(ctx, js, cfg.Partitions) },
			"run %d: the pipeline did not process its %d events", i+1, n)
		p.stop(t)
		if i > 0 && !strings.Contains(p.output(), "restored detector checkpoint") {
			t.Errorf("run %d (after a gap of %s) did not restore the detectors' checkpoint", i+1, gap)
		}
		for _, a := range anomalies(ctx, t, js) {
			t.Errorf("run %d, after a gap of %s: %s on %s: %s", i+1, gap, a.Detector, a.Api, a.Summary)
		}
		if t.Failed() {
			return
		}
	}
}

// publishNormal publishes the demo's normal traffic (60 API-key clients,
// Poisson arrivals on four APIs) from..from+d of event time, as the proxy
// would, and returns how many events it published.
func publishNormal(ctx context.Context, t *testing.T, js jetstream.JetStream, seed uint64, from time.Time, d time.Duration, partitions int) int {
	t.Helper()
	rates := []struct {
		api  string
		rate float64
	}{{"GET /search", 1.0}, {"GET /products/{id}", 0.5}, {"POST /orders", 0.3}, {"GET /users/{id}/orders", 0.1}}
	var futures []jetstream.PubAckFuture
	n := 0
	for c := range 60 {
		key := fmt.Sprintf("client-%02d", c)
		for j, r := range rates {
			rng := rand.New(rand.NewPCG(seed, uint64(c*len(rates)+j)))
			for off := time.Duration(rng.ExpFloat64() / r.rate * 1e9); off < d; off += time.Duration(rng.ExpFloat64() / r.rate * 1e9) {
				at := from.Add(off)
				path := strings.ReplaceAll(strings.Fields(r.api)[1], "{id}", strconv.Itoa(rng.IntN(5000)))
				ev := &event.RequestEvent{Schema: event.SchemaVersion, Id: event.HashID(at, "restart", strconv.Itoa(n)),
					TimeUnixNano: at.UnixNano(), Api: r.api, Method: strings.Fields(r.api)[0], Path: path, Status: 200,
					ResponseBytes: 900, UpstreamLatencyNanos: int64(2 * time.Millisecond), ApiKeyId: key,
					ClientIp: event.ClientIPBytes(netip.MustParseAddr("127.0.0.1")), UserAgent: "apiguard-demo/1",
					Decision: event.Decision_DECISION_ALLOW, Auth: event.AuthOutcome_AUTH_OK}
				b, err := event.Marshal(ev)
				if err != nil {
					t.Fatal(err)
				}
				msg := &nats.Msg{Subject: fmt.Sprintf(event.SubjectEventsT, event.Partition(event.KindKey, key, partitions)),
					Header: nats.Header{}, Data: b}
				msg.Header.Set(jetstream.MsgIDHeader, ev.Id)
				f, err := js.PublishMsgAsync(msg)
				if err != nil {
					t.Fatal(err)
				}
				futures = append(futures, f)
				n++
				// Keep the outstanding publishes bounded: past the
				// client's limit a publish stalls and fails.
				if n%500 == 0 {
					select {
					case <-js.PublishAsyncComplete():
					case <-ctx.Done():
						t.Fatal(ctx.Err())
					}
				}
			}
		}
	}
	for _, f := range futures {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			t.Fatalf("publishing: %v", err)
		case <-ctx.Done():
			t.Fatal(ctx.Err())
		}
	}
	return n
}

// drained reports whether every partition's durable consumer exists and
// has nothing left to process.
func drained(ctx context.Context, js jetstream.JetStream, partitions int) bool {
	for p := range partitions {
		n, err := topology.Pending(ctx, js, event.StreamEvents, topology.ConsumerName(p))
		if err != nil || n > 0 {
			return false
		}
	}
	return true
}

// anomalies reads every anomaly stored so far.
func anomalies(ctx context.Context, t *testing.T, js jetstream.JetStream) []*event.Anomaly {
	t.Helper()
	s, err := js.Stream(ctx, event.StreamAnomalies)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs == 0 {
		return nil
	}
	c, err := s.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	var out []*event.Anomaly
	for uint64(len(out)) < info.State.Msgs {
		batch, err := c.Fetch(int(info.State.Msgs)-len(out), jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		got := 0
		for m := range batch.Messages() {
			a := &event.Anomaly{}
			if err := event.UnmarshalAnomaly(m.Data(), a); err != nil {
				t.Fatal(err)
			}
			out = append(out, a)
			got++
		}
		if got == 0 {
			t.Fatalf("read %d of %d anomalies", len(out), info.State.Msgs)
		}
	}
	return out
}
