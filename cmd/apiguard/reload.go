package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sync"
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

// reloader swaps a new proxy config in on SIGHUP or POST /reload. It owns
// the background work of the running chain (JWKS refresh) and stops the
// old chain's when a new one is in. Reloads are serialised.
type reloader struct {
	p       *proxy.Proxy
	deps    proxy.ChainDeps
	rebuild func() (Config, error) // nil: reload unavailable
	log     *slog.Logger

	mu     sync.Mutex
	ctx    context.Context // parent of chain runs
	stop   context.CancelFunc
	wg     sync.WaitGroup
	reload prometheus.Counter
	failed prometheus.Counter
}

// run starts chain's background work, stopping the previous chain's.
func (r *reloader) run(chain *proxy.Chain) {
	ctx, stop := context.WithCancel(r.ctx)
	if r.stop != nil {
		r.stop()
	}
	r.stop = stop
	r.wg.Go(func() {
		if err := chain.Run(ctx); err != nil {
			r.log.Error("proxy chain background work stopped", "err", err)
		}
	})
}

// Reload reads the config again (file, environment, flags), builds the
// whole chain and swaps it in; on any error the running config stays.
func (r *reloader) Reload(ctx context.Context) error {
	if r.rebuild == nil {
		return errors.New("this process was not started from a config it can read again")
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	err := func() error {
		cfg, err := r.rebuild()
		if err != nil {
			return err
		}
		chain, err := proxy.BuildChain(cfg.Proxy, r.deps)
		if err != nil {
			return err
		}
		if _, err := r.p.Reload(cfg.Proxy, chain); err != nil {
			return err
		}
		r.run(chain)
		return nil
	}()
	if err != nil {
		if r.failed != nil {
			r.failed.Inc()
		}
		r.log.Error("config reload refused; the running config stays", "err", err)
		return err
	}
	if r.reload != nil {
		r.reload.Inc()
	}
	r.log.Info("config reloaded")
	return nil
}

// watchSIGHUP reloads on every SIGHUP until ctx ends.
func (r *reloader) watchSIGHUP(ctx context.Context) {
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGHUP)
	defer signal.Stop(ch)
	for {
		select {
		case <-ctx.Done():
			return
		case <-ch:
			_ = r.Reload(ctx)
		}
	}
}

// wait stops the running chain's work and waits for it.
func (r *reloader) wait() {
	r.mu.Lock()
	if r.stop != nil {
		r.stop()
	}
	r.mu.Unlock()
	r.wg.Wait()
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
