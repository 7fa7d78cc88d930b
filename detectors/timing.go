package detectors

import (
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/apiguard/apiguard/event"
)

// TimingName names the bot-timing detector's anomalies.
const TimingName = "bot_timing"

// TimingConfig configures the bot-timing detector.
type TimingConfig struct {
	// MinGaps is how many inter-arrival gaps a principal needs first.
	MinGaps int `yaml:"min_gaps"`
	// MaxMeanGap: slower principals are not scored (a nightly job is
	// regular and harmless).
	MaxMeanGap time.Duration `yaml:"max_mean_gap"`
	// MaxCV is the coefficient of variation of the gaps at or below which
	// timing is too regular for a person.
	MaxCV float64 `yaml:"max_cv"`
	// Kinds are the principal kinds scored. API keys are machines by
	// contract, so they are not scored by default.
	Kinds []string `yaml:"kinds"`
}

func (c TimingConfig) validate() error {
	if c.MinGaps < 10 {
		return fmt.Errorf("detectors.bot_timing.min_gaps: %d, want at least 10", c.MinGaps)
	}
	return errorsJoinFirst(positive("bot_timing.max_mean_gap", c.MaxMeanGap.Seconds()), positive("bot_timing.max_cv", c.MaxCV))
}

// timing finds principals whose requests arrive with a regularity no
// person shows. People's gaps vary about as much as they last
// (coefficient of variation near 1, as in a Poisson process); a script's
// sleep loop gives a CV near 0. Under the Poisson hypothesis the CV of the
// moving window (about 39 gaps) has a standard error of about 0.16; the
// tail probability of the observed CV under it is the score.
type timing struct{ cfg TimingConfig }

func (*timing) name() string { return TimingName }

func (d *timing) observe(e *Engine, x *ctx, out []finding) []finding {
	p := x.prin
	if p == nil || int(p.Gaps) < d.cfg.MinGaps || !slices.Contains(d.cfg.Kinds, x.kind) {
		return out
	}
	mean := float64(p.GapMean)
	if mean <= 0 || mean > d.cfg.MaxMeanGap.Seconds() {
		return out
	}
	cv := math.Sqrt(max(float64(p.GapVar), 0)) / mean
	if cv > d.cfg.MaxCV {
		return out
	}
	// The standard error of the CV of n exponential gaps is about 1/√n,
	// with n the moving window's effective size.
	se := math.Sqrt(gapAlpha / (2 - gapAlpha))
	z := (1 - cv) / se
	prob := normalTail(z)
	if prob > e.cfg.MaxP {
		return out
	}
	return append(out, finding{p: prob, api: "*", deviations: []*event.Deviation{
		{Feature: "interarrival_cv", Observed: cv, Expected: 1, Deviation: -z},
		{Feature: "interarrival_mean_s", Observed: mean, Expected: mean},
	}, summary: fmt.Sprintf("%s %s sends a request every %.2fs with a variation of %.0f%% (people vary about 100%%): %s",
		x.kind, x.val, mean, 100*cv, event.UAFamily(x.ev.UserAgent))})
}
