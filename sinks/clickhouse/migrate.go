package clickhouse

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
)

// StepStatus says what Migrate did with one migration.
type StepStatus string

// Migration outcomes.
const (
	StepApplied StepStatus = "applied" // run now
	StepPresent StepStatus = "present" // run before
	StepSkipped StepStatus = "skipped" // not for this server or config; tried again next time
)

// Step is one migration's outcome.
type Step struct {
	Version int
	Name    string
	Status  StepStatus
	// Why explains a skip.
	Why string
}

// Migrate creates the database and applies every migration not yet
// recorded in schema_migrations, in order. Each statement is idempotent,
// so a run interrupted half way, or two runs at once, end in the same
// schema. retentionDays fills {retention_days}; 0 skips retention.
func (c *Client) Migrate(ctx context.Context, retentionDays int) ([]Step, error) {
	stmts := []string{
		"CREATE DATABASE IF NOT EXISTS " + c.db,
		`CREATE TABLE IF NOT EXISTS ` + c.db + `.schema_migrations (
    version UInt32,
    name String,
    applied_at DateTime
) ENGINE = ReplacingMergeTree() ORDER BY version`,
	}
	for _, s := range stmts {
		if err := c.conn.Exec(ctx, s); err != nil {
			return nil, fmt.Errorf("preparing migrations in %s: %w", c.db, err)
		}
	}
	done, err := c.appliedVersions(ctx)
	if err != nil {
		return nil, err
	}
	var steps []Step
	for _, m := range Migrations {
		st := Step{Version: m.Version, Name: m.Name}
		switch {
		case done[m.Version]:
			st.Status = StepPresent
		case !c.version.AtLeast(m.MinMajor, m.MinMinor):
			st.Status = StepSkipped
			st.Why = fmt.Sprintf("needs ClickHouse %d.%d or later, server is %s", m.MinMajor, m.MinMinor, c.version)
		case m.NeedsRetention && retentionDays == 0:
			st.Status = StepSkipped
			st.Why = "retention_days is 0 (keep everything)"
		default:
			if err := c.apply(ctx, m, retentionDays); err != nil {
				return steps, err
			}
			st.Status = StepApplied
		}
		steps = append(steps, st)
	}
	return steps, nil
}

func (c *Client) apply(ctx context.Context, m Migration, retentionDays int) error {
	r := strings.NewReplacer("{db}", c.db, "{retention_days}", strconv.Itoa(retentionDays))
	for i, s := range m.Statements {
		if err := c.conn.Exec(ctx, r.Replace(s)); err != nil {
			var exc *clickhouse.Exception
			if errors.As(err, &exc) && columnExists(exc) {
				continue
			}
			return fmt.Errorf("migration %d (%s), statement %d: %w", m.Version, m.Name, i+1, err)
		}
	}
	// A batch, not Exec with bound values: ClickHouse 18.16 never answers
	// the latter over the native protocol.
	b, err := c.conn.PrepareBatch(ctx, "INSERT INTO "+c.db+".schema_migrations (version, name, applied_at)")
	if err == nil {
		if err = b.Append(uint32(m.Version), m.Name, time.Now().UTC()); err == nil {
			err = b.Send()
		} else {
			_ = b.Abort()
		}
	}
	if err != nil {
		return fmt.Errorf("recording migration %d (%s): %w", m.Version, m.Name, err)
	}
	return nil
}

func (c *Client) appliedVersions(ctx context.Context) (map[int]bool, error) {
	rows, err := c.conn.Query(ctx, "SELECT DISTINCT version FROM "+c.db+".schema_migrations")
	if err != nil {
		return nil, fmt.Errorf("reading %s.schema_migrations: %w", c.db, err)
	}
	defer rows.Close()
	done := map[int]bool{}
	for rows.Next() {
		var v uint32
		if err := rows.Scan(&v); err != nil {
			return nil, fmt.Errorf("reading %s.schema_migrations: %w", c.db, err)
		}
		done[int(v)] = true
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("reading %s.schema_migrations: %w", c.db, err)
	}
	return done, nil
}

// CheckSchema returns an error naming the first migration that every
// server needs but this database lacks, so that a writer started before
// 'apiguard migrate' says so instead of failing row by row.
func (c *Client) CheckSchema(ctx context.Context) error {
	done, err := c.appliedVersions(ctx)
	if err != nil {
		return fmt.Errorf("%w (run 'apiguard migrate')", err)
	}
	for _, m := range Migrations {
		if m.MinMajor == 0 && !m.NeedsRetention && !done[m.Version] {
			return fmt.Errorf("database %s lacks migration %d (%s): run 'apiguard migrate'", c.db, m.Version, m.Name)
		}
	}
	return nil
}
