package proxy

import (
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/netip"
	"net/url"
	"testing"

	"github.com/apiguard/apiguard/enforce"
	"github.com/apiguard/apiguard/event"
)

// discard is an Emitter that drops events, so the benchmark measures the
// proxy's own work; publishing is measured by proxy/emit and deploy/bench.
type discard struct{}

func (discard) Emit(*event.RequestEvent) {}

// BenchmarkServeHTTP is one request through the handler to a loopback
// upstream: a bare httputil.ReverseProxy as the baseline, and apiguard's
// proxy with the enforcement check over 100,000 entries.
func BenchmarkServeHTTP(b *testing.B) {
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, `{"id":12345,"name":"widget"}`)
	}))
	defer upstream.Close()
	u, _ := url.Parse(upstream.URL)
	transport := http.DefaultTransport.(*http.Transport).Clone()
	transport.MaxIdleConnsPerHost = 256
	bare := &httputil.ReverseProxy{Rewrite: func(pr *httputil.ProxyRequest) { pr.SetURL(u); pr.SetXForwarded() }, Transport: transport}

	m := matcherWith(100_000)
	cfg := DefaultConfig()
	cfg.Upstream = upstream.URL
	cfg.Routes = []string{"GET /products/{id}"}
	guard, err := New(cfg, []Check{NewEnforcement(m)}, discard{}, 8, slog.New(slog.DiscardHandler))
	if err != nil {
		b.Fatal(err)
	}
	for _, h := range []struct {
		name    string
		handler http.Handler
	}{{"bare", bare}, {"apiguard", guard}} {
		b.Run(h.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				req := httptest.NewRequest("GET", "/products/12345?expand=1", nil)
				req.RemoteAddr = "192.0.2.10:40000"
				req.Header.Set("X-API-Key", "partner-7.secret")
				rec := httptest.NewRecorder()
				h.handler.ServeHTTP(rec, req)
				if rec.Code != http.StatusOK {
					b.Fatalf("status %d", rec.Code)
				}
			}
		})
	}
}

// matcherWith returns a matcher holding n blocked keys, none of the benchmark's.
func matcherWith(n int) *enforce.Matcher {
	m := enforce.NewMatcher()
	entries := make([]enforce.Entry, 0, n)
	for i := range n {
		entries = append(entries, enforce.Entry{Kind: enforce.KindKey, Value: fmt.Sprintf("k%d", i), Action: enforce.ActionBlock})
	}
	entries = append(entries, enforce.Entry{Kind: enforce.KindIP, Value: netip.MustParseAddr("198.51.100.1").String(), Action: enforce.ActionBlock})
	m.Replace(entries)
	return m
}
