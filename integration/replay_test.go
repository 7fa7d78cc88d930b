package integration

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/apiguard/apiguard/detectors"
	"github.com/apiguard/apiguard/event"
	"github.com/apiguard/apiguard/internal/testutil"
	"github.com/apiguard/apiguard/replay"
)

var updateCaptures = flag.Bool("update-captures", false, "regenerate integration/testdata/captures from `apiguard replay generate`")

// recorded is a recorded attack kept as a test: a capture of one
// campaign and the other traffic around it, and the attacker's principal.
type recorded struct {
	name     string
	label    string        // the generator's campaign; "" for an imported log (update-captures)
	lead     time.Duration // other traffic kept before the campaign
	attacker string
}

// honeynetLog is the real honeynet web server's access log
// (../shared/data/real-access-logs/README.md).
const honeynetLog = "../../shared/data/real-access-logs/honeynet-2004-apr-may.log.gz"

// recordedAttacks are the captures in testdata/captures (update-captures
// makes them). The generated ones are cut from the day `apiguard replay
// generate --seed 7` writes: the campaign, the normal traffic of the lead
// before it and of a minute after it. The honeynet one holds a real
// scanner, from `apiguard replay import --format combined` of the
// honeynet log: the first 4,000 requests of a WebDAV scanner that sent
// 6,152 in five and a half minutes (1 May 2004), at their own pace, moved
// into the generated day's normal traffic (withScanner).
var recordedAttacks = []recorded{
	{"scan", "probing/0", 10 * time.Minute, "ip:13.191.36.35"},
	{"stuffing", "credential_stuffing/0", 20 * time.Minute, "ip:43.73.2.148"},
	{"scraper", "scraping/0", 10 * time.Minute, "ip:6.119.91.111"},
	{"stolen-token", "stolen_token/0", 10 * time.Minute, "sub:user-v0"},
	{"honeynet-webdav-scan", "", 10 * time.Minute, "ip:82.82.97.119"},
}

// speed is how much faster than recorded the captures are replayed
// through the loop; liveConfig shortens every detector duration by it.
const speed = 20

// liveConfig is the detectors' defaults with every duration divided by
// speed and the per-minute floor multiplied by it, so that the pipeline
// sees at speed×, on its clock, what the defaults see on the capture's.
func liveConfig() string {
	d := detectors.DefaultConfig()
	s := func(v time.Duration) string { return (v / speed).String() }
	return fmt.Sprintf(`
nats:
  partitions: 1
proxy:
  routes: ["GET /products/{id}", "GET /orders/{id}", "GET /users/{id}", "POST /login", "POST /orders", "POST /cart/items"]
  trusted_proxies: ["127.0.0.1/32"]
  fail_open: false
emit:
  flush_interval: 2ms
detectors:
  windows: [%s, %s, %s]
  cooldown: %s
  idle_after: %s
  risk_half_life: %s
  volumetric: {min_per_minute: %g}
  stolen_token: {overlap: %s}
  bot_timing: {max_mean_gap: %s}
responder:
  block_ttl: 10m
log:
  level: info
`, s(d.Windows[0]), s(d.Windows[1]), s(d.Windows[2]), s(d.Cooldown), s(d.IdleAfter), s(d.RiskHalfLife),
		d.Volumetric.MinPerMinute*speed, s(d.Stolen.Overlap), s(d.Timing.MaxMeanGap))
}

// TestRecordedAttacks replays each recorded attack through a running
// proxy and pipeline (separate processes, embedded JetStream) at 20× its
// pace, behind a stub upstream that answers what the capture recorded,
// and asserts that the attacker ends up blocked (refused by the proxy
// and listed by `apiguard blocks`) and that no other principal is ever
// refused or blocked. Offline, the same capture must flag the attacker
// and no one else (replay.AssertDetected).
func TestRecordedAttacks(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test; skipped with -short")
	}
	if *updateCaptures {
		makeCaptures(t)
	}
	for _, ra := range recordedAttacks {
		t.Run(ra.name, func(t *testing.T) {
			// Each replay mostly waits on its capture's pace, in its own
			// loop (JetStream, proxy, pipeline on their own ports): they
			// run side by side.
			t.Parallel()
			file := filepath.Join("testdata", "captures", ra.name+".capture")
			if st, err := os.Stat(file); err != nil || st.Size() > 1<<20 {
				t.Fatalf("capture %s: %v (want a file under 1 MiB; -update-captures makes it)", file, err)
			}
			replay.AssertDetected(t, file, detectors.DefaultConfig(), ra.attacker)
			replayThroughLoop(t, file, ra.attacker)
		})
	}
}

// replayThroughLoop runs the loop, replays file through it and checks
// who was refused and blocked.
func replayThroughLoop(t *testing.T, file, attacker string) {
	dir := t.TempDir()
	srv := testutil.JetStream(t, testutil.FreePort(t), filepath.Join(dir, "nats"))
	natsURL := srv.ClientURL()
	up := httptest.NewServer(replay.EchoUpstream("X-Replay-Echo"))
	defer up.Close()
	cfgPath := filepath.Join(dir, "apiguard.yaml")
	if err := os.WriteFile(cfgPath, []byte(liveConfig()), 0o600); err != nil {
		t.Fatal(err)
	}
	listen := freeAddr(t)
	start(t, "pipeline", "pipeline", "--config", cfgPath, "--nats", natsURL)
	start(t, "proxy", "proxy", "--config", cfgPath, "--nats", natsURL, "--listen", listen,
		"--upstream", up.URL, "--spool-dir", filepath.Join(dir, "spool"))
	target := "http://" + listen
	testutil.Eventually(t, 20*time.Second, func() bool {
		out, err := tryApiguard("replay", "send", file, "--target", target, "--limit", "1", "--speed", "max")
		return err == nil && strings.Contains(out, `"sent":1`)
	}, "proxy never answered a replayed request")

	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := replay.NewReader(f, file)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	rep, err := replay.Send(ctx, r, replay.SendConfig{Target: target, Speed: speed, Concurrency: 16,
		APIKeyHeader: "X-API-Key", ForwardedFor: true, EchoHeader: "X-Replay-Echo"})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%s", rep.Summary())
	if rep.Errors > 0 {
		t.Errorf("%d requests failed at the transport: %s", rep.Errors, rep.FirstError)
	}
	// The proxy's refusals are its own 401 (a revoked token), 403 and 429
	// problem answers; the capture's own 401 and 403 come back from the
	// stub upstream, so a principal counts as refused when it got more of
	// them than the capture recorded. A stolen token's thief is refused
	// by the revocation (401) and by its address's block (403), whichever
	// the proxy applies first.
	recorded := recordedRefusals(t, file)
	refused := func(p string) int {
		st := rep.Principals[p]
		return st[401] + st[403] + st[429] - recorded[p]
	}
	// The generated scanner presents Nuclei's user agent, which the bot
	// check refuses from its first request: for it, the block the loop
	// wrote is what `apiguard blocks` shows below.
	if refused(attacker) <= 0 {
		t.Errorf("attacker %s never refused by the proxy; its answers %v", attacker, rep.Principals[attacker])
	}
	for p := range rep.Principals {
		if p != attacker && refused(p) > 0 {
			t.Errorf("%s is not the attacker and was refused %d times; its answers %v", p, refused(p), rep.Principals[p])
		}
	}
	kind, value, _ := strings.Cut(attacker, ":")
	// A stolen credential is never sanctioned itself, which would lock its
	// owner out: the policy revokes the thief's token and blocks its
	// address, the anomaly's members, and their reason names the credential.
	credential := kind == event.KindSub || kind == event.KindKey
	out := apiguard(t, "blocks", "--nats", natsURL)
	found := false
	for _, line := range strings.Split(out, "\n")[1:] {
		f := strings.Fields(line)
		if len(f) < 3 || f[2] != "block" && f[2] != "throttle" && f[2] != "revoke" {
			continue
		}
		switch {
		case f[0] == kind && f[1] == value && credential:
			t.Errorf("blocks lists the stolen credential %s itself, which refuses its owner:\n%s", attacker, out)
		case f[0] == kind && f[1] == value, credential && strings.Contains(line, kind+" "+value):
			found = true
		default:
			t.Errorf("blocks lists %s %s, not the attacker:\n%s", f[0], f[1], out)
		}
	}
	if !found {
		t.Errorf("blocks does not list the attacker %s:\n%s", attacker, out)
	}
}

// recordedRefusals counts, per principal, the 401, 403 and 429 answers the
// capture itself recorded.
func recordedRefusals(t *testing.T, file string) map[string]int {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := replay.NewReader(f, file)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int{}
	for ev := new(event.RequestEvent); ; {
		_, err := r.Next(ev)
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		if ev.Status == 401 || ev.Status == 403 || ev.Status == 429 {
			k, v := event.PrincipalOf(ev)
			out[k+":"+v]++
		}
	}
}

// captured is one record of a capture.
type captured struct {
	ev    *event.RequestEvent
	label string
}

// readAll reads a whole capture, and the first and last event time of
// each label and of each principal.
func readAll(t *testing.T, file string) (all []captured, span map[string][2]int64) {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := replay.NewReader(f, file)
	if err != nil {
		t.Fatal(err)
	}
	span = map[string][2]int64{}
	see := func(key string, at int64) {
		s, ok := span[key]
		if !ok {
			s[0] = at
		}
		s[1] = at
		span[key] = s
	}
	for {
		ev := new(event.RequestEvent)
		label, err := r.Next(ev)
		if errors.Is(err, io.EOF) {
			return all, span
		}
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, captured{ev, label})
		if label != "" {
			see(label, ev.TimeUnixNano)
		}
		k, v := event.PrincipalOf(ev)
		see(k+":"+v, ev.TimeUnixNano)
	}
}

// makeCaptures writes testdata/captures from a generated day and the
// honeynet log (recordedAttacks says how).
func makeCaptures(t *testing.T) {
	t.Helper()
	day := filepath.Join(t.TempDir(), "day.capture")
	apiguard(t, "replay", "generate", "--seed", "7", "--out", day)
	honey := filepath.Join(t.TempDir(), "honeynet.capture")
	apiguard(t, "replay", "import", "--format", "combined", honeynetLog, "--out", honey)
	generated, genSpan := readAll(t, day)
	imported, _ := readAll(t, honey)
	for _, ra := range recordedAttacks {
		all, s := generated, genSpan[ra.label]
		if ra.label == "" {
			all, s = withScanner(generated, imported, ra.attacker)
		}
		if s[0] == 0 {
			t.Fatalf("%s: no campaign %q or principal %s in its source", ra.name, ra.label, ra.attacker)
		}
		from, to := s[0]-int64(ra.lead), s[1]+int64(time.Minute)
		var buf bytes.Buffer
		w, err := replay.NewWriter(&buf)
		if err != nil {
			t.Fatal(err)
		}
		for _, x := range all {
			if x.ev.TimeUnixNano >= from && x.ev.TimeUnixNano <= to && (x.label == "" || x.label == ra.label || x.label == honeynetLabel) {
				if err := w.Write(x.ev, x.label); err != nil {
					t.Fatal(err)
				}
			}
		}
		if err := w.Flush(); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join("testdata", "captures", ra.name+".capture"), buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// honeynetLabel labels the honeynet scanner's requests in its capture.
const honeynetLabel = "probing/honeynet"

// maxScannerRequests keeps the honeynet capture under 1 MiB.
const maxScannerRequests = 4000

// withScanner returns the generated day's normal traffic with the first
// requests of the honeynet scanner attacker moved into it, four hours into
// the day (past the detectors' warm-up), keeping their own pace; and the
// time span of those requests. The honeynet served almost nothing but
// attacks, so its own clients' 404 share (96%) is no baseline for what
// normal clients do: the real scanner is judged against normal traffic.
func withScanner(generated, imported []captured, attacker string) ([]captured, [2]int64) {
	var scan []captured
	for _, x := range imported {
		if k, v := event.PrincipalOf(x.ev); k+":"+v == attacker && len(scan) < maxScannerRequests {
			scan = append(scan, x)
		}
	}
	if len(scan) == 0 {
		return nil, [2]int64{}
	}
	at := replay.DefaultGenConfig().Start.Add(4 * time.Hour).UnixNano()
	first := scan[0].ev.TimeUnixNano
	var out []captured
	for _, x := range generated {
		if x.label == "" {
			out = append(out, x)
		}
	}
	for _, x := range scan {
		x.ev.TimeUnixNano = at + x.ev.TimeUnixNano - first
		out = append(out, captured{x.ev, honeynetLabel})
	}
	slices.SortStableFunc(out, func(a, b captured) int { return cmp.Compare(a.ev.TimeUnixNano, b.ev.TimeUnixNano) })
	return out, [2]int64{at, scan[len(scan)-1].ev.TimeUnixNano}
}
