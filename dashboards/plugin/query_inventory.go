package plugin

import (
	"context"
	"fmt"
	"slices"
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
// status. Requests served come from the per-minute rollup (so
// first_seen and last_seen of a shadow API found from the events are
// whole minutes), principals from those APIs' events.
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
	// 2. Requests refused as undeclared: few rows, found by their check
	// first.
	b = &sqlBuilder{}
	b.add(`SELECT api, count() AS requests, uniq(principal) AS principals, min(time) AS first_seen, max(time) AS last_seen,
    any(reason) AS summary
FROM ` + q.table("events") + ` PREWHERE check_name = 'schema' WHERE startsWith(reason, 'undeclared operation')`)
	b.timeRange("date", "time", r.from, r.to)
	b.add(" GROUP BY api")
	if err := q.scan(ctx, b, func(scan func(...any) error) error {
		var api, summary string
		var requests, principals uint64
		var first, last time.Time
		if err := scan(&api, &requests, &principals, &first, &last, &summary); err != nil {
			return err
		}
		add(api, StatusUndeclared, "schema", summary, 0, requests, principals, first, last)
		return nil
	}); err != nil {
		return nil, err
	}
	// 3. With a declared list, every other API served; and the traffic of
	// the detector's APIs. Requests from the per-minute rollup (allowed,
	// answered without a 4xx or 5xx), principals from the events of
	// those APIs only (the primary key starts with the API).
	if len(m.Declared) > 0 {
		err := q.served(ctx, r, "NOT IN", m.Declared, func(api string, requests uint64, first, last time.Time) {
			add(api, StatusShadow, "events", "", 0, requests, 0, first, last)
		})
		if err != nil {
			return nil, err
		}
	}
	var apis []string
	for k, x := range found {
		if x.status != StatusUndeclared && !slices.Contains(apis, k[0]) {
			apis = append(apis, k[0])
		}
	}
	if len(apis) > 0 {
		err := q.served(ctx, r, "IN", apis, func(api string, requests uint64, _, _ time.Time) {
			for _, st := range []string{StatusShadow, StatusZombie} {
				if x := found[[2]string{api, st}]; x != nil && x.source == "detector" {
					x.requests = requests
				}
			}
		})
		if err != nil {
			return nil, err
		}
		b = &sqlBuilder{}
		b.add("SELECT api, uniq(principal) FROM "+q.table("events")+" WHERE 1").in("api", apis)
		b.timeRange("date", "time", r.from, r.to)
		b.add(" AND decision = 'allow' AND status < 400 GROUP BY api")
		err = q.scan(ctx, b, func(scan func(...any) error) error {
			var api string
			var principals uint64
			if err := scan(&api, &principals); err != nil {
				return err
			}
			for _, st := range []string{StatusShadow, StatusZombie} {
				if x := found[[2]string{api, st}]; x != nil {
					x.principals = principals
				}
			}
			return nil
		})
		if err != nil {
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

// served calls each for every API op (IN or NOT IN) apis with requests
// served in the range, from api_minute: the allowed requests without a
// 4xx or 5xx answer, and the first and last minute.
func (q *Queries) served(ctx context.Context, r *queryRequest, op string, apis []string,
	each func(api string, requests uint64, first, last time.Time)) error {
	b := &sqlBuilder{}
	b.add(`SELECT api, toUInt64(countMerge(requests) - sumMerge(server_errors) - sumMerge(client_errors)) AS served,
    min(minute) AS first_seen, max(minute) AS last_seen
FROM ` + q.table("api_minute") + ` WHERE decision = 'allow' AND `)
	b.inList("api", op, apis)
	b.timeRange("", "minute", r.from/60*60, r.to)
	b.add(" GROUP BY api HAVING served > 0")
	return q.scan(ctx, b, func(scan func(...any) error) error {
		var api string
		var requests uint64
		var first, last time.Time
		if err := scan(&api, &requests, &first, &last); err != nil {
			return err
		}
		each(api, requests, first, last)
		return nil
	})
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
