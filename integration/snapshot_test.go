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
}
