//lint:file-ignore SA1019 we generate the classic dashboard JSON, which Grafana's file provisioning loads; the SDK marks its types deprecated in favour of dashboardv2

// Package dashboards provides apiguard's Grafana dashboards as code, built
// with grafana-foundation-sdk: Overview, Threats, API, Investigate
// principal and Pipeline health (All), the apiguard data source's query
// type for the SDK (Query), and the lint of the house rules every
// generated dashboard keeps (Lint). `make dashboards` writes them to
// dashboards/json/<uid>.json through ./dashboards/gen; provisioning/ has
// the files that make Grafana load them, the data sources and the app.
package dashboards

import (
	"bytes"
	"encoding/json"
	"fmt"

	"github.com/grafana/grafana-foundation-sdk/go/common"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
)

// builders are the dashboards, in the order of their links.
var builders = []func() *dashboard.DashboardBuilder{overview, threats, apiDashboard, investigate, pipelineHealth}

// newDashboard starts a dashboard with what every apiguard dashboard has:
// its tag, the links to the others, a 6-hour range refreshed every
// minute, shared crosshair.
func newDashboard(uid, title, desc string) *dashboard.DashboardBuilder {
	return dashboard.NewDashboardBuilder(title).Uid(uid).Description(desc).Tags([]string{Tag}).
		Time("now-6h", "now").Refresh("1m").Timezone(common.TimeZoneBrowser).Editable().
		Tooltip(dashboard.DashboardCursorSyncCrosshair).Links(dashboardsLinks())
}

// All builds every dashboard. Panel ids are their order in the dashboard,
// so the JSON is the same on every run.
func All() ([]dashboard.Dashboard, error) {
	Register()
	out := make([]dashboard.Dashboard, 0, len(builders))
	for _, b := range builders {
		d, err := b().Build()
		if err != nil {
			return nil, fmt.Errorf("building a dashboard: %w", err)
		}
		assignIDs(&d)
		out = append(out, d)
	}
	return out, nil
}

// assignIDs numbers a dashboard's panels and rows 1, 2, … in order.
func assignIDs(d *dashboard.Dashboard) {
	n := uint32(0)
	for i := range d.Panels {
		n++
		id := n
		switch p := d.Panels[i]; {
		case p.Panel != nil:
			p.Panel.Id = &id
		case p.RowPanel != nil:
			p.RowPanel.Id = id
		}
	}
}

// Marshal encodes a dashboard as the committed JSON: indented, with a
// final newline.
func Marshal(d dashboard.Dashboard) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(d); err != nil {
		return nil, fmt.Errorf("encoding dashboard %s: %w", uidOf(d), err)
	}
	return buf.Bytes(), nil
}

// uidOf is a dashboard's uid, or "" without one.
func uidOf(d dashboard.Dashboard) string {
	if d.Uid == nil {
		return ""
	}
	return *d.Uid
}
