package detectors

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/apiguard/apiguard/event"
)

// TestStolenNamesTheThief: a stolen credential's anomaly names the new
// client (its address, its token) as members, never the owner's address
// or the credential, and says what differs from the owner's client.
func TestStolenNamesTheThief(t *testing.T) {
	api := "GET /orders/{id}"
	members := func(a *event.Anomaly) []string {
		var out []string
		for _, m := range a.Members {
			out = append(out, m.Kind+":"+m.Value)
		}
		slices.Sort(out)
		return out
	}
	withToken := func(tok string) func(int, *event.RequestEvent) {
		return func(_ int, ev *event.RequestEvent) { ev.TokenId = tok }
	}
	t.Run("a subject's token used from another client", func(t *testing.T) {
		owner := who{sub: "bob", ip: "198.51.100.20", ua: browserUA, hdr: "h1:chrome", lang: "en-US"}
		thief := who{sub: "bob", ip: "203.0.113.77", ua: "curl/8.5.0", hdr: "h1:curl"}
		got := by(runAll(newEngine(t, nil), sorted(shop(),
			every(owner, api, 20*time.Second, 10*time.Minute, 30*time.Minute, withToken("jti-owner")),
			every(thief, api, 30*time.Second, 20*time.Minute, 25*time.Minute, withToken("jti-stolen")))), StolenName)
		if len(got) != 1 || got[0].Principal.Kind != event.KindSub {
			t.Fatalf("stolen_token flagged %v, want sub:bob once", principals(got))
		}
		if m := members(got[0]); !slices.Equal(m, []string{"ip:203.0.113.77", "token:jti-stolen"}) {
			t.Errorf("members %v, want the thief's address and token", m)
		}
		for _, m := range got[0].Members {
			if m.Value == owner.ip || m.Value == "jti-owner" || m.Kind == event.KindSub {
				t.Errorf("member %s:%s belongs to the owner", m.Kind, m.Value)
			}
		}
		for _, want := range []string{"203.0.113.0/24", "its client's: 198.51.100.0/24", "curl", "address 203.0.113.77", "token jti-stolen"} {
			if !strings.Contains(got[0].Summary, want) {
				t.Errorf("summary %q does not say %q", got[0].Summary, want)
			}
		}
	})
	t.Run("a token copied out of a browser: the token is the principal, the thief's address a member", func(t *testing.T) {
		owner := who{ip: "198.51.100.21", ua: browserUA, hdr: "h1:chrome", lang: "en-US"}
		thief := who{ip: "203.0.113.78", ua: "python-requests/2.32", hdr: "h1:python"}
		got := by(runAll(newEngine(t, nil), sorted(shop(),
			every(owner, api, 20*time.Second, 10*time.Minute, 30*time.Minute, withToken("jti-copied")),
			every(thief, api, 30*time.Second, 20*time.Minute, 25*time.Minute, withToken("jti-copied")))), StolenName)
		if len(got) != 1 || got[0].Principal.Kind != event.KindToken || got[0].Principal.Value != "jti-copied" {
			t.Fatalf("stolen_token flagged %v, want token:jti-copied once", principals(got))
		}
		if m := members(got[0]); !slices.Equal(m, []string{"ip:203.0.113.78"}) {
			t.Errorf("members %v, want the thief's address only", m)
		}
	})
	t.Run("an API key used from an address established principals share: the address is not named", func(t *testing.T) {
		owner := who{key: "k-partner", ip: "198.51.100.22", ua: "Go-http-client/2.0", hdr: "h1:go"}
		nat := "203.0.113.90"
		office := every(who{key: "k-office", ip: nat, ua: browserUA, hdr: "h1:browser", lang: "en"}, "GET /products", 10*time.Second,
			0, 40*time.Minute, nil)
		thief := who{key: "k-partner", ip: nat, ua: "curl/8.5.0", hdr: "h1:curl"}
		got := by(runAll(newEngine(t, nil), sorted(shop(), office,
			every(owner, api, 20*time.Second, 10*time.Minute, 30*time.Minute, nil),
			every(thief, api, 30*time.Second, 20*time.Minute, 25*time.Minute, nil))), StolenName)
		if len(got) != 1 || got[0].Principal.Value != "k-partner" {
			t.Fatalf("stolen_token flagged %v, want key:k-partner once", principals(got))
		}
		if len(got[0].Members) != 0 {
			t.Errorf("members %v: the shared address would refuse the office", members(got[0]))
		}
		if !strings.Contains(got[0].Summary, "not named") {
			t.Errorf("summary %q does not say why the address is not named", got[0].Summary)
		}
	})
}
