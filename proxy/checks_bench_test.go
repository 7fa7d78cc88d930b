package proxy

import (
	"bufio"
	"bytes"
	"io"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/apiguard/apiguard/enforce"
	"github.com/apiguard/apiguard/event"
)

// BenchmarkChecks measures each check alone on a typical request. Each
// iteration builds the request and runs the check; the "baseline" case
// only builds the requests, so a check's own cost is its time minus the
// baseline of the same request in the same run (docs/benchmarks.md).
func BenchmarkChecks(b *testing.B) {
	m := enforce.NewMatcher()
	m.Replace([]enforce.Entry{{Kind: enforce.KindIP, Value: "203.0.113.9", Action: enforce.ActionBlock}})
	order := `{"customer":"c-1042","items":[{"sku":"B-19","qty":2,"note":"gift wrap, please"},{"sku":"K-7","qty":1}],"ship":{"city":"Lyon","zip":"69002"}}`
	cases := []struct {
		name  string
		check Check
		req   func() *Exchange
	}{
		{"enforcement", NewEnforcement(m), func() *Exchange { return exchangeFor("GET", "/items/42?expand=price", "", "") }},
		{"inspection-get", inspectionForTests(DefaultInspectConfig()), func() *Exchange {
			return exchangeFor("GET", "/search/books?q=distributed+systems&page=2&sort=price", "", "")
		}},
		{"inspection-json", inspectionForTests(DefaultInspectConfig()), func() *Exchange {
			return exchangeFor("POST", "/orders", "application/json", order)
		}},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if d := c.check.Check(c.req()); d != nil {
					b.Fatalf("denied: %+v", d)
				}
			}
		})
		b.Run(c.name+"-baseline", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				_ = c.req()
			}
		})
	}
}

func exchangeFor(method, target, ctype, body string) *Exchange {
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req := httptest.NewRequest(method, target, r)
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	req.Header.Set("User-Agent", "Mozilla/5.0")
	req.Header.Set("Accept", "application/json")
	ip := peerAddr(req.RemoteAddr)
	return &Exchange{Req: req, API: method + " " + req.URL.Path, ClientIP: ip, Event: &event.RequestEvent{}, Now: time.Now()}
}

func BenchmarkScanJSON(b *testing.B) {
	var buf bytes.Buffer
	buf.WriteString(`{"items":[`)
	for i := range 200 {
		if i > 0 {
			buf.WriteByte(',')
		}
		buf.WriteString(`{"sku":"B-19","qty":2,"price":19.95,"tags":["a","b"],"note":"gift wrap, please"}`)
	}
	buf.WriteString(`]}`)
	data := buf.Bytes()
	lim := DefaultInspectConfig().JSON
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	br := bufio.NewReader(bytes.NewReader(data))
	for b.Loop() {
		br.Reset(bytes.NewReader(data))
		if err := ScanJSON(br, lim, func([]byte, bool) bool { return true }); err != nil {
			b.Fatal(err)
		}
	}
}
