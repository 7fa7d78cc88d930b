//lint:file-ignore SA1019 we generate the classic dashboard JSON, which Grafana's file provisioning loads; the SDK marks its types deprecated in favour of dashboardv2

package dashboards

import (
	"github.com/grafana/grafana-foundation-sdk/go/common"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"

	"github.com/apiguard/apiguard/dashboards/plugin"
)

// overview answers "what is happening": traffic and decisions by API,
// anomalies by detector and severity, active blocks, how fast the loop
// closes, the riskiest principals and the live anomaly feed.
func overview() *dashboard.DashboardBuilder {
	byAPI := Q(plugin.QueryTypeSeries)
	byAPI.API, byAPI.GroupBy = "$"+VarAPI, plugin.GroupByAPI
	byDecision := Q(plugin.QueryTypeSeries)
	byDecision.API, byDecision.GroupBy = "$"+VarAPI, plugin.GroupByDecision

	anomalies := Q(plugin.QueryTypeAnomalies)
	anomalies.API, anomalies.Limit = "$"+VarAPI, 10000
	triggered := Q(plugin.QueryTypeAudit)
	triggered.Kinds, triggered.DryRun = []string{"block", "throttle", "revoke"}, plugin.DryRunExclude
	actions := Q(plugin.QueryTypeAudit)
	actions.Limit = 10000
	top := Q(plugin.QueryTypeTopPrincipals)
	top.API, top.OrderBy, top.Limit = "$"+VarAPI, plugin.ByRisk, 20
	live := Q(plugin.QueryTypeAnomalies)
	live.API, live.Limit, live.Live = "$"+VarAPI, 100, true

	return newDashboard(UIDOverview, "apiguard: Overview",
		"Traffic and decisions by API, what the detectors found, what was enforced and how fast.").
		WithVariable(apiVariable(true)).
		WithRow(dashboard.NewRowBuilder("Traffic")).
		WithPanel(seriesPanel("Requests by API", "Requests per interval for each API (route template), from the per-minute rollup at whole-minute intervals.", 12, 8, byAPI).
			Unit("short")).
		WithPanel(seriesPanel("Decisions", "The proxy's decisions per interval: allow, block, throttle, challenge, revoked.", 12, 8, byDecision).
			Unit("short").DrawStyle(common.GraphDrawStyleBars).Stacking(stacked())).
		WithRow(dashboard.NewRowBuilder("Detection and response")).
		WithPanel(statPanel("Active blocks", "Enforcement entries in force now (blocks, throttles, revocations and allow entries), read from the KV bucket.", 4, 5, "count",
			Q(plugin.QueryTypeEnforcement)).ReduceOptions(common.NewReduceDataOptionsBuilder().Calcs([]string{"count"}).Fields("/^value$/"))).
		WithPanel(statPanel("Anomalies", "Anomalies raised in the time range.", 4, 5, "count", anomalies).
			ReduceOptions(common.NewReduceDataOptionsBuilder().Calcs([]string{"count"}).Fields("/^anomaly_id$/"))).
		WithPanel(statPanel("Loop latency", "From the offending request to the action being enforced (the responder's block, throttle or revoke; dry-run left out): mean and slowest in the range.", 8, 5, "mean", triggered).
			ReduceOptions(common.NewReduceDataOptionsBuilder().Calcs([]string{"mean", "max"}).Fields("/^enforce_ms$/")).Unit("ms").
			Thresholds(thresholds(500, 2000)).
			WithTransformation(transform("filterByValue", map[string]any{"type": "include", "match": "all",
				"filters": []any{map[string]any{"fieldName": "enforce_ms", "config": map[string]any{"id": "greater", "options": map[string]any{"value": 0}}}}}))).
		WithPanel(statPanel("Actions", "Actions in the time range: the policy's, the operators' and the analysts', dry-run included.", 8, 5, "count", actions).
			ReduceOptions(common.NewReduceDataOptionsBuilder().Calcs([]string{"count"}).Fields("/^action_id$/"))).
		WithPanel(tablePanel("Anomalies by detector and severity", "How many anomalies each detector raised, by severity.", 8, 10, anomalies).
			WithTransformation(countBy("anomaly_id", "detector", "severity")).SortBy(newestFirst("anomaly_id (count)"))).
		WithPanel(hidden(tablePanel("Top principals by risk", "The principals with the highest combined risk in the range; a row links to Investigate principal.", 16, 10, top).
			DataLinks(principalLinks("kind", "principal")), "first_seen")).
		WithRow(dashboard.NewRowBuilder("Live")).
		WithPanel(hidden(tablePanel("Live anomaly feed", "The newest anomalies; new ones are appended as the pipeline raises them (the plugin's live stream). A row links to its principal and its explanation.", 24, 10, live).
			DataLinks(append(principalLinks("principal_kind", "principal"), anomalyLink("anomaly_id"))), "deviations", "risk"))
}
