package detectors

import (
	"fmt"
	"slices"
	"time"
)

// Config configures the engine and every detector. Durations are event
// time. The zero value is not valid; start from DefaultConfig.
type Config struct {
	// Disable lists detectors (by name) that do not run.
	Disable []string `yaml:"disable"`
	// Windows are the short, medium and long rate windows (1m, 10m, 1h).
	// The medium window also bounds distinct objects, login counters and
	// misses; the short one is the error and latency detector's minute.
	// Shorter windows are for demos and tests.
	Windows [3]time.Duration `yaml:"windows"`
	// BaselineSamples is how many per-principal windows each API's
	// baselines keep.
	BaselineSamples int `yaml:"baseline_samples"`
	// WarmupSamples and WarmupPrincipals must both be reached before a
	// baseline is used: until then nothing is scored against it.
	WarmupSamples    int `yaml:"warmup_samples"`
	WarmupPrincipals int `yaml:"warmup_principals"`
	// Cooldown is how long a principal that raised an anomaly is not
	// reported again by the same detector, and teaches no baseline.
	Cooldown time.Duration `yaml:"cooldown"`
	// IdleAfter is how long a principal may be silent before its state is
	// dropped.
	IdleAfter time.Duration `yaml:"idle_after"`
	// RiskHalfLife is how fast a principal's combined risk decays.
	RiskHalfLife time.Duration `yaml:"risk_half_life"`
	// MaxP is the largest tail probability reported: a finding less
	// surprising than this is not an anomaly. Detectors may be stricter.
	MaxP float64 `yaml:"max_p"`

	Volumetric  VolumetricConfig  `yaml:"volumetric"`
	Stuffing    StuffingConfig    `yaml:"credential_stuffing"`
	Stolen      StolenConfig      `yaml:"stolen_token"`
	Enumeration EnumerationConfig `yaml:"enumeration"`
	Scraping    ScrapingConfig    `yaml:"scraping"`
	Probing     ProbingConfig     `yaml:"probing"`
	Timing      TimingConfig      `yaml:"bot_timing"`
	Params      ParamsConfig      `yaml:"parameters"`
	Inventory   InventoryConfig   `yaml:"inventory"`
	Health      HealthConfig      `yaml:"health"`
	Profile     ProfileConfig     `yaml:"profile"`
	Campaign    CampaignConfig    `yaml:"campaign"`
	Sequence    SequenceConfig    `yaml:"sequence"`
}

// DefaultConfig returns the defaults that docs/detection.md explains.
func DefaultConfig() Config {
	return Config{
		Windows:         [3]time.Duration{time.Minute, 10 * time.Minute, time.Hour},
		BaselineSamples: 512, WarmupSamples: 30, WarmupPrincipals: 5,
		Cooldown: 5 * time.Minute, IdleAfter: 75 * time.Minute, RiskHalfLife: 10 * time.Minute,
		MaxP:        1e-6,
		Volumetric:  VolumetricConfig{Threshold: 6, MinPerMinute: 20, MinRatio: 3},
		Stuffing:    StuffingConfig{MinFailures: 10, MinAccounts: 5, FailureFloor: 0.05},
		Stolen:      StolenConfig{MinRequests: 5, Overlap: 10 * time.Minute},
		Enumeration: EnumerationConfig{MinMisses: 20, MissFloor: 0.02, WalkLength: 25},
		Scraping:    ScrapingConfig{Threshold: 6, MinObjects: 60, MinKiB: 4096, MinRatio: 3},
		Probing:     ProbingConfig{MinMisses: 15, MissFloor: 0.02, DecoyCheck: "decoy", MinUnknown: 3},
		Inventory:   InventoryConfig{Repeat: 24 * time.Hour},
		Timing:      TimingConfig{MinGaps: 40, MaxMeanGap: 30 * time.Second, MaxCV: 0.12, Kinds: []string{"ip", "sub", "token"}},
		Params:      ParamsConfig{MinSamples: 200, MaxP: 1e-4},
		Health:      HealthConfig{MinRequests: 10, Threshold: 6, TimeOfDayDays: 2},
		Profile:     ProfileConfig{MaxP: 1e-12},
		Campaign:    CampaignConfig{MinMembers: 5, Floor: 0.01},
		Sequence: SequenceConfig{MinPrincipals: 30, MaxShare: 0.01, Floor: 0.02, MinImprobable: 4, SessionGap: 30 * time.Minute,
			Kinds: []string{"key", "sub", "token", "ip"}},
	}
}

// Validate reports the first bad field by its config key.
func (c Config) Validate() error {
	for i, d := range c.Disable {
		if !slices.Contains(Names(), d) {
			return fmt.Errorf("detectors.disable[%d]: %q is not a detector (have %v)", i, d, Names())
		}
	}
	w := c.Windows
	switch {
	case w[0] < 60*time.Millisecond || w[1] <= w[0] || w[2] <= w[1]:
		return fmt.Errorf("detectors.windows: %v, want three increasing durations, the first at least 60ms", w)
	case c.IdleAfter < w[2]:
		return fmt.Errorf("detectors.idle_after: %s, want at least the long window %s", c.IdleAfter, w[2])
	case c.BaselineSamples < 16:
		return fmt.Errorf("detectors.baseline_samples: %d, want at least 16", c.BaselineSamples)
	case c.WarmupSamples < 1 || c.WarmupSamples > c.BaselineSamples:
		return fmt.Errorf("detectors.warmup_samples: %d, want 1..baseline_samples", c.WarmupSamples)
	case c.WarmupPrincipals < 1:
		return fmt.Errorf("detectors.warmup_principals: %d, want at least 1", c.WarmupPrincipals)
	case c.Cooldown < 0:
		return fmt.Errorf("detectors.cooldown: %s, want ≥ 0", c.Cooldown)
	case c.RiskHalfLife <= 0:
		return fmt.Errorf("detectors.risk_half_life: %s, want > 0", c.RiskHalfLife)
	case !(c.MaxP > 0 && c.MaxP < 1):
		return fmt.Errorf("detectors.max_p: %g, want in (0,1)", c.MaxP)
	}
	for _, v := range []interface{ validate() error }{c.Volumetric, c.Stuffing, c.Stolen, c.Enumeration,
		c.Scraping, c.Probing, c.Timing, c.Params, c.Inventory, c.Health, c.Profile, c.Campaign, c.Sequence} {
		if err := v.validate(); err != nil {
			return err
		}
	}
	return nil
}

func positive(key string, v float64) error {
	if !(v > 0) {
		return fmt.Errorf("detectors.%s: %g, want > 0", key, v)
	}
	return nil
}

func errorsJoinFirst(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}
