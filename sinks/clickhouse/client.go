package clickhouse

import (
	"context"
	"fmt"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// Version is a ClickHouse release number.
type Version struct{ Major, Minor, Patch uint64 }

// AtLeast reports whether v is major.minor or later.
func (v Version) AtLeast(major, minor uint64) bool {
	return v.Major > major || v.Major == major && v.Minor >= minor
}

func (v Version) String() string { return fmt.Sprintf("%d.%d.%d", v.Major, v.Minor, v.Patch) }

// Client is a connection pool to one ClickHouse deployment and the server
// version it reported.
type Client struct {
	conn    driver.Conn
	db      string
	version Version
}

// Open connects and asks the server for its version. It does not need the
// database to exist (Migrate creates it).
func Open(ctx context.Context, cfg Config) (*Client, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if !cfg.Enabled() {
		return nil, fmt.Errorf("clickhouse.addr: empty, storage is not configured")
	}
	conn, err := clickhouse.Open(&clickhouse.Options{
		Addr:        cfg.Addr,
		Auth:        clickhouse.Auth{Database: "default", Username: cfg.Username, Password: cfg.Password.Reveal()},
		DialTimeout: cfg.DialTimeout,
		Compression: &clickhouse.Compression{Method: clickhouse.CompressionLZ4},
	})
	if err != nil {
		return nil, fmt.Errorf("opening ClickHouse %v: %w", cfg.Addr, err)
	}
	if err := conn.Ping(ctx); err != nil {
		conn.Close()
		return nil, fmt.Errorf("connecting to ClickHouse %v: %w", cfg.Addr, err)
	}
	sv, err := conn.ServerVersion()
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("asking ClickHouse %v for its version: %w", cfg.Addr, err)
	}
	v := Version{sv.Version.Major, sv.Version.Minor, sv.Version.Patch}
	return &Client{conn: conn, db: cfg.Database, version: v}, nil
}

// Version is the server's release.
func (c *Client) Version() Version { return c.version }

// Database is the database apiguard's tables live in.
func (c *Client) Database() string { return c.db }

// Conn is the underlying connection pool, for queries of the caller's own.
func (c *Client) Conn() driver.Conn { return c.conn }

// Close closes the connections.
func (c *Client) Close() error { return c.conn.Close() }
