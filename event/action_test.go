package event

import "testing"

// TestActionKindNames: every action kind has a wire name that parses back,
// and the subject of an action is named by it.
func TestActionKindNames(t *testing.T) {
	for v := range ActionKind_name {
		k := ActionKind(v)
		if k == ActionKind_ACTION_UNSPECIFIED {
			if k.Name() != "" || ActionSubject(k) != "apiguard.actions.unknown" {
				t.Errorf("unspecified: name %q, subject %q", k.Name(), ActionSubject(k))
			}
			continue
		}
		got, err := ParseActionKind(k.Name())
		if err != nil || got != k {
			t.Errorf("%s: name %q parses as %v, %v", k, k.Name(), got, err)
		}
		if want := "apiguard.actions." + k.Name(); ActionSubject(k) != want {
			t.Errorf("%s: subject %q, want %q", k, ActionSubject(k), want)
		}
	}
	if _, err := ParseActionKind("ban"); err == nil {
		t.Error("ParseActionKind(ban) succeeded")
	}
}
