package detectors

import (
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/apiguard/apiguard/event"
)

// demoWindows are the windows `apiguard up --demo` runs the detectors on.
var demoWindows = [3]time.Duration{15 * time.Second, time.Minute, 5 * time.Minute}

// demoConfig is the engine configuration of `apiguard up --demo`.
func demoConfig(c *Config) {
	c.Windows = demoWindows
	c.Cooldown = 30 * time.Second
}

// demoRates are the demo's normal clients: requests per second per API,
// each a Poisson process (cmd/apiguard/demotraffic.go).
var demoRates = []struct {
	api  string
	rate float64
}{
	{"GET /search", 1.0},
	{"GET /products/{id}", 0.5},
	{"POST /orders", 0.3},
	{"GET /users/{id}/orders", 0.1},
}

// demoClients is n demo clients from..to: API keys behind one loopback
// address and one user agent, as the demo sends them.
func demoClients(seed uint64, n int, from, to time.Duration) [][]*event.RequestEvent {
	var flows [][]*event.RequestEvent
	for i := range n {
		w := who{key: fmt.Sprintf("client-%02d", i), ip: "127.0.0.1", ua: "apiguard-demo/1", hdr: "h1:go", lang: ""}
		for j, r := range demoRates {
			rng := rand.New(rand.NewPCG(seed, uint64(i*len(demoRates)+j)))
			var flow []*event.RequestEvent
			for t := from + time.Duration(rng.ExpFloat64()/r.rate*1e9); t < to; t += time.Duration(rng.ExpFloat64() / r.rate * 1e9) {
				path := strings.Fields(r.api)[1]
				if path == "/search" {
					path += "?q=lamp"
				}
				path = strings.ReplaceAll(path, "{id}", strconv.Itoa(rng.IntN(5000)))
				flow = append(flow, w.event(t, r.api, path))
			}
			flows = append(flows, flow)
		}
	}
	return flows
}

// TestDemoTrafficRaisesNothing runs the demo's normal clients through the
// demo's engine on many seeds, for longer than a demo lasts: a normal
// client's burst (12 orders in 15 s where the median client makes 3 does
// happen) is within what the baseline tolerates, so no anomaly at all.
func TestDemoTrafficRaisesNothing(t *testing.T) {
	seeds := 20
	if testing.Short() || raceEnabled {
		seeds = 5
	}
	for seed := range uint64(seeds) {
		e := newEngine(t, demoConfig)
		as := runAll(e, sorted(demoClients(seed, 60, 0, 5*time.Minute)...))
		for _, a := range as {
			t.Errorf("seed %d: %s on %s: %s", seed, a.Detector, a.Api, a.Summary)
		}
	}
}

// TestRestartAfterGapRaisesNothing stops the engine (a checkpoint), lets
// event time jump, and starts a restored engine on the same normal
// clients, three runs in a row, as `apiguard up --demo` run three times on
// one store does: windows that reach back into the gap are not whole, so
// they neither teach the baselines nor are judged.
func TestRestartAfterGapRaisesNothing(t *testing.T) {
	const run = 45 * time.Second
	for _, gap := range []time.Duration{0, 20 * time.Second, time.Minute, 10 * time.Minute} {
		t.Run("gap "+gap.String(), func(t *testing.T) {
			for seed := range uint64(3) {
				e := newEngine(t, demoConfig)
				var at time.Duration
				for r := range 3 {
					if r > 0 {
						state, err := e.MarshalState()
						if err != nil {
							t.Fatal(err)
						}
						e = newEngine(t, demoConfig)
						if err := e.UnmarshalState(state); err != nil {
							t.Fatal(err)
						}
						at += gap
					}
					// The clients start afresh with each run, as the demo's do.
					as := runAll(e, sorted(demoClients(seed*10+uint64(r), 60, at, at+run)...))
					for _, a := range as {
						t.Errorf("seed %d, run %d: %s on %s: %s", seed, r+1, a.Detector, a.Api, a.Summary)
					}
					at += run
				}
			}
		})
	}
}

// TestRestartStillDetects checks the other side: an attack that starts
// right after a restart with a gap is still found once the window it is
// judged on has been seen whole.
func TestRestartStillDetects(t *testing.T) {
	e := newEngine(t, demoConfig)
	if as := runAll(e, sorted(demoClients(1, 60, 0, 2*time.Minute)...)); len(as) != 0 {
		t.Fatalf("normal traffic raised %d anomalies: %s", len(as), as[0].Summary)
	}
	state, err := e.MarshalState()
	if err != nil {
		t.Fatal(err)
	}
	e = newEngine(t, demoConfig)
	if err := e.UnmarshalState(state); err != nil {
		t.Fatal(err)
	}
	from := 2*time.Minute + 10*time.Minute
	attacker := who{key: "attacker-1", ip: "127.0.0.1", ua: "apiguard-demo/1", hdr: "h1:go"}
	as := runAll(e, sorted(append(demoClients(2, 60, from, from+time.Minute),
		every(attacker, "POST /orders", 40*time.Millisecond, from+5*time.Second, from+time.Minute, nil))...))
	got := by(as, VolumetricName)
	if len(got) == 0 || got[0].Principal.Value != "attacker-1" {
		t.Fatalf("attack after a restart not found: %v", principals(as))
	}
	if d := time.Unix(0, got[0].TimeUnixNano).Sub(t0.Add(from + 5*time.Second)); d > 20*time.Second {
		t.Errorf("attack found %s after it began, want within the short window and a slot", d)
	}
	for _, p := range principals(as) {
		if p != "key:attacker-1" {
			t.Errorf("normal principal %s flagged", p)
		}
	}
}
