package detectors

import (
	"math"
	"net/netip"
	"strings"
	"time"

	"github.com/apiguard/apiguard/event"
)

// Shared principals.
//
// Some principals stand for many clients: an address behind which a NAT or
// a corporate proxy puts many API keys, a network, a client fingerprint
// that every user of a common browser in one language presents. Blocking
// one for what a few of its members did would block all the others, and
// detectors never decide to block; so the engine counts, for every client
// address, network (/24 or /48) and fingerprint, the established
// principals seen behind it, and an anomaly about one says how many share
// it (event.Anomaly.SharedBy) and, where the detector knows them, which of
// its members took part (event.Anomaly.Members). The responder does not
// block a principal that many share; it blocks the members.
//
// A principal is established once it has made establishedRequests requests
// and used one API for a short window (a minute by default), and
// well-behaved while it is not flagged and its combined risk is under
// establishedMaxRisk; it is counted at requests served well on APIs other
// than logins (noteSharing), so a stuffing tool's clients never are. Behind an address count the keys, subjects and tokens
// seen from it (the address itself is not its own sharer); behind a
// network or a fingerprint, every principal. The count covers the current
// period of shareSpan long windows and the one before it (the last 6 to 12
// hours by default), so a fingerprint that the day's users share is still
// known as shared at night, by linear counting over 64 bits per period:
// within a few percent up to about 100, saturating near 266 — the question
// is only whether a handful share it. It costs a 24-byte state per
// address, network and fingerprint an established principal used in that
// time.
//
// Like everything the engine knows, the count is of the principals that
// hash to its partition: with N partitions, about 1/N of the sharers.

// Thresholds of an established principal.
const (
	establishedRequests = 5
	establishedMaxRisk  = 0.25
)

// shareSpan is the length, in long windows, of each of the two periods a
// shareState covers.
const shareSpan = 6

// shareWindow is the index of the period holding event time t.
func (e *Engine) shareWindow(t int64) int64 { return t / (shareSpan * e.clk.len[winLong]) }

// shareState counts the established principals seen behind one address,
// network or fingerprint. 24 bytes, no pointers; one exists only for what
// an established principal has used.
type shareState struct {
	Window    int64  // the long window (event time / its length) Cur covers
	Cur, Prev uint64 // principals seen in it and in the one before, linear counting
}

// add records a principal's bit in window w.
func (s *shareState) add(bit uint64, w int64) {
	switch {
	case w == s.Window+1:
		s.Prev, s.Cur = s.Cur, 0
	case w > s.Window+1:
		s.Prev, s.Cur = 0, 0
	}
	s.Window = max(s.Window, w)
	s.Cur |= bit
}

// count estimates the principals seen in window w and the one before it.
func (s *shareState) count(w int64) float64 {
	switch {
	case w <= s.Window:
		return distinct(s.Cur | s.Prev)
	case w == s.Window+1:
		return distinct(s.Cur)
	}
	return 0
}

// Kinds of shared identifier, mixed into their state's key.
const (
	shareIP uint64 = iota + 0x5a0
	shareNet
	shareFP
)

// ipKey hashes the event's client address (its 16-byte form, so a mapped
// IPv4 address is the same as the plain one), or returns false.
func ipKey(ev *event.RequestEvent) (uint64, bool) {
	ip, ok := netip.AddrFromSlice(ev.ClientIp)
	if !ok {
		return 0, false
	}
	a := ip.Unmap().As16()
	return hashStrings(string(a[:])), true
}

// established reports whether the event's principal is established and
// well-behaved (see above). It needs x.pair and x.prin.
func (e *Engine) established(x *ctx) bool {
	if !x.learn || x.prin == nil || x.pair == nil || int(x.prin.Gaps)+1 < establishedRequests ||
		x.t-x.pair.FirstNs < e.clk.len[winShort] {
		return false
	}
	r, ok := e.st.Risk[x.pkey]
	return !ok || r.Risk*math.Exp2(-float64(x.t-r.At)/float64(e.cfg.RiskHalfLife)) < establishedMaxRisk
}

// noteSharing counts an established principal behind the event's address,
// network and fingerprint — at most once per pair and short-window slot,
// which is all the counting needs, and only at a request served well
// (below 400) on an API that is not a login: clients that only try
// logins, as stuffing tools do, never make their own network or tool look
// shared.
func (e *Engine) noteSharing(x *ctx) {
	p := x.pair
	if p == nil || x.api.Login || x.ev.Status >= 400 || p.Short[(p.LastNs/e.clk.slot[winShort])%6] != 1 || !e.established(x) {
		return
	}
	bit := uint64(1) << (hashUint(x.pkey, 0x5a) & 63)
	w := e.shareWindow(x.t)
	note := func(k uint64) {
		s := e.st.Shares[k]
		if s == nil {
			s = &shareState{Window: w}
			e.st.Shares[k] = s
		}
		s.add(bit, w)
	}
	if x.kind != event.KindIP {
		if k, ok := ipKey(x.ev); ok {
			note(hashUint(shareIP, k))
		}
	}
	if x.netPrefix.IsValid() {
		note(hashUint(shareNet, x.netKey))
	}
	note(hashUint(shareFP, x.fpKey))
}

// shareCount estimates the established principals behind the shared
// identifier whose state key is k, at event time t.
func (e *Engine) shareCount(k uint64, t int64) uint32 {
	s := e.st.Shares[k]
	if s == nil {
		return 0
	}
	return uint32(math.Round(s.count(e.shareWindow(t))))
}

// sharedBy returns Anomaly.SharedBy for a principal of an anomaly raised
// at the event in x: for the event's own address, network or fingerprint,
// how many established principals share it; 0 for anything else.
func (e *Engine) sharedBy(x *ctx, kind, val string) uint32 {
	switch kind {
	case event.KindIP:
		if k, ok := ipKey(x.ev); ok && val == event.ClientIPString(x.ev.ClientIp) {
			return e.shareCount(hashUint(shareIP, k), x.t)
		}
	case event.KindCIDR:
		if x.netPrefix.IsValid() && val == x.netPrefix.String() {
			return e.shareCount(hashUint(shareNet, x.netKey), x.t)
		}
	case event.KindFP:
		if val == x.fingerprint() {
			return e.shareCount(hashUint(shareFP, x.fpKey), x.t)
		}
	}
	return 0
}

// eventMember returns the event's principal as a member of a shared
// principal — an address no established principal uses, itself not
// established — or nil.
func (e *Engine) eventMember(x *ctx) *event.Principal {
	if x.kind != event.KindIP || e.established(x) {
		return nil
	}
	if k, ok := ipKey(x.ev); ok && e.shareCount(hashUint(shareIP, k), x.t) > 0 {
		return nil
	}
	return &event.Principal{Kind: x.kind, Value: strings.Clone(x.val)}
}

// newMembers returns the members of a finding of detector det that were
// not reported within cd, starts their cooldown and flags them (they teach
// nothing and count as no one's established sharer until it ends).
func (e *Engine) newMembers(det string, members []*event.Principal, t int64, cd time.Duration) []*event.Principal {
	var out []*event.Principal
	for _, m := range members {
		pk := hashStrings(m.Kind, m.Value)
		cool := hashUint(pk, hashStrings(det, "member"))
		if t < e.st.Cool[cool] {
			continue
		}
		e.st.Cool[cool] = t + int64(cd)
		e.st.Flagged[pk] = max(e.st.Flagged[pk], t+int64(e.cfg.Cooldown))
		out = append(out, m)
	}
	return out
}

// sweepShares drops what no established principal has used in two long
// windows.
func (e *Engine) sweepShares(now int64) {
	w := e.shareWindow(now)
	for k, s := range e.st.Shares {
		if s.Window < w-1 {
			delete(e.st.Shares, k)
		}
	}
}
