//lint:file-ignore SA1019 we generate the classic dashboard JSON, which Grafana's file provisioning loads; the SDK marks its types deprecated in favour of dashboardv2

package dashboards

import (
	"github.com/grafana/grafana-foundation-sdk/go/common"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"

	"github.com/apiguard/apiguard/dashboards/plugin"
)

// threats answers "who attacks what, why is it abnormal, what was done":
// the anomaly timeline and list with explanations, one anomaly's
// deviations and triggering events, detectors and attack kinds by API,
// the actions taken and by whom, and the entries in force, with block,
// unblock and allow on the rows.
func threats() *dashboard.DashboardBuilder {
	anomalies := Q(plugin.QueryTypeAnomalies)
	anomalies.API, anomalies.Limit = "$"+VarAPI, 1000
	timeline := Q(plugin.QueryTypeAnomalies)
	timeline.API, timeline.Limit = "$"+VarAPI, 10000
	detail := Q(plugin.QueryTypeAnomalyDetail)
	detail.AnomalyID = "$" + VarAnomaly
	audit := Q(plugin.QueryTypeAudit)
	audit.Limit = 1000

	return newDashboard(UIDThreats, "apiguard: Threats",
		"The anomalies, why each one is abnormal (observed against expected), the detectors and attack kinds by API, and what was done about them.").
		WithVariable(apiVariable(true)).WithVariable(anomalyVariable()).WithVariable(ttlVariable()).
		WithRow(dashboard.NewRowBuilder("Anomalies")).
		WithPanel(seriesPanel("Anomaly timeline", "Each anomaly as a point at its time and score (0 to 1), one series per detector.", 24, 8, timeline).
			DrawStyle(common.GraphDrawStylePoints).PointSize(8).Min(0).Max(1).
			WithTransformation(transform("filterFieldsByName", map[string]any{"include": map[string]any{"names": []string{"time", "score", "detector"}}})).
			WithTransformation(transform("partitionByValues", map[string]any{"fields": []string{"detector"}, "keepFields": false}))).
		WithPanel(hidden(tablePanel("Anomalies", "Newest first, with each anomaly's explanation: the features that deviated, observed against normal. A row links to its principal and to its explanation below; block or allow its principal from the row (for the Action TTL).", 24, 11, anomalies).
			DataLinks(append(principalLinks("principal_kind", "principal"), anomalyLink("anomaly_id"), apiLink("api"))).
			Actions(principalActions("principal_kind", "principal", "anomaly_id", ActBlock, ActAllow)), "deviations").
			SortBy(newestFirst("time"))).
		WithRow(dashboard.NewRowBuilder("Explanation of the anomaly chosen")).
		WithPanel(tablePanel("Deviations of $anomaly", "The chosen anomaly's features: observed, expected (the baseline) and the deviation in scaled MADs. Choose an anomaly by its row above, or type its id.", 10, 9, detail).
			FrameIndex(1)).
		WithPanel(tablePanel("Events that triggered $anomaly", "The requests the detector saw when it raised the anomaly, oldest first.", 14, 9, copyQuery(detail)).
			FrameIndex(2)).
		WithRow(dashboard.NewRowBuilder("Breakdown")).
		WithPanel(tablePanel("Detectors", "Anomalies per detector in the range: how many, and the highest score.", 8, 9, anomalies).
			WithTransformation(transform("groupBy", map[string]any{"fields": map[string]any{
				"detector":   map[string]any{"operation": "groupby", "aggregations": []string{}},
				"anomaly_id": map[string]any{"operation": "aggregate", "aggregations": []string{"count"}},
				"score":      map[string]any{"operation": "aggregate", "aggregations": []string{"max"}},
			}}))).
		WithPanel(tablePanel("Attack kinds by API", "Which detector fired on which API, and how often; an API links to its dashboard.", 8, 9, anomalies).
			WithTransformation(countBy("anomaly_id", "api", "detector")).DataLinks([]cogLink{apiLink("api")})).
		WithPanel(tablePanel("Actions by actor", "Who acted: the policy, operators (apiguard block) and analysts (grafana:<login>), by kind of action.", 8, 9, audit).
			WithTransformation(countBy("action_id", "actor", "kind"))).
		WithRow(dashboard.NewRowBuilder("Response")).
		WithPanel(hidden(tablePanel("Actions taken", "The audit trail, newest first: what was done to whom, for how long, why and by whom; enforce_ms is the time from the offending request to the action. Unblock a target from its row.", 24, 10, audit).
			DataLinks(principalLinks("target_kind", "target")).
			Actions(principalActions("target_kind", "target", "", ActUnblock)), "expires").
			SortBy(newestFirst("time"))).
		WithPanel(tablePanel("In force", "Enforcement entries in force now, from the KV bucket, with their TTL left. Unblock from the row; blocks end by themselves at their expiry.", 24, 8, Q(plugin.QueryTypeEnforcement)).
			DataLinks(principalLinks("kind", "value")).
			Actions(principalActions("kind", "value", "", ActUnblock)))
}

// copyQuery is another panel's copy of q (a panel names its queries).
func copyQuery(q *Query) *Query {
	c := *q
	return &c
}
