package proxy

import (
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	promtest "github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/apiguard/apiguard/enforce"
)

func TestMetricsLabelOnlyConfiguredAPIs(t *testing.T) {
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer upstream.Close()
	cfg := DefaultConfig()
	cfg.Upstream = upstream.URL
	cfg.Routes = []string{"GET /items/{id}"}
	m := enforce.NewMatcher()
	m.Replace([]enforce.Entry{{Kind: enforce.KindKey, Value: "bad", Action: enforce.ActionBlock}})
	p, err := New(cfg, []Check{NewEnforcement(m)}, &collector{}, 1, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewPedanticRegistry()
	pm, err := NewMetrics(reg, p.Routes(), p.Stats())
	if err != nil {
		t.Fatal(err)
	}
	p.SetMetrics(pm)
	srv := httptest.NewServer(p)
	defer srv.Close()
	get := func(path, key string) {
		req, _ := http.NewRequest("GET", srv.URL+path, nil)
		if key != "" {
			req.Header.Set("X-API-Key", key)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	get("/items/1", "")
	get("/items/2", "")
	get("/items/3", "bad.secret")
	// An unconfigured path an attacker chooses must not become a label.
	get("/wp-admin/"+strings.Repeat("x", 40), "")

	want := `
# HELP apiguard_proxy_requests_total Requests answered, by API, decision and the check that decided.
# TYPE apiguard_proxy_requests_total counter
apiguard_proxy_requests_total{api="GET /items/{id}",check="",decision="allow"} 2
apiguard_proxy_requests_total{api="GET /items/{id}",check="enforcement",decision="block"} 1
apiguard_proxy_requests_total{api="other",check="",decision="allow"} 1
`
	if err := promtest.GatherAndCompare(reg, strings.NewReader(want), "apiguard_proxy_requests_total"); err != nil {
		t.Error(err)
	}
	if n := promtest.CollectAndCount(pm.duration); n != 2 {
		t.Errorf("duration histograms: %d series, want 2 (the route and other)", n)
	}
}
