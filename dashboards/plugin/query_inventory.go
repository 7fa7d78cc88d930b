package plugin

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/grafana/grafana-plugin-sdk-go/data"
)

// inventoryDetector is the name of the shadow- and zombie-API detector's
// anomalies (detectors.InventoryName; this package may not import
// detectors, and a test keeps the two equal).
const inventoryDetector = "shadow_api"

// Statuses of an API in the inventory frame.
const (
	StatusShadow     = "shadow"     // served, not declared
	StatusZombie     = "zombie"     // declared deprecated, still served
	StatusUndeclared = "undeclared" // requests refused as undeclared operations
)

// inventory answers QueryTypeInventory with one frame, "inventory": a row
// per API and status (shadow, zombie, undeclared), most requested first,
// with source (detector, events or schema), reports (the detector's
// anomalies), requests and principals in the range, first_seen, last_seen
// and summary (the detector's last words, or the reason requests were
// refused). Sources: the inventory detector's anomalies (shadow or
// zombie, by the deviating feature); requests the proxy refused as
// undeclared operations (check schema); and, when the query lists the
// declared APIs, every other API served in the range. Status keeps one
// status.
func (q *Queries) inventory(ctx context.Context, r *queryRequest) (data.Frames, error) {
	var m InventoryQuery
	if err := decodeModel(r, &m); err != nil {
		return nil, err
	}
	if err := m.validate(); err != nil {
		return nil, err
	}
	type row struct {
		api, status, source, summary  string
		reports, requests, principals uint64
		first, last                   time.Time
	}
	found := map[[2]string]*row{}
	add := func(api, status, source, summary string, reports, requests, principals uint64, first, last time.Time) {
		k := [2]string{api, status}
		if x := found[k]; x != nil {
			// The detector's row wins; the events add what it lacks.
			x.requests, x.principals = max(x.requests, requests), max(x.principals, principals)
			if first.Before(x.first) {
				x.first = first
			}
			if last.After(x.last) {
				x.last = last
			}
			return
		}
		found[k] = &row{api, status, source, summary, reports, requests, principals, first.UTC(), last.UTC()}
	}
	// 1. The detector.
	b := &sqlBuilder{}
	b.add(`SELECT api, if(has(features, 'deprecated_operation'), 'zombie', 'shadow') AS inv_status,
    uniqExact(anomaly_id) AS reports, min(time) AS first_seen, max(time) AS last_seen, argMax(summary, time) AS summary
FROM `+q.table("anomalies")+` WHERE detector = ?`, inventoryDetector)
	b.timeRange("date", "time", r.from, r.to)
	b.add(" GROUP BY api, inv_status")
	if err := q.scan(ctx, b, func(scan func(...any) error) error {
		var api, status, summary string
		var reports uint64
		var first, last time.Time
		if err := scan(&api, &status, &reports, &first, &last, &summary); err != nil {
			return err
		}
		add(api, status, "detector", summary, reports, 0, 0, first, last)
		return nil
	}); err != nil {
		return nil, err
	}
	// 2. Requests refused as undeclared, and (with a declared list)
	// requests served on any other API.
	b = &sqlBuilder{}
	b.add(`SELECT api, multiIf(check_name = 'schema' AND startsWith(reason, 'undeclared operation'), 'undeclared', 'shadow') AS inv_status,
    count() AS requests, uniq(principal) AS principals, min(time) AS first_seen, max(time) AS last_seen, any(reason) AS summary
FROM ` + q.table("events") + ` WHERE 1`)
	b.timeRange("date", "time", r.from, r.to)
	b.add(" AND ((check_name = 'schema' AND startsWith(reason, 'undeclared operation'))")
	if len(m.Declared) > 0 {
		b.add(" OR (")
		b.inList("api", "NOT IN", m.Declared).add(" AND decision = 'allow' AND status >= 200 AND status < 400)")
	}
	b.add(") GROUP BY api, inv_status")
	if err := q.scan(ctx, b, func(scan func(...any) error) error {
		var api, status, summary string
		var requests, principals uint64
		var first, last time.Time
		if err := scan(&api, &status, &requests, &principals, &first, &last, &summary); err != nil {
			return err
		}
		source := "events"
		if status == StatusUndeclared {
			source = "schema"
		} else {
			summary = ""
		}
		add(api, status, source, summary, 0, requests, principals, first, last)
		return nil
	}); err != nil {
		return nil, err
	}
	// 3. Traffic of the detector's APIs, which the events above lack.
	var apis []string
	for k, x := range found {
		if x.source == "detector" {
			apis = append(apis, k[0])
		}
	}
	if len(apis) > 0 {
		b = &sqlBuilder{}
		b.add("SELECT api, count() AS requests, uniq(principal) AS principals FROM "+q.table("events")+" WHERE 1").in("api", apis)
		b.timeRange("date", "time", r.from, r.to)
		b.add(" AND decision = 'allow' AND status >= 200 AND status < 400 GROUP BY api")
		if err := q.scan(ctx, b, func(scan func(...any) error) error {
			var api string
			var requests, principals uint64
			if err := scan(&api, &requests, &principals); err != nil {
				return err
			}
			for _, st := range []string{StatusShadow, StatusZombie} {
				if x := found[[2]string{api, st}]; x != nil && x.source == "detector" {
					x.requests, x.principals = requests, principals
				}
			}
			return nil
		}); err != nil {
			return nil, err
		}
	}
	rows := make([]*row, 0, len(found))
	for _, x := range found {
		if m.Status == InventoryAll || m.Status == x.status {
			rows = append(rows, x)
		}
	}
	sort.Slice(rows, func(i, j int) bool {
		a, b := rows[i], rows[j]
		if a.requests != b.requests {
			return a.requests > b.requests
		}
		if a.api != b.api {
			return a.api < b.api
		}
		return a.status < b.status
	})
	f := data.NewFrame("inventory",
		data.NewField("api", nil, []string{}), data.NewField("status", nil, []string{}), data.NewField("source", nil, []string{}),
		data.NewField("reports", nil, []uint64{}), data.NewField("requests", nil, []uint64{}), data.NewField("principals", nil, []uint64{}),
		data.NewField("first_seen", nil, []time.Time{}), data.NewField("last_seen", nil, []time.Time{}), data.NewField("summary", nil, []string{}))
	for _, x := range rows {
		f.AppendRow(x.api, x.status, x.source, x.reports, x.requests, x.principals, x.first, x.last, x.summary)
	}
	return data.Frames{tableFrame(f)}, nil
}

// scan runs a query and calls each for every row with the row's Scan.
func (q *Queries) scan(ctx context.Context, b *sqlBuilder, each func(scan func(...any) error) error) error {
	rows, err := q.conn.Query(ctx, b.String(), b.args...)
	if err != nil {
		return fmt.Errorf("querying ClickHouse: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		if err := each(rows.Scan); err != nil {
			return fmt.Errorf("reading ClickHouse rows: %w", err)
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("reading ClickHouse rows: %w", err)
	}
	return nil
}
