package integration

import (
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/apiguard/apiguard/event"
	"github.com/apiguard/apiguard/internal/testutil"
)

// TestUnblockWithoutEntry: unblock (and unallow) of a principal that has
// no entry says so, exits 1 and writes no audit row; unblock does not
// remove an allow entry, nor unallow a block.
func TestUnblockWithoutEntry(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test; skipped with -short")
	}
	srv := testutil.JetStream(t, -1, t.TempDir())
	url := srv.ClientURL()
	_, js := testutil.Connect(t, srv)
	ensureTopology(t, js)

	apiguard(t, "block", "--nats", url, "--reason", "a test", "key", "blocked-key")
	apiguard(t, "allow", "--nats", url, "--reason", "a partner", "ip", "198.51.100.7")
	before := len(auditRows(t, js))
	for _, tc := range []struct {
		args []string
		says string
	}{
		{[]string{"unblock", "key", "nobody"}, "no enforcement entry for key nobody"},
		{[]string{"unallow", "key", "nobody"}, "no enforcement entry for key nobody"},
		{[]string{"unblock", "ip", "198.51.100.7"}, "allow entry"},
		{[]string{"unallow", "key", "blocked-key"}, "block"},
	} {
		args := append([]string{tc.args[0], "--nats", url}, tc.args[1:]...)
		out, code := exitCode(t, args...)
		if code != 1 || !strings.Contains(out, tc.says) {
			t.Errorf("apiguard %s: exit %d, output %q; want 1 and %q", strings.Join(tc.args, " "), code, out, tc.says)
		}
	}
	if n := len(auditRows(t, js)); n != before {
		t.Errorf("refused removals wrote %d audit rows", n-before)
	}
	blocks := apiguard(t, "blocks", "--nats", url)
	if !strings.Contains(blocks, "blocked-key") || !strings.Contains(blocks, "198.51.100.7") {
		t.Errorf("a refused removal removed an entry:\n%s", blocks)
	}
	apiguard(t, "unblock", "--nats", url, "key", "blocked-key")
	apiguard(t, "unallow", "--nats", url, "ip", "198.51.100.7")
	rows := auditRows(t, js)
	if len(rows) != before+2 || rows[before].Kind != event.ActionKind_ACTION_UNBLOCK || rows[before+1].Kind != event.ActionKind_ACTION_UNALLOW {
		t.Errorf("audit after the removals: %v", rows[before:])
	}
	if out := apiguard(t, "blocks", "--nats", url); !strings.Contains(out, "0 entries") {
		t.Errorf("entries left:\n%s", out)
	}
}

// TestAllowSparesBlocks runs the proxy and the pipeline as separate
// processes: an operator allows a key, then neither an operator's block
// nor the responder, seeing the key hammer POST /orders, blocks it; both
// are audited as dry-run with the allow's reason. Once the allow entry is
// removed, the responder blocks the key.
func TestAllowSparesBlocks(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test; skipped with -short")
	}
	dir := t.TempDir()
	srv := testutil.JetStream(t, -1, filepath.Join(dir, "nats"))
	natsURL := srv.ClientURL()
	_, js := testutil.Connect(t, srv)
	ensureTopology(t, js)
	upstream := echoUpstream(t)
	cfgPath := writeConfig(t, dir, config)

	out := apiguard(t, "allow", "--nats", natsURL, "--ttl", "1h", "--reason", "the partner's load test", "key", "partner")
	if !strings.Contains(out, "allowed key partner") {
		t.Errorf("allow said %q", out)
	}
	if out := apiguard(t, "blocks", "--nats", natsURL); !strings.Contains(out, "allow") || !strings.Contains(out, "partner") {
		t.Errorf("blocks does not list the allow entry:\n%s", out)
	}
	// An operator's block of the allowed key is refused and audited as dry-run.
	out, code := exitCode(t, "block", "--nats", natsURL, "key", "partner")
	if code != 1 || !strings.Contains(out, "allowed") || !strings.Contains(out, "apiguard unallow key partner") {
		t.Errorf("block of an allowed key: exit %d, %q; want 1, saying it is allowed and how to remove the allow", code, out)
	}

	base, _ := startLoop(t, dir, cfgPath, natsURL, upstream.URL)
	pool := &clients{base: base}
	serving(t, pool.add(t, "probe"))
	var normals []*client
	for i := range 12 {
		normals = append(normals, pool.add(t, fmt.Sprintf("client-%02d", i)))
	}
	stopNormal := normalTraffic(len(normals), func(i, k int) { normals[i].normal(k) })
	defer stopNormal()
	time.Sleep(baselineWarmUp)

	// The allowed key hammers POST /orders: the responder flags it and spares it.
	partner := pool.add(t, "partner")
	spared := func() *event.Action {
		for _, a := range auditRows(t, js) {
			if a.Target.GetValue() == "partner" && a.AnomalyId != "" {
				return a
			}
		}
		return nil
	}
	deadline := time.Now().Add(20 * time.Second)
	for spared() == nil && time.Now().Before(deadline) {
		for range 50 {
			partner.do("POST", "/orders")
			time.Sleep(10 * time.Millisecond)
		}
	}
	a := spared()
	if a == nil {
		t.Fatalf("no responder action on the allowed key within 20s; statuses %v", partner.statuses)
	}
	if !a.DryRun || !strings.Contains(a.Reason, "allowed by") || !strings.Contains(a.Reason, "the partner's load test") {
		t.Errorf("responder action on the allowed key: dry_run %v, reason %q", a.DryRun, a.Reason)
	}
	if n := partner.count(http.StatusForbidden); n != 0 {
		t.Errorf("the allowed key was refused %d times", n)
	}
	var operatorRow bool
	for _, r := range auditRows(t, js) {
		if r.Target.GetValue() == "partner" && r.AnomalyId == "" && r.Kind == event.ActionKind_ACTION_BLOCK {
			operatorRow = r.DryRun && strings.Contains(r.Reason, "allowed by")
		}
	}
	if !operatorRow {
		t.Error("the operator's refused block is not audited as dry-run with the allow")
	}

	// Without the allow entry, the responder blocks it (after its cooldown).
	apiguard(t, "unallow", "--nats", natsURL, "key", "partner")
	t.Logf("key blocked %s after its allow entry was removed", hammer(t, partner))
}
