package proxy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// ReloaderStats are a Reloader's counters; safe to read while it runs.
type ReloaderStats struct {
	Reloads  atomic.Uint64 // configs swapped in
	Failures atomic.Uint64 // configs refused: the running one stayed
}

// Reloader swaps a new config into a running Proxy: it reads the config
// again, builds the whole chain from it (key stores, vault, lists), and
// swaps both in only if every step succeeded; on any error the running
// config and chain stay. It also owns the background work of the running
// chain (JWKS refresh): Run runs it, and a reload stops the old chain's
// once the new one is in.
//
// Reload is safe from any goroutine (SIGHUP, POST /reload) and reloads are
// serialised. Build it with NewReloader.
type Reloader struct {
	p     *Proxy
	build func(Config) (*Chain, error)
	load  func() (Config, error)
	log   *slog.Logger
	stats ReloaderStats

	mu    sync.Mutex
	chain *Chain          // the chain in service
	ctx   context.Context // Run's; nil before Run
	stop  context.CancelFunc
	wg    sync.WaitGroup
}

// NewReloader returns a reloader for p, which serves chain. load reads the
// config again (file, environment, flags); nil makes Reload refuse, for a
// proxy not started from a config it can read again. build builds the
// whole chain of a config: proxy/chain's Build with what every chain
// shares across reloads (the matcher, the nonce cache).
func NewReloader(p *Proxy, chain *Chain, build func(Config) (*Chain, error), load func() (Config, error), log *slog.Logger) *Reloader {
	return &Reloader{p: p, chain: chain, build: build, load: load, log: log}
}

// Stats returns the live counters.
func (r *Reloader) Stats() *ReloaderStats { return &r.stats }

// Run runs the background work of the chain in service, and of every chain
// a reload swaps in, until ctx ends; then it stops that work, waits for
// it and returns nil. Call it once.
func (r *Reloader) Run(ctx context.Context) error {
	r.mu.Lock()
	r.ctx = ctx
	r.start(r.chain)
	r.mu.Unlock()
	<-ctx.Done()
	r.mu.Lock()
	r.stop()
	r.ctx = nil // a reload after Run swaps the chain without starting its work
	r.mu.Unlock()
	r.wg.Wait()
	return nil
}

// start runs chain's background work under Run's context, stopping the
// previous chain's. r.mu is held.
func (r *Reloader) start(chain *Chain) {
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

// Reload reads the config again, builds the whole chain and swaps both
// in; on any error the running config stays, and the error says why.
// Changes that need a restart (listener, TLS, server limits) are refused.
func (r *Reloader) Reload(ctx context.Context) error {
	if r.load == nil {
		return errors.New("this process was not started from a config it can read again")
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	err := func() error {
		cfg, err := r.load()
		if err != nil {
			return err
		}
		chain, err := r.build(cfg)
		if err != nil {
			return err
		}
		if _, err := r.p.Reload(cfg, chain); err != nil {
			return err
		}
		r.chain = chain
		if r.ctx != nil {
			r.start(chain)
		}
		return nil
	}()
	if err != nil {
		r.stats.Failures.Add(1)
		r.log.Error("config reload refused; the running config stays", "err", err)
		return fmt.Errorf("reloading config: %w", err)
	}
	r.stats.Reloads.Add(1)
	r.log.Info("config reloaded")
	return nil
}

// RegisterMetrics registers the reloader's collectors on reg.
func (r *Reloader) RegisterMetrics(reg prometheus.Registerer) error {
	for _, c := range []prometheus.Collector{
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "apiguard_proxy_reloads_total", Help: "Config reloads swapped in."},
			func() float64 { return float64(r.stats.Reloads.Load()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "apiguard_proxy_reload_failures_total", Help: "Config reloads refused (the running config stayed)."},
			func() float64 { return float64(r.stats.Failures.Load()) }),
	} {
		if err := reg.Register(c); err != nil {
			return fmt.Errorf("registering reload metrics: %w", err)
		}
	}
	return nil
}
