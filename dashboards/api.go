//lint:file-ignore SA1019 we generate the classic dashboard JSON, which Grafana's file provisioning loads; the SDK marks its types deprecated in favour of dashboardv2

package dashboards

import (
	"github.com/grafana/grafana-foundation-sdk/go/common"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"

	"github.com/apiguard/apiguard/dashboards/plugin"
)

// apiDashboard is one API: its traffic and errors, its baselines against
// what was observed, its principals, its parameter anomalies, and the
// shadow and zombie operations around it.
func apiDashboard() *dashboard.DashboardBuilder {
	requests := Q(plugin.QueryTypeSeries)
	requests.API, requests.GroupBy = "$"+VarAPI, plugin.GroupByDecision
	serverErrors := Q(plugin.QueryTypeSeries)
	serverErrors.API, serverErrors.GroupBy, serverErrors.Metric = "$"+VarAPI, plugin.GroupByTotal, plugin.MetricServerErrors
	clientErrors := Q(plugin.QueryTypeSeries)
	clientErrors.API, clientErrors.GroupBy, clientErrors.Metric = "$"+VarAPI, plugin.GroupByTotal, plugin.MetricClientErrors
	baselines := Q(plugin.QueryTypeBaselines)
	baselines.API = "$" + VarAPI
	risky := Q(plugin.QueryTypeTopPrincipals)
	risky.API, risky.Limit = "$"+VarAPI, 50
	active := Q(plugin.QueryTypeVariable)
	active.Variable, active.API, active.Limit = plugin.VariablePrincipal, "$"+VarAPI, 50
	params := Q(plugin.QueryTypeAnomalies)
	params.API, params.Detector, params.Limit = "$"+VarAPI, "parameters", 500
	inventory := Q(plugin.QueryTypeInventory)

	return newDashboard(UIDAPI, "apiguard: API",
		"One API: its traffic, errors and latency against its baselines, its principals, parameter anomalies, and shadow and zombie operations.").
		WithVariable(apiVariable(false)).
		WithRow(dashboard.NewRowBuilder("Traffic")).
		WithPanel(seriesPanel("Requests by decision", "The API's requests per interval, by the proxy's decision.", 12, 8, requests).
			Unit("short").Stacking(stacked())).
		WithPanel(seriesPanel("Errors", "The API's answers with a 5xx (server_errors) and a 4xx (client_errors) status per interval.", 12, 8, serverErrors, clientErrors).
			Unit("short")).
		WithRow(dashboard.NewRowBuilder("Baseline against observed")).
		WithPanel(hidden(tablePanel("Baseline against observed", "Rate, volume, error ratios and latency over the range (observed) against the 24 hours before it (expected), then each detector's per-principal baselines (expected, spread) against the median principal now. ratio is observed / expected.", 24, 11, baselines).
			OverrideByName("ratio", []dashboard.DynamicConfigValue{
				{Id: "custom.cellOptions", Value: map[string]any{"type": "color-background"}},
				{Id: "thresholds", Value: map[string]any{"mode": "absolute", "steps": []any{
					map[string]any{"color": "green", "value": nil}, map[string]any{"color": "orange", "value": 2}, map[string]any{"color": "red", "value": 5}}}},
			}), "api")).
		WithRow(dashboard.NewRowBuilder("Principals")).
		WithPanel(hidden(tablePanel("Principals by risk", "The API's principals that anomalies name, riskiest first; a row links to Investigate principal.", 12, 10, risky).
			DataLinks(principalLinks("kind", "principal")), "apis")).
		WithPanel(tablePanel("Most active principals", "The API's principals with the most requests in the range, as kind:value; a row links to Investigate principal.", 12, 10, active).
			DataLinks(variableLinks("value"))).
		WithRow(dashboard.NewRowBuilder("Parameters and inventory")).
		WithPanel(hidden(tablePanel("Parameter anomalies", "Requests whose parameter values the parameters detector found abnormal on this API: characters that carry syntax (quotes, angle brackets, comments, double encoding) where the parameter never had them, or lengths far from its usual ones.", 24, 9, params).
			DataLinks(append(principalLinks("principal_kind", "principal"), anomalyLink("anomaly_id"))), "deviations", "api").
			SortBy(newestFirst("time"))).
		WithPanel(tablePanel("Shadow and zombie operations", "Operations served but not declared (shadow), declared deprecated but still served (zombie), and requests refused as undeclared, for every API; an API links to its dashboard.", 24, 9, inventory).
			DataLinks([]cogLink{apiLink("api")}).
			CellHeight(common.TableCellHeightSm))
}
