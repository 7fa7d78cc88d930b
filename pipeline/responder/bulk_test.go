package responder_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/apiguard/apiguard/enforce"
	"github.com/apiguard/apiguard/event"
	"github.com/apiguard/apiguard/pipeline/responder"
)

// TestApplyBulk: a list is written in one go and audited as one action
// that counts what was written, repeated and spared by an allow entry.
func TestApplyBulk(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	r := responder.New(responder.DefaultConfig(), e.writer, e.audit, time.Now, slog.New(slog.DiscardHandler))
	if _, err := r.Apply(ctx, person(event.ActionKind_ACTION_ALLOW, "cidr", "10.0.9.0/24", 0)); err != nil {
		t.Fatal(err)
	}
	var targets []enforce.Key
	for i := range 1000 {
		targets = append(targets, enforce.Key{Kind: enforce.KindIP, Value: fmt.Sprintf("10.0.%d.%d", i/250, i%250)})
	}
	targets = append(targets,
		enforce.Key{Kind: enforce.KindIP, Value: "10.0.9.1"},        // allowed
		enforce.Key{Kind: enforce.KindIP, Value: "::ffff:10.0.0.1"}, // a repeat, in another form
		enforce.Key{Kind: enforce.KindCIDR, Value: "198.51.100.0/24"},
		enforce.Key{Kind: enforce.KindKey, Value: "leaked-key"})
	res, err := r.ApplyBulk(ctx, responder.BulkDecision{Kind: event.ActionKind_ACTION_BLOCK, Targets: targets,
		TTL: time.Hour, Reason: "threat feed", Actor: "operator:ann", Source: "feed.txt"})
	if err != nil {
		t.Fatal(err)
	}
	if res.Written != 1002 || res.Duplicates != 1 || len(res.Spared) != 1 {
		t.Errorf("result: written %d, duplicates %d, spared %v", res.Written, res.Duplicates, res.Spared)
	}
	entries, _ := e.writer.List(ctx)
	if len(entries) != 1003 { // and the allow entry
		t.Errorf("bucket holds %d entries, want 1003", len(entries))
	}
	acts := audited(t, e.js)
	if len(acts) != 2 {
		t.Fatalf("audited %d actions, want the allow and one bulk block", len(acts))
	}
	a := acts[1]
	if a.Kind != event.ActionKind_ACTION_BLOCK || a.Target.Kind != responder.BulkTargetKind || a.Target.Value != "feed.txt (1004 principals)" ||
		!strings.Contains(a.Reason, "1002 written, 1 duplicates, 1 spared by allow entries (first: ip 10.0.9.1); threat feed") || a.Actor != "operator:ann" {
		t.Errorf("bulk action %+v", a)
	}

	// A bad target refuses the whole list, naming it; nothing is written.
	bad := []enforce.Key{{Kind: enforce.KindKey, Value: "fine"}, {Kind: enforce.KindIP, Value: "300.1.1.1"}}
	if _, err := r.ApplyBulk(ctx, responder.BulkDecision{Kind: event.ActionKind_ACTION_BLOCK, Targets: bad,
		TTL: time.Hour, Reason: "x", Actor: "operator:ann", Source: "bad.txt"}); !errors.Is(err, responder.ErrInvalid) || !strings.Contains(err.Error(), "target 2") {
		t.Errorf("ApplyBulk of a bad target: %v", err)
	}
	if len(audited(t, e.js)) != 2 {
		t.Error("a refused bulk action was audited")
	}
}
