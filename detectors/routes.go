package detectors

import (
	"fmt"
	"strings"

	"github.com/apiguard/apiguard/event"
)

// Unknown routes per principal (part of the probing detector).
//
// A scanner asks for what the API does not have: paths no route serves
// (answered 403, 404, 405 or 501) and methods the API never serves
// (WebDAV's PROPFIND and SEARCH, CONNECT). Each request of a principal is
// one trial of a sequential test: it counts as an unknown-route request
// when it misses on a route the principal has not missed on lately (a
// browser re-asking for one missing image counts once) or uses a method
// the API has never answered with success. Evidence accumulates over the
// principal's requests (halved every routeHalving of them, so it follows
// what the principal does now) and is tested, at every unknown-route
// request, against the share that established, well-behaved principals
// (mostly served well) show on this engine's traffic (never below probing.miss_floor): a
// binomial tail at or below max_p is an anomaly. At the default 2% floor
// a principal whose first four requests all miss is flagged at the
// fourth; a browser with a broken link or two never is.

// routeHalving is how many requests a principal's unknown-route counts
// cover before they are halved.
const routeHalving = 64

// maxMethods bounds the methods the engine learns (an attacker can send
// any token as a method).
const maxMethods = 32

// routeState is a principal's unknown-route evidence: 6 bytes, which
// fit in principalState's padding.
type routeState struct {
	Unknown, Requests uint8
	// Missed holds 16-bit hashes of the last two routes the principal
	// missed on, the latest first, so a repeated miss counts once.
	Missed [2]uint16
}

// noteServedMethod learns the methods the API answers with success (2xx
// or 304), from established principals (sharing.go) only: a WebDAV
// scanner answered 207 does not teach that PROPFIND is served.
func (e *Engine) noteServedMethod(x *ctx) {
	s := x.ev.Status
	if !(s >= 200 && s < 300 || s == 304) || !e.established(x) {
		return
	}
	m := x.ev.Method
	if _, ok := e.st.Methods[m]; !ok && (len(e.st.Methods) >= maxMethods || len(m) > 16) {
		return
	}
	if e.st.Methods[m] == 0 {
		m = strings.Clone(m)
	}
	e.st.Methods[m] = sat32(e.st.Methods[m])
}

// unknownMethod reports whether the event's method is one the API has
// never served while it has served WarmupSamples requests with others.
func (e *Engine) unknownMethod(x *ctx) bool {
	if e.st.Methods[x.ev.Method] > 0 {
		return false
	}
	var served uint32
	for _, n := range e.st.Methods {
		served += n
	}
	return served >= uint32(e.cfg.WarmupSamples)
}

// unknownRoute scores the event for the principal's unknown-route test
// and returns whether it counted, and why.
func (e *Engine) unknownRoute(x *ctx) (bool, string) {
	r := &x.prin.Routes
	if r.Requests >= routeHalving {
		r.Requests /= 2
		r.Unknown /= 2
	}
	r.Requests++
	why := ""
	switch {
	case e.unknownMethod(x):
		why = "method " + clipString(x.ev.Method, 16) + " never served"
	case x.miss || x.ev.Status == 501:
		h := uint16(hashStrings(x.ev.Api)) | 1 // never 0, the empty slot
		if r.Missed[0] == h || r.Missed[1] == h {
			return false, ""
		}
		r.Missed[0], r.Missed[1] = h, r.Missed[0]
		why = fmt.Sprintf("%d on a route it had not tried", x.ev.Status)
	default:
		return false, ""
	}
	r.Unknown++
	return true, why
}

// routeFinding tests a principal's unknown-route evidence after an
// unknown-route request. Established principals teach the share they
// show, those that are mostly served well only: a principal whose
// requests are half unknown routes is no normal client, flagged or not.
func (d *probing) routeFinding(e *Engine, x *ctx, unknown bool, why string, out []finding) []finding {
	r := &x.prin.Routes
	if x.learn && 2*r.Unknown < r.Requests && e.established(x) {
		e.st.Routes.add(unknown)
	}
	if !unknown || float32(r.Unknown) < d.cfg.MinUnknown {
		return out
	}
	base := e.st.Routes.value(d.cfg.MissFloor)
	p := binomialTail(int(r.Unknown), int(r.Requests), base)
	if p > e.cfg.MaxP {
		return out
	}
	return append(out, finding{p: p, deviations: []*event.Deviation{
		{Feature: "unknown_routes", Observed: float64(r.Unknown), Expected: base * float64(r.Requests), Deviation: zBinomial(float64(r.Unknown), float64(r.Requests), base)},
	}, summary: fmt.Sprintf("%s %s asked for %d unknown routes or methods in %d requests (established clients: %.1f%%); last %s %s, %s",
		x.kind, x.val, r.Unknown, r.Requests, 100*base, clipString(x.ev.Method, 16), clipString(x.ev.Path, 80), why)})
}

func sat32(v uint32) uint32 {
	if v == ^uint32(0) {
		return v
	}
	return v + 1
}
