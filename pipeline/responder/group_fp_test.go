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

// toolEvent is a request from ip by principal key (an address principal
// when key is empty) presenting the client of ua.
func toolEvent(key, ip, ua string, status uint32) *event.RequestEvent {
	a := netip.MustParseAddr(ip).As4()
	return &event.RequestEvent{Id: fmt.Sprintf("ev-%s-%s-%d", key, ip, status), TimeUnixNano: trigger.UnixNano(),
		Api: "POST /orders", ApiKeyId: key, ClientIp: a[:], UserAgent: ua, TlsFingerprint: "t13d1516h2_tool",
		Decision: event.Decision_DECISION_ALLOW, Status: status}
}

// TestFingerprintGroup: principals presenting one client fingerprint and
// blocked within the group window become one fp entry when no principal
// with good history presents the fingerprint; a fingerprint that a good
// principal presents, or that too many do, is never blocked (recorded as
// dry-run, saying why); fewer principals, or blocks further apart than the
// window, make no group.
func TestFingerprintGroup(t *testing.T) {
	const tool = "python-requests/2.31"
	fp := event.ClientFingerprint("t13d1516h2_tool", "", tool, "")
	tests := []struct {
		name     string
		scanners int           // addresses of the tool, each blocked
		apart    time.Duration // between blocks
		good     int           // keys with successes under the same fingerprint
		oneNet   bool          // the scanners share a /24
		want     bool          // the fingerprint is blocked
		why      string        // the dry-run's reason says it
	}{
		{name: "five scanners of one tool: grouped", scanners: 5, want: true},
		{name: "eight scanners: one entry", scanners: 8, want: true},
		{name: "four scanners: below min_fingerprint_principals", scanners: 4},
		{name: "eight scanners of one /24: left to the network group", scanners: 8, oneNet: true},
		{name: "five scanners further apart than the window", scanners: 5, apart: 4 * time.Minute},
		{name: "a partner presents the fingerprint with good history", scanners: 6, good: 1, why: "principal(s) with good history present " + fp},
		{name: "many good principals present it", scanners: 6, good: 20, why: "more than 16 principals with good history present"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			now := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
			cfg := responder.DefaultConfig()
			cfg.Groups.Window = 10 * time.Minute
			w, audit := &memWriter{entries: map[enforce.Key]enforce.Entry{}}, &memAudit{}
			r := responder.New(cfg, w, audit, func() time.Time { return now }, slog.New(slog.DiscardHandler))
			seesTraffic(r)
			for i := range tt.good {
				r.ObserveEvent(toolEvent(fmt.Sprintf("k-partner-%d", i), fmt.Sprintf("192.0.2.%d", i+1), tool, 200))
			}
			for i := range tt.scanners {
				ip := fmt.Sprintf("198.%d.100.7", 18+i) // one per /24: no network group
				if tt.oneNet {
					ip = fmt.Sprintf("198.18.100.%d", 7+i)
				}
				r.ObserveEvent(toolEvent("", ip, tool, 404))
				a := mkAnomaly(fmt.Sprintf("p%d", i), "probing", "ip", ip, 0.95)
				if err := r.WriteAnomaly(context.Background(), a); err != nil {
					t.Fatal(err)
				}
				now = now.Add(tt.apart)
			}
			e, blocked := w.entries[enforce.Key{Kind: enforce.KindFP, Value: fp}]
			if blocked != tt.want {
				t.Fatalf("fingerprint blocked %v, want %v (entries %v)", blocked, tt.want, w.entries)
			}
			if blocked && (e.Action != enforce.ActionBlock || e.Actor != "policy:group-fp" || !strings.Contains(e.Reason, "none with good history presents it")) {
				t.Errorf("entry %+v", e)
			}
			groups := 0
			var reason string
			for _, act := range audit.actions {
				if act.Target.GetKind() == event.KindFP {
					groups++
					reason = act.Reason
					if !act.DryRun && tt.why != "" {
						t.Errorf("enforced over good history: %s", act.Reason)
					}
				}
			}
			if tt.want && groups != 1 {
				t.Errorf("%d fingerprint actions, want one entry", groups)
			}
			if tt.why != "" && !strings.Contains(reason, tt.why) {
				t.Errorf("reason %q lacks %q", reason, tt.why)
			}
			ips := 0
			for k := range w.entries {
				if k.Kind == enforce.KindIP {
					ips++
				}
			}
			if ips != tt.scanners {
				t.Errorf("%d scanners blocked of %d", ips, tt.scanners)
			}
		})
	}
}

// TestFingerprintGroupBlind: a responder that sees no events knows no
// principal's fingerprint and makes no fingerprint group.
func TestFingerprintGroupBlind(t *testing.T) {
	now := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	var as []*event.Anomaly
	for i := range 8 {
		as = append(as, mkAnomaly(fmt.Sprintf("b%d", i), "probing", "ip", fmt.Sprintf("198.%d.100.7", 18+i), 0.95))
	}
	cfg := responder.DefaultConfig()
	w := &memWriter{entries: map[enforce.Key]enforce.Entry{}}
	r := responder.New(cfg, w, &memAudit{}, func() time.Time { return now }, slog.New(slog.DiscardHandler))
	for _, a := range as {
		if err := r.WriteAnomaly(context.Background(), a); err != nil {
			t.Fatal(err)
		}
	}
	for k := range w.entries {
		if k.Kind == enforce.KindFP {
			t.Errorf("blocked %s without seeing traffic", k)
		}
	}
}

// TestGroupConfigErrors: a bad groups setting is refused naming its key.
func TestGroupConfigErrors(t *testing.T) {
	for _, tt := range []struct {
		mod  func(*responder.GroupConfig)
		want string
	}{
		{func(g *responder.GroupConfig) { g.MinFingerprintPrincipals = 1 }, "responder.groups.min_fingerprint_principals: 1"},
		{func(g *responder.GroupConfig) { g.MinFingerprintPrincipals = 65 }, "responder.groups.min_fingerprint_principals: 65"},
		{func(g *responder.GroupConfig) { g.MinAddresses = 1 }, "responder.groups.min_addresses: 1"},
		{func(g *responder.GroupConfig) { g.MinAddresses = 0; g.Window = 0 }, "responder.groups.window"},
		{func(g *responder.GroupConfig) { g.MinASNPrincipals = 1 }, "responder.groups.min_asn_principals: 1"},
		{func(g *responder.GroupConfig) {
			g.MinAddresses, g.MinFingerprintPrincipals, g.MinASNPrincipals, g.Window = 0, 0, 0, 0
		}, ""},
	} {
		g := responder.DefaultGroupConfig()
		tt.mod(&g)
		err := g.Validate()
		if (err == nil) != (tt.want == "") || (err != nil && !strings.Contains(err.Error(), tt.want)) {
			t.Errorf("%+v: %v, want %q", g, err, tt.want)
		}
	}
}
