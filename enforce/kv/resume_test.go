package kv_test

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apiguard/apiguard/enforce"
	"github.com/apiguard/apiguard/enforce/kv"
	"github.com/apiguard/apiguard/internal/testutil"
)

// syncBuffer is a log sink safe for the watcher's goroutine.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// runWatcher runs w until the test ends.
func runWatcher(t *testing.T, w *kv.Watcher) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	testutil.Eventually(t, 10*time.Second, w.Synced, "watcher never synced")
}

// TestResumeFromSnapshot: a matcher restored from saved state at a
// revision reads only the changes since (puts, a delete), and ends equal
// to the bucket; saved state of another bucket is dropped, said so in the
// log, and the whole bucket is loaded.
func TestResumeFromSnapshot(t *testing.T) {
	js, bucket := testutil.Topology(t)
	ctx := context.Background()
	wr := kv.NewWriter(js, bucket)
	now := time.Now()
	put := func(kind enforce.Kind, v string) {
		t.Helper()
		if _, err := wr.Put(ctx, enforce.Entry{Kind: kind, Value: v, Action: enforce.ActionBlock, Created: now}, now); err != nil {
			t.Fatal(err)
		}
	}
	for _, v := range []string{"k1", "k2", "k3"} {
		put(enforce.KindKey, v)
	}
	put(enforce.KindIP, "192.0.2.1")

	first := enforce.NewMatcher()
	w1 := kv.NewWatcher(kv.Bucket(js, bucket), first, slog.New(slog.DiscardHandler))
	runWatcher(t, w1)
	pos, ok := w1.Position()
	if !ok || pos.Revision == 0 || !strings.HasPrefix(pos.Source, "KV_") {
		t.Fatalf("Position = %+v, %v", pos, ok)
	}
	var saved bytes.Buffer
	if err := first.Save(&saved, pos, now); err != nil {
		t.Fatal(err)
	}

	// Changes after the save.
	put(enforce.KindSub, "late")
	if err := wr.Delete(ctx, enforce.KindKey, "k2"); err != nil {
		t.Fatal(err)
	}
	want := []enforce.Key{{Kind: enforce.KindKey, Value: "k1"}, {Kind: enforce.KindKey, Value: "k3"},
		{Kind: enforce.KindIP, Value: "192.0.2.1"}, {Kind: enforce.KindSub, Value: "late"}}
	check := func(name string, m *enforce.Matcher) {
		t.Helper()
		for _, k := range want {
			if m.Get(k) == nil {
				t.Errorf("%s: %v missing", name, k)
			}
		}
		if m.Len() != len(want) || m.Get(enforce.Key{Kind: enforce.KindKey, Value: "k2"}) != nil {
			t.Errorf("%s: %d entries %v, want %v", name, m.Len(), m.Entries(), want)
		}
	}

	t.Run("same bucket", func(t *testing.T) {
		b, info, err := enforce.Restore(saved.Bytes(), time.Now())
		if err != nil {
			t.Fatal(err)
		}
		m := enforce.NewMatcher()
		m.Load(b)
		var logs syncBuffer
		w := kv.NewWatcher(kv.Bucket(js, bucket), m, slog.New(slog.NewTextHandler(&logs, nil)))
		w.Resume(info.Position)
		runWatcher(t, w)
		check("resumed", m)
		if !strings.Contains(logs.String(), "enforcement state caught up") || !strings.Contains(logs.String(), "changes=2") {
			t.Errorf("log does not say it caught up with 2 changes:\n%s", logs.String())
		}
		if strings.Contains(logs.String(), "enforcement state loaded") {
			t.Errorf("resumed watcher made a full load:\n%s", logs.String())
		}
	})
	t.Run("another bucket", func(t *testing.T) {
		b, info, err := enforce.Restore(saved.Bytes(), time.Now())
		if err != nil {
			t.Fatal(err)
		}
		m := enforce.NewMatcher()
		m.Load(b)
		m.Apply([]enforce.Change{enforce.Put(enforce.Entry{Kind: enforce.KindKey, Value: "foreign", Action: enforce.ActionBlock})})
		var logs syncBuffer
		w := kv.NewWatcher(kv.Bucket(js, bucket), m, slog.New(slog.NewTextHandler(&logs, nil)))
		w.Resume(enforce.Position{Source: "KV_APIGUARD_ENFORCEMENT@2001-01-01T00:00:00Z", Revision: info.Position.Revision})
		runWatcher(t, w)
		check("full load", m)
		if !strings.Contains(logs.String(), "ignoring the enforcement snapshot: it is of another bucket") ||
			!strings.Contains(logs.String(), "enforcement state loaded") {
			t.Errorf("log does not say the snapshot was ignored and the bucket loaded:\n%s", logs.String())
		}
	})
}
