package clients

import (
	"github.com/apiguard/apiguard/proxy"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"
	"time"

	"github.com/apiguard/apiguard/event"
)

func TestRateLimitBuckets(t *testing.T) {
	cfg := proxy.RateLimitConfig{
		Plans:       map[string]proxy.Limit{"free": {Rate: 1, Burst: 3}, "gold": {Rate: 10, Burst: 20}},
		DefaultPlan: "free",
		Anonymous:   proxy.Limit{Rate: 0.5, Burst: 2},
		APIs:        map[string]proxy.Limit{"POST /orders": {Rate: 100, Burst: 5}},
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	rl := NewRateLimit(cfg)
	t0 := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	x := func(api, key, plan, ip string, at time.Duration) *proxy.Exchange {
		ev := &event.RequestEvent{}
		if key != "" {
			ev.Auth = event.AuthOutcome_AUTH_OK
		}
		return &proxy.Exchange{API: api, Creds: proxy.Credentials{KeyID: key}, Plan: plan, ClientIP: netip.MustParseAddr(ip),
			Event: ev, Now: t0.Add(at)}
	}
	run := func(n int, mk func(i int) *proxy.Exchange) (allowed int, last *proxy.Denial) {
		for i := range n {
			if d := rl.Check(mk(i)); d == nil {
				allowed++
			} else {
				last = d
			}
		}
		return allowed, last
	}
	// A free key gets its burst of 3, then one a second.
	if n, d := run(5, func(int) *proxy.Exchange { return x("GET /items/{id}", "k1", "free", "10.0.0.1", 0) }); n != 3 ||
		d.Status != 429 || d.Headers.Get("Retry-After") != "1" || d.Decision != event.Decision_DECISION_THROTTLE {
		t.Errorf("free burst: %d allowed, last %+v", n, d)
	}
	if n, _ := run(1, func(int) *proxy.Exchange { return x("GET /items/{id}", "k1", "free", "10.0.0.1", time.Second) }); n != 1 {
		t.Error("a token did not come back after a second")
	}
	// Buckets are per API and per consumer.
	if n, _ := run(3, func(int) *proxy.Exchange { return x("GET /search", "k1", "free", "10.0.0.1", 0) }); n != 3 {
		t.Errorf("another API shares the bucket: %d allowed", n)
	}
	if n, _ := run(20, func(int) *proxy.Exchange { return x("GET /items/{id}", "k2", "gold", "10.0.0.1", 0) }); n != 20 {
		t.Errorf("gold: %d of 20 allowed", n)
	}
	// An unknown plan gets the default plan.
	if n, _ := run(4, func(int) *proxy.Exchange { return x("GET /items/{id}", "k3", "platinum?", "10.0.0.1", 0) }); n != 3 {
		t.Errorf("unknown plan: %d allowed, want the default plan's 3", n)
	}
	// Without a verified key, per IP.
	if n, d := run(4, func(int) *proxy.Exchange { return x("GET /items/{id}", "", "", "10.0.0.9", 0) }); n != 2 || d.Headers.Get("Retry-After") != "2" {
		t.Errorf("anonymous: %d allowed, %+v", n, d)
	}
	// The API's global limit binds across consumers.
	if n, d := run(8, func(i int) *proxy.Exchange {
		return x("POST /orders", "gold-"+string(rune('a'+i)), "gold", "10.0.0.1", 0)
	}); n != 5 || d.Reason != "rate limit: API limit for POST /orders" {
		t.Errorf("global: %d allowed, %+v", n, d)
	}
	bad := proxy.RateLimitConfig{Plans: map[string]proxy.Limit{"x": {Rate: 1, Burst: 0}}}
	if err := bad.Validate(); err == nil {
		t.Error("a rate without a burst was accepted")
	}
	if err := (proxy.RateLimitConfig{DefaultPlan: "nope"}).Validate(); err == nil {
		t.Error("an unknown default plan was accepted")
	}
}

func TestRateLimitHeaders(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer up.Close()
	cfg := proxy.DefaultConfig()
	cfg.Upstream = up.URL
	p, err := proxy.New(cfg, []proxy.Check{NewRateLimit(proxy.RateLimitConfig{Anonymous: proxy.Limit{Rate: 1, Burst: 2}})}, &collector{}, 1,
		slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(p)
	defer srv.Close()
	var got []string
	for range 3 {
		resp, err := http.Get(srv.URL + "/x")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		got = append(got, resp.Status+" | "+resp.Header.Get("RateLimit-Policy")+" | "+resp.Header.Get("RateLimit")+" | "+resp.Header.Get("Retry-After"))
	}
	want := []string{
		`200 OK | "anonymous";q=2;w=2 | "anonymous";r=1;t=1 | `,
		`200 OK | "anonymous";q=2;w=2 | "anonymous";r=0;t=2 | `,
		`429 Too Many Requests | "anonymous";q=2;w=2 | "anonymous";r=0;t=2 | 1`,
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("response %d:\n got %s\nwant %s", i, got[i], want[i])
		}
	}
}
