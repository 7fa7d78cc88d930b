package responder

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/apiguard/apiguard/event"
)

// What the responder learns from the requests themselves, when the
// pipeline hands it every event (Responder.ObserveEvent): which networks
// principals with good history use, so that no network entry covers them,
// and how a throttled principal answers its 429s.
const (
	// maxNetUsers is how many principals with good history a network's
	// record names; past it the network is busy (used by many).
	maxNetUsers = 16
	// maxNets bounds the networks recorded; past it the responder no
	// longer knows who uses a network it has no record of, and blocks no
	// network whole until the window has swept the record.
	maxNets = 1 << 18
	// maxUserAddrs is how many addresses of a network a principal's
	// record names; past it the principal counts as using them all.
	maxUserAddrs = 4
)

// netUser is a principal's use of a network: its allowed requests that
// succeeded (status below 400) and failed after its first success.
type netUser struct {
	kind, value string
	ok, bad     uint32
	last        int64 // event time, ns
	// addrs are the addresses it succeeded from (addrKey), naddrs how
	// many; past maxUserAddrs it counts as using every address of the
	// network.
	addrs  [maxUserAddrs]uint32
	naddrs uint8
}

// addrKey is an address as a netUser's record holds it: an IPv4
// address's 32 bits, an IPv6 address's last 32 (the record is per /48, so
// two addresses of it may share a key: the responder then spares both).
func addrKey(a netip.Addr) uint32 {
	b := a.As16()
	return uint32(b[12])<<24 | uint32(b[13])<<16 | uint32(b[14])<<8 | uint32(b[15])
}

// from records that the principal succeeded from the address of key k.
func (x *netUser) from(k uint32) {
	n := min(int(x.naddrs), maxUserAddrs)
	for _, a := range x.addrs[:n] {
		if a == k {
			return
		}
	}
	if n < maxUserAddrs {
		x.addrs[n] = k
	}
	if x.naddrs <= maxUserAddrs {
		x.naddrs++
	}
}

// uses reports whether the principal succeeded from the address of key k
// (or from more addresses of the network than its record names).
func (x *netUser) uses(k uint32) bool {
	if x.naddrs > maxUserAddrs {
		return true
	}
	for _, a := range x.addrs[:x.naddrs] {
		if a == k {
			return true
		}
	}
	return false
}

// netUse is who used a network.
type netUse struct {
	users []netUser
	busy  bool // more than maxNetUsers principals succeeded there
}

// throttleWatch follows a principal throttled by a rule: how many of its
// requests the proxies served and refused (429) since.
type throttleWatch struct {
	detector, rule, api, actionID string
	since, until                  time.Time // wall clock
	rate                          float64
	allowed, refused              int
	reported                      bool
}

// traffic is the responder's view of the requests (see ObserveEvent).
type traffic struct {
	seen      atomic.Bool // an event was observed: the network records are live
	watching  atomic.Int32
	mu        sync.Mutex
	nets      map[netip.Prefix]*netUse
	full      bool
	throttles map[string]*throttleWatch // "kind value"
	swept     int64
	// The fingerprint records (group_fp.go).
	fpNames map[uint64]string // fpFields → fingerprint
	prins   map[prinKey]prinUse
	fps     map[string]*fpUse
	fpFull  bool
	// The load of the record from before the start (record_load.go).
	loading   atomic.Bool                            // under way: decisions that read the record are held back
	loaded    atomic.Uint64                          // events it showed so far
	pendMu    sync.Mutex                             // guards pending, pendOrder and the end of loading
	pending   map[string]func(context.Context) error // held-back groups, by target (deferToRecord)
	pendOrder []string                               // pending's keys, first held back first
}

// ObserveEvent tells the responder about one request as the proxy decided
// it. The pipeline calls it for every event, from every partition worker,
// before the detectors' anomalies are delivered. It records which
// principals succeed from which /24 (/48) — the networks a network entry
// must never cover — and counts the requests of throttled principals; it
// returns an anomaly when a throttled principal defies its throttle
// (escalation.defiance_refused requests refused, at least
// escalation.defiance_share of its requests since the throttle), for the
// pipeline to deliver to every sink like the detectors' own. The anomaly
// is the throttle's: the same detector, principal and API, and the rule
// that throttled it then blocks (Responder.plan). It returns nil
// otherwise.
func (r *Responder) ObserveEvent(ev *event.RequestEvent) *event.Anomaly {
	return r.observe(ev, true)
}

// observe records ev; live is false for an event from before the start
// (ObserveEarlierEvent), which no throttle of this process counts.
func (r *Responder) observe(ev *event.RequestEvent, live bool) *event.Anomaly {
	t := &r.traffic
	if !t.seen.Load() {
		t.seen.Store(true)
	}
	kind, value := event.PrincipalOf(ev)
	allowed := ev.Decision == event.Decision_DECISION_ALLOW
	var net netip.Prefix
	var addr uint32
	if allowed {
		if a, ok := netip.AddrFromSlice(ev.ClientIp); ok {
			a = a.Unmap()
			addr = addrKey(a)
			bits := 24
			if a.Is6() {
				bits = 48
			}
			net, _ = a.Prefix(bits)
		}
	}
	watching := live && t.watching.Load() > 0
	if !net.IsValid() && !watching {
		return nil
	}
	var fields uint64
	if net.IsValid() && r.cfg.Groups.MinFingerprintPrincipals > 0 {
		fields = fpFields(ev)
	}
	now := r.now()
	t.mu.Lock()
	defer t.mu.Unlock()
	if net.IsValid() {
		t.use(net, addr, kind, value, ev.Status, ev.TimeUnixNano, r.history.window)
		if r.cfg.Groups.MinFingerprintPrincipals > 0 {
			t.useFP(ev, fields, kind, value, ev.Status, ev.TimeUnixNano)
		}
	}
	if !watching {
		return nil
	}
	w := t.throttles[kind+" "+value]
	if w == nil || now.After(w.until) {
		return nil
	}
	switch ev.Decision {
	case event.Decision_DECISION_ALLOW:
		w.allowed++
	case event.Decision_DECISION_THROTTLE:
		w.refused++
	default:
		return nil
	}
	c := r.cfg.Escalation
	if w.reported || !c.defies(w.refused, w.allowed) {
		return nil
	}
	w.reported = true
	return &event.Anomaly{
		Schema: event.SchemaVersion, Id: event.HashID(w.since, "defiance", w.actionID), TimeUnixNano: ev.TimeUnixNano,
		Detector: w.detector, Api: w.api, Principal: &event.Principal{Kind: kind, Value: value},
		Score: 1, Severity: event.Severity_SEVERITY_HIGH, EventIds: []string{ev.Id},
		Deviations: []*event.Deviation{{Feature: "refused_while_throttled", Observed: float64(w.refused), Expected: 0}},
		Summary: fmt.Sprintf("%s %s went on past its throttle (%.3g requests/s by rule %s): %s", kind, value, w.rate, w.rule,
			w.tally(now)),
	}
}

// tally says how the principal answered its throttle so far.
func (w *throttleWatch) tally(now time.Time) string {
	n := w.allowed + w.refused
	return fmt.Sprintf("%d of its %d requests in %s since refused (429, %.0f%%)", w.refused, n,
		now.Sub(w.since).Round(100*time.Millisecond), 100*float64(w.refused)/float64(max(n, 1)))
}

// defies reports whether refused requests of refused+allowed since a
// throttle make its principal defy it.
func (c EscalationConfig) defies(refused, allowed int) bool {
	return c.DefianceRefused > 0 && refused >= c.DefianceRefused &&
		float64(refused) >= c.DefianceShare*float64(refused+allowed)
}

// use records a request of principal kind value from the address of key
// addr in network net.
func (t *traffic) use(net netip.Prefix, addr uint32, kind, value string, status uint32, at int64, window time.Duration) {
	if at-t.swept > int64(time.Minute) {
		t.sweep(at - int64(window))
		t.sweepFP(at - int64(window))
		t.swept = at
	}
	ok := status > 0 && status < 400
	u := t.nets[net]
	if u == nil {
		if !ok {
			return
		}
		if t.nets == nil {
			t.nets = map[netip.Prefix]*netUse{}
		}
		if len(t.nets) >= maxNets {
			t.full = true
			return
		}
		u = &netUse{}
		t.nets[net] = u
	}
	for i := range u.users {
		if x := &u.users[i]; x.kind == kind && x.value == value {
			if ok {
				x.ok++
				x.from(addr)
			} else {
				x.bad++
			}
			x.last = max(x.last, at)
			return
		}
	}
	switch {
	case !ok || u.busy:
	case len(u.users) >= maxNetUsers:
		u.busy = true
	default:
		u.users = append(u.users, netUser{kind: kind, value: value, ok: 1, last: at})
		u.users[len(u.users)-1].from(addr)
	}
}

// sweep forgets uses older than cut (event time, ns).
func (t *traffic) sweep(cut int64) {
	for n, u := range t.nets {
		u.users = slices.DeleteFunc(u.users, func(x netUser) bool { return x.last < cut })
		if len(u.users) == 0 && !u.busy {
			delete(t.nets, n)
		}
	}
	if len(t.nets) < maxNets {
		t.full = false
	}
}

// watch starts following a principal just throttled by a rule's action,
// and stop ends it (an enforced block or revocation replaced the throttle).
func (t *traffic) watch(key string, w *throttleWatch) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.throttles == nil {
		t.throttles = map[string]*throttleWatch{}
	}
	for k, x := range t.throttles { // lapsed throttles
		if w.since.After(x.until) {
			delete(t.throttles, k)
		}
	}
	if old := t.throttles[key]; old != nil && !w.since.After(old.until) {
		// The throttle goes on (a new anomaly while in force): so does the count.
		old.until, old.rate = w.until, w.rate
		return
	}
	t.throttles[key] = w
	t.watching.Store(int32(len(t.throttles)))
}

func (t *traffic) stop(key string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.throttles, key)
	t.watching.Store(int32(len(t.throttles)))
}

// defied returns, for a principal under a throttle in force at now, how
// it defied it, or "" when it did not.
func (t *traffic) defied(key string, now time.Time, c EscalationConfig) string {
	t.mu.Lock()
	defer t.mu.Unlock()
	w := t.throttles[key]
	if w == nil || now.After(w.until) || !c.defies(w.refused, w.allowed) {
		return ""
	}
	return fmt.Sprintf("throttled since %s by rule %s, it went on: %s (defiance_refused %d, defiance_share %g): throttle escalated to block",
		w.since.UTC().Format(time.RFC3339), w.rule, w.tally(now), c.DefianceRefused, c.DefianceShare)
}

// networkSpared returns why the policy must not block prefix p whole, or
// "": principals with good history (requests that succeeded, more than
// failed, within the window before at) use it and no action of the
// responder was taken on them; or the responder cannot tell, because it
// sees no traffic (no ObserveEvent: a backtest of anomalies), its record
// of networks is full, or its record from before the start is still
// loading (record_load.go).
func (r *Responder) networkSpared(p netip.Prefix, at time.Time) string {
	t := &r.traffic
	if why := r.recordLoading(p.String()); why != "" {
		return why
	}
	if !t.seen.Load() {
		return fmt.Sprintf("the responder sees no traffic, so it cannot tell whether principals with good history use %s", p)
	}
	cut := at.Add(-r.history.window).UnixNano()
	var users []prinKey
	busy := false
	add := func(u *netUse) {
		busy = busy || u.busy
		for _, x := range u.users {
			if x.last >= cut && x.ok > x.bad {
				users = append(users, prinKey{x.kind, x.value})
			}
		}
	}
	t.mu.Lock()
	full := t.full
	bits := 24
	if p.Addr().Is6() {
		bits = 48
	}
	if p.Bits() >= bits { // within one recorded network
		if n, err := p.Addr().Prefix(bits); err == nil && t.nets[n] != nil {
			add(t.nets[n])
		}
	} else {
		for n, u := range t.nets {
			if n.Overlaps(p) {
				add(u)
			}
		}
	}
	t.mu.Unlock()
	if full {
		return fmt.Sprintf("the responder's record of networks is full, so it cannot tell whether principals with good history use %s", p)
	}
	if busy {
		return fmt.Sprintf("more than %d principals with good history use %s", maxNetUsers, p)
	}
	if n, list := r.goodHistory(users); n > 0 {
		return fmt.Sprintf("%d principal(s) with good history use %s (%s)", n, p, list)
	}
	return ""
}

// goodHistory returns how many of users the responder has not acted on
// (those keep their good history) and the first three of them, sorted, as
// "kind value, …" for an action's reason.
func (r *Responder) goodHistory(users []prinKey) (int, string) {
	var good []string
	for _, u := range users {
		if r.history.Acted(u.kind, u.value) {
			continue // a principal the responder acted on has no good history
		}
		good = append(good, u.kind+" "+u.value)
	}
	slices.Sort(good)
	n := len(good)
	if n > 3 {
		good = append(good[:3], "…")
	}
	return n, strings.Join(good, ", ")
}

// addressSpared returns why the policy must not block the address a, or
// "": principals with good history (requests that succeeded from a, more
// than failed, within the window before at) use it, other than those
// except names ("kind value": the anomaly's principal and members, the
// stolen credential and its thief) and those the responder acted on. A
// network whose record is busy spares all its addresses; so does a full
// record that lacks the network, and so does any while the record from
// before the start loads. A responder that sees no traffic relies on the
// detector, which names no address established principals share.
func (r *Responder) addressSpared(a netip.Addr, at time.Time, except map[string]bool) string {
	t := &r.traffic
	if why := r.recordLoading(a.String()); why != "" {
		return why
	}
	if !t.seen.Load() {
		return ""
	}
	a = a.Unmap()
	bits := 24
	if a.Is6() {
		bits = 48
	}
	n, err := a.Prefix(bits)
	if err != nil {
		return ""
	}
	k := addrKey(a)
	cut := at.Add(-r.history.window).UnixNano()
	var users []prinKey
	t.mu.Lock()
	u, full := t.nets[n], t.full
	busy := u != nil && u.busy
	if u != nil {
		for _, x := range u.users {
			if x.last >= cut && x.ok > x.bad && x.uses(k) && !except[x.kind+" "+x.value] {
				users = append(users, prinKey{x.kind, x.value})
			}
		}
	}
	t.mu.Unlock()
	switch {
	case u == nil && full:
		return fmt.Sprintf("the responder's record of networks is full, so it cannot tell whether principals with good history use %s", a)
	case busy:
		return fmt.Sprintf("more than %d principals with good history use %s, the network of %s", maxNetUsers, n, a)
	}
	if c, list := r.goodHistory(users); c > 0 {
		return fmt.Sprintf("%d principal(s) with good history use %s (%s)", c, a, list)
	}
	return ""
}
