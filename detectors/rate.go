package detectors

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/apiguard/apiguard/event"
)

// RateName is the name the rate detector reports in its anomalies.
const RateName = "rate"

// RateConfig configures the Rate detector. Durations are event time.
type RateConfig struct {
	// Window is the sliding window over which a principal's rate is counted.
	Window time.Duration `yaml:"window"`
	// Resolution is the width of one bucket of the window.
	Resolution time.Duration `yaml:"resolution"`
	// Samples is how many recent per-principal rates each API's baseline holds.
	Samples int `yaml:"samples"`
	// WarmupSamples and WarmupPrincipals must both be reached before an API
	// is scored: until then nothing is reported for it.
	WarmupSamples    int `yaml:"warmup_samples"`
	WarmupPrincipals int `yaml:"warmup_principals"`
	// Threshold is the robust z-score (deviations above the median, in
	// MAD-estimated standard deviations) at which an anomaly is raised.
	Threshold float64 `yaml:"threshold"`
	// MinRate is a floor in requests per second: below it nothing is anomalous.
	MinRate float64 `yaml:"min_rate"`
	// Cooldown is how long a principal that raised an anomaly on an API is
	// neither reported again there nor taught to its baseline.
	Cooldown time.Duration `yaml:"cooldown"`
	// IdleAfter is how long a principal may be silent on an API before its
	// state is dropped.
	IdleAfter time.Duration `yaml:"idle_after"`
}

// DefaultRateConfig returns the defaults.
func DefaultRateConfig() RateConfig {
	return RateConfig{
		Window: 10 * time.Second, Resolution: time.Second, Samples: 1024,
		WarmupSamples: 20, WarmupPrincipals: 3, Threshold: 6, MinRate: 2,
		Cooldown: time.Minute, IdleAfter: 5 * time.Minute,
	}
}

// maxBuckets bounds Window/Resolution, and so the state of one principal.
const maxBuckets = 60

// Validate reports the first bad field by its config key.
func (c RateConfig) Validate() error {
	switch {
	case c.Resolution <= 0:
		return errors.New("detectors.rate.resolution: must be positive")
	case c.Window < c.Resolution || c.Window%c.Resolution != 0:
		return fmt.Errorf("detectors.rate.window: %s, want a multiple of resolution %s", c.Window, c.Resolution)
	case c.Window/c.Resolution > maxBuckets:
		return fmt.Errorf("detectors.rate.window: %s is more than %d resolutions", c.Window, maxBuckets)
	case c.Samples < 8:
		return fmt.Errorf("detectors.rate.samples: %d, want at least 8", c.Samples)
	case c.WarmupSamples < 1 || c.WarmupSamples > c.Samples:
		return fmt.Errorf("detectors.rate.warmup_samples: %d, want 1..samples", c.WarmupSamples)
	case c.WarmupPrincipals < 1:
		return fmt.Errorf("detectors.rate.warmup_principals: %d, want at least 1", c.WarmupPrincipals)
	case c.Threshold <= 0:
		return fmt.Errorf("detectors.rate.threshold: %g, want > 0", c.Threshold)
	case c.MinRate < 0:
		return fmt.Errorf("detectors.rate.min_rate: %g, want ≥ 0", c.MinRate)
	case c.Cooldown < 0:
		return fmt.Errorf("detectors.rate.cooldown: %s, want ≥ 0", c.Cooldown)
	case c.IdleAfter < c.Window:
		return fmt.Errorf("detectors.rate.idle_after: %s, want at least the window %s", c.IdleAfter, c.Window)
	}
	return nil
}

// Rate finds principals whose request rate on an API is far above what
// principals usually do on that API. Each API has its own baseline: the
// median and MAD of recent per-principal windowed rates, at most one sample
// per principal per window, so a heavy hitter cannot drag the baseline
// towards itself. So 5 req/s can be normal on GET /search and anomalous on
// POST /orders.
//
// Only allowed requests count: a principal already blocked is not detected
// again, and denied traffic does not teach the baseline, nor does a
// principal in cooldown after an anomaly.
//
// Rate is not safe for concurrent use; the pipeline gives each partition its own.
type Rate struct {
	cfg      RateConfig
	nBuckets int64
	res      int64 // resolution in ns
	apis     map[string]*apiRate
	lastSwp  int64 // bucket of the last idle sweep
}

type apiRate struct {
	base       robust
	principals map[principal]*principalRate
	computedAt int64 // bucket of the last baseline recompute
}

type principal struct{ kind, value string }

type principalRate struct {
	counts    [maxBuckets]uint32
	first     int64 // bucket of the first event
	last      int64 // bucket of the last event
	sampled   int64 // bucket of the last sample given to the baseline
	coolUntil int64 // event time, ns
}

// NewRate returns a Rate detector; cfg must be valid.
func NewRate(cfg RateConfig) *Rate {
	return &Rate{cfg: cfg, nBuckets: int64(cfg.Window / cfg.Resolution), res: int64(cfg.Resolution), apis: map[string]*apiRate{}}
}

// Name returns RateName.
func (r *Rate) Name() string { return RateName }

// Observe takes one event and returns the anomaly it completes, if any.
func (r *Rate) Observe(ev *event.RequestEvent) []*event.Anomaly {
	if ev.Decision != event.Decision_DECISION_ALLOW || ev.Api == "" {
		return nil
	}
	t := ev.TimeUnixNano
	b := t / r.res
	r.sweep(b)

	a := r.apis[ev.Api]
	if a == nil {
		a = &apiRate{principals: map[principal]*principalRate{}}
		a.base.init(r.cfg.Samples)
		// Keys outlive the event, whose strings share one buffer: clone them.
		r.apis[strings.Clone(ev.Api)] = a
	}
	kind, value := event.PrincipalOf(ev)
	p := a.principals[principal{kind, value}]
	if p == nil {
		p = &principalRate{first: b, last: b, sampled: b}
		a.principals[principal{kind, strings.Clone(value)}] = p
	}
	cooling := t < p.coolUntil
	if b > p.last {
		// A new step: the finished window is a sample of this principal's
		// rate, once the principal has been seen for a whole window (a
		// younger one's count would understate it) and at most once a
		// window, so every active principal weighs the same in the
		// baseline however fast it goes.
		if !cooling && p.last-p.first >= r.nBuckets && p.last-p.sampled >= r.nBuckets {
			a.base.add(r.sum(p)/r.cfg.Window.Seconds(), ownerHash(kind, value))
			p.sampled = p.last
		}
		r.advance(p, b)
	}
	p.counts[b%r.nBuckets]++

	if b > a.computedAt {
		a.base.recompute()
		a.computedAt = b
	}
	if cooling || a.base.len() < r.cfg.WarmupSamples || a.base.principals < r.cfg.WarmupPrincipals {
		return nil
	}
	rate := r.sum(p) / r.cfg.Window.Seconds()
	if rate < r.cfg.MinRate {
		return nil
	}
	spread := max(madScale*a.base.mad, 0.1*a.base.median, 1/r.cfg.Window.Seconds())
	z := (rate - a.base.median) / spread
	if z < r.cfg.Threshold {
		return nil
	}
	p.coolUntil = t + int64(r.cfg.Cooldown)
	score := z * z / (z*z + r.cfg.Threshold*r.cfg.Threshold)
	return []*event.Anomaly{{
		Schema:       event.SchemaVersion,
		Id:           event.HashID(time.Unix(0, t), RateName, ev.Api, kind, value, ev.Id),
		TimeUnixNano: t,
		Detector:     RateName,
		Api:          ev.Api,
		Principal:    &event.Principal{Kind: kind, Value: value},
		Score:        score,
		Severity:     severity(score),
		Deviations: []*event.Deviation{{
			Feature: "requests_per_second", Observed: rate, Expected: a.base.median, Deviation: z,
		}},
		EventIds: []string{ev.Id},
		Summary: fmt.Sprintf("%s %s made %.1f req/s on %s over %s; principals there make %.2f req/s (%.0f robust σ above)",
			kind, value, rate, ev.Api, r.cfg.Window, a.base.median, z),
	}}
}

// advance moves p to bucket b, zeroing the buckets it skipped.
func (r *Rate) advance(p *principalRate, b int64) {
	gap := b - p.last
	if gap >= r.nBuckets {
		p.counts = [maxBuckets]uint32{}
	} else {
		for i := p.last + 1; i <= b; i++ {
			p.counts[i%r.nBuckets] = 0
		}
	}
	p.last = b
}

func (r *Rate) sum(p *principalRate) float64 {
	var n uint32
	for _, c := range p.counts[:r.nBuckets] {
		n += c
	}
	return float64(n)
}

// sweep drops principals idle for IdleAfter, at most once per IdleAfter/2.
func (r *Rate) sweep(b int64) {
	idle := int64(r.cfg.IdleAfter) / r.res
	if b-r.lastSwp < idle/2 {
		return
	}
	r.lastSwp = b
	for name, a := range r.apis {
		for k, p := range a.principals {
			if b-p.last > idle {
				delete(a.principals, k)
			}
		}
		if len(a.principals) == 0 {
			delete(r.apis, name)
		}
	}
}

// Principals returns the number of (API, principal) pairs held.
func (r *Rate) Principals() int {
	n := 0
	for _, a := range r.apis {
		n += len(a.principals)
	}
	return n
}

func severity(score float64) event.Severity {
	switch {
	case score >= 0.95:
		return event.Severity_SEVERITY_CRITICAL
	case score >= 0.8:
		return event.Severity_SEVERITY_HIGH
	case score >= 0.5:
		return event.Severity_SEVERITY_MEDIUM
	}
	return event.Severity_SEVERITY_LOW
}

func ownerHash(kind, value string) uint32 {
	h := uint32(2166136261)
	for i := 0; i < len(kind); i++ {
		h = (h ^ uint32(kind[i])) * 16777619
	}
	for i := 0; i < len(value); i++ {
		h = (h ^ uint32(value[i])) * 16777619
	}
	return h
}

// Baselines returns the current per-API baseline of requests per window,
// sorted by API, for snapshots. It computes them afresh without touching
// the state Observe uses, so taking snapshots never changes detections.
func (r *Rate) Baselines() []BaselineSnapshot {
	out := make([]BaselineSnapshot, 0, len(r.apis))
	for name, a := range r.apis {
		if a.base.len() == 0 {
			continue
		}
		median, mad, principals := a.base.peek()
		out = append(out, BaselineSnapshot{
			Detector: RateName, API: name, Feature: "requests_per_window",
			Centre: median, Spread: mad * madScale, Samples: a.base.len(), Principals: principals,
		})
	}
	slices.SortFunc(out, func(a, b BaselineSnapshot) int { return strings.Compare(a.API, b.API) })
	return out
}
