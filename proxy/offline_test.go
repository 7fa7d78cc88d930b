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
		live := events.last(t)
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
