package detectors

import (
	"cmp"
	"fmt"
	"math"
	"time"

	"github.com/apiguard/apiguard/event"
)

// HealthName names the error-rate and latency detector's anomalies.
const HealthName = "error_latency"

// HealthConfig configures the error-rate and latency detector.
type HealthConfig struct {
	// MinRequests is the fewest requests in a minute for that minute of an
	// API to be scored.
	MinRequests int `yaml:"min_requests"`
	// Threshold is the robust z-score at which a minute's latency or
	// request count is anomalous.
	Threshold float64 `yaml:"threshold"`
	// TimeOfDayDays is how many days of history an hour of the day needs
	// before request counts are compared with that hour's profile rather
	// than the last two hours.
	TimeOfDayDays int `yaml:"time_of_day_days"`
}

func (c HealthConfig) validate() error {
	if c.MinRequests < 1 {
		return fmt.Errorf("detectors.health.min_requests: %d, want at least 1", c.MinRequests)
	}
	if c.TimeOfDayDays < 1 {
		return fmt.Errorf("detectors.health.time_of_day_days: %d, want at least 1", c.TimeOfDayDays)
	}
	return positive("health.threshold", c.Threshold)
}

// healthState is one API's current minute and its history: per-minute
// request totals and mean log latency (robust baselines of the last
// recentMinutes), the 5xx share, and a time-of-day profile of requests per
// minute for each hour.
type healthState struct {
	Minute  int64 // index of the short window (minute) being counted
	Req     uint32
	Err     uint32
	LogLat  float64 // sum of log(latency ms)
	LatN    uint32
	ErrID   string // the minute's last 5xx event
	SlowID  string // the minute's slowest event
	Slowest float64
	LastID  string
	// TopKey, TopCount and TopID are the minute's majority-vote principal
	// (Boyer–Moore) and its last event: a flood's likely source.
	TopKey   uint64
	TopCount int32
	TopID    string

	Totals robust
	Lat    robust
	Errors ratio
	ToD    [24]todCell
}

// todCell is the mean requests per minute in one hour of the day.
type todCell struct {
	Sum     float64
	Minutes uint32
}

const recentMinutes = 120

// health finds an API's minutes whose 5xx share, mean latency or request
// count is far from its own history: an upstream failing, a slow query
// being abused, a flood. The request count is compared with the same hour
// of previous days once TimeOfDayDays of them exist (so the morning rise is
// not a flood), with the last two hours before that. Its anomalies are
// about the API (principal kind "api"); each names the minute's telling
// event.
type health struct{ cfg HealthConfig }

func (*health) name() string { return HealthName }

func (d *health) observe(e *Engine, x *ctx, out []finding) []finding {
	h := &x.api.Health
	if h.Totals.Cap == 0 {
		h.Totals = newRobust(recentMinutes)
		h.Lat = newRobust(recentMinutes)
	}
	minute := x.t / e.clk.len[winShort]
	if h.Minute == 0 {
		h.Minute = minute
	}
	if minute > h.Minute {
		out = d.close(e, x, h, out)
		// Quiet minutes are part of the baseline, but not the minutes of a
		// gap in the partition's events (gap.go): those were not seen.
		for m := max(h.Minute+1, e.st.Resume[winShort]/e.clk.len[winShort]+1); m < minute && m <= h.Minute+10; m++ {
			h.Totals.add(0, uint32(m))
		}
		*h = healthState{Minute: minute, Totals: h.Totals, Lat: h.Lat, Errors: h.Errors, ToD: h.ToD}
	}
	h.Req++
	h.LastID = x.ev.Id
	switch {
	case h.TopKey == x.pkey:
		h.TopCount++
		h.TopID = x.ev.Id
	case h.TopCount == 0:
		h.TopKey, h.TopCount, h.TopID = x.pkey, 1, x.ev.Id
	default:
		h.TopCount--
	}
	if x.ev.Status >= 500 {
		h.Err++
		h.ErrID = x.ev.Id
	}
	lat := x.ev.UpstreamLatencyNanos
	if lat <= 0 {
		lat = x.ev.DurationNanos
	}
	if lat > 0 && x.allowed {
		ms := float64(lat) / 1e6
		h.LogLat += math.Log1p(ms)
		h.LatN++
		if ms > h.Slowest {
			h.Slowest, h.SlowID = ms, x.ev.Id
		}
	}
	return out
}

// close scores the finished minute, then learns it if it was normal.
func (d *health) close(e *Engine, x *ctx, h *healthState, out []finding) []finding {
	api := x.ev.Api
	n := len(out)
	hour := (h.Minute * e.clk.len[winShort] / int64(time.Hour)) % 24
	if int(h.Req) >= d.cfg.MinRequests {
		base := h.Errors.value(0.002)
		if p := binomialTail(int(h.Err), int(h.Req), base); h.Err > 0 && p <= e.cfg.MaxP {
			out = append(out, finding{p: p, kind: event.KindAPI, val: api, api: api, eventIDs: []string{h.ErrID},
				deviations: []*event.Deviation{{Feature: "error_ratio_1m", Observed: float64(h.Err) / float64(h.Req), Expected: base,
					Deviation: zBinomial(float64(h.Err), float64(h.Req), base)}},
				summary: fmt.Sprintf("%s answered %d of %d requests with 5xx in a minute; it usually fails %.2f%%", api, h.Err, h.Req, 100*base)})
		}
	}
	if int(h.LatN) >= d.cfg.MinRequests {
		mean := h.LogLat / float64(h.LatN)
		if median, mad, ok := e.warm(&h.Lat); ok {
			if z, _ := robustZ(mean, median, mad, 0.05); z >= d.cfg.Threshold {
				out = append(out, finding{p: normalTail(z), kind: event.KindAPI, val: api, api: api, eventIDs: []string{h.SlowID},
					deviations: []*event.Deviation{{Feature: "latency_ms_1m", Observed: math.Expm1(mean), Expected: math.Expm1(median), Deviation: z}},
					summary: fmt.Sprintf("%s took %.0f ms on average (geometric) in a minute; usually %.0f ms (%.1f robust σ); slowest %.0f ms",
						api, math.Expm1(mean), math.Expm1(median), z, h.Slowest)})
			}
		}
	}
	// Minute counts are small and bursty (one person's session is a
	// burst), so the spread is at least half the expectation and at least
	// 3: only a flood several times the usual volume stands out.
	req := float64(h.Req)
	expected, spread, ok := 0.0, 0.0, false
	if c := h.ToD[hour]; int64(c.Minutes)*e.clk.len[winShort] >= int64(d.cfg.TimeOfDayDays)*int64(time.Hour) {
		expected, ok = c.Sum/float64(c.Minutes), true
	} else if _, mad, warm := e.warm(&h.Totals); warm {
		expected, spread, ok = h.Totals.mean(), madScale*mad, true
	}
	spread = max(spread, math.Sqrt(expected), 0.5*expected, 3)
	if z := (req - expected) / spread; ok && req >= float64(d.cfg.MinRequests) && z >= d.cfg.Threshold {
		out = append(out, finding{p: normalTail(z), kind: event.KindAPI, val: api, api: api, eventIDs: []string{cmp.Or(h.TopID, h.LastID)},
			deviations: []*event.Deviation{{Feature: "requests_1m", Observed: req, Expected: expected, Deviation: z}},
			summary:    fmt.Sprintf("%s served %.0f requests in a minute; %.0f expected at %02d:00 (%.1f σ)", api, req, expected, hour, z)})
	}
	// A minute is learnt if it was normal and seen whole: not the engine's
	// first, nor one a gap cut short.
	if len(out) == n && h.Minute*e.clk.len[winShort] >= e.st.Resume[winShort] {
		h.Totals.add(req, uint32(h.Minute))
		if h.LatN > 0 {
			h.Lat.add(h.LogLat/float64(h.LatN), uint32(h.Minute))
		}
		h.Errors.addMany(float64(h.Err), req)
		h.ToD[hour].Sum += req
		h.ToD[hour].Minutes++
	}
	return out
}
