package detectors

import (
	"fmt"
	"testing"
	"time"

	"github.com/apiguard/apiguard/event"
)

// formVisitors returns n anonymous visitors, each from its own address,
// that open the sign-up form and post it; with browse, after three
// product pages first, as people do.
func formVisitors(n int, hdr string, browse bool, from time.Duration, net int) []*event.RequestEvent {
	var out []*event.RequestEvent
	for i := range n {
		w := who{ip: fmt.Sprintf("203.%d.%d.%d", net, 100+i/200, 10+i%200), ua: browserUA, hdr: hdr, lang: "en"}
		t := from + time.Duration(i)*40*time.Second
		if browse {
			for j := range 3 {
				out = append(out, w.event(t, "GET /products/{id}", fmt.Sprintf("/products/%d", 10+j)))
				t += 7 * time.Second
			}
		}
		form := w.event(t, "GET /signup", "/signup")
		form.Auth = event.AuthOutcome_AUTH_MISSING
		post := w.event(t+3*time.Second, "POST /signup", "/signup")
		post.Status, post.Auth = 201, event.AuthOutcome_AUTH_MISSING
		out = append(out, form, post)
	}
	return out
}

func TestCampaign(t *testing.T) {
	t.Run("form spam from many new addresses", func(t *testing.T) {
		normal := formVisitors(20, "h1:browser", true, 5*time.Minute, 1)
		spam := formVisitors(20, "h1:spamtool", false, 20*time.Minute, 2)
		got := by(runAll(newEngine(t, nil), sorted(shop(), normal, spam)), CampaignName)
		if len(got) == 0 {
			t.Fatal("no campaign found")
		}
		spammers := map[string]bool{}
		for _, ev := range spam {
			spammers[event.ClientIPString(ev.ClientIp)] = true
		}
		named := 0
		for _, a := range got {
			if a.Principal.Kind != event.KindFP {
				t.Errorf("campaign on %s %s, want the fingerprint", a.Principal.Kind, a.Principal.Value)
			}
			for _, m := range a.Members {
				if !spammers[m.Value] {
					t.Errorf("member %s is no spammer", m.Value)
				}
				named++
			}
		}
		if named < 10 {
			t.Errorf("%d members named, want most of the 20 spammers", named)
		}
		explained(t, got)
	})
	t.Run("people who browse before signing up", func(t *testing.T) {
		normal := formVisitors(60, "h1:browser", true, 5*time.Minute, 1)
		if got := by(runAll(newEngine(t, nil), sorted(shop(), normal)), CampaignName); len(got) > 0 {
			t.Fatalf("campaign flagged: %s", got[0].Summary)
		}
	})
	t.Run("spam from a browser many people use names only the spammers", func(t *testing.T) {
		normal := formVisitors(40, "h1:browser", true, 2*time.Minute, 1)
		spam := formVisitors(30, "h1:browser", false, 20*time.Minute, 2)
		got := by(runAll(newEngine(t, nil), sorted(shop(), normal, spam)), CampaignName)
		if len(got) == 0 {
			t.Fatal("no campaign found")
		}
		for _, a := range got {
			for _, m := range a.Members {
				for _, ev := range normal {
					if event.ClientIPString(ev.ClientIp) == m.Value {
						t.Fatalf("member %s only browsed and signed up", m.Value)
					}
				}
			}
		}
	})
	t.Run("low-and-slow stuffing: a few failed logins per address, never the mistyper", func(t *testing.T) {
		var flows [][]*event.RequestEvent
		for i := range 30 {
			w := who{ip: fmt.Sprintf("100.64.%d.%d", i/200, 10+i%200), ua: browserUA, hdr: "h1:browser", lang: "en"}
			flows = append(flows, every(w, "POST /login", 70*time.Second, 10*time.Minute+time.Duration(i)*50*time.Second,
				10*time.Minute+time.Duration(i)*50*time.Second+3*70*time.Second, func(j int, ev *event.RequestEvent) {
					ev.Status, ev.Account, ev.Auth = 401, fmt.Sprintf("victim-%d-%d", i, j), event.AuthOutcome_AUTH_INVALID
				}))
		}
		mistyper := who{ip: "198.51.100.77", ua: browserUA, hdr: "h1:browser", lang: "en"}
		flows = append(flows, every(mistyper, "POST /login", 20*time.Second, 20*time.Minute, 21*time.Minute, func(_ int, ev *event.RequestEvent) {
			ev.Status, ev.Account = 401, "alice"
		}), shop())
		got := by(runAll(newEngine(t, nil), sorted(flows...)), CampaignName)
		if len(got) == 0 {
			t.Fatal("no campaign found")
		}
		for _, a := range got {
			for _, m := range a.Members {
				if m.Value == mistyper.ip || m.Value[:4] != "100." {
					t.Errorf("member %s is no stuffer", m.Value)
				}
			}
		}
		explained(t, got)
	})
	t.Run("a distributed scraper's pool reading consecutive products", func(t *testing.T) {
		var flows [][]*event.RequestEvent
		id := 2000
		for i := range 30 {
			w := who{ip: fmt.Sprintf("100.70.%d.%d", i/200, 10+i%200), ua: browserUA, hdr: "h1:pytool", lang: "en"}
			from := 8*time.Minute + time.Duration(i)*50*time.Second
			flows = append(flows, every(w, "GET /products/{id}", 6*time.Second, from, from+48*time.Second, func(j int, ev *event.RequestEvent) {
				ev.Path, ev.Auth = fmt.Sprintf("/products/%d", id), event.AuthOutcome_AUTH_MISSING
				id++
			}))
		}
		got := by(runAll(newEngine(t, nil), sorted(append(flows, shop())...)), CampaignName)
		if len(got) == 0 {
			t.Fatal("no campaign found")
		}
		explained(t, got)
	})
	t.Run("visitors reading popular products, not consecutive ones", func(t *testing.T) {
		var flows [][]*event.RequestEvent
		for i := range 40 {
			w := who{ip: fmt.Sprintf("100.71.%d.%d", i/200, 10+i%200), ua: browserUA, hdr: "h1:browser", lang: "en"}
			from := 8*time.Minute + time.Duration(i)*40*time.Second
			flows = append(flows, every(w, "GET /products/{id}", 9*time.Second, from, from+80*time.Second, func(j int, ev *event.RequestEvent) {
				ev.Path, ev.Auth = fmt.Sprintf("/products/%d", []int{3, 17, 5, 120, 9, 44, 2, 61, 8}[(i+j)%9]), event.AuthOutcome_AUTH_MISSING
			}))
		}
		if got := by(runAll(newEngine(t, nil), sorted(append(flows, shop())...)), CampaignName); len(got) > 0 {
			t.Fatalf("campaign flagged: %s", got[0].Summary)
		}
	})
}
