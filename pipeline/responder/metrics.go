package responder

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// RegisterMetrics registers the responder's collectors on reg, read from
// its Stats at scrape time.
//
// apiguard_responder_actions_total counts every action the responder
// recorded on the audit stream, labelled dry_run: "false" for the actions
// it enforced (wrote to the enforcement bucket: a block, or the throttle
// of a shared principal), "true" for those it recorded only
// (responder.dry_run, the per-minute cap, a never-block rule or allow
// entry, a shared principal it may not block). Their sum is every action
// taken or proposed.
func RegisterMetrics(reg prometheus.Registerer, r *Responder) error {
	st := r.Stats()
	counter := func(name, help string, labels prometheus.Labels, f func() uint64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help, ConstLabels: labels},
			func() float64 { return float64(f()) })
	}
	const actionsHelp = `Actions the responder recorded on the audit stream: dry_run="false" were enforced (written to the enforcement bucket), dry_run="true" were recorded only (dry-run mode, the per-minute cap, a never-block rule or allow entry, a shared principal).`
	for _, c := range []prometheus.Collector{
		counter("apiguard_responder_actions_total", actionsHelp, prometheus.Labels{"dry_run": "false"}, st.Actions.Load),
		counter("apiguard_responder_actions_total", actionsHelp, prometheus.Labels{"dry_run": "true"}, st.DryRun.Load),
		counter("apiguard_responder_ignored_total", "Anomalies the policy does not act on: below responder.min_score, about an API rather than a principal, or of an unknown principal kind.", nil, st.Ignored.Load),
		counter("apiguard_responder_failures_total", "Actions the enforcement bucket or the audit stream refused (the pipeline retries the anomaly).", nil, st.Failures.Load),
		counter("apiguard_responder_shared_total", "Anomalies on a principal that more than responder.max_shared_principals established principals share: its attacking members were blocked, or it was throttled or recorded only, instead.", nil, st.Shared.Load),
	} {
		if err := reg.Register(c); err != nil {
			return fmt.Errorf("registering responder metrics: %w", err)
		}
	}
	return nil
}
