package responder_test

import (
	"context"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/apiguard/apiguard/detectors"
	"github.com/apiguard/apiguard/enforce"
	"github.com/apiguard/apiguard/event"
	"github.com/apiguard/apiguard/pipeline/responder"
)

// TestDetectorNames keeps the responder's list of detectors equal to the
// detectors' names.
func TestDetectorNames(t *testing.T) {
	want := []string{detectors.CampaignName, detectors.StuffingName, detectors.EnumerationName, detectors.HealthName, detectors.ParamsName,
		detectors.ProbingName, detectors.ProfileName, detectors.ScrapingName, detectors.InventoryName, detectors.StolenName,
		detectors.TimingName, detectors.VolumetricName}
	got := slices.Clone(responder.Detectors)
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("responder.Detectors = %v, want %v", got, want)
	}
}

// mkAnomaly builds an anomaly of detector on kind value.
func mkAnomaly(id, detector, kind, value string, score float64, devs ...*event.Deviation) *event.Anomaly {
	return &event.Anomaly{Id: id, TimeUnixNano: trigger.UnixNano(), Detector: detector, Api: "POST /orders",
		Principal: &event.Principal{Kind: kind, Value: value}, Score: score, Severity: event.Severity_SEVERITY_HIGH,
		Summary: "test", Deviations: devs}
}

func withMembers(a *event.Anomaly, members ...string) *event.Anomaly {
	for _, m := range members {
		k, v, _ := strings.Cut(m, " ")
		a.Members = append(a.Members, &event.Principal{Kind: k, Value: v})
	}
	return a
}

// run applies anomalies to a fresh responder with cfg and returns its
// bucket, its audit and its counters.
func run(t *testing.T, cfg responder.Config, now func() time.Time, as ...*event.Anomaly) (*memWriter, *memAudit, *responder.Responder) {
	t.Helper()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	w, audit := &memWriter{entries: map[enforce.Key]enforce.Entry{}}, &memAudit{}
	r := responder.New(cfg, w, audit, now, slog.New(slog.DiscardHandler))
	seesTraffic(r)
	for _, a := range as {
		if err := r.WriteAnomaly(context.Background(), a); err != nil {
			t.Fatal(err)
		}
	}
	return w, audit, r
}

// TestDefaultPolicies holds each default rule to what docs/response.md
// says it does.
func TestDefaultPolicies(t *testing.T) {
	now := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	tests := []struct {
		name    string
		a       *event.Anomaly
		entries map[string]string // "kind value" → "action ttl [rate]"
		actor   string
		flagged uint64
	}{
		{name: "stolen token: revoked for a day",
			a:       mkAnomaly("a1", "stolen_token", "token", "jti-123", 0.99),
			entries: map[string]string{"token jti-123": "revoke 24h0m0s"}, actor: "policy:stolen-token-revoke"},
		{name: "stolen token naming its thief's address: revoked, and the address blocked for the day",
			a:       withMembers(mkAnomaly("a1b", "stolen_token", "token", "jti-124", 0.99), "ip 198.51.100.10"),
			entries: map[string]string{"token jti-124": "revoke 24h0m0s", "ip 198.51.100.10": "block 24h0m0s"}, actor: "policy:stolen-token-revoke"},
		{name: "stolen subject: the owner is never acted on, the new client is",
			a:       withMembers(mkAnomaly("a2", "stolen_token", "sub", "alice", 0.99), "ip 198.51.100.9", "token jti-thief"),
			entries: map[string]string{"ip 198.51.100.9": "block 24h0m0s", "token jti-thief": "revoke 24h0m0s"}, actor: "policy:stolen-credential-members"},
		{name: "stolen subject naming no client: flagged only",
			a:       mkAnomaly("a3", "stolen_token", "sub", "alice", 0.99),
			entries: map[string]string{}, flagged: 1},
		{name: "stolen key naming no client: flagged only",
			a:       mkAnomaly("a4", "stolen_token", "key", "k-partner", 0.99),
			entries: map[string]string{}, flagged: 1},
		{name: "credential stuffing: the source is blocked",
			a:       mkAnomaly("a5", "credential_stuffing", "ip", "203.0.113.50", 0.9),
			entries: map[string]string{"ip 203.0.113.50": "block 10m0s"}, actor: "policy:stuffing-block-source"},
		{name: "volumetric on a key: throttled to twice the baseline",
			a: mkAnomaly("a6", "volumetric", "key", "k-partner", 0.9,
				&event.Deviation{Feature: "requests_1m", Observed: 900, Expected: 30},
				&event.Deviation{Feature: "requests_10m", Observed: 2000, Expected: 240}),
			entries: map[string]string{"key k-partner": "throttle 10m0s 1"}, actor: "policy:volumetric-throttle"},
		{name: "volumetric with a tiny baseline: min_rate",
			a:       mkAnomaly("a7", "volumetric", "sub", "bob", 0.9, &event.Deviation{Feature: "requests_1h", Observed: 900, Expected: 3}),
			entries: map[string]string{"sub bob": "throttle 10m0s 0.1"}, actor: "policy:volumetric-throttle"},
		{name: "volumetric on an address: blocked",
			a:       mkAnomaly("a8", "volumetric", "ip", "203.0.113.8", 0.9),
			entries: map[string]string{"ip 203.0.113.8": "block 10m0s"}, actor: "policy:default-block"},
		{name: "probing: the address is blocked",
			a:       mkAnomaly("a9", "probing", "ip", "203.0.113.9", 0.9),
			entries: map[string]string{"ip 203.0.113.9": "block 10m0s"}, actor: "policy:scanners-block-ip"},
		{name: "shadow API: flagged",
			a:       mkAnomaly("a10", "shadow_api", "api", "GET /debug", 0.9),
			entries: map[string]string{}, flagged: 1},
		{name: "below min_score: nothing",
			a:       mkAnomaly("a11", "probing", "ip", "203.0.113.11", 0.3),
			entries: map[string]string{}},
		{name: "another detector: blocked as before policies",
			a:       mkAnomaly("a12", "scraping", "key", "k-scraper", 0.9),
			entries: map[string]string{"key k-scraper": "block 10m0s"}, actor: "policy:default-block"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w, audit, r := run(t, responder.DefaultConfig(), clock, tt.a)
			got := map[string]string{}
			for k, e := range w.entries {
				v := e.Action.String() + " " + e.Expires.Sub(now).String()
				if e.Rate != 0 {
					v += " " + strings.TrimRight(strings.TrimRight(strconvF(e.Rate), "0"), ".")
				}
				got[k.String()] = v
				if e.Actor != tt.actor {
					t.Errorf("%s: actor %q, want %q", k, e.Actor, tt.actor)
				}
				if !strings.Contains(e.Reason, "rule "+strings.TrimPrefix(tt.actor, "policy:")) || !strings.HasPrefix(e.Reason, tt.a.Detector+" anomaly on") {
					t.Errorf("%s: reason %q does not say the anomaly and the rule", k, e.Reason)
				}
			}
			if !mapsEqual(got, tt.entries) {
				t.Errorf("entries %v, want %v", got, tt.entries)
			}
			if len(audit.actions) != len(tt.entries) {
				t.Errorf("%d actions audited, want %d", len(audit.actions), len(tt.entries))
			}
			if f := r.Stats().Flagged.Load(); f != tt.flagged {
				t.Errorf("flagged %d, want %d", f, tt.flagged)
			}
		})
	}
}

func strconvF(f float64) string { return strings.TrimSpace(strings.Replace(fmtF(f), "+", "", 1)) }

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// TestRuleMatching: each condition of a rule, alone.
func TestRuleMatching(t *testing.T) {
	base := func() *event.Anomaly { return mkAnomaly("m", "volumetric", "key", "k", 0.8) }
	tests := []struct {
		name  string
		match responder.Match
		a     func(*event.Anomaly)
		want  bool
	}{
		{"empty matches all", responder.Match{}, nil, true},
		{"detector", responder.Match{Detectors: []string{"probing"}}, nil, false},
		{"detector listed", responder.Match{Detectors: []string{"probing", "volumetric"}}, nil, true},
		{"kind", responder.Match{Kinds: []string{"ip"}}, nil, false},
		{"score below", responder.Match{MinScore: 0.9}, nil, false},
		{"score at", responder.Match{MinScore: 0.8}, nil, true},
		{"severity below", responder.Match{MinSeverity: "critical"}, nil, false},
		{"severity at", responder.Match{MinSeverity: "high"}, nil, true},
		{"api exact", responder.Match{APIs: []string{"POST /orders"}}, nil, true},
		{"api pattern", responder.Match{APIs: []string{"* /orders*"}}, nil, true},
		{"api pattern misses", responder.Match{APIs: []string{"GET /*"}}, nil, false},
		{"api template", responder.Match{APIs: []string{"GET /orders/{id}"}}, func(a *event.Anomaly) { a.Api = "GET /orders/{id}" }, true},
		{"history needed", responder.Match{MinOffences: 1}, nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := responder.CompilePolicy([]responder.Rule{{Name: "r", Match: tt.match, Action: "flag"}})
			if err != nil {
				t.Fatal(err)
			}
			a := base()
			if tt.a != nil {
				tt.a(a)
			}
			if got := p.Select(a, 0) != nil; got != tt.want {
				t.Errorf("matched %v, want %v", got, tt.want)
			}
		})
	}
	p, _ := responder.CompilePolicy([]responder.Rule{{Name: "repeat", Match: responder.Match{MinOffences: 2}, Action: "block", TTL: time.Hour},
		{Name: "first", Action: "throttle", TTL: time.Minute, Rate: "5"}})
	if r := p.Select(base(), 2); r == nil || r.Name != "repeat" {
		t.Errorf("with 2 offences: %v, want repeat", r)
	}
	if r := p.Select(base(), 1); r == nil || r.Name != "first" {
		t.Errorf("with 1 offence: %v, want first", r)
	}
}

// TestPolicyValidation: bad rules are refused at start with an error that
// names the rule and what is wrong.
func TestPolicyValidation(t *testing.T) {
	ok := responder.Rule{Name: "ok", Action: "block", TTL: time.Minute}
	tests := []struct {
		name  string
		rules []responder.Rule
		want  string
	}{
		{"unknown detector", []responder.Rule{{Name: "x", Match: responder.Match{Detectors: []string{"ddos"}}, Action: "block", TTL: time.Minute}}, `policies[0] "x": match.detectors: unknown detector "ddos"`},
		{"unknown kind", []responder.Rule{{Name: "x", Match: responder.Match{Kinds: []string{"email"}}, Action: "block", TTL: time.Minute}}, `unknown kind "email"`},
		{"unknown action", []responder.Rule{{Name: "x", Action: "nuke", TTL: time.Minute}}, `unknown action "nuke"`},
		{"no ttl", []responder.Rule{{Name: "x", Action: "block"}}, "ttl: 0s, want at least 1s"},
		{"sub-second ttl", []responder.Rule{{Name: "x", Action: "block", TTL: time.Millisecond}}, "ttl: 1ms"},
		{"ttl too long", []responder.Rule{{Name: "x", Action: "block", TTL: 400 * 24 * time.Hour}}, "longer than"},
		{"negative ttl", []responder.Rule{{Name: "x", Action: "throttle", TTL: -time.Minute, Rate: "1"}}, "ttl: -1m0s"},
		{"flag with ttl", []responder.Rule{{Name: "x", Action: "flag", TTL: time.Minute}}, "flag takes no ttl"},
		{"throttle without rate", []responder.Rule{{Name: "x", Action: "throttle", TTL: time.Minute}}, "a throttle needs a rate"},
		{"bad rate", []responder.Rule{{Name: "x", Action: "throttle", TTL: time.Minute, Rate: "-3"}}, `rate: "-3"`},
		{"rate on a block", []responder.Rule{{Name: "x", Action: "block", TTL: time.Minute, Rate: "3"}}, "only a throttle takes a rate"},
		{"revoke an address", []responder.Rule{{Name: "x", Match: responder.Match{Kinds: []string{"ip"}}, Action: "revoke", TTL: time.Minute}}, "kind ip is not a credential"},
		{"revoke without kinds", []responder.Rule{{Name: "x", Action: "revoke", TTL: time.Minute}}, "match.kinds must list"},
		{"block an api", []responder.Rule{{Name: "x", Match: responder.Match{Kinds: []string{"api"}}, Action: "block", TTL: time.Minute}}, "can never act"},
		{"bad score", []responder.Rule{{Name: "x", Match: responder.Match{MinScore: 1.5}, Action: "flag"}}, "min_score: 1.5"},
		{"bad severity", []responder.Rule{{Name: "x", Match: responder.Match{MinSeverity: "severe"}, Action: "flag"}}, `unknown severity "severe"`},
		{"bad pattern", []responder.Rule{{Name: "x", Match: responder.Match{APIs: []string{"GET /[a"}}, Action: "flag"}}, "bad pattern"},
		{"bad target", []responder.Rule{{Name: "x", Target: "everyone", Action: "block", TTL: time.Minute}}, `unknown target "everyone"`},
		{"no name", []responder.Rule{{Action: "block", TTL: time.Minute}}, "name:"},
		{"same name", []responder.Rule{{Name: "ok", Match: responder.Match{Kinds: []string{"ip"}}, Action: "block", TTL: time.Minute}, ok}, "another rule has that name"},
		{"shadowed by a catch-all", []responder.Rule{ok, {Name: "late", Match: responder.Match{Detectors: []string{"probing"}}, Action: "block", TTL: time.Hour}},
			`policies[1] "late": can never match: rule "ok" before it matches every anomaly it does`},
		{"shadowed by a wider rule", []responder.Rule{
			{Name: "scanners", Match: responder.Match{Detectors: []string{"probing", "enumeration"}, MinScore: 0.5}, Action: "block", TTL: time.Hour},
			{Name: "probing-strong", Match: responder.Match{Detectors: []string{"probing"}, MinScore: 0.9}, Action: "block", TTL: 2 * time.Hour}},
			`"probing-strong": can never match: rule "scanners"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := responder.CompilePolicy(tt.rules)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want one containing %q", err, tt.want)
			}
			cfg := responder.DefaultConfig()
			cfg.Policies = tt.rules
			if err := cfg.Validate(); err == nil || !strings.HasPrefix(err.Error(), "responder.policies[") {
				t.Errorf("Config.Validate() = %v, want an error naming responder.policies[i]", err)
			}
		})
	}
	// A narrower rule before a wider one is fine, and the defaults compile.
	if _, err := responder.CompilePolicy([]responder.Rule{
		{Name: "probing-strong", Match: responder.Match{Detectors: []string{"probing"}, MinScore: 0.9}, Action: "block", TTL: 2 * time.Hour},
		{Name: "scanners", Match: responder.Match{Detectors: []string{"probing", "enumeration"}, MinScore: 0.5}, Action: "block", TTL: time.Hour}}); err != nil {
		t.Error(err)
	}
	if err := responder.DefaultConfig().Validate(); err != nil {
		t.Errorf("defaults: %v", err)
	}
}

func fmtF(f float64) string { return strconv.FormatFloat(f, 'f', 3, 64) }
