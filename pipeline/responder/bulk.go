package responder

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/apiguard/apiguard/enforce"
	"github.com/apiguard/apiguard/event"
)

// BulkTargetKind is the target kind of a bulk action on the audit stream:
// its value names the list and how many principals it held.
const BulkTargetKind = "list"

// BulkDecision is a person's decision to put one sanction on many
// principals at once ('apiguard block --file' with a threat feed): the
// entries are written together and audited as one action.
type BulkDecision struct {
	// Kind is block, throttle or revoke.
	Kind event.ActionKind
	// Targets are the principals; ApplyBulk puts their values in
	// canonical form and writes a principal listed twice once.
	Targets []enforce.Key
	// TTL, Rate, Reason and Actor are as in Decision, for every entry.
	TTL    time.Duration
	Rate   float64
	Reason string
	Actor  string
	// Source names the list for the audit (a file name).
	Source string
	// DryRun records what would be done without writing anything.
	DryRun bool
}

// BulkResult is what ApplyBulk did.
type BulkResult struct {
	// Action is the one action recorded: target kind BulkTargetKind.
	Action *event.Action
	// Written is how many entries the bucket acknowledged.
	Written int
	// Duplicates is how many targets repeated an earlier one.
	Duplicates int
	// Spared are the targets an allow entry covers: not written.
	Spared []enforce.Key
}

// BulkWriter is an optional capability of the EntryWriter (enforce/kv.Writer
// has it): many puts at once. Without it ApplyBulk puts one by one.
type BulkWriter interface {
	PutBulk(ctx context.Context, entries []enforce.Entry, now time.Time) (int, error)
}

// ApplyBulk validates d, sets aside the targets an allow entry covers,
// writes the others and records one action on the audit stream that says
// how many were written and spared. Like Apply for a person, it is bound
// by allow entries only. For a large list set Allows (a watcher-fed
// Matcher): without it the allow entries are read from the bucket once.
//
// Errors: ErrInvalid before anything is written, naming the target; a
// write that fails part-way is audited with the count written and
// returned.
func (r *Responder) ApplyBulk(ctx context.Context, d BulkDecision) (BulkResult, error) {
	var res BulkResult
	if !d.Kind.Puts() || d.Kind == event.ActionKind_ACTION_ALLOW {
		return res, fmt.Errorf("%w: a bulk action is block, throttle or revoke, not %q", ErrInvalid, d.Kind.Name())
	}
	if len(d.Targets) == 0 {
		return res, fmt.Errorf("%w: no targets", ErrInvalid)
	}
	// The decision's own checks, once, on the first target.
	one := Decision{Kind: d.Kind, Target: d.Targets[0].Principal(), TTL: d.TTL, Reason: d.Reason, Actor: d.Actor, Rate: d.Rate}
	if _, err := one.check(); err != nil {
		return res, err
	}
	now := r.now()
	ea, _ := enforce.ActionOf(d.Kind)
	allows := r.Allows
	if allows == nil {
		l, ok := r.w.(EntryLister)
		if ok {
			entries, errs := l.List(ctx)
			if len(entries) == 0 && len(errs) > 0 {
				return res, fmt.Errorf("reading the allow entries: %w", errs[0])
			}
			m := enforce.NewMatcher()
			m.Replace(entries)
			allows = m
		}
	}
	seen := make(map[enforce.Key]bool, len(d.Targets))
	entries := make([]enforce.Entry, 0, len(d.Targets))
	for i, t := range d.Targets {
		key, err := enforce.ParseKey(t.Kind.String(), t.Value)
		if err != nil {
			return res, fmt.Errorf("%w: target %d: %w", ErrInvalid, i+1, err)
		}
		if seen[key] {
			res.Duplicates++
			continue
		}
		seen[key] = true
		if allows != nil && allows.Allowed(key, now) != nil {
			res.Spared = append(res.Spared, key)
			continue
		}
		e := enforce.Entry{Kind: key.Kind, Value: key.Value, Action: ea, Reason: d.Reason, Actor: d.Actor, Created: now, Rate: d.Rate}
		if d.TTL > 0 {
			e.Expires = now.Add(d.TTL)
		}
		entries = append(entries, e)
	}
	act := &event.Action{
		Schema:       event.SchemaVersion,
		Id:           event.NewID(now),
		TimeUnixNano: now.UnixNano(),
		Kind:         d.Kind,
		TtlSeconds:   int64(d.TTL / time.Second),
		Actor:        d.Actor,
		DryRun:       d.DryRun,
	}
	var werr error
	if !d.DryRun && len(entries) > 0 {
		if bw, ok := r.w.(BulkWriter); ok {
			res.Written, werr = bw.PutBulk(ctx, entries, now)
		} else {
			for _, e := range entries {
				if _, werr = r.w.Put(ctx, e, now); werr != nil {
					break
				}
				res.Written++
			}
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "bulk %s of %d principals from %s: %d written", d.Kind.Name(), len(d.Targets), d.Source, res.Written)
	if d.DryRun {
		fmt.Fprintf(&b, " (dry-run: %d would be)", len(entries))
	}
	if res.Duplicates > 0 {
		fmt.Fprintf(&b, ", %d duplicates", res.Duplicates)
	}
	if n := len(res.Spared); n > 0 {
		fmt.Fprintf(&b, ", %d spared by allow entries (first: %s)", n, res.Spared[0])
	}
	if werr != nil {
		fmt.Fprintf(&b, ", %d failed (%v)", len(entries)-res.Written, werr)
	}
	act.Target = &event.Principal{Kind: BulkTargetKind, Value: fmt.Sprintf("%s (%d principals)", d.Source, len(d.Targets))}
	act.Reason = b.String() + "; " + d.Reason
	if werr != nil {
		r.stats.Failures.Add(1)
	}
	if err := r.record(ctx, act); err != nil {
		return res, err
	}
	res.Action = act
	if werr != nil {
		return res, fmt.Errorf("bulk %s: %w", d.Kind.Name(), werr)
	}
	return res, nil
}
