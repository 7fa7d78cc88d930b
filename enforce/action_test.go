package enforce

import (
	"testing"

	"github.com/apiguard/apiguard/event"
)

// TestActionKinds: an entry's action and the event's action kind that puts
// it are one vocabulary, with the same names; removals put no entry.
func TestActionKinds(t *testing.T) {
	for a := ActionThrottle; a <= ActionAllow; a++ {
		k := a.Kind()
		if k.Name() != a.String() || !k.Puts() {
			t.Errorf("%s: kind %s (%q)", a, k, k.Name())
		}
		if back, ok := ActionOf(k); !ok || back != a {
			t.Errorf("ActionOf(%s) = %s, %v; want %s", k, back, ok, a)
		}
	}
	for _, k := range []event.ActionKind{event.ActionKind_ACTION_UNBLOCK, event.ActionKind_ACTION_UNALLOW, event.ActionKind_ACTION_UNSPECIFIED} {
		if a, ok := ActionOf(k); ok {
			t.Errorf("ActionOf(%s) = %s, want none", k, a)
		}
	}
	if k, err := ParseKey("ip", " ::ffff:192.0.2.1 "); err != nil || k != (Key{KindIP, "192.0.2.1"}) || k.Principal().GetValue() != "192.0.2.1" {
		t.Errorf("ParseKey: %v, %v", k, err)
	}
	if _, err := ParseKey("api", "GET /x"); err == nil {
		t.Error("ParseKey accepted the api kind")
	}
}
