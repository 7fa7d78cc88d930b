// Package clickhouse stores apiguard's request events, anomalies, actions,
// per-minute rollups and baseline snapshots in ClickHouse over the native
// protocol (clickhouse-go v2). It owns the schema and its versioned
// migrations and a batched writer that is idempotent by id.
//
// The schema runs on ClickHouse 18.16 (Debian's package) and on current
// releases: it uses no LowCardinality, DateTime64, IPv6 type, TTL or
// toStartOfInterval, and every insert names its columns. Migrations that
// need a newer server (retention TTLs, skip indexes) say so and are applied
// once the server is new enough.
package clickhouse

import (
	"fmt"
	"net"
	"regexp"
	"time"

	"github.com/apiguard/apiguard/internal/secret"
)

// Config says where ClickHouse is and how to write to it.
type Config struct {
	// Addr lists host:port of the native protocol (9000 by default); empty
	// disables storage.
	Addr []string `yaml:"addr"`
	// Database holds apiguard's tables; migrate creates it.
	Database string `yaml:"database"`
	Username string `yaml:"username"`
	// Password prints redacted; $APIGUARD_CLICKHOUSE_PASSWORD sets it
	// without writing it in the file.
	Password secret.String `yaml:"password"`
	// DialTimeout bounds a connection attempt.
	DialTimeout time.Duration `yaml:"dial_timeout"`
	// BatchSize is the most rows in one insert.
	BatchSize int `yaml:"batch_size"`
	// FlushInterval is the longest a row waits for its batch to fill.
	FlushInterval time.Duration `yaml:"flush_interval"`
	// Parallel is how many inserts per table may run at once: two overlap
	// encoding the next batch with the server's work on the last.
	Parallel int `yaml:"parallel"`
	// BaselineInterval is how much event time passes between baseline
	// snapshots of each partition's detectors.
	BaselineInterval time.Duration `yaml:"baseline_interval"`
	// AutoMigrate applies the migrations when a writer starts; otherwise
	// a writer refuses to start on a database that lacks them.
	AutoMigrate bool `yaml:"auto_migrate"`
	// RetentionDays is how long events, rollups and baselines are kept on
	// servers that support TTLs (anomalies and actions, the audit trail,
	// are kept until an operator removes them). 0 keeps everything.
	RetentionDays int `yaml:"retention_days"`
}

// DefaultConfig returns the defaults: storage off, database "apiguard",
// batches of 50,000 rows or one second, two inserts in flight per table.
// ClickHouse prefers few large inserts: at 10,000 rows a batch the writer
// is a third slower (docs/benchmarks.md).
func DefaultConfig() Config {
	return Config{
		Database:         "apiguard",
		Username:         "default",
		DialTimeout:      5 * time.Second,
		BatchSize:        50000,
		FlushInterval:    time.Second,
		Parallel:         2,
		BaselineInterval: time.Minute,
		RetentionDays:    90,
	}
}

// Enabled reports whether storage is configured.
func (c Config) Enabled() bool { return len(c.Addr) > 0 }

var identifier = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,62}$`)

// Validate reports the first bad field by its config key.
func (c Config) Validate() error {
	for i, a := range c.Addr {
		if _, _, err := net.SplitHostPort(a); err != nil {
			return fmt.Errorf("clickhouse.addr[%d]: %q: %w", i, a, err)
		}
	}
	switch {
	case !identifier.MatchString(c.Database):
		return fmt.Errorf("clickhouse.database: %q, want letters, digits and _ (not starting with a digit)", c.Database)
	case c.DialTimeout <= 0:
		return fmt.Errorf("clickhouse.dial_timeout: must be positive")
	case c.BatchSize < 1 || c.BatchSize > 1_000_000:
		return fmt.Errorf("clickhouse.batch_size: %d, want 1 to 1000000", c.BatchSize)
	case c.Parallel < 1 || c.Parallel > 16:
		return fmt.Errorf("clickhouse.parallel: %d, want 1 to 16", c.Parallel)
	case c.FlushInterval <= 0:
		return fmt.Errorf("clickhouse.flush_interval: must be positive")
	case c.BaselineInterval < time.Second:
		return fmt.Errorf("clickhouse.baseline_interval: %s, want at least 1s", c.BaselineInterval)
	case c.RetentionDays < 0:
		return fmt.Errorf("clickhouse.retention_days: %d, want 0 (keep) or more", c.RetentionDays)
	}
	return nil
}
