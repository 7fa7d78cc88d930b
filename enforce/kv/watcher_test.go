package kv_test

import (
	"context"
	"log/slog"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/apiguard/apiguard/enforce"
	"github.com/apiguard/apiguard/enforce/kv"
	"github.com/apiguard/apiguard/internal/testutil"
)

func TestWatcherFollowsBucket(t *testing.T) {
	js, bucket := testutil.Topology(t)
	ctx := context.Background()
	w := kv.NewWriter(js, bucket)
	now := time.Now()
	// One entry before the watcher starts: it must come with the snapshot.
	if _, err := w.Put(ctx, enforce.Entry{Kind: enforce.KindKey, Value: "early", Action: enforce.ActionBlock, Created: now}, now); err != nil {
		t.Fatal(err)
	}
	// A malformed entry, as a careless operator might write it.
	if _, err := bucket.Put(ctx, "key.broken", []byte(`{"action":"obliterate"}`)); err != nil {
		t.Fatal(err)
	}

	m := enforce.NewMatcher()
	watcher := kv.NewWatcher(kv.Bucket(js, bucket), m, slog.New(slog.DiscardHandler))
	var mu sync.Mutex
	var applied []string
	watcher.OnApply = func(e enforce.Entry, _ time.Time) {
		mu.Lock()
		applied = append(applied, e.Value)
		mu.Unlock()
	}
	wctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- watcher.Run(wctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()

	blocked := func(id enforce.Identity) bool { return m.Match(&id, time.Now()).Action == enforce.ActionBlock }
	testutil.Eventually(t, 5*time.Second, watcher.Synced, "watcher never synced")
	if !blocked(enforce.Identity{KeyID: "early"}) {
		t.Fatal("entry present before start not loaded")
	}
	if watcher.Malformed() != 1 {
		t.Errorf("Malformed = %d, want 1", watcher.Malformed())
	}

	ip := enforce.Identity{IP: netip.MustParseAddr("2001:db8::7")}
	if _, err := w.Put(ctx, enforce.Entry{Kind: enforce.KindIP, Value: "2001:db8::7", Action: enforce.ActionBlock, Created: now, Expires: now.Add(time.Hour)}, now); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 2*time.Second, func() bool { return blocked(ip) }, "put not applied")
	mu.Lock()
	if len(applied) != 1 || applied[0] != "2001:db8::7" {
		t.Errorf("OnApply saw %v", applied)
	}
	mu.Unlock()

	// A resync (as after a reconnect) reloads and keeps following.
	watcher.Resync()
	if _, err := w.Put(ctx, enforce.Entry{Kind: enforce.KindSub, Value: "after-resync", Action: enforce.ActionBlock, Created: now}, now); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 5*time.Second, func() bool {
		return watcher.Synced() && blocked(enforce.Identity{Subject: "after-resync"}) && blocked(ip)
	}, "watcher did not follow the bucket after a resync")

	if err := w.Delete(ctx, enforce.KindIP, "2001:db8::7"); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 2*time.Second, func() bool { return !blocked(ip) }, "delete not applied")
	// Deltas counted: the ip put and its delete (the put around the resync
	// may arrive with the reload rather than as a delta).
	if n := watcher.Applied(); n < 2 || n > 3 {
		t.Errorf("Applied = %d, want 2 or 3", n)
	}

	// A key TTL: NATS removes the entry and the watcher sees the removal.
	short := enforce.Identity{KeyID: "short"}
	if _, err := w.Put(ctx, enforce.Entry{Kind: enforce.KindKey, Value: "short", Action: enforce.ActionBlock, Created: now, Expires: time.Now().Add(time.Second)}, time.Now()); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 2*time.Second, func() bool { return m.Get(enforce.Key{Kind: enforce.KindKey, Value: "short"}) != nil }, "short entry not applied")
	testutil.Eventually(t, 10*time.Second, func() bool {
		return m.Get(enforce.Key{Kind: enforce.KindKey, Value: "short"}) == nil && !blocked(short)
	}, "expired entry still held")

	entries, errs := w.List(ctx)
	if len(entries) != 2 || len(errs) != 1 {
		t.Errorf("List = %v, errors %v; want two entries and one malformed", entries, errs)
	}
}

func TestWriterRejects(t *testing.T) {
	js, bucket := testutil.Topology(t)
	ctx := context.Background()
	w := kv.NewWriter(js, bucket)
	now := time.Now()
	tests := []struct {
		name string
		e    enforce.Entry
	}{
		{"bad ip", enforce.Entry{Kind: enforce.KindIP, Value: "nope", Action: enforce.ActionBlock}},
		{"no action", enforce.Entry{Kind: enforce.KindKey, Value: "k"}},
		{"already expired", enforce.Entry{Kind: enforce.KindKey, Value: "k", Action: enforce.ActionBlock, Expires: now.Add(-time.Second)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := w.Put(ctx, tt.e, now); err == nil {
				t.Error("Put accepted a bad entry")
			}
		})
	}
}
