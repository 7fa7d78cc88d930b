package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"

	"github.com/apiguard/apiguard/detectors"
	"github.com/apiguard/apiguard/enforce"
	"github.com/apiguard/apiguard/enforce/kv"
	"github.com/apiguard/apiguard/event"
	"github.com/apiguard/apiguard/internal/secret"
	"github.com/apiguard/apiguard/pipeline"
	"github.com/apiguard/apiguard/pipeline/responder"
	"github.com/apiguard/apiguard/pipeline/topology"
	"github.com/apiguard/apiguard/sinks/alerts"
	"github.com/apiguard/apiguard/sinks/clickhouse"
)

// pipelineParts is a running pipeline, for the demo and for tests.
type pipelineParts struct {
	pipeline  *pipeline.Pipeline
	responder *responder.Responder
	alerter   *alerts.Sender // nil without alert destinations
	store     *storeParts    // nil without ClickHouse
	// ready is the pipeline's readiness (/readyz, health.go).
	ready func() error
}

// allowSyncTimeout bounds how long the pipeline waits for the allow entries
// before it judges its first anomaly.
const allowSyncTimeout = 10 * time.Second

// startPipeline starts one worker per owned partition in g. Anomalies go to
// the extra sinks (observers), then the anomaly stream, then the responder. When ctx
// ends the workers finish the event in hand and stop; then NATS is closed.
func startPipeline(ctx context.Context, g *errgroup.Group, cfg Config, url secret.URL, log *slog.Logger,
	reg prometheus.Registerer, extra []pipeline.Sink, onAction func(*event.Action)) (*pipelineParts, error) {
	log = log.With("component", "pipeline")
	nc, js, err := connect(ctx, url, cfg.NATS.Auth, "apiguard-pipeline", 0, false, log)
	if err != nil {
		return nil, err
	}
	bucket, err := topology.Ensure(ctx, js, cfg.NATS.Config)
	if err != nil {
		nc.Close()
		return nil, err
	}
	owned := cfg.NATS.Owned
	if len(owned) == 0 {
		for p := range cfg.NATS.Partitions {
			owned = append(owned, p)
		}
	}
	sources := map[int]pipeline.Source{}
	started := map[int]*startedSource{} // the same, for readiness
	for _, p := range owned {
		src, err := topology.NewSource(ctx, js, p)
		if err != nil {
			for _, s := range sources {
				s.Stop()
			}
			nc.Close()
			return nil, err
		}
		started[p] = &startedSource{Source: src}
		sources[p] = started[p]
	}
	pub := topology.NewPublisher(js)
	rcfg := cfg.Responder
	rcfg.Partitions = cfg.NATS.Partitions // each partition counts the sharers it sees
	resp := responder.New(rcfg, kv.NewWriter(js, bucket), pub, time.Now, log.With("component", "responder"))
	resp.OnAction = onAction
	if resp.Revoker, err = newRevoker(rcfg, pub, log); err != nil { // responder.go
		for _, s := range sources {
			s.Stop()
		}
		nc.Close()
		return nil, err
	}
	// The responder honours allow entries as the proxy does: from a
	// Matcher that a watcher keeps equal to the bucket (started below).
	allows := enforce.NewMatcher()
	resp.Allows = allows
	// Observers first, so a detection is reported before what it causes.
	sinks := append(append([]pipeline.Sink{}, extra...), pub)
	var alerter *alerts.Sender
	if cfg.Alerts.Enabled() {
		if alerter, err = alerts.New(cfg.Alerts, os.Getenv, log); err != nil {
			for _, s := range sources {
				s.Stop()
			}
			nc.Close()
			return nil, err
		}
		sinks = append(sinks, alerter)
	}
	sinks = append(sinks, resp)
	// The config was validated: New cannot fail on it.
	newEngine := func(int) pipeline.Detector { e, _ := detectors.New(cfg.Detectors); return &observedEngine{e, resp} }
	pl := pipeline.New(sources, newEngine, sinks, log)
	checkpoints, err := topology.EnsureCheckpoints(ctx, js, cfg.NATS.Config)
	if err != nil {
		for _, s := range sources {
			s.Stop()
		}
		nc.Close()
		return nil, err
	}
	pl.SetCheckpoints(checkpoints, cfg.NATS.CheckpointInterval)
	// The pipeline and the loaders share the connection: it is closed when
	// both have stopped, so the last batch stored is also acknowledged.
	var inner errgroup.Group
	var store *storeParts
	if cfg.ClickHouse.Enabled() {
		if store, err = startStore(ctx, &inner, cfg, js, log); err != nil {
			for _, s := range sources {
				s.Stop()
			}
			nc.Close()
			return nil, err
		}
	}
	if reg != nil {
		if err := instrumentPipeline(ctx, &inner, reg, js, pl, resp, store, owned, log); err != nil {
			for _, s := range sources {
				s.Stop()
			}
			nc.Close()
			return nil, err
		}
	}
	if store != nil {
		pl.SetBaselineSink(pipeline.BaselineSinkFunc(func(partition int, at time.Time, bs []detectors.BaselineSnapshot) {
			store.baselines.Write(baselineRows(partition, at, bs))
		}), cfg.ClickHouse.BaselineInterval)
	}
	if alerter != nil {
		inner.Go(func() error { return alerter.Run(ctx) })
		if reg != nil {
			if err := alerts.RegisterMetrics(reg, alerter); err != nil {
				for _, s := range sources {
					s.Stop()
				}
				nc.Close()
				return nil, err
			}
		}
	}
	allowWatcher := kv.NewWatcher(kv.Bucket(js, bucket), allows, log.With("component", "allow-watcher"))
	inner.Go(func() error { return allowWatcher.Run(ctx) })
	startResponderLoops(ctx, &inner, js, resp, rcfg, log) // responder.go
	var warmed atomic.Bool
	inner.Go(func() error {
		// Allow entries are loaded before the first anomaly is judged.
		if !waitFor(ctx, allowSyncTimeout, allowWatcher.Synced) && ctx.Err() == nil {
			log.Warn("allow entries not loaded in time; the responder starts without them and applies them as they arrive",
				"timeout", allowSyncTimeout)
		}
		// So is the responder's history; its request record is loaded in
		// the background while the pipeline judges (responder_warm.go).
		start := time.Now()
		actions, err := warmHistory(ctx, js, resp, warmWindow(rcfg))
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		warmed.Store(true)
		log.Info("responder loaded its history", "actions", actions, "took", time.Since(start).Round(time.Millisecond))
		load, err := planRecordLoad(ctx, js, resp, recordWindow(rcfg), owned, checkpoints)
		switch {
		case err != nil && ctx.Err() != nil:
			return nil
		case err != nil:
			log.Error("the responder's request record cannot be loaded; network, prefix and fingerprint groups stay held back until a restart", "err", err)
		default:
			inner.Go(func() error { load.run(ctx, log); return nil })
		}
		err = pl.Run(ctx)
		st := pl.Stats()
		log.Info("pipeline stopped", "processed", st.Processed.Load(), "undecodable", st.Undecodable.Load(),
			"anomalies", st.Anomalies.Load(), "actions_enforced", resp.Stats().Actions.Load(), "actions_dry_run", resp.Stats().DryRun.Load())
		return err
	})
	g.Go(func() error {
		defer nc.Close()
		return inner.Wait()
	})
	log.Info("pipeline running", "partitions", owned, "detectors", enabledDetectors(cfg.Detectors),
		"dry_run", cfg.Responder.DryRun)
	return &pipelineParts{pipeline: pl, responder: resp, alerter: alerter, store: store,
		ready: pipelineReady(nc, &warmed, started, allowWatcher.Synced)}, nil
}

func cmdPipeline(ctx context.Context, args []string) error {
	c := newCommon("pipeline")
	setCH, setMetrics := clickhouseFlag(c), metricsFlag(c, "")
	cfg, err := c.load(args, func(cfg *Config) { setCH(cfg); setMetrics(cfg) })
	if err != nil {
		return err
	}
	if cfg.NATS.URL == "" {
		return fmt.Errorf("%w: pipeline needs --nats (or nats.url); 'apiguard up' runs NATS embedded", errUsage)
	}
	log := newLogger(cfg.Log, os.Stderr)
	g, gctx := errgroup.WithContext(ctx)
	ready := &readiness{}
	reg, err := startMetrics(gctx, g, cfg, log, ready)
	if err != nil {
		return err
	}
	pp, err := startPipeline(gctx, g, cfg, cfg.NATS.URL, log, reg, nil, nil)
	if err != nil {
		return err
	}
	ready.Set(pp.ready)
	return g.Wait()
}

// instrumentPipeline registers the pipeline's, the responder's and the
// store's metrics on reg and starts the consumer lag poller in g.
func instrumentPipeline(ctx context.Context, g *errgroup.Group, reg prometheus.Registerer, js jetstream.JetStream,
	pl *pipeline.Pipeline, resp *responder.Responder, store *storeParts, owned []int, log *slog.Logger) error {
	pm, err := pipeline.NewMetrics(reg, pl.Stats())
	if err != nil {
		return err
	}
	pl.SetMetrics(pm)
	if err := responder.RegisterMetrics(reg, resp); err != nil {
		return err
	}
	if store != nil {
		if err := clickhouse.RegisterMetrics(reg, store.writer); err != nil {
			return err
		}
		if err := clickhouse.RegisterBaselineMetrics(reg, store.baselines); err != nil {
			return err
		}
		for table, l := range store.loaders {
			if err := pipeline.RegisterLoader(reg, "clickhouse_"+table, l.Stats()); err != nil {
				return err
			}
		}
	}
	return pollLag(ctx, g, reg, js, pipelineConsumers(owned, store != nil), 5*time.Second, log)
}

// enabledDetectors names the detectors a config runs.
func enabledDetectors(c detectors.Config) []string {
	e, err := detectors.New(c)
	if err != nil {
		return nil
	}
	return e.Enabled()
}
