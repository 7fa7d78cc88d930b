package detectors

import (
	"math"
	"strconv"
	"strings"

	"github.com/apiguard/apiguard/event"
)

// apiState is one API's baselines: per-principal requests per window,
// per-principal medium-window response volume and distinct objects, miss and
// login-failure ratios, the window-profile covariance, and the API-level
// health minute (health.go).
type apiState struct {
	Rate    [numWindows]robust
	KiB     robust
	Objs    robust
	Object  bool // the template has an object id ({…})
	Login   bool // a login-class API (stuffing.go)
	Miss    ratio
	Fail    ratio
	Profile *covariance
	Health  healthState
	// ParamRequests counts requests with parameters (parameters.go).
	ParamRequests uint32
	// Cold is the share of anonymous writes to the API that came without
	// navigation first (campaign.go): how normal sessions reach it.
	Cold coldShare
	// Served counts the principals the API served (2xx or 304) that
	// could teach, each about once (routes.go): the learned inventory.
	Served uint32
	// LastNs is the event time of the API's last event: an API idle for
	// IdleAfter that learnt nothing is dropped (sweep).
	LastNs int64
}

// learnt reports whether any of the API's baselines has learnt enough to
// be used (WarmupSamples, or the parameter models' MinSamples). An API
// that has not is what a scanner's request on a path of its own creates;
// kept once idle, a scan of a million paths would fill the memory. A real
// API that is quiet for a while and dropped only warms up again.
func (e *Engine) learnt(a *apiState) bool {
	n := e.cfg.WarmupSamples
	for w := range a.Rate {
		if a.Rate[w].len() >= n {
			return true
		}
	}
	return a.KiB.len() >= n || a.Objs.len() >= n || a.Profile.N >= n || a.Health.Totals.len() >= n ||
		a.Health.Lat.len() >= n || int(a.ParamRequests) >= e.cfg.Params.MinSamples ||
		int(a.Served) >= e.cfg.WarmupPrincipals
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

func (e *Engine) apiFor(name string, t int64) *apiState {
	if a := e.st.APIs[name]; a != nil {
		a.LastNs = max(a.LastNs, t)
		return a
	}
	a := &apiState{Object: strings.Contains(name, "{"), Login: e.cfg.Stuffing.isLogin(name), Profile: newCovariance(profileDims)}
	for w := range a.Rate {
		a.Rate[w] = newRobust(e.cfg.BaselineSamples)
	}
	a.KiB = newRobust(e.cfg.BaselineSamples)
	a.Objs = newRobust(e.cfg.BaselineSamples)
	a.LastNs = t
	// Keys outlive the event, whose strings may share its buffer: clone.
	e.st.APIs[strings.Clone(name)] = a
	return a
}

func (e *Engine) pairFor(key uint64, x *ctx) *pair {
	p := e.st.Pairs[key]
	if p == nil {
		p = &pair{FirstNs: x.t, LastNs: x.t}
		e.st.Pairs[key] = p
	}
	return p
}

// roll brings a pair to the event's time — a completed medium window
// becomes a baseline sample of a (when the principal may teach), stale
// slots are cleared — and counts the event.
func (e *Engine) roll(p *pair, x *ctx, a *apiState) {
	c := &e.clk
	last := p.LastNs
	now := max(x.t, last) // a late event counts in the current slot
	half := c.len[winMedium] / 2
	halves := now/half - last/half
	if a != nil && x.learn && halves == 1 && e.whole(winMedium, now) {
		e.sampleObjects(p, a, x)
	}
	clear := func(w int, n int64, f func(i int64)) {
		l, cur := last/c.slot[w], now/c.slot[w]
		for s := l + 1; s <= cur && s <= l+n; s++ {
			f(s % n)
		}
	}
	clear(winShort, 6, func(i int64) { p.Short[i] = 0 })
	clear(winMedium, 10, func(i int64) { p.Medium[i] = slotCell{} })
	clear(winLong, 6, func(i int64) { p.Long[i] = 0 })
	p.shiftObjects(halves)
	if now/c.len[winMedium] > last/c.len[winMedium] {
		p.Walk = 0
	}
	p.LastNs = now

	i := (now / c.slot[winShort]) % 6
	p.Short[i] = sat16(p.Short[i])
	m := &p.Medium[(now/c.slot[winMedium])%10]
	m.Req = sat16(m.Req)
	if x.miss {
		m.Miss = sat16(m.Miss)
	}
	m.KiB = uint16(min(int64(m.KiB)+max(x.ev.ResponseBytes, 0)>>10, math.MaxUint16))
	p.Long[(now/c.slot[winLong])%6]++
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

// sampleObjects gives the API a pair's distinct objects and profile over
// the medium window that just completed (its two half windows): the
// object count is at its fullest there, so the baseline is what a whole
// window holds (for a principal that arrived within it, less: the
// baseline errs low, towards finding more).
func (e *Engine) sampleObjects(p *pair, a *apiState, x *ctx) {
	req, miss, kib := p.recent()
	objs := p.distinctObjects()
	if a.Object {
		a.Objs.add(objs, uint32(x.pkey))
	}
	if req > 0 {
		a.Profile.add(profileVector(x.samplesBuf[:0], req, kib, miss, objs))
	}
}

// principalFor returns the principal's cross-API state, brought to the
// event's time with the event counted.
func (e *Engine) principalFor(x *ctx) *principalState {
	p := e.st.Principals[x.pkey]
	if p != nil {
		x.prevNs = p.LastNs
	}
	if p == nil {
		p = &principalState{LastNs: x.t}
		e.st.Principals[x.pkey] = p
	} else if x.t > p.LastNs {
		// Inter-arrival gaps (bot timing), from the second event on.
		gap := float32(float64(x.t-p.LastNs) / 1e9)
		if p.Gaps == 0 {
			p.GapMean, p.GapVar = gap, 0
		} else {
			d := gap - p.GapMean
			p.GapMean += gapAlpha * d
			p.GapVar = (1 - gapAlpha) * (p.GapVar + gapAlpha*d*d)
		}
		p.Gaps = sat16(p.Gaps)
	}
	slot := e.clk.slot[winMedium]
	last, now := p.LastNs, max(x.t, p.LastNs)
	for s := last/slot + 1; s <= now/slot && s <= last/slot+10; s++ {
		p.Medium[s%10] = [2]uint16{}
	}
	p.LastNs = now
	m := &p.Medium[(now/slot)%10]
	m[0] = sat16(m[0])
	if x.miss {
		m[1] = sat16(m[1])
	}
	return p
}

// sampleRates gives the API's baselines what the pair looks like at this
// event, at most once per window length per pair, so every active
// principal weighs the same however fast it goes — only from windows the
// engine has seen whole (gap.go), as one reaching back before its first
// event or into a gap misses requests: the request counts over the
// rolling windows (the same statistic the detectors score), and the
// medium window's response volume.
func (e *Engine) sampleRates(p *pair, a *apiState, x *ctx, now int64) {
	owner := uint32(x.pkey)
	counts := p.counts()
	for w := range numWindows {
		idx := uint32(now/e.clk.len[w] - e.st.Start/e.clk.len[w])
		if idx > p.Sampled[w] && e.whole(w, now) {
			p.Sampled[w] = idx
			a.Rate[w].add(counts[w], owner)
			if w == winMedium {
				_, _, kib := p.recent()
				a.KiB.add(kib, owner)
			}
		}
	}
}

// gapAlpha is the weight of each new gap in the moving statistics: an
// effective window of (2−α)/α ≈ 39 gaps.
const gapAlpha = 0.05

// sweep drops pairs, credentials and login counters idle for IdleAfter,
// APIs as idle that learnt nothing, and expired cooldowns, at most once
// per IdleAfter/4 of event time.
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
	for k, a := range e.st.APIs {
		if now-uint32(a.LastNs/1e9) > idle && !e.learnt(a) {
			delete(e.st.APIs, k)
		}
	}
	for k, p := range e.st.Principals {
		if now-uint32(p.LastNs/1e9) > idle {
			delete(e.st.Principals, k)
		}
	}
	for k, c := range e.st.Creds {
		if now-c.last() > idle {
			delete(e.st.Creds, k)
		}
	}
	for k, l := range e.st.Logins {
		if now-uint32(l.LastNs/1e9) > idle {
			delete(e.st.Logins, k)
		}
	}
	nowNs := int64(now) * 1e9
	e.sweepShares(nowNs)
	e.sweepCampaigns(nowNs)
	e.sweepSequences(nowNs)
	for k, until := range e.st.Cool {
		if until < nowNs {
			delete(e.st.Cool, k)
		}
	}
	for k, until := range e.st.Flagged {
		if until < nowNs {
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
		h *= 1099511628211 // the zero byte after each string
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
