package enforce

import "time"

// Rule is the compact, read-only form in which the Matcher holds an entry:
// what the proxy needs to enforce it and to report on it, about 48 bytes
// beside its value. The analyst's fields (reason, anomaly id, actor,
// created) are not kept, except on allow entries, which are few and whose
// reason and actor the responder quotes (see Matcher.Allowed); they live
// in the KV bucket, the audit stream and ClickHouse.
//
// A Rule is shared by every snapshot that holds it: never change one.
type Rule struct {
	// Value is the entry's value in canonical form.
	Value   string
	expires int64 // Unix nanoseconds; 0: never
	trigger int64 // Unix nanoseconds; 0: none
	// Rate is a throttle entry's allowed requests per second (see Entry.Rate).
	Rate   float64
	Kind   Kind
	Action Action
}

// ruleOf returns the compact form of e, which must be normalised.
func ruleOf(e *Entry) *Rule {
	return &Rule{Value: e.Value, expires: unixNano(e.Expires), trigger: unixNano(e.Trigger),
		Rate: e.Rate, Kind: e.Kind, Action: e.Action}
}

func unixNano(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func fromUnixNano(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}

// Expires returns when the rule lapses, zero for never.
func (r *Rule) Expires() time.Time { return fromUnixNano(r.expires) }

// Trigger returns the event time of the request that caused the entry,
// zero for operators' entries.
func (r *Rule) Trigger() time.Time { return fromUnixNano(r.trigger) }

// Expired reports whether the rule no longer applies at now.
func (r *Rule) Expired(now time.Time) bool {
	return r.expires != 0 && now.UnixNano() >= r.expires
}

// Entry returns the rule as an entry, without the analyst's fields.
func (r *Rule) Entry() Entry {
	return Entry{Kind: r.Kind, Value: r.Value, Action: r.Action, Expires: r.Expires(), Trigger: r.Trigger(), Rate: r.Rate}
}
