package responder_test

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/apiguard/apiguard/enforce"
	"github.com/apiguard/apiguard/event"
	"github.com/apiguard/apiguard/pipeline/responder"
)

// TestEscalation: a returning offender's TTL doubles per earlier offence
// within the window, up to max_ttl; offences out of the window do not
// count; an unblock or an allow ends the chain; a retried anomaly is not
// its own repeat.
func TestEscalation(t *testing.T) {
	now := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	cfg := responder.DefaultConfig()
	cfg.Escalation.MaxTTL = time.Hour
	w, audit := &memWriter{}, &memAudit{}
	r := responder.New(cfg, w, audit, clock, slog.New(slog.DiscardHandler))
	ctx := context.Background()
	scan := func(id string) time.Duration {
		t.Helper()
		if err := r.WriteAnomaly(ctx, mkAnomaly(id, "probing", "ip", "203.0.113.66", 0.9)); err != nil {
			t.Fatal(err)
		}
		e := w.entries[enforce.Key{Kind: enforce.KindIP, Value: "203.0.113.66"}]
		return e.Expires.Sub(now)
	}
	steps := []struct {
		id      string
		advance time.Duration
		want    time.Duration
	}{
		{"s1", 0, 10 * time.Minute},
		{"s1", 0, 10 * time.Minute}, // the pipeline's retry of the same anomaly
		{"s2", 11 * time.Minute, 20 * time.Minute},
		{"s3", 21 * time.Minute, 40 * time.Minute},
		{"s4", 41 * time.Minute, time.Hour},      // capped
		{"s5", 25 * time.Hour, 10 * time.Minute}, // out of the window: a first offence again
	}
	for _, s := range steps {
		now = now.Add(s.advance)
		if got := scan(s.id); got != s.want {
			t.Errorf("%s: ttl %s, want %s", s.id, got, s.want)
		}
	}
	last := audit.actions[len(audit.actions)-2]
	if !strings.Contains(last.Reason, "3 earlier offence(s) within 24h0m0s: ttl 10m0s escalated to 1h0m0s") {
		t.Errorf("the escalated action's reason %q does not say why", last.Reason)
	}
	// An unblock ends the chain.
	now = now.Add(11 * time.Minute)
	if got := scan("s6"); got != 20*time.Minute {
		t.Fatalf("s6: %s, want 20m", got)
	}
	r.History().Observe(&event.Action{Id: "unblock-1", TimeUnixNano: now.UnixNano(), Kind: event.ActionKind_ACTION_UNBLOCK,
		Target: &event.Principal{Kind: "ip", Value: "203.0.113.66"}, Actor: "operator:ann", Reason: "our scanner"})
	now = now.Add(21 * time.Minute)
	if got := scan("s7"); got != 10*time.Minute {
		t.Errorf("after an unblock: %s, want 10m (a new chain)", got)
	}
}

// TestEscalationSharedThroughTheAudit: a second replica (or a restarted
// one) that reads the audit stream escalates as the first would.
func TestEscalationSharedThroughTheAudit(t *testing.T) {
	now := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	_, audit, _ := run(t, responder.DefaultConfig(), clock, mkAnomaly("e1", "probing", "ip", "203.0.113.70", 0.9))
	now = now.Add(15 * time.Minute)
	w2, audit2 := &memWriter{}, &memAudit{}
	r2 := responder.New(responder.DefaultConfig(), w2, audit2, clock, slog.New(slog.DiscardHandler))
	for _, a := range audit.actions {
		r2.History().Observe(a)
		r2.History().Observe(a) // delivered twice: counted once
	}
	if err := r2.WriteAnomaly(context.Background(), mkAnomaly("e2", "probing", "ip", "203.0.113.70", 0.9)); err != nil {
		t.Fatal(err)
	}
	if got := w2.entries[enforce.Key{Kind: enforce.KindIP, Value: "203.0.113.70"}].Expires.Sub(now); got != 20*time.Minute {
		t.Errorf("second replica's ttl %s, want 20m", got)
	}
}

// TestThrottleEscalatesToBlock: a keyed principal that a second detector
// flags within the window is blocked, not throttled again.
func TestThrottleEscalatesToBlock(t *testing.T) {
	now := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	vol := mkAnomaly("t1", "volumetric", "key", "k-partner", 0.9, &event.Deviation{Feature: "requests_1m", Observed: 900, Expected: 60})
	w, audit, r := run(t, responder.DefaultConfig(), clock, vol)
	if e := w.entries[enforce.Key{Kind: enforce.KindKey, Value: "k-partner"}]; e.Action != enforce.ActionThrottle || e.Rate != 2 {
		t.Fatalf("first: %+v, want a throttle at 2/s", e)
	}
	now = now.Add(time.Minute)
	if err := r.WriteAnomaly(context.Background(), mkAnomaly("t2", "scraping", "key", "k-partner", 0.9)); err != nil {
		t.Fatal(err)
	}
	now = now.Add(time.Minute)
	if err := r.WriteAnomaly(context.Background(), mkAnomaly("t3", "volumetric", "key", "k-partner", 0.9)); err != nil {
		t.Fatal(err)
	}
	e := w.entries[enforce.Key{Kind: enforce.KindKey, Value: "k-partner"}]
	if e.Action != enforce.ActionBlock || e.Rate != 0 {
		t.Errorf("after two detectors: %+v, want a block", e)
	}
	if last := audit.actions[len(audit.actions)-1]; !strings.Contains(last.Reason, "flagged by 2 detectors within 24h0m0s (scraping, volumetric): throttle escalated to block") {
		t.Errorf("reason %q", last.Reason)
	}
	if r.Stats().Escalated.Load() == 0 {
		t.Error("no escalation counted")
	}
}

// TestGroupAction: a campaign of 20 addresses of one /24 becomes one CIDR
// entry, made once; a network overlapping never_block, or holding an
// address that many established principals share, is not blocked whole.
func TestGroupAction(t *testing.T) {
	now := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	campaign := func(prefix string, n int) []*event.Anomaly {
		var out []*event.Anomaly
		for i := range n {
			out = append(out, mkAnomaly(fmt.Sprintf("g%s%d", prefix, i), "credential_stuffing", "ip", fmt.Sprintf("%s.%d", prefix, 10+i), 0.95))
		}
		return out
	}
	w, audit, r := run(t, responder.DefaultConfig(), clock, campaign("198.51.100", 20)...)
	cidrs := 0
	for k, e := range w.entries {
		if k.Kind == enforce.KindCIDR {
			cidrs++
			if k.Value != "198.51.100.0/24" || e.Action != enforce.ActionBlock || e.Expires.Sub(now) != time.Hour || e.Actor != "policy:group" {
				t.Errorf("group entry %v %+v", k, e)
			}
			if !strings.Contains(e.Reason, "group: 10 addresses of 198.51.100.0/24 blocked within 10m0s") {
				t.Errorf("group reason %q", e.Reason)
			}
		}
	}
	if cidrs != 1 || r.Stats().Groups.Load() != 1 {
		t.Errorf("%d cidr entries, %d groups; want 1", cidrs, r.Stats().Groups.Load())
	}
	if len(audit.actions) != 21 {
		t.Errorf("%d actions, want 20 blocks and 1 group", len(audit.actions))
	}

	cfg := responder.DefaultConfig()
	cfg.NeverBlock = []string{"192.0.2.128/25"}
	w, _, _ = run(t, cfg, clock, campaign("192.0.2", 12)...)
	if _, ok := w.entries[enforce.Key{Kind: enforce.KindCIDR, Value: "192.0.2.0/24"}]; ok {
		t.Error("a network overlapping never_block was blocked whole")
	}

	nat := mkAnomaly("nat", "probing", "ip", "203.0.113.1", 0.9)
	nat.SharedBy = 40
	nat.Members = []*event.Principal{{Kind: "key", Value: "k-bad"}}
	w, _, _ = run(t, responder.DefaultConfig(), clock, append([]*event.Anomaly{nat}, campaign("203.0.113", 12)...)...)
	if _, ok := w.entries[enforce.Key{Kind: enforce.KindCIDR, Value: "203.0.113.0/24"}]; ok {
		t.Error("a network holding a shared address was blocked whole")
	}
	if _, ok := w.entries[enforce.Key{Kind: enforce.KindIP, Value: "203.0.113.1"}]; ok {
		t.Error("the shared address was blocked")
	}
}

// TestEscalationEpisodes: anomalies while a block is in force (a campaign
// that goes on) keep it at its level; only a return after it lapsed is a
// repeat.
func TestEscalationEpisodes(t *testing.T) {
	now := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	w, _, r := run(t, responder.DefaultConfig(), clock)
	ttl := func(id string) time.Duration {
		t.Helper()
		if err := r.WriteAnomaly(context.Background(), mkAnomaly(id, "credential_stuffing", "cidr", "86.24.64.0/24", 0.9)); err != nil {
			t.Fatal(err)
		}
		return w.entries[enforce.Key{Kind: enforce.KindCIDR, Value: "86.24.64.0/24"}].Expires.Sub(now)
	}
	for i, step := range []struct {
		advance time.Duration
		want    time.Duration
	}{
		{0, 10 * time.Minute},
		{4 * time.Minute, 10 * time.Minute},  // in force: the same episode
		{8 * time.Minute, 10 * time.Minute},  // the first lapsed, the second is in force
		{11 * time.Minute, 20 * time.Minute}, // all lapsed: a repeat
		{5 * time.Minute, 20 * time.Minute},  // in force
	} {
		now = now.Add(step.advance)
		if got := ttl(fmt.Sprintf("ep%d", i)); got != step.want {
			t.Errorf("step %d: ttl %s, want %s", i, got, step.want)
		}
	}
}
