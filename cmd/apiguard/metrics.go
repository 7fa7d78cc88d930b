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

	"github.com/apiguard/apiguard/event"
	"github.com/apiguard/apiguard/pipeline/topology"
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

// serveMetrics serves /metrics from reg on addr in g until ctx ends, and
// /healthz and /readyz from ready when it is not nil (health.go).
func serveMetrics(ctx context.Context, g *errgroup.Group, addr string, reg *prometheus.Registry, ready *readiness, log *slog.Logger) (net.Addr, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("metrics.listen: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	if ready != nil {
		probeRoutes(mux, ready)
	}
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

func register(reg prometheus.Registerer, cs ...prometheus.Collector) error {
	for _, c := range cs {
		if err := reg.Register(c); err != nil {
			return fmt.Errorf("registering metrics: %w", err)
		}
	}
	return nil
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

// startMetrics serves /metrics in g when cfg asks for it, with /healthz
// and /readyz answered from ready (nil: none), and returns the registry
// the components register on, or nil when metrics are off.
func startMetrics(ctx context.Context, g *errgroup.Group, cfg Config, log *slog.Logger, ready *readiness) (prometheus.Registerer, error) {
	if cfg.Metrics.Listen == "" {
		return nil, nil
	}
	reg := newRegistry()
	if _, err := serveMetrics(ctx, g, cfg.Metrics.Listen, reg, ready, log); err != nil {
		return nil, err
	}
	return reg, nil
}
