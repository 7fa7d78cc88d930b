package proxy

import (
	"net/netip"
	"testing"
	"time"

	"github.com/apiguard/apiguard/enforce"
	"github.com/apiguard/apiguard/event"
)

// TestEnforcementPolicyEntries: what the responder's policies write is
// what the proxy does — a revocation by jti (kind token), by token hash or
// by subject answers 401 with error="invalid_token"; a throttle with a
// rate lets the principal go on at that rate and answers 429 past it; a
// block answers 403.
func TestEnforcementPolicyEntries(t *testing.T) {
	now := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	exp := now.Add(10 * time.Minute)
	m := enforce.NewMatcher()
	if errs := m.Replace([]enforce.Entry{
		{Kind: enforce.KindToken, Value: "jti-stolen", Action: enforce.ActionRevoke, Expires: exp},
		{Kind: enforce.KindToken, Value: "0123abcd", Action: enforce.ActionRevoke, Expires: exp},
		{Kind: enforce.KindSub, Value: "mallory", Action: enforce.ActionRevoke, Expires: exp},
		{Kind: enforce.KindKey, Value: "k-partner", Action: enforce.ActionThrottle, Rate: 2, Expires: exp},
		{Kind: enforce.KindIP, Value: "203.0.113.9", Action: enforce.ActionBlock, Expires: exp},
	}); len(errs) > 0 {
		t.Fatal(errs)
	}
	c := NewEnforcement(m)
	x := func(creds Credentials, ip string) *Exchange {
		return &Exchange{Creds: creds, ClientIP: netip.MustParseAddr(ip), Event: &event.RequestEvent{}, Now: now}
	}
	for _, tt := range []struct {
		name   string
		creds  Credentials
		ip     string
		status int
	}{
		{"revoked jti", Credentials{TokenID: "jti-stolen", Subject: "alice", TokenHash: "ffff"}, "198.51.100.1", 401},
		{"revoked opaque token", Credentials{TokenHash: "0123abcd"}, "198.51.100.1", 401},
		{"revoked subject", Credentials{TokenID: "jti-other", Subject: "mallory"}, "198.51.100.1", 401},
		{"the victim's new token", Credentials{TokenID: "jti-new", Subject: "alice"}, "198.51.100.1", 0},
		{"blocked address", Credentials{}, "203.0.113.9", 403},
	} {
		d := c.Check(x(tt.creds, tt.ip))
		switch {
		case tt.status == 0 && d != nil:
			t.Errorf("%s: refused %+v", tt.name, d)
		case tt.status != 0 && (d == nil || d.Status != tt.status):
			t.Errorf("%s: %+v, want %d", tt.name, d, tt.status)
		case tt.status == 401 && (d.Headers.Get("WWW-Authenticate") != `Bearer error="invalid_token"` || d.Auth != event.AuthOutcome_AUTH_REVOKED):
			t.Errorf("%s: headers %v, auth %v", tt.name, d.Headers, d.Auth)
		}
	}
	allowed := 0
	var last *Denial
	for range 5 {
		if d := c.Check(x(Credentials{KeyID: "k-partner"}, "198.51.100.2")); d == nil {
			allowed++
		} else {
			last = d
		}
	}
	if allowed != 2 || last == nil || last.Status != 429 {
		t.Errorf("throttle at 2/s: %d of 5 allowed at once, last %+v; want 2 and a 429", allowed, last)
	}
}
