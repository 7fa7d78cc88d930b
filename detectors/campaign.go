package detectors

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/apiguard/apiguard/event"
)

// CampaignName names the campaign detector's anomalies.
const CampaignName = "campaign"

// CampaignConfig configures the campaign detector.
type CampaignConfig struct {
	// MinMembers is the fewest suspect principals behind one client
	// fingerprint, within a long window, that can be a campaign.
	MinMembers int `yaml:"min_members"`
	// Floor is the smallest share of new anonymous principals taken to be
	// suspect on normal traffic.
	Floor float64 `yaml:"floor"`
}

func (c CampaignConfig) validate() error {
	if c.MinMembers < 2 {
		return fmt.Errorf("detectors.campaign.min_members: %d, want at least 2", c.MinMembers)
	}
	return positive("campaign.floor", c.Floor)
}

// Population-level abuse.
//
// Form spam, low-and-slow credential stuffing and other distributed abuse
// come from many new addresses that each do too little to stand out. What
// they share is a client (the TLS and header fingerprints, the user-agent
// family, the language: the engine's fingerprint key) and a first contact
// that normal sessions almost never show:
//
//   - a cold write: a write (POST, PUT, PATCH, DELETE) served well, other
//     than a login, as one of an anonymous principal's first two
//     requests, with no navigation before it other than the write's own
//     form. Counted per fingerprint and API against the anonymous writes
//     to that API with that fingerprint, and tested against the share of
//     cold writes the API showed up to the current window (a sequence
//     baseline: how normal sessions reach it), with the share among all
//     anonymous writes as its prior; an API most of whose writes are
//     cold is never a campaign's;
//   - repeated failed logins: a failed login from an anonymous principal
//     that has asked for nothing else, over two accounts or more (three
//     failures where accounts are not recorded): people who mistype
//     retry their own account. Counted per fingerprint
//     against the new anonymous principals with it, and tested against
//     the share of such principals among all new ones;
//   - reads of neighbouring objects only: an anonymous principal whose
//     first six requests read consecutive object ids of one API and
//     nothing else (a distributed scraper's share of the catalogue;
//     people follow popularity, not ids). Counted per fingerprint against
//     the anonymous principals reaching their sixth request, and tested
//     against the share of such readers among them.
//
// Counts cover a long window (an hour by default; half of the last one's
// carries over) and the test is a binomial tail at max_p. Every usual
// share starts from Floor worth campaignPrior trials. The engine-wide
// shares learn from a fingerprint's first suspect of the window only
// (campaignTeach), so a campaign does not make itself look usual; an
// API's cold share learns from every write but is used as it stood when
// the window began.
//
// One anomaly names the campaign: its principal is the fingerprint (Anomaly.SharedBy says how many established principals
// share it) and its members are the suspect principals that drove it —
// never the fingerprint's other users — so the responder, which does not
// block a fingerprint many share, blocks those members and no one else.
// Members flagged later in the same campaign are named by later anomalies
// (engine.newMembers).

// scrapeReads is how many requests of an anonymous principal, all
// neighbouring objects of one API, make it a suspect reader.
const scrapeReads = 6

// campaignTeach is how many suspects of one fingerprint in a window
// teach the usual share.
const campaignTeach = 1

// campaignPrior is how many trials the Floor share is worth in the usual
// share of suspects.
const campaignPrior = 50

// coldPrior is how many writes the engine's usual share of cold writes
// is worth in an API's own share: a few hours of an API's writes
// outweigh it, so an API is held to how its own sessions reach it (a
// balance check that a third of visitors post straight from the page;
// a sign-up form nobody posts without browsing first), per partition
// too, where an API sees a quarter of its writes.
const coldPrior = 10

// coldHistory is how many writes (decayed) an API must have shown, as
// the current long window began, for its own share of cold writes to be
// known. Without one, an API that anonymous clients post to without
// navigating (a provider's webhook) looks like form spam in its first
// long window, so its cold writes are a campaign only when they come
// from many networks. One is enough: a form few people send (a contact
// form, per partition) has only a handful of writes a day.
const coldHistory = 1

// maxCampaignMembers bounds the members a campaign state keeps.
const maxCampaignMembers = 16

// campaignState is one group's window of new and suspect anonymous
// principals: a fingerprint's logins, its readers, or its writes to one
// API. One exists for each group an anonymous principal entered; it is
// dropped when its window is two windows old (about 100 bytes each, and
// a client that changes fingerprint with every address makes one per
// address, like the shared-principal counts).
type campaignState struct {
	Window   int64 // long window index
	New      uint32
	Suspects uint32
	// Members are the last suspect principals' values (kind ip), for the
	// anomaly; Keys their hashes, to count each once.
	Members []string
	Keys    []uint64
}

type campaign struct{ cfg CampaignConfig }

func (*campaign) name() string { return CampaignName }

func (d *campaign) observe(e *Engine, x *ctx, out []finding) []finding {
	if x.prin == nil || x.kind != event.KindIP {
		return out
	}
	w := x.t / e.clk.len[winLong]
	ev := x.ev
	var key uint64
	var rate *ratio
	why := ""
	switch {
	case x.api.Login:
		// Logins: of the new addresses with this client, how many only
		// failed to log in.
		key, rate = hashUint(x.fpKey, 0xca), &e.st.CampaignRate
		s := e.st.Campaigns[key]
		if x.prin.Gaps == 0 && x.t == x.prin.LastNs && x.learn {
			rate.addMany(0, 1)
			if s == nil {
				s = &campaignState{Window: w}
				e.st.Campaigns[key] = s
			}
			s.roll(w)
			s.New = sat32(s.New)
		}
		if (ev.Status == 401 || ev.Status == 403) && x.pair != nil && x.prin.Gaps >= 1 && x.prin.Gaps <= 8 &&
			x.pair.Long[(x.pair.LastNs/e.clk.slot[winLong])%6] >= 2 && pairOnly(x) && e.stuffingMember(x) {
			why = "failed logins from addresses that asked for nothing else"
			if x.learn && (s == nil || s.Suspects < campaignTeach) {
				rate.addMany(1, 0)
			}
		}
	case x.api.Object && ev.Method == "GET" && ev.Status < 400 && x.prin.Gaps == scrapeReads-1 && x.pair != nil:
		// Reads: of the anonymous principals with this client reaching
		// their scrapeReads-th request, how many read nothing but
		// neighbouring objects of one API.
		key, rate = hashUint(x.fpKey, 0x5c), &e.st.ScrapeRate
		s := e.st.Campaigns[key]
		if s == nil {
			s = &campaignState{Window: w}
			e.st.Campaigns[key] = s
		}
		s.roll(w)
		s.New = sat32(s.New)
		walk := x.pair.Walk >= scrapeReads-1 && pairOnly(x)
		if x.learn && s.Suspects < campaignTeach {
			rate.add(walk)
		}
		if walk {
			why = fmt.Sprintf("read %d neighbouring objects of %s and nothing else", scrapeReads, clipString(ev.Api, 40))
		}
	case isWrite(ev.Method) && ev.Status < 400:
		// Other writes: of the anonymous writes to this API with this
		// client, how many came without navigation first.
		key, rate = hashUint(x.fpKey, hashStrings(ev.Api)), &e.st.ColdWrites
		s := e.st.Campaigns[key]
		if s == nil {
			s = &campaignState{Window: w}
			e.st.Campaigns[key] = s
		}
		s.roll(w)
		s.New = sat32(s.New)
		cold := x.prin.Gaps <= 1
		x.api.Cold.roll(w)
		known := x.api.Cold.known()
		// The engine's share, every API's prior, learns only from APIs
		// judged by it: one that is mostly written cold (a webhook) or
		// not yet known would make cold writes look usual everywhere.
		if x.learn && s.Suspects < campaignTeach && known {
			rate.add(cold)
		}
		// The API's own share learns from every write of a principal
		// that may teach, in its first long window; from then on, not
		// from a client already at a campaign's count in this window,
		// so a campaign straddling the hour does not make its second
		// half look usual. The test uses the share as it stood when the
		// window began, so a campaign's writes do not make it look usual
		// while it runs, and an API that is reached without navigating
		// (a webhook, a form linked from elsewhere) is known as such from
		// the next window on.
		if x.learn && (x.api.Cold.Before.Trials < coldHistory || int(s.Suspects) < d.cfg.MinMembers) {
			x.api.Cold.Now.add(cold)
		}
		if cold {
			why = "went straight to " + clipString(ev.Api, 40) + " without navigating first"
		}
	}
	s := e.st.Campaigns[key]
	if why == "" || s == nil {
		return out
	}
	s.roll(w)
	for _, k := range s.Keys {
		if k == x.pkey {
			return out
		}
	}
	s.Suspects = sat32(s.Suspects)
	s.New = max(s.New, s.Suspects)
	if len(s.Keys) >= maxCampaignMembers {
		s.Keys, s.Members = s.Keys[1:], s.Members[1:]
	}
	s.Keys = append(s.Keys, x.pkey)
	s.Members = append(s.Members, strings.Clone(x.val))
	if int(s.Suspects) < d.cfg.MinMembers {
		return out
	}
	// The usual share starts from Floor, worth campaignPrior trials, so
	// a day's first few suspects do not make the share look usual.
	// Suspects are counted apart from the new principals they are among
	// (addMany(1, 0)), so the ratio can pass 1: keep it a probability.
	base := min((rate.Hits+d.cfg.Floor*campaignPrior)/(rate.Trials+campaignPrior), 0.5)
	if rate == &e.st.ColdWrites {
		// How this API is reached: its own share, from the engine's as
		// a prior worth coldPrior writes. An API that clients post to
		// without navigating (a webhook) learns that it is. One with no
		// history yet (a new API, one nobody wrote to yet today, a new
		// engine) is judged on the engine's share only when the suspects
		// come from MinMembers networks or more: a provider posting from
		// its own network is one source, a proxy pool many.
		c := x.api.Cold.Before
		if c.Trials < coldHistory && networks(s.Members) < d.cfg.MinMembers {
			return out
		}
		base = (c.Hits + base*coldPrior) / (c.Trials + coldPrior)
		if base > 0.5 {
			// Most writes to this API come without navigation: cold
			// writes are what it sees, and no campaign of them.
			return out
		}
	}
	p := binomialTail(int(s.Suspects), int(s.New), base)
	if p > e.cfg.MaxP {
		return out
	}
	members := make([]*event.Principal, len(s.Members))
	for i, m := range s.Members {
		members[i] = &event.Principal{Kind: event.KindIP, Value: m}
	}
	return append(out, finding{p: p, kind: event.KindFP, val: x.fingerprint(), members: members,
		deviations: []*event.Deviation{{Feature: "suspect_principals_" + e.clk.names[winLong], Observed: float64(s.Suspects),
			Expected: base * float64(s.New), Deviation: zBinomial(float64(s.Suspects), float64(s.New), base)}},
		summary: fmt.Sprintf("campaign: %d of %d addresses with client %s in %s %s (usual share %.1f%%); members that drove it: %s (last %s)",
			s.Suspects, s.New, clipString(ev.UserAgent, 60), e.clk.names[winLong], why, 100*base,
			strings.Join(s.Members, ", "), x.val)})
}

// stuffingMember reports whether the address's own failed logins this
// medium window look like stuffing rather than a mistyped password: two
// accounts or more where the proxy records accounts, three failures or
// more where it does not (stuffing.go keeps the counts; without the
// credential-stuffing detector there are none, and no login suspects).
func (e *Engine) stuffingMember(x *ctx) bool {
	l := e.st.Logins[hashUint(1, hashStrings(x.ev.Api, string(x.ev.ClientIp)))]
	if l == nil {
		return false
	}
	if x.ev.Account != "" {
		return l.accounts() >= memberAccounts
	}
	_, f := l.sums()
	return f >= memberFailures
}

// networks counts the distinct /24 (IPv4) or /48 (IPv6) networks of
// addresses.
func networks(addrs []string) int {
	var seen [maxCampaignMembers]netip.Prefix
	n := 0
	for _, a := range addrs {
		ip, err := netip.ParseAddr(a)
		if err != nil {
			continue
		}
		bits := 48
		if ip.Is4() || ip.Is4In6() {
			ip, bits = ip.Unmap(), 24
		}
		pfx, _ := ip.Prefix(bits)
		if n < len(seen) && !slices.Contains(seen[:n], pfx) {
			seen[n] = pfx
			n++
		}
	}
	return n
}

// pairOnly reports whether the principal's requests in the medium window
// were all on the event's API.
func pairOnly(x *ctx) bool {
	req, _ := x.prin.recent()
	var pr float64
	for _, m := range x.pair.Medium {
		pr += float64(m.Req)
	}
	return pr >= req
}

func isWrite(method string) bool {
	switch method {
	case "POST", "PUT", "PATCH", "DELETE":
		return true
	}
	return false
}

// roll moves the state to long window w: the counts of a window before
// the last are dropped, those of the last are halved (a campaign
// straddling the hour keeps its evidence).
func (s *campaignState) roll(w int64) {
	switch {
	case w == s.Window+1:
		s.New, s.Suspects = s.New/2, s.Suspects/2
	case w > s.Window+1:
		s.New, s.Suspects, s.Keys, s.Members = 0, 0, nil, nil
	}
	s.Window = max(s.Window, w)
}

// coldShare is an API's share of anonymous writes that came without
// navigation (campaign.go): Now learns, Before is Now as the current long
// window began.
type coldShare struct {
	Now, Before ratio
	Window      int64
}

// known reports whether the API has a history of writes (coldHistory)
// that mostly came after navigation: its cold writes can be judged.
func (c *coldShare) known() bool {
	return c.Before.Trials >= coldHistory && c.Before.Hits <= c.Before.Trials/2
}

// roll moves the share to long window w.
func (c *coldShare) roll(w int64) {
	if w > c.Window {
		c.Before, c.Window = c.Now, w
	}
}

// sweepCampaigns drops the states of fingerprints quiet for two long
// windows.
func (e *Engine) sweepCampaigns(now int64) {
	w := now / e.clk.len[winLong]
	for k, s := range e.st.Campaigns {
		if s.Window < w-1 {
			delete(e.st.Campaigns, k)
		}
	}
}
