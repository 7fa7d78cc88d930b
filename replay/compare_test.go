package replay

import (
	"context"
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/apiguard/apiguard/event"
	"github.com/apiguard/apiguard/pipeline/responder"
)

// blockAll is a stand-in for the responder: it blocks every anomaly's
// client principal except 10.0.0.2, whose block it records as dry-run, and
// stamps actions with the clock it is given.
type blockAll struct {
	acts *Actions
	seen []time.Time
}

func (b *blockAll) WriteAnomaly(ctx context.Context, a *event.Anomaly) error {
	b.seen = append(b.seen, b.acts.Now())
	if a.Principal.Kind == event.KindAPI {
		return nil // as the responder: an API is not a client
	}
	act := &event.Action{Kind: event.ActionKind_ACTION_BLOCK, Target: a.Principal, Reason: "blocked"}
	if a.Principal.Value == "10.0.0.2" {
		act.DryRun, act.Reason = true, "never_block"
	}
	return b.acts.WriteAction(ctx, act)
}

func TestJudgeAndCompare(t *testing.T) {
	at := func(s int) int64 { return time.Unix(1700000000+int64(s), 0).UnixNano() }
	an := func(s int, det, ip, ev string) *event.Anomaly {
		return &event.Anomaly{Id: det + ip, TimeUnixNano: at(s), Detector: det, Summary: det + " on " + ip, Score: 1,
			Principal: &event.Principal{Kind: event.KindIP, Value: ip}, EventIds: []string{ev}}
	}
	res := &Result{labels: map[string]string{"e1": "probing/1"}, Anomalies: []*event.Anomaly{
		an(20, "probing", "10.0.0.1", "e9"), an(10, "enumeration", "10.0.0.1", "e1"), an(30, "probing", "10.0.0.2", "e2"),
		{Id: "api", TimeUnixNano: at(5), Detector: "health", Principal: &event.Principal{Kind: event.KindAPI, Value: "GET /"}},
	}}
	acts := &Actions{}
	w := &blockAll{acts: acts}
	vs, err := Judge(context.Background(), res, w, acts)
	if err != nil {
		t.Fatal(err)
	}
	if len(w.seen) != 4 || !w.seen[0].Equal(time.Unix(0, at(5))) || !w.seen[3].Equal(time.Unix(0, at(30))) {
		t.Errorf("clock %v: want each anomaly's event time, in order", w.seen)
	}
	v := vs["ip:10.0.0.1"]
	if v == nil || v.Action != "block" || v.Anomalies != 2 || !slices.Equal(v.Detectors, []string{"enumeration", "probing"}) ||
		v.Label != "probing/1" || v.Why != "enumeration: enumeration on 10.0.0.1" || !v.First.Equal(time.Unix(0, at(10))) {
		t.Errorf("verdict %+v", v)
	}
	if v := vs["ip:10.0.0.2"]; v == nil || v.Action != "" || v.Recorded != "never_block" {
		t.Errorf("verdict %+v", v)
	}
	res.SetVerdicts(vs)
	if res.FlaggedPrincipals != 2 || res.BlockedPrincipals != 1 {
		t.Errorf("flagged %d, blocked %d", res.FlaggedPrincipals, res.BlockedPrincipals)
	}
	old := Verdicts{"ip:10.0.0.2": {Principal: "ip:10.0.0.2", Anomalies: 1, Action: "block"}}
	c := Compare(vs, old, &Result{})
	if !slices.Equal(c.FlaggedOnlyNew, []string{"ip:10.0.0.1"}) || !slices.Equal(c.BlockedOnlyNew, []string{"ip:10.0.0.1"}) ||
		!slices.Equal(c.BlockedOnlyOld, []string{"ip:10.0.0.2"}) || len(c.FlaggedOnlyOld) != 0 {
		t.Errorf("comparison %+v", c)
	}
}

// TestJudgeCountsRevokes: a token the responder's default policy revokes
// (a stolen token's thief) is a principal acted on, as its blocked address
// is; a principal blocked after a revoke keeps the block.
func TestJudgeCountsRevokes(t *testing.T) {
	at := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC).UnixNano()
	member := func(kind, value string) *event.Principal { return &event.Principal{Kind: kind, Value: value} }
	res := &Result{Anomalies: []*event.Anomaly{{Id: "st1", TimeUnixNano: at, Detector: "stolen_token", Api: "POST /orders",
		Principal: member(event.KindSub, "alice"), Score: 0.99, Severity: event.Severity_SEVERITY_HIGH, Summary: "new client",
		Members: []*event.Principal{member(event.KindIP, "203.0.113.77"), member(event.KindToken, "jti-thief")}}}}
	acts := &Actions{}
	vs, err := Judge(context.Background(), res, responder.New(responder.DefaultConfig(), acts, acts, acts.Now, slog.New(slog.DiscardHandler)), acts)
	if err != nil {
		t.Fatal(err)
	}
	if v := vs["token:jti-thief"]; v == nil || v.Action != "revoke" {
		t.Errorf("revoked token's verdict %+v, want action revoke", v)
	}
	if v := vs["ip:203.0.113.77"]; v == nil || v.Action != "block" {
		t.Errorf("thief's address verdict %+v, want action block", v)
	}
	if v := vs["sub:alice"]; v == nil || v.Action != "" {
		t.Errorf("stolen subject's verdict %+v, want no action", v)
	}
	res.SetVerdicts(vs)
	if !slices.Equal(vs.Blocked(), []string{"ip:203.0.113.77", "token:jti-thief"}) || res.BlockedPrincipals != 2 {
		t.Errorf("acted on %v (%d), want the address and the token", vs.Blocked(), res.BlockedPrincipals)
	}

	// The strongest action names the verdict, whatever the order.
	acts = &Actions{}
	w := &fixedActs{acts: acts, kinds: []event.ActionKind{event.ActionKind_ACTION_THROTTLE, event.ActionKind_ACTION_BLOCK,
		event.ActionKind_ACTION_REVOKE, event.ActionKind_ACTION_THROTTLE}}
	vs, err = Judge(context.Background(), res, w, acts)
	if err != nil {
		t.Fatal(err)
	}
	if v := vs["token:t1"]; v == nil || v.Action != "block" {
		t.Errorf("verdict %+v, want block over throttle and revoke", v)
	}
}

// fixedActs acts on token t1 with each of kinds in turn.
type fixedActs struct {
	acts  *Actions
	kinds []event.ActionKind
}

func (f *fixedActs) WriteAnomaly(ctx context.Context, _ *event.Anomaly) error {
	for _, k := range f.kinds {
		if err := f.acts.WriteAction(ctx, &event.Action{Kind: k, Target: &event.Principal{Kind: event.KindToken, Value: "t1"}, Reason: k.String()}); err != nil {
			return err
		}
	}
	return nil
}
