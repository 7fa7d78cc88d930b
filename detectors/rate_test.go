package detectors

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/apiguard/apiguard/event"
)

var start = time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC)

// flow is one principal's traffic on one API: a mean rate with jitter.
type flow struct {
	api, key string
	rate     float64 // requests per second
	from, to time.Duration
	decision event.Decision
}

// traffic renders flows as time-ordered events, reproducibly for a seed.
func traffic(seed uint64, flows []flow) []*event.RequestEvent {
	rng := rand.New(rand.NewPCG(seed, 1))
	var evs []*event.RequestEvent
	for _, f := range flows {
		dec := f.decision
		if dec == event.Decision_DECISION_UNSPECIFIED {
			dec = event.Decision_DECISION_ALLOW
		}
		for t := f.from; t < f.to; t += time.Duration(rng.ExpFloat64() / f.rate * float64(time.Second)) {
			evs = append(evs, &event.RequestEvent{TimeUnixNano: start.Add(t).UnixNano(), Api: f.api, ApiKeyId: f.key, Decision: dec})
		}
	}
	slices.SortStableFunc(evs, func(a, b *event.RequestEvent) int { return int(a.TimeUnixNano - b.TimeUnixNano) })
	for i, ev := range evs {
		ev.Id = fmt.Sprintf("E%06d", i)
	}
	return evs
}

func normal(api string, n int, rate float64, d time.Duration) []flow {
	var fs []flow
	for i := range n {
		fs = append(fs, flow{api: api, key: fmt.Sprintf("%s-client-%d", api, i), rate: rate, to: d})
	}
	return fs
}

func run(d *Rate, evs []*event.RequestEvent) []*event.Anomaly {
	var out []*event.Anomaly
	for _, ev := range evs {
		out = append(out, d.Observe(ev)...)
	}
	return out
}

func TestRate(t *testing.T) {
	const orders, search = "POST /orders", "GET /search"
	minute := time.Minute
	tests := []struct {
		name  string
		flows []flow
		want  []string // principals expected in anomalies, in order
	}{
		{
			name:  "quiet traffic raises nothing",
			flows: append(normal(orders, 20, 0.3, minute), normal(search, 20, 5, minute)...),
		},
		{
			name: "5 req/s is anomalous on POST /orders",
			flows: append(normal(orders, 20, 0.3, minute),
				flow{api: orders, key: "attacker", rate: 5, from: 40 * time.Second, to: minute}),
			want: []string{"attacker"},
		},
		{
			name: "5 req/s is normal on GET /search",
			flows: append(normal(search, 20, 5, minute),
				flow{api: search, key: "busy-but-normal", rate: 5, from: 40 * time.Second, to: minute}),
		},
		{
			name: "a hammering principal is reported once per cooldown",
			flows: append(normal(orders, 20, 0.3, 3*minute),
				flow{api: orders, key: "attacker", rate: 20, from: 40 * time.Second, to: 150 * time.Second}),
			want: []string{"attacker", "attacker"},
		},
		{
			name: "nothing before warm-up",
			flows: []flow{{api: orders, key: "early", rate: 50, to: 20 * time.Second},
				{api: orders, key: "other", rate: 0.2, to: 20 * time.Second}},
		},
		{
			name: "denied requests are not counted",
			flows: append(normal(orders, 20, 0.3, minute),
				flow{api: orders, key: "blocked", rate: 20, from: 40 * time.Second, to: minute, decision: event.Decision_DECISION_BLOCK}),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := run(NewRate(DefaultRateConfig()), traffic(7, tt.flows))
			var who []string
			for _, a := range got {
				who = append(who, a.Principal.Value)
			}
			if !slices.Equal(who, tt.want) {
				t.Fatalf("anomalies for %v, want %v", who, tt.want)
			}
			for _, a := range got {
				checkExplained(t, a)
			}
		})
	}
}

func checkExplained(t *testing.T, a *event.Anomaly) {
	t.Helper()
	if a.Score < 0.5 || a.Score > 1 {
		t.Errorf("score %g outside [0.5,1]", a.Score)
	}
	if len(a.Deviations) != 1 {
		t.Fatalf("deviations = %v", a.Deviations)
	}
	d := a.Deviations[0]
	if d.Observed < DefaultRateConfig().MinRate || d.Observed <= d.Expected || d.Deviation < DefaultRateConfig().Threshold {
		t.Errorf("explanation does not support the anomaly: %+v", d)
	}
	if len(a.EventIds) != 1 || a.Summary == "" || a.Id == "" || a.Principal.Kind != event.KindKey {
		t.Errorf("incomplete anomaly: %v", a)
	}
}

func TestRateDeterministic(t *testing.T) {
	flows := append(normal("POST /orders", 30, 0.5, 2*time.Minute),
		flow{api: "POST /orders", key: "attacker", rate: 30, from: time.Minute, to: 2 * time.Minute})
	evs := traffic(11, flows)
	a, b := run(NewRate(DefaultRateConfig()), evs), run(NewRate(DefaultRateConfig()), evs)
	if len(a) == 0 || len(a) != len(b) {
		t.Fatalf("runs gave %d and %d anomalies", len(a), len(b))
	}
	for i := range a {
		x, _ := proto.Marshal(a[i])
		y, _ := proto.Marshal(b[i])
		if string(x) != string(y) {
			t.Fatalf("anomaly %d differs between runs:\n%v\n%v", i, a[i], b[i])
		}
	}
}

func TestRateEvictsIdlePrincipals(t *testing.T) {
	cfg := DefaultRateConfig()
	d := NewRate(cfg)
	run(d, traffic(3, normal("GET /a", 50, 1, 30*time.Second)))
	if d.Principals() != 50 {
		t.Fatalf("Principals = %d, want 50", d.Principals())
	}
	// One principal keeps going past IdleAfter; the others fall silent.
	run(d, traffic(4, []flow{{api: "GET /b", key: "late", rate: 1, from: 30 * time.Second, to: 30*time.Second + 2*cfg.IdleAfter}}))
	if d.Principals() != 1 {
		t.Fatalf("Principals = %d after idle sweep, want 1", d.Principals())
	}
}

func TestRateConfigValidate(t *testing.T) {
	mod := func(f func(*RateConfig)) RateConfig { c := DefaultRateConfig(); f(&c); return c }
	tests := []struct {
		name string
		cfg  RateConfig
		ok   bool
	}{
		{"default", DefaultRateConfig(), true},
		{"zero resolution", mod(func(c *RateConfig) { c.Resolution = 0 }), false},
		{"window not a multiple", mod(func(c *RateConfig) { c.Window = 2500 * time.Millisecond }), false},
		{"too many buckets", mod(func(c *RateConfig) { c.Window = time.Hour }), false},
		{"tiny ring", mod(func(c *RateConfig) { c.Samples = 2 }), false},
		{"warm-up above ring", mod(func(c *RateConfig) { c.WarmupSamples = 5000 }), false},
		{"no threshold", mod(func(c *RateConfig) { c.Threshold = 0 }), false},
		{"idle shorter than window", mod(func(c *RateConfig) { c.IdleAfter = time.Second }), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.cfg.Validate(); (err == nil) != tt.ok {
				t.Errorf("Validate() = %v, want ok=%v", err, tt.ok)
			}
		})
	}
}

// BenchmarkRate is events per second through the rate detector on one core:
// 2,000 principals over 10 APIs.
func BenchmarkRate(b *testing.B) {
	var flows []flow
	for i := range 10 {
		flows = append(flows, normal(fmt.Sprintf("GET /api%d/{id}", i), 200, 0.5, 10*time.Minute)...)
	}
	evs := traffic(5, flows)
	b.ReportAllocs()
	b.ResetTimer()
	d := NewRate(DefaultRateConfig())
	i := 0
	for b.Loop() {
		if i == len(evs) {
			d, i = NewRate(DefaultRateConfig()), 0
		}
		d.Observe(evs[i])
		i++
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

func TestBaselinesDoNotChangeDetections(t *testing.T) {
	cfg := DefaultRateConfig()
	gen := func() []*event.RequestEvent {
		var evs []*event.RequestEvent
		t0 := time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC)
		for i := range 40000 {
			p := i % 40
			if i > 30000 && i%3 == 0 {
				p = 99 // a heavy hitter late in the run
			}
			evs = append(evs, &event.RequestEvent{
				Id: fmt.Sprint(i), TimeUnixNano: t0.Add(time.Duration(i) * 25 * time.Millisecond).UnixNano(),
				Api: "GET /search", ApiKeyId: fmt.Sprintf("k%d", p), Decision: event.Decision_DECISION_ALLOW,
			})
		}
		return evs
	}
	plain, snapped := NewRate(cfg), NewRate(cfg)
	var a, b []*event.Anomaly
	var snaps int
	other := gen()
	for i, ev := range gen() {
		a = append(a, plain.Observe(ev)...)
		b = append(b, snapped.Observe(other[i])...)
		snaps += len(snapped.Baselines())
	}
	if len(a) == 0 || len(a) != len(b) {
		t.Fatalf("%d anomalies without snapshots, %d with", len(a), len(b))
	}
	for i := range a {
		if !proto.Equal(a[i], b[i]) {
			t.Errorf("anomaly %d differs with snapshots:\n%v\n%v", i, a[i], b[i])
		}
	}
	bs := plain.Baselines()
	if snaps == 0 || len(bs) != 1 || bs[0].API != "GET /search" || bs[0].Samples == 0 || bs[0].Principals < 2 || bs[0].Centre <= 0 {
		t.Errorf("baselines %+v (snapshots taken: %d)", bs, snaps)
	}
}
