package detectors

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"strings"
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
	// FP hashes the client fingerprint. Net is the network: an IPv4 /24
	// as its address (the last byte 0), so that an anomaly can say which
	// it was; any other as a hash with the last byte odd.
	FP, Net     uint32
	First, Last uint32 // unix seconds
	N           uint32
}

// netID returns the event's network as credUse.Net holds it.
func netID(x *ctx) uint32 {
	if a := x.netPrefix.Addr(); a.Is4() {
		b := a.As4()
		return binary.BigEndian.Uint32(b[:])
	}
	return uint32(x.netKey) | 1
}

// netOf returns the network the use was last seen on, as text.
func (u *credUse) netOf() string {
	if u.Net&0xff != 0 {
		return "an IPv6 /48"
	}
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], u.Net)
	return netip.PrefixFrom(netip.AddrFrom4(b), 24).String()
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
//
// The anomaly's principal is the credential, whose owner is the victim;
// its members name the new client, the thief: its address (unless an
// established principal shares that address: blocking it would refuse
// them too) and, where the request carried a token that is not the
// principal itself, the token (its jti, or the hash of an opaque token).
// The owner's address is never a member; the summary says what differs
// from the owner's client: the network (both named for IPv4) and the
// fingerprint. The events carry no country, so none is compared.
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
	fp, net := uint32(x.fpKey), netID(x)
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
	var orig credUse
	if active != nil {
		orig = *active
	}
	*slot = credUse{FP: fp, Net: net, First: x.sec, Last: x.sec, N: 1}
	if active == nil {
		return out
	}
	origN, origFirst := orig.N, orig.First
	// The chance that an established client turns up, within the overlap,
	// as a different program on a different network is what the API's
	// credentials show; without that history, one in a million per use.
	p := 1e-7 / max(float64(origN)/float64(d.cfg.MinRequests), 1)
	if p > e.cfg.MaxP {
		return out
	}
	members, named := e.thief(x)
	return append(out, finding{p: p, members: members, deviations: []*event.Deviation{
		{Feature: "concurrent_clients", Observed: 2, Expected: 1, Deviation: 1},
		{Feature: "original_client_requests", Observed: float64(origN)},
		{Feature: "original_client_age_s", Observed: float64(x.sec - min(origFirst, x.sec))},
	}, summary: fmt.Sprintf("%s %s used from a new client on %s while its client of %d requests was active within %s: "+
		"network %s (its client's: %s), fingerprint %s, %s (not its client's); the new client: %s",
		x.kind, x.val, x.ev.Api, origN, d.cfg.Overlap, x.netPrefix, orig.netOf(), x.fingerprint(), event.UAFamily(x.ev.UserAgent), named)})
}

// thief returns the members that name the new client of a stolen
// credential — its address, and its token where that is not the
// anomaly's principal — and says which they are.
func (e *Engine) thief(x *ctx) ([]*event.Principal, string) {
	var members []*event.Principal
	var said []string
	ip := event.ClientIPString(x.ev.ClientIp)
	if k, ok := ipKey(x.ev); ok {
		if n := e.shareCount(hashUint(shareIP, k), x.t); n > 0 {
			said = append(said, fmt.Sprintf("address %s (not named: %d established principals use it)", ip, n))
		} else {
			members = append(members, &event.Principal{Kind: event.KindIP, Value: ip})
			said = append(said, "address "+ip)
		}
	}
	tok := x.ev.TokenId
	if tok == "" {
		tok = x.ev.TokenHash
	}
	if tok != "" && !(x.kind == event.KindToken && x.val == tok) {
		members = append(members, &event.Principal{Kind: event.KindToken, Value: strings.Clone(tok)})
		said = append(said, "token "+tok)
	}
	if len(said) == 0 {
		return nil, "nothing to name"
	}
	return members, strings.Join(said, ", ")
}
