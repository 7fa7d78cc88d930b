package detectors

import (
	"math"
	"strconv"
	"strings"

	"github.com/apiguard/apiguard/event"
)

// apiState is one API's baselines: per-principal requests per window,
// per-principal 10-minute response volume and distinct objects, miss and
// login-failure ratios, the window-profile covariance, and the API-level
// health minute (health.go).
type apiState struct {
	Rate    [numWindows]robust
	KiB10   robust
	Objs10  robust
	Object  bool // the template has an object id ({…})
	Login   bool // a login-class API (stuffing.go)
	Miss    ratio
	Fail    ratio
	Profile *covariance
	Health  healthState
}

// ratio is a slowly forgetting ratio of hits to trials (half-life about
// 2,000 trials).
type ratio struct{ Hits, Trials float64 }

func (r *ratio) add(hit bool) {
	const keep = 0.99965
	r.Hits *= keep
	r.Trials *= keep
	r.Trials++
	if hit {
		r.Hits++
	}
}

// addMany adds trials at once, with hits among them.
func (r *ratio) addMany(hits, trials float64) {
	keep := math.Pow(0.99965, trials)
	r.Hits = r.Hits*keep + hits
	r.Trials = r.Trials*keep + trials
}

func (r ratio) value(floor float64) float64 {
	if r.Trials < 1 {
		return floor
	}
	return max(r.Hits/r.Trials, floor)
}

// profileDims are the window-profile features (profile.go).
const profileDims = 4

func (e *Engine) apiFor(name string) *apiState {
	if a := e.st.APIs[name]; a != nil {
		return a
	}
	a := &apiState{Object: strings.Contains(name, "{"), Login: e.cfg.Stuffing.isLogin(name), Profile: newCovariance(profileDims)}
	for w := range a.Rate {
		a.Rate[w] = newRobust(e.cfg.BaselineSamples)
	}
	a.KiB10 = newRobust(e.cfg.BaselineSamples)
	a.Objs10 = newRobust(e.cfg.BaselineSamples)
	// Keys outlive the event, whose strings may share its buffer: clone.
	e.st.APIs[strings.Clone(name)] = a
	return a
}

func (e *Engine) pairFor(key uint64, x *ctx) *pair {
	p := e.st.Pairs[key]
	if p == nil {
		p = &pair{First: x.sec, LastNs: x.t}
		e.st.Pairs[key] = p
	}
	return p
}

// roll brings a pair to the event's time — completed windows become
// baseline samples of a (when the principal may teach and was seen for
// the whole window), stale slots are cleared — and counts the event.
func (e *Engine) roll(p *pair, x *ctx, a *apiState) {
	last := uint32(p.LastNs / 1e9)
	now := max(x.sec, last) // a late event counts in the current slot
	lastMin, curMin := last/60, now/60
	lastTen, curTen := last/600, now/600
	if a != nil && x.learn {
		e.sampleSlot(p, a, x, last, now)
	}
	if curMin > lastMin {
		for m := lastMin + 1; m <= curMin && m <= lastMin+10; m++ {
			p.Min[m%10] = minuteCell{}
		}
	}
	if curTen > lastTen {
		p.PrevObj = uint16(min(p.distinctObjects(), math.MaxUint16))
		p.Objs = [2]uint64{}
		for s := lastTen + 1; s <= curTen && s <= lastTen+6; s++ {
			p.TenMin[s%6] = 0
		}
		p.Walk = 0
	}
	if lastS, curS := last/10, now/10; curS > lastS {
		for s := lastS + 1; s <= curS && s <= lastS+6; s++ {
			p.Sec10[s%6] = 0
		}
	}
	// Inter-arrival gaps (bot timing), from the second event on.
	if x.t > p.LastNs && p.Min != ([10]minuteCell{}) {
		gap := float32(float64(x.t-p.LastNs) / 1e9)
		const alpha = gapAlpha
		if p.Gaps == 0 {
			p.GapMean, p.GapVar = gap, 0
		} else {
			d := gap - p.GapMean
			p.GapMean += alpha * d
			p.GapVar = (1 - alpha) * (p.GapVar + alpha*d*d)
		}
		p.Gaps = sat16(p.Gaps)
	}
	p.LastNs = max(p.LastNs, x.t)

	p.Sec10[(now/10)%6] = sat16(p.Sec10[(now/10)%6])
	c := &p.Min[curMin%10]
	c.Req = sat16(c.Req)
	if x.miss {
		c.Miss = sat16(c.Miss)
	}
	c.KiB += uint32(min(max(x.ev.ResponseBytes, 0)>>10, math.MaxUint16))
	p.TenMin[curTen%6]++
	if a != nil && x.learn {
		e.sampleRates(p, a, x, now)
	}
	if x.object != "" {
		p.addObject(hashStrings(x.object))
		if x.hasNum {
			if x.objectNum == p.LastObj+1 || x.objectNum+1 == p.LastObj {
				p.Walk = sat16(p.Walk)
			} else if x.objectNum != p.LastObj {
				p.Walk = 0
			}
			p.LastObj = x.objectNum
		}
	}
}

// sample gives the API's baselines what the pair looks like at this
// event, at most once per window length per pair, so every active
// principal weighs the same however fast it goes: its request counts over
// the rolling windows (the same statistic the detectors score), and its
// 10-minute response volume. Distinct objects and the window profile are
// sampled when a 10-minute slot completes (on the pair's first event
// after it), as the object count restarts with each slot.
func (e *Engine) sampleRates(p *pair, a *apiState, x *ctx, now uint32) {
	owner := uint32(x.pkey)
	counts := p.counts()
	for w := range numWindows {
		idx := now / uint32(windowSeconds[w])
		if idx > p.Sampled[w] {
			p.Sampled[w] = idx
			a.Rate[w].add(counts[w], owner)
			if w == win10m {
				_, _, kib := p.last10()
				a.KiB10.add(kib, owner)
			}
		}
	}
}

// sampleSlot gives the API the 10-minute slot the pair completed, if any
// and if the pair was there for most of it.
func (e *Engine) sampleSlot(p *pair, a *apiState, x *ctx, last, now uint32) {
	lastTen := last / 600
	if now/600 <= lastTen || p.First > lastTen*600+300 {
		return
	}
	var req, kib, miss float64
	for m := lastTen * 10; m <= last/60; m++ {
		c := p.Min[m%10]
		req += float64(c.Req)
		miss += float64(c.Miss)
		kib += float64(c.KiB)
	}
	objs := p.distinctObjects()
	if a.Object {
		a.Objs10.add(objs, uint32(x.pkey))
	}
	if req > 0 {
		a.Profile.add(profileVector(x.samplesBuf[:0], req, kib, miss, objs))
	}
}

// gapAlpha is the weight of each new gap in the moving statistics: an
// effective window of (2−α)/α ≈ 39 gaps.
const gapAlpha = 0.05

// sweep drops pairs, credentials and login counters idle for IdleAfter,
// and expired cooldowns, at most once per IdleAfter/4 of event time.
func (e *Engine) sweep(now uint32) {
	idle := uint32(e.cfg.IdleAfter.Seconds())
	if now-e.st.Swept < idle/4 || now < e.st.Swept {
		return
	}
	e.st.Swept = now
	for k, p := range e.st.Pairs {
		if now-uint32(p.LastNs/1e9) > idle {
			delete(e.st.Pairs, k)
		}
	}
	for k, c := range e.st.Creds {
		if now-c.last() > idle {
			delete(e.st.Creds, k)
		}
	}
	for k, l := range e.st.Logins {
		if now-l.Last > idle {
			delete(e.st.Logins, k)
		}
	}
	nowNs := int64(now) * 1e9
	for k, until := range e.st.Cool {
		if until < nowNs {
			delete(e.st.Cool, k)
		}
	}
	for k, until := range e.st.Flagged {
		if until < now {
			delete(e.st.Flagged, k)
		}
	}
	for k, r := range e.st.Risk {
		if nowNs-r.At > 8*int64(e.cfg.RiskHalfLife) {
			delete(e.st.Risk, k)
		}
	}
}

// addRisk folds a score into the principal's combined risk, which decays
// with RiskHalfLife: risk = 1 − ∏(1 − decayed scores).
func (e *Engine) addRisk(pk uint64, t int64, score float64) float64 {
	r := e.st.Risk[pk]
	if r.At != 0 {
		r.Risk *= math.Exp2(-float64(t-r.At) / float64(e.cfg.RiskHalfLife))
	}
	r.Risk = 1 - (1-r.Risk)*(1-score)
	r.At = t
	e.st.Risk[pk] = r
	return r.Risk
}

// Risk returns a principal's combined risk as of event time t.
func (e *Engine) Risk(kind, value string, t int64) float64 {
	r, ok := e.st.Risk[hashStrings(kind, value)]
	if !ok {
		return 0
	}
	return r.Risk * math.Exp2(-float64(t-r.At)/float64(e.cfg.RiskHalfLife))
}

// severityOf grades a tail probability.
func severityOf(p float64) event.Severity {
	switch {
	case p <= 1e-12:
		return event.Severity_SEVERITY_CRITICAL
	case p <= 1e-9:
		return event.Severity_SEVERITY_HIGH
	case p <= 1e-6:
		return event.Severity_SEVERITY_MEDIUM
	}
	return event.Severity_SEVERITY_LOW
}

// hashStrings is 64-bit FNV-1a over the strings, each followed by a zero
// byte. It is stable across processes, so checkpoints keep their keys.
func hashStrings(ss ...string) uint64 {
	h := uint64(14695981039346656037)
	for _, s := range ss {
		for i := 0; i < len(s); i++ {
			h = (h ^ uint64(s[i])) * 1099511628211
		}
		h = (h ^ 0) * 1099511628211
	}
	return h
}

func hashUint(a, b uint64) uint64 {
	h := a ^ 0x9e3779b97f4a7c15
	h = (h ^ b) * 1099511628211
	return h ^ h>>29
}

// objectOf returns the path segments that stand where the API's template
// has parameters ("GET /orders/{id}" and "/orders/42" give "42"), and the
// last of them as a number if it is one.
func objectOf(api, path string) (obj string, num uint32, isNum bool) {
	i := strings.IndexByte(api, ' ')
	tmpl := api[i+1:]
	if !strings.Contains(tmpl, "{") {
		return "", 0, false
	}
	ts := strings.Split(strings.Trim(tmpl, "/"), "/")
	rest := strings.Trim(path, "/")
	for j, t := range ts {
		seg := rest
		if k := strings.IndexByte(rest, '/'); k >= 0 {
			seg, rest = rest[:k], rest[k+1:]
		} else {
			rest = ""
		}
		if j < len(ts) && strings.HasPrefix(t, "{") {
			obj = seg
		}
	}
	if n, err := strconv.ParseUint(obj, 10, 32); err == nil {
		return obj, uint32(n), true
	}
	return obj, 0, false
}
