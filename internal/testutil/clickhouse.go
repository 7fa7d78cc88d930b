package testutil

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
)

// RequireServersEnv, when set to 1, turns a missing server binary into a
// test failure instead of a skip. CI sets it, so that no test it expects to
// run is skipped there.
const RequireServersEnv = "APIGUARD_REQUIRE_SERVERS"

// NeedBinary returns the path of a server binary the test needs. When it is
// missing the test is skipped, or fails where RequireServersEnv is 1.
func NeedBinary(t testing.TB, name, pkg string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err == nil {
		return path
	}
	for _, dir := range []string{"/usr/sbin", "/usr/bin", "/usr/local/bin"} {
		p := filepath.Join(dir, name)
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	msg := fmt.Sprintf("%s not found: install the Debian package %s (apt-get install %s)", name, pkg, pkg)
	if os.Getenv(RequireServersEnv) == "1" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// ClickHouse is a real ClickHouse server run by a test: its own data
// directory and loopback port, stopped when the test ends. Stop and Start
// let a test take it away and bring it back on the same port, with the
// same data.
type ClickHouse struct {
	// Addr is host:port of the native protocol.
	Addr string
	// Dir holds the config and the data.
	Dir string

	t      testing.TB
	bin    string
	cmd    *exec.Cmd
	exited chan error
}

// StartClickHouse starts clickhouse-server (Debian's package) on a free
// port and waits until it answers a query.
func StartClickHouse(t testing.TB) *ClickHouse {
	t.Helper()
	bin := NeedBinary(t, "clickhouse-server", "clickhouse-server")
	dir := t.TempDir()
	tcp, http := FreePort(t), FreePort(t)
	if err := writeClickHouseConfig(dir, tcp, http); err != nil {
		t.Fatalf("writing ClickHouse config: %v", err)
	}
	ch := &ClickHouse{Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(tcp)), Dir: dir, t: t, bin: bin}
	ch.Start()
	t.Cleanup(ch.Stop)
	return ch
}

// Start starts the server (again) and waits until it answers.
func (c *ClickHouse) Start() {
	c.t.Helper()
	if c.cmd != nil {
		return
	}
	log, err := os.OpenFile(filepath.Join(c.Dir, "server.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		c.t.Fatalf("opening ClickHouse log: %v", err)
	}
	defer log.Close()
	cmd := exec.Command(c.bin, "--config-file="+filepath.Join(c.Dir, "config.xml"))
	cmd.Dir = c.Dir
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		c.t.Fatalf("starting clickhouse-server: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	c.cmd, c.exited = cmd, exited
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := ping(c.Addr)
		if err == nil {
			return
		}
		select {
		case e := <-exited:
			out, _ := os.ReadFile(filepath.Join(c.Dir, "server.log"))
			c.cmd = nil
			c.t.Fatalf("clickhouse-server exited at start (%v):\n%s", e, out)
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			c.Stop()
			c.t.Fatalf("clickhouse-server did not answer within 30s: %v", err)
		}
	}
}

// Stop stops the server (SIGTERM, then SIGKILL after 10s) and waits for it
// to exit. It is a no-op when the server is not running.
func (c *ClickHouse) Stop() {
	if c.cmd == nil {
		return
	}
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.exited:
	case <-time.After(10 * time.Second):
		_ = c.cmd.Process.Kill()
		<-c.exited
	}
	c.cmd = nil
}

func ping(addr string) error {
	conn, err := clickhouse.Open(&clickhouse.Options{Addr: []string{addr}, DialTimeout: time.Second})
	if err != nil {
		return err
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := conn.Ping(ctx); err != nil {
		return err
	}
	return nil
}

// writeClickHouseConfig writes a minimal server config: loopback only, the
// given ports, every path under dir, a passwordless default user limited
// to loopback.
func writeClickHouseConfig(dir string, tcp, http int) error {
	config := fmt.Sprintf(`<?xml version="1.0"?>
<yandex>
  <logger><level>warning</level><console>1</console></logger>
  <tcp_port>%d</tcp_port>
  <http_port>%d</http_port>
  <listen_host>127.0.0.1</listen_host>
  <path>%[3]s/data/</path>
  <tmp_path>%[3]s/tmp/</tmp_path>
  <user_files_path>%[3]s/user_files/</user_files_path>
  <format_schema_path>%[3]s/format_schemas/</format_schema_path>
  <mark_cache_size>268435456</mark_cache_size>
  <uncompressed_cache_size>268435456</uncompressed_cache_size>
  <max_concurrent_queries>100</max_concurrent_queries>
  <users_config>users.xml</users_config>
  <default_profile>default</default_profile>
  <default_database>default</default_database>
  <timezone>UTC</timezone>
  <mlock_executable>false</mlock_executable>
</yandex>
`, tcp, http, dir)
	users := `<?xml version="1.0"?>
<yandex>
  <profiles><default><max_memory_usage>2000000000</max_memory_usage></default></profiles>
  <users><default><password></password><networks><ip>127.0.0.1</ip><ip>::1</ip></networks><profile>default</profile><quota>default</quota></default></users>
  <quotas><default><interval><duration>3600</duration><queries>0</queries><errors>0</errors><result_rows>0</result_rows><read_rows>0</read_rows><execution_time>0</execution_time></interval></default></quotas>
</yandex>
`
	if err := os.WriteFile(filepath.Join(dir, "config.xml"), []byte(config), 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "users.xml"), []byte(users), 0o644)
}
