package detectors

import (
	"fmt"
	"time"

	"github.com/apiguard/apiguard/event"
)

// VolumetricName names the volumetric detector's anomalies.
const VolumetricName = "volumetric"

// VolumetricConfig configures the volumetric detector.
type VolumetricConfig struct {
	// Threshold is the robust z-score (robust standard deviations above
	// the API's median principal) at which a window is anomalous.
	Threshold float64 `yaml:"threshold"`
	// MinPerMinute is a floor: a principal below this many requests per
	// minute, in every window, is never volumetric.
	MinPerMinute float64 `yaml:"min_per_minute"`
	// MinRatio is how many times the API's median principal a count must
	// be. Counts are small and bursty; the ratio keeps a person's burst
	// from passing for abuse where the z-score alone would.
	MinRatio float64 `yaml:"min_ratio"`
}

func (c VolumetricConfig) validate() error {
	return errorsJoinFirst(positive("volumetric.threshold", c.Threshold), positive("volumetric.min_per_minute", c.MinPerMinute),
		positive("volumetric.min_ratio", c.MinRatio))
}

// volumetric finds principals whose request count on an API, over the last
// minute, 10 minutes or hour, is far above what principals usually do on
// that API: 5 req/s can be normal on GET /search and abuse on POST /orders
// (the search-versus-buy case). Each window is compared with the API's
// baseline of that window, and the anomaly lists every window that
// deviated.
type volumetric struct{ cfg VolumetricConfig }

func (*volumetric) name() string { return VolumetricName }

func (d *volumetric) observe(e *Engine, x *ctx, out []finding) []finding {
	if x.pair == nil {
		return out
	}
	counts := x.pair.counts()
	var devs []*event.Deviation
	bestZ, bestP, best := 0.0, 1.0, -1
	for w := range numWindows {
		perMin := counts[w] / (float64(e.clk.len[w]) / float64(time.Minute))
		if perMin < d.cfg.MinPerMinute {
			continue
		}
		median, mad, ok := e.warm(&x.api.Rate[w])
		if !ok {
			// A cold API: held to the busiest warm one's baseline.
			if median, mad, ok = e.busiest(func(a *apiState) *robust { return &a.Rate[w] }, 1); !ok {
				continue
			}
		}
		z, spread := robustZ(counts[w], median, mad, 1)
		if z < d.cfg.Threshold/2 || counts[w] < d.cfg.MinRatio*max(median, 1) {
			continue
		}
		devs = append(devs, &event.Deviation{Feature: "requests_" + e.clk.names[w], Observed: counts[w], Expected: median, Deviation: z})
		// A count is also judged as what it is, a count: how likely a
		// Poisson process at the rate of a busy normal principal (the
		// median plus one spread) reaches it. Small counts are discrete
		// and skewed, so where the z-score alone calls a person's burst
		// (13 orders in 15 s where the median is 4) six sigma, this tail
		// is one in a few thousand; for a flood both are vanishing.
		p := max(normalTail(z), poissonTail(counts[w], median+spread))
		if z >= d.cfg.Threshold && p < bestP {
			bestZ, bestP, best = z, p, w
		}
	}
	if best < 0 || bestP > e.cfg.MaxP {
		return out
	}
	w := best
	return append(out, finding{p: bestP, deviations: devs, summary: fmt.Sprintf(
		"%s %s made %.0f requests on %s in the last %s; principals there make %.1f (%.1f robust σ above)",
		x.kind, x.val, counts[w], x.ev.Api, e.clk.names[w], devs[indexOf(devs, "requests_"+e.clk.names[w])].Expected, bestZ)})
}

func indexOf(devs []*event.Deviation, feature string) int {
	for i, d := range devs {
		if d.Feature == feature {
			return i
		}
	}
	return 0
}

// warm returns a baseline's median and MAD once it holds enough samples
// from enough principals.
func (e *Engine) warm(r *robust) (median, mad float64, ok bool) {
	if r.len() < e.cfg.WarmupSamples {
		return 0, 0, false
	}
	median, mad, principals := r.stats()
	return median, mad, principals >= e.cfg.WarmupPrincipals
}

// busiest returns, among the APIs whose baseline of (of) is warm, the
// median and MAD of the one whose busy principal (the median plus one
// robust spread, with floor as robustZ takes it) is highest; ok is false
// when none is warm. An API too quiet to have a baseline of its own (a
// write few principals make, early in the day) is held to it: a count far
// above what a busy principal does on any API is abuse wherever it lands.
// The highest is taken whatever the map's order, so the result is
// deterministic.
func (e *Engine) busiest(of func(*apiState) *robust, floor float64) (median, mad float64, ok bool) {
	top := -1.0
	for _, a := range e.st.APIs {
		r := of(a)
		if r == nil {
			continue
		}
		m, d, warm := e.warm(r)
		if !warm {
			continue
		}
		if _, spread := robustZ(0, m, d, floor); m+spread > top || m+spread == top && m > median {
			top, median, mad, ok = m+spread, m, d, true
		}
	}
	return median, mad, ok
}
