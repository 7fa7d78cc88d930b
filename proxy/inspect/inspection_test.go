package inspect

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/apiguard/apiguard/event"
	"github.com/apiguard/apiguard/proxy"
)

type inspectHarness struct {
	url    string
	events *collector
	bodies chan string
}

func newInspectHarness(t *testing.T, mutate func(*proxy.InspectConfig)) *inspectHarness {
	t.Helper()
	h := &inspectHarness{events: &collector{}, bodies: make(chan string, 4)}
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		h.bodies <- string(b)
	}))
	t.Cleanup(up.Close)
	cfg := proxy.DefaultConfig()
	cfg.Upstream = up.URL
	cfg.Routes = []string{"POST /upload", "POST /orders", "GET /search"}
	ic := proxy.DefaultInspectConfig()
	ic.JSON = proxy.JSONLimits{MaxDepth: 8, MaxElements: 100, MaxString: 1024}
	ic.MaxBodyBytes = 4096
	ic.MaxHeaders = 20
	ic.Routes = map[string]proxy.RouteInspect{"POST /upload": {MaxBodyBytes: 1 << 20, Injection: proxy.InjectionOff},
		"GET /search": {Injection: proxy.InjectionFlag}}
	if mutate != nil {
		mutate(&ic)
	}
	if err := ic.Validate(); err != nil {
		t.Fatal(err)
	}
	p, err := proxy.New(cfg, []proxy.Check{NewInspection(ic)}, h.events, 1, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(p)
	t.Cleanup(srv.Close)
	h.url = srv.URL
	return h
}

func TestInspection(t *testing.T) {
	h := newInspectHarness(t, nil)
	deep := strings.Repeat("[", 20) + strings.Repeat("]", 20)
	many := "[" + strings.Repeat("1,", 200) + "1]"
	for _, tc := range []struct {
		name, method, path, ctype, body string
		headers                         int
		status                          int
		reason                          string // substring of the event's reason; "" for allowed
		forwarded                       string // body the upstream must see; "-" for not forwarded
	}{
		{"plain json", "POST", "/orders", "application/json", `{"item":"book","qty":2}`, 0, 200, "", `{"item":"book","qty":2}`},
		{"sqli in json value", "POST", "/orders", "application/json", `{"item":"1' OR '1'='1"}`, 0, 403, "sqli in JSON value", "-"},
		{"sqli in escaped json", "POST", "/orders", "application/json", `{"item":"1\u0027 OR \u00271\u0027=\u00271"}`, 0, 403, "sqli in JSON value", "-"},
		{"xss in json key", "POST", "/orders", "application/json", `{"<script>alert(1)</script>":1}`, 0, 403, "xss in JSON key", "-"},
		{"sqli in query", "GET", "/items?id=1%20UNION%20SELECT%20password%20FROM%20users", "", "", 0, 403, "sqli in query id", "-"},
		{"xss in path", "GET", "/p/%3Cscript%3Ealert(1)%3C%2Fscript%3E", "", "", 0, 403, "xss in path", "-"},
		{"sqli in form", "POST", "/orders", "application/x-www-form-urlencoded", "q=x&user=admin'--", 0, 403, "sqli in form user", "-"},
		{"flag only route", "GET", "/search?q=1'%20OR%201=1--", "", "", 0, 200, "flagged: sqli in query q", ""},
		{"injection off route", "POST", "/upload", "application/json", `{"f":"' OR 1=1--"}`, 0, 200, "", `{"f":"' OR 1=1--"}`},
		{"benign punctuation", "GET", "/items?name=O%27Brien&note=it%27s%20fine", "", "", 0, 200, "", ""},
		{"malformed json", "POST", "/orders", "application/json", `{"a":`, 0, 400, "unexpected end of body", "-"},
		{"deep json", "POST", "/orders", "application/json", deep, 0, 413, "nested deeper than 8", "-"},
		{"many elements", "POST", "/orders", "application/json", many, 0, 413, "more than 100 elements", "-"},
		{"oversize body", "POST", "/orders", "text/plain", strings.Repeat("a", 5000), 0, 413, "limit 4096", "-"},
		{"larger limit route", "POST", "/upload", "application/octet-stream", strings.Repeat("a", 5000), 0, 200, "", strings.Repeat("a", 5000)},
		{"xxe", "POST", "/orders", "application/xml", `<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]><r>&x;</r>`, 0, 400, "DTD or entities", "-"},
		{"billion laughs", "POST", "/orders", "text/xml", `<!DOCTYPE l [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;">]><l>&b;</l>`, 0, 400, "DTD or entities", "-"},
		{"plain xml", "POST", "/orders", "application/xml", `<order><item>book</item></order>`, 0, 200, "", `<order><item>book</item></order>`},
		{"broken xml", "POST", "/orders", "application/xml", `<order><item>book</order>`, 0, 400, "XML", "-"},
		{"header flood", "GET", "/items", "", "", 30, 431, "header fields, limit 20", "-"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var body io.Reader
			if tc.body != "" {
				body = strings.NewReader(tc.body)
			}
			req, _ := http.NewRequest(tc.method, h.url+tc.path, body)
			if tc.ctype != "" {
				req.Header.Set("Content-Type", tc.ctype)
			}
			for i := range tc.headers {
				req.Header.Add("X-Flood", strings.Repeat("x", i))
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			got, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d (%s)", resp.StatusCode, tc.status, got)
			}
			ev := h.events.Last(t)
			if tc.reason == "" && ev.Reason != "" || !strings.Contains(ev.Reason, tc.reason) {
				t.Errorf("event reason %q, want %q", ev.Reason, tc.reason)
			}
			if tc.status >= 400 && ev.Decision != event.Decision_DECISION_BLOCK {
				t.Errorf("decision %v, want block", ev.Decision)
			}
			if tc.forwarded == "-" {
				select {
				case b := <-h.bodies:
					t.Errorf("refused request reached the upstream with %q", b)
				default:
				}
				return
			}
			if b := <-h.bodies; b != tc.forwarded {
				t.Errorf("upstream got %q, want %q", b, tc.forwarded)
			}
		})
	}
}

// TestInspectionRecordsAccount checks that a login route's account field
// reaches the event, hashed, from JSON, a form or the query, and that
// routes without the setting record none.
func TestInspectionRecordsAccount(t *testing.T) {
	cfg := proxy.DefaultInspectConfig()
	cfg.Routes = map[string]proxy.RouteInspect{"POST /login": {Account: "username"}}
	c := NewInspection(cfg)
	want := AccountHash("alice@example.com")
	for _, tc := range []struct {
		name, method, target, ctype, body, want string
	}{
		{"json", "POST", "/login", "application/json", `{"password":"x","username":"alice@example.com"}`, want},
		{"nested json", "POST", "/login", "application/json", `{"auth":{"username":"alice@example.com"}}`, want},
		{"json number is no account", "POST", "/login", "application/json", `{"username":7,"note":"alice@example.com"}`, ""},
		{"form", "POST", "/login", "application/x-www-form-urlencoded", "username=alice%40example.com&password=x", want},
		{"query", "POST", "/login?username=alice@example.com", "", "", want},
		{"other route", "POST", "/orders", "application/json", `{"username":"alice@example.com"}`, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			x := exchangeFor(tc.method, tc.target, tc.ctype, tc.body)
			if d := c.Check(x); d != nil {
				t.Fatalf("refused: %+v", d)
			}
			if x.Event.Account != tc.want {
				t.Errorf("account %q, want %q", x.Event.Account, tc.want)
			}
			if tc.body != "" {
				b, _ := io.ReadAll(x.Req.Body)
				if string(b) != tc.body {
					t.Errorf("upstream body %q, want %q", b, tc.body)
				}
			}
		})
	}
	if !strings.HasPrefix(want, "acct:") || len(want) != 21 || strings.Contains(want, "alice") {
		t.Errorf("AccountHash = %q", want)
	}
}
