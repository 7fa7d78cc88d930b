package detectors

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/apiguard/apiguard/event"
)

// TestSharedPrincipals checks what anomalies say about sharing: how many
// established principals share a flagged address, network or fingerprint
// (Anomaly.SharedBy) and which of its members took part (Anomaly.Members),
// so that the responder can spare the principals that many share and block
// the attackers among them.
func TestSharedPrincipals(t *testing.T) {
	// stuffers are n clients of one fingerprint, each from its own address
	// on its own network, each trying three accounts, one after the other.
	stuffers := func(n int, hdr string) []*event.RequestEvent {
		var out []*event.RequestEvent
		for i := range n {
			w := who{ip: fmt.Sprintf("100.%d.%d.7", 64+i, i*3%250), ua: browserUA, hdr: hdr, lang: "en"}
			start := 30*time.Minute + time.Duration(i)*6*time.Second
			out = append(out, every(w, "POST /login", 2*time.Second, start, start+6*time.Second, func(j int, ev *event.RequestEvent) {
				ev.Status, ev.Account = 401, "leak-"+strconv.Itoa(i)+"-"+strconv.Itoa(j)
			})...)
		}
		return out
	}
	isStuffer := func(p *event.Principal) bool { return p.Kind == event.KindIP && strings.HasPrefix(p.Value, "100.") }

	t.Run("a common browser's fingerprint: shared, its stuffing members named once each", func(t *testing.T) {
		// The shop's 40 keys present the same browser fingerprint as the
		// stuffers, and so does a visitor who mistypes her password three
		// times in the middle of the campaign: she is no member.
		mistyper := who{ip: "198.51.100.77", ua: browserUA, hdr: "h1:browser", lang: "en"}
		typo := every(mistyper, "POST /login", 5*time.Second, 31*time.Minute, 31*time.Minute+15*time.Second, func(_ int, ev *event.RequestEvent) {
			ev.Status, ev.Account = 401, "alice"
		})
		got := by(runAll(newEngine(t, nil), sorted(shop(), stuffers(80, "h1:browser"), typo)), StuffingName)
		fp := event.ClientFingerprint("", "h1:browser", browserUA, "en")
		named := map[string]int{}
		for _, a := range got {
			if a.Principal.Kind != event.KindFP || a.Principal.Value != fp {
				t.Errorf("stuffing flagged %s:%s, want only the shared fingerprint", a.Principal.Kind, a.Principal.Value)
				continue
			}
			if a.SharedBy < 20 {
				t.Errorf("the fingerprint of 40 established keys is shared by %d", a.SharedBy)
			}
			for _, m := range a.Members {
				if !isStuffer(m) {
					t.Errorf("member %s:%s is not a stuffer", m.Kind, m.Value)
				}
				named[m.Value]++
			}
		}
		if len(got) == 0 {
			t.Fatal("the stuffing was not found")
		}
		for m, n := range named {
			if n > 1 {
				t.Errorf("member %s named %d times, want once", m, n)
			}
		}
		// The first few stuffers are not yet enough to flag it; from then
		// on each is named at its second failure over a second account.
		if len(named) < 60 {
			t.Errorf("%d of 80 stuffers named as members, want most", len(named))
		}
	})
	t.Run("a tool's fingerprint: shared by no one, no members", func(t *testing.T) {
		got := by(runAll(newEngine(t, nil), sorted(shop(), stuffers(80, "h1:stuffer"))), StuffingName)
		if len(got) == 0 {
			t.Fatal("the stuffing was not found")
		}
		for _, a := range got {
			if a.SharedBy != 0 || len(a.Members) != 0 {
				t.Errorf("%s:%s shared by %d, members %v; want 0 and none", a.Principal.Kind, a.Principal.Value, a.SharedBy, a.Members)
			}
		}
		if len(got) > 2 {
			t.Errorf("%d anomalies in 8 minutes, want one per 5-minute cooldown (it holds without members)", len(got))
		}
	})
	t.Run("an address that many keys use (a NAT): shared by them", func(t *testing.T) {
		nat := netip.MustParseAddr("203.0.113.9")
		office := crowd(2, "office", 12, map[string]float64{"GET /search": 0.2, "GET /products/{id}": 0.1}, 0, 50*time.Minute)
		for _, ev := range office {
			ev.ClientIp = event.ClientIPBytes(nat)
		}
		w := who{ip: nat.String(), ua: browserUA, hdr: "h1:tool"}
		stuff := every(w, "POST /login", time.Second, 30*time.Minute, 36*time.Minute, func(i int, ev *event.RequestEvent) {
			ev.Status, ev.Account = 401, "acct-"+strconv.Itoa(i)
		})
		got := by(runAll(newEngine(t, nil), sorted(shop(), office, stuff)), StuffingName)
		if len(got) == 0 || got[0].Principal.Kind != event.KindIP || got[0].Principal.Value != nat.String() {
			t.Fatalf("stuffing flagged %v, want ip:%s", principals(got), nat)
		}
		if got[0].SharedBy < 8 || got[0].SharedBy > 16 {
			t.Errorf("the NAT of 12 keys is shared by %d", got[0].SharedBy)
		}
	})
}

// TestSharingSurvivesRestartAndSweep: the counts are in the checkpoint, and
// what no established principal used for two periods is dropped.
func TestSharingSurvivesRestartAndSweep(t *testing.T) {
	e := newEngine(t, nil)
	runAll(e, shop())
	if len(e.st.Shares) == 0 {
		t.Fatal("no sharing counted")
	}
	state, err := e.MarshalState()
	if err != nil {
		t.Fatal(err)
	}
	r := newEngine(t, nil)
	if err := r.UnmarshalState(state); err != nil {
		t.Fatal(err)
	}
	fp := hashUint(shareFP, hashStrings("", "h1:browser", event.UAFamily(browserUA), "en"))
	at := t0.Add(50 * time.Minute).UnixNano()
	if a, b := e.shareCount(fp, at), r.shareCount(fp, at); a < 30 || a != b {
		t.Errorf("the shop's fingerprint: shared by %d, %d after a restart; want about 40 both times", a, b)
	}
	late := member("late", 0).event(2*shareSpan*time.Hour+time.Hour, "GET /search", "/search")
	r.Observe(late)
	if n := len(r.st.Shares); n != 0 {
		t.Errorf("%d sharing counts left after two idle periods, want 0", n)
	}
}
