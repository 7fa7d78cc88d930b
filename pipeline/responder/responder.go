// Package responder turns anomalies into actions: it applies a policy
// (block the principal for a TTL), safety caps (allow entries and
// configured lists that are never blocked, principals too widely shared to
// block, a ceiling on actions per minute) and dry-run, writes the resulting
// entries to the enforcement bucket and records every decision, taken or
// not, on the audit stream.
package responder

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/apiguard/apiguard/enforce"
	"github.com/apiguard/apiguard/event"
)

// ActorPrefix starts the actor of the policy's actions: "policy:<rule>".
const ActorPrefix = "policy:"

// Config is the responder's policy.
type Config struct {
	// BlockTTL is the base TTL of the default policy's blocks and throttles.
	BlockTTL time.Duration `yaml:"block_ttl"`
	// MinScore is the anomaly score from which the policy acts, whatever
	// the rules say, and the default policy's least score.
	MinScore float64 `yaml:"min_score"`
	// Policies are the rules, in order (see Rule); empty: DefaultPolicies.
	Policies []Rule `yaml:"policies,omitempty"`
	// Escalation is how repeat offenders' actions grow.
	Escalation EscalationConfig `yaml:"escalation"`
	// Groups is when several addresses of one network become one entry.
	Groups GroupConfig `yaml:"groups"`
	// ASNFile lists the prefixes each ASN announces (see ParseASNTable),
	// for ASN groups (GroupConfig.MinASNPrincipals); empty: none.
	ASNFile string `yaml:"asn_file,omitempty"`
	// Revocation is where revoked tokens are reported (RFC 7009).
	Revocation RevocationConfig `yaml:"revocation"`
	// DryRun records what would be done without doing it.
	DryRun bool `yaml:"dry_run"`
	// MaxActionsPerMinute caps enforced actions; past it actions are
	// recorded as dry-run with the reason, so a detector gone wrong cannot
	// block everyone.
	MaxActionsPerMinute int `yaml:"max_actions_per_minute"`
	// NeverBlock lists CIDRs whose IP principals are never blocked.
	NeverBlock []string `yaml:"never_block"`
	// NeverBlockKeys lists API key ids that are never blocked.
	NeverBlockKeys []string `yaml:"never_block_keys"`
	// MaxSharedPrincipals is how many established principals may share an
	// ip, cidr or fp principal (event.Anomaly.SharedBy: the keys behind an
	// address, everyone on a network or presenting a fingerprint) for it
	// still to be blocked. One shared by more — a NAT, a corporate proxy, a
	// common browser — is never blocked: the anomaly's attacking members
	// are blocked instead or, when it names none, the principal is
	// throttled for SharedThrottleTTL or only recorded.
	MaxSharedPrincipals int `yaml:"max_shared_principals"`
	// SharedThrottleTTL is how long a shared principal whose anomaly names
	// no attacking member is throttled instead of blocked. A throttle
	// refuses its legitimate sharers too (429), so the default, 0, only
	// records the anomaly.
	SharedThrottleTTL time.Duration `yaml:"shared_throttle_ttl"`
	// RecordWindow bounds how far back a restarted pipeline loads the
	// responder's record of the requests (who succeeded from each network
	// and under each fingerprint, record_load.go), to shorten the load on a
	// busy deployment; 0, the default, is the record's own window (the
	// longer of escalation.window and groups.window). A principal that
	// succeeded from a network only before the bound is not known to use
	// it after a restart.
	RecordWindow time.Duration `yaml:"record_window,omitempty"`
	// Partitions is the number of event partitions (nats.partitions), set
	// by the wiring, not by the file. Each partition's detectors see only
	// the principals that hash to it, so an anomaly's SharedBy is about
	// 1/Partitions of the sharers; it is scaled back before the comparison
	// with MaxSharedPrincipals. 0 counts as 1.
	Partitions int `yaml:"-"`
}

// EffectivePolicies returns the rules in force: Policies, or the defaults
// when it is empty.
func (c Config) EffectivePolicies() []Rule {
	if len(c.Policies) > 0 {
		return c.Policies
	}
	return DefaultPolicies(c.BlockTTL, c.MinScore)
}

// DefaultConfig returns the defaults.
func DefaultConfig() Config {
	return Config{BlockTTL: 10 * time.Minute, MinScore: 0.5, MaxActionsPerMinute: 120, MaxSharedPrincipals: 5,
		Escalation: DefaultEscalationConfig(), Groups: DefaultGroupConfig(), Revocation: DefaultRevocationConfig()}
}

// Validate reports the first bad field by its config key.
func (c Config) Validate() error {
	switch {
	case c.BlockTTL < time.Second:
		return fmt.Errorf("responder.block_ttl: %s, want at least 1s", c.BlockTTL)
	case c.MinScore < 0 || c.MinScore > 1:
		return fmt.Errorf("responder.min_score: %g, want 0..1", c.MinScore)
	case c.MaxActionsPerMinute < 1:
		return fmt.Errorf("responder.max_actions_per_minute: %d, want at least 1", c.MaxActionsPerMinute)
	case c.MaxSharedPrincipals < 0:
		return fmt.Errorf("responder.max_shared_principals: %d, want 0 or more", c.MaxSharedPrincipals)
	case c.SharedThrottleTTL != 0 && c.SharedThrottleTTL < time.Second:
		return fmt.Errorf("responder.shared_throttle_ttl: %s, want 0 (record only) or at least 1s", c.SharedThrottleTTL)
	case c.Partitions < 0:
		return fmt.Errorf("responder.partitions: %d, want 0 or more", c.Partitions)
	case c.RecordWindow != 0 && (c.RecordWindow < time.Minute || c.RecordWindow > max(c.Escalation.Window, c.Groups.Window, time.Minute)):
		return fmt.Errorf("responder.record_window: %s, want 0 (the record's window) or 1m to %s (the longer of escalation.window and groups.window)",
			c.RecordWindow, max(c.Escalation.Window, c.Groups.Window, time.Minute))
	}
	for i, s := range c.NeverBlock {
		if _, err := netip.ParsePrefix(s); err != nil {
			return fmt.Errorf("responder.never_block[%d]: %q: %w", i, s, err)
		}
	}
	if err := c.Escalation.Validate(); err != nil {
		return err
	}
	if err := c.Groups.Validate(); err != nil {
		return err
	}
	if err := c.Revocation.Validate(nil); err != nil {
		return err
	}
	if c.ASNFile != "" {
		if _, err := LoadASNTable(c.ASNFile); err != nil {
			return err
		}
	}
	if _, err := CompilePolicy(c.EffectivePolicies()); err != nil {
		return err
	}
	return nil
}

// EntryWriter stores enforcement entries (enforce/kv.Writer).
type EntryWriter interface {
	Put(ctx context.Context, e enforce.Entry, now time.Time) (uint64, error)
}

// AuditSink records actions (pipeline/topology.Publisher).
type AuditSink interface {
	WriteAction(ctx context.Context, a *event.Action) error
}

// AllowList answers whether a principal has a live allow entry
// (enforce.Matcher, fed from the bucket by an enforce/kv.Watcher).
type AllowList interface {
	Allowed(k enforce.Key, now time.Time) *enforce.Entry
}

// Stats are the responder's counters.
type Stats struct {
	Actions   atomic.Uint64 // enforced
	DryRun    atomic.Uint64 // recorded only (dry-run, cap, allow entry or list, shared principal)
	Ignored   atomic.Uint64 // below MinScore
	Shared    atomic.Uint64 // anomalies on a principal too widely shared to block
	Failures  atomic.Uint64
	Flagged   atomic.Uint64 // anomalies a flag rule matched, or a members rule that named none
	Escalated atomic.Uint64 // actions made longer or stronger by the principal's history
	Groups    atomic.Uint64 // network entries made of several addresses' blocks
	Unmatched atomic.Uint64 // anomalies no rule matched
	HeldBack  atomic.Uint64 // decisions held back while the record of requests from before the start loads (record_load.go)
}

// Responder is a pipeline sink for anomalies. It is safe for concurrent use
// by the pipeline's partition workers. Build it with New.
type Responder struct {
	cfg    Config
	never  []netip.Prefix
	keys   map[string]bool
	w      EntryWriter
	audit  AuditSink
	now    func() time.Time
	log    *slog.Logger
	stats  Stats
	mu     sync.Mutex
	minute int64 // unix minute of the count below
	count  int
	// OnAction, if set before use, is called with every action recorded.
	OnAction func(*event.Action)
	// Allows, if set before use, holds the allow entries: a principal they
	// cover is never blocked or throttled; the action is recorded as
	// dry-run with the allow's reason.
	Allows AllowList
	// Revoker, if set before use, reports enforced token revocations to
	// their issuers (its Run is the caller's to start).
	Revoker    *Revoker
	policy     *Policy
	history    *History
	sharedNets map[string]bool      // networks holding an address reported shared (guarded by mu)
	groupMu    sync.Mutex           // serialises group decisions
	traffic    traffic              // what ObserveEvent saw (traffic.go)
	asn        *ASNTable            // responder.asn_file, or nil
	asnFlags   map[string][]asnFlag // ASN → its addresses blocked (guarded by groupMu)
}

// New returns a responder; cfg must be valid. now is the wall clock (TTLs
// run on it, not on event time).
func New(cfg Config, w EntryWriter, audit AuditSink, now func() time.Time, log *slog.Logger) *Responder {
	p, err := CompilePolicy(cfg.EffectivePolicies())
	if err != nil {
		panic("responder.New: invalid config: " + err.Error())
	}
	window := max(cfg.Escalation.Window, cfg.Groups.Window, time.Minute)
	r := &Responder{cfg: cfg, w: w, audit: audit, now: now, log: log, keys: map[string]bool{},
		policy: p, history: NewHistory(window), sharedNets: map[string]bool{}}
	for _, s := range cfg.NeverBlock {
		r.never = append(r.never, netip.MustParsePrefix(s).Masked())
	}
	for _, k := range cfg.NeverBlockKeys {
		r.keys[k] = true
	}
	r.asnFlags = map[string][]asnFlag{}
	if cfg.ASNFile != "" {
		t, err := LoadASNTable(cfg.ASNFile)
		if err != nil {
			// Validate read it: the file changed since. No ASN groups.
			log.Error("ASN groups off", "err", err)
		} else {
			r.asn = t
		}
	}
	return r
}

// Stats returns the live counters.
func (r *Responder) Stats() *Stats { return &r.stats }

// Policy returns the policy in force.
func (r *Responder) Policy() *Policy { return r.policy }

// History returns the responder's history, for the wiring to feed with the
// audit stream (History.Observe).
func (r *Responder) History() *History { return r.history }

// WriteAnomaly applies the policy to a: the first rule that matches the
// anomaly and its principal's history decides (see Rule); the principal's
// offences within the escalation window lengthen the TTL, and detectors
// enough turn a throttle into a block; an enforced block of an address may
// make its network one entry (GroupConfig); an enforced revocation of a
// token is reported to its issuer (Revoker). Every action's actor is
// "policy:<rule>" and its reason says the anomaly, the rule and the
// history that escalated it. WriteAnomaly returns an error only when the
// bucket or the audit stream refused a write, so that the pipeline
// retries; retries are idempotent (action ids derive from the anomaly id).
//
// A principal that more than MaxSharedPrincipals established principals
// share is not blocked: the members the anomaly names are, each with an
// action of its own, and then the principal's own action, recorded as
// dry-run, says which were blocked; an anomaly that names no member
// throttles the principal for SharedThrottleTTL, or is only recorded.
func (r *Responder) WriteAnomaly(ctx context.Context, a *event.Anomaly) error {
	if a.Score < r.cfg.MinScore || a.Principal == nil {
		r.stats.Ignored.Add(1)
		return nil
	}
	now := r.now()
	offences, dets := r.history.Of(a.Principal.Kind, a.Principal.Value, a.Id, now)
	rl := r.policy.sel(a, offences)
	if rl == nil {
		r.stats.Unmatched.Add(1)
		return nil
	}
	if rl.Action == DoFlag {
		r.stats.Flagged.Add(1)
		r.log.Info("anomaly flagged", "anomaly", a.Id, "rule", rl.Name, "detector", a.Detector)
		return nil
	}
	if a.Principal.Kind == event.KindAPI {
		r.stats.Ignored.Add(1)
		return nil
	}
	kind, err := enforce.ParseKind(a.Principal.Kind)
	if err != nil {
		r.stats.Ignored.Add(1)
		r.log.Warn("anomaly names an unknown principal kind", "anomaly", a.Id, "kind", a.Principal.Kind)
		return nil
	}
	p := r.plan(a, rl, offences, dets)
	trigger := time.Unix(0, a.TimeUnixNano)
	d := Decision{
		Kind:      p.kind,
		Target:    &event.Principal{Kind: a.Principal.Kind, Value: a.Principal.Value},
		TTL:       p.ttl,
		Rate:      p.rate,
		Reason:    fmt.Sprintf("%s anomaly on %s, score %.2f: %s", a.Detector, a.Api, a.Score, a.Summary),
		Actor:     ActorPrefix + rl.Name,
		AnomalyID: a.Id,
		ID:        event.HashID(trigger, "action", a.Id),
		Trigger:   trigger,
		Policy:    true,
	}
	if rl.Target == TargetMembers {
		if len(a.Members) == 0 {
			r.stats.Flagged.Add(1)
			r.log.Info("anomaly flagged: its rule acts on members and it names none", "anomaly", a.Id, "rule", rl.Name,
				"detector", a.Detector)
			return nil
		}
		_, _, err := r.members(ctx, a, rl, d, fmt.Sprintf("named by the anomaly, acted on instead of %s %s", a.Principal.Kind, a.Principal.Value), p.why)
		return err
	}
	didMembers, err := r.onPrincipal(ctx, a, rl, d, kind, p)
	if err != nil || rl.Target != TargetBoth || didMembers || len(a.Members) == 0 {
		return err
	}
	_, _, err = r.members(ctx, a, rl, d, fmt.Sprintf("named by the anomaly, acted on with %s %s", a.Principal.Kind, a.Principal.Value), p.why)
	return err
}

// onPrincipal acts on the anomaly's principal by d, planned by rl as p.
// It reports whether it acted on the anomaly's members instead (a shared
// principal).
func (r *Responder) onPrincipal(ctx context.Context, a *event.Anomaly, rl *rule, d Decision, kind enforce.Kind, p plan) (bool, error) {
	trigger := d.Trigger
	sharers, shared := r.shared(kind, a.SharedBy)
	r.noteShared(a, shared)
	limit := r.cfg.MaxSharedPrincipals
	if rl.SpareShared && sharers > 0 {
		shared, limit = true, 0
	}
	if !shared {
		if kind == enforce.KindCIDR && p.kind != event.ActionKind_ACTION_REVOKE {
			// A network entry refuses everyone on the network: never over
			// principals with good history (traffic.go).
			if pfx, err := netip.ParsePrefix(a.Principal.Value); err == nil {
				if why := r.networkSpared(pfx.Masked(), trigger); why != "" {
					r.stats.Shared.Add(1)
					d.DryRun = true
					d.Reason = fmt.Sprintf("%s; network not blocked whole: %s; %s", d.Reason, why, p.why)
					return false, r.applyPolicy(ctx, a, d)
				}
			}
		}
		d.Reason += "; " + p.why
		return false, r.applyPolicy(ctx, a, d)
	}
	r.stats.Shared.Add(1)
	why := fmt.Sprintf("%s %s is shared by about %d established principals (more than max_shared_principals %d)",
		a.Principal.Kind, a.Principal.Value, sharers, limit)
	if sharers <= r.cfg.MaxSharedPrincipals {
		why = fmt.Sprintf("%s %s is shared by about %d established principals (the rule spares shared principals)", a.Principal.Kind, a.Principal.Value, sharers)
	}
	if len(a.Members) == 0 {
		if r.cfg.SharedThrottleTTL > 0 {
			d.Kind, d.TTL, d.Rate = event.ActionKind_ACTION_THROTTLE, r.cfg.SharedThrottleTTL, 0
			d.Reason = fmt.Sprintf("%s; %s: throttled for %s instead of blocked; %s", d.Reason, why, r.cfg.SharedThrottleTTL, p.why)
			return false, r.applyPolicy(ctx, a, d)
		}
		d.DryRun = true
		d.Reason = fmt.Sprintf("%s; %s: not blocked, and the anomaly names no attacking member; %s", d.Reason, why, p.why)
		return false, r.applyPolicy(ctx, a, d)
	}
	blocked, spared, err := r.members(ctx, a, rl, d, fmt.Sprintf("attacking member of %s %s, blocked instead of it (%s)", a.Principal.Kind, a.Principal.Value, why), p.why)
	if err != nil {
		return true, err
	}
	d.DryRun = true
	note := why + ": not blocked"
	if len(blocked) > 0 {
		note += "; blocked its attacking members instead: " + strings.Join(blocked, ", ")
	}
	if len(spared) > 0 {
		note += "; attacking members recorded only (see their actions): " + strings.Join(spared, ", ")
	}
	d.Reason = d.Reason + "; " + note + "; " + p.why
	return false, r.applyPolicy(ctx, a, d)
}

// plan is what a rule does to an anomaly's principal once its history is
// taken into account.
type plan struct {
	kind event.ActionKind
	ttl  time.Duration
	rate float64
	why  string // the rule and the history, for the reason
}

// plan applies escalation to rl's action.
func (r *Responder) plan(a *event.Anomaly, rl *rule, offences int, dets []string) plan {
	p := plan{ttl: r.cfg.Escalation.escalate(rl.TTL, offences), why: "rule " + rl.Name}
	switch rl.Action {
	case DoRevoke:
		p.kind = event.ActionKind_ACTION_REVOKE
	case DoThrottle:
		p.kind = event.ActionKind_ACTION_THROTTLE
	default:
		p.kind = event.ActionKind_ACTION_BLOCK
	}
	escalated := false
	if offences > 0 && p.ttl != rl.TTL {
		escalated = true
		p.why += fmt.Sprintf("; %d earlier offence(s) within %s: ttl %s escalated to %s", offences, r.cfg.Escalation.Window, rl.TTL, p.ttl)
	}
	if p.kind == event.ActionKind_ACTION_THROTTLE {
		all := dets
		if !containsString(all, a.Detector) {
			all = append(append([]string(nil), dets...), a.Detector)
		}
		slices.Sort(all)
		if n := r.cfg.Escalation.DetectorsToBlock; n > 0 && len(all) >= n {
			escalated = true
			p.kind = event.ActionKind_ACTION_BLOCK
			p.why += fmt.Sprintf("; flagged by %d detectors within %s (%s): throttle escalated to block", len(all), r.cfg.Escalation.Window, strings.Join(all, ", "))
		} else if why := r.traffic.defied(a.Principal.Kind+" "+a.Principal.Value, r.now(), r.cfg.Escalation); why != "" {
			escalated = true
			p.kind = event.ActionKind_ACTION_BLOCK
			p.why += "; " + why
		} else {
			var from string
			p.rate, from = rl.throttleRate(a)
			p.why += fmt.Sprintf("; throttled to %.3g requests/s (%s)", p.rate, from)
		}
	}
	if escalated {
		r.stats.Escalated.Add(1)
	}
	return p
}

// members acts on the members a names with d's action, each with an action
// of its own whose reason is d's with note and why. A revoke of a member
// that is not a credential (an address, a network, a fingerprint) is a
// block. A member that is the anomaly's principal is skipped (a rule on
// members never acts on it). Under a rule that spares shared principals,
// a member address that principals with good history use — other than
// the anomaly's principal and members — is recorded as dry-run, not
// blocked (addressSpared). It returns the members acted on and those
// spared.
func (r *Responder) members(ctx context.Context, a *event.Anomaly, rl *rule, d Decision, note, why string) (acted, spared []string, err error) {
	trigger := time.Unix(0, a.TimeUnixNano)
	var except map[string]bool
	if rl.SpareShared {
		except = map[string]bool{a.Principal.GetKind() + " " + a.Principal.GetValue(): true}
		for _, m := range a.Members {
			except[m.GetKind()+" "+m.GetValue()] = true
		}
	}
	for _, m := range a.Members {
		mk, err := enforce.ParseKind(m.GetKind())
		if err != nil || m.GetValue() == "" {
			r.log.Warn("anomaly names a member of an unknown kind", "anomaly", a.Id, "kind", m.GetKind())
			continue
		}
		if m.Kind == a.Principal.GetKind() && m.Value == a.Principal.GetValue() {
			continue
		}
		name := m.Kind + " " + m.Value
		md := d
		md.Target = &event.Principal{Kind: m.Kind, Value: m.Value}
		md.ID = event.HashID(trigger, "action", a.Id, m.Kind, m.Value)
		if md.Kind == event.ActionKind_ACTION_REVOKE && (mk == enforce.KindIP || mk == enforce.KindCIDR || mk == enforce.KindFP) {
			md.Kind = event.ActionKind_ACTION_BLOCK
		}
		md.Reason = d.Reason + "; " + note + "; " + why
		if rl.SpareShared && mk == enforce.KindIP {
			if ip, perr := netip.ParseAddr(m.Value); perr == nil {
				if s := r.addressSpared(ip, trigger, except); s != "" {
					r.stats.Shared.Add(1)
					md.DryRun = true
					md.Reason = fmt.Sprintf("%s; address not blocked: %s (the rule spares shared principals)", md.Reason, s)
				}
			}
		}
		res, err := r.act(ctx, a, md)
		if errors.Is(err, ErrInvalid) {
			r.log.Warn("anomaly names an invalid member", "anomaly", a.Id, "kind", m.Kind, "err", err)
			continue
		}
		if err != nil {
			return nil, nil, fmt.Errorf("acting on anomaly %s: %w", a.Id, err)
		}
		if res.Enforced() {
			acted = append(acted, name)
		} else {
			spared = append(spared, name)
		}
	}
	return acted, spared, nil
}

// act applies one of the policy's decisions and what follows an enforced
// one: the report of a revoked token to its issuer, and the group check of
// a blocked address.
func (r *Responder) act(ctx context.Context, a *event.Anomaly, d Decision) (Result, error) {
	res, err := r.Apply(ctx, d)
	if err != nil || !res.Enforced() {
		return res, err
	}
	key := d.Target.Kind + " " + d.Target.Value
	switch {
	case d.Kind == event.ActionKind_ACTION_THROTTLE && d.Rate > 0:
		// A rule's throttle (a shared principal's has no rate): followed, so
		// that a principal that defies it is blocked.
		now := r.now()
		r.traffic.watch(key, &throttleWatch{detector: a.Detector, rule: strings.TrimPrefix(d.Actor, ActorPrefix), api: a.Api,
			actionID: res.Action.Id, since: now, until: now.Add(d.TTL), rate: d.Rate})
	case d.Kind == event.ActionKind_ACTION_BLOCK || d.Kind == event.ActionKind_ACTION_REVOKE:
		r.traffic.stop(key)
	}
	switch {
	case d.Kind == event.ActionKind_ACTION_REVOKE && res.Entry.Kind == enforce.KindToken && r.Revoker != nil:
		r.Revoker.Enqueue(ctx, Revocation{Token: res.Entry.Value, API: a.Api, ActionID: res.Action.Id, AnomalyID: a.Id})
	case d.Kind == event.ActionKind_ACTION_BLOCK && res.Entry.Kind == enforce.KindIP:
		if err := r.group(ctx, a, res.Entry.Value); err != nil {
			return res, err
		}
		if err := r.groupASN(ctx, a, res.Entry.Value); err != nil {
			return res, err
		}
	}
	if d.Kind == event.ActionKind_ACTION_BLOCK {
		if err := r.groupFP(ctx, a, d.Target); err != nil {
			return res, err
		}
	}
	return res, nil
}

// applyPolicy applies one of the policy's decisions. An anomaly whose
// principal's value is invalid is logged and dropped (a retry cannot fix
// it); any other error is returned, for the pipeline to retry.
func (r *Responder) applyPolicy(ctx context.Context, a *event.Anomaly, d Decision) error {
	_, err := r.act(ctx, a, d)
	if errors.Is(err, ErrInvalid) {
		r.stats.Ignored.Add(1)
		r.log.Warn("anomaly names an invalid principal", "anomaly", d.AnomalyID, "err", err)
		return nil
	}
	if err != nil {
		return fmt.Errorf("acting on anomaly %s: %w", d.AnomalyID, err)
	}
	return nil
}

// shared returns the estimated number of established principals sharing a
// principal of kind k that an anomaly says sharedBy share, and whether
// that is too many to block it.
func (r *Responder) shared(k enforce.Kind, sharedBy uint32) (int, bool) {
	if k != enforce.KindIP && k != enforce.KindCIDR && k != enforce.KindFP {
		return 0, false
	}
	n := int(sharedBy) * max(r.cfg.Partitions, 1)
	return n, n > r.cfg.MaxSharedPrincipals
}

// spared returns why the never_block lists spare key from the policy's
// decision, or "". People's decisions are not bound by them.
func (r *Responder) spared(key enforce.Key, policy bool) string {
	if !policy {
		return ""
	}
	switch key.Kind {
	case enforce.KindIP:
		if a, err := netip.ParseAddr(key.Value); err == nil {
			for _, p := range r.never {
				if p.Contains(a.Unmap()) {
					return "ip in never_block " + p.String()
				}
			}
		}
	case enforce.KindKey:
		if r.keys[key.Value] {
			return "key in never_block_keys"
		}
	}
	return ""
}

// takeSlot counts an action against the per-minute cap.
func (r *Responder) takeSlot(now time.Time) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	m := now.Unix() / 60
	if m != r.minute {
		r.minute, r.count = m, 0
	}
	if r.count >= r.cfg.MaxActionsPerMinute {
		return false
	}
	r.count++
	return true
}

// releaseSlot gives back a slot taken for an action that was not taken
// after all (its write failed and will be retried).
func (r *Responder) releaseSlot(now time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if now.Unix()/60 == r.minute && r.count > 0 {
		r.count--
	}
}
