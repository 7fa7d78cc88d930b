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
// and fp kinds are in strs, indexed by Kind.
type snapshot struct {
	ips   layer[netip.Addr]
	cidrs *bart.Table[*Entry]
	strs  [numKinds]layer[string]
	size  int
}

// Matcher answers whether a request's identities are blocked, throttled or
// revoked. Lookups read an immutable snapshot behind an atomic.Pointer: they
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
	m.snap.Store(&snapshot{cidrs: new(bart.Table[*Entry])})
	return m
}

// Match returns the strongest entry matching id that has not expired at now.
func (m *Matcher) Match(id *Identity, now time.Time) Verdict {
	s := m.snap.Load()
	var best *Entry
	consider := func(e *Entry) {
		if e != nil && (best == nil || e.Action > best.Action) && !e.Expired(now) {
			best = e
		}
	}
	if id.IP.IsValid() {
		ip := id.IP.Unmap()
		consider(s.ips.get(ip))
		if s.cidrs.Size() > 0 {
			if e, ok := s.cidrs.Lookup(ip); ok {
				consider(e)
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
		e, _ := s.cidrs.Get(p.Masked())
		return e
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
	return m.apply(&snapshot{cidrs: new(bart.Table[*Entry])}, changes)
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
			prev, _ := next.cidrs.Get(p)
			next.size += delta(prev, e)
			if e == nil {
				next.cidrs = next.cidrs.DeletePersist(p)
			} else {
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

func delta(prev, next *Entry) int {
	switch {
	case prev == nil && next != nil:
		return 1
	case prev != nil && next == nil:
		return -1
	}
	return 0
}
