package detectors

import (
	"fmt"
	"regexp"

	"github.com/apiguard/apiguard/event"
)

// StuffingName names the credential-stuffing detector's anomalies.
const StuffingName = "credential_stuffing"

// StuffingConfig configures the credential-stuffing detector.
type StuffingConfig struct {
	// LoginAPIs names the login-class APIs ("POST /login"). Empty: any
	// POST whose path names a login, sign-in, session or token.
	LoginAPIs []string `yaml:"login_apis"`
	// MinFailures and MinAccounts are the fewest failed logins, and
	// distinct accounts among them, in the medium window (10 minutes) from
	// one source that can be stuffing. Where the proxy does not record accounts, only
	// failures count.
	MinFailures float64 `yaml:"min_failures"`
	MinAccounts float64 `yaml:"min_accounts"`
	// FailureFloor is the smallest failure share the baseline is taken to
	// have (people mistype).
	FailureFloor float64 `yaml:"failure_floor"`
}

func (c StuffingConfig) validate() error {
	return errorsJoinFirst(positive("credential_stuffing.min_failures", c.MinFailures),
		positive("credential_stuffing.min_accounts", c.MinAccounts), positive("credential_stuffing.failure_floor", c.FailureFloor))
}

var loginPath = regexp.MustCompile(`(?i)^POST /(.*/)?(login|log-in|signin|sign-in|sessions?|oauth/token|token|auth(enticate)?)$`)

func (c StuffingConfig) isLogin(api string) bool {
	if len(c.LoginAPIs) > 0 {
		for _, a := range c.LoginAPIs {
			if a == api {
				return true
			}
		}
		return false
	}
	return loginPath.MatchString(api)
}

// loginState counts one source's logins over the medium window (10
// minutes), in its 10 slots.
type loginState struct {
	LastNs   int64 // event time of the last attempt
	Tries    [10]uint16
	Fails    [10]uint16
	Accounts [2]uint64 // distinct accounts among failures, this medium window (two 64-bit linear counters)
}

func (l *loginState) add(c *clock, t int64, failed bool, account string) {
	last := l.LastNs
	now := max(t, last)
	slot := c.slot[winMedium]
	for s := last/slot + 1; s <= now/slot && s <= last/slot+10; s++ {
		l.Tries[s%10], l.Fails[s%10] = 0, 0
	}
	if now/c.len[winMedium] > last/c.len[winMedium] {
		l.Accounts = [2]uint64{}
	}
	l.LastNs = now
	i := (now / slot) % 10
	l.Tries[i] = sat16(l.Tries[i])
	if failed {
		l.Fails[i] = sat16(l.Fails[i])
		if account != "" {
			h := hashStrings(account)
			l.Accounts[h>>63] |= 1 << (h & 63)
		}
	}
}

func (l *loginState) accounts() float64 {
	return distinct(l.Accounts[0]) + distinct(l.Accounts[1])
}

// Evidence that a client took part in the stuffing of a shared network or
// fingerprint: its own failed logins over several accounts where the proxy
// records accounts, or several failed logins where it does not. People
// who mistype retry the same account.
const (
	memberAccounts = 2
	memberFailures = 3
)

// tookPart reports whether the source's own failures are such evidence.
func (l *loginState) tookPart(withAccounts bool) bool {
	_, f := l.sums()
	if withAccounts {
		return f >= memberAccounts && l.accounts() >= memberAccounts
	}
	return f >= memberFailures
}

func (l *loginState) sums() (tries, fails float64) {
	for i := range l.Tries {
		tries += float64(l.Tries[i])
		fails += float64(l.Fails[i])
	}
	return tries, fails
}

// stuffing finds credential stuffing and brute force on login-class APIs:
// failed logins over many distinct accounts from one client IP, one
// network (/24 or /48), or one client fingerprint — the last catches the
// distributed form, where every attempt comes from another IP but the
// same tool. A source's failures are compared with the API's failure share
// by their binomial tail.
//
// A network or fingerprint may be shared with legitimate clients (a
// common browser in a common language). One that established principals
// share is never flagged on its own: a finding on it is raised only at a
// failure of one of its attacking members — a client whose own failures
// show it took part (tookPart) and whose address nothing established
// shares (sharing.go) — and names that client as a member, so the
// responder blocks the members and never the shared principal. A failed
// login of anyone else behind it is no finding (the next source is
// tried). In cooldown, such findings are still reported for each new
// member.
type stuffing struct{ cfg StuffingConfig }

func (*stuffing) name() string { return StuffingName }

func (d *stuffing) observe(e *Engine, x *ctx, out []finding) []finding {
	if !x.api.Login || !x.allowed {
		return out
	}
	failed := x.ev.Status == 401 || x.ev.Status == 403 || x.ev.Auth == event.AuthOutcome_AUTH_INVALID
	base := x.api.Fail.value(d.cfg.FailureFloor)
	if x.learn {
		x.api.Fail.add(failed)
	}
	type source struct {
		kind, val string
		key       uint64
	}
	sources := [3]source{
		{event.KindIP, event.ClientIPString(x.ev.ClientIp), hashUint(1, hashStrings(x.ev.Api, string(x.ev.ClientIp)))},
		{event.KindCIDR, "", hashUint(2, hashUint(hashStrings(x.ev.Api), x.netKey))},
		{event.KindFP, "", hashUint(3, hashUint(hashStrings(x.ev.Api), x.fpKey))},
	}
	var hit *source
	var own *loginState // the client IP's
	var tries, fails, accounts float64
	var p float64 = 1
	var members []*event.Principal
	for i := range sources {
		s := &sources[i]
		l := e.st.Logins[s.key]
		if l == nil {
			l = &loginState{}
			e.st.Logins[s.key] = l
		}
		l.add(&e.clk, x.t, failed, x.ev.Account)
		if i == 0 {
			own = l
		}
		if !failed || hit != nil {
			continue
		}
		t, f := l.sums()
		a := l.accounts()
		if f < d.cfg.MinFailures || (x.ev.Account != "" && a < d.cfg.MinAccounts) {
			continue
		}
		pr := binomialTail(int(f), int(t), base)
		if pr > e.cfg.MaxP {
			continue
		}
		switch s.kind {
		case event.KindCIDR:
			s.val = x.netPrefix.String()
		case event.KindFP:
			s.val = x.fingerprint()
		}
		if s.kind != event.KindIP && e.sharedBy(x, s.kind, s.val) > 0 {
			// Established principals share this network or fingerprint:
			// it is never the finding by itself. The finding is raised at
			// its attacking members' failures, and names them; a failure
			// of anyone else behind it (a person who mistyped) is not
			// evidence against that person.
			m := e.eventMember(x)
			if m == nil || !own.tookPart(x.ev.Account != "") {
				continue
			}
			members = []*event.Principal{m}
		}
		hit, tries, fails, accounts, p = s, t, f, a, pr
	}
	if hit == nil {
		return out
	}
	w := e.clk.names[winMedium]
	devs := []*event.Deviation{{Feature: "failure_ratio_" + w, Observed: fails / tries, Expected: base, Deviation: zBinomial(fails, tries, base)},
		{Feature: "failed_logins_" + w, Observed: fails, Expected: base * tries}}
	if x.ev.Account != "" {
		devs = append(devs, &event.Deviation{Feature: "distinct_accounts_" + w, Observed: accounts, Expected: 1})
	}
	return append(out, finding{p: p, kind: hit.kind, val: hit.val, deviations: devs, members: members, summary: fmt.Sprintf(
		"%d failed logins of %d on %s in %s from %s %s (%.0f accounts); the API fails %.1f%%",
		int(fails), int(tries), x.ev.Api, w, hit.kind, hit.val, accounts, 100*base)})
}
