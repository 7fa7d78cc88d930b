package responder_test

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/apiguard/apiguard/enforce"
	"github.com/apiguard/apiguard/enforce/kv"
	"github.com/apiguard/apiguard/event"
	"github.com/apiguard/apiguard/pipeline/responder"
)

// storeWriter is a bucket that can be read by key and listed; it counts
// both, and its List fails the test: Apply must not list a bucket.
type storeWriter struct {
	memWriter
	t    *testing.T
	mu2  sync.Mutex
	gets int
}

func (s *storeWriter) Get(_ context.Context, kind enforce.Kind, value string, now time.Time) (enforce.Entry, uint64, error) {
	s.mu2.Lock()
	s.gets++
	s.mu2.Unlock()
	v, err := enforce.CanonicalValue(kind, value)
	if err != nil {
		return enforce.Entry{}, 0, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.entries[enforce.Key{Kind: kind, Value: v}]
	if !ok || e.Expired(now) {
		return enforce.Entry{}, 0, fmt.Errorf("%w for %s %s", kv.ErrNotFound, kind, v)
	}
	return e, 1, nil
}

func (s *storeWriter) DeleteRevision(context.Context, enforce.Kind, string, uint64) error { return nil }

func (s *storeWriter) List(context.Context) ([]enforce.Entry, []error) {
	s.t.Error("Apply listed the whole bucket")
	return nil, nil
}

// TestApplyReadsOnlyCoveringAllows: a person's block reads the allow
// entries that could cover the principal — its own, and for an address or
// network the cidr entries holding it, one per prefix length — never the
// whole bucket; an allow on a network holding the address spares it, one
// on another network or an allowed address inside a blocked network does
// not.
func TestApplyReadsOnlyCoveringAllows(t *testing.T) {
	now := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	allow := func(kind enforce.Kind, value string) enforce.Entry {
		return enforce.Entry{Kind: kind, Value: value, Action: enforce.ActionAllow, Actor: "alice", Reason: "partner", Created: now}
	}
	tests := []struct {
		name        string
		allows      []enforce.Entry
		kind, value string
		spared      bool
		maxGets     int // the principal's own entry (read twice: what it replaces, and its allow) and its networks
	}{
		{"address under an allowed /16", []enforce.Entry{allow(enforce.KindCIDR, "198.51.0.0/16")}, "ip", "198.51.100.7", true, 35},
		{"allowed address itself", []enforce.Entry{allow(enforce.KindIP, "198.51.100.7")}, "ip", "198.51.100.7", true, 35},
		{"address outside the allowed network", []enforce.Entry{allow(enforce.KindCIDR, "198.52.0.0/16")}, "ip", "198.51.100.7", false, 35},
		{"network holding an allowed address is not spared", []enforce.Entry{allow(enforce.KindIP, "198.51.100.7")}, "cidr", "198.51.100.0/24", false, 26},
		{"network inside an allowed one", []enforce.Entry{allow(enforce.KindCIDR, "198.51.0.0/16")}, "cidr", "198.51.100.0/24", true, 26},
		{"IPv6 address under an allowed /32", []enforce.Entry{allow(enforce.KindCIDR, "2001:db8::/32")}, "ip", "2001:db8::7", true, 131},
		{"allowed key", []enforce.Entry{allow(enforce.KindKey, "k-partner")}, "key", "k-partner", true, 2},
		{"other key allowed", []enforce.Entry{allow(enforce.KindKey, "k-other")}, "key", "k-partner", false, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := &storeWriter{t: t}
			w.entries = map[enforce.Key]enforce.Entry{}
			for i := range 1000 { // a bucket of others' blocks
				w.entries[enforce.Key{Kind: enforce.KindIP, Value: fmt.Sprintf("10.0.%d.%d", i/250, i%250+1)}] = enforce.Entry{Action: enforce.ActionBlock}
			}
			for _, e := range tt.allows {
				w.entries[enforce.Key{Kind: e.Kind, Value: e.Value}] = e
			}
			r := responder.New(responder.DefaultConfig(), w, &memAudit{}, func() time.Time { return now }, slog.New(slog.DiscardHandler))
			res, err := r.Apply(context.Background(), responder.Decision{Kind: event.ActionKind_ACTION_BLOCK,
				Target: &event.Principal{Kind: tt.kind, Value: tt.value}, TTL: time.Hour, Actor: "bob", Reason: "test"})
			if err != nil {
				t.Fatal(err)
			}
			if spared := res.SparedBy != nil; spared != tt.spared {
				t.Errorf("spared %v, want %v (%+v)", spared, tt.spared, res.Action)
			}
			if w.gets > tt.maxGets {
				t.Errorf("%d reads, want at most %d", w.gets, tt.maxGets)
			}
		})
	}
}
