package proxy

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/apiguard/apiguard/enforce"
)

// SnapshotConfig configures the proxy's local copy of the enforcement
// state: it is saved with the KV revision it covers, and a proxy that
// starts reads it, then only what changed in the bucket since, instead of
// the whole bucket.
type SnapshotConfig struct {
	// Path is the file; "" puts it beside the event spool
	// (<emit.spool_dir>/../enforcement.snap), "off" disables it.
	Path string `yaml:"path"`
	// Interval is how often the state is saved while it changes; it is
	// also saved when the proxy stops.
	Interval time.Duration `yaml:"interval"`
	// Shared is the snapshot proxies share through NATS, from which a
	// proxy without a usable local snapshot starts.
	Shared SharedSnapshotConfig `yaml:"shared"`
}

// SharedSnapshotConfig configures the shared snapshot (the object store
// APIGUARD_ENFORCEMENT_SNAPSHOTS): a proxy reads it at start when it is
// newer than its local snapshot, and a proxy whose state is complete
// replaces it when it is Changes revisions behind, or MaxAge old and
// behind. Proxies check every enforcement_snapshot.interval, with jitter.
type SharedSnapshotConfig struct {
	// Enabled reads and writes the shared snapshot.
	Enabled bool `yaml:"enabled"`
	// Changes is how many revisions behind the stored snapshot may fall.
	Changes uint64 `yaml:"changes"`
	// MaxAge is how old it may get while the state changes.
	MaxAge time.Duration `yaml:"max_age"`
}

// DefaultSnapshotConfig saves beside the spool every 30 seconds, and
// shares a snapshot replaced 50,000 changes or 5 minutes behind.
func DefaultSnapshotConfig() SnapshotConfig {
	return SnapshotConfig{Interval: 30 * time.Second,
		Shared: SharedSnapshotConfig{Enabled: true, Changes: 50000, MaxAge: 5 * time.Minute}}
}

// Validate reports the first bad field by its config key.
func (c SnapshotConfig) Validate() error {
	switch {
	case c.Interval < time.Second:
		return fmt.Errorf("proxy.enforcement_snapshot.interval: %s, want at least 1s", c.Interval)
	case c.Shared.Enabled && c.Shared.Changes < 1:
		return fmt.Errorf("proxy.enforcement_snapshot.shared.changes: %d, want at least 1", c.Shared.Changes)
	case c.Shared.Enabled && c.Shared.MaxAge < time.Second:
		return fmt.Errorf("proxy.enforcement_snapshot.shared.max_age: %s, want at least 1s", c.Shared.MaxAge)
	}
	return nil
}

// Enabled reports whether the state is saved and read.
func (c SnapshotConfig) Enabled() bool { return c.Path != "off" }

// File returns the snapshot's path, given the event spool directory.
func (c SnapshotConfig) File(spoolDir string) string {
	if c.Path != "" {
		return c.Path
	}
	return filepath.Join(filepath.Dir(filepath.Clean(spoolDir)), "enforcement.snap")
}

// ReadSnapshot reads the state saved at path into a Builder, leaving out
// entries expired at now. A missing file is (nil, false), logged as such; a
// file that cannot be used (corrupt, truncated, another format) is logged
// as ignored, with why, and is (nil, false): the caller reads the shared
// snapshot or loads the whole bucket. Whether the file is of the bucket the proxy reads is for the
// watcher to judge (enforce/kv.Watcher.Resume).
func ReadSnapshot(path string, now time.Time, log *slog.Logger) (*enforce.Builder, enforce.SaveInfo, bool) {
	start := time.Now()
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		log.Info("no local enforcement snapshot", "path", path)
		return nil, enforce.SaveInfo{}, false
	}
	if err != nil {
		log.Warn("ignoring the enforcement snapshot: cannot read it", "path", path, "err", err)
		return nil, enforce.SaveInfo{}, false
	}
	b, info, err := enforce.Restore(data, now)
	if err != nil {
		log.Warn("ignoring the enforcement snapshot: it is damaged", "path", path, "err", err)
		return nil, enforce.SaveInfo{}, false
	}
	log.Info("enforcement snapshot read", "path", path, "entries", b.Len(), "expired", info.Expired,
		"revision", info.Position.Revision, "saved", info.Saved.Format(time.RFC3339), "took", time.Since(start).Round(time.Millisecond))
	return b, info, true
}

// PositionSource says what state a Matcher holds (enforce/kv.Watcher).
type PositionSource interface {
	// Position returns the bucket and revision the matcher holds, and
	// false while it does not hold the bucket's state.
	Position() (enforce.Position, bool)
}

// SnapshotSaver saves a Matcher's state to a file while it changes and
// when it stops. Save replaces the file atomically (a temporary file,
// synced, then renamed), so a crash leaves the previous snapshot.
type SnapshotSaver struct {
	path     string
	interval time.Duration
	m        *enforce.Matcher
	pos      PositionSource
	log      *slog.Logger
	saved    enforce.Position
}

// NewSnapshotSaver returns a saver of m's state, at the positions pos
// reports, to path.
func NewSnapshotSaver(path string, interval time.Duration, m *enforce.Matcher, pos PositionSource, log *slog.Logger) *SnapshotSaver {
	return &SnapshotSaver{path: path, interval: interval, m: m, pos: pos, log: log}
}

// Run saves every interval when the state changed, and once more when ctx
// ends; it returns then. Errors are logged: a proxy without a snapshot
// still works, it starts slower.
func (s *SnapshotSaver) Run(ctx context.Context) error {
	t := time.NewTicker(s.interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			s.saveIfChanged()
			return nil
		case <-t.C:
			s.saveIfChanged()
		}
	}
}

func (s *SnapshotSaver) saveIfChanged() {
	// The position is read before the matcher: the state saved is then at
	// least as new as the revision it claims, and replaying changes the
	// matcher already holds is harmless.
	p, ok := s.pos.Position()
	if !ok || p == s.saved {
		return
	}
	start := time.Now()
	if err := s.Save(p); err != nil {
		s.log.Warn("saving the enforcement snapshot", "path", s.path, "err", err)
		return
	}
	s.saved = p
	s.log.Debug("enforcement snapshot saved", "path", s.path, "entries", s.m.Len(), "revision", p.Revision,
		"took", time.Since(start).Round(time.Millisecond))
}

// Save writes the matcher's state at p to the file now.
func (s *SnapshotSaver) Save(p enforce.Position) error {
	if err := os.MkdirAll(filepath.Dir(s.path), 0o750); err != nil {
		return fmt.Errorf("saving enforcement snapshot: %w", err)
	}
	f, err := os.CreateTemp(filepath.Dir(s.path), filepath.Base(s.path)+".*.tmp")
	if err != nil {
		return fmt.Errorf("saving enforcement snapshot: %w", err)
	}
	defer os.Remove(f.Name()) // after the rename, a no-op
	if err := s.m.Save(f, p, time.Now()); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("saving enforcement snapshot: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("saving enforcement snapshot: %w", err)
	}
	if err := os.Rename(f.Name(), s.path); err != nil {
		return fmt.Errorf("saving enforcement snapshot: %w", err)
	}
	return nil
}
