package clients

import (
	"github.com/apiguard/apiguard/proxy"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestOrigins(t *testing.T) {
	reached := make(chan string, 8)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		reached <- r.Method
		w.Header().Set("Access-Control-Allow-Origin", "*") // a careless upstream: the proxy's answer wins
	}))
	defer up.Close()
	cfg := proxy.DefaultConfig()
	cfg.Upstream = up.URL
	cfg.Routes = []string{"POST /orders", "GET /public"}
	oc := proxy.DefaultOriginsConfig()
	oc.Allowed = []string{"https://shop.example"}
	oc.AllowCredentials = true
	oc.Routes = map[string]proxy.RouteOrigins{"GET /public": {Allowed: []string{"*"}}}
	if err := oc.Validate(); err != nil {
		t.Fatal(err)
	}
	events := &collector{}
	p, err := proxy.New(cfg, []proxy.Check{NewOrigins(oc)}, events, 1, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(p)
	defer srv.Close()
	for _, tc := range []struct {
		name, method, path, origin, reqMethod string
		status                                int
		acao, reason                          string
		forwarded                             bool
	}{
		{"no origin: not a browser call", "POST", "/orders", "", "", 200, "", "", true},
		{"allowed origin", "POST", "/orders", "https://shop.example", "", 200, "https://shop.example", "", true},
		{"other origin refused", "POST", "/orders", "https://evil.example", "", 403, "", "origin not allowed: https://evil.example", false},
		{"preflight answered here", "OPTIONS", "/orders", "https://shop.example", "POST", 204, "https://shop.example", "preflight answered", false},
		{"preflight for a method not allowed", "OPTIONS", "/orders", "https://shop.example", "TRACE", 403, "", "preflight for method TRACE", false},
		{"preflight from another origin", "OPTIONS", "/orders", "https://evil.example", "POST", 403, "", "origin not allowed", false},
		{"any origin on a public route", "GET", "/public", "https://anyone.example", "", 200, "https://anyone.example", "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(tc.method, srv.URL+tc.path, nil)
			if tc.origin != "" {
				req.Header.Set("Origin", tc.origin)
			}
			if tc.reqMethod != "" {
				req.Header.Set("Access-Control-Request-Method", tc.reqMethod)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d", resp.StatusCode, tc.status)
			}
			if got := resp.Header.Get("Access-Control-Allow-Origin"); tc.origin != "" && got != tc.acao && !(tc.acao == "" && got == "*") {
				t.Errorf("Access-Control-Allow-Origin %q, want %q", got, tc.acao)
			}
			if ev := events.Last(t); !strings.Contains(ev.Reason, tc.reason) {
				t.Errorf("reason %q, want %q", ev.Reason, tc.reason)
			}
			select {
			case <-reached:
				if !tc.forwarded {
					t.Error("reached the upstream")
				}
			default:
				if tc.forwarded {
					t.Error("did not reach the upstream")
				}
			}
			if tc.status == 204 {
				if m := resp.Header.Get("Access-Control-Allow-Methods"); !strings.Contains(m, "POST") {
					t.Errorf("Allow-Methods %q", m)
				}
				if resp.Header.Get("Access-Control-Allow-Credentials") != "true" || resp.Header.Get("Access-Control-Max-Age") != "600" {
					t.Errorf("preflight headers %v", resp.Header)
				}
			}
		})
	}
	bad := proxy.DefaultOriginsConfig()
	bad.Allowed = []string{"shop.example"}
	if err := bad.Validate(); err == nil || !strings.Contains(err.Error(), "proxy.origins.allowed[0]") {
		t.Errorf("Validate = %v", err)
	}
}
