package enforce

import (
	"net/netip"
	"testing"
	"time"
)

// TestAllowPrecedence holds the Matcher to the allow contract: a live
// allow entry on an address, or on a network holding it, beats every ip
// and cidr entry for that address, however specific; entries on the
// request's other identities (key, token, subject, fingerprint) still
// apply; an allow entry is never a verdict.
func TestAllowPrecedence(t *testing.T) {
	m := NewMatcher()
	errs := m.Replace([]Entry{
		{Kind: KindCIDR, Value: "198.51.100.0/24", Action: ActionBlock},
		{Kind: KindIP, Value: "198.51.100.7", Action: ActionAllow},
		{Kind: KindCIDR, Value: "203.0.113.0/24", Action: ActionAllow},
		{Kind: KindIP, Value: "203.0.113.9", Action: ActionBlock},
		{Kind: KindCIDR, Value: "203.0.113.128/25", Action: ActionThrottle},
		{Kind: KindCIDR, Value: "192.0.2.0/24", Action: ActionBlock},
		{Kind: KindCIDR, Value: "192.0.2.0/28", Action: ActionAllow, Expires: t0},
		{Kind: KindKey, Value: "k-bad", Action: ActionBlock},
		{Kind: KindKey, Value: "k-allowed", Action: ActionAllow},
		{Kind: KindFP, Value: "fp:shared", Action: ActionAllow},
	})
	if len(errs) != 0 {
		t.Fatal(errs)
	}
	ip := netip.MustParseAddr
	tests := []struct {
		name string
		id   Identity
		want Action
	}{
		{"allowed ip beats its cidr block", Identity{IP: ip("198.51.100.7")}, ActionNone},
		{"allowed ip, mapped form", Identity{IP: ip("::ffff:198.51.100.7")}, ActionNone},
		{"a neighbour is still blocked", Identity{IP: ip("198.51.100.8")}, ActionBlock},
		{"allowed cidr beats an ip block inside it", Identity{IP: ip("203.0.113.9")}, ActionNone},
		{"allowed cidr beats a narrower cidr entry", Identity{IP: ip("203.0.113.200")}, ActionNone},
		{"an expired allow allows nothing", Identity{IP: ip("192.0.2.3")}, ActionBlock},
		{"allowed ip, blocked key: the key's block applies", Identity{IP: ip("198.51.100.7"), KeyID: "k-bad"}, ActionBlock},
		{"allowed key alone", Identity{KeyID: "k-allowed"}, ActionNone},
		{"allowed key, blocked network: the network's block applies", Identity{IP: ip("198.51.100.9"), KeyID: "k-allowed"}, ActionBlock},
		{"allowed fingerprint is no verdict", Identity{FP: "fp:shared"}, ActionNone},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := m.Match(&tt.id, t0)
			if v.Action != tt.want {
				t.Errorf("Match = %v (entry %+v), want %v", v.Action, v.Entry, tt.want)
			}
			if v.Action == ActionNone && v.Entry != nil {
				t.Errorf("no action but entry %+v", v.Entry)
			}
		})
	}
}

// TestAllowed checks what the responder and operators ask before they block:
// the live allow entry that covers a principal.
func TestAllowed(t *testing.T) {
	m := NewMatcher()
	m.Apply([]Change{
		Put(Entry{Kind: KindIP, Value: "198.51.100.7", Action: ActionAllow, Reason: "partner"}),
		Put(Entry{Kind: KindCIDR, Value: "203.0.113.0/24", Action: ActionAllow, Reason: "office"}),
		Put(Entry{Kind: KindCIDR, Value: "192.0.2.0/24", Action: ActionBlock}),
		Put(Entry{Kind: KindFP, Value: "fp:shared", Action: ActionAllow, Reason: "common browser"}),
		Put(Entry{Kind: KindKey, Value: "k-old", Action: ActionAllow, Expires: t0.Add(-time.Second)}),
		Put(Entry{Kind: KindKey, Value: "k-bad", Action: ActionBlock}),
	})
	tests := []struct {
		key    Key
		reason string // "" for not allowed
	}{
		{Key{KindIP, "198.51.100.7"}, "partner"},
		{Key{KindIP, "::ffff:198.51.100.7"}, "partner"},
		{Key{KindIP, "203.0.113.50"}, "office"},
		{Key{KindCIDR, "203.0.113.0/25"}, "office"},
		{Key{KindCIDR, "203.0.113.0/24"}, "office"},
		{Key{KindCIDR, "203.0.112.0/23"}, ""},  // wider than the allow: only part of it is allowed
		{Key{KindCIDR, "198.51.100.0/24"}, ""}, // holds an allowed ip, is not allowed itself
		{Key{KindIP, "192.0.2.1"}, ""},
		{Key{KindFP, "fp:shared"}, "common browser"},
		{Key{KindKey, "k-old"}, ""},
		{Key{KindKey, "k-bad"}, ""},
		{Key{KindSub, "nobody"}, ""},
		{Key{KindIP, "not an ip"}, ""},
	}
	for _, tt := range tests {
		e := m.Allowed(tt.key, t0)
		switch {
		case tt.reason == "" && e != nil:
			t.Errorf("Allowed(%v) = %+v, want none", tt.key, e)
		case tt.reason != "" && (e == nil || e.Reason != tt.reason || e.Action != ActionAllow):
			t.Errorf("Allowed(%v) = %+v, want the allow entry %q", tt.key, e, tt.reason)
		}
	}
}

// TestAllowReplacesAndCounts: one entry per key, so an allow put on a
// blocked key replaces the block, and allow cidrs are counted, listed and
// deleted like block cidrs.
func TestAllowReplacesAndCounts(t *testing.T) {
	m := NewMatcher()
	m.Apply([]Change{
		Put(Entry{Kind: KindCIDR, Value: "10.1.0.0/16", Action: ActionBlock}),
		Put(Entry{Kind: KindIP, Value: "10.9.9.9", Action: ActionBlock}),
	})
	m.Apply([]Change{
		Put(Entry{Kind: KindCIDR, Value: "10.1.0.0/16", Action: ActionAllow}),
		Put(Entry{Kind: KindIP, Value: "10.9.9.9", Action: ActionAllow}),
	})
	if m.Len() != 2 || len(m.Entries()) != 2 {
		t.Fatalf("Len %d, Entries %v, want the two allow entries", m.Len(), m.Entries())
	}
	if e := m.Get(Key{KindCIDR, "10.1.0.0/16"}); e == nil || e.Action != ActionAllow {
		t.Fatalf("Get cidr = %+v", e)
	}
	id := Identity{IP: netip.MustParseAddr("10.1.2.3")}
	if v := m.Match(&id, t0); v.Action != ActionNone {
		t.Fatalf("the replaced block still matches: %+v", v.Entry)
	}
	m.Apply([]Change{Put(Entry{Kind: KindCIDR, Value: "10.1.0.0/16", Action: ActionBlock})})
	if v := m.Match(&id, t0); v.Action != ActionBlock || m.Len() != 2 {
		t.Fatalf("block put back over the allow: %v, Len %d", v.Action, m.Len())
	}
	m.Apply([]Change{Delete(Key{KindCIDR, "10.1.0.0/16"}), Delete(Key{KindIP, "10.9.9.9"})})
	if m.Len() != 0 || m.Allowed(Key{KindIP, "10.9.9.9"}, t0) != nil {
		t.Fatalf("after deletes: Len %d", m.Len())
	}
}

func TestParseActionAllow(t *testing.T) {
	a, err := ParseAction("allow")
	if err != nil || a != ActionAllow || a.String() != "allow" {
		t.Fatalf("ParseAction(allow) = %v, %v", a, err)
	}
}

// TestMatchWithAllowsDoesNotAllocate: allow entries keep Match on the
// request path free of allocations.
func TestMatchWithAllowsDoesNotAllocate(t *testing.T) {
	m := NewMatcher()
	m.Replace([]Entry{
		{Kind: KindCIDR, Value: "198.51.100.0/24", Action: ActionBlock},
		{Kind: KindCIDR, Value: "203.0.113.0/24", Action: ActionAllow},
		{Kind: KindIP, Value: "198.51.100.7", Action: ActionAllow},
		{Kind: KindKey, Value: "k", Action: ActionAllow},
	})
	ids := []Identity{
		{IP: netip.MustParseAddr("198.51.100.7"), KeyID: "k"},
		{IP: netip.MustParseAddr("198.51.100.8")},
		{IP: netip.MustParseAddr("203.0.113.9"), FP: "fp:x"},
	}
	if n := testing.AllocsPerRun(100, func() {
		for i := range ids {
			m.Match(&ids[i], t0)
		}
	}); n != 0 {
		t.Errorf("Match allocates %.1f times", n)
	}
}
