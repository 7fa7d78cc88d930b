package enforce

import (
	"maps"
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/gaissmai/bart"
)

// Verdict is the Matcher's answer for one request: the strongest live entry
// that matched, or ActionNone and a nil Entry.
type Verdict struct {
	Action Action
	Entry  *Rule // read-only
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

// snapshot is an immutable set of rules. Strings of the key, token, sub
// and fp kinds are in strs, indexed by Kind. CIDR allow entries have a
// table of their own, so that a longest-prefix lookup of either kind is
// never shadowed by a prefix of the other. allowed holds the whole entry
// of every allow entry (reason, actor), by key in canonical form.
type snapshot struct {
	ips     layer[netip.Addr]
	cidrs   *bart.Table[*Rule] // sanctions
	allows  *bart.Table[*Rule] // allow entries
	strs    [numKinds]layer[string]
	allowed map[Key]*Entry
	size    int
}

func emptySnapshot() *snapshot {
	return &snapshot{cidrs: new(bart.Table[*Rule]), allows: new(bart.Table[*Rule])}
}

// Matcher answers whether a request's identities are blocked, throttled or
// revoked, and whether a principal is allowed. Lookups read an immutable
// snapshot behind an atomic.Pointer: they take no lock, do not allocate,
// and are safe from any number of goroutines.
//
// It holds entries in compact form (Rule): the analyst's fields of blocks,
// throttles and revocations are dropped (Get and Entries return them
// empty); those of allow entries are kept.
//
// Changes (Replace, Apply, Load) build a new snapshot and swap it in; they
// must come from one goroutine at a time, in practice the KV watcher. The
// zero value is not usable; use NewMatcher.
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
	var best *Rule
	consider := func(e *Rule) {
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

// isAllow reports whether e is a live allow rule.
func isAllow(e *Rule, now time.Time) bool {
	return e != nil && e.Action == ActionAllow && !e.Expired(now)
}

// allowedAddr returns the live cidr allow rule holding ip, or nil. It does
// not allocate unless the most specific allow entry has expired.
func (s *snapshot) allowedAddr(ip netip.Addr, now time.Time) *Rule {
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

// allowedPrefix returns a live cidr allow rule on p or on a network
// holding it, or nil.
func (s *snapshot) allowedPrefix(p netip.Prefix, now time.Time) *Rule {
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
// they block. The entry is whole (reason, actor) and read-only.
func (m *Matcher) Allowed(k Key, now time.Time) *Entry {
	s := m.snap.Load()
	var r *Rule
	switch k.Kind {
	case KindIP:
		a, err := netip.ParseAddr(k.Value)
		if err != nil {
			return nil
		}
		a = a.Unmap()
		if e := s.ips.get(a); isAllow(e, now) {
			r = e
		} else {
			r = s.allowedAddr(a, now)
		}
	case KindCIDR:
		v, err := CanonicalValue(KindCIDR, k.Value)
		if err != nil {
			return nil
		}
		r = s.allowedPrefix(netip.MustParsePrefix(v), now)
	case KindKey, KindToken, KindSub, KindFP:
		if e := s.strs[k.Kind].get(k.Value); isAllow(e, now) {
			r = e
		}
	}
	if r == nil {
		return nil
	}
	if e := s.allowed[Key{r.Kind, r.Value}]; e != nil {
		return e
	}
	e := r.Entry()
	return &e
}

// Len returns the number of entries, expired ones included until they are deleted.
func (m *Matcher) Len() int { return m.snap.Load().size }

// Get returns the entry for k, or nil. Only allow entries keep the
// analyst's fields (see Rule).
func (m *Matcher) Get(k Key) *Entry {
	r := m.snap.Load().get(k)
	if r == nil {
		return nil
	}
	return m.entry(r)
}

// entry returns r whole: the allow entry it stands for, or r as an entry.
func (m *Matcher) entry(r *Rule) *Entry {
	if r.Action == ActionAllow {
		if e := m.snap.Load().allowed[Key{r.Kind, r.Value}]; e != nil {
			c := *e
			return &c
		}
	}
	e := r.Entry()
	return &e
}

// get returns the rule for k, or nil.
func (s *snapshot) get(k Key) *Rule {
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

// Rules calls f for every rule, in no order, until f returns false. It
// reads one snapshot: changes made meanwhile are not seen.
func (m *Matcher) Rules(f func(*Rule) bool) {
	s := m.snap.Load()
	more := true
	add := func(r *Rule) {
		if more {
			more = f(r)
		}
	}
	s.ips.all(add)
	for _, r := range s.cidrs.All() {
		add(r)
	}
	for _, r := range s.allows.All() {
		add(r)
	}
	for k := KindKey; k < numKinds; k++ {
		s.strs[k].all(add)
	}
}

// Entries returns a copy of every entry, for listing. Only allow entries
// keep the analyst's fields (see Rule).
func (m *Matcher) Entries() []Entry {
	out := make([]Entry, 0, m.Len())
	m.Rules(func(r *Rule) bool {
		out = append(out, *m.entry(r))
		return true
	})
	return out
}

// Replace swaps in a snapshot holding exactly entries. Entries that do not
// normalise are returned as errors and left out; the rest are applied.
func (m *Matcher) Replace(entries []Entry) []error {
	b := NewBuilder()
	var errs []error
	for i := range entries {
		if err := b.Put(entries[i]); err != nil {
			errs = append(errs, err)
		}
	}
	m.Load(b)
	return errs
}

// Apply makes changes, in order, in one new snapshot. Entries that do not
// normalise are returned as errors and left out; the rest are applied.
func (m *Matcher) Apply(changes []Change) []error {
	old := m.snap.Load()
	next := *old
	var errs []error
	ips := map[netip.Addr]*Rule{}
	var strs [numKinds]map[string]*Rule
	for k := KindKey; k < numKinds; k++ {
		strs[k] = map[string]*Rule{}
	}
	allowedCopied := false
	// setAllowed records the whole allow entry under k (nil: none).
	setAllowed := func(k Key, e *Entry) {
		if !allowedCopied {
			if _, had := next.allowed[k]; !had && e == nil {
				return
			}
			next.allowed = maps.Clone(next.allowed)
			if next.allowed == nil {
				next.allowed = map[Key]*Entry{}
			}
			allowedCopied = true
		}
		if e == nil {
			delete(next.allowed, k)
		} else {
			next.allowed[k] = e
		}
	}
	// change records one put (e != nil) or delete, keeping size right.
	change := func(k Key, e *Entry) {
		var r *Rule
		if e != nil {
			r = ruleOf(e)
		}
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
			next.size += delta(prev, r)
			ips[a] = r
		case KindCIDR:
			p, err := netip.ParsePrefix(k.Value)
			if err != nil {
				return
			}
			p = p.Masked()
			// One entry per key: it lives in one of the two tables.
			prev := next.cidr(p)
			next.size += delta(prev, r)
			if prev != nil && prev.Action == ActionAllow {
				next.allows = next.allows.DeletePersist(p)
			} else if prev != nil {
				next.cidrs = next.cidrs.DeletePersist(p)
			}
			switch {
			case r == nil:
			case r.Action == ActionAllow:
				next.allows = next.allows.InsertPersist(p, r)
			default:
				next.cidrs = next.cidrs.InsertPersist(p, r)
			}
		case KindKey, KindToken, KindSub, KindFP:
			prev, pending := strs[k.Kind][k.Value]
			if !pending {
				prev = next.strs[k.Kind].get(k.Value)
			}
			next.size += delta(prev, r)
			strs[k.Kind][k.Value] = r
		default:
			return
		}
		if e != nil && e.Action == ActionAllow {
			setAllowed(k, e)
		} else {
			setAllowed(k, nil)
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

// cidr returns the rule on exactly p, in either table, or nil.
func (s *snapshot) cidr(p netip.Prefix) *Rule {
	if e, ok := s.cidrs.Get(p); ok {
		return e
	}
	if e, ok := s.allows.Get(p); ok {
		return e
	}
	return nil
}

func delta(prev, next *Rule) int {
	switch {
	case prev == nil && next != nil:
		return 1
	case prev != nil && next == nil:
		return -1
	}
	return 0
}
