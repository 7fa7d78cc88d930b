package enforce

// layer is a map split in two, so that a small change does not copy a large
// map: base is big and shared between snapshots, over holds the changes made
// since base was built (a nil value records a deletion). Both maps are
// read-only once the layer is published.
type layer[K comparable] struct {
	base map[K]*Rule
	over map[K]*Rule
}

// get returns the entry for k, or nil.
func (l *layer[K]) get(k K) *Rule {
	if e, ok := l.over[k]; ok {
		return e
	}
	return l.base[k]
}

// with returns a copy of l with the changes applied. When the overlay grows
// past a sixteenth of the base (and past 1024 entries) it is folded into a new
// base, so a change costs O(overlay) and, amortised, O(1) for the base copy.
func (l layer[K]) with(changes map[K]*Rule) layer[K] {
	if len(changes) == 0 {
		return l
	}
	over := make(map[K]*Rule, len(l.over)+len(changes))
	for k, e := range l.over {
		over[k] = e
	}
	for k, e := range changes {
		over[k] = e
	}
	if len(over) <= 1024 || len(over) <= len(l.base)/16 {
		return layer[K]{base: l.base, over: over}
	}
	base := make(map[K]*Rule, len(l.base)+len(over))
	for k, e := range l.base {
		base[k] = e
	}
	for k, e := range over {
		if e == nil {
			delete(base, k)
		} else {
			base[k] = e
		}
	}
	return layer[K]{base: base}
}

// all calls f for every live rule.
func (l *layer[K]) all(f func(*Rule)) {
	for k, e := range l.base {
		if _, changed := l.over[k]; !changed {
			f(e)
		}
	}
	for _, e := range l.over {
		if e != nil {
			f(e)
		}
	}
}
