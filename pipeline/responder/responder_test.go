package responder_test

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/apiguard/apiguard/enforce"
	"github.com/apiguard/apiguard/enforce/kv"
	"github.com/apiguard/apiguard/event"
	"github.com/apiguard/apiguard/internal/testutil"
	"github.com/apiguard/apiguard/pipeline/responder"
	"github.com/apiguard/apiguard/pipeline/topology"
)

type env struct {
	js     jetstream.JetStream
	writer *kv.Writer
	audit  *topology.Publisher
}

func newEnv(t *testing.T) env {
	t.Helper()
	js, bucket := testutil.Topology(t)
	return env{js: js, writer: kv.NewWriter(js, bucket), audit: topology.NewPublisher(js)}
}

var trigger = time.Now().Add(-time.Second)

func anomaly(id, kind, value string, score float64) *event.Anomaly {
	return &event.Anomaly{Id: id, TimeUnixNano: trigger.UnixNano(), Detector: "rate", Api: "POST /orders",
		Principal: &event.Principal{Kind: kind, Value: value}, Score: score, Summary: "40 req/s vs 0.3"}
}

// audited returns the actions on the audit stream.
func audited(t *testing.T, js jetstream.JetStream) []*event.Action {
	t.Helper()
	return testutil.AuditActions(t, js)
}

func TestResponderPolicy(t *testing.T) {
	e := newEnv(t)
	cfg := responder.DefaultConfig()
	cfg.MaxActionsPerMinute = 3
	cfg.NeverBlock = []string{"10.0.0.0/8"}
	cfg.NeverBlockKeys = []string{"monitoring"}
	now := time.Now()
	r := responder.New(cfg, e.writer, e.audit, func() time.Time { return now }, slog.New(slog.DiscardHandler))
	ctx := context.Background()
	steps := []struct {
		a        *event.Anomaly
		enforced bool
		audited  bool
		reason   string
	}{
		{anomaly("A1", "key", "attacker", 0.9), true, true, "rate anomaly"},
		{anomaly("A1", "key", "attacker", 0.9), true, true, ""}, // a retry: idempotent, and it counts against the cap
		{anomaly("A2", "key", "weak", 0.3), false, false, ""},
		{anomaly("A3", "ip", "10.1.2.3", 0.9), false, true, "never_block"},
		{anomaly("A4", "key", "monitoring", 0.9), false, true, "never_block_keys"},
		{anomaly("A5", "sub", "mallory", 0.9), true, true, ""},
		{anomaly("A6", "ip", "203.0.113.5", 0.9), false, true, "cap of 3"},
	}
	for _, s := range steps {
		if err := r.WriteAnomaly(ctx, s.a); err != nil {
			t.Fatalf("%s: %v", s.a.Id, err)
		}
	}
	entries, errs := e.writer.List(ctx)
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	got := map[string]enforce.Entry{}
	for _, en := range entries {
		got[en.Value] = en
	}
	for _, s := range steps {
		en, ok := got[s.a.Principal.Value]
		if ok != s.enforced {
			t.Errorf("%s (%s): enforced=%v, want %v", s.a.Id, s.a.Principal.Value, ok, s.enforced)
		}
		if ok && (en.AnomalyID != s.a.Id || en.Action != enforce.ActionBlock || en.Expires.Sub(now) != cfg.BlockTTL || en.Trigger.UnixNano() != s.a.TimeUnixNano) {
			t.Errorf("%s: entry %+v", s.a.Id, en)
		}
	}
	acts := audited(t, e.js)
	byAnomaly := map[string]*event.Action{}
	for _, a := range acts {
		byAnomaly[a.AnomalyId] = a
	}
	if len(acts) != 5 {
		t.Errorf("audit holds %d actions, want 5 (the retry is de-duplicated)", len(acts))
	}
	for _, s := range steps {
		a, ok := byAnomaly[s.a.Id]
		if ok != s.audited {
			t.Errorf("%s: audited=%v, want %v", s.a.Id, ok, s.audited)
			continue
		}
		if ok && (a.DryRun == s.enforced || !strings.Contains(a.Reason, s.reason)) {
			t.Errorf("%s: action dry_run=%v reason %q", s.a.Id, a.DryRun, a.Reason)
		}
	}
	st := r.Stats()
	if st.Actions.Load() != 3 || st.DryRun.Load() != 3 || st.Ignored.Load() != 1 {
		t.Errorf("stats: actions %d, dry-run %d, ignored %d", st.Actions.Load(), st.DryRun.Load(), st.Ignored.Load())
	}
}

func TestResponderDryRun(t *testing.T) {
	e := newEnv(t)
	cfg := responder.DefaultConfig()
	cfg.DryRun = true
	r := responder.New(cfg, e.writer, e.audit, time.Now, slog.New(slog.DiscardHandler))
	if err := r.WriteAnomaly(context.Background(), anomaly("D1", "key", "k", 0.99)); err != nil {
		t.Fatal(err)
	}
	if entries, _ := e.writer.List(context.Background()); len(entries) != 0 {
		t.Fatalf("dry run wrote %v", entries)
	}
	if acts := audited(t, e.js); len(acts) != 1 || !acts[0].DryRun {
		t.Fatalf("audit = %v", acts)
	}
}

func TestConfigValidate(t *testing.T) {
	mod := func(f func(*responder.Config)) responder.Config { c := responder.DefaultConfig(); f(&c); return c }
	for key, c := range map[string]responder.Config{
		"responder.block_ttl":              mod(func(c *responder.Config) { c.BlockTTL = 0 }),
		"responder.min_score":              mod(func(c *responder.Config) { c.MinScore = 2 }),
		"responder.max_actions_per_minute": mod(func(c *responder.Config) { c.MaxActionsPerMinute = 0 }),
		"responder.never_block[0]":         mod(func(c *responder.Config) { c.NeverBlock = []string{"nope"} }),
	} {
		if err := c.Validate(); err == nil || !strings.HasPrefix(err.Error(), key) {
			t.Errorf("Validate() = %v, want an error naming %s", err, key)
		}
	}
}

// failingOnce is an EntryWriter whose first Put fails, as a bucket that
// is briefly unavailable does.
type failingOnce struct {
	w      *kv.Writer
	failed bool
}

func (f *failingOnce) Put(ctx context.Context, e enforce.Entry, now time.Time) (uint64, error) {
	if !f.failed {
		f.failed = true
		return 0, errors.New("bucket unavailable")
	}
	return f.w.Put(ctx, e, now)
}

// TestRefusedWriteKeepsItsSlot: a write the bucket refuses does not use up
// a slot of the per-minute cap, so the pipeline's retry of the same
// anomaly is enforced, not recorded as over the cap.
func TestRefusedWriteKeepsItsSlot(t *testing.T) {
	e := newEnv(t)
	cfg := responder.DefaultConfig()
	cfg.MaxActionsPerMinute = 1
	now := time.Now()
	r := responder.New(cfg, &failingOnce{w: e.writer}, e.audit, func() time.Time { return now }, slog.New(slog.DiscardHandler))
	a := anomaly("R1", "key", "k", 0.99)
	if err := r.WriteAnomaly(context.Background(), a); err == nil {
		t.Fatal("a refused write returned no error: the pipeline would not retry")
	}
	if err := r.WriteAnomaly(context.Background(), a); err != nil {
		t.Fatal(err)
	}
	acts := audited(t, e.js)
	if len(acts) != 1 || acts[0].DryRun {
		t.Fatalf("audit = %v, want the retried action enforced", acts)
	}
	if entries, _ := e.writer.List(context.Background()); len(entries) != 1 {
		t.Fatalf("bucket holds %v, want the block", entries)
	}
}
