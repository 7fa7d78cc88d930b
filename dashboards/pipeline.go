//lint:file-ignore SA1019 we generate the classic dashboard JSON, which Grafana's file provisioning loads; the SDK marks its types deprecated in favour of dashboardv2

package dashboards

import (
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
	"github.com/grafana/grafana-foundation-sdk/go/prometheus"
)

// Expressions of the Pipeline health dashboard, on the metrics the proxy
// and the pipeline export (names apiguard_<subsystem>_<name>_<unit>; a
// test checks each name against the code) and Prometheus's own up and
// ALERTS.
var (
	proxyThroughput = []promQuery{{`sum by (decision) (rate(apiguard_proxy_requests_total[$__rate_interval]))`, "{{decision}}"}}
	proxyLatency    = []promQuery{
		{`histogram_quantile(0.5, sum by (le) (rate(apiguard_proxy_request_duration_seconds_bucket[$__rate_interval])))`, "request p50"},
		{`histogram_quantile(0.99, sum by (le) (rate(apiguard_proxy_request_duration_seconds_bucket[$__rate_interval])))`, "request p99"},
		{`histogram_quantile(0.99, sum by (le) (rate(apiguard_proxy_upstream_duration_seconds_bucket[$__rate_interval])))`, "upstream p99"},
	}
	upstreamErrors = []promQuery{{`sum(rate(apiguard_proxy_upstream_errors_total[$__rate_interval])) / sum(rate(apiguard_proxy_requests_total[$__rate_interval]))`, "upstream errors"}}
	emitQueue      = []promQuery{{`sum by (instance) (apiguard_emit_queue_length)`, "{{instance}}"}}
	emitSpool      = []promQuery{{`sum by (instance) (apiguard_emit_spool_bytes)`, "{{instance}}"}}
	emitLoss       = []promQuery{
		{`sum(increase(apiguard_emit_dropped_queue_total[$__rate_interval]))`, "dropped: queue full"},
		{`sum(increase(apiguard_emit_dropped_spool_total[$__rate_interval]))`, "dropped: spool full"},
		{`sum(increase(apiguard_emit_publish_errors_total[$__rate_interval]))`, "publish errors (spooled)"},
		{`sum(increase(apiguard_emit_spooled_total[$__rate_interval]))`, "spooled"},
	}
	consumerLag    = []promQuery{{`max by (consumer) (apiguard_pipeline_consumer_pending)`, "{{consumer}}"}}
	pipelineEvents = []promQuery{
		{`sum(rate(apiguard_pipeline_events_total[$__rate_interval]))`, "processed"},
		{`sum(rate(apiguard_pipeline_redelivered_total[$__rate_interval]))`, "redelivered"},
		{`sum(rate(apiguard_pipeline_undecodable_total[$__rate_interval]))`, "undecodable"},
	}
	detectTime = []promQuery{
		{`histogram_quantile(0.5, sum by (le) (rate(apiguard_pipeline_detect_seconds_bucket[$__rate_interval])))`, "p50"},
		{`histogram_quantile(0.99, sum by (le) (rate(apiguard_pipeline_detect_seconds_bucket[$__rate_interval])))`, "p99"},
	}
	anomalyRate   = []promQuery{{`sum by (detector, severity) (increase(apiguard_pipeline_anomalies_total[$__rate_interval]))`, "{{detector}} {{severity}}"}}
	storeFailures = []promQuery{
		{`sum by (store) (increase(apiguard_store_failures_total[$__rate_interval]))`, "{{store}} failed batches"},
		{`sum(increase(apiguard_clickhouse_errors_total[$__rate_interval]))`, "ClickHouse errors"},
		{`sum by (store) (increase(apiguard_store_rejected_total[$__rate_interval]))`, "{{store}} rejected"},
	}
	storePaused = []promQuery{{`max(apiguard_store_paused)`, "paused"}}
	storeAge    = []promQuery{{`time() - max by (store) (apiguard_store_last_batch_timestamp_seconds)`, "{{store}}"}}
	syncedNow   = []promQuery{{`min(apiguard_enforce_synced)`, "synced"}}
	entries     = []promQuery{
		{`max by (instance) (apiguard_enforce_entries)`, "{{instance}} entries"},
		{`sum by (instance) (increase(apiguard_enforce_changes_total[$__rate_interval]))`, "{{instance}} changes"},
	}
	responder = []promQuery{
		{`sum by (dry_run) (increase(apiguard_responder_actions_total[$__rate_interval]))`, "actions dry_run={{dry_run}}"},
		{`sum(increase(apiguard_responder_failures_total[$__rate_interval]))`, "failures"},
	}
	firing   = []promQuery{{`count(ALERTS{alertstate="firing", alertname=~"Apiguard.*"}) or vector(0)`, "firing"}}
	alerts   = []promQuery{{`ALERTS{alertstate="firing", alertname=~"Apiguard.*"}`, "{{alertname}}"}}
	targetUp = []promQuery{{`min by (job) (up{job=~"apiguard.*"})`, "{{job}}"}}
)

// PromQL returns every expression of the Pipeline health dashboard, for
// the tests.
func PromQL() []string {
	var out []string
	for _, qs := range [][]promQuery{proxyThroughput, proxyLatency, upstreamErrors, emitQueue, emitSpool, emitLoss,
		consumerLag, pipelineEvents, detectTime, anomalyRate, storeFailures, storePaused, storeAge, syncedNow, entries,
		responder, firing, alerts, targetUp} {
		for _, q := range qs {
			out = append(out, q.expr)
		}
	}
	return out
}

// pipelineHealth is the loop's own health, from Prometheus: the proxy's
// throughput and latency, the emitter's queue, spool and losses, each
// partition consumer's lag, the detectors' time, the stores, the
// enforcement state, and the apiguard alerts firing.
func pipelineHealth() *dashboard.DashboardBuilder {
	return newDashboard(UIDPipeline, "apiguard: Pipeline health",
		"Is the loop healthy: proxy, emitter, consumers, detectors, ClickHouse, enforcement and alerts, from Prometheus (deploy/prometheus).").
		WithRow(dashboard.NewRowBuilder("Alerts")).
		WithPanel(promStat("apiguard alerts firing", "Alerts of deploy/prometheus/rules.yml firing now.", "short", 6, 6, firing...).
			Thresholds(thresholds(1, 1))).
		WithPanel(promStat("Targets up", "Each apiguard scrape job: 1 when every target answers.", "short", 6, 6, targetUp...).
			Thresholds(dashboard.NewThresholdsConfigBuilder().Mode(dashboard.ThresholdsModeAbsolute).Steps([]dashboard.Threshold{
				{Color: "red"}, {Value: ptr(1.0), Color: "green"}}))).
		WithPanel(promTable("Firing alerts", "The apiguard alerts firing now, with their labels.", 12, 6, alerts...)).
		WithRow(dashboard.NewRowBuilder("Proxy")).
		WithPanel(promSeries("Proxy throughput", "Requests answered per second, by decision.", "reqps", 8, 8, proxyThroughput...)).
		WithPanel(promSeries("Proxy latency", "Request duration (arrival to last byte) p50 and p99, and the upstream's time to headers p99.", "s", 8, 8, proxyLatency...)).
		WithPanel(promSeries("Upstream errors", "Share of requests the upstream failed (502, 504); ApiguardUpstreamErrors fires above 5%.", "percentunit", 8, 8, upstreamErrors...)).
		WithRow(dashboard.NewRowBuilder("Emitter")).
		WithPanel(promSeries("Emitter queue", "Events waiting in each proxy's queue for a batch publish.", "short", 8, 7, emitQueue...)).
		WithPanel(promSeries("Spool", "Bytes spooled to disk while NATS is away; ApiguardSpoolGrowing fires while it grows.", "bytes", 8, 7, emitSpool...)).
		WithPanel(promSeries("Drops and spooling", "Events dropped (queue or spool full: lost, counted), publishes that failed and events spooled per interval.", "short", 8, 7, emitLoss...)).
		WithRow(dashboard.NewRowBuilder("Pipeline")).
		WithPanel(promSeries("Consumer lag per partition", "Messages each durable consumer (apiguard-pipeline-p<partition>, and the stores') has yet to process.", "short", 12, 7, consumerLag...)).
		WithPanel(promSeries("Events processed", "Events the pipeline processed per second, and those redelivered or undecodable.", "ops", 12, 7, pipelineEvents...)).
		WithPanel(promSeries("Detector time", "Time the detectors took over one event, p50 and p99.", "s", 12, 7, detectTime...)).
		WithPanel(promSeries("Anomalies raised", "Anomalies per interval by detector and severity.", "short", 12, 7, anomalyRate...)).
		WithRow(dashboard.NewRowBuilder("Storage and enforcement")).
		WithPanel(promSeries("Store failures", "Failed batch writes per store (held and retried), ClickHouse errors, and messages rejected.", "short", 8, 7, storeFailures...)).
		WithPanel(promStat("Store paused", "1 while a store waits for ClickHouse to come back; ApiguardStoreFailing fires after 2 minutes.", "short", 4, 7, storePaused...).
			Thresholds(thresholds(1, 1))).
		WithPanel(promSeries("Since the last batch", "Seconds since each store last took a batch.", "s", 4, 7, storeAge...)).
		WithPanel(promStat("Enforcement synced", "1 while every proxy holds the enforcement state; ApiguardEnforcementNotSynced fires at 0.", "short", 4, 7, syncedNow...).
			Thresholds(dashboard.NewThresholdsConfigBuilder().Mode(dashboard.ThresholdsModeAbsolute).Steps([]dashboard.Threshold{
				{Color: "red"}, {Value: ptr(1.0), Color: "green"}}))).
		WithPanel(promSeries("Enforcement entries", "Entries in each proxy's matcher, and the changes it applied per interval.", "short", 4, 7, entries...)).
		WithPanel(promSeries("Responder", "Actions the policy took per interval (dry_run true: recorded only), and the actions the bucket or the audit stream refused.", "short", 24, 7, responder...))
}

// promTable is a table of instant Prometheus expressions.
func promTable(title, desc string, w, h uint32, qs ...promQuery) *tableBuilder {
	tgts := make([]cogQuery, len(qs))
	for i, q := range qs {
		tgts[i] = prometheus.NewDataqueryBuilder().Expr(q.expr).LegendFormat(q.legend).Instant().
			Format(prometheus.PromQueryFormatTable).RefId(string(rune('A' + i))).Datasource(*prometheusRef())
	}
	return newTable().Title(title).Description(desc).Span(w).Height(h).Datasource(*prometheusRef()).Targets(tgts).Footer(noFooter())
}

func ptr[T any](v T) *T { return &v }
