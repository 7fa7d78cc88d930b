package detectors

import (
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/apiguard/apiguard/event"
)

// Engine runs every enabled detector over one partition's events. It owns
// the state they share — per-API baselines, per-(API, principal) pairs,
// credential histories, login counters, parameter models — derives each
// event's features once, and turns findings into explained anomalies with
// a combined risk per principal.
//
// Engine is not safe for concurrent use: the pipeline gives each partition
// its own, fed in stream order.
type Engine struct {
	cfg  Config
	clk  clock
	dets []detector
	st   engineState
	x    ctx // reused for each event
}

// detector is one registered detection. observe appends what the event
// completes to out.
type detector interface {
	name() string
	observe(e *Engine, x *ctx, out []finding) []finding
}

// registry lists every detector in the order they run, which is also the
// order their anomalies for one event come out in.
var registry = []struct {
	name  string
	build func(Config) detector
}{
	{VolumetricName, func(c Config) detector { return &volumetric{cfg: c.Volumetric} }},
	{StuffingName, func(c Config) detector { return &stuffing{cfg: c.Stuffing} }},
	{StolenName, func(c Config) detector { return &stolen{cfg: c.Stolen} }},
	{EnumerationName, func(c Config) detector { return &enumeration{cfg: c.Enumeration} }},
	{ScrapingName, func(c Config) detector { return &scraping{cfg: c.Scraping} }},
	{ProbingName, func(c Config) detector { return &probing{cfg: c.Probing} }},
	{TimingName, func(c Config) detector { return &timing{cfg: c.Timing} }},
	{ParamsName, func(c Config) detector { return &params{cfg: c.Params} }},
	{InventoryName, func(c Config) detector { return &inventory{cfg: c.Inventory} }},
	{HealthName, func(c Config) detector { return &health{cfg: c.Health} }},
	{ProfileName, func(c Config) detector { return &profile{cfg: c.Profile} }},
	{CampaignName, func(c Config) detector { return &campaign{cfg: c.Campaign} }},
	{SequenceName, func(c Config) detector { return &sequence{cfg: c.Sequence} }},
}

// Names returns every detector's name, in the order they run.
func Names() []string {
	out := make([]string, len(registry))
	for i, r := range registry {
		out[i] = r.name
	}
	return out
}

// New returns an engine with every detector cfg does not disable.
func New(cfg Config) (*Engine, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	e := &Engine{cfg: cfg, clk: newClock(cfg.Windows), st: newEngineState()}
	for _, r := range registry {
		if !slices.Contains(cfg.Disable, r.name) {
			e.dets = append(e.dets, r.build(cfg))
		}
	}
	return e, nil
}

// Enabled returns the names of the detectors that run.
func (e *Engine) Enabled() []string {
	out := make([]string, len(e.dets))
	for i, d := range e.dets {
		out[i] = d.name()
	}
	return out
}

// engineState is everything an engine learns; a checkpoint is this,
// encoded (checkpoint.go). Maps are keyed by 64-bit FNV-1a hashes.
type engineState struct {
	APIs       map[string]*apiState
	Pairs      map[uint64]*pair // (API, principal)
	Principals map[uint64]*principalState
	Creds      map[uint64]*credState // credential principal → where it was used from
	Logins     map[uint64]*loginState
	Params     map[string]*paramModel // API + "\x00" + parameter
	Cool       map[uint64]int64       // (detector, principal) → event time the cooldown ends
	Flagged    map[uint64]int64       // principal → event time until which it teaches nothing
	Risk       map[uint64]riskState
	Probe      ratio // every principal's misses across APIs (probing.go)
	// Routes is established principals' share of unknown-route requests,
	// and Methods the methods served with success, by count (routes.go).
	Routes  ratio
	Methods map[string]uint32
	// Campaigns are, per client fingerprint, the new and suspect
	// anonymous principals of the long window, and CampaignRate the share
	// of suspects among all new ones (campaign.go).
	Campaigns    map[uint64]*campaignState
	CampaignRate ratio
	ColdWrites   ratio // cold writes among anonymous writes (campaign.go)
	ScrapeRate   ratio // neighbouring-object readers among anonymous principals at their sixth request
	Start        int64 // event time of the first event
	// Last is the latest event time seen. Resume is, per rate window, the
	// event time from which the engine has seen every event: the first
	// event, or the first after a gap (gap.go). A window reaching back
	// before it is not whole.
	Last   int64
	Resume [numWindows]int64
	Swept  uint32 // unix second of the last idle sweep

	// Shares maps an address, network or fingerprint to the established
	// principals behind it (sharing.go).
	Shares map[uint64]*shareState
	// Seq is what the sequence detector learns (sequence.go).
	Seq seqState
}

func newEngineState() engineState {
	return engineState{APIs: map[string]*apiState{}, Pairs: map[uint64]*pair{}, Principals: map[uint64]*principalState{}, Creds: map[uint64]*credState{},
		Logins: map[uint64]*loginState{}, Params: map[string]*paramModel{}, Cool: map[uint64]int64{},
		Flagged: map[uint64]int64{}, Risk: map[uint64]riskState{}, Shares: map[uint64]*shareState{}, Methods: map[string]uint32{},
		Campaigns: map[uint64]*campaignState{}, Seq: newSeqState()}
}

type riskState struct {
	Risk float64
	At   int64
}

// ctx is one event as the detectors see it, with what the engine derived
// from it once.
type ctx struct {
	ev         *event.RequestEvent
	t          int64  // event time, ns
	sec        uint32 // event time, unix seconds
	kind, val  string // the principal
	pkey       uint64 // hash of the principal
	allowed    bool   // the proxy let it through to the upstream
	learn      bool   // it may teach baselines (the principal is not flagged)
	api        *apiState
	pair       *pair           // (API, principal); nil unless allowed
	prin       *principalState // the principal across APIs; nil unless allowed
	prevNs     int64           // the principal's previous event time; 0 for its first
	object     string
	objectNum  uint32
	hasNum     bool
	miss       bool // 403, 404 or 405
	fpKey      uint64
	netKey     uint64
	fp         string // computed on demand by fingerprint()
	netPrefix  netip.Prefix
	samplesBuf [4]float64
}

// finding is what a detector reports before the engine makes it an anomaly.
type finding struct {
	det        string  // set by the engine
	p          float64 // tail probability under the baseline
	kind, val  string  // principal; empty for the event's
	api        string  // empty for the event's
	deviations []*event.Deviation
	summary    string
	eventIDs   []string      // empty for the event's id
	cooldown   time.Duration // 0 for Config.Cooldown
	// members are principals behind kind/val that took part (sharing.go).
	members []*event.Principal
}

// Observe takes one event and returns the anomalies it completes, in a
// fixed order: the same events give the same anomalies, byte for byte.
func (e *Engine) Observe(ev *event.RequestEvent) []*event.Anomaly {
	if ev.GetApi() == "" || ev.GetTimeUnixNano() <= 0 {
		return nil
	}
	x := e.prepare(ev)
	var found []finding
	for _, d := range e.dets {
		n := len(found)
		found = d.observe(e, x, found)
		for i := n; i < len(found); i++ {
			found[i].det = d.name()
		}
	}
	if len(found) == 0 {
		return nil
	}
	return e.anomalies(x, found)
}

// prepare derives the event's features and brings the shared state up to
// its time.
func (e *Engine) prepare(ev *event.RequestEvent) *ctx {
	x := &e.x
	*x = ctx{ev: ev, t: ev.TimeUnixNano, sec: uint32(ev.TimeUnixNano / 1e9)}
	e.resume(x.t)
	e.sweep(x.sec)
	x.kind, x.val = event.PrincipalOf(ev)
	x.pkey = hashStrings(x.kind, x.val)
	x.allowed = ev.Decision == event.Decision_DECISION_ALLOW
	x.learn = x.t >= e.st.Flagged[x.pkey]
	x.miss = ev.Status == 403 || ev.Status == 404 || ev.Status == 405
	x.fpKey = hashStrings(ev.TlsFingerprint, ev.HeaderFingerprint, event.UAFamily(ev.UserAgent), ev.AcceptLanguage)
	if ip, ok := netip.AddrFromSlice(ev.ClientIp); ok {
		bitsLen := 24
		if ip = ip.Unmap(); ip.Is6() {
			bitsLen = 48
		}
		x.netPrefix, _ = ip.Prefix(bitsLen)
		a := x.netPrefix.Addr().As16()
		x.netKey = hashStrings(string(a[:])) // no allocation: the conversion does not escape
	}
	x.api = e.apiFor(ev.Api, x.t)
	x.object, x.objectNum, x.hasNum = objectOf(ev.Api, ev.Path)
	if x.allowed {
		x.pair = e.pairFor(hashStrings(ev.Api, x.kind, x.val), x)
		e.roll(x.pair, x, x.api)
		x.prin = e.principalFor(x)
		e.noteSharing(x)
	}
	return x
}

// fingerprint returns the event's client fingerprint (event.ClientFingerprint).
func (x *ctx) fingerprint() string {
	if x.fp == "" {
		x.fp = event.ClientFingerprintOf(x.ev)
	}
	return x.fp
}

// anomalies turns findings into anomalies, dropping those in cooldown,
// and updates each principal's combined risk.
func (e *Engine) anomalies(x *ctx, found []finding) []*event.Anomaly {
	var out []*event.Anomaly
	for _, f := range found {
		kind, val := f.kind, f.val
		if kind == "" {
			kind, val = x.kind, x.val
		}
		api := f.api
		if api == "" {
			api = x.ev.Api
		}
		// One cooldown per detector and principal (an API, for anomalies
		// about APIs).
		pk := hashStrings(kind, val)
		cool := hashUint(pk, hashStrings(f.det))
		cd := f.cooldown
		if cd == 0 {
			cd = e.cfg.Cooldown
		}
		// In cooldown, a finding is still reported when it names members
		// not reported within theirs, so each attacking member of a
		// shared principal is named once (sharing.go).
		members := e.newMembers(f.det, f.members, x.t, cd)
		if x.t < e.st.Cool[cool] {
			if len(members) == 0 {
				continue
			}
		} else {
			e.st.Cool[cool] = x.t + int64(cd)
		}
		e.st.Flagged[pk] = x.t + int64(e.cfg.Cooldown)
		score := scoreOf(f.p)
		risk := e.addRisk(pk, x.t, score)
		ids := f.eventIDs
		if len(ids) == 0 {
			ids = []string{x.ev.Id}
		}
		out = append(out, &event.Anomaly{
			Schema:       event.SchemaVersion,
			Id:           event.HashID(time.Unix(0, x.t), f.det, api, kind, val, x.ev.Id),
			TimeUnixNano: x.t,
			Detector:     f.det,
			Api:          api,
			Principal:    &event.Principal{Kind: kind, Value: strings.Clone(val)},
			Score:        score,
			Severity:     severityOf(f.p),
			Deviations:   f.deviations,
			EventIds:     slices.Clone(ids),
			Summary:      f.summary,
			Risk:         risk,
			SharedBy:     e.sharedBy(x, kind, val),
			Members:      members,
		})
	}
	return out
}

// Baselines returns what each API's baselines consider normal now, sorted
// by API and feature, for snapshots: per-principal requests over each
// window (volumetric), and medium-window response KiB and distinct objects
// (scraping). It computes them afresh without touching the state Observe
// uses, so taking snapshots never changes detections.
func (e *Engine) Baselines() []BaselineSnapshot {
	var out []BaselineSnapshot
	add := func(det, api, feature string, r *robust) {
		if r.len() == 0 {
			return
		}
		median, mad, principals := r.peek()
		out = append(out, BaselineSnapshot{Detector: det, API: api, Feature: feature, Centre: median,
			Spread: mad * madScale, Samples: r.len(), Principals: principals})
	}
	for _, n := range sortedNamed(e.st.APIs) {
		a := n.V
		for w := range numWindows {
			add(VolumetricName, n.K, "requests_"+e.clk.names[w], &a.Rate[w])
		}
		add(ScrapingName, n.K, "response_kib_"+e.clk.names[winMedium], &a.KiB)
		add(ScrapingName, n.K, "distinct_objects_"+e.clk.names[winMedium], &a.Objs)
	}
	return out
}
