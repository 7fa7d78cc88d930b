// Package responder turns anomalies into actions: it applies a policy
// (block the principal for a TTL), safety caps (an allow-list that is never
// blocked, a ceiling on actions per minute) and dry-run, writes the resulting
// entries to the enforcement bucket and records every decision, taken or
// not, on the audit stream.
package responder

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
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
}

// DefaultConfig returns the defaults.
func DefaultConfig() Config {
	return Config{BlockTTL: 10 * time.Minute, MinScore: 0.5, MaxActionsPerMinute: 120}
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

// Stats are the responder's counters.
type Stats struct {
	Actions  atomic.Uint64 // enforced
	DryRun   atomic.Uint64 // recorded only (dry-run, cap or allow-list)
	Ignored  atomic.Uint64 // below MinScore
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
// retries are idempotent (the action id derives from the anomaly id).
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
	now := r.now()
	trigger := time.Unix(0, a.TimeUnixNano)
	act := &event.Action{
		Schema:          event.SchemaVersion,
		Id:              event.HashID(trigger, "action", a.Id),
		TimeUnixNano:    now.UnixNano(),
		Kind:            event.ActionKind_ACTION_BLOCK,
		Target:          &event.Principal{Kind: a.Principal.Kind, Value: a.Principal.Value},
		TtlSeconds:      int64(r.cfg.BlockTTL / time.Second),
		Reason:          fmt.Sprintf("%s anomaly on %s, score %.2f: %s", a.Detector, a.Api, a.Score, a.Summary),
		AnomalyId:       a.Id,
		Actor:           Actor,
		DryRun:          r.cfg.DryRun,
		TriggerUnixNano: a.TimeUnixNano,
	}
	if why := r.spared(kind, a.Principal.Value); why != "" {
		act.DryRun = true
		act.Reason = why + "; " + act.Reason
	} else if !act.DryRun && !r.takeSlot(now) {
		act.DryRun = true
		act.Reason = fmt.Sprintf("cap of %d actions a minute reached; %s", r.cfg.MaxActionsPerMinute, act.Reason)
		r.log.Warn("action cap reached, recording only", "anomaly", a.Id, "cap", r.cfg.MaxActionsPerMinute)
	}
	if !act.DryRun {
		e := enforce.Entry{Kind: kind, Value: a.Principal.Value, Action: enforce.ActionBlock, Reason: act.Reason,
			AnomalyID: a.Id, Actor: Actor, Created: now, Expires: now.Add(r.cfg.BlockTTL), Trigger: trigger}
		if _, err := r.w.Put(ctx, e, now); err != nil {
			r.stats.Failures.Add(1)
			return fmt.Errorf("enforcing action for anomaly %s: %w", a.Id, err)
		}
	}
	if err := r.audit.WriteAction(ctx, act); err != nil {
		r.stats.Failures.Add(1)
		return fmt.Errorf("auditing action for anomaly %s: %w", a.Id, err)
	}
	if act.DryRun {
		r.stats.DryRun.Add(1)
	} else {
		r.stats.Actions.Add(1)
	}
	if r.OnAction != nil {
		r.OnAction(act)
	}
	return nil
}

// spared returns why a principal is never blocked, or "".
func (r *Responder) spared(kind enforce.Kind, value string) string {
	switch kind {
	case enforce.KindIP:
		if a, err := netip.ParseAddr(value); err == nil {
			for _, p := range r.never {
				if p.Contains(a.Unmap()) {
					return "ip in never_block " + p.String()
				}
			}
		}
	case enforce.KindKey:
		if r.keys[value] {
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
