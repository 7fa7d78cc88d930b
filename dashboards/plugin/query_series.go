package plugin

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/grafana/grafana-plugin-sdk-go/data"
)

// requestSeries answers QueryTypeSeries. Buckets are a whole number of
// minutes wide read the per-minute rollup (api_minute), which is far
// smaller than the events; narrower ones count the events themselves.
// A bucket starts at a multiple of its width in Unix time:
// intDiv(toUInt32(time), width) * width.
func (q *Queries) requestSeries(ctx context.Context, r *queryRequest) (data.Frames, error) {
	var m SeriesQuery
	if err := decodeModel(r, &m); err != nil {
		return nil, err
	}
	if err := m.validate(); err != nil {
		return nil, err
	}
	var labels []string
	switch m.GroupBy {
	case GroupByAPIDecision:
		labels = []string{"api", "decision"}
	case GroupByAPI:
		labels = []string{"api"}
	case GroupByDecision:
		labels = []string{"decision"}
	}
	b := &sqlBuilder{}
	if r.step%60 == 0 {
		metric := map[string]string{
			MetricRequests:     "countMerge(requests)",
			MetricServerErrors: "sumMerge(server_errors)",
			MetricClientErrors: "sumMerge(client_errors)",
		}[m.Metric]
		fmt.Fprintf(b, "SELECT intDiv(toUInt32(minute), %d) * %[1]d AS t%s, %s AS v FROM %s WHERE 1",
			r.step, labelColumns(labels), metric, q.table("api_minute"))
		b.timeRange("", "minute", r.from/60*60, r.to)
	} else {
		metric := map[string]string{
			MetricRequests:     "count()",
			MetricServerErrors: "countIf(status >= 500)",
			MetricClientErrors: "countIf(status >= 400 AND status < 500)",
		}[m.Metric]
		fmt.Fprintf(b, "SELECT intDiv(toUInt32(time), %d) * %[1]d AS t%s, %s AS v FROM %s WHERE 1",
			r.step, labelColumns(labels), metric, q.table("events"))
		b.timeRange("date", "time", r.from, r.to)
	}
	b.in("api", m.APIs).in("toString(decision)", m.Decisions)
	writeGroupBy(b, labels)
	return q.series(ctx, r, b, m.Metric, labels, m.Limit)
}

// labelColumns is the SELECT list of the label columns, each after a
// comma; decision is read as its name.
func labelColumns(labels []string) string {
	var s strings.Builder
	for _, l := range labels {
		if l == "decision" {
			s.WriteString(", toString(decision) AS decision")
		} else {
			s.WriteString(", " + l)
		}
	}
	return s.String()
}

func writeGroupBy(b *sqlBuilder, labels []string) {
	b.WriteString(" GROUP BY t")
	for _, l := range labels {
		b.WriteString(", " + l)
	}
	b.WriteString(" ORDER BY t")
}

// series runs a query whose columns are t (the bucket's Unix start,
// UInt32), the label columns (strings) and v (UInt64), and returns one
// frame per combination of labels (timeseries-multi): a time field and a
// value field named name with the labels, every bucket of the range
// present (0 where no row is), in the order the combinations first
// appear. With most > 0 only the most series with the largest totals are
// kept, and the first frame's notice says how many there were.
func (q *Queries) series(ctx context.Context, r *queryRequest, b *sqlBuilder, name string, labels []string, most int) (data.Frames, error) {
	rows, err := q.conn.Query(ctx, b.String(), b.args...)
	if err != nil {
		return nil, fmt.Errorf("querying ClickHouse: %w", err)
	}
	defer rows.Close()
	first := r.from / r.step * r.step
	n := int((r.to/r.step*r.step-first)/r.step) + 1
	type series struct {
		labels data.Labels
		vals   []uint64
	}
	var order []*series
	byKey := map[string]*series{}
	var (
		t    uint64
		v    uint64
		lv   = make([]string, len(labels))
		dest = make([]any, 0, len(labels)+2)
	)
	dest = append(dest, &t)
	for i := range lv {
		dest = append(dest, &lv[i])
	}
	dest = append(dest, &v)
	for rows.Next() {
		if err := rows.Scan(dest...); err != nil {
			return nil, fmt.Errorf("reading ClickHouse rows: %w", err)
		}
		key := strings.Join(lv, "\x00")
		s := byKey[key]
		if s == nil {
			s = &series{labels: data.Labels{}, vals: make([]uint64, n)}
			for i, l := range labels {
				s.labels[l] = lv[i]
			}
			byKey[key] = s
			order = append(order, s)
		}
		if i := (int64(t) - first) / r.step; i >= 0 && i < int64(n) {
			s.vals[i] += v
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("reading ClickHouse rows: %w", err)
	}
	times := make([]time.Time, n)
	for i := range times {
		times[i] = time.Unix(first+int64(i)*r.step, 0).UTC()
	}
	var notice []data.Notice
	if most > 0 && len(order) > most {
		totals := make(map[*series]uint64, len(order))
		for _, s := range order {
			for _, v := range s.vals {
				totals[s] += v
			}
		}
		kept := slices.Clone(order)
		slices.SortStableFunc(kept, func(a, b *series) int { return cmp.Compare(totals[b], totals[a]) })
		kept = kept[:most]
		order = slices.DeleteFunc(order, func(s *series) bool { return !slices.Contains(kept, s) })
		notice = []data.Notice{{Severity: data.NoticeSeverityWarning,
			Text: fmt.Sprintf("showing the %d largest of %d series: raise limit or filter by API or decision", most, len(totals))}}
	}
	frames := make(data.Frames, 0, len(order))
	for _, s := range order {
		vf := data.NewField(name, s.labels, s.vals)
		if len(labels) > 0 {
			parts := make([]string, len(labels))
			for i, l := range labels {
				parts[i] = s.labels[l]
			}
			vf.SetConfig(&data.FieldConfig{DisplayNameFromDS: strings.Join(parts, " ")})
		}
		f := data.NewFrame(name, data.NewField("time", nil, times), vf)
		f.SetMeta(&data.FrameMeta{Type: data.FrameTypeTimeSeriesMulti, TypeVersion: data.FrameTypeVersion{0, 1},
			Custom: map[string]any{"intervalSeconds": r.step}})
		if len(frames) == 0 {
			f.Meta.Notices = notice
		}
		frames = append(frames, f)
	}
	return frames, nil
}
