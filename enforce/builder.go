package enforce

import "net/netip"

// Builder collects entries for a Matcher's next snapshot, which Load swaps
// in at once: a full load builds one snapshot, not one per entry. A
// Builder is not safe for concurrent use; the zero value is not usable,
// use NewBuilder.
type Builder struct {
	s    *snapshot
	ips  map[netip.Addr]*Rule
	strs [numKinds]map[string]*Rule
}

// NewBuilder returns an empty Builder.
func NewBuilder() *Builder {
	b := &Builder{s: emptySnapshot(), ips: map[netip.Addr]*Rule{}}
	for k := KindKey; k < numKinds; k++ {
		b.strs[k] = map[string]*Rule{}
	}
	return b
}

// Grow makes room for n more entries of kind k, so that a load whose size
// is known does not grow its maps step by step.
func (b *Builder) Grow(k Kind, n int) {
	switch {
	case k == KindIP && len(b.ips) == 0:
		b.ips = make(map[netip.Addr]*Rule, n)
	case k >= KindKey && k < numKinds && len(b.strs[k]) == 0:
		b.strs[k] = make(map[string]*Rule, n)
	}
}

// Len returns the number of entries put and not deleted.
func (b *Builder) Len() int { return b.s.size }

// Put normalises e and stores it, replacing the entry of the same key.
func (b *Builder) Put(e Entry) error {
	if err := e.Normalize(); err != nil {
		return err
	}
	b.set(Key{e.Kind, e.Value}, &e)
	return nil
}

// Delete removes the entry named k, if there is one.
func (b *Builder) Delete(k Key) {
	if v, err := CanonicalValue(k.Kind, k.Value); err == nil {
		b.set(Key{k.Kind, v}, nil)
	}
}

// set puts e (normalised) under k, or deletes k when e is nil.
func (b *Builder) set(k Key, e *Entry) {
	var r *Rule
	if e != nil {
		r = ruleOf(e)
	}
	var prev *Rule
	switch k.Kind {
	case KindIP:
		a, err := netip.ParseAddr(k.Value)
		if err != nil {
			return
		}
		a = a.Unmap()
		prev = b.ips[a]
		if r == nil {
			delete(b.ips, a)
		} else {
			b.ips[a] = r
		}
	case KindCIDR:
		p, err := netip.ParsePrefix(k.Value)
		if err != nil {
			return
		}
		p = p.Masked()
		prev = b.s.cidr(p)
		if prev != nil && prev.Action == ActionAllow {
			b.s.allows.Delete(p)
		} else if prev != nil {
			b.s.cidrs.Delete(p)
		}
		switch {
		case r == nil:
		case r.Action == ActionAllow:
			b.s.allows.Insert(p, r)
		default:
			b.s.cidrs.Insert(p, r)
		}
	case KindKey, KindToken, KindSub, KindFP:
		prev = b.strs[k.Kind][k.Value]
		if r == nil {
			delete(b.strs[k.Kind], k.Value)
		} else {
			b.strs[k.Kind][k.Value] = r
		}
	default:
		return
	}
	b.s.size += delta(prev, r)
	switch {
	case e != nil && e.Action == ActionAllow:
		if b.s.allowed == nil {
			b.s.allowed = map[Key]*Entry{}
		}
		c := *e
		b.s.allowed[k] = &c
	case prev != nil && prev.Action == ActionAllow:
		delete(b.s.allowed, k)
	}
}

// Load swaps in the snapshot b holds. b must not be used afterwards.
func (m *Matcher) Load(b *Builder) {
	s := b.s
	s.ips = layer[netip.Addr]{base: b.ips}
	for k := KindKey; k < numKinds; k++ {
		s.strs[k] = layer[string]{base: b.strs[k]}
	}
	*b = Builder{}
	m.snap.Store(s)
}
