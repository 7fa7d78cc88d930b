package main

import (
	"context"
	"fmt"
	"log/slog"
	"runtime/debug"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/apiguard/apiguard/enforce"
	"github.com/apiguard/apiguard/enforce/kv"
	"github.com/apiguard/apiguard/event"
	"github.com/apiguard/apiguard/proxy"
)

// startGCPercent is the GC percentage while the enforcement state loads
// at start (startProxy sets it before restoreEnforcement and back after
// awaitEnforcement): a load allocates the whole state, and a full load as
// much again in messages, into a heap that only grows; collecting less
// often saves most of the GC's work, for a transient peak of a few times
// the state.
const startGCPercent = 400

// progressEvery is how often a proxy waiting for its enforcement state
// logs how far the load has got.
const progressEvery = 2 * time.Second

// restoreEnforcement loads m from the newest usable snapshot, the
// proxy's local one or the one proxies share in NATS, and tells w to read
// only what changed in the bucket since. It reports whether it did.
func restoreEnforcement(ctx context.Context, cfg Config, js jetstream.JetStream, m *enforce.Matcher, w *kv.Watcher, log *slog.Logger) bool {
	var (
		b    *enforce.Builder
		info enforce.SaveInfo
		ok   bool
	)
	if cfg.Proxy.Snapshot.Enabled() {
		b, info, ok = proxy.ReadSnapshot(cfg.Proxy.Snapshot.File(cfg.Emit.SpoolDir), time.Now(), log)
	}
	if cfg.Proxy.Snapshot.Shared.Enabled {
		if !js.Conn().IsConnected() {
			log.Info("not reading the shared enforcement snapshot: NATS is not connected yet")
		} else {
			// Half the start-up budget at most: the catch-up needs the rest.
			fctx, cancel := context.WithTimeout(ctx, cfg.Proxy.SyncTimeout/2)
			sb, sinfo, sok := kv.FetchShared(fctx, js, event.BucketEnforcement, info.Position, time.Now(), log)
			cancel()
			if sok {
				b, info, ok = sb, sinfo, true
			}
		}
	}
	if !ok {
		log.Info("no usable enforcement snapshot: loading the whole bucket")
		return false
	}
	m.Load(b)
	w.Resume(info.Position)
	return true
}

// sharedWriter returns what keeps the shared enforcement snapshot fresh
// from this proxy's state, or nil when it is disabled.
func sharedWriter(cfg Config, js jetstream.JetStream, m *enforce.Matcher, w *kv.Watcher, log *slog.Logger) *kv.SharedWriter {
	sc := cfg.Proxy.Snapshot.Shared
	if !sc.Enabled {
		return nil
	}
	return kv.NewSharedWriter(js, m, w, kv.SharedPolicy{Changes: sc.Changes, MaxAge: sc.MaxAge, Interval: cfg.Proxy.Snapshot.Interval}, log)
}

// awaitEnforcement is the start-up gate: it waits up to proxy.sync_timeout
// for w to hold the bucket's state (after a snapshot, the changes since
// it), logging progress. Past the timeout a fail-closed proxy does not
// start, and says how far the load got; a fail-open one serves with what
// it holds (its snapshot, if it had one) while the load goes on.
func awaitEnforcement(ctx context.Context, cfg Config, w *kv.Watcher, restored bool, log *slog.Logger) error {
	start := time.Now()
	deadline := start.Add(cfg.Proxy.SyncTimeout)
	nextLog := start.Add(progressEvery)
	for !w.Synced() {
		now := time.Now()
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if now.After(deadline) {
			read, total := w.Progress()
			if !cfg.Proxy.FailOpen {
				return fmt.Errorf("enforcement state not loaded within proxy.sync_timeout (%s): %d of %d messages read, and proxy.fail_open is false",
					cfg.Proxy.SyncTimeout, read, total)
			}
			if restored {
				log.Warn("serving from the local enforcement snapshot before the changes since are read (proxy.fail_open)", "read", read, "of", total)
			} else {
				log.Warn("serving before the enforcement state is loaded (proxy.fail_open)", "read", read, "of", total)
			}
			return nil
		}
		if now.After(nextLog) {
			read, total := w.Progress()
			log.Info("loading the enforcement state", "read", read, "of", total, "waited", now.Sub(start).Round(time.Second))
			nextLog = now.Add(progressEvery)
		}
		time.Sleep(5 * time.Millisecond)
	}
	// A full load leaves garbage the size of the state: give it back now
	// rather than holding twice the memory until the heap grows again.
	debug.FreeOSMemory()
	log.Info("enforcement state ready", "took", time.Since(start).Round(time.Millisecond), "from_snapshot", restored)
	return nil
}
