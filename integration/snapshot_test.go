package integration

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/apiguard/apiguard/enforce"
	"github.com/apiguard/apiguard/enforce/kv"
	"github.com/apiguard/apiguard/internal/testutil"
	"github.com/apiguard/apiguard/pipeline/topology"
)

// snapshotEntries is how many entries the bucket holds in
// TestProxySnapshotRestart.
const snapshotEntries = 100_000

// TestProxySnapshotRestart: a proxy saves its enforcement state when it
// stops; restarted with 100,000 entries in the bucket, it reads the
// snapshot and only the changes made since, and from its first request
// answers right for a sample (blocked addresses and networks 403, the
// rest and a deleted entry pass, an entry put while it was down 403). A
// snapshot that is damaged, or of another bucket, is ignored with a log
// line that says so, and the bucket is loaded whole.
func TestProxySnapshotRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test; skipped with -short")
	}
	ctx := context.Background()
	dir := t.TempDir()
	srv := testutil.JetStream(t, testutil.FreePort(t), filepath.Join(dir, "nats"))
	_, js := testutil.Connect(t, srv)
	bucket, err := topology.Ensure(ctx, js, topology.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	w := kv.NewWriter(js, bucket)
	now := time.Now()
	// 90% addresses (10.x.y.z), 10% networks (172.16-31.x.0/24 … as /24s
	// of 100.64.0.0/10), every second one with a TTL.
	ipOf := func(i int) string { return fmt.Sprintf("10.%d.%d.%d", i>>16&255, i>>8&255, i&255) }
	netOf := func(i int) string { return fmt.Sprintf("100.%d.%d.0/24", 64+i>>8&63, i&255) }
	var entries []enforce.Entry
	for i := range snapshotEntries {
		e := enforce.Entry{Kind: enforce.KindIP, Value: ipOf(i), Action: enforce.ActionBlock, Reason: "feed", Created: now}
		if i%10 == 9 {
			e = enforce.Entry{Kind: enforce.KindCIDR, Value: netOf(i / 10), Action: enforce.ActionBlock, Reason: "feed", Created: now}
		}
		if i%2 == 0 {
			e.Expires = now.Add(time.Hour)
		}
		entries = append(entries, e)
	}
	if n, err := w.PutBulk(ctx, entries, now); err != nil || n != len(entries) {
		t.Fatalf("PutBulk: %d, %v", n, err)
	}

	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "ok") }))
	defer upstream.Close()
	cfg := filepath.Join(dir, "proxy.yaml")
	if err := os.WriteFile(cfg, []byte("proxy:\n  trusted_proxies: [\"127.0.0.1/32\"]\n  sync_timeout: 60s\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	spool := filepath.Join(dir, "state", "spool")
	snap := filepath.Join(dir, "state", "enforcement.snap") // the default: beside the spool
	natsURL := srv.ClientURL()
	// run starts a proxy and waits until it listens.
	run := func(t *testing.T, name string) (*process, string) {
		t.Helper()
		listen := freeAddr(t)
		p := start(t, name, "proxy", "--config", cfg, "--nats", natsURL, "--listen", listen, "--upstream", upstream.URL,
			"--spool-dir", spool, "--metrics-listen", "off", "--admin-listen", "off")
		testutil.Eventually(t, 60*time.Second, func() bool { return strings.Contains(p.output(), "proxy listening") },
			"%s never listened", name)
		return p, listen
	}
	client := &http.Client{Timeout: 10 * time.Second}
	// status asks the proxy once for a request from addr.
	status := func(t *testing.T, listen, addr string) int {
		t.Helper()
		req, _ := http.NewRequest("GET", "http://"+listen+"/items/1", nil)
		req.Header.Set("X-Forwarded-For", addr)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	// check asks, from the first request on, about a sample of the
	// entries and of addresses no entry covers.
	check := func(t *testing.T, listen string, extra map[string]int) {
		t.Helper()
		want := map[string]int{}
		for i := 0; i < snapshotEntries; i += snapshotEntries / 200 {
			if i%10 == 9 {
				want[strings.Replace(netOf(i/10), ".0/24", ".77", 1)] = 403
			} else if i != 1000 { // deleted below
				want[ipOf(i)] = 403
			}
		}
		for i := range 50 {
			want[fmt.Sprintf("192.0.2.%d", i+1)] = 200
		}
		for a, code := range extra {
			want[a] = code
		}
		bad := 0
		for a, code := range want {
			if got := status(t, listen, a); got != code {
				bad++
				if bad <= 5 {
					t.Errorf("%s: status %d, want %d", a, got, code)
				}
			}
		}
		if bad > 0 {
			t.Errorf("%d of %d answers wrong", bad, len(want))
		}
	}

	p1, _ := run(t, "first proxy")
	p1.stop(t)
	if !strings.Contains(p1.output(), "enforcement state loaded") {
		t.Fatalf("first proxy did not load the bucket:\n%s", p1.output())
	}
	if _, err := os.Stat(snap); err != nil {
		t.Fatalf("no snapshot after the first proxy stopped: %v", err)
	}

	// Changes while no proxy runs: a put and a delete.
	if _, err := w.Put(ctx, enforce.Entry{Kind: enforce.KindIP, Value: "198.51.100.9", Action: enforce.ActionBlock, Created: now}, now); err != nil {
		t.Fatal(err)
	}
	if err := w.Delete(ctx, enforce.KindIP, ipOf(1000)); err != nil {
		t.Fatal(err)
	}
	changed := map[string]int{"198.51.100.9": 403, ipOf(1000): 200}

	t.Run("from the snapshot", func(t *testing.T) {
		p, listen := run(t, "restarted proxy")
		check(t, listen, changed)
		out := p.output()
		if !strings.Contains(out, "enforcement snapshot read") || !strings.Contains(out, "enforcement state caught up") ||
			strings.Contains(out, "enforcement state loaded") {
			t.Errorf("restarted proxy did not start from its snapshot:\n%s", out)
		}
		p.stop(t)
	})

	t.Run("damaged snapshot", func(t *testing.T) {
		data, err := os.ReadFile(snap)
		if err != nil {
			t.Fatal(err)
		}
		good := bytes.Clone(data)
		data[len(data)/2] ^= 0xff
		if err := os.WriteFile(snap, data, 0o600); err != nil {
			t.Fatal(err)
		}
		p, listen := run(t, "proxy with a damaged snapshot")
		check(t, listen, changed)
		out := p.output()
		if !strings.Contains(out, "ignoring the enforcement snapshot: it is damaged") || !strings.Contains(out, "checksum") ||
			!strings.Contains(out, "enforcement state loaded") {
			t.Errorf("damaged snapshot not reported as ignored, or no full load:\n%s", out)
		}
		p.stop(t)
		// A snapshot of another bucket: the same state, said to be of a
		// bucket made at another time, with an entry this bucket lacks.
		b, info, err := enforce.Restore(good, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		m := enforce.NewMatcher()
		m.Load(b)
		m.Apply([]enforce.Change{enforce.Put(enforce.Entry{Kind: enforce.KindIP, Value: "192.0.2.250", Action: enforce.ActionBlock})})
		var foreign bytes.Buffer
		pos := enforce.Position{Source: "KV_APIGUARD_ENFORCEMENT@2001-01-01T00:00:00Z", Revision: info.Position.Revision}
		if err := m.Save(&foreign, pos, time.Now()); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(snap, foreign.Bytes(), 0o600); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("snapshot of another bucket", func(t *testing.T) {
		p, listen := run(t, "proxy with another bucket's snapshot")
		extra := map[string]int{"192.0.2.250": 200}
		for a, c := range changed {
			extra[a] = c
		}
		check(t, listen, extra)
		out := p.output()
		if !strings.Contains(out, "ignoring the enforcement snapshot: it is of another bucket") || !strings.Contains(out, "enforcement state loaded") {
			t.Errorf("another bucket's snapshot not reported as ignored, or no full load:\n%s", out)
		}
	})

	// The shared snapshot: a proxy that has loaded the bucket uploads it
	// (checking every second here), and a proxy with an empty state
	// directory starts from it and the changes since, without a full load.
	t.Run("shared snapshot", func(t *testing.T) {
		fast := filepath.Join(dir, "proxy-fast.yaml")
		if err := os.WriteFile(fast, []byte("proxy:\n  trusted_proxies: [\"127.0.0.1/32\"]\n  sync_timeout: 60s\n  enforcement_snapshot:\n    interval: 1s\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		runIn := func(t *testing.T, name, state string) (*process, string) {
			t.Helper()
			listen := freeAddr(t)
			p := start(t, name, "proxy", "--config", fast, "--nats", natsURL, "--listen", listen, "--upstream", upstream.URL,
				"--spool-dir", filepath.Join(dir, state, "spool"), "--metrics-listen", "off", "--admin-listen", "off")
			testutil.Eventually(t, 60*time.Second, func() bool { return strings.Contains(p.output(), "proxy listening") },
				"%s never listened", name)
			return p, listen
		}
		up, _ := runIn(t, "uploading proxy", "state-up")
		testutil.Eventually(t, 30*time.Second, func() bool { return strings.Contains(up.output(), "shared enforcement snapshot uploaded") },
			"the proxy never uploaded the shared snapshot:\n%s", up.output())
		up.stop(t)
		if _, err := w.Put(ctx, enforce.Entry{Kind: enforce.KindIP, Value: "198.51.100.10", Action: enforce.ActionBlock, Created: now}, now); err != nil {
			t.Fatal(err)
		}
		extra := map[string]int{"198.51.100.10": 403}
		for a, c := range changed {
			extra[a] = c
		}
		p, listen := runIn(t, "proxy with an empty state directory", "state-new")
		check(t, listen, extra)
		out := p.output()
		if !strings.Contains(out, "shared enforcement snapshot read") || !strings.Contains(out, "enforcement state caught up") ||
			strings.Contains(out, "enforcement state loaded") {
			t.Errorf("a proxy with no local snapshot did not start from the shared one:\n%s", out)
		}
		p.stop(t)
	})
}

// TestBlockFile: 'apiguard block --file' writes every principal a list
// names, spares one an allow entry covers and names it, and audits the
// whole list as one action; a list with a bad line is refused with its
// line, exit 2, and nothing written or audited.
func TestBlockFile(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test; skipped with -short")
	}
	srv := testutil.JetStream(t, -1, t.TempDir())
	url := srv.ClientURL()
	_, js := testutil.Connect(t, srv)
	ensureTopology(t, js)
	apiguard(t, "allow", "--nats", url, "--reason", "a partner", "ip", "10.0.0.3")
	dir := t.TempDir()
	feed := filepath.Join(dir, "feed.txt")
	list := "# a threat feed\n10.0.0.1\n10.0.0.2 ; SBL1\n10.0.0.3\n10.1.0.0/16\nkey leaked-1\n"
	if err := os.WriteFile(feed, []byte(list), 0o600); err != nil {
		t.Fatal(err)
	}
	before := len(auditRows(t, js))
	out := apiguard(t, "block", "--nats", url, "--file", feed, "--ttl", "1h", "--reason", "threat feed")
	if !strings.Contains(out, "block 5 principals from feed.txt") || !strings.Contains(out, ": 4 written") ||
		!strings.Contains(out, "spared ip 10.0.0.3") {
		t.Errorf("block --file said:\n%s", out)
	}
	rows := auditRows(t, js)
	if len(rows) != before+1 {
		t.Fatalf("%d actions audited, want one", len(rows)-before)
	}
	if a := rows[len(rows)-1]; a.Target.GetKind() != "list" || !strings.Contains(a.Reason, "4 written") || !strings.HasSuffix(a.Reason, "; threat feed") {
		t.Errorf("bulk action: %+v", a)
	}
	blocks := apiguard(t, "blocks", "--nats", url)
	for _, v := range []string{"10.0.0.1", "10.0.0.2", "10.1.0.0/16", "leaked-1"} {
		if !strings.Contains(blocks, v) {
			t.Errorf("blocks does not list %s:\n%s", v, blocks)
		}
	}

	bad := filepath.Join(dir, "bad.txt")
	if err := os.WriteFile(bad, []byte("10.0.0.9\n\nexample.com\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out, code := exitCode(t, "block", "--nats", url, "--file", bad)
	if code != 2 || !strings.Contains(out, `bad.txt:3: "example.com" is neither an address nor a network`) {
		t.Errorf("bad list: exit %d:\n%s", code, out)
	}
	if n := len(auditRows(t, js)); n != before+1 {
		t.Errorf("a refused list was audited (%d actions)", n-before-1)
	}
	if strings.Contains(apiguard(t, "blocks", "--nats", url), "10.0.0.9") {
		t.Error("an address of a refused list was written")
	}
}
