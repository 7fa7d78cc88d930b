package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/sync/errgroup"

	"github.com/apiguard/apiguard/enforce"
	"github.com/apiguard/apiguard/enforce/kv"
	"github.com/apiguard/apiguard/event"
	"github.com/apiguard/apiguard/pipeline/topology"
	"github.com/apiguard/apiguard/proxy/emit"
	"github.com/apiguard/apiguard/sinks/alerts"
	"github.com/apiguard/apiguard/sinks/clickhouse"
)

// MetricsConfig says where Prometheus scrapes this process.
type MetricsConfig struct {
	// Listen is host:port for /metrics; empty serves none. up defaults to
	// 127.0.0.1:9464; proxy and pipeline, often on one host, to none.
	Listen string `yaml:"listen"`
}

// newRegistry returns a registry with the Go runtime and process
// collectors.
func newRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

// serveMetrics serves /metrics from reg on addr in g until ctx ends.
func serveMetrics(ctx context.Context, g *errgroup.Group, addr string, reg *prometheus.Registry, log *slog.Logger) (net.Addr, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("metrics.listen: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	serve(g, srv, ln, "metrics")
	g.Go(func() error {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		return srv.Shutdown(sctx)
	})
	log.Info("serving metrics", "addr", "http://"+ln.Addr().String()+"/metrics")
	return ln.Addr(), nil
}

// serve runs srv on ln in g until it is shut down; any other end is an
// error naming what was served.
func serve(g *errgroup.Group, srv *http.Server, ln net.Listener, what string) {
	g.Go(func() error {
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("serving %s: %w", what, err)
		}
		return nil
	})
}

func counterFunc(name, help string, f func() uint64) prometheus.Collector {
	return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help}, func() float64 { return float64(f()) })
}

func gaugeFunc(name, help string, f func() float64) prometheus.Collector {
	return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, f)
}

func register(reg prometheus.Registerer, cs ...prometheus.Collector) error {
	for _, c := range cs {
		if err := reg.Register(c); err != nil {
			return fmt.Errorf("registering metrics: %w", err)
		}
	}
	return nil
}

// registerEmitter exposes the emitter's counters, queue and spool.
func registerEmitter(reg prometheus.Registerer, em *emit.Emitter) error {
	st := em.Stats()
	return register(reg,
		counterFunc("apiguard_emit_events_total", "Events taken into the emitter's queue.", st.Emitted.Load),
		counterFunc("apiguard_emit_published_total", "Events acknowledged by JetStream.", st.Published.Load),
		counterFunc("apiguard_emit_duplicates_total", "Publishes JetStream reported as already stored.", st.Duplicates.Load),
		counterFunc("apiguard_emit_spooled_total", "Events written to the disk spool.", st.Spooled.Load),
		counterFunc("apiguard_emit_dropped_queue_total", "Events dropped because the queue was full.", st.DroppedQueue.Load),
		counterFunc("apiguard_emit_dropped_spool_total", "Events dropped because the spool was full or failing.", st.DroppedSpool.Load),
		counterFunc("apiguard_emit_publish_errors_total", "Publishes that failed (their events were spooled).", st.PublishErrors.Load),
		counterFunc("apiguard_emit_encode_errors_total", "Events that could not be encoded.", st.EncodeErrors.Load),
		gaugeFunc("apiguard_emit_queue_length", "Events waiting in the emitter's queue.", func() float64 { return float64(em.QueueLen()) }),
		gaugeFunc("apiguard_emit_spool_bytes", "Bytes in the disk spool, waiting for NATS.", func() float64 { return float64(em.SpoolBytes()) }),
	)
}

// registerEnforcement exposes the enforcement state the proxy holds.
func registerEnforcement(reg prometheus.Registerer, m *enforce.Matcher, w *kv.Watcher) error {
	return register(reg,
		gaugeFunc("apiguard_enforce_entries", "Enforcement entries in the proxy's matcher.", func() float64 { return float64(m.Len()) }),
		gaugeFunc("apiguard_enforce_synced", "1 once the proxy has loaded the enforcement state.", func() float64 {
			if w.Synced() {
				return 1
			}
			return 0
		}),
		counterFunc("apiguard_enforce_changes_total", "Enforcement changes applied from the KV bucket.", w.Applied),
		counterFunc("apiguard_enforce_malformed_total", "Enforcement entries skipped as malformed.", w.Malformed),
	)
}

// registerWriter exposes the ClickHouse writer's counters.
func registerWriter(reg prometheus.Registerer, w *clickhouse.Writer) error {
	st := w.Stats()
	return register(reg,
		counterFunc("apiguard_clickhouse_rows_total", "Rows inserted into ClickHouse.", st.Rows.Load),
		counterFunc("apiguard_clickhouse_inserts_total", "Inserts that succeeded.", st.Batches.Load),
		counterFunc("apiguard_clickhouse_duplicates_total", "Records skipped because their id was stored already.", st.Duplicates.Load),
		counterFunc("apiguard_clickhouse_rejected_total", "Records that could not be decoded.", st.Rejected.Load),
		counterFunc("apiguard_clickhouse_errors_total", "Inserts or lookups that failed (retried).", st.Errors.Load),
	)
}

// pollLag sets apiguard_pipeline_consumer_pending for each consumer every
// interval until ctx ends: messages the consumer has not delivered or that
// wait for an ack. The label values are the consumer names, a fixed set.
func pollLag(ctx context.Context, g *errgroup.Group, reg prometheus.Registerer, js jetstream.JetStream,
	consumers map[string]string, interval time.Duration, log *slog.Logger) error {
	lag := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "apiguard_pipeline_consumer_pending",
		Help: "Messages a durable consumer has yet to process (undelivered plus unacknowledged).",
	}, []string{"consumer"})
	if err := register(reg, lag); err != nil {
		return err
	}
	g.Go(func() error {
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			for name, stream := range consumers {
				qctx, cancel := context.WithTimeout(ctx, interval)
				n, err := topology.Pending(qctx, js, stream, name)
				cancel()
				if err != nil {
					if ctx.Err() == nil {
						log.Debug("reading consumer lag", "consumer", name, "err", err)
					}
					continue
				}
				lag.WithLabelValues(name).Set(float64(n))
			}
			select {
			case <-ctx.Done():
				return nil
			case <-t.C:
			}
		}
	})
	return nil
}

// pipelineConsumers are the durable consumers whose lag is reported.
func pipelineConsumers(partitions []int, store bool) map[string]string {
	out := map[string]string{}
	for _, p := range partitions {
		out[topology.ConsumerName(p)] = event.StreamEvents
	}
	if store {
		out[storeConsumer("events")] = event.StreamEvents
		out[storeConsumer("anomalies")] = event.StreamAnomalies
		out[storeConsumer("actions")] = event.StreamActions
	}
	return out
}

// metricsFlag adds --metrics-listen to a command's flags and returns the
// function that applies it; def is the command's default when neither the
// flag nor the config gives one. "off" serves no metrics.
func metricsFlag(c *common, def string) func(*Config) {
	return listenFlag(c, "metrics-listen", "serve Prometheus /metrics on host:port, or \"off\" (overrides metrics.listen)",
		def, func(cfg *Config) *string { return &cfg.Metrics.Listen })
}

// listenFlag adds a listen-address flag that sets the field dst picks:
// "off" clears it, an address sets it, and without the flag an unset
// field gets def.
func listenFlag(c *common, name, usage, def string, dst func(*Config) *string) func(*Config) {
	addr := c.fs.String(name, "", usage)
	return func(cfg *Config) {
		field := dst(cfg)
		switch {
		case *addr == "off":
			*field = ""
		case *addr != "":
			*field = *addr
		case *field == "":
			*field = def
		}
	}
}

// startMetrics serves /metrics in g when cfg asks for it and returns the
// registry the components register on, or nil when metrics are off.
func startMetrics(ctx context.Context, g *errgroup.Group, cfg Config, log *slog.Logger) (prometheus.Registerer, error) {
	if cfg.Metrics.Listen == "" {
		return nil, nil
	}
	reg := newRegistry()
	if _, err := serveMetrics(ctx, g, cfg.Metrics.Listen, reg, log); err != nil {
		return nil, err
	}
	return reg, nil
}

// registerAlerts exposes the alert sender's counters.
func registerAlerts(reg prometheus.Registerer, s *alerts.Sender) error {
	st := s.Stats()
	return register(reg,
		counterFunc("apiguard_alerts_delivered_total", "Alert deliveries a destination accepted.", st.Delivered.Load),
		counterFunc("apiguard_alerts_failed_total", "Alert deliveries given up after retries.", st.Failed.Load),
		counterFunc("apiguard_alerts_retries_total", "Alert delivery attempts after a failure.", st.Retries.Load),
		counterFunc("apiguard_alerts_dropped_total", "Alerts dropped: a destination's queue was full.", st.Dropped.Load),
	)
}
