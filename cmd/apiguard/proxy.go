package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"

	"github.com/apiguard/apiguard/enforce"
	"github.com/apiguard/apiguard/enforce/kv"
	"github.com/apiguard/apiguard/pipeline/topology"
	"github.com/apiguard/apiguard/proxy"
	"github.com/apiguard/apiguard/proxy/emit"
)

// proxyParts is a running proxy, for the demo and for tests.
type proxyParts struct {
	addr    net.Addr
	matcher *enforce.Matcher
	watcher *kv.Watcher
	emitter *emit.Emitter
	proxy   *proxy.Proxy
}

// startProxy starts the watcher, the emitter and the HTTP server in g.
// Shutdown order when ctx ends: stop accepting and finish in-flight requests,
// then flush the emitter (publish or spool what is queued), then close NATS.
// onApply, if not nil, sees every enforcement entry as it takes effect.
func startProxy(ctx context.Context, g *errgroup.Group, cfg Config, url string, log *slog.Logger,
	reg prometheus.Registerer, onApply func(enforce.Entry, time.Time)) (*proxyParts, error) {
	log = log.With("component", "proxy")
	// The proxy may start while NATS is away: it connects in the background,
	// its watcher retries until the bucket can be opened, and its emitter
	// spools. proxy.fail_open decides whether it serves meanwhile.
	nc, js, err := connect(ctx, url, "apiguard-proxy", -1, true, log)
	if err != nil {
		return nil, err
	}
	m := enforce.NewMatcher()
	w := kv.NewWatcher(func(ctx context.Context) (jetstream.KeyValue, error) {
		return topology.Ensure(ctx, js, cfg.NATS.Config)
	}, m, log)
	w.OnApply = onApply
	// A KV watch that spans a server restart can fall silent: reload the
	// snapshot on every reconnect.
	nc.SetReconnectHandler(func(c *nats.Conn) {
		log.Info("nats reconnected", "conn", "apiguard-proxy", "url", c.ConnectedUrl())
		w.Resync()
	})
	watchCtx, stopWatch := context.WithCancel(context.Background())
	g.Go(func() error { return w.Run(watchCtx) })

	if !waitFor(ctx, cfg.Proxy.SyncTimeout, w.Synced) {
		if !cfg.Proxy.FailOpen {
			stopWatch()
			nc.Close()
			return nil, fmt.Errorf("enforcement state not loaded within proxy.sync_timeout (%s), and proxy.fail_open is false", cfg.Proxy.SyncTimeout)
		}
		log.Warn("serving before the enforcement state is loaded (proxy.fail_open)")
	}
	if cfg.Proxy.FailOpen {
		log.Info("proxy is fail-open: it serves when the enforcement state cannot be loaded at start")
	} else {
		log.Info("proxy is fail-closed: it does not start without the enforcement state")
	}

	em, err := emit.New(cfg.Emit, nc, js, log)
	if err != nil {
		stopWatch()
		nc.Close()
		return nil, err
	}
	bots, err := proxy.NewBots(cfg.Proxy.Bots)
	if err != nil {
		stopWatch()
		nc.Close()
		return nil, err
	}
	if bots.Skipped() > 0 {
		log.Warn("skipped crawler patterns Go's regexp cannot compile (look-behind)", "skipped", bots.Skipped())
	}
	auth, err := proxy.NewAuth(cfg.Proxy.Auth, cfg.Proxy.APIKeyHeader)
	if err != nil {
		stopWatch()
		nc.Close()
		return nil, err
	}
	// Decoys come before bots and inspection: a decoy hit must look like
	// a plain 404 whoever sends it and whatever it carries.
	checks := []proxy.Check{proxy.NewEnforcement(m), proxy.NewDecoy(cfg.Proxy.Decoys), bots,
		proxy.NewOrigins(cfg.Proxy.Origins), auth, proxy.NewRateLimit(cfg.Proxy.RateLimits),
		proxy.NewInspection(cfg.Proxy.Inspection)}
	p, err := proxy.New(cfg.Proxy, checks, em, cfg.NATS.Partitions, log)
	if err != nil {
		stopWatch()
		nc.Close()
		return nil, err
	}
	if reg != nil {
		err := registerEmitter(reg, em)
		if err == nil {
			err = registerEnforcement(reg, m, w)
		}
		if err == nil {
			var pm *proxy.Metrics
			if pm, err = proxy.NewMetrics(reg, p.Routes(), p.Stats()); err == nil {
				p.SetMetrics(pm)
			}
		}
		if err != nil {
			stopWatch()
			nc.Close()
			return nil, err
		}
	}
	tlsConf, err := cfg.Proxy.TLS.Load(cfg.Proxy.HTTP2)
	if err != nil {
		stopWatch()
		nc.Close()
		return nil, err
	}
	ln, err := net.Listen("tcp", cfg.Proxy.Listen)
	if err != nil {
		stopWatch()
		nc.Close()
		return nil, fmt.Errorf("proxy.listen: %w", err)
	}
	emitCtx, stopEmit := context.WithCancel(context.Background())
	emitDone := make(chan struct{})
	g.Go(func() error {
		defer close(emitDone)
		return em.Run(emitCtx)
	})
	// Shutdown order: the server stops accepting and finishes in-flight
	// requests when ctx ends, then the emitter flushes, then NATS closes.
	g.Go(func() error {
		err := proxy.NewServer(p, cfg.Proxy, tlsConf, log).Serve(ctx, ln)
		stopEmit()
		<-emitDone
		stopWatch()
		nc.Close()
		st := em.Stats()
		log.Info("proxy stopped", "requests", p.Stats().Requests.Load(), "emitted", st.Emitted.Load(), "published", st.Published.Load(),
			"duplicates", st.Duplicates.Load(), "spooled", st.Spooled.Load(), "spool_bytes", em.SpoolBytes(),
			"dropped", st.DroppedQueue.Load()+st.DroppedSpool.Load())
		return err
	})
	log.Info("proxy listening", "addr", ln.Addr().String(), "upstream", cfg.Proxy.Upstream,
		"tls", tlsConf != nil, "http2", cfg.Proxy.HTTP2)
	return &proxyParts{addr: ln.Addr(), matcher: m, watcher: w, emitter: em, proxy: p}, nil
}

// waitFor polls f until it is true, ctx ends or timeout passes.
func waitFor(ctx context.Context, timeout time.Duration, f func() bool) bool {
	deadline := time.Now().Add(timeout)
	for !f() {
		if time.Now().After(deadline) || ctx.Err() != nil {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
	return true
}

func cmdProxy(ctx context.Context, args []string) error {
	c := newCommon("proxy")
	listen := c.fs.String("listen", "", "address to listen on (overrides proxy.listen)")
	upstream := c.fs.String("upstream", "", "upstream base URL (overrides proxy.upstream)")
	spool := c.fs.String("spool-dir", "", "spool directory (overrides emit.spool_dir)")
	setMetrics := metricsFlag(c, "")
	cfg, err := c.load(args, func(cfg *Config) {
		setMetrics(cfg)
		if *listen != "" {
			cfg.Proxy.Listen = *listen
		}
		if *upstream != "" {
			cfg.Proxy.Upstream = *upstream
		}
		if *spool != "" {
			cfg.Emit.SpoolDir = *spool
		}
	})
	if err != nil {
		return err
	}
	if cfg.NATS.URL == "" {
		return fmt.Errorf("%w: proxy needs --nats (or nats.url); 'apiguard up' runs NATS embedded", errUsage)
	}
	log := newLogger(cfg.Log, os.Stderr)
	g, gctx := errgroup.WithContext(ctx)
	reg, err := startMetrics(gctx, g, cfg, log)
	if err != nil {
		return err
	}
	if _, err := startProxy(gctx, g, cfg, cfg.NATS.URL, log, reg, nil); err != nil {
		return err
	}
	return g.Wait()
}
