package dashboards

import (
	"fmt"

	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
)

// Dashboard uids: links name them, so they never change.
const (
	UIDOverview    = "apiguard-overview"
	UIDThreats     = "apiguard-threats"
	UIDAPI         = "apiguard-api"
	UIDInvestigate = "apiguard-investigate"
	UIDPipeline    = "apiguard-pipeline"
)

// Tag is on every apiguard dashboard; each dashboard's header links to
// the others by it.
const Tag = "apiguard"

// AppInvestigatePath is the apiguard app's Investigate page, which takes
// ?kind=&value= and has the block, unblock and allow buttons.
const AppInvestigatePath = "/a/apiguard-app/investigate"

// ActionsPath is the apiguard data source's action resource, as Grafana
// serves it to the browser (docs/grafana.md, Actions).
const ActionsPath = "/api/datasources/uid/" + DatasourceUID + "/resources/actions/"

// cogLink is a panel's data link.
type cogLink = cog.Builder[dashboard.DashboardLink]

// field is a data link's reference to a field of the row clicked.
func field(name string) string { return "${__data.fields." + name + "}" }

// dashboardURL is the path of the dashboard uid with its slug.
func dashboardURL(uid, slug string) string { return "/d/" + uid + "/" + slug }

// dashboardsLinks is a dashboard's header: the other apiguard dashboards
// (by tag), with the time range and the shared variables carried over.
func dashboardsLinks() []cog.Builder[dashboard.DashboardLink] {
	return []cog.Builder[dashboard.DashboardLink]{
		dashboard.NewDashboardLinkBuilder("apiguard").Type(dashboard.DashboardLinkTypeDashboards).
			Tags([]string{Tag}).AsDropdown(false).IncludeVars(true).KeepTime(true).Icon("dashboard").
			Tooltip("the other apiguard dashboards"),
		dashboard.NewDashboardLinkBuilder("Investigate (app)").Type(dashboard.DashboardLinkTypeLink).
			Url(AppInvestigatePath).Icon("external link").Tooltip("the apiguard app's Investigate page, with the actions"),
	}
}

// principalLinks are the data links of a row that names a principal by
// its kind and value fields: the Investigate principal dashboard with the
// principal variable set (and the time range kept), and the app's
// Investigate page.
func principalLinks(kindField, valueField string) []cog.Builder[dashboard.DashboardLink] {
	p := field(kindField) + ":" + field(valueField)
	return []cog.Builder[dashboard.DashboardLink]{
		dashboard.NewDashboardLinkBuilder("Investigate " + p).Type(dashboard.DashboardLinkTypeLink).
			Url(dashboardURL(UIDInvestigate, "investigate-principal") + "?var-principal=" + p + "&${__url_time_range}"),
		dashboard.NewDashboardLinkBuilder("Act on " + p + " in the apiguard app").Type(dashboard.DashboardLinkTypeLink).
			Url(AppInvestigatePath + "?kind=" + field(kindField) + "&value=" + field(valueField)),
	}
}

// variableLinks are the data links of a row whose field valueField holds
// a principal as "kind:value" (the principal variable's form).
func variableLinks(valueField string) []cog.Builder[dashboard.DashboardLink] {
	return []cog.Builder[dashboard.DashboardLink]{
		dashboard.NewDashboardLinkBuilder("Investigate " + field(valueField)).Type(dashboard.DashboardLinkTypeLink).
			Url(dashboardURL(UIDInvestigate, "investigate-principal") + "?var-principal=" + field(valueField) + "&${__url_time_range}"),
	}
}

// anomalyLink opens the Threats dashboard on one anomaly (its
// explanation and triggering events).
func anomalyLink(idField string) cog.Builder[dashboard.DashboardLink] {
	return dashboard.NewDashboardLinkBuilder("Explain anomaly " + field(idField)).Type(dashboard.DashboardLinkTypeLink).
		Url(dashboardURL(UIDThreats, "threats") + "?var-anomaly=" + field(idField) + "&${__url_time_range}")
}

// apiLink opens the API dashboard on one API.
func apiLink(apiField string) cog.Builder[dashboard.DashboardLink] {
	return dashboard.NewDashboardLinkBuilder("API " + field(apiField)).Type(dashboard.DashboardLinkTypeLink).
		Url(dashboardURL(UIDAPI, "api") + "?var-api=" + field(apiField) + "&${__url_time_range}")
}

// Actions a row offers on its principal.
const (
	ActBlock   = "block"
	ActUnblock = "unblock"
	ActAllow   = "allow"
)

// principalActions are the row actions block, unblock and allow on the
// principal a row names (kind and value fields), posted to the data
// source's action resource (ActionsPath) after a confirmation. Block and
// allow last the dashboard's ttl variable; anomalyField, when set, ties
// the action to the row's anomaly. Grafana sends them only where
// [security] actions_allow_post_url admits the path (docs/grafana.md).
func principalActions(kindField, valueField, anomalyField string, acts ...string) []cog.Builder[dashboard.Action] {
	p := field(kindField) + " " + field(valueField)
	out := make([]cog.Builder[dashboard.Action], 0, len(acts))
	for _, act := range acts {
		body := fmt.Sprintf(`{"kind":"%s","value":"%s","reason":"%s from the Grafana dashboard"`,
			field(kindField), field(valueField), act)
		confirm := fmt.Sprintf("%s %s?", act, p)
		if act != ActUnblock {
			body += `,"ttl":"${ttl}"`
			confirm = fmt.Sprintf("%s %s for ${ttl} (0: until removed)?", act, p)
		}
		if anomalyField != "" {
			body += `,"anomalyId":"` + field(anomalyField) + `"`
		}
		body += "}"
		out = append(out, dashboard.NewActionBuilder().Type(dashboard.ActionTypeFetch).Title(act+" "+p).
			Confirmation(confirm).
			Fetch(dashboard.NewFetchOptionsBuilder().Method(dashboard.HttpRequestMethodPOST).Url(ActionsPath+act).
				Headers([][]string{{"Content-Type", "application/json"}}).Body(body)))
	}
	return out
}
