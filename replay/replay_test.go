package replay

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/apiguard/apiguard/detectors"
	"github.com/apiguard/apiguard/event"
)

func TestCaptureRoundTrip(t *testing.T) {
	var buf bytes.Buffer
	w, err := NewWriter(&buf)
	if err != nil {
		t.Fatal(err)
	}
	in := []*event.RequestEvent{
		{Id: "a", TimeUnixNano: 1, Api: "GET /x", Path: "/x", Status: 200},
		{Id: "b", TimeUnixNano: 2, Api: "POST /login", Account: "acct:1", Status: 401},
	}
	labels := []string{"", "credential_stuffing/0"}
	for i, ev := range in {
		if err := w.Write(ev, labels[i]); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	r, err := NewReader(bytes.NewReader(buf.Bytes()), "mem")
	if err != nil {
		t.Fatal(err)
	}
	for i := range in {
		var ev event.RequestEvent
		label, err := r.Next(&ev)
		if err != nil {
			t.Fatalf("record %d: %v", i, err)
		}
		if label != labels[i] || ev.Id != in[i].Id || ev.Account != in[i].Account || ev.Schema != event.SchemaVersion {
			t.Errorf("record %d: %q %v, want %q %v", i, label, &ev, labels[i], in[i])
		}
	}
	var ev event.RequestEvent
	if _, err := r.Next(&ev); !errors.Is(err, io.EOF) {
		t.Errorf("after the last record: %v, want io.EOF", err)
	}
}

func TestCaptureErrorsNamePosition(t *testing.T) {
	var buf bytes.Buffer
	w, _ := NewWriter(&buf)
	_ = w.Write(&event.RequestEvent{Id: "a", Api: "GET /x"}, "")
	_ = w.Write(&event.RequestEvent{Id: "b", Api: "GET /y"}, "probing/1")
	_ = w.Flush()
	whole := buf.Bytes()
	cases := map[string]struct {
		data []byte
		want string
	}{
		"not a capture":    {[]byte("GET / HTTP/1.1\r\n"), "not an apiguard capture file"},
		"truncated event":  {whole[:len(whole)-3], "record 1 at byte"},
		"garbage event":    {append(append([]byte(Magic), 0, 3), 0xff, 0xff, 0xff), "record 0 at byte 19: decoding event"},
		"huge label":       {append([]byte(Magic), 0xff, 0xff, 0x7f), "label length"},
		"truncated length": {append([]byte(Magic), 0x80), "reading label length"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			r, err := NewReader(bytes.NewReader(c.data), "f.cap")
			for err == nil {
				var ev event.RequestEvent
				_, err = r.Next(&ev)
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %q, want it to contain %q", err, c.want)
			}
		})
	}
}

// FuzzReader feeds arbitrary bytes to the capture reader: it must never
// panic, and what it reads must write back to the same records.
func FuzzReader(f *testing.F) {
	var buf bytes.Buffer
	w, _ := NewWriter(&buf)
	_ = w.Write(&event.RequestEvent{Id: "a", Api: "GET /x", Query: []*event.QueryParam{{Name: "q", Value: "1"}}}, "")
	_ = w.Write(&event.RequestEvent{Id: "b", Api: "POST /login", Status: 401}, "credential_stuffing/0")
	_ = w.Flush()
	f.Add(buf.Bytes())
	f.Add([]byte(Magic))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := NewReader(bytes.NewReader(data), "fuzz")
		if err != nil {
			return
		}
		var out bytes.Buffer
		w, _ := NewWriter(&out)
		var labels []string
		for {
			var ev event.RequestEvent
			label, err := r.Next(&ev)
			if err != nil {
				break
			}
			labels = append(labels, label)
			if err := w.Write(&ev, label); err != nil {
				t.Fatal(err)
			}
		}
		_ = w.Flush()
		r2, err := NewReader(bytes.NewReader(out.Bytes()), "again")
		if err != nil {
			t.Fatal(err)
		}
		for i, want := range labels {
			var ev event.RequestEvent
			if got, err := r2.Next(&ev); err != nil || got != want {
				t.Fatalf("record %d read back as %q, %v; want %q", i, got, err, want)
			}
		}
	})
}

func generate(t testing.TB, cfg GenConfig) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := NewWriter(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Generate(cfg, w); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestGenerateIsDeterministic(t *testing.T) {
	cfg := DefaultGenConfig()
	cfg.Duration, cfg.Scale, cfg.Seed = 4*time.Hour, 0.2, 3
	a, b := generate(t, cfg), generate(t, cfg)
	if !bytes.Equal(a, b) {
		t.Fatal("the same seed gave different files")
	}
	cfg.Seed = 4
	if bytes.Equal(a, generate(t, cfg)) {
		t.Fatal("another seed gave the same file")
	}
	cfg.Duration = time.Hour
	var buf bytes.Buffer
	w, _ := NewWriter(&buf)
	if _, err := Generate(cfg, w); err == nil || !strings.Contains(err.Error(), "at least 4h") {
		t.Errorf("a 1h generation: %v, want a refusal", err)
	}
}

// TestBacktestTargets generates a day of traffic and requires the
// detectors to meet their targets on it: precision and recall of at least
// 0.95 on average, every attack kind detected at least once, and no
// legitimate principal flagged.
func TestBacktestTargets(t *testing.T) {
	if testing.Short() {
		t.Skip("a day of traffic")
	}
	for _, seed := range []uint64{1, 3} {
		cfg := DefaultGenConfig()
		cfg.Seed = seed
		data := generate(t, cfg)
		r, err := NewReader(bytes.NewReader(data), "generated")
		if err != nil {
			t.Fatal(err)
		}
		dc := detectors.DefaultConfig()
		if dc.Inventory.Ops, err = detectors.ParseOpenAPI(ShopOpenAPI); err != nil {
			t.Fatal(err)
		}
		res, err := Backtest(r, BacktestConfig{Detectors: dc, Partitions: 4})
		if err != nil {
			t.Fatal(err)
		}
		line, _ := json.Marshal(res)
		t.Logf("seed %d: %d events, %s", seed, res.Events, line)
		if res.MacroPrecision < 0.95 || res.MacroRecall < 0.95 || res.FalsePositivePrincipals != 0 {
			t.Errorf("seed %d: macro precision %.3f, recall %.3f, %d legitimate principals flagged %v; want ≥ 0.95, ≥ 0.95, 0",
				seed, res.MacroPrecision, res.MacroRecall, res.FalsePositivePrincipals, res.FalsePositives)
		}
		for _, kind := range AttackKinds {
			d := res.Detectors[kind]
			want := cfg.Campaigns
			if kind == "campaign" {
				want = max(want, 4) // each of its four forms
			}
			if d == nil || d.Detected == 0 || d.Campaigns != want {
				t.Errorf("seed %d: %s: %+v, want its %d campaigns and at least one detected", seed, kind, d, want)
			}
		}
	}
}

func TestBacktestRefusesDisorder(t *testing.T) {
	var buf bytes.Buffer
	w, _ := NewWriter(&buf)
	_ = w.Write(&event.RequestEvent{Id: "b", TimeUnixNano: 2e9, Api: "GET /x"}, "")
	_ = w.Write(&event.RequestEvent{Id: "a", TimeUnixNano: 1e9, Api: "GET /x"}, "")
	_ = w.Flush()
	r, _ := NewReader(&buf, "f")
	if _, err := Backtest(r, BacktestConfig{Detectors: detectors.DefaultConfig(), Partitions: 1}); err == nil || !strings.Contains(err.Error(), "event-time order") {
		t.Errorf("Backtest of events out of order: %v", err)
	}
}

// BenchmarkBacktest is the detectors' throughput on a day of generated
// traffic with every detector enabled, one partition on one core.
func BenchmarkBacktest(b *testing.B) {
	cfg := DefaultGenConfig()
	data := generate(b, cfg)
	dc := detectors.DefaultConfig()
	dc.Inventory.Ops, _ = detectors.ParseOpenAPI(ShopOpenAPI)
	var events int
	var clock time.Duration
	for b.Loop() {
		r, _ := NewReader(bytes.NewReader(data), "generated")
		res, err := Backtest(r, BacktestConfig{Detectors: dc, Partitions: 1})
		if err != nil {
			b.Fatal(err)
		}
		events += res.Events
		clock += res.DetectorTime
	}
	b.ReportMetric(float64(events)/clock.Seconds(), "events/s")
}
