package enforce

import (
	"fmt"
	"net/netip"
	"sync"
	"testing"
	"time"
)

var t0 = time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)

func TestMatch(t *testing.T) {
	m := NewMatcher()
	errs := m.Replace([]Entry{
		{Kind: KindIP, Value: "203.0.113.7", Action: ActionBlock},
		{Kind: KindCIDR, Value: "198.51.100.0/24", Action: ActionThrottle},
		{Kind: KindCIDR, Value: "198.51.100.128/25", Action: ActionBlock},
		{Kind: KindKey, Value: "k-bad", Action: ActionBlock},
		{Kind: KindToken, Value: "jti-1", Action: ActionRevoke},
		{Kind: KindToken, Value: "hash-1", Action: ActionRevoke},
		{Kind: KindSub, Value: "mallory", Action: ActionThrottle},
		{Kind: KindFP, Value: "fp-bot", Action: ActionBlock},
		{Kind: KindKey, Value: "k-old", Action: ActionBlock, Expires: t0},
		{Kind: KindIP, Value: "2001:db8::1", Action: ActionBlock},
	})
	if len(errs) != 0 {
		t.Fatal(errs)
	}
	tests := []struct {
		name string
		id   Identity
		want Action
	}{
		{"nothing known", Identity{IP: netip.MustParseAddr("192.0.2.1"), KeyID: "k-good"}, ActionNone},
		{"empty identity", Identity{}, ActionNone},
		{"blocked ip", Identity{IP: netip.MustParseAddr("203.0.113.7")}, ActionBlock},
		{"blocked ip mapped", Identity{IP: netip.MustParseAddr("::ffff:203.0.113.7")}, ActionBlock},
		{"blocked ipv6", Identity{IP: netip.MustParseAddr("2001:db8::1")}, ActionBlock},
		{"throttled cidr", Identity{IP: netip.MustParseAddr("198.51.100.5")}, ActionThrottle},
		{"longest prefix", Identity{IP: netip.MustParseAddr("198.51.100.200")}, ActionBlock},
		{"blocked key", Identity{KeyID: "k-bad"}, ActionBlock},
		{"revoked jti", Identity{TokenID: "jti-1"}, ActionRevoke},
		{"revoked token hash", Identity{TokenHash: "hash-1"}, ActionRevoke},
		{"throttled subject", Identity{Subject: "mallory"}, ActionThrottle},
		{"blocked fingerprint", Identity{FP: "fp-bot"}, ActionBlock},
		{"strongest wins", Identity{Subject: "mallory", TokenID: "jti-1", KeyID: "k-bad"}, ActionBlock},
		{"revoke beats throttle", Identity{Subject: "mallory", TokenID: "jti-1"}, ActionRevoke},
		{"expired ignored", Identity{KeyID: "k-old"}, ActionNone},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := m.Match(&tt.id, t0)
			if v.Action != tt.want {
				t.Errorf("Match = %v, want %v", v.Action, tt.want)
			}
			if (v.Entry == nil) != (tt.want == ActionNone) {
				t.Errorf("entry %v with action %v", v.Entry, v.Action)
			}
		})
	}
}

func TestApplyDeleteAndLen(t *testing.T) {
	m := NewMatcher()
	m.Apply([]Change{
		Put(Entry{Kind: KindIP, Value: "10.0.0.1", Action: ActionBlock}),
		Put(Entry{Kind: KindCIDR, Value: "10.1.0.0/16", Action: ActionBlock}),
		Put(Entry{Kind: KindKey, Value: "a", Action: ActionBlock}),
	})
	if m.Len() != 3 {
		t.Fatalf("Len = %d, want 3", m.Len())
	}
	// Re-putting an entry replaces it; deleting an absent one is a no-op.
	m.Apply([]Change{Put(Entry{Kind: KindKey, Value: "a", Action: ActionThrottle}), Delete(Key{KindSub, "nobody"})})
	if m.Len() != 3 || m.Get(Key{KindKey, "a"}).Action != ActionThrottle {
		t.Fatalf("replace: Len = %d, entry %+v", m.Len(), m.Get(Key{KindKey, "a"}))
	}
	m.Apply([]Change{Delete(Key{KindIP, "10.0.0.1"}), Delete(Key{KindCIDR, "10.1.2.3/16"}), Delete(Key{KindKey, "a"})})
	// Order within one Apply counts: put then delete leaves nothing, delete then put leaves the entry.
	m.Apply([]Change{Put(Entry{Kind: KindSub, Value: "s", Action: ActionBlock}), Delete(Key{KindSub, "s"})})
	if m.Len() != 0 {
		t.Fatalf("put then delete left %d entries", m.Len())
	}
	m.Apply([]Change{Delete(Key{KindSub, "s"}), Put(Entry{Kind: KindSub, Value: "s", Action: ActionBlock})})
	if m.Len() != 1 {
		t.Fatalf("delete then put left %d entries, want 1", m.Len())
	}
	m.Apply([]Change{Delete(Key{KindSub, "s"})})
	if m.Len() != 0 {
		t.Fatalf("Len after deletes = %d", m.Len())
	}
	id := Identity{IP: netip.MustParseAddr("10.1.9.9"), KeyID: "a"}
	if v := m.Match(&id, t0); v.Action != ActionNone {
		t.Fatalf("deleted entries still match: %+v", v.Entry)
	}
	if n := len(m.Entries()); n != 0 {
		t.Fatalf("Entries = %d", n)
	}
}

func TestApplyRejectsBadEntries(t *testing.T) {
	m := NewMatcher()
	errs := m.Replace([]Entry{
		{Kind: KindIP, Value: "not-an-ip", Action: ActionBlock},
		{Kind: KindCIDR, Value: "10.0.0.0/99", Action: ActionBlock},
		{Kind: KindKey, Value: "  ", Action: ActionBlock},
		{Kind: KindKey, Value: "ok", Action: ActionNone},
		{Kind: KindInvalid, Value: "x", Action: ActionBlock},
		{Kind: KindKey, Value: "good", Action: ActionBlock},
	})
	if len(errs) != 5 {
		t.Fatalf("got %d errors, want 5: %v", len(errs), errs)
	}
	if m.Len() != 1 {
		t.Fatalf("Len = %d, want 1 (the good entry)", m.Len())
	}
}

// TestOverlayCompaction drives the layered maps through many small changes,
// past the compaction threshold, checking against a plain map.
func TestOverlayCompaction(t *testing.T) {
	m := NewMatcher()
	want := map[string]bool{}
	for i := range 5000 {
		k := fmt.Sprintf("k%d", i%1500)
		if i%3 == 2 {
			m.Apply([]Change{Delete(Key{KindKey, k})})
			delete(want, k)
		} else {
			m.Apply([]Change{Put(Entry{Kind: KindKey, Value: k, Action: ActionBlock})})
			want[k] = true
		}
	}
	if m.Len() != len(want) {
		t.Fatalf("Len = %d, want %d", m.Len(), len(want))
	}
	for i := range 1500 {
		k := fmt.Sprintf("k%d", i)
		got := m.Match(&Identity{KeyID: k}, t0).Action == ActionBlock
		if got != want[k] {
			t.Fatalf("%s: blocked=%v, want %v", k, got, want[k])
		}
	}
	if len(m.Entries()) != len(want) {
		t.Fatalf("Entries = %d, want %d", len(m.Entries()), len(want))
	}
}

// TestConcurrentMatch runs lookups while a writer applies changes; run with -race.
func TestConcurrentMatch(t *testing.T) {
	m := NewMatcher()
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for range 4 {
		wg.Go(func() {
			id := Identity{IP: netip.MustParseAddr("10.0.0.1"), KeyID: "k1"}
			for {
				select {
				case <-stop:
					return
				default:
					m.Match(&id, t0)
				}
			}
		})
	}
	for i := range 2000 {
		m.Apply([]Change{Put(Entry{Kind: KindKey, Value: fmt.Sprintf("k%d", i), Action: ActionBlock})})
	}
	close(stop)
	wg.Wait()
	if m.Len() != 2000 {
		t.Fatalf("Len = %d", m.Len())
	}
}

func TestParseKindAndAction(t *testing.T) {
	for k := KindIP; k < numKinds; k++ {
		got, err := ParseKind(k.String())
		if err != nil || got != k {
			t.Errorf("ParseKind(%s) = %v, %v", k, got, err)
		}
	}
	if _, err := ParseKind("email"); err == nil {
		t.Error("ParseKind accepted an unknown kind")
	}
	for _, s := range []string{"block", "throttle", "revoke"} {
		a, err := ParseAction(s)
		if err != nil || a.String() != s {
			t.Errorf("ParseAction(%s) = %v, %v", s, a, err)
		}
	}
	if _, err := ParseAction("none"); err == nil {
		t.Error("ParseAction accepted none")
	}
}

// BenchmarkMatch looks up one request's identities against 1,000,000
// entries: 400k IPs, 100k CIDRs, 300k keys, 200k subjects.
func BenchmarkMatch(b *testing.B) {
	m := NewMatcher()
	var entries []Entry
	for i := range 400_000 {
		entries = append(entries, Entry{Kind: KindIP, Value: netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}).String(), Action: ActionBlock})
	}
	for i := range 100_000 {
		entries = append(entries, Entry{Kind: KindCIDR, Value: netip.PrefixFrom(netip.AddrFrom4([4]byte{byte(100 + i>>16), byte(i >> 8), byte(i), 0}), 24).String(), Action: ActionThrottle})
	}
	for i := range 300_000 {
		entries = append(entries, Entry{Kind: KindKey, Value: fmt.Sprintf("key-%d", i), Action: ActionBlock})
	}
	for i := range 200_000 {
		entries = append(entries, Entry{Kind: KindSub, Value: fmt.Sprintf("user-%d", i), Action: ActionBlock})
	}
	if errs := m.Replace(entries); len(errs) > 0 {
		b.Fatal(errs[0])
	}
	if m.Len() != 1_000_000 {
		b.Fatalf("Len = %d", m.Len())
	}
	cases := []struct {
		name string
		id   Identity
		want Action
	}{
		{"miss", Identity{IP: netip.MustParseAddr("192.0.2.1"), KeyID: "key-none", Subject: "user-none", TokenHash: "abc"}, ActionNone},
		{"hit", Identity{IP: netip.MustParseAddr("100.0.77.1"), KeyID: "key-123456", Subject: "user-5"}, ActionBlock},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if m.Match(&c.id, t0).Action != c.want {
					b.Fatal("wrong verdict")
				}
			}
		})
	}
}
