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
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/apiguard/apiguard/enforce"
	"github.com/apiguard/apiguard/event"
)

// Actor is the name recorded for actions of the default policy.
const Actor = "policy:block-principal"

// Config is the responder's policy.
type Config struct {
	// BlockTTL is how long a principal stays blocked.
	BlockTTL time.Duration `yaml:"block_ttl"`
	// MinScore is the anomaly score from which the policy acts.
	MinScore float64 `yaml:"min_score"`
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
	// Partitions is the number of event partitions (nats.partitions), set
	// by the wiring, not by the file. Each partition's detectors see only
	// the principals that hash to it, so an anomaly's SharedBy is about
	// 1/Partitions of the sharers; it is scaled back before the comparison
	// with MaxSharedPrincipals. 0 counts as 1.
	Partitions int `yaml:"-"`
}

// DefaultConfig returns the defaults.
func DefaultConfig() Config {
	return Config{BlockTTL: 10 * time.Minute, MinScore: 0.5, MaxActionsPerMinute: 120, MaxSharedPrincipals: 5}
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
	}
	for i, s := range c.NeverBlock {
		if _, err := netip.ParsePrefix(s); err != nil {
			return fmt.Errorf("responder.never_block[%d]: %q: %w", i, s, err)
		}
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
	Actions  atomic.Uint64 // enforced
	DryRun   atomic.Uint64 // recorded only (dry-run, cap, allow entry or list, shared principal)
	Ignored  atomic.Uint64 // below MinScore
	Shared   atomic.Uint64 // anomalies on a principal too widely shared to block
	Failures atomic.Uint64
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
}

// New returns a responder; cfg must be valid. now is the wall clock (TTLs
// run on it, not on event time).
func New(cfg Config, w EntryWriter, audit AuditSink, now func() time.Time, log *slog.Logger) *Responder {
	r := &Responder{cfg: cfg, w: w, audit: audit, now: now, log: log, keys: map[string]bool{}}
	for _, s := range cfg.NeverBlock {
		r.never = append(r.never, netip.MustParsePrefix(s).Masked())
	}
	for _, k := range cfg.NeverBlockKeys {
		r.keys[k] = true
	}
	return r
}

// Stats returns the live counters.
func (r *Responder) Stats() *Stats { return &r.stats }

// WriteAnomaly applies the policy to a. It returns an error only when the
// bucket or the audit stream refused a write, so that the pipeline retries;
// retries are idempotent (action ids derive from the anomaly id).
//
// A principal that more than MaxSharedPrincipals established principals
// share is not blocked: the members the anomaly names are, each with an
// action of its own, and then the principal's own action, recorded as
// dry-run, says which were blocked; an anomaly that names no member
// throttles the principal for SharedThrottleTTL, or is only recorded.
func (r *Responder) WriteAnomaly(ctx context.Context, a *event.Anomaly) error {
	if a.Score < r.cfg.MinScore || a.Principal == nil || a.Principal.Kind == event.KindAPI {
		r.stats.Ignored.Add(1)
		return nil
	}
	kind, err := enforce.ParseKind(a.Principal.Kind)
	if err != nil {
		r.stats.Ignored.Add(1)
		r.log.Warn("anomaly names an unknown principal kind", "anomaly", a.Id, "kind", a.Principal.Kind)
		return nil
	}
	trigger := time.Unix(0, a.TimeUnixNano)
	d := Decision{
		Kind:      event.ActionKind_ACTION_BLOCK,
		Target:    &event.Principal{Kind: a.Principal.Kind, Value: a.Principal.Value},
		TTL:       r.cfg.BlockTTL,
		Reason:    fmt.Sprintf("%s anomaly on %s, score %.2f: %s", a.Detector, a.Api, a.Score, a.Summary),
		Actor:     Actor,
		AnomalyID: a.Id,
		ID:        event.HashID(trigger, "action", a.Id),
		Trigger:   trigger,
		Policy:    true,
	}
	sharers, shared := r.shared(kind, a.SharedBy)
	if !shared {
		return r.applyPolicy(ctx, d)
	}
	r.stats.Shared.Add(1)
	why := fmt.Sprintf("%s %s is shared by about %d established principals (more than max_shared_principals %d)",
		a.Principal.Kind, a.Principal.Value, sharers, r.cfg.MaxSharedPrincipals)
	if len(a.Members) == 0 {
		if r.cfg.SharedThrottleTTL > 0 {
			d.Kind, d.TTL = event.ActionKind_ACTION_THROTTLE, r.cfg.SharedThrottleTTL
			d.Reason = fmt.Sprintf("%s: throttled for %s instead of blocked; %s", why, r.cfg.SharedThrottleTTL, d.Reason)
			return r.applyPolicy(ctx, d)
		}
		d.DryRun = true
		d.Reason = fmt.Sprintf("%s: not blocked, and the anomaly names no attacking member; %s", why, d.Reason)
		return r.applyPolicy(ctx, d)
	}
	var blocked, spared []string
	for _, m := range a.Members {
		if _, err := enforce.ParseKind(m.GetKind()); err != nil || m.GetValue() == "" {
			r.log.Warn("anomaly names a member of an unknown kind", "anomaly", a.Id, "kind", m.GetKind())
			continue
		}
		name := m.Kind + " " + m.Value
		md := d
		md.Target = &event.Principal{Kind: m.Kind, Value: m.Value}
		md.ID = event.HashID(trigger, "action", a.Id, m.Kind, m.Value)
		md.Reason = fmt.Sprintf("attacking member of %s %s, blocked instead of it (%s); %s", a.Principal.Kind, a.Principal.Value, why, d.Reason)
		res, err := r.Apply(ctx, md)
		if errors.Is(err, ErrInvalid) {
			r.log.Warn("anomaly names an invalid member", "anomaly", a.Id, "kind", m.Kind, "err", err)
			continue
		}
		if err != nil {
			return fmt.Errorf("acting on anomaly %s: %w", a.Id, err)
		}
		if res.Enforced() {
			blocked = append(blocked, name)
		} else {
			spared = append(spared, name)
		}
	}
	d.DryRun = true
	note := why + ": not blocked"
	if len(blocked) > 0 {
		note += "; blocked its attacking members instead: " + strings.Join(blocked, ", ")
	}
	if len(spared) > 0 {
		note += "; attacking members recorded only (see their actions): " + strings.Join(spared, ", ")
	}
	d.Reason = note + "; " + d.Reason
	return r.applyPolicy(ctx, d)
}

// applyPolicy applies one of the policy's decisions. An anomaly whose
// principal's value is invalid is logged and dropped (a retry cannot fix
// it); any other error is returned, for the pipeline to retry.
func (r *Responder) applyPolicy(ctx context.Context, d Decision) error {
	_, err := r.Apply(ctx, d)
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
