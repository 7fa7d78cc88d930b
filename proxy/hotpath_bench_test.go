package proxy

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"testing"
)

// stubUpstream answers every round trip from memory with a 200 and a
// small JSON body, so the hot-path figures count the proxy's own work and
// not the sockets' or the upstream's. It allocates 5 times per request
// itself (response, header map and value, reader, closer).
type stubUpstream struct{}

const stubBody = `{"id":12345,"name":"widget","price":{"amount":1999,"currency":"EUR"},"tags":["a","b","c"],"stock":17}`

func (stubUpstream) RoundTrip(r *http.Request) (*http.Response, error) {
	return &http.Response{StatusCode: http.StatusOK, ProtoMajor: 1, ProtoMinor: 1,
		Header:        http.Header{"Content-Type": {"application/json"}},
		ContentLength: int64(len(stubBody)),
		Body:          io.NopCloser(strings.NewReader(stubBody)), Request: r}, nil
}

// sink is a reusable ResponseWriter: its header map is cleared between
// requests and the body is counted, not kept.
type sink struct {
	h    http.Header
	code int
	n    int
}

func (s *sink) Header() http.Header         { return s.h }
func (s *sink) WriteHeader(code int)        { s.code = code }
func (s *sink) Write(b []byte) (int, error) { s.n += len(b); return len(b), nil }
func (s *sink) reset()                      { clear(s.h); s.code, s.n = 0, 0 }

// hotPathHandlers are the handlers the hot-path figures compare, all on
// stubUpstream: a bare ReverseProxy with a buffer pool, apiguard with
// enforcement only, and apiguard with the default chain (proxy/chain's Build on the
// default configuration).
func hotPathHandlers(tb testing.TB) []struct {
	name string
	h    http.Handler
} {
	u, _ := url.Parse("http://127.0.0.1:1")
	bare := &httputil.ReverseProxy{Rewrite: func(pr *httputil.ProxyRequest) { pr.SetURL(u); pr.SetXForwarded() },
		Transport: stubUpstream{}, BufferPool: copyBuffers}
	cfg := DefaultConfig()
	cfg.Upstream = u.String()
	cfg.Routes = []string{"GET /products/{id}"}
	log := slog.New(slog.DiscardHandler)
	enf, err := New(cfg, []Check{NewEnforcement(matcherWith(1000))}, discard{}, 8, log)
	if err != nil {
		tb.Fatal(err)
	}
	enf.rp.Transport = timedTransport{stubUpstream{}}
	chain, err := buildChain(cfg, matcherWith(1000))
	if err != nil {
		tb.Fatal(err)
	}
	def, err := NewWithChain(cfg, chain, nil, discard{}, 8, log)
	if err != nil {
		tb.Fatal(err)
	}
	def.rp.Transport = timedTransport{stubUpstream{}}
	return []struct {
		name string
		h    http.Handler
	}{{"bare", bare}, {"enforcement", enf}, {"default", def}}
}

// hotPathRequest is a typical API call: a key, a browser's headers.
func hotPathRequest() *http.Request {
	req := httptest.NewRequest("GET", "/products/12345?expand=price", nil)
	req.RemoteAddr = "192.0.2.10:40000"
	req.Header.Set("X-API-Key", "partner-7.secret")
	req.Header.Set("User-Agent", "Mozilla/5.0 (X11; Linux x86_64; rv:140.0) Gecko/20100101 Firefox/140.0")
	req.Header.Set("Accept", "application/json")
	req.Header.Set("Accept-Language", "en-GB,en;q=0.9")
	return req
}

// BenchmarkHotPath is one request through each handler with the request
// built once and the upstream answered from memory: its allocs/op are the
// proxy's own per-request allocations plus stubUpstreamAllocs (make
// bench-go; docs/benchmarks.md).
func BenchmarkHotPath(b *testing.B) {
	for _, h := range hotPathHandlers(b) {
		b.Run(h.name, func(b *testing.B) {
			req := hotPathRequest()
			w := &sink{h: http.Header{}}
			b.ReportAllocs()
			for b.Loop() {
				w.reset()
				req.Body = http.NoBody // the inspection puts back what it read
				h.h.ServeHTTP(w, req)
				if w.code != http.StatusOK || w.n != len(stubBody) {
					b.Fatalf("status %d, %d bytes", w.code, w.n)
				}
			}
		})
	}
	b.Run("native", benchHotPathNative)
	b.Run("nethttp", benchHotPathNetHTTP)
}
