package proxy

import (
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/apiguard/apiguard/event"
)

// OtherAPI is the label value for requests to routes that are not
// configured: label values come from closed sets only, never from what a
// client sent.
const OtherAPI = "other"

// Metrics are the proxy's Prometheus collectors. Labels: api (a configured
// route template, or "other"), decision (allow, block, throttle, …) and
// check (a check's name, "" when allowed).
type Metrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	upstream *prometheus.HistogramVec
	apis     atomic.Pointer[map[string]bool] // swapped on reload
}

// NewMetrics registers the proxy's collectors on reg; routes are the
// configured route templates, the only API label values besides "other".
// stats supplies the counters the proxy keeps anyway.
func NewMetrics(reg prometheus.Registerer, routes []string, stats *Stats) (*Metrics, error) {
	m := &Metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "apiguard_proxy_requests_total",
			Help: "Requests answered, by API, decision and the check that decided.",
		}, []string{"api", "decision", "check"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "apiguard_proxy_request_duration_seconds",
			Help:    "Time from a request's arrival to its last response byte, by API.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"api"}),
		upstream: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "apiguard_proxy_upstream_duration_seconds",
			Help:    "Time the upstream took to send its response headers, by API.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"api"}),
	}
	m.setRoutes(routes)
	cs := []prometheus.Collector{m.requests, m.duration, m.upstream,
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "apiguard_proxy_upstream_errors_total",
			Help: "Requests the upstream failed (answered 502 or 504).",
		}, func() float64 { return float64(stats.UpstreamError.Load()) }),
	}
	for _, c := range cs {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// setRoutes sets the API label values besides "other".
func (m *Metrics) setRoutes(routes []string) {
	apis := make(map[string]bool, len(routes))
	for _, r := range routes {
		apis[r] = true
	}
	m.apis.Store(&apis)
}

func (m *Metrics) observe(ev *event.RequestEvent) {
	api := ev.Api
	if !(*m.apis.Load())[api] {
		api = OtherAPI
	}
	m.requests.WithLabelValues(api, ev.Decision.Label(), ev.Check).Inc()
	m.duration.WithLabelValues(api).Observe(time.Duration(ev.DurationNanos).Seconds())
	if ev.UpstreamLatencyNanos > 0 {
		m.upstream.WithLabelValues(api).Observe(time.Duration(ev.UpstreamLatencyNanos).Seconds())
	}
}

// SetMetrics makes the proxy record into m; call it before serving.
func (p *Proxy) SetMetrics(m *Metrics) { p.metrics = m }
