package proxy

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/apiguard/apiguard/enforce"
	"github.com/apiguard/apiguard/event"
	"github.com/apiguard/apiguard/internal/testutil/events"
)

// collector keeps the events a proxy emits.
type collector = events.Collector

type harness struct {
	proxy    *httptest.Server
	upstream *httptest.Server
	m        *enforce.Matcher
	events   *collector
	seen     chan *http.Request
}

func newHarness(t *testing.T, mutate func(*Config)) *harness {
	t.Helper()
	h := &harness{m: enforce.NewMatcher(), events: &collector{}, seen: make(chan *http.Request, 16)}
	h.upstream = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.seen <- r.Clone(r.Context())
		body, _ := io.ReadAll(r.Body)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusCreated)
		_, _ = w.Write([]byte(`{"ok":true,"echo":` + string(rune('0'+len(body)%10)) + `}`))
	}))
	t.Cleanup(h.upstream.Close)
	cfg := DefaultConfig()
	cfg.Upstream = h.upstream.URL
	cfg.Routes = []string{"POST /orders/{id}"}
	cfg.Instance = "test-proxy"
	if mutate != nil {
		mutate(&cfg)
	}
	p, err := New(cfg, []Check{NewEnforcement(h.m)}, h.events, 4, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	h.proxy = httptest.NewServer(p)
	t.Cleanup(h.proxy.Close)
	return h
}

func TestProxyAllows(t *testing.T) {
	h := newHarness(t, nil)
	req, _ := http.NewRequest("POST", h.proxy.URL+"/orders/42?expand=items&token=secret", strings.NewReader("hello"))
	req.Header.Set("X-API-Key", "partner-1.s3cr3t")
	req.Header.Set("X-Forwarded-For", "6.6.6.6") // from an untrusted peer: ignored
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("status %d", resp.StatusCode)
	}
	up := <-h.seen
	if got := up.Header.Get("X-Forwarded-For"); got != "127.0.0.1" {
		t.Errorf("upstream X-Forwarded-For = %q, want the peer only", got)
	}
	ev := h.events.Last(t)
	if up.Header.Get(event.HeaderRequestID) != ev.Id || resp.Header.Get(event.HeaderRequestID) != ev.Id {
		t.Errorf("request id not carried: upstream %q, client %q, event %q", up.Header.Get(event.HeaderRequestID), resp.Header.Get(event.HeaderRequestID), ev.Id)
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"api", ev.Api, "POST /orders/{id}"},
		{"decision", ev.Decision, event.Decision_DECISION_ALLOW},
		{"status", ev.Status, uint32(201)},
		{"key id", ev.ApiKeyId, "partner-1"},
		{"client ip", event.ClientIPString(ev.ClientIp), "127.0.0.1"},
		{"request bytes", ev.RequestBytes, int64(5)},
		{"response bytes", ev.ResponseBytes, int64(len(body))},
		{"query names", len(ev.Query), 2},
		{"query value not captured", ev.Query[1].Value, ""},
		{"proxy", ev.Proxy, "test-proxy"},
		{"partition", ev.Partition, uint32(event.Partition(event.KindKey, "partner-1", 4))},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
	if ev.UpstreamLatencyNanos <= 0 || ev.DurationNanos < ev.UpstreamLatencyNanos {
		t.Errorf("latencies: upstream %d, total %d", ev.UpstreamLatencyNanos, ev.DurationNanos)
	}
}

func TestProxyEnforces(t *testing.T) {
	h := newHarness(t, nil)
	h.m.Replace([]enforce.Entry{
		{Kind: enforce.KindKey, Value: "bad", Action: enforce.ActionBlock, Reason: "rate anomaly: 40 req/s", AnomalyID: "A1"},
		{Kind: enforce.KindToken, Value: "jti-9", Action: enforce.ActionRevoke, Reason: "stolen"},
		{Kind: enforce.KindIP, Value: "127.0.0.1", Action: enforce.ActionThrottle, Expires: time.Now().Add(20 * time.Second)},
	})
	jwt := "e30.eyJqdGkiOiJqdGktOSJ9.c2ln" // {"jti":"jti-9"}
	tests := []struct {
		name       string
		key, auth  string
		status     int
		decision   event.Decision
		header     string
		headerWant string
	}{
		{"blocked key", "bad.x", "", 403, event.Decision_DECISION_BLOCK, "", ""},
		{"revoked token", "", "Bearer " + jwt, 401, event.Decision_DECISION_REVOKED, "Www-Authenticate", `Bearer error="invalid_token"`},
		{"throttled ip", "", "", 429, event.Decision_DECISION_THROTTLE, "Retry-After", "20"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest("GET", h.proxy.URL+"/search", nil)
			if tt.key != "" {
				req.Header.Set("X-API-Key", tt.key)
			}
			if tt.auth != "" {
				req.Header.Set("Authorization", tt.auth)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			raw, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d, want %d", resp.StatusCode, tt.status)
			}
			if ct := resp.Header.Get("Content-Type"); ct != "application/problem+json" {
				t.Errorf("content type %q", ct)
			}
			if tt.header != "" && resp.Header.Get(tt.header) != tt.headerWant {
				t.Errorf("%s = %q, want %q", tt.header, resp.Header.Get(tt.header), tt.headerWant)
			}
			var pb problem
			if err := json.Unmarshal(raw, &pb); err != nil {
				t.Fatalf("body is not a problem: %s", raw)
			}
			ev := h.events.Last(t)
			if pb.Status != tt.status || pb.RequestID != ev.Id || pb.Title == "" {
				t.Errorf("problem %+v, event id %s", pb, ev.Id)
			}
			if strings.Contains(string(raw), "anomaly") || strings.Contains(string(raw), "stolen") || strings.Contains(string(raw), "bad") {
				t.Errorf("problem body leaks internal detail: %s", raw)
			}
			if ev.Decision != tt.decision || ev.Check != EnforcementName || ev.Reason == "" || ev.Status != uint32(tt.status) {
				t.Errorf("event decision %v check %q reason %q status %d", ev.Decision, ev.Check, ev.Reason, ev.Status)
			}
			select {
			case r := <-h.seen:
				t.Errorf("denied request reached the upstream: %s", r.URL)
			default:
			}
		})
	}
}

func TestProxyTrustedForwarding(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.TrustedProxies = []string{"127.0.0.1"} })
	h.m.Replace([]enforce.Entry{{Kind: enforce.KindCIDR, Value: "198.51.100.0/24", Action: enforce.ActionBlock}})
	req, _ := http.NewRequest("GET", h.proxy.URL+"/x", nil)
	req.Header.Set("X-Forwarded-For", "198.51.100.20")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 403 {
		t.Fatalf("status %d: the forwarded client in a blocked CIDR was let through", resp.StatusCode)
	}
	if ip := event.ClientIPString(h.events.Last(t).ClientIp); ip != "198.51.100.20" {
		t.Errorf("client ip %s", ip)
	}
}

func TestProxyUpstreamDown(t *testing.T) {
	h := newHarness(t, nil)
	h.upstream.Close()
	resp, err := http.Get(h.proxy.URL + "/orders/1")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadGateway {
		t.Fatalf("status %d, want 502", resp.StatusCode)
	}
	ev := h.events.Last(t)
	if ev.Status != 502 || !strings.HasPrefix(ev.Reason, "upstream:") {
		t.Errorf("event status %d reason %q", ev.Status, ev.Reason)
	}
}

func TestProxyUpstreamTimeout(t *testing.T) {
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(5 * time.Second):
		}
	}))
	defer slow.Close()
	cfg := DefaultConfig()
	cfg.Upstream, cfg.UpstreamTimeout = slow.URL, 100*time.Millisecond
	events := &collector{}
	p, err := New(cfg, nil, events, 1, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(p)
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/slow")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusGatewayTimeout {
		t.Fatalf("status %d, want 504", resp.StatusCode)
	}
	if ev := events.Last(t); ev.Status != 504 || !strings.Contains(ev.Reason, "timeout") {
		t.Errorf("event status %d reason %q", ev.Status, ev.Reason)
	}
}

func TestConfigValidate(t *testing.T) {
	mod := func(f func(*Config)) Config { c := DefaultConfig(); f(&c); return c }
	tests := []struct {
		name, key string
		cfg       Config
	}{
		{"listen", "proxy.listen", mod(func(c *Config) { c.Listen = "nonsense" })},
		{"upstream", "proxy.upstream", mod(func(c *Config) { c.Upstream = "ftp://x" })},
		{"trusted", "proxy.trusted_proxies[1]", mod(func(c *Config) { c.TrustedProxies = []string{"10.0.0.0/8", "ten"} })},
		{"routes", "proxy.routes[0]", mod(func(c *Config) { c.Routes = []string{"orders"} })},
		{"header bytes", "proxy.max_header_bytes", mod(func(c *Config) { c.MaxHeaderBytes = 10 })},
	}
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatalf("default config: %v", err)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			if err == nil || !strings.HasPrefix(err.Error(), tt.key) {
				t.Errorf("Validate() = %v, want an error naming %s", err, tt.key)
			}
		})
	}
}
