package event

import "strings"

// Labels are enum names without their type prefix, lower case
// ("DECISION_ALLOW" → "allow"): the form metrics, ClickHouse enums and
// alerts use. Built once, so labelling allocates nothing.
var (
	decisionLabels = labels(Decision_name, "DECISION_")
	authLabels     = labels(AuthOutcome_name, "AUTH_")
	severityLabels = labels(Severity_name, "SEVERITY_")
	actionLabels   = labels(ActionKind_name, "ACTION_")
)

func labels(names map[int32]string, prefix string) map[int32]string {
	out := make(map[int32]string, len(names))
	for v, n := range names {
		out[v] = strings.ToLower(strings.TrimPrefix(n, prefix))
	}
	return out
}

// label returns the value's label, or "unspecified" for a value this
// schema does not know (one written by a newer schema): a consumer never
// stalls on it.
func label(m map[int32]string, v int32) string {
	if l, ok := m[v]; ok {
		return l
	}
	return "unspecified"
}

// Label returns the decision's label: "allow", "block", ….
func (d Decision) Label() string { return label(decisionLabels, int32(d)) }

// Label returns the auth outcome's label: "ok", "missing", ….
func (a AuthOutcome) Label() string { return label(authLabels, int32(a)) }

// Label returns the severity's label: "low", …, "critical".
func (s Severity) Label() string { return label(severityLabels, int32(s)) }

// Label returns the action kind's label: "block", "throttle", ….
func (k ActionKind) Label() string { return label(actionLabels, int32(k)) }
