package detectors

import (
	"fmt"
	"strings"

	"github.com/apiguard/apiguard/event"
)

// ProbingName names the probing detector's anomalies.
const ProbingName = "probing"

// ProbingConfig configures the probing detector.
type ProbingConfig struct {
	// MinMisses is the fewest 403/404/405 answers across all APIs in the
	// medium window (10 minutes) that can be a probe.
	MinMisses float64 `yaml:"min_misses"`
	// MissFloor is the smallest miss share the baseline is taken to have.
	MissFloor float64 `yaml:"miss_floor"`
	// DecoyCheck is the check name the proxy gives decoy hits.
	DecoyCheck string `yaml:"decoy_check"`
	// MinUnknown is the fewest unknown-route requests (routes.go) that can
	// be a probe, however few requests the principal made.
	MinUnknown float32 `yaml:"min_unknown"`
}

func (c ProbingConfig) validate() error {
	return errorsJoinFirst(positive("probing.min_misses", c.MinMisses), positive("probing.miss_floor", c.MissFloor),
		positive("probing.min_unknown", float64(c.MinUnknown)))
}

// scannerTraits are user-agent fragments of security scanners and attack
// tools. A match is an anomaly on its own (p below every threshold).
var scannerTraits = []string{"sqlmap", "nikto", "nuclei", "nmap", "masscan", "zgrab", "gobuster", "dirbuster",
	"wfuzz", "ffuf", "feroxbuster", "acunetix", "nessus", "openvas", "burp", "zap/", "wpscan", "jaeles", "arachni", "w3af"}

// probing finds principals mapping the API surface: a hit on a decoy path
// (no real client calls one), a scanner's user agent, requests for unknown
// routes and methods far above what established clients show (routes.go),
// or a burst of 403/404/405 answers across APIs far above the clients'
// share.
type probing struct {
	cfg ProbingConfig
	// lastUA and lastTrait cache the last user agent's scanner trait:
	// one client's requests come in runs. Derived, not state.
	lastUA, lastTrait string
}

func (*probing) name() string { return ProbingName }

func (d *probing) observe(e *Engine, x *ctx, out []finding) []finding {
	defer e.noteServedMethod(x)
	if x.ev.Check == d.cfg.DecoyCheck && d.cfg.DecoyCheck != "" {
		return append(out, finding{p: 1e-15, deviations: []*event.Deviation{{Feature: "decoy_hits", Observed: 1, Expected: 0}},
			summary: fmt.Sprintf("%s %s requested decoy path %s, which no real client calls", x.kind, x.val, x.ev.Path)})
	}
	if x.ev.UserAgent != d.lastUA {
		d.lastUA, d.lastTrait = strings.Clone(x.ev.UserAgent), scannerTrait(x.ev.UserAgent)
	}
	if t := d.lastTrait; t != "" {
		return append(out, finding{p: 1e-13, deviations: []*event.Deviation{{Feature: "scanner_user_agent", Observed: 1, Expected: 0}},
			summary: fmt.Sprintf("%s %s sends the user agent of the scanner %q (%s)", x.kind, x.val, t, clipString(x.ev.UserAgent, 80))})
	}
	if x.prin == nil {
		return out
	}
	if x.learn {
		defer e.st.Probe.add(x.miss)
	}
	unknown, why, strong := e.unknownRoute(x)
	defer e.noteServed(x, strong)
	n := len(out)
	if out = d.routeFinding(e, x, unknown, why, strong, out); len(out) > n {
		return out
	}
	req, miss := x.prin.recent()
	if miss < d.cfg.MinMisses {
		return out
	}
	base := e.st.Probe.value(d.cfg.MissFloor)
	p := binomialTail(int(miss), int(req), base)
	if p > e.cfg.MaxP {
		return out
	}
	return append(out, finding{p: p, deviations: []*event.Deviation{
		{Feature: "misses_" + e.clk.names[winMedium], Observed: miss, Expected: base * req, Deviation: zBinomial(miss, req, base)},
	}, summary: fmt.Sprintf("%s %s drew %.0f 403/404/405 answers in %.0f requests across APIs in %s (clients: %.1f%%); last %s %s",
		x.kind, x.val, miss, req, e.clk.names[winMedium], 100*base, x.ev.Method, clipString(x.ev.Path, 80))})
}

func scannerTrait(ua string) string {
	if ua == "" {
		return ""
	}
	lower := strings.ToLower(ua)
	for _, t := range scannerTraits {
		if strings.Contains(lower, t) {
			return strings.TrimSuffix(t, "/")
		}
	}
	return ""
}

// clipString shortens s to n bytes and an ellipsis, without cutting a
// character in two (an anomaly's strings must be valid UTF-8).
func clipString(s string, n int) string {
	if len(s) > n {
		return event.Clip(s, n) + "…"
	}
	return s
}
