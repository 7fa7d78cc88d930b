package replay

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/apiguard/apiguard/enforce"
	"github.com/apiguard/apiguard/event"
)

// What a config would have done: the backtest's anomalies go through the
// responder's own policy (pipeline/responder), offline, with an in-memory
// Actions in place of the enforcement bucket and the audit stream, on
// event time. The wiring (cmd/apiguard) builds the responder; replay only
// needs its WriteAnomaly.

// AnomalyWriter is what Judge needs of the responder
// (pipeline/responder.Responder): the policy applied to one anomaly.
type AnomalyWriter interface {
	WriteAnomaly(ctx context.Context, a *event.Anomaly) error
}

// Actions is an in-memory enforcement bucket and audit stream for running
// the responder offline: it implements the responder's EntryWriter and
// AuditSink, keeps what they are given, and is its clock (Now), set by
// Judge to each anomaly's event time. The zero value is ready; it is safe
// for concurrent use.
type Actions struct {
	mu      sync.Mutex
	now     time.Time
	rev     uint64
	entries []enforce.Entry
	actions []*event.Action
}

// Put stores an entry, as the bucket would.
func (a *Actions) Put(_ context.Context, e enforce.Entry, _ time.Time) (uint64, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.rev++
	a.entries = append(a.entries, e)
	return a.rev, nil
}

// WriteAction records an action, as the audit stream would.
func (a *Actions) WriteAction(_ context.Context, act *event.Action) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.actions = append(a.actions, act)
	return nil
}

// Now is the responder's clock: the event time of the anomaly being judged.
func (a *Actions) Now() time.Time {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.now
}

func (a *Actions) setNow(t time.Time) {
	a.mu.Lock()
	a.now = t
	a.mu.Unlock()
}

// take returns the actions recorded since the last call.
func (a *Actions) take() []*event.Action {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := a.actions
	a.actions = nil
	return out
}

// Verdict is what one config made of one principal.
type Verdict struct {
	Principal string   `json:"principal"` // "kind:value"
	Detectors []string `json:"detectors,omitempty"`
	Anomalies int      `json:"anomalies"`
	// First is the event time of the first anomaly (or action) on it.
	First time.Time `json:"first"`
	// Why is the first anomaly's summary, or the action's reason for a
	// principal acted on as an attacking member of another.
	Why string `json:"why"`
	// Action is the strongest action the responder enforced on it:
	// "block", "revoke" (a token) or "throttle"; "" when it only recorded
	// (Recorded says why) or did nothing.
	Action   string `json:"action,omitempty"`
	Recorded string `json:"recorded,omitempty"`
	// Label is the capture's label of the principal's flagged events,
	// "" for normal or unlabelled traffic.
	Label string `json:"label,omitempty"`
}

// enforcing ranks the action kinds that act on a principal, so that a
// verdict names the strongest: a block stops every request, a revocation
// the token's, a throttle some.
var enforcing = map[event.ActionKind]int{
	event.ActionKind_ACTION_THROTTLE: 1,
	event.ActionKind_ACTION_REVOKE:   2,
	event.ActionKind_ACTION_BLOCK:    3,
}

// actionKinds maps a verdict's Action back to its kind.
var actionKinds = map[string]event.ActionKind{
	"throttle": event.ActionKind_ACTION_THROTTLE,
	"revoke":   event.ActionKind_ACTION_REVOKE,
	"block":    event.ActionKind_ACTION_BLOCK,
}

// Verdicts are one config's verdicts by principal.
type Verdicts map[string]*Verdict

// Judge runs the responder w, whose EntryWriter, AuditSink and clock are
// acts, over the anomalies of res in event-time order, and returns what it
// made of every principal flagged or acted on.
func Judge(ctx context.Context, res *Result, w AnomalyWriter, acts *Actions) (Verdicts, error) {
	as := slices.Clone(res.Anomalies)
	slices.SortStableFunc(as, func(x, y *event.Anomaly) int { return cmpInt(x.TimeUnixNano, y.TimeUnixNano) })
	out := Verdicts{}
	get := func(p string, t time.Time) *Verdict {
		v := out[p]
		if v == nil {
			v = &Verdict{Principal: p, First: t}
			out[p] = v
		}
		return v
	}
	for _, a := range as {
		t := time.Unix(0, a.TimeUnixNano).UTC()
		if k := a.GetPrincipal().GetKind(); k != "" && k != event.KindAPI {
			v := get(k+":"+a.Principal.Value, t)
			v.Anomalies++
			if !slices.Contains(v.Detectors, a.Detector) {
				v.Detectors = append(v.Detectors, a.Detector)
			}
			if v.Why == "" {
				v.Why = a.Detector + ": " + a.Summary
			}
			if v.Label == "" {
				for _, id := range a.EventIds {
					if l := res.labels[id]; l != "" {
						v.Label = l
						break
					}
				}
			}
		}
		acts.setNow(t)
		if err := w.WriteAnomaly(ctx, a); err != nil {
			return nil, fmt.Errorf("judging anomaly %s: %w", a.Id, err)
		}
		for _, act := range acts.take() {
			tg := act.GetTarget()
			if tg == nil {
				continue
			}
			v := get(tg.Kind+":"+tg.Value, t)
			if v.Why == "" {
				v.Why = act.Reason
			}
			switch {
			case !act.DryRun && enforcing[act.Kind] > 0:
				if enforcing[act.Kind] > enforcing[actionKinds[v.Action]] {
					v.Action = strings.ToLower(strings.TrimPrefix(act.Kind.String(), "ACTION_"))
				}
			case act.DryRun && v.Recorded == "":
				v.Recorded = act.Reason
			}
		}
	}
	return out, nil
}

// Flagged returns the principals some anomaly named, sorted.
func (vs Verdicts) Flagged() []string {
	return vs.names(func(v *Verdict) bool { return v.Anomalies > 0 })
}

// Blocked returns the principals the responder acted on — blocked,
// revoked or throttled — sorted.
func (vs Verdicts) Blocked() []string {
	return vs.names(func(v *Verdict) bool { return v.Action != "" })
}

// Principals returns every principal flagged or acted on, sorted.
func (vs Verdicts) Principals() []string {
	return vs.names(func(*Verdict) bool { return true })
}

func (vs Verdicts) names(keep func(*Verdict) bool) []string {
	var out []string
	for p, v := range vs {
		if keep(v) {
			out = append(out, p)
		}
	}
	sort.Strings(out)
	return out
}

// Comparison is the difference between what a new config and an old one
// made of the same traffic. Its JSON form extends the backtest's line.
type Comparison struct {
	NewFlagged int `json:"new_flagged"`
	OldFlagged int `json:"old_flagged"`
	NewBlocked int `json:"new_blocked"`
	OldBlocked int `json:"old_blocked"`
	// The principals on one side only.
	FlaggedOnlyNew []string `json:"flagged_only_new"`
	FlaggedOnlyOld []string `json:"flagged_only_old"`
	BlockedOnlyNew []string `json:"blocked_only_new"`
	BlockedOnlyOld []string `json:"blocked_only_old"`
	// Old is the old config's backtest result.
	Old *Result `json:"old"`
}

// Compare compares the verdicts of a new config with an old one's.
func Compare(newV, oldV Verdicts, old *Result) *Comparison {
	nf, of, nb, ob := newV.Flagged(), oldV.Flagged(), newV.Blocked(), oldV.Blocked()
	return &Comparison{NewFlagged: len(nf), OldFlagged: len(of), NewBlocked: len(nb), OldBlocked: len(ob),
		FlaggedOnlyNew: minus(nf, of), FlaggedOnlyOld: minus(of, nf), BlockedOnlyNew: minus(nb, ob), BlockedOnlyOld: minus(ob, nb),
		Old: old}
}

// minus returns the sorted a without the sorted b, never nil.
func minus(a, b []string) []string {
	out := []string{}
	for _, s := range a {
		if _, found := slices.BinarySearch(b, s); !found {
			out = append(out, s)
		}
	}
	return out
}
