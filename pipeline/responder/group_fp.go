package responder

import (
	"context"
	"fmt"
	"hash/maphash"
	"slices"
	"strings"
	"time"

	"github.com/apiguard/apiguard/event"
)

// Fingerprint groups: several principals flagged within the group window
// that present one client fingerprint (event.ClientFingerprint) which no
// principal with good history presents become one fp entry. The responder
// learns from every event (ObserveEvent) which fingerprint each principal
// presents and which principals succeed under each fingerprint.

// fpSeed keys the cache from an event's fingerprint fields to its
// fingerprint.
var fpSeed = maphash.MakeSeed()

// prinKey is a principal as the fingerprint records key it.
type prinKey struct{ kind, value string }

// prinUse is the fingerprint a principal last presented, allowed.
type prinUse struct {
	fp   string
	last int64 // event time, ns
}

// fpUse is who presented a fingerprint: its principals with successes
// (busy past maxNetUsers), and the principals flagged under it.
type fpUse struct {
	users   []netUser
	busy    bool
	flagged []fpFlag
}

// fpFlag is a principal the policy acted on while it presented the
// fingerprint.
type fpFlag struct {
	kind, value string
	at          time.Time // wall clock
}

// maxFPFlagged bounds the flagged principals a fingerprint's record names.
const maxFPFlagged = 64

// fpFields hashes the fields a client fingerprint is made of.
func fpFields(ev *event.RequestEvent) uint64 {
	var h maphash.Hash
	h.SetSeed(fpSeed)
	h.WriteString(ev.GetTlsFingerprint())
	h.WriteByte(0)
	h.WriteString(ev.GetHeaderFingerprint())
	h.WriteByte(0)
	h.WriteString(ev.GetUserAgent())
	h.WriteByte(0)
	h.WriteString(ev.GetAcceptLanguage())
	return h.Sum64()
}

// useFP records that principal kind value presented ev's fingerprint on
// an allowed request of status at event time at. t.mu is held.
func (t *traffic) useFP(ev *event.RequestEvent, fields uint64, kind, value string, status uint32, at int64) {
	fp, ok := t.fpNames[fields]
	if !ok {
		fp = event.ClientFingerprintOf(ev)
		if t.fpNames == nil {
			t.fpNames = map[uint64]string{}
		}
		if len(t.fpNames) < maxNets {
			t.fpNames[fields] = fp
		}
	}
	pk := prinKey{kind, value}
	if p, ok := t.prins[pk]; ok {
		// An older event (the load of the record from before the start,
		// interleaved with live ones) never replaces a newer fingerprint.
		if at >= p.last && (p.fp != fp || at-p.last > int64(time.Second)) {
			t.prins[pk] = prinUse{fp: fp, last: at}
		}
	} else if len(t.prins) < maxNets {
		if t.prins == nil {
			t.prins = map[prinKey]prinUse{}
		}
		t.prins[prinKey{strings.Clone(kind), strings.Clone(value)}] = prinUse{fp: fp, last: at}
	}
	good := status > 0 && status < 400
	u := t.fps[fp]
	if u == nil {
		if !good {
			return
		}
		if t.fps == nil {
			t.fps = map[string]*fpUse{}
		}
		if len(t.fps) >= maxNets {
			t.fpFull = true
			return
		}
		u = &fpUse{}
		t.fps[fp] = u
	}
	if u.busy {
		return // spared whatever its users do
	}
	for i := range u.users {
		if x := &u.users[i]; x.kind == kind && x.value == value {
			if good {
				x.ok++
			} else {
				x.bad++
			}
			x.last = max(x.last, at)
			return
		}
	}
	switch {
	case !good || u.busy:
	case len(u.users) >= maxNetUsers:
		u.busy = true
	default:
		u.users = append(u.users, netUser{kind: strings.Clone(kind), value: strings.Clone(value), ok: 1, last: at})
	}
}

// sweepFP forgets fingerprint records older than cut (event time, ns).
func (t *traffic) sweepFP(cut int64) {
	for k, p := range t.prins {
		if p.last < cut {
			delete(t.prins, k)
		}
	}
	for fp, u := range t.fps {
		u.users = slices.DeleteFunc(u.users, func(x netUser) bool { return x.last < cut })
		if len(u.users) == 0 && !u.busy && len(u.flagged) == 0 {
			delete(t.fps, fp)
		}
	}
	if len(t.fps) < maxNets {
		t.fpFull = false
	}
	if len(t.fpNames) >= maxNets {
		clear(t.fpNames)
	}
}

// flagFP records that the policy acted on principal kind value at now and
// returns the fingerprint it presents, the distinct principals flagged
// under it within window, and how many units they make — addresses count
// once per /24 (/48), which the network group covers — or "" when the
// responder does not know its fingerprint.
func (t *traffic) flagFP(kind, value string, now time.Time, window time.Duration) (string, []string, int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	p, ok := t.prins[prinKey{kind, value}]
	if !ok {
		return "", nil, 0
	}
	u := t.fps[p.fp]
	if u == nil {
		if len(t.fps) >= maxNets {
			return "", nil, 0
		}
		if t.fps == nil {
			t.fps = map[string]*fpUse{}
		}
		u = &fpUse{}
		t.fps[p.fp] = u
	}
	cut := now.Add(-window)
	u.flagged = slices.DeleteFunc(u.flagged, func(f fpFlag) bool {
		return f.at.Before(cut) || (f.kind == kind && f.value == value)
	})
	if len(u.flagged) >= maxFPFlagged {
		u.flagged = u.flagged[1:]
	}
	u.flagged = append(u.flagged, fpFlag{kind: kind, value: value, at: now})
	out := make([]string, len(u.flagged))
	units := map[string]bool{}
	for i, f := range u.flagged {
		out[i] = f.kind + " " + f.value
		unit := out[i]
		if f.kind == event.KindIP {
			if n, ok := networkOf(f.value); ok {
				unit = n
			}
		}
		units[unit] = true
	}
	return p.fp, out, len(units)
}

// fingerprintSpared returns why the policy must not block fingerprint fp,
// or "": principals with good history present it (requests under it that
// succeeded, more than failed, within the window before at), other than
// those the responder acted on; or the responder cannot tell (it sees no
// traffic, its record of fingerprints is full, or its record from before
// the start is still loading).
func (r *Responder) fingerprintSpared(fp string, at time.Time) string {
	t := &r.traffic
	if why := r.recordLoading(fp); why != "" {
		return why
	}
	if !t.seen.Load() {
		return fmt.Sprintf("the responder sees no traffic, so it cannot tell whether principals with good history present %s", fp)
	}
	cut := at.Add(-r.history.window).UnixNano()
	var users []prinKey
	t.mu.Lock()
	u, full := t.fps[fp], t.fpFull
	busy := u != nil && u.busy
	if u != nil {
		for _, x := range u.users {
			if x.last >= cut && x.ok > x.bad {
				users = append(users, prinKey{x.kind, x.value})
			}
		}
	}
	t.mu.Unlock()
	switch {
	case u == nil && full:
		return fmt.Sprintf("the responder's record of fingerprints is full, so it cannot tell whether principals with good history present %s", fp)
	case busy:
		return fmt.Sprintf("more than %d principals with good history present %s", maxNetUsers, fp)
	}
	if n, list := r.goodHistory(users); n > 0 {
		return fmt.Sprintf("%d principal(s) with good history present %s (%s)", n, fp, list)
	}
	return ""
}

// groupFP blocks the fingerprint that the principal target, just acted on
// for a, presents, when MinFingerprintPrincipals principals presenting it
// were acted on within Window and no principal with good history presents
// it: one entry instead of many. Addresses of one /24 (/48) count as one
// principal: the network group (group.go) is the narrower entry for them. A fingerprint with good users is not
// blocked (the decision is recorded as dry-run saying who presents it);
// the per-minute cap counts the entry as one action.
func (r *Responder) groupFP(ctx context.Context, a *event.Anomaly, target *event.Principal) error {
	g := r.cfg.Groups
	if g.MinFingerprintPrincipals == 0 || target.Kind == event.KindFP || target.Kind == event.KindCIDR {
		return nil
	}
	now := r.now()
	fp, flagged, units := r.traffic.flagFP(target.Kind, target.Value, now, g.Window)
	if fp == "" || units < g.MinFingerprintPrincipals {
		return nil
	}
	r.groupMu.Lock()
	defer r.groupMu.Unlock()
	b := groupBlock{rule: "group-fp", target: &event.Principal{Kind: event.KindFP, Value: fp}, noun: "fingerprint",
		why: fmt.Sprintf("%d principals presenting %s acted on within %s (%s…), none with good history presents it", len(flagged), fp, g.Window, sampleOf(flagged))}
	d, ok := r.groupDecision(a, b, now)
	if !ok {
		return nil // already acted on within the window
	}
	if r.deferToRecord(&d, b, b.rule+" "+fp, func(ctx context.Context) error { return r.groupFP(ctx, a, target) }) {
		// Judged again when the record of who presents it is whole.
	} else if why := r.fingerprintSpared(fp, d.Trigger); why != "" {
		holdBack(&d, fmt.Sprintf("fingerprint not blocked: %s: its principals only", why))
	}
	return r.applyGroup(ctx, b, d)
}
