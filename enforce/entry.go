// Package enforce provides enforcement entries (blocks, throttles,
// revocations and allow entries keyed by IP, CIDR, API key, token, subject or
// fingerprint) and the Matcher the proxy consults on every request. The Matcher answers from
// memory; entries reach it from the KV bucket through enforce/kv.
package enforce

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/apiguard/apiguard/event"
)

// Kind is what an entry matches on.
type Kind uint8

// The kinds, in the order Matcher consults them.
const (
	KindInvalid Kind = iota
	KindIP
	KindCIDR
	KindKey
	KindToken
	KindSub
	KindFP
	numKinds
)

var kindNames = [numKinds]string{"", event.KindIP, event.KindCIDR, event.KindKey, event.KindToken, event.KindSub, event.KindFP}

// String returns the wire name of the kind ("ip", "cidr", …).
func (k Kind) String() string {
	if k >= numKinds {
		return fmt.Sprintf("kind(%d)", k)
	}
	return kindNames[k]
}

// ParseKind returns the kind named s.
func ParseKind(s string) (Kind, error) {
	for k := KindIP; k < numKinds; k++ {
		if kindNames[k] == s {
			return k, nil
		}
	}
	return KindInvalid, fmt.Errorf("unknown kind %q (want one of ip, cidr, key, token, sub, fp)", s)
}

// Action is what an entry does to a matching request.
type Action uint8

// Sanctions, from the weakest to the strongest: when several entries match
// a request, the strongest wins. ActionAllow is not a sanction but an
// exemption (see Matcher.Match): it is never a Verdict's action.
const (
	ActionNone Action = iota
	ActionThrottle
	ActionRevoke
	ActionBlock
	// ActionAllow marks a principal that is never blocked: the responder
	// and operators' block commands spare it, and the proxy lets an
	// allowed address through whatever ip or cidr entry covers it.
	ActionAllow
)

// The names are event's action names: an entry's action is the
// event.ActionKind that put it (see Kind and ActionOf).
var actionNames = [...]string{"none", event.ActionNameThrottle, event.ActionNameRevoke, event.ActionNameBlock, event.ActionNameAllow}

// actionKinds maps each action to the event.ActionKind that puts it.
var actionKinds = [...]event.ActionKind{event.ActionKind_ACTION_UNSPECIFIED, event.ActionKind_ACTION_THROTTLE,
	event.ActionKind_ACTION_REVOKE, event.ActionKind_ACTION_BLOCK, event.ActionKind_ACTION_ALLOW}

// Kind returns the event.ActionKind that puts an entry of action a
// (ACTION_UNSPECIFIED for ActionNone).
func (a Action) Kind() event.ActionKind {
	if int(a) >= len(actionKinds) {
		return event.ActionKind_ACTION_UNSPECIFIED
	}
	return actionKinds[a]
}

// ActionOf returns the action of the entry that an action of kind k puts,
// and false for the kinds that put none (unblock, unallow, unspecified).
func ActionOf(k event.ActionKind) (Action, bool) {
	for a := ActionThrottle; int(a) < len(actionKinds); a++ {
		if actionKinds[a] == k {
			return a, true
		}
	}
	return ActionNone, false
}

// String returns the wire name of the action.
func (a Action) String() string {
	if int(a) >= len(actionNames) {
		return fmt.Sprintf("action(%d)", a)
	}
	return actionNames[a]
}

// ParseAction returns the action named s.
func ParseAction(s string) (Action, error) {
	for a := ActionThrottle; int(a) < len(actionNames); a++ {
		if actionNames[a] == s {
			return a, nil
		}
	}
	return ActionNone, fmt.Errorf("unknown action %q (want throttle, revoke, block or allow)", s)
}

// ParseKey checks a principal given as kind and value (an operator's
// arguments, a Grafana request, an anomaly's principal) and returns its key
// with the value in canonical form.
func ParseKey(kind, value string) (Key, error) {
	k, err := ParseKind(kind)
	if err != nil {
		return Key{}, err
	}
	v, err := CanonicalValue(k, value)
	if err != nil {
		return Key{}, err
	}
	return Key{Kind: k, Value: v}, nil
}

// Principal returns k as the event's principal.
func (k Key) Principal() *event.Principal {
	return &event.Principal{Kind: k.Kind.String(), Value: k.Value}
}

// String returns "kind value".
func (k Key) String() string { return k.Kind.String() + " " + k.Value }

// Entry is one block, throttle, revocation or allow entry. Entries are values; the
// Matcher holds pointers to copies it owns and never changes them.
type Entry struct {
	Kind      Kind
	Value     string // canonical: addresses and prefixes in netip's text form
	Action    Action
	Reason    string // for analysts; never sent to the client
	AnomalyID string
	Actor     string // policy name or operator
	Created   time.Time
	Expires   time.Time // zero: never
	// Trigger is the event time of the request that caused the entry, zero
	// for operators' entries. The proxy reports the loop latency from it.
	Trigger time.Time
	// Rate is a throttle entry's allowed rate in requests per second for
	// the principal (the proxy's rate limiter enforces it, with a burst of
	// one second's worth). Zero on other actions, and on throttle entries
	// written before rates existed: the proxy's configured limit applies.
	Rate float64
}

// Expired reports whether the entry no longer applies at now.
func (e *Entry) Expired(now time.Time) bool {
	return !e.Expires.IsZero() && !now.Before(e.Expires)
}

// Normalize checks the entry and puts its value in canonical form.
func (e *Entry) Normalize() error {
	if e.Kind == KindInvalid || e.Kind >= numKinds {
		return errors.New("entry has no kind")
	}
	if e.Action == ActionNone || int(e.Action) >= len(actionNames) {
		return fmt.Errorf("%s entry %q has no action", e.Kind, e.Value)
	}
	if e.Rate < 0 || e.Rate != e.Rate || e.Rate > 1e9 {
		return fmt.Errorf("%s entry %q has rate %v (want 0 to 1e9 requests per second)", e.Kind, e.Value, e.Rate)
	}
	if e.Rate != 0 && e.Action != ActionThrottle {
		return fmt.Errorf("%s entry %q: a rate is for throttle entries, not %s", e.Kind, e.Value, e.Action)
	}
	v, err := CanonicalValue(e.Kind, e.Value)
	if err != nil {
		return err
	}
	e.Value = v
	return nil
}

// CanonicalValue checks a value of kind k and returns its canonical form:
// addresses unmapped, prefixes masked, other values trimmed and non-empty.
func CanonicalValue(k Kind, v string) (string, error) {
	switch k {
	case KindIP:
		a, err := netip.ParseAddr(strings.TrimSpace(v))
		if err != nil {
			return "", fmt.Errorf("ip entry: %w", err)
		}
		return canonicalAddr(v, a.Unmap()), nil
	case KindCIDR:
		p, err := netip.ParsePrefix(strings.TrimSpace(v))
		if err != nil {
			return "", fmt.Errorf("cidr entry: %w", err)
		}
		if p.Addr().Is4In6() {
			p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
		}
		return canonicalPrefix(v, p.Masked()), nil
	default:
		v = strings.TrimSpace(v)
		if v == "" {
			return "", fmt.Errorf("%s entry has an empty value", k)
		}
		if len(v) > 512 {
			return "", fmt.Errorf("%s entry value is %d bytes, limit 512", k, len(v))
		}
		return v, nil
	}
}

// canonicalAddr and canonicalPrefix return v if it is already the text of
// a or p, which it mostly is (values come from the bucket in canonical
// form), so that loading many entries does not allocate their values
// twice; otherwise the text of a or p.
func canonicalAddr(v string, a netip.Addr) string {
	var buf [64]byte
	if b := a.AppendTo(buf[:0]); string(b) != v {
		return string(b)
	}
	return v
}

func canonicalPrefix(v string, p netip.Prefix) string {
	var buf [64]byte
	if b := p.AppendTo(buf[:0]); string(b) != v {
		return string(b)
	}
	return v
}
