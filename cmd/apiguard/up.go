package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/apiguard/apiguard/detectors"
	"github.com/apiguard/apiguard/internal/secret"
	"github.com/apiguard/apiguard/pipeline"
	"github.com/apiguard/apiguard/pipeline/topology"
)

func cmdUp(ctx context.Context, args []string, out io.Writer) error {
	c := newCommon("up")
	demo := c.fs.Bool("demo", false, "add a demo API and demo traffic: normal clients and attackers")
	forDur := c.fs.Duration("for", 0, "stop after this long; a demo prints a JSON summary as its last line when it stops")
	clients := c.fs.Int("clients", 60, "demo: normal clients")
	attackers := c.fs.Int("attackers", 1, "demo: attackers, starting one a second")
	attackAfter := c.fs.Duration("attack-after", 30*time.Second, "demo: when the first attacker starts (baselines warm up first)")
	listen := c.fs.String("listen", "", "proxy address (overrides proxy.listen)")
	upstream := c.fs.String("upstream", "", "upstream base URL (overrides proxy.upstream)")
	natsListen := c.fs.String("nats-listen", "", "embedded NATS address (overrides nats.listen)")
	storeDir := c.fs.String("store-dir", "", "embedded NATS store (overrides nats.store_dir)")
	spoolDir := c.fs.String("spool-dir", "", "proxy's event spool (overrides emit.spool_dir)")
	setClickHouse := clickhouseFlag(c)
	setMetrics := metricsFlag(c, "127.0.0.1:9464")
	setAdmin := adminFlag(c, "127.0.0.1:9465")
	if err := c.parse(args); err != nil {
		return err
	}

	ctx, stop := context.WithCancel(ctx)
	defer stop()
	g, gctx := errgroup.WithContext(ctx)
	if *forDur > 0 {
		var cancel context.CancelFunc
		gctx, cancel = context.WithTimeout(gctx, *forDur)
		defer cancel()
	}
	// abort stops what has been started and waits for it, so that an error
	// at start leaves no goroutine running (and NATS, deferred, closes last).
	abort := func(err error) error {
		stop()
		_ = g.Wait()
		return err
	}
	var demoUpstream string
	if *demo {
		addr, run, err := serveDemoAPI(gctx, "127.0.0.1:0")
		if err != nil {
			return err
		}
		g.Go(run)
		demoUpstream = "http://" + addr.String()
	}
	set := func(cfg *Config) {
		setClickHouse(cfg)
		setMetrics(cfg)
		setAdmin(cfg)
		// up is the one-command start: it creates the schema itself.
		cfg.ClickHouse.AutoMigrate = true
		if *demo {
			if c.logLevel == "" && cfg.Log.Level == "info" {
				cfg.Log.Level = "warn" // keep the demo's own lines readable
			}
			cfg.Proxy.Upstream = demoUpstream
			if len(cfg.Proxy.Routes) == 0 {
				cfg.Proxy.Routes = demoRoutes
			}
			// A demo lasts a minute, not an hour: unless the config chose
			// its own, the detectors' windows are seconds long.
			if cfg.Detectors.Windows == detectors.DefaultConfig().Windows {
				cfg.Detectors.Windows = demoWindows
				cfg.Detectors.Cooldown = 30 * time.Second
			}
		}
		for flagVal, dst := range map[*string]*string{listen: &cfg.Proxy.Listen, upstream: &cfg.Proxy.Upstream,
			natsListen: &cfg.NATS.Listen, storeDir: &cfg.NATS.StoreDir, spoolDir: &cfg.Emit.SpoolDir} {
			if *flagVal != "" {
				*dst = *flagVal
			}
		}
	}
	cfg, err := c.build(set)
	if err != nil {
		return abort(err)
	}
	log := newLogger(cfg.Log, os.Stderr)

	url := cfg.NATS.URL
	if url == "" {
		s, err := startEmbedded(cfg.NATS)
		if err != nil {
			return abort(err)
		}
		defer func() {
			s.Shutdown()
			s.WaitForShutdown()
		}()
		url = secret.URL(s.ClientURL())
		log.Info("embedded NATS running", "url", url, "store", cfg.NATS.StoreDir)
	}

	ready := &readiness{}
	reg, err := startMetrics(gctx, g, cfg, log, ready)
	if err != nil {
		return abort(err)
	}
	var report *demoReport
	var extra []pipeline.Sink
	if *demo {
		report = newDemoReport(out, *attackers)
		extra = append(extra, report)
		if err := clearDemoDetectors(gctx, url, cfg, out, log); err != nil {
			return abort(err)
		}
	}
	pl, err := startPipeline(gctx, g, cfg, url, log, reg, extra, reportOnAction(report))
	if err != nil {
		return abort(err)
	}
	var storedBefore uint64
	if *demo {
		// The store outlives a run: entries an earlier demo left for its
		// own clients and attackers would spoil this one.
		// The summary counts the events this run stored.
		opCfg := cfg
		opCfg.NATS.URL = url
		if err := withOperator(gctx, opCfg, func(ctx context.Context, env *operatorEnv) error {
			if err := clearDemoEntries(ctx, env, out); err != nil {
				return err
			}
			var err error
			storedBefore, err = topology.EventCount(ctx, env.js)
			return err
		}); err != nil {
			return abort(err)
		}
	}
	rebuild := func() (Config, error) {
		next, err := c.build(set)
		next.NATS.URL = cfg.NATS.URL
		return next, err
	}
	px, err := startProxy(gctx, g, cfg, url, log, reg, reportOnApply(report), rebuild)
	if err != nil {
		return abort(err)
	}
	ready.Set(func() error { return errors.Join(watcherReady(px.watcher), pl.ready()) })
	proxyURL := "http://" + px.addr.String()
	fmt.Fprintf(out, "apiguard is up: proxy %s -> %s, NATS %s\n", proxyURL, cfg.Proxy.Upstream, url)

	if *demo {
		traffic := newDemoTraffic(proxyURL, *clients, *attackers, *attackAfter, report)
		fmt.Fprintf(out, "demo: %d clients over %d APIs; %d attacker(s) from %s; baselines warm up first\n",
			*clients, len(demoProfile), *attackers, *attackAfter)
		g.Go(func() error { return traffic.run(gctx) })
	}
	if err := g.Wait(); err != nil {
		return err
	}
	if report == nil {
		return nil
	}
	// Everything has stopped (at --for, or on Ctrl-C) and the emitter has
	// flushed: count what is stored and sum the demo up.
	cctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	nc, js, err := connect(cctx, url, cfg.NATS.Auth, "apiguard-summary", 0, false, log)
	if err != nil {
		return err
	}
	defer nc.Close()
	stored, err := topology.EventCount(cctx, js)
	if err != nil {
		return err
	}
	// Requests are counted at the proxy: one the client gave up on at the
	// stop was still served, and still has its event.
	report.printSummary(report.summary(px.proxy.Stats().Requests.Load(), stored-storedBefore, pl.pipeline.Stats().Anomalies.Load(),
		pl.responder.Stats().Actions.Load()))
	return nil
}
