package auth

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/apiguard/apiguard/internal/testutil/checktest"
	"github.com/apiguard/apiguard/internal/testutil/events"
	"github.com/apiguard/apiguard/proxy"
)

// TestMain fails the package if a test leaves a goroutine running, and
// refuses to run without the chain builder (hooks_ext_test.go), which the
// fixtures' chains must be built with.
func TestMain(m *testing.M) {
	if builderForTests == nil {
		fmt.Fprintln(os.Stderr, "builderForTests is not set: hooks_ext_test.go must set it")
		os.Exit(1)
	}
	goleak.VerifyTestMain(m)
}

// builderForTests is proxy/chain's Build, set by hooks_ext_test.go
// (package auth_test, which may import proxy/chain; this package may not,
// since proxy/chain imports it): the fixtures build the chain the binary
// builds, then keep the checks under test.
var builderForTests func(cfg proxy.Config, nonces *NonceCache) (*proxy.Chain, error)

// BuilderForTests lets hooks_ext_test.go set builderForTests.
var BuilderForTests = &builderForTests

// buildOnly builds cfg's whole chain (injection and background work
// included) and keeps only the checks named names, in chain order.
func buildOnly(t *testing.T, cfg proxy.Config, nonces *NonceCache, names ...string) *proxy.Chain {
	t.Helper()
	c, err := builderForTests(cfg, nonces)
	if err != nil {
		t.Fatal(err)
	}
	var checks []proxy.Check
	for _, ch := range c.Checks() {
		for _, n := range names {
			if ch.Name() == n {
				checks = append(checks, ch)
			}
		}
	}
	if len(checks) != len(names) {
		t.Fatalf("the chain has %d of the checks %v", len(checks), names)
	}
	return c.WithChecks(checks...)
}

// collector keeps the events a proxy emits.
type collector = events.Collector

// exchangeFor is a request as a check sees it (checktest.Exchange).
var exchangeFor = checktest.Exchange

// serve serves p with cfg's engine on a loopback socket until the test
// ends, and returns its base URL.
func serve(t *testing.T, p *proxy.Proxy, cfg proxy.Config) string {
	t.Helper()
	tc, err := cfg.TLS.Load(cfg.HTTP2)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := proxy.NewServer(p, cfg, tc, slog.New(slog.DiscardHandler)).Serve(ctx, ln); err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	t.Cleanup(func() { cancel(); wg.Wait() })
	return "http://" + ln.Addr().String()
}

func contextWithCancel() (context.Context, context.CancelFunc) {
	return context.WithCancel(context.Background())
}

// waitUntil polls f for up to 5 s.
func waitUntil(t *testing.T, f func() bool, what string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !f() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
