package proxy

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestReloadSwapsTheChainAndKeepsItOnError(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "up") }))
	defer up.Close()
	cfg := DefaultConfig()
	cfg.Upstream = up.URL
	build := func(cfg Config) *Chain {
		c, err := buildChain(cfg, nil)
		if err != nil {
			t.Fatal(err)
		}
		c.checks = onlyCheck(t, c, "decoy")
		return c
	}
	p, err := NewWithChain(cfg, build(cfg), nil, &collector{}, 1, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(p)
	defer srv.Close()
	status := func(path string) int {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if s := status("/old-admin"); s != 200 {
		t.Fatalf("before reload: %d", s)
	}

	next := cfg
	next.Decoys.Paths = []string{"/old-admin"}
	if _, err := p.Reload(next, build(next)); err != nil {
		t.Fatal(err)
	}
	if s := status("/old-admin"); s != 404 {
		t.Fatalf("after reload the new decoy answers %d, want 404", s)
	}

	bad := next
	bad.Upstream = "ftp://nowhere"
	if _, err := p.Reload(bad, build(next)); err == nil || !strings.Contains(err.Error(), "proxy.upstream") {
		t.Errorf("invalid config: %v", err)
	}
	moved := next
	moved.Listen = "127.0.0.1:1"
	if _, err := p.Reload(moved, build(next)); err == nil || !strings.Contains(err.Error(), "restart") {
		t.Errorf("listener change: %v", err)
	}
	if s := status("/old-admin"); s != 404 {
		t.Errorf("a refused reload changed the running chain: %d", s)
	}
}

func TestAdminEndpoints(t *testing.T) {
	reloads := 0
	ready := errors.New("enforcement state not loaded yet")
	a := &Admin{
		Token: "0123456789abcdef-admin",
		Ready: func() error { return ready },
		Reload: func(context.Context) error {
			reloads++
			if reloads == 2 {
				return errors.New("proxy.upstream: bad")
			}
			return nil
		},
	}
	srv := httptest.NewServer(a.Handler())
	defer srv.Close()
	call := func(method, path, token string) (int, string) {
		req, _ := http.NewRequest(method, srv.URL+path, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	tok := a.Token
	for _, tc := range []struct {
		method, path, token string
		status              int
		body                string
	}{
		{"GET", "/healthz", "", 401, "unauthorized"},
		{"GET", "/healthz", "wrong-token-wrong-token", 401, "unauthorized"},
		{"GET", "/healthz", tok, 200, "ok"},
		{"GET", "/readyz", tok, 503, "not loaded"},
		{"POST", "/reload", tok, 200, "reloaded"},
		{"POST", "/reload", tok, 422, "kept the running config"},
		{"GET", "/reload", tok, 405, ""},
	} {
		status, body := call(tc.method, tc.path, tc.token)
		if status != tc.status || !strings.Contains(body, tc.body) {
			t.Errorf("%s %s: %d %q, want %d %q", tc.method, tc.path, status, body, tc.status, tc.body)
		}
	}
	ready = nil
	if status, _ := call("GET", "/readyz", tok); status != 200 {
		t.Errorf("readyz when ready: %d", status)
	}
	if err := (AdminConfig{Listen: "0.0.0.0:9465", TokenEnv: "X"}).Validate(""); err == nil {
		t.Error("a non-loopback admin listener without a token was accepted")
	}
	if err := (AdminConfig{Listen: "127.0.0.1:9465", TokenEnv: "X"}).Validate(""); err != nil {
		t.Errorf("loopback without a token: %v", err)
	}
}
