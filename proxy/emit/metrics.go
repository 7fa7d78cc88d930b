package emit

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// RegisterMetrics registers the emitter's collectors on reg: its Stats,
// queue length and spool size, read at scrape time.
func RegisterMetrics(reg prometheus.Registerer, e *Emitter) error {
	st := e.Stats()
	counter := func(name, help string, f func() uint64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help},
			func() float64 { return float64(f()) })
	}
	gauge := func(name, help string, f func() float64) prometheus.Collector {
		return prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, f)
	}
	for _, c := range []prometheus.Collector{
		counter("apiguard_emit_events_total", "Events taken into the emitter's queue.", st.Emitted.Load),
		counter("apiguard_emit_published_total", "Events acknowledged by JetStream, first try or from the spool.", st.Published.Load),
		counter("apiguard_emit_duplicates_total", "Publishes JetStream acknowledged as already stored (same event id).", st.Duplicates.Load),
		counter("apiguard_emit_spooled_total", "Events written to the disk spool.", st.Spooled.Load),
		counter("apiguard_emit_dropped_queue_total", "Events dropped because the queue was full.", st.DroppedQueue.Load),
		counter("apiguard_emit_dropped_spool_total", "Events dropped because the spool was full or failing.", st.DroppedSpool.Load),
		counter("apiguard_emit_publish_errors_total", "Publishes that failed (their events were spooled).", st.PublishErrors.Load),
		counter("apiguard_emit_encode_errors_total", "Events that could not be encoded.", st.EncodeErrors.Load),
		gauge("apiguard_emit_queue_length", "Events waiting in the emitter's queue.", func() float64 { return float64(e.QueueLen()) }),
		gauge("apiguard_emit_spool_bytes", "Bytes in the disk spool, waiting for NATS.", func() float64 { return float64(e.SpoolBytes()) }),
	} {
		if err := reg.Register(c); err != nil {
			return fmt.Errorf("registering emitter metrics: %w", err)
		}
	}
	return nil
}
