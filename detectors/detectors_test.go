package detectors

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/apiguard/apiguard/event"
)

// shop is the background every detector test runs over: 40 API-key
// principals for 50 minutes, searching often and ordering rarely.
func shop() []*event.RequestEvent {
	return crowd(1, "key", 40, map[string]float64{
		"GET /search":          0.3,
		"POST /orders":         0.01,
		"GET /products/{id}":   0.1,
		"POST /login":          0.005,
		"GET /orders/{id}":     0.01,
		"GET /reports/{id}":    0.002,
		"GET /products/export": 0.001,
	}, 0, 50*time.Minute)
}

func TestVolumetric(t *testing.T) {
	attacker := who{key: "attacker", ip: "203.0.113.9", ua: browserUA, hdr: "h1:tool"}
	// The same 0.8 req/s is abuse on POST /orders and normal on GET /search.
	t.Run("orders at 0.8/s is abuse", func(t *testing.T) {
		as := runAll(newEngine(t, nil), sorted(shop(), every(attacker, "POST /orders", 1250*time.Millisecond, 30*time.Minute, 40*time.Minute, nil)))
		got := by(as, VolumetricName)
		if !slices.Equal(principals(got), []string{"key:attacker"}) {
			t.Fatalf("volumetric flagged %v, want the attacker alone", principals(got))
		}
		explained(t, got)
		if d := got[0].Deviations[0]; d.Feature != "requests_1m" || d.Observed < 20 || d.Expected > 3 {
			t.Errorf("first deviation %v, want requests_1m far above the median", d)
		}
	})
	t.Run("search at 0.4/s is normal", func(t *testing.T) {
		as := runAll(newEngine(t, nil), sorted(shop(), every(attacker, "GET /search", 2500*time.Millisecond, 30*time.Minute, 40*time.Minute, nil)))
		if got := by(as, VolumetricName); len(got) > 0 {
			t.Fatalf("volumetric flagged %v", principals(got))
		}
	})
	// An API with no baseline of its own (no one else writes to it) is
	// held to the busiest warm API's: a flood is flagged, a person's pace
	// that is normal on GET /search is not.
	t.Run("a cold API's flood is abuse", func(t *testing.T) {
		as := runAll(newEngine(t, nil), sorted(shop(), every(attacker, "POST /wishlist", 500*time.Millisecond, 30*time.Minute, 40*time.Minute, nil)))
		got := by(as, VolumetricName)
		if !slices.Equal(principals(got), []string{"key:attacker"}) {
			t.Fatalf("volumetric flagged %v, want the attacker alone", principals(got))
		}
		explained(t, got)
	})
	t.Run("a cold API at search pace is normal", func(t *testing.T) {
		as := runAll(newEngine(t, nil), sorted(shop(), every(attacker, "POST /wishlist", 2500*time.Millisecond, 30*time.Minute, 40*time.Minute, nil)))
		if got := by(as, VolumetricName); len(got) > 0 {
			t.Fatalf("volumetric flagged %v", principals(got))
		}
	})
	t.Run("nothing before warm-up", func(t *testing.T) {
		as := runAll(newEngine(t, nil), every(attacker, "POST /orders", 100*time.Millisecond, 0, 5*time.Minute, nil))
		if len(as) > 0 {
			t.Fatalf("a lone principal with no baseline was flagged: %v", as[0].Summary)
		}
	})
	t.Run("flagged traffic teaches nothing", func(t *testing.T) {
		e := newEngine(t, nil)
		runAll(e, sorted(shop(), every(attacker, "POST /orders", 200*time.Millisecond, 30*time.Minute, 50*time.Minute, nil)))
		median, _, _ := e.st.APIs["POST /orders"].Rate[winShort].stats()
		if median > 2 {
			t.Errorf("POST /orders baseline median %g after a flagged attacker: it learned from the attack", median)
		}
	})
}

func TestStuffing(t *testing.T) {
	login := func(w who, every time.Duration, from, to time.Duration, fail float64) []*event.RequestEvent {
		n := 0
		return sortedFlow(w, "POST /login", every, from, to, func(i int, ev *event.RequestEvent) {
			ev.Account = w.ip + "-" + strconv.Itoa(i)
			if float64(i%100) < fail*100 {
				ev.Status = 401
			}
			n++
		})
	}
	t.Run("one IP, many accounts", func(t *testing.T) {
		w := who{ip: "203.0.113.50", ua: browserUA, hdr: "h1:tool"}
		got := by(runAll(newEngine(t, nil), sorted(shop(), login(w, time.Second, 30*time.Minute, 36*time.Minute, 0.9))), StuffingName)
		if len(got) == 0 || got[0].Principal.Kind != event.KindIP || got[0].Principal.Value != "203.0.113.50" {
			t.Fatalf("stuffing flagged %v, want ip:203.0.113.50", principals(got))
		}
		explained(t, got)
	})
	t.Run("many IPs, one fingerprint", func(t *testing.T) {
		var flows [][]*event.RequestEvent
		for i := range 80 {
			w := who{ip: fmt.Sprintf("100.%d.%d.7", 64+i, i*3%250), ua: browserUA, hdr: "h1:stuffer", lang: "en"}
			flows = append(flows, login(w, 3*time.Second, 30*time.Minute+time.Duration(i)*6*time.Second, 30*time.Minute+time.Duration(i)*6*time.Second+6*time.Second, 1))
		}
		flows = append(flows, shop())
		got := by(runAll(newEngine(t, nil), sorted(flows...)), StuffingName)
		if len(got) == 0 || got[0].Principal.Kind != event.KindFP {
			t.Fatalf("stuffing flagged %v, want the fingerprint", principals(got))
		}
		want := event.ClientFingerprint("", "h1:stuffer", browserUA, "en")
		if got[0].Principal.Value != want {
			t.Errorf("principal %s, want %s (the one enforcement of kind fp matches)", got[0].Principal.Value, want)
		}
	})
	t.Run("a person mistyping is not stuffing", func(t *testing.T) {
		w := who{sub: "alice", ip: "203.0.113.51", ua: browserUA, hdr: "h1:browser"}
		got := by(runAll(newEngine(t, nil), sorted(shop(), login(w, 5*time.Second, 30*time.Minute, 30*time.Minute+25*time.Second, 0.8))), StuffingName)
		if len(got) > 0 {
			t.Fatalf("stuffing flagged %v", principals(got))
		}
	})
}

func sortedFlow(w who, api string, interval, from, to time.Duration, mod func(int, *event.RequestEvent)) []*event.RequestEvent {
	return every(w, api, interval, from, to, mod)
}

func TestStolenToken(t *testing.T) {
	owner := who{sub: "bob", ip: "198.51.100.20", ua: browserUA, hdr: "h1:chrome", lang: "en-US"}
	api := "GET /orders/{id}"
	run := func(t *testing.T, second who, from time.Duration) []*event.Anomaly {
		t.Helper()
		return by(runAll(newEngine(t, nil), sorted(shop(),
			every(owner, api, 20*time.Second, 10*time.Minute, 30*time.Minute, nil),
			every(second, api, 30*time.Second, from, from+5*time.Minute, nil))), StolenName)
	}
	t.Run("another client elsewhere while the owner is active", func(t *testing.T) {
		thief := who{sub: "bob", ip: "203.0.113.77", ua: "curl/8.5.0", hdr: "h1:curl"}
		got := run(t, thief, 20*time.Minute)
		if !slices.Equal(principals(got), []string{"sub:bob"}) {
			t.Fatalf("stolen_token flagged %v, want sub:bob", principals(got))
		}
		explained(t, got)
	})
	t.Run("the same client on another network is roaming", func(t *testing.T) {
		roaming := owner
		roaming.ip = "203.0.113.78"
		if got := run(t, roaming, 20*time.Minute); len(got) > 0 {
			t.Fatalf("roaming flagged: %s", got[0].Summary)
		}
	})
	t.Run("a new client after the owner went quiet is not concurrent", func(t *testing.T) {
		laptop := who{sub: "bob", ip: "203.0.113.79", ua: "Mozilla/5.0 Firefox/133.0", hdr: "h1:firefox"}
		if got := run(t, laptop, 45*time.Minute); len(got) > 0 {
			t.Fatalf("a later device flagged: %s", got[0].Summary)
		}
	})
}

func TestEnumeration(t *testing.T) {
	w := who{sub: "mallory", ip: "203.0.113.60", ua: browserUA, hdr: "h1:chrome"}
	t.Run("walking order ids", func(t *testing.T) {
		walk := every(w, "GET /orders/{id}", 3*time.Second, 30*time.Minute, 35*time.Minute, func(i int, ev *event.RequestEvent) { ev.Status = 403 })
		got := by(runAll(newEngine(t, nil), sorted(shop(), walk)), EnumerationName)
		if !slices.Equal(principals(got), []string{"sub:mallory"}) {
			t.Fatalf("enumeration flagged %v", principals(got))
		}
		explained(t, got)
	})
	t.Run("random ids, mostly 404", func(t *testing.T) {
		probe := every(w, "GET /orders/{id}", 4*time.Second, 30*time.Minute, 38*time.Minute, func(i int, ev *event.RequestEvent) {
			ev.Path = "/orders/" + strconv.Itoa(7919*i%100000)
			if i%5 != 0 {
				ev.Status = 404
			}
		})
		got := by(runAll(newEngine(t, nil), sorted(shop(), probe)), EnumerationName)
		if len(got) == 0 || got[0].Deviations[0].Feature != "miss_ratio_10m" {
			t.Fatalf("enumeration flagged %v", got)
		}
	})
	t.Run("a sync job paging through objects it may read", func(t *testing.T) {
		sync := every(who{key: "partner", ip: "198.51.100.99", ua: "Go-http-client/2.0"}, "GET /orders/{id}", time.Second,
			30*time.Minute, 35*time.Minute, nil)
		if got := by(runAll(newEngine(t, nil), sorted(shop(), sync)), EnumerationName); len(got) > 0 {
			t.Fatalf("enumeration flagged %s", got[0].Summary)
		}
	})
	t.Run("reading one's own orders", func(t *testing.T) {
		own := every(w, "GET /orders/{id}", 20*time.Second, 30*time.Minute, 40*time.Minute, func(i int, ev *event.RequestEvent) {
			ev.Path = "/orders/" + strconv.Itoa(500+i%4)
		})
		if got := by(runAll(newEngine(t, nil), sorted(shop(), own)), EnumerationName); len(got) > 0 {
			t.Fatalf("enumeration flagged %s", got[0].Summary)
		}
	})
}

func TestScraping(t *testing.T) {
	w := who{ip: "203.0.113.61", ua: browserUA, hdr: "h1:chrome"}
	t.Run("every product", func(t *testing.T) {
		copyAll := every(w, "GET /products/{id}", 2*time.Second, 25*time.Minute, 45*time.Minute, nil)
		got := by(runAll(newEngine(t, func(c *Config) { c.Disable = []string{VolumetricName} }), sorted(shop(), copyAll)), ScrapingName)
		if !slices.Equal(principals(got), []string{"ip:203.0.113.61"}) {
			t.Fatalf("scraping flagged %v", principals(got))
		}
		explained(t, got)
	})
	t.Run("a few products again and again", func(t *testing.T) {
		few := every(w, "GET /products/{id}", 10*time.Second, 25*time.Minute, 45*time.Minute, func(i int, ev *event.RequestEvent) {
			ev.Path = "/products/" + strconv.Itoa(1+i%5)
		})
		if got := by(runAll(newEngine(t, nil), sorted(shop(), few)), ScrapingName); len(got) > 0 {
			t.Fatalf("scraping flagged %s", got[0].Summary)
		}
	})
}

func TestProbing(t *testing.T) {
	w := who{ip: "203.0.113.62", ua: browserUA, hdr: "h1:tool"}
	cases := []struct {
		name string
		flow []*event.RequestEvent
		want string // first deviation's feature; empty for none
	}{
		{"decoy hit", every(w, "GET /internal/backup", time.Minute, 30*time.Minute, 31*time.Minute, func(_ int, ev *event.RequestEvent) {
			ev.Decision, ev.Check, ev.Status = event.Decision_DECISION_BLOCK, "decoy", 404
		}), "decoy_hits"},
		{"scanner user agent", every(who{ip: "203.0.113.63", ua: "sqlmap/1.8#stable (https://sqlmap.org)"}, "GET /search",
			time.Minute, 30*time.Minute, 31*time.Minute, nil), "scanner_user_agent"},
		{"404 burst across paths", every(w, "GET /admin/{id}", 2*time.Second, 30*time.Minute, 33*time.Minute, func(i int, ev *event.RequestEvent) {
			ev.Status = 404
			ev.Api = []string{"GET /admin/{id}", "GET /.env", "POST /wp-login.php", "GET /backup.zip"}[i%4]
		}), "unknown_routes"},
		{"WebDAV methods the API never serves", every(w, "PROPFIND /", 2*time.Second, 30*time.Minute, 31*time.Minute, func(i int, ev *event.RequestEvent) {
			ev.Method, ev.Status = []string{"PROPFIND", "SEARCH", "OPTIONS"}[i%3], 207
		}), "unknown_routes"},
		{"404s on one path, again and again", every(w, "GET /favicon.ico", 5*time.Second, 30*time.Minute, 30*time.Minute+50*time.Second, func(i int, ev *event.RequestEvent) {
			ev.Status = 404
		}), ""},
		{"a few broken links while browsing", every(w, "GET /products/{id}", 3*time.Second, 30*time.Minute, 33*time.Minute, func(i int, ev *event.RequestEvent) {
			if i%12 == 3 {
				ev.Status, ev.Api = 404, []string{"GET /img/a.png", "GET /img/b.png", "GET /img/c.png", "GET /img/d.png", "GET /img/e.png"}[i/12]
			}
		}), ""},
		{"an occasional broken link", every(w, "GET /products/{id}", 30*time.Second, 30*time.Minute, 40*time.Minute, func(i int, ev *event.RequestEvent) {
			if i%10 == 0 {
				ev.Status = 404
			}
		}), ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := by(runAll(newEngine(t, nil), sorted(shop(), c.flow)), ProbingName)
			if c.want == "" {
				if len(got) > 0 {
					t.Fatalf("probing flagged %s", got[0].Summary)
				}
				return
			}
			if len(got) == 0 || got[0].Deviations[0].Feature != c.want {
				t.Fatalf("probing gave %v, want %s", got, c.want)
			}
			explained(t, got)
		})
	}
}

func TestBotTiming(t *testing.T) {
	bot := who{ip: "203.0.113.64", ua: browserUA, hdr: "h1:chrome"}
	t.Run("a timer", func(t *testing.T) {
		got := by(runAll(newEngine(t, nil), sorted(shop(), every(bot, "GET /products/{id}", 4*time.Second, 30*time.Minute, 40*time.Minute, nil))), TimingName)
		if !slices.Equal(principals(got), []string{"ip:203.0.113.64"}) {
			t.Fatalf("bot_timing flagged %v", principals(got))
		}
		explained(t, got)
	})
	t.Run("a person at the same mean pace", func(t *testing.T) {
		person := crowd(9, "person", 1, map[string]float64{"GET /products/{id}": 0.25}, 30*time.Minute, 40*time.Minute)
		for _, ev := range person {
			ev.ApiKeyId, ev.ClientIp = "", bot.event(0, "GET /x", "/x").ClientIp
		}
		if got := by(runAll(newEngine(t, nil), sorted(shop(), person)), TimingName); len(got) > 0 {
			t.Fatalf("bot_timing flagged %s", got[0].Summary)
		}
	})
	t.Run("an API key's scheduled job", func(t *testing.T) {
		job := bot
		job.key = "batch"
		if got := by(runAll(newEngine(t, nil), sorted(shop(), every(job, "GET /reports/{id}", 4*time.Second, 30*time.Minute, 40*time.Minute, nil))), TimingName); len(got) > 0 {
			t.Fatalf("bot_timing flagged an API key: %s", got[0].Summary)
		}
	})
}

func TestParameters(t *testing.T) {
	words := []string{"shoes", "red dress", "laptop 15", "usb c cable", "coffee"}
	search := func(w who, from, to time.Duration, value func(i int) string) []*event.RequestEvent {
		return every(w, "GET /search", 3*time.Second, from, to, func(i int, ev *event.RequestEvent) {
			ev.Query = []*event.QueryParam{{Name: "q", Value: value(i)}}
		})
	}
	normal := search(member("user", 1), 0, 20*time.Minute, func(i int) string { return words[i%len(words)] })
	t.Run("an injection", func(t *testing.T) {
		attack := search(who{ip: "203.0.113.65", ua: browserUA}, 25*time.Minute, 25*time.Minute+10*time.Second, func(int) string {
			return "shoes'/**/UNION/**/SELECT/**/password/**/FROM/**/users--"
		})
		got := by(runAll(newEngine(t, nil), sorted(normal, attack)), ParamsName)
		if !slices.Equal(principals(got), []string{"ip:203.0.113.65"}) {
			t.Fatalf("parameters flagged %v", principals(got))
		}
		explained(t, got)
	})
	t.Run("an injection while the model is young", func(t *testing.T) {
		// 150 values learned, under min_samples (200): a new syntax
		// class is scored already, and the injection is not learned;
		// new words of the same kind are not.
		young := search(member("user", 1), 0, 450*time.Second, func(i int) string { return words[i%len(words)] })
		attack := search(who{ip: "203.0.113.65", ua: browserUA}, 8*time.Minute, 8*time.Minute+10*time.Second, func(int) string {
			return "shoes'/**/UNION/**/SELECT/**/password/**/FROM/**/users--"
		})
		fresh := search(who{ip: "203.0.113.66", ua: browserUA}, 9*time.Minute, 10*time.Minute, func(i int) string {
			return []string{"garden hose", "tent", "book 2"}[i%3]
		})
		e := newEngine(t, nil)
		got := by(runAll(e, sorted(young, attack, fresh)), ParamsName)
		if !slices.Equal(principals(got), []string{"ip:203.0.113.65"}) {
			t.Fatalf("parameters flagged %v, want the attacker alone", principals(got))
		}
		explained(t, got)
		if m := e.st.Params["GET /search\x00q"]; m == nil || m.ClassN[classOfByte['\'']] != 0 {
			t.Errorf("the young model learned the injection's quote")
		}
	})
	t.Run("a parameter the API never carried", func(t *testing.T) {
		extra := search(who{ip: "203.0.113.67", ua: browserUA}, 25*time.Minute, 25*time.Minute+10*time.Second, func(int) string { return "shoes" })
		for _, ev := range extra {
			ev.Query = append(ev.Query, &event.QueryParam{Name: "role", Value: "admin"})
		}
		got := by(runAll(newEngine(t, nil), sorted(normal, extra)), ParamsName)
		if len(got) == 0 || got[0].Deviations[0].Feature != `new parameter "role"` {
			t.Fatalf("parameters gave %v", got)
		}
	})
	t.Run("names without captured values", func(t *testing.T) {
		// The proxy records names only unless capture is on: nothing to
		// score, and no name is new.
		names := search(member("user", 2), 0, 30*time.Minute, func(int) string { return "" })
		if got := by(runAll(newEngine(t, nil), sorted(names)), ParamsName); len(got) > 0 {
			t.Fatalf("parameters flagged %s", got[0].Summary)
		}
	})
	t.Run("new words of the same kind", func(t *testing.T) {
		fresh := search(who{ip: "203.0.113.66", ua: browserUA}, 25*time.Minute, 26*time.Minute, func(i int) string {
			return []string{"garden hose", "tent", "book 2"}[i%3]
		})
		if got := by(runAll(newEngine(t, nil), sorted(normal, fresh)), ParamsName); len(got) > 0 {
			t.Fatalf("parameters flagged %s", got[0].Summary)
		}
	})
}

const shopSpec = `openapi: 3.0.3
info: {title: t, version: "1"}
paths:
  /orders/{orderId}:
    get: {summary: one}
    parameters: [{name: orderId, in: path}]
  /search:
    get: {summary: s}
  /v1/legacy:
    get: {deprecated: true}
`

func TestInventory(t *testing.T) {
	inv, err := ParseOpenAPI([]byte(shopSpec))
	if err != nil {
		t.Fatal(err)
	}
	if inv.Len() != 3 {
		t.Fatalf("inventory has %d operations, want 3", inv.Len())
	}
	w := who{key: "k", ip: "203.0.113.67", ua: "curl/8"}
	evs := sorted(
		every(w, "GET /orders/{id}", time.Second, 0, 10*time.Second, nil),
		every(w, "GET /search", time.Second, 0, 10*time.Second, nil),
		every(w, "GET /internal/debug", time.Second, 0, 10*time.Second, nil),
		every(w, "GET /v1/legacy", time.Second, 0, 10*time.Second, nil),
		every(w, "GET /nothing", time.Second, 0, 10*time.Second, func(_ int, ev *event.RequestEvent) { ev.Status = 404 }),
	)
	got := by(runAll(newEngine(t, func(c *Config) { c.Inventory.Ops = inv }), evs), InventoryName)
	var found []string
	for _, a := range got {
		found = append(found, a.Principal.Value+" "+a.Deviations[0].Feature)
	}
	want := []string{"GET /internal/debug undeclared_operation", "GET /v1/legacy deprecated_operation"}
	if !slices.Equal(found, want) {
		t.Fatalf("inventory found %v, want %v (each once)", found, want)
	}
	explained(t, got)
}

func TestParseOpenAPIErrors(t *testing.T) {
	for doc, want := range map[string]string{
		"":                             "no openapi or swagger version",
		"openapi: 3.0.0\n":             "paths is empty",
		"openapi: 3.0.0\npaths: [1]\n": "reading OpenAPI document",
		"openapi: 3.0.0\npaths:\n  x:\n    get: {}\n":                   `"x" does not start with /`,
		"openapi: 3.0.0\npaths:\n  /x:\n    get: {deprecated: maybe}\n": "paths./x.get (line 4)",
	} {
		if _, err := ParseOpenAPI([]byte(doc)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseOpenAPI(%q) = %v, want an error containing %q", doc, err, want)
		}
	}
}

func TestHealth(t *testing.T) {
	users := func() []*event.RequestEvent {
		return crowd(3, "u", 60, map[string]float64{"GET /products/{id}": 0.05}, 0, 60*time.Minute)
	}
	t.Run("an upstream failing", func(t *testing.T) {
		evs := sorted(users())
		for _, ev := range evs {
			if at := time.Duration(ev.TimeUnixNano - t0.UnixNano()); at > 40*time.Minute && at < 45*time.Minute && ev.Id[len(ev.Id)-1]%3 == 0 {
				ev.Status = 503
			}
		}
		got := by(runAll(newEngine(t, nil), evs), HealthName)
		if len(got) == 0 || got[0].Principal.Kind != event.KindAPI || got[0].Deviations[0].Feature != "error_ratio_1m" {
			t.Fatalf("error_latency gave %v", got)
		}
		explained(t, got)
	})
	t.Run("an upstream slowing down", func(t *testing.T) {
		evs := sorted(users())
		for _, ev := range evs {
			if at := time.Duration(ev.TimeUnixNano - t0.UnixNano()); at > 40*time.Minute && at < 45*time.Minute {
				ev.UpstreamLatencyNanos *= 20
			}
		}
		got := by(runAll(newEngine(t, nil), evs), HealthName)
		if len(got) == 0 || got[0].Deviations[0].Feature != "latency_ms_1m" {
			t.Fatalf("error_latency gave %v", got)
		}
	})
	t.Run("a steady API", func(t *testing.T) {
		if got := by(runAll(newEngine(t, nil), sorted(users())), HealthName); len(got) > 0 {
			t.Fatalf("error_latency flagged %s", got[0].Summary)
		}
	})
}

func TestProfile(t *testing.T) {
	// Moderate volume, but every answer a miss and every object new: no
	// single detector's threshold, an odd combination.
	w := who{sub: "odd", ip: "203.0.113.70", ua: browserUA, hdr: "h1:chrome"}
	odd := every(w, "GET /products/{id}", 15*time.Second, 30*time.Minute, 45*time.Minute, func(i int, ev *event.RequestEvent) {
		ev.Status, ev.ResponseBytes = 404, 100
	})
	e := newEngine(t, func(c *Config) { c.Disable = []string{EnumerationName, ProbingName} })
	got := by(runAll(e, sorted(shop(), odd)), ProfileName)
	if !slices.Equal(principals(got), []string{"sub:odd"}) {
		t.Fatalf("profile flagged %v", principals(got))
	}
	explained(t, got)
	if got[0].Deviations[0].Feature != "mahalanobis_d2" {
		t.Errorf("first deviation %v, want the distance", got[0].Deviations[0])
	}
	if got := by(runAll(newEngine(t, nil), shop()), ProfileName); len(got) > 0 {
		t.Fatalf("profile flagged a normal principal: %s", got[0].Summary)
	}
}

// FuzzParseOpenAPI: any document either parses into operations that look
// like "METHOD /path" or is refused; never a panic.
func FuzzParseOpenAPI(f *testing.F) {
	f.Add([]byte(shopSpec))
	f.Add([]byte(`{"swagger":"2.0","paths":{"/a/{b}":{"get":{"deprecated":true},"parameters":[]}}}`))
	f.Add([]byte("openapi: 3.1.0\npaths:\n  /x:\n    $ref: '#/x'\n"))
	f.Fuzz(func(t *testing.T, doc []byte) {
		inv, err := ParseOpenAPI(doc)
		if err != nil {
			return
		}
		for op := range inv.ops {
			m, p, ok := strings.Cut(op, " ")
			if !ok || m == "" || !strings.HasPrefix(p, "/") || strings.ToUpper(m) != m {
				t.Fatalf("operation %q", op)
			}
		}
	})
}
