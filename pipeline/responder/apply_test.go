package responder_test

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/apiguard/apiguard/enforce"
	"github.com/apiguard/apiguard/enforce/kv"
	"github.com/apiguard/apiguard/event"
	"github.com/apiguard/apiguard/pipeline/responder"
)

func person(k event.ActionKind, kind, value string, ttl time.Duration) responder.Decision {
	return responder.Decision{Kind: k, Target: &event.Principal{Kind: kind, Value: value}, TTL: ttl,
		Reason: "a test", Actor: "grafana:alice"}
}

// TestApplyRefusesInvalid: a decision with a bad field is refused with
// ErrInvalid and writes nothing, neither entry nor audit.
func TestApplyRefusesInvalid(t *testing.T) {
	e := newEnv(t)
	r := responder.New(responder.DefaultConfig(), e.writer, e.audit, time.Now, slog.New(slog.DiscardHandler))
	block := event.ActionKind_ACTION_BLOCK
	for _, tc := range []struct {
		name string
		d    responder.Decision
		says string
	}{
		{"unknown action", person(event.ActionKind(99), "ip", "192.0.2.1", time.Hour), "unknown action"},
		{"unspecified action", person(event.ActionKind_ACTION_UNSPECIFIED, "ip", "192.0.2.1", time.Hour), "unknown action"},
		{"unknown kind", person(block, "user", "bob", time.Hour), "unknown kind"},
		{"api kind", person(block, event.KindAPI, "GET /x", time.Hour), "unknown kind"},
		{"bad ip", person(block, "ip", "300.1.1.1", time.Hour), "ip entry"},
		{"bad cidr", person(block, "cidr", "10.0.0.0/33", time.Hour), "cidr entry"},
		{"empty key", person(block, "key", " ", time.Hour), "empty value"},
		{"negative ttl", person(block, "ip", "192.0.2.1", -time.Second), "negative"},
		{"short ttl", person(block, "ip", "192.0.2.1", 500*time.Millisecond), "shorter than 1s"},
		{"long ttl", person(block, "ip", "192.0.2.1", responder.MaxTTL+time.Hour), "longer than"},
		{"no reason", func() responder.Decision { d := person(block, "ip", "192.0.2.1", time.Hour); d.Reason = " "; return d }(), "no reason"},
		{"no actor", func() responder.Decision { d := person(block, "ip", "192.0.2.1", time.Hour); d.Actor = ""; return d }(), "no actor"},
		{"no target", func() responder.Decision { d := person(block, "ip", "192.0.2.1", time.Hour); d.Target = nil; return d }(), "no principal"},
		{"policy without ttl", func() responder.Decision { d := person(block, "ip", "192.0.2.1", 0); d.Policy = true; return d }(), "need a ttl"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := r.Apply(context.Background(), tc.d)
			if !errors.Is(err, responder.ErrInvalid) || !strings.Contains(err.Error(), tc.says) {
				t.Errorf("Apply: %v, want ErrInvalid saying %q", err, tc.says)
			}
		})
	}
	if n := len(audited(t, e.js)); n != 0 {
		t.Errorf("refused decisions audited %d actions", n)
	}
	if entries, _ := e.writer.List(context.Background()); len(entries) != 0 {
		t.Errorf("refused decisions wrote %v", entries)
	}
}

// TestApplyPeople walks an analyst's decisions through a real bucket: a
// block, an allow that replaces it, a block the allow spares, removals of
// the wrong sort and of nothing refused, then the right removals. A
// person is bound by allow entries but not by the policy's caps.
func TestApplyPeople(t *testing.T) {
	e := newEnv(t)
	cfg := responder.DefaultConfig()
	cfg.MaxActionsPerMinute = 1
	cfg.NeverBlock = []string{"10.0.0.0/8"}
	r := responder.New(cfg, e.writer, e.audit, time.Now, slog.New(slog.DiscardHandler))
	ctx := context.Background()
	apply := func(d responder.Decision) responder.Result {
		t.Helper()
		res, err := r.Apply(ctx, d)
		if err != nil {
			t.Fatalf("Apply %s %s: %v", d.Kind.Name(), d.Target.Value, err)
		}
		return res
	}

	// Neither never_block nor the cap of 1 a minute binds a person.
	for _, ip := range []string{"10.1.2.3", "::ffff:10.1.2.4"} {
		res := apply(person(event.ActionKind_ACTION_BLOCK, "ip", ip, time.Hour))
		if !res.Enforced() || res.Entry == nil || res.Entry.Action != enforce.ActionBlock || res.Action.Actor != "grafana:alice" {
			t.Errorf("block %s: %+v", ip, res)
		}
	}
	if got, _, err := e.writer.Get(ctx, enforce.KindIP, "10.1.2.4", time.Now()); err != nil || got.Expires.IsZero() {
		t.Errorf("block of a mapped address: %+v, %v; want a canonical entry with an expiry", got, err)
	}

	res := apply(person(event.ActionKind_ACTION_ALLOW, "ip", "10.1.2.3", 0))
	if res.Previous == nil || res.Previous.Action != enforce.ActionBlock || !res.Entry.Expires.IsZero() {
		t.Errorf("allow over a block: previous %+v, entry %+v", res.Previous, res.Entry)
	}
	res = apply(person(event.ActionKind_ACTION_THROTTLE, "ip", "10.1.2.3", time.Hour))
	if res.Enforced() || res.SparedBy == nil || !res.Action.DryRun || !strings.Contains(res.Action.Reason, "allowed by grafana:alice") {
		t.Errorf("throttle of an allowed ip: %+v %+v", res, res.Action)
	}
	if got, _, _ := e.writer.Get(ctx, enforce.KindIP, "10.1.2.3", time.Now()); got.Action != enforce.ActionAllow {
		t.Errorf("a spared throttle replaced the allow: %+v", got)
	}

	before := len(audited(t, e.js))
	for _, tc := range []struct {
		d    responder.Decision
		want error
	}{
		{person(event.ActionKind_ACTION_UNBLOCK, "key", "nobody", 0), kv.ErrNotFound},
		{person(event.ActionKind_ACTION_UNALLOW, "key", "nobody", 0), kv.ErrNotFound},
		{person(event.ActionKind_ACTION_UNBLOCK, "ip", "10.1.2.3", 0), responder.ErrWrongEntry},
		{person(event.ActionKind_ACTION_UNALLOW, "ip", "10.1.2.4", 0), responder.ErrWrongEntry},
	} {
		if _, err := r.Apply(ctx, tc.d); !errors.Is(err, tc.want) {
			t.Errorf("%s %s: %v, want %v", tc.d.Kind.Name(), tc.d.Target.Value, err, tc.want)
		}
	}
	if n := len(audited(t, e.js)) - before; n != 0 {
		t.Errorf("refused removals audited %d actions", n)
	}
	if res := apply(person(event.ActionKind_ACTION_UNALLOW, "ip", "10.1.2.3", 0)); res.Previous == nil || res.Previous.Action != enforce.ActionAllow {
		t.Errorf("unallow: %+v", res)
	}
	if res := apply(person(event.ActionKind_ACTION_UNBLOCK, "ip", "10.1.2.4", 0)); res.Previous == nil || res.Previous.Action != enforce.ActionBlock {
		t.Errorf("unblock: %+v", res)
	}
	if entries, _ := e.writer.List(ctx); len(entries) != 0 {
		t.Errorf("entries left: %v", entries)
	}
	var kinds []string
	for _, a := range audited(t, e.js) {
		kinds = append(kinds, a.Kind.Name())
	}
	if got, want := strings.Join(kinds, " "), "block block allow throttle unallow unblock"; got != want {
		t.Errorf("audit: %s, want %s", got, want)
	}
}

// TestApplyAllowNotYetWatched: a person's block of a principal whose allow
// entry the watcher-fed Allows has not seen yet is still spared, from the
// entry Apply reads itself; the allow stays.
func TestApplyAllowNotYetWatched(t *testing.T) {
	e := newEnv(t)
	r := responder.New(responder.DefaultConfig(), e.writer, e.audit, time.Now, slog.New(slog.DiscardHandler))
	r.Allows = enforce.NewMatcher() // empty: the watcher lags
	ctx := context.Background()
	if _, err := r.Apply(ctx, person(event.ActionKind_ACTION_ALLOW, "key", "partner", 0)); err != nil {
		t.Fatal(err)
	}
	res, err := r.Apply(ctx, person(event.ActionKind_ACTION_BLOCK, "key", "partner", time.Hour))
	if err != nil || res.Enforced() || res.SparedBy == nil || res.Previous != nil {
		t.Fatalf("block of an allowed key: %+v, %v", res, err)
	}
	if got, _, _ := e.writer.Get(ctx, enforce.KindKey, "partner", time.Now()); got.Action != enforce.ActionAllow {
		t.Errorf("the block replaced the allow: %+v", got)
	}
}
