package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/apiguard/apiguard/event"
	"github.com/apiguard/apiguard/internal/testutil"
	"github.com/apiguard/apiguard/replay"
	"github.com/apiguard/apiguard/sinks/clickhouse"
)

// publishEvents publishes n events of the last n seconds, from 4 client
// addresses, on the partitions the proxy would choose, newest partition
// first within each batch so that the stream is not in event-time order.
func publishEvents(t testing.TB, js jetstream.JetStream, n int, now time.Time) {
	t.Helper()
	for i := range n {
		at := now.Add(time.Duration(i-n) * time.Second)
		if i%2 == 0 && i+1 < n {
			at = at.Add(time.Second) // pairs swapped: out of order in the stream
		} else if i%2 == 1 {
			at = at.Add(-time.Second)
		}
		ip := netip.AddrFrom4([4]byte{203, 0, 113, byte(i % 4)})
		ev := &event.RequestEvent{Id: event.NewID(at), TimeUnixNano: at.UnixNano(), Api: []string{"GET /a", "POST /login"}[i%3/2],
			Method: "GET", Path: "/a", ClientIp: event.ClientIPBytes(ip), Status: 200, Decision: event.Decision_DECISION_ALLOW}
		p := event.Partition(event.KindIP, ip.String(), DefaultConfig().NATS.Partitions)
		ev.Partition = uint32(p)
		b, err := event.Marshal(ev)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := js.PublishAsync(fmt.Sprintf(event.SubjectEventsT, p), b); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case <-js.PublishAsyncComplete():
	case <-time.After(30 * time.Second):
		t.Fatal("publishing took over 30s")
	}
}

func readCapture(t testing.TB, path string) []*event.RequestEvent {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := replay.NewReader(f, path)
	if err != nil {
		t.Fatal(err)
	}
	var out []*event.RequestEvent
	for {
		ev := new(event.RequestEvent)
		if _, err := r.Next(ev); errors.Is(err, io.EOF) {
			return out
		} else if err != nil {
			t.Fatal(err)
		}
		out = append(out, ev)
	}
}

// TestReplayCaptureFromStream captures from embedded JetStream: every
// event of the range, in event-time order, filtered by API and principal.
func TestReplayCaptureFromStream(t *testing.T) {
	js, _ := testutil.Topology(t)
	srvURL := js.Conn().ConnectedUrl()
	now := time.Now()
	publishEvents(t, js, 400, now)
	dir := t.TempDir()
	for _, tc := range []struct {
		name string
		args []string
		want int
	}{
		{"all", []string{"--since", "1h"}, 400},
		{"range", []string{"--since", now.Add(-300 * time.Second).Format(time.RFC3339Nano), "--until",
			now.Add(-100 * time.Second).Format(time.RFC3339Nano)}, 200},
		{"api", []string{"--since", "1h", "--api", "POST /login"}, 133},
		// Every event was stored after the range ended: later than --late.
		{"late", []string{"--since", "1h", "--until", "100s", "--late", "1ms"}, 0},
		{"principal", []string{"--since", "1h", "--principal", "ip:203.0.113.1"}, 100},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(dir, tc.name+".cap")
			var out, progress bytes.Buffer
			args := append([]string{"--nats", srvURL, "--out", path}, tc.args...)
			if err := replayCapture(args, &out, &progress); err != nil {
				t.Fatal(err)
			}
			evs := readCapture(t, path)
			if len(evs) != tc.want {
				t.Fatalf("%d events, want %d; said %q", len(evs), tc.want, out.String())
			}
			for i := 1; i < len(evs); i++ {
				if evs[i].TimeUnixNano < evs[i-1].TimeUnixNano {
					t.Fatalf("event %d before the one before it", i)
				}
			}
			if !strings.Contains(progress.String(), "messages read") {
				t.Errorf("no progress on stderr: %q", progress.String())
			}
		})
	}
	if err := replayCapture([]string{"--nats", srvURL, "--out", filepath.Join(dir, "x"), "--principal", "nobody"}, io.Discard, io.Discard); err == nil {
		t.Error("--principal without a kind accepted")
	}
}

// BenchmarkReplayCapture measures capture from the stream: read, decode,
// filter, sort and write 100,000 events; events/s is the figure of
// docs/benchmarks.md.
func BenchmarkReplayCapture(b *testing.B) {
	js, _ := testutil.Topology(b)
	const n = 100_000
	publishEvents(b, js, n, time.Now())
	path := filepath.Join(b.TempDir(), "bench.cap")
	b.ResetTimer()
	for range b.N {
		if err := replayCapture([]string{"--nats", js.Conn().ConnectedUrl(), "--since", "48h", "--out", path}, io.Discard, io.Discard); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "events/s")
}

// TestReplayCaptureFromClickHouse captures a range older than the stream
// from the events table of a real ClickHouse.
func TestReplayCaptureFromClickHouse(t *testing.T) {
	srv := testutil.StartClickHouse(t)
	ctx := context.Background()
	cfg := DefaultConfig().ClickHouse.Config
	cfg.Addr = []string{srv.Addr}
	ch, err := clickhouse.Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer ch.Close()
	if _, err := ch.Migrate(ctx, 30); err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 10, 1, 12, 0, 0, 0, time.UTC)
	var recs [][]byte
	for i := range 50 {
		at := t0.Add(time.Duration(49-i) * time.Minute) // stored newest first
		ev := &event.RequestEvent{Id: event.HashID(at, "e", fmt.Sprint(i)), TimeUnixNano: at.UnixNano(), Api: "GET /a", Method: "GET",
			Path: "/a", ClientIp: event.ClientIPBytes(netip.MustParseAddr("198.51.100.9")), Status: 200}
		b, err := event.Marshal(ev)
		if err != nil {
			t.Fatal(err)
		}
		recs = append(recs, b)
	}
	if _, err := clickhouse.NewWriter(ch).Events().Store(ctx, recs, false); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "old.cap")
	var out bytes.Buffer
	args := []string{"--from", "clickhouse", "--clickhouse", srv.Addr, "--since", t0.Add(10 * time.Minute).Format(time.RFC3339),
		"--until", t0.Add(30 * time.Minute).Format(time.RFC3339), "--principal", "ip:198.51.100.9", "--out", path}
	if err := replayCapture(args, &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	evs := readCapture(t, path)
	if len(evs) != 20 || evs[0].TimeUnixNano != t0.Add(10*time.Minute).UnixNano() {
		t.Fatalf("%d events from %v, want 20 from %s; said %q", len(evs), evs[0].TimeUnixNano, t0.Add(10*time.Minute), out.String())
	}
	for i := 1; i < len(evs); i++ {
		if evs[i].TimeUnixNano <= evs[i-1].TimeUnixNano {
			t.Fatalf("event %d out of order", i)
		}
	}
}
