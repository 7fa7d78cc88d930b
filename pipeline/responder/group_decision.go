package responder

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/apiguard/apiguard/event"
)

// groupBlock is what a group kind (the network group of group.go, the
// fingerprint group of group_fp.go, the ASN group of group_asn.go) says of
// the one entry it would make; groupDecision and applyGroup do the rest.
type groupBlock struct {
	// rule names the rule: the actor is "policy:<rule>" and the action's
	// id is derived from it.
	rule string
	// target is the entry: a cidr or a fingerprint.
	target *event.Principal
	// noun is what the target is, in reasons and errors: "network",
	// "fingerprint", "prefix".
	noun string
	// why is the group's part of the reason, after "group: ".
	why string
}

// groupDecision returns the block of b.target that anomaly a triggers at
// now, or false when the target was acted on within the group window
// already. Its TTL is the group TTL escalated by the target's earlier
// offences (the reason says so); its id is the rule's, the target's and
// the window's, so that replicas that decide the same at once record one
// action (the audit stream de-duplicates by id) over the same entry. The
// caller holds groupMu and decides whether the block is only recorded
// (holdBack) before applyGroup.
func (r *Responder) groupDecision(a *event.Anomaly, b groupBlock, now time.Time) (Decision, bool) {
	g := r.cfg.Groups
	kind, value := b.target.Kind, b.target.Value
	if last, ok := r.history.Last(kind, value); ok && now.Sub(last) < g.Window {
		return Decision{}, false
	}
	offences, _ := r.history.Of(kind, value, "", now)
	ttl := r.cfg.Escalation.escalate(g.TTL, offences)
	d := Decision{
		Kind:   event.ActionKind_ACTION_BLOCK,
		Target: &event.Principal{Kind: kind, Value: value},
		TTL:    ttl,
		Reason: fmt.Sprintf("%s anomaly on %s, score %.2f: %s; group: %s; rule %s",
			a.Detector, a.Api, a.Score, a.Summary, b.why, b.rule),
		Actor: ActorPrefix + b.rule, AnomalyID: a.Id, ID: event.HashID(now.Truncate(g.Window), b.rule, value),
		Trigger: time.Unix(0, a.TimeUnixNano), Policy: true,
	}
	if offences > 0 && ttl != g.TTL {
		d.Reason += fmt.Sprintf("; %d earlier offence(s) of the %s: ttl %s escalated to %s", offences, b.noun, g.TTL, ttl)
	}
	return d, true
}

// holdBack makes d a record of what the group would have blocked, saying
// why it is not: d becomes a dry-run and why leads its reason.
func holdBack(d *Decision, why string) {
	d.DryRun = true
	d.Reason = why + "; " + d.Reason
}

// applyGroup applies the group decision d of b through Apply (never_block,
// the per-minute cap, the responder's dry-run and the audit are Apply's)
// and counts an enforced one in Stats.Groups. A decision Apply refuses as
// invalid is logged and dropped, since a retry cannot mend it; any other
// error is returned.
func (r *Responder) applyGroup(ctx context.Context, b groupBlock, d Decision) error {
	res, err := r.Apply(ctx, d)
	if errors.Is(err, ErrInvalid) {
		r.log.Warn("group entry refused", "rule", b.rule, b.noun, b.target.Value, "err", err)
		return nil
	}
	if err != nil {
		return fmt.Errorf("blocking %s %s: %w", b.noun, b.target.Value, err)
	}
	if res.Enforced() {
		r.stats.Groups.Add(1)
	}
	return nil
}

// sampleOf sorts list in place and returns its first five, for a reason.
func sampleOf(list []string) string {
	slices.Sort(list)
	return strings.Join(list[:min(len(list), 5)], ", ")
}
