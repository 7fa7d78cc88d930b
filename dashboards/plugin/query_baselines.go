package plugin

import (
	"context"
	"fmt"
	"math"
	"sort"
	"strings"
	"time"

	"github.com/grafana/grafana-plugin-sdk-go/data"
)

// Metrics of the baselines frame that come from the per-minute rollup,
// compared with a reference period before the range.
const (
	BaselineRate        = "rate_per_s"
	BaselineVolume      = "requests"
	BaselineServerError = "server_error_ratio"
	BaselineClientError = "client_error_ratio"
	BaselineP50         = "latency_p50_ms"
	BaselineP99         = "latency_p99_ms"
)

// baselineRow is one row of the baselines frame.
type baselineRow struct {
	api, metric, source        string
	observed, expected, spread *float64
	samples, principals        uint64
}

// baselines answers QueryTypeBaselines with one frame, "baselines", a row
// per API and metric: api, metric, source, observed, expected, spread,
// ratio (observed / expected), samples and principals.
//
// Two sources. The rollup gives each API's rate, volume, error ratios and
// latency quantiles over the range (observed) and over the
// referenceHours before it (expected; the volume scaled to the range's
// length); source "reference_<N>h". Latency over more than 6 hours is
// read from every k-th minute (rollupStats). The detectors' baselines (the
// baselines table) give, per API and feature, what the detector
// considered normal for one principal at its last snapshot in the range,
// summed over partitions by samples: expected is the centre (median),
// spread the scaled MAD, and observed is the median principal's value
// over the feature's window ending at the range's end, counted from the
// events (requests_<w>, response_kib_<w>, distinct_objects_<w>); source
// is the detector.
func (q *Queries) baselines(ctx context.Context, r *queryRequest) (data.Frames, error) {
	var m BaselinesQuery
	if err := decodeModel(r, &m); err != nil {
		return nil, err
	}
	if err := m.validate(); err != nil {
		return nil, err
	}
	span := float64(r.to - r.from + 1)
	ref := int64(m.ReferenceHours) * 3600
	obs, err := q.rollupStats(ctx, r.from, r.to, m.APIs)
	if err != nil {
		return nil, err
	}
	exp, err := q.rollupStats(ctx, r.from-ref, r.from-1, m.APIs)
	if err != nil {
		return nil, err
	}
	var out []baselineRow
	source := fmt.Sprintf("reference_%dh", m.ReferenceHours)
	apis := map[string]bool{}
	for api := range obs {
		apis[api] = true
	}
	for api := range exp {
		apis[api] = true
	}
	for api := range apis {
		o, e := obs[api], exp[api]
		var samples uint64 // the reference's requests
		if e != nil {
			samples = e.requests
		}
		for _, metric := range []string{BaselineRate, BaselineVolume, BaselineServerError, BaselineClientError, BaselineP50, BaselineP99} {
			out = append(out, baselineRow{api: api, metric: metric, source: source,
				observed: o.metric(metric, span, span), expected: e.metric(metric, float64(ref), span),
				samples: samples})
		}
	}
	det, err := q.detectorBaselines(ctx, r, m.APIs)
	if err != nil {
		return nil, err
	}
	out = append(out, det...)
	sort.SliceStable(out, func(i, j int) bool { return out[i].api < out[j].api })
	f := data.NewFrame("baselines",
		data.NewField("api", nil, []string{}), data.NewField("metric", nil, []string{}), data.NewField("source", nil, []string{}),
		data.NewField("observed", nil, []*float64{}), data.NewField("expected", nil, []*float64{}), data.NewField("spread", nil, []*float64{}),
		data.NewField("ratio", nil, []*float64{}), data.NewField("samples", nil, []uint64{}), data.NewField("principals", nil, []uint64{}))
	for _, x := range out {
		var ratio *float64
		if x.observed != nil && x.expected != nil && *x.expected != 0 {
			v := *x.observed / *x.expected
			ratio = &v
		}
		f.AppendRow(x.api, x.metric, x.source, x.observed, x.expected, x.spread, ratio, x.samples, x.principals)
	}
	return data.Frames{tableFrame(f)}, nil
}

// apiRollup is one API's aggregates over a period.
type apiRollup struct {
	requests, serverErrors, clientErrors uint64
	quantiles                            []float64 // duration µs at 0.5, 0.9, 0.99
}

// metric returns one baselines metric of the period of length secs,
// volume scaled to span seconds; nil where there is nothing to measure.
func (x *apiRollup) metric(name string, secs, span float64) *float64 {
	var req uint64
	if x != nil {
		req = x.requests
	}
	var v float64
	switch name {
	case BaselineRate:
		v = float64(req) / secs
	case BaselineVolume:
		v = float64(req) * span / secs
	default:
		if req == 0 {
			return nil // no requests: no ratio or latency to measure
		}
		switch name {
		case BaselineServerError:
			v = float64(x.serverErrors) / float64(req)
		case BaselineClientError:
			v = float64(x.clientErrors) / float64(req)
		case BaselineP50, BaselineP99:
			i := map[string]int{BaselineP50: 0, BaselineP99: 2}[name]
			if i >= len(x.quantiles) || math.IsNaN(x.quantiles[i]) {
				return nil
			}
			v = x.quantiles[i] / 1000
		}
	}
	return &v
}

// latencySampleMinutes bounds the minutes whose latency quantile states
// rollupStats merges: merging them costs about as much as a quantile over
// every event (some 200 ms a day of 3 million events on two cores), so a
// longer period takes every k-th minute.
const latencySampleMinutes = 360

// rollupStats reads each API's aggregates between from and to (Unix
// seconds, inclusive, at minute granularity) from api_minute: requests
// and errors from every minute, latency quantiles from a systematic
// sample of at most latencySampleMinutes minutes.
func (q *Queries) rollupStats(ctx context.Context, from, to int64, apis []string) (map[string]*apiRollup, error) {
	from = from / 60 * 60
	every := (to-from)/60/latencySampleMinutes + 1
	b := &sqlBuilder{}
	fmt.Fprintf(b, `SELECT api, countMerge(requests) AS requests, sumMerge(server_errors) AS server_errors,
    sumMerge(client_errors) AS client_errors,
    quantilesMergeIf(0.5, 0.9, 0.99)(duration_us, intDiv(toUInt32(minute), 60) %% %d = 0) AS q
FROM %s WHERE 1`, every, q.table("api_minute"))
	b.timeRange("", "minute", from, to).in("api", apis)
	b.add(" GROUP BY api")
	out := map[string]*apiRollup{}
	err := q.scan(ctx, b, func(scan func(...any) error) error {
		var api string
		x := &apiRollup{}
		if err := scan(&api, &x.requests, &x.serverErrors, &x.clientErrors, &x.quantiles); err != nil {
			return err
		}
		out[api] = x
		return nil
	})
	return out, err
}

// Feature prefixes of the detectors' baselines whose observed value the
// events give; the rest of a feature's name is its window ("1m", "10m").
var observedFeatures = map[string]string{
	"requests_":         "c",
	"response_kib_":     "kib",
	"distinct_objects_": "objs",
}

// detectorBaselines returns the rows of the detectors' baselines.
func (q *Queries) detectorBaselines(ctx context.Context, r *queryRequest, apis []string) ([]baselineRow, error) {
	b := &sqlBuilder{}
	b.add(`SELECT api, detector, feature,
    if(sum(s) > 0, sum(c * s) / sum(s), avg(c)) AS centre, if(sum(s) > 0, sum(sp * s) / sum(s), avg(sp)) AS spread,
    sum(s) AS samples, sum(p) AS principals
FROM (SELECT api, detector, feature, stream_partition, argMax(centre, time) AS c, argMax(spread, time) AS sp,
        toUInt64(argMax(samples, time)) AS s, toUInt64(argMax(principals, time)) AS p
    FROM ` + q.table("baselines") + ` WHERE 1`)
	b.timeRange("date", "time", r.from, r.to).in("api", apis)
	b.add(` GROUP BY api, detector, feature, stream_partition)
GROUP BY api, detector, feature ORDER BY api, detector, feature`)
	var out []baselineRow
	windows := map[time.Duration][]int{} // window → rows whose observed it gives
	err := q.scan(ctx, b, func(scan func(...any) error) error {
		var x baselineRow
		var centre, spread float64
		if err := scan(&x.api, &x.source, &x.metric, &centre, &spread, &x.samples, &x.principals); err != nil {
			return err
		}
		x.expected, x.spread = &centre, &spread
		for prefix := range observedFeatures {
			if w, ok := strings.CutPrefix(x.metric, prefix); ok {
				if d, err := time.ParseDuration(w); err == nil && d >= time.Second {
					windows[d] = append(windows[d], len(out))
				}
			}
		}
		out = append(out, x)
		return nil
	})
	if err != nil {
		return nil, err
	}
	for w, idx := range windows {
		var frameNames []string
		for _, i := range idx {
			frameNames = append(frameNames, out[i].api)
		}
		vals, err := q.principalMedians(ctx, r.to-int64(w/time.Second)+1, r.to, frameNames)
		if err != nil {
			return nil, err
		}
		for _, i := range idx {
			for prefix, col := range observedFeatures {
				if strings.HasPrefix(out[i].metric, prefix) {
					v := vals[out[i].api][col]
					out[i].observed = &v
				}
			}
		}
	}
	return out, nil
}

// principalMedians returns, per API, the median principal's requests
// ("c"), response KiB ("kib") and distinct paths ("objs") between from
// and to; 0 for an API without requests.
func (q *Queries) principalMedians(ctx context.Context, from, to int64, apis []string) (map[string]map[string]float64, error) {
	b := &sqlBuilder{}
	b.add(`SELECT api, quantileExact(0.5)(c) AS c, quantileExact(0.5)(kib) AS kib, quantileExact(0.5)(objs) AS objs
FROM (SELECT api, principal_kind, principal, toFloat64(count()) AS c, sum(response_bytes) / 1024 AS kib, toFloat64(uniqExact(path)) AS objs
    FROM ` + q.table("events"))
	// PREWHERE: a window is a small share of the day's rows.
	fmt.Fprintf(b, " PREWHERE time BETWEEN toDateTime(%d) AND toDateTime(%d) WHERE 1", from, to)
	b.in("api", apis)
	b.timeRange("date", "time", from, to)
	b.add(" GROUP BY api, principal_kind, principal) GROUP BY api")
	out := map[string]map[string]float64{}
	for _, api := range apis {
		out[api] = map[string]float64{"c": 0, "kib": 0, "objs": 0}
	}
	err := q.scan(ctx, b, func(scan func(...any) error) error {
		var api string
		var c, kib, objs float64
		if err := scan(&api, &c, &kib, &objs); err != nil {
			return err
		}
		out[api] = map[string]float64{"c": c, "kib": kib, "objs": objs}
		return nil
	})
	return out, err
}
