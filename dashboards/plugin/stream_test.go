package plugin_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/grafana/grafana-plugin-sdk-go/backend"
	"github.com/grafana/grafana-plugin-sdk-go/data"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/apiguard/apiguard/event"
)

// packets is a StreamPacketSender that hands each packet to a channel.
type packets chan *backend.StreamPacket

func (p packets) Send(pk *backend.StreamPacket) error { p <- pk; return nil }

// publishAnomaly publishes an anomaly as the pipeline does.
func publishAnomaly(t testing.TB, js jetstream.JetStream, id string) {
	t.Helper()
	a := &event.Anomaly{Schema: event.SchemaVersion, Id: id, TimeUnixNano: time.Now().UnixNano(), Detector: "rate",
		Api: "POST /orders", Principal: &event.Principal{Kind: "key", Value: "k1"}, Score: 0.9,
		Severity: event.Severity_SEVERITY_HIGH, Summary: "40 req/s vs 0.3"}
	b, err := event.Marshal(a)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.Publish(context.Background(), fmt.Sprintf(event.SubjectAnomaliesT, a.Detector), b, jetstream.WithMsgID(id)); err != nil {
		t.Fatal(err)
	}
}

// TestStreams: subscriptions to unknown paths are refused, publishing is
// refused, and RunStream sends an anomaly published after it started as a
// frame, and none published before; it returns nil when its context ends.
func TestStreams(t *testing.T) {
	ds, js, _ := newDatasource(t)
	ctx := context.Background()
	for path, want := range map[string]backend.SubscribeStreamStatus{
		"anomalies": backend.SubscribeStreamStatusOK, "actions": backend.SubscribeStreamStatusOK, "events": backend.SubscribeStreamStatusNotFound,
	} {
		r, err := ds.SubscribeStream(ctx, &backend.SubscribeStreamRequest{Path: path, PluginContext: backend.PluginContext{User: viewer}})
		if err != nil || r.Status != want {
			t.Errorf("subscribe %s: %v, %v; want %v", path, r, err, want)
		}
	}
	if r, _ := ds.PublishStream(ctx, &backend.PublishStreamRequest{Path: "anomalies"}); r.Status != backend.PublishStreamStatusPermissionDenied {
		t.Errorf("publish: %v", r.Status)
	}

	publishAnomaly(t, js, "old")
	ctx, cancel := context.WithCancel(ctx)
	ch := make(packets, 16)
	done := make(chan error, 1)
	go func() {
		done <- ds.RunStream(ctx, &backend.RunStreamRequest{Path: "anomalies"}, backend.NewStreamSender(ch))
	}()
	// The consumer starts from "now": publish until a frame arrives.
	var pk *backend.StreamPacket
	for i := 0; pk == nil && i < 50; i++ {
		publishAnomaly(t, js, fmt.Sprintf("new-%d", i))
		select {
		case pk = <-ch:
		case <-time.After(100 * time.Millisecond):
		}
	}
	if pk == nil {
		t.Fatal("no frame within 5s")
	}
	var f data.Frame
	if err := json.Unmarshal(pk.Data, &f); err != nil {
		t.Fatal(err)
	}
	if f.Name != "anomalies" || f.Rows() != 1 {
		t.Fatalf("frame %s with %d rows", f.Name, f.Rows())
	}
	got := map[string]any{}
	for _, fl := range f.Fields {
		got[fl.Name], _ = fl.ConcreteAt(0)
	}
	if got["anomaly_id"] == "old" || got["anomaly_id"] == nil || got["detector"] != "rate" || got["principal"] != "k1" || got["score"] != 0.9 || got["severity"] != "high" {
		t.Errorf("frame fields: %v", got)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("RunStream after cancel: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("RunStream did not return after its context ended")
	}
	if err := ds.RunStream(context.Background(), &backend.RunStreamRequest{Path: "events"}, backend.NewStreamSender(ch)); err == nil || errors.Is(err, context.Canceled) {
		t.Errorf("RunStream of an unknown path: %v", err)
	}
}
