package detectors

import (
	"fmt"

	"github.com/apiguard/apiguard/event"
)

// ScrapingName names the scraping detector's anomalies.
const ScrapingName = "scraping"

// ScrapingConfig configures the scraping detector.
type ScrapingConfig struct {
	// Threshold is the robust z-score above the API's 10-minute baseline
	// at which response volume or distinct objects are anomalous.
	Threshold float64 `yaml:"threshold"`
	// MinObjects and MinKiB are floors over 10 minutes: below both, a
	// principal is never scraping.
	MinObjects float64 `yaml:"min_objects"`
	MinKiB     float64 `yaml:"min_kib"`
	// MinRatio is how many times the API's median principal a volume or
	// object count must be.
	MinRatio float64 `yaml:"min_ratio"`
}

func (c ScrapingConfig) validate() error {
	return errorsJoinFirst(positive("scraping.threshold", c.Threshold), positive("scraping.min_objects", c.MinObjects),
		positive("scraping.min_kib", c.MinKiB), positive("scraping.min_ratio", c.MinRatio))
}

// scraping finds principals that take far more data, or far more distinct
// objects, from an API over 10 minutes than its principals usually do:
// catalogue scraping and bulk exfiltration through a valid account.
//
// Cold objects: the distinct-objects baseline learns only from principals
// whose medium window is seen whole (sampleObjects), so early in the day,
// and more so per partition, it can have too few samples while a scraper
// runs (4–15 at 08:30 on the generated shop at four partitions). Until it
// is warm, an object API's distinct objects are held to its requests per
// principal over the same window (the volumetric baseline, which every
// principal teaches at each new window): a principal reads no more
// distinct objects of an API than it sends requests there, so that
// baseline sits above the one it stands in for, and the floors
// (min_objects, min_ratio) still hold.
type scraping struct{ cfg ScrapingConfig }

func (*scraping) name() string { return ScrapingName }

func (d *scraping) observe(e *Engine, x *ctx, out []finding) []finding {
	if x.pair == nil {
		return out
	}
	_, _, kib := x.pair.recent()
	objs := x.pair.distinctObjects()
	var devs []*event.Deviation
	bestZ := 0.0
	check := func(feature string, v, floor float64, base, bound *robust) {
		if v < floor {
			return
		}
		median, mad, ok := e.warm(base)
		if !ok && bound != nil {
			// A cold baseline held to a warm bound of it (coldObjects).
			median, mad, ok = e.warm(bound)
		}
		if !ok {
			return
		}
		z, _ := robustZ(v, median, mad, floor/10)
		if z >= d.cfg.Threshold/2 && v >= d.cfg.MinRatio*median {
			devs = append(devs, &event.Deviation{Feature: feature, Observed: v, Expected: median, Deviation: z})
			bestZ = max(bestZ, z)
		}
	}
	check("response_kib_"+e.clk.names[winMedium], kib, d.cfg.MinKiB, &x.api.KiB, nil)
	if x.api.Object {
		check("distinct_objects_"+e.clk.names[winMedium], objs, d.cfg.MinObjects, &x.api.Objs, &x.api.Rate[winMedium])
	}
	if bestZ < d.cfg.Threshold {
		return out
	}
	p := normalTail(bestZ)
	if p > e.cfg.MaxP {
		return out
	}
	return append(out, finding{p: p, deviations: devs, summary: fmt.Sprintf(
		"%s %s took %.0f KiB and %.0f distinct objects from %s in %s, %.1f robust σ above its principals",
		x.kind, x.val, kib, objs, x.ev.Api, e.clk.names[winMedium], bestZ)})
}
