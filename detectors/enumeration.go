package detectors

import (
	"fmt"
	"math"

	"github.com/apiguard/apiguard/event"
)

// EnumerationName names the enumeration detector's anomalies.
const EnumerationName = "enumeration"

// EnumerationConfig configures the enumeration (BOLA) detector.
type EnumerationConfig struct {
	// MinMisses is the fewest 403/404 answers on an object API in the
	// medium window (10 minutes) that can be enumeration.
	MinMisses float64 `yaml:"min_misses"`
	// MissFloor is the smallest share of misses the API's baseline is
	// taken to have, so an API that never misses does not make one miss
	// an anomaly.
	MissFloor float64 `yaml:"miss_floor"`
	// WalkLength is how many consecutive requests for neighbouring object
	// ids (…41, 42, 43…) make a walk.
	WalkLength int `yaml:"walk_length"`
}

func (c EnumerationConfig) validate() error {
	if c.WalkLength < 3 {
		return fmt.Errorf("detectors.enumeration.walk_length: %d, want at least 3", c.WalkLength)
	}
	return errorsJoinFirst(positive("enumeration.min_misses", c.MinMisses), positive("enumeration.miss_floor", c.MissFloor))
}

// walkMissShare is the share of 403/404 answers a walk needs to count.
const walkMissShare = 0.25

// enumeration finds principals walking object ids on object APIs
// (GET /orders/{id}) while a quarter or more of the answers are 403/404,
// or drawing far more 403/404 answers there than the API's clients do:
// broken object-level authorization being probed.
type enumeration struct{ cfg EnumerationConfig }

func (*enumeration) name() string { return EnumerationName }

func (d *enumeration) observe(e *Engine, x *ctx, out []finding) []finding {
	if x.pair == nil || !x.api.Object {
		return out
	}
	req, miss, _ := x.pair.recent()
	base := x.api.Miss.value(d.cfg.MissFloor)
	// The API's miss ratio learns from principals that are not flagged
	// and not themselves missing far too often.
	defer func() {
		if x.learn {
			x.api.Miss.add(x.miss)
		}
	}()
	// A walk is enumeration when it is refused: a sync job paging
	// through objects it may read walks too, and gets 200s.
	if int(x.pair.Walk) >= d.cfg.WalkLength && miss >= 5 && miss >= walkMissShare*req {
		// Under independent choices among the objects a principal uses, a
		// run of neighbours has probability about (2/objects)^run.
		p := min(1, math.Pow(2/max(x.pair.distinctObjects(), 4), float64(x.pair.Walk)))
		if p <= e.cfg.MaxP {
			return append(out, finding{p: p, deviations: []*event.Deviation{
				{Feature: "sequential_ids", Observed: float64(x.pair.Walk), Expected: 1, Deviation: float64(x.pair.Walk)},
				{Feature: "misses_" + e.clk.names[winMedium], Observed: miss, Expected: base * req},
			}, summary: fmt.Sprintf("%s %s requested %d neighbouring object ids in a row on %s (last %s), %0.f of %0.f answered 403/404",
				x.kind, x.val, x.pair.Walk, x.ev.Api, x.object, miss, req)})
		}
	}
	if miss < d.cfg.MinMisses {
		return out
	}
	p := binomialTail(int(miss), int(req), base)
	if p > e.cfg.MaxP {
		return out
	}
	return append(out, finding{p: p, deviations: []*event.Deviation{
		{Feature: "miss_ratio_" + e.clk.names[winMedium], Observed: miss / req, Expected: base, Deviation: zBinomial(miss, req, base)},
		{Feature: "distinct_objects_" + e.clk.names[winMedium], Observed: x.pair.distinctObjects()},
	}, summary: fmt.Sprintf("%s %s drew %.0f 403/404 answers in %.0f requests on %s in %s; the API's clients miss %.1f%%",
		x.kind, x.val, miss, req, x.ev.Api, e.clk.names[winMedium], 100*base)})
}

// zBinomial expresses k of n against p0 in standard deviations.
func zBinomial(k, n, p0 float64) float64 {
	sd := math.Sqrt(n * p0 * (1 - p0))
	if sd == 0 {
		return 0
	}
	return (k - n*p0) / sd
}
