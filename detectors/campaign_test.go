package detectors

import (
	"bytes"
	"fmt"
	"strings"
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
		spam := formVisitors(20, "h1:spamtool", false, 65*time.Minute, 2)
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
		spam := formVisitors(30, "h1:browser", false, 62*time.Minute, 2)
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

// TestCampaignStateRestartsAndRepeats: with the campaign and unknown-route
// state in play (form spam, a WebDAV scanner, a scanner on unknown paths),
// the same events give the same anomalies byte for byte, and an engine
// restored from a checkpoint part way ends as one that never stopped.
func TestCampaignStateRestartsAndRepeats(t *testing.T) {
	scanner := who{ip: "203.0.113.80", ua: browserUA, hdr: "h1:tool"}
	webdav := who{ip: "203.0.113.81", ua: "Microsoft-WebDAV-MiniRedir/5.1.2600"}
	evs := sorted(shop(), formVisitors(20, "h1:browser", true, 3*time.Minute, 1), formVisitors(15, "h1:spamtool", false, 62*time.Minute, 2),
		every(scanner, "GET /x/{id}", 3*time.Second, 31*time.Minute, 33*time.Minute, func(i int, ev *event.RequestEvent) {
			ev.Status, ev.Api = 404, fmt.Sprintf("GET /probe%d", i)
		}),
		every(webdav, "PROPFIND /", 2*time.Second, 34*time.Minute, 35*time.Minute, func(i int, ev *event.RequestEvent) {
			ev.Method, ev.Status = "PROPFIND", 404
		}))
	whole := newEngine(t, nil)
	all := runAll(whole, evs)
	if len(by(all, CampaignName)) == 0 || len(by(all, ProbingName)) < 2 {
		t.Fatalf("want campaign and probing anomalies, got %d and %d", len(by(all, CampaignName)), len(by(all, ProbingName)))
	}
	if again := runAll(newEngine(t, nil), evs); !bytes.Equal(encodeAll(t, again), encodeAll(t, all)) {
		t.Fatal("a second run gave different anomalies")
	}
	for _, cut := range []int{len(evs) / 4, len(evs) / 2, len(evs) * 3 / 4} {
		first := newEngine(t, nil)
		before := runAll(first, evs[:cut])
		state, err := first.MarshalState()
		if err != nil {
			t.Fatal(err)
		}
		restarted := newEngine(t, nil)
		if err := restarted.UnmarshalState(state); err != nil {
			t.Fatal(err)
		}
		after := runAll(restarted, evs[cut:])
		if !bytes.Equal(encodeAll(t, append(before, after...)), encodeAll(t, all)) {
			t.Fatalf("cut at %d: anomalies differ from an unbroken run's", cut)
		}
		a, _ := whole.MarshalState()
		b, _ := restarted.MarshalState()
		if !bytes.Equal(a, b) {
			t.Fatalf("cut at %d: final state differs from an unbroken run's", cut)
		}
	}
}

// webhook returns a payment provider's deliveries from..to, one every
// 40 s from one of 32 addresses of its own network, with its own
// client, posted without navigating (there is nothing to navigate to).
func webhook(from, to time.Duration) []*event.RequestEvent {
	var out []*event.RequestEvent
	for i, t := 0, from; t < to; i, t = i+1, t+40*time.Second {
		w := who{ip: fmt.Sprintf("192.0.2.%d", 10+i*7%32), ua: "PayHub-Webhooks/2.3", hdr: "h1:payhub"}
		ev := w.event(t, "POST /webhooks/payments", "/webhooks/payments")
		ev.Status, ev.Auth = 204, event.AuthOutcome_AUTH_MISSING
		out = append(out, ev)
	}
	return out
}

// balanceCheckers returns n anonymous visitors from..from+n×75 s who
// post a gift card's balance check from its page; every third opens the
// page and posts at once, the others look at two products first.
func balanceCheckers(n int, from time.Duration) []*event.RequestEvent {
	var out []*event.RequestEvent
	for i := range n {
		w := who{ip: fmt.Sprintf("100.73.%d.%d", i/200, 10+i%200), ua: browserUA, hdr: "h1:browser", lang: "en"}
		t := from + time.Duration(i)*75*time.Second
		if i%3 != 0 {
			for j := range 2 {
				out = append(out, w.event(t, "GET /products/{id}", fmt.Sprintf("/products/%d", 3+j)))
				t += 8 * time.Second
			}
		}
		page := w.event(t, "GET /gift-cards", "/gift-cards")
		post := w.event(t+20*time.Second, "POST /gift-cards/balance", "/gift-cards/balance")
		page.Auth, post.Auth = event.AuthOutcome_AUTH_MISSING, event.AuthOutcome_AUTH_MISSING
		out = append(out, page, post)
	}
	return out
}

// TestCampaignColdHistory: an API's cold writes are judged against its
// own history once it has one; before, only when they come from many
// networks. A provider's webhook, whose every delivery comes without
// navigation from its own network from the first minute on, and an API
// a third of whose visitors post at once, are no campaign; form spam
// arriving while the webhook runs still is, and so is spam from a proxy
// pool on a form nobody has sent yet.
func TestCampaignColdHistory(t *testing.T) {
	isWebhook := func(a *event.Anomaly) bool {
		if strings.Contains(a.Summary, "PayHub") {
			return true
		}
		for _, m := range a.Members {
			if strings.HasPrefix(m.Value, "192.0.2.") {
				return true
			}
		}
		return false
	}
	t.Run("a webhook from its first delivery on", func(t *testing.T) {
		got := runAll(newEngine(t, nil), sorted(shop(), formVisitors(60, "h1:browser", true, 2*time.Minute, 1), webhook(0, 150*time.Minute)))
		for _, a := range got {
			if isWebhook(a) || (a.Principal.Kind == event.KindIP && strings.HasPrefix(a.Principal.Value, "192.0.2.")) {
				t.Errorf("%s flagged the webhook: %s", a.Detector, a.Summary)
			}
		}
	})
	t.Run("form spam while the webhook runs", func(t *testing.T) {
		got := by(runAll(newEngine(t, nil), sorted(shop(), formVisitors(20, "h1:browser", true, 2*time.Minute, 1),
			formVisitors(20, "h1:spamtool", false, 70*time.Minute, 2), webhook(0, 150*time.Minute))), CampaignName)
		if len(got) == 0 {
			t.Fatal("no campaign found")
		}
		for _, a := range got {
			if isWebhook(a) {
				t.Errorf("campaign names the webhook: %s", a.Summary)
			}
		}
		explained(t, got)
	})
	t.Run("form spam from a proxy pool before anyone signed up", func(t *testing.T) {
		var spam []*event.RequestEvent
		for _, ev := range formVisitors(20, "h1:spamtool", false, 20*time.Minute, 2) {
			ip := ev.ClientIp
			ip[len(ip)-2] = ip[len(ip)-1] // each address in a /24 of its own
			spam = append(spam, ev)
		}
		got := by(runAll(newEngine(t, nil), sorted(shop(), spam, webhook(0, 150*time.Minute))), CampaignName)
		if len(got) == 0 {
			t.Fatal("no campaign found")
		}
		for _, a := range got {
			if isWebhook(a) {
				t.Errorf("campaign names the webhook: %s", a.Summary)
			}
		}
	})
	t.Run("an API a third of whose visitors post at once", func(t *testing.T) {
		if got := by(runAll(newEngine(t, nil), sorted(shop(), balanceCheckers(120, time.Minute))), CampaignName); len(got) > 0 {
			t.Fatalf("campaign flagged: %s", got[0].Summary)
		}
	})
}

// TestCampaignAcrossTheHour: form spam that runs on across the long
// window's end, most of its API's writes in the first of the two, keeps
// being found in the next one: once the API has a history, a client at a
// campaign's count does not teach the API's usual share. A webhook runs
// alongside.
func TestCampaignAcrossTheHour(t *testing.T) {
	spam := formVisitors(60, "h1:spamtool", false, 100*time.Minute, 2) // 100 to 140 min, most of the second hour's writes
	got := by(runAll(newEngine(t, nil), sorted(shop(), formVisitors(10, "h1:browser", true, 2*time.Minute, 1),
		formVisitors(10, "h1:browser", true, 62*time.Minute, 3), formVisitors(40, "h1:browser", true, 121*time.Minute, 4),
		spam, webhook(0, 180*time.Minute))), CampaignName)
	late := 0
	for _, a := range got {
		if time.Unix(0, a.TimeUnixNano).Sub(t0) > 130*time.Minute {
			late += len(a.Members)
		}
	}
	if late < 5 {
		t.Fatalf("%d spammers named after 130 min (of %d anomalies), want the third hour's spam found too", late, len(got))
	}
}
