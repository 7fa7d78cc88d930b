package replay

import (
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strconv"
	"time"

	"github.com/apiguard/apiguard/event"
)

// GenConfig configures Generate.
type GenConfig struct {
	// Seed makes the traffic: the same seed gives the same file.
	Seed uint64
	// Start and Duration bound the traffic's event time. Attacks start
	// after the first two hours (the detectors' warm-up) and end an hour
	// before the end.
	Start    time.Time
	Duration time.Duration
	// Scale multiplies the normal population (1: about 1,700 browser and
	// app sessions, 8 partners and 2 batch jobs a day).
	Scale float64
	// Campaigns is how many campaigns of each attack kind run.
	Campaigns int
}

// DefaultGenConfig is a day from 06:00 UTC, three campaigns of each kind.
func DefaultGenConfig() GenConfig {
	return GenConfig{Start: time.Date(2026, 1, 5, 6, 0, 0, 0, time.UTC), Duration: 24 * time.Hour, Scale: 1, Campaigns: 3}
}

// Attack kinds, which are also the labels' prefixes and the names of the
// detectors expected to find them.
var AttackKinds = []string{"volumetric", "credential_stuffing", "stolen_token", "enumeration", "scraping",
	"probing", "bot_timing", "parameters", "shadow_api", "error_latency", "campaign", "sequence"}

// GenStats summarises what Generate wrote.
type GenStats struct {
	Events    int            `json:"events"`
	Labelled  int            `json:"labelled"`
	Campaigns map[string]int `json:"campaigns"`
}

// item is one generated event and its label.
type item struct {
	ev    *event.RequestEvent
	label string
	seq   int // generation order, to break time ties stably
}

// gen holds the generator's state while it runs.
type gen struct {
	cfg    GenConfig
	rng    *rand.Rand
	items  []item
	start  int64 // ns
	end    int64
	nets   []netip.Prefix // residential /24s
	dc     []netip.Prefix // datacenter /24s
	orders map[string][]int
	nextOr int
}

// client is what a program looks like to the proxy.
type client struct {
	ua, hdr, ja4, lang string
	ip                 netip.Addr
}

// Browsers, apps and tools. The header-order and TLS strings stand for
// what the proxy computes; what matters is which clients share them.
var (
	chrome  = client{ua: "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36", hdr: "h1:6c1f0a9e2b7d4c3a", ja4: "t13d1516h2_8daaf6152771_02713d6af862", lang: "en-US,en;q=0.9"}
	firefox = client{ua: "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0", hdr: "h1:91be0c44d2a7f310", ja4: "t13d1715h2_5b57614c22b0_3d5424432f57", lang: "en-GB,en;q=0.5"}
	safari  = client{ua: "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_6) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Safari/605.1.15", hdr: "h1:2fd87a0c61e5b9d4", ja4: "t13d2014h2_a09f3c656075_14788d8d241b", lang: "fr-FR,fr;q=0.9"}
	android = client{ua: "okhttp/4.12.0", hdr: "h1:0b5e7d1c9a3f6e28", ja4: "t13d1512h2_8daaf6152771_e5627efa2ab1", lang: "de-DE"}
	ios     = client{ua: "Shop/5.2.1 CFNetwork/1494.0.7 Darwin/23.4.0", hdr: "h1:c47a20e5b18f9d63", ja4: "t13d2013h2_a09f3c656075_e42f34c56612", lang: "en-US"}
	oldApp  = client{ua: "Shop/3.9.0 CFNetwork/1220.1 Darwin/20.3.0", hdr: "h1:c47a20e5b18f9d63", ja4: "t13d2013h2_a09f3c656075_e42f34c56612", lang: "en-US"}
	goCli   = client{ua: "Go-http-client/2.0", hdr: "h1:5d0e8f3b7c2a9146", ja4: "t13d1311h2_f57a46bbacb6_ab7e3b40a677"}
	javaCli = client{ua: "Apache-HttpClient/5.3 (Java/21)", hdr: "h1:7e3a9c15d2b40f86", ja4: "t13d1714h2_2a284e3b0c56_b1d5b4c1f3a2"}
	// The attack tool copies Chrome's user agent; its header order and
	// ClientHello are Python's.
	tool = client{ua: chrome.ua, hdr: "h1:a3f90b6d18c5e247", ja4: "t13d1812h1_85036bcba153_375ca2c5e164", lang: "en-US,en;q=0.9"}
	curl = client{ua: "curl/8.11.0", hdr: "h1:3e1b5c7a9d0f2468", ja4: "t13d3112h2_e8f1e7e78f70_6bebaf5329ac"}
	// The spam tool: a headless client with Chrome's user agent.
	spamTool = client{ua: chrome.ua, hdr: "h1:e07b3c95a1d2f846", ja4: "t13d1516h2_8daaf6152771_9b2a8c0e3f71", lang: "en-US"}
	scanner  = client{ua: "Mozilla/5.0 (compatible; Nuclei - Open-source project (github.com/projectdiscovery/nuclei))", hdr: "h1:4c8e2a6f0b3d5719", ja4: "t13d3113h2_e8f1e7e78f70_ce5650b735ce"}
)

// Generate writes labelled synthetic traffic to w in event-time order and
// returns what it wrote.
func Generate(cfg GenConfig, w *Writer) (GenStats, error) {
	if cfg.Duration < 4*time.Hour {
		return GenStats{}, fmt.Errorf("replay generate: duration %s, want at least 4h (2h warm-up, attacks, 1h after)", cfg.Duration)
	}
	if cfg.Scale <= 0 || cfg.Campaigns < 0 {
		return GenStats{}, fmt.Errorf("replay generate: scale %g and campaigns %d, want > 0 and ≥ 0", cfg.Scale, cfg.Campaigns)
	}
	g := &gen{cfg: cfg, rng: rand.New(rand.NewPCG(cfg.Seed, cfg.Seed^0x5eed)), start: cfg.Start.UnixNano(),
		end: cfg.Start.Add(cfg.Duration).UnixNano(), orders: map[string][]int{}, nextOr: 100000}
	for range 4000 {
		g.nets = append(g.nets, netip.PrefixFrom(netip.AddrFrom4([4]byte{byte(80 + g.rng.IntN(100)), byte(g.rng.IntN(256)), byte(g.rng.IntN(256)), 0}), 24))
	}
	for range 40 {
		g.dc = append(g.dc, netip.PrefixFrom(netip.AddrFrom4([4]byte{byte(3 + g.rng.IntN(50)), byte(g.rng.IntN(256)), byte(g.rng.IntN(256)), 0}), 24))
	}
	g.normal()
	g.forms()
	g.sequenceFlows()
	stats := GenStats{Campaigns: map[string]int{}}
	g.attacks(stats.Campaigns)
	g.webhooks() // last: it leaves the other traffic's random draws as they were
	slices.SortStableFunc(g.items, func(a, b item) int {
		return cmp.Or(cmp.Compare(a.ev.TimeUnixNano, b.ev.TimeUnixNano), cmp.Compare(a.seq, b.seq))
	})
	for i, it := range g.items {
		it.ev.Id = event.HashID(time.Unix(0, it.ev.TimeUnixNano), "gen", strconv.FormatUint(cfg.Seed, 10), strconv.Itoa(i))
		if err := w.Write(it.ev, it.label); err != nil {
			return stats, err
		}
		stats.Events++
		if it.label != "" {
			stats.Labelled++
		}
	}
	return stats, w.Flush()
}

// ip returns an address in a random residential /24, or in net if given.
func (g *gen) ip(net netip.Prefix) netip.Addr {
	if !net.IsValid() {
		net = g.nets[g.rng.IntN(len(g.nets))]
	}
	b := net.Addr().As4()
	b[3] = byte(1 + g.rng.IntN(254))
	return netip.AddrFrom4(b)
}

// shape is the daily intensity at t: 0.15 at night, rising from 07:00 to
// a peak at 15:00 and falling until 23:00.
func shape(t int64) float64 {
	u := time.Unix(0, t).UTC()
	h := float64(u.Hour()) + float64(u.Minute())/60
	if h < 7 || h > 23 {
		return 0.15
	}
	return 0.15 + 0.85*math.Pow(math.Sin(math.Pi*(h-7)/16), 1.5)
}

// when draws a time of day by the daily shape (rejection sampling).
func (g *gen) when() int64 {
	for {
		t := g.start + g.rng.Int64N(g.end-g.start)
		if g.rng.Float64() < shape(t) {
			return t
		}
	}
}

// think is a person's pause between requests: log-normal, median 6 s.
func (g *gen) think() int64 {
	return int64(math.Exp(math.Log(6)+0.9*g.rng.NormFloat64())*1e9) + 300e6
}

// req describes one request to emit.
type req struct {
	t                int64
	c                client
	method, path     string
	api              string
	query            []*event.QueryParam
	status           int
	bytes            int64
	latency          time.Duration
	key, sub, token  string
	session, account string
	decision         event.Decision
	check            string
	label            string
}

// emit records one request event.
func (g *gen) emit(r req) {
	if r.t < g.start || r.t >= g.end {
		return
	}
	if r.status == 0 {
		r.status = 200
	}
	if r.latency == 0 {
		r.latency = time.Duration(math.Exp(math.Log(40)+0.5*g.rng.NormFloat64()) * float64(time.Millisecond))
	}
	if r.decision == event.Decision_DECISION_UNSPECIFIED {
		r.decision = event.Decision_DECISION_ALLOW
	}
	ev := &event.RequestEvent{
		Schema: event.SchemaVersion, TimeUnixNano: r.t, DurationNanos: int64(r.latency) + 300_000, Proxy: "gen",
		Api: r.api, Method: r.method, Host: "shop.example", Path: r.path, Query: r.query, Status: uint32(r.status),
		RequestBytes: 200, ResponseBytes: r.bytes, UpstreamLatencyNanos: int64(r.latency),
		ClientIp: event.ClientIPBytes(r.c.ip), UserAgent: r.c.ua, TlsFingerprint: r.c.ja4, HeaderFingerprint: r.c.hdr,
		AcceptLanguage: r.c.lang, ApiKeyId: r.key, Subject: r.sub, Session: r.session, Account: r.account,
		Decision: r.decision, Check: r.check, Auth: event.AuthOutcome_AUTH_MISSING,
	}
	if r.token != "" {
		ev.TokenHash = r.token
	}
	if r.key != "" || r.sub != "" {
		ev.Auth = event.AuthOutcome_AUTH_OK
	}
	if r.decision != event.Decision_DECISION_ALLOW {
		ev.UpstreamLatencyNanos, ev.ResponseBytes = 0, 0
	}
	g.items = append(g.items, item{ev: ev, label: r.label, seq: len(g.items)})
}

// hashed is how the proxy records account names and tokens.
func hashed(prefix, s string) string {
	sum := sha256.Sum256([]byte(s))
	return prefix + hex.EncodeToString(sum[:8])
}

// netipInvalid asks ip for a random residential network.
var netipInvalid netip.Prefix
