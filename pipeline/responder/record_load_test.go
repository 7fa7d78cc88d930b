package responder_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	promtest "github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/apiguard/apiguard/enforce"
	"github.com/apiguard/apiguard/event"
	"github.com/apiguard/apiguard/pipeline/responder"
)

// at returns ev with its event time set to t.
func at(ev *event.RequestEvent, t time.Time) *event.RequestEvent {
	ev.TimeUnixNano = t.UnixNano()
	return ev
}

// TestRecordLoadHoldsBackGroups: while the record of the requests from
// before the start loads, per-principal actions go ahead and what reads
// the record is held back, saying so: network groups, a network anomaly's
// entry. When the load ends the groups are judged again with the whole
// record: the network a partner used before the start is spared, naming
// it; the network only the campaign uses is blocked whole.
func TestRecordLoadHoldsBackGroups(t *testing.T) {
	now := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	w, audit, r := run(t, responder.DefaultConfig(), clock)
	r.BeginRecordLoad()
	if !r.RecordLoading() {
		t.Fatal("RecordLoading false after BeginRecordLoad")
	}
	ctx := context.Background()
	for _, net := range []string{"198.51.100", "203.0.113"} {
		for i := range 12 {
			if err := r.WriteAnomaly(ctx, mkAnomaly(fmt.Sprintf("%s-%d", net, i), "credential_stuffing", "ip", fmt.Sprintf("%s.%d", net, 10+i), 0.95)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := r.WriteAnomaly(ctx, mkAnomaly("net", "probing", "cidr", "192.0.2.0/24", 0.95)); err != nil {
		t.Fatal(err)
	}
	if err := r.WriteAnomaly(ctx, mkAnomaly("vol", "volumetric", "key", "k-burst", 0.9)); err != nil {
		t.Fatal(err)
	}
	w.mu.Lock()
	for _, k := range []enforce.Key{{Kind: enforce.KindIP, Value: "198.51.100.21"}, {Kind: enforce.KindIP, Value: "203.0.113.10"}, {Kind: enforce.KindKey, Value: "k-burst"}} {
		if _, ok := w.entries[k]; !ok {
			t.Errorf("%s %s not acted on while the record loads", k.Kind, k.Value)
		}
	}
	for k := range w.entries {
		if k.Kind == enforce.KindCIDR {
			t.Errorf("network %s blocked whole while the record loads", k.Value)
		}
	}
	w.mu.Unlock()
	held := map[string]*event.Action{}
	for _, a := range audit.actions {
		if a.Target.Kind == event.KindCIDR {
			if !a.DryRun || !strings.Contains(a.Reason, "still loading its record of the requests before its start") {
				t.Errorf("network action while loading: %s", a.Reason)
			}
			held[a.Target.Value] = a
		}
	}
	if len(held) != 3 {
		t.Fatalf("networks held back: %v, want the two groups and the network anomaly's", held)
	}
	if !strings.Contains(held["198.51.100.0/24"].Reason, "judged again when the load ends") {
		t.Errorf("group held back: %s", held["198.51.100.0/24"].Reason)
	}
	if r.Stats().HeldBack.Load() < 3 {
		t.Errorf("HeldBack %d, want at least 3", r.Stats().HeldBack.Load())
	}

	// The load shows the partner's successes from before the start.
	for range 3 {
		r.ObserveEarlierEvent(at(request("k-partner", "198.51.100.7", event.Decision_DECISION_ALLOW, 200), trigger.Add(-3*time.Hour)))
	}
	if r.RecordLoaded() != 3 {
		t.Errorf("RecordLoaded %d, want 3", r.RecordLoaded())
	}
	n, err := r.EndRecordLoad(ctx)
	if err != nil || n != 2 {
		t.Fatalf("EndRecordLoad judged %d again (%v), want the 2 groups", n, err)
	}
	if r.RecordLoading() {
		t.Error("RecordLoading after EndRecordLoad")
	}
	w.mu.Lock()
	_, partnerNet := w.entries[enforce.Key{Kind: enforce.KindCIDR, Value: "198.51.100.0/24"}]
	_, campaignNet := w.entries[enforce.Key{Kind: enforce.KindCIDR, Value: "203.0.113.0/24"}]
	w.mu.Unlock()
	if partnerNet {
		t.Error("the network a partner used before the start was blocked whole after the load")
	}
	if !campaignNet {
		t.Error("the network only the campaign uses was not blocked whole after the load")
	}
	last := audit.actions[len(audit.actions)-2:]
	for _, a := range last {
		if a.Target.Kind != event.KindCIDR || a.Id == held[a.Target.Value].GetId() {
			t.Errorf("after the load: %v (its id must differ from the held-back one's)", a)
		}
		if a.Target.Value == "198.51.100.0/24" && (!a.DryRun || !strings.Contains(a.Reason, "good history use 198.51.100.0/24 (key k-partner)")) {
			t.Errorf("partner's network after the load: %s", a.Reason)
		}
	}
	// Loaded, the responder judges with the record at once.
	if err := r.WriteAnomaly(ctx, mkAnomaly("net2", "probing", "cidr", "198.51.100.0/24", 0.95)); err != nil {
		t.Fatal(err)
	}
	if a := audit.actions[len(audit.actions)-1]; !a.DryRun || strings.Contains(a.Reason, "loading") || !strings.Contains(a.Reason, "k-partner") {
		t.Errorf("network anomaly after the load: %s", a.Reason)
	}
}

// TestRecordLoadInterleaved: the load's older events interleave with live
// newer ones (run it with -race). A principal's fingerprint is the one it
// presented last, though its older event came later; the sweeps by event
// time drop none of the live record, though older events keep coming.
func TestRecordLoadInterleaved(t *testing.T) {
	const tool, app = "python-requests/2.31", "app/1.4"
	toolFP := event.ClientFingerprint("t13d1516h2_tool", "", tool, "")
	now := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	w, audit, r := run(t, responder.DefaultConfig(), func() time.Time { return now })
	r.BeginRecordLoad()
	r.ObserveEvent(at(toolEvent("k-partner", "192.0.2.9", app, 200), trigger))
	r.ObserveEvent(at(request("k-live", "10.1.2.3", event.Decision_DECISION_ALLOW, 200), trigger))
	scanners := make([]string, 5)
	for i := range scanners {
		scanners[i] = fmt.Sprintf("198.%d.100.7", 18+i) // one per /24
		r.ObserveEvent(at(toolEvent("", scanners[i], tool, 404), trigger))
	}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { // the load: a day back, oldest first, then the scanners' app requests of an hour ago
		defer wg.Done()
		for i := range 2000 {
			old := trigger.Add(-23*time.Hour + time.Duration(i)*40*time.Second)
			r.ObserveEarlierEvent(at(request(fmt.Sprintf("k-old-%d", i%50), fmt.Sprintf("172.16.%d.%d", i%200, i%250+1), event.Decision_DECISION_ALLOW, 200), old))
		}
		for _, ip := range scanners {
			r.ObserveEarlierEvent(at(toolEvent("", ip, app, 200), trigger.Add(-time.Hour)))
		}
	}()
	go func() { // live traffic meanwhile
		defer wg.Done()
		for i := range 2000 {
			r.ObserveEvent(at(request(fmt.Sprintf("k-new-%d", i%50), fmt.Sprintf("10.%d.0.%d", 50+i%100, i%250+1), event.Decision_DECISION_ALLOW, 200), trigger))
		}
	}()
	wg.Wait()
	if _, err := r.EndRecordLoad(context.Background()); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for i, ip := range scanners {
		if err := r.WriteAnomaly(ctx, mkAnomaly(fmt.Sprintf("p%d", i), "probing", "ip", ip, 0.95)); err != nil {
			t.Fatal(err)
		}
	}
	w.mu.Lock()
	_, blocked := w.entries[enforce.Key{Kind: enforce.KindFP, Value: toolFP}]
	w.mu.Unlock()
	if !blocked {
		for _, a := range audit.actions {
			t.Log(a.Target.Kind, a.Target.Value, a.DryRun, a.Reason)
		}
		t.Error("the scanners' latest fingerprint was not blocked: an older event replaced it")
	}
	if err := r.WriteAnomaly(ctx, mkAnomaly("net", "probing", "cidr", "10.1.2.0/24", 0.95)); err != nil {
		t.Fatal(err)
	}
	if a := audit.actions[len(audit.actions)-1]; !a.DryRun || !strings.Contains(a.Reason, "key k-live") {
		t.Errorf("the live user's network after older events: %s", a.Reason)
	}
}

// TestRecordLoadPerPrincipal: while the record loads, a stolen token is
// revoked at once and the thief's address (spare_shared reads the record)
// is held back, saying so; the load's older events count towards no
// throttle of this process; the metrics show the load's progress.
func TestRecordLoadPerPrincipal(t *testing.T) {
	now := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	w, audit, r := run(t, responder.DefaultConfig(), clock)
	reg := prometheus.NewPedanticRegistry()
	if err := responder.RegisterMetrics(reg, r); err != nil {
		t.Fatal(err)
	}
	r.BeginRecordLoad()
	ctx := context.Background()
	if err := r.WriteAnomaly(ctx, withMembers(mkAnomaly("s1", "stolen_token", "token", "jti-copied", 0.99), "ip 203.0.113.79")); err != nil {
		t.Fatal(err)
	}
	w.mu.Lock()
	tok, revoked := w.entries[enforce.Key{Kind: enforce.KindToken, Value: "jti-copied"}]
	_, thief := w.entries[enforce.Key{Kind: enforce.KindIP, Value: "203.0.113.79"}]
	w.mu.Unlock()
	if !revoked || tok.Action != enforce.ActionRevoke {
		t.Errorf("stolen token while the record loads: %+v, want revoked", tok)
	}
	if thief {
		t.Error("the thief's address blocked before the record could tell whether good principals use it")
	}
	if a := audit.actions[len(audit.actions)-1]; a.Target.Value != "203.0.113.79" || !a.DryRun || !strings.Contains(a.Reason, "address not blocked: the responder is still loading its record") {
		t.Errorf("thief's address while loading: %v", a)
	}
	// A throttled principal: its earlier 429s are not defiance of this throttle.
	if err := r.WriteAnomaly(ctx, mkAnomaly("v1", "volumetric", "key", "k-burst", 0.9, &event.Deviation{Feature: "requests_1m", Observed: 900, Expected: 60})); err != nil {
		t.Fatal(err)
	}
	for range 80 {
		r.ObserveEarlierEvent(at(request("k-burst", "192.0.2.5", event.Decision_DECISION_THROTTLE, 429), trigger.Add(-time.Minute)))
	}
	now = now.Add(time.Minute)
	if err := r.WriteAnomaly(ctx, mkAnomaly("v2", "volumetric", "key", "k-burst", 0.9, &event.Deviation{Feature: "requests_1m", Observed: 900, Expected: 60})); err != nil {
		t.Fatal(err)
	}
	w.mu.Lock()
	e := w.entries[enforce.Key{Kind: enforce.KindKey, Value: "k-burst"}]
	w.mu.Unlock()
	if e.Action != enforce.ActionThrottle {
		t.Errorf("k-burst after its earlier 429s were loaded: %+v, want still a throttle", e)
	}
	want := `# HELP apiguard_responder_warm_events_total Events from before the start the responder's record was loaded with.
# TYPE apiguard_responder_warm_events_total counter
apiguard_responder_warm_events_total 80
# HELP apiguard_responder_warm_pending 1 while the responder loads its record of the requests from before its start (who succeeded from each network and under each fingerprint), in the background; 0 once it is whole.
# TYPE apiguard_responder_warm_pending gauge
apiguard_responder_warm_pending 1
`
	if err := promtest.GatherAndCompare(reg, strings.NewReader(want), "apiguard_responder_warm_events_total", "apiguard_responder_warm_pending"); err != nil {
		t.Error(err)
	}
	if _, err := r.EndRecordLoad(ctx); err != nil {
		t.Fatal(err)
	}
	if err := promtest.GatherAndCompare(reg, strings.NewReader(strings.Replace(want, "apiguard_responder_warm_pending 1\n", "apiguard_responder_warm_pending 0\n", 1)), "apiguard_responder_warm_pending"); err != nil {
		t.Error(err)
	}
}

// TestRecordWindowValidate: responder.record_window is 0 (the record's
// window) or 1m up to the record's window.
func TestRecordWindowValidate(t *testing.T) {
	for _, tc := range []struct {
		w  time.Duration
		ok bool
	}{{0, true}, {time.Minute, true}, {2 * time.Hour, true}, {24 * time.Hour, true}, {30 * time.Second, false}, {48 * time.Hour, false}} {
		cfg := responder.DefaultConfig()
		cfg.RecordWindow = tc.w
		err := cfg.Validate()
		if (err == nil) != tc.ok || (err != nil && !strings.Contains(err.Error(), "responder.record_window")) {
			t.Errorf("record_window %s: %v, want ok %v", tc.w, err, tc.ok)
		}
	}
}
