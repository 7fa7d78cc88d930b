package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/apiguard/apiguard/internal/testutil"
)

// TestClickHouseDSN checks what a DSN sets, from the flag, the config
// file and the environment, and that its refusals name the key and never
// show the password.
func TestClickHouseDSN(t *testing.T) {
	const pw = "s3nt1nel-ch-pass"
	for _, tc := range []struct {
		name              string
		args              []string // --clickhouse value, or a config file
		file, env         string
		addr              []string
		db, user, wantErr string
		password          string
		dial              time.Duration
	}{
		{name: "host:port", args: []string{"h1:9000,h2:9001"}, addr: []string{"h1:9000", "h2:9001"}, db: "apiguard", user: "default", dial: 5 * time.Second},
		{name: "full DSN", args: []string{"clickhouse://ag:" + pw + "@h1:9440/sec?dial_timeout=2s"},
			addr: []string{"h1:9440"}, db: "sec", user: "ag", password: pw, dial: 2 * time.Second},
		{name: "DSN with several hosts, no port, no database", args: []string{"clickhouse://h1,h2:9001?alt_hosts=h3:9002"},
			addr: []string{"h1:9000", "h2:9001", "h3:9002"}, db: "apiguard", user: "default", dial: 5 * time.Second},
		{name: "user and password as parameters", args: []string{"tcp://h1:9000?username=u&password=" + pw + "&database=d2"},
			addr: []string{"h1:9000"}, db: "d2", user: "u", password: pw, dial: 5 * time.Second},
		{name: "config key", file: "clickhouse:\n  dsn: clickhouse://u:" + pw + "@h9:9000/filedb\n",
			addr: []string{"h9:9000"}, db: "filedb", user: "u", password: pw, dial: 5 * time.Second},
		{name: "the flag over the config key", file: "clickhouse:\n  dsn: clickhouse://u:" + pw + "@h9:9000/filedb\n", args: []string{"h1:9000"},
			addr: []string{"h1:9000"}, db: "apiguard", user: "default", dial: 5 * time.Second},
		{name: "environment", env: "clickhouse://e@h7:9000/envdb", addr: []string{"h7:9000"}, db: "envdb", user: "e", dial: 5 * time.Second},
		{name: "unsupported parameter", args: []string{"clickhouse://u:" + pw + "@h1:9000?secure=true"}, wantErr: `clickhouse.dsn: parameter "secure" is not supported`},
		{name: "HTTP protocol", args: []string{"http://u:" + pw + "@h1:8123"}, wantErr: "clickhouse.dsn"},
		{name: "bad duration", args: []string{"clickhouse://u:" + pw + "@h1:9000?dial_timeout=soon"}, wantErr: "clickhouse.dsn"},
		{name: "bad database", args: []string{"clickhouse://u:" + pw + "@h1:9000/no-dashes"}, wantErr: "clickhouse.database"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var args []string
			if tc.file != "" {
				path := filepath.Join(t.TempDir(), "c.yaml")
				if err := os.WriteFile(path, []byte(tc.file), 0o600); err != nil {
					t.Fatal(err)
				}
				args = append(args, "--config", path)
			}
			if tc.env != "" {
				t.Setenv("APIGUARD_CLICKHOUSE_ADDR", tc.env)
			}
			if len(tc.args) > 0 {
				args = append(args, "--clickhouse", tc.args[0])
			}
			c := newCommon("test")
			cfg, err := c.load(args, clickhouseFlag(c))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("%v, want an error containing %q", err, tc.wantErr)
				}
				if strings.Contains(err.Error(), pw) {
					t.Errorf("the error shows the password: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			ch := cfg.ClickHouse
			if !slices.Equal(ch.Addr, tc.addr) || ch.Database != tc.db || ch.Username != tc.user || ch.Password.Reveal() != tc.password || ch.DialTimeout != tc.dial {
				t.Errorf("addr %v db %q user %q password %q dial %s, want %v %q %q %q %s", ch.Addr, ch.Database, ch.Username,
					ch.Password.Reveal(), ch.DialTimeout, tc.addr, tc.db, tc.user, tc.password, tc.dial)
			}
			// check-config shows it all, the password redacted.
			var out bytes.Buffer
			if err := run(context.Background(), "check-config", args, &out); err == nil && strings.Contains(out.String(), pw) {
				t.Errorf("check-config shows the password:\n%s", out.String())
			}
		})
	}
}

// TestMigrateWithDSN runs 'apiguard migrate' against a real ClickHouse
// with a user that has a password, given as a DSN: it creates the
// schema in the DSN's database; the wrong password is refused without
// being printed.
func TestMigrateWithDSN(t *testing.T) {
	srv := testutil.StartClickHouse(t)
	const pw = "s3nt1nel-migrate-pass"
	// Add a user with a password; the server rereads users.xml by itself.
	users := filepath.Join(srv.Dir, "users.xml")
	b, err := os.ReadFile(users)
	if err != nil {
		t.Fatal(err)
	}
	withUser := strings.Replace(string(b), "</users>", "<ops><password>"+pw+"</password><networks><ip>127.0.0.1</ip><ip>::1</ip></networks><profile>default</profile><quota>default</quota></ops></users>", 1)
	if err := os.WriteFile(users, []byte(withUser), 0o644); err != nil {
		t.Fatal(err)
	}
	// The server notices a change by the file's time, in seconds: one
	// within the second it read the file would go unseen.
	later := time.Now().Add(2 * time.Second)
	if err := os.Chtimes(users, later, later); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	dsn := "clickhouse://ops:" + pw + "@" + srv.Addr + "/dsn_db?dial_timeout=2s"
	var out bytes.Buffer
	var last error
	testutil.Eventually(t, 30*time.Second, func() bool {
		out.Reset()
		last = run(ctx, "migrate", []string{"--clickhouse", dsn}, &out)
		return last == nil
	}, "migrate with the DSN never succeeded: %v\n%s", func() any { return last }, func() any { return out.String() })
	if !strings.Contains(out.String(), "database dsn_db") {
		t.Errorf("migrate printed:\n%s", out.String())
	}
	if strings.Contains(out.String(), pw) {
		t.Errorf("migrate printed the password:\n%s", out.String())
	}
	wrong := strings.Replace(dsn, pw, "s3nt1nel-wrong", 1)
	err = run(ctx, "migrate", []string{"--clickhouse", wrong}, &out)
	if err == nil {
		t.Fatal("migrate with the wrong password succeeded")
	}
	if strings.Contains(err.Error(), "s3nt1nel-wrong") {
		t.Errorf("the error shows the password: %v", err)
	}
}
