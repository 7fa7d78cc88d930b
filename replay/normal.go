package replay

import (
	"fmt"
	"math"
	"math/rand/v2"
	"net/netip"
	"strconv"
	"time"

	"github.com/apiguard/apiguard/event"
)

// The synthetic shop's APIs.
const (
	apiLogin      = "POST /login"
	apiProducts   = "GET /products"
	apiProduct    = "GET /products/{id}"
	apiCart       = "POST /cart/items"
	apiOrders     = "POST /orders"
	apiOrder      = "GET /orders/{id}"
	apiUser       = "GET /users/{id}"
	apiInventory  = "GET /v1/inventory"
	apiShipments  = "POST /v1/shipments"
	apiReport     = "GET /v1/reports/{id}"
	apiLegacy     = "GET /v1/legacy/orders/{id}"
	productsCount = 5000
)

var searchWords = []string{"shoes", "red dress", "laptop", "usb c cable", "coffee", "running", "phone case", "lamp",
	"desk", "chair", "headphones", "gift card", "socks", "jacket", "kids toys", "garden hose", "tent", "book", "watch",
	"wine glasses", "yoga mat", "backpack", "sunglasses", "keyboard", "monitor 27", "blender", "towels", "pillow"}

// normal generates the day's legitimate traffic: browser users who log in
// and shop, mobile-app users (some roaming between networks), anonymous
// visitors, partners' servers with API keys, and batch jobs.
func (g *gen) normal() {
	n := func(base int) int { return max(1, int(float64(base)*g.cfg.Scale)) }
	users := n(700)
	for range n(1100) {
		u := g.rng.IntN(users)
		c := []client{chrome, chrome, chrome, firefox, safari}[u%5]
		c.ip = g.ip(g.nets[u%len(g.nets)])
		g.userSession(g.when(), c, "user-"+strconv.Itoa(u), 5+g.rng.IntN(30), "")
	}
	apps := n(400)
	for range n(600) {
		u := g.rng.IntN(apps)
		c := []client{android, ios}[u%2]
		c.ip = g.ip(g.nets[(u*7+3)%len(g.nets)])
		g.appSession(g.when(), c, "app-"+strconv.Itoa(u))
	}
	for range n(500) {
		c := []client{chrome, chrome, firefox, safari}[g.rng.IntN(4)]
		c.ip = g.ip(netipInvalid)
		g.browse(g.when(), c, 3+g.rng.IntN(12), "")
	}
	for i := range n(8) {
		g.partner(i)
	}
	for i := range 2 {
		g.batch(i)
	}
	// An old app version still calls a deprecated endpoint now and then:
	// that is the inventory detector's zombie case, labelled in attacks.go.
}

// productID draws a product by popularity (Zipf-like).
func (g *gen) productID() int {
	return 1 + int(math.Min(productsCount-1, math.Floor(math.Pow(g.rng.Float64(), 2.2)*productsCount)))
}

func (g *gen) product(r req) req {
	id := g.productID()
	r.method, r.api, r.path = "GET", apiProduct, "/products/"+strconv.Itoa(id)
	r.bytes = 3000 + int64(g.rng.IntN(6000))
	if g.rng.Float64() < 0.01 {
		r.status, r.bytes = 404, 120 // a stale link
	}
	return r
}

func (g *gen) search(r req) req {
	q := searchWords[g.rng.IntN(len(searchWords))]
	r.method, r.api = "GET", apiProducts
	r.query = []*event.QueryParam{{Name: "q", Value: q}, {Name: "page", Value: strconv.Itoa(1 + g.rng.IntN(3))}}
	r.path = "/products"
	if g.rng.Float64() < 0.3 {
		r.query = append(r.query, &event.QueryParam{Name: "sort", Value: []string{"price", "-price", "rating", "new"}[g.rng.IntN(4)]})
	}
	r.bytes = 12000 + int64(g.rng.IntN(20000))
	r.latency = time.Duration(math.Exp(math.Log(120)+0.4*g.rng.NormFloat64()) * float64(time.Millisecond))
	return r
}

// login emits a login (sometimes after a typo) and returns the time after it.
func (g *gen) login(t int64, c client, who, label string) int64 {
	acct := hashed("acct:", who+"@example.com")
	if g.rng.Float64() < 0.06 {
		g.emit(req{t: t, c: c, method: "POST", api: apiLogin, path: "/login", status: 401, bytes: 90, account: acct, label: label})
		t += g.think()
	}
	g.emit(req{t: t, c: c, method: "POST", api: apiLogin, path: "/login", status: 200, bytes: 400, account: acct, label: label})
	return t + g.think()
}

// userSession is a person in a browser: log in, then search, view,
// add to cart, sometimes order, look at their orders and account.
func (g *gen) userSession(t int64, c client, who string, steps int, label string) int64 {
	t = g.login(t, c, who, label)
	token := hashed("tok:", who+strconv.FormatInt(t, 10))
	sess := hashed("s:", who+strconv.FormatInt(t, 36))
	base := req{c: c, sub: who, token: token, session: sess, label: label}
	for range steps {
		r := base
		r.t = t
		switch x := g.rng.Float64(); {
		case x < 0.35:
			r = g.search(r)
		case x < 0.72:
			r = g.product(r)
		case x < 0.82:
			r.method, r.api, r.path, r.bytes, r.status = "POST", apiCart, "/cart/items", 500, 201
		case x < 0.86:
			r.method, r.api, r.path, r.bytes, r.status = "POST", apiOrders, "/orders", 800, 201
			r.latency = 200 * time.Millisecond
			g.orders[who] = append(g.orders[who], g.nextOr)
			g.nextOr += 1 + g.rng.IntN(40)
		case x < 0.93 && len(g.orders[who]) > 0:
			o := g.orders[who][g.rng.IntN(len(g.orders[who]))]
			r.method, r.api, r.path, r.bytes = "GET", apiOrder, "/orders/"+strconv.Itoa(o), 2500
		default:
			r.method, r.api, r.path, r.bytes = "GET", apiUser, "/users/"+userNum(who), 1500
		}
		g.emit(r)
		t += g.think()
	}
	return t
}

func userNum(who string) string {
	for i := len(who) - 1; i >= 0; i-- {
		if who[i] < '0' || who[i] > '9' {
			return who[i+1:]
		}
	}
	return who
}

// appSession is the mobile app: a token subject, and a third of sessions
// move to another network halfway (Wi-Fi to mobile data).
func (g *gen) appSession(t int64, c client, who string) {
	token := hashed("tok:", who)
	roam := g.rng.Float64() < 0.33
	steps := 6 + g.rng.IntN(25)
	for i := range steps {
		if roam && i == steps/2 {
			c.ip = g.ip(netipInvalid)
		}
		r := req{t: t, c: c, sub: who, token: token}
		if g.rng.Float64() < 0.5 {
			r = g.product(r)
		} else {
			r = g.search(r)
		}
		g.emit(r)
		t += g.think()
	}
}

// browse is an anonymous visitor: searches and product pages.
func (g *gen) browse(t int64, c client, steps int, label string) {
	for range steps {
		r := req{t: t, c: c, label: label}
		if g.rng.Float64() < 0.4 {
			r = g.search(r)
		} else {
			r = g.product(r)
		}
		g.emit(r)
		t += g.think()
	}
}

// partner is a business partner's integration: servers in a data centre
// polling inventory and posting shipments all day, around the clock.
func (g *gen) partner(i int) {
	key := fmt.Sprintf("pk_live_%02d", i)
	c := []client{goCli, javaCli}[i%2]
	net := g.dc[i%len(g.dc)]
	servers := []client{c, c, c}
	for s := range servers {
		servers[s].ip = g.ip(net)
	}
	rate := 0.02 + 0.1*g.rng.Float64() // requests per second
	for t := g.start; t < g.end; t += int64(g.rng.ExpFloat64() / rate * 1e9) {
		r := req{t: t, c: servers[g.rng.IntN(len(servers))], key: key}
		if g.rng.Float64() < 0.85 {
			r.method, r.api, r.path, r.bytes = "GET", apiInventory, "/v1/inventory", 900
			r.query = []*event.QueryParam{{Name: "sku", Value: fmt.Sprintf("SKU-%05d", g.rng.IntN(99999))}}
		} else {
			r.method, r.api, r.path, r.bytes, r.status = "POST", apiShipments, "/v1/shipments", 300, 201
		}
		g.emit(r)
	}
}

// batch is a nightly-and-hourly reporting job: one request a minute.
func (g *gen) batch(i int) {
	key := fmt.Sprintf("batch_%d", i)
	c := goCli
	c.ip = g.ip(g.dc[(i+20)%len(g.dc)])
	for t := g.start + int64(i)*7e9; t < g.end; t += 60e9 + g.rng.Int64N(2e9) - 1e9 {
		day := time.Unix(0, t).UTC().Format("2006-01-02")
		g.emit(req{t: t, c: c, key: key, method: "GET", api: apiReport, path: "/v1/reports/" + strconv.Itoa(1+i),
			query: []*event.QueryParam{{Name: "day", Value: day}}, bytes: 40000, latency: 300 * time.Millisecond})
	}
}

// The payment provider's webhook: deliveries posted to the shop from the
// provider's own network, with its own client, without navigating (there
// is nothing to navigate to). Anonymous: the shop checks the delivery's
// signature itself, so the proxy sees no key.
const apiWebhook = "POST /webhooks/payments"

var webhookClient = client{ua: "PayHub-Webhooks/2.3 (+https://payhub.example/docs/webhooks)", hdr: "h1:7d2e9b40c1a6f358",
	ja4: "t13d1310h1_c866b44c5a26_5e2b8f4d6a10"}

// webhookNet is the provider's network, apart from the visitors',
// data-centre and proxy-pool networks.
var webhookNet = netip.MustParsePrefix("203.0.113.0/24")

// webhooks adds the day's webhook deliveries: one every half minute to
// three minutes from the first minute of the day on, each from one of the
// provider's 32 addresses. It draws from a random source of its own and
// sets every event's latency, so adding it left the rest of a seed's
// traffic as it was.
func (g *gen) webhooks() {
	rng := rand.New(rand.NewPCG(g.cfg.Seed^0x3e6b00c, g.cfg.Seed+0x7e))
	c := webhookClient
	for t := g.start + rng.Int64N(int64(time.Minute)); t < g.end; t += int64((30 + 150*rng.Float64()) * 1e9) {
		a := webhookNet.Addr().As4()
		a[3] = byte(10 + rng.IntN(32))
		c.ip = netip.AddrFrom4(a)
		g.emit(req{t: t, c: c, method: "POST", api: apiWebhook, path: "/webhooks/payments", status: 204,
			latency: time.Duration((20 + 40*rng.Float64()) * float64(time.Millisecond))})
	}
}
