package kv_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/apiguard/apiguard/enforce"
	"github.com/apiguard/apiguard/enforce/kv"
	"github.com/apiguard/apiguard/internal/testutil"
)

// TestWriterGetAndDeleteRevision: operators' removals read the entry,
// check what it is, and delete exactly what they read.
func TestWriterGetAndDeleteRevision(t *testing.T) {
	js, bucket := testutil.Topology(t)
	ctx := context.Background()
	w := kv.NewWriter(js, bucket)
	now := time.Now()

	if _, _, err := w.Get(ctx, enforce.KindIP, "198.51.100.7", now); !errors.Is(err, kv.ErrNotFound) {
		t.Fatalf("Get of an absent entry: %v, want ErrNotFound", err)
	}
	allow := enforce.Entry{Kind: enforce.KindIP, Value: "198.51.100.7", Action: enforce.ActionAllow, Reason: "partner", Actor: "operator:ann", Created: now}
	rev1, err := w.Put(ctx, allow, now)
	if err != nil {
		t.Fatal(err)
	}
	got, rev, err := w.Get(ctx, enforce.KindIP, "::ffff:198.51.100.7", now)
	if err != nil || rev != rev1 || got.Action != enforce.ActionAllow || got.Reason != "partner" {
		t.Fatalf("Get = %+v rev %d (put at %d), %v", got, rev, rev1, err)
	}
	// Someone blocks it in between: deleting what was read must not remove the new entry.
	block := allow
	block.Action, block.Reason = enforce.ActionBlock, "stuffing"
	rev2, err := w.Put(ctx, block, now)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.DeleteRevision(ctx, enforce.KindIP, "198.51.100.7", rev1); !errors.Is(err, kv.ErrChanged) {
		t.Fatalf("DeleteRevision of a stale revision: %v, want ErrChanged", err)
	}
	if got, _, err := w.Get(ctx, enforce.KindIP, "198.51.100.7", now); err != nil || got.Action != enforce.ActionBlock {
		t.Fatalf("after a refused delete: %+v, %v", got, err)
	}
	if err := w.DeleteRevision(ctx, enforce.KindIP, "198.51.100.7", rev2); err != nil {
		t.Fatal(err)
	}
	if _, _, err := w.Get(ctx, enforce.KindIP, "198.51.100.7", now); !errors.Is(err, kv.ErrNotFound) {
		t.Fatalf("Get after delete: %v, want ErrNotFound", err)
	}
	// An entry past its expiry is not found, even before NATS removes it.
	short := enforce.Entry{Kind: enforce.KindKey, Value: "k", Action: enforce.ActionBlock, Created: now, Expires: now.Add(time.Hour)}
	if _, err := w.Put(ctx, short, now); err != nil {
		t.Fatal(err)
	}
	if _, _, err := w.Get(ctx, enforce.KindKey, "k", now.Add(2*time.Hour)); !errors.Is(err, kv.ErrNotFound) {
		t.Fatalf("Get of an expired entry: %v, want ErrNotFound", err)
	}
}
