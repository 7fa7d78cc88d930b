package replay

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apiguard/apiguard/event"
	"github.com/apiguard/apiguard/proxy"
)

// seen is what the upstream received.
type seen struct {
	method, uri, key, auth, ua, lang, xff, ctype, body string
}

// denyKey refuses one API key id, as a block would.
type denyKey string

func (denyKey) Name() string { return "test-block" }
func (d denyKey) Check(x *proxy.Exchange) *proxy.Denial {
	if x.Creds.KeyID == string(d) {
		return &proxy.Denial{Status: http.StatusForbidden, Decision: event.Decision_DECISION_BLOCK, Reason: "test"}
	}
	return nil
}

// events collects what the proxy emits.
type events struct {
	mu  sync.Mutex
	evs []*event.RequestEvent
}

func (e *events) Emit(ev *event.RequestEvent) {
	e.mu.Lock()
	e.evs = append(e.evs, ev)
	e.mu.Unlock()
}

// realProxy runs an upstream that records what it gets behind the real
// proxy handler, both over loopback sockets, and returns the proxy's URL.
func realProxy(t *testing.T, checks ...proxy.Check) (string, func() []seen, *events) {
	t.Helper()
	var mu sync.Mutex
	var got []seen
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Has("slow") {
			time.Sleep(3 * time.Millisecond)
		}
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		got = append(got, seen{r.Method, r.URL.RequestURI(), r.Header.Get("X-API-Key"), r.Header.Get("Authorization"),
			r.Header.Get("User-Agent"), r.Header.Get("Accept-Language"), r.Header.Get("X-Forwarded-For"),
			r.Header.Get("Content-Type"), string(b)})
		mu.Unlock()
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(up.Close)
	cfg := proxy.DefaultConfig()
	cfg.Upstream = up.URL
	cfg.Instance = "test"
	cfg.Routes = []string{"GET /items/{id}", "POST /orders"}
	cfg.TrustedProxies = []string{"127.0.0.1/32"}
	em := &events{}
	p, err := proxy.New(cfg, checks, em, 4, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(p)
	t.Cleanup(srv.Close)
	return srv.URL, func() []seen { mu.Lock(); defer mu.Unlock(); return append([]seen(nil), got...) }, em
}

// captureOf writes events to a capture and returns a reader of it.
func captureOf(t *testing.T, evs []*event.RequestEvent) *Reader {
	t.Helper()
	var buf bytes.Buffer
	w, err := NewWriter(&buf)
	if err != nil {
		t.Fatal(err)
	}
	for _, ev := range evs {
		if err := w.Write(ev, ""); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	r, err := NewReader(&buf, "test")
	if err != nil {
		t.Fatal(err)
	}
	return r
}

var t0 = time.Date(2026, 1, 5, 12, 0, 0, 0, time.UTC).UnixNano()

// TestSendRebuildsRequests: what the upstream receives through the real
// proxy is what the capture recorded, the principal included, and the
// proxy's own events name the same principals and addresses.
func TestSendRebuildsRequests(t *testing.T) {
	target, got, em := realProxy(t)
	ip := event.ClientIPBytes(netip.MustParseAddr("203.0.113.7"))
	evs := []*event.RequestEvent{
		{Id: "1", TimeUnixNano: t0, Method: "GET", Path: "/items/7", Query: []*event.QueryParam{{Name: "q", Value: "a b"}, {Name: "page"}},
			ClientIp: ip, UserAgent: "curl/8", AcceptLanguage: "de", ApiKeyId: "k1"},
		{Id: "2", TimeUnixNano: t0 + 1, Method: "POST", Path: "/orders", RequestBytes: 50, ClientIp: ip, Subject: "alice", TokenHash: "abc"},
		{Id: "3", TimeUnixNano: t0 + 2, Method: "POST", Path: "/orders", RequestBytes: 40, ClientIp: ip, ApiKeyId: "k2",
			Query: []*event.QueryParam{{Name: "body.$.user.name", Value: "bob"}, {Name: "body.$.items[].sku", Value: "1"},
				{Name: "body.$.items[].sku", Value: "2"}}},
		{Id: "4", TimeUnixNano: t0 + 3, Method: "POST", Path: "/orders", RequestBytes: 10, ClientIp: ip,
			Query: []*event.QueryParam{{Name: "body.user", Value: "carol"}}},
	}
	rep, err := Send(context.Background(), captureOf(t, evs), SendConfig{Target: target, Speed: SpeedMax, Concurrency: 1,
		APIKeyHeader: "X-API-Key", Keys: map[string]string{"k2": "k2.s3cret"}, ForwardedFor: true})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Sent != 4 || rep.Status[200] != 4 || rep.BodiesSent != 2 || rep.BodiesMissing != 1 || rep.Refused != 0 {
		t.Fatalf("report %+v", rep)
	}
	g := got()
	if len(g) != 4 {
		t.Fatalf("upstream got %d requests", len(g))
	}
	want := []seen{
		{method: "GET", uri: "/items/7?q=a+b&page=", key: "k1.replay", ua: "curl/8", lang: "de", xff: "203.0.113.7"},
		{method: "POST", uri: "/orders", xff: "203.0.113.7"},
		{method: "POST", uri: "/orders", key: "k2.s3cret", xff: "203.0.113.7", ctype: "application/json",
			body: `{"items":[{"sku":"1"},{"sku":"2"}],"user":{"name":"bob"}}`},
		{method: "POST", uri: "/orders", xff: "203.0.113.7", ctype: "application/x-www-form-urlencoded", body: "user=carol"},
	}
	for i, w := range want {
		s := g[i]
		s.auth = ""
		// The proxy appends its peer to the forwarding chain.
		s.xff, _, _ = strings.Cut(s.xff, ",")
		if s != w {
			t.Errorf("request %d: upstream got %+v, want %+v", i, s, w)
		}
	}
	if !strings.HasPrefix(g[1].auth, "Bearer ") {
		t.Errorf("token event sent Authorization %q", g[1].auth)
	}
	em.mu.Lock()
	defer em.mu.Unlock()
	for i, ev := range em.evs {
		if k, v := event.PrincipalOf(ev); k+":"+v != principal(evs[i]) {
			t.Errorf("proxy event %d names %s:%s, capture %s", i, k, v, principal(evs[i]))
		}
		if event.ClientIPString(ev.ClientIp) != "203.0.113.7" {
			t.Errorf("proxy event %d client %s", i, event.ClientIPString(ev.ClientIp))
		}
	}
	if em.evs[1].TokenHash == "" || em.evs[1].Subject != "alice" {
		t.Errorf("token event: proxy recorded sub %q hash %q", em.evs[1].Subject, em.evs[1].TokenHash)
	}
}

func principal(ev *event.RequestEvent) string {
	k, v := event.PrincipalOf(ev)
	return k + ":" + v
}

// TestSendOrderTimingRefusals: each principal's requests arrive in the
// capture's order with many senders, also when some answers are slow, the
// captured gaps are kept at the chosen speed, and refusals are counted
// per principal.
func TestSendOrderTimingRefusals(t *testing.T) {
	target, got, _ := realProxy(t, denyKey("bad"))
	var evs []*event.RequestEvent
	keys := []string{"a", "b", "c", "bad"}
	for i := range 200 {
		evs = append(evs, &event.RequestEvent{Id: "x", TimeUnixNano: t0 + int64(i)*int64(5*time.Millisecond), Method: "GET",
			Path: "/items/" + string(rune('0'+i%10)), Query: []*event.QueryParam{{Name: "n", Value: itoa(i)}},
			ApiKeyId: keys[i%4]})
	}
	began := time.Now()
	// 200 requests 5ms apart: a second of capture, 250ms at speed 4.
	var progress []Report
	rep, err := Send(context.Background(), captureOf(t, evs), SendConfig{Target: target, Speed: 4, Concurrency: 8, APIKeyHeader: "X-API-Key",
		Progress: func(r Report) { progress = append(progress, r) }, ProgressEvery: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if took := time.Since(began); took < 240*time.Millisecond {
		t.Errorf("speed 4 over a second of capture took %s, want ≥ 250ms", took)
	}
	if n := len(progress); n < 3 || progress[n-1].Sent == 0 || progress[n-1].Sent >= 200 {
		t.Errorf("progress reported %d times during a 250ms replay, each with what was sent so far: %+v", n, progress)
	}
	if rep.Sent != 200 || rep.Refused != 50 || rep.Principals["key:bad"][403] != 50 || rep.Principals["key:a"][200] != 50 {
		t.Fatalf("report %+v principals %v", rep, rep.Principals)
	}
	last := map[string]int{}
	for _, s := range got() {
		n := atoi(strings.TrimPrefix(s.uri[strings.Index(s.uri, "?"):], "?n="))
		if p, ok := last[s.key]; ok && n < p {
			t.Errorf("key %s: request %d arrived after %d", s.key, n, p)
		}
		last[s.key] = n
	}
	// As fast as possible, with every third answer slow: a principal's
	// next request must still wait for its previous one.
	for _, ev := range evs {
		if atoi(ev.Query[0].Value)%3 == 0 {
			ev.Query = append(ev.Query, &event.QueryParam{Name: "slow"})
		}
	}
	start := len(got())
	if _, err := Send(context.Background(), captureOf(t, evs), SendConfig{Target: target, Concurrency: 8, APIKeyHeader: "X-API-Key"}); err != nil {
		t.Fatal(err)
	}
	last = map[string]int{}
	for _, s := range got()[start:] {
		q, _ := url.ParseQuery(s.uri[strings.Index(s.uri, "?")+1:])
		n := atoi(q.Get("n"))
		if p, ok := last[s.key]; ok && n < p {
			t.Errorf("speed max: key %s: request %d arrived after %d", s.key, n, p)
		}
		last[s.key] = n
	}
	if rep.P50ms <= 0 || rep.MaxMs < rep.P99ms || rep.P99ms < rep.P50ms {
		t.Errorf("percentiles %v %v %v %v", rep.P50ms, rep.P90ms, rep.P99ms, rep.MaxMs)
	}
	var j map[string]any
	b, _ := json.Marshal(rep)
	if err := json.Unmarshal(b, &j); err != nil || j["refused"] != float64(50) {
		t.Errorf("JSON %s", b)
	}
}

// TestSendMaxAndCancel: at SpeedMax a capture spanning an hour is sent at
// once; a cancelled context stops the replay with the report so far.
func TestSendMaxAndCancel(t *testing.T) {
	target, _, _ := realProxy(t)
	var evs []*event.RequestEvent
	for i := range 20 {
		evs = append(evs, &event.RequestEvent{Id: "x", TimeUnixNano: t0 + int64(i)*int64(3*time.Minute), Method: "GET", Path: "/items/1"})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	rep, err := Send(ctx, captureOf(t, evs), SendConfig{Target: target})
	if err != nil || rep.Sent != 20 {
		t.Fatalf("speed max: %v, report %+v", err, rep)
	}
	ctx, cancel = context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	rep, err = Send(ctx, captureOf(t, evs), SendConfig{Target: target, Speed: 1})
	if err == nil || rep.Sent != 1 {
		t.Fatalf("cancelled at real speed: %v, report %+v", err, rep)
	}
	if _, err := Send(ctx, captureOf(t, evs), SendConfig{Target: "ftp://x"}); err == nil {
		t.Error("an ftp target was accepted")
	}
}

func itoa(i int) string {
	b, _ := json.Marshal(i)
	return string(b)
}

func atoi(s string) int {
	var n int
	_ = json.Unmarshal([]byte(s), &n)
	return n
}

// TestSendEcho: with an echo header, a stub upstream behind the real
// proxy answers each replayed request with the captured status and size,
// and the proxy records them as the original proxy did.
func TestSendEcho(t *testing.T) {
	up := httptest.NewServer(EchoUpstream("X-Replay-Echo"))
	defer up.Close()
	cfg := proxy.DefaultConfig()
	cfg.Upstream, cfg.Instance = up.URL, "test"
	em := &events{}
	p, err := proxy.New(cfg, nil, em, 1, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(p)
	defer srv.Close()
	evs := []*event.RequestEvent{
		{Id: "1", TimeUnixNano: t0, Method: "GET", Path: "/.env", Status: 404, ResponseBytes: 19},
		{Id: "2", TimeUnixNano: t0 + 1, Method: "GET", Path: "/products/1", Status: 200, ResponseBytes: 9000},
		{Id: "3", TimeUnixNano: t0 + 2, Method: "POST", Path: "/login", Status: 401, ResponseBytes: 0},
	}
	rep, err := Send(context.Background(), captureOf(t, evs), SendConfig{Target: srv.URL, Concurrency: 1, EchoHeader: "X-Replay-Echo"})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Status[404] != 1 || rep.Status[200] != 1 || rep.Status[401] != 1 || rep.Refused != 1 {
		t.Fatalf("report %+v", rep)
	}
	em.mu.Lock()
	defer em.mu.Unlock()
	for i, ev := range em.evs {
		if ev.Status != evs[i].Status || ev.ResponseBytes != evs[i].ResponseBytes {
			t.Errorf("event %d: proxy recorded %d with %d bytes, capture %d with %d", i, ev.Status, ev.ResponseBytes, evs[i].Status, evs[i].ResponseBytes)
		}
	}
}
