package proxy

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/apiguard/apiguard/event"
)

// getRaw sends "GET target" with extra header lines over a fresh
// connection to addr and returns the response; the request target goes on
// the wire exactly as given.
func getRaw(t *testing.T, addr, target string, headers ...string) *http.Response {
	t.Helper()
	raw := "GET " + target + " HTTP/1.1\r\nHost: api.example\r\n"
	for _, h := range headers {
		raw += h + "\r\n"
	}
	return rawExchange(t, addr, raw+"Connection: close\r\n\r\n", 1)[0]
}

// TestQueryForwardedAsSent: a query with a raw ";" or a "%" that starts no
// escape is real traffic (Apache directory listings link to "?C=M;O=A",
// data: URLs carry ";base64,"). The proxy lets it through and the upstream
// receives it byte for byte, whatever the inspection mode, and also with
// no check at all (ReverseProxy alone would re-encode it and drop the
// pairs it cannot parse).
func TestQueryForwardedAsSent(t *testing.T) {
	queries := []string{
		"C=M;O=A",
		"C=N;O=D&P=*.tar.gz",
		"ssrf=data://text/plain;base64,SGVsbG8sIFdvcmxkIQ==",
		"discount=50%&note=100%25+sure",
		"q=%zz&r=%4",
		"b=2&a=1&b=3&a",
		"q=caf%E9&x=%c0%af",
		"x=1;y=2&z=%3B&&w=",
		"utm_source=x;utm_medium=y&id=7",
	}
	for _, mode := range []string{"no check", InjectionOff, InjectionFlag, InjectionBlock} {
		t.Run(mode, func(t *testing.T) {
			var checks []Check
			if mode != "no check" {
				ic := DefaultInspectConfig()
				ic.Injection = mode
				checks = append(checks, inspectionForTests(ic))
			}
			s := serveProxy(t, nil, checks...)
			for _, q := range queries {
				resp := getRaw(t, s.addr, "/files/?"+q)
				if resp.StatusCode != http.StatusOK {
					t.Errorf("?%s: status %d, want 200 (event reason %q)", q, resp.StatusCode, s.events.Last(t).Reason)
					continue
				}
				if got := s.lastUpstream(t).URL.RawQuery; got != q {
					t.Errorf("?%s: the upstream received ?%s", q, got)
				}
			}
		})
	}
}

// TestQueryInspectionNoBypass: a ";" or a bad escape added to an attack
// does not hide it. Inspection reads the query the way each kind of
// upstream might (";" as data or as a separator; escapes decoded where
// they are valid, and the raw text too where one is not) and blocks what
// any reading shows.
func TestQueryInspectionNoBypass(t *testing.T) {
	s := serveProxy(t, func(c *Config) { c.Routes = []string{"GET /items"} }, inspectionForTests(DefaultInspectConfig()))
	for _, tc := range []struct {
		name, query, reason string
	}{
		{"sqli, then a semicolon pair", "id=1%20UNION%20SELECT%20password%20FROM%20users;x=1", "sqli in query id"},
		{"sqli after a semicolon", "x=1;id=1'%20OR%20'1'='1", "sqli in query"},
		{"sqli with a bad escape", "id=1'%20OR%20'1'='1%zz", "sqli in query id"},
		{"sqli with a bad escape first", "id=%zz1'%20OR%20'1'='1", "sqli in query id"},
		{"xss with a trailing percent", "q=%3Cscript%3Ealert(document.cookie)%3C/script%3E%", "xss in query q"},
		{"xss in a name with a semicolon", "a;%3Cscript%3Ealert(1)%3C/script%3E=1", "xss in query name"},
		{"xss in a semicolon pair's name", "x=1;%3Cimg%20src=x%20onerror=alert(1)%3E", "xss in query"},
		{"sqli, plus as space, bad escape", "id=1'+OR+'1'='1'--%", "sqli in query id"},
		{"sqli in a nameless pair", "=1'%20OR%20'1'='1", "sqli in query"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp := getRaw(t, s.addr, "/items?"+tc.query)
			ev := s.events.Last(t)
			if resp.StatusCode != http.StatusForbidden || !strings.Contains(ev.Reason, tc.reason) {
				t.Errorf("?%s: status %d reason %q, want 403 and %q", tc.query, resp.StatusCode, ev.Reason, tc.reason)
			}
		})
	}
	for _, q := range []string{"C=M;O=A", "ssrf=data://text/plain;base64,SGVsbG8=", "discount=50%", "name=O%27Brien;x=1"} {
		if resp := getRaw(t, s.addr, "/items?"+q); resp.StatusCode != http.StatusOK {
			t.Errorf("?%s: status %d, want 200 (reason %q)", q, resp.StatusCode, s.events.Last(t).Reason)
		}
		s.lastUpstream(t)
	}
}

// TestQueryEvent: the event's query parameters split on "&" only (a ";"
// is part of a value), decode what decodes, keep a bad escape as sent, and
// are valid UTF-8.
func TestQueryEvent(t *testing.T) {
	s := serveProxy(t, func(c *Config) { c.CaptureQueryValues = true }, inspectionForTests(DefaultInspectConfig()))
	resp := getRaw(t, s.addr, "/?C=M;O=A&q=50%&name=caf%E9&%ff=1&=nameless&sp=a+b%20c")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d", resp.StatusCode)
	}
	var got []string
	for _, q := range s.events.Last(t).Query {
		got = append(got, fmt.Sprintf("%s=%s", q.Name, q.Value))
	}
	want := []string{"C=M;O=A", "q=50%", "name=caf%E9", "%FF=1", "sp=a b c"}
	if strings.Join(got, "&") != strings.Join(want, "&") {
		t.Errorf("event query %q, want %q", got, want)
	}
}

// TestInspectQueryReadings lists what inspection looks at, in order, for
// queries with a ";" and with bad escapes.
func TestInspectQueryReadings(t *testing.T) {
	for _, tc := range []struct {
		raw  string
		want []string // "where|name|value"
	}{
		{"a=1&b=x+y", []string{"query name||a", "query|a|1", "query name||b", "query|b|x y"}},
		{"x=1;id=2", []string{
			"query name||x", "query|x|1;id=2", // as data
			"query name||x", "query|x|1", "query name||id", "query|id|2", // as a separator
		}},
		{"k%zz=%41%", []string{
			"query name||k%zz", // decoded and raw are the same: once
			"query|k%zz|A%", "query|k%zz|%41%",
		}},
		{"=v&&", []string{"query name||", "query||v"}}, // a nameless value is inspected too
	} {
		var got []string
		InspectQuery(tc.raw, func(where, name, v string) bool {
			got = append(got, where+"|"+name+"|"+v)
			return true
		})
		if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
			t.Errorf("InspectQuery(%q) looked at\n%s\nwant\n%s", tc.raw, strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
		}
	}
	// A false from look stops the walk.
	n := 0
	InspectQuery("a=1&b=2&c=3", func(string, string, string) bool { n++; return n < 3 })
	if n != 3 {
		t.Errorf("look called %d times after returning false, want it to stop at 3", n)
	}
}

func TestUnescapeQuery(t *testing.T) {
	for _, tc := range []struct {
		in, want string
		bad      bool
	}{
		{"plain", "plain", false},
		{"a+b%20c", "a b c", false},
		{"50%", "50%", true},
		{"%zz%41", "%zzA", true},
		{"%4", "%4", true},
		{"%c0%af", "\xc0\xaf", false},
		{"%%41", "%A", true},
		{"%3B;", ";;", false},
	} {
		got, bad := unescapeQuery(tc.in)
		if got != tc.want || bad != tc.bad {
			t.Errorf("unescapeQuery(%q) = %q, %v; want %q, %v", tc.in, got, bad, tc.want, tc.bad)
		}
	}
	if n := testing.AllocsPerRun(100, func() { unescapeQuery("distributed") }); n != 0 {
		t.Errorf("unescapeQuery of plain text allocates %v times", n)
	}
}

// FuzzQuery checks the lenient query reading against Go's strict parser:
// strictQuery refuses exactly what url.ParseQuery refuses; where both
// accept, the pairs and their decoding are the same; unescapeQuery agrees
// with url.QueryUnescape wherever that succeeds; and what an event records
// is valid UTF-8 within its bounds.
func FuzzQuery(f *testing.F) {
	for _, s := range []string{"C=M;O=A", "a=1&b=%zz", "q=%c0%af&%ff=1", "x=50%", "a+b=c+d&&=e", "ssrf=data://text/plain;base64,SGk="} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		if strings.Count(raw, "&") >= 1000 {
			return
		}
		vals, perr := url.ParseQuery(raw)
		serr := strictQuery(raw)
		if (perr == nil) != (serr == nil) {
			t.Fatalf("strictQuery(%q) = %v, url.ParseQuery: %v", raw, serr, perr)
		}
		if serr == nil {
			got := url.Values{}
			for it := (queryIter{rest: raw}); ; {
				_, k, v, ok := it.next()
				if !ok {
					break
				}
				name, bad1 := unescapeQuery(k)
				val, bad2 := unescapeQuery(v)
				if bad1 || bad2 {
					t.Fatalf("%q: a bad escape that strictQuery let through", raw)
				}
				got[name] = append(got[name], val)
			}
			if !reflect.DeepEqual(got, vals) {
				t.Fatalf("%q: read as %v, url.ParseQuery reads %v", raw, got, vals)
			}
		}
		if want, err := url.QueryUnescape(raw); err == nil {
			if got, bad := unescapeQuery(raw); got != want || bad {
				t.Fatalf("unescapeQuery(%q) = %q, %v; url.QueryUnescape: %q", raw, got, bad, want)
			}
		}
		for _, qp := range queryParams(raw, true) {
			if !utf8.ValidString(qp.Name) || !utf8.ValidString(qp.Value) || len(qp.Name) > 128 || len(qp.Value) > 1024 || qp.Name == "" {
				t.Fatalf("%q: event parameter %q=%q", raw, qp.Name, qp.Value)
			}
		}
		InspectQuery(raw, func(string, string, string) bool { return true })
	})
}

// TestStrictQuery: a route with strict_query refuses a raw ";" and a bad
// escape with a 400 that says what and where, whatever its injection mode;
// other routes let the same query through.
func TestStrictQuery(t *testing.T) {
	ic := DefaultInspectConfig()
	ic.Routes = map[string]RouteInspect{
		"GET /strict":     {StrictQuery: true},
		"GET /strict-off": {StrictQuery: true, Injection: InjectionOff},
	}
	if err := ic.Validate(); err != nil {
		t.Fatal(err)
	}
	s := serveProxy(t, func(c *Config) { c.Routes = []string{"GET /strict", "GET /strict-off", "GET /lenient"} }, inspectionForTests(ic))
	for _, tc := range []struct {
		target string
		status int
		detail string // substring of the problem's detail
		reason string // substring of the event's reason
	}{
		{"/strict?C=M;O=A", 400, `a ";" at byte 3`, `unescaped ";" at byte 3 (strict_query)`},
		{"/strict?q=50%", 400, `a "%" at byte 4 that does not start a %XX escape`, "invalid %-escape at byte 4"},
		{"/strict?a=1&b=%zz", 400, "byte 6", "invalid %-escape at byte 6"},
		{"/strict-off?x=%4", 400, "byte 2", "invalid %-escape at byte 2"},
		{"/strict?q=ok%20fine&r=%3B", 200, "", ""},
		{"/strict", 200, "", ""},
		{"/lenient?C=M;O=A&q=50%", 200, "", ""},
	} {
		t.Run(tc.target, func(t *testing.T) {
			c, err := net.Dial("tcp", s.addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if _, err := c.Write([]byte("GET " + tc.target + " HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")); err != nil {
				t.Fatal(err)
			}
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			ev := s.events.Last(t)
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d (%s)", resp.StatusCode, tc.status, body)
			}
			if tc.status == 200 {
				_, want, _ := strings.Cut(tc.target, "?")
				if got := s.lastUpstream(t).URL.RawQuery; got != want {
					t.Errorf("upstream query %q, want %q", got, want)
				}
				return
			}
			var pb problem
			if err := json.Unmarshal(body, &pb); err != nil || !strings.Contains(pb.Detail, tc.detail) {
				t.Errorf("problem %s (%v), want a detail with %q", body, err, tc.detail)
			}
			if ev.Check != "inspection" || ev.Decision != event.Decision_DECISION_BLOCK || !strings.Contains(ev.Reason, tc.reason) {
				t.Errorf("event check %q decision %v reason %q, want inspection, block, %q", ev.Check, ev.Decision, ev.Reason, tc.reason)
			}
		})
	}
}
