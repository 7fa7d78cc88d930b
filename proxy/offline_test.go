package proxy

import (
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/apiguard/apiguard/event"
)

// TestOfflineMatchesProxy holds OfflineRecorder to the event the proxy
// itself records for the same request, field by field, except what only a
// live proxy knows.
func TestOfflineMatchesProxy(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Upstream = "http://127.0.0.1:1" // refused: the event is still recorded
	cfg.Routes = []string{"GET /orders/{id}", "* /login"}
	cfg.TrustedProxies = []string{"10.0.0.0/8"}
	cfg.CaptureQueryValues = true
	cfg.Instance = "p1"
	tok := "eyJhbGciOiJub25lIn0.eyJzdWIiOiJhbGljZSIsImp0aSI6Imo3In0.x"
	reqs := []func() *http.Request{
		func() *http.Request {
			r := httptest.NewRequest("GET", "/orders/42?a=1&b=%zz;c=d&=x", nil)
			r.RemoteAddr = "10.1.2.3:5555"
			r.Header.Set("X-Forwarded-For", "203.0.113.9, 10.9.9.9")
			r.Header.Set("User-Agent", "curl/8")
			r.Header.Set("Referer", "https://shop.example/")
			return r
		},
		func() *http.Request {
			r := httptest.NewRequest("POST", "/login", strings.NewReader("user=a&pass=b"))
			r.RemoteAddr = "198.51.100.7:1"
			r.Header.Set("X-API-Key", "k1.secret")
			r.Header.Set("Origin", "https://shop.example")
			return r
		},
		func() *http.Request {
			r := httptest.NewRequest("GET", "/a/%C0%AF/0123456789abcdef0123", nil)
			r.RemoteAddr = "198.51.100.8:1"
			r.Header.Set("Authorization", "Bearer "+tok)
			r.Header.Set("Accept-Language", "en")
			return r
		},
	}
	events := &collector{}
	p, err := New(cfg, nil, events, 8, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	o, err := NewOfflineRecorder(cfg)
	if err != nil {
		t.Fatal(err)
	}
	for i, mk := range reqs {
		p.ServeHTTP(httptest.NewRecorder(), mk())
		live := events.Last(t)
		got := new(event.RequestEvent)
		if err := o.Record(got, mk(), time.Unix(0, live.TimeUnixNano), live.Id, 8); err != nil {
			t.Fatal(err)
		}
		want := proto.Clone(live).(*event.RequestEvent)
		want.DurationNanos, want.Decision, want.Check, want.Reason, want.Status = 0, 0, "", "", 0
		want.HeaderFingerprint, want.UpstreamLatencyNanos, want.ResponseBytes = "", 0, 0
		if !proto.Equal(got, want) {
			t.Errorf("request %d:\noffline %v\nproxy   %v", i, got, want)
		}
	}
}

// TestOfflineBodyMatchesProxy holds RecordBody to the body parameters the
// proxy's inspection records, names and values, redaction included.
func TestOfflineBodyMatchesProxy(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Upstream = "http://127.0.0.1:1"
	cfg.Capture.Body = CaptureValues
	bodies := []struct{ ctype, body string }{
		{"application/x-www-form-urlencoded", "user=alice&password=hunter2&qty=3&note=a+b%21"},
		{"application/json; charset=utf-8", `{"items":[{"sku":"A1","qty":2}],"card":"4111 1111 1111 1111","ok":true}`},
		{"application/x-www-form-urlencoded", "bad=%zz"},
		{"text/plain", "just text"},
	}
	events := &collector{}
	p, err := New(cfg, []Check{inspectionForTests(cfg.Inspection)}, events, 4, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	o, err := NewOfflineRecorder(cfg)
	if err != nil {
		t.Fatal(err)
	}
	for i, b := range bodies {
		mk := func() *http.Request {
			r := httptest.NewRequest("POST", "/orders?x=1", strings.NewReader(b.body))
			r.Header.Set("Content-Type", b.ctype)
			return r
		}
		p.ServeHTTP(httptest.NewRecorder(), mk())
		live := events.Last(t)
		got := new(event.RequestEvent)
		if err := o.Record(got, mk(), time.Unix(0, live.TimeUnixNano), live.Id, 4); err != nil {
			t.Fatal(err)
		}
		o.RecordBody(got, b.ctype, []byte(b.body))
		if i < 2 && len(live.Query) < 4 {
			t.Fatalf("body %d: the proxy recorded %v, want the body's parameters", i, live.Query)
		}
		if len(got.Query) != len(live.Query) {
			t.Fatalf("body %d: offline %v, proxy %v", i, got.Query, live.Query)
		}
		for j := range got.Query {
			if !proto.Equal(got.Query[j], live.Query[j]) {
				t.Errorf("body %d, parameter %d: offline %v, proxy %v", i, j, got.Query[j], live.Query[j])
			}
		}
	}
}
