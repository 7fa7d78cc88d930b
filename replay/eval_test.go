package replay

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/apiguard/apiguard/detectors"
	"github.com/apiguard/apiguard/event"
	"github.com/apiguard/apiguard/internal/evaldata"
	"github.com/apiguard/apiguard/pipeline/responder"
)

// The product-path evaluations of detection on the real access logs
// (../shared/data/real-access-logs) and on generated days over many
// seeds. make test runs them with floors just under the figures
// docs/detection.md gives; make bench-detect runs them on every seed and
// prints the figures (-v, the lines starting "figures:").

var evalSeeds = flag.Int("seeds", 6, "generated days (seeds 1…N) that TestGeneratedSeeds backtests; make bench-detect uses 24")

var evalPartitions = flag.Int("partitions", 4, "partitions TestGeneratedSeeds backtests each generated day at (1 to compare with the pipeline's default 4)")

// importLog imports a real access log in the combined format, as
// `apiguard replay import --format combined` does, into memory.
func importLog(t testing.TB, file string) []byte {
	t.Helper()
	path := filepath.Join(evaldata.Dir(t, "real-access-logs"), file)
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out bytes.Buffer
	w, err := NewWriter(&out)
	if err != nil {
		t.Fatal(err)
	}
	cfg := DefaultImportConfig()
	cfg.Format = "combined"
	if _, err := Import(cfg, []Input{{Name: path, R: f}}, w); err != nil {
		t.Fatalf("importing %s: %v", path, err)
	}
	return out.Bytes()
}

// backtestBytes backtests a capture held in memory with the defaults and,
// if shop, the generated shop's declared inventory (as `apiguard replay
// backtest` does by default; the real logs have none).
func backtestBytes(t testing.TB, capture []byte, partitions int, shop bool) (*Result, []*event.RequestEvent) {
	t.Helper()
	r, err := NewReader(bytes.NewReader(capture), "capture")
	if err != nil {
		t.Fatal(err)
	}
	cfg := detectors.DefaultConfig()
	if shop {
		if cfg.Inventory.Ops, err = detectors.ParseOpenAPI(ShopOpenAPI); err != nil {
			t.Fatal(err)
		}
	}
	res, err := Backtest(r, BacktestConfig{Detectors: cfg, Partitions: partitions})
	if err != nil {
		t.Fatal(err)
	}
	return res, readAll(t, capture)
}

// flaggedClients returns, for every client principal ("kind:value") an
// anomaly named or listed as a member, the event time of the first.
func flaggedClients(res *Result) map[string]int64 {
	out := map[string]int64{}
	note := func(p *event.Principal, t int64) {
		if p.GetKind() == "" || p.GetKind() == event.KindAPI {
			return
		}
		k := p.Kind + ":" + p.Value
		if _, ok := out[k]; !ok {
			out[k] = t
		}
	}
	for _, a := range res.Anomalies {
		note(a.Principal, a.TimeUnixNano)
		for _, m := range a.Members {
			note(m, a.TimeUnixNano)
		}
	}
	return out
}

// TestRealLogsOrdinarySite: on an ordinary website's two days, at most
// 0.5% of client addresses are flagged, with one partition and with four.
func TestRealLogsOrdinarySite(t *testing.T) {
	capture := importLog(t, "elastic-semicomplete-17-18may2015.log.gz")
	for _, parts := range []int{1, 4} {
		res, evs := backtestBytes(t, capture, parts, false)
		clients := map[string]bool{}
		for _, ev := range evs {
			k, v := event.PrincipalOf(ev)
			clients[k+":"+v] = true
		}
		flagged := flaggedClients(res)
		share := float64(len(flagged)) / float64(len(clients))
		var names []string
		for k := range flagged {
			names = append(names, k)
		}
		slices.Sort(names)
		t.Logf("figures: ordinary site, %d partitions: %d of %d client addresses flagged (%.2f%%) %v", parts, len(flagged), len(clients), 100*share, names)
		if share > 0.005 {
			t.Errorf("%d partitions: %.2f%% of client addresses flagged, want ≤ 0.5%%", parts, 100*share)
		}
	}
}

// scannerUAs reads the OWASP CRS scanner User-Agent substrings
// (bot-ua-lists/crs-scanners-user-agents.data), lower-cased.
func scannerUAs(t testing.TB) []string {
	t.Helper()
	f, err := os.Open(filepath.Join(evaldata.Dir(t, "bot-ua-lists"), "crs-scanners-user-agents.data"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if l := strings.TrimSpace(sc.Text()); l != "" && !strings.HasPrefix(l, "#") {
			out = append(out, strings.ToLower(l))
		}
	}
	return out
}

// honeynetFigures are what TestRealLogsHoneynet measures.
type honeynetFigures struct {
	clients, missers, missersFlagged int
	scanners, scannersFlagged        int
	scannersAtFirst                  int
	medianToFlag                     float64 // requests, over flagged missers
}

func (f honeynetFigures) String() string {
	return fmt.Sprintf("%d clients; %d with ≥ 10 misses, %d flagged (%.1f%%), median %.0f requests to flag; %d scanner user agents, %d flagged (%d by their first request with it)",
		f.clients, f.missers, f.missersFlagged, 100*float64(f.missersFlagged)/float64(max(f.missers, 1)), f.medianToFlag,
		f.scanners, f.scannersFlagged, f.scannersAtFirst)
}

// measureHoneynet backtests the honeynet's log and measures, per client:
// its misses (403, 404, 405), whether and after how many of its requests
// it was first flagged, and whether it announced a scanner (and was
// flagged by its first request doing so).
func measureHoneynet(t testing.TB, capture []byte, parts int) honeynetFigures {
	res, evs := backtestBytes(t, capture, parts, false)
	scanners := scannerUAs(t)
	flagged := flaggedClients(res)
	type client struct {
		n, misses, toFlag int
		scanner           bool
		scannerAt         int64 // event time of its first request with a scanner's user agent
	}
	cs := map[string]*client{}
	var order []string
	for _, ev := range evs {
		k, v := event.PrincipalOf(ev)
		key := k + ":" + v
		c := cs[key]
		if c == nil {
			c = &client{}
			cs[key] = c
			order = append(order, key)
		}
		c.n++
		if ev.Status == 403 || ev.Status == 404 || ev.Status == 405 {
			c.misses++
		}
		ua := strings.ToLower(ev.UserAgent)
		for _, s := range scanners {
			if ua != "" && strings.Contains(ua, s) && !c.scanner {
				c.scanner, c.scannerAt = true, ev.TimeUnixNano
			}
		}
		if at, ok := flagged[key]; ok && c.toFlag == 0 && ev.TimeUnixNano >= at {
			c.toFlag = c.n
		}
	}
	var f honeynetFigures
	var delays []float64
	for _, key := range order {
		c := cs[key]
		f.clients++
		if c.misses >= 10 {
			f.missers++
			if c.toFlag > 0 {
				f.missersFlagged++
				delays = append(delays, float64(c.toFlag))
			}
		}
		if c.scanner {
			f.scanners++
			if c.toFlag > 0 {
				f.scannersFlagged++
			}
			if at, ok := flagged[key]; ok && at <= c.scannerAt {
				f.scannersAtFirst++
			}
		}
	}
	if len(delays) > 0 {
		slices.Sort(delays)
		f.medianToFlag = delays[len(delays)/2]
	}
	return f
}

// TestRealLogsHoneynet: on a honeynet's two months of scanners and worms,
// clients with 10 or more misses are flagged, fast, and so is every
// client announcing a scanner, at its first request.
func TestRealLogsHoneynet(t *testing.T) {
	capture := importLog(t, "honeynet-2004-apr-may.log.gz")
	for _, parts := range []int{1, 4} {
		f := measureHoneynet(t, capture, parts)
		t.Logf("figures: honeynet, %d partitions: %s", parts, f)
		if share := float64(f.missersFlagged) / float64(max(f.missers, 1)); share < honeynetFloor {
			t.Errorf("%d partitions: %.1f%% of clients with ≥ 10 misses flagged, want ≥ %.0f%%", parts, 100*share, 100*honeynetFloor)
		}
		if f.medianToFlag > honeynetMaxMedian {
			t.Errorf("%d partitions: median %.0f requests to flag, want ≤ %d", parts, f.medianToFlag, honeynetMaxMedian)
		}
		if f.scannersAtFirst < f.scanners {
			t.Errorf("%d partitions: %d of %d scanner user agents flagged at their first request, want all", parts, f.scannersAtFirst, f.scanners)
		}
	}
}

// Floors of TestRealLogsHoneynet, just under what docs/detection.md gives.
const (
	honeynetFloor     = 0.97
	honeynetMaxMedian = 5
)

// TestGeneratedSeeds backtests generated days on seeds 1…-seeds (four
// partitions, or -partitions) and requires, on every seed, macro precision and recall of
// at least seedFloor and no legitimate principal flagged. It logs the
// median and the worst seed.
func TestGeneratedSeeds(t *testing.T) {
	if testing.Short() {
		t.Skip("backtests whole generated days; skipped with -short")
	}
	var ps, rs []float64
	for seed := 1; seed <= *evalSeeds; seed++ {
		var buf bytes.Buffer
		w, _ := NewWriter(&buf)
		cfg := DefaultGenConfig()
		cfg.Seed = uint64(seed)
		if _, err := Generate(cfg, w); err != nil {
			t.Fatal(err)
		}
		res, _ := backtestBytes(t, buf.Bytes(), *evalPartitions, true)
		ps, rs = append(ps, res.MacroPrecision), append(rs, res.MacroRecall)
		var missed []string
		for l := range res.Missed {
			missed = append(missed, l)
		}
		slices.Sort(missed)
		t.Logf("seed %d: macro precision %.3f, recall %.3f, legitimate principals flagged %d %v, missed %v", seed,
			res.MacroPrecision, res.MacroRecall, res.FalsePositivePrincipals, res.FalsePositives, missed)
		if res.MacroPrecision < seedFloor || res.MacroRecall < seedFloor {
			t.Errorf("seed %d: macro precision %.3f, recall %.3f, want both ≥ %.2f", seed, res.MacroPrecision, res.MacroRecall, seedFloor)
		}
		for _, fp := range res.FalsePositives {
			t.Errorf("seed %d: legitimate principal flagged: %s", seed, fp)
		}
	}
	med := func(v []float64) float64 { s := slices.Clone(v); slices.Sort(s); return s[len(s)/2] }
	t.Logf("figures: %d seeds: macro precision median %.3f, worst %.3f; macro recall median %.3f, worst %.3f",
		len(ps), med(ps), slices.Min(ps), med(rs), slices.Min(rs))
}

// usedWhileActed reports whether normal traffic used a principal (at the
// event times uses) from the first anomaly or action on it until a day
// later, the longest an escalated entry lasts (escalation.max_ttl): a
// block can only refuse those requests. A visitor at an address hours
// before a bot used it is no collateral of the bot's block.
func usedWhileActed(uses []int64, first time.Time) bool {
	from, to := first.UnixNano(), first.Add(24*time.Hour).UnixNano()
	for _, t := range uses {
		if t >= from && t <= to {
			return true
		}
	}
	return false
}

// seedFloor is the macro precision and recall every seed must reach.
const seedFloor = 0.96

// TestNoCollateral: on generated days, the responder (its defaults, four
// partitions) blocks or throttles nothing that normal traffic uses: no
// normal principal, address, network or fingerprint. The contact-form spam of the campaign kind
// comes from the shop's most common browser, so its fingerprint is shared
// and only the spamming addresses the campaign finding names may be
// blocked, never the fingerprint or the people behind it.
func TestNoCollateral(t *testing.T) {
	if testing.Short() {
		t.Skip("backtests whole generated days; skipped with -short")
	}
	seeds := min(*evalSeeds, 3) // make test; -seeds N given: all N
	flag.Visit(func(f *flag.Flag) {
		if f.Name == "seeds" {
			seeds = *evalSeeds
		}
	})
	for seed := 1; seed <= seeds; seed++ {
		var buf bytes.Buffer
		w, _ := NewWriter(&buf)
		cfg := DefaultGenConfig()
		cfg.Seed = uint64(seed)
		if _, err := Generate(cfg, w); err != nil {
			t.Fatal(err)
		}
		// Whatever normal traffic used: its principals, addresses, /24
		// networks and fingerprints, and when. Blocking any of them while
		// people use it refuses them.
		normal := map[string][]int64{}
		r, _ := NewReader(bytes.NewReader(buf.Bytes()), "day")
		for {
			var ev event.RequestEvent
			label, err := r.Next(&ev)
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			if label == "" {
				k, v := event.PrincipalOf(&ev)
				ip, _ := netip.AddrFromSlice(ev.ClientIp)
				net, _ := ip.Prefix(24)
				for _, p := range []string{k + ":" + v, "ip:" + ip.String(), "cidr:" + net.String(), "fp:" + event.ClientFingerprintOf(&ev)} {
					normal[p] = append(normal[p], ev.TimeUnixNano)
				}
			}
		}
		res, _ := backtestBytes(t, buf.Bytes(), 4, true)
		acts := &Actions{}
		rc := responder.DefaultConfig()
		rc.Partitions = 4
		vs, err := Judge(context.Background(), res, responder.New(rc, acts, acts, acts.Now, slog.New(slog.DiscardHandler)), acts)
		if err != nil {
			t.Fatal(err)
		}
		blocked := vs.Blocked()
		var members int
		for _, p := range blocked {
			switch {
			case !usedWhileActed(normal[p], vs[p].First):
			default:
				t.Errorf("seed %d: %s blocked, and normal traffic uses it: %s", seed, p, vs[p].Why)
			}
			if strings.Contains(vs[p].Why, "attacking member") {
				members++
			}
		}
		t.Logf("figures: seed %d: %d principals blocked or throttled, %d of them as attacking members of a shared principal", seed, len(blocked), members)
	}
}
