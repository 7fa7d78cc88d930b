package responder_test

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apiguard/apiguard/enforce"
	"github.com/apiguard/apiguard/event"
	"github.com/apiguard/apiguard/pipeline/responder"
)

// memWriter is an in-memory enforcement bucket.
type memWriter struct {
	mu      sync.Mutex
	entries map[enforce.Key]enforce.Entry
}

func (w *memWriter) Put(_ context.Context, e enforce.Entry, _ time.Time) (uint64, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.entries == nil {
		w.entries = map[enforce.Key]enforce.Entry{}
	}
	w.entries[enforce.Key{Kind: e.Kind, Value: e.Value}] = e
	return uint64(len(w.entries)), nil
}

// memAudit is an in-memory audit stream.
type memAudit struct {
	mu      sync.Mutex
	actions []*event.Action
}

func (a *memAudit) WriteAction(_ context.Context, act *event.Action) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.actions = append(a.actions, act)
	return nil
}

func shared(id, kind, value string, sharedBy uint32, members ...string) *event.Anomaly {
	a := anomaly(id, kind, value, 0.99)
	// A detector whose default rule (default-block) keeps to
	// max_shared_principals; stuffing's spares any shared principal
	// (TestSpareShared).
	a.Detector, a.Api = "bot_timing", "POST /login"
	a.SharedBy = sharedBy
	for _, m := range members {
		k, v, _ := strings.Cut(m, " ")
		a.Members = append(a.Members, &event.Principal{Kind: k, Value: v})
	}
	return a
}

// TestSharedPrincipals holds the responder to the shared-principal rule: a
// principal that more than max_shared_principals established principals
// share (scaled by the partitions, as each sees its own) is never blocked;
// its attacking members are, or, when the anomaly names none, it is
// throttled (shared_throttle_ttl) or only recorded; the audit says which.
func TestSharedPrincipals(t *testing.T) {
	type want struct {
		entries map[string]enforce.Action // "kind value" → action enforced
		audit   []string                  // "kind value dry|enforced kind", in order
		reason  string                    // in the principal's own action
	}
	tests := []struct {
		name       string
		partitions int
		throttle   time.Duration
		allow      []enforce.Entry
		a          *event.Anomaly
		want       want
	}{
		{
			name: "not shared: blocked",
			a:    shared("S1", "fp", "fp:tool", 0),
			want: want{entries: map[string]enforce.Action{"fp fp:tool": enforce.ActionBlock},
				audit: []string{"fp fp:tool enforced ACTION_BLOCK"}},
		},
		{
			name: "at the limit: blocked",
			a:    shared("S2", "cidr", "198.51.100.0/24", 5, "ip 198.51.100.7"),
			want: want{entries: map[string]enforce.Action{"cidr 198.51.100.0/24": enforce.ActionBlock},
				audit: []string{"cidr 198.51.100.0/24 enforced ACTION_BLOCK"}},
		},
		{
			name: "shared: its members blocked instead",
			a:    shared("S3", "fp", "fp:firefox", 54, "ip 203.0.113.7", "ip 203.0.113.8"),
			want: want{
				entries: map[string]enforce.Action{"ip 203.0.113.7": enforce.ActionBlock, "ip 203.0.113.8": enforce.ActionBlock},
				audit: []string{"ip 203.0.113.7 enforced ACTION_BLOCK", "ip 203.0.113.8 enforced ACTION_BLOCK",
					"fp fp:firefox dry ACTION_BLOCK"},
				reason: "shared by about 54 established principals (more than max_shared_principals 5): not blocked; blocked its attacking members instead: ip 203.0.113.7, ip 203.0.113.8",
			},
		},
		{
			name:       "shared once scaled by the partitions",
			partitions: 4,
			a:          shared("S4", "ip", "192.0.2.1", 2, "key k-stuffer"),
			want: want{
				entries: map[string]enforce.Action{"key k-stuffer": enforce.ActionBlock},
				audit:   []string{"key k-stuffer enforced ACTION_BLOCK", "ip 192.0.2.1 dry ACTION_BLOCK"},
				reason:  "shared by about 8 established principals",
			},
		},
		{
			name: "shared, no member named: recorded only",
			a:    shared("S5", "ip", "192.0.2.2", 40),
			want: want{entries: map[string]enforce.Action{}, audit: []string{"ip 192.0.2.2 dry ACTION_BLOCK"},
				reason: "not blocked, and the anomaly names no attacking member"},
		},
		{
			name:     "shared, no member named: throttled when configured",
			throttle: time.Minute,
			a:        shared("S6", "cidr", "192.0.2.0/24", 40),
			want: want{entries: map[string]enforce.Action{"cidr 192.0.2.0/24": enforce.ActionThrottle},
				audit:  []string{"cidr 192.0.2.0/24 enforced ACTION_THROTTLE"},
				reason: "throttled for 1m0s instead of blocked"},
		},
		{
			name:  "an allowed member is spared",
			allow: []enforce.Entry{{Kind: enforce.KindIP, Value: "203.0.113.7", Action: enforce.ActionAllow, Reason: "our pentest"}},
			a:     shared("S7", "fp", "fp:firefox", 54, "ip 203.0.113.7", "ip 203.0.113.9"),
			want: want{
				entries: map[string]enforce.Action{"ip 203.0.113.9": enforce.ActionBlock},
				audit: []string{"ip 203.0.113.7 dry ACTION_BLOCK", "ip 203.0.113.9 enforced ACTION_BLOCK",
					"fp fp:firefox dry ACTION_BLOCK"},
				reason: "blocked its attacking members instead: ip 203.0.113.9",
			},
		},
		{
			name:  "allowed: spared with the allow's reason",
			allow: []enforce.Entry{{Kind: enforce.KindCIDR, Value: "198.51.100.0/24", Action: enforce.ActionAllow, Reason: "office NAT", Actor: "operator:ann"}},
			a:     shared("S8", "ip", "198.51.100.20", 0),
			want: want{entries: map[string]enforce.Action{}, audit: []string{"ip 198.51.100.20 dry ACTION_BLOCK"},
				reason: "allowed by operator:ann on cidr 198.51.100.0/24 (office NAT)"},
		},
		{
			name: "kinds that are not shared ignore shared_by",
			a:    shared("S9", "key", "k1", 100),
			want: want{entries: map[string]enforce.Action{"key k1": enforce.ActionBlock}, audit: []string{"key k1 enforced ACTION_BLOCK"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := responder.DefaultConfig()
			cfg.Partitions, cfg.SharedThrottleTTL = tt.partitions, tt.throttle
			if err := cfg.Validate(); err != nil {
				t.Fatal(err)
			}
			w, audit := &memWriter{}, &memAudit{}
			now := time.Now()
			r := responder.New(cfg, w, audit, func() time.Time { return now }, slog.New(slog.DiscardHandler))
			seesTraffic(r)
			allows := enforce.NewMatcher()
			if errs := allows.Replace(tt.allow); len(errs) > 0 {
				t.Fatal(errs)
			}
			r.Allows = allows
			if err := r.WriteAnomaly(context.Background(), tt.a); err != nil {
				t.Fatal(err)
			}
			got := map[string]enforce.Action{}
			for k, e := range w.entries {
				got[k.Kind.String()+" "+k.Value] = e.Action
				if e.AnomalyID != tt.a.Id {
					t.Errorf("entry %v names anomaly %q, want %q", k, e.AnomalyID, tt.a.Id)
				}
			}
			if len(got) != len(tt.want.entries) {
				t.Errorf("entries %v, want %v", got, tt.want.entries)
			}
			for k, a := range tt.want.entries {
				if got[k] != a {
					t.Errorf("entry %s: %v, want %v (all: %v)", k, got[k], a, got)
				}
			}
			var rows []string
			ids := map[string]bool{}
			for _, act := range audit.actions {
				state := "enforced"
				if act.DryRun {
					state = "dry"
				}
				rows = append(rows, act.Target.Kind+" "+act.Target.Value+" "+state+" "+act.Kind.String())
				if act.AnomalyId != tt.a.Id || ids[act.Id] {
					t.Errorf("action %s: anomaly %q, duplicate id %v", act.Id, act.AnomalyId, ids[act.Id])
				}
				ids[act.Id] = true
			}
			if strings.Join(rows, "\n") != strings.Join(tt.want.audit, "\n") {
				t.Errorf("audit:\n%s\nwant:\n%s", strings.Join(rows, "\n"), strings.Join(tt.want.audit, "\n"))
			}
			if tt.want.reason != "" {
				own := audit.actions[len(audit.actions)-1]
				if own.Target.Value != tt.a.Principal.Value || !strings.Contains(own.Reason, tt.want.reason) {
					t.Errorf("the principal's action: %s %q, want a reason with %q", own.Target.Value, own.Reason, tt.want.reason)
				}
			}
		})
	}
}

// TestSharedStats counts decisions on shared principals.
func TestSharedStats(t *testing.T) {
	w, audit := &memWriter{}, &memAudit{}
	r := responder.New(responder.DefaultConfig(), w, audit, time.Now, slog.New(slog.DiscardHandler))
	ctx := context.Background()
	for _, a := range []*event.Anomaly{shared("T1", "fp", "fp:x", 50, "ip 203.0.113.1"), shared("T2", "fp", "fp:y", 1)} {
		if err := r.WriteAnomaly(ctx, a); err != nil {
			t.Fatal(err)
		}
	}
	st := r.Stats()
	if st.Shared.Load() != 1 || st.Actions.Load() != 2 || st.DryRun.Load() != 1 {
		t.Errorf("shared %d, actions %d, dry-run %d; want 1, 2 (a member and fp:y), 1", st.Shared.Load(), st.Actions.Load(), st.DryRun.Load())
	}
}

func TestSharedConfigValidate(t *testing.T) {
	mod := func(f func(*responder.Config)) responder.Config { c := responder.DefaultConfig(); f(&c); return c }
	for key, c := range map[string]responder.Config{
		"responder.max_shared_principals": mod(func(c *responder.Config) { c.MaxSharedPrincipals = -1 }),
		"responder.shared_throttle_ttl":   mod(func(c *responder.Config) { c.SharedThrottleTTL = 100 * time.Millisecond }),
	} {
		if err := c.Validate(); err == nil || !strings.HasPrefix(err.Error(), key) {
			t.Errorf("Validate() = %v, want an error naming %s", err, key)
		}
	}
	if c := responder.DefaultConfig(); c.MaxSharedPrincipals != 5 || c.SharedThrottleTTL != 0 {
		t.Errorf("defaults: max_shared_principals %d, shared_throttle_ttl %s; want 5 and 0", c.MaxSharedPrincipals, c.SharedThrottleTTL)
	}
}

// TestSpareShared: the stuffing and scanner defaults spare an address,
// network or fingerprint that any established principal shares (a
// partner's job behind a scanner's NAT): the members are blocked instead,
// or the anomaly is only recorded.
func TestSpareShared(t *testing.T) {
	stuff := shared("SP1", "cidr", "198.51.100.0/24", 1, "ip 198.51.100.7")
	stuff.Detector = "credential_stuffing"
	scan := shared("SP2", "ip", "24.248.76.59", 1)
	scan.Detector = "probing"
	alone := shared("SP3", "ip", "203.0.113.77", 0)
	alone.Detector = "probing"
	w, audit := &memWriter{}, &memAudit{}
	r := responder.New(responder.DefaultConfig(), w, audit, time.Now, slog.New(slog.DiscardHandler))
	for _, a := range []*event.Anomaly{stuff, scan, alone} {
		if err := r.WriteAnomaly(context.Background(), a); err != nil {
			t.Fatal(err)
		}
	}
	got := map[string]enforce.Action{}
	for k, e := range w.entries {
		got[k.String()] = e.Action
	}
	want := map[string]enforce.Action{"ip 198.51.100.7": enforce.ActionBlock, "ip 203.0.113.77": enforce.ActionBlock}
	if len(got) != len(want) || got["ip 198.51.100.7"] != enforce.ActionBlock || got["ip 203.0.113.77"] != enforce.ActionBlock {
		t.Errorf("entries %v, want %v", got, want)
	}
	for _, a := range audit.actions {
		if a.Target.Value == "24.248.76.59" && (!a.DryRun || !strings.Contains(a.Reason, "the rule spares shared principals")) {
			t.Errorf("the shared scanner address: %+v", a)
		}
	}
}
