package responder

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/apiguard/apiguard/enforce"
	"github.com/apiguard/apiguard/enforce/kv"
	"github.com/apiguard/apiguard/event"
)

// MaxTTL is the longest an entry written through Apply may last; for
// longer, an operator writes one without expiry (TTL 0).
const MaxTTL = 366 * 24 * time.Hour

// maxReason bounds a decision's reason, in bytes.
const maxReason = 2048

// ErrInvalid marks a decision that Apply refuses before writing anything:
// an unknown action or principal kind, an invalid value, a TTL out of
// range, no reason or no actor. The error's text says which.
var ErrInvalid = errors.New("invalid decision")

// ErrWrongEntry marks an unblock of an allow entry, or an unallow of a
// block, throttle or revocation: each removal removes only its own sort.
var ErrWrongEntry = errors.New("entry of another sort")

// ErrCannotRemove marks a removal asked of a responder whose writer can
// neither read nor remove entries (see EntryStore).
var ErrCannotRemove = errors.New("the enforcement writer cannot remove entries")

// Decision is a decision to act on one principal: what the policy decides
// about an anomaly, an operator with 'apiguard block', an analyst in
// Grafana. Every action goes through Apply as one.
//
// It is not event.Decision, which is what the proxy did with one request
// (a request is allowed, blocked or challenged for many reasons); a
// Decision here is about a principal and lasts until its TTL.
type Decision struct {
	// Kind is what is done: block, throttle, revoke or allow put an
	// entry, unblock and unallow remove one.
	Kind event.ActionKind
	// Target is the principal; its kind is one of the enforcement kinds
	// (event.KindIP, …). Apply puts its value in canonical form.
	Target *event.Principal
	// TTL is how long the entry lasts, at least kv.MinTTL and at most
	// MaxTTL; 0 keeps it until it is removed (people only: the policy
	// always sets one). Removals ignore it.
	TTL time.Duration
	// Rate is a throttle's rate in requests per second (enforce.Entry.Rate);
	// 0 leaves the proxy's configured limit. Only throttles take one.
	Rate float64
	// Reason says why, for analysts (never shown to the client).
	Reason string
	// Actor is who decided: "policy:<name>", "operator:<user>",
	// "grafana:<login>".
	Actor string
	// AnomalyID is the anomaly that caused the decision, if any.
	AnomalyID string
	// ID is the action's id; "" gives a new one. The policy derives it from
	// the anomaly, so that a retried anomaly's action is stored once.
	ID string
	// Trigger is the event time of the request that caused the decision,
	// zero for people's decisions.
	Trigger time.Time
	// DryRun records what would be done without doing it.
	DryRun bool
	// Policy marks an automatic decision: the never_block lists, the
	// per-minute cap and the responder's dry_run apply to it. A person's
	// decision is deliberate and bound only by allow entries (an allow
	// wins over a block until it is removed, which is a decision of its
	// own).
	Policy bool
}

// Validate checks d without doing anything: the kinds, the target's value,
// the TTL, the reason and the actor. Its errors wrap ErrInvalid.
func (d *Decision) Validate() error {
	_, err := d.check()
	return err
}

// check validates d and returns its target's key.
func (d *Decision) check() (enforce.Key, error) {
	if d.Kind.Name() == "" {
		return enforce.Key{}, fmt.Errorf("%w: unknown action %d", ErrInvalid, d.Kind)
	}
	if d.Target == nil {
		return enforce.Key{}, fmt.Errorf("%w: no principal", ErrInvalid)
	}
	key, err := enforce.ParseKey(d.Target.Kind, d.Target.Value)
	if err != nil {
		return enforce.Key{}, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	if d.Rate != 0 && (d.Kind != event.ActionKind_ACTION_THROTTLE || d.Rate < 0 || d.Rate > 1e9 || d.Rate != d.Rate) {
		return enforce.Key{}, fmt.Errorf("%w: rate %g (want a positive rate on a throttle only)", ErrInvalid, d.Rate)
	}
	if d.Kind.Puts() {
		switch {
		case d.TTL < 0:
			return enforce.Key{}, fmt.Errorf("%w: ttl %s is negative", ErrInvalid, d.TTL)
		case d.TTL == 0 && d.Policy:
			return enforce.Key{}, fmt.Errorf("%w: the policy's entries need a ttl", ErrInvalid)
		case d.TTL != 0 && d.TTL < kv.MinTTL:
			return enforce.Key{}, fmt.Errorf("%w: ttl %s is shorter than %s", ErrInvalid, d.TTL, kv.MinTTL)
		case d.TTL > MaxTTL:
			return enforce.Key{}, fmt.Errorf("%w: ttl %s is longer than %s (use 0 for no expiry)", ErrInvalid, d.TTL, MaxTTL)
		}
	}
	switch {
	case strings.TrimSpace(d.Reason) == "":
		return enforce.Key{}, fmt.Errorf("%w: no reason", ErrInvalid)
	case len(d.Reason) > maxReason && !d.Policy:
		return enforce.Key{}, fmt.Errorf("%w: reason is %d bytes, limit %d", ErrInvalid, len(d.Reason), maxReason)
	case !utf8.ValidString(d.Reason):
		return enforce.Key{}, fmt.Errorf("%w: reason is not valid UTF-8", ErrInvalid)
	case strings.TrimSpace(d.Actor) == "":
		return enforce.Key{}, fmt.Errorf("%w: no actor", ErrInvalid)
	}
	return key, nil
}

// Result is what Apply did.
type Result struct {
	// Action is the action recorded on the audit stream. It is dry-run
	// when the bucket was not changed, and its Reason then says why.
	Action *event.Action
	// Entry is the entry written, nil when none was.
	Entry *enforce.Entry
	// Previous is the entry that was replaced (an allow over a block) or
	// removed (unblock, unallow), nil when there was none or it is unknown.
	Previous *enforce.Entry
	// SparedBy is the allow entry that spared the target, nil if none.
	SparedBy *enforce.Entry
}

// Enforced reports whether the bucket was changed.
func (r Result) Enforced() bool { return r.Action != nil && !r.Action.DryRun }

// EntryStore is an optional capability of the EntryWriter
// (enforce/kv.Writer has it): reading an entry and removing it only if it
// is still the one read. Apply needs it for unblock and unallow, and uses
// it to say which entry a person's decision replaces.
type EntryStore interface {
	Get(ctx context.Context, kind enforce.Kind, value string, now time.Time) (enforce.Entry, uint64, error)
	DeleteRevision(ctx context.Context, kind enforce.Kind, value string, rev uint64) error
}

// EntryLister is an optional capability of the EntryWriter
// (enforce/kv.Writer has it). When Allows is nil and the writer is no
// EntryStore, Apply reads the allow entries through it before a person's
// block, so a process that keeps no watcher (the CLI, the Grafana plugin)
// honours an allow written a moment ago; an EntryStore is read instead for
// the entries that could cover the principal only (allowedIn).
type EntryLister interface {
	List(ctx context.Context) ([]enforce.Entry, []error)
}

// Apply validates d, honours allow entries and, for the policy, the
// never_block lists, the per-minute cap and dry-run; then it writes or
// removes the entry and records the action on the audit stream, and
// returns what it did. It is the one way actions are taken: the policy
// (WriteAnomaly), the operators' commands and the Grafana plugin call it.
//
// Before a person's decision Apply reads the principal's own entry (when
// the writer is an EntryStore): it says what is replaced, and an allow
// entry there spares a sanction even if Allows, fed by a watcher, has not
// seen it yet.
//
// A decision that an allow entry or a safety cap spares is recorded as
// dry-run with the reason and returns no error: the Result says so
// (SparedBy, Action.DryRun). Errors: ErrInvalid before anything is
// written; for a removal, kv.ErrNotFound when the principal has no entry
// and ErrWrongEntry when it has one of the other sort, both with nothing
// written; otherwise the bucket or the audit stream refused a write, and a
// retry with the same ID is idempotent. Apply is safe for concurrent use.
func (r *Responder) Apply(ctx context.Context, d Decision) (Result, error) {
	key, err := d.check()
	if err != nil {
		return Result{}, err
	}
	now := r.now()
	act := &event.Action{
		Schema:       event.SchemaVersion,
		Id:           d.ID,
		TimeUnixNano: now.UnixNano(),
		Kind:         d.Kind,
		Target:       key.Principal(),
		TtlSeconds:   int64(d.TTL / time.Second),
		Reason:       d.Reason,
		AnomalyId:    d.AnomalyID,
		Actor:        d.Actor,
		DryRun:       d.DryRun || (d.Policy && r.cfg.DryRun),
	}
	if act.Id == "" {
		act.Id = event.NewID(now)
	}
	if !d.Trigger.IsZero() {
		act.TriggerUnixNano = d.Trigger.UnixNano()
	}
	if !d.Kind.Puts() {
		act.TtlSeconds = 0
		return r.remove(ctx, act, key, now)
	}
	return r.put(ctx, act, key, d, now)
}

// put applies a decision that writes an entry.
func (r *Responder) put(ctx context.Context, act *event.Action, key enforce.Key, d Decision, now time.Time) (Result, error) {
	var res Result
	ea, _ := enforce.ActionOf(d.Kind)
	if st, ok := r.w.(EntryStore); ok && !d.Policy {
		// The entry read here is also the freshest word on an allow of
		// this very principal, which a watcher-fed Allows may not have
		// seen yet: a sanction must never replace it.
		prev, _, err := st.Get(ctx, key.Kind, key.Value, now)
		switch {
		case err == nil:
			res.Previous = &prev
		case !errors.Is(err, kv.ErrNotFound):
			return Result{}, fmt.Errorf("reading the entry of %s: %w", key, err)
		}
	}
	if ea != enforce.ActionAllow {
		allow, err := r.allowedBy(ctx, key, now, d.Policy)
		if err != nil {
			return Result{}, err
		}
		if allow == nil && res.Previous != nil && res.Previous.Action == enforce.ActionAllow {
			allow = res.Previous
		}
		if allow != nil {
			res.SparedBy = allow
			act.DryRun = true
			act.Reason = allowText(allow, key) + "; " + act.Reason
		} else if why := r.spared(key, d.Policy); why != "" {
			act.DryRun = true
			act.Reason = why + "; " + act.Reason
		}
	}
	slot := false
	if !act.DryRun && d.Policy {
		if slot = r.takeSlot(now); !slot {
			act.DryRun = true
			act.Reason = fmt.Sprintf("cap of %d actions a minute reached; %s", r.cfg.MaxActionsPerMinute, act.Reason)
			r.log.Warn("action cap reached, recording only", "anomaly", act.AnomalyId, "cap", r.cfg.MaxActionsPerMinute)
		}
	}
	if act.DryRun {
		res.Previous = nil // nothing was replaced
	} else {
		e := enforce.Entry{Kind: key.Kind, Value: key.Value, Action: ea, Reason: act.Reason,
			AnomalyID: act.AnomalyId, Actor: act.Actor, Created: now, Rate: d.Rate}
		if d.TTL > 0 {
			e.Expires = now.Add(d.TTL)
		}
		if !d.Trigger.IsZero() {
			e.Trigger = d.Trigger
		}
		if _, err := r.w.Put(ctx, e, now); err != nil {
			// The pipeline retries the anomaly: its slot is given back, so
			// the retry is not recorded as over the cap.
			if slot {
				r.releaseSlot(now)
			}
			r.stats.Failures.Add(1)
			return Result{}, fmt.Errorf("enforcing %s of %s: %w", act.Kind.Name(), key, err)
		}
		res.Entry = &e
	}
	if err := r.record(ctx, act); err != nil {
		if slot {
			r.releaseSlot(now)
		}
		return Result{}, err
	}
	res.Action = act
	return res, nil
}

// remove applies an unblock or an unallow: it removes the principal's
// entry if it is of the right sort and still the one read, then audits it.
func (r *Responder) remove(ctx context.Context, act *event.Action, key enforce.Key, now time.Time) (Result, error) {
	st, ok := r.w.(EntryStore)
	if !ok {
		return Result{}, ErrCannotRemove
	}
	e, rev, err := st.Get(ctx, key.Kind, key.Value, now)
	if err != nil {
		return Result{}, err
	}
	allow := act.Kind == event.ActionKind_ACTION_UNALLOW
	switch isAllow := e.Action == enforce.ActionAllow; {
	case allow && !isAllow:
		return Result{}, fmt.Errorf("%w: %s has a %s entry, not an allow entry", ErrWrongEntry, key, e.Action)
	case !allow && isAllow:
		return Result{}, fmt.Errorf("%w: %s has an allow entry, not a block", ErrWrongEntry, key)
	}
	res := Result{Previous: &e}
	if !act.DryRun {
		if err := st.DeleteRevision(ctx, key.Kind, key.Value, rev); err != nil {
			r.stats.Failures.Add(1)
			return Result{}, fmt.Errorf("removing the entry of %s: %w", key, err)
		}
	}
	if err := r.record(ctx, act); err != nil {
		return Result{}, err
	}
	res.Action = act
	return res, nil
}

// record audits act and counts it.
func (r *Responder) record(ctx context.Context, act *event.Action) error {
	if err := r.audit.WriteAction(ctx, act); err != nil {
		r.stats.Failures.Add(1)
		return fmt.Errorf("auditing %s of %s %s: %w", act.Kind.Name(), act.Target.Kind, act.Target.Value, err)
	}
	if act.DryRun {
		r.stats.DryRun.Add(1)
	} else {
		r.stats.Actions.Add(1)
	}
	if r.history != nil {
		r.history.Observe(act)
	}
	if r.OnAction != nil {
		r.OnAction(act)
	}
	return nil
}

// allowedBy returns the live allow entry covering key (for an address, one
// on a network holding it too), or nil: from Allows when set, otherwise,
// for a person's decision, from the bucket.
func (r *Responder) allowedBy(ctx context.Context, key enforce.Key, now time.Time, policy bool) (*enforce.Entry, error) {
	if r.Allows != nil {
		return r.Allows.Allowed(key, now), nil
	}
	if policy {
		return nil, nil
	}
	if st, ok := r.w.(EntryStore); ok {
		return allowedIn(ctx, st, key, now)
	}
	l, ok := r.w.(EntryLister)
	if !ok {
		return nil, nil
	}
	entries, errs := l.List(ctx)
	if len(entries) == 0 && len(errs) > 0 {
		return nil, fmt.Errorf("reading the allow entries: %w", errs[0])
	}
	m := enforce.NewMatcher()
	m.Replace(entries)
	return m.Allowed(key, now), nil
}

// allowedIn returns the live allow entry covering key in the store, or
// nil, reading only the entries that could: the principal's own and, for
// an address or a network, the cidr entries of every network holding it
// (one per prefix length: at most 33 reads for IPv4, 129 for IPv6),
// whatever the size of the bucket.
func allowedIn(ctx context.Context, st EntryStore, key enforce.Key, now time.Time) (*enforce.Entry, error) {
	keys := []enforce.Key{key}
	var p netip.Prefix
	switch key.Kind {
	case enforce.KindIP:
		if a, err := netip.ParseAddr(key.Value); err == nil {
			a = a.Unmap()
			p = netip.PrefixFrom(a, a.BitLen())
		}
	case enforce.KindCIDR:
		if v, err := enforce.CanonicalValue(enforce.KindCIDR, key.Value); err == nil {
			p, _ = netip.ParsePrefix(v)
		}
	}
	if p.IsValid() {
		for b := p.Bits(); b >= 0; b-- {
			q, _ := p.Addr().Prefix(b)
			if k := (enforce.Key{Kind: enforce.KindCIDR, Value: q.String()}); k != key {
				keys = append(keys, k)
			}
		}
	}
	var allows []enforce.Entry
	for _, k := range keys {
		e, _, err := st.Get(ctx, k.Kind, k.Value, now)
		switch {
		case errors.Is(err, kv.ErrNotFound):
			continue
		case err != nil:
			return nil, fmt.Errorf("reading the allow entries: %s %s: %w", k.Kind, k.Value, err)
		}
		if e.Action == enforce.ActionAllow {
			allows = append(allows, e)
		}
	}
	if len(allows) == 0 {
		return nil, nil
	}
	m := enforce.NewMatcher()
	m.Replace(allows)
	return m.Allowed(key, now), nil
}

// allowText says which allow entry spares a principal.
func allowText(a *enforce.Entry, key enforce.Key) string {
	why := "allowed by " + a.Actor
	if a.Actor == "" {
		why = "allowed by an allow entry"
	}
	if a.Kind != key.Kind || a.Value != key.Value {
		why += " on " + a.Kind.String() + " " + a.Value
	}
	if a.Reason != "" {
		why += " (" + a.Reason + ")"
	}
	return why
}
