package event

import (
	"errors"
	"net/netip"
	"slices"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
)

// typical is a request event as the proxy writes it for an API-key client.
func typical() *RequestEvent {
	t := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	return &RequestEvent{
		Id:                   NewID(t),
		TimeUnixNano:         t.UnixNano(),
		DurationNanos:        1_250_000,
		Proxy:                "proxy-1",
		Api:                  "POST /orders/{id}",
		Method:               "POST",
		Host:                 "api.example.com",
		Path:                 "/orders/81723",
		Query:                []*QueryParam{{Name: "expand"}, {Name: "page"}},
		Status:               201,
		RequestBytes:         312,
		ResponseBytes:        1024,
		UpstreamLatencyNanos: 1_000_000,
		ClientIp:             ClientIPBytes(netip.MustParseAddr("203.0.113.7")),
		ForwardedFor:         []string{"198.51.100.2"},
		UserAgent:            "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36",
		HeaderFingerprint:    "5d41402abc4b2a76",
		ApiKeyId:             "partner-42",
		Subject:              "user-1234",
		TokenHash:            "9f86d081884c7d659a2feaa0c55ad015",
		Origin:               "https://shop.example.com",
		Decision:             Decision_DECISION_ALLOW,
		Auth:                 AuthOutcome_AUTH_OK,
		Partition:            3,
	}
}

func TestCodecRoundTrip(t *testing.T) {
	in := typical()
	b, err := Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) > 400 {
		t.Errorf("typical event is %d bytes, want ≤ 400", len(b))
	}
	var out RequestEvent
	if err := UnmarshalEvent(b, &out); err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(in, &out) {
		t.Errorf("round trip changed the event:\n in %v\nout %v", in, &out)
	}
	if out.Schema != SchemaVersion {
		t.Errorf("schema = %d, want %d", out.Schema, SchemaVersion)
	}
}

// TestUnmarshalEventOwnsItsCopy: the copying decoder's event must not change
// when the caller reuses its buffer.
func TestUnmarshalEventOwnsItsCopy(t *testing.T) {
	in := typical()
	b, _ := Marshal(in)
	var out RequestEvent
	if err := UnmarshalEvent(b, &out); err != nil {
		t.Fatal(err)
	}
	for i := range b {
		b[i] = 'x'
	}
	if !proto.Equal(in, &out) {
		t.Fatalf("event changed when the input buffer was overwritten: %v", &out)
	}
}

func TestUnmarshalRejects(t *testing.T) {
	future, _ := proto.Marshal(&RequestEvent{Schema: SchemaVersion + 1, Id: "x"})
	noID, _ := proto.Marshal(&RequestEvent{Schema: SchemaVersion})
	noSchema, _ := proto.Marshal(&RequestEvent{Id: "x"})
	tests := []struct {
		name    string
		in      []byte
		wantErr error
	}{
		{"garbage", []byte{0xff, 0xff, 0xff}, nil},
		{"future schema", future, ErrSchema},
		{"no schema", noSchema, ErrSchema},
		{"no id", noID, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var ev RequestEvent
			err := UnmarshalEvent(tt.in, &ev)
			if err == nil {
				t.Fatal("accepted a bad event")
			}
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Errorf("err = %v, want %v", err, tt.wantErr)
			}
		})
	}
}

func TestAnomalyAndActionRoundTrip(t *testing.T) {
	a := &Anomaly{Id: "a1", Detector: "rate", Principal: &Principal{Kind: KindKey, Value: "k"}, Score: 0.9,
		Deviations: []*Deviation{{Feature: "rate", Observed: 40, Expected: 1, Deviation: 30}}}
	b, err := Marshal(a)
	if err != nil {
		t.Fatal(err)
	}
	var a2 Anomaly
	if err := UnmarshalAnomaly(b, &a2); err != nil || !proto.Equal(a, &a2) {
		t.Fatalf("anomaly round trip: %v %v", err, &a2)
	}
	act := &Action{Id: "x1", Kind: ActionKind_ACTION_BLOCK, Target: a.Principal, TtlSeconds: 600, AnomalyId: "a1"}
	b, err = Marshal(act)
	if err != nil {
		t.Fatal(err)
	}
	var act2 Action
	if err := UnmarshalAction(b, &act2); err != nil || !proto.Equal(act, &act2) {
		t.Fatalf("action round trip: %v %v", err, &act2)
	}
}

func TestClientIP(t *testing.T) {
	for _, s := range []string{"203.0.113.7", "2001:db8::1", "::ffff:10.0.0.1"} {
		a := netip.MustParseAddr(s)
		got := ClientIP(ClientIPBytes(a))
		if got != a.Unmap() {
			t.Errorf("%s: got %s", s, got)
		}
	}
	if ClientIPString(nil) != "" {
		t.Error("absent address should be empty")
	}
}

func BenchmarkCodec(b *testing.B) {
	ev := typical()
	buf := make([]byte, 0, 512)
	var out RequestEvent
	b.ReportAllocs()
	var n int
	for b.Loop() {
		var err error
		buf, err = AppendMarshal(buf[:0], ev)
		if err != nil {
			b.Fatal(err)
		}
		n = len(buf)
		out = RequestEvent{} // as the pipeline does: a fresh event per message, decoded in place
		if err := UnmarshalEventInPlace(buf, &out); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(n), "bytes/event")
}

// FuzzUnmarshalEvent feeds untrusted bytes to the decoder: it must return an
// error or an event that re-encodes, never panic.
func FuzzUnmarshalEvent(f *testing.F) {
	b, _ := Marshal(typical())
	f.Add(b)
	f.Fuzz(func(t *testing.T, data []byte) {
		var ev RequestEvent
		if err := UnmarshalEvent(data, &ev); err != nil {
			return
		}
		if _, err := Marshal(&ev); err != nil {
			t.Fatalf("decoded event does not re-encode: %v", err)
		}
	})
}

// BenchmarkCodecReflect is the baseline for BenchmarkCodec: the same event
// through protobuf-go's reflection codec, in the same run.
func BenchmarkCodecReflect(b *testing.B) {
	ev := typical()
	ev.Schema = SchemaVersion
	var out RequestEvent
	b.ReportAllocs()
	for b.Loop() {
		buf, err := proto.Marshal(ev)
		if err != nil {
			b.Fatal(err)
		}
		out.Reset()
		if err := proto.Unmarshal(buf, &out); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkEncode and BenchmarkDecodeInPlace split BenchmarkCodec in two;
// BenchmarkDecode is the copying decoder for buffers the caller reuses.
func BenchmarkEncode(b *testing.B) {
	ev := typical()
	buf := make([]byte, 0, 512)
	b.ReportAllocs()
	for b.Loop() {
		buf, _ = AppendMarshal(buf[:0], ev)
	}
}

func BenchmarkDecode(b *testing.B) {
	buf, _ := Marshal(typical())
	var out RequestEvent
	b.ReportAllocs()
	for b.Loop() {
		out = RequestEvent{}
		if err := UnmarshalEvent(buf, &out); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeInPlace(b *testing.B) {
	buf, _ := Marshal(typical())
	var out RequestEvent
	b.ReportAllocs()
	for b.Loop() {
		out = RequestEvent{}
		if err := UnmarshalEventInPlace(buf, &out); err != nil {
			b.Fatal(err)
		}
	}
}

// TestUnmarshalEventSanitizes decodes an event whose strings are not valid
// UTF-8, as an older proxy wrote them: the event is kept, its strings come
// back valid (invalid bytes as %XX), and what is derived from it encodes.
func TestUnmarshalEventSanitizes(t *testing.T) {
	ev := &RequestEvent{Schema: SchemaVersion, Id: "e1", TimeUnixNano: 1, Api: "GET /scripts/..\xc0\xaf../cmd.exe",
		UserAgent: "caf\xe9", Query: []*QueryParam{{Name: "\xff", Value: "x\xfe"}}}
	b, err := ev.MarshalVT() // the generated code does not check UTF-8: an older proxy's bytes
	if err != nil {
		t.Fatal(err)
	}
	for name, decode := range map[string]func([]byte, *RequestEvent) error{"UnmarshalEvent": UnmarshalEvent, "UnmarshalEventInPlace": UnmarshalEventInPlace} {
		var got RequestEvent
		if err := decode(slices.Clone(b), &got); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if got.Api != "GET /scripts/..%C0%AF../cmd.exe" || got.UserAgent != "caf%E9" || got.Query[0].Name != "%FF" || got.Query[0].Value != "x%FE" {
			t.Errorf("%s: api %q, user agent %q, query %q=%q", name, got.Api, got.UserAgent, got.Query[0].Name, got.Query[0].Value)
		}
		if _, err := Marshal(&Anomaly{Id: "a1", Api: got.Api, Summary: got.UserAgent}); err != nil {
			t.Errorf("%s: an anomaly built from the event does not encode: %v", name, err)
		}
	}
}
