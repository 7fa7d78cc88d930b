package responder_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/apiguard/apiguard/enforce"
	"github.com/apiguard/apiguard/event"
	"github.com/apiguard/apiguard/pipeline/responder"
)

// request is an event of principal key (or of the address, with key "")
// from ip, as the proxy decided it.
func request(key, ip string, decision event.Decision, status uint32) *event.RequestEvent {
	a := netip.MustParseAddr(ip).As4()
	return &event.RequestEvent{Id: fmt.Sprintf("ev-%s-%s-%d", key, ip, status), TimeUnixNano: trigger.UnixNano(),
		Api: "POST /orders", ApiKeyId: key, ClientIp: a[:], Decision: decision, Status: status}
}

// seesTraffic makes r a responder that the pipeline shows its events (a
// client elsewhere), as in production.
func seesTraffic(r *responder.Responder) {
	r.ObserveEvent(request("k-elsewhere", "10.99.0.1", event.Decision_DECISION_ALLOW, 200))
}

// TestNetworkUsedByGoodPrincipals: a network that a principal with good
// history uses is never blocked whole — neither as a group of its blocked
// addresses nor on an anomaly of the network itself; its attacking
// addresses are. A responder that sees no traffic cannot tell, and blocks
// no network whole. Scanners' failures are no good history.
func TestNetworkUsedByGoodPrincipals(t *testing.T) {
	now := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	campaign := func(prefix string, n int) []*event.Anomaly {
		var out []*event.Anomaly
		for i := range n {
			out = append(out, mkAnomaly(fmt.Sprintf("g%s%d", prefix, i), "credential_stuffing", "ip", fmt.Sprintf("%s.%d", prefix, 10+i), 0.95))
		}
		return out
	}
	cidr := func(w *memWriter, n string) bool {
		_, ok := w.entries[enforce.Key{Kind: enforce.KindCIDR, Value: n}]
		return ok
	}
	lastCIDR := func(audit *memAudit) *event.Action {
		for i := len(audit.actions) - 1; i >= 0; i-- {
			if audit.actions[i].Target.Kind == event.KindCIDR {
				return audit.actions[i]
			}
		}
		return nil
	}

	// A visitor of the network (a few successful requests, one failure).
	w, audit, r := run(t, responder.DefaultConfig(), clock)
	for _, st := range []uint32{200, 200, 404, 200} {
		r.ObserveEvent(request("", "198.51.100.200", event.Decision_DECISION_ALLOW, st))
	}
	// Scanners of the network: failures only, and one whose one success
	// is outweighed.
	for i := range 5 {
		r.ObserveEvent(request("", fmt.Sprintf("198.51.100.%d", 100+i), event.Decision_DECISION_ALLOW, 404))
	}
	for _, st := range []uint32{200, 404, 404} {
		r.ObserveEvent(request("", "198.51.100.120", event.Decision_DECISION_ALLOW, st))
	}
	for _, a := range campaign("198.51.100", 20) {
		if err := r.WriteAnomaly(context.Background(), a); err != nil {
			t.Fatal(err)
		}
	}
	if cidr(w, "198.51.100.0/24") {
		t.Error("a network a visitor uses was blocked whole")
	}
	if _, ok := w.entries[enforce.Key{Kind: enforce.KindIP, Value: "198.51.100.15"}]; !ok {
		t.Error("the campaign's addresses were not blocked")
	}
	g := lastCIDR(audit)
	if g == nil || !g.DryRun || !strings.Contains(g.Reason, "1 principal(s) with good history use 198.51.100.0/24 (ip 198.51.100.200)") {
		t.Errorf("group action %v, want one recorded only, naming the visitor", g)
	}
	if err := r.WriteAnomaly(context.Background(), mkAnomaly("net", "credential_stuffing", "cidr", "198.51.100.0/24", 0.95)); err != nil {
		t.Fatal(err)
	}
	if cidr(w, "198.51.100.0/24") {
		t.Error("a network a visitor uses was blocked on its own anomaly")
	}
	if a := audit.actions[len(audit.actions)-1]; !a.DryRun || !strings.Contains(a.Reason, "network not blocked whole: 1 principal(s) with good history") {
		t.Errorf("network anomaly's action %v", a)
	}

	// The scanners alone do not spare their network.
	w, _, r = run(t, responder.DefaultConfig(), clock)
	for i := range 20 {
		r.ObserveEvent(request("", fmt.Sprintf("203.0.113.%d", 10+i), event.Decision_DECISION_ALLOW, 404))
	}
	for _, a := range campaign("203.0.113", 20) {
		if err := r.WriteAnomaly(context.Background(), a); err != nil {
			t.Fatal(err)
		}
	}
	if !cidr(w, "203.0.113.0/24") {
		t.Error("a network only the campaign uses was not blocked whole")
	}

	// Without traffic the responder cannot tell.
	w, audit = &memWriter{entries: map[enforce.Key]enforce.Entry{}}, &memAudit{}
	blind := responder.New(responder.DefaultConfig(), w, audit, clock, slog.New(slog.DiscardHandler))
	for _, a := range append(campaign("192.0.2", 20), mkAnomaly("net2", "credential_stuffing", "cidr", "192.0.2.0/24", 0.95)) {
		if err := blind.WriteAnomaly(context.Background(), a); err != nil {
			t.Fatal(err)
		}
	}
	if cidr(w, "192.0.2.0/24") {
		t.Error("a responder that sees no traffic blocked a network whole")
	}
	if a := lastCIDR(audit); a == nil || !strings.Contains(a.Reason, "sees no traffic") {
		t.Errorf("blind responder's network action %v", a)
	}
}

// TestThrottleDefied: a throttled principal that goes on sending past its
// 429s is blocked, the reason saying the throttle and how it went on; one
// that slows down to its rate stays throttled, even when its detector
// flags it again.
func TestThrottleDefied(t *testing.T) {
	now := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	vol := func(id, key string) *event.Anomaly {
		return mkAnomaly(id, "volumetric", "key", key, 0.9, &event.Deviation{Feature: "requests_1m", Observed: 900, Expected: 60})
	}
	w, audit, r := run(t, responder.DefaultConfig(), clock, vol("v1", "k-attacker"), vol("p1", "k-partner"))
	for _, k := range []string{"k-attacker", "k-partner"} {
		if e := w.entries[enforce.Key{Kind: enforce.KindKey, Value: k}]; e.Action != enforce.ActionThrottle {
			t.Fatalf("%s: %+v, want a throttle", k, e)
		}
	}
	// The partner: its burst's last requests refused, then at its rate.
	for i := range 60 {
		st, d := uint32(200), event.Decision_DECISION_ALLOW
		if i < 20 || i%3 == 0 {
			st, d = 429, event.Decision_DECISION_THROTTLE
		}
		if a := r.ObserveEvent(request("k-partner", "192.0.2.200", d, st)); a != nil {
			t.Fatalf("the partner that slowed down defies its throttle: %s", a.Summary)
		}
	}
	now = now.Add(time.Minute)
	if err := r.WriteAnomaly(context.Background(), vol("p2", "k-partner")); err != nil {
		t.Fatal(err)
	}
	if e := w.entries[enforce.Key{Kind: enforce.KindKey, Value: "k-partner"}]; e.Action != enforce.ActionThrottle {
		t.Errorf("partner flagged again after slowing down: %+v, want still a throttle", e)
	}
	// The attacker: everything refused.
	var defied *event.Anomaly
	for i := range 80 {
		a := r.ObserveEvent(request("k-attacker", "203.0.113.9", event.Decision_DECISION_THROTTLE, 429))
		switch {
		case a != nil && defied != nil:
			t.Fatalf("defiance reported twice (request %d)", i)
		case a != nil:
			defied = a
			if i != 49 {
				t.Errorf("defiance reported at request %d, want at the 50th", i+1)
			}
		}
	}
	if defied == nil {
		t.Fatal("80 requests refused in a row: no defiance")
	}
	if defied.Detector != "volumetric" || defied.Principal.Value != "k-attacker" || defied.Api != "POST /orders" ||
		!strings.Contains(defied.Summary, "went on past its throttle") {
		t.Errorf("defiance anomaly %+v", defied)
	}
	if err := r.WriteAnomaly(context.Background(), defied); err != nil {
		t.Fatal(err)
	}
	e := w.entries[enforce.Key{Kind: enforce.KindKey, Value: "k-attacker"}]
	if e.Action != enforce.ActionBlock {
		t.Fatalf("attacker after defying: %+v, want a block", e)
	}
	last := audit.actions[len(audit.actions)-1]
	for _, want := range []string{"rule volumetric-throttle", "by rule volumetric-throttle, it went on: 80 of its 80 requests", "throttle escalated to block"} {
		if !strings.Contains(last.Reason, want) {
			t.Errorf("block reason %q lacks %q", last.Reason, want)
		}
	}
	// Blocked, it is no longer watched: nothing more is raised.
	if a := r.ObserveEvent(request("k-attacker", "203.0.113.9", event.Decision_DECISION_BLOCK, 403)); a != nil {
		t.Errorf("a blocked principal raised %s", a.Summary)
	}
}

// BenchmarkObserveEvent is what the pipeline pays per event for the
// responder's view of the traffic: allowed requests of many principals
// over many networks, no throttle in force.
func BenchmarkObserveEvent(b *testing.B) {
	evs := make([]*event.RequestEvent, 4096)
	for i := range evs {
		evs[i] = request(fmt.Sprintf("k%d", i%1000), fmt.Sprintf("10.%d.%d.%d", i%7, i%251, i%13+1), event.Decision_DECISION_ALLOW, 200)
		evs[i].UserAgent = fmt.Sprintf("okhttp/4.%d", i%3)
		evs[i].TlsFingerprint = "t13d1516h2_8daaf6152771_b0da82dd1658"
	}
	// fingerprints: the default; networks only: fingerprint groups off
	// (groups.min_fingerprint_principals 0), the baseline.
	for _, fpGroups := range []bool{true, false} {
		name := "fingerprints"
		if !fpGroups {
			name = "networks-only"
		}
		b.Run(name, func(b *testing.B) {
			cfg := responder.DefaultConfig()
			if !fpGroups {
				cfg.Groups.MinFingerprintPrincipals = 0
			}
			r := responder.New(cfg, &memWriter{entries: map[enforce.Key]enforce.Entry{}}, &memAudit{},
				time.Now, slog.New(slog.DiscardHandler))
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				r.ObserveEvent(evs[i%len(evs)])
			}
		})
	}
}
