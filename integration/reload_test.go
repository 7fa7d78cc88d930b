package integration

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/apiguard/apiguard/internal/testutil"
)

// TestProxyReloadsOnSIGHUP runs the proxy as a process, rewrites its
// config and sends SIGHUP: the new config applies to the next requests
// without a restart. A broken config on the next SIGHUP is refused, the
// process logs why, and the last good config keeps running.
func TestProxyReloadsOnSIGHUP(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test; skipped with -short")
	}
	dir := t.TempDir()
	srv := testutil.JetStream(t, -1, "")
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "upstream")
	}))
	defer upstream.Close()
	cfgPath := filepath.Join(dir, "apiguard.yaml")
	write := func(decoys string) {
		t.Helper()
		cfg := "nats:\n  partitions: 2\nproxy:\n  routes: [\"GET /items/{id}\"]\n  decoys:\n    paths: " + decoys + "\n"
		if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("[]")
	listen := freeAddr(t)
	p := start(t, "proxy", "proxy", "--config", cfgPath, "--nats", srv.ClientURL(), "--listen", listen,
		"--upstream", upstream.URL, "--spool-dir", filepath.Join(dir, "spool"), "--metrics-listen", "off")
	status := func(path string) int {
		resp, err := http.Get("http://" + listen + path)
		if err != nil {
			return 0
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	testutil.Eventually(t, 20*time.Second, func() bool { return status("/trap") == http.StatusOK }, "proxy never served /trap from the upstream")

	write(`["/trap"]`)
	if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 10*time.Second, func() bool { return status("/trap") == http.StatusNotFound },
		"after SIGHUP, /trap is still served: the new decoy did not apply")
	if got := status("/items/1"); got != http.StatusOK {
		t.Errorf("an ordinary request after the reload: %d", got)
	}

	// A broken config is refused; the decoy stays.
	if err := os.WriteFile(cfgPath, []byte("proxy:\n  decoys:\n    paths: [\"no-slash\"]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 10*time.Second, func() bool { return strings.Contains(p.output(), "proxy.decoys.paths[0]") },
		"the refused reload was not logged with the key at fault")
	if got := status("/trap"); got != http.StatusNotFound {
		t.Errorf("after a refused reload /trap gives %d: the last good config was lost", got)
	}
}
