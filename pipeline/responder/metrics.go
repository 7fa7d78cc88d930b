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
// taken or proposed. The revoker's counters are registered when
// r.Revoker is set.
func RegisterMetrics(reg prometheus.Registerer, r *Responder) error {
	st := r.Stats()
	counter := func(name, help string, labels prometheus.Labels, f func() uint64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help, ConstLabels: labels},
			func() float64 { return float64(f()) })
	}
	const actionsHelp = `Actions the responder recorded on the audit stream: dry_run="false" were enforced (written to the enforcement bucket), dry_run="true" were recorded only (dry-run mode, the per-minute cap, a never-block rule or allow entry, a shared principal).`
	collectors := []prometheus.Collector{
		counter("apiguard_responder_actions_total", actionsHelp, prometheus.Labels{"dry_run": "false"}, st.Actions.Load),
		counter("apiguard_responder_actions_total", actionsHelp, prometheus.Labels{"dry_run": "true"}, st.DryRun.Load),
		counter("apiguard_responder_ignored_total", "Anomalies the policy does not act on: below responder.min_score, about an API rather than a principal, or of an unknown principal kind.", nil, st.Ignored.Load),
		counter("apiguard_responder_failures_total", "Actions the enforcement bucket or the audit stream refused (the pipeline retries the anomaly).", nil, st.Failures.Load),
		counter("apiguard_responder_shared_total", "Anomalies on a principal that more than responder.max_shared_principals established principals share: its attacking members were blocked, or it was throttled or recorded only, instead.", nil, st.Shared.Load),
		counter("apiguard_responder_flagged_total", "Anomalies a flag rule matched, or whose rule acts on members when the anomaly names none: recorded and alerted only.", nil, st.Flagged.Load),
		counter("apiguard_responder_unmatched_total", "Anomalies that no rule of responder.policies matched.", nil, st.Unmatched.Load),
		counter("apiguard_responder_escalated_total", "Actions made longer (repeat offences within responder.escalation.window) or turned from throttle to block (several detectors).", nil, st.Escalated.Load),
		counter("apiguard_responder_group_entries_total", "Network entries written for several blocked addresses of one /24 or /48 (responder.groups).", nil, st.Groups.Load),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "apiguard_responder_warm_pending",
			Help: "1 while the responder loads its record of the requests from before its start (who succeeded from each network and under each fingerprint), in the background; 0 once it is whole."},
			func() float64 {
				if r.RecordLoading() {
					return 1
				}
				return 0
			}),
		counter("apiguard_responder_warm_events_total", "Events from before the start the responder's record was loaded with.", nil, r.RecordLoaded),
		counter("apiguard_responder_warm_held_total", "Decisions that read the responder's record of the requests (network, prefix and fingerprint groups, network entries, shared addresses) held back as dry-run while it loaded.", nil, st.HeldBack.Load),
	}
	if rv := r.Revoker; rv != nil {
		rs := rv.Stats()
		const revHelp = "Token revocations reported to issuers (RFC 7009) by outcome: revoked (200), failed (a refusal or max_attempts spent), dropped (queue full)."
		collectors = append(collectors,
			counter("apiguard_responder_issuer_revocations_total", revHelp, prometheus.Labels{"outcome": "revoked"}, rs.Revoked.Load),
			counter("apiguard_responder_issuer_revocations_total", revHelp, prometheus.Labels{"outcome": "failed"}, rs.Failed.Load),
			counter("apiguard_responder_issuer_revocations_total", revHelp, prometheus.Labels{"outcome": "dropped"}, rs.Dropped.Load),
			counter("apiguard_responder_issuer_retries_total", "Calls to an issuer's revocation endpoint retried after a timeout, a network error, 429 or 5xx.", nil, rs.Retries.Load))
	}
	for _, c := range collectors {
		if err := reg.Register(c); err != nil {
			return fmt.Errorf("registering responder metrics: %w", err)
		}
	}
	return nil
}
