package clients

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/apiguard/apiguard/event"
	"github.com/apiguard/apiguard/proxy"
	"github.com/apiguard/apiguard/proxy/inspect"
)

// decoyProxy is a proxy whose chain is a decoy on /.env and /admin/*
// then the proxy's inspection, in front of an upstream that records what
// reaches it.
func decoyProxy(t *testing.T) (url string, events *collector, reached chan string) {
	t.Helper()
	events, reached = &collector{}, make(chan string, 4)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { reached <- r.URL.Path }))
	t.Cleanup(up.Close)
	cfg := proxy.DefaultConfig()
	cfg.Upstream = up.URL
	dc := proxy.DefaultDecoyConfig()
	dc.Paths = []string{"/.env", "/admin/*"}
	if err := dc.Validate(); err != nil {
		t.Fatal(err)
	}
	p, err := proxy.New(cfg, []proxy.Check{NewDecoy(dc), inspect.NewInspection(proxy.DefaultInspectConfig())}, events, 1,
		slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(p)
	t.Cleanup(srv.Close)
	return srv.URL, events, reached
}

func TestDecoy(t *testing.T) {
	url, events, reached := decoyProxy(t)
	for _, tc := range []struct {
		name, path string
		status     int
		reason     string
	}{
		{"decoy", "/.env", 404, "decoy path /.env"},
		{"decoy prefix", "/admin/backup.zip", 404, "decoy path /admin/backup.zip"},
		{"decoy before inspection", "/.env?x=%27%20OR%201=1", 404, "decoy path /.env"},
		{"not a decoy", "/items", 200, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := http.Get(url + tc.path)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d", resp.StatusCode, tc.status)
			}
			ev := events.Last(t)
			if tc.reason == "" && ev.Reason != "" || !strings.Contains(ev.Reason, tc.reason) {
				t.Errorf("event reason %q, want %q", ev.Reason, tc.reason)
			}
			if tc.status >= 400 {
				if ev.Decision != event.Decision_DECISION_BLOCK || ev.Check != DecoyName {
					t.Errorf("decision %v, check %q; want block by decoy", ev.Decision, ev.Check)
				}
				select {
				case p := <-reached:
					t.Errorf("refused request reached the upstream at %q", p)
				default:
				}
				return
			}
			if p := <-reached; p != tc.path {
				t.Errorf("upstream got %q, want %q", p, tc.path)
			}
		})
	}
}

func TestDecoyLooksLikeAPlain404(t *testing.T) {
	url, events, _ := decoyProxy(t)
	resp, err := http.Get(url + "/.env")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	// What net/http answers for a path it does not know.
	rec := httptest.NewRecorder()
	http.NotFound(rec, httptest.NewRequest("GET", "/.env", nil))
	if resp.StatusCode != rec.Code || string(b) != rec.Body.String() ||
		resp.Header.Get("Content-Type") != rec.Header().Get("Content-Type") {
		t.Errorf("decoy answered %d %q %q; net/http answers %d %q %q", resp.StatusCode, resp.Header.Get("Content-Type"), b,
			rec.Code, rec.Header().Get("Content-Type"), rec.Body.String())
	}
	if ev := events.Last(t); ev.Check != DecoyName {
		t.Errorf("event check %q, want decoy", ev.Check)
	}
}

// BenchmarkDecoy measures the decoy check on a request that is not a
// decoy; the baseline only builds the request (docs/benchmarks.md).
func BenchmarkDecoy(b *testing.B) {
	dc := proxy.DefaultDecoyConfig()
	dc.Paths = []string{"/.env", "/admin/*", "/wp-login.php"}
	d := NewDecoy(dc)
	ip := netip.MustParseAddr("192.0.2.1")
	req := func() *proxy.Exchange {
		r := httptest.NewRequest("GET", "/items/42?expand=price", nil)
		return &proxy.Exchange{Req: r, API: "GET /items/{id}", ClientIP: ip, Event: &event.RequestEvent{}, Now: time.Now()}
	}
	b.Run("decoy", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if d.Check(req()) != nil {
				b.Fatal("denied")
			}
		}
	})
	b.Run("decoy-baseline", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_ = req()
		}
	})
}
