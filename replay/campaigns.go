package replay

import (
	"math/rand/v2"
	"net/netip"
	"strconv"
	"time"
)

// Population-level campaigns and the normal form traffic they hide in.
// They draw from a random source of their own, so that adding them left
// the rest of a seed's traffic as it was.

// The forms' APIs.
const (
	apiSignupForm  = "GET /signup"
	apiSignup      = "POST /signup"
	apiContactForm = "GET /contact"
	apiContact     = "POST /contact"
)

// formsRNG is the campaigns' and forms' own random source.
func (g *gen) formsRNG() *rand.Rand {
	return rand.New(rand.NewPCG(g.cfg.Seed^0xf0f0, g.cfg.Seed+0xca))
}

// forms adds the normal visitors who sign up or write to the shop: they
// browse first, open the form, and send it a little later.
func (g *gen) forms() {
	rng := g.formsRNG()
	n := max(1, int(120*g.cfg.Scale))
	for i := range n {
		c := []client{chrome, chrome, firefox, safari}[rng.IntN(4)]
		c.ip = g.ip(netipInvalid)
		t := g.when()
		for range 2 + rng.IntN(6) {
			r := g.product(req{t: t, c: c})
			g.emit(r)
			t += g.think()
		}
		form, send := apiSignupForm, apiSignup
		if i%3 == 2 {
			form, send = apiContactForm, apiContact
		}
		g.emit(req{t: t, c: c, method: "GET", api: form, path: form[4:], bytes: 3000})
		t += int64((20 + 60*rng.Float64()) * 1e9)
		g.emit(req{t: t, c: c, method: "POST", api: send, path: send[5:], status: 201, bytes: 300})
	}
}

// campaign is abuse spread over many new addresses, each doing too
// little to stand out: form spam from a headless tool (a fingerprint of
// its own), low-and-slow credential stuffing (two or three failed logins
// per address, minutes apart), contact-form spam from clients that look
// like the shop's Chrome users (the fingerprint is shared: only the
// spamming addresses may be named), and a slow distributed scraper (each
// address reads six to nine consecutive products). With fewer than four
// campaigns of each kind, the campaign kind still runs all four.
func (g *gen) campaign(t int64, n int, label string) {
	rng := g.formsRNG()
	rng = rand.New(rand.NewPCG(rng.Uint64()+uint64(n), uint64(t)))
	switch n % 4 {
	case 0:
		c := spamTool
		for i := range 60 {
			c.ip = proxyIP(rng)
			tt := t + int64(i)*int64(40*time.Second) + rng.Int64N(int64(20*time.Second))
			g.emit(req{t: tt, c: c, method: "GET", api: apiSignupForm, path: "/signup", bytes: 3000, label: label})
			for range 1 + rng.IntN(2) {
				tt += int64((2 + 3*rng.Float64()) * 1e9)
				g.emit(req{t: tt, c: c, method: "POST", api: apiSignup, path: "/signup", status: 201, bytes: 300, label: label})
			}
		}
	case 1:
		c := tool
		for i := range 40 {
			c.ip = proxyIP(rng)
			tt := t + int64(i)*int64(90*time.Second) + rng.Int64N(int64(30*time.Second))
			for j := range 2 + rng.IntN(2) {
				g.emit(req{t: tt, c: c, method: "POST", api: apiLogin, path: "/login", status: 401, bytes: 90,
					account: hashed("acct:", "slow-"+strconv.Itoa(n)+"-"+strconv.Itoa(i)+"-"+strconv.Itoa(j)+"@example.net"), label: label})
				tt += int64((60 + 120*rng.Float64()) * 1e9)
			}
		}
	case 3:
		// A slow distributed scraper: each address of a pool reads a
		// run of consecutive products, a few seconds apart, and leaves.
		c := tool
		id := 1 + rng.IntN(productsCount-400)
		for i := range 50 {
			c.ip = proxyIP(rng)
			tt := t + int64(i)*int64(50*time.Second) + rng.Int64N(int64(10*time.Second))
			for range 6 + rng.IntN(4) {
				g.emit(req{t: tt, c: c, method: "GET", api: apiProduct, path: "/products/" + strconv.Itoa(id), bytes: 3000 + int64(rng.IntN(6000)), label: label})
				id = id%productsCount + 1
				tt += int64((4 + 6*rng.Float64()) * 1e9)
			}
		}
	default:
		c := chrome
		for i := range 60 {
			c.ip = proxyIP(rng)
			tt := t + int64(i)*int64(40*time.Second) + rng.Int64N(int64(20*time.Second))
			g.emit(req{t: tt, c: c, method: "GET", api: apiContactForm, path: "/contact", bytes: 3000, label: label})
			tt += int64((1 + 2*rng.Float64()) * 1e9)
			g.emit(req{t: tt, c: c, method: "POST", api: apiContact, path: "/contact", status: 201, bytes: 300, label: label})
		}
	}
}

// proxyIP is an address of the residential proxy pools campaigns rent
// (181.0.0.0 to 199.255.255.255), apart from the shop's own visitors'
// networks, so that a campaign never reuses a normal visitor's address.
func proxyIP(rng *rand.Rand) netip.Addr {
	return netip.AddrFrom4([4]byte{byte(181 + rng.IntN(19)), byte(rng.IntN(256)), byte(rng.IntN(256)), byte(1 + rng.IntN(254))})
}
