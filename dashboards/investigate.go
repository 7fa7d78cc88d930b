//lint:file-ignore SA1019 we generate the classic dashboard JSON, which Grafana's file provisioning loads; the SDK marks its types deprecated in favour of dashboardv2

package dashboards

import (
	"github.com/grafana/grafana-foundation-sdk/go/common"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"

	"github.com/apiguard/apiguard/dashboards/plugin"
)

// investigate is one principal (the principal variable, "kind:value"):
// its requests and decisions, its anomalies, the actions on it and its
// refused requests on one timeline, the fingerprints and networks it
// used, and block, unblock and allow on its rows.
func investigate() *dashboard.DashboardBuilder {
	p := "$" + VarPrincipal
	requests := Q(plugin.QueryTypePrincipalTimeline)
	requests.PrincipalValue, requests.View = p, plugin.ViewSeries
	timeline := Q(plugin.QueryTypePrincipalTimeline)
	timeline.PrincipalValue, timeline.View, timeline.Limit = p, plugin.ViewEvents, 1000
	anomalies := Q(plugin.QueryTypeAnomalies)
	anomalies.PrincipalValue, anomalies.Limit = p, 1000
	audit := Q(plugin.QueryTypeAudit)
	audit.PrincipalValue = p
	fingerprints := Q(plugin.QueryTypeSQL)
	fingerprints.RawSQL = fingerprintsSQL
	networks := Q(plugin.QueryTypeSQL)
	networks.RawSQL = networksSQL

	return newDashboard(UIDInvestigate, "apiguard: Investigate principal",
		"One principal (kind:value): its requests, decisions, anomalies and actions on one timeline, its fingerprints and networks, and the actions to take.").
		WithVariable(principalVariable()).WithVariable(ttlVariable()).WithVariable(databaseVariable()).
		WithRow(dashboard.NewRowBuilder("Timeline")).
		WithPanel(seriesPanel("Requests of $principal by decision", "The principal's requests per interval by the proxy's decision (ip and cidr: by client address; fp: by any fingerprint).", 24, 7, requests).
			Unit("short").DrawStyle(common.GraphDrawStyleBars).Stacking(stacked())).
		WithPanel(tablePanel("Timeline of $principal", "Its anomalies, the actions on it and its refused requests, newest first (type anomaly, action or request_<decision>).", 24, 10, timeline).
			SortBy(newestFirst("time"))).
		WithRow(dashboard.NewRowBuilder("Anomalies and actions")).
		WithPanel(hidden(tablePanel("Anomalies of $principal", "Its anomalies with their explanations. Block, unblock or allow it from a row (for the Action TTL); a row links to the anomaly's explanation.", 24, 9, anomalies).
			DataLinks([]cogLink{anomalyLink("anomaly_id"), apiLink("api")}).
			Actions(principalActions("principal_kind", "principal", "anomaly_id", ActBlock, ActUnblock, ActAllow)), "deviations").
			SortBy(newestFirst("time"))).
		WithPanel(hidden(tablePanel("Actions on $principal", "Every action on it: who, when, why, for how long, and whether it was a dry run. Unblock it from a row.", 24, 8, audit).
			Actions(principalActions("target_kind", "target", "", ActUnblock)), "expires").
			SortBy(newestFirst("time"))).
		WithRow(dashboard.NewRowBuilder("Fingerprints and networks")).
		WithPanel(tablePanel("Fingerprints of $principal", "The TLS and header fingerprints and user agents its requests carried, most used first; a fingerprint links to Investigate fp:<fingerprint>, which shows every principal behind it.", 12, 9, fingerprints).
			DataLinks([]cogLink{fingerprintLink("tls_fingerprint"), fingerprintLink("header_fingerprint")})).
		WithPanel(tablePanel("Networks of $principal", "The networks it came from (IPv4 /24, IPv6 addresses as such), with the principals seen there and the requests refused.", 12, 9, networks))
}

// fingerprintLink opens Investigate principal on the fingerprint in
// field.
func fingerprintLink(fieldName string) cogLink {
	return dashboard.NewDashboardLinkBuilder("Investigate fp:" + field(fieldName)).Type(dashboard.DashboardLinkTypeLink).
		Url(dashboardURL(UIDInvestigate, "investigate-principal") + "?var-principal=fp:" + field(fieldName) + "&${__url_time_range}")
}

// principalMatch is the SQL condition of an event of the principal
// variable: its stored principal, its client address (ip:…) or one of its
// fingerprints (fp:…). The variable is SQL-quoted; the plugin runs the
// query read-only.
const principalMatch = `has([concat(principal_kind, ':', principal), concat('ip:', client_ip), concat('fp:', tls_fingerprint), concat('fp:', header_fingerprint)], '${principal}')`

const eventsRange = `FROM ${database}.events
WHERE date BETWEEN toDate($__timeFrom) AND toDate($__timeTo) AND $__timeFilter(time)
  AND ` + principalMatch

const fingerprintsSQL = `SELECT tls_fingerprint, header_fingerprint, user_agent, count() AS requests,
  uniqExact(client_ip) AS addresses, min(time) AS first_seen, max(time) AS last_seen
` + eventsRange + `
GROUP BY tls_fingerprint, header_fingerprint, user_agent
ORDER BY requests DESC
LIMIT 100`

const networksSQL = `SELECT if(position(client_ip, ':') > 0, client_ip, IPv4NumToStringClassC(IPv4StringToNum(client_ip))) AS network,
  count() AS requests, countIf(decision != 'allow') AS refused,
  uniqExact(concat(principal_kind, ':', principal)) AS principals, min(time) AS first_seen, max(time) AS last_seen
` + eventsRange + `
GROUP BY network
ORDER BY requests DESC
LIMIT 100`
