package detectors

import (
	"fmt"
	"testing"
	"time"

	"github.com/apiguard/apiguard/event"
)

// shortVisitors returns n anonymous visitors arriving from..from+n×gap,
// each reading three popular products within half a minute and leaving:
// they teach an object API's request baseline, never its distinct-objects
// one (no medium window of theirs is seen whole).
func shortVisitors(n int, from, gap time.Duration) []*event.RequestEvent {
	var out []*event.RequestEvent
	for i := range n {
		w := who{ip: fmt.Sprintf("100.72.%d.%d", i/200, 10+i%200), ua: browserUA, hdr: "h1:browser", lang: "en"}
		t := from + time.Duration(i)*gap
		for j := range 3 {
			ev := w.event(t+time.Duration(j)*9*time.Second, "GET /products/{id}", fmt.Sprintf("/products/%d", []int{3, 17, 5, 120, 9}[(i+j)%5]))
			ev.Auth = event.AuthOutcome_AUTH_MISSING
			out = append(out, ev)
		}
	}
	return out
}

// searchers keep the engine's windows whole without touching products.
func searchers() []*event.RequestEvent {
	return crowd(3, "key", 40, map[string]float64{"GET /search": 0.3}, 0, 60*time.Minute)
}

// TestScrapingColdObjects: while an object API's distinct-objects
// baseline is cold (visitors who leave within a minute never teach it),
// a principal reading hundreds of distinct objects is held to the API's
// requests per principal, and flagged; one reading a few dozen is not,
// nor is anything without a warm request baseline to be held to.
func TestScrapingColdObjects(t *testing.T) {
	noVolumetric := func(c *Config) { c.Disable = []string{VolumetricName} }
	scraper := who{ip: "203.0.113.64", ua: browserUA, hdr: "h1:chrome"}
	copyAll := every(scraper, "GET /products/{id}", 2*time.Second, 30*time.Minute, 45*time.Minute, nil)
	coldObjects := func(t *testing.T, e *Engine) {
		t.Helper()
		for _, b := range e.Baselines() {
			if b.API == "GET /products/{id}" && b.Feature == "distinct_objects_10m" && b.Samples >= e.cfg.WarmupSamples {
				t.Fatalf("distinct-objects baseline has %d samples, want it cold (< %d)", b.Samples, e.cfg.WarmupSamples)
			}
		}
	}
	t.Run("a catalogue copy while the objects baseline is cold", func(t *testing.T) {
		e := newEngine(t, noVolumetric)
		got := by(runAll(e, sorted(searchers(), shortVisitors(80, 5*time.Minute, 25*time.Second), copyAll)), ScrapingName)
		coldObjects(t, e)
		if len(got) == 0 || got[0].Principal.Value != "203.0.113.64" {
			t.Fatalf("scraping flagged %v, want the scraper", principals(got))
		}
		if d := got[0].Deviations[0]; d.Feature != "distinct_objects_10m" || d.Observed < 60 || d.Expected > 3 {
			t.Errorf("deviation %v, want distinct objects far above the requests a visitor makes", d)
		}
		explained(t, got)
	})
	t.Run("a visitor reading forty products", func(t *testing.T) {
		reader := every(scraper, "GET /products/{id}", 12*time.Second, 30*time.Minute, 38*time.Minute, nil)
		e := newEngine(t, noVolumetric)
		got := by(runAll(e, sorted(searchers(), shortVisitors(80, 5*time.Minute, 25*time.Second), reader)), ScrapingName)
		coldObjects(t, e)
		if len(got) > 0 {
			t.Fatalf("scraping flagged %s", got[0].Summary)
		}
	})
	t.Run("no request baseline either", func(t *testing.T) {
		got := by(runAll(newEngine(t, noVolumetric), sorted(searchers(), copyAll)), ScrapingName)
		if len(got) > 0 {
			t.Fatalf("scraping flagged %s with no baseline of the API", got[0].Summary)
		}
	})
}
