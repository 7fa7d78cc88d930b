package plugin

import (
	"context"
	"fmt"

	"github.com/grafana/grafana-plugin-sdk-go/data"
)

// variable answers QueryTypeVariable with one frame, "values", of one
// string field, "value", sorted: the APIs with requests in the range
// (from the rollup), the detectors with anomalies in the range, or the
// principals with requests in the range, most active first, as
// "kind:value" (bare values when the query names a kind). Search keeps
// values containing it, ignoring case; api keeps the detectors and
// principals of one API. With source anomalies, principals are those the
// anomalies in the range name, most anomalies first.
func (q *Queries) variable(ctx context.Context, r *queryRequest) (data.Frames, error) {
	var m VariableQuery
	if err := decodeModel(r, &m); err != nil {
		return nil, err
	}
	if err := m.validate(); err != nil {
		return nil, err
	}
	b := &sqlBuilder{}
	switch m.Variable {
	case VariableAPI:
		b.add("SELECT api AS value FROM " + q.table("api_minute") + " WHERE 1")
		b.timeRange("", "minute", r.from/60*60, r.to)
		searchFilter(b, "api", m.Search)
		b.add(" GROUP BY value ORDER BY value")
	case VariableDetector:
		b.add("SELECT detector AS value FROM " + q.table("anomalies") + " WHERE 1")
		b.timeRange("date", "time", r.from, r.to).in("api", withOne(nil, m.API))
		searchFilter(b, "detector", m.Search)
		b.add(" GROUP BY value ORDER BY value")
	case VariablePrincipal:
		// Grouped by the two columns, joined after: a concat per event
		// costs more than the grouping.
		value := "concat(principal_kind, ':', principal)"
		if m.PrincipalKind != "" {
			value = "principal"
		}
		table, where := q.table("events"), " WHERE 1"
		if m.Source == SourceAnomalies {
			table, where = q.table("anomalies"), " WHERE principal_kind != 'api'"
		}
		b.add("SELECT " + value + " AS value FROM (SELECT principal_kind, principal, count() AS n FROM " + table + where)
		if m.PrincipalKind != "" {
			b.add(" AND principal_kind = ?", m.PrincipalKind)
		}
		b.timeRange("date", "time", r.from, r.to).in("api", withOne(nil, m.API))
		searchFilter(b, "principal", m.Search)
		fmt.Fprintf(b, " GROUP BY principal_kind, principal ORDER BY n DESC, principal_kind, principal LIMIT %d) ORDER BY n DESC, value", m.Limit)
	}
	fmt.Fprintf(b, " LIMIT %d", m.Limit)
	f, err := q.readFrame(ctx, "values", b)
	if err != nil {
		return nil, err
	}
	return data.Frames{f}, nil
}

// searchFilter keeps rows whose column contains s, ignoring case.
func searchFilter(b *sqlBuilder, column, s string) {
	if s != "" {
		b.add(" AND positionCaseInsensitive("+column+", ?) > 0", s)
	}
}
