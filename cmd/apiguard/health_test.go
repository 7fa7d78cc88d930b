package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/apiguard/apiguard/internal/testutil"
)

// get returns the status and the body of a request to url.
func get(t *testing.T, method, url string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// runCommand runs cmd until the test ends, and returns a function that
// fails the test if cmd has ended already.
func runCommand(t *testing.T, cmd func(ctx context.Context) error) (running func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- cmd(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("command: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Error("command did not stop within 30s")
		}
	})
	return func() {
		select {
		case err := <-done:
			done <- err // for the cleanup
			t.Fatalf("command ended: %v", err)
		default:
		}
	}
}

// TestProbeRoutes: /readyz answers 503 "starting" until the process's
// check is set, then what the check says; /healthz answers 200 all along;
// no other path or method is served by them.
func TestProbeRoutes(t *testing.T) {
	var r readiness
	mux := http.NewServeMux()
	probeRoutes(mux, &r)
	srv := httptest.NewServer(mux)
	defer srv.Close()
	status := func(path string) (int, map[string]string) {
		code, body := get(t, http.MethodGet, srv.URL+path)
		var m map[string]string
		if err := json.Unmarshal([]byte(body), &m); err != nil {
			t.Fatalf("%s: %d %q: %v", path, code, body, err)
		}
		return code, m
	}
	if code, m := status("/readyz"); code != http.StatusServiceUnavailable || m["reason"] != "starting" {
		t.Errorf("before Set: %d %v, want 503 starting", code, m)
	}
	if code, _ := status("/healthz"); code != http.StatusOK {
		t.Errorf("healthz before Set: %d, want 200", code)
	}
	r.Set(func() error { return errors.New("partition(s) 2 not consuming yet") })
	if code, m := status("/readyz"); code != http.StatusServiceUnavailable || m["reason"] != "partition(s) 2 not consuming yet" {
		t.Errorf("not ready: %d %v", code, m)
	}
	r.Set(func() error { return nil })
	if code, m := status("/readyz"); code != http.StatusOK || m["status"] != "ready" {
		t.Errorf("ready: %d %v", code, m)
	}
	for _, tc := range []struct{ method, path string }{{"POST", "/readyz"}, {"GET", "/reload"}, {"POST", "/reload"}, {"GET", "/"}} {
		if code, _ := get(t, tc.method, srv.URL+tc.path); code != http.StatusNotFound && code != http.StatusMethodNotAllowed {
			t.Errorf("%s %s: %d, want 404 or 405", tc.method, tc.path, code)
		}
	}
}

// TestPipelineProbes runs `apiguard pipeline` against a real JetStream and
// asks its metrics listener: /readyz is 200 once every partition consumes,
// and 503 naming the NATS connection when NATS goes away; /healthz stays
// 200; /metrics is still served; nothing else is.
func TestPipelineProbes(t *testing.T) {
	s := testutil.JetStream(t, -1, "")
	addr := fmt.Sprintf("127.0.0.1:%d", testutil.FreePort(t))
	base := "http://" + addr
	running := runCommand(t, func(ctx context.Context) error {
		return cmdPipeline(ctx, []string{"--nats", s.ClientURL(), "--metrics-listen", addr})
	})
	var last string
	testutil.Eventually(t, 30*time.Second, func() bool {
		running()
		code, body := get(t, http.MethodGet, base+"/readyz")
		last = fmt.Sprint(code, " ", body)
		return code == http.StatusOK && strings.Contains(body, `"ready"`)
	}, "pipeline never ready: %s", func() any { return last })
	if code, _ := get(t, http.MethodGet, base+"/healthz"); code != http.StatusOK {
		t.Errorf("healthz: %d", code)
	}
	if code, body := get(t, http.MethodGet, base+"/metrics"); code != http.StatusOK || !strings.Contains(body, "apiguard_pipeline_events_total") {
		t.Errorf("metrics: %d", code)
	}
	if code, _ := get(t, http.MethodPost, base+"/reload"); code != http.StatusNotFound && code != http.StatusMethodNotAllowed {
		t.Errorf("POST /reload on the metrics listener: %d, want none served", code)
	}

	s.Shutdown()
	testutil.Eventually(t, 10*time.Second, func() bool {
		code, body := get(t, http.MethodGet, base+"/readyz")
		last = fmt.Sprint(code, " ", body)
		return code == http.StatusServiceUnavailable && strings.Contains(body, "NATS connection")
	}, "pipeline still ready without NATS: %s", func() any { return last })
	if code, _ := get(t, http.MethodGet, base+"/healthz"); code != http.StatusOK {
		t.Errorf("healthz without NATS: %d, want 200 (the process runs)", code)
	}
}

// TestProxyProbes runs `apiguard proxy` and asks its metrics listener:
// /readyz is 200 once the enforcement state is loaded, as the admin
// listener's, and /healthz is 200. (The admin listener, unchanged, wants
// its token off loopback for every path: proxy's TestAdminEndpoints.)
func TestProxyProbes(t *testing.T) {
	s := testutil.JetStream(t, -1, "")
	metrics := fmt.Sprintf("127.0.0.1:%d", testutil.FreePort(t))
	running := runCommand(t, func(ctx context.Context) error {
		return cmdProxy(ctx, []string{"--nats", s.ClientURL(), "--metrics-listen", metrics, "--admin-listen", "off",
			"--listen", "127.0.0.1:0", "--upstream", "http://127.0.0.1:9", "--spool-dir", t.TempDir()})
	})
	var last string
	testutil.Eventually(t, 30*time.Second, func() bool {
		running()
		code, body := get(t, http.MethodGet, "http://"+metrics+"/readyz")
		last = fmt.Sprint(code, " ", body)
		return code == http.StatusOK
	}, "proxy never ready: %s", func() any { return last })
	if code, _ := get(t, http.MethodGet, "http://"+metrics+"/healthz"); code != http.StatusOK {
		t.Errorf("healthz: %d", code)
	}
}
