package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"runtime/debug"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"

	"github.com/apiguard/apiguard/enforce"
	"github.com/apiguard/apiguard/enforce/kv"
	"github.com/apiguard/apiguard/internal/secret"
	"github.com/apiguard/apiguard/pipeline/topology"
	"github.com/apiguard/apiguard/proxy"
	"github.com/apiguard/apiguard/proxy/auth"
	"github.com/apiguard/apiguard/proxy/chain"
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
//
// rebuild, if not nil, reads the config again for a reload (SIGHUP or
// POST /reload on the admin listener).
func startProxy(ctx context.Context, g *errgroup.Group, cfg Config, url secret.URL, log *slog.Logger,
	reg prometheus.Registerer, onApply func(enforce.Entry, time.Time), rebuild func() (Config, error)) (*proxyParts, error) {
	log = log.With("component", "proxy")
	// The proxy may start while NATS is away: it connects in the background,
	// its watcher retries until the bucket can be opened, and its emitter
	// spools. proxy.fail_open decides whether it serves meanwhile.
	nc, js, err := connect(ctx, url, cfg.NATS.Auth, "apiguard-proxy", -1, true, log)
	if err != nil {
		return nil, err
	}
	m := enforce.NewMatcher()
	w := kv.NewWatcher(func(ctx context.Context) (jetstream.JetStream, jetstream.KeyValue, error) {
		b, err := topology.Ensure(ctx, js, cfg.NATS.Config)
		return js, b, err
	}, m, log)
	w.OnApply = onApply
	gcPercent := debug.SetGCPercent(startGCPercent)
	restored := restoreEnforcement(ctx, cfg, js, m, w, log)
	// A KV watch that spans a server restart can fall silent: reload the
	// snapshot on every reconnect.
	nc.SetReconnectHandler(func(c *nats.Conn) {
		log.Info("nats reconnected", "conn", "apiguard-proxy", "url", secret.URL(c.ConnectedUrl()))
		w.Resync()
	})
	watchCtx, stopWatch := context.WithCancel(context.Background())
	g.Go(func() error { return w.Run(watchCtx) })

	err = awaitEnforcement(ctx, cfg, w, restored, log)
	debug.SetGCPercent(gcPercent)
	if err != nil {
		stopWatch()
		nc.Close()
		return nil, err
	}
	if cfg.Proxy.Snapshot.Enabled() {
		saver := proxy.NewSnapshotSaver(cfg.Proxy.Snapshot.File(cfg.Emit.SpoolDir), cfg.Proxy.Snapshot.Interval, m, w, log)
		g.Go(func() error { return saver.Run(watchCtx) })
	}
	if sw := sharedWriter(cfg, js, m, w, log); sw != nil {
		g.Go(func() error { return sw.Run(watchCtx) })
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
	nonces := auth.NewNonceCache(cfg.Proxy.Auth.Signatures.MaxNonces)
	build := chain.Builder(chain.Deps{Matcher: m, Nonces: nonces, Log: log})
	ch, err := build(cfg.Proxy)
	if err != nil {
		stopWatch()
		nc.Close()
		return nil, err
	}
	p, err := proxy.NewWithChain(cfg.Proxy, ch, nil, em, cfg.NATS.Partitions, log)
	if err != nil {
		stopWatch()
		nc.Close()
		return nil, err
	}
	var load func() (proxy.Config, error)
	if rebuild != nil {
		load = func() (proxy.Config, error) { next, err := rebuild(); return next.Proxy, err }
	}
	rl := proxy.NewReloader(p, ch, build, load, log)
	// The chain's background work (JWKS refresh) runs until the server has
	// finished its last request.
	rlCtx, stopRL := context.WithCancel(context.WithoutCancel(ctx))
	rlDone := make(chan struct{})
	g.Go(func() error {
		defer close(rlDone)
		return rl.Run(rlCtx)
	})
	abort := func(err error) (*proxyParts, error) {
		stopRL()
		<-rlDone
		stopWatch()
		nc.Close()
		return nil, err
	}
	if reg != nil {
		if err := instrumentProxy(reg, p, em, w, rl); err != nil {
			return abort(err)
		}
	}
	tlsConf, err := cfg.Proxy.TLS.Load(cfg.Proxy.HTTP2)
	if err != nil {
		return abort(err)
	}
	gather, _ := reg.(prometheus.Gatherer)
	admin := &proxy.Admin{Reload: rl.Reload, Ready: func() error { return watcherReady(w) }}
	if _, err := startAdmin(ctx, g, cfg, admin, gather, log); err != nil {
		return abort(err)
	}
	ln, err := net.Listen("tcp", cfg.Proxy.Listen)
	if err != nil {
		return abort(fmt.Errorf("proxy.listen: %w", err))
	}
	g.Go(func() error {
		reloadOnSIGHUP(ctx, rl)
		return nil
	})
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
		stopRL()
		<-rlDone
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

// instrumentProxy registers the proxy's, the emitter's, the enforcement
// state's and the reloader's collectors on reg.
func instrumentProxy(reg prometheus.Registerer, p *proxy.Proxy, em *emit.Emitter, w *kv.Watcher, rl *proxy.Reloader) error {
	pm, err := proxy.NewMetrics(reg, p.Routes(), p.Stats())
	if err != nil {
		return fmt.Errorf("registering proxy metrics: %w", err)
	}
	p.SetMetrics(pm)
	if err := emit.RegisterMetrics(reg, em); err != nil {
		return err
	}
	if err := kv.RegisterMetrics(reg, w); err != nil {
		return err
	}
	return rl.RegisterMetrics(reg)
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
	setMetrics, setAdmin := metricsFlag(c, ""), adminFlag(c, "")
	set := func(cfg *Config) {
		setMetrics(cfg)
		setAdmin(cfg)
		if *listen != "" {
			cfg.Proxy.Listen = *listen
		}
		if *upstream != "" {
			cfg.Proxy.Upstream = *upstream
		}
		if *spool != "" {
			cfg.Emit.SpoolDir = *spool
		}
	}
	cfg, err := c.load(args, set)
	if err != nil {
		return err
	}
	if cfg.NATS.URL == "" {
		return fmt.Errorf("%w: proxy needs --nats (or nats.url); 'apiguard up' runs NATS embedded", errUsage)
	}
	log := newLogger(cfg.Log, os.Stderr)
	// A proxy-only process: its GC defaults (GOGC, GOMEMLIMIT) are the
	// proxy's, unless the environment sets them ('apiguard up' keeps Go's,
	// for the pipeline's larger live heap).
	gcPercent, memLimit := proxy.TuneGC()
	log.Info("garbage collection", "gogc", gcPercent, "memory_limit_bytes", memLimit)
	g, gctx := errgroup.WithContext(ctx)
	ready := &readiness{}
	reg, err := startMetrics(gctx, g, cfg, log, ready)
	if err != nil {
		return err
	}
	rebuild := func() (Config, error) { return c.build(set) }
	pp, err := startProxy(gctx, g, cfg, cfg.NATS.URL, log, reg, nil, rebuild)
	if err != nil {
		return err
	}
	ready.Set(func() error { return watcherReady(pp.watcher) })
	return g.Wait()
}
