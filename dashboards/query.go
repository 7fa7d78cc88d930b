//lint:file-ignore SA1019 we generate the classic dashboard JSON, which Grafana's file provisioning loads; the SDK marks its types deprecated in favour of dashboardv2

package dashboards

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"

	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/cog/plugins"
	"github.com/grafana/grafana-foundation-sdk/go/cog/variants"
	"github.com/grafana/grafana-foundation-sdk/go/common"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"

	"github.com/apiguard/apiguard/dashboards/plugin"
)

// Data sources the dashboards name. Provisioning (provisioning/datasources)
// creates both with these uids; a panel names one of them, never a
// data source picked by name.
const (
	// DatasourceUID is the apiguard data source (plugin.PluginID).
	DatasourceUID = "apiguard"
	// PrometheusUID is the Prometheus that scrapes apiguard.
	PrometheusUID = "prometheus"
	// PrometheusType is Prometheus's data source plugin id.
	PrometheusType = "prometheus"
)

// Query is one panel query of the apiguard data source: Grafana's common
// fields (refId, hide, datasource), the queryType, and the options of
// that type's model in dashboards/plugin (querytypes.go), with the same
// JSON names. Only the options of its own type may be set; the lint
// (Lint) decodes each query strictly into its type's model.
type Query struct {
	RefID      string                `json:"refId"`
	Hide       bool                  `json:"hide,omitempty"`
	Datasource *common.DataSourceRef `json:"datasource,omitempty"`
	QueryType  string                `json:"queryType"`
	// Live asks an anomalies or audit query for its live channel.
	Live bool `json:"live,omitempty"`

	API            string   `json:"api,omitempty"`
	APIs           []string `json:"apis,omitempty"`
	Decisions      []string `json:"decisions,omitempty"`
	GroupBy        string   `json:"groupBy,omitempty"`
	Metric         string   `json:"metric,omitempty"`
	Limit          int      `json:"limit,omitempty"`
	OrderBy        string   `json:"orderBy,omitempty"`
	Detector       string   `json:"detector,omitempty"`
	Detectors      []string `json:"detectors,omitempty"`
	MinSeverity    string   `json:"minSeverity,omitempty"`
	MinScore       float64  `json:"minScore,omitempty"`
	PrincipalKind  string   `json:"principalKind,omitempty"`
	PrincipalValue string   `json:"principalValue,omitempty"`
	AnomalyID      string   `json:"anomalyId,omitempty"`
	EventLimit     int      `json:"eventLimit,omitempty"`
	ReferenceHours int      `json:"referenceHours,omitempty"`
	View           string   `json:"view,omitempty"`
	IncludeAllowed bool     `json:"includeAllowed,omitempty"`
	Status         string   `json:"status,omitempty"`
	Declared       []string `json:"declared,omitempty"`
	Kinds          []string `json:"kinds,omitempty"`
	Actor          string   `json:"actor,omitempty"`
	DryRun         string   `json:"dryRun,omitempty"`
	RawSQL         string   `json:"rawSql,omitempty"`
	Variable       string   `json:"variable,omitempty"`
	Source         string   `json:"source,omitempty"`
	Search         string   `json:"search,omitempty"`
}

// Q returns a query of type queryType on the apiguard data source.
func Q(queryType string) *Query {
	return &Query{QueryType: queryType, Datasource: apiguardRef()}
}

// ImplementsDataqueryVariant marks Query as a data query of the SDK.
func (Query) ImplementsDataqueryVariant() {}

// DataqueryType is the data source plugin the query is for.
func (Query) DataqueryType() string { return plugin.PluginID }

// Equals reports whether other is the same query.
func (q Query) Equals(other variants.Dataquery) bool {
	o, ok := other.(Query)
	if !ok {
		if p, isPtr := other.(*Query); isPtr && p != nil {
			o, ok = *p, true
		}
	}
	return ok && reflect.DeepEqual(q, o)
}

// Validate checks that the query names a query type the plugin answers.
func (q Query) Validate() error {
	if !slices.Contains(plugin.QueryTypeNames(), q.QueryType) {
		return fmt.Errorf("queryType %q: not a query type of %s (want one of %s)",
			q.QueryType, plugin.PluginID, strings.Join(plugin.QueryTypeNames(), ", "))
	}
	return nil
}

// Build makes Query its own builder, so a *Query is a panel's target.
func (q *Query) Build() (variants.Dataquery, error) {
	return *q, q.Validate()
}

// queryVariant tells the SDK how to decode the apiguard data source's
// queries: strictly, an unknown field being an error.
func queryVariant() variants.DataqueryConfig {
	return variants.DataqueryConfig{
		Identifier: plugin.PluginID,
		DataqueryUnmarshaler: func(raw []byte) (variants.Dataquery, error) {
			var q Query
			if err := json.Unmarshal(raw, &q); err != nil {
				return nil, fmt.Errorf("decoding an apiguard query: %w", err)
			}
			return q, nil
		},
		StrictDataqueryUnmarshaler: func(raw []byte) (variants.Dataquery, error) {
			var q Query
			dec := json.NewDecoder(bytes.NewReader(raw))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&q); err != nil {
				return nil, fmt.Errorf("decoding an apiguard query: %w", err)
			}
			return q, q.Validate()
		},
	}
}

var registerOnce sync.Once

// Register makes the SDK's runtime know the core panels and data sources
// and the apiguard query type, which decoding a dashboard needs. It is
// safe to call more than once.
func Register() {
	registerOnce.Do(func() {
		plugins.RegisterDefaultPlugins()
		cog.NewRuntime().RegisterDataqueryVariant(queryVariant())
	})
}

func apiguardRef() *common.DataSourceRef {
	t, u := plugin.PluginID, DatasourceUID
	return &common.DataSourceRef{Type: &t, Uid: &u}
}

func prometheusRef() *common.DataSourceRef {
	t, u := PrometheusType, PrometheusUID
	return &common.DataSourceRef{Type: &t, Uid: &u}
}

// Interface guards
var (
	_ variants.Dataquery              = Query{}
	_ cog.Builder[variants.Dataquery] = (*Query)(nil)
)

// CheckStrict decodes a dashboard's JSON with the SDK's strict decoder
// and returns what it finds: an unknown field, a missing required one, a
// value of the wrong type, in the dashboard, its panels, their options
// and field config, or their queries (ours with Query's strict decoder).
// Only the errors are of use: the SDK reports a success as an empty error
// list, which its panel union and panel options take for a failure, so
// the strictly decoded value lacks its panels; Decode gives the value.
//
// The SDK decodes a panel's field config leniently but for its custom
// part; CheckStrict decodes each one strictly too, so an unknown field in
// a data link, an action or an override is found as well.
func CheckStrict(b []byte) error {
	Register()
	var d dashboard.Dashboard
	if err := noErrors(d.UnmarshalJSONStrict(b)); err != nil {
		return err
	}
	var raw struct {
		Panels []struct {
			FieldConfig json.RawMessage `json:"fieldConfig"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		return err
	}
	for i, p := range raw.Panels {
		if len(p.FieldConfig) == 0 {
			continue
		}
		var fc dashboard.FieldConfigSource
		if err := noErrors(fc.UnmarshalJSONStrict(p.FieldConfig)); err != nil {
			return fmt.Errorf("panels[%d].fieldConfig: %w", i, err)
		}
	}
	return nil
}

// Decode decodes a dashboard's JSON into the SDK's types (leniently).
func Decode(b []byte) (dashboard.Dashboard, error) {
	Register()
	var d dashboard.Dashboard
	err := json.Unmarshal(b, &d)
	return d, err
}

// noErrors is err, or nil for the SDK's empty error list.
func noErrors(err error) error {
	var be cog.BuildErrors
	if errors.As(err, &be) && len(be) == 0 {
		return nil
	}
	return err
}
