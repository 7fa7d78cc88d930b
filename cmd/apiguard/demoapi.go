package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"
)

// demoRoutes are the demo API's route templates, given to the proxy.
var demoRoutes = []string{
	"GET /search",
	"GET /products/{id}",
	"POST /orders",
	"GET /users/{id}/orders",
	"GET /health",
}

// demoAPI is a small shop API that answers from memory.
func demoAPI() http.Handler {
	mux := http.NewServeMux()
	write := func(w http.ResponseWriter, status int, v any) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(v)
	}
	mux.HandleFunc("GET /search", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query().Get("q")
		write(w, http.StatusOK, map[string]any{"query": q, "results": []string{q + "-1", q + "-2", q + "-3"}})
	})
	mux.HandleFunc("GET /products/{id}", func(w http.ResponseWriter, r *http.Request) {
		write(w, http.StatusOK, map[string]any{"id": r.PathValue("id"), "name": "widget", "price_cents": 1299})
	})
	mux.HandleFunc("POST /orders", func(w http.ResponseWriter, r *http.Request) {
		write(w, http.StatusCreated, map[string]any{"order": time.Now().UnixNano(), "status": "accepted"})
	})
	mux.HandleFunc("GET /users/{id}/orders", func(w http.ResponseWriter, r *http.Request) {
		write(w, http.StatusOK, map[string]any{"user": r.PathValue("id"), "orders": []int{1, 2}})
	})
	mux.HandleFunc("GET /health", func(w http.ResponseWriter, r *http.Request) {
		write(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	return mux
}

// serveDemoAPI serves the demo API on addr until ctx ends.
func serveDemoAPI(ctx context.Context, addr string) (net.Addr, func() error, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, nil, fmt.Errorf("demo upstream: %w", err)
	}
	srv := &http.Server{Handler: demoAPI(), ReadHeaderTimeout: 5 * time.Second}
	run := func() error {
		stop := context.AfterFunc(ctx, func() {
			sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_ = srv.Shutdown(sctx)
		})
		defer stop()
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("demo upstream: %w", err)
		}
		return nil
	}
	return ln.Addr(), run, nil
}

func cmdDemoUpstream(ctx context.Context, args []string) error {
	c := newCommon("demo-upstream")
	listen := c.fs.String("listen", "127.0.0.1:9000", "address to listen on")
	if _, err := c.load(args, nil); err != nil {
		return err
	}
	addr, run, err := serveDemoAPI(ctx, *listen)
	if err != nil {
		return err
	}
	fmt.Printf("demo upstream on http://%s (%s)\n", addr, strings.Join(demoRoutes, ", "))
	return run()
}

// demoWindows are the detectors' windows in a demo: 15 s, 1 min and 5 min
// instead of 1 min, 10 min and 1 h, so baselines warm up in seconds.
var demoWindows = [3]time.Duration{15 * time.Second, time.Minute, 5 * time.Minute}
