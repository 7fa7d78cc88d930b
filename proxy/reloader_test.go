package proxy

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	promtest "github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/apiguard/apiguard/enforce"
	"github.com/apiguard/apiguard/event"
)

type dropEvents struct{}

func (dropEvents) Emit(*event.RequestEvent) {}

// lockedBuffer is a log destination safe for concurrent writers.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestReloader reloads a running proxy with a good config, then with
// configs that fail each step (reading, validation, building the chain, a
// change that needs a restart), and checks that the good one is swapped
// in with its chain's background work, and that every bad one leaves the
// last good config serving.
func TestReloader(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "up") }))
	defer up.Close()
	// Each config's JWT issuer fetches its key set from a path of its own:
	// a fetch shows that config's chain is running its background work.
	var fetches sync.Map // path → *atomic.Int32
	jwks := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, _ := fetches.LoadOrStore(r.URL.Path, new(atomic.Int32))
		n.(*atomic.Int32).Add(1)
		http.NotFound(w, r)
	}))
	defer jwks.Close()
	fetched := func(path string) int32 {
		n, ok := fetches.Load(path)
		if !ok {
			return 0
		}
		return n.(*atomic.Int32).Load()
	}
	config := func(jwksPath string, decoys ...string) Config {
		cfg := DefaultConfig()
		cfg.Upstream = up.URL
		cfg.Decoys.Paths = decoys
		cfg.Auth.JWT.Issuers = []JWTIssuer{{Issuer: "idp", Audience: []string{"api"}, Algorithms: []string{"RS256"},
			JWKSURL: jwks.URL + jwksPath, Refresh: time.Hour}}
		return cfg
	}
	discard := slog.New(slog.DiscardHandler)
	build := builderForTests(enforce.NewMatcher())
	first := config("/first")
	chain, err := build(first)
	if err != nil {
		t.Fatal(err)
	}
	p, err := NewWithChain(first, chain, nil, dropEvents{}, 1, discard)
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu      sync.Mutex
		next    Config
		readErr error
	)
	load := func() (Config, error) {
		mu.Lock()
		defer mu.Unlock()
		return next, readErr
	}
	var logs lockedBuffer
	r := NewReloader(p, chain, build, load, slog.New(slog.NewTextHandler(&logs, nil)))
	reg := prometheus.NewPedanticRegistry()
	if err := r.RegisterMetrics(reg); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	waitUntil(t, func() bool { return fetched("/first") == 1 }, "the first chain's key set fetch")

	srv := httptest.NewServer(p)
	defer srv.Close()
	status := func(path string) int {
		t.Helper()
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	serving := func() []string { return p.state.Load().cfg.Decoys.Paths }
	if s := status("/old-admin"); s != http.StatusOK {
		t.Fatalf("before any reload /old-admin answers %d", s)
	}

	// A good config is swapped in, and its chain's work starts.
	mu.Lock()
	next = config("/second", "/old-admin")
	mu.Unlock()
	if err := r.Reload(ctx); err != nil {
		t.Fatalf("good config refused: %v", err)
	}
	if s := status("/old-admin"); s != http.StatusNotFound {
		t.Fatalf("after the reload the new decoy answers %d, want 404", s)
	}
	waitUntil(t, func() bool { return fetched("/second") == 1 }, "the new chain's key set fetch")
	good := p.state.Load()

	// Every bad config leaves the last good one serving.
	for _, tc := range []struct {
		name    string
		set     func()
		wantErr string
	}{
		{"unreadable", func() { readErr = errors.New("config apiguard.yaml: line 3: field colour not found") }, "colour"},
		{"invalid", func() { next = config("/bad"); next.Upstream = "ftp://nowhere" }, "proxy.upstream"},
		{"chain fails to build", func() { next = config("/bad"); next.Auth.KeysFile = t.TempDir() + "/missing.yaml" }, "proxy.auth.keys_file"},
		{"needs a restart", func() { next = config("/bad"); next.Listen = "127.0.0.1:1" }, "restart"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mu.Lock()
			next, readErr = config("/bad"), nil
			tc.set()
			mu.Unlock()
			err := r.Reload(ctx)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("Reload = %v, want an error containing %q", err, tc.wantErr)
			}
			if p.state.Load() != good || len(serving()) != 1 {
				t.Fatalf("a refused reload changed the config in service: decoys %v", serving())
			}
			if s := status("/old-admin"); s != http.StatusNotFound {
				t.Errorf("after a refused reload the decoy answers %d, want 404", s)
			}
		})
	}
	if n := fetched("/bad"); n != 0 {
		t.Errorf("a refused config's chain ran (%d key set fetches)", n)
	}
	if !strings.Contains(logs.String(), "config reload refused; the running config stays") {
		t.Errorf("refusals not logged:\n%s", logs.String())
	}
	const want = `
# HELP apiguard_proxy_reload_failures_total Config reloads refused (the running config stayed).
# TYPE apiguard_proxy_reload_failures_total counter
apiguard_proxy_reload_failures_total 4
# HELP apiguard_proxy_reloads_total Config reloads swapped in.
# TYPE apiguard_proxy_reloads_total counter
apiguard_proxy_reloads_total 1
`
	if err := promtest.GatherAndCompare(reg, strings.NewReader(want)); err != nil {
		t.Error(err)
	}
}

func TestReloaderWithoutConfigRefuses(t *testing.T) {
	cfg := DefaultConfig()
	chain, err := buildChain(cfg, enforce.NewMatcher())
	if err != nil {
		t.Fatal(err)
	}
	p, err := NewWithChain(cfg, chain, nil, dropEvents{}, 1, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	r := NewReloader(p, chain, nil, nil, slog.New(slog.DiscardHandler))
	if err := r.Reload(context.Background()); err == nil {
		t.Error("a reloader without a config to read reloaded")
	}
	if r.Stats().Failures.Load() != 0 {
		t.Error("a reload that cannot be attempted was counted as a refused config")
	}
}
