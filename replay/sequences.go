package replay

import (
	"math"
	"math/rand/v2"
	"net/netip"
	"strconv"
	"time"
)

// Business flows whose steps come in an order, and the abuse that skips
// them. Normal sessions list their addresses before opening one, open
// the checkout page before paying, and open the gift-card page before
// checking a card's balance; the abuse calls the last step alone, again
// and again, at a person's pace, with every request served: nothing but
// the order of the calls gives it away. They draw from a random source
// of their own, so that adding them left the rest of a seed's traffic as
// it was.

// The flows' APIs.
const (
	apiAddresses   = "GET /account/addresses"
	apiAddress     = "GET /account/addresses/{id}"
	apiCheckout    = "GET /checkout"
	apiPayments    = "POST /payments"
	apiGiftCards   = "GET /gift-cards"
	apiGiftBalance = "POST /gift-cards/balance"
)

// sequenceRNG is the flows' own random source.
func (g *gen) sequenceRNG(salt uint64) *rand.Rand {
	return rand.New(rand.NewPCG(g.cfg.Seed^0x5e9, g.cfg.Seed+0x5e9+salt))
}

// seqIP is an address in net, drawn from rng (gen.ip draws from the
// traffic's main source, which the flows leave alone).
func seqIP(rng *rand.Rand, net netip.Prefix) netip.Addr {
	b := net.Addr().As4()
	b[3] = byte(1 + rng.IntN(254))
	return netip.AddrFrom4(b)
}

// seqEmit emits r with a latency drawn from rng (gen.emit would draw it
// from the traffic's main source and shift every later draw: the
// attacks' times and contents).
func (g *gen) seqEmit(rng *rand.Rand, r req) {
	if r.latency == 0 {
		r.latency = time.Duration(math.Exp(math.Log(40)+0.5*rng.NormFloat64()) * float64(time.Millisecond))
	}
	g.emit(r)
}

// seqThink is a person's pause on this flow's pages: 3 to 20 s.
func seqThink(rng *rand.Rand) int64 {
	return int64((3 + 17*rng.Float64()) * 1e9)
}

// seqWhen draws a time of day by the daily shape.
func (g *gen) seqWhen(rng *rand.Rand) int64 {
	for {
		t := g.start + rng.Int64N(g.end-g.start)
		if rng.Float64() < shape(t) {
			return t
		}
	}
}

// seqLogin emits a signed-in customer's login and returns the session's
// base request and the time after the login.
func (g *gen) seqLogin(rng *rand.Rand, t int64, c client, who, label string) (req, int64) {
	acct := hashed("acct:", who+"@example.com")
	g.seqEmit(rng, req{t: t, c: c, method: "POST", api: apiLogin, path: "/login", status: 200, bytes: 400, account: acct, label: label})
	t += seqThink(rng)
	token := hashed("tok:", who+strconv.FormatInt(t, 10))
	return req{c: c, sub: who, token: token, session: hashed("s:", who+strconv.FormatInt(t, 36)), label: label}, t
}

// sequenceFlows adds the normal sessions of the three flows: customers
// who look at a product or two, then at their addresses (listing them
// before opening one, again before the next), and pay after the checkout
// page; and anonymous visitors who check a gift card's balance from the
// gift-card page.
func (g *gen) sequenceFlows() {
	rng := g.sequenceRNG(0)
	n := func(base int) int { return max(1, int(float64(base)*g.cfg.Scale)) }
	for i := range n(1200) {
		c := []client{chrome, chrome, firefox, safari}[i%4]
		c.ip = seqIP(rng, g.nets[(i*13+5)%len(g.nets)])
		who := "buyer-" + strconv.Itoa(i%800)
		base, t := g.seqLogin(rng, g.seqWhen(rng), c, who, "")
		step := func(method, api, path string, status int, bytes int64) {
			r := base
			r.t, r.method, r.api, r.path, r.status, r.bytes = t, method, api, path, status, bytes
			g.seqEmit(rng, r)
			t += seqThink(rng)
		}
		for range 1 + rng.IntN(3) {
			step("GET", apiProduct, "/products/"+strconv.Itoa(1+rng.IntN(productsCount)), 200, 5000)
		}
		if rng.Float64() < 0.7 {
			for range 1 + rng.IntN(2) {
				step("GET", apiAddresses, "/account/addresses", 200, 1200)
				step("GET", apiAddress, "/account/addresses/"+strconv.Itoa(1000*(i%800)+1+rng.IntN(3)), 200, 600)
			}
		}
		if rng.Float64() < 0.7 {
			step("GET", apiCheckout, "/checkout", 200, 4000)
			step("POST", apiPayments, "/payments", 201, 400)
		}
	}
	for range n(900) {
		c := []client{chrome, chrome, firefox, safari}[rng.IntN(4)]
		c.ip = seqIP(rng, g.nets[rng.IntN(len(g.nets))])
		t := g.seqWhen(rng)
		for range 1 + rng.IntN(3) { // they browse first: no cold writes (campaign.go)
			g.seqEmit(rng, req{t: t, c: c, method: "GET", api: apiProduct, path: "/products/" + strconv.Itoa(1+rng.IntN(productsCount)), bytes: 5000})
			t += seqThink(rng)
		}
		g.seqEmit(rng, req{t: t, c: c, method: "GET", api: apiGiftCards, path: "/gift-cards", bytes: 2500})
		t += int64((10 + 30*rng.Float64()) * 1e9)
		g.seqEmit(rng, req{t: t, c: c, method: "POST", api: apiGiftBalance, path: "/gift-cards/balance", bytes: 120})
	}
}

// sequenceAbuse is one run of business-logic abuse: a customer's account
// reading other customers' addresses by id without ever listing its own
// (a broken object-level check, ids far apart), a signed-in card tester
// paying again and again without the checkout page, or one anonymous
// address checking gift-card numbers without the gift-card page. Each
// runs 8 to 14 requests, 15 to 50 s apart, all served, once the flows'
// baselines have had the day to learn (from 15:00 on a day from 06:00:
// at 4 partitions, each has seen about 100 sessions of each flow; from
// half-way through a day shorter than 18 hours).
func (g *gen) sequenceAbuse(n int, label string) {
	rng := g.sequenceRNG(uint64(n) + 1)
	from := min(int64(9*time.Hour), (g.end-g.start)/2)
	t := g.start + from + rng.Int64N(max(g.end-g.start-from-int64(time.Hour), 1))
	c := []client{chrome, firefox, safari}[n%3]
	c.ip = seqIP(rng, g.nets[rng.IntN(len(g.nets))])
	count := 8 + rng.IntN(7)
	gap := func() int64 { return int64((15 + 35*rng.Float64()) * 1e9) }
	switch n % 3 {
	case 0:
		base, tt := g.seqLogin(rng, t, c, "buyer-x"+strconv.Itoa(n), label)
		for range count {
			r := base
			r.t, r.method, r.api, r.bytes = tt, "GET", apiAddress, 600
			r.path = "/account/addresses/" + strconv.Itoa(1+rng.IntN(600_000))
			g.seqEmit(rng, r)
			tt += gap()
		}
	case 1:
		base, tt := g.seqLogin(rng, t, c, "buyer-x"+strconv.Itoa(n), label)
		for range count {
			r := base
			r.t, r.method, r.api, r.path, r.status, r.bytes = tt, "POST", apiPayments, "/payments", 201, 400
			g.seqEmit(rng, r)
			tt += gap()
		}
	default:
		c.ip = proxyIP(rng)
		tt := t
		for range count {
			g.seqEmit(rng, req{t: tt, c: c, method: "POST", api: apiGiftBalance, path: "/gift-cards/balance", bytes: 120, label: label})
			tt += gap()
		}
	}
}
