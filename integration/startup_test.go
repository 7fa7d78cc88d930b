package integration

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/apiguard/apiguard/internal/testutil"
	"github.com/apiguard/apiguard/pipeline/topology"
)

// TestProxyStartsWithoutNATS: fail-closed, a proxy that cannot reach NATS
// refuses to start and says why; fail-open, it serves, spools, and once NATS
// appears it declares the topology, loads the enforcement state and delivers
// every spooled event.
func TestProxyStartsWithoutNATS(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test; skipped with -short")
	}
	dir := t.TempDir()
	natsAddr := freeAddr(t)
	natsURL := "nats://" + natsAddr
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "ok")
	}))
	defer upstream.Close()

	t.Run("fail-closed refuses to start", func(t *testing.T) {
		cfg := filepath.Join(dir, "closed.yaml")
		if err := os.WriteFile(cfg, []byte("proxy:\n  sync_timeout: 1s\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		out, err := exec.CommandContext(ctx, binary, "proxy", "--config", cfg, "--nats", natsURL,
			"--listen", freeAddr(t), "--upstream", upstream.URL, "--spool-dir", filepath.Join(dir, "spool-closed")).CombinedOutput()
		if err == nil || !strings.Contains(string(out), "proxy.sync_timeout") {
			t.Fatalf("proxy started without its state, or said nothing useful: %v\n%s", err, out)
		}
	})

	t.Run("fail-open serves and catches up", func(t *testing.T) {
		cfg := filepath.Join(dir, "open.yaml")
		if err := os.WriteFile(cfg, []byte("proxy:\n  sync_timeout: 1s\n  fail_open: true\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		listen := freeAddr(t)
		start(t, "proxy", "proxy", "--config", cfg, "--nats", natsURL, "--listen", listen,
			"--upstream", upstream.URL, "--spool-dir", filepath.Join(dir, "spool-open"))
		const n = 25
		served := 0
		testutil.Eventually(t, 20*time.Second, func() bool {
			resp, err := http.Get("http://" + listen + "/items/1")
			if err != nil {
				return false
			}
			resp.Body.Close()
			if resp.StatusCode == 200 {
				served++
			}
			return served == n
		}, "proxy served %d of %d requests without NATS", func() any { return served }, n)

		_, portStr, _ := net.SplitHostPort(natsAddr)
		port, _ := strconv.Atoi(portStr)
		srv := testutil.JetStream(t, port, filepath.Join(dir, "nats"))
		_, js := testutil.Connect(t, srv)
		testutil.Eventually(t, 30*time.Second, func() bool {
			c, err := topology.EventCount(context.Background(), js)
			return err == nil && c == n
		}, "spooled events not delivered once NATS appeared")
		// Once the proxy has declared the bucket, an operator's block takes effect.
		var out string
		testutil.Eventually(t, 10*time.Second, func() bool {
			var err error
			out, err = tryApiguard("block", "--nats", natsURL, "ip", "127.0.0.1")
			return err == nil
		}, "block failed: %s", func() any { return out })
		testutil.Eventually(t, 10*time.Second, func() bool {
			resp, err := http.Get("http://" + listen + "/items/1")
			if err != nil {
				return false
			}
			resp.Body.Close()
			return resp.StatusCode == http.StatusForbidden
		}, "block not enforced after NATS appeared")
	})
}
