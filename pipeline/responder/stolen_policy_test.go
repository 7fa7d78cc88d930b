package responder_test

import (
	"context"
	"log/slog"
	"maps"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/apiguard/apiguard/enforce"
	"github.com/apiguard/apiguard/event"
	"github.com/apiguard/apiguard/pipeline/responder"
)

// TestStolenCredentialPolicy: under the default policy, a stolen
// credential's owner (its subject, its API key) is never acted on; the new
// client the anomaly names is — its address blocked, its token revoked —
// and a stolen token is revoked and its thief's address blocked, for the
// rule's day. An address that principals with good history succeed from
// (other than the stolen credential and the thief's own) is recorded, not
// blocked; one they do not use — even on the same network — is blocked.
func TestStolenCredentialPolicy(t *testing.T) {
	now := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	ok := func(key, ip string) *event.RequestEvent { return request(key, ip, event.Decision_DECISION_ALLOW, 200) }
	tokenUse := func(jti, ip string) *event.RequestEvent {
		a := netip.MustParseAddr(ip).As4()
		return &event.RequestEvent{Id: "ev-" + jti + ip, TimeUnixNano: trigger.UnixNano(), Api: "POST /orders", TokenId: jti,
			ClientIp: a[:], Decision: event.Decision_DECISION_ALLOW, Status: 200}
	}
	tests := []struct {
		name    string
		traffic []*event.RequestEvent
		a       *event.Anomaly
		want    map[string]string // "kind value" → action
		dryRun  []string          // "kind value" recorded only
		owner   string            // "kind value" never acted on; empty for a token
	}{
		{name: "subject with the thief's address and token",
			a:    withMembers(mkAnomaly("s1", "stolen_token", "sub", "alice", 0.99), "ip 203.0.113.77", "token jti-thief"),
			want: map[string]string{"ip 203.0.113.77": "block", "token jti-thief": "revoke"}, owner: "sub alice"},
		{name: "API key with the thief's address",
			a:    withMembers(mkAnomaly("s2", "stolen_token", "key", "k-partner", 0.99), "ip 203.0.113.78"),
			want: map[string]string{"ip 203.0.113.78": "block"}, owner: "key k-partner"},
		{name: "subject whose thief's address is shared: nothing named, only flagged",
			a:    mkAnomaly("s3", "stolen_token", "sub", "alice", 0.99),
			want: map[string]string{}, owner: "sub alice"},
		{name: "a copied token: revoked, and its thief's address blocked",
			a:    withMembers(mkAnomaly("s4", "stolen_token", "token", "jti-copied", 0.99), "ip 203.0.113.79"),
			want: map[string]string{"token jti-copied": "revoke", "ip 203.0.113.79": "block"}},
		{name: "a copied token whose thief's address a partner succeeds from: revoked, the address recorded",
			traffic: []*event.RequestEvent{ok("k-office", "203.0.113.80"), ok("k-office", "203.0.113.80")},
			a:       withMembers(mkAnomaly("s5", "stolen_token", "token", "jti-copied", 0.99), "ip 203.0.113.80"),
			want:    map[string]string{"token jti-copied": "revoke"}, dryRun: []string{"ip 203.0.113.80"}},
		{name: "a partner on another address of the thief's network spares nothing",
			traffic: []*event.RequestEvent{ok("k-office", "203.0.113.81")},
			a:       withMembers(mkAnomaly("s6", "stolen_token", "token", "jti-copied", 0.99), "ip 203.0.113.82"),
			want:    map[string]string{"token jti-copied": "revoke", "ip 203.0.113.82": "block"}},
		{name: "the stolen token's own success at the thief's address is no good history",
			traffic: []*event.RequestEvent{tokenUse("jti-copied", "203.0.113.83")},
			a:       withMembers(mkAnomaly("s7", "stolen_token", "token", "jti-copied", 0.99), "ip 203.0.113.83"),
			want:    map[string]string{"token jti-copied": "revoke", "ip 203.0.113.83": "block"}},
		{name: "a subject's thief at an address a partner uses: its token revoked, the address recorded",
			traffic: []*event.RequestEvent{ok("k-office", "198.51.100.9")},
			a:       withMembers(mkAnomaly("s8", "stolen_token", "sub", "alice", 0.99), "ip 198.51.100.9", "token jti-thief"),
			want:    map[string]string{"token jti-thief": "revoke"}, dryRun: []string{"ip 198.51.100.9"}, owner: "sub alice"},
		{name: "a member naming the stolen subject itself is skipped",
			a:    withMembers(mkAnomaly("s9", "stolen_token", "sub", "alice", 0.99), "sub alice", "ip 203.0.113.84"),
			want: map[string]string{"ip 203.0.113.84": "block"}, owner: "sub alice"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := responder.DefaultConfig()
			w, audit := &memWriter{entries: map[enforce.Key]enforce.Entry{}}, &memAudit{}
			r := responder.New(cfg, w, audit, clock, slog.New(slog.DiscardHandler))
			seesTraffic(r)
			for _, ev := range tt.traffic {
				r.ObserveEvent(ev)
			}
			if err := r.WriteAnomaly(context.Background(), tt.a); err != nil {
				t.Fatal(err)
			}
			got := map[string]string{}
			for k, e := range w.entries {
				got[k.String()] = e.Action.String()
				if e.Kind == enforce.KindIP && e.Expires.Sub(now) != 24*time.Hour {
					t.Errorf("%s expires in %s, want the rule's 24h", k, e.Expires.Sub(now))
				}
			}
			if !maps.Equal(got, tt.want) {
				t.Errorf("entries %v, want %v", got, tt.want)
			}
			if _, ok := got[tt.owner]; ok && tt.owner != "" {
				t.Errorf("the owner %s was acted on", tt.owner)
			}
			for _, p := range tt.dryRun {
				found := false
				for _, act := range audit.actions {
					if act.Target.GetKind()+" "+act.Target.GetValue() == p {
						found = true
						if !act.DryRun || !strings.Contains(act.Reason, "principal(s) with good history use") {
							t.Errorf("%s: dry-run %v, reason %q; want recorded only, saying who uses it", p, act.DryRun, act.Reason)
						}
					}
				}
				if !found {
					t.Errorf("%s: no action recorded", p)
				}
			}
		})
	}
}
