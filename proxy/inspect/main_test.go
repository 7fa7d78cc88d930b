package inspect

import (
	"io"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/apiguard/apiguard/event"
	"github.com/apiguard/apiguard/internal/testutil/events"
	"github.com/apiguard/apiguard/proxy"
)

// TestMain fails the package if a test leaves a goroutine running.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// collector keeps the events a proxy emits.
type collector = events.Collector

// exchangeFor is a request as a check sees it, from 192.0.2.1, with the
// route template "METHOD /path".
func exchangeFor(method, target, ctype, body string) *proxy.Exchange {
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req := httptest.NewRequest(method, target, r)
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	req.Header.Set("User-Agent", "Mozilla/5.0")
	req.Header.Set("Accept", "application/json")
	ip, _ := netip.ParseAddr("192.0.2.1")
	return &proxy.Exchange{Req: req, API: method + " " + req.URL.Path, ClientIP: ip, Event: &event.RequestEvent{}, Now: time.Now()}
}
