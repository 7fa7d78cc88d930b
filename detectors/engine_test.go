package detectors

import (
	"bytes"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/apiguard/apiguard/event"
)

// mixed is the shop with one attacker of each kind the engine can see
// without an inventory: the traffic of the determinism, checkpoint and
// speed tests.
func mixed() []*event.RequestEvent {
	attacker := who{sub: "mallory", ip: "203.0.113.9", ua: browserUA, hdr: "h1:tool"}
	bot := who{ip: "203.0.113.64", ua: browserUA, hdr: "h1:chrome"}
	stuffer := who{ip: "203.0.113.50", ua: browserUA, hdr: "h1:tool"}
	return sorted(shop(),
		every(attacker, "POST /orders", time.Second, 30*time.Minute, 36*time.Minute, nil),
		every(attacker, "GET /orders/{id}", 3*time.Second, 37*time.Minute, 42*time.Minute, func(_ int, ev *event.RequestEvent) { ev.Status = 403 }),
		every(bot, "GET /products/{id}", 4*time.Second, 30*time.Minute, 40*time.Minute, nil),
		every(stuffer, "POST /login", time.Second, 40*time.Minute, 46*time.Minute, func(i int, ev *event.RequestEvent) {
			ev.Status, ev.Account = 401, "a"+strings.Repeat("x", i%40)
		}),
	)
}

func encodeAll(t testing.TB, as []*event.Anomaly) []byte {
	t.Helper()
	var buf bytes.Buffer
	for _, a := range as {
		b, err := event.Marshal(a)
		if err != nil {
			t.Fatal(err)
		}
		buf.Write(b)
	}
	return buf.Bytes()
}

// TestDeterministic: the same events give the same anomalies, byte for
// byte, however often they are run.
func TestDeterministic(t *testing.T) {
	evs := mixed()
	first := runAll(newEngine(t, nil), evs)
	if len(first) < 4 {
		t.Fatalf("only %d anomalies in the mixed traffic", len(first))
	}
	want := encodeAll(t, first)
	for range 3 {
		if got := encodeAll(t, runAll(newEngine(t, nil), evs)); !bytes.Equal(got, want) {
			t.Fatal("a second run gave different anomalies")
		}
	}
}

// TestCheckpointRestart stops an engine part way, restores a new one from
// its checkpoint, and requires the rest of the run — anomalies and final
// state — to match an engine that never stopped.
func TestCheckpointRestart(t *testing.T) {
	evs := mixed()
	whole := newEngine(t, nil)
	all := runAll(whole, evs)
	for _, cut := range []int{1, len(evs) / 3, len(evs) * 2 / 3} {
		first := newEngine(t, nil)
		before := runAll(first, evs[:cut])
		state, err := first.MarshalState()
		if err != nil {
			t.Fatal(err)
		}
		restarted := newEngine(t, nil)
		if err := restarted.UnmarshalState(state); err != nil {
			t.Fatal(err)
		}
		after := runAll(restarted, evs[cut:])
		if got, want := encodeAll(t, append(before, after...)), encodeAll(t, all); !bytes.Equal(got, want) {
			t.Fatalf("cut at %d: %d+%d anomalies differ from the %d of an unbroken run", cut, len(before), len(after), len(all))
		}
		a, err := whole.MarshalState()
		if err != nil {
			t.Fatal(err)
		}
		b, err := restarted.MarshalState()
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(a, b) {
			t.Fatalf("cut at %d: final state (%d bytes) differs from an unbroken run's (%d bytes)", cut, len(b), len(a))
		}
	}
}

func TestCheckpointRefusals(t *testing.T) {
	e := newEngine(t, nil)
	runAll(e, mixed()[:1000])
	state, err := e.MarshalState()
	if err != nil {
		t.Fatal(err)
	}
	other := newEngine(t, func(c *Config) { c.Windows[0] = 30 * time.Second })
	if err := other.UnmarshalState(state); err == nil || !strings.Contains(err.Error(), "windows") {
		t.Errorf("restoring under other windows: %v, want a refusal naming the windows", err)
	}
	if err := newEngine(t, nil).UnmarshalState([]byte("not gob")); err == nil {
		t.Error("restoring garbage succeeded")
	}
}

// TestPairMemory measures the heap held per active (API, principal) pair
// with a million of them — 250,000 API-key principals on 4 APIs each —
// against the 256-byte target; the figure includes each principal's
// cross-API state and credential history, shared by its pairs. It also
// reports the worst case, a million principals on one API each.
func TestPairMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("allocates a million pairs")
	}
	for _, tc := range []struct {
		principals, apis int
		limit            float64
	}{
		{250_000, 4, 256},
		{1_000_000, 1, 512},
	} {
		t.Run(fmt.Sprintf("%d APIs each", tc.apis), func(t *testing.T) {
			e := newEngine(t, nil)
			ev := member("m", 0).event(0, "GET /products/{id}", "/products/1")
			names := []string{"GET /a", "GET /b", "POST /c", "GET /d/{id}"}[:tc.apis]
			runtime.GC()
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			for i := range tc.principals {
				ev.ApiKeyId = "k" + itoa(i)
				for j, api := range names {
					ev.Api = api
					ev.TimeUnixNano = t0.UnixNano() + int64(i*tc.apis+j)*1000
					e.Observe(ev)
				}
			}
			runtime.GC()
			runtime.ReadMemStats(&after)
			n := tc.principals * tc.apis
			per := float64(after.HeapAlloc-before.HeapAlloc) / float64(n)
			t.Logf("%d pairs of %d principals: %.0f bytes per pair, all state included (pair struct %d bytes)", n, tc.principals, per, pairSize())
			if len(e.st.Pairs) != n {
				t.Fatalf("%d pairs, want %d", len(e.st.Pairs), n)
			}
			if per > tc.limit {
				t.Errorf("%.0f bytes per pair, limit %.0f", per, tc.limit)
			}
			runtime.KeepAlive(e)
		})
	}
}

func TestIdlePairsEvicted(t *testing.T) {
	e := newEngine(t, nil)
	runAll(e, shop())
	if len(e.st.Pairs) == 0 {
		t.Fatal("no pairs")
	}
	late := member("late", 0).event(3*time.Hour, "GET /search", "/search")
	late.Id = "late"
	e.Observe(late)
	if n, m := len(e.st.Pairs), len(e.st.Principals); n != 1 || m != 1 {
		t.Errorf("%d pairs and %d principals after everyone else was idle for two hours, want 1 and 1 (the late one's)", n, m)
	}
}

func TestConfigValidate(t *testing.T) {
	for _, c := range []struct {
		mod  func(*Config)
		want string
	}{
		{func(c *Config) { c.Windows[1] = c.Windows[0] }, "detectors.windows"},
		{func(c *Config) { c.IdleAfter = time.Minute }, "detectors.idle_after"},
		{func(c *Config) { c.Disable = []string{"nope"} }, "detectors.disable[0]"},
		{func(c *Config) { c.MaxP = 1 }, "detectors.max_p"},
		{func(c *Config) { c.Volumetric.MinRatio = 0 }, "detectors.volumetric.min_ratio"},
		{func(c *Config) { c.Timing.MinGaps = 2 }, "detectors.bot_timing.min_gaps"},
		{func(c *Config) { c.Params.MaxP = 0 }, "detectors.parameters.max_p"},
		{func(c *Config) { c.Inventory.OpenAPI = "api.yaml" }, "detectors.inventory.openapi"},
		{func(c *Config) { c.Enumeration.WalkLength = 1 }, "detectors.enumeration.walk_length"},
		{func(c *Config) { c.Health.MinRequests = 0 }, "detectors.health.min_requests"},
	} {
		cfg := DefaultConfig()
		c.mod(&cfg)
		if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Validate = %v, want an error naming %s", err, c.want)
		}
	}
	if err := DefaultConfig().Validate(); err != nil {
		t.Errorf("defaults: %v", err)
	}
}

func TestRiskCombinesAndDecays(t *testing.T) {
	e := newEngine(t, nil)
	r1 := e.addRisk(1, 0, 0.5)
	r2 := e.addRisk(1, 0, 0.5)
	if r1 != 0.5 || r2 != 0.75 {
		t.Fatalf("risk %g then %g, want 0.5 then 0.75", r1, r2)
	}
	if got := e.Risk("", "", 0); got != 0 {
		t.Errorf("risk of an unknown principal %g", got)
	}
	e.st.Risk[hashStrings("ip", "x")] = riskState{Risk: 0.8, At: 0}
	if got := e.Risk("ip", "x", int64(e.cfg.RiskHalfLife)); got < 0.39 || got > 0.41 {
		t.Errorf("risk after one half-life %g, want 0.4", got)
	}
}

func itoa(i int) string {
	var b [20]byte
	n := len(b)
	for {
		n--
		b[n] = byte('0' + i%10)
		i /= 10
		if i == 0 {
			return string(b[n:])
		}
	}
}

// BenchmarkEngine is events through every detector on one core; the
// figure to compare is events/s (target 100,000).
func BenchmarkEngine(b *testing.B) {
	evs := mixed()
	b.ReportAllocs()
	b.ResetTimer()
	n := 0
	for b.Loop() {
		b.StopTimer()
		e := newEngine(b, nil)
		b.StartTimer()
		for _, ev := range evs {
			e.Observe(ev)
		}
		n += len(evs)
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "events/s")
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(n), "ns/event")
}

// TestBaselinesDoNotChangeDetections takes snapshots all along a run and
// requires the same anomalies as a run without them, and snapshots that
// describe the traffic.
func TestBaselinesDoNotChangeDetections(t *testing.T) {
	evs := mixed()
	want := encodeAll(t, runAll(newEngine(t, nil), evs))
	e := newEngine(t, nil)
	var got []*event.Anomaly
	var last []BaselineSnapshot
	for i, ev := range evs {
		got = append(got, e.Observe(ev)...)
		if i%500 == 0 {
			last = e.Baselines()
		}
	}
	if !bytes.Equal(encodeAll(t, got), want) {
		t.Fatal("taking baseline snapshots changed the anomalies")
	}
	var search *BaselineSnapshot
	for i := range last {
		if last[i].API == "GET /search" && last[i].Feature == "requests_1m" {
			search = &last[i]
		}
	}
	// 40 principals at 0.3 req/s make about 18 requests a minute.
	if search == nil || search.Centre < 12 || search.Centre > 24 || search.Principals < 30 || search.Detector != VolumetricName {
		t.Fatalf("GET /search requests_1m baseline %+v, want a centre near 18 from about 40 principals", search)
	}
}
