package kv_test

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/apiguard/apiguard/enforce"
	"github.com/apiguard/apiguard/enforce/kv"
	"github.com/apiguard/apiguard/internal/testutil"
)

// TestPutBulk writes more entries than the window holds, with and without
// TTLs, and a watcher loads them all; a bad entry writes nothing.
func TestPutBulk(t *testing.T) {
	js, bucket := testutil.Topology(t)
	ctx := context.Background()
	w := kv.NewWriter(js, bucket)
	now := time.Now()
	var entries []enforce.Entry
	for i := range 10_000 {
		e := enforce.Entry{Kind: enforce.KindIP, Value: fmt.Sprintf("10.%d.%d.%d", i>>16, i>>8&255, i&255), Action: enforce.ActionBlock, Created: now}
		if i%2 == 0 {
			e.Expires = now.Add(time.Hour)
		}
		entries = append(entries, e)
	}
	n, err := w.PutBulk(ctx, entries, now)
	if err != nil || n != len(entries) {
		t.Fatalf("PutBulk = %d, %v", n, err)
	}
	m := enforce.NewMatcher()
	runWatcher(t, kv.NewWatcher(kv.Bucket(js, bucket), m, slog.New(slog.DiscardHandler)))
	if m.Len() != len(entries) {
		t.Fatalf("watcher loaded %d entries, want %d", m.Len(), len(entries))
	}

	bad := []enforce.Entry{{Kind: enforce.KindKey, Value: "fine", Action: enforce.ActionBlock}, {Kind: enforce.KindIP, Value: "nope", Action: enforce.ActionBlock}}
	if n, err := w.PutBulk(ctx, bad, now); err == nil || n != 0 || !strings.Contains(err.Error(), "entry 1") {
		t.Fatalf("PutBulk of a bad entry = %d, %v", n, err)
	}
	if _, _, err := w.Get(ctx, enforce.KindKey, "fine", now); err == nil {
		t.Error("the good entry before a bad one was written")
	}
}
