package enforce

import (
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/gaissmai/bart"
)

// Verdict is the Matcher's answer for one request: the strongest live entry
// that matched, or ActionNone and a nil Entry.
type Verdict struct {
	Action Action
	Entry  *Entry // read-only
}

// Key names one entry.
type Key struct {
	Kind  Kind
	Value string
}

// Change is one put (Entry set) or deletion (Entry nil, Key set). A put
// takes its key from the entry.
type Change struct {
	Key   Key
	Entry *Entry
}

// Put returns the change that stores e.
func Put(e Entry) Change { return Change{Key: Key{e.Kind, e.Value}, Entry: &e} }

// Delete returns the change that removes the entry named k.
func Delete(k Key) Change { return Change{Key: k} }

// snapshot is an immutable set of entries. Strings of the key, token, sub
// and fp kinds are in strs, indexed by Kind. CIDR allow entries have a
// table of their own, so that a longest-prefix lookup of either kind is
// never shadowed by a prefix of the other.
type snapshot struct {
	ips    layer[netip.Addr]
	cidrs  *bart.Table[*Entry] // sanctions
	allows *bart.Table[*Entry] // allow entries
	strs   [numKinds]layer[string]
	size   int
}

func emptySnapshot() *snapshot {
	return &snapshot{cidrs: new(bart.Table[*Entry]), allows: new(bart.Table[*Entry])}
}

// Matcher answers whether a request's identities are blocked, throttled or
// revoked, and whether a principal is allowed. Lookups read an immutable snapshot behind an atomic.Pointer: they
// take no lock, do not allocate, and are safe from any number of goroutines.
//
// Changes (Replace, Apply) build a new snapshot and swap it in; they must
// come from one goroutine at a time, in practice the KV watcher. The zero
// value is not usable; use NewMatcher.
type Matcher struct {
	snap atomic.Pointer[snapshot]
}

// NewMatcher returns an empty Matcher.
func NewMatcher() *Matcher {
	m := &Matcher{}
	m.snap.Store(emptySnapshot())
	return m
}

// Match returns the strongest sanction matching id that has not expired at
// now.
//
// Allow entries take precedence by identity: a live allow entry on the
// request's address, or on any network holding it, sets aside every ip and
// cidr entry for that address, however specific (an allowed /24 is not
// blocked by a block on one of its addresses; an allowed address is not
// blocked by a block on its network). Entries on the request's other
// identities still apply: an allowed address presenting a blocked key is
// refused for the key, and an allowed key on a blocked network is refused
// for the network. An allow entry on a key, token, subject or fingerprint
// is the only entry under its name (one entry per key), so it simply
// stands where a sanction would.
func (m *Matcher) Match(id *Identity, now time.Time) Verdict {
	s := m.snap.Load()
	var best *Entry
	consider := func(e *Entry) {
		if e != nil && e.Action != ActionAllow && (best == nil || e.Action > best.Action) && !e.Expired(now) {
			best = e
		}
	}
	if id.IP.IsValid() {
		ip := id.IP.Unmap()
		e := s.ips.get(ip)
		if !isAllow(e, now) && s.allowedAddr(ip, now) == nil {
			consider(e)
			if s.cidrs.Size() > 0 {
				if e, ok := s.cidrs.Lookup(ip); ok {
					consider(e)
				}
			}
		}
	}
	if id.KeyID != "" {
		consider(s.strs[KindKey].get(id.KeyID))
	}
	if id.TokenID != "" {
		consider(s.strs[KindToken].get(id.TokenID))
	}
	if id.TokenHash != "" {
		consider(s.strs[KindToken].get(id.TokenHash))
	}
	if id.Subject != "" {
		consider(s.strs[KindSub].get(id.Subject))
	}
	if id.FP != "" {
		consider(s.strs[KindFP].get(id.FP))
	}
	if best == nil {
		return Verdict{}
	}
	return Verdict{Action: best.Action, Entry: best}
}

// isAllow reports whether e is a live allow entry.
func isAllow(e *Entry, now time.Time) bool {
	return e != nil && e.Action == ActionAllow && !e.Expired(now)
}

// allowedAddr returns the live cidr allow entry holding ip, or nil. It does
// not allocate unless the most specific allow entry has expired.
func (s *snapshot) allowedAddr(ip netip.Addr, now time.Time) *Entry {
	if s.allows.Size() == 0 {
		return nil
	}
	e, ok := s.allows.Lookup(ip)
	if !ok {
		return nil
	}
	if !e.Expired(now) {
		return e
	}
	return s.allowedPrefix(netip.PrefixFrom(ip, ip.BitLen()), now)
}

// allowedPrefix returns a live cidr allow entry on p or on a network
// holding it, or nil.
func (s *snapshot) allowedPrefix(p netip.Prefix, now time.Time) *Entry {
	for _, e := range s.allows.Supernets(p) {
		if !e.Expired(now) {
			return e
		}
	}
	return nil
}

// Allowed returns the live allow entry that covers the principal named by
// k, or nil: for an address, an allow entry on it or on a network holding
// it; for a network, one on it or on a network holding all of it (a
// network that merely holds allowed addresses is not allowed: blocking it
// spares them, see Match); for the other kinds, an allow entry on the
// same value. The responder and operators' block commands ask it before
// they block.
func (m *Matcher) Allowed(k Key, now time.Time) *Entry {
	s := m.snap.Load()
	switch k.Kind {
	case KindIP:
		a, err := netip.ParseAddr(k.Value)
		if err != nil {
			return nil
		}
		a = a.Unmap()
		if e := s.ips.get(a); isAllow(e, now) {
			return e
		}
		return s.allowedAddr(a, now)
	case KindCIDR:
		v, err := CanonicalValue(KindCIDR, k.Value)
		if err != nil {
			return nil
		}
		return s.allowedPrefix(netip.MustParsePrefix(v), now)
	case KindKey, KindToken, KindSub, KindFP:
		if e := s.strs[k.Kind].get(k.Value); isAllow(e, now) {
			return e
		}
	}
	return nil
}

// Len returns the number of entries, expired ones included until they are deleted.
func (m *Matcher) Len() int { return m.snap.Load().size }

// Get returns the entry for k, or nil.
func (m *Matcher) Get(k Key) *Entry {
	s := m.snap.Load()
	switch k.Kind {
	case KindIP:
		a, err := netip.ParseAddr(k.Value)
		if err != nil {
			return nil
		}
		return s.ips.get(a.Unmap())
	case KindCIDR:
		p, err := netip.ParsePrefix(k.Value)
		if err != nil {
			return nil
		}
		return s.cidr(p.Masked())
	case KindKey, KindToken, KindSub, KindFP:
		return s.strs[k.Kind].get(k.Value)
	}
	return nil
}

// Entries returns a copy of every entry, for listing.
func (m *Matcher) Entries() []Entry {
	s := m.snap.Load()
	out := make([]Entry, 0, s.size)
	add := func(e *Entry) { out = append(out, *e) }
	s.ips.all(add)
	for _, e := range s.cidrs.All() {
		add(e)
	}
	for _, e := range s.allows.All() {
		add(e)
	}
	for k := KindKey; k < numKinds; k++ {
		s.strs[k].all(add)
	}
	return out
}

// Replace swaps in a snapshot holding exactly entries. Entries that do not
// normalise are returned as errors and left out; the rest are applied.
func (m *Matcher) Replace(entries []Entry) []error {
	changes := make([]Change, len(entries))
	for i := range entries {
		changes[i] = Change{Entry: &entries[i]}
	}
	return m.apply(emptySnapshot(), changes)
}

// Apply makes changes, in order, in one new snapshot. Entries that do not
// normalise are returned as errors and left out; the rest are applied.
func (m *Matcher) Apply(changes []Change) []error {
	return m.apply(m.snap.Load(), changes)
}

func (m *Matcher) apply(old *snapshot, changes []Change) []error {
	next := *old
	var errs []error
	ips := map[netip.Addr]*Entry{}
	var strs [numKinds]map[string]*Entry
	for k := KindKey; k < numKinds; k++ {
		strs[k] = map[string]*Entry{}
	}
	// change records one put (e != nil) or delete, keeping size right.
	change := func(k Key, e *Entry) {
		switch k.Kind {
		case KindIP:
			a, err := netip.ParseAddr(k.Value)
			if err != nil {
				return
			}
			a = a.Unmap()
			prev, pending := ips[a]
			if !pending {
				prev = next.ips.get(a)
			}
			next.size += delta(prev, e)
			ips[a] = e
		case KindCIDR:
			p, err := netip.ParsePrefix(k.Value)
			if err != nil {
				return
			}
			p = p.Masked()
			// One entry per key: it lives in one of the two tables.
			prev := next.cidr(p)
			next.size += delta(prev, e)
			if prev != nil && prev.Action == ActionAllow {
				next.allows = next.allows.DeletePersist(p)
			} else if prev != nil {
				next.cidrs = next.cidrs.DeletePersist(p)
			}
			switch {
			case e == nil:
			case e.Action == ActionAllow:
				next.allows = next.allows.InsertPersist(p, e)
			default:
				next.cidrs = next.cidrs.InsertPersist(p, e)
			}
		case KindKey, KindToken, KindSub, KindFP:
			prev, pending := strs[k.Kind][k.Value]
			if !pending {
				prev = next.strs[k.Kind].get(k.Value)
			}
			next.size += delta(prev, e)
			strs[k.Kind][k.Value] = e
		}
	}
	for _, c := range changes {
		if c.Entry == nil {
			if v, err := CanonicalValue(c.Key.Kind, c.Key.Value); err == nil {
				change(Key{c.Key.Kind, v}, nil)
			}
			continue
		}
		e := *c.Entry // the snapshot owns its copy
		if err := e.Normalize(); err != nil {
			errs = append(errs, err)
			continue
		}
		change(Key{e.Kind, e.Value}, &e)
	}
	next.ips = next.ips.with(ips)
	for k := KindKey; k < numKinds; k++ {
		next.strs[k] = next.strs[k].with(strs[k])
	}
	m.snap.Store(&next)
	return errs
}

// cidr returns the entry on exactly p, in either table, or nil.
func (s *snapshot) cidr(p netip.Prefix) *Entry {
	if e, ok := s.cidrs.Get(p); ok {
		return e
	}
	if e, ok := s.allows.Get(p); ok {
		return e
	}
	return nil
}

func delta(prev, next *Entry) int {
	switch {
	case prev == nil && next != nil:
		return 1
	case prev != nil && next == nil:
		return -1
	}
	return 0
}
