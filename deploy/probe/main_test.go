package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestProbe(t *testing.T) {
	const token = "0123456789abcdef-token"
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+token {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		switch r.URL.Path {
		case "/healthz":
			_, _ = w.Write([]byte(`{"status":"ok"}` + "\n"))
		case "/readyz":
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte(`{"status":"not ready","reason":"enforcement state not loaded yet"}` + "\n"))
		case "/slow":
			<-r.Context().Done()
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)

	tests := []struct {
		name, path, token string
		ok                bool
		line              string
	}{
		{"healthy", "/healthz", token, true, `200 OK {"status":"ok"}`},
		{"not ready", "/readyz", token, false, "503 Service Unavailable"},
		{"no token", "/healthz", "", false, "401 Unauthorized"},
		{"wrong path", "/nope", token, false, "404 Not Found"},
		{"timeout", "/slow", token, false, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
			defer cancel()
			line, err := probe(ctx, srv.Client(), srv.URL+tc.path, tc.token)
			if (err == nil) != tc.ok {
				t.Fatalf("probe %s: err = %v, want ok = %v", tc.path, err, tc.ok)
			}
			if !strings.HasPrefix(line, tc.line) {
				t.Errorf("line = %q, want it to start with %q", line, tc.line)
			}
		})
	}
}

func TestProbeRefused(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close() // nothing listens there now
	if _, err := probe(context.Background(), http.DefaultClient, url+"/healthz", ""); err == nil {
		t.Fatal("probe of a closed port succeeded")
	}
}
