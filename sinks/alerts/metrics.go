package alerts

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// RegisterMetrics registers the sender's collectors on reg, read from its
// Stats at scrape time.
func RegisterMetrics(reg prometheus.Registerer, s *Sender) error {
	st := s.Stats()
	counter := func(name, help string, f func() uint64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help},
			func() float64 { return float64(f()) })
	}
	for _, c := range []prometheus.Collector{
		counter("apiguard_alerts_delivered_total", "Alert deliveries a destination accepted.", st.Delivered.Load),
		counter("apiguard_alerts_failed_total", "Alert deliveries given up: refused (4xx) or still failing after the retries.", st.Failed.Load),
		counter("apiguard_alerts_retries_total", "Alert delivery attempts after a failure.", st.Retries.Load),
		counter("apiguard_alerts_dropped_total", "Alerts not delivered to a destination: its queue was full, or they were queued at shutdown.", st.Dropped.Load),
		counter("apiguard_alerts_filtered_total", "Anomalies below alerts.min_severity, not alerted.", st.Filtered.Load),
	} {
		if err := reg.Register(c); err != nil {
			return fmt.Errorf("registering alert metrics: %w", err)
		}
	}
	return nil
}
