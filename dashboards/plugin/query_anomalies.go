package plugin

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/grafana/grafana-plugin-sdk-go/data"

	"github.com/apiguard/apiguard/event"
)

// severityName is the SQL that names a severity rank (severityRank) as
// stored, for aggregates over the enum.
const severityName = "transform(%s, [0, 1, 2, 3, 4], ['unspecified', 'low', 'medium', 'high', 'critical'], 'unspecified')"

// severityRank is the SQL of a severity's rank, 0 (unspecified) to 4
// (critical). 18.16 converts an enum to a number only through its name.
const severityRank = "indexOf(['low', 'medium', 'high', 'critical'], toString(severity))"

// topPrincipals answers QueryTypeTopPrincipals from the anomalies table:
// one row per principal (kind, principal, risk, max_score, anomalies,
// severity, detectors, apis, first_seen, last_seen). Anomalies about an
// API itself (kind api) are not principals and are left out.
func (q *Queries) topPrincipals(ctx context.Context, r *queryRequest) (data.Frames, error) {
	var m TopPrincipalsQuery
	if err := decodeModel(r, &m); err != nil {
		return nil, err
	}
	if err := m.validate(); err != nil {
		return nil, err
	}
	b := &sqlBuilder{}
	b.add(`SELECT principal_kind AS kind, principal, max(risk) AS risk, max(score) AS max_score, count() AS anomalies,
    ` + fmt.Sprintf(severityName, "max("+severityRank+")") + ` AS severity,
    arrayStringConcat(arraySort(groupUniqArray(detector)), ', ') AS detectors,
    arrayStringConcat(arraySort(groupUniqArray(api)), ', ') AS apis,
    min(time) AS first_seen, max(time) AS last_seen
FROM ` + q.table("anomalies") + ` WHERE principal_kind != 'api'`)
	b.timeRange("date", "time", r.from, r.to).in("api", m.APIs).in("detector", m.Detectors)
	b.add(" GROUP BY kind, principal")
	if m.OrderBy == ByAnomalies {
		b.add(" ORDER BY anomalies DESC, risk DESC, max_score DESC, kind, principal")
	} else {
		b.add(" ORDER BY risk DESC, max_score DESC, anomalies DESC, kind, principal")
	}
	fmt.Fprintf(b, " LIMIT %d", m.Limit)
	f, err := q.readFrame(ctx, "top_principals", b)
	if err != nil {
		return nil, err
	}
	return data.Frames{f}, nil
}

// anomalyColumns are the anomaly fields of the list and the detail, in
// frame order, read before the deviation arrays.
const anomalyColumns = `time, anomaly_id, detector, api, principal_kind, principal, score, risk,
    toString(severity) AS severity, summary, features, observed, expected, deviation`

// anomalies answers QueryTypeAnomalies: newest first, one row per
// anomaly with its explanation (see anomalyFrame).
func (q *Queries) anomalies(ctx context.Context, r *queryRequest) (data.Frames, error) {
	var m AnomaliesQuery
	if err := decodeModel(r, &m); err != nil {
		return nil, err
	}
	p, err := m.validate()
	if err != nil {
		return nil, err
	}
	b := &sqlBuilder{}
	b.add("SELECT " + anomalyColumns + " FROM " + q.table("anomalies") + " WHERE 1")
	b.timeRange("date", "time", r.from, r.to).in("api", m.APIs).in("detector", m.Detectors)
	if m.MinSeverity != "" {
		fmt.Fprintf(b, " AND %s >= %d", severityRank, slices.Index(severityNames, m.MinSeverity))
	}
	if m.MinScore > 0 {
		b.add(" AND score >= " + strconv.FormatFloat(m.MinScore, 'g', -1, 64))
	}
	if p != nil {
		b.add(" AND principal_kind = ? AND principal = ?", p.kind, p.value)
	}
	// LIMIT 1 BY: a row the writer stored twice shows once before
	// ReplacingMergeTree merges it away.
	fmt.Fprintf(b, " ORDER BY time DESC, anomaly_id LIMIT 1 BY anomaly_id LIMIT %d", m.Limit)
	f, _, err := q.anomalyFrame(ctx, "anomalies", b)
	if err != nil {
		return nil, err
	}
	return data.Frames{f}, nil
}

// anomalyDeviation is one deviating feature of an anomaly, as its JSON field
// holds it.
type anomalyDeviation struct {
	Feature   string  `json:"feature"`
	Observed  float64 `json:"observed"`
	Expected  float64 `json:"expected"`
	Deviation float64 `json:"deviation"`
}

// anomalyFrame runs a query selecting anomalyColumns and returns a frame
// of time, anomaly_id, detector, api, principal_kind, principal, score,
// risk, severity, summary, explanation (the deviations in words:
// "requests_1m 400 (normal 10, +39σ)") and deviations (JSON: feature,
// observed, expected, deviation), with the deviations of each row.
func (q *Queries) anomalyFrame(ctx context.Context, name string, b *sqlBuilder) (*data.Frame, [][]anomalyDeviation, error) {
	rows, err := q.conn.Query(ctx, b.String(), b.args...)
	if err != nil {
		return nil, nil, fmt.Errorf("querying ClickHouse: %w", err)
	}
	defer rows.Close()
	var (
		times                                           []time.Time
		ids, dets, apis, kinds, prins, sevs, sums, expl []string
		scores, risks                                   []float64
		devJSON                                         []json.RawMessage
		all                                             [][]anomalyDeviation
	)
	for rows.Next() {
		var (
			t                                   time.Time
			id, det, api, kind, prin, sev, summ string
			score, risk                         float64
			feats                               []string
			obs, exp, dev                       []float64
		)
		if err := rows.Scan(&t, &id, &det, &api, &kind, &prin, &score, &risk, &sev, &summ, &feats, &obs, &exp, &dev); err != nil {
			return nil, nil, fmt.Errorf("reading ClickHouse rows: %w", err)
		}
		devs := make([]anomalyDeviation, len(feats))
		words := make([]string, len(feats))
		for i, ft := range feats {
			d := anomalyDeviation{Feature: ft, Observed: floatAt(obs, i), Expected: floatAt(exp, i), Deviation: floatAt(dev, i)}
			devs[i] = d
			words[i] = fmt.Sprintf("%s %s (normal %s", ft, briefNum(d.Observed), briefNum(d.Expected))
			if d.Deviation != 0 {
				words[i] += fmt.Sprintf(", %+.1fσ", d.Deviation)
			}
			words[i] += ")"
		}
		js, err := json.Marshal(devs)
		if err != nil {
			return nil, nil, fmt.Errorf("encoding deviations: %w", err)
		}
		times, ids, dets, apis = append(times, t.UTC()), append(ids, id), append(dets, det), append(apis, api)
		kinds, prins, scores, risks = append(kinds, kind), append(prins, prin), append(scores, score), append(risks, risk)
		sevs, sums, expl = append(sevs, sev), append(sums, summ), append(expl, strings.Join(words, "; "))
		devJSON, all = append(devJSON, js), append(all, devs)
	}
	if err := rows.Err(); err != nil {
		return nil, nil, fmt.Errorf("reading ClickHouse rows: %w", err)
	}
	if times == nil { // typed empty fields, not nil slices
		times, devJSON = []time.Time{}, []json.RawMessage{}
		ids, dets, apis, kinds, prins, sevs, sums, expl = []string{}, []string{}, []string{}, []string{}, []string{}, []string{}, []string{}, []string{}
		scores, risks = []float64{}, []float64{}
	}
	f := data.NewFrame(name,
		data.NewField("time", nil, times),
		data.NewField("anomaly_id", nil, ids),
		data.NewField("detector", nil, dets),
		data.NewField("api", nil, apis),
		data.NewField("principal_kind", nil, kinds),
		data.NewField("principal", nil, prins),
		data.NewField("score", nil, scores),
		data.NewField("risk", nil, risks),
		data.NewField("severity", nil, sevs),
		data.NewField("summary", nil, sums),
		data.NewField("explanation", nil, expl),
		data.NewField("deviations", nil, devJSON),
	)
	return tableFrame(f), all, nil
}

func floatAt(v []float64, i int) float64 {
	if i < len(v) {
		return v[i]
	}
	return 0
}

// briefNum writes a value briefly: integers as such, others to 3 significant
// digits.
func briefNum(v float64) string {
	if v == float64(int64(v)) && v < 1e15 && v > -1e15 {
		return strconv.FormatInt(int64(v), 10)
	}
	return strconv.FormatFloat(v, 'g', 3, 64)
}

// anomalyDetail answers QueryTypeAnomalyDetail with three frames: "anomaly" (one row,
// as in the list), "deviations" (feature, observed, expected, deviation)
// and "events" (the triggering events, oldest first). The anomaly's id
// carries its time (event.IDTime; anomaly ids are made from it), which
// bounds the partitions read. An unknown id is a 404.
func (q *Queries) anomalyDetail(ctx context.Context, r *queryRequest) (data.Frames, error) {
	var m AnomalyDetailQuery
	if err := decodeModel(r, &m); err != nil {
		return nil, err
	}
	if err := m.validate(); err != nil {
		return nil, err
	}
	b := &sqlBuilder{}
	b.add("SELECT "+anomalyColumns+" FROM "+q.table("anomalies")+" WHERE anomaly_id = ?", m.AnomalyID)
	if t, ok := event.IDTime(m.AnomalyID); ok {
		fmt.Fprintf(b, " AND date = toDate(toDateTime(%d))", t.Unix())
	}
	b.add(" LIMIT 1")
	af, devs, err := q.anomalyFrame(ctx, "anomaly", b)
	if err != nil {
		return nil, err
	}
	if af.Rows() == 0 {
		return nil, notFoundf("anomaly %q not found", m.AnomalyID)
	}
	df := data.NewFrame("deviations",
		data.NewField("feature", nil, []string{}), data.NewField("observed", nil, []float64{}),
		data.NewField("expected", nil, []float64{}), data.NewField("deviation", nil, []float64{}))
	for _, d := range devs[0] {
		df.AppendRow(d.Feature, d.Observed, d.Expected, d.Deviation)
	}
	var ids []string
	if err := q.conn.QueryRow(ctx, "SELECT event_ids FROM "+q.table("anomalies")+" WHERE anomaly_id = ? LIMIT 1", m.AnomalyID).Scan(&ids); err != nil {
		return nil, fmt.Errorf("querying ClickHouse for the anomaly's events: %w", err)
	}
	ef, err := q.eventsByID(ctx, ids, m.EventLimit, af.Fields[0].At(0).(time.Time))
	if err != nil {
		return nil, err
	}
	return data.Frames{af, tableFrame(df), ef}, nil
}

// eventColumns are the columns of the events frames.
const eventColumns = `time, event_id, api, method, host, path, status, toString(decision) AS decision, check_name, reason,
    toString(auth) AS auth, principal_kind, principal, client_ip, user_agent, tls_fingerprint, header_fingerprint,
    duration_us, upstream_us, request_bytes, response_bytes, proxy`

// eventLookback is how long before its anomaly a triggering event may
// be: the longest detector window with a wide margin. It bounds the days
// read, not the events returned.
const eventLookback = 24 * time.Hour

// eventsByID returns the "events" frame of up to most of ids, oldest
// first, reading only the days from eventLookback before the anomaly at
// until an hour after it. (An event id's time, event.IDTime, is only an
// upper bound of the event's time: a source gives ids in order even to
// events whose times are not.)
func (q *Queries) eventsByID(ctx context.Context, ids []string, most int, at time.Time) (*data.Frame, error) {
	if len(ids) > most {
		ids = ids[:most]
	}
	b := &sqlBuilder{}
	if len(ids) == 0 {
		ids = []string{""} // no event has an empty id: an empty frame of the right fields
	}
	// PREWHERE: the other columns are read only for the rows found, which
	// 18.16 does not arrange by itself here.
	b.add("SELECT " + eventColumns + " FROM " + q.table("events") + " PREWHERE ")
	b.inList("event_id", "IN", ids)
	fmt.Fprintf(b, " WHERE date BETWEEN toDate(toDateTime(%d)) AND toDate(toDateTime(%d))",
		at.Add(-eventLookback).Unix(), at.Add(time.Hour).Unix())
	fmt.Fprintf(b, " ORDER BY time, event_id LIMIT 1 BY event_id LIMIT %d", most)
	return q.readFrame(ctx, "events", b)
}
