// Package checktest builds what the tests of the proxy's check packages
// (proxy/auth, proxy/inspect) hand a check. It is imported
// by tests only; package proxy's own tests cannot import it (it imports
// proxy).
package checktest

import (
	"io"
	"net/http/httptest"
	"net/netip"
	"strings"
	"time"

	"github.com/apiguard/apiguard/event"
	"github.com/apiguard/apiguard/proxy"
)

// Exchange is a request as a check sees it: from 192.0.2.1, with the route
// template "METHOD /path", a browser's User-Agent, Accept
// application/json, and Content-Type ctype and body when not empty.
func Exchange(method, target, ctype, body string) *proxy.Exchange {
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
	ip, _ := netip.ParseAddr("192.0.2.1")
	return &proxy.Exchange{Req: req, API: method + " " + req.URL.Path, ClientIP: ip, Event: &event.RequestEvent{}, Now: time.Now()}
}
