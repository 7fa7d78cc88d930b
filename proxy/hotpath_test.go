package proxy

import (
	"net/http"
	"testing"
)

// TestHotPathAllocations holds the proxy's allocation budget: what apiguard
// allocates per request on top of a bare httputil.ReverseProxy (with a
// buffer pool) on the same request, with the default chain. It was 23
// before the allocation work of docs/proxy.md and is 3 since (the exchange
// with its event, the event id, the client fingerprint); a budget of 6
// makes a regression a decision, not an accident.
func TestHotPathAllocations(t *testing.T) {
	const budget = 6
	hs := hotPathHandlers(t)
	allocs := map[string]float64{}
	for _, h := range hs {
		req := hotPathRequest()
		w := &sink{h: http.Header{}}
		allocs[h.name] = testing.AllocsPerRun(200, func() {
			w.reset()
			req.Body = http.NoBody
			h.h.ServeHTTP(w, req)
			if w.code != http.StatusOK {
				t.Fatalf("%s: status %d", h.name, w.code)
			}
		})
	}
	slack := 0.0
	if raceEnabled {
		slack = 2 // the race detector drops pooled items at random
	}
	for _, name := range []string{"enforcement", "default"} {
		if added := allocs[name] - allocs["bare"]; added > budget+slack {
			t.Errorf("%s: %v allocations per request over the bare proxy's %v, budget %d", name, added, allocs["bare"], budget)
		}
	}
	t.Logf("allocations per request: %v", allocs)
}
