package kv_test

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	promtest "github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/apiguard/apiguard/enforce"
	"github.com/apiguard/apiguard/enforce/kv"
	"github.com/apiguard/apiguard/internal/testutil"
)

// TestMetrics loads a bucket holding one good and one malformed entry,
// applies a put and a delete, and reads the series through the registry.
func TestMetrics(t *testing.T) {
	js, bucket := testutil.Topology(t)
	ctx := context.Background()
	wr := kv.NewWriter(js, bucket)
	now := time.Now()
	if _, err := wr.Put(ctx, enforce.Entry{Kind: enforce.KindKey, Value: "early", Action: enforce.ActionBlock, Created: now}, now); err != nil {
		t.Fatal(err)
	}
	if _, err := bucket.Put(ctx, "key.broken", []byte(`{"action":"obliterate"}`)); err != nil {
		t.Fatal(err)
	}
	w := kv.NewWatcher(kv.Bucket(js, bucket), enforce.NewMatcher(), slog.New(slog.DiscardHandler))
	reg := prometheus.NewPedanticRegistry()
	if err := kv.RegisterMetrics(reg, w); err != nil {
		t.Fatal(err)
	}
	check := func(when, want string) {
		t.Helper()
		if err := promtest.GatherAndCompare(reg, strings.NewReader(want)); err != nil {
			t.Errorf("%s: %v", when, err)
		}
	}
	const help = `
# HELP apiguard_enforce_changes_total Enforcement puts and deletes applied from the KV bucket after the initial load.
# TYPE apiguard_enforce_changes_total counter
# HELP apiguard_enforce_entries Enforcement entries in the proxy's matcher.
# TYPE apiguard_enforce_entries gauge
# HELP apiguard_enforce_malformed_total Enforcement entries skipped as malformed.
# TYPE apiguard_enforce_malformed_total counter
# HELP apiguard_enforce_synced 1 while the proxy holds the enforcement state (loaded, and not being reloaded after a failed watch).
# TYPE apiguard_enforce_synced gauge
`
	check("before Run", help+`apiguard_enforce_changes_total 0
apiguard_enforce_entries 0
apiguard_enforce_malformed_total 0
apiguard_enforce_synced 0
`)
	wctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- w.Run(wctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	testutil.Eventually(t, 5*time.Second, w.Synced, "watcher never synced")
	check("after the load", help+`apiguard_enforce_changes_total 0
apiguard_enforce_entries 1
apiguard_enforce_malformed_total 1
apiguard_enforce_synced 1
`)
	if _, err := wr.Put(ctx, enforce.Entry{Kind: enforce.KindIP, Value: "192.0.2.7", Action: enforce.ActionBlock, Created: now, Expires: now.Add(time.Hour)}, now); err != nil {
		t.Fatal(err)
	}
	if err := wr.Delete(ctx, enforce.KindKey, "early"); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 5*time.Second, func() bool { return w.Applied() == 2 }, "changes not applied")
	check("after a put and a delete", help+`apiguard_enforce_changes_total 2
apiguard_enforce_entries 1
apiguard_enforce_malformed_total 1
apiguard_enforce_synced 1
`)
}
