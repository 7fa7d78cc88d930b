package pipeline

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/apiguard/apiguard/event"
)

// Metrics are the pipeline's Prometheus collectors.
type Metrics struct {
	anomalies *prometheus.CounterVec
	detect    prometheus.Histogram
}

// NewMetrics registers the pipeline's collectors on reg. stats supplies the
// counters the pipeline keeps anyway. Detector names label the anomaly
// counter: they are the registered detectors, a closed set.
func NewMetrics(reg prometheus.Registerer, stats *Stats) (*Metrics, error) {
	m := &Metrics{
		anomalies: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "apiguard_pipeline_anomalies_total",
			Help: "Anomalies raised, by detector and severity.",
		}, []string{"detector", "severity"}),
		detect: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "apiguard_pipeline_detect_seconds",
			Help:    "Time the detectors took over one event.",
			Buckets: []float64{1e-7, 2.5e-7, 5e-7, 1e-6, 2.5e-6, 5e-6, 1e-5, 5e-5, 1e-4, 1e-3},
		}),
	}
	counter := func(name, help string, f func() uint64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help},
			func() float64 { return float64(f()) })
	}
	cs := []prometheus.Collector{m.anomalies, m.detect,
		counter("apiguard_pipeline_events_total", "Events processed and acknowledged.", stats.Processed.Load),
		counter("apiguard_pipeline_redelivered_total", "Events seen again after processing (late or lost ack), skipped.", stats.Redelivered.Load),
		counter("apiguard_pipeline_undecodable_total", "Messages that could not be decoded, terminated.", stats.Undecodable.Load),
		counter("apiguard_pipeline_sink_errors_total", "Anomaly deliveries a sink refused (each retried).", stats.SinkErrors.Load),
	}
	for _, c := range cs {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

func (m *Metrics) observe(took time.Duration, as []*event.Anomaly) {
	m.detect.Observe(took.Seconds())
	for _, a := range as {
		m.anomalies.WithLabelValues(a.Detector, a.Severity.Label()).Inc()
	}
}

// SetMetrics makes the pipeline record into m; call it before Run.
func (p *Pipeline) SetMetrics(m *Metrics) { p.metrics = m }

// RegisterLoader registers a loader's collectors on reg, labelled with
// store (a fixed name such as "clickhouse_events").
func RegisterLoader(reg prometheus.Registerer, store string, st *LoaderStats) error {
	labels := prometheus.Labels{"store": store}
	counter := func(name, help string, f func() uint64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help, ConstLabels: labels},
			func() float64 { return float64(f()) })
	}
	gauge := func(name, help string, f func() float64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help, ConstLabels: labels}, f)
	}
	for _, c := range []prometheus.Collector{
		counter("apiguard_store_messages_total", "Messages written to the store and acknowledged.", st.Messages.Load),
		counter("apiguard_store_batches_total", "Batches the store took.", st.Batches.Load),
		counter("apiguard_store_failures_total", "Batch writes that failed (the batch is held and retried).", st.Failures.Load),
		counter("apiguard_store_rejected_total", "Messages the store can never take (undecodable), terminated.", st.Rejected.Load),
		gauge("apiguard_store_paused", "1 while a batch waits for the store to come back.", func() float64 {
			if st.Paused.Load() {
				return 1
			}
			return 0
		}),
		gauge("apiguard_store_last_batch_timestamp_seconds", "When the store last took a batch.", func() float64 {
			return float64(st.LastBatch.Load()) / 1e9
		}),
	} {
		if err := reg.Register(c); err != nil {
			return err
		}
	}
	return nil
}
