package replay

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/apiguard/apiguard/event"
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
