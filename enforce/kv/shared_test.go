package kv_test

import (
	"bytes"
	"context"
	"log/slog"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/apiguard/apiguard/enforce"
	"github.com/apiguard/apiguard/enforce/kv"
	"github.com/apiguard/apiguard/event"
	"github.com/apiguard/apiguard/internal/testutil"
)

// TestSharedSnapshotStart: a proxy with a complete state uploads the
// shared snapshot, and does not upload it again while it is fresh; a
// proxy with no local state starts from it (no full load), reads the
// changes made after it, and then follows the bucket.
func TestSharedSnapshotStart(t *testing.T) {
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
	put(enforce.KindCIDR, "198.51.100.0/24")

	first := enforce.NewMatcher()
	w1 := kv.NewWatcher(kv.Bucket(js, bucket), first, slog.New(slog.DiscardHandler))
	runWatcher(t, w1)
	var upLogs syncBuffer
	sw := kv.NewSharedWriter(js, first, w1, kv.DefaultSharedPolicy(), slog.New(slog.NewTextHandler(&upLogs, nil)))
	if up, err := sw.Check(ctx); err != nil || !up {
		t.Fatalf("first Check = %v, %v; want an upload", up, err)
	}
	if !strings.Contains(upLogs.String(), "shared enforcement snapshot uploaded") {
		t.Errorf("upload not logged:\n%s", upLogs.String())
	}
	if up, err := sw.Check(ctx); err != nil || up {
		t.Fatalf("second Check = %v, %v; want no upload of a fresh snapshot", up, err)
	}

	// Changes after the upload.
	put(enforce.KindSub, "late")
	if err := wr.Delete(ctx, enforce.KindKey, "k2"); err != nil {
		t.Fatal(err)
	}
	// One change is not 50,000 and the snapshot is seconds old.
	testutil.Eventually(t, 5*time.Second, func() bool { p, _ := w1.Position(); return p.Revision >= 6 }, "first watcher never read the changes")
	if up, err := sw.Check(ctx); err != nil || up {
		t.Fatalf("Check after 2 changes = %v, %v; want no upload", up, err)
	}

	var logs syncBuffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	b, info, ok := kv.FetchShared(ctx, js, event.BucketEnforcement, enforce.Position{}, time.Now(), log)
	if !ok {
		t.Fatalf("FetchShared found nothing usable:\n%s", logs.String())
	}
	if b.Len() != 4 || info.Position.Revision != 4 {
		t.Errorf("shared snapshot: %d entries at revision %d, want 4 at 4", b.Len(), info.Position.Revision)
	}
	m := enforce.NewMatcher()
	m.Load(b)
	w := kv.NewWatcher(kv.Bucket(js, bucket), m, log)
	w.Resume(info.Position)
	runWatcher(t, w)
	want := []enforce.Key{{Kind: enforce.KindKey, Value: "k1"}, {Kind: enforce.KindKey, Value: "k3"},
		{Kind: enforce.KindCIDR, Value: "198.51.100.0/24"}, {Kind: enforce.KindSub, Value: "late"}}
	for _, k := range want {
		if m.Get(k) == nil {
			t.Errorf("%v missing", k)
		}
	}
	if m.Len() != len(want) || m.Get(enforce.Key{Kind: enforce.KindKey, Value: "k2"}) != nil {
		t.Errorf("%d entries %v, want %v", m.Len(), m.Entries(), want)
	}
	if s := logs.String(); !strings.Contains(s, "shared enforcement snapshot read") || !strings.Contains(s, "changes=2") ||
		strings.Contains(s, "enforcement state loaded") {
		t.Errorf("log does not say it started from the shared snapshot and read 2 changes:\n%s", s)
	}
	// And it follows the bucket.
	put(enforce.KindIP, "192.0.2.7")
	testutil.Eventually(t, 5*time.Second, func() bool { return m.Get(enforce.Key{Kind: enforce.KindIP, Value: "192.0.2.7"}) != nil }, "change after the start never applied")

	// A proxy whose local state is as new reads nothing.
	var local syncBuffer
	if _, _, ok := kv.FetchShared(ctx, js, event.BucketEnforcement, enforce.Position{Source: info.Position.Source, Revision: 5},
		time.Now(), slog.New(slog.NewTextHandler(&local, nil))); ok {
		t.Error("FetchShared used a shared snapshot older than the local state")
	}
	if !strings.Contains(local.String(), "the local enforcement snapshot is as new as the shared one") {
		t.Errorf("log does not say the local snapshot is newer:\n%s", local.String())
	}
}

// TestSharedSnapshotIgnored: a shared snapshot that is damaged, of
// another bucket, ahead of the bucket, or of a bucket purged since is not
// used, and the log says why.
func TestSharedSnapshotIgnored(t *testing.T) {
	js, bucket := testutil.Topology(t)
	ctx := context.Background()
	wr := kv.NewWriter(js, bucket)
	now := time.Now()
	if _, err := wr.Put(ctx, enforce.Entry{Kind: enforce.KindKey, Value: "k1", Action: enforce.ActionBlock, Created: now}, now); err != nil {
		t.Fatal(err)
	}
	m := enforce.NewMatcher()
	w := kv.NewWatcher(kv.Bucket(js, bucket), m, slog.New(slog.DiscardHandler))
	runWatcher(t, w)
	pos, _ := w.Position()
	obs, err := js.ObjectStore(ctx, event.BucketEnforcementSnapshots)
	if err != nil {
		t.Fatal(err)
	}
	saved := func(p enforce.Position) []byte {
		var buf bytes.Buffer
		if err := m.Save(&buf, p, now); err != nil {
			t.Fatal(err)
		}
		return buf.Bytes()
	}
	good := saved(pos)
	corrupt := bytes.Clone(good)
	corrupt[len(corrupt)/2] ^= 0xff
	for _, c := range []struct {
		name string
		data []byte
		p    enforce.Position
		log  string
	}{
		{"corrupt", corrupt, pos, "ignoring the shared enforcement snapshot: it is damaged"},
		{"truncated", good[:len(good)-9], pos, "ignoring the shared enforcement snapshot: it is damaged"},
		{"another bucket", saved(enforce.Position{Source: "KV_APIGUARD_ENFORCEMENT@2001-01-01T00:00:00Z", Revision: 1}),
			enforce.Position{Source: "KV_APIGUARD_ENFORCEMENT@2001-01-01T00:00:00Z", Revision: 1}, "ignoring the shared enforcement snapshot: it is of another bucket"},
		{"ahead", saved(enforce.Position{Source: pos.Source, Revision: pos.Revision + 10}),
			enforce.Position{Source: pos.Source, Revision: pos.Revision + 10}, "ignoring the shared enforcement snapshot: it is ahead of the bucket"},
	} {
		t.Run(c.name, func(t *testing.T) {
			meta := jetstream.ObjectMeta{Name: kv.SharedObject, Metadata: map[string]string{
				"source": c.p.Source, "revision": strconv.FormatUint(c.p.Revision, 10), "saved": now.UTC().Format(time.RFC3339Nano)}}
			if _, err := obs.Put(ctx, meta, bytes.NewReader(c.data)); err != nil {
				t.Fatal(err)
			}
			var logs syncBuffer
			if _, _, ok := kv.FetchShared(ctx, js, event.BucketEnforcement, enforce.Position{}, time.Now(), slog.New(slog.NewTextHandler(&logs, nil))); ok {
				t.Fatal("FetchShared used it")
			}
			if !strings.Contains(logs.String(), c.log) {
				t.Errorf("log does not say %q:\n%s", c.log, logs.String())
			}
		})
	}
	t.Run("absent", func(t *testing.T) {
		if err := obs.Delete(ctx, kv.SharedObject); err != nil {
			t.Fatal(err)
		}
		var logs syncBuffer
		if _, _, ok := kv.FetchShared(ctx, js, event.BucketEnforcement, enforce.Position{}, time.Now(), slog.New(slog.NewTextHandler(&logs, nil))); ok {
			t.Fatal("FetchShared found a deleted object")
		}
		if !strings.Contains(logs.String(), "no shared enforcement snapshot") {
			t.Errorf("log does not say there is none:\n%s", logs.String())
		}
	})
	// Last: it purges the bucket. A snapshot whose catch-up cannot be
	// complete (the bucket's messages purged since) is not used.
	t.Run("bucket purged", func(t *testing.T) {
		meta := jetstream.ObjectMeta{Name: kv.SharedObject, Metadata: map[string]string{
			"source": pos.Source, "revision": strconv.FormatUint(pos.Revision, 10), "saved": now.UTC().Format(time.RFC3339Nano)}}
		if _, err := obs.Put(ctx, meta, bytes.NewReader(good)); err != nil {
			t.Fatal(err)
		}
		stream, err := js.Stream(ctx, "KV_"+event.BucketEnforcement)
		if err != nil {
			t.Fatal(err)
		}
		if err := stream.Purge(ctx); err != nil {
			t.Fatal(err)
		}
		var logs syncBuffer
		if _, _, ok := kv.FetchShared(ctx, js, event.BucketEnforcement, enforce.Position{}, time.Now(), slog.New(slog.NewTextHandler(&logs, nil))); ok {
			t.Fatal("FetchShared used a snapshot of a purged bucket")
		}
		if want := "ignoring the shared enforcement snapshot: it holds more entries than the bucket has messages"; !strings.Contains(logs.String(), want) {
			t.Errorf("log does not say %q:\n%s", want, logs.String())
		}
	})
}

// TestNeedsUpload: the shared snapshot is replaced when absent, of another
// bucket, Changes revisions behind, or behind and MaxAge old; never when
// it is as new as the proxy's state.
func TestNeedsUpload(t *testing.T) {
	p := kv.SharedPolicy{Changes: 100, MaxAge: 5 * time.Minute, Interval: time.Second}
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	stored := func(src string, rev uint64, age time.Duration) *jetstream.ObjectInfo {
		return &jetstream.ObjectInfo{ObjectMeta: jetstream.ObjectMeta{Metadata: map[string]string{
			"source": src, "revision": strconv.FormatUint(rev, 10), "saved": now.Add(-age).Format(time.RFC3339Nano)}}}
	}
	have := enforce.Position{Source: "KV_A@1", Revision: 1000}
	for _, c := range []struct {
		name   string
		stored *jetstream.ObjectInfo
		want   bool
	}{
		{"none", nil, true},
		{"same revision, old", stored("KV_A@1", 1000, time.Hour), false},
		{"newer than ours", stored("KV_A@1", 1200, time.Hour), false},
		{"a few changes behind, fresh", stored("KV_A@1", 950, time.Minute), false},
		{"Changes behind", stored("KV_A@1", 900, time.Minute), true},
		{"behind and old", stored("KV_A@1", 999, 5*time.Minute), true},
		{"another bucket", stored("KV_A@2", 5000, 0), true},
		{"unreadable metadata", &jetstream.ObjectInfo{}, true},
	} {
		if got := kv.NeedsUpload(p, c.stored, have, now); got != c.want {
			t.Errorf("%s: NeedsUpload = %v, want %v", c.name, got, c.want)
		}
	}
}
