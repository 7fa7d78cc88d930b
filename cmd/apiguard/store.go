package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/sync/errgroup"

	"github.com/apiguard/apiguard/detectors"
	"github.com/apiguard/apiguard/event"
	"github.com/apiguard/apiguard/pipeline"
	"github.com/apiguard/apiguard/pipeline/topology"
	"github.com/apiguard/apiguard/sinks/clickhouse"
)

// storeParts are the running loaders into ClickHouse.
type storeParts struct {
	writer    *clickhouse.Writer
	loaders   map[string]*pipeline.Loader // by table
	baselines *clickhouse.BaselineWriter
}

// baselineQueue is how many baseline snapshots wait for ClickHouse.
const baselineQueue = 64

// baselineRows turns a partition's baseline snapshot into ClickHouse rows.
func baselineRows(partition int, at time.Time, bs []detectors.BaselineSnapshot) []clickhouse.Baseline {
	rows := make([]clickhouse.Baseline, len(bs))
	for i, s := range bs {
		rows[i] = clickhouse.Baseline{Time: at, Detector: s.Detector, API: s.API, Feature: s.Feature, Centre: s.Centre,
			Spread: s.Spread, Samples: uint32(s.Samples), Principals: uint32(s.Principals), Partition: uint16(partition)}
	}
	return rows
}

// storeConsumer names the durable consumer that loads a stream into a
// table. Pipeline replicas share it: each message goes to one of them.
func storeConsumer(table string) string { return "apiguard-clickhouse-" + table }

// startStore starts one loader per stream into ClickHouse in g, each on a
// durable consumer of its own, so a slow or absent ClickHouse pauses only
// storage, never detection. With clickhouse.auto_migrate the schema is
// applied first; otherwise it must be there already ('apiguard migrate').
func startStore(ctx context.Context, g *errgroup.Group, cfg Config, js jetstream.JetStream, log *slog.Logger) (*storeParts, error) {
	log = log.With("component", "clickhouse")
	ch, err := clickhouse.Open(ctx, cfg.ClickHouse.Config)
	if err != nil {
		return nil, err
	}
	if cfg.ClickHouse.AutoMigrate {
		if _, err := ch.Migrate(ctx, cfg.ClickHouse.RetentionDays); err != nil {
			ch.Close()
			return nil, fmt.Errorf("migrating ClickHouse: %w", err)
		}
	}
	if err := ch.CheckSchema(ctx); err != nil {
		ch.Close()
		return nil, err
	}
	w := clickhouse.NewWriter(ch)
	streams := []struct {
		table, stream string
		store         clickhouse.Table
	}{
		{"events", event.StreamEvents, w.Events()},
		{"anomalies", event.StreamAnomalies, w.Anomalies()},
		{"actions", event.StreamActions, w.Actions()},
	}
	lcfg := pipeline.LoaderConfig{BatchSize: cfg.ClickHouse.BatchSize, FlushInterval: cfg.ClickHouse.FlushInterval,
		Parallel: cfg.ClickHouse.Parallel}
	parts := &storeParts{writer: w, loaders: map[string]*pipeline.Loader{},
		baselines: clickhouse.NewBaselineWriter(w, baselineQueue, log)}
	var sources []*topology.BatchSource
	for _, s := range streams {
		src, err := topology.NewBatchSource(ctx, js, s.stream, storeConsumer(s.table), (lcfg.Parallel+1)*lcfg.BatchSize)
		if err != nil {
			for _, src := range sources {
				src.Stop()
			}
			ch.Close()
			return nil, err
		}
		sources = append(sources, src)
		parts.loaders[s.table] = pipeline.NewLoader("clickhouse-"+s.table, src, s.store, lcfg, log)
	}
	var lg errgroup.Group
	for _, l := range parts.loaders {
		lg.Go(func() error { return l.Run(ctx) })
	}
	lg.Go(func() error { return parts.baselines.Run(ctx) })
	g.Go(func() error {
		defer ch.Close()
		err := lg.Wait()
		st := w.Stats()
		log.Info("storage stopped", "rows", st.Rows.Load(), "duplicates_skipped", st.Duplicates.Load(),
			"rejected", st.Rejected.Load(), "errors", st.Errors.Load(),
			"baselines_stored", parts.baselines.Stats().Stored.Load(), "baselines_dropped", parts.baselines.Stats().Dropped.Load())
		return err
	})
	log.Info("storing to ClickHouse", "addr", cfg.ClickHouse.Addr, "database", cfg.ClickHouse.Database,
		"server", ch.Version().String())
	return parts, nil
}

func cmdMigrate(ctx context.Context, args []string, out io.Writer) error {
	c := newCommon("migrate")
	cfg, err := c.load(args, clickhouseFlag(c))
	if err != nil {
		return err
	}
	if !cfg.ClickHouse.Enabled() {
		return fmt.Errorf("%w: migrate needs --clickhouse (or clickhouse.dsn or clickhouse.addr)", errUsage)
	}
	ch, err := clickhouse.Open(ctx, cfg.ClickHouse.Config)
	if err != nil {
		return err
	}
	defer ch.Close()
	fmt.Fprintf(out, "ClickHouse %s, database %s\n", ch.Version(), ch.Database())
	steps, err := ch.Migrate(ctx, cfg.ClickHouse.RetentionDays)
	for _, st := range steps {
		line := fmt.Sprintf("%3d  %-20s %s", st.Version, st.Name, st.Status)
		if st.Why != "" {
			line += " (" + st.Why + ")"
		}
		fmt.Fprintln(out, line)
	}
	return err
}

// clickhouseFlag adds --clickhouse to a command's flags and returns the
// function that applies it.
func clickhouseFlag(c *common) func(*Config) {
	addr := c.fs.String("clickhouse", "", "ClickHouse native protocol: a DSN, clickhouse://user:password@host:9000/database?dial_timeout=5s, or host:port addresses, comma separated (overrides clickhouse.dsn and clickhouse.addr)")
	return func(cfg *Config) {
		if *addr != "" {
			cfg.ClickHouse.set(*addr)
		}
	}
}
