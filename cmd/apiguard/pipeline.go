package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/apiguard/apiguard/detectors"
	"github.com/apiguard/apiguard/enforce/kv"
	"github.com/apiguard/apiguard/event"
	"github.com/apiguard/apiguard/pipeline"
	"github.com/apiguard/apiguard/pipeline/responder"
	"github.com/apiguard/apiguard/pipeline/topology"
)

// pipelineParts is a running pipeline, for the demo and for tests.
type pipelineParts struct {
	pipeline  *pipeline.Pipeline
	responder *responder.Responder
	store     *storeParts // nil without ClickHouse
}

// startPipeline starts one worker per owned partition in g. Anomalies go to
// the extra sinks (observers), then the anomaly stream, then the responder. When ctx
// ends the workers finish the event in hand and stop; then NATS is closed.
func startPipeline(ctx context.Context, g *errgroup.Group, cfg Config, url string, log *slog.Logger,
	extra []pipeline.Sink, onAction func(*event.Action)) (*pipelineParts, error) {
	log = log.With("component", "pipeline")
	nc, js, err := connect(ctx, url, "apiguard-pipeline", 0, false, log)
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
	for _, p := range owned {
		src, err := topology.NewSource(ctx, js, p)
		if err != nil {
			for _, s := range sources {
				s.Stop()
			}
			nc.Close()
			return nil, err
		}
		sources[p] = src
	}
	pub := topology.NewPublisher(js)
	resp := responder.New(cfg.Responder, kv.NewWriter(js, bucket), pub, time.Now, log.With("component", "responder"))
	resp.OnAction = onAction
	// Observers first, so a detection is reported before what it causes.
	sinks := append(append([]pipeline.Sink{}, extra...), pub, resp)
	rate := cfg.Detectors.Rate
	pl := pipeline.New(sources, func(int) pipeline.Detector { return detectors.NewRate(rate) }, sinks, log)
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
	inner.Go(func() error {
		err := pl.Run(ctx)
		st := pl.Stats()
		log.Info("pipeline stopped", "processed", st.Processed.Load(), "undecodable", st.Undecodable.Load(),
			"anomalies", st.Anomalies.Load(), "actions", resp.Stats().Actions.Load())
		return err
	})
	g.Go(func() error {
		defer nc.Close()
		return inner.Wait()
	})
	log.Info("pipeline running", "partitions", owned, "detectors", []string{detectors.RateName},
		"dry_run", cfg.Responder.DryRun)
	return &pipelineParts{pipeline: pl, responder: resp, store: store}, nil
}

func cmdPipeline(ctx context.Context, args []string) error {
	c := newCommon("pipeline")
	cfg, err := c.load(args, clickhouseFlag(c))
	if err != nil {
		return err
	}
	if cfg.NATS.URL == "" {
		return fmt.Errorf("%w: pipeline needs --nats (or nats.url); 'apiguard up' runs NATS embedded", errUsage)
	}
	log := newLogger(cfg.Log, os.Stderr)
	g, gctx := errgroup.WithContext(ctx)
	if _, err := startPipeline(gctx, g, cfg, cfg.NATS.URL, log, nil, nil); err != nil {
		return err
	}
	return g.Wait()
}
