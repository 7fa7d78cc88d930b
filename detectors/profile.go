package detectors

import (
	"fmt"
	"math"

	"github.com/apiguard/apiguard/event"
)

// ProfileName names the multivariate window-profile detector's anomalies.
const ProfileName = "profile"

// ProfileConfig configures the profile detector.
type ProfileConfig struct {
	// MaxP is the χ² tail probability at or below which a principal's
	// 10-minute profile is anomalous. It is strict: each feature alone is
	// also scored by its own detector.
	MaxP float64 `yaml:"max_p"`
}

func (c ProfileConfig) validate() error {
	if !(c.MaxP > 0 && c.MaxP < 1) {
		return fmt.Errorf("detectors.profile.max_p: %g, want in (0,1)", c.MaxP)
	}
	return nil
}

// profileFeatures name the dimensions of a window profile.
var profileFeatures = [profileDims]string{"log_requests_10m", "log_kib_10m", "miss_ratio_10m", "log_objects_10m"}

func profileVector(dst []float64, req, kib, miss, objs float64) []float64 {
	return append(dst, math.Log1p(req), math.Log1p(kib), miss/max(req, 1), math.Log1p(objs))
}

// profile scores a principal's last 10 minutes on an API as one point —
// requests, response volume, miss share and distinct objects over the
// medium window — by its
// Mahalanobis distance from the API's principals (their mean and
// covariance, learned from completed windows). It finds combinations no
// single feature shows: moderate volume with many misses and many
// objects, say. The squared distance is χ²-distributed with 4 degrees of
// freedom under normality; its tail is the score.
type profile struct{ cfg ProfileConfig }

func (*profile) name() string { return ProfileName }

func (d *profile) observe(e *Engine, x *ctx, out []finding) []finding {
	if x.pair == nil || x.api.Profile.N < e.cfg.WarmupSamples || !e.whole(winMedium, x.t) {
		return out
	}
	req, miss, kib := x.pair.recent()
	objs := x.pair.distinctObjects()
	if req < 10 {
		return out
	}
	v := profileVector(x.samplesBuf[:0], req, kib, miss, objs)
	d2, p, ok := x.api.Profile.mahalanobis(v, 0.01)
	if !ok || p > d.cfg.MaxP {
		return out
	}
	// Only more than usual is abuse: a principal doing less, or fewer
	// objects than requests, is not.
	above := false
	cov := x.api.Profile
	devs := make([]*event.Deviation, 0, profileDims+1)
	devs = append(devs, &event.Deviation{Feature: "mahalanobis_d2", Observed: d2, Expected: profileDims, Deviation: math.Sqrt(d2)})
	n := float64(cov.N - 1)
	for i, f := range profileFeatures {
		sd := math.Sqrt(max(cov.M2[i*profileDims+i]/n, 1e-9))
		z := (v[i] - cov.Mean[i]) / sd
		if math.Abs(z) >= 2 {
			devs = append(devs, &event.Deviation{Feature: f, Observed: v[i], Expected: cov.Mean[i], Deviation: z})
		}
		above = above || z >= 3
	}
	if !above {
		return out
	}
	return append(out, finding{p: p, deviations: devs, summary: fmt.Sprintf(
		"%s %s's last 10 minutes on %s (%.0f requests, %.0f KiB, %.0f misses, %.0f objects) lie %.1f Mahalanobis units from the API's principals",
		x.kind, x.val, x.ev.Api, req, kib, miss, objs, math.Sqrt(d2))})
}
