package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/sync/errgroup"

	"github.com/apiguard/apiguard/proxy"
)

// adminFlag adds --admin-listen to a command's flags.
func adminFlag(c *common, def string) func(*Config) {
	return listenFlag(c, "admin-listen", "serve the admin endpoints (health, readiness, metrics, reload) on host:port, or \"off\" (overrides admin.listen)",
		def, func(cfg *Config) *string { return &cfg.Admin.Listen })
}

// reloadOnSIGHUP reloads rl on every SIGHUP until ctx ends. A refused
// reload is logged and counted by the reloader.
func reloadOnSIGHUP(ctx context.Context, rl *proxy.Reloader) {
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGHUP)
	defer signal.Stop(ch)
	for {
		select {
		case <-ctx.Done():
			return
		case <-ch:
			_ = rl.Reload(ctx)
		}
	}
}

// startAdmin serves the admin endpoints in g until ctx ends.
func startAdmin(ctx context.Context, g *errgroup.Group, cfg Config, a *proxy.Admin, gather prometheus.Gatherer, log *slog.Logger) (net.Addr, error) {
	if cfg.Admin.Listen == "" {
		return nil, nil
	}
	a.Token = os.Getenv(cfg.Admin.TokenEnv)
	if gather != nil {
		a.Metrics = promhttp.HandlerFor(gather, promhttp.HandlerOpts{})
	}
	ln, err := net.Listen("tcp", cfg.Admin.Listen)
	if err != nil {
		return nil, fmt.Errorf("admin.listen: %w", err)
	}
	srv := &http.Server{Handler: a.Handler(), ReadHeaderTimeout: 5 * time.Second}
	serve(g, srv, ln, "admin")
	g.Go(func() error {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		return srv.Shutdown(sctx)
	})
	log.Info("serving admin endpoints", "addr", "http://"+ln.Addr().String(), "token_required", a.Token != "")
	return ln.Addr(), nil
}
