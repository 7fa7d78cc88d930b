package detectors

import (
	"fmt"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/apiguard/apiguard/event"
)

// trained returns a parameter model that learned n values from value.
func trained(n int, value func(i int) string) *paramModel {
	m := &paramModel{}
	for i := range n {
		m.learn(value(i))
	}
	return m
}

var (
	searchTerms = []string{"red shoes", "laptop 15", "usb c cable", "coffee beans", "garden hose", "desk lamp", "book", "tent 2 person",
		"running socks", "phone case", "rain jacket", "kettle", "mouse pad", "hdmi cable 2m", "yoga mat", "water bottle"}
	provinces = []string{"Madrid", "Barcelona", "Sevilla", "La Rioja", "Baleares (Illes)", "Santa Cruz de Tenerife", "Ciudad Real",
		"Burgos", "Girona", "Zamora", "Las Palmas", "Navarra", "Cuenca", "Soria"}
)

// freeWords make free text: the values of freeText have more than 32
// shapes and values, so neither a new value nor a new shape says anything.
var freeWords = []string{"red", "Shoes", "USB-C", "laptop", "15.6", "Kettle,", "mat", "2m", "(new)", "size:", "10", "XL", "hose!", "cable?",
	"bottle", "Tent", "for", "kids", "O2", "blue/green", "x", "Lamp", "12V", "set", "of", "3"}

func freeText(i int) string {
	v := freeWords[i%len(freeWords)]
	for k, j := 1, i; k < 1+i%4; k++ {
		j = j*31 + 7
		v += " " + freeWords[j%len(freeWords)]
	}
	return v
}

func search(i int) string   { return searchTerms[i%len(searchTerms)] + " " + strconv.Itoa(i%7) }
func province(i int) string { return provinces[i%len(provinces)] }
func quantity(i int) string { return strconv.Itoa(1 + i*37%999) }
func zip(i int) string      { return fmt.Sprintf("%05d", 1000+i*7919%90000) }

// TestParamsCalibration holds the parameter score's calibration to what
// it must flag after a few hundred values, and to the benign novelties it
// must let pass, at the default max_p.
func TestParamsCalibration(t *testing.T) {
	maxP := DefaultConfig().Params.MaxP
	flag := []struct {
		name   string
		n      int
		values func(int) string
		v      string
	}{
		{"quote-only SQL injection in free text, 300 values", 300, freeText, "Lamp' or 1 x"},
		{"an injection in search terms, 300 values", 300, search, "shoes' or '1'='1"},
		{"a lone quote in free text, 250 values", 250, search, "o'"},
		{"a comment sequence in free text", 300, search, "shoes -- x"},
		{"an angle bracket in a name", 300, province, "<Madrid"},
		{"a control character (CRLF injection)", 300, province, "Madrid\r\nSet-Cookie: a=b"},
		{"a double-encoded quote (a %27 left after one decoding)", 300, search, "shoes%27 or 1=1"},
		{"letters in a number (a type change)", 300, quantity, "1 or 1"},
		{"a new class of ordinary text in an enumerated value, 600 values", 600, func(i int) string { return []string{"Confirmar", "Pasar por caja"}[i%2] }, "Confirmar/"},
		{"a fixed-width code one digit short", 600, zip, "1234"},
	}
	for _, c := range flag {
		m := trained(c.n, c.values)
		if s := m.score(c.v); s.p > maxP {
			t.Errorf("%s: %q scored %.3g (> max_p %g), want flagged", c.name, c.v, s.p, maxP)
		} else if s.reason == "" || len(s.devs) == 0 {
			t.Errorf("%s: flagged without an explanation", c.name)
		}
	}
	pass := []struct {
		name   string
		n      int
		values func(int) string
		v      string
	}{
		{"a new province name with a space", 600, province, "Castilla La Mancha"},
		{"a new province name of known classes", 5000, province, "Valladolid"},
		{"a new number of more digits", 5000, quantity, "123456"},
		{"a longer number in a fixed-width number", 5000, zip, "123456"},
		{"new words in search terms", 5000, search, "garden chair 3"},
		{"new words in free text", 5000, freeText, "Kettle, for 2 kids (new)"},
		{"a quote in a name that carries quotes", 2000, func(i int) string {
			return []string{"Smith", "O'Brien", "García", "D'Angelo", "Lee", "Nguyen", "N'Diaye", "Park"}[i%8]
		}, "O'Neill"},
		{"an escape of an invalid UTF-8 byte (%F1), which event strings carry", 2000, func(i int) string {
			return []string{"A%F1adir", "Borrar", "Vino Rioja"}[i%3]
		}, "Jam%F3n"},
		{"a quote before the parameter is scored (min_samples)", 50, search, "o'"},
	}
	for _, c := range pass {
		m := trained(c.n, c.values)
		if c.n < DefaultConfig().Params.MinSamples {
			continue // the engine does not score it yet (TestParamsOnBodies)
		}
		if s := m.score(c.v); s.p <= maxP {
			t.Errorf("%s: %q scored %.3g (≤ max_p %g): %s", c.name, c.v, s.p, maxP, s.reason)
		}
	}
}

// TestParamsOnBodies runs the detector through the engine on form body
// values (body.*, as the proxy records them with proxy.capture.body:
// values), and checks that values are scored as recorded — decoded once,
// by the proxy — not decoded again.
func TestParamsOnBodies(t *testing.T) {
	form := func(w who, from, to time.Duration, comment func(i int) string) []*event.RequestEvent {
		return every(w, "POST /reviews", 3*time.Second, from, to, func(i int, ev *event.RequestEvent) {
			ev.Method = "POST"
			ev.Query = []*event.QueryParam{{Name: "body.rating", Value: strconv.Itoa(1 + i%5)}, {Name: "body.comment", Value: comment(i)},
				{Name: "body.password", Value: "[redacted]"}}
		})
	}
	// 300 reviews (15 minutes at one every 3 s) from ten members.
	var normal [][]*event.RequestEvent
	for k := range 10 {
		normal = append(normal, form(member("user", k), time.Duration(k)*300*time.Millisecond, 15*time.Minute, func(i int) string { return search(i + k) }))
	}
	at := 20 * time.Minute
	t.Run("a quote-only injection after 300 values", func(t *testing.T) {
		attack := form(who{ip: "203.0.113.70", ua: browserUA}, at, at+time.Second, func(int) string { return "great' or '1'='1" })
		got := by(runAll(newEngine(t, nil), sorted(append(normal, attack)...)), ParamsName)
		if !slices.Equal(principals(got), []string{"ip:203.0.113.70"}) {
			t.Fatalf("parameters flagged %v", principals(got))
		}
		explained(t, got)
	})
	t.Run("redacted values are neither learned nor scored", func(t *testing.T) {
		e := newEngine(t, nil)
		runAll(e, sorted(normal...))
		m := e.st.Params["POST /reviews\x00body.password"]
		if m == nil || m.N != 0 {
			t.Fatalf("body.password: model %+v, want a known name with no values learned", m)
		}
	})
	t.Run("new benign values", func(t *testing.T) {
		fresh := form(who{ip: "203.0.113.71", ua: browserUA}, at, at+time.Minute, func(i int) string {
			return []string{"nice tent 4", "broken kettle", "socks 12"}[i%3]
		})
		if got := by(runAll(newEngine(t, nil), sorted(append(normal, fresh)...)), ParamsName); len(got) > 0 {
			t.Fatalf("parameters flagged %s", got[0].Summary)
		}
	})
	t.Run("decoded once", func(t *testing.T) {
		// The proxy records "%2541" as sent "%41" (a double-encoded "A"):
		// decoding it again would read an upper-case letter, ordinary text;
		// as recorded, it carries an escape no comment carries.
		plus := form(who{ip: "203.0.113.72", ua: browserUA}, at, at+time.Second, func(int) string { return "c%41" })
		got := by(runAll(newEngine(t, nil), sorted(append(normal, plus)...)), ParamsName)
		if len(got) != 1 || !slices.ContainsFunc(got[0].Deviations, func(d *event.Deviation) bool { return d.Feature == "class a %XX escape" }) {
			t.Fatalf("parameters gave %v, want the %%XX escape a second decoding would hide", got)
		}
	})
}
