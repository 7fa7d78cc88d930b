package dashboards

import (
	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/cog/variants"
	"github.com/grafana/grafana-foundation-sdk/go/common"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
	"github.com/grafana/grafana-foundation-sdk/go/prometheus"
	"github.com/grafana/grafana-foundation-sdk/go/stat"
	"github.com/grafana/grafana-foundation-sdk/go/table"
	"github.com/grafana/grafana-foundation-sdk/go/timeseries"
)

// Panel constructors: every panel has a title, a description, a size on
// the 24-column grid and one data source, named by uid.

// refIDs names a panel's queries A, B, C … in order.
func refIDs(qs []*Query) []cog.Builder[variants.Dataquery] {
	out := make([]cog.Builder[variants.Dataquery], len(qs))
	for i, q := range qs {
		q.RefID = string(rune('A' + i))
		out[i] = q
	}
	return out
}

// tablePanel is a table of apiguard queries.
func tablePanel(title, desc string, w, h uint32, qs ...*Query) *table.PanelBuilder {
	return table.NewPanelBuilder().Title(title).Description(desc).Span(w).Height(h).
		Datasource(*apiguardRef()).Targets(refIDs(qs)).Filterable(true).Footer(noFooter())
}

// noFooter is a table without a footer (the SDK's default footer has no
// reducer list, which its own strict decoding refuses).
func noFooter() cog.Builder[common.TableFooterOptions] {
	return common.NewTableFooterOptionsBuilder().Show(false).Reducer([]string{})
}

// seriesPanel is a time series of apiguard queries.
func seriesPanel(title, desc string, w, h uint32, qs ...*Query) *timeseries.PanelBuilder {
	return timeseries.NewPanelBuilder().Title(title).Description(desc).Span(w).Height(h).
		Datasource(*apiguardRef()).Targets(refIDs(qs)).
		Legend(common.NewVizLegendOptionsBuilder().DisplayMode(common.LegendDisplayModeList).
			Placement(common.LegendPlacementBottom).ShowLegend(true))
}

// statPanel is a single value of apiguard queries, reduced by calc.
func statPanel(title, desc string, w, h uint32, calc string, qs ...*Query) *stat.PanelBuilder {
	return stat.NewPanelBuilder().Title(title).Description(desc).Span(w).Height(h).
		Datasource(*apiguardRef()).Targets(refIDs(qs)).
		ReduceOptions(common.NewReduceDataOptionsBuilder().Calcs([]string{calc})).
		GraphMode(common.BigValueGraphModeNone)
}

// promQuery is one PromQL expression with its legend.
type promQuery struct{ expr, legend string }

// promTargets names a Prometheus panel's queries A, B, … in order.
func promTargets(qs []promQuery) []cog.Builder[variants.Dataquery] {
	out := make([]cog.Builder[variants.Dataquery], len(qs))
	for i, q := range qs {
		out[i] = prometheus.NewDataqueryBuilder().Expr(q.expr).LegendFormat(q.legend).
			RefId(string(rune('A' + i))).Datasource(*prometheusRef())
	}
	return out
}

// promSeries is a time series of Prometheus expressions.
func promSeries(title, desc, unit string, w, h uint32, qs ...promQuery) *timeseries.PanelBuilder {
	return timeseries.NewPanelBuilder().Title(title).Description(desc).Span(w).Height(h).Unit(unit).
		Datasource(*prometheusRef()).Targets(promTargets(qs)).
		Legend(common.NewVizLegendOptionsBuilder().DisplayMode(common.LegendDisplayModeList).
			Placement(common.LegendPlacementBottom).ShowLegend(true))
}

// promStat is the last value of Prometheus expressions.
func promStat(title, desc, unit string, w, h uint32, qs ...promQuery) *stat.PanelBuilder {
	return stat.NewPanelBuilder().Title(title).Description(desc).Span(w).Height(h).Unit(unit).
		Datasource(*prometheusRef()).Targets(promTargets(qs)).
		ReduceOptions(common.NewReduceDataOptionsBuilder().Calcs([]string{"lastNotNull"})).
		GraphMode(common.BigValueGraphModeArea)
}

// stacked stacks a time series' series.
func stacked() cog.Builder[common.StackingConfig] {
	return common.NewStackingConfigBuilder().Mode(common.StackingModeNormal)
}

// thresholds are green below warn, orange from warn, red from crit.
func thresholds(warn, crit float64) cog.Builder[dashboard.ThresholdsConfig] {
	return dashboard.NewThresholdsConfigBuilder().Mode(dashboard.ThresholdsModeAbsolute).Steps([]dashboard.Threshold{
		{Color: "green"}, {Value: &warn, Color: "orange"}, {Value: &crit, Color: "red"}})
}

// transform is a Grafana transformation with its options.
func transform(id string, options map[string]any) dashboard.DataTransformerConfig {
	return dashboard.DataTransformerConfig{Id: id, Options: options}
}

// countBy groups a table's rows by fields and counts countField in each
// group.
func countBy(countField string, fields ...string) dashboard.DataTransformerConfig {
	opts := map[string]any{}
	for _, f := range fields {
		opts[f] = map[string]any{"operation": "groupby", "aggregations": []string{}}
	}
	opts[countField] = map[string]any{"operation": "aggregate", "aggregations": []string{"count"}}
	return transform("groupBy", map[string]any{"fields": opts})
}

// hidden hides fields of a table: they stay in the frame, for links and
// actions.
func hidden(p *table.PanelBuilder, fields ...string) *table.PanelBuilder {
	for _, f := range fields {
		p.OverrideByName(f, []dashboard.DynamicConfigValue{{Id: "custom.hidden", Value: true}})
	}
	return p
}

// newestFirst sorts a table by its time column, newest first.
func newestFirst(field string) []cog.Builder[common.TableSortByFieldState] {
	return []cog.Builder[common.TableSortByFieldState]{common.NewTableSortByFieldStateBuilder().DisplayName(field).Desc(true)}
}

type (
	tableBuilder = table.PanelBuilder
	cogQuery     = cog.Builder[variants.Dataquery]
)

var newTable = table.NewPanelBuilder
