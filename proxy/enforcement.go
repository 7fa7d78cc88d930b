package proxy

import (
	"net/http"
	"time"

	"github.com/apiguard/apiguard/enforce"
	"github.com/apiguard/apiguard/event"
)

// EnforcementName is the name of the enforcement check in events.
const EnforcementName = "enforcement"

// maxRetryAfter caps the Retry-After of a throttled request.
const maxRetryAfter = 60 * time.Second

// Enforcement refuses requests whose identities are blocked (403), revoked
// (401) or throttled (429) in the enforcement state. It reads the Matcher
// only: no I/O.
type Enforcement struct {
	m        *enforce.Matcher
	throttle entryThrottle // throttle entries' rates
}

// NewEnforcement returns the enforcement check over m.
func NewEnforcement(m *enforce.Matcher) *Enforcement { return &Enforcement{m: m} }

// Name implements Check.
func (*Enforcement) Name() string { return EnforcementName }

// Check implements Check.
func (c *Enforcement) Check(x *Exchange) *Denial {
	id := x.Identity()
	v := c.m.Match(&id, x.Now)
	if v.Entry == nil {
		return nil
	}
	// The entry's reason and anomaly are the analyst's: they are in the
	// bucket and the audit stream, not in the proxy's memory (enforce.Rule).
	reason := v.Entry.Kind.String() + " " + v.Entry.Value + " " + v.Action.String()
	switch v.Action {
	case enforce.ActionRevoke:
		return &Denial{Status: http.StatusUnauthorized, Detail: "The credentials presented are no longer valid.",
			Decision: event.Decision_DECISION_REVOKED, Auth: event.AuthOutcome_AUTH_REVOKED, Reason: reason,
			Headers: http.Header{"Www-Authenticate": {`Bearer error="invalid_token"`}}}
	case enforce.ActionThrottle:
		return c.throttle.throttled(x, v.Entry.Kind, v.Entry.Value, v.Entry.Rate, v.Entry.Expires(), reason) // throttle.go
	default:
		return &Denial{Status: http.StatusForbidden, Detail: "The request was refused.",
			Decision: event.Decision_DECISION_BLOCK, Reason: reason}
	}
}

// Interface guards
var _ Check = (*Enforcement)(nil)
