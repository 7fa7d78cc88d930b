package responder

import (
	"errors"
	"fmt"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/apiguard/apiguard/event"
)

// Detectors are the detector names a rule may match (detectors' *Name
// constants; the responder does not import detectors, a test keeps the two
// lists equal).
var Detectors = []string{"campaign", "credential_stuffing", "enumeration", "error_latency", "parameters", "probing",
	"profile", "scraping", "shadow_api", "stolen_token", "bot_timing", "volumetric"}

// principalKinds are the principal kinds a rule may match: the enforcement
// kinds and event.KindAPI.
var principalKinds = []string{event.KindIP, event.KindCIDR, event.KindKey, event.KindToken, event.KindSub, event.KindFP, event.KindAPI}

// The actions a rule may take.
const (
	DoRevoke   = "revoke"
	DoThrottle = "throttle"
	DoBlock    = "block"
	DoFlag     = "flag"
)

// The targets a rule may act on.
const (
	// TargetPrincipal acts on the anomaly's principal. It is the default.
	TargetPrincipal = "principal"
	// TargetMembers acts on the members the anomaly names (the attacking
	// members of a shared principal, the new client of a stolen
	// credential) and never on the principal; an anomaly that names none
	// is only flagged.
	TargetMembers = "members"
	// TargetBoth acts on the anomaly's principal and on the members it
	// names, with the same action and TTL (a revoke of an address blocks
	// it): a stolen token is revoked and its thief's address blocked.
	TargetBoth = "principal_and_members"
)

// RateBaseline is the throttle rate that the anomaly's expected value
// gives: the requests a normal principal makes on the API over the
// deviated window (volumetric's requests_<window> features), per second.
const RateBaseline = "baseline"

// Rule is one rule of the policy: what it matches and what it does. Rules
// are tried in order and the first that matches decides; an anomaly that
// no rule matches is not acted on.
type Rule struct {
	// Name identifies the rule in actions ("policy:<name>") and errors.
	Name string `yaml:"name"`
	// Match is what the rule matches; an empty Match matches everything.
	Match Match `yaml:"match"`
	// Action is revoke, throttle, block or flag. Revoke applies to
	// credentials (token, sub, key); a network or fingerprint that a
	// revoke targets among the members is blocked. Flag records and
	// alerts only.
	Action string `yaml:"action"`
	// Target is principal (default), members or principal_and_members.
	Target string `yaml:"target,omitempty"`
	// TTL is how long the entry lasts before escalation (required except
	// for flag).
	TTL time.Duration `yaml:"ttl,omitempty"`
	// Rate is a throttle's rate: "baseline" or requests per second.
	Rate string `yaml:"rate,omitempty"`
	// RateFactor multiplies a baseline rate (default 1): 2 lets a principal
	// do twice what the API's normal principal does.
	RateFactor float64 `yaml:"rate_factor,omitempty"`
	// MinRate is the least rate a throttle allows, in requests per second
	// (default 0.1), so a baseline near zero never amounts to a block.
	MinRate float64 `yaml:"min_rate,omitempty"`
	// SpareShared treats an address, network or fingerprint that any
	// established principal shares (event.Anomaly.SharedBy above 0) as
	// max_shared_principals treats one shared by more: it is not acted on;
	// the members the anomaly names are, or it is only recorded. For
	// rules whose action would otherwise refuse a partner behind the same
	// address as a scanner. It also spares a member address that
	// principals with good history succeed from (other than the anomaly's
	// principal and members): the member is recorded, not blocked.
	SpareShared bool `yaml:"spare_shared,omitempty"`
}

// Match is what a rule matches. Every field set must hold.
type Match struct {
	// Detectors are the detectors whose anomalies match; empty: any.
	Detectors []string `yaml:"detectors,omitempty,flow"`
	// Kinds are the principal kinds that match; empty: any.
	Kinds []string `yaml:"kinds,omitempty,flow"`
	// MinScore is the least score that matches.
	MinScore float64 `yaml:"min_score,omitempty"`
	// MinSeverity is the least severity that matches: low, medium, high
	// or critical; empty: any.
	MinSeverity string `yaml:"min_severity,omitempty"`
	// APIs are API templates ("POST /orders/{id}") or patterns with *
	// (path.Match on "METHOD /path", e.g. "* /admin/*"); empty: any.
	APIs []string `yaml:"apis,omitempty,flow"`
	// MinOffences is how many enforced actions the principal must have had
	// within escalation.window for the rule to match (0: any history).
	MinOffences int `yaml:"min_offences,omitempty"`
}

// severities maps the names a rule uses to severities.
var severities = map[string]event.Severity{"low": event.Severity_SEVERITY_LOW, "medium": event.Severity_SEVERITY_MEDIUM,
	"high": event.Severity_SEVERITY_HIGH, "critical": event.Severity_SEVERITY_CRITICAL}

// DefaultPolicies returns the policy used when responder.policies is
// empty, with blockTTL as the base TTL and minScore as every rule's least
// score:
//
//   - stolen-token-revoke: a stolen token (principal kind token: the jti,
//     or the hash of an opaque token) is revoked, and the address of the
//     new client the anomaly names blocked, for a day — unless principals
//     with good history use that address (spare_shared): then it is
//     recorded only.
//   - stolen-credential-members: a stolen API key or subject is never acted
//     on as such — its owner is the victim; what the anomaly names of the
//     new client (its address, its token) is blocked or revoked, an
//     address that principals with good history use only recorded; when it
//     names nothing the anomaly is flagged.
//   - stuffing-block-source: credential stuffing blocks its source (an
//     address, a network, a tool's fingerprint); a shared one never — an
//     address, network or fingerprint that any established principal
//     shares (spare_shared) is spared and the addresses the anomaly names
//     are blocked instead.
//   - volumetric-throttle: a volumetric anomaly on a keyed principal (key,
//     token, subject) is throttled to twice the API's baseline rate.
//   - scanners-block-ip: probing, enumeration and parameter tampering
//     block the address, unless an established principal shares it (a
//     partner's batch job behind the same NAT): then it is recorded.
//   - shadow-api-flag: shadow and zombie APIs are flagged.
//   - default-block: any other anomaly blocks its principal (the
//     behaviour before policies).
func DefaultPolicies(blockTTL time.Duration, minScore float64) []Rule {
	return []Rule{
		{Name: "stolen-token-revoke", Match: Match{Detectors: []string{"stolen_token"}, Kinds: []string{event.KindToken}, MinScore: minScore},
			Action: DoRevoke, Target: TargetBoth, TTL: 24 * time.Hour, SpareShared: true},
		{Name: "stolen-credential-members", Match: Match{Detectors: []string{"stolen_token"}, MinScore: minScore},
			Action: DoRevoke, Target: TargetMembers, TTL: 24 * time.Hour, SpareShared: true},
		{Name: "stuffing-block-source", Match: Match{Detectors: []string{"credential_stuffing"}, MinScore: minScore},
			Action: DoBlock, TTL: blockTTL, SpareShared: true},
		{Name: "volumetric-throttle", Match: Match{Detectors: []string{"volumetric"}, Kinds: []string{event.KindKey, event.KindToken, event.KindSub}, MinScore: minScore},
			Action: DoThrottle, TTL: blockTTL, Rate: RateBaseline, RateFactor: 2, MinRate: 0.1},
		{Name: "scanners-block-ip", Match: Match{Detectors: []string{"probing", "enumeration", "parameters"}, Kinds: []string{event.KindIP, event.KindCIDR}, MinScore: minScore},
			Action: DoBlock, TTL: blockTTL, SpareShared: true},
		{Name: "shadow-api-flag", Match: Match{Detectors: []string{"shadow_api"}}, Action: DoFlag},
		{Name: "default-block", Match: Match{MinScore: minScore}, Action: DoBlock, TTL: blockTTL},
	}
}

// Policy is a validated, ordered list of rules. It is immutable and safe
// for concurrent use.
type Policy struct {
	rules []rule
}

// rule is a Rule compiled.
type rule struct {
	Rule
	detectors, kinds map[string]bool
	severity         event.Severity
	rate             float64 // fixed rate; 0 with baseline
	baseline         bool
}

// CompilePolicy validates rules and returns the policy. Errors name the
// rule (responder.policies[i] "name") and what is wrong: an unknown
// detector, kind, action, target or severity, an impossible TTL or rate,
// or a rule that can never match (an earlier rule matches all it does, or
// its conditions exclude each other).
func CompilePolicy(rules []Rule) (*Policy, error) {
	p := &Policy{}
	names := map[string]bool{}
	for i, r := range rules {
		where := fmt.Sprintf("responder.policies[%d] %q", i, r.Name)
		c, err := compileRule(r)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", where, err)
		}
		if names[r.Name] {
			return nil, fmt.Errorf("%s: another rule has that name", where)
		}
		names[r.Name] = true
		for _, prev := range p.rules {
			if prev.covers(&c) {
				return nil, fmt.Errorf("%s: can never match: rule %q before it matches every anomaly it does", where, prev.Name)
			}
		}
		p.rules = append(p.rules, c)
	}
	return p, nil
}

func compileRule(r Rule) (rule, error) {
	c := rule{Rule: r, detectors: map[string]bool{}, kinds: map[string]bool{}}
	if strings.TrimSpace(r.Name) == "" || strings.ContainsAny(r.Name, " \t\n") {
		return c, errors.New("name: want a name without spaces")
	}
	for _, d := range r.Match.Detectors {
		if !slices.Contains(Detectors, d) {
			return c, fmt.Errorf("match.detectors: unknown detector %q (want one of %s)", d, strings.Join(Detectors, ", "))
		}
		c.detectors[d] = true
	}
	for _, k := range r.Match.Kinds {
		if !slices.Contains(principalKinds, k) {
			return c, fmt.Errorf("match.kinds: unknown kind %q (want one of %s)", k, strings.Join(principalKinds, ", "))
		}
		c.kinds[k] = true
	}
	if r.Match.MinScore < 0 || r.Match.MinScore > 1 {
		return c, fmt.Errorf("match.min_score: %g, want 0..1", r.Match.MinScore)
	}
	if r.Match.MinSeverity != "" {
		s, ok := severities[r.Match.MinSeverity]
		if !ok {
			return c, fmt.Errorf("match.min_severity: unknown severity %q (want low, medium, high or critical)", r.Match.MinSeverity)
		}
		c.severity = s
	}
	for _, a := range r.Match.APIs {
		if _, err := path.Match(a, ""); err != nil {
			return c, fmt.Errorf("match.apis: bad pattern %q: %w", a, err)
		}
	}
	if r.Match.MinOffences < 0 {
		return c, fmt.Errorf("match.min_offences: %d, want 0 or more", r.Match.MinOffences)
	}
	switch r.Target {
	case "", TargetPrincipal, TargetMembers, TargetBoth:
	default:
		return c, fmt.Errorf("target: unknown target %q (want principal, members or principal_and_members)", r.Target)
	}
	switch r.Action {
	case DoFlag:
		if r.TTL != 0 || r.Rate != "" {
			return c, errors.New("flag takes no ttl and no rate")
		}
		return c, nil
	case DoRevoke, DoThrottle, DoBlock:
	default:
		return c, fmt.Errorf("action: unknown action %q (want revoke, throttle, block or flag)", r.Action)
	}
	switch {
	case r.TTL < time.Second:
		return c, fmt.Errorf("ttl: %s, want at least 1s", r.TTL)
	case r.TTL > MaxTTL:
		return c, fmt.Errorf("ttl: %s, longer than %s", r.TTL, MaxTTL)
	}
	if len(c.kinds) > 0 && c.kinds[event.KindAPI] && len(c.kinds) == 1 {
		return c, fmt.Errorf("can never act: %s needs a client principal, and the rule matches only api (use flag)", r.Action)
	}
	if r.Action == DoRevoke && r.Target != TargetMembers && len(c.kinds) > 0 {
		for k := range c.kinds {
			if k != event.KindToken && k != event.KindSub && k != event.KindKey {
				return c, fmt.Errorf("revoke: kind %s is not a credential (revoke takes token, sub or key; block the others)", k)
			}
		}
	}
	if r.Action == DoRevoke && r.Target != TargetMembers && len(c.kinds) == 0 {
		return c, errors.New("revoke: match.kinds must list the credential kinds (token, sub, key) it revokes")
	}
	if r.Action != DoThrottle {
		if r.Rate != "" || r.RateFactor != 0 || r.MinRate != 0 {
			return c, fmt.Errorf("rate: only a throttle takes a rate, not %s", r.Action)
		}
		return c, nil
	}
	switch {
	case r.Rate == RateBaseline:
		c.baseline = true
	case r.Rate == "":
		return c, errors.New("rate: a throttle needs a rate (baseline, or requests per second)")
	default:
		v, err := strconv.ParseFloat(r.Rate, 64)
		if err != nil || v <= 0 || v > 1e6 {
			return c, fmt.Errorf("rate: %q, want baseline or requests per second in (0, 1e6]", r.Rate)
		}
		c.rate = v
	}
	if r.RateFactor < 0 || r.RateFactor > 1000 {
		return c, fmt.Errorf("rate_factor: %g, want 0 (1) to 1000", r.RateFactor)
	}
	if r.MinRate < 0 || r.MinRate > 1e6 {
		return c, fmt.Errorf("min_rate: %g, want 0 to 1e6", r.MinRate)
	}
	return c, nil
}

// covers reports whether r matches every anomaly that o matches, so that o,
// after r, can never match.
func (r *rule) covers(o *rule) bool {
	sub := func(a, b map[string]bool) bool { // a matches all b does
		if len(a) == 0 {
			return true
		}
		if len(b) == 0 {
			return false
		}
		for k := range b {
			if !a[k] {
				return false
			}
		}
		return true
	}
	apis := len(r.Match.APIs) == 0
	if !apis && len(o.Match.APIs) > 0 {
		apis = true
		for _, a := range o.Match.APIs {
			if !slices.Contains(r.Match.APIs, a) {
				apis = false
			}
		}
	}
	return sub(r.detectors, o.detectors) && sub(r.kinds, o.kinds) && apis &&
		r.Match.MinScore <= o.Match.MinScore && r.severity <= o.severity && r.Match.MinOffences <= o.Match.MinOffences
}

// matches reports whether r matches a with offences earlier actions.
func (r *rule) matches(a *event.Anomaly, offences int) bool {
	if len(r.detectors) > 0 && !r.detectors[a.Detector] {
		return false
	}
	if len(r.kinds) > 0 && !r.kinds[a.GetPrincipal().GetKind()] {
		return false
	}
	if a.Score < r.Match.MinScore || a.Severity < r.severity || offences < r.Match.MinOffences {
		return false
	}
	if len(r.Match.APIs) == 0 {
		return true
	}
	for _, p := range r.Match.APIs {
		if p == a.Api {
			return true
		}
		if ok, _ := path.Match(p, a.Api); ok {
			return true
		}
	}
	return false
}

// Rules returns the policy's rules, in order.
func (p *Policy) Rules() []Rule {
	out := make([]Rule, len(p.rules))
	for i := range p.rules {
		out[i] = p.rules[i].Rule
	}
	return out
}

// Select returns the first rule matching a, whose principal has had
// offences enforced actions within the escalation window, or nil.
func (p *Policy) Select(a *event.Anomaly, offences int) *Rule {
	if r := p.sel(a, offences); r != nil {
		return &r.Rule
	}
	return nil
}

func (p *Policy) sel(a *event.Anomaly, offences int) *rule {
	for i := range p.rules {
		if p.rules[i].matches(a, offences) {
			return &p.rules[i]
		}
	}
	return nil
}

// throttleRate returns the rate of a throttle by r for a, in requests
// per second, and what it came from.
func (r *rule) throttleRate(a *event.Anomaly) (float64, string) {
	if !r.baseline {
		return r.rate, "fixed rate"
	}
	factor := r.RateFactor
	if factor == 0 {
		factor = 1
	}
	minRate := r.MinRate
	if minRate == 0 {
		minRate = 0.1
	}
	// The shortest deviated window's expected count is the normal
	// principal's rate the detector compared with.
	best, from := -1.0, ""
	bestLen := time.Duration(0)
	for _, d := range a.Deviations {
		w, ok := strings.CutPrefix(d.Feature, "requests_")
		if !ok {
			continue
		}
		l, err := time.ParseDuration(w)
		if err != nil || l <= 0 {
			continue
		}
		if best < 0 || l < bestLen {
			best, bestLen, from = d.Expected/l.Seconds(), l, d.Feature
		}
	}
	if best < 0 {
		return minRate, "no baseline in the anomaly: min_rate"
	}
	rate := max(best*factor, minRate)
	return rate, fmt.Sprintf("baseline %.3g/s (%s expected) × %g", best, from, factor)
}
