package detectors

import (
	"fmt"
	"time"

	"github.com/apiguard/apiguard/event"
)

// StolenName names the stolen-credential detector's anomalies.
const StolenName = "stolen_token"

// StolenConfig configures the stolen-credential detector.
type StolenConfig struct {
	// MinRequests is how many requests a credential's first client must
	// have made before a second one is judged against it.
	MinRequests int `yaml:"min_requests"`
	// Overlap is how recently the first client must have used the
	// credential for a new client's use to count as concurrent.
	Overlap time.Duration `yaml:"overlap"`
}

func (c StolenConfig) validate() error {
	if c.MinRequests < 1 {
		return fmt.Errorf("detectors.stolen_token.min_requests: %d, want at least 1", c.MinRequests)
	}
	return positive("stolen_token.overlap", c.Overlap.Seconds())
}

// credUse is one client a credential was used from.
type credUse struct {
	FP, Net     uint32 // hashes
	First, Last uint32 // unix seconds
	N           uint32
}

// credState is where a credential (API key, token, subject) was used
// from: at most four clients, the least recently used replaced.
type credState struct{ Uses [4]credUse }

func (c *credState) last() uint32 {
	var l uint32
	for _, u := range c.Uses {
		l = max(l, u.Last)
	}
	return l
}

// stolen finds a credential — API key, token or subject — used from a new
// client (another fingerprint) on another network while the client it has
// been used from is still active: a token copied out of a browser, a key
// leaked from a repository. The same fingerprint on a new network is the
// same client roaming (a phone between Wi-Fi and mobile data, a partner's
// servers behind several addresses), and is not reported.
type stolen struct{ cfg StolenConfig }

func (*stolen) name() string { return StolenName }

func (d *stolen) observe(e *Engine, x *ctx, out []finding) []finding {
	if x.kind == event.KindIP || !x.allowed {
		return out
	}
	c := e.st.Creds[x.pkey]
	if c == nil {
		c = &credState{}
		e.st.Creds[x.pkey] = c
	}
	overlap := uint32(d.cfg.Overlap.Seconds())
	fp, net := uint32(x.fpKey), uint32(x.netKey)
	var sameFP, exact *credUse
	var active *credUse // an established client of another fingerprint and network, used recently
	for i := range c.Uses {
		u := &c.Uses[i]
		if u.N == 0 {
			continue
		}
		switch {
		case u.FP == fp && u.Net == net:
			exact = u
		case u.FP == fp:
			sameFP = u
		case u.Net != net && int(u.N) >= d.cfg.MinRequests && x.sec-min(u.Last, x.sec) <= overlap:
			if active == nil || u.N > active.N {
				active = u
			}
		}
	}
	use := exact
	if use == nil {
		use = sameFP
	}
	if use != nil {
		use.Net, use.Last, use.N = net, max(use.Last, x.sec), use.N+1
		return out
	}
	// A new client: take the empty or least recently used slot.
	slot := &c.Uses[0]
	for i := range c.Uses {
		if c.Uses[i].Last < slot.Last {
			slot = &c.Uses[i]
		}
	}
	var origN uint32
	var origFirst uint32
	if active != nil {
		origN, origFirst = active.N, active.First
	}
	*slot = credUse{FP: fp, Net: net, First: x.sec, Last: x.sec, N: 1}
	if active == nil {
		return out
	}
	// The chance that an established client turns up, within the overlap,
	// as a different program on a different network is what the API's
	// credentials show; without that history, one in a million per use.
	p := 1e-7 / max(float64(origN)/float64(d.cfg.MinRequests), 1)
	if p > e.cfg.MaxP {
		return out
	}
	return append(out, finding{p: p, deviations: []*event.Deviation{
		{Feature: "concurrent_clients", Observed: 2, Expected: 1, Deviation: 1},
		{Feature: "original_client_requests", Observed: float64(origN)},
		{Feature: "original_client_age_s", Observed: float64(x.sec - min(origFirst, x.sec))},
	}, summary: fmt.Sprintf("%s %s used from a new client (%s, %s, %s) on %s while its client of %d requests was active within %s",
		x.kind, x.val, event.UAFamily(x.ev.UserAgent), x.fingerprint(), x.netPrefix, x.ev.Api, origN, d.cfg.Overlap)})
}
