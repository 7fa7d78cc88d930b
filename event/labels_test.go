package event

import "testing"

func TestLabels(t *testing.T) {
	for _, tc := range []struct{ got, want string }{
		{Decision_DECISION_ALLOW.Label(), "allow"},
		{Decision_DECISION_REVOKED.Label(), "revoked"},
		{AuthOutcome_AUTH_EXPIRED.Label(), "expired"},
		{Severity_SEVERITY_CRITICAL.Label(), "critical"},
		{ActionKind_ACTION_UNBLOCK.Label(), "unblock"},
		{Decision(99).Label(), "unspecified"},
	} {
		if tc.got != tc.want {
			t.Errorf("label %q, want %q", tc.got, tc.want)
		}
	}
	if n := testing.AllocsPerRun(100, func() { _ = Decision_DECISION_BLOCK.Label() }); n != 0 {
		t.Errorf("Label allocates %v times", n)
	}
}
