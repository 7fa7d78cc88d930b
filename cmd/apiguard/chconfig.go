package main

import (
	"fmt"
	"net"
	"net/url"
	"slices"
	"strings"

	chgo "github.com/ClickHouse/clickhouse-go/v2"

	"github.com/apiguard/apiguard/internal/secret"
	"github.com/apiguard/apiguard/sinks/clickhouse"
)

// ClickHouseConfig is the storage section: clickhouse.Config, and a data
// source name that gives its address, credentials and database in one
// value.
type ClickHouseConfig struct {
	clickhouse.Config `yaml:",inline"`
	// DSN is clickhouse-go's data source name,
	// clickhouse://user:password@host:9000[,host:9000…]/database?dial_timeout=5s.
	// When set it replaces addr, and username, password, database and
	// dial_timeout where it gives them. It prints redacted;
	// $APIGUARD_CLICKHOUSE_DSN sets it without writing it in the file.
	DSN secret.URL `yaml:"dsn"`
}

// dsnParams are the DSN parameters apiguard applies. Others (secure,
// compress, server settings) are refused rather than ignored.
var dsnParams = []string{"alt_hosts", "database", "dial_timeout", "password", "username"}

// set applies a --clickhouse value or $APIGUARD_CLICKHOUSE_ADDR: a DSN
// (it has a scheme) or host:port addresses, comma separated.
func (c *ClickHouseConfig) set(v string) {
	if strings.Contains(v, "://") {
		c.DSN = secret.URL(v)
		return
	}
	c.DSN = ""
	c.Addr = strings.Split(v, ",")
}

// applyDSN parses the DSN, if any, into the fields it sets. Its errors
// never show the password: the DSN prints redacted, and clickhouse-go's
// parse errors redact it too.
func (c *ClickHouseConfig) applyDSN() error {
	if c.DSN == "" {
		return nil
	}
	raw := c.DSN.Reveal()
	const want = "want clickhouse://[user[:password]@]host:port[,host:port…][/database][?dial_timeout=5s]"
	scheme, rest, ok := strings.Cut(raw, "://")
	if !ok || (scheme != "clickhouse" && scheme != "tcp") {
		return fmt.Errorf("clickhouse.dsn: %s: %s (the native protocol)", c.DSN, want)
	}
	if _, query, ok := strings.Cut(rest, "?"); ok {
		vals, err := url.ParseQuery(query)
		if err != nil {
			return fmt.Errorf("clickhouse.dsn: %s: its query does not parse", c.DSN)
		}
		for k := range vals {
			if !slices.Contains(dsnParams, k) {
				return fmt.Errorf("clickhouse.dsn: parameter %q is not supported (apiguard applies %s)", k, strings.Join(dsnParams, ", "))
			}
		}
	}
	o, err := chgo.ParseDSN(raw)
	if err != nil {
		return fmt.Errorf("clickhouse.dsn: %s: %w", c.DSN, err)
	}
	c.Addr = c.Addr[:0:0]
	for _, a := range o.Addr {
		if a = strings.TrimSpace(a); a == "" {
			continue
		}
		if _, _, err := net.SplitHostPort(a); err != nil {
			a = net.JoinHostPort(a, "9000") // the native protocol's port
		}
		c.Addr = append(c.Addr, a)
	}
	if len(c.Addr) == 0 {
		return fmt.Errorf("clickhouse.dsn: %s: no host; %s", c.DSN, want)
	}
	if o.Auth.Username != "" {
		c.Username = o.Auth.Username
	}
	if o.Auth.Password != "" {
		c.Password = secret.String(o.Auth.Password)
	}
	if o.Auth.Database != "" {
		c.Database = o.Auth.Database
	}
	if o.DialTimeout > 0 {
		c.DialTimeout = o.DialTimeout
	}
	return nil
}
