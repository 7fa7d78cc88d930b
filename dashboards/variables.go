package dashboards

import (
	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"

	"github.com/apiguard/apiguard/dashboards/plugin"
)

// Template variables shared by the dashboards. The data source's frontend
// replaces variables in a query's api, principalValue, detector, anomalyId
// and rawSql only (datasource.ts), each a single value; the lint holds
// every query to that.
const (
	VarAPI       = "api"
	VarPrincipal = "principal"
	VarAnomaly   = "anomaly"
	VarTTL       = "ttl"
	VarDatabase  = "database"
)

func str(s string) dashboard.StringOrMap { return dashboard.StringOrMap{String: &s} }

func option(text, value string) dashboard.VariableOption {
	return dashboard.VariableOption{Text: dashboard.StringOrArrayOfString{String: &text},
		Value: dashboard.StringOrArrayOfString{String: &value}}
}

// variableQuery is the model of a query variable of the apiguard data
// source (QueryTypeVariable).
func variableQuery(m map[string]any) dashboard.StringOrMap {
	m["queryType"] = plugin.QueryTypeVariable
	m["refId"] = "variable"
	return dashboard.StringOrMap{Map: m}
}

// apiVariable lists the APIs with requests in the time range. With all
// set, its first option is "All APIs", the empty value, which every query
// type reads as no filter (the plugin's own "all"; Grafana's All option
// would send a glob of every API, which no query takes).
func apiVariable(all bool) cog.Builder[dashboard.VariableModel] {
	v := dashboard.NewQueryVariableBuilder(VarAPI).Label("API").
		Description("an API (route template); the panels show this API only").
		Datasource(*apiguardRef()).Query(variableQuery(map[string]any{"variable": plugin.VariableAPI})).
		Refresh(dashboard.VariableRefreshOnTimeRangeChanged).Sort(dashboard.VariableSortAlphabeticalAsc).
		Multi(false).IncludeAll(false).AllowCustomValue(true)
	if all {
		v.StaticOptions([]dashboard.VariableOption{option("All APIs", "")}).
			StaticOptionsOrder(dashboard.VariableModelStaticOptionsOrderBefore).
			Current(option("All APIs", "")).
			Description("an API (route template), or All APIs (the empty value)")
	}
	return v
}

// principalVariable lists the principals with requests in the time range,
// most active first, as "kind:value"; any principal can be typed in.
func principalVariable() cog.Builder[dashboard.VariableModel] {
	return dashboard.NewQueryVariableBuilder(VarPrincipal).Label("Principal").
		Description("a principal as kind:value (ip, cidr, key, token, sub, fp); every principal shown on the dashboards links here").
		Datasource(*apiguardRef()).
		Query(variableQuery(map[string]any{"variable": plugin.VariablePrincipal, "limit": 1000})).
		Refresh(dashboard.VariableRefreshOnTimeRangeChanged).Sort(dashboard.VariableSortDisabled).
		Multi(false).IncludeAll(false).AllowCustomValue(true)
}

// anomalyVariable is the anomaly the Threats dashboard explains; the
// anomaly tables' links set it.
func anomalyVariable() cog.Builder[dashboard.VariableModel] {
	return dashboard.NewTextBoxVariableBuilder(VarAnomaly).Label("Anomaly id").
		Description("the anomaly explained below: click an anomaly's row to set it").DefaultValue(str(""))
}

// ttlVariable is how long a block or allow taken from a row lasts.
func ttlVariable() cog.Builder[dashboard.VariableModel] {
	return dashboard.NewCustomVariableBuilder(VarTTL).Label("Action TTL").
		Description("how long a block or allow taken from a row lasts (0: until removed)").
		Values(str("1h,24h,168h,0")).Current(option("1h", "1h")).Multi(false).IncludeAll(false)
}

// databaseVariable is the ClickHouse database of the raw SQL panels: it
// must equal the data source's clickhouseDatabase (APIGUARD_CLICKHOUSE_DATABASE).
func databaseVariable() cog.Builder[dashboard.VariableModel] {
	return dashboard.NewConstantVariableBuilder(VarDatabase).
		Description("apiguard's ClickHouse database, as the data source's clickhouseDatabase names it").
		Value(str("apiguard"))
}
